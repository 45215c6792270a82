/*
 * ring.c - the io_uring backend, on raw syscalls (no liburing).
 *
 * Tier: only kernels where io_uring_setup() accepts SINGLE_ISSUER |
 * DEFER_TASKRUN (Linux 6.1+, or a backport); everything else uses epoll
 * (docs/backends.md).  The ring belongs to the thread that created it: the
 * kernel answers -EEXIST to any other thread, and backend.c refuses such
 * calls before they get here.
 *
 * Requests and their completions.  Readiness is a one-shot POLL_ADD, a
 * receive is RECV (POLL_FIRST: the engine only submits one after its own
 * recv() said EAGAIN).  user_data packs (kind, seq, fd); a per-fd table
 * holds the tokens and counts the fd's requests whose CQE is not reaped
 * yet, so unwatch() can cancel by fd and wait for exactly those.  A poll
 * replaced by a new watch() is cancelled by user_data and its CQE, stale by
 * seq, is dropped.  The wake eventfd has a one-shot POLL_ADD of its own,
 * re-armed after each wake-up.
 *
 * Completions become events in wait(); those that do not fit the caller's
 * array stay in the CQ (or in the backend's queue when unwatch() had to
 * drain the CQ), so nothing is lost and nothing is reported twice.
 *
 * Memory ordering: pointers into memory shared with the kernel have a `k`
 * prefix; each barrier says who observes what.
 *
 * Layering: calls the zm__ helpers of backend.c (ZM_BACKEND_IMPL), common.h
 * and the kernel (io_uring_setup/enter/register, mmap); the kernel's
 * structures and constants are vendored in ring_abi.h.  Called only
 * through zm__ring_ops, by backend.c: no other file may call a ring_*
 * function or see a zm_ring.
 */
#define ZM_BACKEND_IMPL
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ring_abi.h"

/* ================================================================== */
/* Barriers (liburing's five names, on the __atomic builtins)         */
/* ================================================================== */

/* Relaxed: no ordering, but one untorn access the compiler cannot fold. */
#define READ_ONCE(var) __atomic_load_n(&(var), __ATOMIC_RELAXED)
#define WRITE_ONCE(var, val) __atomic_store_n(&(var), (val), __ATOMIC_RELAXED)
/* Release: every access before it is visible to whoever acquires the
 * value.  Acquire: every access after it sees what the releaser wrote. */
#define smp_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define smp_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
/* Full fence.  Only SQPOLL needs one (tail store vs NEED_WAKEUP load); we
 * do not use SQPOLL, so it is unused and kept for the vocabulary. */
#define smp_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)

/* ================================================================== */
/* Syscalls                                                           */
/* ================================================================== */

static int sys_setup(unsigned entries, struct zm_uring_params *p)
{
    long ret = syscall(__NR_io_uring_setup, entries, p);

    return ret < 0 ? -errno : (int)ret;
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete,
                     unsigned flags, void *arg, size_t argsz)
{
    long ret;

    ZM_COUNT(ZM_CNT_URING_ENTER);
    ret = syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags,
                  arg, argsz);

    return ret < 0 ? -errno : (int)ret;
}

static int sys_register(int fd, unsigned op, void *arg, unsigned nr)
{
    long ret = syscall(__NR_io_uring_register, fd, op, arg, nr);

    return ret < 0 ? -errno : (int)ret;
}

/* ================================================================== */
/* State                                                              */
/* ================================================================== */

/* user_data = kind:8 | 0:8 | seq:16 | fd:32 */
enum {
    UD_NOP = 1,            /* setup smoke test */
    UD_WAKE,               /* POLL_ADD on the wake eventfd */
    UD_POLL,               /* watch(): POLL_ADD, seq = fdent.poll_seq */
    UD_RECV,               /* recv(): RECV */
    UD_REPLACE_CANCEL,     /* watch() replacing a poll: cancel by user_data */
    UD_UNWATCH_CANCEL,     /* unwatch(): cancel by fd (or by user_data) */
    UD_CLOSE_CANCEL,       /* close(): cancel everything */
};

#define UD(kind, seq, fd)                                                  \
    (((uint64_t)(kind) << 56) | ((uint64_t)(uint16_t)(seq) << 32) |        \
     (uint64_t)(uint32_t)(fd))
#define UD_KIND(ud) ((unsigned)((ud) >> 56))
#define UD_SEQ(ud) ((uint16_t)((ud) >> 32))
#define UD_FD(ud) ((int)(uint32_t)(ud))

typedef struct ring_fdent {
    uint64_t poll_token;
    uint64_t recv_token;
    uint32_t inflight;       /* SQEs tagged with this fd, CQE not reaped */
    uint32_t poll_events;    /* POLL* of the live poll */
    int32_t cancel_res;      /* res of the last unwatch cancel */
    uint16_t poll_seq;       /* seq of the live (or last) poll */
    uint8_t poll_live;       /* a poll whose CQE will be reported */
    uint8_t recv_live;       /* a recv whose CQE will be reported */
    uint8_t unwatching;      /* inside unwatch(): drop -ECANCELED recv */
    uint8_t cancels;         /* unwatch cancels in flight */
} ring_fdent;

