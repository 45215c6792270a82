"""Milliseconds per Jupyter execute: an ipykernel and a jupyter_client on zmtp
against both on pyzmq, side by side (docs/migrating-from-pyzmq.md, "Jupyter").

Run:  python benchmarks/jupyter_execute.py [--rounds 3] [--executes 50]

Each round starts, per implementation, one kernel and one client in fresh
processes (zmtp: both under ``python -m zmtp.compat``, so ``import zmq`` is
zmtp; pyzmq: plain ``python``), the two implementations alternating.  The
client runs ``execute("pass")`` ``--executes`` times after 5 warm-up runs,
each timed from the execute_request to the execute_reply on the shell channel
*and* the kernel's ``idle`` status on iopub (a cell's whole round trip, as a
notebook sees it).  Prints each round's median and the median over all
samples.  A measurement, never a test; needs jupyter_client and ipykernel.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
from jupyter_client.manager import KernelManager
executes = int(sys.argv[1])
km = KernelManager(kernel_name="bench")
km.start_kernel()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=120)

def one():
    t0 = time.perf_counter()
    msg_id = kc.execute("pass")
    while kc.get_shell_msg(timeout=60)["parent_header"].get("msg_id") != msg_id:
        pass
    while True:
        m = kc.get_iopub_msg(timeout=60)
        if (m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"):
            break
    return (time.perf_counter() - t0) * 1000

for _ in range(5):
    one()
ms = [one() for _ in range(executes)]
kc.stop_channels()
km.shutdown_kernel(now=False)
print("RESULT", json.dumps({"zmq": sys.modules["zmq"].__name__, "ms": ms}))
"""


def _spec(share: str, on_zmtp: bool) -> None:
    path = os.path.join(share, "kernels", "bench")
    os.makedirs(path, exist_ok=True)
    argv = [sys.executable, *(["-m", "zmtp.compat"] if on_zmtp else []), "-m", "ipykernel_launcher",
            "-f", "{connection_file}"]
    with open(os.path.join(path, "kernel.json"), "w") as f:
        json.dump({"argv": argv, "display_name": "bench", "language": "python"}, f)


def run_one(impl: str, executes: int) -> List[float]:
    """One kernel + client pair on `impl` ("zmtp" or "pyzmq"); ms per execute."""
    on_zmtp = impl == "zmtp"
    with tempfile.TemporaryDirectory(prefix="zmtp-jbench-") as tmp:
        share = os.path.join(tmp, "share")
        _spec(share, on_zmtp)
        env = dict(os.environ, JUPYTER_PATH=share, JUPYTER_RUNTIME_DIR=os.path.join(tmp, "runtime"),
                   IPYTHONDIR=os.path.join(tmp, "ipython"), JUPYTER_PLATFORM_DIRS="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        cmd = [sys.executable, *(["-m", "zmtp.compat"] if on_zmtp else []), "-c", CHILD, str(executes)]
        proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{impl} run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    got = json.loads(lines[-1][len("RESULT "):])
    assert got["zmq"] == ("zmtp" if on_zmtp else "zmq"), got["zmq"]
    return got["ms"]


def main() -> None:
    """Alternate zmtp and pyzmq runs; print medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--executes", type=int, default=50)
    args = ap.parse_args()
    impls = ["zmtp", "pyzmq"]
    samples: Dict[str, List[float]] = {impl: [] for impl in impls}
    print(f"ms per execute('pass') (execute_request -> execute_reply + idle), {args.executes} per run, medians")
    print(f"{'round':>5}  {'zmtp':>8}  {'pyzmq':>8}")
    for r in range(args.rounds):
        row = {}
        for impl in impls if r % 2 == 0 else impls[::-1]:
            ms = run_one(impl, args.executes)
            samples[impl].extend(ms)
            row[impl] = statistics.median(ms)
        print(f"{r + 1:>5}  {row['zmtp']:8.2f}  {row['pyzmq']:8.2f}", flush=True)
    med = {impl: statistics.median(samples[impl]) for impl in impls}
    print(f"{'all':>5}  {med['zmtp']:8.2f}  {med['pyzmq']:8.2f}   (zmtp / pyzmq = {med['zmtp'] / med['pyzmq']:.2f})")


if __name__ == "__main__":
    main()
