#!/usr/bin/env python3
"""Write the seed corpus for fuzz/decoder_fuzz.c into fuzz/corpus/.

Each file is <control byte><wire bytes>.  Control byte (see decoder_fuzz.c):
  bits 0-1 chunking (0 whole, 1 one byte, 2 PRNG 1..600, 3 PRNG 1..9)
  bit  2   greeting phase first (1) or frames at once (0)
  bits 3-4 page size index (256, 300, 1024, 65536)
  bits 5-7 limits index (maxmsgsize, max_frames)

Usage: python3 fuzz/make_seeds.py [OUTDIR]   (default: fuzz/corpus)
       python3 fuzz/make_seeds.py --mech [OUTDIR]   (default: fuzz/mech_corpus)
The second writes the seeds of fuzz/mech_fuzz.c (the mechanisms'
handshakes): valid transcripts in its record language (see that file).
Stdlib only; deterministic output.
"""
import hashlib
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def ctl(chunk=0, greeting=True, page=0, limits=0):
    return bytes([(chunk & 3) | (4 if greeting else 0) | ((page & 3) << 3)
                  | ((limits & 7) << 5)])


def greeting(major=3, minor=1, mech=b"NULL", as_server=0, sig0=0xFF,
             sig9=0x7F):
    g = bytes([sig0]) + b"\x00" * 8 + bytes([sig9, major, minor])
    g += mech.ljust(20, b"\x00")[:20]
    g += bytes([as_server]) + b"\x00" * 31
    assert len(g) == 64
    return g


def frame(body, flags=0, long=None):
    if long is None:
        long = len(body) > 255
    if long:
        return bytes([flags | 0x02]) + struct.pack(">Q", len(body)) + body
    return bytes([flags, len(body)]) + body


def command(name, data=b"", long=None):
    return frame(bytes([len(name)]) + name + data, flags=0x04, long=long)


def props(*pairs):
    out = b""
    for k, v in pairs:
        out += bytes([len(k)]) + k + struct.pack(">I", len(v)) + v
    return out


def ready(*pairs, long=None):
    return command(b"READY", props(*pairs), long=long)


def message(*parts, long=False):
    out = b""
    for i, p in enumerate(parts):
        more = 0x01 if i + 1 < len(parts) else 0
        out += frame(p, flags=more, long=long or len(p) > 255)
    return out


READY_DEALER = ready((b"Socket-Type", b"DEALER"), (b"Identity", b""))
READY_ROUTER = ready((b"Socket-Type", b"ROUTER"))
READY_SUB = ready((b"Socket-Type", b"SUB"))


