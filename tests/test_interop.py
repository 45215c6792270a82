"""Interoperability: zmtp against libzmq (pyzmq) and against itself.

Every valid socket pair, with either side bound, over tcp and ipc, on both
backends, with zmtp in each role.  Role "a" starts the conversation and role
"b" answers (echoes), except PUSH-PULL where a only sends.  Each side runs in
its own thread (the zmtp side in the test's backend thread), since a zmtp
socket only makes progress while its thread is inside a zmtp call.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import zmq

import zmtp


TIMEOUT_MS = 5000
MiB = 1 << 20
SIZES = [0, 1, 255, 256, 65535, 65536, 4 * MiB]
_BLOB = os.urandom(4 * MiB)

SIZED = [[_BLOB[:n]] for n in SIZES]
MULTI = [[b"" if j % 3 == 1 else b"%d.%d" % (k, j) for j in range(k)] for k in range(1, 11)]
MULTI.append([b"head", _BLOB[:70000], b"", _BLOB[:300], b"tail"])
N_BULK = 10_000
N_BULK_REQ = 10_000  # REQ is lock-step: one round trip per message
N_HUGE = 100_000
WINDOW = 200

A_ID = b"side-a"
B_ID = b"side-b"

# name: (type of a, type of b)
PAIRS = {
    "REQ-REP": ("REQ", "REP"),
    "REQ-ROUTER": ("REQ", "ROUTER"),
    "DEALER-REP": ("DEALER", "REP"),
    "DEALER-ROUTER": ("DEALER", "ROUTER"),
    "DEALER-DEALER": ("DEALER", "DEALER"),
    "ROUTER-ROUTER": ("ROUTER", "ROUTER"),
    "PUSH-PULL": ("PUSH", "PULL"),
    "PAIR-PAIR": ("PAIR", "PAIR"),
}

IMPLS = [("zmtp", "pyzmq"), ("pyzmq", "zmtp"), ("zmtp", "zmtp")]


def _cases():
    for pair in PAIRS:
        for impl_a, impl_b in IMPLS:
            # ROUTER-ROUTER: the connecter must speak first (it alone knows
            # the other's id), so b always binds.
            binders = ["b"] if pair == "ROUTER-ROUTER" else ["a", "b"]
            for binder in binders:
                yield pytest.param(pair, impl_a, impl_b, binder,
                                   id=f"{pair}-a_{impl_a}-b_{impl_b}-bind_{binder}")


def plan(pair: str, n_bulk: int):
    """The messages a sends, in order (lists of frames)."""
    msgs = list(SIZED) + list(MULTI)
    msgs += [[b"%d" % i] for i in range(n_bulk)]
    return msgs


def make_socket(impl, kind, zctx, ctx):
    if impl == "zmtp":
        return ctx.socket(getattr(zmtp, kind))
    return zctx.socket(getattr(zmq, kind))


def endpoint(transport, tmp_path, tag):
    if transport == "tcp":
        return "tcp://127.0.0.1:*"
    return f"ipc://{tmp_path}/{tag}.ipc"


def close(sock):
    # zmtp flushes what is queued during close (LINGER); pyzmq's I/O thread
    # does it in the background.
    sock.close(linger=TIMEOUT_MS)


def hold_until(sock, event, seconds=30.0):
    """Keep `sock` open (and, for zmtp, driven) until the other side says it
    has everything.  A sender must not close first: libzmq drops what is
    still in its kernel buffer when an ipc peer hangs up while its RCVHWM
    has stopped reading (pyzmq to pyzmq loses the tail the same way)."""
    deadline = time.monotonic() + seconds
    while not event.is_set():
        if time.monotonic() > deadline:
            raise AssertionError("the other side never finished")
        sock.poll(10, 0)


# ---------------------------------------------------------------- the sides


def wrap(pair, parts):
    """What a sends for the message `parts`."""
    if pair == "DEALER-REP":
        return [b""] + parts
    if pair == "ROUTER-ROUTER":
        return [B_ID] + parts
    return parts


def unwrap(pair, reply):
    if pair == "DEALER-REP":
        assert reply[0] == b"", reply[:3]
        return reply[1:]
    if pair == "ROUTER-ROUTER":
        assert reply[0] == B_ID, reply[:3]
        return reply[1:]
    return reply


def send_first(sock, frames):
    """ROUTER-ROUTER: the route to b exists once the handshake is done;
    until then a mandatory ROUTER says EHOSTUNREACH."""
    for _ in range(500):
        try:
            sock.send_multipart(frames)
            return
        except (zmq.ZMQError, zmtp.ZMQError) as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            sock.poll(10, zmq.POLLIN)  # drives a zmtp socket's I/O
    raise AssertionError("no route to b after 5 s")


def side_a(sock, pair, msgs, done):
    if pair == "PUSH-PULL":
        for m in msgs:
            sock.send_multipart(m)
        hold_until(sock, done)
        close(sock)
        return
    window = 1 if pair.startswith("REQ") else WINDOW
    i = 0
    first = True
    while i < len(msgs):
        batch = msgs[i:i + window]
        for m in batch:
            if first and pair == "ROUTER-ROUTER":
                send_first(sock, wrap(pair, m))
                first = False
            else:
                sock.send_multipart(wrap(pair, m))
        for k, m in enumerate(batch):
            got = unwrap(pair, sock.recv_multipart())
            if got != m:
                raise AssertionError(
                    f"reply {i + k}: {[len(f) for f in got]} frames/sizes, "
                    f"expected {[len(f) for f in m]} ({got[:2]!r} vs {m[:2]!r})"[:400])
        i += len(batch)
    done.set()
    close(sock)


def side_b(sock, pair, msgs, b_type, done):
    if pair == "PUSH-PULL":
        for i, m in enumerate(msgs):
            got = sock.recv_multipart()
            if got != m:
                raise AssertionError(
                    f"message {i}: {[len(f) for f in got]}, expected {[len(f) for f in m]}"[:400])
        done.set()
        close(sock)
        return
    for i in range(len(msgs)):
        got = sock.recv_multipart()
        if b_type == "ROUTER":
            # the peer's id first: the one a set, then (REQ) the delimiter
            assert got[0] == A_ID, (i, got[:3])
            if pair == "REQ-ROUTER":
                assert got[1] == b"", (i, got[:3])
        sock.send_multipart(got)
    hold_until(sock, done)
    close(sock)


def run_pair(pair, impl_a, impl_b, binder, transport, tmp_path, zctx, ctx, spawn, n_bulk):
    type_a, type_b = PAIRS[pair]
    a = make_socket(impl_a, type_a, zctx, ctx)
    b = make_socket(impl_b, type_b, zctx, ctx)
    if type_a in ("REQ", "DEALER", "ROUTER"):
        a.setsockopt(zmq.ROUTING_ID, A_ID)
    if type_b in ("DEALER", "ROUTER"):
        b.setsockopt(zmq.ROUTING_ID, B_ID)
    if pair == "ROUTER-ROUTER":
        a.setsockopt(zmq.ROUTER_MANDATORY, 1)
    for s in (a, b):
        s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
        s.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
    bound, connecting = (a, b) if binder == "a" else (b, a)
    bound.bind(endpoint(transport, tmp_path, "ep"))
    connecting.connect(bound.getsockopt(zmq.LAST_ENDPOINT).decode())

    msgs = plan(pair, n_bulk)
    done = threading.Event()
    run_a = lambda: side_a(a, pair, msgs, done)  # noqa: E731
    run_b = lambda: side_b(b, pair, msgs, type_b, done)  # noqa: E731
    # The zmtp side runs here (the backend thread), the other in a helper.
    if impl_a == "zmtp":
        helper = spawn(run_b)
        run_a()
    else:
        helper = spawn(run_a)
        run_b()
    helper.result(timeout=30)


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("pair, impl_a, impl_b, binder", list(_cases()))
def test_pair(pair, impl_a, impl_b, binder, transport, backend, tmp_path, zctx, ctx, spawn):
    n = N_BULK_REQ if pair.startswith("REQ") else N_BULK
    run_pair(pair, impl_a, impl_b, binder, transport, tmp_path, zctx, ctx, spawn, n)


@pytest.mark.parametrize("impl_a, impl_b", [("pyzmq", "zmtp"), ("zmtp", "pyzmq")],
                         ids=["pyzmq_push-zmtp_pull", "zmtp_push-pyzmq_pull"])
def test_push_pull_100k(impl_a, impl_b, backend, tmp_path, zctx, ctx, spawn):
    """100k small messages through PUSH-PULL: none lost, none reordered."""
    type_a, type_b = "PUSH", "PULL"
    a = make_socket(impl_a, type_a, zctx, ctx)
    b = make_socket(impl_b, type_b, zctx, ctx)
    for s in (a, b):
        s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
        s.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
    b.bind("tcp://127.0.0.1:*")
    a.connect(b.getsockopt(zmq.LAST_ENDPOINT).decode())

    done = threading.Event()

    def send_all():
        for i in range(N_HUGE):
            a.send(b"%d" % i)
        hold_until(a, done)
        close(a)

    def recv_all():
        for i in range(N_HUGE):
            got = b.recv()
            if got != b"%d" % i:
                raise AssertionError(f"message {i}: got {got!r}")
        done.set()
        close(b)

    if impl_a == "zmtp":
        helper = spawn(recv_all)
        send_all()
    else:
        helper = spawn(send_all)
        recv_all()
    helper.result(timeout=30)
