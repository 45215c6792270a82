"""The blocking socket, with pyzmq's API.

The C type (``zmtp._zmtp.Socket``) does the work: send, recv, the multipart
calls, bind/connect and options are C methods.  This subclass adds only the
conveniences (strings, JSON, pickles, properties, context manager).

Layering: imports ``_inproc``, ``constants``, ``error`` and the C module;
imported by ``context``, ``proxy`` and the package face.  Must never import
``context`` (a Socket reaches its context through the object it was given).
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import pickle
import random
import socket as _stdsocket
import types
import warnings
import weakref
from typing import Any, Callable, List, Optional, Sequence, Union

from zmtp import _zmtp
from zmtp import constants as _constants
from zmtp._inproc import DEFAULT_NAMES, InprocNames, is_inproc
from zmtp.constants import (
    CURVE_PUBLICKEY,
    CURVE_SECRETKEY,
    CURVE_SERVER,
    CURVE_SERVERKEY,
    DONTWAIT,
    EVENT_ALL,
    ETERM,
    EVENTS,
    FD,
    HANDSHAKE_IVL,
    HEARTBEAT_IVL,
    HEARTBEAT_TIMEOUT,
    HEARTBEAT_TTL,
    IMMEDIATE,
    LAST_ENDPOINT,
    LINGER,
    MAXMSGSIZE,
    PAIR,
    POLLIN,
    RCVHWM,
    RCVMORE,
    RCVTIMEO,
    RECONNECT_IVL,
    RECONNECT_IVL_MAX,
    ROUTER_MANDATORY,
    ROUTING_ID,
    SNDHWM,
    SNDMORE,
    SNDTIMEO,
    SUBSCRIBE,
    UNIMPLEMENTED_CONTEXT_OPTIONS,
    UNIMPLEMENTED_SOCKET_OPTIONS,
    UNSUBSCRIBE,
    XPUB_VERBOSE,
    STREAM_NOTIFY,
    MECHANISM,
    PLAIN_SERVER,
    PLAIN_USERNAME,
    PLAIN_PASSWORD,
    ZAP_DOMAIN,
    ZAP_ENFORCE_DOMAIN,
    AFFINITY,
    THREAD_SAFE,
    SNDBUF,
    RCVBUF,
    BACKLOG,
    IPV4ONLY,
    IPV6,
    TCP_KEEPALIVE,
    TCP_KEEPALIVE_CNT,
    TCP_KEEPALIVE_IDLE,
    TCP_KEEPALIVE_INTVL,
    TOS,
    CONNECT_TIMEOUT,
    TCP_MAXRT,
    USE_FD,
    BINDTODEVICE,
    CONFLATE,
    CONNECT_ROUTING_ID,
    INVERT_MATCHING,
    METADATA,
    ONLY_FIRST_SUBSCRIBE,
    PROBE_ROUTER,
    REQ_CORRELATE,
    REQ_RELAXED,
    ROUTER_HANDOVER,
    XPUB_MANUAL,
    XPUB_NODROP,
    XPUB_VERBOSER,
    XPUB_WELCOME_MSG,
    SocketType,
)
from zmtp.error import ContextTerminated, OptionNotImplemented, ZMQBindError, ZMQError

__all__ = ["Socket"]


class HandleRegistry:
    """The integer handles of ``underlying`` (Socket and Context): handed
    out once per original object, from a counter (never an address, so a
    stale or made-up number can never name memory), and looked up
    through weak references: a handle names its object only while that
    object is alive.  Process-local, like libzmq's pointers."""

    def __init__(self, kind: str, base: int) -> None:
        self._kind = kind
        self._next = itertools.count(base, 16)
        self._live: "dict[int, weakref.ref[Any]]" = {}

    def handle(self, obj: Any) -> int:
        """``obj``'s handle (given on first use; ``obj`` is an original)."""
        h = obj.__dict__.get("_handle")
        if h is None:
            h = next(self._next)
            live = self._live
            self._live[h] = weakref.ref(obj, lambda _ref, h=h: live.pop(h, None))
            obj.__dict__["_handle"] = h
        return h

    @staticmethod
    def given(shadow: Any) -> bool:
        """True when a constructor's ``shadow=`` asks for a shadow (pyzmq:
        anything but 0 / None / False)."""
        return shadow is not None and shadow is not False and not (isinstance(shadow, int) and shadow == 0)

    def refuse_null(self, address: Any) -> None:
        """``shadow(0)`` / ``shadow(None)``: the error of a handle naming
        nothing (pyzmq's constructor would make a new object instead)."""
        if not self.given(address) or isinstance(address, bool):
            code = errno.ENOTSOCK if self._kind == "socket" else errno.EFAULT
            raise ZMQError(code, f"{address!r} is not a {self._kind} handle")

    def lookup(self, handle: Any) -> Any:
        """The live object with this handle, or ZMQError(ENOTSOCK) (EFAULT
        for a context, as libzmq's invalid-context errno) saying why."""
        code = errno.ENOTSOCK if self._kind == "socket" else errno.EFAULT
        if isinstance(handle, bool) or not isinstance(handle, int):
            raise TypeError(f"a {self._kind} handle is an int (its .underlying), not {type(handle).__name__}")
        ref = self._live.get(handle)
        obj = ref() if ref is not None else None
        if obj is None:
            raise ZMQError(code, f"{handle:#x} is not the handle of a live zmtp {self._kind} "
                           f"(use the .underlying of one that is open, in this process)")
        return obj


