"""``zmtp.perf``'s settings and columns: the constants (scenario names,
default sizes and counts, time limits), ``Impl`` (one column of the table:
a library and, for zmtp, its backend) and the helpers that tell whether a
column can run here, what its peer processes' environment is and which
backend a thread opens.

Layering: the bottom of ``zmtp/perf/``; it imports only ``zmtp`` itself
(``zmtp._zmtp`` and the package's version).  Every other module of
``zmtp/perf/`` may import it; it imports none of them.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from zmtp import __version__, _zmtp

PROG = "python -m zmtp.perf"
IMPL_NAMES: Tuple[str, ...] = ("zmtp-io_uring", "zmtp-epoll", "pyzmq", "raw")
SCENARIOS: Tuple[str, ...] = ("reqrep", "pushpull", "pushpull_batch", "dealer_router", "pubsub",
                              "inproc_reqrep", "inproc_pushpull",
                              "async_reqrep", "async_pushpull", "async_dealer_router",
                              "curve_reqrep", "curve_pushpull", "curve_handshake",
                              "proxy", "many_peers", "connect_rate", "big_message_memory")
#: scenarios whose peer is a thread of this process over inproc://
INPROC_SCENARIOS: Tuple[str, ...] = ("inproc_reqrep", "inproc_pushpull")
#: scenarios whose two sides are coroutines (zmtp.asyncio / zmq.asyncio), each in its own process
ASYNC_SCENARIOS: Tuple[str, ...] = ("async_reqrep", "async_pushpull", "async_dealer_router")
#: an async scenario's blocking row of the same shape (the async/blocking ratio); selecting the
#: async one runs this one too
BLOCKING_TWIN: Dict[str, str] = {"async_reqrep": "reqrep", "async_pushpull": "pushpull",
                                 "async_dealer_router": "dealer_router"}
#: scenarios run with the CURVE mechanism on both sides (the peer process is the CURVE server); raw has
#: no column there.  curve_pushpull makes two rows (CURVE_SIZES) unless --size names one
CURVE_SCENARIOS: Tuple[str, ...] = ("curve_reqrep", "curve_pushpull", "curve_handshake")
CURVE_SIZES: Tuple[int, ...] = (64, 65536)
#: a proxy between two peer processes: PUSH (the driver) -> PULL | proxy | PUSH (a process of its own:
#: zmtp.proxy or zmq.proxy) -> PULL (another process); raw has no column there
PROXY_SCENARIOS: Tuple[str, ...] = ("proxy",)
#: issue 19's scale rows, not in the default run (each takes long or needs many descriptors):
#: many_peers (one ROUTER, --peers DEALERs in several client processes), connect_rate (connect,
#: handshake, one round trip, close, repeated; NULL), big_message_memory (the receiver's peak RSS
#: while receiving one 64 MiB message).  raw has no column there but in big_message_memory
SCALE_SCENARIOS: Tuple[str, ...] = ("many_peers", "connect_rate", "big_message_memory")
#: the scenarios --sizes sweeps (one row per size): the zmtp-nocopy, pyzmq-nocopy and c (C floor) columns join them
SWEEP_SCENARIOS: Tuple[str, ...] = ("pushpull", "reqrep")
#: columns only some rows have: zmtp (default backend) and pyzmq with copy=False (sweep rows: each
#: library's figure in the zmtp/pyzmq ratio is its best of copy=True and copy=False; big_message_memory:
#: pyzmq's) and the C floor (sweep rows)
EXTRA_IMPL_NAMES: Tuple[str, ...] = ("zmtp-nocopy", "pyzmq-nocopy", "c")
#: --sizes' default (issue 19's sweep)
SWEEP_SIZES: Tuple[int, ...] = (64, 1024, 8192, 65536, 262144, 1 << 20, 16 << 20, 64 << 20)
#: a sweep cell's bytes (pushpull) and round-trip bytes (reqrep) when --count is not given: the count
#: is this / size, within [SWEEP_MIN_COUNT (reqrep) or SWEEP_STREAM_MIN_COUNT, the scenario's default count]
SWEEP_STREAM_BYTES = 512 << 20
SWEEP_RTT_BYTES = 128 << 20
SWEEP_MIN_COUNT = 4
#: a stream cell's least count: a stream has no warm-up (the receiver times from its first message), and a
#: receiver's allocator reaches its steady state only after a few big messages (zmtp's kept mappings,
#: glibc's heap): 8 x 64 MiB measured 0.6x what 60 do
SWEEP_STREAM_MIN_COUNT = 32
#: many_peers: DEALERs (--peers; fewer when RLIMIT_NOFILE's hard limit does not allow them), client
#: processes; each DEALER makes DEFAULT_COUNT["many_peers"] round trips
DEFAULT_PEERS = 10_000
PEER_PROCESSES = 4
#: names --scenario takes for a group of scenarios
SCENARIO_GROUPS: Dict[str, Tuple[str, ...]] = {"curve": CURVE_SCENARIOS}
#: what runs without --scenario: all but the curve ones (the inproc ones add ~1.5-3 s to a ~20 s table, no
#: peer processes; the async ones a few seconds: fewer messages, and only one zmtp column and pyzmq run
#: them; the curve ones would add well over 10 s: a peer process per run for four rows, and handshakes)
#: nor the proxy row (three processes per run)
DEFAULT_SCENARIOS: Tuple[str, ...] = tuple(s for s in SCENARIOS
                                           if s not in CURVE_SCENARIOS + PROXY_SCENARIOS + SCALE_SCENARIOS)
DEFAULT_SIZE: Dict[str, int] = {"reqrep": 64, "pushpull": 64, "pushpull_batch": 64, "dealer_router": 1024, "pubsub": 64,
                                "inproc_reqrep": 64, "inproc_pushpull": 64,
                                "async_reqrep": 64, "async_pushpull": 64, "async_dealer_router": 1024,
                                "curve_reqrep": 64, "curve_pushpull": 64, "curve_handshake": 64, "proxy": 64,
                                "many_peers": 64, "connect_rate": 64, "big_message_memory": 64 << 20}
DEFAULT_COUNT: Dict[str, int] = {"reqrep": 10_000, "pushpull": 200_000, "pushpull_batch": 200_000,
                                 "dealer_router": 100_000, "pubsub": 50_000,
                                 "inproc_reqrep": 10_000, "inproc_pushpull": 200_000,
                                 "async_reqrep": 2_000, "async_pushpull": 20_000, "async_dealer_router": 10_000,
                                 "curve_reqrep": 5_000, "curve_pushpull": 100_000, "curve_handshake": 300,
                                 "proxy": 200_000, "many_peers": 5, "connect_rate": 300, "big_message_memory": 1}
#: curve_pushpull's count for messages of 64 KiB and more (no --count): the cipher bounds them
CURVE_LARGE_COUNT = 5_000
#: the event loops an async run can use (--loop): asyncio's default (a selector loop) or uvloop
LOOPS: Tuple[str, ...] = ("asyncio", "uvloop")
#: messages per send_batch() call in the pushpull_batch scenario
BATCH = 1000
DEFAULT_SUBSCRIBERS: Tuple[int, ...] = (1, 4)
DEFAULT_TIMEOUT_S = 30.0
PEER_LINGER_MS = 1000
PROBE = b"\x00probe"
PROBE_EVERY_S = 0.002
GRACE_S = 5.0


# ---------------------------------------------------------------- implementations


@dataclass(frozen=True)
class Impl:
    """One column: a library and, for zmtp, the backend its threads use."""

    name: str
    lib: str  # "zmtp", "pyzmq" or "raw"
    backend: str = ""  # "io_uring" or "epoll" for zmtp; "" = the default choice
    copy: bool = True  # False sends and receives with copy=False (the zmtp-nocopy and pyzmq-nocopy columns)


def impl_by_name(name: str) -> Impl:
    """``zmtp-io_uring`` -> Impl("zmtp-io_uring", "zmtp", "io_uring"); also ``zmtp``, ``pyzmq``, ``raw``."""
    if name == "zmtp":
        return Impl(name, "zmtp", "")
    if name.startswith("zmtp-") and name[5:] in ("io_uring", "epoll"):
        return Impl(name, "zmtp", name[5:])
    if name in ("pyzmq", "raw"):
        return Impl(name, name)
    if name == "pyzmq-nocopy":
        return Impl(name, "pyzmq", copy=False)
    if name == "zmtp-nocopy":  # zmtp's default backend, Frames both ways
        return Impl(name, "zmtp", "", copy=False)
    if name == "c":  # the C floor (benchmarks/c_stream.c)
        return Impl(name, "c")
    raise ValueError(f"unknown implementation {name!r} (use zmtp, zmtp-io_uring, zmtp-epoll, pyzmq or raw)")


def unavailable_reason(impl: Impl) -> Optional[str]:
    """None when `impl` can run here, else why not (pyzmq missing, io_uring refused)."""
    if impl.lib == "pyzmq":
        try:
            importlib.import_module("zmq")
        except ImportError as exc:
            return f"pyzmq not importable ({exc})"
        return None
    if impl.lib == "zmtp" and impl.backend:
        usable, reason = _zmtp._probe_backend(impl.backend)
        return None if usable else f"{impl.backend} unavailable ({reason})"
    return None


def loop_unavailable_reason(loop: str) -> Optional[str]:
    """None when the event loop `loop` ("asyncio" or "uvloop") can run here, else why not."""
    if loop not in LOOPS:
        return f"unknown event loop {loop!r} (use {' or '.join(LOOPS)})"
    if loop == "uvloop":
        try:
            importlib.import_module("uvloop")
        except ImportError as exc:
            return f"uvloop is not installed ({exc}; pip install uvloop)"
    return None


def fmt_size(size: int) -> str:
    """``64 B``, ``1 KiB``, ``64 KiB``, ``1 MiB``: a size as the table shows it."""
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def parse_size(text: str) -> int:
    """``64``, ``8K``, ``1M``, ``64MiB``: bytes (K = 1024, M = 1024 * 1024); ValueError otherwise."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    digits = t[:-1] if scale > 1 else t
    if not digits.isdigit():
        raise ValueError(f"not a size: {text!r} (use 64, 8K, 1M)")
    return int(digits) * scale


