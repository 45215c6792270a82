#!/usr/bin/env python3
"""Network fuzzer of the real zmtp engine (issue 7), driven by atheris.

In the spirit of libzmq's tests/test_bind_null_fuzzer.cpp and
test_connect_null_fuzzer.cpp: each input is the byte stream a raw TCP peer
sends to a zmtp socket, through the kernel, the backend, the engine's
handshake, routing and decoder, while a well-behaved pyzmq peer stays
connected to the same zmtp socket the whole time.

Input format (see fuzz/README.md, "Network fuzzer"):

    byte 0  zmtp socket type: value % 11, in zmtp/libzmq order
            (PAIR PUB SUB REQ REP DEALER ROUTER PULL PUSH XPUB XSUB)
    byte 1  control
            bit 0     side: 0 the zmtp socket is bound and the raw peer
                      connects to it; 1 the zmtp socket connects to the
                      fuzzer's listening raw socket
            bits 1-2  prefix sent before the payload: 0 nothing, 1 a valid
                      ZMTP 3.1 NULL greeting, 2 greeting + READY of a
                      compatible socket type, 3 a ZMTP 3.0 greeting + READY
            bits 3-4  how the raw peer ends: 0 shutdown(SHUT_WR) and read
                      until zmtp closes, 1 close() at once, 2 close() with
                      SO_LINGER 0 (RST), 3 stay open while the good peer does
                      its round trip, then as 0
            bits 5-7  number of split points (0..7)
    byte 2  bits 0-3: which compatible socket type the READY announces;
            bit 4: READY also carries an Identity property;
            bit 5: the good peer disconnects and reconnects once the raw
            peer is connected (so the raw connection comes first in the
            zmtp socket's connection list)
    then one byte per split point: a chunk length - 1 (1..256 bytes)
    rest    the payload: the bytes after the prefix

The prefix and payload are one stream, cut into chunks at the chosen
lengths (the last chunk is the rest); after each chunk the engine is
stepped once (``getsockopt(EVENTS)`` runs ``zm_sock_process``), so each
chunk is a separate ``recv()`` in the engine.

After each input, checked (a failure raises :class:`Finding`):

* the good pyzmq peer gets its round trip (it is connected to the zmtp
  socket the whole time, or reconnects during the input with byte 2 bit 5;
  with end mode 3 also while the raw peer is still connected);
* ``stats()`` counted the raw connection (accepted / connected,
  disconnected) and exactly the protocol errors and failed handshakes the
  oracle predicts from the bytes sent (:func:`expected_outcome`: the codec's
  own decoder for framing errors, plus the engine's handshake rules).  With
  end modes 1 and 2 the connection may be reset before zmtp has read
  everything, so there the counts may only be lower;
* the application received exactly the raw peer's messages that the
  oracle decodes, in order, byte for byte (:meth:`Harness._check_delivery`);
* what zmtp sent to the raw peer decodes as valid ZMTP (its greeting, a
  READY with its own Socket-Type, maybe an ERROR, messages);
* the process's descriptor count is back to its baseline (no fd leak) and
  live read pages are back near theirs;
* the process does not crash (under the sanitizer build ASan/UBSan abort on
  any memory error or undefined behaviour in the extension).

One zmtp socket (and one good peer) per socket type is made on first use and
reused for every input of that type.

Run: ``bash fuzz/net_run.sh SECONDS`` (builds the instrumented venv).
Replay without atheris: ``python fuzz/net_fuzz.py --replay FILE_OR_DIR...``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import zmq

import zmtp
from zmtp import _zmtp, codec
from zmtp.codec import ErrorCode, ProtocolError

TYPES = ["PAIR", "PUB", "SUB", "REQ", "REP", "DEALER", "ROUTER", "PULL", "PUSH", "XPUB", "XSUB"]

#: Mirror of zm_socktype_compatible() (src/engine.c; RFC 28/29/30/31 pairs):
#: the Socket-Type values a zmtp socket of each type accepts from its peer.
COMPAT = {
    "PAIR": ("PAIR",),
    "PUB": ("SUB", "XSUB"),
    "SUB": ("PUB", "XPUB"),
    "REQ": ("REP", "ROUTER"),
    "REP": ("REQ", "DEALER"),
    "DEALER": ("REP", "DEALER", "ROUTER"),
    "ROUTER": ("REQ", "DEALER", "ROUTER"),
    "PULL": ("PUSH",),
    "PUSH": ("PULL",),
    "XPUB": ("SUB", "XSUB"),
    "XSUB": ("PUB", "XPUB"),
}

#: ZMTP/2.0's socket-type octets (libzmq's numbers, RFC 15's 0..8 and
#: libzmq 3.x's XPUB 9, XSUB 10)
V2_TYPES = ("PAIR", "PUB", "SUB", "REQ", "REP", "DEALER", "ROUTER", "PULL", "PUSH", "XPUB", "XSUB")

#: The good pyzmq peer of each zmtp socket type.
GOOD_PEER = {
    "PAIR": zmq.PAIR, "PUB": zmq.SUB, "SUB": zmq.PUB, "REQ": zmq.REP, "REP": zmq.REQ,
    "DEALER": zmq.DEALER, "ROUTER": zmq.DEALER, "PULL": zmq.PUSH, "PUSH": zmq.PULL,
    "XPUB": zmq.SUB, "XSUB": zmq.PUB,
}
GOOD_ID = b"good"
#: zmtp types whose application can receive (the harness drains them).
RECEIVERS = {"PAIR", "SUB", "REP", "DEALER", "ROUTER", "PULL", "XPUB", "XSUB"}

PREFIX_NONE, PREFIX_GREETING, PREFIX_READY, PREFIX_READY30 = range(4)
END_GRACEFUL, END_CLOSE, END_RESET, END_KEEP_OPEN = range(4)
END_NAMES = ["graceful", "close", "reset", "keep-open"]
PREFIX_NAMES = ["none", "greeting", "greeting+ready", "greeting3.0+ready"]


class Finding(AssertionError):
    """zmtp misbehaved on this input.  ``kind`` names the check (for
    de-duplication), the message says what happened."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"[{kind}] {message}")
        self.kind = kind


# ------------------------------------------------------------------ input


@dataclass
class NetInput:
    ztype: str
    side: str  # "bind": the raw peer connects; "connect": zmtp connects
    prefix_mode: int
    end_mode: int
    peer_type: str
    identity: bool
    reconnect: bool
    chunks: List[bytes]
    prefix: bytes
    payload: bytes

    @property
    def stream(self) -> bytes:
        return self.prefix + self.payload

    def describe(self) -> str:
        return (f"{self.ztype} side={self.side} prefix={PREFIX_NAMES[self.prefix_mode]}"
                f"{'(' + self.peer_type + (',id' if self.identity else '') + ')' if self.prefix_mode >= 2 else ''}"
                f" end={END_NAMES[self.end_mode]}{' good-reconnects' if self.reconnect else ''}"
                f" chunks={[len(c) for c in self.chunks]}")


def greeting(minor: int = 1) -> bytes:
    g = bytearray(codec.encode_greeting(1, b"NULL", False))
    g[11] = minor
    return bytes(g)


def ready(peer_type: str, identity: bool) -> bytes:
    props = [("Socket-Type", peer_type)]
    if identity:
        props.append(("Identity", "fuzz"))
    return codec.encode_ready(props)


def parse_input(data: bytes) -> NetInput:
    """Decode the fuzzer's input (format in the module docstring)."""
    b = data + b"\0" * max(0, 3 - len(data))
    ztype = TYPES[b[0] % len(TYPES)]
    ctl = b[1]
    side = "connect" if ctl & 1 else "bind"
    prefix_mode = (ctl >> 1) & 3
    end_mode = (ctl >> 3) & 3
    nsplit = (ctl >> 5) & 7
    compat = COMPAT[ztype]
    peer_type = compat[(b[2] & 0x0F) % len(compat)]
    identity = bool(b[2] & 0x10)
    reconnect = bool(b[2] & 0x20)
    pos = 3
    lengths = []
    for _ in range(nsplit):
        if pos < len(data):
            lengths.append(data[pos] + 1)
            pos += 1
    payload = data[pos:] if pos < len(data) else b""
    if prefix_mode == PREFIX_NONE:
        prefix = b""
    elif prefix_mode == PREFIX_GREETING:
        prefix = greeting(1)
    else:
        prefix = greeting(1 if prefix_mode == PREFIX_READY else 0) + ready(peer_type, identity)
    stream = prefix + payload
    chunks = []
    i = 0
    for n in lengths:
        if i >= len(stream):
            break
        chunks.append(stream[i : i + n])
        i += n
    if i < len(stream):
        chunks.append(stream[i:])
    return NetInput(ztype, side, prefix_mode, end_mode, peer_type, identity, reconnect, chunks, prefix, payload)