_SOCKET_HANDLES = HandleRegistry("socket", 0x7A6D74700010)


def _int_option(opt: int, doc: str) -> property:
    def fget(self: "Socket") -> int:
        return self.getsockopt(opt)

    def fset(self: "Socket", value: int) -> None:
        self.setsockopt(opt, value)

    return property(fget, fset, doc=doc)


def _bytes_option(opt: int, doc: str) -> property:
    """A bytes option as a property; a str value is sent UTF-8 encoded."""

    def fget(self: "Socket") -> bytes:
        return self.getsockopt(opt)

    def fset(self: "Socket", value: Union[bytes, str]) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8")
        self.setsockopt(opt, value)

    return property(fget, fset, doc=doc)


#: options that cannot be read back (pyzmq: AttributeError "... attribute is
#: write-only"); Python passes their getter's AttributeError to __getattr__.
_WRITE_ONLY_OPTIONS = frozenset({"curve_publickey", "curve_secretkey", "curve_serverkey"})


def _write_only_option(opt: int, name: str, doc: str) -> property:
    """A bytes option that cannot be read back (pyzmq's CURVE keys)."""

    def fget(self: "Socket") -> bytes:
        raise AttributeError(f"{name} attribute is write-only")

    def fset(self: "Socket", value: bytes) -> None:
        self.setsockopt(opt, value)

    return property(fget, fset, doc=doc)


#: option names that are methods (sub.subscribe("a")); setting one as an
#: attribute sets the option (pyzmq's sub.subscribe = "a").
_OPTION_METHODS = frozenset({"subscribe", "unsubscribe"})


def _dir_options(obj: Any) -> List[str]:
    """The option names ``dir()`` lists for ``obj`` (as pyzmq's __dir__)."""
    enum = _constants.SocketOption if isinstance(obj, _zmtp.Socket) else _constants.ContextOption
    return list(enum.__members__)


def _is_attribute(cls: type, key: str) -> bool:
    """True if a class of ``cls``'s MRO defines or annotates ``key``."""
    return any(key in vars(c) or key in vars(c).get("__annotations__", {}) for c in cls.__mro__)


def _no_option(owner: str, key: str) -> AttributeError:
    """The error for ``sock.<key>`` / ``ctx.<key>`` when it is no attribute:
    OptionNotImplemented (a ZMQError(EINVAL) naming it) for a libzmq option
    zmtp does not implement, else AttributeError, as pyzmq's."""
    name = key.upper()
    if name in UNIMPLEMENTED_SOCKET_OPTIONS:
        return OptionNotImplemented(name)
    if name in UNIMPLEMENTED_CONTEXT_OPTIONS:
        return OptionNotImplemented(name, "context")
    return AttributeError(f"{owner} has no such option: {name}")


class _OptionAttributes:
    """Attribute rules shared by Socket and Context: attributes the class
    defines or annotates (the option properties among them) and private
    names are set normally; a libzmq option zmtp does not implement raises
    OptionNotImplemented on set and get; any other name AttributeError
    (pyzmq: "Socket has no such option")."""

    __slots__ = ()

    def __setattr__(self, key: str, value: Any) -> None:
        if key in _OPTION_METHODS and isinstance(self, _zmtp.Socket):
            getattr(self, key)(value)  # sub.subscribe = "c": the option, as pyzmq (the method stays)
            return
        if key.startswith("_") or key in self.__dict__ or _is_attribute(type(self), key):
            object.__setattr__(self, key, value)
            return
        if key.isupper() and _is_attribute(type(self), key.lower()):
            setattr(self, key.lower(), value)  # s.LINGER = 0, ctx.IO_THREADS = 2: as pyzmq
            return
        raise _no_option(type(self).__name__, key)

    def __getattr__(self, key: str) -> Any:
        # Reached only for names that are no attribute: never an option
        # zmtp implements (those are properties).
        if key.startswith("_"):
            raise AttributeError(key)
        if key in _WRITE_ONLY_OPTIONS:
            raise AttributeError(f"{key} attribute is write-only")
        if key.isupper() and key.lower() not in _OPTION_METHODS and _is_attribute(type(self), key.lower()):
            return getattr(self, key.lower())  # s.LINGER, ctx.IO_THREADS: as pyzmq
        raise _no_option(type(self).__name__, key)

    def __dir__(self) -> List[str]:
        """The attributes, and the option names (pyzmq's completion hook:
        SocketOption's for a socket, ContextOption's for a context)."""
        names = list(super().__dir__())
        names.extend(_dir_options(self))
        return names


def _name_ipc_limit(exc: ZMQError, addr: Union[str, bytes]) -> None:
    """An ipc:// path too long: the message names the limit (pyzmq's)."""
    if exc.errno == errno.ENAMETOOLONG:
        path = addr.decode() if isinstance(addr, bytes) else str(addr)
        exc.strerror = (f"ipc path {path.split('://', 1)[-1]!r} is longer than {_constants.IPC_PATH_MAX_LEN} "
                        f"characters (sizeof(sockaddr_un.sun_path)).")
        exc.args = (exc.errno, exc.strerror)


