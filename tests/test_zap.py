"""ZAP (RFC 27) in zmtp's engine: a zmtp PLAIN server asks the handler bound
at inproc://zeromq.zap.01 in its Context (here a zmtp REP answering by hand
in a thread) about each pyzmq (libzmq 4.3.5) client: the request's frames
as libzmq's, 200 admits (tcp and ipc, either side binding, REQ/REP,
DEALER/ROUTER, PUB/SUB, both backends), 300/400/500 refuse with
HANDSHAKE_FAILED_AUTH and the status (the libzmq client reports 400 and 500
from the ERROR it gets), a malformed reply is HANDSHAKE_FAILED_PROTOCOL with
libzmq's ZAP code, and a handler bound after the server still serves it.
pyzmq's ThreadAuthenticator authenticating a zmtp client is in test_plain.py."""

from __future__ import annotations

import errno
import os
import time
from typing import Any, Callable, List

import pytest

zmq = pytest.importorskip("zmq")

import zmtp  # noqa: E402
from helpers import DEADLINE_S, psock, zsock  # noqa: E402
from test_monitor import endpoint_for  # noqa: E402
from test_plain import PAIR_IDS, PAIRS, exchange  # noqa: E402

E = zmtp.Event
ZAP = "inproc://zeromq.zap.01"
Answer = Callable[[List[bytes]], List[bytes]]
META = b"\x05Hello\x00\x00\x00\x05World"


def peer_address(transport: str) -> bytes:
    """The address libzmq 4.3.5 gives a peer of this process: its IP for
    tcp, "localhost:UID:GID:PID" (SO_PEERCRED) for ipc."""
    if transport == "tcp":
        return b"127.0.0.1"
    return f"localhost:{os.getuid()}:{os.getgid()}:{os.getpid()}".encode()


def by_password(req: List[bytes]) -> List[bytes]:
    """200 for u/p (User-Id "user-u", a property Hello: World), else 400."""
    ok = req[6:] == [b"u", b"p"]
    return [b"200", b"OK", b"user-u", META] if ok else [b"400", b"No", b"", b""]


def serve_zap(handler: Any, answer: Answer, seen: List[List[bytes]], stop: List[bool]) -> None:
    """Answer ZAP requests on `handler` (a zmtp REP) until stop[0]."""
    while not stop[0]:
        if not handler.poll(50):
            continue
        req = handler.recv_multipart()
        seen.append(req)
        reply = answer(req)
        if reply and reply[0] == b"raw":
            handler.send_multipart(reply[1:])
        else:
            handler.send_multipart([b"1.0", req[1]] + reply)


@pytest.fixture
def zap(ctx: Any, spawn: Any):
    """start(answer) binds a handler in ctx and serves it in a thread; it
    returns the handler, the requests it saw, and halt() (stops serving)."""
    halts: List[Callable[[], None]] = []

    def start(answer: Answer = by_password, bind: bool = True, context: Any = None) -> Any:
        # the handler: a zmtp REP in ctx, or a pyzmq REP in `context`
        handler = zsock(ctx, zmtp.REP) if context is None else psock(context, zmq.REP)
        seen: List[List[bytes]] = []
        stop = [False]
        if bind:
            handler.bind(ZAP)
        task = spawn(serve_zap, handler, answer, seen, stop)

        def halt() -> None:
            if not stop[0]:
                stop[0] = True
                task.result()

        halts.append(halt)
        return handler, seen, halt

    yield start
    for halt in halts:
        halt()


