/*
 * py_sockopt.c - a Socket's configuration and plumbing: setsockopt /
 * getsockopt (one table of options), bind / connect / unbind /
 * disconnect, the inproc hooks the Context drives (_inproc_listen,
 * _inproc_connect, _inproc_offer), descriptors handed over (_monitor_fd,
 * _adopt_fd), stats(); and _set_option_names, the names of the libzmq
 * options zmtp does not implement, for their errors.
 *
 * Owns:      the methods above (named in py_socket.c's method table) and
 *            the socket option table.
 * May call:  Python.h, engine.h (zm_sock_bind, _connect, _unbind,
 *            _disconnect, _subscribe, _monitor, _adopt, _inproc_*,
 *            zm_sock_stats_read, the zm_sock option fields), transport.h
 *            (zm_addr_*), inproc.h (zm_mailbox_offer, zm_pipe_preset_hwm),
 *            py_errors.c.
 * Called by: Python code through py_socket.c's method table, and
 *            _zmtpmodule.c's function table (_set_option_names).  Not on
 *            the per-message path; never by the engine.
 */
#include "py_module.h"

#include "sodium.h"
#include "z85.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
#define ZO_STREAM_NOTIFY 73
/* Security: PLAIN (and ZAP) */
#define ZO_MECHANISM 43
#define ZO_PLAIN_SERVER 44
#define ZO_PLAIN_USERNAME 45
#define ZO_PLAIN_PASSWORD 46
#define ZO_ZAP_DOMAIN 55
#define ZO_ZAP_ENFORCE_DOMAIN 93
#define ZO_CURVE_SERVER 47
#define ZO_CURVE_PUBLICKEY 48
#define ZO_CURVE_SECRETKEY 49
#define ZO_CURVE_SERVERKEY 50
/* Transport (transport.h's zm_sockopts, and the socket's own) */
#define ZO_AFFINITY 4
#define ZO_THREAD_SAFE 81
#define ZO_SNDBUF 11
#define ZO_RCVBUF 12
#define ZO_BACKLOG 19
#define ZO_IPV4ONLY 31
#define ZO_TCP_KEEPALIVE 34
#define ZO_TCP_KEEPALIVE_CNT 35
#define ZO_TCP_KEEPALIVE_IDLE 36
#define ZO_TCP_KEEPALIVE_INTVL 37
#define ZO_IPV6 42
#define ZO_TOS 57
#define ZO_CONNECT_TIMEOUT 79
#define ZO_TCP_MAXRT 80
#define ZO_USE_FD 89
#define ZO_BINDTODEVICE 92
/* Pattern options (engine_route.c, engine_pubsub.c; docs/options.md) */
#define ZO_PROBE_ROUTER 51
#define ZO_REQ_CORRELATE 52
#define ZO_REQ_RELAXED 53
#define ZO_CONFLATE 54
#define ZO_ROUTER_HANDOVER 56
#define ZO_CONNECT_ROUTING_ID 61
#define ZO_XPUB_NODROP 69
#define ZO_XPUB_MANUAL 71
#define ZO_XPUB_WELCOME_MSG 72
#define ZO_INVERT_MATCHING 74
#define ZO_XPUB_VERBOSER 78
#define ZO_METADATA 95
#define ZO_ONLY_FIRST_SUBSCRIBE 108


/* ------------------------------------------------------------------ */
/* Errors naming an option                                            */
/* ------------------------------------------------------------------ */

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

ZM_PY_DOC(zm_py_set_option_names_doc,
"_set_option_names(names, /)\n--\n\n"
"Called once by zmtp.constants: {number: name} of the libzmq socket\n"
"options zmtp does not implement (their errors name them).");

PyObject *zm_py_set_option_names(PyObject *module, PyObject *names)
{
    if (!PyDict_Check(names)) {
        PyErr_SetString(PyExc_TypeError, "a dict {number: name} expected");
        return NULL;
    }
    Py_INCREF(names);
    Py_XSETREF(get_state(module)->option_names, names);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Options: one table                                                 */
/* ------------------------------------------------------------------ */

/* An int option's value must be an int (True and False are 1 and 0, as
 * pyzmq takes them: `s.immediate = True`): 0, or -1 with a TypeError
 * naming the option. */
static int check_int(PyObject *value, const char *name)
{
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "option %s takes an int, not %.100s",
                     name, Py_TYPE(value)->tp_name);
        return -1;
    }
    return 0;
}

/* A bytes option's value: a buffer, not a str; 0, or -1 with a TypeError
 * saying `what`. */
static int get_bytes_option(PyObject *value, Py_buffer *view,
                            const char *what)
{
    if (PyUnicode_Check(value) ||
        PyObject_GetBuffer(value, view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, what);
        return -1;
    }
    return 0;
}

/* An int option's value: an int (a bool too) within lo..hi, else TypeError
 * or EINVAL naming the option; *out is written only when it is good. */
static int int_option(zmtp_state *st, PyObject *value, const char *name,
                      long lo, long hi, int *out)
{
    long v;

    if (check_int(value, name) < 0)
        return -1;
    v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < lo || v > hi) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "Invalid argument: %s must be %ld..%ld, not %ld", name, lo,
                 hi, v);
        zm_py_raise_zmq(st, EINVAL, msg);
        return -1;
    }
    *out = (int)v;
    return 0;
}

typedef struct sockopt sockopt;

/*
 * One socket option, a row of the table below (indexed by its libzmq
 * number): how setsockopt stores a value and how getsockopt reads it, with
 * the socket entered.  `set` returns 0, or -1 with an exception; `get` a
 * new reference, or NULL with an exception.  A NULL `set` or `get` is
 * refused as an unknown option is (EINVAL); read-only options set with
 * set_read_only.  Int options name an int field of SocketObject (`off`)
 * and the range `set` accepts.
 */
struct sockopt {
    const char *name; /* in error messages */
    int (*set)(SocketObject *self, const sockopt *o, PyObject *value);
    PyObject *(*get)(SocketObject *self, const sockopt *o);
    long lo, hi;
    size_t off; /* offsetof(SocketObject, the int) */
};

static int *int_field(SocketObject *self, const sockopt *o)
{
    return (int *)((char *)self + o->off);
}

static int set_int(SocketObject *self, const sockopt *o, PyObject *value)
{
    return int_option(self->st, value, o->name, o->lo, o->hi,
                      int_field(self, o));
}

static PyObject *get_int(SocketObject *self, const sockopt *o)
{
    return PyLong_FromLong(*int_field(self, o));
}

