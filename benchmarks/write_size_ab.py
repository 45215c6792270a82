"""A/B of the write coalescing size (docs/performance.md, "Write size"): a zmtp PUSH in this process sends COUNT
messages of SIZE bytes back to back (one send() each) to a zmtp PULL (recv(), copy=True) in a child process,
once per write_buf_size given (Socket._buffers), interleaved over ROUNDS; prints the receiver's msg/s, median
and every run.

Run: ``python benchmarks/write_size_ab.py SIZE COUNT 8192,65536[,...] [ROUNDS]``
"""
import sys, time, subprocess, os, statistics
size=int(sys.argv[1]); count=int(sys.argv[2]); wbs=[int(x) for x in sys.argv[3].split(',')]; rounds=int(sys.argv[4]) if len(sys.argv)>4 else 3
import zmtp
RECV = r'''
import sys, time, zmtp
ctx=zmtp.Context(); s=ctx.socket(zmtp.PULL); s.bind(sys.argv[1]); print(s.last_endpoint.decode(), flush=True)
n=int(sys.argv[2]); s.recv(); t0=time.perf_counter()
for _ in range(n-1): s.recv()
print((n-1)/(time.perf_counter()-t0), flush=True)
'''
res={w:[] for w in wbs}
for r in range(rounds):
    for w in wbs:
        p=subprocess.Popen([sys.executable,'-c',RECV,'tcp://127.0.0.1:*',str(count)],stdout=subprocess.PIPE,text=True)
        ep=p.stdout.readline().strip()
        ctx=zmtp.Context(); s=ctx.socket(zmtp.PUSH); s._buffers(-1,w,-1); s.connect(ep)
        msg=b'x'*size
        for _ in range(count): s.send(msg)
        res[w].append(float(p.stdout.readline())); p.wait(); s.close(); ctx.term()
for w in wbs: print(w, f"{statistics.median(res[w]):.0f}", [round(x) for x in res[w]])
