"""PUSH -> PULL throughput: 64-byte messages, one send() per message, the
PULL socket in another process.

Implementations: zmtp with the io_uring and the epoll backend (both sides),
and pyzmq (libzmq) on both sides.  The peer is ``python -m zmtp.perf _peer
pull``, the same as the ``pushpull`` row of ``python -m zmtp.perf``.  One
round sends MESSAGES messages and lasts until the receiver has counted them
all (the benchmark's time); ``extra_info["msg_per_s"]`` is the receiver's
figure, first to last message, median round: the table's measure.

    python -m pytest benchmarks/bench_pushpull.py --benchmark-only -p no:cacheprovider
    python -m pytest benchmarks --benchmark-only -p no:cacheprovider --benchmark-save=NAME
    python -m pytest benchmarks --benchmark-only -p no:cacheprovider --benchmark-compare
    python -m pytest benchmarks --benchmark-only -p no:cacheprovider --benchmark-compare=0001 \\
        --benchmark-compare-fail=mean:25%

Saved runs go to .benchmarks/ under the current directory; --benchmark-compare
without a number compares with the latest saved one.
"""

from __future__ import annotations

import pytest

MESSAGES = 100_000
SIZE = 64
ROUNDS = 5
IMPLS = ["zmtp-io_uring", "zmtp-epoll", "pyzmq"]


@pytest.mark.parametrize("impl", IMPLS)
def test_push_pull_throughput(benchmark, perf_session, impl):
    msg_s = perf_session(impl).stream(benchmark, "push", "pull", SIZE, MESSAGES, ROUNDS)
    benchmark.extra_info.update(messages=MESSAGES, size=SIZE, msg_per_s=round(msg_s))
    print(f"\n{impl} PUSH -> PULL {SIZE} B: {msg_s:,.0f} msg/s (receiver, median of {ROUNDS} rounds)")
