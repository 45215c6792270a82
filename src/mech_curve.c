/*
 * mech_curve.c - the CURVE mechanism (RFC 26 CurveZMQ, as libzmq 4.3.5's
 * curve_client.cpp, curve_server.cpp and curve_mechanism_base.cpp do it):
 *
 *   client                                   server
 *   HELLO    C', Box[64 zeros](C'->S)   ->
 *                                       <-   WELCOME  Box[S' + cookie](S->C')
 *   INITIATE cookie, Box[C + vouch +    ->
 *            metadata](C'->S')
 *                                       <-   READY    Box[metadata](S'->C')
 *   MESSAGE  Box[flags + frame](C'->S') <->  (nonce prefixes
 *            CurveZMQMESSAGEC / CurveZMQMESSAGES)
 *
 * where vouch = Box[C',S](C->S'), cookie = SecretBox[C' + s'](K) with a
 * cookie key K made for this handshake and zeroed after INITIATE.  Short
 * nonces count from 1 and must strictly increase (HELLO, INITIATE,
 * MESSAGE from the client; READY, MESSAGE from the server): a replayed or
 * older one ends the connection.  The session key is precomputed
 * (crypto_box_beforenm) once WELCOME is opened (client) or INITIATE
 * (server).  A MESSAGE's first plaintext byte carries MORE (1) and
 * COMMAND (2), so heartbeats and subscriptions travel sealed.  As in
 * libzmq, a server refuses a bad box without ERROR (it just closes); the
 * padding of HELLO must be zero (RFC 26; libzmq sends zeros).  No ZAP yet:
 * every client with a valid vouch is accepted, as libzmq does without a
 * ZAP handler.
 *
 * Owns: zm_mech_curve (its ops) and its state.  May call: mechanism.h's
 * shared parts, the codec, sodium.h.  Called only through the ops.
 */
#include "mechanism.h"

#include "sodium.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KEY 32
#define MAC ZM_BOX_MACBYTES
#define NONCE ZM_BOX_NONCEBYTES

/* libzmq's HANDSHAKE_FAILED_PROTOCOL codes used only here. */
#define PROTO_INVALID_SEQUENCE 0x10000002u
#define PROTO_KEY_EXCHANGE 0x10000003u
#define PROTO_MALFORMED_MESSAGE 0x10000012u
#define PROTO_MALFORMED_HELLO 0x10000013u
#define PROTO_MALFORMED_INITIATE 0x10000014u
#define PROTO_CRYPTOGRAPHIC 0x11000001u

/* Command sizes after the name (libzmq's totals less 1 + name). */
#define HELLO_DATA 194   /* 200 - 6 */
#define WELCOME_DATA 160 /* 168 - 8 */
#define INITIATE_MIN 248 /* 257 - 9 */
#define READY_MIN 24     /* 30 - 6 */
#define MESSAGE_MIN (8 + MAC + 1)

/* The MESSAGE plaintext's flags byte (libzmq's msg_t::more, ::command). */
#define BOX_MORE 1
#define BOX_COMMAND 2

enum curve_phase {
    EXPECT_HELLO,    /* server */
    EXPECT_INITIATE, /* server */
    EXPECT_ZAP,      /* server: INITIATE checked, ZAP asked about C */
    EXPECT_WELCOME,  /* client */
    EXPECT_READY,    /* client */
    SEALED           /* READY: MESSAGE boxes both ways */
};

typedef struct curve_state {
    const zm_sodium *na;
    int phase;                   /* enum curve_phase */
    uint64_t nonce;              /* our next short nonce (from 1) */
    uint64_t peer_nonce;         /* the peer's last short nonce */
    unsigned char cn_public[KEY]; /* our short-term key pair */
    unsigned char cn_secret[KEY];
    unsigned char cn_peer[KEY];   /* the peer's short-term public key */
    unsigned char cookie[96];     /* client: the WELCOME's cookie */
    unsigned char cookie_key[KEY]; /* server: this handshake's, then 0 */
    unsigned char precom[ZM_BOX_BEFORENMBYTES]; /* the session key */
    unsigned char peer_key[KEY];  /* server: the client's long-term key */
    unsigned char *meta;          /* the peer's metadata, opened */
    size_t meta_len;
    unsigned char *initiate;      /* server, EXPECT_ZAP: INITIATE opened */
    size_t initiate_len;
} curve_state;

