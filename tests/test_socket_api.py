"""The pyzmq-compatible socket API: errors, options, timeouts, endpoints,
Poller, Context, threads and signals.  Tests that do I/O run on both
backends (the ``backend`` fixture)."""

from __future__ import annotations

import collections
import errno
import os
import signal
import socket
import subprocess
import tempfile
import sys
import textwrap
import threading
import time

import pytest
import zmq

import zmtp
from zmtp import _zmtp
from helpers import LATE_S, TIMEOUT_MS, raises_errno, wait_blocked, wait_for, zsock



def pbound(zctx, kind):
    s = zctx.socket(kind)
    s.rcvtimeo = TIMEOUT_MS
    s.sndtimeo = TIMEOUT_MS
    port = s.bind_to_random_port("tcp://127.0.0.1")
    return s, f"tcp://127.0.0.1:{port}"


def zpull_and_pusher(ctx, zctx):
    """A bound zmtp PULL and a pyzmq PUSH connected to it.  (Not the other
    way round: a bound pyzmq PUSH blocks in send() until the zmtp PULL has
    finished its handshake, which needs a zmtp call.)"""
    pull = zsock(ctx, zmtp.PULL)
    pull.bind("tcp://127.0.0.1:*")
    push = zctx.socket(zmq.PUSH)
    push.sndtimeo = TIMEOUT_MS
    push.connect(pull.last_endpoint.decode())
    return pull, push


def anon_inodes():
    """Counter of this process's anonymous-inode descriptors by kind."""
    out = collections.Counter()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("anon_inode:"):
            out[link] += 1
    return out


# ============================================================ backends


def test_backend_thread_uses_chosen_backend(backend, ctx):
    """The backend fixture really runs the body on the chosen backend: the
    first wait of this thread opens an io_uring ring or an epoll instance."""
    s = zsock(ctx, zmtp.PULL, rcvtimeo=10)  # starts ctx's progress thread (epoll)
    s.bind("tcp://127.0.0.1:*")
    before = anon_inodes()
    raises_errno(errno.EAGAIN, s.recv, exc=zmtp.Again)
    new = anon_inodes() - before
    kinds = {"io_uring": "anon_inode:[io_uring]", "epoll": "anon_inode:[eventpoll]"}
    assert new[kinds[backend]] == 1, (backend, new)
    assert sum(new[v] for v in kinds.values()) == 1, (backend, new)


def test_backend_info():
    info = zmtp.backend_info()
    assert info["name"] in ("io_uring", "epoll")
    assert zmtp.backend_name() == info["name"]
    assert info["reason"]


# ================================================================ EFSM


def test_efsm_req_recv_before_send(backend, ctx):
    req = zsock(ctx, zmtp.REQ)
    e = raises_errno(zmtp.EFSM, req.recv)
    assert "state" in str(e)
    raises_errno(zmtp.EFSM, req.recv, zmtp.DONTWAIT)


def test_efsm_rep_send_before_recv(backend, ctx):
    rep = zsock(ctx, zmtp.REP)
    raises_errno(zmtp.EFSM, rep.send, b"x")
    raises_errno(zmtp.EFSM, rep.send_multipart, [b"x", b"y"])


def test_efsm_req_send_twice(backend, ctx, zctx):
    rep, ep = pbound(zctx, zmq.REP)
    req = zsock(ctx, zmtp.REQ)
    req.connect(ep)
    req.send(b"one")
    raises_errno(zmtp.EFSM, req.send, b"two")
    req.poll(50, 0)
    assert rep.recv() == b"one"
    rep.send(b"reply")
    assert req.recv() == b"reply"
    req.send(b"three")  # allowed again after the reply


def test_efsm_rep_recv_twice(backend, ctx, zctx):
    rep = zsock(ctx, zmtp.REP)
    rep.bind("tcp://127.0.0.1:*")
    req = zctx.socket(zmq.REQ)
    req.rcvtimeo = TIMEOUT_MS
    req.connect(rep.last_endpoint.decode())
    req.send(b"q")
    assert rep.recv() == b"q"
    raises_errno(zmtp.EFSM, rep.recv)
    rep.send(b"a")
    assert req.recv() == b"a"


# =============================================================== Again


def test_again_dontwait(backend, ctx):
    pull = zsock(ctx, zmtp.PULL)
    pull.bind("tcp://127.0.0.1:*")
    t0 = time.monotonic()
    e = raises_errno(zmtp.EAGAIN, pull.recv, zmtp.DONTWAIT, exc=zmtp.Again)
    assert isinstance(e, zmtp.ZMQError)
    raises_errno(zmtp.EAGAIN, pull.recv, flags=zmtp.NOBLOCK, exc=zmtp.Again)
    raises_errno(zmtp.EAGAIN, pull.recv_multipart, zmtp.DONTWAIT, exc=zmtp.Again)
    assert time.monotonic() - t0 < LATE_S  # not RCVTIMEO (TIMEOUT_MS)


