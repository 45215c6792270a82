/*
 * codec.h - the ZMTP 3.x codec, sans-IO (RFC 23 ZMTP 3.0, RFC 37 ZMTP 3.1),
 * with the ZMTP/2.0 greeting and framing (RFC 15) libzmq 4.3.5 accepts.
 *
 * No syscalls and no Python: bytes in, events out; frames in, bytes out.
 *
 * Decoding.  The decoder owns a current read page (arena.h).  The caller
 * loops:
 *
 *     while ((kind = zm_decoder_next(d, &ev)) != ZM_EV_NEED_DATA) { use ev }
 *     zm_decoder_buffer(d, &buf, &len);   // where the next bytes go
 *     n = read(fd, buf, len);             // or memcpy; 0 < n <= len
 *     zm_decoder_commit(d, n);
 *
 * A frame that lies inside the page is returned as a slice of it (no copy).
 * A frame whose body would run past the page end is moved to the start of a
 * fresh page once (its bytes so far are copied, at most one page).  A frame
 * larger than a page gets its own buffer, which starts at one page and, once
 * the room left is less than half of what has arrived, grows to twice the
 * bytes received, up to the frame size: what a peer merely claims is never
 * allocated.  Past 256 KiB the buffer is a mapping grown by mremap (arena.h),
 * so growth copies nothing.
 *
 * Limits, checked on each frame header before any body byte is stored:
 * reserved flag bits must be zero, a command must not have MORE, a frame
 * must not exceed maxmsgsize (when >= 0; libzmq's per-frame ZMQ_MAXMSGSIZE),
 * a message must not have more than max_frames frames.  A violation puts
 * the decoder in a terminal error state with a distinct code and a reason.
 *
 * Commands are parsed (zm_command_parse) as they complete; a malformed one
 * fails the decoder with the parser's code (ZM_ERR_COMMAND, _READY,
 * _ERROR_CMD, _PING).  Unknown command names are returned, not refused.
 * Commands are returned on their own (ZM_EV_COMMAND) even when they arrive
 * between the frames of a multipart message, as libzmq tolerates; messages
 * are returned whole (ZM_EV_MESSAGE), never a partial one.
 *
 * Layering: the codec calls msg, arena and common.h, nothing else: no
 * syscall, no socket, no backend, no Python.  Its callers are the engine
 * (a connection's decoder and encoders), the handshake mechanisms (commands
 * in and out), the Python face (the Decoder type, encode_* and parse_*)
 * and the fuzz harness (fuzz/decoder_fuzz.c links it alone).  It must never
 * call any of them: it does not know what a connection or a socket is.
 */
#ifndef ZMTP_CODEC_H
#define ZMTP_CODEC_H

#include "msg.h"

#define ZM_GREETING_SIZE 64
#define ZM_MECHANISM_SIZE 20
#define ZM_MAX_FRAMES_DEFAULT 4096
#define ZM_PING_CONTEXT_MAX 16

/* Error codes (returned negated by functions that fail). */
enum zm_err {
    ZM_OK = 0,
    ZM_ERR_SIGNATURE = 1,   /* greeting octet 0 != 0xFF or octet 9 != 0x7F */
    ZM_ERR_VERSION,         /* greeting major version < 3 */
    ZM_ERR_MECHANISM,       /* mechanism name empty, too long or not ASCII */
    ZM_ERR_RESERVED_FLAGS,  /* frame flag bits 3..7 not zero */
    ZM_ERR_COMMAND_MORE,    /* command frame with MORE set */
    ZM_ERR_FRAME_SIZE,      /* long size with the top bit set (> 2**63-1) */
    ZM_ERR_MSG_TOO_LARGE,   /* frame larger than maxmsgsize */
    ZM_ERR_TOO_MANY_FRAMES, /* message longer than max_frames */
    ZM_ERR_COMMAND,         /* command body empty or name runs past it */
    ZM_ERR_READY,           /* malformed READY metadata */
    ZM_ERR_ERROR_CMD,       /* malformed ERROR command */
    ZM_ERR_PING,            /* PING shorter than its 2-octet TTL */
    ZM_ERR_NOMEM,           /* out of memory (ours, not the peer's claim) */
    ZM_ERR_STATE,           /* API misuse: buffer() before NEED_DATA, ... */
    ZM_ERR_V2_GREETING,     /* ZMTP/2.0 identity not a final short frame */
    ZM_ERR_V2_SOCKET_TYPE,  /* ZMTP/2.0 peer's socket type unknown or
                               incompatible (counted by the connection) */
    ZM_ERR_V2_SECURITY,     /* ZMTP/2.0 peer of a socket with a security
                               mechanism or ZAP (counted by the connection) */
    ZM_ERR_COUNT_
};

