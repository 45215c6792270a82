/*
 * codec.c - ZMTP 3.x greeting, frames and commands: decoder and encoder;
 * the ZMTP/2.0 greeting and framing (RFC 15) of the peers libzmq accepts.
 *
 * See codec.h for the contract and its layering: this file calls msg,
 * arena and common.h only; nothing here does I/O or knows Python.  It reads
 * in sections: command parsing, the decoder (zm_decoder_next, the hot loop,
 * then buffer/commit/feed), the output buffer and the encoders.
 */
#include "codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================== */
/* Errors                                                             */
/* ================================================================== */

static const char *const zm_err_text[ZM_ERR_COUNT_] = {
    [ZM_OK] = "no error",
    [ZM_ERR_SIGNATURE] = "bad greeting signature (not a ZMTP 3 peer)",
    [ZM_ERR_VERSION] = "unsupported ZMTP version (need 2.0 or 3.x)",
    [ZM_ERR_MECHANISM] = "invalid security mechanism name",
    [ZM_ERR_RESERVED_FLAGS] = "reserved frame flag bits set",
    [ZM_ERR_COMMAND_MORE] = "command frame with MORE flag",
    [ZM_ERR_FRAME_SIZE] = "frame size out of range (top bit set)",
    [ZM_ERR_MSG_TOO_LARGE] = "frame larger than MAXMSGSIZE",
    [ZM_ERR_TOO_MANY_FRAMES] = "too many frames in one message",
    [ZM_ERR_COMMAND] = "malformed command",
    [ZM_ERR_READY] = "malformed READY metadata",
    [ZM_ERR_ERROR_CMD] = "malformed ERROR command",
    [ZM_ERR_PING] = "PING shorter than its TTL field",
    [ZM_ERR_NOMEM] = "out of memory",
    [ZM_ERR_STATE] = "decoder used out of order",
    [ZM_ERR_V2_GREETING] = "malformed ZMTP/2.0 greeting (identity must be a "
                           "final short frame)",
    [ZM_ERR_V2_SOCKET_TYPE] = "ZMTP/2.0 peer's socket type unknown or "
                              "incompatible",
    [ZM_ERR_V2_SECURITY] = "ZMTP/2.0 peer refused: the socket uses a security "
                           "mechanism or ZAP (2.0 has none)",
};

const char *zm_strerror(int code)
{
    if (code < 0)
        code = code < -ZM_ERR_COUNT_ ? ZM_ERR_COUNT_ : -code;
    if (code >= ZM_ERR_COUNT_)
        return "unknown codec error";
    return zm_err_text[code];
}

/* ================================================================== */
/* Greeting                                                           */
/* ================================================================== */

/* RFC 23: mechanism-char = "A"-"Z" / DIGIT / "-" / "_" / "." / "+" */
static int mechanism_char_ok(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '+';
}

int zm_encode_greeting(unsigned char out[ZM_GREETING_SIZE], uint8_t minor,
                       const char *mechanism, size_t mechanism_len,
                       int as_server)
{
    if (mechanism_len == 0 || mechanism_len > ZM_MECHANISM_SIZE)
        return -ZM_ERR_MECHANISM;
    for (size_t i = 0; i < mechanism_len; i++)
        if (!mechanism_char_ok((unsigned char)mechanism[i]))
            return -ZM_ERR_MECHANISM;
    memset(out, 0, ZM_GREETING_SIZE);
    out[0] = 0xff;  /* signature: %xFF padding(8) %x7F */
    out[9] = 0x7f;
    out[10] = 3;    /* version major */
    out[11] = minor;
    memcpy(out + 12, mechanism, mechanism_len);
    out[32] = as_server ? 1 : 0;
    return 0;
}

int zm_encode_greeting_v2(zm_wbuf *w, uint8_t socket_type,
                          const void *identity, size_t n)
{
    unsigned char hdr[3];

    if (n > 255)
        return -ZM_ERR_V2_GREETING;
    if (zm_wbuf_reserve(w, 3 + n) < 0)
        return -ZM_ERR_NOMEM;
    hdr[0] = socket_type;
    hdr[1] = 0; /* final-short */
    hdr[2] = (unsigned char)n;
    memcpy(w->data + w->len, hdr, 3);
    if (n > 0)
        memcpy(w->data + w->len + 3, identity, n);
    w->len += 3 + n;
    return 0;
}

/* ================================================================== */
/* Decoder                                                            */
/* ================================================================== */

void zm_decoder_config_default(zm_decoder_config *cfg)
{
    cfg->page_size = ZM_PAGE_SIZE_DEFAULT;
    cfg->maxmsgsize = -1;
    cfg->max_frames = ZM_MAX_FRAMES_DEFAULT;
    cfg->greeting = 1;
    cfg->opaque_ready = 0;
}

