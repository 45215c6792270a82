/*
 * arena.c - pages: allocation, growth, release, the cache of freed pages
 * (with its fork handlers) and the memory counters (see arena.h).
 *
 * Layering: calls common.h and libc/pthread only; never calls msg, the
 * codec or anything above them (see arena.h for its users).
 */
#include "arena.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Statistics only: relaxed atomics, nobody orders anything on them. */
static size_t g_pages_live;
static size_t g_page_bytes_live;
static size_t g_pages_total;
static size_t g_page_grows;
static size_t g_pages_cached;

#define STAT_ADD(var, n) __atomic_fetch_add(&(var), (n), __ATOMIC_RELAXED)
#define STAT_SUB(var, n) __atomic_fetch_sub(&(var), (n), __ATOMIC_RELAXED)
#define STAT_GET(var) __atomic_load_n(&(var), __ATOMIC_RELAXED)

/* ------------------------------------------------------------------ */
/* Page cache                                                         */
/* ------------------------------------------------------------------ */

/* Freed pages of the common sizes (power-of-two capacities from 4 KiB to
 * 128 KiB: read pages, output tails, fan-out pages, a frame or a batch of
 * sealed ones just over a page; and ZM_PAGE_SMALL, for
 * small copies such as routing ids) are kept for reuse, so a
 * connection that gives its read page back between messages (an idle
 * connection holds none) takes it again without a malloc.  At most
 * CACHE_DEPTH pages per size: 4 MiB in all.  A page may be freed by any
 * thread (the last Frame dropped), hence the mutex; it is only held for a
 * push or a pop. */
#if defined(__SANITIZE_ADDRESS__)
#define ZM_NO_PAGE_CACHE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ZM_NO_PAGE_CACHE 1
#endif
#endif

/* Under AddressSanitizer nothing is cached, so a slice used after its page
 * was freed is still caught (a recycled page would hide it). */
#define CACHE_MIN_SHIFT 12
#define CACHE_MAX_SHIFT 17
#define CACHE_SIZES (CACHE_MAX_SHIFT - CACHE_MIN_SHIFT + 1)
#define CACHE_DEPTH 16

#define CACHE_SLOTS (CACHE_SIZES + 1) /* the last: ZM_PAGE_SMALL */

static pthread_mutex_t g_cache_mu = PTHREAD_MUTEX_INITIALIZER;
static zm_page *g_cache[CACHE_SLOTS][CACHE_DEPTH];
static int g_cache_n[CACHE_SLOTS];

/* The cache slot of a capacity, or -1 when pages of that size are not
 * kept. */
static int cache_slot(size_t cap)
{
#ifdef ZM_NO_PAGE_CACHE
    (void)cap;
    return -1;
#endif
    if (cap == ZM_PAGE_SMALL)
        return CACHE_SIZES;
    if (cap & (cap - 1))
        return -1;
    for (int i = 0; i < CACHE_SIZES; i++)
        if (cap == (size_t)1 << (CACHE_MIN_SHIFT + i))
            return i;
    return -1;
}

static zm_page *cache_pop(int slot)
{
    zm_page *p = NULL;

    pthread_mutex_lock(&g_cache_mu);
    if (g_cache_n[slot] > 0)
        p = g_cache[slot][--g_cache_n[slot]];
    pthread_mutex_unlock(&g_cache_mu);
    if (p != NULL)
        STAT_SUB(g_pages_cached, 1);
    return p;
}

/* 1 when the cache took the page. */
static int cache_push(zm_page *p)
{
    int slot = cache_slot(p->cap), kept = 0;

    if (slot < 0)
        return 0;
    pthread_mutex_lock(&g_cache_mu);
    if (g_cache_n[slot] < CACHE_DEPTH) {
        g_cache[slot][g_cache_n[slot]++] = p;
        kept = 1;
    }
    pthread_mutex_unlock(&g_cache_mu);
    if (kept)
        STAT_ADD(g_pages_cached, 1);
    return kept;
}


/* ------------------------------------------------------------------ */
/* Mapped pages                                                       */
/* ------------------------------------------------------------------ */