def pump_until(server: Any, mon: Any, pred: Callable[[List[tuple]], bool]) -> List[tuple]:
    """Monitor events of `server` (kept stepping by poll) until pred holds."""
    from zmtp.utils.monitor import recv_monitor_message

    evs: List[tuple] = []
    deadline = time.monotonic() + DEADLINE_S
    while not pred(evs):
        assert time.monotonic() < deadline, evs
        server.poll(20)
        while mon.poll(0):
            ev = recv_monitor_message(mon)
            evs.append((int(ev["event"]), ev["value"]))
    return evs


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp_binds", "pyzmq_binds"])
@pytest.mark.parametrize("stype,ctype", PAIRS, ids=PAIR_IDS)
def test_handler_admits_pyzmq_client(backend, ctx, zctx, zap, transport, zmtp_binds, stype, ctype, tmp_path):
    """The handler says 200: traffic flows; the request is libzmq's."""
    _, seen, _ = zap()
    ep = endpoint_for(transport, tmp_path, "zap")
    server = zsock(ctx, stype, plain_server=1, zap_domain=b"global")
    client = psock(zctx, ctype, plain_username=b"u", plain_password=b"p")
    if zmtp_binds:
        server.bind(ep)
        client.connect(ep)
    else:
        client.bind(ep)
        server.connect(ep)
    exchange(server, client, stype)
    req = seen[0]
    assert req[0] == b"1.0" and req[1].isdigit() and req[2] == b"global", req
    assert req[3] == peer_address(transport), req
    assert req[4:] == [b"", b"PLAIN", b"u", b"p"], req


@pytest.mark.parametrize("status", [300, 400, 500])
def test_handler_refuses(backend, ctx, zctx, zap, status, tmp_path):
    """300/400/500: the zmtp server reports HANDSHAKE_FAILED_AUTH(status);
    the libzmq client reports 400 and 500 from the ERROR it gets (300
    closes without ERROR, as libzmq)."""
    zap(lambda req: [str(status).encode(), b"no", b"", b""])
    ep = endpoint_for("tcp", tmp_path, "zap")
    server = zsock(ctx, zmtp.REP, plain_server=1)
    smon = server.get_monitor_socket(E.HANDSHAKE_FAILED_AUTH | E.HANDSHAKE_SUCCEEDED)
    client = psock(zctx, zmq.REQ, plain_username=b"u", plain_password=b"p")
    cmon = client.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    server.bind(ep)
    client.connect(ep)
    evs = pump_until(server, smon, lambda e: len(e) >= 1)
    assert evs[0] == (E.HANDSHAKE_FAILED_AUTH, status), evs
    if status != 300:
        from zmq.utils.monitor import recv_monitor_message as precv

        assert cmon.poll(int(DEADLINE_S * 1000))
        ev = precv(cmon)
        assert (ev["event"], ev["value"]) == (zmq.EVENT_HANDSHAKE_FAILED_AUTH, status)


@pytest.mark.parametrize("stype,ctype", PAIRS[:2], ids=PAIR_IDS[:2])
def test_user_id_on_frames(backend, ctx, zctx, zap, stype, ctype, tmp_path):
    """A message from a connection ZAP admitted: Frame.get("User-Id") and the
    reply's metadata by exact name, as libzmq's zmq_msg_gets (a name in
    another case, or unknown, is EINVAL); an inproc frame has no connection
    properties (EINVAL).  The other properties: test_frame_props.py."""
    zap()
    ep = endpoint_for("tcp", tmp_path, "zap")
    server = zsock(ctx, stype, plain_server=1)
    server.bind(ep)
    client = psock(zctx, ctype, plain_username=b"u", plain_password=b"p")
    client.connect(ep)
    client.send(b"hi")
    frames = server.recv_multipart(copy=False)
    body = frames[-1]
    assert body.bytes == b"hi"
    assert [f.get("User-Id") for f in frames] == ["user-u"] * len(frames)
    assert body.get("Hello") == "World" and body.get(b"Hello") == "World"
    for name in ("hello", "Nope"):
        with pytest.raises(zmtp.ZMQError) as exc:
            body.get(name)
        assert exc.value.errno == zmtp.EINVAL
    plain = zsock(ctx, zmtp.PAIR)
    plain.bind("inproc://no-zap")
    other = zsock(ctx, zmtp.PAIR)
    other.connect("inproc://no-zap")
    other.send(b"x")
    with pytest.raises(zmtp.ZMQError) as exc:
        plain.recv(copy=False).get("User-Id")
    assert exc.value.errno == zmtp.EINVAL


