/*
 * progress.c - the context's progress thread (see progress.h): its loop
 * (one look at every socket, then a wait), start and stop, and the calls
 * the owners make (add, remove, wake, call_done, wanted).
 *
 * Layering: calls the engine, a backend, inproc's mailbox and common.h; no
 * Python: the thread never takes the GIL (see progress.h).
 */
#include "progress.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A look that could not watch a descriptor (no memory to list it) comes
 * back this soon instead of sleeping on what it did watch. */
#define ZM_PROGRESS_MISSED_NS ((int64_t)10000000) /* 10 ms */

typedef struct {
    zm_progress *p;
    zm_backend *be;
    zm_psock *cur;  /* the socket being looked at: collect() records its
                       descriptors in its wfds */
    int missed;     /* a watch failed during this look */
} collect_ctx;

/* zm_progress.by_fd with an entry for descriptor fd: 0, or -ENOMEM. */
static int by_fd_room(zm_progress *p, int fd)
{
    size_t cap = (size_t)p->nby_fd;
    zm_psock **m;

    if (fd < p->nby_fd)
        return 0;
    m = zm_grow(p->by_fd, &cap, NULL, cap, (size_t)fd + 1, sizeof(*m), 256);
    if (m == NULL || cap > INT32_MAX)
        return -ENOMEM;
    memset(m + p->nby_fd, 0, (cap - (size_t)p->nby_fd) * sizeof(*m));
    p->by_fd = m;
    p->nby_fd = (int)cap;
    return 0;
}

/* ps->wfds with room for n descriptors: 0, or -ENOMEM. */
static int wfds_room(zm_psock *ps, int n)
{
    size_t cap = (size_t)ps->capwfds;
    int *w;

    if (n <= ps->capwfds)
        return 0;
    w = zm_grow(ps->wfds, &cap, NULL, (size_t)ps->nwfds, (size_t)n,
                sizeof(*w), 4);
    if (w == NULL || cap > INT32_MAX)
        return -ENOMEM;
    ps->wfds = w;
    ps->capwfds = (int)cap;
    return 0;
}

/* Watch fd for the socket being looked at, with its fd as the token, and
 * note whose it is (zm_progress.by_fd) and that it watched it (wfds). */
static int collect(void *ctx_, int fd, unsigned events)
{
    collect_ctx *ctx = ctx_;
    zm_progress *p = ctx->p;
    zm_psock *ps = ctx->cur;

    if (by_fd_room(p, fd) < 0 || wfds_room(ps, ps->nwfds + 1) < 0) {
        ctx->missed = 1;
        return 0;
    }
    if (zm_backend_watch(ctx->be, fd, events, (uint64_t)fd) < 0) {
        ctx->missed = 1;
        return 0;
    }
    ps->wfds[ps->nwfds++] = fd;
    p->by_fd[fd] = ps;
    return 0;
}

/* The socket is to be looked at: what its last look watched is dropped
 * (the epoll backend keeps the descriptors in its set, disarmed: the look
 * that follows re-arms what it still needs with one EPOLL_CTL_MOD each). */
static void progress_unwatch(collect_ctx *ctx, zm_psock *ps)
{
    zm_progress *p = ctx->p;

    for (int i = 0; i < ps->nwfds; i++) {
        int fd = ps->wfds[i];
        if (fd < p->nby_fd && p->by_fd[fd] == ps) {
            p->by_fd[fd] = NULL;
            (void)zm_backend_unwatch(ctx->be, fd, NULL);
        }
    }
    ps->nwfds = 0;
}

