"""Socket.shadow / Socket.underlying and Context.shadow / Context.underlying
(pyzmq's names): a second Python object driving the same socket, as
``zmq.asyncio.Socket.from_socket`` does with a blocking one.

Each case against a pyzmq peer, zmtp binding and pyzmq binding, over tcp,
ipc and inproc (inproc: a zmtp peer of the same context), both backends.
"""

from __future__ import annotations

import copy
import errno
import gc
import random
import threading

import pytest

import zmtp
from helpers import DEADLINE_S, TIMEOUT_MS, raises_errno, wait_blocked

zmq = pytest.importorskip("zmq")

TRANSPORTS = ["tcp", "ipc", "inproc"]


def _pair(transport, binder, tmp_path, ctx, zctx):
    """(zmtp PAIR, its peer): pyzmq over tcp/ipc, zmtp over inproc."""
    ours = ctx.socket(zmtp.PAIR)
    if transport == "inproc":
        peer = ctx.socket(zmtp.PAIR)
        ep = f"inproc://shadow-{random.getrandbits(32):x}"
    else:
        peer = zctx.socket(zmq.PAIR)
        ep = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/s.ipc"
    first, second = (ours, peer) if binder == "zmtp" else (peer, ours)
    first.bind(ep)
    if transport == "tcp":
        ep = first.last_endpoint
        ep = ep.decode() if isinstance(ep, bytes) else ep
    second.connect(ep)
    return ours, peer


