/*
 * engine_route.c - routing per socket type, as a table of strategies
 * (zm_routes, at the end): for each type its name and the types it may
 * talk to, and how it picks the peer of an outgoing message (round-robin,
 * ROUTER by id, REQ's envelope and its one peer, REP's reply to its
 * requester, PAIR's single peer, STREAM's raw peer by id; fan-out is
 * engine_pubsub.c's), takes the
 * next incoming message (fair queueing, REQ/REP envelopes), reports
 * POLLIN/POLLOUT, admits a peer (ROUTER's id, PAIR's one peer) and
 * disposes of a message arriving from one.  Also the queueing of one
 * frame on a connection, shared by every strategy.
 *
 * May call: engine_conn.c (write, step, lost), engine_pubsub.c (its
 * strategies, in the table), and the layers below (codec, outq, inproc
 * pipes, trie, msg).
 * Must never call it: the layers below.  The Python face and progress.c
 * call zm_sock_send/recv/events and the socket-type functions through
 * engine.h only; the engine's other files reach the strategies through
 * the zm_route_* wrappers in engine_int.h.
 */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

/* ================================================================== */
/* Queueing a frame on a connection                                   */
/* ================================================================== */

/* inproc: a frame joins the message being sent; the last one sends it
 * whole (a peer never sees part of a message).  The bytes are copied
 * once, into the socket's fan-out page; the peer's frames reference them
 * (or the caller's page: zm_sock.send_page). */