static int set_read_only(SocketObject *self, const sockopt *o,
                         PyObject *value)
{
    (void)o;
    (void)value;
    zm_py_raise_zmq(self->st, EINVAL,
                    "Invalid argument: option is read-only");
    return -1;
}

/* STREAM_NOTIFY: 0 or 1, on STREAM sockets only (libzmq's stream.cpp
 * takes it, other types say EINVAL). */
static int set_stream_notify(SocketObject *self, const sockopt *o,
                             PyObject *value)
{
    if (self->s.type != ZM_STREAM) {
        zm_py_raise_zmq(self->st, EINVAL,
                        "Invalid argument: STREAM_NOTIFY is for STREAM "
                        "sockets");
        return -1;
    }
    return set_int(self, o, value);
}

static int set_maxmsgsize(SocketObject *self, const sockopt *o,
                          PyObject *value)
{
    long long m;

    if (check_int(value, o->name) < 0)
        return -1;
    m = PyLong_AsLongLong(value);
    if (m == -1 && PyErr_Occurred())
        return -1;
    if (m < -1) {
        zm_py_raise_zmq(self->st, EINVAL,
                        "Invalid argument: MAXMSGSIZE must be -1 or >= 0");
        return -1;
    }
    self->s.maxmsgsize = m;
    return 0;
}

static PyObject *get_maxmsgsize(SocketObject *self, const sockopt *o)
{
    (void)o;
    return PyLong_FromLongLong(self->s.maxmsgsize);
}

/* A routing id option (ROUTING_ID, CONNECT_ROUTING_ID): 1..255 bytes into
 * dst (its length in *len); `nonzero`: not starting with a zero byte.  0,
 * or -1 with TypeError or EINVAL naming o. */
static int set_id_bytes(SocketObject *self, const sockopt *o, PyObject *value,
                        int nonzero, unsigned char *dst, size_t *len)
{
    char msg[128];
    Py_buffer view;
    int rc = 0;

    snprintf(msg, sizeof(msg), "%s takes bytes (use setsockopt_string for "
                               "str)", o->name);
    if (get_bytes_option(value, &view, msg) < 0)
        return -1;
    if (view.len < 1 || view.len > 255 ||
        (nonzero && ((const unsigned char *)view.buf)[0] == 0)) {
        snprintf(msg, sizeof(msg),
                 "Invalid argument: %s must be 1..255 bytes%s", o->name,
                 nonzero ? " not starting with a zero byte" : "");
        zm_py_raise_zmq(self->st, EINVAL, msg);
        rc = -1;
    } else {
        memcpy(dst, view.buf, (size_t)view.len);
        *len = (size_t)view.len;
    }
    PyBuffer_Release(&view);
    return rc;
}

static int set_routing_id(SocketObject *self, const sockopt *o,
                          PyObject *value)
{
    return set_id_bytes(self, o, value, 1, self->s.routing_id,
                        &self->s.routing_id_len);
}

static PyObject *get_routing_id(SocketObject *self, const sockopt *o)
{
    (void)o;
    return PyBytes_FromStringAndSize((const char *)self->s.routing_id,
                                     (Py_ssize_t)self->s.routing_id_len);
}

/* SUBSCRIBE (subscribe 1) and UNSUBSCRIBE (0). */
static int set_subscription(SocketObject *self, PyObject *value,
                            int subscribe)
{
    Py_buffer view;
    int r;

    if (get_bytes_option(value, &view,
                         "SUBSCRIBE/UNSUBSCRIBE take bytes (subscribe() "
                         "also takes str)") < 0)
        return -1;
    r = zm_sock_subscribe(&self->s, view.buf, (size_t)view.len, subscribe);
    PyBuffer_Release(&view);
    if (r == -ENOTSUP) {
        zm_py_raise_zmq(self->st, EINVAL,
                        "Invalid argument: SUBSCRIBE/UNSUBSCRIBE are for SUB "
                        "and XSUB sockets (and XPUB with XPUB_MANUAL)");
        return -1;
    }
    if (r < 0) {
        PyErr_NoMemory();
        return -1;
    }
    /* Move the subscription out now if the peer is idle. */
    zm_sock_process(&self->s, zm_now_ns());
    return 0;
}

static int set_subscribe(SocketObject *self, const sockopt *o,
                         PyObject *value)
{
    (void)o;
    return set_subscription(self, value, 1);
}

static int set_unsubscribe(SocketObject *self, const sockopt *o,
                           PyObject *value)
{
    (void)o;
    return set_subscription(self, value, 0);
}

static PyObject *get_last_endpoint(SocketObject *self, const sockopt *o)
{
    (void)o;
    return PyBytes_FromString(self->s.last_endpoint);
}

/* Socket.fileno(): the loop set (loopset.h), readable when EVENTS may
 * have changed since the last call (the mailbox eventfd, edge-triggered)
 * or when one of the socket's descriptors is ready for what the engine
 * wants (level-triggered: the next call reads it). */
static PyObject *get_fd(SocketObject *self, const sockopt *o)
{
    int rc = zm_sock_inproc_enable(&self->s);

    (void)o;
    if (rc < 0)
        return zm_py_raise_zmq(self->st, -rc, NULL);
    rc = zm_loopset_open(&self->loop, &self->s);
    if (rc < 0)
        return zm_py_raise_zmq(self->st, -rc, NULL);
    self->s.notify_fd = 1; /* sock_leave arms the mailbox */
    return PyLong_FromLong(self->loop.epfd);
}

static PyObject *get_events(SocketObject *self, const sockopt *o)
{
    int ev = sock_events_now(self);

    (void)o;
    /* The caller learns these events from the result, so sock_leave need
     * not signal fileno() for them: an event loop's reader reads EVENTS
     * and acts on what it shows, and a signal would only wake it once more
     * to find nothing new (libzmq's rule too: reading ZMQ_EVENTS may
     * consume ZMQ_FD's edge). */
    self->events_at_enter |= ev;
    return PyLong_FromLong(ev);
}

/* MECHANISM (read-only): libzmq's numbers, NULL 0, PLAIN 1, CURVE 2. */
static PyObject *get_mechanism(SocketObject *self, const sockopt *o)
{
    const zm_mech_ops *ops = self->s.mech_ops;

    (void)o;
    if (ops == NULL || strcmp(ops->name, "NULL") == 0)
        return PyLong_FromLong(0);
    return PyLong_FromLong(strcmp(ops->name, "PLAIN") == 0 ? 1 : 2);
}

/* PLAIN_SERVER: 1 (or True) makes the socket a PLAIN server, 0 a NULL
 * socket (as libzmq, whatever the mechanism was). */
