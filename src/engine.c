/*
 * engine.c - connections, handshakes and routing (see engine.h).
 */
#include "engine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Watch masks, the same bits as backend.h's ZM_IO_IN / ZM_IO_OUT. */
#define WATCH_IN 1u
#define WATCH_OUT 2u

/* ================================================================== */
/* Small helpers                                                      */
/* ================================================================== */

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

static int socktype_from_name(const unsigned char *name, size_t len)
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

/* ------------------------------------------------------------------ */
/* Message FIFO                                                       */
/* ------------------------------------------------------------------ */

/* A message leaves a connection's input queue for the application (or is
 * dropped): an inproc writer's HWM counts it no longer. */
static void conn_pop(zm_conn *c, zm_msg *out)
{
    zm_msgq_pop(&c->inq, out);
    if (c->pipe != NULL)
        zm_pipe_consumed(c->pipe, c->pipe_end, 1);
}

/* Our greeting (ZMTP 3.1, NULL) and READY with Socket-Type `type`, plus
 * Identity when `id` is not NULL: 0, or -ENOMEM. */
static int encode_handshake(zm_wbuf *w, const char *type,
                            const unsigned char *id, size_t id_len)
{
    zm_prop props[2];
    size_t np = 0;

    props[np].name = (const unsigned char *)"Socket-Type";
    props[np].name_len = 11;
    props[np].value = (const unsigned char *)type;
    props[np].value_len = strlen(type);
    np++;
    if (id != NULL) {
        props[np].name = (const unsigned char *)"Identity";
        props[np].name_len = 8;
        props[np].value = id;
        props[np].value_len = id_len;
        np++;
    }
    if (zm_wbuf_reserve(w, ZM_GREETING_SIZE) < 0)
        return -ENOMEM;
    zm_encode_greeting(w->data + w->len, 1, "NULL", 4, 0);
    w->len += ZM_GREETING_SIZE;
    return zm_encode_ready(w, props, np) < 0 ? -ENOMEM : 0;
}

/* ================================================================== */
/* Monitor events                                                     */
/* ================================================================== */

/* The monitor's end is gone (closed by its PAIR socket, or replaced). */
static void mon_close(zm_sock *s)
{
    if (s->mon_fd >= 0)
        close(s->mon_fd);
    s->mon_fd = -1;
    s->mon_events = 0;
    zm_outq_clear(&s->mon_out);
}

/* Write what the kernel takes; the rest waits for the next step. */
static void mon_flush(zm_sock *s)
{
    while (s->mon_fd >= 0 && s->mon_out.bytes > 0) {
        ssize_t n;
        ZM_COUNT(ZM_CNT_OTHER);
        n = zm_outq_send(&s->mon_out, s->mon_fd, s->mon_out.bytes);
        if (n == -EAGAIN || n == -EINTR)
            return;
        if (n < 0)
            mon_close(s); /* EPIPE: the monitor socket was closed */
    }
}

/* The monitor's PAIR sends its greeting and READY, and nothing else we
 * need: read and discard, and notice when it hangs up. */
