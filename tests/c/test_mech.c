/*
 * test_mech.c - the mechanism interface (src/mechanism.h) and the NULL
 * mechanism through it, without sockets: two peers joined in memory, each
 * with its mechanism and a decoder fed the other's bytes, as a connection
 * would (tests/test_mechanism_c.py compiles and runs it).
 *
 * Each check prints "FAIL file:line: why"; each test prints "ok NAME" when
 * all of its checks held.  Exit 0 (pass) or 1.
 *
 * build: cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Isrc tests/c/test_mech.c
 *        src/mechanism.c src/mech_null.c src/mech_plain.c src/codec.c src/msg.c src/arena.c
 *        src/counters.c -lpthread
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mechanism.h"
#include "check.h"

/* One side of a handshake: its mechanism, what it sent, and its decoder
 * (fed what the other side sent). */
typedef struct peer {
    zm_mech mech;
    zm_wbuf sent;
    zm_decoder dec;
    size_t fed; /* bytes of the other side's `sent` fed to dec so far */
} peer;

/* Start p with ops and cfg (its Socket-Type and Identity given here). */
static int peer_start_with(peer *p, const zm_mech_ops *ops, zm_mech_config cfg,
                           const char *type, const char *identity)
{
    zm_decoder_config dc;

    cfg.socktype = type;
    cfg.identity = (const unsigned char *)identity;
    cfg.identity_len = identity != NULL ? strlen(identity) : 0;
    zm_wbuf_init(&p->sent);
    zm_decoder_config_default(&dc);
    zm_decoder_init(&p->dec, &dc);
    p->fed = 0;
    return zm_mech_start(&p->mech, ops, &cfg, &p->sent);
}

static int peer_start(peer *p, const char *type, const char *identity)
{
    zm_mech_config cfg = {.as_server = 0};

    return peer_start_with(p, &zm_mech_null, cfg, type, identity);
}

static void peer_free(peer *p)
{
    zm_mech_end(&p->mech);
    zm_wbuf_free(&p->sent);
    zm_decoder_free(&p->dec);
}

/* The next event of `to` from what `from` sent (NEED_DATA: all consumed). */
static int next_event(peer *to, const peer *from, zm_event *ev)
{
    for (;;) {
        size_t used;
        int kind = zm_decoder_next(&to->dec, ev);
        if (kind != ZM_EV_NEED_DATA || to->fed == from->sent.len)
            return kind;
        if (zm_decoder_feed(&to->dec, from->sent.data + to->fed,
                            from->sent.len - to->fed, &used) < 0)
            return ZM_EV_ERROR;
        to->fed += used;
    }
}

/* `to` takes everything `from` sent, as a connection's handshake would:
 * the greeting (the name must be its own mechanism's), then commands
 * through the mechanism while it is HANDSHAKING.  Returns its status. */
static int deliver(peer *to, const peer *from)
{
    zm_event ev;
    int kind;

    while ((kind = next_event(to, from, &ev)) != ZM_EV_NEED_DATA) {
        if (kind == ZM_EV_GREETING) {
            CHECK(zm_mech_find(ev.greeting.mechanism) == to->mech.ops,
                  "greeting names %s", ev.greeting.mechanism);
            CHECK(zm_mech_greeting(&to->mech, &ev.greeting, &to->sent) == 0,
                  "greeting refused");
        } else if (kind == ZM_EV_COMMAND) {
            if (zm_mech_status(&to->mech) == ZM_MECH_HANDSHAKING)
                (void)zm_mech_handle(&to->mech, &ev.cmd, &to->sent);
            /* The peer's metadata points into the command: a connection
             * judges it before releasing it; here it is kept alive. */
            zm_frame_release(&ev.command);
        } else {
            CHECK(0, "event %d (error %d) during the handshake", kind, ev.error);
            return -1;
        }
    }
    return zm_mech_status(&to->mech);
}

