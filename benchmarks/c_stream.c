/* The C floor of issue 19's sweep: what plain C does over the same loopback.
 *
 *   c_stream stream   tcp|ipc:PATH SIZE COUNT   -> "msg_s RATE"
 *   c_stream pingpong tcp|ipc:PATH SIZE COUNT   -> "p50_us P50 p99_us P99"
 *
 * Two processes (fork): the parent listens (tcp on 127.0.0.1, any port, or a
 * unix stream socket at PATH) and the child connects.  stream: the child
 * sends COUNT messages of SIZE bytes, each an 8-byte length (big-endian) and
 * the bytes; the parent receives them and times from its first message to
 * its last: (COUNT - 1) / elapsed.  pingpong: the parent sends a message and
 * waits for the child's echo, COUNT times after a warm-up, and prints the
 * median and the 99th percentile of the round trips.
 *
 * Plain write/read loops with 4 MiB socket buffers (ZMTP_PERF_C_SNDBUF and
 * ZMTP_PERF_C_RCVBUF override them, in bytes; 0 leaves the kernel's): small messages go
 * through a 256 KiB buffer each way (one syscall per batch, as any stream
 * protocol does); a message at least that large is written with writev()
 * of its header and its bytes and read straight into its own buffer.
 * No ZMTP: no greeting, no flags; the floor a ZeroMQ library approaches.
 *
 * Built by zmtp.perf (cc -O2, cached in a temp dir); not part of the package.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUF (256 * 1024)
#define SOCKBUF (4 * 1024 * 1024)
#define HDR 8

struct conn {
    int fd;
    unsigned char *in;     /* BUF bytes of read buffer */
    size_t in_pos, in_len;
    unsigned char *out;    /* BUF bytes of write buffer */
    size_t out_len;
};

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void write_all(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("write");
        }
        p += n;
        len -= (size_t)n;
    }
}

static void flush_out(struct conn *c)
{
    write_all(c->fd, c->out, c->out_len);
    c->out_len = 0;
}

static void put_header(unsigned char *h, uint64_t size)
{
    for (int i = 0; i < HDR; i++)
        h[i] = (unsigned char)(size >> (8 * (HDR - 1 - i)));
}

/* One message: buffered when small, writev() of header and bytes when large. */
static void send_msg(struct conn *c, const unsigned char *data, size_t size)
{
    if (size + HDR > BUF) {
        unsigned char h[HDR];
        struct iovec iov[2];
        size_t done = 0, total = size + HDR;
        flush_out(c);
        put_header(h, size);
        while (done < total) {
            int cnt = 0;
            if (done < HDR) {
                iov[cnt].iov_base = h + done;
                iov[cnt++].iov_len = HDR - done;
            }
            size_t body = done < HDR ? 0 : done - HDR;
            iov[cnt].iov_base = (void *)(data + body);
            iov[cnt++].iov_len = size - body;
            ssize_t n = writev(c->fd, iov, cnt);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                die("writev");
            }
            done += (size_t)n;
        }
        return;
    }
    if (c->out_len + size + HDR > BUF)
        flush_out(c);
    put_header(c->out + c->out_len, size);
    memcpy(c->out + c->out_len + HDR, data, size);
    c->out_len += size + HDR;
}

/* Fill the read buffer with at least `want` bytes (want <= BUF). */
static void need(struct conn *c, size_t want)
{
    if (c->in_len - c->in_pos >= want)
        return;
    memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
    c->in_len -= c->in_pos;
    c->in_pos = 0;
    while (c->in_len < want) {
        ssize_t n = read(c->fd, c->in + c->in_len, BUF - c->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "c_stream: peer closed\n");
            exit(2);
        }
        c->in_len += (size_t)n;
    }
}

/* One message into `dst` (capacity `cap`); returns its size. */
static size_t recv_msg(struct conn *c, unsigned char *dst, size_t cap)
{
    uint64_t size = 0;
    need(c, HDR);
    for (int i = 0; i < HDR; i++)
        size = (size << 8) | c->in[c->in_pos + i];
    c->in_pos += HDR;
    if (size > cap) {
        fprintf(stderr, "c_stream: message of %llu bytes, buffer of %zu\n", (unsigned long long)size, cap);
        exit(2);
    }
    size_t have = c->in_len - c->in_pos;
    if (size <= have) {
        memcpy(dst, c->in + c->in_pos, size);
        c->in_pos += size;
        return size;
    }
    memcpy(dst, c->in + c->in_pos, have);
    c->in_pos = c->in_len = 0;
    size_t got = have;
    while (got < size) {
        if (size - got < BUF / 4) {  /* a short tail: through the buffer, with what follows */
            need(c, size - got);
            memcpy(dst + got, c->in, size - got);
            c->in_pos = size - got;
            break;
        }
        ssize_t n = read(c->fd, dst + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "c_stream: peer closed mid-message\n");
            exit(2);
        }
        got += (size_t)n;
    }
    return size;
}