@pytest.mark.parametrize("timeout_ms", [0, 150])
def test_again_rcvtimeo(backend, ctx, timeout_ms):
    pull = zsock(ctx, zmtp.PULL, rcvtimeo=timeout_ms)
    pull.bind("tcp://127.0.0.1:*")
    t0 = time.monotonic()
    raises_errno(zmtp.EAGAIN, pull.recv, exc=zmtp.Again)
    elapsed = time.monotonic() - t0
    assert timeout_ms / 1000 * 0.9 <= elapsed < timeout_ms / 1000 + LATE_S, elapsed


def test_again_sndtimeo_push_without_peer(backend, ctx):
    push = zsock(ctx, zmtp.PUSH, sndtimeo=150)
    push.bind("tcp://127.0.0.1:*")
    t0 = time.monotonic()
    raises_errno(zmtp.EAGAIN, push.send, b"x", exc=zmtp.Again)
    elapsed = time.monotonic() - t0
    assert 0.135 <= elapsed < 0.15 + LATE_S, elapsed
    raises_errno(zmtp.EAGAIN, push.send, b"x", zmtp.DONTWAIT, exc=zmtp.Again)


def test_send_on_pull_recv_on_push_enotsup(backend, ctx):
    pull = zsock(ctx, zmtp.PULL)
    push = zsock(ctx, zmtp.PUSH)
    raises_errno(errno.ENOTSUP, pull.send, b"x")
    raises_errno(errno.ENOTSUP, push.recv)


# ======================================================= after close


def test_use_after_close(backend, ctx):
    s = zsock(ctx, zmtp.DEALER)
    s.close()
    assert s.closed
    s.close()  # twice is fine
    for call in (
        lambda: s.send(b"x"),
        lambda: s.recv(),
        lambda: s.send_multipart([b"x"]),
        lambda: s.recv_multipart(),
        lambda: s.bind("tcp://127.0.0.1:*"),
        lambda: s.connect("tcp://127.0.0.1:5555"),
        lambda: s.setsockopt(zmtp.LINGER, 0),
        lambda: s.getsockopt(zmtp.LINGER),
        lambda: s.rcvtimeo,
        lambda: s.poll(0),
        lambda: _poll_one(s),
    ):
        raises_errno(errno.ENOTSOCK, call)
    assert "closed" in repr(s)


def _poll_one(s):
    p = zmtp.Poller()
    p.register(s, zmtp.POLLIN)
    return p.poll(0)


# ====================================================== bad options


def test_bad_option_values():
    s = zmtp.Socket(zmtp.DEALER)
    with pytest.raises(TypeError):
        s.rcvtimeo = "x"
    with pytest.raises(TypeError):
        s.setsockopt(zmtp.SNDHWM, 1.5)
    raises_errno(zmtp.EINVAL, setattr, s, "sndhwm", -5)
    raises_errno(zmtp.EINVAL, setattr, s, "rcvtimeo", -2)
    raises_errno(zmtp.EINVAL, setattr, s, "linger", -7)
    raises_errno(zmtp.EINVAL, setattr, s, "router_mandatory", 2)
    raises_errno(zmtp.EINVAL, setattr, s, "maxmsgsize", -2)
    raises_errno(zmtp.EINVAL, s.setsockopt, 9999, 1)
    raises_errno(zmtp.EINVAL, s.getsockopt, 9999)
    raises_errno(zmtp.EINVAL, s.setsockopt, zmtp.TYPE, zmtp.REQ)  # read-only
    raises_errno(zmtp.EINVAL, s.setsockopt, zmtp.LAST_ENDPOINT, b"x")
    raises_errno(zmtp.EINVAL, setattr, s, "routing_id", b"")
    raises_errno(zmtp.EINVAL, setattr, s, "routing_id", b"\x00reserved")
    raises_errno(zmtp.EINVAL, setattr, s, "routing_id", b"x" * 256)
    with pytest.raises(TypeError):
        s.setsockopt(zmtp.ROUTING_ID, "str")
    # the socket still works and kept its values
    assert s.sndhwm == 1000 and s.rcvtimeo == -1 and s.routing_id == b""
    s.close()


def test_bad_socket_types():
    raises_errno(zmtp.EINVAL, zmtp.Socket, 99)
    raises_errno(zmtp.EINVAL, zmtp.Socket, 12)  # past STREAM
    for kind in zmtp.SocketType:  # every libzmq type of this API exists; the drafts are refused
        if kind <= zmtp.STREAM:
            zmtp.Socket(kind).close()
        else:
            raises_errno(zmtp.EINVAL, zmtp.Socket, kind)
    with pytest.raises(TypeError):
        zmtp.Socket()


# ================================================== send/recv values


