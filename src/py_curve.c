/*
 * py_curve.c - CURVE keys for Python (zmtp.curve): curve_keypair,
 * curve_public, whether CURVE is available, and the C Z85 codec exposed
 * privately for tests (zmtp.utils.z85 is the users' codec).
 *
 * Owns: the functions above (named in _zmtpmodule.c's table).
 * May call: Python.h, sodium.h, z85.h.  Called by: zmtp/curve.py,
 * zmtp/version.py (has("curve")), tests.
 */
#include "py_module.h"

#include "mechanism.h"
#include "sodium.h"
#include "z85.h"

#include <errno.h>
#include <string.h>

#define KEY 32
#define KEY_Z85 40

/* The loaded libsodium, or NULL with a RuntimeError saying what to
 * install. */
static const zm_sodium *sodium_or_raise(void)
{
    const char *why = NULL;
    const zm_sodium *na = zm_sodium_get(&why);

    if (na == NULL)
        PyErr_SetString(PyExc_RuntimeError, why);
    return na;
}

/* A key as 40 Z85 characters (bytes). */
static PyObject *z85_key(const unsigned char key[KEY])
{
    char text[KEY_Z85 + 1];
    PyObject *r;

    zm_z85_encode(text, key, KEY);
    r = PyBytes_FromStringAndSize(text, KEY_Z85);
    zm_secure_zero(text, sizeof(text));
    return r;
}

ZM_PY_DOC(zm_py_curve_keypair_doc,
"curve_keypair()\n--\n\n"
"A new CURVE key pair (public, secret), each 40 bytes of Z85.");

PyObject *zm_py_curve_keypair(PyObject *module, PyObject *unused)
{
    unsigned char pk[KEY], sk[KEY];
    const zm_sodium *na = sodium_or_raise();
    PyObject *pub = NULL, *sec = NULL, *r = NULL;

    (void)module;
    (void)unused;
    if (na == NULL)
        return NULL;
    na->crypto_box_keypair(pk, sk);
    pub = z85_key(pk);
    sec = z85_key(sk);
    if (pub != NULL && sec != NULL)
        r = PyTuple_Pack(2, pub, sec);
    zm_secure_zero(sk, sizeof(sk));
    Py_XDECREF(pub);
    Py_XDECREF(sec);
    return r;
}

ZM_PY_DOC(zm_py_curve_public_doc,
"curve_public(secret_key, /)\n--\n\n"
"The public key (40 bytes of Z85) of a secret key (40 bytes of Z85).");

PyObject *zm_py_curve_public(PyObject *module, PyObject *secret)
{
    unsigned char sk[KEY], pk[KEY];
    const zm_sodium *na;
    Py_buffer view;
    int bad;

    if (PyUnicode_Check(secret) ||
        PyObject_GetBuffer(secret, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError,
                        "secret key must be bytes (40 bytes of Z85)");
        return NULL;
    }
    bad = view.len != KEY_Z85 ? 1
          : zm_z85_decode(sk, view.buf, KEY_Z85) < 0 ? 2 : 0;
    PyBuffer_Release(&view);
    if (bad) {
        zm_secure_zero(sk, sizeof(sk));
        /* pyzmq's answers; the key itself is never shown */
        if (bad == 1)
            PyErr_SetString(PyExc_ValueError,
                            "secret key must be a 40 byte z85 encoded "
                            "string");
        else
            zm_py_raise_zmq(get_state(module), EINVAL,
                            "Invalid argument: secret key is not Z85");
        return NULL;
    }
    na = sodium_or_raise();
    if (na == NULL || na->crypto_scalarmult_base(pk, sk) != 0) {
        zm_secure_zero(sk, sizeof(sk));
        if (na != NULL)
            PyErr_SetString(PyExc_ValueError, "invalid secret key");
        return NULL;
    }
    zm_secure_zero(sk, sizeof(sk));
    return z85_key(pk);
}

