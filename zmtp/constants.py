"""Constants with libzmq's names and numbers (as pyzmq exposes them).

Layering: imports the C module only; imported by everything that names an
option or a socket type.  Must never import sockets or contexts.
"""

from __future__ import annotations

import enum
import errno as _errno
from typing import Dict

from zmtp import _zmtp


class SocketType(enum.IntEnum):
    """Socket types."""

    PAIR = 0
    PUB = 1
    SUB = 2
    REQ = 3
    REP = 4
    DEALER = 5
    ROUTER = 6
    PULL = 7
    PUSH = 8
    XPUB = 9
    XSUB = 10
    STREAM = 11


class Flag(enum.IntFlag):
    """Send and receive flags."""

    DONTWAIT = 1
    NOBLOCK = 1
    SNDMORE = 2


class PollEvent(enum.IntFlag):
    """Poll event bits."""

    POLLIN = 1
    POLLOUT = 2
    POLLERR = 4
    POLLPRI = 8


class SocketOption(enum.IntEnum):
    """Socket options zmtp implements (libzmq numbers)."""

    ROUTING_ID = 5
    SUBSCRIBE = 6
    UNSUBSCRIBE = 7
    RCVMORE = 13
    FD = 14
    EVENTS = 15
    TYPE = 16
    LINGER = 17
    RECONNECT_IVL = 18
    RECONNECT_IVL_MAX = 21
    MAXMSGSIZE = 22
    SNDHWM = 23
    RCVHWM = 24
    RCVTIMEO = 27
    SNDTIMEO = 28
    LAST_ENDPOINT = 32
    ROUTER_MANDATORY = 33
    IMMEDIATE = 39
    XPUB_VERBOSE = 40
    CURVE_SERVER = 47
    CURVE_PUBLICKEY = 48
    CURVE_SECRETKEY = 49
    CURVE_SERVERKEY = 50
    HANDSHAKE_IVL = 66
    STREAM_NOTIFY = 73
    HEARTBEAT_IVL = 75
    HEARTBEAT_TTL = 76
    HEARTBEAT_TIMEOUT = 77
    # security: PLAIN
    MECHANISM = 43
    PLAIN_SERVER = 44
    PLAIN_USERNAME = 45
    PLAIN_PASSWORD = 46
    ZAP_DOMAIN = 55
    ZAP_ENFORCE_DOMAIN = 93
    THREAD_SAFE = 81
    # transport (docs/options.md)
    AFFINITY = 4
    SNDBUF = 11
    RCVBUF = 12
    BACKLOG = 19
    IPV4ONLY = 31
    TCP_KEEPALIVE = 34
    TCP_KEEPALIVE_CNT = 35
    TCP_KEEPALIVE_IDLE = 36
    TCP_KEEPALIVE_INTVL = 37
    IPV6 = 42
    TOS = 57
    CONNECT_TIMEOUT = 79
    TCP_MAXRT = 80
    USE_FD = 89
    BINDTODEVICE = 92
    # pattern options (docs/options.md)
    PROBE_ROUTER = 51
    REQ_CORRELATE = 52
    REQ_RELAXED = 53
    CONFLATE = 54
    ROUTER_HANDOVER = 56
    CONNECT_ROUTING_ID = 61
    CONNECT_RID = 61
    XPUB_NODROP = 69
    XPUB_MANUAL = 71
    XPUB_WELCOME_MSG = 72
    INVERT_MATCHING = 74
    XPUB_VERBOSER = 78
    METADATA = 95
    ONLY_FIRST_SUBSCRIBE = 108


class Event(enum.IntFlag):
    """Monitor event kinds (libzmq's ZMQ_EVENT_* numbers); see
    :meth:`zmtp.Socket.get_monitor_socket`."""

    CONNECTED = 0x0001
    CONNECT_DELAYED = 0x0002
    CONNECT_RETRIED = 0x0004
    LISTENING = 0x0008
    BIND_FAILED = 0x0010
    ACCEPTED = 0x0020
    ACCEPT_FAILED = 0x0040
    CLOSED = 0x0080
    CLOSE_FAILED = 0x0100
    DISCONNECTED = 0x0200
    MONITOR_STOPPED = 0x0400
    HANDSHAKE_FAILED_NO_DETAIL = 0x0800
    HANDSHAKE_SUCCEEDED = 0x1000
    HANDSHAKE_FAILED_PROTOCOL = 0x2000
    HANDSHAKE_FAILED_AUTH = 0x4000
    ALL = 0xFFFF


