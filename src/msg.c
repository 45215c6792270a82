/*
 * msg.c - the out-of-line (cold) half of messages and message queues:
 * spilling frames to the heap, splitting an envelope off, clearing, queue
 * growth.
 *
 * Layering: calls arena and common.h only (see msg.h for its users).
 */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

ZM_NOINLINE int zm_msg_push_slow_(zm_msg *m, const zm_frame *f)
{
    if (m->heap == NULL) {
        /* Spill: move the inline frames to a heap array. */
        zm_frame *grown = zm_malloc(ZM_MSG_INLINE * 2 * sizeof(zm_frame));
        if (grown == NULL)
            return -1;
        memcpy(grown, m->inline_, m->n * sizeof(zm_frame));
        m->heap = grown;
        m->cap = ZM_MSG_INLINE * 2;
    } else if (m->n == m->cap) {
        zm_frame *grown = zm_grow(m->heap, &m->cap, NULL, m->n, m->n + 1,
                                  sizeof(zm_frame), ZM_MSG_INLINE * 2);
        if (grown == NULL)
            return -1;
        m->heap = grown;
    }
    m->heap[m->n++] = *f;
    m->bytes += f->size;
    return 0;
}

int zm_msg_split_front(zm_msg *m, size_t k, zm_msg *env)
{
    zm_frame *f = zm_msg_frames(m);
    size_t moved = 0;

    for (size_t i = 0; i < k; i++)
        moved += f[i].size;
    if (env != NULL) {
        zm_msg_init(env);
        for (size_t i = 0; i < k; i++) {
            /* Copies: the references stay m's until all have a place. */
            if (zm_msg_push(env, &f[i]) < 0) {
                free(env->heap); /* the shell only: m keeps the frames */
                zm_msg_init(env);
                return -1;
            }
        }
    } else {
        for (size_t i = 0; i < k; i++)
            zm_frame_release(&f[i]);
    }
    /* The references of f[0..k) now belong to env (or are gone). */
    memmove(f, f + k, (m->n - k) * sizeof(*f));
    m->n -= k;
    m->bytes -= moved;
    return 0;
}

void zm_msg_clear(zm_msg *m)
{
    zm_frame *frames = zm_msg_frames(m);

    for (size_t i = 0; i < m->n; i++)
        zm_frame_release(&frames[i]);
    free(m->heap);
    zm_msg_init(m);
}

int zm_msgq_grow_(zm_msgq *q)
{
    /* Capacity stays a power of two (16, doubled): zm_msgq_push masks. */
    zm_msg *items = zm_grow(q->items, &q->cap, &q->head, q->n, q->n + 1,
                            sizeof(zm_msg), 16);

    if (items == NULL)
        return -ENOMEM;
    q->items = items;
    return 0;
}

void zm_msgq_free(zm_msgq *q)
{
    while (q->n > 0) {
        zm_msg m;
        zm_msgq_pop(q, &m);
        zm_msg_clear(&m);
    }
    free(q->items);
    q->items = NULL;
    q->cap = q->head = 0;
}
