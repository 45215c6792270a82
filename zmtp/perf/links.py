"""``zmtp.perf``'s connections: a ``Link`` (``send(bytes)``, ``recv()``,
``close()``) over a zmtp or pyzmq socket, a plain Python stream socket with
a 4-byte length prefix, a raw fan-out (PUB) or a pair of
``queue.SimpleQueue`` (raw inproc); and a ``Side``, which makes the links of
one thread (or two, for inproc) for one implementation.

Layering: imports ``zmtp.perf.config`` only (and zmtp or pyzmq by name, at
run time, to make sockets).  Imported by the loops, the peers, the
scenarios and the lat/thr tools; never imports them.
"""

from __future__ import annotations

import importlib
import os
import queue
import socket
import struct
import threading
import time
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Tuple

from zmtp.perf.config import Impl

#: a raw message's header: its length, 4 bytes big-endian
RAW_HEADER = struct.Struct("!I")


# ---------------------------------------------------------------- links: one send/recv interface


class Link:
    """A connection as the benchmark loops see it: ``send(bytes)``, ``recv()``, ``close()``."""

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def recv(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection (idempotent)."""


class ZmqLink(Link):
    """A zmtp or pyzmq socket; a ROUTER receives with ``recv_multipart``;
    ``copy=False`` sends and receives with pyzmq's zero-copy (Frames)."""

    def __init__(self, sock: Any, multipart: bool = False, copy: bool = True) -> None:
        self.sock = sock
        # The socket's own methods, not wrappers: one call less per message.
        self.send = sock.send if copy else partial(sock.send, copy=False)  # type: ignore[method-assign]
        recv = sock.recv_multipart if multipart else sock.recv
        self.recv = recv if copy else partial(recv, copy=False)  # type: ignore[method-assign]

    def close(self) -> None:
        if not self.sock.closed:
            self.sock.close()


class RawLink(Link):
    """A plain stream socket; each message is a 4-byte big-endian length and the bytes.

    One ``sendall`` per message (as one ``send()`` per message on the other
    columns); reads go through a 64 KiB buffered reader."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._reader = sock.makefile("rb", buffering=1 << 16)

    def send(self, data: bytes) -> None:
        self.sock.sendall(RAW_HEADER.pack(len(data)) + data)

    def recv(self) -> bytes:
        head = self._reader.read(4)
        if len(head) < 4:
            raise EOFError("raw peer closed the connection")
        (size,) = RAW_HEADER.unpack(head)
        data = self._reader.read(size) if size else b""
        if len(data) < size:
            raise EOFError("raw peer closed the connection mid-message")
        return data

    def close(self) -> None:
        self._reader.close()
        self.sock.close()


class FanOut(Link):
    """Raw PUB: every message to every connection in turn."""

    def __init__(self, links: List[RawLink]) -> None:
        self.links = links

    def send(self, data: bytes) -> None:
        for link in self.links:
            link.send(data)

    def close(self) -> None:
        for link in self.links:
            link.close()


class QueueLink(Link):
    """Raw inproc: one end of two ``queue.SimpleQueue`` (one per direction)
    shared by two threads; the bytes are passed as they are, no framing."""

    def __init__(self, outbox: "queue.SimpleQueue[bytes]", inbox: "queue.SimpleQueue[bytes]",
                 timeout: Optional[float]) -> None:
        self.send = outbox.put  # type: ignore[method-assign]
        # A timeout as the sockets have (a dead peer thread fails the run, not hangs it).
        self.recv = partial(inbox.get, True, timeout)  # type: ignore[method-assign]


# ---------------------------------------------------------------- sides: making links


class Side:
    """Makes the links of one process for one implementation; ``close()`` ends them all."""

    def bind(self, kind: str, endpoint: str, on_bound: Callable[[str], None], accept: int = 1,
             hwm0: bool = False, linger: int = 0) -> Link:
        """Bind a `kind` socket ("rep", "pull", "router", "pub"), call
        ``on_bound(actual endpoint)``, and return its link (raw: after
        accepting `accept` connections)."""
        raise NotImplementedError

    def connect(self, kind: str, endpoint: str, hwm0: bool = False, linger: int = 0) -> Link:
        """A connected `kind` link ("req", "push", "dealer", "sub")."""
        raise NotImplementedError

    def close(self) -> None:
        """Close every link and the context."""


class ZmqSide(Side):
    """zmtp or pyzmq (the same pyzmq API); sockets time out after `timeout_s`."""

    def __init__(self, impl: Impl, timeout_s: float) -> None:
        self.zmq = importlib.import_module("zmq" if impl.lib == "pyzmq" else "zmtp")
        self.copy = impl.copy
        self.timeout_ms = int(timeout_s * 1000) if timeout_s > 0 else -1
        self.ctx = self.zmq.Context()
        self.links: List[ZmqLink] = []
        # CURVE (curve_serve / curve_connect_to): options of the sockets bound / connected from then on
        self._bind_opts: List[Tuple[int, Any]] = []
        self._connect_opts: List[Tuple[int, Any]] = []

    def curve_serve(self) -> bytes:
        """Sockets bound from now on are CURVE servers with a key pair made
        here (the library's own ``curve_keypair()``); returns its public key
        (Z85).  The secret key never leaves this process."""
        public, secret = self.zmq.curve_keypair()
        self._bind_opts = [(self.zmq.CURVE_SERVER, 1), (self.zmq.CURVE_SECRETKEY, secret)]
        return public

    def curve_connect_to(self, server_public: bytes) -> None:
        """Sockets connected from now on are CURVE clients of `server_public`
        (Z85), with a key pair of their own made here."""
        public, secret = self.zmq.curve_keypair()
        self._connect_opts = [(self.zmq.CURVE_SERVERKEY, server_public), (self.zmq.CURVE_PUBLICKEY, public),
                              (self.zmq.CURVE_SECRETKEY, secret)]

    def _socket(self, kind: str, hwm0: bool, linger: int, opts: List[Tuple[int, Any]]) -> Any:
        sock = self.ctx.socket(getattr(self.zmq, kind.upper()))
        for option, value in opts:
            sock.setsockopt(option, value)
        sock.linger = linger
        sock.rcvtimeo = self.timeout_ms
        sock.sndtimeo = self.timeout_ms
        if hwm0:
            sock.sndhwm = 0
            sock.rcvhwm = 0
        if kind == "sub":
            sock.subscribe(b"")
        self.links.append(ZmqLink(sock, multipart=(kind == "router"), copy=self.copy))
        return sock

    def bind(self, kind: str, endpoint: str, on_bound: Callable[[str], None], accept: int = 1,
             hwm0: bool = False, linger: int = 0) -> Link:
        sock = self._socket(kind, hwm0, linger, self._bind_opts)
        sock.bind(endpoint)
        on_bound(sock.last_endpoint.decode())
        return self.links[-1]

    def connect(self, kind: str, endpoint: str, hwm0: bool = False, linger: int = 0) -> Link:
        self._socket(kind, hwm0, linger, self._connect_opts).connect(endpoint)
        return self.links[-1]

    def close(self) -> None:
        for link in self.links:
            link.close()
        self.ctx.term()


def raw_address(endpoint: str) -> Tuple[int, Any]:
    """(family, address) of ``tcp://HOST:PORT`` (``*`` host: all, ``*`` port: any) or ``ipc://PATH``."""
    scheme, sep, rest = endpoint.partition("://")
    if sep and scheme == "ipc" and rest:
        return socket.AF_UNIX, rest
    if sep and scheme == "tcp" and ":" in rest:
        host, _, port = rest.rpartition(":")
        host = host.strip("[]")
        host = "" if host in ("*", "") else host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return family, (host, 0 if port == "*" else int(port))
    raise ValueError(f"endpoint {endpoint!r}: use tcp://HOST:PORT or ipc://PATH")


class RawSide(Side):
    """Plain Python sockets (TCP_NODELAY on tcp); blocking with a timeout."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout = timeout_s if timeout_s > 0 else None
        self.links: List[Link] = []
        self.paths: List[str] = []
        # inproc://NAME -> (to the binder, from the binder), shared by the threads using this side
        self._inproc: Dict[str, Tuple["queue.SimpleQueue[bytes]", "queue.SimpleQueue[bytes]"]] = {}
        self._inproc_lock = threading.Lock()

    def _stream(self, sock: socket.socket) -> RawLink:
        sock.settimeout(self.timeout)
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = RawLink(sock)
        self.links.append(link)
        return link

    def bind(self, kind: str, endpoint: str, on_bound: Callable[[str], None], accept: int = 1,
             hwm0: bool = False, linger: int = 0) -> Link:
        if endpoint.startswith("inproc://"):
            pipes: Tuple["queue.SimpleQueue[bytes]", "queue.SimpleQueue[bytes]"] = (queue.SimpleQueue(),
                                                                                    queue.SimpleQueue())
            with self._inproc_lock:
                if endpoint in self._inproc:
                    raise OSError(f"{endpoint} is already bound")
                self._inproc[endpoint] = pipes
            on_bound(endpoint)
            return QueueLink(pipes[1], pipes[0], self.timeout)
        family, address = raw_address(endpoint)
        with socket.socket(family, socket.SOCK_STREAM) as listener:
            if family == socket.AF_UNIX:
                if os.path.exists(address):
                    os.unlink(address)  # a stale socket file, as libzmq does
                self.paths.append(address)
            else:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(max(accept, 8))
            listener.settimeout(self.timeout)
            on_bound(_raw_endpoint(listener, endpoint))
            links = [self._stream(listener.accept()[0]) for _ in range(accept)]
        return links[0] if kind != "pub" else FanOut(links)

    def connect(self, kind: str, endpoint: str, hwm0: bool = False, linger: int = 0) -> Link:
        if endpoint.startswith("inproc://"):
            with self._inproc_lock:
                pipes = self._inproc.get(endpoint)
            if pipes is None:
                raise ConnectionRefusedError(f"{endpoint}: nothing bound there")
            return QueueLink(pipes[0], pipes[1], self.timeout)
        family, address = raw_address(endpoint)
        deadline = time.monotonic() + (self.timeout or 1e9)
        while True:  # the peer may not listen yet (as zmq sockets retry)
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.connect(address)
                return self._stream(sock)
            except (ConnectionRefusedError, FileNotFoundError):
                sock.close()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"cannot connect to {endpoint}") from None
                time.sleep(0.01)

    def close(self) -> None:
        for link in self.links:
            link.close()
        for path in self.paths:
            try:
                os.unlink(path)
            except OSError:
                pass


def _raw_endpoint(listener: socket.socket, asked: str) -> str:
    """The endpoint a peer connects to after `listener` was bound for `asked`."""
    if listener.family == socket.AF_UNIX:
        return asked
    host, port = listener.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"tcp://{host}:{port}"


def open_side(impl: Impl, timeout_s: float) -> Side:
    """The Side for `impl` in this thread (the zmtp backend must already be chosen).
    One side is one Context: the inproc scenarios make the sockets of both
    their threads from the same side."""
    return RawSide(timeout_s) if impl.lib == "raw" else ZmqSide(impl, timeout_s)
