"""``zmtp.perf``'s scenarios, driver side: a ``Case`` (scenario, size,
count, subscribers) and the ``Metric`` rows it fills, one driver per
scenario (reqrep, the streams, pubsub with peer processes; the two inproc
ones with a ``PeerThread`` of this process; the ``async_*`` ones with a
coroutine on an event loop of the driver's thread and a peer process; the
scale rows many_peers, connect_rate and big_message_memory; the C floor of
the sweep rows, ``run_c_floor``), and
``run_once``, which runs one case for one column in a fresh thread and
turns any failure into a ``CellError``.

Layering: imports ``zmtp.perf.config``, ``links``, ``loops``, ``aio`` and ``peers``;
imported by the table and the command line; never imports them.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from zmtp.perf.aio import AsyncSide, LoopRunner, Tally, async_blast, async_ping_pong, async_run, by_deadline
from zmtp.perf.config import (
    ASYNC_SCENARIOS,
    CURVE_SCENARIOS,
    GRACE_S,
    PEER_LINGER_MS,
    PEER_PROCESSES,
    PROBE,
    PROXY_SCENARIOS,
    Impl,
    choose_backend,
    fmt_size,
    warmup_count,
)
from zmtp.perf import cfloor
from zmtp.perf.links import Side, ZmqSide, open_side
from zmtp.perf.loops import (
    blast,
    blast_batched,
    connect_round_trip_close,
    echo,
    percentile,
    ping_pong,
    rate,
    result_rate,
    sink,
)
from zmtp.perf.peers import CellError, Peer, Peers, deadline_in, expect


# ---------------------------------------------------------------- scenarios, driver side


@dataclass(frozen=True)
class Case:
    """Something run and timed: a scenario (with its subscriber count for pubsub)."""

    scenario: str
    size: int
    count: int
    subscribers: int = 0
    sweep: bool = False  # a row of the --sizes sweep (pyzmq's best of copy=True/False, the C floor)
    peers: int = 0  # many_peers: the DEALERs
    note: str = ""  # why the case differs from what was asked (many_peers: fewer DEALERs than --peers)

    @property
    def label(self) -> str:
        if self.scenario == "pubsub":
            return f"pubsub {self.subscribers} sub"
        if self.sweep:
            return f"{self.scenario} {fmt_size(self.size)}"
        if self.scenario == "many_peers":
            return f"many_peers {self.peers}"
        if self.scenario == "curve_pushpull":  # one row per size (64 B and 64 KiB by default)
            return f"curve_pushpull {fmt_size(self.size)}"
        return self.scenario

    @property
    def curve(self) -> bool:
        """Whether both sides speak CURVE."""
        return self.scenario in CURVE_SCENARIOS


@dataclass(frozen=True)
class Metric:
    """One table row's figure."""

    key: str
    title: str
    lower_is_better: bool
    unit: str = ""

    @property
    def unit_name(self) -> str:
        """The figure's unit in the JSON: us for latencies, msg/s unless named."""
        return self.unit or ("us" if self.lower_is_better else "msg/s")


LATENCY_METRICS = (Metric("p50_us", "RTT p50 [us]", True), Metric("p99_us", "RTT p99 [us]", True))
ASYNC_LATENCY = (LATENCY_METRICS[0],)  # async_reqrep: the p50 row only (the figure)
THROUGHPUT = Metric("msg_s", "msg/s", False)
PER_SUB = Metric("msg_s", "msg/s per sub", False)
HANDSHAKES = Metric("hs_s", "handshakes/s", False, "handshakes/s")
GBPS = Metric("gb_s", "GB/s", False, "GB/s")
CONNECTIONS = Metric("conn_s", "connections/s", False, "connections/s")
MANY_PEERS = (Metric("served", "served (fraction)", False, "fraction"), Metric("p99_us", "RTT p99 [us]", True),
              Metric("msg_s", "round trips/s", False),
              Metric("rss_kib_per_peer", "RSS per idle peer [KiB]", True, "KiB"))
BIG_MEMORY = (Metric("peak_ratio", "peak RSS / size", True, "x size"),
              Metric("peak_mib", "peak RSS above idle [MiB]", True, "MiB"))


def metrics_of(case: Case) -> Tuple[Metric, ...]:
    """The rows a case fills."""
    if case.scenario in ("reqrep", "inproc_reqrep", "curve_reqrep"):
        return LATENCY_METRICS
    if case.scenario == "async_reqrep":
        return ASYNC_LATENCY
    if case.scenario == "curve_handshake":
        return (HANDSHAKES,)
    if case.scenario == "connect_rate":
        return (CONNECTIONS,)
    if case.scenario == "many_peers":
        return MANY_PEERS
    if case.scenario == "big_message_memory":
        return BIG_MEMORY
    if case.sweep:
        return (THROUGHPUT, GBPS)
    return (PER_SUB,) if case.scenario == "pubsub" else (THROUGHPUT,)