typedef struct zm_ring {
    zm_backend base;
    int ring_fd;
    unsigned setup_flags;
    unsigned features;

    /* SQ: k* point into the ring shared with the kernel */
    unsigned *ksq_head;   /* kernel writes (consumed SQEs) */
    unsigned *ksq_tail;   /* we write (published SQEs) */
    unsigned *ksq_flags;  /* kernel writes: CQ_OVERFLOW, TASKRUN */
    unsigned *ksq_array;  /* NULL with NO_SQARRAY */
    struct zm_uring_sqe *ksqes;
    unsigned sq_mask, sq_entries;
    unsigned sqe_tail;    /* local tail: next free SQE */

    /* CQ */
    unsigned *kcq_head;   /* we write (reaped CQEs) */
    unsigned *kcq_tail;   /* kernel writes (posted CQEs) */
    struct zm_uring_cqe *kcqes;
    unsigned cq_mask, cq_entries;

    /* mappings: 0 SQ ring, 1 CQ ring (unless SINGLE_MMAP), 2 SQE array */
    void *map[3];
    size_t map_len[3];
    unsigned dontfork;    /* bit i: map[i] is MADV_DONTFORK */

    unsigned inflight;    /* all SQEs whose CQE is not reaped yet */
    uint8_t wake_need_arm;
    uint8_t closing;
    uint8_t close_cancel_pending;
    uint8_t nop_done;
    int32_t nop_res;

    ring_fdent *fds;      /* indexed by fd */
    int nfds;
} zm_ring;

#define REQUIRED_FEATURES \
    (IORING_FEAT_NODROP | IORING_FEAT_FAST_POLL | IORING_FEAT_EXT_ARG)

/* ================================================================== */
/* Submission queue                                                   */
/* ================================================================== */

/* Publish the SQEs filled so far; returns how many the kernel has not
 * consumed yet. */
static unsigned ring_flush_sq(zm_ring *r)
{
    /* Release: the kernel reads the SQEs (and array[] slots) after it loads
     * the tail, so they must be visible before the new tail.  The syscall
     * that follows would order this too; release costs nothing on x86. */
    if (*r->ksq_tail != r->sqe_tail) /* we are its only writer */
        smp_store_release(r->ksq_tail, r->sqe_tail);
    /* The kernel moves the head only inside our own io_uring_enter (no
     * SQPOLL), which has returned: relaxed is enough. */
    return r->sqe_tail - READ_ONCE(*r->ksq_head);
}

static void ns_to_ts(int64_t ns, struct zm_kernel_timespec *ts)
{
    ts->tv_sec = ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
}

/*
 * Submit what is queued; with IORING_ENTER_GETEVENTS also run deferred
 * completions, flush overflowed CQEs and wait for min_complete of them, at
 * most *ts (NULL: no limit).  Returns io_uring_enter's result; *submitted
 * (if not NULL) gets how many SQEs were offered.
 */
static int ring_enter(zm_ring *r, unsigned min_complete, unsigned flags,
                      const struct zm_kernel_timespec *ts, unsigned *submitted)
{
    struct zm_uring_getevents_arg arg;
    unsigned to_submit = ring_flush_sq(r);
    void *argp = NULL;
    size_t argsz = 0;

    if (submitted != NULL)
        *submitted = to_submit;
    if (ts != NULL) {
        memset(&arg, 0, sizeof(arg));
        arg.ts = (uint64_t)(uintptr_t)ts;
        argp = &arg;
        argsz = sizeof(arg);
        flags |= IORING_ENTER_EXT_ARG;
    }
    return sys_enter(r->ring_fd, to_submit, min_complete, flags, argp, argsz);
}

enum { REAP_STOP, REAP_QUEUE, REAP_DISCARD };
static int ring_reap(zm_ring *r, zm_io_event *evs, int max, int mode,
                     int *saw);

/*
 * Take the next free SQE, zeroed.  When the SQ is full, submit first; when
 * the kernel refuses (-EBUSY/-EAGAIN: completions must be consumed
 * first), flush and move the CQ into the event queue, then retry.
 */
static int ring_get_sqe(zm_ring *r, struct zm_uring_sqe **out)
{
    struct zm_uring_sqe *sqe;
    int tries, ret, saw;

    for (tries = 0;; tries++) {
        /* Relaxed: see ring_flush_sq. */
        if (r->sqe_tail - READ_ONCE(*r->ksq_head) < r->sq_entries)
            break;
        if (tries == 8)
            return -EAGAIN;
        ret = ring_enter(r, 0, 0, NULL, NULL);
        if (ret == -EBUSY || ret == -EAGAIN) {
            ring_enter(r, 0, IORING_ENTER_GETEVENTS, NULL, NULL);
            ret = ring_reap(r, NULL, 0, REAP_QUEUE, &saw);
        }
        if (ret < 0 && ret != -EINTR)
            return ret;
    }
    sqe = &r->ksqes[r->sqe_tail & r->sq_mask];
    r->sqe_tail++;
    memset(sqe, 0, sizeof(*sqe));
    *out = sqe;
    return 0;
}

