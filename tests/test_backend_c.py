"""The C I/O backends (src/backend.c, ring.c, epoll.c) through their own C test.

tests/c/test_backend.c is compiled with the system C compiler (``$CC`` or
``cc``) into a temporary directory, with -Werror, and with
``-fsanitize=$ZMTP_SANITIZE`` when that variable is set, then run once per
backend.  It prints ``ok``/``FAIL``/``skip`` lines and exits 0 (pass), 1
(failure) or 77 (backend unavailable here: io_uring refused by the kernel,
a seccomp profile or a sysctl), which becomes a pytest skip with its reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
TEST_C = Path(__file__).resolve().parent / "c" / "test_backend.c"
EXIT_SKIP = 77

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="io_uring and epoll are Linux only"
)


@pytest.fixture(scope="module")
def test_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc})")
    if not (SRC / "backend.c").exists() or not TEST_C.exists():
        pytest.skip("C sources not available (installed wheel without src/)")
    out = tmp_path_factory.mktemp("backend_c") / "test_backend"
    cmd = [
        cc, "-std=c11", "-D_GNU_SOURCE", "-O1", "-g",
        "-Wall", "-Wextra", "-Wshadow", "-Werror", "-pthread",
        f"-I{SRC}",
    ]
    sanitize = os.environ.get("ZMTP_SANITIZE", "").strip()
    if sanitize:
        cmd += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer",
                "-fno-sanitize-recover=all"]
    cmd += [str(TEST_C), str(SRC / "backend.c"), str(SRC / "ring.c"),
            str(SRC / "epoll.c"), str(SRC / "counters.c"), "-o", str(out), "-lpthread"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"compile failed:\n{' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return out


# Not named "backend": tests/conftest.py runs tests with that parameter in a
# thread bound to a zmtp backend; this one only runs a subprocess.
@pytest.mark.parametrize("backend_name", ["io_uring", "epoll"])
def test_backend_c(test_binary: Path, backend_name: str) -> None:
    backend = backend_name
    proc = subprocess.run(
        [str(test_binary), backend], capture_output=True, text=True, timeout=60
    )
    output = proc.stdout + proc.stderr
    if proc.returncode == EXIT_SKIP:
        reason = next(
            (line for line in proc.stdout.splitlines() if line.startswith("skip")),
            output.strip(),
        )
        pytest.skip(f"{backend}: {reason}")
    if proc.returncode != 0:
        pytest.fail(f"test_backend {backend} exited {proc.returncode}:\n{output}")
    assert "FAIL" not in proc.stdout, output
    assert "ok open_close" in proc.stdout, output