@pytest.mark.parametrize("reply,code", [
    ([b"raw", b"2.0", b"1", b"200", b"", b"", b""], zmtp.ProtocolErrorCode.ZAP_BAD_VERSION),
    ([b"201", b"", b"", b""], zmtp.ProtocolErrorCode.ZAP_INVALID_STATUS_CODE),
    ([b"600", b"", b"", b""], zmtp.ProtocolErrorCode.ZAP_INVALID_STATUS_CODE),
    ([b"200", b"", b""], zmtp.ProtocolErrorCode.ZAP_MALFORMED_REPLY),
    ([b"200", b"", b"", b"\x03bad"], zmtp.ProtocolErrorCode.ZAP_INVALID_METADATA),
], ids=["version", "status_201", "status_600", "six_frames", "metadata"])
def test_malformed_reply(backend, ctx, zctx, zap, reply, code, tmp_path):
    """A reply libzmq would refuse: HANDSHAKE_FAILED_PROTOCOL with its code."""
    zap(lambda req: [reply[0], reply[1], req[1]] + reply[3:] if reply[0] == b"raw" else reply)
    ep = endpoint_for("tcp", tmp_path, "zap")
    server = zsock(ctx, zmtp.REP, plain_server=1)
    smon = server.get_monitor_socket(E.HANDSHAKE_FAILED_PROTOCOL | E.HANDSHAKE_FAILED_AUTH | E.HANDSHAKE_SUCCEEDED)
    client = psock(zctx, zmq.REQ, plain_username=b"u", plain_password=b"p")
    server.bind(ep)
    client.connect(ep)
    evs = pump_until(server, smon, lambda e: len(e) >= 1)
    assert evs[0] == (E.HANDSHAKE_FAILED_PROTOCOL, code), evs


def test_handler_bound_after_server(backend, ctx, zctx, zap, tmp_path):
    """A server made before its handler: refused while there is none
    (NO_DETAIL, EFAULT, as libzmq), served once it is bound."""
    ep = endpoint_for("tcp", tmp_path, "zap")
    server = zsock(ctx, zmtp.REP, plain_server=1)
    smon = server.get_monitor_socket(E.HANDSHAKE_FAILED_NO_DETAIL | E.HANDSHAKE_SUCCEEDED)
    server.bind(ep)
    client = psock(zctx, zmq.REQ, plain_username=b"u", plain_password=b"p")
    client.connect(ep)
    evs = pump_until(server, smon, lambda e: len(e) >= 1)
    assert evs[0][0] == E.HANDSHAKE_FAILED_NO_DETAIL, evs
    zap()
    client.close(0)
    round_trip(zctx, server, ep)


def round_trip(zctx: Any, server: Any, ep: str) -> None:
    """A fresh pyzmq PLAIN client (u/p) and `server` exchange one request."""
    client = psock(zctx, zmq.REQ, plain_username=b"u", plain_password=b"p")
    client.connect(ep)
    client.send(b"hi")
    assert server.recv() == b"hi"
    server.send(b"ok")
    assert client.recv() == b"ok"


def test_handler_gone_refuses(backend, ctx, zctx, zap, tmp_path):
    """The handler closes: the next client is refused as with none (NO_DETAIL,
    EFAULT); a new handler bound at the name serves the server again."""
    handler, _, halt = zap()
    ep = endpoint_for("tcp", tmp_path, "zap")
    server = zsock(ctx, zmtp.REP, plain_server=1)
    server.bind(ep)
    round_trip(zctx, server, ep)
    halt()
    handler.close(linger=0)
    smon = server.get_monitor_socket(E.HANDSHAKE_FAILED_NO_DETAIL | E.HANDSHAKE_SUCCEEDED)
    second = psock(zctx, zmq.REQ, plain_username=b"u", plain_password=b"p")
    second.connect(ep)
    evs = pump_until(server, smon, lambda e: len(e) >= 1)
    assert evs[0][0] == E.HANDSHAKE_FAILED_NO_DETAIL, evs
    second.close(0)
    zap()  # a new handler at the name: the server joins it
    round_trip(zctx, server, ep)


