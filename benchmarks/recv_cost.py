"""The cost of one recv() of a queued 64 B message, in one thread.

Run:  python benchmarks/recv_cost.py [--size 64] [--batches 300]

A PUSH sends 1000 messages with one send_batch() over ipc; the PULL then
receives them, timed; the figure is the minimum over the batches of the
mean time per recv() (reading the socket and decoding included).  Used to
measure receive-path levers with benchmarks/compare_builds.py's worktrees
(``PYTHONPATH=<worktree> python benchmarks/recv_cost.py``).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import zmtp

BATCH = 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batches", type=int, default=300)
    args = ap.parse_args()
    ctx = zmtp.Context()
    pull = ctx.socket(zmtp.PULL)
    endpoint = f"ipc://{tempfile.mkdtemp()}/recv-cost"
    pull.bind(endpoint)
    push = ctx.socket(zmtp.PUSH)
    push.connect(endpoint)
    batch = [b"x" * args.size] * BATCH
    recv, send_batch, clock = pull.recv, push.send_batch, time.perf_counter_ns

    def one_batch() -> float:
        send_batch(batch)
        t0 = clock()
        for _ in range(BATCH):
            recv()
        return (clock() - t0) / BATCH

    for _ in range(50):  # warm up: pages cached, queues grown
        one_batch()
    best = min(one_batch() for _ in range(args.batches))
    print(f"zmtp {zmtp.__version__} ({zmtp.backend_name()}): {best:.1f} ns per recv() of {args.size} B "
          f"(min over {args.batches} batches of {BATCH})")
    push.close(linger=0)
    pull.close(linger=0)
    ctx.term()


if __name__ == "__main__":
    main()