static int set_plain_server(SocketObject *self, const sockopt *o,
                            PyObject *value)
{
    int v;

    /* True/False too: pyzmq's examples write `plain_server = True` */
    if (int_option(self->st, value, o->name, 0, 1, &v) < 0)
        return -1;
    self->s.mech_cfg.as_server = v;
    self->s.mech_ops = v ? &zm_mech_plain : NULL;
    return 0;
}

static PyObject *get_plain_server(SocketObject *self, const sockopt *o)
{
    (void)o;
    return PyLong_FromLong(self->s.mech_cfg.as_server &&
                           self->s.mech_ops == &zm_mech_plain);
}

/* PLAIN_USERNAME / PLAIN_PASSWORD: 1..255 bytes; either makes the socket a
 * PLAIN client (libzmq).  The value is never put in an error message. */
static int set_plain_cred(SocketObject *self, const sockopt *o,
                          PyObject *value)
{
    int is_pw = strcmp(o->name, "PLAIN_PASSWORD") == 0;
    unsigned char *dst = is_pw ? self->s.plain_password
                               : self->s.plain_username;
    Py_buffer view;

    if (get_bytes_option(value, &view,
                         is_pw ? "PLAIN_PASSWORD takes bytes (use "
                                 "setsockopt_string for str)"
                               : "PLAIN_USERNAME takes bytes (use "
                                 "setsockopt_string for str)") < 0)
        return -1;
    if (view.len < 1 || view.len > 255) {
        char msg[96];
        snprintf(msg, sizeof(msg),
                 "Invalid argument: %s must be 1..255 bytes", o->name);
        PyBuffer_Release(&view);
        zm_py_raise_zmq(self->st, EINVAL, msg);
        return -1;
    }
    zm_mech_wipe(dst, 255);
    memcpy(dst, view.buf, (size_t)view.len);
    if (is_pw) {
        self->s.mech_cfg.plain_password = dst;
        self->s.mech_cfg.plain_password_len = (size_t)view.len;
    } else {
        self->s.mech_cfg.plain_username = dst;
        self->s.mech_cfg.plain_username_len = (size_t)view.len;
    }
    PyBuffer_Release(&view);
    self->s.mech_cfg.as_server = 0;
    self->s.mech_ops = &zm_mech_plain;
    return 0;
}

static PyObject *get_plain_cred(SocketObject *self, const sockopt *o)
{
    if (strcmp(o->name, "PLAIN_PASSWORD") == 0)
        return PyBytes_FromStringAndSize(
            (const char *)self->s.plain_password,
            (Py_ssize_t)self->s.mech_cfg.plain_password_len);
    return PyBytes_FromStringAndSize(
        (const char *)self->s.plain_username,
        (Py_ssize_t)self->s.mech_cfg.plain_username_len);
}

/* ZAP_DOMAIN: 0..255 bytes (libzmq: empty allowed). */
static int set_zap_domain(SocketObject *self, const sockopt *o,
                          PyObject *value)
{
    Py_buffer view;

    (void)o;
    if (get_bytes_option(value, &view, "ZAP_DOMAIN takes bytes (use "
                                       "setsockopt_string for str)") < 0)
        return -1;
    if (view.len > 255) {
        PyBuffer_Release(&view);
        zm_py_raise_zmq(self->st, EINVAL,
                        "Invalid argument: ZAP_DOMAIN must be 0..255 bytes");
        return -1;
    }
    memcpy(self->s.zap_domain, view.buf, (size_t)view.len);
    self->s.zap_domain_len = (size_t)view.len;
    PyBuffer_Release(&view);
    return 0;
}

static PyObject *get_zap_domain(SocketObject *self, const sockopt *o)
{
    (void)o;
    return PyBytes_FromStringAndSize(self->s.zap_domain,
                                     (Py_ssize_t)self->s.zap_domain_len);
}

/* CURVE (mech_curve.c; keys kept in zm_sock.mech_cfg).  As libzmq:
 * setting a key or CURVE_SERVER=1 selects CURVE, CURVE_SERVERKEY makes us
 * the client, CURVE_SERVER=0 goes back to NULL.  Without libsodium every
 * setter refuses, saying what to install. */

/* The CURVE mechanism, or NULL with ZMQError(EINVAL) saying why not. */
static const zm_mech_ops *curve_ops_or_raise(SocketObject *self)
{
    char msg[400];
    const char *why = NULL;
    const zm_mech_ops *ops = zm_mech_find("CURVE");

    if (zm_sodium_get(&why) == NULL) {
        snprintf(msg, sizeof(msg), "Invalid argument: %s", why);
        zm_py_raise_zmq(self->st, EINVAL, msg);
        return NULL;
    }
    if (ops == NULL)
        zm_py_raise_zmq(self->st, EINVAL,
                        "Invalid argument: this zmtp has no CURVE mechanism");
    return ops;
}

static int set_curve_server(SocketObject *self, const sockopt *o,
                            PyObject *value)
{
    const zm_mech_ops *ops;
    int on;

    /* True/False too: ipykernel sets `curve_server = True` (pyzmq takes
     * any int, and a bool is one) */
    if (int_option(self->st, value, o->name, INT32_MIN, INT32_MAX, &on) < 0)
        return -1;
    if (on == 0) {
        self->s.mech_ops = NULL; /* libzmq: mechanism NULL */
        self->s.mech_cfg.as_server = 0;
        return 0;
    }
    ops = curve_ops_or_raise(self);
    if (ops == NULL)
        return -1;
    self->s.mech_ops = ops;
    self->s.mech_cfg.as_server = 1;
    return 0;
}

static PyObject *get_curve_server(SocketObject *self, const sockopt *o)
{
    (void)o;
    return PyLong_FromLong(self->s.mech_ops != NULL &&
                           strcmp(self->s.mech_ops->name, "CURVE") == 0 &&
                           self->s.mech_cfg.as_server);
}

/* A key: 32 bytes, or 40 characters of Z85 (41 with a NUL, as libzmq's C
 * string); the value is never shown in an error. */
