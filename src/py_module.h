/*
 * py_module.h - the private header of the CPython face (zmtp._zmtp),
 * shared by _zmtpmodule.c and the py_*.c files: the module state, the
 * objects more than one file looks inside (Frame, Progress, InprocPipe,
 * Socket), one group of declarations per file, and the static inline
 * helpers of the per-message path (frame_new_from, frame_fill_copy,
 * sock_target, sock_claim, sock_enter, sock_leave, sock_events_now), which stay inline
 * in each file that uses them.
 *
 * May include: Python.h and the C core's public headers (engine.h,
 *            progress.h, loopset.h, backend.h, codec.h; inproc.h, msg.h,
 *            arena.h through them).
 * Included by: _zmtpmodule.c and the py_*.c files only.  Never by the core
 *            below them (engine, backends, codec...): only the face sees
 *            Python.
 *
 * Non-static names of the face carry the zm_py_ prefix (internal: the
 * module is built with -fvisibility=hidden).
 */
#ifndef ZMTP_PY_MODULE_H
#define ZMTP_PY_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "backend.h"
#include "codec.h"
#include "engine.h"
#include "loopset.h"
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
    PyTypeObject *SendRef_Type;
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
    zm_page *props;  /* its connection's properties (a reference), or
                        NULL: Frame.get("User-Id"), get("Socket-Type") */
    PyObject *view;  /* cached .buffer (one memoryview, as pyzmq), or NULL */
    int tracked;     /* Frame(track=True): .tracker is the finished one */
    int owned;       /* Frame(data): its own copy, so .buffer is writable */
} FrameObject;

/* zmtp.sugar.tracker._FINISHED_TRACKER (a new reference), or NULL with an
 * exception: what a tracked send or Frame reports, zmtp having copied. */
/* Types made by the binding only.  Python 3.10+ says so with a type flag;
 * 3.9 has none, so there such a type gets a __new__ that refuses, as the
 * flag would (py_handles.c). */
#ifdef Py_TPFLAGS_DISALLOW_INSTANTIATION
#define ZM_NO_INSTANCES Py_TPFLAGS_DISALLOW_INSTANTIATION
#else
#define ZM_NO_INSTANCES 0
PyObject *zm_py_refuse_new(PyTypeObject *tp, PyObject *args, PyObject *kw);
#endif
PyObject *zm_py_finished_tracker(void);
/* zmtp.MessageTracker(*refs) (a tuple), or NULL with an exception. */
PyObject *zm_py_tracker_of(PyObject *refs);

/* Large frames sent by reference (issue 19; py_frame.c).  A _SendRef holds
 * the caller's buffer (a Py_buffer view) while the external page made for
 * it (arena.h) is queued; the page's release hook, which may run on the
 * progress thread without the GIL, only marks it done and pushes it on a
 * lock-free list, and a GIL-holding call drains the list (drops the views).
 * Frames at or above ZM_PY_SEND_REF_MIN bytes go by reference. */
#define ZM_PY_SEND_REF_MIN ((size_t)65536)
/* The threshold in force: ZM_PY_SEND_REF_MIN, or what
 * _SendRef._set_threshold() set (A/B measurements and tests only). */
extern size_t zm_py_send_ref_min;

extern PyType_Spec zm_py_sendref_spec;

/* The external page over view's bytes, whose release drops the view (moved
 * in: on success the caller must not release it).  *ref: a new reference
 * to the _SendRef (for a tracker).  NULL with an exception. */
zm_page *zm_py_sendref_page(zmtp_state *st, Py_buffer *view,
                            PyObject **ref);
/* Drop the views of released send references (GIL held; cheap when none). */
void zm_py_sendref_drain(void);
/* A Frame's tracker (a new reference): None untracked; for
 * Frame(data, copy=False, track=True) one done when data is let go; else
 * the finished one.  NULL with an exception. */
PyObject *zm_py_frame_tracker(FrameObject *self);

/* A new Frame that takes over the reference in *f. */
static inline PyObject *frame_new_from(PyTypeObject *tp, zm_frame *f)
{
    /* A GC type (a cached .buffer refers back to its Frame), left
     * untracked until that cycle can exist (Frame_get_buffer). */
    FrameObject *self = PyObject_GC_New(FrameObject, tp);

    if (self == NULL) {
        zm_frame_release(f);
        return NULL;
    }
    self->f = *f;
    self->bytes = NULL;
    self->props = NULL;
    self->view = NULL;
    self->tracked = 0;
    self->owned = 0;
    f->page = NULL;
    return (PyObject *)self;
}

