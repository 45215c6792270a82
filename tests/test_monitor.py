"""Monitor events (get_monitor_socket), checked against libzmq's own.

Each scenario runs twice: once with a zmtp socket and its monitor, once
with a pyzmq socket and pyzmq's monitor (libzmq 4.3.5, the reference); the
event sequences must match once redial cycles (which depend on timing) are
collapsed to one.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from typing import Any, Callable, List, Tuple

import pytest
import zmq
from zmq.utils import monitor as zmq_monitor

import zmtp
from zmtp import codec
from zmtp.utils.monitor import parse_monitor_message, recv_monitor_message

E = zmtp.Event


def drain_events(mon: Any, until: Callable[[List[Tuple[int, int]]], bool], timeout: float = 5.0) -> List[Tuple[int, int]]:
    """(event, value) pairs from a zmtp or pyzmq monitor socket, read until
    until(events) holds (or fail at the deadline)."""
    out: List[Tuple[int, int]] = []
    deadline = time.monotonic() + timeout
    while not until(out):
        left = deadline - time.monotonic()
        assert left > 0, f"events so far: {names(out)}"
        if not mon.poll(max(1, int(left * 1000))):
            continue
        frames = mon.recv_multipart()
        ev = (zmq_monitor.parse_monitor_message(frames) if isinstance(mon, zmq.Socket)
              else parse_monitor_message(frames))
        out.append((int(ev["event"]), ev["value"]))
    return out


def names(events: List[Tuple[int, int]]) -> List[str]:
    return [E(e).name for e, _ in events]


def collapse_retries(seq: List[str]) -> List[str]:
    """Redial cycles repeat as often as the timing allows: keep one."""
    cycles = (["CONNECT_RETRIED", "CONNECT_DELAYED", "CLOSED"], ["CONNECT_RETRIED", "CLOSED"])
    out: List[str] = []
    for name in seq:
        out.append(name)
        for cyc in cycles:
            n = len(cyc)
            if len(out) >= 2 * n and out[-n:] == cyc and out[-2 * n:-n] == cyc:
                del out[-n:]
    return out


def seen(kind: int, count: int = 1) -> Callable[[List[Tuple[int, int]]], bool]:
    return lambda evs: sum(1 for e, _ in evs if e == kind) >= count


def endpoint_for(transport: str, tmp_path: Any, name: str) -> str:
    if transport == "ipc":
        return f"ipc://{tmp_path}/{name}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


# ---------------------------------------------------------------------------
# Scenarios, run the same way for zmtp and for pyzmq


def connect_disconnect_reconnect(make: Callable[[int], Any], zctx: Any, endpoint: str) -> List[str]:
    """A DEALER (made by `make`) connects to a pyzmq ROUTER; the ROUTER goes
    away for ~300 ms and comes back on the same endpoint; a message goes
    through each time; then the DEALER closes."""
    dealer = make(zmq.DEALER)
    mon = dealer.get_monitor_socket()
    router = zctx.socket(zmq.ROUTER)
    router.bind(endpoint)
    dealer.connect(endpoint)
    dealer.send(b"one")
    assert router.recv_multipart()[1] == b"one"
    evs = drain_events(mon, seen(E.HANDSHAKE_SUCCEEDED))
    router.close(linger=0)
    evs += drain_events(mon, seen(E.CONNECT_RETRIED))
    time.sleep(0.3)
    router = zctx.socket(zmq.ROUTER)
    router.bind(endpoint)
    dealer.send(b"two")
    assert router.recv_multipart()[1] == b"two"
    evs += drain_events(mon, seen(E.HANDSHAKE_SUCCEEDED))
    dealer.close(linger=0)
    evs += drain_events(mon, seen(E.MONITOR_STOPPED))
    mon.close(linger=0)
    router.close(linger=0)
    return collapse_retries(names(evs))


def bound_accept_disconnect(make: Callable[[int], Any], zctx: Any, endpoint: str) -> List[str]:
    """A ROUTER (made by `make`) binds; a pyzmq DEALER connects, talks and
    leaves; then the ROUTER closes."""
    router = make(zmq.ROUTER)
    mon = router.get_monitor_socket()
    router.bind(endpoint)
    dealer = zctx.socket(zmq.DEALER)
    dealer.connect(endpoint)
    dealer.send(b"hi")
    assert router.recv_multipart()[1] == b"hi"
    evs = drain_events(mon, seen(E.HANDSHAKE_SUCCEEDED))
    dealer.close(linger=0)
    evs += drain_events(mon, seen(E.DISCONNECTED))
    router.close(linger=0)
    evs += drain_events(mon, seen(E.MONITOR_STOPPED))
    mon.close(linger=0)
    return names(evs)


def wrong_peer_type(make: Callable[[int], Any], zctx: Any, endpoint: str) -> List[Tuple[str, Any]]:
    """A REP (made by `make`) binds; a pyzmq PUSH connects: the handshake
    fails on the socket type.  (libzmq's PUSH sees the REP's READY first and
    sends ERROR, so the REP reports only DISCONNECTED.)"""
    rep = make(zmq.REP)
    mon = rep.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_DISCONNECTED
                                 | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    rep.bind(endpoint)
    push = zctx.socket(zmq.PUSH)
    push.connect(endpoint)
    evs = drain_events(mon, seen(E.DISCONNECTED))
    push.close(linger=0)
    rep.close(linger=0)
    mon.close(linger=0)
    return [(E(e).name, v if e == E.HANDSHAKE_FAILED_PROTOCOL else None) for e, v in evs]


SCENARIOS = {
    "connect_disconnect_reconnect": connect_disconnect_reconnect,
    "bound_accept_disconnect": bound_accept_disconnect,
    "wrong_peer_type": wrong_peer_type,
}

_reference: dict = {}


def reference(scenario: str, transport: str, tmp_path: Any) -> Any:
    """What libzmq (pyzmq) reports for the scenario, computed once."""
    key = (scenario, transport)
    if key not in _reference:
        c = zmq.Context()
        try:
            _reference[key] = SCENARIOS[scenario](
                lambda kind: c.socket(kind), c, endpoint_for(transport, tmp_path, "ref-" + scenario))
        finally:
            c.destroy(linger=0)
    return _reference[key]


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_events_match_libzmq(backend, ctx, zctx, scenario, transport, tmp_path):
    ours = SCENARIOS[scenario](lambda kind: ctx.socket(kind), zctx, endpoint_for(transport, tmp_path, scenario))
    theirs = reference(scenario, transport, tmp_path)
    assert ours == theirs


def test_connect_events_in_order(backend, ctx, zctx):
    """The canonical sequence, spelled out (tcp): what the comparison above
    holds zmtp to."""
    seq = connect_disconnect_reconnect(lambda kind: ctx.socket(kind), zctx, endpoint_for("tcp", None, ""))
    assert seq == [
        "CONNECT_DELAYED", "CONNECTED", "HANDSHAKE_SUCCEEDED",
        "DISCONNECTED", "CONNECT_RETRIED", "CONNECT_DELAYED", "CLOSED",
        "CONNECT_RETRIED", "CONNECT_DELAYED", "CONNECTED", "HANDSHAKE_SUCCEEDED",
        "MONITOR_STOPPED",
    ]


def test_event_values(backend, ctx, zctx):
    """Values: fds for CONNECTED/ACCEPTED/DISCONNECTED/LISTENING, the
    interval for CONNECT_RETRIED, EINPROGRESS for CONNECT_DELAYED; the
    endpoint names the connection."""
    s = ctx.socket(zmtp.DEALER)
    s.reconnect_ivl = 150
    mon = s.get_monitor_socket()
    router = zctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    ep = f"tcp://127.0.0.1:{port}"
    s.connect(ep)
    s.send(b"x")
    router.recv_multipart()
    router.close(linger=0)
    evs = drain_events(mon, seen(E.CONNECT_RETRIED))
    got = dict(evs)
    assert got[E.CONNECT_DELAYED] == errno.EINPROGRESS
    assert got[E.CONNECTED] > 2 and got[E.CONNECTED] == got[E.DISCONNECTED]
    assert got[E.CONNECT_RETRIED] == 150
    assert got[E.HANDSHAKE_SUCCEEDED] == 0
    msg = mon.recv_multipart() if mon.poll(0) else None  # more may follow
    if msg is not None:
        assert parse_monitor_message(msg)["endpoint"] == ep.encode()
    s.close(linger=0)
    mon.close()


def test_bind_failed(backend, ctx, zctx):
    taken = zctx.socket(zmq.PULL)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    s = ctx.socket(zmtp.PUSH)
    mon = s.get_monitor_socket()
    with pytest.raises(zmtp.ZMQError):
        s.bind(f"tcp://127.0.0.1:{port}")
    ev = recv_monitor_message(mon)
    assert ev == {"event": E.BIND_FAILED, "value": errno.EADDRINUSE,
                  "endpoint": f"tcp://127.0.0.1:{port}".encode()}
    ok = s.bind_to_random_port("tcp://127.0.0.1")
    ev = recv_monitor_message(mon)
    assert ev["event"] == E.LISTENING and ev["endpoint"] == f"tcp://127.0.0.1:{ok}".encode()
    s.close()
    mon.close()


def test_handshake_timeout_and_garbage(backend, ctx):
    """A peer that never speaks: HANDSHAKE_FAILED_NO_DETAIL (ETIMEDOUT)
    then DISCONNECTED.  A peer whose READY names a wrong socket type:
    HANDSHAKE_FAILED_PROTOCOL with libzmq's INVALID_METADATA code."""
    router = ctx.socket(zmtp.ROUTER)
    router.handshake_ivl = 100
    mon = router.get_monitor_socket(zmtp.EVENT_ALL & ~zmtp.EVENT_LISTENING & ~zmtp.EVENT_ACCEPTED)
    router.bind("tcp://127.0.0.1:*")
    host, port = router.last_endpoint.decode().rsplit("/", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port))):
        evs = drain_events(mon, seen(E.DISCONNECTED))
    assert evs[0] == (E.HANDSHAKE_FAILED_NO_DETAIL, errno.ETIMEDOUT)
    assert evs[1][0] == E.DISCONNECTED
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(codec.encode_greeting() + codec.encode_ready({"Socket-Type": "PUB"}))
        evs = drain_events(mon, seen(E.DISCONNECTED))
    assert evs == [(E.HANDSHAKE_FAILED_PROTOCOL, zmtp.ProtocolErrorCode.ZMTP_INVALID_METADATA),
                   (E.DISCONNECTED, evs[1][1])]
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(codec.encode_greeting(mechanism=b"CURVE"))
        evs = drain_events(mon, seen(E.DISCONNECTED))
    assert evs[0] == (E.HANDSHAKE_FAILED_PROTOCOL, zmtp.ProtocolErrorCode.ZMTP_MECHANISM_MISMATCH)
    router.close()
    mon.close()