class ProtocolErrorCode(enum.IntEnum):
    """Values of a HANDSHAKE_FAILED_PROTOCOL event (libzmq's
    ZMQ_PROTOCOL_ERROR_ZMTP_* numbers) that zmtp sends."""

    ZMTP_UNSPECIFIED = 0x10000000
    ZMTP_UNEXPECTED_COMMAND = 0x10000001
    ZMTP_MALFORMED_COMMAND_UNSPECIFIED = 0x10000011
    ZMTP_MALFORMED_COMMAND_ERROR = 0x10000015
    ZMTP_MALFORMED_COMMAND_READY = 0x10000016
    ZMTP_INVALID_METADATA = 0x10000018
    ZMTP_MECHANISM_MISMATCH = 0x11000002
    # PLAIN and ZAP
    ZMTP_MALFORMED_COMMAND_HELLO = 0x10000013
    ZMTP_MALFORMED_COMMAND_WELCOME = 0x10000017
    ZAP_UNSPECIFIED = 0x20000000
    ZAP_MALFORMED_REPLY = 0x20000001
    ZAP_BAD_REQUEST_ID = 0x20000002
    ZAP_BAD_VERSION = 0x20000003
    ZAP_INVALID_STATUS_CODE = 0x20000004
    ZAP_INVALID_METADATA = 0x20000005


class Errno(enum.IntEnum):
    """Error numbers: the system's, plus libzmq's own."""

    EAGAIN = _errno.EAGAIN
    EINVAL = _errno.EINVAL
    ENOTSUP = _errno.ENOTSUP
    EHOSTUNREACH = _errno.EHOSTUNREACH
    ENOTSOCK = _errno.ENOTSOCK
    EADDRINUSE = _errno.EADDRINUSE
    EPROTONOSUPPORT = _errno.EPROTONOSUPPORT
    EBUSY = _errno.EBUSY
    EFAULT = _errno.EFAULT
    ENOBUFS = _errno.ENOBUFS
    ENETDOWN = _errno.ENETDOWN
    EADDRNOTAVAIL = _errno.EADDRNOTAVAIL
    ECONNREFUSED = _errno.ECONNREFUSED
    EINPROGRESS = _errno.EINPROGRESS
    EMSGSIZE = _errno.EMSGSIZE
    EAFNOSUPPORT = _errno.EAFNOSUPPORT
    ENETUNREACH = _errno.ENETUNREACH
    ECONNABORTED = _errno.ECONNABORTED
    ECONNRESET = _errno.ECONNRESET
    ENOTCONN = _errno.ENOTCONN
    ETIMEDOUT = _errno.ETIMEDOUT
    ENETRESET = _errno.ENETRESET
    EFSM = _zmtp.EFSM
    ENOCOMPATPROTO = _zmtp.ENOCOMPATPROTO
    ETERM = _zmtp.ETERM
    EMTHREAD = _zmtp.EMTHREAD


class MessageOption(enum.IntEnum):
    """Frame properties for :meth:`zmtp.Frame.get` (only MORE is kept)."""

    MORE = 1
    SRCFD = 2
    SHARED = 3


class ContextOption(enum.IntEnum):
    """Context options (libzmq numbers) for ``Context.get`` / ``Context.set``."""

    IO_THREADS = 1
    MAX_SOCKETS = 2
    SOCKET_LIMIT = 3
    THREAD_PRIORITY = 3
    THREAD_SCHED_POLICY = 4
    MAX_MSGSZ = 5
    MSG_T_SIZE = 6
    THREAD_AFFINITY_CPU_ADD = 7
    THREAD_AFFINITY_CPU_REMOVE = 8
    THREAD_NAME_PREFIX = 9


#: Longest ipc:// path (sizeof(sockaddr_un.sun_path) - 1 on Linux).
IPC_PATH_MAX_LEN: int = 107

PAIR = SocketType.PAIR
PUB = SocketType.PUB
SUB = SocketType.SUB
REQ = SocketType.REQ
REP = SocketType.REP
DEALER = SocketType.DEALER
ROUTER = SocketType.ROUTER
PULL = SocketType.PULL
PUSH = SocketType.PUSH
XPUB = SocketType.XPUB
XSUB = SocketType.XSUB
STREAM = SocketType.STREAM

