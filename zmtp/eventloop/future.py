"""Future-returning sockets for tornado coroutines (pyzmq's
``zmq.eventloop.future``): ``Context``, ``Socket``, ``Poller``.

Built on :mod:`zmtp.asyncio`: tornado's Future is asyncio's (tornado >= 5),
so the asyncio classes serve tornado coroutines as they are.  While this
build of zmtp has no ``zmtp.asyncio``, importing this module raises
ImportError saying so.

Layering: imports ``zmtp.asyncio`` and tornado; imported by nobody in
``zmtp``.
"""

from __future__ import annotations

import warnings
from typing import Any

try:
    import tornado.ioloop  # noqa: F401 - the dependency this module promises
except ImportError as _exc:
    from zmtp.eventloop import TORNADO_MISSING

    raise ImportError(TORNADO_MISSING) from _exc

try:
    import zmtp.asyncio as _aio
except ImportError as _exc:
    raise ImportError(
        "zmtp.eventloop.future is built on zmtp.asyncio, which this build of zmtp does not have yet"
        f" ({_exc}); use zmtp.eventloop.zmqstream.ZMQStream, or run pyzmq for zmq.eventloop.future"
    ) from _exc

__all__ = ["Context", "Socket", "Poller"]


class Poller(_aio.Poller):  # type: ignore[misc,name-defined]
    """``await poller.poll(timeout_ms)`` from a tornado coroutine (the
    loop under tornado's IOLoop is the running asyncio loop)."""


class Socket(_aio.Socket):  # type: ignore[misc,name-defined]
    """A socket whose send/recv methods and poll() return futures a
    tornado coroutine awaits (tornado's Future is asyncio's)."""

    _poller_class = Poller


class Context(_aio.Context):  # type: ignore[misc,name-defined]
    """A Context making :class:`Socket`; ``io_loop=`` is accepted and
    ignored with pyzmq's DeprecationWarning (the running loop is used)."""

    _socket_class = Socket
    _instance = None  # not zmtp.asyncio's nor the blocking Context's
    _instance_pid = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        io_loop = kwargs.pop("io_loop", None)
        if io_loop is not None:
            warnings.warn(
                f"{self.__class__.__name__}(io_loop) argument is deprecated in pyzmq 22.2."
                " The currently active loop will always be used.",
                DeprecationWarning,
                stacklevel=2,
            )
        super().__init__(*args, **kwargs)
