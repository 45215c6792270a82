"""Connection properties on received frames, as libzmq 4.3.5 gives them to a
message (zmq_msg_gets; pyzmq's and zmtp's ``Frame.get(name)``): the peer's
READY metadata as sent (``Socket-Type``, ``Identity``, any ``X-...``),
``Peer-Address`` (tcp: the IP; ipc: ``localhost:UID:GID:PID``), and after ZAP
``User-Id`` and the reply's metadata.  Names are exact (case matters); an
unknown name, a local frame or an inproc frame raise ZMQError(EINVAL).

Each case runs twice, zmtp receiving from pyzmq and pyzmq receiving from
zmtp, with the same roles (who binds, who is the PLAIN/CURVE server, who asks
ZAP), and the two must see the same properties: tcp and ipc, NULL, NULL with
ZAP, PLAIN and CURVE, both backends."""

from __future__ import annotations

from typing import Any, Dict

import pytest

zmq = pytest.importorskip("zmq")

import zmtp  # noqa: E402
from helpers import psock, zsock  # noqa: E402
from test_monitor import endpoint_for  # noqa: E402
from test_zap import META, peer_address, zap  # noqa: E402,F401  (zap: a fixture)

#: the names asked of each received frame: libzmq's, the peer's READY
#: metadata, the ZAP reply's, and names libzmq does not give
NAMES = ["Socket-Type", "Identity", "Peer-Address", "User-Id", "Hello",
         "Routing-Id", "socket-type", "identity", "X-Nope", ""]

MECHS = ["null", "null_zap", "plain", "curve"]


def props_of(frame: Any) -> Dict[str, str]:
    """Frame.get(name) for every name of NAMES: the value, or "EINVAL"."""
    out = {}
    for name in NAMES:
        try:
            out[name] = frame.get(name)
        except (zmtp.ZMQError, zmq.ZMQError) as exc:
            assert exc.errno == zmtp.EINVAL, (name, exc)
            out[name] = "EINVAL"
    return out


def configure(sock: Any, mech: str, server: bool, receiver: bool, keys: Dict[str, bytes]) -> None:
    """Security options by role: the binder is the PLAIN/CURVE server; with
    null_zap the receiver has a ZAP_DOMAIN (so it asks its handler)."""
    if mech == "null_zap" and receiver:
        sock.zap_domain = b"dom"
    elif mech == "plain":
        if server:
            sock.plain_server = True
        else:
            sock.plain_username = b"u"
            sock.plain_password = b"p"
    elif mech == "curve":
        if server:
            sock.curve_server = True
            sock.curve_secretkey = keys["server_secret"]
        else:
            sock.curve_serverkey = keys["server_public"]
            sock.curve_publickey, sock.curve_secretkey = keys["client_public"], keys["client_secret"]


def received_props(ctx: Any, zctx: Any, receiver_is_zmtp: bool, receiver_binds: bool,
                   mech: str, transport: str, tmp_path: Any) -> Dict[str, str]:
    """A DEALER with routing id "snd" sends a 2-frame message to a DEALER;
    the receiver's frames' properties (both frames must agree)."""
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    keys = {"server_public": server_public, "server_secret": server_secret,
            "client_public": client_public, "client_secret": client_secret}
    recv = zsock(ctx, zmtp.DEALER) if receiver_is_zmtp else psock(zctx, zmq.DEALER)
    send = psock(zctx, zmq.DEALER) if receiver_is_zmtp else zsock(ctx, zmtp.DEALER)
    send.routing_id = b"snd"
    configure(recv, mech, receiver_binds, True, keys)
    configure(send, mech, not receiver_binds, False, keys)
    ep = endpoint_for(transport, tmp_path, f"p{int(receiver_is_zmtp)}")
    binder, connecter = (recv, send) if receiver_binds else (send, recv)
    binder.bind(ep)
    connecter.connect(ep)
    send.send_multipart([b"a", b"b"])
    frames = recv.recv_multipart(copy=False)
    assert [f.bytes for f in frames] == [b"a", b"b"]
    seen = [props_of(f) for f in frames]
    assert seen[0] == seen[1]
    for s in (recv, send):
        s.close(0)
    return seen[0]


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("mech", MECHS)
@pytest.mark.parametrize("receiver_binds", [True, False], ids=["receiver_binds", "sender_binds"])
def test_props_as_libzmq(backend, ctx, zctx, zap, transport, mech, receiver_binds, tmp_path):
    """zmtp receiving from pyzmq sees what pyzmq sees receiving from zmtp."""
    # a handler in each library's context: 200, User-Id "user", Hello: World
    for c in (None, zctx):
        zap(lambda req: [b"200", b"OK", b"user", META], context=c)
    ours = received_props(ctx, zctx, True, receiver_binds, mech, transport, tmp_path)
    theirs = received_props(ctx, zctx, False, receiver_binds, mech, transport, tmp_path)
    assert ours == theirs
    asked_zap = mech == "null_zap" or (mech in ("plain", "curve") and receiver_binds)
    expected = {name: "EINVAL" for name in NAMES}
    expected.update({"Socket-Type": "DEALER", "Identity": "snd",
                     "Peer-Address": peer_address(transport).decode()})
    if asked_zap:  # (a CURVE server asks too: its 200 gives the same two)
        expected.update({"User-Id": "user", "Hello": "World"})
    assert ours == expected


