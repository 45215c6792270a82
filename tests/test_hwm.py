"""High-water marks against pyzmq (libzmq) peers.

The spec: SNDHWM/RCVHWM per peer pipe (default 1000), counted in messages,
with each type's mute rule: PUB/XPUB/ROUTER drop, PUSH/DEALER/REQ/PAIR block
(Again with DONTWAIT or after SNDTIMEO; ROUTER too with ROUTER_MANDATORY);
IMMEDIATE queues only to completed connections; drops are whole messages.
A message still being received is bounded by MAXMSGSIZE and the frame-count
limit.

The peer that "does not read" is a pyzmq socket nobody calls recv() on: its
I/O thread still reads until its pipe holds RCVHWM messages, then the kernel
buffers fill, then the zmtp queue (SNDHWM messages).  zmtp cannot shrink its
own kernel buffers (no SNDBUF/RCVBUF option), so the bounds below allow what
the kernel may hold (from the sysctl limits) and use big messages (128 KiB)
to keep that term small: a finite bound that a socket without a working HWM
overruns.  Every test message has three frames carrying its sequence number,
so a receiver checks that each message is whole, and that order is kept with
no duplicates.

* blocking table (PUSH, DEALER to ROUTER and DEALER, PAIR, ROUTER with
  ROUTER_MANDATORY), both bind directions, tcp and ipc: Again with DONTWAIT
  after SNDHWM..bound messages, after SNDTIMEO, a blocking send waits for
  the reader, nothing lost; POLLOUT follows the HWM.
* dropping table (PUB, XPUB, ROUTER), both bind directions, tcp and ipc:
  sends never block, whole messages are dropped and counted, recovery.
* RCVHWM on the zmtp side (PULL, ROUTER, DEALER, PAIR, SUB), per-peer HWM,
  IMMEDIATE, REQ without a peer, the default of 1000, MAXMSGSIZE and the
  frame-count limit on a message being received.
"""

from __future__ import annotations

import socket as pysocket
import time

import pytest
import zmq

import zmtp
import helpers
from helpers import DEADLINE_S, LATE_S, TIMEOUT_MS, psock


def zsock(ctx, kind, **opts):
    """helpers.zsock with linger 0: sockets here are left with queued data."""
    return helpers.zsock(ctx, kind, **{"linger": 0, **opts})
from zmtp import codec
from zmtp.codec import ErrorCode

SNDHWM = 10  # the zmtp sender's
PEER_HWM = 10  # the pyzmq peer's RCVHWM (or SNDHWM when it sends)
PEER_BUF = 64 << 10  # the pyzmq peer's SO_RCVBUF / SO_SNDBUF (the kernel doubles it)
FRAME = 128 << 10  # the big middle frame of every test message
SLACK = 8  # messages in flight inside libzmq's engine (a partial one, a batch), and margin
PEER_ID = b"peer"


def _sysctl(name: str, default: int) -> int:
    """The largest value of a sysctl (the max of tcp_rmem/tcp_wmem triples)."""
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return max(int(v) for v in f.read().split())
    except (OSError, ValueError):
        return default


#: bytes the kernel may hold between a zmtp sender (tcp send buffer
#: autotuned up to tcp_wmem[2]; a unix socket's up to wmem_max) and a pyzmq
#: receiver whose SO_RCVBUF is PEER_BUF (doubled by the kernel)
KERNEL_OUT = max(_sysctl("net.ipv4.tcp_wmem", 4 << 20), _sysctl("net.core.wmem_max", 4 << 20)) + 2 * PEER_BUF
#: the other way round: a pyzmq sender (SO_SNDBUF PEER_BUF) and a zmtp
#: receiver (tcp receive buffer autotuned up to tcp_rmem[2]; unix: the
#: sender's buffer counts)
KERNEL_IN = max(_sysctl("net.ipv4.tcp_rmem", 6 << 20), _sysctl("net.core.rmem_max", 4 << 20)) + 2 * PEER_BUF

#: most messages a zmtp sender can hand over before its peer reads anything
SEND_BOUND = SNDHWM + PEER_HWM + KERNEL_OUT // FRAME + SLACK
#: how many messages the dropping tests send: far more than can be queued
FLOOD = 2 * SEND_BOUND + 50

