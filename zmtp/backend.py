"""``zmq.backend``'s names, for programs (and pyzmq's own tests) that reach
the backend directly: pyzmq's ``zmq.backend`` is the compiled layer under
``zmq.Socket`` / ``zmq.Context``; zmtp's is the C module ``zmtp._zmtp``
(not to be confused with :mod:`zmtp._backend`, the I/O backend choice).

``Socket`` is the C socket type (``zmtp.Socket``'s base), ``Context`` is
zmtp's Context (it has no C base), ``Frame`` / ``Message`` the C frame.
``zmq_poll(sockets, timeout=-1)`` polls ``[(socket_or_fd, flags), ...]`` for
``timeout`` ms and returns the ready ``(socket_or_fd, events)`` pairs.
``zmq_errno()`` is always 0: zmtp keeps no thread-local errno, every error is
raised as ZMQError with its errno.

Layering: imports ``context``, ``proxy``, ``poll``, ``curve``, ``error``,
``version``, ``constants`` and the C module; nothing in zmtp imports it.
"""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple

from zmtp import _zmtp
from zmtp.constants import IPC_PATH_MAX_LEN
from zmtp.context import Context
from zmtp.curve import curve_keypair, curve_public
from zmtp.error import strerror
from zmtp.poll import _result_key
from zmtp.proxy import proxy
from zmtp.version import has, zmq_version_info

__all__ = [
    "Context", "Socket", "Frame", "Message", "proxy", "zmq_poll", "strerror", "zmq_errno", "has",
    "curve_keypair", "curve_public", "zmq_version_info", "IPC_PATH_MAX_LEN", "PYZMQ_DRAFT_API",
]

Socket = _zmtp.Socket
Frame = _zmtp.Frame
Message = _zmtp.Frame

#: zmtp implements none of libzmq's draft API (pyzmq's PYZMQ_DRAFT_API).
PYZMQ_DRAFT_API: bool = False


def zmq_poll(sockets: Sequence[Tuple[Any, int]], timeout: int = -1) -> List[Tuple[Any, int]]:
    """libzmq's zmq_poll: wait up to ``timeout`` ms (-1: forever) for the
    events asked of each ``(socket or fd, flags)``; return the ready pairs."""
    items = [(s, int(flags)) for s, flags in sockets]
    tmo = -1 if timeout is None or timeout < 0 else int(timeout)
    return [(_result_key(items[i][0]), ev) for i, ev in _zmtp._poll(items, tmo)]


def zmq_errno() -> int:
    """Always 0: zmtp raises every error with its errno (there is no
    thread-local errno to read)."""
    return 0


def __getattr__(name: str) -> Any:
    # proxy_steerable lives in zmtp.proxy once built (issue 18, devices).
    if name == "proxy_steerable":
        import zmtp.proxy as _proxy

        return getattr(_proxy, name)
    raise AttributeError(f"module 'zmtp.backend' has no attribute {name!r}")
