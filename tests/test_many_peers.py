"""A socket with thousands of peers: a blocking call wakes for any of them.

Issue 14, defect 4: a blocking call watched at most 1024 descriptors (4096
in the progress thread), so a PULL with more peers slept through a message
from a peer past the cap until RCVTIMEO ran out, and the socket's mailbox,
watched last, lost inproc wake-ups too.

Each case connects N_PEERS raw peers to one zmtp PULL (python sockets in
this process that do the ZMTP 3.1 NULL handshake by hand: greeting and READY
with Socket-Type PUSH, then one frame when asked), waits until zmtp has
finished every handshake (monitor events), then checks that a blocking
recv() (RCVTIMEO 30 s) returns a message sent while it waits by peers
across the range, an inproc message from another thread, and finally a
term() from another thread.  The wake-up times are printed (the issue's
target is 100 ms); the assertion is only a loaded machine's bound, far
below RCVTIMEO: enough to prove that the message, not the timeout, woke the
call.
"""

from __future__ import annotations

import random
import resource
import shutil
import socket
import tempfile
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List

import pytest

import zmtp
from zmtp import _zmtp

from helpers import TIMEOUT_MS, connect_to, psock, wait_for, zsock

N_PEERS = 5000
#: both ends of every peer's connection live in this process
FDS_NEEDED = 2 * N_PEERS + 512
#: the blocking recv()'s timeout: far above any wake-up we accept
RCVTIMEO_MS = 30000
#: a wake-up slower than this is a failure even on a loaded machine (the
#: target is 100 ms; this bound only has to tell a wake from RCVTIMEO)
WAKE_BOUND_S = 5.0
#: peers connected before waiting for zmtp to accept them: the listen
#: backlog is 128, and a tcp SYN dropped on a full queue is retried after 1 s
BATCH = 100

HELLO = _zmtp.encode_greeting() + _zmtp.encode_ready({"Socket-Type": "PUSH"})