/* A page grown (zm_page_grow: the decoder's big-frame buffer) to a block
 * (header and data) of ZM_PAGE_MAP_MIN bytes or more becomes an anonymous
 * mapping of its own (map_len != 0): growing it further is mremap (the
 * kernel moves page tables, not bytes), and within the mapping no call at
 * all.  Every other page is a malloc block (map_len == 0), zm_page_new's
 * included whatever their size: the send side's copies keep glibc's
 * behaviour.
 *
 * A fresh mapping costs a page fault and the zeroing of every 4 KiB page
 * it touches, which measured slower than the copies it saves (16 MiB
 * frames: half the rate of glibc's realloc, whose heap stays warm; 256 KiB
 * frames: a third of the receiver's time in faults, mmap and mremap).  So
 * freed mappings of up to ZM_MAP_WARM_MAX bytes are kept, resident, for
 * the next big buffers: up to WARM_SLOTS of them and WARM_BYTES in all (two
 * of the largest size kept), several because a receiver reads ahead: three
 * or four 256 KiB frames are alive at once between the socket and the
 * caller.  A new big buffer
 * takes the smallest kept mapping that is large enough, else the largest
 * (grown).  A mapping freed when the set is full replaces the smallest one
 * if it is larger.  Their bytes are not in page_bytes_live (what pages
 * use), only in the process's RSS, as glibc keeps a freed heap;
 * warm_bytes in the memory counters says how much. */
#define WARM_SLOTS 8
#define WARM_BYTES (2 * (ZM_MAP_WARM_MAX + (1 << 20)))
static zm_page *g_warm[WARM_SLOTS]; /* the kept mappings (under g_cache_mu) */
static int g_warm_n;
static size_t g_warm_bytes;         /* sum of their map_len */

static size_t map_round(size_t cap)
{
    return (sizeof(zm_page) + cap + 4095) & ~(size_t)4095;
}

/* A fresh or moved mapping of `want` bytes made a page's block: huge pages
 * asked for where the system allows them (fewer faults), its length kept. */
static zm_page *map_ready(void *m, size_t want)
{
    zm_page *p = m;

    madvise(m, want, MADV_HUGEPAGE);
    p->map_len = want;
    return p;
}

/* A mapped page grown to `want` bytes by the kernel (page tables move, not
 * bytes); NULL leaves p valid. */
static zm_page *map_grow(zm_page *p, size_t want)
{
    void *m = mremap(p, p->map_len, want, MREMAP_MAYMOVE);

    return m == MAP_FAILED ? NULL : map_ready(m, want);
}

/* 1 when a kept mapping of `len` bytes suits a buffer of `want` better than
 * one of `cur`: one that fits beats one that does not; of two that fit, the
 * smaller; of two that do not, the larger (less to grow). */
static int warm_better(size_t len, size_t cur, size_t want)
{
    if ((len >= want) != (cur >= want))
        return len >= want;
    return len >= want ? len < cur : len > cur;
}

/* The kept mapping a buffer of `want` bytes should take, taken out of the
 * set; NULL when none is kept.  Under g_cache_mu. */
static zm_page *warm_take(size_t want)
{
    int best = -1;
    zm_page *p;

    for (int i = 0; i < g_warm_n; i++)
        if (best < 0 ||
            warm_better(g_warm[i]->map_len, g_warm[best]->map_len, want))
            best = i;
    if (best < 0)
        return NULL;
    p = g_warm[best];
    g_warm[best] = g_warm[--g_warm_n];
    g_warm_bytes -= p->map_len;
    return p;
}

/* Keep a freed mapping warm; returns the mapping to unmap (p itself, one
 * it displaced, or NULL).  Under g_cache_mu. */
static zm_page *warm_keep(zm_page *p)
{
    int small = 0;
    zm_page *out;

    if (g_warm_n < WARM_SLOTS && g_warm_bytes + p->map_len <= WARM_BYTES) {
        g_warm[g_warm_n++] = p;
        g_warm_bytes += p->map_len;
        return NULL;
    }
    for (int i = 1; i < g_warm_n; i++)
        if (g_warm[i]->map_len < g_warm[small]->map_len)
            small = i;
    if (g_warm_n == 0 || g_warm[small]->map_len >= p->map_len ||
        g_warm_bytes - g_warm[small]->map_len + p->map_len > WARM_BYTES)
        return p;
    out = g_warm[small];
    g_warm[small] = p;
    g_warm_bytes += p->map_len - out->map_len;
    return out;
}

