/*
 * mechanism.h - the security handshake after the greeting, as a strategy a
 * connection calls without knowing which mechanism it speaks (RFC 23
 * ZMTP 3.0 section "Authentication and confidentiality", RFC 37 ZMTP 3.1).
 *
 * Owns: the interface (zm_mech_ops, the state every mechanism shares in
 * zm_mech), the registry from the greeting's mechanism name to its ops
 * (mechanism.c), and the parts every mechanism shares: the metadata we
 * announce (Socket-Type, Identity), the peer's metadata taken from READY
 * or INITIATE, the ways a handshake fails and the monitor's codes for
 * them (ZM_PROTO_*).  Implementations: mech_null.c (NULL, RFC 23),
 * mech_plain.c (PLAIN, RFC 24), mech_curve.c (CURVE, RFC 26).
 * May call: the codec (commands, metadata, encoders) and common.h only.
 * No I/O, no clock, no sockets, no Python: parsed commands in, encoded
 * commands out (a zm_wbuf the caller queues).  What the peer's metadata
 * means to the socket (its type compatible with ours, its identity, a
 * PAIR's one peer) is the connection's to judge, once the mechanism says
 * READY and before anything it produced in that call is sent.
 * Called by: the connection (engine_conn.c; the monitor's one-way
 * handshake goes through its zm_encode_handshake) and tests/c/test_mech.c,
 * test_mech_conn.c; never by routing, the socket or the Python face.
 *
 * The conversation, as the connection drives it:
 *
 *     zm_mech_start(m, ops, cfg, out)        our greeting (ZMTP 3.1,
 *                                            ops->name, as_server), then
 *                                            the first commands (NULL: READY)
 *     peer's greeting: the name must equal ops->name (the connection
 *                      checks and refuses otherwise), then
 *     zm_mech_greeting(m, peer, out)         (optional per mechanism)
 *     each command while zm_mech_status(m) == ZM_MECH_HANDSHAKING:
 *         zm_mech_handle(m, cmd, out)        may queue commands, may fail
 *     ZM_MECH_READY: zm_mech_peer_info(m) says who the peer is; the
 *                    connection admits it (or refuses it), traffic starts
 *     ZM_MECH_ERROR: m->fail says how to close (see zm_mech_fail)
 *     zm_mech_end(m)                         at every close or redial
 *
 * Whatever a call appends to `out` goes to the peer in order, after what
 * the earlier calls appended and before any message: the connection keeps
 * it at the front of its output until the handshake is done.  A failed
 * call may leave bytes in `out`; the connection discards them.
 *
 * Encrypting mechanisms (CURVE) also seal each frame after the handshake:
 * ops->encode turns one frame into the frame that carries it (CURVE's
 * MESSAGE, sent as a data frame as libzmq does) and ops->decode opens
 * one.  For NULL and PLAIN both are NULL: frames travel as they are, and
 * the per-message paths never look at the mechanism.  That is decided
 * once, at the end of the handshake (zm_conn.sealed, engine_conn.c): the
 * output queue keeps plain frames and zm_conn_write seals whole messages
 * from its front just before writing them (so SNDHWM, cut messages and
 * redials work on plain frames, and a redial seals the kept messages
 * with the new session's key); received MESSAGE frames are opened in
 * conn_unseal, commands (PING, SUBSCRIBE) among them.
 *
 * How to add a mechanism (PLAIN, RFC 24; CURVE, RFC 26):
 *   1. a new file mech_NAME.c defining `const zm_mech_ops zm_mech_NAME`:
 *      name as in the greeting ("PLAIN"), start (the client's HELLO; a
 *      server sends nothing yet), handle (a state machine over the
 *      commands: HELLO -> WELCOME -> INITIATE -> READY; ERROR from the peer
 *      goes to zm_mech_peer_error), and for CURVE encode/decode (MESSAGE
 *      boxes) and release (free m->state, allocated in start);
 *   2. the metadata: announce zm_mech_basic_props() in the command that
 *      carries it (PLAIN/CURVE: INITIATE and READY), and pass the peer's to
 *      zm_mech_take_metadata() before saying READY: the connection then
 *      checks the socket type and takes the identity exactly as for NULL
 *      (a server's READY produced in that same call is dropped if the
 *      connection refuses the peer: ERROR goes instead);
 *   3. one line in the registry (mechanism.c) and its declaration below;
 *   4. its options (username, password, keys) in zm_mech_config: the
 *      socket's option setters fill zm_sock.mech_ops (zm_mech_find) and
 *      zm_sock.mech_cfg (as_server too); each connection's handshake
 *      starts from a copy, with Socket-Type and Identity filled in.
 *   The connection code does not change (tests/c/test_mech_conn.c plugs
 *   in X-TEST, PLAIN's shape, that way).  ZAP (RFC 27) will hook in as a
 *   handle() that leaves the mechanism HANDSHAKING with nothing to send
 *   while the request is out, and an op to deliver the reply; failures it
 *   reports use ZM_MECH_FAIL_AUTH.
 */
