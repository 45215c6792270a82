"""Options zmtp does not implement, unknown attribute names, ctx.hwm and
bind_to_random_port's errors (issue 14, defect 11).

A libzmq option zmtp does not implement must never be accepted silently:
as an attribute (set or get), through setsockopt/getsockopt with its
number, or as a Context default, it raises OptionNotImplemented, a
ZMQError(EINVAL) whose message names it.  Names that are no option at all
raise AttributeError on set, as pyzmq's; where pyzmq defines the behaviour
the same assertions run against it (``lib``).
"""

from __future__ import annotations

import errno
from types import ModuleType
from typing import Any

import pytest

import zmtp
from zmtp.constants import UNIMPLEMENTED_CONTEXT_OPTIONS, UNIMPLEMENTED_SOCKET_OPTIONS, implemented_socket_options
from zmtp.error import OptionNotImplemented

zmq = pytest.importorskip("zmq")

LIBS = ["zmtp", "pyzmq"]
# A sample for the per-name tests; the table itself is checked whole below.
NAMES = ["rate", "recovery_ivl", "multicast_hops", "tcp_accept_filter", "gssapi_server", "socks_proxy", "ipc_filter_pid",
         "router_raw"]


def _lib(name: str) -> ModuleType:
    return zmtp if name == "zmtp" else zmq


@pytest.fixture
def lib_ctx(libname: str):
    """(module, Context) for the library named by the ``libname`` param."""
    lib = _lib(libname)
    c = lib.Context()
    yield lib, c
    c.destroy(linger=0)


def _not_implemented(fn: Any, name: str, kind: str = "socket") -> None:
    with pytest.raises(OptionNotImplemented) as info:
        fn()
    exc = info.value
    assert isinstance(exc, zmtp.ZMQError) and exc.errno == errno.EINVAL
    assert name.upper() in str(exc) and "does not implement" in str(exc) and kind in str(exc)


# ======================================================= socket attributes


@pytest.mark.parametrize("name", NAMES)
def test_unimplemented_option_attribute_raises_on_set_and_get(ctx, name):
    """``s.multicast_hops = 1`` created a Python attribute (the option was
    silently dropped); now set and get raise, naming the option."""
    s = ctx.socket(zmtp.PULL)
    _not_implemented(lambda: setattr(s, name, 1), name)
    _not_implemented(lambda: getattr(s, name), name)
    assert name not in vars(s)
    # Also an AttributeError: feature probes see "absent", not a crash.
    assert not hasattr(s, name)
    assert getattr(s, name, "absent") == "absent"


@pytest.mark.parametrize("name", NAMES)
def test_unimplemented_option_by_number_names_it(ctx, name):
    """setsockopt/getsockopt with libzmq's number (pyzmq's constant) raise
    ZMQError(EINVAL) naming the option (they said only its number)."""
    s = ctx.socket(zmtp.PULL)
    number = getattr(zmq, name.upper())
    for call in (lambda: s.setsockopt(number, 1), lambda: s.getsockopt(number)):
        with pytest.raises(zmtp.ZMQError) as info:
            call()
        assert info.value.errno == errno.EINVAL
        assert f"does not implement socket option {name.upper()} " in str(info.value)


def test_unimplemented_option_as_constructor_keyword(ctx):
    with pytest.raises(OptionNotImplemented, match="MULTICAST_HOPS"):
        ctx.socket(zmtp.PULL, multicast_hops=1)


@pytest.mark.parametrize("libname", LIBS)
def test_unknown_attribute_name_raises_on_set(libname, lib_ctx):
    """A public name that is neither an attribute nor an option: set raises
    AttributeError, as pyzmq's ("Socket has no such option")."""
    lib, c = lib_ctx
    s = c.socket(lib.PULL)
    with pytest.raises(AttributeError):
        s.no_such_option = 1
    with pytest.raises(AttributeError):
        s.no_such_option
    s.linger = 0  # an option
    s.context = c  # a real attribute
    s.close()


def test_subclass_attributes_still_settable(ctx):
    """Attributes a subclass declares (as pyzmq requires) and private ones
    are plain attributes."""

    class Tagged(zmtp.Socket):
        tag: str = ""

    s = ctx.socket(zmtp.PULL, socket_class=Tagged)
    s.tag = "x"
    s._private = 1
    assert (s.tag, s._private) == ("x", 1)
    s.close()


def test_implemented_options_are_real_properties():
    """Every option zmtp implements is a property of Socket (and a default
    property of Context): no __getattr__ magic for them."""
    for opt in implemented_socket_options():
        name = opt.name.lower()
        if name in ("subscribe", "unsubscribe", "fd"):
            continue  # methods (subscribe(), fileno()), as pyzmq
        assert isinstance(getattr(zmtp.Socket, name, None), property), name
        assert isinstance(getattr(zmtp.Context, name, None), property), name


