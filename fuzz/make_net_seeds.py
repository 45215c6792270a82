#!/usr/bin/env python3
"""Write the seed corpus of fuzz/net_fuzz.py into fuzz/net_corpus/.

For every zmtp socket type Z and every pyzmq socket type P that may talk to
it, a pyzmq P connects to a raw TCP listener that plays a correct Z (greeting,
READY with Socket-Type Z, subscriptions, requests or replies as the pattern
needs); P then sends a few messages (single-part, multipart with an empty
frame, one of 300 bytes with a long header, subscriptions...).  Everything P
wrote is recorded: that is a good session of a peer of Z, as libzmq sends it.

Each recording becomes several inputs of net_fuzz.py (format in its
docstring): the whole recording with no prefix, ended gracefully, for both
sides (zmtp bound / zmtp connecting); the recording minus P's greeting and
READY behind the harness's own greeting + READY prefix, cut into chunks,
with the raw peer staying open during the good round trip; and the same
behind a ZMTP 3.0 greeting, closed at once; and the whole recording with
the good peer reconnecting while the raw peer stays connected.  A few
hostile streams (from tests/test_bad_peers.py) are added by hand.

Usage: python3 fuzz/make_net_seeds.py [OUTDIR]   (default: fuzz/net_corpus)
       python3 fuzz/make_net_seeds.py --mech [OUTDIR]   (default: fuzz/net_mech_corpus;
       the mechanism targets, NET_FUZZ_TARGET=mech: see mech_seeds())
Needs pyzmq.  The output is deterministic for a given libzmq version.
"""

from __future__ import annotations

import os
import socket
import sys
import time

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import net_fuzz as nf  # noqa: E402
from zmtp import codec  # noqa: E402

PYZMQ = {name: getattr(zmq, name) for name in nf.TYPES}


def frames(*parts: bytes) -> bytes:
    return codec.encode_message(list(parts))


def read_for(s: socket.socket, idle: float = 0.15, total: float = 3.0) -> bytes:
    """Everything the peer sends until it has been quiet for `idle` s."""
    data = bytearray()
    end = time.monotonic() + total
    s.settimeout(idle)
    while time.monotonic() < end:
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        if not b:
            break
        data += b
    return bytes(data)


def record(ztype: str, ptype: str) -> bytes:
    """The bytes a pyzmq `ptype` socket sends to a correct `ztype` peer."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    port = lst.getsockname()[1]
    ctx = zmq.Context()
    p = ctx.socket(PYZMQ[ptype])
    p.linger = 0
    p.rcvtimeo = 3000
    p.sndtimeo = 3000
    out = bytearray()
    try:
        if ptype == "ROUTER":
            p.setsockopt(zmq.ROUTER_MANDATORY, 1)
        p.connect(f"tcp://127.0.0.1:{port}")
        raw, _ = lst.accept()
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        props = {"Socket-Type": ztype}
        if ztype in ("REQ", "DEALER", "ROUTER"):
            props["Identity"] = "raw"
        raw.sendall(nf.greeting(1) + codec.encode_ready(props))
        time.sleep(0.05)

        if ptype in ("PAIR", "DEALER", "PUSH"):
            if ptype == "DEALER" and ztype == "REP":
                p.send_multipart([b"", b"hello"])
                p.send_multipart([b"", b"a", b"b"])
                p.send_multipart([b"", b"x" * 300])
            else:
                p.send(b"hello")
                p.send_multipart([b"a", b"", b"multi"])
                p.send(b"x" * 300)
        elif ptype in ("PUB", "XPUB"):
            raw.sendall(codec.encode_command(b"SUBSCRIBE", b""))
            time.sleep(0.1)
            if ptype == "XPUB":
                p.recv()  # the subscription
            p.send(b"hello")
            p.send_multipart([b"topic", b"", b"multi"])
            p.send(b"x" * 300)
        elif ptype == "SUB":
            p.setsockopt(zmq.SUBSCRIBE, b"")
            p.setsockopt(zmq.SUBSCRIBE, b"topic")
            time.sleep(0.05)
            p.setsockopt(zmq.UNSUBSCRIBE, b"topic")
        elif ptype == "XSUB":
            p.send(b"\x01")
            p.send(b"\x01topic")
            p.send(b"\x00topic")
            p.send(b"data")
        elif ptype == "REQ":
            p.send(b"hello")
            out += read_for(raw)
            raw.sendall(frames(b"", b"world"))
            assert p.recv() == b"world"
            p.send_multipart([b"a", b"", b"x" * 300])
        elif ptype == "REP":
            raw.sendall(frames(b"", b"req1"))
            assert p.recv() == b"req1"
            p.send(b"rep1")
            raw.sendall(frames(b"", b"req2"))
            assert p.recv() == b"req2"
            p.send_multipart([b"a", b"", b"x" * 300])
        elif ptype == "ROUTER":
            end = time.monotonic() + 3
            while True:
                try:
                    p.send_multipart([b"raw", b"", b"hello"])
                    break
                except zmq.ZMQError as exc:
                    if exc.errno != zmq.EHOSTUNREACH or time.monotonic() > end:
                        raise
                    time.sleep(0.01)
            p.send_multipart([b"raw", b"a", b"", b"multi"])
            p.send_multipart([b"raw", b"x" * 300])
        elif ptype == "PULL":
            pass  # a PULL sends only its greeting and READY
        else:  # pragma: no cover
            raise AssertionError(ptype)
        out += read_for(raw)
        raw.close()
    finally:
        p.close(0)
        ctx.term()
        lst.close()
    return bytes(out)


def split_handshake(data: bytes) -> int:
    """Offset of the first byte after the peer's greeting and READY."""
    assert data[0] == 0xFF and len(data) >= 64
    pos = 64
    flags = data[pos]
    if flags & 0x02:
        size = int.from_bytes(data[pos + 1 : pos + 9], "big")
        return pos + 9 + size
    return pos + 2 + data[pos + 1]


