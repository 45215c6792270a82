"""DEALER -> ROUTER throughput: 1 KiB messages, one send() per message, the
ROUTER socket (recv_multipart: routing id + body) in another process.

Implementations: zmtp with the io_uring and the epoll backend (both sides),
and pyzmq (libzmq) on both sides.  The peer is ``python -m zmtp.perf _peer
router``, the same as the ``dealer_router`` row of ``python -m zmtp.perf``.
One round sends MESSAGES messages and lasts until the receiver has counted
them all (the benchmark's time); ``extra_info["msg_per_s"]`` is the
receiver's figure, first to last message, median round: the table's measure.

    python -m pytest benchmarks/bench_dealer_router.py --benchmark-only -p no:cacheprovider
    python -m pytest benchmarks --benchmark-only -p no:cacheprovider --benchmark-save=NAME
    python -m pytest benchmarks --benchmark-only -p no:cacheprovider --benchmark-compare

Saved runs go to .benchmarks/ under the current directory; --benchmark-compare
without a number compares with the latest saved one.
"""

from __future__ import annotations

import pytest

MESSAGES = 50_000
SIZE = 1024
ROUNDS = 5
IMPLS = ["zmtp-io_uring", "zmtp-epoll", "pyzmq"]


@pytest.mark.parametrize("impl", IMPLS)
def test_dealer_router_throughput(benchmark, perf_session, impl):
    msg_s = perf_session(impl).stream(benchmark, "dealer", "router", SIZE, MESSAGES, ROUNDS)
    benchmark.extra_info.update(messages=MESSAGES, size=SIZE, msg_per_s=round(msg_s),
                                mb_per_s=round(msg_s * SIZE / 1e6, 1))
    print(f"\n{impl} DEALER -> ROUTER {SIZE} B: {msg_s:,.0f} msg/s (receiver, median of {ROUNDS} rounds)")
