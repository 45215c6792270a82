/*
 * test_mech_conn.c - a connection speaking a mechanism it was not written
 * for: the engine (src/engine*.c, no Python) with a test mechanism,
 * "X-TEST", plugged in through zm_sock.mech_ops alone, as PLAIN and CURVE
 * will be (tests/test_mechanism_c.py compiles and runs it).
 *
 * X-TEST is PLAIN's shape without credentials: the server answers the
 * peer's greeting with NOTE, HELLO with WELCOME, INITIATE (metadata) with
 * READY (metadata); DENY fails authentication (ZAP status 400).  Its
 * state is allocated in start and freed in release.  The test's end of
 * the connection is a raw ipc socket driven by hand, whose bytes a
 * decoder reads back.  Checked: the handshake's commands reach the wire in
 * order and before a message queued earlier (an answer queued while an
 * earlier one still waits for the kernel is kept behind it); a peer
 * refused by the connection (socket type) gets ERROR, not the READY the
 * mechanism produced in that call; an authentication failure sends its
 * ERROR; a greeting for another mechanism is refused.
 *
 * Prints "ok NAME" / "FAIL file:line: why"; exit 0 or 1.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "check.h"

/* ------------------------------------------------------------------ */
/* X-TEST, a mechanism written against mechanism.h only               */
/* ------------------------------------------------------------------ */

typedef struct xstate {
    int step; /* 0: HELLO expected, 1: INITIATE expected */
} xstate;

static int x_released;

static int x_put(zm_wbuf *out, const char *name, const void *data, size_t n,
                 zm_mech *m)
{
    return zm_encode_command(out, name, strlen(name), data, n) < 0
               ? zm_mech_nomem(m) : 0;
}

static int x_start(zm_mech *m, zm_wbuf *out)
{
    (void)out; /* a server speaks second */
    m->state = zm_calloc(1, sizeof(xstate));
    return m->state == NULL ? zm_mech_nomem(m) : 0;
}

static int x_greeting(zm_mech *m, const zm_greeting *peer, zm_wbuf *out)
{
    if (peer->as_server)
        return zm_mech_refuse(m, ZM_PROTO_UNSPECIFIED, "both are servers");
    return x_put(out, "NOTE", "hi", 2, m);
}

static int is_name(const zm_command *cmd, const char *name)
{
    return cmd->name_len == strlen(name) &&
           memcmp(cmd->name, name, cmd->name_len) == 0;
}

static int x_handle(zm_mech *m, const zm_command *cmd, zm_wbuf *out)
{
    xstate *x = m->state;

    if (cmd->kind == ZM_CMD_ERROR)
        return zm_mech_peer_error(m, cmd);
    if (is_name(cmd, "DENY"))
        return zm_mech_auth_failed(m, 400, "400");
    if (x->step == 0 && is_name(cmd, "HELLO")) {
        x->step = 1;
        return x_put(out, "WELCOME", NULL, 0, m);
    }
    if (x->step == 1 && is_name(cmd, "INITIATE")) {
        zm_prop props[ZM_MECH_BASIC_PROPS];
        size_t np = zm_mech_basic_props(m, props);
        if (zm_props_validate(cmd->data, cmd->data_len) < 0)
            return zm_mech_refuse(m, ZM_PROTO_MALFORMED_COMMAND_UNSPECIFIED,
                                  "malformed INITIATE");
        zm_mech_take_metadata(m, cmd->data, cmd->data_len);
        if (zm_encode_ready(out, props, np) < 0)
            return zm_mech_nomem(m);
        m->status = ZM_MECH_READY;
        return 0;
    }
    return zm_mech_refuse(m, ZM_PROTO_UNEXPECTED_COMMAND, "out of order");
}

static void x_release(zm_mech *m)
{
    free(m->state);
    x_released++;
}

static const zm_mech_ops x_test = {
    .name = "X-TEST",
    .start = x_start,
    .greeting = x_greeting,
    .handle = x_handle,
    .release = x_release,
};

/* ------------------------------------------------------------------ */
/* The test's end of the connection                                   */
/* ------------------------------------------------------------------ */

typedef struct rig {
    zm_sock s;
    int lfd;         /* our listener */
    int fd;          /* our end, once accepted */
    zm_decoder dec;  /* what the engine sent us */
    int eof;
    char path[108];
} rig;

static int64_t now_ns(void)
{
    return zm_now_ns();
}