#ifndef ZMTP_MECHANISM_H
#define ZMTP_MECHANISM_H

#include "codec.h"

/* HANDSHAKE_FAILED_PROTOCOL values (libzmq's ZMQ_PROTOCOL_ERROR_ZMTP_*):
 * the monitor's account of why a handshake was refused. */
#define ZM_PROTO_UNSPECIFIED 0x10000000u
#define ZM_PROTO_UNEXPECTED_COMMAND 0x10000001u
#define ZM_PROTO_MALFORMED_COMMAND_UNSPECIFIED 0x10000011u
#define ZM_PROTO_MALFORMED_COMMAND_ERROR 0x10000015u
#define ZM_PROTO_MALFORMED_COMMAND_READY 0x10000016u
#define ZM_PROTO_INVALID_METADATA 0x10000018u
#define ZM_PROTO_MECHANISM_MISMATCH 0x11000002u
/* PLAIN (mech_plain.c) and ZAP. */
#define ZM_PROTO_MALFORMED_COMMAND_HELLO 0x10000013u
#define ZM_PROTO_MALFORMED_COMMAND_WELCOME 0x10000017u
#define ZM_PROTO_ZAP_UNSPECIFIED 0x20000000u
#define ZM_PROTO_ZAP_MALFORMED_REPLY 0x20000001u
#define ZM_PROTO_ZAP_BAD_REQUEST_ID 0x20000002u
#define ZM_PROTO_ZAP_BAD_VERSION 0x20000003u
#define ZM_PROTO_ZAP_INVALID_STATUS_CODE 0x20000004u
#define ZM_PROTO_ZAP_INVALID_METADATA 0x20000005u

enum zm_mech_status {
    ZM_MECH_HANDSHAKING = 0, /* commands are still to be exchanged */
    ZM_MECH_READY,           /* done: the peer is known, traffic may flow */
    ZM_MECH_ERROR            /* failed: m->fail says how */
};

/* How a handshake failed, and so what the connection does. */
enum zm_mech_fail_kind {
    ZM_MECH_FAIL_NONE = 0,
    ZM_MECH_FAIL_PROTOCOL, /* we refuse the peer: ERROR(reason) when reason
                              is not NULL, HANDSHAKE_FAILED_PROTOCOL(code) */
    ZM_MECH_FAIL_AUTH,     /* authentication refused (PLAIN/CURVE with ZAP):
                              ERROR(reason), HANDSHAKE_FAILED_AUTH(code) */
    ZM_MECH_FAIL_PEER,     /* the peer sent ERROR: we close without a reply
                              and without a HANDSHAKE_FAILED event (libzmq:
                              DISCONNECTED only) */
    ZM_MECH_FAIL_NOMEM,    /* out of memory: close as a lost transport */
    ZM_MECH_FAIL_NO_DETAIL /* close without ERROR, HANDSHAKE_FAILED_NO_DETAIL
                              (code: an errno; libzmq's PLAIN server with
                              no ZAP handler: EFAULT) */
};

