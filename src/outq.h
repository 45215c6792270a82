/*
 * outq.h - a connection's output: a queue of byte segments of refcounted
 * pages, written with one sendmsg() of up to OUTQ_IOV segments.
 *
 * Small pieces (headers, small frames, commands) are copied into the
 * queue's own tail page, so back-to-back sends coalesce into one write and
 * the steady state allocates nothing (the tail page is rewound once every
 * segment on it is written).  A page shared by several queues (a large
 * frame published to many subscribers) is queued by reference: encoded
 * once, written N times.
 *
 * Layering: calls arena (pages), common.h and the kernel (sendmsg on the
 * descriptor it is given); no Python, no backend: it never waits.  Used by
 * the engine only (one per connection); it must never call the engine or
 * the codec (the engine encodes, outq only queues and writes bytes).
 */
#ifndef ZMTP_OUTQ_H
#define ZMTP_OUTQ_H

#include <sys/uio.h>

#include "arena.h"

#define ZM_OUTQ_IOV 64
#define ZM_OUTQ_TAIL_SIZE ((size_t)16384)

typedef struct zm_seg {
    zm_page *page; /* one reference */
    size_t off, len;
} zm_seg;

typedef struct zm_outq {
    zm_seg *segs;      /* ring */
    size_t head, n, cap;
    zm_page *tail;     /* our own page for copies (one reference) */
    size_t bytes;      /* queued, not yet written */
} zm_outq;

void zm_outq_init(zm_outq *q);
/* Release every segment and the tail page. */
void zm_outq_free(zm_outq *q);
/* Drop what is queued (keeps the tail page for reuse). */
void zm_outq_clear(zm_outq *q);
/* Copy n bytes to the back.  0 or -ENOMEM (then nothing was queued). */
int zm_outq_put(zm_outq *q, const void *data, size_t n);
/* Queue zm_page_bytes(page)[off..off+len) by reference (takes a new
 * reference, or extends the last segment when it ends at `off` of the
 * same page).  An external page (arena.h: the caller's buffer of a large
 * frame) is queued so, never copied: the queue's reference keeps the
 * owner's bytes until sendmsg() has taken the last of them. */
int zm_outq_put_shared(zm_outq *q, zm_page *page, size_t off, size_t len);
/* Copy n bytes to the front (a handshake before queued messages). */
int zm_outq_put_front(zm_outq *q, const void *data, size_t n);
/* Discard n bytes at the front / at the back. */
void zm_outq_drop_front(zm_outq *q, size_t n);
void zm_outq_drop_back(zm_outq *q, size_t n);
/* Fill iov with the first segments, at most `limit` bytes; returns the
 * count of iovecs. */
int zm_outq_iov(const zm_outq *q, struct iovec *iov, int max, size_t limit);
/* One non-blocking sendmsg of up to `limit` queued bytes to `fd`; what it
 * wrote is dropped from the front.  Bytes written, or -errno. */
ssize_t zm_outq_send(zm_outq *q, int fd, size_t limit);

#endif /* ZMTP_OUTQ_H */
