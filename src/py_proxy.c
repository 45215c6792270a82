/*
 * py_proxy.c - the proxy's face: zmtp._zmtp._proxy, the loop behind
 * zmtp.proxy, zmtp.proxy_steerable, zmtp.device and monitored_queue.  It
 * enters every socket it is given (the proxy owns them for its duration: a
 * second thread's call on one gets EBUSY), releases the GIL, and then
 * alternates proxy.c's runs, engine steps and py_wait.c's wait
 * (zm_py_wait_released) until TERMINATE, term() or an error; the GIL is
 * taken back only to raise and to return, and, on the main thread (the
 * one that runs Python's signal handlers), to run them after an
 * interrupted sleep or every ZM_PROXY_SIGNAL_NS while idle.  A proxy on
 * another thread never takes it: it goes on while a long C call elsewhere
 * holds the GIL (ipykernel's heartbeat device).
 *
 * Owns:      _proxy.
 * May call:  Python.h, py_module.h (sock_enter / sock_leave, the wait),
 *            proxy.h.
 * Called by: _zmtpmodule.c's function table.  Never by the core.
 */
#include "py_module.h"
#include "proxy.h"

/* How long an idle proxy sleeps at most before it looks at Python's
 * signal flags (a signal that came while it was not asleep). */
#define ZM_PROXY_SIGNAL_NS ((int64_t)200000000) /* 200 ms */
/* Messages per direction before the other direction gets its turn
 * (libzmq's proxy_burst_size). */
#define ZM_PROXY_BURST 1000

/* The proxy's sockets: each engine socket once (frontend may be backend). */
typedef struct {
    SocketObject *socks[4];
    int n, entered;
} proxy_socks;

/* The engine socket of obj (a Socket, maybe a shadow), listed once; NULL
 * for None.  -1 with TypeError for anything else. */
