/*
 * py_wait.c - the blocking wait of the CPython face: each thread's own
 * backend (io_uring or epoll, backend.h) and the fork handlers, then one
 * wait over some sockets and plain fds in steps (watch, publish for
 * term(), spin, run signal handlers, arm the inproc mailboxes, sleep,
 * tell the engines what fired, unwatch, finish), with the GIL released
 * around all but the signal handlers.
 *
 * Owns:      thread_waiter (per-thread backends), the fork handlers, the
 *            busy-poll budget (ZMTP_SPIN_US, _spin_us), wait_step and its
 *            steps, zm_py_wait_sockets; _set_backend, _probe_backend.
 * May call:  Python.h, backend.h (open, wait, watch sets, fork generation),
 *            engine.h (zm_sock_watch, zm_sock_io_ready, the inproc
 *            mailbox arm/disarm), arena.h (page cache fork hooks),
 *            py_errors.c.  It reads and writes SocketObject fields (the
 *            wait's publication: waiting_on, flush_due_ns, wait_avg_ns).
 * Called by: py_sockio.c (a send or recv that blocks), py_socket.c
 *            (close's linger), py_poll.c, _zmtpmodule.c (zm_py_wait_init
 *            at exec, the function table).  Never by the engine or the
 *            backends: they do not wait, and know no Python.
 */
#include "py_module.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

/* ================================================================== */
/* Per-thread backends, fork                                          */
/* ================================================================== */

/* Each thread that waits has its own backend (an io_uring ring is bound to
 * the thread that submits on it) and the list of what its waits watch.
 * Created on first wait, closed when the thread exits; after fork() the
 * child makes new ones. */
typedef struct {
    zm_backend *be;
    zm_watchset ws;  /* what this thread's waits watch now: a stack, a
                        signal handler's wait pushes above the outer one */
    unsigned waits;  /* waits entered on this thread (a change across a
                        signal handler: it waited on `be` too) */
} thread_waiter;

static pthread_key_t tls_backend_key;
static pthread_once_t tls_backend_once = PTHREAD_ONCE_INIT;
static int g_fork_register_err; /* -errno from tls_backend_init */
static char g_backend_name[16] = "";     /* "", "io_uring" or "epoll" */

static void tls_backend_destroy(void *arg)
{
    thread_waiter *tw = arg;

    if (tw == NULL)
        return;
    zm_backend_close(tw->be);
    zm_watchset_free(&tw->ws);
    free(tw);
}

/*
 * fork() (docs/architecture.md, "Fork").  The page cache is the one lock
 * the child needs intact and that any thread may hold: taken around the
 * fork (as glibc's malloc does its own), so the child inherits it free and
 * consistent.  Everything else the parent's threads may hold (a progress
 * thread's mutex, inproc pipe and mailbox locks, a socket's lock word)
 * belongs to an object of the parent, which the child never touches:
 * each remembers its fork generation (zm_fork_gen(), bumped in the child
 * by backend.c's handler) and refuses use or is leaked in the child.
 */
static void before_fork(void)
{
    zm_page_cache_fork_prepare();
}

static void after_fork_parent(void)
{
    zm_page_cache_fork_parent();
}

static void after_fork_child(void)
{
    zm_page_cache_fork_child();
    /* The parent's backends are not ours; forget without touching them
     * (the other threads' ones: their destructors never run here). */
    pthread_setspecific(tls_backend_key, NULL);
}

static void tls_backend_init(void)
{
    pthread_key_create(&tls_backend_key, tls_backend_destroy);
    /* The generation first: a socket made before any wait must still know
     * in a forked child that it is the parent's. */
    g_fork_register_err = zm_fork_register();
    if (g_fork_register_err == 0)
        g_fork_register_err = -pthread_atfork(before_fork, after_fork_parent,
                                              after_fork_child);
}

/* The calling thread's waiter, opening its backend if needed (GIL held). */
static thread_waiter *thread_waiter_get(zmtp_state *st)
{
    thread_waiter *tw;
    char reason[256] = "";
    int rc;

    pthread_once(&tls_backend_once, tls_backend_init);
    tw = pthread_getspecific(tls_backend_key);
    if (tw != NULL)
        return tw;
    tw = zm_calloc(1, sizeof(*tw));
    if (tw == NULL || zm_watchset_reserve(&tw->ws, 64) < 0) {
        free(tw);
        PyErr_NoMemory();
        return NULL;
    }
    rc = zm_backend_open(&tw->be, g_backend_name[0] ? g_backend_name : NULL,
                         reason, sizeof(reason));
    if (rc < 0) {
        free(tw);
        zm_py_raise_zmq(st, -rc,
                        reason[0] ? reason : "cannot open an I/O backend");
        return NULL;
    }
    pthread_setspecific(tls_backend_key, tw);
    return tw;
}

