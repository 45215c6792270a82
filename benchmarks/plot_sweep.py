"""Plot issue 19's sweep: msg/s and GB/s against message size (log-log) for
zmtp, pyzmq, raw Python sockets and the C floor, from the JSON of

    python -m zmtp.perf --sizes 64,1K,8K,64K,256K,1M,16M,64M --scenario pushpull --json > sweep.json
    python benchmarks/plot_sweep.py sweep.json docs/sweep.png [--label "busy machine, not the final figures"]

Needs matplotlib (``pip install zmtp[plot]``; never needed by the package
or the tests).  The pushpull sweep rows make the two panels (msg/s, GB/s);
reqrep sweep rows, when present, make a third (RTT p50).  pyzmq's line is
the best of copy=True and copy=False at each size (the table's figure), and
so is the "zmtp best" line (the zmtp-io_uring and zmtp-nocopy columns).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional, Tuple

#: the lines drawn: (JSON column, legend); "pyzmq" is the row's pyzmq_best where it has one, "zmtp" its
#: zmtp_best (both: the better of copy=True and copy=False, what the ratios use)
SERIES: Tuple[Tuple[str, str], ...] = (
    ("zmtp", "zmtp best (io_uring or copy=False)"),
    ("zmtp-io_uring", "zmtp io_uring"),
    ("zmtp-epoll", "zmtp epoll"),
    ("pyzmq", "pyzmq (best of copy=True/False)"),
    ("raw", "raw Python sockets"),
    ("c", "C floor (c_stream.c)"),
)
#: the panels: (scenario, metric, y-axis label)
PANELS: Tuple[Tuple[str, str, str], ...] = (
    ("pushpull", "msg_s", "PUSH -> PULL msg/s"),
    ("pushpull", "gb_s", "PUSH -> PULL GB/s"),
    ("reqrep", "p50_us", "REQ/REP RTT p50 [us]"),
)


def figure_of(row: Dict[str, Any], column: str) -> Optional[float]:
    """The row's figure for `column` (pyzmq and zmtp: the best of copy=True and copy=False)."""
    if column == "pyzmq" and "pyzmq_best" in row:
        return float(row["pyzmq_best"]["value"])
    if column == "zmtp" and "zmtp_best" in row:
        return float(row["zmtp_best"]["value"])
    value = row["values"].get(column)
    return None if value is None else float(value)


def series(rows: List[Dict[str, Any]], scenario: str, metric: str, column: str) -> Tuple[List[int], List[float]]:
    """(sizes, figures) of one line: the sweep rows of `scenario` and `metric`, by size."""
    points = sorted((r["size"], figure_of(r, column)) for r in rows
                    if r.get("scenario") == scenario and r.get("metric") == metric and r.get("size"))
    kept = [(s, v) for s, v in points if v is not None and v > 0]
    return [s for s, _ in kept], [v for _, v in kept]


def size_label(size: int) -> str:
    """64, 1K, 64K, 1M: an axis tick."""
    for unit, scale in (("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def plot(doc: Dict[str, Any], out: str, label: str = "") -> int:
    """Write the PNG; the number of panels drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc.get("rows", []) if r.get("sweep")]
    panels = [p for p in PANELS if any(r["scenario"] == p[0] and r["metric"] == p[1] for r in rows)]
    if not panels:
        raise SystemExit("no sweep rows in the JSON (run python -m zmtp.perf --sizes ... --json)")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    for ax, (scenario, metric, title) in zip(axes[0], panels):
        sizes_seen: List[int] = []
        for column, legend in SERIES:
            xs, ys = series(rows, scenario, metric, column)
            if xs:
                ax.plot(xs, ys, marker="o", label=legend)
                sizes_seen += xs
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ticks = sorted(set(sizes_seen))
        ax.set_xticks(ticks)
        ax.set_xticklabels([size_label(s) for s in ticks], rotation=45)
        ax.set_xlabel("message size [bytes]")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize="small")
    where = doc.get("transport", "tcp")
    head = f"zmtp {doc.get('zmtp', '?')} vs {doc.get('pyzmq') or 'pyzmq (not run)'}; {where}; " \
           f"median of {doc.get('runs', '?')} run(s)"
    fig.suptitle(head + (f"\n{label}" if label else ""), fontsize="medium")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return len(panels)


def main(argv: Optional[List[str]] = None) -> int:
    """``plot_sweep.py JSON PNG [--label TEXT]``."""
    p = argparse.ArgumentParser(description="msg/s and GB/s against size from python -m zmtp.perf --sizes --json")
    p.add_argument("json", help="the sweep's JSON (- for stdin)")
    p.add_argument("png", help="the PNG to write")
    p.add_argument("--label", default="", help="a second title line (e.g. 'busy machine, not the final figures')")
    args = p.parse_args(argv)
    with (sys.stdin if args.json == "-" else open(args.json)) as f:
        doc = json.load(f)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("plot_sweep.py needs matplotlib: pip install 'zmtp[plot]' (or pip install matplotlib)",
              file=sys.stderr)
        return 2
    plot(doc, args.png, args.label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