def make_input(ztype: str, payload: bytes, side: str = "bind", prefix_mode: int = PREFIX_NONE,
               end_mode: int = END_GRACEFUL, peer_index: int = 0, identity: bool = False,
               splits: Tuple[int, ...] = (), reconnect: bool = False) -> bytes:
    """The inverse of :func:`parse_input` (for seeds and regression tests)."""
    assert len(splits) <= 7 and all(1 <= n <= 256 for n in splits)
    ctl = (1 if side == "connect" else 0) | (prefix_mode << 1) | (end_mode << 3) | (len(splits) << 5)
    head = bytes([TYPES.index(ztype), ctl,
                  (peer_index & 0x0F) | (0x10 if identity else 0) | (0x20 if reconnect else 0)])
    return head + bytes(n - 1 for n in splits) + payload


# ------------------------------------------------------------------ oracle


@dataclass
class Outcome:
    """What the engine must have counted for one raw connection."""

    protocol_errors: Dict[int, int] = field(default_factory=dict)
    handshake_failed: int = 0
    active: bool = False  # the handshake completed (READY accepted)
    closed_by_zmtp: bool = False  # zmtp closes it on its own (error, refusal, ERROR cmd)
    reason: str = "valid (or truncated) stream"
    #: messages the peer sent once active (each a list of frame bytes), in
    #: order: what the engine must pass up, before type-specific handling
    messages: List[List[bytes]] = field(default_factory=list)
    #: the Identity of the peer's accepted READY (ROUTER routing id)
    identity: Optional[bytes] = None


def expected_outcome(ztype: str, stream: bytes, pair_taken: bool = True) -> Outcome:
    """What the engine counts when a peer sends `stream` then EOF, read in
    full.  Framing errors come from the codec's decoder (the same C decoder
    the engine runs, fuzzed on its own by fuzz/decoder_fuzz.c); the rest
    mirrors the handshake rules of src/engine.c (conn_on_event,
    conn_on_ready), which docs/architecture.md describes:

    * the peer's mechanism must be NULL (else MECHANISM error + failed
      handshake);
    * until READY: a message, or a command other than READY, is refused
      (failed handshake, no protocol error); a peer's ERROR closes (failed
      handshake);
    * READY needs a compatible Socket-Type (else refused); a PAIR socket
      refuses a second peer (the good peer holds the pair, unless
      `pair_taken` is False);
    * a decoder error counts its code, and a failed handshake only when the
      greeting was not complete;
    * once active, a peer's ERROR closes without counting;
    * a ZMTP/2.0 greeting (revision 0x01, engine_conn.c's
      conn_on_greeting_v2): its socket-type octet must be a compatible
      type 0..10 (else V2_SOCKET_TYPE + failed handshake); its first
      message is the identity (PAIR's second peer refused there), then the
      connection is active.
    """
    dec = codec.Decoder(greeting=True)
    err: Optional[int] = None
    try:
        events = dec.feed(stream)
    except ProtocolError as exc:
        events = exc.events
        err = int(exc.code)
    # Until READY no frame may be larger than HANDSHAKE_FRAME_MAX (engine.h):
    # a longer one is refused at its header, MSG_TOO_LARGE.
    try:
        codec.Decoder(greeting=True, maxmsgsize=_zmtp.HANDSHAKE_FRAME_MAX).feed(stream)
    except ProtocolError as exc:
        if exc.code == ErrorCode.MSG_TOO_LARGE and not any(isinstance(ev, codec.Ready) for ev in exc.events):
            events, err = exc.events, int(exc.code)
    got_greeting = False
    active = False
    msgs: List[List[bytes]] = []
    ident: Optional[bytes] = None
    v2_identity = False
    for ev in events:
        if isinstance(ev, codec.Greeting) and ev.socket_type is not None:
            got_greeting = True
            name = V2_TYPES[ev.socket_type] if ev.socket_type < len(V2_TYPES) else None
            if name is None or name not in COMPAT[ztype]:
                return Outcome({int(ErrorCode.V2_SOCKET_TYPE): 1}, 1, False, True,
                               f"ZMTP/2.0 socket type {ev.socket_type}")
            v2_identity = True
        elif isinstance(ev, codec.Message) and v2_identity:
            v2_identity = False
            if ztype == "PAIR" and pair_taken:
                return Outcome({}, 1, False, True, "PAIR already has a peer")
            active = True
            ident = ev.frames[0].bytes
        elif isinstance(ev, codec.Greeting):
            got_greeting = True
            if ev.mechanism != b"NULL":
                return Outcome({int(ErrorCode.MECHANISM): 1}, 1, False, True, "mechanism is not NULL")
        elif isinstance(ev, codec.Message):
            if not active:
                return Outcome({}, 1, False, True, "message before READY", msgs)
            msgs.append([f.bytes for f in ev.frames])
        elif not active:
            if isinstance(ev, codec.Ready):
                st = ev.socket_type
                if st is None:
                    return Outcome({}, 1, False, True, "READY without Socket-Type")
                if st.decode("latin-1") not in COMPAT[ztype]:
                    return Outcome({}, 1, False, True, f"incompatible Socket-Type {st!r}")
                if ztype == "PAIR" and pair_taken:
                    return Outcome({}, 1, False, True, "PAIR already has a peer")
                active = True
                ident = ev.identity
            elif isinstance(ev, codec.Error):
                return Outcome({}, 1, False, True, "ERROR command in the handshake")
            else:
                return Outcome({}, 1, False, True, f"{type(ev).__name__} before READY")
        elif isinstance(ev, codec.Error):
            return Outcome({}, 0, True, True, "ERROR command after READY", msgs, ident)
    if err is not None:
        failed = 0 if got_greeting and err != ErrorCode.V2_GREETING else 1  # (2.0's identity)
        return Outcome({err: 1}, failed, active, True,
                       f"decoder error {ErrorCode(err).name}", msgs, ident)
    return Outcome({}, 0, active, False, messages=msgs, identity=ident)


def delivered_form(ztype: str, messages: List[List[bytes]]) -> Optional[List[List[bytes]]]:
    """What the application of a zmtp socket of `ztype` receives from a peer
    that sent `messages`, or None where the harness does not check it
    (PUB/PUSH never receive; REQ drops what is not a reply; XPUB turns
    subscriptions into its own messages).  SUB and XSUB are subscribed to
    everything; ROUTER's routing id frame is checked apart."""
    if ztype in ("PUB", "PUSH", "REQ", "XPUB"):
        return None
    if ztype == "REP":  # the envelope up to the first empty frame is kept back
        out = []
        for m in messages:
            i = next((j for j, f in enumerate(m) if not f), None)
            if i is not None and i + 1 < len(m):
                out.append(m[i + 1 :])
        return out
    return list(messages)


#: what zmtp sends before its peer's first 11 octets (signature, major 3)
FIRST_STAGE = codec.encode_greeting(1, b"NULL", False)[:11]


def check_zmtp_output(ztype: str, data: bytes) -> None:
    """What zmtp wrote to the raw peer must be valid ZMTP: a 3.x NULL
    greeting, READY with its own Socket-Type, then commands/messages; or,
    to a ZMTP/2.0 peer, the first stage then 2.0's socket-type octet and
    identity frame (octet 12 is 0, a final-short frame, where 3.x has its
    mechanism's first letter), then 2.0 frames."""
    if len(data) > 12 and data[:11] == FIRST_STAGE and data[12] == 0:
        want = {"XPUB": 1, "XSUB": 2}.get(ztype, V2_TYPES.index(ztype))
        try:  # read as the 2.0 greeting it is (revision octet 0x01)
            events = codec.Decoder(greeting=True).feed(data[:10] + b"\x01" + data[11:])
        except ProtocolError as exc:
            raise Finding("bad-output", f"zmtp {ztype} wrote invalid ZMTP/2.0: {exc.code.name} "
                          f"{exc.reason!r}; bytes {data[:200]!r}") from None
        if events[0].socket_type != want:
            raise Finding("bad-output", f"zmtp {ztype} greets a 2.0 peer as {events[0]!r}")
        return
    dec = codec.Decoder(greeting=True)
    try:
        events = dec.feed(data)
    except ProtocolError as exc:
        raise Finding("bad-output", f"zmtp {ztype} wrote invalid ZMTP: {exc.code.name} "
                      f"{exc.reason!r} after {exc.events!r}; bytes {data[:200]!r}") from None
    if not events:
        # zmtp sends its greeting in libzmq's two stages: the signature and
        # major version at once, the rest after the peer's first 11 octets
        if data != FIRST_STAGE:
            raise Finding("bad-output", f"zmtp {ztype} sent no complete greeting: {data!r}")
        return
    g = events[0]
    if not isinstance(g, codec.Greeting) or g.major != 3 or g.mechanism != b"NULL":
        raise Finding("bad-output", f"zmtp {ztype} greeting is {g!r}")
    if len(events) > 1:
        r = events[1]
        if not isinstance(r, codec.Ready) or r.socket_type != ztype.encode():
            raise Finding("bad-output", f"zmtp {ztype} second event is {r!r}, not its READY")


