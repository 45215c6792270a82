"""Constants with libzmq's names and numbers (as pyzmq exposes them)."""

from __future__ import annotations

import enum
import errno as _errno

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
    HANDSHAKE_IVL = 66
    HEARTBEAT_IVL = 75
    HEARTBEAT_TTL = 76
    HEARTBEAT_TIMEOUT = 77


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
    EFSM = _zmtp.EFSM
    ENOCOMPATPROTO = _zmtp.ENOCOMPATPROTO
    ETERM = _zmtp.ETERM
    EMTHREAD = _zmtp.EMTHREAD


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

DONTWAIT = Flag.DONTWAIT
NOBLOCK = Flag.NOBLOCK
SNDMORE = Flag.SNDMORE

POLLIN = PollEvent.POLLIN
POLLOUT = PollEvent.POLLOUT
POLLERR = PollEvent.POLLERR

ROUTING_ID = SocketOption.ROUTING_ID
IDENTITY = SocketOption.ROUTING_ID
RCVMORE = SocketOption.RCVMORE
EVENTS = SocketOption.EVENTS
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

EAGAIN = Errno.EAGAIN
EINVAL = Errno.EINVAL
ENOTSUP = Errno.ENOTSUP
EHOSTUNREACH = Errno.EHOSTUNREACH
ENOTSOCK = Errno.ENOTSOCK
EFSM = Errno.EFSM
ETERM = Errno.ETERM

#: Default LINGER of zmtp sockets in ms (libzmq's is -1, forever).
DEFAULT_LINGER: int = _zmtp.DEFAULT_LINGER
