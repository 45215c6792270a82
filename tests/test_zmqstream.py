"""zmtp.eventloop: ZMQStream on tornado's IOLoop (asyncio underneath), against
pyzmq 27.3 peers over tcp and ipc (zmtp binding and pyzmq binding) and zmtp
peers over inproc, under both backends.

Each test makes its own IOLoop in the backend thread and runs it until a
condition holds or a generous deadline passes (``run_until``): nothing
sleeps and hopes.  Skipped (with the reason) when tornado is not installed.
"""

from __future__ import annotations

import importlib
import itertools
import os
import subprocess
import sys
import threading
import time
from typing import Any, Callable, List, Tuple

import pytest

pytest.importorskip("tornado", reason="tornado is not installed (pip install zmtp[tornado])")

from tornado.ioloop import IOLoop, PeriodicCallback  # noqa: E402

import zmtp  # noqa: E402
from zmtp.eventloop import zmqstream  # noqa: E402
from zmtp.eventloop.zmqstream import ZMQStream  # noqa: E402

from helpers import DEADLINE_S, TIMEOUT_MS, psock, zsock  # noqa: E402

zmq = pytest.importorskip("zmq", reason="pyzmq (the reference peer) is not installed")

_names = itertools.count()

PEERS = [
    pytest.param(("tcp", True), id="tcp-zmtp-binds"),
    pytest.param(("tcp", False), id="tcp-pyzmq-binds"),
    pytest.param(("ipc", True), id="ipc-zmtp-binds"),
    pytest.param(("ipc", False), id="ipc-pyzmq-binds"),
]


@pytest.fixture
def loop():
    """A fresh IOLoop (a new asyncio loop), closed after the test."""
    lp = IOLoop(make_current=False)
    yield lp
    lp.close(all_fds=False)


def run_until(loop: IOLoop, pred: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> None:
    """Run `loop` until pred() is true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout

    def check() -> None:
        if pred() or time.monotonic() > deadline:
            loop.stop()

    pc = PeriodicCallback(check, 2)
    loop.add_callback(pc.start)
    loop.start()
    pc.stop()
    assert pred(), f"timed out after {timeout} s waiting for {what}"


def spin(loop: IOLoop, rounds: int = 50) -> None:
    """Run `loop` for `rounds` iterations (each handler and callback that is
    ready runs): how a test sees that nothing happens for queued input."""
    left = [rounds]

    def step() -> None:
        left[0] -= 1
        if left[0] <= 0:
            loop.stop()
        else:
            loop.add_callback(step)

    loop.add_callback(step)
    loop.start()


def connected(ztype: int, ptype: int, ctx: Any, zctx: Any, where: Tuple[str, bool], tmp_path: Any) -> Tuple[Any, Any]:
    """A zmtp socket of `ztype` and a pyzmq socket of `ptype`, connected
    over `where` = (transport, zmtp_binds)."""
    transport, zmtp_binds = where
    z = zsock(ctx, ztype)
    p = psock(zctx, ptype)
    addr = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/zs-{next(_names)}.ipc"
    if zmtp_binds:
        z.bind(addr)
        p.connect(z.last_endpoint.decode())
    else:
        p.bind(addr)
        z.connect(p.getsockopt(zmq.LAST_ENDPOINT).decode())
    return z, p


def inproc_pair(ctx: Any, a_type: int, b_type: int) -> Tuple[Any, Any]:
    """Two zmtp sockets over inproc (a binds)."""
    name = f"inproc://zmqstream-{next(_names)}"
    a, b = zsock(ctx, a_type), zsock(ctx, b_type)
    a.bind(name)
    b.connect(name)
    return a, b


def frames(msg: List[Any]) -> List[bytes]:
    """A received message's frames as bytes (Frame or bytes)."""
    return [f if isinstance(f, bytes) else f.bytes for f in msg]


# -- on_recv


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "nocopy"])
@pytest.mark.parametrize("where", PEERS)
def test_on_recv_single_and_multipart(backend, ctx, zctx, loop, tmp_path, where, copy):
    """on_recv gets every message, one- and many-frame, in order: bytes with
    copy=True, zmtp.Frame with copy=False."""
    pull, push = connected(zmtp.PULL, zmq.PUSH, ctx, zctx, where, tmp_path)
    stream = ZMQStream(pull, io_loop=loop)
    got: List[List[Any]] = []
    stream.on_recv(got.append, copy=copy)
    sent = [[b"one"], [b"a", b"", b"c" * 5000], [b"x" * 100_000, b"y"]]
    for msg in sent:
        push.send_multipart(msg)
    run_until(loop, lambda: len(got) == len(sent), "three messages")
    assert [frames(m) for m in got] == sent
    kind = bytes if copy else zmtp.Frame
    assert all(isinstance(f, kind) for m in got for f in m)
    stream.close(linger=0)


