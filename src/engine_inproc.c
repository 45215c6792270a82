/*
 * engine_inproc.c - an inproc connection: a zm_conn whose transport is a
 * zm_pipe (inproc.c) instead of a descriptor, a decoder and an output
 * queue.  Joining (a connect's pipe, adopting the pipes offered to a
 * binder), activation (socket-type check, PAIR's one peer, ROUTER id,
 * subscription replay), its step (taking what the peer queued) and its
 * end.  Sending a frame into a pipe is engine_route.c's (encode_into).
 *
 * May call: engine_route.c (admitting the peer, routing a message on
 * arrival, a peer detached), engine_conn.c (a new connection), and
 * inproc.c (pipes and mailboxes).
 * Must never call it: inproc.c (pipes know nothing of connections), the
 * Python face and progress.c (they use engine.h's zm_sock_inproc_*).
 */
#include "engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The pipe ends (the peer went, we were refused, disconnect, unbind): the
 * connection is DEAD, kept until the application has taken its input. */
void zm_inproc_end(zm_sock *s, zm_conn *c)
{
    if (c->state == ZM_CS_ACTIVE)
        ZM_STAT_ADD(s->stats.disconnected, 1);
    zm_route_detached(s, c);
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
    unsigned char rid[255];
    size_t n;

    c->peer_type = zm_pipe_peer_type(c->pipe, c->pipe_end);
    if (!zm_socktype_compatible(s->type, c->peer_type)) {
        ZM_STAT_ADD(s->stats.handshake_failed, 1);
        zm_inproc_end(s, c);
        return -1;
    }
    n = zm_pipe_peer_rid(c->pipe, c->pipe_end, rid); /* for a ROUTER */
    if (zm_route_admit(s, c, rid, n) != NULL) { /* ROUTER id, PAIR's one */
        ZM_STAT_ADD(s->stats.handshake_failed, 1);
        zm_inproc_end(s, c);
        return -1;
    }
    c->state = ZM_CS_ACTIVE;
    if (c->connecter)
        ZM_STAT_ADD(s->stats.connected, 1);
    else
        ZM_STAT_ADD(s->stats.accepted, 1);
    zm_route_attached(s, c); /* a SUB's subscriptions go to it first */
    return 0;
}

#define PIPE_BATCH 32

/* An inproc connection's step: attach once the binder adopted the pipe,
 * take what the peer queued (through the same handling as a message
 * decoded on an ACTIVE tcp connection, zm_route_incoming: SUB filtering,
 * subscriptions to a PUB), notice its end. */
void zm_inproc_step(zm_sock *s, zm_conn *c)
{
    zm_msg batch[PIPE_BATCH];
    size_t n, i, kept = 0;
    int gone;

    if (c->pipe == NULL)
        return;
    if (c->state == ZM_CS_CONNECTING) {
        if (!zm_pipe_attached(c->pipe)) {
            if (zm_pipe_peer_gone(c->pipe, c->pipe_end))
                zm_inproc_end(s, c); /* offered, then dropped unadopted */
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
            size_t before = c->inq.n;
            /* The connection is ACTIVE here (pipe_activate above; an
             * ended one has no pipe), and routing a message never ends
             * it. */
            zm_route_incoming(s, c, &batch[i]);
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
        zm_inproc_end(s, c); /* all it sent is in the input queue */
}

/* Pipes offered by connecting sockets (zm_mailbox_offer) join the
 * socket's connections.  An offer that cannot be adopted now (out of
 * memory for its connection) waits in adopt_later for the next step: an
 * inproc connection is never redialled, so dropping the pipe would cut
 * the connecting socket off for good. */
void zm_inproc_adopt(zm_sock *s)
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
        zm_conn *c = zm_conn_new(s);
        if (c == NULL) {
            *tail = it; /* this one and the rest: next step */
            return;
        }
        c->inproc = 1;
        c->pipe = it->pipe;
        c->pipe_end = 1;
        c->state = ZM_CS_CONNECTING; /* zm_inproc_step activates it */
        memcpy(c->endpoint, it->endpoint, sizeof(c->endpoint));
        zm_pipe_set_end(c->pipe, 1, s->mb, s->type, s->routing_id,
                        s->routing_id_len, s->sndhwm, s->rcvhwm);
        free(it);
        it = next;
    }
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
    c = zm_conn_new(s);
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
    zm_route_connected(s, c); /* CONNECT_ROUTING_ID, PROBE_ROUTER */
    zm_sub_connected_inproc(s, c); /* a SUB's subscriptions, at once */
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
