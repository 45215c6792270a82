/*
 * mech_plain.c - the PLAIN mechanism (RFC 24), as libzmq 4.3.5 speaks it
 * (plain_client.cpp, plain_server.cpp): a username and password in clear
 * text, judged by the server's ZAP handler (RFC 27).
 *
 *     client                          server
 *     (greetings exchanged)
 *     HELLO(username, password)  ->
 *                                     (ZAP request; no handler: refused,
 *                                      HANDSHAKE_FAILED_NO_DETAIL EFAULT)
 *                                <-   WELCOME            ZAP said 200
 *                                <-   ERROR("400"/"500") ZAP said so
 *                                     (close, no ERROR)  ZAP said 300
 *     INITIATE(metadata)         ->
 *                                <-   READY(metadata)
 *
 * Refusals and their monitor codes follow libzmq: a command other than
 * the one expected is UNEXPECTED_COMMAND (the server waiting for its ZAP
 * reply: UNSPECIFIED); a HELLO whose lengths do not add up exactly is
 * MALFORMED_COMMAND_HELLO; a WELCOME with a body MALFORMED_COMMAND_WELCOME;
 * INITIATE's metadata malformed INVALID_METADATA (libzmq closes there
 * without naming a code).  The server's ERROR carries the ZAP status; a
 * client receiving an ERROR whose reason is "300", "400" or "500" reports
 * HANDSHAKE_FAILED_AUTH with it, any other ERROR closes (DISCONNECTED).
 * libzmq's PLAIN spells ERROR "^RROR" + reason-length + reason (a C
 * escape gone wrong: codec.h's ZM_LIBZMQ_PLAIN_ERROR): our server sends
 * that form (a libzmq client refuses RFC 23's as an unexpected command),
 * and the codec takes both.
 *
 * Owns: zm_mech_plain.  May call: mechanism.h's shared parts and the
 * codec.  The credentials a server received live in its state until the
 * handshake ends, and are wiped then (zm_mech_wipe), as is the HELLO the
 * client built.
 */
#include "mechanism.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum plain_step {
    P_CLIENT_WELCOME = 0, /* HELLO sent, WELCOME (or ERROR) expected */
    P_CLIENT_READY,       /* INITIATE sent, READY (or ERROR) expected */
    P_SERVER_HELLO,       /* nothing yet: HELLO expected */
    P_SERVER_ZAP,         /* credentials out to ZAP: nothing is expected */
    P_SERVER_INITIATE     /* WELCOME sent: INITIATE expected */
};

typedef struct plain_state {
    int step; /* enum plain_step */
    /* A server's copy of the client's credentials, for ZAP. */
    unsigned char username[255];
    unsigned char password[255];
} plain_state;

static int is_cmd(const zm_command *cmd, const char *name)
{
    size_t n = strlen(name);

    return cmd->name_len == n && memcmp(cmd->name, name, n) == 0;
}

/* The client's HELLO: username-length, username, password-length,
 * password. */
static int plain_hello(zm_mech *m, zm_wbuf *out)
{
    unsigned char body[2 + 255 + 255];
    size_t ul = m->cfg.plain_username_len, pl = m->cfg.plain_password_len;
    int rc;

    if (ul > 255 || pl > 255)
        return zm_mech_refuse(m, ZM_PROTO_UNSPECIFIED, NULL);
    body[0] = (unsigned char)ul;
    if (ul > 0)
        memcpy(body + 1, m->cfg.plain_username, ul);
    body[1 + ul] = (unsigned char)pl;
    if (pl > 0)
        memcpy(body + 2 + ul, m->cfg.plain_password, pl);
    rc = zm_encode_command(out, "HELLO", 5, body, 2 + ul + pl);
    zm_mech_wipe(body, sizeof(body));
    return rc < 0 ? zm_mech_nomem(m) : 0;
}

static int plain_start(zm_mech *m, zm_wbuf *out)
{
    plain_state *p = zm_calloc(1, sizeof(*p));

    (void)out; /* the server waits for HELLO, the client for a greeting */
    if (p == NULL)
        return zm_mech_nomem(m);
    m->state = p;
    if (m->cfg.as_server) {
        p->step = P_SERVER_HELLO; /* the client speaks first */
        return 0;
    }
    p->step = P_CLIENT_WELCOME;
    return 0; /* HELLO once the server's greeting is here */
}

/* The client's HELLO goes only after the server's greeting, as libzmq's
 * does: a libzmq server that refuses our mechanism closes at once, and
 * a HELLO it had not read would turn its close into a reset that can
 * wipe its greeting (and so MECHANISM_MISMATCH) before we read it. */
static int plain_greeting(zm_mech *m, const zm_greeting *peer, zm_wbuf *out)
{
    (void)peer; /* libzmq does not look at the peer's as-server */
    if (m->cfg.as_server)
        return 0;
    return plain_hello(m, out);
}

/* Our metadata in a command (INITIATE or READY): the command's name, then
 * the properties as READY carries them. */
static int plain_put_metadata(zm_mech *m, const char *name, zm_wbuf *out)
{
    zm_prop props[ZM_MECH_PROPS_MAX];
    size_t np = zm_mech_props(m, props);
    zm_wbuf ready;
    int rc;

    if (strcmp(name, "READY") == 0)
        return zm_encode_ready(out, props, np) < 0 ? zm_mech_nomem(m) : 0;
    /* INITIATE: READY's body under another name. */
    zm_wbuf_init(&ready);
    rc = zm_encode_ready(&ready, props, np);
    if (rc == 0) {
        /* ready: flags, size (short: 2 octets, long: 9), 0x05 "READY" */
        size_t hdr = (ready.data[0] & ZM_FLAG_LONG) ? 9 : 2;
        rc = zm_encode_command(out, name, strlen(name),
                               ready.data + hdr + 6, ready.len - hdr - 6);
    }
    zm_wbuf_free(&ready);
    return rc < 0 ? zm_mech_nomem(m) : 0;
}