def test_event_mask_filters(backend, ctx, zctx):
    s = ctx.socket(zmtp.PUSH)
    mon = s.get_monitor_socket(zmtp.EVENT_HANDSHAKE_SUCCEEDED)
    pull = zctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    s.connect(f"tcp://127.0.0.1:{port}")
    evs = drain_events(mon, seen(E.HANDSHAKE_SUCCEEDED))
    assert names(evs) == ["HANDSHAKE_SUCCEEDED"]
    s.close()  # MONITOR_STOPPED is not in the mask: the monitor just ends
    assert not mon.poll(200)
    mon.close()


def test_monitor_replaced_and_disabled(backend, ctx):
    s = ctx.socket(zmtp.PUB)
    first = s.get_monitor_socket()
    second = s.get_monitor_socket()
    assert recv_monitor_message(first)["event"] == E.MONITOR_STOPPED
    s.bind("tcp://127.0.0.1:*")
    assert recv_monitor_message(second)["event"] == E.LISTENING
    assert not first.poll(100)
    s.disable_monitor()
    assert recv_monitor_message(second)["event"] == E.MONITOR_STOPPED
    s.monitor(None)  # no monitor: nothing to stop
    first.close()
    second.close()
    s.close()


def test_monitor_api_errors(ctx):
    s = ctx.socket(zmtp.PAIR)
    with pytest.raises(zmtp.ZMQError) as info:
        s.monitor("tcp://127.0.0.1:5555")
    assert info.value.errno == errno.EPROTONOSUPPORT
    with pytest.raises(zmtp.ZMQError) as info:
        s.get_monitor_socket(addr="ipc:///tmp/x")
    assert info.value.errno == errno.EPROTONOSUPPORT
    with pytest.raises(TypeError, match="events"):
        s.get_monitor_socket("all")
    with pytest.raises(RuntimeError):
        parse_monitor_message([b"short", b""])
    s.close()
    with pytest.raises(zmtp.ZMQError) as info:
        s.get_monitor_socket()
    assert info.value.errno == zmtp.ENOTSOCK


