/*
 * engine_int.h - what the engine's files share with each other and with
 * nobody else.
 *
 * Owns: the declarations that pass between the engine's files (engine.c:
 * the socket; engine_conn.c: a tcp/ipc connection; engine_inproc.c: an
 * inproc connection; engine_route.c: routing per socket type;
 * engine_pubsub.c: publish-subscribe; engine_monitor.c: monitor events),
 * and the small helpers of the per-message path (the input FIFO, the
 * output accounting of a connection, the send clock, the fan-out page),
 * kept static inline here so that they still inline in every file that
 * uses them.
 * May call: engine.h and what it includes (codec, inproc pipes, outq,
 * transport, trie, msg, arena).
 * Must never be included by: the Python face (_zmtpmodule.c and its
 * files), progress.c, inproc.c: their interface is engine.h alone.
 */
#ifndef ZMTP_ENGINE_INT_H
#define ZMTP_ENGINE_INT_H

#include "engine.h"

#include <errno.h>

/* Watch masks, the same bits as backend.h's ZM_IO_IN / ZM_IO_OUT. */
#define WATCH_IN 1u
#define WATCH_OUT 2u

/* ------------------------------------------------------------------ */
/* engine_conn.c: a tcp/ipc connection                                */
/* ------------------------------------------------------------------ */

/* Our greeting (ZMTP 3.1, NULL) and READY: 0, or -ENOMEM. */
int zm_encode_handshake(zm_wbuf *w, const char *type,
                        const unsigned char *id, size_t id_len);
/* A new connection, appended to s->conns (NULL: out of memory). */
zm_conn *zm_conn_new(zm_sock *s);
void zm_conn_free(zm_conn *c);
int zm_conn_start_handshake(zm_sock *s, zm_conn *c);
/* ZAP's verdict for c (status 200..500), or code: a ZM_PROTO_ZAP_* the
 * reply broke (engine_zap.c); with 200, the reply's User-Id and metadata
 * (a valid property list) become c->props. */
void zm_conn_zap_reply(zm_sock *s, zm_conn *c, unsigned status, uint32_t code,
                       const zm_frame *user_id, const zm_frame *meta,
                       int64_t now);
/* engine_zap.c: send c's mechanism's ZAP request (0; -ECONNREFUSED: no
 * handler; -ENOMEM); read replies; drop the pipe. */
int zm_zap_request(zm_sock *s, zm_conn *c);
/* c's peer as libzmq names it (ZAP's address, a message's Peer-Address):
 * its length in out (NUL-terminated; 0: unknown). */
size_t zm_conn_peer_address(const zm_conn *c, char *out, size_t cap);
void zm_zap_step(zm_sock *s, int64_t now);
void zm_zap_close(zm_sock *s);
void zm_conn_dial(zm_sock *s, zm_conn *c, int64_t now);
void zm_conn_put_encoded(zm_conn *c, zm_wbuf *w, int rc);
void zm_conn_lost(zm_sock *s, zm_conn *c, int64_t now);
/* Take c's descriptor out of the socket's readiness set before it closes
 * (engine.c; nothing when it is not in it). */
void zm_rset_forget(zm_sock *s, zm_conn *c);
/* The step list (engine.c): c may have something to do at the next step
 * (output queued, a state change): on the list, out of the timer heap. */
void zm_hot_add(zm_sock *s, zm_conn *c);
/* c leaves the socket (engine.c, reap_dead and zm_sock_destroy): off the
 * step list, the timer heap and the input list. */
void zm_conn_unlist(zm_sock *s, zm_conn *c);
/* ROUTER's table of routing ids (engine_route.c): c's id leaves it (c is
 * freed, or its id changes). */
void zm_rid_unhash(zm_sock *s, zm_conn *c);
void zm_conn_write(zm_sock *s, zm_conn *c, int64_t now);
int64_t zm_conn_next_timer(const zm_sock *s, const zm_conn *c);
void zm_conn_step(zm_sock *s, zm_conn *c, int64_t now);
/* STREAM: the application closes c (an empty data frame): what is queued
 * is written, then the descriptor closed, with no notification and no
 * redial. */
void zm_conn_raw_close(zm_sock *s, zm_conn *c, int64_t now);

/* ------------------------------------------------------------------ */
/* engine_inproc.c: an inproc connection                              */
/* ------------------------------------------------------------------ */

void zm_inproc_end(zm_sock *s, zm_conn *c);
void zm_inproc_step(zm_sock *s, zm_conn *c);
void zm_inproc_adopt(zm_sock *s);

