"""``zmtp.perf``'s side-by-side table: the ``Plan`` (columns, cases,
runs), ``run_plan`` (every case, runs interleaved across the columns, one
``Cell`` of results each), the rows with their medians and ratios, and
their renderings: the text table with its header and footer lines, and
the ``--json`` document.

Layering: imports ``zmtp.perf.config`` and ``scenarios`` (and ``peers``
for ``CellError``); imported by the command line only.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from zmtp import __version__
from zmtp.perf.config import (
    ASYNC_SCENARIOS,
    BLOCKING_TWIN,
    EXTRA_IMPL_NAMES,
    INPROC_SCENARIOS,
    PROXY_SCENARIOS,
    SCALE_SCENARIOS,
    Impl,
    fmt_size,
    lib_version,
    libsodium_of,
)
from zmtp.perf.peers import CellError
from zmtp.perf.scenarios import Case, Metric, metrics_of, run_once


# ---------------------------------------------------------------- the table run


@dataclass
class Plan:
    """What the table run does."""

    impls: List[Impl]
    skipped: Dict[str, str]
    cases: List[Case]
    runs: int
    transport: str
    timeout_s: float
    pin: Optional[int]
    loop: str = "asyncio"  # the event loop of the async_* scenarios (both sides)


@dataclass
class Cell:
    """Every run of one case for one implementation."""

    values: List[Dict[str, float]] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)

    def median(self, key: str) -> Optional[float]:
        figures = [v[key] for v in self.values]
        return statistics.median(figures) if figures else None

    def status(self) -> str:
        """"timeout" or "error" when no run succeeded (the first failure's kind)."""
        return self.errors[0].split(":")[0] if self.errors else "-"


class ProgressLine:
    """``[ 7/24] pushpull zmtp-epoll run 2/3 ...`` on stderr, overwritten in place."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.done = 0

    def show(self, text: str) -> None:
        self.done += 1
        if self.enabled:
            width = len(str(self.total))
            sys.stderr.write(f"\r[{self.done:>{width}}/{self.total}] {text} ...\x1b[K")
            sys.stderr.flush()

    def clear(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def endpoint_for(case: Case, transport: str, tmp: str, serial: int) -> str:
    """Where a run's bound socket goes: tcp on 127.0.0.1 (any port), ipc in
    `tmp`, or a fresh inproc name for the inproc scenarios."""
    if case.scenario in INPROC_SCENARIOS:
        return f"inproc://zmtp-perf-{os.getpid()}-{serial}"
    return "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp}/{serial}"


def case_impls(plan: Plan, case: Case) -> List[Impl]:
    """The columns that run `case`: all (zmtp-nocopy, pyzmq-nocopy and the C
    floor only in sweep rows, pyzmq-nocopy in big_message_memory), but a curve_*, proxy,
    many_peers or connect_rate case not in raw, an async_* case in the
    ratio's zmtp column (zmtp.asyncio: the owner never waits in C, so the
    two backends would measure the same code) and pyzmq (zmq.asyncio) only;
    raw has no asyncio column."""
    if case.sweep:  # every column, the nocopy ones and the C floor too
        return list(plan.impls)
    impls = [i for i in plan.impls if i.name not in EXTRA_IMPL_NAMES]
    if case.scenario == "big_message_memory":  # pyzmq's best of copy=True and copy=False
        return [i for i in plan.impls if i.name not in ("c", "zmtp-nocopy")]
    if case.curve or case.scenario in PROXY_SCENARIOS + ("many_peers", "connect_rate"):
        return [i for i in impls if i.lib != "raw"]  # raw sockets have no CURVE, no proxy, no ROUTER
    if case.scenario not in ASYNC_SCENARIOS:
        return impls
    zcol = zmtp_column(plan)
    return [i for i in impls if i.lib == "pyzmq" or i.name == zcol]


#: many_peers' time limit per run is at least this plus MANY_PEERS_S_PER_PEER per DEALER (10 000: 260 s):
#: connecting and serving thousands of peers takes longer than --timeout's default allows
MANY_PEERS_BASE_S = 60.0
MANY_PEERS_S_PER_PEER = 0.02


def case_timeout(plan: Plan, case: Case) -> float:
    """A run's time limit: --timeout, at least MANY_PEERS_BASE_S + MANY_PEERS_S_PER_PEER per peer in many_peers."""
    if case.scenario == "many_peers":
        return max(plan.timeout_s, MANY_PEERS_BASE_S + MANY_PEERS_S_PER_PEER * case.peers)
    return plan.timeout_s


