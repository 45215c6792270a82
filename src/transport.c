/*
 * transport.c - endpoint parsing and kernel socket set-up for tcp and ipc
 * (see transport.h).
 *
 * Layering: calls common.h and the kernel's socket calls only.
 */
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int set_err(char *err, size_t err_len, int rc, const char *fmt,
                   const char *arg)
{
    if (err != NULL && err_len > 0)
        snprintf(err, err_len, fmt, arg);
    return rc;
}

static int parse_port(const char *s, int for_bind, int *port, int *any)
{
    char *end;
    long v;

    *any = 0;
    if (for_bind && (strcmp(s, "*") == 0 || strcmp(s, "0") == 0)) {
        *any = 1;
        *port = 0;
        return 0;
    }
    if (*s == '\0')
        return -EINVAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
        return -EINVAL;
    *port = (int)v;
    return 0;
}

static int parse_tcp(const char *rest, int for_bind, int ipv6, zm_addr *out,
                     char *err, size_t err_len)
{
    char host[256];
    const char *colon, *port_s;
    size_t hlen;
    int port, any, rc;
    struct addrinfo hints, *res = NULL;

    if (rest[0] == '[') { /* [ipv6]:port */
        const char *close = strchr(rest, ']');
        if (close == NULL || close[1] != ':')
            return set_err(err, err_len, -EINVAL,
                           "bad tcp endpoint %s (want tcp://[addr]:port)",
                           rest);
        hlen = (size_t)(close - rest - 1);
        if (hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, rest + 1, hlen);
        host[hlen] = '\0';
        port_s = close + 2;
    } else {
        colon = strrchr(rest, ':');
        if (colon == NULL)
            return set_err(err, err_len, -EINVAL,
                           "bad tcp endpoint %s (want tcp://host:port)", rest);
        hlen = (size_t)(colon - rest);
        if (hlen == 0 || hlen >= sizeof(host))
            return set_err(err, err_len, -EINVAL,
                           "bad tcp endpoint %s (want tcp://host:port)", rest);
        memcpy(host, rest, hlen);
        host[hlen] = '\0';
        port_s = colon + 1;
    }
    if (parse_port(port_s, for_bind, &port, &any) < 0)
        return set_err(err, err_len, -EINVAL, "bad port in tcp endpoint %s",
                       rest);
    memset(out, 0, sizeof(*out));
    out->transport = ZM_TR_TCP;
    out->any_port = any;
    if (!for_bind && strcmp(host, "*") == 0)
        return set_err(err, err_len, -EINVAL,
                       "tcp://*:port is for bind only, not connect: %s", rest);
    if (for_bind && strcmp(host, "*") == 0 && ipv6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->ss;
        s6->sin6_family = AF_INET6; /* [::], dual-stack (V6ONLY off) */
        s6->sin6_addr = in6addr_any;
        s6->sin6_port = htons((uint16_t)port);
        out->len = sizeof(*s6);
        return 0;
    }
    if (for_bind && strcmp(host, "*") == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons((uint16_t)port);
        out->len = sizeof(*sin);
        return 0;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (for_bind ? AI_PASSIVE : 0);
    if (strchr(host, ':') != NULL) {
        /* An IPv6 literal: taken with or without IPV6 (zmtp's choice,
         * docs/options.md; libzmq wants IPV6 for it). */
        hints.ai_family = AF_INET6;
        hints.ai_flags |= AI_NUMERICHOST;
    } else if (ipv6) {
        /* As libzmq with IPV6: an IPv6 socket, IPv4 addresses mapped. */
        hints.ai_family = AF_INET6;
        hints.ai_flags |= AI_V4MAPPED;
    } else {
        hints.ai_family = AF_INET;
    }
    {
        char pbuf[8];
        snprintf(pbuf, sizeof(pbuf), "%d", port);
        rc = getaddrinfo(host, pbuf, &hints, &res);
    }
    if (rc != 0 || res == NULL)
        return set_err(err, err_len, for_bind ? -ENODEV : -EHOSTUNREACH,
                       "cannot resolve host %s", host);
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int zm_addr_resolves(const char *endpoint)
{
    return strncmp(endpoint, "tcp://", 6) == 0 &&
           strncmp(endpoint + 6, "*:", 2) != 0;
}

int zm_addr_parse(const char *endpoint, int for_bind, int ipv6, zm_addr *out,
                  char *err, size_t err_len)
{
    if (strncmp(endpoint, "tcp://", 6) == 0)
        return parse_tcp(endpoint + 6, for_bind, ipv6, out, err, err_len);
    if (strncmp(endpoint, "ipc://", 6) == 0) {
        const char *path = endpoint + 6;
        struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
        size_t n = strlen(path);
        memset(out, 0, sizeof(*out));
        if (n == 0)
            return set_err(err, err_len, -EINVAL, "empty ipc path%s", "");
        if (n >= sizeof(sun->sun_path))
            return set_err(err, err_len, -ENAMETOOLONG,
                           "ipc path too long: %s", path);
        out->transport = ZM_TR_IPC;
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, path, n + 1);
        if (path[0] == '@') /* Linux abstract namespace, as libzmq */
            sun->sun_path[0] = '\0';
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
                               (path[0] == '@' ? 0 : 1));
        return 0;
    }
    if (strstr(endpoint, "://") != NULL)
        return set_err(err, err_len, -EPROTONOSUPPORT,
                       "transport not supported: %s "
                       "(zmtp has tcp://, ipc:// and inproc://)",
                       endpoint);
    return set_err(err, err_len, -EINVAL,
                   "invalid endpoint %s (want tcp://host:port or ipc://path)",
                   endpoint);
}

