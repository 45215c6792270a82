/*
 * minheap.c - the intrusive binary min-heap of minheap.h.
 *
 * Layering: calls common.h (zm_grow) and libc only.
 */
#include "minheap.h"

#include <errno.h>
#include <stdlib.h>

static void heap_place(zm_heap *h, size_t i, zm_heap_item *it)
{
    h->v[i] = it;
    it->i = i + 1;
}

static void heap_up(zm_heap *h, size_t i)
{
    zm_heap_item *it = h->v[i];

    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (h->v[up]->at <= it->at)
            break;
        heap_place(h, i, h->v[up]);
        i = up;
    }
    heap_place(h, i, it);
}

static void heap_down(zm_heap *h, size_t i)
{
    zm_heap_item *it = h->v[i];

    for (;;) {
        size_t l = 2 * i + 1, m = i;
        int64_t at = it->at;
        if (l < h->n && h->v[l]->at < at) {
            m = l;
            at = h->v[l]->at;
        }
        if (l + 1 < h->n && h->v[l + 1]->at < at)
            m = l + 1;
        if (m == i)
            break;
        heap_place(h, i, h->v[m]);
        i = m;
    }
    heap_place(h, i, it);
}

int zm_heap_reserve(zm_heap *h, size_t n)
{
    zm_heap_item **v;

    if (n <= h->cap)
        return 0;
    v = zm_grow(h->v, &h->cap, NULL, h->n, n, sizeof(*v), 64);
    if (v == NULL)
        return -ENOMEM;
    h->v = v;
    return 0;
}

int zm_heap_put(zm_heap *h, zm_heap_item *it, int64_t at)
{
    if (h->n == h->cap && zm_heap_reserve(h, h->n + 1) < 0)
        return -ENOMEM;
    it->at = at;
    heap_place(h, h->n++, it);
    heap_up(h, h->n - 1);
    return 0;
}

void zm_heap_del(zm_heap *h, zm_heap_item *it)
{
    size_t i;
    zm_heap_item *last;

    if (it->i == 0)
        return;
    i = it->i - 1;
    it->i = 0;
    last = h->v[--h->n];
    if (i < h->n) {
        heap_place(h, i, last);
        heap_up(h, i);
        heap_down(h, last->i - 1);
    }
}

void zm_heap_free(zm_heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
