"""zmtp.asyncio against pyzmq's zmq.asyncio, side by side (docs/asyncio.md, "Measured").

Run:  python benchmarks/asyncio_pingpong.py [--rounds 3]

Two figures per implementation, each run in a fresh subprocess, alternating:

* round trip: a REQ and a REP on one event loop over ``tcp://127.0.0.1``, the
  REP echoing in a task, 2 000 awaited send/recv pairs of 64 B; p50 and p99;
* throughput: a blocking pyzmq PUSH in a thread sends 100 000 x 64 B to an
  async PULL over tcp; messages per second after the first one.

Prints the median of the rounds for each.  A measurement, never a test.
The coroutines and sockets are ``zmtp.perf``'s (``zmtp/perf/aio.py``), whose
``async_*`` rows measure the same API with each side in its own process
(``python -m zmtp.perf --scenario async_reqrep,async_pushpull``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import threading
import time
from typing import Dict, List

from zmtp.perf.aio import AsyncSide, Tally, async_echo, async_ping_pong, async_sink, by_deadline
from zmtp.perf.config import impl_by_name
from zmtp.perf.loops import percentile, rate

TIMEOUT_S = 300.0


async def round_trip(impl: str, n: int = 2000) -> List[float]:
    """p50 and p99 in us of `n` round trips between a REQ and a REP echo task on this loop."""
    side = AsyncSide(impl_by_name(impl))
    try:
        rep, endpoint = side.bind("rep", "tcp://127.0.0.1:*")
        req = side.connect("req", endpoint)
        deadline, tally = time.monotonic() + TIMEOUT_S, Tally(f"{impl} REQ/REP")
        server = asyncio.ensure_future(async_echo(rep, n, tally))
        times = sorted(await by_deadline(async_ping_pong(req, b"x" * 64, n, tally), deadline, tally))
        await by_deadline(server, deadline, tally)
    finally:
        side.close()
    return [percentile(times, 50) / 1000, percentile(times, 99) / 1000]


async def throughput(impl: str, n: int = 100_000) -> List[float]:
    """msg/s of an async PULL receiving `n` x 64 B from a blocking pyzmq PUSH in a thread."""
    import zmq

    side = AsyncSide(impl_by_name(impl))
    try:
        pull, endpoint = side.bind("pull", "tcp://127.0.0.1:*")

        def pusher() -> None:
            ctx = zmq.Context()
            push = ctx.socket(zmq.PUSH)
            push.connect(endpoint)
            for _ in range(n):
                push.send(b"x" * 64)
            push.close()
            ctx.term()

        thread = threading.Thread(target=pusher)
        thread.start()
        tally = Tally(f"{impl} PULL")
        first, last = await by_deadline(async_sink(pull.recv, n, tally), time.monotonic() + TIMEOUT_S, tally)
        thread.join()
    finally:
        side.close()
    return [rate(n, first, last)]


def run(impl: str, what: str) -> List[float]:
    """One figure, measured in a fresh process."""
    out = subprocess.run([sys.executable, __file__, "--child", impl, what], check=True, capture_output=True,
                         text=True, timeout=TIMEOUT_S + 60).stdout
    return [float(x) for x in out.split()]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("IMPL", "WHAT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        impl, what = args.child
        print(*asyncio.run(round_trip(impl) if what == "rtt" else throughput(impl)))
        return
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
