/*
 * _zmtpmodule.c - the CPython face of the C core: module state, heap types,
 * argument parsing and errors.  The only file that includes Python.h.
 *
 * Types:   Frame    a zero-copy slice of a read page (buffer protocol)
 *          Decoder  the incremental ZMTP decoder (codec.h), sans-IO
 * Funcs:   encode_* ZMTP encoders returning bytes; parse_command;
 *          parse_subscription_message; memory_stats; strerror
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "codec.h"

/* ================================================================== */
/* Module state                                                       */
/* ================================================================== */

typedef struct {
    PyTypeObject *Frame_Type;
    PyTypeObject *Decoder_Type;
    PyObject *ProtocolError;
} zmtp_state;

static inline zmtp_state *get_state(PyObject *module)
{
    void *state = PyModule_GetState(module);
    assert(state != NULL);
    return (zmtp_state *)state;
}

/* Raise ProtocolError(reason) with .code, .reason and .events set. */
static void raise_protocol_error(zmtp_state *st, int code, const char *reason,
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
static void raise_codec_error(zmtp_state *st, int rc)
{
    if (rc == -ZM_ERR_NOMEM)
        PyErr_NoMemory();
    else
        raise_protocol_error(st, rc, NULL, NULL);
}

/* ================================================================== */
/* Frame                                                              */
/* ================================================================== */

typedef struct {
    PyObject_HEAD
    zm_frame f;
    PyObject *bytes; /* cached .bytes, or NULL */
} FrameObject;

/* A new Frame that takes over the reference in *f. */
static PyObject *frame_new_from(PyTypeObject *tp, zm_frame *f)
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
static int frame_fill_copy(zm_frame *f, const void *data, size_t n,
                           unsigned flags)
{
    f->page = NULL;
    f->data = NULL;
    f->size = n;
    f->flags = flags;
    if (n == 0)
        return 0;
    f->page = zm_page_new(n);
    if (f->page == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(f->page->data, data, n);
    f->page->len = n;
    f->data = f->page->data;
    return 0;
}

static PyObject *Frame_tp_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"data", "track", "copy", "copy_threshold", NULL};
    PyObject *data = NULL, *copy = Py_None, *threshold = Py_None;
    int track = 0;
    Py_buffer view;
    FrameObject *self;
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OpOO:Frame", kwlist, &data,
                                     &track, &copy, &threshold))
        return NULL;
    if (track) {
        PyErr_SetString(PyExc_NotImplementedError,
                        "zmtp.Frame(track=True): message tracking is not "
                        "supported by zmtp");
        return NULL;
    }
    if (data != NULL && PyUnicode_Check(data)) {
        PyErr_SetString(PyExc_TypeError,
                        "Frame data must be bytes-like, not str "
                        "(encode it first, e.g. s.encode())");
        return NULL;
    }
    self = (FrameObject *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    self->bytes = NULL;
    memset(&self->f, 0, sizeof(self->f));
    if (data == NULL || data == Py_None)
        return (PyObject *)self;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    rc = frame_fill_copy(&self->f, view.buf, (size_t)view.len, 0);
    PyBuffer_Release(&view);
    if (rc < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void Frame_dealloc(FrameObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    zm_frame_release(&self->f);
    Py_CLEAR(self->bytes);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int Frame_getbuffer(FrameObject *self, Py_buffer *view, int flags)
{
    /* Read-only and zero-copy: the view keeps this Frame, and so the page,
     * alive. */
    static const char empty[1] = {0};
    void *buf = self->f.size ? (void *)self->f.data : (void *)empty;

    return PyBuffer_FillInfo(view, (PyObject *)self, buf,
                             (Py_ssize_t)self->f.size, 1, flags);
}

static Py_ssize_t Frame_len(FrameObject *self)
{
    return (Py_ssize_t)self->f.size;
}

static PyObject *Frame_get_bytes(FrameObject *self, void *closure)
{
    (void)closure;
    if (self->bytes == NULL) {
        self->bytes = PyBytes_FromStringAndSize((const char *)self->f.data,
                                                (Py_ssize_t)self->f.size);
        if (self->bytes == NULL)
            return NULL;
    }
    Py_INCREF(self->bytes);
    return self->bytes;
}

static PyObject *Frame_get_buffer(FrameObject *self, void *closure)
{
    (void)closure;
    return PyMemoryView_FromObject((PyObject *)self);
}

static PyObject *Frame_get_more(FrameObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong((self->f.flags & ZM_FLAG_MORE) != 0);
}

static PyObject *Frame_get_command(FrameObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong((self->f.flags & ZM_FLAG_COMMAND) != 0);
}

static PyObject *Frame_bytes_method(FrameObject *self, PyObject *unused)
{
    (void)unused;
    return Frame_get_bytes(self, NULL);
}

static PyObject *Frame_repr(FrameObject *self)
{
    PyObject *head, *r;
    size_t n = self->f.size < 32 ? self->f.size : 32;

    head = PyBytes_FromStringAndSize((const char *)self->f.data,
                                     (Py_ssize_t)n);
    if (head == NULL)
        return NULL;
    r = PyUnicode_FromFormat("<zmtp.Frame(%R%s) %zu bytes%s>", head,
                             self->f.size > n ? "..." : "", self->f.size,
                             (self->f.flags & ZM_FLAG_MORE) ? " more" : "");
    Py_DECREF(head);
    return r;
}

/* Frames compare equal to frames and bytes-like objects with equal bytes. */
static PyObject *Frame_richcompare(FrameObject *self, PyObject *other, int op)
{
    Py_buffer view;
    int eq;

    if (op != Py_EQ && op != Py_NE)
        Py_RETURN_NOTIMPLEMENTED;
    if (PyUnicode_Check(other) || !PyObject_CheckBuffer(other))
        Py_RETURN_NOTIMPLEMENTED;
    if (PyObject_GetBuffer(other, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        Py_RETURN_NOTIMPLEMENTED;
    }
    eq = (size_t)view.len == self->f.size &&
         (self->f.size == 0 || memcmp(view.buf, self->f.data, self->f.size) == 0);
    PyBuffer_Release(&view);
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static PyGetSetDef Frame_getset[] = {
    {"bytes", (getter)Frame_get_bytes, NULL,
     "The frame's content as bytes (copied once, then cached).", NULL},
    {"buffer", (getter)Frame_get_buffer, NULL,
     "A read-only memoryview of the content (zero copy).", NULL},
    {"more", (getter)Frame_get_more, NULL,
     "True when more frames of the same message follow.", NULL},
    {"command", (getter)Frame_get_command, NULL,
     "True for a ZMTP command frame (only the codec API returns these).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Frame_methods[] = {
    {"__bytes__", (PyCFunction)Frame_bytes_method, METH_NOARGS,
     "bytes(frame): the content as bytes."},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Frame_doc,
"Frame(data=b'')\n--\n\n"
"One message frame.  Frames received from the network are zero-copy slices\n"
"of a read page: the buffer protocol (memoryview(frame), frame.buffer) gives\n"
"the bytes without copying and keeps the page alive.  Frame(data) copies\n"
"data into a frame of its own.");

static PyType_Slot Frame_slots[] = {
    {Py_tp_new, Frame_tp_new},
    {Py_tp_dealloc, Frame_dealloc},
    {Py_tp_repr, Frame_repr},
    {Py_tp_richcompare, Frame_richcompare},
    {Py_tp_getset, Frame_getset},
    {Py_tp_methods, Frame_methods},
    {Py_tp_doc, (void *)Frame_doc},
    {Py_sq_length, Frame_len},
    {Py_mp_length, Frame_len},
    {Py_bf_getbuffer, Frame_getbuffer},
    {0, NULL},
};

static PyType_Spec Frame_spec = {
    .name = "zmtp._zmtp.Frame",
    .basicsize = sizeof(FrameObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = Frame_slots,
};

/* ================================================================== */
/* Decoder                                                            */
/* ================================================================== */

typedef struct {
    PyObject_HEAD
    zm_decoder dec;
    zmtp_state *st; /* the module outlives its types' instances */
} DecoderObject;

static PyObject *Decoder_tp_new(PyTypeObject *tp, PyObject *args,
                                PyObject *kw)
{
    static char *kwlist[] = {"greeting", "read_buf_size", "maxmsgsize",
                             "max_frames", NULL};
    zm_decoder_config cfg;
    int greeting = 1;
    Py_ssize_t page_size = (Py_ssize_t)ZM_PAGE_SIZE_DEFAULT;
    long long maxmsgsize = -1;
    Py_ssize_t max_frames = ZM_MAX_FRAMES_DEFAULT;
    DecoderObject *self;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$pnLn:Decoder", kwlist,
                                     &greeting, &page_size, &maxmsgsize,
                                     &max_frames))
        return NULL;
    if (page_size < (Py_ssize_t)ZM_PAGE_SIZE_MIN ||
        (size_t)page_size > ZM_PAGE_SIZE_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "read_buf_size must be between %zu and %zu, not %zd",
                     ZM_PAGE_SIZE_MIN, ZM_PAGE_SIZE_MAX, page_size);
        return NULL;
    }
    if (max_frames < 1) {
        PyErr_Format(PyExc_ValueError, "max_frames must be >= 1, not %zd",
                     max_frames);
        return NULL;
    }
    if (maxmsgsize < -1) {
        PyErr_Format(PyExc_ValueError,
                     "maxmsgsize must be -1 (unlimited) or >= 0, not %lld",
                     maxmsgsize);
        return NULL;
    }
    zm_decoder_config_default(&cfg);
    cfg.greeting = greeting;
    cfg.page_size = (size_t)page_size;
    cfg.maxmsgsize = (int64_t)maxmsgsize;
    cfg.max_frames = (size_t)max_frames;

    self = (DecoderObject *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    self->st = (zmtp_state *)PyType_GetModuleState(tp);
    if (zm_decoder_init(&self->dec, &cfg) < 0) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_ValueError, "invalid decoder configuration");
        return NULL;
    }
    return (PyObject *)self;
}

static void Decoder_dealloc(DecoderObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    zm_decoder_free(&self->dec);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* Turn one decoder event into a Python tuple; takes over its frames. */
static PyObject *event_to_py(zmtp_state *st, zm_event *ev)
{
    PyObject *list, *obj;
    zm_frame *frames;
    size_t i;

    switch (ev->kind) {
    case ZM_EV_GREETING:
        return Py_BuildValue("(iiiy" "N)", ZM_EV_GREETING, ev->greeting.major,
                             ev->greeting.minor, ev->greeting.mechanism,
                             PyBool_FromLong(ev->greeting.as_server != 0));
    case ZM_EV_COMMAND:
        obj = frame_new_from(st->Frame_Type, &ev->command);
        if (obj == NULL)
            return NULL;
        return Py_BuildValue("(iN)", ZM_EV_COMMAND, obj);
    case ZM_EV_MESSAGE:
        frames = zm_msg_frames(&ev->msg);
        list = PyList_New((Py_ssize_t)ev->msg.n);
        if (list == NULL) {
            zm_msg_clear(&ev->msg);
            return NULL;
        }
        for (i = 0; i < ev->msg.n; i++) {
            obj = frame_new_from(st->Frame_Type, &frames[i]);
            if (obj == NULL) {
                /* frames[i] was released; release the rest. */
                zm_msg_clear(&ev->msg);
                Py_DECREF(list);
                return NULL;
            }
            PyList_SET_ITEM(list, (Py_ssize_t)i, obj);
        }
        /* Every frame's reference now belongs to a Frame object. */
        ev->msg.n = 0;
        zm_msg_clear(&ev->msg);
        return Py_BuildValue("(iN)", ZM_EV_MESSAGE, list);
    default:
        PyErr_SetString(PyExc_SystemError, "unexpected decoder event");
        return NULL;
    }
}

/* Append every event the decoder can give now; 0 on NEED_DATA, -1 on an
 * exception (ProtocolError with the events so far attached). */
static int decoder_drain(DecoderObject *self, PyObject *events)
{
    zm_event ev;
    PyObject *obj;
    int kind;

    while ((kind = zm_decoder_next(&self->dec, &ev)) != ZM_EV_NEED_DATA) {
        if (kind == ZM_EV_ERROR) {
            raise_protocol_error(self->st, ev.error, self->dec.reason, events);
            return -1;
        }
        obj = event_to_py(self->st, &ev);
        if (obj == NULL)
            return -1;
        if (PyList_Append(events, obj) < 0) {
            Py_DECREF(obj);
            return -1;
        }
        Py_DECREF(obj);
    }
    return 0;
}

PyDoc_STRVAR(Decoder_feed_doc,
"feed(data, /)\n--\n\n"
"Take received bytes (any bytes-like object, possibly empty) and return the\n"
"list of events they complete, each a tuple: (EV_GREETING, major, minor,\n"
"mechanism, as_server), (EV_COMMAND, frame) or (EV_MESSAGE, [frames]).\n"
"Raises ProtocolError (with .code, .reason and .events decoded before the\n"
"error) when the peer broke the protocol; the decoder then stays failed.");

static PyObject *Decoder_feed(DecoderObject *self, PyObject *data)
{
    Py_buffer view;
    PyObject *events = NULL;
    size_t off = 0, used;
    int rc;

    if (PyUnicode_Check(data)) {
        PyErr_SetString(PyExc_TypeError,
                        "Decoder.feed() takes bytes-like data, not str");
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    events = PyList_New(0);
    if (events == NULL)
        goto error;
    for (;;) {
        if (decoder_drain(self, events) < 0)
            goto error;
        if (off == (size_t)view.len)
            break;
        rc = zm_decoder_feed(&self->dec, (const unsigned char *)view.buf + off,
                             (size_t)view.len - off, &used);
        if (rc < 0) {
            raise_codec_error(self->st, rc);
            goto error;
        }
        off += used;
    }
    PyBuffer_Release(&view);
    return events;
error:
    Py_XDECREF(events);
    PyBuffer_Release(&view);
    return NULL;
}

static PyObject *Decoder_release_idle(DecoderObject *self, PyObject *unused)
{
    (void)unused;
    zm_decoder_release_idle(&self->dec);
    Py_RETURN_NONE;
}

static PyObject *Decoder_get_pending(DecoderObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(zm_decoder_pending(&self->dec));
}

static PyObject *Decoder_get_error(DecoderObject *self, void *closure)
{
    (void)closure;
    if (self->dec.state != ZM_DS_ERROR)
        Py_RETURN_NONE;
    return PyLong_FromLong(self->dec.error);
}

static PyObject *Decoder_get_reason(DecoderObject *self, void *closure)
{
    (void)closure;
    if (self->dec.state != ZM_DS_ERROR)
        Py_RETURN_NONE;
    return PyUnicode_FromString(self->dec.reason);
}

static PyObject *Decoder_get_holds_page(DecoderObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->dec.page != NULL || self->dec.big != NULL);
}

static PyObject *Decoder_get_read_buf_size(DecoderObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(self->dec.cfg.page_size);
}

static PyObject *Decoder_get_maxmsgsize(DecoderObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromLongLong((long long)self->dec.cfg.maxmsgsize);
}

static PyObject *Decoder_get_max_frames(DecoderObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(self->dec.cfg.max_frames);
}

static PyMethodDef Decoder_methods[] = {
    {"feed", (PyCFunction)Decoder_feed, METH_O, Decoder_feed_doc},
    {"release_idle", (PyCFunction)Decoder_release_idle, METH_NOARGS,
     "Drop the read page if nothing is pending in it."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Decoder_getset[] = {
    {"pending", (getter)Decoder_get_pending, NULL,
     "Bytes received and not yet returned as events.", NULL},
    {"error", (getter)Decoder_get_error, NULL,
     "The ERR_* code once the decoder has failed, else None.", NULL},
    {"reason", (getter)Decoder_get_reason, NULL,
     "The readable reason once the decoder has failed, else None.", NULL},
    {"holds_page", (getter)Decoder_get_holds_page, NULL,
     "True while the decoder holds a read page.", NULL},
    {"read_buf_size", (getter)Decoder_get_read_buf_size, NULL,
     "Size of each read page in bytes.", NULL},
    {"maxmsgsize", (getter)Decoder_get_maxmsgsize, NULL,
     "Largest frame accepted, -1 for no limit.", NULL},
    {"max_frames", (getter)Decoder_get_max_frames, NULL,
     "Most frames accepted in one message.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(Decoder_doc,
"Decoder(*, greeting=True, read_buf_size=65536, maxmsgsize=-1,\n"
"        max_frames=4096)\n--\n\n"
"Incremental ZMTP 3.x decoder with no I/O.  Feed it bytes split anywhere;\n"
"it returns greetings, commands and whole messages as they complete.");

static PyType_Slot Decoder_slots[] = {
    {Py_tp_new, Decoder_tp_new},
    {Py_tp_dealloc, Decoder_dealloc},
    {Py_tp_methods, Decoder_methods},
    {Py_tp_getset, Decoder_getset},
    {Py_tp_doc, (void *)Decoder_doc},
    {0, NULL},
};

/* No Py_TPFLAGS_BASETYPE: PyType_GetModuleState(Py_TYPE(self)) is safe. */
static PyType_Spec Decoder_spec = {
    .name = "zmtp._zmtp.Decoder",
    .basicsize = sizeof(DecoderObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Decoder_slots,
};

/* ================================================================== */
/* Encoders                                                           */
/* ================================================================== */

/* Bytes-like argument (str refused with a clear message). */
static int get_bytes_arg(PyObject *obj, Py_buffer *view, const char *what)
{
    if (PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "%s must be bytes-like, not str (encode it first)", what);
        return -1;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes-like, not %.100s",
                     what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}

/* Hand-written fast-call parsing: exactly `n` positional arguments. */
static int check_nargs(const char *fname, Py_ssize_t nargs, Py_ssize_t lo,
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

static PyObject *wbuf_to_bytes(zmtp_state *st, zm_wbuf *w, int rc)
{
    PyObject *out = NULL;

    if (rc < 0)
        raise_codec_error(st, rc);
    else
        out = PyBytes_FromStringAndSize((const char *)w->data,
                                        (Py_ssize_t)w->len);
    zm_wbuf_free(w);
    return out;
}

PyDoc_STRVAR(encode_greeting_doc,
"encode_greeting(minor=1, mechanism=b'NULL', as_server=False)\n--\n\n"
"The 64-octet ZMTP 3.minor greeting.");

static PyObject *encode_greeting(PyObject *module, PyObject *args,
                                 PyObject *kw)
{
    static char *kwlist[] = {"minor", "mechanism", "as_server", NULL};
    unsigned char out[ZM_GREETING_SIZE];
    int minor = 1, as_server = 0, rc;
    const char *mech = "NULL";
    Py_ssize_t mech_len = 4;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|iy#p:encode_greeting", kwlist,
                                     &minor, &mech, &mech_len, &as_server))
        return NULL;
    if (minor < 0 || minor > 255) {
        PyErr_Format(PyExc_ValueError, "minor must be 0..255, not %d", minor);
        return NULL;
    }
    rc = zm_encode_greeting(out, (uint8_t)minor, mech, (size_t)mech_len,
                            as_server);
    if (rc < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "mechanism must be 1 to 20 characters of A-Z 0-9 - _ . +");
        return NULL;
    }
    (void)module;
    return PyBytes_FromStringAndSize((const char *)out, ZM_GREETING_SIZE);
}

PyDoc_STRVAR(encode_frame_doc,
"encode_frame(data, more=False, command=False, /)\n--\n\n"
"One frame (short or long form by size) as bytes.");

static PyObject *encode_frame(PyObject *module, PyObject *const *args,
                              Py_ssize_t nargs)
{
    Py_buffer view;
    unsigned char hdr[9];
    unsigned flags = 0;
    size_t h;
    PyObject *out;
    int t;

    (void)module;
    if (check_nargs("encode_frame", nargs, 1, 3) < 0)
        return NULL;
    for (Py_ssize_t i = 1; i < nargs; i++) {
        t = PyObject_IsTrue(args[i]);
        if (t < 0)
            return NULL;
        if (t)
            flags |= i == 1 ? ZM_FLAG_MORE : ZM_FLAG_COMMAND;
    }
    if (get_bytes_arg(args[0], &view, "frame data") < 0)
        return NULL;
    h = zm_frame_header(hdr, (uint64_t)view.len, flags);
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)h + view.len);
    if (out != NULL) {
        memcpy(PyBytes_AS_STRING(out), hdr, h);
        if (view.len > 0)
            memcpy(PyBytes_AS_STRING(out) + h, view.buf, (size_t)view.len);
    }
    PyBuffer_Release(&view);
    return out;
}

PyDoc_STRVAR(encode_message_doc,
"encode_message(frames, /)\n--\n\n"
"A whole message: every frame but the last gets MORE.  frames is a sequence\n"
"of bytes-like objects (at least one).");

static PyObject *encode_message(PyObject *module, PyObject *frames)
{
    PyObject *seq, *out = NULL;
    Py_buffer *views = NULL;
    Py_ssize_t n, i, got = 0;
    size_t total = 0, off = 0;
    unsigned char *p;

    (void)module;
    if (PyUnicode_Check(frames) || PyBytes_Check(frames)) {
        PyErr_SetString(PyExc_TypeError,
                        "encode_message() takes a sequence of frames "
                        "(e.g. [b'a', b'b']), not a single bytes or str");
        return NULL;
    }
    seq = PySequence_Fast(frames, "encode_message() takes a sequence of frames");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "a message has at least one frame");
        goto done;
    }
    views = PyMem_New(Py_buffer, (size_t)n);
    if (views == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++, got++) {
        if (get_bytes_arg(PySequence_Fast_GET_ITEM(seq, i), &views[i],
                          "each frame") < 0)
            goto done;
        total += (views[i].len <= 255 ? 2 : 9) + (size_t)views[i].len;
    }
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (out == NULL)
        goto done;
    p = (unsigned char *)PyBytes_AS_STRING(out);
    for (i = 0; i < n; i++) {
        off += zm_frame_header(p + off, (uint64_t)views[i].len,
                               i + 1 < n ? ZM_FLAG_MORE : 0);
        if (views[i].len > 0)
            memcpy(p + off, views[i].buf, (size_t)views[i].len);
        off += (size_t)views[i].len;
    }
done:
    for (i = 0; i < got; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    Py_DECREF(seq);
    return out;
}

PyDoc_STRVAR(encode_command_doc,
"encode_command(name, data=b'', /)\n--\n\n"
"A command frame: name (1..255 octets) and data.");

static PyObject *encode_command(PyObject *module, PyObject *const *args,
                                Py_ssize_t nargs)
{
    Py_buffer name, data = {0};
    zm_wbuf w;
    int rc;

    if (check_nargs("encode_command", nargs, 1, 2) < 0)
        return NULL;
    if (get_bytes_arg(args[0], &name, "command name") < 0)
        return NULL;
    if (nargs > 1 && get_bytes_arg(args[1], &data, "command data") < 0) {
        PyBuffer_Release(&name);
        return NULL;
    }
    zm_wbuf_init(&w);
    rc = zm_encode_command(&w, name.buf, (size_t)name.len, data.buf,
                           (size_t)data.len);
    PyBuffer_Release(&name);
    if (nargs > 1)
        PyBuffer_Release(&data);
    if (rc == -ZM_ERR_COMMAND) {
        zm_wbuf_free(&w);
        PyErr_SetString(PyExc_ValueError,
                        "command name must be 1 to 255 octets");
        return NULL;
    }
    return wbuf_to_bytes(get_state(module), &w, rc);
}

/* A property name or value: bytes-like, or str (ASCII for names, UTF-8 for
 * values).  New reference to a bytes object. */
static PyObject *prop_to_bytes(PyObject *obj, int is_name)
{
    if (PyUnicode_Check(obj))
        return is_name ? PyUnicode_AsASCIIString(obj)
                       : PyUnicode_AsUTF8String(obj);
    if (PyBytes_Check(obj)) {
        Py_INCREF(obj);
        return obj;
    }
    if (PyObject_CheckBuffer(obj))
        return PyBytes_FromObject(obj);
    PyErr_Format(PyExc_TypeError,
                 "READY property %s must be str or bytes, not %.100s",
                 is_name ? "names" : "values", Py_TYPE(obj)->tp_name);
    return NULL;
}

PyDoc_STRVAR(encode_ready_doc,
"encode_ready(properties, /)\n--\n\n"
"A READY command.  properties is a mapping or a sequence of (name, value)\n"
"pairs; names are ASCII (A-Z a-z 0-9 - _ . +), values str (UTF-8) or bytes.");

static PyObject *encode_ready(PyObject *module, PyObject *props)
{
    PyObject *items = NULL, *seq = NULL, *keep = NULL, *out = NULL;
    zm_prop *pv = NULL;
    Py_ssize_t n, i;
    zm_wbuf w;
    int rc;

    zm_wbuf_init(&w);
    if (PyDict_Check(props))
        items = PyDict_Items(props);
    else if (PyObject_HasAttrString(props, "items"))
        items = PyMapping_Items(props);
    else {
        items = props;
        Py_INCREF(items);
    }
    if (items == NULL)
        return NULL;
    seq = PySequence_Fast(items, "encode_ready() takes a mapping or pairs");
    if (seq == NULL)
        goto done;
    n = PySequence_Fast_GET_SIZE(seq);
    keep = PyList_New(0); /* owns the bytes the zm_props point into */
    pv = PyMem_New(zm_prop, (size_t)(n > 0 ? n : 1));
    if (keep == NULL || pv == NULL) {
        if (pv == NULL)
            PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i), *k, *v;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError,
                            "READY properties must be (name, value) pairs");
            goto done;
        }
        k = prop_to_bytes(PyTuple_GET_ITEM(pair, 0), 1);
        if (k == NULL || PyList_Append(keep, k) < 0) {
            Py_XDECREF(k);
            goto done;
        }
        Py_DECREF(k);
        v = prop_to_bytes(PyTuple_GET_ITEM(pair, 1), 0);
        if (v == NULL || PyList_Append(keep, v) < 0) {
            Py_XDECREF(v);
            goto done;
        }
        Py_DECREF(v);
        pv[i].name = (const unsigned char *)PyBytes_AS_STRING(k);
        pv[i].name_len = (size_t)PyBytes_GET_SIZE(k);
        pv[i].value = (const unsigned char *)PyBytes_AS_STRING(v);
        pv[i].value_len = (size_t)PyBytes_GET_SIZE(v);
    }
    rc = zm_encode_ready(&w, pv, (size_t)n);
    if (rc == -ZM_ERR_READY) {
        PyErr_SetString(PyExc_ValueError,
                        "READY property names must be 1 to 255 characters of "
                        "A-Z a-z 0-9 - _ . + (values under 4 GiB)");
        goto done;
    }
    out = wbuf_to_bytes(get_state(module), &w, rc);
done:
    zm_wbuf_free(&w);
    PyMem_Free(pv);
    Py_XDECREF(keep);
    Py_XDECREF(seq);
    Py_DECREF(items);
    return out;
}

