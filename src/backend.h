/*
 * backend.h - the I/O backend interface: readiness, submitted receives,
 * waiting and cross-thread wake-up, over io_uring (ring.c) or epoll
 * (epoll.c), chosen at run time (backend.c).
 *
 * The socket engine works "syscall first": it sends and receives with plain
 * non-blocking syscalls and uses a backend only to WAIT, either for
 * readiness (zm_backend_watch) or for a receive submitted into a buffer
 * (zm_backend_recv).  It never sees a CQE or an epoll_event: both backends
 * report the same zm_io_event with the same semantics.  See docs/backends.md.
 *
 * Errors are -errno, never abort; nothing here touches errno as seen by the
 * caller except where stated.  No Python here.
 *
 * Ownership.  A backend belongs to the thread that opened it.  Every call
 * from another thread returns -EEXIST and changes nothing, except
 * zm_backend_wake() (any thread, also a signal handler) and
 * zm_backend_name().  After fork() every call on a backend inherited from
 * the parent returns -ECHILD in the child and touches nothing shared with
 * the parent; the child may only zm_backend_close() it, which then releases
 * the child's copies of the descriptors and memory without cancelling
 * anything (the parent's requests are the parent's).
 *
 * File descriptors.  Call zm_backend_unwatch(fd) before close(fd).  With
 * io_uring a request keeps the *file* alive, so close() alone neither
 * cancels a pending receive nor stops it from consuming data later.
 *
 * Layering: the backends call common.h and the kernel only.  Their callers
 * are the waiting layers: the Python face's blocking wait and poll/select
 * (each thread's own backend) and the progress thread (an epoll backend of
 * its own).  The engine must never call a backend (it does not include this
 * header): its entry points are non-blocking steps, and the caller waits
 * between them.  ring.c and epoll.c are reached only through backend.c's
 * ops table; the part under ZM_BACKEND_IMPL below is theirs alone.
 */
#ifndef ZMTP_BACKEND_H
#define ZMTP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/* Readiness bits (zm_backend_watch events; READY event res). ERR and HUP
 * are always reported when they occur, whether asked for or not. */
enum { ZM_IO_IN = 1, ZM_IO_OUT = 2, ZM_IO_ERR = 4, ZM_IO_HUP = 8 };

enum zm_io_kind {
    ZM_IOK_READY = 1, /* res: ZM_IO_* mask now ready, or -errno if the
                         readiness request itself failed (e.g. -EBADF) */
    ZM_IOK_RECV,      /* res: bytes received, 0 = EOF, or -errno */
    ZM_IOK_WAKE       /* zm_backend_wake() was called; token 0, res 0 */
};

typedef struct zm_io_event {
    uint64_t token; /* as given to watch()/recv() */
    int32_t res;
    uint32_t kind;  /* enum zm_io_kind */
} zm_io_event;

typedef struct zm_backend zm_backend; /* opaque */

/* Default submission-queue size; the completion queue is 4x that. */
#define ZM_BACKEND_ENTRIES_DEFAULT 64u

/*
 * Open a backend owned by the calling thread.
 * name: "io_uring", "epoll", or NULL for the best one: io_uring if it
 * starts, else epoll.  `reason` (may be NULL) receives one line saying what
 * was chosen and why, e.g. "io_uring unavailable: EPERM (sysctl
 * kernel.io_uring_disabled=2); using epoll".  A backend asked for by
 * name that cannot start returns its -errno and reason: no fallback.
 * Returns 0 and *out, or -errno (-EINVAL for an unknown name).
 */
int zm_backend_open(zm_backend **out, const char *name, char *reason,
                    size_t reason_len);

/*
 * As zm_backend_open with a size: io_uring SQ entries (rounded up to a
 * power of two and clamped by the kernel; CQ = 4x), or the epoll batch
 * (events fetched per epoll_wait).  0 = ZM_BACKEND_ENTRIES_DEFAULT.
 */
int zm_backend_open_sized(zm_backend **out, const char *name,
                          unsigned entries, char *reason, size_t reason_len);

/* "io_uring" or "epoll". */
const char *zm_backend_name(const zm_backend *b);

/*
 * Cancel every pending request, reap their completions, then free.  When
 * it returns no buffer given to zm_backend_recv() is written anymore.
 * NULL is ignored.  From a non-owner thread or a forked child only memory
 * and descriptors are released (see Ownership above): io_uring then cancels
 * in the kernel, asynchronously, so receive buffers must outlive the ring.
 */
void zm_backend_close(zm_backend *b);

/*
 * One-shot readiness interest in `events` (ZM_IO_IN | ZM_IO_OUT, plus
 * optionally ERR/HUP, which are always reported anyway) on fd: the next
 * wait() that sees fd ready returns one READY event with `token`, and the
 * interest is gone.  A second watch() on fd before that replaces the first
 * (new events and token); an undelivered READY event of the old interest is
 * dropped.  Returns 0 or -errno (-EINVAL: bad events or fd is the
 * backend's own; -EBADF: fd < 0; epoll: errors of epoll_ctl).
 */
