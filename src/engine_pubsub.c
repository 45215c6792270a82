/*
 * engine_pubsub.c - publish-subscribe: a PUB/XPUB's peers' subscriptions
 * (a trie per peer, XPUB's subscription messages), the fan-out of a
 * published message (targets chosen at its first frame, each frame
 * encoded once into a shared page), a SUB/XSUB's own subscriptions (sent
 * upstream, replayed to each new publisher, queued input purged), and the
 * strategies of the PUB, SUB, XPUB and XSUB entries of zm_routes (send,
 * receive, readiness, a peer attached or detached, a message arriving).
 *
 * May call: engine_conn.c (write, queue a command), engine_route.c (abort
 * a message, a failed send, write soon), the socket's step
 * (zm_sock_process: a publishing loop), and the layers below (codec,
 * outq, inproc pipes, trie, msg).
 * Must never call it: the layers below.  The Python face and progress.c
 * use zm_sock_subscribe and zm_sock_send/recv/events (engine.h); the
 * engine's other files reach it through zm_routes, except a connection
 * passing on a peer's SUBSCRIBE/CANCEL command
 * (zm_pub_peer_subscription).
 */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

/* A subscription in the message form, 0x01 (on) or 0x00 + topic, as one
 * frame in its own page: 0 or -ENOMEM. */
static int subscription_msg(zm_msg *m, int on, const unsigned char *topic,
                            size_t n)
{
    zm_frame f = {NULL, NULL, 0, 0};

    zm_msg_init(m);
    if (n > SIZE_MAX - 1 || (f.page = zm_page_new(n + 1)) == NULL)
        return -ENOMEM;
    f.page->data[0] = on ? 1 : 0;
    if (n > 0)
        memcpy(f.page->data + 1, topic, n);
    f.page->len = n + 1;
    f.data = f.page->data;
    f.size = n + 1;
    if (zm_msg_push(m, &f) < 0) {
        zm_frame_release(&f);
        return -ENOMEM;
    }
    return 0;
}

/* Queue a subscription message (0x01/0x00 + topic) from peer `from` (NULL:
 * none) for an XPUB's recv; bounded by RCVHWM like any input.  The peer
 * goes in the ring beside xpub_q: XPUB_MANUAL's SUBSCRIBE applies to the
 * peer of the last one received. */
static void xpub_notify(zm_sock *s, zm_conn *from, int on,
                        const unsigned char *topic, size_t n)
{
    zm_msg m;

    if (s->type != ZM_XPUB)
        return;
    if (s->xpub_from_n == s->xpub_from_cap) {
        zm_conn **r = zm_grow(s->xpub_from, &s->xpub_from_cap,
                              &s->xpub_from_head, s->xpub_from_n,
                              s->xpub_from_n + 1, sizeof(*r), 16);
        if (r == NULL)
            return; /* out of memory: the notification is lost */
        s->xpub_from = r;
    }
    if (subscription_msg(&m, on, topic, n) < 0)
        return;
    if (zm_msgq_push(&s->xpub_q, &m) < 0) {
        zm_msg_clear(&m);
        return;
    }
    s->xpub_from[(s->xpub_from_head + s->xpub_from_n++) % s->xpub_from_cap] =
        from;
}

void zm_pub_forget(zm_sock *s, const zm_conn *c)
{
    if (s->xpub_last == c)
        s->xpub_last = NULL;
    for (size_t i = 0; i < s->xpub_from_n; i++) {
        zm_conn **at = &s->xpub_from[(s->xpub_from_head + i) %
                                     s->xpub_from_cap];
        if (*at == c)
            *at = NULL;
    }
}

/* PUB, XPUB: XPUB_WELCOME_MSG goes to every new subscriber first. */
void zm_xpub_attached(zm_sock *s, zm_conn *c)
{
    if (s->welcome != NULL)
        zm_conn_send_one(s, c, s->welcome, s->welcome_len);
}

