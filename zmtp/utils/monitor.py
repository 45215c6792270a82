"""Monitor event messages, as pyzmq's ``zmq.utils.monitor``.

A monitor socket (:meth:`zmtp.Socket.get_monitor_socket`) receives each
event as two frames: 6 octets (the uint16 event and the uint32 value, in
host byte order, as libzmq writes them) and the endpoint.

Layering: imports ``zmtp.constants`` only; nothing in ``zmtp`` imports it.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, List, Union

from zmtp.constants import Event

__all__ = ["parse_monitor_message", "recv_monitor_message"]

_HEAD = struct.Struct("=Hi")  # the value is signed, as pyzmq reads it


def parse_monitor_message(msg: List[Union[bytes, Any]]) -> Dict[str, Any]:
    """Decode one event message: ``{"event": Event, "value": int,
    "endpoint": bytes}``.  Raises RuntimeError (as pyzmq) for anything
    else."""
    if len(msg) != 2 or len(msg[0]) != _HEAD.size:
        raise RuntimeError(f"not a monitor event message: {msg!r}")
    kind, value = _HEAD.unpack(bytes(msg[0]))
    try:
        event: Union[Event, int] = Event(kind)
    except ValueError:
        event = kind
    return {"event": event, "value": value, "endpoint": bytes(msg[1])}


def recv_monitor_message(socket: Any, flags: int = 0) -> Dict[str, Any]:
    """Receive and decode the next event from a monitor socket."""
    return parse_monitor_message(socket.recv_multipart(flags))
