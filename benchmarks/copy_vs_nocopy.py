"""recv(copy=True) against recv(copy=False), by message size.

Run:  python benchmarks/copy_vs_nocopy.py [--transport ipc|tcp] [--runs 3]

A PUSH/PULL pair in one thread (send, then recv, so only the receive path
differs between the columns); prints the time per message, the minimum of
`runs` runs, for 64 B to 4 MiB.  docs/performance.md quotes its table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import zmtp

SIZES = [64, 1024, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20]


def per_message_us(push, pull, payload: bytes, copy: bool, n: int) -> float:
    recv, send = pull.recv, push.send
    for _ in range(min(100, n)):  # warm up: pages cached, connection busy
        send(payload)
        recv(copy=copy)
    t0 = time.perf_counter()
    for _ in range(n):
        send(payload)
        recv(copy=copy)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transport", choices=("ipc", "tcp"), default="ipc")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    ctx = zmtp.Context()
    pull = ctx.socket(zmtp.PULL)
    if args.transport == "ipc":
        endpoint = f"ipc://{tempfile.mkdtemp()}/copy"
        pull.bind(endpoint)
    else:
        pull.bind("tcp://127.0.0.1:*")
        endpoint = pull.last_endpoint.decode()
    push = ctx.socket(zmtp.PUSH)
    push.connect(endpoint)
    print(f"zmtp {zmtp.__version__} on {zmtp.backend_name()}, {args.transport}, "
          f"min of {args.runs} runs, {os.cpu_count()} CPUs")
    print(f"{'size':>8}  {'copy=True':>12}  {'copy=False':>12}  {'False/True':>10}")
    for size in SIZES:
        payload = os.urandom(size)
        n = max(50, min(20_000, (64 << 20) // size))
        t_copy = min(per_message_us(push, pull, payload, True, n) for _ in range(args.runs))
        t_zero = min(per_message_us(push, pull, payload, False, n) for _ in range(args.runs))
        label = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB" if size >= 1024 else f"{size} B"
        print(f"{label:>8}  {t_copy:10.2f}us  {t_zero:10.2f}us  {t_zero / t_copy:10.2f}")
    push.close(linger=0)
    pull.close(linger=0)
    ctx.term()


if __name__ == "__main__":
    main()
