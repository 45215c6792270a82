"""inproc:// between two threads of one process, one Context: REQ -> REP
round trip and PUSH -> PULL throughput, 64-byte messages.

Implementations: zmtp with the io_uring and the epoll backend (both threads),
and pyzmq (libzmq).  The sockets come from one ``zmtp.perf`` Side (one
Context) and each is made and used in its own worker thread; the loops are
``zmtp.perf``'s (ping_pong / echo, blast / sink), as in the
``inproc_reqrep`` and ``inproc_pushpull`` rows of
``python -m zmtp.perf --scenario inproc_reqrep,inproc_pushpull``.

Both threads run Python, so every message is also a hand-off between two
threads of one interpreter (the GIL): pyzmq pays it as zmtp does.

* REQ/REP: one round is ROUND_TRIPS round trips (the benchmark's time);
  ``extra_info`` has the p50 and p99 round trip in us (median round).
* PUSH/PULL: one round sends MESSAGES messages and lasts until the PULL
  thread has them all; ``extra_info["msg_per_s"]`` is the receiver's figure,
  first to last message, median round.

    python -m pytest benchmarks/bench_inproc.py --benchmark-only -p no:cacheprovider
    python -m pytest benchmarks --benchmark-only -p no:cacheprovider --benchmark-save=NAME
    python -m pytest benchmarks --benchmark-only -p no:cacheprovider --benchmark-compare

Saved runs go to .benchmarks/ under the current directory; --benchmark-compare
without a number compares with the latest saved one.
"""

from __future__ import annotations

import itertools
import os
import statistics
from typing import Any, Callable, List, Tuple

import pytest

from zmtp import perf

ROUND_TRIPS = 5_000
WARMUP = 1_000
MESSAGES = 100_000
SIZE = 64
ROUNDS = 5
IMPLS = ["zmtp-io_uring", "zmtp-epoll", "pyzmq"]
TIMEOUT_S = 60.0
_serial = itertools.count(1)


class InprocPair:
    """Two worker threads on `impl`'s zmtp backend sharing one Side (one
    Context): ``here`` (the measuring end) and ``there`` (the peer)."""

    def __init__(self, impl_name: str, make_worker: Callable[[str], Any]) -> None:
        self.impl = perf.impl_by_name(impl_name)
        why = perf.unavailable_reason(self.impl)
        if why is not None:
            pytest.skip(why)
        self.here = make_worker(self.impl.backend)
        self.there = make_worker(self.impl.backend)
        self.side = self.here.run(lambda: perf.open_side(self.impl, TIMEOUT_S))
        self.endpoint = f"inproc://bench-{os.getpid()}-{next(_serial)}"

    def links(self, bound_kind: str, connected_kind: str, linger: int = 0) -> Tuple[Any, Any]:
        """(the socket bound in ``there``, the one connected in ``here``)."""
        bound = self.there.run(lambda: self.side.bind(bound_kind, self.endpoint, lambda ep: None, linger=linger))
        connected = self.here.run(lambda: self.side.connect(connected_kind, self.endpoint))
        return bound, connected

    def close(self) -> None:
        """Every socket and the Context (the worker threads are idle by now)."""
        self.here.run(self.side.close)


@pytest.fixture
def inproc_pair(worker):
    """inproc_pair("zmtp-epoll" | "zmtp-io_uring" | "pyzmq") -> InprocPair
    (skips when the implementation cannot run here); closed after the test."""
    made: List[InprocPair] = []

    def make(impl_name: str) -> InprocPair:
        pair = InprocPair(impl_name, worker)
        made.append(pair)
        return pair

    yield make
    for pair in made:
        pair.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_inproc_req_rep_round_trip(benchmark, inproc_pair, impl):
    pair = inproc_pair(impl)
    rep, req = pair.links("rep", "req", linger=perf.PEER_LINGER_MS)
    total = WARMUP + ROUND_TRIPS * (ROUNDS + 1)  # + pedantic's warm-up round
    echoed = pair.there.submit(lambda: perf.echo(rep, total))
    payload = b"x" * SIZE
    pair.here.run(lambda: perf.ping_pong(req, payload, WARMUP))
    figures: List[Tuple[float, float]] = []

    def one_round() -> None:
        times = sorted(pair.here.run(lambda: perf.ping_pong(req, payload, ROUND_TRIPS)))
        figures.append((perf.percentile(times, 50) / 1000, perf.percentile(times, 99) / 1000))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    echoed()
    p50 = statistics.median(f[0] for f in figures[1:])  # figures[0]: the warm-up round
    p99 = statistics.median(f[1] for f in figures[1:])
    benchmark.extra_info.update(round_trips=ROUND_TRIPS, size=SIZE, rtt_p50_us=round(p50, 2),
                                rtt_p99_us=round(p99, 2))
    print(f"\n{impl} inproc REQ/REP {SIZE} B round trip: p50 {p50:.1f} us, p99 {p99:.1f} us "
          f"(median of {ROUNDS} rounds)")


@pytest.mark.parametrize("impl", IMPLS)
def test_inproc_push_pull_throughput(benchmark, inproc_pair, impl):
    pair = inproc_pair(impl)
    pull, push = pair.links("pull", "push")
    payload = b"x" * SIZE
    rates: List[float] = []

    def one_round() -> None:
        received = pair.there.submit(lambda: perf.sink(pull, MESSAGES))
        pair.here.run(lambda: perf.blast(push, payload, MESSAGES))
        first, last = received()
        rates.append(perf.rate(MESSAGES, first, last))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    msg_s = statistics.median(rates[1:])  # rates[0]: the warm-up round
    benchmark.extra_info.update(messages=MESSAGES, size=SIZE, msg_per_s=round(msg_s))
    print(f"\n{impl} inproc PUSH -> PULL {SIZE} B: {msg_s:,.0f} msg/s (receiver, median of {ROUNDS} rounds)")
