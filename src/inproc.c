/*
 * inproc.c - in-memory pipes and mailboxes (see inproc.h, which also gives
 * the layering: calls msg, common.h, pthread and eventfd only).
 *
 * Lock order: a pipe's lock is never held while a mailbox's lock is taken
 * or a mailbox is signalled; signals go after the unlock (the pipe keeps
 * its mailboxes alive with a reference each, so they cannot go away
 * meanwhile).
 */
#include "inproc.h"
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct zm_pipe {
    int refs;              /* atomic: one per end not yet detached */
    pthread_mutex_t lock;  /* guards q[], mb[], the ends' metadata */
    zm_msgq q[2];          /* q[k]: written by end k, read by end 1-k */
    size_t queued[2];      /* atomic: q[k].n, for a look without the lock */
    size_t inflight[2];    /* atomic: written by k, not yet consumed */
    size_t hwm[2];         /* atomic (relaxed): limit of inflight[k], 0 none */
    int gone[2];           /* atomic: end k detached */
    int set[2];            /* end k attached to a socket (under lock) */
    int hwm_known[2];      /* end k's HWMs are known (set, or preset) */
    int attached;          /* atomic: both ends set */
    zm_mailbox *mb[2];     /* end k's socket's mailbox (a reference) */
    int type[2];
    int sndhwm[2], rcvhwm[2];
    unsigned char rid[2][255];
    size_t rid_len[2];
};

/* ------------------------------------------------------------------ */
/* Mailbox                                                            */
/* ------------------------------------------------------------------ */

