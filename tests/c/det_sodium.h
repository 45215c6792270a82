/*
 * det_sodium.h - sodium.h's zm_sodium_get for tests and fuzzers only:
 * libsodium's primitives, with randomness that is not random.
 *
 * Link tests/c/det_sodium.c instead of src/sodium.c (it includes that
 * file for the loading, under another name): mech_curve.c then draws its
 * ephemeral key pairs, cookie keys and long nonces from a stream fixed
 * by det_sodium_seed(), so a CURVE handshake is reproducible byte for
 * byte (tests/c/test_curve_kat.c, fuzz/mech_fuzz.c).  The production
 * build never links this file: no cost and no switch there.
 */
#ifndef ZMTP_DET_SODIUM_H
#define ZMTP_DET_SODIUM_H

#include <stddef.h>
#include <stdint.h>

#include "sodium.h"

/* Restart the stream from `seed` and forget the key pairs made so far. */
void det_sodium_seed(uint64_t seed);

/* The real libsodium table (or NULL, *why set), for a harness's own
 * boxes; its randombytes_buf is libsodium's. */
const zm_sodium *det_sodium_real(const char **why);

/* The secret key of a key pair made since the last seed (by
 * crypto_box_keypair or det_sodium_keypair), or NULL. */
const unsigned char *det_sodium_secret_for(const unsigned char pk[32]);

/* A key pair from the stream (remembered as above). */
void det_sodium_keypair(unsigned char pk[32], unsigned char sk[32]);

/* The next n bytes of the stream. */
void det_sodium_bytes(void *buf, size_t n);

#endif /* ZMTP_DET_SODIUM_H */
