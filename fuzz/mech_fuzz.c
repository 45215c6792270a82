/*
 * mech_fuzz.c - libFuzzer harness for the handshake mechanisms
 * (src/mechanism.h: mech_null.c, mech_plain.c, mech_curve.c), with no
 * sockets and no Python: the mechanism under test (the target) talks to
 * a correct peer of the other role, both in memory, and the fuzzed bytes
 * decide, record by record, what the target receives: the peer's next
 * command as it is, replayed, mutated, or replaced by raw bytes, or (for
 * CURVE) a command the harness seals itself with the right keys around
 * fuzzed contents, so the parsing inside the boxes (WELCOME, INITIATE
 * and its vouch, READY, MESSAGE) is reached and not only the length
 * checks.  Randomness is fixed (tests/c/det_sodium.c): every input
 * replays the same keys, so the harness knows every secret.
 *
 * Input: byte 0 picks the target (value % 6): 0 NULL client, 1 NULL
 * server, 2 PLAIN server, 3 PLAIN client, 4 CURVE server, 5 CURVE client.
 * Byte 1: bit 0 the target announces an Identity.  Then records, each
 * an op byte (op % 5) and its arguments:
 *
 *   0 RAW      len (2 octets, big-endian), a command body of len octets
 *   1 CORRECT  the peer's next command; op bit 3: replay the last one
 *              delivered instead.  With nothing queued and both sides
 *              sealed (CURVE READY): a MESSAGE round trip, payload =
 *              len + bytes, flags = op bits 5-6 (MORE, COMMAND)
 *   2 MUTATE   the peer's next command changed: n = byte % 8 edits of
 *              (position 2 octets, xor byte), then op bit 3: cut to
 *              (2 octets) % len; op bit 4: append len + bytes
 *   3 SEAL     CURVE: kind byte % 3 (0 HELLO/WELCOME, 1 INITIATE/READY,
 *              2 MESSAGE), then len + contents, sealed as that command
 *              from the harness's side (see seal_*); else as RAW
 *   4 ZAP      a pending ZAP request answered: byte % 5: 200, 300, 400,
 *              500, or left pending for the next record (else every
 *              other record first answers a pending request with 200)
 *
 * Checks (a failed one prints a line and traps): an op's return is 0,
 * -EPROTO or -ENOMEM, < 0 exactly when the status is ERROR, with a
 * failure kind in range and never NOMEM; at READY the peer's metadata
 * lies in bounds (every byte read) and Socket-Type / Identity inside it;
 * CURVE: a mutated or replayed command is never accepted, nor one whose
 * short nonce does not exceed the last accepted one; a MESSAGE the
 * target seals opens at the peer to the same bytes and flags, and the
 * peer's to the target's.  ASan/UBSan/LSan do the rest.
 *
 * Standalone replay (no libFuzzer): build with -DMECH_FUZZ_MAIN and run
 * with files or directories as arguments (tests/test_fuzz_corpus.py).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mechanism.h"
#include "det_sodium.h"

#define CHECK(x)                                                            \
    do {                                                                    \
        if (!(x)) {                                                         \
            fprintf(stderr, "mech_fuzz: check failed at %s:%d: %s\n",       \
                    __FILE__, __LINE__, #x);                                \
            __builtin_trap();                                               \
        }                                                                   \
    } while (0)

enum { T_NULL_C, T_NULL_S, T_PLAIN_S, T_PLAIN_C, T_CURVE_S, T_CURVE_C, T_N };

/* The input, consumed front to back (reads past its end give zeros). */
typedef struct input {
    const uint8_t *p;
    size_t left;
} input;

static unsigned in_byte(input *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++;
}

static size_t in_u16(input *in)
{
    size_t hi = in_byte(in);
    return (hi << 8) | in_byte(in);
}

/* len (2 octets) then up to len bytes: a pointer into the input. */
static const uint8_t *in_chunk(input *in, size_t *n)
{
    size_t want = in_u16(in);
    const uint8_t *p = in->p;

    if (want > in->left)
        want = in->left;
    in->p += want;
    in->left -= want;
    *n = want;
    return p;
}

