"""libzmq's socket-pattern options (issue 18 item 4) against pyzmq peers.

Each scenario runs with the socket under test ("tested") made by zmtp and,
as the oracle, by pyzmq (libzmq 4.3.5) in the same place: both must give
the same observable result to a pyzmq peer.  Every scenario runs with the
tested socket binding and with the peer binding (where the option is about
connect(), only the side that connects), over tcp and ipc, on both zmtp
backends (the oracle once).

Options: CONFLATE, REQ_CORRELATE, REQ_RELAXED, PROBE_ROUTER,
ROUTER_HANDOVER, CONNECT_ROUTING_ID, XPUB_NODROP, XPUB_MANUAL,
XPUB_WELCOME_MSG, XPUB_VERBOSER, INVERT_MATCHING, METADATA; their getsockopt
(write-only ones say EINVAL, as libzmq's) and the socket types that take
them.  What zmtp does differently is in docs/options.md and
docs/decisions.md.
"""

from __future__ import annotations

import errno
import itertools
import struct
import time
from typing import Any, List, Tuple

import pytest

import zmtp
from helpers import DEADLINE_S, TIMEOUT_MS, psock, zsock

zmq = pytest.importorskip("zmq")

IMPLS = ["zmtp", "pyzmq"]
BINDERS = ["tested", "peer"]
TRANSPORTS = ["tcp", "ipc"]
_N = itertools.count()


def lib(impl: str) -> Any:
    return zmtp if impl == "zmtp" else zmq


def interop(fn: Any) -> Any:
    """Parametrize a scenario: the tested socket zmtp's or pyzmq's, binding
    or connecting, over tcp and ipc."""
    for name, values in (("transport", TRANSPORTS), ("binder", BINDERS), ("impl", IMPLS)):
        fn = pytest.mark.parametrize(name, values)(fn)
    return fn


def oracle_once(impl: str, backend: str) -> None:
    """The pyzmq oracle has no zmtp backend: it runs under the first one."""
    if impl == "pyzmq" and backend != "io_uring":
        pytest.skip("the pyzmq oracle runs once")


def make_tested(impl: str, ctx: Any, zctx: Any, kind: str, **opts: Any) -> Any:
    """The socket under test: zmtp's, or pyzmq's (the oracle), with opts."""
    if impl == "zmtp":
        s = zsock(ctx, getattr(zmtp, kind), **opts)
        s.linger = 0
        return s
    return psock(zctx, getattr(zmq, kind), **opts)


def peer(zctx: Any, kind: str, **opts: Any) -> Any:
    return psock(zctx, getattr(zmq, kind), **opts)


def endpoint(transport: str, tmp_path: Any) -> str:
    if transport == "tcp":
        return "tcp://127.0.0.1:*"
    return f"ipc://{tmp_path}/p{next(_N)}.ipc"


def link(bound: Any, connecting: Any, transport: str, tmp_path: Any) -> str:
    """Bind `bound`, connect `connecting` to it; the endpoint."""
    bound.bind(endpoint(transport, tmp_path))
    ep = bound.last_endpoint
    ep = ep.decode() if isinstance(ep, bytes) else ep
    connecting.connect(ep)
    return ep


def pair(t: Any, p: Any, binder: str, transport: str, tmp_path: Any) -> str:
    return link(t, p, transport, tmp_path) if binder == "tested" else link(p, t, transport, tmp_path)


def recv_driven(sock: Any, *drive: Any, multipart: bool = False) -> Any:
    """sock's next message, waiting up to DEADLINE_S; meanwhile the other
    sockets read EVENTS: a libzmq socket attaches a connection (and sends
    what it queues at attach: subscriptions, a probe, a welcome) only when
    its application thread calls into it."""
    deadline = time.monotonic() + DEADLINE_S
    while not sock.poll(20):
        assert time.monotonic() < deadline, "nothing arrived"
        for d in drive:
            d.getsockopt(d_events(d))
    return sock.recv_multipart() if multipart else sock.recv()


def d_events(sock: Any) -> int:
    return zmtp.EVENTS if isinstance(sock, zmtp.Socket) else zmq.EVENTS


def raises_einval(fn: Any) -> Exception:
    with pytest.raises((zmtp.ZMQError, zmq.ZMQError)) as info:
        fn()
    assert info.value.errno == errno.EINVAL
    return info.value


# ================================================= getsockopt, socket types