@pytest.mark.parametrize("lib", ["zmtp", "pyzmq"])
def test_monitor_on_an_inproc_name(backend, ctx, zctx, lib):
    """libzmq's way: monitor("inproc://name"), then a PAIR of the same
    context connects to the name and receives the events; the same script
    on pyzmq gives the same events."""
    c, mod = (ctx, zmtp) if lib == "zmtp" else (zctx, zmq)
    s = c.socket(mod.PULL)
    s.monitor("inproc://mon-events", mod.EVENT_LISTENING | mod.EVENT_ACCEPTED | mod.EVENT_HANDSHAKE_SUCCEEDED
              | mod.EVENT_MONITOR_STOPPED)
    mon = c.socket(mod.PAIR)
    mon.rcvtimeo = 5000
    mon.connect("inproc://mon-events")
    port = s.bind_to_random_port("tcp://127.0.0.1")
    peer = zctx.socket(zmq.PUSH)
    peer.linger = 0
    peer.connect(f"tcp://127.0.0.1:{port}")
    peer.send(b"x")
    assert s.recv() == b"x"
    recv = recv_monitor_message if lib == "zmtp" else zmq_monitor.recv_monitor_message
    names = [recv(mon)["event"].name for _ in range(3)]
    assert names == ["LISTENING", "ACCEPTED", "HANDSHAKE_SUCCEEDED"]
    with pytest.raises(mod.ZMQError) as info:  # the name is taken
        c.socket(mod.PAIR).bind("inproc://mon-events")
    assert info.value.errno == errno.EADDRINUSE
    s.monitor(None)
    assert recv(mon)["event"].name == "MONITOR_STOPPED"
    peer.close()


