/*
 * _zmtpmodule.c - the CPython face of the C core: module state, heap types,
 * argument parsing and errors.  The only file that includes Python.h.
 *
 * Types:   Frame    a zero-copy slice of a read page (buffer protocol)
 *          Decoder  the incremental ZMTP decoder (codec.h), sans-IO
 * Funcs:   encode_* ZMTP encoders returning bytes; zm_py_parse_command;
 *          zm_py_parse_subscription_message; zm_py_memory_stats; strerror
 */
#include "py_module.h"

#include <structmember.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ================================================================== */
/* Fast-call argument parsing                                         */
/* ================================================================== */

/*
 * The one fast-call (METH_FASTCALL | METH_KEYWORDS) parser, with CPython's
 * rules: names[i] may be passed by position when i < npos, and by keyword
 * unless i < nposonly (before a "/"); the first nreq are required; a
 * parameter given twice (by position and keyword, or twice by keyword) is
 * a TypeError.  vals[i] gets
 * the argument (borrowed) or NULL when it was not passed.
 */
#define FAST_PARAMS_MAX 4

typedef struct {
    const char *fname;
    int nparams, nposonly, npos, nreq;
    const char *names[FAST_PARAMS_MAX];
} fast_params;

static int parse_fast(const fast_params *p, PyObject *const *args,
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

/* track=True is refused (messages are copied when sent); 0 or -1. */
static int fast_no_track(PyObject *v)
{
    int track = 0;

    if (fast_int(v, 1, &track) < 0)
        return -1;
    if (track) {
        PyErr_SetString(PyExc_NotImplementedError,
                        "track=True: message tracking is not supported by "
                        "zmtp (messages are copied when sent)");
        return -1;
    }
    return 0;
}

/* ================================================================== */
/* Errors for sockets                                                 */
/* ================================================================== */

/* EINVAL for a socket option setsockopt/getsockopt do not know: named
 * when it is a libzmq option zmtp does not implement. */
static PyObject *raise_bad_option(zmtp_state *st, long opt)
{
    char msg[160];
    PyObject *key, *name = NULL;

    key = PyLong_FromLong(opt);
    if (key == NULL)
        return NULL;
    if (st->option_names != NULL)
        name = PyDict_GetItemWithError(st->option_names, key); /* borrowed */
    Py_DECREF(key);
    if (name == NULL && PyErr_Occurred())
        return NULL;
    if (name != NULL && PyUnicode_Check(name))
        snprintf(msg, sizeof(msg),
                 "Invalid argument: zmtp does not implement socket option "
                 "%.60s (%ld) yet",
                 PyUnicode_AsUTF8(name), opt);
    else
        snprintf(msg, sizeof(msg),
                 "Invalid argument: socket option %ld is not supported by zmtp",
                 opt);
    return zm_py_raise_zmq(st, EINVAL, msg);
}

PyDoc_STRVAR(set_option_names_doc,
"_set_option_names(names, /)\n--\n\n"
"Called once by zmtp.constants: {number: name} of the libzmq socket\n"
"options zmtp does not implement (their errors name them).");

static PyObject *set_option_names(PyObject *module, PyObject *names)
{
    if (!PyDict_Check(names)) {
        PyErr_SetString(PyExc_TypeError, "a dict {number: name} expected");
        return NULL;
    }
    Py_INCREF(names);
    Py_XSETREF(get_state(module)->option_names, names);
    Py_RETURN_NONE;
}

/* ================================================================== */
/* Socket                                                             */
/* ================================================================== */

/* Socket options (libzmq numbers) used by the C layer. */
#define ZO_ROUTING_ID 5
#define ZO_SUBSCRIBE 6
#define ZO_UNSUBSCRIBE 7
#define ZO_RCVMORE 13
#define ZO_FD 14
#define ZO_EVENTS 15
#define ZO_TYPE 16
#define ZO_LINGER 17
#define ZO_RECONNECT_IVL 18
#define ZO_MAXMSGSIZE 22
#define ZO_SNDHWM 23
#define ZO_RCVHWM 24
#define ZO_RCVTIMEO 27
#define ZO_SNDTIMEO 28
#define ZO_LAST_ENDPOINT 32
#define ZO_ROUTER_MANDATORY 33
#define ZO_IMMEDIATE 39
#define ZO_XPUB_VERBOSE 40
#define ZO_RECONNECT_IVL_MAX 21
#define ZO_HANDSHAKE_IVL 66
#define ZO_HEARTBEAT_IVL 75
#define ZO_HEARTBEAT_TTL 76
#define ZO_HEARTBEAT_TIMEOUT 77

static PyObject *Socket_tp_new(PyTypeObject *tp, PyObject *args, PyObject *kw);

/* Module state from a Socket (sub)class: walk up to the spec-made base. */
static zmtp_state *socket_type_state(PyTypeObject *tp)
{
    while (tp->tp_base != NULL && tp->tp_base->tp_new == Socket_tp_new)
        tp = tp->tp_base;
    return (zmtp_state *)PyType_GetModuleState(tp);
}

static PyObject *Socket_tp_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    SocketObject *self = (SocketObject *)tp->tp_alloc(tp, 0);

    (void)args;
    (void)kw;
    if (self == NULL)
        return NULL;
    self->st = socket_type_state(tp);
    self->closed = 1; /* until __init__ */
    zm_msg_init(&self->cur);
    return (PyObject *)self;
}

static int Socket_init(SocketObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"socket_type", "progress", NULL};
    int type, rc;
    PyObject *progress = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "i|O:Socket", kwlist, &type,
                                     &progress))
        return -1;
    if (progress != Py_None &&
        !PyObject_TypeCheck(progress, self->st->Progress_Type)) {
        PyErr_SetString(PyExc_TypeError, "progress must be a zmtp._zmtp.Progress");
        return -1;
    }
    if (self->initialized) {
        PyErr_SetString(PyExc_RuntimeError, "Socket already initialised");
        return -1;
    }
    if (zm_socktype_name(type) == NULL) {
        zm_py_raise_zmq(self->st, EINVAL, "invalid socket type");
        return -1;
    }
    if (progress != Py_None &&
        zm_progress_foreign(&((ProgressObject *)progress)->p)) {
        zm_py_raise_zmq(self->st, ENOTSUP, FORK_ERROR_CONTEXT);
        return -1;
    }
    rc = zm_sock_init(&self->s, type);
    if (rc < 0) {
        PyErr_Format(PyExc_NotImplementedError,
                     "zmtp does not implement %s sockets yet",
                     zm_socktype_name(type));
        return -1;
    }
    self->initialized = 1;
    self->closed = 0;
    self->rcvtimeo = -1;
    self->sndtimeo = -1;
    self->linger = DEFAULT_LINGER_MS;
    self->fork_gen = zm_fork_gen();
    self->ps.sock = &self->s;
    self->ps.last_call_ns = 0;
    if (progress != Py_None && ((ProgressObject *)progress)->running) {
        Py_INCREF(progress);
        self->progress = (ProgressObject *)progress;
        zm_progress_add(&self->progress->p, &self->ps);
    }
    return 0;
}


static void Socket_dealloc(SocketObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    /* Not in a forked child: the socket is the parent's (leaked here). */
    if (self->initialized && self->fork_gen == zm_fork_gen()) {
        if (!self->closed) {
            /* The progress thread may be inside this socket (one short
             * step): sock_claim waits that out.  No call can be: every
             * call holds a strong reference to the socket for its whole
             * length (a method through its bound self, _poll through the
             * references it takes), so an object being freed is in none.
             * Should a call on another thread hold it all the same
             * (ZM_BUSY_OWNER: a lost reference, a bug), that call is using
             * this engine state and this very object: freeing either
             * would pull them from under it.  Leak both instead: no
             * destroy, no tp_free, the type, progress and progress list
             * entry kept, so that the call finishes on valid memory; and
             * say so (unraisable: a finaliser cannot raise). */
            if (sock_claim(self) < 0) {
                PyObject *t, *v, *tb;
                PyErr_Fetch(&t, &v, &tb);
                PyErr_SetString(PyExc_RuntimeError,
                                "zmtp: a socket was freed while another "
                                "thread was in a call on it; leaked");
                PyErr_WriteUnraisable(NULL);
                PyErr_Restore(t, v, tb);
                return;
            }
            /* Also after the thread was stopped: until its join returned
             * it may have been looking at the list. */
            if (self->progress != NULL)
                zm_progress_remove(&self->progress->p, &self->ps);
            zm_sock_destroy(&self->s); /* no linger from a finaliser */
            /* Release, as sock_leave. */
            __atomic_store_n(&self->ps.busy, ZM_BUSY_FREE, __ATOMIC_RELEASE);
        }
    }
    Py_CLEAR(self->progress);
    zm_msg_clear(&self->cur);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int Socket_traverse(SocketObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->progress);
    return 0;
}

