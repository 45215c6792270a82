"""zmtp.proxy: the classic forwarder between two sockets (XSUB/XPUB, ROUTER/DEALER),
and ``device`` with its ``DeviceType`` (QUEUE, FORWARDER, STREAMER), pyzmq's
older name for the same loop.

Layering: imports ``socket``, ``poll``, ``constants`` and ``error``; only the
package face imports it.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Optional

from zmtp.constants import DONTWAIT, POLLIN
from zmtp.error import Again
from zmtp.poll import Poller
from zmtp.socket import Socket

__all__ = ["proxy", "device", "DeviceType", "QUEUE", "FORWARDER", "STREAMER"]


class DeviceType(IntEnum):
    """libzmq's device kinds (pyzmq's numbers).  zmq_device ignores the
    kind since libzmq 3.2 (every device is a proxy), and so does
    :func:`device`."""

    STREAMER = 1
    FORWARDER = 2
    QUEUE = 3


STREAMER = DeviceType.STREAMER
FORWARDER = DeviceType.FORWARDER
QUEUE = DeviceType.QUEUE


def proxy(frontend: Socket, backend: Socket, capture: Optional[Socket] = None) -> None:
    """Forward whole messages both ways until the context is terminated.

    Messages from ``frontend`` go to ``backend`` and back; each is also sent to
    ``capture`` when given.  Like pyzmq's ``zmq.proxy`` it only returns by
    raising (ContextTerminated when the context ends).
    """
    poller = Poller()
    poller.register(frontend, POLLIN)
    poller.register(backend, POLLIN)
    while True:
        for sock, _ in poller.poll():
            other = backend if sock is frontend else frontend
            try:
                # POLLIN may be stale (a SUB's queued messages can stop
                # matching): never block on one side.
                msg = sock.recv_multipart(DONTWAIT, copy=False)
            except Again:
                continue
            if capture is not None:
                capture.send_multipart(msg)
            other.send_multipart(msg)


def device(device_type: int, frontend: Socket, backend: Socket) -> None:
    """pyzmq's deprecated ``zmq.device``: ``proxy(frontend, backend)``,
    whatever ``device_type`` (QUEUE for ROUTER/DEALER, FORWARDER for
    SUB/PUB, STREAMER for PULL/PUSH: the loop is the same).  ``frontend``
    and ``backend`` may be one socket: ipykernel's heartbeat echoes every
    message back to its sender with ``device(QUEUE, router, router)``."""
    proxy(frontend, backend)
