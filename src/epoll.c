/*
 * epoll.c - the epoll backend: the same events and semantics as ring.c.
 *
 * Readiness is EPOLLONESHOT, so an interest fires once and stays in the set
 * disarmed until the next watch() re-arms it with EPOLL_CTL_MOD.  A
 * submitted receive is emulated: the fd is armed for EPOLLIN and wait()
 * does recv(MSG_DONTWAIT) into the caller's buffer when it fires, so a
 * buffer is only ever written inside wait() and unwatch() needs no
 * cancellation.  The wake eventfd sits in the set level-triggered.
 *
 * No shared memory with the kernel here, hence no barriers.
 *
 * Layering: calls the zm__ helpers of backend.c (ZM_BACKEND_IMPL), common.h
 * and the kernel (epoll_*, recv).  Called only through zm__epoll_ops, by
 * backend.c: no other file may call an ep_* function.
 */
#define ZM_BACKEND_IMPL
#include "backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef __NR_epoll_pwait2
#define __NR_epoll_pwait2 441 /* the same on every architecture */
#endif

/* epoll_pwait2 (Linux 5.11) takes a timeout in ns: write coalescing asks
 * the progress thread for flushes tens of us away, which epoll_wait would
 * round up to 1 ms.  0 unknown, 1 works, -1 ENOSYS (use epoll_wait). */
static int g_have_pwait2;

static int ep_sys_wait(int epfd, struct epoll_event *evs, int max,
                       int64_t left_ns)
{
    int k;

    if (left_ns >= 0 && __atomic_load_n(&g_have_pwait2, __ATOMIC_RELAXED) >= 0) {
        struct timespec ts;
        ts.tv_sec = (time_t)(left_ns / 1000000000);
        ts.tv_nsec = (long)(left_ns % 1000000000);
        k = (int)syscall(__NR_epoll_pwait2, epfd, evs, max, &ts, NULL, 0);
        if (k >= 0 || errno != ENOSYS) {
            /* Relaxed: a cache of a fact any thread may find out again. */
            __atomic_store_n(&g_have_pwait2, 1, __ATOMIC_RELAXED);
            return k;
        }
        __atomic_store_n(&g_have_pwait2, -1, __ATOMIC_RELAXED);
    }
    /* epoll_wait counts in ms: round up so we never return early */
    return epoll_wait(epfd, evs, max,
                      left_ns < 0 ? -1
                      : left_ns > (int64_t)INT32_MAX * 1000000
                          ? INT32_MAX
                          : (int)((left_ns + 999999) / 1000000));
}

#define EP_WAKE_DATA UINT64_MAX /* epoll data of the wake eventfd */

typedef struct ep_fdent {
    uint64_t token;      /* of the pending watch */
    uint64_t recv_token;
    void *recv_buf;
    size_t recv_len;
    uint32_t want;       /* ZM_IO_* of the pending watch, 0 = none */
    uint8_t recv_live;   /* a receive is pending */
    uint8_t registered;  /* fd is in the epoll set (maybe disarmed) */
} ep_fdent;

typedef struct zm_epoll {
    zm_backend base;
    int epfd;
    struct epoll_event *native;
    int nnative;
    ep_fdent *fds; /* indexed by fd */
    int nfds;
} zm_epoll;

/* ================================================================== */
/* Setup and teardown                                                 */
/* ================================================================== */

static int ep_init(zm_backend *b, unsigned entries, char *reason, size_t rlen)
{
    zm_epoll *ep = (zm_epoll *)b;
    struct epoll_event ev;
    char buf[32];
    int ret;

    ep->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ep->epfd < 0) {
        ret = -errno;
        zm__reason(reason, rlen, "epoll: epoll_create1: %s",
                   zm__errname(ret, buf, sizeof(buf)));
        goto err;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN; /* level-triggered: reported until drained */
    ev.data.u64 = EP_WAKE_DATA;
    if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, b->wake_fd, &ev) < 0) {
        ret = -errno;
        zm__reason(reason, rlen, "epoll: adding the wake eventfd: %s",
                   zm__errname(ret, buf, sizeof(buf)));
        goto err;
    }
    ep->nnative = entries > 4096 ? 4096 : (int)entries;
    ep->native = zm_calloc((size_t)ep->nnative, sizeof(*ep->native));
    if (ep->native == NULL) {
        ret = -ENOMEM;
        zm__reason(reason, rlen, "epoll: out of memory");
        goto err;
    }
    zm__reason(reason, rlen, "epoll: batch of %d events", ep->nnative);
    return 0;

