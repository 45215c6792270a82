/*
 * minheap.h - an intrusive binary min-heap on int64_t times: a socket's
 * quiet connections by their next timer (engine.c, zm_sock.theap) and the
 * progress thread's parked sockets by theirs (progress.c, zm_progress.pheap).
 *
 * An item (zm_heap_item) lives in its owner's struct; the heap holds
 * pointers to items and keeps each item's place in it, so removing one is
 * O(log n) without a search.  The owner gets from an item back to itself
 * with ZM_HEAP_OWNER.  No locking: the heap's holder (a thread, or a lock
 * the caller holds) is the only one touching it.
 *
 * Layering: calls common.h (zm_grow) and libc only; used by engine.c and
 * progress.c.
 */
#ifndef ZMTP_MINHEAP_H
#define ZMTP_MINHEAP_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef struct zm_heap_item {
    int64_t at; /* its time: the heap's key */
    size_t i;   /* its place in the heap + 1; 0: in no heap */
} zm_heap_item;

typedef struct zm_heap {
    zm_heap_item **v; /* v[0] has the smallest `at` */
    size_t n, cap;
} zm_heap;

/* The struct `type` whose member `member` is the item `it`. */
#define ZM_HEAP_OWNER(it, type, member) \
    ((type *)(void *)((char *)(it) - offsetof(type, member)))

/* Put `it` (in no heap) in with time `at`: 0, or -ENOMEM (the heap and
 * `it` unchanged). */
int zm_heap_put(zm_heap *h, zm_heap_item *it, int64_t at);

/* Room for n items before the next put allocates: 0, or -ENOMEM (the heap
 * as it was).  Owners reserve at set-up, so that the first item put while
 * messages flow allocates nothing (tests/test_hotpath.py). */
int zm_heap_reserve(zm_heap *h, size_t n);

/* Take `it` out; nothing when it is in no heap. */
void zm_heap_del(zm_heap *h, zm_heap_item *it);

/* The item with the smallest time, or NULL when the heap is empty. */
ZM_INLINE zm_heap_item *zm_heap_top(const zm_heap *h)
{
    return h->n > 0 ? h->v[0] : NULL;
}

/* Free the array (the heap is empty and may be used again).  The items
 * that were in it keep their `i`: a caller that frees a heap with items in
 * it clears theirs itself. */
void zm_heap_free(zm_heap *h);

#endif /* ZMTP_MINHEAP_H */
