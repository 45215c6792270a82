/*
 * engine_route.c - routing per socket type: which peer an outgoing
 * message goes to (round-robin, ROUTER by id, REQ's envelope and its one
 * peer, PAIR's single peer; fan-out is engine_pubsub.c's), which peer the
 * next incoming message comes from (fair queueing, REQ/REP envelopes),
 * what a socket may do now (POLLIN/POLLOUT), the socket types' names and
 * compatible peers, and the queueing of a frame on a connection.
 *
 * May call: engine_conn.c (write, step, lost), engine_pubsub.c (fan-out,
 * subscriptions, SUB filtering), and the layers below (codec, outq,
 * inproc pipes, trie, msg).
 * Must never call it: the layers below; the Python face and progress.c
 * call zm_sock_send/recv/events through engine.h only.
 */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const socktype_names[ZM_SOCKTYPE_COUNT_] = {
    "PAIR", "PUB", "SUB", "REQ", "REP", "DEALER",
    "ROUTER", "PULL", "PUSH", "XPUB", "XSUB",
};

const char *zm_socktype_name(int type)
{
    if (type < 0 || type >= ZM_SOCKTYPE_COUNT_)
        return NULL;
    return socktype_names[type];
}

int zm_socktype_from_name(const unsigned char *name, size_t len)
{
    for (int t = 0; t < ZM_SOCKTYPE_COUNT_; t++) {
        size_t n = strlen(socktype_names[t]);
        if (n == len && memcmp(name, socktype_names[t], n) == 0)
            return t;
    }
    return -1;
}

int zm_socktype_compatible(int a, int b)
{
    switch (a) {
    case ZM_PAIR:
        return b == ZM_PAIR;
    case ZM_REQ:
        return b == ZM_REP || b == ZM_ROUTER;
    case ZM_REP:
        return b == ZM_REQ || b == ZM_DEALER;
    case ZM_DEALER:
        return b == ZM_REP || b == ZM_DEALER || b == ZM_ROUTER;
    case ZM_ROUTER:
        return b == ZM_REQ || b == ZM_DEALER || b == ZM_ROUTER;
    case ZM_PULL:
        return b == ZM_PUSH;
    case ZM_PUSH:
        return b == ZM_PULL;
    case ZM_PUB:
    case ZM_XPUB:
        return b == ZM_SUB || b == ZM_XSUB;
    case ZM_SUB:
    case ZM_XSUB:
        return b == ZM_PUB || b == ZM_XPUB;
    default:
        return 0;
    }
}

/* A connection is about to be freed: no cursor or pending exchange may
 * point at it. */
void zm_route_forget(zm_sock *s, zm_conn *c)
{
    zm_pub_untarget(s, c);
    if (s->rr == c)
        s->rr = c->next;
    if (s->fq == c)
        s->fq = c->next;
    if (s->req_peer == c)
        s->req_peer = NULL; /* the reply can no longer come */
    if (s->rep_peer == c)
        s->rep_peer = NULL; /* the reply will be dropped */
    if (s->out_conn == c) {
        s->out_conn = NULL;
        if (s->out_more)
            s->out_drop = 1;
    }
}

/* A generated routing id: 0x00 then a 32-bit counter (libzmq's form). */
static void conn_generate_rid(zm_sock *s, zm_conn *c)
{
    c->rid[0] = 0;
    zm_put_u32(c->rid + 1, s->next_rid++);
    c->rid_len = 5;
}

static zm_conn *find_rid(zm_sock *s, const void *id, size_t n)
{
    for (zm_conn *c = s->conns; c != NULL; c = c->next)
        if (c->state == ZM_CS_ACTIVE && c->rid_len == n &&
            memcmp(c->rid, id, n) == 0)
            return c;
    return NULL;
}

/* A peer's handshake is done (its READY came, or its inproc pipe was
 * attached): may it join?  A ROUTER takes the id the peer announced (`id`,
 * n bytes; NULL or n == 0: none) when it can, else generates one; a PAIR
 * takes one peer only.  NULL when admitted, else why it is refused. */