static void prep_poll(struct zm_uring_sqe *sqe, int fd, unsigned poll_events,
                      uint64_t ud)
{
    sqe->opcode = ZM_IORING_OP_POLL_ADD;
    sqe->fd = fd;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    /* the kernel swaps the halves back (compat with 16-bit poll_events) */
    poll_events = (poll_events << 16) | (poll_events >> 16);
#endif
    sqe->op_flags = poll_events; /* one-shot: no IORING_POLL_ADD_MULTI */
    sqe->user_data = ud;
}

static void prep_cancel(struct zm_uring_sqe *sqe, int fd, uint64_t target,
                        unsigned cancel_flags, uint64_t ud)
{
    sqe->opcode = ZM_IORING_OP_ASYNC_CANCEL;
    sqe->fd = fd;
    sqe->addr = target;
    sqe->op_flags = cancel_flags;
    sqe->user_data = ud;
}

static int ring_arm_wake(zm_ring *r)
{
    struct zm_uring_sqe *sqe;
    int ret = ring_get_sqe(r, &sqe);

    if (ret < 0)
        return ret;
    prep_poll(sqe, r->base.wake_fd, POLLIN, UD(UD_WAKE, 0, 0));
    r->inflight++;
    r->wake_need_arm = 0;
    return 0;
}

/* ================================================================== */
/* Completion queue                                                   */
/* ================================================================== */

/* Account for one CQE; returns 1 and fills *ev and *fd if it is an event. */
static int ring_complete(zm_ring *r, const struct zm_uring_cqe *cqe,
                         zm_io_event *ev, int *fd)
{
    uint64_t ud = cqe->user_data;
    unsigned kind = UD_KIND(ud);
    int32_t res = cqe->res;
    ring_fdent *e = NULL;

    r->inflight--;
    *fd = UD_FD(ud);
    if (kind >= UD_POLL && kind <= UD_UNWATCH_CANCEL) {
        if (*fd < 0 || *fd >= r->nfds)
            return 0; /* cannot happen: only tabled fds are tagged */
        e = &r->fds[*fd];
        e->inflight--;
    }
    switch (kind) {
    case UD_NOP:
        r->nop_done = 1;
        r->nop_res = res;
        return 0;
    case UD_WAKE:
        r->wake_need_arm = 1;
        if (res < 0 || r->closing)
            return 0;
        zm__wake_drain(&r->base);
        *fd = -1;
        *ev = (zm_io_event){.token = 0, .res = 0, .kind = ZM_IOK_WAKE};
        return 1;
    case UD_POLL:
        if (!e->poll_live || e->poll_seq != UD_SEQ(ud))
            return 0; /* replaced or unwatched */
        e->poll_live = 0;
        *ev = (zm_io_event){.token = e->poll_token,
                            .res = res < 0 ? res
                                           : (int32_t)zm__poll_to_io(
                                                 (unsigned)res),
                            .kind = ZM_IOK_READY};
        return 1;
    case UD_RECV:
        if (!e->recv_live)
            return 0;
        e->recv_live = 0;
        if (e->unwatching && res == -ECANCELED)
            return 0; /* cancelled: the buffer was not written */
        *ev = (zm_io_event){
            .token = e->recv_token, .res = res, .kind = ZM_IOK_RECV};
        return 1;
    case UD_REPLACE_CANCEL:
        return 0;
    case UD_UNWATCH_CANCEL:
        e->cancels--;
        e->cancel_res = res;
        return 0;
    case UD_CLOSE_CANCEL:
        r->close_cancel_pending = 0;
        return 0;
    }
    return 0;
}

/*
 * Consume CQEs.  Events go to evs[0..max); when that is full, REAP_STOP
 * leaves the remaining CQEs in the ring for the next call, REAP_QUEUE moves
 * them to the backend's queue (max may be 0), REAP_DISCARD drops them.
 * *saw is set if any CQE was consumed.  Returns the events stored in evs,
 * or -ENOMEM (REAP_QUEUE only; nothing consumed).
 */
static int ring_reap(zm_ring *r, zm_io_event *evs, int max, int mode,
                     int *saw)
{
    /* We are the only writer of the CQ head. */
    unsigned head = *r->kcq_head;
    /* Acquire: pairs with the kernel's release of the tail after it wrote
     * the CQEs; without it we could read a slot before its contents. */
    unsigned tail = smp_load_acquire(r->kcq_tail);
    int n = 0, ret, fd;
    zm_io_event ev;

    if (mode == REAP_QUEUE) {
        ret = zm__evq_reserve(&r->base.q, tail - head);
        if (ret < 0)
            return ret;
    }
    for (; head != tail; head++) {
        if (mode == REAP_STOP && n == max)
            break;
        *saw = 1;
        if (!ring_complete(r, &r->kcqes[head & r->cq_mask], &ev, &fd))
            continue;
        if (n < max)
            evs[n++] = ev;
        else if (mode == REAP_QUEUE)
            zm__evq_push(&r->base.q, fd, &ev);
    }
    /* Release: our reads of the consumed CQEs happen before the kernel
     * sees their slots free and overwrites them. */
    smp_store_release(r->kcq_head, head);
    return n;
}

