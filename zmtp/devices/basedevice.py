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


def _role_methods(role: str) -> Tuple[Callable[..., None], Callable[..., None], Callable[..., None], Callable[..., int]]:
    """pyzmq's four set-up methods of one of a device's sockets (``in``,
    ``out``, ``mon``, ``ctrl``): ``bind_ROLE(addr)``, ``connect_ROLE(addr)``,
    ``setsockopt_ROLE(opt, value)``, ``bind_ROLE_to_random_port(addr, ...)``,
    each queuing its work on the device's ``_ROLE`` plan."""

    def plan(self: Any) -> _SocketPlan:
        return getattr(self, f"_{role}")

    def bind(self: Any, addr: str) -> None:
        plan(self).binds.append(addr)

    def connect(self: Any, addr: str) -> None:
        plan(self).connects.append(addr)

    def setsockopt(self: Any, opt: int, value: Any) -> None:
        plan(self).sockopts.append((opt, value))

    def bind_to_random_port(self: Any, addr: str, *args: Any, **kwargs: Any) -> int:
        port = self._reserve_random_port(addr, *args, **kwargs)
        bind(self, f"{addr}:{port}")
        return int(port)

    for fn, name, doc in (
        (bind, f"bind_{role}", f"Queue ``{role}_socket.bind(addr)``."),
        (connect, f"connect_{role}", f"Queue ``{role}_socket.connect(addr)``."),
        (setsockopt, f"setsockopt_{role}", f"Queue ``{role}_socket.setsockopt(opt, value)``."),
        (bind_to_random_port, f"bind_{role}_to_random_port",
         f"Reserve a free port of ``addr`` now and queue its bind on the {role} socket; returns the port."),
    ):
        fn.__name__ = fn.__qualname__ = name
        fn.__doc__ = doc
    return bind, connect, setsockopt, bind_to_random_port


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
    bind_in, connect_in, setsockopt_in, bind_in_to_random_port = _role_methods("in")
    bind_out, connect_out, setsockopt_out, bind_out_to_random_port = _role_methods("out")

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
        raise ZMQBindError(msg="Could not reserve random port.")

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