const char *zm_route_admit(zm_sock *s, zm_conn *c, const unsigned char *id,
                           size_t n)
{
    if (s->type == ZM_ROUTER) {
        if (id != NULL && n > 0 && n <= sizeof(c->rid) && id[0] != 0 &&
            find_rid(s, id, n) == NULL) {
            memcpy(c->rid, id, n);
            c->rid_len = n;
        } else {
            /* No id, a reserved one (leading 0x00) or one in use: generate
             * (libzmq drops the newcomer with a duplicate id unless
             * ROUTER_HANDOVER; a fresh id keeps both reachable). */
            conn_generate_rid(s, c);
        }
    }
    if (s->type == ZM_PAIR) {
        for (zm_conn *o = s->conns; o != NULL; o = o->next)
            if (o != c && o->state == ZM_CS_ACTIVE)
                return "PAIR socket already has a peer";
    }
    return NULL;
}

/* The peer is ACTIVE: a SUB's subscriptions go to it. */
void zm_route_attached(zm_sock *s, zm_conn *c)
{
    if (is_sub(s) && s->subs.topics > 0)
        zm_sub_replay(s, c);
}

/* A whole message from an ACTIVE peer: into the connection's input queue
 * (the owner takes it with zm_sock_recv), or taken or dropped here. */
void zm_route_incoming(zm_sock *s, zm_conn *c, zm_msg *msg)
{
    if (is_pub(s)) {
        /* Subscriptions in the ZMTP 3.0 message form; other data is
         * ignored by PUB and passed up by XPUB. */
        zm_frame *f = zm_msg_frames(msg);
        int on;
        const unsigned char *topic;
        size_t tn;
        if (msg->n == 1 &&
            zm_parse_subscription_message(f[0].data, f[0].size, &on,
                                          &topic, &tn)) {
            zm_pub_peer_subscription(s, c, on, topic, tn);
            zm_msg_clear(msg);
            return;
        }
        if (s->type == ZM_PUB) {
            zm_msg_clear(msg);
            return;
        }
    }
    if (s->type == ZM_PUSH) {
        zm_msg_clear(msg); /* send-only sockets ignore input */
        return;
    }
    if (is_sub(s)) {
        zm_frame *f = zm_msg_frames(msg);
        if (!zm_subs_match(&s->subs, f[0].data, f[0].size)) {
            zm_msg_clear(msg); /* not subscribed */
            return;
        }
    }
    if (zm_msgq_push(&c->inq, msg) < 0) {
        zm_msg_clear(msg);
        ZM_STAT_ADD(s->stats.dropped_msgs, 1);
    }
}

/* The peer's transport ended: its subscriptions go, and it loses the rest
 * of a message being fanned out to it. */
void zm_route_detached(zm_sock *s, zm_conn *c)
{
    zm_pub_drop_peer(s, c);
    zm_pub_untarget(s, c);
}

/* May this connection take another outgoing message now? */
static int conn_can_queue(const zm_sock *s, const zm_conn *c)
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

enum { PICK_OUT, PICK_IN };

/* The next connection from *cursor on (round the list) that can take a
 * message (PICK_OUT: round-robin of sends) or has one queued (PICK_IN:
 * fair queueing of receives); the cursor moves past it. */
static zm_conn *pick_next(zm_sock *s, zm_conn **cursor, int dir)
{
    zm_conn *start = *cursor != NULL ? *cursor : s->conns;
    zm_conn *c = start;

    if (c == NULL)
        return NULL;
    do {
        if (dir == PICK_IN ? c->inq.n > 0 : conn_can_queue(s, c)) {
            *cursor = c->next != NULL ? c->next : s->conns;
            return c;
        }
        c = c->next != NULL ? c->next : s->conns;
    } while (c != start);
    return NULL;
}

/* inproc: a frame joins the message being sent; the last one sends it
 * whole (a peer never sees part of a message).  The bytes are copied
 * once, into the socket's fan-out page; the peer's frames reference them. */
static int pipe_put(zm_sock *s, zm_conn *c, const void *data, size_t n,
                    int more)
{
    zm_frame f = {NULL, NULL, 0, more ? ZM_FLAG_MORE : 0u};

    if (n > 0) {
        unsigned char *at = pubpage_room(s, n);
        if (at == NULL)
            return -ENOMEM;
        memcpy(at, data, n);
        f = page_slice(s->pubpage, at, n, more);
        s->pubpage->len += n;
    }
    if (zm_msg_push(&c->pipe_out, &f) < 0) {
        zm_frame_release(&f);
        return -ENOMEM;
    }
    if (more)
        return 0;
    if (c->pipe == NULL) {
        zm_msg_clear(&c->pipe_out); /* the peer is gone */
        return 0;
    }
    return zm_pipe_write(c->pipe, c->pipe_end, &c->pipe_out);
}

