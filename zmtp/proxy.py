"""zmtp.proxy: the forwarder between two sockets (XSUB/XPUB, ROUTER/DEALER,
PULL/PUSH), libzmq's ``zmq_proxy`` and ``zmq_proxy_steerable``, and
``device`` with its ``DeviceType`` (QUEUE, FORWARDER, STREAMER), pyzmq's
older name for the same loop.

The loop is C (``src/proxy.c``, ``src/py_proxy.c``): it owns the sockets
for its duration (another thread's call on one raises EBUSY), moves whole
messages with the GIL released and takes it back only to run signal
handlers, to raise and to return.  docs/devices.md says what it does and
where it differs from libzmq's.

Layering: imports ``socket``, ``constants`` and the C extension; only the
package face and ``devices`` import it.
"""

from __future__ import annotations

import threading
from enum import IntEnum
from typing import Optional

from zmtp import _zmtp
from zmtp.socket import Socket

__all__ = ["proxy", "proxy_steerable", "device", "DeviceType", "QUEUE", "FORWARDER", "STREAMER"]


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


def _on_main_thread() -> bool:
    """Whether this thread runs Python's signal handlers (then the C
    proxy takes the GIL now and then, while idle, to run them)."""
    return threading.current_thread() is threading.main_thread()


def proxy(frontend: Socket, backend: Socket, capture: Optional[Socket] = None) -> int:
    """Forward whole messages both ways until the context is terminated.

    Messages from ``frontend`` go to ``backend`` and back; each is also sent
    to ``capture`` first when given.  A destination at its HWM blocks that
    direction only (its message waits, whole, and nothing more is read from
    its source).  Like pyzmq's ``zmq.proxy`` it only returns by raising
    (ContextTerminated when the context ends).
    """
    _zmtp._proxy(frontend, backend, capture, None, None, None, False, _on_main_thread())
    return 0


def proxy_steerable(
    frontend: Socket,
    backend: Socket,
    capture: Optional[Socket] = None,
    control: Optional[Socket] = None,
) -> int:
    """:func:`proxy` steered by commands on ``control`` (libzmq's
    ``zmq_proxy_steerable``): ``PAUSE`` stops forwarding (messages wait in
    the sockets' queues), ``RESUME`` goes on, ``TERMINATE`` returns 0, and
    ``STATISTICS`` is answered with 8 frames of native-endian uint64:
    messages and bytes received from the frontend, sent to it, received
    from the backend, sent to it (frames counted, as libzmq 4.3.5 counts
    them).  Every other command gets an empty reply (libzmq 4.3.5's, so a
    REP control socket can take the next one)."""
    _zmtp._proxy(frontend, backend, capture, control, None, None, False, _on_main_thread())
    return 0


def device(device_type: int, frontend: Socket, backend: Socket) -> int:
    """pyzmq's deprecated ``zmq.device``: ``proxy(frontend, backend)``,
    whatever ``device_type`` (QUEUE for ROUTER/DEALER, FORWARDER for
    SUB/PUB, STREAMER for PULL/PUSH: the loop is the same).  ``frontend``
    and ``backend`` may be one socket: ipykernel's heartbeat echoes every
    message back to its sender with ``device(QUEUE, router, router)``."""
    return proxy(frontend, backend)