/* A DEALER speaking X-TEST as the server connects to our listener. */
static int rig_open(rig *r, int queue_early)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    zm_decoder_config dc;
    zm_addr addr;
    char endpoint[160], err[128];
    int64_t until;

    memset(r, 0, sizeof(*r));
    r->fd = -1;
    snprintf(r->path, sizeof(r->path), "/tmp/zmtp-test-mech-%d", (int)getpid());
    unlink(r->path);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", r->path);
    r->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(r->lfd, 1) < 0)
        return -1;
    zm_sock_init(&r->s, ZM_DEALER);
    r->s.mech_ops = &x_test;
    r->s.mech_cfg.as_server = 1;
    snprintf(endpoint, sizeof(endpoint), "ipc://%s", r->path);
    if (zm_sock_connect(&r->s, endpoint,
                        zm_addr_parse(endpoint, 0, 0, &addr, err, sizeof(err)),
                        &addr) < 0)
        return -1;
    /* Queued before the connection exists: goes after the handshake. */
    if (queue_early && zm_sock_send(&r->s, "early", 5, 0) < 0)
        return -1;
    until = now_ns() + 2000000000;
    while (r->fd < 0 && now_ns() < until) {
        struct pollfd p = {.fd = r->lfd, .events = POLLIN};
        zm_sock_process(&r->s, now_ns());
        if (poll(&p, 1, 10) == 1)
            r->fd = accept(r->lfd, NULL, NULL);
    }
    zm_decoder_config_default(&dc);
    zm_decoder_init(&r->dec, &dc);
    return r->fd >= 0 ? 0 : -1;
}

static void rig_close(rig *r)
{
    zm_sock_destroy(&r->s);
    zm_decoder_free(&r->dec);
    if (r->fd >= 0)
        close(r->fd);
    if (r->lfd >= 0)
        close(r->lfd);
    unlink(r->path);
}

static void rig_write(rig *r, const void *data, size_t n)
{
    CHECK(write(r->fd, data, n) == (ssize_t)n, "write %zu bytes", n);
}

/* Our greeting (as a client) and an empty command `cmd` (unless NULL),
 * in one write. */
static void rig_greet(rig *r, const char *mechanism, const char *cmd)
{
    zm_wbuf w;

    zm_wbuf_init(&w);
    if (mechanism != NULL) {
        zm_wbuf_reserve(&w, ZM_GREETING_SIZE);
        zm_encode_greeting(w.data, 1, mechanism, strlen(mechanism), 0);
        w.len = ZM_GREETING_SIZE;
    }
    if (cmd != NULL)
        zm_encode_command(&w, cmd, strlen(cmd), NULL, 0);
    rig_write(r, w.data, w.len);
    zm_wbuf_free(&w);
}

static void rig_greet_command(rig *r, const char *cmd)
{
    rig_greet(r, NULL, cmd);
}

/* INITIATE with Socket-Type `type`. */
static void rig_initiate(rig *r, const char *type)
{
    unsigned char meta[64];
    size_t n = 0, tl = strlen(type);
    zm_wbuf w;

    meta[n++] = 11;
    memcpy(meta + n, "Socket-Type", 11);
    n += 11;
    zm_put_u32(meta + n, (uint32_t)tl);
    n += 4;
    memcpy(meta + n, type, tl);
    n += tl;
    zm_wbuf_init(&w);
    zm_encode_command(&w, "INITIATE", 8, meta, n);
    rig_write(r, w.data, w.len);
    zm_wbuf_free(&w);
}

/* The next thing the engine sent us (stepping it meanwhile), or
 * ZM_EV_NEED_DATA after 2 s of nothing, or -1 at EOF. */
static int rig_next(rig *r, zm_event *ev)
{
    int64_t until = now_ns() + 2000000000;

    for (;;) {
        unsigned char *buf;
        size_t room;
        ssize_t n;
        int kind = zm_decoder_next(&r->dec, ev);
        if (kind != ZM_EV_NEED_DATA)
            return kind;
        if (r->eof)
            return -1;
        zm_sock_process(&r->s, now_ns());
        if (zm_decoder_buffer(&r->dec, &buf, &room) < 0)
            return ZM_EV_ERROR;
        n = recv(r->fd, buf, room, MSG_DONTWAIT);
        if (n > 0) {
            zm_decoder_commit(&r->dec, (size_t)n);
        } else if (n == 0) {
            r->eof = 1;
        } else if (now_ns() > until) {
            return ZM_EV_NEED_DATA;
        } else {
            struct pollfd p = {.fd = r->fd, .events = POLLIN};
            (void)poll(&p, 1, 2);
        }
    }
}

/* The next thing must be command `name`; its body after the name is
 * compared with `arg` when not NULL. */
static void expect_command(rig *r, const char *name, const char *arg, int line)
{
    zm_event ev;
    int kind = rig_next(r, &ev);

    if (kind != ZM_EV_COMMAND) {
        printf("FAIL %s:%d: expected %s, got event %d\n", __FILE__, line, name, kind);
        failures++;
        if (kind == ZM_EV_MESSAGE)
            zm_msg_clear(&ev.msg);
        return;
    }
    if (!(ev.cmd.name_len == strlen(name) &&
          memcmp(ev.cmd.name, name, ev.cmd.name_len) == 0) ||
        (arg != NULL && !(ev.cmd.arg_len == strlen(arg) &&
                          memcmp(ev.cmd.arg, arg, ev.cmd.arg_len) == 0))) {
        printf("FAIL %s:%d: expected %s %s, got %.*s %.*s\n", __FILE__, line,
               name, arg != NULL ? arg : "", (int)ev.cmd.name_len,
               (const char *)ev.cmd.name, (int)ev.cmd.arg_len,
               (const char *)ev.cmd.arg);
        failures++;
    }
    zm_frame_release(&ev.command);
}

