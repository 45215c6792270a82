/*
 * test_backend.c - the I/O backends (src/backend.h), one function per
 * feature, in the liburing test style: each prints "ok NAME",
 * "FAIL NAME: why" or "skip NAME: why"; the program exits 0 (pass),
 * 1 (some failure) or 77 (this backend cannot run here).
 *
 * usage: test_backend io_uring|epoll [test-name]
 * build: cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Isrc tests/c/test_backend.c
 *        src/backend.c src/ring.c src/epoll.c -lpthread
 */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif

enum { T_OK = 0, T_FAIL = 1, T_SKIP = 2, T_EXIT_SKIP = 77 };

static const char *g_name; /* backend under test */

#define WHY_LEN 512

static void setwhy(char *why, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void setwhy(char *why, int line, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(why, WHY_LEN, "line %d: ", line);

    va_start(ap, fmt);
    vsnprintf(why + n, WHY_LEN - (size_t)n, fmt, ap);
    va_end(ap);
}

/* In a test function: `int ret = T_OK;` ... `out:` cleanup, return ret. */
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            setwhy(why, __LINE__, __VA_ARGS__);                            \
            ret = T_FAIL;                                                  \
            goto out;                                                      \
        }                                                                  \
    } while (0)

#define SKIP(...)                                                          \
    do {                                                                   \
        snprintf(why, WHY_LEN, __VA_ARGS__);                               \
        ret = T_SKIP;                                                      \
        goto out;                                                          \
    } while (0)

#define MS(x) ((int64_t)(x) * 1000000)

/* ================================================================== */
/* Helpers                                                            */
/* ================================================================== */

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* wait() as a caller does it: -EINTR without a signal of ours (the kernel
 * may interrupt an epoll_wait with task work after an io_uring ring of this
 * thread was closed) is retried with the remaining time, and counted. */
static int g_spurious_eintr;

static int bwait(zm_backend *b, zm_io_event *evs, int max, int64_t timeout_ns)
{
    int64_t deadline = now_ns() + timeout_ns, left = timeout_ns;
    int n;

    for (;;) {
        n = zm_backend_wait(b, evs, max, left);
        if (n != -EINTR)
            return n;
        g_spurious_eintr++;
        if (timeout_ns > 0) {
            left = deadline - now_ns();
            if (left < 0)
                left = 0;
        }
    }
}

static int open_b(zm_backend **b, unsigned entries, char *why)
{
    char reason[256];
    int rc = zm_backend_open_sized(b, g_name, entries, reason, sizeof(reason));

    if (rc < 0)
        snprintf(why, WHY_LEN, "open(%s): %d %s", g_name, rc, reason);
    return rc;
}

static int sp_pair(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                      fds);
}

/* A connected TCP pair over 127.0.0.1, both non-blocking. */
static int tcp_pair(int fds[2])
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int lfd, one = 1, rc = -1;

    fds[0] = fds[1] = -1;
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0)
        goto out;
    fds[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fds[1] < 0 || connect(fds[1], (struct sockaddr *)&sa, sizeof(sa)) < 0)
        goto out;
    fds[0] = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fds[0] < 0)
        goto out;
    fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    rc = 0;
out:
    close(lfd);
    if (rc < 0) {
        if (fds[0] >= 0)
            close(fds[0]);
        if (fds[1] >= 0)
            close(fds[1]);
        fds[0] = fds[1] = -1;
    }
    return rc;
}

static void close_pair(int fds[2])
{
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    fds[0] = fds[1] = -1;
}

static int all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static const char *kind_name(uint32_t k)
{
    return k == ZM_IOK_READY ? "READY"
           : k == ZM_IOK_RECV ? "RECV"
           : k == ZM_IOK_WAKE ? "WAKE"
                              : "?";
}

/* ================================================================== */
/* Tests                                                              */
/* ================================================================== */

static int test_open_close(char *why)
{
    zm_backend *b = NULL, *best = NULL;
    char reason[256];
    int ret = T_OK, rc;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(strcmp(zm_backend_name(b), g_name) == 0, "name %s",
          zm_backend_name(b));
    reason[0] = '\0';
    rc = zm_backend_open(&best, NULL, reason, sizeof(reason));
    CHECK(rc == 0, "open(NULL): %d %s", rc, reason);
    CHECK(reason[0] != '\0', "open(NULL) gave no reason");
    if (zm_backend_probe("io_uring", NULL, 0) == 0)
        CHECK(strcmp(zm_backend_name(best), "io_uring") == 0,
              "open(NULL) chose %s although io_uring probes ok (%s)",
              zm_backend_name(best), reason);
    else
        CHECK(strcmp(zm_backend_name(best), "epoll") == 0 &&
                  strstr(reason, "epoll") != NULL,
              "fallback: %s (%s)", zm_backend_name(best), reason);
    zm_backend_close(NULL);
out:
    zm_backend_close(b);
    zm_backend_close(best);
    return ret;
}

/* In a child: a seccomp filter makes io_uring_setup fail with `err`; the
 * io_uring probe must say so and open(NULL) must fall back to epoll.
 * Exit 0 ok, 1 failure (printed), 2 seccomp unavailable. */