/* Every public method starts with enter() and ends with leave(). */
_Thread_local const void *zm_py_last_send; /* py_module.h */

static int sock_enter(SocketObject *self)
{
    if (self->closed || !self->initialized) {
        if (self->released)
            zm_py_raise_zmq(self->st, ZM_ETERM, "Context was terminated");
        else
            zm_py_raise_zmq(self->st, ENOTSOCK, "Socket operation on closed socket");
        return -1;
    }
    if (self->fork_gen != zm_fork_gen()) {
        zm_py_raise_zmq(self->st, ENOTSUP, FORK_ERROR_SOCKET);
        return -1;
    }
    if (sock_claim(self) < 0) {
        /* Held by a call woken by term(), or by term() freeing it: ETERM,
         * the answer of every call after term(). */
        if (sock_terminated(self))
            zm_py_raise_zmq(self->st, ZM_ETERM, "Context was terminated");
        else
            zm_py_raise_zmq(self->st, EBUSY,
                      "socket used from two threads at once (zmtp sockets, "
                      "like libzmq's, are not thread-safe)");
        return -1;
    }
    self->owner = PyThread_get_thread_ident();
    /* For fileno(): what an event loop could have known before this call
     * (sock_leave signals what the call itself made appear). */
    self->events_at_enter = self->s.notify_fd ? zm_sock_events(&self->s) : 0;
    self->s.coalesce = zm_py_last_send == (const void *)self;
    self->s.in_call = 1;
    self->s.now_ns = 0;
    zm_py_last_send = NULL;
    /* seq_cst: the flag is set by term() on another thread (see
     * Socket_terminate). */
    if (sock_terminated(self)) {
        self->s.in_call = 0;
        /* Release, as sock_leave. */
        __atomic_store_n(&self->ps.busy, ZM_BUSY_FREE, __ATOMIC_RELEASE);
        zm_py_raise_zmq(self->st, ZM_ETERM, "Context was terminated");
        return -1;
    }
    return 0;
}

static void sock_leave(SocketObject *self)
{
    int wanted = 0;
    /* Read before the release; the GIL, held throughout, keeps any other
     * caller (and close()) out until we return. */
    int notify = self->progress != NULL && !self->closed;

    if (self->progress != NULL) {
        wanted = !self->closed && zm_progress_wanted(&self->s);
        /* Relaxed: a hint read by the progress thread's timer only; the
         * wake below (or the release) orders everything that matters. */
        __atomic_store_n(&self->ps.flush_due_ns,
                         wanted ? zm_sock_flush_due(&self->s) : 0,
                         __ATOMIC_RELAXED); /* held back implies wanted */
    }
    self->s.in_call = 0;
    if (self->s.notify_fd && !self->closed) {
        zm_mailbox_rearm(self->s.mb, self->s.mb_seen);
        /* fileno() is edge-triggered: the progress thread signals what its
         * steps make appear, and this what the call made appear (a
         * getsockopt(FD), a connect() or an EVENTS read that stepped the
         * socket and found input): otherwise a loop that waits on the fd
         * before it reads EVENTS sleeps with messages queued, and the
         * progress thread, seeing POLLIN already set, has no edge to
         * signal.  Events that were there at the call's start are not
         * signalled again, so a loop that leaves input queued is woken
         * once, not spun. */
        if (zm_sock_events(&self->s) & ~self->events_at_enter)
            zm_mailbox_signal(self->s.mb);
    }
    /* Release: pairs with the acquire in sock_claim (the next caller's or
     * the progress thread's): our engine writes are visible to it. */
    __atomic_store_n(&self->ps.busy, ZM_BUSY_FREE, __ATOMIC_RELEASE);
    /* After the release, so that the thread we may wake finds the socket
     * free; only atomics and the Progress object (we hold a reference) are
     * touched from here on. */
    if (notify)
        zm_progress_call_done(&self->progress->p, &self->ps, wanted);
}

/* ------------------------------------------------------------------ */
/* Waiting                                                            */
/* ------------------------------------------------------------------ */

