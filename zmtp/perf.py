"""Side-by-side performance: ``python -m zmtp.perf``.

Runs each scenario briefly with a peer in another process (in another
thread of this process for the ``inproc_*`` scenarios) and prints one
table: zmtp on io_uring, zmtp on epoll, pyzmq (libzmq) when it is
importable, and a raw Python-socket floor (plain ``socket`` with a 4-byte
length prefix per message).  Every implementation talks to a peer of the same
implementation (zmtp peers get ``ZMTP_BACKEND`` of their column; an inproc
peer thread opens its column's backend as the driver thread does).

Scenarios (``--scenario``):

* ``reqrep``: REQ -> REP echo, 64 B; p50 and p99 round trip in us.
* ``pushpull``: PUSH -> PULL, 64 B, one send() per message; msg/s.
* ``pushpull_batch``: the same with zmtp's ``send_batch`` (1000 messages a
  call); pyzmq has no batch call and sends one by one, raw sockets send 1000
  frames per ``sendall``.
* ``dealer_router``: DEALER -> ROUTER, 1 KiB; msg/s.
* ``pubsub``: PUB -> 1 SUB and PUB -> 4 SUB, 64 B, SNDHWM = RCVHWM = 0
  (lossless); msg/s per subscriber (the slowest one).
* ``inproc_reqrep``: REQ -> REP echo, 64 B, over ``inproc://``: the peer is
  another thread of this process and both sockets belong to one Context;
  p50 and p99 round trip in us.
* ``inproc_pushpull``: PUSH -> PULL, 64 B, over ``inproc://`` between two
  threads of this process (one Context); msg/s counted by the receiving thread.

The two inproc scenarios measure the transport with the GIL in the way: both
threads run Python, so every message is also a hand-off between two threads
of one interpreter (pyzmq pays it as zmtp does).  Their raw column is no
socket at all: two threads passing the bytes through ``queue.SimpleQueue``
(one queue per direction, unbounded, no framing), Python's own cost of a
thread hand-off.  ``--transport`` does not apply to them.

Throughput is counted by the receiver, from its first message to its last:
(count - 1) / elapsed.  Runs are interleaved (every implementation's run 1,
then every run 2, ...; the order rotates each run) and the table shows the
medians.  Ratio columns are oriented so that > 1 means zmtp (or io_uring)
is better.

libzmq-style tools for two terminals or two machines::

    python -m zmtp.perf lat bind tcp://*:5555 64 10000       # local_lat
    python -m zmtp.perf lat connect tcp://HOST:5555 64 10000 # remote_lat: prints latency
    python -m zmtp.perf thr bind tcp://*:5556 64 1000000     # local_thr: prints throughput
    python -m zmtp.perf thr connect tcp://HOST:5556 64 1000000

with ``--impl zmtp|zmtp-io_uring|zmtp-epoll|pyzmq|raw`` (default zmtp).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import queue
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

from zmtp import __version__, _zmtp, backend_name

__all__ = ["main"]

PROG = "python -m zmtp.perf"
IMPL_NAMES: Tuple[str, ...] = ("zmtp-io_uring", "zmtp-epoll", "pyzmq", "raw")
SCENARIOS: Tuple[str, ...] = ("reqrep", "pushpull", "pushpull_batch", "dealer_router", "pubsub",
                              "inproc_reqrep", "inproc_pushpull")
#: scenarios whose peer is a thread of this process over inproc://
INPROC_SCENARIOS: Tuple[str, ...] = ("inproc_reqrep", "inproc_pushpull")
#: what runs without --scenario: all (the inproc ones add ~1.5-3 s to a ~20 s table, no peer processes)
DEFAULT_SCENARIOS: Tuple[str, ...] = SCENARIOS
DEFAULT_SIZE: Dict[str, int] = {"reqrep": 64, "pushpull": 64, "pushpull_batch": 64, "dealer_router": 1024, "pubsub": 64,
                                "inproc_reqrep": 64, "inproc_pushpull": 64}
DEFAULT_COUNT: Dict[str, int] = {"reqrep": 10_000, "pushpull": 200_000, "pushpull_batch": 200_000,
                                 "dealer_router": 100_000, "pubsub": 50_000,
                                 "inproc_reqrep": 10_000, "inproc_pushpull": 200_000}
#: messages per send_batch() call in the pushpull_batch scenario
BATCH = 1000
DEFAULT_SUBSCRIBERS: Tuple[int, ...] = (1, 4)
DEFAULT_TIMEOUT_S = 30.0
PEER_LINGER_MS = 1000
PROBE = b"\x00probe"
PROBE_EVERY_S = 0.002
GRACE_S = 5.0
_HEADER = struct.Struct("!I")


# ---------------------------------------------------------------- implementations


@dataclass(frozen=True)
class Impl:
    """One column: a library and, for zmtp, the backend its threads use."""

    name: str
    lib: str  # "zmtp", "pyzmq" or "raw"
    backend: str = ""  # "io_uring" or "epoll" for zmtp; "" = the default choice


def impl_by_name(name: str) -> Impl:
    """``zmtp-io_uring`` -> Impl("zmtp-io_uring", "zmtp", "io_uring"); also ``zmtp``, ``pyzmq``, ``raw``."""
    if name == "zmtp":
        return Impl(name, "zmtp", "")
    if name.startswith("zmtp-") and name[5:] in ("io_uring", "epoll"):
        return Impl(name, "zmtp", name[5:])
    if name in ("pyzmq", "raw"):
        return Impl(name, name)
    raise ValueError(f"unknown implementation {name!r} (use zmtp, zmtp-io_uring, zmtp-epoll, pyzmq or raw)")


def unavailable_reason(impl: Impl) -> Optional[str]:
    """None when `impl` can run here, else why not (pyzmq missing, io_uring refused)."""
    if impl.lib == "pyzmq":
        try:
            importlib.import_module("zmq")
        except ImportError as exc:
            return f"pyzmq not importable ({exc})"
        return None
    if impl.lib == "zmtp" and impl.backend:
        usable, reason = _zmtp._probe_backend(impl.backend)
        return None if usable else f"{impl.backend} unavailable ({reason})"
    return None


def peer_env(impl: Impl) -> Dict[str, str]:
    """The environment of a peer process: ``ZMTP_BACKEND`` set for a zmtp backend column."""
    env = dict(os.environ)
    if impl.lib == "zmtp" and impl.backend:
        env["ZMTP_BACKEND"] = impl.backend
    return env


def lib_version(lib: str) -> str:
    """A short version string for the header."""
    if lib == "pyzmq":
        zmq = importlib.import_module("zmq")
        return f"pyzmq {zmq.__version__} (libzmq {zmq.zmq_version()})"
    return f"zmtp {__version__}"


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
    """A zmtp or pyzmq socket; a ROUTER receives with ``recv_multipart``."""

    def __init__(self, sock: Any, multipart: bool = False) -> None:
        self.sock = sock
        # The socket's own methods, not wrappers: one call less per message.
        self.send = sock.send  # type: ignore[method-assign]
        self.recv = sock.recv_multipart if multipart else sock.recv  # type: ignore[method-assign]

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
        self.sock.sendall(_HEADER.pack(len(data)) + data)

    def recv(self) -> bytes:
        head = self._reader.read(4)
        if len(head) < 4:
            raise EOFError("raw peer closed the connection")
        (size,) = _HEADER.unpack(head)
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
        self.timeout_ms = int(timeout_s * 1000) if timeout_s > 0 else -1
        self.ctx = self.zmq.Context()
        self.links: List[ZmqLink] = []

    def _socket(self, kind: str, hwm0: bool, linger: int) -> Any:
        sock = self.ctx.socket(getattr(self.zmq, kind.upper()))
        sock.linger = linger
        sock.rcvtimeo = self.timeout_ms
        sock.sndtimeo = self.timeout_ms
        if hwm0:
            sock.sndhwm = 0
            sock.rcvhwm = 0
        if kind == "sub":
            sock.subscribe(b"")
        self.links.append(ZmqLink(sock, multipart=(kind == "router")))
        return sock

    def bind(self, kind: str, endpoint: str, on_bound: Callable[[str], None], accept: int = 1,
             hwm0: bool = False, linger: int = 0) -> Link:
        sock = self._socket(kind, hwm0, linger)
        sock.bind(endpoint)
        on_bound(sock.last_endpoint.decode())
        return self.links[-1]

    def connect(self, kind: str, endpoint: str, hwm0: bool = False, linger: int = 0) -> Link:
        self._socket(kind, hwm0, linger).connect(endpoint)
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


def choose_backend(impl: Impl) -> None:
    """Make this thread's first zmtp wait open `impl`'s backend.

    ``_zmtp._set_backend`` sets the process-wide choice that a thread reads
    once, when it first waits (then it keeps that backend until it exits):
    call this in a fresh thread before its first zmtp call.  Threads started
    later open the same backend unless the choice changes before their first
    wait, so a thread of an inproc run calls it again itself."""
    if impl.lib == "zmtp" and impl.backend:
        _zmtp._set_backend(impl.backend)


# ---------------------------------------------------------------- the timed loops (shared by all)


def ping_pong(link: Link, payload: bytes, count: int) -> List[int]:
    """`count` round trips; each one's duration in ns."""
    send, recv, clock = link.send, link.recv, time.perf_counter_ns
    times = [0] * count
    for i in range(count):
        t0 = clock()
        send(payload)
        recv()
        times[i] = clock() - t0
    return times


