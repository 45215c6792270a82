"""Async REQ/REP round trip with each side in its own process: zmtp.asyncio
against pyzmq's zmq.asyncio (docs/asyncio.md, "Measured"; the issue's
"async REQ/REP 64 B round trip p50, each side a coroutine in its own
process").

Run:  python benchmarks/asyncio_rtt_procs.py [--rounds 5] [--n 2000]

Each round starts, per implementation (alternating), a REP process (a
coroutine echoing on ``tcp://127.0.0.1``) and a REQ process (a coroutine
timing ``n`` awaited send/recv pairs of 64 B after 200 warm-up ones),
and prints the p50 and p99 of that round.  Prints the median over the
rounds for each.  A third implementation, ``asyncio``, is the floor: the
same two coroutines over plain tcp sockets (a persistent ``add_reader`` and
a future per 64-byte receive, no ZMTP).  A measurement, never a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from typing import Dict, List, Tuple

CHILD = r"""
import asyncio, sys, time
impl, role, endpoint, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if impl == "asyncio":
    import socket
elif impl == "zmtp":
    import zmtp as Z
    import zmtp.asyncio as ZA
else:
    import zmq as Z
    import zmq.asyncio as ZA

WARM = 200

async def rep():
    ctx = ZA.Context()
    s = ctx.socket(Z.REP)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    for _ in range(n + WARM):
        await s.send(await s.recv())
    s.close(linger=1000)
    ctx.term()

async def req():
    ctx = ZA.Context()
    s = ctx.socket(Z.REQ)
    s.connect(endpoint)
    msg = b"x" * 64
    lat = []
    for i in range(n + WARM):
        t0 = time.perf_counter_ns()
        await s.send(msg)
        await s.recv()
        if i >= WARM:
            lat.append(time.perf_counter_ns() - t0)
    lat.sort()
    print(lat[n // 2] / 1000, lat[int(n * 0.99)] / 1000, flush=True)
    s.close(linger=0)
    ctx.term()

class Raw:
    # The floor: a plain tcp socket, a persistent add_reader and a future
    # per 64-byte receive, as an asyncio socket wrapper does with no ZMTP.

    def __init__(self, sock):
        self.sock = sock
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.loop = asyncio.get_running_loop()
        self.buf = b""
        self.waiter = None
        self.loop.add_reader(sock.fileno(), self._readable)

    def _readable(self):
        try:
            self.buf += self.sock.recv(65536)
        except BlockingIOError:
            return
        if self.waiter is not None and len(self.buf) >= 64 and not self.waiter.done():
            self.waiter.set_result(None)

    async def recv(self):
        if len(self.buf) < 64:
            self.waiter = self.loop.create_future()
            await self.waiter
        msg, self.buf = self.buf[:64], self.buf[64:]
        return msg

    async def send(self, msg):
        self.sock.send(msg)

async def raw_rep():
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    print(lsock.getsockname()[1], flush=True)
    conn, _ = await asyncio.get_running_loop().sock_accept(lsock)
    s = Raw(conn)
    for _ in range(n + WARM):
        await s.send(await s.recv())
    conn.close()

async def raw_req():
    host, port = endpoint[len("tcp://"):].split(":")
    sock = socket.create_connection((host, int(port)))
    s = Raw(sock)
    msg = b"x" * 64
    lat = []
    for i in range(n + WARM):
        t0 = time.perf_counter_ns()
        await s.send(msg)
        await s.recv()
        if i >= WARM:
            lat.append(time.perf_counter_ns() - t0)
    lat.sort()
    print(lat[n // 2] / 1000, lat[int(n * 0.99)] / 1000, flush=True)
    sock.close()

if impl == "asyncio":
    asyncio.run(raw_rep() if role == "rep" else raw_req())
else:
    asyncio.run(rep() if role == "rep" else req())
"""


def one(impl: str, n: int) -> Tuple[float, float]:
    """One round of `impl`: (p50, p99) in microseconds."""
    server = subprocess.Popen([sys.executable, "-c", CHILD, impl, "rep", "-", str(n)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        out = subprocess.run([sys.executable, "-c", CHILD, impl, "req", f"tcp://127.0.0.1:{port}", str(n)],
                             capture_output=True, text=True, timeout=300, check=True).stdout
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    p50, p99 = out.split()
    return float(p50), float(p99)


def main() -> None:
    """Alternate the implementations for --rounds rounds; print medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    got: Dict[str, List[Tuple[float, float]]] = {"zmtp": [], "pyzmq": [], "asyncio": []}
    for r in range(args.rounds):
        for impl in ("zmtp", "pyzmq", "asyncio") if r % 2 == 0 else ("asyncio", "pyzmq", "zmtp"):
            got[impl].append(one(impl, args.n))
            print(f"round {r + 1} {impl:6} p50 {got[impl][-1][0]:8.1f} us  p99 {got[impl][-1][1]:8.1f} us",
                  file=sys.stderr)
    print(f"medians of {args.rounds} rounds, {args.n} round trips each, tcp 64 B, REQ and REP in two processes")
    for impl, rows in got.items():
        print(f"{impl:6} p50 {statistics.median(p for p, _ in rows):8.1f} us  "
              f"p99 {statistics.median(q for _, q in rows):8.1f} us")
    z, p = (statistics.median(x for x, _ in got[k]) for k in ("zmtp", "pyzmq"))
    print(f"zmtp / pyzmq (p50): {z / p:.2f}")
    print(f"asyncio = the floor: plain tcp sockets on the same loop, a future per receive, no ZMTP; "
          f"zmtp / floor (p50): {z / statistics.median(x for x, _ in got['asyncio']):.2f}")


if __name__ == "__main__":
    main()
