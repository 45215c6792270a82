/*
 * py_sockio.c - the data path of zmtp's Socket: send, send_multipart,
 * _send_many (batches and buffered sends), flush, _buffers, recv,
 * recv_into, recv_multipart, with libzmq's blocking rules (DONTWAIT,
 * SNDTIMEO / RCVTIMEO, a blocking call waits in py_wait.c).
 *
 * Owns:      the methods above (their functions and docstrings are named
 *            in py_socket.c's method table), the fast-call argument parser
 *            (zm_py_parse_fast), a send's deadline, a message being
 *            received frame by frame (SocketObject.cur), the last-send
 *            marker (zm_py_last_send).
 * May call:  Python.h, engine.h (zm_sock_send, zm_sock_recv,
 *            zm_sock_process, zm_sock_flush), py_wait.c (a call that
 *            blocks), py_errors.c; py_module.h's inline helpers (enter,
 *            leave, frames).  Everything a message passes through on its
 *            way is here or inline: no per-message call leaves this file
 *            but into the engine, or into the wait when it must block.
 * Called by: Python code through py_socket.c's method table; py_socket.c
 *            (zm_py_parse_fast for close()).  Never by the engine or the
 *            progress thread.
 */
#include "py_module.h"

#include <errno.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Fast-call argument parsing                                         */
/* ------------------------------------------------------------------ */

/* The parser: see py_module.h. */
int zm_py_parse_fast(const fast_params *p, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames, PyObject **vals)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int i;

    for (i = 0; i < p->nparams; i++)
        vals[i] = NULL;
    if (nargs > p->npos) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes at most %d positional argument%s "
                     "(%zd given)",
                     p->fname, p->npos, p->npos == 1 ? "" : "s", nargs);
        return -1;
    }
    for (i = 0; i < nargs; i++)
        vals[i] = args[i];
    for (Py_ssize_t k = 0; k < nkw; k++) {
        const char *key = PyUnicode_AsUTF8(PyTuple_GET_ITEM(kwnames, k));
        if (key == NULL)
            return -1;
        for (i = p->nposonly; i < p->nparams && strcmp(key, p->names[i]); i++)
            ;
        if (i == p->nparams) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%s'",
                         p->fname, key);
            return -1;
        }
        if (vals[i] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument '%s'",
                         p->fname, key);
            return -1;
        }
        vals[i] = args[nargs + k];
    }
    for (i = 0; i < p->nreq; i++)
        if (vals[i] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s' (pos %d)",
                         p->fname, p->names[i], i + 1);
            return -1;
        }
    return 0;
}

/* An optional argument as an int, or as its truth value (as_bool); NULL
 * (not passed) keeps *out.  0 or -1. */
static int fast_int(PyObject *v, int as_bool, int *out)
{
    long l;

    if (v == NULL)
        return 0;
    l = as_bool ? PyObject_IsTrue(v) : PyLong_AsLong(v);
    if (l == -1 && PyErr_Occurred())
        return -1;
    *out = (int)l;
    return 0;
}

/* Message tracking (pyzmq's track=True).  A frame below
 * ZM_PY_SEND_REF_MIN bytes, or a mutable buffer sent with copy=True, is
 * copied into zmtp's pages before send() returns: zmtp never references
 * the caller's buffer afterwards, so its tracking is done at once.  A large
 * frame of immutable bytes, or any large buffer with copy=False, is sent by
 * reference (send_ref below): copy=False with track=True returns a
 * MessageTracker done when every connection's queue let go of the bytes.
 * As pyzmq: send(Frame) returns the Frame's tracker (None when untracked;
 * track=True with an untracked Frame is a ValueError), copy=False returns
 * _FINISHED_TRACKER for a copied message, its own tracker for one sent
 * without a copy when tracked (else None), copy=True None. */
static int check_tracked(zmtp_state *st, PyObject *part, int track)
{
    if (track && PyObject_TypeCheck(part, st->Frame_Type) &&
        !((FrameObject *)part)->tracked) {
        PyErr_SetString(PyExc_ValueError, "Not a tracked message");
        return -1;
    }
    return 0;
}

/* MessageTracker(*refs) (a new reference), or NULL with an exception. */
PyObject *zm_py_tracker_of(PyObject *refs)
{
    PyObject *mod = PyImport_ImportModule("zmtp.sugar.tracker");
    PyObject *cls, *t;

    if (mod == NULL)
        return NULL;
    cls = PyObject_GetAttrString(mod, "MessageTracker");
    Py_DECREF(mod);
    if (cls == NULL)
        return NULL;
    t = PyObject_CallObject(cls, refs);
    Py_DECREF(cls);
    return t;
}

/* What send() returns.  refs: a tuple of the message's _SendRefs when
 * some frame went by reference, else NULL; last_ref: its last frame did. */