zm_mailbox *zm_mailbox_new(void)
{
    zm_mailbox *mb = zm_calloc(1, sizeof(*mb));

    if (mb == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (mb->efd < 0) {
        int e = errno;
        free(mb);
        errno = e;
        return NULL;
    }
    pthread_mutex_init(&mb->lock, NULL);
    mb->refs = 1;
    return mb;
}

void zm_mailbox_ref(zm_mailbox *mb)
{
    /* Relaxed: a new reference is made from one already held. */
    __atomic_add_fetch(&mb->refs, 1, __ATOMIC_RELAXED);
}

static void inbox_free(zm_inbox_item *it)
{
    while (it != NULL) {
        zm_inbox_item *next = it->next;
        zm_pipe_detach(it->pipe, 1);
        free(it);
        it = next;
    }
}

void zm_mailbox_unref(zm_mailbox *mb)
{
    /* acq_rel: the last holder sees every other holder's writes done
     * before it frees (as a page's decref). */
    if (__atomic_sub_fetch(&mb->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    inbox_free(mb->inbox);
    close(mb->efd);
    pthread_mutex_destroy(&mb->lock);
    free(mb);
}

void zm_mailbox_close(zm_mailbox *mb)
{
    zm_inbox_item *items;

    pthread_mutex_lock(&mb->lock);
    mb->closed = 1;
    items = mb->inbox;
    mb->inbox = NULL;
    pthread_mutex_unlock(&mb->lock);
    inbox_free(items);
}

void zm_mailbox_signal(zm_mailbox *mb)
{
    uint64_t one = 1;

    /* seq_cst, both: pairs with zm_mailbox_arm's seq_cst store of `armed`
     * and load of `seq` (a Dekker pair): either the owner sees the new
     * seq and does not sleep, or we see `armed` and wake it. */
    __atomic_add_fetch(&mb->seq, 1, __ATOMIC_SEQ_CST);
    if (__atomic_exchange_n(&mb->armed, 0, __ATOMIC_SEQ_CST)) {
        ZM_COUNT(ZM_CNT_EVENTFD);
        /* EAGAIN only when the counter is near overflow: it is readable
         * then anyway. */
        (void)!write(mb->efd, &one, sizeof(one));
    }
}

uint64_t zm_mailbox_seq(zm_mailbox *mb)
{
    /* Acquire: what the signaller did before its bump (a message queued,
     * a pipe attached) is visible to the step that follows this read. */
    return __atomic_load_n(&mb->seq, __ATOMIC_ACQUIRE);
}

int zm_mailbox_arm(zm_mailbox *mb, uint64_t seen)
{
    /* seq_cst: see zm_mailbox_signal. */
    __atomic_store_n(&mb->armed, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&mb->seq, __ATOMIC_SEQ_CST) != seen) {
        zm_mailbox_disarm(mb, 0);
        return 1;
    }
    return 0;
}

void zm_mailbox_disarm(zm_mailbox *mb, int fired)
{
    uint64_t v;

    /* Relaxed: only this thread and signallers touch `armed`, and what a
     * signaller did is read through `seq` (acquire) at the next step. */
    __atomic_store_n(&mb->armed, 0, __ATOMIC_RELAXED);
    if (fired) {
        /* Drain it, or every later wait would return at once.  A signal
         * that took `armed` but has not written yet makes one later wait
         * return early, and that wait drains it. */
        ZM_COUNT(ZM_CNT_EVENTFD);
        (void)!read(mb->efd, &v, sizeof(v));
    }
}

void zm_mailbox_rearm(zm_mailbox *mb, uint64_t seen)
{
    uint64_t v;

    /* seq_cst: as zm_mailbox_arm (a Dekker pair with zm_mailbox_signal). */
    if (!__atomic_exchange_n(&mb->armed, 1, __ATOMIC_SEQ_CST)) {
        /* Disarmed by a wait, or taken by a signaller that wrote (or is
         * writing) the eventfd: drain, and let the check below decide. */
        ZM_COUNT(ZM_CNT_EVENTFD);
        (void)!read(mb->efd, &v, sizeof(v));
    }
    if (__atomic_load_n(&mb->seq, __ATOMIC_SEQ_CST) != seen)
        zm_mailbox_signal(mb); /* not seen by the last step: look again */
}

int zm_mailbox_offer(zm_mailbox *mb, zm_pipe *p, const char *endpoint)
{
    zm_inbox_item *it = zm_calloc(1, sizeof(*it)), **pp;

    if (it == NULL)
        return -ENOMEM;
    it->pipe = p;
    snprintf(it->endpoint, sizeof(it->endpoint), "%s", endpoint);
    pthread_mutex_lock(&mb->lock);
    if (mb->closed) {
        pthread_mutex_unlock(&mb->lock);
        free(it);
        return -ECONNREFUSED;
    }
    for (pp = &mb->inbox; *pp != NULL; pp = &(*pp)->next)
        ; /* oldest first: connection order is round-robin order */
    /* Relaxed: read unlocked only as a hint (zm_mailbox_take). */
    __atomic_store_n(pp, it, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&mb->lock);
    zm_mailbox_signal(mb);
    return 0;
}

zm_inbox_item *zm_mailbox_take(zm_mailbox *mb)
{
    zm_inbox_item *items;

    /* Unlocked peek first: the common case (nothing offered) takes no
     * lock.  Relaxed is enough: an offer bumps seq after adding its item,
     * and the step that calls this read seq with acquire before. */
    if (__atomic_load_n(&mb->inbox, __ATOMIC_RELAXED) == NULL)
        return NULL;
    pthread_mutex_lock(&mb->lock);
    items = mb->inbox;
    __atomic_store_n(&mb->inbox, NULL, __ATOMIC_RELAXED); /* as above */
    pthread_mutex_unlock(&mb->lock);
    return items;
}

/* ------------------------------------------------------------------ */
/* Pipe                                                               */
/* ------------------------------------------------------------------ */

zm_pipe *zm_pipe_new(void)
{
    zm_pipe *p = zm_calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    p->refs = 2;
    return p;
}

pthread_mutex_t *zm__pipe_mutex(zm_pipe *p)
{
    return &p->lock;
}

static void pipe_free(zm_pipe *p)
{
    for (int k = 0; k < 2; k++) {
        zm_msgq_free(&p->q[k]);
        if (p->mb[k] != NULL)
            zm_mailbox_unref(p->mb[k]);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* libzmq's inproc pipe: the writer's SNDHWM plus the reader's RCVHWM, no
 * limit if either is 0; before the reader is known, the writer's own. */
static size_t pipe_hwm(const zm_pipe *p, int k)
{
    if (p->sndhwm[k] <= 0)
        return 0;
    if (!p->hwm_known[1 - k])
        return (size_t)p->sndhwm[k];
    if (p->rcvhwm[1 - k] <= 0)
        return 0;
    return (size_t)p->sndhwm[k] + (size_t)p->rcvhwm[1 - k];
}

void zm_pipe_set_end(zm_pipe *p, int end, zm_mailbox *mb, int type,
                     const unsigned char *rid, size_t rid_len, int sndhwm,
                     int rcvhwm)
{
    zm_mailbox *peer = NULL;
    int both;

    zm_mailbox_ref(mb);
    pthread_mutex_lock(&p->lock);
    p->mb[end] = mb;
    p->type[end] = type;
    if (rid_len > sizeof(p->rid[end]))
        rid_len = sizeof(p->rid[end]);
    memcpy(p->rid[end], rid, rid_len);
    p->rid_len[end] = rid_len;
    p->sndhwm[end] = sndhwm;
    p->rcvhwm[end] = rcvhwm;
    p->set[end] = 1;
    p->hwm_known[end] = 1;
    /* Relaxed: a limit the writer reads as a hint before each message; a
     * stale value lets one message more or less through at the attach. */
    __atomic_store_n(&p->hwm[0], pipe_hwm(p, 0), __ATOMIC_RELAXED);
    __atomic_store_n(&p->hwm[1], pipe_hwm(p, 1), __ATOMIC_RELAXED);
    both = p->set[0] && p->set[1];
    if (both) {
        peer = p->mb[1 - end];
        /* Release: the peer's zm_pipe_attached (acquire) sees our type,
         * id and mailbox. */
        __atomic_store_n(&p->attached, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&p->lock);
    if (peer != NULL)
        zm_mailbox_signal(peer);
    /* Messages the peer queued before we came are waiting: our own step
     * pulls them (the caller is in it). */
}

void zm_pipe_preset_hwm(zm_pipe *p, int end, int sndhwm, int rcvhwm)
{
    pthread_mutex_lock(&p->lock);
    if (!p->set[end]) {
        p->sndhwm[end] = sndhwm;
        p->rcvhwm[end] = rcvhwm;
        p->hwm_known[end] = 1;
        /* Relaxed: as in zm_pipe_set_end. */
        __atomic_store_n(&p->hwm[0], pipe_hwm(p, 0), __ATOMIC_RELAXED);
        __atomic_store_n(&p->hwm[1], pipe_hwm(p, 1), __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&p->lock);
}

int zm_pipe_attached(zm_pipe *p)
{
    /* Acquire: pairs with the release in zm_pipe_set_end. */
    return __atomic_load_n(&p->attached, __ATOMIC_ACQUIRE);
}

int zm_pipe_peer_type(zm_pipe *p, int end)
{
    return p->type[1 - end]; /* immutable once attached (see above) */
}

size_t zm_pipe_peer_rid(zm_pipe *p, int end, unsigned char *rid)
{
    memcpy(rid, p->rid[1 - end], p->rid_len[1 - end]);
    return p->rid_len[1 - end];
}

int zm_pipe_writable(zm_pipe *p, int end)
{
    size_t hwm;

    /* Acquire: once the reader is gone, nothing more is written. */
    if (__atomic_load_n(&p->gone[1 - end], __ATOMIC_ACQUIRE))
        return 0;
    hwm = __atomic_load_n(&p->hwm[end], __ATOMIC_RELAXED);
    /* Relaxed: only this end adds to inflight; the reader only takes away,
     * so a stale value errs on the side of "full", and the reader's
     * signal (zm_pipe_consumed) makes us look again. */
    return hwm == 0 ||
           __atomic_load_n(&p->inflight[end], __ATOMIC_RELAXED) < hwm;
}

int zm_pipe_peer_gone(zm_pipe *p, int end)
{
    /* Acquire: pairs with the release in zm_pipe_detach. */
    return __atomic_load_n(&p->gone[1 - end], __ATOMIC_ACQUIRE);
}

int zm_pipe_write(zm_pipe *p, int end, zm_msg *m)
{
    zm_mailbox *reader;
    int was_empty;

    pthread_mutex_lock(&p->lock);
    if (p->gone[1 - end]) {
        pthread_mutex_unlock(&p->lock);
        zm_msg_clear(m); /* nobody will read it */
        return 0;
    }
    if (zm_msgq_push(&p->q[end], m) < 0) {
        pthread_mutex_unlock(&p->lock);
        zm_msg_clear(m);
        return -ENOMEM;
    }
    /* Relaxed: the count is read as a hint (zm_pipe_writable); the lock
     * orders the message itself. */
    __atomic_add_fetch(&p->inflight[end], 1, __ATOMIC_RELAXED);
    /* Relaxed: the reader's unlocked look (zm_pipe_read). */
    __atomic_store_n(&p->queued[end], p->q[end].n, __ATOMIC_RELAXED);
    was_empty = p->q[end].n == 1;
    reader = p->mb[1 - end];
    pthread_mutex_unlock(&p->lock);
    /* A reader that found the queue empty may be waiting: one signal per
     * empty -> non-empty change (its step takes everything queued, and it
     * reads seq before it looks). */
    if (was_empty && reader != NULL)
        zm_mailbox_signal(reader);
    return 0;
}

size_t zm_pipe_read(zm_pipe *p, int end, zm_msg *out, size_t max)
{
    size_t n = 0;
    zm_msgq *q = &p->q[1 - end];

    /* Unlocked look: an empty queue costs no lock.  Relaxed: a message
     * pushed after this look bumps our mailbox's seq, so the owner does
     * not sleep on it. */
    if (__atomic_load_n(&p->queued[1 - end], __ATOMIC_RELAXED) == 0)
        return 0;
    pthread_mutex_lock(&p->lock);
    while (n < max && q->n > 0)
        zm_msgq_pop(q, &out[n++]);
    __atomic_store_n(&p->queued[1 - end], q->n, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&p->lock);
    return n;
}

void zm_pipe_consumed(zm_pipe *p, int end, size_t n)
{
    int w = 1 - end; /* the writer */
    size_t hwm = __atomic_load_n(&p->hwm[w], __ATOMIC_RELAXED);
    /* acq_rel: the writer's relaxed reads of inflight see this drop no
     * later than the signal below tells it to look. */
    size_t before = __atomic_fetch_sub(&p->inflight[w], n, __ATOMIC_ACQ_REL);

    if (hwm != 0 && before >= hwm && before - n < hwm) {
        zm_mailbox *writer;
        pthread_mutex_lock(&p->lock);
        writer = p->mb[w];
        pthread_mutex_unlock(&p->lock);
        if (writer != NULL)
            zm_mailbox_signal(writer); /* it may be blocked at the HWM */
    }
}

void zm_pipe_detach(zm_pipe *p, int end)
{
    zm_mailbox *peer;
    zm_msgq unread;

    pthread_mutex_lock(&p->lock);
    /* Release: the peer's zm_pipe_peer_gone / zm_pipe_writable (acquire)
     * see everything we queued before going. */
    __atomic_store_n(&p->gone[end], 1, __ATOMIC_RELEASE);
    unread = p->q[1 - end]; /* what the peer sent us: nobody will read it */
    memset(&p->q[1 - end], 0, sizeof(p->q[1 - end]));
    __atomic_store_n(&p->queued[1 - end], 0, __ATOMIC_RELAXED);
    peer = p->mb[1 - end];
    if (peer != NULL)
        zm_mailbox_ref(peer);
    pthread_mutex_unlock(&p->lock);
    zm_msgq_free(&unread);
    if (peer != NULL) {
        zm_mailbox_signal(peer); /* its connection ends (or a sender at
                                    the HWM stops waiting) */
        zm_mailbox_unref(peer);
    }
    /* acq_rel, as zm_mailbox_unref. */
    if (__atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
        pipe_free(p);
}