static void seccomp_child(int err)
{
    struct sock_filter filt[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K,
                 SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filt) / sizeof(filt[0]),
                              .filter = filt};
    const char *want = err == EPERM ? "EPERM" : "ENOSYS";
    char reason[256];
    zm_backend *b = NULL;
    int rc;

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        _exit(2);
    rc = zm_backend_probe("io_uring", reason, sizeof(reason));
    if (rc != -err || strstr(reason, want) == NULL) {
        fprintf(stderr, "  probe(io_uring) under seccomp %s: %d '%s'\n", want,
                rc, reason);
        _exit(1);
    }
    rc = zm_backend_open(&b, "io_uring", reason, sizeof(reason));
    if (rc != -err || b != NULL) {
        fprintf(stderr, "  open(io_uring) under seccomp: %d (no fallback "
                        "expected)\n", rc);
        _exit(1);
    }
    rc = zm_backend_open(&b, NULL, reason, sizeof(reason));
    if (rc != 0 || strcmp(zm_backend_name(b), "epoll") != 0 ||
        strstr(reason, want) == NULL || strstr(reason, "epoll") == NULL) {
        fprintf(stderr, "  open(NULL) under seccomp: %d %s '%s'\n", rc,
                b ? zm_backend_name(b) : "-", reason);
        _exit(1);
    }
    zm_backend_close(b);
    _exit(0);
}

static int test_probe_reasons(char *why)
{
    char reason[256];
    int ret = T_OK, rc, status, errs[2] = {EPERM, ENOSYS};
    pid_t pid;

    reason[0] = '\0';
    rc = zm_backend_probe(g_name, reason, sizeof(reason));
    CHECK(rc == 0 && strstr(reason, g_name) != NULL, "probe: %d '%s'", rc,
          reason);
    rc = zm_backend_probe("epoll", reason, sizeof(reason));
    CHECK(rc == 0, "probe(epoll): %d '%s'", rc, reason);
    rc = zm_backend_probe(NULL, reason, sizeof(reason));
    CHECK(rc == 0, "probe(NULL): %d '%s'", rc, reason);
    rc = zm_backend_probe("kqueue", reason, sizeof(reason));
    CHECK(rc == -EINVAL && strstr(reason, "unknown backend") != NULL,
          "probe(kqueue): %d '%s'", rc, reason);
    CHECK(zm_backend_probe("epoll", NULL, 0) == 0, "probe without reason");
    for (int i = 0; i < 2; i++) {
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        CHECK(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0)
            seccomp_child(errs[i]);
        CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
        if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
            SKIP("seccomp unavailable (other checks passed)");
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "seccomp %s child failed (status 0x%x)", strerror(errs[i]),
              status);
    }
out:
    return ret;
}

/* watch(IN) on a pair: nothing before data, one READY after. */
static int watch_in_pair(char *why, int tcp)
{
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int fds[2] = {-1, -1}, ret = T_OK, n;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK((tcp ? tcp_pair(fds) : sp_pair(fds)) == 0, "pair: %s",
          strerror(errno));
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN, 11) == 0, "watch");
    n = bwait(b, ev, 4, MS(30));
    CHECK(n == 0, "wait before data: %d", n);
    CHECK(write(fds[1], "x", 1) == 1, "write");
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1, "wait: %d", n);
    CHECK(ev[0].kind == ZM_IOK_READY && ev[0].token == 11 &&
              (ev[0].res & ZM_IO_IN),
          "event %s token %llu res %d", kind_name(ev[0].kind),
          (unsigned long long)ev[0].token, ev[0].res);
    CHECK(zm_backend_unwatch(b, fds[0], NULL) == 0, "unwatch");
out:
    zm_backend_close(b);
    close_pair(fds);
    return ret;
}

static int test_watch_in_socketpair(char *why) { return watch_in_pair(why, 0); }
static int test_watch_in_tcp(char *why) { return watch_in_pair(why, 1); }

static int test_watch_out(char *why)
{
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int fds[2] = {-1, -1}, ret = T_OK, n;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(tcp_pair(fds) == 0, "pair");
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_OUT, 7) == 0, "watch");
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].kind == ZM_IOK_READY && ev[0].token == 7 &&
              ev[0].res == ZM_IO_OUT,
          "n %d kind %s res %d", n, kind_name(ev[0].kind), ev[0].res);
out:
    zm_backend_close(b);
    close_pair(fds);
    return ret;
}

/* ERR and HUP are reported without being asked for, the same on both. */
static int test_watch_hup(char *why)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int fds[2] = {-1, -1}, ret = T_OK, n;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(sp_pair(fds) == 0, "pair");
    close(fds[1]);
    fds[1] = -1;
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN, 1) == 0, "watch");
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].res == (ZM_IO_IN | ZM_IO_HUP),
          "socketpair peer closed: n %d res %d", n, ev[0].res);
    close_pair(fds);
    CHECK(tcp_pair(fds) == 0, "pair");
    CHECK(setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0,
          "SO_LINGER");
    close(fds[1]); /* RST */
    fds[1] = -1;
    sleep_ms(10);
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_OUT, 2) == 0, "watch");
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && (ev[0].res & ZM_IO_ERR) && (ev[0].res & ZM_IO_HUP),
          "tcp reset: n %d res %d", n, ev[0].res);
out:
    zm_backend_close(b);
    close_pair(fds);
    return ret;
}

static int test_oneshot(char *why)
{
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int fds[2] = {-1, -1}, ret = T_OK, n;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(sp_pair(fds) == 0, "pair");
    CHECK(write(fds[1], "x", 1) == 1, "write");
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN | ZM_IO_OUT, 1) == 0, "watch");
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].token == 1 && ev[0].res == (ZM_IO_IN | ZM_IO_OUT),
          "first: n %d res %d", n, ev[0].res);
    n = bwait(b, ev, 4, MS(50));
    CHECK(n == 0, "second event without re-watch: n %d", n);
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN, 2) == 0, "re-watch");
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].token == 2 && ev[0].res == ZM_IO_IN,
          "after re-watch: n %d token %llu res %d", n,
          (unsigned long long)ev[0].token, ev[0].res);
    n = bwait(b, ev, 4, MS(30));
    CHECK(n == 0, "third: n %d", n);
