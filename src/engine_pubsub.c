/*
 * engine_pubsub.c - publish-subscribe: a PUB/XPUB's peers' subscriptions
 * (per peer trie, XPUB's subscription messages), the fan-out of a
 * published message (targets chosen at its first frame, each frame
 * encoded once into a shared page), a SUB/XSUB's own subscriptions (sent
 * upstream, replayed to each new publisher, queued input purged).
 *
 * May call: engine_conn.c (write), engine_route.c (abort a message,
 * write soon), the socket's step (zm_sock_process: a publishing loop),
 * and the layers below (codec, outq, inproc pipes, trie, msg).
 * Must never call it: the layers below; the Python face and progress.c
 * (zm_sock_subscribe through engine.h only).
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

/* Queue a subscription message (0x01/0x00 + topic) for an XPUB's recv;
 * bounded by RCVHWM like any input. */
static void xpub_notify(zm_sock *s, int on, const unsigned char *topic,
                        size_t n)
{
    zm_msg m;

    if (s->type != ZM_XPUB)
        return;
    if (subscription_msg(&m, on, topic, n) == 0 &&
        zm_msgq_push(&s->xpub_q, &m) < 0)
        zm_msg_clear(&m);
}

/* A peer of a PUB/XPUB subscribes or cancels. */
void zm_pub_peer_subscription(zm_sock *s, zm_conn *c, int on,
                              const unsigned char *topic, size_t n)
{
    int64_t rc;

    if (on) {
        if (zm_subs_count(&c->subs, topic, n) > 0) {
            if (s->xpub_verbose)
                xpub_notify(s, 1, topic, n); /* a duplicate, passed up */
            return;
        }
        rc = zm_subs_add(&c->subs, topic, n);
        if (rc < 0) {
            ZM_STAT_ADD(s->stats.subs_refused, 1);
            return;
        }
        rc = zm_subs_add(&s->subs, topic, n);
        if (rc == 1 || (rc > 0 && s->xpub_verbose))
            xpub_notify(s, 1, topic, n);
    } else {
        if (zm_subs_rm(&c->subs, topic, n) < 0)
            return; /* not subscribed: nothing to cancel */
        if (zm_subs_rm(&s->subs, topic, n) == 0)
            xpub_notify(s, 0, topic, n);
    }
}

/* A PUB/XPUB peer is gone: its subscriptions go with it. */
static void drop_peer_sub_cb(void *ctx, const unsigned char *topic, size_t n,
                             uint32_t count)
{
    zm_sock *s = ctx;

    (void)count;
    if (zm_subs_rm(&s->subs, topic, n) == 0)
        xpub_notify(s, 0, topic, n);
}