static int encode_into(zm_sock *s, zm_conn *c, const void *data, size_t n,
                       int more)
{
    unsigned char hdr[9];
    size_t h;

    if (c->inproc)
        return pipe_put(s, c, data, n, more);
    if (conn_begin_msg(c) < 0)
        return -ENOMEM;
    h = zm_frame_header(hdr, n, more ? ZM_FLAG_MORE : 0);
    if (zm_outq_put(&c->out, hdr, h) < 0)
        return -ENOMEM;
    if (n > 0 && zm_outq_put(&c->out, data, n) < 0) {
        zm_outq_drop_back(&c->out, h);
        return -ENOMEM;
    }
    c->enc_total += h + n;
    if (!more) {
        c->in_msg = 0;
        conn_put_deferred(c);
    }
    return 0;
}

/* A frame of a message to c could not be queued (out of memory): what of
 * that message is queued goes, so the peer never gets part of it, and c is
 * at a message boundary again.  When the peer already has the start of it
 * (written before this frame failed), only the end of the transport makes
 * the peer discard what it has: the connection is dropped (a dialled one
 * redials, keeping its other queued messages). */
void zm_conn_abort_msg(zm_sock *s, zm_conn *c)
{
    uint64_t partial, unwritten;

    if (c->inproc) {
        zm_msg_clear(&c->pipe_out);
        return;
    }
    if (!c->in_msg)
        return;
    c->in_msg = 0;
    partial = c->enc_total - c->msg_start;
    unwritten = c->out.bytes - c->hs_left;
    if (partial > unwritten) {
        zm_outq_drop_back(&c->out, (size_t)unwritten);
        c->enc_total -= unwritten;
        zm_conn_lost(s, c, zm_now_ns());
        return;
    }
    zm_outq_drop_back(&c->out, (size_t)partial);
    c->enc_total = c->msg_start;
    conn_put_deferred(c); /* commands held back for the message's end */
}

/* A send failed with rc (out of memory) part-way through a message to c
 * (NULL: fan-out, whose targets zm_pub_fanout_frame aborted): the message is
 * dropped whole, and the socket is at a message boundary, so the next send
 * starts a new message.  A REQ may send its request again; a REP still
 * owes its reply (rep_replying is cleared only once a reply is whole). */
static int send_failed(zm_sock *s, zm_conn *c, int rc)
{
    if (c != NULL)
        zm_conn_abort_msg(s, c);
    s->out_more = 0;
    s->out_drop = 0;
    s->out_conn = NULL;
    if (s->type == ZM_REQ) {
        s->req_waiting = 0;
        s->req_peer = NULL;
    }
    return rc;
}

/* A whole message was queued on an ACTIVE connection: write now unless it
 * is part of a burst (s->coalesce) on a connection written to within
 * ZM_COALESCE_NS with less than write_buf_size waiting; then hold it back
 * a little so back-to-back sends share one write. */
void zm_conn_send_soon(zm_sock *s, zm_conn *c, int64_t now)
{
    if (s->auto_write && c->ends_n > 0) {
        /* BufferConfig.auto(): batch about 16 messages of the usual size,
         * between 4 and 64 KiB. */
        const struct zm_span *last =
            &c->ends[(c->ends_head + c->ends_n - 1) % c->ends_cap];
        uint64_t size = last->end - last->start, w;
        s->avg_msg = (s->avg_msg * 7 + size) / 8;
        w = s->avg_msg * 16;
        s->write_buf_size = w < 4096 ? 4096 : w > 65536 ? 65536 : (size_t)w;
    }
    if (!s->coalesce || (!s->hold && now - c->last_write_ns >= ZM_COALESCE_NS) ||
        c->out.bytes >= s->write_buf_size ||
        /* held-back messages count against SNDHWM: never let them be
         * what fills it */
        (s->sndhwm > 0 && c->ends_n * 2 >= (size_t)s->sndhwm) ||
        (c->flush_at_ns > 0 && now >= c->flush_at_ns)) {
        c->last_write_ns = now;
        zm_conn_write(s, c, now);
    } else if (c->flush_at_ns == 0) {
        c->flush_at_ns = s->hold ? now + ZM_HOLD_NS
                                 : c->last_write_ns + ZM_COALESCE_NS;
    }
}

/* REP: the reply went whole (or was dropped whole): the next request may
 * be received. */
