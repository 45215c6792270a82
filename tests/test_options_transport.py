"""The transport options (issue 18 item 4): TCP_KEEPALIVE and its CNT / IDLE
/ INTVL, TCP_MAXRT, CONNECT_TIMEOUT, BACKLOG, SNDBUF, RCVBUF, TOS, IPV6 /
IPV4ONLY, BINDTODEVICE, AFFINITY, USE_FD, LAST_ENDPOINT, STREAM_NOTIFY.

Each is read back from the kernel, not from zmtp: the monitor's LISTENING,
ACCEPTED and CONNECTED events carry the descriptors (in this process), and
``kernel()`` asks the kernel about a duplicate of each.  pyzmq (libzmq
4.3.5) does the same thing in the same test and the two readings must be
equal: where libzmq applies an option (listener, accepted, dialled
descriptor) is the specification.
"""

from __future__ import annotations

import errno
import itertools
import os
import shutil
import socket
import subprocess
import sys
import struct
import time
from types import ModuleType
from typing import Any, Dict, List

import pytest
import zmq

import zmtp
from helpers import DEADLINE_S, ipv6_loopback, raises_errno, wait_for
from zmtp.utils.monitor import parse_monitor_message

TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)

#: every option of this module, with libzmq's default and a value of each
#: that the kernel can show (TOS 0x28: a DSCP the kernel keeps as set).
DEFAULTS = {
    "tcp_keepalive": -1, "tcp_keepalive_cnt": -1, "tcp_keepalive_idle": -1, "tcp_keepalive_intvl": -1,
    "tcp_maxrt": 0, "connect_timeout": 0, "sndbuf": -1, "rcvbuf": -1, "tos": 0, "ipv6": 0, "ipv4only": 1,
    "affinity": 0, "use_fd": -1, "bindtodevice": b"",
}
TUNED = {
    "tcp_keepalive": 1, "tcp_keepalive_cnt": 7, "tcp_keepalive_idle": 33, "tcp_keepalive_intvl": 5,
    "tcp_maxrt": 1234, "sndbuf": 65536, "rcvbuf": 98304, "tos": 0x28, "backlog": 7,
}


