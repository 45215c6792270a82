/*
 * engine_zap.c - the ZAP client (RFC 27): a server mechanism's request to
 * the Context's handler at inproc://zeromq.zap.01, and its reply back to
 * the connection that waits for it.
 *
 * One inproc pipe per socket (s->zap_pipe, end 0 ours, as a DEALER; end 1
 * adopted by the handler as any inproc peer), made by the face when the
 * Context has a handler (Socket._zap_connect, zmtp/_inproc.py).  Requests
 * are libzmq's: "", "1.0", request id, domain (ZAP_DOMAIN), address (the
 * peer's IP for tcp, "localhost:UID:GID:PID" for ipc: zm_conn_peer_address),
 * identity (our ROUTING_ID), mechanism, credentials; the request id is one per connection (a decimal counter),
 * so replies find their connection.  Replies are read at the socket's
 * step (zm_zap_step) and checked as libzmq checks them (7 frames, empty
 * delimiter, version "1.0", our id, status 200/300/400/500: else
 * HANDSHAKE_FAILED_PROTOCOL with a ZAP code).
 *
 * May call: inproc.h (the pipe), msg/arena (frames), the connection
 * (zm_conn_zap_reply).  Called by: engine.c (step, destroy) and
 * engine_conn.c (zm_zap_request).
 */
#include "engine_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* The peer's address as libzmq 4.3.5 gives it in a ZAP request and as
 * a message's Peer-Address: the IP of a tcp peer, and for ipc
 * "localhost:UID:GID:PID" from SO_PEERCRED (getnameinfo's name for a
 * local socket, then the credentials); "" when unknown. */
size_t zm_conn_peer_address(const zm_conn *c, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    out[0] = '\0';
    if (c->fd < 0 || getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out,
                  (socklen_t)cap);
    } else if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out,
                  (socklen_t)cap);
    } else if (ss.ss_family == AF_UNIX) {
        struct ucred cred;
        socklen_t clen = sizeof(cred);
        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
            snprintf(out, cap, "localhost:%u:%u:%ld", (unsigned)cred.uid,
                     (unsigned)cred.gid, (long)cred.pid);
        else
            snprintf(out, cap, "localhost");
    }
    return strlen(out);
}

int zm_zap_request(zm_sock *s, zm_conn *c)
{
    const zm_mech_zap *z = &c->mech.zap;
    char id[16], addr[64];
    const unsigned char *part[8 + ZM_MECH_ZAP_MAX_CREDS];
    size_t plen[8 + ZM_MECH_ZAP_MAX_CREDS], n = 0, total = 0;
    zm_page *page;
    zm_msg msg;
    int rc = 0;

    if (s->zap_pipe == NULL || zm_pipe_peer_gone(s->zap_pipe, 0))
        return -ECONNREFUSED;
    if (++s->zap_next_id == 0)
        s->zap_next_id = 1;
    c->zap_id = s->zap_next_id;
    snprintf(id, sizeof(id), "%u", c->zap_id);
#define PART(p, l) (part[n] = (const unsigned char *)(p), plen[n++] = (l))
    PART("", 0);
    PART("1.0", 3);
    PART(id, strlen(id));
    PART(s->zap_domain, s->zap_domain_len);
    PART(addr, zm_conn_peer_address(c, addr, sizeof(addr)));
    PART(s->routing_id, s->routing_id_len);
    PART(z->mechanism, strlen(z->mechanism));
    for (size_t i = 0; i < z->ncred; i++)
        PART(z->cred[i], z->cred_len[i]);
#undef PART
    for (size_t i = 0; i < n; i++)
        total += plen[i];
    page = zm_page_new(total > 0 ? total : 1);
    if (page == NULL)
        return -ENOMEM;
    zm_msg_init(&msg);
    for (size_t i = 0; i < n && rc == 0; i++) {
        zm_frame f = page_slice(page, page->data + page->len, plen[i],
                                i + 1 < n);
        memcpy(page->data + page->len, part[i], plen[i]);
        page->len += plen[i];
        if (zm_msg_push(&msg, &f) < 0) {
            zm_frame_release(&f);
            rc = -ENOMEM;
        }
    }
    /* the credentials' copy in the page goes when the frames do */
    zm_page_decref(page);
    if (rc == 0)
        rc = zm_pipe_write(s->zap_pipe, 0, &msg);
    zm_msg_clear(&msg);
    return rc;
}

