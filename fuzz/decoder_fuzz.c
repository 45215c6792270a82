/*
 * decoder_fuzz.c - libFuzzer harness for the sans-IO ZMTP decoder (src/codec.c).
 *
 * Input layout: byte 0 is a control byte, the rest is the wire stream.
 *
 *   bits 0-1  chunking:  0 whole (one feed of everything, looped on room)
 *                        1 one byte at a time
 *                        2 PRNG chunk sizes 1..600 (crosses 256/300 pages)
 *                        3 PRNG chunk sizes 1..9
 *   bit  2    1: decoder starts in greeting phase, 0: frames at once
 *   bits 3-4  page size: 256, 300, 1024, 65536
 *   bits 5-7  limits (maxmsgsize, max_frames), see LIMITS below
 *
 * The PRNG (xorshift32, seeded from the control byte and the input length)
 * also chooses, per chunk, feed() vs buffer()+memcpy+commit(), whether to
 * call release_idle(), and whether to keep an event's frames alive for a
 * while (so the decoder must not recycle pages that slices still use).
 *
 * Checks (each a __builtin_trap on failure, after a line on stderr):
 *   - API contract: buffer() gives >= 1 byte after NEED_DATA, feed()
 *     consumes >= 1 byte then, errors are terminal, error codes and reasons
 *     are sane, the greeting comes first and once, frame slices lie inside
 *     their page, MORE flags are consistent, limits are honoured.
 *   - Slice immutability: frames kept alive across later feeds still hold
 *     the bytes they had when they were returned.
 *   - Chunking invariance: a digest of all events (kinds, greeting fields,
 *     frame sizes/flags/bytes, parse results, error code and reason, final
 *     pending count) equals the digest of a second decode of the same
 *     stream with the same config fed whole.
 *   - ZMTP/2.0 (a greeting with revision 0x01): major 2, no mechanism, the
 *     socket-type octet; the first message after it is the identity (one
 *     frame of at most 255 octets); no command ever follows it (2.0 has
 *     none: the COMMAND bit is reserved there).
 *   - Round trip: every message and command re-encoded with zm_encode_frame
 *     decodes (fresh decoder, greeting=0) to the same frames; the specific
 *     encoders (ready/error/ping/pong/subscribe/cancel/command/3.0
 *     subscription, greeting) agree with what was decoded.
 *   - No page leak: zm_mem_get_stats().pages_live is back to its value at
 *     entry once everything is freed (LeakSanitizer covers other memory).
 */
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* Hashing/PRNG arithmetic wraps on purpose; keep the sanitizer for the
 * code under test only. */
#define WRAPS __attribute__((no_sanitize("unsigned-integer-overflow")))

#define CHECK(x)                                                            \
    do {                                                                    \
        if (!(x)) {                                                         \
            fprintf(stderr, "decoder_fuzz: check failed at %s:%d: %s\n",    \
                    __FILE__, __LINE__, #x);                                \
            __builtin_trap();                                               \
        }                                                                   \
    } while (0)

/* ------------------------------------------------------------------ */
/* Small helpers                                                      */
/* ------------------------------------------------------------------ */

typedef struct rng {
    uint32_t s;
} rng;

static WRAPS void rng_seed(rng *r, uint32_t a, uint32_t b)
{
    r->s = (a * 0x9E3779B1u) ^ (b * 0x85EBCA6Bu) ^ 0x2545F491u;
    if (r->s == 0)
        r->s = 1;
}

static WRAPS uint32_t rng_next(rng *r)
{
    uint32_t x = r->s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    r->s = x;
    return x;
}

static WRAPS void h_bytes(uint64_t *h, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t v = *h;
    for (size_t i = 0; i < n; i++) {
        v ^= p[i];
        v *= 0x100000001b3ull;
    }
    *h = v;
}

static void h_u64(uint64_t *h, uint64_t v)
{
    unsigned char b[8];
    zm_put_u64(b, v);
    h_bytes(h, b, 8);
}

static volatile unsigned g_sink;

/* DECODER_FUZZ_VERBOSE=1: print the events of the chunked run (triage). */
static int g_verbose = -1;

static int verbose(void)
{
    if (g_verbose < 0) {
        const char *e = getenv("DECODER_FUZZ_VERBOSE");
        g_verbose = e != NULL && e[0] != '\0' && e[0] != '0';
    }
    return g_verbose;
}

/* Read every byte (ASAN checks the slice is valid memory). */
static WRAPS void touch(const unsigned char *p, size_t n)
{
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    g_sink += s;
}

static void check_frame_slice(const zm_frame *f)
{
    if (f->size == 0) {
        CHECK(f->page == NULL);
        return;
    }
    CHECK(f->page != NULL && f->data != NULL);
    CHECK(f->data >= f->page->data);
    CHECK((size_t)(f->data - f->page->data) <= f->page->len);
    CHECK(f->size <= f->page->len - (size_t)(f->data - f->page->data));
    CHECK(f->page->len <= f->page->cap);
    touch(f->data, f->size);
}

static uint64_t frames_hash(const zm_frame *fr, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h_u64(&h, fr[i].size);
        h_u64(&h, fr[i].flags);
        if (fr[i].size)
            h_bytes(&h, fr[i].data, fr[i].size);
    }
    return h;
}