def test_app_metadata_from_pyzmq(backend, ctx, zctx, tmp_path):
    """A libzmq peer's ZMQ_METADATA ("X-name:value", sent in its READY) is a
    property of its messages on zmtp's side, by its exact name."""
    ep = endpoint_for("tcp", tmp_path, "md")
    recv = zsock(ctx, zmtp.PULL)
    recv.bind(ep)
    send = psock(zctx, zmq.PUSH)
    send.setsockopt(zmq.METADATA, b"X-App:demo")
    send.connect(ep)
    send.send(b"x")
    frame = recv.recv(copy=False)
    assert frame.get("X-App") == "demo" and frame.get("Socket-Type") == "PUSH"
    with pytest.raises(zmtp.ZMQError):
        frame.get("x-app")


def test_frames_without_connection(ctx, zctx):
    """A local Frame and an inproc frame have no connection properties:
    EINVAL for every name, in pyzmq and in zmtp."""
    for frame, err in ((zmtp.Frame(b"x"), zmtp.ZMQError), (zmq.Frame(b"x"), zmq.ZMQError)):
        with pytest.raises(err) as exc:
            frame.get("Socket-Type")
        assert exc.value.errno == zmtp.EINVAL
    for make, kind, err in ((lambda k: zsock(ctx, k), zmtp.PAIR, zmtp.ZMQError),
                            (lambda k: psock(zctx, k), zmq.PAIR, zmq.ZMQError)):
        a, b = make(kind), make(kind)
        a.bind("inproc://props")
        b.connect("inproc://props")
        b.send(b"x")
        frame = a.recv(copy=False)
        for name in ("Socket-Type", "Peer-Address", "User-Id"):
            with pytest.raises(err) as exc:
                frame.get(name)
            assert exc.value.errno == zmtp.EINVAL
        a.close(0)
        b.close(0)


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_props_by_frame_and_after_close(backend, ctx, zctx, transport, tmp_path):
    """Frames taken one by one (the first copied, the rest zero-copy in later
    calls; a ROUTER's routing-id frame too) carry their connection's
    properties, and keep them after the connection and socket are gone."""
    ep = endpoint_for(transport, tmp_path, "bf")
    recv = zsock(ctx, zmtp.ROUTER)
    recv.bind(ep)
    send = psock(zctx, zmq.DEALER, routing_id=b"snd")
    send.connect(ep)
    send.send_multipart([b"a", b"b"])
    assert recv.recv() == b"snd"  # copied: no Frame
    first = recv.recv(copy=False)
    second = recv.recv(copy=False)
    assert (first.bytes, second.bytes) == (b"a", b"b")
    send.close(0)
    recv.close(0)
    for f in (first, second):
        assert f.get("Identity") == "snd" and f.get("Socket-Type") == "DEALER"
        assert f.get("Peer-Address") == peer_address(transport).decode()


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_stream_frames_carry_peer_address(backend, ctx, zctx, transport, tmp_path):
    """A STREAM socket's frames (the connect notice and the data, each with
    its routing-id frame) carry Peer-Address only, as libzmq's raw engine's."""
    import socket

    seen = []
    for make, lib in ((lambda k: zsock(ctx, k), zmtp), (lambda k: psock(zctx, k), zmq)):
        s = make(lib.STREAM)
        ep = endpoint_for(transport, tmp_path, f"st{lib.__name__}")
        s.bind(ep)
        family = socket.AF_UNIX if transport == "ipc" else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as raw:
            addr = ep.split("://", 1)[1]
            raw.connect(addr if transport == "ipc" else ("127.0.0.1", int(addr.rsplit(":", 1)[1])))
            raw.sendall(b"hello")
            frames = []
            while not frames or frames[-1].bytes != b"hello":
                frames.append(s.recv(copy=False))
            seen.append([{n: props_of(f)[n] for n in ("Peer-Address", "Socket-Type", "User-Id")} for f in frames[-2:]])
        s.close(0)
    ours, theirs = seen
    assert ours == theirs == [{"Peer-Address": peer_address(transport).decode(), "Socket-Type": "EINVAL",
                               "User-Id": "EINVAL"}] * 2