@pytest.fixture
def nofile() -> Iterator[None]:
    """RLIMIT_NOFILE's soft limit raised to the hard one for the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FDS_NEEDED:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {FDS_NEEDED} descriptors needed for {N_PEERS} peers")
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 2 * FDS_NEEDED)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def endpoint_dir() -> Iterator[str]:
    """A short directory for ipc endpoints (sun_path holds 108 bytes)."""
    d = tempfile.mkdtemp(prefix="zmpeers")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def connect_peers(pull: Any, endpoint: str, n: int, hello: Any = HELLO) -> List[socket.socket]:
    """n raw peers that sent their greeting and READY (`hello`, or hello[i]
    for peer i when a list) to `pull`, all handshakes done on zmtp's side
    (counted by a monitor)."""
    mon = pull.get_monitor_socket(zmtp.EVENT_HANDSHAKE_SUCCEEDED)
    mon.rcvtimeo = RCVTIMEO_MS
    peers: List[socket.socket] = []
    try:
        while len(peers) < n:
            for _ in range(min(BATCH, n - len(peers))):
                s = connect_to(endpoint)
                s.sendall(hello[len(peers)] if isinstance(hello, list) else hello)
                peers.append(s)
            # The progress thread accepts while nobody calls on the PULL.
            wait_for(lambda: pull.stats()["accepted"] >= len(peers), 30, f"zmtp to accept {len(peers)} peers")
        done = 0
        deadline = time.monotonic() + 60
        while done < n:
            assert time.monotonic() < deadline, f"only {done} of {n} handshakes done"
            mon.recv_multipart()
            done += 1
        assert pull.stats()["monitor_dropped"] == 0
    except BaseException:
        for s in peers:
            s.close()
        raise
    finally:
        mon.close()
    return peers


def timed_recv(pull: Any, spawn: Callable[..., Any], act: Callable[[], None]) -> tuple:
    """(message, seconds from act() to the return of pull.recv()), act()
    running in another thread once the recv() is waiting."""
    when: Dict[str, float] = {}

    def later() -> None:
        wait_for(pull._in_use, 10, "the recv() to start")
        # Give the call time to reach its wait: the case under test (a
        # message that comes earlier is taken by the call's own step).
        time.sleep(0.2)
        when["t"] = time.monotonic()
        act()

    task = spawn(later)
    got = pull.recv()
    took = time.monotonic() - when["t"]
    task.result()
    return got, took


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_blocking_recv_wakes_for_any_of_5000_peers(backend, transport, ctx, spawn, nofile, endpoint_dir):
    pull = ctx.socket(zmtp.PULL)
    pull.rcvtimeo = RCVTIMEO_MS
    pull.linger = 0
    if transport == "tcp":
        pull.bind("tcp://127.0.0.1:*")
    else:
        pull.bind(f"ipc://{endpoint_dir}/pull")
    endpoint = pull.last_endpoint.decode()
    inproc = f"inproc://many-peers-{uuid.uuid4().hex}"
    pull.bind(inproc)
    t0 = time.monotonic()
    peers = connect_peers(pull, endpoint, N_PEERS)
    setup_s = time.monotonic() - t0
    try:
        chosen = [0, 1100, N_PEERS // 2, N_PEERS - 1] + random.Random(14).sample(range(N_PEERS), 3)
        times = {}
        for i in chosen:
            payload = b"from peer %d" % i
            got, took = timed_recv(pull, spawn, lambda: peers[i].sendall(_zmtp.encode_frame(payload)))
            assert got == payload
            assert took < WAKE_BOUND_S, f"peer {i}: woke after {took:.3f} s"
            times[f"peer {i}"] = took

        # An inproc peer's message wakes the call (the mailbox is watched).
        push = ctx.socket(zmtp.PUSH)
        push.linger = 0
        push.connect(inproc)
        got, took = timed_recv(pull, spawn, lambda: push.send(b"inproc"))
        assert got == b"inproc"
        assert took < WAKE_BOUND_S, f"inproc: woke after {took:.3f} s"
        times["inproc"] = took

        # term() from another thread wakes the blocked call.
        with pytest.raises(zmtp.ContextTerminated):
            timed_recv(pull, spawn, ctx.term)
        print(f"\n{backend} {transport}: {N_PEERS} handshakes in {setup_s:.1f} s; wake-up ms: "
              + ", ".join(f"{k} {v * 1000:.1f}" for k, v in times.items()))
    finally:
        for s in peers:
            s.close()


# ---------------------------------------------------------------------------
# Issue 19: the per-call cost is flat in the number of connected peers.  A
# step reads only the connections the socket's readiness set reports, and a
# blocking wait watches that set instead of every connection (engine.c,
# "The readiness set"; docs/architecture.md "Many peers").
# ---------------------------------------------------------------------------

#: round trips measured per case (syscall counts are averaged over them)
ROUNDS = 200
#: peers for the "every peer served" cases: thousands, yet a few seconds
MANY = 2000


def bind_endpoint(sock: Any, transport: str, directory: str, name: str) -> str:
    """Bind `sock` to a fresh tcp port or an ipc path in `directory`."""
    if transport == "tcp":
        sock.bind("tcp://127.0.0.1:*")
    else:
        sock.bind(f"ipc://{directory}/{name}")
    return sock.last_endpoint.decode()


def io_per_request(transport: str, ctx: Any, directory: str, idle: int) -> Dict[str, float]:
    """zmtp.io_stats() per request of a zmtp ROUTER echoing ROUNDS requests
    of one pyzmq DEALER while `idle` other pyzmq DEALERs are connected."""
    import zmq

    zctx = zmq.Context()  # its own: MAX_SOCKETS counts from its first socket
    zctx.set(zmq.MAX_SOCKETS, idle + 64)
    try:
        return _io_per_request(transport, ctx, zctx, directory, idle)
    finally:
        zctx.destroy(linger=0)


def _io_per_request(transport: str, ctx: Any, zctx: Any, directory: str, idle: int) -> Dict[str, float]:
    """io_per_request's body, on the pyzmq Context `zctx`."""
    import zmq

    router = zsock(ctx, zmtp.ROUTER, linger=0)
    router.backlog = idle + 100  # all connect at once: no SYN dropped and retried seconds later
    endpoint = bind_endpoint(router, transport, directory, f"r{idle}")
    peers = [psock(zctx, zmq.DEALER) for _ in range(idle)]
    for d in peers:
        d.connect(endpoint)
        d.send(b"hello")
    router.rcvtimeo = 60_000  # a loaded machine: 1 000 handshakes may leave a gap of seconds
    for _ in range(idle):  # every idle peer's handshake done and heard
        router.recv_multipart()
    router.rcvtimeo = TIMEOUT_MS
    active = psock(zctx, zmq.DEALER)
    active.connect(endpoint)
    active.send(b"warm-up")
    router.send_multipart(router.recv_multipart())
    assert active.recv() == b"warm-up"
    before = _zmtp.io_stats()
    for i in range(ROUNDS):
        active.send(b"%d" % i)
        router.send_multipart(router.recv_multipart())
        assert active.recv() == b"%d" % i
    after = _zmtp.io_stats()
    router.close()
    for d in peers + [active]:
        d.close()
    per = {k: (after[k] - before[k]) / ROUNDS for k in before}
    per["syscalls"] = sum(per[k] for k in ("recv", "epoll_ctl", "epoll_wait", "io_uring_enter"))
    return per


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_syscalls_per_request_flat_in_idle_peers(backend, transport, ctx, nofile, endpoint_dir):
    """10 and 1 000 idle peers: the recv calls, and the syscalls of reading
    and waiting, per request within 2x (they were about 2 per idle peer)."""
    pytest.importorskip("zmq")
    few = io_per_request(transport, ctx, endpoint_dir, 10)
    many = io_per_request(transport, ctx, endpoint_dir, 1000)
    print(f"\n{backend} {transport} per request: 10 idle {few}; 1000 idle {many}")
    assert many["recv"] <= 2 * few["recv"] + 2, (few, many)
    assert many["syscalls"] <= 2 * few["syscalls"] + 4, (few, many)


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_zmtp_router_serves_every_one_of_thousands_of_pyzmq_dealers(backend, transport, ctx, zctx, nofile,
                                                                   endpoint_dir):
    """MANY pyzmq DEALERs each make a request at once; the zmtp ROUTER
    answers each, and each DEALER gets its own reply."""
    import zmq

    zctx.set(zmq.MAX_SOCKETS, MANY + 64)
    router = zsock(ctx, zmtp.ROUTER, linger=0, rcvhwm=0, sndhwm=0)
    endpoint = bind_endpoint(router, transport, endpoint_dir, "router")
    dealers = [psock(zctx, zmq.DEALER) for _ in range(MANY)]
    for i, d in enumerate(dealers):
        d.connect(endpoint)
        d.send(b"request %d" % i)
        if (i + 1) % BATCH == 0:  # within the listen backlog (see BATCH)
            wait_for(lambda: router.stats()["accepted"] >= i + 1, 30, f"zmtp to accept {i + 1} peers")
    seen = set()
    for _ in range(MANY):
        rid, body = router.recv_multipart()
        seen.add(body)
        router.send_multipart([rid, b"reply to " + body])
    assert len(seen) == MANY
    for i, d in enumerate(dealers):
        assert d.recv() == b"reply to request %d" % i


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_pyzmq_router_serves_every_one_of_many_zmtp_dealers(backend, transport, ctx, zctx, nofile, endpoint_dir):
    """The other way round: a pyzmq ROUTER and many zmtp DEALERs of one
    Context (each DEALER is a socket with one connection)."""
    import zmq

    n = MANY // 4
    router = psock(zctx, zmq.ROUTER)
    endpoint = bind_endpoint(router, transport, endpoint_dir, "prouter")
    dealers = [zsock(ctx, zmtp.DEALER, linger=0) for _ in range(n)]
    for i, d in enumerate(dealers):
        d.connect(endpoint)
        d.send(b"request %d" % i)
    for _ in range(n):
        rid, body = router.recv_multipart()
        router.send_multipart([rid, b"reply to " + body])
    for i, d in enumerate(dealers):
        assert d.recv() == b"reply to request %d" % i


