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
