#!/usr/bin/env bash
# Build zmtp and run its tests on every CPython this machine has (pyenv's
# 3.9 to 3.13, or the interpreters named), each in a fresh virtualenv with
# the package installed (not editable: the tests import the installed
# extension, as the wheel tests do), and print one summary line each.
#
#   scripts/test_pythons.sh [--part] [python ...]
#
# --part runs a stated part of the suite instead of all of it (about a
# third of the time): the API, codec, socket, interop, CURVE/PLAIN/ZAP,
# asyncio, device, option, ZMTP/2.0 and large-message modules, listed in PART below.  Exits non-zero when any
# interpreter fails to build, install or pass.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

PART="test_pyzmq_api.py test_socket_api.py test_codec_vectors.py test_spec.py test_interop.py
test_plain.py test_curve.py test_zap.py test_auth.py test_asyncio.py test_zmqstream.py test_compat.py
test_proxy.py test_devices.py test_options_pattern.py test_options_transport.py test_zmtp20.py
test_pyzmq_surface.py test_tracker.py test_zero_copy_send.py test_big_frames.py test_many_peers.py
test_connect_cost.py"

part=0
pythons=()
while [ $# -gt 0 ]; do
    case "$1" in
        --part) part=1; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        -*) echo "test_pythons.sh: unknown option $1" >&2; exit 2 ;;
        *) pythons+=("$1"); shift ;;
    esac
done
if [ ${#pythons[@]} -eq 0 ]; then
    for v in 3.9 3.10 3.11 3.12 3.13; do
        found=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python 2>/dev/null | sort -V | tail -1)
        if [ -n "$found" ]; then
            pythons+=("$found")
        elif command -v "python$v" >/dev/null; then
            pythons+=("$(command -v "python$v")")
        else
            echo "test_pythons.sh: no CPython $v here; skipped" >&2
        fi
    done
fi

work=$(mktemp -d /tmp/zmtp-pythons.XXXXXX)
trap 'rm -rf "$work"' EXIT
summary=()
rc=0
for py in "${pythons[@]}"; do
    ver=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') || { summary+=("$py: not runnable"); rc=1; continue; }
    venv="$work/venv-$ver"
    log="$work/$ver.log"
    echo "== CPython $ver ($py)" >&2
    if ! "$py" -m venv "$venv" >"$log" 2>&1 ||
       ! "$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel >>"$log" 2>&1 ||
       ! "$venv/bin/python" -m pip install -q "$root[test]" >>"$log" 2>&1; then
        tail -20 "$log" >&2
        summary+=("CPython $ver: build/install FAILED")
        rc=1
        continue
    fi
    tests=("$root/tests")
    if [ "$part" -eq 1 ]; then
        tests=()
        for t in $PART; do tests+=("$root/tests/$t"); done
    fi
    # From an empty directory, importlib mode: the installed zmtp is tested,
    # not the source tree's (which has no extension for this interpreter).
    (cd "$work" && "$venv/bin/python" -m pytest -q -p no:cacheprovider --import-mode=importlib \
        --rootdir "$root" -c "$root/pyproject.toml" "${tests[@]}") >"$log" 2>&1
    t_rc=$?
    last=$(grep -E "passed|failed|error" "$log" | tail -1)
    if [ "$t_rc" -ne 0 ]; then
        grep -E "^(FAILED|ERROR)" "$log" | head -20 >&2
        summary+=("CPython $ver: FAILED (exit $t_rc): $last")
        rc=1
    else
        summary+=("CPython $ver: $last")
    fi
done
echo "== summary ($([ "$part" -eq 1 ] && echo "part of the suite: $(echo $PART | wc -w) modules" || echo "whole suite"))"
printf '%s\n' "${summary[@]}"
exit "$rc"
