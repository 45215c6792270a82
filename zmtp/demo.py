"""A small codec demo: ``python -m zmtp.demo``.

It plays both ends of a ZMTP 3.1 conversation without sockets: encodes a
greeting, a READY command and a few multipart messages, feeds the bytes to a
decoder in uneven chunks (as a network would deliver them) and prints what
comes out, with the zero-copy and memory facts the C core reports.
"""

from __future__ import annotations

import random
import sys
import time
from typing import List, Optional

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


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; returns the process exit code."""
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

    print(f"zmtp {__version__}: ZMTP 3.1 codec demo (sans-IO, C core)")
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
