"""The mechanism interface (src/mechanism.h) and NULL through it, without sockets.

tests/c/test_mech.c joins two NULL peers in memory (each a mechanism plus a
decoder fed the other's bytes), checks the READY bytes on the wire, the
peer's metadata, the failures (an unexpected command, the peer's ERROR),
the registry, and a start under allocation failure at each of its
allocations.  It is compiled with the system C compiler (``$CC`` or
``cc``), with -Werror, and with ``-fsanitize=$ZMTP_SANITIZE`` when that
variable is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
TEST_C = Path(__file__).resolve().parent / "c" / "test_mech.c"
SOURCES = ("mechanism.c", "mech_null.c", "codec.c", "msg.c", "arena.c", "counters.c")
TESTS = ("registry", "ready_bytes", "two_peers", "failures", "start_enomem")


def test_mechanism_c(tmp_path: Path) -> None:
    """Every test of test_mech.c says ok and none says FAIL."""
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc})")
    if not (SRC / "mechanism.c").exists() or not TEST_C.exists():
        pytest.skip("C sources not available (installed wheel without src/)")
    out = tmp_path / "test_mech"
    cmd = [cc, "-std=c11", "-D_GNU_SOURCE", "-O1", "-g", "-Wall", "-Wextra", "-Wshadow",
           "-Werror", "-pthread", f"-I{SRC}"]
    sanitize = os.environ.get("ZMTP_SANITIZE", "").strip()
    if sanitize:
        cmd += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
    cmd += [str(TEST_C)] + [str(SRC / f) for f in SOURCES] + ["-o", str(out), "-lpthread"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"compile failed:\n{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"
    env = dict(os.environ)
    if not sanitize:
        env.pop("LD_PRELOAD", None)
    run = subprocess.run([str(out)], capture_output=True, text=True, timeout=120, env=env)
    output = run.stdout + run.stderr
    assert run.returncode == 0 and "FAIL" not in run.stdout, output
    for name in TESTS:
        assert f"ok {name}\n" in run.stdout, output
