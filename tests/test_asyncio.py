"""zmtp.asyncio against pyzmq 27.3 peers (pyzmq's own zmq.asyncio in the
same loop, or blocking pyzmq sockets in a thread) over tcp, ipc and inproc
(zmtp peers only), zmtp binding and pyzmq binding, on both backends.

Plain pytest functions: each runs its coroutine on a fresh loop (no
pytest-asyncio), bounded by ``DEADLINE_S``, once on asyncio's default loop
and once on uvloop (skipped, saying so, where uvloop is not installed).  The event-loop contract
(docs/asyncio.md) is checked directly: an already-queued message completes
without a loop round trip, a burst is served by one reader callback, no
wake-up is missed over 100 000 messages, and cancelled receives never take
a message.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import select
import socket as stdsocket
import tempfile
import threading
import time
from typing import Any, Awaitable, Callable, List, Optional, Tuple

import pytest

import zmtp
import zmtp.asyncio
from helpers import DEADLINE_S

zmq = pytest.importorskip("zmq")
import zmq.asyncio  # noqa: E402

TRANSPORTS = ["tcp", "ipc", "inproc"]
_names = iter(range(1 << 30))
#: the ipc:// files' folder, removed when the module's run ends
_IPC_DIR = tempfile.TemporaryDirectory(prefix="zmtp-aio-")


#: the loop factory of the running test (set by the ``event_loop_kind``
#: fixture): asyncio's default loop, or uvloop's
_loop_factory: List[Callable[[], asyncio.AbstractEventLoop]] = [asyncio.new_event_loop]


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request: Any) -> Any:
    """Every test runs on asyncio's default (selector) loop and on uvloop;
    the uvloop run skips, saying so, where uvloop is not installed."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed (pip install uvloop)")
        _loop_factory[0] = uvloop.new_event_loop
    else:
        _loop_factory[0] = asyncio.new_event_loop
    yield request.param
    _loop_factory[0] = asyncio.new_event_loop


def run(fn: Callable[[], Awaitable[Any]], timeout: float = DEADLINE_S * 2) -> Any:
    """asyncio.run(fn()) on the test's loop kind, with a deadline: a bug
    fails instead of hanging.  (``asyncio.run`` takes a loop factory only
    from Python 3.12 on; this does what it does: cancel what is left, finish
    async generators, close the loop.)"""
    loop = _loop_factory[0]()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(asyncio.wait_for(fn(), timeout))
    finally:
        try:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def endpoint(transport: str) -> str:
    """A fresh endpoint to bind (tcp: the kernel picks the port)."""
    n = next(_names)
    if transport == "tcp":
        return "tcp://127.0.0.1:*"
    if transport == "ipc":
        return f"ipc://{_IPC_DIR.name}/s{n}.ipc"
    return f"inproc://aio-{n}"


class Peers:
    """A zmtp.asyncio Context and its peer's (pyzmq's zmq.asyncio, or the
    same zmtp one for inproc), destroyed together."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.zctx = zmtp.asyncio.Context()
        self.zctx.linger = 0
        self.pctx: Any = self.zctx if transport == "inproc" else zmq.asyncio.Context()
        self.socks: List[Any] = []

    def pair(self, zkind: int, pkind: int, zmtp_binds: bool = True, hwm: Optional[int] = None) -> Tuple[Any, Any]:
        """(zmtp socket, peer socket), connected over the transport (with
        SNDHWM and RCVHWM ``hwm`` on both, if given)."""
        zs = self.zctx.socket(zkind)
        ps = self.pctx.socket(pkind)
        ps.linger = 0
        if hwm is not None:
            zs.hwm = ps.hwm = hwm
        self.socks += [zs, ps]
        binder, connecter = (zs, ps) if zmtp_binds else (ps, zs)
        binder.bind(endpoint(self.transport))
        connecter.connect(binder.last_endpoint.decode())
        return zs, ps

    def __enter__(self) -> "Peers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the sockets, destroy the contexts."""
        for s in self.socks:
            s.close(linger=0)
        if self.pctx is not self.zctx:
            self.pctx.destroy(linger=0)
        self.zctx.destroy(linger=0)


