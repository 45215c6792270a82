/*
 * py_codec.c - the codec's module functions: encode_* (ZMTP greetings,
 * frames, messages and commands as bytes), parse_command,
 * parse_subscription_message, strerror.  Pure functions of their
 * arguments: no socket, no state but the module's exceptions.
 *
 * Owns:      the functions above and their docstrings (listed in
 *            _zmtpmodule.c's function table).
 * May call:  Python.h, codec.h (zm_encode_*, zm_command_parse, zm_wbuf),
 *            py_errors.c.
 * Called by: _zmtpmodule.c's function table only.  Never by the core (the
 *            engine encodes and decodes with codec.h directly).
 */
#include "py_module.h"

/* Bytes-like argument (str refused with a clear message). */
static int get_bytes_arg(PyObject *obj, Py_buffer *view, const char *what)
{
    if (PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "%s must be bytes-like, not str (encode it first)", what);
        return -1;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes-like, not %.100s",
                     what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}

static PyObject *wbuf_to_bytes(zmtp_state *st, zm_wbuf *w, int rc)
{
    PyObject *out = NULL;

    if (rc < 0)
        zm_py_raise_codec_error(st, rc);
    else
        out = PyBytes_FromStringAndSize((const char *)w->data,
                                        (Py_ssize_t)w->len);
    zm_wbuf_free(w);
    return out;
}

ZM_PY_DOC(zm_py_encode_greeting_doc,
"encode_greeting(minor=1, mechanism=b'NULL', as_server=False)\n--\n\n"
"The 64-octet ZMTP 3.minor greeting.");

PyObject *zm_py_encode_greeting(PyObject *module, PyObject *args,
                                PyObject *kw)
{
    static char *kwlist[] = {"minor", "mechanism", "as_server", NULL};
    unsigned char out[ZM_GREETING_SIZE];
    int minor = 1, as_server = 0, rc;
    const char *mech = "NULL";
    Py_ssize_t mech_len = 4;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|iy#p:encode_greeting", kwlist,
                                     &minor, &mech, &mech_len, &as_server))
        return NULL;
    if (minor < 0 || minor > 255) {
        PyErr_Format(PyExc_ValueError, "minor must be 0..255, not %d", minor);
        return NULL;
    }
    rc = zm_encode_greeting(out, (uint8_t)minor, mech, (size_t)mech_len,
                            as_server);
    if (rc < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "mechanism must be 1 to 20 characters of A-Z 0-9 - _ . +");
        return NULL;
    }
    (void)module;
    return PyBytes_FromStringAndSize((const char *)out, ZM_GREETING_SIZE);
}

ZM_PY_DOC(zm_py_encode_frame_doc,
"encode_frame(data, more=False, command=False, /)\n--\n\n"
"One frame (short or long form by size) as bytes.");

PyObject *zm_py_encode_frame(PyObject *module, PyObject *const *args,
                             Py_ssize_t nargs)
{
    Py_buffer view;
    unsigned char hdr[9];
    unsigned flags = 0;
    size_t h;
    PyObject *out;
    int t;

    (void)module;
    if (zm_py_check_nargs("encode_frame", nargs, 1, 3) < 0)
        return NULL;
    for (Py_ssize_t i = 1; i < nargs; i++) {
        t = PyObject_IsTrue(args[i]);
        if (t < 0)
            return NULL;
        if (t)
            flags |= i == 1 ? ZM_FLAG_MORE : ZM_FLAG_COMMAND;
    }
    if (get_bytes_arg(args[0], &view, "frame data") < 0)
        return NULL;
    h = zm_frame_header(hdr, (uint64_t)view.len, flags);
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)h + view.len);
    if (out != NULL) {
        memcpy(PyBytes_AS_STRING(out), hdr, h);
        if (view.len > 0)
            memcpy(PyBytes_AS_STRING(out) + h, view.buf, (size_t)view.len);
    }
    PyBuffer_Release(&view);
    return out;
}

ZM_PY_DOC(zm_py_encode_message_doc,
"encode_message(frames, /)\n--\n\n"
"A whole message: every frame but the last gets MORE.  frames is a sequence\n"
"of bytes-like objects (at least one).");

