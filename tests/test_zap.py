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

    def start(answer: Answer = by_password, bind: bool = True) -> Any:
        handler = zsock(ctx, zmtp.REP)
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
    assert req[3] == (b"127.0.0.1" if transport == "tcp" else b""), req
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
    reply's metadata (any case), as libzmq's zmq_msg_gets; an unknown name
    is EINVAL; frames of other connections still say NotImplementedError."""
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
    assert body.get("hello") == "World" and body.get(b"Hello") == "World"
    with pytest.raises(zmtp.ZMQError) as exc:
        body.get("Peer-Address")
    assert exc.value.errno == zmtp.EINVAL
    plain = zsock(ctx, zmtp.PAIR)
    plain.bind("inproc://no-zap")
    other = zsock(ctx, zmtp.PAIR)
    other.connect("inproc://no-zap")
    other.send(b"x")
    with pytest.raises(NotImplementedError):
        plain.recv(copy=False).get("User-Id")


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
