/*
 * proxy.c - the proxy's engine side (proxy.h): whole messages moved from
 * one socket to another as the frames the engine decoded (page slices:
 * nothing is copied on the way in; a frame of ZM_SEND_REF_MIN bytes or
 * more joins the destination's output by reference to its page, a
 * smaller one is encoded into it as any send is), the same to the capture
 * socket first, and libzmq's control commands.  Never waits and never touches
 * Python: the face (py_proxy.c) runs it with the GIL released, steps the
 * sockets and waits between runs.
 *
 * Owns:      zm_proxy (directions, held-back message, state, statistics).
 * May call:  engine.h (zm_sock_recv, zm_sock_send, zm_sock_process), msg.h.
 * Called by: py_proxy.c only.  Never by the engine below it.
 */
#include "proxy.h"

#include <errno.h>
#include <string.h>

void zm_proxy_init(zm_proxy *p, zm_sock *front, zm_sock *back,
                   zm_sock *capture, zm_sock *control)
{
    memset(p, 0, sizeof(*p));
    p->capture = capture;
    p->control = control;
    p->ndirs = front == back ? 1 : 2;
    p->state = ZM_PX_ACTIVE;
    p->dir[0].from = front;
    p->dir[0].to = back;
    p->dir[0].recv_stat = &p->stats[0]; /* frontend received */
    p->dir[0].send_stat = &p->stats[6]; /* backend sent */
    p->dir[1].from = back;
    p->dir[1].to = front;
    p->dir[1].recv_stat = &p->stats[4]; /* backend received */
    p->dir[1].send_stat = &p->stats[2]; /* frontend sent */
    zm_msg_init(&p->dir[0].msg);
    zm_msg_init(&p->dir[1].msg);
}

void zm_proxy_set_prefixes(zm_proxy *p, const void *in_prefix, size_t in_len,
                           const void *out_prefix, size_t out_len,
                           int swap_ids)
{
    p->dir[0].cap_prefix = in_prefix;
    p->dir[0].cap_prefix_len = in_len;
    p->dir[1].cap_prefix = out_prefix;
    p->dir[1].cap_prefix_len = out_len;
    p->swap_ids = swap_ids;
}

void zm_proxy_free(zm_proxy *p)
{
    for (int i = 0; i < 2; i++) {
        zm_msg_clear(&p->dir[i].msg);
        p->dir[i].stage = ZM_PX_IDLE;
    }
}

/* Frames of the held message as the stage sends them. */
static size_t stage_len(const zm_proxy_dir *d)
{
    size_t n = (size_t)d->has_id + d->msg.n;

    if (d->stage == ZM_PX_CAPTURE && d->cap_prefix != NULL)
        n++;
    return n;
}

/* Frame k of the held message as the stage sends it: the capture prefix
 * first (monitored_queue), frames 0 and 1 swapped (ROUTER <-> ROUTER
 * monitored_queue), the routing id before the engine's frames.  *page is
 * the page an engine frame lies in (NULL for the prefix and the id). */
static void stage_frame(const zm_proxy *p, zm_proxy_dir *d, size_t k,
                        const void **data, size_t *size, zm_page **page)
{
    const zm_frame *f;

    *page = NULL;
    if (d->stage == ZM_PX_CAPTURE && d->cap_prefix != NULL) {
        if (k == 0) {
            *data = d->cap_prefix;
            *size = d->cap_prefix_len;
            return;
        }
        k--;
    }
    if (p->swap_ids && (size_t)d->has_id + d->msg.n >= 2 && k < 2)
        k ^= 1;
    if (d->has_id) {
        if (k == 0) {
            *data = d->id;
            *size = d->id_len;
            return;
        }
        k--;
    }
    f = &zm_msg_frames(&d->msg)[k];
    *data = f->data;
    *size = f->size;
    *page = f->page;
}

/* One frame to `to`, stepping it once when it has no room (a peer may be
 * finishing its handshake, or output may have drained).  A frame of
 * `page` (a received frame) may be queued by reference (engine.h,
 * ZM_SEND_REF_MIN). */
static int send_one(zm_sock *to, const void *data, size_t n, int more,
                    zm_page *page)
{
    int rc;

    to->send_page = page;
    rc = zm_sock_send(to, data, n, more);
    if (rc == -EAGAIN || rc == -EHOSTUNREACH) {
        zm_sock_process(to, zm_now_ns());
        rc = zm_sock_send(to, data, n, more);
    }
    to->send_page = NULL;
    return rc;
}

/* Send the rest of the held message's current stage to `to`.  0 when all
 * went, -EAGAIN when `to` is full (d->next says where to go on), or
 * -errno. */