PyObject *zm_py_encode_message(PyObject *module, PyObject *frames)
{
    PyObject *seq, *out = NULL;
    Py_buffer *views = NULL;
    Py_ssize_t n, i, got = 0;
    size_t total = 0, off = 0;
    unsigned char *p;

    (void)module;
    if (PyUnicode_Check(frames) || PyBytes_Check(frames)) {
        PyErr_SetString(PyExc_TypeError,
                        "encode_message() takes a sequence of frames "
                        "(e.g. [b'a', b'b']), not a single bytes or str");
        return NULL;
    }
    seq = PySequence_Fast(frames, "encode_message() takes a sequence of frames");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "a message has at least one frame");
        goto done;
    }
    views = PyMem_New(Py_buffer, (size_t)n);
    if (views == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++, got++) {
        if (get_bytes_arg(PySequence_Fast_GET_ITEM(seq, i), &views[i],
                          "each frame") < 0)
            goto done;
        total += (views[i].len <= 255 ? 2 : 9) + (size_t)views[i].len;
    }
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (out == NULL)
        goto done;
    p = (unsigned char *)PyBytes_AS_STRING(out);
    for (i = 0; i < n; i++) {
        off += zm_frame_header(p + off, (uint64_t)views[i].len,
                               i + 1 < n ? ZM_FLAG_MORE : 0);
        if (views[i].len > 0)
            memcpy(p + off, views[i].buf, (size_t)views[i].len);
        off += (size_t)views[i].len;
    }
done:
    for (i = 0; i < got; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    Py_DECREF(seq);
    return out;
}

ZM_PY_DOC(zm_py_encode_command_doc,
"encode_command(name, data=b'', /)\n--\n\n"
"A command frame: name (1..255 octets) and data.");

PyObject *zm_py_encode_command(PyObject *module, PyObject *const *args,
                               Py_ssize_t nargs)
{
    Py_buffer name, data = {0};
    zm_wbuf w;
    int rc;

    if (zm_py_check_nargs("encode_command", nargs, 1, 2) < 0)
        return NULL;
    if (get_bytes_arg(args[0], &name, "command name") < 0)
        return NULL;
    if (nargs > 1 && get_bytes_arg(args[1], &data, "command data") < 0) {
        PyBuffer_Release(&name);
        return NULL;
    }
    zm_wbuf_init(&w);
    rc = zm_encode_command(&w, name.buf, (size_t)name.len, data.buf,
                           (size_t)data.len);
    PyBuffer_Release(&name);
    if (nargs > 1)
        PyBuffer_Release(&data);
    if (rc == -ZM_ERR_COMMAND) {
        zm_wbuf_free(&w);
        PyErr_SetString(PyExc_ValueError,
                        "command name must be 1 to 255 octets");
        return NULL;
    }
    return wbuf_to_bytes(get_state(module), &w, rc);
}

/* A property name or value: bytes-like, or str (ASCII for names, UTF-8 for
 * values).  New reference to a bytes object. */
static PyObject *prop_to_bytes(PyObject *obj, int is_name)
{
    if (PyUnicode_Check(obj))
        return is_name ? PyUnicode_AsASCIIString(obj)
                       : PyUnicode_AsUTF8String(obj);
    if (PyBytes_Check(obj)) {
        Py_INCREF(obj);
        return obj;
    }
    if (PyObject_CheckBuffer(obj))
        return PyBytes_FromObject(obj);
    PyErr_Format(PyExc_TypeError,
                 "READY property %s must be str or bytes, not %.100s",
                 is_name ? "names" : "values", Py_TYPE(obj)->tp_name);
    return NULL;
}

ZM_PY_DOC(zm_py_encode_ready_doc,
"encode_ready(properties, /)\n--\n\n"
"A READY command.  properties is a mapping or a sequence of (name, value)\n"
"pairs; names are ASCII (A-Z a-z 0-9 - _ . +), values str (UTF-8) or bytes.");

