"""Side-by-side performance: ``python -m zmtp.perf``.

Runs each scenario briefly with a peer in another process (in another
thread of this process for the ``inproc_*`` scenarios) and prints one
table: zmtp on io_uring, zmtp on epoll, pyzmq (libzmq) when it is
importable, and a raw Python-socket floor (plain ``socket`` with a 4-byte
length prefix per message).  Every implementation talks to a peer of the same
implementation (zmtp peers get ``ZMTP_BACKEND`` of their column; an inproc
peer thread opens its column's backend as the driver thread does).

Scenarios (``--scenario``):

* ``reqrep``: REQ -> REP echo, 64 B; p50 and p99 round trip in us.
* ``pushpull``: PUSH -> PULL, 64 B, one send() per message; msg/s.
* ``pushpull_batch``: the same with zmtp's ``send_batch`` (1000 messages a
  call); pyzmq has no batch call and sends one by one, raw sockets send 1000
  frames per ``sendall``.
* ``dealer_router``: DEALER -> ROUTER, 1 KiB; msg/s.
* ``pubsub``: PUB -> 1 SUB and PUB -> 4 SUB, 64 B, SNDHWM = RCVHWM = 0
  (lossless); msg/s per subscriber (the slowest one).
* ``inproc_reqrep``: REQ -> REP echo, 64 B, over ``inproc://``: the peer is
  another thread of this process and both sockets belong to one Context;
  p50 and p99 round trip in us.
* ``inproc_pushpull``: PUSH -> PULL, 64 B, over ``inproc://`` between two
  threads of this process (one Context); msg/s counted by the receiving thread.
* ``async_reqrep``, ``async_pushpull``, ``async_dealer_router``: the shapes
  of ``reqrep`` (the p50 row), ``pushpull`` and ``dealer_router`` with
  ``zmtp.asyncio`` against pyzmq's ``zmq.asyncio``: each side a coroutine in
  its own process (the driver's in a thread of this one), every send and
  recv awaited, on asyncio's default loop or uvloop (``--loop``); fewer
  messages, counted after a warm-up; a deadline over each whole run.  Only
  the ratio's zmtp column (io_uring where it runs) and pyzmq run them: an
  asyncio owner never waits in zmtp's C core, so the two backends would
  measure the same code; raw has no asyncio column.  Each brings its
  blocking row of the same shape, and the ``async/blocking`` ratio column
  sets the zmtp figures side by side.

Issue 19's rows (not in the default run; docs/performance.md, "Sweep and
scale rows (issue 19)"):

* ``--sizes 64,1K,...,64M``: a sweep of ``pushpull`` and ``reqrep``, one
  row per size (msg/s and GB/s; RTT p50 and p99), counts scaled per size;
  pyzmq runs with copy=True and copy=False (the better one shown, the
  ``pyzmq copy`` column says which) and the ``c`` column is the C floor
  (``benchmarks/c_stream.c``, built with ``cc -O2`` on first use);
* ``many_peers``: one ROUTER process and ``--peers`` DEALERs (default
  10 000) in 4 client processes doing round trips: all served, p99, round
  trips/s, RSS per idle peer;
* ``connect_rate``: connect, NULL handshake, one round trip, close, repeated;
* ``big_message_memory``: the receiver's peak RSS above idle while receiving
  one 64 MiB message, as a ratio to the size.

The two inproc scenarios measure the transport with the GIL in the way: both
threads run Python, so every message is also a hand-off between two threads
of one interpreter (pyzmq pays it as zmtp does).  Their raw column is no
socket at all: two threads passing the bytes through ``queue.SimpleQueue``
(one queue per direction, unbounded, no framing), Python's own cost of a
thread hand-off.  ``--transport`` does not apply to them.

Throughput is counted by the receiver, from its first message to its last:
(count - 1) / elapsed.  Runs are interleaved (every implementation's run 1,
then every run 2, ...; the order rotates each run) and the table shows the
medians.  Ratio columns are oriented so that > 1 means zmtp (or io_uring)
is better.

libzmq-style tools for two terminals or two machines::

    python -m zmtp.perf lat bind tcp://*:5555 64 10000       # local_lat
    python -m zmtp.perf lat connect tcp://HOST:5555 64 10000 # remote_lat: prints latency
    python -m zmtp.perf thr bind tcp://*:5556 64 1000000     # local_thr: prints throughput
    python -m zmtp.perf thr connect tcp://HOST:5556 64 1000000

with ``--impl zmtp|zmtp-io_uring|zmtp-epoll|pyzmq|raw`` (default zmtp).

The package, from the bottom up (each module imports only those above it,
never ``zmtp.perf`` itself):

* ``config``: constants, ``Impl`` (a column) and whether it can run here;
* ``links``: ``Link`` and ``Side`` over zmtp/pyzmq sockets, raw sockets and
  queues;
* ``cfloor``: the C floor (builds and runs ``benchmarks/c_stream.c``);
* ``scale``: the peer processes of the scale rows (many_peers' ROUTER and
  DEALERs, big_message_memory's receiver) and their RSS and descriptor
  measurements;
* ``loops``: the timed loops (ping-pong, echo, blast, sinks) and figures;
* ``aio``: the event loop of an async run, ``AsyncSide`` (zmtp.asyncio or
  zmq.asyncio sockets) and the timed coroutines, under a deadline;
* ``peers``: the peer processes, both the driver's end and ``_peer``'s body;
* ``scenarios``: ``Case``, the drivers of each scenario and ``run_once``;
* ``tools``: ``lat`` and ``thr``;
* ``table``: the plan, its runs, the rows, the text table and the JSON;
* ``cli``: the argument parsers and ``main``.

This module re-exports ``main`` and the names that ``benchmarks/`` and the
tests use (the loops, columns, sides, peers, ``Case`` and ``run_once``, the
table's parser and plan); everything else is imported from its module
(``benchmarks/asyncio_pingpong.py`` imports ``zmtp.perf.aio``).
"""

from __future__ import annotations

from zmtp.perf.cli import main, make_plan, table_parser
from zmtp.perf.config import PEER_LINGER_MS, Impl, impl_by_name, unavailable_reason
from zmtp.perf.links import Link, Side, open_side
from zmtp.perf.loops import (
    blast,
    blast_batched,
    echo,
    echo_checked,
    percentile,
    ping_pong,
    rate,
    result_rate,
    sink,
    sink_skipping_probes,
    sized_sink,
)
from zmtp.perf.peers import CellError, Peer, Peers, deadline_in, expect
from zmtp.perf.scenarios import Case, run_once

__all__ = [
    "main", "make_plan", "table_parser",
    "PEER_LINGER_MS", "Impl", "impl_by_name", "unavailable_reason",
    "Link", "Side", "open_side",
    "blast", "blast_batched", "echo", "echo_checked", "percentile", "ping_pong", "rate", "result_rate", "sink",
    "sink_skipping_probes", "sized_sink",
    "CellError", "Peer", "Peers", "deadline_in", "expect",
    "Case", "run_once",
]