DONTWAIT = Flag.DONTWAIT
NOBLOCK = Flag.NOBLOCK
SNDMORE = Flag.SNDMORE

POLLIN = PollEvent.POLLIN
POLLOUT = PollEvent.POLLOUT
POLLERR = PollEvent.POLLERR
POLLPRI = PollEvent.POLLPRI

MORE = MessageOption.MORE
SRCFD = MessageOption.SRCFD
SHARED = MessageOption.SHARED

IO_THREADS = ContextOption.IO_THREADS
MAX_SOCKETS = ContextOption.MAX_SOCKETS
SOCKET_LIMIT = ContextOption.SOCKET_LIMIT
MAX_MSGSZ = ContextOption.MAX_MSGSZ

ROUTING_ID = SocketOption.ROUTING_ID
IDENTITY = SocketOption.ROUTING_ID
RCVMORE = SocketOption.RCVMORE
EVENTS = SocketOption.EVENTS
FD = SocketOption.FD
TYPE = SocketOption.TYPE
LINGER = SocketOption.LINGER
RECONNECT_IVL = SocketOption.RECONNECT_IVL
MAXMSGSIZE = SocketOption.MAXMSGSIZE
SNDHWM = SocketOption.SNDHWM
RCVHWM = SocketOption.RCVHWM
RCVTIMEO = SocketOption.RCVTIMEO
SNDTIMEO = SocketOption.SNDTIMEO
LAST_ENDPOINT = SocketOption.LAST_ENDPOINT
ROUTER_MANDATORY = SocketOption.ROUTER_MANDATORY
IMMEDIATE = SocketOption.IMMEDIATE
SUBSCRIBE = SocketOption.SUBSCRIBE
UNSUBSCRIBE = SocketOption.UNSUBSCRIBE
XPUB_VERBOSE = SocketOption.XPUB_VERBOSE
RECONNECT_IVL_MAX = SocketOption.RECONNECT_IVL_MAX
HANDSHAKE_IVL = SocketOption.HANDSHAKE_IVL
HEARTBEAT_IVL = SocketOption.HEARTBEAT_IVL
HEARTBEAT_TTL = SocketOption.HEARTBEAT_TTL
HEARTBEAT_TIMEOUT = SocketOption.HEARTBEAT_TIMEOUT
STREAM_NOTIFY = SocketOption.STREAM_NOTIFY
MECHANISM = SocketOption.MECHANISM
PLAIN_SERVER = SocketOption.PLAIN_SERVER
PLAIN_USERNAME = SocketOption.PLAIN_USERNAME
PLAIN_PASSWORD = SocketOption.PLAIN_PASSWORD
ZAP_DOMAIN = SocketOption.ZAP_DOMAIN
ZAP_ENFORCE_DOMAIN = SocketOption.ZAP_ENFORCE_DOMAIN
CURVE_SERVER = SocketOption.CURVE_SERVER
CURVE_PUBLICKEY = SocketOption.CURVE_PUBLICKEY
CURVE_SECRETKEY = SocketOption.CURVE_SECRETKEY
CURVE_SERVERKEY = SocketOption.CURVE_SERVERKEY
THREAD_SAFE = SocketOption.THREAD_SAFE
AFFINITY = SocketOption.AFFINITY
SNDBUF = SocketOption.SNDBUF
RCVBUF = SocketOption.RCVBUF
BACKLOG = SocketOption.BACKLOG
IPV4ONLY = SocketOption.IPV4ONLY
TCP_KEEPALIVE = SocketOption.TCP_KEEPALIVE
TCP_KEEPALIVE_CNT = SocketOption.TCP_KEEPALIVE_CNT
TCP_KEEPALIVE_IDLE = SocketOption.TCP_KEEPALIVE_IDLE
TCP_KEEPALIVE_INTVL = SocketOption.TCP_KEEPALIVE_INTVL
IPV6 = SocketOption.IPV6
TOS = SocketOption.TOS
CONNECT_TIMEOUT = SocketOption.CONNECT_TIMEOUT
TCP_MAXRT = SocketOption.TCP_MAXRT
USE_FD = SocketOption.USE_FD
BINDTODEVICE = SocketOption.BINDTODEVICE
PROBE_ROUTER = SocketOption.PROBE_ROUTER
REQ_CORRELATE = SocketOption.REQ_CORRELATE
REQ_RELAXED = SocketOption.REQ_RELAXED
CONFLATE = SocketOption.CONFLATE
ROUTER_HANDOVER = SocketOption.ROUTER_HANDOVER
CONNECT_ROUTING_ID = SocketOption.CONNECT_ROUTING_ID
CONNECT_RID = SocketOption.CONNECT_RID
XPUB_NODROP = SocketOption.XPUB_NODROP
XPUB_MANUAL = SocketOption.XPUB_MANUAL
XPUB_WELCOME_MSG = SocketOption.XPUB_WELCOME_MSG
INVERT_MATCHING = SocketOption.INVERT_MATCHING
XPUB_VERBOSER = SocketOption.XPUB_VERBOSER
METADATA = SocketOption.METADATA
ONLY_FIRST_SUBSCRIBE = SocketOption.ONLY_FIRST_SUBSCRIBE

