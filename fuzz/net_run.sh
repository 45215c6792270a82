#!/usr/bin/env bash
# Network fuzzer of the zmtp engine (fuzz/net_fuzz.py, atheris) for SECONDS
# seconds in total.
#
# Usage: bash fuzz/net_run.sh SECONDS [extra libFuzzer flags...]
#
#   NET_FUZZ_MODE=cov (default) | asan | plain
#     cov   the extension is built with clang -fsanitize=address,undefined,
#           fuzzer-no-link into fuzz/build/net-venv/ (with atheris and pyzmq),
#           and atheris's asan_with_fuzzer.so (libFuzzer + the ASan runtime,
#           which also holds the UBSan handlers) is preloaded: libFuzzer is
#           guided by the C extension's edge and comparison coverage, and
#           ASan/UBSan abort on any memory error or UB in it.
#     asan  no clang: reuse .sanitize-venv/ (scripts/sanitize.sh's build,
#           gcc or clang ASan+UBSan), atheris from fuzz/build/atheris-py/,
#           the runtime preloaded as sanitize.sh does.  No coverage at all
#           (the preloaded runtime provides the coverage symbols atheris
#           needs, so even Python coverage breaks): libFuzzer mutates the
#           seeds blindly (-keep_seed=1); memory errors are still caught.
#     plain the interpreter on PATH with its installed zmtp; no sanitizer;
#           libFuzzer sees the Python branches of the harness's input parser
#           and oracle (atheris.instrument_func).
#   NET_FUZZ_REBUILD=1   rebuild the cov venv even if it looks current.
#   NET_FUZZ_SKIP_KNOWN=1  do not play the open PAIR finding (fuzz/README.md):
#           while it is open every hit costs a 5 s timeout.
#   ZMTP_BACKEND=epoll|io_uring   the zmtp backend of the run (default: the
#           library's choice, io_uring where the kernel allows it).
#   NET_FUZZ_TARGET=null (default) | mech   mech: the PLAIN and CURVE
#           targets (fuzz/README.md, "Mechanism targets"): seeds from
#           fuzz/net_mech_corpus/ and fuzz/net_mech_regressions/, working
#           corpus fuzz/build/net-mech-corpus-work/.
#
# Inputs found interesting go to fuzz/build/net-corpus-work/ (seeded from
# fuzz/net_corpus/ and fuzz/net_regressions/); findings (harness checks:
# starved good peer, wrong stats, fd/page leak, invalid output) to
# fuzz/artifacts/net/finding-*, sanitizer crashes and hangs to
# fuzz/artifacts/net/crash-* / timeout-*; logs fuzz/artifacts/net/run-*.log.
# A harness finding does not end the run (NET_FUZZ_KEEP_GOING=1: the type's
# socket is rebuilt); a crash ends one libFuzzer run and the script starts
# the next one for the time left.
# Exit status: 0 when nothing was found, 1 when something was, 2 on set-up
# errors.
set -uo pipefail
secs="${1:?usage: net_run.sh SECONDS [libFuzzer flags...]}"
shift
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$root"

mode="${NET_FUZZ_MODE:-cov}"
venv="$root/fuzz/build/net-venv"
target="${NET_FUZZ_TARGET:-null}"
case "$target" in
null) work="$root/fuzz/build/net-corpus-work"; seeds=fuzz/net_corpus; regs=fuzz/net_regressions; seedarg="";;
mech) work="$root/fuzz/build/net-mech-corpus-work"; seeds=fuzz/net_mech_corpus; regs=fuzz/net_mech_regressions
      seedarg="--mech";;
*) echo "net_run.sh: NET_FUZZ_TARGET must be null or mech" >&2; exit 2;;
esac
export NET_FUZZ_TARGET="$target"
arts="$root/fuzz/artifacts/net"
mkdir -p "$work" "$arts"

asan_opts="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
ubsan_opts="halt_on_error=1:abort_on_error=1:print_stacktrace=1"

build_cov() {
    local stamp="$venv/.built" copy="$venv/build-src" py
    if [ -z "${NET_FUZZ_REBUILD:-}" ] && [ -e "$stamp" ] && \
       [ -z "$(find src zmtp setup.py -newer "$stamp" -not -name '*.so' -not -path '*__pycache__*' 2>/dev/null | head -n 1)" ]; then
        return 0
    fi
    command -v clang >/dev/null || { echo "net_run.sh: no clang" >&2; return 1; }
    echo "== building the coverage + ASan + UBSan extension in $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || return 1
    py="$venv/bin/python"
    "$py" -m pip install -q --upgrade "setuptools>=61" wheel atheris pyzmq || return 1
    # A clean copy of the sources (as scripts/sanitize.sh does): a build/ left
    # by a normal build must not be installed instead.
    mkdir -p "$copy"
    tar -cf - --exclude='*.so' --exclude=__pycache__ setup.py pyproject.toml src zmtp \
        $(ls -d README* LICENSE* MANIFEST.in 2>/dev/null || true) | tar -C "$copy" -xf - || return 1
    # -fno-wrapv: Python's CFLAGS carry -fwrapv, which hides signed overflow
    # from UBSan.  fuzzer-no-link: sanitizer coverage (edges, comparisons)
    # for the libFuzzer inside the preloaded asan_with_fuzzer.so.
    CC=clang CFLAGS="-fno-wrapv" ZMTP_SANITIZE=address,undefined,fuzzer-no-link \
        "$py" -m pip install -q --no-build-isolation "$copy" || return 1
    touch "$stamp"
}