# ------------------------------------------------------------------ rig


def _short(msg: List[bytes]) -> str:
    r = repr(msg)
    return r if len(r) <= 300 else r[:300] + f"... ({sum(len(f) for f in msg)} bytes in {len(msg)} frames)"


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _symbolizer_running() -> bool:
    """A child llvm-symbolizer / addr2line (started by the sanitizer runtime)."""
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as fh:
                kids = fh.read().split()
        except OSError:
            continue
        for pid in kids:
            try:
                with open(f"/proc/{pid}/comm") as fh:
                    comm = fh.read()
            except OSError:
                continue
            if "symbolizer" in comm or "addr2line" in comm:
                return True
    return False


def _fd_table() -> Dict[int, str]:
    """fd -> what it is (readlink of /proc/self/fd/N)."""
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink("/proc/self/fd/" + name)
        except OSError:  # the directory's own fd, gone by now
            pass
    return out


class Rig:
    """One zmtp socket of a type (bound; also connects out for side
    "connect" inputs) and its good pyzmq peer, connected to it the whole
    time."""

    def __init__(self, harness: "Harness", ztype: str) -> None:
        self.h = harness
        self.ztype = ztype
        self.counter = 0
        #: every message the zmtp application received during this input
        self.log: List[List[bytes]] = []
        #: what the good peer sent to the zmtp socket lately (recent tokens)
        self.good_msgs: Dict[Tuple[bytes, ...], None] = {}
        z = harness.zctx.socket(getattr(zmtp, ztype))
        self.z = z
        self.configure(z, True)
        z.linger = 0
        z.sndtimeo = harness.timeout_ms
        z.rcvtimeo = harness.timeout_ms
        # Only the raw "connect" side is ever dialled; a redial after it is
        # lost would race with disconnect(): each input dials afresh.
        z.reconnect_ivl = 3_600_000
        if ztype == "REQ":
            # A REQ only drops stray messages inside recv() (which needs a
            # request in flight, i.e. the raw peer gone): with a RCVHWM it
            # could stop reading a hostile REP before seeing its EOF.
            z.rcvhwm = 0
        z.bind("tcp://127.0.0.1:*")
        self.endpoint = z.last_endpoint.decode()
        if ztype == "SUB":
            z.subscribe(b"")
        self.good = self._new_good()
        if ztype == "XSUB":
            z.send(b"\x01")  # subscribe to everything
        self._warm_up()
        # The calling thread's backend (an io_uring ring or an epoll fd) is
        # opened by its first wait: open it now, before the fd baseline.
        z.poll(1)

    # -- helpers

    def configure(self, sock, is_zmtp: bool) -> None:
        """Set a socket's security options before it binds or connects
        (NULL: none; MechRig sets PLAIN or CURVE)."""

    def _new_good(self) -> "zmq.Socket":
        """A good pyzmq peer, connected to the zmtp socket."""
        g = self.h.pctx.socket(GOOD_PEER[self.ztype])
        g.linger = 0
        g.rcvtimeo = self.h.timeout_ms
        g.sndtimeo = self.h.timeout_ms
        if self.ztype in ("ROUTER", "DEALER"):
            g.setsockopt(zmq.ROUTING_ID, GOOD_ID)
        if GOOD_PEER[self.ztype] == zmq.SUB:
            g.setsockopt(zmq.SUBSCRIBE, b"")
        self.configure(g, False)
        g.connect(self.endpoint)
        return g

    def token(self) -> bytes:
        """A fresh token; random so that the fuzzer cannot send one (its
        comparison hooks see the tokens the harness compares)."""
        self.counter += 1
        return b"tok:%d:%s" % (self.counter, os.urandom(8).hex().encode())

    def good_sent(self, *frames: bytes) -> None:
        """The good peer sent this to the zmtp socket."""
        self.good_msgs[frames] = None
        while len(self.good_msgs) > 256:
            del self.good_msgs[next(iter(self.good_msgs))]

    def _warm_up(self) -> None:
        """Until the good peer is connected (and subscribed) both ways."""
        deadline = time.monotonic() + 10
        if self.ztype in ("PUB", "XPUB", "SUB", "XSUB"):
            while True:
                t = self.token()
                if self.ztype in ("PUB", "XPUB"):
                    self.z.send(t)
                    if self.good.poll(20):
                        self.good.recv()
                        break
                else:
                    self.good.send(t)
                    self.good_sent(t)
                    if self.z.poll(20):
                        self.z.recv()
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.ztype}: the good peer never got through")
            self.drain()
        self.round_trip("warm-up")

    def reconnect_good(self, step) -> None:
        """The good peer goes (its socket is closed: pyzmq's disconnect()
        keeps the TCP connection), zmtp counts it gone, a new good peer
        connects; then (publish-subscribe) until its subscription, or
        zmtp's, is through again.  `step()` lets the engine work."""
        z = self.z
        deadline = time.monotonic() + self.h.timeout_ms / 1000
        gone = z.stats()["disconnected"] + 1
        self.good.close(linger=0)
        while z.stats()["disconnected"] < gone:
            if time.monotonic() > deadline:
                raise Finding("not-counted", f"zmtp {self.ztype} did not notice the good peer's disconnect")
            step()
        self.good = self._new_good()
        if self.ztype not in ("PUB", "XPUB", "SUB", "XSUB"):
            return
        while True:
            t = self.token()
            if self.ztype in ("PUB", "XPUB"):
                self._z_send([t], deadline, "resubscribing after the good peer reconnected")
                if self.good.poll(10):
                    self._good_expect(t, deadline, "resubscribing")
                    return
            else:
                self.good_sent(t)
                self.good.send(t)
                if self.z.poll(10):
                    msg = self.z.recv_multipart()
                    self.log.append(msg)
                    if msg == [t]:
                        return
            if time.monotonic() > deadline:
                raise Finding("starved", f"zmtp {self.ztype}: no message got through after the good peer reconnected")

    def drain(self) -> None:
        """Receive and drop what the raw peer delivered to the application
        (REP answers each request, as it must before its next recv)."""
        if self.ztype not in RECEIVERS:
            return
        while True:
            try:
                self.log.append(self.z.recv_multipart(zmtp.DONTWAIT))
            except zmtp.Again:
                return
            if self.ztype == "REP":
                self.z.send(b"")

    def _z_expect(self, want: List[bytes], deadline: float, what: str) -> None:
        """zmtp receives `want`; anything else (from the raw peer, or a
        stale token) is dropped."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Finding("starved", f"zmtp {self.ztype} never received {want!r} from the good peer ({what})")
            self.z.rcvtimeo = max(1, int(left * 1000))
            try:
                msg = self.z.recv_multipart()
            except zmtp.Again:
                continue
            self.log.append(msg)
            if msg == want:
                return
            if self.ztype == "REP":
                self.z.send(b"")

    def _good_expect(self, want: bytes, deadline: float, what: str) -> None:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.good.poll(max(1, int(left * 1000))):
                raise Finding("starved", f"the good {zmq.SocketType(GOOD_PEER[self.ztype]).name} peer never "
                              f"received {want!r} from zmtp {self.ztype} ({what})")
            parts = self.good.recv_multipart()
            if parts == [want]:
                return
            if not parts[-1].startswith((b"tok:", b"re:tok:")):
                raise Finding("misrouted", f"the good peer of zmtp {self.ztype} received {parts!r}")

    def _z_send_until_good(self, t: bytes, deadline: float, what: str) -> None:
        """Round-robin (DEALER, PUSH): send `t` until the good peer has a
        copy; the others go to the raw peer (or wait in the good peer's
        queue as stale tokens).  A new good connection gets messages only
        once its handshake is done."""
        while True:
            self._z_send([t], deadline, what)
            left = deadline - time.monotonic()
            if left > 0 and self.good.poll(max(1, min(20, int(left * 1000)))):
                self._good_expect(t, deadline, what)
                return
            if time.monotonic() > deadline:
                raise Finding("starved", f"the good {zmq.SocketType(GOOD_PEER[self.ztype]).name} peer never "
                              f"received {t!r} from zmtp {self.ztype} ({what})")

    def _z_send(self, parts: List[bytes], deadline: float, what: str) -> None:
        self.z.sndtimeo = max(1, int((deadline - time.monotonic()) * 1000))
        try:
            self.z.send_multipart(parts)
        except zmtp.Again:
            raise Finding("starved", f"zmtp {self.ztype} could not send {parts!r} ({what})") from None

    def round_trip(self, what: str = "after the input") -> None:
        """The good peer's exchange with the zmtp socket, both ways where
        the pattern allows."""
        t = self.token()
        re = b"re:" + t
        deadline = time.monotonic() + self.h.timeout_ms / 1000
        k = self.ztype
        if k == "PAIR":
            self._z_send([t], deadline, what)
            self._good_expect(t, deadline, what)
            self.good_sent(re)
            self.good.send(re)
            self._z_expect([re], deadline, what)
        elif k in ("PUB", "XPUB"):
            self._z_send([t], deadline, what)
            self._good_expect(t, deadline, what)
        elif k in ("SUB", "XSUB", "PULL"):
            self.good_sent(t)
            self.good.send(t)
            self._z_expect([t], deadline, what)
        elif k == "REQ":
            self._z_send([t], deadline, what)
            if not self.good.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                raise Finding("starved", f"the good REP peer never received the request of zmtp REQ ({what})")
            got = self.good.recv()
            if got != t:
                raise Finding("misrouted", f"the good REP peer got {got!r}, not {t!r}")
            self.good_sent(re)
            self.good.send(re)
            self._z_expect([re], deadline, what)
        elif k == "REP":
            self.good_sent(t)
            self.good.send(t)
            self._z_expect([t], deadline, what)
            self._z_send([re], deadline, what)
            self._good_expect(re, deadline, what)
        elif k == "DEALER":
            self._z_send_until_good(t, deadline, what)
            self.good_sent(re)
            self.good.send(re)
            self._z_expect([re], deadline, what)
        elif k == "ROUTER":
            self.good_sent(GOOD_ID, t)
            self.good.send(t)
            self._z_expect([GOOD_ID, t], deadline, what)
            self._z_send([GOOD_ID, re], deadline, what)
            self._good_expect(re, deadline, what)
        elif k == "PUSH":
            self._z_send_until_good(t, deadline, what)
        else:  # pragma: no cover
            raise AssertionError(k)
        self.z.rcvtimeo = self.h.timeout_ms
        self.z.sndtimeo = self.h.timeout_ms

    def close(self) -> None:
        self.good.close(linger=0)
        self.z.close(linger=0)


# ------------------------------------------------------------------ harness


class Harness:
    """Runs inputs (:meth:`run`) against one reused rig per socket type.

    keep_going: on a :class:`Finding`, record it (``findings``; saved under
    ``artifact_dir`` when set), rebuild that type's rig and return normally,
    so a long run is not ended by one finding.  Memory errors still abort
    (the sanitizers)."""

    def __init__(self, timeout_ms: int = 5000, keep_going: bool = False,
                 artifact_dir: Optional[str] = None, verbose: bool = False) -> None:
        self.timeout_ms = timeout_ms
        self.keep_going = keep_going
        #: NET_FUZZ_SKIP_KNOWN=1: do not play the open PAIR finding (each
        #: hit costs a 5 s timeout)
        self.skip_known = os.environ.get("NET_FUZZ_SKIP_KNOWN", "") not in ("", "0")
        self.artifact_dir = artifact_dir
        self.verbose = verbose
        self.zctx = zmtp.Context()
        self.pctx = zmq.Context()
        self.rigs: Dict[str, Rig] = {}
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.listen_ep = "tcp://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.fd_base = -1
        self.pages_base = -1
        self.runs = 0
        self.findings: Dict[str, int] = {}
        self.counts = {"invalid": 0, "valid": 0, "active": 0}

    # -- set-up

    def rig(self, ztype: str) -> Rig:
        r = self.rigs.get(ztype)
        if r is None:
            r = self.rigs[ztype] = Rig(self, ztype)
            self._rebase()
        return r

    def _rebase(self) -> None:
        self.fd_base = _fd_count()
        self.fd_table = _fd_table()
        self.pages_base = zmtp.memory_stats()["pages_live"]

    def close(self) -> None:
        for r in self.rigs.values():
            r.close()
        self.rigs.clear()
        self.listener.close()
        self.zctx.destroy(linger=0)
        self.pctx.destroy(linger=0)

    def __enter__(self) -> "Harness":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one input

    def run(self, data: bytes) -> Optional[Outcome]:
        """Play one input; raise Finding (unless keep_going) when zmtp
        misbehaves.  Returns the oracle's outcome."""
        self.runs += 1
        inp = parse_input(data)
        try:
            return self._run(inp)
        except Finding as f:
            if self.verbose:
                print(f"net_fuzz: FINDING on {inp.describe()}: {f}", file=sys.stderr)
            if not self.keep_going:
                raise
            self._record(f, data, inp.ztype, inp.describe(), f"stream: {inp.stream!r}\n")
            self._reset(inp.ztype, self.rig)
            return None

    def _record(self, f: Finding, data: bytes, key: str, describe: str, more: str = "") -> None:
        """Count a finding on `key` (a socket type or a mechanism target);
        keep the first five inputs of each kind in artifact_dir."""
        n = self.findings.get(f.kind + ":" + key, 0) + 1
        self.findings[f.kind + ":" + key] = n
        print(f"net_fuzz: finding #{n} {f.kind} on {describe}: {f}", file=sys.stderr, flush=True)
        if self.artifact_dir and n <= 5:
            os.makedirs(self.artifact_dir, exist_ok=True)
            name = f"finding-{f.kind}-{key}-{hashlib.sha1(data).hexdigest()[:16]}"
            path = os.path.join(self.artifact_dir, name)
            with open(path, "wb") as fh:
                fh.write(data)
            with open(path + ".txt", "w") as fh:
                fh.write(f"{describe}\n{f}\n{more}")

    def _reset(self, key: str, make: Any) -> None:
        """Drop the rig of `key` after a finding and make it anew (`make`)."""
        r = self.rigs.pop(key, None)
        if r is not None:
            try:
                r.z.disconnect(self.listen_ep)
            except zmtp.ZMQError:
                pass
            r.close()
        self._drain_listener()
        make(key)

    def _drain_listener(self) -> None:
        while True:
            try:
                s, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            s.close()

    def _step(self, rig: Rig, wait_ms: int = 0) -> None:
        """Let the engine work: one zm_sock_process (or a wait of up to
        wait_ms on the backend), then drain the application's messages."""
        if wait_ms > 0:
            rig.z.poll(wait_ms)
        else:
            rig.z.getsockopt(zmtp.EVENTS)
        rig.drain()

    def _run(self, inp: NetInput) -> Outcome:
        rig = self.rig(inp.ztype)
        z = rig.z
        deadline = time.monotonic() + self.timeout_ms / 1000
        rig.drain()
        rig.log = []
        before = z.stats()
        exp = expected_outcome(inp.ztype, inp.stream)
        # PAIR, good peer reconnecting: the raw peer's READY races with the
        # new good peer's for the pair; either may win.
        alt = None
        if inp.ztype == "PAIR" and inp.reconnect and exp.reason == "PAIR already has a peer":
            alt = expected_outcome(inp.ztype, inp.stream, pair_taken=False)
        self.counts["invalid" if exp.protocol_errors or exp.handshake_failed else "valid"] += 1
        self.counts["active"] += exp.active
        end_mode = inp.end_mode
        if end_mode == END_KEEP_OPEN and (
                inp.ztype == "REQ"  # its request could go to the raw peer and wait there forever
                # the raw peer may hold the pair (it won the race, or zmtp
                # dialled it: a connecting PAIR's first peer is its peer, as
                # in libzmq)
                or (inp.ztype == "PAIR" and inp.reconnect and (alt is not None or inp.side == "connect"))
                # the open PAIR finding (fuzz/README.md), when asked to skip it
                or (inp.ztype == "PAIR" and inp.reconnect and self.skip_known)):
            end_mode = END_GRACEFUL
        raw = self._open_raw(rig, inp, deadline)
        out = bytearray()
        eof = reset = False
        try:
            # zmtp's first byte (its greeting): the connection is in
            # HANDSHAKE on zmtp's side before the input starts.
            while not out:
                eof, reset = self._read_raw(raw, out)
                if eof or reset:
                    raise Finding("closed-early", f"zmtp {inp.ztype} closed the raw connection before it sent anything")
                if time.monotonic() > deadline:
                    raise Finding("no-greeting", f"zmtp {inp.ztype} sent no greeting to the raw peer")
                self._step(rig, 1)
            if inp.reconnect:
                rig.reconnect_good(lambda: self._step(rig, 1))
            sent_all, eof, reset = self._send_chunks(rig, raw, out, inp.chunks, eof, reset)
            self._end_raw(rig, raw, out, end_mode, eof, reset, deadline, f"zmtp {inp.ztype}", f" ({exp.reason})")
        finally:
            raw.close()
        self._await_lost(rig, z, before, 1 + inp.reconnect, deadline, f"zmtp {inp.ztype}", side=inp.side)
        after = z.stats()
        strict = end_mode in (END_GRACEFUL, END_KEEP_OPEN) and sent_all
        try:
            self._check_stats(inp, exp, before, after, strict)
        except Finding:
            if alt is None:
                raise
            self._check_stats(inp, alt, before, after, strict)  # the raw peer won the pair
        if eof and not reset and end_mode in (END_GRACEFUL, END_KEEP_OPEN):
            check_zmtp_output(inp.ztype, bytes(out))
        self._check_resources(rig, inp)
        rig.drain()
        if alt is not None:
            self._check_delivery(rig, inp, alt, strict=False)
        else:
            self._check_delivery(rig, inp, exp, strict)
        return exp

    def _send_chunks(self, rig: Rig, raw: socket.socket, out: bytearray, chunks: List[bytes],
                     eof: bool, reset: bool) -> Tuple[bool, bool, bool]:
        """Send the chunks one by one, zmtp stepped and its output read after
        each; (all sent, eof, reset): a send fails once zmtp closed."""
        for chunk in chunks:
            try:
                raw.sendall(chunk)
            except OSError:  # zmtp closed it (error or refusal)
                return False, eof, reset
            self._step(rig)
            e, r = self._read_raw(raw, out)
            eof, reset = eof or e, reset or r
        return True, eof, reset

    def _end_raw(self, rig: Rig, raw: socket.socket, out: bytearray, end_mode: int, eof: bool, reset: bool,
                 deadline: float, who: str, why: str = "") -> None:
        """End the raw peer's side as `end_mode` says: a round trip of the
        good peer first (KEEP_OPEN); an EOF that zmtp must answer by closing
        (GRACEFUL, KEEP_OPEN); or a reset on close (RESET)."""
        if end_mode == END_KEEP_OPEN:
            rig.round_trip("while the raw peer is connected")
        if end_mode in (END_GRACEFUL, END_KEEP_OPEN):
            try:
                raw.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            # zmtp must see the EOF and close its side.
            while not (eof or reset):
                if time.monotonic() > deadline + self.timeout_ms / 1000:
                    raise Finding("not-closed", f"{who} did not close the connection after the raw peer's EOF{why}")
                self._step(rig, 1)
                e, r = self._read_raw(raw, out)
                eof, reset = eof or e, reset or r
        elif end_mode == END_RESET:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    def _await_lost(self, rig: Rig, z: Any, before: dict, n: int, deadline: float, who: str, side: str) -> None:
        """zmtp has counted `n` connections lost since `before`; a dialling
        zmtp disconnects; then the good peer still makes a round trip."""
        while z.stats()["disconnected"] - before["disconnected"] < n:
            if time.monotonic() > deadline + 2 * self.timeout_ms / 1000:
                raise Finding("not-counted", f"{who} never counted the raw connection as disconnected "
                              f"(stats {z.stats()!r})")
            self._step(rig, 1)
        if side == "connect":
            try:
                z.disconnect(self.listen_ep)
            except zmtp.ZMQError as exc:
                raise Finding("disconnect", f"{who} disconnect() failed: {exc}") from None
        rig.round_trip()

    def _open_raw(self, rig: Rig, inp: NetInput, deadline: float) -> socket.socket:
        if inp.side == "bind":
            host, port = rig.endpoint[len("tcp://"):].rsplit(":", 1)
            raw = socket.create_connection((host, int(port)), timeout=self.timeout_ms / 1000)
        else:
            self._drain_listener()
            rig.z.connect(self.listen_ep)
            while True:
                try:
                    raw, _ = self.listener.accept()
                    break
                except (BlockingIOError, InterruptedError):
                    pass
                if time.monotonic() > deadline:
                    raise Finding("no-dial", f"zmtp {inp.ztype} never dialled {self.listen_ep}")
                self._step(rig, 1)
        raw.setblocking(False)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return raw

    @staticmethod
    def _read_raw(raw: socket.socket, out: bytearray) -> Tuple[bool, bool]:
        """Read what zmtp sent so far; (eof, reset)."""
        while True:
            try:
                b = raw.recv(65536)
            except (BlockingIOError, InterruptedError):
                return False, False
            except ConnectionResetError:
                return False, True
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                    return False, True
                raise
            if not b:
                return True, False
            out += b

    def _check_stats(self, inp: NetInput, exp: Outcome, before: dict, after: dict, strict: bool) -> None:
        d = {k: after[k] - before[k] for k in ("accepted", "connected", "disconnected", "handshake_failed")}
        errs = {}
        for code, n in after["protocol_errors"].items():
            dn = n - before["protocol_errors"].get(code, 0)
            if dn:
                errs[code] = dn
        # (+1 each for the good peer's reconnection)
        want_acc = (1 if inp.side == "bind" else 0) + inp.reconnect
        want_disc = 1 + inp.reconnect
        problems = []
        if d["accepted"] != want_acc:
            problems.append(f"accepted +{d['accepted']} (want +{want_acc})")
        if d["disconnected"] != want_disc:
            problems.append(f"disconnected +{d['disconnected']} (want +{want_disc})")
        want_conn = 1 if inp.side == "connect" and exp.active else 0
        if strict:
            if errs != exp.protocol_errors:
                problems.append(f"protocol_errors +{errs} (want +{exp.protocol_errors})")
            if d["handshake_failed"] != exp.handshake_failed:
                problems.append(f"handshake_failed +{d['handshake_failed']} (want +{exp.handshake_failed})")
            if d["connected"] != want_conn:
                problems.append(f"connected +{d['connected']} (want +{want_conn})")
        else:  # the peer may have reset the connection before zmtp read everything
            if any(code not in exp.protocol_errors or n > exp.protocol_errors[code] for code, n in errs.items()):
                problems.append(f"protocol_errors +{errs} (want at most +{exp.protocol_errors})")
            if d["handshake_failed"] > exp.handshake_failed:
                problems.append(f"handshake_failed +{d['handshake_failed']} (want at most +{exp.handshake_failed})")
            if d["connected"] > want_conn:
                problems.append(f"connected +{d['connected']} (want at most +{want_conn})")
        if problems:
            named = {ErrorCode(c).name: n for c, n in errs.items()}
            raise Finding("stats", f"zmtp {inp.ztype} ({inp.side}, {END_NAMES[inp.end_mode]}): "
                          f"{'; '.join(problems)}; oracle: {exp.reason}; errors counted {named}")

    def _check_delivery(self, rig: Rig, inp: NetInput, exp: Outcome, strict: bool) -> None:
        """The application got exactly the raw peer's messages, in order
        (all of them when zmtp read the whole stream, else the first ones),
        interleaved with the good peer's."""
        want = delivered_form(inp.ztype, exp.messages)
        if want is None:
            return
        i = 0
        rid = None
        for msg in rig.log:
            body = msg
            if inp.ztype == "ROUTER":
                if msg[0] == GOOD_ID:
                    if tuple(msg) in rig.good_msgs:
                        continue
                    raise Finding("delivery", f"zmtp ROUTER: unexpected message from the good peer {msg!r}")
                if rid is None:
                    rid = msg[0]
                    self._check_rid(inp, exp, rid)
                elif msg[0] != rid:
                    raise Finding("delivery", f"zmtp ROUTER: the raw peer's messages came with two routing ids, "
                                  f"{rid!r} and {msg[0]!r}")
                body = msg[1:]
            if i < len(want) and body == want[i]:
                i += 1
                continue
            if tuple(msg) in rig.good_msgs:
                continue
            raise Finding("delivery", f"zmtp {inp.ztype} ({inp.side}, {END_NAMES[inp.end_mode]}) passed up "
                          f"{_short(msg)}; the raw peer's next message is "
                          f"{_short(want[i]) if i < len(want) else 'none'} ({i} of {len(want)} delivered)")
        if strict and i != len(want):
            raise Finding("delivery", f"zmtp {inp.ztype} ({inp.side}, {END_NAMES[inp.end_mode]}) passed up "
                          f"{i} of the raw peer's {len(want)} messages; first missing {_short(want[i])}")

    @staticmethod
    def _check_rid(inp: NetInput, exp: Outcome, rid: bytes) -> None:
        ident = exp.identity
        if ident and len(ident) <= 255 and ident[0] != 0 and ident != GOOD_ID:
            if rid != ident:
                raise Finding("delivery", f"zmtp ROUTER: routing id {rid!r}, the peer's Identity was {ident!r}")
        elif len(rid) != 5 or rid[0] != 0:
            raise Finding("delivery", f"zmtp ROUTER: generated routing id {rid!r} is not 00 + 4 bytes "
                          f"(peer Identity {ident!r})")

    def _check_resources(self, rig: Rig, inp: NetInput) -> None:
        deadline = time.monotonic() + 2
        while True:
            fds = _fd_count()
            pages = zmtp.memory_stats()["pages_live"]
            if fds <= self.fd_base and pages <= self.pages_base + 4:
                return
            if time.monotonic() > deadline:
                break
            self._step(rig, 1)
        if fds > self.fd_base:
            now = _fd_table()
            new = {fd: what for fd, what in now.items() if self.fd_table.get(fd) != what}
            gone = {fd: what for fd, what in self.fd_table.items() if fd not in now}
            if _symbolizer_running() and all(w.startswith("pipe:") for w in new.values()):
                # libFuzzer's NEW_FUNC lines start llvm-symbolizer, which
                # keeps a pipe pair open to it: not zmtp's.
                self._rebase()
                return
            raise Finding("fd-leak", f"zmtp {inp.ztype}: {fds} descriptors open after the input, {self.fd_base} "
                          f"at set-up; new or changed: {new}, closed: {gone}")
        raise Finding("page-leak", f"zmtp {inp.ztype}: {pages} read pages live after the input, {self.pages_base} at "
                      f"set-up ({zmtp.memory_stats()})")


