"""``zmtp.perf``'s peer processes, both ends: the driver's side
(``Peers`` starts ``python -m zmtp.perf _peer ...`` processes, ``Peer``
reads their stdout lines without blocking past a deadline, ``expect``
waits for a line from each) and the peer's own body (``peer_main``: echo,
pull, router or sub, one line to the driver at each step).  ``CellError``
is how a run fails (timeout or error).  The ``async_*`` kinds
(``async_peer_main``) are the same bodies as coroutines on an event loop.

Layering: imports ``zmtp.perf.config``, ``links``, ``loops`` and ``aio``; imported
by the scenarios and the command line; never imports them.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Sequence

from zmtp import backend_name
from zmtp.perf.aio import AsyncSide, LoopRunner, Tally, async_drain, async_echo, async_run, async_sink, by_deadline
from zmtp.perf.config import PEER_LINGER_MS, PROBE, PROBE_EVERY_S, Impl, peer_env, warmup_count
from zmtp.perf.links import ZmqSide, open_side
from zmtp.perf.loops import echo, sink, sink_skipping_probes
from zmtp.perf.scale import big_pull, dealers, emit, many_router, raise_nofile


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

    def __init__(self, timeout_s: float, loop: str = "asyncio") -> None:
        self.timeout_s = timeout_s
        self.loop = loop  # the event loop of the async_* peers
        self._lock = threading.Lock()
        self._peers: List[Peer] = []
        self._stopped = False

    def start(self, impl: Impl, kind: str, endpoint: str, size: int, count: int, rounds: int = 1,
              curve: bool = False) -> Peer:
        """Start ``_peer kind impl endpoint size count --rounds N`` with `impl`'s environment
        (and ``--loop`` for an ``async_*`` kind; ``--curve``: its bound socket is a CURVE server,
        whose public key ends its ``ready`` line)."""
        argv = [sys.executable, "-m", "zmtp.perf", "_peer", kind, impl.name, endpoint, str(size),
                str(count), "--rounds", str(rounds), "--timeout", str(self.timeout_s)]
        if kind.startswith("async_"):
            argv += ["--loop", self.loop]
        if curve:
            argv.append("--curve")
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


# ---------------------------------------------------------------- the peer process (``_peer``)


#: the kinds of ``_peer`` (``async_*``: coroutines on the ``--loop`` event loop)
PEER_KINDS = ("echo", "pull", "router", "sub", "proxy", "async_echo", "async_pull", "async_router",
              "many_router", "dealers", "big_pull")


def peer_main(kind: str, impl: Impl, endpoint: str, size: int, count: int, timeout_s: float,
              rounds: int = 1, loop: str = "asyncio", curve: bool = False) -> int:
    """The other process of a run: echo (REP: count * rounds requests), or
    pull, router or sub (a "result" line for each round of count messages);
    their ``async_*`` forms on the event loop `loop`.  With `curve`, the
    bound socket (echo, pull, router) is a CURVE server whose key pair is
    made here: its public key (Z85) ends the ``ready`` line.  The scale
    kinds (zmtp.perf.scale): many_router (`count` peers, `rounds` round
    trips each), dealers (`count` DEALERs of this process) and big_pull
    (one message of `size` bytes)."""
    if impl.lib == "zmtp" and impl.backend:
        if backend_name() != impl.backend:
            raise RuntimeError(f"peer runs on {backend_name()}, not {impl.backend}")
    if kind.startswith("async_"):
        return async_peer_main(kind, impl, endpoint, count, timeout_s, rounds, loop)
    if kind in ("many_router", "dealers"):
        raise_nofile()
    side = open_side(impl, timeout_s)
    key = ""
    if curve:
        if not isinstance(side, ZmqSide):
            raise ValueError(f"{impl.name} has no CURVE")
        key = " " + side.curve_serve().decode()
    try:
        if kind == "echo":
            link = side.bind("rep", endpoint, lambda ep: emit(f"ready {ep}{key}"), linger=PEER_LINGER_MS)
            echo(link, count * rounds)
            emit("done")
        elif kind in ("pull", "router"):
            link = side.bind(kind, endpoint, lambda ep: emit(f"ready {ep}{key}"))
            for _ in range(rounds):
                first, last = sink(link, count)
                emit(f"result {count} {first} {last}")
        elif kind == "proxy":
            proxy_peer(side, endpoint)
        elif kind == "many_router":
            many_router(side, endpoint, count, rounds)
        elif kind == "dealers":
            dealers(side, endpoint, count, rounds, size)
        elif kind == "big_pull":
            big_pull(side, endpoint, size)
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


def proxy_peer(side: ZmqSide, endpoints: str) -> None:
    """The proxy process: ``endpoints`` is ``FRONT|BACK``; a PULL bound on
    FRONT (its endpoint on the ``ready`` line), a PUSH connected to BACK,
    and the library's own ``proxy(front, back)`` (zmtp.proxy or zmq.proxy)
    until the driver kills the process."""
    if not isinstance(side, ZmqSide):
        raise ValueError("raw sockets have no proxy")
    front_ep, _, back_ep = endpoints.partition("|")
    front = side.ctx.socket(side.zmq.PULL)
    back = side.ctx.socket(side.zmq.PUSH)
    for sock in (front, back):
        sock.linger = 0
    back.connect(back_ep)
    front.bind(front_ep)
    emit(f"ready {front.last_endpoint.decode()}")
    try:
        side.zmq.proxy(front, back)
    finally:
        front.close()
        back.close()


def async_peer_main(kind: str, impl: Impl, endpoint: str, count: int, timeout_s: float, rounds: int,
                    loop: str) -> int:
    """``async_echo`` (REP: count * rounds requests, then "done") or
    ``async_pull`` / ``async_router`` (the warm-up, ``warmup_count(count)``
    messages untimed, then a "result" line for each round of count
    messages), as a coroutine on `loop`; the whole body has `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    tally = Tally(f"{kind} peer")
    try:
        with async_run(loop, impl) as (runner, side):
            _async_peer_body(kind, runner, side, endpoint, count, rounds, deadline, tally)
    except TimeoutError as exc:  # one line for the driver's report (Peer.failure)
        print(f"TimeoutError: {exc}", file=sys.stderr)
        return 1
    return 0


def _async_peer_body(kind: str, runner: LoopRunner, side: AsyncSide, endpoint: str, count: int, rounds: int,
                     deadline: float, tally: Tally) -> None:
    """async_peer_main's work, on `runner`'s loop with `side`'s sockets; the
    "ready" line also names the loop's class (the driver checks it)."""
    if kind == "async_echo":
        sock, bound = side.bind("rep", endpoint, linger=PEER_LINGER_MS)
        emit(f"ready {bound} {runner.kind()}")
        runner.run(by_deadline(async_echo(sock, count * rounds, tally), deadline, tally))
        emit("done")
    elif kind in ("async_pull", "async_router"):
        sock, bound = side.bind(kind[len("async_"):], endpoint)
        emit(f"ready {bound} {runner.kind()}")
        recv = sock.recv_multipart if kind == "async_router" else sock.recv
        runner.run(by_deadline(async_drain(recv, warmup_count(count), tally), deadline, tally))
        for _ in range(rounds):
            first, last = runner.run(by_deadline(async_sink(recv, count, tally), deadline, tally))
            emit(f"result {count} {first} {last}")
    else:
        raise ValueError(f"unknown peer kind {kind!r}")
