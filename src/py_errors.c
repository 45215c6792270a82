/*
 * py_errors.c - how the CPython face raises: ProtocolError for codec
 * failures, ZMQError / Again / ContextTerminated for an errno (the classes
 * zmtp.error hands over with _set_errors), and the TypeError of a wrong
 * argument count.
 *
 * Owns:      zm_py_raise_protocol_error, zm_py_raise_codec_error,
 *            zm_py_raise_zmq, zm_py_check_nargs, _set_errors.
 * May call:  Python.h, codec.h (zm_strerror), engine.h (ZM_ETERM).
 * Called by: every py_*.c file.  It calls none of them (no object, no
 *            engine state here); never by the core, which returns -errno
 *            and leaves raising to the face.
 */
#include "py_module.h"

#include <errno.h>

/* Raise ProtocolError(reason) with .code, .reason and .events set. */
void zm_py_raise_protocol_error(zmtp_state *st, int code, const char *reason,
                                PyObject *events)
{
    PyObject *exc, *val;

    if (code < 0)
        code = -code;
    if (reason == NULL || reason[0] == '\0')
        reason = zm_strerror(code);
    exc = PyObject_CallFunction(st->ProtocolError, "s", reason);
    if (exc == NULL)
        return;
    val = PyLong_FromLong(code);
    if (val == NULL || PyObject_SetAttrString(exc, "code", val) < 0)
        goto done;
    Py_DECREF(val);
    val = PyUnicode_FromString(reason);
    if (val == NULL || PyObject_SetAttrString(exc, "reason", val) < 0)
        goto done;
    Py_DECREF(val);
    val = events != NULL ? events : PyList_New(0);
    if (val == NULL)
        goto done;
    if (events != NULL)
        Py_INCREF(val);
    if (PyObject_SetAttrString(exc, "events", val) < 0)
        goto done;
    PyErr_SetObject(st->ProtocolError, exc);
done:
    Py_XDECREF(val);
    Py_DECREF(exc);
}

/* A codec function's negative return as a Python exception. */
void zm_py_raise_codec_error(zmtp_state *st, int rc)
{
    if (rc == -ZM_ERR_NOMEM)
        PyErr_NoMemory();
    else
        zm_py_raise_protocol_error(st, rc, NULL, NULL);
}

/* Raise ZMQError(errnum, msg), or its Again / ContextTerminated subclass. */
PyObject *zm_py_raise_zmq(zmtp_state *st, int errnum, const char *msg)
{
    PyObject *cls, *exc;

    if (errnum < 0)
        errnum = -errnum;
    if (st->ZMQError == NULL) {
        PyErr_Format(PyExc_OSError, "zmtp error %d: %s", errnum,
                     msg != NULL ? msg : "");
        return NULL;
    }
    cls = errnum == EAGAIN ? st->Again
          : errnum == ZM_ETERM ? st->ContextTerminated
                               : st->ZMQError;
    if (msg != NULL)
        exc = PyObject_CallFunction(cls, "is", errnum, msg);
    else
        exc = PyObject_CallFunction(cls, "i", errnum);
    if (exc != NULL) {
        PyErr_SetObject(cls, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* Hand-written fast-call parsing: exactly `n` positional arguments. */
int zm_py_check_nargs(const char *fname, Py_ssize_t nargs, Py_ssize_t lo,
                      Py_ssize_t hi)
{
    if (nargs < lo || nargs > hi) {
        if (lo == hi)
            PyErr_Format(PyExc_TypeError,
                         "%s() takes %zd positional arguments (%zd given)",
                         fname, lo, nargs);
        else
            PyErr_Format(PyExc_TypeError,
                         "%s() takes %zd to %zd positional arguments "
                         "(%zd given)",
                         fname, lo, hi, nargs);
        return -1;
    }
    return 0;
}

ZM_PY_DOC(zm_py_set_errors_doc,
"_set_errors(ZMQError, Again, ContextTerminated, /)\n--\n\n"
"Called once by zmtp.error: the exception classes the C code raises.");

PyObject *zm_py_set_errors(PyObject *module, PyObject *const *args,
                           Py_ssize_t nargs)
{
    zmtp_state *st = get_state(module);

    if (zm_py_check_nargs("_set_errors", nargs, 3, 3) < 0)
        return NULL;
    for (int i = 0; i < 3; i++)
        if (!PyType_Check(args[i]) ||
            !PyType_IsSubtype((PyTypeObject *)args[i],
                              (PyTypeObject *)PyExc_Exception)) {
            PyErr_SetString(PyExc_TypeError, "exception classes expected");
            return NULL;
        }
    Py_INCREF(args[0]);
    Py_INCREF(args[1]);
    Py_INCREF(args[2]);
    Py_XSETREF(st->ZMQError, args[0]);
    Py_XSETREF(st->Again, args[1]);
    Py_XSETREF(st->ContextTerminated, args[2]);
    Py_RETURN_NONE;
}

