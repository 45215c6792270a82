"""A lever's effect: the perf table of an older commit against this tree,
runs interleaved.

Run:  python benchmarks/compare_builds.py REV [--rounds 5] [--scenario S,S] [--impl zmtp] [--pin CPU]

Builds REV (any git revision) in a worktree of its own (in the temp dir,
kept for the next call), then alternates ``python -m zmtp.perf --runs 1``
between that build and the working tree's, `rounds` times each, and prints
the medians side by side with their ratio.  docs/performance.md's per-lever
figures come from it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", ROOT, *args], check=True, capture_output=True, text=True).stdout.strip()


def build(rev: str) -> str:
    """The path of a worktree at `rev` with its extension built in place."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = os.path.join(tempfile.gettempdir(), f"zmtp-build-{sha[:12]}")
    if not os.path.isdir(path):
        git("worktree", "add", "--detach", "-f", path, sha)
    print(f"building {rev} ({sha[:12]}) in {path}", file=sys.stderr)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=path, check=True,
                   stdout=subprocess.DEVNULL)
    return path


def run_table(pythonpath: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "zmtp.perf", "--runs", "1", "--json", "--quiet", "--impl", args.impl]
    if args.scenario:
        cmd += ["--scenario", args.scenario]
    if args.pin is not None:
        cmd += ["--pin", str(args.pin)]
    env = dict(os.environ, PYTHONPATH=pythonpath)
    out = subprocess.run(cmd, env=env, cwd=tempfile.gettempdir(), check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", help="the 'before' revision, e.g. HEAD~1 or a commit id")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--scenario", default="", help="comma list (default: all)")
    ap.add_argument("--impl", default="zmtp", help="perf --impl (default: both zmtp columns)")
    ap.add_argument("--pin", type=int, default=None)
    args = ap.parse_args()
    trees = {"before": build(args.rev), "after": ROOT}
    got: Dict[Tuple[str, str, str], List[float]] = {}
    for i in range(args.rounds):
        for label, path in trees.items():
            print(f"round {i + 1}/{args.rounds}: {label}", file=sys.stderr)
            for row in run_table(path, args)["rows"]:
                for impl, value in row["values"].items():
                    if value is None:  # a column that does not run this row (async_* rows: one zmtp column)
                        continue
                    got.setdefault((f"{row['case']} {row['metric']}", impl, label), []).append(value)
    print(f"{args.rev} (before) vs the working tree (after); medians of {args.rounds} interleaved runs")
    print(f"{'case':24} {'column':14} {'before':>12} {'after':>12} {'after/before':>12}")
    for case, impl in sorted({(c, i) for c, i, _ in got}):
        if (case, impl, "before") not in got or (case, impl, "after") not in got:
            continue  # a row one of the two builds does not have (a scenario added since REV)
        before = statistics.median(got[(case, impl, "before")])
        after = statistics.median(got[(case, impl, "after")])
        print(f"{case:24} {impl:14} {before:12,.1f} {after:12,.1f} {after / before:12.2f}")


if __name__ == "__main__":
    main()
