"""``zmtp.perf``'s libzmq-style tools: ``lat`` (local_lat / remote_lat)
and ``thr`` (local_thr / remote_thr), one process at each end, and the
lines they print.

Layering: imports ``zmtp.perf.config``, ``links`` and ``loops``; imported
by the command line only.
"""

from __future__ import annotations

import sys
import time
from typing import List

from zmtp.perf.config import PEER_LINGER_MS, Impl, choose_backend
from zmtp.perf.links import open_side
from zmtp.perf.loops import blast, echo_checked, percentile, ping_pong, rate, sized_sink


# ---------------------------------------------------------------- lat / thr (libzmq's perf tools)


def lat_main(role: str, impl: Impl, endpoint: str, size: int, count: int, timeout_s: float) -> int:
    """``bind``: local_lat (echo); ``connect``: remote_lat (prints the latency)."""
    choose_backend(impl)
    side = open_side(impl, timeout_s)
    try:
        if role == "bind":
            link = side.bind("rep", endpoint, _announce, linger=PEER_LINGER_MS)
            echo_checked(link, size, count)
            return 0
        link = side.connect("req", endpoint)
        t0 = time.perf_counter_ns()
        times = ping_pong(link, b"x" * size, count)
        print_latency(size, count, time.perf_counter_ns() - t0, sorted(times))
        return 0
    finally:
        side.close()


def print_latency(size: int, count: int, elapsed_ns: int, sorted_times: List[int]) -> None:
    """remote_lat's lines (one-way latency = round trip / 2, connection set-up
    included as libzmq does) and the round trip's p50 / p99."""
    print(f"message size: {size} [B]")
    print(f"roundtrip count: {count}")
    print(f"average latency: {elapsed_ns / 1000 / (count * 2):.3f} [us]")
    print(f"round trip p50: {percentile(sorted_times, 50) / 1000:.3f} [us], "
          f"p99: {percentile(sorted_times, 99) / 1000:.3f} [us]")


def thr_main(role: str, impl: Impl, endpoint: str, size: int, count: int, timeout_s: float) -> int:
    """``bind``: local_thr (receives, prints the throughput); ``connect``: remote_thr (sends)."""
    choose_backend(impl)
    side = open_side(impl, timeout_s)
    try:
        if role == "bind":
            link = side.bind("pull", endpoint, _announce)
            first, last = sized_sink(link, size, count)
            print_throughput(size, count, rate(count, first, last))
            return 0
        linger = int(timeout_s * 1000) if timeout_s > 0 else -1  # until everything is written
        blast(side.connect("push", endpoint, linger=linger), b"x" * size, count)
        return 0
    finally:
        side.close()


def print_throughput(size: int, count: int, msg_s: float) -> None:
    """local_thr's lines."""
    print(f"message size: {size} [B]")
    print(f"message count: {count}")
    print(f"mean throughput: {msg_s:.0f} [msg/s]")
    print(f"mean throughput: {msg_s * size * 8 / 1e6:.3f} [Mb/s]")


def _announce(endpoint: str) -> None:
    print(f"bound to {endpoint}", file=sys.stderr, flush=True)
