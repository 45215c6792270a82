"""zmtp.utils.z85 (RFC 32): the RFC's test vector, round trips, agreement
with pyzmq's zmq.utils.z85 on random inputs, and every error case."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zmtp.utils import z85

zmq_z85 = pytest.importorskip("zmq.utils.z85")

# RFC 32's test vector
RFC_RAW = bytes([0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B])
RFC_Z85 = b"HelloWorld"

raw_groups = st.integers(min_value=0, max_value=64).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))


def test_rfc32_vector() -> None:
    assert z85.encode(RFC_RAW) == RFC_Z85
    assert z85.decode(RFC_Z85) == RFC_RAW
    assert z85.decode("HelloWorld") == RFC_RAW


def test_edges_and_inputs() -> None:
    assert z85.encode(b"") == b"" and z85.decode(b"") == b"" and z85.decode("") == b""
    assert z85.encode(b"\x00" * 4) == b"00000"
    assert z85.encode(b"\xff" * 4) == b"%nSc0"
    assert z85.decode(b"%nSc0") == b"\xff" * 4
    for form in (bytearray(RFC_RAW), memoryview(RFC_RAW)):
        assert z85.encode(form) == RFC_Z85
    for form in (bytearray(RFC_Z85), memoryview(RFC_Z85)):
        assert z85.decode(form) == RFC_RAW
    assert isinstance(z85.encode(bytearray(RFC_RAW)), bytes)
    assert len(z85.Z85CHARS) == 85 == len(set(z85.Z85CHARS)) == len(z85.Z85MAP)
    assert z85.Z85CHARS == zmq_z85.Z85CHARS and z85.Z85MAP == zmq_z85.Z85MAP


@settings(max_examples=300, deadline=None)
@given(raw_groups)
def test_round_trip(raw: bytes) -> None:
    text = z85.encode(raw)
    assert len(text) == len(raw) // 4 * 5
    assert set(text) <= set(z85.Z85CHARS)
    assert z85.decode(text) == raw
    assert z85.decode(text.decode("ascii")) == raw


@settings(max_examples=300, deadline=None)
@given(raw_groups)
def test_agrees_with_pyzmq(raw: bytes) -> None:
    assert z85.encode(raw) == zmq_z85.encode(raw)
    assert z85.decode(zmq_z85.encode(raw)) == zmq_z85.decode(z85.encode(raw)) == raw


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list(z85.Z85CHARS)), min_size=0, max_size=60).map(bytes))
def test_decode_agrees_with_pyzmq_on_any_text(text: bytes) -> None:
    """Any string of the alphabet: the same bytes as pyzmq, or (where pyzmq
    fails, on a length or a group over 32 bits) a ValueError."""
    try:
        expected = zmq_z85.decode(text)
    except Exception:
        with pytest.raises(ValueError):
            z85.decode(text)
    else:
        assert z85.decode(text) == expected


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 33])
def test_encode_length_not_multiple_of_4(n: int) -> None:
    with pytest.raises(ValueError, match=f"multiple of 4, not {n}"):
        z85.encode(b"x" * n)


@pytest.mark.parametrize("n", [1, 4, 6, 39, 41])
def test_decode_length_not_multiple_of_5(n: int) -> None:
    with pytest.raises(ValueError, match=f"multiple of 5, not {n}"):
        z85.decode(b"0" * n)
    with pytest.raises(ValueError, match=f"multiple of 5, not {n}"):
        z85.decode("0" * n)


@pytest.mark.parametrize("bad", [b"~", b" ", b"\x00", b"\xff", b",", b";", b'"', b"'", b"\\", b"_", b"`", b"|"])
def test_decode_bad_character(bad: bytes) -> None:
    text = b"Hello" + b"Wor" + bad + b"d"
    with pytest.raises(ValueError, match=r"invalid Z85 character .* at offset 8"):
        z85.decode(text)


def test_decode_non_ascii_str() -> None:
    with pytest.raises(ValueError, match="only ASCII"):
        z85.decode("Hell\u00e9")


def test_decode_group_over_32_bits() -> None:
    # 85**5 - 1 > 2**32 - 1: "%nSc1" is 2**32, "#####" the largest group
    for text in (b"%nSc1", b"#####", b"00000%nSc1"):
        with pytest.raises(ValueError, match="exceeds 32 bits"):
            z85.decode(text)


def test_encode_rejects_str() -> None:
    with pytest.raises(TypeError, match="bytes"):
        z85.encode("HelloWor")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=40), st.text(max_size=20)))
def test_decode_any_input_is_bytes_or_value_error(data) -> None:
    """Whatever the input, decode returns pyzmq's answer or raises
    ValueError (pyzmq lets KeyError and struct.error out)."""
    try:
        got = z85.decode(data)
    except ValueError:
        return
    assert got == zmq_z85.decode(data)
    assert z85.encode(got) == (data.encode("ascii") if isinstance(data, str) else data)
