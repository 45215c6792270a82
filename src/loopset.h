/*
 * loopset.h - a socket's "loop set": the epoll descriptor that
 * Socket.fileno() hands to an event loop.
 *
 * It holds the socket's mailbox eventfd (inproc peers, the progress
 * thread's signals, term()) and the descriptors of the socket's tcp/ipc
 * connections in traffic with the interest the engine wants now
 * (zm_sock_watch_traffic), level-triggered.  An epoll descriptor is readable while one of its
 * members is ready, so an event loop that watches it wakes straight on
 * tcp/ipc readiness, and its next call on the socket (on the loop's
 * thread) reads the kernel itself: one thread hop per message, where
 * waking through the progress thread costs two.  The interest is synced
 * at the end of every call of the owner (sock_leave), so it follows
 * connects, accepts, reconnects and the HWM: a connection the engine
 * will not read from (RCVHWM, or ZM_READ_AHEAD queued for an owner in
 * a call) has no POLLIN interest, and a level-triggered set cannot spin
 * the loop.  Listeners, dials, handshakes and timers stay the progress
 * thread's (it signals the eventfd when they change EVENTS): a wake for
 * them would change no EVENTS bit, and an owner that reads EVENTS after
 * the fd fired must find what fired it.  See docs/asyncio.md, "The
 * event-loop contract".
 *
 * Always epoll, whatever the socket's backend: the loop set is a
 * descriptor for someone else's poller, and only an epoll descriptor is
 * itself pollable.  It does not go through backend.h's ops either: a
 * backend belongs to the thread that opened it and its interests are
 * one-shot, where a socket is called from whichever thread holds it and
 * the set must stay level-triggered between calls.
 *
 * Every function is called by whoever holds the socket, with the GIL
 * (the Python face serialises them), except as stated.  No Python here.
 *
 * Layering: calls the engine's zm_sock_watch_traffic, the mailbox
 * (inproc.h), common.h and the kernel (epoll_*, eventfd writes).  Called
 * by the Python face only (get_fd, sock_leave, close and term).  The
 * engine and the progress thread never call it.
 */
#ifndef ZMTP_LOOPSET_H
#define ZMTP_LOOPSET_H

#include <stdint.h>

#include "engine.h"

typedef struct zm_loopset_ent {
    uint32_t events; /* EPOLLIN|EPOLLOUT registered (0: not in the set) */
    uint32_t stamp;  /* sync that last wanted it */
} zm_loopset_ent;

typedef struct zm_loopset {
    int epfd;              /* -1: not open */
    zm_mailbox *mb;        /* a reference, so that its eventfd outlives
                              the socket until the set is closed (term) */
    zm_loopset_ent *tab;   /* indexed by fd */
    size_t ntab;
    int *cur, ncur;        /* fds in the set (besides the eventfd) */
    size_t capcur;
    int *nxt, nnxt;        /* scratch: what a sync wants */
    size_t capnxt;
    uint32_t stamp;
    unsigned fd_gen;       /* the socket's fd_gen at the last sync */
    int failed;            /* a sync could not list or register an fd:
                              the next one registers everything again */
} zm_loopset;

/* Zero the struct (epfd -1): not open. */
void zm_loopset_init(zm_loopset *ls);
/* Open it for socket s (which has its mailbox: zm_sock_inproc_enable)
 * and sync it.  0 or -errno. */
int zm_loopset_open(zm_loopset *ls, zm_sock *s);
/* Make the set hold what the engine wants now (zm_sock_watch); the
 * caller holds the socket, which is in a call (in_call set). */
void zm_loopset_sync(zm_loopset *ls, zm_sock *s);
/* term(): make the set readable for good (its mailbox eventfd, kept open
 * by the set's reference); any thread holding the GIL. */
void zm_loopset_terminate(zm_loopset *ls);
/* Close the descriptor and drop the mailbox reference (the loop was told
 * first: removing a reader is the Python side's job). */
void zm_loopset_close(zm_loopset *ls);

#endif /* ZMTP_LOOPSET_H */
