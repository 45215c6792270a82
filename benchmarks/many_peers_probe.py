"""Per-request cost of a zmtp ROUTER with K idle pyzmq DEALERs (docs/performance.md, "Many peers"): one
active DEALER makes R round trips; prints round trips/s and zmtp.io_stats() per request (recv,
epoll_ctl, waits...).

Run: ``python benchmarks/many_peers_probe.py LABEL K [R]`` (LABEL names the run, e.g. the backend set
with ZMTP_BACKEND).
"""
import sys, time, zmq, zmtp
from zmtp import _zmtp
be = sys.argv[1]; K = int(sys.argv[2]); R = int(sys.argv[3]) if len(sys.argv) > 3 else 300
import resource
s,h=resource.getrlimit(resource.RLIMIT_NOFILE); resource.setrlimit(resource.RLIMIT_NOFILE,(h,h))

ctx = zmtp.Context()
r = ctx.socket(zmtp.ROUTER); r.bind("tcp://127.0.0.1:*"); ep = r.last_endpoint.decode()
zc = zmq.Context(); zc.set(zmq.MAX_SOCKETS, K+100)
idle = []
for i in range(K):
    d = zc.socket(zmq.DEALER); d.connect(ep); d.send(b"hi"); idle.append(d)
for i in range(K): r.recv_multipart()
a = zc.socket(zmq.DEALER); a.connect(ep)
a.send(b"x"); r.send_multipart(r.recv_multipart()); a.recv()
import threading
def client():
    for i in range(R):
        a.send(b"x"); a.recv()
t = threading.Thread(target=client); 
s0 = _zmtp.io_stats(); t0=time.perf_counter(); t.start()
for i in range(R): r.send_multipart(r.recv_multipart())
t.join(); dt=time.perf_counter()-t0
s1 = _zmtp.io_stats()
print(be, K, "rt/s %.0f" % (R/dt), {k:round((s1[k]-s0[k])/R,1) for k in s0})