WRITE_ONLY = [
    ("REQ", "REQ_CORRELATE", 1), ("REQ", "REQ_RELAXED", 1), ("DEALER", "PROBE_ROUTER", 1),
    ("ROUTER", "ROUTER_HANDOVER", 1), ("ROUTER", "CONNECT_ROUTING_ID", b"id"), ("XPUB", "XPUB_NODROP", 1),
    ("XPUB", "XPUB_MANUAL", 1), ("XPUB", "XPUB_WELCOME_MSG", b"hi"), ("XPUB", "XPUB_VERBOSER", 1),
    ("DEALER", "METADATA", b"X-a:b"), ("XSUB", "ONLY_FIRST_SUBSCRIBE", 1),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind, name, value", WRITE_ONLY)
def test_write_only_options_say_einval_on_get(impl, kind, name, value, ctx, zctx):
    """libzmq cannot read these back: getsockopt says EINVAL (set works)."""
    s = make_tested(impl, ctx, zctx, kind)
    opt = getattr(lib(impl), name)
    s.setsockopt(opt, value)
    raises_einval(lambda: s.getsockopt(opt))


@pytest.mark.parametrize("impl", IMPLS)
def test_readable_options_read_back(impl, ctx, zctx):
    """CONFLATE (0/1 only) and INVERT_MATCHING (any int, read as 0/1)."""
    L = lib(impl)
    s = make_tested(impl, ctx, zctx, "PULL")
    assert s.getsockopt(L.CONFLATE) == 0 and s.getsockopt(L.INVERT_MATCHING) == 0
    s.setsockopt(L.CONFLATE, 1)
    s.setsockopt(L.INVERT_MATCHING, -1)
    assert s.getsockopt(L.CONFLATE) == 1 and s.getsockopt(L.INVERT_MATCHING) == 1
    raises_einval(lambda: s.setsockopt(L.CONFLATE, 2))


REFUSED = [("PULL", "REQ_CORRELATE"), ("DEALER", "REQ_RELAXED"), ("PUSH", "PROBE_ROUTER"),
           ("DEALER", "ROUTER_HANDOVER"), ("SUB", "XPUB_NODROP"), ("XSUB", "XPUB_MANUAL"),
           ("SUB", "XPUB_VERBOSER"), ("DEALER", "CONNECT_ROUTING_ID"), ("SUB", "XPUB_WELCOME_MSG"),
           ("SUB", "ONLY_FIRST_SUBSCRIBE")]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind, name", REFUSED)
def test_options_refused_on_other_socket_types(impl, kind, name, ctx, zctx):
    s = make_tested(impl, ctx, zctx, kind)
    value = b"x" if name in ("CONNECT_ROUTING_ID", "XPUB_WELCOME_MSG") else 1
    raises_einval(lambda: s.setsockopt(getattr(lib(impl), name), value))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("value", [b"Y-a:b", b"x-a:b", b"X-a:", b":b", b"X-:b", b"X-a"])
def test_metadata_values_refused_as_libzmq(impl, value, ctx, zctx):
    s = make_tested(impl, ctx, zctx, "DEALER")
    raises_einval(lambda: s.setsockopt(lib(impl).METADATA, value))


def test_zmtp_names_the_option_in_its_errors(ctx):
    s = zsock(ctx, zmtp.PULL)
    assert "REQ_CORRELATE is for REQ sockets" in str(raises_einval(lambda: s.setsockopt(zmtp.REQ_CORRELATE, 1)))
    r = zsock(ctx, zmtp.REQ)
    r.req_correlate = 1
    assert "write-only" in str(raises_einval(lambda: r.req_correlate))
    assert zmtp.CONNECT_RID == zmtp.CONNECT_ROUTING_ID == 61 and zmtp.METADATA == zmq.METADATA


# ================================================================ CONFLATE


def _conflated(t: Any, last: bytes) -> List[bytes]:
    """What t receives until `last`: in order, and few (a sender burst 100
    messages before the first recv: CONFLATE kept only the newest of what
    had arrived at each recv), then nothing more."""
    got: List[bytes] = []
    while not got or got[-1] != last:
        # poll, then recv: a libzmq CONFLATE socket (the oracle) once let a
        # blocking recv time out with the message there (seen under load)
        try:
            got.append(recv_driven(t))
        except AssertionError:
            if isinstance(t, zmq.Socket):
                # The oracle, not zmtp: libzmq 4.3.5's CONFLATE reader has
                # also missed its wake-up for good (2 of ~4 000 tests in a
                # clean-clone run, 2026-12-06): not a verdict on zmtp.
                pytest.xfail("libzmq 4.3.5's CONFLATE socket (the oracle) never saw the message")
            raise
    assert [int(g) for g in got[:-1]] == sorted(int(g) for g in got[:-1])
    assert len(got) < 50, got
    with pytest.raises((zmtp.Again, zmq.Again)):
        t.recv(zmtp.NOBLOCK)
    return got


@interop
def test_conflate_pull_keeps_the_newest(impl, binder, transport, backend, ctx, zctx, tmp_path):
    """A PULL with CONFLATE whose PUSH peer sent 100 messages and an end
    mark receives the mark after few of them."""
    oracle_once(impl, backend)
    t = make_tested(impl, ctx, zctx, "PULL", conflate=1)
    push = peer(zctx, "PUSH")
    pair(t, push, binder, transport, tmp_path)
    push.send(b"0")
    assert recv_driven(t, push) == b"0"  # connected both ways
    for i in range(100):
        push.send(b"%d" % i)
    push.send(b"end")
    _conflated(t, b"end")


@interop
def test_conflate_sub_keeps_the_newest(impl, binder, transport, backend, ctx, zctx, tmp_path):
    oracle_once(impl, backend)
    t = make_tested(impl, ctx, zctx, "SUB", conflate=1)
    t.setsockopt(lib(impl).SUBSCRIBE, b"")
    pub = peer(zctx, "XPUB")
    pair(t, pub, binder, transport, tmp_path)
    assert recv_driven(pub, t) == b"\x01"  # the subscription is in
    for i in range(100):
        pub.send(b"%d" % i)
    pub.send(b"end")
    _conflated(t, b"end")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["PUSH", "PUB"])