/* One side of the handshake. */
typedef struct side {
    zm_mech m;
    zm_wbuf out;  /* everything it sent */
    size_t split; /* bytes of out already taken as items */
    int greeted;  /* its greeting was taken */
    int dead;     /* failed: nothing more goes to or from it */
    int target;
    int ready_seen;
} side;

static side T, P; /* the target and its peer */
static const zm_sodium *na;
static unsigned char S_pk[32], S_sk[32], C_pk[32], C_sk[32];
static unsigned char cprime[32], sprime[32], cookie[96];
static int have_cprime, have_sprime, have_cookie;
static unsigned char *last; /* the last peer item delivered (replay) */
static size_t last_len;
/* A MESSAGE round trip in flight: what the receiver must open. */
static const uint8_t *expect;
static size_t expect_len;
static unsigned expect_flags;
static int expect_pending;
static int zap_hold;
/* The target accepted something the peer did not send (a sealed command
 * with the fuzzer's nonce): the peer's next MESSAGE may rightly be old. */
static int diverged;
/* CURVE: the last short nonce of a command the target accepted. */
static uint64_t t_nonce;
static int verbose; /* MECH_FUZZ_VERBOSE=1: one line per delivery */

static int is_curve(void)
{
    return T.m.ops == &zm_mech_curve;
}

/* The next frame of s's output: 0 none, 1 one (body, len, flags). */
static int side_next(side *s, const unsigned char **body, size_t *len,
                     unsigned *flags)
{
    const unsigned char *d = s->out.data + s->split;
    size_t left = s->out.len - s->split, hdr;
    uint64_t size;

    if (!s->greeted) {
        CHECK(left >= ZM_GREETING_SIZE);
        s->greeted = 1;
        s->split += ZM_GREETING_SIZE;
        d += ZM_GREETING_SIZE;
        left -= ZM_GREETING_SIZE;
    }
    if (left == 0)
        return 0;
    CHECK(left >= 2);
    if (d[0] & ZM_FLAG_LONG) {
        CHECK(left >= 9);
        size = zm_get_u64(d + 1);
        hdr = 9;
    } else {
        size = d[1];
        hdr = 2;
    }
    CHECK(size <= left - hdr);
    *flags = d[0] & (ZM_FLAG_MORE | ZM_FLAG_COMMAND);
    *body = d + hdr;
    *len = (size_t)size;
    s->split += hdr + (size_t)size;
    return 1;
}

static void parse_greeting(const unsigned char *g, zm_greeting *out)
{
    memset(out, 0, sizeof(*out));
    out->major = g[10];
    out->minor = g[11];
    memcpy(out->mechanism, g + 12, ZM_MECHANISM_SIZE);
    out->as_server = g[32];
}

/* What every op's return must agree with. */
static void check_rc(const side *s, int rc)
{
    CHECK(rc == 0 || rc == -EPROTO || rc == -ENOMEM);
    CHECK((rc < 0) == (s->m.status == ZM_MECH_ERROR));
    if (rc < 0) {
        CHECK(s->m.fail.kind > ZM_MECH_FAIL_NONE &&
              s->m.fail.kind <= ZM_MECH_FAIL_NO_DETAIL);
        CHECK(s->m.fail.kind != ZM_MECH_FAIL_NOMEM);
    }
}

/* The peer as the mechanism described it: in bounds, every byte read. */
static void check_ready(side *s)
{
    const zm_mech_peer *pi = zm_mech_peer_info(&s->m);
    volatile unsigned sum = 0;

    if (s->ready_seen)
        return;
    s->ready_seen = 1;
    for (size_t i = 0; i < pi->props_len; i++)
        sum += pi->props[i];
    CHECK(zm_props_validate(pi->props, pi->props_len) >= 0);
    if (pi->has_socktype)
        CHECK(pi->socktype >= pi->props &&
              pi->socktype + pi->socktype_len <= pi->props + pi->props_len);
    if (pi->has_identity)
        CHECK(pi->identity >= pi->props &&
              pi->identity + pi->identity_len <= pi->props + pi->props_len);
    (void)sum;
}

