"""zmtp.devices (pyzmq's zmq.devices) with pyzmq peers: Device, the thread
and process devices, proxies with a monitor, steerable proxies,
monitored_queue and its devices; on both backends.

Thread devices here get a Context of their own (``context_factory =
zmtp.Context``), ended by the test with ``dev._context.term()``, so no test
touches the shared ``Context.instance()``.  Message content and order are
checked, never timing.
"""

from __future__ import annotations

import struct
import threading
from typing import Any, List

import pytest
import zmq

import zmtp
from zmtp import devices
from helpers import DEADLINE_S, psock, wait_for

IFACE = "tcp://127.0.0.1"


def _own_context(dev: Any) -> Any:
    """The device makes a Context of its own (not the shared instance)."""
    dev.context_factory = zmtp.Context
    return dev


def _connected(zctx: Any, kinds: Any, ports: Any) -> List[Any]:
    """pyzmq sockets of `kinds`, each connected to its port of IFACE."""
    socks = [psock(zctx, k) for k in kinds]
    for s, port in zip(socks, ports):
        s.connect(f"{IFACE}:{port}")
    return socks


def _stop(dev: Any) -> None:
    """Terminate a thread device's context; it must end cleanly."""
    wait_for(lambda: getattr(dev, "_context", None) is not None, DEADLINE_S, "the device's context")
    dev._context.term()
    dev.join(DEADLINE_S)
    assert dev.done and not dev.launcher.is_alive()


def test_device_types_and_attributes() -> None:
    for kind in (zmtp.QUEUE, zmtp.FORWARDER, zmtp.STREAMER):
        dev = devices.Device(kind, zmtp.PAIR, zmtp.PAIR)
        assert dev.device_type == kind
    dev = devices.Device(zmtp.QUEUE, zmtp.SUB, zmtp.PUB)
    assert (dev.in_type, dev.out_type, dev.daemon) == (zmtp.SUB, zmtp.PUB, True)
    with pytest.raises(TypeError):
        devices.Device(zmtp.QUEUE, zmtp.SUB)
    assert devices.Device.context_factory == zmtp.Context.instance
    assert devices.ProcessDevice.context_factory is zmtp.Context
    assert set(devices.__all__) >= {
        "Device", "ThreadDevice", "ProcessDevice", "Proxy", "ThreadProxy", "ProcessProxy", "ProxySteerable",
        "ThreadProxySteerable", "ProcessProxySteerable", "monitored_queue", "ThreadMonitoredQueue",
        "ProcessMonitoredQueue",
    }


@pytest.mark.parametrize("bind", [True, False])
def test_single_socket_device_echoes(backend: str, zctx: Any, bind: bool) -> None:
    """ThreadDevice(QUEUE, REP, -1): one REP socket, its requests back to
    their senders (pyzmq REQ), the device binding or connecting."""
    dev = _own_context(devices.ThreadDevice(zmtp.QUEUE, zmtp.REP, -1))
    req = psock(zctx, zmq.REQ)
    if bind:
        port = dev.bind_in_to_random_port(IFACE)
        dev.start()
        req.connect(f"{IFACE}:{port}")
    else:
        port = req.bind_to_random_port(IFACE)
        dev.connect_in(f"{IFACE}:{port}")
        dev.start()
    for i in range(10):
        req.send(b"hello %d" % i)
        assert req.recv() == b"hello %d" % i
    _stop(dev)


def test_bind_to_random_port_with_range() -> None:
    dev = devices.ThreadDevice(zmtp.PULL, zmtp.PUSH, -1)
    ports = [
        dev.bind_in_to_random_port(IFACE, min_port=41000, max_port=41999),
        dev.bind_out_to_random_port(IFACE, min_port=41000, max_port=41999),
    ]
    assert all(41000 <= p < 41999 for p in ports)
    assert ports[0] != ports[1]
    assert dev._in.binds == [f"{IFACE}:{ports[0]}"]
    # pyzmq's test: more reservations than ports in the range
    with pytest.raises(zmtp.ZMQBindError):
        for _ in range(11):
            dev.bind_in_to_random_port(IFACE, min_port=42000, max_port=42010)


def test_thread_proxy_with_monitor(backend: str, zctx: Any) -> None:
    """ThreadProxy(PULL, PUSH, PUSH): every message to the out peer and to the monitor."""
    dev = _own_context(devices.ThreadProxy(zmtp.PULL, zmtp.PUSH, zmtp.PUSH))
    ports = [dev.bind_in_to_random_port(IFACE), dev.bind_out_to_random_port(IFACE), dev.bind_mon_to_random_port(IFACE)]
    dev.setsockopt_out(zmtp.SNDHWM, 5)
    dev.start()
    push, pull, mon = _connected(zctx, (zmq.PUSH, zmq.PULL, zmq.PULL), ports)
    sent = [[b"part1", b"%d" % i] for i in range(200)]
    for m in sent:
        push.send_multipart(m)
    assert [pull.recv_multipart() for _ in sent] == sent
    assert [mon.recv_multipart() for _ in sent] == sent
    _stop(dev)


