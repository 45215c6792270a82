"""Liveness: handshake timeout, ZMTP heartbeats, the peer's TTL, reconnect backoff.

The progress thread drives these while the test thread is not inside a zmtp
call, as libzmq's I/O thread would.
"""

from __future__ import annotations

import socket
import threading
import time

import zmq

import zmtp
from helpers import LATE_S  # the headroom of a loaded machine
from zmtp import codec


def wait_eof(sock: socket.socket, timeout: float) -> float:
    """Read until the peer closes; return the seconds it took (or fail)."""
    t0 = time.monotonic()
    sock.settimeout(0.05)
    while time.monotonic() - t0 < timeout:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - t0
    raise AssertionError(f"connection still open after {timeout} s")


def raw_peer(endpoint: bytes, socket_type: str = "DEALER", handshake: bool = True) -> socket.socket:
    host, port = endpoint.decode().rsplit("//", 1)[1].rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    if handshake:
        s.sendall(codec.encode_greeting() + codec.encode_ready({"Socket-Type": socket_type}))
    return s


def test_silent_peer_closed_after_handshake_ivl(backend, ctx):
    router = ctx.socket(zmtp.ROUTER)
    router.handshake_ivl = 150
    router.bind("tcp://127.0.0.1:*")
    with raw_peer(router.last_endpoint, handshake=False) as peer:
        took = wait_eof(peer, 10)
    assert 0.1 < took < 2.0 + LATE_S
    assert router.stats()["handshake_timeouts"] == 1


def test_heartbeat_closes_a_peer_that_goes_silent(backend, ctx):
    router = ctx.socket(zmtp.ROUTER)
    router.heartbeat_ivl = 50
    router.heartbeat_timeout = 150
    router.bind("tcp://127.0.0.1:*")
    with raw_peer(router.last_endpoint) as peer:
        took = wait_eof(peer, 10)  # we read its PINGs but never answer
    assert took < 2.0 + LATE_S
    assert router.stats()["heartbeat_timeouts"] >= 1


def test_pings_are_answered_and_healthy_peers_stay(backend, ctx, zctx):
    router = ctx.socket(zmtp.ROUTER)
    router.heartbeat_ivl = 50
    router.bind("tcp://127.0.0.1:*")
    dealer = zctx.socket(zmq.DEALER)
    dealer.heartbeat_ivl = 50
    dealer.heartbeat_timeout = 200
    dealer.connect(router.last_endpoint.decode())
    dealer.send(b"first")
    time.sleep(1.0)  # zmtp's thread is away: the progress thread answers PINGs
    dealer.send(b"second")
    router.rcvtimeo = 5000
    assert router.recv_multipart()[1] == b"first"
    assert router.recv_multipart()[1] == b"second"
    stats = router.stats()
    assert stats["disconnected"] == 0 and stats["heartbeat_timeouts"] == 0
    assert stats["accepted"] == 1


def test_peer_ttl_is_honoured(backend, ctx):
    pull = ctx.socket(zmtp.PULL)
    pull.bind("tcp://127.0.0.1:*")
    with raw_peer(pull.last_endpoint, "PUSH") as peer:
        peer.sendall(codec.encode_ping(2))  # TTL 0.2 s, then silence
        took = wait_eof(peer, 10)
    assert took < 2.0 + LATE_S
    assert pull.stats()["heartbeat_timeouts"] == 1


def count_dials(reconnect_ivl: int, reconnect_ivl_max: int, seconds: float, ctx) -> int:
    """A listener that accepts and drops every connection; count the dials."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    lsock.settimeout(0.05)
    port = lsock.getsockname()[1]
    push = ctx.socket(zmtp.PUSH)
    push.reconnect_ivl = reconnect_ivl
    push.reconnect_ivl_max = reconnect_ivl_max
    push.connect(f"tcp://127.0.0.1:{port}")
    dials = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            conn, _ = lsock.accept()
        except socket.timeout:
            continue
        dials += 1
        conn.close()
    push.close(linger=0)
    lsock.close()
    return dials


def test_reconnect_backs_off(backend, ctx):
    steady = count_dials(20, 0, 1.0, ctx)
    backoff = count_dials(20, 320, 1.0, ctx)
    # 20 ms steady: ~40 dials a second; doubling 20..320 ms: ~7.
    assert steady >= 15
    assert backoff <= 10
    assert backoff < steady


def test_reconnect_ivl_minus_one_never_redials(backend, ctx):
    assert count_dials(-1, 0, 0.5, ctx) <= 1