def test_send_str_raises_typeerror(backend, ctx, zctx):
    pull, ep = pbound(zctx, zmq.PULL)
    push = zsock(ctx, zmtp.PUSH)
    push.connect(ep)
    with pytest.raises(TypeError):
        push.send("text")
    with pytest.raises(TypeError):
        push.send(None)
    with pytest.raises(TypeError):
        push.send(12)
    with pytest.raises(TypeError):
        push.send_multipart(b"bytes, not a list")
    with pytest.raises(TypeError):
        push.send_multipart("str")
    with pytest.raises(TypeError):
        push.send_string(b"bytes")
    # bytes-likes are fine
    push.send(bytearray(b"ba"))
    push.send(memoryview(b"xmvx")[1:3])
    push.send_multipart([b"a", bytearray(b"b"), memoryview(b"c")])
    push.poll(50, 0)
    assert pull.recv() == b"ba"
    assert pull.recv() == b"mv"
    assert pull.recv_multipart() == [b"a", b"b", b"c"]
    assert pull.poll(20) == 0  # nothing from the refused sends


def test_track_untracked_frame_refused(ctx):
    """As pyzmq: track=True with an untracked Frame is a ValueError (tests/test_tracker.py has the rest)."""
    s = ctx.socket(zmtp.PUSH)
    with pytest.raises(ValueError, match="Not a tracked message"):
        s.send(zmtp.Frame(b"x"), track=True)


def test_recv_copy_false_frame(backend, ctx, zctx):
    pull, push = zpull_and_pusher(ctx, zctx)
    push.send_multipart([b"first", b"x" * 100000])
    f1 = pull.recv(copy=False)
    assert isinstance(f1, zmtp.Frame)
    assert f1.more is True
    assert pull.rcvmore
    f2 = pull.recv(copy=False)
    assert f2.more is False and not pull.rcvmore
    assert f1.bytes == b"first" and bytes(f1) == b"first"
    assert len(f1) == 5
    mv = memoryview(f1)
    assert mv.tobytes() == b"first" and mv.readonly
    assert memoryview(f2).nbytes == 100000 and f2.bytes == b"x" * 100000
    assert bytes(f1.buffer) == b"first"
    # Frames can be sent on as they are
    push.send_multipart([b"a", b"b"])
    frames = pull.recv_multipart(copy=False)
    assert [type(f) for f in frames] == [zmtp.Frame, zmtp.Frame]
    assert [f.bytes for f in frames] == [b"a", b"b"]
    assert [f.more for f in frames] == [True, False]


def test_rcvmore(backend, ctx, zctx):
    pull, push = zpull_and_pusher(ctx, zctx)
    push.send_multipart([b"a", b"", b"c"])
    push.send(b"single")
    assert pull.recv() == b"a"
    assert pull.getsockopt(zmtp.RCVMORE) == 1 and pull.rcvmore is True
    assert pull.recv() == b""
    assert pull.rcvmore
    assert pull.recv() == b"c"
    assert pull.getsockopt(zmtp.RCVMORE) == 0 and pull.rcvmore is False
    assert pull.recv() == b"single"
    assert not pull.rcvmore


def test_recv_multipart_after_partial_recv(backend, ctx, zctx):
    """recv_multipart() after recv() of a first frame returns the rest."""
    pull, push = zpull_and_pusher(ctx, zctx)
    push.send_multipart([b"1", b"2", b"3"])
    push.send_multipart([b"4"])
    assert pull.recv() == b"1"
    assert pull.recv_multipart() == [b"2", b"3"]
    assert pull.recv_multipart() == [b"4"]


# ========================================================= properties


def test_properties_defaults_and_roundtrip():
    s = zmtp.Socket(zmtp.ROUTER)
    assert s.type == zmtp.ROUTER == s.socket_type
    assert s.getsockopt(zmtp.TYPE) == zmtp.ROUTER
    assert s.linger == zmtp.DEFAULT_LINGER == 1000
    assert s.rcvtimeo == -1 and s.sndtimeo == -1
    assert s.sndhwm == 1000 and s.rcvhwm == 1000
    assert s.maxmsgsize == -1
    assert s.router_mandatory == 0
    assert s.routing_id == b""
    assert s.last_endpoint == b""
    assert s.rcvmore is False

    s.linger = 0
    s.rcvtimeo = 1234
    s.sndtimeo = 2345
    s.sndhwm = 10
    s.rcvhwm = 20
    s.maxmsgsize = 1 << 40
    s.router_mandatory = 1
    s.routing_id = b"me"
    s.reconnect_ivl = 50
    s.immediate = 1
    assert (s.linger, s.rcvtimeo, s.sndtimeo, s.sndhwm, s.rcvhwm) == (0, 1234, 2345, 10, 20)
    assert s.maxmsgsize == 1 << 40 and s.router_mandatory == 1
    assert s.routing_id == b"me" == s.identity == s.getsockopt(zmtp.IDENTITY)
    assert s.reconnect_ivl == 50 and s.immediate == 1
    s.routing_id = "ünï"
    assert s.routing_id == "ünï".encode()
    assert s.get_string(zmtp.ROUTING_ID) == "ünï"
    s.set_string(zmtp.ROUTING_ID, "abc")
    assert s.get(zmtp.ROUTING_ID) == b"abc"
    s.hwm = 7
    assert s.hwm == 7 and s.sndhwm == 7 and s.rcvhwm == 7
    s.set(zmtp.LINGER, 5)
    assert s.get(zmtp.LINGER) == 5

    s.bind("tcp://127.0.0.1:*")
    ep = s.last_endpoint
    assert ep.startswith(b"tcp://127.0.0.1:") and int(ep.rsplit(b":", 1)[1]) > 0
    assert s.getsockopt(zmtp.LAST_ENDPOINT) == ep
    s.close()