#: MECHANISM's values (libzmq's ZMQ_NULL, ZMQ_PLAIN, ZMQ_CURVE).
NULL: int = 0
PLAIN: int = 1
CURVE: int = 2

EAGAIN = Errno.EAGAIN
EINVAL = Errno.EINVAL
ENOTSUP = Errno.ENOTSUP
EHOSTUNREACH = Errno.EHOSTUNREACH
ENOTSOCK = Errno.ENOTSOCK
EFSM = Errno.EFSM
ETERM = Errno.ETERM

EVENT_CONNECTED = Event.CONNECTED
EVENT_CONNECT_DELAYED = Event.CONNECT_DELAYED
EVENT_CONNECT_RETRIED = Event.CONNECT_RETRIED
EVENT_LISTENING = Event.LISTENING
EVENT_BIND_FAILED = Event.BIND_FAILED
EVENT_ACCEPTED = Event.ACCEPTED
EVENT_ACCEPT_FAILED = Event.ACCEPT_FAILED
EVENT_CLOSED = Event.CLOSED
EVENT_CLOSE_FAILED = Event.CLOSE_FAILED
EVENT_DISCONNECTED = Event.DISCONNECTED
EVENT_MONITOR_STOPPED = Event.MONITOR_STOPPED
EVENT_HANDSHAKE_FAILED_NO_DETAIL = Event.HANDSHAKE_FAILED_NO_DETAIL
EVENT_HANDSHAKE_SUCCEEDED = Event.HANDSHAKE_SUCCEEDED
EVENT_HANDSHAKE_FAILED_PROTOCOL = Event.HANDSHAKE_FAILED_PROTOCOL
EVENT_HANDSHAKE_FAILED_AUTH = Event.HANDSHAKE_FAILED_AUTH
EVENT_ALL = Event.ALL

#: Default LINGER of zmtp sockets in ms (libzmq's is -1, forever).
DEFAULT_LINGER: int = _zmtp.DEFAULT_LINGER


