"""Byte-exact ZMTP vectors, written by hand from RFC 23 (ZMTP 3.0) and RFC 37 (3.1).

Every decoding fixture is fed three ways (as h11's tests do): whole, one byte at
a time, and followed by trailing bytes that must stay pending.  Every encoder
is checked against the same bytes.
"""

from __future__ import annotations

from typing import List

import pytest

from zmtp import Frame, codec
from zmtp.codec import (
    Cancel,
    Decoder,
    Error,
    ErrorCode,
    Greeting,
    Message,
    Ping,
    Pong,
    ProtocolError,
    Ready,
    Subscribe,
    UnknownCommand,
)

# ------------------------------------------------------------------ vectors

SIG = b"\xff" + b"\x00" * 8 + b"\x7f"


def greeting(major: int = 3, minor: int = 1, mech: bytes = b"NULL", as_server: int = 0) -> bytes:
    """Greeting laid out field by field, as RFC 23 section "Greeting" draws it."""
    return SIG + bytes([major, minor]) + mech.ljust(20, b"\x00") + bytes([as_server]) + b"\x00" * 31


GREETING_31 = greeting()
GREETING_30 = greeting(minor=0)

# READY, Socket-Type=DEALER: size 1+5 + 1+11+4+6 = 28
READY_DEALER = b"\x04\x1c\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER"
# READY, Socket-Type=REQ, Identity="" (what libzmq sends for REQ): 6 + 19 + 13 = 38
READY_REQ = b"\x04\x26\x05READY\x0bSocket-Type\x00\x00\x00\x03REQ\x08Identity\x00\x00\x00\x00"
ERROR_OOPS = b"\x04\x0b\x05ERROR\x04oops"
PING_10 = b"\x04\x07\x04PING\x00\x0a"
PING_CTX = b"\x04\x0a\x04PING\x01\x2cabc"  # ttl 300 = 30 s
PONG_EMPTY = b"\x04\x05\x04PONG"
PONG_CTX = b"\x04\x08\x04PONGabc"
SUBSCRIBE_TOPIC = b"\x04\x0f\x09SUBSCRIBEtopic"
SUBSCRIBE_ALL = b"\x04\x0a\x09SUBSCRIBE"
CANCEL_TOPIC = b"\x04\x0c\x06CANCELtopic"
UNKNOWN_CMD = b"\x04\x07\x04ABCDxy"
EMPTY_FRAME = b"\x00\x00"
HELLO = b"\x00\x05hello"
MULTI = b"\x01\x01a\x01\x00\x00\x01b"  # [b"a", b"", b"b"]
LONG_256 = b"\x02" + (256).to_bytes(8, "big") + bytes(range(256))
LONG_FORM_SMALL = b"\x02" + (5).to_bytes(8, "big") + b"short"  # long form, small size: valid
LONG_COMMAND = b"\x06" + (1 + 9 + 300).to_bytes(8, "big") + b"\x09SUBSCRIBE" + b"t" * 300
SUB_MESSAGE_30 = b"\x00\x06\x01topic"
CANCEL_MESSAGE_30 = b"\x00\x06\x00topic"


def msg(*parts: bytes) -> Message:
    return Message([Frame(p) for p in parts])


