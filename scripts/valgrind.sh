#!/usr/bin/env bash
# Run pytest under valgrind memcheck and fail on any memory error or
# definite leak in the zmtp extension (zmtp/_zmtp*.so).
#
# Usage: bash scripts/valgrind.sh [pytest args...]       (from anywhere)
#   no args: a representative fast subset (codec vectors, page memory,
#   socket API, spec conformance), about 460 tests and 2-3 minutes:
#     tests/test_codec_vectors.py tests/test_memory.py tests/test_socket_api.py
#     tests/test_spec.py -k "not slow and not test_sigint_in_main_thread"
#   (the whole suite, ~1570 tests in 3.5 minutes natively, is far slower
#   under memcheck).  test_sigint_in_main_thread is left out because it
#   cannot pass under valgrind: it counts on the kernel handing a
#   process-directed SIGINT to the main thread (blocked in epoll_wait) when
#   that thread does not block it, and valgrind hands it to whichever thread
#   it schedules, so the main thread's wait is not interrupted.  The same
#   path runs in test_signal_interrupts_blocking_calls (a subprocess, traced
#   too: see --trace-children below).
#   PYTHON=python3            interpreter the venv is made from
#   VALGRIND_REUSE=1          reuse build/valgrind-venv if it is newer than
#                             src/, zmtp/ and setup.py (default: rebuild)
#   VALGRIND_TRACK_ORIGINS=1  --track-origins=yes (slower; says where an
#                             uninitialised value came from)
#   VALGRIND_OUT=DIR          where the XML reports go (build/valgrind)
#   VALGRIND_VENV=DIR, VALGRIND_SRC_DIR=DIR   another venv / source tree (to
#                             check this script against a planted bug)
#
# What it does:
# 1. builds the extension with ZMTP_DEBUG=1 (-O0 -g, asserts on: stacks with
#    file:line) from a clean copy of the sources into a venv of its own,
#    build/valgrind-venv (the editable build in the tree is neither touched
#    nor used);
# 2. runs `python pytest ARGS` under
#      valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite
#               --errors-for-leak-kinds=definite
#               --suppressions=scripts/valgrind-python.supp
#    with
#    * PYTHONMALLOC=malloc: every Python object is a malloc() block that
#      memcheck tracks (pymalloc's arenas would hide overruns of objects and
#      read "uninitialised" arena memory by design);
#    * ZMTP_BACKEND=epoll, and the io_uring cases deselected (a plugin drops
#      every test parametrized with "io_uring", e.g. the `backend` fixture's):
#      valgrind does not model io_uring.  Depending on
#      its version it rejects the io_uring_setup/enter/register syscalls as
#      unknown (the backend probe then fails anyway), and even where it knows
#      them, the kernel writes completions and received bytes into memory
#      shared with the ring without a syscall valgrind sees, so memcheck would
#      call them uninitialised.  epoll + recv() are plain syscalls it models.
#      (valgrind 3.19 does not know epoll_pwait2 either: "unhandled syscall
#      441" is printed once and the epoll backend falls back to epoll_wait,
#      as on kernels older than 5.11);
#    * --trace-children=yes for Python subprocesses started by tests (skipping
#      programs under /bin, /usr/bin, /sbin, /usr/sbin);
#    * the conftest's hang guard (60 s per test) scaled by 20: CPU-bound
#      code runs 20-50 times slower under memcheck (the default subset, mostly
#      waiting on sockets, takes about 4 times its native 30 s);
#    * one XML report per process (forked children too): build/valgrind/vg.<pid>.xml;
# 3. reads the reports: every error and definite leak whose stack has a
#    frame in _zmtp*.so is printed (with its stack) and fails the run;
#    errors elsewhere (CPython, libzmq, glibc) are counted and listed
#    briefly, they do not fail it.  In a process forked without exec (the
#    fork tests' children) errors count but leaks are only listed: blocks
#    that only the parent's other threads pointed to (zmtp's progress-thread
#    scratch, CPython's locks re-created after fork) are unreachable there by
#    construction.
#
# Exit status: 1 when the extension has an error or a definite leak, else
# pytest's (1 when a test fails, 5 when none ran), 2 on set-up errors.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VALGRIND_VENV:-$root/build/valgrind-venv}"
src_root="${VALGRIND_SRC_DIR:-$root}"  # a patched copy of the tree, to test this script
out="${VALGRIND_OUT:-$root/build/valgrind}"
supp="$root/scripts/valgrind-python.supp"
PYTHON="${PYTHON:-python3}"