def test_on_recv_inproc(backend, ctx, loop):
    """A zmtp PUSH feeding a stream from another thread over inproc."""
    pull, push = inproc_pair(ctx, zmtp.PULL, zmtp.PUSH)
    stream = ZMQStream(pull, io_loop=loop)
    got: List[List[bytes]] = []
    stream.on_recv(got.append)
    n = 300
    t = threading.Thread(target=lambda: [push.send_multipart([b"%d" % i, b"tail"]) for i in range(n)])
    t.start()
    try:
        run_until(loop, lambda: len(got) == n, f"{n} inproc messages")
    finally:
        t.join()
    assert got == [[b"%d" % i, b"tail"] for i in range(n)]
    stream.close(linger=0)


@pytest.mark.parametrize("where", PEERS[:2])
def test_on_recv_stream_passes_the_stream(backend, ctx, zctx, loop, tmp_path, where):
    """on_recv_stream's callback gets (stream, msg); copy=False gives Frames."""
    pull, push = connected(zmtp.PULL, zmq.PUSH, ctx, zctx, where, tmp_path)
    stream = ZMQStream(pull, io_loop=loop)
    got: List[Tuple[Any, List[Any]]] = []
    stream.on_recv_stream(lambda s, msg: got.append((s, msg)), copy=False)
    push.send_multipart([b"k", b"v"])
    run_until(loop, lambda: got, "a message")
    assert got[0][0] is stream and frames(got[0][1]) == [b"k", b"v"]
    assert isinstance(got[0][1][0], zmtp.Frame)
    stream.on_recv_stream(None)
    assert not stream.receiving()
    stream.close(linger=0)


def test_input_queued_before_on_recv_is_delivered(backend, ctx, zctx, loop, tmp_path):
    """Messages that arrived (and whose edge passed) before on_recv was
    registered are delivered once it is: the fd would not fire for them."""
    pull, push = connected(zmtp.PULL, zmq.PUSH, ctx, zctx, ("tcp", True), tmp_path)
    stream = ZMQStream(pull, io_loop=loop)
    for i in range(5):
        push.send(b"%d" % i)
    assert pull.poll(TIMEOUT_MS) & zmtp.POLLIN
    spin(loop)  # the fd fires with no callback registered: nothing taken
    got: List[List[bytes]] = []
    stream.on_recv(got.append)
    run_until(loop, lambda: len(got) == 5, "five queued messages")
    assert got == [[b"%d" % i] for i in range(5)]
    stream.close(linger=0)


def test_stop_on_recv_leaves_input_queued(backend, ctx, zctx, loop, tmp_path):
    """After stop_on_recv (here: from the callback) nothing more is taken;
    on_recv again delivers what waited, in order."""
    pull, push = connected(zmtp.PULL, zmq.PUSH, ctx, zctx, ("ipc", False), tmp_path)
    stream = ZMQStream(pull, io_loop=loop)
    got: List[List[bytes]] = []

    def first(msg: List[bytes]) -> None:
        got.append(msg)
        if len(got) == 3:
            stream.stop_on_recv()

    stream.on_recv(first)
    for i in range(8):
        push.send(b"%d" % i)
    run_until(loop, lambda: len(got) == 3, "three messages")
    assert not stream.receiving()
    spin(loop, 200)
    assert len(got) == 3
    assert pull.poll(TIMEOUT_MS) & zmtp.POLLIN  # the rest waits in the socket
    stream.on_recv(got.append)
    run_until(loop, lambda: len(got) == 8, "the other five")
    assert got == [[b"%d" % i] for i in range(8)]
    stream.close(linger=0)