out:
    zm_backend_close(b);
    close_pair(fds);
    return ret;
}

static int test_rewatch_replaces(char *why)
{
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int fds[2] = {-1, -1}, fds2[2] = {-1, -1}, ret = T_OK, n;
    char c;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(sp_pair(fds) == 0 && sp_pair(fds2) == 0, "pair");
    /* same events, new token */
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN, 1) == 0, "watch 1");
    CHECK(bwait(b, ev, 4, MS(10)) == 0, "idle");
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN, 2) == 0, "watch 2");
    CHECK(write(fds[1], "x", 1) == 1, "write");
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].token == 2, "n %d token %llu", n,
          (unsigned long long)ev[0].token);
    CHECK(bwait(b, ev, 4, MS(30)) == 0, "duplicate");
    CHECK(read(fds[0], &c, 1) == 1, "drain");
    /* different events: OUT (ready at once) replaced by IN (not ready) */
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_OUT, 3) == 0, "watch 3");
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN, 4) == 0, "watch 4");
    n = bwait(b, ev, 4, MS(50));
    CHECK(n == 0, "replaced OUT interest fired: n %d token %llu res %d", n,
          (unsigned long long)ev[0].token, ev[0].res);
    CHECK(write(fds[1], "y", 1) == 1, "write");
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].token == 4 && ev[0].res == ZM_IO_IN,
          "n %d token %llu res %d", n, (unsigned long long)ev[0].token,
          ev[0].res);
    /* an undelivered READY is replaced, not reported twice */
    CHECK(write(fds2[1], "z", 1) == 1, "write");
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN, 5) == 0, "watch 5");
    CHECK(zm_backend_watch(b, fds2[0], ZM_IO_IN, 6) == 0, "watch 6");
    n = bwait(b, ev, 1, MS(2000));
    CHECK(n == 1, "n %d", n);
    CHECK(zm_backend_watch(b, ev[0].token == 5 ? fds2[0] : fds[0], ZM_IO_IN,
                           ev[0].token == 5 ? 60 : 50) == 0,
          "re-watch");
    n = bwait(b, ev + 1, 3, MS(2000));
    CHECK(n == 1 && ev[1].token == (ev[0].token == 5 ? 60u : 50u),
          "after replace: n %d token %llu", n, (unsigned long long)ev[1].token);
    CHECK(bwait(b, ev, 4, MS(30)) == 0, "duplicate");
out:
    zm_backend_close(b);
    close_pair(fds);
    close_pair(fds2);
    return ret;
}

static int test_recv_data(char *why)
{
    unsigned char buf[64], other[8];
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int fds[2] = {-1, -1}, ret = T_OK, n, rc;

    memset(buf, 0xAA, sizeof(buf));
    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(sp_pair(fds) == 0, "pair");
    CHECK(zm_backend_recv(b, fds[0], buf, sizeof(buf), 21) == 0, "recv");
    rc = zm_backend_recv(b, fds[0], other, sizeof(other), 22);
    CHECK(rc == -EBUSY, "second recv in flight: %d", rc);
    CHECK(bwait(b, ev, 4, MS(30)) == 0, "idle");
    CHECK(all_bytes(buf, sizeof(buf), 0xAA), "buffer written early");
    CHECK(write(fds[1], "hello", 5) == 5, "write");
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].kind == ZM_IOK_RECV && ev[0].token == 21 &&
              ev[0].res == 5,
          "n %d kind %s res %d", n, kind_name(ev[0].kind), ev[0].res);
    CHECK(memcmp(buf, "hello", 5) == 0 && all_bytes(buf + 5, 59, 0xAA),
          "buffer contents");
    /* done: a new recv is allowed, and there is no second event */
    CHECK(bwait(b, ev, 4, MS(30)) == 0, "duplicate");
    CHECK(zm_backend_recv(b, fds[0], buf, sizeof(buf), 23) == 0, "recv again");
    CHECK(write(fds[1], "ab", 2) == 2, "write");
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].token == 23 && ev[0].res == 2, "n %d res %d", n,
          ev[0].res);
out:
    zm_backend_close(b);
    close_pair(fds);
    return ret;
}

static int test_recv_eof(char *why)
{
    unsigned char buf[16];
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int fds[2] = {-1, -1}, ret = T_OK, n;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(tcp_pair(fds) == 0, "pair");
    CHECK(zm_backend_recv(b, fds[0], buf, sizeof(buf), 9) == 0, "recv");
    CHECK(bwait(b, ev, 4, MS(20)) == 0, "idle");
    close(fds[1]);
    fds[1] = -1;
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].kind == ZM_IOK_RECV && ev[0].res == 0,
          "n %d kind %s res %d", n, kind_name(ev[0].kind), ev[0].res);
out:
    zm_backend_close(b);
    close_pair(fds);
    return ret;
}

static int test_recv_reset(char *why)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    unsigned char buf[16];
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int fds[2] = {-1, -1}, ret = T_OK, n;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(tcp_pair(fds) == 0, "pair");
    CHECK(zm_backend_recv(b, fds[0], buf, sizeof(buf), 9) == 0, "recv");
    CHECK(bwait(b, ev, 4, MS(20)) == 0, "idle");
    CHECK(setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0,
          "SO_LINGER");
    close(fds[1]); /* linger 0: RST */
    fds[1] = -1;
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].kind == ZM_IOK_RECV && ev[0].res == -ECONNRESET,
          "n %d kind %s res %d (%s)", n, kind_name(ev[0].kind), ev[0].res,
          ev[0].res < 0 ? strerror(-ev[0].res) : "-");
