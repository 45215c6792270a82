"""CURVE keys, pyzmq's ``zmq.curve_keypair`` / ``zmq.curve_public``.

zmtp has no CURVE mechanism yet (issue 17): both functions raise
NotImplementedError saying so, and ``zmtp.has("curve")`` is False (which
is what jupyter_client checks before it asks for keys).

Layering: imports nothing; imported by the package face.
"""

from __future__ import annotations

from typing import Tuple

__all__ = ["curve_keypair", "curve_public"]

_NOT_YET = "CURVE security is not implemented yet (issue 17)"


def curve_keypair() -> Tuple[bytes, bytes]:
    """A new (public, secret) pair of Z85-encoded CURVE keys.  Raises
    NotImplementedError until zmtp has CURVE (issue 17)."""
    raise NotImplementedError(_NOT_YET)


def curve_public(secret_key: bytes) -> bytes:
    """The Z85-encoded public key of a Z85-encoded secret key.  Raises
    NotImplementedError until zmtp has CURVE (issue 17)."""
    raise NotImplementedError(_NOT_YET)