static int send_stage(const zm_proxy *p, zm_proxy_dir *d, zm_sock *to,
                      uint64_t *stat)
{
    size_t n = stage_len(d);

    while (d->next < n) {
        const void *data;
        size_t size;
        zm_page *page;
        int rc;

        stage_frame(p, d, d->next, &data, &size, &page);
        rc = send_one(to, data, size, d->next + 1 < n, page);
        if (rc < 0)
            return rc;
        if (stat != NULL) {
            stat[0]++;
            stat[1] += size;
        }
        d->next++;
    }
    return 0;
}

/* Forward at most `budget` messages one way.  How many went (>= 0), or
 * -errno; a message the destination cannot take yet stays held. */
static int forward(zm_proxy *p, zm_proxy_dir *d, int budget)
{
    int moved = 0, rc;

    while (moved < budget) {
        if (d->stage == ZM_PX_IDLE) {
            const unsigned char *id;
            size_t id_len;

            rc = zm_sock_recv(d->from, &d->msg, &id, &id_len);
            /* ENOTSUP: a socket that never receives (PUSH, PUB): libzmq's
             * proxy never sees POLLIN on it, and never reads. */
            if (rc == -EAGAIN || rc == -ENOTSUP)
                break;
            if (rc < 0)
                return rc;
            d->has_id = id != NULL;
            d->id_len = id != NULL ? id_len : 0;
            if (id != NULL)
                memcpy(d->id, id, id_len);
            d->recv_stat[0] += (uint64_t)d->has_id + d->msg.n;
            d->recv_stat[1] += d->id_len + d->msg.bytes;
            d->stage = p->capture != NULL ? ZM_PX_CAPTURE : ZM_PX_DEST;
            d->next = 0;
        }
        if (d->stage == ZM_PX_CAPTURE) {
            rc = send_stage(p, d, p->capture, NULL);
            if (rc == -EAGAIN)
                break;
            if (rc < 0)
                return rc;
            d->stage = ZM_PX_DEST;
            d->next = 0;
        }
        rc = send_stage(p, d, d->to, d->send_stat);
        if (rc == -EAGAIN)
            break;
        if (rc < 0)
            return rc;
        zm_msg_clear(&d->msg);
        d->stage = ZM_PX_IDLE;
        moved++;
    }
    return moved;
}

/* A reply on the control socket; one that cannot go now is dropped (the
 * proxy never blocks on its control socket). */
static int control_reply(zm_proxy *p, const uint64_t *vals, size_t n)
{
    int rc = 0;

    if (n == 0)
        return send_one(p->control, NULL, 0, 0, NULL);
    for (size_t i = 0; i < n && rc >= 0; i++) {
        unsigned char b[8];
        memcpy(b, &vals[i], sizeof(b)); /* host order, as libzmq */
        rc = send_one(p->control, b, sizeof(b), i + 1 < n, NULL);
    }
    return rc;
}

/* Handle one command from the control socket: libzmq's words, and its
 * replies (8 uint64 frames to STATISTICS, an empty frame to anything else,
 * so a REP control socket can take the next command).  1 when a command
 * was handled, 0 when none waits, -errno. */
static int control_step(zm_proxy *p)
{
    const unsigned char *id;
    size_t id_len, n = 0;
    zm_msg m;
    const unsigned char *cmd = NULL;
    int rc;

    zm_msg_init(&m);
    rc = zm_sock_recv(p->control, &m, &id, &id_len);
    if (rc == -EAGAIN)
        return 0;
    if (rc < 0)
        return rc;
    (void)id;
    (void)id_len;
    if (m.n > 0) {
        cmd = zm_msg_frames(&m)[0].data;
        n = zm_msg_frames(&m)[0].size;
    }
    if (n == 10 && memcmp(cmd, "STATISTICS", 10) == 0) {
        rc = control_reply(p, p->stats, 8);
    } else {
        if (n == 5 && memcmp(cmd, "PAUSE", 5) == 0)
            p->state = ZM_PX_PAUSED;
        else if (n == 6 && memcmp(cmd, "RESUME", 6) == 0)
            p->state = ZM_PX_ACTIVE;
        else if (n == 9 && memcmp(cmd, "TERMINATE", 9) == 0)
            p->state = ZM_PX_TERMINATED;
        rc = control_reply(p, NULL, 0);
    }
    zm_msg_clear(&m);
    if (rc == -EAGAIN || rc == -EHOSTUNREACH)
        rc = 0; /* dropped reply */
    return rc < 0 ? rc : 1;
}

int zm_proxy_run(zm_proxy *p, int budget)
{
    int total = 0, rc;

    if (p->control != NULL) {
        while ((rc = control_step(p)) > 0) {
            total++;
            if (p->state == ZM_PX_TERMINATED)
                return total;
        }
        if (rc < 0)
            return rc;
    }
    if (p->state != ZM_PX_ACTIVE)
        return total;
    for (int i = 0; i < p->ndirs; i++) {
        rc = forward(p, &p->dir[i], budget);
        if (rc < 0)
            return rc;
        total += rc;
    }
    return total;
}