out:
    zm_backend_close(b);
    close_pair(fds);
    return ret;
}

static int test_timeout(char *why)
{
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int fds[2] = {-1, -1}, ret = T_OK, n;
    int64_t t0, dt;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(sp_pair(fds) == 0, "pair");
    /* round 0: nothing to submit; round 1: a watch to submit in the same
     * io_uring_enter as the wait */
    for (int round = 0; round < 2; round++) {
        if (round == 1)
            CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN, 1) == 0, "watch");
        t0 = now_ns();
        n = bwait(b, ev, 4, MS(20));
        dt = now_ns() - t0;
        CHECK(n == 0, "round %d: n %d", round, n);
        CHECK(dt >= MS(20) && dt < MS(200), "round %d: waited %.3f ms", round,
              (double)dt / 1e6);
    }
out:
    zm_backend_close(b);
    close_pair(fds);
    return ret;
}

static int test_poll(char *why)
{
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int fds[2] = {-1, -1}, ret = T_OK, n;
    int64_t t0;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(sp_pair(fds) == 0, "pair");
    t0 = now_ns();
    n = bwait(b, ev, 4, 0);
    CHECK(n == 0 && now_ns() - t0 < MS(100), "idle poll: n %d", n);
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN, 1) == 0, "watch");
    CHECK(bwait(b, ev, 4, 0) == 0, "poll, not ready");
    CHECK(write(fds[1], "x", 1) == 1, "write");
    sleep_ms(5);
    n = bwait(b, ev, 4, 0);
    CHECK(n == 1 && ev[0].token == 1, "poll, ready: n %d", n);
    /* ready before the watch: the first poll reports it */
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN, 2) == 0, "watch");
    n = bwait(b, ev, 4, 0);
    CHECK(n == 1 && ev[0].token == 2, "poll right after watch: n %d", n);
out:
    zm_backend_close(b);
    close_pair(fds);
    return ret;
}

static void *waker(void *arg)
{
    sleep_ms(50);
    zm_backend_wake(arg);
    return NULL;
}

static int test_wake_thread(char *why)
{
    zm_backend *b = NULL;
    zm_io_event ev[4];
    pthread_t th;
    int ret = T_OK, n, started = 0;
    int64_t t0, dt;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(pthread_create(&th, NULL, waker, b) == 0, "pthread_create");
    started = 1;
    t0 = now_ns();
    n = bwait(b, ev, 4, -1);
    dt = now_ns() - t0;
    CHECK(n == 1 && ev[0].kind == ZM_IOK_WAKE && ev[0].token == 0,
          "n %d kind %s", n, kind_name(ev[0].kind));
    CHECK(dt >= MS(30), "woke after %.3f ms, before the wake", (double)dt / 1e6);
    CHECK(bwait(b, ev, 4, MS(20)) == 0, "second wake event");
    /* and again: the wake-up is re-armed */
    pthread_join(th, NULL);
    started = 0;
    CHECK(pthread_create(&th, NULL, waker, b) == 0, "pthread_create");
    started = 1;
    n = bwait(b, ev, 4, MS(5000));
    CHECK(n == 1 && ev[0].kind == ZM_IOK_WAKE, "second round: n %d", n);
out:
    if (started)
        pthread_join(th, NULL);
    zm_backend_close(b);
    return ret;
}

static int test_wake_before(char *why)
{
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int ret = T_OK, n;
    int64_t t0;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(zm_backend_wake(b) == 0 && zm_backend_wake(b) == 0, "wake");
    t0 = now_ns();
    n = bwait(b, ev, 4, -1);
    CHECK(n == 1 && ev[0].kind == ZM_IOK_WAKE, "n %d kind %s", n,
          kind_name(ev[0].kind));
    CHECK(now_ns() - t0 < MS(500), "slow");
    CHECK(bwait(b, ev, 4, MS(30)) == 0, "wakes did not coalesce");
    CHECK(zm_backend_wake(b) == 0, "wake");
    n = bwait(b, ev, 4, 0);
    CHECK(n == 1 && ev[0].kind == ZM_IOK_WAKE, "poll after wake: n %d", n);
out:
    zm_backend_close(b);
    return ret;
}

/* unwatch cancels a pending recv: its buffer stays untouched afterwards and
 * the bytes are still in the socket. mode 0: submitted by a wait first;
 * 1: still queued; 2: with a readiness watch on the same fd. */
static int test_unwatch_recv(char *why)
{
    unsigned char buf[64], got[16];
    zm_backend *b = NULL;
    zm_io_event ev[4], done;
    int fds[2] = {-1, -1}, ret = T_OK, n, rc;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    for (int mode = 0; mode < 3; mode++) {
        CHECK(sp_pair(fds) == 0, "pair");
        memset(buf, 0xAA, sizeof(buf));
        if (mode == 2)
            CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN, 2) == 0, "watch");
        CHECK(zm_backend_recv(b, fds[0], buf, sizeof(buf), 1) == 0, "recv");
        if (mode != 1)
            CHECK(bwait(b, ev, 4, MS(20)) == 0, "idle");
        rc = zm_backend_unwatch(b, fds[0], &done);
        CHECK(rc == 0, "mode %d: unwatch %d", mode, rc);
        CHECK(write(fds[1], "data", 4) == 4, "write");
        n = bwait(b, ev, 4, MS(30));
        CHECK(n == 0, "mode %d: event after unwatch: %s res %d", mode,
              kind_name(ev[0].kind), ev[0].res);
        sleep_ms(10);
        CHECK(all_bytes(buf, sizeof(buf), 0xAA),
              "mode %d: buffer written after unwatch", mode);
        n = (int)recv(fds[0], got, sizeof(got), MSG_DONTWAIT);
        CHECK(n == 4 && memcmp(got, "data", 4) == 0,
              "mode %d: plain recv got %d", mode, n);
        /* the fd can be used again */
        CHECK(zm_backend_recv(b, fds[0], buf, sizeof(buf), 3) == 0, "recv");
        CHECK(write(fds[1], "more", 4) == 4, "write");
        n = bwait(b, ev, 4, MS(2000));
        CHECK(n == 1 && ev[0].token == 3 && ev[0].res == 4, "reuse: n %d", n);
        CHECK(zm_backend_unwatch(b, fds[0], NULL) == 0, "unwatch");
        close_pair(fds);
    }
