/*
 * det_sodium.c - see det_sodium.h.  src/sodium.c is included here with
 * its zm_sodium_get renamed, so the library is found and loaded exactly
 * as in production; the table handed to mech_curve.c is a copy whose
 * randombytes_buf and crypto_box_keypair draw from a splitmix64 stream.
 */
#define zm_sodium_get det_sodium_get_real_
#include "../../src/sodium.c"
#undef zm_sodium_get

#include "det_sodium.h"

#define DET_KEYS 64

#if defined(__clang__)
#define DET_WRAPS __attribute__((no_sanitize("unsigned-integer-overflow")))
#else
#define DET_WRAPS
#endif

static uint64_t det_state;
static zm_sodium det_table;
static const zm_sodium *det_loaded;
static unsigned char det_pk[DET_KEYS][32], det_sk[DET_KEYS][32];
static size_t det_nkeys;

DET_WRAPS static uint64_t det_next(void)
{
    uint64_t z = (det_state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void det_sodium_seed(uint64_t seed)
{
    det_state = seed;
    det_nkeys = 0;
}

void det_sodium_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;

    while (n > 0) {
        uint64_t v = det_next();
        for (int i = 0; i < 8 && n > 0; i++, n--) {
            *p++ = (unsigned char)v;
            v >>= 8;
        }
    }
}

static void det_randombytes_buf(void *buf, size_t n)
{
    det_sodium_bytes(buf, n);
}

void det_sodium_keypair(unsigned char pk[32], unsigned char sk[32])
{
    size_t slot = det_nkeys++ % DET_KEYS;

    det_sodium_bytes(sk, 32);
    det_sodium_get_real_(NULL)->crypto_scalarmult_base(pk, sk);
    memcpy(det_pk[slot], pk, 32);
    memcpy(det_sk[slot], sk, 32);
}

static int det_box_keypair(unsigned char *pk, unsigned char *sk)
{
    det_sodium_keypair(pk, sk);
    return 0;
}

const unsigned char *det_sodium_secret_for(const unsigned char pk[32])
{
    size_t n = det_nkeys < DET_KEYS ? det_nkeys : DET_KEYS;

    for (size_t i = 0; i < n; i++)
        if (memcmp(det_pk[i], pk, 32) == 0)
            return det_sk[i];
    return NULL;
}

const zm_sodium *det_sodium_real(const char **why)
{
    return det_sodium_get_real_(why);
}

const zm_sodium *zm_sodium_get(const char **why)
{
    if (det_loaded == NULL) {
        const zm_sodium *real = det_sodium_get_real_(why);
        if (real == NULL)
            return NULL;
        det_table = *real;
        det_table.randombytes_buf = det_randombytes_buf;
        det_table.crypto_box_keypair = det_box_keypair;
        det_loaded = &det_table;
    }
    return det_loaded;
}