PyDoc_STRVAR(encode_error_doc,
"encode_error(reason, /)\n--\n\nAn ERROR command; reason cut to 255 octets.");

static PyObject *encode_error(PyObject *module, PyObject *reason)
{
    Py_buffer view;
    zm_wbuf w;
    int rc;

    if (get_bytes_arg(reason, &view, "reason") < 0)
        return NULL;
    zm_wbuf_init(&w);
    rc = zm_encode_error(&w, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return wbuf_to_bytes(get_state(module), &w, rc);
}

PyDoc_STRVAR(encode_ping_doc,
"encode_ping(ttl=0, context=b'', /)\n--\n\n"
"A PING command; ttl in tenths of a second (0..65535), context cut to 16.");

static PyObject *encode_ping(PyObject *module, PyObject *const *args,
                             Py_ssize_t nargs)
{
    Py_buffer view = {0};
    long ttl = 0;
    zm_wbuf w;
    int rc;

    if (check_nargs("encode_ping", nargs, 0, 2) < 0)
        return NULL;
    if (nargs > 0) {
        ttl = PyLong_AsLong(args[0]);
        if (ttl == -1 && PyErr_Occurred())
            return NULL;
        if (ttl < 0 || ttl > 65535) {
            PyErr_Format(PyExc_ValueError, "ttl must be 0..65535, not %ld",
                         ttl);
            return NULL;
        }
    }
    if (nargs > 1 && get_bytes_arg(args[1], &view, "context") < 0)
        return NULL;
    zm_wbuf_init(&w);
    rc = zm_encode_ping(&w, (uint16_t)ttl, view.buf, (size_t)view.len);
    if (nargs > 1)
        PyBuffer_Release(&view);
    return wbuf_to_bytes(get_state(module), &w, rc);
}

PyDoc_STRVAR(encode_pong_doc,
"encode_pong(context=b'', /)\n--\n\nA PONG command; context cut to 16.");

static PyObject *encode_pong(PyObject *module, PyObject *const *args,
                             Py_ssize_t nargs)
{
    Py_buffer view = {0};
    zm_wbuf w;
    int rc;

    if (check_nargs("encode_pong", nargs, 0, 1) < 0)
        return NULL;
    if (nargs > 0 && get_bytes_arg(args[0], &view, "context") < 0)
        return NULL;
    zm_wbuf_init(&w);
    rc = zm_encode_pong(&w, view.buf, (size_t)view.len);
    if (nargs > 0)
        PyBuffer_Release(&view);
    return wbuf_to_bytes(get_state(module), &w, rc);
}

PyDoc_STRVAR(encode_subscription_doc,
"encode_subscription(topic, subscribe=True, peer_minor=1)\n--\n\n"
"Subscribe to (or cancel) a topic in the form the peer's version calls for:\n"
"SUBSCRIBE/CANCEL commands for ZMTP 3.1, a 0x01/0x00 message for 3.0.");

static PyObject *encode_subscription(PyObject *module, PyObject *args,
                                     PyObject *kw)
{
    static char *kwlist[] = {"topic", "subscribe", "peer_minor", NULL};
    PyObject *topic;
    int subscribe = 1, minor = 1, rc;
    Py_buffer view;
    zm_wbuf w;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|pi:encode_subscription",
                                     kwlist, &topic, &subscribe, &minor))
        return NULL;
    if (get_bytes_arg(topic, &view, "topic") < 0)
        return NULL;
    zm_wbuf_init(&w);
    rc = zm_encode_subscription(&w, view.buf, (size_t)view.len, subscribe,
                                minor);
    PyBuffer_Release(&view);
    return wbuf_to_bytes(get_state(module), &w, rc);
}