def test_callback_exception_and_coroutine_callbacks(backend, ctx, loop):
    """A callback that raises is logged and loses no later message (the
    drain is rescheduled); a coroutine callback is run to completion."""
    pull, push = inproc_pair(ctx, zmtp.PULL, zmtp.PUSH)
    stream = ZMQStream(pull, io_loop=loop)
    seen: List[bytes] = []
    done: List[bytes] = []
    loop.asyncio_loop.set_exception_handler(lambda lp, context: None)  # the raise is expected

    async def handler(msg: List[bytes]) -> None:
        done.append(msg[0])
        if msg[0] == b"2":
            raise ValueError("from a coroutine callback")

    def sync_handler(msg: List[bytes]) -> Any:
        seen.append(msg[0])
        if msg[0] == b"1":
            raise ValueError("from a callback")
        return handler(msg)

    stream.on_recv(sync_handler)
    for i in range(10):
        push.send(b"%d" % i)
    run_until(loop, lambda: len(done) == 9, "nine coroutine callbacks")
    assert seen == [b"%d" % i for i in range(10)]
    assert done == [b"%d" % i for i in range(10) if i != 1]
    stream.close(linger=0)


# -- sending


@pytest.mark.parametrize("where", PEERS)
def test_send_queue_and_on_send(backend, ctx, zctx, loop, tmp_path, where):
    """Every send method queues; the loop sends in order and calls the send
    callback with (msg, status); a per-send callback replaces on_send's."""
    push, pull = connected(zmtp.PUSH, zmq.PULL, ctx, zctx, where, tmp_path)
    stream = ZMQStream(push, io_loop=loop)
    sent: List[Tuple[Any, Any]] = []
    stream.on_send(lambda msg, status: sent.append((msg, status)))
    stream.send(b"plain")
    stream.send_multipart([b"a", b"b"])
    stream.send_string("h\u00e9")
    stream.send_json({"k": [1, 2]})
    stream.send_pyobj((1, "x"))
    assert stream.sending()
    run_until(loop, lambda: len(sent) == 5, "five send callbacks")
    assert not stream.sending()
    assert [m for m, _ in sent][:2] == [[b"plain"], [b"a", b"b"]]
    assert all(status is None for _, status in sent)
    assert pull.recv() == b"plain"
    assert pull.recv_multipart() == [b"a", b"b"]
    assert pull.recv_string() == "h\u00e9"
    assert pull.recv_json() == {"k": [1, 2]}
    assert pull.recv_pyobj() == (1, "x")
    other: List[Any] = []
    stream.send(b"last", callback=lambda msg, status: other.append(msg))
    run_until(loop, lambda: other, "the per-send callback")
    assert other == [[b"last"]] and len(sent) == 5
    assert pull.recv() == b"last"
    tracked: List[Any] = []
    stream.send(b"t", copy=False, track=True, callback=lambda msg, status: tracked.append(status))
    run_until(loop, lambda: tracked, "the tracked send's callback")
    assert tracked[0] is zmtp._FINISHED_TRACKER and tracked[0].done
    assert pull.recv() == b"t"
    stream.close(linger=0)


def test_on_send_stream_and_stop_on_send(backend, ctx, loop):
    """on_send_stream passes the stream first; after stop_on_send the queue
    still drains, with the no-op callback."""
    a, b = inproc_pair(ctx, zmtp.PAIR, zmtp.PAIR)
    stream = ZMQStream(a, io_loop=loop)
    sent: List[Any] = []
    stream.on_send_stream(lambda s, msg, status: sent.append((s, msg)))
    stream.send(b"1")
    run_until(loop, lambda: sent, "the send callback")
    assert sent == [(stream, [b"1"])]
    stream.stop_on_send()
    stream.send(b"2")
    run_until(loop, lambda: not stream.sending(), "the queue to drain")
    assert len(sent) == 1
    assert b.recv() == b"1" and b.recv() == b"2"
    stream.close(linger=0)


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_send_queue_waits_for_a_peer(backend, ctx, zctx, loop, tmp_path, transport):
    """With no peer (PUSH: no POLLOUT) the queue waits, nothing is sent or
    dropped; once a pyzmq PULL connects, the edge of POLLOUT sends it all."""
    push = zsock(ctx, zmtp.PUSH)
    addr = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/q-{next(_names)}.ipc"
    push.bind(addr)
    stream = ZMQStream(push, io_loop=loop)
    sent: List[Any] = []
    stream.on_send(lambda msg, status: sent.append(msg))
    for i in range(20):
        stream.send_multipart([b"%d" % i, b"x" * i])
    spin(loop, 200)
    assert sent == [] and stream.sending()
    pull = psock(zctx, zmq.PULL)
    pull.connect(push.last_endpoint.decode())
    run_until(loop, lambda: len(sent) == 20, "the queue to be sent")
    assert [pull.recv_multipart() for _ in range(20)] == [[b"%d" % i, b"x" * i] for i in range(20)]
    stream.close(linger=0)