int zm_decoder_init(zm_decoder *d, const zm_decoder_config *cfg)
{
    memset(d, 0, sizeof(*d));
    if (cfg->page_size < ZM_PAGE_SIZE_MIN || cfg->page_size > ZM_PAGE_SIZE_MAX ||
        cfg->max_frames < 1)
        return -ZM_ERR_STATE;
    d->cfg = *cfg;
    d->state = cfg->greeting ? ZM_DS_GREETING : ZM_DS_HEADER;
    d->reserved = ZM_FLAG_RESERVED;
    d->need_data = 1;
    zm_msg_init(&d->msg);
    return 0;
}

/* References to the read page are taken ZM_DECODER_CREDIT at a time (one
 * atomic add) and handed to frames one by one: slicing a frame then costs
 * no locked instruction.  The unused ones go back before the page is let
 * go or tested for exclusivity. */
#define ZM_DECODER_CREDIT 64

static void decoder_return_credit(zm_decoder *d)
{
    if (d->credit > 0) {
        /* Relaxed: the decoder's own reference keeps the page alive, and
         * unused references published nothing that others must see. */
        __atomic_fetch_sub(&d->page->refcnt, d->credit, __ATOMIC_RELAXED);
        d->credit = 0;
    }
}

/* No slice of the decoder's page is alive (its refcnt is the decoder's own
 * reference and the credit).  Acquire pairs with the release in
 * zm_page_decref: the slices' last reads are done before we reuse it. */
static int decoder_page_exclusive(const zm_decoder *d, zm_page *p)
{
    return __atomic_load_n(&p->refcnt, __ATOMIC_ACQUIRE) == 1 + d->credit;
}

void zm_decoder_free(zm_decoder *d)
{
    decoder_return_credit(d);
    if (d->page != NULL)
        zm_page_decref(d->page);
    if (d->big != NULL)
        zm_page_decref(d->big);
    d->page = NULL;
    d->big = NULL;
    d->pos = 0;
    zm_msg_clear(&d->msg);
}

size_t zm_decoder_pending(const zm_decoder *d)
{
    size_t n = 0;

    if (d->page != NULL)
        n += d->page->len - d->pos;
    if (d->big != NULL)
        n += d->big->len;
    if (d->state == ZM_DS_BODY || d->state == ZM_DS_BIG_BODY)
        n += d->hdr;
    return n;
}

void zm_decoder_release_idle(zm_decoder *d)
{
    if (d->page != NULL && d->pos == d->page->len &&
        (d->state == ZM_DS_HEADER || d->state == ZM_DS_GREETING)) {
        decoder_return_credit(d);
        zm_page_decref(d->page);
        d->page = NULL;
        d->pos = 0;
    }
}

/* Enter the terminal error state; drops any partial message. */
static int decoder_fail(zm_decoder *d, zm_event *ev, int code,
                        const char *fmt, ...)
{
    va_list ap;

    d->state = ZM_DS_ERROR;
    d->error = code;
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
        va_end(ap);
    } else {
        snprintf(d->reason, sizeof(d->reason), "%s", zm_strerror(code));
    }
    zm_msg_clear(&d->msg);
    if (d->big != NULL) {
        zm_page_decref(d->big);
        d->big = NULL;
    }
    ev->kind = ZM_EV_ERROR;
    ev->error = code;
    return ZM_EV_ERROR;
}

int zm_decoder_peer_revision(const zm_decoder *d)
{
    const unsigned char *in;

    if (d->state != ZM_DS_GREETING || d->page == NULL ||
        d->page->len - d->pos < ZM_GREETING_V2_PREFIX)
        return -1;
    in = d->page->data + d->pos;
    if (in[0] != 0xff || in[9] != 0x7f)
        return -1; /* no ZMTP signature: the decoder refuses it */
    return in[10];
}

/* A ZMTP/2.0 greeting (octet 10 is 0x01, the signature checked): the
 * socket-type octet.  The identity frame follows (ZM_DS_V2_IDENTITY
 * checks its flags, the frame loop reads it: the first message, bounded
 * as any frame).  From here on the COMMAND bit is reserved too: 2.0 has
 * no commands.  ZM_EV_GREETING, or ZM_EV_NEED_DATA before octet 12. */