def sweep_count(scenario: str, size: int) -> int:
    """A sweep cell's count: about the same bytes at every size (a few round trips at 64 MiB, after the
    warm-up; a stream at least SWEEP_STREAM_MIN_COUNT messages)."""
    if scenario == "reqrep":
        return max(SWEEP_MIN_COUNT, min(DEFAULT_COUNT[scenario], SWEEP_RTT_BYTES // max(1, size)))
    return max(SWEEP_STREAM_MIN_COUNT, min(DEFAULT_COUNT[scenario], SWEEP_STREAM_BYTES // max(1, size)))


def warmup_count(count: int) -> int:
    """Round trips (or messages) done before measuring."""
    return min(1000, max(10, count // 10))


def peer_env(impl: Impl) -> Dict[str, str]:
    """The environment of a peer process: ``ZMTP_BACKEND`` set for a zmtp backend column."""
    env = dict(os.environ)
    if impl.lib == "zmtp" and impl.backend:
        env["ZMTP_BACKEND"] = impl.backend
    return env


def lib_version(lib: str) -> str:
    """A short version string for the header."""
    if lib == "pyzmq":
        zmq = importlib.import_module("zmq")
        return f"pyzmq {zmq.__version__} (libzmq {zmq.zmq_version()})"
    return f"zmtp {__version__}"


def libsodium_of(lib: str) -> Optional[str]:
    """The file name of the libsodium `lib` ("zmtp" or "pyzmq") encrypts
    with here (CURVE's cost depends on its version), or None when it has
    none; read from this process's memory map once a key pair is made
    (pyzmq's wheel bundles its own copy in ``pyzmq.libs``; zmtp loads one
    at run time: ``ZMTP_LIBSODIUM``, its wheel's, else the system's)."""
    try:
        if lib == "pyzmq":
            importlib.import_module("zmq").curve_keypair()
        else:
            _zmtp.curve_keypair()
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libsodium" in line}
    except Exception:  # no CURVE there, or no /proc
        return None
    forced = os.environ.get("ZMTP_LIBSODIUM")
    if lib == "zmtp" and forced:
        return os.path.basename(forced)
    mine = sorted(p for p in paths if ("pyzmq.libs" in p) == (lib == "pyzmq"))
    return os.path.basename(mine[0]) if mine else None


def choose_backend(impl: Impl) -> None:
    """Make this thread's first zmtp wait open `impl`'s backend.

    ``_zmtp._set_backend`` sets the process-wide choice that a thread reads
    once, when it first waits (then it keeps that backend until it exits):
    call this in a fresh thread before its first zmtp call.  Threads started
    later open the same backend unless the choice changes before their first
    wait, so a thread of an inproc run calls it again itself."""
    if impl.lib == "zmtp" and impl.backend:
        _zmtp._set_backend(impl.backend)
