"""The pyzmq names jupyter_client and ipykernel use beyond the socket API
(issue 16 item 3): ``zmq.Message``, ``zmq.MessageTracker`` / ``NotDone``
(jupyter_client's Session keeps ``DONE = zmq.MessageTracker()``),
``zmq.sugar.socket.Socket`` in type hints, ``zmq.log.handlers.PUBHandler``
(ipykernel's EnginePUBHandler), ``zmq.device(zmq.QUEUE, s, s)`` (ipykernel's
heartbeat echo), ``zmq.curve_keypair`` (jupyter_client asks only when
``zmq.has("curve")``), ``zmq.utils.jsonapi`` (ipykernel's debugger).

Each checked beside pyzmq's own, and over the wire against pyzmq peers
(tcp and ipc, zmtp binding and pyzmq binding), both backends.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

import zmtp
import zmtp.log.handlers
import zmtp.sugar
import zmtp.sugar.context
import zmtp.sugar.socket
import zmtp.utils.jsonapi
from helpers import DEADLINE_S, TIMEOUT_MS, queue_rounds

zmq = pytest.importorskip("zmq")
import zmq.log.handlers  # noqa: E402
import zmq.utils.jsonapi  # noqa: E402


def _endpoint(transport, tmp_path, tag):
    return "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/{tag}.ipc"


def _bound(sock):
    ep = sock.last_endpoint
    return ep.decode() if isinstance(ep, bytes) else ep


# -- names


def test_import_paths_name_the_same_classes():
    assert zmtp.sugar.socket.Socket is zmtp.Socket is zmtp.sugar.Socket
    assert zmtp.sugar.context.Context is zmtp.Context is zmtp.sugar.Context
    assert zmtp.sugar.socket.SyncSocket is zmtp.Socket
    assert zmtp.sugar.Poller is zmtp.Poller
    assert zmtp.Message is zmtp.Frame and zmtp.sugar.Message is zmtp.Frame
    assert zmtp.sugar.tracker.MessageTracker is zmtp.MessageTracker is zmtp.sugar.MessageTracker
    assert issubclass(zmtp.NotDone, Exception) and not issubclass(zmtp.NotDone, zmtp.ZMQError)
    assert zmtp.error.NotDone is zmtp.NotDone


def test_device_constants_are_pyzmqs():
    for name in ("QUEUE", "FORWARDER", "STREAMER"):
        assert int(getattr(zmtp, name)) == int(getattr(zmq, name))
    assert zmtp.DeviceType.QUEUE == zmq.DeviceType.QUEUE


def test_sockets_are_instances_of_the_sugar_class(ctx):
    s = ctx.socket(zmtp.DEALER)
    assert isinstance(s, zmtp.sugar.socket.Socket)
    assert isinstance(zmtp.Socket.shadow(s.underlying), zmtp.sugar.socket.Socket)


def test_message_is_a_frame_to_send(backend, ctx, zctx):
    """ipykernel's in-process socket: ``list(map(zmq.Message, parts))``."""
    push = ctx.socket(zmtp.PUSH)
    pull = zctx.socket(zmq.PULL)
    push.bind("tcp://127.0.0.1:*")
    pull.connect(_bound(push))
    parts = list(map(zmtp.Message, [b"a", b"bc", b""]))
    assert [m.bytes for m in parts] == [b"a", b"bc", b""]
    push.send_multipart(parts)
    assert pull.recv_multipart() == [b"a", b"bc", b""]


def test_curve_keys_as_pyzmqs():
    # jupyter_client asks zmq.has("curve") first, then curve_keypair()
    assert zmtp.has("curve") is zmtp.curve.curve_available()
    public, secret = zmtp.curve_keypair()
    assert zmq.curve_public(secret) == public == zmtp.curve_public(secret)


@pytest.mark.parametrize("obj", [{"a": [1, 2.5, None, "é"]}, [], "s", 3])
def test_jsonapi_as_pyzmqs(obj):
    out = zmtp.utils.jsonapi.dumps(obj)
    assert out == zmq.utils.jsonapi.dumps(obj) and isinstance(out, bytes)
    assert zmtp.utils.jsonapi.loads(out) == zmq.utils.jsonapi.loads(out) == obj
    assert zmtp.utils.jsonapi.loads(out.decode()) == obj
    assert zmtp.utils.jsonapi.dumps(obj, sort_keys=True, indent=1) == zmq.utils.jsonapi.dumps(obj, sort_keys=True, indent=1)


# -- MessageTracker, beside pyzmq's


@pytest.mark.parametrize("lib", ["zmtp", "pyzmq"])
def test_message_tracker_as_pyzmqs(lib):
    z = zmtp if lib == "zmtp" else zmq
    done = z.MessageTracker()  # jupyter_client's Session.DONE
    assert done.done
    done.wait()
    done.wait(0)
    evt = threading.Event()
    pending = z.MessageTracker(evt)
    outer = z.MessageTracker(pending, z.MessageTracker())
    assert not pending.done and not outer.done
    t0 = time.monotonic()
    with pytest.raises(z.NotDone):
        pending.wait(0.05)
    assert time.monotonic() - t0 >= 0.04
    with pytest.raises(z.NotDone):
        outer.wait(0.01)
    threading.Timer(0.05, evt.set).start()
    outer.wait(DEADLINE_S)
    assert pending.done and outer.done
    assert len(outer.peers) == 2 and pending in outer.peers
    assert pending.events == {evt}
    with pytest.raises(TypeError):
        z.MessageTracker(b"not trackable")
    with pytest.raises(ValueError):
        z.MessageTracker(z.Frame(b"untracked"))