/* ================================================================== */
/* Setup and teardown                                                 */
/* ================================================================== */

static void ring_unmap(zm_ring *r, int how)
{
    for (int i = 0; i < 3; i++) {
        if (r->map[i] == NULL)
            continue;
        /* In a forked child a MADV_DONTFORK range is not mapped: something
         * else of the child's may live there now. */
        if (how != ZM__FINI_CHILD || !(r->dontfork & (1u << i)))
            munmap(r->map[i], r->map_len[i]);
        r->map[i] = NULL;
    }
}

static int ring_map_one(zm_ring *r, int i, size_t len, uint64_t off)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, r->ring_fd, (off_t)off);

    if (p == MAP_FAILED)
        return -errno;
    r->map[i] = p;
    r->map_len[i] = len;
    /* The child of a fork must never write the parent's rings (they are
     * MAP_SHARED), and need not copy the page tables: as liburing's
     * io_uring_ring_dontfork.  Best effort. */
    if (madvise(p, len, MADV_DONTFORK) == 0)
        r->dontfork |= 1u << i;
    return 0;
}

static int ring_map(zm_ring *r, const struct zm_uring_params *p)
{
    size_t sq_len, cq_len;
    char *sq, *cq;
    int ret;

    sq_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
    cq_len = p->cq_off.cqes + p->cq_entries * sizeof(struct zm_uring_cqe);
    if (p->features & IORING_FEAT_SINGLE_MMAP) {
        if (cq_len > sq_len)
            sq_len = cq_len;
        ret = ring_map_one(r, 0, sq_len, IORING_OFF_SQ_RING);
        if (ret < 0)
            return ret;
        cq = r->map[0];
    } else {
        ret = ring_map_one(r, 0, sq_len, IORING_OFF_SQ_RING);
        if (ret < 0)
            return ret;
        ret = ring_map_one(r, 1, cq_len, IORING_OFF_CQ_RING);
        if (ret < 0)
            return ret;
        cq = r->map[1];
    }
    ret = ring_map_one(r, 2, p->sq_entries * sizeof(struct zm_uring_sqe),
                       IORING_OFF_SQES);
    if (ret < 0)
        return ret;
    sq = r->map[0];

    r->ksq_head = (unsigned *)(sq + p->sq_off.head);
    r->ksq_tail = (unsigned *)(sq + p->sq_off.tail);
    r->ksq_flags = (unsigned *)(sq + p->sq_off.flags);
    r->sq_mask = *(unsigned *)(sq + p->sq_off.ring_mask);
    r->sq_entries = *(unsigned *)(sq + p->sq_off.ring_entries);
    r->ksqes = r->map[2];
    r->sqe_tail = *r->ksq_tail;
    if (!(r->setup_flags & IORING_SETUP_NO_SQARRAY)) {
        r->ksq_array = (unsigned *)(sq + p->sq_off.array);
        /* Identity map, written once.  Relaxed: the kernel reads a slot
         * only after acquiring a tail we publish with release later. */
        for (unsigned i = 0; i < r->sq_entries; i++)
            WRITE_ONCE(r->ksq_array[i], i);
    }
    r->kcq_head = (unsigned *)(cq + p->cq_off.head);
    r->kcq_tail = (unsigned *)(cq + p->cq_off.tail);
    r->cq_mask = *(unsigned *)(cq + p->cq_off.ring_mask);
    r->cq_entries = *(unsigned *)(cq + p->cq_off.ring_entries);
    r->kcqes = (struct zm_uring_cqe *)(cq + p->cq_off.cqes);
    return 0;
}

static void explain_setup_error(int err, char *reason, size_t rlen)
{
    char buf[32];
    int disabled = -1;
    FILE *f;

    switch (err) {
    case -EPERM:
    case -EACCES:
        /* Only to word the diagnosis: seccomp is invisible here. */
        f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
        if (f != NULL) {
            if (fscanf(f, "%d", &disabled) != 1)
                disabled = -1;
            fclose(f);
        }
        if (disabled == 2)
            zm__reason(reason, rlen,
                       "io_uring: %s (sysctl kernel.io_uring_disabled=2)",
                       zm__errname(err, buf, sizeof(buf)));
        else if (disabled == 1)
            zm__reason(reason, rlen,
                       "io_uring: %s (sysctl kernel.io_uring_disabled=1: "
                       "needs CAP_SYS_ADMIN or kernel.io_uring_group)",
                       zm__errname(err, buf, sizeof(buf)));
        else
            zm__reason(reason, rlen,
                       "io_uring: %s (seccomp filter, e.g. docker/containerd "
                       "default profile, or an LSM)",
                       zm__errname(err, buf, sizeof(buf)));
        break;
    case -ENOSYS:
        zm__reason(reason, rlen,
                   "io_uring: ENOSYS (kernel without CONFIG_IO_URING, or a "
                   "seccomp filter answering ENOSYS)");
        break;
    case -EINVAL:
        zm__reason(reason, rlen,
                   "io_uring: EINVAL for SINGLE_ISSUER|DEFER_TASKRUN (kernel "
                   "older than 6.1)");
        break;
    case -ENOMEM:
        zm__reason(reason, rlen,
                   "io_uring: ENOMEM (memory, or RLIMIT_MEMLOCK on kernels "
                   "<= 5.11)");
        break;
    default:
        zm__reason(reason, rlen, "io_uring: io_uring_setup: %s (%s)",
                   zm__errname(err, buf, sizeof(buf)), strerror(-err));
        break;
    }
}

