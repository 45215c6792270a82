"""Regression tests for issue 14's defects in the CPython face (_zmtpmodule.c).

* defect 1: a sequence argument (send_batch, send_buffered, send_multipart,
  _poll) changed by another thread while the call waits with the GIL released;
* defect 6: ``_zmtp._poll`` must own the sockets it waits on;
* defect 7: ``_adopt_fd`` / ``_monitor_fd`` own their descriptor on every
  failure;
* endpoints with an embedded NUL, the same socket twice in one poll,
  ``stats()`` as a snapshot, name resolution with the GIL released;
* the one fast-call argument parser (a duplicated argument is a TypeError).

A test whose failure used to be a crash runs its script in a child process
(``run_script``), so that a segfault fails the test instead of ending pytest.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from typing import List

import pytest

import zmtp
from zmtp import _zmtp

from helpers import TIMEOUT_MS, fd_count, raises_errno, wait_for, zsock

# The directory the zmtp under test was imported from: the child imports
# the same build.
_ZMTP_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(zmtp.__file__)))


def run_script(script: str, *args: str, timeout: float = 120, argv_prefix: List[str] = ()) -> str:
    """Run `script` in a child interpreter that imports this zmtp; return
    its stdout.  A crash (signal) or a non-zero exit fails the test with
    the child's output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = _ZMTP_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONFAULTHANDLER"] = "1"  # a crash prints the threads' stacks
    proc = subprocess.run(
        [*argv_prefix, sys.executable, "-c", script, *args],
        env=env,
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"child exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# ---------------------------------------------------------------------------
# One fast-call parser: CPython's rules for every method that takes keywords
# ---------------------------------------------------------------------------


def test_duplicated_argument_is_a_type_error(ctx):
    """An argument passed by position and again by keyword raises TypeError
    (as CPython does), for every fast-call method; recv() used to take the
    keyword and go on (here: Again)."""
    s = zsock(ctx, zmtp.PULL)
    with pytest.raises(TypeError, match="multiple values for argument 'flags'"):
        s.recv(zmtp.DONTWAIT, flags=zmtp.DONTWAIT)
    with pytest.raises(TypeError, match="multiple values for argument 'flags'"):
        s.recv_multipart(zmtp.DONTWAIT, flags=zmtp.DONTWAIT)
    with pytest.raises(TypeError, match="multiple values for argument 'copy'"):
        s.recv(zmtp.DONTWAIT, True, copy=True)
    p = zsock(ctx, zmtp.PUSH)
    with pytest.raises(TypeError, match="multiple values for argument 'data'"):
        p.send(b"x", data=b"y")
    with pytest.raises(TypeError, match="multiple values for argument 'flags'"):
        p.send_multipart([b"x"], zmtp.DONTWAIT, flags=zmtp.DONTWAIT)
    with pytest.raises(TypeError, match="multiple values for argument 'linger'"):
        p.close(0, linger=0)
    assert not p.closed


def test_fast_call_arguments(ctx):
    """Names, counts and positional-only parameters follow the signatures."""
    s = zsock(ctx, zmtp.PULL)
    with pytest.raises(TypeError, match="unexpected keyword argument 'flag'"):
        s.recv(flag=0)
    with pytest.raises(TypeError, match="at most 3 positional arguments"):
        s.recv(0, True, False, 1)
    with pytest.raises(TypeError, match="missing required argument 'data'"):
        s.send()
    with pytest.raises(TypeError, match="unexpected keyword argument 'buffer'"):
        s.recv_into(buffer=bytearray(4))  # recv_into(buffer, /, *, nbytes, flags)
    with pytest.raises(TypeError, match="at most 1 positional argument"):
        s.recv_into(bytearray(4), 4)
    with pytest.raises(zmtp.Again):  # track is accepted (nothing to track on receive)
        s.recv(zmtp.DONTWAIT, track=True)
    p = zsock(ctx, zmtp.PUSH)
    p.bind("inproc://fast-call")
    s.connect("inproc://fast-call")
    p.send_multipart(msg_parts=[b"a", b"b"], flags=0, copy=False, track=False)
    p.send(data=b"c", flags=0)
    assert s.recv_multipart(flags=0, copy=True) == [b"a", b"b"]
    buf = bytearray(8)
    assert s.recv_into(buf, nbytes=1, flags=0) == 1 and buf[:1] == b"c"
    p.close(linger=0)
    assert p.closed


# ---------------------------------------------------------------------------
# Defect 1: a sequence argument changed by another thread during a wait
# ---------------------------------------------------------------------------

# argv: backend, "frames" | "multipart".  PUSH -> PULL over inproc with both
# HWMs 1, so send_batch waits (GIL released) after a message or two; the
# other thread sees the call in progress (holding the GIL itself, so the
# sender is inside that wait), clears the caller's lists, then drains.
_BATCH_SCRIPT = r"""
import sys, threading, time
import zmtp
from zmtp import _zmtp

backend, kind = sys.argv[1], sys.argv[2]
_zmtp._set_backend(backend)
ctx = zmtp.Context()
pull = ctx.socket(zmtp.PULL)
pull.rcvhwm = 1
pull.rcvtimeo = 10000
push = ctx.socket(zmtp.PUSH)
push.sndhwm = 1
push.sndtimeo = 10000
pull.bind("inproc://batch")
push.connect("inproc://batch")
N = 200
if kind == "frames":
    batch = [bytes([i % 256]) * 100 for i in range(N)]
    want = [[m] for m in batch]
else:
    batch = [[b"head-%d" % i, bytes([i % 256]) * 100] for i in range(N)]
    want = [list(m) for m in batch]
got = []

def clear_then_drain():
    _zmtp._set_backend(backend)
    deadline = time.monotonic() + 30
    while not push._in_use():
        assert time.monotonic() < deadline, "send_batch never waited"
        time.sleep(0.001)
    for m in batch:
        if isinstance(m, list):
            m.clear()
    batch.clear()
    while len(got) < N:
        got.append(pull.recv_multipart())

t = threading.Thread(target=clear_then_drain)
t.start()
sent = push.send_batch(batch)
t.join(60)
assert not t.is_alive()
assert sent == N, sent
assert got == want, (len(got), got[:2])
push.close(linger=0)
pull.close(linger=0)
ctx.term()
print("ok")
"""


@pytest.mark.parametrize("kind", ["frames", "multipart"])
def test_send_batch_list_cleared_while_waiting(backend, kind):
    """send_batch() sends the batch as it was at the call, though another
    thread clears the caller's list (and its messages' lists) while the
    call waits for room; it used to read the list after the wait: a
    segfault (child killed by SIGSEGV), both backends."""
    assert run_script(_BATCH_SCRIPT, backend, kind).strip() == "ok"


def test_send_batch_snapshot_is_private(ctx):
    """The batch is copied, not the caller's list (one that cannot change)
    nor a fresh one a generator made."""
    pull = zsock(ctx, zmtp.PULL)
    push = zsock(ctx, zmtp.PUSH)
    pull.bind("inproc://snapshot")
    push.connect("inproc://snapshot")
    assert push.send_batch(m for m in [b"a", [b"b", b"c"]]) == 2
    assert push.send_batch((b"d", (b"e", b"f"))) == 2
    push.send_buffered([b"g", bytearray(b"h")])
    push.flush()
    got = [pull.recv_multipart() for _ in range(5)]
    assert got == [[b"a"], [b"b", b"c"], [b"d"], [b"e", b"f"], [b"g", b"h"]]
    with pytest.raises(TypeError, match="sequence of messages"):
        push.send_batch(5)
    with pytest.raises(ValueError, match="at least one frame"):
        push.send_batch([[]])


# ---------------------------------------------------------------------------
# Defect 6: _zmtp._poll owns the sockets it waits on
# ---------------------------------------------------------------------------

# argv: backend.  The only reference to the PULL socket is in the list given
# to _poll; another thread waits until the poll is blocked (it holds the
# GIL, so the poll is inside its wait), clears the list, checks the socket
# is still alive (the poll's own reference), then wakes the poll with a
# message.  _poll used to keep borrowed pointers: clearing the list freed
# the socket it had entered (heap-use-after-free under ASan, in spin_learn).
_POLL_SCRIPT = r"""
import os, sys, tempfile, threading, time, weakref
import zmtp
from zmtp import _zmtp

backend = sys.argv[1]
_zmtp._set_backend(backend)
path = "ipc://" + os.path.join(tempfile.mkdtemp(), "poll")
pull = _zmtp.Socket(zmtp.PULL)
pull.bind(path)
push = _zmtp.Socket(zmtp.PUSH)
push.connect(path)
ref = weakref.ref(pull)
items = [(pull, zmtp.POLLIN)]
del pull
seen = {}

def mutate():
    _zmtp._set_backend(backend)
    deadline = time.monotonic() + 30
    while not ref()._in_use():
        assert time.monotonic() < deadline, "_poll never waited"
        time.sleep(0.001)
    items.clear()
    seen["alive"] = ref() is not None
    push.send(b"wake")

t = threading.Thread(target=mutate)
t.start()
out = _zmtp._poll(items, 30000)
t.join(60)
assert not t.is_alive()
assert seen == {"alive": True}, seen
assert out == [(0, zmtp.POLLIN)], out
assert ref() is None  # the poll's reference went with it
push.close(0)
print("ok")
"""


def test_poll_list_cleared_while_waiting(backend):
    """_poll holds its own references: a socket whose only other reference
    was the caller's list survives the list being cleared while the poll
    waits, and the poll then returns normally (both backends)."""
    assert run_script(_POLL_SCRIPT, backend).strip() == "ok"


def test_same_socket_twice_in_one_poll(ctx):
    """A socket (or fd) listed twice answers for each entry, in the items'
    order, as pyzmq's zmq_poll does; it used to raise EBUSY (the socket was
    entered twice).  select() reports it once, as pyzmq's does."""
    pull = zsock(ctx, zmtp.PULL)
    push = zsock(ctx, zmtp.PUSH)
    pull.bind("inproc://twice")
    push.connect("inproc://twice")
    push.send(b"x")
    assert _zmtp._poll([(pull, zmtp.POLLIN)], TIMEOUT_MS) == [(0, zmtp.POLLIN)]
    r, w = os.pipe()
    try:
        os.write(w, b"x")
        items = [(pull, zmtp.POLLIN), (r, zmtp.POLLIN), (pull, zmtp.POLLIN | zmtp.POLLOUT),
                 (push, zmtp.POLLOUT), (r, zmtp.POLLIN | zmtp.POLLOUT), (push, zmtp.POLLIN)]
        assert _zmtp._poll(items, TIMEOUT_MS) == [
            (0, zmtp.POLLIN), (1, zmtp.POLLIN), (2, zmtp.POLLIN), (3, zmtp.POLLOUT), (4, zmtp.POLLIN)]
    finally:
        os.close(r)
        os.close(w)
    assert zmtp.select([pull, pull], [], [], TIMEOUT_MS / 1000) == ([pull], [], [])
    assert pull.recv() == b"x"
    assert _zmtp._poll([(pull, zmtp.POLLIN), (pull, zmtp.POLLIN)], 0) == []


# ---------------------------------------------------------------------------
# Defect 7: _adopt_fd / _monitor_fd own the descriptor on every failure
# ---------------------------------------------------------------------------


def test_failed_monitor_socket_leaks_no_descriptor(ctx):
    """100 get_monitor_socket() calls that fail on their address (an
    embedded NUL) leak no descriptor: _adopt_fd owns its fd from the start
    and closes it on every failure, which get_monitor_socket relies on (it
    used to leak one per call: the argument parsing failed before)."""
    s = zsock(ctx, zmtp.DEALER)
    before = fd_count()
    for _ in range(100):
        with pytest.raises(zmtp.ZMQError) as info:
            s.get_monitor_socket(addr="inproc://mon\0itor")
        assert info.value.errno == zmtp.EINVAL
    assert fd_count() == before


@pytest.mark.parametrize("how", ["nul", "type", "count", "closed"])
def test_handed_fd_is_closed_on_failure(ctx, how):
    """The private fd takers close the fd whatever fails after it was read."""
    import socket as stdsocket

    s = zsock(ctx, zmtp.PAIR)
    before = fd_count()
    for call in ("_adopt_fd", "_monitor_fd"):
        for _ in range(20):
            a, b = stdsocket.socketpair()
            a.setblocking(False)
            fd = a.detach()
            b.close()
            args = {"nul": {"_adopt_fd": (fd, "inproc://a\0b"), "_monitor_fd": (fd, "x")},
                    "type": {"_adopt_fd": (fd, 12), "_monitor_fd": (fd, None)},
                    "count": {"_adopt_fd": (fd,), "_monitor_fd": (fd, 1, 2)},
                    "closed": {"_adopt_fd": (fd, "inproc://a"), "_monitor_fd": (fd, 1)}}[how][call]
            if how == "closed":
                t = zsock(ctx, zmtp.PAIR)
                t.close()
                target = t
            else:
                target = s
            with pytest.raises((zmtp.ZMQError, TypeError)):
                getattr(target, call)(*args)
            with pytest.raises(OSError):
                os.fstat(fd)  # closed by the callee
    assert fd_count() == before


# ---------------------------------------------------------------------------
# Endpoints with an embedded NUL
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "ipc", "inproc"])
def test_endpoint_with_nul_is_refused(ctx, transport, tmp_path):
    """bind/connect/unbind/disconnect refuse an endpoint with an embedded NUL
    (EINVAL) for every transport, as str and as bytes; it used to be cut at
    the NUL (binding "tcp://127.0.0.1:port" for "tcp://127.0.0.1:port\\0x")."""
    s = zsock(ctx, zmtp.PULL)
    good = {"tcp": "tcp://127.0.0.1:*", "ipc": f"ipc://{tmp_path}/nul", "inproc": "inproc://nul"}[transport]
    s.bind(good)
    bound = s.last_endpoint.decode()
    for ep in (bound + "\0junk", bound + "\0", (bound + "\0junk").encode()):
        for method in ("bind", "connect", "unbind", "disconnect"):
            raises_errno(zmtp.EINVAL, getattr(s, method), ep)
    assert s.last_endpoint.decode() == bound
    # the real endpoint is still bound, and still works
    p = zsock(ctx, zmtp.PUSH)
    p.connect(bound)
    p.send(b"still there")
    assert s.recv() == b"still there"


