"""Split a PUSH -> PULL stream's gap to plain C between its two ends: every pairing of a sender
and a receiver from {C, zmtp, pyzmq} streams COUNT one-frame messages of SIZE bytes over tcp on
127.0.0.1, in ROUNDS interleaved rounds; prints each pairing's median msg/s (counted by the receiver
from its first message to its last) and its ratio to C -> C.

The C ends are benchmarks/c_zmtp_peer.c (blocking sockets, default buffers, writev per message, read
straight into one buffer), compiled with ``cc -O2`` into the temp dir on first use. zmtp and pyzmq
send and receive with copy=False. docs/performance.md, "tcp 256 KiB and 1 MiB".

Run: ``python benchmarks/cross_pair.py SIZE COUNT [--rounds N] [--ends c,zmtp,pyzmq] [--only S:R]
[--sndbuf BYTES] [--rcvbuf BYTES]`` (zmtp from the PYTHONPATH in effect, as the other benchmarks; ``--only zmtp:c`` one
pairing, e.g. under ``perf record -a``; ``--sndbuf`` / ``--rcvbuf`` the SNDBUF / RCVBUF option of the zmtp and pyzmq senders / receivers).
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from zmtp.perf import cfloor

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "c_zmtp_peer.c")

#: Each end's start: the library (argv[1]), its socket, the buffer option from argv[buf_arg] (-1: unset),
#: bound or connected on tcp port argv[2].
OPEN = '''
import sys, time
lib = __import__(sys.argv[1])
ctx = lib.Context(); s = ctx.socket(lib.{kind})
if int(sys.argv[{buf_arg}]) >= 0:
    s.{buf} = int(sys.argv[{buf_arg}])
s.{how}("tcp://127.0.0.1:" + sys.argv[2])
'''

PULL = OPEN.format(kind="PULL", buf="rcvbuf", buf_arg=4, how="bind") + r'''
print("ready", flush=True)
n = int(sys.argv[3]); s.recv(copy=False); t0 = time.perf_counter()
for _ in range(n - 1):
    f = s.recv(copy=False)
    del f
print("msg_s %.1f" % ((n - 1) / (time.perf_counter() - t0)), flush=True)
s.close(linger=0); ctx.term()
'''

PUSH = OPEN.format(kind="PUSH", buf="sndbuf", buf_arg=5, how="connect") + r'''
m = b"x" * int(sys.argv[3])
for _ in range(int(sys.argv[4])):
    s.send(m, copy=False)
s.close(linger=-1); ctx.term()
'''


def build() -> str:
    """The C peer, compiled once per source version (zmtp.perf's C floor
    builder: cached in the temp dir)."""
    exe, why = cfloor.build(Path(SOURCE))
    if exe is None:
        raise SystemExit(f"cross_pair.py: no C peer: {why}")
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one(exe: str, sender: str, receiver: str, size: int, count: int, sndbuf: int, rcvbuf: int) -> float:
    """One stream; the receiver's msg/s."""
    port = str(free_port())
    if receiver == "c":
        rargs = [exe, "pull", port, str(count)]
    else:
        rargs = [sys.executable, "-c", PULL, {"pyzmq": "zmq"}.get(receiver, receiver), port, str(count),
                 str(rcvbuf)]
    rx = subprocess.Popen(rargs, stdout=subprocess.PIPE, text=True)
    try:
        if rx.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{receiver} receiver did not start")
        if sender == "c":
            sargs = [exe, "push", port, str(size), str(count)]
        else:
            sargs = [sys.executable, "-c", PUSH, {"pyzmq": "zmq"}.get(sender, sender), port, str(size), str(count),
                     str(sndbuf)]
        subprocess.run(sargs, check=True, timeout=300)
        out = rx.communicate(timeout=300)[0]
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()
    for line in out.splitlines():
        if line.startswith("msg_s "):
            return float(line.split()[1])
    raise RuntimeError(f"{sender} -> {receiver}: no rate in {out!r}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("size", type=int)
    p.add_argument("count", type=int)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ends", default="c,zmtp,pyzmq", help="comma-separated, from c, zmtp, pyzmq")
    p.add_argument("--only", help="one pairing, SENDER:RECEIVER (e.g. zmtp:c)")
    p.add_argument("--sndbuf", type=int, default=-1, help="SNDBUF of the zmtp and pyzmq senders (-1: unset)")
    p.add_argument("--rcvbuf", type=int, default=-1, help="RCVBUF of the zmtp and pyzmq receivers (-1: unset)")
    a = p.parse_args()
    ends = a.ends.split(",")
    for end in ends + (a.only.split(":") if a.only else []):
        if end not in ("c", "zmtp", "pyzmq"):
            p.error(f"unknown end {end!r}: c, zmtp or pyzmq")
    exe = build()
    pairs = [tuple(a.only.split(":", 1))] if a.only else [(s, r) for s in ends for r in ends]
    rates = {pair: [] for pair in pairs}
    t0 = time.monotonic()
    for _ in range(a.rounds):
        for pair in pairs:
            rates[pair].append(one(exe, *pair, a.size, a.count, a.sndbuf, a.rcvbuf))
    base = statistics.median(rates[("c", "c")]) if ("c", "c") in rates else None
    print(f"PUSH -> PULL, {a.size} B x {a.count}, tcp, median of {a.rounds} interleaved rounds "
          f"({time.monotonic() - t0:.0f} s); ratio: to C -> C")
    for pair in pairs:
        med = statistics.median(rates[pair])
        ratio = f"{med / base:5.2f}" if base else "    -"
        runs = " ".join(f"{r:,.0f}" for r in rates[pair])
        print(f"  {pair[0]:>5} -> {pair[1]:<5} {med:>10,.0f} msg/s  {ratio}   ({runs})")


if __name__ == "__main__":
    main()