ZM_PY_DOC(zm_py_set_backend_doc,
"_set_backend(name, /)\n--\n\n"
"Choose the backend for threads that open one from now on: 'io_uring',\n"
"'epoll' or '' (best available).  Returns (name, reason) of a probe.");

PyObject *zm_py_set_backend(PyObject *module, PyObject *arg)
{
    const char *name;
    char reason[256] = "";
    zm_backend *be = NULL;
    int rc;

    name = PyUnicode_AsUTF8(arg);
    if (name == NULL)
        return NULL;
    if (name[0] != '\0' && strcmp(name, "io_uring") != 0 &&
        strcmp(name, "epoll") != 0) {
        PyErr_Format(PyExc_ValueError,
                     "unknown backend %R (use 'io_uring' or 'epoll')", arg);
        return NULL;
    }
    rc = zm_backend_open(&be, name[0] ? name : NULL, reason, sizeof(reason));
    if (rc < 0)
        return zm_py_raise_zmq(get_state(module), -rc,
                               reason[0] ? reason : "backend unavailable");
    snprintf(g_backend_name, sizeof(g_backend_name), "%s",
             zm_backend_name(be));
    zm_backend_close(be);
    return Py_BuildValue("(ss)", g_backend_name, reason);
}

ZM_PY_DOC(zm_py_probe_backend_doc,
"_probe_backend(name, /)\n--\n\n"
"(usable, reason) for 'io_uring' or 'epoll', without changing the choice.");

PyObject *zm_py_probe_backend(PyObject *module, PyObject *arg)
{
    const char *name = PyUnicode_AsUTF8(arg);
    char reason[256] = "";
    int rc;

    (void)module;
    if (name == NULL)
        return NULL;
    rc = zm_backend_probe(name, reason, sizeof(reason));
    return Py_BuildValue("(Ns)", PyBool_FromLong(rc == 0), reason);
}

/* ================================================================== */
/* Busy-poll budget                                                   */
/* ================================================================== */

/* Busy-poll before blocking: up to g_spin_ns (ZMTP_SPIN_US, default 50;
 * 0 turns it off), and only for sockets whose waits have lately been short
 * (an EWMA under 4x the budget: a blocked wait includes the wake-up the
 * spin saves), so a socket whose peer is slow, or idle, never spins. */
static int64_t g_spin_ns = 50000;

ZM_PY_DOC(zm_py_spin_us_doc,
"_spin_us([us], /)\n--\n\n"
"The busy-poll budget of a blocking wait in us (ZMTP_SPIN_US at import,\n"
"default 50; 0: never spin).  With an argument, set it (process-wide) and\n"
"return the old value.");

PyObject *zm_py_spin_us(PyObject *module, PyObject *args)
{
    long us = -1;
    int64_t old = g_spin_ns / 1000;

    (void)module;
    if (!PyArg_ParseTuple(args, "|l:_spin_us", &us))
        return NULL;
    if (us > 1000000) {
        PyErr_SetString(PyExc_ValueError, "spin budget must be 0..1000000 us");
        return NULL;
    }
    if (us >= 0)
        g_spin_ns = (int64_t)us * 1000;
    return PyLong_FromLongLong((long long)old);
}

/* See wait_inproc_grace: how long a thread that saw an inproc peer's
 * signal during its spin waits before taking the GIL back (with it, inproc
 * REQ/REP in benchmarks/inproc_echo.py went 19.4 -> 2.9 us on io_uring;
 * docs/performance.md, levers). */
#define ZM_INPROC_GIL_GRACE_NS 400

/* Spinning on the only CPU we may use would keep the peer we wait for from
 * running: look at the affinity mask now and then (it may change). */
static _Thread_local int tls_cpus_checked, tls_cpus;