# ---------------------------------------------------------------------------
# stats(): a snapshot taken under the socket's claim, like any call
# ---------------------------------------------------------------------------


def test_stats_is_readable_during_another_threads_call(ctx, spawn):
    """stats() is not a call: a monitoring thread reads the counters while
    the owner is blocked in recv() on another thread (no EBUSY), with each
    counter whole; a closed socket raises ENOTSOCK."""
    pull = zsock(ctx, zmtp.PULL)
    push = zsock(ctx, zmtp.PUSH)
    pull.bind("inproc://stats")
    push.connect("inproc://stats")
    assert pull.stats()["dropped_messages"] == 0
    task = spawn(pull.recv)
    wait_for(pull._in_use, 10, "the recv() to be blocked")
    assert set(pull.stats()) >= {"accepted", "connected", "protocol_errors"}
    raises_errno(errno.EBUSY, pull.recv, zmtp.DONTWAIT)  # a real call still is refused
    push.send(b"x")
    assert task.result() == b"x"
    push.close(linger=0)
    raises_errno(errno.ENOTSOCK, push.stats)


def test_polling_stats_leaves_the_progress_thread_working(backend, ctx):
    """A loop that only polls stats() (every 1 ms) while waiting for a peer
    must let the progress thread accept and handshake it: stats() is no
    owner's call, whose recent activity keeps that thread away (a version of
    stats() that claimed the socket as a call starved the accepts forever)."""
    router = zsock(ctx, zmtp.ROUTER)
    router.bind("tcp://127.0.0.1:*")
    host, port = router.last_endpoint.decode().rsplit("//", 1)[1].rsplit(":", 1)
    dealer = zsock(ctx, zmtp.DEALER)
    dealer.connect(router.last_endpoint)
    dealer.send(b"ping")
    ident, body = router.recv_multipart()  # the owner has made calls
    router.send_multipart([ident, body])
    assert dealer.recv() == b"ping"
    raws = [socket.create_connection((host, int(port)), timeout=5) for _ in range(3)]
    try:
        wait_for(lambda: router.stats()["accepted"] == 4, 10, "the progress thread to accept", 0.001)
    finally:
        for r in raws:
            r.close()


