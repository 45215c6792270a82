"""A zmtp PUSH (child process, send(copy=False) of one b"x" * SIZE buffer) streams COUNT messages to a
zmtp PULL here; prints msg/s, GB/s, recv calls and allocations per message (zmtp.io_stats()), the kept
mappings' bytes (memory_stats()["warm_bytes"]) and each process's CPU (os.times(): user and system, as a
share of the wall time).  docs/performance.md, "Large messages, session 18" and the sweep's tcp 256 KiB
row.

Run: ``python benchmarks/big_stream_ab.py SIZE COUNT [--copy] [--buf BYTES] [--transport tcp|ipc]``
(``--copy``: the PULL receives bytes, copy=True; ``--buf``: SNDBUF and RCVBUF on both ends); alternate
two builds with PYTHONPATH for an A/B.  ``SENDER_PREFIX="perf record -o s.data -g"`` runs the sender under
a profiler.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import zmtp

SEND = r'''
import os, sys, time, zmtp
ctx = zmtp.Context(); s = ctx.socket(zmtp.PUSH); buf = int(sys.argv[4])
if buf > 0:
    s.sndbuf = s.rcvbuf = buf
s.connect(sys.argv[1]); m = b"x" * int(sys.argv[2])
c0, t0 = os.times(), time.perf_counter()
for _ in range(int(sys.argv[3])):
    s.send(m, copy=False)
s.close(linger=-1)
c1, dt = os.times(), time.perf_counter() - t0
print(f"sender cpu user={(c1.user - c0.user) / dt:.0%} sys={(c1.system - c0.system) / dt:.0%}", file=sys.stderr)
'''

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("size", type=int)
p.add_argument("count", type=int)
p.add_argument("--copy", action="store_true")
p.add_argument("--buf", type=int, default=-1)
p.add_argument("--transport", choices=("tcp", "ipc"), default="tcp")
a = p.parse_args()
ctx = zmtp.Context()
pull = ctx.socket(zmtp.PULL)
if a.buf > 0:
    pull.sndbuf = pull.rcvbuf = a.buf
pull.bind("tcp://127.0.0.1:*" if a.transport == "tcp" else f"ipc://{tempfile.mkdtemp()}/s")
ep = pull.last_endpoint.decode()
sender = subprocess.Popen(os.environ.get("SENDER_PREFIX", "").split() +
                          [sys.executable, "-c", SEND, ep, str(a.size), str(a.count), str(a.buf)])
pull.recv(copy=a.copy)
t0, s0, c0 = time.perf_counter(), zmtp.io_stats(), os.times()
for _ in range(a.count - 1):
    f = pull.recv(copy=a.copy)
    del f
dt, s1, c1 = time.perf_counter() - t0, zmtp.io_stats(), os.times()
sender.wait()
n = a.count - 1
print(f"{a.transport} {a.size} B copy={a.copy} buf={a.buf}: {n / dt:.1f} msg/s {n * a.size / dt / 1e9:.2f} GB/s "
      f"recv/msg={(s1['recv'] - s0['recv']) / n:.1f} allocs/msg={(s1['allocations'] - s0['allocations']) / n:.1f} "
      f"warm={zmtp.memory_stats()['warm_bytes'] >> 20} MiB receiver cpu user={(c1.user - c0.user) / dt:.0%} "
      f"sys={(c1.system - c0.system) / dt:.0%}")
