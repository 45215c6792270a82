/* A minimal ZMTP 3.1 peer in C (NULL mechanism, one-frame messages), to put
 * plain C on one end of a PUSH -> PULL stream and zmtp (or pyzmq) on the
 * other, so that a gap to the C floor can be split between the two ends
 * (benchmarks/cross_pair.py, docs/performance.md "tcp 256 KiB and 1 MiB").
 *
 *   c_zmtp_peer pull PORT COUNT      bind 127.0.0.1:PORT, print "ready", take
 *                                    one PUSH, receive COUNT messages, print
 *                                    "msg_s RATE" (from the first to the last)
 *   c_zmtp_peer push PORT SIZE COUNT connect to 127.0.0.1:PORT, send COUNT
 *                                    messages of SIZE bytes, then close
 *
 * Blocking sockets with default buffers and TCP_NODELAY (as libzmq and
 * zmtp); the sender writes each message with one writev() of its 9-byte
 * header and its bytes; the receiver reads each header, then the body
 * straight into one buffer.  Not a ZMTP implementation: no checks beyond
 * what it needs, a peer for benchmarks only; not part of the package.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void read_all(int fd, void *p, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t k = read(fd, (char *)p + got, n - got);
        if (k <= 0)
            die("read");
        got += (size_t)k;
    }
}

static void write_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t k = writev(fd, iov, cnt);
        if (k < 0)
            die("writev");
        while (cnt > 0 && (size_t)k >= iov->iov_len) {
            k -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= (size_t)k;
        }
    }
}

/* Greeting (NULL, as-server 0), then READY with Socket-Type, then the
 * peer's greeting; the peer's READY is read as the first command frame. */
static void handshake(int fd, const char *type)
{
    unsigned char g[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 1};
    unsigned char r[64];
    size_t n = 0, tlen = strlen(type);
    struct iovec iov[1];

    memcpy(g + 12, "NULL", 4);
    r[n++] = 0x04; /* a short command */
    r[n++] = 0;
    r[n++] = 5;
    memcpy(r + n, "READY", 5);
    n += 5;
    r[n++] = 11;
    memcpy(r + n, "Socket-Type", 11);
    n += 11;
    r[n++] = 0;
    r[n++] = 0;
    r[n++] = 0;
    r[n++] = (unsigned char)tlen;
    memcpy(r + n, type, tlen);
    n += tlen;
    r[1] = (unsigned char)(n - 2);
    iov[0].iov_base = g;
    iov[0].iov_len = sizeof g;
    write_all(fd, iov, 1);
    read_all(fd, g, sizeof g);
    iov[0].iov_base = r;
    iov[0].iov_len = n;
    write_all(fd, iov, 1);
}

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int pull(int port, long count)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0), fd;
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    double t0 = 0;
    long got = 0;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ls < 0 || buf == NULL)
        die("socket");
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1) < 0)
        die("bind");
    printf("ready\n");
    fflush(stdout);
    fd = accept(ls, NULL, NULL);
    if (fd < 0)
        die("accept");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    handshake(fd, "PULL");
    while (got < count) {
        unsigned char h[9];
        uint64_t size = 0;
        read_all(fd, h, 2);
        if (h[0] & 0x02) {
            read_all(fd, h + 2, 7);
            for (int i = 1; i < 9; i++)
                size = size << 8 | h[i];
        } else {
            size = h[1];
        }
        if (size > cap) {
            free(buf);
            cap = (size_t)size;
            buf = malloc(cap);
            if (buf == NULL)
                die("malloc");
        }
        read_all(fd, buf, (size_t)size);
        if (h[0] & 0x04)
            continue; /* the peer's READY (or any command) */
        if (got++ == 0)
            t0 = now_s();
    }
    printf("msg_s %.1f\n", (double)(count - 1) / (now_s() - t0));
    free(buf);
    return 0;
}

static int push(int port, size_t size, long count)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    unsigned char h[9] = {0x02}; /* a long, final message frame */
    char *buf = malloc(size ? size : 1), x;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || buf == NULL)
        die("socket");
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    handshake(fd, "PUSH");
    memset(buf, 'x', size); /* real bytes: not the kernel's zero page */
    for (int i = 0; i < 8; i++)
        h[1 + i] = (unsigned char)((uint64_t)size >> (56 - 8 * i));
    for (long i = 0; i < count; i++) {
        struct iovec iov[2] = {{h, sizeof h}, {buf, size}};
        write_all(fd, iov, 2);
    }
    shutdown(fd, SHUT_WR);
    while (read(fd, &x, 1) > 0) /* the peer's READY; then its close */
        ;
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "pull") == 0)
        return pull(atoi(argv[2]), atol(argv[3]));
    if (argc == 5 && strcmp(argv[1], "push") == 0)
        return push(atoi(argv[2]), strtoull(argv[3], NULL, 10), atol(argv[4]));
    fprintf(stderr, "usage: %s pull PORT COUNT | push PORT SIZE COUNT\n", argv[0]);
    return 2;
}