/* A mapping for a page of cap bytes: a kept one (grown if smaller), or a
 * new one; NULL when out of memory. */
static zm_page *map_page(size_t cap)
{
    size_t want = map_round(cap);
    zm_page *p, *q;
    void *m;

    pthread_mutex_lock(&g_cache_mu);
    p = warm_take(want);
    pthread_mutex_unlock(&g_cache_mu);
    ZM_COUNT(ZM_CNT_ALLOC);
    if (p != NULL && p->map_len >= want)
        return p;
    if (p != NULL) {
        q = map_grow(p, want);
        if (q == NULL)
            munmap(p, p->map_len);
        return q;
    }
    m = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    return m == MAP_FAILED ? NULL : map_ready(m, want);
}

/* A page grown to new_cap bytes, contents kept (the header and the filled
 * bytes); NULL leaves p valid. */
static zm_page *page_resize(zm_page *p, size_t new_cap)
{
    size_t want = map_round(new_cap);
    zm_page *q;

    if (p->map_len >= want)
        return p; /* the mapping has room already */
    if (p->map_len != 0) {
        ZM_COUNT(ZM_CNT_ALLOC);
        return map_grow(p, want);
    }
    if (sizeof(zm_page) + new_cap < ZM_PAGE_MAP_MIN) {
        ZM_COUNT(ZM_CNT_ALLOC);
        return realloc(p, sizeof(zm_page) + new_cap);
    }
    /* From the heap to a mapping: one copy of less than ZM_PAGE_MAP_MIN. */
    q = map_page(new_cap);
    if (q == NULL)
        return NULL;
    memcpy(q->data, p->data, p->len);
    q->refcnt = p->refcnt;
    q->cap = p->cap;
    q->len = p->len;
    free(p);
    return q;
}

static void page_release(zm_page *p)
{
    zm_page *drop = p;

    if (p->map_len == 0) {
        free(p);
        return;
    }
    if (p->map_len <= map_round(ZM_MAP_WARM_MAX) && zm_page_cache_enabled()) {
        pthread_mutex_lock(&g_cache_mu);
        drop = warm_keep(p);
        pthread_mutex_unlock(&g_cache_mu);
    }
    if (drop != NULL)
        munmap(drop, drop->map_len);
}

/* A page just allocated (or taken from a cache) made new: p may be NULL. */
static zm_page *page_init(zm_page *p, size_t cap)
{
    if (p == NULL)
        return NULL;
    p->refcnt = 1;
    p->cap = cap;
    p->len = 0;
    p->ext = 0;
    STAT_ADD(g_pages_live, 1);
    STAT_ADD(g_page_bytes_live, cap);
    STAT_ADD(g_pages_total, 1);
    return p;
}

zm_page *zm_page_new(size_t cap)
{
    zm_page *p;
    int slot;

    /* One allocation attempt for the failure injector whether the cache
     * or malloc serves it, so a test's count does not depend on the
     * cache's state. */
    if (cap > SIZE_MAX - sizeof(zm_page) || zm_alloc_fails())
        return NULL;
    slot = cache_slot(cap);
    p = slot >= 0 ? cache_pop(slot) : NULL;
    if (p == NULL) {
        ZM_COUNT(ZM_CNT_ALLOC);
        p = malloc(sizeof(zm_page) + cap);
        if (p != NULL)
            p->map_len = 0;
    }
    return page_init(p, cap);
}

zm_page *zm_page_new_mapped(size_t cap)
{
    if (cap > SIZE_MAX / 2 || zm_alloc_fails())
        return NULL;
    return page_init(map_page(cap), cap);
}

zm_page *zm_page_grow(zm_page *p, size_t new_cap)
{
    zm_page *q;
    size_t old_cap = p->cap;

    if (new_cap <= old_cap)
        return p;
    if (new_cap > SIZE_MAX - sizeof(zm_page))
        return NULL;
    if (zm_alloc_fails())
        return NULL;
    q = page_resize(p, new_cap);
    if (q == NULL)
        return NULL;
    q->cap = new_cap;
    STAT_ADD(g_page_bytes_live, new_cap - old_cap);
    STAT_ADD(g_page_grows, 1);
    return q;
}

