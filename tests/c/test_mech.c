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
 *        src/mechanism.c src/mech_null.c src/codec.c src/msg.c src/arena.c
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

static int peer_start(peer *p, const char *type, const char *identity)
{
    zm_mech_config cfg = {
        .socktype = type,
        .identity = (const unsigned char *)identity,
        .identity_len = identity != NULL ? strlen(identity) : 0,
        .as_server = 0,
    };
    zm_decoder_config dc;

    zm_wbuf_init(&p->sent);
    zm_decoder_config_default(&dc);
    zm_decoder_init(&p->dec, &dc);
    p->fed = 0;
    return zm_mech_start(&p->mech, &zm_mech_null, &cfg, &p->sent);
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

/* A command received during the handshake, alone. */
static int handle_one(zm_mech *m, const char *body, size_t n)
{
    zm_command cmd;
    zm_wbuf out;
    int rc;

    CHECK(zm_command_parse((const unsigned char *)body, n, &cmd) == 0,
          "parse %.*s", (int)n, body);
    zm_wbuf_init(&out);
    rc = zm_mech_handle(m, &cmd, &out);
    CHECK(out.len == 0, "NULL answered %zu bytes", out.len);
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
    CHECK(zm_mech_find("PLAIN") == NULL, "PLAIN is not there yet");
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

int main(void)
{
    test_registry();
    test_ready_bytes();
    test_two_peers();
    test_failures();
    test_start_enomem();
    return failures == 0 ? 0 : 1;
}