/* ================================================================== */
/* Parsers                                                            */
/* ================================================================== */

PyDoc_STRVAR(parse_command_doc,
"parse_command(body, /)\n--\n\n"
"Parse a command body (a command frame's content) into a tuple\n"
"(CMD_kind, name, value): READY -> [(name, value), ...]; ERROR -> reason;\n"
"PING -> (ttl, context); PONG -> context; SUBSCRIBE/CANCEL -> topic;\n"
"unknown -> data.  Raises ProtocolError when malformed.");

static PyObject *parse_command(PyObject *module, PyObject *body)
{
    Py_buffer view;
    zm_command cmd;
    PyObject *value = NULL, *out = NULL;
    int rc;

    if (get_bytes_arg(body, &view, "command body") < 0)
        return NULL;
    rc = zm_command_parse(view.buf, (size_t)view.len, &cmd);
    if (rc < 0) {
        raise_codec_error(get_state(module), rc);
        goto done;
    }
    switch (cmd.kind) {
    case ZM_CMD_READY: {
        const unsigned char *p = cmd.arg, *end = cmd.arg + cmd.arg_len;
        zm_prop prop;
        value = PyList_New(0);
        if (value == NULL)
            goto done;
        while (zm_props_next(&p, end, &prop) == 1) {
            PyObject *pair = Py_BuildValue(
                "(y#y#)", prop.name, (Py_ssize_t)prop.name_len, prop.value,
                (Py_ssize_t)prop.value_len);
            if (pair == NULL || PyList_Append(value, pair) < 0) {
                Py_XDECREF(pair);
                goto done;
            }
            Py_DECREF(pair);
        }
        break;
    }
    case ZM_CMD_PING:
        value = Py_BuildValue("(iy#)", cmd.ttl, cmd.arg,
                              (Py_ssize_t)cmd.arg_len);
        break;
    default:
        value = PyBytes_FromStringAndSize((const char *)cmd.arg,
                                          (Py_ssize_t)cmd.arg_len);
        break;
    }
    if (value == NULL)
        goto done;
    out = Py_BuildValue("(iy#O)", cmd.kind, cmd.name,
                        (Py_ssize_t)cmd.name_len, value);
done:
    Py_XDECREF(value);
    PyBuffer_Release(&view);
    return out;
}

