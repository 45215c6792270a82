"""The rest of pyzmq's blocking API (issue 8 item 2), each item checked
against the installed pyzmq: same call, same result or exception class.
docs/migrating-from-pyzmq.md has the audit table; the last tests run short
pyzmq-style scripts under both ``import zmq`` and ``import zmtp as zmq`` and
compare their output."""

from __future__ import annotations

import enum
import errno
import gc
import inspect
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings

import pytest
import zmq

import zmtp
import helpers
from helpers import TIMEOUT_MS, psock, wait_for, zsock


def exc_class(fn, *args, **kwargs):
    """The class of the exception fn raises (None if it returns)."""
    try:
        fn(*args, **kwargs)
    except Exception as exc:
        return type(exc)
    return None


def same_failure(zmtp_call, zmq_call):
    """Both raise; zmtp's exception is a pyzmq-named class of the same kind."""
    a, b = exc_class(zmtp_call), exc_class(zmq_call)
    assert a is not None and b is not None, (a, b)
    assert a.__name__ == b.__name__, (a, b)


# ================================================== versions, has, strerror


def test_versions():
    assert zmtp.zmq_version() == "4.3.5" == zmq.zmq_version()
    assert zmtp.zmq_version_info() == (4, 3, 5) == zmq.zmq_version_info()
    assert zmtp.pyzmq_version() == ".".join(map(str, zmtp.pyzmq_version_info()))
    assert zmtp.pyzmq_version_info()[:2] == zmq.pyzmq_version_info()[:2]
    assert isinstance(zmtp.__version__, str) and zmtp.__version__.count(".") == 2
    for name in ("zmq_version", "zmq_version_info", "pyzmq_version", "pyzmq_version_info", "has", "strerror"):
        assert inspect.signature(getattr(zmtp, name)).parameters.keys() == inspect.signature(getattr(zmq, name)).parameters.keys()


def test_has():
    assert zmtp.has("ipc") is True and zmq.has("ipc") is True
    assert zmtp.has("inproc") is True
    for name in ("pgm", "tipc", "norm", "gssapi", "draft"):
        assert zmtp.has(name) is False, name
    assert zmtp.has("curve") is zmq.has("curve") is True  # libsodium is on this machine (test_curve.py)
    assert zmtp.has("no-such-thing") is False and zmq.has("no-such-thing") is False
    # Where libzmq says False, zmtp does too.
    for name in ("pgm", "norm", "gssapi", "draft"):
        assert zmq.has(name) is False


@pytest.mark.parametrize("num", [errno.EAGAIN, errno.EINVAL, errno.EHOSTUNREACH, errno.ENOTSOCK, errno.EADDRINUSE,
                                 zmq.EFSM, zmq.ETERM, zmq.ENOCOMPATPROTO, zmq.EMTHREAD, 99999])
def test_strerror_matches_pyzmq(num):
    assert zmtp.strerror(num) == zmq.strerror(num)


def test_ipc_path_max_len(tmp_path):
    assert zmtp.IPC_PATH_MAX_LEN == zmq.IPC_PATH_MAX_LEN
    base = str(tmp_path) + "/"
    longest = base + "x" * (zmtp.IPC_PATH_MAX_LEN - len(base))
    with zmtp.Context() as c:
        s = c.socket(zmtp.PULL)
        s.bind("ipc://" + longest)
        with pytest.raises(zmtp.ZMQError) as info:
            s.bind("ipc://" + longest + "y")
        assert info.value.errno == errno.ENAMETOOLONG
        s.close(linger=0)


# ======================================================= enums


@pytest.mark.parametrize("name", ["SocketType", "SocketOption", "Flag", "PollEvent", "Event", "Errno",
                                  "MessageOption", "ContextOption"])
def test_enums_have_libzmq_numbers(name):
    ours, theirs = getattr(zmtp, name), getattr(zmq, name)
    base = enum.IntFlag if issubclass(theirs, enum.IntFlag) else enum.IntEnum
    assert issubclass(ours, base), (ours, base)
    for member, value in ours.__members__.items():
        if name == "Errno" and member == "EBUSY":  # zmtp's own (two threads on one socket)
            continue
        assert member in theirs.__members__, member
        assert int(value) == int(theirs[member]), member
        if hasattr(zmq, member) and hasattr(zmtp, member):
            assert int(getattr(zmtp, member)) == int(getattr(zmq, member)), member


