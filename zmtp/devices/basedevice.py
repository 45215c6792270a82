"""Devices run in the background: :class:`Device` (in the calling thread),
:class:`ThreadDevice`, :class:`ProcessDevice`, as pyzmq's
``zmq.devices.basedevice``.

Layering: imports ``context``, ``constants``, ``error`` and ``proxy``.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

from zmtp.constants import ENOTSOCK, ETERM, PUSH
from zmtp.context import Context
from zmtp.error import ZMQBindError, ZMQError
from zmtp.proxy import QUEUE, device
from zmtp.socket import Socket

__all__ = ["Device", "ThreadDevice", "ProcessDevice"]


class _SocketPlan:
    """What to do to one of a device's sockets once it exists: options
    first (ROUTING_ID must precede a connect), then binds, then connects."""

    def __init__(self) -> None:
        self.binds: List[str] = []
        self.connects: List[str] = []
        self.sockopts: List[Tuple[int, Any]] = []

    def apply(self, sock: Socket) -> None:
        """Set the options, bind, connect."""
        for opt, value in self.sockopts:
            sock.setsockopt(opt, value)
        for addr in self.binds:
            sock.bind(addr)
        for addr in self.connects:
            sock.connect(addr)


class Device:
    """A device (a proxy between two sockets) made of socket *types*.

    ``Device(QUEUE, ROUTER, DEALER)``: the sockets are made by
    :meth:`run` in the thread that runs the device (a socket belongs to
    one thread at a time), configured by ``bind_in(addr)``,
    ``connect_in(addr)``, ``setsockopt_in(opt, value)`` and their ``_out``
    forms, queued before :meth:`start`.  ``out_type < 0`` uses the in
    socket for both sides.  ``daemon`` (default True) is the background
    thread's or process's flag; ``context_factory`` makes the Context
    (``Context.instance`` here and in threads, ``Context`` in processes).
    :meth:`start` runs it in the calling thread, until the context ends.
    """

    context_factory: Callable[[], Context] = Context.instance

    def __init__(self, device_type: int = QUEUE, in_type: Optional[int] = None, out_type: Optional[int] = None) -> None:
        if in_type is None:
            raise TypeError("in_type must be specified")
        if out_type is None:
            raise TypeError("out_type must be specified")
        self.device_type = device_type
        self.in_type = in_type
        self.out_type = out_type
        self.daemon = True
        self.done = False
        self._in = _SocketPlan()
        self._out = _SocketPlan()
        self._random_addrs: List[str] = []
        self._sockets: List[Socket] = []
        self._context: Optional[Context] = None

    # ------------------------------------------------------------ set-up
    def bind_in(self, addr: str) -> None:
        """Queue ``in_socket.bind(addr)``."""
        self._in.binds.append(addr)

    def connect_in(self, addr: str) -> None:
        """Queue ``in_socket.connect(addr)``."""
        self._in.connects.append(addr)

    def setsockopt_in(self, opt: int, value: Any) -> None:
        """Queue ``in_socket.setsockopt(opt, value)``."""
        self._in.sockopts.append((opt, value))

    def bind_in_to_random_port(self, addr: str, *args: Any, **kwargs: Any) -> int:
        """Reserve a free port of ``addr`` now and queue its bind on the in socket."""
        port = self._reserve_random_port(addr, *args, **kwargs)
        self.bind_in(f"{addr}:{port}")
        return port

    def bind_out(self, addr: str) -> None:
        """Queue ``out_socket.bind(addr)``."""
        self._out.binds.append(addr)

    def connect_out(self, addr: str) -> None:
        """Queue ``out_socket.connect(addr)``."""
        self._out.connects.append(addr)

    def setsockopt_out(self, opt: int, value: Any) -> None:
        """Queue ``out_socket.setsockopt(opt, value)``."""
        self._out.sockopts.append((opt, value))

    def bind_out_to_random_port(self, addr: str, *args: Any, **kwargs: Any) -> int:
        """Reserve a free port of ``addr`` now and queue its bind on the out socket."""
        port = self._reserve_random_port(addr, *args, **kwargs)
        self.bind_out(f"{addr}:{port}")
        return port

    def _reserve_random_port(self, addr: str, *args: Any, **kwargs: Any) -> int:
        """A port of ``addr`` free now (bound once, then released), never
        one this device reserved before."""
        with Context() as ctx:
            with ctx.socket(PUSH) as binder:
                binder.linger = 0
                for _ in range(5):
                    port = binder.bind_to_random_port(addr, *args, **kwargs)
                    full = f"{addr}:{port}"
                    binder.unbind(full)
                    if full not in self._random_addrs:
                        self._random_addrs.append(full)
                        return port
        raise ZMQBindError("Could not reserve random port.")

    # ------------------------------------------------------------ running
    def _make_socket(self, kind: int, plan: _SocketPlan) -> Socket:
        """A socket of the device's context, planned and remembered for closing."""
        assert self._context is not None
        sock = self._context.socket(kind)
        self._sockets.append(sock)
        plan.apply(sock)
        return sock

    def _setup_sockets(self) -> Tuple[Socket, ...]:
        """Make the context and the in and out sockets (in the running thread)."""
        self._context = self.context_factory()
        ins = self._context.socket(self.in_type)
        self._sockets.append(ins)
        outs = ins
        if self.out_type >= 0:
            outs = self._context.socket(self.out_type)
            self._sockets.append(outs)
        for opt, value in self._in.sockopts:
            ins.setsockopt(opt, value)
        for opt, value in self._out.sockopts:
            outs.setsockopt(opt, value)
        for addr in self._in.binds:
            ins.bind(addr)
        for addr in self._out.binds:
            outs.bind(addr)
        for addr in self._in.connects:
            ins.connect(addr)
        for addr in self._out.connects:
            outs.connect(addr)
        return ins, outs

    def run_device(self) -> None:
        """Make the sockets and run the proxy (called by :meth:`run`)."""
        ins, outs = self._setup_sockets()[:2]
        device(self.device_type, ins, outs)

    def _close_sockets(self) -> None:
        """Close the sockets this device made."""
        for sock in self._sockets:
            if not sock.closed:
                sock.close()

    def run(self) -> None:
        """Run the device until its context ends (ETERM and ENOTSOCK are
        a clean end), then close its sockets."""
        try:
            self.run_device()
        except ZMQError as exc:
            if exc.errno not in (ETERM, ENOTSOCK):
                raise
        finally:
            self.done = True
            self._close_sockets()

    def start(self) -> None:
        """Run the device here (subclasses run it in the background)."""
        self.run()

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait until the device is done, or ``timeout`` seconds."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self.done and (end is None or time.monotonic() < end):
            time.sleep(0.001)


class BackgroundDevice(Device):
    """A Device run by a launcher (a Thread or a Process)."""

    launcher: Any = None
    _launch_class: Any = None

    def start(self) -> None:
        """Start the launcher running :meth:`run`."""
        self.launcher = self._launch_class(target=self.run)
        self.launcher.daemon = self.daemon
        self.launcher.start()

    def join(self, timeout: Optional[float] = None) -> None:
        """Join the launcher."""
        self.launcher.join(timeout=timeout)


class ThreadDevice(BackgroundDevice):
    """A Device run in a background thread (``Context.instance()``)."""

    _launch_class = threading.Thread


class ProcessDevice(BackgroundDevice):
    """A Device run in a background process (a new ``Context`` there)."""

    _launch_class = multiprocessing.Process
    context_factory: Callable[[], Context] = Context