/* ------------------------------------------------------------------ */
/* engine_route.c: routing per socket type, a table of strategies     */
/* ------------------------------------------------------------------ */

/* What a socket type does, one entry per type in zm_routes (its table is
 * engine_route.c's; the pub-sub entries point into engine_pubsub.c).
 * Every function is called with the socket held by the caller. */
struct zm_route_ops {
    const char *name;   /* Socket-Type in READY */
    unsigned peers;     /* bit t: may talk to socket type t (RFC 28-31) */
    unsigned flags;     /* ZM_RT_* */
    /* The first frame of a message: pick its peer(s) and queue it.  0,
     * -EAGAIN, -ZM_EFSM, -EHOSTUNREACH, -ENOTSUP (zm_sock_send). */
    int (*send)(zm_sock *s, const void *data, size_t n, int more);
    /* The next frames of a message (s->out_more): where the first went. */
    int (*send_more)(zm_sock *s, const void *data, size_t n, int more);
    /* The next whole message for the application (zm_sock_recv). */
    int (*recv)(zm_sock *s, zm_msg *out, const unsigned char **prefix,
                size_t *prefix_len);
    /* ZM_POLLIN / ZM_POLLOUT now, no I/O (zm_sock_events). */
    int (*events)(zm_sock *s);
    /* A peer's handshake is done: NULL to admit it, else why it is
     * refused; `id` is the routing id it announced (NULL, n == 0: none).
     * NULL: every compatible peer is admitted. */
    const char *(*admit)(zm_sock *s, zm_conn *c, const unsigned char *id,
                         size_t n);
    /* The peer is ACTIVE (NULL: nothing to do). */
    void (*attached)(zm_sock *s, zm_conn *c);
    /* A whole message from an ACTIVE peer: queued for the application
     * (zm_route_queue_in), or taken or dropped here. */
    void (*incoming)(zm_sock *s, zm_conn *c, zm_msg *msg);
    /* The peer's transport ended (NULL: nothing to do). */
    void (*detached)(zm_sock *s, zm_conn *c);
};

#define ZM_RT_SENDS_ID 1u /* our READY carries Identity (REQ, DEALER,
                             ROUTER: what a ROUTER may address) */
#define ZM_RT_PUB 2u      /* peers subscribe to us (PUB, XPUB) */
#define ZM_RT_SUB 4u      /* we subscribe to peers (SUB, XSUB) */
#define ZM_RT_RAW 8u      /* no ZMTP: raw bytes both ways (STREAM) */

extern const struct zm_route_ops zm_routes[ZM_SOCKTYPE_COUNT_];

static inline const struct zm_route_ops *zm_route_of(const zm_sock *s)
{
    return &zm_routes[s->type];
}

int zm_socktype_from_name(const unsigned char *name, size_t len);
/* STREAM: give c its routing id, generated as ROUTER's (once: a redial
 * keeps it), at connect() for a dialled peer and when an accepted one is
 * up; ROUTING_ID then reads it back (libzmq's STREAM: ipykernel takes
 * the id of the debugger's connection from there). */
void zm_stream_identify(zm_sock *s, zm_conn *c);
void zm_route_forget(zm_sock *s, zm_conn *c);
void zm_conn_abort_msg(zm_sock *s, zm_conn *c);
int zm_send_failed(zm_sock *s, zm_conn *c, int rc);
void zm_conn_send_soon(zm_sock *s, zm_conn *c, int64_t now);
/* A message of one frame to c (PROBE_ROUTER's empty message, XPUB's
 * welcome), queued whole or not at all (out of memory: dropped and
 * counted), written soon when c is up. */
void zm_conn_send_one(zm_sock *s, zm_conn *c, const void *data, size_t n);
/* connect() made c (tcp, ipc or inproc): CONNECT_ROUTING_ID names its
 * peer (ROUTER, STREAM; the option is used up), PROBE_ROUTER queues its
 * probe first. */
void zm_route_connected(zm_sock *s, zm_conn *c);
/* CONFLATE: what c has queued for the application is dropped (a newer
 * message is about to take its place). */
void zm_route_conflate(zm_conn *c);
/* CONFLATE, sending (s->conflate_out), at a message's first frame for a
 * tcp/ipc peer c: the whole messages queued on c that no byte of has been
 * written are cut, so the new one replaces them. */
void zm_conn_conflate_out(zm_conn *c);

/* What the connections call (engine_conn.c, engine_inproc.c). */
static inline int zm_route_sends_id(const zm_sock *s)
{
    return (zm_route_of(s)->flags & ZM_RT_SENDS_ID) != 0;
}