/* Static, readable text for a code ("" never: unknown codes say so). */
const char *zm_strerror(int code);

/* ------------------------------------------------------------------ */
/* Greeting                                                           */
/* ------------------------------------------------------------------ */

typedef struct zm_greeting {
    uint8_t major;       /* 2 for a ZMTP/2.0 peer (revision octet 0x01) */
    uint8_t minor;
    uint8_t as_server;
    char mechanism[ZM_MECHANISM_SIZE + 1]; /* NUL-terminated, padding cut;
                                              "" for ZMTP/2.0 */
    int socket_type;     /* ZMTP/2.0: the greeting's socket-type octet;
                            -1 for 3.x (it is in READY) */
} zm_greeting;

/* ZMTP/2.0 (RFC 15), as libzmq 4.3.5 accepts it: the greeting is the
 * 10-octet signature, the revision 0x01, a socket-type octet and an
 * identity frame (final-short: flags 0x00, size, body); frames follow in
 * 2.0 framing (MORE, LONG; no COMMAND bit, so no commands at all).  The
 * decoder returns the greeting after its 12 octets (a 2.0 peer sends its
 * identity only once it has our greeting: the connection must be able to
 * answer or refuse first), then checks the identity frame's flags octet
 * (ZM_ERR_V2_GREETING unless 0x00) and returns the identity as the first
 * message.  zmtp never
 * greets in 2.0 itself: it sends the first ZM_GREETING_V2_PREFIX octets
 * of its 3.1 greeting and, when the peer's revision octet says 2.0,
 * finishes with zm_encode_greeting_v2 instead of the rest. */
#define ZM_ZMTP20_REVISION 1
#define ZM_GREETING_V2_PREFIX 11 /* signature + revision/major octet */
#define ZM_GREETING_V2_SIZE 12   /* + socket-type */


/* Write a 64-octet greeting: version 3.minor.  -ZM_ERR_MECHANISM when the
 * mechanism name is empty or longer than 20 octets. */
int zm_encode_greeting(unsigned char out[ZM_GREETING_SIZE], uint8_t minor,
                       const char *mechanism, size_t mechanism_len,
                       int as_server);

/* ------------------------------------------------------------------ */
/* Decoder                                                            */
/* ------------------------------------------------------------------ */

enum zm_event_kind {
    ZM_EV_NEED_DATA = 0,
    ZM_EV_GREETING,
    ZM_EV_COMMAND,
    ZM_EV_MESSAGE,
    ZM_EV_ERROR
};

typedef struct zm_command {
    int kind; /* enum zm_cmd_kind */
    const unsigned char *name;
    size_t name_len;
    const unsigned char *data; /* after the name */
    size_t data_len;
    /* ZM_CMD_PING */
    uint16_t ttl; /* tenths of a second */
    /* ZM_CMD_PING / ZM_CMD_PONG: context; ZM_CMD_ERROR: reason;
     * ZM_CMD_SUBSCRIBE / ZM_CMD_CANCEL: topic; READY: the metadata */
    const unsigned char *arg;
    size_t arg_len;
} zm_command;

typedef struct zm_event {
    int kind;
    zm_greeting greeting; /* ZM_EV_GREETING */
    zm_frame command;     /* ZM_EV_COMMAND: the whole command body; caller
                             owns the page reference */
    zm_command cmd;       /* ZM_EV_COMMAND: parsed, pointing into command */
    zm_msg msg;           /* ZM_EV_MESSAGE: caller owns it (zm_msg_clear) */
    int error;            /* ZM_EV_ERROR: a zm_err code */
} zm_event;

typedef struct zm_decoder_config {
    size_t page_size;   /* read page size, ZM_PAGE_SIZE_MIN.. _MAX */
    int64_t maxmsgsize; /* per frame; < 0 unlimited */
    size_t max_frames;  /* per message, >= 1 */
    int greeting;       /* 1: expect a greeting first; 0: frames at once */
    int opaque_ready;   /* 1: READY's body is not metadata (CURVE boxes it):
                           passed on unchecked, for the mechanism to open */
} zm_decoder_config;

