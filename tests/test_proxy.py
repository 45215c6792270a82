"""zmtp.proxy, proxy_steerable and device: the C proxy (src/proxy.c,
src/py_proxy.c) between pyzmq peers (tcp, ipc) and zmtp peers (inproc),
with zmtp binding and with the peers binding, on both backends.

Every proxy here runs in a thread of its own on a Context of its own, and
every test ends it by terminating that Context: the proxy's thread must end
with ContextTerminated (or return 0 after TERMINATE).  Message content and
order are checked, never timing.
"""

from __future__ import annotations

import errno
import struct
import time
import threading
import uuid
from typing import Any, Callable, List, Tuple

import pytest
import zmq

import zmtp
from helpers import DEADLINE_S, TIMEOUT_MS, psock, queue_rounds, raises_errno, wait_blocked, wait_for, zsock

TRANSPORTS = ["tcp", "ipc", "inproc"]
BINDERS = ["zmtp", "peer"]


def _endpoint(transport: str, tmp_path: Any, name: str) -> str:
    """A fresh endpoint to bind (tcp: a port the kernel picks)."""
    if transport == "tcp":
        return "tcp://127.0.0.1:*"
    if transport == "ipc":
        return f"ipc://{tmp_path}/{name}.ipc"
    return f"inproc://{name}-{uuid.uuid4().hex}"


def _last(sock: Any) -> str:
    ep = sock.last_endpoint
    return ep.decode() if isinstance(ep, bytes) else ep


def link(proxy_sock: Any, peer: Any, transport: str, binder: str, tmp_path: Any, name: str) -> None:
    """Join a proxy socket and a peer over `transport`, `binder` binding."""
    a, b = (proxy_sock, peer) if binder == "zmtp" else (peer, proxy_sock)
    a.bind(_endpoint(transport, tmp_path, name))
    b.connect(_last(a))


class Proxied:
    """A proxy's Context (its own), the peers' factory and the proxy's thread."""

    def __init__(self, ctx: Any, zctx: Any, transport: str) -> None:
        self.pctx = zmtp.Context()
        self.ctx = ctx
        self.zctx = zctx
        self.transport = transport
        self.task: Any = None

    def sock(self, kind: int, **opts: Any) -> Any:
        """A socket of the proxy's Context."""
        s = self.pctx.socket(kind)
        for k, v in opts.items():
            setattr(s, k, v)
        return s

    def peer(self, kind: int, **opts: Any) -> Any:
        """A peer: pyzmq over tcp/ipc, zmtp (the proxy's Context) over inproc."""
        if self.transport == "inproc":
            s = zsock(self.pctx, kind, **opts)
            s.linger = 0
            return s
        return psock(self.zctx, getattr(zmq, zmtp.SocketType(kind).name), **opts)

    def start(self, spawn: Callable[..., Any], fn: Callable[..., Any], *socks: Any) -> None:
        """Run fn(*socks) in a thread; ends with ContextTerminated or returns."""

        def body() -> Any:
            try:
                return fn(*socks)
            except zmtp.ContextTerminated:
                return "terminated"

        self.task = spawn(body)
        wait_blocked(self.task)

    def end(self) -> Any:
        """Terminate the proxy's Context (closing its peers first) and
        return what the proxy's thread ended with."""
        self.pctx.destroy(linger=0)
        return self.task.result(DEADLINE_S)