/* STREAM: connections skip the greeting and the framing. */
static inline int zm_route_raw(const zm_sock *s)
{
    return (zm_route_of(s)->flags & ZM_RT_RAW) != 0;
}

static inline const char *zm_route_admit(zm_sock *s, zm_conn *c,
                                         const unsigned char *id, size_t n)
{
    const struct zm_route_ops *r = zm_route_of(s);

    return r->admit != NULL ? r->admit(s, c, id, n) : NULL;
}

static inline void zm_route_attached(zm_sock *s, zm_conn *c)
{
    const struct zm_route_ops *r = zm_route_of(s);

    if (r->attached != NULL)
        r->attached(s, c);
}

static inline void zm_route_incoming(zm_sock *s, zm_conn *c, zm_msg *msg)
{
    zm_route_of(s)->incoming(s, c, msg);
}

static inline void zm_route_detached(zm_sock *s, zm_conn *c)
{
    const struct zm_route_ops *r = zm_route_of(s);

    if (r->detached != NULL)
        r->detached(s, c);
}

/* ------------------------------------------------------------------ */
/* engine_pubsub.c: publish-subscribe (strategies for zm_routes)      */
/* ------------------------------------------------------------------ */

void zm_pub_peer_subscription(zm_sock *s, zm_conn *c, int on,
                              const unsigned char *topic, size_t n);
void zm_pub_untarget(zm_sock *s, const zm_conn *c);
/* c is about to be freed: XPUB_MANUAL's record of it goes. */
void zm_pub_forget(zm_sock *s, const zm_conn *c);
void zm_xpub_attached(zm_sock *s, zm_conn *c);
int zm_pub_send(zm_sock *s, const void *data, size_t n, int more);
int zm_xsub_send(zm_sock *s, const void *data, size_t n, int more);
int zm_fanout_more(zm_sock *s, const void *data, size_t n, int more);
int zm_sub_recv(zm_sock *s, zm_msg *out, const unsigned char **prefix,
                size_t *prefix_len);
int zm_xpub_recv(zm_sock *s, zm_msg *out, const unsigned char **prefix,
                 size_t *prefix_len);
int zm_pub_events(zm_sock *s);
int zm_xpub_events(zm_sock *s);
int zm_xsub_events(zm_sock *s);
void zm_sub_attached(zm_sock *s, zm_conn *c);
/* SUB, XSUB connecting over inproc: the subscriptions go into the new pipe
 * at once (the binder reads them when it adopts it, as libzmq's). */
void zm_sub_connected_inproc(zm_sock *s, zm_conn *c);
void zm_pub_incoming(zm_sock *s, zm_conn *c, zm_msg *msg);
void zm_xpub_incoming(zm_sock *s, zm_conn *c, zm_msg *msg);
void zm_sub_incoming(zm_sock *s, zm_conn *c, zm_msg *msg);
void zm_pub_detached(zm_sock *s, zm_conn *c);
void zm_xsub_detached(zm_sock *s, zm_conn *c);

/* ------------------------------------------------------------------ */
/* engine_monitor.c: monitor events                                   */
/* ------------------------------------------------------------------ */

void zm_mon_event(zm_sock *s, unsigned kind, uint32_t value,
                  const char *endpoint);
void zm_mon_handshake_failed(zm_sock *s, zm_conn *c, uint32_t code);
void zm_mon_flush(zm_sock *s);
void zm_mon_drain(zm_sock *s);

/* ------------------------------------------------------------------ */
/* Per-message helpers (static inline: see above)                     */
/* ------------------------------------------------------------------ */

/* The input list (zm_sock.in_head): the connections with a message in
 * inq, oldest first (empty: a receive says EAGAIN without a walk).  Who
 * adds: zm_route_queue_in (a queue becomes non-empty); who removes: conn_pop (it empties),
 * purge_unmatched (SUB), zm_conn_unlist (freed); who moves: pick_in
 * (the head goes to the tail when it gives a message: fair-queue). */
static inline void in_list_add(zm_sock *s, zm_conn *c)
{
    c->in_next = NULL;
    c->in_prev = s->in_tail;
    if (s->in_tail != NULL)
        s->in_tail->in_next = c;
    else
        s->in_head = c;
    s->in_tail = c;
    c->in_listed = 1;
}