void zm_page_extend(zm_page *p, size_t new_cap)
{
    if (new_cap <= p->cap || new_cap > zm_page_room(p))
        return;
    STAT_ADD(g_page_bytes_live, new_cap - p->cap);
    p->cap = new_cap;
}

size_t zm_page_discard(zm_page *p, size_t from, size_t to)
{
    uintptr_t base = (uintptr_t)p->data;
    uintptr_t lo = (base + from + 4095) & ~(uintptr_t)4095;
    uintptr_t hi = (base + to) & ~(uintptr_t)4095;

    if (p->map_len == 0 || p->ext || hi <= lo)
        return from;
    if (madvise((void *)lo, hi - lo, MADV_DONTNEED) < 0)
        return from;
    return (size_t)(hi - base);
}

static void ext_free(zm_page *p);

void zm_page_free_(zm_page *p)
{
    if (ZM_UNLIKELY(p->ext)) {
        ext_free(p);
        return;
    }
    STAT_SUB(g_pages_live, 1);
    STAT_SUB(g_page_bytes_live, p->cap);
    if (!cache_push(p))
        page_release(p);
}

int zm_page_cache_enabled(void)
{
    return cache_slot(ZM_PAGE_SMALL) >= 0;
}

pthread_mutex_t *zm__page_cache_mutex(void)
{
    return &g_cache_mu;
}

/* Around fork(), as glibc's malloc: the forking thread takes the lock (a
 * holder only pushes or pops, it never waits while holding it), so the
 * cache is consistent when the process is copied; the parent lets it go,
 * the child, whose only thread is the one that forked, makes it new (as
 * glibc does its arena locks: the owner recorded is the parent's thread). */
void zm_page_cache_fork_prepare(void)
{
    pthread_mutex_lock(&g_cache_mu);
}

void zm_page_cache_fork_parent(void)
{
    pthread_mutex_unlock(&g_cache_mu);
}

void zm_page_cache_fork_child(void)
{
    pthread_mutex_init(&g_cache_mu, NULL);
}


void zm_mem_get_stats(zm_mem_stats *out)
{
    out->pages_live = STAT_GET(g_pages_live);
    out->page_bytes_live = STAT_GET(g_page_bytes_live);
    out->pages_total = STAT_GET(g_pages_total);
    out->page_grows = STAT_GET(g_page_grows);
    out->pages_cached = STAT_GET(g_pages_cached);
    pthread_mutex_lock(&g_cache_mu);
    out->warm_bytes = g_warm_bytes;
    pthread_mutex_unlock(&g_cache_mu);
}

/* ------------------------------------------------------------------ */
/* External pages (see arena.h)                                       */
/* ------------------------------------------------------------------ */

static size_t g_ext_live;
static size_t g_ext_total;

zm_page *zm_page_new_ext(const void *bytes, size_t n,
                         zm_ext_release_fn release, void *opaque)
{
    zm_page *p;
    zm_ext *x;

    if (zm_alloc_fails())
        return NULL;
    ZM_COUNT(ZM_CNT_ALLOC);
    p = malloc(sizeof(zm_page) + sizeof(zm_ext));
    if (p == NULL)
        return NULL;
    p->refcnt = 1;
    p->cap = n;
    p->len = n;
    p->ext = 1;
    x = (zm_ext *)(void *)p->data;
    x->bytes = bytes;
    x->release = release;
    x->opaque = opaque;
    STAT_ADD(g_ext_live, 1);
    STAT_ADD(g_ext_total, 1);
    return p;
}

/* The last reference went: the owner's hook, then the holder. */
static void ext_free(zm_page *p)
{
    zm_ext *x = (zm_ext *)(void *)p->data;

    x->release(x->opaque);
    free(p);
    STAT_SUB(g_ext_live, 1);
}

void zm_ext_get_stats(size_t *live, size_t *total)
{
    *live = STAT_GET(g_ext_live);
    *total = STAT_GET(g_ext_total);
}
