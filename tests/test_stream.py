"""STREAM sockets (libzmq's ZMQ_STREAM): raw tcp/ipc, no ZMTP on the wire.

A STREAM socket receives [routing id, bytes as they arrived] from each raw
peer, sends [routing id, bytes] to one (EHOSTUNREACH for an id it does not
know), closes a peer on [routing id, b""], and with STREAM_NOTIFY (default
on) receives [routing id, b""] when a peer connects and when it leaves.
Checked against plain Python sockets in both roles and against pyzmq's
STREAM (libzmq 4.3.5) both ways, over tcp and ipc, on both backends; and
against hostile input (what a raw peer sends costs what arrived).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any, Dict, List, Tuple

import pytest

import zmtp
from helpers import DEADLINE_S, connect_to, psock, raises_errno, wait_for, zsock

TRANSPORTS = ["tcp", "ipc"]


def _bind_endpoint(transport: str, tmp_path: Any, tag: str) -> str:
    """Where a zmtp or pyzmq socket binds."""
    if transport == "tcp":
        return "tcp://127.0.0.1:*"
    return f"ipc://{tmp_path}/{tag}.ipc"


def _raw_listener(transport: str, tmp_path: Any) -> Tuple[socket.socket, str]:
    """A plain listening socket and the endpoint a STREAM connects to."""
    if transport == "tcp":
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{srv.getsockname()[1]}"
    else:
        path = f"{tmp_path}/raw.ipc"
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        endpoint = f"ipc://{path}"
    srv.listen(64)
    srv.settimeout(DEADLINE_S)
    return srv, endpoint


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    """n bytes from a plain socket (fails on EOF before them)."""
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, f"EOF after {len(out)} of {n} bytes"
        out += chunk
    return bytes(out)


def _recv_until_eof(sock: socket.socket) -> bytes:
    """Everything a plain socket reads until the peer closes."""
    out = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(out)
        out += chunk


def _stream_data(s: Any, rid: bytes, n: int) -> bytes:
    """n bytes of data from peer `rid` on a STREAM socket (any chunking),
    every message in between from that peer and non-empty."""
    out = bytearray()
    while len(out) < n:
        got_rid, data = s.recv_multipart()
        assert got_rid == rid
        assert data, "an empty frame (disconnect) before the data was whole"
        out += data
    assert len(out) == n, (len(out), n)
    return bytes(out)


def _notification(s: Any) -> bytes:
    """The next message is a notification: [id, b""]; returns the id."""
    rid, data = s.recv_multipart()
    assert data == b"", data
    assert len(rid) == 5 and rid[0] == 0, rid  # generated, as ROUTER's
    return rid


def _nothing_more(s: Any, ms: int = 300) -> None:
    """No message arrives within ms (a negative check with a short wait)."""
    assert s.poll(ms, zmtp.POLLIN) == 0, s.recv_multipart()


# ---------------------------------------------------------------------------
# The type and its option
# ---------------------------------------------------------------------------


def test_stream_constants_and_option(ctx):
    """STREAM and STREAM_NOTIFY have libzmq's numbers; STREAM_NOTIFY is
    0/1 on a STREAM socket only (EINVAL elsewhere, as libzmq)."""
    assert zmtp.STREAM == zmtp.SocketType.STREAM == 11
    assert zmtp.STREAM_NOTIFY == zmtp.SocketOption.STREAM_NOTIFY == 73
    s = zsock(ctx, zmtp.STREAM)
    assert s.type == zmtp.STREAM and "STREAM" in repr(s)
    assert s.stream_notify == 1
    s.stream_notify = 0
    assert s.getsockopt(zmtp.STREAM_NOTIFY) == 0
    raises_errno(zmtp.EINVAL, s.setsockopt, zmtp.STREAM_NOTIFY, 2)
    r = zsock(ctx, zmtp.ROUTER)
    raises_errno(zmtp.EINVAL, r.setsockopt, zmtp.STREAM_NOTIFY, 0)
    # Always writable (libzmq's stream: a full peer says EAGAIN at send).
    assert s.events & zmtp.POLLOUT


# ---------------------------------------------------------------------------
# Against plain sockets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_raw_client_to_zmtp_bind(backend, ctx, tmp_path, transport):
    """A plain client connects: [id, b""], its bytes as [id, data], our
    reply raw, and its close as [id, b""]."""
    s = zsock(ctx, zmtp.STREAM)
    s.bind(_bind_endpoint(transport, tmp_path, "srv"))
    client = connect_to(s.last_endpoint.decode())
    try:
        rid = _notification(s)
        client.sendall(b"hello")
        assert _stream_data(s, rid, 5) == b"hello"
        s.send_multipart([rid, b"world"])
        assert _recv_exact(client, 5) == b"world"
        # Nothing but our bytes on the wire: no greeting came before them.
        client.sendall(b"\xff" + b"\x00" * 8 + b"\x7f")  # a ZMTP greeting start is data too
        assert _stream_data(s, rid, 10) == b"\xff" + b"\x00" * 8 + b"\x7f"
    finally:
        client.close()
    assert s.recv_multipart() == [rid, b""]  # the disconnect
    raises_errno(zmtp.EHOSTUNREACH, s.send_multipart, [rid, b"late"])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_zmtp_connect_to_raw_server(backend, ctx, tmp_path, transport):
    """zmtp dials a plain server: [id, b""] once connected, data both
    ways; the server closing is [id, b""]; the redial keeps the id (as
    libzmq's pipe does) and announces itself again."""
    srv, endpoint = _raw_listener(transport, tmp_path)
    s = zsock(ctx, zmtp.STREAM, reconnect_ivl=50)
    try:
        s.connect(endpoint)
        conn, _ = srv.accept()
        conn.settimeout(DEADLINE_S)
        rid = _notification(s)
        s.send_multipart([rid, b"ping"])
        assert _recv_exact(conn, 4) == b"ping"
        conn.sendall(b"pong")
        assert _stream_data(s, rid, 4) == b"pong"
        conn.close()
        assert s.recv_multipart() == [rid, b""]
        conn, _ = srv.accept()  # redialled
        conn.settimeout(DEADLINE_S)
        assert _notification(s) == rid
        s.send_multipart([rid, b"again"])
        assert _recv_exact(conn, 5) == b"again"
        conn.close()
    finally:
        srv.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_notify_off(backend, ctx, tmp_path, transport):
    """STREAM_NOTIFY 0: no message at connect or disconnect, only data."""
    s = zsock(ctx, zmtp.STREAM, stream_notify=0)
    s.bind(_bind_endpoint(transport, tmp_path, "quiet"))
    client = connect_to(s.last_endpoint.decode())
    client.sendall(b"data")
    rid, data = s.recv_multipart()
    assert data and data == b"data"[: len(data)]
    rest = b"data"[len(data):]
    if rest:
        assert _stream_data(s, rid, len(rest)) == rest
    s.send_multipart([rid, b"ok"])
    assert _recv_exact(client, 2) == b"ok"
    client.close()
    # The connection is gone (sends say EHOSTUNREACH) and said nothing.
    wait_for(lambda: _unreachable(s, rid), DEADLINE_S, "the peer's close seen")
    _nothing_more(s)


def _unreachable(s: Any, rid: bytes) -> bool:
    """True once a send to `rid` says EHOSTUNREACH (steps the socket)."""
    s.poll(10)
    try:
        s.send_multipart([rid, b"x"])
    except zmtp.ZMQError as exc:
        assert exc.errno == zmtp.EHOSTUNREACH
        return True
    return False


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_close_peer_with_empty_frame(backend, ctx, tmp_path, transport):
    """[id, b""] writes what was queued, then closes that connection (the
    peer reads our bytes then EOF); no disconnect notification follows,
    the id is gone, other peers are untouched."""
    s = zsock(ctx, zmtp.STREAM)
    s.bind(_bind_endpoint(transport, tmp_path, "close"))
    endpoint = s.last_endpoint.decode()
    a = connect_to(endpoint)
    rid_a = _notification(s)
    b = connect_to(endpoint)
    rid_b = _notification(s)
    try:
        s.send_multipart([rid_a, b"bye"])
        s.send_multipart([rid_a, b""])
        assert _recv_until_eof(a) == b"bye"
        raises_errno(zmtp.EHOSTUNREACH, s.send_multipart, [rid_a, b"x"])
        s.send_multipart([rid_b, b"still"])
        assert _recv_exact(b, 5) == b"still"
        _nothing_more(s)
    finally:
        a.close()
        b.close()
    assert s.recv_multipart() == [rid_b, b""]


def test_close_of_a_dialled_peer_is_final(backend, ctx, tmp_path):
    """Closing a connection we dialled ends it: no redial (libzmq ends its
    session too)."""
    srv, endpoint = _raw_listener("tcp", tmp_path)
    s = zsock(ctx, zmtp.STREAM, reconnect_ivl=20)
    try:
        s.connect(endpoint)
        conn, _ = srv.accept()
        conn.settimeout(DEADLINE_S)
        rid = _notification(s)
        s.send_multipart([rid, b"end"])
        s.send_multipart([rid, b""])
        assert _recv_until_eof(conn) == b"end"
        conn.close()
        srv.settimeout(0.5)
        s.poll(300)
        with pytest.raises(socket.timeout):
            srv.accept()
        _nothing_more(s)
    finally:
        srv.close()


def test_unknown_routing_id(backend, ctx, zctx):
    """An id no peer has: EHOSTUNREACH (libzmq's STREAM is always
    mandatory), the same as pyzmq; an id sent alone is ignored and the
    frame after it dropped, as libzmq does."""
    s = zsock(ctx, zmtp.STREAM)
    raises_errno(zmtp.EHOSTUNREACH, s.send_multipart, [b"\x00\x01\x02\x03\x04", b"x"])
    import zmq

    p = psock(zctx, zmq.STREAM)
    with pytest.raises(zmq.ZMQError) as info:
        p.send_multipart([b"\x00\x01\x02\x03\x04", b"x"])
    assert info.value.errno == zmtp.EHOSTUNREACH
    s.bind("tcp://127.0.0.1:*")
    client = connect_to(s.last_endpoint.decode())
    try:
        rid = _notification(s)
        s.send(rid)  # alone: ignored ...
        s.send(b"dropped")  # ... and this is dropped with it
        s.send_multipart([rid, b"kept"])
        assert _recv_exact(client, 4) == b"kept"
    finally:
        client.close()


@pytest.mark.parametrize("direction", ["in", "out"])
def test_large_data(backend, ctx, direction):
    """1 MiB each way arrives whole and in order (in: as many chunks as the
    kernel made of it; out: one send, written as the peer reads)."""
    payload = os.urandom(1 << 20)
    s = zsock(ctx, zmtp.STREAM)
    s.bind("tcp://127.0.0.1:*")
    client = connect_to(s.last_endpoint.decode())
    try:
        rid = _notification(s)
        if direction == "in":
            sender = threading.Thread(target=client.sendall, args=(payload,))
            sender.start()
            assert _stream_data(s, rid, len(payload)) == payload
            sender.join(DEADLINE_S)
        else:
            got: List[bytes] = []
            reader = threading.Thread(target=lambda: got.append(_recv_exact(client, len(payload))))
            reader.start()
            s.send_multipart([rid, payload])
            s.send_multipart([rid, b"!"])
            reader.join(DEADLINE_S)
            assert got and got[0] == payload
            assert _recv_exact(client, 1) == b"!"
    finally:
        client.close()


def test_many_peers(backend, ctx):
    """40 raw clients: each gets its own id, and replies go to the right
    one."""
    s = zsock(ctx, zmtp.STREAM)
    s.bind("tcp://127.0.0.1:*")
    endpoint = s.last_endpoint.decode()
    clients = [connect_to(endpoint) for _ in range(40)]
    try:
        for i, c in enumerate(clients):
            c.sendall(b"client-%02d" % i)
        ids: Dict[bytes, bytearray] = {}
        deadline = time.monotonic() + DEADLINE_S
        while sum(len(v) for v in ids.values()) < 40 * 9:
            assert time.monotonic() < deadline
            rid, data = s.recv_multipart()
            ids.setdefault(rid, bytearray()).extend(data)  # the notification adds nothing
        assert len(ids) == 40
        for rid, data in ids.items():
            s.send_multipart([rid, b"echo:" + bytes(data)])
        for i, c in enumerate(clients):
            assert _recv_exact(c, 14) == b"echo:client-%02d" % i
    finally:
        for c in clients:
            c.close()


# ---------------------------------------------------------------------------
# Against pyzmq's STREAM (libzmq 4.3.5)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("binder", ["zmtp", "pyzmq"])
def test_pyzmq_stream_interop(backend, ctx, zctx, tmp_path, transport, binder):
    """A zmtp STREAM and a pyzmq STREAM, either one binding: each sees the
    other connect, bytes go both ways raw, and a close by either ([id,
    b""]) is the other's [id, b""]."""
    import zmq

    z = zsock(ctx, zmtp.STREAM)
    p = psock(zctx, zmq.STREAM)
    if binder == "zmtp":
        z.bind(_bind_endpoint(transport, tmp_path, "z"))
        p.connect(z.last_endpoint.decode())
    else:
        p.bind(_bind_endpoint(transport, tmp_path, "p"))
        z.connect(p.last_endpoint.decode())
    zid = _notification(z)  # the pyzmq peer, as zmtp names it
    pid, empty = p.recv_multipart()
    assert empty == b""
    p.send_multipart([pid, b"from pyzmq"])
    assert _stream_data(z, zid, 10) == b"from pyzmq"
    z.send_multipart([zid, b"from zmtp"])
    got = bytearray()
    while len(got) < 9:
        rid, data = p.recv_multipart()
        assert rid == pid and data
        got += data
    assert bytes(got) == b"from zmtp"
    if binder == "zmtp":
        z.send_multipart([zid, b""])  # we close it: pyzmq hears [id, b""]
        assert p.recv_multipart() == [pid, b""]
    else:
        # pyzmq closes it: libzmq does so when its socket next processes
        # commands (inside a call on it), so keep calling.
        p.send_multipart([pid, b""])
        wait_for(lambda: p.poll(5) is not None and z.poll(20, zmtp.POLLIN), DEADLINE_S, "pyzmq's close")
        assert z.recv_multipart() == [zid, b""]


def test_zmtp_peer_is_no_stream_peer(backend, ctx):
    """A ZMTP socket connecting to a STREAM is a raw peer like any other:
    its greeting arrives as data (STREAM speaks no ZMTP)."""
    s = zsock(ctx, zmtp.STREAM)
    s.bind("tcp://127.0.0.1:*")
    d = zsock(ctx, zmtp.DEALER, linger=0)
    d.connect(s.last_endpoint.decode())
    rid = _notification(s)
    greeting = bytearray()
    while len(greeting) < 10:
        got_rid, data = s.recv_multipart()
        assert got_rid == rid and data
        greeting += data
    assert greeting[0] == 0xFF and greeting[9] == 0x7F  # ZMTP signature, as bytes


# ---------------------------------------------------------------------------
# Hostile input
# ---------------------------------------------------------------------------


def test_hostile_peer_costs_what_arrived(backend, ctx):
    """A raw peer blasting bytes nobody reads (ZMTP-looking headers that
    claim 2**63-byte frames among them) is read up to RCVHWM messages and
    then left in the kernel: the pages held stay near RCVHWM reads, never
    what the peer claims or sends; everything read is handed over intact."""
    s = zsock(ctx, zmtp.STREAM, rcvhwm=8)
    s.bind("tcp://127.0.0.1:*")
    client = connect_to(s.last_endpoint.decode())
    rid = _notification(s)
    chunk = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x01NULL" + b"\x02\x7f" + b"\xff" * 8) * 2048
    stop = threading.Event()
    sent = [0]

    def blast() -> None:
        client.settimeout(0.2)
        while not stop.is_set():
            try:
                sent[0] += client.send(chunk)
            except (socket.timeout, OSError):
                pass

    before = zmtp.memory_stats()["page_bytes_live"]
    t = threading.Thread(target=blast)
    t.start()
    try:
        wait_for(lambda: s.poll(20) is not None and sent[0] > 0 and _stalled(sent),
                 DEADLINE_S, "the peer blocked (we stopped reading)")
        held = zmtp.memory_stats()["page_bytes_live"] - before
        # RCVHWM (8) reads of at most one 64 KiB page each, plus the page in use.
        assert held <= 10 * 65536, held
        assert sent[0] > held + (256 << 10), (sent[0], held)  # the rest waits in the kernel
        # What was read is intact: the chunk's bytes, in order.
        out = bytearray()
        while len(out) < len(chunk):
            got_rid, data = s.recv_multipart()
            assert got_rid == rid and data
            out += data
        assert out[: len(chunk)] == chunk
    finally:
        stop.set()
        t.join(DEADLINE_S)
        client.close()


def _stalled(sent: List[int]) -> bool:
    """True when `sent` does not move for 200 ms (the kernel's buffers are
    full: we stopped reading)."""
    a = sent[0]
    time.sleep(0.2)
    return sent[0] == a


def test_peer_vanishing_mid_data(backend, ctx):
    """Peers that reset, half-close or vanish right after connecting never
    crash the socket: each is a notification pair at most, and the
    socket serves the next one."""
    import struct

    s = zsock(ctx, zmtp.STREAM)
    s.bind("tcp://127.0.0.1:*")
    endpoint = s.last_endpoint.decode()
    for i in range(20):
        c = connect_to(endpoint)
        c.sendall(os.urandom(1000 * i + 1))
        if i % 2:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        c.close()
    last = connect_to(endpoint)
    last.sendall(b"alive")
    got: Dict[bytes, bytearray] = {}
    deadline = time.monotonic() + DEADLINE_S
    rid = b""
    while not rid:
        assert time.monotonic() < deadline
        r, data = s.recv_multipart()
        got.setdefault(r, bytearray()).extend(data)
        if got[r] == b"alive":
            rid = r
    s.send_multipart([rid, b"ok"])
    assert _recv_exact(last, 2) == b"ok"
    last.close()


def test_monitor_events_as_libzmq(backend, ctx, zctx):
    """A raw connection's monitor events are libzmq's: ACCEPTED, no
    HANDSHAKE_SUCCEEDED (there is no handshake), and at its end
    HANDSHAKE_FAILED_NO_DETAIL then DISCONNECTED (pyzmq's sequence,
    checked in the same run)."""
    import zmq
    from zmq.utils.monitor import recv_monitor_message as precv

    from zmtp.utils.monitor import recv_monitor_message as zrecv

    def sequence(sock: Any, mon: Any, recv: Any, again: Any) -> List[int]:
        sock.bind("tcp://127.0.0.1:*")
        client = connect_to(sock.last_endpoint.decode())
        rid = sock.recv_multipart()[0]
        client.close()
        assert sock.recv_multipart() == [rid, b""]
        events: List[int] = []
        while not events or events[-1] != zmtp.EVENT_DISCONNECTED:
            events.append(int(recv(mon)["event"]))
        mon.rcvtimeo = 200
        with pytest.raises(again):
            recv(mon)
        return events

    z = zsock(ctx, zmtp.STREAM)
    zmon = z.get_monitor_socket()
    zmon.rcvtimeo = 5000
    p = psock(zctx, zmq.STREAM)
    pmon = p.get_monitor_socket()
    pmon.rcvtimeo = 5000
    expected = sequence(p, pmon, precv, zmq.Again)
    assert expected == [zmtp.EVENT_LISTENING, zmtp.EVENT_ACCEPTED, zmtp.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
                        zmtp.EVENT_DISCONNECTED]
    assert sequence(z, zmon, zrecv, zmtp.Again) == expected
    z.disable_monitor()
    p.disable_monitor()


def test_inproc_peers_are_refused(backend, ctx):
    """inproc carries no raw bytes: a STREAM's inproc peers (STREAM or
    ZMTP) are refused and counted, nothing is delivered, nothing breaks."""
    s = zsock(ctx, zmtp.STREAM)
    s.bind("inproc://stream-refuses")
    d = zsock(ctx, zmtp.DEALER, linger=0)
    d.connect("inproc://stream-refuses")
    other = zsock(ctx, zmtp.STREAM)
    other.connect("inproc://stream-refuses")
    wait_for(lambda: s.poll(10) is not None and s.stats()["handshake_failed"] >= 2, DEADLINE_S,
             "both inproc peers refused")
    _nothing_more(s)
    _nothing_more(other)


@pytest.mark.parametrize("impl", ["zmtp", "pyzmq"])
def test_routing_id_known_at_connect(backend, ctx, zctx, tmp_path, impl):
    """As libzmq: connect() gives the peer its id at once and ROUTING_ID
    reads it back (ipykernel's debugger takes debugpy's id from there);
    what is sent to it before the connection is up waits and goes first;
    an accepted peer's id is ROUTING_ID too.  Run on pyzmq as the
    reference and on zmtp."""
    if impl == "pyzmq":
        import zmq

        s, lib = psock(zctx, zmq.STREAM), zmq
    else:
        s, lib = zsock(ctx, zmtp.STREAM), zmtp
    assert s.getsockopt(lib.ROUTING_ID) == b""
    srv, endpoint = _raw_listener("tcp", tmp_path)
    try:
        s.connect(endpoint)
        rid = s.getsockopt(lib.ROUTING_ID)
        assert len(rid) == 5 and rid[0] == 0
        s.send_multipart([rid, b"early"])  # before the connection is up
        conn, _ = srv.accept()
        conn.settimeout(DEADLINE_S)
        assert _recv_exact(conn, 5) == b"early"
        assert s.recv_multipart() == [rid, b""]
        s.bind("tcp://127.0.0.1:*")
        client = connect_to(s.getsockopt(lib.LAST_ENDPOINT).decode())
        accepted, empty = s.recv_multipart()
        assert empty == b"" and accepted != rid
        assert s.getsockopt(lib.ROUTING_ID) == accepted
        client.close()
        conn.close()
    finally:
        srv.close()


def test_close_before_the_connection_is_up(backend, ctx, tmp_path):
    """[id, data] then [id, b""] to a peer still being dialled: the data
    goes once connected, then the connection closes; no disconnect
    notification for a connection the application closed."""
    srv, endpoint = _raw_listener("tcp", tmp_path)
    s = zsock(ctx, zmtp.STREAM)
    try:
        s.connect(endpoint)
        rid = s.getsockopt(zmtp.ROUTING_ID)
        s.send_multipart([rid, b"last words"])
        s.send_multipart([rid, b""])
        raises_errno(zmtp.EHOSTUNREACH, s.send_multipart, [rid, b"more"])
        conn, _ = srv.accept()
        conn.settimeout(DEADLINE_S)
        s.poll(50)  # the socket's step finishes the dial, writes, closes
        assert _recv_until_eof(conn) == b"last words"
        conn.close()
        # At most the connect notification (when the dial completed inside
        # connect(), the connection was up before the close); never a
        # disconnect one.
        heard = []
        while s.poll(300, zmtp.POLLIN):
            heard.append(s.recv_multipart())
        assert heard in ([], [[rid, b""]]), heard
    finally:
        srv.close()


@pytest.mark.parametrize("impl", ["zmtp", "pyzmq"])
def test_disconnect_is_silent(backend, ctx, zctx, tmp_path, impl):
    """disconnect(endpoint) closes that connection (the peer reads EOF)
    with no notification, its id is gone, and connecting again makes a
    new id (ipykernel's debugger detaches and re-attaches this way).
    pyzmq as the reference, then zmtp."""
    if impl == "pyzmq":
        import zmq

        s, lib = psock(zctx, zmq.STREAM), zmq
    else:
        s, lib = zsock(ctx, zmtp.STREAM), zmtp
    srv, endpoint = _raw_listener("tcp", tmp_path)
    try:
        s.connect(endpoint)
        rid = s.getsockopt(lib.ROUTING_ID)
        conn, _ = srv.accept()
        conn.settimeout(DEADLINE_S)
        assert s.recv_multipart() == [rid, b""]
        s.send_multipart([rid, b"x"])
        assert _recv_exact(conn, 1) == b"x"
        s.disconnect(endpoint)
        # libzmq ends the connection when the socket next processes
        # commands (inside a call on it): this poll.
        assert s.poll(300, lib.POLLIN) == 0
        assert _recv_until_eof(conn) == b""
        conn.close()
        with pytest.raises(lib.ZMQError) as info:
            s.send_multipart([rid, b"y"])
        assert info.value.errno == zmtp.EHOSTUNREACH
        s.connect(endpoint)
        assert s.getsockopt(lib.ROUTING_ID) != rid
        conn, _ = srv.accept()
        conn.close()
    finally:
        srv.close()


def test_sndhwm_with_a_peer_that_does_not_read(backend, ctx):
    """A raw peer that reads nothing: sends queue up to SNDHWM messages
    beyond what the kernel took, then say Again at the id frame (libzmq's
    STREAM); once the peer reads, sending goes on, every byte in order."""
    s = zsock(ctx, zmtp.STREAM, sndhwm=4, sndtimeo=100)
    s.bind("tcp://127.0.0.1:*")
    client = connect_to(s.last_endpoint.decode())
    try:
        rid = _notification(s)
        block = 256 << 10
        sent = 0
        with pytest.raises(zmtp.Again):
            for i in range(1000):  # 256 MiB: far beyond any kernel buffer
                s.send_multipart([rid, bytes([i % 251]) * block])
                sent += 1
        assert 4 <= sent < 1000
        reader_out: List[bytes] = []
        reader = threading.Thread(target=lambda: reader_out.append(_recv_exact(client, (sent + 1) * block)))
        reader.start()
        s.sndtimeo = 5000
        s.send_multipart([rid, bytes([sent % 251]) * block])
        reader.join(DEADLINE_S)
        got = reader_out[0]
        for i in range(sent + 1):
            assert got[i * block:(i + 1) * block] == bytes([i % 251]) * block, i
    finally:
        client.close()


def test_idle_peers_pin_no_read_pages(backend, ctx):
    """200 peers that each sent a few bytes nobody has received yet hold
    pages of about that size, not a 64 KiB read page each (a small read
    is copied out of the read page, which is then let go)."""
    s = zsock(ctx, zmtp.STREAM, stream_notify=0)
    s.bind("tcp://127.0.0.1:*")
    endpoint = s.last_endpoint.decode()
    mem = zmtp.memory_stats
    before = mem()
    clients = [connect_to(endpoint) for _ in range(200)]
    try:
        for i, c in enumerate(clients):
            c.sendall(b"%03d" % i)
        # Every peer's bytes read: one page each (at least) is live.
        wait_for(lambda: s.poll(20) is not None and mem()["pages_live"] - before["pages_live"] >= 200,
                 DEADLINE_S, "every peer's bytes read")
        held = mem()["page_bytes_live"] - before["page_bytes_live"]
        assert held < 200 * 1024, held  # 200 x 64 KiB if each pinned its read page
        got = {}
        for _ in range(200):
            rid, data = s.recv_multipart()
            got[rid] = data
        assert sorted(got.values()) == [b"%03d" % i for i in range(200)]
    finally:
        for c in clients:
            c.close()

