"""Z85 (ZeroMQ RFC 32), pyzmq's ``zmq.utils.z85``: ``encode`` / ``decode``.

Z85 writes each 4-byte big-endian group as 5 characters of an 85-symbol
alphabet, so raw input is a multiple of 4 bytes and encoded input a
multiple of 5 characters; anything else is a ValueError saying which rule
was broken, as is a character outside the alphabet or a 5-character group
above 2**32 - 1 (pyzmq lets those two out as KeyError / struct.error).

Layering: imports nothing from zmtp.
"""

from __future__ import annotations

from typing import Dict, Union

__all__ = ["Z85CHARS", "Z85MAP", "encode", "decode"]

_RawBytes = Union[bytes, bytearray, memoryview]

#: the 85 symbols, in value order (RFC 32)
Z85CHARS: bytes = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
#: symbol (as an int byte) -> its value 0..84
Z85MAP: Dict[int, int] = {c: i for i, c in enumerate(Z85CHARS)}

# byte -> value, -1 for bytes outside the alphabet (a list indexes faster than a dict)
_VALUE = [Z85MAP.get(b, -1) for b in range(256)]
_MAX_GROUP = 0xFFFFFFFF


def encode(rawbytes: _RawBytes) -> bytes:
    """Encode raw bytes (a multiple of 4 of them) into Z85 bytes.

    Raises ValueError when the length is not a multiple of 4 and TypeError
    for an argument that is not bytes-like (a str, as pyzmq).
    """
    if isinstance(rawbytes, str):
        raise TypeError("z85.encode takes bytes, not str")
    raw = memoryview(rawbytes).cast("B")
    if len(raw) % 4:
        raise ValueError(f"length must be multiple of 4, not {len(raw)}")
    out = bytearray()
    chars = Z85CHARS
    for i in range(0, len(raw), 4):
        value = int.from_bytes(raw[i:i + 4], "big")
        group = bytearray(5)
        for j in range(4, -1, -1):
            value, digit = divmod(value, 85)
            group[j] = chars[digit]
        out += group
    return bytes(out)


def decode(z85bytes: Union[str, _RawBytes]) -> bytes:
    """Decode Z85 (bytes, or a str of ASCII characters) into raw bytes.

    Raises ValueError when the length is not a multiple of 5, for a
    character outside the Z85 alphabet (naming it and its offset), for a
    non-ASCII str, and for a 5-character group whose value exceeds 32 bits.
    """
    if isinstance(z85bytes, str):
        try:
            data = z85bytes.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("string argument should contain only ASCII characters") from None
    else:
        data = bytes(memoryview(z85bytes).cast("B"))
    if len(data) % 5:
        raise ValueError(f"Z85 length must be multiple of 5, not {len(data)}")
    out = bytearray()
    table = _VALUE
    for i in range(0, len(data), 5):
        value = 0
        for j in range(i, i + 5):
            digit = table[data[j]]
            if digit < 0:
                raise ValueError(f"invalid Z85 character {bytes([data[j]])!r} at offset {j}")
            value = value * 85 + digit
        if value > _MAX_GROUP:
            raise ValueError(f"Z85 group {data[i:i + 5]!r} at offset {i} exceeds 32 bits")
        out += value.to_bytes(4, "big")
    return bytes(out)