def streams():
    """(name, wire bytes without greeting, wants greeting?) tuples."""
    s = []
    s.append(("ready", READY_DEALER))
    s.append(("ready_router_msgs", READY_ROUTER + message(b"id", b"",
                                                          b"hello")))
    for n in range(1, 7):
        parts = [bytes([0x41 + i]) * (i * 7 % 13) for i in range(n)]
        s.append(("msg%d_short" % n, READY_DEALER + message(*parts)))
        s.append(("msg%d_long" % n, READY_DEALER + message(*parts, long=True)))
    s.append(("msg_empty", message(b"")))
    s.append(("msg_255", message(b"x" * 255)))
    s.append(("msg_256", message(b"y" * 256)))
    s.append(("msg_300", message(b"z" * 300)))
    s.append(("msg_big_1500", message(bytes(range(256)) * 5 + b"q" * 220)))
    s.append(("msg_big_3000_two", message(b"a" * 1000, b"b" * 2000)))
    s.append(("msgs_cross_page", message(b"p" * 200) * 4 + message(b"r" * 90,
                                                                    b"s" * 90)))
    s.append(("many_empty_frames", message(*([b""] * 40))))
    s.append(("ping", command(b"PING", b"\x00\x64ctx")))
    s.append(("ping_noctx", command(b"PING", b"\x01\x2c")))
    s.append(("pong", command(b"PONG", b"ctx")))
    s.append(("subscribe", command(b"SUBSCRIBE", b"topic")))
    s.append(("cancel", command(b"CANCEL", b"topic")))
    s.append(("error", command(b"ERROR", b"\x0bbad request")))
    s.append(("unknown_cmd", command(b"HELLO", b"\x05world")))
    s.append(("cmd_long_hdr", command(b"PONG", b"", long=True)))
    s.append(("ready_long", ready((b"Socket-Type", b"PUB"),
                                  (b"X-Big", b"v" * 400))))
    s.append(("cmd_between_frames",
              frame(b"part1", 0x01) + command(b"PING", b"\x00\x01")
              + frame(b"part2", 0x00)))
    s.append(("sub_msg", READY_SUB + message(b"\x01news")))
    s.append(("unsub_msg", READY_SUB + message(b"\x00news")))
    s.append(("sub_msg_empty", message(b"\x01")))
    s.append(("mixed", READY_DEALER + command(b"PING", b"\x00\x0a")
              + message(b"a", b"bb") + command(b"PONG")
              + message(b"c" * 270) + command(b"SUBSCRIBE", b"")))
    # Malformed, one of each class.
    s.append(("bad_reserved_flags", message(b"ok") + b"\x08\x01x"))
    s.append(("bad_reserved_hi", b"\x80\x00"))
    s.append(("bad_command_more", b"\x05\x05\x04PING"))
    s.append(("bad_size_top_bit", b"\x02\x80\x00\x00\x00\x00\x00\x00\x00"))
    s.append(("bad_size_all_ones", b"\x02" + b"\xff" * 8))
    s.append(("huge_claim", b"\x02\x7f\xff\xff\xff\xff\xff\xff\xff" + b"x" * 64))
    s.append(("bad_ping_short", command(b"PING", b"\x01")))
    s.append(("bad_ready_vlen_past_end",
              command(b"READY", b"\x0bSocket-Type\x00\x00\x00\x10DEALER")))
    s.append(("bad_ready_dup", ready((b"Socket-Type", b"A"),
                                     (b"socket-type", b"B"))))
    s.append(("bad_ready_name_char", ready((b"Sock et", b"A"))))
    s.append(("bad_ready_empty_name", command(b"READY", b"\x00\x00\x00\x00\x00")))
    s.append(("bad_error_cmd", command(b"ERROR", b"\x09short")))
    s.append(("bad_error_empty", command(b"ERROR")))
    names = [b"p%03d" % i for i in range(257)]
    s.append(("ready_256_props", ready(*[(k, b"") for k in names[:256]])))
    s.append(("bad_ready_257_props", ready(*[(k, b"") for k in names])))
    s.append(("bad_cmd_empty", frame(b"", 0x04)))
    s.append(("bad_cmd_name_past_end", frame(b"\x09PING", 0x04)))
    return s


def security_transcripts():
    """(name, stream) pairs: a PLAIN client's and server's side (RFC 24,
    libzmq's ERROR form too), and both sides of the CURVE handshake and
    MESSAGEs libzmq 4.3.5 exchanged with zmtp (tests/fixtures/curve_kat.txt,
    when present)."""
    meta = b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"
    out = [
        ("g_plain_client", greeting(mech=b"PLAIN")
         + frame(b"\x05HELLO\x05admin\x06secret", 0x04)
         + frame(b"\x08INITIATE" + meta, 0x04) + message(b"after")),
        ("g_plain_server", greeting(mech=b"PLAIN", as_server=1)
         + frame(b"\x07WELCOME", 0x04) + frame(b"\x05READY" + meta, 0x04)),
        ("g_plain_server_error", greeting(mech=b"PLAIN", as_server=1)
         + frame(b"\x05^RROR\x03400", 0x04)),
    ]
    kat = os.path.join(HERE, "..", "tests", "fixtures", "curve_kat.txt")
    if os.path.exists(kat):
        case = None
        with open(kat) as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] == "case":
                    case = parts[1]
                elif parts and parts[0] in ("zmtp", "libzmq") and case:
                    out.append(("g_curve_%s_%s_side" % (case, parts[0]),
                                bytes.fromhex(parts[1])))
    return out


def chunk(data):
    """mech_fuzz's length-prefixed argument."""
    return struct.pack(">H", len(data)) + data


T_NULL_C, T_NULL_S, T_PLAIN_S, T_PLAIN_C, T_CURVE_S, T_CURVE_C = range(6)
OP_RAW, OP_CORRECT, OP_MUTATE, OP_SEAL, OP_ZAP = range(5)
META_DEALER = b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"


