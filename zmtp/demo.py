"""The demo: ``python -m zmtp.demo``.

1. Sockets: a server process (REP echo + PULL sink) and this process (REQ +
   PUSH) talk over tcp and ipc; it prints round-trip times and throughput.
2. The codec without sockets: a greeting, READY and multipart messages fed to
   a decoder in uneven chunks, with the zero-copy and memory facts of the C
   core.

Layering: a program on top of the package (``zmtp`` and ``zmtp.codec``);
nothing imports it.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

import zmtp
from zmtp import __version__, codec, memory_stats


def _show(event: codec.Event) -> str:
    if isinstance(event, codec.Message):
        parts = []
        for frame in event.frames:
            data = frame.bytes
            shown = repr(data) if len(data) <= 24 else f"{data[:16]!r}... ({len(data)} bytes)"
            parts.append(shown + (" +MORE" if frame.more else ""))
        return f"message, {len(event.frames)} frame(s): " + ", ".join(parts)
    return repr(event)


def _serve(rep_ep: str, pull_ep: str, count: int) -> int:
    """The server side: echo `count` requests, then take `count` pushes."""
    with zmtp.Context() as ctx:
        rep = ctx.socket(zmtp.REP)
        rep.bind(rep_ep)
        pull = ctx.socket(zmtp.PULL)
        pull.bind(pull_ep)
        rep.rcvtimeo = pull.rcvtimeo = 20000
        print("ready", flush=True)
        for _ in range(count):
            rep.send(rep.recv())
        n = int(pull.recv())
        for _ in range(n):
            pull.recv()
        rep.send(rep.recv())  # "done" handshake: all pushes arrived
    return 0


def _sockets_demo(transport: str, rounds: int, pushes: int) -> bool:
    tmp = tempfile.mkdtemp(prefix="zmtp-demo-")
    if transport == "tcp":
        import socket as pysocket

        ports = []
        for _ in range(2):
            with pysocket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                ports.append(probe.getsockname()[1])
        rep_ep, pull_ep = (f"tcp://127.0.0.1:{p}" for p in ports)
    else:
        rep_ep, pull_ep = f"ipc://{tmp}/rep", f"ipc://{tmp}/pull"
    server = subprocess.Popen(
        [sys.executable, "-m", "zmtp.demo", "--serve", rep_ep, pull_ep, str(rounds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        with zmtp.Context() as ctx:
            req = ctx.socket(zmtp.REQ)
            req.rcvtimeo = 20000
            req.connect(rep_ep)
            push = ctx.socket(zmtp.PUSH)
            push.connect(pull_ep)
            payload = b"x" * 64
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                req.send(payload)
                req.recv()
                times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            push.send(str(pushes).encode())
            for _ in range(pushes):
                push.send(payload)
            req.send(b"done")
            req.recv()
            elapsed = time.perf_counter() - t0
        times.sort()
        print(
            f"  {transport}: REQ/REP 64 B round trip p50 {statistics.median(times) * 1e6:.0f} us, "
            f"p99 {times[int(len(times) * 0.99)] * 1e6:.0f} us ({rounds} rounds); "
            f"PUSH/PULL 64 B {pushes / elapsed:,.0f} msg/s ({pushes} messages)"
        )
        return server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; returns the process exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--serve"]:
        return _serve(args[1], args[2], int(args[3]))
    print(f"zmtp {__version__} demo; I/O backend: {zmtp.backend_name()} ({zmtp.backend_info()['reason']})")
    print("sockets: this process (REQ, PUSH) and a server process (REP, PULL), both zmtp:")
    sockets_ok = all(_sockets_demo(t, 2000, 50000) for t in ("tcp", "ipc"))
    print()
    return (0 if sockets_ok else 1) | _codec_demo()


def _codec_demo() -> int:
    rng = random.Random(1)
    messages = [
        [b"hello"],
        [b"", b"request", b"with an empty delimiter"],
        [b"topic.weather", b"12.5 C", bytes(range(256)) * 300],  # a 76 800-byte frame
        [b"x"] * 6,  # more frames than a message keeps inline
    ]
    wire = codec.encode_greeting() + codec.encode_ready({"Socket-Type": "DEALER", "Identity": b""})
    for parts in messages:
        wire += codec.encode_message(parts)
    wire += codec.encode_ping(100, b"ctx")

    print("codec without sockets (sans-IO, C core):")
    print(f"encoded {len(messages)} messages + greeting, READY and PING: {len(wire)} bytes on the wire")

    before = memory_stats()
    dec = codec.Decoder(read_buf_size=16384)
    events: List[codec.Event] = []
    t0 = time.perf_counter()
    pos = 0
    chunks = 0
    while pos < len(wire):
        n = rng.randint(1, 9000)
        events.extend(dec.feed(wire[pos : pos + n]))
        pos += n
        chunks += 1
    elapsed = time.perf_counter() - t0
    print(f"decoded in {chunks} uneven chunks ({elapsed * 1e6:.0f} us):")
    for event in events:
        print("  " + _show(event))

    decoded = [e.parts for e in events if isinstance(e, codec.Message)]
    ok = decoded == messages
    stats = memory_stats()
    print(f"round trip {'exact' if ok else 'MISMATCH'}; read pages alive while frames are held: "
          f"{stats['pages_live'] - before['pages_live']}")
    del events, dec
    print(f"after the frames are dropped: {memory_stats()['pages_live'] - before['pages_live']} pages alive")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