static int bytes_equal(const unsigned char *a, size_t na, const char *b, size_t nb)
{
    return na == nb && memcmp(a, b, nb) == 0;
}

/* The greeting and READY as a NULL handshake starts (RFC 23): the wire
 * bytes are part of the contract, so they are spelled out here. */
static void test_ready_bytes(void)
{
    int before = failures;
    peer a;
    static const char dealer[] =
        "\x04\x2e"                       /* command, 46 octets */
        "\x05READY"
        "\x0bSocket-Type\x00\x00\x00\x06" "DEALER"
        "\x08Identity\x00\x00\x00\x05" "alice";
    static const char pub[] =
        "\x04\x19"
        "\x05READY"
        "\x0bSocket-Type\x00\x00\x00\x03" "PUB";

    static const char greeting[ZM_GREETING_SIZE] =
        "\xff\0\0\0\0\0\0\0\0\x7f"    /* signature */
        "\x03\x01"                          /* ZMTP 3.1 */
        "NULL";                             /* padded; as-server 0 */

    CHECK(peer_start(&a, "DEALER", "alice") == 0, "start");
    CHECK(a.sent.len >= ZM_GREETING_SIZE &&
              memcmp(a.sent.data, greeting, ZM_GREETING_SIZE) == 0,
          "the greeting");
    CHECK(bytes_equal(a.sent.data + ZM_GREETING_SIZE, a.sent.len - ZM_GREETING_SIZE,
                      dealer, sizeof(dealer) - 1),
          "DEALER's READY: %zu bytes", a.sent.len - ZM_GREETING_SIZE);
    CHECK(zm_mech_status(&a.mech) == ZM_MECH_HANDSHAKING, "status after start");
    peer_free(&a);
    CHECK(peer_start(&a, "PUB", NULL) == 0, "start");
    CHECK(bytes_equal(a.sent.data + ZM_GREETING_SIZE, a.sent.len - ZM_GREETING_SIZE,
                      pub, sizeof(pub) - 1),
          "PUB's READY (no Identity): %zu bytes", a.sent.len - ZM_GREETING_SIZE);
    peer_free(&a);
    if (failures == before)
        printf("ok ready_bytes\n");
}

/* Two NULL peers complete their handshake and learn each other. */
static void test_two_peers(void)
{
    int before = failures;
    peer a, b;
    const zm_mech_peer *pa, *pb;

    CHECK(peer_start(&a, "DEALER", "alice") == 0, "a start");
    CHECK(peer_start(&b, "ROUTER", "") == 0, "b start");
    CHECK(deliver(&b, &a) == ZM_MECH_READY, "b not READY");
    pb = zm_mech_peer_info(&b.mech);
    CHECK(pb->has_socktype && bytes_equal(pb->socktype, pb->socktype_len, "DEALER", 6),
          "b sees the peer's Socket-Type");
    CHECK(pb->has_identity && bytes_equal(pb->identity, pb->identity_len, "alice", 5),
          "b sees the peer's Identity");
    {
        zm_prop prop;
        CHECK(zm_props_find(pb->props, pb->props_len, "identity", &prop) == 1 &&
                  bytes_equal(prop.value, prop.value_len, "alice", 5),
              "the whole metadata, found case-insensitively");
    }
    CHECK(deliver(&a, &b) == ZM_MECH_READY, "a not READY");
    pa = zm_mech_peer_info(&a.mech);
    CHECK(pa->has_socktype && bytes_equal(pa->socktype, pa->socktype_len, "ROUTER", 6),
          "a sees the peer's Socket-Type");
    CHECK(pa->has_identity && pa->identity_len == 0, "an empty Identity is given");
    CHECK(!zm_mech_seals(&a.mech) && !zm_mech_seals(&b.mech),
          "NULL seals no frame");
    CHECK(a.sent.len == ZM_GREETING_SIZE + 48 && b.sent.len == ZM_GREETING_SIZE + 43,
          "NULL answers nothing: %zu, %zu", a.sent.len, b.sent.len);
    peer_free(&a);
    peer_free(&b);
    if (failures == before)
        printf("ok two_peers\n");
}