# (name, greeting expected first, wire bytes, expected events)
FIXTURES = [
    ("greeting-3.1", True, GREETING_31, [Greeting(3, 1, b"NULL", False)]),
    ("greeting-3.0", True, GREETING_30, [Greeting(3, 0, b"NULL", False)]),
    ("greeting-plain-server", True, greeting(mech=b"PLAIN", as_server=1), [Greeting(3, 1, b"PLAIN", True)]),
    # RFC 23: a peer MUST accept higher versions; ours is the lower one.
    ("greeting-3.7", True, greeting(minor=7), [Greeting(3, 7, b"NULL", False)]),
    ("greeting-4.0", True, greeting(major=4, minor=0), [Greeting(4, 0, b"NULL", False)]),
    # Filler and signature padding are ignored (libzmq 2.x put data in the padding).
    ("greeting-nonzero-filler", True, SIG[:1] + b"\x01" * 8 + SIG[9:] + GREETING_31[10:33] + b"\xaa" * 31,
     [Greeting(3, 1, b"NULL", False)]),
    ("ready-dealer", False, READY_DEALER, [Ready(((b"Socket-Type", b"DEALER"),))]),
    ("ready-req-identity", False, READY_REQ, [Ready(((b"Socket-Type", b"REQ"), (b"Identity", b"")))]),
    ("ready-empty", False, b"\x04\x06\x05READY", [Ready(())]),
    ("error", False, ERROR_OOPS, [Error(b"oops")]),
    ("ping", False, PING_10, [Ping(10, b"")]),
    ("ping-context", False, PING_CTX, [Ping(300, b"abc")]),
    ("pong", False, PONG_EMPTY, [Pong(b"")]),
    ("pong-context", False, PONG_CTX, [Pong(b"abc")]),
    ("subscribe", False, SUBSCRIBE_TOPIC, [Subscribe(b"topic")]),
    ("subscribe-all", False, SUBSCRIBE_ALL, [Subscribe(b"")]),
    ("cancel", False, CANCEL_TOPIC, [Cancel(b"topic")]),
    ("unknown-command", False, UNKNOWN_CMD, [UnknownCommand(b"ABCD", b"xy")]),
    ("long-command", False, LONG_COMMAND, [Subscribe(b"t" * 300)]),
    ("empty-frame", False, EMPTY_FRAME, [msg(b"")]),
    ("hello", False, HELLO, [msg(b"hello")]),
    ("multipart", False, MULTI, [msg(b"a", b"", b"b")]),
    ("long-256", False, LONG_256, [msg(bytes(range(256)))]),
    ("long-form-small", False, LONG_FORM_SMALL, [msg(b"short")]),
    ("sub-message-3.0", False, SUB_MESSAGE_30, [msg(b"\x01topic")]),
    # A command between the frames of a message is delivered on its own and
    # the message stays whole (libzmq may inject a PING there).
    ("command-inside-message", False, b"\x01\x01a" + PING_10 + b"\x00\x01b", [Ping(10, b""), msg(b"a", b"b")]),
    ("session", True, GREETING_31 + READY_DEALER + HELLO + MULTI + PING_10,
     [Greeting(3, 1, b"NULL", False), Ready(((b"Socket-Type", b"DEALER"),)), msg(b"hello"), msg(b"a", b"", b"b"),
      Ping(10, b"")]),
]

IDS = [f[0] for f in FIXTURES]


def normalise(events: List[codec.Event]) -> list:
    """Events with frames replaced by (bytes, more) so they compare by value."""
    out = []
    for e in events:
        if isinstance(e, Message):
            out.append(("msg", [(f.bytes, f.more) for f in e.frames]))
        else:
            out.append(e)
    return out


def expected(events: list) -> list:
    out = []
    for e in events:
        if isinstance(e, Message):
            n = len(e.frames)
            out.append(("msg", [(f.bytes, i < n - 1) for i, f in enumerate(e.frames)]))
        else:
            out.append(e)
    return out


@pytest.mark.parametrize("name,with_greeting,wire,events", FIXTURES, ids=IDS)
def test_decode_whole(name, with_greeting, wire, events):
    dec = Decoder(greeting=with_greeting)
    assert normalise(dec.feed(wire)) == expected(events)
    assert dec.pending == 0


@pytest.mark.parametrize("name,with_greeting,wire,events", FIXTURES, ids=IDS)
def test_decode_byte_by_byte(name, with_greeting, wire, events):
    dec = Decoder(greeting=with_greeting)
    got = []
    for i in range(len(wire)):
        new = dec.feed(wire[i : i + 1])
        got.extend(new)
        if i < len(wire) - 1 and len(events) == 1:
            assert new == [], f"event before the last byte (at {i})"
    assert normalise(got) == expected(events)
    assert dec.pending == 0


@pytest.mark.parametrize("trailing", [b"\x00", b"\x01\x05hel", b"\x02\x00\x00\x00", b"\x04\x0a\x09SUB"])
@pytest.mark.parametrize("name,with_greeting,wire,events", FIXTURES, ids=IDS)
def test_decode_with_trailing_data(name, with_greeting, wire, events, trailing):
    dec = Decoder(greeting=with_greeting)
    assert normalise(dec.feed(wire + trailing)) == expected(events)
    assert dec.pending == len(trailing)
    assert dec.error is None