/* IORING_REGISTER_PROBE: every opcode we use now or will (ACCEPT, CONNECT,
 * SEND) must be there.  A profile may allow setup and refuse register. */
static int ring_check_ops(zm_ring *r, char *reason, size_t rlen)
{
    static const struct {
        uint8_t op;
        const char *name;
    } need[] = {
        {ZM_IORING_OP_NOP, "NOP"},
        {ZM_IORING_OP_POLL_ADD, "POLL_ADD"},
        {ZM_IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
        {ZM_IORING_OP_RECV, "RECV"},
        {ZM_IORING_OP_SEND, "SEND"},
        {ZM_IORING_OP_ACCEPT, "ACCEPT"},
        {ZM_IORING_OP_CONNECT, "CONNECT"},
    };
    struct zm_uring_probe pr;
    char buf[32];
    int ret;

    memset(&pr, 0, sizeof(pr));
    ret = sys_register(r->ring_fd, ZM_IORING_REGISTER_PROBE, &pr,
                       ZM_PROBE_OPS);
    if (ret < 0) {
        zm__reason(reason, rlen, "io_uring: io_uring_register(PROBE): %s",
                   zm__errname(ret, buf, sizeof(buf)));
        return ret;
    }
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        if (need[i].op > pr.last_op ||
            !(pr.ops[need[i].op].flags & IO_URING_OP_SUPPORTED)) {
            zm__reason(reason, rlen, "io_uring: opcode %s not supported",
                       need[i].name);
            return -EOPNOTSUPP;
        }
    }
    return 0;
}

/* Arm the wake poll and round-trip a NOP in one enter: catches sandboxes
 * that let setup and register through but not enter. */
static int ring_smoke(zm_ring *r, char *reason, size_t rlen)
{
    struct zm_kernel_timespec ts = {.tv_sec = 1, .tv_nsec = 0};
    struct zm_uring_sqe *sqe;
    char buf[32];
    int ret, saw, tries;

    ret = ring_arm_wake(r);
    if (ret < 0)
        goto err;
    ret = ring_get_sqe(r, &sqe);
    if (ret < 0)
        goto err;
    sqe->opcode = ZM_IORING_OP_NOP;
    sqe->user_data = UD(UD_NOP, 0, 0);
    r->inflight++;
    for (tries = 0; !r->nop_done && tries < 3; tries++) {
        ret = ring_enter(r, 1, IORING_ENTER_GETEVENTS, &ts, NULL);
        if (ret < 0 && ret != -EINTR && ret != -ETIME)
            goto err;
        ret = ring_reap(r, NULL, 0, REAP_QUEUE, &saw);
        if (ret < 0)
            goto err;
    }
    ret = !r->nop_done ? -ETIME : r->nop_res < 0 ? r->nop_res : 0;
    if (ret < 0)
        goto err;
    return 0;

err:
    zm__reason(reason, rlen, "io_uring: NOP smoke test failed: %s",
               zm__errname(ret, buf, sizeof(buf)));
    return ret;
}

