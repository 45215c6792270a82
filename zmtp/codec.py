"""The ZMTP 3.x codec without I/O (RFC 23 ZMTP 3.0, RFC 37 ZMTP 3.1).

Bytes in, events out; frames in, bytes out.  The work is done in C
(``src/codec.c``); this module gives it typed events::

    from zmtp import codec

    wire = codec.encode_greeting() + codec.encode_ready({"Socket-Type": "DEALER"})
    wire += codec.encode_message([b"hello", b"world"])
    dec = codec.Decoder()
    for event in dec.feed(wire):
        print(event)

A :class:`Decoder` accepts input split at any byte.  Frames that lie in one
read page are zero-copy slices of it (:class:`zmtp.Frame`); a frame larger
than a page gets its own buffer that grows with the bytes that actually
arrive, never with the size the peer claims.  A protocol violation raises
:class:`ProtocolError` with a specific :class:`ErrorCode`, and the decoder
stays failed (as a connection would be closed).

Layering: imports the C module only (its Decoder and encoders); used by
``error`` (ProtocolError's codes), ``demo`` and the package face.  Never
imports sockets or contexts: the codec does no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable, List, Mapping, Optional, Tuple, Union

from zmtp import _zmtp
from zmtp._zmtp import (
    Frame,
    ProtocolError,
    encode_command,
    encode_error,
    encode_frame,
    encode_greeting,
    encode_message,
    encode_ping,
    encode_pong,
    encode_ready,
    encode_subscription,
    parse_subscription_message,
)

__all__ = [
    "Cancel",
    "Decoder",
    "Error",
    "ErrorCode",
    "Event",
    "Frame",
    "Greeting",
    "Message",
    "Ping",
    "Pong",
    "ProtocolError",
    "Ready",
    "Subscribe",
    "UnknownCommand",
    "encode_cancel",
    "encode_command",
    "encode_error",
    "encode_frame",
    "encode_greeting",
    "encode_message",
    "encode_ping",
    "encode_pong",
    "encode_ready",
    "encode_subscribe",
    "encode_subscription",
    "parse_command",
    "parse_subscription_message",
]

GREETING_SIZE: int = _zmtp.GREETING_SIZE
READ_BUF_SIZE_DEFAULT: int = _zmtp.READ_BUF_SIZE_DEFAULT
MAX_FRAMES_DEFAULT: int = _zmtp.MAX_FRAMES_DEFAULT


class ErrorCode(enum.IntEnum):
    """Why a peer's bytes were refused (``ProtocolError.code``)."""

    SIGNATURE = _zmtp.ERR_SIGNATURE
    VERSION = _zmtp.ERR_VERSION
    MECHANISM = _zmtp.ERR_MECHANISM
    RESERVED_FLAGS = _zmtp.ERR_RESERVED_FLAGS
    COMMAND_MORE = _zmtp.ERR_COMMAND_MORE
    FRAME_SIZE = _zmtp.ERR_FRAME_SIZE
    MSG_TOO_LARGE = _zmtp.ERR_MSG_TOO_LARGE
    TOO_MANY_FRAMES = _zmtp.ERR_TOO_MANY_FRAMES
    COMMAND = _zmtp.ERR_COMMAND
    READY = _zmtp.ERR_READY
    ERROR_CMD = _zmtp.ERR_ERROR_CMD
    PING = _zmtp.ERR_PING
    NOMEM = _zmtp.ERR_NOMEM
    STATE = _zmtp.ERR_STATE
    V2_GREETING = _zmtp.ERR_V2_GREETING
    V2_SOCKET_TYPE = _zmtp.ERR_V2_SOCKET_TYPE
    V2_SECURITY = _zmtp.ERR_V2_SECURITY

    @property
    def text(self) -> str:
        """The generic readable text for this code."""
        return _zmtp.strerror(int(self))


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class Greeting:
    """The peer's greeting: ZMTP version, security mechanism, as-server.

    A ZMTP/2.0 peer (RFC 15, revision octet 1) gives ``major`` 2, no
    mechanism and its greeting's ``socket_type`` octet (libzmq's numbers);
    its identity follows as the first :class:`Message`.  ``socket_type`` is
    None for ZMTP 3.x, whose socket type is in READY.
    """

    major: int
    minor: int
    mechanism: bytes
    as_server: bool
    socket_type: Optional[int] = None


@dataclass(frozen=True)
class Ready:
    """READY command: the peer's metadata, in the order sent.

    Property names compare case-insensitively (RFC 23): ``ready["socket-type"]``
    finds ``Socket-Type``.
    """

    properties: Tuple[Tuple[bytes, bytes], ...]

    def get(self, name: Union[str, bytes], default: Optional[bytes] = None) -> Optional[bytes]:
        """The value of property ``name`` (case-insensitive), or ``default``."""
        key = name.encode("ascii") if isinstance(name, str) else name
        key = key.lower()
        for pname, value in self.properties:
            if pname.lower() == key:
                return value
        return default

    def __getitem__(self, name: Union[str, bytes]) -> bytes:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    @property
    def socket_type(self) -> Optional[bytes]:
        """The ``Socket-Type`` property, if sent."""
        return self.get(b"Socket-Type")

    @property
    def identity(self) -> Optional[bytes]:
        """The ``Identity`` property, if sent."""
        return self.get(b"Identity")


@dataclass(frozen=True)
class Error:
    """ERROR command: the peer gives up, with a reason."""

    reason: bytes


