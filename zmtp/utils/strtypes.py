"""pyzmq's deprecated ``zmq.utils.strtypes`` (deprecated since pyzmq 23):
``bytes``, ``unicode``, ``basestring``, ``cast_bytes``, ``cast_unicode``,
for old programs that still import it.

Layering: imports the standard library only.
"""

from __future__ import annotations

import builtins
import warnings
from typing import Tuple, Union

__all__ = ["bytes", "unicode", "basestring", "cast_bytes", "cast_unicode", "asbytes"]

bytes = builtins.bytes
unicode = str
basestring: Tuple[type, ...] = (str,)

_DEPRECATED = "zmq.utils.strtypes is deprecated in pyzmq 23 (use str.encode / bytes.decode)"


def cast_bytes(s: Union[str, builtins.bytes], encoding: str = "utf8", errors: str = "strict") -> builtins.bytes:
    """``s`` as bytes (a str is encoded); deprecated."""
    warnings.warn(_DEPRECATED, DeprecationWarning, stacklevel=2)
    if isinstance(s, builtins.bytes):
        return s
    if isinstance(s, str):
        return s.encode(encoding, errors)
    raise TypeError(f"Expected unicode or bytes, got {s!r}")


def cast_unicode(s: Union[str, builtins.bytes], encoding: str = "utf8", errors: str = "strict") -> str:
    """``s`` as str (bytes are decoded); deprecated."""
    warnings.warn(_DEPRECATED, DeprecationWarning, stacklevel=2)
    if isinstance(s, builtins.bytes):
        return s.decode(encoding, errors)
    if isinstance(s, str):
        return s
    raise TypeError(f"Expected unicode or bytes, got {s!r}")


asbytes = cast_bytes