PyDoc_STRVAR(parse_subscription_message_doc,
"parse_subscription_message(data, /)\n--\n\n"
"(subscribe, topic) for a ZMTP 3.0 subscription message (first octet 0x01\n"
"or 0x00), else None.");

static PyObject *parse_subscription_message(PyObject *module, PyObject *data)
{
    Py_buffer view;
    const unsigned char *topic;
    size_t topic_len;
    int subscribe;
    PyObject *out;

    (void)module;
    if (get_bytes_arg(data, &view, "message") < 0)
        return NULL;
    if (zm_parse_subscription_message(view.buf, (size_t)view.len, &subscribe,
                                      &topic, &topic_len))
        out = Py_BuildValue("(Ny#)", PyBool_FromLong(subscribe), topic,
                            (Py_ssize_t)topic_len);
    else {
        out = Py_None;
        Py_INCREF(out);
    }
    PyBuffer_Release(&view);
    return out;
}

/* ================================================================== */
/* Introspection                                                      */
/* ================================================================== */

PyDoc_STRVAR(memory_stats_doc,
"memory_stats()\n--\n\n"
"Process-wide read-page counters: pages_live, page_bytes_live, pages_total,\n"
"page_grows.");

static PyObject *memory_stats(PyObject *module, PyObject *unused)
{
    zm_mem_stats s;

    (void)module;
    (void)unused;
    zm_mem_get_stats(&s);
    return Py_BuildValue("{s:n,s:n,s:n,s:n}", "pages_live",
                         (Py_ssize_t)s.pages_live, "page_bytes_live",
                         (Py_ssize_t)s.page_bytes_live, "pages_total",
                         (Py_ssize_t)s.pages_total, "page_grows",
                         (Py_ssize_t)s.page_grows);
}