/* A peer of a PUB/XPUB subscribes or cancels. */
void zm_pub_peer_subscription(zm_sock *s, zm_conn *c, int on,
                              const unsigned char *topic, size_t n)
{
    int64_t rc;

    if (s->xpub_manual) {
        /* XPUB_MANUAL: every (un)subscription is passed up and none
         * applied; the application subscribes the peer itself. */
        xpub_notify(s, c, on, topic, n);
        return;
    }
    if (on) {
        if (zm_subs_count(&c->subs, topic, n) > 0) {
            if (s->xpub_verbose)
                xpub_notify(s, c, 1, topic, n); /* a duplicate, passed up */
            return;
        }
        rc = zm_subs_add(&c->subs, topic, n);
        if (rc < 0) {
            ZM_STAT_ADD(s->stats.subs_refused, 1);
            return;
        }
        rc = zm_subs_add(&s->subs, topic, n);
        if (rc == 1 || (rc > 0 && s->xpub_verbose))
            xpub_notify(s, c, 1, topic, n);
    } else {
        if (zm_subs_rm(&c->subs, topic, n) < 0)
            return; /* not subscribed: nothing to cancel */
        /* the last one, or any with XPUB_VERBOSER */
        if (zm_subs_rm(&s->subs, topic, n) == 0 || s->xpub_verboser)
            xpub_notify(s, c, 0, topic, n);
    }
}

/* A PUB/XPUB peer is gone: its subscriptions go with it. */
static void drop_peer_sub_cb(void *ctx, const unsigned char *topic, size_t n,
                             uint32_t count)
{
    zm_sock *s = ctx;

    (void)count;
    if (zm_subs_rm(&s->subs, topic, n) == 0 || s->xpub_verboser)
        xpub_notify(s, NULL, 0, topic, n);
}

static void conn_drop_subscriptions(zm_sock *s, zm_conn *c)
{
    if (c->subs.topics == 0)
        return;
    zm_subs_apply(&c->subs, drop_peer_sub_cb, s);
    zm_subs_clear(&c->subs);
}

static void conn_send_subscription(zm_conn *c, const unsigned char *topic,
                                   size_t n, int on)
{
    zm_wbuf w;

    if (c->inproc) {
        /* The message form, which a PUB or XPUB takes as a subscription
         * from any peer. */
        zm_msg m;
        if (c->pipe != NULL && subscription_msg(&m, on, topic, n) == 0)
            (void)zm_pipe_write(c->pipe, c->pipe_end, &m);
        return;
    }

    zm_wbuf_init(&w);
    zm_conn_put_encoded(c, &w, zm_encode_subscription(&w, topic, n, on,
                                                   c->peer_minor));
}

typedef struct {
    zm_conn *c;
} replay_ctx;

static void replay_cb(void *ctx, const unsigned char *topic, size_t n,
                      uint32_t count)
{
    (void)count;
    conn_send_subscription(((replay_ctx *)ctx)->c, topic, n, 1);
}

/* SUB, XSUB: our subscriptions go to every new (or reconnected)
 * publisher, ahead of anything else. */
void zm_sub_attached(zm_sock *s, zm_conn *c)
{
    if (c->subs_early)
        return; /* sent at connect (zm_sub_connected_inproc), and since */
    if (s->subs.topics > 0) {
        replay_ctx rc = {c};
        zm_subs_apply(&s->subs, replay_cb, &rc);
    }
}

void zm_sub_connected_inproc(zm_sock *s, zm_conn *c)
{
    if (s->type != ZM_SUB && s->type != ZM_XSUB)
        return;
    /* A PUB sending right after our connect (before this socket is called
     * again) would otherwise find no subscription: the pipe carries them
     * ahead of anything else, whatever the binder's type (an incompatible
     * one drops the pipe unread). */
    c->subs_early = 1;
    if (s->subs.topics > 0) {
        replay_ctx rc = {c};
        zm_subs_apply(&s->subs, replay_cb, &rc);
    }
}

/* A fan-out target that goes loses the rest of the message being sent. */
void zm_pub_untarget(zm_sock *s, const zm_conn *c)
{
    for (size_t i = 0; i < s->ntargets; i++)
        if (s->targets[i] == c)
            s->targets[i] = NULL;
}

/* XPUB_NODROP: a subscriber of the message is at SNDHWM: nobody gets it
 * and send says EAGAIN (libzmq's dist check_hwm), so a blocking send
 * waits for room. */