@pytest.mark.parametrize("page", [256, 300, 4096])
@pytest.mark.parametrize("name,with_greeting,wire,events", FIXTURES, ids=IDS)
def test_decode_small_pages(name, with_greeting, wire, events, page):
    """Page boundaries anywhere: a 3-byte feed cadence across small pages."""
    dec = Decoder(greeting=with_greeting, read_buf_size=page)
    # The fixture's traffic three times in a row (one greeting), to cross pages.
    head, body, rest = (wire[:64], wire[64:], events[1:]) if with_greeting else (b"", wire, events)
    stream = head + body * 3
    got = []
    for i in range(0, len(stream), 3):
        got.extend(dec.feed(stream[i : i + 3]))
    assert normalise(got) == expected(events[: len(events) - len(rest)] + rest * 3)


# ------------------------------------------------------------------ encoders


def test_encode_greeting():
    assert codec.encode_greeting() == GREETING_31
    assert codec.encode_greeting(minor=0) == GREETING_30
    assert codec.encode_greeting(mechanism=b"PLAIN", as_server=True) == greeting(mech=b"PLAIN", as_server=1)
    assert len(codec.encode_greeting()) == codec.GREETING_SIZE == 64


@pytest.mark.parametrize("mech", [b"", b"A" * 21, b"null", b"NU LL"])
def test_encode_greeting_rejects_bad_mechanism(mech):
    with pytest.raises(ValueError, match="mechanism"):
        codec.encode_greeting(mechanism=mech)


def test_encode_commands():
    assert codec.encode_ready({"Socket-Type": "DEALER"}) == READY_DEALER
    assert codec.encode_ready([(b"Socket-Type", b"REQ"), ("Identity", b"")]) == READY_REQ
    assert codec.encode_ready({}) == b"\x04\x06\x05READY"
    assert codec.encode_error(b"oops") == ERROR_OOPS
    assert codec.encode_ping(10) == PING_10
    assert codec.encode_ping(300, b"abc") == PING_CTX
    assert codec.encode_pong() == PONG_EMPTY
    assert codec.encode_pong(b"abc") == PONG_CTX
    assert codec.encode_subscribe(b"topic") == SUBSCRIBE_TOPIC
    assert codec.encode_subscribe(b"") == SUBSCRIBE_ALL
    assert codec.encode_cancel(b"topic") == CANCEL_TOPIC
    assert codec.encode_command(b"ABCD", b"xy") == UNKNOWN_CMD
    assert codec.encode_subscribe(b"t" * 300) == LONG_COMMAND


def test_encode_subscription_forms_by_peer_version():
    # ZMTP 3.0 peers get the message form, 3.1 and later the command form.
    assert codec.encode_subscribe(b"topic", peer_minor=0) == SUB_MESSAGE_30
    assert codec.encode_cancel(b"topic", peer_minor=0) == CANCEL_MESSAGE_30
    assert codec.encode_subscribe(b"topic", peer_minor=1) == SUBSCRIBE_TOPIC
    assert codec.encode_cancel(b"topic", peer_minor=2) == CANCEL_TOPIC
    assert codec.parse_subscription_message(b"\x01topic") == (True, b"topic")
    assert codec.parse_subscription_message(b"\x00topic") == (False, b"topic")
    assert codec.parse_subscription_message(b"\x00") == (False, b"")
    assert codec.parse_subscription_message(b"\x02topic") is None
    assert codec.parse_subscription_message(b"") is None


def test_encode_truncates_to_rfc_limits():
    ping = codec.encode_ping(1, b"x" * 40)
    assert ping == b"\x04\x17\x04PING\x00\x01" + b"x" * 16  # context: 16 octets max
    assert codec.encode_pong(b"y" * 40) == b"\x04\x15\x04PONG" + b"y" * 16
    err = codec.encode_error(b"e" * 300)
    assert err == b"\x06" + (1 + 5 + 1 + 255).to_bytes(8, "big") + b"\x05ERROR\xff" + b"e" * 255
    with pytest.raises(ValueError):
        codec.encode_ping(65536)
    with pytest.raises(ValueError):
        codec.encode_ping(-1)


