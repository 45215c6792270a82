"""``zmtp.perf``'s timed loops, shared by every scenario, the peer
processes, the lat/thr tools and ``benchmarks/``: ping-pong, echo, blast
(one send per message or batched), the sinks that time what they receive,
and the arithmetic of the figures (percentile, rate).

Layering: imports ``zmtp.perf.config`` and ``zmtp.perf.links`` (the Link
types, for the batched send); imported by the peers, the scenarios and the
tools; never imports them.  The loops are the measured code: they bind
``send``/``recv`` to locals and call nothing else per message.
"""

from __future__ import annotations

import time
from typing import List, Sequence, Tuple

from zmtp.perf.config import BATCH
from zmtp.perf.links import RAW_HEADER, Link, RawLink, Side, ZmqLink


# ---------------------------------------------------------------- the timed loops (shared by all)


def ping_pong(link: Link, payload: bytes, count: int) -> List[int]:
    """`count` round trips; each one's duration in ns."""
    send, recv, clock = link.send, link.recv, time.perf_counter_ns
    times = [0] * count
    for i in range(count):
        t0 = clock()
        send(payload)
        recv()
        times[i] = clock() - t0
    return times


def connect_round_trip_close(side: Side, endpoint: str, payload: bytes, count: int) -> None:
    """`count` times: a new REQ connects to `endpoint` (handshake), makes one
    round trip and closes."""
    for _ in range(count):
        link = side.connect("req", endpoint)
        link.send(payload)
        link.recv()
        link.close()


def echo(link: Link, count: int) -> None:
    """Send back each of `count` messages."""
    send, recv = link.send, link.recv
    for _ in range(count):
        send(recv())


def blast(link: Link, payload: bytes, count: int) -> None:
    """Send `count` messages, one send() each."""
    send = link.send
    for _ in range(count):
        send(payload)


def blast_batched(link: Link, payload: bytes, count: int) -> None:
    """Send `count` messages BATCH at a time where the implementation can:
    zmtp's ``send_batch``, one ``sendall`` of BATCH frames on raw sockets;
    pyzmq has no batch call, so it sends one message per ``send()``."""
    sock = getattr(link, "sock", None)
    if isinstance(link, ZmqLink) and hasattr(sock, "send_batch"):
        batch, send_batch = [payload] * BATCH, sock.send_batch
        for _ in range(count // BATCH):
            send_batch(batch)
        if count % BATCH:
            send_batch(batch[: count % BATCH])
    elif isinstance(link, RawLink):
        chunk = (RAW_HEADER.pack(len(payload)) + payload) * BATCH
        for _ in range(count // BATCH):
            link.sock.sendall(chunk)
        for _ in range(count % BATCH):
            link.send(payload)
    else:
        blast(link, payload, count)


def sink(link: Link, count: int) -> Tuple[int, int]:
    """Receive `count` messages: (ns at the first, ns at the last)."""
    recv, clock = link.recv, time.perf_counter_ns
    recv()
    first = clock()
    for _ in range(count - 1):
        recv()
    return first, clock()


def sink_skipping_probes(link: Link, count: int) -> Tuple[int, int]:
    """As sink(), but messages that start with 0x00 (probes) are not counted."""
    recv, clock = link.recv, time.perf_counter_ns
    while recv()[:1] == b"\x00":
        pass
    first = clock()
    left = count - 1
    while left:
        if recv()[:1] != b"\x00":
            left -= 1
    return first, clock()


def sized_sink(link: Link, size: int, count: int) -> Tuple[int, int]:
    """As sink(), checking every message's size (libzmq's local_thr does)."""
    recv, clock = link.recv, time.perf_counter_ns
    _check_size(len(recv()), size)
    first = clock()
    for _ in range(count - 1):
        n = len(recv())
        if n != size:
            _check_size(n, size)
    return first, clock()


def _check_size(got: int, want: int) -> None:
    if got != want:
        raise ValueError(f"message of {got} bytes received, {want} expected")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil
    return float(sorted_values[int(rank) - 1])


def rate(count: int, first_ns: int, last_ns: int) -> float:
    """Messages per second from `count` messages received between two instants."""
    return (count - 1) * 1e9 / max(1, last_ns - first_ns)


def result_rate(line: str) -> float:
    """msg/s from a receiving peer's ``result COUNT FIRST_NS LAST_NS`` line."""
    _, count, first, last = line.split()
    return rate(int(count), int(first), int(last))


def echo_checked(link: Link, size: int, count: int) -> None:
    """echo(), checking each message's size as local_lat does."""
    send, recv = link.send, link.recv
    for _ in range(count):
        data = recv()
        _check_size(len(data), size)
        send(data)
