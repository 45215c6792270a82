"""``zmtp.perf``'s command line: ``python -m zmtp.perf [options]`` (the
table), ``lat|thr bind|connect ENDPOINT SIZE COUNT`` (the libzmq-style
tools) and the internal ``_peer`` sub-command that the table's peer
processes run; the argument parsers and the checks of the options against
this machine (``make_plan``, ``pin_to``).

Layering: the top of ``zmtp/perf/``: imports every other module of it
except the package itself; imported by ``zmtp/perf/__init__.py`` (which
re-exports ``main``) and ``__main__.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from zmtp.perf.config import (
    ASYNC_SCENARIOS,
    BLOCKING_TWIN,
    CURVE_LARGE_COUNT,
    CURVE_SIZES,
    DEFAULT_COUNT,
    DEFAULT_PEERS,
    DEFAULT_SCENARIOS,
    DEFAULT_SIZE,
    DEFAULT_SUBSCRIBERS,
    DEFAULT_TIMEOUT_S,
    EXTRA_IMPL_NAMES,
    IMPL_NAMES,
    LOOPS,
    Impl,
    PEER_PROCESSES,
    PROG,
    SCENARIO_GROUPS,
    SCENARIOS,
    SWEEP_SCENARIOS,
    SWEEP_SIZES,
    fmt_size,
    impl_by_name,
    loop_unavailable_reason,
    parse_size,
    sweep_count,
    unavailable_reason,
)
from zmtp.perf import cfloor
from zmtp.perf.peers import PEER_KINDS, peer_main
from zmtp.perf.scale import peers_that_fit
from zmtp.perf.scenarios import Case, classify
from zmtp.perf.table import Plan, ProgressLine, build_rows, plan_json, render_table, run_count, run_plan
from zmtp.perf.tools import lat_main, thr_main


# ---------------------------------------------------------------- command line


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text}")
    return value


def _count(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("the count must be at least 2 (a rate needs two messages)")
    return value


def _size(text: str) -> int:
    """Bytes: an integer, or with a K/M suffix (8K, 1M: KiB, MiB)."""
    if text.strip()[-1:].isalpha():
        try:
            return parse_size(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"a size cannot be negative: {text}")
    return value


def _list(choices: Sequence[str], groups: Optional[Dict[str, Tuple[str, ...]]] = None) -> Callable[[str], List[str]]:
    """A comma list of `choices`; a name of `groups` stands for its members."""
    groups = groups or {}

    def parse(text: str) -> List[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices and t not in groups]
        if bad or not items:
            names = ", ".join(list(choices) + list(groups))
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad) or 'empty list'}: choose from {names}")
        return [m for t in items for m in groups.get(t, (t,))]
    return parse


def _sizes(text: str) -> List[int]:
    """``64,1K,8K,64K,256K,1M,16M,64M``: sizes in bytes (K/M suffixes: KiB, MiB)."""
    try:
        sizes = [parse_size(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not sizes:
        raise argparse.ArgumentTypeError("empty list of sizes")
    return sizes


def _subscribers(text: str) -> List[int]:
    return [_positive_int(t) for t in text.split(",") if t.strip()]


def default_scenarios_text() -> str:
    """What the table runs without --scenario, for --help."""
    if DEFAULT_SCENARIOS == SCENARIOS:
        return "all"
    return "all but " + ", ".join(s for s in SCENARIOS if s not in DEFAULT_SCENARIOS)


def table_parser() -> argparse.ArgumentParser:
    """Options of the table run (no sub-command)."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="zmtp (io_uring, epoll) vs pyzmq vs raw Python sockets, side by side, peers in other processes "
        "(inproc_* scenarios: in another thread). "
        "Sub-commands: 'lat bind|connect ENDPOINT SIZE COUNT' and 'thr bind|connect ENDPOINT SIZE COUNT' "
        "(libzmq's local/remote_lat and local/remote_thr; see '%(prog)s lat --help').",
    )
    p.add_argument("--scenario", action="append", type=_list(SCENARIOS, SCENARIO_GROUPS), metavar="NAME",
                   help=f"repeatable or comma list of {', '.join(SCENARIOS)} (default: {default_scenarios_text()}). "
                   "inproc_reqrep and inproc_pushpull run over inproc:// between two threads of this process "
                   "(one Context); their raw column is two threads and queue.SimpleQueue (one per direction, "
                   "unbounded, no framing), no socket. async_reqrep, async_pushpull and async_dealer_router: "
                   "zmtp.asyncio vs zmq.asyncio, each side a coroutine in its own process (one zmtp column and "
                   "pyzmq); each brings its blocking row of the same shape (reqrep, pushpull, dealer_router) "
                   "for the async/blocking ratio. curve = curve_reqrep, curve_pushpull, curve_handshake "
                   "(not in the default run: they add ~25 s): CURVE on both sides beside pyzmq "
                   "with CURVE, key pairs made per run; curve_pushpull runs 64 B and 64 KiB; "
                   "curve_handshake counts connect + handshake + one round trip + close per second. "
                   "proxy (not in the default run: three processes per run): PUSH -> a proxy process "
                   "(zmtp.proxy / zmq.proxy) -> PULL, no raw column. "
                   "Issue 19's scale rows (not in the default run: they take long): many_peers (one ROUTER "
                   f"process, --peers DEALERs in {PEER_PROCESSES} client processes doing round trips: all served, "
                   "p99, round trips/s, RSS per idle peer), connect_rate (connect, NULL handshake, one round trip, "
                   "close, repeated), big_message_memory (the receiver's peak RSS above idle while receiving one "
                   "64 MiB message, / size)")
    p.add_argument("--sizes", type=_sizes, metavar="S,S",
                   help="a sweep of pushpull and reqrep (or the --scenario among them): one row per size, "
                   "K/M suffixes (e.g. " + ",".join(fmt_size(s).replace(" KiB", "K").replace(" MiB", "M")
                                                    .replace(" B", "") for s in SWEEP_SIZES)
                   + "); counts scaled per size (about the same bytes per cell) unless --count; adds the "
                   "pyzmq copy=False column (pyzmq shows the best of both) and the C floor "
                   "(benchmarks/c_stream.c, built with cc -O2)")
    p.add_argument("--peers", type=_positive_int, metavar="N",
                   help=f"many_peers: the DEALERs (default {DEFAULT_PEERS:,}, fewer when RLIMIT_NOFILE's hard "
                   "limit does not allow them: the table says so)")
    p.add_argument("--impl", action="append", type=_list(IMPL_NAMES + ("zmtp", "c")), metavar="IMPL",
                   help="columns, repeatable or comma list of zmtp-io_uring, zmtp-epoll, pyzmq, raw, c "
                   "(zmtp = both zmtp columns; c = the C floor, sweep rows only; default: all)")
    p.add_argument("--size", type=_size, help="message size in bytes for every scenario, K/M suffixes allowed "
                   "(default: 64, dealer_router 1024, big_message_memory 64M)")
    p.add_argument("--count", type=_count, help="messages (round trips for reqrep) per run (default: "
                   + ", ".join(f"{k} {v}" for k, v in DEFAULT_COUNT.items()) + ")")
    p.add_argument("--runs", type=_positive_int, default=3, help="interleaved runs; medians shown (default 3)")
    p.add_argument("--transport", choices=("tcp", "ipc"), default="tcp",
                   help="default tcp on 127.0.0.1 (the inproc_* scenarios always use inproc://)")
    p.add_argument("--subscribers", type=_subscribers, default=list(DEFAULT_SUBSCRIBERS), metavar="N,N",
                   help="pubsub: subscriber counts, one row each (default 1,4)")
    p.add_argument("--loop", choices=LOOPS, default="asyncio",
                   help="the event loop of the async_* scenarios: asyncio (its default loop) or uvloop "
                   "(must be installed)")
    p.add_argument("--pin", type=int, metavar="CPU", help="pin this process and its peers to one CPU")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help=f"seconds before a run fails as 'timeout' (default {DEFAULT_TIMEOUT_S:.0f})")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    return p


