/*
 * transport.h - endpoints ("tcp://host:port", "ipc://path") and the
 * non-blocking kernel sockets behind them.  No Python; -errno returns.
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

enum zm_transport { ZM_TR_TCP = 1, ZM_TR_IPC = 2 };

typedef struct zm_addr {
    int transport;
    struct sockaddr_storage ss;
    socklen_t len;
    int any_port; /* tcp://host:* (bind only) */
} zm_addr;

/*
 * Parse an endpoint.  For bind, "*" as host means all interfaces and "*"
 * (or 0) as port means an ephemeral port; for connect both must be real.
 * Host names are resolved (getaddrinfo, blocking).  0, or -EINVAL (bad
 * syntax), -EPROTONOSUPPORT (unknown transport), -ENAMETOOLONG (ipc path),
 * -EHOSTUNREACH (name does not resolve).  `err` gets a readable reason.
 */
int zm_addr_parse(const char *endpoint, int for_bind, zm_addr *out, char *err,
                  size_t err_len);

/* 1 when zm_addr_parse(endpoint) may block resolving a host name (a
 * tcp:// endpoint whose host is not "*"), else 0. */
int zm_addr_resolves(const char *endpoint);

/* The canonical endpoint of a bound or connected address
 * ("tcp://127.0.0.1:5555", "tcp://[::1]:5555", "ipc:///tmp/x"). */
void zm_addr_format(const zm_addr *a, char *out, size_t out_len);

/* A listening socket (non-blocking, close-on-exec); `a` is updated with the
 * real address (ephemeral port).  An ipc path whose socket nobody listens
 * on any more (a stale file) is replaced. */
int zm_listen(zm_addr *a, int backlog);

/* Start a non-blocking connect: >= 0 fd (connected or in progress, check
 * with zm_connect_result once writable), or -errno. */
int zm_connect_start(const zm_addr *a, int *in_progress);

/* 0 when the connect completed, else -errno (SO_ERROR). */
int zm_connect_result(int fd);

/* Accept one connection: fd >= 0 (non-blocking, close-on-exec), -EAGAIN
 * when none is waiting, or -errno. */
int zm_accept(int listen_fd, int transport);

#endif /* ZMTP_TRANSPORT_H */
