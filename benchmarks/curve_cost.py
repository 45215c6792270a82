"""Where a CURVE message's time goes: the cipher against everything else.

Run: ``python benchmarks/curve_cost.py [--rounds N]`` (not a pytest benchmark).

1. **The cipher alone**: a small C program (compiled here with ``cc``, it
   ``dlopen``s the libsodium zmtp loads, and pyzmq's bundled one, so no
   headers are needed) times ``crypto_box_easy_afternm`` and
   ``crypto_box_open_easy_afternm`` on a MESSAGE's plaintext (the flags
   byte and the frame: 65 B, 32 769 B, 65 537 B), CPU time, the best of 5
   rounds.
2. **zmtp with and without CURVE**, one thread, both ends: a PUSH sends a
   message and a PULL of the same thread receives it (tcp on 127.0.0.1), N
   times; the process's CPU time per message (every thread of it, kernel
   time included: ``time.process_time``) with NULL and with CURVE, rounds
   interleaved, the median.  CURVE's added cost per message less one seal
   and one open is what zmtp itself adds (copies, allocations, framing);
   ``zmtp.io_stats()`` counts the allocations per message.
3. The same for **pyzmq** (libzmq 4.3.5) when it is importable, for
   comparison: its I/O thread's CPU time is in the process's too.

CPU time, not wall time: other work on the machine slows the wall clock
far more than it inflates a process's own CPU time; still, compare lines
of one run only.
"""

from __future__ import annotations

import argparse
import ctypes.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import zmtp
from zmtp import _zmtp

