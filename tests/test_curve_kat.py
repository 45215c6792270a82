"""CURVE known-answer test: a handshake and MESSAGEs replayed against bytes
libzmq 4.3.5 produced (tests/fixtures/curve_kat.txt).

The fixture was recorded by tests/fixtures/record_curve_kat.py: zmtp's CURVE
mechanism with fixed randomness (tests/c/det_sodium.c linked in place of
src/sodium.c: ephemeral keys, cookie key and long nonces from a seeded
stream) talked to pyzmq over TCP through a recording relay, as client and
as server, and each side sent known messages.  Here, with no network and
no pyzmq, tests/c/test_curve_kat.c feeds libzmq's recorded bytes to the
mechanism with the same keys and seed: it must accept libzmq's commands,
open its MESSAGE boxes to the recorded plaintexts, and produce zmtp's
recorded bytes exactly; every byte of every frame body libzmq sent,
flipped, must make it fail.  A fixture with one byte of zmtp's side flipped
fails too.  The fixed randomness is a link-time substitute in the test
binary only: the extension never contains it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
TESTS_C = Path(__file__).resolve().parent / "c"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "curve_kat.txt"
SOURCES = ["mechanism.c", "mech_null.c", "mech_plain.c", "mech_curve.c", "codec.c", "msg.c", "arena.c",
           "counters.c"]
EXIT_SKIP = 77


@pytest.fixture(scope="module")
def kat_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/c/test_curve_kat.c built with the deterministic libsodium shim
    (-Werror, and ``-fsanitize=$ZMTP_SANITIZE`` when set)."""
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc})")
    if not (SRC / "mech_curve.c").exists():
        pytest.skip("C sources not available (installed wheel without src/)")
    out = tmp_path_factory.mktemp("curve_kat") / "test_curve_kat"
    cmd = [cc, "-std=c11", "-D_GNU_SOURCE", "-O1", "-g", "-Wall", "-Wextra", "-Wshadow", "-Werror", "-pthread",
           f"-I{SRC}", f"-I{TESTS_C}"]
    sanitize = os.environ.get("ZMTP_SANITIZE", "").strip()
    if sanitize:
        cmd += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
    cmd += [str(TESTS_C / "test_curve_kat.c"), str(TESTS_C / "det_sodium.c")] + [str(SRC / s) for s in SOURCES]
    cmd += ["-o", str(out), "-ldl", "-lpthread"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"compile failed:\n{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"
    return out


def replay(binary: Path, fixture: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if not os.environ.get("ZMTP_SANITIZE", "").strip():
        env.pop("LD_PRELOAD", None)
    proc = subprocess.run([str(binary), "replay", str(fixture)], capture_output=True, text=True, timeout=120,
                          env=env)
    if proc.returncode == EXIT_SKIP:
        pytest.skip(proc.stdout.strip())
    return proc


def test_replay_matches_libzmq_recording(kat_binary: Path) -> None:
    """Both cases replay byte for byte; every flipped byte of libzmq's is
    refused (the counts are the frame body bytes libzmq sent)."""
    proc = replay(kat_binary, FIXTURE)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "FAIL" not in out, out
    for case in ("client", "server"):
        assert f"ok replay_{case}\n" in proc.stdout, out
        flips = [line for line in proc.stdout.splitlines() if line.startswith(f"ok flips_{case} ")]
        assert flips and int(flips[0].split()[2]) > 400, out


def _fixture_lines() -> List[str]:
    return FIXTURE.read_text().splitlines()


def _flip(lines: List[str], case: str, key: str, byte: int) -> List[str]:
    """The fixture with one byte of `key`'s hex in `case` flipped."""
    out, current = [], None
    for line in lines:
        if line.startswith("case "):
            current = line.split()[1]
        if current == case and line.startswith(key + " "):
            hexs = line.split()[1]
            b = bytearray.fromhex(hexs)
            b[byte] ^= 0x01
            line = f"{key} {b.hex()}"
        out.append(line)
    return out


@pytest.mark.parametrize("case,key,byte", [
    ("client", "zmtp", 100),    # in zmtp's HELLO: zmtp must make other bytes than recorded
    ("server", "zmtp", 64 + 30),  # in zmtp's WELCOME box
    ("client", "libzmq", 64 + 40),  # in libzmq's WELCOME box
    ("server", "libzmq", 64 + 20),  # in libzmq's HELLO
], ids=["client-zmtp-hello", "server-zmtp-welcome", "client-libzmq-welcome", "server-libzmq-hello"])
def test_flipped_fixture_is_refused(kat_binary: Path, tmp_path: Path, case: str, key: str, byte: int) -> None:
    """One byte flipped anywhere in the fixture's streams: the replay fails."""
    bad = tmp_path / "curve_kat_flipped.txt"
    bad.write_text("\n".join(_flip(_fixture_lines(), case, key, byte)) + "\n")
    assert bad.read_text() != FIXTURE.read_text()
    proc = replay(kat_binary, bad)
    assert proc.returncode != 0 and f"FAIL {case}:" in proc.stdout, proc.stdout + proc.stderr


def test_fixed_randomness_is_not_in_the_extension() -> None:
    """The hook is a test-binary substitute for src/sodium.c: the built
    extension holds no trace of it (no symbol, no way to switch it on)."""
    import zmtp._zmtp as ext

    data = Path(ext.__file__).read_bytes()
    assert b"det_sodium" not in data
    assert not any("det_sodium" in p.read_text() for p in SRC.glob("*.[ch]"))