static int ring_init(zm_backend *b, unsigned entries, char *reason,
                     size_t rlen)
{
    /* Newest first; EINVAL (and only EINVAL) means "older kernel": drop
     * NO_SQARRAY (6.6).  Without SINGLE_ISSUER|DEFER_TASKRUN (6.1) we
     * stop, and the caller uses epoll. */
    static const unsigned tiers[] = {
        IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
            IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_NO_SQARRAY,
        IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
            IORING_SETUP_TASKRUN_FLAG,
    };
    zm_ring *r = (zm_ring *)b;
    struct zm_uring_params p;
    char buf[32];
    int ret = -EINVAL;

    r->ring_fd = -1;
    if (entries > 4096)
        entries = 4096;
    for (size_t i = 0; i < sizeof(tiers) / sizeof(tiers[0]); i++) {
        memset(&p, 0, sizeof(p));
        p.flags = tiers[i];
        p.cq_entries = entries * 4;
        ret = sys_setup(entries, &p);
        if (ret != -EINVAL)
            break;
    }
    if (ret < 0) {
        explain_setup_error(ret, reason, rlen);
        goto err;
    }
    r->ring_fd = ret;
    r->setup_flags = p.flags;
    r->features = p.features;
    if ((p.features & REQUIRED_FEATURES) != REQUIRED_FEATURES) {
        zm__reason(reason, rlen,
                   "io_uring: kernel lacks features 0x%x (needs NODROP, "
                   "FAST_POLL, EXT_ARG)",
                   REQUIRED_FEATURES & ~p.features);
        ret = -EOPNOTSUPP;
        goto err;
    }
    ret = ring_map(r, &p);
    if (ret < 0) {
        zm__reason(reason, rlen, "io_uring: mmap of the rings: %s",
                   zm__errname(ret, buf, sizeof(buf)));
        goto err;
    }
    ret = ring_check_ops(r, reason, rlen);
    if (ret < 0)
        goto err;
    ret = ring_smoke(r, reason, rlen);
    if (ret < 0)
        goto err;
    zm__reason(reason, rlen,
               "io_uring: SINGLE_ISSUER|DEFER_TASKRUN%s ring, %u/%u entries, "
               "features 0x%x",
               (p.flags & IORING_SETUP_NO_SQARRAY) ? "|NO_SQARRAY" : "",
               r->sq_entries, r->cq_entries, p.features);
    return 0;

err:
    /* Closing the ring fd cancels whatever the smoke test left armed (only
     * the wake poll: no caller buffer is involved yet). */
    ring_unmap(r, ZM__FINI_OWNER);
    if (r->ring_fd >= 0)
        close(r->ring_fd);
    r->ring_fd = -1;
    return ret;
}

/* close(): cancel everything, reap until no CQE is owed, so that no
 * caller buffer is written after we return. */
static void ring_cancel_all(zm_ring *r)
{
    struct zm_kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 100000000};
    struct zm_uring_sqe *sqe;
    int ret, saw, rounds = 0;

    r->closing = 1;
    while (r->inflight > 0 && rounds++ < 50) {
        if (!r->close_cancel_pending) {
            if (ring_get_sqe(r, &sqe) < 0)
                break;
            prep_cancel(sqe, -1, 0,
                        IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL,
                        UD(UD_CLOSE_CANCEL, 0, 0));
            r->inflight++;
            r->close_cancel_pending = 1;
        }
        ret = ring_enter(r, 1, IORING_ENTER_GETEVENTS, &ts, NULL);
        if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EBUSY &&
            ret != -EAGAIN)
            break;
        ring_reap(r, NULL, 0, REAP_DISCARD, &saw);
    }
}

static void ring_fini(zm_backend *b, int how)
{
    zm_ring *r = (zm_ring *)b;

    /* Only the owner may enter the ring.  Elsewhere closing the fd makes
     * the kernel cancel the requests when the ring is released. */
    if (how == ZM__FINI_OWNER && r->ring_fd >= 0)
        ring_cancel_all(r);
    ring_unmap(r, how);
    if (r->ring_fd >= 0)
        close(r->ring_fd);
    r->ring_fd = -1;
    free(r->fds);
    r->fds = NULL;
}

/* ================================================================== */
/* Operations                                                         */
/* ================================================================== */

static int ring_fdent_get(zm_ring *r, int fd, ring_fdent **out)
{
    int ret;

    if (fd == r->ring_fd)
        return -EINVAL;
    ret = zm__table_grow((void **)&r->fds, &r->nfds, fd, sizeof(ring_fdent));
    if (ret < 0)
        return ret;
    *out = &r->fds[fd];
    return 0;
}

static int ring_watch(zm_backend *b, int fd, unsigned events, uint64_t token)
{
    zm_ring *r = (zm_ring *)b;
    unsigned pev = zm__io_to_poll(events);
    struct zm_uring_sqe *sqe;
    ring_fdent *e;
    int ret;

    ret = ring_fdent_get(r, fd, &e);
    if (ret < 0)
        return ret;
    /* Replace: an old READY not yet returned goes with its interest. */
    zm__evq_purge(&b->q, fd, ZM__KIND_BIT(ZM_IOK_READY), NULL);
    if (e->poll_live) {
        if (e->poll_events == pev) {
            e->poll_token = token; /* same poll, reported with new token */
            return 0;
        }
        ret = ring_get_sqe(r, &sqe);
        if (ret < 0)
            return ret;
        prep_cancel(sqe, -1, UD(UD_POLL, e->poll_seq, fd), 0,
                    UD(UD_REPLACE_CANCEL, 0, fd));
        e->inflight++;
        r->inflight++;
        e->poll_live = 0; /* its CQE, whatever it says, is now stale */
    }
    ret = ring_get_sqe(r, &sqe);
    if (ret < 0)
        return ret;
    e->poll_seq++;
    prep_poll(sqe, fd, pev, UD(UD_POLL, e->poll_seq, fd));
    e->inflight++;
    r->inflight++;
    e->poll_live = 1;
    e->poll_events = pev;
    e->poll_token = token;
    return 0;
}