static void expect_greeting(rig *r)
{
    zm_event ev;
    int kind = rig_next(r, &ev);

    CHECK(kind == ZM_EV_GREETING && strcmp(ev.greeting.mechanism, "X-TEST") == 0 &&
              ev.greeting.as_server == 1,
          "the engine's greeting: event %d", kind);
}

/* The rig open, up to X-TEST's WELCOME.  The engine's greeting is out
 * first; ours and HELLO arrive in one read, so WELCOME is queued while
 * NOTE still waits for the kernel: it must follow it. */
static void rig_to_welcome(rig *r, int queue_early)
{
    CHECK(rig_open(r, queue_early) == 0, "rig");
    rig_greet(r, "X-TEST", "HELLO");
    expect_greeting(r);
    expect_command(r, "NOTE", NULL, __LINE__);
    expect_command(r, "WELCOME", NULL, __LINE__);
}

/* ------------------------------------------------------------------ */

static void test_later_answers_in_order(void)
{
    int before = failures;
    rig r;
    zm_event ev;
    int kind;

    rig_to_welcome(&r, 1);
    rig_initiate(&r, "ROUTER");
    expect_command(&r, "READY", NULL, __LINE__);
    kind = rig_next(&r, &ev);
    CHECK(kind == ZM_EV_MESSAGE && ev.msg.n == 1 &&
              zm_msg_frames(&ev.msg)[0].size == 5 &&
              memcmp(zm_msg_frames(&ev.msg)[0].data, "early", 5) == 0,
          "the message queued early, after READY: event %d", kind);
    if (kind == ZM_EV_MESSAGE)
        zm_msg_clear(&ev.msg);
    CHECK(r.s.conns != NULL && r.s.conns->state == ZM_CS_ACTIVE &&
              r.s.conns->peer_type == ZM_ROUTER,
          "ACTIVE with a ROUTER peer");
    {
        /* Traffic after the handshake goes as it is. */
        static const unsigned char frame[] = {0x00, 0x02, 'h', 'i'};
        zm_msg m;
        const unsigned char *prefix;
        size_t plen;
        int64_t until = now_ns() + 2000000000;
        int rc;
        rig_write(&r, frame, sizeof(frame));
        while ((rc = zm_sock_recv(&r.s, &m, &prefix, &plen)) == -EAGAIN &&
               now_ns() < until)
            zm_sock_process(&r.s, now_ns());
        CHECK(rc == 0 && m.n == 1 && zm_msg_frames(&m)[0].size == 2,
              "a message from the peer: %d", rc);
        if (rc == 0)
            zm_msg_clear(&m);
    }
    CHECK(r.s.stats.handshake_failed == 0, "no failed handshake");
    x_released = 0;
    rig_close(&r);
    CHECK(x_released == 1, "released at close: %d", x_released);
    if (failures == before)
        printf("ok later_answers_in_order\n");
}

static void test_refused_peer_gets_error_not_ready(void)
{
    int before = failures;
    rig r;

    rig_to_welcome(&r, 0);
    rig_initiate(&r, "PUB");
    expect_command(&r, "ERROR", "invalid socket type PUB for DEALER", __LINE__);
    CHECK(r.s.stats.handshake_failed == 1, "counted: %llu",
          (unsigned long long)r.s.stats.handshake_failed);
    rig_close(&r);
    if (failures == before)
        printf("ok refused_peer_gets_error_not_ready\n");
}

static void test_auth_failure(void)
{
    int before = failures;
    rig r;
    zm_event ev;

    CHECK(rig_open(&r, 0) == 0, "rig");
    rig_greet(&r, "X-TEST", NULL);
    expect_greeting(&r);
    expect_command(&r, "NOTE", NULL, __LINE__);
    rig_greet_command(&r, "DENY");
    expect_command(&r, "ERROR", "400", __LINE__);
    CHECK(rig_next(&r, &ev) == -1, "closed after ERROR");
    CHECK(r.s.stats.handshake_failed == 1, "counted");
    rig_close(&r);
    if (failures == before)
        printf("ok auth_failure\n");
}

static void test_other_mechanism_refused(void)
{
    int before = failures;
    rig r;

    CHECK(rig_open(&r, 0) == 0, "rig");
    rig_greet(&r, "NULL", NULL);
    expect_greeting(&r);
    expect_command(&r, "ERROR", "unsupported security mechanism", __LINE__);
    CHECK(r.s.stats.protocol_errors[ZM_ERR_MECHANISM] == 1, "counted");
    rig_close(&r);
    if (failures == before)
        printf("ok other_mechanism_refused\n");
}

int main(void)
{
    test_later_answers_in_order();
    test_refused_peer_gets_error_not_ready();
    test_auth_failure();
    test_other_mechanism_refused();
    return failures == 0 ? 0 : 1;
}