extra=()
case "$mode" in
cov)
    build_cov || { echo "net_run.sh: cov build failed (NET_FUZZ_MODE=asan or plain to fall back)" >&2; exit 2; }
    py="$venv/bin/python"
    preload="$("$py" -c 'import atheris, os; print(os.path.join(atheris.path(), "asan_with_fuzzer.so"))')"
    ;;
asan)
    py="$root/.sanitize-venv/bin/python"
    [ -x "$py" ] || { echo "net_run.sh: no .sanitize-venv: run scripts/sanitize.sh once" >&2; exit 2; }
    # (found without importing it: the sanitized .so only loads with the
    # runtime preloaded)
    so="$(cd / && "$py" -c 'import glob, importlib.util as u; d = u.find_spec("zmtp").submodule_search_locations[0]; print(glob.glob(d + "/_zmtp*.so")[0])')"
    if readelf -p .comment "$so" 2>/dev/null | grep -qi clang; then cc=clang; else cc=gcc; fi
    if [ "$cc" = clang ]; then
        preload="$(clang -print-file-name="libclang_rt.asan-$(uname -m).so")"
    else
        preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
    fi
    ath="$root/fuzz/build/atheris-py"
    [ -d "$ath/atheris" ] || "$py" -m pip install -q --target "$ath" atheris || exit 2
    export PYTHONPATH="$ath${PYTHONPATH:+:$PYTHONPATH}"
    export NET_FUZZ_PY_COVERAGE=1
    extra=(-keep_seed=1)
    ;;
plain)
    py="$(python3 -c 'import sys; print(sys.executable)')"
    preload=""
    if ! (cd / && "$py" -c 'import atheris' 2>/dev/null); then
        ath="$root/fuzz/build/atheris-py"
        [ -d "$ath/atheris" ] || "$py" -m pip install -q --target "$ath" atheris || exit 2
        export PYTHONPATH="$ath${PYTHONPATH:+:$PYTHONPATH}"
    fi
    export NET_FUZZ_PY_COVERAGE=1
    ;;
*) echo "net_run.sh: NET_FUZZ_MODE must be cov, asan or plain" >&2; exit 2;;
esac

if [ -z "$(ls -A "$seeds" 2>/dev/null)" ]; then
    "$py" fuzz/make_net_seeds.py $seedarg "$seeds" || exit 2
fi
cp -n "$seeds"/* "$work"/ 2>/dev/null || true
if [ -d "$regs" ] && [ -n "$(ls -A "$regs" 2>/dev/null)" ]; then
    cp -n "$regs"/* "$work"/ 2>/dev/null || true
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-$asan_opts}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-$ubsan_opts}"
export PYTHONMALLOC=malloc
export NET_FUZZ_ARTIFACTS="$arts"
export NET_FUZZ_KEEP_GOING="${NET_FUZZ_KEEP_GOING:-1}"
runpy() { if [ -n "$preload" ]; then LD_PRELOAD="$preload${LD_PRELOAD:+:$LD_PRELOAD}" "$@"; else "$@"; fi; }

info="$(cd / && runpy "$py" -c 'import zmtp, zmtp._zmtp as m, zmq; print(m.__file__, "backend", zmtp.backend_name(), "pyzmq", zmq.__version__)')" \
    || { echo "net_run.sh: cannot import zmtp under the preloaded runtime" >&2; exit 2; }
echo "== mode $mode, target $target: $info"
[ -n "$preload" ] && echo "== LD_PRELOAD=$preload"

start=$(date +%s)
end=$((start + secs))
total_execs=0
runs=0
crashes=0
rc_all=0
count_findings() { ls "$arts" | grep -v '\.txt$' | grep -c '^finding-' || true; }
before_findings=$(count_findings)
while :; do
    now=$(date +%s)
    left=$((end - now))
    [ "$left" -ge 5 ] || break
    runs=$((runs + 1))
    log="$arts/run-$(date +%Y%m%d-%H%M%S)-$runs.log"
    echo "== libFuzzer run $runs: ${left}s, log $log"
    runpy "$py" fuzz/net_fuzz.py -max_total_time="$left" -max_len=8192 -timeout=60 \
        -rss_limit_mb=4096 -dict=fuzz/zmtp.dict -print_final_stats=1 -print_funcs=0 \
        -artifact_prefix="$arts/" ${extra[@]+"${extra[@]}"} "$@" "$work" > "$log" 2>&1
    rc=$?
    execs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}' | tail -n 1)
    if [ -z "$execs" ]; then  # a crash: no final stats, take the last status line
        execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    fi
    total_execs=$((total_execs + ${execs:-0}))
    grep -E 'net_fuzz: finding' "$log" | tail -n 20
    grep -E 'net_fuzz: [0-9]+ inputs' "$log" | tail -n 1
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1
    if [ "$rc" -ne 0 ]; then
        crashes=$((crashes + 1))
        rc_all=1
        echo "net_run.sh: libFuzzer run $runs exited with $rc:" >&2
        grep -E 'ERROR: |SUMMARY: |Uncaught Python exception|Test unit written to|==[0-9]+==' "$log" | head -n 20 >&2
        [ "$crashes" -ge 20 ] && { echo "net_run.sh: 20 crashes, stopping" >&2; break; }
    fi
done
after_findings=$(count_findings)
new_findings=$((after_findings - before_findings))
[ "$new_findings" -gt 0 ] && rc_all=1
echo "net_run.sh: $runs libFuzzer run(s), $(( $(date +%s) - start ))s, executions: $total_execs"
echo "net_run.sh: crashes/timeouts: $crashes, new harness findings saved: $new_findings (in $arts)"
echo "net_run.sh: corpus-work files: $(ls "$work" | wc -l)"
exit "$rc_all"