static ZM_NOINLINE int decoder_greeting_v2(zm_decoder *d, zm_event *ev,
                                           const unsigned char *in,
                                           size_t avail)
{
    zm_greeting *g = &d->greeting;

    if (avail < ZM_GREETING_V2_SIZE)
        return ZM_EV_NEED_DATA;
    memset(g, 0, sizeof(*g));
    g->major = 2;
    g->socket_type = in[11];
    d->pos += ZM_GREETING_V2_SIZE;
    d->reserved = ZM_FLAG_RESERVED | ZM_FLAG_COMMAND;
    d->state = ZM_DS_V2_IDENTITY;
    ev->kind = ZM_EV_GREETING;
    ev->greeting = *g;
    return ZM_EV_GREETING;
}

static void parse_greeting(const unsigned char *in, zm_greeting *g)
{
    size_t i;

    g->socket_type = -1;
    g->major = in[10];
    g->minor = in[11];
    for (i = 0; i < ZM_MECHANISM_SIZE && in[12 + i] != 0; i++)
        g->mechanism[i] = (char)in[12 + i];
    g->mechanism[i] = '\0';
    g->as_server = in[32];
}

/*
 * The decoder's state machine: the loop every received frame goes through,
 * kept as one function (about 185 lines) on purpose.  The states hand over
 * to each other inside one loop (`continue`, `goto frame_done`), so a
 * header, the slice of its body and a one-frame message event come out in
 * one pass, with the page, the position and the frame in locals and no
 * call on the way.  A function per state would pass them through memory on
 * the path every message takes.  What is cold is already out of line:
 * decoder_fail (every error, with its message formatting), parse_greeting
 * and zm_command_parse; the greeting's checks of its octets as they arrive
 * (once per connection) are the only cold lines left, and moving them out
 * would shorten the function, not the hot path.
 */
