"""asyncio support, with pyzmq's ``zmq.asyncio`` API.

::

    import zmtp.asyncio
    ctx = zmtp.asyncio.Context()
    s = ctx.socket(zmtp.PULL)
    s.bind("tcp://127.0.0.1:5555")
    frames = await s.recv_multipart()

``send``/``recv`` (and their multipart, string, JSON, pickle, serialized and
``recv_into`` forms) and ``poll`` return asyncio futures; everything else is
a zmtp Socket.  How the socket meets the loop, and what differs from
pyzmq: docs/asyncio.md.

Layering: imports ``_future``, ``context``, ``error`` and ``constants``;
imported by nobody in ``zmtp`` (``import zmtp.asyncio`` is the user's).
"""

from __future__ import annotations

import asyncio as _asyncio
import warnings
from typing import Any, List, Optional, Type

from zmtp._future import _AsyncPoller, _AsyncSocket
from zmtp.context import Context as _BlockingContext
from zmtp.error import ContextTerminated

__all__ = ["Context", "Poller", "Socket"]


def _default_loop() -> Any:
    """The running loop, else the thread's current one (pyzmq allows
    making futures outside a coroutine)."""
    try:
        return _asyncio.get_running_loop()
    except RuntimeError:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return _asyncio.get_event_loop_policy().get_event_loop()


class Poller(_AsyncPoller):
    """pyzmq's ``zmq.asyncio.Poller``: ``await poller.poll(timeout_ms)``."""

    _default_loop = staticmethod(_default_loop)  # one frame less per call


class Socket(_AsyncSocket):
    """A zmtp socket whose send/recv methods and poll() return asyncio
    futures (pyzmq's ``zmq.asyncio.Socket``).  Make it with
    ``zmtp.asyncio.Context().socket(kind)``."""

    _poller_class = Poller

    _default_loop = staticmethod(_default_loop)  # one frame less per call


class Context(_BlockingContext):
    """pyzmq's ``zmq.asyncio.Context``: its sockets are
    :class:`zmtp.asyncio.Socket`.  ``term()`` fails the futures still
    waiting on them with ContextTerminated; ``destroy()`` and a socket's
    ``close()`` cancel them."""

    _socket_class: Type[Socket] = Socket  # type: ignore[assignment]
    _instance: Optional["Context"] = None  # not the blocking Context's
    _instance_pid: Optional[int] = None

    @classmethod
    def from_context(cls, context: Any) -> "Context":
        """An asyncio object for the same context as ``context`` (a zmtp
        Context or its ``underlying`` handle), pyzmq's from_context; its
        socket() makes zmtp.asyncio sockets (through ``Context.shadow``)."""
        return cls.shadow(context)

    def _async_sockets(self) -> List[Socket]:
        with self._lock:
            return [s for s in self._sockets if isinstance(s, _AsyncSocket) and not s.closed]

    def term(self) -> None:
        """End the context, as zmtp.Context.term(); futures waiting on its
        sockets raise ContextTerminated (at once on the loop's thread, on
        the loop's next turn from another thread)."""
        socks = self._async_sockets()
        for s in socks:
            if _on_loop_thread(s._loop):
                s._stop_reading()  # while its fd is still open
        super().term()
        for s in socks:
            loop = s._loop
            if loop is None or loop.is_closed():
                continue
            if _on_loop_thread(loop):
                s._fail_all(ContextTerminated())
            else:
                loop.call_soon_threadsafe(s._handle_events)  # fails them there

    def destroy(self, linger: Optional[int] = None) -> None:
        """Close every socket (their waiting futures are cancelled) and end
        the context."""
        for s in self._async_sockets():
            if _on_loop_thread(s._loop):
                s._stop_reading()
                s._cancel_all()
        super().destroy(linger)


def _on_loop_thread(loop: Any) -> bool:
    """True when ``loop`` may be touched from here: it runs in this thread,
    or runs nowhere."""
    if loop is None:
        return False
    try:
        if _asyncio.get_running_loop() is loop:
            return True
    except RuntimeError:
        pass
    return not loop.is_running()
