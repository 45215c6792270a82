/*
 * py_module.h - private header of the CPython face (zmtp._zmtp): the
 * module state, the objects the face's files share, their cross-file
 * declarations, and the static inline helpers of the per-message path.
 *
 * Owns:      zmtp_state and get_state(); the shared declarations (one group
 *            per py_*.c file).
 * May call:  Python.h, and the C core's public headers (engine.h,
 *            progress.h, backend.h, codec.h; inproc.h through engine.h).
 * Included by: _zmtpmodule.c and the py_*.c files only.  Nothing below the
 *            face (engine, backends, codec...) may include it: they never
 *            see Python.
 *
 * Non-static names of the face carry the zm_py_ prefix (internal: the
 * module is built with -fvisibility=hidden).
 */
#ifndef ZMTP_PY_MODULE_H
#define ZMTP_PY_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "backend.h"
#include "codec.h"
#include "engine.h"
#include "progress.h"

/* ================================================================== */
/* Module state                                                       */
/* ================================================================== */

typedef struct {
    PyTypeObject *Frame_Type;
    PyTypeObject *Decoder_Type;
    PyTypeObject *Socket_Type;
    PyTypeObject *Progress_Type;
    PyTypeObject *InprocPipe_Type;
    PyObject *ProtocolError;
    /* Set by the Python facade (zmtp/error.py) at import. */
    PyObject *ZMQError;
    PyObject *Again;
    PyObject *ContextTerminated;
    /* {number: name} of the libzmq socket options zmtp does not implement
     * (zmtp/constants.py), for the error that names them. */
    PyObject *option_names;
} zmtp_state;

static inline zmtp_state *get_state(PyObject *module)
{
    void *state = PyModule_GetState(module);
    assert(state != NULL);
    return (zmtp_state *)state;
}

/* A docstring defined in the file that owns a function and named in a
 * table of another file (PyDoc_STRVAR, not static). */
#define ZM_PY_DOC(name, str) const char name[] = PyDoc_STR(str)

/* ================================================================== */
/* py_errors.c: exceptions and argument counts                        */
/* ================================================================== */

void zm_py_raise_protocol_error(zmtp_state *st, int code, const char *reason,
                                PyObject *events);
void zm_py_raise_codec_error(zmtp_state *st, int rc);
PyObject *zm_py_raise_zmq(zmtp_state *st, int errnum, const char *msg);
int zm_py_check_nargs(const char *fname, Py_ssize_t nargs, Py_ssize_t lo,
                      Py_ssize_t hi);
PyObject *zm_py_set_errors(PyObject *module, PyObject *const *args,
                           Py_ssize_t nargs);
extern const char zm_py_set_errors_doc[];

/* ================================================================== */
/* py_frame.c: the Frame type                                         */
/* ================================================================== */

extern PyType_Spec zm_py_frame_spec;

typedef struct {
    PyObject_HEAD
    zm_frame f;
    PyObject *bytes; /* cached .bytes, or NULL */
} FrameObject;

/* A new Frame that takes over the reference in *f. */
static inline PyObject *frame_new_from(PyTypeObject *tp, zm_frame *f)
{
    FrameObject *self = PyObject_New(FrameObject, tp);

    if (self == NULL) {
        zm_frame_release(f);
        return NULL;
    }
    self->f = *f;
    self->bytes = NULL;
    f->page = NULL;
    return (PyObject *)self;
}

/* Copy a buffer into a page of its own and slice it. */
static inline int frame_fill_copy(zm_frame *f, const void *data, size_t n,
                                  unsigned flags)
{
    f->page = NULL;
    f->data = NULL;
    f->size = n;
    f->flags = flags;
    if (n == 0)
        return 0;
    /* Small copies (a ROUTER's routing id, short Frames) take a cached
     * page of the smallest kept size instead of a malloc each. */
    f->page = zm_page_new(n < ZM_PAGE_SMALL ? ZM_PAGE_SMALL : n);
    if (f->page == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(f->page->data, data, n);
    f->page->len = n;
    f->data = f->page->data;
    return 0;
}

/* ================================================================== */
/* py_decoder.c: the Decoder type                                     */
/* ================================================================== */

extern PyType_Spec zm_py_decoder_spec;

/* ================================================================== */
/* py_codec.c: encode_* / parse_* / strerror (module functions)       */
/* ================================================================== */

extern const char zm_py_encode_greeting_doc[];
PyObject *zm_py_encode_greeting(PyObject *module, PyObject *args,
                                PyObject *kw);
extern const char zm_py_encode_frame_doc[];
PyObject *zm_py_encode_frame(PyObject *module, PyObject *const *args,
                             Py_ssize_t nargs);
extern const char zm_py_encode_message_doc[];
PyObject *zm_py_encode_message(PyObject *module, PyObject *frames);
extern const char zm_py_encode_command_doc[];
PyObject *zm_py_encode_command(PyObject *module, PyObject *const *args,
                               Py_ssize_t nargs);
extern const char zm_py_encode_ready_doc[];
PyObject *zm_py_encode_ready(PyObject *module, PyObject *props);
extern const char zm_py_encode_error_doc[];
PyObject *zm_py_encode_error(PyObject *module, PyObject *reason);
extern const char zm_py_encode_ping_doc[];
PyObject *zm_py_encode_ping(PyObject *module, PyObject *const *args,
                            Py_ssize_t nargs);
extern const char zm_py_encode_pong_doc[];
PyObject *zm_py_encode_pong(PyObject *module, PyObject *const *args,
                            Py_ssize_t nargs);
extern const char zm_py_encode_subscription_doc[];
PyObject *zm_py_encode_subscription(PyObject *module, PyObject *args,
                                    PyObject *kw);
extern const char zm_py_parse_command_doc[];
PyObject *zm_py_parse_command(PyObject *module, PyObject *body);
extern const char zm_py_parse_subscription_message_doc[];
PyObject *zm_py_parse_subscription_message(PyObject *module, PyObject *data);
extern const char zm_py_strerror_doc[];
PyObject *zm_py_strerror(PyObject *module, PyObject *code);

#endif /* ZMTP_PY_MODULE_H */