#: libzmq 4.3.5's socket options (drafts included, as pyzmq 27 lists them)
#: that zmtp does not implement (yet), by name; an alias (CONNECT_RID) is
#: listed under its own name.  Setting or getting one, as an attribute,
#: through ``setsockopt``/``getsockopt`` or as a Context default, raises a
#: ``ZMQError(EINVAL)`` naming it (:class:`zmtp.error.OptionNotImplemented`
#: for attributes and defaults), never accepts it silently.  Their
#: constants exist, as pyzmq's (``zmtp.TCP_KEEPALIVE``: see the end of this file).
UNIMPLEMENTED_SOCKET_OPTIONS: Dict[str, int] = {
    "RATE": 8, "RECOVERY_IVL": 9,
    "MULTICAST_HOPS": 25, "TCP_ACCEPT_FILTER": 38, "ROUTER_RAW": 41,
    "IPC_FILTER_PID": 58, "IPC_FILTER_UID": 59,
    "IPC_FILTER_GID": 60, "GSSAPI_SERVER": 62,
    "GSSAPI_PRINCIPAL": 63, "GSSAPI_SERVICE_PRINCIPAL": 64, "GSSAPI_PLAINTEXT": 65,
    "SOCKS_PROXY": 68, "BLOCKY": 70,
    "MULTICAST_MAXTPDU": 84, "VMCI_BUFFER_SIZE": 85,
    "VMCI_BUFFER_MIN_SIZE": 86, "VMCI_BUFFER_MAX_SIZE": 87, "VMCI_CONNECT_TIMEOUT": 88,
    "GSSAPI_PRINCIPAL_NAMETYPE": 90, "GSSAPI_SERVICE_PRINCIPAL_NAMETYPE": 91,
    "LOOPBACK_FASTPATH": 94,
    "MULTICAST_LOOP": 96, "ROUTER_NOTIFY": 97, "XPUB_MANUAL_LAST_VALUE": 98, "SOCKS_USERNAME": 99,
    "SOCKS_PASSWORD": 100, "IN_BATCH_SIZE": 101, "OUT_BATCH_SIZE": 102, "WSS_KEY_PEM": 103,
    "WSS_CERT_PEM": 104, "WSS_TRUST_PEM": 105, "WSS_HOSTNAME": 106, "WSS_TRUST_SYSTEM": 107,
    "RECONNECT_STOP": 109, "HELLO_MSG": 110, "DISCONNECT_MSG": 111,
    "PRIORITY": 112, "BUSY_POLL": 113, "HICCUP_MSG": 114, "XSUB_VERBOSE_UNSUBSCRIBE": 115,
    "TOPICS_COUNT": 116, "NORM_MODE": 117, "NORM_UNICAST_NACK": 118, "NORM_BUFFER_SIZE": 119,
    "NORM_SEGMENT_SIZE": 120, "NORM_BLOCK_SIZE": 121, "NORM_NUM_PARITY": 122,
    "NORM_NUM_AUTOPARITY": 123, "NORM_PUSH": 124,
}

#: libzmq's context options that zmtp does not implement (``Context.set`` /
#: ``Context.get`` and the attributes raise OptionNotImplemented).
UNIMPLEMENTED_CONTEXT_OPTIONS: Dict[str, int] = {
    "THREAD_PRIORITY": 3, "THREAD_SCHED_POLICY": 4, "MSG_T_SIZE": 6, "THREAD_AFFINITY_CPU_ADD": 7,
    "THREAD_AFFINITY_CPU_REMOVE": 8, "THREAD_NAME_PREFIX": 9,
}

# The C setsockopt/getsockopt name these in their EINVAL (the last name of
# a number wins: CONNECT_ROUTING_ID over its alias CONNECT_RID).
_zmtp._set_option_names({num: name for name, num in UNIMPLEMENTED_SOCKET_OPTIONS.items()})


# ---------------------------------------------------------------- pyzmq's full set of names
#
# Every constant pyzmq 27 exports, at module level and in its enums, exists
# here too, also where zmtp does not implement the feature: the name has
# libzmq's number, and using it raises a clear error (an option:
# ZMQError(EINVAL) naming it; a socket type: ZMQError(EINVAL) from
# ``ctx.socket``).  The enums above list what zmtp implements (the options
# helper adds rows there); this block completes each with pyzmq's other
# members, so a name moved up into a class body is never defined twice.
# tests/test_pyzmq_surface.py compares the result with pyzmq's zmq.constants.


class _OptType(enum.Enum):
    """How an option's value is passed (pyzmq's ``SocketOption._opt_type``)."""

    int = "int"
    int64 = "int64"
    bytes = "bytes"
    fd = "fd"


class RouterNotify(enum.IntEnum):
    """Values of ROUTER_NOTIFY (a libzmq draft option zmtp does not implement)."""

    CONNECT = 1
    DISCONNECT = 2


class NormMode(enum.IntEnum):
    """Values of NORM_MODE (the NORM transport: not in zmtp)."""

    FIXED = 0
    CC = 1
    CCL = 2
    CCE = 3
    CCE_ECNONLY = 4


class SecurityMechanism(enum.IntEnum):
    """MECHANISM's values; zmtp has NULL, PLAIN and CURVE (no GSSAPI)."""

    NULL = 0
    PLAIN = 1
    CURVE = 2
    GSSAPI = 3