static inline void in_list_del(zm_sock *s, zm_conn *c)
{
    if (c->in_prev != NULL)
        c->in_prev->in_next = c->in_next;
    else
        s->in_head = c->in_next;
    if (c->in_next != NULL)
        c->in_next->in_prev = c->in_prev;
    else
        s->in_tail = c->in_prev;
    c->in_next = c->in_prev = NULL;
    c->in_listed = 0;
}

/* A message leaves a connection's input queue for the application (or is
 * dropped): an inproc writer's HWM counts it no longer. */
static inline void conn_pop(zm_conn *c, zm_msg *out)
{
    zm_msgq_pop(&c->inq, out);
    if (c->inq.n == 0 && c->in_listed)
        in_list_del(c->sock, c);
    if (c->pipe != NULL)
        zm_pipe_consumed(c->pipe, c->pipe_end, 1);
}

/* Output accounting (the invariant is stated at zm_conn in engine.h): a
 * message is queued from its first byte encoded until its last byte is
 * written; the number queued is what SNDHWM limits. */

/* Message and command bytes written so far (enc_total offset of the next
 * byte to go): what is queued, less the handshake at its front. */
static inline uint64_t conn_sent_offset(const zm_conn *c)
{
    return c->enc_total - (c->out.bytes - c->hs_left);
}

/* The first frame of a message is about to be queued: its span gets its
 * slot in the ring now, so that ending the message cannot fail.  0, or
 * -ENOMEM with nothing changed.  Later frames: nothing to do. */
static inline int conn_begin_msg(zm_conn *c)
{
    if (c->in_msg)
        return 0;
    if (!c->hot)
        zm_hot_add(c->sock, c); /* its output goes at the next step */
    if (c->ends_n == c->ends_cap) {
        struct zm_span *e = zm_grow(c->ends, &c->ends_cap, &c->ends_head,
                                    c->ends_n, c->ends_n + 1, sizeof(*e),
                                    ZM_CONN_ENDS_FIRST);
        if (e == NULL)
            return -ENOMEM;
        c->ends = e;
    }
    c->msg_start = c->enc_total;
    c->in_msg = 1;
    return 0;
}

/* The last frame is queued (in_msg is already 0): record the message's
 * span in the slot conn_begin_msg reserved. */
static inline void conn_end_msg(zm_conn *c)
{
    struct zm_span *e = &c->ends[(c->ends_head + c->ends_n) % c->ends_cap];

    e->start = c->msg_start;
    e->end = c->enc_total;
    c->ends_n++;
}

/* Forget the messages whose last byte is before `w` (enc_total offset). */
static inline void conn_pop_written(zm_conn *c, uint64_t w)
{
    while (c->ends_n > 0 && c->ends[c->ends_head].end <= w) {
        c->ends_head = (c->ends_head + 1) % c->ends_cap;
        c->ends_n--;
    }
}

/* PUB, XPUB: peers subscribe to us. */
static inline int is_pub(const zm_sock *s)
{
    return (zm_route_of(s)->flags & ZM_RT_PUB) != 0;
}

/* SUB, XSUB: we subscribe to peers. */
static inline int is_sub(const zm_sock *s)
{
    return (zm_route_of(s)->flags & ZM_RT_SUB) != 0;
}

/* May this connection take another outgoing message now? */
static inline int conn_can_queue(const zm_sock *s, const zm_conn *c)
{
    if (c->state == ZM_CS_DEAD)
        return 0;
    if (c->inproc)
        return c->pipe != NULL &&
               !(s->immediate && c->state != ZM_CS_ACTIVE) &&
               zm_pipe_writable(c->pipe, c->pipe_end);
    if (!c->connecter && c->state != ZM_CS_ACTIVE)
        return 0; /* accepted: only once the handshake is done */
    if (s->immediate && c->state != ZM_CS_ACTIVE)
        return 0;
    if (c->state == ZM_CS_RETRY && s->reconnect_ivl_ms < 0)
        return 0;
    return s->sndhwm <= 0 || c->ends_n < (size_t)s->sndhwm;
}

/* The next connection from the round-robin cursor on (round the list)
 * that can take a message, the cursor moved past it; NULL when none can. */
static inline zm_conn *pick_out(zm_sock *s)
{
    zm_conn *start = s->rr != NULL ? s->rr : s->conns, *c = start;

    if (c == NULL)
        return NULL;
    do {
        if (conn_can_queue(s, c)) {
            s->rr = c->next != NULL ? c->next : s->conns;
            return c;
        }
        c = c->next != NULL ? c->next : s->conns;
    } while (c != start);
    return NULL;
}