int zm_backend_watch(zm_backend *b, int fd, unsigned events, uint64_t token);

/*
 * Receive into buf[0..len) as one RECV event with `token` (io_uring:
 * IORING_OP_RECV; epoll: readiness then recv(MSG_DONTWAIT) inside wait()).
 * At most one receive in flight per fd (-EBUSY otherwise).  buf must stay
 * valid until the RECV event or until zm_backend_unwatch(fd) returns.
 * len is clamped to INT32_MAX; len 0 is -EINVAL.
 */
int zm_backend_recv(zm_backend *b, int fd, void *buf, size_t len,
                    uint64_t token);

/*
 * Synchronously cancel every request on fd (readiness and receive) and
 * forget fd.  When it returns no buffer of fd is written anymore and no
 * event for fd is pending.  A receive can complete just before the cancel
 * takes effect; its bytes are then already in the buffer and must not be
 * lost: unwatch returns 1 and copies that RECV event to *recv_done (when
 * recv_done is NULL the event is dropped).  Otherwise returns 0, or -errno:
 * then requests on fd may still be live (keep the buffer) and the call can
 * be repeated; state stays consistent.
 */
int zm_backend_unwatch(zm_backend *b, int fd, zm_io_event *recv_done);

/*
 * zm_backend_unwatch(fd, NULL) for each of fds[0..n) (the fds of other
 * threads' backends and bad fds are skipped): io_uring submits and reaps
 * the cancels in batches, where one unwatch() enters the kernel once.
 */
void zm_backend_unwatch_many(zm_backend *b, const int *fds, int n);

/*
 * Wait for events: timeout_ns < 0 forever, 0 poll, > 0 at least that long.
 * Returns the number of events stored in evs[0..max) (events beyond max stay
 * queued for the next call), 0 when the timeout expired, -EINTR when a
 * signal arrived (the caller handles it and recomputes its deadline), or
 * another -errno.  -EINTR can also come without a signal of the caller's:
 * epoll_wait is interrupted by kernel task work queued when an io_uring
 * ring this thread used is closed; "check signals, call again" covers it.
 * io_uring: submits the queued requests and waits in one io_uring_enter.
 */
int zm_backend_wait(zm_backend *b, zm_io_event *evs, int max,
                    int64_t timeout_ns);

/*
 * Make a concurrent wait(), or the next one, return a WAKE event.  Wakes
 * coalesce: several before one wait give one event.  Any thread, and async-
 * signal-safe (errno is preserved).  Returns 0 or -errno.
 */
int zm_backend_wake(zm_backend *b);

/*
 * A list of the descriptors a waiter watches, so that it can unwatch them
 * all when its wait ends (the owner's blocking wait, the progress thread).
 * It grows on demand and keeps its memory: a waiter that reuses one
 * allocates nothing in the steady state, and there is no cap on how many
 * descriptors one wait watches.  Zero-initialise; zm_watchset_free() at
 * the end.  Entries are a stack: a nested waiter (a signal handler's call
 * on the same thread) pushes above `n` and unwatches back down to it.
 */
typedef struct zm_watchset {
    int *fds;
    int n, cap;
} zm_watchset;

/* Room for n entries now (so that a waiter's first waits allocate
 * nothing); 0 or -ENOMEM. */
int zm_watchset_reserve(zm_watchset *w, int n);

/* zm_backend_watch(fd, events, token = fd) and record fd; 0 or -errno
 * (-ENOMEM: the list could not grow, fd is not watched). */
int zm_watchset_add(zm_watchset *w, zm_backend *b, int fd, unsigned events);

/* Unwatch fds[base..n) (zm_backend_unwatch_many) and truncate the list to
 * base. */
void zm_watchset_unwatch(zm_watchset *w, zm_backend *b, int base);

/* Release the list's memory (watches are left alone). */
void zm_watchset_free(zm_watchset *w);

/*
 * 0 if the named backend ("io_uring", "epoll", NULL = any) can be opened
 * here, else -errno; `reason` as for zm_backend_open.  The io_uring probe
 * opens a real ring (features, opcode probe, a NOP round trip) and closes
 * it.  Not cached: callers cache (and re-probe after fork).
 */
int zm_backend_probe(const char *name, char *reason, size_t reason_len);

/* The fork generation: 0 in the process that loaded zmtp, bumped in every
 * child by fork() (a pthread_atfork child handler, registered by the first
 * zm_fork_register() or backend open).  Whatever remembers a generation
 * other than this one belongs to a parent: its threads do not exist here
 * and its locks may be held forever. */
unsigned zm_fork_gen(void);
/* Register the handler (idempotent): 0 or -errno. */
int zm_fork_register(void);