static int fanout_wait(zm_sock *s)
{
    s->ntargets = 0;
    return -EAGAIN;
}

/* Fan-out (PUB, XPUB, XSUB data): the message goes to every target chosen
 * at its first frame; a peer at SNDHWM loses it (XPUB_NODROP: the send
 * waits), the sender never blocks. */
static int fanout_choose(zm_sock *s, const void *data, size_t n)
{
    /* send() never waits here, so a publishing loop would never accept,
     * handshake or read subscriptions (and the progress thread leaves a
     * busy socket to its owner): step the socket every millisecond. */
    int64_t now = sock_now(s);
    if (now >= s->fanout_step_ns) {
        s->fanout_step_ns = now + 1000000;
        zm_sock_process(s, now);
    }
    s->ntargets = 0;
    for (zm_conn *c = s->conns; c != NULL; c = c->next) {
        if (c->state != ZM_CS_ACTIVE)
            continue;
        if (is_pub(s) &&
            (zm_subs_match(&c->subs, data, n) != 0) == s->invert_matching)
            continue; /* INVERT_MATCHING: those that do not match */
        if (c->inproc) {
            if (!zm_pipe_writable(c->pipe, c->pipe_end)) {
                if (s->xpub_nodrop)
                    return fanout_wait(s);
                ZM_STAT_ADD(s->stats.dropped_msgs, 1); /* at the pipe's HWM */
                continue;
            }
        } else if (s->sndhwm > 0 && c->ends_n >= (size_t)s->sndhwm) {
            /* Maybe it caught up: nothing else writes to it while the
             * application only sends. */
            if (c->fd >= 0)
                zm_conn_write(s, c, now);
            if (c->state != ZM_CS_ACTIVE || c->ends_n >= (size_t)s->sndhwm) {
                if (s->xpub_nodrop && c->state == ZM_CS_ACTIVE)
                    return fanout_wait(s);
                ZM_STAT_ADD(s->stats.dropped_msgs, 1); /* this subscriber is too slow */
                continue;
            }
        }
        if (s->ntargets == s->cap_targets) {
            zm_conn **t = zm_grow(s->targets, &s->cap_targets, NULL,
                                  s->ntargets, s->ntargets + 1, sizeof(*t), 8);
            if (t == NULL) {
                s->ntargets = 0; /* nobody gets it */
                return -ENOMEM;
            }
            s->targets = t;
        }
        s->targets[s->ntargets++] = c;
    }
    return 0;
}

static int fanout_frame(zm_sock *s, const void *data, size_t n, int more)
{
    unsigned char *at;
    size_t h = 0, off = 0, body, roff = 0;
    int qrc;
    zm_page *ref = send_ref_of(s, data, n, &roff); /* large: by reference */

    body = ref != NULL ? 0 : n; /* bytes that go into the fan-out page */
    if (s->ntargets > 0) {
        if (n > SIZE_MAX - 9 || (at = pubpage_room(s, body + 9)) == NULL) {
            /* Out of memory: nobody gets it, nor keeps its first frames. */
            for (size_t i = 0; i < s->ntargets; i++)
                if (s->targets[i] != NULL)
                    zm_conn_abort_msg(s, s->targets[i]);
            s->ntargets = 0;
            return -ENOMEM;
        }
        /* Encoded once, whatever the number of subscribers. */
        h = zm_frame_header(at, n, more ? ZM_FLAG_MORE : 0);
        if (body > 0)
            memcpy(at + h, data, body);
        off = s->pubpage->len;
        s->pubpage->len += h + body;
    }
    for (size_t i = 0; i < s->ntargets; i++) {
        zm_conn *c = s->targets[i];
        if (c == NULL)
            continue;
        if (c->inproc) {
            /* The frame's bytes, without the header: a reference, not a
             * copy, whatever the number of inproc subscribers. */
            zm_frame f;
            if (ref != NULL)
                f = page_slice(ref, zm_page_bytes(ref) + roff, n, more);
            else
                f = page_slice(s->pubpage, s->pubpage->data + off + h, n,
                               more);
            if (zm_msg_push(&c->pipe_out, &f) < 0) {
                zm_frame_release(&f);
                zm_msg_clear(&c->pipe_out);
                s->targets[i] = NULL; /* out of memory: this peer loses it */
            }
            continue;
        }
        if (ZM_UNLIKELY(s->conflate_out) && !c->in_msg)
            zm_conn_conflate_out(c); /* CONFLATE: replaces the unsent */
        if (conn_begin_msg(c) < 0) { /* its first frame: nothing queued */
            s->targets[i] = NULL; /* out of memory: this peer loses it */
            continue;
        }
        qrc = zm_outq_put_shared(&c->out, s->pubpage, off, h + body);
        if (qrc == 0 && ref != NULL &&
            (qrc = zm_outq_put_shared(&c->out, ref, roff, n)) < 0)
            zm_outq_drop_back(&c->out, h); /* not its header alone */
        if (qrc == 0) {
            c->enc_total += h + n;
            if (!more) {
                c->in_msg = 0;
                conn_put_deferred(c);
            }
        } else {
            zm_conn_abort_msg(s, c); /* this peer loses it, all of it */
            s->targets[i] = NULL;
        }
    }
    if (more)
        return 0;
    for (size_t i = 0; i < s->ntargets; i++) {
        zm_conn *c = s->targets[i];
        if (c == NULL)
            continue;
        if (c->inproc) {
            (void)zm_pipe_write(c->pipe, c->pipe_end, &c->pipe_out);
            continue;
        }
        conn_end_msg(c);
        if (c->fd >= 0 && c->state == ZM_CS_ACTIVE)
            zm_conn_send_soon(s, c, sock_now(s));
    }
    s->ntargets = 0;
    return 0;
}

