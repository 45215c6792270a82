"""A/B probe for large frames received (docs/performance.md, "Large frames received"): a pyzmq PUSH
(copy=False) streams COUNT frames of SIZE bytes to a zmtp PULL receiving with copy=False, in this process;
prints msg/s, GB/s, recv calls per MiB and allocations per message (zmtp.io_stats()).

Run: ``python benchmarks/big_recv_ab.py SIZE COUNT [io_uring|epoll]``; alternate two builds with PYTHONPATH.
"""
import sys, time, threading, zmq, zmtp
size = int(sys.argv[1]); count = int(sys.argv[2]); backend = sys.argv[3] if len(sys.argv) > 3 else None
zc = zmq.Context(); push = zc.socket(zmq.PUSH); push.sndhwm = 4
port = push.bind_to_random_port("tcp://127.0.0.1")
ctx = zmtp.Context(backend=backend) if backend else zmtp.Context()
pull = ctx.socket(zmtp.PULL); pull.rcvtimeo = 20000; pull.connect(f"tcp://127.0.0.1:{port}")
buf = bytes(size)
def sender():
    for _ in range(count + 1): push.send(buf, copy=False)
t = threading.Thread(target=sender); t.start()
pull.recv(copy=False)
s0 = zmtp.io_stats() if hasattr(zmtp, "io_stats") else {}
t0 = time.perf_counter()
for _ in range(count): f = pull.recv(copy=False); del f
dt = time.perf_counter() - t0
s1 = zmtp.io_stats() if hasattr(zmtp, "io_stats") else {}
t.join()
d = {k: s1[k]-s0[k] for k in s1 if isinstance(s1[k], int)}
print(f"{size>>10} KiB {backend}: {count/dt:.0f} msg/s {count*size/dt/1e9:.2f} GB/s recv/MiB={d.get('recv',0)*(1<<20)/(count*size):.2f} alloc/msg={d.get('allocations',0)/count:.1f}")
pull.close(linger=0); ctx.term(); push.close(linger=0); zc.term()