# ---------------------------------------------------------------------------
# NULL asks ZAP too (libzmq 4.3.5's null_mechanism): with ZAP_DOMAIN set and a
# handler bound, on either side of the connection, before its READY.

NULL_EVENTS = E.HANDSHAKE_SUCCEEDED | E.HANDSHAKE_FAILED_NO_DETAIL | E.HANDSHAKE_FAILED_PROTOCOL | E.HANDSHAKE_FAILED_AUTH


def first_handshake_event(sock: Any, mon: Any) -> tuple:
    """The first handshake event on `mon` (zmtp or pyzmq), stepping `sock`."""
    if isinstance(sock, zmtp.Socket):
        return pump_until(sock, mon, lambda e: len(e) >= 1)[0]
    from zmq.utils.monitor import recv_monitor_message as precv

    assert mon.poll(int(DEADLINE_S * 1000)), "no handshake event"
    ev = precv(mon)
    return (int(ev["event"]), ev["value"])


def null_outcome(zap: Any, make: Callable[..., Any], handler_ctx: Any, zctx: Any, domain: Any,
                 handler: bool, enforce: int, ep: str, zmtp_side: bool) -> tuple:
    """A NULL DEALER (made by `make`) binds `ep` with these ZAP options, its
    handler (if any) in `handler_ctx` answering 200; a pyzmq DEALER connects
    and sends.  Returns (asked, first handshake event, message received)."""
    seen: List[List[bytes]] = []
    halt = handler_sock = None
    if handler:
        handler_sock, seen, halt = zap(lambda req: [b"200", b"OK", b"anon", b""], context=None if zmtp_side else handler_ctx)
    server = make(zmtp.DEALER)
    if domain is not None:
        server.zap_domain = domain
    if enforce:
        server.zap_enforce_domain = enforce
    mon = server.get_monitor_socket(NULL_EVENTS)
    server.bind(ep)
    client = psock(zctx, zmq.DEALER)
    client.connect(ep)
    client.send(b"hi")
    event = first_handshake_event(server, mon)
    got = server.recv() if event[0] == E.HANDSHAKE_SUCCEEDED else None
    asked = [r[5:] for r in seen]
    client.close(0)
    server.close(0)
    mon.close(0)
    if halt is not None:
        halt()
        handler_sock.close(0)
    return asked, (int(event[0]), int(event[1])), got


NULL_RULE = [
    # (ZAP_DOMAIN, handler bound, ZAP_ENFORCE_DOMAIN) -> asked, first event, delivered
    ((None, True, 0), ([], (E.HANDSHAKE_SUCCEEDED, 0), b"hi")),
    ((None, True, 1), ([], (E.HANDSHAKE_SUCCEEDED, 0), b"hi")),
    ((b"dom", True, 0), ([[b"NULL"]], (E.HANDSHAKE_SUCCEEDED, 0), b"hi")),
    ((b"dom", True, 1), ([[b"NULL"]], (E.HANDSHAKE_SUCCEEDED, 0), b"hi")),
    ((b"dom", False, 0), ([], (E.HANDSHAKE_SUCCEEDED, 0), b"hi")),
    ((b"dom", False, 1), ([], (E.HANDSHAKE_FAILED_NO_DETAIL, errno.EFAULT), None)),
]


@pytest.mark.parametrize("options,expected", NULL_RULE, ids=[
    "no_domain", "no_domain_enforce", "domain", "domain_enforce", "domain_no_handler", "domain_no_handler_enforce"])
