"""zmtp.devices: pyzmq's ``zmq.devices``, devices and proxies that make
their own sockets and run in the background.

``Device(device_type, in_type, out_type)`` is given socket *types*; its
sockets are made in the thread (or process) that runs it, configured by
``bind_in`` / ``connect_in`` / ``setsockopt_in`` (and ``_out``, ``_mon``,
``_ctrl``) called before ``start()``.  Every loop is zmtp's C proxy
(:func:`zmtp.proxy`, docs/devices.md).

Layering: imports ``context``, ``socket``, ``proxy``, ``constants``,
``error`` and the C extension; nothing in zmtp imports it (``import
zmtp.devices`` or ``import zmq.devices`` under ``zmtp.compat``).
"""

from __future__ import annotations

from zmtp.devices.basedevice import Device, ProcessDevice, ThreadDevice
from zmtp.devices.monitoredqueue import monitored_queue
from zmtp.devices.monitoredqueuedevice import MonitoredQueue, ProcessMonitoredQueue, ThreadMonitoredQueue
from zmtp.devices.proxydevice import ProcessProxy, Proxy, ThreadProxy
from zmtp.devices.proxysteerabledevice import ProcessProxySteerable, ProxySteerable, ThreadProxySteerable
from zmtp.proxy import DeviceType, proxy

__all__ = [
    "Device", "ThreadDevice", "ProcessDevice",
    "Proxy", "ThreadProxy", "ProcessProxy",
    "ProxySteerable", "ThreadProxySteerable", "ProcessProxySteerable",
    "MonitoredQueue", "ThreadMonitoredQueue", "ProcessMonitoredQueue", "monitored_queue",
    "DeviceType", "proxy",
]