static int64_t deadline_from_ms(int ms)
{
    return ms < 0 ? -1 : zm_now_ns() + (int64_t)ms * 1000000;
}

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
static int sock_send_frame(SocketObject *self, const void *data, size_t n,
                           int flags, lazy_deadline *dl)
{
    int64_t deadline;
    int rc;

    for (;;) {
        rc = zm_sock_send(&self->s, data, n, (flags & Z_SNDMORE) != 0);
        if (rc != -EAGAIN && rc != -EHOSTUNREACH)
            break;
        /* Maybe the peer is on its way (handshake pending): step once. */
        zm_sock_process(&self->s, zm_now_ns());
        rc = zm_sock_send(&self->s, data, n, (flags & Z_SNDMORE) != 0);
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
                           PyObject **data, int *flags, int *copy)
{
    PyObject *vals[4];

    if (parse_fast(p, args, nargs, kwnames, vals) < 0)
        return -1;
    *data = vals[0];
    *flags = 0;
    *copy = 1;
    if (fast_int(vals[1], 0, flags) < 0 || fast_int(vals[2], 1, copy) < 0 ||
        fast_no_track(vals[3]) < 0)
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

PyDoc_STRVAR(Socket_send_doc,
"send(data, flags=0, copy=True, track=False)\n--\n\n"
"Send one frame (bytes-like or Frame).  flags: SNDMORE (more frames of the\n"
"same message follow), DONTWAIT (raise Again instead of waiting).");

static PyObject *Socket_send(SocketObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *data;
    int flags, copy, rc;
    Py_buffer view;

    if (parse_send_args(&send_params, args, nargs, kwnames, &data, &flags,
                        &copy) < 0)
        return NULL;
    if (get_send_buffer(self->st, data, &view) < 0)
        return NULL;
    if (sock_enter(self) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    lazy_deadline dl = lazy_deadline_in(self->sndtimeo);
    rc = sock_send_frame(self, view.buf, (size_t)view.len, flags, &dl);
    if (rc == 0)
        zm_py_last_send = self;
    sock_leave(self);
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(Socket_send_multipart_doc,
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
 * frame can block: the rest follow it. */
static int frames_send(SocketObject *self, msg_frames *fr, int flags,
                       lazy_deadline *dl)
{
    int rc = 0;

    for (Py_ssize_t i = 0; i < fr->n && rc == 0; i++) {
        int f = (flags & Z_DONTWAIT) |
                (i + 1 < fr->n ? Z_SNDMORE : (flags & Z_SNDMORE));
        rc = sock_send_frame(self, fr->views[i].buf, (size_t)fr->views[i].len,
                             f, dl);
    }
    return rc;
}

static PyObject *Socket_send_multipart(SocketObject *self,
                                       PyObject *const *args, Py_ssize_t nargs,
                                       PyObject *kwnames)
{
    PyObject *parts;
    msg_frames fr;
    int flags, copy, rc;

    if (parse_send_args(&send_multipart_params, args, nargs, kwnames, &parts,
                        &flags, &copy) < 0)
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
    if (sock_enter(self) < 0) {
        frames_release(&fr);
        return NULL;
    }
    lazy_deadline dl = lazy_deadline_in(self->sndtimeo);
    rc = frames_send(self, &fr, flags, &dl);
    if (rc == 0)
        zm_py_last_send = self;
    sock_leave(self);
    frames_release(&fr);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
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
        rc = sock_send_frame(self, view.buf, (size_t)view.len, flags, dl);
        PyBuffer_Release(&view);
        return rc;
    }
    if (frames_get(self->st, m, "a message is bytes or a sequence of frames",
                   &fr) < 0)
        return -1;
    rc = frames_send(self, &fr, flags, dl);
    frames_release(&fr);
    return rc;
}

/*
 * The batch as it is now: a new tuple whose multipart messages (lists) are
 * tuples too.  Each wait for room in Socket_send_many releases the GIL, and
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

PyDoc_STRVAR(Socket_send_many_doc,
"_send_many(messages, flags, hold, /)\n--\n\n"
"Queue several messages as one burst; write them with one flush (hold=0)\n"
"or keep them for flush() (hold=1).  Returns how many were queued; with\n"
"DONTWAIT it stops early (no exception) at the first that would block.");

static PyObject *Socket_send_many(SocketObject *self, PyObject *args)
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

PyDoc_STRVAR(Socket_flush_doc,
"flush()\n--\n\n"
"Write now what send_buffered() (or coalescing) holds back.");

static PyObject *Socket_flush(SocketObject *self, PyObject *unused)
{
    (void)unused;
    if (sock_enter(self) < 0)
        return NULL;
    zm_sock_flush(&self->s, -1);
    sock_leave(self);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(Socket_buffers_doc,
"_buffers(read_buf_size=-1, write_buf_size=-1, auto=-1, /)\n--\n\n"
"Set (values >= 0) and return (read_buf_size, write_buf_size, auto): the\n"
"read page of new connections, the coalescing write size, and whether\n"
"the write size follows the message sizes.  See zmtp.BufferConfig.");

static PyObject *Socket_buffers(SocketObject *self, PyObject *args)
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

    if (parse_fast(p, args, nargs, kwnames, vals) < 0)
        return -1;
    *flags = 0;
    *copy = 1;
    if (fast_int(vals[0], 0, flags) < 0 || fast_int(vals[1], 1, copy) < 0 ||
        fast_no_track(vals[2]) < 0)
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
    return 0;
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

/* The next frame as bytes (copy) or as a zero-copy Frame; sets rcvmore. */
static PyObject *sock_take_frame(SocketObject *self, int copy)
{
    zm_frame f = sock_next_frame(self);
    PyObject *obj;

    if (copy) {
        obj = PyBytes_FromStringAndSize((const char *)f.data,
                                        (Py_ssize_t)f.size);
        zm_frame_release(&f); /* the page can be reused at once */
        return obj;
    }
    /* The prefix lives in the socket: a Frame needs a page of its own. */
    if (f.page == NULL && f.size > 0 &&
        frame_fill_copy(&f, f.data, f.size, f.flags) < 0)
        return NULL;
    return frame_new_from(self->st->Frame_Type, &f);
}

PyDoc_STRVAR(Socket_recv_doc,
"recv(flags=0, copy=True, track=False)\n--\n\n"
"Receive one frame: bytes, or a zero-copy Frame with copy=False.  RCVMORE\n"
"(or frame.more) says whether more frames of the message follow.");

static PyObject *Socket_recv(SocketObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames)
{
    int flags, copy;
    PyObject *out = NULL;

    if (parse_recv_args(&recv_params, args, nargs, kwnames, &flags, &copy) < 0)
        return NULL;
    if (sock_enter(self) < 0)
        return NULL;
    if (sock_fill_current(self, flags) == 0)
        out = sock_take_frame(self, copy);
    sock_leave(self);
    return out;
}

PyDoc_STRVAR(Socket_recv_into_doc,
"recv_into(buffer, /, *, nbytes=0, flags=0)\n--\n\n"
"Receive one frame into a writable, contiguous buffer (one copy, no bytes\n"
"object) and return the frame's size.  At most nbytes are written (the\n"
"buffer's size when 0); a longer frame is truncated and its rest dropped:\n"
"a return value larger than that says so.  RCVMORE is set as by recv().");

static PyObject *Socket_recv_into(SocketObject *self, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames)
{
    static const fast_params params = {
        .fname = "recv_into", .nparams = 3, .nposonly = 1, .npos = 1,
        .nreq = 1, .names = {"buffer", "nbytes", "flags"}};
    PyObject *vals[3];
    Py_ssize_t nbytes = 0, size = -1;
    int flags = 0;
    Py_buffer view;

    if (parse_fast(&params, args, nargs, kwnames, vals) < 0 ||
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
    }
    sock_leave(self);
    PyBuffer_Release(&view);
    return size < 0 ? NULL : PyLong_FromSsize_t(size);
}

PyDoc_STRVAR(Socket_recv_multipart_doc,
"recv_multipart(flags=0, copy=True, track=False)\n--\n\n"
"Receive a whole message as a list of bytes (or Frames with copy=False).");

static PyObject *Socket_recv_multipart(SocketObject *self,
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

/* ------------------------------------------------------------------ */
/* Endpoints                                                          */
/* ------------------------------------------------------------------ */

typedef int (*endpoint_fn)(zm_sock *, const char *, char *, size_t);

/* An endpoint argument (str or bytes) as a C string; NULL with an
 * exception.  An embedded NUL is refused (EINVAL, as libzmq, which takes a
 * C string, can only see the part before it): it would cut the endpoint
 * short, and bind "tcp://127.0.0.1:5555\0junk" as "tcp://127.0.0.1:5555". */
static const char *endpoint_str(zmtp_state *st, PyObject *arg)
{
    const char *ep;
    Py_ssize_t n;

    if (PyBytes_Check(arg)) {
        ep = PyBytes_AS_STRING(arg);
        n = PyBytes_GET_SIZE(arg);
    } else if (PyUnicode_Check(arg)) {
        if ((ep = PyUnicode_AsUTF8AndSize(arg, &n)) == NULL)
            return NULL;
    } else {
        PyErr_Format(PyExc_TypeError, "endpoint must be str, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    if ((size_t)n != strlen(ep)) {
        zm_py_raise_zmq(st, EINVAL,
                  "Invalid argument: an endpoint cannot contain a NUL "
                  "character");
        return NULL;
    }
    return ep;
}

static PyObject *sock_endpoint_call(SocketObject *self, PyObject *arg,
                                    int which)
{
    const char *ep = endpoint_str(self->st, arg);
    char err[256] = "";
    int rc;

    if (ep == NULL)
        return NULL;
    if (sock_enter(self) < 0)
        return NULL;
    switch (which) {
    case 0:
    case 1: {
        zm_addr a;
        int parsed;
        if (zm_addr_resolves(ep)) {
            /* getaddrinfo may take seconds (a slow DNS server): without
             * the GIL, so that the other threads run meanwhile.  The
             * socket stays claimed by this call (another thread's call on
             * it: EBUSY), and ep stays valid: it points into the
             * argument (an immutable str or bytes) our caller holds. */
            Py_BEGIN_ALLOW_THREADS
            parsed = zm_addr_parse(ep, which == 0, &a, err, sizeof(err));
            Py_END_ALLOW_THREADS
        } else {
            parsed = zm_addr_parse(ep, which == 0, &a, err, sizeof(err));
        }
        rc = which == 0 ? zm_sock_bind(&self->s, ep, parsed, &a)
                        : zm_sock_connect(&self->s, ep, parsed, &a);
        break;
    }
    case 2:
        rc = zm_sock_unbind(&self->s, ep);
        break;
    default:
        rc = zm_sock_disconnect(&self->s, ep);
        break;
    }
    sock_leave(self);
    if (rc < 0) {
        char msg[400];
        if (err[0] == '\0')
            snprintf(err, sizeof(err), "%s", strerror(-rc));
        if (strstr(err, ep) != NULL) /* the reason names it already */
            snprintf(msg, sizeof(msg), "%s", err);
        else
            snprintf(msg, sizeof(msg), "%s (endpoint %s)", err, ep);
        return zm_py_raise_zmq(self->st, -rc, msg);
    }
    Py_RETURN_NONE;
}

/*
 * _monitor_fd(fd, events) and _adopt_fd(fd, endpoint) take over a
 * descriptor: they own it from the moment the argument is read as an int,
 * and close it on every failure after that (arguments, closed socket,
 * engine: zm_sock_monitor and zm_sock_adopt close it themselves), so that a
 * caller, having passed it, forgets it whatever happens
 * (Socket.get_monitor_socket, Socket.monitor, the inproc names).  Only an
 * fd argument that is not an int hands nothing over.
 */
static PyObject *sock_take_fd(SocketObject *self, PyObject *const *args,
                              Py_ssize_t nargs, int adopt)
{
    const char *endpoint = NULL;
    unsigned long events = 0;
    long fd;
    int rc = -1;

    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "missing the fd argument");
        return NULL;
    }
    fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < -1 || fd > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "bad file descriptor %ld", fd);
        return NULL;
    }
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, adopt ? "_adopt_fd(fd, endpoint)"
                                               : "_monitor_fd(fd, events)");
        goto out;
    }
    if (adopt ? (endpoint = endpoint_str(self->st, args[1])) == NULL
              : ((events = PyLong_AsUnsignedLongMask(args[1])) ==
                     (unsigned long)-1 &&
                 PyErr_Occurred()))
        goto out;
    if (sock_enter(self) < 0)
        goto out;
    rc = adopt ? zm_sock_adopt(&self->s, (int)fd, endpoint)
               : zm_sock_monitor(&self->s, (int)fd, (unsigned)events);
    fd = -1; /* the engine's now, or closed by it */
    sock_leave(self);
    if (rc < 0)
        zm_py_raise_zmq(self->st, -rc, NULL);
out:
    if (fd >= 0)
        close((int)fd);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(Socket_monitor_fd_doc,
"_monitor_fd(fd, events, /)\n--\n\n"
"Send this socket's monitor events (a libzmq ZMQ_EVENT_* mask) as ZMTP\n"
"messages to fd, a connected non-blocking stream socket the socket owns\n"
"from now on, also when this raises; fd -1 stops.  Use\n"
"Socket.get_monitor_socket().");

PyDoc_STRVAR(Socket_adopt_fd_doc,
"_adopt_fd(fd, endpoint, /)\n--\n\n"
"Take fd (a connected non-blocking stream socket; owned from now on, also\n"
"when this raises) as a peer connection named endpoint: ZMTP handshake,\n"
"then traffic.");

static PyObject *Socket_monitor_fd(SocketObject *self, PyObject *const *args,
                                   Py_ssize_t nargs)
{
    return sock_take_fd(self, args, nargs, 0);
}

static PyObject *Socket_adopt_fd(SocketObject *self, PyObject *const *args,
                                 Py_ssize_t nargs)
{
    return sock_take_fd(self, args, nargs, 1);
}

static PyObject *Socket_bind(SocketObject *self, PyObject *addr)
{
    return sock_endpoint_call(self, addr, 0);
}

static PyObject *Socket_connect(SocketObject *self, PyObject *addr)
{
    return sock_endpoint_call(self, addr, 1);
}

static PyObject *Socket_unbind(SocketObject *self, PyObject *addr)
{
    return sock_endpoint_call(self, addr, 2);
}

static PyObject *Socket_disconnect(SocketObject *self, PyObject *addr)
{
    return sock_endpoint_call(self, addr, 3);
}

/* inproc://: the names live in the Context (zmtp/_inproc.py), which calls
 * these with the GIL held, so a name's binder cannot close meanwhile. */

PyDoc_STRVAR(Socket_inproc_listen_doc,
"_inproc_listen(endpoint, /)\n--\n\n"
"Ready this socket to adopt inproc pipes (its bind to endpoint).");

static PyObject *Socket_inproc_listen(SocketObject *self, PyObject *arg)
{
    const char *ep = endpoint_str(self->st, arg);
    int rc;

    if (ep == NULL || sock_enter(self) < 0)
        return NULL;
    rc = zm_sock_inproc_enable(&self->s);
    if (rc == 0)
        snprintf(self->s.last_endpoint, sizeof(self->s.last_endpoint), "%s",
                 ep);
    sock_leave(self);
    if (rc < 0)
        return zm_py_raise_zmq(self->st, -rc, NULL);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(Socket_inproc_connect_doc,
"_inproc_connect(endpoint, /)\n--\n\n"
"A new pipe from this socket to endpoint; returns the binder's end\n"
"(an InprocPipe) for the context to offer to the bound socket.");

static PyObject *Socket_inproc_connect(SocketObject *self, PyObject *arg)
{
    const char *ep = endpoint_str(self->st, arg);
    InprocPipeObject *po;
    zm_pipe *peer = NULL;
    int rc;

    if (ep == NULL)
        return NULL;
    po = PyObject_New(InprocPipeObject, self->st->InprocPipe_Type);
    if (po == NULL)
        return NULL;
    po->pipe = NULL;
    if (sock_enter(self) < 0) {
        Py_DECREF(po);
        return NULL;
    }
    rc = zm_sock_inproc_connect(&self->s, ep, &peer);
    sock_leave(self);
    if (rc < 0) {
        Py_DECREF(po);
        return zm_py_raise_zmq(self->st, -rc, NULL);
    }
    po->pipe = peer;
    po->fork_gen = zm_fork_gen();
    return (PyObject *)po;
}

PyDoc_STRVAR(Socket_inproc_offer_doc,
"_inproc_offer(pipe, endpoint, /)\n--\n\n"
"Hand pipe to this bound socket (from any thread: the socket adopts it at\n"
"its next step).  The pipe is used up.");

static PyObject *Socket_inproc_offer(SocketObject *self, PyObject *const *args,
                                     Py_ssize_t nargs)
{
    InprocPipeObject *po;
    const char *ep;
    int rc;

    if (nargs != 2 || !Py_IS_TYPE(args[0], self->st->InprocPipe_Type)) {
        PyErr_SetString(PyExc_TypeError,
                        "_inproc_offer(pipe, endpoint): an InprocPipe and a str");
        return NULL;
    }
    po = (InprocPipeObject *)args[0];
    if ((ep = endpoint_str(self->st, args[1])) == NULL)
        return NULL;
    if (po->pipe == NULL)
        return zm_py_raise_zmq(self->st, EINVAL, "inproc pipe already offered");
    /* A forked child never locks a parent's mailbox or pipe. */
    if (self->fork_gen != zm_fork_gen() || po->fork_gen != zm_fork_gen())
        return zm_py_raise_zmq(self->st, ENOTSUP, FORK_ERROR_SOCKET);
    /* No sock_enter: the owner may be blocked in a call on another thread;
     * only the mailbox (its own lock) is touched.  s.mb was made by the
     * owner's bind under the GIL, which we hold. */
    if (self->closed || self->s.mb == NULL)
        return zm_py_raise_zmq(self->st, ECONNREFUSED, "inproc binder is closed");
    /* The binder's HWMs now (options are set under the GIL, which we
     * hold): the connector's limit is SNDHWM + RCVHWM before the binder's
     * next step adopts the pipe. */
    zm_pipe_preset_hwm(po->pipe, 1, self->s.sndhwm, self->s.rcvhwm);
    rc = zm_mailbox_offer(self->s.mb, po->pipe, ep);
    if (rc < 0)
        return zm_py_raise_zmq(self->st, -rc, NULL);
    po->pipe = NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Options                                                            */
/* ------------------------------------------------------------------ */

static int int_option(zmtp_state *st, PyObject *value, const char *name,
                      long lo, long hi, int *out)
{
    long v;

    if (!PyLong_Check(value) || PyBool_Check(value)) {
        PyErr_Format(PyExc_TypeError, "option %s takes an int, not %.100s",
                     name, Py_TYPE(value)->tp_name);
        return -1;
    }
    v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < lo || v > hi) {
        char msg[160];
        snprintf(msg, sizeof(msg), "Invalid argument: %s must be %ld..%ld, not %ld",
                 name, lo, hi, v);
        zm_py_raise_zmq(st, EINVAL, msg);
        return -1;
    }
    *out = (int)v;
    return 0;
}

PyDoc_STRVAR(Socket_setsockopt_doc,
"setsockopt(option, value, /)\n--\n\nSet a socket option (libzmq numbers).");

static PyObject *Socket_setsockopt(SocketObject *self, PyObject *const *args,
                                   Py_ssize_t nargs)
{
    int opt, v, rc = 0;
    long optl;
    PyObject *value;

    if (zm_py_check_nargs("setsockopt", nargs, 2, 2) < 0)
        return NULL;
    optl = PyLong_AsLong(args[0]);
    if (optl == -1 && PyErr_Occurred())
        return NULL;
    opt = (int)optl;
    value = args[1];
    if (sock_enter(self) < 0)
        return NULL;
    switch (opt) {
    case ZO_LINGER:
        rc = int_option(self->st, value, "LINGER", -1, INT32_MAX, &self->linger);
        break;
    case ZO_RCVTIMEO:
        rc = int_option(self->st, value, "RCVTIMEO", -1, INT32_MAX, &self->rcvtimeo);
        break;
    case ZO_SNDTIMEO:
        rc = int_option(self->st, value, "SNDTIMEO", -1, INT32_MAX, &self->sndtimeo);
        break;
    case ZO_SNDHWM:
        rc = int_option(self->st, value, "SNDHWM", 0, INT32_MAX, &self->s.sndhwm);
        break;
    case ZO_RCVHWM:
        rc = int_option(self->st, value, "RCVHWM", 0, INT32_MAX, &self->s.rcvhwm);
        break;
    case ZO_RECONNECT_IVL:
        rc = int_option(self->st, value, "RECONNECT_IVL", -1, INT32_MAX,
                        &self->s.reconnect_ivl_ms);
        break;
    case ZO_ROUTER_MANDATORY:
        rc = int_option(self->st, value, "ROUTER_MANDATORY", 0, 1, &v);
        if (rc == 0)
            self->s.router_mandatory = v;
        break;
    case ZO_IMMEDIATE:
        rc = int_option(self->st, value, "IMMEDIATE", 0, 1, &v);
        if (rc == 0)
            self->s.immediate = v;
        break;
    case ZO_MAXMSGSIZE: {
        long long m;
        if (!PyLong_Check(value) || PyBool_Check(value)) {
            PyErr_Format(PyExc_TypeError,
                         "option MAXMSGSIZE takes an int, not %.100s",
                         Py_TYPE(value)->tp_name);
            rc = -1;
            break;
        }
        m = PyLong_AsLongLong(value);
        if (m == -1 && PyErr_Occurred()) {
            rc = -1;
        } else if (m < -1) {
            zm_py_raise_zmq(self->st, EINVAL, "Invalid argument: MAXMSGSIZE must be -1 or >= 0");
            rc = -1;
        } else {
            self->s.maxmsgsize = m;
        }
        break;
    }
    case ZO_ROUTING_ID: {
        Py_buffer view;
        if (PyUnicode_Check(value) ||
            PyObject_GetBuffer(value, &view, PyBUF_SIMPLE) < 0) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError,
                            "ROUTING_ID takes bytes (use setsockopt_string for "
                            "str)");
            rc = -1;
            break;
        }
        if (view.len < 1 || view.len > 255 ||
            ((const unsigned char *)view.buf)[0] == 0) {
            zm_py_raise_zmq(self->st, EINVAL,
                      "Invalid argument: ROUTING_ID must be 1..255 bytes not "
                      "starting with a zero byte");
            rc = -1;
        } else {
            memcpy(self->s.routing_id, view.buf, (size_t)view.len);
            self->s.routing_id_len = (size_t)view.len;
        }
        PyBuffer_Release(&view);
        break;
    }
    case ZO_SUBSCRIBE:
    case ZO_UNSUBSCRIBE: {
        Py_buffer view;
        int r;
        if (PyUnicode_Check(value) ||
            PyObject_GetBuffer(value, &view, PyBUF_SIMPLE) < 0) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError,
                            "SUBSCRIBE/UNSUBSCRIBE take bytes (subscribe() "
                            "also takes str)");
            rc = -1;
            break;
        }
        r = zm_sock_subscribe(&self->s, view.buf, (size_t)view.len,
                              opt == ZO_SUBSCRIBE);
        PyBuffer_Release(&view);
        if (r == -ENOTSUP) {
            zm_py_raise_zmq(self->st, EINVAL,
                      "Invalid argument: SUBSCRIBE/UNSUBSCRIBE are for SUB "
                      "and XSUB sockets");
            rc = -1;
        } else if (r < 0) {
            PyErr_NoMemory();
            rc = -1;
        } else {
            /* Move the subscription out now if the peer is idle. */
            zm_sock_process(&self->s, zm_now_ns());
        }
        break;
    }
    case ZO_XPUB_VERBOSE:
        rc = int_option(self->st, value, "XPUB_VERBOSE", 0, 1, &v);
        if (rc == 0)
            self->s.xpub_verbose = v;
        break;
    case ZO_RECONNECT_IVL_MAX:
        rc = int_option(self->st, value, "RECONNECT_IVL_MAX", 0, INT32_MAX,
                        &self->s.reconnect_ivl_max_ms);
        break;
    case ZO_HANDSHAKE_IVL:
        rc = int_option(self->st, value, "HANDSHAKE_IVL", 0, INT32_MAX,
                        &self->s.handshake_ivl_ms);
        break;
    case ZO_HEARTBEAT_IVL:
        rc = int_option(self->st, value, "HEARTBEAT_IVL", 0, INT32_MAX,
                        &self->s.heartbeat_ivl_ms);
        break;
    case ZO_HEARTBEAT_TTL:
        /* Sent in tenths of a second on 16 bits, as libzmq. */
        rc = int_option(self->st, value, "HEARTBEAT_TTL", 0, 6553599,
                        &self->s.heartbeat_ttl_ms);
        break;
    case ZO_HEARTBEAT_TIMEOUT:
        rc = int_option(self->st, value, "HEARTBEAT_TIMEOUT", -1, INT32_MAX,
                        &self->s.heartbeat_timeout_ms);
        break;
    case ZO_RCVMORE:
    case ZO_TYPE:
    case ZO_EVENTS:
    case ZO_LAST_ENDPOINT:
        zm_py_raise_zmq(self->st, EINVAL, "Invalid argument: option is read-only");
        rc = -1;
        break;
    default:
        raise_bad_option(self->st, opt);
        rc = -1;
        break;
    }
    sock_leave(self);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(Socket_getsockopt_doc,
"getsockopt(option, /)\n--\n\nGet a socket option (libzmq numbers).");