/* A command received during the handshake, alone; what the mechanism
 * answered is appended to out. */
static int handle_cmd(zm_mech *m, const char *body, size_t n, zm_wbuf *out)
{
    zm_command cmd;

    CHECK(zm_command_parse((const unsigned char *)body, n, &cmd) == 0,
          "parse %.*s", (int)n, body);
    return zm_mech_handle(m, &cmd, out);
}

/* The same, when the mechanism must answer nothing. */
static int handle_one(zm_mech *m, const char *body, size_t n)
{
    zm_wbuf out;
    int rc;

    zm_wbuf_init(&out);
    rc = handle_cmd(m, body, n, &out);
    CHECK(out.len == 0, "answered %zu bytes", out.len);
    zm_wbuf_free(&out);
    return rc;
}

static void test_failures(void)
{
    int before = failures;
    peer a;
    static const char ping[] = "\x04PING\x00\x0a";
    static const char error[] = "\x05" "ERROR\x04" "gone";
    static const char no_type[] = "\x05READY\x08Identity\x00\x00\x00\x01x";

    CHECK(peer_start(&a, "REQ", "") == 0, "start");
    CHECK(handle_one(&a.mech, ping, sizeof(ping) - 1) == -EPROTO, "PING accepted");
    CHECK(zm_mech_status(&a.mech) == ZM_MECH_ERROR, "status after PING");
    CHECK(a.mech.fail.kind == ZM_MECH_FAIL_PROTOCOL &&
              a.mech.fail.code == ZM_PROTO_UNEXPECTED_COMMAND &&
              a.mech.fail.reason != NULL &&
              strcmp(a.mech.fail.reason, "expected READY") == 0,
          "PING: kind %d code %#x", a.mech.fail.kind, a.mech.fail.code);
    peer_free(&a);

    CHECK(peer_start(&a, "REQ", "") == 0, "start");
    CHECK(handle_one(&a.mech, error, sizeof(error) - 1) == -EPROTO, "ERROR accepted");
    CHECK(zm_mech_status(&a.mech) == ZM_MECH_ERROR &&
              a.mech.fail.kind == ZM_MECH_FAIL_PEER && a.mech.fail.reason == NULL,
          "ERROR: kind %d (no ERROR back)", a.mech.fail.kind);
    peer_free(&a);

    /* Metadata is the connection's to judge: READY without Socket-Type
     * completes the mechanism, which says the property is missing. */
    CHECK(peer_start(&a, "REQ", "") == 0, "start");
    CHECK(handle_one(&a.mech, no_type, sizeof(no_type) - 1) == 0, "READY refused");
    CHECK(zm_mech_status(&a.mech) == ZM_MECH_READY &&
              !zm_mech_peer_info(&a.mech)->has_socktype &&
              zm_mech_peer_info(&a.mech)->has_identity,
          "READY without Socket-Type");
    peer_free(&a);
    if (failures == before)
        printf("ok failures\n");
}

static void test_registry(void)
{
    int before = failures;

    CHECK(zm_mech_find("NULL") == &zm_mech_null, "NULL");
    CHECK(zm_mech_find("null") == NULL, "names are exact (RFC 23)");
    CHECK(zm_mech_find("PLAIN") == &zm_mech_plain, "PLAIN");
    CHECK(zm_mech_find("") == NULL, "empty");
    CHECK(zm_mech_null.start != NULL && zm_mech_null.handle != NULL &&
              zm_mech_null.encode == NULL && zm_mech_null.decode == NULL,
          "NULL's ops");
    if (failures == before)
        printf("ok registry\n");
}

/* Every allocation of a start fails in turn: -ENOMEM, the mechanism in
 * ERROR (NOMEM), nothing leaked (the sanitizer build checks), and the same
 * start then works. */