/* Learn the CURVE session's public keys and cookie from what flows. */
static void learn(const unsigned char *b, size_t n)
{
    const unsigned char *csk;
    unsigned char nonce[24], plain[128];

    if (n == 6 + 194 && memcmp(b, "\x05HELLO", 6) == 0) {
        memcpy(cprime, b + 6 + 74, 32);
        have_cprime = 1;
    } else if (n == 8 + 160 && memcmp(b, "\x07WELCOME", 8) == 0 &&
               have_cprime &&
               (csk = det_sodium_secret_for(cprime)) != NULL) {
        memcpy(nonce, "WELCOME-", 8);
        memcpy(nonce + 8, b + 8, 16);
        if (na->crypto_box_open_easy(plain, b + 24, 144, nonce, S_pk, csk) ==
            0) {
            memcpy(sprime, plain, 32);
            memcpy(cookie, plain + 32, 96);
            have_sprime = have_cookie = 1;
        }
    }
}

static void deliver(side *to, const unsigned char *body, size_t len,
                    unsigned frame_flags, int *accepted);

/* A CURVE command the target accepted: its short nonce (HELLO, INITIATE,
 * READY, MESSAGE; WELCOME has a long one) must exceed every earlier one. */
static void check_nonce(const side *to, const zm_command *cmd)
{
    size_t at;

    if (!to->target || !is_curve())
        return;
    if (cmd->name_len == 5 && memcmp(cmd->name, "HELLO", 5) == 0)
        at = 106;
    else if (cmd->name_len == 8 && memcmp(cmd->name, "INITIATE", 8) == 0)
        at = 96;
    else if ((cmd->name_len == 5 && memcmp(cmd->name, "READY", 5) == 0) ||
             (cmd->name_len == 7 && memcmp(cmd->name, "MESSAGE", 7) == 0))
        at = 0;
    else
        return;
    CHECK(cmd->data_len >= at + 8);
    CHECK(zm_get_u64(cmd->data + at) > t_nonce); /* no replay, no going back */
    t_nonce = zm_get_u64(cmd->data + at);
}

/* Answer a pending ZAP request of s. */
static void zap_answer(side *s, unsigned status)
{
    zm_wbuf *out = &s->out;
    int rc;

    if (s->dead || !zm_mech_zap_pending(&s->m))
        return;
    rc = zm_mech_zap_reply(&s->m, status, out);
    check_rc(s, rc);
    if (rc < 0)
        s->dead = 1;
    else if (zm_mech_status(&s->m) == ZM_MECH_READY)
        check_ready(s);
}

/* Everything the target sent since last time goes to the peer. */
static void pump_target(void)
{
    const unsigned char *b;
    size_t n;
    unsigned fl;
    int acc;

    while (side_next(&T, &b, &n, &fl)) {
        if (is_curve())
            learn(b, n);
        if (!P.dead)
            deliver(&P, b, n, fl, &acc);
        if (!P.dead && zm_mech_zap_pending(&P.m))
            zap_answer(&P, 200);
    }
}

/* One command (or sealed frame) body into `to`, as a connection would
 * hand it: parsed, then handle() while HANDSHAKING, decode() once sealed.
 * *accepted: 1 when the mechanism took it. */