PUSH_HELLO = HELLO
DEALER_HELLO = _zmtp.encode_greeting() + _zmtp.encode_ready({"Socket-Type": "DEALER"})


@pytest.mark.parametrize("kind", ["PULL", "ROUTER"])
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_fair_queue_across_many_ready_peers(backend, transport, kind, ctx, nofile, endpoint_dir):
    """300 peers each send 20 messages with their handshake, so that all are
    read before the application's first recv: the first 300 messages
    received come one from each peer (fair-queue across the ready peers),
    and every message arrives."""
    n, each = 300, 20
    sock = zsock(ctx, getattr(zmtp, kind), linger=0)
    endpoint = bind_endpoint(sock, transport, endpoint_dir, "fair")
    hello = PUSH_HELLO if kind == "PULL" else DEALER_HELLO
    peers = [b"peer %d" % i for i in range(n)]
    burst = [hello + b"".join(_zmtp.encode_frame(p) for _ in range(each)) for p in peers]
    raw = connect_peers(sock, endpoint, n, burst)
    try:
        got = [sock.recv_multipart()[-1] for _ in range(n)]
        assert sorted(got) == sorted(peers), "the first round is not one message from each peer"
        rest = [sock.recv_multipart()[-1] for _ in range(n * (each - 1))]
        assert all(rest.count(p) == each - 1 for p in peers)
    finally:
        for s in raw:
            s.close()


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_asyncio_router_with_many_peers(backend, transport, zctx, endpoint_dir):
    """zmtp.asyncio's ROUTER (Socket.fileno()'s loop set watches the
    readiness set's descriptor once 16 peers are in traffic) answers
    several rounds of round trips, one at a time, from 64 pyzmq DEALERs."""
    import asyncio

    import zmq

    import zmtp.asyncio

    n, rounds = 64, 3
    actx = zmtp.asyncio.Context()
    router = actx.socket(zmtp.ROUTER)
    router.linger = 0
    try:
        endpoint = bind_endpoint(router, transport, endpoint_dir, "aio")
        dealers = [psock(zctx, zmq.DEALER) for _ in range(n)]
        for d in dealers:
            d.connect(endpoint)

        def clients(r: int) -> None:
            # One round trip at a time: the ROUTER waits on its fileno()
            # for each request (the case under test).
            for i, d in enumerate(dealers):
                d.send(b"%d.%d" % (r, i))
                assert d.recv() == b"re %d.%d" % (r, i)

        async def serve(r: int) -> None:
            done = asyncio.get_running_loop().run_in_executor(None, clients, r)
            for _ in range(n):
                rid, body = await router.recv_multipart()
                await router.send_multipart([rid, b"re " + body])
            await done

        for r in range(rounds):
            asyncio.run(asyncio.wait_for(serve(r), 30))
    finally:
        router.close()
        actx.term()


