/*
 * common.h - small helpers shared by the whole C core: branch hints and
 * ZM_INLINE, big-endian loads and stores, the one clock (zm_now_ns), the
 * process-wide hot-path counters (ZM_COUNT), the allocation wrappers with
 * their failure injector and zm_grow, the doubling of an array or ring
 * (all three defined in counters.c).
 *
 * Layering: the bottom of src/.  It calls libc only and includes no other
 * zmtp header; every file may include it, and nothing in it may know of
 * pages, messages, sockets or Python.
 *
 * Conventions for the whole C core: only the Python-facing files include
 * Python.h; the codec, messages and pages do no I/O.  Functions that can
 * fail return 0 or a positive count on success and a negative code on
 * failure (-errno for system errors, -ZM_ERR_* for protocol errors), never
 * abort on input.
 */
#ifndef ZMTP_COMMON_H
#define ZMTP_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#if defined(__GNUC__) || defined(__clang__)
#define ZM_LIKELY(x) __builtin_expect(!!(x), 1)
#define ZM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define ZM_INLINE static inline __attribute__((always_inline))
#define ZM_NOINLINE __attribute__((noinline))
#define ZM_UNUSED __attribute__((unused))
#else
#define ZM_LIKELY(x) (x)
#define ZM_UNLIKELY(x) (x)
#define ZM_INLINE static inline
#define ZM_NOINLINE
#define ZM_UNUSED
#endif

/* Big-endian (network order) loads and stores. */
ZM_INLINE uint64_t zm_get_u64(const unsigned char *p)
{
    return ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) |
           ((uint64_t)p[2] << 40) | ((uint64_t)p[3] << 32) |
           ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
           ((uint64_t)p[6] << 8) | (uint64_t)p[7];
}

ZM_INLINE uint32_t zm_get_u32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

ZM_INLINE void zm_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

ZM_INLINE void zm_put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

ZM_INLINE void zm_put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

/* CLOCK_MONOTONIC in nanoseconds: the one clock of the engine, the
 * backends' timeouts and the progress thread (vDSO, no syscall). */
ZM_INLINE int64_t zm_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Counters of what the hot path costs (zmtp.io_stats())              */
/* ------------------------------------------------------------------ */

/* Process-wide counts of the C core's heap allocations and of its
 * syscalls by kind, so "no allocation per message" and "N syscalls per
 * round trip" are measured, not estimated.  Defined in counters.c. */
enum zm_counter {
    ZM_CNT_ALLOC,          /* malloc/calloc/realloc by the C core */
    ZM_CNT_SENDMSG,        /* sendmsg/send on a connection */
    ZM_CNT_RECV,           /* recv on a connection */
    ZM_CNT_EPOLL_CTL,
    ZM_CNT_EPOLL_WAIT,
    ZM_CNT_URING_ENTER,    /* io_uring_enter: submit and/or wait */
    ZM_CNT_EVENTFD,        /* wake-ups: eventfd read and write */
    ZM_CNT_OTHER,          /* accept, connect, poll of a dial */
    ZM_CNT_CONN_VISIT,     /* connections visited by socket steps (not a
                              syscall: the many-peers walk, engine.c) */
    ZM_CNT_COUNT_
};

extern uint64_t zm_counters[ZM_CNT_COUNT_];

/* Relaxed: these are statistics; no other memory is ordered by them and a
 * reader (zmtp.io_stats()) only needs each count to be untorn. */
#define ZM_COUNT(k) ((void)__atomic_fetch_add(&zm_counters[(k)], 1, __ATOMIC_RELAXED))

/* ------------------------------------------------------------------ */
/* Allocation failure injection (tests only: _zmtp._alloc_fail)        */
/* ------------------------------------------------------------------ */

/* Every allocation of the C core (zm_malloc, zm_calloc, zm_realloc and
 * zm_page_new, a cache hit included) is one "attempt".  A test arms the
 * injector (zm_alloc_fail_arm) to make chosen attempts fail as if the heap
 * were exhausted: the count-th..count+n-1-th attempts from now, and/or
 * each attempt with a probability from a seeded PRNG; optionally only the
 * attempts of the thread that armed it.  Disarmed (always, outside tests)
 * an allocation costs one relaxed load of zm_alloc_fail_armed and a branch
 * predicted not taken.  Defined in counters.c. */
extern int zm_alloc_fail_armed;

/* The slow half: 1 when this attempt must fail (counts it). */
int zm_alloc_fail_now_(void);

/* on: 0 disarms (the rest is ignored).  nth: the first attempt to fail,
 * counted from 1 = the next one (0: none by position; armed so, the
 * injector only counts); count: how many in a row from there (0: all of
 * them); p_u32: each attempt also fails with probability p_u32 / 2^32,
 * drawn from `seed`; this_thread: count only the calling thread's
 * attempts.  Resets the counts below. */
void zm_alloc_fail_arm(int on, uint64_t nth, uint64_t count, uint32_t p_u32,
                       uint64_t seed, int this_thread);
/* Attempts seen and failures injected since the last arm. */
void zm_alloc_fail_counts(uint64_t *attempts, uint64_t *failures);

ZM_INLINE int zm_alloc_fails(void)
{
    /* Relaxed: the flag orders nothing; a test arms it before the call it
     * tests, on the same thread or before waking the one that allocates. */
    return ZM_UNLIKELY(__atomic_load_n(&zm_alloc_fail_armed, __ATOMIC_RELAXED)) &&
           zm_alloc_fail_now_();
}

ZM_INLINE void *zm_malloc(size_t n)
{
    if (zm_alloc_fails())
        return NULL;
    ZM_COUNT(ZM_CNT_ALLOC);
    return malloc(n);
}

ZM_INLINE void *zm_calloc(size_t k, size_t n)
{
    if (zm_alloc_fails())
        return NULL;
    ZM_COUNT(ZM_CNT_ALLOC);
    return calloc(k, n);
}

ZM_INLINE void *zm_realloc(void *p, size_t n)
{
    if (zm_alloc_fails())
        return NULL;
    ZM_COUNT(ZM_CNT_ALLOC);
    return realloc(p, n);
}

/* Grow an array of `elt`-byte items to hold at least `need` (capacity
 * doubled, from `first` when empty).  A ring (head != NULL) is unrolled:
 * its n items from *head, wrapping at *cap, land at 0..n of the new array
 * and *head becomes 0; a plain array (head == NULL) keeps its first n
 * items.  Returns the array (the old one when it had room), or NULL when
 * out of memory (then nothing changed: items, *cap and *head stay valid).
 * Defined in counters.c; the rings of messages, output segments and message
 * spans, the fan-out targets and the trie's arrays all grow through it. */
void *zm_grow(void *items, size_t *cap, size_t *head, size_t n, size_t need,
              size_t elt, size_t first);

#endif /* ZMTP_COMMON_H */