static void send_subscription_to_all(zm_sock *s, const unsigned char *topic,
                                     size_t n, int on)
{
    for (zm_conn *c = s->conns; c != NULL; c = c->next) {
        if (c->state != ZM_CS_ACTIVE && !c->subs_early)
            continue; /* the others get the replay when they are ready */
        conn_send_subscription(c, topic, n, on);
        if (c->fd >= 0)
            zm_conn_write(s, c, zm_now_ns());
    }
}

/* SUB, XSUB: a message whose first frame is `data` is for the
 * application: it matches a subscription, or with INVERT_MATCHING it
 * matches none. */
static int sub_wants(const zm_sock *s, const unsigned char *data, size_t n)
{
    return (zm_subs_match(&s->subs, data, n) != 0) != s->invert_matching;
}

/* SUB/XSUB: a topic's count reached zero; queued messages that no longer
 * match go now, so POLLIN stays exact (libzmq's SUB reads ahead). */
static void purge_unmatched(zm_sock *s)
{
    for (zm_conn *c = s->conns; c != NULL; c = c->next) {
        size_t n = c->inq.n;
        for (size_t i = 0; i < n; i++) {
            zm_msg m;
            zm_frame *f;
            zm_msgq_pop(&c->inq, &m);
            f = zm_msg_frames(&m);
            if (sub_wants(s, f[0].data, f[0].size)) {
                (void)zm_msgq_push(&c->inq, &m); /* rotates; no growth */
            } else {
                zm_msg_clear(&m);
                if (c->pipe != NULL)
                    zm_pipe_consumed(c->pipe, c->pipe_end, 1);
            }
        }
        if (c->inq.n == 0 && c->in_listed)
            in_list_del(s, c); /* nothing of it matched */
    }
}

/* SUB, XSUB: subscribe or unsubscribe (zm_sock_subscribe, or an XSUB's
 * subscription message): 0, or -ENOMEM. */
static int subscribe(zm_sock *s, const void *topic, size_t n, int on)
{
    int64_t rc;

    if (on) {
        rc = zm_subs_add(&s->subs, topic, n);
        if (rc < 0)
            return (int)rc;
        /* Every subscribe goes upstream (libzmq 4.3 does the same: an XPUB
         * proxy upstream may want the duplicates). */
        send_subscription_to_all(s, topic, n, 1);
    } else {
        rc = zm_subs_rm(&s->subs, topic, n);
        if (rc == 0) { /* the last one: cancel upstream */
            send_subscription_to_all(s, topic, n, 0);
            purge_unmatched(s);
        }
    }
    return 0;
}

