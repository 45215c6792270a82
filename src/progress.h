/*
 * progress.h - the context's progress thread: it drives the sockets whose
 * owner is not inside a call (accepts, handshakes, reconnects, PONGs,
 * queued output, input up to RCVHWM), so a socket keeps its ZeroMQ
 * behaviour while its owner sleeps or blocks elsewhere.
 *
 * No Python here: the thread never takes the GIL.  Each registered socket
 * has a `busy` word (the socket's lock, ZM_BUSY_* below): its owner holds
 * it for the whole of a call, the progress thread only ever tries to take
 * it and never blocks while holding it, so an owner that finds it taken
 * just yields and retries.  A
 * socket called within the last ZM_PROGRESS_GRACE_NS is left to its owner
 * (the thread looks again when that time has passed), so a busy socket
 * does not get its wake-ups stolen.
 *
 * The thread waits on an epoll backend of its own: the owner may close a
 * descriptor while the thread watches it, and epoll forgets a closed file
 * by itself, where an io_uring poll would stay pending.
 *
 * Layering: calls the engine's non-blocking steps (zm_sock_process, _flush,
 * _push_output, _watch, _io_ready, _events), a backend (its wait), inproc
 * (zm_mailbox_signal, for Socket.fileno()) and common.h.  Called by the
 * Python face only (a Context starts it, each Socket registers, and counts
 * its calls with zm_progress_call_done).  The engine must never call it: the
 * engine does not know who drives it.
 */
#ifndef ZMTP_PROGRESS_H
#define ZMTP_PROGRESS_H

#include <pthread.h>

#include "backend.h"
#include "engine.h"

/* zm_progress.by_fd's entries made at start (descriptors below this take
 * no allocation when first watched). */
#define ZM_PROGRESS_FDS_RESERVED 1024

#define ZM_PROGRESS_GRACE_NS ((int64_t)2000000) /* 2 ms */

/*
 * The socket's lock word (zm_psock.busy).  Invariant: it is taken only by
 * a compare-and-swap from ZM_BUSY_FREE (acquire) and given back only by its
 * holder, with a release store of ZM_BUSY_FREE; whoever holds it is the only
 * thread that touches the socket's engine.  The owner's thread holds it
 * (OWNER) for the whole of a call and may wait inside it; the progress
 * thread holds it (PROGRESS) for one step that never waits, so an owner
 * that finds PROGRESS yields and retries, and OWNER seen by another Python
 * thread means "in use" (EBUSY).  A forked child never takes a word it
 * inherited: its holder may be a thread that does not exist there.
 */
#define ZM_BUSY_FREE 0
#define ZM_BUSY_OWNER 1
#define ZM_BUSY_PROGRESS 2

typedef struct zm_psock {
    struct zm_psock *next;
    zm_sock *sock;
    int busy;                /* atomic: ZM_BUSY_* (the socket's lock) */
    int64_t last_call_ns;    /* progress thread only: when it last saw
                                `calls` move */
    int64_t backoff_ns;      /* progress thread only: next look when the
                                owner keeps the socket busy */
    uint64_t calls;          /* atomic: calls finished by the owner */
    uint64_t seen_calls;     /* progress thread only: `calls` at its look */
    int woken;               /* atomic: the owner woke the thread for this
                                socket and it has not looked yet */
    int64_t flush_due_ns;    /* atomic: held-back output must go by then
                                (0: none), written by the owner */
    /* Parked (progress.c, "Parked sockets"): the thread stepped it and
     * watches its descriptors (wfds), and looks at it again only for an
     * event on one of them, its timer (park_t in the thread's heap), or a
     * call of its owner (the owner pokes it): a round of the thread costs
     * the sockets that have something to do, not every socket.  Under
     * zm_progress.mu, except `parked` and `poked` (atomics, read and set
     * by the owner in zm_progress_call_done). */
    int parked;              /* atomic */
    int poked;               /* atomic: on zm_progress.pokes */
    struct zm_psock *poke_next;
    int awake;               /* on zm_progress.awake: looked at each round */
    struct zm_psock *awake_next, *awake_prev;
    int park_want;           /* the look stepped and watched it: park it */
    int64_t park_t;          /* its next look when parked (-1: none) */
    zm_heap_item pheap;      /* its place in zm_progress.pheap */
    int *wfds;               /* the descriptors its last look watched */
    int nwfds, capwfds;
} zm_psock;