static PyObject *Socket_getsockopt(SocketObject *self, PyObject *arg)
{
    long opt = PyLong_AsLong(arg);
    PyObject *out = NULL;

    if (opt == -1 && PyErr_Occurred())
        return NULL;
    if (sock_enter(self) < 0)
        return NULL;
    switch (opt) {
    case ZO_LINGER:
        out = PyLong_FromLong(self->linger);
        break;
    case ZO_RCVTIMEO:
        out = PyLong_FromLong(self->rcvtimeo);
        break;
    case ZO_SNDTIMEO:
        out = PyLong_FromLong(self->sndtimeo);
        break;
    case ZO_SNDHWM:
        out = PyLong_FromLong(self->s.sndhwm);
        break;
    case ZO_RCVHWM:
        out = PyLong_FromLong(self->s.rcvhwm);
        break;
    case ZO_RECONNECT_IVL:
        out = PyLong_FromLong(self->s.reconnect_ivl_ms);
        break;
    case ZO_ROUTER_MANDATORY:
        out = PyLong_FromLong(self->s.router_mandatory);
        break;
    case ZO_IMMEDIATE:
        out = PyLong_FromLong(self->s.immediate);
        break;
    case ZO_XPUB_VERBOSE:
        out = PyLong_FromLong(self->s.xpub_verbose);
        break;
    case ZO_RECONNECT_IVL_MAX:
        out = PyLong_FromLong(self->s.reconnect_ivl_max_ms);
        break;
    case ZO_HANDSHAKE_IVL:
        out = PyLong_FromLong(self->s.handshake_ivl_ms);
        break;
    case ZO_HEARTBEAT_IVL:
        out = PyLong_FromLong(self->s.heartbeat_ivl_ms);
        break;
    case ZO_HEARTBEAT_TTL:
        out = PyLong_FromLong(self->s.heartbeat_ttl_ms);
        break;
    case ZO_HEARTBEAT_TIMEOUT:
        out = PyLong_FromLong(self->s.heartbeat_timeout_ms);
        break;
    case ZO_MAXMSGSIZE:
        out = PyLong_FromLongLong(self->s.maxmsgsize);
        break;
    case ZO_ROUTING_ID:
        out = PyBytes_FromStringAndSize((const char *)self->s.routing_id,
                                        (Py_ssize_t)self->s.routing_id_len);
        break;
    case ZO_RCVMORE:
        out = PyLong_FromLong(self->rcvmore);
        break;
    case ZO_TYPE:
        out = PyLong_FromLong(self->s.type);
        break;
    case ZO_LAST_ENDPOINT:
        out = PyBytes_FromString(self->s.last_endpoint);
        break;
    case ZO_FD: { /* Socket.fileno(): readable when EVENTS may have
                     changed since the last call (edge-triggered) */
        int rc = zm_sock_inproc_enable(&self->s);
        if (rc < 0) {
            zm_py_raise_zmq(self->st, -rc, NULL);
            break;
        }
        self->s.notify_fd = 1; /* sock_leave arms the mailbox */
        out = PyLong_FromLong(self->s.mb->efd);
        break;
    }
    case ZO_EVENTS:
        zm_sock_process(&self->s, zm_now_ns());
        out = PyLong_FromLong(zm_sock_events(&self->s) |
                              ((self->cur_idx < self->cur.n ||
                                self->cur_has_prefix) ? ZM_POLLIN : 0));
        break;
    default:
        raise_bad_option(self->st, opt);
        break;
    }
    sock_leave(self);
    return out;
}