static void deliver(side *to, const unsigned char *body, size_t len,
                    unsigned frame_flags, int *accepted)
{
    unsigned char *copy = malloc(len > 0 ? len : 1); /* exact size: ASan */
    zm_command cmd;
    zm_wbuf plain;
    unsigned flags = 0;
    int rc;

    *accepted = 0;
    CHECK(copy != NULL);
    if (verbose)
        fprintf(stderr, "mech_fuzz: %s <- %zu bytes %.*s (status %d)\n",
                to->target ? "target" : "peer", len,
                len > 0 && body[0] <= len - 1 ? (int)body[0] : 0,
                (const char *)body + 1, zm_mech_status(&to->m));
    if (len > 0)
        memcpy(copy, body, len);
    rc = zm_command_parse(copy, len, &cmd);
    if (rc == -ZM_ERR_READY && zm_mech_seals(&to->m))
        rc = 0; /* a sealed READY: the decoder lets it through */
    if (rc < 0) { /* the decoder would have closed the connection */
        to->dead = 1;
        goto out;
    }
    if (zm_mech_status(&to->m) == ZM_MECH_HANDSHAKING) {
        if (!(frame_flags & ZM_FLAG_COMMAND) && to->target) {
            /* a message before READY: the connection refuses it */
            to->dead = 1;
            goto out;
        }
        rc = zm_mech_handle(&to->m, &cmd, &to->out);
        check_rc(to, rc);
        if (rc < 0) {
            to->dead = 1;
            goto out;
        }
        *accepted = 1;
        check_nonce(to, &cmd);
        if (zm_mech_status(&to->m) == ZM_MECH_READY)
            check_ready(to);
    } else if (zm_mech_seals(&to->m)) {
        zm_wbuf_init(&plain);
        rc = to->m.ops->decode(&to->m, &cmd, &plain, &flags);
        check_rc(to, rc);
        if (rc < 0) {
            zm_wbuf_free(&plain);
            to->dead = 1;
            goto out;
        }
        *accepted = 1;
        check_nonce(to, &cmd);
        CHECK((flags & ~(unsigned)(ZM_FLAG_MORE | ZM_FLAG_COMMAND)) == 0);
        if (expect_pending) {
            CHECK(plain.len == expect_len);
            CHECK(expect_len == 0 ||
                  memcmp(plain.data, expect, expect_len) == 0);
            CHECK(flags == expect_flags);
            expect_pending = 0;
        }
        if (flags & ZM_FLAG_COMMAND) {
            zm_command inner;
            (void)zm_command_parse(plain.data, plain.len, &inner);
        }
        zm_wbuf_free(&plain);
    } else {
        to->dead = 1; /* NULL/PLAIN: READY, nothing more to see here */
    }
out:
    if (verbose)
        fprintf(stderr, "mech_fuzz:   %s, status %d%s\n",
                *accepted ? "accepted" : "refused", zm_mech_status(&to->m),
                to->dead ? " (dead)" : "");
    free(copy);
}

/* The peer's next item: a copy in *body (free it), 0 when none. */
static int peer_item(unsigned char **body, size_t *len, unsigned *flags)
{
    const unsigned char *b;

    if (P.dead || !side_next(&P, &b, len, flags))
        return 0;
    *body = malloc(*len > 0 ? *len : 1);
    CHECK(*body != NULL);
    if (*len > 0)
        memcpy(*body, b, *len);
    return 1;
}

static void remember(const unsigned char *b, size_t n)
{
    free(last);
    last = malloc(n > 0 ? n : 1);
    CHECK(last != NULL);
    if (n > 0)
        memcpy(last, b, n);
    last_len = n;
}

static void to_target(const unsigned char *b, size_t n, unsigned flags,
                      int *acc, int trusted, int from_peer)
{
    if (is_curve() && trusted)
        learn(b, n);
    deliver(&T, b, n, flags, acc);
    if (*acc && !from_peer)
        diverged = 1;
}

/* A MESSAGE round trip: the target seals payload, the peer opens it; the
 * peer seals it, the target opens it. */