@pytest.mark.parametrize("binder", ["zmtp", "pyzmq"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_send_on_one_recv_on_its_shadow(transport, binder, backend, tmp_path, ctx, zctx):
    ours, peer = _pair(transport, binder, tmp_path, ctx, zctx)
    shadow = zmtp.Socket.shadow(ours.underlying)
    assert isinstance(shadow, zmtp.Socket) and shadow is not ours
    assert shadow.underlying == ours.underlying
    assert shadow.context is ours.context and shadow.type == zmtp.PAIR
    peer.send(b"to the original")
    assert shadow.recv() == b"to the original"  # received through the shadow
    shadow.send_multipart([b"from", b"the shadow"])
    assert peer.recv_multipart() == [b"from", b"the shadow"]
    ours.send(b"and back")
    assert peer.recv() == b"and back"
    # a frame half received on one object is finished on the other
    peer.send_multipart([b"a", b"b"])
    assert ours.recv() == b"a" and shadow.rcvmore
    assert shadow.recv() == b"b" and not ours.rcvmore
    # poll and Poller see the shared socket through the shadow
    peer.send(b"polled")
    assert shadow.poll(TIMEOUT_MS) == zmtp.POLLIN
    poller = zmtp.Poller()
    poller.register(shadow, zmtp.POLLIN)
    assert dict(poller.poll(TIMEOUT_MS)).get(shadow) == zmtp.POLLIN
    assert ours.recv() == b"polled"


@pytest.mark.parametrize("how", ["handle", "object", "positional", "copy", "shadow of shadow"])
def test_ways_to_shadow(how, backend, ctx, zctx):
    ours, peer = _pair("tcp", "zmtp", None, ctx, zctx)
    if how == "handle":
        shadow = zmtp.Socket(shadow=ours.underlying)
    elif how == "object":
        shadow = zmtp.Socket.shadow(ours)
    elif how == "positional":
        shadow = zmtp.Socket(ours)
    elif how == "copy":
        shadow = copy.copy(ours)
    else:
        shadow = zmtp.Socket.shadow(zmtp.Socket.shadow(ours))
    assert shadow._shadow and not ours._shadow
    assert shadow._shadow_obj is ours
    peer.send(b"x")
    assert shadow.recv() == b"x"


def test_options_seen_through_both(backend, ctx):
    ours = ctx.socket(zmtp.DEALER)
    shadow = zmtp.Socket.shadow(ours.underlying)
    shadow.linger = 123
    shadow.routing_id = b"me"
    assert ours.linger == 123 and ours.routing_id == b"me"
    ours.sndhwm = 77
    assert shadow.sndhwm == 77 and shadow.getsockopt(zmtp.SNDHWM) == 77
    assert shadow.getsockopt(zmtp.TYPE) == zmtp.DEALER
    ours.rcvtimeo = 10
    raises_errno(zmtp.EAGAIN, shadow.recv, exc=zmtp.Again)  # the original's RCVTIMEO


def test_subclass_shadow_and_options_as_kwargs(backend, ctx):
    class Mine(zmtp.Socket):
        pass

    ours = ctx.socket(zmtp.PUB)
    shadow = Mine(shadow=ours.underlying, sndhwm=5)
    assert type(shadow) is Mine and ours.sndhwm == 5


@pytest.mark.parametrize("closer", ["original", "shadow"])
def test_close(closer, backend, ctx, zctx):
    ours, peer = _pair("tcp", "zmtp", None, ctx, zctx)
    shadow = zmtp.Socket.shadow(ours.underlying)
    (ours if closer == "original" else shadow).close()
    assert ours.closed and shadow.closed
    for sock in (ours, shadow):
        raises_errno(zmtp.ENOTSOCK, sock.send, b"x")
        raises_errno(zmtp.ENOTSOCK, sock.recv)
        raises_errno(zmtp.ENOTSOCK, sock.getsockopt, zmtp.LINGER)
    shadow.close()  # twice, on either: nothing
    ours.close()
    # the handle of a closed socket names nothing
    raises_errno(zmtp.ENOTSOCK, zmtp.Socket.shadow, ours.underlying)


def test_shadow_collected_does_not_close(backend, ctx, zctx):
    ours, peer = _pair("tcp", "zmtp", None, ctx, zctx)
    shadow = zmtp.Socket.shadow(ours.underlying)
    del shadow
    gc.collect()
    assert not ours.closed
    peer.send(b"still open")
    assert ours.recv() == b"still open"


def test_original_kept_alive_by_its_shadow(backend, ctx, zctx):
    ours, peer = _pair("tcp", "zmtp", None, ctx, zctx)
    handle = ours.underlying
    shadow = zmtp.Socket.shadow(handle)
    ctx._kept.remove(ours)  # the test context's own reference
    del ours
    gc.collect()
    peer.send(b"alive")
    assert shadow.recv() == b"alive"
    assert zmtp.Socket.shadow(handle)._shadow_obj is shadow._shadow_obj
    shadow.close()


@pytest.mark.parametrize("bad", ["zero", "random", "closed", "collected", "pyzmq's", "str", "None"])
def test_bad_handle(bad, backend, ctx, zctx):
    if bad == "zero":
        raises_errno(zmtp.ENOTSOCK, zmtp.Socket.shadow, 0)
    elif bad == "random":
        for _ in range(100):
            raises_errno(zmtp.ENOTSOCK, zmtp.Socket.shadow, random.getrandbits(random.choice([8, 32, 48, 64])) | 1)
        raises_errno(zmtp.ENOTSOCK, zmtp.Socket.shadow, -1)
    elif bad == "closed":
        s = ctx.socket(zmtp.PAIR)
        h = s.underlying
        s.close()
        raises_errno(zmtp.ENOTSOCK, zmtp.Socket.shadow, h)
    elif bad == "collected":
        s = zmtp.Socket(zmtp.PAIR)  # no context: nothing else holds it
        h = s.underlying
        s.close()
        del s
        gc.collect()
        raises_errno(zmtp.ENOTSOCK, zmtp.Socket.shadow, h)
    elif bad == "pyzmq's":
        raises_errno(zmtp.ENOTSOCK, zmtp.Socket.shadow, zctx.socket(zmq.PAIR).underlying)
    elif bad == "str":
        with pytest.raises(TypeError):
            zmtp.Socket.shadow("0x1234")
    else:
        raises_errno(zmtp.ENOTSOCK, zmtp.Socket.shadow, None)


def test_two_threads_two_objects_ebusy(backend, ctx, spawn):
    ours = ctx.socket(zmtp.PULL)
    ours.rcvtimeo = -1
    ours.bind("inproc://shadow-busy")
    shadow = zmtp.Socket.shadow(ours.underlying)
    task = spawn(ours.recv)
    wait_blocked(task)
    raises_errno(errno.EBUSY, shadow.recv)
    raises_errno(errno.EBUSY, shadow.getsockopt, zmtp.LINGER)
    push = ctx.socket(zmtp.PUSH)
    push.connect("inproc://shadow-busy")
    push.send(b"wake")
    assert task.result(DEADLINE_S) == b"wake"


def test_threads_hammering_both_objects_never_crash(backend, ctx):
    """Two threads, one per object, in calls at once: each call either
    works or raises EBUSY; every message arrives once."""
    pull = ctx.socket(zmtp.PULL)
    pull.bind("inproc://shadow-hammer")
    push = ctx.socket(zmtp.PUSH)
    push.connect("inproc://shadow-hammer")
    shadow = zmtp.Socket.shadow(pull)
    n = 2000
    got = []
    lock = threading.Lock()
    busy = [0]

    def drain(sock):
        while True:
            with lock:
                if len(got) >= n:
                    return
            try:
                m = sock.recv(zmtp.DONTWAIT)
            except zmtp.Again:
                continue
            except zmtp.ZMQError as exc:
                assert exc.errno == errno.EBUSY
                busy[0] += 1
                continue
            with lock:
                got.append(m)

    threads = [threading.Thread(target=drain, args=(s,)) for s in (pull, shadow)]
    for t in threads:
        t.start()
    for i in range(n):
        push.send(b"%d" % i)
    for t in threads:
        t.join(DEADLINE_S * 3)
        assert not t.is_alive()
    assert sorted(int(m) for m in got) == list(range(n))


# -- Context.shadow / Context.underlying


def test_context_shadow_is_the_same_context(backend, zctx):
    ctx = zmtp.Context()
    try:
        shadow = zmtp.Context.shadow(ctx.underlying)
        assert shadow._shadow and not ctx._shadow and shadow.underlying == ctx.underlying
        a = shadow.socket(zmtp.PAIR)
        a.bind("inproc://ctx-shadow")  # a name of the one context
        b = ctx.socket(zmtp.PAIR)
        b.connect("inproc://ctx-shadow")
        a.send(b"inproc")
        assert b.recv() == b"inproc"
        shadow.linger = 0  # a default seen by both
        assert ctx.linger == 0
        p = zctx.socket(zmq.PAIR)
        port = p.bind_to_random_port("tcp://127.0.0.1")
        c = shadow.socket(zmtp.PAIR)
        c.connect(f"tcp://127.0.0.1:{port}")
        c.send(b"pyzmq")
        assert p.recv() == b"pyzmq"
        for s in (a, b, c):
            s.close()
        del shadow, a
        gc.collect()
        assert not ctx.closed  # a collected shadow does not end the context
        assert copy.copy(ctx)._shadow and zmtp.Context(ctx)._shadow
    finally:
        ctx.term()


def test_context_shadow_term_ends_the_context(backend):
    ctx = zmtp.Context()
    s = ctx.socket(zmtp.PAIR)
    zmtp.Context.shadow(ctx).term()
    assert ctx.closed
    raises_errno(zmtp.ETERM, s.recv, exc=zmtp.ContextTerminated)
    raises_errno(zmtp.ETERM, ctx.socket, zmtp.PAIR, exc=zmtp.ContextTerminated)
    s.close()


def test_context_bad_handle(backend, zctx):
    for bad in (0, 12345, random.getrandbits(64), zctx.underlying):
        raises_errno(errno.EFAULT, zmtp.Context.shadow, bad)
    ctx = zmtp.Context()
    h = ctx.underlying
    ctx.term()
    del ctx
    gc.collect()
    raises_errno(errno.EFAULT, zmtp.Context.shadow, h)