def test_context_default_options():
    with zmtp.Context() as c:
        c.setsockopt(zmtp.LINGER, 0)
        c.linger = 0
        c.setsockopt(zmtp.RCVTIMEO, 77)
        s = c.socket(zmtp.PULL)
        assert s.linger == 0 and s.rcvtimeo == 77
        assert c.getsockopt(zmtp.RCVTIMEO) == 77
        s2 = c.socket(zmtp.PUSH, socket_class=zmtp.Socket)
        assert s2.rcvtimeo == 77


def test_events(backend, ctx, zctx):
    pull, ep = pbound(zctx, zmq.PULL)
    push = zsock(ctx, zmtp.PUSH)
    assert push.events & zmtp.POLLOUT == 0  # no peer yet
    push.connect(ep)
    assert push.events & zmtp.POLLOUT  # a connecter queues at once
    zpull = zsock(ctx, zmtp.PULL)
    zpull.bind("tcp://127.0.0.1:*")
    assert zpull.events == 0
    zpush = zctx.socket(zmq.PUSH)
    zpush.connect(zpull.last_endpoint.decode())
    zpush.send(b"x")
    assert zpull.poll(TIMEOUT_MS) == zmtp.POLLIN
    assert zpull.getsockopt(zmtp.EVENTS) & zmtp.POLLIN
    assert zpull.recv() == b"x"
    assert zpull.events == 0


# ============================================================ endpoints


def test_bind_to_random_port(backend, ctx, zctx):
    s = zsock(ctx, zmtp.PULL)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    assert isinstance(port, int) and 0 < port < 65536
    assert s.last_endpoint == f"tcp://127.0.0.1:{port}".encode()
    peer = zctx.socket(zmq.PUSH)
    peer.connect(f"tcp://127.0.0.1:{port}")
    peer.send(b"hello")
    assert s.recv() == b"hello"

    s2 = zsock(ctx, zmtp.PULL)
    port2 = s2.bind_to_random_port("tcp://127.0.0.1", min_port=20000, max_port=60000, max_tries=200)
    assert 20000 <= port2 < 60000
    assert s2.last_endpoint == f"tcp://127.0.0.1:{port2}".encode()

    s3 = zsock(ctx, zmtp.PULL)
    with pytest.raises(zmtp.ZMQBindError):
        s3.bind_to_random_port("tcp://127.0.0.1", min_port=port, max_port=port + 1, max_tries=3)


def test_bind_address_in_use(ctx, zctx):
    a = ctx.socket(zmtp.PULL)
    a.bind("tcp://127.0.0.1:*")
    b = ctx.socket(zmtp.PULL)
    raises_errno(errno.EADDRINUSE, b.bind, a.last_endpoint.decode())
    p, ep = pbound(zctx, zmq.PULL)
    raises_errno(errno.EADDRINUSE, b.bind, ep)
    b.bind("tcp://127.0.0.1:*")  # the failed binds left nothing behind


@pytest.mark.parametrize("ep", ["nonsense", "tcp://127.0.0.1", "tcp://127.0.0.1:abc",
                                "tcp://127.0.0.1:99999", "tcp://:5555", "ipc://"])
def test_invalid_endpoint_einval(ctx, ep):
    s = ctx.socket(zmtp.PUSH)
    raises_errno(errno.EINVAL, s.bind, ep)
    raises_errno(errno.EINVAL, s.connect, ep)


def test_connect_needs_a_real_port_and_host(ctx):
    """libzmq: connect() takes neither port * nor host * (EINVAL)."""
    s = ctx.socket(zmtp.PUSH)
    raises_errno(errno.EINVAL, s.connect, "tcp://127.0.0.1:*")
    raises_errno(errno.EINVAL, s.connect, "tcp://*:5555")


@pytest.mark.parametrize("ep", ["foo://x", "udp://127.0.0.1:5555", "pgm://eth0;239.0.0.1:5555"])
def test_unknown_transport_eprotonosupport(ctx, ep):
    s = ctx.socket(zmtp.PUSH)
    raises_errno(errno.EPROTONOSUPPORT, s.bind, ep)
    raises_errno(errno.EPROTONOSUPPORT, s.connect, ep)
    with pytest.raises(zmtp.ZMQError) as info:
        s.connect(ep)
    assert str(info.value).count(ep) == 1, str(info.value)  # named once


def test_endpoint_types(ctx):
    s = ctx.socket(zmtp.PULL)
    with pytest.raises(TypeError):
        s.bind(5555)
    s.bind(b"tcp://127.0.0.1:*")  # bytes are accepted, like pyzmq


def test_unbind_disconnect_unknown(ctx):
    s = ctx.socket(zmtp.PULL)
    raises_errno(errno.ENOENT, s.unbind, "tcp://127.0.0.1:1")
    raises_errno(errno.ENOENT, s.disconnect, "tcp://127.0.0.1:1")


