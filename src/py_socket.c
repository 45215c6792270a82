/*
 * py_socket.c - the zmtp Socket type (zmtp._zmtp.Socket, subclassed by
 * zmtp.Socket): the object (SocketObject, in py_module.h), its life
 * (new, init, close, the context's _terminate / _release, dealloc) and
 * its method table, which names the methods of py_sockio.c (messages)
 * and py_sockopt.c (options, endpoints, stats).
 *
 * Owns:      Socket's lifecycle, close's linger, the Socket type spec
 *            (zm_py_socket_spec) and method table, shadows (a second
 *            object on the same engine socket: _shadow_attach, and the
 *            table's entries, which all go through sock_target()).
 * May call:  Python.h, engine.h (zm_sock_init, zm_sock_destroy,
 *            zm_sock_process, zm_sock_pending_out), progress.h (add,
 *            remove), backend.h (zm_backend_wake, zm_fork_gen), py_wait.c
 *            (close's linger), py_sockio.c / py_sockopt.c (the methods it
 *            lists), py_errors.c.
 * Called by: _zmtpmodule.c (the type, at exec) and Python code only;
 *            never by the engine or the progress thread (they see the
 *            zm_sock inside, never the object).
 */
#include "py_module.h"

#include <structmember.h>

#include <errno.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* Life: new, init, dealloc                                           */
/* ------------------------------------------------------------------ */

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
    zm_loopset_init(&self->loop);
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
        zm_loopset_close(&self->loop); /* also kept since term() */
    }
    Py_CLEAR(self->progress);
    Py_CLEAR(self->shadow_of); /* a shadow never closes what it shadows */
    zm_msg_clear(&self->cur);
    props_clear(&self->cur_props);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int Socket_traverse(SocketObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->progress);
    Py_VISIT(self->shadow_of);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Close, termination                                                 */
/* ------------------------------------------------------------------ */

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
        if (!by_term) {
            self->released = 0; /* the user's close() after term() */
            /* Kept readable since term() (zm_loopset_terminate); an
             * event loop was told first (remove_reader). */
            if (self->fork_gen == zm_fork_gen())
                zm_loopset_close(&self->loop);
        }
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
            if (!by_term) {
                self->released = 0;
                zm_loopset_close(&self->loop);
            }
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
        if (zm_py_wait_sockets(self->st, &self, 1, NULL, NULL, 0, deadline,
                               1) < 0) {
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
    /* fileno(): the user's close() closes it (the loop was told first:
     * a closed fd under a selector is a bug); term() keeps it, readable
     * for good, until the user's close(). */
    if (by_term)
        zm_loopset_terminate(&self->loop);
    else
        zm_loopset_close(&self->loop);
    zm_msg_clear(&self->cur);
    props_clear(&self->cur_props);
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

    if (zm_py_parse_fast(&params, args, nargs, kwnames, &lobj) < 0)
        return NULL;
    return sock_close(sock_target(self), lobj != NULL ? lobj : Py_None, 0);
}

PyDoc_STRVAR(Socket_release_doc,
"_release(linger, /)\n--\n\n"
"Context.term(): close a terminated socket (after its _terminate()) with\n"
"linger ms (None: LINGER), waiting for a call another thread is inside to\n"
"return.  Later calls raise ContextTerminated and `closed` stays False\n"
"until the user's close(), as libzmq's sockets after zmq_ctx_term.");

static PyObject *Socket_release(SocketObject *self, PyObject *lobj)
{
    self = sock_target(self);
    if (!sock_terminated(self)) {
        PyErr_SetString(PyExc_RuntimeError, "_release() before _terminate()");
        return NULL;
    }
    return sock_close(self, lobj, 1);
}

static PyObject *Socket_get_closed(SocketObject *self, void *closure)
{
    (void)closure;
    self = sock_target(self);
    /* Closed by term() is not closed yet for the user (libzmq: the socket
     * exists, in ETERM, until zmq_close). */
    return PyBool_FromLong(self->closed && !self->released);
}

static PyObject *Socket_get_terminated(SocketObject *self, void *closure)
{
    (void)closure;
    self = sock_target(self);
    return PyBool_FromLong(sock_terminated(self));
}

static PyObject *Socket_terminate(SocketObject *self, PyObject *unused)
{
    zm_backend *be;

    (void)unused;
    self = sock_target(self);
    /* seq_cst store then load, the mirror of the wait's (py_wait.c,
     * wait_publish): a thread about to block either sees the flag or is
     * woken here. */
    __atomic_store_n(&self->terminated, 1, __ATOMIC_SEQ_CST);
    /* A loop waiting on fileno() wakes, and its next call raises ETERM
     * (_release signals it again after a call that drained it). */
    if (self->fork_gen == zm_fork_gen())
        zm_loopset_terminate(&self->loop);
    be = __atomic_load_n(&self->waiting_on, __ATOMIC_SEQ_CST);
    if (be != NULL)
        zm_backend_wake(be);
    Py_RETURN_NONE;
}