@pytest.mark.parametrize("binder", BINDERS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_push_pull_through_proxy_with_capture(backend: str, ctx: Any, zctx: Any, spawn: Any, tmp_path: Any, transport: str, binder: str) -> None:
    p = Proxied(ctx, zctx, transport)
    front, back, cap = p.sock(zmtp.PULL), p.sock(zmtp.PUSH), p.sock(zmtp.PUSH)
    sender, receiver, tap = p.peer(zmtp.PUSH), p.peer(zmtp.PULL), p.peer(zmtp.PULL)
    link(front, sender, transport, binder, tmp_path, "front")
    link(back, receiver, transport, binder, tmp_path, "back")
    link(cap, tap, transport, binder, tmp_path, "cap")
    p.start(spawn, zmtp.proxy, front, back, cap)
    sent = [[b"m%d" % i, b"x" * (i % 300), b"end"] for i in range(500)]
    for m in sent:
        sender.send_multipart(m)
    assert [receiver.recv_multipart() for _ in sent] == sent
    assert [tap.recv_multipart() for _ in sent] == sent
    sender.close()
    receiver.close()
    tap.close()
    assert p.end() == "terminated"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_large_frames_by_reference(backend: str, ctx: Any, zctx: Any, spawn: Any, tmp_path: Any, transport: str) -> None:
    """Frames of ZM_SEND_REF_MIN (8 KiB) and more leave the proxy as
    references to the pages they were received in (engine.h); mixed with
    small ones, to the destination and the capture, they arrive whole."""
    p = Proxied(ctx, zctx, transport)
    front, back, cap = p.sock(zmtp.PULL), p.sock(zmtp.PUSH), p.sock(zmtp.PUSH)
    sender, receiver, tap = p.peer(zmtp.PUSH), p.peer(zmtp.PULL), p.peer(zmtp.PULL)
    link(front, sender, transport, "zmtp", tmp_path, "front")
    link(back, receiver, transport, "zmtp", tmp_path, "back")
    link(cap, tap, transport, "zmtp", tmp_path, "cap")
    p.start(spawn, zmtp.proxy, front, back, cap)
    sizes = [8191, 8192, 65536, 200_000, 3, 1 << 20]
    sent = [[bytes([i % 251]) * n, b"tail%d" % i, bytes([(i + 7) % 251]) * sizes[-1 - i % len(sizes)]]
            for i, n in enumerate(sizes * 5)]
    for m in sent:
        sender.send_multipart(m)
    for m in sent:
        assert receiver.recv_multipart() == m
        assert tap.recv_multipart() == m
    assert p.end() == "terminated"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_router_dealer_queue_both_ways(backend: str, ctx: Any, zctx: Any, spawn: Any, tmp_path: Any, transport: str) -> None:
    """REQ clients -> ROUTER | DEALER -> REP workers: requests and replies
    cross the proxy with their envelopes (routing ids, delimiters)."""
    p = Proxied(ctx, zctx, transport)
    front, back = p.sock(zmtp.ROUTER), p.sock(zmtp.DEALER)
    clients = [p.peer(zmtp.REQ) for _ in range(3)]
    worker = p.peer(zmtp.REP)
    link(front, clients[0], transport, "zmtp", tmp_path, "front")
    for c in clients[1:]:
        c.connect(_last(front))
    link(back, worker, transport, "peer", tmp_path, "back")
    p.start(spawn, zmtp.proxy, front, back)
    queue_rounds(clients, worker)
    assert p.end() == "terminated"


@pytest.mark.parametrize("transport", ["tcp", "inproc"])
def test_xsub_xpub_forwarder(backend: str, ctx: Any, zctx: Any, spawn: Any, tmp_path: Any, transport: str) -> None:
    """Subscriptions go upstream through the proxy, messages come down."""
    p = Proxied(ctx, zctx, transport)
    front, back = p.sock(zmtp.XSUB), p.sock(zmtp.XPUB)
    pub, sub = p.peer(zmtp.PUB), p.peer(zmtp.SUB)
    link(front, pub, transport, "zmtp", tmp_path, "front")
    link(back, sub, transport, "zmtp", tmp_path, "back")
    p.start(spawn, zmtp.proxy, front, back)
    sub.setsockopt(zmtp.SUBSCRIBE, b"a")
    got: List[bytes] = []

    def arrived() -> bool:
        pub.send(b"a-probe")
        pub.send(b"b-never")
        try:
            while True:
                got.append(sub.recv(zmtp.DONTWAIT if transport == "inproc" else zmq.DONTWAIT))
        except (zmtp.Again, zmq.Again):
            pass
        return bool(got)

    wait_for(arrived, DEADLINE_S, "the subscription to reach the publisher through the proxy", step=0.02)
    for i in range(100):
        pub.send(b"b%d" % i)
        pub.send(b"a%d" % i)
    tail: List[bytes] = []
    while len(tail) < 100:
        m = sub.recv()
        if m != b"a-probe":  # probes still in flight when the first arrived
            tail.append(m)
    assert set(got) == {b"a-probe"}
    assert tail == [b"a%d" % i for i in range(100)]
    assert p.end() == "terminated"


@pytest.mark.parametrize("transport", ["tcp", "ipc", "inproc"])
def test_full_side_blocks_its_direction_only(backend: str, ctx: Any, zctx: Any, spawn: Any, tmp_path: Any, transport: str) -> None:
    """PAIR <-> PAIR: the backend's peer does not read, so front -> back
    stops at the HWMs (nothing lost); back -> front keeps flowing; once the
    backend's peer reads, every message arrives, in order."""
    p = Proxied(ctx, zctx, transport)
    front = p.sock(zmtp.PAIR, sndhwm=10, rcvhwm=10)
    back = p.sock(zmtp.PAIR, sndhwm=10, rcvhwm=10)
    a = p.peer(zmtp.PAIR, sndhwm=10, rcvhwm=10)
    b = p.peer(zmtp.PAIR, sndhwm=10, rcvhwm=10)
    link(front, a, transport, "zmtp", tmp_path, "front")
    link(back, b, transport, "peer", tmp_path, "back")
    p.start(spawn, zmtp.proxy, front, back)
    payload = b"p" * 2000
    sent = 0
    dontwait = zmtp.DONTWAIT if transport == "inproc" else zmq.DONTWAIT
    again = zmtp.Again if transport == "inproc" else zmq.Again
    # Fill front -> back until a's sends block for a while: the proxy's
    # back side is full, so it stopped reading a.
    stalled_since = None
    while True:
        try:
            a.send(b"%06d" % sent + payload, dontwait)
            sent += 1
            stalled_since = None
        except again:
            now = time.monotonic()
            stalled_since = stalled_since or now
            if now - stalled_since > 0.5:
                break
            time.sleep(0.01)
        assert sent < 1_000_000, "the proxy never pushed back"
    # The other direction still flows.
    for i in range(50):
        b.send(b"back%d" % i)
        assert a.recv() == b"back%d" % i
    # Now b reads everything, in order, none lost.
    for i in range(sent):
        assert b.recv() == b"%06d" % i + payload
    # And a's sends flow again.
    a.send(b"after")
    assert b.recv() == b"after"
    assert p.end() == "terminated"


def test_term_ends_a_blocked_proxy_and_a_second_thread_gets_ebusy(backend: str, ctx: Any, zctx: Any, spawn: Any) -> None:
    p = Proxied(ctx, zctx, "tcp")
    front, back = p.sock(zmtp.PULL), p.sock(zmtp.PUSH)
    front.bind("tcp://127.0.0.1:*")
    p.start(spawn, zmtp.proxy, front, back)
    raises_errno(errno.EBUSY, front.getsockopt, zmtp.RCVHWM)
    raises_errno(errno.EBUSY, back.send, b"x")
    assert p.end() == "terminated"


def test_device_one_socket_echoes(backend: str, ctx: Any, zctx: Any, spawn: Any) -> None:
    """device(QUEUE, router, router): what comes in goes back to its sender
    (ipykernel's heartbeat); REP alone answers each request with itself."""
    p = Proxied(ctx, zctx, "tcp")
    rep = p.sock(zmtp.REP)
    rep.bind("tcp://127.0.0.1:*")
    req = p.peer(zmtp.REQ)
    req.connect(_last(rep))
    p.start(spawn, zmtp.device, zmtp.QUEUE, rep, rep)
    for i in range(20):
        req.send_multipart([b"ping", b"%d" % i])
        assert req.recv_multipart() == [b"ping", b"%d" % i]
    assert p.end() == "terminated"


def test_type_errors(ctx: Any) -> None:
    s = zsock(ctx, zmtp.PAIR)
    with pytest.raises(TypeError):
        zmtp.proxy(s, object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        zmtp.proxy(s, s, capture=42)  # type: ignore[arg-type]


# ---------------------------------------------------------------- steerable


def _stats(ctrl: Any) -> List[int]:
    ctrl.send(b"STATISTICS")
    frames = ctrl.recv_multipart()
    assert len(frames) == 8 and all(len(f) == 8 for f in frames)
    return [struct.unpack("=Q", f)[0] for f in frames]


def test_statistics_match_libzmq(backend: str, ctx: Any, zctx: Any) -> None:
    """STATISTICS after the same traffic: zmtp's counters are libzmq
    4.3.5's (frames and bytes, received and sent, per side)."""
    results = {}
    for which in ("zmtp", "pyzmq"):
        if which == "zmtp":
            pctx: Any = zmtp.Context()
            make = pctx.socket
            run = zmtp.proxy_steerable
        else:
            pctx = zmq.Context()
            make = pctx.socket
            run = zmq.proxy_steerable
        socks = [make(k) for k in (zmtp.ROUTER, zmtp.DEALER, zmtp.PUSH, zmtp.PAIR)]
        ends = []
        for s in socks:
            s.bind("tcp://127.0.0.1:*")
            ends.append(_last(s))
        out: dict = {}

        def body(socks: List[Any] = socks, run: Any = run, out: dict = out) -> None:
            out["rc"] = run(*socks)

        th = threading.Thread(target=body, daemon=True)
        th.start()
        clients = [psock(zctx, zmq.REQ) for _ in range(2)]
        for c in clients:
            c.connect(ends[0])
        worker = psock(zctx, zmq.REP)
        worker.connect(ends[1])
        tap = psock(zctx, zmq.PULL)
        tap.connect(ends[2])
        ctl = psock(zctx, zmq.PAIR)
        ctl.connect(ends[3])
        for rnd in range(10):
            for i, c in enumerate(clients):
                c.send_multipart([b"request", b"x" * (rnd + i)])
                msg = worker.recv_multipart()
                worker.send_multipart([b"reply!"] + msg[1:])
                assert c.recv_multipart() == [b"reply!", b"x" * (rnd + i)]
        captured = [tap.recv_multipart() for _ in range(40)]
        assert len(captured) == 40
        stats = _stats(ctl)
        ctl.send(b"TERMINATE")
        assert ctl.recv() == b""  # libzmq 4.3.5 answers every other command with an empty frame
        th.join(DEADLINE_S)
        assert not th.is_alive()
        results[which] = (stats, out["rc"])
        for s in (*clients, worker, tap, ctl):
            s.close(0)
        for s in socks:
            s.close(0)
        pctx.term()
    assert results["zmtp"][0] == results["pyzmq"][0]
    assert results["zmtp"][0][0] == 2 * 10 * 4  # id, delimiter, two frames
    assert results["zmtp"][1] == results["pyzmq"][1] == 0


@pytest.mark.parametrize("transport", ["tcp", "inproc"])
def test_pause_resume_terminate(backend: str, ctx: Any, zctx: Any, spawn: Any, tmp_path: Any, transport: str) -> None:
    """PAUSE holds messages in the queues, RESUME lets them through (in
    order), TERMINATE returns 0; each command gets an empty reply."""
    p = Proxied(ctx, zctx, transport)
    front, back, ctl = p.sock(zmtp.PULL), p.sock(zmtp.PUSH), p.sock(zmtp.REP)
    sender, receiver, ctrl = p.peer(zmtp.PUSH), p.peer(zmtp.PULL), p.peer(zmtp.REQ)
    link(front, sender, transport, "zmtp", tmp_path, "front")
    link(back, receiver, transport, "zmtp", tmp_path, "back")
    link(ctl, ctrl, transport, "zmtp", tmp_path, "ctl")
    p.start(spawn, zmtp.proxy_steerable, front, back, None, ctl)
    sender.send(b"first")
    assert receiver.recv() == b"first"
    ctrl.send(b"PAUSE")
    assert ctrl.recv() == b""
    for i in range(10):
        sender.send(b"held%d" % i)
    receiver.rcvtimeo = 300
    with pytest.raises((zmtp.Again, zmq.Again)):
        receiver.recv()
    receiver.rcvtimeo = TIMEOUT_MS
    ctrl.send(b"NONSENSE")
    assert ctrl.recv() == b""
    ctrl.send(b"RESUME")
    assert ctrl.recv() == b""
    assert [receiver.recv() for _ in range(10)] == [b"held%d" % i for i in range(10)]
    assert _stats(ctrl)[:2] == [11, 5 + 10 * 5]
    ctrl.send(b"TERMINATE")
    assert ctrl.recv() == b""
    assert p.task.result(DEADLINE_S) == 0
    # The sockets are the caller's again.
    front.rcvtimeo = 0
    with pytest.raises(zmtp.Again):
        front.recv()
    p.pctx.destroy(linger=0)


def test_shadow_sockets(backend: str, ctx: Any, zctx: Any, spawn: Any) -> None:
    """A shadow is proxied as the socket it shadows."""
    p = Proxied(ctx, zctx, "tcp")
    front, back = p.sock(zmtp.PULL), p.sock(zmtp.PUSH)
    front.bind("tcp://127.0.0.1:*")
    back.bind("tcp://127.0.0.1:*")
    sender, receiver = p.peer(zmtp.PUSH), p.peer(zmtp.PULL)
    sender.connect(_last(front))
    receiver.connect(_last(back))
    p.start(spawn, zmtp.proxy, zmtp.Socket.shadow(front.underlying), back)
    sender.send(b"via shadow")
    assert receiver.recv() == b"via shadow"
    assert p.end() == "terminated"


# ---------------------------------------------------------------- the GIL and signals

#: a pyzmq DEALER: once the parent's thread `tid` is blocked in read(2)
#: (holding the GIL), and half a second later, one round trip through the
#: parent's echo device; the outcome is written to the FIFO the parent reads.
GIL_PEER = r"""
import os, platform, sys, time
import zmq
endpoint, pid, tid, fifo = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.rcvtimeo = 20000
s.linger = 0
s.connect(endpoint)
s.send(b"warm")
assert s.recv() == b"warm"
print("ready", flush=True)
read_nr = {"x86_64": "0", "aarch64": "63"}.get(platform.machine())
deadline = time.monotonic() + 30
while read_nr is not None and time.monotonic() < deadline:
    with open(f"/proc/{pid}/task/{tid}/syscall") as f:
        if f.read().split()[0] == read_nr:
            break
    time.sleep(0.005)
time.sleep(0.5)
s.send(b"while the GIL is held")
try:
    out = b"ok" if s.recv() == b"while the GIL is held" else b"wrong"
except zmq.Again:
    out = b"timeout"
with open(fifo, "wb") as f:
    f.write(out)
"""


def test_proxy_thread_answers_while_another_thread_holds_the_gil(backend: str, ctx: Any, zctx: Any, spawn: Any, tmp_path: Any) -> None:
    """ipykernel's heartbeat: device(QUEUE, router, router) in a thread keeps
    echoing while this thread holds the GIL inside one C call (read(2)
    through ctypes.PyDLL, which keeps the GIL), until the peer, answered,
    writes to the FIFO that call reads."""
    import ctypes
    import os

    from helpers import Peer

    p = Proxied(ctx, zctx, "tcp")
    router = p.sock(zmtp.ROUTER)
    router.bind("tcp://127.0.0.1:*")
    endpoint = _last(router)
    p.start(spawn, zmtp.device, zmtp.QUEUE, router, router)
    fifo = str(tmp_path / "gil.fifo")
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR)  # no writer needed to open; read(2) blocks until the peer writes
    peer = Peer(GIL_PEER, endpoint, os.getpid(), threading.get_native_id(), fifo)
    try:
        peer.expect("ready", timeout=DEADLINE_S)
        libc = ctypes.PyDLL(None)  # PyDLL: the call keeps the GIL
        buf = ctypes.create_string_buffer(16)
        n = libc.read(fd, buf, 16)
        assert buf.raw[:n] == b"ok"
    finally:
        os.close(fd)
        peer.kill()
    assert p.end() == "terminated"


SIGNAL_PEER = r"""
import signal
import sys
import zmtp
hits = []
def once(signum, frame):
    # the first SIGINT interrupts; later ones (the test repeats it until it
    # hears back) must not interrupt the reporting below
    hits.append(signum)
    if len(hits) == 1:
        raise KeyboardInterrupt
signal.signal(signal.SIGINT, once)
ctx = zmtp.Context()
front, back = ctx.socket(zmtp.PULL), ctx.socket(zmtp.PUSH)
front.bind("tcp://127.0.0.1:*")
back.bind("tcp://127.0.0.1:*")
try:
    print("ready", front.last_endpoint.decode(), back.last_endpoint.decode(), flush=True)
    zmtp.proxy(front, back)
except KeyboardInterrupt:
    print("interrupted", front.getsockopt(zmtp.RCVHWM), flush=True)
ctx.destroy(linger=0)
"""


def test_proxy_on_the_main_thread_runs_signal_handlers() -> None:
    """Ctrl-C ends a proxy running on the main thread with KeyboardInterrupt,
    and the sockets are the caller's again."""
    import os
    import signal

    from helpers import Peer

    peer = Peer(SIGNAL_PEER)
    zctx = zmq.Context()
    try:
        ready = peer.expect("ready", timeout=DEADLINE_S)
        # a message through the proxy: it is running before the first SIGINT
        push, pull = zctx.socket(zmq.PUSH), zctx.socket(zmq.PULL)
        pull.rcvtimeo = int(DEADLINE_S * 1000)
        push.connect(ready[0])
        pull.connect(ready[1])
        push.send(b"through")
        assert pull.recv() == b"through"
        line = None
        for _ in range(int(DEADLINE_S / 0.2)):
            os.kill(peer.proc.pid, signal.SIGINT)
            line = peer.poll_line(0.2)
            if line is not None:
                break
        assert line == "interrupted 1000", line
    finally:
        peer.kill()
        zctx.destroy(linger=0)


def test_mixed_transports(backend: str, ctx: Any, zctx: Any, spawn: Any, tmp_path: Any) -> None:
    """inproc frontend (zmtp peers), tcp backend (pyzmq), ipc capture (pyzmq): one proxy."""
    p = Proxied(ctx, zctx, "inproc")
    front, back, cap = p.sock(zmtp.PULL), p.sock(zmtp.PUSH), p.sock(zmtp.PUSH)
    sender = p.peer(zmtp.PUSH)  # zmtp, inproc
    receiver = psock(zctx, zmq.PULL)
    tap = psock(zctx, zmq.PULL)
    link(front, sender, "inproc", "zmtp", tmp_path, "front")
    link(back, receiver, "tcp", "zmtp", tmp_path, "back")
    link(cap, tap, "ipc", "peer", tmp_path, "cap")
    p.start(spawn, zmtp.proxy, front, back, cap)
    sent = [[b"%d" % i, b"y" * (i % 70)] for i in range(300)]
    for m in sent:
        sender.send_multipart(m)
    assert [receiver.recv_multipart() for _ in sent] == sent
    assert [tap.recv_multipart() for _ in sent] == sent
    assert p.end() == "terminated"


def test_terminated_proxy_keeps_no_page(backend: str, ctx: Any, zctx: Any, spawn: Any) -> None:
    """A proxy terminated with a message held back (the inproc destination
    full) and messages queued on both sides leaves no read page alive."""
    before = zmtp.memory_stats()["pages_live"]
    p = Proxied(ctx, zctx, "inproc")
    front, back = p.sock(zmtp.ROUTER), p.sock(zmtp.DEALER, sndhwm=5, rcvhwm=5)
    front.bind("tcp://127.0.0.1:*")
    back.bind(_endpoint("inproc", None, "back"))
    worker = p.peer(zmtp.DEALER, sndhwm=5, rcvhwm=5)
    worker.connect(_last(back))
    client = psock(zctx, zmq.DEALER)
    client.connect(_last(front))
    p.start(spawn, zmtp.proxy, front, back)
    for i in range(200):
        client.send_multipart([b"", b"%d" % i, b"x" * 5000])
    assert [worker.recv_multipart()[2] for _ in range(20)] == [b"%d" % i for i in range(20)]
    wait_blocked(p.task)  # the proxy waits with the rest held or queued
    worker.close(0)
    assert p.end() == "terminated"
    wait_for(lambda: zmtp.memory_stats()["pages_live"] <= before, DEADLINE_S, "the proxy's pages to be freed")