def test_unbind_frees_the_port(ctx):
    s = ctx.socket(zmtp.PULL)
    s.bind("tcp://127.0.0.1:*")
    ep = s.last_endpoint.decode()
    s.unbind(ep)
    s2 = ctx.socket(zmtp.PULL)
    s2.bind(ep)


def test_ipc_path_removed_after_close(backend, ctx, zctx, tmp_path):
    path = tmp_path / "s.ipc"
    s = zsock(ctx, zmtp.PULL)
    s.bind(f"ipc://{path}")
    assert s.last_endpoint == f"ipc://{path}".encode()
    assert path.exists()
    peer = zctx.socket(zmq.PUSH)
    peer.connect(f"ipc://{path}")
    peer.send(b"over ipc")
    assert s.recv() == b"over ipc"
    s.close()
    assert not path.exists()


def test_ipc_path_removed_after_unbind(ctx, tmp_path):
    path = tmp_path / "u.ipc"
    s = ctx.socket(zmtp.PULL)
    s.bind(f"ipc://{path}")
    s.unbind(f"ipc://{path}")
    assert not path.exists()


def test_ipc_stale_file_replaced(backend, ctx, zctx, tmp_path):
    path = tmp_path / "stale.ipc"
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.bind(str(path))
    u.close()  # the file stays, nobody listens
    assert path.exists()
    s = zsock(ctx, zmtp.PULL)
    s.bind(f"ipc://{path}")
    peer = zctx.socket(zmq.PUSH)
    peer.connect(f"ipc://{path}")
    peer.send(b"fresh")
    assert s.recv() == b"fresh"


def test_ipc_live_path_in_use(ctx, tmp_path):
    path = tmp_path / "live.ipc"
    a = ctx.socket(zmtp.PULL)
    a.bind(f"ipc://{path}")
    b = ctx.socket(zmtp.PULL)
    raises_errno(errno.EADDRINUSE, b.bind, f"ipc://{path}")
    assert path.exists()


def test_ipc_path_too_long(ctx):
    s = ctx.socket(zmtp.PULL)
    raises_errno(errno.ENAMETOOLONG, s.bind, "ipc:///tmp/" + "x" * 200)


# =============================================================== Poller


def test_poller_zmtp_socket_and_plain_fd(backend, ctx, zctx):
    pull = zsock(ctx, zmtp.PULL)
    pull.bind("tcp://127.0.0.1:*")
    push = zctx.socket(zmq.PUSH)
    push.connect(pull.last_endpoint.decode())
    r, w = socket.socketpair()
    try:
        poller = zmtp.Poller()
        poller.register(pull, zmtp.POLLIN)
        poller.register(r, zmtp.POLLIN)
        assert pull in poller and r in poller
        t0 = time.monotonic()
        assert poller.poll(100) == []
        assert 0.09 <= time.monotonic() - t0 < 0.1 + LATE_S

        w.send(b"!")
        assert poller.poll(TIMEOUT_MS) == [(r.fileno(), zmtp.POLLIN)]  # the fd, as pyzmq
        r.recv(1)

        push.send(b"msg")
        assert dict(poller.poll(TIMEOUT_MS)) == {pull: zmtp.POLLIN}
        w.send(b"!")
        deadline = time.monotonic() + 5
        ready = {}
        while len(ready) < 2 and time.monotonic() < deadline:
            ready.update(poller.poll(TIMEOUT_MS))
        assert ready == {pull: zmtp.POLLIN, r.fileno(): zmtp.POLLIN}
        assert pull.recv() == b"msg"
        r.recv(1)

        # raw fd numbers and POLLOUT
        poller.unregister(r)
        assert r not in poller
        poller.register(w.fileno(), zmtp.POLLOUT)
        assert dict(poller.poll(0)) == {w.fileno(): zmtp.POLLOUT}
        poller.modify(w.fileno(), 0)  # flags 0: unregistered
        assert poller.poll(0) == []
        with pytest.raises(KeyError):
            poller.unregister(r)
    finally:
        r.close()
        w.close()


def test_poller_wakes_on_fd_while_waiting(backend, ctx, spawn):
    """A poll() waiting on a zmtp socket and an fd returns when the fd
    becomes readable from another thread."""
    pull = zsock(ctx, zmtp.PULL)
    pull.bind("tcp://127.0.0.1:*")
    r, w = socket.socketpair()
    try:
        poller = zmtp.Poller()
        poller.register(pull, zmtp.POLLIN)
        poller.register(r, zmtp.POLLIN)
        spawn(lambda: (time.sleep(0.1), w.send(b"x")))
        t0 = time.monotonic()
        assert poller.poll(TIMEOUT_MS) == [(r.fileno(), zmtp.POLLIN)]
        assert time.monotonic() - t0 < 0.1 + LATE_S
    finally:
        r.close()
        w.close()


def test_poller_empty_sleeps():
    t0 = time.monotonic()
    assert zmtp.Poller().poll(50) == []
    assert time.monotonic() - t0 >= 0.045