static void round_trip(const uint8_t *payload, size_t n, unsigned flags)
{
    zm_wbuf w;
    int acc, rc;

    rc = T.m.ops->encode(&T.m, payload, n, flags, &T.out);
    CHECK(rc == 0);
    expect = payload;
    expect_len = n;
    expect_flags = flags;
    expect_pending = 1;
    pump_target();
    CHECK(P.dead || !expect_pending);
    expect_pending = 0;
    if (P.dead)
        return;
    zm_wbuf_init(&w);
    rc = P.m.ops->encode(&P.m, payload, n, flags, &w);
    CHECK(rc == 0);
    expect_pending = 1;
    {
        const unsigned char *b = w.data;
        size_t hdr = (b[0] & ZM_FLAG_LONG) ? 9 : 2;
        deliver(&T, b + hdr, w.len - hdr, b[0] & ZM_FLAG_COMMAND, &acc);
    }
    CHECK(diverged || (acc && !expect_pending));
    expect_pending = 0;
    zm_wbuf_free(&w);
}

/* ---- CURVE commands the harness seals itself ---------------------- */

static void put_cmd(zm_wbuf *w, const char *name, const unsigned char *d,
                    size_t n)
{
    size_t nl = strlen(name);

    CHECK(zm_wbuf_reserve(w, 1 + nl + n) == 0);
    w->data[w->len++] = (unsigned char)nl;
    memcpy(w->data + w->len, name, nl);
    w->len += nl;
    if (n > 0)
        memcpy(w->data + w->len, d, n);
    w->len += n;
}

/* c = Box[m] with the pair (pk, sk) and nonce prefix + tail. */
static void box(zm_wbuf *w, const uint8_t *m, size_t mlen, const char *prefix,
                size_t plen, const uint8_t *tail, const unsigned char *pk,
                const unsigned char *sk)
{
    unsigned char nonce[24];

    memcpy(nonce, prefix, plen);
    memcpy(nonce + plen, tail, 24 - plen);
    CHECK(zm_wbuf_reserve(w, mlen + 16) == 0);
    if (na->crypto_box_easy(w->data + w->len, m, mlen, nonce, pk, sk) != 0)
        memset(w->data + w->len, 0, mlen + 16); /* a weak key: garbage */
    w->len += mlen + 16;
}

/* Contents c (n octets) padded with zeros to at least `want`. */
static const uint8_t *padded(const uint8_t *c, size_t n, size_t want,
                             uint8_t *buf)
{
    memset(buf, 0, want);
    memcpy(buf, c, n < want ? n : want);
    return buf;
}

/* kind 0: HELLO (to a server) or WELCOME (to a client); 1: INITIATE or
 * READY; 2: MESSAGE.  Builds the body into w; 0 when the keys it needs
 * are not known yet. */
