"""Syscalls per async round trip: zmtp.asyncio REQ and REP in one loop over
tcp, 64 B, counted by ``zmtp.io_stats()`` (both sides together).

    python benchmarks/asyncio_syscalls.py [--n 2000]

Counts, not times: stable on a busy machine, so a change to the event-loop
path (docs/asyncio.md) can be judged by what it saves per message.
"""

from __future__ import annotations

import argparse
import asyncio

import zmtp
import zmtp.asyncio


async def count(n: int) -> dict:
    """io_stats() per round trip over ``n`` round trips after a warm-up."""
    ctx = zmtp.asyncio.Context()
    rep = ctx.socket(zmtp.REP)
    req = ctx.socket(zmtp.REQ)
    try:
        rep.bind("tcp://127.0.0.1:*")
        req.connect(rep.last_endpoint.decode())

        async def serve() -> None:
            for _ in range(n + 10):
                await rep.send(await rep.recv())

        server = asyncio.ensure_future(serve())
        for _ in range(10):
            await req.send(b"x" * 64)
            await req.recv()
        before = zmtp.io_stats()
        for _ in range(n):
            await req.send(b"x" * 64)
            await req.recv()
        after = zmtp.io_stats()
        await asyncio.wait_for(server, 30)
        return {k: (after[k] - before[k]) / n for k in before}
    finally:
        req.close(0)
        rep.close(0)
        ctx.term()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    per = asyncio.run(asyncio.wait_for(count(args.n), 120))
    print(f"per round trip ({args.n} round trips, REQ and REP in one process):")
    for k, v in per.items():
        print(f"  {k:15s} {v:6.2f}")


if __name__ == "__main__":
    main()
