/*
 * backend.c - backend selection, the dispatch over the ops table, and what
 * both backends share: ownership and fork checks, the wake eventfd, the
 * queue of events kept for the next wait().
 *
 * Like redis ae.c over ae_epoll.c, except that the backend is chosen at run
 * time: the kernel or a seccomp profile can refuse io_uring.  The
 * ZMTP_BACKEND environment variable is read by the Python layer, not here.
 *
 * Layering: calls ring.c and epoll.c through their ops tables (zm__ring_ops,
 * zm__epoll_ops), common.h and the kernel; nothing above it (see backend.h
 * for its callers).  ring.c and epoll.c call back only the zm__ helpers
 * declared under ZM_BACKEND_IMPL.
 */
#define ZM_BACKEND_IMPL
#include "backend.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* ================================================================== */
/* Fork generation                                                    */
/* ================================================================== */

/*
 * The process's one fork generation (zm_fork_gen, backend.h): bumped in the
 * child by a pthread_atfork handler; a backend, a socket, a progress thread
 * and an inproc pipe remember the value they were made with, and a child
 * leaves what is not its own alone.  Relaxed atomics: the child handler
 * runs in the only thread of the child before fork() returns there, so
 * every later load in the child sees it; nothing else is published through
 * it.  Cheaper than getpid(), which glibc no longer caches.
 */
static unsigned g_fork_gen;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;
static int g_atfork_err;

static void on_fork_child(void)
{
    __atomic_fetch_add(&g_fork_gen, 1, __ATOMIC_RELAXED);
}

static void register_atfork(void)
{
    g_atfork_err = pthread_atfork(NULL, NULL, on_fork_child);
}

int zm_fork_register(void)
{
    pthread_once(&g_atfork_once, register_atfork);
    return -g_atfork_err;
}

unsigned zm_fork_gen(void)
{
    return __atomic_load_n(&g_fork_gen, __ATOMIC_RELAXED);
}

/* -ECHILD in a forked child, -EEXIST on a thread that is not the owner. */
ZM_INLINE int check_caller(const zm_backend *b)
{
    if (ZM_UNLIKELY(b->gen != zm_fork_gen()))
        return -ECHILD;
    if (ZM_UNLIKELY(!pthread_equal(pthread_self(), b->owner)))
        return -EEXIST;
    return 0;
}

/* ================================================================== */
/* Shared helpers                                                     */
/* ================================================================== */

void zm__reason(char *reason, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (reason == NULL || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(reason, len, fmt, ap);
    va_end(ap);
}

int zm__table_grow(void **tab, int *cap, int fd, size_t elt)
{
    size_t ncap;
    char *p;

    if (fd < *cap)
        return 0;
    ncap = *cap ? (size_t)*cap : 64;
    while (ncap <= (size_t)fd)
        ncap *= 2;
    if (ncap > INT32_MAX)
        ncap = (size_t)fd + 1; /* fd <= INT_MAX - 1 here, so this fits */
    if (ncap > SIZE_MAX / elt)
        return -ENOMEM;
    p = zm_realloc(*tab, ncap * elt);
    if (p == NULL)
        return -ENOMEM;
    memset(p + (size_t)*cap * elt, 0, (ncap - (size_t)*cap) * elt);
    *tab = p;
    *cap = (int)ncap;
    return 0;
}

int zm__evq_reserve(zm__evq *q, unsigned extra)
{
    size_t need, ncap;
    zm__qev *v;

    if (q->cap - q->tail >= extra)
        return 0;
    if (q->head > 0) {
        memmove(q->v, q->v + q->head, (q->tail - q->head) * sizeof(*q->v));
        q->tail -= q->head;
        q->head = 0;
        if (q->cap - q->tail >= extra)
            return 0;
    }
    need = (size_t)q->tail + extra;
    ncap = q->cap ? (size_t)q->cap * 2 : 16;
    if (ncap < need)
        ncap = need;
    if (ncap > UINT32_MAX / sizeof(*v))
        return -ENOMEM;
    v = zm_realloc(q->v, ncap * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    q->v = v;
    q->cap = (unsigned)ncap;
    return 0;
}

void zm__evq_push(zm__evq *q, int fd, const zm_io_event *ev)
{
    q->v[q->tail].ev = *ev;
    q->v[q->tail].fd = fd;
    q->tail++;
}

int zm__evq_pop(zm__evq *q, zm_io_event *evs, int max)
{
    int n = 0;

    while (n < max && q->head != q->tail)
        evs[n++] = q->v[q->head++].ev;
    if (q->head == q->tail)
        q->head = q->tail = 0;
    return n;
}

int zm__evq_purge(zm__evq *q, int fd, unsigned kinds, zm_io_event *recv_done)
{
    unsigned i, j = q->head;
    int found = 0;

    for (i = q->head; i != q->tail; i++) {
        const zm__qev *e = &q->v[i];

        if (e->fd == fd && (kinds & ZM__KIND_BIT(e->ev.kind))) {
            if (e->ev.kind == ZM_IOK_RECV) {
                found = 1;
                if (recv_done != NULL)
                    *recv_done = e->ev;
            }
            continue;
        }
        q->v[j++] = *e;
    }
    q->tail = j;
    if (q->head == q->tail)
        q->head = q->tail = 0;
    return found;
}

const char *zm__errname(int err, char *buf, size_t len)
{
    static const struct {
        int err;
        const char *name;
    } names[] = {
        {EPERM, "EPERM"},   {ENOSYS, "ENOSYS"},   {EINVAL, "EINVAL"},
        {ENOMEM, "ENOMEM"}, {EACCES, "EACCES"},   {EFAULT, "EFAULT"},
        {EBADF, "EBADF"},   {EEXIST, "EEXIST"},   {EAGAIN, "EAGAIN"},
        {EBUSY, "EBUSY"},   {EMFILE, "EMFILE"},   {ENFILE, "ENFILE"},
        {EINTR, "EINTR"},   {ETIME, "ETIME"},     {ECHILD, "ECHILD"},
        {EOPNOTSUPP, "EOPNOTSUPP"},
    };

    if (err < 0)
        err = -err;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].err == err)
            return names[i].name;
    snprintf(buf, len, "errno %d", err);
    return buf;
}

