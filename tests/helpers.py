"""Helpers shared by the test modules (importable in every pytest import
mode: conftest.py puts this folder on sys.path).

* ``zsock`` / ``psock``: a zmtp / pyzmq socket with RCVTIMEO and SNDTIMEO of
  TIMEOUT_MS (a bug fails instead of hanging) and options given by name.
* ``fd_count``, ``rss_bytes``, ``heap_bytes``, ``wait_for``: process figures and polling
  (``LATE_S``, ``DEADLINE_S``: the headroom a loaded machine needs).
* ``raises_errno``, ``settle``: a ZMQError's errno; driving zmtp sockets.
* ``wait_blocked``: until a thread is blocked in a zmtp call (not a sleep).
* ``Peer``: a ``python -c`` script in a process of its own, read line by line.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, List, Optional, Sequence

TIMEOUT_MS = 5000

#: how long a busy, slow machine may keep a runnable thread from running
#: (seconds).  An upper bound on "returns at once" or "returns after about
#: T" is T + LATE_S: it still tells SNDTIMEO/RCVTIMEO apart from TIMEOUT_MS
#: (5 s) and from a hang, and it does not fail because another process had
#: the CPU.  Speed is measured in benchmarks/, not here.
LATE_S = 3.0

#: how long to wait for something that should happen "soon" (a connection,
#: a handshake, a reconnect, a kernel buffer draining) before failing:
#: generous, since a passing test never waits it out.
DEADLINE_S = 20.0


def zsock(ctx: Any, kind: int, **opts: Any) -> Any:
    """A zmtp socket with timeouts; ``opts`` set as properties."""
    s = ctx.socket(kind)
    s.rcvtimeo = TIMEOUT_MS
    s.sndtimeo = TIMEOUT_MS
    for k, v in opts.items():
        setattr(s, k, v)
    return s


def psock(zctx: Any, kind: int, **opts: Any) -> Any:
    """A pyzmq socket with timeouts and linger 0; ``opts`` by option name."""
    import zmq

    s = zctx.socket(kind)
    s.rcvtimeo = TIMEOUT_MS
    s.sndtimeo = TIMEOUT_MS
    s.linger = 0
    for k, v in opts.items():
        s.setsockopt(getattr(zmq, k.upper()), v)
    return s


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


try:
    _mallinfo2: Optional[Callable[[], _MallInfo2]] = ctypes.CDLL(None).mallinfo2  # glibc >= 2.33
    _mallinfo2.restype = _MallInfo2  # type: ignore[union-attr]
except (OSError, AttributeError):  # pragma: no cover - another libc
    _mallinfo2 = None


def heap_bytes() -> Optional[int]:
    """Bytes malloc has handed out and not had back, over every thread's
    arena (glibc ``mallinfo2``: uordblks + hblkhd); None without it.

    Unlike RSS it does not count what malloc keeps after a free (per-thread
    arenas, trim and mmap thresholds that move with use), which depends on
    which thread happened to serve which connection, i.e. on the machine's
    load.  A bound on it holds on a loaded machine as on a quiet one."""
    if _mallinfo2 is None:
        return None
    info = _mallinfo2()
    return int(info.uordblks + info.hblkhd)


def raises_errno(num: int, fn: Callable[..., Any], *args: Any, exc: Any = None, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) raises `exc` (default zmtp.ZMQError) with errno
    `num`; returns the exception."""
    import pytest
    import zmtp

    with pytest.raises(exc or zmtp.ZMQError) as info:
        fn(*args, **kwargs)
    assert info.value.errno == num, (info.value.errno, info.value)
    return info.value


def settle(*socks: Any, ms: int = 150) -> None:
    """Drive zmtp sockets' I/O for `ms` ms (accepts, handshakes, reads,
    writes; waits for nothing)."""
    from zmtp import _zmtp

    items = [(s, 0) for s in dict.fromkeys(socks)]
    deadline = time.monotonic() + ms / 1000
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        _zmtp._poll(items, max(1, int(left * 1000)))


