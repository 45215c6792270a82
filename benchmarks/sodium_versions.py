"""The cipher's speed per libsodium build (docs/decisions.md, "Which version matters for speed"): for each
library file given, its sodium_version_string() and the time of one 64 KiB CURVE box (crypto_box_easy_afternm
on 65 537 bytes: a MESSAGE's flags byte and frame; best of 5 rounds of 2000), and of its two halves
(crypto_stream_salsa20_xor, crypto_onetimeauth_poly1305), through ctypes (no headers needed).

Run: ``python benchmarks/sodium_versions.py LIB [LIB...]``, e.g. Debian's
``/usr/lib/x86_64-linux-gnu/libsodium.so.23`` and pyzmq's ``site-packages/pyzmq.libs/libsodium-*.so*``.
"""
import ctypes
import sys
import time

ROUNDS, N, SIZE = 5, 2000, 65537


def best_us(call) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        t = time.perf_counter()
        for _ in range(N):
            call()
        best = min(best, (time.perf_counter() - t) / N)
    return best * 1e6


for path in sys.argv[1:]:
    lib = ctypes.CDLL(path)
    lib.sodium_init()
    lib.sodium_version_string.restype = ctypes.c_char_p
    key, nonce = ctypes.create_string_buffer(32), ctypes.create_string_buffer(24)
    msg, box = ctypes.create_string_buffer(SIZE), ctypes.create_string_buffer(SIZE + 16)
    n = ctypes.c_ulonglong(SIZE)
    seal = best_us(lambda: lib.crypto_box_easy_afternm(box, msg, n, nonce, key))
    salsa = best_us(lambda: lib.crypto_stream_salsa20_xor(box, msg, n, nonce, key))
    poly = best_us(lambda: lib.crypto_onetimeauth_poly1305(box, msg, n, key))
    print(f"{lib.sodium_version_string().decode():8s} seal {seal:5.1f} us  salsa20 {salsa:5.1f}  poly1305 {poly:5.1f}  "
          f"{path.rsplit('/', 1)[-1]}")