def test_heartbeats_reach_quiet_peers_in_the_readiness_set(backend, ctx, spawn, nofile, endpoint_dir):
    """A step skips the quiet connections of the readiness set, but not
    their timers: a zmtp ROUTER with HEARTBEAT_IVL 100 ms PINGs each of 40
    idle raw DEALER peers, while nobody calls on it (the progress thread
    steps it) and while its owner blocks in recv()."""
    n = 40
    # The raw peers never answer: a long HEARTBEAT_TIMEOUT keeps them.
    router = zsock(ctx, zmtp.ROUTER, linger=0, heartbeat_ivl=100, heartbeat_timeout=600000)
    endpoint = bind_endpoint(router, "tcp", endpoint_dir, "hb")
    peers = connect_peers(router, endpoint, n, DEALER_HELLO)
    try:
        for phase in ("progress thread", "blocking recv"):
            task = None
            if phase == "blocking recv":
                router.rcvtimeo = 30000
                task = spawn(router.recv_multipart)
                wait_for(router._in_use, 10, "the recv() to start")
            for i, s in enumerate(peers):
                got = b""
                deadline = time.monotonic() + 10
                while b"\x04PING" not in got:
                    assert time.monotonic() < deadline, f"{phase}: peer {i} got no PING"
                    s.settimeout(max(0.01, deadline - time.monotonic()))
                    got = got[-8:] + s.recv(65536)
            if task is not None:
                # The PINGs kept coming while the call blocked; end it.
                peers[0].sendall(_zmtp.encode_frame(b"bye"))
                assert task.result()[-1] == b"bye"
        assert router.stats()["disconnected"] == 0
    finally:
        for s in peers:
            s.close()


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_connections_visited_per_request_flat_in_idle_peers(backend, transport, ctx, nofile, endpoint_dir):
    """The steps of a zmtp ROUTER visit the connections with something to
    do (reported by the readiness set, output queued, a timer due), not
    every connected one: io_stats()'s conn_visits per request with 1 000
    idle peers within 2x of 10 (a step walked all 1 000 before)."""
    pytest.importorskip("zmq")
    few = io_per_request(transport, ctx, endpoint_dir, 10)
    many = io_per_request(transport, ctx, endpoint_dir, 1000)
    print(f"\n{backend} {transport} connections visited per request: 10 idle {few['conn_visits']}; "
          f"1000 idle {many['conn_visits']}")
    assert many["conn_visits"] <= 2 * few["conn_visits"] + 2, (few, many)