def peers_test(body: Callable[..., Awaitable[Any]]) -> Callable[..., None]:
    """Run ``body(peers, ...)`` in asyncio.run with a Peers for the
    transport, destroyed afterwards."""

    def test(backend: str, transport: str, zmtp_binds: bool) -> None:
        async def main() -> None:
            with Peers(transport) as peers:
                await body(peers, zmtp_binds)

        run(main)

    test.__name__ = body.__name__
    test.__doc__ = body.__doc__
    return pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zbind", "pbind"])(
        pytest.mark.parametrize("transport", TRANSPORTS)(test)
    )


# ---------------------------------------------------------------- every method


@peers_test
async def test_every_method_both_ways(peers: Peers, zmtp_binds: bool) -> None:
    """send/recv, multipart, copy=False, string, json, pyobj, serialized,
    recv_into and poll, zmtp -> peer and peer -> zmtp."""
    zs, ps = peers.pair(zmtp.DEALER, zmq.DEALER if peers.transport != "inproc" else zmtp.DEALER, zmtp_binds)
    await zs.send(b"one")
    assert await ps.recv() == b"one"
    await ps.send(b"two")
    assert await zs.recv() == b"two"

    await zs.send_multipart([b"a", b"", b"c" * 1000])
    assert await ps.recv_multipart() == [b"a", b"", b"c" * 1000]
    await ps.send_multipart([b"x", b"y"])
    assert await zs.recv_multipart() == [b"x", b"y"]

    await ps.send_multipart([b"f1", b"f2"])
    frames = await zs.recv_multipart(copy=False)
    assert [f.bytes for f in frames] == [b"f1", b"f2"]
    await ps.send(b"single")
    frame = await zs.recv(copy=False)
    assert frame.bytes == b"single" and not frame.more
    await zs.send(memoryview(b"nocopy"), copy=False)
    assert await ps.recv() == b"nocopy"

    await zs.send_string("héllo")
    assert await ps.recv_string() == "héllo"
    await ps.send_string("wörld", encoding="latin-1")
    assert await zs.recv_string(encoding="latin-1") == "wörld"

    await zs.send_json({"a": [1, 2]})
    assert await ps.recv_json() == {"a": [1, 2]}
    await ps.send_json({"b": None})
    assert await zs.recv_json() == {"b": None}

    await zs.send_pyobj((1, "x", b"y"))
    assert await ps.recv_pyobj() == (1, "x", b"y")
    await ps.send_pyobj({"k": 3.5})
    assert await zs.recv_pyobj() == {"k": 3.5}

    def ser(obj: Any) -> List[bytes]:
        return [b"hdr", json.dumps(obj).encode()]

    def de(frames: List[Any]) -> Any:
        return (bytes(frames[0]), json.loads(bytes(frames[1])))

    await zs.send_serialized([1, 2], ser)
    assert de(await ps.recv_multipart()) == (b"hdr", [1, 2])
    await ps.send_multipart(ser({"z": 1}))
    assert await zs.recv_serialized(de) == (b"hdr", {"z": 1})
    await ps.send_multipart(ser(7))
    assert await zs.recv_serialized(de, copy=False) == (b"hdr", 7)

    buf = bytearray(16)
    await ps.send(b"into")
    assert await zs.recv_into(buf) == 4 and bytes(buf[:4]) == b"into"

    assert await zs.poll(50) == 0
    assert await zs.poll(1000, zmtp.POLLOUT) == zmtp.POLLOUT
    await ps.send(b"p")
    assert await zs.poll(DEADLINE_S * 1000) == zmtp.POLLIN
    assert await zs.recv() == b"p"
    zs.close()
    with pytest.raises(zmtp.ZMQError):
        zs.poll()


@peers_test
async def test_push_pull_and_req_rep(peers: Peers, zmtp_binds: bool) -> None:
    """PUSH/PULL both ways and REQ/REP round trips with zmtp on either end."""
    kinds = zmq if peers.transport != "inproc" else zmtp
    push, pull = peers.pair(zmtp.PUSH, kinds.PULL, zmtp_binds)
    for i in range(100):
        await push.send(b"%d" % i)
    assert [await pull.recv() for _ in range(100)] == [b"%d" % i for i in range(100)]
    req, rep = peers.pair(zmtp.REQ, kinds.REP, zmtp_binds)

    async def server() -> None:
        for _ in range(20):
            await rep.send(b"re:" + await rep.recv())

    task = asyncio.ensure_future(server())
    for i in range(20):
        await req.send(b"%d" % i)
        assert await req.recv() == b"re:%d" % i
    await task