static int pipe_put(zm_sock *s, zm_conn *c, const void *data, size_t n,
                    int more)
{
    zm_frame f = {NULL, NULL, 0, more ? ZM_FLAG_MORE : 0u};
    size_t off = 0;
    zm_page *ref = send_ref_of(s, data, n, &off);

    if (ref != NULL) {
        f = page_slice(ref, zm_page_bytes(ref) + off, n, more); /* no copy */
    } else if (s->send_page != NULL && n >= ZM_SEND_REF_MIN) {
        f = page_slice(s->send_page, data, n, more); /* the proxy's page */
    } else if (n > 0) {
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

/* One frame of a message to c: its header and bytes join c's output
 * queue (the message's span reserved at its first frame), or the message
 * being built for c's pipe.  0, or -ENOMEM (the caller aborts the whole
 * message: zm_send_failed). */
static int encode_into(zm_sock *s, zm_conn *c, const void *data, size_t n,
                       int more)
{
    unsigned char hdr[9];
    size_t h, off = 0;
    zm_page *ref;

    if (c->inproc)
        return pipe_put(s, c, data, n, more);
    if (ZM_UNLIKELY(s->conflate_out) && !c->in_msg)
        zm_conn_conflate_out(c);
    if (conn_begin_msg(c) < 0)
        return -ENOMEM;
    h = zm_frame_header(hdr, n, more ? ZM_FLAG_MORE : 0);
    if (zm_outq_put(&c->out, hdr, h) < 0)
        return -ENOMEM;
    ref = send_ref_of(s, data, n, &off); /* a large frame: by reference */
    if (ref == NULL && n >= ZM_SEND_REF_MIN && !c->sealed)
        ref = page_ref_of(s->send_page, data, n, &off); /* the proxy's */
    if (n > 0 && (ref != NULL ? zm_outq_put_shared(&c->out, ref, off, n)
                              : zm_outq_put(&c->out, data, n)) < 0) {
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

/* CONFLATE, sending (engine_int.h): the unsent whole messages at the back
 * of c's queue are cut, only when nothing but them follows the first of
 * them (a command queued between, a PING or a PONG, keeps them all); a
 * message the peer has part of stays. */
void zm_conn_conflate_out(zm_conn *c)
{
    uint64_t w = conn_sent_offset(c), cut, at;
    size_t first = 0;

    while (first < c->ends_n &&
           c->ends[(c->ends_head + first) % c->ends_cap].start < w)
        first++; /* begun: the peer has part of it */
    if (first == c->ends_n)
        return;
    cut = at = c->ends[(c->ends_head + first) % c->ends_cap].start;
    for (size_t i = first; i < c->ends_n; i++) {
        const struct zm_span *e = &c->ends[(c->ends_head + i) % c->ends_cap];
        if (e->start != at)
            return; /* a command between */
        at = e->end;
    }
    if (at != c->enc_total || c->enc_total - cut > c->out.bytes - c->hs_left)
        return;
    zm_outq_drop_back(&c->out, (size_t)(c->enc_total - cut));
    c->enc_total = cut;
    c->ends_n = first;
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
int zm_send_failed(zm_sock *s, zm_conn *c, int rc)
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
        zm_hot_add(s, c); /* the flushes walk the step list */
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

/* The frame went: a multipart message goes on to the same peer, a last
 * frame ends it. */
static int frame_queued(zm_sock *s, zm_conn *c, int more)
{
    if (more) {
        s->out_more = 1;
        s->out_drop = 0;
        s->out_conn = c;
        return 0;
    }
    finish_message(s, c);
    return 0;
}

/* The first frame of a message to the peer c its strategy chose. */
static int send_to(zm_sock *s, zm_conn *c, const void *data, size_t n,
                   int more)
{
    int rc = encode_into(s, c, data, n, more);

    if (rc < 0)
        return zm_send_failed(s, c, rc);
    return frame_queued(s, c, more);
}

void zm_conn_send_one(zm_sock *s, zm_conn *c, const void *data, size_t n)
{
    if (encode_into(s, c, data, n, 0) < 0) {
        zm_conn_abort_msg(s, c);
        ZM_STAT_ADD(s->stats.dropped_msgs, 1);
        return;
    }
    if (c->inproc)
        return; /* pipe_put sent it */
    conn_end_msg(c);
    if (c->state == ZM_CS_ACTIVE && c->fd >= 0)
        zm_conn_send_soon(s, c, sock_now(s));
}

/* ================================================================== */
/* Peers                                                              */
/* ================================================================== */

/*
 * ROUTER's routing ids, hashed (many peers: a send names its peer by id,
 * and walking every connection with a memcmp each cost a walk per
 * message).  Every connection whose id was set by rid_set is in the chain
 * of its bucket; zm_rid_unhash takes it out before its id changes and
 * when it is freed (zm_conn_unlist).  A table that cannot grow sets
 * rid_linear: find_rid then walks the connections, as before.  Only the
 * thread holding the socket touches it.
 */
static size_t rid_hash(const unsigned char *id, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (size_t i = 0; i < n; i++)
        h = (h ^ id[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29));
}

void zm_rid_unhash(zm_sock *s, zm_conn *c)
{
    zm_conn **pp;

    if (!c->rid_hashed)
        return;
    pp = &s->rid_tab[rid_hash(c->rid, c->rid_len) & (s->rid_tab_cap - 1)];
    while (*pp != c)
        pp = &(*pp)->rid_hnext;
    *pp = c->rid_hnext;
    c->rid_hnext = NULL;
    c->rid_hashed = 0;
    s->rid_tab_n--;
}

/* Room for one more id (the table doubles at one id per bucket): 0, or
 * -ENOMEM with the table as it was. */
static int rid_tab_room(zm_sock *s)
{
    size_t cap = s->rid_tab_cap != 0 ? s->rid_tab_cap * 2 : 64;
    zm_conn **tab;

    if (s->rid_tab_n < s->rid_tab_cap)
        return 0;
    tab = zm_calloc(cap, sizeof(*tab));
    if (tab == NULL)
        return -ENOMEM;
    for (size_t b = 0; b < s->rid_tab_cap; b++) {
        zm_conn *c = s->rid_tab[b], *next;
        for (; c != NULL; c = next) {
            size_t nb = rid_hash(c->rid, c->rid_len) & (cap - 1);
            next = c->rid_hnext;
            c->rid_hnext = tab[nb];
            tab[nb] = c;
        }
    }
    free(s->rid_tab);
    s->rid_tab = tab;
    s->rid_tab_cap = cap;
    return 0;
}

/* c's routing id becomes id[0..n). */
static void rid_set(zm_sock *s, zm_conn *c, const unsigned char *id, size_t n)
{
    size_t b;

    zm_rid_unhash(s, c);
    memmove(c->rid, id, n);
    c->rid_len = n;
    if (s->rid_linear)
        return;
    if (rid_tab_room(s) < 0) {
        s->rid_linear = 1; /* the ids in it stay right; find_rid walks */
        return;
    }
    b = rid_hash(c->rid, c->rid_len) & (s->rid_tab_cap - 1);
    c->rid_hnext = s->rid_tab[b];
    s->rid_tab[b] = c;
    c->rid_hashed = 1;
    s->rid_tab_n++;
}

/* A generated routing id: 0x00 then a 32-bit counter (libzmq's form). */
static void conn_generate_rid(zm_sock *s, zm_conn *c)
{
    unsigned char id[5];

    id[0] = 0;
    zm_put_u32(id + 1, s->next_rid++);
    rid_set(s, c, id, sizeof(id));
}

/* The first connection with routing id id[0..n) that `usable` accepts, or
 * NULL: from the id's bucket, or from all the connections when the table
 * could not grow (rid_linear). */
static zm_conn *rid_lookup(zm_sock *s, const void *id, size_t n,
                           int (*usable)(const zm_conn *))
{
    zm_conn *c;
    int linear = s->rid_linear;

    if (linear)
        c = s->conns;
    else if (s->rid_tab != NULL)
        c = s->rid_tab[rid_hash(id, n) & (s->rid_tab_cap - 1)];
    else
        return NULL; /* no id set yet */
    for (; c != NULL; c = linear ? c->next : c->rid_hnext)
        if (c->rid_len == n && usable(c) && memcmp(c->rid, id, n) == 0)
            return c;
    return NULL;
}

static int rid_active(const zm_conn *c)
{
    return c->state == ZM_CS_ACTIVE;
}

/* The ACTIVE connection with routing id id[0..n) (ids are unique among
 * ACTIVE ones: router_admit), or NULL. */
static zm_conn *find_rid(zm_sock *s, const void *id, size_t n)
{
    return rid_lookup(s, id, n, rid_active);
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

/* A connection is about to be freed: no cursor or pending exchange may
 * point at it. */
void zm_route_forget(zm_sock *s, zm_conn *c)
{
    zm_pub_untarget(s, c);
    zm_pub_forget(s, c);
    if (s->rr == c)
        s->rr = c->next;
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

/* ================================================================== */
/* Strategies: sending                                                */
/* ================================================================== */

/* PULL, SUB: nothing to send. */
static int no_send(zm_sock *s, const void *data, size_t n, int more)
{
    (void)s;
    (void)data;
    (void)n;
    (void)more;
    return -ENOTSUP;
}

/* The next frames of a message go where its first went (out_conn), or
 * nowhere when it is dropped. */
static int unicast_more(zm_sock *s, const void *data, size_t n, int more)
{
    zm_conn *c;
    int rc;

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
        return zm_send_failed(s, c, rc);
    if (!more)
        finish_message(s, c);
    return 0;
}

/* DEALER, PUSH: round-robin over the peers that can take it. */
static int lb_send(zm_sock *s, const void *data, size_t n, int more)
{
    zm_conn *c = pick_out(s);

    if (c == NULL)
        return -EAGAIN;
    return send_to(s, c, data, n, more);
}

/* PAIR: its one peer. */
static int pair_send(zm_sock *s, const void *data, size_t n, int more)
{
    zm_conn *c = pair_peer(s);

    if (c == NULL || !conn_can_queue(s, c))
        return -EAGAIN;
    return send_to(s, c, data, n, more);
}

/* REQ: drop every message queued by a connection other than `keep` (NULL:
 * all of them): not replies.  Walks the input list (the connections with
 * input), not every connection; conn_pop takes a connection it empties
 * out of the list, hence `next` first. */
static void req_drop_queued(zm_sock *s, const zm_conn *keep)
{
    zm_conn *o, *next;

    for (o = s->in_head; o != NULL; o = next) {
        next = o->in_next;
        while (o != keep && o->inq.n > 0) {
            zm_msg junk;
            conn_pop(o, &junk);
            zm_msg_clear(&junk);
            ZM_STAT_ADD(s->stats.dropped_msgs, 1);
        }
    }
}

/* REQ: one request at a time, round-robin, after an empty delimiter; the
 * reply must come from that peer. */
static int req_send(zm_sock *s, const void *data, size_t n, int more)
{
    zm_conn *c;
    int rc;

    if (s->req_waiting) {
        if (!s->req_relaxed)
            return -ZM_EFSM;
        /* REQ_RELAXED: the unanswered request is given up; its reply, if
         * one still comes, is dropped as any message not from req_peer
         * (or, from the same peer, told apart by REQ_CORRELATE). */
        s->req_waiting = 0;
        s->req_peer = NULL;
    }
    /* As libzmq's req.cpp: drop whatever is still queued before a new
     * request, so a late reply to an earlier one is never taken for
     * the answer to this one. */
    req_drop_queued(s, NULL);
    c = pick_out(s);
    if (c == NULL)
        return -EAGAIN;
    if (s->req_correlate) {
        /* REQ_CORRELATE: the request id first (4 bytes, host order, as
         * libzmq), which the reply must bring back. */
        uint32_t id = s->req_id + 1;
        rc = encode_into(s, c, &id, sizeof(id), 1);
        if (rc < 0)
            return zm_send_failed(s, c, rc);
        s->req_id = id;
    }
    rc = encode_into(s, c, NULL, 0, 1); /* the empty delimiter */
    if (rc < 0)
        return zm_send_failed(s, c, rc);
    s->req_peer = c;
    rc = encode_into(s, c, data, n, more);
    if (rc < 0)
        return zm_send_failed(s, c, rc);
    s->req_waiting = 1; /* from the first frame on */
    return frame_queued(s, c, more);
}

/* REP: the reply goes to the requester, behind the envelope it came
 * with; dropped when the requester is gone. */
static int rep_send(zm_sock *s, const void *data, size_t n, int more)
{
    zm_conn *c;
    zm_frame *env;
    int rc;

    if (!s->rep_replying)
        return -ZM_EFSM;
    c = s->rep_peer;
    if (c == NULL || c->state != ZM_CS_ACTIVE) {
        /* The requester is gone: drop the reply. */
        rep_done(s);
        s->out_more = more;
        s->out_drop = 1;
        ZM_STAT_ADD(s->stats.dropped_msgs, 1);
        return 0;
    }
    env = zm_msg_frames(&s->rep_envelope);
    for (size_t i = 0; i < s->rep_envelope.n; i++) {
        rc = encode_into(s, c, env[i].data, env[i].size, 1);
        if (rc < 0)
            return zm_send_failed(s, c, rc);
    }
    /* The envelope stays until the reply is whole (finish_message):
     * a reply that fails part-way may be sent again. */
    return send_to(s, c, data, n, more);
}

/* ROUTER: the first frame is the routing id of the peer (not sent);
 * unroutable messages are dropped, or refused with ROUTER_MANDATORY. */
static int router_send(zm_sock *s, const void *data, size_t n, int more)
{
    zm_conn *c = find_rid(s, data, n);

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
}

/* STREAM: a connection a send may name: an ACTIVE one, or one we dialled
 * that is not up yet (its id is known from connect() on, and what is sent
 * to it waits for the connection, as in libzmq's pipe). */
static int stream_usable(const zm_conn *c)
{
    return c->state != ZM_CS_DEAD && !c->raw_closing &&
           (c->state == ZM_CS_ACTIVE || c->connecter);
}

/* STREAM: the connection with routing id `id` (from the id's bucket, as
 * ROUTER's: every STREAM id is set by rid_set too). */
static zm_conn *stream_find(zm_sock *s, const void *id, size_t n)
{
    return rid_lookup(s, id, n, stream_usable);
}

/* STREAM: the first frame names the peer.  Unlike ROUTER it is always
 * mandatory (libzmq's stream.cpp): an unknown id is EHOSTUNREACH, a peer
 * at SNDHWM EAGAIN.  An id sent without MORE is ignored and the frame
 * after it dropped, as libzmq does. */
static int stream_send(zm_sock *s, const void *data, size_t n, int more)
{
    zm_conn *c;

    if (!more) {
        s->out_more = 1;
        s->out_drop = 1;
        s->out_conn = NULL;
        return 0;
    }
    c = stream_find(s, data, n);
    if (c == NULL)
        return -EHOSTUNREACH;
    if (!conn_can_queue(s, c))
        return -EAGAIN;
    s->out_more = 1;
    s->out_drop = 0;
    s->out_conn = c;
    return 0;
}

/* STREAM: the data frame after the id, written as it is (no header); its
 * MORE flag is ignored (the next frame names a peer again), and an empty
 * one closes the connection once what is queued is written. */
static int stream_more(zm_sock *s, const void *data, size_t n, int more)
{
    zm_conn *c = s->out_drop ? NULL : s->out_conn;

    (void)more;
    s->out_more = 0;
    s->out_drop = 0;
    s->out_conn = NULL;
    if (c == NULL)
        return 0; /* dropped, or the peer left since the id frame */
    if (n == 0) {
        zm_conn_raw_close(s, c, sock_now(s));
        return 0;
    }
    if (conn_begin_msg(c) < 0 || zm_outq_put(&c->out, data, n) < 0)
        return zm_send_failed(s, c, -ENOMEM);
    c->enc_total += n;
    c->in_msg = 0;
    finish_message(s, c);
    return 0;
}

/* ================================================================== */
/* Strategies: receiving                                              */
/* ================================================================== */

/* PUB, PUSH: nothing to receive. */
static int no_recv(zm_sock *s, zm_msg *out, const unsigned char **prefix,
                   size_t *prefix_len)
{
    (void)s;
    (void)out;
    (void)prefix;
    (void)prefix_len;
    return -ENOTSUP;
}

/* PAIR, DEALER, PULL: fair queueing over the peers. */
static int fq_recv(zm_sock *s, zm_msg *out, const unsigned char **prefix,
                   size_t *prefix_len)
{
    zm_conn *c = pick_in(s);

    (void)prefix;
    (void)prefix_len;
    if (c == NULL)
        return -EAGAIN;
    conn_pop(c, out);
    s->recv_props = c->props;
    return 0;
}

/* ROUTER: fair queueing; the peer's routing id goes first. */
static int router_recv(zm_sock *s, zm_msg *out, const unsigned char **prefix,
                       size_t *prefix_len)
{
    zm_conn *c = pick_in(s);

    if (c == NULL)
        return -EAGAIN;
    conn_pop(c, out);
    s->recv_props = c->props;
    *prefix = c->rid;
    *prefix_len = c->rid_len;
    return 0;
}

/* REQ: the peer the reply must come from, when it has a message queued;
 * messages from the other peers are not replies and are dropped. */
static zm_conn *req_source(zm_sock *s)
{
    zm_conn *c = s->req_peer;

    if (c != NULL && c->inq.n > 0)
        return c;
    req_drop_queued(s, c);
    return NULL;
}

/*
 * REQ and REP: the next message with an envelope.  The envelope is every
 * frame up to and including the first empty one (the delimiter), and a
 * body must follow; a REQ's envelope is the delimiter alone (what its REP
 * or ROUTER peer sent back), or with REQ_CORRELATE the id of the last
 * request then the delimiter.  Other messages are dropped.  REP keeps the
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
    int req = env == NULL;

    for (;;) {
        zm_conn *c = req ? req_source(s) : pick_in(s);
        zm_msg *m;
        zm_frame *f;
        size_t i;

        if (c == NULL)
            return -EAGAIN;
        m = zm_msgq_front(&c->inq);
        f = zm_msg_frames(m);
        for (i = 0; i < m->n && f[i].size != 0; i++)
            ;
        if (i + 1 >= m->n || (req && i != (s->req_correlate ? 1u : 0u)) ||
            (req && s->req_correlate &&
             (f[0].size != sizeof(s->req_id) ||
              memcmp(f[0].data, &s->req_id, sizeof(s->req_id)) != 0))) {
            zm_msg junk; /* no delimiter, or no body: not for us */
            conn_pop(c, &junk);
            zm_msg_clear(&junk);
            ZM_STAT_ADD(s->stats.dropped_msgs, 1);
            continue;
        }
        if (zm_msg_split_front(m, i + 1, env) < 0)
            return -ENOMEM;
        conn_pop(c, out);
        s->recv_props = c->props;
        *from = c;
        return 0;
    }
}

/* REQ: the reply, once a request went. */
static int req_recv(zm_sock *s, zm_msg *out, const unsigned char **prefix,
                    size_t *prefix_len)
{
    zm_conn *c;
    int rc;

    (void)prefix;
    (void)prefix_len;
    if (!s->req_waiting)
        return -ZM_EFSM;
    rc = recv_enveloped(s, out, NULL, &c);
    if (rc == 0) {
        s->req_waiting = 0;
        s->req_peer = NULL;
    }
    return rc;
}

/* REP: the next request, once the last one is answered; its envelope is
 * kept for the reply. */
static int rep_recv(zm_sock *s, zm_msg *out, const unsigned char **prefix,
                    size_t *prefix_len)
{
    zm_conn *c;
    zm_msg env;
    int rc;

    (void)prefix;
    (void)prefix_len;
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

/* ================================================================== */
/* Strategies: readiness (POLLIN / POLLOUT, no I/O)                   */
/* ================================================================== */

/* Some peer can take a message now. */
static int any_out(const zm_sock *s)
{
    for (zm_conn *c = s->conns; c != NULL; c = c->next)
        if (conn_can_queue(s, c))
            return ZM_POLLOUT;
    return 0;
}

/* PULL, SUB */
static int in_events(zm_sock *s)
{
    return zm_route_any_in(s);
}

/* PUSH */
static int out_events(zm_sock *s)
{
    return any_out(s);
}

/* DEALER */
static int dealer_events(zm_sock *s)
{
    return zm_route_any_in(s) | any_out(s);
}

/* PAIR: writable when its one peer can take a message. */
static int pair_events(zm_sock *s)
{
    zm_conn *c = pair_peer(s);

    return zm_route_any_in(s) |
           (c != NULL && conn_can_queue(s, c) ? ZM_POLLOUT : 0);
}

/* REQ: a request may go, or its reply is in. */
static int req_events(zm_sock *s)
{
    if (s->req_waiting)
        return s->req_peer != NULL && s->req_peer->inq.n > 0 ? ZM_POLLIN : 0;
    return any_out(s);
}

/* REP: a reply is owed, or a request is in. */
static int rep_events(zm_sock *s)
{
    if (s->rep_replying)
        return ZM_POLLOUT;
    return zm_route_any_in(s);
}

/* ROUTER: never blocks on send (drops when full), unless ROUTER_MANDATORY:
 * then writable while some peer is under SNDHWM (libzmq). */
static int router_events(zm_sock *s)
{
    int ev = ZM_POLLOUT;

    if (s->router_mandatory) {
        ev = 0;
        for (zm_conn *c = s->conns; c != NULL; c = c->next)
            if (c->state == ZM_CS_ACTIVE && conn_can_queue(s, c)) {
                ev = ZM_POLLOUT;
                break;
            }
    }
    return ev | zm_route_any_in(s);
}

/* STREAM: always writable (libzmq's stream.cpp: a send to a full peer
 * says EAGAIN at its id frame). */
static int stream_events(zm_sock *s)
{
    return ZM_POLLOUT | zm_route_any_in(s);
}

/* ================================================================== */
/* Strategies: peers joining, messages arriving                       */
/* ================================================================== */

/* STREAM: an empty message from a raw peer, queued for the application
 * behind its routing id (STREAM_NOTIFY's connect and disconnect). */
static void stream_notify(zm_sock *s, zm_conn *c)
{
    zm_frame f = {NULL, NULL, 0, 0u};
    zm_msg m;

    zm_msg_init(&m);
    if (zm_msg_push(&m, &f) < 0) {
        ZM_STAT_ADD(s->stats.dropped_msgs, 1);
        return;
    }
    zm_route_queue_in(s, c, &m);
}

void zm_stream_identify(zm_sock *s, zm_conn *c)
{
    if (c->rid_len != 0)
        return;
    conn_generate_rid(s, c);
    memcpy(s->routing_id, c->rid, c->rid_len);
    s->routing_id_len = c->rid_len;
}

/* STREAM: a raw peer is up (an accepted one gets its id now), and the
 * application is told with [id, empty] when STREAM_NOTIFY is on. */
static void stream_attached(zm_sock *s, zm_conn *c)
{
    zm_stream_identify(s, c);
    if (s->stream_notify && !c->raw_closing)
        stream_notify(s, c);
}

/* STREAM: the peer's transport ended: [id, empty] when STREAM_NOTIFY is
 * on, unless the application closed it itself (libzmq: no notification
 * then) or it never came up. */
static void stream_detached(zm_sock *s, zm_conn *c)
{
    if (s->stream_notify && !c->raw_closing && c->state == ZM_CS_ACTIVE)
        stream_notify(s, c);
}

/* ROUTER: the id the peer announced (`id`, n bytes; NULL or n == 0: none)
 * when it can, else a generated one. */
static const char *router_admit(zm_sock *s, zm_conn *c,
                                const unsigned char *id, size_t n)
{
    zm_conn *holder;

    if (c->rid_fixed)
        return NULL; /* CONNECT_ROUTING_ID named it at connect() */
    holder = id != NULL && n > 0 && n <= sizeof(c->rid) && id[0] != 0
                 ? find_rid(s, id, n)
                 : NULL;
    if (holder != NULL && s->router_handover) {
        /* ROUTER_HANDOVER (libzmq's router.cpp): the newcomer takes the
         * id; the old connection gets a generated one, under which what
         * it already queued can still be received, and is closed. */
        conn_generate_rid(s, holder);
        zm_conn_lost(s, holder, zm_now_ns());
        holder = NULL;
    }
    if (id != NULL && n > 0 && n <= sizeof(c->rid) && id[0] != 0 &&
        holder == NULL) {
        rid_set(s, c, id, n);
    } else {
        /* No id, a reserved one (leading 0x00) or one in use: generate
         * (libzmq drops the newcomer with a duplicate id unless
         * ROUTER_HANDOVER; a fresh id keeps both reachable). */
        conn_generate_rid(s, c);
    }
    return NULL;
}

/* ROUTER, DEALER, REQ: PROBE_ROUTER's empty message to a peer that
 * connected to us, once its handshake is done (libzmq's xattach_pipe);
 * a peer we dialled got it at connect() (zm_route_connected). */
static void probe_attached(zm_sock *s, zm_conn *c)
{
    if (s->probe_router && !c->connecter)
        zm_conn_send_one(s, c, NULL, 0);
}

void zm_route_connected(zm_sock *s, zm_conn *c)
{
    if (s->connect_rid_len > 0 &&
        (s->type == ZM_ROUTER || s->type == ZM_STREAM)) {
        rid_set(s, c, s->connect_rid, s->connect_rid_len);
        c->rid_fixed = 1;
        s->connect_rid_len = 0; /* the next connect only (libzmq) */
    }
    /* Queued before anything else sent to it, as libzmq writes it into the
     * pipe it makes at connect(); a redial keeps the queue, so the probe
     * goes once per connect(), as libzmq's. */
    if (s->probe_router && (s->type == ZM_ROUTER || s->type == ZM_DEALER ||
                            s->type == ZM_REQ))
        zm_conn_send_one(s, c, NULL, 0);
}

void zm_route_conflate(zm_conn *c)
{
    while (c->inq.n > 0) {
        zm_msg old;
        conn_pop(c, &old);
        zm_msg_clear(&old); /* replaced, as meant: not counted as lost */
    }
}

/* PAIR: one peer only. */
static const char *pair_admit(zm_sock *s, zm_conn *c,
                              const unsigned char *id, size_t n)
{
    (void)id;
    (void)n;
    for (zm_conn *o = s->conns; o != NULL; o = o->next)
        if (o != c && o->state == ZM_CS_ACTIVE)
            return "PAIR socket already has a peer";
    return NULL;
}

/* PUSH: a send-only socket ignores input. */
static void drop_in(zm_sock *s, zm_conn *c, zm_msg *msg)
{
    (void)s;
    (void)c;
    zm_msg_clear(msg);
}

/* ================================================================== */
/* The table                                                          */
/* ================================================================== */

#define T(t) (1u << (t))

/* One entry per socket type, in libzmq's numbering.  Columns: the name
 * (READY's Socket-Type), the types it may talk to (RFC 28-31), flags;
 * send the first frame, send the next ones, receive, readiness; admit a
 * peer, a peer attached, a message arrived, a peer detached (NULL:
 * nothing to do).  The pub-sub strategies are in engine_pubsub.c. */
const struct zm_route_ops zm_routes[ZM_SOCKTYPE_COUNT_] = {
    [ZM_PAIR] = {"PAIR", T(ZM_PAIR), 0,
                 pair_send, unicast_more, fq_recv, pair_events,
                 pair_admit, NULL, zm_route_queue_in, NULL},
    [ZM_PUB] = {"PUB", T(ZM_SUB) | T(ZM_XSUB), ZM_RT_PUB,
                zm_pub_send, zm_fanout_more, no_recv, zm_pub_events,
                NULL, zm_xpub_attached, zm_pub_incoming, zm_pub_detached},
    [ZM_SUB] = {"SUB", T(ZM_PUB) | T(ZM_XPUB), ZM_RT_SUB,
                no_send, unicast_more, zm_sub_recv, in_events,
                NULL, zm_sub_attached, zm_sub_incoming, NULL},
    [ZM_REQ] = {"REQ", T(ZM_REP) | T(ZM_ROUTER), ZM_RT_SENDS_ID,
                req_send, unicast_more, req_recv, req_events,
                NULL, probe_attached, zm_route_queue_in, NULL},
    [ZM_REP] = {"REP", T(ZM_REQ) | T(ZM_DEALER), 0,
                rep_send, unicast_more, rep_recv, rep_events,
                NULL, NULL, zm_route_queue_in, NULL},
    [ZM_DEALER] = {"DEALER", T(ZM_REP) | T(ZM_DEALER) | T(ZM_ROUTER),
                   ZM_RT_SENDS_ID,
                   lb_send, unicast_more, fq_recv, dealer_events,
                   NULL, probe_attached, zm_route_queue_in, NULL},
    [ZM_ROUTER] = {"ROUTER", T(ZM_REQ) | T(ZM_DEALER) | T(ZM_ROUTER),
                   ZM_RT_SENDS_ID,
                   router_send, unicast_more, router_recv, router_events,
                   router_admit, probe_attached, zm_route_queue_in, NULL},
    [ZM_PULL] = {"PULL", T(ZM_PUSH), 0,
                 no_send, unicast_more, fq_recv, in_events,
                 NULL, NULL, zm_route_queue_in, NULL},
    [ZM_PUSH] = {"PUSH", T(ZM_PULL), 0,
                 lb_send, unicast_more, no_recv, out_events,
                 NULL, NULL, drop_in, NULL},
    [ZM_XPUB] = {"XPUB", T(ZM_SUB) | T(ZM_XSUB), ZM_RT_PUB,
                 zm_pub_send, zm_fanout_more, zm_xpub_recv, zm_xpub_events,
                 NULL, zm_xpub_attached, zm_xpub_incoming, zm_pub_detached},
    [ZM_XSUB] = {"XSUB", T(ZM_PUB) | T(ZM_XPUB), ZM_RT_SUB,
                 zm_xsub_send, zm_fanout_more, zm_sub_recv, zm_xsub_events,
                 NULL, zm_sub_attached, zm_sub_incoming, zm_xsub_detached},
    /* no ZMTP peer: raw tcp/ipc only */
    [ZM_STREAM] = {"STREAM", 0, ZM_RT_RAW,
                   stream_send, stream_more, router_recv, stream_events,
                   NULL, stream_attached, zm_route_queue_in,
                   stream_detached},
};

#undef T

/* ================================================================== */
/* The public operations (engine.h)                                   */
/* ================================================================== */

const char *zm_socktype_name(int type)
{
    if (type < 0 || type >= ZM_SOCKTYPE_COUNT_)
        return NULL;
    return zm_routes[type].name;
}

int zm_socktype_from_name(const unsigned char *name, size_t len)
{
    for (int t = 0; t < ZM_SOCKTYPE_COUNT_; t++) {
        size_t n = strlen(zm_routes[t].name);
        if (n == len && memcmp(name, zm_routes[t].name, n) == 0)
            return t;
    }
    return -1;
}

int zm_socktype_compatible(int a, int b)
{
    if (a < 0 || a >= ZM_SOCKTYPE_COUNT_ || b < 0 || b >= ZM_SOCKTYPE_COUNT_)
        return 0;
    return (zm_routes[a].peers & (1u << b)) != 0;
}

/* The first frame of a message goes where the type's strategy sends it;
 * the next frames follow it (send_more). */
int zm_sock_send(zm_sock *s, const void *data, size_t n, int more)
{
    const struct zm_route_ops *r = zm_route_of(s);

    if (s->out_more)
        return r->send_more(s, data, n, more);
    return r->send(s, data, n, more);
}

int zm_sock_send_ref(zm_sock *s, zm_page *ref, const void *data, size_t n,
                     int more)
{
    int rc;

    s->send_ref = ref;
    rc = zm_sock_send(s, data, n, more);
    s->send_ref = NULL;
    return rc;
}

int zm_sock_recv(zm_sock *s, zm_msg *out, const unsigned char **prefix,
                 size_t *prefix_len)
{
    *prefix = NULL;
    *prefix_len = 0;
    s->recv_props = NULL;
    return zm_route_of(s)->recv(s, out, prefix, prefix_len);
}

int zm_sock_events(zm_sock *s)
{
    return zm_route_of(s)->events(s);
}