def kernel(fd: int) -> Dict[str, Any]:
    """What the kernel says about descriptor ``fd`` (read on a duplicate)."""
    with socket.socket(fileno=os.dup(fd)) as s:
        out: Dict[str, Any] = {"family": s.family}
        if s.family == socket.AF_UNIX:
            return out
        gi = s.getsockopt
        out.update(
            keepalive=gi(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sndbuf=gi(socket.SOL_SOCKET, socket.SO_SNDBUF),
            rcvbuf=gi(socket.SOL_SOCKET, socket.SO_RCVBUF),
            device=gi(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16).rstrip(b"\0"),
            tos=gi(socket.IPPROTO_IP, socket.IP_TOS),
        )
        if s.family == socket.AF_INET6:
            out["v6only"] = gi(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            out["tclass"] = gi(socket.IPPROTO_IPV6, socket.IPV6_TCLASS)
        if gi(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            # a listener: TCP_INFO's tcpi_sacked is its backlog (Linux)
            out["backlog"] = struct.unpack_from("I", gi(socket.IPPROTO_TCP, socket.TCP_INFO, 104), 28)[0]
            return out
        out.update(
            nodelay=gi(socket.IPPROTO_TCP, socket.TCP_NODELAY),
            keepcnt=gi(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            keepidle=gi(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            keepintvl=gi(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            user_timeout=gi(socket.IPPROTO_TCP, TCP_USER_TIMEOUT),
        )
        return out


def next_event(mon: Any, sock: Any, kinds: int) -> Dict[str, Any]:
    """The next monitor event of one of ``kinds`` (earlier ones dropped);
    ``sock``, the monitored socket, is polled meanwhile (a zmtp socket moves
    inside its calls and on the progress thread)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        sock.poll(5)
        if mon.poll(20):
            ev = parse_monitor_message(mon.recv_multipart())
            if ev["event"] & kinds:
                return ev
    raise AssertionError(f"no monitor event {kinds:#x} within {DEADLINE_S} s")


def events_until(mon: Any, sock: Any, last: int, timeout: float = DEADLINE_S) -> List[int]:
    """The monitor events up to and including the first ``last``."""
    seen: List[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.poll(5)
        if mon.poll(20):
            ev = parse_monitor_message(mon.recv_multipart())
            seen.append(int(ev["event"]))
            if ev["event"] == last:
                return seen
    raise AssertionError(f"no monitor event {last:#x} within {timeout} s; saw {seen}")


_MONITORS = itertools.count()


def monitor(sock: Any) -> Any:
    """sock's monitor PAIR on a name of its own (pyzmq's default name reuses
    the descriptor number of a socket just closed, whose monitor libzmq
    may not have ended yet)."""
    return sock.get_monitor_socket(addr=f"inproc://opttransport-mon-{os.getpid()}-{next(_MONITORS)}")


def close_monitored(*socks: Any) -> None:
    """Stop the monitors of ``socks`` (libzmq, else, leaves the next
    monitors of the context silent), then close them with linger 0."""
    for s in socks:
        s.disable_monitor()
    for s in socks:
        s.close(0)


def _lib_ctx(lib: ModuleType, ctx: Any, zctx: Any) -> Any:
    return ctx if lib is zmtp else zctx


#: zmtp's SO_SNDBUF for a tcp connection to the loopback when SNDBUF is
#: unset (src/transport.h ZM_LOOPBACK_SNDBUF; docs/decisions.md, "Loopback
#: send buffer"); libzmq leaves the kernel's autotuning.  Linux keeps twice it.
LOOPBACK_SNDBUF = 512 * 1024


def _pop_loopback_sndbuf(ours: Dict[str, Dict[str, Any]], theirs: Dict[str, Dict[str, Any]]) -> Dict[str, int]:
    """Take SO_SNDBUF out of zmtp's and pyzmq's readings of the accepted and
    dialled descriptors (they differ on purpose: zmtp's loopback send
    buffer); return zmtp's."""
    for role in ("accepted", "dialled"):
        theirs[role].pop("sndbuf")
    return {role: ours[role].pop("sndbuf") for role in ("accepted", "dialled")}


def tcp_readings(lib: ModuleType, c: Any, opts: Dict[str, Any], endpoint: str = "tcp://127.0.0.1:*",
                 connect_to: Any = None) -> Dict[str, Dict[str, Any]]:
    """Bind a PULL and connect a PUSH of ``lib``, both with ``opts``; the
    kernel's readings of the listener, the accepted and the dialled
    descriptor, once a message went through."""
    srv, cli = c.socket(lib.PULL), c.socket(lib.PUSH)
    srv.linger = cli.linger = 0
    for k, v in opts.items():
        setattr(srv, k, v)
        setattr(cli, k, v)
    smon, cmon = monitor(srv), monitor(cli)
    try:
        srv.bind(endpoint)
        out = {"listener": kernel(next_event(smon, srv, lib.EVENT_LISTENING)["value"])}
        ep = srv.last_endpoint.decode()
        cli.connect(connect_to(ep) if connect_to else ep)
        out["dialled"] = kernel(next_event(cmon, cli, lib.EVENT_CONNECTED)["value"])
        out["accepted"] = kernel(next_event(smon, srv, lib.EVENT_ACCEPTED)["value"])
        cli.send(b"through")
        assert srv.recv() == b"through"
        return out
    finally:
        close_monitored(srv, cli)
        smon.close(0)
        cmon.close(0)


# ======================================================= values

#: int options a pyzmq program sets with True / False (a bool is an int in
#: Python, and pyzmq takes it): (socket type, attribute)
BOOL_OPTIONS = [("REQ", "immediate"), ("REQ", "linger"), ("REQ", "ipv6"), ("REQ", "tcp_keepalive"),
                ("ROUTER", "router_mandatory"), ("PULL", "conflate"), ("REQ", "req_relaxed"),
                ("XPUB", "xpub_verbose"), ("DEALER", "probe_router"), ("REQ", "sndhwm")]


@pytest.mark.parametrize("kind,name", BOOL_OPTIONS)
def test_int_options_take_bools_as_pyzmq(kind, name, ctx, zctx):
    """`s.immediate = True`, `s.setsockopt(LINGER, False)`: 1 and 0, as
    pyzmq (a write-only option is set without error by both)."""
    for lib, c in ((zmtp, ctx), (zmq, zctx)):
        s = c.socket(getattr(lib, kind))
        try:
            for value in (True, False):
                setattr(s, name, value)
                s.setsockopt(getattr(lib, name.upper()), value)
                try:
                    got = getattr(s, name)
                except (AttributeError, zmq.ZMQError, zmtp.ZMQError):
                    continue  # write-only (libzmq: ROUTER_MANDATORY...; pyzmq says AttributeError)
                assert got == int(value), (lib.__name__, name, value, got)
        finally:
            s.close(linger=0)


@pytest.mark.parametrize("lib", [zmtp, zmq], ids=["zmtp", "pyzmq"])
def test_defaults_as_libzmq(lib, ctx, zctx):
    """Every option reads libzmq's default; BACKLOG is zmtp's 128 (libzmq
    100: docs/options.md)."""
    s = _lib_ctx(lib, ctx, zctx).socket(lib.PULL)
    got = {k: getattr(s, k) for k in DEFAULTS}
    assert got == DEFAULTS
    assert s.backlog == (128 if lib is zmtp else 100)


@pytest.mark.parametrize("lib", [zmtp, zmq], ids=["zmtp", "pyzmq"])
def test_ranges_as_libzmq(lib, ctx, zctx):
    """The values libzmq refuses (EINVAL) and the edges it takes."""
    s = _lib_ctx(lib, ctx, zctx).socket(lib.PULL)
    bad = [("tcp_keepalive", 2), ("tcp_keepalive", -2), ("tcp_keepalive_cnt", -2), ("tcp_keepalive_idle", -2),
           ("tcp_keepalive_intvl", -2), ("tcp_maxrt", -1), ("connect_timeout", -1), ("sndbuf", -2),
           ("rcvbuf", -2), ("tos", -1), ("backlog", -1), ("ipv6", 2), ("ipv4only", -1), ("use_fd", -2),
           ("bindtodevice", b"x" * 17)]
    for name, value in bad:
        raises_errno(errno.EINVAL, setattr, s, name, value, exc=lib.ZMQError)
    good = [("tcp_keepalive", 0), ("tcp_keepalive_idle", 0), ("sndbuf", 0), ("backlog", 0), ("tos", 255),
            ("use_fd", -1), ("bindtodevice", b"x" * 16), ("affinity", 3), ("connect_timeout", 1)]
    for name, value in good:
        setattr(s, name, value)
        assert getattr(s, name) == value, name
    s.ipv6 = True
    assert (s.ipv6, s.ipv4only) == (1, 0)
    s.ipv4only = 1
    assert (s.ipv6, s.ipv4only) == (0, 1)


def test_constants_are_libzmqs():
    """The numbers are pyzmq's; none is listed as unimplemented any more."""
    names = ["AFFINITY", "SNDBUF", "RCVBUF", "BACKLOG", "IPV4ONLY", "TCP_KEEPALIVE", "TCP_KEEPALIVE_CNT",
             "TCP_KEEPALIVE_IDLE", "TCP_KEEPALIVE_INTVL", "IPV6", "TOS", "CONNECT_TIMEOUT", "TCP_MAXRT", "USE_FD",
             "BINDTODEVICE"]
    for n in names:
        assert getattr(zmtp, n) == getattr(zmq, n), n
        assert n not in zmtp.constants.UNIMPLEMENTED_SOCKET_OPTIONS


def test_context_default_reaches_the_kernel(backend, ctx):
    """A Context default (ctx.tcp_keepalive = 1) is a new socket's option."""
    ctx.setsockopt(zmtp.TCP_KEEPALIVE, 1)
    ctx.setsockopt(zmtp.TCP_KEEPALIVE_IDLE, 44)
    r = tcp_readings(zmtp, ctx, {})
    assert (r["accepted"]["keepalive"], r["accepted"]["keepidle"]) == (1, 44)
    assert (r["dialled"]["keepalive"], r["dialled"]["keepidle"]) == (1, 44)


# ======================================================= in the kernel

def test_tcp_options_reach_the_kernel_as_libzmq(backend, ctx, zctx):
    """Listener, accepted and dialled descriptors get what libzmq gives
    each: the same kernel readings as pyzmq's with the same options, and
    the values set (a broken setter or a missed descriptor shows here)."""
    ours, theirs = tcp_readings(zmtp, ctx, TUNED), tcp_readings(zmq, zctx, TUNED)
    assert ours == theirs
    for role in ("accepted", "dialled"):
        k = ours[role]
        assert (k["keepalive"], k["keepcnt"], k["keepidle"], k["keepintvl"]) == (1, 7, 33, 5), role
        assert (k["user_timeout"], k["tos"], k["nodelay"]) == (1234, 0x28, 1), role
        assert (k["sndbuf"], k["rcvbuf"]) == (2 * 65536, 2 * 98304), role  # Linux doubles them
    assert ours["listener"]["backlog"] == 7 and ours["listener"]["tos"] == 0x28
    # and untuned: the kernel's defaults, as pyzmq leaves them, but for
    # zmtp's loopback send buffer (test_loopback_send_buffer)
    plain, pplain = tcp_readings(zmtp, ctx, {}), tcp_readings(zmq, zctx, {})
    assert (plain["listener"].pop("backlog"), pplain["listener"].pop("backlog")) == (128, 100)
    assert _pop_loopback_sndbuf(plain, pplain) == {"accepted": 2 * LOOPBACK_SNDBUF, "dialled": 2 * LOOPBACK_SNDBUF}
    assert plain == pplain
    assert plain["accepted"]["keepalive"] == 0 and plain["dialled"]["user_timeout"] == 0


def test_loopback_send_buffer(backend, ctx, zctx):
    """SNDBUF unset: a connection to the loopback (127.0.0.0/8, and an
    IPv4 peer of a dual-stack socket, ::ffff:127.0.0.1) gets zmtp's
    loopback send buffer on both ends, where libzmq leaves the kernel's
    autotuning (which starts lower); SNDBUF set: exactly that, as libzmq;
    RCVBUF is never touched."""
    plain, pplain = tcp_readings(zmtp, ctx, {}), tcp_readings(zmq, zctx, {})
    for role in ("accepted", "dialled"):
        assert plain[role]["sndbuf"] == 2 * LOOPBACK_SNDBUF, role
        assert pplain[role]["sndbuf"] != 2 * LOOPBACK_SNDBUF, role  # a default, not ours
        assert plain[role]["rcvbuf"] == pplain[role]["rcvbuf"], role
    other = tcp_readings(zmtp, ctx, {}, "tcp://127.0.0.2:*")  # all of 127.0.0.0/8
    assert other["dialled"]["sndbuf"] == other["accepted"]["sndbuf"] == 2 * LOOPBACK_SNDBUF
    mapped = tcp_readings(zmtp, ctx, {"ipv6": 1}, "tcp://*:*",
                          connect_to=lambda ep: "tcp://127.0.0.1:" + ep.rsplit(":", 1)[1])
    assert mapped["accepted"]["family"] == socket.AF_INET6  # its peer is ::ffff:127.0.0.1
    assert mapped["accepted"]["sndbuf"] == mapped["dialled"]["sndbuf"] == 2 * LOOPBACK_SNDBUF
    small = tcp_readings(zmtp, ctx, {"sndbuf": 65536})
    assert small["accepted"]["sndbuf"] == small["dialled"]["sndbuf"] == 2 * 65536


def test_options_set_after_bind_or_connect_apply_later(backend, ctx, zctx):
    """libzmq copies the options at bind() and connect(): set afterwards,
    they reach later binds and connects only, not the connections of an
    earlier listener or connecter (its redials included)."""

    def run(lib: ModuleType, c: Any) -> List[int]:
        srv, cli = c.socket(lib.PULL), c.socket(lib.PUSH)
        srv.linger = cli.linger = 0
        smon = monitor(srv)
        try:
            srv.bind("tcp://127.0.0.1:*")
            ep1 = srv.last_endpoint.decode()
            srv.tcp_keepalive = 1  # after the first bind
            srv.bind("tcp://127.0.0.1:*")
            ep2 = srv.last_endpoint.decode()
            got = []
            for ep in (ep1, ep2):
                cli.connect(ep)
                got.append(kernel(next_event(smon, srv, lib.EVENT_ACCEPTED)["value"])["keepalive"])
            return got
        finally:
            close_monitored(srv, cli)
            smon.close(0)

    assert run(zmtp, ctx) == run(zmq, zctx) == [0, 1]


def test_tcp_maxrt_is_tcp_user_timeout(backend, ctx, zctx):
    """TCP_MAXRT (ms) is Linux's TCP_USER_TIMEOUT, on accepted and dialled
    connections, as libzmq's tune_tcp_maxrt."""
    for lib, c in ((zmtp, ctx), (zmq, zctx)):
        r = tcp_readings(lib, c, {"tcp_maxrt": 4321})
        assert (r["accepted"]["user_timeout"], r["dialled"]["user_timeout"]) == (4321, 4321), lib.__name__


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read a unix listener's backlog")
def test_backlog_on_ipc_listener(backend, ctx, zctx, tmp_path):
    """BACKLOG is listen()'s for ipc too: the kernel's sock_diag (ss's
    Send-Q of a listening unix socket) says 7, for zmtp as for pyzmq."""
    for lib, c in ((zmtp, ctx), (zmq, zctx)):
        s = c.socket(lib.PULL)
        s.backlog = 7
        path = str(tmp_path / f"b-{lib.__name__}")
        s.bind(f"ipc://{path}")
        out = subprocess.run(["ss", "-xlH", "src", path], capture_output=True, text=True, check=True).stdout.split()
        assert out[:2] == ["u_str", "LISTEN"] and out[3] == "7", (lib.__name__, out)
        s.close(0)


# ======================================================= CONNECT_TIMEOUT

@pytest.fixture
def blackhole():
    """A local tcp endpoint whose connect() hangs: a listener with backlog 0
    whose queue a first connection fills and nobody accepts (Linux then
    drops the SYNs; no root needed)."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    for _ in range(2):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", port))
        fillers.append(f)
    probe = socket.socket()
    probe.setblocking(False)
    probe.connect_ex(("127.0.0.1", port))
    import select

    if select.select([], [probe], [], 0.5)[1]:
        pytest.skip("this kernel completes connects past a full backlog: no blackhole")
    probe.close()
    yield f"tcp://127.0.0.1:{port}"
    for f in fillers:
        f.close()
    lst.close()


def test_connect_timeout_closes_and_redials(backend, ctx, zctx, blackhole):
    """CONNECT_TIMEOUT 200 ms against a connect that hangs: CLOSED then
    CONNECT_RETRIED and a new dial (CONNECT_DELAYED), as pyzmq's, long
    before the kernel's own SYN time-out (minutes)."""
    want = [zmtp.EVENT_CONNECT_DELAYED, zmtp.EVENT_CLOSED, zmtp.EVENT_CONNECT_RETRIED, zmtp.EVENT_CONNECT_DELAYED]
    for lib, c in ((zmtp, ctx), (zmq, zctx)):
        s = c.socket(lib.DEALER)
        s.connect_timeout = 200
        s.reconnect_ivl = 50
        mon = monitor(s)
        try:
            s.connect(blackhole)
            first = events_until(mon, s, lib.EVENT_CONNECT_DELAYED)
            rest = events_until(mon, s, lib.EVENT_CONNECT_DELAYED)
            assert [first[-1]] + rest == want, lib.__name__
        finally:
            close_monitored(s)
            mon.close(0)


def test_without_connect_timeout_the_dial_waits(backend, ctx, blackhole):
    """The control: with CONNECT_TIMEOUT 0 the same dial is not closed in
    the time the test above sees it redialled."""
    s = ctx.socket(zmtp.DEALER)
    s.reconnect_ivl = 50
    mon = monitor(s)
    s.connect(blackhole)
    events_until(mon, s, zmtp.EVENT_CONNECT_DELAYED)
    with pytest.raises(AssertionError, match="no monitor event"):
        events_until(mon, s, zmtp.EVENT_CLOSED, timeout=1.5)
    close_monitored(s)
    mon.close(0)


# ======================================================= IPV6

needs_v6 = pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")


@needs_v6
def test_ipv6_star_bind_is_dual_stack(backend, ctx, zctx):
    """With IPV6, tcp://*:port is [::] with V6ONLY off: a pyzmq peer comes
    in over 127.0.0.1 and over [::1]; LAST_ENDPOINT is pyzmq's form."""
    z = ctx.socket(zmtp.PULL)
    z.ipv6 = True
    z.bind("tcp://*:*")
    ep = z.last_endpoint.decode()
    p = zctx.socket(zmq.PULL)
    p.ipv6 = True
    p.bind("tcp://*:*")
    assert ep.rsplit(":", 1)[0] == p.last_endpoint.decode().rsplit(":", 1)[0] == "tcp://[::]"
    port = ep.rsplit(":", 1)[1]
    for host in ("127.0.0.1", "[::1]"):
        push = zctx.socket(zmq.PUSH)
        push.ipv6 = True
        push.connect(f"tcp://{host}:{port}")
        push.send(host.encode())
        assert z.recv() == host.encode()
    # without IPV6, * is IPv4 only (0.0.0.0), as libzmq
    v4 = ctx.socket(zmtp.PULL)
    v4.bind("tcp://*:*")
    assert v4.last_endpoint.startswith(b"tcp://0.0.0.0:")


@needs_v6
def test_ipv6_interop_both_directions(backend, ctx, zctx):
    """zmtp and pyzmq over [::1], each binding in turn; a dialled IPv6
    connection is tuned as an IPv4 one (TOS as IPV6_TCLASS too)."""
    for zmtp_binds in (True, False):
        z = ctx.socket(zmtp.PAIR)
        p = zctx.socket(zmq.PAIR)
        z.ipv6 = p.ipv6 = True
        binder, dialler = (z, p) if zmtp_binds else (p, z)
        binder.bind("tcp://[::1]:*")
        ep = binder.last_endpoint.decode()
        assert ep.startswith("tcp://[::1]:")
        dialler.connect(ep)
        assert dialler.last_endpoint.decode() == ep
        dialler.send(b"over v6")
        assert binder.recv() == b"over v6"
        binder.send(b"back")
        assert dialler.recv() == b"back"
    r = tcp_readings(zmtp, ctx, {"ipv6": 1, "tos": 0x28}, "tcp://[::1]:*")
    pr = tcp_readings(zmq, zctx, {"ipv6": 1, "tos": 0x28}, "tcp://[::1]:*")
    for role in ("accepted", "dialled"):
        assert r[role]["family"] == socket.AF_INET6 and r[role]["tclass"] == 0x28
    r["listener"].pop("backlog"), pr["listener"].pop("backlog")
    assert _pop_loopback_sndbuf(r, pr) == {"accepted": 2 * LOOPBACK_SNDBUF, "dialled": 2 * LOOPBACK_SNDBUF}
    assert r == pr


def test_ipv6_names_resolve_v4_mapped(backend, ctx, zctx):
    """With IPV6 a host name resolves for an IPv6 socket, IPv4 addresses
    mapped (libzmq's AI_V4MAPPED): bind tcp://localhost:* says what pyzmq
    says; without IPV6 the name is IPv4 (127.0.0.1)."""
    got = []
    for lib, c in ((zmtp, ctx), (zmq, zctx)):
        s = c.socket(lib.PULL)
        s.ipv6 = True
        s.bind("tcp://localhost:*")
        got.append(s.last_endpoint.decode().rsplit(":", 1)[0])
        t = c.socket(lib.PULL)
        t.bind("tcp://localhost:*")
        got.append(t.last_endpoint.decode().rsplit(":", 1)[0])
        # and a name dialled with IPV6 reaches an IPv4 listener
        push = c.socket(lib.PUSH)
        push.ipv6 = True
        push.connect("tcp://localhost:" + t.last_endpoint.decode().rsplit(":", 1)[1])
        push.send(b"by name")
        assert t.recv() == b"by name"
    assert got[:2] == got[2:]
    assert got[1] == "tcp://127.0.0.1"


#: a preloaded socket() that says EAFNOSUPPORT for AF_INET6: a machine
#: without IPv6, for zmtp and pyzmq's libzmq in one process.
NO_V6_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>

int socket(int domain, int type, int protocol)
{
    static int (*real)(int, int, int);

    if (domain == AF_INET6) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    if (real == NULL)
        *(void **)&real = dlsym(RTLD_NEXT, "socket");
    return real(domain, type, protocol);
}
"""

NO_V6_SCRIPT = r"""
import zmq, zmtp
for lib in (zmtp, zmq):
    c = lib.Context()
    s, p = c.socket(lib.PULL), c.socket(lib.PUSH)
    for x in (s, p):
        x.ipv6, x.linger, x.rcvtimeo, x.sndtimeo = 1, 0, 5000, 5000
    s.bind("tcp://*:*")
    host, port = s.last_endpoint.decode().rsplit(":", 1)
    p.connect("tcp://localhost:" + port)
    p.send(b"over IPv4")
    try:
        p.bind("tcp://[::1]:*")
        v6 = "bound"
    except lib.ZMQError as e:
        v6 = e.errno
    print(lib.__name__, host, s.recv().decode(), v6, flush=True)
    s.close(); p.close(); c.term()
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler for the LD_PRELOAD shim")
def test_ipv6_falls_back_to_ipv4_without_ipv6(tmp_path):
    """On a machine without IPv6 (socket(AF_INET6): EAFNOSUPPORT) an IPV6
    socket binds tcp://*:port on 0.0.0.0 and dials a name's IPv4 address,
    as libzmq's fall-back; a real IPv6 address still fails.  Same lines
    from pyzmq in the same process."""
    shim = tmp_path / "no_v6.so"
    (tmp_path / "no_v6.c").write_text(NO_V6_SHIM)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(shim), str(tmp_path / "no_v6.c"), "-ldl"], check=True)
    root = os.path.dirname(os.path.dirname(os.path.abspath(zmtp.__file__)))
    env = dict(os.environ, LD_PRELOAD=str(shim), PYTHONPATH=root)
    run = subprocess.run([sys.executable, "-c", NO_V6_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.split("\n")
    assert lines[0].split()[1:] == lines[1].split()[1:], run.stdout
    assert lines[0].split()[1:4] == ["tcp://0.0.0.0", "over", "IPv4"], run.stdout


# ======================================================= BINDTODEVICE

def test_bindtodevice_unknown_device_fails_bind_as_libzmq(backend, ctx, zctx):
    """SO_BINDTODEVICE is applied before bind: an unknown interface makes
    bind fail with the kernel's errno (ENODEV), as pyzmq's.  (EPERM, libzmq's
    other failure, needs a socket bound to a device already: since Linux
    5.7 a first SO_BINDTODEVICE needs no CAP_NET_RAW, so zmtp's fresh
    descriptors never see it.)"""
    for lib, c in ((zmtp, ctx), (zmq, zctx)):
        s = c.socket(lib.PULL)
        s.bindtodevice = b"nosuchdev0"
        raises_errno(errno.ENODEV, s.bind, "tcp://127.0.0.1:*", exc=lib.ZMQError)
        s.bindtodevice = b"lo"
        s.bind("tcp://127.0.0.1:*")


def test_bindtodevice_unknown_device_dial_is_retried_as_libzmq(backend, ctx, zctx):
    """A dial whose SO_BINDTODEVICE fails never reaches connect(): libzmq
    reports only CONNECT_RETRIED (no descriptor, no CLOSED), again and
    again; zmtp's monitor says the same."""
    got = []
    for lib, c in ((zmtp, ctx), (zmq, zctx)):
        s = c.socket(lib.DEALER)
        s.bindtodevice = b"nosuchdev0"
        s.reconnect_ivl = 20
        mon = monitor(s)
        try:
            s.connect("tcp://127.0.0.1:5")
            got.append([int(next_event(mon, s, 0xFFFF)["event"]) for _ in range(3)])
        finally:
            close_monitored(s)
            mon.close(0)
    assert got[0] == got[1] == [zmtp.EVENT_CONNECT_RETRIED] * 3


def test_bindtodevice_reaches_the_kernel(backend, ctx, zctx):
    """BINDTODEVICE lo: listener, accepted and dialled descriptors are
    bound to lo (the kernel says so), as pyzmq's."""
    r = tcp_readings(zmtp, ctx, {"bindtodevice": b"lo"})
    pr = tcp_readings(zmq, zctx, {"bindtodevice": b"lo"})
    assert {role: k["device"] for role, k in r.items()} == {role: k["device"] for role, k in pr.items()}
    assert r["listener"]["device"] == r["dialled"]["device"] == b"lo"


# ======================================================= USE_FD

@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_use_fd_listens_on_the_callers_socket(backend, ctx, zctx, tmp_path, transport):
    """USE_FD: bind() listens on a descriptor the caller bound and owns it
    from then on; the endpoint's address is not used (libzmq);
    LAST_ENDPOINT is the descriptor's own.  A pyzmq PUSH connects to it."""
    if transport == "tcp":
        raw = socket.socket()
        raw.bind(("127.0.0.1", 0))
        want = "tcp://127.0.0.1:%d" % raw.getsockname()[1]
    else:
        raw = socket.socket(socket.AF_UNIX)
        raw.bind(str(tmp_path / "fd.sock"))
        want = "ipc://" + str(tmp_path / "fd.sock")
    raw.listen(16)
    z = ctx.socket(zmtp.PULL)
    z.use_fd = raw.detach()
    z.bind("tcp://127.0.0.1:*" if transport == "tcp" else "ipc:///nonexistent/ignored")
    assert z.last_endpoint.decode() == want
    push = zctx.socket(zmq.PUSH)
    push.connect(want)
    push.send(b"to the caller's fd")
    assert z.recv() == b"to the caller's fd"
    fd = z.use_fd
    z.close(0)
    raises_errno(errno.EBADF, os.fstat, fd, exc=OSError)  # closed with the listener
    if transport == "ipc":  # the caller's path stays (libzmq removes only its own)
        assert (tmp_path / "fd.sock").exists()


def test_use_fd_last_endpoint_as_pyzmq(backend, ctx, zctx):
    """pyzmq's USE_FD bind names the descriptor's address the same way."""
    got = []
    for lib, c in ((zmtp, ctx), (zmq, zctx)):
        raw = socket.socket()
        raw.bind(("127.0.0.1", 0))
        raw.listen(4)
        port = raw.getsockname()[1]
        s = c.socket(lib.PULL)
        s.use_fd = raw.detach()
        s.bind("tcp://127.0.0.1:*")
        got.append(s.last_endpoint.decode().replace(str(port), "PORT"))
        s.close(0)
    assert got == ["tcp://127.0.0.1:PORT"] * 2


def v6_host_name() -> str:
    """A name of this machine that resolves to ::1 itself (not a mapped
    IPv4 address), or ""."""
    for name in ("localhost", "ip6-localhost", "ip6-loopback", socket.gethostname()):
        try:
            infos = socket.getaddrinfo(name, 1, socket.AF_INET6, socket.SOCK_STREAM)
        except OSError:
            continue
        if any(i[4][0] == "::1" for i in infos):
            return name
    return ""


@needs_v6
@pytest.mark.skipif(not v6_host_name(), reason="no host name resolves to ::1 on this machine (/etc/hosts)")
def test_ipv6_host_name_dials_v6(backend, ctx, zctx):
    """With IPV6 a name that resolves to ::1 reaches a pyzmq listener bound
    to [::1] only."""
    p = zctx.socket(zmq.PULL)
    p.ipv6 = True
    p.bind("tcp://[::1]:*")
    z = ctx.socket(zmtp.PUSH)
    z.ipv6 = True
    z.connect(f"tcp://{v6_host_name()}:" + p.last_endpoint.decode().rsplit(":", 1)[1])
    z.send(b"by a v6 name")
    assert p.recv() == b"by a v6 name"


def test_use_fd_not_a_listening_socket(backend, ctx, tmp_path):
    """USE_FD naming no socket: bind fails (ENOTSOCK, the kernel's word); a
    socket bound but not listening, or a datagram one: EINVAL (accepting on
    it could only fail, at every readiness)."""
    with open(tmp_path / "plain", "w") as f:
        z = ctx.socket(zmtp.PULL)
        z.use_fd = f.fileno()  # not taken: bind fails
        raises_errno(errno.ENOTSOCK, z.bind, "tcp://127.0.0.1:*")
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as raw:
            raw.bind(("127.0.0.1", 0))
            z = ctx.socket(zmtp.PULL)
            z.use_fd = raw.fileno()
            raises_errno(errno.EINVAL, z.bind, "tcp://127.0.0.1:*")


# ======================================================= LAST_ENDPOINT, STREAM_NOTIFY

def test_last_endpoint_every_transport(ctx, zctx, tmp_path):
    """LAST_ENDPOINT after bind and after connect, for tcp (v4 and v6), ipc
    and inproc: what pyzmq's says."""
    v6 = ipv6_loopback()
    got = []
    for lib, c in ((zmtp, ctx), (zmq, zctx)):
        s = c.socket(lib.ROUTER)
        s.ipv6 = True
        row = []
        for ep in ["tcp://127.0.0.1:5", f"ipc://{tmp_path}/le", "inproc://le-c"] + (["tcp://[::1]:5"] if v6 else []):
            s.connect(ep)
            row.append(s.last_endpoint.decode())
        s.bind(f"ipc://{tmp_path}/le-{lib.__name__}")
        row.append(s.last_endpoint.decode().replace(lib.__name__, "LIB"))
        s.bind(f"inproc://le-{lib.__name__}")
        row.append(s.last_endpoint.decode().replace(lib.__name__, "LIB"))
        s.bind("tcp://127.0.0.1:*")
        row.append(s.last_endpoint.decode().rsplit(":", 1)[0])
        if v6:
            s.bind("tcp://[::1]:*")
            row.append(s.last_endpoint.decode().rsplit(":", 1)[0])
        got.append(row)
    assert got[0] == got[1]


@pytest.mark.parametrize("notify", [0, 1])
def test_stream_notify_as_pyzmq(backend, ctx, zctx, notify):
    """STREAM_NOTIFY on a STREAM socket that a raw peer dials: [id, b""]
    first with 1, the peer's data first with 0; pyzmq's STREAM alike."""
    got = []
    for lib, c in ((zmtp, ctx), (zmq, zctx)):
        st = c.socket(lib.STREAM)
        st.stream_notify = notify
        st.bind("tcp://127.0.0.1:*")
        host, port = st.last_endpoint.decode()[6:].rsplit(":", 1)
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(b"hi")
            got.append(st.recv_multipart()[1])
    assert got[0] == got[1] == (b"" if notify else b"hi")