typedef struct zm_mech_fail {
    int kind;           /* enum zm_mech_fail_kind */
    uint32_t code;      /* PROTOCOL: ZM_PROTO_*; AUTH: a ZAP status code */
    const char *reason; /* the ERROR command's reason (static), or NULL */
    int libzmq_plain;   /* send ERROR in libzmq's PLAIN form (codec.h's
                           ZM_LIBZMQ_PLAIN_ERROR), not RFC 23's */
} zm_mech_fail;

/* Most application properties a socket announces (METADATA). */
#define ZM_MECH_APP_PROPS_MAX 32

/* What the local socket brings to every handshake.  The pointers must
 * outlive the handshake (the socket's own strings). */
typedef struct zm_mech_config {
    const char *socktype;        /* our Socket-Type ("REQ", ...) */
    const unsigned char *identity; /* our Identity, or NULL: not announced
                                    (RFC 23: REQ, DEALER, ROUTER send it) */
    size_t identity_len;
    int as_server;               /* the greeting's as-server (NULL: 0) */
    /* PLAIN's client credentials (1..255 octets each, or NULL/0). */
    const unsigned char *plain_username;
    size_t plain_username_len;
    const unsigned char *plain_password;
    size_t plain_password_len;
    /* CURVE (mech_curve.c, options CURVE_*): our long-term key pair and,
     * for a client, the server's public key (zero until set).  Secret:
     * zeroed when the socket and each handshake end, never printed. */
    unsigned char curve_public[32];
    unsigned char curve_secret[32];
    unsigned char curve_server[32];
    /* NULL and ZAP (libzmq 4.3.5's null_mechanism): with ZAP_DOMAIN set
     * (null_zap) either side asks the handler before its READY; with no
     * handler it goes on without, unless ZAP_ENFORCE_DOMAIN (zap_enforce). */
    int null_zap;
    int zap_enforce;
    /* The application's metadata (METADATA, "X-" names): announced after
     * Socket-Type and Identity.  The strings outlive every handshake. */
    const zm_prop *app_props;
    size_t app_nprops;
} zm_mech_config;

/* The peer, as its metadata (READY, or INITIATE) described it.  The
 * pointers point into the command that completed the handshake (or a
 * mechanism's buffer holding it opened): valid until the connection
 * releases that command, right after the call that returned READY.  Copy
 * what must live longer. */
typedef struct zm_mech_peer {
    int has_socktype;             /* a Socket-Type property was given */
    const unsigned char *socktype;
    size_t socktype_len;
    int has_identity;             /* an Identity property was given */
    const unsigned char *identity;
    size_t identity_len;
    const unsigned char *props;   /* the whole metadata (zm_props_find) */
    size_t props_len;
} zm_mech_peer;

typedef struct zm_mech zm_mech;

/* A mechanism.  Every op returns 0, or a negative errno with m->status set
 * to ZM_MECH_ERROR and m->fail filled (-EPROTO: refused, -ENOMEM). */
/* encode's flags besides ZM_FLAG_MORE / ZM_FLAG_COMMAND (see encode). */
#define ZM_ENC_ROOM_BEFORE 0x100u

