"""Context: a factory and owner of sockets, as in pyzmq."""

from __future__ import annotations

import atexit
import errno
import os
import threading
import time
import warnings
import weakref
from typing import Any, Dict, Optional, Type, TypeVar

from zmtp import _zmtp
from zmtp._inproc import DEFAULT_NAMES, InprocNames
from zmtp.buffers import BufferConfig
from zmtp.constants import ENOTSUP, IO_THREADS, MAX_MSGSZ, MAX_SOCKETS, SOCKET_LIMIT, SocketOption
from zmtp.error import ZMQError
from zmtp.socket import Socket

__all__ = ["Context"]

_T = TypeVar("_T", bound="Context")

# libzmq's values for the context options zmtp answers (zmq_ctx_get).
_CTX_DEFAULTS = {IO_THREADS: 1, MAX_SOCKETS: 1023, SOCKET_LIMIT: 65535, MAX_MSGSZ: 2**31 - 1}

_exiting = False


@atexit.register
def _at_exit() -> None:
    # As pyzmq: contexts collected at interpreter exit do not warn.
    global _exiting
    _exiting = True


class Context:
    """Makes sockets and ends them together.

    zmtp has no I/O thread: ``io_threads`` is accepted for pyzmq
    compatibility and ignored.  ``term()`` wakes any call blocked on one of
    its sockets (it raises ContextTerminated), then closes every socket with
    its LINGER (1000 ms by default, unlike libzmq's forever).

    Socket options set on the context (``ctx.setsockopt(opt, v)`` or
    ``ctx.rcvtimeo = v``, any SocketOption name) are defaults for the
    sockets made afterwards; ``ctx.sockopts`` holds them.  A context
    collected without term()/destroy() warns (ResourceWarning) and is
    destroyed, as in pyzmq.
    """

    _instance: Optional["Context"] = None
    _instance_pid: Optional[int] = None
    _instance_lock = threading.Lock()

    closed: bool
    sockopts: Dict[int, Any]

    def __init__(self, io_threads: int = 1, **kwargs: Any) -> None:
        self._ctxopts: Dict[int, int] = {IO_THREADS: int(io_threads)}
        self._sockets: "weakref.WeakSet[Socket]" = weakref.WeakSet()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.closed = False
        self.sockopts: Dict[int, Any] = {}
        self._progress: Optional[_zmtp.Progress] = None
        self._inproc = InprocNames()  # this context's inproc:// names

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
        self._check_pid()
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
            except ZMQError:  # e.g. SUBSCRIBE on a non-SUB socket, as pyzmq
                pass
        with self._lock:
            self._sockets.add(sock)
        return sock

    def _check_pid(self) -> None:
        """ZMQError(ENOTSUP) in a forked child: the context is the parent's
        (its lock, its progress thread and its sockets are not usable here)."""
        if os.getpid() != self._pid:
            raise ZMQError(ENOTSUP, _FORK_ERROR)

    def _progress_thread(self) -> "Optional[_zmtp.Progress]":
        """The context's progress thread, started with its first socket."""
        self._check_pid()  # before the lock: a parent's thread may hold it
        with self._lock:
            if self._progress is None and not self.closed:
                self._progress = _zmtp.Progress()
            return self._progress

    def setsockopt(self, option: int, value: Any) -> None:
        """A default option for sockets made from now on."""
        self.sockopts[option] = value

    def getsockopt(self, option: int) -> Any:
        """A default option set with setsockopt() (KeyError if none)."""
        return self.sockopts[option]

    def set(self, option: int, optval: int) -> None:
        """A context option (libzmq's zmq_ctx_set).  IO_THREADS and
        MAX_SOCKETS are accepted and remembered for get(), but zmtp has no
        I/O threads and no socket limit; other options raise
        ZMQError(EINVAL)."""
        if option not in (IO_THREADS, MAX_SOCKETS):
            raise ZMQError(errno.EINVAL)
        self._ctxopts[option] = int(optval)

    def get(self, option: int) -> int:
        """A context option (libzmq's zmq_ctx_get): IO_THREADS, MAX_SOCKETS,
        SOCKET_LIMIT, MAX_MSGSZ; others raise ZMQError(EINVAL)."""
        if option in self._ctxopts:
            return self._ctxopts[option]
        if option in _CTX_DEFAULTS:
            return _CTX_DEFAULTS[option]
        raise ZMQError(errno.EINVAL)

    # ctx.linger = 0, ctx.rcvtimeo: socket-option defaults by name, as pyzmq.

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("_") or key in self.__dict__ or _is_attribute(type(self), key):
            object.__setattr__(self, key, value)
            return
        self.sockopts[_option(key)] = value

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        opt = _option(key)
        if opt not in self.sockopts:
            raise AttributeError(key.upper())
        return self.sockopts[opt]

    def __del__(self) -> None:
        if getattr(self, "closed", True) or _exiting or os.getpid() != self._pid:
            return
        warnings.warn(f"Unclosed context {self}", ResourceWarning, stacklevel=2, source=self)
        self.destroy()

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
        self._inproc.close()
        if self._progress is not None:
            self._progress.stop()


_FORK_ERROR = "this Context was created before fork(); it cannot be used in the child (make a new Context there)"


def _after_fork_in_child() -> None:
    """Python locks another thread of the parent held at fork() stay held
    in the child: Context.instance() and the context-less inproc namespace
    (whose names are the parent's sockets) start afresh there.  The
    parent's contexts refuse use (_check_pid) and their locks are never
    taken in the child (docs/architecture.md, "Fork")."""
    Context._instance_lock = threading.Lock()
    DEFAULT_NAMES.__init__()  # type: ignore[misc]


os.register_at_fork(after_in_child=_after_fork_in_child)


def _option(name: str) -> SocketOption:
    """The SocketOption called ``name`` (any case), else AttributeError."""
    try:
        return SocketOption[name.upper()]
    except KeyError:
        raise AttributeError(f"Context has no such option: {name.upper()}") from None


def _is_attribute(cls: type, key: str) -> bool:
    """True if a class of ``cls``'s MRO defines or annotates ``key``."""
    return any(key in vars(c) or key in vars(c).get("__annotations__", {}) for c in cls.__mro__)