@pytest.mark.parametrize("router_impl", ["zmtp", "pyzmq"])
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_many_zmtp_dealers_round_trip_in_turn(backend, transport, router_impl, ctx, zctx, nofile, endpoint_dir):
    """The many_peers scenario in small: 400 zmtp DEALERs of one Context,
    each making one round trip in turn, three rounds, against a zmtp or a
    pyzmq ROUTER; between its turns a DEALER is idle long enough for the
    progress thread to step it and park it, and its next call takes it
    back (zmtp's ROUTER: every request also leaves the readiness set's
    quiet connections alone)."""
    import threading

    import zmq

    n, rounds = 400, 3
    if router_impl == "zmtp":
        router = zsock(ctx, zmtp.ROUTER, linger=0)
    else:
        zctx.set(zmq.MAX_SOCKETS, n + 64)
        router = psock(zctx, zmq.ROUTER)
    endpoint = bind_endpoint(router, transport, endpoint_dir, "turns")
    dealers = [zsock(ctx, zmtp.DEALER, linger=0) for _ in range(n)]
    for d in dealers:
        d.connect(endpoint)
    served: List[int] = []

    def echo() -> None:
        for _ in range(n * (rounds + 1)):
            router.send_multipart(router.recv_multipart())
        served.append(1)

    server = threading.Thread(target=echo, daemon=True)
    server.start()
    for d in dealers:  # every one connected and heard before the rounds
        d.send(b"hello")
    for d in dealers:
        assert d.recv() == b"hello"
    for r in range(rounds):
        for i, d in enumerate(dealers):
            d.send(b"%d.%d" % (r, i))
            assert d.recv() == b"%d.%d" % (r, i)
    server.join(30)
    assert served == [1]


def test_progress_thread_leaves_idle_sockets_parked(backend, ctx, zctx, nofile):
    """400 idle zmtp DEALERs of one Context and one more making round trips
    with a pyzmq ROUTER: once the progress thread has stepped and watched
    the idle ones, it does not step them again while nothing happens to
    them (its rounds stepped every socket: with thousands of sockets, more
    work than the owner's own)."""
    import zmq

    n = 400
    zctx.set(zmq.MAX_SOCKETS, n + 64)
    router = psock(zctx, zmq.ROUTER)
    endpoint = "tcp://127.0.0.1:%d" % router.bind_to_random_port("tcp://127.0.0.1")
    idle = [zsock(ctx, zmtp.DEALER, linger=0) for _ in range(n)]
    active = zsock(ctx, zmtp.DEALER, linger=0)
    for d in idle + [active]:
        d.connect(endpoint)
        d.send(b"hi")
    for _ in range(n + 1):
        router.send_multipart(router.recv_multipart())
    for d in idle + [active]:
        assert d.recv() == b"hi"

    def steps() -> int:
        return sum(d.stats()["progress_steps"] for d in idle)

    # Each idle one is stepped once its owner's last call is 2 ms old, then
    # parked: the count stops moving (unchanged over 100 ms).
    last = [-1]

    def settled() -> bool:
        now, was = steps(), last[0]
        last[0] = now
        return now == was and all(d.stats()["progress_steps"] >= 1 for d in idle)

    wait_for(settled, 30, "the progress thread to step and park every idle socket", step=0.1)
    before = steps()
    for i in range(200):
        active.send(b"%d" % i)
        router.send_multipart(router.recv_multipart())
        assert active.recv() == b"%d" % i
    grown = steps() - before
    print(f"\n{backend}: steps of {n} idle sockets during 200 round trips of another: {grown}")
    assert grown <= n // 10, f"the idle sockets were stepped {grown} times"
    for d in idle[:5]:  # still served once used again
        d.send(b"again")
        router.send_multipart(router.recv_multipart())
        assert d.recv() == b"again"


ROUTER_HELLO = _zmtp.encode_greeting() + _zmtp.encode_ready({"Socket-Type": "ROUTER"})


def test_parked_sockets_keep_their_heartbeats(backend, ctx, endpoint_dir):
    """The progress thread's parked sockets keep their timers: 20 zmtp
    DEALERs with HEARTBEAT_IVL 100 ms, whose owner makes no call after
    bind(), each PING their raw peer again and again (the thread accepts,
    handshakes, parks them, and wakes each for its PINGs)."""
    n, pings = 20, 3
    dealers = [zsock(ctx, zmtp.DEALER, linger=0, heartbeat_ivl=100, heartbeat_timeout=600000) for _ in range(n)]
    peers = []
    try:
        for i, d in enumerate(dealers):
            s = connect_to(bind_endpoint(d, "tcp", endpoint_dir, f"hb{i}"))
            s.sendall(ROUTER_HELLO)
            peers.append(s)
        deadline = time.monotonic() + 20
        for i, s in enumerate(peers):
            got = b""
            while got.count(b"\x04PING") < pings:
                assert time.monotonic() < deadline, f"peer {i} got {got.count(b'PING')} PINGs"
                s.settimeout(max(0.01, deadline - time.monotonic()))
                got += s.recv(65536)
        assert all(d.stats()["heartbeat_timeouts"] == 0 for d in dealers)
    finally:
        for s in peers:
            s.close()