/* ------------------------------------------------------------------ */
/* Poll, close, stats                                                 */
/* ------------------------------------------------------------------ */

PyDoc_STRVAR(poll_doc,
"_poll(items, timeout_ms, /)\n--\n\n"
"items: sequence of (Socket or fd, events mask).  Wait up to timeout_ms (-1:\n"
"forever) until one is ready; return a list of (index, revents) in the\n"
"items' order.  A socket or fd listed twice answers for each entry, as\n"
"libzmq's zmq_poll does.");

/* One entry of a poll: a socket (its index among the distinct sockets) or
 * a plain fd, with the events asked for. */
typedef struct {
    int sock; /* index into socks[], or -1: a plain fd */
    int fd;
    unsigned mask;
} poll_item;

/* Index of `obj` in set[0..*n), added (with a reference of ours) when new:
 * each socket is entered, watched and stepped once however often it is
 * listed.  Linear: a poll lists a few sockets. */
static int poll_sock_slot(SocketObject **set, int *n, PyObject *obj)
{
    for (int k = 0; k < *n; k++)
        if ((PyObject *)set[k] == obj)
            return k;
    Py_INCREF(obj);
    set[*n] = (SocketObject *)obj;
    return (*n)++;
}

/* Likewise for plain fds, whose wanted events (ZM_IO_*) are merged. */
static int poll_fd_slot(int *fds, unsigned *fd_ev, int *n, int fd,
                        unsigned io)
{
    int k;

    for (k = 0; k < *n && fds[k] != fd; k++)
        ;
    if (k == *n) {
        fds[k] = fd;
        fd_ev[k] = 0;
        (*n)++;
    }
    fd_ev[k] |= io;
    return k;
}