static int seal(zm_wbuf *w, unsigned kind, const uint8_t *c, size_t n)
{
    int server = T.m.cfg.as_server; /* the harness plays the other role */
    const unsigned char *csk = have_cprime ? det_sodium_secret_for(cprime)
                                           : NULL;
    const unsigned char *ssk = have_sprime ? det_sodium_secret_for(sprime)
                                           : NULL;
    uint8_t head[200];
    zm_wbuf d;

    zm_wbuf_init(&d);
    if (kind == 0 && server) { /* HELLO: version, padding, nonce | plain */
        if (csk == NULL)
            return 0;
        padded(c, n, 82, head);
        CHECK(zm_wbuf_reserve(&d, 114) == 0);
        memcpy(d.data, head, 74);
        memcpy(d.data + 74, cprime, 32);
        memcpy(d.data + 106, head + 74, 8);
        d.len = 114;
        box(&d, n > 82 ? c + 82 : c, n > 82 ? n - 82 : 0,
            "CurveZMQHELLO---", 16, head + 74, S_pk, csk);
        put_cmd(w, "HELLO", d.data, d.len);
    } else if (kind == 0) { /* WELCOME: nonce16, flags | plain */
        uint8_t plain[128];
        if (!have_cprime)
            return 0;
        padded(c, n, 17, head);
        CHECK(zm_wbuf_reserve(&d, 16) == 0);
        memcpy(d.data, head, 16);
        d.len = 16;
        if (head[16] & 1) { /* S' of ours (or the peer's) + a cookie */
            if (!have_sprime) {
                unsigned char sk[32];
                det_sodium_keypair(sprime, sk);
                have_sprime = 1;
            }
            memcpy(plain, sprime, 32);
            padded(n > 17 ? c + 17 : c, n > 17 ? n - 17 : 0, 96, plain + 32);
            box(&d, plain, 128, "WELCOME-", 8, head, cprime, S_sk);
        } else {
            box(&d, n > 17 ? c + 17 : c, n > 17 ? n - 17 : 0, "WELCOME-", 8,
                head, cprime, S_sk);
        }
        put_cmd(w, "WELCOME", d.data, d.len);
    } else if (kind == 1 && server) { /* INITIATE */
        unsigned char k[32];
        uint8_t vplain[64], *p;
        zm_wbuf plain;
        size_t off;
        if (csk == NULL || !have_sprime)
            return 0;
        padded(c, n, 9, head);
        off = 9;
        CHECK(zm_wbuf_reserve(&d, 104) == 0);
        if ((head[0] & 1) || !have_cookie) { /* a cookie of the fuzzer's */
            padded(n > off ? c + off : c, n > off ? n - off : 0, 96, d.data);
            off += 96;
        } else {
            memcpy(d.data, cookie, 96);
        }
        memcpy(d.data + 96, head + 1, 8);
        d.len = 104;
        zm_wbuf_init(&plain);
        if (head[0] & 2) { /* C, vouch nonce, vouch, metadata */
            uint8_t vn[16];
            padded(n > off ? c + off : c, n > off ? n - off : 0, 16, vn);
            off += 16;
            if (head[0] & 4) {
                padded(n > off ? c + off : c, n > off ? n - off : 0, 64,
                       vplain);
                off += 64;
            } else {
                memcpy(vplain, cprime, 32);
                memcpy(vplain + 32, S_pk, 32);
            }
            CHECK(zm_wbuf_reserve(&plain, 48) == 0);
            memcpy(plain.data, C_pk, 32);
            memcpy(plain.data + 32, vn, 16);
            plain.len = 48;
            box(&plain, vplain, 64, "VOUCH---", 8, vn, sprime, C_sk);
        }
        if (n > off) {
            CHECK(zm_wbuf_reserve(&plain, n - off) == 0);
            memcpy(plain.data + plain.len, c + off, n - off);
            plain.len += n - off;
        }
        if (na->crypto_box_beforenm(k, sprime, csk) != 0)
            memset(k, 0, sizeof(k));
        CHECK(zm_wbuf_reserve(&d, plain.len + 16) == 0);
        p = d.data + d.len;
        memcpy(head, "CurveZMQINITIATE", 16);
        memcpy(head + 16, d.data + 96, 8);
        na->crypto_box_easy_afternm(p, plain.data, plain.len, head, k);
        d.len += plain.len + 16;
        zm_wbuf_free(&plain);
        put_cmd(w, "INITIATE", d.data, d.len);
    } else { /* READY (to a client) or MESSAGE: nonce8 | plain */
        unsigned char k[32], nonce[24];
        const unsigned char *mine = server ? csk : ssk;
        const unsigned char *theirs = server ? sprime : cprime;
        const char *prefix = kind == 1 ? "CurveZMQREADY---"
                             : server  ? "CurveZMQMESSAGEC"
                                       : "CurveZMQMESSAGES";
        if (mine == NULL || !have_sprime || !have_cprime)
            return 0;
        padded(c, n, 8, head);
        if (na->crypto_box_beforenm(k, theirs, mine) != 0)
            memset(k, 0, sizeof(k));
        CHECK(zm_wbuf_reserve(&d, 8 + (n > 8 ? n - 8 : 0) + 16) == 0);
        memcpy(d.data, head, 8);
        memcpy(nonce, prefix, 16);
        memcpy(nonce + 16, head, 8);
        na->crypto_box_easy_afternm(d.data + 8, n > 8 ? c + 8 : c,
                                    n > 8 ? n - 8 : 0, nonce, k);
        d.len = 8 + (n > 8 ? n - 8 : 0) + 16;
        put_cmd(w, kind == 1 ? "READY" : "MESSAGE", d.data, d.len);
    }
    zm_wbuf_free(&d);
    return 1;
}