def run_count(plan: Plan) -> int:
    """How many runs the plan makes (the progress line's total)."""
    return sum(len(case_impls(plan, case)) for case in plan.cases) * plan.runs


def run_plan(plan: Plan, progress: ProgressLine) -> Dict[Tuple[str, str], Cell]:
    """Every case, run by run, every implementation within a run (order rotated each run)."""
    cells: Dict[Tuple[str, str], Cell] = {(c.label, i.name): Cell() for c in plan.cases for i in plan.impls}
    tmp = tempfile.mkdtemp(prefix="zmtp-perf-")
    serial = 0
    try:
        for case in plan.cases:
            impls = case_impls(plan, case)
            for run in range(plan.runs):
                shift = run % max(1, len(impls))
                for impl in impls[shift:] + impls[:shift]:
                    progress.show(f"{case.label} {impl.name} run {run + 1}/{plan.runs}")
                    serial += 1
                    endpoint = endpoint_for(case, plan.transport, tmp, serial)
                    cell = cells[(case.label, impl.name)]
                    try:
                        cell.values.append(run_once(impl, case, endpoint, case_timeout(plan, case), plan.loop))
                    except CellError as exc:
                        cell.errors.append(str(exc))
    finally:
        progress.clear()
        shutil.rmtree(tmp, ignore_errors=True)
    return cells


def zmtp_column(plan: Plan) -> Optional[str]:
    """The zmtp column the ratios use: io_uring when it ran, else epoll."""
    names = [i.name for i in plan.impls]
    for name in ("zmtp-io_uring", "zmtp-epoll", "zmtp"):
        if name in names:
            return name
    return None


RATIOS: Tuple[Tuple[str, str, str], ...] = (
    ("zmtp/pyzmq", "zmtp", "pyzmq"),
    ("uring/epoll", "zmtp-io_uring", "zmtp-epoll"),
    ("zmtp/raw", "zmtp", "raw"),
)
#: the sweep's ratio to the C floor, from this size up (issue 19's target: >= 0.8 from 1 MiB)
C_FLOOR_RATIO = "zmtp/C"
C_FLOOR_FROM = 1 << 20
#: an async row's zmtp figure against zmtp's blocking row of the same shape (BLOCKING_TWIN)
ASYNC_RATIO = "async/blocking"


def ratio(metric: Metric, better: Optional[float], other: Optional[float]) -> Optional[float]:
    """> 1 when `better`'s column is better: a/b for throughput, b/a for latency."""
    if not better or not other:
        return None
    return other / better if metric.lower_is_better else better / other


def build_rows(plan: Plan, cells: Dict[Tuple[str, str], Cell]) -> List[Dict[str, Any]]:
    """One dict per table row: medians, every run, failures and ratios."""
    return [build_row(plan, cells, case, metric) for case in plan.cases for metric in metrics_of(case)]