void zm_pub_drop_peer(zm_sock *s, zm_conn *c)
{
    if (!is_pub(s) || c->subs.topics == 0)
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

/* Our subscriptions go to every new (or reconnected) publisher, ahead of
 * anything else. */
void zm_sub_replay(zm_sock *s, zm_conn *c)
{
    replay_ctx rc = {c};
    zm_subs_apply(&s->subs, replay_cb, &rc);
}

/* A fan-out target that goes loses the rest of the message being sent. */
void zm_pub_untarget(zm_sock *s, const zm_conn *c)
{
    for (size_t i = 0; i < s->ntargets; i++)
        if (s->targets[i] == c)
            s->targets[i] = NULL;
}

/* Fan-out (PUB, XPUB, XSUB data): the message goes to every target chosen
 * at its first frame; a peer at SNDHWM loses it, the sender never blocks. */
int zm_pub_fanout_choose(zm_sock *s, const void *data, size_t n)
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
        if (is_pub(s) && !zm_subs_match(&c->subs, data, n))
            continue;
        if (c->inproc) {
            if (!zm_pipe_writable(c->pipe, c->pipe_end)) {
                ZM_STAT_ADD(s->stats.dropped_msgs, 1); /* at the pipe's HWM */
                continue;
            }
        } else if (s->sndhwm > 0 && c->ends_n >= (size_t)s->sndhwm) {
            /* Maybe it caught up: nothing else writes to it while the
             * application only sends. */
            if (c->fd >= 0)
                zm_conn_write(s, c, now);
            if (c->state != ZM_CS_ACTIVE || c->ends_n >= (size_t)s->sndhwm) {
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

int zm_pub_fanout_frame(zm_sock *s, const void *data, size_t n, int more)
{
    unsigned char *at;
    size_t h = 0, off = 0;

    if (s->ntargets > 0) {
        if (n > SIZE_MAX - 9 || (at = pubpage_room(s, n + 9)) == NULL) {
            /* Out of memory: nobody gets it, nor keeps its first frames. */
            for (size_t i = 0; i < s->ntargets; i++)
                if (s->targets[i] != NULL)
                    zm_conn_abort_msg(s, s->targets[i]);
            s->ntargets = 0;
            return -ENOMEM;
        }
        /* Encoded once, whatever the number of subscribers. */
        h = zm_frame_header(at, n, more ? ZM_FLAG_MORE : 0);
        if (n > 0)
            memcpy(at + h, data, n);
        off = s->pubpage->len;
        s->pubpage->len += h + n;
    }
    for (size_t i = 0; i < s->ntargets; i++) {
        zm_conn *c = s->targets[i];
        if (c == NULL)
            continue;
        if (c->inproc) {
            /* The frame's bytes, without the header: a reference, not a
             * copy, whatever the number of inproc subscribers. */
            zm_frame f = page_slice(s->pubpage, s->pubpage->data + off + h,
                                    n, more);
            if (zm_msg_push(&c->pipe_out, &f) < 0) {
                zm_frame_release(&f);
                zm_msg_clear(&c->pipe_out);
                s->targets[i] = NULL; /* out of memory: this peer loses it */
            }
            continue;
        }
        if (conn_begin_msg(c) < 0) { /* its first frame: nothing queued */
            s->targets[i] = NULL; /* out of memory: this peer loses it */
            continue;
        }
        if (zm_outq_put_shared(&c->out, s->pubpage, off, h + n) == 0) {
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

void zm_sub_send_all(zm_sock *s, const unsigned char *topic,
                                     size_t n, int on)
{
    for (zm_conn *c = s->conns; c != NULL; c = c->next) {
        if (c->state != ZM_CS_ACTIVE)
            continue; /* the others get the replay when they are ready */
        conn_send_subscription(c, topic, n, on);
        if (c->fd >= 0)
            zm_conn_write(s, c, zm_now_ns());
    }
}

/* SUB/XSUB: a topic's count reached zero; queued messages that no longer
 * match go now, so POLLIN stays exact (libzmq's SUB reads ahead). */
void zm_sub_purge_unmatched(zm_sock *s)
{
    for (zm_conn *c = s->conns; c != NULL; c = c->next) {
        size_t n = c->inq.n;
        for (size_t i = 0; i < n; i++) {
            zm_msg m;
            zm_frame *f;
            zm_msgq_pop(&c->inq, &m);
            f = zm_msg_frames(&m);
            if (zm_subs_match(&s->subs, f[0].data, f[0].size)) {
                (void)zm_msgq_push(&c->inq, &m); /* rotates; no growth */
            } else {
                zm_msg_clear(&m);
                if (c->pipe != NULL)
                    zm_pipe_consumed(c->pipe, c->pipe_end, 1);
            }
        }
    }
}

int zm_sock_subscribe(zm_sock *s, const void *topic, size_t n, int on)
{
    int64_t rc;

    if (!is_sub(s))
        return -ENOTSUP;
    if (on) {
        rc = zm_subs_add(&s->subs, topic, n);
        if (rc < 0)
            return (int)rc;
        /* Every subscribe goes upstream (libzmq 4.3 does the same: an XPUB
         * proxy upstream may want the duplicates). */
        zm_sub_send_all(s, topic, n, 1);
    } else {
        rc = zm_subs_rm(&s->subs, topic, n);
        if (rc == 0) { /* the last one: cancel upstream */
            zm_sub_send_all(s, topic, n, 0);
            zm_sub_purge_unmatched(s);
        }
    }
    return 0;
}