static int set_curve_key(SocketObject *self, const sockopt *o,
                         PyObject *value)
{
    unsigned char key[32];
    const zm_mech_ops *ops;
    const unsigned char *b;
    Py_buffer view;
    int ok;

    if (get_bytes_option(value, &view,
                         "CURVE keys take bytes (use setsockopt_string for "
                         "str)") < 0)
        return -1;
    b = view.buf;
    if (view.len == 32) {
        memcpy(key, b, 32);
        ok = 1;
    } else if (view.len == 40 || (view.len == 41 && b[40] == 0)) {
        ok = zm_z85_decode(key, view.buf, 40) == 0;
    } else {
        ok = 0;
    }
    PyBuffer_Release(&view);
    if (!ok) {
        zm_secure_zero(key, sizeof(key));
        zm_py_raise_zmq(self->st, EINVAL,
                        "Invalid argument: a CURVE key is 32 bytes or 40 "
                        "characters of Z85");
        return -1;
    }
    ops = curve_ops_or_raise(self);
    if (ops != NULL) {
        memcpy((char *)self + o->off, key, 32);
        self->s.mech_ops = ops;
        if (o->off == offsetof(SocketObject, s.mech_cfg.curve_server))
            self->s.mech_cfg.as_server = 0;
    }
    zm_secure_zero(key, sizeof(key));
    return ops != NULL ? 0 : -1;
}

/* libzmq reads a key back only into a 32 or 41-byte buffer; pyzmq asks
 * with 255 bytes, so pyzmq's getsockopt says EINVAL (and its attribute
 * "write-only"): zmtp does the same, and a secret is never read back. */
static PyObject *get_curve_key(SocketObject *self, const sockopt *o)
{
    (void)o;
    return zm_py_raise_zmq(self->st, EINVAL, "Invalid argument");
}

/* Transport options (libzmq's ranges; applied by transport.c to the
 * descriptors of later binds and connects). */

/* IPV6, and IPV4ONLY its inverse: 0 or 1 (libzmq), True/False too
 * (pyzmq programs write `s.ipv6 = True`). */
static int set_ipv6(SocketObject *self, const sockopt *o, PyObject *value)
{
    int v;

    if (int_option(self->st, value, o->name, 0, 1, &v) < 0)
        return -1;
    self->s.tcp.ipv6 = o->off == offsetof(SocketObject, s.tcp.ipv6) ? v : !v;
    return 0;
}

static PyObject *get_ipv4only(SocketObject *self, const sockopt *o)
{
    (void)o;
    return PyLong_FromLong(!self->s.tcp.ipv6);
}

/* AFFINITY: a 64-bit mask, kept and read back; zmtp has no I/O threads to
 * pin, so it has no effect (docs/options.md). */
static int set_affinity(SocketObject *self, const sockopt *o, PyObject *value)
{
    long long v;

    if (check_int(value, o->name) < 0)
        return -1;
    v = PyLong_AsLongLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    self->s.affinity = (uint64_t)v;
    return 0;
}

/* THREAD_SAFE: read-only; 0 for every socket type zmtp has (libzmq says 1
 * only for its draft thread-safe types, SERVER, CLIENT, RADIO, DISH...). */
static PyObject *get_thread_safe(SocketObject *self, const sockopt *o)
{
    (void)self;
    (void)o;
    return PyLong_FromLong(0);
}

static PyObject *get_affinity(SocketObject *self, const sockopt *o)
{
    (void)o;
    return PyLong_FromLongLong((long long)self->s.affinity);
}

/* BINDTODEVICE: an interface name of at most 16 bytes (libzmq's
 * BINDDEVSIZ); b"" takes it off.  Binding or dialling then needs
 * CAP_NET_RAW: without, bind raises EPERM and a dial is retried, as
 * libzmq. */
static int set_bindtodevice(SocketObject *self, const sockopt *o,
                            PyObject *value)
{
    Py_buffer view;
    int rc = 0;

    (void)o;
    if (get_bytes_option(value, &view, "BINDTODEVICE takes bytes (use "
                                       "setsockopt_string for str)") < 0)
        return -1;
    if (view.len > (Py_ssize_t)sizeof(self->s.tcp.device) - 1 ||
        memchr(view.buf, 0, (size_t)view.len) != NULL) {
        zm_py_raise_zmq(self->st, EINVAL,
                        "Invalid argument: BINDTODEVICE must be an interface "
                        "name of at most 16 bytes");
        rc = -1;
    } else {
        memcpy(self->s.tcp.device, view.buf, (size_t)view.len);
        self->s.tcp.device[view.len] = '\0';
    }
    PyBuffer_Release(&view);
    return rc;
}

static PyObject *get_bindtodevice(SocketObject *self, const sockopt *o)
{
    (void)o;
    return PyBytes_FromString(self->s.tcp.device);
}

/* ------------------------------------------------------------------ */
/* Pattern options: libzmq 4.3.5's semantics (socket_base.cpp, req.cpp, */
/* router.cpp, xpub.cpp, options.cpp)                                 */
/* ------------------------------------------------------------------ */

#define TYPE_BIT(t) (1L << (t))

/* Refuse an option on a socket type libzmq refuses it on (EINVAL naming
 * the option and the types in `types`, a TYPE_BIT mask, that take it):
 * 0, or -1 with the exception. */
static int check_type(SocketObject *self, const sockopt *o, long types)
{
    char msg[200];
    size_t n;

    if (TYPE_BIT(self->s.type) & types)
        return 0;
    n = (size_t)snprintf(msg, sizeof(msg), "Invalid argument: %s is for",
                         o->name);
    for (int t = 0; t < ZM_SOCKTYPE_COUNT_ && n < sizeof(msg); t++)
        if (TYPE_BIT(t) & types)
            n += (size_t)snprintf(msg + n, sizeof(msg) - n, " %s",
                                  zm_socktype_name(t));
    if (n < sizeof(msg))
        snprintf(msg + n, sizeof(msg) - n, " sockets");
    zm_py_raise_zmq(self->st, EINVAL, msg);
    return -1;
}

/* A switch as libzmq's pattern options take it: an int >= 0, on when not
 * 0, on the socket types in o->lo (a TYPE_BIT mask); stored 0/1 in the
 * int field at o->off. */
static int set_switch(SocketObject *self, const sockopt *o, PyObject *value)
{
    int v;

    if (check_type(self, o, o->lo) < 0 ||
        int_option(self->st, value, o->name, 0, INT32_MAX, &v) < 0)
        return -1;
    *int_field(self, o) = v != 0;
    return 0;
}

/* XPUB_VERBOSE and XPUB_VERBOSER (libzmq's xpub.cpp): VERBOSE passes up
 * duplicate subscriptions and turns VERBOSER's cancels off; VERBOSER
 * passes up both. */
static int set_xpub_verbose(SocketObject *self, const sockopt *o,
                            PyObject *value)
{
    int v;

    if (int_option(self->st, value, o->name, 0, 1, &v) < 0)
        return -1;
    self->s.xpub_verbose = v;
    self->s.xpub_verboser = 0;
    return 0;
}