def test_thread_proxy_steerable(backend: str, zctx: Any) -> None:
    """ThreadProxySteerable with a PAIR control: STATISTICS, then TERMINATE ends it."""
    dev = _own_context(devices.ThreadProxySteerable(zmtp.PULL, zmtp.PUSH, zmtp.PUSH, zmtp.PAIR))
    ports = [
        dev.bind_in_to_random_port(IFACE), dev.bind_out_to_random_port(IFACE),
        dev.bind_mon_to_random_port(IFACE), dev.bind_ctrl_to_random_port(IFACE),
    ]
    dev.start()
    push, pull, mon, ctrl = _connected(zctx, (zmq.PUSH, zmq.PULL, zmq.PULL, zmq.PAIR), ports)
    push.send(b"hello")
    assert pull.recv() == b"hello"
    assert mon.recv() == b"hello"
    ctrl.send(b"STATISTICS")
    stats = [struct.unpack("=Q", f)[0] for f in ctrl.recv_multipart()]
    assert stats == [1, 5, 0, 0, 0, 0, 1, 5]
    ctrl.send(b"TERMINATE")
    dev.join(DEADLINE_S)
    assert dev.done and not dev.launcher.is_alive()
    dev._context.term()


def _monitored(zctx: Any, in_prefix: bytes, out_prefix: bytes) -> Any:
    """ThreadMonitoredQueue(PAIR, PAIR, PUB) connected to pyzmq alice, bob
    and a SUB monitor; returns (dev, alice, bob, mon)."""
    dev = _own_context(devices.ThreadMonitoredQueue(zmtp.PAIR, zmtp.PAIR, zmtp.PUB, in_prefix, out_prefix))
    alice, bob, mon = psock(zctx, zmq.PAIR), psock(zctx, zmq.PAIR), psock(zctx, zmq.SUB)
    mon.setsockopt(zmq.SUBSCRIBE, b"")
    dev.connect_in(f"{IFACE}:{alice.bind_to_random_port(IFACE)}")
    dev.connect_out(f"{IFACE}:{bob.bind_to_random_port(IFACE)}")
    dev.connect_mon(f"{IFACE}:{mon.bind_to_random_port(IFACE)}")
    dev.start()
    # The monitor's subscription must reach the device's PUB before the
    # traffic we check: probe until a probe comes back on the monitor.
    seen: List[Any] = []

    def probe() -> bool:
        alice.send(b"probe")
        assert bob.recv() == b"probe"
        try:
            while True:
                seen.append(mon.recv_multipart(zmq.DONTWAIT))
        except zmq.Again:
            return bool(seen)

    wait_for(probe, DEADLINE_S, "the monitor's subscription", step=0.02)
    return dev, alice, bob, mon, seen


@pytest.mark.parametrize("prefixes", [(b"in", b"out"), (b"", b"->"), (b"alice", b"bob")])
def test_monitored_queue_prefixes(backend: str, zctx: Any, prefixes: Any) -> None:
    in_prefix, out_prefix = prefixes
    dev, alice, bob, mon, seen = _monitored(zctx, in_prefix, out_prefix)
    assert seen[0] == [in_prefix, b"probe"]
    alice.send_multipart([b"hello", b"bob"])
    assert bob.recv_multipart() == [b"hello", b"bob"]
    bob.send_multipart([b"hello", b"alice"])
    assert alice.recv_multipart() == [b"hello", b"alice"]
    want = [[in_prefix, b"hello", b"bob"], [out_prefix, b"hello", b"alice"]]
    got: List[Any] = []
    while len(got) < 2:
        m = mon.recv_multipart()
        if m[1:] != [b"probe"]:
            got.append(m)
    assert got == want
    _stop(dev)


def test_monitored_queue_router_router_swaps_ids(backend: str, zctx: Any) -> None:
    """ROUTER on both sides: [to, payload] from a client reaches the server
    whose routing id is `to`, as [client id, payload]; the reply goes back."""
    dev = _own_context(devices.ThreadMonitoredQueue(zmtp.ROUTER, zmtp.ROUTER, zmtp.PUB, b"in", b"out"))
    in_port, out_port = dev.bind_in_to_random_port(IFACE), dev.bind_out_to_random_port(IFACE)
    mon_port = dev.bind_mon_to_random_port(IFACE)
    dev.start()
    client = psock(zctx, zmq.DEALER, routing_id=b"client")
    server = psock(zctx, zmq.DEALER, routing_id=b"server")
    mon = psock(zctx, zmq.SUB)
    mon.setsockopt(zmq.SUBSCRIBE, b"")
    mon.connect(f"{IFACE}:{mon_port}")
    client.connect(f"{IFACE}:{in_port}")
    server.connect(f"{IFACE}:{out_port}")
    got: List[Any] = []
    copies: List[Any] = []

    def arrived() -> bool:
        # until the server is connected and the monitor's subscription is in
        client.send_multipart([b"server", b"ping"])
        for sock, into in ((server, got), (mon, copies)):
            try:
                while True:
                    into.append(sock.recv_multipart(zmq.DONTWAIT))
            except zmq.Again:
                pass
        return bool(got) and bool(copies)

    wait_for(arrived, DEADLINE_S, "the server's connection and the monitor's subscription", step=0.05)
    assert set(map(tuple, got)) == {(b"client", b"ping")}
    assert set(map(tuple, copies)) == {(b"in", b"server", b"client", b"ping")}
    server.send_multipart([b"client", b"pong"])
    assert client.recv_multipart() == [b"server", b"pong"]
    while True:  # pings still on their way come first
        copy = mon.recv_multipart()
        if copy[0] == b"out":
            break
    assert copy == [b"out", b"client", b"server", b"pong"]
    _stop(dev)