def tool_parser(name: str) -> argparse.ArgumentParser:
    """``lat`` or ``thr``."""
    what = {"lat": ("latency: bind = local_lat (echo), connect = remote_lat (measures, prints)"),
            "thr": ("throughput: bind = local_thr (receives, prints), connect = remote_thr (sends)")}[name]
    p = argparse.ArgumentParser(prog=f"{PROG} {name}", description=f"libzmq-style {what}.")
    p.add_argument("role", choices=("bind", "connect"))
    p.add_argument("endpoint", help="tcp://HOST:PORT (bind: tcp://*:PORT) or ipc://PATH")
    p.add_argument("size", type=_size, help="message size in bytes")
    p.add_argument("count", type=_count, help="round trips (lat) or messages (thr)")
    p.add_argument("--impl", default="zmtp", choices=("zmtp",) + IMPL_NAMES,
                   help="zmtp (default backend), zmtp-io_uring, zmtp-epoll, pyzmq or raw (default zmtp)")
    p.add_argument("--timeout", type=float, default=0.0,
                   help="seconds a receive or send may wait (default 0: forever)")
    return p


def peer_parser() -> argparse.ArgumentParser:
    """The internal ``_peer`` sub-command."""
    p = argparse.ArgumentParser(prog=f"{PROG} _peer", description="internal: the other process of a run")
    p.add_argument("kind", choices=PEER_KINDS)
    p.add_argument("impl", choices=("zmtp",) + IMPL_NAMES + EXTRA_IMPL_NAMES)
    p.add_argument("endpoint")
    p.add_argument("size", type=_size)
    p.add_argument("count", type=_positive_int)
    p.add_argument("--rounds", type=_positive_int, default=1)
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    p.add_argument("--loop", choices=LOOPS, default="asyncio")
    p.add_argument("--curve", action="store_true", help="the bound socket is a CURVE server")
    return p