FILL = bytes(range(256)) * (FRAME // 256)


# ================================================================ helpers


def settle(sock, ms):
    """Drive a zmtp socket's I/O for `ms` ms (a poll that waits for nothing)."""
    deadline = time.monotonic() + ms / 1000
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        sock.poll(max(1, int(left * 1000)), 0)


def assert_again(fn, *args, **kwargs):
    with pytest.raises(zmtp.Again) as info:
        fn(*args, **kwargs)
    assert info.value.errno == zmtp.EAGAIN


def assert_timed_again(sock, msg, ms=100):
    """A blocking send with SNDTIMEO=ms raises Again after about ms (for a
    socket that cannot send at all: no peer).  Not before ms; the upper
    bound has the headroom of a loaded machine (LATE_S) and still tells ms
    apart from the default TIMEOUT_MS."""
    old = sock.sndtimeo
    sock.sndtimeo = ms
    t0 = time.monotonic()
    assert_again(sock.send_multipart, msg)
    took = time.monotonic() - t0
    sock.sndtimeo = old
    assert ms / 1000 * 0.9 <= took < ms / 1000 + LATE_S, f"SNDTIMEO={ms} raised Again after {took * 1000:.0f} ms"


def address(transport, tmp_path, name="hwm"):
    return "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/{name}.ipc"


def unused_address(transport, tmp_path, name="later"):
    """An endpoint nobody listens on (yet)."""
    if transport == "ipc":
        return f"ipc://{tmp_path}/{name}.ipc"
    probe = pysocket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"tcp://127.0.0.1:{port}"


def link(zs, ps, side, addr):
    """Bind one of (zmtp socket, pyzmq socket) and connect the other."""
    binder, connecter = (zs, ps) if side == "zmtp_binds" else (ps, zs)
    binder.bind(addr)
    connecter.connect(binder.last_endpoint.decode())


def frames(seq):
    """A 3-frame test message; every frame carries the sequence number."""
    tag = b"%08d" % seq
    return [tag, tag + FILL[len(tag):], b"end" + tag]


def seq_of(msg):
    """The sequence number of a received test message, checking that it is
    whole: three frames, all of the same message, the big one intact."""
    assert len(msg) == 3, f"not a whole message: {len(msg)} frames {[f[:16] for f in msg]}"
    tag, body, tail = msg
    assert len(tag) == 8 and tag.isdigit(), tag[:16]
    assert len(body) == FRAME and body[:8] == tag and body[8:] == FILL[8:], f"frame 2 of {tag!r} damaged"
    assert tail == b"end" + tag, f"frame 3 of {tag!r} is {tail[:16]!r}"
    return int(tag)


def fill_until_stalled(send_one, pause, limit, ms=50, patience=3):
    """send_one(i) with DONTWAIT until it raises Again, pause(ms), and again,
    until `patience` pauses in a row let no message through (the peer does
    not read: the kernel buffers and the queues are nearly full).  Returns
    how many were sent; more than `limit` fails.

    "Stalled" is not "full": the kernel may still take bytes later on its
    own schedule (a zero-window probe 200+ ms on, TCP autotuning, the peer's
    I/O thread), and under SNDHWM counting messages not yet written whole,
    that frees room.  Assert "Again" after this with send_until_again(),
    which counts what the kernel still lets through against the bound."""
    n = 0
    deadline = time.monotonic() + DEADLINE_S
    idle = 0
    while True:
        try:
            send_one(n)
        except (zmtp.Again, zmq.Again):
            if idle == patience:
                return n
            pause(ms)
            idle += 1
            assert time.monotonic() < deadline, f"still not stalled after {n} messages"
            continue
        n += 1
        idle = 0
        assert n <= limit, f"{n} messages taken, the bound is {limit}: no high-water mark?"


def send_until_again(send_one, n, limit):
    """send_one(n), send_one(n + 1), ... until one raises Again, for a peer
    that does not read.  Returns (how many were taken in all, how long the
    call that raised Again took).

    This is the contract whatever the kernel does: a sender at its HWM
    raises Again (DONTWAIT, or after SNDTIMEO); a message the kernel made
    room for meanwhile (a zero-window probe reopened the window, the send
    buffer grew) may be taken first, but everything taken since the peer
    stopped reading stays within `limit` (a socket without a working HWM
    overruns it at once: every DONTWAIT send would be queued)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        t0 = time.monotonic()
        try:
            send_one(n)
        except (zmtp.Again, zmq.Again) as exc:
            assert exc.errno == zmtp.EAGAIN
            return n, time.monotonic() - t0
        n += 1
        assert n <= limit, f"{n} messages taken, the bound is {limit}: no high-water mark?"
        assert time.monotonic() < deadline, f"no Again after {n} messages"


def drain_with_markers(recv, send, sent):
    """After a flood (the sequence numbers in `sent`) to a peer that now
    reads: recv(timeout_ms) -> seq or None, until a marker (a message sent
    after the flood) arrives; a marker is sent whenever nothing has come for
    a while (markers sent while the queue is still full are dropped too).
    Then one last message, read up to it: everything sent (appended to
    `sent`) has then either arrived (returned, in arrival order) or been
    dropped."""
    flood_end = sent[-1]
    got = []
    deadline = time.monotonic() + DEADLINE_S
    while not got or got[-1] <= flood_end:
        seq = recv(50)
        if seq is not None:
            got.append(seq)
            continue
        assert time.monotonic() < deadline, f"no marker came through; got {len(got)} messages"
        sent.append(sent[-1] + 1)
        send(sent[-1])
    sent.append(sent[-1] + 1)
    send(sent[-1])
    while got[-1] != sent[-1]:
        seq = recv(TIMEOUT_MS)
        assert seq is not None, f"the last message {sent[-1]} did not come"
        got.append(seq)
    return got


# ============================================= the table: blocking types
#
# name: (zmtp type, pyzmq peer type, zmtp options)

BLOCKING = {
    "PUSH-PULL": (zmtp.PUSH, zmq.PULL, {}),
    "DEALER-ROUTER": (zmtp.DEALER, zmq.ROUTER, {}),
    "DEALER-DEALER": (zmtp.DEALER, zmq.DEALER, {}),
    "PAIR-PAIR": (zmtp.PAIR, zmq.PAIR, {}),
    "ROUTER_MANDATORY-DEALER": (zmtp.ROUTER, zmq.DEALER, {"router_mandatory": 1}),
}

DROPPING = {
    "PUB-SUB": (zmtp.PUB, zmq.SUB, {}),
    "XPUB-SUB": (zmtp.XPUB, zmq.SUB, {}),
    "ROUTER-DEALER": (zmtp.ROUTER, zmq.DEALER, {}),
}


class Pair:
    """A zmtp sender and a pyzmq peer that reads only when asked."""

    def __init__(self, ctx, zctx, row, side, addr):
        ztype, ptype, zopts = row
        self.ztype, self.ptype = ztype, ptype
        self.z = zsock(ctx, ztype, sndhwm=SNDHWM, **zopts)
        popts = dict(rcvhwm=PEER_HWM, rcvbuf=PEER_BUF)
        if ztype == zmtp.ROUTER:
            popts["routing_id"] = PEER_ID
        self.p = psock(zctx, ptype, **popts)
        if ptype == zmq.SUB:
            self.p.subscribe(b"")
        link(self.z, self.p, side, addr)

    def out(self, seq):
        """What the zmtp socket sends for message `seq`."""
        f = frames(seq)
        return [PEER_ID] + f if self.ztype == zmtp.ROUTER else f

    def send(self, seq, flags=0):
        self.z.send_multipart(self.out(seq), flags)

    def send_by_frame(self, seq):
        out = self.out(seq)
        for f in out[:-1]:
            self.z.send(f, zmtp.SNDMORE)
        self.z.send(out[-1])

    def recv(self, timeout=TIMEOUT_MS):
        """The peer's next test message (its sequence number), or None."""
        if not self.p.poll(timeout):
            return None
        msg = self.p.recv_multipart()
        if self.ptype == zmq.ROUTER:
            assert msg[0] and len(msg) > 1, msg[:2]
            msg = msg[1:]
        return seq_of(msg)

    def sync(self, seq=0):
        """Until the two are connected (and the ROUTER knows its peer, the
        publisher its subscriber): message `seq` goes through."""
        if self.ztype == zmtp.ROUTER:
            self.p.send(b"hello")
            assert self.z.recv_multipart() == [PEER_ID, b"hello"]
        if self.ztype in (zmtp.PUB, zmtp.XPUB):
            deadline = time.monotonic() + DEADLINE_S
            while True:  # the subscription is in when a probe gets through
                self.z.send(b"probe")
                if self.p.poll(20):
                    break
                assert time.monotonic() < deadline, "the subscription never reached the publisher"
            self.send(seq)
            while True:
                msg = self.p.recv_multipart()
                if msg != [b"probe"]:
                    assert seq_of(msg) == seq
                    return
        self.send(seq)
        assert self.recv() == seq


@pytest.fixture(params=["tcp", "ipc"])
def transport(request):
    return request.param


@pytest.mark.parametrize("side", ["zmtp_binds", "pyzmq_binds"])
@pytest.mark.parametrize("row", list(BLOCKING), ids=list(BLOCKING))
def test_blocking_type_at_hwm(backend, ctx, zctx, tmp_path, transport, side, row, spawn):
    """PUSH/DEALER/PAIR (and ROUTER with ROUTER_MANDATORY) to a peer that
    does not read: DONTWAIT sends succeed at least SNDHWM times, then raise
    Again, within a finite bound; a send with SNDTIMEO raises Again after it
    (at once with SNDTIMEO=0); a blocking send waits until the peer reads;
    nothing is lost: every message arrives, whole and in order."""
    pair = Pair(ctx, zctx, BLOCKING[row], side, address(transport, tmp_path))
    pair.sync(0)

    def send_one(i):
        pair.send(1 + i)

    n = fill_until_stalled(lambda i: pair.send(1 + i, zmtp.DONTWAIT), lambda ms: settle(pair.z, ms), SEND_BOUND)
    assert SNDHWM <= n <= SEND_BOUND, n
    # Each way of sending raises Again; the kernel may have made room for a
    # few more first (fill_until_stalled), all counted against SEND_BOUND.
    n, _ = send_until_again(lambda i: pair.send(1 + i, zmtp.DONTWAIT), n, SEND_BOUND)
    pair.z.sndtimeo = 100
    n, took = send_until_again(send_one, n, SEND_BOUND)
    assert 0.09 <= took < 0.1 + LATE_S, f"SNDTIMEO=100 raised Again after {took * 1000:.0f} ms"
    pair.z.sndtimeo = 0
    n, took = send_until_again(send_one, n, SEND_BOUND)
    assert took < LATE_S, f"SNDTIMEO=0 waited {took:.2f} s"
    pair.z.sndtimeo = TIMEOUT_MS

    # The peer starts reading (in a helper thread); a blocking send waits
    # for room, then goes.
    reader = spawn(lambda: [pair.recv() for _ in range(n + 1)])
    pair.send(1 + n)
    assert reader.result() == list(range(1, 2 + n))
    assert pair.recv(50) is None  # and nothing else (no duplicates)
    pair.send(2 + n)
    assert pair.recv() == 2 + n


@pytest.mark.parametrize("side", ["zmtp_binds", "pyzmq_binds"])
@pytest.mark.parametrize("row", list(DROPPING), ids=list(DROPPING))
def test_dropping_type_at_hwm(backend, ctx, zctx, tmp_path, transport, side, row):
    """PUB/XPUB/ROUTER to a peer that does not read: FLOOD sends (>> what
    can be queued) all return promptly; the peer then gets fewer than FLOOD
    messages, each whole, in order, no duplicates; every message that did
    not arrive is counted in stats()['dropped_messages']; after the peer
    drains, sending works again."""
    pair = Pair(ctx, zctx, DROPPING[row], side, address(transport, tmp_path))
    pair.sync(0)
    before = pair.z.stats()["dropped_messages"]

    # "Never blocks" is the contract, not a speed: a send that waited for
    # room would wait for SNDTIMEO (TIMEOUT_MS, the peer never reads) and
    # raise Again; each send must return well before that (LATE_S: the
    # headroom of a loaded machine).
    slowest = 0.0
    for seq in range(1, FLOOD + 1):
        t = time.monotonic()
        if seq % 2:
            pair.send(seq)  # no DONTWAIT: a send that blocked would raise Again after SNDTIMEO
        else:
            pair.send_by_frame(seq)
        slowest = max(slowest, time.monotonic() - t)
    assert slowest < LATE_S, f"a send took {slowest:.3f} s: it waited for room"

    sent = list(range(1, FLOOD + 1))
    got = drain_with_markers(pair.recv, pair.send, sent)

    assert all(a < b for a, b in zip(got, got[1:])), "out of order or duplicated"
    assert set(got) <= set(sent)
    data = [s for s in got if s <= FLOOD]
    assert SNDHWM <= len(data) < FLOOD, (len(data), FLOOD)
    assert len(data) <= SEND_BOUND, (len(data), SEND_BOUND)
    dropped = pair.z.stats()["dropped_messages"] - before
    assert dropped == len(sent) - len(got), f"{len(sent) - len(got)} lost, {dropped} counted as dropped"

    # Recovered: SNDHWM - 1 messages back to back all arrive.
    last = sent[-1]
    for seq in range(last + 1, last + SNDHWM):
        pair.send(seq)
    assert [pair.recv() for _ in range(SNDHWM - 1)] == list(range(last + 1, last + SNDHWM))
    assert pair.z.stats()["dropped_messages"] - before == dropped


@pytest.mark.parametrize("row", list(BLOCKING), ids=list(BLOCKING))
def test_pollout_follows_hwm(backend, ctx, zctx, row):
    """A blocking type whose only peer is at SNDHWM does not report POLLOUT
    (libzmq: pipe->check_hwm; ROUTER_MANDATORY: router_t::xhas_out); it does
    again once the peer has read."""
    pair = Pair(ctx, zctx, BLOCKING[row], "zmtp_binds", "tcp://127.0.0.1:*")
    pair.sync(0)
    assert pair.z.poll(0, zmtp.POLLOUT) & zmtp.POLLOUT
    n = fill_until_stalled(lambda i: pair.send(1 + i, zmtp.DONTWAIT), lambda ms: settle(pair.z, ms), SEND_BOUND)
    # The kernel may still make room now and then (see fill_until_stalled):
    # POLLOUT is then right, and a DONTWAIT send must go through (room only
    # grows while the peer does not read); POLLOUT must clear within the bound.
    while pair.z.poll(0, zmtp.POLLOUT) & zmtp.POLLOUT:
        pair.send(1 + n, zmtp.DONTWAIT)  # Again here: POLLOUT while at SNDHWM
        n += 1
        assert n <= SEND_BOUND, f"POLLOUT after {n} messages: POLLOUT while the only peer is at SNDHWM"
    assert [pair.recv() for _ in range(n)] == list(range(1, 1 + n))
    assert pair.z.poll(TIMEOUT_MS, zmtp.POLLOUT) & zmtp.POLLOUT


def test_pollout_follows_hwm_pyzmq_reference(zctx):
    """The reference for the ROUTER_MANDATORY row: libzmq's ROUTER clears
    POLLOUT when its peer is at SNDHWM."""
    router = psock(zctx, zmq.ROUTER, sndhwm=SNDHWM, router_mandatory=1)
    router.bind("tcp://127.0.0.1:*")
    dealer = psock(zctx, zmq.DEALER, rcvhwm=PEER_HWM, rcvbuf=PEER_BUF, routing_id=PEER_ID)
    dealer.connect(router.last_endpoint.decode())
    dealer.send(b"hello")
    assert router.recv_multipart() == [PEER_ID, b"hello"]
    assert router.poll(0, zmq.POLLOUT)

    def send_one(i):
        router.send_multipart([PEER_ID] + frames(i), zmq.DONTWAIT)

    n = fill_until_stalled(send_one, lambda ms: time.sleep(ms / 1000), SEND_BOUND)
    assert SNDHWM <= n <= SEND_BOUND
    while router.poll(0, zmq.POLLOUT):  # the kernel made room since (see test_pollout_follows_hwm)
        send_one(n)
        n += 1
        assert n <= SEND_BOUND, n
    assert [seq_of(dealer.recv_multipart()) for _ in range(n)] == list(range(n))
    assert router.poll(TIMEOUT_MS, zmq.POLLOUT)


def test_router_mandatory_unknown_peer_is_ehostunreach_not_again(backend, ctx, zctx):
    """ROUTER_MANDATORY: a peer at SNDHWM is Again, an unknown one
    EHOSTUNREACH (libzmq router.cpp), even while the known one is full."""
    pair = Pair(ctx, zctx, BLOCKING["ROUTER_MANDATORY-DEALER"], "zmtp_binds", "tcp://127.0.0.1:*")
    pair.sync()
    n = fill_until_stalled(lambda i: pair.send(1 + i, zmtp.DONTWAIT), lambda ms: settle(pair.z, ms), SEND_BOUND)
    send_until_again(lambda i: pair.send(1 + i, zmtp.DONTWAIT), n, SEND_BOUND)
    with pytest.raises(zmtp.ZMQError) as info:
        pair.z.send_multipart([b"nobody", b"x"], zmtp.DONTWAIT)
    assert info.value.errno == zmtp.EHOSTUNREACH


# ============================================================ RCVHWM
#
# name: (zmtp receiver, pyzmq sender); the pyzmq sender blocks (Again with
# DONTWAIT) once the zmtp side stops reading

RECEIVING = {
    "PULL-PUSH": (zmtp.PULL, zmq.PUSH),
    "ROUTER-DEALER": (zmtp.ROUTER, zmq.DEALER),
    "DEALER-DEALER": (zmtp.DEALER, zmq.DEALER),
    "PAIR-PAIR": (zmtp.PAIR, zmq.PAIR),
}


def zrecv(sock):
    """A test message from a zmtp socket (its sequence number), whole."""
    msg = sock.recv_multipart()
    if sock.type == zmtp.ROUTER:
        assert msg[0] == PEER_ID, msg[:2]
        msg = msg[1:]
    return seq_of(msg)


@pytest.mark.parametrize("side", ["zmtp_binds", "pyzmq_binds"])
@pytest.mark.parametrize("row", list(RECEIVING), ids=list(RECEIVING))
def test_rcvhwm_stops_reading(backend, ctx, zctx, tmp_path, transport, side, row):
    """A zmtp receiver with RCVHWM=10 that does not read, and a pyzmq sender
    that sends as fast as it can: zmtp stops reading at RCVHWM, so the sender
    gets Again within a finite bound and zmtp's read pages stay small; when
    zmtp reads, every message comes, whole and in order, and the sender goes
    on."""
    ztype, ptype = RECEIVING[row]
    z = zsock(ctx, ztype, rcvhwm=PEER_HWM)
    p = psock(zctx, ptype, sndhwm=PEER_HWM, sndbuf=PEER_BUF, routing_id=PEER_ID)
    link(z, p, side, address(transport, tmp_path))
    p.send_multipart(frames(0))
    assert zrecv(z) == 0
    base = zmtp.memory_stats()["page_bytes_live"]

    bound = PEER_HWM + PEER_HWM + KERNEL_IN // FRAME + SLACK
    # zmtp is not called meanwhile: its progress thread reads, up to RCVHWM
    n = fill_until_stalled(lambda i: p.send_multipart(frames(1 + i), zmq.DONTWAIT),
                           lambda ms: time.sleep(ms / 1000), bound)
    assert n >= PEER_HWM
    held = zmtp.memory_stats()["page_bytes_live"] - base
    # RCVHWM messages and one partial one; a 128 KiB frame has a buffer of
    # its own (at most twice what arrived), the small frames of a message
    # may pin a read page (64 KiB) each
    assert held <= (PEER_HWM + 2) * (2 * FRAME + (64 << 10)), f"{held >> 10} KiB held for RCVHWM={PEER_HWM}"

    assert [zrecv(z) for _ in range(n)] == list(range(1, 1 + n))
    p.send_multipart(frames(1 + n))  # the sender goes on
    assert zrecv(z) == 1 + n
    assert z.poll(50) == 0


def test_sub_rcvhwm_with_pyzmq_pub(backend, ctx, zctx):
    """A zmtp SUB with RCVHWM=10 that does not read, fed by a pyzmq PUB
    (SNDHWM=10) that publishes FLOOD messages: libzmq drops (the PUB never
    blocks), zmtp holds a bounded amount; when the SUB reads it gets fewer
    than FLOOD, each whole, in order."""
    sub = zsock(ctx, zmtp.SUB, rcvhwm=PEER_HWM)
    sub.subscribe(b"")
    pub = psock(zctx, zmq.PUB, sndhwm=PEER_HWM, sndbuf=PEER_BUF)
    pub.bind("tcp://127.0.0.1:*")
    sub.connect(pub.last_endpoint.decode())
    deadline = time.monotonic() + DEADLINE_S
    while True:  # until the subscription is in
        pub.send(b"probe")
        if sub.poll(20):
            break
        assert time.monotonic() < deadline
    while sub.poll(20):
        assert sub.recv_multipart() == [b"probe"]
    base = zmtp.memory_stats()["page_bytes_live"]
    sent = list(range(FLOOD))
    for seq in sent:
        pub.send_multipart(frames(seq))
    time.sleep(0.1)  # libzmq's I/O thread writes what it can meanwhile (no race: any time will do)
    held = zmtp.memory_stats()["page_bytes_live"] - base
    assert held <= (PEER_HWM + 2) * (2 * FRAME + (64 << 10)), f"{held >> 10} KiB held for RCVHWM={PEER_HWM}"

    def recv(ms):
        return seq_of(sub.recv_multipart()) if sub.poll(ms) else None

    got = drain_with_markers(recv, lambda seq: pub.send_multipart(frames(seq)), sent)
    assert all(a < b for a, b in zip(got, got[1:])), "out of order or duplicated"
    # (libzmq's PUB may drop before its pipe holds SNDHWM: it learns of
    # reads in batches)
    assert 0 < len([s for s in got if s < FLOOD]) < FLOOD


# ========================================================== per peer


def test_push_hwm_is_per_peer(backend, ctx, zctx):
    """PUSH to two pyzmq PULLs, one that never reads: once that one is at
    its HWM, round-robin skips it and everything else goes to the other;
    nothing is lost."""
    push = zsock(ctx, zmtp.PUSH, sndhwm=SNDHWM)
    push.bind("tcp://127.0.0.1:*")
    ep = push.last_endpoint.decode()
    stalled = psock(zctx, zmq.PULL, rcvhwm=PEER_HWM, rcvbuf=PEER_BUF)
    reader = psock(zctx, zmq.PULL)
    stalled.connect(ep)
    reader.connect(ep)
    deadline = time.monotonic() + DEADLINE_S
    while push.stats()["accepted"] < 2:  # both connected before the first send
        assert time.monotonic() < deadline
        settle(push, 10)
    settle(push, 50)  # both handshakes done
    total = 2 * SEND_BOUND + 100
    at_reader = []
    for seq in range(total):
        while True:
            try:
                push.send_multipart(frames(seq), zmtp.DONTWAIT)
                break
            except zmtp.Again:  # both full: the reader reads what it has
                assert time.monotonic() < deadline + 5, "the reader's queue never drained"
                while reader.poll(20):
                    at_reader.append(seq_of(reader.recv_multipart()))
    at_stalled = []
    while len(at_reader) + len(at_stalled) < total:
        assert time.monotonic() < deadline + 10, (len(at_reader), len(at_stalled), total)
        while reader.poll(10):
            at_reader.append(seq_of(reader.recv_multipart()))
        while stalled.poll(10):
            at_stalled.append(seq_of(stalled.recv_multipart()))
    assert sorted(at_reader + at_stalled) == list(range(total))
    assert at_reader == sorted(at_reader) and at_stalled == sorted(at_stalled)
    assert SNDHWM <= len(at_stalled) <= SEND_BOUND, len(at_stalled)
    assert push.stats()["dropped_messages"] == 0


def test_pub_hwm_is_per_peer(backend, ctx, zctx):
    """PUB to a pyzmq SUB that reads every message as it comes and one that
    never reads: the reader gets all of them, the stalled one loses some
    (whole messages), and the drops counted are the stalled one's."""
    pub = zsock(ctx, zmtp.PUB, sndhwm=SNDHWM)
    pub.bind("tcp://127.0.0.1:*")
    ep = pub.last_endpoint.decode()
    subs = []
    for opts in (dict(rcvhwm=PEER_HWM, rcvbuf=PEER_BUF), {}):
        s = psock(zctx, zmq.SUB, **opts)
        s.subscribe(b"")
        s.connect(ep)
        subs.append(s)
    stalled, reader = subs
    deadline = time.monotonic() + DEADLINE_S
    while True:  # until both subscriptions are in
        pub.send(b"probe")
        settle(pub, 20)
        if stalled.poll(0) and reader.poll(0):
            break
        assert time.monotonic() < deadline
    pub.send(b"end")
    for s in subs:
        while s.recv_multipart() != [b"end"]:
            pass
    before = pub.stats()["dropped_messages"]

    def send(seq):
        pub.send_multipart(frames(seq))
        assert seq_of(reader.recv_multipart()) == seq  # the reader keeps up

    sent = list(range(FLOOD))
    for seq in sent:
        send(seq)

    def recv(ms):
        return seq_of(stalled.recv_multipart()) if stalled.poll(ms) else None

    got = drain_with_markers(recv, send, sent)  # the stalled one reads now
    assert all(a < b for a, b in zip(got, got[1:])), "out of order or duplicated"
    data = [s for s in got if s < FLOOD]
    assert SNDHWM <= len(data) < FLOOD
    assert pub.stats()["dropped_messages"] - before == len(sent) - len(got)


# ============================================================ IMMEDIATE


@pytest.mark.parametrize("kind", ["PUSH", "DEALER", "PAIR"])
def test_immediate_queues_nothing_without_a_connection(backend, ctx, zctx, tmp_path, transport, kind):
    """IMMEDIATE=1, connected to an endpoint where nobody listens: a
    DONTWAIT send raises Again, a blocking one Again after SNDTIMEO (nothing
    is queued); once a pyzmq peer binds there, sends go through and the
    refused messages never arrive."""
    ep = unused_address(transport, tmp_path)
    z = zsock(ctx, getattr(zmtp, kind), immediate=1, reconnect_ivl=20)
    z.connect(ep)
    assert_again(z.send_multipart, frames(0), zmtp.DONTWAIT)
    assert_timed_again(z, frames(1))
    assert z.poll(0, zmtp.POLLOUT) == 0
    peer = psock(zctx, getattr(zmq, "PULL" if kind == "PUSH" else kind))
    peer.bind(ep)
    z.send_multipart(frames(2))  # blocks until the connection is complete
    assert seq_of(peer.recv_multipart()) == 2
    assert peer.poll(50) == 0


@pytest.mark.parametrize("immediate", [0, 1])
def test_immediate_after_disconnect(backend, ctx, zctx, tmp_path, transport, immediate):
    """When the only connection breaks: IMMEDIATE=1 queues nothing (Again)
    until it is complete again; IMMEDIATE=0 queues for the redial, and the
    message reaches the peer that binds there next."""
    ep = unused_address(transport, tmp_path)
    push = zsock(ctx, zmtp.PUSH, immediate=immediate, reconnect_ivl=20)
    pull = psock(zctx, zmq.PULL)
    pull.bind(ep)
    push.connect(ep)
    push.send_multipart(frames(0))
    assert seq_of(pull.recv_multipart()) == 0
    pull.close()
    deadline = time.monotonic() + DEADLINE_S
    while push.stats()["disconnected"] == 0:
        assert time.monotonic() < deadline, push.stats()
        settle(push, 10)
    if immediate:
        assert_again(push.send_multipart, frames(1), zmtp.DONTWAIT)
    else:
        push.send_multipart(frames(1), zmtp.DONTWAIT)
    pull = psock(zctx, zmq.PULL)
    pull.bind(ep)
    push.send_multipart(frames(2))
    expect = [2] if immediate else [1, 2]
    assert [seq_of(pull.recv_multipart()) for _ in expect] == expect
    assert pull.poll(50) == 0


def test_immediate_default_queues_up_to_sndhwm(backend, ctx, zctx, tmp_path, transport):
    """IMMEDIATE=0 (the default): a connecter queues SNDHWM messages before
    the peer exists (Again after that, as libzmq); they are delivered, in
    order, once a pyzmq PULL binds there."""
    ep = unused_address(transport, tmp_path)
    push = zsock(ctx, zmtp.PUSH, sndhwm=SNDHWM, reconnect_ivl=20)
    assert push.immediate == 0
    push.connect(ep)
    for seq in range(SNDHWM):
        push.send_multipart(frames(seq), zmtp.DONTWAIT)
    assert_again(push.send_multipart, frames(SNDHWM), zmtp.DONTWAIT)
    pull = psock(zctx, zmq.PULL)
    pull.bind(ep)
    assert [seq_of(pull.recv_multipart()) for _ in range(SNDHWM)] == list(range(SNDHWM))
    push.send_multipart(frames(SNDHWM))
    assert seq_of(pull.recv_multipart()) == SNDHWM
    assert push.stats()["dropped_messages"] == 0


def test_default_sndhwm_is_1000(backend, ctx):
    """SNDHWM defaults to 1000 messages (as libzmq): a PUSH connected to
    nobody queues exactly 1000, whatever their size, then Again."""
    push = zsock(ctx, zmtp.PUSH)
    assert push.sndhwm == 1000 and push.rcvhwm == 1000
    push.connect("tcp://127.0.0.1:1")
    for i in range(1000):
        push.send(b"%d" % i if i % 2 else b"", zmtp.DONTWAIT)
    assert_again(push.send, b"x", zmtp.DONTWAIT)


def test_sndhwm_zero_is_no_limit(backend, ctx):
    push = zsock(ctx, zmtp.PUSH, sndhwm=0)
    push.connect("tcp://127.0.0.1:1")
    for i in range(5000):
        push.send(b"%d" % i, zmtp.DONTWAIT)


def test_sndhwm_counts_messages_not_frames(backend, ctx, zctx, tmp_path, transport):
    """A 3-frame message counts once, whether sent whole or frame by frame
    with DONTWAIT (the frames after the first never raise Again): SNDHWM=10
    queues ten of them, then the first frame of the next one raises Again;
    all ten are delivered whole once a peer binds."""
    ep = unused_address(transport, tmp_path)
    push = zsock(ctx, zmtp.PUSH, sndhwm=SNDHWM, reconnect_ivl=20)
    push.connect(ep)
    for seq in range(SNDHWM):
        if seq % 2:
            push.send_multipart(frames(seq), zmtp.DONTWAIT)
        else:
            f = frames(seq)
            push.send(f[0], zmtp.DONTWAIT | zmtp.SNDMORE)
            push.send(f[1], zmtp.DONTWAIT | zmtp.SNDMORE)
            push.send(f[2], zmtp.DONTWAIT)
    assert_again(push.send_multipart, frames(SNDHWM), zmtp.DONTWAIT)
    assert_again(push.send, b"one frame", zmtp.DONTWAIT)
    assert_again(push.send, frames(SNDHWM)[0], zmtp.DONTWAIT | zmtp.SNDMORE)
    pull = psock(zctx, zmq.PULL)
    pull.bind(ep)
    assert [seq_of(pull.recv_multipart()) for _ in range(SNDHWM)] == list(range(SNDHWM))
    push.send_multipart(frames(SNDHWM))
    assert seq_of(pull.recv_multipart()) == SNDHWM


def test_dealer_immediate_skips_incomplete_connections(backend, ctx, zctx):
    """IMMEDIATE=1 DEALER connected to a live pyzmq ROUTER and to nobody:
    every message goes to the live one (none is queued to the other)."""
    router = psock(zctx, zmq.ROUTER)
    router.bind("tcp://127.0.0.1:*")
    dealer = zsock(ctx, zmtp.DEALER, immediate=1)
    dealer.connect("tcp://127.0.0.1:1")
    dealer.connect(router.last_endpoint.decode())
    for seq in range(20):
        dealer.send_multipart(frames(seq))  # waits for the live connection the first time
    got = [seq_of(router.recv_multipart()[1:]) for _ in range(20)]
    assert got == list(range(20))


@pytest.mark.parametrize("immediate", [0, 1])
def test_req_without_a_peer(backend, ctx, zctx, tmp_path, transport, immediate):
    """REQ has one request in flight, so its HWM never bites; without a
    peer: IMMEDIATE=1 raises Again (DONTWAIT, or after SNDTIMEO) and queues
    nothing; IMMEDIATE=0 queues the request for a REP that binds later.
    Either way the round trip works once a pyzmq REP is there."""
    ep = unused_address(transport, tmp_path)
    req = zsock(ctx, zmtp.REQ, immediate=immediate, reconnect_ivl=20)
    req.connect(ep)
    if immediate:
        assert_again(req.send, b"early", zmtp.DONTWAIT)
        assert_timed_again(req, [b"early"])
        assert req.poll(0, zmtp.POLLOUT) == 0
    else:
        req.send(b"early", zmtp.DONTWAIT)  # queued
    rep = psock(zctx, zmq.REP)
    rep.bind(ep)
    if immediate:
        req.send(b"late")  # blocks until the connection is complete
        assert rep.recv() == b"late"
    else:
        assert rep.recv() == b"early"
    rep.send(b"reply")
    assert req.recv() == b"reply"
    assert rep.poll(50) == 0


# ============================================ bounded partial messages


def test_partial_message_over_maxmsgsize_is_dropped_whole(backend, ctx, zctx):
    """A multipart message whose third frame exceeds MAXMSGSIZE: the
    connection is closed, none of its frames is delivered, their memory is
    freed, and the sender's next message (after its reconnect) arrives."""
    pull = zsock(ctx, zmtp.PULL, maxmsgsize=1000)
    pull.bind("tcp://127.0.0.1:*")
    push = psock(zctx, zmq.PUSH, reconnect_ivl=20)
    push.connect(pull.last_endpoint.decode())
    push.send(b"before")
    assert pull.recv_multipart() == [b"before"]
    base = zmtp.memory_stats()["page_bytes_live"]
    push.send_multipart([b"a" * 1000, b"b" * 1000, b"c" * 1001])
    deadline = time.monotonic() + DEADLINE_S
    while pull.stats()["protocol_errors"].get(ErrorCode.MSG_TOO_LARGE, 0) == 0:
        assert time.monotonic() < deadline, pull.stats()
        settle(pull, 10)
    push.send(b"after")
    assert pull.recv_multipart() == [b"after"]
    assert pull.stats()["protocol_errors"] == {ErrorCode.MSG_TOO_LARGE: 1}
    assert zmtp.memory_stats()["page_bytes_live"] <= base + (64 << 10)


def test_partial_message_over_frame_limit_is_dropped_whole(backend, ctx, zctx):
    """A message of more frames than the frame-count limit
    (MAX_FRAMES_DEFAULT): the connection is closed, nothing of it is
    delivered, and the sender's next message arrives."""
    pull = zsock(ctx, zmtp.PULL)
    pull.bind("tcp://127.0.0.1:*")
    push = psock(zctx, zmq.PUSH, reconnect_ivl=20)
    push.connect(pull.last_endpoint.decode())
    push.send_multipart([b"x"] * codec.MAX_FRAMES_DEFAULT)  # at the limit: fine
    assert len(pull.recv_multipart()) == codec.MAX_FRAMES_DEFAULT
    push.send_multipart([b"y"] * (codec.MAX_FRAMES_DEFAULT + 1))
    deadline = time.monotonic() + DEADLINE_S
    while pull.stats()["protocol_errors"].get(ErrorCode.TOO_MANY_FRAMES, 0) == 0:
        assert time.monotonic() < deadline, pull.stats()
        settle(pull, 10)
    push.send(b"after")
    assert pull.recv_multipart() == [b"after"]
    assert pull.stats()["protocol_errors"] == {ErrorCode.TOO_MANY_FRAMES: 1}
