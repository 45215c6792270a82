/*
 * msg.h - frame slices and messages.
 *
 * A frame is a slice of a page: (page, data, size, flags).  It holds one
 * reference on its page, or none when the frame is empty (page == NULL).
 * A message is an ordered list of frames that keeps the first ZM_MSG_INLINE
 * of them inline and spills to one heap array only above that, so the common
 * 1..4-frame messages (plain, REQ/REP envelope, ROUTER id + body) never touch
 * the allocator.  A message is movable by plain assignment (no pointers into
 * itself); ownership of the frames moves with it.  A zm_msgq is a FIFO of
 * whole messages (a connection's input, an inproc pipe's direction).
 *
 * Layering: calls arena (page references) and common.h only: no I/O, no
 * Python.  Used by the codec (it builds messages), the engine (queues,
 * envelopes, routing), inproc (pipes carry messages) and the Python face
 * (a Frame wraps a zm_frame); it must never call any of them.  The hot
 * half (init, push, move, release) is inline here; msg.c has the cold half.
 */
#ifndef ZMTP_MSG_H
#define ZMTP_MSG_H

#include "arena.h"

#include <errno.h>

/* Frame flags, as on the wire (RFC 23): bit 0 MORE, bit 2 COMMAND. */
#define ZM_FLAG_MORE 0x01u
#define ZM_FLAG_LONG 0x02u
#define ZM_FLAG_COMMAND 0x04u
#define ZM_FLAG_RESERVED 0xf8u

#define ZM_MSG_INLINE 4

typedef struct zm_frame {
    zm_page *page; /* one reference held; NULL when size == 0 */
    const unsigned char *data;
    size_t size;
    unsigned flags; /* ZM_FLAG_MORE / ZM_FLAG_COMMAND */
} zm_frame;

typedef struct zm_msg {
    size_t n;        /* frames in the message */
    size_t cap;      /* capacity of heap (0 while inline) */
    size_t bytes;    /* sum of frame sizes */
    zm_frame *heap;  /* all frames once spilled, else NULL */
    zm_frame inline_[ZM_MSG_INLINE];
} zm_msg;

ZM_INLINE void zm_frame_release(zm_frame *f)
{
    if (f->page != NULL)
        zm_page_decref(f->page);
    f->page = NULL;
    f->data = NULL;
    f->size = 0;
}

ZM_INLINE void zm_msg_init(zm_msg *m)
{
    m->n = 0;
    m->cap = 0;
    m->bytes = 0;
    m->heap = NULL;
}

ZM_INLINE zm_frame *zm_msg_frames(zm_msg *m)
{
    return m->heap != NULL ? m->heap : m->inline_;
}

int zm_msg_push_slow_(zm_msg *m, const zm_frame *f);

/*
 * Append a frame; the message takes over the frame's page reference.
 * Returns 0, or -1 when out of memory (the frame's reference is then still
 * the caller's).
 */
ZM_INLINE int zm_msg_push(zm_msg *m, const zm_frame *f)
{
    if (ZM_LIKELY(m->heap == NULL && m->n < ZM_MSG_INLINE)) {
        m->inline_[m->n++] = *f;
        m->bytes += f->size;
        return 0;
    }
    return zm_msg_push_slow_(m, f);
}

/* Release every frame and any heap array; the message is empty after. */
void zm_msg_clear(zm_msg *m);

/* Move src into dst (dst must be empty); src is empty after. */
ZM_INLINE void zm_msg_move(zm_msg *dst, zm_msg *src)
{
    /* Only the frames in use: a one-frame message moves one frame, not
     * the whole inline array. */
    dst->n = src->n;
    dst->cap = src->cap;
    dst->bytes = src->bytes;
    dst->heap = src->heap;
    /* Unrolled: a loop would become a memcpy call. */
    switch (src->heap == NULL ? src->n : 0) {
    case 4:
        dst->inline_[3] = src->inline_[3];
        /* fall through */
    case 3:
        dst->inline_[2] = src->inline_[2];
        /* fall through */
    case 2:
        dst->inline_[1] = src->inline_[1];
        /* fall through */
    case 1:
        dst->inline_[0] = src->inline_[0];
        break;
    default:
        break;
    }
    zm_msg_init(src);
}

/* A FIFO of whole messages; grows by doubling (capacity a power of two),
 * never shrinks.  Not thread-safe: the socket engine's queues belong to
 * the thread holding the socket, an inproc pipe's to whoever holds the
 * pipe's lock. */
typedef struct zm_msgq {
    zm_msg *items;
    size_t cap, head, n;
} zm_msgq;

int zm_msgq_grow_(zm_msgq *q);

/* Append (the queue takes the message: m is empty after); 0 or -ENOMEM
 * (m is then still the caller's). */
ZM_INLINE int zm_msgq_push(zm_msgq *q, zm_msg *m)
{
    if (ZM_UNLIKELY(q->n == q->cap) && zm_msgq_grow_(q) < 0)
        return -ENOMEM;
    /* cap is a power of two (16, doubled): a mask, not a division. */
    zm_msg_move(&q->items[(q->head + q->n) & (q->cap - 1)], m);
    q->n++;
    return 0;
}

/* Take the oldest message (the queue must not be empty). */
ZM_INLINE void zm_msgq_pop(zm_msgq *q, zm_msg *out)
{
    zm_msg_move(out, &q->items[q->head]);
    q->head = (q->head + 1) & (q->cap - 1);
    q->n--;
}

/* The oldest message, left in place (the queue must not be empty). */
ZM_INLINE zm_msg *zm_msgq_front(zm_msgq *q)
{
    return &q->items[q->head];
}

/* Release every message and the array. */
void zm_msgq_free(zm_msgq *q);

/*
 * Split m after its first k frames (k <= m->n): they move to env, or are
 * released when env is NULL, and the rest shift down to stay m.  0, or -1
 * when out of memory, in which case nothing moved: m holds every frame
 * and its references, env is empty.  (Only env can need memory: m only
 * shrinks.)
 */
int zm_msg_split_front(zm_msg *m, size_t k, zm_msg *env);

#endif /* ZMTP_MSG_H */