/* XPUB_MANUAL: SUBSCRIBE / UNSUBSCRIBE on the XPUB apply to the peer of
 * the subscription message received last (libzmq's xpub.cpp: nothing
 * when it is gone).  0, or -ENOMEM. */
static int manual_subscribe(zm_sock *s, const unsigned char *topic, size_t n,
                            int on)
{
    zm_conn *c = s->xpub_last;

    if (c == NULL || c->state != ZM_CS_ACTIVE)
        return 0;
    if (on) {
        if (zm_subs_count(&c->subs, topic, n) > 0)
            return 0;
        if (zm_subs_add(&c->subs, topic, n) < 0)
            return -ENOMEM;
        if (zm_subs_add(&s->subs, topic, n) < 0) {
            (void)zm_subs_rm(&c->subs, topic, n);
            return -ENOMEM;
        }
    } else if (zm_subs_rm(&c->subs, topic, n) >= 0) {
        (void)zm_subs_rm(&s->subs, topic, n);
    }
    return 0;
}

int zm_sock_subscribe(zm_sock *s, const void *topic, size_t n, int on)
{
    if (is_pub(s) && s->xpub_manual)
        return manual_subscribe(s, topic, n, on);
    if (!is_sub(s))
        return -ENOTSUP;
    return subscribe(s, topic, n, on);
}

/* ================================================================== */
/* Strategies of the pub-sub types (zm_routes, engine_route.c)        */
/* ================================================================== */

/* PUB, XPUB (and XSUB's data): to every subscriber, chosen at the first
 * frame; never blocks. */
int zm_pub_send(zm_sock *s, const void *data, size_t n, int more)
{
    int rc = fanout_choose(s, data, n);

    if (rc == 0)
        rc = fanout_frame(s, data, n, more);
    if (rc < 0)
        return zm_send_failed(s, NULL, rc);
    s->out_more = more;
    s->out_drop = 0;
    return 0;
}

/* XSUB: a subscription message (0x01/0x00 + topic) subscribes; other
 * data goes to every publisher. */
int zm_xsub_send(zm_sock *s, const void *data, size_t n, int more)
{
    int on;
    const unsigned char *topic;
    size_t tn;

    if (!more && zm_parse_subscription_message(data, n, &on, &topic, &tn))
        return subscribe(s, topic, tn, on);
    if (more && s->only_first_subscribe &&
        zm_parse_subscription_message(data, n, &on, &topic, &tn)) {
        /* ONLY_FIRST_SUBSCRIBE (libzmq's xsub.cpp): the first frame of a
         * multipart message subscribes (upstream as a SUBSCRIBE); the
         * frames after it go to every publisher as data, a message of
         * their own (zm_fanout_more). */
        int rc = subscribe(s, topic, tn, on);
        if (rc == 0)
            rc = fanout_choose(s, NULL, 0);
        if (rc < 0)
            return zm_send_failed(s, NULL, rc);
        s->out_more = 1;
        s->out_drop = 0;
        return 0;
    }
    return zm_pub_send(s, data, n, more);
}

/* The next frames of a fanned-out message go to the same targets. */
int zm_fanout_more(zm_sock *s, const void *data, size_t n, int more)
{
    int rc = fanout_frame(s, data, n, more);

    if (rc < 0)
        return zm_send_failed(s, NULL, rc);
    if (!more)
        s->out_more = 0;
    return 0;
}

/* SUB, XSUB: fair queueing of what still matches (subscriptions may have
 * changed since these were queued). */
int zm_sub_recv(zm_sock *s, zm_msg *out, const unsigned char **prefix,
                size_t *prefix_len)
{
    (void)prefix;
    (void)prefix_len;
    for (;;) {
        zm_frame *f;
        zm_conn *c = pick_in(s);
        if (c == NULL)
            return -EAGAIN;
        conn_pop(c, out);
        f = zm_msg_frames(out);
        if (sub_wants(s, f[0].data, f[0].size))
            return 0;
        zm_msg_clear(out);
    }
}

/* XPUB: subscription messages first, then what peers sent (fair
 * queueing). */
