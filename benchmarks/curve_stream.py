"""CURVE PUSH -> PULL of SIZE-byte messages between two zmtp processes (the PULL, here, is the CURVE
server): prints msg/s.  docs/performance.md, CURVE "Session 18".  ``ZMTP_LIBSODIUM=PATH`` picks the
libsodium (e.g. pyzmq's ``pyzmq.libs/libsodium-*.so*``); ``SENDER_PREFIX="perf stat -o s.txt"`` (or
``perf record ...``) runs the sender under a profiler.

Run: ``python benchmarks/curve_stream.py SIZE COUNT``
"""
import os
import subprocess
import sys
import time

import zmtp

SEND = r'''
import sys, zmtp
ctx = zmtp.Context(); s = ctx.socket(zmtp.PUSH); s.curve_serverkey = sys.argv[4].encode()
s.curve_publickey, s.curve_secretkey = zmtp.curve_keypair()
s.connect(sys.argv[1]); m = b"x" * int(sys.argv[2])
for _ in range(int(sys.argv[3])):
    s.send(m)
s.close(linger=-1)
'''

size, count = int(sys.argv[1]), int(sys.argv[2])
public, secret = zmtp.curve_keypair()
ctx = zmtp.Context()
pull = ctx.socket(zmtp.PULL)
pull.curve_server, pull.curve_secretkey, pull.curve_publickey = True, secret, public
pull.bind("tcp://127.0.0.1:*")
sender = subprocess.Popen(os.environ.get("SENDER_PREFIX", "").split() +
                          [sys.executable, "-c", SEND, pull.last_endpoint.decode(), str(size), str(count),
                           public.decode()])
pull.recv()
t0 = time.perf_counter()
for _ in range(count - 1):
    pull.recv()
dt = time.perf_counter() - t0
sender.wait()
print(f"{size} B: {(count - 1) / dt:.0f} msg/s")
