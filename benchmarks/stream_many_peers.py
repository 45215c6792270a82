"""A zmtp STREAM socket with K raw tcp peers (plain Python sockets, this process) answering each in turn:
prints sends/s of [id, data] to a named peer, the cost the routing-id lookup adds with K connected
(docs/performance.md, "Many peers: STREAM's lookup..."). Then a REQ connected to K listeners that never speak ZMTP and to
one REP (zmtp, same context), round trips with the REP: the cost K connections add to a REQ's send and
receive.

Run: ``python benchmarks/stream_many_peers.py K [ROUNDS]`` (alternate two builds with PYTHONPATH).
"""
import resource
import socket
import sys
import time

import zmtp

K = int(sys.argv[1])
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

ctx = zmtp.Context()
st = ctx.socket(zmtp.STREAM)
st.bind("tcp://127.0.0.1:*")
port = int(st.last_endpoint.decode().rsplit(":", 1)[1])
peers = []
for _ in range(K):
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"hi")
    peers.append(c)
ids = []
while len(ids) < K:
    ident, data = st.recv_multipart()
    if data:
        ids.append(ident)
t0 = time.perf_counter()
for _ in range(ROUNDS):
    for ident in ids:
        st.send_multipart([ident, b"x"])
dt = time.perf_counter() - t0
print(f"STREAM, {K} peers: {ROUNDS * K / dt:,.0f} sends/s")
for c in peers:
    c.close()
st.close(linger=0)

req = ctx.socket(zmtp.REQ)
req.immediate = 1  # only connections whose handshake is done take requests
silent = []
for _ in range(K):  # listeners that never speak ZMTP: connections in s->conns, never picked
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    req.connect(f"tcp://127.0.0.1:{ls.getsockname()[1]}")
    silent.append(ls)
rep = ctx.socket(zmtp.REP)
rep.bind("tcp://127.0.0.1:*")
req.connect(rep.last_endpoint.decode())
req.send(b"q")
rep.send(rep.recv())
req.recv()
n = ROUNDS * max(K, 1000)  # K = 0: the baseline
t0 = time.perf_counter()
for _ in range(n):
    req.send(b"q")
    rep.send(rep.recv())
    req.recv()
dt = time.perf_counter() - t0
print(f"REQ with {K} silent peers: {n / dt:,.0f} round trips/s")
ctx.destroy(linger=0)