static const unsigned char zero64[64];

/* Nonce: a 16-byte prefix and a big-endian short nonce. */
static void short_nonce(unsigned char n[NONCE], const char *prefix,
                        uint64_t v)
{
    memcpy(n, prefix, 16);
    zm_put_u64(n + 16, v);
}

/* A long nonce: an 8-byte prefix and 16 random bytes. */
static void long_nonce(const curve_state *st, unsigned char n[NONCE],
                       const char *prefix)
{
    memcpy(n, prefix, 8);
    st->na->randombytes_buf(n + 8, 16);
}

/* Constant-time equality of secret bytes. */
static int same(const unsigned char *a, const unsigned char *b, size_t n)
{
    unsigned char d = 0;

    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* A short nonce the peer sent: it must exceed the last one. */
static int take_peer_nonce(zm_mech *m, curve_state *st,
                           const unsigned char *p)
{
    uint64_t v = zm_get_u64(p);

    if (v <= st->peer_nonce)
        return zm_mech_refuse(m, PROTO_INVALID_SEQUENCE, NULL);
    st->peer_nonce = v;
    return 0;
}

/* Our metadata (Socket-Type, Identity, the application's METADATA) as
 * properties, in a buffer of `room` more bytes than they take (the
 * caller's, before them) from zm_malloc: *buf (free() it; NULL on
 * -ENOMEM, returned) and *len. */
static int our_metadata(const zm_mech *m, size_t room, unsigned char **buf,
                        size_t *len_out)
{
    zm_prop props[ZM_MECH_PROPS_MAX];
    size_t np = zm_mech_props(m, props), len = 0, need = 0;
    unsigned char *b;

    for (size_t i = 0; i < np; i++)
        need += 1 + props[i].name_len + 4 + props[i].value_len;
    b = zm_malloc(room + need + 1); /* +1: never a malloc(0) */
    if (b == NULL)
        return -ENOMEM;
    *buf = b;
    b += room;
    for (size_t i = 0; i < np; i++) {
        b[len++] = (unsigned char)props[i].name_len;
        memcpy(b + len, props[i].name, props[i].name_len);
        len += props[i].name_len;
        zm_put_u32(b + len, (uint32_t)props[i].value_len);
        len += 4;
        memcpy(b + len, props[i].value, props[i].value_len);
        len += props[i].value_len;
    }
    *len_out = len;
    return 0;
}

/* Keep the peer's opened metadata (valid until the mechanism is released)
 * and say READY: 0, or refused when it is malformed. */
static int peer_ready(zm_mech *m, curve_state *st, const unsigned char *meta,
                      size_t len)
{
    if (zm_props_validate(meta, len) < 0)
        return zm_mech_refuse(m, ZM_PROTO_INVALID_METADATA, NULL);
    st->meta = zm_malloc(len > 0 ? len : 1);
    if (st->meta == NULL)
        return zm_mech_nomem(m);
    memcpy(st->meta, meta, len);
    st->meta_len = len;
    zm_mech_take_metadata(m, st->meta, len);
    st->phase = SEALED;
    m->status = ZM_MECH_READY;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Client                                                             */
/* ------------------------------------------------------------------ */

/* HELLO: version 1.0, 72 octets of padding, C', short nonce,
 * Box[64 zeros](C'->S). */
static int client_hello(zm_mech *m, curve_state *st, zm_wbuf *out)
{
    unsigned char data[HELLO_DATA], n[NONCE];

    memset(data, 0, sizeof(data));
    data[0] = 1;
    data[1] = 0;
    memcpy(data + 74, st->cn_public, KEY);
    short_nonce(n, "CurveZMQHELLO---", st->nonce++);
    memcpy(data + 106, n + 16, 8);
    if (st->na->crypto_box_easy(data + 114, zero64, 64, n,
                                m->cfg.curve_server, st->cn_secret) != 0)
        return zm_mech_refuse(m, PROTO_CRYPTOGRAPHIC, NULL);
    if (zm_encode_command(out, "HELLO", 5, data, sizeof(data)) < 0)
        return zm_mech_nomem(m);
    st->phase = EXPECT_WELCOME;
    return 0;
}

/* WELCOME: open Box[S' + cookie](S->C'), then INITIATE. */
static int client_welcome(zm_mech *m, curve_state *st, const zm_command *cmd,
                          zm_wbuf *out)
{
    unsigned char n[NONCE], plain[128], vouch[64 + MAC], vn[NONCE];
    unsigned char *box = NULL, *body = NULL;
    size_t meta_len, plen, dlen;
    int rc = 0;

    /* libzmq's curve_client reports a WELCOME of the wrong size as
     * CRYPTOGRAPHIC, as one that does not open (checked beside pyzmq's
     * client: tests/test_mech_hostile.py) */
    if (cmd->data_len != WELCOME_DATA)
        return zm_mech_refuse(m, PROTO_CRYPTOGRAPHIC, NULL);
    memcpy(n, "WELCOME-", 8);
    memcpy(n + 8, cmd->data, 16);
    if (st->na->crypto_box_open_easy(plain, cmd->data + 16, 128 + MAC, n,
                                     m->cfg.curve_server,
                                     st->cn_secret) != 0) {
        rc = zm_mech_refuse(m, PROTO_CRYPTOGRAPHIC, NULL);
        goto out;
    }
    memcpy(st->cn_peer, plain, KEY);
    memcpy(st->cookie, plain + KEY, 96);
    if (st->na->crypto_box_beforenm(st->precom, st->cn_peer,
                                    st->cn_secret) != 0) {
        rc = zm_mech_refuse(m, PROTO_CRYPTOGRAPHIC, NULL);
        goto out;
    }
    /* vouch = Box[C',S](C->S') */
    memcpy(plain, st->cn_public, KEY);
    memcpy(plain + KEY, m->cfg.curve_server, KEY);
    long_nonce(st, vn, "VOUCH---");
    if (st->na->crypto_box_easy(vouch, plain, 64, vn, st->cn_peer,
                                m->cfg.curve_secret) != 0) {
        rc = zm_mech_refuse(m, PROTO_CRYPTOGRAPHIC, NULL);
        goto out;
    }
    /* INITIATE: cookie, short nonce, Box[C + vouch + metadata](C'->S');
     * the metadata is written after room for the rest of the plaintext */
    if (our_metadata(m, KEY + 16 + sizeof(vouch), &box, &meta_len) < 0) {
        rc = zm_mech_nomem(m);
        goto out;
    }
    plen = KEY + 16 + sizeof(vouch) + meta_len;
    dlen = 96 + 8 + plen + MAC;
    body = zm_malloc(dlen);
    if (body == NULL) {
        rc = zm_mech_nomem(m);
        goto out;
    }
    memcpy(box, m->cfg.curve_public, KEY);
    memcpy(box + KEY, vn + 8, 16);
    memcpy(box + KEY + 16, vouch, sizeof(vouch));
    short_nonce(n, "CurveZMQINITIATE", st->nonce++);
    memcpy(body, st->cookie, 96);
    memcpy(body + 96, n + 16, 8);
    st->na->crypto_box_easy_afternm(body + 104, box, plen, n, st->precom);
    if (zm_encode_command(out, "INITIATE", 8, body, dlen) < 0) {
        rc = zm_mech_nomem(m);
        goto out;
    }
    st->phase = EXPECT_READY;
out:
    zm_secure_zero(plain, sizeof(plain));
    if (box != NULL)
        zm_secure_zero(box, KEY);
    free(box);
    free(body);
    return rc;
}

/* READY: short nonce, Box[metadata](S'->C'). */
static int client_ready(zm_mech *m, curve_state *st, const zm_command *cmd)
{
    unsigned char n[NONCE], *plain;
    size_t clen;
    int rc;

    if (cmd->data_len < READY_MIN)
        return zm_mech_refuse(m, ZM_PROTO_MALFORMED_COMMAND_READY, NULL);
    rc = take_peer_nonce(m, st, cmd->data);
    if (rc < 0)
        return rc;
    short_nonce(n, "CurveZMQREADY---", st->peer_nonce);
    clen = cmd->data_len - 8;
    plain = zm_malloc(clen - MAC + 1);
    if (plain == NULL)
        return zm_mech_nomem(m);
    if (st->na->crypto_box_open_easy_afternm(plain, cmd->data + 8, clen, n,
                                             st->precom) != 0)
        rc = zm_mech_refuse(m, PROTO_CRYPTOGRAPHIC, NULL);
    else
        rc = peer_ready(m, st, plain, clen - MAC);
    free(plain);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Server                                                             */
/* ------------------------------------------------------------------ */

/* HELLO: check it, open its box, answer WELCOME with a fresh cookie. */
static int server_hello(zm_mech *m, curve_state *st, const zm_command *cmd,
                        zm_wbuf *out)
{
    const unsigned char *d = cmd->data;
    unsigned char n[NONCE], plain[64], cookie[64 + MAC], cn[NONCE];
    unsigned char welcome[128], data[WELCOME_DATA];
    int rc = 0;

    if (cmd->data_len != HELLO_DATA || d[0] != 1 || d[1] != 0)
        return zm_mech_refuse(m, PROTO_MALFORMED_HELLO, NULL);
    for (size_t i = 2; i < 74; i++)
        if (d[i] != 0)
            return zm_mech_refuse(m, PROTO_MALFORMED_HELLO, NULL);
    rc = take_peer_nonce(m, st, d + 106);
    if (rc < 0)
        return rc;
    memcpy(st->cn_peer, d + 74, KEY);
    short_nonce(n, "CurveZMQHELLO---", st->peer_nonce);
    if (st->na->crypto_box_open_easy(plain, d + 114, 64 + MAC, n, st->cn_peer,
                                     m->cfg.curve_secret) != 0 ||
        !same(plain, zero64, 64))
        return zm_mech_refuse(m, PROTO_CRYPTOGRAPHIC, NULL);
    /* cookie = SecretBox[C' + s'](K), K this handshake's */
    st->na->randombytes_buf(st->cookie_key, KEY);
    memcpy(plain, st->cn_peer, KEY);
    memcpy(plain + KEY, st->cn_secret, KEY);
    long_nonce(st, cn, "COOKIE--");
    st->na->crypto_secretbox_easy(cookie, plain, 64, cn, st->cookie_key);
    /* WELCOME: long nonce, Box[S' + cookie nonce + cookie](S->C') */
    memcpy(welcome, st->cn_public, KEY);
    memcpy(welcome + KEY, cn + 8, 16);
    memcpy(welcome + KEY + 16, cookie, sizeof(cookie));
    long_nonce(st, n, "WELCOME-");
    memcpy(data, n + 8, 16);
    if (st->na->crypto_box_easy(data + 16, welcome, sizeof(welcome), n,
                                st->cn_peer, m->cfg.curve_secret) != 0)
        rc = zm_mech_refuse(m, PROTO_CRYPTOGRAPHIC, NULL);
    else if (zm_encode_command(out, "WELCOME", 7, data, sizeof(data)) < 0)
        rc = zm_mech_nomem(m);
    else
        st->phase = EXPECT_INITIATE;
    zm_secure_zero(plain, sizeof(plain));
    return rc;
}

/* Our READY: short nonce, Box[metadata](S'->C'). */
static int server_send_ready(zm_mech *m, curve_state *st, zm_wbuf *out)
{
    unsigned char n[NONCE], *meta = NULL, *data = NULL;
    size_t meta_len;
    int rc = 0;

    if (our_metadata(m, 0, &meta, &meta_len) < 0 ||
        (data = zm_malloc(8 + meta_len + MAC)) == NULL) {
        rc = zm_mech_nomem(m);
        goto out;
    }
    short_nonce(n, "CurveZMQREADY---", st->nonce++);
    memcpy(data, n + 16, 8);
    st->na->crypto_box_easy_afternm(data + 8, meta, meta_len, n, st->precom);
    if (zm_encode_command(out, "READY", 5, data, 8 + meta_len + MAC) < 0)
        rc = zm_mech_nomem(m);
out:
    free(meta);
    free(data);
    return rc;
}

/* INITIATE: the cookie must be ours, the box open with the session key,
 * the vouch name C'; then ZAP is asked about C (READY goes with its
 * answer, curve_zap_reply). */
static int server_initiate(zm_mech *m, curve_state *st, const zm_command *cmd)
{
    const unsigned char *d = cmd->data;
    unsigned char n[NONCE], cookie[64], vouch[64], *plain = NULL;
    size_t clen;
    int rc;

    if (cmd->data_len < INITIATE_MIN)
        return zm_mech_refuse(m, PROTO_MALFORMED_INITIATE, NULL);
    memcpy(n, "COOKIE--", 8);
    memcpy(n + 8, d, 16);
    rc = st->na->crypto_secretbox_open_easy(cookie, d + 16, 64 + MAC, n,
                                            st->cookie_key);
    zm_secure_zero(st->cookie_key, KEY); /* one INITIATE per cookie */
    if (rc != 0 || !same(cookie, st->cn_peer, KEY) ||
        !same(cookie + KEY, st->cn_secret, KEY)) {
        rc = zm_mech_refuse(m, PROTO_CRYPTOGRAPHIC, NULL);
        goto out;
    }
    rc = take_peer_nonce(m, st, d + 96);
    if (rc < 0)
        goto out;
    if (st->na->crypto_box_beforenm(st->precom, st->cn_peer,
                                    st->cn_secret) != 0) {
        rc = zm_mech_refuse(m, PROTO_CRYPTOGRAPHIC, NULL);
        goto out;
    }
    short_nonce(n, "CurveZMQINITIATE", st->peer_nonce);
    clen = cmd->data_len - 104;
    plain = zm_malloc(clen - MAC);
    if (plain == NULL) {
        rc = zm_mech_nomem(m);
        goto out;
    }
    if (st->na->crypto_box_open_easy_afternm(plain, d + 104, clen, n,
                                             st->precom) != 0) {
        rc = zm_mech_refuse(m, PROTO_CRYPTOGRAPHIC, NULL);
        goto out;
    }
    /* plain: C, vouch nonce (16), vouch = Box[C',S](C->S'), metadata */
    memcpy(st->peer_key, plain, KEY);
    memcpy(n, "VOUCH---", 8);
    memcpy(n + 8, plain + KEY, 16);
    if (st->na->crypto_box_open_easy(vouch, plain + KEY + 16, 64 + MAC, n,
                                     st->peer_key, st->cn_secret) != 0) {
        rc = zm_mech_refuse(m, PROTO_CRYPTOGRAPHIC, NULL);
        goto out;
    }
    if (!same(vouch, st->cn_peer, KEY)) {
        rc = zm_mech_refuse(m, PROTO_KEY_EXCHANGE, NULL);
        goto out;
    }
    /* ZAP (RFC 27) judges the client's long-term key C; READY waits for
     * its 200 (curve_zap_reply), which keeps the opened INITIATE. */
    st->initiate = plain;
    st->initiate_len = clen - MAC;
    plain = NULL;
    st->phase = EXPECT_ZAP;
    {
        const unsigned char *cred[1] = {st->peer_key};
        const size_t cred_len[1] = {KEY};

        zm_mech_zap_request(m, "CURVE", cred, cred_len, 1);
    }
    rc = 0;
out:
    zm_secure_zero(cookie, sizeof(cookie));
    free(plain);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The ops                                                            */
/* ------------------------------------------------------------------ */

/* ZAP's verdict on C: 200 READY; 300 close without ERROR (a temporary
 * failure); 400/500 ERROR with the status, as libzmq's zap_client. */
static int curve_zap_reply(zm_mech *m, unsigned status, zm_wbuf *out)
{
    curve_state *st = m->state;
    int rc;

    if (st->phase != EXPECT_ZAP || st->initiate == NULL)
        return zm_mech_refuse(m, ZM_PROTO_UNSPECIFIED, NULL);
    switch (status) {
    case 200:
        rc = server_send_ready(m, st, out);
        if (rc == 0)
            rc = peer_ready(m, st, st->initiate + 128,
                            st->initiate_len - 128);
        break;
    case 300:
        rc = zm_mech_auth_failed(m, 300, NULL);
        break;
    case 400:
        rc = zm_mech_auth_failed(m, 400, "400");
        break;
    default:
        rc = zm_mech_auth_failed(m, 500, "500");
        break;
    }
    zm_secure_zero(st->initiate, st->initiate_len);
    free(st->initiate);
    st->initiate = NULL;
    return rc;
}

static int curve_start(zm_mech *m, zm_wbuf *out)
{
    const zm_sodium *na = zm_sodium_get(NULL);
    curve_state *st;

    if (na == NULL) /* the option setters refuse before this */
        return zm_mech_refuse(m, ZM_PROTO_UNSPECIFIED, NULL);
    st = zm_calloc(1, sizeof(*st));
    if (st == NULL)
        return zm_mech_nomem(m);
    m->state = st;
    st->na = na;
    st->nonce = 1;
    st->peer_nonce = 0; /* the peer's first is 1 */
    na->crypto_box_keypair(st->cn_public, st->cn_secret);
    if (m->cfg.as_server) {
        st->phase = EXPECT_HELLO;
        return 0;
    }
    return client_hello(m, st, out);
}

static int curve_handle(zm_mech *m, const zm_command *cmd, zm_wbuf *out)
{
    curve_state *st = m->state;

#define IS(word) (cmd->name_len == sizeof(word) - 1 &&                        \
                  memcmp(cmd->name, word, sizeof(word) - 1) == 0)
    switch (st->phase) {
    case EXPECT_HELLO:
        if (IS("HELLO"))
            return server_hello(m, st, cmd, out);
        break;
    case EXPECT_INITIATE:
        if (IS("INITIATE"))
            return server_initiate(m, st, cmd);
        break;
    case EXPECT_WELCOME:
        if (IS("WELCOME"))
            return client_welcome(m, st, cmd, out);
        if (cmd->kind == ZM_CMD_ERROR)
            return zm_mech_peer_error(m, cmd);
        break;
    case EXPECT_READY:
        if (IS("READY"))
            return client_ready(m, st, cmd);
        if (cmd->kind == ZM_CMD_ERROR)
            return zm_mech_peer_error(m, cmd);
        break;
    default:
        break;
    }
#undef IS
    return zm_mech_refuse(m, ZM_PROTO_UNEXPECTED_COMMAND, NULL);
}

static void curve_release(zm_mech *m)
{
    curve_state *st = m->state;

    zm_secure_zero(m->cfg.curve_secret, KEY);
    if (st == NULL)
        return;
    free(st->meta);
    if (st->initiate != NULL) {
        zm_secure_zero(st->initiate, st->initiate_len);
        free(st->initiate);
    }
    zm_secure_zero(st, sizeof(*st));
    free(st);
    m->state = NULL;
}

/* One frame as a MESSAGE body: "\x07MESSAGE", short nonce,
 * Box[flags + data](C'->S' or S'->C'), appended to out as a frame with no
 * flags (libzmq sends MESSAGE so, not as a command frame).  Sealed in
 * place: the flags byte and the data are written where the box goes and
 * libsodium encrypts them there (its easy functions allow m == c + MAC),
 * so a message costs one copy and no allocation once out has room. */
static int curve_encode(zm_mech *m, const void *data, size_t n,
                        unsigned flags, zm_wbuf *out)
{
    curve_state *st = m->state;
    unsigned char nonce[NONCE], *dst, *box, fl;
    size_t body = 8 + 8 + 1 + n + MAC, h;

    if (n > SIZE_MAX - 64 || zm_wbuf_reserve(out, 9 + body) < 0)
        return -ENOMEM;
    dst = out->data + out->len;
    h = zm_frame_header(dst, body, 0);
    memcpy(dst + h, "\x07MESSAGE", 8);
    short_nonce(nonce, m->cfg.as_server ? "CurveZMQMESSAGES"
                                        : "CurveZMQMESSAGEC", st->nonce++);
    memcpy(dst + h + 8, nonce + 16, 8);
    box = dst + h + 16;
    fl = (unsigned char)(((flags & ZM_FLAG_MORE) ? BOX_MORE : 0) |
                         ((flags & ZM_FLAG_COMMAND) ? BOX_COMMAND : 0));
    if ((flags & ZM_ENC_ROOM_BEFORE) && n > 0) {
        /* the flags byte goes in the caller's spare byte before the
         * frame, and libsodium reads the plaintext where it lies (input
         * and output do not overlap: it copies nothing first) */
        unsigned char *plain = (unsigned char *)data - 1;
        plain[0] = fl;
        st->na->crypto_box_easy_afternm(box, plain, 1 + n, nonce,
                                        st->precom);
    } else {
        box[MAC] = fl;
        if (n > 0)
            memmove(box + MAC + 1, data, n); /* data may be in place */
        st->na->crypto_box_easy_afternm(box, box + MAC, 1 + n, nonce,
                                        st->precom);
    }
    out->len += h + body;
    return 0;
}

/* A MESSAGE (cmd: its name and what follows) opened: the frame's bytes
 * appended to out, its ZM_FLAG_MORE / ZM_FLAG_COMMAND in *flags. */
static int curve_decode(zm_mech *m, const zm_command *cmd, zm_wbuf *out,
                        unsigned *flags)
{
    curve_state *st = m->state;
    unsigned char nonce[NONCE];
    size_t clen;
    int rc;

    if (cmd->name_len != 7 || memcmp(cmd->name, "MESSAGE", 7) != 0)
        return zm_mech_refuse(m, ZM_PROTO_UNEXPECTED_COMMAND, NULL);
    if (cmd->data_len < MESSAGE_MIN)
        return zm_mech_refuse(m, PROTO_MALFORMED_MESSAGE, NULL);
    rc = take_peer_nonce(m, st, cmd->data);
    if (rc < 0)
        return rc;
    short_nonce(nonce, m->cfg.as_server ? "CurveZMQMESSAGEC"
                                        : "CurveZMQMESSAGES", st->peer_nonce);
    clen = cmd->data_len - 8;
    if (out->len == 0 && out->data == cmd->data && out->cap >= cmd->data_len) {
        /* In place (see mechanism.h): opened over the ciphertext itself
         * (m == c + MAC, so libsodium moves nothing first), and the frame
         * starts past the flags byte: no move of the plaintext at all. */
        unsigned char *plain = out->data + 8 + MAC;
        if (st->na->crypto_box_open_easy_afternm(plain, plain - MAC, clen,
                                                 nonce, st->precom) != 0)
            return zm_mech_refuse(m, PROTO_CRYPTOGRAPHIC, NULL);
        *flags = ((plain[0] & BOX_MORE) ? ZM_FLAG_MORE : 0) |
                 ((plain[0] & BOX_COMMAND) ? ZM_FLAG_COMMAND : 0);
        out->data = plain + 1;
        out->len = clen - MAC - 1;
        out->cap = out->len;
        return 0;
    }
    if (zm_wbuf_reserve(out, clen - MAC) < 0)
        return zm_mech_nomem(m);
    if (st->na->crypto_box_open_easy_afternm(out->data + out->len,
                                             cmd->data + 8, clen, nonce,
                                             st->precom) != 0)
        return zm_mech_refuse(m, PROTO_CRYPTOGRAPHIC, NULL);
    *flags = ((out->data[out->len] & BOX_MORE) ? ZM_FLAG_MORE : 0) |
             ((out->data[out->len] & BOX_COMMAND) ? ZM_FLAG_COMMAND : 0);
    memmove(out->data + out->len, out->data + out->len + 1, clen - MAC - 1);
    out->len += clen - MAC - 1;
    return 0;
}

const zm_mech_ops zm_mech_curve = {
    .name = "CURVE",
    .start = curve_start,
    .greeting = NULL, /* the roles come from our options, as libzmq */
    .handle = curve_handle,
    .release = curve_release,
    .encode = curve_encode,
    .decode = curve_decode,
    .zap_reply = curve_zap_reply,
    .zap_optional = 1, /* no handler: encryption without authentication */
};
