/*
 * _zmtpmodule.c - the module zmtp._zmtp, assembled: its state (zmtp_state,
 * py_module.h), its exec step (multi-phase init: types, exceptions,
 * constants), and its function table.  Each type and function lives in
 * its own py_*.c file:
 *
 *   py_frame.c      Frame               py_socket.c   Socket: life, close,
 *   py_decoder.c    Decoder                           method table
 *   py_codec.c      encode_* parse_*    py_sockio.c   send / recv paths
 *   py_errors.c     raising             py_sockopt.c  options, endpoints,
 *   py_handles.c    Progress,                         stats
 *                   InprocPipe          py_wait.c     the blocking wait
 *   py_introspect.c stats, test hooks   py_poll.c     _poll
 *
 * Owns:      the module definition, exec, traverse / clear / free.
 * May call:  Python.h, the py_*.c files through py_module.h, and the core
 *            headers for the constants it exports.
 * Called by: the interpreter (PyInit__zmtp) only.  No py_*.c file calls
 *            into it: they reach the module state through get_state().
 */
#include "py_module.h"

/* The module's functions, by the file that defines them.  CFUNC: a
 * function whose signature is not PyCFunction's (fast-call, keywords). */
#define CFUNC(f) (PyCFunction)(void (*)(void))(f)
static PyMethodDef module_methods[] = {
    /* py_codec.c */
    {"encode_greeting", CFUNC(zm_py_encode_greeting),
     METH_VARARGS | METH_KEYWORDS, zm_py_encode_greeting_doc},
    {"encode_frame", CFUNC(zm_py_encode_frame), METH_FASTCALL,
     zm_py_encode_frame_doc},
    {"encode_message", (PyCFunction)zm_py_encode_message, METH_O,
     zm_py_encode_message_doc},
    {"encode_command", CFUNC(zm_py_encode_command), METH_FASTCALL,
     zm_py_encode_command_doc},
    {"encode_ready", (PyCFunction)zm_py_encode_ready, METH_O,
     zm_py_encode_ready_doc},
    {"encode_error", (PyCFunction)zm_py_encode_error, METH_O,
     zm_py_encode_error_doc},
    {"encode_ping", CFUNC(zm_py_encode_ping), METH_FASTCALL,
     zm_py_encode_ping_doc},
    {"encode_pong", CFUNC(zm_py_encode_pong), METH_FASTCALL,
     zm_py_encode_pong_doc},
    {"encode_subscription", CFUNC(zm_py_encode_subscription),
     METH_VARARGS | METH_KEYWORDS, zm_py_encode_subscription_doc},
    {"parse_command", (PyCFunction)zm_py_parse_command, METH_O,
     zm_py_parse_command_doc},
    {"parse_subscription_message",
     (PyCFunction)zm_py_parse_subscription_message, METH_O,
     zm_py_parse_subscription_message_doc},
    {"strerror", (PyCFunction)zm_py_strerror, METH_O, zm_py_strerror_doc},
    /* py_introspect.c */
    {"memory_stats", (PyCFunction)zm_py_memory_stats, METH_NOARGS,
     zm_py_memory_stats_doc},
    {"io_stats", (PyCFunction)zm_py_io_stats, METH_NOARGS,
     zm_py_io_stats_doc},
    {"_alloc_fail", CFUNC(zm_py_alloc_fail), METH_VARARGS | METH_KEYWORDS,
     zm_py_alloc_fail_doc},
    {"_alloc_fail_count", (PyCFunction)zm_py_alloc_fail_count, METH_NOARGS,
     zm_py_alloc_fail_count_doc},
    {"_hold_lock_for_fork_test", (PyCFunction)zm_py_hold_lock_for_fork_test,
     METH_VARARGS, zm_py_hold_lock_doc},
    /* py_errors.c, py_sockopt.c: set once by the facade at import */
    {"_set_errors", CFUNC(zm_py_set_errors), METH_FASTCALL,
     zm_py_set_errors_doc},
    {"_set_option_names", (PyCFunction)zm_py_set_option_names, METH_O,
     zm_py_set_option_names_doc},
    /* py_wait.c */
    {"_set_backend", (PyCFunction)zm_py_set_backend, METH_O,
     zm_py_set_backend_doc},
    {"_probe_backend", (PyCFunction)zm_py_probe_backend, METH_O,
     zm_py_probe_backend_doc},
    {"_spin_us", (PyCFunction)zm_py_spin_us, METH_VARARGS, zm_py_spin_us_doc},
    /* py_curve.c */
    {"curve_keypair", (PyCFunction)zm_py_curve_keypair, METH_NOARGS,
     zm_py_curve_keypair_doc},
    {"curve_public", (PyCFunction)zm_py_curve_public, METH_O,
     zm_py_curve_public_doc},
    {"_curve_unavailable", (PyCFunction)zm_py_curve_unavailable, METH_NOARGS,
     zm_py_curve_unavailable_doc},
    {"_z85_encode", (PyCFunction)zm_py_z85_encode, METH_O,
     zm_py_z85_encode_doc},
    {"_z85_decode", (PyCFunction)zm_py_z85_decode, METH_O,
     zm_py_z85_decode_doc},
    {"_curve_mech", (PyCFunction)zm_py_curve_mech, METH_VARARGS,
     zm_py_curve_mech_doc},
    {"_curve_mech_handle", (PyCFunction)zm_py_curve_mech_handle,
     METH_VARARGS, zm_py_curve_mech_handle_doc},
    {"_curve_mech_encode", (PyCFunction)zm_py_curve_mech_encode,
     METH_VARARGS, zm_py_curve_mech_encode_doc},
    {"_curve_mech_decode", (PyCFunction)zm_py_curve_mech_decode,
     METH_VARARGS, zm_py_curve_mech_decode_doc},
    /* py_poll.c */
    {"_poll", CFUNC(zm_py_poll), METH_FASTCALL, zm_py_poll_doc},
    /* py_proxy.c */
    {"_proxy", (PyCFunction)zm_py_proxy, METH_VARARGS, zm_py_proxy_doc},
    {NULL, NULL, 0, NULL},
};
#undef CFUNC

