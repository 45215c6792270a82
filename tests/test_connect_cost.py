"""Connection set-up cost (issue 19, connect_rate): connect, NULL handshake,
one REQ/REP round trip, close, repeated.

The owner's calls do the dial and the handshake themselves; the context's
progress thread is not woken for them (docs/performance.md, "Connection
set-up"): a new socket does not wake it, and a connect whose only need is a
set-up wakes it only if it would not look within its grace anyway.  Counted
with ``zmtp.io_stats()`` (process-wide: eventfd reads and writes, syscalls)
per cycle, upper bounds with margin, never times.  Both backends, tcp and
ipc, against a pyzmq REP (libzmq 4.3.5) and a zmtp REP.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict

import pytest

import zmtp
from zmtp import _zmtp
from helpers import DEADLINE_S, TIMEOUT_MS, fd_count, wait_for

zmq = pytest.importorskip("zmq")

CYCLES = 200
WARM = 20

#: eventfd operations (a wake is a write and the thread's read) per cycle.
#: Before the change: 8.7 measured (a wake at socket creation, one at the
#: first call while the thread slept, one at connect).  Now: 0.02 measured
#: on an idle thread; the worst case of a loaded machine (the thread sleeps
#: without a timeout between cycles and a wake finds it not yet run) is 4.
MAX_EVENTFD_PER_CYCLE = 4.5
#: syscalls of the cycle counted by io_stats (sendmsg, recv, other):
#: 2 sendmsg (greeting, then the rest + READY + request), 4 recv at most
#: (greeting, the rest, the reply, an EAGAIN), close and the dial.
MAX_IO_PER_CYCLE = 12


def _endpoint(transport: str, tmp_path: Any) -> str:
    return "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/rep"


def _serve(rep: Any, count: int, errors: list) -> threading.Thread:
    """A thread answering `count` requests on `rep` (pyzmq or zmtp), then closing it."""

    def run() -> None:
        try:
            for _ in range(count):
                rep.send(rep.recv())
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            rep.close(linger=0)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _cycles(ctx: Any, endpoint: str, count: int) -> None:
    for i in range(count):
        req = ctx.socket(zmtp.REQ)
        req.linger = 0
        req.rcvtimeo = TIMEOUT_MS
        req.sndtimeo = TIMEOUT_MS
        req.connect(endpoint)
        payload = b"%d" % i
        req.send(payload)
        assert req.recv() == payload
        req.close()


def _per_cycle(before: Dict[str, int], after: Dict[str, int], n: int) -> Dict[str, float]:
    return {k: (after[k] - before[k]) / n for k in after}


def _run(make_rep: Callable[[], Any], backend: str, transport: str, tmp_path: Any) -> Dict[str, float]:
    """WARM + CYCLES connect/round trip/close cycles against the REP
    `make_rep` binds; io_stats per counted cycle; checks every one was served
    and no descriptor leaked."""
    rep = make_rep()
    rep.bind(_endpoint(transport, tmp_path))
    endpoint = rep.last_endpoint.decode()
    errors: list = []
    server = _serve(rep, WARM + CYCLES, errors)
    ctx = zmtp.Context()
    try:
        _cycles(ctx, endpoint, WARM)
        fds = fd_count()
        before = zmtp.io_stats()
        _cycles(ctx, endpoint, CYCLES)
        after = zmtp.io_stats()
        server.join(TIMEOUT_MS / 1000)
        assert not server.is_alive() and not errors, errors
        # the peer closes its side of each connection on its own time (libzmq's
        # I/O thread, late under load), and those descriptors are this
        # process's too: wait for them, a leak stays
        wait_for(lambda: fd_count() <= fds, DEADLINE_S, "descriptors leaked by connect/close cycles")
    finally:
        ctx.destroy(linger=0)
    return _per_cycle(before, after, CYCLES)


def _check(cost: Dict[str, float]) -> None:
    assert cost["eventfd"] <= MAX_EVENTFD_PER_CYCLE, cost
    assert cost["sendmsg"] + cost["recv"] + cost["other"] <= MAX_IO_PER_CYCLE, cost


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_pyzmq_rep_serves_zmtp_reqs_that_connect_and_close(backend, transport, zctx, tmp_path):
    """A pyzmq REP serves 200 zmtp REQs that each connect, round trip and
    close: all served, no descriptor leaked, no progress-thread wake per cycle."""
    cost = _run(lambda: zctx.socket(zmq.REP), backend, transport, tmp_path)
    _check(cost)


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_zmtp_rep_serves_zmtp_reqs_that_connect_and_close(backend, transport, tmp_path):
    """The same against a zmtp REP in its own context (its owner blocked in
    recv() accepts and handshakes: no thread hop on that side either)."""
    server_ctx = zmtp.Context()
    try:
        cost = _run(lambda: server_ctx.socket(zmtp.REP), backend, transport, tmp_path)
    finally:
        server_ctx.destroy(linger=0)
    # io_stats is process-wide: both sides' syscalls are in it.
    assert cost["eventfd"] <= 2 * MAX_EVENTFD_PER_CYCLE, cost
    assert cost["sendmsg"] + cost["recv"] + cost["other"] <= 2 * MAX_IO_PER_CYCLE, cost


def test_handshake_completes_without_the_owner(backend, zctx):
    """A connect whose wake may be left to the thread's next look (the
    set-up rule) still completes in the background: a new zmtp PAIR (no
    call on it before) connects and then makes no call until the pyzmq PAIR
    can send to it, which libzmq allows only once the handshake is done (its
    pipe attached): only the progress thread can have completed it."""
    ctx = zmtp.Context()  # no default options: no call before connect()

    def sent(peer: Any) -> bool:
        try:
            peer.send(b"hello", flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    try:
        for i in range(20):
            peer = zctx.socket(zmq.PAIR)
            peer.bind("tcp://127.0.0.1:*")
            pair = ctx.socket(zmtp.PAIR)
            # Not a wait for correctness: it lets the thread go back to
            # sleeping with no timeout, so that only the connect's own wake
            # can bring it (a version without it fails here, checked once).
            time.sleep(0.01)
            # The C connect: Socket.connect's ZAP check makes calls (and
            # wakes) of its own before it.
            _zmtp.Socket.connect(pair, peer.last_endpoint.decode())
            wait_for(lambda: sent(peer), DEADLINE_S, f"handshake {i} completed by the progress thread")
            pair.rcvtimeo = TIMEOUT_MS
            assert pair.recv() == b"hello"
            pair.close(linger=0)
            peer.close(linger=0)
    finally:
        ctx.destroy(linger=0)


def test_connect_leaves_the_set_up_to_the_owner(backend, zctx):
    """The connect's own wake is skipped while the thread will look within
    its grace: the best of 5 batches of 40 cycles pays under 1.5 eventfd
    operations per cycle (before: 2, a wake and its read, every connect;
    0.02 measured).  Best of 5: a batch is only over the bound when most of
    its cycles took over 2 ms (the thread then sleeps without a timeout
    between cycles), which a loaded machine may do to one batch, not to all."""
    rep = zctx.socket(zmq.REP)
    rep.bind("tcp://127.0.0.1:*")
    endpoint = rep.last_endpoint.decode()
    errors: list = []
    server = _serve(rep, WARM + 5 * 40, errors)
    ctx = zmtp.Context()
    try:
        _cycles(ctx, endpoint, WARM)
        best = None
        for _ in range(5):
            before = zmtp.io_stats()
            _cycles(ctx, endpoint, 40)
            cost = _per_cycle(before, zmtp.io_stats(), 40)
            best = cost if best is None or cost["eventfd"] < best["eventfd"] else best
        server.join(TIMEOUT_MS / 1000)
        assert not server.is_alive() and not errors, errors
    finally:
        ctx.destroy(linger=0)
    assert best is not None and best["eventfd"] < 1.5, best