typedef struct zm_mech_ops {
    const char *name; /* the greeting's mechanism field, 1..20 octets */
    /* The first commands, after our greeting, before anything is
     * received (may be none). */
    int (*start)(zm_mech *m, zm_wbuf *out);
    /* The peer's greeting arrived (its name already matched).  NULL: the
     * mechanism needs nothing from it. */
    int (*greeting)(zm_mech *m, const zm_greeting *peer, zm_wbuf *out);
    /* One command received while HANDSHAKING. */
    int (*handle)(zm_mech *m, const zm_command *cmd, zm_wbuf *out);
    /* Free m->state (NULL: the mechanism keeps none). */
    void (*release)(zm_mech *m);
    /* After READY, for mechanisms that seal frames (NULL: frames go as
     * they are).  encode: one frame (data, ZM_FLAG_MORE) as the command
     * that carries it, appended to out.  decode: one such command opened
     * into its frame's bytes, appended to out, and its flags; in place
     * when the caller lends the command's own bytes (out->data ==
     * cmd->data, out->len == 0, out->cap >= cmd->data_len: not heap
     * memory): the mechanism may then advance out->data within those
     * bytes, so the plaintext need not be moved to their start.
     * ZM_ENC_ROOM_BEFORE in encode's flags: the byte before data is the
     * caller's scratch (nobody reads it), so the mechanism may write
     * there, e.g. a flags byte in front of the frame, and seal from
     * there without first copying the frame next to it. */
    int (*encode)(zm_mech *m, const void *data, size_t n, unsigned flags,
                  zm_wbuf *out);
    int (*decode)(zm_mech *m, const zm_command *cmd, zm_wbuf *out,
                  unsigned *flags);
    /* The ZAP handler's answer to the request the mechanism made
     * (zm_mech_zap_request): status 200, 300, 400 or 500.  NULL for a
     * mechanism that never asks. */
    int (*zap_reply)(zm_mech *m, unsigned status, zm_wbuf *out);
    /* With no ZAP handler bound: 1 goes on as if it said 200 with no
     * User-Id (libzmq 4.3.5's CURVE server, also with ZAP_ENFORCE_DOMAIN:
     * encryption without authentication); 0 refuses (libzmq's PLAIN
     * server). */
    int zap_optional;
} zm_mech_ops;

/* The credentials a server mechanism asks ZAP (RFC 27) to judge: the
 * mechanism's name and up to 2 credential frames, pointing into
 * m->state (valid until zap_reply or zm_mech_end). */
#define ZM_MECH_ZAP_MAX_CREDS 2
typedef struct zm_mech_zap {
    int pending; /* a request waits to be sent or answered */
    int required; /* no handler bound: refused even if ops->zap_optional */
    const char *mechanism;
    const unsigned char *cred[ZM_MECH_ZAP_MAX_CREDS];
    size_t cred_len[ZM_MECH_ZAP_MAX_CREDS];
    size_t ncred;
} zm_mech_zap;

/* The state every mechanism shares; a connection embeds one (the NULL
 * mechanism needs nothing more, so its handshake allocates nothing
 * beyond the bytes it sends).  Mechanisms with more state allocate it in
 * start (m->state) and free it in release. */
struct zm_mech {
    const zm_mech_ops *ops;       /* NULL: not started (or ended) */
    zm_mech_config cfg;
    int status;                   /* enum zm_mech_status */
    zm_mech_peer peer;
    zm_mech_fail fail;
    zm_mech_zap zap;              /* a ZAP request the mechanism made */
    void *state;                  /* the mechanism's own, or NULL */
};

/* The registry: the ops for a greeting's mechanism name (NUL-terminated,
 * padding cut, as zm_greeting.mechanism), or NULL when we have none. */
const zm_mech_ops *zm_mech_find(const char *name);

/* The mechanisms in the registry. */
extern const zm_mech_ops zm_mech_null;
extern const zm_mech_ops zm_mech_plain;
extern const zm_mech_ops zm_mech_curve; /* mech_curve.c (RFC 26) */

/* Start a handshake: m takes ops and a copy of cfg; our greeting (ZMTP
 * 3.1 with ops->name and cfg->as_server) and ops->start's first commands
 * are appended to out.  0 or -errno (m is then ERROR; zm_mech_end must
 * still be called, as after every start). */
int zm_mech_start(zm_mech *m, const zm_mech_ops *ops,
                  const zm_mech_config *cfg, zm_wbuf *out);

/* The peer's greeting (its mechanism name is ours). */
ZM_INLINE int zm_mech_greeting(zm_mech *m, const zm_greeting *peer,
                               zm_wbuf *out)
{
    return m->ops->greeting != NULL ? m->ops->greeting(m, peer, out) : 0;
}

/* One command received while HANDSHAKING. */
ZM_INLINE int zm_mech_handle(zm_mech *m, const zm_command *cmd, zm_wbuf *out)
{
    return m->ops->handle(m, cmd, out);
}

ZM_INLINE int zm_mech_status(const zm_mech *m)
{
    return m->status;
}

/* Who the peer is (meaningful once READY; see zm_mech_peer). */
ZM_INLINE const zm_mech_peer *zm_mech_peer_info(const zm_mech *m)
{
    return &m->peer;
}