/* A plain fd's readiness for `mask` now (ZM_POLLIN | ZM_POLLOUT). */
static int poll_fd_now(int fd, unsigned mask)
{
    struct pollfd p = {.fd = fd, .events = 0, .revents = 0};

    if (mask & ZM_POLLIN)
        p.events |= POLLIN;
    if (mask & ZM_POLLOUT)
        p.events |= POLLOUT;
    if (poll(&p, 1, 0) <= 0)
        return 0;
    return ((p.revents & (POLLIN | POLLHUP | POLLERR)) && (mask & ZM_POLLIN)
                ? ZM_POLLIN
                : 0) |
           ((p.revents & (POLLOUT | POLLERR)) && (mask & ZM_POLLOUT)
                ? ZM_POLLOUT
                : 0);
}

static PyObject *module_poll(PyObject *module, PyObject *const *args,
                             Py_ssize_t nargs)
{
    zmtp_state *st = get_state(module);
    PyObject *seq, *out = NULL;
    Py_ssize_t n, i;
    poll_item *items = NULL;
    SocketObject **socks = NULL; /* distinct; a reference of ours each */
    int *sock_ev = NULL, *fds = NULL;
    unsigned *fd_ev = NULL;
    int nsocks = 0, nfds = 0, entered = 0, k;
    long tmo;
    int64_t deadline;

    if (zm_py_check_nargs("_poll", nargs, 2, 2) < 0)
        return NULL;
    tmo = PyLong_AsLong(args[1]);
    if (tmo == -1 && PyErr_Occurred())
        return NULL;
    deadline = tmo < 0 ? -1 : zm_now_ns() + (int64_t)tmo * 1000000;
    seq = PySequence_Fast(args[0], "_poll() takes a list of (socket, events)");
    if (seq == NULL)
        return NULL;
    /* Our own copy of the caller's list, and our own reference to each
     * socket (poll_sock_slot): the wait below releases the GIL, and
     * another thread may then clear the list, which freed the sockets
     * this call had entered and was waiting on. */
    if (seq == args[0] && PyList_CheckExact(seq)) {
        Py_SETREF(seq, PyList_AsTuple(seq));
        if (seq == NULL)
            return NULL;
    }
    n = PySequence_Fast_GET_SIZE(seq);
    items = PyMem_New(poll_item, (size_t)n + 1);
    socks = PyMem_New(SocketObject *, (size_t)n + 1);
    sock_ev = PyMem_New(int, (size_t)n + 1);
    fds = PyMem_New(int, (size_t)n + 1);
    fd_ev = PyMem_New(unsigned, (size_t)n + 1);
    if (!items || !socks || !sock_ev || !fds || !fd_ev) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i), *obj;
        long ev;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "poll items are (socket, events)");
            goto done;
        }
        obj = PyTuple_GET_ITEM(item, 0);
        ev = PyLong_AsLong(PyTuple_GET_ITEM(item, 1));
        if (ev == -1 && PyErr_Occurred())
            goto done;
        items[i].mask = (unsigned)ev;
        if (PyObject_TypeCheck(obj, st->Socket_Type)) {
            items[i].sock = poll_sock_slot(socks, &nsocks, obj);
            items[i].fd = -1;
        } else {
            int fd = PyObject_AsFileDescriptor(obj);
            if (fd < 0)
                goto done;
            items[i].sock = -1;
            items[i].fd = fd;
            poll_fd_slot(fds, fd_ev, &nfds, fd,
                         ((ev & ZM_POLLIN) ? ZM_IO_IN : 0u) |
                             ((ev & ZM_POLLOUT) ? ZM_IO_OUT : 0u));
        }
    }
    for (k = 0; k < nsocks; k++) {
        if (sock_enter(socks[k]) < 0)
            goto done;
        entered++;
    }
    for (;;) {
        for (k = 0; k < nsocks; k++)
            sock_ev[k] = sock_events_now(socks[k]);
        out = PyList_New(0);
        if (out == NULL)
            goto done;
        for (i = 0; i < n; i++) {
            int ev = items[i].sock >= 0
                         ? sock_ev[items[i].sock] & (int)items[i].mask
                         : poll_fd_now(items[i].fd, items[i].mask);
            if (ev) {
                PyObject *t = Py_BuildValue("(ni)", i, ev);
                if (t == NULL || PyList_Append(out, t) < 0) {
                    Py_XDECREF(t);
                    Py_CLEAR(out);
                    goto done;
                }
                Py_DECREF(t);
            }
        }
        if (PyList_GET_SIZE(out) > 0 || tmo == 0 ||
            (deadline >= 0 && zm_now_ns() >= deadline))
            break;
        Py_CLEAR(out);
        if (zm_py_wait_sockets(st, socks, nsocks, fds, fd_ev, nfds, deadline, 0) < 0)
            goto done;
    }
done:
    for (k = 0; k < entered; k++)
        sock_leave(socks[k]);
    for (k = 0; k < nsocks; k++)
        Py_DECREF(socks[k]);
    PyMem_Free(items);
    PyMem_Free(socks);
    PyMem_Free(sock_ev);
    PyMem_Free(fds);
    PyMem_Free(fd_ev);
    Py_DECREF(seq);
    return out;
}

PyDoc_STRVAR(Socket_close_doc,
"close(linger=None)\n--\n\n"
"Close the socket.  Output still queued is sent for up to linger ms (the\n"
"LINGER option when None; -1 waits until it is all sent).");

/* Take a socket whose context is terminated, for closing it: a call
 * woken by term() returns promptly and the context's own close ends, so
 * wait for whoever holds it, with the GIL released.  Not when this thread
 * is the holder (a signal handler closing the socket its thread is blocked
 * on): EBUSY then.  0 with the socket claimed, or -1 with an exception. */
