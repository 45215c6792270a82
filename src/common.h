/*
 * common.h - small helpers shared by the C core (no Python here).
 *
 * The C core (arena.c, msg.c, codec.c) is sans-IO and never includes
 * Python.h; only _zmtpmodule.c does.  Functions that can fail return 0 or a
 * positive count on success and a negative code on failure (-errno for
 * system errors, -ZM_ERR_* for protocol errors), never abort on input.
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
    ZM_CNT_COUNT_
};

extern uint64_t zm_counters[ZM_CNT_COUNT_];

/* Relaxed: these are statistics; no other memory is ordered by them and a
 * reader (zmtp.io_stats()) only needs each count to be untorn. */
#define ZM_COUNT(k) ((void)__atomic_fetch_add(&zm_counters[(k)], 1, __ATOMIC_RELAXED))

ZM_INLINE void *zm_malloc(size_t n)
{
    ZM_COUNT(ZM_CNT_ALLOC);
    return malloc(n);
}

ZM_INLINE void *zm_calloc(size_t k, size_t n)
{
    ZM_COUNT(ZM_CNT_ALLOC);
    return calloc(k, n);
}

ZM_INLINE void *zm_realloc(void *p, size_t n)
{
    ZM_COUNT(ZM_CNT_ALLOC);
    return realloc(p, n);
}

#endif /* ZMTP_COMMON_H */