/* Drop a reference to a connection's properties (Frame, Socket). */
static inline void props_clear(zm_page **props)
{
    if (*props != NULL)
        zm_page_decref(*props);
    *props = NULL;
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

/* ================================================================== */
/* py_curve.c: CURVE keys, libsodium's presence, the C Z85 codec       */
/* ================================================================== */

extern const char zm_py_curve_keypair_doc[];
PyObject *zm_py_curve_keypair(PyObject *module, PyObject *unused);
extern const char zm_py_curve_public_doc[];
PyObject *zm_py_curve_public(PyObject *module, PyObject *secret);
extern const char zm_py_curve_unavailable_doc[];
PyObject *zm_py_curve_unavailable(PyObject *module, PyObject *unused);
extern const char zm_py_z85_encode_doc[];
PyObject *zm_py_z85_encode(PyObject *module, PyObject *data);
extern const char zm_py_z85_decode_doc[];
PyObject *zm_py_z85_decode(PyObject *module, PyObject *text);
extern const char zm_py_curve_mech_doc[];
PyObject *zm_py_curve_mech(PyObject *module, PyObject *args);
extern const char zm_py_curve_mech_handle_doc[];
PyObject *zm_py_curve_mech_handle(PyObject *module, PyObject *args);
extern const char zm_py_curve_mech_encode_doc[];
PyObject *zm_py_curve_mech_encode(PyObject *module, PyObject *args);
extern const char zm_py_curve_mech_decode_doc[];
PyObject *zm_py_curve_mech_decode(PyObject *module, PyObject *args);

/* ================================================================== */
/* py_handles.c: the Progress and InprocPipe types                    */
/* ================================================================== */

extern PyType_Spec zm_py_progress_spec;
extern PyType_Spec zm_py_inproc_pipe_spec;

/* The context's progress thread, as a Python object owned by a Context. */
typedef struct {
    PyObject_HEAD
    zm_progress p;
    int running;
} ProgressObject;

/* The binder's end of an inproc pipe while it waits for a bind (the
 * context keeps it) or is handed over (Socket._inproc_offer).  Dropped
 * unused, it detaches the end: the connecting socket's connection ends. */
typedef struct {
    PyObject_HEAD
    zm_pipe *pipe; /* end 1's reference; NULL once offered */
    unsigned fork_gen;
} InprocPipeObject;

/* ================================================================== */
/* SocketObject, shared by the Socket files, the wait and poll        */
/* ================================================================== */

/* send/recv flags (libzmq numbers). */
#define Z_DONTWAIT 1
#define Z_SNDMORE 2

typedef struct SocketObject {
    PyObject_HEAD
    /* A shadow (Socket.shadow()): the socket whose engine socket this
     * object drives, a strong reference; NULL for a socket of its own.
     * Every method starts from sock_target(self), so both objects make
     * their calls on one zm_sock with one claim (ps.busy): two threads,
     * one on each, still get EBUSY.  A shadow's own fields below stay
     * unused (never initialised: closed). */
    struct SocketObject *shadow_of;
    zm_sock s;
    zm_psock ps;             /* registration with the progress thread */
    ProgressObject *progress; /* strong reference, or NULL */
    zmtp_state *st;
    int initialized;
    int closed;
    int terminated;          /* context terminated: calls raise ETERM */
    int released;            /* closed by its context's term(), not yet by
                              * the user: calls raise ETERM, `closed` reads
                              * False until close() (libzmq's ETERM state) */
    int rcvtimeo, sndtimeo;  /* ms, -1 = forever */
    int linger;              /* ms, -1 = forever */
    unsigned fork_gen;       /* zm_fork_gen() at init: the parent's in a
                                forked child, never used there */
    unsigned long owner;     /* thread ident of the call in progress */
    zm_backend *waiting_on;  /* atomic: backend of a blocked call */
    /* the rest of a message being received frame by frame */
    zm_msg cur;
    size_t cur_idx;
    unsigned char cur_prefix[255];
    zm_page *cur_props;      /* the properties of the connection the
                                message in cur came from (a reference), or
                                NULL; zero-copy Frames of it share them */
    zm_page *cur_props_src;  /* the same, borrowed from the engine: valid
                                only in the call that filled cur, taken
                                (sock_props_keep) only when a Frame or a
                                later call needs it */
    size_t cur_prefix_len;
    int cur_has_prefix;
    int rcvmore;
    int64_t wait_avg_ns;     /* how long this socket's waits take (EWMA) */
    int events_at_enter;     /* EVENTS as the call began (fileno() users) */
    zm_loopset loop;         /* Socket.fileno(): the loop set (loopset.h),
                                open from the first fileno() until close()
                                (also after term(), which makes it
                                readable for good) */
    PyObject *weakreflist;
} SocketObject;

#define DEFAULT_LINGER_MS 1000

/* The object whose engine socket a call uses: self, or what a shadow
 * shadows (never itself a shadow: py_socket.c's _shadow resolves chains). */
static inline SocketObject *sock_target(SocketObject *self)
{
    return self->shadow_of != NULL ? self->shadow_of : self;
}

/* ENOTSUP in a forked child, for what the parent made (one text each, so
 * that users and tests see the same words everywhere). */
#define FORK_ERROR_SOCKET                                                     \
    "this socket was created before fork(); it cannot be used in the child " \
    "(make a new Context there)"
#define FORK_ERROR_CONTEXT                                                    \
    "this Context was created before fork(); it cannot be used in the child " \
    "(make a new Context there)"

/* The flag term() sets from another thread (seq_cst: see py_wait.c,
 * wait_publish). */
static inline int sock_terminated(SocketObject *self)
{
    return __atomic_load_n(&self->terminated, __ATOMIC_SEQ_CST);
}

/*
 * Take the socket for a call: ps.busy FREE -> OWNER (progress.h).  Acquire
 * (pairs with the release in sock_leave and in the progress thread's
 * step): the engine state written by the previous holder, maybe on another
 * thread, is visible to this one.  While the progress thread holds it (one
 * short non-blocking step) we yield and try again; 0, or -1 when another
 * thread is inside a call, or when the socket is a parent's in a forked
 * child (callers check that first; its holder may not exist here, so we
 * must not wait for it).
 */
static inline int sock_claim(SocketObject *self)
{
    if (self->fork_gen != zm_fork_gen())
        return -1;
    for (;;) {
        int expected = ZM_BUSY_FREE;
        if (__atomic_compare_exchange_n(&self->ps.busy, &expected,
                                        ZM_BUSY_OWNER, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return 0;
        if (expected == ZM_BUSY_OWNER)
            return -1;
        sched_yield();
    }
}

/* The socket this thread last sent on, when its last zmtp call was that
 * send (compared, never dereferenced).  Back-to-back sends on one socket
 * may share a write (engine.h, ZM_COALESCE_NS); any other call in between
 * (a recv, a poll, a send elsewhere) means the thread is not in a burst,
 * and its next send goes out at once.  Defined in py_sockio.c; the wait
 * clears it.  Hidden: bound inside the module as a static is (no
 * interposition, one __tls_get_addr per function as before). */
extern _Thread_local const void *zm_py_last_send
    __attribute__((visibility("hidden")));

/* EVENTS now (poll, getsockopt(EVENTS)): one step, then what the engine
 * has, and POLLIN while a message is half received. */
static inline int sock_events_now(SocketObject *self)
{
    zm_sock_process(&self->s, zm_now_ns());
    return zm_sock_events(&self->s) |
           ((self->cur_idx < self->cur.n || self->cur_has_prefix) ? ZM_POLLIN : 0);
}

/* ================================================================== */
/* A call on a socket: its arguments, enter and leave                 */
/* ================================================================== */

/*
 * The one fast-call (METH_FASTCALL | METH_KEYWORDS) parser, with CPython's
 * rules: names[i] may be passed by position when i < npos, and by keyword
 * unless i < nposonly (before a "/"); the first nreq are required; a
 * parameter given twice (by position and keyword, or twice by keyword) is
 * a TypeError.  vals[i] gets the argument (borrowed) or NULL when it was
 * not passed.  Defined in py_sockio.c (its hot callers).
 */
#define FAST_PARAMS_MAX 4

typedef struct {
    const char *fname;
    int nparams, nposonly, npos, nreq;
    const char *names[FAST_PARAMS_MAX];
} fast_params;

int zm_py_parse_fast(const fast_params *p, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames, PyObject **vals);

/* A timeout in ms (-1: none) as a deadline on zm_now_ns() (-1: none). */
static inline int64_t deadline_from_ms(int ms)
{
    return ms < 0 ? -1 : zm_now_ns() + (int64_t)ms * 1000000;
}

/* Every public method starts with enter() and ends with leave(). */
static inline int sock_enter(SocketObject *self)
{
    if (self->closed || !self->initialized) {
        if (self->released)
            zm_py_raise_zmq(self->st, ZM_ETERM, "Context was terminated");
        else
            zm_py_raise_zmq(self->st, ENOTSOCK,
                            "Socket operation on closed socket");
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
                            "socket used from two threads at once (zmtp "
                            "sockets, like libzmq's, are not thread-safe)");
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

static inline void sock_leave(SocketObject *self)
{
    int wanted = 0;
    /* Read before the release; the GIL, held throughout, keeps any other
     * caller (and close()) out until we return. */
    int notify = self->progress != NULL && !self->closed;

    if (self->loop.epfd >= 0 && !self->closed)
        zm_loopset_sync(&self->loop, &self->s); /* in_call still set */
    if (self->progress != NULL) {
        wanted = self->closed ? 0 : zm_progress_wanted(&self->s);
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
    /* No call of ours holds it now: a close() on this thread that finds
     * the socket held (term() freeing it) must wait for that holder, not
     * take itself for it (sock_claim_terminated). */
    self->owner = 0;
    /* Release: pairs with the acquire in sock_claim (the next caller's or
     * the progress thread's): our engine writes are visible to it. */
    __atomic_store_n(&self->ps.busy, ZM_BUSY_FREE, __ATOMIC_RELEASE);
    /* After the release, so that the thread we may wake finds the socket
     * free; only atomics and the Progress object (we hold a reference) are
     * touched from here on.  An owner that waits on fileno() (an event
     * loop) needs no step of the thread for its reads: its loop set wakes
     * it on its own descriptors (loopset.h). */
    if (notify)
        zm_progress_call_done(&self->progress->p, &self->ps, wanted);
}

/* ================================================================== */
/* py_socket.c, py_sockio.c, py_sockopt.c: the Socket type            */
/* ================================================================== */

extern PyType_Spec zm_py_socket_spec;

/* py_sockio.c: messages in and out. */
extern const char zm_py_sock_send_doc[];
PyObject *zm_py_sock_send(SocketObject *self, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames);
extern const char zm_py_sock_send_multipart_doc[];
PyObject *zm_py_sock_send_multipart(SocketObject *self,
                                    PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames);
extern const char zm_py_sock_send_many_doc[];
PyObject *zm_py_sock_send_many(SocketObject *self, PyObject *args);
extern const char zm_py_sock_flush_doc[];
PyObject *zm_py_sock_flush(SocketObject *self, PyObject *unused);
extern const char zm_py_sock_buffers_doc[];
PyObject *zm_py_sock_buffers(SocketObject *self, PyObject *args);
extern const char zm_py_sock_recv_doc[];
PyObject *zm_py_sock_recv(SocketObject *self, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames);
extern const char zm_py_sock_recv_into_doc[];
PyObject *zm_py_sock_recv_into(SocketObject *self, PyObject *const *args,
                               Py_ssize_t nargs, PyObject *kwnames);
extern const char zm_py_sock_recv_multipart_doc[];
PyObject *zm_py_sock_recv_multipart(SocketObject *self,
                                    PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames);

/* py_sockopt.c: options, endpoints, stats. */
extern const char zm_py_set_option_names_doc[];
PyObject *zm_py_set_option_names(PyObject *module, PyObject *names);
extern const char zm_py_sock_setsockopt_doc[];
PyObject *zm_py_sock_setsockopt(SocketObject *self, PyObject *const *args,
                                Py_ssize_t nargs);
extern const char zm_py_sock_getsockopt_doc[];
PyObject *zm_py_sock_getsockopt(SocketObject *self, PyObject *arg);
extern const char zm_py_sock_monitor_fd_doc[];
extern const char zm_py_sock_adopt_fd_doc[];
PyObject *zm_py_sock_monitor_fd(SocketObject *self, PyObject *const *args,
                                Py_ssize_t nargs);
PyObject *zm_py_sock_adopt_fd(SocketObject *self, PyObject *const *args,
                              Py_ssize_t nargs);
PyObject *zm_py_sock_bind(SocketObject *self, PyObject *addr);
PyObject *zm_py_sock_connect(SocketObject *self, PyObject *addr);
PyObject *zm_py_sock_unbind(SocketObject *self, PyObject *addr);
PyObject *zm_py_sock_disconnect(SocketObject *self, PyObject *addr);
extern const char zm_py_sock_inproc_listen_doc[];
PyObject *zm_py_sock_inproc_listen(SocketObject *self, PyObject *arg);
extern const char zm_py_sock_inproc_connect_doc[];
PyObject *zm_py_sock_inproc_connect(SocketObject *self, PyObject *arg);
extern const char zm_py_sock_zap_connect_doc[];
PyObject *zm_py_sock_zap_connect(SocketObject *self, PyObject *unused);
extern const char zm_py_sock_inproc_offer_doc[];
PyObject *zm_py_sock_inproc_offer(SocketObject *self, PyObject *const *args,
                                  Py_ssize_t nargs);
PyObject *zm_py_sock_stats(SocketObject *self, PyObject *unused);

/* ================================================================== */
/* py_wait.c: the blocking wait                                       */
/* ================================================================== */

/* Wait until one of the sockets (entered by the caller) or plain fds may
 * have progress, a timer is due, or deadline (-1: none); the GIL released
 * around the wait only.  0 (step the sockets and call again), or -1 with an
 * exception.  `lingering`: close()'s linger, which term() does not end. */
int zm_py_wait_sockets(zmtp_state *st, SocketObject **socks, int nsocks,
                       const int *fds, const unsigned *fd_events, int nfds,
                       int64_t deadline, int lingering);
/* The proxy's wait (py_proxy.c): prepare with the GIL (opens this
 * thread's backend; 0 or -1 with an exception), then wait with the GIL
 * released: 0, 1 (a signal came: run the handlers), -ZM_ETERM, -errno. */
int zm_py_wait_prepare(zmtp_state *st);
int zm_py_wait_released(SocketObject **socks, int nsocks, int64_t deadline);
/* At exec: fork handlers, ZMTP_SPIN_US.  0, or -1 with an exception. */
int zm_py_wait_init(void);
extern const char zm_py_set_backend_doc[];
PyObject *zm_py_set_backend(PyObject *module, PyObject *arg);
extern const char zm_py_probe_backend_doc[];
PyObject *zm_py_probe_backend(PyObject *module, PyObject *arg);
extern const char zm_py_spin_us_doc[];
PyObject *zm_py_spin_us(PyObject *module, PyObject *args);

/* ================================================================== */
/* py_poll.c: _poll                                                   */
/* ================================================================== */

extern const char zm_py_poll_doc[];
PyObject *zm_py_poll(PyObject *module, PyObject *const *args,
                     Py_ssize_t nargs);

/* ================================================================== */
/* py_proxy.c: _proxy (zmtp.proxy, proxy_steerable, monitored_queue)   */
/* ================================================================== */

extern const char zm_py_proxy_doc[];
PyObject *zm_py_proxy(PyObject *module, PyObject *args);

/* ================================================================== */
/* py_introspect.c: introspection and test hooks                      */
/* ================================================================== */

extern const char zm_py_memory_stats_doc[];
PyObject *zm_py_memory_stats(PyObject *module, PyObject *unused);
extern const char zm_py_io_stats_doc[];
PyObject *zm_py_io_stats(PyObject *module, PyObject *unused);
extern const char zm_py_alloc_fail_doc[];
PyObject *zm_py_alloc_fail(PyObject *module, PyObject *args, PyObject *kw);
extern const char zm_py_alloc_fail_count_doc[];
PyObject *zm_py_alloc_fail_count(PyObject *module, PyObject *unused);
extern const char zm_py_hold_lock_doc[];
PyObject *zm_py_hold_lock_for_fork_test(PyObject *module, PyObject *args);

#endif /* ZMTP_PY_MODULE_H */