PyObject *zm_py_encode_ready(PyObject *module, PyObject *props)
{
    PyObject *items = NULL, *seq = NULL, *keep = NULL, *out = NULL;
    zm_prop *pv = NULL;
    Py_ssize_t n, i;
    zm_wbuf w;
    int rc;

    zm_wbuf_init(&w);
    if (PyDict_Check(props))
        items = PyDict_Items(props);
    else if (PyObject_HasAttrString(props, "items"))
        items = PyMapping_Items(props);
    else {
        items = props;
        Py_INCREF(items);
    }
    if (items == NULL)
        return NULL;
    seq = PySequence_Fast(items, "encode_ready() takes a mapping or pairs");
    if (seq == NULL)
        goto done;
    n = PySequence_Fast_GET_SIZE(seq);
    keep = PyList_New(0); /* owns the bytes the zm_props point into */
    pv = PyMem_New(zm_prop, (size_t)(n > 0 ? n : 1));
    if (keep == NULL || pv == NULL) {
        if (pv == NULL)
            PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i), *k, *v;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError,
                            "READY properties must be (name, value) pairs");
            goto done;
        }
        k = prop_to_bytes(PyTuple_GET_ITEM(pair, 0), 1);
        if (k == NULL || PyList_Append(keep, k) < 0) {
            Py_XDECREF(k);
            goto done;
        }
        Py_DECREF(k);
        v = prop_to_bytes(PyTuple_GET_ITEM(pair, 1), 0);
        if (v == NULL || PyList_Append(keep, v) < 0) {
            Py_XDECREF(v);
            goto done;
        }
        Py_DECREF(v);
        pv[i].name = (const unsigned char *)PyBytes_AS_STRING(k);
        pv[i].name_len = (size_t)PyBytes_GET_SIZE(k);
        pv[i].value = (const unsigned char *)PyBytes_AS_STRING(v);
        pv[i].value_len = (size_t)PyBytes_GET_SIZE(v);
    }
    rc = zm_encode_ready(&w, pv, (size_t)n);
    if (rc == -ZM_ERR_READY) {
        PyErr_SetString(PyExc_ValueError,
                        "READY property names must be 1 to 255 characters of "
                        "A-Z a-z 0-9 - _ . + (values under 4 GiB)");
        goto done;
    }
    out = wbuf_to_bytes(get_state(module), &w, rc);
done:
    zm_wbuf_free(&w);
    PyMem_Free(pv);
    Py_XDECREF(keep);
    Py_XDECREF(seq);
    Py_DECREF(items);
    return out;
}

ZM_PY_DOC(zm_py_encode_error_doc,
"encode_error(reason, /)\n--\n\nAn ERROR command; reason cut to 255 octets.");

PyObject *zm_py_encode_error(PyObject *module, PyObject *reason)
{
    Py_buffer view;
    zm_wbuf w;
    int rc;

    if (get_bytes_arg(reason, &view, "reason") < 0)
        return NULL;
    zm_wbuf_init(&w);
    rc = zm_encode_error(&w, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return wbuf_to_bytes(get_state(module), &w, rc);
}

ZM_PY_DOC(zm_py_encode_ping_doc,
"encode_ping(ttl=0, context=b'', /)\n--\n\n"
"A PING command; ttl in tenths of a second (0..65535), context cut to 16.");

PyObject *zm_py_encode_ping(PyObject *module, PyObject *const *args,
                            Py_ssize_t nargs)
{
    Py_buffer view = {0};
    long ttl = 0;
    zm_wbuf w;
    int rc;

    if (zm_py_check_nargs("encode_ping", nargs, 0, 2) < 0)
        return NULL;
    if (nargs > 0) {
        ttl = PyLong_AsLong(args[0]);
        if (ttl == -1 && PyErr_Occurred())
            return NULL;
        if (ttl < 0 || ttl > 65535) {
            PyErr_Format(PyExc_ValueError, "ttl must be 0..65535, not %ld",
                         ttl);
            return NULL;
        }
    }
    if (nargs > 1 && get_bytes_arg(args[1], &view, "context") < 0)
        return NULL;
    zm_wbuf_init(&w);
    rc = zm_encode_ping(&w, (uint16_t)ttl, view.buf, (size_t)view.len);
    if (nargs > 1)
        PyBuffer_Release(&view);
    return wbuf_to_bytes(get_state(module), &w, rc);
}

ZM_PY_DOC(zm_py_encode_pong_doc,
"encode_pong(context=b'', /)\n--\n\nA PONG command; context cut to 16.");

PyObject *zm_py_encode_pong(PyObject *module, PyObject *const *args,
                            Py_ssize_t nargs)
{
    Py_buffer view = {0};
    zm_wbuf w;
    int rc;

    if (zm_py_check_nargs("encode_pong", nargs, 0, 1) < 0)
        return NULL;
    if (nargs > 0 && get_bytes_arg(args[0], &view, "context") < 0)
        return NULL;
    zm_wbuf_init(&w);
    rc = zm_encode_pong(&w, view.buf, (size_t)view.len);
    if (nargs > 0)
        PyBuffer_Release(&view);
    return wbuf_to_bytes(get_state(module), &w, rc);
}

ZM_PY_DOC(zm_py_encode_subscription_doc,
"encode_subscription(topic, subscribe=True, peer_minor=1)\n--\n\n"
"Subscribe to (or cancel) a topic in the form the peer's version calls for:\n"
"SUBSCRIBE/CANCEL commands for ZMTP 3.1, a 0x01/0x00 message for 3.0.");

PyObject *zm_py_encode_subscription(PyObject *module, PyObject *args,
                                    PyObject *kw)
{
    static char *kwlist[] = {"topic", "subscribe", "peer_minor", NULL};
    PyObject *topic;
    int subscribe = 1, minor = 1, rc;
    Py_buffer view;
    zm_wbuf w;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|pi:encode_subscription",
                                     kwlist, &topic, &subscribe, &minor))
        return NULL;
    if (get_bytes_arg(topic, &view, "topic") < 0)
        return NULL;
    zm_wbuf_init(&w);
    rc = zm_encode_subscription(&w, view.buf, (size_t)view.len, subscribe,
                                minor);
    PyBuffer_Release(&view);
    return wbuf_to_bytes(get_state(module), &w, rc);
}