# ============================================== context, context manager


def test_context_manager_closes_sockets():
    with zmtp.Context() as c:
        s = c.socket(zmtp.PULL)
        s.bind("tcp://127.0.0.1:*")
        assert not c.closed
    assert c.closed and s.closed
    raises_errno(zmtp.ETERM, c.socket, zmtp.PULL, exc=zmtp.ContextTerminated)
    c.term()  # again: nothing


def test_socket_context_manager(ctx):
    with ctx.socket(zmtp.PUSH) as s:
        assert not s.closed
    assert s.closed


def test_context_instance():
    a = zmtp.Context.instance()
    assert zmtp.Context.instance() is a
    a.term()
    b = zmtp.Context.instance()
    assert b is not a and not b.closed
    b.term()


def test_destroy_closes_with_linger(ctx):
    s = ctx.socket(zmtp.PUSH)
    s.connect("tcp://127.0.0.1:1")  # nobody: output stays queued
    s.send(b"x")
    t0 = time.monotonic()
    ctx.destroy(linger=0)
    assert s.closed and time.monotonic() - t0 < LATE_S  # linger 0: no wait


def test_term_wakes_blocked_recv(backend, ctx, spawn):
    s = zsock(ctx, zmtp.PULL, rcvtimeo=-1)
    s.bind("tcp://127.0.0.1:*")
    me = threading.get_native_id()
    task = spawn(lambda: (wait_blocked(me), ctx.term()))  # term() while recv() waits
    t0 = time.monotonic()
    raises_errno(zmtp.ETERM, s.recv, exc=zmtp.ContextTerminated)
    assert time.monotonic() - t0 < LATE_S + 1
    task.result()
    assert ctx.closed
    # As libzmq's: the socket stays in ETERM until the user closes it.
    assert not s.closed
    raises_errno(zmtp.ETERM, s.recv, exc=zmtp.ContextTerminated)
    s.close()
    assert s.closed


def test_term_wakes_blocked_poll_and_send(backend, ctx, spawn):
    pull = zsock(ctx, zmtp.PULL)
    pull.bind("tcp://127.0.0.1:*")
    push = zsock(ctx, zmtp.PUSH, sndtimeo=-1)
    push.bind("tcp://127.0.0.1:*")
    results = {}

    def blocked_send():
        try:
            push.send(b"nobody will take this")
        except zmtp.ContextTerminated as exc:
            results["send"] = exc.errno

    sender = spawn(blocked_send)
    wait_blocked(sender)
    me = threading.get_native_id()
    spawn(lambda: (wait_blocked(me), ctx.term()))  # term() while poll() waits
    poller = zmtp.Poller()
    poller.register(pull, zmtp.POLLIN)
    raises_errno(zmtp.ETERM, poller.poll, -1, exc=zmtp.ContextTerminated)
    sender.result()
    assert results == {"send": zmtp.ETERM}


def test_socket_used_from_two_threads(backend, ctx, spawn):
    """A second thread using a socket that is blocked in recv gets
    ZMQError(EBUSY); the first is not disturbed."""
    s = zsock(ctx, zmtp.DEALER, rcvtimeo=1500)
    s.bind("tcp://127.0.0.1:*")
    errors = {}
    me = threading.get_native_id()

    def intruder():
        wait_blocked(me)  # the recv below has the socket
        for name, call in (("send", lambda: s.send(b"x")),
                           ("recv", lambda: s.recv(zmtp.DONTWAIT)),
                           ("setsockopt", lambda: s.setsockopt(zmtp.LINGER, 0)),
                           ("poll", lambda: s.poll(0)),
                           ("close", lambda: s.close())):
            try:
                call()
                errors[name] = None
            except zmtp.ZMQError as exc:
                errors[name] = exc.errno

    task = spawn(intruder)
    t0 = time.monotonic()
    raises_errno(zmtp.EAGAIN, s.recv, exc=zmtp.Again)
    assert 1.35 <= time.monotonic() - t0 < 1.5 + LATE_S
    task.result()
    assert errors == {k: errno.EBUSY for k in ("send", "recv", "setsockopt", "poll", "close")}
    assert not s.closed
    s.linger = 0  # usable again from this thread


# =============================================================== signals