static PyObject *send_result(zmtp_state *st, PyObject *last, int copy,
                             int track, PyObject *refs, int last_ref)
{
    if (PyObject_TypeCheck(last, st->Frame_Type)) {
        /* its own tracker (done at once for zmtp's own copy) */
        return zm_py_frame_tracker((FrameObject *)last);
    }
    if (copy)
        Py_RETURN_NONE;
    if (track && refs != NULL)
        return zm_py_tracker_of(refs);
    if (last_ref)
        Py_RETURN_NONE; /* pyzmq: an untracked Frame's tracker */
    return zm_py_finished_tracker();
}

/* Whether a frame goes by reference: *page set (a reference to drop after
 * the send) and, for a caller's buffer, the view moved into a _SendRef
 * (*ref, a new reference); else both NULL and the frame is copied.  A
 * received zero-copy Frame (zmtp's read page) goes by reference too: a
 * proxy forwards large frames without a copy.  Always 0 today (out of
 * memory for the reference: the frame is copied); -1 would carry an
 * exception. */
/* copy=False: the socket's copy_threshold (pyzmq's attribute, 65536 by
 * default; zmtp.Socket keeps it in Python, so it is read only for
 * copy=False sends), or the process's threshold when it is unreadable. */
static size_t copy_false_threshold(SocketObject *self)
{
    static PyObject *name; /* interned once, kept */
    PyObject *v;
    Py_ssize_t n = -1;

    if (name == NULL && (name = PyUnicode_InternFromString(
                             "copy_threshold")) == NULL) {
        PyErr_Clear();
        return zm_py_send_ref_min;
    }
    v = PyObject_GetAttr((PyObject *)self, name);
    if (v != NULL && PyLong_Check(v))
        n = PyLong_AsSsize_t(v);
    Py_XDECREF(v);
    if (n < 0) {
        PyErr_Clear();
        return zm_py_send_ref_min;
    }
    return n == 0 ? 1 : (size_t)n; /* 0: every non-empty frame */
}

static int send_ref(SocketObject *self, PyObject *obj, Py_buffer *view,
                    int copy, zm_page **page, PyObject **ref)
{
    zmtp_state *st = self->st;
    size_t min = copy ? zm_py_send_ref_min : copy_false_threshold(self);

    *page = NULL;
    *ref = NULL;
    if (view->len == 0 || (size_t)view->len < min)
        return 0;
    if (PyObject_TypeCheck(obj, st->Frame_Type)) {
        /* Only a received Frame (read-only): Frame(data)'s buffer is
         * writable and its tracker says done at once, so it is copied. */
        zm_frame *f = &((FrameObject *)obj)->f;
        if (!((FrameObject *)obj)->owned && f->page != NULL &&
            (const void *)f->data == view->buf) {
            zm_page_incref(f->page);
            *page = f->page;
        }
        return 0;
    }
    if (copy && !PyBytes_CheckExact(obj))
        return 0; /* a mutable buffer is copied, as pyzmq's copy=True */
    *page = zm_py_sendref_page(st, view, ref);
    if (*page == NULL) {
        /* Out of memory for the holder: copy instead (that path reports a
         * real shortage, and a multipart message is never left cut). */
        PyErr_Clear();
        return 0;
    }
    memset(view, 0, sizeof(*view)); /* moved: PyBuffer_Release skips it */
    return 0;
}

/* The last-send marker: see py_module.h. */
_Thread_local const void *zm_py_last_send;

/* ------------------------------------------------------------------ */
/* Deadlines, waiting                                                 */
/* ------------------------------------------------------------------ */

/* SNDTIMEO as a deadline fixed at the first wait: a send that does not
 * block reads no clock for it. */
typedef struct {
    int ms;      /* -1: forever */
    int fixed;
    int64_t at;  /* when fixed: the deadline, -1 for none */
} lazy_deadline;

static lazy_deadline lazy_deadline_in(int ms)
{
    lazy_deadline d = {ms, 0, -1};
    return d;
}

static int64_t lazy_deadline_at(lazy_deadline *d)
{
    if (!d->fixed) {
        d->at = deadline_from_ms(d->ms);
        d->fixed = 1;
    }
    return d->at;
}

static int sock_wait(SocketObject *self, int64_t deadline)
{
    return zm_py_wait_sockets(self->st, &self, 1, NULL, NULL, 0, deadline, 0);
}

/* ------------------------------------------------------------------ */
/* Send                                                               */
/* ------------------------------------------------------------------ */

static const char *send_errmsg(int rc)
{
    switch (-rc) {
    case ZM_EFSM:
        return "Operation cannot be accomplished in current state";
    case ENOTSUP:
        return "Operation not supported by this socket type";
    case EHOSTUNREACH:
        return "Host unreachable (no peer with that routing id)";
    case EAGAIN:
        return "Resource temporarily unavailable";
    default:
        return NULL;
    }
}