/*
 * Parked sockets.  With thousands of sockets in one context (a client
 * process of many DEALERs), a round of the thread that looked at every
 * socket (a step, a recv, a watch and an unwatch each) cost more than the
 * owner's own work.  A socket the thread stepped and watched (progress_look
 * sets park_want) leaves the awake list, its descriptors stay watched, and
 * it comes back to the awake list (wake_parked) only for:
 *   - an event on one of them (by_fd: the event's token is its fd);
 *   - its timer (park_t, in the heap zm_progress.pheap: minheap.h);
 *   - a call of its owner: zm_progress_call_done counts the call, then
 *     reads `parked` (seq_cst) and pushes the socket on `pokes` once
 *     (`poked`); park() stores `parked`, then reads `calls` (seq_cst): of
 *     the two, one sees the other, so a call is never missed.
 * The thread takes the whole stack (an exchange) at each round and before
 * each sleep (progress_timeout), under mu; owners only ever push.  Who
 * removes a socket (zm_progress_remove, under mu) takes it off all of
 * them: the awake list, the heap, by_fd and the stack.
 */
static void awake_add(zm_progress *p, zm_psock *ps)
{
    if (ps->awake)
        return;
    ps->awake_prev = NULL;
    ps->awake_next = p->awake;
    if (p->awake != NULL)
        p->awake->awake_prev = ps;
    p->awake = ps;
    ps->awake = 1;
}

static void awake_del(zm_progress *p, zm_psock *ps)
{
    if (!ps->awake)
        return;
    if (ps->awake_prev != NULL)
        ps->awake_prev->awake_next = ps->awake_next;
    else
        p->awake = ps->awake_next;
    if (ps->awake_next != NULL)
        ps->awake_next->awake_prev = ps->awake_prev;
    ps->awake_next = ps->awake_prev = NULL;
    ps->awake = 0;
}

/* After its look stepped and watched it: off the awake list until
 * something happens (a heap that cannot grow keeps it awake). */
static void park(zm_progress *p, zm_psock *ps)
{
    __atomic_store_n(&ps->parked, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&ps->calls, __ATOMIC_SEQ_CST) != ps->seen_calls ||
        (ps->park_t >= 0 &&
         zm_heap_put(&p->pheap, &ps->pheap, ps->park_t) < 0)) {
        /* Its owner called since the look (it may not have seen
         * `parked`), or no room: it stays awake. */
        __atomic_store_n(&ps->parked, 0, __ATOMIC_SEQ_CST);
        return;
    }
    awake_del(p, ps);
}

static void wake_parked(zm_progress *p, zm_psock *ps)
{
    if (!__atomic_load_n(&ps->parked, __ATOMIC_RELAXED))
        return;
    __atomic_store_n(&ps->parked, 0, __ATOMIC_SEQ_CST);
    zm_heap_del(&p->pheap, &ps->pheap);
    awake_add(p, ps);
}

/* Push ps on the pokes stack (any thread; lock-free: the only other
 * operation on it is taking it whole). */