# ---------------------------------------------------------------- flags, timeouts


def test_dontwait_raises_again_at_once(backend: str) -> None:
    async def main() -> None:
        with zmtp.asyncio.Context() as ctx:
            pull = ctx.socket(zmtp.PULL)
            f = pull.recv(zmtp.DONTWAIT)
            assert f.done() and isinstance(f.exception(), zmtp.Again)
            f = pull.recv_multipart(zmtp.NOBLOCK)
            assert f.done() and isinstance(f.exception(), zmtp.Again)
            push = ctx.socket(zmtp.PUSH)  # no peer: a send would block
            f = push.send(b"x", zmtp.DONTWAIT)
            assert f.done() and isinstance(f.exception(), zmtp.Again)
            f = push.send_multipart([b"x", b"y"], zmtp.DONTWAIT)
            with pytest.raises(zmtp.Again):
                await f
            with pytest.raises(zmtp.Again):
                await pull.recv_string(zmtp.DONTWAIT)

    run(main)


def test_rcvtimeo_sndtimeo_raise_again(backend: str) -> None:
    async def main() -> None:
        with zmtp.asyncio.Context() as ctx:
            pull = ctx.socket(zmtp.PULL, rcvtimeo=100)
            push = ctx.socket(zmtp.PUSH, sndtimeo=100)
            t0 = time.monotonic()
            with pytest.raises(zmtp.Again):
                await pull.recv()
            with pytest.raises(zmtp.Again):
                await push.send(b"x")
            with pytest.raises(zmtp.Again):
                await pull.recv_json()
            assert time.monotonic() - t0 >= 0.29
            # the timed-out receive took nothing: the next one gets the message
            pull.bind("inproc://timeo")
            push.connect("inproc://timeo")
            await push.send(b"after")
            pull.rcvtimeo = -1
            assert await pull.recv() == b"after"
            assert not pull._recv_futures and not push._send_futures

    run(main)


def test_queued_message_completes_without_a_loop_round_trip(backend: str) -> None:
    async def main() -> None:
        with zmtp.asyncio.Context() as ctx:
            pull = ctx.socket(zmtp.PULL)
            pull.bind("inproc://queued")
            push = ctx.socket(zmtp.PUSH)
            push.connect("inproc://queued")
            await push.send_multipart([b"a", b"b"])
            await push.send(b"c")
            assert await pull.poll(DEADLINE_S * 1000) == zmtp.POLLIN
            f = pull.recv_multipart()
            assert f.done() and f.result() == [b"a", b"b"]
            f = pull.recv_string()
            assert f.done() and f.result() == "c"

    run(main)


@peers_test
async def test_sends_that_wait_for_room_complete_in_order(peers: Peers, zmtp_binds: bool) -> None:
    """Sends beyond SNDHWM wait (POLLOUT through the fd) and complete, in
    order, as the peer reads; none is lost or sent twice."""
    kinds = zmq if peers.transport != "inproc" else zmtp
    push, pull = peers.pair(zmtp.PUSH, kinds.PULL, zmtp_binds, hwm=5)
    assert await push.poll(DEADLINE_S * 1000, zmtp.POLLOUT) == zmtp.POLLOUT  # connected
    pad = b"." * 100_000  # more than the kernel's socket buffers hold
    n = 400
    futures = [push.send(b"%d:" % i + pad) for i in range(n)]
    await asyncio.sleep(0.05)
    assert not futures[-1].done()  # the queue is full: the last ones wait
    got = [await pull.recv() for _ in range(n)]
    await asyncio.gather(*futures)
    assert [g.split(b":")[0] for g in got] == [b"%d" % i for i in range(n)]
    assert not push._send_futures


@pytest.mark.parametrize("transport", ["tcp", "inproc"])
def test_cancel_racing_rcvtimeo(backend: str, transport: str) -> None:
    """Receives with a 1 ms RCVTIMEO, some cancelled, while messages trickle
    in: each message is received exactly once."""
    N = 2000

    async def main() -> None:
        with Peers(transport) as peers:
            zs, ps = peers.pair(zmtp.PULL, zmq.PUSH if transport != "inproc" else zmtp.PUSH)
            zs.rcvtimeo = 1
            got: List[bytes] = []
            timeouts = 0
            sent = 0
            i = 0
            while len(got) < N:
                if sent < N and i % 2 == 0:
                    await ps.send(b"%d" % sent)
                    sent += 1
                f = zs.recv()
                if i % 5 == 0:
                    await asyncio.sleep(0)
                    if f.cancel():
                        i += 1
                        continue
                try:
                    got.append(await f)
                except zmtp.Again:
                    timeouts += 1
                i += 1
            assert got == [b"%d" % k for k in range(N)]
            assert isinstance(zs.recv(zmtp.DONTWAIT).exception(), zmtp.Again)

    run(main)