def test_null_zap_rule_as_libzmq(backend, ctx, zctx, zap, options, expected, tmp_path):
    """When a NULL server asks ZAP, measured beside pyzmq's own server with
    the same options: only with ZAP_DOMAIN set and a handler bound; with a
    domain and no handler it goes on without, unless ZAP_ENFORCE_DOMAIN
    (HANDSHAKE_FAILED_NO_DETAIL, EFAULT)."""
    domain, handler, enforce = options
    pctx = zmq.Context()
    try:
        ours = null_outcome(zap, lambda k: zsock(ctx, k), None, zctx, domain, handler, enforce,
                            endpoint_for("tcp", tmp_path, "z"), True)
        theirs = null_outcome(zap, lambda k: psock(pctx, k), pctx, zctx, domain, handler, enforce,
                              endpoint_for("tcp", tmp_path, "p"), False)
    finally:
        pctx.destroy(linger=0)
    assert theirs == expected, theirs
    assert ours == theirs


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp_binds", "pyzmq_binds"])
def test_null_zap_admits(backend, ctx, zctx, zap, transport, zmtp_binds, tmp_path):
    """A zmtp NULL socket with a ZAP_DOMAIN, binding or connecting, asks its
    Context's handler about the pyzmq peer (libzmq's request: mechanism
    NULL, no credentials); 200's User-Id and metadata are on its frames."""
    _, seen, _ = zap(lambda req: [b"200", b"OK", b"anon", META])
    ep = endpoint_for(transport, tmp_path, "nz")
    ours = zsock(ctx, zmtp.DEALER, zap_domain=b"dom")
    peer = psock(zctx, zmq.DEALER, routing_id=b"peer")
    if zmtp_binds:
        ours.bind(ep)
        peer.connect(ep)
    else:
        peer.bind(ep)
        ours.connect(ep)
    peer.send(b"hi")
    frame = ours.recv(copy=False)
    assert frame.bytes == b"hi"
    assert frame.get("User-Id") == "anon" and frame.get("Hello") == "World"
    assert frame.get("Identity") == "peer"
    ours.send(b"yo")
    assert peer.recv() == b"yo"
    assert seen == [[b"1.0", seen[0][1], b"dom", peer_address(transport), b"", b"NULL"]], seen


@pytest.mark.parametrize("status", [300, 400, 500])
def test_null_zap_refuses(backend, ctx, zctx, zap, status, tmp_path):
    """300/400/500 for a NULL peer: HANDSHAKE_FAILED_AUTH(status) on the zmtp
    server; the libzmq client reports 400 and 500 from the ERROR it gets
    (300 closes without ERROR, as libzmq's null_mechanism)."""
    zap(lambda req: [str(status).encode(), b"no", b"", b""])
    ep = endpoint_for("tcp", tmp_path, "nz")
    server = zsock(ctx, zmtp.DEALER, zap_domain=b"dom")
    smon = server.get_monitor_socket(NULL_EVENTS)
    client = psock(zctx, zmq.DEALER)
    cmon = client.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    server.bind(ep)
    client.connect(ep)
    assert first_handshake_event(server, smon) == (E.HANDSHAKE_FAILED_AUTH, status)
    if status != 300:
        assert first_handshake_event(client, cmon) == (zmq.EVENT_HANDSHAKE_FAILED_AUTH, status)


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("verdict", ["deny", "allow"])
def test_pyzmq_null_server_judges_zmtp_client(backend, ctx, zctx, transport, verdict, tmp_path):
    """pyzmq's NULL server with a ZAP_DOMAIN asks pyzmq's ThreadAuthenticator
    about the zmtp client's address (libzmq's form for ipc too): denied, the
    zmtp client reports HANDSHAKE_FAILED_AUTH 400 from libzmq's ERROR;
    allowed, traffic flows, pyzmq's frames say User-Id "anonymous" (its
    authenticator's answer for NULL) and the zmtp
    client's frames have no User-Id (its own side asked nobody)."""
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(zctx)
    auth.start()
    try:
        getattr(auth, verdict)(peer_address(transport).decode())
        ep = endpoint_for(transport, tmp_path, "pz")
        server = psock(zctx, zmq.DEALER, zap_domain=b"dom")
        server.bind(ep)
        client = zsock(ctx, zmtp.DEALER)
        cmon = client.get_monitor_socket(NULL_EVENTS)
        client.connect(ep)
        if verdict == "deny":
            assert first_handshake_event(client, cmon) == (E.HANDSHAKE_FAILED_AUTH, 400)
            return
        client.send(b"hi")
        frame = server.recv(copy=False)
        assert frame.bytes == b"hi" and frame.get("User-Id") == "anonymous"
        server.send(b"yo")
        got = client.recv(copy=False)
        assert got.bytes == b"yo" and got.get("Socket-Type") == "DEALER"
        with pytest.raises(zmtp.ZMQError):
            got.get("User-Id")
    finally:
        auth.stop()


