"""The mechanism interface (src/mechanism.h), through its own C tests.

* tests/c/test_mech.c: the NULL mechanism without sockets: two peers joined
  in memory (each a mechanism plus a decoder fed the other's bytes); the
  greeting and READY bytes on the wire, the peer's metadata, the failures
  (an unexpected command, the peer's ERROR), the registry, and a start
  under allocation failure at each of its allocations.
* tests/c/test_mech_conn.c: the engine's connection speaking "X-TEST", a
  mechanism plugged in through ``zm_sock.mech_ops`` alone (PLAIN's shape:
  later answers, state of its own, an authentication failure), against a
  raw ipc peer: commands in order and before queued messages, a refused
  peer gets ERROR and not READY, another mechanism's greeting is refused.

Each is compiled with the system C compiler (``$CC`` or ``cc``), with
-Werror, and with ``-fsanitize=$ZMTP_SANITIZE`` when that variable is set,
then run: it prints ``ok NAME`` per test and ``FAIL ...`` per failed check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import List, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
TESTS_C = Path(__file__).resolve().parent / "c"


def engine_sources() -> List[Path]:
    """Every C file of the core: all of src/ but the Python-facing files."""
    return sorted(p for p in SRC.glob("*.c") if "Python.h" not in p.read_text())


def build_and_run(tmp_path: Path, name: str, sources: Sequence[Path]) -> str:
    """Compile tests/c/<name>.c with `sources`, run it, return its output
    (the test fails on a compile error, a non-zero exit or a FAIL line)."""
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc})")
    if not (SRC / "mechanism.c").exists():
        pytest.skip("C sources not available (installed wheel without src/)")
    out = tmp_path / name
    cmd = [cc, "-std=c11", "-D_GNU_SOURCE", "-O1", "-g", "-Wall", "-Wextra", "-Wshadow",
           "-Werror", "-pthread", f"-I{SRC}"]
    sanitize = os.environ.get("ZMTP_SANITIZE", "").strip()
    if sanitize:
        cmd += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
    cmd += [str(TESTS_C / f"{name}.c")] + [str(s) for s in sources]
    cmd += ["-o", str(out), "-lpthread", "-ldl"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"compile failed:\n{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"
    env = dict(os.environ)
    if not sanitize:
        env.pop("LD_PRELOAD", None)
    run = subprocess.run([str(out)], capture_output=True, text=True, timeout=120, env=env)
    output = run.stdout + run.stderr
    assert run.returncode == 0 and "FAIL" not in run.stdout, output
    return run.stdout


def test_null_mechanism_in_memory(tmp_path: Path) -> None:
    """test_mech.c: every test says ok."""
    # mechanism.c's registry names PLAIN and CURVE: their files (and sodium.c) come with it
    sources = [SRC / f for f in ("mechanism.c", "mech_null.c", "mech_plain.c", "mech_curve.c", "sodium.c", "codec.c", "msg.c",
                                 "arena.c", "counters.c")]
    stdout = build_and_run(tmp_path, "test_mech", sources)
    for name in ("registry", "ready_bytes", "two_peers", "failures", "start_enomem",
                 "plain_bytes", "plain_handshake", "plain_zap_refusals", "plain_malformed"):
        assert f"ok {name}\n" in stdout, stdout


def test_connection_speaks_a_new_mechanism(tmp_path: Path) -> None:
    """test_mech_conn.c: every test says ok."""
    stdout = build_and_run(tmp_path, "test_mech_conn", engine_sources())
    for name in ("later_answers_in_order", "refused_peer_gets_error_not_ready",
                 "auth_failure", "other_mechanism_refused"):
        assert f"ok {name}\n" in stdout, stdout
