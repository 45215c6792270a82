/*
 * inproc.h - in-memory pipes between the sockets of one context (inproc://).
 *
 * No Python, no encoding, no kernel socket: whole messages (frames holding
 * page references, so their bytes are never copied on the way) pass from one
 * socket's engine to another's through a pipe with a queue per direction.
 * The two sockets are driven by different threads, so everything shared is
 * guarded by the pipe's mutex or is atomic; each socket learns of what its
 * peers did through its mailbox:
 *
 *   - an eventfd that the owner's blocking wait watches (only while it is
 *     "armed": a writer that finds the owner busy pays no syscall);
 *   - a sequence number bumped by every event, so an owner that arms just
 *     after an event knows not to sleep;
 *   - an inbox of pipes offered by connecting sockets, adopted by the
 *     owner's thread at its next step.
 *
 * HWM as libzmq's inproc: the writer of end k may have sndhwm(k) +
 * rcvhwm(peer) messages not yet taken by the peer's application (0 on
 * either side: no limit); `inflight` counts them.
 *
 * Layering: calls msg (message queues), common.h, pthread and eventfd;
 * takes ZM_ENDPOINT_MAX from transport.h.  Used by the engine (a pipe is a
 * connection's transport, the mailbox its wake-up), the progress thread
 * (zm_mailbox_signal) and the Python face (InprocPipe handles, the blocking
 * wait's arming).  It must never call any of them: a pipe moves messages
 * and signals mailboxes, it does not route or wait.
 */
#ifndef ZMTP_INPROC_H
#define ZMTP_INPROC_H

#include "msg.h"
#include "transport.h"

#include <pthread.h>
#include <stdint.h>

typedef struct zm_pipe zm_pipe;

typedef struct zm_inbox_item {
    struct zm_inbox_item *next;
    zm_pipe *pipe; /* one reference, for end 1 */
    char endpoint[ZM_ENDPOINT_MAX];
} zm_inbox_item;

typedef struct zm_mailbox {
    int refs;        /* atomic: the socket and each pipe end attached */
    int efd;         /* eventfd, non-blocking */
    int armed;       /* atomic: the owner may be about to sleep */
    uint64_t seq;    /* atomic: bumped by every event for the owner */
    pthread_mutex_t lock; /* guards inbox and closed */
    zm_inbox_item *inbox;
    int closed;      /* the socket is gone: offers are refused */
} zm_mailbox;

/* NULL with errno set. */
zm_mailbox *zm_mailbox_new(void);
void zm_mailbox_ref(zm_mailbox *mb);
void zm_mailbox_unref(zm_mailbox *mb);
/* The socket closes: refuse offers, detach the pipes not yet adopted. */
void zm_mailbox_close(zm_mailbox *mb);
/* Something happened for the owner (any thread). */
void zm_mailbox_signal(zm_mailbox *mb);
/* The sequence number, read before a step looks at the pipes. */
uint64_t zm_mailbox_seq(zm_mailbox *mb);
/* The owner is about to wait: 1 if something happened since `seen` (do not
 * sleep; the mailbox is disarmed again), else 0 (watch mb->efd). */
int zm_mailbox_arm(zm_mailbox *mb, uint64_t seen);
/* After the wait; `fired`: the wait reported mb->efd readable. */
void zm_mailbox_disarm(zm_mailbox *mb, int fired);
/* Between calls of an owner that gave out the eventfd (Socket.fileno()):
 * drain what was signalled, stay armed, and signal at once if something
 * happened since `seen` (the owner's last step did not see it). */
void zm_mailbox_rearm(zm_mailbox *mb, uint64_t seen);
/* Hand end 1 of `p` to the mailbox's socket (takes the caller's pipe
 * reference on success); 0, -ENOMEM, or -ECONNREFUSED when closed. */
int zm_mailbox_offer(zm_mailbox *mb, zm_pipe *p, const char *endpoint);
/* The offered pipes, oldest first; the caller frees each item. */
zm_inbox_item *zm_mailbox_take(zm_mailbox *mb);

/* A pipe with two references, one per end. NULL when out of memory. */
zm_pipe *zm_pipe_new(void);
/* End `end` is attached to a socket: its mailbox, type, routing id and
 * HWMs. Once both ends are set the pipe is attached and the other end's
 * socket is told. */
void zm_pipe_set_end(zm_pipe *p, int end, zm_mailbox *mb, int type,
                     const unsigned char *rid, size_t rid_len, int sndhwm,
                     int rcvhwm);
/* End `end`'s HWMs before its socket adopts the pipe (the binder's, known
 * when the pipe is offered to it): the writer's limit is SNDHWM + RCVHWM
 * from the moment bind() or connect() returns, as in libzmq. */
void zm_pipe_preset_hwm(zm_pipe *p, int end, int sndhwm, int rcvhwm);
/* Both ends are attached (acquire: the peer's type and id are readable). */
int zm_pipe_attached(zm_pipe *p);
int zm_pipe_peer_type(zm_pipe *p, int end);
size_t zm_pipe_peer_rid(zm_pipe *p, int end, unsigned char *rid);
/* May end `end` write a message now (under HWM, reader still there)? */
int zm_pipe_writable(zm_pipe *p, int end);
/* The peer detached its end. */
int zm_pipe_peer_gone(zm_pipe *p, int end);
/* Queue a whole message from end `end` (m is empty after, sent or not:
 * a message to a detached peer is dropped). 0 or -ENOMEM. */
int zm_pipe_write(zm_pipe *p, int end, zm_msg *m);
/* Take up to `max` messages written by the peer into out[]; their count. */
size_t zm_pipe_read(zm_pipe *p, int end, zm_msg *out, size_t max);
/* End `end`'s application took (or dropped) n messages read from the pipe:
 * they leave the writer's HWM. */
void zm_pipe_consumed(zm_pipe *p, int end, size_t n);
/* Tests only (_zmtp._hold_lock_for_fork_test): the pipe's lock. */
pthread_mutex_t *zm__pipe_mutex(zm_pipe *p);
/* End `end` goes away: its unread messages are dropped, the peer is told,
 * its reference released. */
void zm_pipe_detach(zm_pipe *p, int end);

#endif /* ZMTP_INPROC_H */
