/*
 * py_introspect.c - process-wide introspection and the tests' hooks:
 * memory_stats() (read pages), io_stats() (allocations and syscalls),
 * _alloc_fail() / _alloc_fail_count() (allocation failure injection),
 * _hold_lock_for_fork_test() (a C thread holding one of the core's locks
 * across a fork()).
 *
 * Owns:      the functions above and their docstrings (listed in
 *            _zmtpmodule.c's function table).
 * May call:  Python.h, arena.h (page counters, page cache lock), common.h
 *            (zm_counters, zm_alloc_fail_*), inproc.h (pipe lock); it looks
 *            inside Progress, InprocPipe and Socket objects for their locks.
 * Called by: _zmtpmodule.c's function table only (tests and tools);
 *            never by the core, nor by the rest of the face.
 */
#include "py_module.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>

/* ================================================================== */
/* Introspection                                                      */
/* ================================================================== */

ZM_PY_DOC(zm_py_memory_stats_doc,
"memory_stats()\n--\n\n"
"Process-wide read-page counters: pages_live, page_bytes_live, pages_total,\n"
"page_grows, pages_cached (freed pages kept for reuse) and warm_bytes (freed\n"
"big-frame mappings kept resident for the next big frames).");

PyObject *zm_py_memory_stats(PyObject *module, PyObject *unused)
{
    zm_mem_stats s;

    (void)module;
    (void)unused;
    zm_mem_get_stats(&s);
    return Py_BuildValue("{s:n,s:n,s:n,s:n,s:n,s:n}", "pages_live",
                         (Py_ssize_t)s.pages_live, "page_bytes_live",
                         (Py_ssize_t)s.page_bytes_live, "pages_total",
                         (Py_ssize_t)s.pages_total, "page_grows",
                         (Py_ssize_t)s.page_grows, "pages_cached",
                         (Py_ssize_t)s.pages_cached, "warm_bytes",
                         (Py_ssize_t)s.warm_bytes);
}

ZM_PY_DOC(zm_py_io_stats_doc,
"io_stats()\n--\n\n"
"Process-wide counts since import: heap allocations made by the C core\n"
"('allocations') and its syscalls by kind ('sendmsg', 'recv', 'epoll_ctl',\n"
"'epoll_wait', 'io_uring_enter', 'eventfd', 'other'), and the connections\n"
"visited by socket steps ('conn_visits').  Take two and subtract to see\n"
"what a piece of work cost.");

PyObject *zm_py_io_stats(PyObject *module, PyObject *unused)
{
    uint64_t c[ZM_CNT_COUNT_];

    (void)module;
    (void)unused;
    for (int i = 0; i < ZM_CNT_COUNT_; i++)
        c[i] = __atomic_load_n(&zm_counters[i], __ATOMIC_RELAXED); /* see common.h */
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}",
                         "allocations", c[ZM_CNT_ALLOC],
                         "sendmsg", c[ZM_CNT_SENDMSG],
                         "recv", c[ZM_CNT_RECV],
                         "epoll_ctl", c[ZM_CNT_EPOLL_CTL],
                         "epoll_wait", c[ZM_CNT_EPOLL_WAIT],
                         "io_uring_enter", c[ZM_CNT_URING_ENTER],
                         "eventfd", c[ZM_CNT_EVENTFD],
                         "other", c[ZM_CNT_OTHER],
                         "conn_visits", c[ZM_CNT_CONN_VISIT]);
}

ZM_PY_DOC(zm_py_alloc_fail_doc,
"_alloc_fail(nth=None, /, *, count=1, p=0.0, seed=0, thread=True)\n--\n\n"
"Tests only: make the C core's allocations fail as if out of memory.\n"
"nth: the first allocation to fail, 1 being the next one (0: none by\n"
"position, only count them); count: how many in a row from there (0: all\n"
"the rest); p: each allocation also fails with this probability, from a\n"
"PRNG seeded with seed; thread: count only this thread's allocations.\n"
"nth=None (no argument) disarms.  Resets _alloc_fail_count().");

PyObject *zm_py_alloc_fail(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"nth", "count", "p", "seed", "thread", NULL};
    PyObject *nth_obj = Py_None;
    unsigned long long nth = 0, count = 1, seed = 0;
    double p = 0.0;
    int thread = 1;

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O$KdKp:_alloc_fail", kwlist,
                                     &nth_obj, &count, &p, &seed, &thread))
        return NULL;
    if (nth_obj == Py_None) {
        zm_alloc_fail_arm(0, 0, 0, 0, 0, 0);
        Py_RETURN_NONE;
    }
    nth = PyLong_AsUnsignedLongLong(nth_obj);
    if (nth == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (!(p >= 0.0 && p <= 1.0)) {
        PyErr_SetString(PyExc_ValueError, "p must be in 0..1");
        return NULL;
    }
    zm_alloc_fail_arm(1, nth, count,
                      p >= 1.0 ? UINT32_MAX : (uint32_t)(p * 4294967296.0),
                      seed, thread);
    Py_RETURN_NONE;
}

