/*
 * transport.h - endpoints ("tcp://host:port", "ipc://path") and the
 * non-blocking kernel sockets behind them, with the socket's transport
 * options (zm_sockopts) applied.  No Python; -errno returns.
 *
 * Layering: calls common.h and the kernel (socket, bind, listen, connect,
 * accept, getaddrinfo) only; it knows no ZMTP and never waits (connect and
 * accept are non-blocking steps).  Used by the engine (listen, connect,
 * accept), the Python face (bind/connect parse the endpoint first, without
 * the GIL when zm_addr_resolves says it may block) and inproc
 * (ZM_ENDPOINT_MAX only).  It must never call any of them.  inproc://
 * endpoints are not parsed here.
 */
#ifndef ZMTP_TRANSPORT_H
#define ZMTP_TRANSPORT_H

#include <sys/socket.h>
#include <sys/un.h>

#include "common.h"

#define ZM_ENDPOINT_MAX 300

/* SO_SNDBUF of a tcp connection to this host's loopback when the SNDBUF
 * option is unset (-1): the kernel keeps twice it, 1 MiB.  Measured on
 * 1 MiB to 64 MiB streams (docs/decisions.md, "Loopback send buffer"). */
#define ZM_LOOPBACK_SNDBUF (512 * 1024)

enum zm_transport { ZM_TR_TCP = 1, ZM_TR_IPC = 2 };

/*
 * The kernel-level options of a socket's tcp/ipc descriptors (libzmq's
 * names; -1 or 0 leaves the kernel's default), applied where libzmq 4.3.5
 * applies them: a listener gets tos, device, sndbuf, rcvbuf (accepted
 * descriptors inherit the buffers) and listens with `backlog`; an accepted
 * tcp descriptor gets NODELAY, the keepalives, maxrt and tos; a dialled one
 * tos, device, sndbuf, rcvbuf before connect() and NODELAY, the keepalives
 * and maxrt once connected.  ipc descriptors get `backlog` only.
 */
typedef struct zm_sockopts {
    int keepalive;       /* TCP_KEEPALIVE: -1, 0 or 1 (SO_KEEPALIVE) */
    int keepalive_cnt;   /* TCP_KEEPALIVE_CNT (TCP_KEEPCNT), -1: OS */
    int keepalive_idle;  /* TCP_KEEPALIVE_IDLE (TCP_KEEPIDLE, s), -1: OS */
    int keepalive_intvl; /* TCP_KEEPALIVE_INTVL (TCP_KEEPINTVL, s), -1: OS */
    int maxrt;           /* TCP_MAXRT in ms (TCP_USER_TIMEOUT), 0: OS */
    int sndbuf, rcvbuf;  /* SNDBUF / RCVBUF (SO_SNDBUF / SO_RCVBUF), -1: OS */
    int tos;             /* TOS (IP_TOS and IPV6_TCLASS), 0: none */
    int backlog;         /* BACKLOG: listen()'s, 128 (libzmq: 100) */
    int ipv6;            /* IPV6: "*" binds [::] dual-stack, names resolve
                            to IPv6 (IPv4 ones mapped) */
    char device[17];     /* BINDTODEVICE (SO_BINDTODEVICE), "": none */
} zm_sockopts;

/* libzmq's defaults. */
void zm_sockopts_init(zm_sockopts *o);

typedef struct zm_addr {
    int transport;
    struct sockaddr_storage ss;
    socklen_t len;
    int any_port; /* tcp://host:* (bind only) */
} zm_addr;

/*
 * Parse an endpoint.  For bind, "*" as host means all interfaces and "*"
 * (or 0) as port means an ephemeral port; for connect both must be real.
 * Host names are resolved (getaddrinfo, blocking): to IPv4 only, or with
 * `ipv6` (the IPV6 option) to IPv6 with IPv4 addresses mapped (as libzmq);
 * an IPv6 literal is taken either way, and "*" with `ipv6` is [::] (a
 * dual-stack listener).  0, or -EINVAL (bad
 * syntax), -EPROTONOSUPPORT (unknown transport), -ENAMETOOLONG (ipc path),
 * -EHOSTUNREACH (name does not resolve).  `err` gets a readable reason.
 */
int zm_addr_parse(const char *endpoint, int for_bind, int ipv6, zm_addr *out,
                  char *err, size_t err_len);

/* 1 when zm_addr_parse(endpoint) may block resolving a host name (a
 * tcp:// endpoint whose host is not "*"), else 0. */
int zm_addr_resolves(const char *endpoint);

/* The canonical endpoint of a bound or connected address
 * ("tcp://127.0.0.1:5555", "tcp://[::1]:5555", "ipc:///tmp/x"). */
void zm_addr_format(const zm_addr *a, char *out, size_t out_len);

/* A listening socket (non-blocking, close-on-exec) with `o` applied; `a`
 * is updated with the real address (ephemeral port).  An ipc path whose
 * socket nobody listens on any more (a stale file) is replaced.  -EPERM
 * (or another -errno) when BINDTODEVICE is refused, as libzmq's bind. */
int zm_listen(zm_addr *a, const zm_sockopts *o);

/* Listen on `fd`, a socket the caller bound and listen()ed (USE_FD): made
 * non-blocking and close-on-exec, `a` filled from getsockname (its
 * transport from the family).  0 or -errno (-ENOTSOCK; -EINVAL: not a
 * listening stream socket). */
int zm_listen_fd(int fd, zm_addr *a);

/* Start a non-blocking connect with `o` applied: >= 0 fd (connected, or
 * in progress when *in_progress is 1: check with zm_connect_result once
 * writable), or -errno: *in_progress is -1 when connect() was not reached
 * (socket() or an option failed), else 0. */
int zm_connect_start(const zm_addr *a, const zm_sockopts *o,
                     int *in_progress);

/* Tune a dialled descriptor once it is connected to `a` (NODELAY,
 * keepalives, maxrt: tcp only, as libzmq's tune_socket; and the loopback
 * send buffer, ZM_LOOPBACK_SNDBUF).  0 or -errno. */
int zm_connect_tune(int fd, const zm_addr *a, const zm_sockopts *o);

/* 0 when the connect completed, else -errno (SO_ERROR). */
int zm_connect_result(int fd);

/* Accept one connection: fd >= 0 (non-blocking, close-on-exec), -EAGAIN
 * when none is waiting, or -errno. */
int zm_accept(int listen_fd, int transport, const zm_sockopts *o);

#endif /* ZMTP_TRANSPORT_H */
