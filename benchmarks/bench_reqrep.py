"""REQ -> REP round trip: 64-byte requests echoed by a REP socket in
another process.

Implementations: zmtp with the io_uring and the epoll backend (both sides),
and pyzmq (libzmq) on both sides.  The peer is ``python -m zmtp.perf _peer
echo`` and the loop ``zmtp.perf.ping_pong``, as in the ``reqrep`` rows of
``python -m zmtp.perf``.  One round is ROUND_TRIPS round trips (the
benchmark's time; mean / ROUND_TRIPS = mean round trip);
``extra_info`` has the p50 and p99 round trip in us (median round), the
table's figures.  Latency depends a lot on whether the two processes share a
CPU: compare runs made the same way (e.g. both under ``taskset -c 0``).

    python -m pytest benchmarks/bench_reqrep.py --benchmark-only -p no:cacheprovider
    taskset -c 0 python -m pytest benchmarks/bench_reqrep.py --benchmark-only -p no:cacheprovider
    python -m pytest benchmarks --benchmark-only -p no:cacheprovider --benchmark-save=NAME
    python -m pytest benchmarks --benchmark-only -p no:cacheprovider --benchmark-compare

Saved runs go to .benchmarks/ under the current directory; --benchmark-compare
without a number compares with the latest saved one.
"""

from __future__ import annotations

import statistics
from typing import List, Tuple

import pytest

from zmtp import perf

ROUND_TRIPS = 5_000
WARMUP = 1_000
SIZE = 64
ROUNDS = 5
IMPLS = ["zmtp-io_uring", "zmtp-epoll", "pyzmq"]


@pytest.mark.parametrize("impl", IMPLS)
def test_req_rep_round_trip(benchmark, perf_session, impl):
    session = perf_session(impl)
    total = WARMUP + ROUND_TRIPS * (ROUNDS + 1)  # + pedantic's warm-up round
    peer, endpoint = session.peer("echo", SIZE, total, rounds=1)
    link = session.connect("req", endpoint)
    payload = b"x" * SIZE
    session.run(lambda: perf.ping_pong(link, payload, WARMUP))
    figures: List[Tuple[float, float]] = []

    def one_round() -> None:
        times = sorted(session.run(lambda: perf.ping_pong(link, payload, ROUND_TRIPS)))
        figures.append((perf.percentile(times, 50) / 1000, perf.percentile(times, 99) / 1000))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    session.line(peer, "done")
    p50 = statistics.median(f[0] for f in figures[1:])  # figures[0]: the warm-up round
    p99 = statistics.median(f[1] for f in figures[1:])
    benchmark.extra_info.update(round_trips=ROUND_TRIPS, size=SIZE, rtt_p50_us=round(p50, 2),
                                rtt_p99_us=round(p99, 2))
    print(f"\n{impl} REQ/REP {SIZE} B round trip: p50 {p50:.1f} us, p99 {p99:.1f} us (median of {ROUNDS} rounds)")