# ------------------------------------------------------------------ mechanisms
#
# NET_FUZZ_TARGET=mech (net_run.sh): the zmtp socket speaks PLAIN or CURVE
# (see "Mechanism targets" in fuzz/README.md).  Input:
#
#     byte 0  target: value % 4: PLAIN server, PLAIN client, CURVE server,
#             CURVE client (the zmtp socket's role; the raw peer plays the
#             other)
#     byte 1  as for NULL: bit 0 side, bits 1-2 prefix, bits 3-4 end,
#             bits 5-7 number of split points
#     byte 2  unused (kept for the format's shape)
#     then the split points and the payload, as for NULL
#
# Prefixes (what the raw peer does before the payload): 0 nothing; 1 its
# greeting (the mechanism's name, the other role); 2 the greeting and its
# first correct command (PLAIN: HELLO with good credentials, or WELCOME;
# CURVE server target: a valid HELLO; CURVE client target: as 1);
# 3 the whole handshake as a correct peer, answering zmtp's commands as
# they come (CURVE boxes through libsodium by ctypes), then every payload
# chunk goes sealed as one MESSAGE (CURVE: the chunk is the plaintext,
# flags byte first) or as one frame (PLAIN).
#
# Checked: as for NULL (the good peer's round trip, the connection closed
# and counted, no fd or page left, no crash), plus: zmtp's greeting names
# the mechanism and its role; an unauthenticated raw CURVE peer (prefix < 3)
# never gets a message to the application, nor zmtp past WELCOME (as
# server) or HELLO (as client) on the wire; with prefix 3
# the application gets exactly the sealed messages (CURVE) or frames
# (PLAIN) the raw peer sent, in order (a prefix of them when the peer
# reset the connection).