static int add_int(PyObject *m, const char *name, long v)
{
    return PyModule_AddIntConstant(m, name, v);
}

/* One type from its spec, in the state and the module. */
static int add_type(PyObject *m, PyType_Spec *spec, PyTypeObject **slot)
{
    *slot = (PyTypeObject *)PyType_FromModuleAndSpec(m, spec, NULL);
    if (*slot == NULL || PyModule_AddType(m, *slot) < 0)
        return -1;
    return 0;
}

/* Exec step: the types (Socket last: it names Progress and InprocPipe)
 * and ProtocolError. */
static int add_types(PyObject *m, zmtp_state *st)
{
    if (add_type(m, &zm_py_frame_spec, &st->Frame_Type) < 0 ||
        add_type(m, &zm_py_decoder_spec, &st->Decoder_Type) < 0 ||
        add_type(m, &zm_py_progress_spec, &st->Progress_Type) < 0 ||
        add_type(m, &zm_py_inproc_pipe_spec, &st->InprocPipe_Type) < 0 ||
        add_type(m, &zm_py_sendref_spec, &st->SendRef_Type) < 0 ||
        add_type(m, &zm_py_socket_spec, &st->Socket_Type) < 0)
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
    return 0;
}

/* Exec step: the integer constants (codec events, commands and errors,
 * sizes, zmtp's errno values). */
static int add_constants(PyObject *m)
{
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
    ADD("ERR_V2_GREETING", ZM_ERR_V2_GREETING);
    ADD("ERR_V2_SOCKET_TYPE", ZM_ERR_V2_SOCKET_TYPE);
    ADD("ERR_V2_SECURITY", ZM_ERR_V2_SECURITY);
    ADD("GREETING_SIZE", ZM_GREETING_SIZE);
    ADD("READ_BUF_SIZE_DEFAULT", ZM_PAGE_SIZE_DEFAULT);
    ADD("READ_BUF_SIZE_MIN", ZM_PAGE_SIZE_MIN);
    ADD("MAX_FRAMES_DEFAULT", ZM_MAX_FRAMES_DEFAULT);
    ADD("HANDSHAKES_MAX", ZM_HANDSHAKES_MAX);
    ADD("HANDSHAKE_FRAME_MAX", ZM_HANDSHAKE_FRAME_MAX);
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

static int zmtp_exec(PyObject *m)
{
    if (zm_py_wait_init() < 0 || add_types(m, get_state(m)) < 0 ||
        add_constants(m) < 0)
        return -1;
    return 0;
}

static int zmtp_traverse(PyObject *m, visitproc visit, void *arg)
{
    zmtp_state *st = get_state(m);
    Py_VISIT(st->Frame_Type);
    Py_VISIT(st->SendRef_Type);
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
    Py_CLEAR(st->SendRef_Type);
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