def test_closed_monitor_is_forgotten(backend, ctx, zctx):
    """The application closes the monitor first: the socket notices, goes
    on working, and holds no descriptor for it."""
    s = ctx.socket(zmtp.DEALER)
    router = zctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    s.connect(f"tcp://127.0.0.1:{port}")
    s.send(b"first")
    assert router.recv_multipart()[1] == b"first"
    s.poll(1)  # this thread's backend is opened at its first wait
    fds = len(os.listdir("/proc/self/fd"))
    mon = s.get_monitor_socket()
    assert len(os.listdir("/proc/self/fd")) == fds + 2  # the socketpair
    mon.close()
    for i in range(3):
        s.send(b"%d" % i)
        assert router.recv_multipart()[1] == b"%d" % i
    deadline = time.monotonic() + 30  # generous: under load the closed PAIR's end goes late
    while len(os.listdir("/proc/self/fd")) > fds and time.monotonic() < deadline:
        s.poll(10)
    assert len(os.listdir("/proc/self/fd")) == fds
    s.close()
    router.close(linger=0)


def test_events_flow_while_owner_is_away(backend, ctx, zctx):
    """Accepts happen on the progress thread: their events arrive although
    the monitored socket's owner makes no call."""
    router = ctx.socket(zmtp.ROUTER)
    router.bind("tcp://127.0.0.1:*")
    mon = router.get_monitor_socket(zmtp.EVENT_ACCEPTED | zmtp.EVENT_HANDSHAKE_SUCCEEDED)
    dealers = [zctx.socket(zmq.DEALER) for _ in range(3)]
    for d in dealers:
        d.connect(router.last_endpoint.decode())
    evs = drain_events(mon, seen(E.HANDSHAKE_SUCCEEDED, 3))
    assert sorted(names(evs)) == ["ACCEPTED"] * 3 + ["HANDSHAKE_SUCCEEDED"] * 3
    router.close()
    mon.close()


def test_monitor_in_poller(backend, ctx, zctx):
    s = ctx.socket(zmtp.PUSH)
    mon = s.get_monitor_socket()
    poller = zmtp.Poller()
    poller.register(mon, zmtp.POLLIN)
    pull = zctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    s.connect(f"tcp://127.0.0.1:{port}")
    assert dict(poller.poll(5000)).get(mon) == zmtp.POLLIN
    s.close()
    mon.close()


# ---------------------------------------------------------------------------
# Mechanism mismatch with libzmq: HANDSHAKE_FAILED_PROTOCOL(MECHANISM_MISMATCH)
# on both monitors, every time.  zmtp sends its greeting in libzmq's two
# stages (signature and major version, then the rest once the peer's first
# 11 octets came): sent whole, libzmq read our mechanism and closed before
# writing its own, and zmtp only saw a lost connection (NO_DETAIL).

MISMATCH = (E.HANDSHAKE_FAILED_PROTOCOL, zmtp.ProtocolErrorCode.ZMTP_MECHANISM_MISMATCH)
HS_EVENTS = (E.HANDSHAKE_SUCCEEDED | E.HANDSHAKE_FAILED_NO_DETAIL | E.HANDSHAKE_FAILED_PROTOCOL
             | E.HANDSHAKE_FAILED_AUTH)


def set_mechanism(sock: Any, mech: str, keys: Tuple[bytes, bytes]) -> None:
    """NULL, PLAIN client/server or CURVE client/server options, by name."""
    public, secret = keys
    if mech == "plain_server":
        sock.plain_server = True
    elif mech == "plain_client":
        sock.plain_username, sock.plain_password = b"u", b"p"
    elif mech == "curve_server":
        sock.curve_server = True
        sock.curve_secretkey = secret
    elif mech == "curve_client":
        sock.curve_serverkey = public
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()