static int ring_recv(zm_backend *b, int fd, void *buf, size_t len,
                     uint64_t token)
{
    zm_ring *r = (zm_ring *)b;
    struct zm_uring_sqe *sqe;
    ring_fdent *e;
    int ret;

    ret = ring_fdent_get(r, fd, &e);
    if (ret < 0)
        return ret;
    if (e->recv_live)
        return -EBUSY;
    ret = ring_get_sqe(r, &sqe);
    if (ret < 0)
        return ret;
    sqe->opcode = ZM_IORING_OP_RECV;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)buf;
    sqe->len = (uint32_t)len;
    /* The engine calls us after its own recv() said EAGAIN: arm the poll
     * before trying, instead of one more doomed attempt at submit. */
    sqe->ioprio = IORING_RECVSEND_POLL_FIRST;
    sqe->user_data = UD(UD_RECV, 0, fd);
    e->inflight++;
    r->inflight++;
    e->recv_live = 1;
    e->recv_token = token;
    return 0;
}

static int ring_queue_unwatch_cancel(zm_ring *r, int fd, ring_fdent *e,
                                     int by_user_data)
{
    struct zm_uring_sqe *sqe;
    int ret;

    if (!by_user_data) {
        ret = ring_get_sqe(r, &sqe);
        if (ret < 0)
            return ret;
        prep_cancel(sqe, fd, 0,
                    IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL,
                    UD(UD_UNWATCH_CANCEL, 0, fd));
        e->inflight++;
        e->cancels++;
        r->inflight++;
        return 0;
    }
    /* The fd is closed already (cancel by fd said -EBADF) or something
     * resisted: name the requests instead. */
    for (int i = 0; i < 2; i++) {
        ret = ring_get_sqe(r, &sqe);
        if (ret < 0)
            return ret;
        prep_cancel(sqe, -1,
                    i == 0 ? UD(UD_POLL, e->poll_seq, fd) : UD(UD_RECV, 0, fd),
                    IORING_ASYNC_CANCEL_ALL, UD(UD_UNWATCH_CANCEL, 0, fd));
        e->inflight++;
        e->cancels++;
        r->inflight++;
    }
    return 0;
}

static int ring_unwatch(zm_backend *b, int fd, zm_io_event *recv_done)
{
    struct zm_kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 100000000};
    zm_ring *r = (zm_ring *)b;
    ring_fdent *e;
    int ret = 0, rret, saw, rounds = 0, issued = 0;

    if (fd >= r->nfds)
        goto out;
    e = &r->fds[fd];
    e->poll_live = 0; /* any poll CQE of fd is stale from now on */
    e->unwatching = 1;
    e->cancel_res = 0;
    while (e->inflight > 0) {
        if (e->cancels == 0) {
            /* (Re)issue: first by fd; after that alternate, in case the
             * fd was closed under us (-EBADF) or a request resisted. */
            if (issued >= 50) {
                ret = -EBUSY;
                break;
            }
            ret = ring_queue_unwatch_cancel(
                r, fd, e, issued > 0 && (e->cancel_res == -EBADF || issued & 1));
            if (ret < 0)
                break;
            issued++;
        }
        ret = ring_enter(r, 1, IORING_ENTER_GETEVENTS, &ts, NULL);
        rret = ring_reap(r, NULL, 0, REAP_QUEUE, &saw);
        if (rret < 0) {
            ret = rret;
            break;
        }
        if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EBUSY &&
            ret != -EAGAIN)
            break;
        ret = 0;
        if (++rounds > 200) {
            ret = -EBUSY;
            break;
        }
    }
    e->unwatching = 0;
    if (ret < 0)
        return ret;
out:
    return zm__evq_purge(&b->q, fd,
                         ZM__KIND_BIT(ZM_IOK_READY) |
                             ZM__KIND_BIT(ZM_IOK_RECV),
                         recv_done);
}

/* Does any of fds[0..n) still owe CQEs? */
static int ring_any_inflight(const zm_ring *r, const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0 && fds[i] < r->nfds && r->fds[fds[i]].inflight > 0)
            return 1;
    return 0;
}

/*
 * unwatch() of many fds: the cancels of up to RING_UNWATCH_BATCH fds go in
 * one submission and are reaped together, one io_uring_enter (or a few) a
 * batch where unwatch() makes one per fd: a wait that watched 5 000
 * descriptors unwatches them in ~160 syscalls, not 5 000.  Each fd then
 * goes through ring_unwatch(), which costs no syscall once nothing of it
 * is in flight, and otherwise re-issues and waits as for one fd; it also
 * drops the fd's queued events.  Receive events are dropped (as unwatch()
 * with recv_done NULL).
 */
#define RING_UNWATCH_BATCH 32 /* two CQEs each (cancel, poll): < the CQ */