_SIGNAL_SCRIPT = textwrap.dedent(r"""
    import signal, sys, time, zmtp
    assert zmtp.backend_name() == sys.argv[1], zmtp.backend_info()

    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise EXC

    signal.signal(signal.SIGALRM, handler)
    ctx = zmtp.Context()
    pull = ctx.socket(zmtp.PULL)
    pull.bind("tcp://127.0.0.1:*")
    push = ctx.socket(zmtp.PUSH)
    push.bind("tcp://127.0.0.1:*")
    poller = zmtp.Poller()
    poller.register(pull, zmtp.POLLIN)
    calls = {"recv": pull.recv, "recv_multipart": pull.recv_multipart,
             "send": lambda: push.send(b"x"), "poll": lambda: poller.poll(),
             "socket.poll": lambda: pull.poll()}
    for EXC in (KeyboardInterrupt(), Interrupted("custom")):
        for name, call in calls.items():
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            t0 = time.monotonic()
            try:
                call()
            except type(EXC) as exc:
                elapsed = time.monotonic() - t0
                assert 0.05 < elapsed < 3.1, (name, elapsed)  # 0.1 s + helpers.LATE_S
            else:
                raise SystemExit(f"{name}: returned instead of raising")
            # the socket is not left marked in use
            try:
                pull.recv(zmtp.DONTWAIT)
            except zmtp.Again:
                pass
    # a signal whose handler does not raise: the call goes on waiting
    signal.signal(signal.SIGALRM, lambda *a: None)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    pull.rcvtimeo = 300
    t0 = time.monotonic()
    try:
        pull.recv()
    except zmtp.Again:
        assert time.monotonic() - t0 >= 0.28, time.monotonic() - t0
    else:
        raise SystemExit("recv returned")
    ctx.destroy(linger=0)
    print("ok")
""")


@pytest.mark.parametrize("name", ["io_uring", "epoll"])
def test_signal_interrupts_blocking_calls(name):
    """Ctrl-C: a signal handler that raises interrupts recv/send/poll blocked
    in the main thread, promptly, with the handler's exception.  (Python
    runs handlers in the main thread only, so this runs in a subprocess
    whose main thread uses the backend.)"""
    env = dict(os.environ, ZMTP_BACKEND=name)
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_SCRIPT, name], env=env, cwd=tempfile.gettempdir(),
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 and "backend unavailable" in proc.stderr:
        pytest.skip(f"{name} unavailable here")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler for the test: a process started in the
    background by a non-interactive shell inherits SIGINT ignored, and
    Python then installs no handler (Ctrl-C would do nothing)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def ctrl_c_during_recv(ctx) -> float:
    """SIGINT this process 100 ms into a blocking recv(); KeyboardInterrupt
    must come out of it.  Returns how long the recv() took."""
    s = ctx.socket(zmtp.PULL)
    s.bind("tcp://127.0.0.1:*")
    s.rcvtimeo = 3000
    timer = threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            s.recv()
    finally:
        timer.cancel()
    return time.monotonic() - t0


def test_sigint_in_main_thread(ctx, default_sigint):
    """The real Ctrl-C (SIGINT with Python's default handler) in this process."""
    assert ctrl_c_during_recv(ctx) < 2


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="busy-poll needs 2 usable CPUs")
def test_sigint_during_busy_poll(ctx, default_sigint):
    """A Ctrl-C that lands while a blocking call busy-polls (no syscall to
    interrupt) still raises at once: the handlers run before the real wait.
    The spin is stretched to 300 ms so the signal (at 100 ms) lands in it;
    before the fix the call then waited out its whole RCVTIMEO."""
    old = _zmtp._spin_us(300_000)
    try:
        assert ctrl_c_during_recv(ctx) < 1.5
    finally:
        _zmtp._spin_us(old)


# ======================================================== serialisation


def test_string_json_pyobj(backend, ctx, zctx):
    pair = zsock(ctx, zmtp.PAIR)
    pair.bind("tcp://127.0.0.1:*")
    peer = zctx.socket(zmq.PAIR)
    peer.rcvtimeo = TIMEOUT_MS
    peer.connect(pair.last_endpoint.decode())

    pair.send_string("héllo wörld")  # waits for the peer
    assert peer.recv_string() == "héllo wörld"
    peer.send_string("ünïcode")
    assert pair.recv_string() == "ünïcode"
    pair.send_string("latin", encoding="latin-1")
    assert peer.recv() == "latin".encode("latin-1")
    peer.send("é".encode("utf-16"))
    assert pair.recv_string(encoding="utf-16") == "é"
    pair.send_unicode("alias")
    assert peer.recv_unicode() == "alias"

    obj = {"a": [1, 2.5, None, True], "b": {"c": "d"}}
    pair.send_json(obj)
    assert peer.recv_json() == obj
    peer.send_json(obj)
    assert pair.recv_json() == obj

    pyobj = {"set": {1, 2}, "tuple": (1, "x"), "bytes": b"\x00\xff"}
    pair.send_pyobj(pyobj)
    assert peer.recv_pyobj() == pyobj
    peer.send_pyobj(pyobj)
    assert pair.recv_pyobj() == pyobj

    pair.send_serialized({"k": 1}, lambda m: [b"hdr", repr(m).encode()])
    assert peer.recv_multipart() == [b"hdr", b"{'k': 1}"]
    peer.send_multipart([b"1", b"2"])
    assert pair.recv_serialized(lambda frames: [int(f) for f in frames]) == [1, 2]


def test_strerror():
    assert zmtp.strerror(zmtp.EFSM) == "Operation cannot be accomplished in current state"
    assert zmtp.strerror(zmtp.ETERM) == "Context was terminated"
    assert zmtp.strerror(errno.EAGAIN) == os.strerror(errno.EAGAIN)
    e = zmtp.ZMQError(zmtp.EFSM)
    assert e.errno == zmtp.EFSM and str(e) == zmtp.strerror(zmtp.EFSM)
    assert issubclass(zmtp.Again, zmtp.ZMQError) and issubclass(zmtp.ContextTerminated, zmtp.ZMQError)