/* Send one frame with the socket's blocking rules; 0 or -1 (exception). */
static int sock_send_frame(SocketObject *self, zm_page *ref,
                           const void *data, size_t n, int flags,
                           lazy_deadline *dl)
{
    int64_t deadline;
    int rc, more = (flags & Z_SNDMORE) != 0;

    for (;;) {
        rc = ref != NULL ? zm_sock_send_ref(&self->s, ref, data, n, more)
                         : zm_sock_send(&self->s, data, n, more);
        if (rc != -EAGAIN && rc != -EHOSTUNREACH)
            break;
        /* Maybe the peer is on its way (handshake pending): step once. */
        zm_sock_process(&self->s, zm_now_ns());
        rc = ref != NULL ? zm_sock_send_ref(&self->s, ref, data, n, more)
                         : zm_sock_send(&self->s, data, n, more);
        if (rc != -EAGAIN)
            break;
        if (flags & Z_DONTWAIT)
            break;
        deadline = lazy_deadline_at(dl);
        if (deadline >= 0 && zm_now_ns() >= deadline)
            break;
        if (sock_wait(self, deadline) < 0)
            return -1;
    }
    if (rc < 0) {
        if (rc == -ENOMEM) {
            PyErr_NoMemory();
            return -1;
        }
        zm_py_raise_zmq(self->st, -rc, send_errmsg(rc));
        return -1;
    }
    return 0;
}

/* send(data, flags=0, copy=True, track=False) and send_multipart(msg_parts,
 * ...): pyzmq's parameter names. */
static const fast_params send_params = {
    .fname = "send", .nparams = 4, .npos = 4, .nreq = 1,
    .names = {"data", "flags", "copy", "track"}};
static const fast_params send_multipart_params = {
    .fname = "send_multipart", .nparams = 4, .npos = 4, .nreq = 1,
    .names = {"msg_parts", "flags", "copy", "track"}};

static int parse_send_args(const fast_params *p, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames,
                           PyObject **data, int *flags, int *copy, int *track)
{
    PyObject *vals[4];

    if (zm_py_parse_fast(p, args, nargs, kwnames, vals) < 0)
        return -1;
    *data = vals[0];
    *flags = 0;
    *copy = 1;
    *track = 0;
    if (fast_int(vals[1], 0, flags) < 0 || fast_int(vals[2], 1, copy) < 0 ||
        fast_int(vals[3], 1, track) < 0)
        return -1;
    return 0;
}