def test_track_returns_a_done_tracker(backend: str) -> None:
    """send(copy=False, track=True) resolves to a done MessageTracker (zmtp copied)."""
    async def main() -> None:
        with zmtp.asyncio.Context() as ctx:
            push, pull = ctx.socket(zmtp.PUSH), ctx.socket(zmtp.PULL)
            push.bind("inproc://track-async")
            pull.connect("inproc://track-async")
            tracker = await push.send(b"x", copy=False, track=True)
            assert tracker is zmtp._FINISHED_TRACKER and tracker.done
            assert await pull.recv() == b"x"
            push.close(linger=0)
            pull.close(linger=0)

    run(main)


# ---------------------------------------------------------------- Poller


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_poller(backend: str, transport: str) -> None:
    async def main() -> None:
        peers = Peers(transport)
        a, pa = peers.pair(zmtp.PULL, zmq.PUSH if transport != "inproc" else zmtp.PUSH)
        b, pb = peers.pair(zmtp.PULL, zmq.PUSH if transport != "inproc" else zmtp.PUSH)
        plain_ctx = zmtp.Context()
        plain = plain_ctx.socket(zmtp.PULL)
        plain.bind("inproc://plain")
        plain_push = plain_ctx.socket(zmtp.PUSH)
        plain_push.connect("inproc://plain")
        r, w = stdsocket.socketpair()
        try:
            poller = zmtp.asyncio.Poller()
            poller.register(a, zmtp.POLLIN)
            poller.register(b, zmtp.POLLIN)
            poller.register(plain, zmtp.POLLIN)
            poller.register(r, zmtp.POLLIN)
            assert await poller.poll(50) == []
            assert await poller.poll(0) == []
            waiting = poller.poll()
            await asyncio.sleep(0)
            assert not waiting.done()
            await pb.send(b"to b")
            assert await waiting == [(b, zmtp.POLLIN)]
            assert await b.recv() == b"to b"
            w.send(b"!")
            assert await poller.poll(DEADLINE_S * 1000) == [(r.fileno(), zmtp.POLLIN)]
            r.recv(1)
            plain_push.send(b"plain")
            assert await poller.poll(DEADLINE_S * 1000) == [(plain, zmtp.POLLIN)]
            assert plain.recv() == b"plain"
            await pa.send(b"to a")
            assert await poller.poll(DEADLINE_S * 1000) == [(a, zmtp.POLLIN)]
            assert await a.recv() == b"to a"
            pending = poller.poll()
            pending.cancel()
            await asyncio.sleep(0)
            assert not a._watchers and not b._watchers
            # a socket ready for what nobody waits for (a DEALER is writable)
            # wakes no busy loop: a few reader callbacks at most
            d, pd = peers.pair(zmtp.DEALER, zmq.DEALER if transport != "inproc" else zmtp.DEALER)
            await d.send(b"hello")
            assert await pd.recv() == b"hello"
            calls = []
            real = d._handle_events
            d._handle_events = lambda: (calls.append(1), real())
            only_in = zmtp.asyncio.Poller()
            only_in.register(d, zmtp.POLLIN)
            waiting = only_in.poll(200)
            assert d.events == zmtp.POLLOUT  # a call during the poll: it looks again, once
            assert await waiting == []
            waiting = d.poll(200)
            assert d.events == zmtp.POLLOUT
            assert await waiting == 0
            assert len(calls) < 10, len(calls)
            out = zmtp.asyncio.Poller()
            out.register(a, zmtp.POLLIN | zmtp.POLLOUT)
            out.register(w, zmtp.POLLOUT)
            assert await out.poll(0) == [(w.fileno(), zmtp.POLLOUT)]  # a PULL is never writable
        finally:
            r.close()
            w.close()
            plain_ctx.destroy(linger=0)
            peers.close()

    run(main)