class ReconnectStop(enum.IntEnum):
    """Values of RECONNECT_STOP (an option zmtp does not implement)."""

    CONN_REFUSED = 0x1
    HANDSHAKE_FAILED = 0x2
    AFTER_DISCONNECT = 0x4


#: pyzmq's members each enum above lacks (name: number), added below.
_PYZMQ_MEMBERS: Dict[str, Dict[str, int]] = {
    "SocketType": {"XREQ": 5, "XREP": 6, "SERVER": 12, "CLIENT": 13, "RADIO": 14, "DISH": 15, "GATHER": 16,
                   "SCATTER": 17, "DGRAM": 18, "PEER": 19, "CHANNEL": 20},
    "SocketOption": {"HWM": 1, "IDENTITY": 5, "DELAY_ATTACH_ON_CONNECT": 39, "FAIL_UNROUTABLE": 33,
                     "ROUTER_BEHAVIOR": 33, **UNIMPLEMENTED_SOCKET_OPTIONS},
    "Event": {"PROTOCOL_ERROR_WS_UNSPECIFIED": 0x30000000, "ALL_V1": 0xFFFF, "PIPES_STATS": 0x10000,
              "ALL_V2": 0x1FFFF,
              **{"PROTOCOL_ERROR_" + name: num for name, num in {
                  "ZMTP_UNSPECIFIED": 0x10000000, "ZMTP_UNEXPECTED_COMMAND": 0x10000001,
                  "ZMTP_INVALID_SEQUENCE": 0x10000002, "ZMTP_KEY_EXCHANGE": 0x10000003,
                  "ZMTP_MALFORMED_COMMAND_UNSPECIFIED": 0x10000011, "ZMTP_MALFORMED_COMMAND_MESSAGE": 0x10000012,
                  "ZMTP_MALFORMED_COMMAND_HELLO": 0x10000013, "ZMTP_MALFORMED_COMMAND_INITIATE": 0x10000014,
                  "ZMTP_MALFORMED_COMMAND_ERROR": 0x10000015, "ZMTP_MALFORMED_COMMAND_READY": 0x10000016,
                  "ZMTP_MALFORMED_COMMAND_WELCOME": 0x10000017, "ZMTP_INVALID_METADATA": 0x10000018,
                  "ZMTP_CRYPTOGRAPHIC": 0x11000001, "ZMTP_MECHANISM_MISMATCH": 0x11000002,
                  "ZAP_UNSPECIFIED": 0x20000000, "ZAP_MALFORMED_REPLY": 0x20000001,
                  "ZAP_BAD_REQUEST_ID": 0x20000002, "ZAP_BAD_VERSION": 0x20000003,
                  "ZAP_INVALID_STATUS_CODE": 0x20000004, "ZAP_INVALID_METADATA": 0x20000005}.items()}},
    "Errno": {},
}

#: options whose value is not a C int (pyzmq's ``_opt_type``); every other is int.
_OPT_TYPES: Dict[str, _OptType] = {
    **dict.fromkeys(("AFFINITY", "MAXMSGSIZE", "VMCI_BUFFER_SIZE", "VMCI_BUFFER_MIN_SIZE",
                     "VMCI_BUFFER_MAX_SIZE"), _OptType.int64),
    "FD": _OptType.fd,
    **dict.fromkeys(("ROUTING_ID", "IDENTITY", "SUBSCRIBE", "UNSUBSCRIBE", "LAST_ENDPOINT", "PLAIN_USERNAME",
                     "PLAIN_PASSWORD", "CURVE_PUBLICKEY", "CURVE_SECRETKEY", "CURVE_SERVERKEY", "ZAP_DOMAIN",
                     "CONNECT_ROUTING_ID", "CONNECT_RID", "GSSAPI_PRINCIPAL", "GSSAPI_SERVICE_PRINCIPAL",
                     "SOCKS_PROXY", "XPUB_WELCOME_MSG", "BINDTODEVICE", "TCP_ACCEPT_FILTER", "METADATA",
                     "SOCKS_USERNAME", "SOCKS_PASSWORD", "WSS_KEY_PEM", "WSS_CERT_PEM", "WSS_TRUST_PEM",
                     "WSS_HOSTNAME", "HELLO_MSG", "DISCONNECT_MSG", "HICCUP_MSG"), _OptType.bytes),
}