def test_null_ready_waits_for_the_verdict(backend, ctx, zap, tmp_path):
    """A NULL server with a ZAP_DOMAIN sends its READY only once the handler
    has answered (a hand-written peer sees the greeting, then nothing while
    the request is out, then READY), and a zmtp peer's READY that came
    first is kept for it: the message's properties are the peer's."""
    import socket
    import threading

    from zmtp import codec

    asked, release = threading.Event(), threading.Event()

    def slow(req: List[bytes]) -> List[bytes]:
        asked.set()
        assert release.wait(DEADLINE_S)
        return [b"200", b"OK", b"raw-peer", b""]

    zap(slow)
    server = zsock(ctx, zmtp.PULL, zap_domain=b"dom")
    server.bind("tcp://127.0.0.1:*")
    port = int(server.last_endpoint.decode().rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as raw:
        raw.sendall(codec.encode_greeting() + codec.encode_ready({"Socket-Type": "PUSH", "X-Peer": "raw"}))
        got = b""
        while len(got) < 64:
            chunk = raw.recv(64 - len(got))
            assert chunk, got
            got += chunk
        deadline = time.monotonic() + DEADLINE_S
        while not asked.is_set():  # the server steps while its owner polls
            assert time.monotonic() < deadline, "no ZAP request"
            server.poll(20)
        raw.setblocking(False)
        with pytest.raises(BlockingIOError):
            raw.recv(1)  # no READY while the verdict is out
        raw.setblocking(True)
        release.set()
        dec = codec.Decoder(greeting=True)
        events = dec.feed(got)
        while len(events) < 2:  # the server's READY, now
            server.poll(20)
            chunk = raw.recv(4096)
            assert chunk, events
            events += dec.feed(chunk)
        assert isinstance(events[1], codec.Ready) and events[1].socket_type == b"PULL", events
        raw.sendall(codec.encode_frame(b"hello"))  # messages only after the server's READY
        frame = server.recv(copy=False)
        assert frame.bytes == b"hello"
        assert (frame.get("User-Id"), frame.get("X-Peer"), frame.get("Socket-Type")) == ("raw-peer", "raw", "PUSH")


def test_null_zap_between_zmtp_sockets(backend, ctx, zap, tmp_path):
    """zmtp on both ends (both greetings in two stages): the side with a
    ZAP_DOMAIN asks its handler, the other does not."""
    _, seen, _ = zap(lambda req: [b"200", b"OK", b"peer-ok", b""])
    other = zmtp.Context()
    try:
        ep = endpoint_for("ipc", tmp_path, "zz")
        server = zsock(ctx, zmtp.PAIR, zap_domain=b"dom")
        server.bind(ep)
        client = zsock(other, zmtp.PAIR)
        client.connect(ep)
        client.send(b"hi")
        frame = server.recv(copy=False)
        assert frame.get("User-Id") == "peer-ok" and frame.get("Socket-Type") == "PAIR"
        server.send(b"yo")
        back = client.recv(copy=False)
        assert back.bytes == b"yo"
        with pytest.raises(zmtp.ZMQError):
            back.get("User-Id")
        assert [r[5:] for r in seen] == [[b"NULL"]]
        client.close(0)
    finally:
        other.destroy(linger=0)
