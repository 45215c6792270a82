"""Helpers with pyzmq's ``zmq.utils`` names.

Layering: imports nothing; its modules import ``zmtp.constants`` only.
"""