static int spin_cpus(void)
{
    if (tls_cpus_checked-- <= 0) {
        cpu_set_t set;
        tls_cpus = sched_getaffinity(0, sizeof(set), &set) == 0
                       ? CPU_COUNT(&set)
                       : 1;
        tls_cpus_checked = 256; /* waits until the next look */
    }
    return tls_cpus;
}

static int64_t spin_budget(SocketObject **socks, int nsocks, int64_t timeout)
{
    if (g_spin_ns <= 0 || nsocks == 0 || timeout == 0 || spin_cpus() < 2)
        return 0;
    for (int i = 0; i < nsocks; i++)
        if (socks[i]->wait_avg_ns > 4 * g_spin_ns)
            return 0;
    return timeout > 0 && timeout < g_spin_ns ? timeout : g_spin_ns;
}

static void spin_learn(SocketObject **socks, int nsocks, int64_t took)
{
    for (int i = 0; i < nsocks; i++)
        socks[i]->wait_avg_ns = (socks[i]->wait_avg_ns * 3 + took) / 4;
}

/* Has an inproc peer signalled one of these sockets since its last step?
 * (Memory only: the owner spins on it without a syscall.) */
static int inproc_moved(SocketObject **socks, int nsocks)
{
    for (int i = 0; i < nsocks; i++) {
        zm_mailbox *mb = socks[i]->s.mb;
        if (mb != NULL && zm_mailbox_seq(mb) != socks[i]->s.mb_seen)
            return 1;
    }
    return 0;
}

/* ================================================================== */
/* One wait, in steps                                                 */
/* ================================================================== */

/* One blocking wait (zm_py_wait_sockets), carried through its steps. */
typedef struct {
    zmtp_state *st;
    SocketObject **socks;
    int nsocks;
    int lingering;        /* close()'s linger: term() does not end it */
    thread_waiter *tw;    /* this thread's backend and watch list */
    int base;             /* tw->ws.fds[base..) are this wait's */
    int err;              /* a watch failed: -errno */
    int64_t next;         /* the caller's deadline or the first timer */
    int64_t timeout;      /* of the sleep, ns; -1 forever */
    int64_t started;      /* when the spin (or the sleep) began */
    int inproc_ready;     /* an inproc peer signalled: do not sleep */
    int sig_raised;       /* a signal handler raised */
    int restep;           /* a signal handler waited on this thread's
                             backend: what we watched may be spent */
    int rc;               /* events in evs, or -errno of the wait */
    zm_io_event evs[32];
} wait_step;

#define WAIT_MAX_EVENTS ((int)(sizeof(((wait_step *)0)->evs) / sizeof(zm_io_event)))

/* zm_sock_watch's callback: watch fd on this thread's backend and list it
 * for the unwatch (no cap: the list grows, and is kept for the thread). */
static int watch_cb(void *ctx_, int fd, unsigned events)
{
    wait_step *w = ctx_;
    int rc;

    if (w->err < 0)
        return w->err;
    rc = zm_watchset_add(&w->tw->ws, w->tw->be, fd, events);
    if (rc < 0)
        w->err = rc;
    return rc;
}

/* The time left until w->next: -1 for none, never negative. */
static int64_t wait_left(const wait_step *w)
{
    int64_t t;

    if (w->next < 0)
        return -1;
    t = w->next - zm_now_ns();
    return t < 0 ? 0 : t;
}

/* The wait's fields, on this thread's waiter `tw` (no Python). */
static void wait_init(wait_step *w, thread_waiter *tw, zmtp_state *st,
                      SocketObject **socks, int nsocks, int lingering)
{
    w->tw = tw;
    w->tw->waits++;
    w->st = st;
    w->socks = socks;
    w->nsocks = nsocks;
    w->lingering = lingering;
    w->base = w->tw->ws.n;
    w->err = 0;
    w->inproc_ready = 0;
    w->sig_raised = 0;
    w->restep = 0;
    w->rc = 0;
}

/* Step: this thread's backend and watch list (GIL held). */
static int wait_begin(wait_step *w, zmtp_state *st, SocketObject **socks,
                      int nsocks, int lingering)
{
    thread_waiter *tw = thread_waiter_get(st);

    if (tw == NULL)
        return -1;
    wait_init(w, tw, st, socks, nsocks, lingering);
    return 0;
}

/* Step: watch every descriptor of the sockets and the plain fds; w->next
 * becomes the deadline or the first timer, whichever comes first. */