/* ------------------------------------------------------------------ */
/* Held events: slices kept alive across later feeds                  */
/* ------------------------------------------------------------------ */

#define HOLD_MAX 6

typedef struct held {
    int is_msg;
    zm_msg msg;
    zm_frame frame;
    uint64_t hash;
} held;

typedef struct holder {
    held items[HOLD_MAX];
    size_t n;
} holder;

static void held_release(held *h)
{
    if (h->is_msg) {
        CHECK(frames_hash(zm_msg_frames(&h->msg), h->msg.n) == h->hash);
        zm_msg_clear(&h->msg);
    } else {
        CHECK(frames_hash(&h->frame, 1) == h->hash);
        zm_frame_release(&h->frame);
    }
}

static void holder_pop_oldest(holder *H)
{
    held_release(&H->items[0]);
    memmove(&H->items[0], &H->items[1], (H->n - 1) * sizeof(held));
    H->n--;
}

static void holder_put(holder *H, held *h)
{
    if (H->n == HOLD_MAX)
        holder_pop_oldest(H);
    H->items[H->n++] = *h;
}

static void holder_clear(holder *H)
{
    while (H->n > 0)
        holder_pop_oldest(H);
}

/* ------------------------------------------------------------------ */
/* Round-trip decode                                                  */
/* ------------------------------------------------------------------ */

/* Decode buf with a fresh decoder; exactly one event must come out. The
 * caller owns what *out holds. */
static void rt_decode(const unsigned char *buf, size_t len, int greeting,
                      size_t page_size, size_t max_frames, zm_event *out)
{
    zm_decoder_config cfg;
    zm_decoder d;
    zm_event ev;
    size_t off = 0, consumed;
    int got = 0, kind;

    zm_decoder_config_default(&cfg);
    cfg.page_size = page_size;
    cfg.max_frames = max_frames;
    cfg.greeting = greeting;
    CHECK(zm_decoder_init(&d, &cfg) == 0);
    for (;;) {
        while ((kind = zm_decoder_next(&d, &ev)) != ZM_EV_NEED_DATA) {
            CHECK(kind == ev.kind);
            CHECK(kind != ZM_EV_ERROR);
            CHECK(!got);
            *out = ev;
            got = 1;
        }
        if (off == len)
            break;
        CHECK(zm_decoder_feed(&d, buf + off, len - off, &consumed) == 0);
        CHECK(consumed >= 1 && consumed <= len - off);
        off += consumed;
    }
    CHECK(got);
    CHECK(zm_decoder_pending(&d) == 0);
    zm_decoder_free(&d);
}

