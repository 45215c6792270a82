"""What one awaited call costs when it completes at once: ``await send`` and
``await recv`` (a message already queued) on an inproc PAIR of
``zmtp.asyncio``, beside pyzmq's ``zmq.asyncio`` over inproc and asyncio's
own floor (make a future, complete it, await it).

    python benchmarks/asyncio_percall.py [--n 20000] [--rounds 5]

Medians of ``--rounds`` loops of ``--n`` calls each, in microseconds per
call (docs/performance.md, "asyncio rows").  A measurement, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any, Dict, List


async def floor(n: int) -> float:
    """us per create_future + set_result + await."""
    loop = asyncio.get_running_loop()
    t = time.perf_counter()
    for _ in range(n):
        f = loop.create_future()
        f.set_result(None)
        await f
    return (time.perf_counter() - t) / n * 1e6


async def per_call(Z: Any, ZA: Any, n: int, rounds: int) -> Dict[str, float]:
    """us per awaited send and recv (medians over rounds) for one library."""
    ctx = ZA.Context()
    a, b = ctx.socket(Z.PAIR), ctx.socket(Z.PAIR)
    a.sndhwm = b.rcvhwm = 0
    a.bind("inproc://percall")
    b.connect("inproc://percall")
    msg = b"x" * 64
    got: Dict[str, List[float]] = {"send": [], "recv": []}
    try:
        for _ in range(rounds):
            t = time.perf_counter()
            for _ in range(n):
                await a.send(msg)
            got["send"].append((time.perf_counter() - t) / n * 1e6)
            t = time.perf_counter()
            for _ in range(n):
                await b.recv()
            got["recv"].append((time.perf_counter() - t) / n * 1e6)
    finally:
        a.close(linger=0)
        b.close(linger=0)
        ctx.term()
    return {k: statistics.median(v) for k, v in got.items()}


async def main_async(n: int, rounds: int) -> None:
    import zmq
    import zmq.asyncio

    import zmtp
    import zmtp.asyncio

    f = statistics.median([await floor(n) for _ in range(rounds)])
    z = await per_call(zmtp, zmtp.asyncio, n, rounds)
    p = await per_call(zmq, zmq.asyncio, n, rounds)
    print(f"us per awaited call that completes at once ({n} calls, median of {rounds}; inproc PAIR, 64 B)")
    print(f"{'':24s} {'zmtp.asyncio':>12s} {'zmq.asyncio':>12s}")
    print(f"{'await send':24s} {z['send']:12.2f} {p['send']:12.2f}")
    print(f"{'await recv (queued)':24s} {z['recv']:12.2f} {p['recv']:12.2f}")
    print(f"{'asyncio floor (future)':24s} {f:12.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    asyncio.run(main_async(args.n, args.rounds))


if __name__ == "__main__":
    main()