static PyObject *Socket_in_use(SocketObject *self, PyObject *unused)
{
    (void)unused;
    self = sock_target(self);
    /* Acquire: pairs with the release in sock_leave (a caller that sees the
     * call over also sees its effects, e.g. `closed`). */
    return PyBool_FromLong(__atomic_load_n(&self->ps.busy, __ATOMIC_ACQUIRE) ==
                           ZM_BUSY_OWNER);
}

/* ------------------------------------------------------------------ */
/* Shadows                                                            */
/* ------------------------------------------------------------------ */

/* The methods of other files, through sock_target(): a shadow's call is
 * its original's (one predicted branch and a tail call on the way). */
#define TARGET_FASTKW(fn)                                                     \
    static PyObject *fn##_t(SocketObject *self, PyObject *const *args,        \
                            Py_ssize_t nargs, PyObject *kwnames)              \
    {                                                                         \
        return fn(sock_target(self), args, nargs, kwnames);                   \
    }
#define TARGET_FAST(fn)                                                       \
    static PyObject *fn##_t(SocketObject *self, PyObject *const *args,        \
                            Py_ssize_t nargs)                                 \
    {                                                                         \
        return fn(sock_target(self), args, nargs);                            \
    }
#define TARGET_O(fn)                                                          \
    static PyObject *fn##_t(SocketObject *self, PyObject *arg)                \
    {                                                                         \
        return fn(sock_target(self), arg);                                    \
    }
TARGET_FASTKW(zm_py_sock_send)
TARGET_FASTKW(zm_py_sock_recv)
TARGET_FASTKW(zm_py_sock_send_multipart)
TARGET_FASTKW(zm_py_sock_recv_multipart)
TARGET_FASTKW(zm_py_sock_recv_into)
TARGET_O(zm_py_sock_send_many)
TARGET_O(zm_py_sock_flush)
TARGET_O(zm_py_sock_buffers)
TARGET_FAST(zm_py_sock_setsockopt)
TARGET_O(zm_py_sock_getsockopt)
TARGET_O(zm_py_sock_bind)
TARGET_O(zm_py_sock_connect)
TARGET_O(zm_py_sock_unbind)
TARGET_O(zm_py_sock_disconnect)
TARGET_O(zm_py_sock_inproc_listen)
TARGET_O(zm_py_sock_inproc_connect)
TARGET_O(zm_py_sock_zap_connect)
TARGET_FAST(zm_py_sock_inproc_offer)
TARGET_FAST(zm_py_sock_monitor_fd)
TARGET_FAST(zm_py_sock_adopt_fd)
TARGET_O(zm_py_sock_stats)
#undef TARGET_FASTKW
#undef TARGET_FAST
#undef TARGET_O

PyDoc_STRVAR(Socket_shadow_doc,
"_shadow_attach(socket, /)\n--\n\n"
"Make this new, uninitialised object a shadow of `socket`: its calls use\n"
"that socket's engine socket (a shadow of a shadow shadows the original).\n"
"It keeps the original object alive and never closes it when collected;\n"
"its close() closes the shared socket, as pyzmq's shadows do.  zmtp.Socket's\n"
"shadow= argument calls it.");