static int plain_client_handle(zm_mech *m, plain_state *p,
                               const zm_command *cmd, zm_wbuf *out)
{
    if (is_cmd(cmd, "WELCOME")) {
        if (p->step != P_CLIENT_WELCOME)
            return zm_mech_refuse(m, ZM_PROTO_UNEXPECTED_COMMAND,
                                  "unexpected WELCOME");
        if (cmd->data_len != 0)
            return zm_mech_refuse(m, ZM_PROTO_MALFORMED_COMMAND_WELCOME,
                                  "malformed WELCOME");
        p->step = P_CLIENT_READY;
        return plain_put_metadata(m, "INITIATE", out);
    }
    if (cmd->kind == ZM_CMD_READY) {
        if (p->step != P_CLIENT_READY)
            return zm_mech_refuse(m, ZM_PROTO_UNEXPECTED_COMMAND,
                                  "unexpected READY");
        /* the codec validated READY's metadata */
        zm_mech_take_metadata(m, cmd->arg, cmd->arg_len);
        m->status = ZM_MECH_READY;
        return 0;
    }
    if (cmd->kind == ZM_CMD_ERROR)
        return zm_mech_peer_error(m, cmd);
    return zm_mech_refuse(m, ZM_PROTO_UNEXPECTED_COMMAND,
                          "unexpected command");
}

/* HELLO: exactly username-length, username, password-length, password;
 * the credentials go to ZAP. */
static int plain_server_hello(zm_mech *m, plain_state *p,
                              const zm_command *cmd)
{
    const unsigned char *d = cmd->data;
    size_t left = cmd->data_len, ul, pl;
    const unsigned char *cred[2];
    size_t cred_len[2];

    if (!is_cmd(cmd, "HELLO"))
        return zm_mech_refuse(m, ZM_PROTO_UNEXPECTED_COMMAND,
                              "expected HELLO");
    if (left < 1)
        goto malformed;
    ul = d[0];
    left -= 1;
    if (left < ul + 1)
        goto malformed;
    pl = d[1 + ul];
    left -= ul + 1;
    if (left != pl)
        goto malformed;
    memcpy(p->username, d + 1, ul);
    memcpy(p->password, d + 2 + ul, pl);
    cred[0] = p->username;
    cred_len[0] = ul;
    cred[1] = p->password;
    cred_len[1] = pl;
    p->step = P_SERVER_ZAP;
    zm_mech_zap_request(m, "PLAIN", cred, cred_len, 2);
    return 0;
malformed:
    return zm_mech_refuse(m, ZM_PROTO_MALFORMED_COMMAND_HELLO,
                          "malformed HELLO");
}

static int plain_server_initiate(zm_mech *m, const zm_command *cmd,
                                 zm_wbuf *out)
{
    if (!is_cmd(cmd, "INITIATE"))
        return zm_mech_refuse(m, ZM_PROTO_UNEXPECTED_COMMAND,
                              "expected INITIATE");
    if (zm_props_validate(cmd->data, cmd->data_len) < 0)
        return zm_mech_refuse(m, ZM_PROTO_INVALID_METADATA,
                              "malformed INITIATE metadata");
    zm_mech_take_metadata(m, cmd->data, cmd->data_len);
    if (plain_put_metadata(m, "READY", out) < 0)
        return -ENOMEM;
    m->status = ZM_MECH_READY;
    return 0;
}

static int plain_handle(zm_mech *m, const zm_command *cmd, zm_wbuf *out)
{
    plain_state *p = m->state;

    switch (p->step) {
    case P_CLIENT_WELCOME:
    case P_CLIENT_READY:
        return plain_client_handle(m, p, cmd, out);
    case P_SERVER_HELLO:
        return plain_server_hello(m, p, cmd);
    case P_SERVER_INITIATE:
        return plain_server_initiate(m, cmd, out);
    default: /* waiting for ZAP: libzmq's "invalid handshake command" */
        return zm_mech_refuse(m, ZM_PROTO_UNSPECIFIED,
                              "command while authenticating");
    }
}

/* ZAP's verdict: 200 WELCOME; 300 close silently (a temporary failure);
 * 400/500 ERROR with the status. */
static int plain_zap_reply(zm_mech *m, unsigned status, zm_wbuf *out)
{
    plain_state *p = m->state;

    if (p->step != P_SERVER_ZAP)
        return zm_mech_refuse(m, ZM_PROTO_UNSPECIFIED, NULL);
    zm_mech_wipe(p->password, sizeof(p->password));
    switch (status) {
    case 200:
        p->step = P_SERVER_INITIATE;
        return zm_encode_command(out, "WELCOME", 7, NULL, 0) < 0
                   ? zm_mech_nomem(m) : 0;
    case 300:
        return zm_mech_auth_failed(m, 300, NULL);
    case 400:
        m->fail.libzmq_plain = 1;
        return zm_mech_auth_failed(m, 400, "400");
    default:
        m->fail.libzmq_plain = 1;
        return zm_mech_auth_failed(m, 500, "500");
    }
}

static void plain_release(zm_mech *m)
{
    if (m->state != NULL) {
        zm_mech_wipe(m->state, sizeof(plain_state));
        free(m->state);
    }
}

const zm_mech_ops zm_mech_plain = {
    .name = "PLAIN",
    .start = plain_start,
    .greeting = plain_greeting,
    .handle = plain_handle,
    .release = plain_release,
    .encode = NULL,   /* frames go as they are */
    .decode = NULL,
    .zap_reply = plain_zap_reply,
};