MECH_TARGETS = ["PLAIN-S", "PLAIN-C", "CURVE-S", "CURVE-C"]
PLAIN_USER, PLAIN_PASS = b"admin", b"secret"
META_DEALER = b"\x0bSocket-Type" + (6).to_bytes(4, "big") + b"DEALER"


class _Sodium:
    """The few libsodium calls the raw CURVE peer needs (ctypes; the
    system's libsodium, which zmtp's CURVE uses too)."""

    def __init__(self) -> None:
        import ctypes
        import ctypes.util

        self.ct = ctypes
        names = [os.environ.get("ZMTP_LIBSODIUM") or "", "libsodium.so.23", "libsodium.so.26",
                 ctypes.util.find_library("sodium") or ""]
        self.lib = None
        for n in names:
            if n:
                try:
                    self.lib = ctypes.CDLL(n)
                    break
                except OSError:
                    continue
        if self.lib is None:
            raise RuntimeError("net_fuzz: CURVE targets need libsodium")
        self.lib.sodium_init()

    def keypair(self) -> Tuple[bytes, bytes]:
        """A fresh (public, secret) pair."""
        pk = self.ct.create_string_buffer(32)
        sk = self.ct.create_string_buffer(32)
        self.lib.crypto_box_keypair(pk, sk)
        return pk.raw, sk.raw

    def box(self, m: bytes, nonce: bytes, pk: bytes, sk: bytes) -> bytes:
        """crypto_box_easy."""
        c = self.ct.create_string_buffer(len(m) + 16)
        self.lib.crypto_box_easy(c, m, self.ct.c_ulonglong(len(m)), nonce, pk, sk)
        return c.raw

    def open(self, c: bytes, nonce: bytes, pk: bytes, sk: bytes) -> Optional[bytes]:
        """crypto_box_open_easy: the plaintext, or None."""
        if len(c) < 16:
            return None
        m = self.ct.create_string_buffer(max(1, len(c) - 16))
        rc = self.lib.crypto_box_open_easy(m, c, self.ct.c_ulonglong(len(c)), nonce, pk, sk)
        return m.raw[: len(c) - 16] if rc == 0 else None