static int frame_is(const zm_frame *f, const char *s)
{
    size_t n = strlen(s);

    return f->size == n && (n == 0 || memcmp(f->data, s, n) == 0);
}

/* The connection waiting for request id `id` (its digits), or NULL. */
static zm_conn *waiting_conn(zm_sock *s, const zm_frame *id)
{
    char buf[16];

    if (id->size == 0 || id->size >= sizeof(buf))
        return NULL;
    for (zm_conn *c = s->conns; c != NULL; c = c->next) {
        if (c->zap_id == 0 || c->state != ZM_CS_HANDSHAKE)
            continue;
        snprintf(buf, sizeof(buf), "%u", c->zap_id);
        if (frame_is(id, buf))
            return c;
    }
    return NULL;
}

/* One reply: checked as libzmq's zap_client_t does. */
static void zap_reply(zm_sock *s, zm_msg *m, int64_t now)
{
    zm_frame *f = zm_msg_frames(m);
    zm_conn *c;
    uint32_t code = 0;
    unsigned status = 0;

    if (m->n < 3 || (c = waiting_conn(s, &f[2])) == NULL)
        return; /* not ours (or its connection is gone): dropped */
    if (m->n != 7)
        code = ZM_PROTO_ZAP_MALFORMED_REPLY;
    else if (f[0].size != 0)
        code = ZM_PROTO_ZAP_UNSPECIFIED;
    else if (!frame_is(&f[1], "1.0"))
        code = ZM_PROTO_ZAP_BAD_VERSION;
    else if (f[3].size != 3 || f[3].data[0] < '2' || f[3].data[0] > '5' ||
             f[3].data[1] != '0' || f[3].data[2] != '0')
        code = ZM_PROTO_ZAP_INVALID_STATUS_CODE;
    else if (zm_props_validate(f[6].data, f[6].size) < 0)
        code = ZM_PROTO_ZAP_INVALID_METADATA;
    else
        status = (unsigned)(f[3].data[0] - '0') * 100;
    c->zap_id = 0;
    zm_conn_zap_reply(s, c, status, code, m->n == 7 ? &f[5] : NULL,
                      m->n == 7 ? &f[6] : NULL, now);
}

void zm_zap_step(zm_sock *s, int64_t now)
{
    zm_msg in[8];
    size_t n;

    if (s->zap_pipe == NULL)
        return;
    while ((n = zm_pipe_read(s->zap_pipe, 0, in, 8)) > 0) {
        for (size_t i = 0; i < n; i++) {
            zap_reply(s, &in[i], now);
            zm_msg_clear(&in[i]);
        }
        zm_pipe_consumed(s->zap_pipe, 0, n);
    }
}

void zm_zap_close(zm_sock *s)
{
    if (s->zap_pipe != NULL)
        zm_pipe_detach(s->zap_pipe, 0);
    s->zap_pipe = NULL;
}

int zm_sock_zap_connect(zm_sock *s, zm_pipe **peer)
{
    zm_pipe *p;
    int rc = zm_sock_inproc_enable(s);

    if (rc < 0)
        return rc;
    p = zm_pipe_new();
    if (p == NULL)
        return -ENOMEM;
    zm_zap_close(s); /* a handler that went away: the new one */
    s->zap_pipe = p;
    zm_pipe_set_end(p, 0, s->mb, ZM_DEALER, (const unsigned char *)"", 0, 0,
                    0); /* no routing id */
    *peer = p;
    return 0;
}
