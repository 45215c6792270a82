"""ZMTP/2.0 peers (RFC 15), as libzmq 4.3.5 accepts them by default.

A peer that greets with revision 0x01 (libzmq 3.x, JeroMQ 0.3, old NetMQ) is
answered in ZMTP/2.0: zmtp sends the first 11 octets of its 3.1 greeting
(signature, major 3), reads the peer's revision octet, and finishes with its
socket-type octet and identity frame instead of the rest.  The peer here is
hand-written from RFC 15 over a raw tcp or ipc socket, both ways (it connects
to a zmtp bind; zmtp connects to its listener), on both backends.  JeroMQ 0.3
(Debian's libjeromq-java, which speaks 2.0) is the real peer where installed.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

import pytest
from helpers import DEADLINE_S, connect_to, settle, wait_for, zsock

import zmtp
from zmtp.codec import ErrorCode

SIG = b"\xff" + b"\x00" * 8 + b"\x7f"
#: what zmtp sends before it has read the peer's revision octet
FIRST_STAGE = SIG + b"\x03"
#: RFC 15's socket-type octets (libzmq's numbers)
PAIR, PUB, SUB, REQ, REP, DEALER, ROUTER, PULL, PUSH, XPUB, XSUB = range(11)
MORE, LONG = 0x01, 0x02


def v2_frame(body: bytes, more: bool = False) -> bytes:
    flags = MORE if more else 0
    if len(body) > 255:
        return bytes([flags | LONG]) + len(body).to_bytes(8, "big") + body
    return bytes([flags, len(body)]) + body


class V2Peer:
    """A ZMTP/2.0 peer written from RFC 15 on a connected blocking socket."""

    def __init__(self, sock: socket.socket, socket_type: int, identity: bytes = b"", libzmq: bool = False) -> None:
        self.libzmq = libzmq  # the other side is libzmq (pyzmq): its padding holds its id's length + 1
        self.sock = sock
        self.sock.settimeout(DEADLINE_S)
        self.socket_type = socket_type
        self.identity = identity

    def recv_exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError(f"closed after {out!r}")
            out += chunk
        return out

    def greet(self, staged: bool = False) -> Tuple[int, bytes]:
        """Send our greeting (libzmq 3.x's signature: the identity's length
        + 1 in the padding) and read zmtp's: its socket type and identity.
        `staged`: as libzmq 3.x and JeroMQ 0.3 do, the signature first, the
        revision and socket type once the peer's signature is in, the
        identity only once its whole 12-octet greeting is."""
        sig = b"\xff" + (len(self.identity) + 1).to_bytes(8, "big") + b"\x7f"
        if staged:
            self.sock.sendall(sig)
            theirs = self.recv_exact(10)
            self.sock.sendall(bytes([1, self.socket_type]))
            theirs += self.recv_exact(2)
            self.sock.sendall(v2_frame(self.identity))
            assert theirs[:11] == FIRST_STAGE, theirs
            their_type = theirs[11]
            flags, size = self.recv_exact(2)
            assert flags == 0, f"zmtp's identity is not a final short frame: flags {flags:#x}"
            return their_type, self.recv_exact(size)
        self.sock.sendall(sig + bytes([1, self.socket_type]) + v2_frame(self.identity))
        theirs = self.recv_exact(11)
        if self.libzmq:
            theirs = theirs[:1] + SIG[1:9] + theirs[9:]
        assert theirs == FIRST_STAGE, theirs
        their_type, flags, size = self.recv_exact(3)
        assert flags == 0, f"zmtp's identity is not a final short frame: flags {flags:#x}"
        return their_type, self.recv_exact(size)

    def send(self, *parts: bytes) -> None:
        self.sock.sendall(b"".join(v2_frame(p, i < len(parts) - 1) for i, p in enumerate(parts)))

    def recv(self) -> List[bytes]:
        parts = []
        while True:
            flags = self.recv_exact(1)[0]
            assert flags & ~(MORE | LONG) == 0, f"flags {flags:#x}: not a ZMTP/2.0 frame"
            size = int.from_bytes(self.recv_exact(8), "big") if flags & LONG else self.recv_exact(1)[0]
            parts.append(self.recv_exact(size))
            if not flags & MORE:
                return parts

    def read_until_closed(self) -> bytes:
        """What zmtp still sends until it closes (EOF or reset)."""
        out = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return out
                out += chunk
        except ConnectionResetError:
            return out


# ------------------------------------------------------------------ links


@pytest.fixture
def ipc_dir():
    d = tempfile.mkdtemp(prefix="z20-", dir="/tmp")  # short: ipc paths have 107 octets
    yield d
    shutil.rmtree(d, ignore_errors=True)


_IPC_NAMES = itertools.count()


class Link:
    """A zmtp socket and the raw socket of the 2.0 peer at the other end,
    zmtp binding (the peer connects) or connecting (to the peer's listener)."""

    def __init__(self, ctx: Any, kind: int, transport: str, zmtp_binds: bool, ipc_dir: str, **opts: Any) -> None:
        self.z = zsock(ctx, kind, **opts)
        self.listener: Optional[socket.socket] = None
        if transport == "tcp":
            addr = "tcp://127.0.0.1:*"
        else:
            addr = f"ipc://{ipc_dir}/{'b' if zmtp_binds else 'c'}{next(_IPC_NAMES)}.ipc"
        if zmtp_binds:
            self.z.bind(addr)
            self.endpoint = self.z.last_endpoint.decode()
        else:
            if transport == "tcp":
                self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self.listener.bind(("127.0.0.1", 0))
                self.endpoint = "tcp://127.0.0.1:%d" % self.listener.getsockname()[1]
            else:
                self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.listener.bind(addr[len("ipc://"):])
                self.endpoint = addr
            self.listener.listen(4)
            self.listener.settimeout(DEADLINE_S)
            self.z.connect(self.endpoint)

    def raw(self) -> socket.socket:
        """The peer's end (called in the peer's thread)."""
        if self.listener is None:
            return connect_to(self.endpoint)
        s, _ = self.listener.accept()
        return s

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()


LINKS = [("tcp", True), ("tcp", False), ("ipc", True), ("ipc", False)]
LINK_IDS = ["tcp-zmtp-binds", "tcp-zmtp-connects", "ipc-zmtp-binds", "ipc-zmtp-connects"]


def run_peer(spawn: Callable, link: Link, socket_type: int, identity: bytes,
             body: Callable[[V2Peer, int, bytes], Any]) -> Any:
    """Start the 2.0 peer in a thread: greet, then body(peer, zmtp's type, zmtp's identity)."""

    def peer() -> Any:
        s = link.raw()
        try:
            p = V2Peer(s, socket_type, identity)
            their_type, their_id = p.greet()
            return body(p, their_type, their_id)
        finally:
            s.close()

    return spawn(peer)


def drive_until(task: Any, *socks: Any) -> Any:
    """Let zmtp work until the peer's thread is done; its result."""
    wait_for(lambda: (settle(*socks, ms=20), task.done())[1], DEADLINE_S, "the ZMTP/2.0 peer")
    return task.result()


# ------------------------------------------------------------------ socket types


@pytest.mark.parametrize("transport,zmtp_binds", LINKS, ids=LINK_IDS)
def test_req_to_v2_rep(transport, zmtp_binds, backend, ctx, spawn, ipc_dir):
    link = Link(ctx, zmtp.REQ, transport, zmtp_binds, ipc_dir)

    def rep(p, their_type, their_id):
        assert (their_type, their_id) == (REQ, b"")
        request = p.recv()
        p.send(*request[:-1], b"re:" + request[-1])
        return request

    task = run_peer(spawn, link, REP, b"", rep)
    link.z.send(b"hello")
    assert link.z.recv() == b"re:hello"
    assert task.result() == [b"", b"hello"]  # REQ's empty delimiter, as in 3.x
    link.close()


@pytest.mark.parametrize("transport,zmtp_binds", LINKS, ids=LINK_IDS)
def test_v2_req_to_rep(transport, zmtp_binds, backend, ctx, spawn, ipc_dir):
    link = Link(ctx, zmtp.REP, transport, zmtp_binds, ipc_dir)

    def req(p, their_type, their_id):
        assert their_type == REP
        p.send(b"", b"question")
        return p.recv()

    task = run_peer(spawn, link, REQ, b"", req)
    assert link.z.recv() == b"question"
    link.z.send(b"answer")
    assert task.result() == [b"", b"answer"]
    link.close()


@pytest.mark.parametrize("transport,zmtp_binds", LINKS, ids=LINK_IDS)
def test_v2_dealer_identity_to_router(transport, zmtp_binds, backend, ctx, spawn, ipc_dir):
    """The peer's identity frame is its routing id on a zmtp ROUTER, as libzmq's."""
    link = Link(ctx, zmtp.ROUTER, transport, zmtp_binds, ipc_dir)

    def dealer(p, their_type, their_id):
        assert (their_type, their_id) == (ROUTER, b"")
        p.send(b"a", b"b")
        return p.recv()

    task = run_peer(spawn, link, DEALER, b"peer-1", dealer)
    frames = link.z.recv_multipart(copy=False)
    assert [f.bytes for f in frames] == [b"peer-1", b"a", b"b"]
    assert frames[1].get("Socket-Type") == "DEALER"  # metadata as a 3.x peer's READY gives it
    link.z.send_multipart([b"peer-1", b"back"])
    assert task.result() == [b"back"]
    st = link.z.stats()
    assert st["handshake_failed"] == 0 and st["protocol_errors"] == {}, st
    link.close()


@pytest.mark.parametrize("transport,zmtp_binds", LINKS, ids=LINK_IDS)
def test_dealer_identity_to_v2_router(transport, zmtp_binds, backend, ctx, spawn, ipc_dir):
    link = Link(ctx, zmtp.DEALER, transport, zmtp_binds, ipc_dir, routing_id=b"zmtp-dealer")

    def router(p, their_type, their_id):
        assert (their_type, their_id) == (DEALER, b"zmtp-dealer")
        msg = p.recv()
        p.send(b"echo", *msg)
        return msg

    task = run_peer(spawn, link, ROUTER, b"", router)
    link.z.send_multipart([b"x", b"y"])
    assert link.z.recv_multipart() == [b"echo", b"x", b"y"]
    assert task.result() == [b"x", b"y"]
    link.close()


@pytest.mark.parametrize("transport,zmtp_binds", LINKS, ids=LINK_IDS)
def test_pub_to_v2_sub(transport, zmtp_binds, backend, ctx, spawn, ipc_dir):
    """A 2.0 subscription is a message: 0x01 + topic (0x00 cancels)."""
    link = Link(ctx, zmtp.PUB, transport, zmtp_binds, ipc_dir)
    stop = threading.Event()

    def sub(p, their_type, their_id):
        assert their_type == PUB
        p.send(b"\x01top")
        got = p.recv()
        stop.set()
        return got

    task = run_peer(spawn, link, SUB, b"", sub)
    # PUB drops what no subscriber wants yet: publish until the peer has one
    deadline = time.monotonic() + DEADLINE_S
    while not task.done():
        assert time.monotonic() < deadline, "the 2.0 subscriber got nothing"
        link.z.send(b"other")
        link.z.send(b"top-1")
        settle(link.z, ms=20)
    assert task.result() == [b"top-1"] and stop.is_set()
    link.close()


@pytest.mark.parametrize("transport,zmtp_binds", LINKS, ids=LINK_IDS)
def test_sub_to_v2_pub(transport, zmtp_binds, backend, ctx, spawn, ipc_dir):
    link = Link(ctx, zmtp.SUB, transport, zmtp_binds, ipc_dir)
    link.z.subscribe(b"a")

    def pub(p, their_type, their_id):
        assert their_type == SUB
        sub = p.recv()  # zmtp's subscription, in 2.0's form
        p.send(b"b-filtered")
        p.send(b"a-wanted")
        return sub

    task = run_peer(spawn, link, PUB, b"", pub)
    assert link.z.recv() == b"a-wanted"
    assert task.result() == [b"\x01a"]
    link.close()


@pytest.mark.parametrize("transport,zmtp_binds", LINKS[:2], ids=LINK_IDS[:2])
def test_xpub_sees_v2_subscriptions(transport, zmtp_binds, backend, ctx, spawn, ipc_dir):
    link = Link(ctx, zmtp.XPUB, transport, zmtp_binds, ipc_dir)

    def sub(p, their_type, their_id):
        assert their_type == PUB  # XPUB greets as PUB in 2.0 (RFC 15)
        p.send(b"\x01news")
        p.send(b"\x00news")
        return True

    task = run_peer(spawn, link, SUB, b"", sub)
    assert link.z.recv() == b"\x01news"
    assert link.z.recv() == b"\x00news"
    assert task.result()
    link.close()


@pytest.mark.parametrize("transport,zmtp_binds", LINKS, ids=LINK_IDS)
def test_push_pull_both_ways(transport, zmtp_binds, backend, ctx, spawn, ipc_dir):
    push = Link(ctx, zmtp.PUSH, transport, zmtp_binds, ipc_dir)
    task = run_peer(spawn, push, PULL, b"", lambda p, t, i: (t, p.recv(), p.recv()))
    push.z.send(b"one")
    push.z.send_multipart([b"two", b"parts"])
    assert drive_until(task, push.z) == (PUSH, [b"one"], [b"two", b"parts"])
    push.close()

    pull = Link(ctx, zmtp.PULL, transport, zmtp_binds, ipc_dir)
    task = run_peer(spawn, pull, PUSH, b"", lambda p, t, i: (t, p.send(b"three")))
    assert pull.z.recv() == b"three"
    assert task.result()[0] == PULL
    pull.close()


@pytest.mark.parametrize("transport,zmtp_binds", LINKS, ids=LINK_IDS)
def test_pair(transport, zmtp_binds, backend, ctx, spawn, ipc_dir):
    link = Link(ctx, zmtp.PAIR, transport, zmtp_binds, ipc_dir)

    def pair(p, their_type, their_id):
        assert their_type == PAIR
        p.send(b"ping")
        return p.recv()

    task = run_peer(spawn, link, PAIR, b"", pair)
    assert link.z.recv() == b"ping"
    link.z.send(b"pong")
    assert task.result() == [b"pong"]
    link.close()


@pytest.mark.parametrize("transport,zmtp_binds", LINKS, ids=LINK_IDS)
def test_large_multipart_frames(transport, zmtp_binds, backend, ctx, spawn, ipc_dir):
    """LONG frames both ways (past a read page), short ones and empty ones in one message."""
    big = os.urandom(300_000)
    msg = [b"", b"s" * 255, b"l" * 256, big]
    link = Link(ctx, zmtp.DEALER, transport, zmtp_binds, ipc_dir)

    def echo(p, their_type, their_id):
        got = p.recv()
        p.send(*got)
        return [len(f) for f in got]

    task = run_peer(spawn, link, DEALER, b"", echo)
    link.z.send_multipart(msg)
    assert link.z.recv_multipart() == msg
    assert task.result() == [len(f) for f in msg]
    link.close()


@pytest.mark.parametrize("transport,zmtp_binds", LINKS, ids=LINK_IDS)
def test_staged_peer(transport, zmtp_binds, backend, ctx, spawn, ipc_dir):
    """A peer that greets in libzmq 3.x's stages (each waits for the other side's)."""
    link = Link(ctx, zmtp.DEALER, transport, zmtp_binds, ipc_dir, routing_id=b"z")

    def peer():
        s = link.raw()
        try:
            p = V2Peer(s, ROUTER, b"")
            assert p.greet(staged=True) == (DEALER, b"z")
            p.send(b"hi")
            return p.recv()
        finally:
            s.close()

    task = spawn(peer)
    assert link.z.recv() == b"hi"
    link.z.send(b"ho")
    assert task.result() == [b"ho"]
    link.close()


def test_staged_peer_refused_at_once(backend, ctx, spawn, ipc_dir):
    """A secured socket refuses a staged 2.0 peer when its 12 octets are in,
    not when HANDSHAKE_IVL runs out: the peer's identity comes only after ours."""
    link = Link(ctx, zmtp.PULL, "tcp", True, ipc_dir, plain_server=True)
    link.z.handshake_ivl = 120_000
    before = link.z.stats()

    def peer():
        s = link.raw()
        try:
            s.settimeout(DEADLINE_S)
            s.sendall(b"\xff" + b"\x00" * 8 + b"\x7f")
            assert V2Peer(s, PUSH).recv_exact(10) == FIRST_STAGE[:10]
            s.sendall(bytes([1, PUSH]))
            return V2Peer(s, PUSH).read_until_closed()
        finally:
            s.close()

    task = spawn(peer)
    d = wait_refused(link.z, before, "the refusal")
    assert d == {"handshake_failed": 1, "protocol_errors": {ErrorCode.V2_SECURITY: 1}}, d
    assert drive_until(task, link.z) == FIRST_STAGE[10:]


@pytest.mark.parametrize("transport,zmtp_binds", LINKS[:2], ids=LINK_IDS[:2])
def test_no_heartbeats_to_v2(transport, zmtp_binds, backend, ctx, spawn, ipc_dir):
    """HEARTBEAT_IVL sends no PING to a 2.0 peer (2.0 has no commands): after
    many intervals the first thing it reads is the message."""
    link = Link(ctx, zmtp.DEALER, transport, zmtp_binds, ipc_dir, heartbeat_ivl=10, heartbeat_timeout=10_000)
    greeted = threading.Event()

    def peer(p, their_type, their_id):
        greeted.set()
        return p.recv()  # a PING (flags 0x04) would fail V2Peer.recv's check

    task = run_peer(spawn, link, DEALER, b"", peer)
    wait_for(lambda: (settle(link.z, ms=10), greeted.is_set())[1], DEADLINE_S, "the 2.0 handshake")
    settle(link.z, ms=300)  # 30 heartbeat intervals of zmtp's I/O
    link.z.send(b"only this")
    assert drive_until(task, link.z) == [b"only this"]
    assert link.z.stats()["heartbeat_timeouts"] == 0
    link.close()


def test_pair_refuses_second_v2_peer(backend, ctx, spawn, ipc_dir):
    link = Link(ctx, zmtp.PAIR, "tcp", True, ipc_dir)
    first = run_peer(spawn, link, PAIR, b"", lambda p, t, i: (p.send(b"one"), p.recv())[1])
    assert link.z.recv() == b"one"
    before = link.z.stats()
    task = raw_exchange(link, spawn, v2_greeting(PAIR) + v2_frame(b"two"))
    d = wait_refused(link.z, before, "the second PAIR peer's refusal")
    assert d == {"handshake_failed": 1, "protocol_errors": {}}, d
    said = drive_until(task, link.z)
    assert said[:14] == FIRST_STAGE + b"\x00\x00\x00" and len(said) == 14, said  # no ERROR in 2.0
    link.z.send(b"still")
    assert first.result() == [b"still"]
    with pytest.raises(zmtp.Again):
        link.z.recv(zmtp.NOBLOCK)
    link.close()


# The same 2.0 peer against libzmq 4.3.5 (pyzmq), which accepts 2.0 peers by
# default: what it sees must be what zmtp gives it.
SAME_AS_LIBZMQ = {
    # name: (our socket type, the peer's type and identity, what the peer does, what our side does)
    "req-rep": ("REQ", REP, b"", lambda p: (p.recv(), p.send(b"", b"re"))[0], lambda s: (s.send(b"q"), s.recv())[1]),
    "dealer-router": ("ROUTER", DEALER, b"d2", lambda p: (p.send(b"x"), p.recv())[1],
                      lambda s: (s.recv_multipart(), s.send_multipart([b"d2", b"y"]))[0]),
    "sub-pub": ("SUB", PUB, b"", lambda p: (p.recv(), p.send(b"tx"), p.send(b"a1"))[0],
                lambda s: (s.setsockopt(zmtp.SUBSCRIBE, b"a"), s.recv())[1]),
    "pull-push": ("PULL", PUSH, b"", lambda p: p.send(b"m", b"n"), lambda s: s.recv_multipart()),
}


@pytest.mark.parametrize("impl", ["zmtp", "pyzmq"])
@pytest.mark.parametrize("name", list(SAME_AS_LIBZMQ))
def test_same_as_libzmq(name, impl, backend, ctx, zctx, spawn):
    kind, peer_type, peer_id, peer_does, we_do = SAME_AS_LIBZMQ[name]
    if impl == "pyzmq":
        import zmq

        s = zctx.socket(getattr(zmq, kind))
        s.rcvtimeo = int(DEADLINE_S * 1000)
        port = s.bind_to_random_port("tcp://127.0.0.1")
        endpoint = f"tcp://127.0.0.1:{port}"
    else:
        s = zsock(ctx, getattr(zmtp, kind))
        s.bind("tcp://127.0.0.1:*")
        endpoint = s.last_endpoint.decode()
    if kind == "SUB":
        s.setsockopt(zmtp.SUBSCRIBE, b"a")
        we_do = lambda s: s.recv()  # noqa: E731 (subscribed before the peer is there)

    def peer():
        raw = connect_to(endpoint)
        try:
            p = V2Peer(raw, peer_type, peer_id, libzmq=impl == "pyzmq")
            greeting = p.greet()
            return greeting, peer_does(p)
        finally:
            raw.close()

    task = spawn(peer)
    ours = we_do(s)
    theirs = task.result()
    assert (ours, theirs) == SAME_AS_LIBZMQ_RESULTS[name], (impl, ours, theirs)


SAME_AS_LIBZMQ_RESULTS = {
    "req-rep": (b"re", ((REQ, b""), [b"", b"q"])),
    "dealer-router": ([b"d2", b"x"], ((ROUTER, b""), [b"y"])),
    "sub-pub": (b"a1", ((SUB, b""), [b"\x01a"])),
    "pull-push": ([b"m", b"n"], ((PULL, b""), None)),
}


def test_incompatible_type_libzmq_takes_zmtp_refuses(backend, ctx, zctx, spawn, ipc_dir):
    """The one deliberate difference (docs/decisions.md): libzmq 4.3.5 does not
    check a 2.0 peer's socket type (a PULL peer's message reaches a PULL);
    zmtp checks it as RFC 15 says it SHOULD, as it does for 3.x peers."""
    import zmq

    wire = v2_greeting(PULL) + v2_frame(b"hello")
    p = zctx.socket(zmq.PULL)
    p.rcvtimeo = int(DEADLINE_S * 1000)
    port = p.bind_to_random_port("tcp://127.0.0.1")
    raw = connect_to(f"tcp://127.0.0.1:{port}")
    try:
        raw.sendall(wire)
        assert p.recv() == b"hello"
    finally:
        raw.close()

    link = Link(ctx, zmtp.PULL, "tcp", True, ipc_dir)
    before = link.z.stats()
    task = raw_exchange(link, spawn, wire)
    d = wait_refused(link.z, before, "the refusal")
    assert d["protocol_errors"] == {ErrorCode.V2_SOCKET_TYPE: 1}, d
    drive_until(task, link.z)
    with pytest.raises(zmtp.Again):
        link.z.recv(zmtp.NOBLOCK)


def test_v2_and_v3_peers_together(backend, ctx, zctx, spawn):
    """A ROUTER serves a 2.0 peer and a pyzmq (libzmq 4.3.5, ZMTP 3.1) peer at once."""
    import zmq

    link = Link(ctx, zmtp.ROUTER, "tcp", True, "")
    d = zctx.socket(zmq.DEALER)
    d.setsockopt(zmq.ROUTING_ID, b"v3")
    d.connect(link.endpoint)
    task = run_peer(spawn, link, DEALER, b"v2", lambda p, t, i: (p.send(b"from-2.0"), p.recv())[1])
    d.send(b"from-3.1")
    got = sorted([link.z.recv_multipart(), link.z.recv_multipart()])
    assert got == [[b"v2", b"from-2.0"], [b"v3", b"from-3.1"]]
    link.z.send_multipart([b"v2", b"to-2.0"])
    link.z.send_multipart([b"v3", b"to-3.1"])
    assert task.result() == [b"to-2.0"]
    assert d.recv() == b"to-3.1"
    link.close()


# ------------------------------------------------------------------ refusals


def stats_delta(before: dict, after: dict) -> dict:
    errs = {ErrorCode(c): n - before["protocol_errors"].get(c, 0)
            for c, n in after["protocol_errors"].items() if n - before["protocol_errors"].get(c, 0)}
    return {"handshake_failed": after["handshake_failed"] - before["handshake_failed"], "protocol_errors": errs}


def wait_refused(z: Any, before: dict, what: str) -> dict:
    wait_for(lambda: (settle(z, ms=20), z.stats()["handshake_failed"] > before["handshake_failed"])[1],
             DEADLINE_S, what)
    return stats_delta(before, z.stats())


def raw_exchange(link: Link, spawn: Callable, data: bytes) -> Any:
    """A raw peer that sends `data` and reads what zmtp says until it closes."""

    def peer() -> bytes:
        s = link.raw()
        try:
            s.sendall(data)
            return V2Peer(s, 0).read_until_closed()
        finally:
            s.close()

    return spawn(peer)


def v2_greeting(socket_type: int, identity: bytes = b"") -> bytes:
    return SIG + bytes([1, socket_type]) + v2_frame(identity)


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("kind,peer_type,why", [
    (zmtp.PULL, PULL, "incompatible"),
    (zmtp.REQ, REQ, "incompatible"),
    (zmtp.PUB, PUB, "incompatible"),
    (zmtp.DEALER, 11, "STREAM has no ZMTP"),
    (zmtp.DEALER, 0x42, "unknown"),
], ids=["pull-pull", "req-req", "pub-pub", "stream", "unknown"])
def test_socket_type_refused(kind, peer_type, why, transport, backend, ctx, spawn, ipc_dir):
    link = Link(ctx, kind, transport, True, ipc_dir)
    before = link.z.stats()
    task = raw_exchange(link, spawn, v2_greeting(peer_type) + v2_frame(b"after"))
    d = wait_refused(link.z, before, "the refusal")
    assert d == {"handshake_failed": 1, "protocol_errors": {ErrorCode.V2_SOCKET_TYPE: 1}}, d
    said = drive_until(task, link.z)
    # zmtp answered in 2.0 (its type and identity), then closed: no ERROR command in 2.0
    assert said[:11] == FIRST_STAGE and said[12:14] == b"\x00\x00" and len(said) == 14, said


@pytest.mark.parametrize("mech", ["plain_server", "zap_domain"])
def test_secure_socket_refuses_v2(mech, backend, ctx, spawn, ipc_dir):
    """2.0 has no security: a PLAIN/CURVE socket, or NULL with ZAP, refuses it as libzmq does."""
    opts = {"plain_server": True} if mech == "plain_server" else {"zap_domain": b"global"}
    link = Link(ctx, zmtp.PULL, "tcp", True, ipc_dir, **opts)
    before = link.z.stats()
    task = raw_exchange(link, spawn, v2_greeting(PUSH) + v2_frame(b"sneaky"))
    d = wait_refused(link.z, before, "the refusal")
    assert d == {"handshake_failed": 1, "protocol_errors": {ErrorCode.V2_SECURITY: 1}}, d
    assert drive_until(task, link.z) == FIRST_STAGE  # nothing more: no 2.0 greeting, no ERROR
    with pytest.raises(zmtp.Again):
        link.z.recv(zmtp.NOBLOCK)


@pytest.mark.parametrize("name,data,code,failed", [
    ("identity-more", SIG + b"\x01\x08\x01\x00", ErrorCode.V2_GREETING, 1),
    ("identity-long", SIG + b"\x01\x08\x02" + b"\xff" * 8, ErrorCode.V2_GREETING, 1),
    ("command-frame", v2_greeting(PUSH) + b"\x04\x05\x04PING", ErrorCode.RESERVED_FLAGS, 0),
    ("reserved-bits", v2_greeting(PUSH) + v2_frame(b"ok") + b"\x40\x00", ErrorCode.RESERVED_FLAGS, 0),
    ("size-top-bit", v2_greeting(PUSH) + b"\x02\x80" + b"\x00" * 7, ErrorCode.FRAME_SIZE, 0),
    ("revision-0", SIG + b"\x00\x08\x00\x00", ErrorCode.VERSION, 1),
])
def test_malformed_closes_only_that_connection(name, data, code, failed, backend, ctx, zctx, spawn, ipc_dir):
    """A broken 2.0 peer is closed with its reason counted; a good pyzmq peer carries on."""
    import zmq

    link = Link(ctx, zmtp.PULL, "tcp", True, ipc_dir)
    good = zctx.socket(zmq.PUSH)
    good.connect(link.endpoint)
    good.send(b"before")
    assert link.z.recv() == b"before"
    before = link.z.stats()
    task = raw_exchange(link, spawn, data)
    drive_until(task, link.z)  # zmtp closed it
    d = stats_delta(before, link.z.stats())
    assert d == {"handshake_failed": failed, "protocol_errors": {code: 1}}, d
    good.send(b"after")
    # the message before the bad frame is delivered (a 2.0 peer's messages are whole)
    want = {b"after", b"ok"} if name == "reserved-bits" else {b"after"}
    assert {link.z.recv() for _ in want} == want


def test_monitor_sees_v2_handshake(backend, ctx, spawn, ipc_dir):
    link = Link(ctx, zmtp.PULL, "tcp", True, ipc_dir)
    mon = link.z.get_monitor_socket()
    task = run_peer(spawn, link, PUSH, b"", lambda p, t, i: p.send(b"x"))
    assert link.z.recv() == b"x"
    task.result()
    from zmtp.utils.monitor import recv_monitor_message

    events = []
    mon.rcvtimeo = 5000
    while not any(e["event"] == zmtp.EVENT_HANDSHAKE_SUCCEEDED for e in events):
        events.append(recv_monitor_message(mon))
    link.z.disable_monitor()
    mon.close()


# ------------------------------------------------------------------ JeroMQ 0.3 (a real ZMTP/2.0 peer)

JEROMQ_JARS = sorted(glob.glob("/usr/share/java/jeromq*.jar"))

JAVA_PEER = r"""
import org.zeromq.ZMQ;

public class Z20Peer {
    public static void main(String[] args) throws Exception {
        String mode = args[0], endpoint = args[1];
        ZMQ.Context ctx = ZMQ.context(1);
        ZMQ.Socket s = ctx.socket(mode.startsWith("rep") ? ZMQ.REP : ZMQ.DEALER);
        s.setLinger(0);
        s.setReceiveTimeOut(20000);
        if (mode.startsWith("dealer")) s.setIdentity("jeromq".getBytes());
        if (mode.endsWith("bind")) s.bind(endpoint); else s.connect(endpoint);
        System.out.println("ready");
        System.out.flush();
        if (mode.startsWith("rep")) {
            byte[] req = s.recv(0);
            if (req == null) { System.out.println("timeout"); System.exit(2); }
            s.send(("re:" + new String(req)).getBytes(), 0);
        } else {
            s.sendMore("a".getBytes());
            s.send(new byte[300], 0);
            byte[] reply = s.recv(0);
            if (reply == null) { System.out.println("timeout"); System.exit(2); }
            System.out.println("got " + new String(reply));
        }
        System.out.flush();
        Thread.sleep(500);
        s.close();
        ctx.term();
    }
}
"""


@pytest.fixture(scope="module")
def jeromq_peer(tmp_path_factory):
    """The compiled Java peer: (classpath, class dir); skips with its reason."""
    if shutil.which("java") is None or shutil.which("javac") is None:
        pytest.skip("java/javac not installed (apt-get install default-jdk-headless)")
    if not JEROMQ_JARS:
        pytest.skip("JeroMQ not installed (apt-get install libjeromq-java)")
    d = tmp_path_factory.mktemp("jeromq")
    src = d / "Z20Peer.java"
    src.write_text(JAVA_PEER)
    jar = JEROMQ_JARS[0]
    r = subprocess.run(["javac", "-cp", jar, "-d", str(d), str(src)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.skip(f"javac failed: {r.stderr[-500:]}")
    return f"{jar}:{d}"


def run_java(classpath: str, mode: str, endpoint: str) -> subprocess.Popen:
    return subprocess.Popen(["java", "-cp", classpath, "Z20Peer", mode, endpoint],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_java(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp-binds", "zmtp-connects"])
def test_jeromq_rep(zmtp_binds, backend, ctx, jeromq_peer):
    req = zsock(ctx, zmtp.REQ)
    if zmtp_binds:
        req.bind("tcp://127.0.0.1:*")
        proc = run_java(jeromq_peer, "rep-connect", req.last_endpoint.decode())
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        proc = run_java(jeromq_peer, "rep-bind", f"tcp://127.0.0.1:{port}")
        assert proc.stdout.readline().strip() == "ready"
        req.connect(f"tcp://127.0.0.1:{port}")
    try:
        req.rcvtimeo = int(DEADLINE_S * 1000)
        req.send(b"hi")
        assert req.recv() == b"re:hi"
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
    finally:
        stop_java(proc)


@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp-binds", "zmtp-connects"])
def test_jeromq_dealer_to_router(zmtp_binds, backend, ctx, jeromq_peer):
    router = zsock(ctx, zmtp.ROUTER)
    router.rcvtimeo = int(DEADLINE_S * 1000)
    if zmtp_binds:
        router.bind("tcp://127.0.0.1:*")
        proc = run_java(jeromq_peer, "dealer-connect", router.last_endpoint.decode())
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        proc = run_java(jeromq_peer, "dealer-bind", f"tcp://127.0.0.1:{port}")
        assert proc.stdout.readline().strip() == "ready"
        router.connect(f"tcp://127.0.0.1:{port}")
    try:
        assert router.recv_multipart() == [b"jeromq", b"a", bytes(300)]
        router.send_multipart([b"jeromq", b"back"])
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "got back" in out, out
    finally:
        stop_java(proc)


def test_jeromq_greets_in_v2(backend, ctx, jeromq_peer):
    """JeroMQ 0.3 really is a 2.0 peer: a socket with a ZAP domain refuses it
    as one (V2_SECURITY), where a 3.x NULL peer would be admitted."""
    router = zsock(ctx, zmtp.ROUTER, zap_domain=b"global")
    router.bind("tcp://127.0.0.1:*")
    proc = run_java(jeromq_peer, "dealer-connect", router.last_endpoint.decode())
    try:
        wait_for(lambda: (settle(router, ms=50),
                          router.stats()["protocol_errors"].get(ErrorCode.V2_SECURITY, 0) >= 1)[1],
                 60, "JeroMQ's 2.0 greeting to be refused")
        with pytest.raises(zmtp.Again):
            router.recv(zmtp.NOBLOCK)
    finally:
        stop_java(proc)