static void rep_done(zm_sock *s)
{
    if (s->type != ZM_REP)
        return;
    zm_msg_clear(&s->rep_envelope);
    s->rep_replying = 0;
    s->rep_peer = NULL;
}

/* The last frame of a message to c is queued (cannot fail). */
static void finish_message(zm_sock *s, zm_conn *c)
{
    s->out_more = 0;
    s->out_conn = NULL;
    rep_done(s);
    if (c->inproc)
        return; /* pipe_put sent it */
    conn_end_msg(c);
    if (c->state == ZM_CS_ACTIVE && c->fd >= 0)
        zm_conn_send_soon(s, c, sock_now(s));
    else if (c->state == ZM_CS_CONNECTING || c->state == ZM_CS_HANDSHAKE)
        /* Not ready yet: move the connect and handshake on, so the message
         * can go now rather than at the next blocking call. */
        zm_conn_step(s, c, zm_now_ns());
}

/* PAIR's one peer: the connection whose handshake is done, else one we
 * dialled (messages wait for it, as in libzmq's pipe).  An accepted
 * connection still in its handshake is not the peer yet: a client that
 * connects and stays silent must not block the real one (libzmq attaches
 * an accepted connection only after its handshake). */
static zm_conn *pair_peer(zm_sock *s)
{
    zm_conn *dialled = NULL;

    for (zm_conn *c = s->conns; c != NULL; c = c->next) {
        if (c->state == ZM_CS_ACTIVE)
            return c;
        if (c->connecter && c->state != ZM_CS_DEAD && dialled == NULL)
            dialled = c;
    }
    return dialled;
}

int zm_sock_send(zm_sock *s, const void *data, size_t n, int more)
{
    zm_conn *c;
    int rc;

    if (s->out_more && (is_pub(s) || s->type == ZM_XSUB)) {
        rc = zm_pub_fanout_frame(s, data, n, more);
        if (rc < 0)
            return send_failed(s, NULL, rc);
        if (!more)
            s->out_more = 0;
        return 0;
    }
    if (s->out_more) { /* continuing a multipart message */
        if (s->out_drop || s->out_conn == NULL) {
            if (!more) {
                s->out_more = 0;
                s->out_drop = 0;
                rep_done(s); /* its requester went during the reply */
            }
            return 0;
        }
        c = s->out_conn;
        rc = encode_into(s, c, data, n, more);
        if (rc < 0)
            return send_failed(s, c, rc);
        if (!more)
            finish_message(s, c);
        return 0;
    }

    switch (s->type) {
    case ZM_PULL:
    case ZM_SUB:
        return -ENOTSUP;
    case ZM_XSUB: {
        int on;
        const unsigned char *topic;
        size_t tn;
        if (!more && zm_parse_subscription_message(data, n, &on, &topic,
                                                   &tn)) {
            int64_t r;
            if (on) {
                r = zm_subs_add(&s->subs, topic, tn);
                if (r < 0)
                    return (int)r;
                zm_sub_send_all(s, topic, tn, 1);
            } else if (zm_subs_rm(&s->subs, topic, tn) == 0) {
                zm_sub_send_all(s, topic, tn, 0);
                zm_sub_purge_unmatched(s);
            }
            return 0;
        }
        __attribute__((fallthrough)); /* data goes to every publisher */
    }
    case ZM_PUB:
    case ZM_XPUB:
        rc = zm_pub_fanout_choose(s, data, n);
        if (rc == 0)
            rc = zm_pub_fanout_frame(s, data, n, more);
        if (rc < 0)
            return send_failed(s, NULL, rc);
        s->out_more = more;
        s->out_drop = 0;
        return 0;
    case ZM_REQ:
        if (s->req_waiting)
            return -ZM_EFSM;
        /* As libzmq's req.cpp: drop whatever is still queued before a new
         * request, so a late reply to an earlier one is never taken for
         * the answer to this one. */
        for (zm_conn *o = s->conns; o != NULL; o = o->next)
            while (o->inq.n > 0) {
                zm_msg junk;
                conn_pop(o, &junk);
                zm_msg_clear(&junk);
                ZM_STAT_ADD(s->stats.dropped_msgs, 1);
            }
        c = pick_next(s, &s->rr, PICK_OUT);
        if (c == NULL)
            return -EAGAIN;
        rc = encode_into(s, c, NULL, 0, 1); /* the empty delimiter */
        if (rc < 0)
            return send_failed(s, c, rc);
        s->req_peer = c;
        break;
    case ZM_REP:
        if (!s->rep_replying)
            return -ZM_EFSM;
        c = s->rep_peer;
        if (c != NULL && c->state == ZM_CS_ACTIVE) {
            zm_frame *env = zm_msg_frames(&s->rep_envelope);
            for (size_t i = 0; i < s->rep_envelope.n; i++) {
                rc = encode_into(s, c, env[i].data, env[i].size, 1);
                if (rc < 0)
                    return send_failed(s, c, rc);
            }
            /* The envelope stays until the reply is whole (finish_message):
             * a reply that fails part-way may be sent again. */
        } else {
            /* The requester is gone: drop the reply. */
            rep_done(s);
            s->out_more = more;
            s->out_drop = 1;
            ZM_STAT_ADD(s->stats.dropped_msgs, 1);
            return 0;
        }
        break;
    case ZM_ROUTER:
        /* This frame is the routing id; it is not sent. */
        c = find_rid(s, data, n);
        if (c == NULL || !conn_can_queue(s, c)) {
            if (s->router_mandatory)
                return c == NULL ? -EHOSTUNREACH : -EAGAIN;
            ZM_STAT_ADD(s->stats.dropped_msgs, 1);
            s->out_more = more;
            s->out_drop = 1;
            return 0;
        }
        if (!more)
            return 0; /* an id alone is not a message */
        s->out_more = 1;
        s->out_drop = 0;
        s->out_conn = c;
        return 0;
    case ZM_PAIR:
        c = pair_peer(s);
        if (c == NULL || !conn_can_queue(s, c))
            return -EAGAIN;
        break;
    default: /* DEALER, PUSH */
        c = pick_next(s, &s->rr, PICK_OUT);
        if (c == NULL)
            return -EAGAIN;
        break;
    }

    rc = encode_into(s, c, data, n, more);
    if (rc < 0)
        return send_failed(s, c, rc);
    if (s->type == ZM_REQ)
        s->req_waiting = 1; /* from the first frame on */
    if (more) {
        s->out_more = 1;
        s->out_drop = 0;
        s->out_conn = c;
        return 0;
    }
    finish_message(s, c);
    return 0;
}