static void test_start_enomem(void)
{
    int before = failures;
    uint64_t attempts, failed;
    peer a;
    zm_mech_config cfg = {.socktype = "ROUTER",
                          .identity = (const unsigned char *)"id",
                          .identity_len = 2};

    for (uint64_t nth = 1;; nth++) {
        zm_mech m;
        zm_wbuf out;
        int rc;
        zm_wbuf_init(&out);
        zm_alloc_fail_arm(1, nth, 1, 0, 0, 1);
        rc = zm_mech_start(&m, &zm_mech_null, &cfg, &out);
        zm_alloc_fail_counts(&attempts, &failed);
        zm_alloc_fail_arm(0, 0, 0, 0, 0, 0);
        if (failed == 0) {
            CHECK(rc == 0 && zm_mech_status(&m) == ZM_MECH_HANDSHAKING,
                  "start with memory: %d", rc);
            CHECK(nth > 1, "start allocated nothing");
            zm_mech_end(&m);
            zm_wbuf_free(&out);
            break;
        }
        CHECK(rc == -ENOMEM && zm_mech_status(&m) == ZM_MECH_ERROR &&
                  m.fail.kind == ZM_MECH_FAIL_NOMEM,
              "allocation %llu failing: rc %d", (unsigned long long)nth, rc);
        zm_mech_end(&m);
        zm_wbuf_free(&out);
    }
    CHECK(peer_start(&a, "ROUTER", "id") == 0, "start after the sweep");
    peer_free(&a);
    if (failures == before)
        printf("ok start_enomem\n");
}

/* ------------------------------------------------------------------ */
/* PLAIN (RFC 24, as libzmq 4.3.5)                                    */
/* ------------------------------------------------------------------ */

static int plain_start(peer *p, int server, const char *user,
                       const char *pass, const char *type)
{
    zm_mech_config cfg = {
        .as_server = server,
        .plain_username = (const unsigned char *)user,
        .plain_username_len = user != NULL ? strlen(user) : 0,
        .plain_password = (const unsigned char *)pass,
        .plain_password_len = pass != NULL ? strlen(pass) : 0,
    };

    return peer_start_with(p, &zm_mech_plain, cfg, type, NULL);
}

/* The client's greeting and HELLO; the server's WELCOME and ERROR. */
static void test_plain_bytes(void)
{
    int before = failures;
    peer c, s;
    zm_wbuf out;
    static const char hello[] = "\x04\x0d\x05HELLO\x01u\x04pass";
    static const char hello_cmd[] = "\x05HELLO\x01u\x04pass";
    static const char welcome[] = "\x04\x08\x07WELCOME";

    CHECK(plain_start(&c, 0, "u", "pass", "REQ") == 0, "client start");
    CHECK(memcmp(c.sent.data + 12, "PLAIN\0", 6) == 0 && c.sent.data[32] == 0 &&
              c.sent.len == ZM_GREETING_SIZE,
          "client greeting: PLAIN, as-server 0, and no HELLO before the server's");
    {
        zm_greeting g;
        memset(&g, 0, sizeof(g));
        g.major = 3;
        g.minor = 1;
        g.as_server = 1;
        strcpy(g.mechanism, "PLAIN");
        CHECK(zm_mech_greeting(&c.mech, &g, &c.sent) == 0, "server greeting");
    }
    CHECK(bytes_equal(c.sent.data + ZM_GREETING_SIZE, c.sent.len - ZM_GREETING_SIZE,
                      hello, sizeof(hello) - 1), "HELLO bytes");
    peer_free(&c);

    CHECK(plain_start(&s, 1, NULL, NULL, "REP") == 0, "server start");
    CHECK(s.sent.len == ZM_GREETING_SIZE && s.sent.data[32] == 1,
          "the server sends its greeting (as-server 1) and waits");
    zm_wbuf_init(&out);
    CHECK(handle_cmd(&s.mech, hello_cmd, sizeof(hello_cmd) - 1, &out) == 0 &&
              out.len == 0 && zm_mech_zap_pending(&s.mech) &&
              zm_mech_status(&s.mech) == ZM_MECH_HANDSHAKING,
          "HELLO: a ZAP request, nothing sent");
    CHECK(strcmp(s.mech.zap.mechanism, "PLAIN") == 0 && s.mech.zap.ncred == 2 &&
              bytes_equal(s.mech.zap.cred[0], s.mech.zap.cred_len[0], "u", 1) &&
              bytes_equal(s.mech.zap.cred[1], s.mech.zap.cred_len[1], "pass", 4),
          "ZAP credentials");
    CHECK(zm_mech_zap_reply(&s.mech, 200, &out) == 0 &&
              bytes_equal(out.data, out.len, welcome, sizeof(welcome) - 1) &&
              !zm_mech_zap_pending(&s.mech),
          "200: WELCOME bytes");
    zm_wbuf_free(&out);
    peer_free(&s);
    if (failures == before)
        printf("ok plain_bytes\n");
}