V2 = b"\xff" + b"\0" * 8 + b"\x7f\x01"

HOSTILE = {
    # name: (ztype, payload, side, prefix_mode, end_mode)
    "garbage": ("ROUTER", bytes(range(1, 256)) * 2, "bind", nf.PREFIX_NONE, nf.END_GRACEFUL),
    "http": ("REP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "bind", nf.PREFIX_NONE, nf.END_GRACEFUL),
    "zmtp2": ("DEALER", b"\xff" + b"\0" * 8 + b"\x7f\x01\x05", "connect", nf.PREFIX_NONE, nf.END_GRACEFUL),
    # ZMTP/2.0 peers (RFC 15): greeting = signature, revision 1, socket type, identity (final short)
    "zmtp20_router_session": ("DEALER", V2 + b"\x06\x00\x01r" + b"\x01\x01a\x00\x01b" + b"\x02" + (300).to_bytes(8, "big")
                              + b"L" * 300, "connect", nf.PREFIX_NONE, nf.END_GRACEFUL),
    "zmtp20_push_to_pull": ("PULL", V2 + b"\x08\x00\x00" + b"\x00\x05hello", "bind", nf.PREFIX_NONE, nf.END_KEEP_OPEN),
    "zmtp20_sub_to_xpub": ("XPUB", V2 + b"\x02\x00\x00" + b"\x00\x04\x01top" + b"\x00\x04\x00top", "bind",
                           nf.PREFIX_NONE, nf.END_GRACEFUL),
    "zmtp20_wrong_type": ("PULL", V2 + b"\x07\x00\x00\x00\x01x", "bind", nf.PREFIX_NONE, nf.END_GRACEFUL),
    "zmtp20_command": ("REP", V2 + b"\x03\x00\x00" + codec.encode_ping(10), "connect", nf.PREFIX_NONE, nf.END_GRACEFUL),
    "zmtp20_identity_more": ("ROUTER", V2 + b"\x05\x01\x02id\x00\x00", "bind", nf.PREFIX_NONE, nf.END_RESET),
    "mechanism_curve": ("PULL", nf.greeting(1).replace(b"NULL", b"CURV"), "bind", nf.PREFIX_NONE, nf.END_GRACEFUL),
    "huge_claim_open": ("ROUTER", b"\x02" + (2**63 - 1).to_bytes(8, "big") + b"x" * 1000, "bind",
                        nf.PREFIX_READY, nf.END_KEEP_OPEN),
    "frame_size_top_bit": ("PULL", b"\x02" + (2**63).to_bytes(8, "big"), "connect", nf.PREFIX_READY, nf.END_GRACEFUL),
    "message_before_ready": ("SUB", codec.encode_frame(b"early"), "bind", nf.PREFIX_GREETING, nf.END_GRACEFUL),
    "ping_before_ready": ("XPUB", codec.encode_ping(10, b"ctx"), "connect", nf.PREFIX_GREETING, nf.END_GRACEFUL),
    "error_after_ready": ("PUSH", codec.encode_error(b"bye"), "bind", nf.PREFIX_READY, nf.END_GRACEFUL),
    "reserved_flags": ("PAIR", b"\x10\x01x", "bind", nf.PREFIX_GREETING, nf.END_RESET),
    "many_pings": ("DEALER", codec.encode_ping(1, b"p") * 200, "bind", nf.PREFIX_READY, nf.END_KEEP_OPEN),
    "sub_storm": ("XPUB", b"".join(codec.encode_command(b"SUBSCRIBE", b"t%d" % i) for i in range(300)),
                  "bind", nf.PREFIX_READY, nf.END_GRACEFUL),
    "silent_open": ("PAIR", b"", "bind", nf.PREFIX_NONE, nf.END_KEEP_OPEN),
}


def mech_seeds() -> dict:
    """Seeds of the mechanism targets (NET_FUZZ_TARGET=mech): per target,
    every prefix, hostile commands, and whole handshakes followed by sealed
    messages (prefix 3: one chunk per MESSAGE, flags byte first)."""
    cmd = nf._cmd
    out = {}
    hello = cmd(b"HELLO", b"\x01\x00" + bytes(72) + bytes(32) + (1).to_bytes(8, "big") + bytes(80))
    hostile = {
        "hello-truncated": hello[:100],
        "hello-oversized": cmd(b"HELLO", bytes(400)),
        "hello-padding": cmd(b"HELLO", b"\x01\x00" + b"\x01" * 72 + bytes(120)),
        "initiate-early": cmd(b"INITIATE", bytes(300)),
        "message-early": nf._frame(b"\x07MESSAGE" + bytes(40)),
        "ready-early": cmd(b"READY", bytes(30)),
        "error": cmd(b"ERROR", b"\x03400"),
        "plain-hello": cmd(b"HELLO", b"\x05admin\x06secret"),
        "plain-hello-bad-len": cmd(b"HELLO", b"\xffadmin"),
        "welcome-body": cmd(b"WELCOME", b"x"),
        "null-ready": codec.encode_ready([("Socket-Type", "DEALER")]),
    }
    sealed = [b"\x00hello", b"\x01a", b"\x00b", b"\x02\x04PING\x00\x0a", b"\x00" + b"x" * 250, b"\x00"]
    splits = tuple(len(c) for c in sealed[:-1])
    for t in nf.MECH_TARGETS:
        base = t.lower()
        for side in ("bind", "connect"):
            out[f"{base}-{side}-sealed"] = nf.make_mech_input(t, b"".join(sealed), side=side, prefix_mode=3,
                                                                splits=splits)
        out[f"{base}-bind-sealed-keepopen"] = nf.make_mech_input(t, b"".join(sealed[:3]), prefix_mode=3,
                                                                   end_mode=nf.END_KEEP_OPEN, splits=(6, 2))
        out[f"{base}-bind-sealed-reset"] = nf.make_mech_input(t, b"".join(sealed[:3]), prefix_mode=3,
                                                                end_mode=nf.END_RESET, splits=(6, 2))
        out[f"{base}-bind-sealed-error"] = nf.make_mech_input(t, b"\x02\x05ERROR\x03bye\x00after", prefix_mode=3,
                                                                splits=(10,))
        for name, payload in hostile.items():
            for pm in (1, 2):
                out[f"{base}-p{pm}-{name}"] = nf.make_mech_input(t, payload, side="bind" if pm == 1 else "connect",
                                                                  prefix_mode=pm)
        out[f"{base}-p0-null-greeting"] = nf.make_mech_input(t, nf.greeting(1), prefix_mode=0)
        out[f"{base}-p1-silent-keepopen"] = nf.make_mech_input(t, b"", prefix_mode=1, end_mode=nf.END_KEEP_OPEN)
        out[f"{base}-p2-bytewise"] = nf.make_mech_input(t, hello, prefix_mode=2, splits=(1,) * 7)
    return out


def main(argv: list) -> int:
    if len(argv) > 1 and argv[1] == "--mech":
        outdir = argv[2] if len(argv) > 2 else os.path.join(HERE, "net_mech_corpus")
        os.makedirs(outdir, exist_ok=True)
        seeds = mech_seeds()
        for name, data in seeds.items():
            with open(os.path.join(outdir, name), "wb") as fh:
                fh.write(data)
        print(f"make_net_seeds: wrote {len(seeds)} files to {outdir}")
        return 0
    outdir = argv[1] if len(argv) > 1 else os.path.join(HERE, "net_corpus")
    os.makedirs(outdir, exist_ok=True)
    n = 0

    def write(name: str, data: bytes) -> None:
        nonlocal n
        nf.parse_input(data)  # must parse
        with open(os.path.join(outdir, name), "wb") as fh:
            fh.write(data)
        n += 1

    for z in nf.TYPES:
        for i, p in enumerate(nf.COMPAT[z]):
            rec = record(z, p)
            cut = split_handshake(rec)
            body = rec[cut:]
            base = f"{z}-{p}".lower()
            for side in ("bind", "connect"):
                write(f"{base}-{side}-session", nf.make_input(z, rec, side=side))
            write(f"{base}-bind-body-chunked-keepopen",
                  nf.make_input(z, body, side="bind", prefix_mode=nf.PREFIX_READY, end_mode=nf.END_KEEP_OPEN,
                                peer_index=i, splits=(1, 63, 5, 2, 9)))
            write(f"{base}-connect-zmtp30-close",
                  nf.make_input(z, body, side="connect", prefix_mode=nf.PREFIX_READY30, end_mode=nf.END_CLOSE,
                                peer_index=i, identity=True, splits=(11, 53)))
            write(f"{base}-bind-session-bytewise-reset",
                  nf.make_input(z, rec[:80], side="bind", end_mode=nf.END_RESET, splits=(1,) * 7))
            write(f"{base}-{'connect' if i % 2 else 'bind'}-session-keepopen-good-reconnects",
                  nf.make_input(z, rec, side="connect" if i % 2 else "bind", end_mode=nf.END_KEEP_OPEN,
                                splits=(64, 30), reconnect=True))
    for name, (z, payload, side, pm, em) in HOSTILE.items():
        write(f"hostile-{name}", nf.make_input(z, payload, side=side, prefix_mode=pm, end_mode=em))
    print(f"make_net_seeds: wrote {n} files to {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