static int get_send_buffer(zmtp_state *st, PyObject *obj, Py_buffer *view)
{
    (void)st;
    if (PyUnicode_Check(obj)) {
        PyErr_SetString(PyExc_TypeError,
                        "str objects cannot be sent: encode them first, or "
                        "use send_string()");
        return -1;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "a bytes-like object is required to send, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}

ZM_PY_DOC(zm_py_sock_send_doc,
"send(data, flags=0, copy=True, track=False)\n--\n\n"
"Send one frame (bytes-like or Frame).  flags: SNDMORE (more frames of the\n"
"same message follow), DONTWAIT (raise Again instead of waiting).\n"
"Frames of 64 KiB or more go without a copy when the data is bytes, or\n"
"any buffer with copy=False: the buffer is kept until the kernel took it\n"
"(change it only once the tracker is done).  Returns None, or as pyzmq a\n"
"MessageTracker: copy=False with track=True of a frame sent without a\n"
"copy, done once written; a copied frame with copy=False, or a tracked\n"
"Frame: done at once (track=True with an untracked Frame raises\n"
"ValueError).");

PyObject *zm_py_sock_send(SocketObject *self, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *data, *ref, *refs = NULL, *res = NULL;
    int flags, copy, track, rc;
    Py_buffer view;
    zm_page *page;
    const void *buf;
    size_t n;

    if (parse_send_args(&send_params, args, nargs, kwnames, &data, &flags,
                        &copy, &track) < 0)
        return NULL;
    if (check_tracked(self->st, data, track) < 0)
        return NULL;
    if (get_send_buffer(self->st, data, &view) < 0)
        return NULL;
    buf = view.buf;
    n = (size_t)view.len;
    if (send_ref(self, data, &view, copy, &page, &ref) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (sock_enter(self) < 0) {
        rc = -1;
    } else {
        lazy_deadline dl = lazy_deadline_in(self->sndtimeo);
        rc = sock_send_frame(self, page, buf, n, flags, &dl);
        if (rc == 0)
            zm_py_last_send = self;
        sock_leave(self);
    }
    if (page != NULL)
        zm_page_decref(page); /* the queues hold theirs */
    PyBuffer_Release(&view);
    zm_py_sendref_drain();
    if (rc == 0 && (ref == NULL || (refs = PyTuple_Pack(1, ref)) != NULL))
        res = send_result(self->st, data, copy, track, refs, ref != NULL);
    Py_XDECREF(refs);
    Py_XDECREF(ref);
    return res;
}

ZM_PY_DOC(zm_py_sock_send_multipart_doc,
"send_multipart(msg_parts, flags=0, copy=True, track=False)\n--\n\n"
"Send a whole message (a sequence of bytes-like objects) atomically.");

/* The frames of one message, as buffers, all checked before any is sent
 * (a bad frame must not leave half a message on the wire).  Up to 8 live
 * on the stack. */
typedef struct {
    PyObject *seq;
    Py_buffer small[8];
    Py_buffer *views;
    Py_ssize_t n, got;
} msg_frames;

static void frames_release(msg_frames *fr)
{
    for (Py_ssize_t i = 0; i < fr->got; i++)
        PyBuffer_Release(&fr->views[i]);
    if (fr->views != fr->small)
        PyMem_Free(fr->views);
    Py_CLEAR(fr->seq);
}

/* 0, or -1 with an exception (fr released either way on failure). */
static int frames_get(zmtp_state *st, PyObject *parts, const char *what,
                      msg_frames *fr)
{
    fr->views = fr->small;
    fr->got = 0;
    fr->seq = PySequence_Fast(parts, what);
    if (fr->seq == NULL)
        return -1;
    fr->n = PySequence_Fast_GET_SIZE(fr->seq);
    if (fr->n == 0) {
        PyErr_SetString(PyExc_ValueError, "a message has at least one frame");
        goto fail;
    }
    if (fr->n > 8 && (fr->views = PyMem_New(Py_buffer, (size_t)fr->n)) == NULL) {
        fr->views = fr->small;
        PyErr_NoMemory();
        goto fail;
    }
    /* The views are the snapshot: each holds a reference to its object,
     * and all are taken before the GIL is released to wait.  (Taking a
     * view may run Python code, a __buffer__ method, which could change
     * the list: the item is held and the length checked each time.) */
    for (; fr->got < fr->n; fr->got++) {
        PyObject *item;
        int rc;
        if (fr->got >= PySequence_Fast_GET_SIZE(fr->seq)) {
            PyErr_SetString(PyExc_RuntimeError,
                            "the message changed size while being read");
            goto fail;
        }
        item = PySequence_Fast_GET_ITEM(fr->seq, fr->got);
        Py_INCREF(item);
        rc = get_send_buffer(st, item, &fr->views[fr->got]);
        if (rc < 0) {
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            PyErr_Format(PyExc_TypeError,
                         "frame %zd of the message: a bytes-like object is "
                         "required, not %.100s",
                         fr->got, Py_TYPE(item)->tp_name);
            Py_XDECREF(t);
            Py_XDECREF(v);
            Py_XDECREF(tb);
        }
        Py_DECREF(item);
        if (rc < 0)
            goto fail;
    }
    return 0;
fail:
    frames_release(fr);
    return -1;
}

/* Send the frames as one message (the socket entered).  Only the first
 * frame can block: the rest follow it.  Large frames go by reference
 * (send_ref); with refs != NULL, their _SendRefs are appended to it (a
 * list) and *last_ref says whether the last frame went so. */
static int frames_send(SocketObject *self, msg_frames *fr, int flags,
                       lazy_deadline *dl, int copy, PyObject *refs,
                       int *last_ref)
{
    int rc = 0;

    for (Py_ssize_t i = 0; i < fr->n && rc == 0; i++) {
        int f = (flags & Z_DONTWAIT) |
                (i + 1 < fr->n ? Z_SNDMORE : (flags & Z_SNDMORE));
        const void *buf = fr->views[i].buf;
        size_t n = (size_t)fr->views[i].len;
        zm_page *page;
        PyObject *ref;
        if (send_ref(self, PySequence_Fast_GET_ITEM(fr->seq, i),
                     &fr->views[i], copy, &page, &ref) < 0)
            return -1;
        rc = sock_send_frame(self, page, buf, n, f, dl);
        if (page != NULL)
            zm_page_decref(page); /* the queues hold theirs */
        if (last_ref != NULL)
            *last_ref = ref != NULL;
        if (ref != NULL && refs != NULL && PyList_Append(refs, ref) < 0)
            rc = -1;
        Py_XDECREF(ref);
    }
    return rc;
}

PyObject *zm_py_sock_send_multipart(SocketObject *self,
                                    PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    PyObject *parts, *res = NULL, *refs;
    msg_frames fr;
    int flags, copy, track, rc, last_ref = 0;

    if (parse_send_args(&send_multipart_params, args, nargs, kwnames, &parts,
                        &flags, &copy, &track) < 0)
        return NULL;
    if (PyUnicode_Check(parts) || PyBytes_Check(parts)) {
        PyErr_SetString(PyExc_TypeError,
                        "send_multipart() takes a sequence of frames "
                        "(e.g. [b'a', b'b']), not a single bytes or str");
        return NULL;
    }
    if (frames_get(self->st, parts,
                   "send_multipart() takes a sequence of frames", &fr) < 0)
        return NULL;
    for (Py_ssize_t i = 0; i < fr.n; i++) {
        if (check_tracked(self->st, PySequence_Fast_GET_ITEM(fr.seq, i),
                          track) < 0) {
            frames_release(&fr);
            return NULL;
        }
    }
    if ((refs = PyList_New(0)) == NULL) {
        frames_release(&fr);
        return NULL;
    }
    if (sock_enter(self) < 0) {
        Py_DECREF(refs);
        frames_release(&fr);
        return NULL;
    }
    lazy_deadline dl = lazy_deadline_in(self->sndtimeo);
    rc = frames_send(self, &fr, flags, &dl, copy, refs, &last_ref);
    if (rc == 0)
        zm_py_last_send = self;
    sock_leave(self);
    zm_py_sendref_drain();
    if (rc == 0) { /* pyzmq: the last frame's send result; a tracker
                      watches every frame sent by reference */
        PyObject *t = PyList_GET_SIZE(refs) > 0 ? PyList_AsTuple(refs) : NULL;
        if (t != NULL || PyList_GET_SIZE(refs) == 0)
            res = send_result(self->st,
                              PySequence_Fast_GET_ITEM(fr.seq, fr.n - 1),
                              copy, track, t, last_ref);
        Py_XDECREF(t);
    }
    Py_DECREF(refs);
    frames_release(&fr);
    return res;
}


/* ------------------------------------------------------------------ */
/* Batches, buffered sends, buffer sizes                              */
/* ------------------------------------------------------------------ */

/* Send one message of a batch: a bytes-like object (one frame) or a
 * list or tuple of them (a multipart message).  0, or -1 with an
 * exception. */
static int send_one_of_many(SocketObject *self, PyObject *m, int flags,
                            lazy_deadline *dl)
{
    msg_frames fr;
    int rc;

    if (!PyList_Check(m) && !PyTuple_Check(m)) {
        Py_buffer view;
        if (get_send_buffer(self->st, m, &view) < 0)
            return -1;
        rc = sock_send_frame(self, NULL, view.buf, (size_t)view.len, flags,
                             dl);
        PyBuffer_Release(&view);
        return rc;
    }
    if (frames_get(self->st, m, "a message is bytes or a sequence of frames",
                   &fr) < 0)
        return -1;
    rc = frames_send(self, &fr, flags, dl, 1, NULL, NULL);
    frames_release(&fr);
    zm_py_sendref_drain();
    return rc;
}

/*
 * The batch as it is now: a new tuple whose multipart messages (lists) are
 * tuples too.  Each wait for room in _send_many releases the GIL, and
 * another thread may then change the caller's lists (shrink, clear: items
 * read through them after a wait were out of bounds, or freed); the
 * snapshot holds its own references and cannot change.  NULL with an
 * exception.
 */
static PyObject *batch_snapshot(PyObject *msgs)
{
    PyObject *seq, *out;
    Py_ssize_t n, i;

    seq = PySequence_Fast(msgs, "send_batch() takes a sequence of messages");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    out = PyTuple_New(n);
    for (i = 0; out != NULL && i < n; i++) {
        PyObject *m;
        /* An allocation may run a finaliser that changes the list. */
        if (i >= PySequence_Fast_GET_SIZE(seq)) {
            PyErr_SetString(PyExc_RuntimeError,
                            "send_batch(): the batch changed size while being "
                            "read");
            Py_CLEAR(out);
            break;
        }
        m = PySequence_Fast_GET_ITEM(seq, i);
        if (PyList_Check(m))
            m = PyList_AsTuple(m);
        else
            Py_INCREF(m);
        if (m == NULL)
            Py_CLEAR(out);
        else
            PyTuple_SET_ITEM(out, i, m);
    }
    Py_DECREF(seq);
    return out;
}

ZM_PY_DOC(zm_py_sock_send_many_doc,
"_send_many(messages, flags, hold, /)\n--\n\n"
"Queue several messages as one burst; write them with one flush (hold=0)\n"
"or keep them for flush() (hold=1).  Returns how many were queued; with\n"
"DONTWAIT it stops early (no exception) at the first that would block.");

PyObject *zm_py_sock_send_many(SocketObject *self, PyObject *args)
{
    PyObject *msgs, *seq;
    int flags, hold, rc = 0;
    Py_ssize_t n, i, sent = 0;
    lazy_deadline dl;

    if (!PyArg_ParseTuple(args, "Oip:_send_many", &msgs, &flags, &hold))
        return NULL;
    if (PyBytes_Check(msgs) || PyUnicode_Check(msgs)) {
        PyErr_SetString(PyExc_TypeError,
                        "send_batch() takes a sequence of messages, not a "
                        "single bytes or str");
        return NULL;
    }
    if ((seq = batch_snapshot(msgs)) == NULL)
        return NULL;
    n = PyTuple_GET_SIZE(seq);
    if (sock_enter(self) < 0) {
        Py_DECREF(seq);
        return NULL;
    }
    dl = lazy_deadline_in(self->sndtimeo); /* one for the whole batch */
    self->s.coalesce = 1; /* one burst, whatever came before */
    self->s.hold = 1;
    for (i = 0; i < n && rc == 0; i++) {
        rc = send_one_of_many(self, PyTuple_GET_ITEM(seq, i),
                              flags & Z_DONTWAIT, &dl);
        if (rc == 0)
            sent++;
    }
    self->s.hold = 0;
    if (!hold)
        zm_sock_flush(&self->s, -1);
    if (sent > 0)
        zm_py_last_send = self;
    sock_leave(self);
    Py_DECREF(seq);
    if (rc < 0) {
        if ((flags & Z_DONTWAIT) && sent > 0 &&
            PyErr_ExceptionMatches(self->st->Again)) {
            PyErr_Clear(); /* the caller sees the count */
        } else {
            return NULL;
        }
    }
    return PyLong_FromSsize_t(sent);
}

ZM_PY_DOC(zm_py_sock_flush_doc,
"flush()\n--\n\n"
"Write now what send_buffered() (or coalescing) holds back.");

PyObject *zm_py_sock_flush(SocketObject *self, PyObject *unused)
{
    (void)unused;
    if (sock_enter(self) < 0)
        return NULL;
    zm_sock_flush(&self->s, -1);
    sock_leave(self);
    Py_RETURN_NONE;
}

ZM_PY_DOC(zm_py_sock_buffers_doc,
"_buffers(read_buf_size=-1, write_buf_size=-1, auto=-1, /)\n--\n\n"
"Set (values >= 0) and return (read_buf_size, write_buf_size, auto): the\n"
"read page of new connections, the coalescing write size, and whether\n"
"the write size follows the message sizes.  See zmtp.BufferConfig.");

PyObject *zm_py_sock_buffers(SocketObject *self, PyObject *args)
{
    Py_ssize_t r = -1, w = -1;
    int a = -1;
    PyObject *out;

    if (!PyArg_ParseTuple(args, "|nni:_buffers", &r, &w, &a))
        return NULL;
    if (r >= 0 && (r < (Py_ssize_t)ZM_PAGE_SIZE_MIN ||
                   (size_t)r > ZM_PAGE_SIZE_MAX)) {
        PyErr_Format(PyExc_ValueError,
                     "read_buf_size must be %zu..%zu bytes, not %zd",
                     ZM_PAGE_SIZE_MIN, ZM_PAGE_SIZE_MAX, r);
        return NULL;
    }
    if (w >= 0 && (w < 1 || w > (1 << 24))) {
        PyErr_Format(PyExc_ValueError,
                     "write_buf_size must be 1..16777216 bytes, not %zd", w);
        return NULL;
    }
    if (sock_enter(self) < 0)
        return NULL;
    if (r >= 0)
        self->s.read_buf_size = (size_t)r;
    if (w >= 0)
        self->s.write_buf_size = (size_t)w;
    if (a >= 0)
        self->s.auto_write = a != 0;
    out = Py_BuildValue("nni", (Py_ssize_t)self->s.read_buf_size,
                        (Py_ssize_t)self->s.write_buf_size, self->s.auto_write);
    sock_leave(self);
    return out;
}

/* ------------------------------------------------------------------ */
/* Receive                                                            */
/* ------------------------------------------------------------------ */

/* recv(flags=0, copy=True, track=False) and recv_multipart(...). */
static const fast_params recv_params = {
    .fname = "recv", .nparams = 3, .npos = 3,
    .names = {"flags", "copy", "track"}};
static const fast_params recv_multipart_params = {
    .fname = "recv_multipart", .nparams = 3, .npos = 3,
    .names = {"flags", "copy", "track"}};

static int parse_recv_args(const fast_params *p, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames, int *flags,
                           int *copy)
{
    PyObject *vals[3];
    int track = 0;

    if (zm_py_parse_fast(p, args, nargs, kwnames, vals) < 0)
        return -1;
    *flags = 0;
    *copy = 1;
    /* track is accepted and changes nothing: a received frame is zmtp's
     * own memory, with no sender's buffer to track. */
    if (fast_int(vals[0], 0, flags) < 0 || fast_int(vals[1], 1, copy) < 0 ||
        fast_int(vals[2], 1, &track) < 0)
        return -1;
    return 0;
}

/* Make sure self->cur holds a message with frames left; 0 or -1. */
static int sock_fill_current(SocketObject *self, int flags)
{
    const unsigned char *prefix;
    size_t plen;
    int64_t deadline = -1;
    int rc, waited = 0;

    if (self->cur_idx < self->cur.n || self->cur_has_prefix)
        return 0;
    zm_msg_clear(&self->cur);
    self->cur_idx = 0;
    for (;;) {
        rc = zm_sock_recv(&self->s, &self->cur, &prefix, &plen);
        if (rc == -EAGAIN) {
            zm_sock_process(&self->s, zm_now_ns());
            rc = zm_sock_recv(&self->s, &self->cur, &prefix, &plen);
        }
        if (rc != -EAGAIN)
            break;
        if (flags & Z_DONTWAIT)
            break;
        if (!waited) {
            deadline = deadline_from_ms(self->rcvtimeo);
            waited = 1;
        }
        if (deadline >= 0 && zm_now_ns() >= deadline)
            break;
        if (sock_wait(self, deadline) < 0)
            return -1;
    }
    if (rc < 0) {
        /* A failed receive hands out nothing (the engine left the message
         * queued, whole): no frame of it may stay in cur. */
        zm_msg_clear(&self->cur);
        if (rc == -ENOMEM)
            PyErr_NoMemory(); /* as a send that runs out of memory */
        else
            zm_py_raise_zmq(self->st, -rc, send_errmsg(rc));
        return -1;
    }
    if (prefix != NULL) {
        memcpy(self->cur_prefix, prefix, plen);
        self->cur_prefix_len = plen;
        self->cur_has_prefix = 1;
    }
    /* Its connection's properties (Frame.get): borrowed for this call,
     * a reference taken only if a Frame or a later call needs them, so a
     * copying receive pays no atomic operation for them. */
    props_clear(&self->cur_props);
    self->cur_props_src = self->s.recv_props;
    return 0;
}

/* The properties of the message in cur, kept beyond this call. */
static void sock_props_keep(SocketObject *self)
{
    if (self->cur_props == NULL && self->cur_props_src != NULL) {
        zm_page_incref(self->cur_props_src);
        self->cur_props = self->cur_props_src;
    }
    self->cur_props_src = NULL;
}

/*
 * Take the next frame of the message being received (sock_fill_current
 * made sure there is one) and set rcvmore: the one place that steps
 * through self->cur.  The frame is moved out (self->cur no longer holds
 * its page reference: the caller releases it).  A ROUTER's routing-id
 * prefix comes first; it has no page (it is never empty): its bytes are
 * self->cur_prefix, valid until the next receive.
 */
static zm_frame sock_next_frame(SocketObject *self)
{
    zm_frame f;

    if (self->cur_has_prefix) {
        self->cur_has_prefix = 0;
        f.page = NULL;
        f.data = self->cur_prefix;
        f.size = self->cur_prefix_len;
        f.flags = ZM_FLAG_MORE;
        self->rcvmore = 1;
        return f;
    }
    f = zm_msg_frames(&self->cur)[self->cur_idx];
    zm_msg_frames(&self->cur)[self->cur_idx].page = NULL; /* moved out */
    self->cur_idx++;
    self->rcvmore = self->cur_idx < self->cur.n;
    if (self->rcvmore)
        f.flags |= ZM_FLAG_MORE;
    else
        f.flags &= ~ZM_FLAG_MORE;
    return f;
}

/* A copying receive (recv(), copy=True) of a frame this large in a mapped
 * page of its own gives the copied part of the page back to the kernel as
 * it goes (zm_page_discard), 1 MiB at a time: the frame and its bytes copy
 * are never both resident (a 64 MiB frame peaked at twice its size).
 * Smaller frames keep their mapping whole for the next big frame (arena.c:
 * a fresh page costs a fault). */
#define ZM_COPY_DISCARD_MIN ((size_t)32 << 20)
#define ZM_COPY_DISCARD_STEP ((size_t)1 << 20)

/* bytes of a frame; a huge one's page given back as it is copied. */
static PyObject *frame_to_bytes(zm_frame *f)
{
    PyObject *obj;
    char *dst;
    size_t done, n, given = 0, off;

    if (f->size < ZM_COPY_DISCARD_MIN || f->page == NULL ||
        f->page->map_len == 0 || f->page->ext ||
        !zm_page_is_exclusive(f->page))
        return PyBytes_FromStringAndSize((const char *)f->data,
                                         (Py_ssize_t)f->size);
    obj = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)f->size);
    if (obj == NULL)
        return NULL;
    dst = PyBytes_AS_STRING(obj);
    off = (size_t)(f->data - f->page->data);
    for (done = 0; done < f->size; done += n) {
        n = f->size - done < ZM_COPY_DISCARD_STEP ? f->size - done
                                                  : ZM_COPY_DISCARD_STEP;
        memcpy(dst + done, f->data + done, n);
        given = zm_page_discard(f->page, given > off ? given : off,
                                off + done + n);
    }
    return obj;
}

/* The next frame as bytes (copy) or as a zero-copy Frame; sets rcvmore. */
static PyObject *sock_take_frame(SocketObject *self, int copy)
{
    zm_frame f = sock_next_frame(self);
    PyObject *obj;

    if (copy) {
        obj = frame_to_bytes(&f);
        zm_frame_release(&f); /* the page can be reused at once */
        return obj;
    }
    /* The prefix lives in the socket: a Frame needs a page of its own. */
    if (f.page == NULL && f.size > 0 &&
        frame_fill_copy(&f, f.data, f.size, f.flags) < 0)
        return NULL;
    obj = frame_new_from(self->st->Frame_Type, &f);
    sock_props_keep(self);
    if (obj != NULL && self->cur_props != NULL) {
        zm_page_incref(self->cur_props);
        ((FrameObject *)obj)->props = self->cur_props;
    }
    return obj;
}

ZM_PY_DOC(zm_py_sock_recv_doc,
"recv(flags=0, copy=True, track=False)\n--\n\n"
"Receive one frame: bytes, or a zero-copy Frame with copy=False.  RCVMORE\n"
"(or frame.more) says whether more frames of the message follow.");

PyObject *zm_py_sock_recv(SocketObject *self, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames)
{
    int flags, copy;
    PyObject *out = NULL;

    if (parse_recv_args(&recv_params, args, nargs, kwnames, &flags, &copy) < 0)
        return NULL;
    if (sock_enter(self) < 0)
        return NULL;
    if (sock_fill_current(self, flags) == 0) {
        out = sock_take_frame(self, copy);
        if (self->rcvmore)
            sock_props_keep(self); /* for the next frames' calls */
    }
    sock_leave(self);
    return out;
}

ZM_PY_DOC(zm_py_sock_recv_into_doc,
"recv_into(buffer, /, *, nbytes=0, flags=0)\n--\n\n"
"Receive one frame into a writable, contiguous buffer (one copy, no bytes\n"
"object) and return the frame's size.  At most nbytes are written (the\n"
"buffer's size when 0); a longer frame is truncated and its rest dropped:\n"
"a return value larger than that says so.  RCVMORE is set as by recv().");

PyObject *zm_py_sock_recv_into(SocketObject *self, PyObject *const *args,
                               Py_ssize_t nargs, PyObject *kwnames)
{
    static const fast_params params = {
        .fname = "recv_into", .nparams = 3, .nposonly = 1, .npos = 1,
        .nreq = 1, .names = {"buffer", "nbytes", "flags"}};
    PyObject *vals[3];
    Py_ssize_t nbytes = 0, size = -1;
    int flags = 0;
    Py_buffer view;

    if (zm_py_parse_fast(&params, args, nargs, kwnames, vals) < 0 ||
        fast_int(vals[2], 0, &flags) < 0)
        return NULL;
    if (vals[1] != NULL &&
        (nbytes = PyLong_AsSsize_t(vals[1])) == -1 && PyErr_Occurred())
        return NULL;
    if (nbytes < 0) {
        PyErr_Format(PyExc_ValueError, "nbytes=%zd must be non-negative",
                     nbytes);
        return NULL;
    }
    if (PyObject_GetBuffer(vals[0], &view, PyBUF_WRITABLE) < 0)
        return NULL;
    if (nbytes == 0)
        nbytes = view.len;
    else if (nbytes > view.len) {
        PyErr_Format(PyExc_ValueError,
                     "nbytes=%zd too big for memoryview of %zdB", nbytes,
                     view.len);
        PyBuffer_Release(&view);
        return NULL;
    }
    if (sock_enter(self) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (sock_fill_current(self, flags) == 0) {
        zm_frame f = sock_next_frame(self);
        size = (Py_ssize_t)f.size;
        if (size > 0)
            memcpy(view.buf, f.data, (size_t)(size < nbytes ? size : nbytes));
        zm_frame_release(&f);
        if (self->rcvmore)
            sock_props_keep(self); /* for the next frames' calls */
    }
    sock_leave(self);
    PyBuffer_Release(&view);
    return size < 0 ? NULL : PyLong_FromSsize_t(size);
}

ZM_PY_DOC(zm_py_sock_recv_multipart_doc,
"recv_multipart(flags=0, copy=True, track=False)\n--\n\n"
"Receive a whole message as a list of bytes (or Frames with copy=False).");

PyObject *zm_py_sock_recv_multipart(SocketObject *self,
                                    PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    int flags, copy;
    PyObject *list = NULL, *obj;

    if (parse_recv_args(&recv_multipart_params, args, nargs, kwnames, &flags,
                        &copy) < 0)
        return NULL;
    if (sock_enter(self) < 0)
        return NULL;
    if (sock_fill_current(self, flags) < 0)
        goto done;
    list = PyList_New(0);
    if (list == NULL)
        goto done;
    do {
        obj = sock_take_frame(self, copy);
        if (obj == NULL || PyList_Append(list, obj) < 0) {
            Py_XDECREF(obj);
            Py_CLEAR(list);
            goto done;
        }
        Py_DECREF(obj);
    } while (self->rcvmore);
done:
    sock_leave(self);
    return list;
}
