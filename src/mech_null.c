/*
 * mech_null.c - the NULL mechanism (RFC 23 ZMTP 3.0, "The NULL Security
 * Mechanism"): no authentication, no confidentiality.  Each side sends
 * READY with its metadata at once and expects the peer's READY; an ERROR
 * from the peer ends the handshake.
 *
 * Owns: zm_mech_null (its ops).  May call: mechanism.h's shared parts and
 * the codec.  Called only through the ops, by the connection (and
 * tests/c/test_mech.c); keeps no state beyond zm_mech.
 */
#include "mechanism.h"

#include <errno.h>

/* Our READY: Socket-Type, and Identity for REQ, DEALER and ROUTER. */
static int null_start(zm_mech *m, zm_wbuf *out)
{
    zm_prop props[ZM_MECH_BASIC_PROPS];
    size_t np = zm_mech_basic_props(m, props);

    return zm_encode_ready(out, props, np) < 0 ? zm_mech_nomem(m) : 0;
}

/* The peer's READY (its metadata recorded: the connection judges it),
 * its ERROR, or anything else: refused. */
static int null_handle(zm_mech *m, const zm_command *cmd, zm_wbuf *out)
{
    (void)out; /* NULL answers nothing */
    switch (cmd->kind) {
    case ZM_CMD_READY:
        zm_mech_take_metadata(m, cmd->arg, cmd->arg_len);
        m->status = ZM_MECH_READY;
        return 0;
    case ZM_CMD_ERROR:
        return zm_mech_peer_error(m, cmd);
    default:
        return zm_mech_refuse(m, ZM_PROTO_UNEXPECTED_COMMAND,
                              "expected READY");
    }
}

const zm_mech_ops zm_mech_null = {
    .name = "NULL",
    .start = null_start,
    .greeting = NULL, /* as-server means nothing to NULL */
    .handle = null_handle,
    .release = NULL,
    .encode = NULL,   /* frames go as they are */
    .decode = NULL,
};