def make_plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Plan:
    """Check the options against this machine; parser.error() exits on a bad one."""
    wanted = [n for group in (args.impl or [list(IMPL_NAMES)]) for n in group]
    wanted = [n for n in IMPL_NAMES if n in wanted or (n.startswith("zmtp-") and "zmtp" in wanted)]
    impls, skipped = [], {}
    for name in wanted:
        why = unavailable_reason(impl_by_name(name))
        if why is None:
            impls.append(impl_by_name(name))
        else:
            skipped[name] = why
    if not impls:
        parser.error("no implementation can run here: " + "; ".join(skipped.values()))
    default = list(SWEEP_SCENARIOS) if args.sizes else list(DEFAULT_SCENARIOS)
    names = {n for group in (args.scenario or [default]) for n in group}
    if args.sizes and args.size is not None:
        parser.error("--size and --sizes: give one")
    names |= {BLOCKING_TWIN[n] for n in names if n in ASYNC_SCENARIOS}  # for the async/blocking ratio
    if args.loop != "asyncio":
        why = loop_unavailable_reason(args.loop)
        if why is not None:
            parser.error(f"--loop {args.loop}: {why}")
    cases = []
    for scenario in (s for s in SCENARIOS if s in names):
        if args.sizes and scenario in SWEEP_SCENARIOS:
            cases += [Case(scenario, size, args.count or sweep_count(scenario, size), sweep=True)
                      for size in args.sizes]
            continue
        if scenario == "many_peers":
            peers, note = peers_that_fit(args.peers or DEFAULT_PEERS, PEER_PROCESSES)
            cases.append(Case(scenario, args.size or DEFAULT_SIZE[scenario], args.count or DEFAULT_COUNT[scenario],
                              peers=peers, note=note or ""))
            continue
        sizes = [DEFAULT_SIZE[scenario]] if args.size is None else [args.size]
        if scenario == "curve_pushpull" and args.size is None:
            sizes = list(CURVE_SIZES)
        subs = args.subscribers if scenario == "pubsub" else [0]
        for size in sizes:
            count = DEFAULT_COUNT[scenario] if args.count is None else args.count
            if scenario == "curve_pushpull" and args.count is None and size >= 65536:
                count = CURVE_LARGE_COUNT
            cases += [Case(scenario, size, count, n) for n in subs]
    if args.timeout <= 0:
        parser.error("--timeout must be > 0")
    add_extra_columns(args, cases, impls, skipped)
    return Plan(impls, skipped, cases, args.runs, args.transport, args.timeout, args.pin, args.loop)