# -- PUBHandler / TopicLogger to a pyzmq SUB


def _receive_logged(logger, sub, emit, timeout=DEADLINE_S):
    """Emit (a PUB drops until the subscription has arrived) until the SUB
    receives a message; return the first one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        emit()
        if sub.poll(50):
            return sub.recv_multipart()
    raise AssertionError("no log record reached the SUB")


def _expected(record_args, root_topic=""):
    """What pyzmq's PUBHandler publishes for the same record (pyzmq's own
    handler on a socket that records instead of sending)."""

    class Recorder:
        sent = []
        context = None

        def send_multipart(self, parts):
            self.sent.append(parts)

    rec = Recorder()
    handler = zmq.log.handlers.PUBHandler.__new__(zmq.log.handlers.PUBHandler)
    logging.Handler.__init__(handler)
    zmq.log.handlers.PUBHandler.__init__(handler, zmq.Socket.__new__(zmq.Socket), root_topic=root_topic)
    handler.socket = rec
    handler.emit(logging.LogRecord(*record_args))
    return rec.sent[-1]


@pytest.mark.parametrize("binder", ["zmtp", "pyzmq"])
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_pubhandler_to_pyzmq_sub(transport, binder, backend, tmp_path, ctx, zctx):
    sub = zctx.socket(zmq.SUB)
    sub.subscribe(b"")
    if binder == "zmtp":
        handler = zmtp.log.handlers.PUBHandler(_endpoint(transport, tmp_path, "log"), context=ctx)
        sub.connect(_bound(handler.socket))
    else:
        sub.bind(_endpoint(transport, tmp_path, "log"))
        pub = ctx.socket(zmtp.PUB)
        pub.connect(_bound(sub))
        handler = zmtp.log.handlers.PUBHandler(pub)
        assert handler.ctx is ctx
    handler.root_topic = b"engine.0"  # bytes are decoded, as pyzmq
    assert handler.root_topic == "engine.0"
    log = logging.getLogger(f"zmtp-test-{transport}-{binder}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    try:
        first = _receive_logged(log, sub, lambda: log.info("hello %s", "world"))
        assert first == [b"engine.0.INFO", b"hello world\n"]
        # subtopics, the other levels' formats, as pyzmq's handler makes them
        while sub.poll(200):
            sub.recv_multipart()
        log.warning("kernel.shell::busy %d", 3)
        got = sub.recv_multipart()
        assert got[0] == b"engine.0.WARNING.kernel.shell"
        args = (log.name, logging.WARNING, __file__, 1, "kernel.shell::busy %d", (3,), None)
        want = _expected(args, "engine.0")
        assert want[0] == got[0]
        assert got[1].startswith(b"WARNING test_jupyter_names.py:") and got[1].endswith(b" - busy 3\n")
        assert want[1].split(b" - ", 1)[1] == got[1].split(b" - ", 1)[1]
        handler.setFormatter(logging.Formatter("%(levelname)s|%(message)s"))
        log.error("plain")
        assert sub.recv_multipart() == [b"engine.0.ERROR", b"ERROR|plain"]
    finally:
        log.removeHandler(handler)


def test_pubhandler_subclass_like_ipykernels(backend, ctx, zctx):
    """ipykernel.log.EnginePUBHandler: sets root_topic from an engine id."""

    class EnginePUBHandler(zmtp.log.handlers.PUBHandler):
        def __init__(self, engine, *args, **kwargs):
            zmtp.log.handlers.PUBHandler.__init__(self, *args, **kwargs)
            self.engine = engine

        @property
        def root_topic(self):
            return f"engine.{self.engine}" if isinstance(getattr(self, "engine", None), int) else "engine"

        @root_topic.setter
        def root_topic(self, value):
            pass

    pub = ctx.socket(zmtp.PUB)
    pub.bind("tcp://127.0.0.1:*")
    sub = zctx.socket(zmq.SUB)
    sub.subscribe(b"engine.7")
    sub.connect(_bound(pub))
    handler = EnginePUBHandler(7, pub)
    log = logging.getLogger("zmtp-test-engine")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        assert _receive_logged(log, sub, lambda: log.info("x")) == [b"engine.7.INFO", b"x\n"]
    finally:
        log.removeHandler(handler)


def test_topic_logger(backend, ctx, zctx):
    pub = ctx.socket(zmtp.PUB)
    pub.bind("tcp://127.0.0.1:*")
    sub = zctx.socket(zmq.SUB)
    sub.subscribe(b"")
    sub.connect(_bound(pub))
    handler = zmtp.log.handlers.PUBHandler(pub)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = zmtp.log.handlers.TopicLogger("zmtp-test-topics")
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    first = _receive_logged(log, sub, lambda: log.info("a.b", "n=%d", 1))
    assert first == [b"INFO.a.b", b"n=1"]
    while sub.poll(200):
        sub.recv_multipart()
    log.debug("d", "x")
    log.warning("w", "x")
    log.log(logging.ERROR, "e", "x")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("ex", "failed")
    got = [sub.recv_multipart() for _ in range(4)]
    assert [g[0] for g in got] == [b"DEBUG.d", b"WARNING.w", b"ERROR.e", b"ERROR.ex"]
    assert got[3][1].startswith(b"failed\nTraceback") and got[3][1].endswith(b"ValueError: boom")


# -- device


def _run_device(kind, front, back):
    def run():
        try:
            zmtp.device(kind, front, back)
        except zmtp.ContextTerminated:
            return "terminated"
        return "returned"

    return run


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_device_queue_between_pyzmq_peers(transport, backend, tmp_path, zctx, spawn):
    dctx = zmtp.Context()
    front = dctx.socket(zmtp.ROUTER)
    back = dctx.socket(zmtp.DEALER)
    front.bind(_endpoint(transport, tmp_path, "front"))
    back.bind(_endpoint(transport, tmp_path, "back"))
    fep, bep = _bound(front), _bound(back)  # before the device owns the sockets
    task = spawn(_run_device(zmtp.QUEUE, front, back))
    clients = [zctx.socket(zmq.REQ) for _ in range(3)]
    for c in clients:
        c.connect(fep)
    worker = zctx.socket(zmq.REP)
    worker.connect(bep)
    queue_rounds(clients, worker)
    dctx.term()
    assert task.result(DEADLINE_S) == "terminated"
    front.close()
    back.close()


def test_device_heartbeat_echo_like_ipykernel(backend, zctx, spawn):
    """ipykernel's Heartbeat: ``zmq.device(zmq.QUEUE, router, router)`` sends
    every ping back to whoever sent it."""
    dctx = zmtp.Context()
    hb = dctx.socket(zmtp.ROUTER)
    hb.bind("tcp://127.0.0.1:*")
    ep = _bound(hb)
    task = spawn(_run_device(zmtp.QUEUE, hb, hb))
    clients = [zctx.socket(zmq.REQ) for _ in range(2)]
    for c in clients:
        c.connect(ep)
    for n in range(50):
        for i, c in enumerate(clients):
            c.send(b"ping %d %d" % (i, n))
        for i, c in enumerate(clients):
            assert c.recv() == b"ping %d %d" % (i, n)
    dctx.term()
    assert task.result(DEADLINE_S) == "terminated"
    hb.close()


@pytest.mark.parametrize("kind", ["FORWARDER", "STREAMER"])
def test_device_forwarder_and_streamer(kind, backend, zctx, spawn):
    dctx = zmtp.Context()
    if kind == "FORWARDER":
        front, back = dctx.socket(zmtp.SUB), dctx.socket(zmtp.PUB)
        front.subscribe(b"")
        src, dst = zctx.socket(zmq.PUB), zctx.socket(zmq.SUB)
        dst.subscribe(b"")
    else:
        front, back = dctx.socket(zmtp.PULL), dctx.socket(zmtp.PUSH)
        src, dst = zctx.socket(zmq.PUSH), zctx.socket(zmq.PULL)
    front.bind("tcp://127.0.0.1:*")
    back.bind("tcp://127.0.0.1:*")
    fep, bep = _bound(front), _bound(back)
    task = spawn(_run_device(getattr(zmtp, kind), front, back))
    src.connect(fep)
    dst.connect(bep)
    deadline = time.monotonic() + DEADLINE_S
    got = None
    n = 0
    while got is None and time.monotonic() < deadline:  # PUB/SUB: until both links are up
        src.send_multipart([b"m", b"%d" % n])
        n += 1
        if dst.poll(50):
            got = dst.recv_multipart()
    assert got is not None and got[0] == b"m"
    dctx.term()
    assert task.result(DEADLINE_S) == "terminated"
    front.close()
    back.close()


def test_json_messages_through_a_shadow_like_session(backend, ctx, zctx):
    """jupyter_client's Session.send: ``zmq.Socket.shadow(s.underlying)``
    then send_multipart of JSON frames; recv through the original."""
    dealer = ctx.socket(zmtp.DEALER)
    router = zctx.socket(zmq.ROUTER)
    router.bind("tcp://127.0.0.1:*")
    dealer.connect(_bound(router))
    shadow = zmtp.Socket.shadow(dealer.underlying)
    shadow.send_multipart([b"<IDS|MSG>", zmtp.utils.jsonapi.dumps({"msg_type": "kernel_info_request"})])
    ident, *frames = router.recv_multipart()
    assert json.loads(frames[1]) == {"msg_type": "kernel_info_request"}
    router.send_multipart([ident, b"<IDS|MSG>", b"{}"])
    assert dealer.recv_multipart(copy=False)[1].bytes == b"{}"
    assert TIMEOUT_MS > 0
