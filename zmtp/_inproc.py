"""The inproc:// names of a Context: which socket bound each, and the
connections that wait for a bind.

The pipes themselves are C (src/inproc.c): a connecting socket makes one
(``Socket._inproc_connect``), keeps its own end as a connection, and the
other end (an ``InprocPipe``) goes to the bound socket's mailbox
(``Socket._inproc_offer``), from any thread; the bound socket adopts it at
its next step.  A name connected to before anyone binds it keeps its pipes
here until the bind (libzmq 4.x does the same).

Layering: this module sits below ``zmtp.socket`` (which imports it) and
never imports it back.  The sockets it handles are typed as the C type
``zmtp._zmtp.Socket``, which has every method used here (``_inproc_*``,
``_adopt_fd``, ``disconnect``, ``closed``).
"""

from __future__ import annotations

import errno
import os
import threading
import weakref
from typing import TYPE_CHECKING, Dict, List, Union

from zmtp.error import ZMQError

if TYPE_CHECKING:  # pragma: no cover
    # The C type, not zmtp.socket.Socket: that module imports this one.
    from zmtp._zmtp import InprocPipe, Socket

PREFIX = "inproc://"
# The engine keeps endpoints in 300-byte buffers (ZM_ENDPOINT_MAX).
_MAX_ENDPOINT = 299


def is_inproc(addr: Union[str, bytes]) -> bool:
    """True for an ``inproc://`` endpoint (str or bytes)."""
    if isinstance(addr, bytes):
        return addr.startswith(PREFIX.encode())
    return isinstance(addr, str) and addr.startswith(PREFIX)


def _endpoint(addr: Union[str, bytes]) -> str:
    """The endpoint as str, checked: a non-empty name that fits."""
    text = addr.decode("utf-8") if isinstance(addr, bytes) else addr
    if len(text) == len(PREFIX):
        raise ZMQError(errno.EINVAL, f"inproc endpoint needs a name: {text!r}")
    if "\0" in text:  # as for tcp:// and ipc:// (src/py_sockopt.c, endpoint_str)
        raise ZMQError(errno.EINVAL, f"Invalid argument: an endpoint cannot contain a NUL character: {text!r}")
    if len(text.encode("utf-8")) > _MAX_ENDPOINT:
        raise ZMQError(errno.EINVAL, f"inproc endpoint longer than {_MAX_ENDPOINT} bytes")
    return text


#: Where a ZAP handler binds (RFC 27).
ZAP_ENDPOINT = "inproc://zeromq.zap.01"