ZM_PY_DOC(zm_py_curve_unavailable_doc,
"_curve_unavailable()\n--\n\n"
"None when libsodium is loaded (CURVE can work), else why not and what\n"
"to install.");

PyObject *zm_py_curve_unavailable(PyObject *module, PyObject *unused)
{
    const char *why = NULL;

    (void)module;
    (void)unused;
    if (zm_sodium_get(&why) != NULL)
        Py_RETURN_NONE;
    return PyUnicode_FromString(why);
}

ZM_PY_DOC(zm_py_z85_encode_doc,
"_z85_encode(data, /)\n--\n\nZ85 of data (a multiple of 4 bytes); tests.");

PyObject *zm_py_z85_encode(PyObject *module, PyObject *data)
{
    Py_buffer view;
    PyObject *r = NULL;
    char *text;

    (void)module;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    text = PyMem_Malloc((size_t)view.len / 4 * 5 + 1);
    if (text == NULL)
        PyErr_NoMemory();
    else if (zm_z85_encode(text, view.buf, (size_t)view.len) < 0)
        PyErr_SetString(PyExc_ValueError, "Z85: length not a multiple of 4");
    else
        r = PyBytes_FromStringAndSize(text, view.len / 4 * 5);
    PyMem_Free(text);
    PyBuffer_Release(&view);
    return r;
}

ZM_PY_DOC(zm_py_z85_decode_doc,
"_z85_decode(text, /)\n--\n\nThe bytes of Z85 text (a multiple of 5); tests.");