err:
    if (ep->epfd >= 0)
        close(ep->epfd);
    ep->epfd = -1;
    return ret;
}

static void ep_fini(zm_backend *b, int how)
{
    zm_epoll *ep = (zm_epoll *)b;

    /* Nothing to cancel: receives only happen inside wait().  In a forked
     * child the epoll file is shared with the parent; closing our fd only
     * drops the child's reference. */
    (void)how;
    if (ep->epfd >= 0)
        close(ep->epfd);
    ep->epfd = -1;
    free(ep->native);
    free(ep->fds);
}

/* ================================================================== */
/* Operations                                                         */
/* ================================================================== */

static int ep_fdent_get(zm_epoll *ep, int fd, ep_fdent **out)
{
    int ret;

    if (fd == ep->epfd)
        return -EINVAL;
    ret = zm__table_grow((void **)&ep->fds, &ep->nfds, fd, sizeof(ep_fdent));
    if (ret < 0)
        return ret;
    *out = &ep->fds[fd];
    return 0;
}

/* Arm fd one-shot for what is pending on it (nothing pending: leave it
 * disarmed). */
static int ep_arm(zm_epoll *ep, int fd, ep_fdent *e)
{
    struct epoll_event ev;

    if (e->want == 0 && !e->recv_live)
        return 0;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLONESHOT;
    if ((e->want & ZM_IO_IN) || e->recv_live)
        ev.events |= EPOLLIN;
    if (e->want & ZM_IO_OUT)
        ev.events |= EPOLLOUT;
    ev.data.u64 = (uint64_t)fd;
    ZM_COUNT(ZM_CNT_EPOLL_CTL);
    if (e->registered) {
        if (epoll_ctl(ep->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
            return 0;
        if (errno != ENOENT)
            return -errno;
        /* closed and reopened under the same number: epoll forgot it */
    }
    if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ||
        (errno == EEXIST && epoll_ctl(ep->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)) {
        e->registered = 1;
        return 0;
    }
    return -errno;
}

static int ep_watch(zm_backend *b, int fd, unsigned events, uint64_t token)
{
    zm_epoll *ep = (zm_epoll *)b;
    uint64_t old_token;
    uint32_t old_want;
    ep_fdent *e;
    int ret;

    ret = ep_fdent_get(ep, fd, &e);
    if (ret < 0)
        return ret;
    old_want = e->want;
    old_token = e->token;
    e->want = events;
    e->token = token;
    ret = ep_arm(ep, fd, e);
    if (ret < 0) {
        e->want = old_want;
        e->token = old_token;
        return ret;
    }
    /* Replace: an old READY not yet returned goes with its interest. */
    zm__evq_purge(&b->q, fd, ZM__KIND_BIT(ZM_IOK_READY), NULL);
    return 0;
}

static int ep_recv(zm_backend *b, int fd, void *buf, size_t len,
                   uint64_t token)
{
    zm_epoll *ep = (zm_epoll *)b;
    ep_fdent *e;
    int ret;

    ret = ep_fdent_get(ep, fd, &e);
    if (ret < 0)
        return ret;
    if (e->recv_live)
        return -EBUSY;
    e->recv_live = 1;
    e->recv_buf = buf;
    e->recv_len = len;
    e->recv_token = token;
    ret = ep_arm(ep, fd, e);
    if (ret < 0) {
        e->recv_live = 0;
        e->recv_buf = NULL;
    }
    return ret;
}

static int ep_unwatch(zm_backend *b, int fd, zm_io_event *recv_done)
{
    zm_epoll *ep = (zm_epoll *)b;
    ep_fdent *e;

    if (fd < ep->nfds) {
        uint8_t registered;
        e = &ep->fds[fd];
        /* No EPOLL_CTL_DEL: fd stays in the set with nothing pending, so
         * the next watch of it is one EPOLL_CTL_MOD instead of an ADD and
         * a DEL per wait (a blocking call watches and unwatches the same
         * descriptors every time; for an epoll descriptor, such as a
         * socket's readiness set, each ADD also made the kernel walk the
         * set it holds: ep_loop_check).  What it may still report (its
         * one-shot interest, if it did not fire) finds want == 0 and no
         * receive: ep_dispatch drops it and does not re-arm, so no event
         * of fd comes out of wait() until it is watched again.  A closed
         * fd leaves the set by itself; a number reused by another file is
         * an ENOENT for the MOD, then an ADD (ep_arm).  Nothing is written
         * outside wait(), so there is nothing to cancel. */
        registered = e->registered;
        memset(e, 0, sizeof(*e));
        e->registered = registered;
    }
    return zm__evq_purge(&b->q, fd,
                         ZM__KIND_BIT(ZM_IOK_READY) |
                             ZM__KIND_BIT(ZM_IOK_RECV),
                         recv_done);
}

static void ep_emit(zm_epoll *ep, zm_io_event *evs, int max, int *n, int fd,
                    uint64_t token, int32_t res, uint32_t kind)
{
    zm_io_event ev = {.token = token, .res = res, .kind = kind};

    if (*n < max)
        evs[(*n)++] = ev;
    else
        zm__evq_push(&ep->base.q, fd, &ev); /* room reserved by ep_wait */
}

/* Turn one epoll event into at most two events (READY, RECV). */
static void ep_dispatch(zm_epoll *ep, const struct epoll_event *nev,
                        zm_io_event *evs, int max, int *n)
{
    unsigned rev = nev->events, ready;
    ep_fdent *e;
    ssize_t got;
    int fd, ret;

    if (nev->data.u64 == EP_WAKE_DATA) {
        zm__wake_drain(&ep->base);
        ep_emit(ep, evs, max, n, -1, 0, 0, ZM_IOK_WAKE);
        return;
    }
    fd = (int)nev->data.u64;
    if (fd < 0 || fd >= ep->nfds)
        return;
    e = &ep->fds[fd];
    ready = zm__poll_to_io(rev); /* EPOLLIN.. == POLLIN.. */
    if (e->want && (ready & (e->want | ZM_IO_ERR | ZM_IO_HUP))) {
        ep_emit(ep, evs, max, n, fd, e->token,
                (int32_t)(ready & (e->want | ZM_IO_ERR | ZM_IO_HUP)),
                ZM_IOK_READY);
        e->want = 0;
    }
    if (e->recv_live &&
        (rev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))) {
        do {
            ZM_COUNT(ZM_CNT_RECV);
            got = recv(fd, e->recv_buf, e->recv_len, MSG_DONTWAIT);
        } while (got < 0 && errno == EINTR);
        if (got >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            ep_emit(ep, evs, max, n, fd, e->recv_token,
                    got >= 0 ? (int32_t)got : -errno, ZM_IOK_RECV);
            e->recv_live = 0;
            e->recv_buf = NULL;
        }
    }
    ret = ep_arm(ep, fd, e); /* what is still pending (one-shot fired) */
    if (ret < 0) {
        if (e->want)
            ep_emit(ep, evs, max, n, fd, e->token, ret, ZM_IOK_READY);
        if (e->recv_live)
            ep_emit(ep, evs, max, n, fd, e->recv_token, ret, ZM_IOK_RECV);
        e->want = 0;
        e->recv_live = 0;
        e->recv_buf = NULL;
    }
}

static int ep_wait(zm_backend *b, zm_io_event *evs, int max,
                   int64_t timeout_ns)
{
    zm_epoll *ep = (zm_epoll *)b;
    int64_t deadline = 0, left = timeout_ns;
    int n, k, batch, ret;

    n = zm__evq_pop(&b->q, evs, max);
    if (n > 0)
        return n;
    batch = max < ep->nnative ? max : ep->nnative;
    /* Before epoll_wait consumes one-shot interests: up to three events
     * per native one (READY, RECV, and an error re-arming) must fit. */
    ret = zm__evq_reserve(&b->q, 3u * (unsigned)batch);
    if (ret < 0)
        return ret;
    if (timeout_ns > 0)
        deadline = zm_now_ns() + timeout_ns;
    for (;;) {
        if (timeout_ns > 0) {
            left = deadline - zm_now_ns();
            if (left < 0)
                left = 0;
        }
        ZM_COUNT(ZM_CNT_EPOLL_WAIT);
        k = ep_sys_wait(ep->epfd, ep->native, batch, left);
        if (k < 0)
            return -errno; /* -EINTR even under SA_RESTART (signal(7)) */
        for (int i = 0; i < k; i++)
            ep_dispatch(ep, &ep->native[i], evs, max, &n);
        if (n > 0)
            return n;
        if (timeout_ns == 0 || (timeout_ns > 0 && left == 0))
            return 0;
        /* only spurious wake-ups (recv said EAGAIN): wait again */
    }
}

const zm__backend_ops zm__epoll_ops = {
    .name = "epoll",
    .size = sizeof(zm_epoll),
    .init = ep_init,
    .fini = ep_fini,
    .watch = ep_watch,
    .unwatch = ep_unwatch,
    .recv = ep_recv,
    .wait = ep_wait,
};
