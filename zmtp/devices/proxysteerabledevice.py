"""Steerable proxies: :class:`ProxySteerable`, :class:`ThreadProxySteerable`,
:class:`ProcessProxySteerable`, as pyzmq's
``zmq.devices.proxysteerabledevice``.

Layering: imports ``devices.basedevice``, ``devices.proxydevice``,
``constants``, ``proxy``.
"""

from __future__ import annotations

from typing import Optional, Tuple

from zmtp.constants import PUB
from zmtp.devices.basedevice import _role_methods, _SocketPlan
from zmtp.devices.proxydevice import ProcessProxy, Proxy, ProxyBase, ThreadProxy
from zmtp.proxy import proxy_steerable
from zmtp.socket import Socket

__all__ = ["ProxySteerable", "ThreadProxySteerable", "ProcessProxySteerable"]


class ProxySteerableBase(ProxyBase):
    """A proxy with a monitor and a control socket (``ctrl_type``): PAUSE,
    RESUME, TERMINATE and STATISTICS on it steer the proxy
    (:func:`zmtp.proxy_steerable`).  Adds ``bind_ctrl`` / ``connect_ctrl`` /
    ``setsockopt_ctrl`` / ``bind_ctrl_to_random_port``."""

    def __init__(self, in_type: int, out_type: int, mon_type: int = PUB, ctrl_type: Optional[int] = None) -> None:
        ProxyBase.__init__(self, in_type=in_type, out_type=out_type, mon_type=mon_type)
        self.ctrl_type = ctrl_type
        self._ctrl = _SocketPlan()

    bind_ctrl, connect_ctrl, setsockopt_ctrl, bind_ctrl_to_random_port = _role_methods("ctrl")

    def _setup_sockets(self) -> Tuple[Socket, ...]:
        """The in, out and monitor sockets, then the control socket."""
        socks = ProxyBase._setup_sockets(self)
        if self.ctrl_type is None:
            raise TypeError("ctrl_type must be specified")
        return (*socks, self._make_socket(self.ctrl_type, self._ctrl))  # type: ignore[attr-defined]

    def run_device(self) -> None:
        """Run ``proxy_steerable(in, out, mon, ctrl)``; TERMINATE ends it."""
        ins, outs, mons, ctrls = self._setup_sockets()[:4]
        proxy_steerable(ins, outs, mons, ctrls)


class ProxySteerable(ProxySteerableBase, Proxy):
    """A steerable proxy run in the calling thread by :meth:`start`."""


class ThreadProxySteerable(ProxySteerableBase, ThreadProxy):
    """A :class:`ProxySteerable` in a background thread."""


class ProcessProxySteerable(ProxySteerableBase, ProcessProxy):
    """A :class:`ProxySteerable` in a background process."""