static int sock_claim_terminated(SocketObject *self)
{
    unsigned long me = PyThread_get_thread_ident();

    if (sock_claim(self) == 0)
        goto claimed;
    /* A Python thread holds it (busy 1) and set `owner` under the GIL,
     * which we hold: the read is consistent. */
    if (self->owner == me) {
        zm_py_raise_zmq(self->st, EBUSY,
                  "socket is in use by a call this thread is inside");
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    while (sock_claim(self) < 0) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    Py_END_ALLOW_THREADS
claimed:
    self->owner = me;
    return 0;
}

/* close() and the context's _release(): send what is queued for up to
 * `lobj` ms (None: LINGER), then free the socket.  `by_term`: the context
 * closes it (the user has not), so later calls raise ETERM. */
static PyObject *sock_close(SocketObject *self, PyObject *lobj, int by_term)
{
    int linger;
    int64_t deadline;

    if (!self->initialized)
        Py_RETURN_NONE;
    if (self->closed) {
        if (!by_term)
            self->released = 0; /* the user's close() after term() */
        Py_RETURN_NONE;
    }
    if (self->fork_gen != zm_fork_gen()) {
        /* The child must not touch the parent's descriptors' state. */
        self->closed = 1;
        Py_RETURN_NONE;
    }
    if (sock_enter(self) < 0) {
        /* A terminated context's sockets still close, once the call that
         * holds one (woken by term()) has returned. */
        if (!sock_terminated(self))
            return NULL;
        PyErr_Clear();
        if (sock_claim_terminated(self) < 0)
            return NULL;
        if (self->closed) { /* closed by the holder meanwhile */
            if (!by_term)
                self->released = 0;
            /* Release, as sock_leave. */
            __atomic_store_n(&self->ps.busy, 0, __ATOMIC_RELEASE);
            Py_RETURN_NONE;
        }
    }
    linger = self->linger;
    if (lobj != Py_None) {
        long l = PyLong_AsLong(lobj);
        if (l == -1 && PyErr_Occurred()) {
            sock_leave(self);
            return NULL;
        }
        linger = l < -1 ? -1 : (int)l;
    }
    deadline = deadline_from_ms(linger);
    /* LINGER: send what is queued until done or the deadline; also after
     * term(), which closes its sockets with their linger. */
    while (linger != 0) {
        zm_sock_process(&self->s, zm_now_ns());
        if (zm_sock_pending_out(&self->s) == 0)
            break;
        if (deadline >= 0 && zm_now_ns() >= deadline)
            break;
        if (zm_py_wait_sockets(self->st, &self, 1, NULL, NULL, 0, deadline, 1) < 0) {
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            if (t != NULL && PyErr_GivenExceptionMatches(t, PyExc_KeyboardInterrupt)) {
                PyErr_Restore(t, v, tb);
                sock_leave(self);
                return NULL;
            }
            Py_XDECREF(t);
            Py_XDECREF(v);
            Py_XDECREF(tb);
            break;
        }
    }
    if (self->progress != NULL) /* also once stopped: see Socket_dealloc */
        zm_progress_remove(&self->progress->p, &self->ps);
    zm_sock_destroy(&self->s);
    zm_msg_clear(&self->cur);
    self->cur_idx = 0;
    self->cur_has_prefix = 0;
    self->closed = 1;
    self->released = by_term;
    sock_leave(self); /* unlocks; the progress thread no longer sees it */
    Py_CLEAR(self->progress);
    Py_RETURN_NONE;
}

static PyObject *Socket_close(SocketObject *self, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames)
{
    static const fast_params params = {
        .fname = "close", .nparams = 1, .npos = 1, .names = {"linger"}};
    PyObject *lobj;

    if (parse_fast(&params, args, nargs, kwnames, &lobj) < 0)
        return NULL;
    return sock_close(self, lobj != NULL ? lobj : Py_None, 0);
}

PyDoc_STRVAR(Socket_release_doc,
"_release(linger, /)\n--\n\n"
"Context.term(): close a terminated socket (after its _terminate()) with\n"
"linger ms (None: LINGER), waiting for a call another thread is inside to\n"
"return.  Later calls raise ContextTerminated and `closed` stays False\n"
"until the user's close(), as libzmq's sockets after zmq_ctx_term.");

static PyObject *Socket_release(SocketObject *self, PyObject *lobj)
{
    if (!sock_terminated(self)) {
        PyErr_SetString(PyExc_RuntimeError, "_release() before _terminate()");
        return NULL;
    }
    return sock_close(self, lobj, 1);
}

static PyObject *Socket_get_closed(SocketObject *self, void *closure)
{
    (void)closure;
    /* Closed by term() is not closed yet for the user (libzmq: the socket
     * exists, in ETERM, until zmq_close). */
    return PyBool_FromLong(self->closed && !self->released);
}

static PyObject *Socket_get_terminated(SocketObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(sock_terminated(self));
}

static PyObject *Socket_terminate(SocketObject *self, PyObject *unused)
{
    zm_backend *be;

    (void)unused;
    /* seq_cst store then load, the mirror of zm_py_wait_sockets (see there): a
     * thread about to block either sees the flag or is woken here. */
    __atomic_store_n(&self->terminated, 1, __ATOMIC_SEQ_CST);
    be = __atomic_load_n(&self->waiting_on, __ATOMIC_SEQ_CST);
    if (be != NULL)
        zm_backend_wake(be);
    Py_RETURN_NONE;
}

static PyObject *Socket_in_use(SocketObject *self, PyObject *unused)
{
    (void)unused;
    /* Acquire: pairs with the release in sock_leave (a caller that sees the
     * call over also sees its effects, e.g. `closed`). */
    return PyBool_FromLong(__atomic_load_n(&self->ps.busy, __ATOMIC_ACQUIRE) ==
                           ZM_BUSY_OWNER);
}

static PyObject *Socket_stats(SocketObject *self, PyObject *unused)
{
    PyObject *d, *errs;
    zm_sock_stats snap, *s = &snap;
    int claimed;

    (void)unused;
    if (self->closed || !self->initialized) {
        if (self->released)
            return zm_py_raise_zmq(self->st, ZM_ETERM, "Context was terminated");
        return zm_py_raise_zmq(self->st, ENOTSOCK, "Socket operation on closed socket");
    }
    if (self->fork_gen != zm_fork_gen())
        return zm_py_raise_zmq(self->st, ENOTSUP, FORK_ERROR_SOCKET);
    /* Not a call: a monitoring thread may read the counters while the
     * owner is blocked in recv() on another thread (no EBUSY), and a loop
     * polling stats() must not keep the progress thread away as an owner's
     * calls do (it would then never accept or read).  The counters have one
     * writer at a time, whoever holds the socket (ZM_STAT_ADD); when the
     * claim is free we take it for the copy (a step of the progress thread
     * is waited out: one consistent moment); when an owner's call on
     * another thread holds it, each counter is read whole (relaxed) as it
     * is at some moment during this copy. */
    claimed = sock_claim(self) == 0;
    zm_sock_stats_read(&self->s.stats, &snap);
    if (claimed) /* Release: pairs with the next holder's acquire. */
        __atomic_store_n(&self->ps.busy, ZM_BUSY_FREE, __ATOMIC_RELEASE);
    errs = PyDict_New();
    if (errs == NULL)
        return NULL;
    for (int i = 1; i < ZM_ERR_COUNT_; i++) {
        if (s->protocol_errors[i] == 0)
            continue;
        PyObject *k = PyLong_FromLong(i);
        PyObject *v = PyLong_FromUnsignedLongLong(s->protocol_errors[i]);
        if (k == NULL || v == NULL || PyDict_SetItem(errs, k, v) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(v);
            Py_DECREF(errs);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(v);
    }
    d = Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:N}", "accepted",
                      s->accepted, "connected", s->connected, "disconnected",
                      s->disconnected, "handshake_failed", s->handshake_failed,
                      "handshake_timeouts", s->handshake_timeouts,
                      "heartbeat_timeouts", s->heartbeat_timeouts,
                      "dropped_messages", s->dropped_msgs,
                      "subscriptions_refused", s->subs_refused,
                      "monitor_dropped", s->monitor_dropped,
                      "protocol_errors", errs);
    return d;
}

