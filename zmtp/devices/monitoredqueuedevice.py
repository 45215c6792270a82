"""Monitored queues as devices: :class:`MonitoredQueue`,
:class:`ThreadMonitoredQueue`, :class:`ProcessMonitoredQueue`, as pyzmq's
``zmq.devices.monitoredqueuedevice``.

Layering: imports ``devices.proxydevice``, ``devices.monitoredqueue``,
``constants``.
"""

from __future__ import annotations

from zmtp.constants import PUB
from zmtp.devices.monitoredqueue import monitored_queue
from zmtp.devices.proxydevice import ProcessProxy, Proxy, ProxyBase, ThreadProxy

__all__ = ["MonitoredQueue", "ThreadMonitoredQueue", "ProcessMonitoredQueue"]


class MonitoredQueueBase(ProxyBase):
    """A proxy device whose monitor copies carry ``in_prefix`` or
    ``out_prefix`` first (:func:`monitored_queue`)."""

    def __init__(
        self, in_type: int, out_type: int, mon_type: int = PUB, in_prefix: bytes = b"in", out_prefix: bytes = b"out"
    ) -> None:
        ProxyBase.__init__(self, in_type=in_type, out_type=out_type, mon_type=mon_type)
        self._in_prefix = in_prefix
        self._out_prefix = out_prefix

    def run_device(self) -> None:
        """Run ``monitored_queue(in, out, mon, in_prefix, out_prefix)``."""
        ins, outs, mons = self._setup_sockets()[:3]
        monitored_queue(ins, outs, mons, self._in_prefix, self._out_prefix)


class MonitoredQueue(MonitoredQueueBase, Proxy):
    """A monitored queue run in the calling thread by :meth:`start`."""


class ThreadMonitoredQueue(MonitoredQueueBase, ThreadProxy):
    """A :class:`MonitoredQueue` in a background thread."""


class ProcessMonitoredQueue(MonitoredQueueBase, ProcessProxy):
    """A :class:`MonitoredQueue` in a background process."""