void zm_decoder_config_default(zm_decoder_config *cfg);

enum zm_dec_state {
    ZM_DS_GREETING,
    ZM_DS_HEADER,
    ZM_DS_BODY,     /* body goes to the current page */
    ZM_DS_BIG_BODY, /* body goes to its own growing buffer */
    ZM_DS_V2_IDENTITY, /* ZMTP/2.0: the identity frame's flags octet next */
    ZM_DS_ERROR
};

typedef struct zm_decoder {
    zm_decoder_config cfg;
    int state;
    int error;       /* zm_err code once state == ZM_DS_ERROR */
    int need_data;   /* next() said NEED_DATA since the last commit */
    zm_page *page;   /* current read page (one reference) or NULL */
    size_t credit;   /* references to `page` taken ahead (counted in its
                        refcnt), handed to slices without an atomic each */
    size_t pos;      /* parse offset in page->data */
    unsigned flags;  /* current frame's flags */
    unsigned reserved; /* flag bits refused: ZM_FLAG_RESERVED, plus
                          ZM_FLAG_COMMAND after a ZMTP/2.0 greeting */
    uint64_t size;   /* current frame's body size */
    size_t hdr;      /* current frame's header size (2 or 9) */
    zm_page *big;    /* ZM_DS_BIG_BODY buffer (one reference) or NULL */
    zm_msg msg;      /* frames of the message being received */
    zm_greeting greeting;
    char reason[128]; /* readable reason once in error */
} zm_decoder;

/* 0, or -ZM_ERR_STATE when the configuration is out of range. */
int zm_decoder_init(zm_decoder *d, const zm_decoder_config *cfg);

/* The peer's revision octet (greeting octet 10: 3 for ZMTP 3.x, 1 for
 * 2.0) once it has arrived behind a valid signature and the greeting is
 * not yet decoded; -1 otherwise.  The connection reads it to finish its own greeting in the
 * peer's version before the decoder has the whole greeting. */
int zm_decoder_peer_revision(const zm_decoder *d);

/* Release every page and partial message; d may be re-initialised. */
void zm_decoder_free(zm_decoder *d);

/* Parse what has arrived; see the header comment.  Fills ev for every kind
 * except NEED_DATA (ev->kind is always set). */
int zm_decoder_next(zm_decoder *d, zm_event *ev);

/* Where the next received bytes go: at least one byte of room.  Only valid
 * after next() returned NEED_DATA.  0, or -ZM_ERR_NOMEM / -ZM_ERR_STATE. */
int zm_decoder_buffer(zm_decoder *d, unsigned char **buf, size_t *len);

/* n bytes (<= the len buffer() gave) were written into the buffer. */
void zm_decoder_commit(zm_decoder *d, size_t n);

/* buffer() + memcpy + commit() for up to n bytes; *consumed says how many.
 * Consumes nothing (0) unless next() has returned NEED_DATA. */
int zm_decoder_feed(zm_decoder *d, const unsigned char *data, size_t n,
                    size_t *consumed);

/* Drop the read page when nothing is pending in it (an idle connection then
 * holds no page).  Safe to call at any time. */
void zm_decoder_release_idle(zm_decoder *d);

/* Bytes of the frame being received (its header and body so far), or of
 * the partial greeting or header; frames already completed but waiting for
 * the rest of their message are not counted. */
size_t zm_decoder_pending(const zm_decoder *d);

/* ------------------------------------------------------------------ */
/* Commands                                                           */
/* ------------------------------------------------------------------ */

enum zm_cmd_kind {
    ZM_CMD_UNKNOWN = 0,
    ZM_CMD_READY,
    ZM_CMD_ERROR,
    ZM_CMD_PING,
    ZM_CMD_PONG,
    ZM_CMD_SUBSCRIBE,
    ZM_CMD_CANCEL
};

/* libzmq 4.3.5's PLAIN ERROR begins with these 5 octets instead of
 * 0x05 "ERROR" (see zm_command_parse): parsed as ERROR, and what
 * mech_plain.c sends, so libzmq's PLAIN clients understand it. */
#define ZM_LIBZMQ_PLAIN_ERROR "^RROR"

/* (zm_command is defined with the decoder events above.)
 * Parse a command body.  0, or -ZM_ERR_COMMAND / _READY / _ERROR_CMD /
 * _PING.  READY metadata is validated (zm_props_validate). */