/* Fair-queueing of receives: the head of the input list, moved to its
 * tail, so the peers with input take turns whatever the number connected;
 * NULL when no connection has input. */
static inline zm_conn *pick_in(zm_sock *s)
{
    zm_conn *c = s->in_head;

    if (c != NULL && c->in_next != NULL) {
        in_list_del(s, c);
        in_list_add(s, c);
    }
    return c;
}

/* ZM_POLLIN when some peer has a message queued for the application. */
static inline int zm_route_any_in(const zm_sock *s)
{
    return s->in_head != NULL ? ZM_POLLIN : 0;
}

/* A message from a peer joins its input queue (dropped and counted when
 * out of memory): what most types do with what arrives. */
static inline void zm_route_queue_in(zm_sock *s, zm_conn *c, zm_msg *msg)
{
    if (ZM_UNLIKELY(s->conflate_in))
        zm_route_conflate(c); /* CONFLATE: only the newest stays */
    if (zm_msgq_push(&c->inq, msg) < 0) {
        zm_msg_clear(msg);
        ZM_STAT_ADD(s->stats.dropped_msgs, 1);
    } else if (c->inq.n == 1 && !c->in_listed) {
        in_list_add(s, c);
    }
}

/* XPUB: the application has RCVHWM subscription messages to read; stop
 * decoding (the peer waits in our decoder and the kernel) rather than
 * losing one. */
static inline int xpub_full(const zm_sock *s)
{
    return s->type == ZM_XPUB && s->rcvhwm > 0 &&
           s->xpub_q.n >= (size_t)s->rcvhwm;
}

/* A message's last frame is queued: the commands held back go after it. */
static inline void conn_put_deferred(zm_conn *c)
{
    if (c->deferred.len > 0 &&
        zm_outq_put(&c->out, c->deferred.data, c->deferred.len) == 0)
        c->enc_total += c->deferred.len;
    c->deferred.len = 0;
}

/* A frame over n bytes at `data` in page p, holding a new reference (none
 * for an empty frame). */
static inline zm_frame page_slice(zm_page *p, const unsigned char *data,
                                  size_t n, int more)
{
    zm_frame f = {NULL, NULL, 0, more ? ZM_FLAG_MORE : 0u};

    if (n > 0) {
        zm_page_incref(p);
        f.page = p;
        f.data = data;
        f.size = n;
    }
    return f;
}

/* The clock for the send path: read once per call (a send costs a few
 * hundred ns; a clock read is tens). */
static inline int64_t sock_now(zm_sock *s)
{
    if (s->now_ns == 0)
        s->now_ns = zm_now_ns();
    return s->now_ns;
}

/* Fan-out pages: published frames are appended to one socket-owned page;
 * each target's output queue references its slice (consecutive frames to
 * the same target merge into one segment).  The page is rewound once every
 * target has written it, so the steady state allocates nothing. */
#define PUBPAGE_SIZE ((size_t)65536)

static inline unsigned char *pubpage_room(zm_sock *s, size_t need)
{
    zm_page *p = s->pubpage;

    if (p != NULL && p->cap - p->len >= need)
        return p->data + p->len;
    if (p != NULL && zm_page_is_exclusive(p) && p->cap >= need) {
        p->len = 0; /* every queue has written it */
        return p->data;
    }
    p = zm_page_new(need > PUBPAGE_SIZE ? need : PUBPAGE_SIZE);
    if (p == NULL)
        return NULL;
    if (s->pubpage != NULL)
        zm_page_decref(s->pubpage); /* the queues keep it alive */
    s->pubpage = p;
    return p->data;
}

/* The page holding the frame being sent when (data, n) are its bytes
 * (zm_sock_send_ref), else NULL: then the frame is queued by reference, at
 * *off in that page. */
/* r (may be NULL) when data[0..n) lies within its bytes, with *off their
 * offset there (zm_page_bytes: an external page too); else NULL. */
static inline zm_page *page_ref_of(zm_page *r, const void *data, size_t n,
                                   size_t *off)
{
    const unsigned char *b, *d = data;

    if (r == NULL || n == 0)
        return NULL;
    b = zm_page_bytes(r);
    if (d < b || (size_t)(d - b) > r->len || n > r->len - (size_t)(d - b))
        return NULL;
    *off = (size_t)(d - b);
    return r;
}

static inline zm_page *send_ref_of(const zm_sock *s, const void *data,
                                   size_t n, size_t *off)
{
    return page_ref_of(s->send_ref, data, n, off);
}

#endif /* ZMTP_ENGINE_INT_H */
