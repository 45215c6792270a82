/*
 * counters.c - the out-of-line part of common.h: the process-wide hot-path
 * counters (zmtp.io_stats()) and the allocation failure injector that
 * zm_malloc / zm_calloc / zm_realloc consult (tests only:
 * _zmtp._alloc_fail), and zm_grow, the doubling of an array or ring that
 * messages, queues, tries and output queues share.
 *
 * Layering: calls libc and pthread only.  Every C file may use it through
 * common.h; it must never call back into any of them.  The C tests and the
 * fuzz harness link it with whatever they test.
 */
#include "common.h"

#include <stdlib.h>
#include <string.h>

uint64_t zm_counters[ZM_CNT_COUNT_];

/* ------------------------------------------------------------------ */
/* Allocation failure injection (see common.h)                        */
/* ------------------------------------------------------------------ */

#include <pthread.h>

int zm_alloc_fail_armed;

/* Written by zm_alloc_fail_arm before zm_alloc_fail_armed is set (release)
 * and read after it was seen set (acquire in zm_alloc_fail_now_); the
 * counts are atomics of their own. */
static struct {
    uint64_t nth, count;   /* fail attempts nth..nth+count-1 (count 0: on) */
    uint32_t p_u32;        /* and each with probability p_u32 / 2^32 */
    uint64_t seed;
    int this_thread;
    pthread_t thread;
    uint64_t attempts;     /* atomic */
    uint64_t failures;     /* atomic */
} g_fail;

/* splitmix64: the attempt's draw depends on the seed and its index only,
 * so a sweep is reproducible whichever thread makes the attempt. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int zm_alloc_fail_now_(void)
{
    uint64_t k;
    int fail = 0;

    /* Acquire: pairs with the release in zm_alloc_fail_arm, so the
     * settings read below are the ones armed. */
    if (!__atomic_load_n(&zm_alloc_fail_armed, __ATOMIC_ACQUIRE))
        return 0;
    if (g_fail.this_thread && !pthread_equal(pthread_self(), g_fail.thread))
        return 0;
    k = __atomic_add_fetch(&g_fail.attempts, 1, __ATOMIC_RELAXED);
    if (g_fail.nth > 0 && k >= g_fail.nth &&
        (g_fail.count == 0 || k - g_fail.nth < g_fail.count))
        fail = 1;
    if (g_fail.p_u32 > 0 &&
        (uint32_t)(mix64(g_fail.seed ^ (k * 0x2545f4914f6cdd1dull)) >> 32) <
            g_fail.p_u32)
        fail = 1;
    if (fail)
        __atomic_add_fetch(&g_fail.failures, 1, __ATOMIC_RELAXED);
    return fail;
}

void zm_alloc_fail_arm(int on, uint64_t nth, uint64_t count, uint32_t p_u32,
                       uint64_t seed, int this_thread)
{
    /* Disarm first (relaxed is enough: a thread that still sees it set
     * reads settings that are changing, and at worst fails or passes one
     * attempt of the test that is re-arming). */
    __atomic_store_n(&zm_alloc_fail_armed, 0, __ATOMIC_RELAXED);
    g_fail.nth = nth;
    g_fail.count = count;
    g_fail.p_u32 = p_u32;
    g_fail.seed = seed;
    g_fail.this_thread = this_thread;
    g_fail.thread = pthread_self();
    __atomic_store_n(&g_fail.attempts, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&g_fail.failures, 0, __ATOMIC_RELAXED);
    /* Release: the settings above are visible to any thread that sees the
     * flag set (acquire in zm_alloc_fail_now_).  Armed with nothing to
     * fail it still counts attempts (a test measures a step first). */
    __atomic_store_n(&zm_alloc_fail_armed, on ? 1 : 0, __ATOMIC_RELEASE);
}

void zm_alloc_fail_counts(uint64_t *attempts, uint64_t *failures)
{
    *attempts = __atomic_load_n(&g_fail.attempts, __ATOMIC_RELAXED);
    *failures = __atomic_load_n(&g_fail.failures, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* Growing an array or a ring (see common.h)                          */
/* ------------------------------------------------------------------ */

void *zm_grow(void *items, size_t *cap, size_t *head, size_t n, size_t need,
              size_t elt, size_t first)
{
    size_t ncap = *cap > 0 ? *cap : first;
    unsigned char *grown, *old = items;

    if (need <= *cap)
        return items;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return NULL;
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / elt)
        return NULL;
    if (head == NULL || *head == 0) {
        /* In order from 0 already: realloc keeps them. */
        grown = zm_realloc(old, ncap * elt);
        if (grown == NULL)
            return NULL;
    } else {
        /* A ring that wraps: the run from head to the end, then the rest
         * from 0. */
        size_t run = *cap - *head < n ? *cap - *head : n;
        grown = zm_malloc(ncap * elt);
        if (grown == NULL)
            return NULL;
        memcpy(grown, old + *head * elt, run * elt);
        memcpy(grown + run * elt, old, (n - run) * elt);
        free(old);
        *head = 0;
    }
    *cap = ncap;
    return grown;
}
