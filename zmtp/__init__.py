"""zmtp: the ZeroMQ wire protocol (ZMTP 3.1) for Python, without libzmq.

``import zmtp as zmq`` works for ordinary blocking scripts::

    import zmtp
    ctx = zmtp.Context()
    s = ctx.socket(zmtp.REQ)
    s.connect("tcp://127.0.0.1:5555")
    s.send(b"hello"); print(s.recv())

The C core does the I/O in the calling thread over io_uring or epoll
(:func:`backend_name`); :mod:`zmtp.codec` is the protocol codec without I/O.

Layering: the package's face; imports every public module below it (context,
socket, poll, proxy, error, constants, codec, buffers, version, _backend,
curve, sugar.tracker, sugar.frame) and the C module.  Nothing in ``zmtp`` imports it back except ``demo``.
"""

from zmtp._zmtp import Frame, io_stats, memory_stats
from zmtp.codec import ProtocolError
from zmtp.error import Again, ContextTerminated, NotDone, ZMQBindError, ZMQError, strerror
from zmtp.version import __version__, has, pyzmq_version, pyzmq_version_info, zmq_version, zmq_version_info
from zmtp._backend import backend_info, backend_name
from zmtp.constants import (
    CURVE_PUBLICKEY,
    CURVE_SECRETKEY,
    CURVE_SERVER,
    CURVE_SERVERKEY,
    DEALER,
    DEFAULT_LINGER,
    DONTWAIT,
    EAGAIN,
    EFSM,
    EHOSTUNREACH,
    EINVAL,
    ENOTSOCK,
    ENOTSUP,
    ETERM,
    EVENT_ACCEPTED,
    EVENT_ACCEPT_FAILED,
    EVENT_ALL,
    EVENT_BIND_FAILED,
    EVENT_CLOSED,
    EVENT_CLOSE_FAILED,
    EVENT_CONNECTED,
    EVENT_CONNECT_DELAYED,
    EVENT_CONNECT_RETRIED,
    EVENT_DISCONNECTED,
    EVENT_HANDSHAKE_FAILED_AUTH,
    EVENT_HANDSHAKE_FAILED_NO_DETAIL,
    EVENT_HANDSHAKE_FAILED_PROTOCOL,
    EVENT_HANDSHAKE_SUCCEEDED,
    EVENT_LISTENING,
    EVENT_MONITOR_STOPPED,
    EVENTS,
    FD,
    HANDSHAKE_IVL,
    HEARTBEAT_IVL,
    HEARTBEAT_TIMEOUT,
    HEARTBEAT_TTL,
    IDENTITY,
    IMMEDIATE,
    IO_THREADS,
    IPC_PATH_MAX_LEN,
    LAST_ENDPOINT,
    LINGER,
    MAXMSGSIZE,
    MAX_MSGSZ,
    MAX_SOCKETS,
    MORE,
    NOBLOCK,
    PAIR,
    POLLERR,
    POLLIN,
    POLLOUT,
    POLLPRI,
    PUB,
    PULL,
    PUSH,
    RCVHWM,
    RCVMORE,
    RCVTIMEO,
    RECONNECT_IVL,
    RECONNECT_IVL_MAX,
    REP,
    REQ,
    ROUTER,
    ROUTER_MANDATORY,
    ROUTING_ID,
    SHARED,
    SNDHWM,
    SNDMORE,
    SNDTIMEO,
    SOCKET_LIMIT,
    SRCFD,
    SUB,
    SUBSCRIBE,
    TYPE,
    UNSUBSCRIBE,
    XPUB_VERBOSE,
    XPUB,
    XSUB,
    STREAM,
    STREAM_NOTIFY,
    MECHANISM,
    PLAIN_SERVER,
    PLAIN_USERNAME,
    PLAIN_PASSWORD,
    ZAP_DOMAIN,
    ZAP_ENFORCE_DOMAIN,
    AFFINITY,
    SNDBUF,
    RCVBUF,
    BACKLOG,
    IPV4ONLY,
    TCP_KEEPALIVE,
    TCP_KEEPALIVE_CNT,
    TCP_KEEPALIVE_IDLE,
    TCP_KEEPALIVE_INTVL,
    IPV6,
    TOS,
    CONNECT_TIMEOUT,
    TCP_MAXRT,
    USE_FD,
    BINDTODEVICE,
    PROBE_ROUTER,
    REQ_CORRELATE,
    REQ_RELAXED,
    CONFLATE,
    ROUTER_HANDOVER,
    CONNECT_ROUTING_ID,
    CONNECT_RID,
    XPUB_NODROP,
    XPUB_MANUAL,
    XPUB_WELCOME_MSG,
    INVERT_MATCHING,
    XPUB_VERBOSER,
    METADATA,
    ONLY_FIRST_SUBSCRIBE,
    NULL,
    PLAIN,
    CURVE,
    ContextOption,
    Errno,
    Event,
    Flag,
    MessageOption,
    PollEvent,
    ProtocolErrorCode,
    SocketOption,
    SocketType,
)
from zmtp import constants as _constants

# Every constant pyzmq exports (zmtp.constants.__all__: its enums' members
# under pyzmq's module-level names), also those whose feature zmtp does not
# implement (using one raises a ZMQError naming it).
globals().update({_name: getattr(_constants, _name) for _name in _constants.__all__ if _name not in globals()})

