"""CURVE keys, pyzmq's ``zmq.curve_keypair`` / ``zmq.curve_public``.

Keys are 40 bytes of Z85 (RFC 32) each, made by libsodium (loaded at run
time, see docs/decisions.md): without libsodium both functions raise
RuntimeError saying what to install, and ``zmtp.has("curve")`` is False.
:func:`curve_available` is what ``has("curve")`` asks.

Layering: imports the C module only; imported by the package face and
``zmtp.version``.
"""

from __future__ import annotations

from typing import Optional, Tuple

from zmtp import _zmtp

__all__ = ["curve_keypair", "curve_public"]

def curve_unavailable() -> Optional[str]:
    """None when CURVE can be used (libsodium loaded), else a sentence
    saying why not and what to install."""
    return _zmtp._curve_unavailable()


def curve_available() -> bool:
    """True when libsodium is loaded and zmtp speaks CURVE."""
    return curve_unavailable() is None


def curve_keypair() -> Tuple[bytes, bytes]:
    """A new (public, secret) pair of Z85-encoded CURVE keys (40 bytes each),
    as ``zmq.curve_keypair()``.  RuntimeError without libsodium."""
    return _zmtp.curve_keypair()


def curve_public(secret_key: bytes) -> bytes:
    """The Z85-encoded public key of a Z85-encoded secret key (40 bytes), as
    ``zmq.curve_public()``: ValueError for anything else, RuntimeError
    without libsodium."""
    if isinstance(secret_key, str):
        secret_key = secret_key.encode("ascii", "replace")
    return _zmtp.curve_public(secret_key)