class InprocNames:
    """One namespace of inproc:// endpoints (a Context's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bound: "Dict[str, weakref.ref[Socket]]" = {}
        self._pending: "Dict[str, List[InprocPipe]]" = {}
        # Socket.monitor(name): the descriptor whose other end the monitored
        # socket writes its events to, for the first socket that connects.
        self._monitors: Dict[str, int] = {}
        # ... and which socket's monitor a name belongs to: taken (as
        # libzmq's monitor PAIR binds it) while that monitor runs.
        self._monitored: "Dict[str, weakref.ref[Socket]]" = {}
        # ZAP: sockets whose mechanism asks the handler at ZAP_ENDPOINT
        # (each gets a pipe to it now, or when it binds).
        self._zap_clients: "weakref.WeakSet[Socket]" = weakref.WeakSet()

    def _binder(self, name: str) -> "Socket | None":
        ref = self._bound.get(name)
        sock = ref() if ref is not None else None
        if sock is None or sock.closed:
            self._bound.pop(name, None)  # its socket closed: the name is free
            return None
        return sock

    def _monitor_holds(self, name: str) -> bool:
        ref = self._monitored.get(name)
        sock = ref() if ref is not None else None
        if sock is None or sock.closed or getattr(sock, "_monitor_name", None) != name:
            self._monitored.pop(name, None)
            fd = self._monitors.pop(name, None)
            if fd is not None:  # a stopped monitor nobody connected to
                os.close(fd)
            return False
        return True

    def bind(self, sock: "Socket", addr: Union[str, bytes]) -> None:
        """Bind `sock` to the name; EADDRINUSE if another socket has it."""
        name = _endpoint(addr)
        with self._lock:
            if self._binder(name) is not None or self._monitor_holds(name):
                raise ZMQError(errno.EADDRINUSE, f"Address already in use: {name}")
            sock._inproc_listen(name)
            self._bound[name] = weakref.ref(sock)
            waiting = self._pending.pop(name, [])
        for pipe in waiting:  # connected before the bind: adopted at sock's next step
            sock._inproc_offer(pipe, name)
        if name == ZAP_ENDPOINT:
            for client in list(self._zap_clients):
                self._zap_join(client, sock)

    def zap_client(self, sock: "Socket") -> None:
        """`sock`'s mechanism asks ZAP: join it to the handler at
        ZAP_ENDPOINT, now if one is bound (else at its bind).  Without a
        handler a PLAIN server's handshakes are refused and a CURVE
        server's admitted, as libzmq 4.3.5's."""
        with self._lock:
            if sock in self._zap_clients:
                return
            self._zap_clients.add(sock)
            handler = self._binder(ZAP_ENDPOINT)
        if handler is not None:
            self._zap_join(sock, handler)

    @staticmethod
    def _zap_join(sock: "Socket", handler: "Socket") -> None:
        if sock.closed or handler.closed:
            return
        pipe = sock._zap_connect()
        try:
            handler._inproc_offer(pipe, ZAP_ENDPOINT)
        except ZMQError as exc:
            if exc.errno != errno.ECONNREFUSED:
                raise

    def connect(self, sock: "Socket", addr: Union[str, bytes]) -> None:
        """Join `sock` to the name's socket, now or at its bind."""
        name = _endpoint(addr)
        with self._lock:
            fd = self._monitors.pop(name, None)
            if fd is not None:  # a monitor's events: this socket reads them
                sock._adopt_fd(fd, name)
                return
            pipe = sock._inproc_connect(name)
            binder = self._binder(name)
            if binder is not None:
                try:
                    binder._inproc_offer(pipe, name)
                    return
                except ZMQError as exc:
                    if exc.errno != errno.ECONNREFUSED:
                        # Not a closed binder (ENOMEM): the name stays bound;
                        # this connect fails whole.  Dropping the pipe's
                        # other end ends the connection it made.
                        del pipe
                        try:
                            sock.disconnect(addr)
                        except ZMQError:
                            pass
                        raise
                    self._bound.pop(name, None)  # closed meanwhile: wait for the next bind
            self._pending.setdefault(name, []).append(pipe)

    def unbind(self, sock: "Socket", addr: Union[str, bytes]) -> None:
        """Free the name.  As libzmq's inproc unbind, the connections
        already made through it stay (pyzmq still delivers over them)."""
        name = _endpoint(addr)
        with self._lock:
            if self._binder(name) is not sock:
                raise ZMQError(errno.ENOENT, f"No such endpoint bound: {name}")
            del self._bound[name]


    def monitor(self, sock: "Socket", addr: Union[str, bytes], fd: int) -> str:
        """Publish a monitor's event stream (the socketpair end `fd`, which
        this namespace owns from now on) at the name: the next socket that
        connects to it adopts `fd` as its connection."""
        try:
            name = _endpoint(addr)
        except ZMQError:
            os.close(fd)
            raise
        with self._lock:
            if self._binder(name) is not None:
                os.close(fd)
                raise ZMQError(errno.EADDRINUSE, f"Address already in use: {name}")
            old = self._monitors.pop(name, None)
            if old is not None:  # an earlier monitor nobody connected to
                os.close(old)
            self._monitors[name] = fd
            self._monitored[name] = weakref.ref(sock)
        return name

    def close(self) -> None:
        """The context ends: drop what waits for a bind or a connect."""
        with self._lock:
            fds = list(self._monitors.values())
            self._monitors.clear()
            self._monitored.clear()
            self._pending.clear()  # their pipes detach: connections end
            self._bound.clear()
        for fd in fds:
            os.close(fd)


# Sockets made without a Context (zmtp.Socket(type)) share this namespace.
DEFAULT_NAMES = InprocNames()
