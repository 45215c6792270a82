"""Context: a factory and owner of sockets, as in pyzmq.

Layering: the top of the socket stack: imports ``socket``, ``_inproc``,
``buffers``, ``constants``, ``error`` and the C module.  Only the package
face imports it; ``socket`` and ``_inproc`` must never import it back.
"""

from __future__ import annotations

import atexit
import errno
import os
import threading
import time
import types
import warnings
import weakref
from typing import Any, Callable, Dict, List, Optional, Type, TypeVar

from zmtp import _zmtp
from zmtp._inproc import DEFAULT_NAMES, InprocNames
from zmtp.buffers import BufferConfig
from zmtp.constants import (
    ENOTSUP,
    ETERM,
    IO_THREADS,
    MAX_MSGSZ,
    MAX_SOCKETS,
    RCVHWM,
    SNDHWM,
    SOCKET_LIMIT,
    UNIMPLEMENTED_CONTEXT_OPTIONS,
    UNIMPLEMENTED_SOCKET_OPTIONS,
    SocketOption,
    implemented_socket_options,
)
from zmtp.error import ContextTerminated, OptionNotImplemented, ZMQError
from zmtp.socket import HandleRegistry, Socket, _OptionAttributes

__all__ = ["Context"]

_T = TypeVar("_T", bound="Context")

#: ZMQ_BLOCKY (70): a context option in libzmq (zmq_ctx_set), a SocketOption
#: member in pyzmq's enums.  0: the sockets made from then on start with
#: LINGER 0 instead of the default (libzmq's socket_base: instead of -1).
_BLOCKY = int(SocketOption.BLOCKY)
# libzmq's values for the context options zmtp answers (zmq_ctx_get).
_CTX_DEFAULTS = {IO_THREADS: 1, MAX_SOCKETS: 1023, SOCKET_LIMIT: 65535, MAX_MSGSZ: 2**31 - 1, _BLOCKY: 1}
_UNIMPLEMENTED_CTX_BY_NUMBER = {num: name for name, num in UNIMPLEMENTED_CONTEXT_OPTIONS.items()}
_UNIMPLEMENTED_SOCK_BY_NUMBER = {num: name for name, num in UNIMPLEMENTED_SOCKET_OPTIONS.items()}

_exiting = False

_CONTEXT_HANDLES = HandleRegistry("context", 0x7A6D74700008)


@atexit.register
def _at_exit() -> None:
    # As pyzmq: contexts collected at interpreter exit do not warn.
    global _exiting
    _exiting = True


def _default_option(opt: SocketOption) -> property:
    """``ctx.<name>``: the default of socket option ``opt`` for the sockets
    made from now on (pyzmq's context attributes)."""

    def fget(self: "Context") -> Any:
        try:
            return self.sockopts[opt]
        except KeyError:
            raise AttributeError(opt.name) from None

    def fset(self: "Context", value: Any) -> None:
        self.sockopts[opt] = value

    def fdel(self: "Context") -> None:
        try:
            del self.sockopts[opt]
        except KeyError:
            raise AttributeError(opt.name) from None

    return property(fget, fset, fdel, doc=f"Default {opt.name} of the sockets made from now on (AttributeError if unset).")


def _context_option(opt: int, name: str) -> property:
    """``ctx.<name>``: context option ``opt`` through get() / set()."""

    def fget(self: "Context") -> int:
        return self.get(opt)

    def fset(self: "Context", value: int) -> None:
        self.set(opt, value)

    return property(fget, fset, doc=f"Context option {name} (Context.get / Context.set).")


