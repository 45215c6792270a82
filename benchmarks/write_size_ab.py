"""A/B of the write coalescing size (docs/performance.md, "Large messages, session 18"): a zmtp PUSH in this
process sends COUNT messages of SIZE bytes back to back (one send() each) to a zmtp PULL (recv(),
copy=True) in a child process, once per write_buf_size given (Socket._buffers), interleaved over ROUNDS;
prints the receiver's msg/s, median and every run.

Run: ``python benchmarks/write_size_ab.py SIZE COUNT 8192,65536[,...] [ROUNDS]``
"""
import statistics
import subprocess
import sys

import zmtp

RECV = r'''
import sys, time, zmtp
ctx = zmtp.Context(); s = ctx.socket(zmtp.PULL); s.bind(sys.argv[1]); print(s.last_endpoint.decode(), flush=True)
n = int(sys.argv[2]); s.recv(); t0 = time.perf_counter()
for _ in range(n - 1):
    s.recv()
print((n - 1) / (time.perf_counter() - t0), flush=True)
'''

size, count = int(sys.argv[1]), int(sys.argv[2])
sizes = [int(x) for x in sys.argv[3].split(",")]
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
rates = {w: [] for w in sizes}
msg = b"x" * size
for _ in range(rounds):
    for w in sizes:
        peer = subprocess.Popen([sys.executable, "-c", RECV, "tcp://127.0.0.1:*", str(count)],
                                stdout=subprocess.PIPE, text=True)
        endpoint = peer.stdout.readline().strip()
        ctx = zmtp.Context()
        push = ctx.socket(zmtp.PUSH)
        push._buffers(-1, w, -1)
        push.connect(endpoint)
        for _ in range(count):
            push.send(msg)
        rates[w].append(float(peer.stdout.readline()))
        peer.wait()
        push.close()
        ctx.term()
for w in sizes:
    print(w, f"{statistics.median(rates[w]):.0f}", [round(x) for x in rates[w]])