def add_extra_columns(args: argparse.Namespace, cases: List[Case], impls: List[Impl], skipped: Dict[str, str]) -> None:
    """zmtp-nocopy for sweep rows when zmtp runs; pyzmq-nocopy for sweep and
    big_message_memory rows when pyzmq runs; the C floor for sweep rows unless
    --impl leaves it out (skipped with the reason when it cannot be built)."""
    sweep = any(c.sweep for c in cases)
    if sweep and any(i.lib == "zmtp" for i in impls):
        impls.append(impl_by_name("zmtp-nocopy"))
    if any(i.lib == "pyzmq" for i in impls) and (sweep or any(c.scenario == "big_message_memory" for c in cases)):
        impls.append(impl_by_name("pyzmq-nocopy"))
    wanted = [n for group in (args.impl or [["c"]]) for n in group]
    if sweep and "c" in wanted:
        why = cfloor.unavailable_reason()
        if why is None:
            impls.append(impl_by_name("c"))
        else:
            skipped["c"] = why


def pin_to(cpu: int, parser: argparse.ArgumentParser) -> None:
    """Pin this thread (before any other starts, so all inherit it) and so the peers."""
    allowed = os.sched_getaffinity(0)
    if cpu not in allowed:
        parser.error(f"--pin {cpu}: this process may run on CPUs {sorted(allowed)}")
    os.sched_setaffinity(0, {cpu})


def table_main(argv: List[str]) -> int:
    """The side-by-side table (or JSON); exit code 1 when any run failed."""
    parser = table_parser()
    args = parser.parse_args(argv)
    if args.pin is not None:
        pin_to(args.pin, parser)
    plan = make_plan(args, parser)
    progress = ProgressLine(run_count(plan), sys.stderr.isatty() and not args.quiet)
    cells = run_plan(plan, progress)
    rows = build_rows(plan, cells)
    if args.json:
        print(json.dumps(plan_json(plan, rows), indent=2))
    else:
        print(render_table(plan, rows, cells))
    return 1 if any(c.errors for c in cells.values()) else 0


def tool_main(name: str, argv: List[str]) -> int:
    """``lat`` or ``thr``: a failure is one line on stderr and exit code 1."""
    parser = tool_parser(name)
    opts = parser.parse_args(argv)
    impl = impl_by_name(opts.impl)
    why = unavailable_reason(impl)
    if why is not None:
        parser.error(f"--impl {impl.name}: {why}")
    run = lat_main if name == "lat" else thr_main
    try:
        return run(opts.role, impl, opts.endpoint, opts.size, opts.count, opts.timeout)
    except Exception as exc:  # a timeout, a refused endpoint, a wrong size: say it plainly
        what = "timeout" if classify(exc).kind == "timeout" else "error"
        print(f"{PROG} {name} {opts.role}: {what}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m zmtp.perf [options]``, ``... lat|thr bind|connect ENDPOINT SIZE COUNT``."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if args[:1] in (["lat"], ["thr"]):
            return tool_main(args[0], args[1:])
        if args[:1] == ["_peer"]:
            opts = peer_parser().parse_args(args[1:])
            return peer_main(opts.kind, impl_by_name(opts.impl), opts.endpoint, opts.size, opts.count,
                             opts.timeout, opts.rounds, opts.loop, opts.curve)
        return table_main(args)
    except KeyboardInterrupt:
        return 130
