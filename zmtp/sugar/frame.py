"""``zmtp.sugar.frame``: pyzmq's import path for :class:`zmtp.Frame` and its
alias ``Message``.

Layering: imports the C module only; imported by ``zmtp.sugar`` and the
package face.
"""

from zmtp._zmtp import Frame

#: pyzmq's alias of Frame (``zmq.Message``).
Message = Frame

__all__ = ["Frame", "Message"]