static void poke_push(zm_progress *p, zm_psock *ps)
{
    zm_psock *head = __atomic_load_n(&p->pokes, __ATOMIC_SEQ_CST);

    do
        ps->poke_next = head;
    while (!__atomic_compare_exchange_n(&p->pokes, &head, ps, 0,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
}

/* Take the owners' pokes: those sockets are awake again. */
static void take_pokes(zm_progress *p)
{
    zm_psock *ps = __atomic_exchange_n(&p->pokes, NULL, __ATOMIC_SEQ_CST);

    while (ps != NULL) {
        zm_psock *next = ps->poke_next;
        /* Before it is woken: a later call pokes it again. */
        __atomic_store_n(&ps->poked, 0, __ATOMIC_SEQ_CST);
        wake_parked(p, ps);
        ps = next;
    }
}

/* Take a socket whose owner is not in a call: FREE -> PROGRESS.  Acquire pairs
 * with the owner's release in sock_leave (its engine writes are visible to
 * this step).  Never waits. */
static int progress_claim(zm_psock *ps)
{
    int expected = ZM_BUSY_FREE;

    return __atomic_compare_exchange_n(&ps->busy, &expected, ZM_BUSY_PROGRESS, 0,
                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

/* One look at one socket, at `now`, with what the last wait saw
 * (evs[0..nevs)): back off from a busy owner, send what its coalescing held
 * back, or step the socket's engine and list what it waits for.  Returns
 * when to look at it again (-1: only on an event).  p->mu is held. */
static int64_t progress_look(zm_psock *ps, int64_t now, const zm_io_event *evs,
                             int nevs, collect_ctx *ctx)
{
    int64_t t;
    /* Every call counted before this load is seen by this look. */
    uint64_t calls = __atomic_load_n(&ps->calls, __ATOMIC_SEQ_CST);
    int busy = calls != ps->seen_calls;
    /* The owner called since our last look: it counts as calling
     * now (its calls read no clock for us). */
    if (busy)
        ps->last_call_ns = now;
    ps->seen_calls = calls;
    if (busy && __atomic_load_n(&ps->woken, __ATOMIC_RELAXED)) {
        /* It asked for us (output waiting) and has kept calling
         * since: its own sends write what coalescing holds back,
         * so leave `woken` set (no wake per call: each would cost
         * it a syscall and us a look) and come back to see whether
         * it went quiet, sooner at first, less often while it
         * stays busy.  Relaxed: a hint; the seq_cst clear before a
         * real look below is what orders the owner's next wake. */
        ps->backoff_ns = ps->backoff_ns < ZM_PROGRESS_FLUSH_MIN_NS
                             ? ZM_PROGRESS_FLUSH_MIN_NS
                             : ps->backoff_ns * 2;
        if (ps->backoff_ns > ZM_PROGRESS_BUSY_MAX_NS)
            ps->backoff_ns = ZM_PROGRESS_BUSY_MAX_NS;
        t = now + ps->backoff_ns;
    } else if (!progress_claim(ps)) {
        /* Held-back output of a busy owner: its own sends write it
         * within ZM_COALESCE_NS; should it stop calling, come back
         * for it (the owner's wake is spent: `woken` stays 1). */
        int64_t due = __atomic_load_n(&ps->flush_due_ns, __ATOMIC_RELAXED);
        /* The owner is inside a call and drives it; look again
         * later, backing off to 100 ms while it stays busy. */
        ps->backoff_ns = ps->backoff_ns < ZM_PROGRESS_GRACE_NS
                             ? ZM_PROGRESS_GRACE_NS
                             : ps->backoff_ns * 2;
        if (ps->backoff_ns > 100000000)
            ps->backoff_ns = 100000000;
        t = now + ps->backoff_ns;
        if (due > 0) {
            if (due < now + ZM_PROGRESS_FLUSH_MIN_NS)
                due = now + ZM_PROGRESS_FLUSH_MIN_NS;
            if (due < t)
                t = due;
        }
    } else {
        /* Socket.fileno() (an event loop): EVENTS before the step, so
         * that what the step makes appear is signalled below. */
        int before = ps->sock->notify_fd ? zm_sock_events(ps->sock) : 0;

        /* seq_cst, holding the socket and before the look: a call that
         * ends after this sees 0 and wakes us again. */
        __atomic_store_n(&ps->woken, 0, __ATOMIC_SEQ_CST);
        ps->backoff_ns = 0;
        if (now - ps->last_call_ns < ZM_PROGRESS_GRACE_NS) {
            /* The owner may call again soon: leave its reads to
             * it, but send what coalescing held back when due, and
             * what the kernel had no room for (a large message
             * must not wait for the owner's next call). */
            int64_t f = zm_sock_flush(ps->sock, now);
            (void)zm_sock_push_output(ps->sock, now, collect, ctx);
            t = ps->last_call_ns + ZM_PROGRESS_GRACE_NS;
            if (f >= 0 && f < t)
                t = f;
        } else {
            /* What our last wait saw (a stale fd only costs one
             * accept() that says EAGAIN). */
            for (int i = 0; i < nevs; i++)
                zm_sock_io_ready(ps->sock, (int)evs[i].token);
            int missed = ctx->missed;
            zm_sock_process(ps->sock, now);
            ZM_STAT_ADD(ps->sock->stats.progress_steps, 1);
            ctx->missed = 0;
            t = zm_sock_watch(ps->sock, collect, ctx);
            /* Stepped and watched: parked until something happens.  Not
             * when a watch failed, nor with a mailbox (inproc pipes, ZAP
             * replies, fileno()): its eventfd is the owner's to arm, not
             * watched here, so what arrives through it is only seen by a
             * look at every round, as before. */
            ps->park_want = !ctx->missed && ps->sock->mb == NULL;
            ps->park_t = t;
            ctx->missed |= missed;
        }
        /* Socket.fileno(): an event loop waits on the mailbox's eventfd
         * (in its loop set) for EVENTS to change: POLLIN or POLLOUT
         * appearing, edge-triggered as libzmq's ZMQ_FD; also from the
         * grace branch, whose writes may make room below SNDHWM. */
        if (ps->sock->notify_fd && (zm_sock_events(ps->sock) & ~before) != 0)
            zm_mailbox_signal(ps->sock->mb);
        /* Release: pairs with the owner's acquire in sock_claim;
         * what this step did to the engine is visible to it. */
        __atomic_store_n(&ps->busy, ZM_BUSY_FREE, __ATOMIC_RELEASE);
    }
    return t;
}

/* How long the wait after a look may sleep (-1: until woken), given the
 * earliest time a socket asked for (`next`, -1: none).  Before sleeping
 * without a timeout it announces it, so that an owner's call ending now
 * wakes it.  p->mu is held. */
static int64_t progress_timeout(zm_progress *p, const collect_ctx *ctx,
                                int64_t next)
{
    int64_t timeout;

    timeout = next < 0 ? -1 : next - zm_now_ns();
    if (next >= 0 && timeout < 0)
        timeout = 0;
    if (ctx->missed && (timeout < 0 || timeout > ZM_PROGRESS_MISSED_NS))
        timeout = ZM_PROGRESS_MISSED_NS;
    /* Announce when we look next, then look for a call that ended since
     * our look.  The owner does the mirror in zm_progress_call_done (count
     * the call, then read `look_by_ns` / the flag); with seq_cst on both
     * sides one of us sees the other: a call that asked for us without a
     * wake (a set-up, trusting `look_by_ns`) is seen here and we come back
     * within the grace. */
    __atomic_store_n(&p->look_by_ns,
                     timeout < 0 ? INT64_MAX : zm_now_ns() + timeout,
                     __ATOMIC_SEQ_CST);
    if (timeout < 0)
        __atomic_store_n(&p->sleeping_forever, 1, __ATOMIC_SEQ_CST);
    take_pokes(p); /* parked sockets whose owner called: awake again */
    for (zm_psock *ps = p->awake; ps != NULL; ps = ps->awake_next) {
        if (__atomic_load_n(&ps->calls, __ATOMIC_SEQ_CST) == ps->seen_calls)
            continue;
        if (timeout < 0)
            timeout = 0; /* look again at once */
        else if (timeout > ZM_PROGRESS_GRACE_NS &&
                 __atomic_load_n(&ps->woken, __ATOMIC_SEQ_CST))
            timeout = ZM_PROGRESS_GRACE_NS;
    }
    return timeout;
}

/* The thread's loop: look at every socket, wait, unwatch, again, until
 * stopped.  p->mu is held while looking, released while waiting. */
static void progress_main(zm_progress *p, collect_ctx *ctx)
{
    zm_io_event evs[64];
    int nevs = 0;
    int64_t now, next, timeout;

    ctx->be = p->be;
    ctx->p = p;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        now = zm_now_ns();
        next = -1;
        ctx->missed = 0;
        /* Whose descriptors the last wait reported (under mu: a socket
         * removed meanwhile took its entries out of by_fd), whose timer
         * is due, whose owner called: awake. */
        for (int i = 0; i < nevs; i++)
            if (evs[i].kind == ZM_IOK_READY &&
                evs[i].token < (uint64_t)p->nby_fd &&
                p->by_fd[evs[i].token] != NULL)
                wake_parked(p, p->by_fd[evs[i].token]);
        while (zm_heap_top(&p->pheap) != NULL &&
               zm_heap_top(&p->pheap)->at <= now)
            wake_parked(p, ZM_HEAP_OWNER(zm_heap_top(&p->pheap), zm_psock,
                                         pheap));
        take_pokes(p);
        for (zm_psock *ps = p->awake, *nx; ps != NULL; ps = nx) {
            int64_t t;

            nx = ps->awake_next;
            progress_unwatch(ctx, ps);
            ctx->cur = ps;
            ps->park_want = 0;
            t = progress_look(ps, now, evs, nevs, ctx);
            if (ps->park_want)
                park(p, ps); /* its descriptors stay watched */
            if (t >= 0 && (next < 0 || t < next))
                next = t;
        }
        if (zm_heap_top(&p->pheap) != NULL &&
            (next < 0 || zm_heap_top(&p->pheap)->at < next))
            next = zm_heap_top(&p->pheap)->at;
        timeout = progress_timeout(p, ctx, next);
        pthread_mutex_unlock(&p->mu);
        nevs = zm_backend_wait(p->be, evs, 64, timeout);
        if (nevs < 0)
            nevs = 0;
        /* Relaxed: only an optimisation hint from here on (a stale 0 just
         * costs the owner an unneeded wake). */
        __atomic_store_n(&p->sleeping_forever, 0, __ATOMIC_RELAXED);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
}

/* The backend must be made on the thread that waits on it; start() waits
 * for it. */
typedef struct {
    zm_progress *p;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int rc;
} start_ctx;

static void *progress_entry(void *arg)
{
    start_ctx *sc = arg;
    zm_progress *p = sc->p;
    collect_ctx *ctx = NULL;
    int rc = zm_backend_open(&p->be, "epoll", p->reason, sizeof(p->reason));

    /* Everything the thread needs is made before it reports: a start that
     * returns 0 has a thread that runs until stopped. */
    if (rc == 0 && (ctx = zm_calloc(1, sizeof(*ctx))) == NULL) {
        snprintf(p->reason, sizeof(p->reason), "out of memory");
        rc = -ENOMEM;
    }
    if (rc == 0) /* before the starter returns: nobody wakes us earlier */
        __atomic_store_n(&p->be_live, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&sc->mu);
    sc->rc = rc;
    sc->done = 1;
    pthread_cond_signal(&sc->cv);
    pthread_mutex_unlock(&sc->mu);
    /* sc is gone after this point (the starter returned). */
    if (rc == 0) {
        progress_main(p, ctx);
        /* seq_cst, a Dekker pair with zm_progress_wake (count, then look at
         * `be_live`): either a waker sees 0 and leaves `be` alone, or we
         * see its count and wait for it before closing. */
        __atomic_store_n(&p->be_live, 0, __ATOMIC_SEQ_CST);
        /* seq_cst: the other half of the pair above; also the acquire
         * for the waker's release (its eventfd write is done). */
        while (__atomic_load_n(&p->wakers, __ATOMIC_SEQ_CST) != 0)
            sched_yield();
    }
    free(ctx);
    pthread_mutex_lock(&p->mu); /* a socket removed later finds no table */
    free(p->by_fd);
    p->by_fd = NULL;
    p->nby_fd = 0;
    /* the sockets left keep pheap.i: remove() sees the heap gone */
    zm_heap_free(&p->pheap);
    pthread_mutex_unlock(&p->mu);
    zm_backend_close(p->be); /* NULL-safe */
    p->be = NULL;
    return NULL;
}

int zm_progress_start(zm_progress *p)
{
    start_ctx sc;
    sigset_t all, old;
    int rc;

    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    p->fork_gen = zm_fork_gen();
    /* Room made now, not while messages flow (the first look at a socket,
     * the first park): tests/test_hotpath.py counts allocations per
     * message.  A failure here only defers the growth. */
    (void)by_fd_room(p, ZM_PROGRESS_FDS_RESERVED - 1);
    (void)zm_heap_reserve(&p->pheap, 64);
    sc.p = p;
    sc.done = 0;
    sc.rc = 0;
    pthread_mutex_init(&sc.mu, NULL);
    pthread_cond_init(&sc.cv, NULL);
    /* The thread takes no signals: they belong to Python's main thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&p->thread, NULL, progress_entry, &sc);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        rc = -rc;
        goto done;
    }
    pthread_mutex_lock(&sc.mu);
    while (!sc.done)
        pthread_cond_wait(&sc.cv, &sc.mu);
    pthread_mutex_unlock(&sc.mu);
    rc = sc.rc;
    if (rc < 0)
        pthread_join(p->thread, NULL);
    else
        p->started = 1;
done:
    pthread_mutex_destroy(&sc.mu);
    pthread_cond_destroy(&sc.cv);
    return rc;
}

int zm_progress_foreign(const zm_progress *p)
{
    return p->fork_gen != zm_fork_gen();
}

void zm_progress_stop(zm_progress *p)
{
    if (!p->started)
        return;
    p->started = 0;
    /* A forked child: the thread is the parent's and does not run here,
     * its mutex may have been held at fork() and stays held, its backend
     * is the parent's, and a pthread_t of the parent may name a thread of
     * ours.  Leave it all (docs/architecture.md, "Fork"). */
    if (zm_progress_foreign(p))
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_mutex_unlock(&p->mu);
    zm_progress_wake(p);
    pthread_join(p->thread, NULL);
}

void zm_progress_add(zm_progress *p, zm_psock *ps)
{
    if (zm_progress_foreign(p))
        return; /* never in use here (see zm_progress_stop) */
    pthread_mutex_lock(&p->mu);
    ps->parked = 0;
    ps->poked = 0;
    ps->awake = 0;
    ps->pheap.i = 0;
    ps->nwfds = 0;
    (void)wfds_room(ps, 8); /* see zm_progress_start */
    ps->next = p->socks;
    p->socks = ps;
    awake_add(p, ps);
    pthread_mutex_unlock(&p->mu);
    /* No wake: a new socket has nothing to do until a call on it, and the
     * end of that call wakes the thread when it is wanted or when the
     * thread sleeps without a timeout (zm_progress_call_done); a thread
     * that sleeps with one finds it at its next look. */
}

void zm_progress_remove(zm_progress *p, zm_psock *ps)
{
    if (zm_progress_foreign(p))
        return; /* as zm_progress_add */
    pthread_mutex_lock(&p->mu);
    for (zm_psock **pp = &p->socks; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == ps) {
            *pp = ps->next;
            break;
        }
    }
    /* Its descriptors stay in the thread's epoll set until they close
     * (the backend is the thread's: only it may unwatch); an event of one
     * finds no socket. */
    for (int i = 0; i < ps->nwfds; i++)
        if (ps->wfds[i] < p->nby_fd && p->by_fd[ps->wfds[i]] == ps)
            p->by_fd[ps->wfds[i]] = NULL;
    free(ps->wfds);
    ps->wfds = NULL;
    ps->nwfds = ps->capwfds = 0;
    awake_del(p, ps);
    if (p->pheap.v != NULL)
        zm_heap_del(&p->pheap, &ps->pheap);
    ps->pheap.i = 0;
    __atomic_store_n(&ps->parked, 0, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&ps->poked, __ATOMIC_SEQ_CST)) {
        /* On the stack (its owner, this thread, pushed it before): take
         * the stack, leave it out, push the others back. */
        zm_psock *q = __atomic_exchange_n(&p->pokes, NULL, __ATOMIC_SEQ_CST);
        while (q != NULL) {
            zm_psock *next = q->poke_next;
            if (q != ps)
                poke_push(p, q);
            q = next;
        }
        ps->poked = 0;
    }
    pthread_mutex_unlock(&p->mu);
}

void zm_progress_wake(zm_progress *p)
{
    /* seq_cst, both: the mirror of the thread's exit (clear `be_live`,
     * then wait for `wakers` to drain before closing `be`).  A wake from a
     * socket's owner racing the thread's end either sees be_live 0 or is
     * waited for: `be` is never used after it was freed. */
    __atomic_add_fetch(&p->wakers, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&p->be_live, __ATOMIC_SEQ_CST))
        zm_backend_wake(p->be); /* -ECHILD in a forked child: no effect */
    /* Release: our use of `be` is over before the thread sees 0. */
    __atomic_sub_fetch(&p->wakers, 1, __ATOMIC_RELEASE);
}

void zm_progress_call_done(zm_progress *p, zm_psock *ps, int wanted)
{
    /* seq_cst, the mirror of progress_main's check before a timeless
     * sleep. */
    __atomic_fetch_add(&ps->calls, 1, __ATOMIC_SEQ_CST);
    /* Parked: the thread does not look at it until poked (see "Parked
     * sockets"); once per parking. */
    if (__atomic_load_n(&ps->parked, __ATOMIC_SEQ_CST) &&
        __atomic_exchange_n(&ps->poked, 1, __ATOMIC_SEQ_CST) == 0)
        poke_push(p, ps);
    if (wanted) {
        /* One wake per look is enough: the thread clears `woken` (seq_cst)
         * before it looks at the socket, so a call that ends after the look
         * began sees 0 and wakes it again. */
        if (__atomic_exchange_n(&ps->woken, 1, __ATOMIC_SEQ_CST) == 0 &&
            (wanted != ZM_WANT_SETUP ||
             __atomic_load_n(&p->look_by_ns, __ATOMIC_SEQ_CST) >
                 zm_now_ns() + ZM_PROGRESS_GRACE_NS))
            zm_progress_wake(p);
    } else if (__atomic_load_n(&p->sleeping_forever, __ATOMIC_SEQ_CST)) {
        zm_progress_wake(p);
    }
}

/* Connections zm_progress_wanted looks at, at most: past them (thousands
 * of peers in their handshake at once) it says ZM_WANT_OUTPUT without
 * looking further.  That wakes the thread once per look at most
 * (zm_psock.woken), and it leaves the reads to an owner that keeps
 * calling: cheaper than a walk of every connection after every call. */
#define ZM_WANTED_WALK_MAX 64

int zm_progress_wanted(const zm_sock *s)
{
    int setup = 0, walked = 0;

    if (s->mon_out.bytes > 0)
        return ZM_WANT_OUTPUT;
    /* One walk of the step list (called at the end of every call): off it
     * a connection is ACTIVE with nothing queued (engine.c, "The step
     * list"), so the walk is as long as the connections with something to
     * do, not as the connected ones; it stops at the first one with
     * output, which outranks a set-up. */
    for (const zm_conn *c = s->hot; c != NULL; c = c->hot_next) {
        if (++walked > ZM_WANTED_WALK_MAX)
            return ZM_WANT_OUTPUT;
        if (c->state == ZM_CS_DEAD)
            continue;
        if (c->out.bytes > 0 && (c->state == ZM_CS_ACTIVE || c->connecter))
            return ZM_WANT_OUTPUT; /* zm_sock_pending_out's bytes */
        if (!c->inproc && c->state != ZM_CS_ACTIVE)
            setup = 1; /* an inproc one waiting for its bind needs no step */
    }
    if (setup)
        return ZM_WANT_SETUP;
    return 0;
}
