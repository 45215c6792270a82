/*
 * py_frame.c - the zmtp.Frame type: one frame, a zero-copy slice of a read
 * page (buffer protocol, .bytes cached, .more, .command, get()); and
 * _SendRef, a caller's buffer sent by reference (issue 19): the external
 * page's release hook and the lock-free list of released references.
 *
 * Owns:      Frame's methods and type spec (zm_py_frame_spec).  Frames are
 *            made elsewhere through frame_new_from() / frame_fill_copy()
 *            (py_module.h: static inline, on the receive path).  _SendRef
 *            (zm_py_sendref_spec, zm_py_sendref_page, zm_py_sendref_drain).
 * May call:  Python.h, msg.h / arena.h (zm_frame, pages), py_errors.c.
 * Called by: _zmtpmodule.c (the types, at exec), py_sockio.c (the send
 *            path: zm_py_sendref_*) and Python code; the core calls the
 *            release hook only through an external page's function
 *            pointer, knowing frames as zm_frame only.
 */
#include "py_module.h"

#include <errno.h>
#include <string.h>

/* The module state from a Frame type or a subclass of it. */
static zmtp_state *frame_type_state(PyTypeObject *tp)
{
    for (PyTypeObject *t = tp; t != NULL; t = t->tp_base) {
        PyObject *mod;
        if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE))
            continue;
        mod = PyType_GetModule(t);
        if (mod != NULL)
            return get_state(mod);
        PyErr_Clear();
    }
    return NULL;
}

/* Frame(data, copy=False), or copy=None with data of copy_threshold bytes
 * or more (65536 by default), as pyzmq: the Frame references data (an
 * external page, py_frame.c's _SendRef: no copy, data kept until the
 * Frame and every queue it was sent to let go; its tracker says when).
 * 0 when it does (the view moved), 1 to copy, -1 with an exception. */