def echo(link: Link, count: int) -> None:
    """Send back each of `count` messages."""
    send, recv = link.send, link.recv
    for _ in range(count):
        send(recv())


def blast(link: Link, payload: bytes, count: int) -> None:
    """Send `count` messages, one send() each."""
    send = link.send
    for _ in range(count):
        send(payload)


def blast_batched(link: Link, payload: bytes, count: int) -> None:
    """Send `count` messages BATCH at a time where the implementation can:
    zmtp's ``send_batch``, one ``sendall`` of BATCH frames on raw sockets;
    pyzmq has no batch call, so it sends one message per ``send()``."""
    sock = getattr(link, "sock", None)
    if isinstance(link, ZmqLink) and hasattr(sock, "send_batch"):
        batch, send_batch = [payload] * BATCH, sock.send_batch
        for _ in range(count // BATCH):
            send_batch(batch)
        if count % BATCH:
            send_batch(batch[: count % BATCH])
    elif isinstance(link, RawLink):
        chunk = (_HEADER.pack(len(payload)) + payload) * BATCH
        for _ in range(count // BATCH):
            link.sock.sendall(chunk)
        for _ in range(count % BATCH):
            link.send(payload)
    else:
        blast(link, payload, count)


def sink(link: Link, count: int) -> Tuple[int, int]:
    """Receive `count` messages: (ns at the first, ns at the last)."""
    recv, clock = link.recv, time.perf_counter_ns
    recv()
    first = clock()
    for _ in range(count - 1):
        recv()
    return first, clock()


def sink_skipping_probes(link: Link, count: int) -> Tuple[int, int]:
    """As sink(), but messages that start with 0x00 (probes) are not counted."""
    recv, clock = link.recv, time.perf_counter_ns
    while recv()[:1] == b"\x00":
        pass
    first = clock()
    left = count - 1
    while left:
        if recv()[:1] != b"\x00":
            left -= 1
    return first, clock()


def sized_sink(link: Link, size: int, count: int) -> Tuple[int, int]:
    """As sink(), checking every message's size (libzmq's local_thr does)."""
    recv, clock = link.recv, time.perf_counter_ns
    _check_size(len(recv()), size)
    first = clock()
    for _ in range(count - 1):
        n = len(recv())
        if n != size:
            _check_size(n, size)
    return first, clock()


def _check_size(got: int, want: int) -> None:
    if got != want:
        raise ValueError(f"message of {got} bytes received, {want} expected")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil
    return float(sorted_values[int(rank) - 1])


def rate(count: int, first_ns: int, last_ns: int) -> float:
    """Messages per second from `count` messages received between two instants."""
    return (count - 1) * 1e9 / max(1, last_ns - first_ns)


def result_rate(line: str) -> float:
    """msg/s from a receiving peer's ``result COUNT FIRST_NS LAST_NS`` line."""
    _, count, first, last = line.split()
    return rate(int(count), int(first), int(last))


# ---------------------------------------------------------------- peer processes


class CellError(Exception):
    """A run that failed: ``kind`` is "timeout" or "error"."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class Peer:
    """A peer process whose stdout is read line by line, never blocking past a deadline."""

    def __init__(self, argv: List[str], env: Dict[str, str]) -> None:
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._err, env=env)
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        self._partial = b""
        self._lines: Deque[str] = deque()
        self.eof = False

    def fileno(self) -> int:
        return self._fd

    def pump(self) -> None:
        """Read what the pipe has (call when select() says it is readable)."""
        data = os.read(self._fd, 65536)
        if not data:
            self.eof = True
            return
        *lines, self._partial = (self._partial + data).split(b"\n")
        self._lines.extend(line.decode(errors="replace") for line in lines)

    def take(self, prefix: str) -> Optional[str]:
        """The first unread line starting with `prefix`, or None."""
        for line in self._lines:
            if line.startswith(prefix):
                self._lines.remove(line)
                return line
        return None

    def failure(self) -> str:
        """Why the peer stopped: exit code and the end of its stderr."""
        try:
            code = self.proc.wait(2)
        except subprocess.TimeoutExpired:
            code = None
        self._err.seek(0)
        tail = self._err.read().decode(errors="replace").strip().splitlines()[-3:]
        return f"peer exited ({code}): " + " | ".join(tail)

    def stop(self) -> None:
        """Kill (if still running) and reap; close the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._err.close()


class Peers:
    """The peer processes of one run; once stopped, new ones are killed at once."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._peers: List[Peer] = []
        self._stopped = False

    def start(self, impl: Impl, kind: str, endpoint: str, size: int, count: int, rounds: int = 1) -> Peer:
        """Start ``_peer kind impl endpoint size count --rounds N`` with `impl`'s environment."""
        argv = [sys.executable, "-m", "zmtp.perf", "_peer", kind, impl.name, endpoint, str(size),
                str(count), "--rounds", str(rounds), "--timeout", str(self.timeout_s)]
        peer = Peer(argv, peer_env(impl))
        with self._lock:
            self._peers.append(peer)
            if self._stopped:
                peer.stop()
                raise CellError("timeout", "run abandoned")
        return peer

    def stop(self) -> None:
        """Kill and reap every peer (idempotent)."""
        with self._lock:
            self._stopped = True
            peers, self._peers = self._peers, []
        for peer in peers:
            peer.stop()


def deadline_in(seconds: float) -> float:
    """A time.monotonic() deadline `seconds` from now."""
    return time.monotonic() + seconds


def expect(peers: Sequence[Peer], prefix: str, deadline: float,
           on_idle: Optional[Callable[[], None]] = None) -> List[str]:
    """One line starting with `prefix` from each peer, in order; `on_idle` is
    called every PROBE_EVERY_S meanwhile.  CellError on timeout or exit."""
    got: Dict[int, str] = {}
    while True:
        for i, peer in enumerate(peers):
            if i not in got:
                line = peer.take(prefix)
                if line is not None:
                    got[i] = line
        pending = [p for i, p in enumerate(peers) if i not in got]
        if not pending:
            return [got[i] for i in range(len(peers))]
        for peer in pending:
            if peer.eof:
                raise CellError("error", peer.failure())
        left = deadline - time.monotonic()
        if left <= 0:
            raise CellError("timeout", f"no {prefix!r} line from {len(pending)} peer(s)")
        wait = min(left, PROBE_EVERY_S) if on_idle is not None else left
        for peer in select.select(pending, [], [], wait)[0]:
            peer.pump()
        if on_idle is not None:
            on_idle()


# ---------------------------------------------------------------- scenarios, driver side


@dataclass(frozen=True)
class Case:
    """Something run and timed: a scenario (with its subscriber count for pubsub)."""

    scenario: str
    size: int
    count: int
    subscribers: int = 0

    @property
    def label(self) -> str:
        return f"pubsub {self.subscribers} sub" if self.scenario == "pubsub" else self.scenario


@dataclass(frozen=True)
class Metric:
    """One table row's figure."""

    key: str
    title: str
    lower_is_better: bool


LATENCY_METRICS = (Metric("p50_us", "RTT p50 [us]", True), Metric("p99_us", "RTT p99 [us]", True))
THROUGHPUT = Metric("msg_s", "msg/s", False)
PER_SUB = Metric("msg_s", "msg/s per sub", False)


def metrics_of(case: Case) -> Tuple[Metric, ...]:
    """The rows a case fills."""
    if case.scenario in ("reqrep", "inproc_reqrep"):
        return LATENCY_METRICS
    return (PER_SUB,) if case.scenario == "pubsub" else (THROUGHPUT,)


@dataclass
class RunContext:
    """What a driver needs for one run: where to bind, when to give up, its peers."""

    impl: Impl
    case: Case
    bind_endpoint: str
    deadline: float
    peers: Peers


def warmup_count(count: int) -> int:
    """Round trips done before measuring."""
    return min(1000, max(10, count // 10))


def drive_reqrep(rc: RunContext, side: Side) -> Dict[str, float]:
    """REQ here, REP echo in the peer: p50/p99 round trip."""
    case, warm = rc.case, warmup_count(rc.case.count)
    peer = rc.peers.start(rc.impl, "echo", rc.bind_endpoint, case.size, warm + case.count)
    endpoint = expect([peer], "ready ", rc.deadline)[0].split()[1]
    link = side.connect("req", endpoint)
    payload = b"x" * case.size
    ping_pong(link, payload, warm)
    times = sorted(ping_pong(link, payload, case.count))
    expect([peer], "done", rc.deadline)
    return {"p50_us": percentile(times, 50) / 1000, "p99_us": percentile(times, 99) / 1000}


def drive_stream(rc: RunContext, side: Side) -> Dict[str, float]:
    """PUSH or DEALER here, PULL or ROUTER in the peer, which times what it receives."""
    case = rc.case
    sender, receiver = ("dealer", "router") if case.scenario == "dealer_router" else ("push", "pull")
    peer = rc.peers.start(rc.impl, receiver, rc.bind_endpoint, case.size, case.count)
    endpoint = expect([peer], "ready ", rc.deadline)[0].split()[1]
    send_all = blast_batched if case.scenario == "pushpull_batch" else blast
    send_all(side.connect(sender, endpoint), b"x" * case.size, case.count)
    return {"msg_s": result_rate(expect([peer], "result ", rc.deadline)[0])}


def drive_pubsub(rc: RunContext, side: Side) -> Dict[str, float]:
    """PUB here, SUBs in peers; the slowest subscriber's rate."""
    case = rc.case
    started: List[Peer] = []

    def spawn(endpoint: str) -> None:
        for _ in range(case.subscribers):
            started.append(rc.peers.start(rc.impl, "sub", endpoint, case.size, case.count))

    pub = side.bind("pub", rc.bind_endpoint, spawn, accept=case.subscribers, hwm0=True)
    probe = None if rc.impl.lib == "raw" else (lambda: pub.send(PROBE))
    expect(started, "ready", rc.deadline, on_idle=probe)  # every SUB's subscription is in
    blast(pub, b"x" * case.size, case.count)
    return {"msg_s": min(result_rate(line) for line in expect(started, "result ", rc.deadline))}


class PeerThread:
    """The other end of an inproc run: ``fn(on_bound)`` in a thread of this
    process, on the run's zmtp backend, making its socket from the driver's
    Side (so from the same Context).  ``fn`` calls ``on_bound(endpoint)``
    once its socket is bound."""

    def __init__(self, impl: Impl, fn: Callable[[Callable[[str], None]], Any]) -> None:
        self.box: Dict[str, Any] = {}
        self.bound = threading.Event()

        def target() -> None:
            try:
                choose_backend(impl)
                self.box["value"] = fn(lambda endpoint: self.bound.set())
            except BaseException as exc:  # reported by the driver
                self.box["error"] = exc
            finally:
                self.bound.set()  # a failure before bind must not keep the driver waiting

        self.thread = threading.Thread(target=target, name=f"perf-peer-{impl.name}", daemon=True)
        self.thread.start()

    def wait_bound(self, deadline: float) -> None:
        """Return once the peer's socket is bound; CellError if it failed or timed out."""
        if not self.bound.wait(max(0.0, deadline - time.monotonic())):
            raise CellError("timeout", "the peer thread did not bind")
        if "error" in self.box:
            raise _classify(self.box["error"])

    def result(self, deadline: float) -> Any:
        """fn's value, once the thread has ended (its sockets time out by themselves)."""
        self.thread.join(max(0.0, deadline - time.monotonic()) + GRACE_S)
        if self.thread.is_alive():
            raise CellError("timeout", "the peer thread did not finish")
        if "error" in self.box:
            raise _classify(self.box["error"])
        return self.box.get("value")


def drive_inproc_reqrep(rc: RunContext, side: Side) -> Dict[str, float]:
    """REQ in this thread, REP echo in another thread, one Context: p50/p99 round trip."""
    case, warm = rc.case, warmup_count(rc.case.count)

    def peer(on_bound: Callable[[str], None]) -> None:
        # linger as the tcp peer's: the last reply must not be dropped at close
        link = side.bind("rep", rc.bind_endpoint, on_bound, linger=PEER_LINGER_MS)
        try:
            echo(link, warm + case.count)
        finally:
            link.close()

    thread = PeerThread(rc.impl, peer)
    thread.wait_bound(rc.deadline)
    link = side.connect("req", rc.bind_endpoint)
    payload = b"x" * case.size
    try:
        ping_pong(link, payload, warm)
        times = sorted(ping_pong(link, payload, case.count))
    finally:
        link.close()  # a peer still waiting times out by itself
    thread.result(rc.deadline)
    return {"p50_us": percentile(times, 50) / 1000, "p99_us": percentile(times, 99) / 1000}


def drive_inproc_pushpull(rc: RunContext, side: Side) -> Dict[str, float]:
    """PUSH in this thread, PULL in another thread (one Context), which times what it receives."""
    case = rc.case

    def peer(on_bound: Callable[[str], None]) -> Tuple[int, int]:
        link = side.bind("pull", rc.bind_endpoint, on_bound)
        try:
            return sink(link, case.count)
        finally:
            link.close()

    thread = PeerThread(rc.impl, peer)
    thread.wait_bound(rc.deadline)
    link = side.connect("push", rc.bind_endpoint)
    try:
        blast(link, b"x" * case.size, case.count)
        first, last = thread.result(rc.deadline)  # closed only once the PULL has every message
    finally:
        link.close()
    return {"msg_s": rate(case.count, first, last)}


DRIVERS: Dict[str, Callable[[RunContext, Side], Dict[str, float]]] = {
    "reqrep": drive_reqrep,
    "pushpull": drive_stream,
    "pushpull_batch": drive_stream,
    "dealer_router": drive_stream,
    "pubsub": drive_pubsub,
    "inproc_reqrep": drive_inproc_reqrep,
    "inproc_pushpull": drive_inproc_pushpull,
}


def _classify(exc: BaseException) -> CellError:
    """A driver's exception as a failed cell."""
    if isinstance(exc, CellError):
        return exc
    if isinstance(exc, (socket.timeout, TimeoutError)) or type(exc).__name__ == "Again":
        return CellError("timeout", f"{type(exc).__name__}: {exc}")
    return CellError("error", f"{type(exc).__name__}: {exc}")


def run_once(impl: Impl, case: Case, bind_endpoint: str, timeout_s: float) -> Dict[str, float]:
    """One run of `case` for `impl`: the driver in a fresh thread (its own zmtp
    backend), the peers in processes; raises CellError."""
    peers = Peers(timeout_s)
    rc = RunContext(impl, case, bind_endpoint, deadline_in(timeout_s), peers)
    box: Dict[str, Any] = {}

    def target() -> None:
        try:
            choose_backend(impl)
            side = open_side(impl, timeout_s)
            try:
                box["value"] = DRIVERS[case.scenario](rc, side)
            finally:
                side.close()
        except BaseException as exc:  # reported by the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"perf-{impl.name}", daemon=True)
    thread.start()
    try:
        thread.join(timeout_s + GRACE_S)
    finally:
        peers.stop()
    if thread.is_alive():
        thread.join(timeout_s + GRACE_S)  # without its peers, its sockets fail or time out
        left = "; driver thread abandoned" if thread.is_alive() else ""
        raise CellError("timeout", f"run not finished after {timeout_s + GRACE_S:.0f} s{left}")
    if "error" in box:
        raise _classify(box["error"])
    return box["value"]


# ---------------------------------------------------------------- the peer process (``_peer``)


def emit(line: str) -> None:
    """A line to the driver."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def peer_main(kind: str, impl: Impl, endpoint: str, size: int, count: int, timeout_s: float,
              rounds: int = 1) -> int:
    """The other process of a run: echo (REP: count * rounds requests), or
    pull, router or sub (a "result" line for each round of count messages)."""
    if impl.lib == "zmtp" and impl.backend:
        if backend_name() != impl.backend:
            raise RuntimeError(f"peer runs on {backend_name()}, not {impl.backend}")
    side = open_side(impl, timeout_s)
    try:
        if kind == "echo":
            link = side.bind("rep", endpoint, lambda ep: emit(f"ready {ep}"), linger=PEER_LINGER_MS)
            echo(link, count * rounds)
            emit("done")
        elif kind in ("pull", "router"):
            link = side.bind(kind, endpoint, lambda ep: emit(f"ready {ep}"))
            for _ in range(rounds):
                first, last = sink(link, count)
                emit(f"result {count} {first} {last}")
        elif kind == "sub":
            link = side.connect("sub", endpoint, hwm0=True)
            if impl.lib != "raw":
                while link.recv() != PROBE:  # the subscription has reached the publisher
                    pass
            emit("ready")
            for _ in range(rounds):
                first, last = sink_skipping_probes(link, count)
                emit(f"result {count} {first} {last}")
        else:
            raise ValueError(f"unknown peer kind {kind!r}")
    finally:
        side.close()
    return 0


# ---------------------------------------------------------------- lat / thr (libzmq's perf tools)


def lat_main(role: str, impl: Impl, endpoint: str, size: int, count: int, timeout_s: float) -> int:
    """``bind``: local_lat (echo); ``connect``: remote_lat (prints the latency)."""
    choose_backend(impl)
    side = open_side(impl, timeout_s)
    try:
        if role == "bind":
            link = side.bind("rep", endpoint, _announce, linger=PEER_LINGER_MS)
            echo_checked(link, size, count)
            return 0
        link = side.connect("req", endpoint)
        t0 = time.perf_counter_ns()
        times = ping_pong(link, b"x" * size, count)
        print_latency(size, count, time.perf_counter_ns() - t0, sorted(times))
        return 0
    finally:
        side.close()


def print_latency(size: int, count: int, elapsed_ns: int, sorted_times: List[int]) -> None:
    """remote_lat's lines (one-way latency = round trip / 2, connection set-up
    included as libzmq does) and the round trip's p50 / p99."""
    print(f"message size: {size} [B]")
    print(f"roundtrip count: {count}")
    print(f"average latency: {elapsed_ns / 1000 / (count * 2):.3f} [us]")
    print(f"round trip p50: {percentile(sorted_times, 50) / 1000:.3f} [us], "
          f"p99: {percentile(sorted_times, 99) / 1000:.3f} [us]")


def echo_checked(link: Link, size: int, count: int) -> None:
    """echo(), checking each message's size as local_lat does."""
    send, recv = link.send, link.recv
    for _ in range(count):
        data = recv()
        _check_size(len(data), size)
        send(data)


def thr_main(role: str, impl: Impl, endpoint: str, size: int, count: int, timeout_s: float) -> int:
    """``bind``: local_thr (receives, prints the throughput); ``connect``: remote_thr (sends)."""
    choose_backend(impl)
    side = open_side(impl, timeout_s)
    try:
        if role == "bind":
            link = side.bind("pull", endpoint, _announce)
            first, last = sized_sink(link, size, count)
            print_throughput(size, count, rate(count, first, last))
            return 0
        linger = int(timeout_s * 1000) if timeout_s > 0 else -1  # until everything is written
        blast(side.connect("push", endpoint, linger=linger), b"x" * size, count)
        return 0
    finally:
        side.close()


def print_throughput(size: int, count: int, msg_s: float) -> None:
    """local_thr's lines."""
    print(f"message size: {size} [B]")
    print(f"message count: {count}")
    print(f"mean throughput: {msg_s:.0f} [msg/s]")
    print(f"mean throughput: {msg_s * size * 8 / 1e6:.3f} [Mb/s]")


def _announce(endpoint: str) -> None:
    print(f"bound to {endpoint}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the table run


@dataclass
class Plan:
    """What the table run does."""

    impls: List[Impl]
    skipped: Dict[str, str]
    cases: List[Case]
    runs: int
    transport: str
    timeout_s: float
    pin: Optional[int]


@dataclass
class Cell:
    """Every run of one case for one implementation."""

    values: List[Dict[str, float]] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)

    def median(self, key: str) -> Optional[float]:
        figures = [v[key] for v in self.values]
        return statistics.median(figures) if figures else None

    def status(self) -> str:
        """"timeout" or "error" when no run succeeded (the first failure's kind)."""
        return self.errors[0].split(":")[0] if self.errors else "-"


class ProgressLine:
    """``[ 7/24] pushpull zmtp-epoll run 2/3 ...`` on stderr, overwritten in place."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.done = 0

    def show(self, text: str) -> None:
        self.done += 1
        if self.enabled:
            width = len(str(self.total))
            sys.stderr.write(f"\r[{self.done:>{width}}/{self.total}] {text} ...\x1b[K")
            sys.stderr.flush()

    def clear(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def endpoint_for(case: Case, transport: str, tmp: str, serial: int) -> str:
    """Where a run's bound socket goes: tcp on 127.0.0.1 (any port), ipc in
    `tmp`, or a fresh inproc name for the inproc scenarios."""
    if case.scenario in INPROC_SCENARIOS:
        return f"inproc://zmtp-perf-{os.getpid()}-{serial}"
    return "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp}/{serial}"


def run_plan(plan: Plan, progress: ProgressLine) -> Dict[Tuple[str, str], Cell]:
    """Every case, run by run, every implementation within a run (order rotated each run)."""
    cells: Dict[Tuple[str, str], Cell] = {(c.label, i.name): Cell() for c in plan.cases for i in plan.impls}
    tmp = tempfile.mkdtemp(prefix="zmtp-perf-")
    serial = 0
    try:
        for case in plan.cases:
            for run in range(plan.runs):
                shift = run % len(plan.impls)
                for impl in plan.impls[shift:] + plan.impls[:shift]:
                    progress.show(f"{case.label} {impl.name} run {run + 1}/{plan.runs}")
                    serial += 1
                    endpoint = endpoint_for(case, plan.transport, tmp, serial)
                    cell = cells[(case.label, impl.name)]
                    try:
                        cell.values.append(run_once(impl, case, endpoint, plan.timeout_s))
                    except CellError as exc:
                        cell.errors.append(str(exc))
    finally:
        progress.clear()
        shutil.rmtree(tmp, ignore_errors=True)
    return cells


def zmtp_column(plan: Plan) -> Optional[str]:
    """The zmtp column the ratios use: io_uring when it ran, else epoll."""
    names = [i.name for i in plan.impls]
    for name in ("zmtp-io_uring", "zmtp-epoll", "zmtp"):
        if name in names:
            return name
    return None


RATIOS: Tuple[Tuple[str, str, str], ...] = (
    ("zmtp/pyzmq", "zmtp", "pyzmq"),
    ("uring/epoll", "zmtp-io_uring", "zmtp-epoll"),
    ("zmtp/raw", "zmtp", "raw"),
)


def ratio(metric: Metric, better: Optional[float], other: Optional[float]) -> Optional[float]:
    """> 1 when `better`'s column is better: a/b for throughput, b/a for latency."""
    if not better or not other:
        return None
    return other / better if metric.lower_is_better else better / other


def build_rows(plan: Plan, cells: Dict[Tuple[str, str], Cell]) -> List[Dict[str, Any]]:
    """One dict per table row: medians, every run, failures and ratios."""
    return [build_row(plan, cells, case, metric) for case in plan.cases for metric in metrics_of(case)]


def build_row(plan: Plan, cells: Dict[Tuple[str, str], Cell], case: Case, metric: Metric) -> Dict[str, Any]:
    """The row of `metric` for `case` (also one entry of the JSON's "rows")."""
    names = [i.name for i in plan.impls]
    row: Dict[str, Any] = {
        "case": case.label, "scenario": case.scenario, "size": case.size, "count": case.count,
        "transport": "inproc" if case.scenario in INPROC_SCENARIOS else plan.transport,
        "subscribers": case.subscribers or None, "metric": metric.key, "title": metric.title,
        "unit": "us" if metric.lower_is_better else "msg/s", "lower_is_better": metric.lower_is_better,
        "values": {}, "runs": {}, "errors": {}, "ratios": {},
    }
    for name in names:
        cell = cells[(case.label, name)]
        row["values"][name] = cell.median(metric.key)
        row["runs"][name] = [v[metric.key] for v in cell.values]
        if cell.errors:
            row["errors"][name] = cell.errors
    zcol = zmtp_column(plan)
    for title, a, b in RATIOS:
        a = zcol if a == "zmtp" else a
        if a in names and b in names:
            value = ratio(metric, row["values"][a], row["values"][b])
            row["ratios"][title] = None if value is None else round(value, 4)
    return row


def fmt_value(value: Optional[float], lower_is_better: bool, status: str) -> str:
    """A figure for the table: us with one decimal, msg/s as an integer with separators."""
    if value is None:
        return status
    return f"{value:,.1f}" if lower_is_better else f"{value:,.0f}"


def render_table(plan: Plan, rows: List[Dict[str, Any]], cells: Dict[Tuple[str, str], Cell]) -> str:
    """The table, with a header line saying what ran and footer lines saying how to read it."""
    names = [i.name for i in plan.impls]
    ratio_titles = [t for t, a, b in RATIOS if rows and t in rows[0]["ratios"]]
    head = ["case", "size", "metric"] + names + ratio_titles
    body = []
    for row in rows:
        line = [row["case"], _fmt_size(row["size"]), row["title"]]
        for name in names:
            status = cells[(row["case"], name)].status()
            line.append(fmt_value(row["values"][name], row["lower_is_better"], status))
        line += ["-" if row["ratios"][t] is None else f"{row['ratios'][t]:.2f}" for t in ratio_titles]
        body.append(line)
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    left = 3  # case, size, metric are left-aligned; figures right-aligned

    def fmt(r: List[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    out = [describe_plan(plan), fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in body]
    out += footer(plan, rows)
    return "\n".join(out)


def _fmt_size(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def describe_plan(plan: Plan) -> str:
    """The header line: versions, transport, runs, pinning."""
    libs = [lib_version("zmtp")] + ([lib_version("pyzmq")] if any(i.lib == "pyzmq" for i in plan.impls) else [])
    where = "tcp 127.0.0.1" if plan.transport == "tcp" else "ipc"
    inproc = [c for c in plan.cases if c.scenario in INPROC_SCENARIOS]
    if inproc and len(inproc) == len(plan.cases):
        where = "inproc (two threads of this process)"
    elif inproc:
        where += " (inproc_* rows: inproc, two threads of this process)"
    pin = f"pinned to CPU {plan.pin}" if plan.pin is not None else f"not pinned ({len(os.sched_getaffinity(0))} CPUs)"
    return f"{' vs '.join(libs)}; {where}; median of {plan.runs} interleaved run(s); {pin}"


def footer(plan: Plan, rows: List[Dict[str, Any]]) -> List[str]:
    """How to read the table, what was skipped and what failed."""
    zcol = zmtp_column(plan) or "zmtp"
    titles = list(rows[0]["ratios"]) if rows else []
    example = titles[0].split("/") if titles else ["a", "b"]
    lines = [
        f"ratios: > 1 means the first named is better (zmtp = {zcol}); msg/s rows: a/b; "
        f"latency rows: b/a ({example[0]}/{example[1]} = {example[1]} RTT / {example[0]} RTT).",
        "raw = plain Python sockets, 4-byte length prefix per message (ping-pong; one sendall per message).",
        "msg/s is counted by the receiver from its first message to its last; pubsub: the slowest subscriber.",
    ]
    if any(c.scenario in INPROC_SCENARIOS for c in plan.cases):
        lines.append("inproc_* rows: the peer is another thread of this process, both sockets of one Context; "
                     "both threads run Python and share the GIL.")
        if any(i.lib == "raw" for i in plan.impls):
            lines.append("raw in inproc_* rows: no socket; two threads pass the bytes through queue.SimpleQueue "
                         "(one per direction, unbounded, no framing): Python's own thread hand-off.")
    lines += [f"{name}: skipped: {why}" for name, why in plan.skipped.items()]
    for row in rows:
        if row["metric"] in ("p99_us",):
            continue  # the p50 row already listed reqrep's failures
        for name, errors in row["errors"].items():
            lines += [f"{row['case']} {name}: {e}" for e in errors]
    return lines


def plan_json(plan: Plan, rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The --json document."""
    return {
        "zmtp": __version__,
        "pyzmq": lib_version("pyzmq") if any(i.lib == "pyzmq" for i in plan.impls) else None,
        "transport": plan.transport,
        "runs": plan.runs,
        "pin": plan.pin,
        "impls": [i.name for i in plan.impls],
        "skipped": plan.skipped,
        "rows": rows,
    }


# ---------------------------------------------------------------- command line


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text}")
    return value


def _count(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("the count must be at least 2 (a rate needs two messages)")
    return value


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a size cannot be negative: {text}")
    return value


def _list(choices: Sequence[str]) -> Callable[[str], List[str]]:
    def parse(text: str) -> List[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad) or 'empty list'}: choose from {', '.join(choices)}")
        return items
    return parse


def _subscribers(text: str) -> List[int]:
    return [_positive_int(t) for t in text.split(",") if t.strip()]


def default_scenarios_text() -> str:
    """What the table runs without --scenario, for --help."""
    if DEFAULT_SCENARIOS == SCENARIOS:
        return "all"
    return "all but " + ", ".join(s for s in SCENARIOS if s not in DEFAULT_SCENARIOS)


def table_parser() -> argparse.ArgumentParser:
    """Options of the table run (no sub-command)."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="zmtp (io_uring, epoll) vs pyzmq vs raw Python sockets, side by side, peers in other processes "
        "(inproc_* scenarios: in another thread). "
        "Sub-commands: 'lat bind|connect ENDPOINT SIZE COUNT' and 'thr bind|connect ENDPOINT SIZE COUNT' "
        "(libzmq's local/remote_lat and local/remote_thr; see '%(prog)s lat --help').",
    )
    p.add_argument("--scenario", action="append", type=_list(SCENARIOS), metavar="NAME",
                   help=f"repeatable or comma list of {', '.join(SCENARIOS)} (default: {default_scenarios_text()}). "
                   "inproc_reqrep and inproc_pushpull run over inproc:// between two threads of this process "
                   "(one Context); their raw column is two threads and queue.SimpleQueue (one per direction, "
                   "unbounded, no framing), no socket")
    p.add_argument("--impl", action="append", type=_list(IMPL_NAMES + ("zmtp",)), metavar="IMPL",
                   help="columns, repeatable or comma list of zmtp-io_uring, zmtp-epoll, pyzmq, raw "
                   "(zmtp = both zmtp columns; default: all)")
    p.add_argument("--size", type=_size, help="message size in bytes for every scenario "
                   "(default: 64, dealer_router 1024)")
    p.add_argument("--count", type=_count, help="messages (round trips for reqrep) per run (default: "
                   + ", ".join(f"{k} {v}" for k, v in DEFAULT_COUNT.items()) + ")")
    p.add_argument("--runs", type=_positive_int, default=3, help="interleaved runs; medians shown (default 3)")
    p.add_argument("--transport", choices=("tcp", "ipc"), default="tcp",
                   help="default tcp on 127.0.0.1 (the inproc_* scenarios always use inproc://)")
    p.add_argument("--subscribers", type=_subscribers, default=list(DEFAULT_SUBSCRIBERS), metavar="N,N",
                   help="pubsub: subscriber counts, one row each (default 1,4)")
    p.add_argument("--pin", type=int, metavar="CPU", help="pin this process and its peers to one CPU")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help=f"seconds before a run fails as 'timeout' (default {DEFAULT_TIMEOUT_S:.0f})")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    return p


def tool_parser(name: str) -> argparse.ArgumentParser:
    """``lat`` or ``thr``."""
    what = {"lat": ("latency: bind = local_lat (echo), connect = remote_lat (measures, prints)"),
            "thr": ("throughput: bind = local_thr (receives, prints), connect = remote_thr (sends)")}[name]
    p = argparse.ArgumentParser(prog=f"{PROG} {name}", description=f"libzmq-style {what}.")
    p.add_argument("role", choices=("bind", "connect"))
    p.add_argument("endpoint", help="tcp://HOST:PORT (bind: tcp://*:PORT) or ipc://PATH")
    p.add_argument("size", type=_size, help="message size in bytes")
    p.add_argument("count", type=_count, help="round trips (lat) or messages (thr)")
    p.add_argument("--impl", default="zmtp", choices=("zmtp",) + IMPL_NAMES,
                   help="zmtp (default backend), zmtp-io_uring, zmtp-epoll, pyzmq or raw (default zmtp)")
    p.add_argument("--timeout", type=float, default=0.0,
                   help="seconds a receive or send may wait (default 0: forever)")
    return p


def peer_parser() -> argparse.ArgumentParser:
    """The internal ``_peer`` sub-command."""
    p = argparse.ArgumentParser(prog=f"{PROG} _peer", description="internal: the other process of a run")
    p.add_argument("kind", choices=("echo", "pull", "router", "sub"))
    p.add_argument("impl", choices=("zmtp",) + IMPL_NAMES)
    p.add_argument("endpoint")
    p.add_argument("size", type=_size)
    p.add_argument("count", type=_count)
    p.add_argument("--rounds", type=_positive_int, default=1)
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    return p


def make_plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Plan:
    """Check the options against this machine; parser.error() exits on a bad one."""
    wanted = [n for group in (args.impl or [list(IMPL_NAMES)]) for n in group]
    wanted = [n for n in IMPL_NAMES if n in wanted or (n.startswith("zmtp-") and "zmtp" in wanted)]
    impls, skipped = [], {}
    for name in wanted:
        why = unavailable_reason(impl_by_name(name))
        if why is None:
            impls.append(impl_by_name(name))
        else:
            skipped[name] = why
    if not impls:
        parser.error("no implementation can run here: " + "; ".join(skipped.values()))
    names = {n for group in (args.scenario or [list(DEFAULT_SCENARIOS)]) for n in group}
    cases = []
    for scenario in (s for s in SCENARIOS if s in names):
        size = DEFAULT_SIZE[scenario] if args.size is None else args.size
        count = DEFAULT_COUNT[scenario] if args.count is None else args.count
        subs = args.subscribers if scenario == "pubsub" else [0]
        cases += [Case(scenario, size, count, n) for n in subs]
    if args.timeout <= 0:
        parser.error("--timeout must be > 0")
    return Plan(impls, skipped, cases, args.runs, args.transport, args.timeout, args.pin)


def pin_to(cpu: int, parser: argparse.ArgumentParser) -> None:
    """Pin this thread (before any other starts, so all inherit it) and so the peers."""
    allowed = os.sched_getaffinity(0)
    if cpu not in allowed:
        parser.error(f"--pin {cpu}: this process may run on CPUs {sorted(allowed)}")
    os.sched_setaffinity(0, {cpu})


def table_main(argv: List[str]) -> int:
    """The side-by-side table (or JSON); exit code 1 when any run failed."""
    parser = table_parser()
    args = parser.parse_args(argv)
    if args.pin is not None:
        pin_to(args.pin, parser)
    plan = make_plan(args, parser)
    total = len(plan.cases) * plan.runs * len(plan.impls)
    progress = ProgressLine(total, sys.stderr.isatty() and not args.quiet)
    cells = run_plan(plan, progress)
    rows = build_rows(plan, cells)
    if args.json:
        print(json.dumps(plan_json(plan, rows), indent=2))
    else:
        print(render_table(plan, rows, cells))
    return 1 if any(c.errors for c in cells.values()) else 0


def tool_main(name: str, argv: List[str]) -> int:
    """``lat`` or ``thr``: a failure is one line on stderr and exit code 1."""
    parser = tool_parser(name)
    opts = parser.parse_args(argv)
    impl = impl_by_name(opts.impl)
    why = unavailable_reason(impl)
    if why is not None:
        parser.error(f"--impl {impl.name}: {why}")
    run = lat_main if name == "lat" else thr_main
    try:
        return run(opts.role, impl, opts.endpoint, opts.size, opts.count, opts.timeout)
    except Exception as exc:  # a timeout, a refused endpoint, a wrong size: say it plainly
        what = "timeout" if _classify(exc).kind == "timeout" else "error"
        print(f"{PROG} {name} {opts.role}: {what}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m zmtp.perf [options]``, ``... lat|thr bind|connect ENDPOINT SIZE COUNT``."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if args[:1] in (["lat"], ["thr"]):
            return tool_main(args[0], args[1:])
        if args[:1] == ["_peer"]:
            opts = peer_parser().parse_args(args[1:])
            return peer_main(opts.kind, impl_by_name(opts.impl), opts.endpoint, opts.size, opts.count,
                             opts.timeout, opts.rounds)
        return table_main(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