def test_encode_frames():
    assert codec.encode_frame(b"") == EMPTY_FRAME
    assert codec.encode_frame(b"hello") == HELLO
    assert codec.encode_frame(b"a", True) == b"\x01\x01a"
    assert codec.encode_frame(bytes(range(256))) == LONG_256
    # 255 is the last short size, 256 the first long one.
    assert codec.encode_frame(b"x" * 255)[:2] == b"\x00\xff"
    assert codec.encode_frame(b"x" * 256)[:9] == b"\x02\x00\x00\x00\x00\x00\x00\x01\x00"
    assert codec.encode_frame(b"x" * 65536, True)[:9] == b"\x03\x00\x00\x00\x00\x00\x01\x00\x00"
    assert codec.encode_frame(b"\x05READY", False, True) == b"\x04\x06\x05READY"
    assert codec.encode_message([b"a", b"", b"b"]) == MULTI
    assert codec.encode_message([b"hello"]) == HELLO
    assert codec.encode_message([memoryview(b"hello")]) == HELLO
    assert codec.encode_message([Frame(b"a"), bytearray(b""), b"b"]) == MULTI


def test_encode_argument_errors():
    with pytest.raises(TypeError, match="not str"):
        codec.encode_frame("text")
    with pytest.raises(TypeError):
        codec.encode_message(b"abc")
    with pytest.raises(ValueError):
        codec.encode_message([])
    with pytest.raises(TypeError, match="not int"):
        codec.encode_message([b"a", 3])
    with pytest.raises(ValueError, match="property names"):
        codec.encode_ready({"": b"x"})
    with pytest.raises(ValueError, match="property names"):
        codec.encode_ready({"bad name": b"x"})
    with pytest.raises(ValueError, match="command name"):
        codec.encode_command(b"", b"")
    with pytest.raises(TypeError):
        codec.encode_ready([("only-one",)])


# ------------------------------------------------------------------ greeting edge cases


def test_greeting_split_after_11_octets():
    """libzmq sends its signature and major version first, then the rest."""
    dec = Decoder()
    assert dec.feed(GREETING_31[:11]) == []
    assert dec.feed(GREETING_31[11:]) == [Greeting(3, 1, b"NULL", False)]
    assert dec.greeting == Greeting(3, 1, b"NULL", False)


@pytest.mark.parametrize("major,label", [(0, "ZMTP 1.0"), (2, "ZMTP 2.1")])
def test_old_major_version_refused_after_11_octets(major, label):
    dec = Decoder()
    wire = greeting(major=major)
    assert dec.feed(wire[:10]) == []
    with pytest.raises(ProtocolError) as info:
        dec.feed(wire[10:11])  # no need to wait for 64 octets
    assert info.value.code == ErrorCode.VERSION
    assert f"major version {major}" in info.value.reason


def test_bad_signature_refused_at_first_octet():
    with pytest.raises(ProtocolError) as info:
        Decoder().feed(b"G")  # "GET / HTTP/1.1"
    assert info.value.code == ErrorCode.SIGNATURE
    assert "0x47" in info.value.reason


def test_bad_signature_octet_9():
    with pytest.raises(ProtocolError) as info:
        Decoder().feed(b"\xff" + b"\x00" * 8 + b"\x7e")
    assert info.value.code == ErrorCode.SIGNATURE


# ------------------------------------------------------------------ ZMTP/2.0 (RFC 15)

# libzmq 3.x's signature: 0xff, the identity's length + 1 (8 octets), 0x7f.
SIG_V2_LIBZMQ3 = b"\xff" + (4).to_bytes(8, "big") + b"\x7f"


def greeting_v2(socket_type: int, identity: bytes = b"", sig: bytes = SIG) -> bytes:
    """RFC 15: signature, revision 0x01, socket-type, identity as a final short frame."""
    return sig + bytes([1, socket_type, 0, len(identity)]) + identity


def v2_greeting_event(socket_type: int) -> Greeting:
    return Greeting(2, 0, b"", False, socket_type)


# (name, wire bytes, expected events): a 2.0 peer's whole traffic, greeting first
V2_FIXTURES = [
    ("v2-dealer-no-identity", greeting_v2(5), [v2_greeting_event(5), msg(b"")]),
    ("v2-router-identity", greeting_v2(6, b"peer"), [v2_greeting_event(6), msg(b"peer")]),
    ("v2-libzmq3-signature", greeting_v2(3, b"abc", SIG_V2_LIBZMQ3), [v2_greeting_event(3), msg(b"abc")]),
    ("v2-identity-255", greeting_v2(0, b"i" * 255), [v2_greeting_event(0), msg(b"i" * 255)]),
    # XPUB/XSUB as libzmq 3.x numbers them; 0xff: decoded, refused by the connection
    ("v2-xsub", greeting_v2(10), [v2_greeting_event(10), msg(b"")]),
    ("v2-unknown-type", greeting_v2(0xFF), [v2_greeting_event(0xFF), msg(b"")]),
    ("v2-messages", greeting_v2(8) + HELLO + MULTI + LONG_256 + LONG_FORM_SMALL + SUB_MESSAGE_30,
     [v2_greeting_event(8), msg(b""), msg(b"hello"), msg(b"a", b"", b"b"), msg(bytes(range(256))), msg(b"short"),
      msg(b"\x01topic")]),
    ("v2-long-more", greeting_v2(5) + b"\x03" + (300).to_bytes(8, "big") + b"m" * 300 + b"\x00\x01z",
     [v2_greeting_event(5), msg(b""), msg(b"m" * 300, b"z")]),
]
V2_IDS = [f[0] for f in V2_FIXTURES]


