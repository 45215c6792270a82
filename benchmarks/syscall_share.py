"""How much of a receiver's time its recv syscalls cost: the bound on what
io_uring's multishot recv with provided buffers could save.

Run:  python benchmarks/syscall_share.py [--count 2000000] [--rounds 5]

A sender process (zmtp PUSH, send_batch, so that the receiver is the
bottleneck) feeds 64 B messages over tcp to a zmtp PULL in this process
whose read page is 4, 16, 64 (the default) or 256 KiB, rounds interleaved.
A smaller page means more recv syscalls per message (``zmtp.io_stats()``
counts them); the slope of receive time against recv syscalls per message
is what one recv syscall costs here, and the time those syscalls take at
the default page size is all that removing them (a multishot recv
completing into provided buffers) could save.  The same figures give the
io_uring_enter calls per message, which registered fds would make cheaper,
and the cost of a bare syscall's entry and exit (what submitting a send
with the wait in one io_uring_enter saves per send).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from typing import Dict, List, Tuple

import zmtp

PAGES = (4096, 16384, 65536, 262144)
BATCH = 1000


def _sender(endpoint: str, count: int) -> None:
    ctx = zmtp.Context()
    push = ctx.socket(zmtp.PUSH)
    push.sndhwm = 0
    push.connect(endpoint)
    batch = [b"x" * 64] * BATCH
    for _ in range(count // BATCH):
        push.send_batch(batch)
    push.close(linger=-1)
    ctx.term()


def one_run(page: int, count: int) -> Tuple[float, float, float]:
    """(ns per message, recv syscalls per message, io_uring_enter per message)."""
    ctx = zmtp.Context()
    pull = ctx.socket(zmtp.PULL, config=zmtp.BufferConfig.custom(page, 8192))
    pull.rcvhwm = 0
    pull.bind("tcp://127.0.0.1:*")
    proc = multiprocessing.Process(target=_sender, args=(pull.last_endpoint.decode(), count))
    proc.start()
    recv = pull.recv
    recv()  # the sender is up
    before = zmtp.io_stats()
    t0 = time.perf_counter_ns()
    for _ in range(count - 1):
        recv()
    took = time.perf_counter_ns() - t0
    after = zmtp.io_stats()
    proc.join()
    pull.close()
    ctx.term()
    n = count - 1
    return took / n, (after["recv"] - before["recv"]) / n, (after["io_uring_enter"] - before["io_uring_enter"]) / n


def bare_syscall_ns(n: int = 2_000_000) -> float:
    """A syscall's entry and exit seen from Python: os.getppid() (a real
    syscall each time) against len(()) (a builtin call without one)."""
    import os

    def loop(fn, arg) -> float:
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter_ns()
            for _ in range(n // 10):
                fn(*arg); fn(*arg); fn(*arg); fn(*arg); fn(*arg)
                fn(*arg); fn(*arg); fn(*arg); fn(*arg); fn(*arg)
            best = min(best, (time.perf_counter_ns() - t0) / n)
        return best

    return loop(os.getppid, ()) - loop(len, ((),))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    runs: Dict[int, List[Tuple[float, float, float]]] = {p: [] for p in PAGES}
    for r in range(args.rounds):
        for page in PAGES:
            runs[page].append(one_run(page, args.count))
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    print(f"backend {zmtp.backend_name()}; {args.count} messages of 64 B per run; medians of {args.rounds}")
    print(f"{'read page':>10}  {'ns/msg':>8}  {'recv/msg':>9}  {'enter/msg':>9}")
    med = {}
    for page in PAGES:
        ns = statistics.median(x[0] for x in runs[page])
        rv = statistics.median(x[1] for x in runs[page])
        en = statistics.median(x[2] for x in runs[page])
        med[page] = (ns, rv)
        print(f"{page // 1024:>7} KiB  {ns:8.1f}  {rv:9.4f}  {en:9.4f}")
    # Least squares over the four points: ns/msg = a + b * recv/msg.
    xs = [med[p][1] for p in PAGES]
    ys = [med[p][0] for p in PAGES]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    default_ns, default_rv = med[65536]
    print(f"one recv syscall costs about {b:.0f} ns here (slope); at the default 64 KiB page the recv "
          f"syscalls take {b * default_rv:.2f} ns of {default_ns:.1f} ns per message "
          f"({100 * b * default_rv / default_ns:.1f} %): the most a multishot recv could save")
    print(f"a bare syscall's entry and exit: {bare_syscall_ns():.0f} ns (os.getppid() less a builtin call): "
          "what putting a send into the next io_uring_enter saves per send")


if __name__ == "__main__":
    main()
