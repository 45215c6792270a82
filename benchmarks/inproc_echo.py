"""inproc REQ/REP round trip with the server written the usual way: a
thread running ``rep.send(rep.recv())`` in a loop, the client in the main
thread.  Prints the mean round trip and zmtp's syscalls per round trip.

Run:  ZMTP_BACKEND=io_uring python benchmarks/inproc_echo.py [--count 3000]

(The perf table's inproc_reqrep row times the same exchange with its own
driver; the two differ in when each thread gives the GIL back, which is
what ZM_INPROC_GIL_GRACE_NS in src/py_wait.c is about.)
"""

from __future__ import annotations

import argparse
import threading
import time

import zmtp

WARMUP = 200


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=3000)
    args = ap.parse_args()
    ctx = zmtp.Context()
    rep = ctx.socket(zmtp.REP)
    rep.bind("inproc://echo")

    def serve() -> None:
        for _ in range(WARMUP + args.count):
            rep.send(rep.recv())

    server = threading.Thread(target=serve)
    server.start()
    req = ctx.socket(zmtp.REQ)
    req.connect("inproc://echo")
    payload = b"x" * 64
    for _ in range(WARMUP):
        req.send(payload)
        req.recv()
    before = zmtp.io_stats()
    t0 = time.perf_counter()
    for _ in range(args.count):
        req.send(payload)
        req.recv()
    took = time.perf_counter() - t0
    after = zmtp.io_stats()
    server.join()
    ctx.destroy(linger=0)
    per = {k: round((after[k] - before[k]) / args.count, 2) for k in after if after[k] != before[k]}
    print(f"{zmtp.backend_name()}: inproc REQ/REP round trip {took / args.count * 1e6:.1f} us; "
          f"per round trip: {per or 'no syscall'}")


if __name__ == "__main__":
    main()
