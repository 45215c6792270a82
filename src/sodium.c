/*
 * sodium.c - libsodium loaded at run time (see sodium.h): dlopen the first
 * library found, dlsym each function into one table, sodium_init() once.
 *
 * Owns: the table and the once-only load.  May call: libc, libdl.
 * Called by: mech_curve.c and the Python face (see sodium.h).
 */
#include "sodium.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static zm_sodium table;
static const zm_sodium *loaded;
static const char *load_error;

/* The system names tried after the wheel's own copy: Debian 12 and Ubuntu
 * 22.04/24.04 ship libsodium.so.23 (1.0.18), newer distributions
 * .so.26 (1.0.19+); the unversioned name exists with the -dev package. */
static const char *const system_names[] = {
    "libsodium.so.23",
    "libsodium.so.26",
    "libsodium.so",
};

#define NO_LIBSODIUM                                                         \
    "CURVE needs libsodium, which was not found: install it "                \
    "(Debian/Ubuntu: apt-get install libsodium23; Fedora: dnf install "      \
    "libsodium) or install zmtp from a binary wheel, which ships it"

/* The wheel's copy: <dir of this extension>/_sodium/libsodium.so, or NULL.
 * The extension is zmtp/_zmtp*.so, so the copy is zmtp/_sodium/. */
static void *open_shipped(void)
{
    char path[PATH_MAX];
    Dl_info info;
    const char *slash;
    int n;

    if (dladdr((void *)&zm_sodium_get, &info) == 0 || info.dli_fname == NULL)
        return NULL;
    slash = strrchr(info.dli_fname, '/');
    if (slash == NULL)
        return NULL;
    n = snprintf(path, sizeof(path), "%.*s/_sodium/libsodium.so",
                 (int)(slash - info.dli_fname), info.dli_fname);
    if (n < 0 || (size_t)n >= sizeof(path))
        return NULL;
    return dlopen(path, RTLD_NOW | RTLD_LOCAL);
}

/* Resolve one symbol into *slot: 0, or -ENOENT. */
static int resolve(void *lib, const char *name, void *slot)
{
    void *sym = dlsym(lib, name);

    if (sym == NULL)
        return -ENOENT;
    memcpy(slot, &sym, sizeof(sym)); /* object pointer to function pointer */
    return 0;
}

/* ZMTP_LIBSODIUM=path: that library only (a user's own build; tests
 * name a missing one to see zmtp without libsodium).  Else the wheel's
 * copy, then the system's names. */
static void *open_library(void)
{
    const char *forced = getenv("ZMTP_LIBSODIUM");
    void *lib;

    if (forced != NULL && forced[0] != '\0')
        return dlopen(forced, RTLD_NOW | RTLD_LOCAL);
    lib = open_shipped();
    for (size_t i = 0; lib == NULL && i < sizeof(system_names) /
                                           sizeof(system_names[0]); i++)
        lib = dlopen(system_names[i], RTLD_NOW | RTLD_LOCAL);
    return lib;
}

static void load(void)
{
    void *lib = open_library();
    int (*init)(void) = NULL;
    int rc = 0;

    if (lib == NULL) {
        load_error = NO_LIBSODIUM;
        return;
    }
#define R(fn) rc |= resolve(lib, #fn, &table.fn)
    R(crypto_box_keypair);
    R(crypto_scalarmult_base);
    R(crypto_box_beforenm);
    R(crypto_box_easy);
    R(crypto_box_open_easy);
    R(crypto_box_easy_afternm);
    R(crypto_box_open_easy_afternm);
    R(crypto_secretbox_easy);
    R(crypto_secretbox_open_easy);
    R(randombytes_buf);
    R(sodium_memzero);
    R(sodium_version_string);
#undef R
    rc |= resolve(lib, "sodium_init", &init);
    if (rc != 0) {
        load_error = "CURVE needs libsodium 1.0.12 or newer: the libsodium "
                     "found lacks functions zmtp uses";
        goto fail;
    }
    /* 0: initialised now, 1: already (another user of the library). */
    if (init() < 0) {
        load_error = "libsodium failed to initialise (sodium_init)";
        goto fail;
    }
    loaded = &table;
    return;
fail:
    memset(&table, 0, sizeof(table));
    dlclose(lib);
}

const zm_sodium *zm_sodium_get(const char **why)
{
    pthread_once(&load_once, load);
    if (loaded == NULL && why != NULL)
        *why = load_error;
    return loaded;
}

void zm_secure_zero(void *p, size_t n)
{
    /* Not libsodium's: sockets without CURVE zero their (empty) keys too,
     * and must not load the library for it. */
    volatile unsigned char *v = p;

    for (size_t i = 0; i < n; i++) /* no wraparound: UBSan's build */
        v[i] = 0;
}