def test_module_constants_match():
    for name in ("MORE", "SRCFD", "SHARED", "POLLPRI", "IO_THREADS", "MAX_SOCKETS", "SOCKET_LIMIT", "MAX_MSGSZ",
                 "EFSM", "ETERM", "EAGAIN", "DONTWAIT", "NOBLOCK", "SNDMORE", "POLLIN", "POLLOUT", "POLLERR"):
        assert int(getattr(zmtp, name)) == int(getattr(zmq, name)), name


# ======================================================= recv_into


def test_recv_into_signature():
    with zmtp.Context() as c, zmq.Context() as zc:
        s, z = c.socket(zmtp.PULL), zc.socket(zmq.PULL)
        assert str(inspect.signature(s.recv_into)) == str(inspect.signature(z.recv_into))
        s.close()
        z.close()


def test_recv_into(backend, ctx, zctx):
    pull = zsock(ctx, zmtp.PULL)
    pull.bind("tcp://127.0.0.1:*")
    push = psock(zctx, zmq.PUSH)
    push.connect(pull.last_endpoint.decode())
    # The same frames into a pyzmq PULL, to compare every result.
    zpull = psock(zctx, zmq.PULL)
    port = zpull.bind_to_random_port("tcp://127.0.0.1")
    zpush = psock(zctx, zmq.PUSH)
    zpush.connect(f"tcp://127.0.0.1:{port}")
    for sender in (push, zpush):
        sender.send_multipart([b"hello world", b"", b"abc"])
        sender.send(b"0123456789")
        sender.send(b"dropped")
    for sock in (pull, zpull):
        buf = bytearray(5)
        got = [sock.recv_into(buf), bytes(buf), sock.rcvmore]
        got += [sock.recv_into(bytearray(0)), sock.rcvmore]  # an empty buffer discards
        got += [sock.recv_into(buf), bytes(buf), sock.rcvmore]
        buf = bytearray(16)
        got += [sock.recv_into(memoryview(buf)[4:], nbytes=3, flags=0), bytes(buf)]
        got += [sock.recv_into(bytearray(0))]
        if sock is pull:
            ours = got
    assert ours == got, (ours, got)
    assert ours[0] == 11 and ours[1] == b"hello" and ours[2] == 1 and ours[-1] == 7
    for make in (lambda s: s.recv_into(b"read-only"),
                 lambda s: s.recv_into(bytearray(3), nbytes=-1),
                 lambda s: s.recv_into(bytearray(3), nbytes=4),
                 lambda s: s.recv_into(memoryview(bytearray(8))[::2]),
                 lambda s: s.recv_into(bytearray(3), flags=zmq.DONTWAIT)):
        same_failure(lambda: make(pull), lambda: make(zpull))


def test_recv_into_router_prefix(backend, ctx):
    router = zsock(ctx, zmtp.ROUTER)
    router.bind("tcp://127.0.0.1:*")
    dealer = zsock(ctx, zmtp.DEALER, routing_id=b"peer-1")
    dealer.connect(router.last_endpoint.decode())
    dealer.send(b"payload")
    buf = bytearray(64)
    assert router.recv_into(buf) == 6 and bytes(buf[:6]) == b"peer-1" and router.rcvmore
    assert router.recv_into(buf) == 7 and bytes(buf[:7]) == b"payload" and not router.rcvmore


# ======================================================= serialized, Frame


def test_send_recv_serialized(backend, ctx):
    a, b = zsock(ctx, zmtp.PAIR), zsock(ctx, zmtp.PAIR)
    a.bind("tcp://127.0.0.1:*")
    b.connect(a.last_endpoint.decode())
    a.send_serialized({"k": [1, 2]}, lambda m: [repr(k).encode() for k in sorted(m)] + [repr(m).encode()])
    assert b.recv_serialized(lambda frames: [bytes(f) for f in frames], copy=False) == [b"'k'", b"{'k': [1, 2]}"]
    for name in ("send_serialized", "recv_serialized"):
        ours = list(inspect.signature(getattr(zmtp.Socket, name)).parameters)
        theirs = list(inspect.signature(getattr(zmq.Socket, name)).parameters)
        assert ours == theirs[: len(ours)], (name, ours, theirs)


