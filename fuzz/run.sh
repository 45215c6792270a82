#!/usr/bin/env bash
# Fuzz the ZMTP decoder (or, with FUZZER=mech, the mechanisms' handshakes:
# fuzz/mech_fuzz.c) for SECONDS seconds (single process).
# Usage: bash fuzz/run.sh SECONDS [extra libFuzzer flags...]
#        FUZZER=mech bash fuzz/run.sh SECONDS [...]
# Exit status: 0 when libFuzzer found nothing, non-zero otherwise
# (crash / leak / timeout / OOM artifacts are in fuzz/artifacts/).
set -uo pipefail
secs="${1:?usage: run.sh SECONDS [libFuzzer flags...]}"
shift
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$root"

case "${FUZZER:-decoder}" in
decoder) bin=fuzz/build/decoder_fuzz; corpus=fuzz/corpus; regs=fuzz/regressions
         work=fuzz/corpus-work; arts=fuzz/artifacts; seeds=""; maxlen=65536;;
mech)    bin=fuzz/build/mech_fuzz; corpus=fuzz/mech_corpus; regs=fuzz/mech_regressions
         work=fuzz/mech-corpus-work; arts=fuzz/artifacts/mech; seeds="--mech"; maxlen=8192;;
*) echo "run.sh: FUZZER must be decoder or mech" >&2; exit 2;;
esac
if [ ! -x "$bin" ] || [ -n "$(find fuzz/*.c tests/c/det_sodium.* src/*.c \
        src/*.h -newer "$bin" 2>/dev/null)" ]; then
    bash fuzz/build.sh || exit 2
fi
if [ -z "$(ls -A "$corpus" 2>/dev/null)" ]; then
    python3 fuzz/make_seeds.py $seeds "$corpus" || exit 2
fi
mkdir -p "$work" "$arts"
cp -n "$corpus"/* "$work"/ 2>/dev/null || true
if [ -d "$regs" ] && [ -n "$(ls -A "$regs" 2>/dev/null)" ]; then
    cp -n "$regs"/* "$work"/ 2>/dev/null || true
fi

log="$arts/run-$(date +%Y%m%d-%H%M%S).log"
echo "run.sh: fuzzing for ${secs}s, log in $log"
"$bin" -dict=fuzz/zmtp.dict -max_len="$maxlen" -rss_limit_mb=2048 \
    -malloc_limit_mb=64 -max_total_time="$secs" \
    -artifact_prefix="$arts/" -print_final_stats=1 "$@" \
    "$work" "$corpus" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

# Last status line, e.g. "#123456 DONE   cov: 300 ft: 900 corp: 80/12Kb ..."
last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
execs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}')
[ -n "$execs" ] || execs=$(printf '%s\n' "$last" | sed -E 's/^#([0-9]+).*/\1/')
echo "run.sh: last stats line: $last"
echo "run.sh: executions: ${execs:-unknown}"
echo "run.sh: corpus-work files: $(ls "$work" | wc -l)"
if [ "$rc" -ne 0 ]; then
    echo "run.sh: libFuzzer exited with status $rc: see $arts/" >&2
    ls -l "$arts"/ | grep -E 'crash-|leak-|timeout-|oom-|slow-unit-' >&2
fi
exit "$rc"