CIPHER_C = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef int (*box_fn)(unsigned char *, const unsigned char *, unsigned long long,
                      const unsigned char *, const unsigned char *);
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); /* CPU time: load elsewhere inflates it least */
    return t.tv_sec + t.tv_nsec * 1e-9;
}
int main(int argc, char **argv)
{
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (lib == NULL) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    ((int (*)(void))dlsym(lib, "sodium_init"))();
    box_fn seal = (box_fn)dlsym(lib, "crypto_box_easy_afternm");
    box_fn open_ = (box_fn)dlsym(lib, "crypto_box_open_easy_afternm");
    unsigned char k[32] = {1}, n[24] = {2};
    for (int a = 2; a < argc; a++) {
        size_t m = (size_t)atol(argv[a]);
        unsigned char *p = calloc(1, m), *c = malloc(m + 16), *o = malloc(m);
        long iters = m < 4096 ? 400000 : 4000;
        double best_seal = 1e9, best_open = 1e9;
        for (int r = 0; r < 5; r++) {
            double t0 = now();
            for (long i = 0; i < iters; i++) {
                n[23] = (unsigned char)i;
                seal(c, p, m, n, k);
            }
            double t1 = now();
            for (long i = 0; i < iters; i++)
                if (open_(o, c, m + 16, n, k) != 0)
                    return 2;
            double t2 = now();
            if (t1 - t0 < best_seal) best_seal = t1 - t0;
            if (t2 - t1 < best_open) best_open = t2 - t1;
        }
        printf("%zu %.1f %.1f\n", m, best_seal / iters * 1e9, best_open / iters * 1e9);
        free(p); free(c); free(o);
    }
    return 0;
}
"""


def libsodium_path() -> Optional[str]:
    """The library zmtp loads (ZMTP_LIBSODIUM, else the system's)."""
    forced = os.environ.get("ZMTP_LIBSODIUM")
    if forced:
        return forced
    for name in ("libsodium.so.23", "libsodium.so.26", ctypes.util.find_library("sodium")):
        if name:
            try:
                ctypes.CDLL(name)
                return name
            except OSError:
                continue
    return None


def pyzmq_libsodium() -> Optional[str]:
    """The libsodium that pyzmq's wheel bundles (pyzmq.libs/libsodium-*.so*), if any."""
    try:
        import zmq
    except ImportError:
        return None
    libs = os.path.join(os.path.dirname(os.path.dirname(zmq.__file__)), "pyzmq.libs")
    names = sorted(n for n in os.listdir(libs) if n.startswith("libsodium")) if os.path.isdir(libs) else []
    return os.path.join(libs, names[0]) if names else None


def cipher_ns(lib: Optional[str], plain_sizes: List[int]) -> Dict[int, Tuple[float, float]]:
    """{plaintext size: (seal ns, open ns)} of libsodium `lib` from the C program; {} without a compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or lib is None:
        print(f"cipher: skipped (compiler {cc}, libsodium {lib})")
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "cost.c"), os.path.join(tmp, "cost")
        with open(src, "w") as f:
            f.write(CIPHER_C)
        subprocess.run([cc, "-O2", src, "-o", exe, "-ldl"], check=True)
        out = subprocess.run([exe, lib] + [str(s) for s in plain_sizes], check=True, capture_output=True, text=True)
    return {int(a): (float(b), float(c)) for a, b, c in (ln.split() for ln in out.stdout.splitlines())}


def pair(lib: Any, curve: bool) -> Tuple[Any, Any, Any]:
    """(context, PUSH, PULL) connected over tcp, CURVE when asked (the PULL is the server)."""
    ctx = lib.Context()
    push, pull = ctx.socket(lib.PUSH), ctx.socket(lib.PULL)
    if curve:
        server_public, server_secret = lib.curve_keypair()
        public, secret = lib.curve_keypair()
        pull.setsockopt(lib.CURVE_SERVER, 1)
        pull.setsockopt(lib.CURVE_SECRETKEY, server_secret)
        push.setsockopt(lib.CURVE_SERVERKEY, server_public)
        push.setsockopt(lib.CURVE_PUBLICKEY, public)
        push.setsockopt(lib.CURVE_SECRETKEY, secret)
    for s in (push, pull):
        s.linger = 0
        s.rcvtimeo = 10000
        s.sndtimeo = 10000
    pull.bind("tcp://127.0.0.1:*")
    push.connect(pull.last_endpoint.decode())
    return ctx, push, pull


def per_message_ns(lib: Any, curve: bool, size: int, count: int) -> Tuple[float, float]:
    """(CPU ns per message, zmtp allocations per message) of send-then-recv in one thread."""
    ctx, push, pull = pair(lib, curve)
    payload = b"x" * size
    send, recv = push.send, pull.recv
    try:
        for _ in range(max(10, count // 10)):  # the handshake, the caches
            send(payload)
            recv()
        before = _zmtp.io_stats()["allocations"]
        t0 = time.process_time_ns()
        for _ in range(count):
            send(payload)
            recv()
        elapsed = time.process_time_ns() - t0
        allocs = (_zmtp.io_stats()["allocations"] - before) / count if lib is zmtp else float("nan")
    finally:
        push.close()
        pull.close()
        ctx.term()
    return elapsed / count, allocs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5; medians)")
    args = parser.parse_args()
    sizes = (64, 32768, 65536)
    counts = {64: 20000, 32768: 600, 65536: 400}
    cipher = cipher_ns(libsodium_path(), [s + 1 for s in sizes])
    theirs = cipher_ns(pyzmq_libsodium(), [s + 1 for s in sizes]) if pyzmq_libsodium() else {}
    for size in sizes:
        for who, table in (("zmtp's libsodium", cipher), ("pyzmq's bundled libsodium", theirs)):
            if size + 1 in table:
                seal, open_ = table[size + 1]
                print(f"cipher ({who}), {size + 1} B plaintext: seal {seal / 1000:.2f} us, open {open_ / 1000:.2f} us "
                      f"(one core: at most {1e9 / max(seal, open_):,.0f} msg/s per side)")
    libs: List[Tuple[str, Any]] = [("zmtp", zmtp)]
    try:
        import zmq

        libs.append(("pyzmq", zmq))
    except ImportError:
        pass
    for size in sizes:
        figures: Dict[Tuple[str, bool], List[float]] = {}
        allocs: Dict[bool, float] = {}
        for _ in range(args.rounds):
            for name, lib in libs:
                for curve in (False, True):
                    ns, a = per_message_ns(lib, curve, size, counts[size])
                    figures.setdefault((name, curve), []).append(ns)
                    if name == "zmtp":
                        allocs[curve] = a
        med = {k: statistics.median(v) for k, v in figures.items()}
        print(f"\n{size} B, send + recv in one thread, tcp, median of {args.rounds} (CPU us per message):")
        for name, _ in libs:
            added = med[(name, True)] - med[(name, False)]
            line = (f"  {name:6} NULL {med[(name, False)] / 1000:8.2f}   CURVE {med[(name, True)] / 1000:8.2f}   "
                    f"CURVE adds {added / 1000:8.2f}")
            own = theirs if name == "pyzmq" and theirs else cipher  # each against its own libsodium
            if size + 1 in own:
                box = sum(own[size + 1])
                line += f"   of which cipher (seal + open) {box / 1000:.2f}, the rest {(added - box) / 1000:.2f}"
            if name == "zmtp":
                line += f"   allocations/msg NULL {allocs[False]:.2f} CURVE {allocs[True]:.2f}"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