void zm_addr_format(const zm_addr *a, char *out, size_t out_len)
{
    char host[INET6_ADDRSTRLEN];

    if (a->transport == ZM_TR_IPC) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;
        if (sun->sun_path[0] == '\0')
            snprintf(out, out_len, "ipc://@%s", sun->sun_path + 1);
        else
            snprintf(out, out_len, "ipc://%s", sun->sun_path);
        return;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(out, out_len, "tcp://[%s]:%u", host, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(out, out_len, "tcp://%s:%u", host, ntohs(s4->sin_port));
    }
}

void zm_sockopts_init(zm_sockopts *o)
{
    memset(o, 0, sizeof(*o));
    o->keepalive = -1;
    o->keepalive_cnt = -1;
    o->keepalive_idle = -1;
    o->keepalive_intvl = -1;
    o->sndbuf = -1;
    o->rcvbuf = -1;
    o->backlog = 128; /* zmtp's (libzmq: 100), docs/options.md */
}

static int set_int(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value)) < 0 ? -errno : 0;
}

/* TOS on both IP levels, as libzmq's set_ip_type_of_service (IPV6_TCLASS
 * fails on an IPv4 socket: ignored, as libzmq). */
static int set_tos(int fd, int tos)
{
    int rc = set_int(fd, IPPROTO_IP, IP_TOS, tos);

    (void)set_int(fd, IPPROTO_IPV6, IPV6_TCLASS, tos);
    return rc;
}

/* What libzmq's tcp_open_socket applies before bind or connect: IPv4
 * mapping on an IPv6 socket, tos, device, buffers.  0 or -errno. */
static int tune_open(int fd, int family, const zm_sockopts *o)
{
    int rc = 0;

    if (family == AF_INET6)
        (void)set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
    if (o->tos != 0 && (rc = set_tos(fd, o->tos)) < 0)
        return rc;
    if (o->device[0] != '\0' &&
        setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, o->device,
                   (socklen_t)strlen(o->device)) < 0)
        return -errno;
    if (o->sndbuf >= 0 && (rc = set_int(fd, SOL_SOCKET, SO_SNDBUF, o->sndbuf)) < 0)
        return rc;
    if (o->rcvbuf >= 0)
        rc = set_int(fd, SOL_SOCKET, SO_RCVBUF, o->rcvbuf);
    return rc;
}

/* Is a connection's peer address this host's loopback (127.0.0.0/8, ::1,
 * or ::ffff:127.x.y.z)?  From the address dialled or accept4()'s: no
 * syscall of its own. */
static int is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

/* What libzmq's tune_tcp_socket, tune_tcp_keepalives and tune_tcp_maxrt
 * apply to a connected descriptor, and zmtp's loopback send buffer: with
 * SNDBUF unset, a connection to this host's loopback gets
 * ZM_LOOPBACK_SNDBUF instead of the kernel's autotuning (which grows it to
 * tcp_wmem's 4 MiB: bytes in flight that no longer fit the CPU cache;
 * docs/decisions.md, "Loopback send buffer").  0 or -errno. */
static int tune_connected(int fd, const zm_sockopts *o,
                          const struct sockaddr_storage *peer)
{
    int rc = set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);

    if (rc == 0 && o->sndbuf < 0 && is_loopback(peer))
        (void)set_int(fd, SOL_SOCKET, SO_SNDBUF, ZM_LOOPBACK_SNDBUF);

    if (rc == 0 && o->keepalive != -1) {
        rc = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, o->keepalive);
        if (rc == 0 && o->keepalive_cnt != -1)
            rc = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, o->keepalive_cnt);
        if (rc == 0 && o->keepalive_idle != -1)
            rc = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, o->keepalive_idle);
        if (rc == 0 && o->keepalive_intvl != -1)
            rc = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, o->keepalive_intvl);
    }
    if (rc == 0 && o->maxrt > 0)
        rc = set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, o->maxrt);
    return rc;
}

/* libzmq's fall-back on a machine without IPv6 (socket(AF_INET6) says
 * EAFNOSUPPORT): [::] becomes 0.0.0.0 and a mapped address (::ffff:a.b.c.d,
 * an IPv4 name resolved with IPV6) a.b.c.d.  0, or -EAFNOSUPPORT when `a`
 * has no IPv4 form (a real IPv6 address). */
