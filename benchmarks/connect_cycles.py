"""Connection set-up cost (docs/performance.md, "Connection set-up"): N cycles of connect, one REQ/REP
round trip and close against a REP in another process; prints cycles/s, the client's and the server's CPU
per cycle, and zmtp.io_stats() per cycle when the client is zmtp.

Run: ``python benchmarks/connect_cycles.py CLIENT_LIB SERVER_LIB N tcp|ipc`` (libs: zmtp or zmq).
"""
import sys, time, subprocess, os, importlib, resource, tempfile
lib, srvlib, n, transport = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if lib == "serve":
    zmq = importlib.import_module(srvlib)
    ctx = zmq.Context(); s = ctx.socket(zmq.REP); s.linger = 0
    ep = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tempfile.gettempdir()}/connect-cycles-{os.getpid()}"
    s.bind(ep); print(s.last_endpoint.decode(), flush=True)
    for _ in range(50): s.send(s.recv())
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(n - 50): s.send(s.recv())
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print((r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / (n - 50) * 1e6, flush=True)
    s.close(); ctx.term(); sys.exit(0)
zmq = importlib.import_module(lib)
p = subprocess.Popen([sys.executable, __file__, "serve", srvlib, str(n + 50), transport], stdout=subprocess.PIPE, text=True)
ep = p.stdout.readline().strip()
ctx = zmq.Context()
def cycle(k):
    for _ in range(k):
        s = ctx.socket(zmq.REQ); s.linger = 0
        s.connect(ep); s.send(b"x" * 64); s.recv(); s.close()
cycle(50)
r0 = resource.getrusage(resource.RUSAGE_SELF)
st0 = zmq.io_stats() if hasattr(zmq, "io_stats") else None
t = time.perf_counter(); cycle(n); dt = time.perf_counter() - t
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / n * 1e6
p.wait(); scpu = float(p.stdout.readline())
print(f"{lib}->{srvlib} {transport}: {n/dt:.0f} conn/s cli {cpu:.0f} us/cyc srv {scpu:.0f} us/cyc", end=" ")
if st0:
    st1 = zmq.io_stats(); print({k: round((st1[k]-st0[k])/n, 2) for k in st1 if isinstance(st1[k], int) and st1[k]-st0[k]})
else: print()
p.wait(); ctx.term()
