/*
 * outq.c - a connection's output queue (see outq.h): segments, the tail
 * page, shared pages, dropping a cut message, and the one sendmsg().
 *
 * Layering: calls arena, common.h and sendmsg(2) only (see outq.h).
 */
#include "outq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void zm_outq_init(zm_outq *q)
{
    memset(q, 0, sizeof(*q));
}

static zm_seg *seg_at(const zm_outq *q, size_t i)
{
    return &q->segs[(q->head + i) % q->cap];
}

void zm_outq_clear(zm_outq *q)
{
    zm_outq_drop_front(q, q->bytes);
}

void zm_outq_free(zm_outq *q)
{
    zm_outq_clear(q);
    free(q->segs);
    if (q->tail != NULL)
        zm_page_decref(q->tail);
    zm_outq_init(q);
}

/* Room for one more segment; 0 or -ENOMEM. */
static int seg_reserve(zm_outq *q)
{
    zm_seg *segs;

    if (q->n < q->cap)
        return 0;
    segs = zm_grow(q->segs, &q->cap, &q->head, q->n, q->n + 1,
                   sizeof(*segs), 16);
    if (segs == NULL)
        return -ENOMEM;
    q->segs = segs;
    return 0;
}

/* A tail page with room: rewound when nothing queued uses it any more,
 * else a fresh one. */
static int tail_ready(zm_outq *q)
{
    if (q->tail != NULL && q->tail->len < q->tail->cap)
        return 0;
    if (q->tail != NULL && zm_page_is_exclusive(q->tail)) {
        q->tail->len = 0;
        return 0;
    }
    zm_page *p = zm_page_new(ZM_OUTQ_TAIL_SIZE);
    if (p == NULL)
        return -ENOMEM;
    if (q->tail != NULL)
        zm_page_decref(q->tail); /* queued segments keep it alive */
    q->tail = p;
    return 0;
}

int zm_outq_put(zm_outq *q, const void *data, size_t n)
{
    const unsigned char *src = data;
    size_t done = 0;

    while (done < n) {
        zm_seg *last;
        size_t room, take;
        if (q->tail != NULL && q->n == 0 && zm_page_is_exclusive(q->tail))
            q->tail->len = 0; /* all written: start the page over */
        if (tail_ready(q) < 0 || seg_reserve(q) < 0)
            goto nomem;
        room = q->tail->cap - q->tail->len;
        take = n - done < room ? n - done : room;
        memcpy(q->tail->data + q->tail->len, src + done, take);
        last = q->n > 0 ? seg_at(q, q->n - 1) : NULL;
        if (last != NULL && last->page == q->tail &&
            last->off + last->len == q->tail->len) {
            last->len += take; /* extend the last segment */
        } else {
            zm_seg *s = seg_at(q, q->n);
            zm_page_incref(q->tail);
            s->page = q->tail;
            s->off = q->tail->len;
            s->len = take;
            q->n++;
        }
        q->tail->len += take;
        q->bytes += take;
        done += take;
    }
    return 0;
nomem:
    zm_outq_drop_back(q, done);
    return -ENOMEM;
}

int zm_outq_put_shared(zm_outq *q, zm_page *page, size_t off, size_t len)
{
    zm_seg *s;

    if (len == 0)
        return 0;
    if (q->n > 0) {
        zm_seg *last = seg_at(q, q->n - 1);
        if (last->page == page && last->off + last->len == off) {
            last->len += len; /* adjacent in the same page: one segment */
            q->bytes += len;
            return 0;
        }
    }
    if (seg_reserve(q) < 0)
        return -ENOMEM;
    s = seg_at(q, q->n);
    zm_page_incref(page);
    s->page = page;
    s->off = off;
    s->len = len;
    q->n++;
    q->bytes += len;
    return 0;
}

int zm_outq_put_front(zm_outq *q, const void *data, size_t n)
{
    zm_page *p;

    if (n == 0)
        return 0;
    if (seg_reserve(q) < 0)
        return -ENOMEM;
    p = zm_page_new(n);
    if (p == NULL)
        return -ENOMEM;
    memcpy(p->data, data, n);
    p->len = n;
    q->head = (q->head + q->cap - 1) % q->cap;
    q->segs[q->head].page = p; /* our reference moves to the segment */
    q->segs[q->head].off = 0;
    q->segs[q->head].len = n;
    q->n++;
    q->bytes += n;
    return 0;
}

void zm_outq_drop_front(zm_outq *q, size_t n)
{
    while (n > 0 && q->n > 0) {
        zm_seg *s = seg_at(q, 0);
        if (s->len > n) {
            s->off += n;
            s->len -= n;
            q->bytes -= n;
            return;
        }
        n -= s->len;
        q->bytes -= s->len;
        zm_page_decref(s->page);
        q->head = (q->head + 1) % q->cap;
        q->n--;
    }
}

void zm_outq_drop_back(zm_outq *q, size_t n)
{
    while (n > 0 && q->n > 0) {
        zm_seg *s = seg_at(q, q->n - 1);
        if (s->len > n) {
            s->len -= n;
            q->bytes -= n;
            if (s->page == q->tail && s->off + s->len + n == q->tail->len)
                q->tail->len -= n; /* give the room back */
            return;
        }
        n -= s->len;
        q->bytes -= s->len;
        if (s->page == q->tail && s->off + s->len == q->tail->len)
            q->tail->len = s->off;
        zm_page_decref(s->page);
        q->n--;
    }
}

int zm_outq_iov(const zm_outq *q, struct iovec *iov, int max, size_t limit)
{
    int k = 0;

    for (size_t i = 0; i < q->n && k < max && limit > 0; i++) {
        const zm_seg *s = seg_at(q, i);
        size_t len = s->len < limit ? s->len : limit;
        /* external pages: the owner's bytes */
        iov[k].iov_base = (void *)(zm_page_bytes(s->page) + s->off);
        iov[k].iov_len = len;
        limit -= len;
        k++;
    }
    return k;
}

ssize_t zm_outq_send(zm_outq *q, int fd, size_t limit)
{
    struct iovec iov[ZM_OUTQ_IOV];
    struct msghdr mh;
    ssize_t n;

    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = iov;
    mh.msg_iovlen = (size_t)zm_outq_iov(q, iov, ZM_OUTQ_IOV, limit);
    n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0)
        return -errno;
    zm_outq_drop_front(q, (size_t)n);
    return n;
}