PyObject *zm_py_z85_decode(PyObject *module, PyObject *text)
{
    Py_buffer view;
    PyObject *r = NULL;
    unsigned char *out;

    (void)module;
    if (PyObject_GetBuffer(text, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    out = PyMem_Malloc((size_t)view.len / 5 * 4 + 1);
    if (out == NULL)
        PyErr_NoMemory();
    else if (zm_z85_decode(out, view.buf, (size_t)view.len) < 0)
        PyErr_SetString(PyExc_ValueError, "Z85: invalid text");
    else
        r = PyBytes_FromStringAndSize((const char *)out, view.len / 5 * 4);
    PyMem_Free(out);
    PyBuffer_Release(&view);
    return r;
}

/* ------------------------------------------------------------------ */
/* A CURVE handshake without a connection, for tests: the mechanism     */
/* (mech_curve.c) driven by Python over a plain socket, so its bytes    */
/* can meet libzmq's before the connection speaks it.                   */
/* ------------------------------------------------------------------ */

#define MECH_CAPSULE "zmtp._curve_mech"

typedef struct mech_box {
    zm_mech m;
    char socktype[16];
} mech_box;

static void mech_box_free(PyObject *cap)
{
    mech_box *b = PyCapsule_GetPointer(cap, MECH_CAPSULE);

    if (b == NULL)
        return;
    zm_mech_end(&b->m);
    zm_secure_zero(b, sizeof(*b));
    PyMem_Free(b);
}

static mech_box *mech_box_get(PyObject *cap)
{
    return PyCapsule_GetPointer(cap, MECH_CAPSULE);
}

/* The bytes a call appended (or the error it set) as Python. */
static PyObject *wbuf_bytes(zm_wbuf *w)
{
    PyObject *r = PyBytes_FromStringAndSize((const char *)w->data,
                                            (Py_ssize_t)w->len);
    zm_wbuf_free(w);
    return r;
}

/* A mechanism failure as ValueError("fail kind code"), for tests. */
static PyObject *mech_failed(zm_mech *m, zm_wbuf *w)
{
    zm_wbuf_free(w);
    PyErr_Format(PyExc_ValueError, "mechanism failed: kind %d code 0x%x",
                 m->fail.kind, (unsigned)m->fail.code);
    return NULL;
}

ZM_PY_DOC(zm_py_curve_mech_doc,
"_curve_mech(as_server, public, secret, server, socktype, /)\n--\n\n"
"Tests: start a CURVE handshake (32-byte keys); returns (handle, bytes to\n"
"send: our greeting and first command).");

PyObject *zm_py_curve_mech(PyObject *module, PyObject *args)
{
    int as_server;
    Py_buffer pub, sec, srv;
    const char *socktype;
    zm_mech_config cfg;
    mech_box *b = NULL;
    PyObject *cap = NULL, *sent = NULL, *r = NULL;
    zm_wbuf w;

    (void)module;
    if (!PyArg_ParseTuple(args, "py*y*y*s", &as_server, &pub, &sec, &srv,
                          &socktype))
        return NULL;
    zm_wbuf_init(&w);
    if (pub.len != 32 || sec.len != 32 || srv.len != 32 ||
        strlen(socktype) >= sizeof(b->socktype)) {
        PyErr_SetString(PyExc_ValueError, "32-byte keys, a socket type");
        goto out;
    }
    b = PyMem_Calloc(1, sizeof(*b));
    if (b == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    strcpy(b->socktype, socktype);
    memset(&cfg, 0, sizeof(cfg));
    cfg.socktype = b->socktype;
    cfg.as_server = as_server;
    memcpy(cfg.curve_public, pub.buf, 32);
    memcpy(cfg.curve_secret, sec.buf, 32);
    memcpy(cfg.curve_server, srv.buf, 32);
    cap = PyCapsule_New(b, MECH_CAPSULE, mech_box_free);
    if (cap == NULL) {
        PyMem_Free(b);
        goto out;
    }
    if (zm_mech_start(&b->m, &zm_mech_curve, &cfg, &w) < 0) {
        mech_failed(&b->m, &w);
        goto out;
    }
    sent = wbuf_bytes(&w);
    if (sent != NULL)
        r = PyTuple_Pack(2, cap, sent);
out:
    zm_secure_zero(&cfg, sizeof(cfg));
    zm_wbuf_free(&w);
    Py_XDECREF(cap);
    Py_XDECREF(sent);
    PyBuffer_Release(&pub);
    PyBuffer_Release(&sec);
    PyBuffer_Release(&srv);
    return r;
}

/* A command body (name size, name, data) as zm_command, without the
 * codec's READY check (CURVE's READY is a box): 0 or -1 (ValueError). */
static int body_command(const Py_buffer *v, zm_command *cmd)
{
    const unsigned char *p = v->buf;

    memset(cmd, 0, sizeof(*cmd));
    if (v->len < 2 || (Py_ssize_t)p[0] + 1 > v->len || p[0] == 0) {
        PyErr_SetString(PyExc_ValueError, "not a command body");
        return -1;
    }
    cmd->name = p + 1;
    cmd->name_len = p[0];
    cmd->data = p + 1 + p[0];
    cmd->data_len = (size_t)v->len - 1 - p[0];
    cmd->arg = cmd->data;
    cmd->arg_len = cmd->data_len;
    if (cmd->name_len == 5 && memcmp(cmd->name, "ERROR", 5) == 0)
        cmd->kind = ZM_CMD_ERROR;
    return 0;
}

ZM_PY_DOC(zm_py_curve_mech_handle_doc,
"_curve_mech_handle(handle, body, /)\n--\n\n"
"Tests: one command body received; returns (bytes to send, ready: bool,\n"
"the peer's metadata or None).  ValueError('mechanism failed ...').");

PyObject *zm_py_curve_mech_handle(PyObject *module, PyObject *args)
{
    PyObject *cap, *sent, *meta, *r;
    Py_buffer v;
    zm_command cmd;
    mech_box *b;
    zm_wbuf w;
    int ready;

    (void)module;
    if (!PyArg_ParseTuple(args, "Oy*", &cap, &v))
        return NULL;
    b = mech_box_get(cap);
    if (b == NULL || body_command(&v, &cmd) < 0) {
        PyBuffer_Release(&v);
        return NULL;
    }
    zm_wbuf_init(&w);
    /* This driver has no ZAP handler: a server's request is answered as
     * the engine answers it without one (CURVE: 200, no User-Id). */
    if (zm_mech_status(&b->m) != ZM_MECH_HANDSHAKING ||
        zm_mech_handle(&b->m, &cmd, &w) < 0 ||
        (zm_mech_zap_pending(&b->m) &&
         zm_mech_zap_reply(&b->m, 200, &w) < 0)) {
        PyBuffer_Release(&v);
        return mech_failed(&b->m, &w);
    }
    PyBuffer_Release(&v);
    ready = zm_mech_status(&b->m) == ZM_MECH_READY;
    sent = wbuf_bytes(&w);
    if (ready)
        meta = PyBytes_FromStringAndSize((const char *)b->m.peer.props,
                                         (Py_ssize_t)b->m.peer.props_len);
    else {
        Py_INCREF(Py_None);
        meta = Py_None;
    }
    r = sent != NULL && meta != NULL
            ? Py_BuildValue("(OOO)", sent, ready ? Py_True : Py_False, meta)
            : NULL;
    Py_XDECREF(sent);
    Py_XDECREF(meta);
    return r;
}

ZM_PY_DOC(zm_py_curve_mech_encode_doc,
"_curve_mech_encode(handle, data, flags, /)\n--\n\n"
"Tests: one frame (flags: 1 MORE, 4 COMMAND) sealed, as the wire frame.");

PyObject *zm_py_curve_mech_encode(PyObject *module, PyObject *args)
{
    PyObject *cap;
    Py_buffer v;
    unsigned flags;
    mech_box *b;
    zm_wbuf w;
    int rc;

    (void)module;
    if (!PyArg_ParseTuple(args, "Oy*I", &cap, &v, &flags))
        return NULL;
    b = mech_box_get(cap);
    if (b == NULL || zm_mech_status(&b->m) != ZM_MECH_READY) {
        PyBuffer_Release(&v);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "handshake not done");
        return NULL;
    }
    zm_wbuf_init(&w);
    /* never ZM_ENC_ROOM_BEFORE: the byte before a caller's buffer is not
     * ours to write */
    rc = b->m.ops->encode(&b->m, v.buf, (size_t)v.len,
                          flags & (ZM_FLAG_MORE | ZM_FLAG_COMMAND), &w);
    PyBuffer_Release(&v);
    if (rc < 0) {
        zm_wbuf_free(&w);
        return PyErr_NoMemory();
    }
    return wbuf_bytes(&w);
}

ZM_PY_DOC(zm_py_curve_mech_decode_doc,
"_curve_mech_decode(handle, body, /)\n--\n\n"
"Tests: a MESSAGE frame's body opened: (data, flags: 1 MORE, 4 COMMAND).");

PyObject *zm_py_curve_mech_decode(PyObject *module, PyObject *args)
{
    PyObject *cap, *data, *r = NULL;
    Py_buffer v;
    zm_command cmd;
    unsigned flags = 0;
    mech_box *b;
    zm_wbuf w;

    (void)module;
    if (!PyArg_ParseTuple(args, "Oy*", &cap, &v))
        return NULL;
    b = mech_box_get(cap);
    if (b == NULL || body_command(&v, &cmd) < 0) {
        PyBuffer_Release(&v);
        return NULL;
    }
    if (zm_mech_status(&b->m) != ZM_MECH_READY) {
        PyBuffer_Release(&v);
        PyErr_SetString(PyExc_ValueError, "handshake not done");
        return NULL;
    }
    zm_wbuf_init(&w);
    if (b->m.ops->decode(&b->m, &cmd, &w, &flags) < 0) {
        PyBuffer_Release(&v);
        return mech_failed(&b->m, &w);
    }
    PyBuffer_Release(&v);
    data = wbuf_bytes(&w);
    if (data != NULL)
        r = Py_BuildValue("(OI)", data, flags);
    Py_XDECREF(data);
    return r;
}
