/*
 * mechanism.c - the mechanism registry and what every mechanism shares
 * (see mechanism.h): starting and ending a handshake, the metadata we
 * announce, the peer's metadata, failures.
 *
 * May call: the codec.  Called by: the connection and the mechanisms
 * (mech_*.c); nothing else.
 */
#include "mechanism.h"

#include <errno.h>
#include <string.h>

/* Every mechanism we speak, by greeting name.  A new mechanism is one
 * line here (and its file). */
static const zm_mech_ops *const registry[] = {
    &zm_mech_null,
    &zm_mech_plain,
    &zm_mech_curve,
};

const zm_mech_ops *zm_mech_find(const char *name)
{
    for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

int zm_mech_start(zm_mech *m, const zm_mech_ops *ops,
                  const zm_mech_config *cfg, zm_wbuf *out)
{
    memset(m, 0, sizeof(*m));
    m->ops = ops;
    m->cfg = *cfg;
    m->status = ZM_MECH_HANDSHAKING;
    if (zm_wbuf_reserve(out, ZM_GREETING_SIZE) < 0)
        return zm_mech_nomem(m);
    zm_encode_greeting(out->data + out->len, 1, ops->name, strlen(ops->name),
                       cfg->as_server);
    out->len += ZM_GREETING_SIZE;
    return ops->start(m, out);
}

void zm_mech_end(zm_mech *m)
{
    if (m->ops != NULL && m->ops->release != NULL)
        m->ops->release(m);
    m->ops = NULL;
    m->state = NULL;
}

size_t zm_mech_basic_props(const zm_mech *m, zm_prop props[ZM_MECH_BASIC_PROPS])
{
    size_t np = 0;

    props[np].name = (const unsigned char *)"Socket-Type";
    props[np].name_len = 11;
    props[np].value = (const unsigned char *)m->cfg.socktype;
    props[np].value_len = strlen(m->cfg.socktype);
    np++;
    if (m->cfg.identity != NULL) {
        props[np].name = (const unsigned char *)"Identity";
        props[np].name_len = 8;
        props[np].value = m->cfg.identity;
        props[np].value_len = m->cfg.identity_len;
        np++;
    }
    return np;
}

size_t zm_mech_props(const zm_mech *m, zm_prop props[ZM_MECH_PROPS_MAX])
{
    size_t np = zm_mech_basic_props(m, props);

    for (size_t i = 0; i < m->cfg.app_nprops && i < ZM_MECH_APP_PROPS_MAX;
         i++)
        props[np++] = m->cfg.app_props[i];
    return np;
}

void zm_mech_take_metadata(zm_mech *m, const unsigned char *data, size_t len)
{
    zm_prop prop;

    m->peer.has_socktype = zm_props_find(data, len, "Socket-Type", &prop);
    if (m->peer.has_socktype) {
        m->peer.socktype = prop.value;
        m->peer.socktype_len = prop.value_len;
    }
    m->peer.has_identity = zm_props_find(data, len, "Identity", &prop);
    if (m->peer.has_identity) {
        m->peer.identity = prop.value;
        m->peer.identity_len = prop.value_len;
    }
    m->peer.props = data;
    m->peer.props_len = len;
}

/* The handshake failed: how, and what to tell the peer. */
static int mech_fail(zm_mech *m, int kind, uint32_t code, const char *reason,
                     int rc)
{
    m->status = ZM_MECH_ERROR;
    m->fail.kind = kind;
    m->fail.code = code;
    m->fail.reason = reason;
    return rc;
}

int zm_mech_refuse(zm_mech *m, uint32_t code, const char *reason)
{
    return mech_fail(m, ZM_MECH_FAIL_PROTOCOL, code, reason, -EPROTO);
}

int zm_mech_auth_failed(zm_mech *m, uint32_t status, const char *reason)
{
    return mech_fail(m, ZM_MECH_FAIL_AUTH, status, reason, -EPROTO);
}

int zm_mech_peer_error(zm_mech *m, const zm_command *cmd)
{
    const unsigned char *r = cmd->arg;

    /* A ZAP status ("300", "400", "500") is an authentication failure
     * (HANDSHAKE_FAILED_AUTH with it), as libzmq's mechanism_base; any
     * other reason is the peer's, which libzmq only logs. */
    if (cmd->arg_len == 3 && r[1] == '0' && r[2] == '0' && r[0] >= '3' &&
        r[0] <= '5')
        return zm_mech_auth_failed(m, (uint32_t)(r[0] - '0') * 100, NULL);
    return mech_fail(m, ZM_MECH_FAIL_PEER, 0, NULL, -EPROTO);
}

int zm_mech_nomem(zm_mech *m)
{
    return mech_fail(m, ZM_MECH_FAIL_NOMEM, 0, NULL, -ENOMEM);
}

void zm_mech_zap_request(zm_mech *m, const char *mechanism,
                         const unsigned char *const *cred,
                         const size_t *cred_len, size_t ncred)
{
    m->zap.pending = 1;
    m->zap.mechanism = mechanism;
    m->zap.ncred = ncred;
    for (size_t i = 0; i < ncred && i < ZM_MECH_ZAP_MAX_CREDS; i++) {
        m->zap.cred[i] = cred[i];
        m->zap.cred_len[i] = cred_len[i];
    }
}

int zm_mech_zap_reply(zm_mech *m, unsigned status, zm_wbuf *out)
{
    m->zap.pending = 0;
    return m->ops->zap_reply(m, status, out);
}

int zm_mech_zap_missing(zm_mech *m)
{
    m->zap.pending = 0;
    return mech_fail(m, ZM_MECH_FAIL_NO_DETAIL, EFAULT, NULL, -EPROTO);
}

void zm_mech_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    for (size_t i = 0; i < n; i++) /* no wraparound: UBSan's build */
        v[i] = 0;
}