static int set_xpub_verboser(SocketObject *self, const sockopt *o,
                             PyObject *value)
{
    if (set_switch(self, o, value) < 0)
        return -1;
    self->s.xpub_verbose = self->s.xpub_verboser;
    return 0;
}

/* What libzmq cannot read back (its getsockopt says EINVAL): pyzmq's
 * users see the same. */
static PyObject *get_write_only(SocketObject *self, const sockopt *o)
{
    char msg[128];

    snprintf(msg, sizeof(msg), "Invalid argument: %s is write-only",
             o->name);
    return zm_py_raise_zmq(self->st, EINVAL, msg);
}

/* CONFLATE: 0 or 1 on any type (libzmq); it acts on what DEALER, PULL and
 * SUB receive and what DEALER, PUSH and PUB send (docs/options.md). */
static int set_conflate(SocketObject *self, const sockopt *o,
                        PyObject *value)
{
    int t = self->s.type;

    if (set_int(self, o, value) < 0)
        return -1;
    self->s.conflate_in = self->s.conflate &&
                          (t == ZM_DEALER || t == ZM_PULL || t == ZM_SUB);
    self->s.conflate_out = self->s.conflate &&
                           (t == ZM_DEALER || t == ZM_PUSH || t == ZM_PUB);
    return 0;
}

/* INVERT_MATCHING: any int, on when not 0 (libzmq), any type. */
static int set_invert_matching(SocketObject *self, const sockopt *o,
                               PyObject *value)
{
    int v;

    if (int_option(self->st, value, o->name, INT32_MIN, INT32_MAX, &v) < 0)
        return -1;
    self->s.invert_matching = v != 0;
    return 0;
}

/* CONNECT_ROUTING_ID (ROUTER, STREAM): 1..255 bytes, the routing id of the
 * next connect()'s peer. */
static int set_connect_rid(SocketObject *self, const sockopt *o,
                           PyObject *value)
{
    if (check_type(self, o, TYPE_BIT(ZM_ROUTER) | TYPE_BIT(ZM_STREAM)) < 0)
        return -1;
    return set_id_bytes(self, o, value, 0, self->s.connect_rid,
                        &self->s.connect_rid_len);
}

