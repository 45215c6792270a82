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

static int parse_tcp(const char *rest, int for_bind, zm_addr *out, char *err,
                     size_t err_len)
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
    if (for_bind && strcmp(host, "*") == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons((uint16_t)port);
        out->len = sizeof(*sin);
        return 0;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (for_bind ? AI_PASSIVE : 0);
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

int zm_addr_parse(const char *endpoint, int for_bind, zm_addr *out, char *err,
                  size_t err_len)
{
    if (strncmp(endpoint, "tcp://", 6) == 0)
        return parse_tcp(endpoint + 6, for_bind, out, err, err_len);
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

static void tune_tcp(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int zm_listen(zm_addr *a, int backlog)
{
    int fd, rc, one = 1;
    int family = a->transport == ZM_TR_IPC ? AF_UNIX : a->ss.ss_family;

    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (a->transport == ZM_TR_TCP)
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
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
    if (rc < 0)
        goto fail;
    if (listen(fd, backlog) < 0)
        goto fail;
    if (a->transport == ZM_TR_TCP) {
        a->len = sizeof(a->ss);
        if (getsockname(fd, (struct sockaddr *)&a->ss, &a->len) < 0)
            goto fail;
    }
    return fd;
fail:
    rc = -errno;
    close(fd);
    return rc;
}

int zm_connect_start(const zm_addr *a, int *in_progress)
{
    int fd, rc;
    int family = a->transport == ZM_TR_IPC ? AF_UNIX : a->ss.ss_family;

    *in_progress = 0;
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (a->transport == ZM_TR_TCP)
        tune_tcp(fd);
    ZM_COUNT(ZM_CNT_OTHER);
    rc = connect(fd, (const struct sockaddr *)&a->ss, a->len);
    if (rc == 0)
        return fd;
    if (errno == EINPROGRESS) { /* tcp; for ipc EAGAIN means a full backlog */
        *in_progress = 1;
        return fd;
    }
    rc = -errno;
    close(fd);
    return rc;
}

int zm_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

int zm_accept(int listen_fd, int transport)
{
    int fd;

    ZM_COUNT(ZM_CNT_OTHER);
    fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (transport == ZM_TR_TCP)
        tune_tcp(fd);
    return fd;
}
