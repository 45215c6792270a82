"""``monitored_queue``: pyzmq's queue that copies each message to a
monitor socket with a prefix saying which way it went.

Layering: imports ``constants``, ``socket`` and the C extension.
"""

from __future__ import annotations

import threading

from zmtp import _zmtp
from zmtp.constants import ROUTER
from zmtp.socket import Socket

__all__ = ["monitored_queue"]


def monitored_queue(
    in_socket: Socket, out_socket: Socket, mon_socket: Socket, in_prefix: bytes = b"in", out_prefix: bytes = b"out"
) -> None:
    """Forward messages between ``in_socket`` and ``out_socket`` (both
    ways) and send each to ``mon_socket`` too, as ``[in_prefix, *msg]``
    when it came from ``in_socket`` and ``[out_prefix, *msg]`` when it came
    from ``out_socket``.  With ROUTER on both sides the first two frames
    (the routing ids) are swapped, so a reply finds its way back.  Runs
    until the context ends (ContextTerminated), in zmtp's C proxy."""
    if not isinstance(in_prefix, bytes) or not isinstance(out_prefix, bytes):
        raise TypeError("in_prefix and out_prefix must be bytes")
    swap_ids = in_socket.type == ROUTER and out_socket.type == ROUTER
    _zmtp._proxy(in_socket, out_socket, mon_socket, None, in_prefix, out_prefix, swap_ids,
                 threading.current_thread() is threading.main_thread())