/* Frames after READY must go through ops->encode / ops->decode. */
ZM_INLINE int zm_mech_seals(const zm_mech *m)
{
    return m->ops != NULL && m->ops->encode != NULL;
}

/* The mechanism waits for a ZAP reply (m->zap says to what): the
 * handshake stays HANDSHAKING with nothing to send until
 * zm_mech_zap_reply, or zm_mech_zap_missing when no handler is bound. */
ZM_INLINE int zm_mech_zap_pending(const zm_mech *m)
{
    return m->zap.pending;
}

/* Deliver the ZAP handler's status (200/300/400/500) to the mechanism. */
int zm_mech_zap_reply(zm_mech *m, unsigned status, zm_wbuf *out);

/* No ZAP handler is bound: as libzmq's PLAIN server, refuse
 * (ZM_MECH_FAIL_NO_DETAIL, EFAULT): returns -EPROTO. */
int zm_mech_zap_missing(zm_mech *m);

/* The handshake is over for this transport (closed, lost, redialled):
 * free what the mechanism holds; m may be started again. */
void zm_mech_end(zm_mech *m);

/* ------------------------------------------------------------------ */
/* For implementations                                                */
/* ------------------------------------------------------------------ */

/* Most properties zm_mech_basic_props() fills. */
#define ZM_MECH_BASIC_PROPS 2

/* Our metadata: Socket-Type, and Identity when cfg.identity is set.
 * Returns how many of props[] were filled. */
size_t zm_mech_basic_props(const zm_mech *m, zm_prop props[ZM_MECH_BASIC_PROPS]);

/* Most properties zm_mech_props() fills: the basic ones and the
 * application's (METADATA). */
#define ZM_MECH_PROPS_MAX (ZM_MECH_BASIC_PROPS + ZM_MECH_APP_PROPS_MAX)

/* Our whole metadata: zm_mech_basic_props(), then the application's
 * (cfg.app_props): NULL's and PLAIN's READY, CURVE's INITIATE and READY
 * boxes.  Returns how many of props[] were filled. */
size_t zm_mech_props(const zm_mech *m, zm_prop props[ZM_MECH_PROPS_MAX]);

/* Record the peer's metadata (the properties of READY, or of the box
 * INITIATE or READY opened to), already valid (zm_props_validate: the
 * codec checks READY's; an opened box is the mechanism's to check):
 * Socket-Type, Identity and the whole list, into m->peer. */
void zm_mech_take_metadata(zm_mech *m, const unsigned char *data, size_t len);

/* Refuse the peer (ZM_MECH_FAIL_PROTOCOL): returns -EPROTO. */
int zm_mech_refuse(zm_mech *m, uint32_t code, const char *reason);

/* Authentication refused (ZM_MECH_FAIL_AUTH), with a ZAP status code
 * (300, 400, 500) and the ERROR reason to send (or NULL: close without
 * one, as CURVE's server may): returns -EPROTO. */
int zm_mech_auth_failed(zm_mech *m, uint32_t status, const char *reason);

/* The peer sent ERROR: with a ZAP status as reason ("300", "400",
 * "500") an authentication failure (ZM_MECH_FAIL_AUTH), else
 * ZM_MECH_FAIL_PEER.  Returns -EPROTO. */
int zm_mech_peer_error(zm_mech *m, const zm_command *cmd);

/* Out of memory (ZM_MECH_FAIL_NOMEM): returns -ENOMEM. */
int zm_mech_nomem(zm_mech *m);

/* Ask ZAP to judge these credentials (ncred <= ZM_MECH_ZAP_MAX_CREDS;
 * the pointers must stay valid until zap_reply): the mechanism then
 * returns 0 and stays HANDSHAKING. */
void zm_mech_zap_request(zm_mech *m, const char *mechanism,
                         const unsigned char *const *cred,
                         const size_t *cred_len, size_t ncred);

/* Zero secret bytes so that the compiler cannot drop it. */
void zm_mech_wipe(void *p, size_t n);

#endif /* ZMTP_MECHANISM_H */