def test_default_loop_socket_and_deprecated_on_err(backend, ctx, loop, caplog):
    """Made inside a running loop with no io_loop, a stream uses
    IOLoop.current(); stream.socket is the socket; a callback that is not
    callable fails an assert; on_err/stop_on_err only log, as pyzmq's."""
    a, b = inproc_pair(ctx, zmtp.PAIR, zmtp.PAIR)
    made: List[ZMQStream] = []
    got: List[Any] = []

    def make() -> None:
        stream = ZMQStream(a)
        stream.on_recv(got.append)
        made.append(stream)

    loop.add_callback(make)
    b.send(b"hi")
    run_until(loop, lambda: got, "a message")
    stream = made[0]
    assert stream.io_loop is loop and stream.socket is a and got == [[b"hi"]]
    assert stream.bind == a.bind and stream.getsockopt(zmtp.TYPE) == zmtp.PAIR
    with pytest.raises(AssertionError):
        stream.on_recv(1)  # type: ignore[arg-type]
    with pytest.raises(AssertionError):
        stream.on_send(zmtp)  # type: ignore[arg-type]
    stream.stop_on_err()
    stream.on_err(lambda *args: None)
    assert caplog.text.count("on_err does nothing") == 2
    stream.close(linger=0)


# -- flush


@pytest.mark.parametrize("where", PEERS[:2])
def test_flush(backend, ctx, zctx, loop, tmp_path, where):
    """flush(POLLOUT) sends the queue without the loop; flush(POLLIN) runs
    on_recv for what is queued; limit bounds the count; flush(POLLIN) with
    no callback drops input."""
    dealer, router = connected(zmtp.DEALER, zmq.DEALER, ctx, zctx, where, tmp_path)
    stream = ZMQStream(dealer, io_loop=loop)
    assert dealer.poll(TIMEOUT_MS, zmtp.POLLOUT)
    sent: List[Any] = []
    stream.on_send(lambda msg, status: sent.append(msg))
    for i in range(4):
        stream.send(b"%d" % i)
    assert stream.flush(zmtp.POLLOUT, limit=1) == 1
    assert stream.flush(zmtp.POLLOUT) == 3
    assert sent == [[b"%d" % i] for i in range(4)] and not stream.sending()
    assert [router.recv() for _ in range(4)] == [b"%d" % i for i in range(4)]

    got: List[List[bytes]] = []
    stream.on_recv(got.append)
    for i in range(6):
        router.send(b"r%d" % i)
    deadline = time.monotonic() + DEADLINE_S
    count = 0
    while count < 6:
        assert time.monotonic() < deadline, count
        dealer.poll(TIMEOUT_MS)
        count += stream.flush(zmtp.POLLIN, limit=6 - count)
    assert got == [[b"r%d" % i] for i in range(6)]
    assert stream.flush() == 0

    stream.stop_on_recv()
    router.send(b"dropped")
    router.send(b"too")
    dealer.poll(TIMEOUT_MS)
    dropped = 0
    while dropped < 2:
        assert time.monotonic() < deadline
        dealer.poll(TIMEOUT_MS)
        dropped += stream.flush(zmtp.POLLIN)
    assert len(got) == 6 and not dealer.poll(0)
    stream.close(linger=0)


# -- close


def test_close_from_a_callback_and_close_callback(backend, ctx, zctx, loop, tmp_path):
    """close() from inside on_recv: the socket is closed, the close callback
    runs once, later calls raise OSError, nothing more is delivered."""
    pull, push = connected(zmtp.PULL, zmq.PUSH, ctx, zctx, ("tcp", False), tmp_path)
    stream = ZMQStream(pull, io_loop=loop)
    closed: List[bool] = []
    stream.set_close_callback(lambda: closed.append(True))
    got: List[Any] = []

    def on(msg: List[bytes]) -> None:
        got.append(msg)
        stream.close(linger=0)

    stream.on_recv(on)
    for i in range(5):
        push.send(b"%d" % i)
    run_until(loop, lambda: closed, "the close callback")
    spin(loop)
    assert got == [[b"0"]] and closed == [True]
    assert stream.closed() and pull.closed and stream.socket is None
    with pytest.raises(OSError):
        stream.on_recv(got.append)
    with pytest.raises(OSError):
        stream.flush()
    stream.close()  # again: nothing
    assert closed == [True]