_SODIUM: Optional[_Sodium] = None


def sodium() -> _Sodium:
    """The ctypes libsodium, loaded on first use."""
    global _SODIUM
    if _SODIUM is None:
        _SODIUM = _Sodium()
    return _SODIUM


def _cmd(name: bytes, data: bytes = b"") -> bytes:
    """A command frame."""
    body = bytes([len(name)]) + name + data
    if len(body) <= 255:
        return bytes([0x04, len(body)]) + body
    return b"\x06" + len(body).to_bytes(8, "big") + body


def _frame(body: bytes, more: bool = False) -> bytes:
    """A message frame."""
    if len(body) <= 255:
        return bytes([1 if more else 0, len(body)]) + body
    return bytes([3 if more else 2]) + len(body).to_bytes(8, "big") + body


def mech_greeting(name: bytes, as_server: bool) -> bytes:
    """A ZMTP 3.1 greeting for `name` in that role."""
    return codec.encode_greeting(1, name, as_server)


@dataclass
class MechInput:
    """A mechanism-target input, parsed (:func:`parse_mech_input`)."""

    target: str
    side: str
    prefix_mode: int
    end_mode: int
    lengths: List[int]
    payload: bytes

    def chunks(self, head: bytes = b"") -> List[bytes]:
        """`head` + payload cut at the split points."""
        stream = head + self.payload
        out, i = [], 0
        for n in self.lengths:
            if i >= len(stream):
                break
            out.append(stream[i : i + n])
            i += n
        if i < len(stream):
            out.append(stream[i:])
        return out

    @property
    def ztype(self) -> str:
        return self.target

    def describe(self) -> str:
        return (f"{self.target} side={self.side} prefix={self.prefix_mode} end={END_NAMES[self.end_mode]} "
                f"splits={self.lengths} payload={len(self.payload)}B")


def parse_mech_input(data: bytes) -> MechInput:
    """Decode a mechanism-target input (format above)."""
    b = data + b"\0" * max(0, 3 - len(data))
    ctl = b[1]
    pos, lengths = 3, []
    for _ in range((ctl >> 5) & 7):
        if pos < len(data):
            lengths.append(data[pos] + 1)
            pos += 1
    return MechInput(MECH_TARGETS[b[0] % 4], "connect" if ctl & 1 else "bind", (ctl >> 1) & 3,
                     (ctl >> 3) & 3, lengths, data[pos:] if pos < len(data) else b"")


def make_mech_input(target: str, payload: bytes, side: str = "bind", prefix_mode: int = 0,
                    end_mode: int = END_GRACEFUL, splits: Tuple[int, ...] = ()) -> bytes:
    """The inverse of :func:`parse_mech_input`."""
    ctl = (1 if side == "connect" else 0) | (prefix_mode << 1) | (end_mode << 3) | (len(splits) << 5)
    return bytes([MECH_TARGETS.index(target), ctl, 0]) + bytes(n - 1 for n in splits) + payload