static int v4_fallback(zm_addr *a)
{
    struct sockaddr_in6 s6;
    struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

    memcpy(&s6, &a->ss, sizeof(s6));
    if (!IN6_IS_ADDR_UNSPECIFIED(&s6.sin6_addr) &&
        !IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr))
        return -EAFNOSUPPORT;
    memset(&a->ss, 0, sizeof(a->ss));
    sin->sin_family = AF_INET;
    sin->sin_port = s6.sin6_port;
    if (IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr))
        memcpy(&sin->sin_addr, &s6.sin6_addr.s6_addr[12], 4);
    else
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
    a->len = sizeof(*sin);
    return 0;
}

/* A non-blocking, close-on-exec stream socket for `a` (IPv4 instead of
 * IPv6 where v4_fallback says so, `a` then rewritten): fd, or -errno;
 * -ENODEV for an IPv6 address on a machine without IPv6 (libzmq's
 * resolver, asked again for IPv4, says so). */
static int open_stream(zm_addr *a)
{
    int family = a->transport == ZM_TR_IPC ? AF_UNIX : a->ss.ss_family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0 && errno == EAFNOSUPPORT && family == AF_INET6) {
        if (v4_fallback(a) < 0)
            return -ENODEV;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    return fd < 0 ? -errno : fd;
}

int zm_listen(zm_addr *a, const zm_sockopts *o)
{
    int fd, rc, one = 1;

    fd = open_stream(a);
    if (fd < 0)
        return fd;
    if (a->transport == ZM_TR_TCP) {
        if ((rc = tune_open(fd, a->ss.ss_family, o)) < 0)
            goto out;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    rc = bind(fd, (struct sockaddr *)&a->ss, a->len);
    if (rc < 0 && errno == EADDRINUSE && a->transport == ZM_TR_IPC) {
        /* A stale socket file: replace it only if nobody listens on it. */
        struct sockaddr_un *sun = (struct sockaddr_un *)&a->ss;
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0) {
            int live = connect(probe, (struct sockaddr *)&a->ss, a->len) == 0;
            close(probe);
            if (!live && sun->sun_path[0] != '\0') {
                struct stat st;
                if (lstat(sun->sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
                    unlink(sun->sun_path);
                rc = bind(fd, (struct sockaddr *)&a->ss, a->len);
            } else {
                errno = EADDRINUSE;
            }
        }
    }
    if (rc < 0 || listen(fd, o->backlog) < 0) {
        rc = -errno;
        goto out;
    }
    if (a->transport == ZM_TR_TCP) {
        a->len = sizeof(a->ss);
        if (getsockname(fd, (struct sockaddr *)&a->ss, &a->len) < 0)
            rc = -errno;
    }
out:
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int zm_listen_fd(int fd, zm_addr *a)
{
    int type = 0, listening = 0, flags;
    socklen_t len = sizeof(type);

    memset(a, 0, sizeof(*a));
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -errno;
    len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
        return -errno;
    /* Not listening: refused here (libzmq would accept() on it and fail
     * at each readiness) */
    if (type != SOCK_STREAM || !listening)
        return -EINVAL;
    a->len = sizeof(a->ss);
    if (getsockname(fd, (struct sockaddr *)&a->ss, &a->len) < 0)
        return -errno;
    if (a->ss.ss_family == AF_UNIX)
        a->transport = ZM_TR_IPC;
    else if (a->ss.ss_family == AF_INET || a->ss.ss_family == AF_INET6)
        a->transport = ZM_TR_TCP;
    else
        return -EINVAL;
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

int zm_connect_start(const zm_addr *a, const zm_sockopts *o, int *in_progress)
{
    zm_addr to = *a; /* IPv4 instead where open_stream falls back */
    int fd, rc;

    *in_progress = -1; /* until connect() is called */
    fd = open_stream(&to);
    if (fd < 0)
        return fd;
    if (to.transport == ZM_TR_TCP &&
        (rc = tune_open(fd, to.ss.ss_family, o)) < 0)
        goto fail;
    *in_progress = 0;
    ZM_COUNT(ZM_CNT_OTHER);
    rc = connect(fd, (const struct sockaddr *)&to.ss, to.len);
    if (rc == 0)
        return fd;
    if (errno == EINPROGRESS) { /* tcp; for ipc EAGAIN means a full backlog */
        *in_progress = 1;
        return fd;
    }
    rc = -errno;
fail:
    close(fd);
    return rc;
}

int zm_connect_tune(int fd, const zm_addr *a, const zm_sockopts *o)
{
    return a->transport == ZM_TR_TCP ? tune_connected(fd, o, &a->ss) : 0;
}

int zm_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

int zm_accept(int listen_fd, int transport, const zm_sockopts *o)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);
    int fd, rc;

    ZM_COUNT(ZM_CNT_OTHER);
    fd = accept4(listen_fd, (struct sockaddr *)&peer, &len,
                 SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (transport != ZM_TR_TCP)
        return fd;
    rc = tune_connected(fd, o, &peer);
    if (rc == 0 && o->tos != 0)
        rc = set_tos(fd, o->tos);
    if (rc < 0) { /* libzmq: ACCEPT_FAILED (and the descriptor closed) */
        close(fd);
        return rc;
    }
    return fd;
}