int zm_xpub_recv(zm_sock *s, zm_msg *out, const unsigned char **prefix,
                 size_t *prefix_len)
{
    zm_conn *c;

    (void)prefix;
    (void)prefix_len;
    if (s->xpub_q.n > 0) {
        zm_msgq_pop(&s->xpub_q, out);
        if (s->xpub_from_n > 0) { /* the peer it came from */
            s->xpub_last = s->xpub_from[s->xpub_from_head];
            s->xpub_from_head = (s->xpub_from_head + 1) % s->xpub_from_cap;
            s->xpub_from_n--;
        }
        return 0;
    }
    c = pick_in(s);
    if (c == NULL)
        return -EAGAIN;
    conn_pop(c, out);
    return 0;
}

/* PUB: always writable (never blocks on send), never readable. */
int zm_pub_events(zm_sock *s)
{
    (void)s;
    return ZM_POLLOUT;
}

/* XPUB: always writable; readable with a subscription or a message. */
int zm_xpub_events(zm_sock *s)
{
    return ZM_POLLOUT | (s->xpub_q.n > 0 ? ZM_POLLIN : 0) |
           zm_route_any_in(s);
}

/* XSUB: always writable; readable with a message. */
int zm_xsub_events(zm_sock *s)
{
    return ZM_POLLOUT | zm_route_any_in(s);
}

/* A message from a PUB/XPUB's peer: a subscription in the ZMTP 3.0
 * message form, or data (0 when taken as a subscription). */
static int pub_take_subscription(zm_sock *s, zm_conn *c, zm_msg *msg)
{
    zm_frame *f = zm_msg_frames(msg);
    int on;
    const unsigned char *topic;
    size_t tn;

    if (msg->n == 1 &&
        zm_parse_subscription_message(f[0].data, f[0].size, &on, &topic,
                                      &tn)) {
        zm_pub_peer_subscription(s, c, on, topic, tn);
        zm_msg_clear(msg);
        return 0;
    }
    if (msg->n > 1 && s->only_first_subscribe &&
        zm_parse_subscription_message(f[0].data, f[0].size, &on, &topic,
                                      &tn)) {
        /* ONLY_FIRST_SUBSCRIBE (libzmq's xpub.cpp): a message whose first
         * frame is a subscription has every frame of that form applied;
         * its other frames are dropped (libzmq passes them up one by
         * one, without the message they came in: docs/decisions.md).  A
         * message whose first frame is data stays data, whatever follows. */
        for (size_t i = 0; i < msg->n; i++)
            if (zm_parse_subscription_message(f[i].data, f[i].size, &on,
                                              &topic, &tn))
                zm_pub_peer_subscription(s, c, on, topic, tn);
        zm_msg_clear(msg);
        return 0;
    }
    return -1;
}

/* PUB: subscriptions are taken, other data ignored. */
void zm_pub_incoming(zm_sock *s, zm_conn *c, zm_msg *msg)
{
    if (pub_take_subscription(s, c, msg) < 0)
        zm_msg_clear(msg);
}

/* XPUB: subscriptions are taken, other data passed up. */
void zm_xpub_incoming(zm_sock *s, zm_conn *c, zm_msg *msg)
{
    if (pub_take_subscription(s, c, msg) < 0)
        zm_route_queue_in(s, c, msg);
}

/* SUB, XSUB: what we are not subscribed to is dropped at once. */
void zm_sub_incoming(zm_sock *s, zm_conn *c, zm_msg *msg)
{
    zm_frame *f = zm_msg_frames(msg);

    if (!sub_wants(s, f[0].data, f[0].size)) {
        zm_msg_clear(msg); /* not subscribed */
        return;
    }
    zm_route_queue_in(s, c, msg);
}

/* PUB, XPUB: a peer's subscriptions go with it, and it loses the rest of
 * a message being fanned out. */
void zm_pub_detached(zm_sock *s, zm_conn *c)
{
    conn_drop_subscriptions(s, c);
    zm_pub_untarget(s, c);
}

/* XSUB: a publisher loses the rest of a message being fanned out. */
void zm_xsub_detached(zm_sock *s, zm_conn *c)
{
    zm_pub_untarget(s, c);
}