/* Client and server joined: HELLO, (ZAP 200), WELCOME, INITIATE, READY. */
static void test_plain_handshake(void)
{
    int before = failures;
    peer c, s;
    const zm_mech_peer *pc, *ps;

    /* the longest credentials there are */
    char user[256], pass[256];
    memset(user, 'U', 255);
    user[255] = 0;
    memset(pass, 'P', 255);
    pass[255] = 0;
    CHECK(plain_start(&c, 0, user, pass, "DEALER") == 0, "client");
    CHECK(plain_start(&s, 1, NULL, NULL, "ROUTER") == 0, "server");
    CHECK(deliver(&c, &s) == ZM_MECH_HANDSHAKING, "the client's HELLO after the server's greeting");
    CHECK(deliver(&s, &c) == ZM_MECH_HANDSHAKING && zm_mech_zap_pending(&s.mech) &&
              s.mech.zap.cred_len[0] == 255 && s.mech.zap.cred_len[1] == 255,
          "server waits for ZAP");
    CHECK(zm_mech_zap_reply(&s.mech, 200, &s.sent) == 0, "ZAP 200");
    CHECK(deliver(&c, &s) == ZM_MECH_HANDSHAKING, "client after WELCOME");
    CHECK(deliver(&s, &c) == ZM_MECH_READY, "server READY after INITIATE");
    ps = zm_mech_peer_info(&s.mech);
    CHECK(ps->has_socktype && bytes_equal(ps->socktype, ps->socktype_len, "DEALER", 6),
          "the server learns the client's Socket-Type from INITIATE");
    CHECK(deliver(&c, &s) == ZM_MECH_READY, "client READY");
    pc = zm_mech_peer_info(&c.mech);
    CHECK(pc->has_socktype && bytes_equal(pc->socktype, pc->socktype_len, "ROUTER", 6),
          "the client learns the server's Socket-Type from READY");
    CHECK(!zm_mech_seals(&c.mech) && !zm_mech_seals(&s.mech), "PLAIN seals nothing");
    peer_free(&c);
    peer_free(&s);
    if (failures == before)
        printf("ok plain_handshake\n");
}

/* ZAP says no: 400/500 send ERROR(status) and fail AUTH; 300 closes
 * without ERROR; the client reports the status from ERROR; no handler at
 * all fails without detail (EFAULT), as libzmq. */
