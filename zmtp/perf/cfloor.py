"""``zmtp.perf``'s C floor: ``benchmarks/c_stream.c`` (two C processes
streaming or ping-ponging SIZE-byte messages with an 8-byte length prefix
over the same loopback, plain write/read loops), compiled on first use with
``cc -O2`` and cached in the temp dir by the source's hash; the ``c``
column of the sweep rows.

The source lives in the repository's ``benchmarks/`` (not in the package):
a source checkout finds it next to ``zmtp/``; elsewhere
``ZMTP_PERF_C_STREAM=PATH`` names it.  Without it or without a compiler the
column is skipped with the reason.

Layering: imports ``zmtp.perf.config`` only; imported by the scenarios,
the table and the command line.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

#: the environment variable that names c_stream.c outside a source checkout
SOURCE_ENV = "ZMTP_PERF_C_STREAM"


def source_path() -> Path:
    """Where c_stream.c is: ``$ZMTP_PERF_C_STREAM``, else the checkout's ``benchmarks/c_stream.c``."""
    named = os.environ.get(SOURCE_ENV)
    if named:
        return Path(named)
    return Path(__file__).resolve().parents[2] / "benchmarks" / "c_stream.c"


def compiler() -> Optional[str]:
    """The C compiler's path (``$CC``, else cc), or None."""
    return shutil.which(os.environ.get("CC", "cc"))


_built: Dict[str, Tuple[Optional[str], Optional[str]]] = {}


def build(src: Optional[Path] = None) -> Tuple[Optional[str], Optional[str]]:
    """(the binary's path, None) or (None, why not) for c_stream.c, or the C
    program `src` (benchmarks/c_zmtp_peer.c); built once per source content
    (cached in the temp dir; a concurrent build is harmless: each writes its
    own file and renames it into place)."""
    if src is None:
        src = source_path()
        if not src.is_file():
            return None, f"{src} not found (a source checkout has it; or set {SOURCE_ENV})"
    elif not src.is_file():
        return None, f"{src} not found"
    cc = compiler()
    if cc is None:
        return None, f"no C compiler ({os.environ.get('CC', 'cc')} not found)"
    code = src.read_bytes()
    key = hashlib.sha256(code + cc.encode()).hexdigest()[:16]
    if key in _built:
        return _built[key]
    out_dir = Path(tempfile.gettempdir()) / f"zmtp-perf-cfloor-{key}"
    binary = out_dir / src.stem
    if not binary.is_file():
        out_dir.mkdir(exist_ok=True)
        tmp = out_dir / f"{src.stem}.{os.getpid()}.tmp"
        r = subprocess.run([cc, "-O2", "-o", str(tmp), str(src)], capture_output=True, text=True)
        if r.returncode != 0:
            _built[key] = (None, f"{cc} failed on {src.name}: {r.stderr.strip().splitlines()[-1:]}")
            return _built[key]
        os.replace(tmp, binary)
    _built[key] = (str(binary), None)
    return _built[key]


def unavailable_reason() -> Optional[str]:
    """None when the C floor can run here, else why not."""
    return build()[1]


def transport_arg(endpoint: str) -> str:
    """c_stream's transport for a run's bind endpoint: ``tcp`` (127.0.0.1, any port) or ``ipc:PATH``."""
    if endpoint.startswith("ipc://"):
        return "ipc:" + endpoint[len("ipc://"):]
    if endpoint.startswith("tcp://"):
        return "tcp"
    raise ValueError(f"the C floor runs over tcp or ipc, not {endpoint}")


def run(mode: str, endpoint: str, size: int, count: int, timeout_s: float) -> Dict[str, float]:
    """One C floor run: ``stream`` ({"msg_s"}) or ``pingpong`` ({"p50_us", "p99_us"}).
    subprocess.TimeoutExpired after `timeout_s`; RuntimeError when it fails."""
    binary, why = build()
    if binary is None:
        raise RuntimeError(why)
    r = subprocess.run([binary, mode, transport_arg(endpoint), str(size), str(count)],
                       capture_output=True, text=True, timeout=timeout_s)
    if r.returncode != 0:
        raise RuntimeError(f"c_stream exited {r.returncode}: {r.stderr.strip()}")
    words = r.stdout.split()
    return {words[i]: float(words[i + 1]) for i in range(0, len(words) - 1, 2)}