int zm_decoder_next(zm_decoder *d, zm_event *ev)
{
    zm_frame frame;

    for (;;) {
        zm_page *p = d->page;
        size_t avail = p != NULL ? p->len - d->pos : 0;
        const unsigned char *in = p != NULL ? p->data + d->pos : NULL;
        uint64_t size;
        unsigned flags;
        size_t hdr;

        switch (d->state) {
        case ZM_DS_ERROR:
            ev->kind = ZM_EV_ERROR;
            ev->error = d->error;
            return ZM_EV_ERROR;

        case ZM_DS_GREETING:
            /* Check each part as soon as it is here, so a peer of another
             * protocol is refused without waiting for 64 octets. */
            if (avail >= 1 && in[0] != 0xff)
                return decoder_fail(d, ev, ZM_ERR_SIGNATURE,
                                    "bad greeting: octet 0 is 0x%02x, not 0xff "
                                    "(not a ZMTP 3 peer)", in[0]);
            if (avail >= 10 && in[9] != 0x7f)
                return decoder_fail(d, ev, ZM_ERR_SIGNATURE,
                                    "bad greeting: octet 9 is 0x%02x, not 0x7f "
                                    "(not a ZMTP 3 peer)", in[9]);
            if (avail >= 11 && in[10] < 3) {
                if (in[10] == ZM_ZMTP20_REVISION) {
                    int kind = decoder_greeting_v2(d, ev, in, avail);
                    if (kind == ZM_EV_NEED_DATA)
                        goto need_data;
                    return kind;
                }
                return decoder_fail(d, ev, ZM_ERR_VERSION,
                                    "peer greets with ZMTP major version %u; "
                                    "zmtp speaks ZMTP/2.0 and 3.x only",
                                    in[10]);
            }
            if (avail < ZM_GREETING_SIZE)
                goto need_data;
            /* RFC 23: a mechanism name is 1..20 of A-Z 0-9 - _ . +, padded
             * with NULs. */
            if (in[12] == 0)
                return decoder_fail(d, ev, ZM_ERR_MECHANISM,
                                    "bad greeting: empty mechanism name");
            for (size_t i = 0; i < ZM_MECHANISM_SIZE && in[12 + i] != 0; i++)
                if (!mechanism_char_ok(in[12 + i]))
                    return decoder_fail(d, ev, ZM_ERR_MECHANISM,
                                        "bad greeting: invalid character 0x%02x "
                                        "in the mechanism name", in[12 + i]);
            parse_greeting(in, &d->greeting);
            d->pos += ZM_GREETING_SIZE;
            d->state = ZM_DS_HEADER;
            ev->kind = ZM_EV_GREETING;
            ev->greeting = d->greeting;
            return ZM_EV_GREETING;

        case ZM_DS_HEADER:
            if (avail < 1)
                goto need_data;
            flags = in[0];
            if (flags & d->reserved)
                return decoder_fail(d, ev, ZM_ERR_RESERVED_FLAGS,
                                    "reserved frame flag bits set (flags 0x%02x%s)",
                                    flags,
                                    d->reserved & ZM_FLAG_COMMAND
                                        ? "; ZMTP/2.0 has no commands" : "");
            if ((flags & ZM_FLAG_COMMAND) && (flags & ZM_FLAG_MORE))
                return decoder_fail(d, ev, ZM_ERR_COMMAND_MORE, NULL);
            if (flags & ZM_FLAG_LONG) {
                if (avail < 9)
                    goto need_data;
                size = zm_get_u64(in + 1);
                if (size >> 63)
                    return decoder_fail(d, ev, ZM_ERR_FRAME_SIZE,
                                        "frame size %llu out of range "
                                        "(top bit set)",
                                        (unsigned long long)size);
                hdr = 9;
            } else {
                if (avail < 2)
                    goto need_data;
                size = in[1];
                hdr = 2;
            }
            if (d->cfg.maxmsgsize >= 0 && size > (uint64_t)d->cfg.maxmsgsize)
                return decoder_fail(d, ev, ZM_ERR_MSG_TOO_LARGE,
                                    "frame of %llu bytes exceeds MAXMSGSIZE %lld",
                                    (unsigned long long)size,
                                    (long long)d->cfg.maxmsgsize);
            if (!(flags & ZM_FLAG_COMMAND) && d->msg.n >= d->cfg.max_frames)
                return decoder_fail(d, ev, ZM_ERR_TOO_MANY_FRAMES,
                                    "message has more than %zu frames",
                                    d->cfg.max_frames);
            d->pos += hdr;
            d->flags = flags & (ZM_FLAG_MORE | ZM_FLAG_COMMAND);
            d->size = size;
            d->hdr = hdr;
            d->state = ZM_DS_BODY;
            continue;

        case ZM_DS_BODY:
            if (avail >= d->size) {
                /* The whole body is in this page: slice it, no copy. */
                frame.size = (size_t)d->size;
                if (frame.size > 0) {
                    if (ZM_UNLIKELY(d->credit == 0)) {
                        /* Relaxed, as zm_page_incref: made from the
                         * reference the decoder holds. */
                        __atomic_fetch_add(&p->refcnt, ZM_DECODER_CREDIT,
                                           __ATOMIC_RELAXED);
                        d->credit = ZM_DECODER_CREDIT;
                    }
                    d->credit--;
                    frame.page = p;
                    frame.data = in;
                } else {
                    frame.page = NULL;
                    frame.data = NULL;
                }
                d->pos += frame.size;
                goto frame_done;
            }
            if (d->size <= d->cfg.page_size)
                goto need_data; /* fits a page; buffer() moves it if needed */
            /* Larger than a page: its own buffer.  Up to twice a page
             * (e.g. a CURVE box of a full page), that much at once: for the
             * default page a size the page cache keeps, so no allocation
             * and no regrowth; larger, one page to start with, grown by
             * buffer() as bytes arrive (never to the claim); in a mapping
             * from the start when the frame will pass ZM_PAGE_MAP_MIN, so
             * growing it never copies (arena.h). */
            if (d->size <= 2 * (uint64_t)d->cfg.page_size)
                d->big = zm_page_new(2 * d->cfg.page_size);
            else if (d->size >= ZM_PAGE_MAP_MIN)
                d->big = zm_page_new_mapped(d->cfg.page_size);
            else
                d->big = zm_page_new(d->cfg.page_size);
            if (d->big == NULL)
                return decoder_fail(d, ev, ZM_ERR_NOMEM, NULL);
            memcpy(d->big->data, in, avail);
            d->big->len = avail;
            d->pos += avail;
            d->state = ZM_DS_BIG_BODY;
            goto need_data;

        case ZM_DS_V2_IDENTITY:
            /* RFC 15: identity = final-short body (flags 0x00) */
            if (avail < 1)
                goto need_data;
            if (in[0] != 0)
                return decoder_fail(d, ev, ZM_ERR_V2_GREETING,
                                    "bad ZMTP/2.0 greeting: identity flags "
                                    "0x%02x, not a final short frame", in[0]);
            d->state = ZM_DS_HEADER;
            continue;

        case ZM_DS_BIG_BODY:
            if (d->big->len < d->size)
                goto need_data;
            frame.page = d->big;
            frame.data = d->big->data;
            frame.size = d->big->len;
            d->big = NULL;
            goto frame_done;

        default:
            return decoder_fail(d, ev, ZM_ERR_STATE, NULL);
        }

    frame_done:
        d->state = ZM_DS_HEADER;
        frame.flags = d->flags;
        if (frame.flags & ZM_FLAG_COMMAND) {
            int rc = zm_command_parse(frame.data, frame.size, &ev->cmd);
            if (rc == -ZM_ERR_READY && d->cfg.opaque_ready)
                rc = 0; /* a sealed READY: the mechanism checks it */
            if (rc < 0) {
                zm_frame_release(&frame);
                return decoder_fail(d, ev, -rc, NULL);
            }
            ev->kind = ZM_EV_COMMAND;
            ev->command = frame;
            return ZM_EV_COMMAND;
        }
        if (d->msg.n == 0 && !(frame.flags & ZM_FLAG_MORE)) {
            /* A one-frame message, the common case: into the event at
             * once, not through the partial message. */
            zm_frame *f = &ev->msg.inline_[0];
            ev->msg.n = 1;
            ev->msg.cap = 0;
            ev->msg.bytes = frame.size;
            ev->msg.heap = NULL;
            f->page = frame.page;
            f->data = frame.data;
            f->size = frame.size;
            f->flags = frame.flags;
            ev->kind = ZM_EV_MESSAGE;
            return ZM_EV_MESSAGE;
        }
        if (zm_msg_push(&d->msg, &frame) < 0) {
            zm_frame_release(&frame);
            return decoder_fail(d, ev, ZM_ERR_NOMEM, NULL);
        }
        if (!(frame.flags & ZM_FLAG_MORE)) {
            ev->kind = ZM_EV_MESSAGE;
            zm_msg_move(&ev->msg, &d->msg);
            return ZM_EV_MESSAGE;
        }
    }

need_data:
    d->need_data = 1;
    ev->kind = ZM_EV_NEED_DATA;
    return ZM_EV_NEED_DATA;
}