# ---------------------------------------------------------------- cancellation


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_before_a_message_arrives(backend: str, transport: str) -> None:
    async def main() -> None:
        with Peers(transport) as peers:
            zs, ps = peers.pair(zmtp.PULL, zmq.PUSH if transport != "inproc" else zmtp.PUSH)
            for make in (zs.recv, zs.recv_multipart, zs.recv_string, zs.recv_json, lambda: zs.poll()):
                f = make()
                await asyncio.sleep(0)
                f.cancel()
                for _ in range(3):  # a decoded future's cancel reaches its recv one turn later
                    await asyncio.sleep(0)
                assert not zs._recv_futures and not zs._watchers
            await ps.send_multipart([b"kept", b"whole"])
            assert await zs.recv_multipart() == [b"kept", b"whole"]

    run(main)


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_cancel_while_a_multipart_message_arrives(backend: str, transport: str) -> None:
    """A pyzmq peer writes frame 1 (libzmq puts it on the wire at once),
    the receive is cancelled, then frame 2 follows: the next receive gets
    the whole message, nothing half-taken."""
    async def main() -> None:
        zctx = zmtp.asyncio.Context()
        pctx = zmq.Context()
        step = threading.Event()
        try:
            pull = zctx.socket(zmtp.PULL)
            pull.bind(endpoint(transport))
            push = pctx.socket(zmq.PUSH)
            push.linger = 0
            push.connect(pull.last_endpoint.decode())

            def sender() -> None:
                for i in range(3):
                    push.send(b"first %d" % i, zmq.SNDMORE)
                    step.wait(DEADLINE_S)
                    step.clear()
                    push.send(b"second %d" % i)

            t = threading.Thread(target=sender, daemon=True)
            t.start()
            for i in range(3):
                f = pull.recv_multipart()
                # frame 1 is on its way: give the progress thread time to read it
                deadline = time.monotonic() + 0.05
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
                assert not f.done()  # never a partial message
                f.cancel()
                await asyncio.sleep(0)
                step.set()
                assert await pull.recv_multipart() == [b"first %d" % i, b"second %d" % i]
            t.join(DEADLINE_S)
            assert pull.recv(zmtp.DONTWAIT).exception() is not None
        finally:
            step.set()
            zctx.destroy(linger=0)
            pctx.destroy(linger=0)

    run(main)


@pytest.mark.parametrize("transport", ["tcp", "inproc"])
def test_10000_cancelled_receives_lose_and_duplicate_nothing(backend: str, transport: str) -> None:
    N = 10_000

    async def main() -> None:
        with Peers(transport) as peers:
            zs, ps = peers.pair(zmtp.PULL, zmq.PUSH if transport != "inproc" else zmtp.PUSH)
            got: List[bytes] = []
            cancelled = 0
            for i in range(N):
                f = zs.recv()
                await ps.send(b"%d" % i)
                if i % 3:
                    await asyncio.sleep(0)  # sometimes the message lands first
                if f.cancel():
                    cancelled += 1
                else:
                    got.append(f.result())
            while len(got) < N:
                got.append(await zs.recv())
            assert got == [b"%d" % i for i in range(N)]  # each once, in order
            assert cancelled > 0
            assert isinstance(zs.recv(zmtp.DONTWAIT).exception(), zmtp.Again)
            assert not zs._recv_futures

    run(main)


# ---------------------------------------------------------------- the event-loop contract


def test_a_burst_is_served_by_one_reader_callback(backend: str) -> None:
    """100 receives wait; a blocking thread queues 100 messages while the
    loop is held; one reader callback completes them all (pyzmq's takes
    one callback per message)."""
    async def main() -> None:
        with zmtp.asyncio.Context() as ctx:
            pull = ctx.socket(zmtp.PULL)
            pull.bind("inproc://burst")
            calls = []
            real = pull._handle_events

            def counting() -> None:
                calls.append(1)
                real()

            pull._handle_events = counting
            futures = [pull.recv() for _ in range(100)]
            await asyncio.sleep(0)  # the look that queueing schedules (it finds nothing)
            calls.clear()
            push = ctx.socket(zmtp.PUSH)
            push.connect("inproc://burst")
            # Hold the loop while the 100 messages are queued, and until the
            # socket's fd says so.
            for i in range(100):
                zmtp.Socket.send(push, b"%d" % i)
            assert select.select([pull._fd], [], [], DEADLINE_S)[0]
            results = await asyncio.gather(*futures)
            assert results == [b"%d" % i for i in range(100)]
            assert len(calls) == 1, len(calls)

    run(main)