/* REQ: the peer the reply must come from, when it has a message queued;
 * messages from the other peers are not replies and are dropped. */
static zm_conn *req_source(zm_sock *s)
{
    zm_conn *c = s->req_peer;

    if (c != NULL && c->inq.n > 0)
        return c;
    for (zm_conn *o = s->conns; o != NULL; o = o->next)
        while (o != c && o->inq.n > 0) {
            zm_msg junk;
            conn_pop(o, &junk);
            zm_msg_clear(&junk);
            ZM_STAT_ADD(s->stats.dropped_msgs, 1);
        }
    return NULL;
}

/*
 * REQ and REP: the next message with an envelope.  The envelope is every
 * frame up to and including the first empty one (the delimiter), and a
 * body must follow; a REQ's envelope is the delimiter alone (what its REP
 * or ROUTER peer sent back).  Other messages are dropped.  REP keeps the
 * envelope in *env for the reply; REQ (env NULL) drops it.
 *
 * The split is made on the message at the head of its connection's queue,
 * and the message leaves the queue only once the split succeeded: on
 * -ENOMEM it stays there whole, references and all, and the next call
 * takes it again (no frame is ever both queued and handed out, or handed
 * out without its page).  0 with the body in *out and the connection in
 * *from; -EAGAIN; -ENOMEM.
 */
static int recv_enveloped(zm_sock *s, zm_msg *out, zm_msg *env,
                          zm_conn **from)
{
    for (;;) {
        zm_conn *c = s->type == ZM_REQ ? req_source(s)
                                       : pick_next(s, &s->fq, PICK_IN);
        zm_msg *m;
        zm_frame *f;
        size_t i;

        if (c == NULL)
            return -EAGAIN;
        m = zm_msgq_front(&c->inq);
        f = zm_msg_frames(m);
        for (i = 0; i < m->n && f[i].size != 0; i++)
            ;
        if (i + 1 >= m->n || (s->type == ZM_REQ && i != 0)) {
            zm_msg junk; /* no delimiter, or no body: not for us */
            conn_pop(c, &junk);
            zm_msg_clear(&junk);
            ZM_STAT_ADD(s->stats.dropped_msgs, 1);
            continue;
        }
        if (zm_msg_split_front(m, i + 1, env) < 0)
            return -ENOMEM;
        conn_pop(c, out);
        *from = c;
        return 0;
    }
}