out:
    zm_backend_close(b);
    close_pair(fds);
    return ret;
}

/* A receive that completes before the cancel: no byte may be lost. */
static int test_unwatch_race(char *why)
{
    unsigned char buf[2][32], got[32];
    zm_backend *b = NULL;
    zm_io_event ev[4], done;
    int fds[2][2] = {{-1, -1}, {-1, -1}}, ret = T_OK, n, rc, other;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    /* data already there when the recv is queued, unwatch at once */
    CHECK(sp_pair(fds[0]) == 0, "pair");
    memset(buf[0], 0xAA, sizeof(buf[0]));
    CHECK(write(fds[0][1], "abc", 3) == 3, "write");
    CHECK(zm_backend_recv(b, fds[0][0], buf[0], sizeof(buf[0]), 1) == 0, "recv");
    memset(&done, 0, sizeof(done));
    rc = zm_backend_unwatch(b, fds[0][0], &done);
    if (rc == 1) {
        CHECK(done.kind == ZM_IOK_RECV && done.token == 1 && done.res == 3 &&
                  memcmp(buf[0], "abc", 3) == 0,
              "completed recv: kind %s res %d", kind_name(done.kind), done.res);
    } else {
        CHECK(rc == 0, "unwatch %d", rc);
        CHECK(all_bytes(buf[0], sizeof(buf[0]), 0xAA), "buffer written");
        n = (int)recv(fds[0][0], got, sizeof(got), MSG_DONTWAIT);
        CHECK(n == 3, "bytes lost: plain recv %d", n);
    }
    CHECK(bwait(b, ev, 4, MS(20)) == 0, "event after unwatch");
    close_pair(fds[0]);

    /* two receives complete, max=1 returns one; unwatch the other */
    CHECK(sp_pair(fds[0]) == 0 && sp_pair(fds[1]) == 0, "pair");
    for (int i = 0; i < 2; i++) {
        memset(buf[i], 0xAA, sizeof(buf[i]));
        CHECK(zm_backend_recv(b, fds[i][0], buf[i], sizeof(buf[i]),
                              (uint64_t)i) == 0,
              "recv");
    }
    CHECK(bwait(b, ev, 4, MS(20)) == 0, "idle");
    CHECK(write(fds[0][1], "0123", 4) == 4 && write(fds[1][1], "4567", 4) == 4,
          "write");
    sleep_ms(10);
    n = bwait(b, ev, 1, MS(2000));
    CHECK(n == 1 && ev[0].kind == ZM_IOK_RECV && ev[0].res == 4, "n %d", n);
    other = ev[0].token == 0 ? 1 : 0;
    memset(&done, 0, sizeof(done));
    rc = zm_backend_unwatch(b, fds[other][0], &done);
    if (rc == 1) {
        CHECK(done.token == (uint64_t)other && done.res == 4 &&
                  memcmp(buf[other], other ? "4567" : "0123", 4) == 0,
              "pending recv: token %llu res %d",
              (unsigned long long)done.token, done.res);
    } else {
        CHECK(rc == 0, "unwatch %d", rc);
        CHECK(all_bytes(buf[other], sizeof(buf[other]), 0xAA), "buffer written");
        n = (int)recv(fds[other][0], got, sizeof(got), MSG_DONTWAIT);
        CHECK(n == 4, "bytes lost: plain recv %d", n);
    }
    CHECK(bwait(b, ev, 4, MS(20)) == 0, "event after unwatch");
out:
    zm_backend_close(b);
    close_pair(fds[0]);
    close_pair(fds[1]);
    return ret;
}

static int test_close_pending(char *why)
{
    unsigned char buf[64], got[8];
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int fds[2] = {-1, -1}, fds2[2] = {-1, -1}, ret = T_OK, n;

    memset(buf, 0xAA, sizeof(buf));
    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(sp_pair(fds) == 0 && sp_pair(fds2) == 0, "pair");
    CHECK(zm_backend_recv(b, fds[0], buf, sizeof(buf), 1) == 0, "recv");
    CHECK(zm_backend_watch(b, fds2[0], ZM_IO_IN, 2) == 0, "watch");
    CHECK(bwait(b, ev, 4, MS(20)) == 0, "idle");
    zm_backend_close(b);
    b = NULL;
    CHECK(write(fds[1], "x", 1) == 1, "write");
    sleep_ms(20);
    CHECK(all_bytes(buf, sizeof(buf), 0xAA), "buffer written after close");
    n = (int)recv(fds[0], got, sizeof(got), MSG_DONTWAIT);
    CHECK(n == 1, "plain recv %d", n);
out:
    zm_backend_close(b);
    close_pair(fds);
    close_pair(fds2);
    return ret;
}

#define MANY 200

/* 200 fds ready at once (even: watch, odd: recv), at most 16 per wait, on a
 * ring whose CQ (32) is far smaller: CQ overflow, events kept across
 * waits, none lost, none twice. */
