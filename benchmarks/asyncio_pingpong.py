"""zmtp.asyncio against pyzmq's zmq.asyncio, side by side (docs/asyncio.md, "Measured").

Run:  python benchmarks/asyncio_pingpong.py [--rounds 3]

Two figures per implementation, each run in a fresh subprocess, alternating:

* round trip: a REQ and a REP on one event loop over ``tcp://127.0.0.1``, the
  REP echoing in a task, 2 000 awaited send/recv pairs of 64 B; p50 and p99;
* throughput: a blocking pyzmq PUSH in a thread sends 100 000 x 64 B to an
  async PULL over tcp; messages per second after the first one.

Prints the median of the rounds for each.  A measurement, never a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from typing import Dict, List

CHILD = r"""
import asyncio, sys, threading, time
import zmq
impl, what = sys.argv[1], sys.argv[2]
if impl == "zmtp":
    import zmtp as Z
    import zmtp.asyncio as ZA
else:
    Z = zmq
    import zmq.asyncio as ZA

async def round_trip(n=2000):
    ctx = ZA.Context()
    rep = ctx.socket(Z.REP)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    req = ctx.socket(Z.REQ)
    req.connect(f"tcp://127.0.0.1:{port}")

    async def server():
        for _ in range(n):
            await rep.send(await rep.recv())

    task = asyncio.ensure_future(server())
    lat = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        await req.send(b"x" * 64)
        await req.recv()
        lat.append(time.perf_counter_ns() - t0)
    await task
    lat.sort()
    print(lat[n // 2] / 1000, lat[int(n * 0.99)] / 1000)
    req.close(0); rep.close(0); ctx.term()

async def throughput(n=100000):
    ctx = ZA.Context()
    pull = ctx.socket(Z.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")

    def pusher():
        c = zmq.Context()
        p = c.socket(zmq.PUSH)
        p.connect(f"tcp://127.0.0.1:{port}")
        for _ in range(n):
            p.send(b"x" * 64)
        p.close(); c.term()

    th = threading.Thread(target=pusher)
    th.start()
    await pull.recv()
    t0 = time.perf_counter()
    for _ in range(n - 1):
        await pull.recv()
    print((n - 1) / (time.perf_counter() - t0))
    th.join()
    pull.close(0); ctx.term()

asyncio.run(round_trip() if what == "rtt" else throughput())
"""


def run(impl: str, what: str) -> List[float]:
    out = subprocess.run([sys.executable, "-c", CHILD, impl, what], check=True, capture_output=True,
                         text=True, timeout=300).stdout
    return [float(x) for x in out.split()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    got: Dict[str, List[List[float]]] = {}
    for _ in range(args.rounds):
        for impl in ("zmtp", "pyzmq"):
            for what in ("rtt", "thr"):
                got.setdefault(f"{impl} {what}", []).append(run(impl, what))
    print(f"medians of {args.rounds} rounds")
    for impl in ("zmtp", "pyzmq"):
        rtt = got[f"{impl} rtt"]
        thr = got[f"{impl} thr"]
        print(f"{impl:6} round trip p50 {statistics.median(r[0] for r in rtt):8.1f} us"
              f"  p99 {statistics.median(r[1] for r in rtt):8.1f} us"
              f"  async PULL {statistics.median(t[0] for t in thr):12,.0f} msg/s")


if __name__ == "__main__":
    main()