ZM_PY_DOC(zm_py_alloc_fail_count_doc,
"_alloc_fail_count()\n--\n\n"
"Tests only: (allocations seen, failures injected) since _alloc_fail().");

PyObject *zm_py_alloc_fail_count(PyObject *module, PyObject *unused)
{
    uint64_t attempts, failures;

    (void)module;
    (void)unused;
    zm_alloc_fail_counts(&attempts, &failures);
    return Py_BuildValue("(KK)", (unsigned long long)attempts,
                         (unsigned long long)failures);
}

/* ================================================================== */
/* Test hook: a lock held at fork()                                   */
/* ================================================================== */

typedef struct {
    pthread_mutex_t *mu;
    long ms;
    int held; /* atomic: the holder has the lock */
} hold_job;

static void *hold_main(void *arg)
{
    hold_job *job = arg;
    struct timespec ts = {job->ms / 1000, (job->ms % 1000) * 1000000};

    pthread_mutex_lock(job->mu);
    /* Release: pairs with the caller's acquire; it forks only once the
     * lock is ours. */
    __atomic_store_n(&job->held, 1, __ATOMIC_RELEASE);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    pthread_mutex_unlock(job->mu);
    /* Acquire: the caller stopped reading `held` (it saw 1) before we
     * free; it only reads, so this is about not freeing under it. */
    while (__atomic_load_n(&job->held, __ATOMIC_ACQUIRE) != 2)
        sched_yield();
    free(job);
    return NULL;
}

ZM_PY_DOC(zm_py_hold_lock_doc,
"_hold_lock_for_fork_test(name, obj, ms, /)\n--\n\n"
"Tests only: a C thread takes a lock and holds it for ms milliseconds;\n"
"returns once the lock is held (so a fork() made now happens with it held).\n"
"name: 'progress' (obj: a Progress), 'page_cache' (obj: None), 'pipe'\n"
"(obj: an InprocPipe), 'mailbox' (obj: a Socket with inproc).  The caller\n"
"keeps obj alive for ms.");

PyObject *zm_py_hold_lock_for_fork_test(PyObject *module, PyObject *args)
{
    zmtp_state *st = get_state(module);
    const char *name;
    PyObject *obj;
    long ms;
    pthread_mutex_t *mu = NULL;
    hold_job *job;
    pthread_t th;
    sigset_t all, old;
    int rc;

    if (!PyArg_ParseTuple(args, "sOl:_hold_lock_for_fork_test", &name, &obj,
                          &ms))
        return NULL;
    if (strcmp(name, "progress") == 0 &&
        PyObject_TypeCheck(obj, st->Progress_Type))
        mu = &((ProgressObject *)obj)->p.mu;
    else if (strcmp(name, "page_cache") == 0)
        mu = zm__page_cache_mutex();
    else if (strcmp(name, "pipe") == 0 &&
             Py_IS_TYPE(obj, st->InprocPipe_Type) &&
             ((InprocPipeObject *)obj)->pipe != NULL)
        mu = zm__pipe_mutex(((InprocPipeObject *)obj)->pipe);
    else if (strcmp(name, "mailbox") == 0 &&
             PyObject_TypeCheck(obj, st->Socket_Type) &&
             ((SocketObject *)obj)->s.mb != NULL)
        mu = &((SocketObject *)obj)->s.mb->lock;
    if (mu == NULL || ms < 0 || ms > 60000) {
        PyErr_Format(PyExc_ValueError, "no such lock: %s (%R)", name, obj);
        return NULL;
    }
    job = zm_calloc(1, sizeof(*job));
    if (job == NULL)
        return PyErr_NoMemory();
    job->mu = mu;
    job->ms = ms;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&th, NULL, hold_main, job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        free(job);
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    pthread_detach(th);
    Py_BEGIN_ALLOW_THREADS
    /* Acquire: pairs with the holder's release. */
    while (__atomic_load_n(&job->held, __ATOMIC_ACQUIRE) == 0)
        sched_yield();
    /* Release: our last read of job is done; the holder may free it. */
    __atomic_store_n(&job->held, 2, __ATOMIC_RELEASE);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}
