"""Hostile and broken peers against a bound zmtp socket.

A raw TCP client (python's socket module, in a helper thread) does something
wrong while the zmtp socket sits in recv() in the test's thread.  For each
case: the bad connection is closed (the client sees EOF, or a reset, within
a few seconds), the reason is counted in ``sock.stats()``, a good pyzmq peer
on the same zmtp socket keeps working, and nothing crashes.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import zmq

import zmtp
from zmtp import codec
from zmtp.codec import ErrorCode

TIMEOUT_MS = 5000
KINDS = ["REP", "ROUTER", "PULL", "DEALER"]
#: the Socket-Type a valid peer of each kind announces, and the pyzmq type
PEER = {"REP": ("REQ", zmq.REQ), "ROUTER": ("DEALER", zmq.DEALER),
        "PULL": ("PUSH", zmq.PUSH), "DEALER": ("DEALER", zmq.DEALER)}
GOOD_ID = b"good"


def greeting(major=3, minor=1, mechanism=b"NULL"):
    g = bytearray(codec.encode_greeting(1, b"NULL", False))
    g[10] = major
    g[11] = minor
    g[12:32] = mechanism.ljust(20, b"\0")
    return bytes(g)


#: what zmtp sends before the peer's first 11 octets: signature, major 3
FIRST_STAGE = codec.encode_greeting(1, b"NULL", False)[:11]


def ready(kind):
    return codec.encode_ready({"Socket-Type": PEER[kind][0]})


def hello(kind):
    """A valid greeting and READY for a peer of `kind`."""
    return greeting() + ready(kind)


def long_header(size, flags=0x02):
    return bytes([flags]) + size.to_bytes(8, "big")


# name: (bytes the bad client sends, given the zmtp socket's kind;
#        the codec error counted or None; counted as a failed handshake;
#        zmtp answers with an ERROR command before closing)
CASES = {
    "garbage": (lambda k: bytes(range(1, 256)) * 4, ErrorCode.SIGNATURE, True, False),
    "http_request": (lambda k: b"GET / HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
                     ErrorCode.SIGNATURE, True, False),
    "zmtp1_peer": (lambda k: b"\x01\x00" + b"\x06\x00hello", ErrorCode.SIGNATURE, True, False),
    # revision 0x00 (ZMTP/1.0 with a signature) stays refused; 0x01 (2.0): tests/test_zmtp20.py
    "zmtp10_greeting_prefix": (lambda k: b"\xff" + b"\0" * 8 + b"\x7f" + b"\x00\x05", ErrorCode.VERSION, True, False),
    "greeting_major_2": (lambda k: greeting(major=2), ErrorCode.VERSION, True, False),
    "bad_signature_octet9": (lambda k: greeting()[:9] + b"\x00" + greeting()[10:], ErrorCode.SIGNATURE, True, False),
    "unknown_mechanism": (lambda k: greeting(mechanism=b"CURVE") + ready(k), ErrorCode.MECHANISM, True, None),
    "invalid_mechanism_name": (lambda k: greeting(mechanism=b"n\x01"), ErrorCode.MECHANISM, True, None),
    "reserved_flag_bits": (lambda k: hello(k) + b"\x10\x01x", ErrorCode.RESERVED_FLAGS, False, False),
    "reserved_flag_bits_in_handshake": (lambda k: greeting() + b"\x84\x01x", ErrorCode.RESERVED_FLAGS, False, False),
    "command_with_more": (lambda k: hello(k) + bytes([0x05, 5, 4]) + b"PING", ErrorCode.COMMAND_MORE, False, False),
    "frame_size_top_bit": (lambda k: hello(k) + long_header(2**63), ErrorCode.FRAME_SIZE, False, False),
    "malformed_ready": (lambda k: greeting() + codec.encode_command(b"READY", b"\x0bSocket-Type\x00\x00\x00\x09DE"),
                        ErrorCode.READY, None, None),
    "ready_invalid_socket_type": (lambda k: greeting() + codec.encode_ready({"Socket-Type": "PUB"}), None, True, True),
    "ready_unknown_socket_type": (lambda k: greeting() + codec.encode_ready({"Socket-Type": "BOGUS"}), None, True, True),
    "ready_without_socket_type": (lambda k: greeting() + codec.encode_ready({"Identity": "x"}), None, True, True),
    "message_before_ready": (lambda k: greeting() + codec.encode_frame(b"early"), None, True, True),
    "error_command_in_handshake": (lambda k: greeting() + codec.encode_error(b"go away"), None, True, False),
    "error_command_after_ready": (lambda k: hello(k) + codec.encode_error(b"bye"), None, False, False),
}


def read_until_closed(s, seconds=5.0):
    """(bytes received, how it ended: 'eof', 'reset' or 'timeout')."""
    data = bytearray()
    s.settimeout(seconds)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return bytes(data), "eof"
            data += chunk
    except ConnectionResetError:
        return bytes(data), "reset"
    except socket.timeout:
        return bytes(data), "timeout"


def zsocket(ctx, kind, **opts):
    s = ctx.socket(getattr(zmtp, kind))
    s.rcvtimeo = TIMEOUT_MS
    s.sndtimeo = TIMEOUT_MS
    for k, v in opts.items():
        setattr(s, k, v)
    s.bind("tcp://127.0.0.1:*")
    host, port = s.last_endpoint.decode()[len("tcp://"):].rsplit(":", 1)
    return s, (host, int(port))


class Good:
    """A well-behaved pyzmq peer of the zmtp socket."""

    def __init__(self, zctx, kind, endpoint):
        self.kind = kind
        self.sock = zctx.socket(PEER[kind][1])
        self.sock.rcvtimeo = TIMEOUT_MS
        self.sock.sndtimeo = TIMEOUT_MS
        self.sock.linger = 0
        if kind in ("ROUTER", "DEALER"):
            self.sock.setsockopt(zmq.ROUTING_ID, GOOD_ID)
        self.sock.connect(endpoint)

    def send(self, body):
        self.sock.send(body)

    def expect(self, zsock, body, reply=True, task=None):
        """The zmtp side receives body; it answers when its type can.  With
        `task` (the helper thread that made the good peer send), wait for it
        before the good peer is used again here, and return its result."""
        msg = zsock.recv_multipart()
        result = task.result() if task is not None else None
        if self.kind == "ROUTER":
            assert msg == [GOOD_ID, body]
            if reply:
                zsock.send_multipart([GOOD_ID, b"re:" + body])
        else:
            assert msg == [body]
            if reply and self.kind != "PULL":
                zsock.send(b"re:" + body)
        if reply and self.kind != "PULL":
            assert self.sock.recv() == b"re:" + body
        elif self.kind == "REP":
            raise AssertionError("a REQ peer needs its reply")
        return result


def delta(before, after):
    d = {k: after[k] - before[k] for k in ("accepted", "disconnected", "handshake_failed", "dropped_messages")}
    errs = {}
    for code, n in after["protocol_errors"].items():
        if n - before["protocol_errors"].get(code, 0):
            errs[ErrorCode(code)] = n - before["protocol_errors"].get(code, 0)
    d["protocol_errors"] = errs
    return d


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", KINDS)
def test_bad_peer(kind, case, backend, ctx, zctx, spawn):
    payload_fn, error, handshake_failed, error_cmd = CASES[case]
    zsock, addr = zsocket(ctx, kind)
    good = Good(zctx, kind, zsock.last_endpoint.decode())
    good.send(b"before")
    good.expect(zsock, b"before")
    before = zsock.stats()

    def bad_client():
        s = socket.create_connection(addr, timeout=5)
        try:
            try:
                s.sendall(payload_fn(kind))
            except OSError:
                pass  # zmtp may close before it has read everything
            data, how = read_until_closed(s)
        finally:
            s.close()
        good.send(b"after")  # only once the bad connection is gone
        return data, how

    task = spawn(bad_client)
    # zmtp works (inside recv) while the client acts
    data, how = good.expect(zsock, b"after", task=task)
    assert how in ("eof", "reset"), f"the bad connection was not closed ({how})"

    # What zmtp said before closing: its greeting's first stage (signature
    # and major version, as libzmq), then, once the peer's first 11 octets
    # came, the rest of it, READY, maybe ERROR.
    if how == "eof":
        assert data[:11] == FIRST_STAGE, data
    events = codec.Decoder(greeting=True).feed(data) if how == "eof" and len(data) > 11 else None
    if error_cmd is True and how == "eof":
        assert events, data
    if events is not None:
        assert events and isinstance(events[0], codec.Greeting), events
        assert (events[0].major, events[0].mechanism) == (3, b"NULL")
        errs = [e for e in events if isinstance(e, codec.Error)]
        if error_cmd is True:
            assert len(errs) == 1 and errs[0].reason, events
        elif error_cmd is False:
            assert not errs, events
        if len(events) > 1:
            assert isinstance(events[1], codec.Ready)
            assert events[1].socket_type == kind.encode()

    d = delta(before, zsock.stats())
    assert d["accepted"] == 1, d
    assert d["disconnected"] == 1, d
    if error is not None:
        assert d["protocol_errors"] == {error: 1}, d
    else:
        assert d["protocol_errors"] == {}, d
    if handshake_failed is not None:
        assert d["handshake_failed"] == (1 if handshake_failed else 0), d
    good.send(b"again")
    good.expect(zsock, b"again")


@pytest.mark.parametrize("kind", KINDS)
def test_huge_frame_claim_then_silence(kind, backend, ctx, zctx, spawn):
    """A frame claiming 2**63-1 bytes, then silence: legal (no MAXMSGSIZE),
    so the connection stays open, but nothing near the claim is allocated;
    the good peer is not held up; the hang-up is noticed."""
    zsock, addr = zsocket(ctx, kind)
    good = Good(zctx, kind, zsock.last_endpoint.decode())
    good.send(b"before")
    good.expect(zsock, b"before")
    before = zsock.stats()
    sent, release = threading.Event(), threading.Event()

    def bad_client():
        with socket.create_connection(addr, timeout=5) as s:
            s.sendall(hello(kind) + long_header(2**63 - 1) + b"x" * 1000)
            sent.set()
            release.wait(10)
            s.settimeout(0.2)
            try:
                leftover = s.recv(65536)  # zmtp's greeting and READY
            except socket.timeout:
                leftover = b""
            still_open = True
            try:
                while leftover:
                    leftover = s.recv(65536)
                still_open = False
            except socket.timeout:
                pass
        good.send(b"after")
        return still_open

    task = spawn(bad_client)
    assert sent.wait(5)
    base = zmtp.memory_stats()["page_bytes_live"]
    zsock.rcvtimeo = 300
    with pytest.raises(zmtp.Again):
        zsock.recv()  # reads the claim and the first 1000 bytes of it
    grown = zmtp.memory_stats()["page_bytes_live"] - base
    assert grown <= 2 * 65536 + 256, grown  # (+ the connection's property list)
    good.send(b"during")  # the good peer is not held up
    zsock.rcvtimeo = TIMEOUT_MS
    # (a DEALER's reply could go round-robin to the bad peer: no reply)
    good.expect(zsock, b"during", reply=kind != "DEALER")
    release.set()
    assert good.expect(zsock, b"after", task=task) is True, "zmtp closed a connection that did nothing wrong"
    d = delta(before, zsock.stats())
    assert d["accepted"] == 1 and d["disconnected"] == 1 and d["protocol_errors"] == {}, d
    assert d["handshake_failed"] == 0, d


@pytest.mark.parametrize("kind", KINDS)
def test_frame_over_maxmsgsize(kind, backend, ctx, zctx, spawn):
    """With MAXMSGSIZE the same claim closes the connection at once."""
    zsock, addr = zsocket(ctx, kind, maxmsgsize=1000)
    assert zsock.maxmsgsize == 1000
    good = Good(zctx, kind, zsock.last_endpoint.decode())
    good.send(b"before")
    good.expect(zsock, b"before")
    before = zsock.stats()

    def bad_client():
        with socket.create_connection(addr, timeout=5) as s:
            s.sendall(hello(kind) + long_header(1001) + b"x" * 10)
            _, how = read_until_closed(s)
        good.send(b"after")
        return how

    task = spawn(bad_client)
    assert good.expect(zsock, b"after", task=task) in ("eof", "reset")
    d = delta(before, zsock.stats())
    assert d["protocol_errors"] == {ErrorCode.MSG_TOO_LARGE: 1}, d
    assert d["disconnected"] == 1, d


@pytest.mark.parametrize("kind", KINDS)
def test_silent_peer_does_not_block_others(kind, backend, ctx, zctx, spawn):
    """A peer that connects and sends nothing gets the first stage of zmtp's
    greeting (signature and major version: the rest waits for the peer's,
    as libzmq's), holds no one up, and its hang-up is counted.  (libzmq would also close it after
    HANDSHAKE_IVL, 30 s; zmtp has no handshake timeout yet.)"""
    zsock, addr = zsocket(ctx, kind)
    good = Good(zctx, kind, zsock.last_endpoint.decode())
    good.send(b"before")
    good.expect(zsock, b"before")
    before = zsock.stats()
    connected, release = threading.Event(), threading.Event()

    def silent_client():
        with socket.create_connection(addr, timeout=5) as s:
            connected.set()
            release.wait(10)
            s.settimeout(0.2)
            got = b""
            try:
                while len(got) < 11:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            except socket.timeout:
                pass
        good.send(b"after")
        return got

    task = spawn(silent_client)
    assert connected.wait(5)
    good.send(b"during")
    good.expect(zsock, b"during")  # accepts the silent one on the way
    release.set()
    got = good.expect(zsock, b"after", task=task)
    assert got == FIRST_STAGE, got
    d = delta(before, zsock.stats())
    assert d["accepted"] == 1 and d["disconnected"] == 1 and d["protocol_errors"] == {}, d


@pytest.mark.parametrize("kind", KINDS)
def test_reset_mid_greeting(kind, backend, ctx, zctx, spawn):
    """Half a greeting, then a TCP reset (SO_LINGER 0)."""
    zsock, addr = zsocket(ctx, kind)
    good = Good(zctx, kind, zsock.last_endpoint.decode())
    good.send(b"before")
    good.expect(zsock, b"before")
    before = zsock.stats()

    def rude_client():
        s = socket.create_connection(addr, timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.sendall(greeting()[:30])
        time.sleep(0.05)
        s.close()
        time.sleep(0.05)
        good.send(b"after")

    task = spawn(rude_client)
    good.expect(zsock, b"after", task=task)
    d = delta(before, zsock.stats())
    assert d["accepted"] == 1 and d["disconnected"] == 1 and d["protocol_errors"] == {}, d


@pytest.mark.parametrize("kind", KINDS)
def test_many_bad_peers_at_once(kind, backend, ctx, zctx, spawn):
    """Twenty bad connections together: all closed, all counted."""
    zsock, addr = zsocket(ctx, kind)
    good = Good(zctx, kind, zsock.last_endpoint.decode())
    good.send(b"before")
    good.expect(zsock, b"before")
    before = zsock.stats()
    names = [n for n in CASES if CASES[n][1] is not None][:10] * 2

    def bad_clients():
        socks = [socket.create_connection(addr, timeout=5) for _ in names]
        for s, name in zip(socks, names):
            try:
                s.sendall(CASES[name][0](kind))
            except OSError:
                pass
        hows = [read_until_closed(s)[1] for s in socks]
        for s in socks:
            s.close()
        good.send(b"after")
        return hows

    task = spawn(bad_clients)
    hows = good.expect(zsock, b"after", task=task)
    assert all(h in ("eof", "reset") for h in hows), hows
    d = delta(before, zsock.stats())
    assert d["accepted"] == len(names) and d["disconnected"] == len(names), d
    assert sum(d["protocol_errors"].values()) == len(names), d
