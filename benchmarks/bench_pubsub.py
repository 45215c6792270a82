"""PUB -> SUB throughput: one publisher, 1 or 4 subscribers in other
processes, 64-byte messages, SNDHWM = RCVHWM = 0 (lossless: every
subscriber must count every message).

Implementations: zmtp (publisher and subscribers) with the io_uring and
the epoll backend, and pyzmq (libzmq) on both sides.  One round publishes
MESSAGES messages and an end marker and lasts until every subscriber has
counted them all; the figure is MESSAGES / round time, per subscriber
(``extra_info["msg_per_s_per_sub"]``, from the median round).

    python -m pytest benchmarks --benchmark-only -p no:cacheprovider -o python_files=bench_*.py
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import time

import pytest

MESSAGES = 50_000
SIZE = 64
PROBE, END, QUIT = b"\x00probe", b"\x00end", b"\x00quit"

#: a subscriber process: argv = impl ("pyzmq" or "zmtp"), endpoint.  Prints
#: "ready" at the first probe, "done <n>" at each end marker.
SUBSCRIBER = textwrap.dedent(r"""
    import sys
    impl, endpoint = sys.argv[1], sys.argv[2]
    if impl == "pyzmq":
        import zmq
    else:
        import zmtp as zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.rcvhwm = 0
    s.linger = 0
    s.connect(endpoint)
    s.subscribe(b"")
    while s.recv() != b"\x00probe":
        pass
    print("ready", flush=True)
    n = 0
    while True:
        m = s.recv()
        if m[:1] == b"\x00":
            if m == b"\x00end":
                print("done", n, flush=True)
                n = 0
            elif m == b"\x00quit":
                break
            continue
        n += 1
    s.close()
    ctx.term()
""")

IMPLS = {
    "zmtp-io_uring": ("zmtp", "io_uring"),
    "zmtp-epoll": ("zmtp", "epoll"),
    "pyzmq": ("pyzmq", ""),
}


class Lines:
    """Lines from the subscribers' stdout pipes, read without blocking."""

    def __init__(self, ps):
        self.ps = ps
        self.buf = {p.stdout.fileno(): b"" for p in ps}
        self.lines = {p.stdout.fileno(): [] for p in ps}

    def fds(self):
        return list(self.buf)

    def read(self, fd):
        data = os.read(fd, 4096)
        if not data:
            raise RuntimeError(f"a subscriber exited: {self.lines}")
        self.buf[fd] += data
        *done, self.buf[fd] = self.buf[fd].split(b"\n")
        self.lines[fd] += [ln.decode() for ln in done]

    def take(self, fd, prefix):
        for i, ln in enumerate(self.lines[fd]):
            if ln.startswith(prefix):
                del self.lines[fd][i]
                return ln
        return None


def wait_lines(pub, lines, prefix, is_zmtp, timeout=60.0, on_idle=None):
    """Until each subscriber printed a line starting with `prefix`; a zmtp
    publisher is driven meanwhile (its queued output flows)."""
    got = {}
    deadline = time.monotonic() + timeout
    if is_zmtp:
        from zmtp import POLLIN, _zmtp
    while len(got) < len(lines.ps):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waiting for {prefix!r}: {lines.lines}")
        pending = [fd for fd in lines.fds() if fd not in got]
        if is_zmtp:
            items = [(pub, 0)] + [(fd, POLLIN) for fd in pending]
            ready = [items[i][0] for i, _ in _zmtp._poll(items, 20) if i > 0]
        else:
            ready = select.select(pending, [], [], 0.02)[0]
        for fd in ready:
            lines.read(fd)
        for fd in pending:
            ln = lines.take(fd, prefix)
            if ln is not None:
                got[fd] = ln
        if on_idle is not None and len(got) < len(lines.ps):
            on_idle()
    return list(got.values())


@pytest.mark.parametrize("subscribers", [1, 4])
@pytest.mark.parametrize("impl", list(IMPLS))
def test_pub_sub_throughput(benchmark, worker, procs, impl, subscribers):
    lib, backend = IMPLS[impl]
    is_zmtp = lib == "zmtp"
    if is_zmtp:
        import zmtp as zmq
        from zmtp import _zmtp

        if backend and not _zmtp._probe_backend(backend)[0]:
            pytest.skip(f"{backend} unavailable")
    else:
        import zmq
    w = worker(backend)
    ctx = zmq.Context()
    pub = w.run(lambda: ctx.socket(zmq.PUB))
    try:
        def setup():
            pub.sndhwm = 0
            pub.linger = 0
            pub.bind("tcp://127.0.0.1:*")
            return pub.last_endpoint.decode()

        endpoint = w.run(setup)
        env = dict(os.environ, ZMTP_BACKEND=backend) if backend else dict(os.environ)
        for _ in range(subscribers):
            procs.append(subprocess.Popen([sys.executable, "-c", SUBSCRIBER, lib, endpoint],
                                          stdout=subprocess.PIPE, env=env))
        lines = Lines(procs)
        w.run(lambda: wait_lines(pub, lines, "ready", is_zmtp, on_idle=lambda: pub.send(PROBE)))
        msg = b"m" * SIZE

        def one_round():
            send = pub.send
            for _ in range(MESSAGES):
                send(msg)
            send(END)
            for ln in wait_lines(pub, lines, "done", is_zmtp):
                assert ln == f"done {MESSAGES}", ln  # lossless

        benchmark.pedantic(lambda: w.run(one_round), rounds=3, iterations=1, warmup_rounds=1)
        median = benchmark.stats.stats.median
        benchmark.extra_info["messages"] = MESSAGES
        benchmark.extra_info["subscribers"] = subscribers
        benchmark.extra_info["msg_per_s_per_sub"] = round(MESSAGES / median)
        print(f"\n{impl} PUB -> {subscribers} SUB: {MESSAGES / median:,.0f} msg/s per subscriber "
              f"(median round {median * 1000:.0f} ms)")
        w.run(lambda: pub.send(QUIT))
        for p in procs:
            p.wait(10)
    finally:
        w.run(lambda: pub.close(0))
        ctx.term()