def test_frame_get_bytes_buffer(backend, ctx, zctx):
    pull = zsock(ctx, zmtp.PULL)
    pull.bind("tcp://127.0.0.1:*")
    zpull = psock(zctx, zmq.PULL)
    port = zpull.bind_to_random_port("tcp://127.0.0.1")
    for ep, sock in ((pull.last_endpoint.decode(), pull), (f"tcp://127.0.0.1:{port}", zpull)):
        push = psock(zctx, zmq.PUSH)
        push.connect(ep)
        push.send_multipart([b"one", b"two"])
        frames = sock.recv_multipart(copy=False)
        got = [(f.get(zmq.MORE), f.bytes, bytes(f.buffer), type(f.buffer)) for f in frames]
        props = [(f.get("Socket-Type"), f.get("Peer-Address")) for f in frames]
        if sock is pull:
            ours, our_frames, our_props = got, frames, props
    assert ours == got == [(1, b"one", b"one", memoryview), (0, b"two", b"two", memoryview)]
    assert our_props == props == [("PUSH", "127.0.0.1")] * 2  # connection properties: test_frame_props.py
    for frame_type in (zmtp.Frame, zmq.Frame):
        f = frame_type(b"x")
        assert f.get(zmq.MORE) == 0 and f.bytes == b"x" and f.buffer.tobytes() == b"x"
    same_failure(lambda: zmtp.Frame(b"x").get(99), lambda: zmq.Frame(b"x").get(99))
    assert exc_class(zmtp.Frame(b"x").get, 99) is zmtp.ZMQError
    # Not kept by zmtp: the SRCFD / SHARED numbers.
    for option in (zmtp.SRCFD, zmtp.SHARED):
        with pytest.raises(NotImplementedError):
            our_frames[0].get(option)


# ======================================================= Poller, select


def test_poller_modify_unregister_contains():
    r, w = os.pipe()
    try:
        for mod in (zmtp, zmq):
            p = mod.Poller()
            assert r not in p
            p.register(r, mod.POLLIN)
            assert r in p and p.poll(0) == []
            p.modify(w, mod.POLLOUT)  # modify registers, as pyzmq
            assert p.poll(0) == [(w, mod.POLLOUT)]
            p.modify(w, 0)  # flags 0 unregisters
            assert w not in p
            p.unregister(r)
            assert r not in p
            with pytest.raises(KeyError):
                p.unregister(r)
    finally:
        os.close(r)
        os.close(w)


def test_poller_plain_file_objects():
    """Objects with fileno() (a socket.socket, a file) come back as given."""
    a, b = socket.socketpair()
    rf = os.fdopen(os.dup(a.fileno()), "rb", buffering=0)
    try:
        b.send(b"x")
        results = []
        for mod in (zmtp, zmq):
            p = mod.Poller()
            p.register(a, mod.POLLIN)
            p.register(rf, mod.POLLIN)
            p.register(b, mod.POLLIN | mod.POLLOUT)
            results.append(sorted((o, int(ev)) for o, ev in p.poll(1000)))
        # pyzmq names an object registered for its fileno() by that fd.
        assert results[0] == results[1] == sorted([(a.fileno(), 1), (rf.fileno(), 1), (b.fileno(), 2)])
        rl, wl, xl = mod.select([a, rf], [b], [], 1)
        assert (sorted(rl), wl, xl) == (sorted([a.fileno(), rf.fileno()]), [b.fileno()], [])
    finally:
        rf.close()
        a.close()
        b.close()


def test_select_fds_like_pyzmq():
    r, w = os.pipe()
    try:
        assert inspect.signature(zmtp.select).parameters.keys() == inspect.signature(zmq.select).parameters.keys()
        for mod in (zmtp, zmq):
            t0 = time.monotonic()
            assert mod.select([r], [], [], 0.05) == ([], [], [])
            assert time.monotonic() - t0 >= 0.04
            assert mod.select([r], [w], [], 0) == ([], [w], [])
            os.write(w, b"x")
            assert mod.select([r, w], [], [], None) == ([r], [], [])
            os.read(r, 1)
            assert mod.select([], [], [], 0) == ([], [], [])
    finally:
        os.close(r)
        os.close(w)


