#!/usr/bin/env bash
# Fuzz the ZMTP decoder for SECONDS seconds (single process).
# Usage: bash fuzz/run.sh SECONDS [extra libFuzzer flags...]
# Exit status: 0 when libFuzzer found nothing, non-zero otherwise
# (crash / leak / timeout / OOM artifacts are in fuzz/artifacts/).
set -uo pipefail
secs="${1:?usage: run.sh SECONDS [libFuzzer flags...]}"
shift
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$root"

bin=fuzz/build/decoder_fuzz
if [ ! -x "$bin" ] || [ -n "$(find fuzz/decoder_fuzz.c src/arena.c src/counters.c src/msg.c \
        src/codec.c src/*.h -newer "$bin" 2>/dev/null)" ]; then
    bash fuzz/build.sh || exit 2
fi
if [ -z "$(ls -A fuzz/corpus 2>/dev/null)" ]; then
    python3 fuzz/make_seeds.py fuzz/corpus || exit 2
fi
mkdir -p fuzz/corpus-work fuzz/artifacts
cp -n fuzz/corpus/* fuzz/corpus-work/ 2>/dev/null || true
if [ -d fuzz/regressions ] && [ -n "$(ls -A fuzz/regressions 2>/dev/null)" ]; then
    cp -n fuzz/regressions/* fuzz/corpus-work/ 2>/dev/null || true
fi

log="fuzz/artifacts/run-$(date +%Y%m%d-%H%M%S).log"
echo "run.sh: fuzzing for ${secs}s, log in $log"
"$bin" -dict=fuzz/zmtp.dict -max_len=65536 -rss_limit_mb=2048 \
    -malloc_limit_mb=64 -max_total_time="$secs" \
    -artifact_prefix=fuzz/artifacts/ -print_final_stats=1 "$@" \
    fuzz/corpus-work fuzz/corpus 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

# Last status line, e.g. "#123456 DONE   cov: 300 ft: 900 corp: 80/12Kb ..."
last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
execs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}')
[ -n "$execs" ] || execs=$(printf '%s\n' "$last" | sed -E 's/^#([0-9]+).*/\1/')
echo "run.sh: last stats line: $last"
echo "run.sh: executions: ${execs:-unknown}"
echo "run.sh: corpus-work files: $(ls fuzz/corpus-work | wc -l)"
if [ "$rc" -ne 0 ]; then
    echo "run.sh: libFuzzer exited with status $rc: see fuzz/artifacts/" >&2
    ls -l fuzz/artifacts/ | grep -E 'crash-|leak-|timeout-|oom-|slow-unit-' >&2
fi
exit "$rc"