def test_socket_closed_behind_the_stream(backend, ctx, loop):
    """A socket closed directly: closed() notices, unregisters (with
    pyzmq's warning) and runs the close callback."""
    a, b = inproc_pair(ctx, zmtp.PAIR, zmtp.PAIR)
    stream = ZMQStream(a, io_loop=loop)
    closed: List[bool] = []
    stream.set_close_callback(lambda: closed.append(True))
    a.close(linger=0)
    with pytest.warns(UserWarning, match="Unregistering FD"):
        assert stream.closed()
    assert closed == [True]
    spin(loop)


def test_context_terminated_closes_the_stream(backend, loop, caplog):
    """After its context's term() the stream's next look at the socket
    (here: on_recv) finds ContextTerminated, closes the socket and runs the
    close callback, as pyzmq's stream does on ETERM."""
    c = zmtp.Context()
    a = c.socket(zmtp.PULL)
    a.bind(f"inproc://term-{next(_names)}")
    stream = ZMQStream(a, io_loop=loop)
    closed: List[bool] = []
    stream.set_close_callback(lambda: closed.append(True))
    c.term()
    stream.on_recv(lambda msg: None)
    assert closed == [True] and stream.closed() and a.closed
    assert "after terminating context" in caplog.text
    spin(loop)


# -- bursts, many streams


@pytest.mark.parametrize("where", PEERS + [pytest.param(("inproc", True), id="inproc")])
def test_burst_of_10000_no_missed_callback(backend, ctx, zctx, loop, tmp_path, where):
    """10 000 messages sent by another thread in bursts with pauses (many
    edges, some while the stream drains): every one reaches on_recv, in
    order, none twice."""
    if where[0] == "inproc":
        pull, push = inproc_pair(ctx, zmtp.PULL, zmtp.PUSH)
    else:
        pull, push = connected(zmtp.PULL, zmq.PUSH, ctx, zctx, where, tmp_path)
    stream = ZMQStream(pull, io_loop=loop)
    got: List[bytes] = []
    stream.on_recv(lambda msg: got.append(msg[0]))
    n = 10_000

    def feed() -> None:
        for i in range(n):
            push.send(b"%d" % i)
            if i % 997 == 0:
                time.sleep(0.002)

    t = threading.Thread(target=feed)
    t.start()
    try:
        run_until(loop, lambda: len(got) >= n, f"{n} messages", timeout=2 * DEADLINE_S)
    finally:
        t.join()
    spin(loop)
    assert len(got) == n and got == [b"%d" % i for i in range(n)]
    stream.close(linger=0)


def test_many_streams_on_one_loop(backend, ctx, zctx, loop, tmp_path):
    """16 PULL streams (tcp and ipc, half zmtp-bound, half pyzmq-bound) on
    one loop, each fed 500 messages by its pyzmq PUSH from one thread:
    every stream gets its own, in order."""
    wheres = [("tcp", True), ("tcp", False), ("ipc", True), ("ipc", False)] * 4
    pairs = [connected(zmtp.PULL, zmq.PUSH, ctx, zctx, w, tmp_path) for w in wheres]
    got: List[List[bytes]] = [[] for _ in pairs]
    streams = []
    for k, (pull, _) in enumerate(pairs):
        stream = ZMQStream(pull, io_loop=loop)
        stream.on_recv(lambda msg, k=k: got[k].append(msg[0]))
        streams.append(stream)
    n = 500

    def feed() -> None:
        for i in range(n):
            for k, (_, push) in enumerate(pairs):
                push.send(b"%d:%d" % (k, i))

    t = threading.Thread(target=feed)
    t.start()
    try:
        run_until(loop, lambda: all(len(g) == n for g in got), "every stream's messages", timeout=2 * DEADLINE_S)
    finally:
        t.join()
    for k, g in enumerate(got):
        assert g == [b"%d:%d" % (k, i) for i in range(n)]
    for stream in streams:
        stream.close(linger=0)


