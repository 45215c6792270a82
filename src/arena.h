/*
 * arena.h - refcounted read pages and the counters that watch them.
 *
 * A page is one malloc'd block: a small header followed by `cap` bytes of
 * data.  The decoder receives bytes into the free tail of its current page
 * (data[len..cap)) and hands out frame slices (msg.h) that point into
 * data[0..len) and each hold one reference.  Nothing ever writes past
 * data[cap]: every writer asks zm_page_free_space() first.
 *
 * Reference counts are atomic because a slice may be released by a thread
 * other than the one that fills the page (a Python thread drops a Frame while
 * the context's progress thread reads the next bytes).  Everything else in a
 * page belongs to the single owner that fills it.
 *
 * The same pages carry output too (a connection's tail page in outq.c, a
 * socket's fan-out page), and freed pages of the common sizes are cached
 * for reuse (arena.c).
 *
 * Layering: calls only common.h (allocation wrappers) and libc: no I/O, no
 * Python, no knowledge of what the bytes mean.  Used by msg (a frame holds
 * a page reference), the codec (read pages), outq (output pages), the
 * engine and the Python face (Frame objects, memory_stats(), the page
 * cache's fork handlers); it must never call any of them.
 */
#ifndef ZMTP_ARENA_H
#define ZMTP_ARENA_H

#include "common.h"

#include <pthread.h>

#define ZM_PAGE_SIZE_DEFAULT ((size_t)65536)
#define ZM_PAGE_SIZE_MIN ((size_t)256)
/* Pages of this capacity are cached too: small copies are rounded up to
 * it (see arena.c). */
#define ZM_PAGE_SMALL ((size_t)256)
#define ZM_PAGE_SIZE_MAX ((size_t)1 << 30)
/* A page grown (zm_page_grow) to a block (header + cap) this large or
 * larger becomes an anonymous mapping of its own, grown further by mremap
 * without copying (arena.c); the cached sizes are all below it. */
#define ZM_PAGE_MAP_MIN ((size_t)1 << 18)
/* The largest page (cap) whose freed mapping is kept resident for the
 * next big buffer (arena.c). */
#define ZM_MAP_WARM_MAX ((size_t)1 << 26)

typedef struct zm_page {
    size_t refcnt; /* atomic: owner + one per live slice */
    size_t cap;    /* bytes in data[] */
    size_t len;    /* bytes filled so far; owner only */
    size_t map_len; /* an anonymous mapping's length (>= the header and
                       cap), or 0 for a malloc'd page (arena.c) */
    size_t ext;    /* 1: an external page (data[] holds a zm_ext) */
    unsigned char data[];
} zm_page;

/* Memory counters, process wide (relaxed atomics: statistics only). */
typedef struct zm_mem_stats {
    size_t pages_live;      /* pages allocated and not yet freed */
    size_t page_bytes_live; /* sum of their capacities */
    size_t pages_total;     /* pages ever allocated */
    size_t page_grows;      /* zm_page_grow calls that reallocated */
    size_t pages_cached;    /* freed pages kept for reuse (not live) */
    size_t warm_bytes;      /* freed big mappings kept resident (arena.c) */
} zm_mem_stats;

/* A new page with refcnt 1 and len 0 (from the cache when one of that
 * size is kept), or NULL when out of memory. */
zm_page *zm_page_new(size_t cap);

/* A page of cap bytes as zm_page_new, but in a mapping of its own from the
 * start (a kept one when there is one, arena.c), for a buffer that will grow past
 * ZM_PAGE_MAP_MIN: it never goes through the heap, so growing it never
 * copies.  A kept mapping may be larger than cap (zm_page_room); only cap
 * is counted. */
zm_page *zm_page_new_mapped(size_t cap);

/*
 * Grow a page that nobody else references (refcnt == 1) to new_cap >= cap,
 * keeping its contents (a mapped page: mremap, no byte copied; a heap page
 * becoming mapped: its filled bytes copied once).  Returns the (possibly moved) page, or NULL when out
 * of memory, in which case the old page is untouched and still valid.
 */
zm_page *zm_page_grow(zm_page *p, size_t new_cap);

/* The capacity a page can take without allocating: a mapping's length
 * less the header (a kept mapping may be larger than the cap asked), else
 * cap. */