static int test_many_fds(char *why)
{
    static int fds[MANY][2];
    static unsigned char bufs[MANY][8];
    static int seen[MANY];
    zm_backend *b = NULL;
    zm_io_event ev[16];
    int ret = T_OK, n, total = 0, npairs = 0, waits = 0;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 2 * MANY + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    memset(seen, 0, sizeof(seen));
    CHECK(open_b(&b, 8, why) == 0, "%s", why);
    for (npairs = 0; npairs < MANY; npairs++) {
        CHECK(sp_pair(fds[npairs]) == 0, "pair %d: %s", npairs,
              strerror(errno));
        CHECK(write(fds[npairs][1], "m", 1) == 1, "write");
    }
    for (int i = 0; i < MANY; i++) {
        int rc = (i & 1) ? zm_backend_recv(b, fds[i][0], bufs[i],
                                           sizeof(bufs[i]), 1000u + (unsigned)i)
                         : zm_backend_watch(b, fds[i][0], ZM_IO_IN,
                                            1000u + (unsigned)i);
        CHECK(rc == 0, "request %d: %d", i, rc);
    }
    while (total < MANY) {
        n = bwait(b, ev, 16, MS(2000));
        CHECK(n > 0 && n <= 16, "wait %d after %d events: %d", waits, total, n);
        waits++;
        for (int j = 0; j < n; j++) {
            int i = (int)ev[j].token - 1000;

            CHECK(i >= 0 && i < MANY, "token %llu",
                  (unsigned long long)ev[j].token);
            CHECK(!seen[i], "fd %d reported twice", i);
            seen[i] = 1;
            if (i & 1)
                CHECK(ev[j].kind == ZM_IOK_RECV && ev[j].res == 1 &&
                          bufs[i][0] == 'm',
                      "recv %d: %s res %d", i, kind_name(ev[j].kind), ev[j].res);
            else
                CHECK(ev[j].kind == ZM_IOK_READY && ev[j].res == ZM_IO_IN,
                      "ready %d: %s res %d", i, kind_name(ev[j].kind),
                      ev[j].res);
        }
        total += n;
    }
    CHECK(waits >= MANY / 16, "only %d waits", waits);
    n = bwait(b, ev, 16, MS(30));
    CHECK(n == 0, "extra events: %d", n);
    for (int i = 0; i < MANY; i++)
        CHECK(zm_backend_unwatch(b, fds[i][0], NULL) == 0, "unwatch %d", i);
out:
    zm_backend_close(b);
    for (int i = 0; i < npairs; i++)
        close_pair(fds[i]);
    return ret;
}

/* zm_watchset and zm_backend_unwatch_many: many fds watched (some ready,
 * some with a receive), a nested set above an outer one; after the nested
 * unwatch only the outer set reports, and after the outer one nothing
 * does, and no receive buffer is written anymore. */
static int test_unwatch_many(char *why)
{
    enum { OUTER = 40, NESTED = 300 };
    static int fds[OUTER + NESTED][2];
    static unsigned char bufs[OUTER + NESTED][4];
    zm_watchset ws = {NULL, 0, 0};
    zm_backend *b = NULL;
    zm_io_event ev[8];
    int ret = T_OK, n, npairs = 0, base, got = 0;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        rl.rlim_cur < 2 * (OUTER + NESTED) + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    CHECK(open_b(&b, 8, why) == 0, "%s", why);
    for (npairs = 0; npairs < OUTER + NESTED; npairs++)
        CHECK(sp_pair(fds[npairs]) == 0, "pair %d: %s", npairs,
              strerror(errno));
    for (int i = 0; i < OUTER; i++)
        CHECK(zm_watchset_add(&ws, b, fds[i][0], ZM_IO_IN) == 0, "outer %d", i);
    CHECK(bwait(b, ev, 8, 0) == 0, "outer idle");
    base = ws.n;
    for (int i = OUTER; i < OUTER + NESTED; i++) {
        if (i % 3 == 0) /* ready before the unwatch: CQEs or queued events */
            CHECK(write(fds[i][1], "r", 1) == 1, "write");
        CHECK(zm_watchset_add(&ws, b, fds[i][0], ZM_IO_IN) == 0, "nested %d", i);
        if (i % 7 == 0) /* a receive too: the unwatch cancels by fd */
            CHECK(zm_backend_recv(b, fds[i][0], bufs[i], sizeof(bufs[i]), 1) == 0,
                  "recv %d", i);
    }
    CHECK(ws.n == OUTER + NESTED && ws.cap >= ws.n, "list %d/%d", ws.n, ws.cap);
    n = bwait(b, ev, 2, MS(100)); /* take a few; the rest stay pending */
    CHECK(n > 0, "nested ready: %d", n);
    zm_watchset_unwatch(&ws, b, base);
    CHECK(ws.n == base, "truncated to %d, not %d", ws.n, base);
    memset(bufs, 0, sizeof(bufs));
    for (int i = OUTER; i < OUTER + NESTED; i++)
        CHECK(write(fds[i][1], "z", 1) == 1, "write after");
    n = bwait(b, ev, 8, MS(50));
    CHECK(n == 0, "nested event after unwatch: n %d token %llu kind %s", n,
          n > 0 ? (unsigned long long)ev[0].token : 0ull,
          n > 0 ? kind_name(ev[0].kind) : "-");
    /* The outer set is still watched. */
    CHECK(write(fds[OUTER - 1][1], "o", 1) == 1, "write outer");
    n = bwait(b, ev, 8, MS(2000));
    CHECK(n == 1 && ev[0].kind == ZM_IOK_READY &&
              ev[0].token == (uint64_t)fds[OUTER - 1][0],
          "outer: n %d", n);
    zm_watchset_unwatch(&ws, b, 0);
    for (int i = 0; i < OUTER; i++)
        CHECK(write(fds[i][1], "p", 1) == 1, "write outer after");
    n = bwait(b, ev, 8, MS(50));
    CHECK(n == 0, "outer event after unwatch: %d", n);
    for (int i = 0; i < OUTER + NESTED; i++)
        got |= bufs[i][0];
    CHECK(got == 0, "a receive buffer was written after the unwatch");
out:
    zm_watchset_free(&ws);
    zm_backend_close(b);
    for (int i = 0; i < npairs; i++)
        close_pair(fds[i]);
    return ret;
}