def test_select_sockets(backend, ctx):
    a, b = zsock(ctx, zmtp.PAIR), zsock(ctx, zmtp.PAIR)
    a.bind("tcp://127.0.0.1:*")
    b.connect(a.last_endpoint.decode())
    assert zmtp.select([a], [], [], 0.05) == ([], [], [])
    b.send(b"x")
    rl, wl, xl = zmtp.select([a, b], [b], [], TIMEOUT_MS / 1000)
    assert rl == [a] and wl == [b] and xl == []
    assert a.recv() == b"x"


# ======================================================= Context


def test_context_socket_option_defaults(backend):
    for mod in (zmtp, zmq):
        c = mod.Context()
        c.linger = 0
        c.rcvtimeo = 77
        c.setsockopt(mod.SNDHWM, 5)
        c.setsockopt(mod.SUBSCRIBE, b"")  # not for a PUSH: ignored there
        assert c.linger == 0 and c.rcvtimeo == 77
        assert c.sockopts == {mod.LINGER: 0, mod.RCVTIMEO: 77, mod.SNDHWM: 5, mod.SUBSCRIBE: b""}
        with pytest.raises(AttributeError):
            c.sndtimeo  # not set
        with pytest.raises(AttributeError):
            c.no_such_option = 1
        s = c.socket(mod.PUSH)
        assert (s.linger, s.rcvtimeo, s.sndhwm) == (0, 77, 5)
        assert c.getsockopt(mod.RCVTIMEO) == 77
        assert c.get(mod.IO_THREADS) == 1 and c.get(mod.MAX_SOCKETS) == 1023
        s.close()
        c.term()


def test_context_blocky(backend):
    """BLOCKY (libzmq's context option, 1 by default): set to 0, the
    sockets made from then on start with LINGER 0, so closing one with
    output queued does not wait; sockets made before keep theirs; a LINGER
    default set on the context still wins; any non-zero value reads 1."""
    for mod in (zmtp, zmq):
        c = mod.Context()
        before = c.socket(mod.PUSH)
        assert c.get(mod.BLOCKY) == 1
        c.set(mod.BLOCKY, 0)
        assert c.get(mod.BLOCKY) == 0
        after = c.socket(mod.PUSH)
        assert after.linger == 0
        assert before.linger == (zmtp.DEFAULT_LINGER if mod is zmtp else -1)  # zmtp's own default: docs/decisions.md
        after.connect("tcp://127.0.0.1:1")  # never answers: its message stays queued
        after.send(b"lost at term", mod.NOBLOCK)
        c.setsockopt(mod.LINGER, 5)
        last = c.socket(mod.PUSH)
        assert last.linger == 5
        c.set(mod.BLOCKY, 7)
        assert c.get(mod.BLOCKY) == 1
        before.close(linger=0)
        t0 = time.monotonic()
        after.close()  # its own LINGER, 0: the queued message is dropped at once
        last.close()
        c.term()
        assert time.monotonic() - t0 < 5, mod.__name__