@dataclass
class RunContext:
    """What a driver needs for one run: where to bind, when to give up, its peers."""

    impl: Impl
    case: Case
    bind_endpoint: str
    deadline: float
    peers: Peers
    loop: str = "asyncio"  # the event loop of the async_* scenarios


def peer_endpoint(rc: RunContext, side: Side, peer: Peer) -> str:
    """The endpoint of the peer's ``ready ENDPOINT [KEY]`` line; on a CURVE
    run, the sockets `side` connects from now on are CURVE clients of KEY."""
    words = expect([peer], "ready ", rc.deadline)[0].split()
    if rc.case.curve:
        if not isinstance(side, ZmqSide) or len(words) < 3:
            raise CellError("error", f"{rc.impl.name} has no CURVE")
        side.curve_connect_to(words[2].encode())
    return words[1]


def drive_reqrep(rc: RunContext, side: Side) -> Dict[str, float]:
    """REQ here, REP echo in the peer: p50/p99 round trip."""
    case, warm = rc.case, warmup_count(rc.case.count)
    peer = rc.peers.start(rc.impl, "echo", rc.bind_endpoint, case.size, warm + case.count, curve=case.curve)
    endpoint = peer_endpoint(rc, side, peer)
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
    peer = rc.peers.start(rc.impl, receiver, rc.bind_endpoint, case.size, case.count, curve=case.curve)
    endpoint = peer_endpoint(rc, side, peer)
    send_all = blast_batched if case.scenario == "pushpull_batch" else blast
    send_all(side.connect(sender, endpoint), b"x" * case.size, case.count)
    return {"msg_s": result_rate(expect([peer], "result ", rc.deadline)[0])}


def drive_proxy(rc: RunContext, side: Side) -> Dict[str, float]:
    """PUSH here -> a proxy process (PULL frontend, PUSH backend: the
    column's proxy) -> a PULL process, which times what it receives."""
    case = rc.case
    sink_peer = rc.peers.start(rc.impl, "pull", rc.bind_endpoint, case.size, case.count)
    sink_ep = expect([sink_peer], "ready ", rc.deadline)[0].split()[1]
    front = "tcp://127.0.0.1:*" if rc.bind_endpoint.startswith("tcp://") else rc.bind_endpoint + "-front"
    proxy_peer = rc.peers.start(rc.impl, "proxy", f"{front}|{sink_ep}", case.size, case.count)
    front_ep = expect([proxy_peer], "ready ", rc.deadline)[0].split()[1]
    blast(side.connect("push", front_ep), b"x" * case.size, case.count)
    return {"msg_s": result_rate(expect([sink_peer], "result ", rc.deadline)[0])}


def drive_handshakes(rc: RunContext, side: Side) -> Dict[str, float]:
    """Handshakes per second (curve_handshake: CURVE; connect_rate: NULL,
    as conn_s): a REQ connects to the peer's REP, makes one round trip and
    closes, again and again (after a warm-up); the rate over the counted
    ones, connection set-up and close included."""
    case, warm = rc.case, warmup_count(rc.case.count)
    peer = rc.peers.start(rc.impl, "echo", rc.bind_endpoint, case.size, warm + case.count, curve=case.curve)
    endpoint = peer_endpoint(rc, side, peer)
    payload = b"x" * case.size
    connect_round_trip_close(side, endpoint, payload, warm)
    t0 = time.perf_counter_ns()
    connect_round_trip_close(side, endpoint, payload, case.count)
    elapsed = time.perf_counter_ns() - t0
    expect([peer], "done", rc.deadline)
    key = "conn_s" if case.scenario == "connect_rate" else "hs_s"
    return {key: case.count * 1e9 / max(1, elapsed)}


def drive_big_memory(rc: RunContext, side: Side) -> Dict[str, float]:
    """One message of the case's size to a PULL peer, which reports its peak
    RSS above its idle RSS: as a ratio to the size and in MiB."""
    case = rc.case
    peer = rc.peers.start(rc.impl, "big_pull", rc.bind_endpoint, case.size, 1)
    endpoint = expect([peer], "ready ", rc.deadline)[0].split()[1]
    side.connect("push", endpoint, linger=PEER_LINGER_MS).send(b"x" * case.size)
    _, size, idle, peak, reset = expect([peer], "result ", rc.deadline)[0].split()
    if reset != "1":
        raise CellError("error", "the peer could not reset its peak RSS (/proc/self/clear_refs)")
    above = max(0, int(peak) - int(idle)) * 1024
    return {"peak_ratio": above / int(size), "peak_mib": above / (1 << 20)}