static volatile sig_atomic_t g_alarms;

static void on_alarm(int sig)
{
    (void)sig;
    g_alarms++;
}

static int test_eintr(char *why)
{
    struct itimerval it = {.it_interval = {0, 0}, .it_value = {0, 30000}};
    struct itimerval off = {.it_interval = {0, 0}, .it_value = {0, 0}};
    struct sigaction sa, old;
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int fds[2] = {-1, -1}, ret = T_OK, n, installed = 0;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(sp_pair(fds) == 0, "pair");
    for (int round = 0; round < 4; round++) {
        int restart = round & 1;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_alarm;
        sa.sa_flags = restart ? SA_RESTART : 0;
        sigemptyset(&sa.sa_mask);
        CHECK(sigaction(SIGALRM, &sa, installed ? NULL : &old) == 0,
              "sigaction");
        installed = 1;
        /* rounds 2, 3: a request to submit in the same enter */
        if (round >= 2)
            CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN, 5) == 0, "watch");
        g_alarms = 0;
        CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer");
        do /* a spurious EINTR comes before the alarm: wait again */
            n = zm_backend_wait(b, ev, 4, -1);
        while (n == -EINTR && g_alarms == 0 && ++g_spurious_eintr);
        CHECK(n == -EINTR && g_alarms == 1, "%s: wait %d, alarms %d",
              restart ? "SA_RESTART" : "no SA_RESTART", n, (int)g_alarms);
    }
    /* still consistent */
    CHECK(write(fds[1], "x", 1) == 1, "write");
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].token == 5, "after EINTR: n %d", n);
out:
    setitimer(ITIMER_REAL, &off, NULL);
    if (installed)
        sigaction(SIGALRM, &old, NULL);
    zm_backend_close(b);
    close_pair(fds);
    return ret;
}

static int test_fork(char *why)
{
    unsigned char buf[8];
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int fds[2] = {-1, -1}, ret = T_OK, n, status;
    pid_t pid;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(sp_pair(fds) == 0, "pair");
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN, 5) == 0, "watch");
    CHECK(bwait(b, ev, 4, MS(10)) == 0, "idle");
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        int bad = 0, rc;

        if ((rc = zm_backend_watch(b, fds[0], ZM_IO_IN, 6)) != -ECHILD)
            fprintf(stderr, "  child watch: %d\n", rc), bad = 1;
        if ((rc = zm_backend_recv(b, fds[0], buf, sizeof(buf), 7)) != -ECHILD)
            fprintf(stderr, "  child recv: %d\n", rc), bad = 1;
        if ((rc = zm_backend_wait(b, ev, 4, 0)) != -ECHILD)
            fprintf(stderr, "  child wait: %d\n", rc), bad = 1;
        if ((rc = zm_backend_unwatch(b, fds[0], NULL)) != -ECHILD)
            fprintf(stderr, "  child unwatch: %d\n", rc), bad = 1;
        if ((rc = zm_backend_wake(b)) != -ECHILD)
            fprintf(stderr, "  child wake: %d\n", rc), bad = 1;
        zm_backend_close(b); /* releases the child's copies only */
        /* a fresh backend works in the child */
        if ((rc = zm_backend_open(&b, g_name, NULL, 0)) != 0)
            fprintf(stderr, "  child open: %d\n", rc), bad = 1;
        else if ((rc = zm_backend_wake(b)) != 0 ||
                 (rc = bwait(b, ev, 4, MS(2000))) != 1)
            fprintf(stderr, "  child wake/wait: %d\n", rc), bad = 1;
        else
            zm_backend_close(b);
        _exit(bad);
    }
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x",
          status);
    /* the parent's backend is intact */
    CHECK(write(fds[1], "x", 1) == 1, "write");
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].token == 5 && ev[0].kind == ZM_IOK_READY,
          "parent after fork: n %d", n);
    CHECK(zm_backend_wake(b) == 0, "wake");
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].kind == ZM_IOK_WAKE, "parent wake: n %d", n);
out:
    zm_backend_close(b);
    close_pair(fds);
    return ret;
}

struct foreign_arg {
    zm_backend *b;
    int fd;
    int rc[5];
};

static void *foreign(void *p)
{
    struct foreign_arg *a = p;
    unsigned char buf[4];
    zm_io_event ev[2];

    a->rc[0] = zm_backend_watch(a->b, a->fd, ZM_IO_IN, 1);
    a->rc[1] = zm_backend_recv(a->b, a->fd, buf, sizeof(buf), 2);
    a->rc[2] = zm_backend_wait(a->b, ev, 2, 0);
    a->rc[3] = zm_backend_unwatch(a->b, a->fd, NULL);
    a->rc[4] = zm_backend_wake(a->b);
    return NULL;
}