def test_context_instance_is_fork_safe(tmp_path):
    script = textwrap.dedent(
        """
        import os, zmtp
        parent = zmtp.Context.instance()
        assert zmtp.Context.instance() is parent
        pid = os.fork()
        if pid == 0:
            child = zmtp.Context.instance()
            ok = child is not parent and not child.closed and zmtp.Context.instance() is child
            s = child.socket(zmtp.PAIR)
            s.bind("tcp://127.0.0.1:*")
            s.close()
            child.term()
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert zmtp.Context.instance() is parent
        parent.term()
        print("exit", os.waitstatus_to_exitcode(status))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=tempfile.gettempdir())
    assert out.stdout.strip() == "exit 0", out.stderr


# ======================================================= fileno, EVENTS


def _drain_with_selector(sockets, want, timeout_s):
    """An event loop as pyzmq's docs show one: wait for fileno() to become
    readable, then recv(DONTWAIT) while EVENTS shows POLLIN.  Returns the
    messages per socket and the number of wakes."""
    import selectors

    sel = selectors.DefaultSelector()
    for s in sockets:
        sel.register(s.fileno(), selectors.EVENT_READ, s)
    got = {id(s): [] for s in sockets}
    wakes = 0
    deadline = time.monotonic() + timeout_s
    try:
        while sum(len(v) for v in got.values()) < want:
            assert time.monotonic() < deadline, {k: len(v) for k, v in got.items()}
            for key, _ in sel.select(timeout=0.5):
                wakes += 1
                s = key.data
                while s.events & zmtp.POLLIN:
                    got[id(s)].append(s.recv(zmtp.DONTWAIT))
    finally:
        sel.close()
    return got, wakes


@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp-binds", "pyzmq-binds"])
def test_fileno_in_an_event_loop_tcp(backend, ctx, zctx, zmtp_binds):
    """fileno() becomes readable when input arrives while the owner is away
    (the progress thread reads it and signals), for messages sent in spaced
    bursts by a pyzmq peer; nothing is lost or duplicated."""
    pull = zsock(ctx, zmtp.PULL)
    push = psock(zctx, zmq.PUSH)
    if zmtp_binds:
        pull.bind("tcp://127.0.0.1:*")
        push.connect(pull.last_endpoint.decode())
    else:
        push.bind("tcp://127.0.0.1:*")
        pull.connect(push.getsockopt(zmq.LAST_ENDPOINT).decode())
    n = 600

    def feed():
        for i in range(n):
            push.send(b"%d" % i)
            if i % 50 == 0:
                time.sleep(0.002)

    t = threading.Thread(target=feed)
    t.start()
    try:
        got, wakes = _drain_with_selector([pull], n, TIMEOUT_MS / 1000 * 4)
    finally:
        t.join()
    assert got[id(pull)] == [b"%d" % i for i in range(n)]
    assert wakes >= 1


def test_fileno_taken_with_input_queued_is_readable(backend, ctx, zctx):
    """A call that finds input (here: fileno() itself, after input was
    read in) leaves the fd readable, so a loop that waits on the fd before
    it reads EVENTS does not sleep on queued messages; the progress thread,
    which signals only what its own steps make appear, saw POLLIN already
    set and had no edge to signal (the loop slept forever)."""
    import select as _select

    pull = zsock(ctx, zmtp.PULL)
    pull.bind("tcp://127.0.0.1:*")
    push = psock(zctx, zmq.PUSH)
    push.connect(pull.last_endpoint.decode())
    push.send(b"queued")
    wait_for(lambda: pull.poll(0), TIMEOUT_MS / 1000, "the message to be read in")
    fd = pull.fileno()
    r, _, _ = _select.select([fd], [], [], TIMEOUT_MS / 1000)
    assert r == [fd]
    assert pull.events & zmtp.POLLIN and pull.recv(zmtp.DONTWAIT) == b"queued"
    # Nothing new since: quiet again (edge-triggered, not spun).
    assert not pull.events & zmtp.POLLIN
    r, _, _ = _select.select([fd], [], [], 0.05)
    assert r == []


def test_fileno_in_an_event_loop_inproc(backend, ctx):
    """Two inproc PULLs fed by threads, waited on with one selector."""
    pulls = [zsock(ctx, zmtp.PULL) for _ in range(2)]
    pushes = []
    for k, p in enumerate(pulls):
        p.bind(f"inproc://fileno-{k}")
        q = zsock(ctx, zmtp.PUSH)
        q.connect(f"inproc://fileno-{k}")
        pushes.append(q)
    n = 500

    def feed(q, tag):
        for i in range(n):
            q.send(b"%s%d" % (tag, i))
            if i % 50 == 0:
                time.sleep(0.002)

    ts = [threading.Thread(target=feed, args=(q, b"ab"[k:k + 1])) for k, q in enumerate(pushes)]
    for t in ts:
        t.start()
    try:
        got, _ = _drain_with_selector(pulls, 2 * n, TIMEOUT_MS / 1000 * 4)
    finally:
        for t in ts:
            t.join()
    assert got[id(pulls[0])] == [b"a%d" % i for i in range(n)]
    assert got[id(pulls[1])] == [b"b%d" % i for i in range(n)]


def test_fileno_is_edge_triggered_and_events_still_work(backend, ctx):
    """After EVENTS has been read and everything received, the fd stays
    quiet until something new happens (libzmq's ZMQ_FD contract)."""
    import select as _select

    a, b = zsock(ctx, zmtp.PAIR), zsock(ctx, zmtp.PAIR)
    a.bind("tcp://127.0.0.1:*")
    b.connect(a.last_endpoint.decode())
    fd = a.fileno()
    assert fd == a.fileno() and fd >= 0
    b.send(b"x")
    r, _, _ = _select.select([fd], [], [], TIMEOUT_MS / 1000)
    assert r == [fd]
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not a.getsockopt(zmtp.EVENTS) & zmtp.POLLIN:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert a.recv() == b"x"
    assert not a.events & zmtp.POLLIN
    r, _, _ = _select.select([fd], [], [], 0.05)
    assert r == []  # drained by the calls above: quiet until the next event
    b.send(b"y")
    r, _, _ = _select.select([fd], [], [], TIMEOUT_MS / 1000)
    assert r == [fd] and a.recv() == b"y"


def test_fileno_with_asyncio_add_reader(backend, ctx):
    """The pattern pyzmq users write by hand: loop.add_reader(sock.fileno())."""
    import asyncio

    pull, push = zsock(ctx, zmtp.PULL), zsock(ctx, zmtp.PUSH)
    pull.bind("inproc://asyncio-fileno")
    push.connect("inproc://asyncio-fileno")
    n = 200

    async def main():
        loop = asyncio.get_running_loop()
        got = []
        done = loop.create_future()

        def readable():
            while pull.events & zmtp.POLLIN:
                got.append(pull.recv(zmtp.DONTWAIT))
            if len(got) >= n and not done.done():
                done.set_result(None)

        loop.add_reader(pull.fileno(), readable)
        try:
            for i in range(n):
                push.send(b"%d" % i)
                if i % 20 == 0:
                    await asyncio.sleep(0.001)
            await asyncio.wait_for(done, TIMEOUT_MS / 1000 * 4)
        finally:
            loop.remove_reader(pull.fileno())
        return got

    assert asyncio.run(main()) == [b"%d" % i for i in range(n)]


def test_fileno_of_closed_socket(ctx):
    s = ctx.socket(zmtp.PULL)
    s.close()
    with pytest.raises(zmtp.ZMQError) as info:
        s.fileno()
    assert info.value.errno == errno.ENOTSOCK


# ======================================================= EINTR, warnings


def test_eintr_retried_with_remaining_timeout():
    """A signal during recv runs its handler and the wait goes on for what
    is left of RCVTIMEO (main thread: Python runs handlers there)."""
    calls = []
    old = signal.signal(signal.SIGALRM, lambda *a: calls.append(time.monotonic()))
    try:
        with zmtp.Context() as c:
            s = c.socket(zmtp.PULL)
            s.bind("tcp://127.0.0.1:*")
            s.rcvtimeo = 400
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            t0 = time.monotonic()
            with pytest.raises(zmtp.Again):
                s.recv()
            took = time.monotonic() - t0
            s.close()
        assert len(calls) == 1 and calls[0] - t0 < 0.1 + helpers.LATE_S
        assert 0.38 <= took < 0.4 + helpers.LATE_S, took
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _warnings_of(make):
    """The ResourceWarning texts emitted while make() runs and its garbage
    is collected."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make()
        gc.collect()
    out = [str(w.message).split(" <")[0] for w in caught if w.category is ResourceWarning]
    caught.clear()  # drop the sources they hold
    return out


@pytest.mark.parametrize("mod", [zmtp, zmq], ids=["zmtp", "pyzmq"])
def test_resource_warnings(mod):
    c = mod.Context()
    assert _warnings_of(lambda: c.socket(mod.PAIR)) == ["Unclosed socket"]

    def closed_socket():
        c.socket(mod.PAIR).close()

    assert _warnings_of(closed_socket) == []
    c.term()
    assert _warnings_of(lambda: mod.Context()) == ["Unclosed context"]
    assert _warnings_of(lambda: mod.Context().term()) == []


# ======================================================= scripts


SCRIPTS = {
    "reqrep_tcp": """
        import threading
        import zmq

        ctx = zmq.Context.instance()
        server = ctx.socket(zmq.REP)
        port = server.bind_to_random_port("tcp://127.0.0.1")

        def serve():
            for _ in range(3):
                msg = server.recv()
                server.send(b"World from " + msg)

        t = threading.Thread(target=serve)
        t.start()
        client = ctx.socket(zmq.REQ)
        client.connect("tcp://127.0.0.1:%d" % port)
        for i in range(3):
            client.send_string("Hello %d" % i)
            print(client.recv_string())
        t.join()
        print(zmq.zmq_version(), zmq.has("ipc"), zmq.strerror(zmq.EAGAIN))
        client.close()
        server.close()
        ctx.term()
    """,
    "pushpull_ipc_poller": """
        import os, tempfile
        import zmq

        path = os.path.join(tempfile.mkdtemp(), "vent")
        with zmq.Context() as ctx:
            sink = ctx.socket(zmq.PULL)
            sink.bind("ipc://" + path)
            vent = ctx.socket(zmq.PUSH)
            vent.connect("ipc://" + path)
            poller = zmq.Poller()
            poller.register(sink, zmq.POLLIN)
            for n in range(5):
                vent.send_json({"task": n, "work": n * n})
            total = 0
            while total < 5:
                events = dict(poller.poll(5000))
                if sink in events:
                    job = sink.recv_json()
                    total += 1
                    print("task", job["task"], "work", job["work"])
            print("poller empty:", poller.poll(10))
            poller.unregister(sink)
            print("registered:", sink in poller)
            vent.close()
            sink.close()
    """,
    "pubsub_select": """
        import time
        import zmq

        ctx = zmq.Context()
        ctx.linger = 0
        pub = ctx.socket(zmq.PUB)
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        sub = ctx.socket(zmq.SUB)
        sub.connect("tcp://127.0.0.1:%d" % port)
        sub.setsockopt_string(zmq.SUBSCRIBE, "weather")
        while True:  # the slow joiner: publish until the subscription is in
            pub.send_string("weather hello")
            r, w, x = zmq.select([sub], [], [], 0.05)
            if r:
                sub.recv()
                break
        time.sleep(0.05)
        while zmq.select([sub], [], [], 0)[0]:
            sub.recv()
        for i in range(3):
            pub.send_multipart([b"weather", b"%d" % i])
            pub.send_multipart([b"sports", b"%d" % i])
        for i in range(3):
            r, w, x = zmq.select([sub], [], [], 5)
            print(sub in r, sub.recv_multipart())
        print(zmq.select([sub], [], [], 0.01))
        sub.close()
        pub.close()
        ctx.term()
    """,
    "recv_into_serialized": """
        import json
        import zmq

        ctx = zmq.Context()
        a = ctx.socket(zmq.PAIR)
        port = a.bind_to_random_port("tcp://127.0.0.1")
        b = ctx.socket(zmq.PAIR)
        b.connect("tcp://127.0.0.1:%d" % port)
        b.send_serialized({"x": 1}, lambda m: [json.dumps(m).encode()])
        print(a.recv_serialized(lambda frames: json.loads(frames[0])))
        b.send(b"0123456789abcdef")
        buf = bytearray(10)
        n = a.recv_into(buf)
        print(n, bytes(buf), n > len(buf))
        b.send_multipart([b"a", b"b"])
        frames = a.recv_multipart(copy=False)
        print([(f.bytes, f.get(zmq.MORE)) for f in frames])
        print(a.poll(10), b.poll(10, zmq.POLLOUT), int(zmq.SocketType.PAIR), zmq.SocketType.PAIR.name)
        try:
            a.recv(zmq.NOBLOCK)
        except zmq.Again as e:
            print("Again", e.errno == zmq.EAGAIN)
        a.close()
        b.close()
        ctx.term()
    """,
}


def run_script(text: str, zmtp_import: bool) -> str:
    text = textwrap.dedent(text)
    if zmtp_import:
        assert "import zmq\n" in text
        text = text.replace("import zmq\n", "import zmtp as zmq\n", 1)
    out = subprocess.run([sys.executable, "-X", "dev", "-c", text], capture_output=True, text=True, timeout=60,
                         cwd=tempfile.gettempdir())
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr, out.stderr
    return out.stdout


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_pyzmq_script_same_output(name):
    expected = run_script(SCRIPTS[name], zmtp_import=False)
    assert expected.strip(), "the pyzmq run printed nothing"
    assert run_script(SCRIPTS[name], zmtp_import=True) == expected