/* Cold path of buffer(): a page to receive into when the current one cannot
 * take the rest of the pending item. */
static ZM_NOINLINE int decoder_refill_page(zm_decoder *d)
{
    zm_page *p = d->page;
    zm_page *np;
    size_t tail;

    if (p == NULL) {
        p = zm_page_new(d->cfg.page_size);
        if (p == NULL)
            return -ZM_ERR_NOMEM;
        d->page = p;
        d->pos = 0;
        return 0;
    }
    tail = p->len - d->pos;
    if (decoder_page_exclusive(d, p)) {
        /* No slice is alive: reuse the page in place. */
        memmove(p->data, p->data + d->pos, tail);
        p->len = tail;
        d->pos = 0;
        return 0;
    }
    /* Slices still point into this page: start a fresh one with the
     * pending tail (less than one page, see zm_decoder_next). */
    np = zm_page_new(d->cfg.page_size);
    if (np == NULL)
        return -ZM_ERR_NOMEM;
    memcpy(np->data, p->data + d->pos, tail);
    np->len = tail;
    decoder_return_credit(d);
    zm_page_decref(p);
    d->page = np;
    d->pos = 0;
    return 0;
}

int zm_decoder_buffer(zm_decoder *d, unsigned char **buf, size_t *len)
{
    zm_page *p;
    size_t room;
    int rc;

    if (d->state == ZM_DS_ERROR || !d->need_data)
        return -ZM_ERR_STATE;
    if (d->state == ZM_DS_BIG_BODY) {
        zm_page *b = d->big;
        if (b->cap - b->len < b->len / 2 && b->cap < d->size) {
            /* Less room than half of what has arrived: grow to twice the
             * bytes received (rounded down to whole 4 KiB pages), capped at
             * the frame size (itself within maxmsgsize).  Never more than
             * twice what actually arrived, whatever the header claims;
             * and since a large buffer is a mapping grown by mremap
             * (arena.c), growing copies nothing, so it is done early:
             * each recv() is asked for at least half the bytes so far. */
            size_t new_cap = b->len <= SIZE_MAX / 4 ? 2 * b->len : SIZE_MAX / 2;
            /* the block (header + data) in whole pages, rounded down */
            size_t whole = (new_cap + sizeof(zm_page)) & ~(size_t)4095;
            if (whole > b->cap + sizeof(zm_page) &&
                whole - sizeof(zm_page) < new_cap)
                new_cap = whole - sizeof(zm_page);
            if (new_cap > d->size)
                new_cap = (size_t)d->size;
            b = zm_page_grow(b, new_cap);
            if (b == NULL)
                return -ZM_ERR_NOMEM;
            d->big = b;
        }
        *buf = b->data + b->len;
        /* Up to the end of the buffer's room, never past the frame: a kept
         * mapping (arena.c) may be larger than the cap, and its bytes are
         * resident already, so the rest of the frame (or as much as fits)
         * goes in with one receive; commit() raises the cap to what
         * arrived, so the counted size still follows the bytes. */
        room = zm_page_room(b);
        *len = (room < d->size ? room : (size_t)d->size) - b->len;
        return 0;
    }
    p = d->page;
    if (ZM_LIKELY(p != NULL) && d->pos == p->len &&
        decoder_page_exclusive(d, p)) {
        /* Steady state: everything parsed and released; start over at the
         * page start without allocating. */
        p->len = 0;
        d->pos = 0;
    } else if (p == NULL || zm_page_free_space(p) == 0 ||
               (d->state == ZM_DS_BODY && d->pos + d->size > p->cap)) {
        rc = decoder_refill_page(d);
        if (rc < 0)
            return rc;
        p = d->page;
    }
    *buf = p->data + p->len;
    *len = zm_page_free_space(p);
    return 0;
}