def wait_for(pred: Callable[[], Any], timeout: float, what: str, step: float = 0.005) -> None:
    """Poll pred() until true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


#: the system calls in which a blocking zmtp call waits (io_uring_enter,
#: epoll_pwait2, epoll_pwait, epoll_wait, ppoll, poll), by machine
_WAIT_SYSCALLS = {
    "x86_64": {426, 441, 281, 232, 271, 7},
    "aarch64": {426, 441, 22, 73},
}


def wait_blocked(thread: Any, timeout: float = DEADLINE_S) -> None:
    """Until `thread` (a threading.Thread, an object with a ``.thread``
    such as conftest's Task, or a native thread id) waits in the kernel
    for I/O, as a blocking zmtp call does (io_uring_enter, epoll_pwait2...):
    the condition "the receiver is blocked by now" that a sleep only hopes
    for on a loaded machine.  A thread waiting for the GIL (futex) or in
    time.sleep (clock_nanosleep) does not count.  Where
    /proc/self/task/<tid>/syscall cannot be read or the machine is not in
    the table, sleeps 0.3 s instead."""
    import platform

    thread = getattr(thread, "thread", thread)
    tid = thread if isinstance(thread, int) else thread.native_id
    wanted = _WAIT_SYSCALLS.get(platform.machine())
    path = f"/proc/self/task/{tid}/syscall"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                words = f.read().split()
        except OSError:
            words = None
        if wanted is None or words is None:
            if words is None and not isinstance(thread, int) and not thread.is_alive():
                raise AssertionError(f"thread {tid} ended instead of blocking")
            time.sleep(0.3)
            return
        if words and words[0].isdigit() and int(words[0]) in wanted:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"thread {tid} not blocked in a wait after {timeout} s (syscall: {words})")
        time.sleep(0.002)


def connect_to(endpoint):
    """A connected blocking socket for a tcp:// or ipc:// endpoint.  Self-
    contained (its own import): peer scripts embed its source."""
    import socket

    if endpoint.startswith("tcp://"):
        host, port = endpoint[len("tcp://"):].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s
    assert endpoint.startswith("ipc://"), endpoint
    import struct

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # A blocking connect, bounded by SO_SNDTIMEO: with a Python timeout the
    # socket is non-blocking, and a unix connect to a full listen backlog
    # (the listener lags on a loaded machine) fails with EAGAIN at once
    # where tcp would wait for the listener.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 10, 0))
    s.connect(endpoint[len("ipc://"):])
    s.settimeout(10)
    return s


class Peer:
    """A ``python -c`` script in a process of its own: binary stdin, stdout
    read line by line (poll + os.read on the pipe: no reader thread, no
    select() fd limit).  Runs in the temp dir, so the installed zmtp is the
    one imported.  ``argv_prefix`` goes before the interpreter (e.g.
    ``["ip", "netns", "exec", name]`` runs the peer in a network namespace)."""

    def __init__(self, script: str, *args: object, argv_prefix: Sequence[str] = ()) -> None:
        self.proc = subprocess.Popen(
            [*argv_prefix, sys.executable, "-c", script, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=tempfile.gettempdir(),
        )
        self._buf = b""

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send_line(self, line: str) -> None:
        self.write(line.encode() + b"\n")

    def poll_line(self, timeout: float) -> Optional[str]:
        """The next line, or None when none came within timeout."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        p = select.poll()
        p.register(fd, select.POLLIN)
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if p.poll(max(1, int(left * 1000))):
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait(5)
                    raise AssertionError(f"peer exited ({self.proc.returncode}): {self._buf.decode(errors='replace')}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def readline(self, timeout: float = 10.0) -> str:
        line = self.poll_line(timeout)
        if line is None:
            raise AssertionError(f"no line from the peer within {timeout} s; so far: {self._buf!r}")
        return line

    def expect(self, word: str, timeout: float = 10.0) -> List[str]:
        """The next line must start with `word`; the rest of its words."""
        line = self.readline(timeout)
        parts = line.split()
        assert parts and parts[0] == word, f"expected {word!r} from the peer, got {line!r}"
        return parts[1:]

    def kill(self) -> None:
        """SIGKILL and reap: its sockets are closed by the kernel when this returns."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                try:
                    f.close()
                except OSError:  # BrokenPipeError flushing stdin of a dead process
                    pass


def kill_all(*peers: Optional[Peer]) -> None:
    for p in peers:
        if p is not None:
            p.kill()


def is_nomem(exc: BaseException) -> bool:
    """A clear out-of-memory error (MemoryError or ZMQError ENOMEM)."""
    import errno

    import zmtp

    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, zmtp.ZMQError) and exc.errno == errno.ENOMEM


def round_trips_under_alloc_failures(dealer: Any, router: Any, sent: List[List[bytes]]) -> int:
    """Send each message of `sent` from `dealer` (routing id b"d") to
    `router` while the C core's allocations fail at random (p = 1/8, this
    thread); each call either works or raises a clear out-of-memory error
    (or Again), and whatever arrives is one of `sent`, whole.  Then drains
    the router the same way.  Returns the failures injected."""
    import zmtp  # here: peers that import helpers may run without zmtp
    from zmtp import _zmtp

    _zmtp._alloc_fail(0, p=0.125, seed=1234, thread=True)
    try:
        for msg in sent:
            try:
                dealer.send_multipart(msg)
            except BaseException as exc:
                if not is_nomem(exc):
                    raise
            try:
                got = router.recv_multipart()
            except BaseException as exc:
                if not (is_nomem(exc) or isinstance(exc, zmtp.Again)):
                    raise
            else:
                assert got[0] == b"d" and got[1:] in sent, [g[:8] for g in got]
        failures = _zmtp._alloc_fail_count()[1]
    finally:
        _zmtp._alloc_fail(None)
    while router.poll(300, zmtp.POLLIN):
        got = router.recv_multipart()
        assert got[0] == b"d" and got[1:] in sent
    return failures


def queue_rounds(clients: Sequence[Any], worker: Any, rounds: int = 20) -> None:
    """REQ `clients` -> a queue (ROUTER | DEALER) -> a REP `worker`: each
    round every client asks, the worker answers each request, and every
    client must get its own answer (the envelopes crossed the queue)."""
    for rnd in range(rounds):
        for i, c in enumerate(clients):
            c.send_multipart([b"req", b"%d.%d" % (i, rnd)])
        for _ in clients:
            msg = worker.recv_multipart()
            worker.send_multipart([b"rep"] + msg[1:])
        for i, c in enumerate(clients):
            assert c.recv_multipart() == [b"rep", b"%d.%d" % (i, rnd)]


def ipv6_loopback() -> bool:
    """True when this machine can bind ::1."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False