static void wbuf_eq(const zm_wbuf *a, const zm_wbuf *b)
{
    CHECK(a->len == b->len);
    CHECK(a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* ------------------------------------------------------------------ */
/* One decode run                                                     */
/* ------------------------------------------------------------------ */

typedef struct run {
    const zm_decoder_config *cfg;
    uint64_t digest;
    size_t events;
    int saw_greeting;
    int v2;        /* the greeting was ZMTP/2.0 */
    int v2_identity; /* ... and its identity frame is still to come */
    int extra;     /* 1: chunked run: round trips, encoder checks, holding */
    holder *hold;  /* chunked run only */
    rng *r;        /* chunked run only */
} run;

static void check_encoders_for_command(const zm_frame *f, const zm_command *c,
                                       int rc)
{
    zm_wbuf ref, w;
    int erc = 1;

    zm_wbuf_init(&ref);
    zm_wbuf_init(&w);
    CHECK(zm_encode_frame(&ref, f->data, f->size, ZM_FLAG_COMMAND) == 0);
    if (rc == 0) {
        switch (c->kind) {
        case ZM_CMD_READY: {
            zm_prop props[257];
            size_t np = 0;
            const unsigned char *p = c->data, *end = c->data + c->data_len;
            int prc;
            while ((prc = zm_props_next(&p, end, &props[np])) == 1) {
                np++;
                CHECK(np <= 256); /* validate() said <= 256 */
            }
            CHECK(prc == 0);
            erc = zm_encode_ready(&w, props, np);
            CHECK(erc == 0);
            break;
        }
        case ZM_CMD_ERROR: /* (libzmq's PLAIN form has its own bytes) */
            if (c->data_len == 1 + c->arg_len && c->name == f->data + 1)
                erc = zm_encode_error(&w, c->arg, c->arg_len);
            break;
        case ZM_CMD_PING:
            if (c->arg_len <= ZM_PING_CONTEXT_MAX)
                erc = zm_encode_ping(&w, c->ttl, c->arg, c->arg_len);
            break;
        case ZM_CMD_PONG:
            if (c->arg_len <= ZM_PING_CONTEXT_MAX)
                erc = zm_encode_pong(&w, c->arg, c->arg_len);
            break;
        case ZM_CMD_SUBSCRIBE:
        case ZM_CMD_CANCEL:
            erc = zm_encode_subscription(&w, c->arg, c->arg_len,
                                         c->kind == ZM_CMD_SUBSCRIBE, 1);
            break;
        default:
            erc = zm_encode_command(&w, (const char *)c->name, c->name_len,
                                    c->data, c->data_len);
            break;
        }
        if (erc != 1) {
            CHECK(erc == 0);
            wbuf_eq(&ref, &w);
        }
    }
    /* Round trip of the raw command frame. */
    {
        zm_event ev;
        rt_decode(ref.data, ref.len, 0, 256, 1, &ev);
        CHECK(ev.kind == ZM_EV_COMMAND);
        CHECK(ev.command.size == f->size);
        CHECK(ev.command.flags == ZM_FLAG_COMMAND);
        CHECK(f->size == 0 ||
              memcmp(ev.command.data, f->data, f->size) == 0);
        zm_frame_release(&ev.command);
    }
    zm_wbuf_free(&ref);
    zm_wbuf_free(&w);
}

static void check_roundtrip_msg(run *R, zm_msg *m)
{
    zm_frame *fr = zm_msg_frames(m);
    zm_wbuf w;
    zm_event ev;

    zm_wbuf_init(&w);
    for (size_t i = 0; i < m->n; i++)
        CHECK(zm_encode_frame(&w, fr[i].data, fr[i].size, fr[i].flags) == 0);
    rt_decode(w.data, w.len, 0, R->cfg->page_size, m->n, &ev);
    CHECK(ev.kind == ZM_EV_MESSAGE);
    CHECK(ev.msg.n == m->n);
    CHECK(ev.msg.bytes == m->bytes);
    {
        zm_frame *g = zm_msg_frames(&ev.msg);
        for (size_t i = 0; i < m->n; i++) {
            CHECK(g[i].size == fr[i].size);
            CHECK(g[i].flags == fr[i].flags);
            CHECK(fr[i].size == 0 ||
                  memcmp(g[i].data, fr[i].data, fr[i].size) == 0);
        }
    }
    zm_msg_clear(&ev.msg);
    zm_wbuf_free(&w);
}

static void check_roundtrip_greeting(const zm_greeting *g)
{
    unsigned char out[ZM_GREETING_SIZE];
    size_t mlen = strlen(g->mechanism);
    int rc = zm_encode_greeting(out, g->minor, g->mechanism, mlen,
                                g->as_server);
    zm_event ev;

    if (mlen == 0 || mlen > ZM_MECHANISM_SIZE) {
        CHECK(rc == -ZM_ERR_MECHANISM);
        return;
    }
    if (rc != 0) {
        CHECK(rc == -ZM_ERR_MECHANISM);
        return;
    }
    rt_decode(out, sizeof(out), 1, 256, 1, &ev);
    CHECK(ev.kind == ZM_EV_GREETING);
    CHECK(ev.greeting.major == 3);
    CHECK(ev.greeting.minor == g->minor);
    CHECK(ev.greeting.as_server == (g->as_server ? 1 : 0));
    CHECK(strcmp(ev.greeting.mechanism, g->mechanism) == 0);
}

/* A 2.0 greeting re-encoded (signature, revision 0x01, then what
 * zm_encode_greeting_v2 writes) decodes to the same socket type, then
 * the identity as a one-frame message. */
static void check_roundtrip_greeting_v2(const zm_greeting *g)
{
    static const unsigned char id[3] = {'i', 0, 'd'};
    zm_wbuf w;
    zm_decoder_config cfg;
    zm_decoder d;
    zm_event ev;
    size_t consumed;

    zm_wbuf_init(&w);
    CHECK(zm_wbuf_reserve(&w, 11) == 0);
    memset(w.data, 0, 11);
    w.data[0] = 0xff;
    w.data[9] = 0x7f;
    w.data[10] = ZM_ZMTP20_REVISION;
    w.len = 11;
    CHECK(zm_encode_greeting_v2(&w, (uint8_t)g->socket_type, id, 256) ==
          -ZM_ERR_V2_GREETING);
    CHECK(zm_encode_greeting_v2(&w, (uint8_t)g->socket_type, id, 3) == 0);
    CHECK(w.len == 11 + 3 + 3);
    zm_decoder_config_default(&cfg);
    CHECK(zm_decoder_init(&d, &cfg) == 0);
    CHECK(zm_decoder_next(&d, &ev) == ZM_EV_NEED_DATA);
    CHECK(zm_decoder_feed(&d, w.data, w.len, &consumed) == 0);
    CHECK(consumed == w.len);
    CHECK(zm_decoder_next(&d, &ev) == ZM_EV_GREETING);
    CHECK(ev.greeting.major == 2 && ev.greeting.socket_type == g->socket_type);
    CHECK(zm_decoder_next(&d, &ev) == ZM_EV_MESSAGE);
    CHECK(ev.msg.n == 1 && ev.msg.bytes == 3);
    CHECK(memcmp(zm_msg_frames(&ev.msg)[0].data, id, 3) == 0);
    zm_msg_clear(&ev.msg);
    CHECK(zm_decoder_next(&d, &ev) == ZM_EV_NEED_DATA);
    zm_decoder_free(&d);
    zm_wbuf_free(&w);
}

/* Handle one event; returns 1 when the decoder is in error (stop). */
static int on_event(run *R, zm_decoder *d, zm_event *ev)
{
    uint64_t *h = &R->digest;
    held hd;

    h_u64(h, (uint64_t)ev->kind);
    if (R->extra && verbose()) {
        if (ev->kind == ZM_EV_GREETING)
            fprintf(stderr, "  GREETING %u.%u %s server=%u\n",
                    ev->greeting.major, ev->greeting.minor,
                    ev->greeting.mechanism, ev->greeting.as_server);
        else if (ev->kind == ZM_EV_COMMAND) {
            zm_command c;
            int rc = zm_command_parse(ev->command.data, ev->command.size, &c);
            fprintf(stderr, "  COMMAND %zu bytes: %.*s parse %d (%s)\n",
                    ev->command.size, rc == 0 ? (int)c.name_len : 0,
                    rc == 0 ? (const char *)c.name : "", rc,
                    rc == 0 ? "ok" : zm_strerror(rc));
        }
        else if (ev->kind == ZM_EV_MESSAGE)
            fprintf(stderr, "  MESSAGE %zu frames, %zu bytes\n", ev->msg.n,
                    ev->msg.bytes);
        else if (ev->kind == ZM_EV_ERROR)
            fprintf(stderr, "  ERROR %d: %s\n", ev->error, d->reason);
    }
    switch (ev->kind) {
    case ZM_EV_GREETING: {
        zm_greeting *g = &ev->greeting;
        CHECK(R->cfg->greeting && !R->saw_greeting && R->events == 0);
        R->saw_greeting = 1;
        CHECK(g->major >= 3 || g->major == 2);
        CHECK(memchr(g->mechanism, 0, sizeof(g->mechanism)) != NULL);
        if (g->major == 2) {
            CHECK(g->socket_type >= 0 && g->socket_type <= 255);
            CHECK(g->minor == 0 && g->mechanism[0] == '\0' && !g->as_server);
            R->v2 = R->v2_identity = 1;
            if (R->extra)
                check_roundtrip_greeting_v2(g);
        } else {
            CHECK(g->socket_type == -1);
        }
        h_u64(h, (uint64_t)(int64_t)g->socket_type);
        h_u64(h, g->major);
        h_u64(h, g->minor);
        h_u64(h, g->as_server);
        h_bytes(h, g->mechanism, strlen(g->mechanism));
        if (R->extra && g->major >= 3)
            check_roundtrip_greeting(g);
        break;
    }
    case ZM_EV_COMMAND: {
        zm_frame *f = &ev->command;
        zm_command c;
        int rc;

        CHECK(!R->cfg->greeting || R->saw_greeting);
        CHECK(!R->v2); /* ZMTP/2.0 has no commands */
        CHECK(f->flags == ZM_FLAG_COMMAND);
        CHECK(R->cfg->maxmsgsize < 0 ||
              f->size <= (uint64_t)R->cfg->maxmsgsize);
        check_frame_slice(f);
        rc = zm_command_parse(f->data, f->size, &c);
        CHECK(rc == 0 || rc == -ZM_ERR_COMMAND || rc == -ZM_ERR_READY ||
              rc == -ZM_ERR_ERROR_CMD || rc == -ZM_ERR_PING);
        h_u64(h, f->size);
        h_u64(h, f->flags);
        if (f->size)
            h_bytes(h, f->data, f->size);
        h_u64(h, (uint64_t)(int64_t)rc);
        h_u64(h, (uint64_t)c.kind);
        if (rc == 0 && c.name == f->data) {
            /* libzmq 4.3.5's PLAIN ERROR: "^RROR", reason size, reason
             * (codec.c, parse_libzmq_plain_error): no name-size octet */
            CHECK(c.kind == ZM_CMD_ERROR && c.name_len == 5);
            CHECK(memcmp(f->data, ZM_LIBZMQ_PLAIN_ERROR, 5) == 0);
            CHECK(c.name_len + c.data_len == f->size);
            CHECK(c.arg == c.data + 1 && 1 + c.arg_len == c.data_len);
        } else if (rc == 0) {
            CHECK(c.name == f->data + 1 && c.name_len >= 1);
            CHECK(1 + c.name_len + c.data_len == f->size);
        }
        if (rc == 0) {
            CHECK(c.arg >= c.data &&
                  c.arg + c.arg_len <= c.data + c.data_len);
            h_u64(h, c.ttl);
            h_u64(h, c.arg_len);
            if (c.kind == ZM_CMD_READY) {
                const unsigned char *p = c.data, *end = c.data + c.data_len;
                zm_prop prop;
                int n = 0, prc, vrc;
                while ((prc = zm_props_next(&p, end, &prop)) == 1) {
                    CHECK(prop.name >= c.data && prop.name_len >= 1);
                    CHECK(prop.value + prop.value_len <= end);
                    touch(prop.name, prop.name_len);
                    touch(prop.value, prop.value_len);
                    n++;
                }
                CHECK(prc == 0 && p == end);
                vrc = zm_props_validate(c.data, c.data_len);
                CHECK(vrc == n);
                if (zm_props_find(c.data, c.data_len, "Socket-Type",
                                  &prop) == 1) {
                    CHECK(prop.name_len == 11);
                    CHECK(prop.value >= c.data &&
                          prop.value + prop.value_len <= end);
                    h_u64(h, prop.value_len);
                    h_bytes(h, prop.value, prop.value_len);
                }
                if (zm_props_find(c.data, c.data_len, "identity", &prop) ==
                    1)
                    CHECK(prop.value + prop.value_len <= end);
            }
        }
        if (R->extra)
            check_encoders_for_command(f, &c, rc);
        if (R->hold != NULL && (rng_next(R->r) & 3) == 0) {
            memset(&hd, 0, sizeof(hd));
            hd.is_msg = 0;
            hd.frame = *f;
            hd.hash = frames_hash(f, 1);
            holder_put(R->hold, &hd);
        } else {
            zm_frame_release(f);
        }
        break;
    }
    case ZM_EV_MESSAGE: {
        zm_msg *m = &ev->msg;
        zm_frame *fr = zm_msg_frames(m);
        size_t bytes = 0;

        CHECK(!R->cfg->greeting || R->saw_greeting);
        CHECK(m->n >= 1 && m->n <= R->cfg->max_frames);
        if (R->v2_identity) { /* final-short: one frame, <= 255 octets */
            CHECK(m->n == 1 && m->bytes <= 255);
            R->v2_identity = 0;
        }
        CHECK(m->heap == NULL ? m->n <= ZM_MSG_INLINE : m->n <= m->cap);
        h_u64(h, m->n);
        for (size_t i = 0; i < m->n; i++) {
            CHECK(fr[i].flags == (i + 1 < m->n ? ZM_FLAG_MORE : 0u));
            CHECK(R->cfg->maxmsgsize < 0 ||
                  fr[i].size <= (uint64_t)R->cfg->maxmsgsize);
            check_frame_slice(&fr[i]);
            bytes += fr[i].size;
            h_u64(h, fr[i].size);
            h_u64(h, fr[i].flags);
            if (fr[i].size)
                h_bytes(h, fr[i].data, fr[i].size);
        }
        CHECK(bytes == m->bytes);
        if (m->n == 1) {
            int sub = -1;
            const unsigned char *topic = NULL;
            size_t tlen = 0;
            int src = zm_parse_subscription_message(fr[0].data, fr[0].size,
                                                    &sub, &topic, &tlen);
            CHECK(src == 0 || src == 1);
            h_u64(h, (uint64_t)src);
            if (src == 1) {
                CHECK(sub == 0 || sub == 1);
                CHECK(topic == fr[0].data + 1 && tlen == fr[0].size - 1);
                touch(topic, tlen);
                h_u64(h, (uint64_t)sub);
                if (R->extra) {
                    zm_wbuf a, b;
                    zm_wbuf_init(&a);
                    zm_wbuf_init(&b);
                    CHECK(zm_encode_frame(&a, fr[0].data, fr[0].size, 0) ==
                          0);
                    CHECK(zm_encode_subscription(&b, topic, tlen, sub, 0) ==
                          0);
                    wbuf_eq(&a, &b);
                    zm_wbuf_free(&a);
                    zm_wbuf_free(&b);
                }
            }
        }
        if (R->extra)
            check_roundtrip_msg(R, m);
        if (R->hold != NULL && (rng_next(R->r) & 3) == 0) {
            memset(&hd, 0, sizeof(hd));
            hd.is_msg = 1;
            zm_msg_move(&hd.msg, m);
            hd.hash = frames_hash(zm_msg_frames(&hd.msg), hd.msg.n);
            holder_put(R->hold, &hd);
        } else {
            zm_msg_clear(m);
        }
        break;
    }
    case ZM_EV_ERROR: {
        const char *s = zm_strerror(ev->error);
        unsigned char *buf;
        size_t len, consumed;
        zm_event ev2;

        CHECK(ev->error > 0 && ev->error < ZM_ERR_COUNT_);
        CHECK(ev->error != ZM_ERR_STATE && ev->error != ZM_ERR_NOMEM);
        CHECK(ev->error == d->error && d->state == ZM_DS_ERROR);
        CHECK(s != NULL && s[0] != '\0');
        CHECK(memchr(d->reason, 0, sizeof(d->reason)) != NULL);
        CHECK(d->reason[0] != '\0');
        CHECK(d->big == NULL && d->msg.n == 0);
        h_u64(h, (uint64_t)ev->error);
        h_bytes(h, d->reason, strlen(d->reason));
        /* Terminal: stays in error, refuses input. */
        CHECK(zm_decoder_next(d, &ev2) == ZM_EV_ERROR &&
              ev2.kind == ZM_EV_ERROR && ev2.error == ev->error);
        CHECK(zm_decoder_buffer(d, &buf, &len) == -ZM_ERR_STATE);
        CHECK(zm_decoder_feed(d, (const unsigned char *)"x", 1, &consumed) ==
                  0 &&
              consumed == 0);
        R->events++;
        return 1;
    }
    default:
        CHECK(0);
    }
    R->events++;
    return 0;
}

/* Drain events until NEED_DATA (0) or an error (1). */
static int drain(run *R, zm_decoder *d)
{
    zm_event ev;
    int kind;

    for (;;) {
        memset(&ev, 0xa5, sizeof(ev));
        kind = zm_decoder_next(d, &ev);
        CHECK(kind == ev.kind);
        if (kind == ZM_EV_NEED_DATA) {
            int rev = zm_decoder_peer_revision(d);
            CHECK(d->need_data);
            /* the revision octet the connection reads before the greeting
             * is whole: only while it waits, behind a valid signature */
            if (rev >= 0) {
                CHECK(d->state == ZM_DS_GREETING && !R->saw_greeting);
                CHECK(d->page->len - d->pos >= 11 && d->page->len - d->pos < 64);
                CHECK(d->page->data[d->pos] == 0xff &&
                      d->page->data[d->pos + 9] == 0x7f &&
                      rev == d->page->data[d->pos + 10]);
                /* 1.0 and 2.x fail at octet 11, 2.0 is whole at 12 */
                CHECK(rev >= 3 || (rev == 1 && d->page->len - d->pos == 11));
            } else if (d->state == ZM_DS_GREETING && d->page != NULL &&
                       d->page->len - d->pos >= 11) {
                CHECK(d->page->data[d->pos] != 0xff ||
                      d->page->data[d->pos + 9] != 0x7f);
            }
            return 0;
        }
        if (on_event(R, d, &ev))
            return 1;
    }
}

enum { CH_WHOLE = 0, CH_ONE = 1, CH_MED = 2, CH_SMALL = 3 };

static uint64_t decode_run(const zm_decoder_config *cfg, const unsigned char *in,
                           size_t n, int chunking, int extra, rng *r)
{
    zm_decoder d;
    holder H;
    run R;
    size_t off = 0;
    int err = 0;

    memset(&R, 0, sizeof(R));
    H.n = 0;
    R.cfg = cfg;
    R.digest = 0xcbf29ce484222325ull;
    R.extra = extra;
    R.hold = extra ? &H : NULL;
    R.r = r;
    CHECK(zm_decoder_init(&d, cfg) == 0);

    for (;;) {
        size_t k;
        if (drain(&R, &d)) {
            err = 1;
            break;
        }
        if (off == n)
            break;
        switch (chunking) {
        case CH_ONE:
            k = 1;
            break;
        case CH_MED:
            k = 1 + rng_next(r) % 600;
            break;
        case CH_SMALL:
            k = 1 + rng_next(r) % 9;
            break;
        default:
            k = n - off;
            break;
        }
        if (k > n - off)
            k = n - off;
        if (extra) {
            uint32_t x = rng_next(r);
            if ((x & 7) == 0)
                zm_decoder_release_idle(&d);
            if ((x & 0x18) == 0 && H.n > 0)
                holder_pop_oldest(&H);
            (void)zm_decoder_pending(&d);
            if (x & 0x20) {
                unsigned char *buf = NULL;
                size_t len = 0;
                CHECK(zm_decoder_buffer(&d, &buf, &len) == 0);
                CHECK(buf != NULL && len >= 1);
                if (len > k)
                    len = k;
                memcpy(buf, in + off, len);
                zm_decoder_commit(&d, len);
                off += len;
                continue;
            }
        }
        {
            size_t consumed = 0;
            CHECK(zm_decoder_feed(&d, in + off, k, &consumed) == 0);
            CHECK(consumed >= 1 && consumed <= k);
            off += consumed;
        }
    }
    if (!err) {
        /* Everything fed and drained: the leftover is a partial item, the
         * same whatever the chunking. */
        h_u64(&R.digest, 0x5eed);
        h_u64(&R.digest, (uint64_t)d.state);
        h_u64(&R.digest, zm_decoder_pending(&d));
        if (extra && (rng_next(r) & 1))
            zm_decoder_release_idle(&d);
    }
    h_u64(&R.digest, R.events);
    /* Frames may outlive their decoder. */
    if (extra && (rng_next(r) & 1)) {
        zm_decoder_free(&d);
        holder_clear(&H);
    } else {
        holder_clear(&H);
        zm_decoder_free(&d);
    }
    return R.digest;
}

/* ------------------------------------------------------------------ */
/* Entry point                                                        */
/* ------------------------------------------------------------------ */

static const size_t PAGE_SIZES[4] = {ZM_PAGE_SIZE_MIN, 300, 1024, 65536};

static const struct {
    int64_t maxmsgsize;
    size_t max_frames;
} LIMITS[8] = {
    {-1, ZM_MAX_FRAMES_DEFAULT},
    {-1, ZM_MAX_FRAMES_DEFAULT},
    {-1, 1},
    {-1, 3},
    {0, ZM_MAX_FRAMES_DEFAULT},
    {255, 5},
    {300, ZM_MAX_FRAMES_DEFAULT},
    {1000, 2},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    zm_mem_stats before, after;
    zm_decoder_config cfg;
    unsigned ctl;
    uint64_t d1, d2;
    rng r;

    if (size < 1)
        return 0;
    ctl = data[0];
    zm_mem_get_stats(&before);

    zm_decoder_config_default(&cfg);
    cfg.greeting = (ctl >> 2) & 1;
    cfg.page_size = PAGE_SIZES[(ctl >> 3) & 3];
    cfg.maxmsgsize = LIMITS[(ctl >> 5) & 7].maxmsgsize;
    cfg.max_frames = LIMITS[(ctl >> 5) & 7].max_frames;

    rng_seed(&r, ctl, (uint32_t)size);
    if (verbose())
        fprintf(stderr, "ctl 0x%02x: chunking %u greeting %d page %zu "
                        "maxmsgsize %lld max_frames %zu, %zu wire bytes\n",
                ctl, ctl & 3, cfg.greeting, cfg.page_size,
                (long long)cfg.maxmsgsize, cfg.max_frames, size - 1);
    d1 = decode_run(&cfg, data + 1, size - 1, (int)(ctl & 3), 1, &r);
    d2 = decode_run(&cfg, data + 1, size - 1, CH_WHOLE, 0, &r);
    if (d1 != d2) {
        fprintf(stderr, "decoder_fuzz: chunking changed the events "
                        "(chunked %016llx, whole %016llx)\n",
                (unsigned long long)d1, (unsigned long long)d2);
        __builtin_trap();
    }

    zm_mem_get_stats(&after);
    if (after.pages_live != before.pages_live) {
        fprintf(stderr, "decoder_fuzz: page leak: pages_live %zu -> %zu\n",
                before.pages_live, after.pages_live);
        __builtin_trap();
    }
    return 0;
}
