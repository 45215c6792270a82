"""pyzmq's ``zmq.log``: :mod:`zmtp.log.handlers` (PUBHandler, TopicLogger).

Layering: imports nothing; ``handlers`` imports ``zmtp.socket``,
``zmtp.context`` and ``zmtp.constants``.  Nothing in ``zmtp`` imports it.
"""