class Context(_OptionAttributes):
    """Makes sockets and ends them together.

    zmtp has no I/O thread: ``io_threads`` is accepted for pyzmq
    compatibility and ignored.

    ``term()`` ends the context as libzmq's does, except that it does not
    wait for you to close the sockets: it closes them itself.  A call
    blocked on one of its sockets, in any thread, raises ContextTerminated;
    every later call on a socket you have not closed raises
    ContextTerminated too (``closed`` stays False) until you call its
    ``close()``, as in libzmq; meanwhile term() sends what each socket has
    queued for its LINGER (1000 ms by default, unlike libzmq's forever) and
    frees it.  ``socket()`` after term() began raises ContextTerminated;
    concurrent term() calls all return once termination is complete.
    ``destroy()`` and the ``with`` block close the sockets as close() does
    (then they raise ENOTSOCK, as pyzmq's).

    Socket options set on the context (``ctx.setsockopt(opt, v)`` or
    ``ctx.rcvtimeo = v``, any SocketOption name; ``ctx.hwm`` sets SNDHWM
    and RCVHWM) are defaults for the sockets made afterwards with
    ``ctx.socket()``; ``ctx.sockopts`` holds them.  A context collected
    without term()/destroy() warns (ResourceWarning) and is destroyed, as
    in pyzmq.
    """

    # A shadow shares its original's __dict__ (all of the context's state:
    # sockets, lock, inproc names, options), so what it knows of being a
    # shadow lives in a slot, outside that dict.
    __slots__ = ("__dict__", "__weakref__", "_shadow_obj")

    _instance: Optional["Context"] = None
    _instance_pid: Optional[int] = None
    _instance_lock = threading.Lock()
    #: The class ``socket()`` makes when not given one (pyzmq's hook).
    _socket_class: Type[Socket] = Socket
    #: ``zmtp.Context[Any]`` in annotations evaluated at run time (ipykernel's
    #: ``zmq.Context[t.Any]``): pyzmq's Context is Generic in its socket class.
    __class_getitem__ = classmethod(types.GenericAlias)

    closed: bool
    sockopts: Dict[int, Any]

    def __init__(self, io_threads: Any = 1, *, shadow: Any = 0, **kwargs: Any) -> None:
        if isinstance(io_threads, Context):  # Context(other_context): a shadow, as pyzmq
            io_threads, shadow = 1, io_threads
        if _CONTEXT_HANDLES.given(shadow):
            orig = shadow if isinstance(shadow, Context) else _CONTEXT_HANDLES.lookup(getattr(shadow, "underlying", shadow))
            root = orig._shadow_obj or orig
            self._shadow_obj = root
            self.__dict__ = root.__dict__  # one context, two objects
            return
        if int(io_threads) < 0:  # libzmq's zmq_ctx_set(IO_THREADS, -1): EINVAL, as pyzmq
            raise ZMQError(errno.EINVAL, f"io_threads must be >= 0, not {int(io_threads)}")
        self._shadow_obj = None
        self._ctxopts: Dict[int, int] = {IO_THREADS: int(io_threads)}
        self._sockets: "weakref.WeakSet[Socket]" = weakref.WeakSet()
        # Guards _sockets, _terminating and _progress: a socket is
        # registered, or refused, atomically with respect to term().
        self._lock = threading.Lock()
        self._terminating = False  # term()/destroy() has begun
        self._terminated = threading.Event()  # ... and is complete
        self._pid = os.getpid()
        self.closed = False  # True once termination is complete, as pyzmq
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

    @classmethod
    def shadow(cls: Type[_T], address: Any) -> _T:
        """A new ``cls`` object for the same context as ``address`` (a zmtp
        Context, or its ``underlying`` handle), as pyzmq's: e.g. an asyncio
        Context over a blocking one.  Both objects are one context (its
        sockets, options, inproc names, term()); the shadow is never
        destroyed when collected.  A handle that names no live context
        raises ZMQError(EFAULT), libzmq's errno for a bad context."""
        _CONTEXT_HANDLES.refuse_null(address)
        return cls(shadow=address)

    @property
    def underlying(self) -> int:
        """An integer naming this context for :meth:`shadow` (a
        process-local handle, valid while the original object is alive;
        pyzmq's is the libzmq pointer).  Shadows give the original's."""
        return _CONTEXT_HANDLES.handle(self._shadow_obj or self)

    @property
    def _shadow(self) -> bool:
        """True for a shadow (pyzmq's attribute)."""
        return self._shadow_obj is not None

    def __copy__(self: _T, memo: Any = None) -> _T:
        """A shadow of this context (pyzmq: copying a Context shadows it)."""
        return self.__class__.shadow(self)

    __deepcopy__ = __copy__

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: Any) -> None:
        # As pyzmq (since 24): destroy(), which closes leftover sockets,
        # each with a ResourceWarning.
        self._end(None, True, warn=True)

    #: the class name repr shows (pyzmq's hook: "zmq.Context" there)
    _repr_cls = "zmtp.Context"

    def __repr__(self) -> str:
        """pyzmq's shape: ``<zmtp.Context(2 sockets) at 0x...>``, ``closed`` at the end once ended."""
        n = 0 if self.closed else len(self._sockets)
        count = "" if n == 0 else f"{n} socket{'s' if n > 1 else ''}"
        closed = " closed" if self.closed else ""
        return f"<{self._repr_cls}({count}) at {id(self):#x}{closed}>"

    def socket(
        self,
        socket_type: int,
        socket_class: Optional[Type[Socket]] = None,
        config: Optional[BufferConfig] = None,
        **kwargs: Any,
    ) -> Socket:
        """A new socket of ``socket_type`` (zmtp.REQ, ...), of class
        ``socket_class`` (default: the context's ``_socket_class``, a
        :class:`zmtp.Socket`), with this context's default options;
        ``config`` sets its buffer sizes (:class:`zmtp.BufferConfig`);
        ``kwargs`` go to the class.  ContextTerminated once term() began."""
        if config is not None and not isinstance(config, BufferConfig):
            raise TypeError(f"config must be a zmtp.BufferConfig, not {type(config).__name__}")
        self._check_pid()
        cls = socket_class or self._socket_class
        sock = cls(self, socket_type, **kwargs)  # registers itself (_register_socket)
        if config is not None:
            config.apply(sock)
        if not self.get(_BLOCKY):
            sock.linger = 0  # libzmq: LINGER's default is 0 once BLOCKY is off
        for opt, value in self.sockopts.items():
            try:
                sock.setsockopt(opt, value)
            except ZMQError:  # e.g. SUBSCRIBE on a non-SUB socket, as pyzmq
                pass
        return sock

    def _check_pid(self) -> None:
        """ZMQError(ENOTSUP) in a forked child: the context is the parent's
        (its lock, its progress thread and its sockets are not usable here)."""
        if os.getpid() != self._pid:
            raise ZMQError(ENOTSUP, _FORK_ERROR)

    def _register_socket(self, sock: Socket, init: "Callable[[Optional[_zmtp.Progress]], None]") -> None:
        """Socket.__init__: ``init(progress)`` makes the C socket, here,
        under the lock that term() takes its snapshot of the sockets with:
        every socket is either refused (ContextTerminated, once term() has
        begun) or made and known to term(), whatever the constructor path."""
        self._check_pid()  # before the lock: a parent's thread may hold it
        with self._lock:
            if self._terminating:
                raise ContextTerminated(ETERM, "Context was terminated")
            if self._progress is None:
                self._progress = _zmtp.Progress()  # started with the first socket
            init(self._progress)
            self._sockets.add(sock)

    def _progress_thread(self) -> "Optional[_zmtp.Progress]":
        """The context's progress thread, started if need be (None once
        term() has begun)."""
        self._check_pid()  # before the lock: a parent's thread may hold it
        with self._lock:
            if self._progress is None and not self._terminating:
                self._progress = _zmtp.Progress()
            return self._progress

    def setsockopt(self, option: int, value: Any) -> None:
        """A default option for sockets made from now on (an option zmtp
        does not implement raises OptionNotImplemented)."""
        name = _UNIMPLEMENTED_SOCK_BY_NUMBER.get(int(option))
        if name is not None:
            raise OptionNotImplemented(name)
        self.sockopts[option] = value

    def getsockopt(self, option: int) -> Any:
        """A default option set with setsockopt() (KeyError if none)."""
        return self.sockopts[option]

    def set(self, option: int, optval: int) -> None:
        """A context option (libzmq's zmq_ctx_set).  IO_THREADS and
        MAX_SOCKETS are accepted and remembered for get(), but zmtp has no
        I/O threads and no socket limit; BLOCKY 0 gives the sockets made
        from then on LINGER 0 (libzmq's meaning); libzmq's others raise
        OptionNotImplemented, unknown numbers ZMQError(EINVAL)."""
        if option == _BLOCKY:
            self._ctxopts[_BLOCKY] = 1 if int(optval) != 0 else 0  # libzmq: any int, != 0 is on
            return
        if option not in (IO_THREADS, MAX_SOCKETS):
            name = _UNIMPLEMENTED_CTX_BY_NUMBER.get(int(option))
            if name is not None:
                raise OptionNotImplemented(name, "context")
            raise ZMQError(errno.EINVAL)
        if int(optval) < 0:
            raise ZMQError(errno.EINVAL)
        self._ctxopts[option] = int(optval)

    def get(self, option: int) -> int:
        """A context option (libzmq's zmq_ctx_get): IO_THREADS, MAX_SOCKETS,
        SOCKET_LIMIT, MAX_MSGSZ, BLOCKY; libzmq's others raise
        OptionNotImplemented, unknown numbers ZMQError(EINVAL)."""
        if option in self._ctxopts:
            return self._ctxopts[option]
        if option in _CTX_DEFAULTS:
            return _CTX_DEFAULTS[option]
        name = _UNIMPLEMENTED_CTX_BY_NUMBER.get(int(option))
        if name is not None:
            raise OptionNotImplemented(name, "context")
        raise ZMQError(errno.EINVAL)

    # -- options as attributes, as pyzmq: context options, and socket-option
    # defaults for the sockets made from now on (ctx.linger = 0).

    io_threads = _context_option(IO_THREADS, "IO_THREADS")
    max_sockets = _context_option(MAX_SOCKETS, "MAX_SOCKETS")
    socket_limit = _context_option(SOCKET_LIMIT, "SOCKET_LIMIT")
    max_msgsz = _context_option(MAX_MSGSZ, "MAX_MSGSZ")

    @property
    def hwm(self) -> int:
        """Default SNDHWM of new sockets; setting it sets the SNDHWM and
        RCVHWM defaults (pyzmq's virtual HWM option).  AttributeError if
        unset."""
        try:
            return self.sockopts[SNDHWM]
        except KeyError:
            raise AttributeError("HWM") from None

    @hwm.setter
    def hwm(self, value: int) -> None:
        self.sockopts[SNDHWM] = value
        self.sockopts[RCVHWM] = value

    def __del__(self) -> None:
        if getattr(self, "_shadow_obj", True) is not None:  # a shadow (or half made): owns nothing
            return
        if getattr(self, "closed", True) or _exiting or os.getpid() != self._pid:
            return
        warnings.warn(f"Unclosed context {self}", ResourceWarning, stacklevel=2, source=self)
        self.destroy()

    def term(self) -> None:
        """End the context.  Calls blocked on its sockets raise
        ContextTerminated; so does every later call on a socket until you
        close() it.  Unlike libzmq's, term() does not wait for you to close
        them: it sends what each has queued (for its LINGER) and frees it.
        New sockets are refused (ContextTerminated); a concurrent term()
        returns once termination is complete.

        Each socket still open gets a ResourceWarning: pyzmq's term() would
        wait here until it is closed (forever if nobody closes it)."""
        self._end(None, False, warn=True)

    def destroy(self, linger: Optional[int] = None) -> None:
        """Close every socket (with ``linger`` if given, else its LINGER)
        and end the context, as term(); the sockets end closed (``closed``
        True, ENOTSOCK), as after their close()."""
        self._end(linger, True)

    def _end(self, linger: Optional[int], close: bool, warn: bool = False) -> None:
        if os.getpid() != self._pid:
            # A forked child must not touch the parent's sockets (nor wait
            # for a termination that runs in the parent).
            self.closed = True
            return
        with self._lock:
            first = not self._terminating
            self._terminating = True  # from here on socket() is refused
            socks: List[Socket] = list(self._sockets)
        if not first:
            self._terminated.wait()  # the first term() finishes the work
            return
        unclosed = [s for s in socks if not s.closed] if warn else []
        try:
            self._terminate(socks, linger, close)
        finally:
            self.closed = True
            self._terminated.set()
        # After the work: a warning turned into an error (-W error) must
        # not leave the context half terminated.
        what = "Destroying" if close else "Terminating"
        for s in unclosed:
            warnings.warn(f"{what} context with unclosed socket {s}", ResourceWarning, stacklevel=3, source=s)

    def _terminate(self, socks: List[Socket], linger: Optional[int], close: bool) -> None:
        lingers: Dict[int, Optional[int]] = {}
        for s in socks:
            if not s.closed:
                try:
                    lingers[id(s)] = s.linger if linger is None else linger
                except ZMQError:  # in use by another thread: its own value
                    lingers[id(s)] = linger
                s._terminate()  # wakes a blocked call: ContextTerminated
        # Every socket's LINGER counts from now, as libzmq's sockets linger
        # side by side: while one is closed here, the progress thread goes
        # on flushing the others.
        start = time.monotonic()
        for s in socks:
            if id(s) not in lingers:
                continue
            own = lingers[id(s)]
            if own is not None and own > 0:
                own = max(0, own - int((time.monotonic() - start) * 1000))
            try:
                # Waits for a call another thread is inside (woken above).
                s._release(own)
            except ZMQError:
                # This very thread is inside a call on it (term() from a
                # signal handler): the call raises ContextTerminated when
                # the handler returns; the socket's close() frees it.
                continue
            if close:
                s.close()  # destroy(): closed, as by the user
        self._inproc.close()
        if self._progress is not None:
            self._progress.stop()


# ctx.linger, ctx.rcvtimeo, ...: one property per option zmtp implements.
for _opt in implemented_socket_options():
    setattr(Context, _opt.name.lower(), _default_option(_opt))
Context.identity = Context.routing_id  # type: ignore[attr-defined]
del _opt


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