class MechRig(Rig):
    """A zmtp DEALER speaking one mechanism in one role, and a good pyzmq
    DEALER speaking it in the other, connected to it the whole time."""

    def __init__(self, harness: "Harness", target: str) -> None:
        self.target = target
        self.mech = target.split("-")[0]
        self.z_server = target.endswith("-S")
        if self.mech == "CURVE":
            from zmq.utils import z85

            self.server_z85, sk = zmq.curve_keypair()
            self.server_pk, self.server_sk = z85.decode(self.server_z85), z85.decode(sk)
            self.client_pk, self.client_sk = (z85.decode(k) for k in zmq.curve_keypair())
        harness.mech_auth()
        super().__init__(harness, "DEALER")

    def configure(self, sock, is_zmtp: bool) -> None:
        """PLAIN or CURVE options for zmtp's socket or the good peer's."""
        server = self.z_server if is_zmtp else not self.z_server
        if self.mech == "PLAIN":
            if server:
                sock.plain_server = True
            else:
                sock.plain_username = PLAIN_USER
                sock.plain_password = PLAIN_PASS
        else:
            if server:
                sock.curve_server = True
                sock.curve_secretkey = self.server_sk
                sock.curve_publickey = self.server_pk
            else:
                sock.curve_serverkey = self.server_pk
                sock.curve_publickey = self.client_pk
                sock.curve_secretkey = self.client_sk


def _split_frames(data: bytes) -> Tuple[Optional[bytes], List[Tuple[int, bytes]]]:
    """zmtp's output so far: its greeting (None until whole) and the
    complete frames after it, (flags, body)."""
    if len(data) < 64:
        return None, []
    frames, i = [], 64
    while i + 2 <= len(data):
        flags = data[i]
        if flags & 2:
            if i + 9 > len(data):
                break
            n, h = int.from_bytes(data[i + 1 : i + 9], "big"), 9
        else:
            n, h = data[i + 1], 2
        if i + h + n > len(data):
            break
        frames.append((flags, data[i + h : i + h + n]))
        i += h + n
    return data[:64], frames


class RawMechPeer:
    """The raw peer's side of a PLAIN or CURVE handshake (prefix 2 and 3):
    what to send after the greeting, and the replies to zmtp's commands."""

    def __init__(self, rig: MechRig, inp: MechInput) -> None:
        self.rig, self.inp = rig, inp
        self.mech = rig.mech
        self.server = not rig.z_server  # the raw peer's role
        self.nonce = 1
        self.expected: List[List[bytes]] = []  # the messages sealed (prefix 3)
        self.done = False  # the handshake is complete on our side
        self.closing = False  # a sealed command zmtp closes on was sent

    def greeting(self) -> bytes:
        """Our greeting: the mechanism, our role."""
        return mech_greeting(self.mech.encode(), self.server)

    def first(self) -> bytes:
        """The first command, sent without waiting (prefix >= 2)."""
        if self.mech == "PLAIN":
            if not self.server:
                return _cmd(b"HELLO", bytes([len(PLAIN_USER)]) + PLAIN_USER + bytes([len(PLAIN_PASS)]) + PLAIN_PASS)
            return _cmd(b"WELCOME") if self.inp.prefix_mode == 2 else b""
        if self.server:  # CURVE: nothing valid before zmtp's HELLO
            return b""
        na = sodium()
        self.cn_pk, self.cn_sk = na.keypair()
        n = self._short()
        box = na.box(bytes(64), b"CurveZMQHELLO---" + n, self.rig.server_pk, self.cn_sk)
        return _cmd(b"HELLO", b"\x01\x00" + bytes(72) + self.cn_pk + n + box)

    def _short(self) -> bytes:
        n = self.nonce.to_bytes(8, "big")
        self.nonce += 1
        return n

    def answer(self, k: int, body: bytes) -> Optional[bytes]:
        """zmtp's k-th command (0-based) of the handshake: our reply, b""
        for none, None when the handshake cannot go on."""
        na = sodium() if self.mech == "CURVE" else None
        name_len = body[0] if body else 0
        name, data = body[1 : 1 + name_len], body[1 + name_len :]
        if self.mech == "PLAIN" and not self.server:  # zmtp: WELCOME, READY
            if name == b"WELCOME":
                return _cmd(b"INITIATE", META_DEALER)
            self.done = name == b"READY"
            return b"" if self.done else None
        if self.mech == "PLAIN":  # zmtp: HELLO, INITIATE
            if name == b"HELLO":
                return _cmd(b"WELCOME")
            self.done = name == b"INITIATE"
            return _cmd(b"READY", META_DEALER) if self.done else None
        if not self.server:  # CURVE, zmtp the server: WELCOME, READY
            if name == b"WELCOME" and len(data) == 160:
                plain = na.open(data[16:], b"WELCOME-" + data[:16], self.rig.server_pk, self.cn_sk)
                if plain is None:
                    return None
                self.peer_pk, cookie = plain[:32], plain[32:]
                c_pk, c_sk = na.keypair()
                vn = os.urandom(16)
                vouch = na.box(self.cn_pk + self.rig.server_pk, b"VOUCH---" + vn, self.peer_pk, c_sk)
                n = self._short()
                box = na.box(c_pk + vn + vouch + META_DEALER, b"CurveZMQINITIATE" + n, self.peer_pk, self.cn_sk)
                return _cmd(b"INITIATE", cookie + n + box)
            self.done = name == b"READY"
            return b"" if self.done else None
        # CURVE, zmtp the client: HELLO, INITIATE
        if name == b"HELLO" and len(data) == 194:
            self.peer_pk = data[74:106]
            self.cn_pk, self.cn_sk = na.keypair()
            wn = os.urandom(16)
            box = na.box(self.cn_pk + os.urandom(96), b"WELCOME-" + wn, self.peer_pk, self.rig.server_sk)
            return _cmd(b"WELCOME", wn + box)
        if name == b"INITIATE":
            self.done = True
            n = self._short()
            return _cmd(b"READY", n + na.box(META_DEALER, b"CurveZMQREADY---" + n, self.peer_pk, self.cn_sk))
        return None

    def seal(self, chunks: List[bytes]) -> bytes:
        """The payload chunks after a whole handshake: each one MESSAGE
        (CURVE: the chunk is the plaintext, its flags byte first) or one
        frame (PLAIN: byte 0 bit 0 is MORE, the rest the body).  Records
        the messages the application must get."""
        out = bytearray()
        part: List[bytes] = []
        for c in chunks:
            c = c or b"\x00"
            more, command = bool(c[0] & 1), bool(c[0] & 2)
            if self.mech == "CURVE":
                n = self._short()
                prefix = b"CurveZMQMESSAGES" if self.server else b"CurveZMQMESSAGEC"
                out += _frame(b"\x07MESSAGE" + n + sodium().box(c, prefix + n, self.peer_pk, self.cn_sk))
            else:
                command = False
                out += _frame(c[1:], more)
            if command:
                if not self.closing:
                    try:  # a malformed command (or ERROR) ends the connection there
                        evs = codec.Decoder(greeting=False).feed(bytes([4, len(c) - 1]) + c[1:]) \
                            if len(c) - 1 <= 255 else []
                        if len(c) - 1 > 255 or not evs or isinstance(evs[0], codec.Error):
                            self.closing = True
                    except ProtocolError:
                        self.closing = True
                continue
            if self.closing:
                continue
            part.append(c[1:])
            if not more:
                self.expected.append(part)
                part = []
        return bytes(out)


def _mech_run(self: "Harness", data: bytes) -> None:
    """Play one mechanism-target input (see parse_mech_input); raise
    Finding (unless keep_going)."""
    self.runs += 1
    inp = parse_mech_input(data)
    try:
        self._run_mech_input(inp)
    except Finding as f:
        if self.verbose:
            print(f"net_fuzz: FINDING on {inp.describe()}: {f}", file=sys.stderr)
        if not self.keep_going:
            raise
        self._record(f, data, inp.target, inp.describe())
        self._reset(inp.target, self.mech_rig)


def _mech_auth(self: "Harness") -> None:
    """ZAP handlers in both contexts, made once: PLAIN admin/secret, any
    CURVE key (a handler in a context judges every socket's handshakes)."""
    if getattr(self, "auths", None):
        return
    from zmq.auth import CURVE_ALLOW_ANY
    from zmq.auth.thread import ThreadAuthenticator as PyAuth
    from zmtp.auth.thread import ThreadAuthenticator as ZAuth

    self.auths = [ZAuth(self.zctx), PyAuth(self.pctx)]
    for a in self.auths:
        a.start()
        a.configure_plain(domain="*", passwords={PLAIN_USER.decode(): PLAIN_PASS.decode()})
        a.configure_curve(domain="*", location=CURVE_ALLOW_ANY)