command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not found (apt-get install valgrind)" >&2; exit 2; }
if [ "$#" -eq 0 ]; then
    set -- tests/test_codec_vectors.py tests/test_memory.py tests/test_socket_api.py tests/test_spec.py \
        -k "not slow and not test_sigint_in_main_thread"
fi

stamp="$venv/.built"
if [ -n "${VALGRIND_REUSE:-}" ] && [ -e "$stamp" ] && \
   [ -z "$(cd "$src_root" && find src zmtp setup.py -newer "$stamp" -not -name '*.so' -not -path '*__pycache__*' | head -n 1)" ]; then
    echo "== reusing $venv"
else
    echo "== fresh venv $venv ($PYTHON), ZMTP_DEBUG=1 build"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade "setuptools>=61" wheel
    copy="$venv/build-src"
    mkdir -p "$copy"
    (cd "$src_root" && tar -cf - --exclude='*.so' --exclude=__pycache__ \
        setup.py pyproject.toml src zmtp $(ls -d README* LICENSE* MANIFEST.in 2>/dev/null || true)) \
        | tar -C "$copy" -xf -
    ZMTP_DEBUG=1 "$venv/bin/python" -m pip install -q --no-build-isolation "$copy[test]"
    touch "$stamp"
fi
so="$(cd / && "$venv/bin/python" -c 'import zmtp._zmtp as m; print(m.__file__)')"
case "$so" in "$venv"/*) ;; *) echo "valgrind.sh: imported $so, not from $venv" >&2; exit 2;; esac
echo "== extension: $so"

rm -rf "$out"
mkdir -p "$out/plugin"
# Loaded with -p before collection: pins zmtp to the venv's build, drops the
# io_uring cases, stretches the hang guard.
cat > "$out/plugin/zmtp_valgrind_plugin.py" <<'EOF'
import faulthandler

import zmtp._zmtp

_dump_later = faulthandler.dump_traceback_later


def _dump_later_scaled(timeout, *args, **kwargs):
    return _dump_later(timeout * 20, *args, **kwargs)


faulthandler.dump_traceback_later = _dump_later_scaled


def pytest_report_header(config):
    return "zmtp._zmtp (valgrind): " + zmtp._zmtp.__file__ + ", backend " + zmtp.backend_name()


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        cs = getattr(item, "callspec", None)
        # the `backend` fixture's io_uring case, and tests parametrized by
        # backend name themselves (test_fork, test_signal_interrupts_...)
        (drop if cs is not None and "io_uring" in cs.params.values() else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
EOF

track=no
[ -n "${VALGRIND_TRACK_ORIGINS:-}" ] && track=yes
echo "== valgrind memcheck: pytest $*"
start=$(date +%s)
set +e
(cd "$root" && PYTHONPATH="$out/plugin${PYTHONPATH:+:$PYTHONPATH}" PYTHONMALLOC=malloc ZMTP_BACKEND=epoll \
    valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
        --errors-for-leak-kinds=definite --suppressions="$supp" --num-callers=40 \
        --track-origins="$track" --xml=yes --xml-file="$out/vg.%p.xml" \
        --trace-children=yes --trace-children-skip='/bin/*,/usr/bin/*,/sbin/*,/usr/sbin/*' \
        "$venv/bin/python" "$venv/bin/pytest" -p zmtp_valgrind_plugin -p no:cacheprovider \
        --capture=sys "$@")
rc=$?
set -e
secs=$(( $(date +%s) - start ))
echo "== pytest under valgrind: exit $rc, ${secs}s"

set +e
"$PYTHON" - "$out" "$rc" "$secs" <<'EOF'
import glob
import re
import sys
import xml.etree.ElementTree as ET

out, rc, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
EXT = re.compile(r"/_zmtp[^/]*\.so$")


def frame_text(fr):
    fn = fr.findtext("fn") or "?"
    where = fr.findtext("file")
    if where:
        where += ":" + (fr.findtext("line") or "?")
    else:
        where = (fr.findtext("obj") or "?").rsplit("/", 1)[-1]
    return f"{fn} ({where})"


ext_errors, ext_leaks, other = [], [], {}
procs = total = suppressed = 0
unreadable = []
reports = []
for path in sorted(glob.glob(f"{out}/vg.*.xml")):
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        # Not closed: the process exec'd an untraced program (or was
        # killed).  Read what it wrote up to then.
        try:
            root = ET.fromstring(text + "\n</valgrindoutput>\n")
        except ET.ParseError as exc:
            print(f"valgrind.sh: {path}: unreadable ({exc})")
            if "<error>" in text:
                unreadable.append(path)
            continue
    reports.append((path, root))

# A process forked without exec (same argv as its traced parent) inherits
# blocks that only other threads of the parent pointed to (zmtp's progress
# thread scratch, CPython's locks re-created by PyOS_AfterFork_Child): they
# are "definitely lost" in the child by construction.  Errors there count,
# leaks there are listed but do not fail the run.
argv_of = {r.findtext("pid"): [a.text for a in r.iterfind("args/argv/*")] for _, r in reports}
fork_leaks = []
for path, root in reports:
    procs += 1
    ppid = root.findtext("ppid")
    forked = ppid in argv_of and argv_of[ppid] == argv_of[root.findtext("pid")]
    for p in root.iterfind("suppcounts/pair"):
        suppressed += int(p.findtext("count") or 0)
    counts = {p.findtext("unique"): int(p.findtext("count")) for p in root.iterfind("errorcounts/pair")}
    for err in root.findall("error"):
        kind = err.findtext("kind")
        what = err.findtext("what") or err.findtext("xwhat/text") or ""
        frames = err.find("stack").findall("frame") if err.find("stack") is not None else []
        n = counts.get(err.findtext("unique"), 1)
        total += n
        in_ext = any(EXT.search(fr.findtext("obj") or "") for fr in frames)
        if in_ext:
            entry = (path, kind, what, n, [frame_text(fr) for fr in frames[:16]], err)
            if kind.startswith("Leak_"):
                (fork_leaks if forked else ext_leaks).append(entry)
            else:
                ext_errors.append(entry)
        else:
            key = (kind, frame_text(frames[0]) if frames else "?")
            other[key] = other.get(key, 0) + n

for title, items in (("ERROR IN THE EXTENSION", ext_errors), ("DEFINITE LEAK IN THE EXTENSION", ext_leaks)):
    for path, kind, what, n, stack, err in items:
        print(f"\n== {title}: {kind} x{n} ({path})\n   {what}")
        for line in stack:
            print(f"     {line}")
        aux = err.find("auxwhat")
        if aux is not None and aux.text:
            print(f"   {aux.text}")
for path, kind, what, n, stack, err in fork_leaks:
    print(f"\n== in a forked child, not counted: {kind} ({path})\n   {what}\n     " + "\n     ".join(stack[:6]))
if other:
    print("\n== not in the extension (reported, not failing the run):")
    for (kind, top), n in sorted(other.items(), key=lambda kv: -kv[1])[:20]:
        print(f"   {n:6d}  {kind:24s} at {top}")
leak_bytes = 0
for _, kind, what, _, _, _ in ext_leaks:
    m = re.match(r"([\d,]+) bytes", what)
    if m:
        leak_bytes += int(m.group(1).replace(",", ""))
print(f"\nvalgrind.sh: {procs} process report(s), {total} unsuppressed error(s) in all "
      f"({suppressed} suppressed as CPython/glibc noise), "
      f"{sum(e[3] for e in ext_errors)} error(s) in _zmtp, "
      f"{len(ext_leaks)} definite leak(s) in _zmtp ({leak_bytes} bytes), pytest exit {rc}, {secs}s")
sys.exit(1 if ext_errors or ext_leaks or unreadable else 0)
EOF
verdict=$?
set -e
if [ "$verdict" -ne 0 ]; then
    echo "valgrind.sh: FAILED: memory errors or definite leaks in the extension (reports in $out)" >&2
    exit 1
fi
exit "$rc"