def build_row(plan: Plan, cells: Dict[Tuple[str, str], Cell], case: Case, metric: Metric) -> Dict[str, Any]:
    """The row of `metric` for `case` (also one entry of the JSON's "rows")."""
    names = [i.name for i in plan.impls]
    row: Dict[str, Any] = {
        "case": case.label, "scenario": case.scenario, "size": case.size, "count": case.count,
        "transport": "inproc" if case.scenario in INPROC_SCENARIOS else plan.transport,
        "subscribers": case.subscribers or None, "metric": metric.key, "title": metric.title,
        "unit": metric.unit_name, "lower_is_better": metric.lower_is_better,
        "mechanism": "CURVE" if case.curve else "NULL", "sweep": case.sweep,
        "values": {}, "runs": {}, "errors": {}, "ratios": {},
    }
    for name in names:
        cell = cells[(case.label, name)]
        row["values"][name] = cell.median(metric.key)
        row["runs"][name] = [v[metric.key] for v in cell.values]
        if cell.errors:
            row["errors"][name] = cell.errors
    zcol = zmtp_column(plan)
    for title, a, b in RATIOS:
        a = zcol if a == "zmtp" else a
        if a in names and b in names:
            row["ratios"][title] = rounded(ratio(metric, row["values"][a], row["values"][b]))
    if case.sweep or case.scenario == "big_message_memory":
        best_of_copies(row, metric, zcol)
    if case.sweep and case.size >= C_FLOOR_FROM and "c" in names:
        zbest = row.get("zmtp_best", {}).get("value", row["values"].get(zcol or ""))
        row["ratios"][C_FLOOR_RATIO] = rounded(ratio(metric, zbest, row["values"]["c"]))
    if case.note:
        row["note"] = case.note
    if case.scenario in ASYNC_SCENARIOS:
        row["api"] = "asyncio"
        row["loop"] = plan.loop
        row["blocking_twin"] = BLOCKING_TWIN[case.scenario]
        twin = cells.get((BLOCKING_TWIN[case.scenario], zcol or ""))
        row["ratios"][ASYNC_RATIO] = rounded(ratio(metric, row["values"].get(zcol or ""),
                                                   twin.median(metric.key) if twin else None))
    return row


def best_of(row: Dict[str, Any], metric: Metric, copied: str, nocopy: str) -> Optional[Dict[str, Any]]:
    """{"value", "copy"}: the better of the `copied` and `nocopy` columns' figures, or None."""
    values = row["values"]
    options = [(values.get(n), n == copied) for n in (copied, nocopy) if values.get(n) is not None]
    if not options:
        return None
    pick = min if metric.lower_is_better else max
    value, copy = pick(options, key=lambda o: o[0])
    return {"value": value, "copy": copy}


def best_of_copies(row: Dict[str, Any], metric: Metric, zcol: Optional[str]) -> None:
    """Set the row's ``pyzmq_best`` (the better of the pyzmq and pyzmq-nocopy
    columns) and ``zmtp_best`` (of the ratio's zmtp column and zmtp-nocopy,
    when that ran) and base its zmtp/pyzmq ratio on them: each library at its
    best of copy=True and copy=False."""
    values = row["values"]
    zvalue = values.get(zcol or "")
    if "zmtp-nocopy" in values and zcol:
        zbest = best_of(row, metric, zcol, "zmtp-nocopy")
        if zbest is not None:
            row["zmtp_best"] = zbest
            zvalue = zbest["value"]
    best = best_of(row, metric, "pyzmq", "pyzmq-nocopy")
    if best is None:
        return
    row["pyzmq_best"] = best
    if "zmtp/pyzmq" in row["ratios"] or "pyzmq-nocopy" in values:
        row["ratios"]["zmtp/pyzmq"] = rounded(ratio(metric, zvalue, best["value"]))


def rounded(value: Optional[float]) -> Optional[float]:
    """A ratio as the JSON keeps it (4 decimals), None as is."""
    return None if value is None else round(value, 4)


def fmt_value(value: Optional[float], lower_is_better: bool, status: str) -> str:
    """A figure for the table: us with one decimal, msg/s as an integer with separators."""
    if value is None:
        return status
    if value < 100 and not lower_is_better:  # GB/s, fractions, low rates
        return f"{value:,.2f}"
    return f"{value:,.1f}" if lower_is_better else f"{value:,.0f}"