def _mech_close(self: "Harness") -> None:
    """Harness.close, the ZAP handlers stopped before the contexts go."""
    for r in self.rigs.values():
        r.close()
    self.rigs.clear()
    for a in getattr(self, "auths", None) or []:
        a.stop()
    self.auths = []
    _null_close(self)


def _mech_rig(self: "Harness", target: str) -> MechRig:
    """The target's rig, made on first use (as :meth:`Harness.rig`)."""
    r = self.rigs.get(target)
    if r is None:
        r = self.rigs[target] = MechRig(self, target)
        self._rebase()
    return r


def _run_mech_input(self: "Harness", inp: MechInput) -> None:
    """One mechanism-target input against its rig (checks above)."""
    rig = self.mech_rig(inp.target)
    z = rig.z
    deadline = time.monotonic() + self.timeout_ms / 1000
    rig.drain()
    rig.log = []
    before = z.stats()
    peer = RawMechPeer(rig, inp)
    raw = self._open_raw(rig, inp, deadline)
    out = bytearray()
    eof = reset = False
    sent_all = True
    authenticated = False

    def pump(pred) -> bool:
        """Step the engine and read zmtp's output until pred() or EOF."""
        nonlocal eof, reset
        while not pred():
            e, r = self._read_raw(raw, out)
            eof, reset = eof or e, reset or r
            if eof or reset:
                return pred()
            if time.monotonic() > deadline:
                return False
            self._step(rig, 1)
        return True

    def check_greeting() -> None:
        """zmtp's whole greeting names the rig's mechanism and role."""
        g = codec.Decoder(greeting=True).feed(bytes(out[:64]))[0]
        if g.mechanism != rig.mech.encode() or bool(g.as_server) != rig.z_server:
            raise Finding("bad-output", f"zmtp {inp.target} greeted with {g!r}")

    try:
        # zmtp greets in libzmq's two stages: signature and major version
        # (11 bytes) at once, the rest once the peer's first 11 arrived
        if not pump(lambda: len(out) >= 11):
            raise Finding("no-greeting", f"zmtp {inp.target} sent no greeting to the raw peer")
        head = b""
        if inp.prefix_mode >= 1:
            head = peer.greeting()
        if inp.prefix_mode >= 2:
            head += peer.first()
        if inp.prefix_mode == 3:
            raw.sendall(head)
            head = b""
            if not pump(lambda: len(out) >= 64):
                raise Finding("no-greeting", f"zmtp {inp.target} sent not all of its greeting after ours")
            check_greeting()
            k = 0
            while True:  # answer zmtp's commands until the handshake is done
                if not pump(lambda: len(_split_frames(bytes(out))[1]) > k):
                    break
                reply = peer.answer(k, _split_frames(bytes(out))[1][k][1])
                k += 1
                if reply is None:
                    break
                raw.sendall(reply)
                if peer.done:
                    authenticated = True
                    break
            chunks = inp.chunks()
            stream = peer.seal(chunks) if authenticated else b"".join(chunks)
            chunks = [stream]
        else:
            chunks = inp.chunks(head)
        sent_all, eof, reset = self._send_chunks(rig, raw, out, chunks, eof, reset)
        self._end_raw(rig, raw, out, inp.end_mode, eof, reset, deadline, f"zmtp {inp.target}")
        if len(out) >= 64:
            check_greeting()
    finally:
        raw.close()
    self._await_lost(rig, z, before, 1, deadline, f"zmtp {inp.target}", side=inp.side)
    after = z.stats()
    want_acc = 1 if inp.side == "bind" else 0
    if after["accepted"] - before["accepted"] != want_acc or after["disconnected"] - before["disconnected"] != 1:
        raise Finding("stats", f"zmtp {inp.target}: accepted/disconnected counts {before} -> {after}")
    self.counts["active" if authenticated else "invalid"] += 1
    if rig.mech == "CURVE" and not authenticated:
        # No secret of the good peer's was used: zmtp must not get past
        # WELCOME (server) or HELLO (client), nor send a MESSAGE.
        allowed = (b"WELCOME", b"ERROR") if rig.z_server else (b"HELLO", b"ERROR")
        for flags, body in _split_frames(bytes(out))[1]:
            name = body[1 : 1 + body[0]] if body else b""
            if not flags & 4 or name not in allowed:
                raise Finding("curve-leak", f"zmtp {inp.target} sent {'a data frame' if not flags & 4 else name!r} "
                              f"to a raw peer that never completed a CURVE handshake (prefix {inp.prefix_mode})")
    self._check_resources(rig, inp)
    rig.drain()
    # Delivery: an unauthenticated CURVE peer gets nothing through; after a
    # whole handshake, the sealed messages in order (a prefix of them).
    i = 0
    for msg in rig.log:
        if tuple(msg) in rig.good_msgs:
            continue
        if authenticated and i < len(peer.expected) and msg == peer.expected[i]:
            i += 1
            continue
        if not authenticated and rig.mech == "PLAIN":
            continue  # the fuzzer may have found the credentials itself
        raise Finding("delivery", f"zmtp {inp.target} (prefix {inp.prefix_mode}) passed up {_short(msg)}; "
                      f"{'expected ' + _short(peer.expected[i]) if authenticated and i < len(peer.expected) else 'no message of the raw peer was due'}")
    if authenticated and sent_all and inp.end_mode in (END_GRACEFUL, END_KEEP_OPEN) and i != len(peer.expected):
        raise Finding("delivery", f"zmtp {inp.target}: {i} of the raw peer's {len(peer.expected)} sealed messages "
                      f"passed up; first missing {_short(peer.expected[i])}")


_null_close = Harness.close
Harness.close = _mech_close
Harness.mech_auth = _mech_auth
Harness.run_mech = _mech_run
Harness.mech_rig = _mech_rig
Harness._run_mech_input = _run_mech_input


# ------------------------------------------------------------------ entry points


def _files(paths: List[str]) -> List[str]:
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(os.path.join(p, n) for n in os.listdir(p)
                          if os.path.isfile(os.path.join(p, n)) and not n.endswith(".txt"))
        else:
            out.append(p)
    return out


def is_mech_file(path: str) -> bool:
    """Inputs of the mechanism targets live in folders named *mech*."""
    return "mech" in os.path.basename(os.path.dirname(os.path.abspath(path)))


def replay(paths: List[str], verbose: bool = True) -> int:
    """Replay files through the harness without atheris; 1 on a finding
    (files under a folder named *mech* are mechanism-target inputs)."""
    rc = 0
    with Harness(verbose=verbose) as h:
        for path in _files(paths):
            with open(path, "rb") as fh:
                data = fh.read()
            mech = is_mech_file(path)
            inp = parse_mech_input(data) if mech else parse_input(data)
            try:
                if mech:
                    h.run_mech(data)
                    exp_reason = "ok"
                else:
                    exp_reason = h.run(data).reason
                if verbose:
                    print(f"ok   {path}: {inp.describe()}: {exp_reason}")
            except Finding as f:
                print(f"FAIL {path}: {inp.describe()}: {f}")
                rc = 1
    return rc


def main(argv: List[str]) -> int:
    if len(argv) > 1 and argv[1] == "--replay":
        return replay(argv[2:])
    import atheris  # only needed to fuzz

    keep_going = os.environ.get("NET_FUZZ_KEEP_GOING", "1") not in ("", "0")
    artifacts = os.environ.get("NET_FUZZ_ARTIFACTS", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                    "artifacts", "net"))
    if os.environ.get("NET_FUZZ_PY_COVERAGE", "") not in ("", "0"):
        # No coverage from the C extension (not built with fuzzer-no-link):
        # let libFuzzer at least see which branches of the input parser and
        # the oracle (which events the stream decodes to) an input reaches.
        for fn in (parse_input, expected_outcome, check_zmtp_output):
            atheris.instrument_func(fn)
    h = Harness(keep_going=keep_going, artifact_dir=artifacts)
    print(f"net_fuzz: zmtp {zmtp._zmtp.__file__}, backend {zmtp.backend_name()}, keep_going={keep_going}",
          file=sys.stderr, flush=True)
    t0 = time.monotonic()
    report_every = int(os.environ.get("NET_FUZZ_REPORT_EVERY", "5000"))

    mech = os.environ.get("NET_FUZZ_TARGET", "null") == "mech"
    play = h.run_mech if mech else h.run

    def test_one_input(data: bytes) -> None:
        play(data)
        if report_every and h.runs % report_every == 0:
            print(f"net_fuzz: {h.runs} inputs in {time.monotonic() - t0:.0f} s, oracle {h.counts}, "
                  f"findings {h.findings or 'none'}", file=sys.stderr, flush=True)

    # (libFuzzer ends the process with exit() at -max_total_time, without
    # finalizing Python: the last progress line is the summary.)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
