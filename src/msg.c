/*
 * msg.c - the out-of-line (cold) half of messages: spilling and clearing.
 */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

ZM_NOINLINE int zm_msg_push_slow_(zm_msg *m, const zm_frame *f)
{
    zm_frame *grown;
    size_t new_cap;

    if (m->heap == NULL) {
        /* Spill: move the inline frames to a heap array. */
        new_cap = ZM_MSG_INLINE * 2;
        grown = zm_malloc(new_cap * sizeof(zm_frame));
        if (grown == NULL)
            return -1;
        memcpy(grown, m->inline_, m->n * sizeof(zm_frame));
        m->heap = grown;
        m->cap = new_cap;
    } else if (m->n == m->cap) {
        if (m->cap > SIZE_MAX / 2 / sizeof(zm_frame))
            return -1;
        new_cap = m->cap * 2;
        grown = zm_realloc(m->heap, new_cap * sizeof(zm_frame));
        if (grown == NULL)
            return -1;
        m->heap = grown;
        m->cap = new_cap;
    }
    m->heap[m->n++] = *f;
    m->bytes += f->size;
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
    size_t cap = q->cap ? q->cap * 2 : 16;
    zm_msg *items;

    if (q->cap > SIZE_MAX / 2 / sizeof(zm_msg))
        return -ENOMEM;
    items = zm_malloc(cap * sizeof(zm_msg));
    if (items == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < q->n; i++)
        items[i] = q->items[(q->head + i) & (q->cap - 1)];
    free(q->items);
    q->items = items;
    q->cap = cap;
    q->head = 0;
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