ZM_PY_DOC(zm_py_parse_command_doc,
"parse_command(body, /)\n--\n\n"
"Parse a command body (a command frame's content) into a tuple\n"
"(CMD_kind, name, value): READY -> [(name, value), ...]; ERROR -> reason;\n"
"PING -> (ttl, context); PONG -> context; SUBSCRIBE/CANCEL -> topic;\n"
"unknown -> data.  Raises ProtocolError when malformed.");

PyObject *zm_py_parse_command(PyObject *module, PyObject *body)
{
    Py_buffer view;
    zm_command cmd;
    PyObject *value = NULL, *out = NULL;
    int rc;

    if (get_bytes_arg(body, &view, "command body") < 0)
        return NULL;
    rc = zm_command_parse(view.buf, (size_t)view.len, &cmd);
    if (rc < 0) {
        zm_py_raise_codec_error(get_state(module), rc);
        goto done;
    }
    switch (cmd.kind) {
    case ZM_CMD_READY: {
        const unsigned char *p = cmd.arg, *end = cmd.arg + cmd.arg_len;
        zm_prop prop;
        value = PyList_New(0);
        if (value == NULL)
            goto done;
        while (zm_props_next(&p, end, &prop) == 1) {
            PyObject *pair = Py_BuildValue(
                "(y#y#)", prop.name, (Py_ssize_t)prop.name_len, prop.value,
                (Py_ssize_t)prop.value_len);
            if (pair == NULL || PyList_Append(value, pair) < 0) {
                Py_XDECREF(pair);
                goto done;
            }
            Py_DECREF(pair);
        }
        break;
    }
    case ZM_CMD_PING:
        value = Py_BuildValue("(iy#)", cmd.ttl, cmd.arg,
                              (Py_ssize_t)cmd.arg_len);
        break;
    default:
        value = PyBytes_FromStringAndSize((const char *)cmd.arg,
                                          (Py_ssize_t)cmd.arg_len);
        break;
    }
    if (value == NULL)
        goto done;
    out = Py_BuildValue("(iy#O)", cmd.kind, cmd.name,
                        (Py_ssize_t)cmd.name_len, value);
done:
    Py_XDECREF(value);
    PyBuffer_Release(&view);
    return out;
}

ZM_PY_DOC(zm_py_parse_subscription_message_doc,
"parse_subscription_message(data, /)\n--\n\n"
"(subscribe, topic) for a ZMTP 3.0 subscription message (first octet 0x01\n"
"or 0x00), else None.");

PyObject *zm_py_parse_subscription_message(PyObject *module, PyObject *data)
{
    Py_buffer view;
    const unsigned char *topic;
    size_t topic_len;
    int subscribe;
    PyObject *out;

    (void)module;
    if (get_bytes_arg(data, &view, "message") < 0)
        return NULL;
    if (zm_parse_subscription_message(view.buf, (size_t)view.len, &subscribe,
                                      &topic, &topic_len))
        out = Py_BuildValue("(Ny#)", PyBool_FromLong(subscribe), topic,
                            (Py_ssize_t)topic_len);
    else {
        out = Py_None;
        Py_INCREF(out);
    }
    PyBuffer_Release(&view);
    return out;
}

ZM_PY_DOC(zm_py_strerror_doc,
"strerror(code, /)\n--\n\nThe readable text of a codec ERR_* code.");

PyObject *zm_py_strerror(PyObject *module, PyObject *code)
{
    long c = PyLong_AsLong(code);

    (void)module;
    if (c == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(zm_strerror((int)c));
}