static void mon_drain(zm_sock *s)
{
    unsigned char junk[512];

    for (int i = 0; i < 8 && s->mon_fd >= 0; i++) {
        ssize_t n;
        ZM_COUNT(ZM_CNT_OTHER);
        n = recv(s->mon_fd, junk, sizeof(junk), MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        mon_close(s);
    }
}

/* Queue one event for the monitor (when it asked for that kind). */
static void mon_event(zm_sock *s, unsigned kind, uint32_t value,
                      const char *endpoint)
{
    unsigned char head[6];
    uint16_t k = (uint16_t)kind;
    zm_wbuf w;
    size_t elen = strlen(endpoint);

    if (s->mon_fd < 0 || !(s->mon_events & kind))
        return;
    if (s->mon_out.bytes > ZM_MONITOR_MAX_BYTES) {
        ZM_STAT_ADD(s->stats.monitor_dropped, 1); /* nobody reads the monitor */
        return;
    }
    /* libzmq's layout: the event and the value in host order. */
    memcpy(head, &k, 2);
    memcpy(head + 2, &value, 4);
    zm_wbuf_init(&w);
    if (zm_encode_frame(&w, head, sizeof(head), ZM_FLAG_MORE) < 0 ||
        zm_encode_frame(&w, endpoint, elen, 0) < 0 ||
        zm_outq_put(&s->mon_out, w.data, w.len) < 0)
        ZM_STAT_ADD(s->stats.monitor_dropped, 1);
    zm_wbuf_free(&w);
    mon_flush(s);
}

int zm_sock_monitor(zm_sock *s, int fd, unsigned events)
{
    zm_wbuf hs;
    int rc = 0;

    if (s->mon_fd >= 0) {
        mon_event(s, ZM_EVENT_MONITOR_STOPPED, 0, "");
        mon_close(s);
    }
    if (fd < 0)
        return 0;
    /* We speak first and never listen: greeting and READY as a PAIR. */
    zm_wbuf_init(&hs);
    if (encode_handshake(&hs, "PAIR", NULL, 0) < 0 ||
        zm_outq_put(&s->mon_out, hs.data, hs.len) < 0) {
        zm_outq_clear(&s->mon_out);
        rc = -ENOMEM;
        goto out;
    }
    s->mon_fd = fd;
    s->mon_events = events;
    mon_flush(s);
out:
    zm_wbuf_free(&hs);
    if (rc < 0)
        close(fd);
    return rc;
}

/* A handshake failed for a protocol reason (sent once per handshake). */
static void mon_handshake_failed(zm_sock *s, zm_conn *c, uint32_t code)
{
    if (c->state != ZM_CS_HANDSHAKE || c->hs_event_sent)
        return;
    c->hs_event_sent = 1;
    mon_event(s, ZM_EVENT_HANDSHAKE_FAILED_PROTOCOL, code, c->endpoint);
}

/* ================================================================== */
/* Connections                                                        */
/* ================================================================== */

static int conn_decoder_reset(zm_sock *s, zm_conn *c)
{
    zm_decoder_config cfg;

    zm_decoder_free(&c->dec);
    zm_decoder_config_default(&cfg);
    cfg.page_size = s->read_buf_size;
    cfg.maxmsgsize = s->maxmsgsize;
    cfg.max_frames = s->max_frames;
    return zm_decoder_init(&c->dec, &cfg) < 0 ? -EINVAL : 0;
}

static zm_conn *conn_new(zm_sock *s)
{
    zm_conn *c = zm_calloc(1, sizeof(zm_conn));

    if (c == NULL)
        return NULL;
    c->fd = -1;
    zm_subs_init(&c->subs, s->peer_max_sub_nodes);
    if (conn_decoder_reset(s, c) < 0) {
        free(c);
        return NULL;
    }
    /* Append, so round-robin follows connection order (as libzmq). */
    zm_conn **pp = &s->conns;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = c;
    return c;
}

/* Output accounting (the invariant is stated at zm_conn in engine.h): a
 * message is queued from its first byte encoded until its last byte is
 * written; the number queued is what SNDHWM limits. */

/* Message and command bytes written so far (enc_total offset of the next
 * byte to go): what is queued, less the handshake at its front. */
static uint64_t conn_sent_offset(const zm_conn *c)
{
    return c->enc_total - (c->out.bytes - c->hs_left);
}

/* The first frame of a message is about to be queued: its span gets its
 * slot in the ring now, so that ending the message cannot fail.  0, or
 * -ENOMEM with nothing changed.  Later frames: nothing to do. */
static int conn_begin_msg(zm_conn *c)
{
    if (c->in_msg)
        return 0;
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
static void conn_end_msg(zm_conn *c)
{
    struct zm_span *e = &c->ends[(c->ends_head + c->ends_n) % c->ends_cap];

    e->start = c->msg_start;
    e->end = c->enc_total;
    c->ends_n++;
}

/* Forget the messages whose last byte is before `w` (enc_total offset). */
static void conn_pop_written(zm_conn *c, uint64_t w)
{
    while (c->ends_n > 0 && c->ends[c->ends_head].end <= w) {
        c->ends_head = (c->ends_head + 1) % c->ends_cap;
        c->ends_n--;
    }
}

static void conn_drop_output(zm_sock *s, zm_conn *c)
{
    ZM_STAT_ADD(s->stats.dropped_msgs, c->ends_n);
    zm_outq_clear(&c->out);
    c->hs_left = 0;
    c->ends_n = 0;
    c->ends_head = 0;
    c->written_total = c->enc_total;
    c->in_msg = 0;
    if (s->out_conn == c && s->out_more)
        s->out_drop = 1;
}

/* Put our greeting and READY in front of whatever is queued. */
static int conn_start_handshake(zm_sock *s, zm_conn *c)
{
    zm_wbuf hs;
    int with_id = s->type == ZM_REQ || s->type == ZM_DEALER ||
                  s->type == ZM_ROUTER;

    zm_wbuf_init(&hs);
    if (encode_handshake(&hs, zm_socktype_name(s->type),
                         with_id ? s->routing_id : NULL,
                         s->routing_id_len) < 0)
        goto nomem;
    /* Queued message bytes (from before the connection) go after it. */
    if (zm_outq_put_front(&c->out, hs.data, hs.len) < 0)
        goto nomem;
    c->hs_left = hs.len;
    c->msg_written = 0;
    {
        int64_t now = zm_now_ns();
        c->hs_deadline_ns = s->handshake_ivl_ms > 0
                                ? now + (int64_t)s->handshake_ivl_ms * 1000000
                                : 0;
        c->last_rx_ns = now;
        c->ping_sent_ns = 0;
        c->peer_ttl_ns = 0;
    }
    zm_wbuf_free(&hs);
    c->got_greeting = 0;
    c->hs_event_sent = 0;
    c->lost_errno = 0;
    c->state = ZM_CS_HANDSHAKE;
    return conn_decoder_reset(s, c);
nomem:
    zm_wbuf_free(&hs);
    return -ENOMEM;
}

/* ------------------------------------------------------------------ */
/* Publish-subscribe helpers                                          */
/* ------------------------------------------------------------------ */

static int is_pub(const zm_sock *s)
{
    return s->type == ZM_PUB || s->type == ZM_XPUB;
}

static int is_sub(const zm_sock *s)
{
    return s->type == ZM_SUB || s->type == ZM_XSUB;
}

/* XPUB: the application has RCVHWM subscription messages to read; stop
 * decoding (the peer waits in our decoder and the kernel) rather than
 * losing one. */
static int xpub_full(const zm_sock *s)
{
    return s->type == ZM_XPUB && s->rcvhwm > 0 &&
           s->xpub_q.n >= (size_t)s->rcvhwm;
}

/* Queue a subscription message (0x01/0x00 + topic) for an XPUB's recv;
 * bounded by RCVHWM like any input. */
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
static void peer_subscription(zm_sock *s, zm_conn *c, int on,
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

static void conn_drop_subscriptions(zm_sock *s, zm_conn *c)
{
    if (!is_pub(s) || c->subs.topics == 0)
        return;
    zm_subs_apply(&c->subs, drop_peer_sub_cb, s);
    zm_subs_clear(&c->subs);
}

/* Queue an encoded command.  Inside a message (frames sent one by one) a
 * command must wait for the last frame: ZMTP has no commands between the
 * frames of a message. */
static void conn_put_encoded(zm_conn *c, zm_wbuf *w, int rc)
{
    if (rc == 0 && c->in_msg) {
        if (zm_wbuf_reserve(&c->deferred, w->len) == 0) {
            memcpy(c->deferred.data + c->deferred.len, w->data, w->len);
            c->deferred.len += w->len;
        }
    } else if (rc == 0 && zm_outq_put(&c->out, w->data, w->len) == 0) {
        c->enc_total += w->len;
    }
    zm_wbuf_free(w);
}

/* A message's last frame is queued: the commands held back go after it. */
static void conn_put_deferred(zm_conn *c)
{
    if (c->deferred.len > 0 &&
        zm_outq_put(&c->out, c->deferred.data, c->deferred.len) == 0)
        c->enc_total += c->deferred.len;
    c->deferred.len = 0;
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
    conn_put_encoded(c, &w, zm_encode_subscription(&w, topic, n, on,
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

/* A fan-out target that goes loses the rest of the message being sent. */
static void untarget(zm_sock *s, const zm_conn *c)
{
    for (size_t i = 0; i < s->ntargets; i++)
        if (s->targets[i] == c)
            s->targets[i] = NULL;
}

static void conn_forget(zm_sock *s, zm_conn *c)
{
    untarget(s, c);
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

/* The interval before the next redial: RECONNECT_IVL, doubling after each
 * failure up to RECONNECT_IVL_MAX (when that is larger), so a peer that
 * refuses us is not hammered. */
static int conn_next_retry_ivl(zm_sock *s, zm_conn *c)
{
    int ivl = c->retry_ivl_ms > 0 ? c->retry_ivl_ms : s->reconnect_ivl_ms;

    if (ivl <= 0)
        ivl = 1;
    if (s->reconnect_ivl_max_ms > s->reconnect_ivl_ms) {
        long next = (long)ivl * 2;
        c->retry_ivl_ms = next > s->reconnect_ivl_max_ms
                              ? s->reconnect_ivl_max_ms
                              : (int)next;
    } else {
        c->retry_ivl_ms = s->reconnect_ivl_ms;
    }
    return ivl;
}

/* The connection's transport is gone (EOF, error, protocol violation). */
/* After a failed dial or a lost connection: redial after the (backed-off)
 * interval, announced to the monitor, or give up when it is not ours to
 * redial or RECONNECT_IVL is -1. */
static void conn_retry_later(zm_sock *s, zm_conn *c, int64_t now)
{
    int ivl;

    if (!c->connecter || s->reconnect_ivl_ms < 0) {
        c->state = ZM_CS_DEAD;
        return;
    }
    ivl = conn_next_retry_ivl(s, c);
    c->state = ZM_CS_RETRY;
    c->retry_at_ns = now + (int64_t)ivl * 1000000;
    mon_event(s, ZM_EVENT_CONNECT_RETRIED, (uint32_t)ivl, c->endpoint);
}

static void conn_pipe_end(zm_sock *s, zm_conn *c);

static void conn_lost(zm_sock *s, zm_conn *c, int64_t now)
{
    if (c->inproc) {
        conn_pipe_end(s, c); /* inproc is never redialled */
        return;
    }
    if (c->fd >= 0) {
        /* libzmq's order: a dial that failed is CLOSED; a connection that
         * was up (or handshaking) is DISCONNECTED, after
         * HANDSHAKE_FAILED_NO_DETAIL when the handshake ended without a
         * protocol reason; the redial is announced last. */
        if (c->state == ZM_CS_CONNECTING) {
            mon_event(s, ZM_EVENT_CLOSED, (uint32_t)c->fd, c->endpoint);
        } else if (c->state == ZM_CS_HANDSHAKE || c->state == ZM_CS_ACTIVE) {
            if (c->state == ZM_CS_HANDSHAKE && !c->hs_event_sent)
                mon_event(s, ZM_EVENT_HANDSHAKE_FAILED_NO_DETAIL,
                          (uint32_t)c->lost_errno, c->endpoint);
            mon_event(s, ZM_EVENT_DISCONNECTED, (uint32_t)c->fd, c->endpoint);
        }
        close(c->fd);
        c->fd = -1;
    }
    if (c->state == ZM_CS_ACTIVE || c->state == ZM_CS_HANDSHAKE)
        ZM_STAT_ADD(s->stats.disconnected, 1);
    conn_drop_subscriptions(s, c);
    untarget(s, c);
    /* What we dialled keeps its queued messages for the next connection,
     * as libzmq keeps its pipe: only a message the peer may have seen part
     * of is lost (the rest of it is cut: a peer never gets half a message),
     * and so is one being sent frame by frame.  Frames of a half-received
     * message die with the decoder. */
    if (c->connecter && s->reconnect_ivl_ms >= 0) {
        zm_outq_drop_front(&c->out, c->hs_left); /* the old handshake */
        c->hs_left = 0;
        if (c->msg_written > 0) {
            uint64_t w = conn_sent_offset(c); /* next byte to go */
            conn_pop_written(c, w);
            if (c->ends_n > 0 && c->ends[c->ends_head].start < w) {
                uint64_t end = c->ends[c->ends_head].end;
                zm_outq_drop_front(&c->out, end - w > c->out.bytes
                                                ? c->out.bytes
                                                : (size_t)(end - w));
                conn_pop_written(c, end);
                ZM_STAT_ADD(s->stats.dropped_msgs, 1);
            }
            c->written_total = c->enc_total - c->out.bytes;
            c->msg_written = 0;
        }
        if (s->out_more && s->out_conn == c) {
            /* A message being sent frame by frame is dropped whole: cut
             * its frames from the kept bytes. */
            uint64_t partial = c->enc_total - c->msg_start;
            if (partial > c->out.bytes)
                partial = c->out.bytes;
            zm_outq_drop_back(&c->out, (size_t)partial);
            c->enc_total -= partial;
            s->out_drop = 1;
            ZM_STAT_ADD(s->stats.dropped_msgs, 1);
        }
        c->in_msg = 0;
    } else {
        conn_drop_output(s, c);
    }
    c->deferred.len = 0; /* PONGs and PINGs for a transport that is gone */
    conn_decoder_reset(s, c);
    conn_retry_later(s, c, now);
    /* A REQ waiting on this peer keeps waiting, as libzmq's does: the
     * caller's RCVTIMEO decides how long. */
}

static void conn_free(zm_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    zm_msg_clear(&c->pipe_out);
    if (c->pipe != NULL)
        zm_pipe_detach(c->pipe, c->pipe_end);
    zm_decoder_free(&c->dec);
    zm_outq_free(&c->out);
    zm_wbuf_free(&c->deferred);
    free(c->ends);
    zm_msgq_free(&c->inq);
    zm_subs_clear(&c->subs);
    free(c);
}

/* Remove dead connections whose input has been consumed. */
static void reap_dead(zm_sock *s)
{
    zm_conn **pp = &s->conns;

    while (*pp != NULL) {
        zm_conn *c = *pp;
        if (c->state == ZM_CS_DEAD && c->inq.n == 0) {
            conn_forget(s, c);
            *pp = c->next;
            conn_free(c);
        } else {
            pp = &c->next;
        }
    }
}

/* Refuse the peer: ERROR command (best effort), count, close. */
static void conn_refuse(zm_sock *s, zm_conn *c, const char *reason,
                        uint32_t code, int64_t now)
{
    zm_wbuf w;

    mon_handshake_failed(s, c, code);
    zm_wbuf_init(&w);
    if (c->fd >= 0 && zm_encode_error(&w, reason, strlen(reason)) == 0) {
        ZM_COUNT(ZM_CNT_OTHER);
        (void)send(c->fd, w.data, w.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    zm_wbuf_free(&w);
    ZM_STAT_ADD(s->stats.handshake_failed, 1);
    conn_lost(s, c, now);
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

/* READY from the peer: socket type check and identity. */
static int conn_on_ready(zm_sock *s, zm_conn *c, const zm_command *cmd,
                         int64_t now)
{
    zm_prop prop;
    char reason[96];

    if (!zm_props_find(cmd->arg, cmd->arg_len, "Socket-Type", &prop)) {
        conn_refuse(s, c, "missing Socket-Type",
                    ZM_PROTO_INVALID_METADATA, now);
        return -1;
    }
    c->peer_type = socktype_from_name(prop.value, prop.value_len);
    if (c->peer_type < 0 || !zm_socktype_compatible(s->type, c->peer_type)) {
        snprintf(reason, sizeof(reason), "invalid socket type %.*s for %s",
                 (int)(prop.value_len < 20 ? prop.value_len : 20),
                 (const char *)prop.value, zm_socktype_name(s->type));
        conn_refuse(s, c, reason, ZM_PROTO_INVALID_METADATA, now);
        return -1;
    }
    if (s->type == ZM_ROUTER) {
        if (zm_props_find(cmd->arg, cmd->arg_len, "Identity", &prop) &&
            prop.value_len > 0 && prop.value_len <= sizeof(c->rid) &&
            prop.value[0] != 0 && find_rid(s, prop.value, prop.value_len) == NULL) {
            memcpy(c->rid, prop.value, prop.value_len);
            c->rid_len = prop.value_len;
        } else {
            /* No id, a reserved one (leading 0x00) or one in use: generate
             * (libzmq drops the newcomer with a duplicate id unless
             * ROUTER_HANDOVER; a fresh id keeps both reachable). */
            conn_generate_rid(s, c);
        }
    }
    if (s->type == ZM_PAIR) {
        for (zm_conn *o = s->conns; o != NULL; o = o->next)
            if (o != c && o->state == ZM_CS_ACTIVE) {
                conn_refuse(s, c, "PAIR socket already has a peer",
                            ZM_PROTO_UNSPECIFIED, now);
                return -1;
            }
    }
    c->state = ZM_CS_ACTIVE;
    c->retry_ivl_ms = 0; /* connected: the backoff starts over */
    mon_event(s, ZM_EVENT_HANDSHAKE_SUCCEEDED, 0, c->endpoint);
    c->next_ping_ns = s->heartbeat_ivl_ms > 0
                          ? zm_now_ns() + (int64_t)s->heartbeat_ivl_ms * 1000000
                          : 0;
    if (c->connecter)
        ZM_STAT_ADD(s->stats.connected, 1);
    if (is_sub(s) && s->subs.topics > 0) {
        /* Our subscriptions go to every new (or reconnected) publisher,
         * ahead of anything else. */
        replay_ctx rc = {c};
        zm_subs_apply(&s->subs, replay_cb, &rc);
    }
    return 0;
}

/* Handle one decoder event; -1 when the connection was closed. */
static int conn_on_event(zm_sock *s, zm_conn *c, zm_event *ev, int64_t now)
{
    switch (ev->kind) {
    case ZM_EV_GREETING:
        c->got_greeting = 1;
        c->peer_minor = ev->greeting.major > 3 ? 1 : ev->greeting.minor;
        if (strcmp(ev->greeting.mechanism, "NULL") != 0) {
            ZM_STAT_ADD(s->stats.protocol_errors[ZM_ERR_MECHANISM], 1);
            conn_refuse(s, c, "unsupported security mechanism",
                        ZM_PROTO_MECHANISM_MISMATCH, now);
            return -1;
        }
        return 0;
    case ZM_EV_COMMAND: {
        int kind = ev->cmd.kind;
        int rc = 0;
        if (c->state == ZM_CS_HANDSHAKE) {
            if (kind == ZM_CMD_READY) {
                rc = conn_on_ready(s, c, &ev->cmd, now);
            } else if (kind == ZM_CMD_ERROR) {
                ZM_STAT_ADD(s->stats.handshake_failed, 1);
                c->hs_event_sent = 1; /* libzmq: DISCONNECTED only */
                conn_lost(s, c, now);
                rc = -1;
            } else {
                conn_refuse(s, c, "expected READY",
                            ZM_PROTO_UNEXPECTED_COMMAND, now);
                rc = -1;
            }
        } else if (kind == ZM_CMD_PING && c->peer_minor >= 1) {
            /* The peer's TTL: how long it may stay silent (tenths of s). */
            c->peer_ttl_ns = (int64_t)ev->cmd.ttl * 100000000;
            /* Answer at once; the reply rides with the next write. */
            zm_wbuf w;
            zm_wbuf_init(&w);
            conn_put_encoded(c, &w, zm_encode_pong(&w, ev->cmd.arg,
                                                   ev->cmd.arg_len));
        } else if (kind == ZM_CMD_ERROR) {
            conn_lost(s, c, now);
            rc = -1;
        } else if ((kind == ZM_CMD_SUBSCRIBE || kind == ZM_CMD_CANCEL) &&
                   is_pub(s)) {
            peer_subscription(s, c, kind == ZM_CMD_SUBSCRIBE, ev->cmd.arg,
                              ev->cmd.arg_len);
        }
        /* PONG, SUBSCRIBE, CANCEL and unknown commands: nothing to do for
         * these socket types. */
        zm_frame_release(&ev->command);
        return rc;
    }
    case ZM_EV_MESSAGE:
        if (c->state != ZM_CS_ACTIVE) {
            zm_msg_clear(&ev->msg);
            conn_refuse(s, c, "message before READY",
                        ZM_PROTO_UNEXPECTED_COMMAND, now);
            return -1;
        }
        if (is_pub(s)) {
            /* Subscriptions in the ZMTP 3.0 message form; other data is
             * ignored by PUB and passed up by XPUB. */
            zm_frame *f = zm_msg_frames(&ev->msg);
            int on;
            const unsigned char *topic;
            size_t tn;
            if (ev->msg.n == 1 &&
                zm_parse_subscription_message(f[0].data, f[0].size, &on,
                                              &topic, &tn)) {
                peer_subscription(s, c, on, topic, tn);
                zm_msg_clear(&ev->msg);
                return 0;
            }
            if (s->type == ZM_PUB) {
                zm_msg_clear(&ev->msg);
                return 0;
            }
        }
        if (s->type == ZM_PUSH) {
            zm_msg_clear(&ev->msg); /* send-only sockets ignore input */
            return 0;
        }
        if (is_sub(s)) {
            zm_frame *f = zm_msg_frames(&ev->msg);
            if (!zm_subs_match(&s->subs, f[0].data, f[0].size)) {
                zm_msg_clear(&ev->msg); /* not subscribed */
                return 0;
            }
        }
        if (zm_msgq_push(&c->inq, &ev->msg) < 0) {
            zm_msg_clear(&ev->msg);
            ZM_STAT_ADD(s->stats.dropped_msgs, 1);
        }
        return 0;
    default:
        ZM_STAT_ADD(s->stats.protocol_errors[ev->error], 1);
        if (!c->got_greeting)
            ZM_STAT_ADD(s->stats.handshake_failed, 1);
        mon_handshake_failed(s, c,
                             ev->error == ZM_ERR_READY ? ZM_PROTO_MALFORMED_COMMAND_READY
                             : ev->error == ZM_ERR_ERROR_CMD ? ZM_PROTO_MALFORMED_COMMAND_ERROR
                             : ev->error == ZM_ERR_COMMAND ? ZM_PROTO_MALFORMED_COMMAND_UNSPECIFIED
                             : ev->error == ZM_ERR_MECHANISM ? ZM_PROTO_MECHANISM_MISMATCH
                             : ZM_PROTO_UNSPECIFIED);
        conn_lost(s, c, now);
        return -1;
    }
}

/* Read and decode what the kernel has, up to RCVHWM queued messages. */
static void conn_read(zm_sock *s, zm_conn *c, int64_t now)
{
    zm_event ev;
    unsigned char *buf;
    size_t room;
    ssize_t n;
    int reads = 0, drained = 0;

    for (;;) {
        while (!xpub_full(s) && zm_decoder_next(&c->dec, &ev) != ZM_EV_NEED_DATA)
            if (conn_on_event(s, c, &ev, now) < 0)
                return;
        if (drained)
            break;
        if (xpub_full(s))
            return; /* resumed once the application reads */
        if (s->rcvhwm > 0 && c->inq.n >= (size_t)s->rcvhwm)
            return; /* the peer waits in the kernel buffer */
        if (s->in_call && c->inq.n >= ZM_READ_AHEAD)
            return; /* the owner is here to take them: decode no further
                     * ahead than the cache holds (see ZM_READ_AHEAD) */
        if (reads++ >= 16)
            return; /* fairness: let the other connections have a turn */
        if (zm_decoder_buffer(&c->dec, &buf, &room) < 0) {
            ZM_STAT_ADD(s->stats.protocol_errors[ZM_ERR_NOMEM], 1);
            conn_lost(s, c, now);
            return;
        }
        ZM_COUNT(ZM_CNT_RECV);
        n = recv(c->fd, buf, room, MSG_DONTWAIT);
        if (n > 0) {
            zm_decoder_commit(&c->dec, (size_t)n);
            c->last_rx_ns = now; /* any traffic counts as liveness */
            c->ping_sent_ns = 0;
            /* Less than asked for: the kernel's buffer was empty, so skip
             * the recv that would only say EAGAIN (the next watch fires
             * when more comes, EOF included). */
            drained = (size_t)n < room;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        c->lost_errno = n < 0 ? errno : 0;
        conn_lost(s, c, now); /* EOF or reset */
        return;
    }
    if (c->dec.state == ZM_DS_HEADER || c->dec.state == ZM_DS_GREETING)
        zm_decoder_release_idle(&c->dec); /* idle: hold no read page */
}

/* Write what may be written: the handshake bytes until READY is in, then
 * everything. */
static void conn_write(zm_sock *s, zm_conn *c, int64_t now)
{
    for (;;) {
        size_t limit = c->state == ZM_CS_ACTIVE ? c->out.bytes : c->hs_left;
        size_t hs;
        ssize_t n;
        if (limit == 0)
            break;
        ZM_COUNT(ZM_CNT_SENDMSG);
        n = zm_outq_send(&c->out, c->fd, limit);
        if (n == -EAGAIN || n == -EINTR)
            break;
        if (n < 0) {
            c->lost_errno = (int)-n;
            conn_lost(s, c, now);
            return;
        }
        hs = (size_t)n < c->hs_left ? (size_t)n : c->hs_left;
        c->hs_left -= hs;
        c->msg_written += (size_t)n - hs;
        if ((size_t)n < limit)
            break; /* the kernel's buffer is full */
    }
    if (c->state != ZM_CS_ACTIVE)
        return;
    c->flush_at_ns = 0; /* nothing is held back any more */
    /* Message bytes written so far, for SNDHWM accounting. */
    c->written_total = conn_sent_offset(c);
    conn_pop_written(c, c->written_total);
}

static void conn_dial(zm_sock *s, zm_conn *c, int64_t now)
{
    int in_progress;
    int fd = zm_connect_start(&c->addr, &in_progress);

    if (fd < 0) {
        /* Refused at once (ipc, unreachable): libzmq closes its descriptor
         * (CLOSED; ours is gone already: value -1) and retries later. */
        mon_event(s, ZM_EVENT_CLOSED, (uint32_t)-1, c->endpoint);
        conn_retry_later(s, c, now);
        return;
    }
    c->fd = fd;
    if (in_progress) {
        c->state = ZM_CS_CONNECTING;
        mon_event(s, ZM_EVENT_CONNECT_DELAYED, EINPROGRESS, c->endpoint);
        return;
    }
    mon_event(s, ZM_EVENT_CONNECTED, (uint32_t)fd, c->endpoint);
    if (conn_start_handshake(s, c) < 0)
        conn_lost(s, c, now);
    else
        conn_write(s, c, now); /* our greeting goes out at once */
}

#define ZM_ACCEPT_BATCH 16

static void listener_accept(zm_sock *s, zm_listener *l, int64_t now)
{
    l->pending = 0;
    l->next_try_ns = now + ZM_ACCEPT_RETRY_NS;
    /* At most ZM_ACCEPT_BATCH a step: every connection accepted may take a
     * read page and a partial message before the step cuts or serves it,
     * so this bounds what a connection flood holds at once (16 x 64 KiB
     * page + 4096-frame array: about 4 MiB). The listener stays pending:
     * the next step, at once, takes the next batch. */
    for (int i = 0; i < ZM_ACCEPT_BATCH; i++) {
        int fd = zm_accept(l->fd, l->addr.transport);
        zm_conn *c;
        if (fd < 0) {
            /* EAGAIN, or a transient error (EMFILE...) */
            if (fd != -EAGAIN)
                mon_event(s, ZM_EVENT_ACCEPT_FAILED, (uint32_t)-fd, l->endpoint);
            return;
        }
        if (i == ZM_ACCEPT_BATCH - 1)
            l->pending = 1; /* maybe more: look again next step */
        c = conn_new(s);
        if (c == NULL) {
            close(fd);
            return;
        }
        c->fd = fd;
        memcpy(c->endpoint, l->endpoint, sizeof(c->endpoint));
        ZM_STAT_ADD(s->stats.accepted, 1);
        mon_event(s, ZM_EVENT_ACCEPTED, (uint32_t)fd, l->endpoint);
        if (conn_start_handshake(s, c) < 0) {
            c->state = ZM_CS_DEAD;
            close(c->fd);
            c->fd = -1;
        }
    }
}

static int64_t heartbeat_timeout_ns(const zm_sock *s)
{
    int ms = s->heartbeat_timeout_ms >= 0 ? s->heartbeat_timeout_ms
                                          : s->heartbeat_ivl_ms;
    return (int64_t)ms * 1000000;
}

/* Handshake deadline, PINGs due, dead peers. */
static void conn_timers(zm_sock *s, zm_conn *c, int64_t now)
{
    if (c->state == ZM_CS_HANDSHAKE) {
        if (c->hs_deadline_ns > 0 && now >= c->hs_deadline_ns) {
            ZM_STAT_ADD(s->stats.handshake_timeouts, 1);
            ZM_STAT_ADD(s->stats.handshake_failed, 1);
            c->lost_errno = ETIMEDOUT;
            conn_lost(s, c, now);
        }
        return;
    }
    if (c->peer_ttl_ns > 0 && now - c->last_rx_ns > c->peer_ttl_ns) {
        ZM_STAT_ADD(s->stats.heartbeat_timeouts, 1);
        conn_lost(s, c, now);
        return;
    }
    if (s->heartbeat_ivl_ms <= 0 || c->peer_minor < 1)
        return; /* ZMTP 3.0 has no PING */
    if (c->ping_sent_ns > 0 && now - c->ping_sent_ns > heartbeat_timeout_ns(s)) {
        ZM_STAT_ADD(s->stats.heartbeat_timeouts, 1);
        conn_lost(s, c, now);
        return;
    }
    if (now >= c->next_ping_ns && c->in_msg) {
        /* No command between the frames of a message: this PING is skipped
         * (the frames themselves are traffic for the peer). */
        c->next_ping_ns = now + (int64_t)s->heartbeat_ivl_ms * 1000000;
    } else if (now >= c->next_ping_ns) {
        zm_wbuf w;
        int ttl = s->heartbeat_ttl_ms / 100;
        zm_wbuf_init(&w);
        conn_put_encoded(c, &w, zm_encode_ping(&w, (uint16_t)(ttl > 65535 ? 65535 : ttl),
                                               NULL, 0));
        if (c->ping_sent_ns == 0)
            c->ping_sent_ns = now;
        c->next_ping_ns = now + (int64_t)s->heartbeat_ivl_ms * 1000000;
    }
}

/* The next time conn_timers() has something to do, or -1. */
static int64_t conn_next_timer(const zm_sock *s, const zm_conn *c)
{
    int64_t t = -1;
#define EARLIER(x) do { int64_t v_ = (x); if (t < 0 || v_ < t) t = v_; } while (0)
    if (c->state == ZM_CS_HANDSHAKE) {
        if (c->hs_deadline_ns > 0)
            EARLIER(c->hs_deadline_ns);
        return t;
    }
    if (c->state != ZM_CS_ACTIVE)
        return -1;
    if (c->peer_ttl_ns > 0)
        EARLIER(c->last_rx_ns + c->peer_ttl_ns + 1);
    if (s->heartbeat_ivl_ms > 0 && c->peer_minor >= 1) {
        EARLIER(c->next_ping_ns);
        if (c->ping_sent_ns > 0)
            EARLIER(c->ping_sent_ns + heartbeat_timeout_ns(s) + 1);
    }
#undef EARLIER
    return t;
}

/* ------------------------------------------------------------------ */
/* inproc connections                                                 */
/* ------------------------------------------------------------------ */

/* The pipe ends (the peer went, we were refused, disconnect, unbind): the
 * connection is DEAD, kept until the application has taken its input. */
static void conn_pipe_end(zm_sock *s, zm_conn *c)
{
    if (c->state == ZM_CS_ACTIVE)
        ZM_STAT_ADD(s->stats.disconnected, 1);
    conn_drop_subscriptions(s, c);
    untarget(s, c);
    if (s->out_more && s->out_conn == c && !s->out_drop) {
        s->out_drop = 1; /* the rest of a message being sent to it */
        ZM_STAT_ADD(s->stats.dropped_msgs, 1);
    }
    zm_msg_clear(&c->pipe_out);
    if (c->pipe != NULL) {
        zm_pipe_detach(c->pipe, c->pipe_end);
        c->pipe = NULL;
    }
    c->state = ZM_CS_DEAD;
}

/* Both ends are known: the socket-type check, PAIR's one peer, the peer's
 * routing id (ROUTER); then ACTIVE and, for a SUB, our subscriptions go
 * to it.  0, or -1 when refused (counted as a failed handshake). */
static int pipe_activate(zm_sock *s, zm_conn *c)
{
    c->peer_type = zm_pipe_peer_type(c->pipe, c->pipe_end);
    if (!zm_socktype_compatible(s->type, c->peer_type)) {
        ZM_STAT_ADD(s->stats.handshake_failed, 1);
        conn_pipe_end(s, c);
        return -1;
    }
    if (s->type == ZM_PAIR) {
        for (zm_conn *o = s->conns; o != NULL; o = o->next)
            if (o != c && o->state == ZM_CS_ACTIVE) {
                ZM_STAT_ADD(s->stats.handshake_failed, 1);
                conn_pipe_end(s, c);
                return -1;
            }
    }
    if (s->type == ZM_ROUTER) {
        unsigned char rid[255];
        size_t n = zm_pipe_peer_rid(c->pipe, c->pipe_end, rid);
        if (n > 0 && rid[0] != 0 && find_rid(s, rid, n) == NULL) {
            memcpy(c->rid, rid, n);
            c->rid_len = n;
        } else {
            conn_generate_rid(s, c); /* as conn_on_ready */
        }
    }
    c->state = ZM_CS_ACTIVE;
    if (c->connecter)
        ZM_STAT_ADD(s->stats.connected, 1);
    else
        ZM_STAT_ADD(s->stats.accepted, 1);
    if (is_sub(s) && s->subs.topics > 0) {
        replay_ctx rc = {c};
        zm_subs_apply(&s->subs, replay_cb, &rc);
    }
    return 0;
}

#define PIPE_BATCH 32

/* An inproc connection's step: attach once the binder adopted the pipe,
 * take what the peer queued (through the same handling as a decoded
 * message: SUB filtering, subscriptions to a PUB), notice its end. */
static void pipe_step(zm_sock *s, zm_conn *c, int64_t now)
{
    zm_msg batch[PIPE_BATCH];
    size_t n, i, kept = 0;
    int gone;

    if (c->pipe == NULL)
        return;
    if (c->state == ZM_CS_CONNECTING) {
        if (!zm_pipe_attached(c->pipe)) {
            if (zm_pipe_peer_gone(c->pipe, c->pipe_end))
                conn_pipe_end(s, c); /* offered, then dropped unadopted */
            return;
        }
        if (pipe_activate(s, c) < 0)
            return;
    }
    /* Read before the queue: a peer that went after queueing has all its
     * messages visible by then (release in zm_pipe_detach). */
    gone = zm_pipe_peer_gone(c->pipe, c->pipe_end);
    do {
        if (xpub_full(s))
            return; /* resumed once the application reads */
        n = zm_pipe_read(c->pipe, c->pipe_end, batch, PIPE_BATCH);
        for (i = 0; i < n; i++) {
            zm_event ev;
            size_t before = c->inq.n;
            ev.kind = ZM_EV_MESSAGE;
            zm_msg_init(&ev.msg);
            zm_msg_move(&ev.msg, &batch[i]);
            /* A message on an ACTIVE connection never ends it (only a
             * decoder's errors or a refused READY do). */
            (void)conn_on_event(s, c, &ev, now);
            if (c->inq.n == before) /* filtered, or a subscription */
                zm_pipe_consumed(c->pipe, c->pipe_end, 1);
            else
                kept++;
        }
        /* Up to ZM_READ_AHEAD messages for the application; what is
         * filtered out does not count, or a SUB could stop with matching
         * messages left in the pipe and no signal to come for them (the
         * writer signals only when the pipe turns non-empty). */
    } while (n == PIPE_BATCH && kept < ZM_READ_AHEAD);
    if (gone && n < PIPE_BATCH)
        conn_pipe_end(s, c); /* all it sent is in the input queue */
}

/* Pipes offered by connecting sockets (zm_mailbox_offer) join the
 * socket's connections.  An offer that cannot be adopted now (out of
 * memory for its connection) waits in adopt_later for the next step: an
 * inproc connection is never redialled, so dropping the pipe would cut
 * the connecting socket off for good. */
static void inproc_adopt(zm_sock *s)
{
    zm_inbox_item *it = s->adopt_later, *fresh = zm_mailbox_take(s->mb);
    zm_inbox_item **tail = &s->adopt_later;

    /* Older offers first: connection order is round-robin order. */
    if (it == NULL) {
        it = fresh;
    } else {
        zm_inbox_item **pp = &it->next;
        while (*pp != NULL)
            pp = &(*pp)->next;
        *pp = fresh;
    }
    s->adopt_later = NULL;
    while (it != NULL) {
        zm_inbox_item *next = it->next;
        zm_conn *c = conn_new(s);
        if (c == NULL) {
            *tail = it; /* this one and the rest: next step */
            return;
        }
        c->inproc = 1;
        c->pipe = it->pipe;
        c->pipe_end = 1;
        c->state = ZM_CS_CONNECTING; /* pipe_step activates it */
        memcpy(c->endpoint, it->endpoint, sizeof(c->endpoint));
        zm_pipe_set_end(c->pipe, 1, s->mb, s->type, s->routing_id,
                        s->routing_id_len, s->sndhwm, s->rcvhwm);
        free(it);
        it = next;
    }
}

/* Everything that can be done on one connection now. */
static void conn_step(zm_sock *s, zm_conn *c, int64_t now)
{
    if (c->inproc) {
        pipe_step(s, c, now);
        return;
    }
    switch (c->state) {
    case ZM_CS_RETRY:
        if (now >= c->retry_at_ns)
            conn_dial(s, c, now);
        break;
    case ZM_CS_CONNECTING: {
        /* Done when writable (or failed); SO_ERROR says which. */
        struct pollfd p = {.fd = c->fd, .events = POLLOUT, .revents = 0};
        ZM_COUNT(ZM_CNT_OTHER);
        if (poll(&p, 1, 0) <= 0)
            break; /* still in progress */
        if (zm_connect_result(c->fd) == 0 && !(p.revents & POLLHUP)) {
            mon_event(s, ZM_EVENT_CONNECTED, (uint32_t)c->fd, c->endpoint);
            if (conn_start_handshake(s, c) < 0)
                conn_lost(s, c, now);
        } else {
            conn_lost(s, c, now);
        }
        break;
    }
    default:
        break;
    }
    if (c->state == ZM_CS_HANDSHAKE || c->state == ZM_CS_ACTIVE) {
        conn_write(s, c, now);
        if (c->fd >= 0)
            conn_read(s, c, now);
        if (c->fd >= 0)
            conn_timers(s, c, now);
        if (c->fd >= 0 && c->out.bytes > 0)
            conn_write(s, c, now); /* PONGs, PINGs, bytes freed by READY */
    }
}

void zm_sock_io_ready(zm_sock *s, int fd)
{
    for (zm_listener *l = s->listeners; l != NULL; l = l->next)
        if (l->fd == fd)
            l->pending = 1;
}

void zm_sock_process(zm_sock *s, int64_t now)
{
    if (s->mb != NULL) {
        /* Before looking at any pipe: an event after this read makes the
         * owner's zm_sock_inproc_arm say "do not sleep". */
        s->mb_seen = zm_mailbox_seq(s->mb);
        inproc_adopt(s);
    }
    if (s->mon_fd >= 0) {
        mon_drain(s);
        mon_flush(s);
    }
    for (zm_listener *l = s->listeners; l != NULL; l = l->next)
        if (l->pending || now >= l->next_try_ns)
            listener_accept(s, l, now);
    for (zm_conn *c = s->conns; c != NULL; c = c->next)
        conn_step(s, c, now);
    reap_dead(s);
}

/* ================================================================== */
/* Socket set-up                                                      */
/* ================================================================== */

int zm_sock_init(zm_sock *s, int type)
{
    memset(s, 0, sizeof(*s));
    switch (type) {
    case ZM_PAIR:
    case ZM_REQ:
    case ZM_REP:
    case ZM_DEALER:
    case ZM_ROUTER:
    case ZM_PULL:
    case ZM_PUSH:
    case ZM_PUB:
    case ZM_SUB:
    case ZM_XPUB:
    case ZM_XSUB:
        break;
    default:
        return -EINVAL;
    }
    s->type = type;
    s->sndhwm = 1000;
    s->rcvhwm = 1000;
    s->maxmsgsize = -1;
    s->reconnect_ivl_ms = 100;
    s->handshake_ivl_ms = 30000; /* libzmq's default */
    s->heartbeat_timeout_ms = -1;
    s->read_buf_size = ZM_PAGE_SIZE_DEFAULT;
    s->write_buf_size = ZM_WRITE_BUF_DEFAULT;
    s->max_frames = ZM_MAX_FRAMES_DEFAULT;
    /* libzmq starts generated ids at a random value. */
    s->next_rid = (uint32_t)(zm_now_ns() ^ (int64_t)(uintptr_t)s);
    zm_msg_init(&s->rep_envelope);
    zm_subs_init(&s->subs, 0);
    s->peer_max_sub_nodes = ZM_SUBS_MAX_NODES_DEFAULT;
    s->mon_fd = -1;
    zm_outq_init(&s->mon_out);
    return 0;
}

static void listener_close(zm_listener *l)
{
    close(l->fd);
    if (l->addr.transport == ZM_TR_IPC) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)&l->addr.ss;
        if (sun->sun_path[0] != '\0')
            unlink(sun->sun_path);
    }
    free(l);
}

void zm_sock_destroy(zm_sock *s)
{
    while (s->listeners != NULL) {
        zm_listener *l = s->listeners;
        s->listeners = l->next;
        mon_event(s, ZM_EVENT_CLOSED, (uint32_t)l->fd, l->endpoint);
        listener_close(l);
    }
    /* The monitor learns the end; what the kernel takes now is all it
     * gets. */
    zm_sock_monitor(s, -1, 0);
    zm_outq_free(&s->mon_out);
    while (s->conns != NULL) {
        zm_conn *c = s->conns;
        s->conns = c->next;
        conn_free(c);
    }
    while (s->adopt_later != NULL) {
        zm_inbox_item *it = s->adopt_later;
        s->adopt_later = it->next;
        zm_pipe_detach(it->pipe, 1); /* offered, never adopted: it ends */
        free(it);
    }
    if (s->mb != NULL) {
        zm_mailbox_close(s->mb); /* pipes offered and not adopted end */
        zm_mailbox_unref(s->mb);
    }
    zm_msg_clear(&s->rep_envelope);
    zm_subs_clear(&s->subs);
    zm_msgq_free(&s->xpub_q);
    free(s->targets);
    if (s->pubpage != NULL)
        zm_page_decref(s->pubpage);
    memset(s, 0, sizeof(*s));
    s->mon_fd = -1;
}

int zm_sock_bind(zm_sock *s, const char *endpoint, int parsed,
                 const zm_addr *addr)
{
    zm_addr a;
    zm_listener *l;
    int fd;

    if (parsed < 0) {
        if (parsed != -EPROTONOSUPPORT)
            mon_event(s, ZM_EVENT_BIND_FAILED, (uint32_t)-parsed, endpoint);
        return parsed;
    }
    a = *addr;
    fd = zm_listen(&a, 128);
    if (fd < 0) {
        mon_event(s, ZM_EVENT_BIND_FAILED, (uint32_t)-fd, endpoint);
        return fd;
    }
    l = zm_calloc(1, sizeof(*l));
    if (l == NULL) {
        close(fd);
        return -ENOMEM;
    }
    l->fd = fd;
    l->pending = 1;
    l->addr = a;
    zm_addr_format(&a, l->endpoint, sizeof(l->endpoint));
    memcpy(s->last_endpoint, l->endpoint, sizeof(s->last_endpoint));
    l->next = s->listeners;
    s->listeners = l;
    mon_event(s, ZM_EVENT_LISTENING, (uint32_t)fd, l->endpoint);
    return 0;
}

int zm_sock_connect(zm_sock *s, const char *endpoint, int parsed,
                    const zm_addr *addr)
{
    zm_conn *c;

    if (parsed < 0)
        return parsed;
    c = conn_new(s);
    if (c == NULL)
        return -ENOMEM;
    c->connecter = 1;
    c->addr = *addr;
    snprintf(c->endpoint, sizeof(c->endpoint), "%s", endpoint);
    snprintf(s->last_endpoint, sizeof(s->last_endpoint), "%s", endpoint);
    c->state = ZM_CS_RETRY;
    c->retry_at_ns = 0; /* dial on the next step */
    conn_dial(s, c, zm_now_ns());
    return 0;
}

int zm_sock_unbind(zm_sock *s, const char *endpoint)
{
    for (zm_listener **pp = &s->listeners; *pp != NULL; pp = &(*pp)->next) {
        zm_listener *l = *pp;
        if (strcmp(l->endpoint, endpoint) == 0) {
            *pp = l->next;
            mon_event(s, ZM_EVENT_CLOSED, (uint32_t)l->fd, l->endpoint);
            listener_close(l);
            return 0;
        }
    }
    return -ENOENT;
}

int zm_sock_disconnect(zm_sock *s, const char *endpoint)
{
    for (zm_conn *c = s->conns; c != NULL; c = c->next) {
        if (c->connecter && c->state != ZM_CS_DEAD &&
            strcmp(c->endpoint, endpoint) == 0) {
            c->connecter = 0; /* no redial */
            conn_lost(s, c, zm_now_ns());
            return 0;
        }
    }
    return -ENOENT;
}

int zm_sock_adopt(zm_sock *s, int fd, const char *endpoint)
{
    zm_conn *c = conn_new(s);

    if (c == NULL) {
        close(fd);
        return -ENOMEM;
    }
    c->fd = fd;
    snprintf(c->endpoint, sizeof(c->endpoint), "%s", endpoint);
    if (conn_start_handshake(s, c) < 0) {
        c->state = ZM_CS_DEAD;
        close(c->fd);
        c->fd = -1;
        return -ENOMEM;
    }
    conn_write(s, c, zm_now_ns());
    return 0;
}

int zm_sock_inproc_enable(zm_sock *s)
{
    if (s->mb == NULL && (s->mb = zm_mailbox_new()) == NULL)
        return -errno;
    return 0;
}

int zm_sock_inproc_connect(zm_sock *s, const char *endpoint, zm_pipe **peer)
{
    zm_pipe *p;
    zm_conn *c;
    int rc = zm_sock_inproc_enable(s);

    if (rc < 0)
        return rc;
    p = zm_pipe_new();
    if (p == NULL)
        return -ENOMEM;
    c = conn_new(s);
    if (c == NULL) {
        zm_pipe_detach(p, 0);
        zm_pipe_detach(p, 1);
        return -ENOMEM;
    }
    c->inproc = 1;
    c->connecter = 1;
    c->pipe = p;
    c->pipe_end = 0;
    c->state = ZM_CS_CONNECTING; /* messages queue in the pipe meanwhile */
    snprintf(c->endpoint, sizeof(c->endpoint), "%s", endpoint);
    snprintf(s->last_endpoint, sizeof(s->last_endpoint), "%s", endpoint);
    zm_pipe_set_end(p, 0, s->mb, s->type, s->routing_id, s->routing_id_len,
                    s->sndhwm, s->rcvhwm);
    *peer = p;
    return 0;
}

int zm_sock_inproc_arm(zm_sock *s)
{
    if (s->mb == NULL)
        return -1;
    if (s->adopt_later != NULL)
        return 1; /* an offer waits for memory: step again */
    return zm_mailbox_arm(s->mb, s->mb_seen);
}

/* ================================================================== */
/* Routing                                                            */
/* ================================================================== */

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

static unsigned char *pubpage_room(zm_sock *s, size_t need);

/* A frame over n bytes at `data` in page p, holding a new reference (none
 * for an empty frame). */
static zm_frame page_slice(zm_page *p, const unsigned char *data, size_t n,
                           int more)
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
static void conn_abort_msg(zm_sock *s, zm_conn *c)
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
        conn_lost(s, c, zm_now_ns());
        return;
    }
    zm_outq_drop_back(&c->out, (size_t)partial);
    c->enc_total = c->msg_start;
    conn_put_deferred(c); /* commands held back for the message's end */
}

/* A send failed with rc (out of memory) part-way through a message to c
 * (NULL: fan-out, whose targets fanout_frame aborted): the message is
 * dropped whole, and the socket is at a message boundary, so the next send
 * starts a new message.  A REQ may send its request again; a REP still
 * owes its reply (rep_replying is cleared only once a reply is whole). */
static int send_failed(zm_sock *s, zm_conn *c, int rc)
{
    if (c != NULL)
        conn_abort_msg(s, c);
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
static void conn_send_soon(zm_sock *s, zm_conn *c, int64_t now)
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
        conn_write(s, c, now);
    } else if (c->flush_at_ns == 0) {
        c->flush_at_ns = s->hold ? now + ZM_HOLD_NS
                                 : c->last_write_ns + ZM_COALESCE_NS;
    }
}

int zm_sock_push_output(zm_sock *s, int64_t now, zm_watch_fn watch, void *ctx)
{
    int n = 0;

    for (zm_conn *c = s->conns; c != NULL; c = c->next) {
        if (c->state != ZM_CS_ACTIVE || c->fd < 0 || c->out.bytes == 0 ||
            c->flush_at_ns > 0)
            continue;
        conn_write(s, c, now);
        if (c->fd >= 0 && c->state == ZM_CS_ACTIVE && c->out.bytes > 0) {
            watch(ctx, c->fd, WATCH_OUT);
            n++;
        }
    }
    return n;
}

int64_t zm_sock_flush_due(const zm_sock *s)
{
    int64_t due = 0;

    for (const zm_conn *c = s->conns; c != NULL; c = c->next)
        if (c->flush_at_ns > 0 && (due == 0 || c->flush_at_ns < due))
            due = c->flush_at_ns;
    return due;
}

int64_t zm_sock_flush(zm_sock *s, int64_t now)
{
    int64_t next = -1;

    for (zm_conn *c = s->conns; c != NULL; c = c->next) {
        if (c->flush_at_ns == 0)
            continue;
        if (now < 0 || now >= c->flush_at_ns) {
            if (c->state == ZM_CS_ACTIVE && c->fd >= 0)
                conn_write(s, c, now < 0 ? zm_now_ns() : now);
            c->flush_at_ns = 0;
        } else if (next < 0 || c->flush_at_ns < next) {
            next = c->flush_at_ns;
        }
    }
    return next;
}

/* The clock for the send path: read once per call (a send costs a few
 * hundred ns; a clock read is tens). */
static int64_t sock_now(zm_sock *s)
{
    if (s->now_ns == 0)
        s->now_ns = zm_now_ns();
    return s->now_ns;
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
        conn_send_soon(s, c, sock_now(s));
    else if (c->state == ZM_CS_CONNECTING || c->state == ZM_CS_HANDSHAKE)
        /* Not ready yet: move the connect and handshake on, so the message
         * can go now rather than at the next blocking call. */
        conn_step(s, c, zm_now_ns());
}

/* Fan-out (PUB, XPUB, XSUB data): the message goes to every target chosen
 * at its first frame; a peer at SNDHWM loses it, the sender never blocks. */
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
                conn_write(s, c, now);
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

/* Fan-out pages: published frames are appended to one socket-owned page;
 * each target's output queue references its slice (consecutive frames to
 * the same target merge into one segment).  The page is rewound once every
 * target has written it, so the steady state allocates nothing. */
#define PUBPAGE_SIZE ((size_t)65536)

static unsigned char *pubpage_room(zm_sock *s, size_t need)
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

static int fanout_frame(zm_sock *s, const void *data, size_t n, int more)
{
    unsigned char *at;
    size_t h = 0, off = 0;

    if (s->ntargets > 0) {
        if (n > SIZE_MAX - 9 || (at = pubpage_room(s, n + 9)) == NULL) {
            /* Out of memory: nobody gets it, nor keeps its first frames. */
            for (size_t i = 0; i < s->ntargets; i++)
                if (s->targets[i] != NULL)
                    conn_abort_msg(s, s->targets[i]);
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
            conn_abort_msg(s, c); /* this peer loses it, all of it */
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
            conn_send_soon(s, c, sock_now(s));
    }
    s->ntargets = 0;
    return 0;
}

static void send_subscription_to_all(zm_sock *s, const unsigned char *topic,
                                     size_t n, int on)
{
    for (zm_conn *c = s->conns; c != NULL; c = c->next) {
        if (c->state != ZM_CS_ACTIVE)
            continue; /* the others get the replay when they are ready */
        conn_send_subscription(c, topic, n, on);
        if (c->fd >= 0)
            conn_write(s, c, zm_now_ns());
    }
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
        rc = fanout_frame(s, data, n, more);
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
                send_subscription_to_all(s, topic, tn, 1);
            } else if (zm_subs_rm(&s->subs, topic, tn) == 0) {
                send_subscription_to_all(s, topic, tn, 0);
                purge_unmatched(s);
            }
            return 0;
        }
        __attribute__((fallthrough)); /* data goes to every publisher */
    }
    case ZM_PUB:
    case ZM_XPUB:
        rc = fanout_choose(s, data, n);
        if (rc == 0)
            rc = fanout_frame(s, data, n, more);
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

size_t zm_sock_pending_out(const zm_sock *s)
{
    size_t n = 0;

    for (const zm_conn *c = s->conns; c != NULL; c = c->next)
        if (c->state != ZM_CS_DEAD && (c->state == ZM_CS_ACTIVE || c->connecter))
            n += c->out.bytes;
    return n;
}

int64_t zm_sock_watch(zm_sock *s, zm_watch_fn watch, void *ctx)
{
    int64_t next = -1;

    for (zm_listener *l = s->listeners; l != NULL; l = l->next)
        watch(ctx, l->fd, WATCH_IN);
    if (s->mon_fd >= 0)
        watch(ctx, s->mon_fd, WATCH_IN | (s->mon_out.bytes > 0 ? WATCH_OUT : 0u));
    for (zm_conn *c = s->conns; c != NULL; c = c->next) {
        unsigned ev = 0;
        if (c->inproc)
            continue; /* the owner's wait watches the mailbox instead */
        switch (c->state) {
        case ZM_CS_CONNECTING:
            ev = WATCH_OUT;
            break;
        case ZM_CS_RETRY:
            if (next < 0 || c->retry_at_ns < next)
                next = c->retry_at_ns;
            break;
        case ZM_CS_HANDSHAKE:
        case ZM_CS_ACTIVE: {
            size_t limit = c->state == ZM_CS_ACTIVE ? c->out.bytes : c->hs_left;
            int64_t t = conn_next_timer(s, c);
            if (t >= 0 && (next < 0 || t < next))
                next = t;
            if ((s->rcvhwm <= 0 || c->inq.n < (size_t)s->rcvhwm) &&
                !xpub_full(s))
                ev |= WATCH_IN;
            if (limit > 0)
                ev |= WATCH_OUT;
            break;
        }
        default:
            break;
        }
        if (ev != 0 && c->fd >= 0)
            watch(ctx, c->fd, ev);
    }
    return next;
}
