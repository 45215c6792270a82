#!/usr/bin/env bash
# The README's test command, in a fresh virtualenv (as .ci/run does), while a
# CPU-bound process keeps one core busy: the suite must pass on a busy, slow
# machine, not only on a quiet one.
#
#   scripts/ci_under_load.sh [--runs N]
#
# --runs N repeats the test command N times (one install), stopping at the
# first failure.  Exits with pytest's code; 5 (no test collected) is a
# failure, as in .ci/run.  PYTHON picks the interpreter (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."

runs=1
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=${2:?--runs needs a number}; shift 2 ;;
        --runs=*) runs=${1#--runs=}; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "ci_under_load.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$runs" in ''|*[!0-9]*|0) echo "ci_under_load.sh: --runs wants a positive number" >&2; exit 2 ;; esac

PY=${PYTHON:-python3}
venv=.ci/venv-load
rm -rf "$venv"
"$PY" -m venv "$venv" || exit 1
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install -q --upgrade pip setuptools wheel || exit 1

# One core busy for as long as the tests run (killed on any exit).
python -c 'while True: pass' &
hog=$!
trap 'kill "$hog" 2>/dev/null; wait "$hog" 2>/dev/null' EXIT
trap 'exit 130' INT TERM
echo "ci_under_load.sh: CPU hog pid $hog on one of $(nproc) cores" >&2

rc=0
for i in $(seq "$runs"); do
    echo "ci_under_load.sh: run $i of $runs" >&2
    if [ "$i" -eq 1 ]; then
        # The README's test command, exactly:
        pip install -e ".[test]" && python -m pytest
        rc=$?
    else
        python -m pytest
        rc=$?
    fi
    if [ "$rc" -eq 5 ]; then
        echo "ci_under_load.sh: pytest collected no tests; failing" >&2
        rc=1
    fi
    if [ "$rc" -ne 0 ]; then
        echo "ci_under_load.sh: run $i of $runs failed (exit $rc)" >&2
        break
    fi
done
exit "$rc"