/* XPUB_WELCOME_MSG (PUB, XPUB): sent to each new subscriber; empty: none. */
static int set_welcome(SocketObject *self, const sockopt *o, PyObject *value)
{
    Py_buffer view;
    unsigned char *copy = NULL;

    if (check_type(self, o, TYPE_BIT(ZM_PUB) | TYPE_BIT(ZM_XPUB)) < 0 ||
        get_bytes_option(value, &view, "XPUB_WELCOME_MSG takes bytes (use "
                                       "setsockopt_string for str)") < 0)
        return -1;
    if (view.len > 0) {
        copy = zm_malloc((size_t)view.len);
        if (copy == NULL) {
            PyBuffer_Release(&view);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(copy, view.buf, (size_t)view.len);
    }
    free(self->s.welcome);
    self->s.welcome = copy;
    self->s.welcome_len = (size_t)view.len;
    PyBuffer_Release(&view);
    return 0;
}

/* A READY property name's character (RFC 23: what zmtp's codec sends). */
static int meta_name_char_ok(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
           c == '+';
}

/* METADATA: "X-name:value" (libzmq's options.cpp: the name starts with
 * "X-" and has more, the value is not empty, the first ':' splits; a name
 * already set keeps its first value).  Announced in every later handshake
 * (mech_null.c, mech_plain.c); the peer reads it with Frame.get(name). */
static int set_metadata(SocketObject *self, const sockopt *o,
                        PyObject *value)
{
    Py_buffer view;
    const unsigned char *b, *colon;
    size_t klen, vlen;
    unsigned char *block;
    zm_sock *s = &self->s;
    int ok;

    (void)o;
    if (get_bytes_option(value, &view, "METADATA takes bytes \"X-name:value\" "
                                       "(use setsockopt_string for str)") < 0)
        return -1;
    b = view.buf;
    colon = view.len > 0 ? memchr(b, ':', (size_t)view.len) : NULL;
    klen = colon != NULL ? (size_t)(colon - b) : 0;
    vlen = colon != NULL ? (size_t)view.len - klen - 1 : 0;
    ok = colon != NULL && klen > 2 && klen <= 255 && vlen > 0 &&
         b[0] == 'X' && b[1] == '-';
    for (size_t i = 0; ok && i < klen; i++)
        ok = meta_name_char_ok(b[i]);
    if (!ok) {
        PyBuffer_Release(&view);
        zm_py_raise_zmq(self->st, EINVAL,
                        "Invalid argument: METADATA takes \"X-name:value\" "
                        "(name of letters, digits, '-', '_', '.', '+')");
        return -1;
    }
    for (size_t i = 0; i < s->app_nprops; i++)
        if (s->app_props[i].name_len == klen &&
            memcmp(s->app_props[i].name, b, klen) == 0) {
            PyBuffer_Release(&view); /* libzmq keeps the first value */
            return 0;
        }
    if (s->app_nprops == ZM_MECH_APP_PROPS_MAX) {
        PyBuffer_Release(&view);
        zm_py_raise_zmq(self->st, EINVAL,
                        "Invalid argument: at most 32 METADATA properties");
        return -1;
    }
    block = zm_malloc(klen + vlen);
    if (block == NULL) {
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return -1;
    }
    memcpy(block, b, klen);
    memcpy(block + klen, colon + 1, vlen);
    PyBuffer_Release(&view);
    s->app_props[s->app_nprops].name = block;
    s->app_props[s->app_nprops].name_len = klen;
    s->app_props[s->app_nprops].value = block + klen;
    s->app_props[s->app_nprops].value_len = vlen;
    s->app_nprops++;
    s->mech_cfg.app_props = s->app_props;
    s->mech_cfg.app_nprops = s->app_nprops;
    return 0;
}

/* A switch of the types in `types` (set_switch), write-only as libzmq's. */
#define SWITCH(field, types)                                                  \
    set_switch, get_write_only, (types), 0, offsetof(SocketObject, field)

#define CURVE_KEY(field)                                                      \
    set_curve_key, get_curve_key, 0, 0, offsetof(SocketObject, field)

/* An int option: its field in SocketObject and the range set accepts. */
#define INT_OPT(field, lo, hi)                                                \
    set_int, get_int, (lo), (hi), offsetof(SocketObject, field)
/* A read-only int. */
#define INT_RO(field)                                                         \
    set_read_only, get_int, 0, 0, offsetof(SocketObject, field)

/* Every option zmtp implements.  A new one: a ZO_ number, a row here. */
static const sockopt sockopts[] = {
    [ZO_ROUTING_ID] = {"ROUTING_ID", set_routing_id, get_routing_id, 0, 0, 0},
    [ZO_SUBSCRIBE] = {"SUBSCRIBE", set_subscribe, NULL, 0, 0, 0},
    [ZO_UNSUBSCRIBE] = {"UNSUBSCRIBE", set_unsubscribe, NULL, 0, 0, 0},
    [ZO_RCVMORE] = {"RCVMORE", INT_RO(rcvmore)},
    [ZO_FD] = {"FD", NULL, get_fd, 0, 0, 0},
    [ZO_EVENTS] = {"EVENTS", set_read_only, get_events, 0, 0, 0},
    [ZO_TYPE] = {"TYPE", INT_RO(s.type)},
    [ZO_LINGER] = {"LINGER", INT_OPT(linger, -1, INT32_MAX)},
    [ZO_RECONNECT_IVL] = {"RECONNECT_IVL",
                          INT_OPT(s.reconnect_ivl_ms, -1, INT32_MAX)},
    [ZO_RECONNECT_IVL_MAX] = {"RECONNECT_IVL_MAX",
                              INT_OPT(s.reconnect_ivl_max_ms, 0, INT32_MAX)},
    [ZO_MAXMSGSIZE] = {"MAXMSGSIZE", set_maxmsgsize, get_maxmsgsize, 0, 0, 0},
    [ZO_SNDHWM] = {"SNDHWM", INT_OPT(s.sndhwm, 0, INT32_MAX)},
    [ZO_RCVHWM] = {"RCVHWM", INT_OPT(s.rcvhwm, 0, INT32_MAX)},
    [ZO_RCVTIMEO] = {"RCVTIMEO", INT_OPT(rcvtimeo, -1, INT32_MAX)},
    [ZO_SNDTIMEO] = {"SNDTIMEO", INT_OPT(sndtimeo, -1, INT32_MAX)},
    [ZO_LAST_ENDPOINT] = {"LAST_ENDPOINT", set_read_only, get_last_endpoint,
                          0, 0, 0},
    [ZO_ROUTER_MANDATORY] = {"ROUTER_MANDATORY",
                             INT_OPT(s.router_mandatory, 0, 1)},
    [ZO_IMMEDIATE] = {"IMMEDIATE", INT_OPT(s.immediate, 0, 1)},
    [ZO_XPUB_VERBOSE] = {"XPUB_VERBOSE", set_xpub_verbose, get_int, 0, 1,
                         offsetof(SocketObject, s.xpub_verbose)},
    [ZO_HANDSHAKE_IVL] = {"HANDSHAKE_IVL",
                          INT_OPT(s.handshake_ivl_ms, 0, INT32_MAX)},
    [ZO_HEARTBEAT_IVL] = {"HEARTBEAT_IVL",
                          INT_OPT(s.heartbeat_ivl_ms, 0, INT32_MAX)},
    /* Sent in tenths of a second on 16 bits, as libzmq. */
    [ZO_HEARTBEAT_TTL] = {"HEARTBEAT_TTL",
                          INT_OPT(s.heartbeat_ttl_ms, 0, 6553599)},
    [ZO_HEARTBEAT_TIMEOUT] = {"HEARTBEAT_TIMEOUT",
                              INT_OPT(s.heartbeat_timeout_ms, -1, INT32_MAX)},
    [ZO_STREAM_NOTIFY] = {"STREAM_NOTIFY", set_stream_notify, get_int, 0, 1,
                          offsetof(SocketObject, s.stream_notify)},
    /* PLAIN (mech_plain.c) */
    [ZO_MECHANISM] = {"MECHANISM", set_read_only, get_mechanism, 0, 0, 0},
    [ZO_PLAIN_SERVER] = {"PLAIN_SERVER", set_plain_server, get_plain_server,
                         0, 1, 0},
    [ZO_PLAIN_USERNAME] = {"PLAIN_USERNAME", set_plain_cred, get_plain_cred,
                           0, 0, 0},
    [ZO_PLAIN_PASSWORD] = {"PLAIN_PASSWORD", set_plain_cred, get_plain_cred,
                           0, 0, 0},
    [ZO_ZAP_DOMAIN] = {"ZAP_DOMAIN", set_zap_domain, get_zap_domain, 0, 0, 0},
    [ZO_ZAP_ENFORCE_DOMAIN] = {"ZAP_ENFORCE_DOMAIN",
                               INT_OPT(s.zap_enforce_domain, 0, 1)},
    /* CURVE */
    [ZO_CURVE_SERVER] = {"CURVE_SERVER", set_curve_server, get_curve_server,
                         0, 0, 0},
    [ZO_CURVE_PUBLICKEY] = {"CURVE_PUBLICKEY",
                            CURVE_KEY(s.mech_cfg.curve_public)},
    [ZO_CURVE_SECRETKEY] = {"CURVE_SECRETKEY",
                            CURVE_KEY(s.mech_cfg.curve_secret)},
    [ZO_CURVE_SERVERKEY] = {"CURVE_SERVERKEY",
                            CURVE_KEY(s.mech_cfg.curve_server)},
    /* Transport (transport.h's zm_sockopts; docs/options.md) */
    [ZO_AFFINITY] = {"AFFINITY", set_affinity, get_affinity, 0, 0, 0},
    [ZO_THREAD_SAFE] = {"THREAD_SAFE", set_read_only, get_thread_safe, 0, 0,
                        0},
    [ZO_SNDBUF] = {"SNDBUF", INT_OPT(s.tcp.sndbuf, -1, INT32_MAX)},
    [ZO_RCVBUF] = {"RCVBUF", INT_OPT(s.tcp.rcvbuf, -1, INT32_MAX)},
    [ZO_BACKLOG] = {"BACKLOG", INT_OPT(s.tcp.backlog, 0, INT32_MAX)},
    [ZO_IPV4ONLY] = {"IPV4ONLY", set_ipv6, get_ipv4only, 0, 0, 0},
    [ZO_TCP_KEEPALIVE] = {"TCP_KEEPALIVE", INT_OPT(s.tcp.keepalive, -1, 1)},
    [ZO_TCP_KEEPALIVE_CNT] = {"TCP_KEEPALIVE_CNT",
                              INT_OPT(s.tcp.keepalive_cnt, -1, INT32_MAX)},
    [ZO_TCP_KEEPALIVE_IDLE] = {"TCP_KEEPALIVE_IDLE",
                               INT_OPT(s.tcp.keepalive_idle, -1, INT32_MAX)},
    [ZO_TCP_KEEPALIVE_INTVL] = {"TCP_KEEPALIVE_INTVL",
                                INT_OPT(s.tcp.keepalive_intvl, -1, INT32_MAX)},
    [ZO_IPV6] = {"IPV6", set_ipv6, get_int, 0, 1,
                 offsetof(SocketObject, s.tcp.ipv6)},
    [ZO_TOS] = {"TOS", INT_OPT(s.tcp.tos, 0, INT32_MAX)},
    [ZO_CONNECT_TIMEOUT] = {"CONNECT_TIMEOUT",
                            INT_OPT(s.connect_timeout_ms, 0, INT32_MAX)},
    [ZO_TCP_MAXRT] = {"TCP_MAXRT", INT_OPT(s.tcp.maxrt, 0, INT32_MAX)},
    [ZO_USE_FD] = {"USE_FD", INT_OPT(s.use_fd, -1, INT32_MAX)},
    [ZO_BINDTODEVICE] = {"BINDTODEVICE", set_bindtodevice, get_bindtodevice,
                         0, 0, 0},
    /* Pattern options: write-only where libzmq's are */
    [ZO_PROBE_ROUTER] = {"PROBE_ROUTER",
                         SWITCH(s.probe_router,
                                TYPE_BIT(ZM_ROUTER) | TYPE_BIT(ZM_DEALER) |
                                    TYPE_BIT(ZM_REQ))},
    [ZO_REQ_CORRELATE] = {"REQ_CORRELATE",
                          SWITCH(s.req_correlate,
                                 TYPE_BIT(ZM_REQ))},
    [ZO_REQ_RELAXED] = {"REQ_RELAXED",
                        SWITCH(s.req_relaxed,
                               TYPE_BIT(ZM_REQ))},
    [ZO_CONFLATE] = {"CONFLATE", set_conflate, get_int, 0, 1,
                     offsetof(SocketObject, s.conflate)},
    [ZO_ROUTER_HANDOVER] = {"ROUTER_HANDOVER",
                            SWITCH(s.router_handover,
                                   TYPE_BIT(ZM_ROUTER))},
    [ZO_CONNECT_ROUTING_ID] = {"CONNECT_ROUTING_ID", set_connect_rid,
                               get_write_only, 0, 0, 0},
    [ZO_XPUB_NODROP] = {"XPUB_NODROP",
                        SWITCH(s.xpub_nodrop,
                               TYPE_BIT(ZM_PUB) | TYPE_BIT(ZM_XPUB))},
    [ZO_XPUB_MANUAL] = {"XPUB_MANUAL",
                        SWITCH(s.xpub_manual,
                               TYPE_BIT(ZM_PUB) | TYPE_BIT(ZM_XPUB))},
    [ZO_XPUB_WELCOME_MSG] = {"XPUB_WELCOME_MSG", set_welcome, get_write_only,
                             0, 0, 0},
    [ZO_INVERT_MATCHING] = {"INVERT_MATCHING", set_invert_matching, get_int,
                            0, 0, offsetof(SocketObject, s.invert_matching)},
    [ZO_XPUB_VERBOSER] = {"XPUB_VERBOSER",
                          set_xpub_verboser, get_write_only,
                          TYPE_BIT(ZM_PUB) | TYPE_BIT(ZM_XPUB), 0,
                          offsetof(SocketObject, s.xpub_verboser)},
    [ZO_METADATA] = {"METADATA", set_metadata, get_write_only, 0, 0, 0},
    [ZO_ONLY_FIRST_SUBSCRIBE] = {"ONLY_FIRST_SUBSCRIBE",
                                 SWITCH(s.only_first_subscribe,
                                        TYPE_BIT(ZM_PUB) | TYPE_BIT(ZM_XPUB) |
                                            TYPE_BIT(ZM_XSUB))},
};

#undef INT_OPT
#undef INT_RO
#undef CURVE_KEY
#undef SWITCH
#undef TYPE_BIT

/* The row of option number opt, or NULL when zmtp has none. */
static const sockopt *sockopt_find(long opt)
{
    if (opt < 0 || (size_t)opt >= sizeof(sockopts) / sizeof(sockopts[0]) ||
        sockopts[opt].name == NULL)
        return NULL;
    return &sockopts[opt];
}

ZM_PY_DOC(zm_py_sock_setsockopt_doc,
"setsockopt(option, value, /)\n--\n\nSet a socket option (libzmq numbers).");

PyObject *zm_py_sock_setsockopt(SocketObject *self, PyObject *const *args,
                                Py_ssize_t nargs)
{
    const sockopt *o;
    int opt, rc;
    long optl;

    if (zm_py_check_nargs("setsockopt", nargs, 2, 2) < 0)
        return NULL;
    optl = PyLong_AsLong(args[0]);
    if (optl == -1 && PyErr_Occurred())
        return NULL;
    opt = (int)optl; /* as libzmq's int option numbers */
    if (sock_enter(self) < 0)
        return NULL;
    o = sockopt_find(opt);
    if (o == NULL || o->set == NULL) {
        raise_bad_option(self->st, opt);
        rc = -1;
    } else {
        rc = o->set(self, o, args[1]);
    }
    sock_leave(self);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

ZM_PY_DOC(zm_py_sock_getsockopt_doc,
"getsockopt(option, /)\n--\n\nGet a socket option (libzmq numbers).");

PyObject *zm_py_sock_getsockopt(SocketObject *self, PyObject *arg)
{
    long opt = PyLong_AsLong(arg);
    const sockopt *o;
    PyObject *out;

    if (opt == -1 && PyErr_Occurred())
        return NULL;
    if (sock_enter(self) < 0)
        return NULL;
    o = sockopt_find(opt);
    if (o == NULL || o->get == NULL)
        out = raise_bad_option(self->st, opt);
    else
        out = o->get(self, o);
    sock_leave(self);
    return out;
}

/* ------------------------------------------------------------------ */
/* Endpoints                                                          */
/* ------------------------------------------------------------------ */

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
        int parsed, ipv6 = self->s.tcp.ipv6;
        if (zm_addr_resolves(ep)) {
            /* getaddrinfo may take seconds (a slow DNS server): without
             * the GIL, so that the other threads run meanwhile.  The
             * socket stays claimed by this call (another thread's call on
             * it: EBUSY), and ep stays valid: it points into the
             * argument (an immutable str or bytes) our caller holds. */
            Py_BEGIN_ALLOW_THREADS
            parsed = zm_addr_parse(ep, which == 0, ipv6, &a, err,
                                   sizeof(err));
            Py_END_ALLOW_THREADS
        } else {
            parsed = zm_addr_parse(ep, which == 0, ipv6, &a, err,
                                   sizeof(err));
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

ZM_PY_DOC(zm_py_sock_monitor_fd_doc,
"_monitor_fd(fd, events, /)\n--\n\n"
"Send this socket's monitor events (a libzmq ZMQ_EVENT_* mask) as ZMTP\n"
"messages to fd, a connected non-blocking stream socket the socket owns\n"
"from now on, also when this raises; fd -1 stops.  Use\n"
"Socket.get_monitor_socket().");

ZM_PY_DOC(zm_py_sock_adopt_fd_doc,
"_adopt_fd(fd, endpoint, /)\n--\n\n"
"Take fd (a connected non-blocking stream socket; owned from now on, also\n"
"when this raises) as a peer connection named endpoint: ZMTP handshake,\n"
"then traffic.");

PyObject *zm_py_sock_monitor_fd(SocketObject *self, PyObject *const *args,
                                Py_ssize_t nargs)
{
    return sock_take_fd(self, args, nargs, 0);
}

PyObject *zm_py_sock_adopt_fd(SocketObject *self, PyObject *const *args,
                              Py_ssize_t nargs)
{
    return sock_take_fd(self, args, nargs, 1);
}

PyObject *zm_py_sock_bind(SocketObject *self, PyObject *addr)
{
    return sock_endpoint_call(self, addr, 0);
}

PyObject *zm_py_sock_connect(SocketObject *self, PyObject *addr)
{
    return sock_endpoint_call(self, addr, 1);
}

PyObject *zm_py_sock_unbind(SocketObject *self, PyObject *addr)
{
    return sock_endpoint_call(self, addr, 2);
}

PyObject *zm_py_sock_disconnect(SocketObject *self, PyObject *addr)
{
    return sock_endpoint_call(self, addr, 3);
}

/* inproc://: the names live in the Context (zmtp/_inproc.py), which calls
 * these with the GIL held, so a name's binder cannot close meanwhile. */

ZM_PY_DOC(zm_py_sock_inproc_listen_doc,
"_inproc_listen(endpoint, /)\n--\n\n"
"Ready this socket to adopt inproc pipes (its bind to endpoint).");

PyObject *zm_py_sock_inproc_listen(SocketObject *self, PyObject *arg)
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

ZM_PY_DOC(zm_py_sock_inproc_connect_doc,
"_inproc_connect(endpoint, /)\n--\n\n"
"A new pipe from this socket to endpoint; returns the binder's end\n"
"(an InprocPipe) for the context to offer to the bound socket.");

/* A pipe from this socket, its far end returned as an InprocPipe: to the
 * socket bound at `ep` (zm_sock_inproc_connect), or, with ep NULL, to the
 * Context's ZAP handler (zm_sock_zap_connect). */
static PyObject *sock_new_pipe(SocketObject *self, const char *ep)
{
    InprocPipeObject *po;
    zm_pipe *peer = NULL;
    int rc;

    po = PyObject_New(InprocPipeObject, self->st->InprocPipe_Type);
    if (po == NULL)
        return NULL;
    po->pipe = NULL;
    if (sock_enter(self) < 0) {
        Py_DECREF(po);
        return NULL;
    }
    rc = ep != NULL ? zm_sock_inproc_connect(&self->s, ep, &peer)
                    : zm_sock_zap_connect(&self->s, &peer);
    sock_leave(self);
    if (rc < 0) {
        Py_DECREF(po);
        return zm_py_raise_zmq(self->st, -rc, NULL);
    }
    po->pipe = peer;
    po->fork_gen = zm_fork_gen();
    return (PyObject *)po;
}

PyObject *zm_py_sock_inproc_connect(SocketObject *self, PyObject *arg)
{
    const char *ep = endpoint_str(self->st, arg);

    if (ep == NULL)
        return NULL;
    return sock_new_pipe(self, ep);
}

ZM_PY_DOC(zm_py_sock_zap_connect_doc,
"_zap_connect()\n--\n\n"
"A pipe from this socket to the Context's ZAP handler (engine_zap.c): the\n"
"returned end goes to the handler with _inproc_offer.");

PyObject *zm_py_sock_zap_connect(SocketObject *self, PyObject *unused)
{
    (void)unused;
    return sock_new_pipe(self, NULL);
}

ZM_PY_DOC(zm_py_sock_inproc_offer_doc,
"_inproc_offer(pipe, endpoint, /)\n--\n\n"
"Hand pipe to this bound socket (from any thread: the socket adopts it at\n"
"its next step).  The pipe is used up.");

PyObject *zm_py_sock_inproc_offer(SocketObject *self, PyObject *const *args,
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
        return zm_py_raise_zmq(self->st, EINVAL,
                               "inproc pipe already offered");
    /* A forked child never locks a parent's mailbox or pipe. */
    if (self->fork_gen != zm_fork_gen() || po->fork_gen != zm_fork_gen())
        return zm_py_raise_zmq(self->st, ENOTSUP, FORK_ERROR_SOCKET);
    /* No sock_enter: the owner may be blocked in a call on another thread;
     * only the mailbox (its own lock) is touched.  s.mb was made by the
     * owner's bind under the GIL, which we hold. */
    if (self->closed || self->s.mb == NULL)
        return zm_py_raise_zmq(self->st, ECONNREFUSED,
                               "inproc binder is closed");
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
/* Statistics                                                         */
/* ------------------------------------------------------------------ */

PyObject *zm_py_sock_stats(SocketObject *self, PyObject *unused)
{
    PyObject *d, *errs;
    zm_sock_stats snap, *s = &snap;
    int claimed;

    (void)unused;
    if (self->closed || !self->initialized) {
        if (self->released)
            return zm_py_raise_zmq(self->st, ZM_ETERM,
                                   "Context was terminated");
        return zm_py_raise_zmq(self->st, ENOTSOCK,
                               "Socket operation on closed socket");
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
    d = Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:N}", "accepted",
                      s->accepted, "connected", s->connected, "disconnected",
                      s->disconnected, "handshake_failed", s->handshake_failed,
                      "handshake_timeouts", s->handshake_timeouts,
                      "heartbeat_timeouts", s->heartbeat_timeouts,
                      "dropped_messages", s->dropped_msgs,
                      "subscriptions_refused", s->subs_refused,
                      "monitor_dropped", s->monitor_dropped,
                      "progress_steps", s->progress_steps,
                      "accepts_paused", s->accepts_paused,
                      "protocol_errors", errs);
    return d;
}
