#!/usr/bin/env bash
# Build the libFuzzer harness: fuzz/build/decoder_fuzz
# Usage: bash fuzz/build.sh   (from anywhere; CC overrides the compiler)
# SRC_DIR overrides the C sources directory (default: <repo>/src), e.g. to
# fuzz a locally patched copy without touching the repository.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
src="${SRC_DIR:-$root/src}"
CC="${CC:-clang}"
out="$here/build"
mkdir -p "$out"

# unsigned-integer-overflow: the C core has no intentional wraparound in the
# code reached by this harness (the harness's own hashing/PRNG functions opt
# out with no_sanitize).  Set NO_UIO=1 to drop the flag if that changes.
uio=",unsigned-integer-overflow"
[ "${NO_UIO:-0}" = 1 ] && uio=""

flags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -fsanitize=pointer-overflow${uio} -fno-omit-frame-pointer
       -std=c11 -Wall -Wextra -I"$src")
set -x
# -D_GNU_SOURCE: common.h's clock_gettime under -std=c11.
"$CC" "${flags[@]}" -D_GNU_SOURCE \
    "$here/decoder_fuzz.c" "$src/arena.c" "$src/msg.c" "$src/codec.c" "$src/counters.c" \
    -o "$out/decoder_fuzz"
# The mechanisms' handshakes (mech_fuzz.c): libsodium is dlopened at run
# time through tests/c/det_sodium.c (fixed randomness), which includes
# src/sodium.c.
"$CC" "${flags[@]}" -D_GNU_SOURCE -I"$root/tests/c" \
    "$here/mech_fuzz.c" "$root/tests/c/det_sodium.c" "$src/mechanism.c" \
    "$src/mech_null.c" "$src/mech_plain.c" "$src/mech_curve.c" \
    "$src/codec.c" "$src/msg.c" "$src/arena.c" "$src/counters.c" \
    -ldl -lpthread -o "$out/mech_fuzz"
