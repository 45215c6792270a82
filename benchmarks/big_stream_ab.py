"""A zmtp PUSH (child process, send(copy=False) of one b"x" * SIZE buffer) streams COUNT messages to a
zmtp PULL here; prints msg/s, GB/s, allocations and recv calls per message (zmtp.io_stats()) and the kept
mappings' bytes (memory_stats()["warm_bytes"]).  docs/performance.md, "Large messages, session 18".

Run: ``python benchmarks/big_stream_ab.py SIZE COUNT [copy]`` (``copy``: the PULL receives bytes,
copy=True; default Frames); alternate two builds with PYTHONPATH for an A/B.
"""
import sys, time, zmtp, subprocess
size=int(sys.argv[1]); count=int(sys.argv[2]); copy = len(sys.argv)>3 and sys.argv[3]=='copy'
SEND=r'''
import sys, zmtp
ctx=zmtp.Context(); s=ctx.socket(zmtp.PUSH); s.connect(sys.argv[1]); m=b"x"*int(sys.argv[2])
for _ in range(int(sys.argv[3])): s.send(m, copy=False)
s.close(linger=-1)
'''
ctx=zmtp.Context(); p=ctx.socket(zmtp.PULL); p.bind("tcp://127.0.0.1:*"); ep=p.last_endpoint.decode()
c=subprocess.Popen([sys.executable,'-c',SEND,ep,str(size),str(count)])
p.recv(copy=copy); t0=time.perf_counter(); s0=zmtp.io_stats()
for _ in range(count-1): f=p.recv(copy=copy); del f
dt=time.perf_counter()-t0; s1=zmtp.io_stats(); c.wait()
print(f"{size>>20} MiB copy={copy}: {(count-1)/dt:.1f} msg/s {(count-1)*size/dt/1e9:.2f} GB/s allocs/msg={(s1['allocations']-s0['allocations'])/(count-1):.1f} recv/msg={(s1['recv']-s0['recv'])/(count-1):.1f}", zmtp.memory_stats()['warm_bytes']>>20)
