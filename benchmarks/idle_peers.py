"""What idle connections cost: N DEALER peers (in other processes) on one
zmtp ROUTER.

Run:  python benchmarks/idle_peers.py [--peers 1000] [--procs 4]

Each peer connects, sends one message (so the ROUTER has seen it) and then
stays connected and silent.  Prints the ROUTER process's RSS before and
after, and the read pages it holds (an idle connection should hold none).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import resource
import subprocess
import sys
import time

import zmtp

PEER = """
import sys, zmq
ctx = zmq.Context()
socks = []
for i in range(int(sys.argv[2])):
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(sys.argv[1])
    s.send(b"hello")
    socks.append(s)
print("up", flush=True)
sys.stdin.read()  # until the driver closes our stdin
"""


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", type=int, default=1000)
    ap.add_argument("--procs", type=int, default=4, help="peer processes (pyzmq, or zmtp when pyzmq is missing)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.peers + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.peers + 1000), hard))
    have_pyzmq = importlib.util.find_spec("zmq") is not None
    script = PEER if have_pyzmq else PEER.replace("import sys, zmq", "import sys, zmtp as zmq")
    ctx = zmtp.Context()
    router = ctx.socket(zmtp.ROUTER)
    router.rcvtimeo = 30_000
    router.bind("tcp://127.0.0.1:*")
    endpoint = router.last_endpoint.decode()
    gc.collect()
    before = rss_mib()
    share = [args.peers // args.procs + (i < args.peers % args.procs) for i in range(args.procs)]
    procs = [subprocess.Popen([sys.executable, "-c", script, endpoint, str(n)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for n in share if n]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "up"
        t0 = time.monotonic()
        for _ in range(args.peers):
            router.recv_multipart()
        took = time.monotonic() - t0
        time.sleep(1.0)  # idle: the connections settle
        gc.collect()
        after = rss_mib()
        mem = zmtp.memory_stats()
        print(f"{args.peers} idle DEALER peers on one zmtp ROUTER ({zmtp.backend_name()}): "
              f"RSS {before:.1f} -> {after:.1f} MiB (+{after - before:.1f} MiB, "
              f"{(after - before) * 1024 / args.peers:.1f} KiB per peer); read pages held: "
              f"{mem['pages_live']} ({mem['page_bytes_live'] / 1024:.0f} KiB); first messages in {took:.2f} s")
    finally:
        for p in procs:
            if p.stdin is not None:
                p.stdin.close()
            p.wait(30)
        router.close(linger=0)
        ctx.term()


if __name__ == "__main__":
    main()