static int test_thread_owner(char *why)
{
    struct foreign_arg a;
    zm_backend *b = NULL;
    zm_io_event ev[4];
    pthread_t th;
    int fds[2] = {-1, -1}, ret = T_OK, n;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(sp_pair(fds) == 0, "pair");
    CHECK(zm_backend_watch(b, fds[0], ZM_IO_IN, 9) == 0, "watch");
    a.b = b;
    a.fd = fds[0];
    CHECK(pthread_create(&th, NULL, foreign, &a) == 0, "pthread_create");
    pthread_join(th, NULL);
    for (int i = 0; i < 4; i++)
        CHECK(a.rc[i] == -EEXIST, "foreign call %d: %d", i, a.rc[i]);
    CHECK(a.rc[4] == 0, "foreign wake: %d", a.rc[4]);
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].kind == ZM_IOK_WAKE, "owner wait: n %d", n);
    CHECK(write(fds[1], "x", 1) == 1, "write");
    n = bwait(b, ev, 4, MS(2000));
    CHECK(n == 1 && ev[0].token == 9, "owner watch intact: n %d token %llu", n,
          (unsigned long long)ev[0].token);
out:
    zm_backend_close(b);
    close_pair(fds);
    return ret;
}

static int test_bad_args(char *why)
{
    unsigned char buf[4];
    zm_backend *b = NULL;
    zm_io_event ev[4];
    int fds[2] = {-1, -1}, ret = T_OK, rc, n, dead;

    CHECK(open_b(&b, 0, why) == 0, "%s", why);
    CHECK(sp_pair(fds) == 0, "pair");
    CHECK(zm_backend_watch(b, fds[0], 0, 1) == -EINVAL, "events 0");
    CHECK(zm_backend_watch(b, fds[0], 16, 1) == -EINVAL, "events 16");
    CHECK(zm_backend_watch(b, -1, ZM_IO_IN, 1) == -EBADF, "fd -1");
    CHECK(zm_backend_recv(b, fds[0], buf, 0, 1) == -EINVAL, "len 0");
    CHECK(zm_backend_recv(b, -1, buf, 4, 1) == -EBADF, "recv fd -1");
    CHECK(zm_backend_wait(b, ev, 0, 0) == -EINVAL, "max 0");
    CHECK(zm_backend_unwatch(b, fds[0], NULL) == 0, "unwatch unknown fd");
    CHECK(zm_backend_unwatch(b, 100000, NULL) == 0, "unwatch big fd");
    /* a closed fd: refused now (epoll) or reported as an event (io_uring) */
    dead = dup(fds[0]);
    close(dead);
    rc = zm_backend_watch(b, dead, ZM_IO_IN, 3);
    if (rc == 0) {
        n = bwait(b, ev, 4, MS(2000));
        CHECK(n == 1 && ev[0].token == 3 && ev[0].res == -EBADF,
              "closed fd: n %d res %d", n, ev[0].res);
    } else {
        CHECK(rc == -EBADF, "closed fd: %d", rc);
    }
    CHECK(zm_backend_unwatch(b, dead, NULL) == 0, "unwatch closed fd");
out:
    zm_backend_close(b);
    close_pair(fds);
    return ret;
}

/* ================================================================== */
/* Main                                                               */
/* ================================================================== */

static const struct {
    const char *name;
    int (*fn)(char *why);
} tests[] = {
    {"open_close", test_open_close},
    {"probe_reasons", test_probe_reasons},
    {"watch_in_socketpair", test_watch_in_socketpair},
    {"watch_in_tcp", test_watch_in_tcp},
    {"watch_out", test_watch_out},
    {"watch_hup", test_watch_hup},
    {"oneshot", test_oneshot},
    {"rewatch_replaces", test_rewatch_replaces},
    {"recv_data", test_recv_data},
    {"recv_eof", test_recv_eof},
    {"recv_reset", test_recv_reset},
    {"timeout", test_timeout},
    {"poll", test_poll},
    {"wake_thread", test_wake_thread},
    {"wake_before", test_wake_before},
    {"unwatch_recv", test_unwatch_recv},
    {"unwatch_race", test_unwatch_race},
    {"close_pending", test_close_pending},
    {"many_fds", test_many_fds},
    {"unwatch_many", test_unwatch_many},
    {"eintr", test_eintr},
    {"fork", test_fork},
    {"thread_owner", test_thread_owner},
    {"bad_args", test_bad_args},
};

int main(int argc, char **argv)
{
    char reason[256], why[WHY_LEN];
    int failed = 0, rc, ran = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2 || (strcmp(argv[1], "io_uring") && strcmp(argv[1], "epoll"))) {
        fprintf(stderr, "usage: %s io_uring|epoll [test]\n", argv[0]);
        return 1;
    }
    g_name = argv[1];
    signal(SIGPIPE, SIG_IGN);
    rc = zm_backend_probe(g_name, reason, sizeof(reason));
    if (rc < 0) {
        printf("skip all: %s\n", reason);
        return T_EXIT_SKIP;
    }
    printf("# %s\n", reason);
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        if (argc > 2 && strcmp(argv[2], tests[i].name) != 0)
            continue;
        ran++;
        why[0] = '\0';
        rc = tests[i].fn(why);
        if (rc == T_OK)
            printf("ok %s\n", tests[i].name);
        else if (rc == T_SKIP)
            printf("skip %s: %s\n", tests[i].name, why);
        else {
            printf("FAIL %s: %s\n", tests[i].name, why);
            failed++;
        }
    }
    if (g_spurious_eintr)
        printf("# %d spurious EINTR retried\n", g_spurious_eintr);
    if (ran == 0) {
        fprintf(stderr, "no test named %s\n", argv[2]);
        return 1;
    }
    return failed ? 1 : 0;
}