/* A socket buffer size: $NAME in bytes when set (0: the kernel's own,
 * autotuned on tcp), else SOCKBUF. */
static int buf_size(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? atoi(v) : SOCKBUF;
}

static void tune(int fd, int tcp)
{
    int snd = buf_size("ZMTP_PERF_C_SNDBUF"), rcv = buf_size("ZMTP_PERF_C_RCVBUF"), one = 1;
    if (snd > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
    if (rcv > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    if (tcp)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void conn_init(struct conn *c, int fd)
{
    c->fd = fd;
    c->in = malloc(BUF);
    c->out = malloc(BUF);
    if (!c->in || !c->out)
        die("malloc");
    c->in_pos = c->in_len = c->out_len = 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "stream") && strcmp(argv[1], "pingpong"))) {
        fprintf(stderr, "usage: %s stream|pingpong tcp|ipc:PATH SIZE COUNT\n", argv[0]);
        return 2;
    }
    int pingpong = !strcmp(argv[1], "pingpong");
    int tcp = !strcmp(argv[2], "tcp");
    size_t size = strtoull(argv[3], NULL, 10);
    long count = strtol(argv[4], NULL, 10);
    if (count < 2 || (!tcp && strncmp(argv[2], "ipc:", 4))) {
        fprintf(stderr, "c_stream: COUNT >= 2; transport tcp or ipc:PATH\n");
        return 2;
    }
    struct sockaddr_storage addr;
    socklen_t alen;
    memset(&addr, 0, sizeof addr);
    int lfd = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM, 0);
    if (lfd < 0)
        die("socket");
    if (tcp) {
        struct sockaddr_in *in = (struct sockaddr_in *)&addr;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        alen = sizeof *in;
    } else {
        struct sockaddr_un *un = (struct sockaddr_un *)&addr;
        un->sun_family = AF_UNIX;
        if (strlen(argv[2] + 4) >= sizeof un->sun_path) {
            fprintf(stderr, "c_stream: ipc path too long\n");
            return 2;
        }
        strcpy(un->sun_path, argv[2] + 4);
        unlink(un->sun_path);
        alen = sizeof *un;
    }
    tune(lfd, 0);  /* inherited by the accepted socket */
    if (bind(lfd, (struct sockaddr *)&addr, alen) < 0 || listen(lfd, 1) < 0)
        die("bind/listen");
    if (getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0)
        die("getsockname");
    unsigned char *data = malloc(size ? size : 1);
    if (!data)
        die("malloc");
    /* Real bytes, as the Python columns send (b"x" * size): untouched
     * calloc'd pages all map the kernel's one zero page, so the sender's
     * copies would read one cache-hot 4 KiB page over and over (a floor
     * 30 % too high at 64 MiB). */
    memset(data, 'x', size ? size : 1);
    long warm = pingpong ? (count / 10 < 10 ? 10 : (count / 10 > 1000 ? 1000 : count / 10)) : 0;
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {  /* the connecting side: sender (stream) or echo (pingpong) */
        close(lfd);
        int fd = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0)
            die("socket");
        tune(fd, tcp);
        if (connect(fd, (struct sockaddr *)&addr, alen) < 0)
            die("connect");
        struct conn c;
        conn_init(&c, fd);
        for (long i = 0; i < warm + count; i++) {
            if (pingpong)
                recv_msg(&c, data, size);
            send_msg(&c, data, size);
            if (pingpong)
                flush_out(&c);
        }
        flush_out(&c);
        /* wait for the parent to close: every byte was read */
        char byte;
        while (read(fd, &byte, 1) > 0)
            ;
        _exit(0);
    }
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        die("accept");
    if (tcp) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    struct conn c;
    conn_init(&c, fd);
    if (pingpong) {
        uint64_t *times = malloc(sizeof *times * (size_t)count);
        if (!times)
            die("malloc");
        for (long i = 0; i < warm + count; i++) {
            uint64_t t0 = now_ns();
            send_msg(&c, data, size);
            flush_out(&c);
            recv_msg(&c, data, size);
            if (i >= warm)
                times[i - warm] = now_ns() - t0;
        }
        qsort(times, (size_t)count, sizeof *times, cmp_u64);
        long r50 = (count * 50 + 99) / 100, r99 = (count * 99 + 99) / 100;
        printf("p50_us %.3f p99_us %.3f\n", times[r50 - 1] / 1e3, times[r99 - 1] / 1e3);
    } else {
        recv_msg(&c, data, size);
        uint64_t first = now_ns();
        for (long i = 1; i < count; i++)
            recv_msg(&c, data, size);
        uint64_t last = now_ns();
        printf("msg_s %.3f\n", (double)(count - 1) * 1e9 / (double)(last - first ? last - first : 1));
    }
    fflush(stdout);
    close(fd);
    waitpid(child, NULL, 0);
    if (!tcp)
        unlink(((struct sockaddr_un *)&addr)->sun_path);
    return 0;
}
