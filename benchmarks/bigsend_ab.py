"""A/B: large frames sent by reference vs copied (issue 19, "Large frames sent").

zmtp PUSH in this process, a pyzmq PULL (recv copy=False) in another; each
round sends COUNT frames of SIZE bytes and times until the receiver has them
all.  A = copied (the by-reference threshold set above the size), B = by
reference (the default threshold), interleaved; medians printed.  Short runs
only on a shared machine: the figures are for comparing A with B in the same
run, not absolute.

    python benchmarks/bigsend_ab.py [--sizes 16384,65536,1048576] [--rounds 5]
        [--transport tcp|ipc] [--backend NAME] [--data bytes|bytearray]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from typing import Dict, List


def _sink(endpoint: str, ready: "mp.Queue[int]", total: int) -> None:
    import zmq

    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(endpoint)
    ready.put(1)
    for _ in range(total):
        pull.recv(copy=False)
    pull.close(linger=0)
    ctx.term()


def _count_for(size: int) -> int:
    """Enough frames for ~64 MiB a round, at least 8 and at most 20000."""
    return max(8, min(20000, (64 << 20) // size))


def main() -> None:
    """Run the interleaved rounds and print one row per size."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="16384,65536,262144,1048576,16777216")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--transport", choices=["tcp", "ipc"], default="tcp")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--data", choices=["bytes", "bytearray"], default="bytes")
    a = ap.parse_args()
    if a.backend:
        os.environ["ZMTP_BACKEND"] = a.backend
    import zmtp
    from zmtp._zmtp import _SendRef

    sizes = [int(s) for s in a.sizes.split(",")]
    print(f"{'size':>10} {'copied msg/s':>14} {'by ref msg/s':>14} {'ref/copy':>9}")
    for size in sizes:
        count = _count_for(size)
        payload = bytes(size) if a.data == "bytes" else bytearray(size)
        res: Dict[str, List[float]] = {"copy": [], "ref": []}
        for _ in range(a.rounds):
            for mode in ("copy", "ref"):
                _SendRef._set_threshold(size + 1 if mode == "copy" else 0)
                if a.transport == "tcp":
                    import socket

                    s = socket.socket()
                    s.bind(("127.0.0.1", 0))
                    ep = f"tcp://127.0.0.1:{s.getsockname()[1]}"
                    s.close()
                else:
                    ep = f"ipc://{tempfile.mktemp(prefix='zmtp-ab-')}"
                ready: "mp.Queue[int]" = mp.Queue()
                p = mp.Process(target=_sink, args=(ep, ready, count + 1))
                p.start()
                ready.get(timeout=30)
                ctx = zmtp.Context()
                push = ctx.socket(zmtp.PUSH)
                push.copy_threshold = size + 1 if mode == "copy" else 65536  # copy=False's
                push.connect(ep)
                push.send(b"x")  # connected
                t0 = time.perf_counter()
                for _i in range(count):
                    push.send(payload, copy=False)
                push.close(linger=-1)
                ctx.term()
                p.join(120)
                res[mode].append(count / (time.perf_counter() - t0))
        _SendRef._set_threshold(0)
        c, r = statistics.median(res["copy"]), statistics.median(res["ref"])
        print(f"{size:>10} {c:>14.0f} {r:>14.0f} {r / c:>9.2f}")


if __name__ == "__main__":
    main()