@pytest.mark.parametrize("name,wire,events", V2_FIXTURES, ids=V2_IDS)
def test_v2_decode_whole(name, wire, events):
    dec = Decoder()
    assert normalise(dec.feed(wire)) == expected(events)
    assert dec.pending == 0
    assert dec.greeting == events[0]


@pytest.mark.parametrize("name,wire,events", V2_FIXTURES, ids=V2_IDS)
def test_v2_decode_byte_by_byte(name, wire, events):
    dec = Decoder()
    got = []
    for i in range(len(wire)):
        new = dec.feed(wire[i : i + 1])
        if i < 11:
            assert new == [], f"event at octet {i}"
        if i == 11:  # 12 octets: the greeting, before any identity (a 2.0 peer waits for ours)
            assert new == [events[0]]
        got.extend(new)
    assert normalise(got) == expected(events)
    assert dec.pending == 0


@pytest.mark.parametrize("trailing", [b"\x00", b"\x01\x05hel", b"\x02\x00\x00\x00", b"\x03"])
@pytest.mark.parametrize("name,wire,events", V2_FIXTURES, ids=V2_IDS)
def test_v2_decode_with_trailing_data(name, wire, events, trailing):
    dec = Decoder()
    assert normalise(dec.feed(wire + trailing)) == expected(events)
    assert dec.pending == len(trailing)
    assert dec.error is None


@pytest.mark.parametrize("page", [256, 300])
def test_v2_decode_small_pages(page):
    name, wire, events = V2_FIXTURES[6]
    dec = Decoder(read_buf_size=page)
    head, body = wire[:14 + 0], wire[14:]  # greeting and the (empty) identity frame's header
    stream = head + body * 3
    got = []
    for i in range(0, len(stream), 3):
        got.extend(dec.feed(stream[i : i + 3]))
    assert normalise(got) == expected(events[:2] + events[2:] * 3)


V2_MALFORMED = [
    # RFC 15: identity = final-short body
    ("identity-more", greeting_v2(5)[:12] + b"\x01\x00", ErrorCode.V2_GREETING),
    ("identity-long", greeting_v2(5)[:12] + b"\x02" + b"\x00" * 8, ErrorCode.V2_GREETING),
    ("identity-command", greeting_v2(5)[:12] + b"\x04\x00", ErrorCode.V2_GREETING),
    ("identity-reserved", greeting_v2(5)[:12] + b"\x80\x00", ErrorCode.V2_GREETING),
    # 2.0 has no commands: the COMMAND bit is reserved there
    ("command-after-identity", greeting_v2(5) + PING_10, ErrorCode.RESERVED_FLAGS),
    ("ready-after-identity", greeting_v2(5) + READY_DEALER, ErrorCode.RESERVED_FLAGS),
    ("reserved-bit-3", greeting_v2(5) + b"\x08\x00", ErrorCode.RESERVED_FLAGS),
    ("size-top-bit", greeting_v2(5) + b"\x02\x80" + b"\x00" * 7, ErrorCode.FRAME_SIZE),
]


@pytest.mark.parametrize("name,wire,code", V2_MALFORMED, ids=[m[0] for m in V2_MALFORMED])
def test_v2_malformed_gives_its_error(name, wire, code):
    for chunks in ([wire], [wire[i : i + 1] for i in range(len(wire))]):
        dec = Decoder()
        with pytest.raises(ProtocolError) as info:
            for c in chunks:
                dec.feed(c)
        assert info.value.code == code, (name, info.value.reason)
        assert dec.error is not None