/* ================================================================== */
/* Internal: for backend.c, ring.c and epoll.c only                   */
/* ================================================================== */
#ifdef ZM_BACKEND_IMPL

#include <poll.h>
#include <pthread.h>

#include "common.h"

/* Events that could not be returned yet, with their fd so that watch() and
 * unwatch() can drop them.  A FIFO in one array: v[head..tail). */
typedef struct zm__qev {
    zm_io_event ev;
    int fd;
} zm__qev;

typedef struct zm__evq {
    zm__qev *v;
    unsigned head, tail, cap;
} zm__evq;

/* How fini() may release: the owner cancels and reaps first; another
 * thread of the process only frees and closes; a forked child also leaves
 * alone whatever the parent marked MADV_DONTFORK (it is not mapped there). */
enum { ZM__FINI_OWNER, ZM__FINI_FOREIGN, ZM__FINI_CHILD };

typedef struct zm__backend_ops {
    const char *name;
    size_t size; /* of the backend's struct, which starts with zm_backend */
    /* b is zeroed with the common part filled; set up the rest. */
    int (*init)(zm_backend *b, unsigned entries, char *reason, size_t rlen);
    /* Release what init made (how: ZM__FINI_*). */
    void (*fini)(zm_backend *b, int how);
    int (*watch)(zm_backend *b, int fd, unsigned events, uint64_t token);
    int (*unwatch)(zm_backend *b, int fd, zm_io_event *recv_done);
    /* Optional: unwatch(fd, NULL) for each of fds[0..n), in fewer
     * syscalls (fds < 0 are skipped). */
    void (*unwatch_many)(zm_backend *b, const int *fds, int n);
    int (*recv)(zm_backend *b, int fd, void *buf, size_t len, uint64_t token);
    int (*wait)(zm_backend *b, zm_io_event *evs, int max, int64_t timeout_ns);
} zm__backend_ops;

/* The part every backend shares; backends embed it first. */
struct zm_backend {
    const zm__backend_ops *ops;
    pthread_t owner;   /* the opening thread */
    unsigned gen;      /* fork generation at open (backend.c) */
    int wake_fd;       /* eventfd, EFD_NONBLOCK|EFD_CLOEXEC */
    zm__evq q;         /* events kept for the next wait() */
};

extern const zm__backend_ops zm__ring_ops;
extern const zm__backend_ops zm__epoll_ops;

/* Write `fmt` into reason[0..len) if reason is not NULL. */
void zm__reason(char *reason, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Make room for `extra` more events (0 or -ENOMEM); push never fails after
 * a successful reserve of at least 1. */
int zm__evq_reserve(zm__evq *q, unsigned extra);
void zm__evq_push(zm__evq *q, int fd, const zm_io_event *ev);
/* Move up to max queued events to evs; returns how many. */
int zm__evq_pop(zm__evq *q, zm_io_event *evs, int max);
/* Drop the queued events of fd whose kind bit (1u << kind) is in kinds.
 * Returns 1 if a RECV event was among them (copied to *recv_done when not
 * NULL), else 0. */
int zm__evq_purge(zm__evq *q, int fd, unsigned kinds, zm_io_event *recv_done);
ZM_INLINE int zm__evq_len(const zm__evq *q) { return (int)(q->tail - q->head); }

/* "EPERM" for EPERM etc. for the errors a probe meets, else "errno N". */
const char *zm__errname(int err, char *buf, size_t len);

/* Reset the wake eventfd (read its counter). */
void zm__wake_drain(zm_backend *b);

/* Grow an array indexed by fd so that index `fd` exists; new slots zeroed.
 * 0 or -ENOMEM (the old array is kept). */
int zm__table_grow(void **tab, int *cap, int fd, size_t elt);

/* poll(2) bits <-> ZM_IO_* (epoll's EPOLLIN.. have the same values). */
ZM_INLINE unsigned zm__io_to_poll(unsigned io)
{
    return ((io & ZM_IO_IN) ? POLLIN : 0) | ((io & ZM_IO_OUT) ? POLLOUT : 0) |
           ((io & ZM_IO_ERR) ? POLLERR : 0) | ((io & ZM_IO_HUP) ? POLLHUP : 0);
}

ZM_INLINE unsigned zm__poll_to_io(unsigned p)
{
    return ((p & (POLLIN | POLLPRI | POLLRDHUP)) ? ZM_IO_IN : 0) |
           ((p & POLLOUT) ? ZM_IO_OUT : 0) | ((p & POLLERR) ? ZM_IO_ERR : 0) |
           ((p & POLLHUP) ? ZM_IO_HUP : 0);
}

#define ZM__IO_ALL (ZM_IO_IN | ZM_IO_OUT | ZM_IO_ERR | ZM_IO_HUP)
#define ZM__KIND_BIT(k) (1u << (k))

#endif /* ZM_BACKEND_IMPL */

#endif /* ZMTP_BACKEND_H */