PyDoc_STRVAR(strerror_doc,
"strerror(code, /)\n--\n\nThe readable text of a codec ERR_* code.");

static PyObject *codec_strerror(PyObject *module, PyObject *code)
{
    long c = PyLong_AsLong(code);

    (void)module;
    if (c == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(zm_strerror((int)c));
}

/* ================================================================== */
/* Module setup                                                       */
/* ================================================================== */

static PyMethodDef module_methods[] = {
    {"encode_greeting", (PyCFunction)(void (*)(void))encode_greeting,
     METH_VARARGS | METH_KEYWORDS, encode_greeting_doc},
    {"encode_frame", (PyCFunction)(void (*)(void))encode_frame, METH_FASTCALL,
     encode_frame_doc},
    {"encode_message", (PyCFunction)encode_message, METH_O,
     encode_message_doc},
    {"encode_command", (PyCFunction)(void (*)(void))encode_command,
     METH_FASTCALL, encode_command_doc},
    {"encode_ready", (PyCFunction)encode_ready, METH_O, encode_ready_doc},
    {"encode_error", (PyCFunction)encode_error, METH_O, encode_error_doc},
    {"encode_ping", (PyCFunction)(void (*)(void))encode_ping, METH_FASTCALL,
     encode_ping_doc},
    {"encode_pong", (PyCFunction)(void (*)(void))encode_pong, METH_FASTCALL,
     encode_pong_doc},
    {"encode_subscription", (PyCFunction)(void (*)(void))encode_subscription,
     METH_VARARGS | METH_KEYWORDS, encode_subscription_doc},
    {"parse_command", (PyCFunction)parse_command, METH_O, parse_command_doc},
    {"parse_subscription_message", (PyCFunction)parse_subscription_message,
     METH_O, parse_subscription_message_doc},
    {"memory_stats", (PyCFunction)memory_stats, METH_NOARGS,
     memory_stats_doc},
    {"strerror", (PyCFunction)codec_strerror, METH_O, strerror_doc},
    {NULL, NULL, 0, NULL},
};

static int add_int(PyObject *m, const char *name, long v)
{
    return PyModule_AddIntConstant(m, name, v);
}

static int zmtp_exec(PyObject *m)
{
    zmtp_state *st = get_state(m);

    st->Frame_Type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Frame_spec,
                                                              NULL);
    if (st->Frame_Type == NULL || PyModule_AddType(m, st->Frame_Type) < 0)
        return -1;
    st->Decoder_Type = (PyTypeObject *)PyType_FromModuleAndSpec(
        m, &Decoder_spec, NULL);
    if (st->Decoder_Type == NULL || PyModule_AddType(m, st->Decoder_Type) < 0)
        return -1;
    st->ProtocolError = PyErr_NewExceptionWithDoc(
        "zmtp._zmtp.ProtocolError",
        "The peer broke the ZMTP protocol.  .code is an ERR_* constant,\n"
        ".reason a readable text, .events what was decoded before it.",
        PyExc_ValueError, NULL);
    if (st->ProtocolError == NULL)
        return -1;
    Py_INCREF(st->ProtocolError);
    if (PyModule_AddObject(m, "ProtocolError", st->ProtocolError) < 0) {
        Py_DECREF(st->ProtocolError);
        return -1;
    }

#define ADD(name, v)                                                          \
    do {                                                                      \
        if (add_int(m, name, (long)(v)) < 0)                                  \
            return -1;                                                        \
    } while (0)
    ADD("EV_GREETING", ZM_EV_GREETING);
    ADD("EV_COMMAND", ZM_EV_COMMAND);
    ADD("EV_MESSAGE", ZM_EV_MESSAGE);
    ADD("CMD_UNKNOWN", ZM_CMD_UNKNOWN);
    ADD("CMD_READY", ZM_CMD_READY);
    ADD("CMD_ERROR", ZM_CMD_ERROR);
    ADD("CMD_PING", ZM_CMD_PING);
    ADD("CMD_PONG", ZM_CMD_PONG);
    ADD("CMD_SUBSCRIBE", ZM_CMD_SUBSCRIBE);
    ADD("CMD_CANCEL", ZM_CMD_CANCEL);
    ADD("ERR_SIGNATURE", ZM_ERR_SIGNATURE);
    ADD("ERR_VERSION", ZM_ERR_VERSION);
    ADD("ERR_MECHANISM", ZM_ERR_MECHANISM);
    ADD("ERR_RESERVED_FLAGS", ZM_ERR_RESERVED_FLAGS);
    ADD("ERR_COMMAND_MORE", ZM_ERR_COMMAND_MORE);
    ADD("ERR_FRAME_SIZE", ZM_ERR_FRAME_SIZE);
    ADD("ERR_MSG_TOO_LARGE", ZM_ERR_MSG_TOO_LARGE);
    ADD("ERR_TOO_MANY_FRAMES", ZM_ERR_TOO_MANY_FRAMES);
    ADD("ERR_COMMAND", ZM_ERR_COMMAND);
    ADD("ERR_READY", ZM_ERR_READY);
    ADD("ERR_ERROR_CMD", ZM_ERR_ERROR_CMD);
    ADD("ERR_PING", ZM_ERR_PING);
    ADD("ERR_NOMEM", ZM_ERR_NOMEM);
    ADD("ERR_STATE", ZM_ERR_STATE);
    ADD("GREETING_SIZE", ZM_GREETING_SIZE);
    ADD("READ_BUF_SIZE_DEFAULT", ZM_PAGE_SIZE_DEFAULT);
    ADD("READ_BUF_SIZE_MIN", ZM_PAGE_SIZE_MIN);
    ADD("MAX_FRAMES_DEFAULT", ZM_MAX_FRAMES_DEFAULT);
    ADD("MSG_INLINE_FRAMES", ZM_MSG_INLINE);
#undef ADD
    return 0;
}