# ===================================================== linger, IMMEDIATE


@pytest.mark.parametrize("linger", [-1, 5000])
def test_close_flushes_within_linger(backend, ctx, zctx, linger):
    """close() sends what is still queued (here 4 MiB and 2000 small
    messages) before it returns, within LINGER."""
    pull, ep = pbound(zctx, zmq.PULL)
    pull.rcvhwm = 0
    push = zsock(ctx, zmtp.PUSH, sndhwm=0)
    push.connect(ep)
    big = os.urandom(4 << 20)
    push.send(big)
    for i in range(2000):
        push.send(b"%d" % i)
    push.close(linger=linger)
    assert pull.recv() == big
    for i in range(2000):
        assert pull.recv() == b"%d" % i


def test_close_linger_bounds_the_wait(backend, ctx):
    push = zsock(ctx, zmtp.PUSH)
    push.connect("tcp://127.0.0.1:1")  # nobody: the message stays queued
    push.send(b"x")
    t0 = time.monotonic()
    push.close(linger=200)
    assert 0.18 <= time.monotonic() - t0 < 0.2 + LATE_S
    push2 = zsock(ctx, zmtp.PUSH, linger=0)
    push2.connect("tcp://127.0.0.1:1")
    push2.send(b"x")
    t0 = time.monotonic()
    push2.close()
    assert time.monotonic() - t0 < LATE_S  # linger 0: no wait (LINGER 200 above took 0.2 s)


def test_immediate(backend, ctx):
    """IMMEDIATE: no queueing to connections that are not complete."""
    lazy = zsock(ctx, zmtp.PUSH)
    lazy.connect("tcp://127.0.0.1:1")
    lazy.send(b"queued", zmtp.DONTWAIT)  # default: queued to the connecter
    eager = zsock(ctx, zmtp.PUSH, immediate=1)
    eager.connect("tcp://127.0.0.1:1")
    raises_errno(zmtp.EAGAIN, eager.send, b"x", zmtp.DONTWAIT, exc=zmtp.Again)


# ========================================================= Frame lifetime


def test_frame_outlives_socket_and_context(backend, zctx):
    """A zero-copy Frame keeps its page alive after the socket, and its
    context, are gone."""
    c = zmtp.Context()
    pull = c.socket(zmtp.PULL)
    pull.rcvtimeo = TIMEOUT_MS
    pull.bind("tcp://127.0.0.1:*")
    push = zctx.socket(zmq.PUSH)
    push.connect(pull.last_endpoint.decode())
    push.send_multipart([b"small", b"y" * 200000])
    frames = pull.recv_multipart(copy=False)
    c.destroy(linger=0)
    del pull
    import gc

    gc.collect()
    assert frames[0].bytes == b"small"
    assert memoryview(frames[1]).tobytes() == b"y" * 200000
    base = zmtp.memory_stats()["page_bytes_live"]
    del frames
    gc.collect()
    assert zmtp.memory_stats()["page_bytes_live"] < base


# ================================================================ fork

_FORK_SCRIPT = textwrap.dedent(r"""
    import os, sys, zmtp
    path = sys.argv[1]
    ctx = zmtp.Context()
    s = ctx.socket(zmtp.PULL)
    s.bind("tcp://127.0.0.1:*")
    s.bind("ipc://" + path)
    # (no zmtp call has waited yet in this process)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            s.recv(zmtp.DONTWAIT)
            code = 3
        except zmtp.ZMQError as exc:
            if exc.errno != zmtp.ENOTSUP:
                code = 4
        # a new context works in the child
        c2 = zmtp.Context()
        a = c2.socket(zmtp.PULL)
        a.rcvtimeo = 2000
        a.bind("tcp://127.0.0.1:*")
        try:
            a.recv()
            code = 5
        except zmtp.Again:
            pass
        c2.destroy(linger=0)
        s.close()  # must not touch the parent's listeners (ipc path)
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, f"child exit code {os.WEXITSTATUS(status)}"
    assert os.path.exists(path), "the child removed the parent's ipc path"
    s.rcvtimeo = 50
    try:
        s.recv()
    except zmtp.Again:
        pass
    ctx.destroy(linger=0)
    print("ok")
""")


@pytest.mark.parametrize("name", ["io_uring", "epoll"])
def test_fork(name, tmp_path):
    """A socket made before fork() refuses to work in the child (ENOTSUP);
    closing it there leaves the parent's ipc path alone; a new Context in
    the child works; the parent's socket is unharmed."""
    env = dict(os.environ, ZMTP_BACKEND=name)
    proc = subprocess.run([sys.executable, "-c", _FORK_SCRIPT, str(tmp_path / "f.ipc")], env=env, cwd=tempfile.gettempdir(),
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 and "backend unavailable" in proc.stderr:
        pytest.skip(f"{name} unavailable here")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
