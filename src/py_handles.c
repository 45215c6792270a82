/*
 * py_handles.c - two small handles the Python facade holds: Progress (a
 * context's progress thread, progress.h) and InprocPipe (the binder's end
 * of an inproc pipe on its way to the bound socket, inproc.h).
 *
 * Owns:      the Progress and InprocPipe types (zm_py_progress_spec,
 *            zm_py_inproc_pipe_spec); their structs are in py_module.h
 *            (the Socket type and the fork test hook look inside).
 * May call:  Python.h, progress.h (start, stop), inproc.h (detach),
 *            backend.h (zm_fork_gen).
 * Called by: _zmtpmodule.c (the types, at exec) and Python code only;
 *            never by the progress thread or the inproc pipes below.
 */
#include "py_module.h"

#include <string.h>

/* ================================================================== */
/* Progress                                                           */
/* ================================================================== */

static PyObject *Progress_tp_new(PyTypeObject *tp, PyObject *args,
                                 PyObject *kw)
{
    ProgressObject *self;
    int rc;

    if (PyTuple_GET_SIZE(args) != 0 || (kw != NULL && PyDict_GET_SIZE(kw) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Progress() takes no arguments");
        return NULL;
    }
    self = (ProgressObject *)tp->tp_alloc(tp, 0);
    if (self == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = zm_progress_start(&self->p);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_Format(PyExc_OSError, "cannot start the progress thread: %s",
                     self->p.reason[0] ? self->p.reason : strerror(-rc));
        Py_DECREF(self);
        return NULL;
    }
    self->running = 1;
    return (PyObject *)self;
}

static PyObject *Progress_stop(ProgressObject *self, PyObject *unused)
{
    (void)unused;
    if (self->running) {
        self->running = 0;
        Py_BEGIN_ALLOW_THREADS
        zm_progress_stop(&self->p);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static void Progress_dealloc(ProgressObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    if (self->running) {
        self->running = 0;
        zm_progress_stop(&self->p);
    }
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef Progress_methods[] = {
    {"stop", (PyCFunction)Progress_stop, METH_NOARGS,
     "stop()\n--\n\nStop and join the thread (sockets stay usable, driven "
     "only by their owners)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Progress_slots[] = {
    {Py_tp_new, Progress_tp_new},
    {Py_tp_dealloc, Progress_dealloc},
    {Py_tp_methods, Progress_methods},
    {Py_tp_doc, (void *)"Progress(): a context's progress thread (C, no GIL)."},
    {0, NULL},
};

PyType_Spec zm_py_progress_spec = {
    .name = "zmtp._zmtp.Progress",
    .basicsize = sizeof(ProgressObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = Progress_slots,
};

/* ================================================================== */
/* InprocPipe                                                         */
/* ================================================================== */

static void InprocPipe_dealloc(InprocPipeObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    /* Not in a forked child: the pipe's lock may be held by a thread of
     * the parent, its peer is the parent's socket (leaked here). */
    if (self->pipe != NULL && self->fork_gen == zm_fork_gen())
        zm_pipe_detach(self->pipe, 1);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

#ifndef Py_TPFLAGS_DISALLOW_INSTANTIATION
PyObject *zm_py_refuse_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    (void)args;
    (void)kw;
    return PyErr_Format(PyExc_TypeError, "cannot create '%s' instances", tp->tp_name);
}
#endif

static PyType_Slot InprocPipe_slots[] = {
    {Py_tp_dealloc, InprocPipe_dealloc},
#ifndef Py_TPFLAGS_DISALLOW_INSTANTIATION
    {Py_tp_new, (void *)zm_py_refuse_new},
#endif
    {Py_tp_doc, (void *)"The binder's end of an inproc pipe (internal)."},
    {0, NULL},
};

PyType_Spec zm_py_inproc_pipe_spec = {
    .name = "zmtp._zmtp.InprocPipe",
    .basicsize = sizeof(InprocPipeObject),
    .flags = Py_TPFLAGS_DEFAULT | ZM_NO_INSTANCES,
    .slots = InprocPipe_slots,
};