class SocketContext:
    """What ``bind()`` and ``connect()`` return (pyzmq's): a context
    manager that unbinds / disconnects at exit (unless the socket is closed
    by then).  ``endpoint`` is what exit undoes: for a bind, the endpoint
    bound (a wildcard port resolved)."""

    def __init__(self, socket: "Socket", kind: str, addr: Union[str, bytes], endpoint: Union[str, bytes]) -> None:
        self.socket = socket
        self.kind = kind
        self.addr = addr.decode() if isinstance(addr, bytes) else addr
        self.endpoint = endpoint.decode() if isinstance(endpoint, bytes) else endpoint

    def __repr__(self) -> str:
        return f"<SocketContext({self.kind}={self.endpoint!r})>"

    def __enter__(self) -> "Socket":
        return self.socket

    def __exit__(self, *exc: Any) -> None:
        if self.socket.closed:
            return
        if self.kind == "bind":
            self.socket.unbind(self.endpoint)
        else:
            self.socket.disconnect(self.endpoint)


class Socket(_OptionAttributes, _zmtp.Socket):
    """A ZeroMQ socket.  Make it with ``ctx.socket(zmtp.REQ)`` (or
    ``zmtp.Socket(ctx, zmtp.REQ)``, a subclass too: either way the context
    knows it, and its term() ends it).

    Blocking calls do their I/O in the calling thread and release the GIL
    while they wait.  A socket must not be used from two threads at once
    (that raises ZMQError(EBUSY)).

    Options are properties (``s.linger = 0``).  As in pyzmq, setting a name
    that is neither an attribute nor an option raises AttributeError; a
    libzmq option zmtp does not implement (``s.tcp_keepalive = 1``) raises
    :class:`zmtp.error.OptionNotImplemented` naming it, on set and on get.
    """

    context: Any
    _monitor_name: Optional[str]
    _pid: int
    _socket_type: SocketType
    _shadow: bool
    _shadow_obj: Any

    #: ``zmtp.Socket[Any]`` in annotations evaluated at run time (ipykernel's
    #: ``zmq.Socket[t.Any]``): pyzmq's Socket is Generic in what recv returns.
    __class_getitem__ = classmethod(types.GenericAlias)

    def __init__(self, context: Any = None, socket_type: int = -1, *, shadow: Any = 0, **kwargs: Any) -> None:
        if isinstance(context, _zmtp.Socket):  # Socket(other_socket): a shadow, as pyzmq
            context, shadow = None, context
        if _SOCKET_HANDLES.given(shadow):
            self._init_shadow(shadow, kwargs)
            return
        self._shadow = False
        self._shadow_obj = None
        if isinstance(context, int) and socket_type == -1:  # Socket(REQ)
            context, socket_type = None, context
        if socket_type == -1:
            raise TypeError("Socket() needs a socket_type (e.g. zmtp.REQ)")
        stype = int(socket_type)
        if stype > _constants.STREAM and stype in _constants.SocketType._value2member_map_:
            name = _constants.SocketType(stype).name
            raise ZMQError(errno.EINVAL, f"Invalid argument: socket type {name} (a libzmq draft) is not implemented by zmtp")
        if context is None:
            super().__init__(stype, None)
        else:
            # Made under the context's lock, with its progress thread:
            # ContextTerminated once term() has begun.
            context._register_socket(self, lambda progress: super(Socket, self).__init__(stype, progress))
        self.context = context
        self._socket_type = SocketType(stype)
        self._monitor_name = None  # monitor(addr)'s inproc name
        self._pid = os.getpid()
        try:
            for name, value in kwargs.items():
                setattr(self, name, value)
        except BaseException:
            self.close(linger=0)  # not left open (and warned about) by a bad option
            raise

    def _init_shadow(self, shadow: Any, kwargs: Any) -> None:
        """Become a shadow of ``shadow`` (a zmtp Socket or the handle of one)."""
        if isinstance(shadow, _zmtp.Socket):
            orig = shadow
        else:
            orig = _SOCKET_HANDLES.lookup(getattr(shadow, "underlying", shadow))
        root = getattr(orig, "_shadow_obj", None) or orig  # a shadow of a shadow shadows the original
        self._shadow_attach(root)  # the C object: every call is made on root's engine socket
        self._shadow = True
        self._shadow_obj = root  # as pyzmq: keeps the original alive
        self.context = root.context
        self._socket_type = root._socket_type
        self._monitor_name = None
        self._pid = root._pid
        for name, value in kwargs.items():
            setattr(self, name, value)

    @classmethod
    def shadow(cls, address: Any) -> "Socket":  # type: ignore[override]
        """A new ``cls`` object driving the same socket as ``address`` (a
        zmtp Socket, or its ``underlying`` handle): a blocking and an asyncio
        object can share one socket this way, as in pyzmq.  Both objects'
        calls go to one socket (two threads, one on each, get EBUSY as on
        one object); the shadow keeps the original object alive, never
        closes the socket when collected, and its ``close()`` closes the
        shared socket.  A handle that names no live socket raises
        ZMQError(ENOTSOCK)."""
        _SOCKET_HANDLES.refuse_null(address)
        return cls(shadow=address)

    @property
    def underlying(self) -> int:
        """An integer naming this socket for :meth:`shadow` (pyzmq's is the
        libzmq pointer; zmtp's is a process-local handle, valid while the
        original object is alive and open).  Shadows give the original's."""
        root = self._shadow_obj or self
        return _SOCKET_HANDLES.handle(root)

    def __copy__(self, memo: Any = None) -> "Socket":
        """A shadow of this socket (pyzmq: copying a Socket shadows it)."""
        return self.__class__.shadow(self)

    __deepcopy__ = __copy__

    def __del__(self) -> None:
        # As pyzmq: a socket collected unclosed warns, then closes (with its
        # LINGER).  Not in a forked child: the socket is the parent's; not
        # after its context's term(), which freed it; never for a shadow,
        # which does not own its socket.
        if getattr(self, "_shadow", True):
            return
        if self.closed or getattr(self, "_pid", None) != os.getpid() or self._terminated:
            return
        warnings.warn(f"Unclosed socket {self}", ResourceWarning, stacklevel=2, source=self)
        self.close()

    def fileno(self) -> int:
        """A descriptor that becomes readable when this socket's EVENTS may
        have changed (libzmq's ZMQ_FD), for use in another event loop.

        Edge-triggered, as libzmq's: after it fires, read ``socket.events``
        (or call ``recv(DONTWAIT)`` until ``Again``) and act on everything
        it shows; it fires again only for what happens after your last
        call on the socket.  Never read from it yourself.  Spurious wakes
        are possible.  It is the socket's "loop set", an epoll descriptor
        holding the socket's wake-up eventfd (inproc peers, the progress
        thread, term()) and its connections in traffic, so that the loop's
        next call reads the kernel itself (docs/asyncio.md).  After
        ``ctx.term()`` it is readable and stays open until ``close()``.
        """
        return int(self.getsockopt(FD))

    # -- context manager, repr

    def __enter__(self) -> "Socket":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    #: the class name repr shows (pyzmq's hook: "zmq.Socket" there)
    _repr_cls = "zmtp.Socket"

    def __repr__(self) -> str:
        """pyzmq's shape: ``<zmtp.Socket(zmtp.PUSH) at 0x... closed>``."""
        try:
            kind = "zmtp." + SocketType(self.type).name
        except Exception:
            kind = "?"
        closed = " closed" if getattr(self, "closed", False) else ""
        return f"<{self._repr_cls}({kind}) at {id(self):#x}{closed}>"

    # -- options as properties

    linger = _int_option(LINGER, "LINGER in ms: how long close() sends what is queued (-1: until done).")
    rcvtimeo = _int_option(RCVTIMEO, "RCVTIMEO in ms: recv() raises Again after this (-1: wait forever).")
    sndtimeo = _int_option(SNDTIMEO, "SNDTIMEO in ms: send() raises Again after this (-1: wait forever).")
    sndhwm = _int_option(SNDHWM, "SNDHWM: messages queued per peer before send blocks or drops (0: no limit).")
    rcvhwm = _int_option(RCVHWM, "RCVHWM: messages queued per peer before reading stops (0: no limit).")
    maxmsgsize = _int_option(MAXMSGSIZE, "MAXMSGSIZE: largest frame accepted from a peer (-1: no limit).")
    router_mandatory = _int_option(ROUTER_MANDATORY, "ROUTER_MANDATORY: unroutable sends raise EHOSTUNREACH.")
    immediate = _int_option(IMMEDIATE, "IMMEDIATE: queue only to completed connections.")
    reconnect_ivl = _int_option(RECONNECT_IVL, "RECONNECT_IVL in ms (-1: never redial).")
    reconnect_ivl_max = _int_option(RECONNECT_IVL_MAX, "RECONNECT_IVL_MAX in ms: redials back off up to this (0: no backoff).")
    handshake_ivl = _int_option(HANDSHAKE_IVL, "HANDSHAKE_IVL in ms: a peer that does not finish the handshake is closed (0: never).")
    heartbeat_ivl = _int_option(HEARTBEAT_IVL, "HEARTBEAT_IVL in ms: send a ZMTP PING this often (0: off).")
    heartbeat_ttl = _int_option(HEARTBEAT_TTL, "HEARTBEAT_TTL in ms: how long the peer may wait for our traffic (sent in PINGs).")
    heartbeat_timeout = _int_option(HEARTBEAT_TIMEOUT, "HEARTBEAT_TIMEOUT in ms: close when nothing comes back after a PING (-1: HEARTBEAT_IVL).")
    xpub_verbose = _int_option(XPUB_VERBOSE, "XPUB_VERBOSE: pass every subscription message up, duplicates too.")
    # security: PLAIN (docs/security.md)
    mechanism = _int_option(MECHANISM, "MECHANISM (read-only): NULL 0, PLAIN 1, CURVE 2.")
    plain_server = _int_option(PLAIN_SERVER, "PLAIN_SERVER: 1 makes the socket a PLAIN server (0: NULL).")
    plain_username = _bytes_option(PLAIN_USERNAME, "PLAIN_USERNAME (1..255 bytes): makes the socket a PLAIN client.")
    plain_password = _bytes_option(PLAIN_PASSWORD, "PLAIN_PASSWORD (1..255 bytes): makes the socket a PLAIN client.")
    zap_domain = _bytes_option(ZAP_DOMAIN, "ZAP_DOMAIN (0..255 bytes): the domain of this socket's ZAP requests "
                               "(set: a NULL socket asks ZAP too, as libzmq).")
    zap_enforce_domain = _int_option(ZAP_ENFORCE_DOMAIN, "ZAP_ENFORCE_DOMAIN: with a ZAP_DOMAIN and no handler, a NULL "
                                     "socket refuses its peers (as libzmq; no effect on PLAIN and CURVE).")
    # security: CURVE (docs/security.md)
    curve_server = _int_option(CURVE_SERVER, "CURVE_SERVER: 1 makes this socket a CURVE server (needs curve_secretkey); 0 goes back to NULL.")
    curve_publickey = _write_only_option(CURVE_PUBLICKEY, "curve_publickey", "CURVE_PUBLICKEY: our long-term public key (40 bytes Z85 or 32 raw); write-only.")
    curve_secretkey = _write_only_option(CURVE_SECRETKEY, "curve_secretkey", "CURVE_SECRETKEY: our long-term secret key (40 bytes Z85 or 32 raw); write-only, never shown.")
    curve_serverkey = _write_only_option(CURVE_SERVERKEY, "curve_serverkey", "CURVE_SERVERKEY: the server's public key; setting it makes this socket a CURVE client; write-only.")
    # pattern options (docs/options.md); write-only where libzmq's are (get: EINVAL)
    conflate = _int_option(CONFLATE, "CONFLATE: DEALER, PULL and SUB keep only each peer's newest message (single-part).")
    req_correlate = _int_option(REQ_CORRELATE, "REQ_CORRELATE: requests carry an id the reply must bring back (REQ; write-only).")
    req_relaxed = _int_option(REQ_RELAXED, "REQ_RELAXED: a REQ may send a new request before the reply (write-only).")
    probe_router = _int_option(PROBE_ROUTER, "PROBE_ROUTER: an empty message to each new peer (ROUTER, DEALER, REQ; write-only).")
    router_handover = _int_option(ROUTER_HANDOVER, "ROUTER_HANDOVER: a peer with a routing id in use takes it over (write-only).")
    connect_routing_id = _bytes_option(CONNECT_ROUTING_ID, "CONNECT_ROUTING_ID: the routing id of the next connect()'s peer "
                                       "(ROUTER, STREAM; write-only).")
    connect_rid = connect_routing_id
    xpub_nodrop = _int_option(XPUB_NODROP, "XPUB_NODROP: send raises Again (or waits) rather than drop at a subscriber's SNDHWM (write-only).")
    xpub_manual = _int_option(XPUB_MANUAL, "XPUB_MANUAL: every subscription is passed up; subscribe(topic) on the XPUB applies it "
                              "to the peer of the last one received (write-only).")
    xpub_welcome_msg = _bytes_option(XPUB_WELCOME_MSG, "XPUB_WELCOME_MSG: sent to each new subscriber (b'': none; write-only).")
    xpub_verboser = _int_option(XPUB_VERBOSER, "XPUB_VERBOSER: pass every subscription and every cancel up (write-only).")
    invert_matching = _int_option(INVERT_MATCHING, "INVERT_MATCHING: PUB/XPUB send to, SUB/XSUB keep, what does not match.")
    metadata = _bytes_option(METADATA, "METADATA: b'X-name:value', announced in every handshake; the peer reads "
                             "frame.get('X-name') (write-only).")
    only_first_subscribe = _int_option(ONLY_FIRST_SUBSCRIBE, "ONLY_FIRST_SUBSCRIBE: a multipart message is a subscription only "
                                       "when its first frame is one (PUB, XPUB, XSUB; write-only).")
    stream_notify = _int_option(STREAM_NOTIFY, "STREAM_NOTIFY: a STREAM socket receives [id, b''] when a peer connects and when it leaves.")
    # transport (docs/options.md): applied to the descriptors of later binds and connects, as libzmq
    affinity = _int_option(AFFINITY, "AFFINITY: I/O thread mask; kept and read back, no effect (zmtp has no I/O threads).")
    thread_safe = _int_option(THREAD_SAFE, "THREAD_SAFE (read-only): 0, as libzmq for every standard socket type.")
    sndbuf = _int_option(SNDBUF, "SNDBUF: the kernel's SO_SNDBUF for tcp descriptors (-1: the OS default).")
    rcvbuf = _int_option(RCVBUF, "RCVBUF: the kernel's SO_RCVBUF for tcp descriptors (-1: the OS default).")
    backlog = _int_option(BACKLOG, "BACKLOG: listen()'s backlog of tcp and ipc listeners (default 128; libzmq's 100).")
    ipv4only = _int_option(IPV4ONLY, "IPV4ONLY: the inverse of IPV6 (default 1).")
    ipv6 = _int_option(IPV6, "IPV6: tcp://*:port binds [::] (IPv4 too) and host names resolve to IPv6 (default 0).")
    tcp_keepalive = _int_option(TCP_KEEPALIVE, "TCP_KEEPALIVE: SO_KEEPALIVE on tcp connections (-1: the OS default, 0 off, 1 on).")
    tcp_keepalive_cnt = _int_option(TCP_KEEPALIVE_CNT, "TCP_KEEPALIVE_CNT: TCP_KEEPCNT with TCP_KEEPALIVE set (-1: the OS default).")
    tcp_keepalive_idle = _int_option(TCP_KEEPALIVE_IDLE, "TCP_KEEPALIVE_IDLE in s: TCP_KEEPIDLE with TCP_KEEPALIVE set (-1: the OS default).")
    tcp_keepalive_intvl = _int_option(TCP_KEEPALIVE_INTVL, "TCP_KEEPALIVE_INTVL in s: TCP_KEEPINTVL with TCP_KEEPALIVE set (-1: the OS default).")
    tos = _int_option(TOS, "TOS: IP_TOS / IPV6_TCLASS of tcp descriptors (0: none).")
    connect_timeout = _int_option(CONNECT_TIMEOUT, "CONNECT_TIMEOUT in ms: a tcp dial not done by then is closed and redialled (0: the kernel's).")
    tcp_maxrt = _int_option(TCP_MAXRT, "TCP_MAXRT in ms: TCP_USER_TIMEOUT of tcp connections (0: the OS default).")
    use_fd = _int_option(USE_FD, "USE_FD: bind() listens on this descriptor, bound by the caller, and owns it (-1: none).")
    bindtodevice = _bytes_option(BINDTODEVICE, "BINDTODEVICE: SO_BINDTODEVICE of tcp descriptors (needs CAP_NET_RAW; b'': none).")

    def subscribe(self, topic: Union[bytes, str]) -> None:
        """SUB/XSUB: receive messages whose first frame starts with ``topic``
        (str is encoded as UTF-8).  Counted: two subscribes need two unsubscribes."""
        if isinstance(topic, str):
            topic = topic.encode("utf-8")
        self.setsockopt(SUBSCRIBE, topic)

    def unsubscribe(self, topic: Union[bytes, str]) -> None:
        """SUB/XSUB: undo one subscribe(topic)."""
        if isinstance(topic, str):
            topic = topic.encode("utf-8")
        self.setsockopt(UNSUBSCRIBE, topic)

    @property
    def hwm(self) -> int:
        """SNDHWM and RCVHWM together (pyzmq's virtual HWM option)."""
        return self.sndhwm

    @hwm.setter
    def hwm(self, value: int) -> None:
        self.sndhwm = value
        self.rcvhwm = value

    @property
    def routing_id(self) -> bytes:
        """ROUTING_ID (IDENTITY) announced to ROUTER peers."""
        return self.getsockopt(ROUTING_ID)

    @routing_id.setter
    def routing_id(self, value: Union[bytes, str]) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8")
        self.setsockopt(ROUTING_ID, value)

    identity = routing_id

    @property
    def rcvmore(self) -> bool:
        """True when the last frame received has more frames after it."""
        return bool(self.getsockopt(RCVMORE))

    @property
    def type(self) -> int:
        """The socket type (zmtp.REQ, ...); also once closed, as pyzmq's."""
        return self._socket_type

    @property
    def socket_type(self) -> int:
        """The socket type (pyzmq's name)."""
        return self.type

    @property
    def last_endpoint(self) -> bytes:
        """The endpoint last bound or connected, e.g. b"tcp://127.0.0.1:5555"."""
        return self.getsockopt(LAST_ENDPOINT)

    @property
    def events(self) -> int:
        """POLLIN / POLLOUT as they stand now."""
        return self.getsockopt(EVENTS)

    # -- pyzmq spellings

    def set(self, option: int, value: Any) -> None:
        """setsockopt(option, value)."""
        self.setsockopt(option, value)

    def get(self, option: int) -> Any:
        """getsockopt(option)."""
        return self.getsockopt(option)

    def setsockopt_string(self, option: int, value: str, encoding: str = "utf-8") -> None:
        """Set a bytes option from str (encoded with ``encoding``)."""
        if not isinstance(value, str):
            raise TypeError(f"unicode strings only, not {type(value).__name__}")
        self.setsockopt(option, value.encode(encoding))

    def getsockopt_string(self, option: int, encoding: str = "utf-8") -> str:
        """Get a bytes option as str; an option that is not bytes raises
        TypeError, as pyzmq's."""
        opt_type = getattr(_constants.SocketOption._value2member_map_.get(int(option)), "_opt_type", None)
        if opt_type is not None and opt_type is not _constants._OptType.bytes:
            raise TypeError(f"option {int(option)} will not return a string to be decoded")
        return self.getsockopt(option).decode(encoding)

    set_string = setsockopt_string
    get_string = getsockopt_string
    setsockopt_unicode = setsockopt_string
    getsockopt_unicode = getsockopt_string

    @property
    def fd(self) -> int:
        """FD, the descriptor of :meth:`fileno` (pyzmq's ``socket.fd``)."""
        return self.fileno()

    #: pyzmq's zero-copy threshold: with ``copy=False``, frames of this
    #: many bytes or more are sent by reference to the caller's buffer
    #: (0: every frame), smaller ones copied.  ``bytes`` of 64 KiB or more go
    #: by reference with ``copy=True`` too (docs/decisions.md, "Large
    #: frames sent by reference").
    copy_threshold: int = 65536

    # -- endpoints: tcp:// and ipc:// in C, inproc:// names in the Context

    def _inproc_names(self) -> InprocNames:
        names = getattr(self.context, "_inproc", None)
        return names if isinstance(names, InprocNames) else DEFAULT_NAMES

    def bind(self, addr: Union[str, bytes]) -> "SocketContext":
        """Accept connections at ``addr`` (``tcp://``, ``ipc://`` or
        ``inproc://``: a name for sockets of this Context).  Returns a
        context manager, as pyzmq's: ``with s.bind(url):`` unbinds at exit."""
        if is_inproc(addr):
            self._check_open()
            self._inproc_names().bind(self._shadow_obj or self, addr)
            return SocketContext(self, "bind", addr, addr)
        self._zap_if_server()
        try:
            super().bind(addr)
        except ZMQError as exc:
            _name_ipc_limit(exc, addr)
            raise
        return SocketContext(self, "bind", addr, self.last_endpoint)

    def connect(self, addr: Union[str, bytes]) -> "SocketContext":
        """Connect to ``addr``; an ``inproc://`` name may be bound later
        (messages queue until then, as in libzmq).  Returns a context
        manager, as pyzmq's: ``with s.connect(url):`` disconnects at exit."""
        if is_inproc(addr):
            self._check_open()
            self._inproc_names().connect(self._shadow_obj or self, addr)
        else:
            self._zap_if_server()
            try:
                super().connect(addr)
            except ZMQError as exc:
                _name_ipc_limit(exc, addr)
                raise
        return SocketContext(self, "connect", addr, addr)

    def _zap_if_server(self) -> None:
        """A PLAIN or CURVE server, or any socket with a ZAP_DOMAIN (NULL
        asks too, as libzmq 4.3.5), asks the Context's ZAP handler about
        each peer (docs/auth.md): its pipe to the handler is made here."""
        if self.getsockopt(PLAIN_SERVER) or self.getsockopt(CURVE_SERVER) or self.getsockopt(ZAP_DOMAIN):
            self._inproc_names().zap_client(self._shadow_obj or self)

    def unbind(self, addr: Union[str, bytes]) -> None:
        """Stop accepting at ``addr``.  For ``inproc://`` the name is freed
        and the connections already made through it stay, as in libzmq."""
        if is_inproc(addr):
            self._check_open()
            self._inproc_names().unbind(self._shadow_obj or self, addr)
        else:
            super().unbind(addr)

    def _check_open(self) -> None:
        """ENOTSOCK once closed; ContextTerminated after the context's
        term(), as the C calls."""
        if self.closed:
            raise ZMQError(errno.ENOTSOCK, "Socket operation on closed socket")
        if self._terminated:
            raise ContextTerminated(ETERM, "Context was terminated")

    def bind_to_random_port(
        self, addr: str, min_port: int = 49152, max_port: int = 65536, max_tries: int = 100
    ) -> int:
        """Bind to a free port of ``addr`` ("tcp://host") and return it.

        With the default range the kernel picks the port (``tcp://host:*``).
        """
        if min_port == 49152 and max_port == 65536:
            self.bind(f"{addr}:*")
            return int(self.last_endpoint.rsplit(b":", 1)[-1])
        for _ in range(max_tries):
            port = random.randrange(min_port, max_port)
            try:
                self.bind(f"{addr}:{port}")
            except ZMQError as exc:
                if exc.errno == errno.EADDRINUSE:  # only this one, as pyzmq
                    continue
                raise
            return port
        raise ZMQBindError(msg="Could not bind socket to random port.")

    # -- sugar over send/recv

    def send_string(self, u: str, flags: int = 0, copy: bool = True, encoding: str = "utf-8", **kw: Any) -> None:
        """Send a str, encoded (UTF-8 by default)."""
        if not isinstance(u, str):
            raise TypeError("send_string() takes str; use send() for bytes")
        self.send(u.encode(encoding), flags, copy)

    def recv_string(self, flags: int = 0, encoding: str = "utf-8") -> str:
        """Receive a frame and decode it (UTF-8 by default)."""
        return self.recv(flags).decode(encoding)

    send_unicode = send_string
    recv_unicode = recv_string

    def send_json(self, obj: Any, flags: int = 0, **kwargs: Any) -> None:
        """Send an object as JSON (UTF-8)."""
        self.send(json.dumps(obj, **kwargs).encode("utf-8"), flags)

    def recv_json(self, flags: int = 0, **kwargs: Any) -> Any:
        """Receive a JSON frame and decode it."""
        return json.loads(self.recv(flags), **kwargs)

    def send_pyobj(self, obj: Any, flags: int = 0, protocol: int = pickle.DEFAULT_PROTOCOL, **kw: Any) -> None:
        """Send a pickled object.  Unpickling is only safe from trusted peers."""
        self.send(pickle.dumps(obj, protocol), flags)

    def recv_pyobj(self, flags: int = 0) -> Any:
        """Receive and unpickle an object (trusted peers only)."""
        return pickle.loads(self.recv(flags))

    def send_serialized(self, msg: Any, serialize: Callable[[Any], Sequence[bytes]], flags: int = 0, copy: bool = True) -> None:
        """Send ``serialize(msg)`` (a list of frames) as one message."""
        self.send_multipart(serialize(msg), flags, copy)

    def recv_serialized(self, deserialize: Callable[[List[bytes]], Any], flags: int = 0, copy: bool = True) -> Any:
        """Receive a message and return ``deserialize(frames)``."""
        return deserialize(self.recv_multipart(flags, copy))

    def poll(self, timeout: Optional[int] = None, flags: int = POLLIN) -> int:
        """Wait up to ``timeout`` ms (None: forever) for ``flags``; return the events ready."""
        self._check_open()
        ready = _zmtp._poll([(self, int(flags))], -1 if timeout is None else int(timeout))
        return ready[0][1] if ready else 0

    # -- batches and buffered sends

    def send_batch(self, messages: Sequence[Any], flags: int = 0) -> int:
        """Send many messages with one flush: each item is a bytes-like
        object (one frame) or a sequence of them (a multipart message).

        Returns how many were queued.  Without DONTWAIT each waits as
        ``send()`` would (SNDTIMEO raises Again; the ones before it are
        queued); with DONTWAIT the batch stops early at the first message
        that would block, and the count says where (when not even the
        first fits, it raises Again, as ``send()`` would).
        """
        return self._send_many(messages, int(flags), False)

    def send_buffered(self, msg: Any, flags: int = 0) -> None:
        """Queue a message (bytes-like, or a sequence of frames) without
        writing it: it goes with :meth:`flush`, once ``write_buf_size``
        bytes wait, with any other call on this socket, or within 1 ms."""
        self._send_many((msg,), int(flags), True)

    # -- monitor events

    def get_monitor_socket(self, events: Optional[int] = None, addr: Optional[str] = None) -> "Socket":
        """Return a new PAIR socket that receives this socket's events.

        Each event is a two-frame message in libzmq's format (6 octets: the
        uint16 event and the uint32 value in host order, then the endpoint);
        :func:`zmtp.utils.monitor.recv_monitor_message` parses it.  `events`
        is a mask of ``zmtp.EVENT_*`` (default ``EVENT_ALL``).  A socket has
        one monitor: a second call stops the first (it gets
        EVENT_MONITOR_STOPPED, as in libzmq).  Close the returned socket
        yourself; it ends with EVENT_MONITOR_STOPPED when this socket closes
        or :meth:`disable_monitor` is called.

        `addr` is accepted for pyzmq compatibility and must be None or an
        ``inproc://`` name, which is not registered: the pair is joined by
        a kernel socketpair directly.
        """
        self._check_open()
        if events is None:
            events = EVENT_ALL
        if not isinstance(events, int) or isinstance(events, bool):
            raise TypeError(f"events must be an int mask of zmtp.EVENT_*, not {type(events).__name__}")
        if addr is not None and not str(addr).startswith("inproc://"):
            raise ZMQError(errno.EPROTONOSUPPORT, "monitor endpoints must be inproc:// (as in libzmq)")
        name = addr or f"inproc://monitor.s-{id(self):x}"
        ctx = self.context
        mon = ctx.socket(PAIR) if ctx is not None else Socket(PAIR)
        ours, theirs = _stdsocket.socketpair(_stdsocket.AF_UNIX, _stdsocket.SOCK_STREAM)
        ours.setblocking(False)
        theirs.setblocking(False)
        ours_fd, theirs_fd = ours.detach(), theirs.detach()
        try:
            mon._adopt_fd(theirs_fd, name)  # owns theirs_fd from here on
        except BaseException:
            _stdsocket.close(ours_fd)
            mon.close(linger=0)
            raise
        try:
            self._monitor_fd(ours_fd, int(events))  # owns ours_fd from here on
        except BaseException:
            mon.close(linger=0)
            raise
        (self._shadow_obj or self)._monitor_name = None  # an earlier monitor(addr) is replaced
        return mon

    def monitor(self, addr: Optional[Union[str, bytes]], events: int = EVENT_ALL) -> None:
        """libzmq's ``zmq_socket_monitor``: publish this socket's events at
        the ``inproc://`` name ``addr``; a PAIR socket of the same Context
        that connects to it receives them (connect after this call).
        ``monitor(None)`` stops the monitor.  Other transports raise
        EPROTONOSUPPORT, as in libzmq."""
        if addr is None:
            self.disable_monitor()
            return
        if not is_inproc(addr):
            raise ZMQError(errno.EPROTONOSUPPORT, "monitor endpoints must be inproc:// (as in libzmq)")
        self._check_open()
        if not isinstance(events, int) or isinstance(events, bool):
            raise TypeError(f"events must be an int mask of zmtp.EVENT_*, not {type(events).__name__}")
        ours, theirs = _stdsocket.socketpair(_stdsocket.AF_UNIX, _stdsocket.SOCK_STREAM)
        ours.setblocking(False)
        theirs.setblocking(False)
        ours_fd, theirs_fd = ours.detach(), theirs.detach()
        try:
            self._monitor_fd(ours_fd, int(events))  # owns ours_fd from here on
        except BaseException:
            _stdsocket.close(theirs_fd)
            raise
        root = self._shadow_obj or self  # the name belongs to the original, shadows or not
        root._monitor_name = self._inproc_names().monitor(root, addr, theirs_fd)  # owns theirs_fd

    def disable_monitor(self) -> None:
        """Stop sending events; the monitor socket gets EVENT_MONITOR_STOPPED."""
        self._check_open()
        (self._shadow_obj or self)._monitor_name = None  # frees the inproc name of monitor(addr)
        self._monitor_fd(-1, 0)

    # DONTWAIT / SNDMORE re-exported for subclass users
    DONTWAIT = DONTWAIT
    SNDMORE = SNDMORE

