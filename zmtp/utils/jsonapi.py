"""JSON to and from bytes, as pyzmq's ``zmq.utils.jsonapi`` (ipykernel's
debugger uses it): ``dumps`` returns UTF-8 bytes, ``loads`` takes bytes or
str.

Layering: imports nothing of ``zmtp``; nothing in ``zmtp`` imports it.
"""

from __future__ import annotations

import json
from typing import Any, Union

__all__ = ["dumps", "loads"]


def dumps(o: Any, **kwargs: Any) -> bytes:
    """``json.dumps(o, **kwargs)`` encoded as UTF-8."""
    return json.dumps(o, **kwargs).encode("utf8")


def loads(s: Union[bytes, str], **kwargs: Any) -> Any:
    """``json.loads`` of UTF-8 bytes or a str."""
    if isinstance(s, (bytes, bytearray, memoryview)):
        s = bytes(s).decode("utf8")
    return json.loads(s, **kwargs)