static void wait_watch(wait_step *w, const int *fds, const unsigned *fd_events,
                       int nfds, int64_t deadline)
{
    w->next = deadline;
    for (int i = 0; i < w->nsocks; i++) {
        int64_t t = zm_sock_watch(&w->socks[i]->s, watch_cb, w);
        if (t >= 0 && (w->next < 0 || t < w->next))
            w->next = t;
    }
    for (int i = 0; i < nfds; i++)
        watch_cb(w, fds[i], fd_events[i]);
}

/* Step: how long we may sleep, and tell term() which backend to wake. */
static void wait_publish(wait_step *w)
{
    SocketObject **socks = w->socks;
    int i;

    /* An inproc peer did something since the sockets' last steps: go back
     * and look instead of waiting.  (The mailboxes are armed only just
     * before the real wait: while we spin, peers signal without a
     * syscall and the spin sees their sequence numbers move.) */
    w->inproc_ready = inproc_moved(socks, w->nsocks);
    w->timeout = w->inproc_ready ? 0 : wait_left(w);
    /* Publish the backend we wait on, then look at `terminated`; term()
     * does the mirror (sets `terminated`, then reads `waiting_on`).  Both
     * sides are seq_cst so that at least one sees the other's store: either
     * term() wakes this backend or we do not block. */
    for (i = 0; i < w->nsocks; i++)
        __atomic_store_n(&socks[i]->waiting_on, w->tw->be, __ATOMIC_SEQ_CST);
    /* Relaxed: a hint for the progress thread's timer only.  This wait
     * covers the held-back output itself (zm_sock_watch's time includes
     * the flush), so the progress thread, which cannot take the socket while
     * we block, must not come back for it every 100 us meanwhile; the next
     * sock_leave sets the hint again. */
    for (i = 0; i < w->nsocks; i++)
        __atomic_store_n(&socks[i]->ps.flush_due_ns, 0, __ATOMIC_RELAXED);
    for (i = 0; i < w->nsocks; i++)
        if (!w->lingering &&
            __atomic_load_n(&socks[i]->terminated, __ATOMIC_SEQ_CST))
            w->timeout = 0;
}

/* Step (GIL released): poll without sleeping for up to `spin` ns; a CPU
 * that goes idle takes tens of us to wake up, longer than a whole round
 * trip on loopback (docs/performance.md, "busy-poll").  Sets w->rc and
 * w->inproc_ready. */
static void wait_spin(wait_step *w, int64_t spin)
{
    zm_backend *be = w->tw->be;
    int64_t end = w->started + spin;
    /* io_uring's zero-timeout wait looks at the rings in memory and
     * enters the kernel only when completions are pending; an epoll
     * check is a syscall each, so those are spaced 2 us apart. */
    int gap = strcmp(zm_backend_name(be), "epoll") == 0;

    for (;;) {
        w->rc = zm_backend_wait(be, w->evs, WAIT_MAX_EVENTS, 0);
        if (w->rc != 0 ||
            (w->inproc_ready = inproc_moved(w->socks, w->nsocks)) ||
            zm_now_ns() >= end)
            return;
        /* Let any task waiting for this CPU (maybe our peer) run. */
        sched_yield();
        if (gap) {
            int64_t until = zm_now_ns() + 2000;
            while (zm_now_ns() < until)
                if ((w->inproc_ready = inproc_moved(w->socks, w->nsocks)))
                    return;
        }
    }
}

/* Step (GIL released): an inproc peer is another thread of this process,
 * and it still holds the GIL: it signalled from inside its send() and
 * releases the GIL only when its next call waits.  Asking for the GIL now
 * would put this thread to sleep on the GIL's condition variable (a
 * context switch each way); a moment's patience lets the peer reach its
 * wait first.  ZM_INPROC_GIL_GRACE_NS. */
static void wait_inproc_grace(void)
{
    int64_t until = zm_now_ns() + ZM_INPROC_GIL_GRACE_NS;

    while (zm_now_ns() < until)
        ;
}

/* Step (GIL held): a signal that came during the spin interrupted no
 * syscall: run Python's handlers now, or a Ctrl-C would wait for the whole
 * timeout (only the main thread runs them; elsewhere this returns at once).
 * A handler may do anything, also block on another zmtp socket: that wait
 * runs on this thread's backend, where ours are still watched, and may
 * take their one-shot readiness (or term()'s wake).  Then this wait ends
 * here (w->restep): the caller steps its sockets again, which finds what
 * came, and waits anew with the time left to its deadline.  Otherwise the
 * sleep is what is left of the time: the handlers may have run long. */