void zm_decoder_commit(zm_decoder *d, size_t n)
{
    zm_page *p = d->state == ZM_DS_BIG_BODY ? d->big : d->page;

    if (p == NULL || n == 0)
        return;
    if (n > zm_page_free_space(p)) {
        if (p == d->big && n <= zm_page_room(p) - p->len)
            zm_page_extend(p, p->len + n); /* into a kept mapping's room */
        else
            n = zm_page_free_space(p); /* never past the page end */
    }
    p->len += n;
    d->need_data = 0;
}

int zm_decoder_feed(zm_decoder *d, const unsigned char *data, size_t n,
                    size_t *consumed)
{
    unsigned char *buf;
    size_t room;
    int rc;

    *consumed = 0;
    if (n == 0 || d->state == ZM_DS_ERROR || !d->need_data)
        return 0;
    rc = zm_decoder_buffer(d, &buf, &room);
    if (rc < 0)
        return rc;
    if (room > n)
        room = n;
    memcpy(buf, data, room);
    zm_decoder_commit(d, room);
    *consumed = room;
    return 0;
}

/* ================================================================== */
/* Commands                                                           */
/* ================================================================== */

static int name_is(const unsigned char *name, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && memcmp(name, lit, n) == 0;
}

/* RFC 23: name-char = ALPHA / DIGIT / "-" / "_" / "." / "+" */
static int prop_name_char_ok(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
           c == '+';
}

static int ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int names_equal_ci(const unsigned char *a, size_t alen,
                          const unsigned char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return 0;
    return 1;
}

int zm_props_next(const unsigned char **pp, const unsigned char *end,
                  zm_prop *prop)
{
    const unsigned char *p = *pp;
    size_t nlen;
    uint32_t vlen;

    if (p == end)
        return 0;
    nlen = *p++;
    if (nlen == 0 || (size_t)(end - p) < nlen)
        return -ZM_ERR_READY;
    prop->name = p;
    prop->name_len = nlen;
    p += nlen;
    if ((size_t)(end - p) < 4)
        return -ZM_ERR_READY;
    vlen = zm_get_u32(p);
    p += 4;
    if ((size_t)(end - p) < vlen)
        return -ZM_ERR_READY;
    prop->value = p;
    prop->value_len = vlen;
    *pp = p + vlen;
    return 1;
}

/* More properties than any real peer sends; keeps the duplicate check
 * bounded whatever a peer packs into one READY. */
#define ZM_PROPS_MAX 256

int zm_props_validate(const unsigned char *data, size_t len)
{
    const unsigned char *p = data, *end;
    const unsigned char *q;
    zm_prop prop, seen;
    int count = 0, rc;

    if (len == 0) /* an empty frame's data is NULL: NULL + 0 is UB */
        return 0;
    end = data + len;

    while ((rc = zm_props_next(&p, end, &prop)) == 1) {
        for (size_t i = 0; i < prop.name_len; i++)
            if (!prop_name_char_ok(prop.name[i]))
                return -ZM_ERR_READY;
        if (++count > ZM_PROPS_MAX)
            return -ZM_ERR_READY;
        /* Duplicate names (case-insensitive) are refused. */
        q = data;
        while (q < p && zm_props_next(&q, end, &seen) == 1 && q < p)
            if (names_equal_ci(seen.name, seen.name_len, prop.name,
                               prop.name_len))
                return -ZM_ERR_READY;
    }
    return rc < 0 ? rc : count;
}

int zm_props_find(const unsigned char *data, size_t len, const char *name,
                  zm_prop *out)
{
    const unsigned char *p = data, *end;
    zm_prop prop;
    size_t nlen = strlen(name);

    if (len == 0) /* (data may be NULL) */
        return 0;
    end = data + len;

    while (zm_props_next(&p, end, &prop) == 1) {
        if (names_equal_ci(prop.name, prop.name_len,
                           (const unsigned char *)name, nlen)) {
            *out = prop;
            return 1;
        }
    }
    return 0;
}

