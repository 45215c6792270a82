/*
 * mech_null.c - the NULL mechanism (RFC 23 ZMTP 3.0, "The NULL Security
 * Mechanism"): no authentication, no confidentiality.  Each side sends
 * READY with its metadata at once and expects the peer's READY; an ERROR
 * from the peer ends the handshake.
 *
 * With ZAP_DOMAIN set (cfg.null_zap) it asks ZAP first, as libzmq 4.3.5's
 * null_mechanism does, on either side of the connection: the request
 * (mechanism "NULL", no credentials) goes once the peer's greeting is in,
 * and our READY waits for the verdict; 200 sends it, 300 closes without
 * ERROR, 400/500 send ERROR with the status (docs/auth.md, "ZAP and
 * NULL").  The peer's READY may come first: its metadata is then kept in
 * a copy (m->state) until the verdict.
 *
 * Owns: zm_mech_null (its ops).  May call: mechanism.h's shared parts and
 * the codec.  Called only through the ops, by the connection (and
 * tests/c/test_mech.c); without ZAP it keeps no state beyond zm_mech.
 */
#include "mechanism.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* While ZAP judges: whether the peer's READY came, and its metadata. */
typedef struct null_zap {
    int got_ready;
    size_t meta_len;
    unsigned char meta[]; /* meta_len bytes */
} null_zap;

/* Our READY: Socket-Type, Identity for REQ, DEALER and ROUTER, and the
 * application's METADATA. */
static int null_ready(zm_mech *m, zm_wbuf *out)
{
    zm_prop props[ZM_MECH_PROPS_MAX];
    size_t np = zm_mech_props(m, props);

    return zm_encode_ready(out, props, np) < 0 ? zm_mech_nomem(m) : 0;
}

/* READY at once, unless ZAP is to be asked first (null_greeting). */
static int null_start(zm_mech *m, zm_wbuf *out)
{
    return m->cfg.null_zap ? 0 : null_ready(m, out);
}

/* The peer speaks NULL too: now ZAP may be asked (the connection sends
 * the request; with no handler it answers 200 itself, or refuses with
 * ZAP_ENFORCE_DOMAIN). */
static int null_greeting(zm_mech *m, const zm_greeting *peer, zm_wbuf *out)
{
    null_zap *z;

    (void)peer;
    (void)out;
    if (!m->cfg.null_zap)
        return 0;
    z = calloc(1, sizeof(*z));
    if (z == NULL)
        return zm_mech_nomem(m);
    m->state = z;
    zm_mech_zap_request(m, "NULL", NULL, NULL, 0);
    m->zap.required = m->cfg.zap_enforce;
    return 0;
}

/* The peer's READY while ZAP has not answered: its metadata copied. */
static int null_keep_ready(zm_mech *m, const zm_command *cmd)
{
    null_zap *z = realloc(m->state, sizeof(*z) + cmd->arg_len);

    if (z == NULL)
        return zm_mech_nomem(m);
    m->state = z;
    z->got_ready = 1;
    z->meta_len = cmd->arg_len;
    if (cmd->arg_len > 0)
        memcpy(z->meta, cmd->arg, cmd->arg_len);
    zm_mech_take_metadata(m, z->meta, z->meta_len);
    return 0;
}

/* The peer's READY (its metadata recorded: the connection judges it),
 * its ERROR, or anything else: refused. */
static int null_handle(zm_mech *m, const zm_command *cmd, zm_wbuf *out)
{
    null_zap *z = m->state;

    (void)out; /* NULL answers nothing */
    switch (cmd->kind) {
    case ZM_CMD_READY:
        if (z != NULL && z->got_ready)
            break; /* a second READY */
        if (z != NULL && m->zap.pending)
            return null_keep_ready(m, cmd);
        zm_mech_take_metadata(m, cmd->arg, cmd->arg_len);
        m->status = ZM_MECH_READY;
        return 0;
    case ZM_CMD_ERROR:
        return zm_mech_peer_error(m, cmd);
    default:
        break;
    }
    return zm_mech_refuse(m, ZM_PROTO_UNEXPECTED_COMMAND, "expected READY");
}

/* ZAP's verdict (libzmq's null_mechanism): 200 sends our READY (and ends
 * the handshake if the peer's came already), 300 closes without ERROR,
 * 400 and 500 send ERROR with the status. */
static int null_zap_reply(zm_mech *m, unsigned status, zm_wbuf *out)
{
    null_zap *z = m->state;

    switch (status) {
    case 200:
        if (null_ready(m, out) < 0)
            return -ENOMEM;
        if (z != NULL && z->got_ready)
            m->status = ZM_MECH_READY;
        return 0;
    case 300:
        return zm_mech_auth_failed(m, 300, NULL);
    case 400:
        return zm_mech_auth_failed(m, 400, "400");
    default:
        return zm_mech_auth_failed(m, 500, "500");
    }
}

static void null_release(zm_mech *m)
{
    free(m->state); /* only metadata: nothing secret */
    m->state = NULL;
}

const zm_mech_ops zm_mech_null = {
    .name = "NULL",
    .start = null_start,
    .greeting = null_greeting,
    .handle = null_handle,
    .release = null_release,
    .encode = NULL,   /* frames go as they are */
    .decode = NULL,
    .zap_reply = null_zap_reply,
    .zap_optional = 1, /* no handler: on without (ZAP_ENFORCE_DOMAIN: not) */
};