# ---------------------------------------------------------------------------
# Name resolution runs without the GIL
# ---------------------------------------------------------------------------


def test_host_name_from_etc_hosts_resolves(ctx):
    """tcp:// endpoints with a host name (resolved by getaddrinfo, now with
    the GIL released) still bind and connect: "localhost" is in /etc/hosts."""
    pull = zsock(ctx, zmtp.PULL)
    pull.bind("tcp://127.0.0.1:*")
    port = pull.last_endpoint.decode().rsplit(":", 1)[1]
    push = zsock(ctx, zmtp.PUSH)
    push.connect(f"tcp://localhost:{port}")
    push.send(b"by name")
    assert pull.recv() == b"by name"
    other = zsock(ctx, zmtp.PULL)
    other.bind("tcp://localhost:*")
    assert other.last_endpoint.startswith(b"tcp://")
    raises_errno(zmtp.EHOSTUNREACH, push.connect, "tcp://no-such-host.invalid:5555")


# argv: backend, fifo.  /etc/hosts is a FIFO in this process's mount
# namespace, so getaddrinfo blocks opening it until someone opens the FIFO
# for writing.  The other thread does that only once it has seen the
# connect() in progress (the socket claimed) while it holds the GIL itself:
# with the GIL held through the resolution it never runs and the child
# hangs (the test's timeout fails it).
_SLOW_NAME_SCRIPT = r"""
import errno, os, sys, threading, time
import zmtp
from zmtp import _zmtp

backend, fifo = sys.argv[1], sys.argv[2]
_zmtp._set_backend(backend)
s = _zmtp.Socket(zmtp.PUSH)
seen = []

def other():
    while not s._in_use():
        time.sleep(0.001)
    seen.append("connect in progress")
    fd = os.open(fifo, os.O_WRONLY)  # lets the resolver's open() return
    try:
        os.write(fd, b"127.0.0.1 slowname\n")
    except BrokenPipeError:  # the resolver read and closed already
        pass
    os.close(fd)

t = threading.Thread(target=other, daemon=True)
t.start()
try:
    s.connect("tcp://slowname:5555")
except zmtp.ZMQError as exc:  # read before the line was written: not found
    assert exc.errno == errno.EHOSTUNREACH, exc
t.join(30)
assert seen == ["connect in progress"], seen
s.close(0)
print("ok")
"""


def test_name_resolution_releases_the_gil(tmp_path):
    """Another Python thread runs while connect() resolves a host name
    (getaddrinfo blocked on /etc/hosts, made a FIFO in a private mount
    namespace); it used to hold the GIL: every thread froze (here, a hang)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    fifo = str(tmp_path / "hosts")
    os.mkfifo(fifo)
    prefix = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', fifo]
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=20)
    if probe.returncode != 0:
        pytest.skip(f"cannot bind-mount over /etc/hosts here: {probe.stderr!r}")
    assert run_script(_SLOW_NAME_SCRIPT, "epoll", fifo, timeout=30, argv_prefix=prefix).strip() == "ok"