def test_monitored_queue_function(backend: str, zctx: Any) -> None:
    """monitored_queue() in a thread of ours, ended by term()."""
    ctx = zmtp.Context()
    ins, outs, mons = ctx.socket(zmtp.PULL), ctx.socket(zmtp.PUSH), ctx.socket(zmtp.PUSH)
    ports = [s.bind_to_random_port(IFACE) for s in (ins, outs, mons)]
    out: dict = {}

    def run() -> None:
        try:
            devices.monitored_queue(ins, outs, mons, in_prefix=b"IN", out_prefix=b"OUT")
        except zmtp.ContextTerminated:
            out["ended"] = True

    th = threading.Thread(target=run, daemon=True)
    th.start()
    push, pull, tap = _connected(zctx, (zmq.PUSH, zmq.PULL, zmq.PULL), ports)
    for i in range(50):
        push.send_multipart([b"m", b"%d" % i])
    assert [pull.recv_multipart() for _ in range(50)] == [[b"m", b"%d" % i] for i in range(50)]
    assert [tap.recv_multipart() for _ in range(50)] == [[b"IN", b"m", b"%d" % i] for i in range(50)]
    with pytest.raises(TypeError):
        devices.monitored_queue(ins, outs, mons, in_prefix="str")  # type: ignore[arg-type]
    ctx.term()
    th.join(DEADLINE_S)
    assert out == {"ended": True}


def test_process_proxy(zctx: Any) -> None:
    """ProcessProxy: the device runs in a child process with a Context of its own."""
    dev = devices.ProcessProxy(zmtp.PULL, zmtp.PUSH, zmtp.PUSH)
    ports = [dev.bind_in_to_random_port(IFACE), dev.bind_out_to_random_port(IFACE), dev.bind_mon_to_random_port(IFACE)]
    dev.start()
    try:
        push, pull, mon = _connected(zctx, (zmq.PUSH, zmq.PULL, zmq.PULL), ports)
        for i in range(20):
            push.send(b"%d" % i)
        assert [pull.recv() for _ in range(20)] == [b"%d" % i for i in range(20)]
        assert [mon.recv() for _ in range(20)] == [b"%d" % i for i in range(20)]
    finally:
        dev.launcher.terminate()
        dev.join(DEADLINE_S)
    assert not dev.launcher.is_alive()


def test_process_proxy_steerable_terminates(zctx: Any) -> None:
    """ProcessProxySteerable: TERMINATE on its control socket ends the process (exit 0)."""
    dev = devices.ProcessProxySteerable(zmtp.PULL, zmtp.PUSH, zmtp.PUSH, zmtp.PAIR)
    ports = [
        dev.bind_in_to_random_port(IFACE), dev.bind_out_to_random_port(IFACE),
        dev.bind_mon_to_random_port(IFACE), dev.bind_ctrl_to_random_port(IFACE),
    ]
    dev.start()
    try:
        push, pull, mon, ctrl = _connected(zctx, (zmq.PUSH, zmq.PULL, zmq.PULL, zmq.PAIR), ports)
        push.send(b"x")
        assert pull.recv() == b"x"
        assert mon.recv() == b"x"
        ctrl.send(b"TERMINATE")
        assert ctrl.recv() == b""
        dev.join(DEADLINE_S)
        assert dev.launcher.exitcode == 0
    finally:
        if dev.launcher.is_alive():
            dev.launcher.terminate()
            dev.join(DEADLINE_S)


def test_zmq_devices_under_compat() -> None:
    """``import zmq.devices`` under zmtp.compat is zmtp.devices."""
    import subprocess
    import sys
    import tempfile

    code = ("import zmtp.compat; zmtp.compat.install(); import zmq.devices, zmtp.devices; "
            "assert zmq.devices is zmtp.devices; assert zmq.devices.ThreadProxy.__module__.startswith('zmtp'); "
            "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=tempfile.gettempdir())
    assert r.stdout.split() == ["ok"], r.stdout + r.stderr