void zm__wake_drain(zm_backend *b)
{
    uint64_t v;

    /* Non-blocking; EAGAIN just means another drain got there first. */
    ZM_COUNT(ZM_CNT_EVENTFD);
    while (read(b->wake_fd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
}

/* ================================================================== */
/* Selection                                                          */
/* ================================================================== */

static const zm__backend_ops *ops_by_name(const char *name)
{
    if (strcmp(name, "io_uring") == 0)
        return &zm__ring_ops;
    if (strcmp(name, "epoll") == 0)
        return &zm__epoll_ops;
    return NULL;
}

static int open_one(zm_backend **out, const zm__backend_ops *ops,
                    unsigned entries, char *reason, size_t rlen)
{
    zm_backend *b;
    int ret;

    b = zm_calloc(1, ops->size);
    if (b == NULL) {
        zm__reason(reason, rlen, "%s: out of memory", ops->name);
        return -ENOMEM;
    }
    b->ops = ops;
    b->owner = pthread_self();
    b->gen = zm_fork_gen();
    b->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->wake_fd < 0) {
        ret = -errno;
        zm__reason(reason, rlen, "%s: eventfd: %s", ops->name, strerror(-ret));
        goto err;
    }
    ret = ops->init(b, entries, reason, rlen);
    if (ret < 0)
        goto err;
    *out = b;
    return 0;

err:
    if (b->wake_fd >= 0)
        close(b->wake_fd);
    free(b);
    return ret;
}

int zm_backend_open_sized(zm_backend **out, const char *name,
                          unsigned entries, char *reason, size_t reason_len)
{
    const zm__backend_ops *ops;
    char why[200];
    int ret;

    *out = NULL;
    ret = zm_fork_register();
    if (ret < 0) {
        zm__reason(reason, reason_len, "pthread_atfork: %s", strerror(-ret));
        return ret;
    }
    if (entries == 0)
        entries = ZM_BACKEND_ENTRIES_DEFAULT;
    if (name != NULL) {
        ops = ops_by_name(name);
        if (ops == NULL) {
            zm__reason(reason, reason_len,
                       "unknown backend '%s' (expected io_uring or epoll)",
                       name);
            return -EINVAL;
        }
        return open_one(out, ops, entries, reason, reason_len);
    }
    why[0] = '\0';
    ret = open_one(out, &zm__ring_ops, entries, why, sizeof(why));
    if (ret == 0) {
        zm__reason(reason, reason_len, "%s", why);
        return 0;
    }
    ret = open_one(out, &zm__epoll_ops, entries, reason, reason_len);
    if (ret == 0)
        zm__reason(reason, reason_len, "io_uring unavailable: %s; using epoll",
                   strncmp(why, "io_uring: ", 10) == 0 ? why + 10 : why);
    return ret;
}

int zm_backend_open(zm_backend **out, const char *name, char *reason,
                    size_t reason_len)
{
    return zm_backend_open_sized(out, name, 0, reason, reason_len);
}

struct probe_job {
    const char *name;
    char *reason;
    size_t reason_len;
    int ret;
};

static void *probe_thread(void *arg)
{
    struct probe_job *job = arg;
    zm_backend *b;

    job->ret = zm_backend_open_sized(&b, job->name, 8, job->reason,
                                     job->reason_len);
    if (job->ret == 0)
        zm_backend_close(b);
    return NULL;
}

/*
 * The probe runs on a short-lived thread when it can.  Closing an io_uring
 * ring makes the kernel queue task work (TWA_SIGNAL) on every thread that
 * used it, and that interrupts the thread's next interruptible sleep: an
 * epoll_wait() then returns EINTR with no signal.  A probe thread takes
 * that with it when it exits; the caller's thread is left alone.
 */
int zm_backend_probe(const char *name, char *reason, size_t reason_len)
{
    struct probe_job job = {name, reason, reason_len, 0};
    sigset_t all, old;
    pthread_t th;
    int rc;

    /* The thread starts with every signal blocked: signals stay with the
     * caller's threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&th, NULL, probe_thread, &job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        pthread_join(th, NULL);
    else
        probe_thread(&job);
    return job.ret;
}

/* ================================================================== */
/* Dispatch                                                           */
/* ================================================================== */

const char *zm_backend_name(const zm_backend *b)
{
    return b->ops->name;
}

void zm_backend_close(zm_backend *b)
{
    int who;

    if (b == NULL)
        return;
    who = check_caller(b);
    b->ops->fini(b, who == 0         ? ZM__FINI_OWNER
                    : who == -ECHILD ? ZM__FINI_CHILD
                                     : ZM__FINI_FOREIGN);
    close(b->wake_fd);
    free(b->q.v);
    free(b);
}

int zm_backend_watch(zm_backend *b, int fd, unsigned events, uint64_t token)
{
    int ret = check_caller(b);

    if (ZM_UNLIKELY(ret < 0))
        return ret;
    if (fd < 0)
        return -EBADF;
    if (events == 0 || (events & ~(unsigned)ZM__IO_ALL) || fd == b->wake_fd)
        return -EINVAL;
    return b->ops->watch(b, fd, events, token);
}

int zm_backend_unwatch(zm_backend *b, int fd, zm_io_event *recv_done)
{
    int ret = check_caller(b);

    if (ZM_UNLIKELY(ret < 0))
        return ret;
    if (fd < 0)
        return -EBADF;
    if (fd == b->wake_fd)
        return -EINVAL;
    return b->ops->unwatch(b, fd, recv_done);
}

void zm_backend_unwatch_many(zm_backend *b, const int *fds, int n)
{
    if (ZM_UNLIKELY(check_caller(b) < 0) || n <= 0)
        return;
    if (b->ops->unwatch_many != NULL) {
        b->ops->unwatch_many(b, fds, n);
        return;
    }
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0 && fds[i] != b->wake_fd)
            b->ops->unwatch(b, fds[i], NULL);
}

int zm_backend_recv(zm_backend *b, int fd, void *buf, size_t len,
                    uint64_t token)
{
    int ret = check_caller(b);

    if (ZM_UNLIKELY(ret < 0))
        return ret;
    if (fd < 0)
        return -EBADF;
    if (buf == NULL || len == 0 || fd == b->wake_fd)
        return -EINVAL;
    if (len > INT32_MAX)
        len = INT32_MAX;
    return b->ops->recv(b, fd, buf, len, token);
}

int zm_backend_wait(zm_backend *b, zm_io_event *evs, int max,
                    int64_t timeout_ns)
{
    int ret = check_caller(b);

    if (ZM_UNLIKELY(ret < 0))
        return ret;
    if (evs == NULL || max <= 0)
        return -EINVAL;
    if (timeout_ns > ((int64_t)1 << 62)) /* ~146 years: forever, and no */
        timeout_ns = -1;                  /* overflow in deadline sums   */
    return b->ops->wait(b, evs, max, timeout_ns);
}

int zm_backend_wake(zm_backend *b)
{
    const uint64_t one = 1;
    int saved = errno, ret = 0;
    ssize_t n;

    /* Any thread or a signal handler: only an atomic load and write(2),
     * both async-signal-safe.  A forked child must not wake the parent. */
    if (ZM_UNLIKELY(b->gen != zm_fork_gen()))
        return -ECHILD;
    ZM_COUNT(ZM_CNT_EVENTFD); /* a lock-free add: async-signal-safe */
    do {
        n = write(b->wake_fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    /* EAGAIN: the counter is saturated, so a wake is pending anyway. */
    if (n < 0 && errno != EAGAIN)
        ret = -errno;
    errno = saved;
    return ret;
}

int zm_watchset_reserve(zm_watchset *w, int n)
{
    /* The fd-indexed table's growth serves any int array: make index n-1. */
    return n > w->cap ? zm__table_grow((void **)&w->fds, &w->cap, n - 1,
                                       sizeof(int))
                      : 0;
}

int zm_watchset_add(zm_watchset *w, zm_backend *b, int fd, unsigned events)
{
    int ret;

    if (ZM_UNLIKELY(w->n == w->cap)) {
        ret = zm_watchset_reserve(w, w->n + 1);
        if (ret < 0)
            return ret;
    }
    ret = zm_backend_watch(b, fd, events, (uint64_t)fd);
    if (ret < 0)
        return ret;
    w->fds[w->n++] = fd;
    return 0;
}

void zm_watchset_unwatch(zm_watchset *w, zm_backend *b, int base)
{
    if (w->n > base)
        zm_backend_unwatch_many(b, w->fds + base, w->n - base);
    w->n = base;
}

void zm_watchset_free(zm_watchset *w)
{
    free(w->fds);
    w->fds = NULL;
    w->n = w->cap = 0;
}