@pytest.mark.parametrize("transport", ["tcp", "inproc"])
@pytest.mark.parametrize("between", ["recv", "events", "send", "poll"])
def test_a_call_between_the_signal_and_the_callback_loses_no_wakeup(backend: str, between: str, transport: str) -> None:
    """The fd has fired for a waiting receive; before the loop runs the
    reader, another call on the socket consumes the edge (a second recv(),
    an EVENTS read, a send, a poll()): the waiting receive still completes."""
    async def main() -> None:
        zctx = zmtp.asyncio.Context()
        pctx = zmq.Context()
        try:
            a = zctx.socket(zmtp.DEALER)
            a.bind(endpoint(transport))
            if transport == "inproc":
                b = zctx.socket(zmtp.DEALER)
                send = lambda data: zmtp.Socket.send(b, data)  # noqa: E731 (blocking, outside the loop)
            else:
                b = pctx.socket(zmq.DEALER)
                b.linger = 0
                send = b.send
            b.connect(a.last_endpoint.decode())
            first = a.recv()
            await asyncio.sleep(0)
            send(b"m1")
            # the loop is held: the fd fires (the progress thread read m1)
            assert select.select([a._fd], [], [], DEADLINE_S)[0]
            other: Any = None
            if between == "recv":
                other = a.recv()
            elif between == "events":
                assert a.events & zmtp.POLLIN
            elif between == "send":
                await a.send(b"back")
            else:
                other = a.poll(DEADLINE_S * 1000)
            assert await asyncio.wait_for(first, DEADLINE_S) == b"m1"
            if between == "recv":
                send(b"m2")
                assert await asyncio.wait_for(other, DEADLINE_S) == b"m2"
            elif other is not None:
                other.cancel()
        finally:
            zctx.destroy(linger=0)
            pctx.destroy(linger=0)

    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zbind", "pbind"])
def test_burst_of_100000_with_no_missed_wakeup(backend: str, transport: str, zmtp_binds: bool) -> None:
    N = 100_000

    async def main() -> None:
        zctx = zmtp.asyncio.Context()
        pctx: Any = zctx if transport == "inproc" else zmq.Context()
        try:
            pull = zctx.socket(zmtp.PULL)
            push = pctx.socket(zmtp.PUSH if transport == "inproc" else zmq.PUSH)
            push.linger = 0
            if zmtp_binds:
                pull.bind(endpoint(transport))
                push.connect(pull.last_endpoint.decode())
            else:
                push.bind(endpoint(transport))
                pull.connect(push.last_endpoint.decode())
            send = zmtp.Socket.send if transport == "inproc" else push.send

            def sender() -> None:
                for i in range(N):
                    send(push, b"%d" % i) if transport == "inproc" else send(b"%d" % i)

            t = threading.Thread(target=sender, daemon=True)
            t.start()
            count = 0
            while count < N:
                assert await pull.recv() == b"%d" % count
                count += 1
            t.join(DEADLINE_S)
        finally:
            zctx.destroy(linger=0)
            if pctx is not zctx:
                pctx.destroy(linger=0)

    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_many_sockets_on_one_loop(backend: str, transport: str) -> None:
    async def main() -> None:
        with Peers(transport) as peers:
            pairs = [
                peers.pair(zmtp.PULL, zmq.PUSH if transport != "inproc" else zmtp.PUSH, zmtp_binds=bool(i % 2))
                for i in range(50)
            ]

            async def receive(s: Any) -> List[bytes]:
                return [await s.recv() for _ in range(20)]

            tasks = [asyncio.ensure_future(receive(zs)) for zs, _ in pairs]
            for j in range(20):
                for i, (_, ps) in enumerate(pairs):
                    await ps.send(b"%d:%d" % (i, j))
            results = await asyncio.gather(*tasks)
            assert results == [[b"%d:%d" % (i, j) for j in range(20)] for i in range(50)]

    run(main)


# ---------------------------------------------------------------- close, term, destroy


def test_close_cancels_pending_futures(backend: str) -> None:
    async def main() -> None:
        with zmtp.asyncio.Context() as ctx:
            pull = ctx.socket(zmtp.PULL)
            push = ctx.socket(zmtp.PUSH)
            receives = [pull.recv(), pull.recv_multipart(), pull.recv_json(), pull.poll()]
            sends = [push.send(b"x"), push.send_multipart([b"y"])]
            await asyncio.sleep(0)
            assert not any(f.done() for f in receives + sends)
            pull.close()
            push.close()
            await asyncio.sleep(0)  # a decoded future follows its recv one turn later
            assert all(f.cancelled() for f in receives + sends)
            assert pull.closed and push.closed

    run(main)