def test_v2_huge_identity_claim_allocates_nothing():
    """A long identity header is refused at its flags, before any size is read."""
    with pytest.raises(ProtocolError) as info:
        Decoder().feed(greeting_v2(5)[:12] + b"\x02" + b"\xff" * 8)
    assert info.value.code == ErrorCode.V2_GREETING
    assert "final short frame" in info.value.reason


def test_v2_frame_bounded_by_maxmsgsize():
    dec = Decoder(maxmsgsize=100)
    with pytest.raises(ProtocolError) as info:
        dec.feed(greeting_v2(5) + b"\x02" + (101).to_bytes(8, "big"))
    assert info.value.code == ErrorCode.MSG_TOO_LARGE


# ------------------------------------------------------------------ malformed input

MALFORMED = [
    ("reserved-bit-3", b"\x08\x00", ErrorCode.RESERVED_FLAGS),
    ("reserved-bit-7", b"\x80\x00", ErrorCode.RESERVED_FLAGS),
    ("reserved-all", b"\xff", ErrorCode.RESERVED_FLAGS),
    ("command-with-more", b"\x05\x06\x05READY", ErrorCode.COMMAND_MORE),
    ("long-command-with-more", b"\x07" + (6).to_bytes(8, "big"), ErrorCode.COMMAND_MORE),
    ("size-top-bit", b"\x02\x80" + b"\x00" * 7, ErrorCode.FRAME_SIZE),
    ("size-2**64-1", b"\x02" + b"\xff" * 8, ErrorCode.FRAME_SIZE),
    ("empty-command", b"\x04\x00", ErrorCode.COMMAND),
    ("command-name-size-0", b"\x04\x01\x00", ErrorCode.COMMAND),
    ("command-name-past-end", b"\x04\x03\x05RE", ErrorCode.COMMAND),
    ("ready-value-past-end", b"\x04\x16\x05READY\x0bSocket-Type\x00\x00\x00\x07", ErrorCode.READY),
    ("ready-value-huge", b"\x04\x16\x05READY\x0bSocket-Type\xff\xff\xff\xff", ErrorCode.READY),
    ("ready-name-past-end", b"\x04\x09\x05READY\x05ab", ErrorCode.READY),
    ("ready-name-size-0", b"\x04\x0b\x05READY\x00\x00\x00\x00\x00", ErrorCode.READY),
    ("ready-truncated-value-size", b"\x04\x0a\x05READY\x01a\x00\x00", ErrorCode.READY),
    ("ready-bad-name-char", b"\x04\x0e\x05READY\x03a b\x00\x00\x00\x00", ErrorCode.READY),
    ("ready-duplicate-name", b"\x04\x12\x05READY\x01a\x00\x00\x00\x00\x01A\x00\x00\x00\x00", ErrorCode.READY),
    ("error-reason-past-end", b"\x04\x09\x05ERROR\x05ab", ErrorCode.ERROR_CMD),
    ("error-no-reason-size", b"\x04\x06\x05ERROR", ErrorCode.ERROR_CMD),
    ("ping-no-ttl", b"\x04\x05\x04PING", ErrorCode.PING),
    ("ping-half-ttl", b"\x04\x06\x04PING\x00", ErrorCode.PING),
]


def test_malformed_vectors_are_well_formed_frames():
    """Each command vector above is one complete frame; only its content is bad."""
    for name, wire, code in MALFORMED:
        if wire[0] == 0x04:
            assert len(wire) == 2 + wire[1], name


