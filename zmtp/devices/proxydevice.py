"""Proxies with a monitor socket: :class:`Proxy`, :class:`ThreadProxy`,
:class:`ProcessProxy`, as pyzmq's ``zmq.devices.proxydevice``.

Layering: imports ``devices.basedevice``, ``constants``, ``proxy``.
"""

from __future__ import annotations

from typing import Tuple

from zmtp.constants import PUB
from zmtp.devices.basedevice import Device, ProcessDevice, ThreadDevice, _role_methods, _SocketPlan
from zmtp.proxy import proxy
from zmtp.socket import Socket

__all__ = ["Proxy", "ThreadProxy", "ProcessProxy"]


class ProxyBase:
    """A device with a third, monitor socket (``mon_type``, PUB by
    default) that gets a copy of every message: ``zmtp.proxy``'s capture.
    Adds ``bind_mon`` / ``connect_mon`` / ``setsockopt_mon`` /
    ``bind_mon_to_random_port``."""

    def __init__(self, in_type: int, out_type: int, mon_type: int = PUB) -> None:
        Device.__init__(self, in_type=in_type, out_type=out_type)  # type: ignore[arg-type]
        self.mon_type = mon_type
        self._mon = _SocketPlan()

    bind_mon, connect_mon, setsockopt_mon, bind_mon_to_random_port = _role_methods("mon")

    def _setup_sockets(self) -> Tuple[Socket, ...]:
        """The in and out sockets, then the monitor socket."""
        socks = Device._setup_sockets(self)  # type: ignore[arg-type]
        return (*socks, self._make_socket(self.mon_type, self._mon))  # type: ignore[attr-defined]

    def run_device(self) -> None:
        """Run ``proxy(in, out, mon)``."""
        ins, outs, mons = self._setup_sockets()[:3]
        proxy(ins, outs, mons)


class Proxy(ProxyBase, Device):
    """A proxy with a monitor socket, run in the calling thread by
    :meth:`start`; see :class:`zmtp.devices.Device`."""


class ThreadProxy(ProxyBase, ThreadDevice):
    """A :class:`Proxy` in a background thread."""


class ProcessProxy(ProxyBase, ProcessDevice):
    """A :class:`Proxy` in a background process."""
