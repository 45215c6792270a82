"""Property tests for the ZMTP codec (zmtp.codec): round-trips, chunking
invariance and encoder/decoder agreement for commands."""

from __future__ import annotations

import gc

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import zmtp
from zmtp import codec
from zmtp.codec import ErrorCode, ProtocolError

READ_BUF_SIZES = (256, 1024, 65536)
SIZES = [0, 1, 254, 255, 256, 65535, 65536, 65537, 300000]
KNOWN_COMMANDS = {b"READY", b"ERROR", b"PING", b"PONG", b"SUBSCRIBE", b"CANCEL"}
NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+"

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ------------------------------------------------------------------ helpers


def fill(pattern: bytes, size: int) -> bytes:
    """`size` bytes of a repeated pattern (cheap big frames)."""
    return (pattern * (size // len(pattern) + 1))[:size]


def normalize(event):
    """Events as plain comparable values (frames as bytes with their flags)."""
    if isinstance(event, codec.Message):
        return ("msg", [(f.bytes, f.more, f.command) for f in event.frames])
    return event


def expected_message(frames):
    n = len(frames)
    return ("msg", [(bytes(f), i < n - 1, False) for i, f in enumerate(frames)])


def chunks_at(wire: bytes, cuts):
    """Split wire at the (sorted) cut positions; may yield empty chunks."""
    prev = 0
    for c in sorted(cuts):
        yield wire[prev:c]
        prev = c
    yield wire[prev:]


def pages_live() -> int:
    return zmtp.memory_stats()["pages_live"]


def assert_pages_live(base: int) -> None:
    """pages_live back at base (a full gc only when refcounting did not do
    it: gc.collect() is too slow to run on every example)."""
    if pages_live() != base:
        gc.collect()
    assert pages_live() == base


def decode_chunks(chunks, **kw):
    """Feed chunks; return (events, error code or None, reason, decoder)."""
    dec = codec.Decoder(**kw)
    events = []
    for chunk in chunks:
        try:
            events.extend(normalize(e) for e in dec.feed(chunk))
        except ProtocolError as exc:
            events.extend(normalize(e) for e in exc.events)
            return events, exc.code, exc.reason, dec
    return events, None, None, dec


# --------------------------------------------------------------- strategies


@st.composite
def frame_bodies(draw, big: bool = True):
    if big:
        size = draw(st.one_of(st.sampled_from(SIZES), st.integers(0, 600)))
    else:
        size = draw(st.one_of(st.sampled_from([0, 1, 254, 255, 256]), st.integers(0, 300)))
    pattern = draw(st.binary(min_size=1, max_size=17))
    return fill(pattern, size)


prop_names = st.text(alphabet=NAME_CHARS, min_size=1, max_size=255).map(lambda s: s.encode("ascii"))
prop_values = st.one_of(
    st.binary(max_size=64),
    st.builds(fill, st.binary(min_size=1, max_size=5), st.sampled_from([255, 256, 70000])),
)
prop_lists = st.lists(st.tuples(prop_names, prop_values), max_size=8, unique_by=lambda p: p[0].lower())


def _ping(ttl, ctx):
    return codec.encode_ping(ttl, ctx), codec.Ping(ttl, ctx[:16])


def _pong(ctx):
    return codec.encode_pong(ctx), codec.Pong(ctx[:16])


def _ready(props):
    return codec.encode_ready(props), codec.Ready(tuple(props))


def _error(reason):
    return codec.encode_error(reason), codec.Error(reason[:255])


def _unknown(name, data):
    return codec.encode_command(name, data), codec.UnknownCommand(name, data)


# (wire bytes, expected event) for one command
commands = st.one_of(
    st.builds(_ping, st.integers(0, 65535), st.binary(max_size=24)),
    st.builds(_pong, st.binary(max_size=24)),
    st.binary(max_size=300).map(lambda t: (codec.encode_subscribe(t), codec.Subscribe(t))),
    st.binary(max_size=300).map(lambda t: (codec.encode_cancel(t), codec.Cancel(t))),
    st.builds(_ready, prop_lists),
    st.builds(_error, st.binary(max_size=300)),
    st.builds(
        _unknown,
        st.binary(min_size=1, max_size=12).filter(lambda n: n not in KNOWN_COMMANDS),
        st.binary(max_size=300),
    ),
)

greetings = st.builds(
    lambda minor, mech, srv: (
        codec.encode_greeting(minor, mech, srv),
        codec.Greeting(3, minor, mech, srv),
    ),
    st.sampled_from([0, 1, 2, 255]),
    st.sampled_from([b"NULL", b"PLAIN", b"CURVE", b"X" * 20]),
    st.booleans(),
)


@st.composite
def streams(draw, big: bool = True, max_items: int = 5):
    """A valid byte stream (greeting, messages, commands, some between the
    frames of a message) and the events it must decode to."""
    g_wire, g_event = draw(greetings)
    wire = [g_wire]
    expected = [g_event]
    n_items = draw(st.integers(1, max_items))
    for _ in range(n_items):
        if draw(st.integers(0, 3)) == 0:
            cmd_wire, cmd_event = draw(commands)
            wire.append(cmd_wire)
            expected.append(cmd_event)
            continue
        frames = draw(st.lists(frame_bodies(big=big), min_size=1, max_size=10))
        if draw(st.booleans()):
            wire.append(codec.encode_message(frames))
        else:
            # commands between frames of the message: returned on their own,
            # before the message, which is returned whole
            n = len(frames)
            for i, f in enumerate(frames):
                wire.append(codec.encode_frame(f, i < n - 1))
                if i < n - 1:
                    for cmd_wire, cmd_event in draw(st.lists(commands, max_size=2)):
                        wire.append(cmd_wire)
                        expected.append(cmd_event)
        expected.append(expected_message(frames))
    return b"".join(wire), expected


@st.composite
def streams_with_cuts(draw, big: bool = True):
    wire, expected = draw(streams(big=big))
    cuts = draw(st.lists(st.integers(0, len(wire)), max_size=24))
    # also some cuts around the interesting small offsets (greeting, headers)
    cuts += draw(st.lists(st.integers(0, min(len(wire), 80)), max_size=4))
    return wire, expected, cuts


# --------------------------------------------------------------- round-trip


@settings(max_examples=150, **SETTINGS)
@given(streams_with_cuts())
def test_roundtrip_random_splits(case):
    wire, expected, cuts = case
    base = pages_live()
    for rbs in READ_BUF_SIZES:
        events, code, reason, dec = decode_chunks(chunks_at(wire, cuts), read_buf_size=rbs)
        assert code is None, (rbs, code, reason)
        assert events == expected, rbs
        assert dec.pending == 0
        assert dec.error is None and dec.reason is None
        del dec
        assert_pages_live(base)  # frames went to bytes: no page leaked


@settings(max_examples=40, **SETTINGS)
@given(streams(big=False, max_items=3))
def test_roundtrip_byte_by_byte(case):
    wire, expected = case
    for rbs in (256, 65536):
        chunks = [wire[i : i + 1] for i in range(len(wire))]
        events, code, reason, dec = decode_chunks(chunks, read_buf_size=rbs)
        assert code is None, (rbs, code, reason)
        assert events == expected, rbs
        assert dec.pending == 0


@settings(max_examples=40, **SETTINGS)
@given(st.lists(frame_bodies(), min_size=1, max_size=10))
def test_encode_message_is_concatenated_frames(frames):
    n = len(frames)
    wire = codec.encode_message(frames)
    assert wire == b"".join(codec.encode_frame(f, i < n - 1) for i, f in enumerate(frames))
    # header form by size: short (2 octets) up to 255, long (9) above
    first = frames[0]
    assert wire[0] == (0x01 if n > 1 else 0) | (0x02 if len(first) > 255 else 0)
    dec = codec.Decoder(greeting=False)
    (msg,) = dec.feed(wire)
    assert normalize(msg) == expected_message(frames)
    assert msg.parts == frames


# ---------------------------------------------------------- chunk invariance


def _mutate(data: bytes, pos: int, byte: int) -> bytes:
    if not data:
        return data
    pos %= len(data)
    return data[:pos] + bytes([byte]) + data[pos + 1 :]


# mostly-plausible input: random bytes mixed with valid frames and commands,
# optionally with one octet overwritten
pieces = st.one_of(
    st.binary(max_size=64),
    st.lists(frame_bodies(big=False), min_size=1, max_size=3).map(codec.encode_message),
    commands.map(lambda c: c[0]),
    st.sampled_from(
        [
            b"\x02" + (2**63 - 1).to_bytes(8, "big"),
            b"\x02" + (2**63).to_bytes(8, "big"),
            b"\x02" + (300).to_bytes(8, "big"),
            b"\x06" + (600).to_bytes(8, "big"),
            b"\x05\x00",
            b"\x04\x00",
            b"\x04\x01\x00",
            b"\x08\x00",
        ]
    ),
)


@st.composite
def arbitrary_input(draw):
    data = b"".join(draw(st.lists(pieces, max_size=6)))
    if draw(st.booleans()):
        data = _mutate(data, draw(st.integers(0, 10**6)), draw(st.integers(0, 255)))
    if draw(st.booleans()):
        data = draw(greetings)[0] + data
    return data


@settings(max_examples=500, **SETTINGS)
@given(
    data=st.one_of(st.binary(max_size=400), arbitrary_input()),
    greeting=st.booleans(),
    rbs=st.sampled_from(READ_BUF_SIZES),
    cut_seed=st.lists(st.integers(0, 10**6), max_size=20),
)
def test_chunking_invariance(data, greeting, rbs, cut_seed):
    cuts = [c % (len(data) + 1) for c in cut_seed]
    base = pages_live()
    whole = decode_chunks([data], greeting=greeting, read_buf_size=rbs)
    split = decode_chunks(chunks_at(data, cuts), greeting=greeting, read_buf_size=rbs)
    bytewise = decode_chunks([data[i : i + 1] for i in range(len(data))], greeting=greeting, read_buf_size=rbs)
    for other in (split, bytewise):
        assert other[0] == whole[0]  # events (before any error)
        assert other[1] == whole[1]  # error code
        assert other[2] == whole[2]  # reason
        if whole[1] is None:
            assert other[3].pending == whole[3].pending
        else:
            assert isinstance(whole[1], ErrorCode)
            assert other[3].error == whole[1]
    # a failed decoder stays failed, with the same code and no new events
    if whole[1] is not None:
        with pytest.raises(ProtocolError) as ei:
            whole[3].feed(b"\x00\x00")
        assert ei.value.code == whole[1]
        assert ei.value.events == []
        del ei
    # nothing leaked, whatever the input (error paths included)
    del whole, split, bytewise, other
    assert_pages_live(base)


# ----------------------------------------------------------------- commands


def decode_one(wire: bytes):
    (event,) = codec.Decoder(greeting=False).feed(wire)
    return event


def command_body(wire: bytes) -> bytes:
    """The body of a single command frame."""
    assert wire[0] & 0x04
    return wire[2:] if not wire[0] & 0x02 else wire[9:]


@settings(max_examples=100, **SETTINGS)
@given(props=prop_lists, as_dict=st.booleans())
def test_ready_roundtrip(props, as_dict):
    arg = {n.decode("ascii"): v for n, v in props} if as_dict else props
    wire = codec.encode_ready(arg)
    ready = decode_one(wire)
    assert isinstance(ready, codec.Ready)
    assert ready.properties == tuple(props)
    assert codec.parse_command(command_body(wire)) == ready
    for name, value in props:
        assert ready.get(name.swapcase()) == value
        assert ready[name.decode("ascii").upper()] == value


@settings(max_examples=50, **SETTINGS)
@given(props=prop_lists.filter(bool), data=st.data())
def test_ready_duplicate_name_is_refused(props, data):
    # a name given twice (differing in case only) is a protocol error
    i = data.draw(st.integers(0, len(props) - 1))
    dup = (props[i][0].swapcase(), b"dup")
    at = data.draw(st.integers(0, len(props)))
    bad = props[:at] + [dup] + props[at:]
    wire = codec.encode_command(b"READY", b"".join(
        bytes([len(n)]) + n + len(v).to_bytes(4, "big") + v for n, v in bad
    ))
    with pytest.raises(ProtocolError) as ei:
        codec.Decoder(greeting=False).feed(wire)
    assert ei.value.code == ErrorCode.READY


@settings(max_examples=50, **SETTINGS)
@given(
    good=st.text(alphabet=NAME_CHARS, min_size=0, max_size=10),
    bad=st.one_of(
        st.characters(codec="ascii").filter(lambda c: c not in NAME_CHARS),
        st.just(""),
    ),
)
def test_ready_invalid_name_is_refused_by_encoder(good, bad):
    name = good + bad if bad else ""
    with pytest.raises(ValueError):
        codec.encode_ready([(name, b"v")])


def test_ready_name_length_limits():
    ok = "N" * 255
    assert decode_one(codec.encode_ready([(ok, b"x")])).properties == ((ok.encode(), b"x"),)
    with pytest.raises(ValueError):
        codec.encode_ready([("N" * 256, b"x")])


@settings(max_examples=100, **SETTINGS)
@given(ttl=st.integers(0, 65535), ctx=st.binary(max_size=40))
def test_ping_pong_roundtrip(ttl, ctx):
    ping = decode_one(codec.encode_ping(ttl, ctx))
    assert ping == codec.Ping(ttl, ctx[:16])
    assert ping.ttl_seconds == ttl / 10.0
    assert decode_one(codec.encode_pong(ctx)) == codec.Pong(ctx[:16])
    # a peer may send a longer context; the decoder does not cut it
    long_ping = codec.encode_command(b"PING", ttl.to_bytes(2, "big") + ctx)
    assert decode_one(long_ping) == codec.Ping(ttl, ctx)


@pytest.mark.parametrize("ttl", [-1, 65536])
def test_ping_ttl_out_of_range(ttl):
    with pytest.raises(ValueError):
        codec.encode_ping(ttl, b"")


@settings(max_examples=100, **SETTINGS)
@given(topic=st.one_of(st.binary(max_size=300), st.builds(fill, st.binary(min_size=1, max_size=3), st.just(70000))))
def test_subscription_forms(topic):
    # ZMTP 3.1 peers: SUBSCRIBE / CANCEL commands
    for subscribe, event in ((True, codec.Subscribe(topic)), (False, codec.Cancel(topic))):
        wire = codec.encode_subscription(topic, subscribe, 1)
        assert wire == (codec.encode_subscribe(topic) if subscribe else codec.encode_cancel(topic))
        assert decode_one(wire) == event
    # ZMTP 3.0 peers: a one-frame message 0x01/0x00 + topic
    for subscribe, first in ((True, b"\x01"), (False, b"\x00")):
        wire = codec.encode_subscription(topic, subscribe, 0)
        assert wire == (codec.encode_subscribe(topic, 0) if subscribe else codec.encode_cancel(topic, 0))
        msg = decode_one(wire)
        assert isinstance(msg, codec.Message)
        assert normalize(msg) == expected_message([first + topic])
        assert codec.parse_subscription_message(msg.frames[0]) == (subscribe, topic)


@given(data=st.binary(max_size=40))
@settings(max_examples=50, **SETTINGS)
def test_parse_subscription_message_rejects_other_first_octets(data):
    assume(not data or data[0] > 1)
    assert codec.parse_subscription_message(data) is None


@settings(max_examples=50, **SETTINGS)
@given(reason=st.binary(max_size=400))
def test_error_roundtrip(reason):
    assert decode_one(codec.encode_error(reason)) == codec.Error(reason[:255])
