#!/usr/bin/env bash
# Build zmtp._zmtp with AddressSanitizer + UndefinedBehaviorSanitizer into a
# fresh venv (.sanitize-venv/) and run the pytest suite against it with the
# sanitizer runtime preloaded into the (uninstrumented) Python interpreter.
#
# Usage: bash scripts/sanitize.sh [pytest args...]     (from anywhere)
#   CC=gcc (default) or CC=clang      compiler for the extension
#   PYTHON=python3 (default)          interpreter the venv is made from
#   ZMTP_SANITIZE=address,undefined   (default) passed on to setup.py
# Exits non-zero when a test fails (1) or a sanitizer reports (abort: 134).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.sanitize-venv"
export CC="${CC:-gcc}"
export ZMTP_SANITIZE="${ZMTP_SANITIZE:-address,undefined}"
PYTHON="${PYTHON:-python3}"
# Python's own CFLAGS carry -fwrapv, which turns off UBSan's
# signed-integer-overflow check; -fno-wrapv (appended later) turns it back on.
export CFLAGS="${CFLAGS:+$CFLAGS }-fno-wrapv"

# Sanitizer runtime to preload (Python itself is not linked against it).
if "$CC" --version 2>/dev/null | grep -qi clang; then
    # clang's shared ASan runtime also holds the UBSan handlers.
    rt="$("$CC" -print-file-name="libclang_rt.asan-$(uname -m).so")"
    [ -e "$rt" ] || rt="$("$CC" -print-runtime-dir)/libclang_rt.asan.so"
    preload="$rt"
else
    preload="$("$CC" -print-file-name=libasan.so):$("$CC" -print-file-name=libubsan.so)"
fi
for lib in ${preload//:/ }; do
    [ -e "$lib" ] || { echo "sanitize.sh: runtime not found: $lib" >&2; exit 2; }
done

echo "== fresh venv $venv ($PYTHON), CC=$CC, ZMTP_SANITIZE=$ZMTP_SANITIZE"
rm -rf "$venv"
"$PYTHON" -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install -q --upgrade "setuptools>=61" wheel

# Build from a clean copy of the sources: an in-tree build/ directory left by
# a normal build would let setuptools skip the compile ("up-to-date") and
# install an unsanitized extension.
copy="$venv/build-src"
mkdir -p "$copy"
(cd "$root" && tar -cf - --exclude='*.so' --exclude=__pycache__ \
    setup.py pyproject.toml src zmtp $(ls -d README* LICENSE* MANIFEST.in 2>/dev/null || true)) \
    | tar -C "$copy" -xf -
"$py" -m pip install -q --no-build-isolation "$copy[test]"

export LD_PRELOAD="$preload${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"
export PYTHONMALLOC=malloc

# Check that the installed extension is the sanitized one, and that the
# preloaded runtime does not break importing it or pyzmq.
so="$(cd / && "$py" -c 'import zmtp._zmtp as m; print(m.__file__)')"
case "$so" in "$venv"/*) ;; *) echo "sanitize.sh: imported $so, not from $venv" >&2; exit 2;; esac
n_asan="$(nm -D --undefined-only "$so" | grep -c '__asan_' || true)"
n_ubsan="$(nm -D --undefined-only "$so" | grep -c '__ubsan_' || true)"
echo "== $so: $n_asan __asan_* and $n_ubsan __ubsan_* undefined symbols (nm -D)"
case "$ZMTP_SANITIZE" in *address*) [ "$n_asan" -gt 0 ] || { echo "sanitize.sh: not an ASan build" >&2; exit 2; };; esac
case "$ZMTP_SANITIZE" in *undefined*) [ "$n_ubsan" -gt 0 ] || { echo "sanitize.sh: not a UBSan build" >&2; exit 2; };; esac
(cd / && "$py" -c '
import zmq
ctx = zmq.Context(); a = ctx.socket(zmq.PAIR); b = ctx.socket(zmq.PAIR)
a.bind("inproc://x"); b.connect("inproc://x"); a.send(b"ok"); assert b.recv() == b"ok"
a.close(); b.close(); ctx.term()
print("== pyzmq", zmq.__version__, "(libzmq", zmq.zmq_version() + ") works under the preloaded runtime")')

# A plugin loaded before collection pins sys.modules["zmtp"] to the installed
# (sanitized) package, whatever sys.path the test import mode sets up later.
cat > "$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zmtp_sanitize_check.py" <<'EOF'
import zmtp._zmtp

def pytest_report_header(config):
    return "zmtp._zmtp (sanitized): " + zmtp._zmtp.__file__
EOF

# --capture=sys: a sanitizer report written to fd 2 reaches the terminal even
# when the process aborts (with fd capture it would be lost with the process).
# -n 0: in this process, not in xdist workers (pyproject's addopts), whose
# abort would show as "node down" without the report (pass -n 2 after it
# to run in parallel anyway).
cd "$root"
set +e
"$venv/bin/pytest" -p zmtp_sanitize_check --capture=sys -n 0 "$@"
rc=$?
set -e
echo "== sanitize.sh: pytest exit code $rc"
exit "$rc"