typedef struct zm_progress {
    pthread_mutex_t mu;      /* guards `socks` and `stop` */
    zm_psock *socks;
    int stop;
    int started;             /* owner only (start/stop): the thread is to
                                be joined */
    unsigned fork_gen;       /* zm_fork_gen() at start */
    pthread_t thread;
    zm_backend *be;          /* the thread's own (epoll); opened and closed
                                by the thread, woken by any thread while
                                `be_live` */
    int be_live;             /* atomic: wake() may use `be` */
    int wakers;              /* atomic: wake() calls using `be` now */
    int sleeping_forever;    /* atomic: waiting with no timeout */
    int64_t look_by_ns;      /* atomic: the thread looks at every socket
                                by then (INT64_MAX: not before a wake) */
    zm_psock **by_fd;        /* under mu: the socket that watched each
                                descriptor (an event's token is its fd) */
    int nby_fd;
    zm_psock *awake;         /* under mu: the sockets not parked */
    zm_heap pheap;           /* under mu: parked sockets with a timer, by
                                park_t (minheap.h, zm_psock.pheap) */
    zm_psock *pokes;         /* atomic: a stack of parked sockets whose
                                owner called (pushed by the owner, taken
                                whole by the thread) */
    char reason[128];
} zm_progress;

/* 0, or -errno (thread, backend or its first allocation failed: no thread
 * is left running). */
int zm_progress_start(zm_progress *p);
/* Stop and join the thread; registered sockets are left alone.  In a
 * forked child, for a progress thread of the parent (which does not exist
 * there): touches nothing (no lock, no join) and leaks it. */
void zm_progress_stop(zm_progress *p);
/* Started in another process (this is a forked child of it). */
int zm_progress_foreign(const zm_progress *p);

/* A socket added must be removed before its zm_psock goes away, also
 * after zm_progress_stop (until then the thread may be looking at it). */
void zm_progress_add(zm_progress *p, zm_psock *ps);
void zm_progress_remove(zm_progress *p, zm_psock *ps);

/* Make the thread look at its sockets again now (any thread); does
 * nothing once the thread is stopping or gone. */
void zm_progress_wake(zm_progress *p);

/* After an owner's call: does the socket need the thread soon?  0: no;
 * ZM_WANT_OUTPUT: output waiting for the kernel (or held back);
 * ZM_WANT_SETUP: only connections not ready yet (dial, handshake). */
#define ZM_WANT_OUTPUT 1
#define ZM_WANT_SETUP 2
int zm_progress_wanted(const zm_sock *s);

/* The owner ends a call (the socket released): wakes the thread when
 * `wanted` (ZM_WANT_SETUP: only if the thread would not look within
 * ZM_PROGRESS_GRACE_NS anyway: within that time it leaves a set-up to the
 * owner, so waking it earlier buys nothing), or when it sleeps with no
 * timeout and so may not know what the call changed (new descriptors,
 * timers). */
void zm_progress_call_done(zm_progress *p, zm_psock *ps, int wanted);

/* Write coalescing: the progress thread sends held-back output of a socket
 * whose owner went quiet by its deadline; while the owner keeps the socket
 * busy it is looked at no more often than this. */
#define ZM_PROGRESS_FLUSH_MIN_NS ((int64_t)100000) /* 100 us */
/* An owner that asked for the thread and keeps calling is looked at again
 * after 100 us, 200 us, ... up to this: the most that output held back by
 * its last send waits when it then goes quiet. */
#define ZM_PROGRESS_BUSY_MAX_NS ((int64_t)1000000) /* 1 ms */

#endif /* ZMTP_PROGRESS_H */
