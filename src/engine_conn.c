/*
 * engine_conn.c - one tcp/ipc connection (zm_conn, engine.h): its state
 * machine (CONNECTING, RETRY, HANDSHAKE, ACTIVE, DEAD), dialling and
 * redialling with backoff, the handshake (the greeting, then the socket's
 * mechanism through mechanism.h: the connection never knows which one it
 * speaks; admitting the peer it describes), reading and decoding,
 * writing, a lost transport (what output survives a redial), timers
 * (handshake deadline, heartbeats).  A STREAM socket's connections are
 * raw (zm_route_raw): no greeting, no mechanism, no decoder; ACTIVE at
 * once, each read a one-frame message, each send the bytes as given.
 *
 * May call: mechanism.h (start, handle, status, the peer's metadata,
 * end), engine_route.c (admitting a peer, a message's routing on
 * arrival, a peer detached), engine_pubsub.c (a peer's subscription
 * commands), engine_inproc.c (the step of an inproc connection),
 * engine_monitor.c (events), and the layers below (codec, outq,
 * transport, trie, msg).
 * Must never call it: the layers below, the Python face and progress.c
 * (they drive connections through the socket, engine.h).
 */
#include "engine_int.h"
#include "sodium.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Our greeting (ZMTP 3.1, NULL) and READY with Socket-Type `type`, plus
 * Identity when `id` is not NULL: 0, or -ENOMEM.  The NULL mechanism's
 * first bytes, for a handshake nobody answers (the monitor's PAIR). */
int zm_encode_handshake(zm_wbuf *w, const char *type,
                        const unsigned char *id, size_t id_len)
{
    zm_mech m;
    zm_mech_config cfg = {.socktype = type, .identity = id,
                          .identity_len = id_len, .as_server = 0};
    int rc = zm_mech_start(&m, &zm_mech_null, &cfg, w);

    zm_mech_end(&m);
    return rc < 0 ? -ENOMEM : 0;
}

/* The frame size allowed while the handshake is on (engine.h:
 * ZM_HANDSHAKE_FRAME_MAX, or MAXMSGSIZE when smaller); MAXMSGSIZE once
 * the connection is ACTIVE (conn_activate). */
static int64_t handshake_frame_max(const zm_sock *s)
{
    return s->maxmsgsize >= 0 && s->maxmsgsize < ZM_HANDSHAKE_FRAME_MAX
               ? s->maxmsgsize
               : ZM_HANDSHAKE_FRAME_MAX;
}

/* An accepted connection's handshake holds one of the socket's
 * ZM_HANDSHAKES_MAX places until it ends either way. */
static void conn_hs_slot_take(zm_sock *s, zm_conn *c)
{
    if (!c->hs_slot && !c->connecter && !c->inproc &&
        c->state == ZM_CS_HANDSHAKE) {
        c->hs_slot = 1;
        s->hs_accepted++;
    }
}

static void conn_hs_slot_give(zm_sock *s, zm_conn *c)
{
    if (c->hs_slot) {
        c->hs_slot = 0;
        s->hs_accepted--;
    }
}

size_t zm_handshakes_max(void)
{
    const char *v = getenv("ZMTP_HANDSHAKES_MAX");
    char *end;
    unsigned long n;

    if (v == NULL || *v == '\0')
        return ZM_HANDSHAKES_MAX;
    n = strtoul(v, &end, 10);
    return *end == '\0' && n >= 1 && n <= 1000000 ? (size_t)n
                                                  : ZM_HANDSHAKES_MAX;
}

int zm_sock_may_accept(zm_sock *s)
{
    if (s->hs_accepted < s->hs_max) {
        s->accept_paused = 0;
        return 1;
    }
    if (!s->accept_paused) {
        s->accept_paused = 1;
        ZM_STAT_ADD(s->stats.accepts_paused, 1);
    }
    return 0;
}

static int conn_decoder_reset(zm_sock *s, zm_conn *c)
{
    zm_decoder_config cfg;

    zm_decoder_free(&c->dec);
    zm_decoder_config_default(&cfg);
    cfg.page_size = s->read_buf_size;
    cfg.maxmsgsize = handshake_frame_max(s); /* until ACTIVE */
    cfg.max_frames = s->max_frames;
    cfg.opaque_ready = zm_mech_seals(&c->mech); /* CURVE's READY is a box */
    return zm_decoder_init(&c->dec, &cfg) < 0 ? -EINVAL : 0;
}

zm_conn *zm_conn_new(zm_sock *s)
{
    zm_conn *c = zm_calloc(1, sizeof(zm_conn));

    if (c == NULL)
        return NULL;
    c->fd = -1;
    c->sock = s;
    zm_subs_init(&c->subs, s->peer_max_sub_nodes);
    if (conn_decoder_reset(s, c) < 0) {
        free(c);
        return NULL;
    }
    /* Append, so round-robin follows connection order (as libzmq). */
    c->prev = s->conns_tail;
    if (s->conns_tail != NULL)
        s->conns_tail->next = c;
    else
        s->conns = c;
    s->conns_tail = c;
    zm_hot_add(s, c); /* not in the readiness set: stepped every step */
    return c;
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

/* Handshake bytes of ours go out before any message: after those still
 * unwritten at the front of the output (hs_left), ahead of the rest.
 * 0, or -ENOMEM (then the unwritten handshake may be gone: the caller
 * closes the connection). */
static int conn_put_handshake(zm_conn *c, const unsigned char *data,
                              size_t n)
{
    struct iovec iov[ZM_OUTQ_IOV];
    zm_wbuf all;
    int k, rc = -ENOMEM;

    if (c->hs_left == 0) {
        if (zm_outq_put_front(&c->out, data, n) < 0)
            return -ENOMEM;
        c->hs_left = n;
        return 0;
    }
    /* A mechanism answered while our earlier bytes wait for the kernel:
     * they and the answer become one front segment, in that order. */
    zm_wbuf_init(&all);
    k = zm_outq_iov(&c->out, iov, ZM_OUTQ_IOV, c->hs_left);
    for (int i = 0; i < k; i++) {
        if (zm_wbuf_reserve(&all, iov[i].iov_len) < 0)
            goto out;
        memcpy(all.data + all.len, iov[i].iov_base, iov[i].iov_len);
        all.len += iov[i].iov_len;
    }
    if (all.len != c->hs_left || zm_wbuf_reserve(&all, n) < 0)
        goto out;
    memcpy(all.data + all.len, data, n);
    all.len += n;
    zm_outq_drop_front(&c->out, c->hs_left);
    c->hs_left = 0;
    if (zm_outq_put_front(&c->out, all.data, all.len) == 0) {
        c->hs_left = all.len;
        rc = 0;
    }
out:
    zm_wbuf_free(&all);
    return rc;
}

static void conn_activate(zm_sock *s, zm_conn *c);
static int conn_build_props(zm_conn *c, const zm_mech_peer *p);

/* STREAM: a raw connection has no handshake; it is ACTIVE (and announced
 * to the socket type, which notifies the application) as soon as its
 * transport is up, as libzmq's raw engine. */
static int conn_start_raw(zm_sock *s, zm_conn *c)
{
    static const zm_mech_peer no_metadata;

    /* its messages carry Peer-Address only, as libzmq's raw engine's */
    if (c->props != NULL) {
        zm_page_decref(c->props);
        c->props = NULL;
    }
    if (conn_build_props(c, &no_metadata) < 0)
        return -ENOMEM;
    zm_outq_drop_front(&c->out, c->hs_left); /* none: no greeting */
    c->hs_left = 0;
    c->raw = 1;
    c->msg_written = 0;
    c->hs_deadline_ns = 0;
    c->last_rx_ns = zm_now_ns();
    c->ping_sent_ns = 0;
    c->peer_ttl_ns = 0;
    c->peer_minor = 0; /* no PINGs: conn_timers has nothing to do */
    c->got_greeting = 1;
    /* libzmq: HANDSHAKE_FAILED_NO_DETAIL at the end, unless we close it
     * (a close asked for before the connection came up) */
    c->hs_event_sent = c->raw_closing;
    c->lost_errno = 0;
    conn_activate(s, c);
    return 0;
}

/*
 * Our greeting goes out in two stages, as libzmq's: the signature and
 * the major version (ZM_GREETING_STAGE octets) at once, the rest (minor
 * version, mechanism, as-server) and the mechanism's first commands once
 * the peer's first ZM_GREETING_STAGE octets arrived (conn_greeting_rest).
 * A libzmq peer sends its whole greeting on our eleventh octet, before it
 * can read our mechanism: so we always learn its mechanism, and a
 * mismatch is HANDSHAKE_FAILED_PROTOCOL(MECHANISM_MISMATCH) on both
 * sides.  Sent at once, our 64 octets (and READY) let libzmq read our
 * mechanism and close before writing its own (its queued greeting dies
 * with the connection; our unread READY makes the close a reset): we saw
 * only a lost connection, HANDSHAKE_FAILED_NO_DETAIL.  A peer that waits
 * for our whole greeting before sending its own waits for libzmq's too.
 */
#define ZM_GREETING_STAGE 11

/* ZMTP/2.0 (RFC 15) is spoken only with a socket that needs no security:
 * the NULL mechanism and no ZAP domain (libzmq 4.3.5 refuses a 2.0 peer
 * whenever ZAP is enabled, which any other mechanism implies). */
static int conn_v2_allowed(const zm_sock *s, const zm_conn *c)
{
    return c->mech.ops == &zm_mech_null && s->zap_domain_len == 0;
}

/* Our socket type as a 2.0 greeting gives it: libzmq's numbers, which are
 * RFC 15's, with XPUB and XSUB as PUB and SUB ("API constructs only"). */
static uint8_t v2_socket_type(int type)
{
    return (uint8_t)(type == ZM_XPUB ? ZM_PUB : type == ZM_XSUB ? ZM_SUB : type);
}

/* The peer greets in ZMTP/2.0 (its revision octet is 0x01): as libzmq
 * 4.3.5, our greeting is finished in 2.0, our socket-type octet and
 * identity frame instead of the rest of our 3.1 greeting and the
 * mechanism's commands.  A socket that needs security sends nothing
 * more: conn_on_greeting_v2 refuses the peer.  0, or -ENOMEM. */
static int conn_greeting_v2(zm_sock *s, zm_conn *c)
{
    zm_wbuf w;
    int rc = 0;

    zm_wbuf_free(&c->hs_held);
    c->v2 = 1;
    if (!conn_v2_allowed(s, c))
        return 0;
    zm_wbuf_init(&w);
    if (zm_encode_greeting_v2(&w, v2_socket_type(s->type),
                              zm_route_sends_id(s) ? s->routing_id : NULL,
                              zm_route_sends_id(s) ? s->routing_id_len : 0) < 0 ||
        conn_put_handshake(c, w.data, w.len) < 0)
        rc = -ENOMEM;
    zm_wbuf_free(&w);
    return rc;
}

/* The peer's first octets arrived: the rest of our greeting goes, in
 * ZMTP/2.0 when the peer's revision octet asks for it. */
static int conn_greeting_rest(zm_sock *s, zm_conn *c)
{
    int rc;

    if (ZM_UNLIKELY(zm_decoder_peer_revision(&c->dec) == ZM_ZMTP20_REVISION))
        return conn_greeting_v2(s, c);
    rc = conn_put_handshake(c, c->hs_held.data, c->hs_held.len);
    zm_wbuf_free(&c->hs_held); /* an idle connection keeps none */
    return rc;
}

/* Start the socket's mechanism: our greeting (its first stage) goes in
 * front of whatever is queued, the rest waits in hs_held. */
int zm_conn_start_handshake(zm_sock *s, zm_conn *c)
{
    zm_wbuf hs;
    const zm_mech_ops *ops = s->mech_ops != NULL ? s->mech_ops : &zm_mech_null;
    zm_mech_config cfg = s->mech_cfg;

    if (ZM_UNLIKELY(zm_route_raw(s)))
        return conn_start_raw(s, c);
    cfg.socktype = zm_socktype_name(s->type);
    cfg.identity = zm_route_sends_id(s) ? s->routing_id : NULL;
    cfg.identity_len = s->routing_id_len;
    cfg.null_zap = s->zap_domain_len > 0; /* libzmq 4.3.5: NULL asks ZAP */
    cfg.zap_enforce = s->zap_enforce_domain;
    zm_mech_end(&c->mech); /* a previous transport's, if any */
    zm_wbuf_init(&hs);
    if (zm_mech_start(&c->mech, ops, &cfg, &hs) < 0)
        goto nomem;
    /* Queued message bytes (from before the connection) go after it. */
    zm_wbuf_free(&c->hs_held); /* a previous transport's, if any */
    c->hs_rx = 0;
    if (conn_put_handshake(c, hs.data, ZM_GREETING_STAGE) < 0 ||
        zm_wbuf_reserve(&c->hs_held, hs.len - ZM_GREETING_STAGE) < 0)
        goto nomem;
    memcpy(c->hs_held.data, hs.data + ZM_GREETING_STAGE,
           hs.len - ZM_GREETING_STAGE);
    c->hs_held.len = hs.len - ZM_GREETING_STAGE;
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
    zm_secure_zero(cfg.curve_secret, sizeof(cfg.curve_secret));
    c->got_greeting = 0;
    c->zap_id = 0;
    if (c->props != NULL) { /* a previous transport's */
        zm_page_decref(c->props);
        c->props = NULL;
    }
    c->hs_event_sent = 0;
    c->lost_errno = 0;
    c->v2 = 0;
    c->state = ZM_CS_HANDSHAKE;
    if (conn_decoder_reset(s, c) < 0)
        return -EINVAL;
    conn_hs_slot_take(s, c);
    return 0;
nomem:
    zm_wbuf_free(&hs);
    zm_secure_zero(cfg.curve_secret, sizeof(cfg.curve_secret));
    return -ENOMEM;
}

/* Queue an encoded command.  Inside a message (frames sent one by one) a
 * command must wait for the last frame: ZMTP has no commands between the
 * frames of a message. */
void zm_conn_put_encoded(zm_conn *c, zm_wbuf *w, int rc)
{
    if (rc == 0 && !c->hot)
        zm_hot_add(c->sock, c); /* written at the next step */
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
    zm_mon_event(s, ZM_EVENT_CONNECT_RETRIED, (uint32_t)ivl, c->endpoint);
}

/* The connection's transport is gone (EOF, error, protocol violation). */
void zm_conn_lost(zm_sock *s, zm_conn *c, int64_t now)
{
    conn_hs_slot_give(s, c);
    if (c->inproc) {
        zm_inproc_end(s, c); /* inproc is never redialled */
        return;
    }
    if (c->fd >= 0) {
        /* libzmq's order: a dial that failed is CLOSED; a connection that
         * was up (or handshaking) is DISCONNECTED, after
         * HANDSHAKE_FAILED_NO_DETAIL when the handshake ended without a
         * protocol reason; the redial is announced last. */
        if (c->state == ZM_CS_CONNECTING) {
            zm_mon_event(s, ZM_EVENT_CLOSED, (uint32_t)c->fd, c->endpoint);
        } else if (c->state == ZM_CS_HANDSHAKE || c->state == ZM_CS_ACTIVE) {
            /* A raw (STREAM) connection never finishes a handshake in
             * libzmq's eyes: its end says NO_DETAIL too. */
            if ((c->state == ZM_CS_HANDSHAKE || c->raw) && !c->hs_event_sent)
                zm_mon_event(s, ZM_EVENT_HANDSHAKE_FAILED_NO_DETAIL,
                          (uint32_t)c->lost_errno, c->endpoint);
            zm_mon_event(s, ZM_EVENT_DISCONNECTED, (uint32_t)c->fd, c->endpoint);
        }
        zm_rset_forget(s, c);
        close(c->fd);
        c->fd = -1;
    }
    if (c->state == ZM_CS_ACTIVE || c->state == ZM_CS_HANDSHAKE)
        ZM_STAT_ADD(s->stats.disconnected, 1);
    zm_route_detached(s, c);
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
    c->sealed = 0;
    zm_msg_clear(&c->unsealed); /* part of a message: it dies with the peer */
    zm_mech_end(&c->mech);
    conn_decoder_reset(s, c);
    conn_retry_later(s, c, now);
    /* A REQ waiting on this peer keeps waiting, as libzmq's does: the
     * caller's RCVTIMEO decides how long. */
}

void zm_conn_free(zm_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    if (c->raw_page != NULL)
        zm_page_decref(c->raw_page);
    zm_msg_clear(&c->pipe_out);
    if (c->pipe != NULL)
        zm_pipe_detach(c->pipe, c->pipe_end);
    zm_mech_end(&c->mech);
    if (c->props != NULL)
        zm_page_decref(c->props);
    zm_msg_clear(&c->unsealed);
    zm_decoder_free(&c->dec);
    zm_outq_free(&c->out);
    zm_wbuf_free(&c->hs_held);
    zm_wbuf_free(&c->deferred);
    free(c->ends);
    zm_msgq_free(&c->inq);
    zm_subs_clear(&c->subs);
    free(c);
}

/* Refuse the peer: ERROR command (best effort, when there is a reason),
 * count, close.  The monitor has heard why (HANDSHAKE_FAILED_*). */
static void conn_close_refused_as(zm_sock *s, zm_conn *c, const char *reason,
                                  int libzmq_plain, int64_t now)
{
    zm_wbuf w;
    unsigned char body[5 + 1 + 255];
    size_t n;

    zm_wbuf_init(&w);
    /* The rest of our greeting (unwritten yet when we refuse the peer's)
     * goes first, so that the peer learns our mechanism too; ERROR only
     * after the whole of it. */
    if (c->fd >= 0 && c->hs_left > 0 && c->hs_held.len == 0) {
        ssize_t sent = zm_outq_send(&c->out, c->fd, c->hs_left);
        if (sent > 0)
            c->hs_left -= (size_t)sent;
    }
    if (c->hs_left > 0 || c->hs_held.len > 0 || c->v2)
        reason = NULL; /* (ZMTP/2.0 has no ERROR command) */
    n = reason != NULL ? strlen(reason) : 0;
    if (libzmq_plain && n <= 255) { /* mechanism.h: zm_mech_fail */
        memcpy(body, ZM_LIBZMQ_PLAIN_ERROR, 5);
        body[5] = (unsigned char)n;
        memcpy(body + 6, reason, n);
    }
    if (c->fd >= 0 && reason != NULL &&
        (libzmq_plain ? zm_encode_frame(&w, body, 6 + n, ZM_FLAG_COMMAND)
                      : zm_encode_error(&w, reason, n)) == 0) {
        ZM_COUNT(ZM_CNT_OTHER);
        (void)send(c->fd, w.data, w.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    zm_wbuf_free(&w);
    ZM_STAT_ADD(s->stats.handshake_failed, 1);
    zm_conn_lost(s, c, now);
}

static void conn_close_refused(zm_sock *s, zm_conn *c, const char *reason,
                               int64_t now)
{
    conn_close_refused_as(s, c, reason, 0, now);
}

/* Refuse the peer for a protocol reason (HANDSHAKE_FAILED_PROTOCOL). */
static void conn_refuse(zm_sock *s, zm_conn *c, const char *reason,
                        uint32_t code, int64_t now)
{
    zm_mon_handshake_failed(s, c, code);
    conn_close_refused(s, c, reason, now);
}

/* The mechanism failed: close the way its failure says (mechanism.h). */
static void conn_mech_failed(zm_sock *s, zm_conn *c, int64_t now)
{
    const zm_mech_fail *f = &c->mech.fail;

    switch (f->kind) {
    case ZM_MECH_FAIL_PEER:
        ZM_STAT_ADD(s->stats.handshake_failed, 1);
        c->hs_event_sent = 1; /* libzmq: DISCONNECTED only */
        zm_conn_lost(s, c, now);
        break;
    case ZM_MECH_FAIL_AUTH:
        if (!c->hs_event_sent) {
            c->hs_event_sent = 1;
            zm_mon_event(s, ZM_EVENT_HANDSHAKE_FAILED_AUTH, f->code,
                         c->endpoint);
        }
        conn_close_refused_as(s, c, f->reason, f->libzmq_plain, now);
        break;
    case ZM_MECH_FAIL_PROTOCOL:
        conn_refuse(s, c, f->reason, f->code, now);
        break;
    case ZM_MECH_FAIL_NO_DETAIL:
        if (!c->hs_event_sent) {
            c->hs_event_sent = 1;
            zm_mon_event(s, ZM_EVENT_HANDSHAKE_FAILED_NO_DETAIL, f->code,
                         c->endpoint);
        }
        conn_close_refused(s, c, NULL, now);
        break;
    default: /* out of memory */
        c->lost_errno = ENOMEM;
        zm_conn_lost(s, c, now);
        break;
    }
}

/* The connection's properties, as libzmq 4.3.5 gives them to each of
 * its messages (zmq_msg_gets; zmtp: Frame.get): Peer-Address (the peer's
 * IP, or "localhost:UID:GID:PID" for ipc), then ZAP's User-Id and
 * metadata (c->props so far), then the peer's metadata as it sent it
 * (Socket-Type, Identity, X-...).  One property list, looked up by exact
 * name; of two equal names the first wins, as in libzmq's map.  0, or
 * -ENOMEM. */
static int conn_build_props(zm_conn *c, const zm_mech_peer *p)
{
    static const char peer_address[] = "Peer-Address";
    const size_t nlen = sizeof(peer_address) - 1;
    char addr[96];
    size_t alen = zm_conn_peer_address(c, addr, sizeof(addr));
    size_t zlen = c->props != NULL ? c->props->len : 0;
    size_t n = (alen > 0 ? 1 + nlen + 4 + alen : 0) + zlen + p->props_len;
    zm_page *pg = zm_page_new(n > 0 ? n : 1);
    unsigned char *w;

    if (pg == NULL)
        return -ENOMEM;
    w = pg->data;
    if (alen > 0) {
        *w++ = (unsigned char)nlen;
        memcpy(w, peer_address, nlen);
        w += nlen;
        zm_put_u32(w, (uint32_t)alen);
        memcpy(w + 4, addr, alen);
        w += 4 + alen;
    }
    if (zlen > 0)
        memcpy(w, c->props->data, zlen);
    w += zlen;
    if (p->props_len > 0)
        memcpy(w, p->props, p->props_len);
    pg->len = n;
    if (c->props != NULL)
        zm_page_decref(c->props);
    c->props = pg;
    return 0;
}

/* The mechanism is done (or a ZMTP/2.0 greeting described the peer): is
 * the peer `p` describes one we talk to?  Its socket type (RFC 28-31
 * pairs), then routing's say (ROUTER's ids, PAIR's one peer).  0, or -1
 * when refused (closed). */
static int conn_admit(zm_sock *s, zm_conn *c, const zm_mech_peer *p,
                      int64_t now)
{
    char reason[96];
    const char *refused;

    if (!p->has_socktype) {
        conn_refuse(s, c, "missing Socket-Type",
                    ZM_PROTO_INVALID_METADATA, now);
        return -1;
    }
    c->peer_type = zm_socktype_from_name(p->socktype, p->socktype_len);
    if (c->peer_type < 0 || !zm_socktype_compatible(s->type, c->peer_type)) {
        snprintf(reason, sizeof(reason), "invalid socket type %.*s for %s",
                 (int)(p->socktype_len < 20 ? p->socktype_len : 20),
                 (const char *)p->socktype, zm_socktype_name(s->type));
        conn_refuse(s, c, reason, ZM_PROTO_INVALID_METADATA, now);
        return -1;
    }
    if (conn_build_props(c, p) < 0) {
        c->lost_errno = ENOMEM;
        zm_conn_lost(s, c, now);
        return -1;
    }
    /* ROUTER id, PAIR's one */
    refused = zm_route_admit(s, c, p->has_identity ? p->identity : NULL,
                             p->identity_len);
    if (refused != NULL) {
        conn_refuse(s, c, refused, ZM_PROTO_UNSPECIFIED, now);
        return -1;
    }
    /* Decided once, here: a mechanism that seals frames (CURVE) has them
     * sealed on their way out (conn_seal_some) and opened on their way in
     * (conn_unseal); the per-message paths never look at it. */
    c->sealed = zm_mech_seals(&c->mech);
    return 0;
}

/* The peer is admitted: traffic may flow. */
static void conn_activate(zm_sock *s, zm_conn *c)
{
    c->state = ZM_CS_ACTIVE;
    conn_hs_slot_give(s, c);
    c->dec.cfg.maxmsgsize = s->maxmsgsize; /* the handshake's bound is off */
    c->retry_ivl_ms = 0; /* connected: the backoff starts over */
    if (!c->raw) /* libzmq's raw engine has no handshake to announce */
        zm_mon_event(s, ZM_EVENT_HANDSHAKE_SUCCEEDED, 0, c->endpoint);
    c->next_ping_ns = s->heartbeat_ivl_ms > 0
                          ? zm_now_ns() + (int64_t)s->heartbeat_ivl_ms * 1000000
                          : 0;
    if (c->connecter)
        ZM_STAT_ADD(s->stats.connected, 1);
    zm_route_attached(s, c); /* a SUB's subscriptions go to it first */
}

static int conn_mech_answer(zm_sock *s, zm_conn *c, int rc,
                            const zm_wbuf *out, int64_t now);

/* No ZAP handler, and the mechanism may go without one: its request is
 * answered 200 here (the answer, READY for CURVE, is queued as any).  0,
 * or -1 when the connection was closed. */
static int conn_zap_absent(zm_sock *s, zm_conn *c, int64_t now)
{
    zm_wbuf out;
    int rc;

    zm_wbuf_init(&out);
    rc = zm_mech_zap_reply(&c->mech, 200, &out); /* no longer pending */
    rc = conn_mech_answer(s, c, rc, &out, now);
    zm_wbuf_free(&out);
    return rc;
}

/* What a mechanism call (rc) left: a failure closes; its answer in `out`
 * is queued; once READY the peer is admitted (or refused, and the answer
 * dropped: ERROR goes instead) and the connection becomes ACTIVE.  0, or
 * -1 when the connection was closed. */
static int conn_mech_answer(zm_sock *s, zm_conn *c, int rc,
                            const zm_wbuf *out, int64_t now)
{
    int ready = zm_mech_status(&c->mech) == ZM_MECH_READY;

    /* The mechanism asks ZAP to judge the peer (engine_zap.c).  With no
     * handler: refused as libzmq's PLAIN does, or, for a mechanism that
     * may go without (CURVE; NULL unless ZAP_ENFORCE_DOMAIN), admitted as
     * if the handler said 200 (no User-Id); libzmq 4.3.5's CURVE does so
     * whatever ZAP_ENFORCE_DOMAIN says (measured through pyzmq:
     * tests/test_curve.py, tests/test_zap.py). */
    if (rc == 0 && zm_mech_zap_pending(&c->mech) && c->zap_id == 0 &&
        zm_zap_request(s, c) < 0) {
        if (c->mech.ops->zap_optional && !c->mech.zap.required)
            return conn_zap_absent(s, c, now);
        rc = zm_mech_zap_missing(&c->mech);
    }
    if (rc < 0) {
        conn_mech_failed(s, c, now);
        return -1;
    }
    if (ready && conn_admit(s, c, zm_mech_peer_info(&c->mech), now) < 0)
        return -1;
    if (out->len > 0 && conn_put_handshake(c, out->data, out->len) < 0) {
        c->lost_errno = ENOMEM;
        zm_conn_lost(s, c, now);
        return -1;
    }
    if (ready)
        conn_activate(s, c);
    return 0;
}

/* ZAP's User-Id and metadata as one property list (User-Id first), for
 * the connection's messages: 0, or -ENOMEM. */
static int conn_keep_props(zm_conn *c, const zm_frame *user_id,
                           const zm_frame *meta)
{
    size_t n = 1 + 7 + 4 + user_id->size + meta->size;
    zm_page *p = zm_page_new(n);

    if (p == NULL)
        return -ENOMEM;
    p->data[0] = 7;
    memcpy(p->data + 1, "User-Id", 7);
    zm_put_u32(p->data + 8, (uint32_t)user_id->size);
    if (user_id->size > 0)
        memcpy(p->data + 12, user_id->data, user_id->size);
    if (meta->size > 0)
        memcpy(p->data + 12 + user_id->size, meta->data, meta->size);
    p->len = n;
    if (c->props != NULL)
        zm_page_decref(c->props);
    c->props = p;
    return 0;
}

void zm_conn_zap_reply(zm_sock *s, zm_conn *c, unsigned status, uint32_t code,
                       const zm_frame *user_id, const zm_frame *meta,
                       int64_t now)
{
    zm_wbuf out;
    int rc;

    if (status == 200 && code == 0 && conn_keep_props(c, user_id, meta) < 0)
        code = ZM_PROTO_ZAP_UNSPECIFIED; /* out of memory: refused */
    zm_wbuf_init(&out);
    rc = code != 0 ? zm_mech_refuse(&c->mech, code, NULL)
                   : zm_mech_zap_reply(&c->mech, status, &out);
    (void)conn_mech_answer(s, c, rc, &out, now);
    zm_wbuf_free(&out);
}

static int conn_on_greeting_v2(zm_sock *s, zm_conn *c, const zm_greeting *g,
                               int64_t now);

/* The peer's greeting: its version, and its mechanism must be ours. */
static int conn_on_greeting(zm_sock *s, zm_conn *c, const zm_greeting *g,
                            int64_t now)
{
    zm_wbuf out;
    int rc;

    if (ZM_UNLIKELY(g->socket_type >= 0))
        return conn_on_greeting_v2(s, c, g, now);
    c->got_greeting = 1;
    c->peer_minor = g->major > 3 ? 1 : g->minor;
    if (strcmp(g->mechanism, c->mech.ops->name) != 0) {
        ZM_STAT_ADD(s->stats.protocol_errors[ZM_ERR_MECHANISM], 1);
        conn_refuse(s, c, "unsupported security mechanism",
                    ZM_PROTO_MECHANISM_MISMATCH, now);
        return -1;
    }
    zm_wbuf_init(&out);
    rc = zm_mech_greeting(&c->mech, g, &out);
    rc = conn_mech_answer(s, c, rc, &out, now);
    zm_wbuf_free(&out);
    return rc;
}

/* The greeting of a ZMTP/2.0 peer (RFC 15): allowed only without
 * security; its socket type must be one we talk to (2.0's types are
 * libzmq's numbers 0..10: all of zmtp's ZMTP types have a 2.0 form, a
 * number past them is refused).  Refusals are counted by reason
 * (protocol_errors) and close without ERROR (2.0 has none).  The
 * identity frame comes next (conn_on_identity_v2).  0, or -1 when the
 * connection was closed. */
static int conn_on_greeting_v2(zm_sock *s, zm_conn *c, const zm_greeting *g,
                               int64_t now)
{
    int t = g->socket_type;

    c->got_greeting = 1;
    c->peer_minor = 0; /* subscriptions as messages, no PING */
    if (c->hs_held.len > 0 && conn_greeting_v2(s, c) < 0) {
        c->lost_errno = ENOMEM;
        zm_conn_lost(s, c, now);
        return -1;
    }
    c->v2 = 1;
    if (!conn_v2_allowed(s, c)) {
        ZM_STAT_ADD(s->stats.protocol_errors[ZM_ERR_V2_SECURITY], 1);
        conn_refuse(s, c, NULL, ZM_PROTO_MECHANISM_MISMATCH, now);
        return -1;
    }
    if (t < 0 || t > ZM_XSUB || !zm_socktype_compatible(s->type, t)) {
        ZM_STAT_ADD(s->stats.protocol_errors[ZM_ERR_V2_SOCKET_TYPE], 1);
        conn_refuse(s, c, NULL, ZM_PROTO_INVALID_METADATA, now);
        return -1;
    }
    c->peer_type = t;
    return 0;
}

/* A ZMTP/2.0 peer's identity frame (its first message: one final short
 * frame, the decoder checked): admitted as a 3.x peer whose READY said
 * Socket-Type and Identity, which its messages' metadata then holds; the
 * connection becomes ACTIVE.  Takes msg; -1 when the connection was
 * closed. */
static int conn_on_identity_v2(zm_sock *s, zm_conn *c, zm_msg *msg,
                               int64_t now)
{
    static const char st[] = "Socket-Type", idn[] = "Identity";
    const zm_frame *f = zm_msg_frames(msg);
    const char *name = zm_socktype_name(c->peer_type);
    size_t nlen = strlen(name), ilen = f->size <= 255 ? f->size : 255;
    unsigned char props[1 + 11 + 4 + 16 + 1 + 8 + 4 + 255];
    unsigned char *w = props;
    zm_mech_peer p;
    int rc;

    *w++ = (unsigned char)(sizeof(st) - 1);
    memcpy(w, st, sizeof(st) - 1);
    w += sizeof(st) - 1;
    zm_put_u32(w, (uint32_t)nlen);
    memcpy(w + 4, name, nlen);
    w += 4 + nlen;
    *w++ = (unsigned char)(sizeof(idn) - 1);
    memcpy(w, idn, sizeof(idn) - 1);
    w += sizeof(idn) - 1;
    zm_put_u32(w, (uint32_t)ilen);
    if (ilen > 0)
        memcpy(w + 4, f->data, ilen);
    w += 4 + ilen;
    memset(&p, 0, sizeof(p));
    p.has_socktype = 1;
    p.socktype = props + 1 + 11 + 4;
    p.socktype_len = nlen;
    p.has_identity = 1;
    p.identity = w - ilen;
    p.identity_len = ilen;
    p.props = props;
    p.props_len = (size_t)(w - props);
    rc = conn_admit(s, c, &p, now);
    zm_msg_clear(msg);
    if (rc < 0)
        return -1;
    conn_activate(s, c);
    return 0;
}

/* A command while the connection is ACTIVE: PING (answered with PONG),
 * ERROR (the peer closes), a peer's (un)subscription to a PUB/XPUB.
 * -1 when the connection was closed. */
static int conn_on_command(zm_sock *s, zm_conn *c, const zm_command *cmd,
                           int64_t now)
{
    int kind = cmd->kind;

    if (kind == ZM_CMD_PING && c->peer_minor >= 1) {
        /* The peer's TTL: how long it may stay silent (tenths of s). */
        c->peer_ttl_ns = (int64_t)cmd->ttl * 100000000;
        /* Answer at once; the reply rides with the next write. */
        zm_wbuf w;
        zm_wbuf_init(&w);
        zm_conn_put_encoded(c, &w, zm_encode_pong(&w, cmd->arg,
                                                  cmd->arg_len));
    } else if (kind == ZM_CMD_ERROR) {
        zm_conn_lost(s, c, now);
        return -1;
    } else if ((kind == ZM_CMD_SUBSCRIBE || kind == ZM_CMD_CANCEL) &&
               is_pub(s)) {
        zm_pub_peer_subscription(s, c, kind == ZM_CMD_SUBSCRIBE, cmd->arg,
                                 cmd->arg_len);
    }
    /* PONG, SUBSCRIBE, CANCEL and unknown commands: nothing to do for
     * these socket types. */
    return 0;
}

/* The decoder failed: count, tell the monitor, close. */
static void conn_on_decode_error(zm_sock *s, zm_conn *c, int error,
                                 int64_t now)
{
    ZM_STAT_ADD(s->stats.protocol_errors[error], 1);
    if (!c->got_greeting || error == ZM_ERR_V2_GREETING) /* (its identity) */
        ZM_STAT_ADD(s->stats.handshake_failed, 1);
    zm_mon_handshake_failed(s, c,
                            error == ZM_ERR_READY ? ZM_PROTO_MALFORMED_COMMAND_READY
                            : error == ZM_ERR_ERROR_CMD ? ZM_PROTO_MALFORMED_COMMAND_ERROR
                            : error == ZM_ERR_COMMAND ? ZM_PROTO_MALFORMED_COMMAND_UNSPECIFIED
                            : error == ZM_ERR_MECHANISM ? ZM_PROTO_MECHANISM_MISMATCH
                            : ZM_PROTO_UNSPECIFIED);
    zm_conn_lost(s, c, now);
}

/* A sealed frame could not be opened (a bad box, an old nonce, not a
 * MESSAGE): the mechanism says how to close. */
static int conn_unseal_failed(zm_sock *s, zm_conn *c, int64_t now)
{
    if (c->mech.status != ZM_MECH_ERROR) /* not the mechanism's: malformed */
        zm_mech_refuse(&c->mech, ZM_PROTO_MALFORMED_COMMAND_UNSPECIFIED, NULL);
    /* libzmq reports it as a failed handshake although READY is past */
    if (c->mech.fail.kind == ZM_MECH_FAIL_PROTOCOL && !c->hs_event_sent) {
        c->hs_event_sent = 1;
        zm_mon_event(s, ZM_EVENT_HANDSHAKE_FAILED_PROTOCOL, c->mech.fail.code,
                     c->endpoint);
    }
    conn_mech_failed(s, c, now);
    return -1;
}

/* A sealed frame as a command: only its name is read (libzmq's
 * check_basic_command_structure), so anything but MESSAGE, READY
 * included, is an unexpected command for the mechanism to refuse, as
 * libzmq does.  0, or -1 when malformed (no name, or a name past the end). */
static int conn_sealed_command(const zm_frame *f, zm_command *cmd)
{
    if (f->size <= 1 || f->size <= (size_t)f->data[0])
        return -1;
    memset(cmd, 0, sizeof(*cmd));
    cmd->kind = ZM_CMD_UNKNOWN;
    cmd->name = f->data + 1;
    cmd->name_len = f->data[0];
    cmd->data = f->data + 1 + f->data[0];
    cmd->data_len = f->size - 1 - f->data[0];
    return 0;
}

/* Frames received on a sealed connection: each is a MESSAGE box holding
 * one frame of a message, or a command (PING, SUBSCRIBE...), with its
 * flags.  Each box is opened in place, over its own bytes in the page it
 * was read into (libsodium's open allows the overlap; a box that does not
 * open is left as it was), and the frame becomes a slice of that page: no
 * allocation, the bytes move only within the page.  Opened frames gather
 * in c->unsealed until the
 * last of their message.  Takes the frames of `in`; -1 when the
 * connection was closed. */
/* 1 when the opened bytes lie within the box's own (decode in place),
 * 0 when decode regrew `plain` into heap memory. */
static int unseal_in_box(const zm_wbuf *plain, const zm_command *box)
{
    return plain->data >= box->data &&
           plain->len <= box->data_len &&
           (size_t)(plain->data - box->data) <= box->data_len - plain->len;
}

static int conn_unseal(zm_sock *s, zm_conn *c, zm_msg *in, int64_t now)
{
    zm_frame *fr = zm_msg_frames(in);
    int rc = 0;

    for (size_t i = 0; i < in->n && rc == 0; i++) {
        zm_command box, cmd;
        zm_frame f;
        zm_wbuf plain;
        unsigned flags = 0;

        if (fr[i].page == NULL ||
            conn_sealed_command(&fr[i], &box) < 0) {
            rc = conn_unseal_failed(s, c, now);
            break;
        }
        /* the page's bytes of this frame are ours alone: the plaintext,
         * shorter than the box, is written over them (in place: decode
         * may leave it anywhere within them, see mechanism.h) */
        plain.data = (unsigned char *)box.data;
        plain.len = 0;
        plain.cap = box.data_len;
        if (c->mech.ops->decode(&c->mech, &box, &plain, &flags) < 0 ||
            !unseal_in_box(&plain, &box)) { /* regrown: sizes rule it out */
            if (!unseal_in_box(&plain, &box))
                zm_wbuf_free(&plain);
            rc = conn_unseal_failed(s, c, now);
            break;
        }
        if (flags & ZM_FLAG_COMMAND) {
            if (zm_command_parse(plain.data, plain.len, &cmd) < 0)
                rc = conn_unseal_failed(s, c, now);
            else
                rc = conn_on_command(s, c, &cmd, now);
            continue;
        }
        if (c->unsealed.n >= s->max_frames) {
            /* as the decoder bounds a plain message (MAX_FRAMES) */
            ZM_STAT_ADD(s->stats.protocol_errors[ZM_ERR_TOO_MANY_FRAMES], 1);
            c->lost_errno = EPROTO;
            zm_conn_lost(s, c, now);
            rc = -1;
            break;
        }
        f.size = plain.len;
        f.flags = flags & ZM_FLAG_MORE;
        f.page = NULL;
        f.data = NULL;
        if (plain.len > 0) { /* the page's reference moves to the frame */
            f.page = fr[i].page;
            f.data = plain.data;
            fr[i].page = NULL;
        }
        if (zm_msg_push(&c->unsealed, &f) < 0) {
            if (f.page != NULL)
                zm_page_decref(f.page);
            c->lost_errno = ENOMEM;
            zm_conn_lost(s, c, now);
            rc = -1;
            break;
        }
        if (!(f.flags & ZM_FLAG_MORE)) {
            zm_msg whole;
            zm_msg_init(&whole);
            zm_msg_move(&whole, &c->unsealed);
            zm_route_incoming(s, c, &whole);
        }
    }
    zm_msg_clear(in);
    return rc;
}

/* Handle one decoder event; -1 when the connection was closed. */
static int conn_on_event(zm_sock *s, zm_conn *c, zm_event *ev, int64_t now)
{
    int rc;

    switch (ev->kind) {
    case ZM_EV_GREETING:
        return conn_on_greeting(s, c, &ev->greeting, now);
    case ZM_EV_COMMAND:
        if (c->state == ZM_CS_HANDSHAKE) {
            zm_wbuf out;
            zm_wbuf_init(&out);
            rc = zm_mech_handle(&c->mech, &ev->cmd, &out);
            rc = conn_mech_answer(s, c, rc, &out, now);
            zm_wbuf_free(&out);
        } else if (c->sealed) {
            /* a MESSAGE sent as a command frame (RFC 26's form) */
            zm_msg one;
            zm_msg_init(&one);
            if (zm_msg_push(&one, &ev->command) == 0) {
                ev->command.page = NULL; /* the message holds it now */
                rc = conn_unseal(s, c, &one, now);
            } else {
                rc = conn_unseal_failed(s, c, now);
            }
        } else {
            rc = conn_on_command(s, c, &ev->cmd, now);
        }
        /* The peer's metadata pointed into it: released only now. */
        zm_frame_release(&ev->command);
        return rc;
    case ZM_EV_MESSAGE:
        if (c->state != ZM_CS_ACTIVE) {
            if (c->v2 && c->got_greeting)
                return conn_on_identity_v2(s, c, &ev->msg, now);
            zm_msg_clear(&ev->msg);
            conn_refuse(s, c, "message before READY",
                        ZM_PROTO_UNEXPECTED_COMMAND, now);
            return -1;
        }
        if (c->sealed)
            return conn_unseal(s, c, &ev->msg, now);
        zm_route_incoming(s, c, &ev->msg);
        return 0;
    default:
        conn_on_decode_error(s, c, ev->error, now);
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
        if (c->idle_in)
            break; /* the readiness set says the kernel has nothing */
        if (zm_decoder_buffer(&c->dec, &buf, &room) < 0) {
            ZM_STAT_ADD(s->stats.protocol_errors[ZM_ERR_NOMEM], 1);
            zm_conn_lost(s, c, now);
            return;
        }
        ZM_COUNT(ZM_CNT_RECV);
        n = recv(c->fd, buf, room, MSG_DONTWAIT);
        if (n > 0) {
            zm_decoder_commit(&c->dec, (size_t)n);
            if (c->hs_held.len > 0 &&
                (c->hs_rx += (size_t)n) >= ZM_GREETING_STAGE &&
                conn_greeting_rest(s, c) < 0) {
                c->lost_errno = ENOMEM;
                zm_conn_lost(s, c, now);
                return;
            }
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
        zm_conn_lost(s, c, now); /* EOF or reset */
        return;
    }
    if (c->dec.state == ZM_DS_HEADER || c->dec.state == ZM_DS_GREETING)
        zm_decoder_release_idle(&c->dec); /* idle: hold no read page */
}

/* The smallest room a raw read is made into: below it, a page still
 * referenced by queued frames is left to them and a fresh one taken. */
#define RAW_MIN_ROOM ((size_t)4096)

/* A raw read of n bytes at the end of page p as a frame: sliced from p
 * (no copy) when it is a large part of the page, else copied into a page
 * of its own size, so that a peer's few bytes waiting to be received
 * never pin a whole read page (1 000 idle peers that sent one byte each
 * hold 1 000 small pages, not 64 MiB); p stays free for the next read. */
static zm_frame raw_frame(zm_page *p, size_t n)
{
    zm_frame f;
    zm_page *q;

    if (n * 4 < p->cap && (q = zm_page_new(n)) != NULL) {
        memcpy(q->data, p->data + p->len, n);
        q->len = n;
        f = page_slice(q, q->data, n, 0);
        zm_page_decref(q); /* the frame's reference keeps it */
        return f;
    }
    f = page_slice(p, p->data + p->len, n, 0);
    p->len += n;
    return f;
}

/* STREAM: each read is one message of one frame, the bytes as they came
 * (any chunking): a large read sliced from the connection's read page
 * without a copy, a small one copied to its own page (raw_frame).  A read
 * page is allocated only when the last one is nearly full and still held
 * by frames, and let go when idle, so what a peer sends costs at most
 * about four times what arrived plus one page; the input queue stops at
 * RCVHWM, as for ZMTP peers. */
static void conn_read_raw(zm_sock *s, zm_conn *c, int64_t now)
{
    for (int reads = 0; reads < 16; reads++) {
        zm_page *p = c->raw_page;
        zm_frame f;
        zm_msg m;
        size_t room;
        ssize_t n;

        if (s->rcvhwm > 0 && c->inq.n >= (size_t)s->rcvhwm)
            break; /* the peer waits in the kernel buffer */
        if (s->in_call && c->inq.n >= ZM_READ_AHEAD)
            break;
        if (p != NULL && zm_page_is_exclusive(p)) {
            p->len = 0; /* every frame sliced from it is gone */
        } else if (p != NULL && zm_page_free_space(p) < RAW_MIN_ROOM) {
            zm_page_decref(p); /* its frames keep it */
            p = NULL;
        }
        if (p == NULL) {
            p = zm_page_new(s->read_buf_size);
            if (p == NULL) {
                ZM_STAT_ADD(s->stats.protocol_errors[ZM_ERR_NOMEM], 1);
                c->raw_page = NULL;
                c->lost_errno = ENOMEM;
                zm_conn_lost(s, c, now);
                return;
            }
        }
        c->raw_page = p;
        room = zm_page_free_space(p);
        ZM_COUNT(ZM_CNT_RECV);
        n = recv(c->fd, p->data + p->len, room, MSG_DONTWAIT);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            c->lost_errno = n < 0 ? errno : 0;
            zm_conn_lost(s, c, now); /* EOF or reset */
            return;
        }
        f = raw_frame(p, (size_t)n);
        c->last_rx_ns = now;
        zm_msg_init(&m);
        if (zm_msg_push(&m, &f) < 0) {
            zm_frame_release(&f);
            ZM_STAT_ADD(s->stats.dropped_msgs, 1);
        } else {
            zm_route_incoming(s, c, &m);
        }
        if ((size_t)n < room)
            break; /* the kernel's buffer is empty */
    }
    if (c->raw_page != NULL && zm_page_is_exclusive(c->raw_page)) {
        zm_page_decref(c->raw_page); /* idle: hold no read page */
        c->raw_page = NULL;
    }
}

void zm_conn_raw_close(zm_sock *s, zm_conn *c, int64_t now)
{
    c->raw_closing = 1;
    c->hs_event_sent = 1; /* ours: no HANDSHAKE_FAILED_NO_DETAIL */
    c->connecter = 0; /* no redial */
    if (c->state == ZM_CS_ACTIVE && c->fd >= 0 && c->out.bytes > 0)
        zm_conn_write(s, c, now);
    if (c->out.bytes == 0 && c->state != ZM_CS_DEAD)
        zm_conn_lost(s, c, now); /* else once written (conn_step_raw) */
}

/* STREAM: a raw connection's step after its write: read, or finish a
 * close the application asked for. */
static void conn_step_raw(zm_sock *s, zm_conn *c, int64_t now)
{
    if (c->raw_closing) {
        if (c->out.bytes == 0)
            zm_conn_lost(s, c, now);
        return;
    }
    conn_read_raw(s, c, now);
    if (c->fd >= 0 && c->out.bytes > 0)
        zm_conn_write(s, c, now);
}

/* Copy n bytes from offset `at` of the queue into dst. */
static void out_peek(const zm_outq *q, size_t at, unsigned char *dst, size_t n)
{
    for (size_t i = 0; i < q->n && n > 0; i++) {
        const zm_seg *g = &q->segs[(q->head + i) % q->cap];
        size_t k;
        if (at >= g->len) {
            at -= g->len;
            continue;
        }
        k = g->len - at < n ? g->len - at : n;
        memcpy(dst, zm_page_bytes(g->page) + g->off + at, k);
        dst += k;
        n -= k;
        at = 0;
    }
}

/* Sealed output is made this much (whole messages) at a time, so SNDHWM
 * still counts what waits for the kernel. */
#define SEAL_BATCH ((size_t)256 * 1024)
/* What a mechanism adds to a frame it seals, at most (CURVE: a 9-byte
 * header, MESSAGE's name and nonce, the flags byte and the MAC: 42). */
#define SEAL_OVERHEAD ((size_t)64)

/* A page of at least n bytes, of one of the page cache's sizes (256 B,
 * 4-128 KiB powers of two) when n fits one: the steady state allocates
 * nothing (a sealed 64 KiB frame included). */
static zm_page *page_for(size_t n)
{
    size_t cap = ZM_PAGE_SMALL;

    if (n > cap) {
        cap = 4096;
        while (cap < n && cap < 131072)
            cap *= 2;
        if (cap < n)
            cap = n;
    }
    return zm_page_new(cap);
}

/* A page as a write buffer: whoever appends to it must stay within its
 * capacity (the callers size the page for the worst case, so it never
 * grows); page_wbuf_kept() checks that it did not. */
static zm_wbuf page_wbuf(zm_page *p)
{
    zm_wbuf w = {.data = p->data, .len = 0, .cap = p->cap};
    return w;
}

/* 1 when `w` is still the page's memory; else (it was regrown, which the
 * sizing rules out) its copy is freed and 0 returned. */
static int page_wbuf_kept(zm_wbuf *w, const zm_page *p)
{
    if (w->data == p->data)
        return 1;
    zm_wbuf_free(w);
    return 0;
}

/* The n bytes at offset `at` of the queue as one pointer: into the
 * segment holding them all (no copy), else copied into *scratch, a page
 * (of the cache's sizes up to 128 KiB; replaced by a larger one as needed;
 * the caller releases it).  *room is 1 when the byte before the pointer
 * is nobody's (ZM_ENC_ROOM_BEFORE): in the scratch page, or when the
 * bytes start a segment whose page only that segment references (no
 * other segment, queue or Frame reads the page's other bytes).  NULL on
 * -ENOMEM. */
static const unsigned char *out_span(const zm_outq *q, size_t at, size_t n,
                                     zm_page **scratch, int *room)
{
    static const unsigned char none[1];
    size_t off = at;

    *room = 0;
    if (n == 0)
        return none; /* an empty frame, maybe at the very end */
    for (size_t i = 0; i < q->n; i++) {
        const zm_seg *g = &q->segs[(q->head + i) % q->cap];
        if (off >= g->len) {
            off -= g->len;
            continue;
        }
        if (g->len - off >= n) {
            /* never an external page: its bytes are the caller's */
            *room = off == 0 && g->off > 0 && !g->page->ext &&
                    zm_page_is_exclusive(g->page);
            return zm_page_bytes(g->page) + g->off + off;
        }
        break;
    }
    if (*scratch == NULL || (*scratch)->cap < 1 + n) {
        if (*scratch != NULL)
            zm_page_decref(*scratch);
        *scratch = page_for(1 + n);
        if (*scratch == NULL)
            return NULL;
    }
    out_peek(q, at, (*scratch)->data + 1, n);
    *room = 1;
    return (*scratch)->data + 1;
}

/* The sealed bytes (page->data[0..len)) in front of the queue, by
 * reference when the segment ring has room (the page's reference moves to
 * the segment), else copied.  0, or -ENOMEM (the page is released). */
static int out_put_front_page(zm_outq *q, zm_page *page, size_t len)
{
    int rc = 0;

    page->len = len;
    if (q->cap == 0 || q->n == q->cap) {
        rc = zm_outq_put_front(q, page->data, len);
        zm_page_decref(page);
        return rc;
    }
    q->head = (q->head + q->cap - 1) % q->cap;
    q->segs[q->head].page = page;
    q->segs[q->head].off = 0;
    q->segs[q->head].len = len;
    q->n++;
    q->bytes += len;
    return 0;
}

/* A sealed connection with nothing sealed left to write: seal the whole
 * messages (and commands) at the front of `out`, about SEAL_BATCH bytes,
 * into MESSAGE boxes that take their place as hs_left bytes.  Each frame
 * is sealed from where it lies in the queue (copied first only when it
 * straddles two segments) straight into one page put in front of the
 * queue: no allocation in the steady state for batches and frames up to
 * 64 KiB (pages of the cache's sizes).  A frame with a spare byte in
 * front (gathered into the scratch page, as every frame that spans tail
 * pages is; or alone in a page only this queue holds) is sealed from
 * there with no copy besides the cipher's; one within a tail page is
 * copied next to its flags byte first.  0, or -ENOMEM. */
static int conn_seal_some(zm_conn *c)
{
    zm_outq *q = &c->out;
    size_t pos = 0, cut = 0, bound = 0;
    unsigned char hdr[9];
    zm_page *page, *scratch = NULL;
    zm_wbuf sealed;
    int rc = 0;

    while (cut < SEAL_BATCH && q->bytes - pos >= 2) {
        size_t h;
        uint64_t size;
        out_peek(q, pos, hdr, 2);
        h = (hdr[0] & ZM_FLAG_LONG) ? 9 : 2;
        if (q->bytes - pos < h)
            break;
        out_peek(q, pos, hdr, h);
        size = h == 9 ? zm_get_u64(hdr + 1) : hdr[1];
        if (size > q->bytes - pos - h)
            break; /* cannot happen: frames are queued whole */
        pos += h + (size_t)size;
        bound += (size_t)size + SEAL_OVERHEAD;
        if (!(hdr[0] & ZM_FLAG_MORE))
            cut = pos; /* the end of a message or a command */
    }
    if (cut == 0)
        return 0; /* a message still being queued frame by frame */
    page = page_for(bound);
    if (page == NULL)
        return -ENOMEM;
    sealed = page_wbuf(page);
    for (pos = 0; pos < cut && rc == 0;) {
        const unsigned char *data;
        unsigned flags;
        size_t h, size;
        int room;
        out_peek(q, pos, hdr, 9 < cut - pos ? 9 : cut - pos);
        flags = hdr[0];
        h = (flags & ZM_FLAG_LONG) ? 9 : 2;
        size = h == 9 ? (size_t)zm_get_u64(hdr + 1) : hdr[1];
        data = out_span(q, pos + h, size, &scratch, &room);
        rc = data == NULL ? -ENOMEM
                          : c->mech.ops->encode(&c->mech, data, size,
                                                (flags & (ZM_FLAG_MORE |
                                                          ZM_FLAG_COMMAND)) |
                                                    (room ? ZM_ENC_ROOM_BEFORE
                                                          : 0),
                                                &sealed);
        pos += h + size;
    }
    if (scratch != NULL)
        zm_page_decref(scratch);
    if (!page_wbuf_kept(&sealed, page))
        rc = -ENOMEM;
    if (rc < 0) {
        zm_page_decref(page);
        return rc;
    }
    zm_outq_drop_front(q, cut);
    rc = out_put_front_page(q, page, sealed.len);
    if (rc == 0)
        c->hs_left = sealed.len;
    return rc; /* on -ENOMEM those messages are lost with the connection */
}

/* Write what may be written: the handshake bytes until READY is in, then
 * everything (on a sealed connection, what conn_seal_some sealed). */
void zm_conn_write(zm_sock *s, zm_conn *c, int64_t now)
{
    for (;;) {
        size_t limit, hs;
        ssize_t n;
        if (c->sealed && c->hs_left == 0 && c->out.bytes > 0 &&
            c->state == ZM_CS_ACTIVE && conn_seal_some(c) < 0) {
            c->lost_errno = ENOMEM;
            zm_conn_lost(s, c, now);
            return;
        }
        limit = c->state == ZM_CS_ACTIVE && !c->sealed ? c->out.bytes
                                                       : c->hs_left;
        if (limit == 0)
            break;
        ZM_COUNT(ZM_CNT_SENDMSG);
        n = zm_outq_send(&c->out, c->fd, limit);
        if (n == -EAGAIN || n == -EINTR)
            break;
        if (n < 0) {
            c->lost_errno = (int)-n;
            zm_conn_lost(s, c, now);
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

/* A dial completed: tuned as libzmq's tune_socket (a failure closes it
 * and redials, as libzmq), CONNECTED, the handshake starts. */
static void conn_connected(zm_sock *s, zm_conn *c, int64_t now)
{
    int rc = zm_connect_tune(c->fd, &c->addr, &c->tcp);

    c->connect_deadline_ns = 0;
    if (rc < 0) {
        c->lost_errno = -rc;
        c->state = ZM_CS_CONNECTING; /* CLOSED, then the redial */
        zm_conn_lost(s, c, now);
        return;
    }
    zm_mon_event(s, ZM_EVENT_CONNECTED, (uint32_t)c->fd, c->endpoint);
    if (zm_conn_start_handshake(s, c) < 0)
        zm_conn_lost(s, c, now);
    else
        zm_conn_write(s, c, now); /* our greeting goes out at once */
}

void zm_conn_dial(zm_sock *s, zm_conn *c, int64_t now)
{
    int in_progress;
    int fd = zm_connect_start(&c->addr, &c->tcp, &in_progress);

    if (fd < 0) {
        /* Refused at once (ipc, unreachable): libzmq closes its descriptor
         * (CLOSED; ours is gone already: value -1) and retries later.  No
         * descriptor to close when the socket or its options failed
         * (BINDTODEVICE...): libzmq then only retries. */
        if (in_progress == 0)
            zm_mon_event(s, ZM_EVENT_CLOSED, (uint32_t)-1, c->endpoint);
        conn_retry_later(s, c, now);
        return;
    }
    c->fd = fd;
    s->fd_gen++;
    if (in_progress) {
        c->state = ZM_CS_CONNECTING;
        /* CONNECT_TIMEOUT: tcp only, as libzmq's tcp_connecter */
        c->connect_deadline_ns =
            c->connect_timeout_ms > 0 && c->addr.transport == ZM_TR_TCP
                ? now + (int64_t)c->connect_timeout_ms * 1000000
                : 0;
        zm_mon_event(s, ZM_EVENT_CONNECT_DELAYED, EINPROGRESS, c->endpoint);
        return;
    }
    conn_connected(s, c, now);
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
            zm_conn_lost(s, c, now);
        }
        return;
    }
    if (c->peer_ttl_ns > 0 && now - c->last_rx_ns > c->peer_ttl_ns) {
        ZM_STAT_ADD(s->stats.heartbeat_timeouts, 1);
        zm_conn_lost(s, c, now);
        return;
    }
    if (s->heartbeat_ivl_ms <= 0 || c->peer_minor < 1)
        return; /* ZMTP 3.0 has no PING */
    if (c->ping_sent_ns > 0 && now - c->ping_sent_ns > heartbeat_timeout_ns(s)) {
        ZM_STAT_ADD(s->stats.heartbeat_timeouts, 1);
        zm_conn_lost(s, c, now);
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
        zm_conn_put_encoded(c, &w, zm_encode_ping(&w, (uint16_t)(ttl > 65535 ? 65535 : ttl),
                                               NULL, 0));
        if (c->ping_sent_ns == 0)
            c->ping_sent_ns = now;
        c->next_ping_ns = now + (int64_t)s->heartbeat_ivl_ms * 1000000;
    }
}

/* The next time conn_timers() has something to do, or -1. */
int64_t zm_conn_next_timer(const zm_sock *s, const zm_conn *c)
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

/* Everything that can be done on one connection now. */
void zm_conn_step(zm_sock *s, zm_conn *c, int64_t now)
{
    if (c->inproc) {
        zm_inproc_step(s, c);
        return;
    }
    switch (c->state) {
    case ZM_CS_RETRY:
        if (now >= c->retry_at_ns)
            zm_conn_dial(s, c, now);
        break;
    case ZM_CS_CONNECTING: {
        /* Done when writable (or failed); SO_ERROR says which. */
        struct pollfd p = {.fd = c->fd, .events = POLLOUT, .revents = 0};
        ZM_COUNT(ZM_CNT_OTHER);
        if (poll(&p, 1, 0) <= 0) {
            if (c->connect_deadline_ns > 0 && now >= c->connect_deadline_ns) {
                /* CONNECT_TIMEOUT: closed, redialled (libzmq) */
                c->connect_deadline_ns = 0;
                c->lost_errno = ETIMEDOUT;
                zm_conn_lost(s, c, now);
            }
            break; /* still in progress */
        }
        if (zm_connect_result(c->fd) == 0 && !(p.revents & POLLHUP)) {
            conn_connected(s, c, now);
        } else {
            zm_conn_lost(s, c, now);
        }
        break;
    }
    default:
        break;
    }
    if (c->state == ZM_CS_HANDSHAKE || c->state == ZM_CS_ACTIVE) {
        zm_conn_write(s, c, now);
        if (ZM_UNLIKELY(c->raw)) {
            if (c->fd >= 0)
                conn_step_raw(s, c, now);
            return;
        }
        if (c->fd >= 0)
            conn_read(s, c, now);
        if (c->fd >= 0)
            conn_timers(s, c, now);
        if (c->fd >= 0 && c->out.bytes > 0)
            zm_conn_write(s, c, now); /* PONGs, PINGs, bytes freed by READY */
    }
}