def drive_many_peers(rc: RunContext, side: Side) -> Dict[str, float]:
    """A ROUTER peer process and PEER_PROCESSES client processes sharing the
    case's DEALERs: all served, p99 round trip, the ROUTER's round trips/s and
    its RSS per idle peer (every peer connected, before the round trips)."""
    case = rc.case
    router = rc.peers.start(rc.impl, "many_router", rc.bind_endpoint, case.size, case.peers, rounds=case.count)
    endpoint = expect([router], "ready ", rc.deadline)[0].split()[1]
    procs = min(PEER_PROCESSES, case.peers)
    shares = [case.peers // procs + (i < case.peers % procs) for i in range(procs)]
    clients = [rc.peers.start(rc.impl, "dealers", endpoint, case.size, n, rounds=case.count) for n in shares]
    _, base, idle = expect([router], "idle ", rc.deadline)[0].split()
    expect(clients, "connected", rc.deadline)  # every DEALER has its "go" (a timeout here says where it stuck)
    rtt_s = result_rate(expect([router], "result ", rc.deadline)[0])
    times = sorted(int(t) for line in expect(clients, "times ", rc.deadline) for t in line[6:].split(",") if t)
    served = sum(int(line.split()[1]) for line in expect(clients, "served ", rc.deadline))
    return {"served": served / (case.peers * case.count), "p99_us": percentile(times, 99) / 1000,
            "msg_s": rtt_s, "rss_kib_per_peer": max(0, int(idle) - int(base)) / case.peers}


def run_c_floor(case: Case, bind_endpoint: str, timeout_s: float) -> Dict[str, float]:
    """The C floor's run of a sweep case (benchmarks/c_stream.c: stream or ping-pong)."""
    try:
        return cfloor.run("pingpong" if case.scenario == "reqrep" else "stream", bind_endpoint, case.size,
                          case.count, timeout_s)
    except subprocess.TimeoutExpired:
        raise CellError("timeout", f"c_stream not finished after {timeout_s:.0f} s") from None
    except (RuntimeError, ValueError, OSError) as exc:
        raise CellError("error", str(exc)) from None


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
            raise classify(self.box["error"])

    def result(self, deadline: float) -> Any:
        """fn's value, once the thread has ended (its sockets time out by themselves)."""
        self.thread.join(max(0.0, deadline - time.monotonic()) + GRACE_S)
        if self.thread.is_alive():
            raise CellError("timeout", "the peer thread did not finish")
        if "error" in self.box:
            raise classify(self.box["error"])
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


def drive_async_reqrep(rc: RunContext) -> Dict[str, float]:
    """An async REQ here (a coroutine on this thread's loop), an async REP
    echo in the peer process: p50/p99 round trip, after a warm-up."""
    case, warm = rc.case, warmup_count(rc.case.count)
    peer = rc.peers.start(rc.impl, "async_echo", rc.bind_endpoint, case.size, warm + case.count)
    endpoint = async_peer_ready(rc, peer)
    payload, tally = b"x" * case.size, Tally("async REQ")

    async def measure(side: AsyncSide, runner: LoopRunner) -> List[int]:
        check_loop(rc, "this side", runner.kind())
        req = side.connect("req", endpoint)
        await async_ping_pong(req, payload, warm, tally, "warm-up round trips")
        return await async_ping_pong(req, payload, case.count, tally)

    times = sorted(in_loop(rc, measure, tally))
    expect_or_explain(peer, "done", rc.deadline)
    return {"p50_us": percentile(times, 50) / 1000, "p99_us": percentile(times, 99) / 1000}


def drive_async_stream(rc: RunContext) -> Dict[str, float]:
    """An async PUSH or DEALER here sends the warm-up and then the counted
    messages, awaiting each send; the peer's async PULL or ROUTER times the
    counted ones."""
    case = rc.case
    sender, receiver = ("dealer", "router") if case.scenario == "async_dealer_router" else ("push", "pull")
    peer = rc.peers.start(rc.impl, f"async_{receiver}", rc.bind_endpoint, case.size, case.count)
    endpoint = async_peer_ready(rc, peer)
    payload, tally = b"x" * case.size, Tally(f"async {sender.upper()}")

    async def send_all(side: AsyncSide, runner: LoopRunner) -> None:
        check_loop(rc, "this side", runner.kind())
        await async_blast(side.connect(sender, endpoint), payload, warmup_count(case.count) + case.count, tally)

    # the peer's line is awaited with the sockets still open: the last messages are still on their way
    return in_loop(rc, send_all, tally,
                   lambda: {"msg_s": result_rate(expect_or_explain(peer, "result ", rc.deadline))})


def async_peer_ready(rc: RunContext, peer: Peer) -> str:
    """The endpoint from an async peer's ``ready ENDPOINT LOOP`` line, once its loop is checked."""
    _, endpoint, loop_kind = expect([peer], "ready ", rc.deadline)[0].split()
    check_loop(rc, "the peer", loop_kind)
    return endpoint


def check_loop(rc: RunContext, who: str, loop_kind: str) -> None:
    """CellError unless `loop_kind` (LoopRunner.kind()) is the run's loop: uvloop's, or asyncio's own."""
    if loop_kind.split(".")[0] != rc.loop:
        raise CellError("error", f"{who} runs on {loop_kind}, not on the {rc.loop} loop")


def expect_or_explain(peer: Peer, prefix: str, deadline: float) -> str:
    """expect() of one peer's line; on a timeout, the peer's own reason too
    (an async peer's deadline is a moment after the driver's: it then exits
    saying what it had received)."""
    try:
        return expect([peer], prefix, deadline)[0]
    except CellError as exc:
        if exc.kind != "timeout":
            raise
        raise CellError("timeout", f"{exc.detail}; {peer.failure()}") from None


def in_loop(rc: RunContext, body: Callable[[AsyncSide, LoopRunner], Any], tally: Tally,
            then: Optional[Callable[[], Any]] = None) -> Any:
    """``body(side, runner)`` as a coroutine on a new event loop of this thread
    (``rc.loop``), within the run's deadline; then ``then()`` (outside the
    loop, its sockets still open), whose value is returned if given; the
    sockets are closed and the loop ended in any case."""
    with async_run(rc.loop, rc.impl) as (runner, side):
        value = runner.run(by_deadline(body(side, runner), rc.deadline, tally))
        return value if then is None else then()


ASYNC_DRIVERS: Dict[str, Callable[[RunContext], Dict[str, float]]] = {
    "async_reqrep": drive_async_reqrep,
    "async_pushpull": drive_async_stream,
    "async_dealer_router": drive_async_stream,
}


DRIVERS: Dict[str, Callable[[RunContext, Side], Dict[str, float]]] = {
    "reqrep": drive_reqrep,
    "pushpull": drive_stream,
    "pushpull_batch": drive_stream,
    "dealer_router": drive_stream,
    "pubsub": drive_pubsub,
    "inproc_reqrep": drive_inproc_reqrep,
    "inproc_pushpull": drive_inproc_pushpull,
    "curve_reqrep": drive_reqrep,
    "curve_pushpull": drive_stream,
    "curve_handshake": drive_handshakes,
    "proxy": drive_proxy,
    "connect_rate": drive_handshakes,
    "many_peers": drive_many_peers,
    "big_message_memory": drive_big_memory,
}


def classify(exc: BaseException) -> CellError:
    """A driver's exception as a failed cell."""
    if isinstance(exc, CellError):
        return exc
    if isinstance(exc, (socket.timeout, TimeoutError)) or type(exc).__name__ == "Again":
        return CellError("timeout", f"{type(exc).__name__}: {exc}")
    return CellError("error", f"{type(exc).__name__}: {exc}")


def run_once(impl: Impl, case: Case, bind_endpoint: str, timeout_s: float,
             loop: str = "asyncio") -> Dict[str, float]:
    """One run of `case` for `impl`: the driver in a fresh thread (its own zmtp
    backend; for an async_* case, its own event loop `loop`), the peers in
    processes; raises CellError."""
    peers = Peers(timeout_s, loop)
    rc = RunContext(impl, case, bind_endpoint, deadline_in(timeout_s), peers, loop)
    box: Dict[str, Any] = {}

    if case.curve and impl.lib == "raw":
        raise CellError("error", "raw sockets have no CURVE")
    if case.scenario in PROXY_SCENARIOS and impl.lib == "raw":
        raise CellError("error", "raw sockets have no proxy")
    if impl.lib == "c":
        if not case.sweep:
            raise CellError("error", "the C floor runs the sweep rows only")
        return with_gbps(case, run_c_floor(case, bind_endpoint, timeout_s))

    def target() -> None:
        try:
            choose_backend(impl)
            if case.scenario in ASYNC_SCENARIOS:
                box["value"] = ASYNC_DRIVERS[case.scenario](rc)
                return
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
        raise classify(box["error"])
    return with_gbps(case, box["value"])


def with_gbps(case: Case, value: Dict[str, float]) -> Dict[str, float]:
    """A sweep stream's figures with GB/s (msg/s * size / 1e9) added."""
    if case.sweep and "msg_s" in value:
        value["gb_s"] = value["msg_s"] * case.size / 1e9
    return value
