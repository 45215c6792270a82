/*
 * engine_monitor.c - monitor events (zmq_socket_monitor): each event is a
 * two-frame ZMTP message written to one end of a socketpair whose other
 * end a PAIR socket adopted; we speak first (greeting, READY) and never
 * listen, only notice the hang-up.
 *
 * May call: engine_conn.c (our handshake's encoding), codec and outq.
 * Must never call it: the layers below; the Python face and progress.c
 * (zm_sock_monitor through engine.h only).
 */
#include "engine_int.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
void zm_mon_flush(zm_sock *s)
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
void zm_mon_drain(zm_sock *s)
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
void zm_mon_event(zm_sock *s, unsigned kind, uint32_t value,
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
    zm_mon_flush(s);
}

int zm_sock_monitor(zm_sock *s, int fd, unsigned events)
{
    zm_wbuf hs;
    int rc = 0;

    if (s->mon_fd >= 0) {
        zm_mon_event(s, ZM_EVENT_MONITOR_STOPPED, 0, "");
        mon_close(s);
    }
    if (fd < 0)
        return 0;
    /* We speak first and never listen: greeting and READY as a PAIR. */
    zm_wbuf_init(&hs);
    if (zm_encode_handshake(&hs, "PAIR", NULL, 0) < 0 ||
        zm_outq_put(&s->mon_out, hs.data, hs.len) < 0) {
        zm_outq_clear(&s->mon_out);
        rc = -ENOMEM;
        goto out;
    }
    s->mon_fd = fd;
    s->fd_gen++;
    s->mon_events = events;
    zm_mon_flush(s);
out:
    zm_wbuf_free(&hs);
    if (rc < 0)
        close(fd);
    return rc;
}

/* A handshake failed for a protocol reason (sent once per handshake). */
void zm_mon_handshake_failed(zm_sock *s, zm_conn *c, uint32_t code)
{
    if (c->state != ZM_CS_HANDSHAKE || c->hs_event_sent)
        return;
    c->hs_event_sent = 1;
    zm_mon_event(s, ZM_EVENT_HANDSHAKE_FAILED_PROTOCOL, code, c->endpoint);
}
