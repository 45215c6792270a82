"""Endpoint forms: IPv6 literals, host names, several binds and connects per socket."""

from __future__ import annotations

import time

import pytest
import zmq

import zmtp
from helpers import ipv6_loopback


def settle(sock, ms: int = 150) -> None:
    """Drive a zmtp socket's I/O for `ms` ms: until the progress thread
    exists (issue 5) a zmtp socket moves only inside a zmtp call."""
    deadline = time.monotonic() + ms / 1000
    while (left := deadline - time.monotonic()) > 0:
        sock.poll(max(1, int(left * 1000)), 0)


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_bind_and_connect(backend, ctx, zctx):
    rep = ctx.socket(zmtp.REP)
    rep.bind("tcp://[::1]:*")
    ep = rep.last_endpoint.decode()
    assert ep.startswith("tcp://[::1]:")
    req = zctx.socket(zmq.REQ)
    req.ipv6 = True
    req.connect(ep)
    req.send(b"v6?")
    assert rep.recv() == b"v6?"
    rep.send(b"v6!")
    assert req.recv() == b"v6!"
    # and zmtp dialling a pyzmq IPv6 listener
    prep = zctx.socket(zmq.REP)
    prep.ipv6 = True
    port = prep.bind_to_random_port("tcp://[::1]")
    zreq = ctx.socket(zmtp.REQ)
    zreq.connect(f"tcp://[::1]:{port}")
    zreq.send(b"ping")
    settle(zreq)
    assert prep.recv() == b"ping"
    prep.send(b"pong")
    assert zreq.recv() == b"pong"


def test_connect_by_host_name(backend, ctx, zctx):
    prep = zctx.socket(zmq.REP)
    port = prep.bind_to_random_port("tcp://127.0.0.1")
    req = ctx.socket(zmtp.REQ)
    req.connect(f"tcp://localhost:{port}")
    req.send(b"by name")
    settle(req)
    assert prep.recv() == b"by name"
    prep.send(b"ok")
    assert req.recv() == b"ok"


def test_unresolvable_host_is_an_error(ctx):
    s = ctx.socket(zmtp.REQ)
    with pytest.raises(zmtp.ZMQError):
        s.connect("tcp://no-such-host.invalid:5555")


def test_several_binds_and_connects(backend, ctx, zctx, tmp_path):
    pull = ctx.socket(zmtp.PULL)
    pull.bind("tcp://127.0.0.1:*")
    tcp_ep = pull.last_endpoint.decode()
    pull.bind(f"ipc://{tmp_path}/pull")
    assert pull.last_endpoint.decode() == f"ipc://{tmp_path}/pull"
    pushes = []
    for ep in (tcp_ep, f"ipc://{tmp_path}/pull"):
        p = zctx.socket(zmq.PUSH)
        p.connect(ep)
        pushes.append(p)
    for i, p in enumerate(pushes):
        p.send(b"from %d" % i)
    got = sorted(pull.recv() for _ in pushes)
    assert got == [b"from 0", b"from 1"]
    # one zmtp socket connecting to two pyzmq listeners: round-robin
    push = ctx.socket(zmtp.PUSH)
    pulls = []
    for _ in range(2):
        q = zctx.socket(zmq.PULL)
        push.connect(f"tcp://127.0.0.1:{q.bind_to_random_port('tcp://127.0.0.1')}")
        pulls.append(q)
    for q in pulls:  # wait for both handshakes
        q.rcvtimeo = 5000
    settle(push)
    for i in range(2):
        push.send(b"%d" % i)
    settle(push, 50)
    assert {pulls[0].recv(), pulls[1].recv()} == {b"0", b"1"}  # one each: round-robin


def test_unbind_and_disconnect(backend, ctx, zctx, tmp_path):
    s = ctx.socket(zmtp.PULL)
    path = tmp_path / "u"
    s.bind(f"ipc://{path}")
    assert path.exists()
    s.unbind(f"ipc://{path}")
    assert not path.exists()
    with pytest.raises(zmtp.ZMQError):
        s.unbind(f"ipc://{path}")
    s.connect("tcp://127.0.0.1:9")
    s.disconnect("tcp://127.0.0.1:9")
    with pytest.raises(zmtp.ZMQError):
        s.disconnect("tcp://127.0.0.1:9")