static int frame_reference(PyTypeObject *tp, FrameObject *self,
                           Py_buffer *view, PyObject *copy,
                           PyObject *threshold)
{
    Py_ssize_t min = (Py_ssize_t)ZM_PY_SEND_REF_MIN;
    zmtp_state *st;
    PyObject *ref;
    zm_page *p;

    if (copy != Py_None) {
        int c = PyObject_IsTrue(copy);
        if (c < 0)
            return -1;
        if (c)
            return 1;
    } else {
        if (threshold != Py_None &&
            ((min = PyLong_AsSsize_t(threshold)) == -1 && PyErr_Occurred()))
            return -1;
        if (view->len < min)
            return 1;
    }
    if (view->len == 0 || (st = frame_type_state(tp)) == NULL)
        return 1;
    p = zm_py_sendref_page(st, view, &ref);
    if (p == NULL) {
        PyErr_Clear(); /* out of memory for the reference: copy */
        return 1;
    }
    Py_DECREF(ref); /* the page keeps it */
    self->f.page = p;
    self->f.data = zm_page_bytes(p);
    self->f.size = p->len;
    self->owned = 0; /* read-only: the bytes are the caller's */
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
    self->view = NULL;
    self->tracked = track;
    self->owned = 1;
    memset(&self->f, 0, sizeof(self->f));
    if (data == NULL || data == Py_None)
        return (PyObject *)self;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    rc = frame_reference(tp, self, &view, copy, threshold);
    if (rc == 0) {
        return (PyObject *)self; /* the Frame references data */
    } else if (rc < 0) {
        PyBuffer_Release(&view);
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

static int Frame_traverse(FrameObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->view);
    return 0;
}

static int Frame_clear(FrameObject *self)
{
    Py_CLEAR(self->view);
    return 0;
}

static void Frame_dealloc(FrameObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    zm_frame_release(&self->f);
    Py_CLEAR(self->bytes);
    Py_CLEAR(self->view);
    props_clear(&self->props);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int Frame_getbuffer(FrameObject *self, Py_buffer *view, int flags)
{
    /* Zero-copy: the view keeps this Frame, and so the page, alive.  A
     * received frame is a slice of a page other frames share: read-only.
     * Frame(data) made its own copy, which only its owner can reach:
     * writable, as pyzmq's copy=False frames of writable memory. */
    static char empty[1] = {0};
    void *buf = self->f.size ? (void *)self->f.data : (void *)empty;
    int readonly = !(self->owned && self->f.size);

    if ((flags & PyBUF_WRITABLE) && readonly) {
        PyErr_SetString(PyExc_BufferError,
                        "a received zmtp.Frame is read-only (its bytes are "
                        "in a page shared with other frames)");
        view->obj = NULL;
        return -1;
    }
    if (!readonly)
        Py_CLEAR(self->bytes); /* may be written: .bytes is made afresh */
    return PyBuffer_FillInfo(view, (PyObject *)self, buf,
                             (Py_ssize_t)self->f.size, readonly, flags);
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
    if (self->view == NULL) {
        self->view = PyMemoryView_FromObject((PyObject *)self);
        if (self->view == NULL)
            return NULL;
        /* self -> view -> self: the collector must see it now. */
        if (!PyObject_GC_IsTracked((PyObject *)self))
            PyObject_GC_Track(self);
    }
    Py_INCREF(self->view);
    return self->view;
}

PyObject *zm_py_finished_tracker(void)
{
    PyObject *mod = PyImport_ImportModule("zmtp.sugar.tracker");
    PyObject *t;

    if (mod == NULL)
        return NULL;
    t = PyObject_GetAttrString(mod, "_FINISHED_TRACKER");
    Py_DECREF(mod);
    return t;
}

static void sendref_release(void *opaque);

PyObject *zm_py_frame_tracker(FrameObject *self)
{
    zm_page *p = self->f.page;
    PyObject *refs, *t;

    if (!self->tracked)
        Py_RETURN_NONE;
    if (p == NULL || !p->ext ||
        ((zm_ext *)(void *)p->data)->release != sendref_release)
        return zm_py_finished_tracker(); /* zmtp's own copy */
    /* Frame(data, copy=False, track=True): done when the Frame and every
     * queue it went to let go of data. */
    refs = PyTuple_Pack(1, ((zm_ext *)(void *)p->data)->opaque);
    if (refs == NULL)
        return NULL;
    t = zm_py_tracker_of(refs);
    Py_DECREF(refs);
    return t;
}

static PyObject *Frame_get_tracker(FrameObject *self, void *closure)
{
    (void)closure;
    return zm_py_frame_tracker(self);
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

/* pyzmq's shape: <zmtp.Frame(b'abc')>, or for more than 16 bytes the first
 * 12 and the size: <zmtp.Frame(b'xxxxxxxxxxxx'...20B)> (kB from 1000, MB
 * from 2**20 counted in 10**6, GB from 10**9, rounded down, as pyzmq). */
static PyObject *Frame_repr(FrameObject *self)
{
    PyObject *head, *r;
    size_t size = self->f.size, n = size > 16 ? 12 : size;
    char suffix[48] = "";

    if (size > 16) {
        const char *unit = "B";
        size_t v = size;
        if (size >= 1000000000u) {
            unit = "GB";
            v = size / 1000000000u;
        } else if (size >= (1u << 20)) {
            unit = "MB";
            v = size / 1000000u;
        } else if (size >= 1000u) {
            unit = "kB";
            v = size / 1000u;
        }
        snprintf(suffix, sizeof(suffix), "...%zu%s", v, unit);
    }
    head = PyBytes_FromStringAndSize((const char *)self->f.data,
                                     (Py_ssize_t)n);
    if (head == NULL)
        return NULL;
    r = PyUnicode_FromFormat("<zmtp.Frame(%R%s)>", head, suffix);
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
     "A memoryview of the content (zero copy; the same object each time).\n"
     "Read-only for received frames (their page is shared), writable for\n"
     "Frame(data), which holds its own copy.", NULL},
    {"tracker", (getter)Frame_get_tracker, NULL,
     "Frame(data, track=True): a MessageTracker (done at once when the\n"
     "Frame copied data; else once nothing references data); else None.",
     NULL},
    {"more", (getter)Frame_get_more, NULL,
     "True when more frames of the same message follow.", NULL},
    {"command", (getter)Frame_get_command, NULL,
     "True for a ZMTP command frame (only the codec API returns these).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(Frame_get_doc,
"get(option)\n--\n\n"
"A frame property, as pyzmq's Frame.get: get(zmtp.MORE) is 1 when more\n"
"frames of the message follow, else 0.  Other numbers raise ZMQError\n"
"(EINVAL), as libzmq.  A str (or bytes) name gives a property of the\n"
"connection the frame came from, as libzmq's zmq_msg_gets: 'Socket-Type'\n"
"and 'Identity' (and any other property of the peer's READY, such as\n"
"ZMQ_METADATA's 'X-...'), 'Peer-Address' (tcp: the peer's IP; ipc:\n"
"'localhost:UID:GID:PID'), and after ZAP 'User-Id' and the reply's\n"
"metadata; the value as str.  Names are exact (case matters, as in\n"
"libzmq); an unknown name, or a frame with no connection (made locally,\n"
"inproc), raises ZMQError(EINVAL).  SHARED and SRCFD raise\n"
"NotImplementedError.");

static PyObject *frame_raise_einval(FrameObject *self);

/* A connection property by exact name (libzmq's metadata_t is a map of
 * std::string: case-sensitive), the first of equal names; the value as
 * str (UTF-8, undecodable bytes escaped).  Unknown, or no connection:
 * ZMQError(EINVAL), as libzmq. */
static PyObject *frame_get_property(FrameObject *self, PyObject *option)
{
    const unsigned char *p, *end;
    const char *name;
    Py_ssize_t nlen;
    zm_prop prop;

    if (PyUnicode_Check(option))
        name = PyUnicode_AsUTF8AndSize(option, &nlen);
    else if (PyBytes_AsStringAndSize(option, (char **)&name, &nlen) < 0)
        name = NULL;
    if (name == NULL)
        return NULL;
    if (self->props == NULL)
        return frame_raise_einval(self);
    p = self->props->data;
    end = p + self->props->len;
    while (zm_props_next(&p, end, &prop) == 1) {
        if (prop.name_len == (size_t)nlen &&
            memcmp(prop.name, name, (size_t)nlen) == 0)
            return PyUnicode_DecodeUTF8((const char *)prop.value,
                                        (Py_ssize_t)prop.value_len,
                                        "surrogateescape");
    }
    return frame_raise_einval(self);
}

static PyObject *Frame_get(FrameObject *self, PyObject *option)
{
    long opt;

    if (PyUnicode_Check(option) || PyBytes_Check(option))
        return frame_get_property(self, option);
    if (!PyLong_Check(option)) {
        PyErr_Format(PyExc_TypeError, "expected int or str, got: %R", option);
        return NULL;
    }
    opt = PyLong_AsLong(option);
    if (opt == -1 && PyErr_Occurred())
        return NULL;
    if (opt == 1) /* ZMQ_MORE */
        return PyLong_FromLong((self->f.flags & ZM_FLAG_MORE) != 0);
    if (opt == 2 || opt == 3) { /* ZMQ_SRCFD, ZMQ_SHARED */
        PyErr_Format(PyExc_NotImplementedError,
                     "Frame.get(%s) is not implemented by zmtp (its frames "
                     "do not record %s)", opt == 2 ? "SRCFD" : "SHARED",
                     opt == 2 ? "the connection they came from"
                              : "whether their page is shared");
        return NULL;
    }
    return frame_raise_einval(self);
}

/* EINVAL as libzmq's zmq_msg_get; the module (for ZMQError) is found from
 * the Frame type, also for a subclass. */
static PyObject *frame_raise_einval(FrameObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject *module = NULL;

    for (; tp != NULL && module == NULL; tp = tp->tp_base) {
        if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
            continue;
        module = PyType_GetModule(tp);
        if (module == NULL)
            PyErr_Clear();
    }
    if (module == NULL) {
        PyErr_SetString(PyExc_ValueError, "Invalid argument");
        return NULL;
    }
    return zm_py_raise_zmq(get_state(module), EINVAL, "Invalid argument");
}

/* copy.copy(frame): a Frame of its own with the same bytes, MORE flag and
 * tracking (pyzmq's copies share the libzmq message; zmtp's own memory is
 * cheap to copy and stays writable). */
static PyObject *Frame_copy(FrameObject *self, PyObject *unused)
{
    PyTypeObject *tp = Py_TYPE(self);
    FrameObject *c;

    (void)unused;
    c = (FrameObject *)tp->tp_alloc(tp, 0); /* zeroed: no bytes, view, props */
    if (c == NULL)
        return NULL;
    c->tracked = self->tracked;
    c->owned = 1;
    if (self->f.size &&
        frame_fill_copy(&c->f, self->f.data, self->f.size,
                        self->f.flags & ZM_FLAG_MORE) < 0) {
        Py_DECREF(c);
        return NULL;
    }
    return (PyObject *)c;
}

static PyMethodDef Frame_methods[] = {
    {"__copy__", (PyCFunction)Frame_copy, METH_NOARGS,
     "copy.copy(frame): a Frame of its own with the same bytes."},
    {"__bytes__", (PyCFunction)Frame_bytes_method, METH_NOARGS,
     "bytes(frame): the content as bytes."},
    {"get", (PyCFunction)Frame_get, METH_O, Frame_get_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Frame_doc,
"Frame(data=b'', track=False, copy=None, copy_threshold=None)\n--\n\n"
"One message frame.  Frames received from the network are zero-copy slices\n"
"of a read page: the buffer protocol (memoryview(frame), frame.buffer) gives\n"
"the bytes without copying and keeps the page alive.  Frame(data) copies\n"
"data into a frame of its own (writable buffer) when copy=True, or when\n"
"copy=None and data is under copy_threshold bytes (65536); otherwise, as\n"
"pyzmq, it references data (read-only buffer; no copy when sent either).\n"
"track=True gives it a tracker: done at once for a copy, else once the\n"
"Frame and every queue it was sent to let go of data.");

static PyType_Slot Frame_slots[] = {
    {Py_tp_new, Frame_tp_new},
    {Py_tp_dealloc, Frame_dealloc},
    {Py_tp_traverse, Frame_traverse},
    {Py_tp_clear, Frame_clear},
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

PyType_Spec zm_py_frame_spec = {
    .name = "zmtp._zmtp.Frame",
    .basicsize = sizeof(FrameObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Frame_slots,
};


/* ================================================================== */
/* _SendRef: a caller's buffer queued by reference (issue 19)         */
/* ================================================================== */

/* The GIL decision (docs/decisions.md): the release hook runs wherever the
 * last queue let go of the page: a sending thread (GIL held) or the
 * progress thread (no GIL, maybe holding a socket's lock).  Taking the GIL
 * there (PyGILState_Ensure) would stall the progress thread for up to the
 * interpreter's switch interval behind any running Python thread, and
 * order the GIL after a socket lock, the reverse of a sending thread's.
 * So the hook touches no Python object's refcount: it marks the reference
 * done and pushes it on this list; a GIL-holding call drains it. */
typedef struct SendRefObject {
    PyObject_HEAD
    Py_buffer view;               /* the caller's bytes (holds the object) */
    int done;                     /* atomic: the last queue let go */
    struct SendRefObject *next;   /* on g_released */
} SendRefObject;

/* Released references not yet dropped (a Treiber stack: pushed by any
 * thread, emptied whole by an exchange under the GIL, so no ABA). */
static SendRefObject *g_released;
static size_t g_sendrefs_live; /* _SendRef objects alive (statistics) */
size_t zm_py_send_ref_min = ZM_PY_SEND_REF_MIN;

/* The external page's hook: any thread, with or without the GIL. */
static void sendref_release(void *opaque)
{
    SendRefObject *r = opaque;
    SendRefObject *head = __atomic_load_n(&g_released, __ATOMIC_RELAXED);

    /* Release: the kernel has taken the bytes before done reads 1.  Set
     * before the push: once on the list, r may be dropped at any moment. */
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    do {
        r->next = head;
    } while (!__atomic_compare_exchange_n(&g_released, &head, r, 1,
                                          __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

void zm_py_sendref_drain(void)
{
    SendRefObject *r;

    if (__atomic_load_n(&g_released, __ATOMIC_RELAXED) == NULL)
        return;
    r = __atomic_exchange_n(&g_released, NULL, __ATOMIC_ACQUIRE);
    while (r != NULL) {
        SendRefObject *next = r->next;
        /* The caller's object now: a tracker may keep r, not the view. */
        PyBuffer_Release(&r->view);
        Py_DECREF(r); /* the page's reference */
        r = next;
    }
}

zm_page *zm_py_sendref_page(zmtp_state *st, Py_buffer *view, PyObject **ref)
{
    SendRefObject *r;
    zm_page *p;

    r = PyObject_New(SendRefObject, st->SendRef_Type);
    if (r == NULL)
        return NULL;
    r->done = 0;
    r->next = NULL;
    r->view = *view; /* moved in */
    __atomic_fetch_add(&g_sendrefs_live, 1, __ATOMIC_RELAXED);
    p = zm_page_new_ext(view->buf, (size_t)view->len, sendref_release, r);
    if (p == NULL) {
        /* Give the view back to the caller, who still releases it. */
        memset(&r->view, 0, sizeof(r->view));
        Py_DECREF(r);
        PyErr_NoMemory();
        return NULL;
    }
    Py_INCREF(r); /* the page's reference, dropped by the drain */
    *ref = (PyObject *)r;
    return p;
}

static void SendRef_dealloc(SendRefObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    if (self->view.obj != NULL)
        PyBuffer_Release(&self->view);
    __atomic_fetch_sub(&g_sendrefs_live, 1, __ATOMIC_RELAXED);
    PyObject_Free(self);
    Py_DECREF(tp);
}

static PyObject *SendRef_get_done(SendRefObject *self, void *closure)
{
    int done = __atomic_load_n(&self->done, __ATOMIC_ACQUIRE);

    (void)closure;
    if (done)
        zm_py_sendref_drain(); /* the caller may now resize its buffer */
    return PyBool_FromLong(done);
}

static PyObject *SendRef_stats(PyObject *cls, PyObject *unused)
{
    size_t ext_live, ext_total;

    (void)cls;
    (void)unused;
    zm_py_sendref_drain();
    zm_ext_get_stats(&ext_live, &ext_total);
    return Py_BuildValue(
        "{s:n,s:n,s:n}", "ext_pages_live", (Py_ssize_t)ext_live,
        "ext_pages_total", (Py_ssize_t)ext_total, "send_refs_live",
        (Py_ssize_t)__atomic_load_n(&g_sendrefs_live, __ATOMIC_RELAXED));
}

static PyObject *SendRef_set_threshold(PyObject *cls, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);

    (void)cls;
    if (n < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "a size >= 0");
        return NULL;
    }
    n = n == 0 ? (Py_ssize_t)ZM_PY_SEND_REF_MIN : n;
    zm_py_send_ref_min = (size_t)n; /* the GIL orders it with the sends */
    Py_RETURN_NONE;
}

static PyGetSetDef SendRef_getset[] = {
    {"done", (getter)SendRef_get_done, NULL,
     "True once every connection's queue let go of the bytes (the kernel\n"
     "took them, or the connection went).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef SendRef_methods[] = {
    {"_stats", (PyCFunction)SendRef_stats, METH_NOARGS | METH_CLASS,
     "_stats()\n--\n\nDrain released references, then count: external "
     "pages live and ever made, _SendRef objects alive (tests: no leak)."},
    {"_set_threshold", (PyCFunction)SendRef_set_threshold,
     METH_O | METH_CLASS,
     "_set_threshold(n)\n--\n\nFrames of n bytes or more go by reference "
     "(0: the default, 65536).  For A/B measurements and tests."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot SendRef_slots[] = {
    {Py_tp_dealloc, (void *)SendRef_dealloc},
#ifndef Py_TPFLAGS_DISALLOW_INSTANTIATION
    {Py_tp_new, (void *)zm_py_refuse_new},
#endif
    {Py_tp_getset, SendRef_getset},
    {Py_tp_methods, SendRef_methods},
    {Py_tp_doc, (void *)"A frame zmtp sent by reference to the caller's "
                        "buffer (what a MessageTracker watches)."},
    {0, NULL},
};

PyType_Spec zm_py_sendref_spec = {
    .name = "zmtp._zmtp._SendRef",
    .basicsize = sizeof(SendRefObject),
    .flags = Py_TPFLAGS_DEFAULT | ZM_NO_INSTANCES,
    .slots = SendRef_slots,
};