/* libzmq's PLAIN ERROR: plain_common.hpp spells the prefix "\x05ERROR",
 * which C reads as the octet 0x5e ('^', the escape takes the hex digit E)
 * then "RROR", so libzmq 4.3.5's PLAIN sends and expects "^RROR",
 * reason-length, reason: no name-length octet.  Taken as ERROR when the
 * body is exactly that (it is no valid command otherwise). */
static int parse_libzmq_plain_error(const unsigned char *body, size_t len,
                                    zm_command *cmd)
{
    if (len < 6 || memcmp(body, ZM_LIBZMQ_PLAIN_ERROR, 5) != 0 ||
        (size_t)body[5] + 6 != len)
        return -ZM_ERR_COMMAND;
    cmd->kind = ZM_CMD_ERROR;
    cmd->name = body;
    cmd->name_len = 5;
    cmd->data = body + 5;
    cmd->data_len = len - 5;
    cmd->arg = body + 6;
    cmd->arg_len = body[5];
    return 0;
}

int zm_command_parse(const unsigned char *body, size_t len, zm_command *cmd)
{
    size_t nlen;
    int rc;

    memset(cmd, 0, sizeof(*cmd));
    if (len < 1)
        return -ZM_ERR_COMMAND;
    nlen = body[0];
    if (nlen == 0 || 1 + nlen > len)
        return parse_libzmq_plain_error(body, len, cmd);
    cmd->name = body + 1;
    cmd->name_len = nlen;
    cmd->data = body + 1 + nlen;
    cmd->data_len = len - 1 - nlen;
    cmd->arg = cmd->data;
    cmd->arg_len = cmd->data_len;

    if (name_is(cmd->name, nlen, "READY")) {
        cmd->kind = ZM_CMD_READY;
        rc = zm_props_validate(cmd->data, cmd->data_len);
        if (rc < 0)
            return rc;
    } else if (name_is(cmd->name, nlen, "ERROR")) {
        cmd->kind = ZM_CMD_ERROR;
        if (cmd->data_len < 1 || (size_t)cmd->data[0] + 1 > cmd->data_len)
            return -ZM_ERR_ERROR_CMD;
        cmd->arg = cmd->data + 1;
        cmd->arg_len = cmd->data[0];
    } else if (name_is(cmd->name, nlen, "PING")) {
        cmd->kind = ZM_CMD_PING;
        if (cmd->data_len < 2)
            return -ZM_ERR_PING;
        cmd->ttl = (uint16_t)((cmd->data[0] << 8) | cmd->data[1]);
        cmd->arg = cmd->data + 2;
        cmd->arg_len = cmd->data_len - 2;
    } else if (name_is(cmd->name, nlen, "PONG")) {
        cmd->kind = ZM_CMD_PONG;
    } else if (name_is(cmd->name, nlen, "SUBSCRIBE")) {
        cmd->kind = ZM_CMD_SUBSCRIBE;
    } else if (name_is(cmd->name, nlen, "CANCEL")) {
        cmd->kind = ZM_CMD_CANCEL;
    } else {
        cmd->kind = ZM_CMD_UNKNOWN;
    }
    return 0;
}

/* ================================================================== */
/* Encoder                                                            */
/* ================================================================== */

void zm_wbuf_free(zm_wbuf *w)
{
    free(w->data);
    zm_wbuf_init(w);
}

ZM_NOINLINE int zm_wbuf_grow_(zm_wbuf *w, size_t extra)
{
    size_t need, new_cap;
    unsigned char *grown;

    if (extra > SIZE_MAX - w->len)
        return -ZM_ERR_NOMEM;
    need = w->len + extra;
    new_cap = w->cap < 256 ? 256 : w->cap;
    while (new_cap < need)
        new_cap = new_cap <= SIZE_MAX / 2 ? new_cap * 2 : need;
    grown = zm_realloc(w->data, new_cap);
    if (grown == NULL)
        return -ZM_ERR_NOMEM;
    w->data = grown;
    w->cap = new_cap;
    return 0;
}

ZM_INLINE void wbuf_put(zm_wbuf *w, const void *data, size_t n)
{
    if (n > 0)
        memcpy(w->data + w->len, data, n);
    w->len += n;
}

int zm_encode_frame(zm_wbuf *w, const void *data, size_t n, unsigned flags)
{
    unsigned char hdr[9];
    size_t h = zm_frame_header(hdr, n, flags);

    if (n > SIZE_MAX - h || zm_wbuf_reserve(w, h + n) < 0)
        return -ZM_ERR_NOMEM;
    wbuf_put(w, hdr, h);
    wbuf_put(w, data, n);
    return 0;
}

/* Header of a command frame and its name; the caller adds `data_len` more
 * bytes of command data (room is reserved). */
