#!/usr/bin/env bash
# Checks the wheel's libsodium path outside cibuildwheel's container
# (docs/decisions.md, "libsodium: loaded at run time"): builds libsodium
# with the configure line of pyproject.toml's [tool.cibuildwheel.linux]
# before-all, puts it where before-build does (zmtp/_sodium/libsodium.so) in
# a clean clone, builds a wheel, installs it in a fresh venv and checks that
# zmtp loads that copy and has CURVE.
#
# The source is before-all's (libsodium 1.0.22 from its GitHub release or
# libsodium's site) when reachable; offline, PyNaCl's sdist on PyPI (it
# bundles libsodium 1.0.20's release tree), which checks the same path with
# an older release (the script says which it built).
#
#   bash scripts/wheel_sodium_check.sh [PYTHON]
set -euo pipefail
py=${1:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
version=1.0.22
if curl -fsSL --max-time 30 -o "$work/ls.tar.gz" \
    "https://github.com/jedisct1/libsodium/releases/download/$version-RELEASE/libsodium-$version.tar.gz" 2>/dev/null ||
   curl -fsSL --max-time 30 -o "$work/ls.tar.gz" \
    "https://download.libsodium.org/libsodium/releases/libsodium-$version.tar.gz" 2>/dev/null; then
    tar -xzf "$work/ls.tar.gz" -C "$work/src" --strip-components=1
else
    version=1.0.20
    echo "libsodium's release sites unreachable: taking libsodium $version from PyNaCl's sdist (PyPI)"
    "$py" -m pip download -q --no-binary :all: --no-deps -d "$work/dl" "pynacl==1.6.2"
    tar -xzf "$work"/dl/pynacl-*.tar.gz -C "$work/dl"
    cp -a "$work"/dl/pynacl-*/src/libsodium/. "$work/src/"
fi
grep -q "AC_INIT(\[libsodium\],\[$version\]" "$work/src/configure.ac" || { echo "not libsodium $version"; exit 1; }
echo "building libsodium $version"
(cd "$work/src" && ./configure --prefix="$work/prefix" --disable-static --enable-shared \
    --disable-dependency-tracking >/dev/null && make -j2 >/dev/null && make install >/dev/null)
git clone -q "$root" "$work/clone"
mkdir -p "$work/clone/zmtp/_sodium"
cp -L "$work/prefix/lib/libsodium.so" "$work/clone/zmtp/_sodium/libsodium.so"
"$py" -m pip wheel -q --no-deps -w "$work/whl" "$work/clone"
unzip -l "$work"/whl/zmtp-*.whl | grep -q "zmtp/_sodium/libsodium.so" || { echo "libsodium missing from the wheel"; exit 1; }
"$py" -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$work"/whl/zmtp-*.whl
cd "$work"
"$work/venv/bin/python" - <<'PY'
import sys
import zmtp
assert zmtp.has("curve"), "CURVE missing from the wheel"
pub, sec = zmtp.curve_keypair()  # loads libsodium (dlopen at first use)
assert zmtp.curve_public(sec) == pub
loaded = [l.split()[-1] for l in open("/proc/self/maps") if "sodium" in l]
want = zmtp.__file__.rsplit("/", 1)[0] + "/_sodium/libsodium.so"
assert want in loaded, f"zmtp loaded {sorted(set(loaded))}, not the wheel's {want}"
print(f"ok: the wheel's libsodium ({want}) is loaded and CURVE works")
PY
