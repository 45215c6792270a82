/*
 * z85.h - Z85 (RFC 32), the text form of CURVE keys: 4 bytes as 5
 * printable characters.  For keys given as options and printed by
 * curve_keypair(); zmtp.utils.z85 is the Python codec for users.
 *
 * Owns: the encoder and the decoder.  May call: nothing.  Called by: the
 * CURVE options and key functions (py_curve.c, py_sockopt.c) and tests.
 */
#ifndef ZMTP_Z85_H
#define ZMTP_Z85_H

#include <stddef.h>

/* Encode n bytes (a multiple of 4) into out (n * 5 / 4 characters and a
 * NUL): 0, or -EINVAL when n is not a multiple of 4. */
int zm_z85_encode(char *out, const unsigned char *data, size_t n);

/* Decode n characters (a multiple of 5) into out (n * 4 / 5 bytes): 0, or
 * -EINVAL (a length not a multiple of 5, a character outside the
 * alphabet, a group above 2^32 - 1). */
int zm_z85_decode(unsigned char *out, const char *text, size_t n);

#endif /* ZMTP_Z85_H */