from zmtp.socket import Socket
from zmtp.buffers import BufferConfig
from zmtp.context import Context
from zmtp.poll import Poller, select
from zmtp.proxy import FORWARDER, QUEUE, STREAMER, DeviceType, device, proxy, proxy_steerable
from zmtp.sugar.frame import Message
from zmtp.sugar.tracker import _FINISHED_TRACKER, MessageTracker
from zmtp.curve import curve_keypair, curve_public
from zmtp import backend, utils  # zmq.backend and zmq.utils are attributes of pyzmq's zmq too

#: pyzmq's copy threshold: copy=False frames this large are sent by reference (Socket.copy_threshold).
COPY_THRESHOLD = 65536
#: zmtp implements none of libzmq's draft API (draft socket types raise EINVAL).
DRAFT_API = False
PYZMQ_DRAFT_API = False

__all__ = [
    "Again", "BufferConfig", "Context", "ContextTerminated", "DEALER", "DEFAULT_LINGER", "DONTWAIT", "EAGAIN", "EFSM",
    "EHOSTUNREACH", "EINVAL", "HANDSHAKE_IVL", "HEARTBEAT_IVL", "HEARTBEAT_TIMEOUT", "HEARTBEAT_TTL", "ENOTSOCK", "ENOTSUP", "ETERM", "EVENT_ACCEPTED", "EVENT_ACCEPT_FAILED", "EVENT_ALL", "EVENT_BIND_FAILED", "EVENT_CLOSED", "EVENT_CLOSE_FAILED", "EVENT_CONNECTED", "EVENT_CONNECT_DELAYED", "EVENT_CONNECT_RETRIED", "EVENT_DISCONNECTED", "EVENT_HANDSHAKE_FAILED_AUTH", "EVENT_HANDSHAKE_FAILED_NO_DETAIL", "EVENT_HANDSHAKE_FAILED_PROTOCOL", "EVENT_HANDSHAKE_SUCCEEDED", "EVENT_LISTENING", "EVENT_MONITOR_STOPPED", "EVENTS", "Errno", "FD", "Event", "Flag", "Frame", "IDENTITY",
    "IMMEDIATE", "LAST_ENDPOINT", "LINGER", "MAXMSGSIZE", "NOBLOCK", "PAIR", "POLLERR", "POLLIN", "POLLOUT",
    "PUB", "PULL", "PUSH", "PollEvent", "Poller", "ProtocolError", "ProtocolErrorCode", "RCVHWM", "RCVMORE", "RCVTIMEO",
    "RECONNECT_IVL", "RECONNECT_IVL_MAX", "REP", "REQ", "ROUTER", "ROUTER_MANDATORY", "ROUTING_ID", "SNDHWM", "SNDMORE",
    "SNDTIMEO", "SUB", "SUBSCRIBE", "Socket", "SocketOption", "SocketType", "TYPE", "UNSUBSCRIBE", "XPUB", "XPUB_VERBOSE", "XSUB", "ZMQBindError",
    "ZMQError", "__version__", "backend_info", "backend_name", "io_stats", "memory_stats", "proxy", "strerror",
    "Message", "MessageTracker", "NotDone", "device", "DeviceType", "QUEUE", "FORWARDER", "STREAMER",
    "proxy_steerable",
    "curve_keypair", "curve_public", "CURVE_SERVER", "CURVE_PUBLICKEY", "CURVE_SECRETKEY", "CURVE_SERVERKEY",
    "ContextOption", "IO_THREADS", "IPC_PATH_MAX_LEN", "MAX_MSGSZ", "MAX_SOCKETS", "MORE", "MessageOption", "POLLPRI",
    "SHARED", "SOCKET_LIMIT", "SRCFD", "STREAM", "STREAM_NOTIFY",
    "MECHANISM", "PLAIN_SERVER", "PLAIN_USERNAME", "PLAIN_PASSWORD", "ZAP_DOMAIN", "ZAP_ENFORCE_DOMAIN", "NULL", "PLAIN", "CURVE", "has", "pyzmq_version", "pyzmq_version_info", "select", "zmq_version",
    "zmq_version_info",
    "AFFINITY", "SNDBUF", "RCVBUF", "BACKLOG", "IPV4ONLY", "TCP_KEEPALIVE", "TCP_KEEPALIVE_CNT", "TCP_KEEPALIVE_IDLE",
    "TCP_KEEPALIVE_INTVL", "IPV6", "TOS", "CONNECT_TIMEOUT", "TCP_MAXRT", "USE_FD", "BINDTODEVICE",
    "PROBE_ROUTER", "REQ_CORRELATE", "REQ_RELAXED", "CONFLATE", "ROUTER_HANDOVER", "CONNECT_ROUTING_ID", "CONNECT_RID", "XPUB_NODROP", "XPUB_MANUAL", "XPUB_WELCOME_MSG", "INVERT_MATCHING", "XPUB_VERBOSER", "METADATA",
    "ONLY_FIRST_SUBSCRIBE",
]
__all__ += [_name for _name in _constants.__all__ if _name not in __all__]
__all__ += ["COPY_THRESHOLD", "DRAFT_API", "PYZMQ_DRAFT_API"]