#: prefixes of module-level names (pyzmq's ``_global_name``): EVENT_CONNECTED, NOTIFY_CONNECT...
_GLOBAL_PREFIX: Dict[str, str] = {"Event": "EVENT_", "RouterNotify": "NOTIFY_", "NormMode": "NORM_",
                                  "ReconnectStop": "RECONNECT_STOP_"}


def _completed(cls: "type[enum.Enum]") -> "type[enum.Enum]":
    """``cls`` with pyzmq's members it lacks added (a new class of the same
    name, module and docstring; the members ``cls`` had keep their names
    and numbers, aliases included)."""
    members = [(name, int(m)) for name, m in cls.__members__.items()]
    have = {name for name, _ in members}
    extra = [(name, num) for name, num in _PYZMQ_MEMBERS.get(cls.__name__, {}).items() if name not in have]
    # pyzmq's Event defines ALL_V1 before its alias ALL (repr says ALL_V1).
    members = extra + members if cls.__name__ == "Event" else members + extra
    base = enum.IntFlag if issubclass(cls, enum.IntFlag) else enum.IntEnum
    new = base(cls.__name__, members, module=__name__, qualname=cls.__qualname__)  # type: ignore[call-overload]
    new.__doc__ = cls.__doc__
    return new  # type: ignore[no-any-return]


def _complete_enums() -> None:
    """Replace the enums by their completed forms and rebind every
    module-level name to the new members (MECHANISM's values become
    SecurityMechanism members, as pyzmq's)."""
    g = globals()
    for cls in (SocketType, SocketOption, Event, Errno):
        new = _completed(cls)
        g[cls.__name__] = new
        for name, value in list(g.items()):
            if isinstance(value, cls):
                g[name] = new[value.name]
    for name, member in g["SocketOption"].__members__.items():
        member._opt_type = _OPT_TYPES.get(name, _OptType.int)
    g["NULL"], g["PLAIN"], g["CURVE"] = SecurityMechanism.NULL, SecurityMechanism.PLAIN, SecurityMechanism.CURVE


_complete_enums()

#: the enums of pyzmq's zmq.constants (its DeviceType is zmtp.proxy's).
_ENUMS: "list[type[enum.Enum]]" = [ContextOption, SocketType, SocketOption, MessageOption, Flag, RouterNotify,
                                   NormMode, SecurityMechanism, ReconnectStop, Event, PollEvent, Errno]


#: options that programs probe with ``hasattr(zmq, NAME)`` before setting
#: them (ipykernel: ``if hasattr(zmq, "ROUTER_HANDOVER"): s.router_handover
#: = 1``): while zmtp does not implement one, its module-level constant is
#: left out (the SocketOption member stays), so the probe answers "absent"
#: instead of leading the program into OptionNotImplemented.  Once the
#: option is implemented (out of UNIMPLEMENTED_SOCKET_OPTIONS) the constant
#: is exported like every other.
PROBED_OPTIONS = frozenset({"ROUTER_HANDOVER"})


def _module_names() -> "list[str]":
    """Define each enum member at module level under pyzmq's name (EVENT_
    etc. prefixes, PROTOCOL_ERROR_* bare) unless defined; return the names."""
    g = globals()
    names = []
    for cls in _ENUMS:
        prefix = _GLOBAL_PREFIX.get(cls.__name__, "")
        for name, member in cls.__members__.items():
            if cls is SocketOption and name in PROBED_OPTIONS and name in UNIMPLEMENTED_SOCKET_OPTIONS:
                continue
            gname = name if name.startswith("PROTOCOL_ERROR_") else prefix + name
            g.setdefault(gname, member)
            names.append(gname)
    return names


#: what ``zmtp`` exports from here: the enums and every module-level name pyzmq's zmq.constants has.
__all__ = [cls.__name__ for cls in _ENUMS] + _module_names() + ["IPC_PATH_MAX_LEN", "DEFAULT_LINGER"]


def implemented_socket_options() -> "list[SocketOption]":
    """The SocketOption members zmtp implements (the enum also has pyzmq's
    others: those in UNIMPLEMENTED_SOCKET_OPTIONS, and HWM, which is the
    ``hwm`` property's SNDHWM + RCVHWM pair, not an option of its own)."""
    return [opt for opt in SocketOption if opt.name not in UNIMPLEMENTED_SOCKET_OPTIONS and opt.name != "HWM"]