static int zmtp_traverse(PyObject *m, visitproc visit, void *arg)
{
    zmtp_state *st = get_state(m);
    Py_VISIT(st->Frame_Type);
    Py_VISIT(st->Decoder_Type);
    Py_VISIT(st->ProtocolError);
    return 0;
}

static int zmtp_clear(PyObject *m)
{
    zmtp_state *st = get_state(m);
    Py_CLEAR(st->Frame_Type);
    Py_CLEAR(st->Decoder_Type);
    Py_CLEAR(st->ProtocolError);
    return 0;
}

static void zmtp_free(void *m)
{
    zmtp_clear((PyObject *)m);
}

static PyModuleDef_Slot zmtp_slots[] = {
    {Py_mod_exec, zmtp_exec},
    {0, NULL},
};

static struct PyModuleDef zmtp_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "zmtp._zmtp",
    .m_doc = "The C core of zmtp: ZMTP codec, read pages and frames.",
    .m_size = sizeof(zmtp_state),
    .m_methods = module_methods,
    .m_slots = zmtp_slots,
    .m_traverse = zmtp_traverse,
    .m_clear = zmtp_clear,
    .m_free = zmtp_free,
};

PyMODINIT_FUNC PyInit__zmtp(void)
{
    return PyModuleDef_Init(&zmtp_module);
}