def test_a_drain_is_bounded_per_callback(backend, ctx, loop):
    """Queued input is taken at most DRAIN_LIMIT messages per loop callback
    (the loop's other work runs between), and all of it is delivered."""
    pull, push = inproc_pair(ctx, zmtp.PULL, zmtp.PUSH)
    n = 5 * zmqstream.DRAIN_LIMIT + 3
    for i in range(n):
        push.send(b"%d" % i)
    stream = ZMQStream(pull, io_loop=loop)
    got: List[bytes] = []
    ticks: List[int] = []

    def tick() -> None:
        ticks.append(len(got))
        if len(got) < n:
            loop.add_callback(tick)

    stream.on_recv(lambda msg: got.append(msg[0]))
    loop.add_callback(tick)
    run_until(loop, lambda: len(got) == n, f"{n} messages")
    assert got == [b"%d" % i for i in range(n)]
    steps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert max(steps) <= zmqstream.DRAIN_LIMIT, steps
    stream.close(linger=0)


@pytest.mark.parametrize("transport,peer", [
    ("tcp", "zmtp"), ("ipc", "zmtp"), ("inproc", "zmtp"), ("tcp", "pyzmq"), ("ipc", "pyzmq")])
def test_req_rep_through_two_streams_on_one_loop(backend, ctx, zctx, loop, tmp_path, transport, peer):
    """A REQ stream and a REP stream on one loop: the REP side echoes from
    its on_recv, the REQ side sends the next request from its own, 300
    round trips.  The REP stream is zmtp's, or pyzmq's own ZMQStream on a
    pyzmq socket (same loop, tcp/ipc)."""
    if transport == "inproc":
        rep, req = inproc_pair(ctx, zmtp.REP, zmtp.REQ)
    else:
        addr = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/rr-{next(_names)}.ipc"
        rep = zsock(ctx, zmtp.REP) if peer == "zmtp" else psock(zctx, zmq.REP)
        rep.bind(addr)
        req = zsock(ctx, zmtp.REQ)
        req.connect(rep.getsockopt(zmtp.LAST_ENDPOINT).decode())
    if peer == "pyzmq":
        from zmq.eventloop.zmqstream import ZMQStream as PyZMQStream

        rep_stream: Any = PyZMQStream(rep, io_loop=loop)
    else:
        rep_stream = ZMQStream(rep, io_loop=loop)
    req_stream = ZMQStream(req, io_loop=loop)
    rep_stream.on_recv(lambda msg: rep_stream.send_multipart([b"re:" + msg[0]]))
    replies: List[bytes] = []
    n = 300

    def on_reply(msg: List[bytes]) -> None:
        replies.append(msg[0])
        if len(replies) < n:
            req_stream.send(b"%d" % len(replies))

    req_stream.on_recv(on_reply)
    req_stream.send(b"0")
    run_until(loop, lambda: len(replies) == n, f"{n} round trips")
    assert replies == [b"re:%d" % i for i in range(n)]
    req_stream.close(linger=0)
    rep_stream.close(linger=0)


# -- the shim modules, the optional dependency


def test_ioloop_shim_is_tornados():
    """zmtp.eventloop.ioloop: tornado's IOLoop, ZMQIOLoop an alias,
    install() a no-op; both warn DeprecationWarning as pyzmq's."""
    sys.modules.pop("zmtp.eventloop.ioloop", None)
    with pytest.warns(DeprecationWarning, match="deprecated in pyzmq 17"):
        shim = importlib.import_module("zmtp.eventloop.ioloop")
    assert shim.IOLoop is IOLoop and shim.ZMQIOLoop is IOLoop
    with pytest.warns(DeprecationWarning):
        shim.install()
    import zmtp.eventloop

    assert zmtp.eventloop.IOLoop is IOLoop


def test_future_module_needs_zmtp_asyncio():
    """zmtp.eventloop.future: built on zmtp.asyncio; without it, an
    ImportError that says what is missing."""
    try:
        importlib.import_module("zmtp.asyncio")
    except ImportError:
        with pytest.raises(ImportError, match="zmtp.asyncio"):
            importlib.import_module("zmtp.eventloop.future")
        return
    future = importlib.import_module("zmtp.eventloop.future")
    assert {"Context", "Socket", "Poller"} <= set(dir(future))