@dataclass(frozen=True)
class Ping:
    """PING command (ZMTP 3.1): ``ttl`` in tenths of a second, and a context."""

    ttl: int
    context: bytes

    @property
    def ttl_seconds(self) -> float:
        """The TTL in seconds."""
        return self.ttl / 10.0


@dataclass(frozen=True)
class Pong:
    """PONG command (ZMTP 3.1), echoing a PING's context."""

    context: bytes


@dataclass(frozen=True)
class Subscribe:
    """SUBSCRIBE command (ZMTP 3.1)."""

    topic: bytes


@dataclass(frozen=True)
class Cancel:
    """CANCEL command (ZMTP 3.1)."""

    topic: bytes


@dataclass(frozen=True)
class UnknownCommand:
    """A command this codec does not know; peers ignore these (RFC 37)."""

    name: bytes
    data: bytes


@dataclass(frozen=True)
class Message:
    """A whole message: every frame, the last one without MORE."""

    frames: List[Frame] = field(default_factory=list)

    @property
    def parts(self) -> List[bytes]:
        """The frames as bytes."""
        return [f.bytes for f in self.frames]


Command = Union[Ready, Error, Ping, Pong, Subscribe, Cancel, UnknownCommand]
Event = Union[Greeting, Command, Message]


def parse_command(body: Union[bytes, bytearray, memoryview, Frame]) -> Command:
    """Parse a command body (a command frame's content) into a typed command.

    Raises :class:`ProtocolError` when the body is malformed.
    """
    kind, name, value = _zmtp.parse_command(body)
    if kind == _zmtp.CMD_READY:
        return Ready(tuple(value))
    if kind == _zmtp.CMD_ERROR:
        return Error(value)
    if kind == _zmtp.CMD_PING:
        return Ping(value[0], value[1])
    if kind == _zmtp.CMD_PONG:
        return Pong(value)
    if kind == _zmtp.CMD_SUBSCRIBE:
        return Subscribe(value)
    if kind == _zmtp.CMD_CANCEL:
        return Cancel(value)
    return UnknownCommand(name, value)


def encode_subscribe(topic: bytes, peer_minor: int = 1) -> bytes:
    """Subscribe to ``topic`` in the form a ZMTP 3.``peer_minor`` peer expects."""
    return encode_subscription(topic, True, peer_minor)


def encode_cancel(topic: bytes, peer_minor: int = 1) -> bytes:
    """Cancel ``topic`` in the form a ZMTP 3.``peer_minor`` peer expects."""
    return encode_subscription(topic, False, peer_minor)


class Decoder:
    """Incremental ZMTP decoder with no I/O.

    Args:
        greeting: expect the 64-octet greeting first (False: frames at once).
        read_buf_size: size of each read page (default 64 KiB).
        maxmsgsize: largest frame accepted, -1 for no limit (libzmq's
            ZMQ_MAXMSGSIZE, which is per frame).
        max_frames: most frames accepted in one message.
    """

    __slots__ = ("_dec", "greeting")

    def __init__(
        self,
        *,
        greeting: bool = True,
        read_buf_size: int = READ_BUF_SIZE_DEFAULT,
        maxmsgsize: int = -1,
        max_frames: int = MAX_FRAMES_DEFAULT,
    ) -> None:
        self._dec = _zmtp.Decoder(
            greeting=greeting,
            read_buf_size=read_buf_size,
            maxmsgsize=maxmsgsize,
            max_frames=max_frames,
        )
        #: The peer's :class:`Greeting` once received.
        self.greeting: Optional[Greeting] = None

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> List[Event]:
        """Take received bytes; return the events they complete, in order.

        Raises:
            ProtocolError: the peer broke the protocol.  ``.code`` is an
                :class:`ErrorCode`, ``.events`` the events decoded before the
                error.  The decoder stays failed afterwards.
        """
        try:
            raw = self._dec.feed(data)
        except ProtocolError as exc:
            exc.code = ErrorCode(exc.code)
            exc.events = [self._event(e) for e in exc.events]
            raise
        return [self._event(e) for e in raw]

    def _event(self, raw: tuple) -> Event:
        kind = raw[0]
        if kind == _zmtp.EV_MESSAGE:
            return Message(raw[1])
        if kind == _zmtp.EV_COMMAND:
            return parse_command(raw[1])
        g = Greeting(raw[1], raw[2], raw[3], raw[4], raw[5] if raw[5] >= 0 else None)
        self.greeting = g
        return g

    def release_idle(self) -> None:
        """Drop the read page if nothing is pending in it."""
        self._dec.release_idle()

    @property
    def pending(self) -> int:
        """Bytes received and not yet returned as events."""
        return self._dec.pending

    @property
    def holds_page(self) -> bool:
        """True while the decoder holds a read page."""
        return self._dec.holds_page

    @property
    def error(self) -> Optional[ErrorCode]:
        """The :class:`ErrorCode` once the decoder has failed, else None."""
        code = self._dec.error
        return None if code is None else ErrorCode(code)

    @property
    def reason(self) -> Optional[str]:
        """The readable reason once the decoder has failed, else None."""
        return self._dec.reason


def encode_properties(props: Union[Mapping[str, Union[str, bytes]], Iterable[Tuple[Union[str, bytes], Union[str, bytes]]]]) -> bytes:
    """READY metadata alone (without the command header), for tests and tools."""
    ready = encode_ready(props)
    # Strip the frame header (2 or 9 octets) and the name "\x05READY".
    header = 2 if ready[0] & 0x02 == 0 else 9
    return ready[header + 6 :]