def mech_seeds():
    """(name, input) pairs for fuzz/mech_fuzz.c: the correct handshake of
    every target, then MESSAGE round trips, ZAP verdicts, a replay, a
    mutation, and CURVE commands the harness seals around contents."""
    s = []
    trips = (bytes([OP_CORRECT]) + chunk(b"hello")
             + bytes([OP_CORRECT | 32]) + chunk(b"part")
             + bytes([OP_CORRECT | 64]) + chunk(b"\x04PING\x00\x0a")
             + bytes([OP_CORRECT]) + chunk(b""))
    names = ["null_client", "null_server", "plain_server", "plain_client",
             "curve_server", "curve_client"]
    for t, name in enumerate(names):
        for ident in (0, 1):
            s.append(("%s_correct%s" % (name, "_id" if ident else ""),
                      bytes([t, ident]) + bytes([OP_CORRECT]) * 6 + trips))
        s.append((name + "_replay", bytes([t, 0, OP_CORRECT, OP_CORRECT,
                                           OP_CORRECT | 8])))
        s.append((name + "_mutate", bytes([t, 0, OP_CORRECT, OP_MUTATE, 1,
                                           0, 10, 1])))
    for server, name, before in ((T_PLAIN_S, "plain", 1), (T_CURVE_S, "curve", 2)):
        for status in range(5):
            s.append(("%s_server_zap%d" % (name, status),
                      bytes([server, 0]) + bytes([OP_CORRECT]) * before
                      + bytes([OP_ZAP, status, OP_CORRECT, OP_CORRECT])))
    s.append(("plain_server_raw", bytes([T_PLAIN_S, 0, OP_RAW])
              + chunk(b"\x05HELLO\x05admin\x06secret") + bytes([OP_RAW])
              + chunk(b"\x08INITIATE" + META_DEALER)))
    s.append(("plain_client_raw", bytes([T_PLAIN_C, 0, OP_RAW])
              + chunk(b"\x07WELCOME") + bytes([OP_RAW])
              + chunk(b"\x05READY" + META_DEALER)))
    s.append(("plain_client_error", bytes([T_PLAIN_C, 0, OP_RAW])
              + chunk(b"\x05ERROR\x03400")))
    hello = b"\x01\x00" + bytes(72) + struct.pack(">Q", 1) + bytes(64)
    initiate = (bytes([2]) + struct.pack(">Q", 2) + b"V" * 16 + META_DEALER)
    msg = lambda n, flags, body: struct.pack(">Q", n) + bytes([flags]) + body
    s.append(("curve_server_sealed", bytes([T_CURVE_S, 0, OP_SEAL, 0])
              + chunk(hello) + bytes([OP_SEAL, 1]) + chunk(initiate)
              + bytes([OP_SEAL, 2]) + chunk(msg(3, 0, b"hi"))
              + bytes([OP_SEAL, 2]) + chunk(msg(4, 2, b"\x04PING\x00\x01"))))
    s.append(("curve_server_message_going_back", bytes([T_CURVE_S, 0]) + bytes([OP_CORRECT]) * 2
              + bytes([OP_SEAL, 2]) + chunk(msg(7, 0, b"old")) + bytes([OP_SEAL, 2]) + chunk(msg(9, 0, b"new"))
              + bytes([OP_SEAL, 2]) + chunk(msg(8, 0, b"back"))))
    s.append(("curve_server_sealed_vouch", bytes([T_CURVE_S, 0, OP_SEAL, 0])
              + chunk(hello) + bytes([OP_SEAL, 1])
              + chunk(bytes([6]) + initiate[1:25] + bytes(64) + META_DEALER)))
    for name, nonces in (("same", (3, 3)), ("lower", (5, 4)), ("zero", (0,))):
        s.append(("curve_server_sealed_nonce_" + name, bytes([T_CURVE_S, 0, OP_SEAL, 0])
                  + chunk(hello) + bytes([OP_SEAL, 1]) + chunk(initiate)
                  + b"".join(bytes([OP_SEAL, 2]) + chunk(msg(n, 0, b"n")) for n in nonces)))
    welcome = b"W" * 16 + b"\x01" + b"K" * 96
    s.append(("curve_client_sealed", bytes([T_CURVE_C, 0, OP_SEAL, 0])
              + chunk(welcome) + bytes([OP_SEAL, 1])
              + chunk(struct.pack(">Q", 1) + META_DEALER)
              + bytes([OP_SEAL, 2]) + chunk(msg(2, 1, b"more"))
              + bytes([OP_SEAL, 2]) + chunk(msg(3, 0, b""))))
    s.append(("curve_client_sealed_nonce_same", bytes([T_CURVE_C, 0, OP_SEAL, 0])
              + chunk(welcome) + bytes([OP_SEAL, 1])
              + chunk(struct.pack(">Q", 1) + META_DEALER)
              + bytes([OP_SEAL, 2]) + chunk(msg(1, 0, b"replayed nonce"))))
    s.append(("curve_client_sealed_after_welcome",
              bytes([T_CURVE_C, 0, OP_CORRECT, OP_SEAL, 1])
              + chunk(struct.pack(">Q", 1) + META_DEALER)))
    return s


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--mech":
        out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "mech_corpus")
        os.makedirs(out, exist_ok=True)
        for name, data in mech_seeds():
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)
        print("wrote %d seeds to %s" % (len(mech_seeds()), out))
        return
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    os.makedirs(out, exist_ok=True)
    files = {}

    def add(name, data):
        assert len(data) < 4096, (name, len(data))
        files[name] = data

    variants = [  # (suffix, control kwargs)
        ("", dict(chunk=0, page=0, limits=0)),
        ("_c1", dict(chunk=1, page=1, limits=1)),
        ("_c2", dict(chunk=2, page=2, limits=0)),
        ("_c3", dict(chunk=3, page=3, limits=0)),
    ]
    limit_variants = [2, 3, 4, 5, 6, 7]
    g31 = greeting()
    for i, (name, wire) in enumerate(streams()):
        add("g_" + name, ctl(greeting=True, chunk=i % 4, page=(i // 4) % 4)
            + g31 + wire)
        add("n_" + name, ctl(greeting=False, chunk=(i + 1) % 4,
                             page=(i // 2) % 4) + wire)
        # A few extra config spreads on the richer streams.
        if name in ("mixed", "msg6_short", "msg_big_3000_two",
                    "msgs_cross_page"):
            for suf, kw in variants:
                add("g_%s%s" % (name, suf), ctl(greeting=True, **kw) + g31
                    + wire)
            for lim in limit_variants:
                add("n_%s_lim%d" % (name, lim),
                    ctl(greeting=False, chunk=lim % 4, page=lim % 4,
                        limits=lim) + wire)
    # Greeting variants.
    add("g_greeting_only", ctl() + g31)
    add("g_greeting_30_sub", ctl(chunk=1) + greeting(minor=0) + READY_SUB
        + message(b"\x01topic") + message(b"\x00topic"))
    add("g_greeting_30", ctl(chunk=3) + greeting(minor=0) + READY_DEALER)
    add("g_greeting_server", ctl(chunk=2) + greeting(as_server=1) + READY_ROUTER)
    add("g_greeting_plain", ctl() + greeting(mech=b"PLAIN") + READY_DEALER)
    add("g_greeting_mech20", ctl() + greeting(mech=b"A" * 20))
    add("g_greeting_v4", ctl() + greeting(major=4, minor=0) + READY_DEALER)
    add("g_bad_signature0", ctl() + greeting(sig0=0x00))
    add("g_bad_signature9", ctl(chunk=1) + greeting(sig9=0x00))
    add("g_bad_version2", ctl() + greeting(major=2))
    add("g_bad_version1_partial", ctl(chunk=1) + greeting(major=1)[:12])
    # ZMTP/2.0 peers (RFC 15): signature, revision 1, socket type, identity
    # as a final short frame, then 2.0 frames (no commands).
    v2 = b"\xff" + b"\x00" * 8 + b"\x7f\x01"
    add("g_v2_dealer", ctl(chunk=1) + v2 + b"\x05" + frame(b"peer") + message(b"a", b"b"))
    add("g_v2_pub_sub", ctl(chunk=2) + v2 + b"\x02" + frame(b"") + message(b"\x01topic"))
    add("g_v2_long", ctl(chunk=3, page=1) + v2 + b"\x08" + frame(b"") + message(b"L" * 700, b"s"))
    add("g_v2_identity_more", ctl() + v2 + b"\x05" + frame(b"id", flags=1) + frame(b"x"))
    add("g_v2_identity_long", ctl() + v2 + b"\x05" + frame(b"id", long=True))
    add("g_v2_command", ctl(chunk=1) + v2 + b"\x07" + frame(b"") + command(b"PING", b"\x00\x0a"))
    add("g_partial_greeting", ctl(chunk=3) + g31[:40])
    add("g_bad_mech_empty", ctl() + greeting(mech=b""))
    add("g_bad_mech_lower", ctl() + greeting(mech=b"null") + READY_DEALER)
    add("g_http", ctl() + b"GET / HTTP/1.1\r\n\r\n")
    # PLAIN and CURVE transcripts: what each side of a handshake sends.
    for name, wire in security_transcripts():
        add(name, ctl(chunk=len(name) % 4) + wire)

    assert len(files) < 200, len(files)
    for name, data in sorted(files.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    digest = hashlib.sha256(b"".join(files[k] for k in sorted(files)))
    print("wrote %d seeds to %s (sha256 %s)" % (len(files), out,
                                                 digest.hexdigest()[:16]))


if __name__ == "__main__":
    main()