@pytest.mark.parametrize("where", PEERS)
def test_future_sockets_in_tornado_coroutines(backend, zctx, loop, tmp_path, where):
    """zmtp.eventloop.future against a pyzmq DEALER: awaited send/recv,
    a Poller, a @gen.coroutine yielding a recv future, its own Context
    (io_loop= warns as pyzmq's) and instance()."""
    try:
        future = importlib.import_module("zmtp.eventloop.future")
    except ImportError as exc:
        pytest.skip(f"zmtp.eventloop.future unavailable: {exc}")
    from tornado import gen

    with pytest.warns(DeprecationWarning, match="io_loop"):
        fctx = future.Context(io_loop=loop)
    out: List[Any] = []

    @gen.coroutine
    def yielded(sock: Any) -> Any:
        msg = yield sock.recv_multipart()
        return msg

    async def main() -> None:
        z, p = connected(zmtp.DEALER, zmq.DEALER, fctx, zctx, where, tmp_path)
        assert isinstance(z, future.Socket)
        pending = z.recv_multipart()
        p.send_multipart([b"a", b"b"])
        out.append(await pending)
        await z.send_multipart([b"c", b"d"])
        out.append(p.recv_multipart())
        poller = future.Poller()
        poller.register(z, zmtp.POLLIN)
        p.send(b"e")
        out.append(await poller.poll(TIMEOUT_MS))
        out.append(await z.recv())
        p.send(b"f")
        out.append(await yielded(z))
        z.close(linger=0)

    try:
        loop.run_sync(main, timeout=DEADLINE_S)
        assert out[:2] == [[b"a", b"b"], [b"c", b"d"]]
        assert [ev for _, ev in out[2]] == [zmtp.POLLIN]
        assert out[3:] == [b"e", [b"f"]]
        assert future.Context.instance() is future.Context.instance()
        assert type(future.Context.instance()) is future.Context
    finally:
        fctx.term()
        future.Context.instance().term()


def test_asyncio_socket_is_shadowed_as_blocking(backend, loop):
    """A zmtp.asyncio socket given to a stream warns RuntimeWarning as
    pyzmq's; with Socket.shadow() the stream uses a blocking socket on the
    same C socket (callbacks get bytes), without it TypeError says why."""
    try:
        aio = importlib.import_module("zmtp.asyncio")
    except ImportError as exc:
        pytest.skip(f"zmtp.asyncio unavailable: {exc}")
    actx = aio.Context()
    a, b = actx.socket(zmtp.PAIR), actx.socket(zmtp.PAIR)
    name = f"inproc://shadowed-{next(_names)}"
    a.bind(name)
    b.connect(name)
    try:
        if not hasattr(zmtp.Socket, "shadow"):
            with pytest.warns(RuntimeWarning), pytest.raises(TypeError, match="shadow"):
                ZMQStream(a, io_loop=loop)
            return
        with pytest.warns(RuntimeWarning, match="base zmtp.Socket"):
            stream = ZMQStream(a, io_loop=loop)
        assert type(stream.socket) is zmtp.Socket
        got: List[Any] = []
        stream.on_recv(got.append)
        loop.run_sync(lambda: b.send(b"x"), timeout=DEADLINE_S)
        run_until(loop, lambda: got, "a message")
        assert got == [[b"x"]]
        loop.remove_handler(stream._fd)
    finally:
        actx.destroy(linger=0)


_NO_TORNADO = """
import sys
sys.modules["tornado"] = None  # as if tornado were not installed
import zmtp, zmtp.eventloop
assert not [m for m in sys.modules if m.startswith("tornado") and sys.modules[m] is not None]
for name in ("zmtp.eventloop.zmqstream", "zmtp.eventloop.ioloop", "zmtp.eventloop.future"):
    try:
        __import__(name)
    except ImportError as e:
        assert "pip install zmtp[tornado]" in str(e), (name, e)
    else:
        raise AssertionError(name + " imported without tornado")
try:
    zmtp.eventloop.IOLoop
except ImportError as e:
    assert "pip install zmtp[tornado]" in str(e), e
else:
    raise AssertionError("IOLoop without tornado")
print("ok")
"""


def test_zmtp_imports_without_tornado():
    """tornado is optional: zmtp and zmtp.eventloop import without it; the
    modules that need it raise ImportError naming the extra."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(zmtp.__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    out = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", _NO_TORNADO],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_zmtp_import_does_not_import_tornado():
    """``import zmtp`` and ``import zmtp.eventloop`` leave tornado unimported
    even where it is installed."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(zmtp.__file__)))
    code = "import sys, zmtp, zmtp.eventloop; print(sorted(m for m in sys.modules if m.startswith('tornado')))"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=root),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr)
