"""Exceptions, as pyzmq names them.

Layering: imports ``codec`` (ProtocolError's codes) and the C module; imported
by every module that raises.  Must never import sockets or contexts.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Optional

from zmtp import _zmtp
from zmtp.codec import ProtocolError

__all__ = [
    "ZMQError", "Again", "ContextTerminated", "ZMQBindError", "OptionNotImplemented", "ProtocolError", "strerror",
    "NotDone",
]

_ZMQ_TEXT = {
    _zmtp.EFSM: "Operation cannot be accomplished in current state",
    _zmtp.ENOCOMPATPROTO: "The protocol is not compatible with the socket type",
    _zmtp.ETERM: "Context was terminated",
    _zmtp.EMTHREAD: "No thread available",
    _errno.EHOSTUNREACH: "Host unreachable",  # libzmq's own text, as zmq_strerror
}


def strerror(errno: int) -> str:
    """The text for an errno value, as libzmq's zmq_strerror: its own
    numbers (EFSM, ETERM...) included."""
    if errno in _ZMQ_TEXT:
        return _ZMQ_TEXT[errno]
    return os.strerror(errno)


class ZMQError(Exception):
    """An error from a socket or context; ``.errno`` is libzmq's number."""

    errno: int
    strerror: str

    def __init__(self, errno: Optional[int] = None, msg: Optional[str] = None) -> None:
        self.errno = _errno.EINVAL if errno is None else int(errno)
        self.strerror = msg if msg is not None else strerror(self.errno)
        super().__init__(self.errno, self.strerror)

    def __str__(self) -> str:
        return self.strerror


class Again(ZMQError):
    """EAGAIN: nothing to receive / cannot send now (DONTWAIT or a timeout)."""


class ContextTerminated(ZMQError):
    """ETERM: the socket's context was terminated."""


class OptionNotImplemented(ZMQError, AttributeError):
    """ZMQError(EINVAL) for a libzmq option zmtp does not implement (yet),
    set or read as an attribute (``s.rate = 1``), as a Context
    default or a context option; its message names the option.  Also an
    AttributeError, so that ``hasattr(s, "rate")`` is False rather than an
    error."""

    def __init__(self, name: str, kind: str = "socket") -> None:
        super().__init__(_errno.EINVAL, f"Invalid argument: zmtp does not implement {kind} option {name} yet")
        self.option = name


class ZMQBindError(ZMQError):
    """bind_to_random_port() found no free port."""


class NotDone(Exception):
    """MessageTracker.wait() timed out before the tracked messages were
    done (pyzmq's name; not a ZMQError, as in pyzmq)."""


_zmtp._set_errors(ZMQError, Again, ContextTerminated)