static int proxy_add(zmtp_state *st, proxy_socks *ps, PyObject *obj,
                     const char *what, zm_sock **out)
{
    SocketObject *t;

    *out = NULL;
    if (obj == Py_None)
        return 0;
    if (!PyObject_TypeCheck(obj, st->Socket_Type)) {
        PyErr_Format(PyExc_TypeError,
                     "proxy: %s must be a zmtp Socket, not %.80s", what,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    t = sock_target((SocketObject *)obj);
    *out = &t->s;
    for (int i = 0; i < ps->n; i++)
        if (ps->socks[i] == t)
            return 0;
    ps->socks[ps->n++] = t;
    return 0;
}

/* A prefix argument: bytes or None. */
static int prefix_arg(PyObject *obj, const char **data, Py_ssize_t *n)
{
    *data = NULL;
    *n = 0;
    if (obj == Py_None)
        return 0;
    return PyBytes_AsStringAndSize(obj, (char **)data, n);
}

/* The loop, GIL released in between; 0 (TERMINATE), 1 (a signal handler
 * raised: its exception is set), or -errno.  `signals`: this is the main
 * thread, which runs Python's signal handlers. */
static int proxy_loop(zm_proxy *p, proxy_socks *ps, int signals)
{
    PyThreadState *ts = PyEval_SaveThread();
    int rc = 0;

    for (;;) {
        int64_t deadline;
        int i, moved;

        for (i = 0; i < ps->n; i++) {
            if (sock_terminated(ps->socks[i]))
                break;
            ps->socks[i]->s.now_ns = 0; /* time has passed */
        }
        if (i < ps->n) {
            rc = -ZM_ETERM;
            break;
        }
        moved = zm_proxy_run(p, ZM_PROXY_BURST);
        if (moved == 0) {
            /* The queues are empty: read what the kernel has. */
            for (i = 0; i < ps->n; i++)
                zm_sock_process(&ps->socks[i]->s, zm_now_ns());
            moved = zm_proxy_run(p, ZM_PROXY_BURST);
        }
        if (moved < 0 || p->state == ZM_PX_TERMINATED) {
            rc = moved < 0 ? moved : 0;
            break;
        }
        if (moved > 0)
            continue;
        /* Nothing can move: what coalescing held back goes now, then
         * sleep until a socket may have progress. */
        for (i = 0; i < ps->n; i++)
            zm_sock_flush(&ps->socks[i]->s, -1);
        deadline = signals ? zm_now_ns() + ZM_PROXY_SIGNAL_NS : -1;
        rc = zm_py_wait_released(ps->socks, ps->n, deadline);
        if (rc < 0)
            break;
        if (signals && (rc == 1 || zm_now_ns() >= deadline)) {
            int sig;
            PyEval_RestoreThread(ts);
            sig = PyErr_CheckSignals();
            ts = PyEval_SaveThread();
            if (sig < 0) {
                rc = 1;
                break;
            }
        }
        rc = 0;
    }
    for (int i = 0; i < ps->n; i++)
        if (!sock_terminated(ps->socks[i]))
            zm_sock_flush(&ps->socks[i]->s, -1);
    PyEval_RestoreThread(ts);
    return rc;
}

ZM_PY_DOC(zm_py_proxy_doc,
"_proxy(frontend, backend, capture, control, in_prefix=None,\n"
"       out_prefix=None, swap_ids=False, signals=False, /)\n--\n\n"
"Move whole messages between frontend and backend (one socket may be\n"
"both), each also to capture, steered by control (PAUSE, RESUME,\n"
"TERMINATE, STATISTICS), with the GIL released.  With in_prefix /\n"
"out_prefix (monitored_queue), capture copies start with the prefix of\n"
"their direction; swap_ids swaps every message's first two frames.\n"
"signals: the caller is the main thread (it runs signal handlers while\n"
"idle; elsewhere the GIL is never taken until the proxy ends).\n"
"Returns None after TERMINATE; raises ContextTerminated when the\n"
"context is terminated, ZMQError on a failed send or receive.");

PyObject *zm_py_proxy(PyObject *module, PyObject *args)
{
    zmtp_state *st = get_state(module);
    PyObject *fo, *bo, *co, *ko, *ipo = Py_None, *opo = Py_None;
    int swap = 0, signals = 0, rc;
    zm_sock *front, *back, *cap, *ctl;
    const char *ip, *op;
    Py_ssize_t ipn, opn;
    proxy_socks ps = {{NULL}, 0, 0};
    zm_proxy p;
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "OOOO|OOpp:_proxy", &fo, &bo, &co, &ko, &ipo,
                          &opo, &swap, &signals))
        return NULL;
    if (fo == Py_None || bo == Py_None) {
        PyErr_SetString(PyExc_TypeError,
                        "proxy: frontend and backend must be Sockets");
        return NULL;
    }
    if (proxy_add(st, &ps, fo, "frontend", &front) < 0 ||
        proxy_add(st, &ps, bo, "backend", &back) < 0 ||
        proxy_add(st, &ps, co, "capture", &cap) < 0 ||
        proxy_add(st, &ps, ko, "control", &ctl) < 0 ||
        prefix_arg(ipo, &ip, &ipn) < 0 || prefix_arg(opo, &op, &opn) < 0)
        return NULL;
    if (zm_py_wait_prepare(st) < 0)
        return NULL;
    /* The argument tuple holds the sockets (and a shadow holds what it
     * shadows) until we return. */
    for (; ps.entered < ps.n; ps.entered++)
        if (sock_enter(ps.socks[ps.entered]) < 0)
            goto done;
    for (int i = 0; i < ps.n; i++)
        ps.socks[i]->s.coalesce = 1; /* a proxy's sends come in bursts */
    zm_proxy_init(&p, front, back, cap, ctl);
    if (ip != NULL || op != NULL || swap)
        zm_proxy_set_prefixes(&p, ip, (size_t)ipn, op, (size_t)opn, swap);
    rc = proxy_loop(&p, &ps, signals);
    zm_proxy_free(&p);
    if (rc == 0) {
        Py_INCREF(Py_None);
        result = Py_None;
    } else if (rc == -ENOMEM)
        PyErr_NoMemory();
    else if (rc == -ZM_ETERM)
        zm_py_raise_zmq(st, ZM_ETERM, "Context was terminated");
    else if (rc < 0)
        zm_py_raise_zmq(st, -rc, NULL);
    /* rc == 1: the signal handler's exception is set */
done:
    while (ps.entered > 0)
        sock_leave(ps.socks[--ps.entered]);
    zm_py_last_send = NULL;
    return result;
}