static void wait_run_handlers(wait_step *w)
{
    unsigned waits = w->tw->waits;

    if (PyErr_CheckSignals() < 0)
        w->sig_raised = 1;
    else if (w->tw->waits != waits)
        w->restep = 1;
    else
        w->timeout = wait_left(w);
}

/* Step (GIL released): about to sleep: arm the mailboxes, so that inproc
 * peers write their eventfds, and watch those; a mailbox whose sequence
 * moved meanwhile says so (no sleep). */
static void wait_arm(wait_step *w)
{
    for (int i = 0; i < w->nsocks; i++) {
        int a = zm_sock_inproc_arm(&w->socks[i]->s);
        if (a == 1)
            w->timeout = 0;
        else if (a == 0)
            watch_cb(w, w->socks[i]->s.mb->efd, ZM_IO_IN);
    }
}

/* Step: spin, run signal handlers, arm, sleep; the GIL released around
 * all but the handlers.  Leaves the events (or -errno) in w->rc. */
static void wait_block(wait_step *w)
{
    int64_t spin = spin_budget(w->socks, w->nsocks, w->timeout);

    w->started = zm_now_ns();
    Py_BEGIN_ALLOW_THREADS
    w->rc = 0;
    if (spin > 0) {
        wait_spin(w, spin);
        if (w->inproc_ready) {
            wait_inproc_grace();
            w->timeout = 0;
        }
        if (w->rc == 0 && w->timeout != 0) {
            Py_BLOCK_THREADS
            wait_run_handlers(w);
            Py_UNBLOCK_THREADS
        }
    }
    if (w->rc == 0 && !w->sig_raised && !w->restep) {
        if (w->timeout != 0)
            wait_arm(w);
        w->rc = w->err < 0 ? w->err
                           : zm_backend_wait(w->tw->be, w->evs,
                                             WAIT_MAX_EVENTS, w->timeout);
    }
    Py_END_ALLOW_THREADS
}

/* Step: the wait is over; tell each engine what fired. */
static void wait_unpublish(wait_step *w)
{
    SocketObject **socks = w->socks;
    int i;

    spin_learn(socks, w->nsocks, zm_now_ns() - w->started);
    /* Release: after this a term() sees no backend to wake (the wait is
     * over; the next call checks `terminated` in sock_enter). */
    for (i = 0; i < w->nsocks; i++)
        __atomic_store_n(&socks[i]->waiting_on, NULL, __ATOMIC_RELEASE);
    for (i = 0; i < w->nsocks; i++)
        socks[i]->s.now_ns = 0; /* time has passed */
    /* We hold every socket's lock. */
    for (int j = 0; j < w->rc; j++)
        for (i = 0; i < w->nsocks; i++)
            zm_sock_io_ready(&socks[i]->s, (int)w->evs[j].token);
}

/* Step: disarm the mailboxes and unwatch all that this wait watched (no
 * request is left on the backend when a call returns). */
static void wait_unwatch(wait_step *w)
{
    for (int i = 0; i < w->nsocks; i++) {
        zm_mailbox *mb = w->socks[i]->s.mb;
        int fired = 0;
        if (mb == NULL)
            continue;
        for (int j = 0; j < w->rc && !fired; j++)
            fired = (int)w->evs[j].token == mb->efd;
        zm_mailbox_disarm(mb, fired);
    }
    zm_watchset_unwatch(&w->tw->ws, w->tw->be, w->base);
}

/* Step: the outcome, once nothing is watched: handlers interrupted by a
 * signal run now (they may wait on this thread's backend freely), errors,
 * termination.  0 or -1 with an exception. */
static int wait_finish(wait_step *w)
{
    if (w->sig_raised)
        return -1; /* the handler's exception (KeyboardInterrupt, ...) */
    if (w->rc == -EINTR)
        return PyErr_CheckSignals() < 0 ? -1 : 0;
    if (w->rc == -ENOMEM) {
        PyErr_NoMemory();
        return -1;
    }
    if (w->rc < 0) {
        zm_py_raise_zmq(w->st, -w->rc,
                        w->rc == w->err ? "I/O backend watch failed"
                                        : "I/O backend wait failed");
        return -1;
    }
    for (int i = 0; i < w->nsocks && !w->lingering; i++)
        if (sock_terminated(w->socks[i])) {
            zm_py_raise_zmq(w->st, ZM_ETERM, "Context was terminated");
            return -1;
        }
    return 0;
}