/* ---- one input ---------------------------------------------------- */

static void side_start(side *s, const zm_mech_ops *ops, int as_server,
                       int identity, int is_target)
{
    zm_mech_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    memset(s, 0, sizeof(*s));
    cfg.socktype = "DEALER";
    if (identity) {
        cfg.identity = (const unsigned char *)"fuzz-id";
        cfg.identity_len = 7;
    }
    cfg.as_server = as_server;
    cfg.plain_username = (const unsigned char *)"admin";
    cfg.plain_username_len = 5;
    cfg.plain_password = (const unsigned char *)"secret";
    cfg.plain_password_len = 6;
    memcpy(cfg.curve_public, as_server ? S_pk : C_pk, 32);
    memcpy(cfg.curve_secret, as_server ? S_sk : C_sk, 32);
    memcpy(cfg.curve_server, S_pk, 32);
    zm_wbuf_init(&s->out);
    s->target = is_target;
    CHECK(zm_mech_start(&s->m, ops, &cfg, &s->out) == 0);
}

static void run(const uint8_t *data, size_t size)
{
    static const zm_mech_ops *const ops[T_N] = {
        &zm_mech_null, &zm_mech_null, &zm_mech_plain,
        &zm_mech_plain, &zm_mech_curve, &zm_mech_curve};
    static const int tserver[T_N] = {0, 1, 1, 0, 1, 0};
    input in = {data, size};
    unsigned which = in_byte(&in) % T_N, ctl = in_byte(&in);
    int server = tserver[which];
    zm_greeting g;
    int acc, rc;

    det_sodium_seed(0x5a4d5450u); /* "ZMTP": every input, the same keys */
    det_sodium_keypair(S_pk, S_sk);
    det_sodium_keypair(C_pk, C_sk);
    have_cprime = have_sprime = have_cookie = 0;
    expect_pending = 0;
    zap_hold = 0;
    diverged = 0;
    t_nonce = 0;
    /* the server starts first: its ephemeral key comes first */
    if (server) {
        side_start(&T, ops[which], 1, ctl & 1, 1);
        side_start(&P, ops[which], 0, 0, 0);
    } else {
        side_start(&P, ops[which], 1, 0, 0);
        side_start(&T, ops[which], 0, ctl & 1, 1);
    }
    parse_greeting(P.out.data, &g);
    rc = zm_mech_greeting(&T.m, &g, &T.out);
    check_rc(&T, rc);
    parse_greeting(T.out.data, &g);
    CHECK(zm_mech_greeting(&P.m, &g, &P.out) == 0);
    if (rc < 0)
        goto done;
    if (is_curve() && server) /* the peer's HELLO names C' (not taken) */
        learn(P.out.data + ZM_GREETING_SIZE + 2,
              P.out.len - ZM_GREETING_SIZE - 2);
    pump_target();

    while (in.left > 0 && !T.dead) {
        unsigned op = in_byte(&in);
        unsigned char *item = NULL;
        size_t n = 0;
        unsigned fl = ZM_FLAG_COMMAND;

        if (zm_mech_zap_pending(&T.m) && !zap_hold && op % 5 != 4)
            zap_answer(&T, 200);
        zap_hold = 0;
        if (T.dead)
            break;
        switch (op % 5) {
        case 0: { /* RAW */
            const uint8_t *b = in_chunk(&in, &n);
            to_target(b, n, ZM_FLAG_COMMAND, &acc, 0, 0);
            break;
        }
        case 1: /* CORRECT, replay, or a MESSAGE round trip */
            if (op & 8) {
                if (last == NULL)
                    break;
                to_target(last, last_len, ZM_FLAG_COMMAND, &acc, 0, 1);
                if (is_curve())
                    CHECK(!acc); /* a replayed command is refused */
            } else if (peer_item(&item, &n, &fl)) {
                to_target(item, n, fl, &acc, 1, 1);
                remember(item, n);
            } else if (is_curve() && !P.dead &&
                       zm_mech_status(&T.m) == ZM_MECH_READY &&
                       zm_mech_status(&P.m) == ZM_MECH_READY) {
                const uint8_t *b = in_chunk(&in, &n);
                unsigned f = ((op & 32) ? ZM_FLAG_MORE : 0) |
                             ((op & 64) ? ZM_FLAG_COMMAND : 0);
                round_trip(b, n, f);
            }
            break;
        case 2: /* MUTATE */
            if (peer_item(&item, &n, &fl)) {
                unsigned char *orig = malloc(n > 0 ? n : 1);
                size_t edits = in_byte(&in) % 8, len = n;
                CHECK(orig != NULL);
                if (n > 0)
                    memcpy(orig, item, n);
                for (size_t i = 0; i < edits && len > 0; i++) {
                    size_t pos = in_u16(&in) % len;
                    unsigned x = in_byte(&in);
                    item[pos] ^= (unsigned char)(x != 0 ? x : 1);
                }
                if ((op & 8) && len > 0)
                    len = in_u16(&in) % len;
                if (op & 16) {
                    size_t extra;
                    const uint8_t *b = in_chunk(&in, &extra);
                    unsigned char *bigger = realloc(item, len + extra + 1);
                    CHECK(bigger != NULL);
                    item = bigger;
                    memcpy(item + len, b, extra);
                    len += extra;
                }
                {
                    int changed = len != n || memcmp(item, orig, n) != 0;
                    to_target(item, len, fl, &acc, 0, 1);
                    if (is_curve() && changed)
                        CHECK(!acc); /* a forged box is refused */
                }
                free(orig);
            }
            break;
        case 3: /* SEAL */
            if (is_curve()) {
                unsigned kind = in_byte(&in) % 3;
                const uint8_t *b = in_chunk(&in, &n);
                zm_wbuf w;
                zm_wbuf_init(&w);
                if (seal(&w, kind, b, n))
                    to_target(w.data, w.len,
                              kind == 2 ? 0 : ZM_FLAG_COMMAND, &acc, 1, 0);
                zm_wbuf_free(&w);
            } else {
                const uint8_t *b = in_chunk(&in, &n);
                to_target(b, n, ZM_FLAG_COMMAND, &acc, 0, 0);
            }
            break;
        default: { /* ZAP */
            static const unsigned status[4] = {200, 300, 400, 500};
            unsigned s = in_byte(&in) % 5;
            if (s == 4)
                zap_hold = 1;
            else
                zap_answer(&T, status[s]);
            break;
        }
        }
        free(item);
        if (!T.dead)
            pump_target();
    }
done:
    free(last);
    last = NULL;
    zm_mech_end(&T.m);
    zm_mech_end(&P.m);
    zm_wbuf_free(&T.out);
    zm_wbuf_free(&P.out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *why = NULL;

    (void)argc;
    (void)argv;
    verbose = getenv("MECH_FUZZ_VERBOSE") != NULL;
    na = det_sodium_real(&why);
    if (na == NULL || zm_sodium_get(NULL) == NULL) {
        fprintf(stderr, "mech_fuzz: %s\n", why ? why : "no libsodium");
        exit(2);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size);
    return 0;
}

#ifdef MECH_FUZZ_MAIN
#include <dirent.h>
#include <sys/stat.h>

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0) {
        fprintf(stderr, "mech_fuzz: cannot read %s\n", path);
        if (f != NULL)
            fclose(f);
        return 1;
    }
    rewind(f);
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return 1;
    }
    fclose(f);
    run(buf, (size_t)n);
    free(buf);
    printf("ok %s\n", path);
    return 0;
}

int main(int argc, char **argv)
{
    int bad = 0;

    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *e;
            char path[4096];
            while (d != NULL && (e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.')
                    continue;
                snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
                bad |= replay_file(path);
            }
            if (d != NULL)
                closedir(d);
        } else {
            bad |= replay_file(argv[i]);
        }
    }
    return bad;
}
#endif
