/*
 * arena.c - read pages: allocation, growth, release and their counters.
 */
#include "arena.h"

#include <stdlib.h>

/* Statistics only: relaxed atomics, nobody orders anything on them. */
static size_t g_pages_live;
static size_t g_page_bytes_live;
static size_t g_pages_total;
static size_t g_page_grows;

#define STAT_ADD(var, n) __atomic_fetch_add(&(var), (n), __ATOMIC_RELAXED)
#define STAT_SUB(var, n) __atomic_fetch_sub(&(var), (n), __ATOMIC_RELAXED)
#define STAT_GET(var) __atomic_load_n(&(var), __ATOMIC_RELAXED)

zm_page *zm_page_new(size_t cap)
{
    zm_page *p;

    if (cap > SIZE_MAX - sizeof(zm_page))
        return NULL;
    p = malloc(sizeof(zm_page) + cap);
    if (p == NULL)
        return NULL;
    p->refcnt = 1;
    p->cap = cap;
    p->len = 0;
    STAT_ADD(g_pages_live, 1);
    STAT_ADD(g_page_bytes_live, cap);
    STAT_ADD(g_pages_total, 1);
    return p;
}

zm_page *zm_page_grow(zm_page *p, size_t new_cap)
{
    zm_page *q;
    size_t old_cap = p->cap;

    if (new_cap <= old_cap)
        return p;
    if (new_cap > SIZE_MAX - sizeof(zm_page))
        return NULL;
    q = realloc(p, sizeof(zm_page) + new_cap);
    if (q == NULL)
        return NULL;
    q->cap = new_cap;
    STAT_ADD(g_page_bytes_live, new_cap - old_cap);
    STAT_ADD(g_page_grows, 1);
    return q;
}

void zm_page_free_(zm_page *p)
{
    STAT_SUB(g_pages_live, 1);
    STAT_SUB(g_page_bytes_live, p->cap);
    free(p);
}

void zm_mem_get_stats(zm_mem_stats *out)
{
    out->pages_live = STAT_GET(g_pages_live);
    out->page_bytes_live = STAT_GET(g_page_bytes_live);
    out->pages_total = STAT_GET(g_pages_total);
    out->page_grows = STAT_GET(g_page_grows);
}
