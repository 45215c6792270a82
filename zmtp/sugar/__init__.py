"""pyzmq's ``zmq.sugar`` import paths: ``zmtp.sugar.socket.Socket``,
``zmtp.sugar.context.Context``, ``zmtp.sugar.tracker.MessageTracker``,
``zmtp.sugar.poll.Poller``, ``zmtp.sugar.frame.Frame`` name the classes of
``zmtp`` (the same objects, re-exported: type hints and ``isinstance``
written against ``zmq.sugar.socket.Socket`` work).

Layering: imports its submodules; imported by nothing in ``zmtp`` (users
import it).
"""

from zmtp.sugar.context import Context
from zmtp.sugar.frame import Frame, Message
from zmtp.sugar.poll import Poller, select
from zmtp.sugar.socket import Socket
from zmtp.sugar.tracker import MessageTracker

__all__ = ["Context", "Frame", "Message", "MessageTracker", "Poller", "Socket", "select"]