/*
 * Wait until one of the sockets' descriptors (or extra plain fds) may have
 * progress, a timer is due, or deadline (-1: none).  The GIL is released
 * around the wait only.  0 (the caller steps its sockets and calls again
 * with the same deadline while it has nothing), or -1 with an exception
 * (signal handler raised, context terminated, backend error).
 */
int zm_py_wait_sockets(zmtp_state *st, SocketObject **socks, int nsocks,
                       const int *fds, const unsigned *fd_events, int nfds,
                       int64_t deadline, int lingering)
{
    wait_step w;

    zm_py_last_send = NULL; /* a thread that waits is not in a burst */
    if (wait_begin(&w, st, socks, nsocks, lingering) < 0)
        return -1;
    wait_watch(&w, fds, fd_events, nfds, deadline);
    if (w.err < 0) {
        w.rc = w.err;
    } else {
        wait_publish(&w);
        wait_block(&w);
        wait_unpublish(&w);
    }
    wait_unwatch(&w);
    return wait_finish(&w);
}

/* The proxy's wait (py_proxy.c): opens this thread's backend (GIL held).
 * 0, or -1 with an exception. */
int zm_py_wait_prepare(zmtp_state *st)
{
    return thread_waiter_get(st) == NULL ? -1 : 0;
}

/*
 * The same wait, called with the GIL released (the proxy's loop, which
 * takes the GIL only to raise or return): watch, publish, spin, arm,
 * sleep, unpublish, unwatch, with no signal handler run.  0 (step the
 * sockets and call again), 1 (a signal interrupted the sleep: take the
 * GIL and run the handlers), -ZM_ETERM (a socket's context was
 * terminated) or -errno.  zm_py_wait_prepare ran on this thread before.
 */
int zm_py_wait_released(SocketObject **socks, int nsocks, int64_t deadline)
{
    thread_waiter *tw = pthread_getspecific(tls_backend_key);
    wait_step w;

    if (tw == NULL)
        return -EINVAL;
    zm_py_last_send = NULL;
    wait_init(&w, tw, NULL, socks, nsocks, 0);
    wait_watch(&w, NULL, NULL, 0, deadline);
    if (w.err < 0) {
        w.rc = w.err;
    } else {
        int64_t spin;

        wait_publish(&w);
        spin = spin_budget(socks, nsocks, w.timeout);
        w.started = zm_now_ns();
        if (spin > 0) {
            wait_spin(&w, spin);
            if (w.inproc_ready)
                w.timeout = 0;
        }
        if (w.rc == 0) {
            if (w.timeout != 0)
                wait_arm(&w);
            w.rc = w.err < 0 ? w.err
                             : zm_backend_wait(w.tw->be, w.evs,
                                               WAIT_MAX_EVENTS, w.timeout);
        }
        wait_unpublish(&w);
    }
    wait_unwatch(&w);
    if (w.rc == -EINTR)
        return 1;
    if (w.rc < 0)
        return w.rc;
    for (int i = 0; i < nsocks; i++)
        if (sock_terminated(socks[i]))
            return -ZM_ETERM;
    return 0;
}

/* ================================================================== */
/* Set-up                                                             */
/* ================================================================== */

/* At exec: register the fork handlers now (a socket made before any wait
 * must still know in a forked child that it is the parent's), and read
 * ZMTP_SPIN_US.  0, or -1 with an exception. */
int zm_py_wait_init(void)
{
    pthread_once(&tls_backend_once, tls_backend_init);
    if (g_fork_register_err < 0) {
        errno = -g_fork_register_err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    {
        const char *spin = getenv("ZMTP_SPIN_US");
        if (spin != NULL && *spin != '\0') {
            char *end;
            long us = strtol(spin, &end, 10);
            if (*end != '\0' || us < 0 || us > 1000000) {
                PyErr_Format(PyExc_ValueError,
                             "ZMTP_SPIN_US must be 0..1000000 (us), not %.40s",
                             spin);
                return -1;
            }
            g_spin_ns = (int64_t)us * 1000;
        }
    }
    return 0;
}
