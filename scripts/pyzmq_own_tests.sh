#!/usr/bin/env bash
# Run pyzmq's own tests against zmtp (`import zmq` routed to zmtp by
# `python -m zmtp.compat`) and print passed / failed / skipped per file and
# the failures.  pyzmq's tests are not vendored: check them out yourself,
#
#   git clone --depth 1 https://github.com/zeromq/pyzmq /tmp/pyzmq   # or an sdist
#   scripts/pyzmq_own_tests.sh /tmp/pyzmq/tests [test_file.py ...]
#
# Without the directory (CI has no network) it says so and exits 0.  Each
# file runs in its own process with a time limit (PYZMQ_TESTS_TIMEOUT, 300 s).
# The default files are the blocking API's (socket, context, message,
# constants, imports, ext, decorators, log) and the devices'.  Exits 1 when
# a test fails, 0 otherwise.  The count in docs/migrating-from-pyzmq.md
# ("pyzmq's own tests") comes from this script.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    sed -n '2,14p' "$0"
    [ $# -lt 1 ] && exit 2 || exit 0
fi
tests="$1"; shift
if [ ! -f "$tests/conftest.py" ] || [ ! -f "$tests/test_socket.py" ]; then
    echo "pyzmq_own_tests.sh: no pyzmq tests at $tests (check pyzmq's tests/ out there); skipped"
    exit 0
fi
tests="$(cd "$tests" && pwd)"
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
    files=(test_socket.py test_context.py test_message.py test_constants.py test_imports.py test_ext.py
           test_decorators.py test_log.py test_device.py test_monqueue.py test_proxy_steerable.py)
fi
python="${PYTHON:-python}"
limit="${PYZMQ_TESTS_TIMEOUT:-300}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$tests/../pyproject.toml" 2>/dev/null | head -1)
echo "pyzmq's tests from $tests${version:+ (pyzmq $version)} against zmtp at $root"
for f in "${files[@]}"; do
    name="${f%.py}"
    # From the tests' directory so their conftest.py and zmq_test_utils import;
    # zmtp from this checkout.
    (cd "$tests" && PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" timeout -k 10 "$limit" \
        "$python" -m zmtp.compat -m pytest "$f" -q -p no:cacheprovider -p no:randomly -n 0 \
        --junitxml="$out/$name.xml" >"$out/$name.log" 2>&1)
    rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "TIMEOUT after ${limit}s" >>"$out/$name.log"
    fi
    echo "$rc" >"$out/$name.rc"
done

"$python" - "$out" "${files[@]}" <<'EOF'
import os, sys
import xml.etree.ElementTree as ET

out, files = sys.argv[1], sys.argv[2:]
total = {"passed": 0, "failed": 0, "skipped": 0}
failures = []
print(f"{'file':28} {'passed':>6} {'failed':>6} {'skipped':>7}")
for f in files:
    name = f[:-3] if f.endswith(".py") else f
    xml = os.path.join(out, name + ".xml")
    log = open(os.path.join(out, name + ".log"), errors="replace").read()
    if not os.path.exists(xml):
        tail = log.strip().splitlines()[-1:] or ["no output"]
        print(f"{name:28} {'-':>6} {'-':>6} {'-':>7}   did not run: {tail[0]}")
        failures.append((f"{name} (whole file)", tail[0]))
        total["failed"] += 1
        continue
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for case in ET.parse(xml).getroot().iter("testcase"):
        tid = f"{name}::{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            counts["failed"] += 1
            msg = (bad.get("message") or "").strip().splitlines()
            failures.append((tid, msg[0][:160] if msg else ""))
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    note = "   (TIMEOUT: counts are partial)" if "TIMEOUT after" in log else ""
    print(f"{name:28} {counts['passed']:>6} {counts['failed']:>6} {counts['skipped']:>7}{note}")
    for k in total:
        total[k] += counts[k]
print(f"{'total':28} {total['passed']:>6} {total['failed']:>6} {total['skipped']:>7}")
if failures:
    print("\nfailures:")
    for tid, msg in failures:
        print(f"  {tid}: {msg}")
sys.exit(1 if failures else 0)
EOF
