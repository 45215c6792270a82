/*
 * proxy.h - the proxy's engine side (proxy.c): whole messages moved
 * between two zm_socks (frontend <-> backend), each also sent to a capture
 * socket, steered by a control socket (libzmq's PAUSE / RESUME / TERMINATE
 * / STATISTICS).  No I/O of its own and no waiting: the face (py_proxy.c)
 * steps the sockets, calls zm_proxy_run until it says "nothing moved", and
 * waits with py_wait.c's machinery.  No Python here.
 *
 * May include: engine.h (zm_sock_send / recv / process, msg.h).
 * Included by: proxy.c and py_proxy.c only.
 */
#ifndef ZMTP_PROXY_H
#define ZMTP_PROXY_H

#include <stdint.h>

#include "engine.h"

/* One direction: messages read from `from`, sent to the capture socket
 * (when there is one) and then to `to`.  A message the destination cannot
 * take yet (its HWM) stays here, whole, and nothing more is read from
 * `from` until it went: a full side blocks its own direction only. */
typedef struct {
    zm_sock *from, *to;
    zm_msg msg;                 /* the message being forwarded */
    unsigned char id[255];      /* a ROUTER's routing id, frame 0 */
    size_t id_len;
    int has_id;
    int stage;                  /* ZM_PX_IDLE, _CAPTURE, _DEST */
    size_t next;                /* next frame of the stage to send */
    const unsigned char *cap_prefix; /* monitored_queue: the capture copy's */
    size_t cap_prefix_len;           /* first frame (NULL: none) */
    uint64_t *recv_stat;        /* [count, bytes] of `from`'s received */
    uint64_t *send_stat;        /* [count, bytes] of `to`'s sent */
} zm_proxy_dir;

enum { ZM_PX_IDLE = 0, ZM_PX_CAPTURE, ZM_PX_DEST };
enum { ZM_PX_ACTIVE = 0, ZM_PX_PAUSED, ZM_PX_TERMINATED };

typedef struct {
    zm_sock *capture;           /* or NULL */
    zm_sock *control;           /* or NULL */
    int ndirs;                  /* 1 when frontend is backend */
    int swap_ids;               /* monitored_queue, ROUTER <-> ROUTER:
                                   frames 0 and 1 swapped */
    int state;                  /* ZM_PX_ACTIVE, _PAUSED, _TERMINATED */
    zm_proxy_dir dir[2];
    /* libzmq's STATISTICS order: frontend received (count, bytes), sent,
     * backend received, sent; counted per frame as libzmq does. */
    uint64_t stats[8];
} zm_proxy;

/* Set up a proxy between `front` and `back` (may be one socket), with an
 * optional capture and control socket.  Nothing is allocated. */
void zm_proxy_init(zm_proxy *p, zm_sock *front, zm_sock *back,
                   zm_sock *capture, zm_sock *control);

/* monitored_queue: prefix every capture copy of a message read from the
 * frontend with in_prefix, from the backend with out_prefix (borrowed:
 * they must outlive the run); swap frames 0 and 1 of every message. */
void zm_proxy_set_prefixes(zm_proxy *p, const void *in_prefix, size_t in_len,
                           const void *out_prefix, size_t out_len,
                           int swap_ids);

/* Move what can be moved now, both ways, at most `budget` messages per
 * direction, handling control commands first.  Returns how many messages
 * (and commands) were handled (0: nothing could move: wait), or -errno
 * (a send or receive failed for another reason than EAGAIN).  p->state
 * says whether TERMINATE came. */
int zm_proxy_run(zm_proxy *p, int budget);

/* Frames of a message that is held back (HWM): released. */
void zm_proxy_free(zm_proxy *p);

#endif /* ZMTP_PROXY_H */