def test_table_covers_libzmq_options():
    """Every libzmq (pyzmq 27) socket option is implemented by zmtp or in
    the unimplemented table, with libzmq's number; none is both."""
    aliases_of_implemented = {"IDENTITY", "HWM", "FAIL_UNROUTABLE", "ROUTER_BEHAVIOR", "DELAY_ATTACH_ON_CONNECT", "CONNECT_RID"}
    for name, opt in zmq.SocketOption.__members__.items():
        assert zmtp.SocketOption[name] == opt.value, name  # every pyzmq name exists (issue 18)
        if name in {o.name for o in implemented_socket_options()}:
            assert name not in UNIMPLEMENTED_SOCKET_OPTIONS
            assert zmtp.SocketOption[name] == opt.value, name
        elif name not in aliases_of_implemented:
            assert UNIMPLEMENTED_SOCKET_OPTIONS.get(name) == opt.value, name
    for name, num in UNIMPLEMENTED_CONTEXT_OPTIONS.items():
        assert zmq.ContextOption.__members__[name] == num


# ======================================================= Context


@pytest.mark.parametrize("name", NAMES)
def test_unimplemented_option_as_context_default_raises(name):
    """``ctx.multicast_hops = 1`` / ``ctx.setsockopt(MULTICAST_HOPS, 1)``
    (pyzmq stores them as defaults; zmtp's socket() would drop them
    silently) raise naming the option."""
    c = zmtp.Context()
    try:
        _not_implemented(lambda: setattr(c, name, 1), name)
        _not_implemented(lambda: c.setsockopt(getattr(zmq, name.upper()), 1), name)
        assert c.sockopts == {}
    finally:
        c.term()


def test_unimplemented_context_options_raise():
    c = zmtp.Context()
    try:
        _not_implemented(lambda: c.set(zmq.THREAD_SCHED_POLICY, 1), "THREAD_SCHED_POLICY", "context")
        _not_implemented(lambda: c.get(zmq.MSG_T_SIZE), "MSG_T_SIZE", "context")
        _not_implemented(lambda: setattr(c, "thread_name_prefix", 1), "THREAD_NAME_PREFIX", "context")
        with pytest.raises(zmtp.ZMQError) as info:
            c.set(4242, 1)  # no libzmq option at all
        assert info.value.errno == errno.EINVAL
    finally:
        c.term()


@pytest.mark.parametrize("libname", LIBS)
def test_context_option_attributes(libname, lib_ctx):
    """ctx.io_threads / ctx.max_sockets read the context options; unknown
    names raise AttributeError on set; ctx.hwm stores a default."""
    lib, c = lib_ctx
    assert c.io_threads == 1 and c.max_sockets == 1023
    c.max_sockets = 100
    assert c.get(lib.MAX_SOCKETS) == 100
    with pytest.raises(AttributeError):
        c.no_such_option = 1
    with pytest.raises(AttributeError):
        c.sndtimeo  # a socket default not set
    c.hwm = 5
    assert c.hwm == 5


def test_context_hwm_is_the_default_of_new_sockets():
    """``ctx.hwm = 5`` raised AttributeError; it sets the SNDHWM and RCVHWM
    defaults of the sockets made afterwards (pyzmq 27.3 stores it but its
    sockets ignore it: libzmq refuses HWM)."""
    c = zmtp.Context()
    try:
        with pytest.raises(AttributeError):
            c.hwm
        c.hwm = 5
        assert c.hwm == 5
        s = c.socket(zmtp.PUSH)
        assert (s.sndhwm, s.rcvhwm, s.hwm) == (5, 5, 5)
        s.close()
    finally:
        c.term()


# ======================================================= bind_to_random_port


@pytest.mark.parametrize("libname", LIBS)
def test_bind_to_random_port_reraises_other_errors(libname, lib_ctx):
    """Only EADDRINUSE is retried, as pyzmq: a bad interface raises the
    bind's own error (it ended as ZMQBindError after max_tries)."""
    lib, c = lib_ctx
    s = c.socket(lib.PULL)
    with pytest.raises(lib.ZMQError) as info:
        s.bind_to_random_port("tcp://no-such-interface-zmtp", min_port=40000, max_port=40100, max_tries=5)
    assert not isinstance(info.value, lib.ZMQBindError)
    assert info.value.errno == errno.ENODEV
    s.close()


@pytest.mark.parametrize("libname", LIBS)
def test_bind_to_random_port_retries_addresses_in_use(libname, lib_ctx):
    """EADDRINUSE is retried until a free port, or ZMQBindError."""
    lib, c = lib_ctx
    taken = c.socket(lib.PULL)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    s = c.socket(lib.PULL)
    with pytest.raises(lib.ZMQBindError):
        s.bind_to_random_port("tcp://127.0.0.1", min_port=port, max_port=port + 1, max_tries=3)
    taken.close()
    s.close()