static void test_plain_zap_refusals(void)
{
    int before = failures;
    static const unsigned codes[] = {300, 400, 500};
    static const char hello_cmd[] = "\x05HELLO\x01u\x01p";

    for (size_t i = 0; i < 3; i++) {
        peer c, s;
        CHECK(plain_start(&c, 0, "u", "p", "REQ") == 0, "client");
        CHECK(plain_start(&s, 1, NULL, NULL, "REP") == 0, "server");
        (void)deliver(&c, &s);
        (void)deliver(&s, &c);
        CHECK(zm_mech_zap_reply(&s.mech, codes[i], &s.sent) == -EPROTO &&
                  zm_mech_status(&s.mech) == ZM_MECH_ERROR &&
                  s.mech.fail.kind == ZM_MECH_FAIL_AUTH && s.mech.fail.code == codes[i],
              "ZAP %u: server fails AUTH", codes[i]);
        if (codes[i] == 300) {
            CHECK(s.mech.fail.reason == NULL, "300: no ERROR");
        } else {
            char want[4];
            snprintf(want, sizeof(want), "%u", codes[i]);
            CHECK(s.mech.fail.reason != NULL && strcmp(s.mech.fail.reason, want) == 0,
                  "ERROR reason is the status");
            CHECK(s.mech.fail.libzmq_plain, "sent in libzmq's PLAIN form");
            /* the client receiving ERROR(status), in RFC 23's form and in
             * libzmq's ("^RROR": codec.h) */
            for (int form = 0; form < 2; form++) {
                peer c2;
                char err[16];
                size_t n = (size_t)snprintf(err, sizeof(err),
                                            form ? "^RROR\x03%s" : "\x05" "ERROR\x03%s", want);
                CHECK(plain_start(&c2, 0, "u", "p", "REQ") == 0, "client");
                CHECK(handle_one(&c2.mech, err, n) == -EPROTO &&
                          c2.mech.fail.kind == ZM_MECH_FAIL_AUTH &&
                          c2.mech.fail.code == codes[i] && c2.mech.fail.reason == NULL,
                      "client: AUTH %u, no ERROR back (form %d)", codes[i], form);
                peer_free(&c2);
            }
        }
        peer_free(&c);
        peer_free(&s);
    }
    {
        peer s;
        CHECK(plain_start(&s, 1, NULL, NULL, "REP") == 0, "server");
        CHECK(handle_one(&s.mech, hello_cmd, sizeof(hello_cmd) - 1) == 0, "HELLO");
        CHECK(zm_mech_zap_missing(&s.mech) == -EPROTO &&
                  s.mech.fail.kind == ZM_MECH_FAIL_NO_DETAIL &&
                  s.mech.fail.code == EFAULT && s.mech.fail.reason == NULL,
              "no ZAP handler: NO_DETAIL EFAULT");
        peer_free(&s);
    }
    if (failures == before)
        printf("ok plain_zap_refusals\n");
}

/* One command to a fresh client (after `welcomed` WELCOMEs) or server
 * (after a good HELLO and ZAP 200 when `hello`): the failure code. */
static uint32_t plain_refusal(int server, int advanced, const char *body, size_t n)
{
    static const char hello_cmd[] = "\x05HELLO\x01u\x01p";
    static const char welcome_cmd[] = "\x07WELCOME";
    peer p;
    zm_wbuf out;
    uint32_t code = 0;

    CHECK(plain_start(&p, server, "u", "p", "DEALER") == 0, "start");
    zm_wbuf_init(&out);
    if (advanced && server) {
        CHECK(handle_cmd(&p.mech, hello_cmd, sizeof(hello_cmd) - 1, &out) == 0, "HELLO");
        if (advanced > 1)
            CHECK(zm_mech_zap_reply(&p.mech, 200, &out) == 0, "ZAP");
    } else if (advanced) {
        CHECK(handle_cmd(&p.mech, welcome_cmd, sizeof(welcome_cmd) - 1, &out) == 0,
              "WELCOME");
    }
    if (handle_cmd(&p.mech, body, n, &out) == -EPROTO &&
        p.mech.fail.kind == ZM_MECH_FAIL_PROTOCOL)
        code = p.mech.fail.code;
    zm_wbuf_free(&out);
    peer_free(&p);
    return code;
}