@pytest.mark.parametrize("ours,theirs", [
    ("null", "curve_server"), ("null", "curve_client"), ("plain_server", "null"), ("plain_client", "null"),
    ("curve_client", "plain_server"), ("curve_server", "plain_client"),
])
@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp_binds", "pyzmq_binds"])
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_mechanism_mismatch_with_libzmq(backend, ctx, zctx, ours, theirs, zmtp_binds, transport, tmp_path):
    """A libzmq peer with another mechanism: MECHANISM_MISMATCH on zmtp's
    monitor and on libzmq's, for three connections in a row."""
    keys = zmq.curve_keypair()
    for i in range(3):
        ep = endpoint_for(transport, tmp_path, f"mm{i}")  # libzmq frees a name late
        z = ctx.socket(zmtp.DEALER)
        p = zctx.socket(zmq.DEALER)
        p.linger = 0
        set_mechanism(z, ours, keys)
        set_mechanism(p, theirs, keys)
        zmon = z.get_monitor_socket(HS_EVENTS)
        pmon = p.get_monitor_socket(HS_EVENTS)
        binder, connecter = (z, p) if zmtp_binds else (p, z)
        binder.bind(ep)
        connecter.connect(ep)
        assert drain_events(zmon, seen(MISMATCH[0]), timeout=20)[0] == MISMATCH
        assert drain_events(pmon, seen(MISMATCH[0]), timeout=20)[0] == MISMATCH
        for s in (z, p, zmon, pmon):
            s.close(0)


def read_exactly(sock: socket.socket, n: int) -> bytes:
    """n octets from a blocking socket (with its timeout), or fail."""
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        assert chunk, f"closed after {got!r}"
        got += chunk
    return got


def byte_by_byte_peer(raw: socket.socket, zmon: Any) -> None:
    """A hand-written CURVE peer facing zmtp's NULL socket on `raw`: its
    greeting one octet at a time.  zmtp's first stage (11 octets) comes at
    once; the rest of its greeting only after our 11th octet; our mechanism
    is a mismatch on zmtp's monitor, and zmtp closes."""
    raw.settimeout(20)
    if raw.family != socket.AF_UNIX:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    greeting = codec.encode_greeting(mechanism=b"CURVE")
    theirs = codec.encode_greeting(mechanism=b"NULL")
    assert read_exactly(raw, 11) == theirs[:11]
    for i in range(11):
        raw.sendall(greeting[i:i + 1])
    assert read_exactly(raw, 53) == theirs[11:]  # the rest: after our 11th octet
    for i in range(11, 64):
        raw.sendall(greeting[i:i + 1])
    assert drain_events(zmon, seen(MISMATCH[0]), timeout=20)[0] == MISMATCH
    rest = b""
    while True:  # zmtp's READY, then ERROR, then EOF (a reset is fine too)
        try:
            chunk = raw.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        rest += chunk


@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp_binds", "peer_binds"])
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_mechanism_mismatch_byte_by_byte(backend, ctx, zmtp_binds, transport, tmp_path):
    """A peer that sends its greeting in 64 pieces still gets
    MECHANISM_MISMATCH, with zmtp binding and connecting."""
    z = ctx.socket(zmtp.DEALER)
    zmon = z.get_monitor_socket(HS_EVENTS)
    family = socket.AF_UNIX if transport == "ipc" else socket.AF_INET
    if zmtp_binds:
        z.bind(endpoint_for(transport, tmp_path, "bb"))
        addr = z.last_endpoint.decode().split("://", 1)[1]
        target = addr if transport == "ipc" else (addr.rsplit(":", 1)[0], int(addr.rsplit(":", 1)[1]))
        with socket.socket(family, socket.SOCK_STREAM) as raw:
            raw.connect(target)
            byte_by_byte_peer(raw, zmon)
    else:
        with socket.socket(family, socket.SOCK_STREAM) as lsock:
            lsock.bind(str(tmp_path / "bb") if transport == "ipc" else ("127.0.0.1", 0))
            lsock.listen(1)
            name = lsock.getsockname()
            z.connect(f"ipc://{name}" if transport == "ipc" else f"tcp://127.0.0.1:{name[1]}")
            lsock.settimeout(20)
            raw, _ = lsock.accept()
            with raw:
                byte_by_byte_peer(raw, zmon)
    z.close(0)
    zmon.close(0)