ZM_INLINE size_t zm_page_room(const zm_page *p)
{
    return p->map_len != 0 ? p->map_len - sizeof(zm_page) : p->cap;
}

/* Raise an exclusive page's cap to new_cap <= zm_page_room(p): no
 * allocation, never fails (counted in page_bytes_live as any growth). */
void zm_page_extend(zm_page *p, size_t new_cap);

/* Give the kernel back the whole 4 KiB pages of data[from, to) of a mapped
 * page that nobody else references (their bytes read as zeros afterwards):
 * a copying receive of a huge frame lets go of what it has copied as it
 * goes, so the frame and its copy are never both resident.  Returns the
 * offset the pages are given back up to (to, rounded down to a page edge),
 * or `from` when nothing was (a heap page, a range within one page, an
 * madvise error: the bytes then simply stay). */
size_t zm_page_discard(zm_page *p, size_t from, size_t to);

ZM_INLINE void zm_page_incref(zm_page *p)
{
    /* A new reference is always made from one the caller already holds, so
     * nothing needs ordering here (relaxed, as for shared_ptr copies). */
    __atomic_fetch_add(&p->refcnt, 1, __ATOMIC_RELAXED);
}

/* The last reference is gone: keep the page for reuse (common sizes, up
 * to a bound) or free it. */
void zm_page_free_(zm_page *p);

/* 1 when freed pages are cached (not under AddressSanitizer). */
int zm_page_cache_enabled(void);

/* pthread_atfork handlers for the page cache's lock (registered by the
 * binding): a forked child finds the cache consistent and its lock free. */
void zm_page_cache_fork_prepare(void);
void zm_page_cache_fork_parent(void);
void zm_page_cache_fork_child(void);

/* Tests only (_zmtp._hold_lock_for_fork_test): the page cache's lock. */
pthread_mutex_t *zm__page_cache_mutex(void);

ZM_INLINE void zm_page_decref(zm_page *p)
{
    /* Release: this thread's reads of p->data happen before the page is
     * freed or refilled.  Acquire (on the last reference): the thread that
     * frees sees every other holder's accesses as done. */
    if (__atomic_fetch_sub(&p->refcnt, 1, __ATOMIC_ACQ_REL) == 1)
        zm_page_free_(p);
}

/*
 * True when the caller's reference is the only one, so the page may be
 * refilled in place.  Acquire pairs with the release in zm_page_decref: the
 * last slice holder's reads of the data are complete before we overwrite it.
 */
ZM_INLINE int zm_page_is_exclusive(zm_page *p)
{
    return __atomic_load_n(&p->refcnt, __ATOMIC_ACQUIRE) == 1;
}

ZM_INLINE size_t zm_page_free_space(const zm_page *p)
{
    return p->cap - p->len;
}

void zm_mem_get_stats(zm_mem_stats *out);

/* ------------------------------------------------------------------ */
/* External pages (issue 19: large frames sent by reference)          */
/* ------------------------------------------------------------------ */

/*
 * An external page references bytes somebody else owns (a Python object's
 * buffer, filled in by the face): refcounted as any page, so a frame, an
 * output queue or several (fan-out) hold it, and when the last reference
 * goes, `release(opaque)` runs, on whatever thread dropped it (a caller's,
 * or the progress thread without the GIL), and the holder is freed.  Its
 * bytes are zm_page_bytes(p) (never p->data); cap and len are the length;
 * it is never grown, refilled or cached.
 */
typedef void (*zm_ext_release_fn)(void *opaque);

typedef struct zm_ext {
    const unsigned char *bytes;
    zm_ext_release_fn release;
    void *opaque;
} zm_ext;

/* A new external page over bytes[0..n) with refcnt 1, or NULL when out of
 * memory (then release is not called: the caller still owns opaque). */
zm_page *zm_page_new_ext(const void *bytes, size_t n,
                         zm_ext_release_fn release, void *opaque);

/* Where a page's bytes are: data[] for ours, the owner's for external. */
ZM_INLINE const unsigned char *zm_page_bytes(const zm_page *p)
{
    if (ZM_UNLIKELY(p->ext))
        return ((const zm_ext *)(const void *)p->data)->bytes;
    return p->data;
}

/* External pages not yet released, and ever made (process wide). */
void zm_ext_get_stats(size_t *live, size_t *total);

#endif /* ZMTP_ARENA_H */