#define REFUSED(server, adv, body, want)                                     \
    CHECK(plain_refusal(server, adv, body, sizeof(body) - 1) == (want),       \
          "%s %s: want %#x", (server) ? "server" : "client", #body, (want))

static void test_plain_malformed(void)
{
    int before = failures;

    /* the server, waiting for HELLO */
    REFUSED(1, 0, "\x05HELLO", ZM_PROTO_MALFORMED_COMMAND_HELLO);       /* empty */
    REFUSED(1, 0, "\x05HELLO\x02u", ZM_PROTO_MALFORMED_COMMAND_HELLO);  /* username cut */
    REFUSED(1, 0, "\x05HELLO\x01u", ZM_PROTO_MALFORMED_COMMAND_HELLO);  /* no password */
    REFUSED(1, 0, "\x05HELLO\x01u\x02p", ZM_PROTO_MALFORMED_COMMAND_HELLO); /* cut */
    REFUSED(1, 0, "\x05HELLO\x01u\x01pX", ZM_PROTO_MALFORMED_COMMAND_HELLO); /* extra */
    REFUSED(1, 0, "\x08INITIATE", ZM_PROTO_UNEXPECTED_COMMAND);
    REFUSED(1, 0, "\x07WELCOME", ZM_PROTO_UNEXPECTED_COMMAND);
    REFUSED(1, 0, "\x05READY", ZM_PROTO_UNEXPECTED_COMMAND);
    REFUSED(1, 0, "\x05" "ERROR\x03" "400", ZM_PROTO_UNEXPECTED_COMMAND);
    /* waiting for ZAP: anything */
    REFUSED(1, 1, "\x08INITIATE", ZM_PROTO_UNSPECIFIED);
    REFUSED(1, 1, "\x05HELLO\x01u\x01p", ZM_PROTO_UNSPECIFIED);
    /* waiting for INITIATE */
    REFUSED(1, 2, "\x05HELLO\x01u\x01p", ZM_PROTO_UNEXPECTED_COMMAND);
    REFUSED(1, 2, "\x05READY", ZM_PROTO_UNEXPECTED_COMMAND);
    REFUSED(1, 2, "\x08INITIATE\x0bSocket-Type\x00\x00\x00\x09" "DEALER",
            ZM_PROTO_INVALID_METADATA);                                  /* value cut */
    /* the client, waiting for WELCOME */
    REFUSED(0, 0, "\x07WELCOMEx", ZM_PROTO_MALFORMED_COMMAND_WELCOME);
    REFUSED(0, 0, "\x05READY\x0bSocket-Type\x00\x00\x00\x03REP",
            ZM_PROTO_UNEXPECTED_COMMAND);
    REFUSED(0, 0, "\x05HELLO\x01u\x01p", ZM_PROTO_UNEXPECTED_COMMAND);
    REFUSED(0, 0, "\x08INITIATE", ZM_PROTO_UNEXPECTED_COMMAND);
    /* waiting for READY */
    REFUSED(0, 1, "\x07WELCOME", ZM_PROTO_UNEXPECTED_COMMAND);
    REFUSED(0, 1, "\x04PING\x00\x0a", ZM_PROTO_UNEXPECTED_COMMAND);
    /* an ERROR that is no ZAP status: closed as the peer's ERROR */
    {
        peer c;
        static const char err[] = "\x05" "ERROR\x04" "gone";
        CHECK(plain_start(&c, 0, "u", "p", "REQ") == 0, "client");
        CHECK(handle_one(&c.mech, err, sizeof(err) - 1) == -EPROTO &&
                  c.mech.fail.kind == ZM_MECH_FAIL_PEER, "ERROR gone");
        peer_free(&c);
    }
    if (failures == before)
        printf("ok plain_malformed\n");
}

int main(void)
{
    test_registry();
    test_ready_bytes();
    test_two_peers();
    test_failures();
    test_start_enomem();
    test_plain_bytes();
    test_plain_handshake();
    test_plain_zap_refusals();
    test_plain_malformed();
    return failures == 0 ? 0 : 1;
}
