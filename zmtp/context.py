"""Context: a factory and owner of sockets, as in pyzmq."""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any, Dict, Optional, Type, TypeVar

from zmtp import _zmtp
from zmtp.buffers import BufferConfig
from zmtp.constants import LINGER
from zmtp.error import ZMQError
from zmtp.socket import Socket

__all__ = ["Context"]

_T = TypeVar("_T", bound="Context")


class Context:
    """Makes sockets and ends them together.

    zmtp has no I/O thread: ``io_threads`` is accepted for pyzmq
    compatibility and ignored.  ``term()`` wakes any call blocked on one of
    its sockets (it raises ContextTerminated), then closes every socket with
    its LINGER (1000 ms by default, unlike libzmq's forever).
    """

    _instance: Optional["Context"] = None
    _instance_pid: Optional[int] = None
    _instance_lock = threading.Lock()

    def __init__(self, io_threads: int = 1, **kwargs: Any) -> None:
        self._sockets: "weakref.WeakSet[Socket]" = weakref.WeakSet()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.closed = False
        self.sockopts: Dict[int, Any] = {}
        self._progress: Optional[_zmtp.Progress] = None

    @classmethod
    def instance(cls: Type[_T], io_threads: int = 1) -> _T:
        """The process-wide shared Context (a new one in a forked child)."""
        with cls._instance_lock:
            inst = cls._instance
            if inst is None or inst.closed or cls._instance_pid != os.getpid():
                inst = cls(io_threads)
                cls._instance = inst
                cls._instance_pid = os.getpid()
            return inst  # type: ignore[return-value]

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.term()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._sockets)} socket(s)"
        return f"<zmtp.Context({state}) at {id(self):#x}>"

    def socket(
        self,
        socket_type: int,
        socket_class: Optional[Type[Socket]] = None,
        config: Optional[BufferConfig] = None,
        **kwargs: Any,
    ) -> Socket:
        """A new socket of ``socket_type`` (zmtp.REQ, ...); ``config`` sets its
        buffer sizes (:class:`zmtp.BufferConfig`)."""
        if config is not None and not isinstance(config, BufferConfig):
            raise TypeError(f"config must be a zmtp.BufferConfig, not {type(config).__name__}")
        if self.closed:
            from zmtp.error import ContextTerminated
            from zmtp.constants import ETERM

            raise ContextTerminated(ETERM)
        cls = socket_class or Socket
        sock = cls(self, socket_type, **kwargs)
        if config is not None:
            config.apply(sock)
        for opt, value in self.sockopts.items():
            try:
                sock.setsockopt(opt, value)
            except Exception:
                pass
        with self._lock:
            self._sockets.add(sock)
        return sock

    def _progress_thread(self) -> "Optional[_zmtp.Progress]":
        """The context's progress thread, started with its first socket."""
        with self._lock:
            if self._progress is None and not self.closed:
                self._progress = _zmtp.Progress()
            return self._progress

    def setsockopt(self, option: int, value: Any) -> None:
        """A default option for sockets made from now on."""
        self.sockopts[option] = value

    set = setsockopt

    def getsockopt(self, option: int) -> Any:
        """A default option set with setsockopt()."""
        return self.sockopts[option]

    get = getsockopt

    @property
    def linger(self) -> Optional[int]:
        """Default LINGER for new sockets."""
        return self.sockopts.get(LINGER)

    @linger.setter
    def linger(self, value: int) -> None:
        self.sockopts[LINGER] = value

    def term(self) -> None:
        """End the context: blocked calls raise ContextTerminated; sockets close."""
        self._end(None)

    def destroy(self, linger: Optional[int] = None) -> None:
        """Close every socket (with ``linger`` if given) and end the context."""
        self._end(linger)

    def _end(self, linger: Optional[int]) -> None:
        if self.closed:
            return
        self.closed = True
        if os.getpid() != self._pid:
            return  # a forked child must not touch the parent's sockets
        with self._lock:
            socks = list(self._sockets)
        lingers = {}
        for s in socks:
            if not s.closed:
                try:
                    lingers[id(s)] = s.linger if linger is None else linger
                except ZMQError:  # in use by another thread: its own value
                    lingers[id(s)] = linger
                s._terminate()
        # Every socket's LINGER counts from now, as libzmq's sockets linger
        # side by side: while one is closed here, the progress thread goes
        # on flushing the others.
        start = time.monotonic()
        for s in socks:
            # A call woken by _terminate() returns promptly; then close.
            while not s.closed and s._in_use():
                time.sleep(0.001)
            if s.closed:
                continue
            own = lingers.get(id(s), linger)
            if own is not None and own > 0:
                own = max(0, own - int((time.monotonic() - start) * 1000))
            s.close(own)
        if self._progress is not None:
            self._progress.stop()