def render_table(plan: Plan, rows: List[Dict[str, Any]], cells: Dict[Tuple[str, str], Cell]) -> str:
    """The table, with a header line saying what ran and footer lines saying how to read it."""
    names = [i.name for i in plan.impls]
    best = any("pyzmq_best" in r for r in rows)
    if best:  # the pyzmq column shows the best of copy=True and copy=False; "copy" says which
        names = [n for n in names if n != "pyzmq-nocopy"]
    titles = [t for t, a, b in RATIOS] + [C_FLOOR_RATIO, ASYNC_RATIO]
    ratio_titles = [t for t in titles if any(t in r["ratios"] for r in rows)]
    zbest = any("zmtp_best" in r for r in rows)
    extra = (["zmtp copy"] if zbest else []) + (["pyzmq copy"] if best else [])
    head = ["case", "size", "metric"] + names + extra + ratio_titles
    body = []
    for row in rows:
        line = [row["case"], fmt_size(row["size"]), row["title"]]
        for name in names:
            status = cells[(row["case"], name)].status()
            value = row["pyzmq_best"]["value"] if name == "pyzmq" and "pyzmq_best" in row else row["values"][name]
            line.append(fmt_value(value, row["lower_is_better"], status))
        if zbest:
            line.append(str(row["zmtp_best"]["copy"]) if "zmtp_best" in row else "-")
        if best:
            line.append(str(row["pyzmq_best"]["copy"]) if "pyzmq_best" in row else "-")
        line += ["-" if row["ratios"].get(t) is None else f"{row['ratios'][t]:.2f}" for t in ratio_titles]
        body.append(line)
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    left = 3  # case, size, metric are left-aligned; figures right-aligned

    def fmt(r: List[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    out = [describe_plan(plan), fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in body]
    out += footer(plan, rows)
    return "\n".join(out)


def describe_plan(plan: Plan) -> str:
    """The header line: versions, transport, runs, pinning."""
    libs = [lib_version("zmtp")] + ([lib_version("pyzmq")] if any(i.lib == "pyzmq" for i in plan.impls) else [])
    where = "tcp 127.0.0.1" if plan.transport == "tcp" else "ipc"
    inproc = [c for c in plan.cases if c.scenario in INPROC_SCENARIOS]
    if inproc and len(inproc) == len(plan.cases):
        where = "inproc (two threads of this process)"
    elif inproc:
        where += " (inproc_* rows: inproc, two threads of this process)"
    if any(c.scenario in ASYNC_SCENARIOS for c in plan.cases):
        where += f"; async_* rows on the {plan.loop} loop"
    pin = f"pinned to CPU {plan.pin}" if plan.pin is not None else f"not pinned ({len(os.sched_getaffinity(0))} CPUs)"
    return f"{' vs '.join(libs)}; {where}; median of {plan.runs} interleaved run(s); {pin}"


def footer(plan: Plan, rows: List[Dict[str, Any]]) -> List[str]:
    """How to read the table, what was skipped and what failed."""
    zcol = zmtp_column(plan) or "zmtp"
    titles = list(rows[0]["ratios"]) if rows else []
    example = titles[0].split("/") if titles else ["a", "b"]
    lines = [
        f"ratios: > 1 means the first named is better (zmtp = {zcol}); msg/s rows: a/b; "
        f"latency rows: b/a ({example[0]}/{example[1]} = {example[1]} RTT / {example[0]} RTT).",
        "raw = plain Python sockets, 4-byte length prefix per message (ping-pong; one sendall per message).",
        "msg/s is counted by the receiver from its first message to its last; pubsub: the slowest subscriber.",
    ]
    if any(c.scenario in INPROC_SCENARIOS for c in plan.cases):
        lines.append("inproc_* rows: the peer is another thread of this process, both sockets of one Context; "
                     "both threads run Python and share the GIL.")
        if any(i.lib == "raw" for i in plan.impls):
            lines.append("raw in inproc_* rows: no socket; two threads pass the bytes through queue.SimpleQueue "
                         "(one per direction, unbounded, no framing): Python's own thread hand-off.")
    if any(c.scenario in ASYNC_SCENARIOS for c in plan.cases):
        lines += [
            f"async_* rows: zmtp.asyncio (in the {zcol} column only) vs pyzmq's zmq.asyncio, each side a coroutine "
            f"in its own process on the {plan.loop} loop, every send and recv awaited; the receiver times the "
            "messages after a warm-up.",
            f"{ASYNC_RATIO}: the async row's {zcol} figure against the same column's blocking row of the same shape "
            "(reqrep, pushpull, dealer_router). Targets (issue 16): zmtp/pyzmq >= 3.33 on async_reqrep "
            "(RTT <= 0.3x pyzmq asyncio), >= 3 on the async msg/s rows; async/blocking >= 0.5 (within 2x).",
        ]
    if any(c.curve for c in plan.cases):
        sodium = curve_libsodium(plan)
        lines += [
            "curve_* rows: CURVE on both sides, key pairs made per run (zmtp.curve_keypair, zmq.curve_keypair); "
            "the peer process is the CURVE server; raw has no CURVE column. curve_handshake: a REQ connects, "
            "handshakes, makes one round trip and closes, repeated.",
            "libsodium (the cipher's speed depends on its version): "
            + ", ".join(f"{lib} {name or 'none'}" for lib, name in sodium.items())
            + " (ZMTP_LIBSODIUM=PATH makes zmtp load another).",
            "Targets (issue 17): zmtp/pyzmq >= 3.33 on curve_reqrep p50 (RTT <= 0.3x pyzmq's), >= 3 on "
            "curve_pushpull 64 B, >= 1.5 on curve_pushpull 64 KiB, >= 1 on curve_handshake.",
        ]
    if any(c.scenario in PROXY_SCENARIOS for c in plan.cases):
        lines += [
            "proxy row: PUSH (this process) -> a proxy process (PULL frontend, PUSH backend; zmtp.proxy, "
            "zmq.proxy) -> a PULL process that times what it receives; all three on the column's library; "
            "raw has no proxy column.",
            "Target (issue 18): zmtp/pyzmq >= 2 on proxy 64 B.",
        ]
    lines += sweep_footer(plan, rows)
    lines += [f"{name}: skipped: {why}" for name, why in plan.skipped.items()]
    listed = set()
    for row in rows:
        if row["case"] in listed:
            continue  # the case's first row already listed its failures
        listed.add(row["case"])
        for name, errors in row["errors"].items():
            lines += [f"{row['case']} {name}: {e}" for e in errors]
    return lines


def sweep_footer(plan: Plan, rows: List[Dict[str, Any]]) -> List[str]:
    """How to read the sweep and scale rows (issue 19), with their targets."""
    lines = []
    if any(c.sweep for c in plan.cases):
        lines += [
            "sweep rows (--sizes): counts scaled so each cell moves about the same bytes; pyzmq = the best of "
            "copy=True and copy=False (both run; 'pyzmq copy' says which won); zmtp-nocopy = zmtp's default "
            "backend with copy=False, and zmtp/pyzmq and zmtp/C take zmtp's best of it and the zmtp column "
            "('zmtp copy' says which); c = benchmarks/c_stream.c, two C "
            "processes, 8-byte length prefix, plain write/read loops, 4 MiB socket buffers.",
            f"Targets (issue 19): pushpull zmtp/pyzmq >= 1.5 at every size; {C_FLOOR_RATIO} >= 0.8 from 1 MiB; "
            "reqrep zmtp/pyzmq >= 1.43 (RTT <= 0.7x pyzmq's).",
        ]
    if any(c.scenario in SCALE_SCENARIOS for c in plan.cases):
        lines += [
            "many_peers: a ROUTER process, --peers DEALERs in client processes, each DEALER round trips in turn; "
            "served = replies / requests; round trips/s counted by the ROUTER; RSS per idle peer = (ROUTER RSS "
            "with every peer connected - after bind) / peers. connect_rate: connect, NULL handshake, one REQ/REP "
            "round trip, close, repeated. big_message_memory: the PULL's peak RSS above idle while receiving one "
            "message (pyzmq: best of copy=True/False).",
            "Targets (issue 19): many_peers all served, p99 and round trips/s >= pyzmq's; connect_rate "
            "zmtp/pyzmq >= 2; big_message_memory peak RSS / size <= 1.5.",
        ]
    lines += sorted({f"{r['case']}: {r['note']}" for r in rows if r.get("note")})
    return lines


def curve_libsodium(plan: Plan) -> Dict[str, Optional[str]]:
    """The libsodium file of each library of the plan that runs the curve rows."""
    libs = [lib for lib in ("zmtp", "pyzmq") if any(i.lib == lib for i in plan.impls)]
    return {lib: libsodium_of(lib) for lib in libs}


def plan_json(plan: Plan, rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The --json document."""
    extra = {"libsodium": curve_libsodium(plan)} if any(c.curve for c in plan.cases) else {}
    return {**extra,
        "zmtp": __version__,
        "pyzmq": lib_version("pyzmq") if any(i.lib == "pyzmq" for i in plan.impls) else None,
        "transport": plan.transport,
        "runs": plan.runs,
        "pin": plan.pin,
        "loop": plan.loop,
        "impls": [i.name for i in plan.impls],
        "skipped": plan.skipped,
        "rows": rows,
    }
