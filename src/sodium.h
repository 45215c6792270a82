/*
 * sodium.h - libsodium, loaded at run time (docs/decisions.md, "libsodium:
 * loaded at run time").  zmtp writes no cryptographic primitive: CURVE's
 * boxes and keys are libsodium's, the library libzmq uses.
 *
 * The few functions CURVE needs are declared here (their libsodium
 * signatures), so no libsodium header is needed to build, and resolved
 * with dlsym from the first library that opens: a copy shipped in the
 * wheel next to the extension (`zmtp/_sodium/libsodium.so`), then the
 * system's libsodium.so.23, .so.26, .so (or only $ZMTP_LIBSODIUM, a path,
 * when set).  Without one, CURVE is
 * unavailable and zm_sodium() says why.
 *
 * Owns: the table of function pointers and the one-time load.
 * May call: libc, libdl.  Called by: mech_curve.c, z85.c's users, the
 * Python face (py_curve.c) for keys and "is CURVE available"; never on a
 * path that runs before CURVE is asked for.
 */
#ifndef ZMTP_SODIUM_H
#define ZMTP_SODIUM_H

#include <stddef.h>

/* crypto_box (curve25519xsalsa20poly1305) sizes, fixed by libsodium. */
#define ZM_BOX_PUBLICKEYBYTES 32
#define ZM_BOX_SECRETKEYBYTES 32
#define ZM_BOX_BEFORENMBYTES 32
#define ZM_BOX_NONCEBYTES 24
#define ZM_BOX_MACBYTES 16
#define ZM_SECRETBOX_KEYBYTES 32

/* The functions, with libsodium's signatures.  Box functions return 0,
 * or -1 (a bad box, a weak key). */
typedef struct zm_sodium {
    int (*crypto_box_keypair)(unsigned char *pk, unsigned char *sk);
    int (*crypto_scalarmult_base)(unsigned char *q, const unsigned char *n);
    int (*crypto_box_beforenm)(unsigned char *k, const unsigned char *pk,
                               const unsigned char *sk);
    int (*crypto_box_easy)(unsigned char *c, const unsigned char *m,
                           unsigned long long mlen, const unsigned char *n,
                           const unsigned char *pk, const unsigned char *sk);
    int (*crypto_box_open_easy)(unsigned char *m, const unsigned char *c,
                                unsigned long long clen,
                                const unsigned char *n,
                                const unsigned char *pk,
                                const unsigned char *sk);
    int (*crypto_box_easy_afternm)(unsigned char *c, const unsigned char *m,
                                   unsigned long long mlen,
                                   const unsigned char *n,
                                   const unsigned char *k);
    int (*crypto_box_open_easy_afternm)(unsigned char *m,
                                        const unsigned char *c,
                                        unsigned long long clen,
                                        const unsigned char *n,
                                        const unsigned char *k);
    int (*crypto_secretbox_easy)(unsigned char *c, const unsigned char *m,
                                 unsigned long long mlen,
                                 const unsigned char *n,
                                 const unsigned char *k);
    int (*crypto_secretbox_open_easy)(unsigned char *m,
                                      const unsigned char *c,
                                      unsigned long long clen,
                                      const unsigned char *n,
                                      const unsigned char *k);
    void (*randombytes_buf)(void *buf, size_t size);
    void (*sodium_memzero)(void *pnt, size_t len);
    const char *(*sodium_version_string)(void);
} zm_sodium;

/* The loaded table (loaded on the first call, thread-safe), or NULL when
 * no libsodium could be loaded: then *why (if why is not NULL) is a static
 * sentence saying what is missing and what to install. */
const zm_sodium *zm_sodium_get(const char **why);

/* Zero secret material (a volatile write the compiler keeps; never
 * loads libsodium). */
void zm_secure_zero(void *p, size_t n);

#endif /* ZMTP_SODIUM_H */