int zm_sock_recv(zm_sock *s, zm_msg *out, const unsigned char **prefix,
                 size_t *prefix_len)
{
    zm_conn *c;

    *prefix = NULL;
    *prefix_len = 0;
    switch (s->type) {
    case ZM_PUSH:
    case ZM_PUB:
        return -ENOTSUP;
    case ZM_XPUB:
        if (s->xpub_q.n > 0) {
            zm_msgq_pop(&s->xpub_q, out);
            return 0;
        }
        break;
    case ZM_SUB:
    case ZM_XSUB:
        /* Subscriptions may have changed since these were queued. */
        for (;;) {
            zm_frame *f;
            c = pick_next(s, &s->fq, PICK_IN);
            if (c == NULL)
                return -EAGAIN;
            conn_pop(c, out);
            f = zm_msg_frames(out);
            if (zm_subs_match(&s->subs, f[0].data, f[0].size))
                return 0;
            zm_msg_clear(out);
        }
    case ZM_REQ: {
        int rc;
        if (!s->req_waiting)
            return -ZM_EFSM;
        rc = recv_enveloped(s, out, NULL, &c);
        if (rc == 0) {
            s->req_waiting = 0;
            s->req_peer = NULL;
        }
        return rc;
    }
    case ZM_REP: {
        zm_msg env;
        int rc;
        if (s->rep_replying)
            return -ZM_EFSM;
        rc = recv_enveloped(s, out, &env, &c);
        if (rc == 0) {
            zm_msg_clear(&s->rep_envelope);
            zm_msg_move(&s->rep_envelope, &env);
            s->rep_replying = 1;
            s->rep_peer = c;
        }
        return rc;
    }
    default:
        break;
    }
    {
        c = pick_next(s, &s->fq, PICK_IN);
        if (c == NULL)
            return -EAGAIN;
        conn_pop(c, out);
        if (s->type == ZM_ROUTER) {
            *prefix = c->rid;
            *prefix_len = c->rid_len;
        }
        return 0;
    }
}

int zm_sock_events(zm_sock *s)
{
    int ev = 0;

    switch (s->type) {
    case ZM_REQ:
        if (s->req_waiting) {
            if (s->req_peer != NULL && s->req_peer->inq.n > 0)
                ev |= ZM_POLLIN;
        } else {
            for (zm_conn *c = s->conns; c != NULL; c = c->next)
                if (conn_can_queue(s, c)) {
                    ev |= ZM_POLLOUT;
                    break;
                }
        }
        return ev;
    case ZM_REP:
        if (s->rep_replying)
            return ZM_POLLOUT;
        for (zm_conn *c = s->conns; c != NULL; c = c->next)
            if (c->inq.n > 0)
                return ZM_POLLIN;
        return 0;
    case ZM_ROUTER:
        if (s->router_mandatory) {
            /* libzmq: writable while some peer is under SNDHWM */
            for (zm_conn *c = s->conns; c != NULL; c = c->next)
                if (c->state == ZM_CS_ACTIVE && conn_can_queue(s, c)) {
                    ev |= ZM_POLLOUT;
                    break;
                }
            break;
        }
        ev |= ZM_POLLOUT; /* drops when full: never blocks */
        break;
    case ZM_PUB:
    case ZM_XPUB:
    case ZM_XSUB:
        ev |= ZM_POLLOUT; /* these never block on send */
        if (s->type == ZM_XPUB && s->xpub_q.n > 0)
            ev |= ZM_POLLIN;
        break;
    default:
        break;
    }
    for (zm_conn *c = s->conns; c != NULL; c = c->next) {
        if (c->inq.n > 0 && s->type != ZM_PUSH && s->type != ZM_PUB)
            ev |= ZM_POLLIN;
        if ((s->type == ZM_PUSH || s->type == ZM_DEALER || s->type == ZM_PAIR) &&
            conn_can_queue(s, c))
            ev |= ZM_POLLOUT;
    }
    if (s->type == ZM_PAIR && (ev & ZM_POLLOUT)) {
        zm_conn *c = pair_peer(s);
        if (c == NULL || !conn_can_queue(s, c))
            ev &= ~ZM_POLLOUT;
    }
    return ev;
}
