/*
 * loopset.c - a socket's loop set, the descriptor behind Socket.fileno()
 * (see loopset.h): open, sync with what the engine wants, term() and
 * close.
 *
 * Layering: calls the engine (zm_sock_watch_traffic), the
 * mailbox (inproc.h), common.h and the kernel; no Python.
 */
#include "loopset.h"

#include "backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* Make v hold n ints (zm_grow: doubling); 0 or -ENOMEM (the old kept). */
static int grow_ints(int **v, size_t *cap, size_t n)
{
    int *p = zm_grow(*v, cap, NULL, 0, n, sizeof(int), 8);

    if (p == NULL)
        return -ENOMEM;
    *v = p;
    return 0;
}

/* Make tab[fd] exist (new entries zeroed); 0 or -ENOMEM. */
static int grow_tab(zm_loopset *ls, int fd)
{
    size_t had = ls->ntab;
    zm_loopset_ent *p;

    p = zm_grow(ls->tab, &ls->ntab, NULL, 0, (size_t)fd + 1, sizeof(*p), 64);
    if (p == NULL)
        return -ENOMEM;
    if (ls->ntab > had)
        memset(p + had, 0, (ls->ntab - had) * sizeof(*p));
    ls->tab = p;
    return 0;
}

void zm_loopset_init(zm_loopset *ls)
{
    memset(ls, 0, sizeof(*ls));
    ls->epfd = -1;
}

int zm_loopset_open(zm_loopset *ls, zm_sock *s)
{
    struct epoll_event ev;
    int ret;

    if (ls->epfd >= 0)
        return 0;
    ls->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ls->epfd < 0) {
        ret = -errno;
        goto fail;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN; /* level-triggered: readable until drained */
    ev.data.fd = s->mb->efd;
    ZM_COUNT(ZM_CNT_EPOLL_CTL);
    if (epoll_ctl(ls->epfd, EPOLL_CTL_ADD, s->mb->efd, &ev) < 0) {
        ret = -errno;
        goto fail;
    }
    zm_mailbox_ref(s->mb);
    ls->mb = s->mb;
    ls->failed = 1; /* the first sync registers everything */
    zm_loopset_sync(ls, s);
    return 0;

fail:
    if (ls->epfd >= 0)
        close(ls->epfd);
    ls->epfd = -1;
    return ret;
}

/* zm_sock_watch's callback: list fd as wanted with `events`. */
static int want(void *ctx, int fd, unsigned events)
{
    zm_loopset *ls = ctx;

    if (fd < 0 || grow_tab(ls, fd) < 0 ||
        grow_ints(&ls->nxt, &ls->capnxt, (size_t)ls->nnxt + 1) < 0) {
        ls->failed = 1;
        return 0;
    }
    ls->nxt[ls->nnxt++] = fd;
    /* Marked as wanted by this sync, with the interest in the high half
     * of `events` until the sync compares it with what is registered. */
    ls->tab[fd].stamp = ls->stamp;
    ls->tab[fd].events |= (((events & ZM_IO_IN) ? EPOLLIN : 0u) |
                           ((events & ZM_IO_OUT) ? EPOLLOUT : 0u)) << 16;
    return 0;
}

void zm_loopset_sync(zm_loopset *ls, zm_sock *s)
{
    int *swap, full;
    size_t capswap;

    if (ls->epfd < 0)
        return;
    /* A descriptor opened since the last sync may have the number of one
     * closed meanwhile (epoll forgot the old file by itself): then
     * register every wanted fd again, whatever the table says. */
    full = ls->failed || s->fd_gen != ls->fd_gen;
    ls->failed = 0;
    ls->fd_gen = s->fd_gen;
    ls->stamp++;
    ls->nnxt = 0;
    zm_sock_watch_traffic(s, want, ls);
    for (int i = 0; i < ls->nnxt; i++) {
        int fd = ls->nxt[i];
        zm_loopset_ent *e = &ls->tab[fd];
        uint32_t w = e->events >> 16, have = e->events & 0xffffu;
        struct epoll_event ev;

        e->events = have;
        if (w == have && !full)
            continue;
        memset(&ev, 0, sizeof(ev));
        ev.events = w;
        ev.data.fd = fd;
        ZM_COUNT(ZM_CNT_EPOLL_CTL);
        if (epoll_ctl(ls->epfd, EPOLL_CTL_MOD, fd, &ev) == 0 ||
            (errno == ENOENT &&
             (ZM_COUNT(ZM_CNT_EPOLL_CTL),
              epoll_ctl(ls->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)))
            e->events = w;
        else
            ls->failed = 1; /* try again at the next sync */
    }
    /* What was in the set and is no longer wanted leaves it (errors: the
     * descriptor was closed, and epoll forgot it already). */
    for (int i = 0; i < ls->ncur; i++) {
        int fd = ls->cur[i];
        zm_loopset_ent *e = &ls->tab[fd];

        if (e->stamp == ls->stamp || e->events == 0)
            continue;
        ZM_COUNT(ZM_CNT_EPOLL_CTL);
        (void)epoll_ctl(ls->epfd, EPOLL_CTL_DEL, fd, NULL);
        e->events = 0;
    }
    swap = ls->cur;
    capswap = ls->capcur;
    ls->cur = ls->nxt;
    ls->capcur = ls->capnxt;
    ls->ncur = ls->nnxt;
    ls->nxt = swap;
    ls->capnxt = capswap;
    ls->nnxt = 0;
}

void zm_loopset_terminate(zm_loopset *ls)
{
    uint64_t one = 1;

    if (ls->epfd < 0 || ls->mb == NULL)
        return;
    /* Straight to the eventfd, past the mailbox's `armed`: nothing drains
     * it any more (every call raises ETERM before it reaches sock_leave),
     * so the set stays readable until the socket is closed. */
    ZM_COUNT(ZM_CNT_EVENTFD);
    (void)!write(ls->mb->efd, &one, sizeof(one));
}

void zm_loopset_close(zm_loopset *ls)
{
    if (ls->epfd >= 0)
        close(ls->epfd);
    if (ls->mb != NULL)
        zm_mailbox_unref(ls->mb);
    free(ls->tab);
    free(ls->cur);
    free(ls->nxt);
    zm_loopset_init(ls);
}