static PyObject *Socket_shadow(SocketObject *self, PyObject *arg)
{
    SocketObject *orig;

    if (!PyObject_TypeCheck(arg, self->st->Socket_Type)) {
        PyErr_Format(PyExc_TypeError, "_shadow_attach() takes a zmtp Socket, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    if (self->initialized || self->shadow_of != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Socket already initialised");
        return NULL;
    }
    orig = sock_target((SocketObject *)arg);
    if (orig == self) {
        PyErr_SetString(PyExc_ValueError, "a socket cannot shadow itself");
        return NULL;
    }
    if (!orig->initialized || (orig->closed && !orig->released))
        return zm_py_raise_zmq(self->st, ENOTSOCK,
                               "cannot shadow a closed socket");
    Py_INCREF(orig);
    self->shadow_of = orig;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* The type                                                           */
/* ------------------------------------------------------------------ */

/* CFUNC: a method whose signature is not PyCFunction's (fast-call,
 * keywords). */
#define CFUNC(f) (PyCFunction)(void (*)(void))(f)
static PyMethodDef Socket_methods[] = {
    /* py_sockio.c */
    {"send", CFUNC(zm_py_sock_send_t), METH_FASTCALL | METH_KEYWORDS,
     zm_py_sock_send_doc},
    {"recv", CFUNC(zm_py_sock_recv_t), METH_FASTCALL | METH_KEYWORDS,
     zm_py_sock_recv_doc},
    {"send_multipart", CFUNC(zm_py_sock_send_multipart_t),
     METH_FASTCALL | METH_KEYWORDS, zm_py_sock_send_multipart_doc},
    {"recv_multipart", CFUNC(zm_py_sock_recv_multipart_t),
     METH_FASTCALL | METH_KEYWORDS, zm_py_sock_recv_multipart_doc},
    {"recv_into", CFUNC(zm_py_sock_recv_into_t), METH_FASTCALL | METH_KEYWORDS,
     zm_py_sock_recv_into_doc},
    {"_send_many", (PyCFunction)zm_py_sock_send_many_t, METH_VARARGS,
     zm_py_sock_send_many_doc},
    {"flush", (PyCFunction)zm_py_sock_flush_t, METH_NOARGS,
     zm_py_sock_flush_doc},
    {"_buffers", (PyCFunction)zm_py_sock_buffers_t, METH_VARARGS,
     zm_py_sock_buffers_doc},
    /* py_socket.c (this file) */
    {"close", CFUNC(Socket_close), METH_FASTCALL | METH_KEYWORDS,
     Socket_close_doc},
    {"_terminate", (PyCFunction)Socket_terminate, METH_NOARGS,
     "Mark the context terminated and wake a blocked call."},
    {"_release", (PyCFunction)Socket_release, METH_O, Socket_release_doc},
    {"_shadow_attach", (PyCFunction)Socket_shadow, METH_O, Socket_shadow_doc},
    {"_in_use", (PyCFunction)Socket_in_use, METH_NOARGS,
     "True while a call on this socket is in progress."},
    /* py_sockopt.c */
    {"setsockopt", CFUNC(zm_py_sock_setsockopt_t), METH_FASTCALL,
     zm_py_sock_setsockopt_doc},
    {"getsockopt", (PyCFunction)zm_py_sock_getsockopt_t, METH_O,
     zm_py_sock_getsockopt_doc},
    {"bind", (PyCFunction)zm_py_sock_bind_t, METH_O,
     "bind(addr)\n--\n\nBind to tcp://host:port (port * for any) or ipc://path."},
    {"connect", (PyCFunction)zm_py_sock_connect_t, METH_O,
     "connect(addr)\n--\n\nConnect to tcp://host:port or ipc://path (in the "
     "background; reconnects)."},
    {"unbind", (PyCFunction)zm_py_sock_unbind_t, METH_O,
     "unbind(addr)\n--\n\nStop listening on a bound endpoint."},
    {"disconnect", (PyCFunction)zm_py_sock_disconnect_t, METH_O,
     "disconnect(addr)\n--\n\nDrop a connected endpoint."},
    {"_inproc_listen", (PyCFunction)zm_py_sock_inproc_listen_t, METH_O,
     zm_py_sock_inproc_listen_doc},
    {"_inproc_connect", (PyCFunction)zm_py_sock_inproc_connect_t, METH_O,
     zm_py_sock_inproc_connect_doc},
    {"_zap_connect", (PyCFunction)zm_py_sock_zap_connect_t, METH_NOARGS,
     zm_py_sock_zap_connect_doc},
    {"_inproc_offer", CFUNC(zm_py_sock_inproc_offer_t), METH_FASTCALL,
     zm_py_sock_inproc_offer_doc},
    {"_monitor_fd", CFUNC(zm_py_sock_monitor_fd_t), METH_FASTCALL,
     zm_py_sock_monitor_fd_doc},
    {"_adopt_fd", CFUNC(zm_py_sock_adopt_fd_t), METH_FASTCALL,
     zm_py_sock_adopt_fd_doc},
    {"stats", (PyCFunction)zm_py_sock_stats_t, METH_NOARGS,
     "stats()\n--\n\nCounters since the socket was made: accepted, connected,\n"
     "disconnected, handshake_failed, handshake_timeouts, heartbeat_timeouts,\n"
     "dropped_messages, subscriptions_refused, monitor_dropped,\n"
     "progress_steps, accepts_paused, and protocol_errors {code: n}\n"
     "(docs/reliability.md says what each counts)."},
    {NULL, NULL, 0, NULL},
};
#undef CFUNC

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

PyType_Spec zm_py_socket_spec = {
    .name = "zmtp._zmtp.Socket",
    .basicsize = sizeof(SocketObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Socket_slots,
};