def test_term_fails_pending_futures_with_context_terminated(backend: str) -> None:
    async def main() -> None:
        ctx = zmtp.asyncio.Context()
        pull = ctx.socket(zmtp.PULL, linger=0)
        push = ctx.socket(zmtp.PUSH, linger=0)
        receives = [pull.recv(), pull.recv_multipart(), pull.recv_string(), pull.poll()]
        send = push.send(b"x")
        await asyncio.sleep(0)
        ctx.term()
        for f in receives + [send]:
            with pytest.raises(zmtp.ContextTerminated):
                await f
        with pytest.raises(zmtp.ContextTerminated):
            await pull.recv()
        pull.close()
        push.close()

    run(main)


def test_term_from_another_thread_fails_pending_futures(backend: str) -> None:
    async def main() -> None:
        ctx = zmtp.asyncio.Context()
        pull = ctx.socket(zmtp.PULL, linger=0)
        f = pull.recv()
        await asyncio.sleep(0)
        t = threading.Thread(target=ctx.term)
        t.start()
        with pytest.raises(zmtp.ContextTerminated):
            await f
        t.join(DEADLINE_S)
        pull.close()

    run(main)


def test_destroy_cancels_pending_futures(backend: str) -> None:
    async def main() -> None:
        ctx = zmtp.asyncio.Context()
        pull = ctx.socket(zmtp.PULL)
        f = pull.recv()
        await asyncio.sleep(0)
        ctx.destroy(linger=0)
        assert f.cancelled() and pull.closed

    run(main)


# ---------------------------------------------------------------- Context, from_socket


def test_context_instance_and_socket_class() -> None:
    inst = zmtp.asyncio.Context.instance()
    assert isinstance(inst, zmtp.asyncio.Context)
    assert zmtp.asyncio.Context.instance() is inst
    blocking = zmtp.Context.instance()
    assert not isinstance(blocking, zmtp.asyncio.Context)
    s = inst.socket(zmtp.PAIR)
    assert isinstance(s, zmtp.asyncio.Socket) and isinstance(s, zmtp.Socket)
    s.close()
    inst.term()
    assert zmtp.asyncio.Context.instance() is not inst
    zmtp.asyncio.Context.instance().term()


def test_from_socket_and_from_context(backend: str) -> None:
    """A blocking socket and an asyncio one share a socket (pyzmq's
    from_socket), and an asyncio context wraps a blocking one
    (from_context)."""
    ctx = zmtp.Context()
    try:
        blocking = ctx.socket(zmtp.PULL)
        blocking.bind("inproc://from-socket")
        push = ctx.socket(zmtp.PUSH)
        push.connect("inproc://from-socket")

        async def main() -> None:
            actx = zmtp.asyncio.Context.from_context(ctx)
            assert isinstance(actx, zmtp.asyncio.Context)
            made = actx.socket(zmtp.PAIR)
            assert isinstance(made, zmtp.asyncio.Socket)
            made.close()
            a = zmtp.asyncio.Socket.from_socket(blocking)
            f = a.recv()
            await asyncio.sleep(0)
            push.send(b"shared")
            assert await f == b"shared"
            push.send(b"again")
            assert blocking.recv() == b"again"

        run(main)
    finally:
        ctx.destroy(linger=0)


def test_socket_used_under_successive_loops(backend: str) -> None:
    ctx = zmtp.asyncio.Context()
    try:
        pull = ctx.socket(zmtp.PULL)
        pull.bind("inproc://loops")
        push = ctx.socket(zmtp.PUSH)
        push.connect("inproc://loops")
        for i in range(3):
            async def main() -> None:
                f = pull.recv()
                await asyncio.sleep(0)
                await push.send(b"%d" % i)
                assert await f == b"%d" % i
                pull.recv()  # left waiting when the loop ends: takes nothing

            run(main)
        zmtp.Socket.send(push, b"last")  # blocking: no loop here

        async def last() -> None:
            assert await pull.recv() == b"last"

        run(last)
    finally:
        ctx.destroy(linger=0)
