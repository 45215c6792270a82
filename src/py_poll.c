/*
 * py_poll.c - _poll(items, timeout_ms): zmq_poll over zmtp sockets and
 * plain file descriptors (zmtp.Poller and zmtp.select build on it).  Each
 * distinct socket is entered once, stepped and asked for its events; when
 * none is ready the one wait of py_wait.c covers them all and the fds.
 *
 * Owns:      _poll (zm_py_poll and its docstring, named in _zmtpmodule.c's
 *            function table).
 * May call:  Python.h, poll(2) (a plain fd's readiness now), engine.h
 *            (through sock_events_now), py_wait.c, py_errors.c.
 * Called by: _zmtpmodule.c's function table only; never by the core.
 */
#include "py_module.h"

#include <poll.h>

ZM_PY_DOC(zm_py_poll_doc,
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
    obj = (PyObject *)sock_target((SocketObject *)obj); /* a shadow's */
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

/* One _poll call: its entries and the distinct sockets and fds they name. */
typedef struct {
    Py_ssize_t n;          /* entries */
    poll_item *items;
    SocketObject **socks;  /* distinct; a reference of ours each */
    int *sock_ev;          /* their events, this round */
    int *fds;              /* distinct plain fds */
    unsigned *fd_ev;       /* the ZM_IO_* events wanted of each */
    int nsocks, nfds;
    int entered;           /* socks[0..entered) are entered */
} poll_set;

/* Step: room for n entries; 0, or -1 with an exception. */
static int poll_alloc(poll_set *ps, Py_ssize_t n)
{
    ps->n = n;
    ps->items = PyMem_New(poll_item, (size_t)n + 1);
    ps->socks = PyMem_New(SocketObject *, (size_t)n + 1);
    ps->sock_ev = PyMem_New(int, (size_t)n + 1);
    ps->fds = PyMem_New(int, (size_t)n + 1);
    ps->fd_ev = PyMem_New(unsigned, (size_t)n + 1);
    if (!ps->items || !ps->socks || !ps->sock_ev || !ps->fds || !ps->fd_ev) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Step: read the entries (socket or fd, events); 0, or -1 with an
 * exception. */
static int poll_read_items(poll_set *ps, zmtp_state *st, PyObject *seq)
{
    poll_item *items = ps->items;

    for (Py_ssize_t i = 0; i < ps->n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i), *obj;
        long ev;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "poll items are (socket, events)");
            return -1;
        }
        obj = PyTuple_GET_ITEM(item, 0);
        ev = PyLong_AsLong(PyTuple_GET_ITEM(item, 1));
        if (ev == -1 && PyErr_Occurred())
            return -1;
        items[i].mask = (unsigned)ev;
        if (PyObject_TypeCheck(obj, st->Socket_Type)) {
            items[i].sock = poll_sock_slot(ps->socks, &ps->nsocks, obj);
            items[i].fd = -1;
        } else {
            int fd = PyObject_AsFileDescriptor(obj);
            if (fd < 0)
                return -1;
            items[i].sock = -1;
            items[i].fd = fd;
            poll_fd_slot(ps->fds, ps->fd_ev, &ps->nfds, fd,
                         ((ev & ZM_POLLIN) ? ZM_IO_IN : 0u) |
                             ((ev & ZM_POLLOUT) ? ZM_IO_OUT : 0u));
        }
    }
    return 0;
}

/* Step: the entries ready now (each socket stepped once), as a list of
 * (index, revents); NULL with an exception. */
static PyObject *poll_ready(poll_set *ps)
{
    poll_item *items = ps->items;
    PyObject *out;
    int k;

    for (k = 0; k < ps->nsocks; k++)
        ps->sock_ev[k] = sock_events_now(ps->socks[k]);
    out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < ps->n; i++) {
        int ev = items[i].sock >= 0
                     ? ps->sock_ev[items[i].sock] & (int)items[i].mask
                     : poll_fd_now(items[i].fd, items[i].mask);
        if (ev) {
            PyObject *t = Py_BuildValue("(ni)", i, ev);
            if (t == NULL || PyList_Append(out, t) < 0) {
                Py_XDECREF(t);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(t);
        }
    }
    return out;
}

/* Step: leave the sockets entered, drop our references, free. */
static void poll_release(poll_set *ps)
{
    int k;

    for (k = 0; k < ps->entered; k++)
        sock_leave(ps->socks[k]);
    for (k = 0; k < ps->nsocks; k++)
        Py_DECREF(ps->socks[k]);
    PyMem_Free(ps->items);
    PyMem_Free(ps->socks);
    PyMem_Free(ps->sock_ev);
    PyMem_Free(ps->fds);
    PyMem_Free(ps->fd_ev);
}

PyObject *zm_py_poll(PyObject *module, PyObject *const *args,
                     Py_ssize_t nargs)
{
    zmtp_state *st = get_state(module);
    PyObject *seq, *out = NULL;
    poll_set ps = {0};
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
    if (poll_alloc(&ps, PySequence_Fast_GET_SIZE(seq)) < 0 ||
        poll_read_items(&ps, st, seq) < 0)
        goto done;
    for (; ps.entered < ps.nsocks; ps.entered++)
        if (sock_enter(ps.socks[ps.entered]) < 0)
            goto done;
    for (;;) {
        out = poll_ready(&ps);
        if (out == NULL || PyList_GET_SIZE(out) > 0 || tmo == 0 ||
            (deadline >= 0 && zm_now_ns() >= deadline))
            break;
        Py_CLEAR(out);
        if (zm_py_wait_sockets(st, ps.socks, ps.nsocks, ps.fds, ps.fd_ev,
                               ps.nfds, deadline, 0) < 0)
            goto done;
    }
done:
    poll_release(&ps);
    Py_DECREF(seq);
    return out;
}