static PyMethodDef Socket_methods[] = {
    {"send", (PyCFunction)(void (*)(void))Socket_send,
     METH_FASTCALL | METH_KEYWORDS, Socket_send_doc},
    {"recv", (PyCFunction)(void (*)(void))Socket_recv,
     METH_FASTCALL | METH_KEYWORDS, Socket_recv_doc},
    {"send_multipart", (PyCFunction)(void (*)(void))Socket_send_multipart,
     METH_FASTCALL | METH_KEYWORDS, Socket_send_multipart_doc},
    {"recv_multipart", (PyCFunction)(void (*)(void))Socket_recv_multipart,
     METH_FASTCALL | METH_KEYWORDS, Socket_recv_multipart_doc},
    {"recv_into", (PyCFunction)(void (*)(void))Socket_recv_into,
     METH_FASTCALL | METH_KEYWORDS, Socket_recv_into_doc},
    {"bind", (PyCFunction)Socket_bind, METH_O,
     "bind(addr)\n--\n\nBind to tcp://host:port (port * for any) or ipc://path."},
    {"connect", (PyCFunction)Socket_connect, METH_O,
     "connect(addr)\n--\n\nConnect to tcp://host:port or ipc://path (in the "
     "background; reconnects)."},
    {"unbind", (PyCFunction)Socket_unbind, METH_O,
     "unbind(addr)\n--\n\nStop listening on a bound endpoint."},
    {"disconnect", (PyCFunction)Socket_disconnect, METH_O,
     "disconnect(addr)\n--\n\nDrop a connected endpoint."},
    {"_inproc_listen", (PyCFunction)Socket_inproc_listen, METH_O,
     Socket_inproc_listen_doc},
    {"_inproc_connect", (PyCFunction)Socket_inproc_connect, METH_O,
     Socket_inproc_connect_doc},
    {"_inproc_offer", (PyCFunction)(void (*)(void))Socket_inproc_offer,
     METH_FASTCALL, Socket_inproc_offer_doc},
    {"setsockopt", (PyCFunction)(void (*)(void))Socket_setsockopt,
     METH_FASTCALL, Socket_setsockopt_doc},
    {"getsockopt", (PyCFunction)Socket_getsockopt, METH_O,
     Socket_getsockopt_doc},
    {"close", (PyCFunction)(void (*)(void))Socket_close,
     METH_FASTCALL | METH_KEYWORDS, Socket_close_doc},
    {"_terminate", (PyCFunction)Socket_terminate, METH_NOARGS,
     "Mark the context terminated and wake a blocked call."},
    {"_release", (PyCFunction)Socket_release, METH_O, Socket_release_doc},
    {"_in_use", (PyCFunction)Socket_in_use, METH_NOARGS,
     "True while a call on this socket is in progress."},
    {"_send_many", (PyCFunction)Socket_send_many, METH_VARARGS,
     Socket_send_many_doc},
    {"flush", (PyCFunction)Socket_flush, METH_NOARGS, Socket_flush_doc},
    {"_buffers", (PyCFunction)Socket_buffers, METH_VARARGS, Socket_buffers_doc},
    {"_monitor_fd", (PyCFunction)(void (*)(void))Socket_monitor_fd,
     METH_FASTCALL, Socket_monitor_fd_doc},
    {"_adopt_fd", (PyCFunction)(void (*)(void))Socket_adopt_fd, METH_FASTCALL,
     Socket_adopt_fd_doc},
    {"stats", (PyCFunction)Socket_stats, METH_NOARGS,
     "stats()\n--\n\nCounters: accepted, connected, disconnected,\n"
     "handshake_failed, dropped_messages, protocol_errors {code: n}."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Socket_getset[] = {
    {"closed", (getter)Socket_get_closed, NULL,
     "True once closed (by close(), or by Context.destroy()).", NULL},
    {"_terminated", (getter)Socket_get_terminated, NULL,
     "True once the context was terminated (calls raise ContextTerminated).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef Socket_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(SocketObject, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot Socket_slots[] = {
    {Py_tp_new, Socket_tp_new},
    {Py_tp_init, Socket_init},
    {Py_tp_dealloc, Socket_dealloc},
    {Py_tp_traverse, Socket_traverse},
    {Py_tp_methods, Socket_methods},
    {Py_tp_getset, Socket_getset},
    {Py_tp_members, Socket_members},
    {Py_tp_doc, (void *)"Socket(socket_type): the C socket; use zmtp.Socket."},
    {0, NULL},
};

static PyType_Spec Socket_spec = {
    .name = "zmtp._zmtp.Socket",
    .basicsize = sizeof(SocketObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Socket_slots,
};

static PyMethodDef module_methods[] = {
    {"encode_greeting", (PyCFunction)(void (*)(void))zm_py_encode_greeting,
     METH_VARARGS | METH_KEYWORDS, zm_py_encode_greeting_doc},
    {"encode_frame", (PyCFunction)(void (*)(void))zm_py_encode_frame, METH_FASTCALL,
     zm_py_encode_frame_doc},
    {"encode_message", (PyCFunction)zm_py_encode_message, METH_O,
     zm_py_encode_message_doc},
    {"encode_command", (PyCFunction)(void (*)(void))zm_py_encode_command,
     METH_FASTCALL, zm_py_encode_command_doc},
    {"encode_ready", (PyCFunction)zm_py_encode_ready, METH_O, zm_py_encode_ready_doc},
    {"encode_error", (PyCFunction)zm_py_encode_error, METH_O, zm_py_encode_error_doc},
    {"encode_ping", (PyCFunction)(void (*)(void))zm_py_encode_ping, METH_FASTCALL,
     zm_py_encode_ping_doc},
    {"encode_pong", (PyCFunction)(void (*)(void))zm_py_encode_pong, METH_FASTCALL,
     zm_py_encode_pong_doc},
    {"encode_subscription", (PyCFunction)(void (*)(void))zm_py_encode_subscription,
     METH_VARARGS | METH_KEYWORDS, zm_py_encode_subscription_doc},
    {"parse_command", (PyCFunction)zm_py_parse_command, METH_O, zm_py_parse_command_doc},
    {"parse_subscription_message", (PyCFunction)zm_py_parse_subscription_message,
     METH_O, zm_py_parse_subscription_message_doc},
    {"memory_stats", (PyCFunction)zm_py_memory_stats, METH_NOARGS,
     zm_py_memory_stats_doc},
    {"strerror", (PyCFunction)zm_py_strerror, METH_O, zm_py_strerror_doc},
    {"io_stats", (PyCFunction)zm_py_io_stats, METH_NOARGS, zm_py_io_stats_doc},
    {"_alloc_fail", (PyCFunction)(void (*)(void))zm_py_alloc_fail,
     METH_VARARGS | METH_KEYWORDS, zm_py_alloc_fail_doc},
    {"_alloc_fail_count", (PyCFunction)zm_py_alloc_fail_count, METH_NOARGS,
     zm_py_alloc_fail_count_doc},
    {"_set_errors", (PyCFunction)(void (*)(void))zm_py_set_errors, METH_FASTCALL,
     zm_py_set_errors_doc},
    {"_set_option_names", (PyCFunction)set_option_names, METH_O,
     set_option_names_doc},
    {"_set_backend", (PyCFunction)zm_py_set_backend, METH_O, zm_py_set_backend_doc},
    {"_probe_backend", (PyCFunction)zm_py_probe_backend, METH_O, zm_py_probe_backend_doc},
    {"_poll", (PyCFunction)(void (*)(void))module_poll, METH_FASTCALL,
     poll_doc},
    {"_spin_us", (PyCFunction)zm_py_spin_us, METH_VARARGS, zm_py_spin_us_doc},
    {"_hold_lock_for_fork_test", (PyCFunction)zm_py_hold_lock_for_fork_test,
     METH_VARARGS, zm_py_hold_lock_doc},
    {NULL, NULL, 0, NULL},
};

static int add_int(PyObject *m, const char *name, long v)
{
    return PyModule_AddIntConstant(m, name, v);
}

static int zmtp_exec(PyObject *m)
{
    zmtp_state *st = get_state(m);

    if (zm_py_wait_init() < 0)
        return -1;
    st->Frame_Type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &zm_py_frame_spec,
                                                              NULL);
    if (st->Frame_Type == NULL || PyModule_AddType(m, st->Frame_Type) < 0)
        return -1;
    st->Decoder_Type = (PyTypeObject *)PyType_FromModuleAndSpec(
        m, &zm_py_decoder_spec, NULL);
    if (st->Decoder_Type == NULL || PyModule_AddType(m, st->Decoder_Type) < 0)
        return -1;
    st->Progress_Type = (PyTypeObject *)PyType_FromModuleAndSpec(
        m, &zm_py_progress_spec, NULL);
    if (st->Progress_Type == NULL ||
        PyModule_AddType(m, st->Progress_Type) < 0)
        return -1;
    st->InprocPipe_Type = (PyTypeObject *)PyType_FromModuleAndSpec(
        m, &zm_py_inproc_pipe_spec, NULL);
    if (st->InprocPipe_Type == NULL ||
        PyModule_AddType(m, st->InprocPipe_Type) < 0)
        return -1;
    st->Socket_Type = (PyTypeObject *)PyType_FromModuleAndSpec(
        m, &Socket_spec, NULL);
    if (st->Socket_Type == NULL || PyModule_AddType(m, st->Socket_Type) < 0)
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
    ADD("EFSM", ZM_EFSM);
    ADD("ENOCOMPATPROTO", ZM_ENOCOMPATPROTO);
    ADD("ETERM", ZM_ETERM);
    ADD("EMTHREAD", ZM_EMTHREAD);
    ADD("DEFAULT_LINGER", DEFAULT_LINGER_MS);
    ADD("_PAGE_CACHE", zm_page_cache_enabled());
#undef ADD
    return 0;
}

static int zmtp_traverse(PyObject *m, visitproc visit, void *arg)
{
    zmtp_state *st = get_state(m);
    Py_VISIT(st->Frame_Type);
    Py_VISIT(st->Decoder_Type);
    Py_VISIT(st->Socket_Type);
    Py_VISIT(st->Progress_Type);
    Py_VISIT(st->InprocPipe_Type);
    Py_VISIT(st->ProtocolError);
    Py_VISIT(st->ZMQError);
    Py_VISIT(st->Again);
    Py_VISIT(st->ContextTerminated);
    Py_VISIT(st->option_names);
    return 0;
}

static int zmtp_clear(PyObject *m)
{
    zmtp_state *st = get_state(m);
    Py_CLEAR(st->Frame_Type);
    Py_CLEAR(st->Decoder_Type);
    Py_CLEAR(st->Socket_Type);
    Py_CLEAR(st->Progress_Type);
    Py_CLEAR(st->InprocPipe_Type);
    Py_CLEAR(st->ProtocolError);
    Py_CLEAR(st->ZMQError);
    Py_CLEAR(st->Again);
    Py_CLEAR(st->ContextTerminated);
    Py_CLEAR(st->option_names);
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