int zm_command_parse(const unsigned char *body, size_t len, zm_command *cmd);

/* Metadata properties (READY): name-size, name, 4-octet value size, value. */
typedef struct zm_prop {
    const unsigned char *name;
    size_t name_len;
    const unsigned char *value;
    size_t value_len;
} zm_prop;

/* Next property from *p (advanced) before end: 1 got one, 0 at end,
 * -ZM_ERR_READY when malformed. */
int zm_props_next(const unsigned char **p, const unsigned char *end,
                  zm_prop *prop);

/* Number of properties, or -ZM_ERR_READY (malformed, invalid name
 * character, or a name given twice, compared case-insensitively). */
int zm_props_validate(const unsigned char *data, size_t len);

/* Case-insensitive lookup; 1 found (value filled), 0 not found. */
int zm_props_find(const unsigned char *data, size_t len, const char *name,
                  zm_prop *out);

/* ------------------------------------------------------------------ */
/* Encoder                                                            */
/* ------------------------------------------------------------------ */

typedef struct zm_wbuf {
    unsigned char *data;
    size_t len;
    size_t cap;
} zm_wbuf;

ZM_INLINE void zm_wbuf_init(zm_wbuf *w)
{
    w->data = NULL;
    w->len = 0;
    w->cap = 0;
}

void zm_wbuf_free(zm_wbuf *w);
int zm_wbuf_grow_(zm_wbuf *w, size_t extra);

/* Room for `extra` more bytes: 0, or -ZM_ERR_NOMEM. */
ZM_INLINE int zm_wbuf_reserve(zm_wbuf *w, size_t extra)
{
    if (ZM_LIKELY(w->cap - w->len >= extra))
        return 0;
    return zm_wbuf_grow_(w, extra);
}

/* Frame header for a body of `size` bytes: 2 octets (short) or 9 (long). */
ZM_INLINE size_t zm_frame_header(unsigned char out[9], uint64_t size,
                                 unsigned flags)
{
    flags &= ZM_FLAG_MORE | ZM_FLAG_COMMAND;
    if (ZM_LIKELY(size <= 255)) {
        out[0] = (unsigned char)flags;
        out[1] = (unsigned char)size;
        return 2;
    }
    out[0] = (unsigned char)(flags | ZM_FLAG_LONG);
    zm_put_u64(out + 1, size);
    return 9;
}

/* ZMTP/2.0: what follows our 11-octet greeting prefix for a 2.0 peer: the
 * socket-type octet and the identity (0..255 octets) as a final short
 * frame.  0, -ZM_ERR_V2_GREETING (identity too long) or -ZM_ERR_NOMEM. */
int zm_encode_greeting_v2(zm_wbuf *w, uint8_t socket_type,
                          const void *identity, size_t n);

/* One frame, header and body. */
int zm_encode_frame(zm_wbuf *w, const void *data, size_t n, unsigned flags);

/* A command frame: name (1..255 octets) then data. */
int zm_encode_command(zm_wbuf *w, const char *name, size_t name_len,
                      const void *data, size_t n);

/* READY with the given properties; -ZM_ERR_READY for an invalid name. */
int zm_encode_ready(zm_wbuf *w, const zm_prop *props, size_t nprops);

/* ERROR; the reason is cut to 255 octets. */
int zm_encode_error(zm_wbuf *w, const void *reason, size_t n);

/* PING with a TTL in tenths of a second; context cut to 16 octets. */
int zm_encode_ping(zm_wbuf *w, uint16_t ttl, const void *ctx, size_t n);

/* PONG; context cut to 16 octets. */
int zm_encode_pong(zm_wbuf *w, const void *ctx, size_t n);

/* Subscribe (subscribe=1) or cancel (0) a topic, in the form the peer's
 * minor version calls for: SUBSCRIBE/CANCEL commands for 3.1 and later,
 * a 0x01/0x00-prefixed message for 3.0. */
int zm_encode_subscription(zm_wbuf *w, const void *topic, size_t n,
                           int subscribe, int peer_minor);

/* 1 when a (single-frame) message is a 3.0 subscription message (first
 * octet 0x01 or 0x00); *subscribe and the topic are filled.  0 otherwise. */
int zm_parse_subscription_message(const unsigned char *data, size_t n,
                                  int *subscribe, const unsigned char **topic,
                                  size_t *topic_len);

#endif /* ZMTP_CODEC_H */