@pytest.mark.parametrize("binder", BINDERS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_conflate_sender(impl, kind, binder, transport, backend, ctx, zctx, tmp_path):
    """A PUSH or PUB with CONFLATE never waits for a peer that does not
    read: each message replaces the ones not sent yet.  The peer then gets
    what the kernel's buffers held and the last one, not all 400 (25 MiB)."""
    oracle_once(impl, backend)
    L = lib(impl)
    t = make_tested(impl, ctx, zctx, kind, conflate=1)
    p = peer(zctx, "PULL" if kind == "PUSH" else "SUB", rcvhwm=1)
    if kind == "PUB":
        p.setsockopt(zmq.SUBSCRIBE, b"")
    pair(t, p, binder, transport, tmp_path)
    deadline = time.monotonic() + DEADLINE_S
    while True:  # connected (and, for PUB, subscribed)
        t.send(b"hello")
        if p.poll(20):
            break
        assert time.monotonic() < deadline, "the peer never got a message"
    body = b"x" * 65536
    for i in range(400):
        t.send(b"%03d" % i + body, L.NOBLOCK)  # never Again
    t.send(b"last", L.NOBLOCK)
    got: List[bytes] = []
    while not got or got[-1] != b"last":
        m = recv_driven(p, t)
        if m != b"hello":
            got.append(m)
    assert len(got) < 401, len(got)
    assert all(g[3:] == body for g in got[:-1])
    assert [int(g[:3]) for g in got[:-1]] == sorted(int(g[:3]) for g in got[:-1])


# ============================================ REQ_CORRELATE, REQ_RELAXED


def _router_request(router: Any) -> Tuple[bytes, bytes, bytes]:
    """(routing id, request id, body) of a correlated request."""
    rid, req_id, delim, body = router.recv_multipart()
    assert len(req_id) == 4 and delim == b""
    return rid, req_id, body


def _other_id(req_id: bytes) -> bytes:
    return struct.pack("=I", (struct.unpack("=I", req_id)[0] + 1) & 0xFFFFFFFF)


@interop
def test_req_correlate(impl, binder, transport, backend, ctx, zctx, tmp_path):
    """The ROUTER sees [id, request id (4 bytes), b"", body]; a reply with
    another request id is dropped, the one with this id is the reply; the
    next request has a new id."""
    oracle_once(impl, backend)
    t = make_tested(impl, ctx, zctx, "REQ", req_correlate=1)
    router = peer(zctx, "ROUTER")
    pair(t, router, binder, transport, tmp_path)
    t.send(b"q1")
    rid, req_id, body = _router_request(router)
    assert body == b"q1"
    router.send_multipart([rid, _other_id(req_id), b"", b"stale"])
    router.send_multipart([rid, b"", b"uncorrelated"])
    router.send_multipart([rid, req_id, b"", b"a1"])
    assert t.recv() == b"a1"
    t.send(b"q2")
    rid2, req_id2, body2 = _router_request(router)
    assert (rid2, body2) == (rid, b"q2") and req_id2 != req_id
    router.send_multipart([rid, req_id2, b"", b"a2"])
    assert t.recv() == b"a2"


@interop
def test_req_correlate_through_rep(impl, binder, transport, backend, ctx, zctx, tmp_path):
    """A REP echoes the whole envelope: correlation is invisible to it."""
    oracle_once(impl, backend)
    t = make_tested(impl, ctx, zctx, "REQ", req_correlate=1)
    rep = peer(zctx, "REP")
    pair(t, rep, binder, transport, tmp_path)
    for i in range(3):
        t.send(b"q%d" % i)
        assert rep.recv() == b"q%d" % i
        rep.send(b"a%d" % i)
        assert t.recv() == b"a%d" % i


@interop
def test_req_relaxed(impl, binder, transport, backend, ctx, zctx, tmp_path):
    """Without REQ_RELAXED a second request before the reply is EFSM; with
    it (and REQ_CORRELATE) it goes, and the late reply to the first is
    dropped: the reply is the second's."""
    oracle_once(impl, backend)
    L = lib(impl)
    strict = make_tested(impl, ctx, zctx, "REQ")
    router0 = peer(zctx, "ROUTER")
    pair(strict, router0, binder, transport, tmp_path)
    strict.send(b"q")
    with pytest.raises((zmtp.ZMQError, zmq.ZMQError)) as info:
        strict.send(b"again")
    assert info.value.errno == L.EFSM

    t = make_tested(impl, ctx, zctx, "REQ", req_relaxed=1, req_correlate=1)
    router = peer(zctx, "ROUTER")
    pair(t, router, binder, transport, tmp_path)
    t.send(b"q1")
    t.send(b"q2")  # no EFSM
    rid, id1, b1 = _router_request(router)
    _, id2, b2 = _router_request(router)
    assert (b1, b2) == (b"q1", b"q2") and id1 != id2
    router.send_multipart([rid, id1, b"", b"a1"])
    router.send_multipart([rid, id2, b"", b"a2"])
    assert t.recv() == b"a2"


# ============================================================ PROBE_ROUTER


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["DEALER", "REQ", "ROUTER"])
@pytest.mark.parametrize("binder", BINDERS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_probe_router(impl, kind, binder, transport, backend, ctx, zctx, tmp_path):
    """The ROUTER peer gets [id, b""] from a PROBE_ROUTER socket before
    anything else, without the socket sending."""
    oracle_once(impl, backend)
    t = make_tested(impl, ctx, zctx, kind, probe_router=1, routing_id=b"prober")
    router = peer(zctx, "ROUTER")
    pair(t, router, binder, transport, tmp_path)
    assert recv_driven(router, t, multipart=True) == [b"prober", b""]
    if kind != "ROUTER":  # what the socket sends comes after the probe
        t.send(b"after")
        assert router.recv_multipart() == [b"prober"] + ([b""] if kind == "REQ" else []) + [b"after"]


# ========================================================= ROUTER_HANDOVER


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_router_handover(impl, transport, backend, ctx, zctx, tmp_path):
    """A second peer with a routing id in use takes it over: messages to
    that id go to it; the first peer's are no longer routed to it."""
    oracle_once(impl, backend)
    t = make_tested(impl, ctx, zctx, "ROUTER", router_handover=1)
    t.bind(endpoint(transport, tmp_path))
    ep = t.last_endpoint
    ep = ep.decode() if isinstance(ep, bytes) else ep
    # no redial: closed by the handover, it would come back and take the id
    # over again (libzmq's too)
    d1 = peer(zctx, "DEALER", routing_id=b"same", reconnect_ivl=-1)
    d1.connect(ep)
    d1.send(b"one")
    assert t.recv_multipart() == [b"same", b"one"]
    d2 = peer(zctx, "DEALER", routing_id=b"same")
    d2.connect(ep)
    d2.send(b"two")
    assert t.recv_multipart() == [b"same", b"two"]
    t.send_multipart([b"same", b"to-new"])
    assert d2.recv() == b"to-new"
    assert d1.poll(0) == 0


# ====================================================== CONNECT_ROUTING_ID


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("peer_kind", ["DEALER", "ROUTER"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connect_routing_id(impl, peer_kind, transport, backend, ctx, zctx, tmp_path):
    """The peer of the next connect() is known by that id (whatever it
    announces), and only that connect: the next peer has its own."""
    oracle_once(impl, backend)
    t = make_tested(impl, ctx, zctx, "ROUTER", router_mandatory=1)
    L = lib(impl)
    p1 = peer(zctx, peer_kind, routing_id=b"announced")
    p1.bind(endpoint(transport, tmp_path))
    t.setsockopt(L.CONNECT_ROUTING_ID, b"chosen")
    t.connect(p1.last_endpoint.decode())
    p2 = peer(zctx, peer_kind, routing_id=b"second")
    p2.bind(endpoint(transport, tmp_path))
    t.connect(p2.last_endpoint.decode())

    def to_router_peer(p: Any, body: bytes) -> None:
        if peer_kind == "ROUTER":
            p.send_multipart([t.getsockopt(L.ROUTING_ID) or b"", body])
        else:
            p.send(body)

    if peer_kind == "DEALER":
        p1.send(b"from-1")
        assert t.recv_multipart() == [b"chosen", b"from-1"]
        p2.send(b"from-2")
        assert t.recv_multipart() == [b"second", b"from-2"]
    # the tested ROUTER reaches them by those ids (ROUTER_MANDATORY: an
    # unknown id would raise); wait until both are up
    for rid, p in ((b"chosen", p1), (b"second", p2)):
        for _ in range(200):
            try:
                t.send_multipart([rid, b"hi-" + rid])
                break
            except (zmtp.ZMQError, zmq.ZMQError) as exc:
                assert exc.errno == errno.EHOSTUNREACH
                t.poll(25)
        got = p.recv_multipart()
        assert got[-1] == b"hi-" + rid
    raises_einval(lambda: t.getsockopt(L.CONNECT_ROUTING_ID))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connect_routing_id_stream(impl, transport, backend, ctx, zctx, tmp_path):
    """A STREAM's connect with CONNECT_ROUTING_ID: its notification and
    data come under that id."""
    oracle_once(impl, backend)
    t = make_tested(impl, ctx, zctx, "STREAM")
    server = peer(zctx, "STREAM")
    server.bind(endpoint(transport, tmp_path))
    t.setsockopt(lib(impl).CONNECT_ROUTING_ID, b"raw-peer")
    t.connect(server.last_endpoint.decode())
    assert t.recv_multipart() == [b"raw-peer", b""]
    t.send_multipart([b"raw-peer", b"bytes"])
    sid, data = server.recv_multipart()
    while data == b"":  # the server's own connect notification
        sid, data = server.recv_multipart()
    assert data == b"bytes"


# ============================================================= XPUB_NODROP


@interop
def test_xpub_nodrop(impl, binder, transport, backend, ctx, zctx, tmp_path):
    """With a subscriber that does not read, an XPUB_NODROP send says Again
    once that subscriber is at SNDHWM; nothing is dropped: a blocking send
    waits for room and the subscriber gets every message."""
    oracle_once(impl, backend)
    L = lib(impl)
    t = make_tested(impl, ctx, zctx, "XPUB", xpub_nodrop=1, sndhwm=5)
    sub = peer(zctx, "SUB", rcvhwm=5)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    pair(t, sub, binder, transport, tmp_path)
    assert recv_driven(t, sub) == b"\x01"
    body = b"x" * 16384
    sent = 0
    with pytest.raises((zmtp.Again, zmq.Again)):
        for sent in range(20000):
            t.send(body, L.NOBLOCK)
    assert 0 < sent < 20000
    # nothing was dropped: the subscriber reads every one, then the mark
    t.setsockopt(L.SNDTIMEO, TIMEOUT_MS)
    done = []

    def read_all() -> None:
        for i in range(sent):
            assert sub.recv() == body, i
        assert sub.recv() == b"end"
        done.append(True)

    import threading

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    t.send(b"end")  # waits for room (XPUB_NODROP), then goes
    deadline = time.monotonic() + DEADLINE_S
    while reader.is_alive() and time.monotonic() < deadline:
        t.poll(20)  # zmtp: drive the writes
    reader.join(1)
    assert done == [True]


# ============================================================= XPUB_MANUAL


@interop
def test_xpub_manual(impl, binder, transport, backend, ctx, zctx, tmp_path):
    """Every subscription is passed up (duplicates too) and none applied:
    SUBSCRIBE on the XPUB applies a topic to the peer of the last one
    received, and only that topic reaches it."""
    oracle_once(impl, backend)
    L = lib(impl)
    t = make_tested(impl, ctx, zctx, "XPUB", xpub_manual=1)
    sub = peer(zctx, "SUB")
    pair(t, sub, binder, transport, tmp_path)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    assert recv_driven(t, sub) == b"\x01"
    t.setsockopt(L.SUBSCRIBE, b"b")  # not what it asked for
    for m in (b"a1", b"b1", b"c1", b"b2"):
        t.send(m)
    assert sub.recv() == b"b1" and sub.recv() == b"b2"
    sub.setsockopt(zmq.SUBSCRIBE, b"")  # a duplicate: passed up too
    assert recv_driven(t, sub) == b"\x01"
    t.setsockopt(L.UNSUBSCRIBE, b"b")
    t.setsockopt(L.SUBSCRIBE, b"c")
    for m in (b"b3", b"c3"):
        t.send(m)
    assert sub.recv() == b"c3"


# ======================================================== XPUB_WELCOME_MSG


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["XPUB", "PUB"])
@pytest.mark.parametrize("binder", BINDERS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_xpub_welcome_msg(impl, kind, binder, transport, backend, ctx, zctx, tmp_path):
    """Each new subscriber gets the welcome message first, before what is
    published."""
    oracle_once(impl, backend)
    t = make_tested(impl, ctx, zctx, kind, xpub_welcome_msg=b"WELCOME")
    subs = []
    for _ in range(2):
        sub = peer(zctx, "SUB")
        sub.setsockopt(zmq.SUBSCRIBE, b"WELCOME")
        pair(t, sub, binder, transport, tmp_path)
        subs.append(sub)
    for sub in subs:
        assert recv_driven(sub, t) == b"WELCOME"


# =========================================================== XPUB_VERBOSER


@interop
def test_xpub_verboser(impl, binder, transport, backend, ctx, zctx, tmp_path):
    """Every subscription and every cancel is passed up, not only the
    first and the last of a topic; XPUB_VERBOSE turns the cancels off."""
    oracle_once(impl, backend)
    L = lib(impl)
    t = make_tested(impl, ctx, zctx, "XPUB", xpub_verboser=1)
    s1, s2 = peer(zctx, "SUB"), peer(zctx, "SUB")
    pair(t, s1, binder, transport, tmp_path)
    pair(t, s2, binder, transport, tmp_path)
    s1.setsockopt(zmq.SUBSCRIBE, b"t")
    assert recv_driven(t, s1, s2) == b"\x01t"
    s2.setsockopt(zmq.SUBSCRIBE, b"t")
    assert recv_driven(t, s1, s2) == b"\x01t"
    s1.setsockopt(zmq.UNSUBSCRIBE, b"t")
    assert recv_driven(t, s1, s2) == b"\x00t"  # s2 still subscribes: verboser only
    s2.setsockopt(zmq.UNSUBSCRIBE, b"t")
    assert recv_driven(t, s1, s2) == b"\x00t"
    # XPUB_VERBOSE after it: duplicates yes, cancels only the last
    t.setsockopt(L.XPUB_VERBOSE, 1)
    s1.setsockopt(zmq.SUBSCRIBE, b"u")
    assert recv_driven(t, s1, s2) == b"\x01u"
    s2.setsockopt(zmq.SUBSCRIBE, b"u")
    assert recv_driven(t, s1, s2) == b"\x01u"
    s1.setsockopt(zmq.UNSUBSCRIBE, b"u")
    s2.setsockopt(zmq.UNSUBSCRIBE, b"u")
    assert recv_driven(t, s1, s2) == b"\x00u"
    s1.setsockopt(zmq.SUBSCRIBE, b"v")  # a marker: nothing came between
    assert recv_driven(t, s1, s2) == b"\x01v"


# ========================================================= INVERT_MATCHING


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("side", ["XPUB", "SUB"])
@pytest.mark.parametrize("binder", BINDERS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_invert_matching(impl, side, binder, transport, backend, ctx, zctx, tmp_path):
    """An XPUB with INVERT_MATCHING sends what matches none of a peer's
    subscriptions, and a SUB with it keeps those (libzmq: both ends invert);
    the tested socket is either end."""
    oracle_once(impl, backend)
    t = make_tested(impl, ctx, zctx, side, invert_matching=1)
    other = peer(zctx, "SUB" if side == "XPUB" else "XPUB", invert_matching=1)
    pub, sub = (t, other) if side == "XPUB" else (other, t)
    pair(t, other, binder, transport, tmp_path)
    sub.setsockopt(zmq.SUBSCRIBE, b"a")  # the same number in zmtp
    assert recv_driven(pub, sub) == b"\x01a"
    for m in (b"a1", b"b1", b"a2", b"c1"):
        pub.send(m)
    assert [sub.recv() for _ in range(2)] == [b"b1", b"c1"]


# ==================================================== ONLY_FIRST_SUBSCRIBE


@interop
def test_only_first_subscribe_xpub(impl, binder, transport, backend, ctx, zctx, tmp_path):
    """An XPUB with ONLY_FIRST_SUBSCRIBE: a multipart message whose first
    frame is a subscription subscribes; one whose first frame is data is
    data, whatever its other frames look like."""
    oracle_once(impl, backend)
    t = make_tested(impl, ctx, zctx, "XPUB", only_first_subscribe=1)
    xsub = peer(zctx, "XSUB")
    pair(t, xsub, binder, transport, tmp_path)
    xsub.send_multipart([b"\x01a", b"\x01b"])
    assert recv_driven(t, xsub) == b"\x01a"
    assert t.recv() == b"\x01b"
    xsub.send_multipart([b"data", b"\x01c"])
    assert t.recv_multipart() == [b"data", b"\x01c"]
    for m in (b"c1", b"b1"):  # c is no subscription
        t.send(m)
    assert xsub.recv() == b"b1"


@interop
def test_only_first_subscribe_xsub(impl, binder, transport, backend, ctx, zctx, tmp_path):
    """An XSUB with ONLY_FIRST_SUBSCRIBE: the first frame of a multipart
    message subscribes (upstream and for its own filter), the frames after
    it reach the XPUB as data."""
    oracle_once(impl, backend)
    t = make_tested(impl, ctx, zctx, "XSUB", only_first_subscribe=1)
    xpub = peer(zctx, "XPUB")
    pair(t, xpub, binder, transport, tmp_path)
    t.send(b"\x01z")  # a subscription the plain way: the link is up
    assert recv_driven(xpub, t) == b"\x01z"
    t.send_multipart([b"\x01a", b"rest", b"\x01more"])
    assert xpub.recv() == b"\x01a"
    assert xpub.recv() == b"rest"
    for m in (b"b1", b"a1"):
        xpub.send(m)
    assert t.recv() == b"a1"


# ================================================================ METADATA


@interop
def test_metadata_sent(impl, binder, transport, backend, ctx, zctx, tmp_path):
    """METADATA goes in the handshake: the pyzmq peer reads it from a
    received frame; a second value for a name is ignored (libzmq)."""
    oracle_once(impl, backend)
    L = lib(impl)
    t = make_tested(impl, ctx, zctx, "DEALER")
    t.setsockopt(L.METADATA, b"X-color:blue")
    t.setsockopt(L.METADATA, b"X-color:red")
    t.setsockopt(L.METADATA, b"X-Shape:a:b")
    router = peer(zctx, "ROUTER")
    pair(t, router, binder, transport, tmp_path)
    t.send(b"m")
    rid, frame = router.recv_multipart(copy=False)
    assert frame.bytes == b"m"
    assert frame.get("X-color") == "blue" and frame.get("X-Shape") == "a:b"
    assert frame.get("Socket-Type") == "DEALER"


@pytest.mark.parametrize("binder", BINDERS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metadata_received_and_zmtp_to_zmtp(binder, transport, backend, ctx, zctx, tmp_path):
    """The other way: a pyzmq peer's METADATA read by zmtp, and zmtp to
    zmtp."""
    z = zsock(ctx, zmtp.ROUTER)
    p = peer(zctx, "DEALER", metadata=b"X-from:pyzmq")
    pair(z, p, binder, transport, tmp_path)
    p.send(b"m")
    _, frame = z.recv_multipart(copy=False)
    assert frame.get("X-from") == "pyzmq"
    d = zsock(ctx, zmtp.DEALER)
    d.metadata = b"X-from:zmtp"
    r = zsock(ctx, zmtp.ROUTER)
    pair(r, d, binder, transport, tmp_path)
    d.send(b"m")
    _, frame = r.recv_multipart(copy=False)
    assert frame.get("X-from") == "zmtp"


# ================================================= inproc (zmtp both ends)


def _inproc(bound: Any, connecting: Any) -> None:
    ep = f"inproc://opt-{next(_N)}"
    bound.bind(ep)
    connecting.connect(ep)


@pytest.mark.parametrize("binder", BINDERS)
def test_inproc_probe_welcome_conflate(binder, backend, ctx):
    """PROBE_ROUTER, XPUB_WELCOME_MSG and CONFLATE over inproc."""
    prober = zsock(ctx, zmtp.DEALER, probe_router=1, routing_id=b"prober")
    router = zsock(ctx, zmtp.ROUTER)
    _inproc(prober, router) if binder == "tested" else _inproc(router, prober)
    assert recv_driven(router, prober, multipart=True) == [b"prober", b""]

    xpub = zsock(ctx, zmtp.XPUB, xpub_welcome_msg=b"hi")
    sub = zsock(ctx, zmtp.SUB)
    sub.subscribe(b"")
    _inproc(xpub, sub) if binder == "tested" else _inproc(sub, xpub)
    assert recv_driven(sub, xpub) == b"hi"

    pull = zsock(ctx, zmtp.PULL, conflate=1)
    push = zsock(ctx, zmtp.PUSH)
    _inproc(pull, push) if binder == "tested" else _inproc(push, pull)
    push.send(b"0")
    assert pull.recv() == b"0"
    for i in range(100):
        push.send(b"%d" % i)
    push.send(b"end")
    _conflated(pull, b"end")


def test_inproc_routing_ids_and_requests(backend, ctx):
    """CONNECT_ROUTING_ID, ROUTER_HANDOVER and REQ_CORRELATE over inproc."""
    r = zsock(ctx, zmtp.ROUTER, router_handover=1)
    d = zsock(ctx, zmtp.DEALER)
    d.bind("inproc://opt-rid")
    r.connect_routing_id = b"chosen"
    r.connect("inproc://opt-rid")
    d.send(b"x")
    assert r.recv_multipart() == [b"chosen", b"x"]

    r.bind("inproc://opt-handover")
    d1 = zsock(ctx, zmtp.DEALER, routing_id=b"same")
    d1.connect("inproc://opt-handover")
    d1.send(b"one")
    assert r.recv_multipart() == [b"same", b"one"]
    d2 = zsock(ctx, zmtp.DEALER, routing_id=b"same")
    d2.connect("inproc://opt-handover")
    d2.send(b"two")
    assert r.recv_multipart() == [b"same", b"two"]
    r.send_multipart([b"same", b"to-new"])
    assert d2.recv() == b"to-new"

    req = zsock(ctx, zmtp.REQ, req_correlate=1, req_relaxed=1)
    req.connect("inproc://opt-handover")
    req.send(b"q1")
    req.send(b"q2")
    rid, id1, _, q1 = r.recv_multipart()
    _, id2, _, q2 = r.recv_multipart()
    assert (q1, q2) == (b"q1", b"q2")
    r.send_multipart([rid, id1, b"", b"a1"])
    r.send_multipart([rid, id2, b"", b"a2"])
    assert req.recv() == b"a2"


def test_inproc_xpub_options(backend, ctx):
    """XPUB_MANUAL, XPUB_VERBOSER and INVERT_MATCHING over inproc."""
    x = zsock(ctx, zmtp.XPUB, xpub_manual=1)
    x.bind("inproc://opt-manual")
    s = zsock(ctx, zmtp.SUB)
    s.connect("inproc://opt-manual")
    s.subscribe(b"")
    assert recv_driven(x, s) == b"\x01"
    x.subscribe(b"b")
    x.send(b"a1")
    x.send(b"b1")
    assert s.recv() == b"b1"

    v = zsock(ctx, zmtp.XPUB, xpub_verboser=1)
    v.bind("inproc://opt-verboser")
    s1, s2 = zsock(ctx, zmtp.SUB), zsock(ctx, zmtp.SUB)
    for sub in (s1, s2):
        sub.connect("inproc://opt-verboser")
        sub.subscribe(b"t")
        assert recv_driven(v, sub) == b"\x01t"
    s1.unsubscribe(b"t")
    assert recv_driven(v, s1) == b"\x00t"

    p = zsock(ctx, zmtp.XPUB, invert_matching=1)
    p.bind("inproc://opt-invert")
    q = zsock(ctx, zmtp.SUB, invert_matching=1)
    q.connect("inproc://opt-invert")
    q.subscribe(b"a")
    assert recv_driven(p, q) == b"\x01a"
    for m in (b"a1", b"b1"):
        p.send(m)
    assert q.recv() == b"b1"


@pytest.mark.parametrize("binder", BINDERS)
def test_metadata_with_plain(binder, backend, ctx, zctx, tmp_path):
    """PLAIN carries METADATA too (INITIATE / READY): a zmtp PLAIN client's
    reaches the pyzmq server, the server's reaches the zmtp client."""
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(zctx)
    auth.start()
    try:
        auth.configure_plain(domain="*", passwords={"u": "p"})
        server = peer(zctx, "ROUTER", plain_server=1, metadata=b"X-side:server")
        client = zsock(ctx, zmtp.DEALER, plain_username=b"u", plain_password=b"p", metadata=b"X-side:client")
        pair(client, server, "tested" if binder == "tested" else "peer", "tcp", tmp_path)
        client.send(b"hi")
        rid, frame = server.recv_multipart(copy=False)
        assert frame.get("X-side") == "client"
        server.send_multipart([rid.bytes, b"yo"])
        reply = client.recv(copy=False)
        assert reply.get("X-side") == "server"
    finally:
        auth.stop()


@pytest.mark.parametrize("zmtp_side", ["client", "server"])
@pytest.mark.parametrize("binder", BINDERS)
def test_metadata_with_curve(zmtp_side, binder, backend, ctx, zctx, tmp_path):
    """CURVE carries METADATA in its boxes (the client's in INITIATE, the
    server's in READY), whichever side is zmtp: a long value (1000 bytes,
    more than Socket-Type and Identity take) reaches libzmq and back."""
    if not zmtp.has("curve"):
        pytest.skip("zmtp has no CURVE here (libsodium not found)")
    long_value = b"v" * 1000
    spub, ssec = zmq.curve_keypair()
    cpub, csec = zmq.curve_keypair()
    server_opts = dict(curve_server=1, curve_secretkey=ssec, curve_publickey=spub,
                       metadata=b"X-side:server")
    client_opts = dict(curve_serverkey=spub, curve_secretkey=csec, curve_publickey=cpub,
                       metadata=b"X-long:" + long_value)
    if zmtp_side == "client":
        tested = zsock(ctx, zmtp.DEALER, **client_opts)
        other = peer(zctx, "ROUTER", **server_opts)
    else:
        tested = zsock(ctx, zmtp.ROUTER, **server_opts)
        other = peer(zctx, "DEALER", **client_opts)
    pair(tested, other, binder, "tcp", tmp_path)
    client, server = (tested, other) if zmtp_side == "client" else (other, tested)
    client.send(b"hi")
    rid, frame = server.recv_multipart(copy=False)
    assert frame.get("X-long") == long_value.decode()
    server.send_multipart([rid.bytes, b"yo"])
    reply = client.recv(copy=False)
    assert reply.get("X-side") == "server"


def test_inproc_xpub_nodrop(backend, ctx, spawn):
    """XPUB_NODROP over inproc: Again at the pipe's HWM, then a blocking
    send waits until the subscriber reads; nothing is lost."""
    x = zsock(ctx, zmtp.XPUB, xpub_nodrop=1, sndhwm=5)
    x.bind("inproc://opt-nodrop")
    s = zsock(ctx, zmtp.SUB, rcvhwm=5)
    s.connect("inproc://opt-nodrop")
    s.subscribe(b"")
    assert recv_driven(x, s) == b"\x01"
    sent = 0
    with pytest.raises(zmtp.Again):
        for sent in range(10000):
            x.send(b"%d" % sent, zmtp.NOBLOCK)
    reader = spawn(lambda: [s.recv() for _ in range(sent + 1)])
    x.send(b"end")
    assert reader.result() == [b"%d" % i for i in range(sent)] + [b"end"]