static void ring_unwatch_many(zm_backend *b, const int *fds, int n)
{
    struct zm_kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 100000000};
    zm_ring *r = (zm_ring *)b;
    int saw, ret;

    for (int i = 0; i < n; i += RING_UNWATCH_BATCH) {
        int m = n - i < RING_UNWATCH_BATCH ? n - i : RING_UNWATCH_BATCH;
        for (int j = i; j < i + m; j++) {
            struct zm_uring_sqe *sqe;
            ring_fdent *e;
            int fd = fds[j], only_poll;
            if (fd < 0 || fd >= r->nfds)
                continue;
            e = &r->fds[fd];
            only_poll = e->poll_live && e->inflight == 1 && !e->recv_live &&
                        e->cancels == 0;
            e->poll_live = 0; /* any poll CQE of fd is stale from now on */
            e->unwatching = 1;
            e->cancel_res = 0;
            if (e->inflight == 0 || e->cancels > 0)
                continue;
            if (!only_poll) {
                if (ring_queue_unwatch_cancel(r, fd, e, 0) < 0)
                    break; /* ring_unwatch below retries this one */
                continue;
            }
            /* The usual case: one poll.  Cancel it by its user_data, which
             * the kernel finds in its hash table; a cancel by fd walks
             * every request of the ring, so 5 000 of them cost O(n^2). */
            if (ring_get_sqe(r, &sqe) < 0)
                break;
            prep_cancel(sqe, -1, UD(UD_POLL, e->poll_seq, fd), 0,
                        UD(UD_UNWATCH_CANCEL, 0, fd));
            e->inflight++;
            e->cancels++;
            r->inflight++;
        }
        for (int rounds = 0;
             rounds < 200 && ring_any_inflight(r, fds + i, m); rounds++) {
            ret = ring_enter(r, 1, IORING_ENTER_GETEVENTS, &ts, NULL);
            if (ring_reap(r, NULL, 0, REAP_QUEUE, &saw) < 0)
                break;
            if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EBUSY &&
                ret != -EAGAIN)
                break;
        }
        for (int j = i; j < i + m; j++)
            if (fds[j] >= 0)
                ring_unwatch(b, fds[j], NULL);
    }
}

static int ring_wait(zm_backend *b, zm_io_event *evs, int max,
                     int64_t timeout_ns)
{
    zm_ring *r = (zm_ring *)b;
    struct zm_kernel_timespec ts;
    int64_t deadline = 0, left;
    unsigned to_submit, min;
    int n, ret, saw = 0, retries = 0;

    n = zm__evq_pop(&b->q, evs, max);
    n += ring_reap(r, evs + n, max - n, REAP_STOP, &saw);
    if (n > 0)
        return n;
    if (timeout_ns > 0)
        deadline = zm_now_ns() + timeout_ns;
    for (;;) {
        const struct zm_kernel_timespec *tsp = NULL;

        if (r->wake_need_arm) {
            ret = ring_arm_wake(r);
            if (ret < 0)
                return ret;
        }
        min = timeout_ns == 0 ? 0 : 1;
        if (timeout_ns > 0) {
            left = deadline - zm_now_ns();
            if (left <= 0) {
                min = 0;
                timeout_ns = 0; /* time is up: one last poll */
            } else {
                ns_to_ts(left, &ts);
                tsp = &ts;
            }
        }
        /* A poll enters only when there is something to submit, deferred
         * completions to run (TASKRUN) or overflowed CQEs to flush.
         * Relaxed: a hint; the syscall orders the rest. */
        if (min == 0 && r->sqe_tail == READ_ONCE(*r->ksq_head) &&
            !(READ_ONCE(*r->ksq_flags) &
              (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)))
            return 0;
        ret = ring_enter(r, min, IORING_ENTER_GETEVENTS, tsp, &to_submit);
        saw = 0;
        n = ring_reap(r, evs, max, REAP_STOP, &saw);
        if (n > 0)
            return n;
        if (ret == -EINTR)
            return -EINTR;
        if (ret == -EBUSY || ret == -EAGAIN) {
            if (++retries > 16)
                return ret;
            continue; /* the reap above made room; retry */
        }
        if (ret == -ETIME)
            return 0;
        if (ret < 0)
            return ret;
        if (min == 0)
            return 0;
        if (saw)
            continue; /* internal completions only */
        if ((unsigned)ret < to_submit) {
            /* a short submit: the kernel then skips the wait */
            if (++retries > 16)
                return -EAGAIN;
            continue;
        }
        if (to_submit > 0) {
            /* After submitting, io_uring_enter returns the submit count
             * and drops the wait's own -ETIME/-EINTR: with no completion
             * at all, the clock tells a timeout from a signal. */
            if (timeout_ns > 0 && zm_now_ns() >= deadline)
                return 0;
            return -EINTR;
        }
        /* 0 without completions: spurious, wait again (deadline above) */
    }
}

const zm__backend_ops zm__ring_ops = {
    .name = "io_uring",
    .size = sizeof(zm_ring),
    .init = ring_init,
    .fini = ring_fini,
    .watch = ring_watch,
    .unwatch = ring_unwatch,
    .unwatch_many = ring_unwatch_many,
    .recv = ring_recv,
    .wait = ring_wait,
};