static int command_start(zm_wbuf *w, const char *name, size_t name_len,
                         size_t data_len)
{
    unsigned char hdr[9];
    size_t body, h;
    unsigned char nl;

    if (name_len == 0 || name_len > 255)
        return -ZM_ERR_COMMAND;
    if (data_len > SIZE_MAX - 1 - name_len - 9)
        return -ZM_ERR_NOMEM;
    body = 1 + name_len + data_len;
    h = zm_frame_header(hdr, body, ZM_FLAG_COMMAND);
    if (zm_wbuf_reserve(w, h + body) < 0)
        return -ZM_ERR_NOMEM;
    wbuf_put(w, hdr, h);
    nl = (unsigned char)name_len;
    wbuf_put(w, &nl, 1);
    wbuf_put(w, name, name_len);
    return 0;
}

int zm_encode_command(zm_wbuf *w, const char *name, size_t name_len,
                      const void *data, size_t n)
{
    int rc = command_start(w, name, name_len, n);

    if (rc < 0)
        return rc;
    wbuf_put(w, data, n);
    return 0;
}

int zm_encode_ready(zm_wbuf *w, const zm_prop *props, size_t nprops)
{
    size_t total = 0;
    unsigned char b[4];
    int rc;

    for (size_t i = 0; i < nprops; i++) {
        if (props[i].name_len == 0 || props[i].name_len > 255 ||
            props[i].value_len > UINT32_MAX)
            return -ZM_ERR_READY;
        for (size_t k = 0; k < props[i].name_len; k++)
            if (!prop_name_char_ok(props[i].name[k]))
                return -ZM_ERR_READY;
        if (total > SIZE_MAX / 2 - props[i].value_len)
            return -ZM_ERR_NOMEM;
        total += 1 + props[i].name_len + 4 + props[i].value_len;
    }
    rc = command_start(w, "READY", 5, total);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < nprops; i++) {
        b[0] = (unsigned char)props[i].name_len;
        wbuf_put(w, b, 1);
        wbuf_put(w, props[i].name, props[i].name_len);
        zm_put_u32(b, (uint32_t)props[i].value_len);
        wbuf_put(w, b, 4);
        wbuf_put(w, props[i].value, props[i].value_len);
    }
    return 0;
}

int zm_encode_error(zm_wbuf *w, const void *reason, size_t n)
{
    unsigned char b;
    int rc;

    if (n > 255)
        n = 255;
    rc = command_start(w, "ERROR", 5, 1 + n);
    if (rc < 0)
        return rc;
    b = (unsigned char)n;
    wbuf_put(w, &b, 1);
    wbuf_put(w, reason, n);
    return 0;
}

int zm_encode_ping(zm_wbuf *w, uint16_t ttl, const void *ctx, size_t n)
{
    unsigned char b[2];
    int rc;

    if (n > ZM_PING_CONTEXT_MAX)
        n = ZM_PING_CONTEXT_MAX;
    rc = command_start(w, "PING", 4, 2 + n);
    if (rc < 0)
        return rc;
    zm_put_u16(b, ttl);
    wbuf_put(w, b, 2);
    wbuf_put(w, ctx, n);
    return 0;
}

int zm_encode_pong(zm_wbuf *w, const void *ctx, size_t n)
{
    if (n > ZM_PING_CONTEXT_MAX)
        n = ZM_PING_CONTEXT_MAX;
    return zm_encode_command(w, "PONG", 4, ctx, n);
}

int zm_encode_subscription(zm_wbuf *w, const void *topic, size_t n,
                           int subscribe, int peer_minor)
{
    unsigned char hdr[9];
    unsigned char first = subscribe ? 1 : 0;
    size_t h;

    if (peer_minor >= 1) {
        if (subscribe)
            return zm_encode_command(w, "SUBSCRIBE", 9, topic, n);
        return zm_encode_command(w, "CANCEL", 6, topic, n);
    }
    /* ZMTP 3.0: a one-frame message, 0x01 (subscribe) or 0x00 + topic. */
    if (n > SIZE_MAX - 10)
        return -ZM_ERR_NOMEM;
    h = zm_frame_header(hdr, (uint64_t)n + 1, 0);
    if (zm_wbuf_reserve(w, h + 1 + n) < 0)
        return -ZM_ERR_NOMEM;
    wbuf_put(w, hdr, h);
    wbuf_put(w, &first, 1);
    wbuf_put(w, topic, n);
    return 0;
}

int zm_parse_subscription_message(const unsigned char *data, size_t n,
                                  int *subscribe, const unsigned char **topic,
                                  size_t *topic_len)
{
    if (n < 1 || data[0] > 1)
        return 0;
    *subscribe = data[0];
    *topic = data + 1;
    *topic_len = n - 1;
    return 1;
}