@pytest.mark.parametrize("name,wire,code", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_gives_its_error(name, wire, code):
    dec = Decoder(greeting=False)
    with pytest.raises(ProtocolError) as info:
        dec.feed(wire)
    assert info.value.code == code
    assert isinstance(info.value.code, ErrorCode)
    assert info.value.reason
    assert dec.error == code and dec.reason == info.value.reason
    # The decoder stays failed, as the connection is closed.
    with pytest.raises(ProtocolError) as again:
        dec.feed(HELLO)
    assert again.value.code == code


@pytest.mark.parametrize("name,wire,code", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_byte_by_byte(name, wire, code):
    dec = Decoder(greeting=False)
    with pytest.raises(ProtocolError) as info:
        for i in range(len(wire)):
            dec.feed(wire[i : i + 1])
    assert info.value.code == code


def test_error_keeps_events_decoded_before_it():
    dec = Decoder()
    with pytest.raises(ProtocolError) as info:
        dec.feed(GREETING_31 + READY_DEALER + HELLO + b"\x09\x00")
    events = info.value.events
    assert [type(e) for e in events] == [Greeting, Ready, Message]
    assert events[2].parts == [b"hello"]


def test_partial_message_dropped_on_error():
    """Atomicity: frames of an unfinished message are never delivered."""
    dec = Decoder(greeting=False)
    with pytest.raises(ProtocolError) as info:
        dec.feed(b"\x01\x01a\x01\x01b\x80")
    assert info.value.events == []


def test_maxmsgsize_is_per_frame():
    dec = Decoder(greeting=False, maxmsgsize=5)
    assert normalise(dec.feed(b"\x01\x05hello\x00\x05world")) == [("msg", [(b"hello", True), (b"world", False)])]
    with pytest.raises(ProtocolError) as info:
        dec.feed(b"\x00\x06hello!")
    assert info.value.code == ErrorCode.MSG_TOO_LARGE
    assert "MAXMSGSIZE 5" in info.value.reason


def test_maxmsgsize_checked_at_header_time():
    """A too-large frame is refused on its header, before any body arrives."""
    dec = Decoder(greeting=False, maxmsgsize=1000)
    with pytest.raises(ProtocolError) as info:
        dec.feed(b"\x02" + (2**40).to_bytes(8, "big"))
    assert info.value.code == ErrorCode.MSG_TOO_LARGE


def test_maxmsgsize_zero_allows_empty_frames():
    dec = Decoder(greeting=False, maxmsgsize=0)
    assert normalise(dec.feed(b"\x00\x00")) == [("msg", [(b"", False)])]
    with pytest.raises(ProtocolError):
        dec.feed(b"\x00\x01x")


def test_max_frames():
    dec = Decoder(greeting=False, max_frames=3)
    assert len(dec.feed(b"\x01\x00" * 2 + b"\x00\x00")[0].frames) == 3
    with pytest.raises(ProtocolError) as info:
        dec.feed(b"\x01\x00" * 3 + b"\x00\x00")
    assert info.value.code == ErrorCode.TOO_MANY_FRAMES


def test_max_frames_default_bounds_a_frame_bomb():
    dec = Decoder(greeting=False)
    assert dec._dec.max_frames == codec.MAX_FRAMES_DEFAULT
    with pytest.raises(ProtocolError) as info:
        dec.feed(b"\x01\x01x" * (codec.MAX_FRAMES_DEFAULT + 1))
    assert info.value.code == ErrorCode.TOO_MANY_FRAMES


def test_commands_do_not_count_as_frames():
    dec = Decoder(greeting=False, max_frames=2)
    events = dec.feed(b"\x01\x01a" + PING_10 * 5 + b"\x00\x01b")
    assert normalise(events) == [Ping(10, b"")] * 5 + [("msg", [(b"a", True), (b"b", False)])]


def test_decoder_argument_errors():
    with pytest.raises(ValueError, match="read_buf_size"):
        Decoder(read_buf_size=10)
    with pytest.raises(ValueError, match="max_frames"):
        Decoder(max_frames=0)
    with pytest.raises(ValueError, match="maxmsgsize"):
        Decoder(maxmsgsize=-2)
    with pytest.raises(TypeError):
        Decoder().feed("text")
    with pytest.raises(TypeError):
        Decoder(1)  # keyword-only


def test_error_codes_have_texts():
    for code in ErrorCode:
        assert code.text and code.text != "unknown codec error"


def test_parse_command_directly():
    assert codec.parse_command(READY_DEALER[2:]) == Ready(((b"Socket-Type", b"DEALER"),))
    assert codec.parse_command(b"\x04PING\x00\x01" + b"c" * 20) == Ping(1, b"c" * 20)
    ready = codec.parse_command(READY_REQ[2:])
    assert ready.socket_type == b"REQ" and ready["socket-type"] == b"REQ" and ready.identity == b""
    with pytest.raises(KeyError):
        ready["X-Missing"]
    with pytest.raises(ProtocolError) as info:
        codec.parse_command(b"\x04PING\x00")
    assert info.value.code == ErrorCode.PING


@pytest.mark.parametrize("mech", [b"", b"null", b"NU LL", b"\xffNULL"])
def test_bad_mechanism_name_refused(mech):
    """RFC 23: 1..20 characters of A-Z 0-9 - _ . +, NUL-padded."""
    with pytest.raises(ProtocolError) as info:
        Decoder().feed(greeting(mech=mech))
    assert info.value.code == ErrorCode.MECHANISM
