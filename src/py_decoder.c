/*
 * py_decoder.c - the zmtp.Decoder type: the sans-IO ZMTP decoder (codec.h)
 * fed from Python, its events as tuples (frames as zero-copy Frames).
 *
 * Owns:      DecoderObject, its methods and type spec (zm_py_decoder_spec).
 * May call:  Python.h, codec.h (zm_decoder_*), py_module.h's
 *            frame_new_from (inline), py_errors.c (ProtocolError).
 * Called by: _zmtpmodule.c (the type, at exec) and Python code only; the
 *            socket engine runs its own decoders and never comes here.
 */
#include "py_module.h"

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
        return Py_BuildValue("(iiiy" "Ni)", ZM_EV_GREETING, ev->greeting.major,
                             ev->greeting.minor, ev->greeting.mechanism,
                             PyBool_FromLong(ev->greeting.as_server != 0),
                             ev->greeting.socket_type);
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
            zm_py_raise_protocol_error(self->st, ev.error, self->dec.reason,
                                       events);
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
            zm_py_raise_codec_error(self->st, rc);
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
PyType_Spec zm_py_decoder_spec = {
    .name = "zmtp._zmtp.Decoder",
    .basicsize = sizeof(DecoderObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Decoder_slots,
};

