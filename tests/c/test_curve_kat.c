/*
 * test_curve_kat.c - a known-answer test of CURVE (src/mech_curve.c)
 * against bytes libzmq 4.3.5 produced (tests/fixtures/curve_kat.txt,
 * recorded by tests/fixtures/record_curve_kat.py; replayed by
 * tests/test_curve_kat.py).
 *
 * Randomness is fixed: tests/c/det_sodium.c stands in for src/sodium.c
 * (libsodium's primitives, a seeded stream for key pairs, cookie keys and
 * long nonces), so zmtp's side of a handshake is a function of the seed,
 * the keys and what the peer sent.  libzmq's ephemeral keys and cookie
 * are random, so its bytes are recorded once and replayed.
 *
 *   test_curve_kat replay FIXTURE
 *       each case (zmtp as client, zmtp as server): a mechanism started
 *       with the case's keys and seed is fed libzmq's recorded bytes (its
 *       greeting, commands and MESSAGEs) and must accept them, open
 *       libzmq's MESSAGE boxes to the recorded plaintexts, and produce
 *       exactly the bytes zmtp sent in the recording (greeting, commands,
 *       its own MESSAGEs of the recorded plaintexts).  Then every byte of
 *       every frame body libzmq sent is flipped in turn: each must make
 *       the replay fail.  Prints "ok NAME" per check, "FAIL ..." per
 *       failure; exit 0 or 1.
 *   test_curve_kat peer client|server PORT SEED OUR_PUB OUR_SEC SERVER_PUB
 *       the recording side: the same session over TCP (client: connects
 *       to 127.0.0.1:PORT; server: listens on PORT, 0 for any, and prints
 *       "listening PORT"), keys in hex, the messages of KAT_ZMTP_MSGS sent
 *       once READY, those of KAT_LIBZMQ_MSGS expected; exit 0 when all
 *       went as expected.
 *
 * build: cc -std=c11 -D_GNU_SOURCE -Isrc -Itests/c tests/c/test_curve_kat.c
 *        tests/c/det_sodium.c src/mechanism.c src/mech_null.c src/mech_plain.c
 *        src/mech_curve.c src/codec.c src/msg.c src/arena.c src/counters.c -ldl
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "mechanism.h"
#include "det_sodium.h"

/* The plaintexts of the recording (record_curve_kat.py sends the same):
 * (bytes, MORE).  zmtp's go once it is READY, libzmq's are expected. */
typedef struct kat_msg {
    const char *data;
    size_t len;
    int more;
} kat_msg;

#define MAX_MSGS 16

/* One direction's messages, as the fixture lists them. */
typedef struct msg_list {
    unsigned char *data[MAX_MSGS];
    size_t len[MAX_MSGS];
    int more[MAX_MSGS];
    size_t n;
} msg_list;

/* One case of the fixture. */
typedef struct kat_case {
    char name[16];          /* "client" or "server": zmtp's role */
    uint64_t seed;
    unsigned char pub[32], sec[32], server[32];
    unsigned char *zmtp;    /* every byte zmtp sent */
    size_t zmtp_len;
    unsigned char *libzmq;  /* every byte libzmq sent */
    size_t libzmq_len;
    msg_list from_zmtp, from_libzmq;
} kat_case;

/* A session: the mechanism, the decoder of the peer's bytes, what we
 * sent, and how far the messages got. */
typedef struct session {
    zm_mech m;
    zm_decoder dec;
    zm_wbuf out;
    const msg_list *send;   /* ours, sent once READY */
    const msg_list *expect; /* the peer's, in order */
    size_t got;             /* of expect, received */
    int sent;
    int failed;
    char why[160];
} session;

static int fail(session *s, const char *why)
{
    if (!s->failed)
        snprintf(s->why, sizeof(s->why), "%s", why);
    s->failed = 1;
    return -1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Hex into a fresh buffer (*out, *n): 0, or -1 when malformed. */
static int unhex(const char *h, unsigned char **out, size_t *n)
{
    size_t len = strlen(h);
    unsigned char *b;

    while (len > 0 && (h[len - 1] == '\n' || h[len - 1] == '\r' || h[len - 1] == ' '))
        len--;
    if (len % 2 != 0)
        return -1;
    b = malloc(len / 2 + 1);
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hexval(h[2 * i]), lo = hexval(h[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return -1;
        }
        b[i] = (unsigned char)(hi << 4 | lo);
    }
    *out = b;
    *n = len / 2;
    return 0;
}

static int unhex32(const char *h, unsigned char out[32])
{
    unsigned char *b;
    size_t n;

    if (unhex(h, &b, &n) < 0)
        return -1;
    if (n != 32) {
        free(b);
        return -1;
    }
    memcpy(out, b, 32);
    free(b);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The session, shared by the replay and the recording peer           */
/* ------------------------------------------------------------------ */

static int session_start(session *s, int as_server, uint64_t seed,
                         const unsigned char pub[32],
                         const unsigned char sec[32],
                         const unsigned char server[32],
                         const msg_list *send, const msg_list *expect)
{
    zm_mech_config cfg;
    zm_decoder_config dc;

    memset(s, 0, sizeof(*s));
    memset(&cfg, 0, sizeof(cfg));
    cfg.socktype = "DEALER";
    cfg.as_server = as_server;
    memcpy(cfg.curve_public, pub, 32);
    memcpy(cfg.curve_secret, sec, 32);
    memcpy(cfg.curve_server, server, 32);
    s->send = send;
    s->expect = expect;
    zm_wbuf_init(&s->out);
    zm_decoder_config_default(&dc);
    dc.opaque_ready = 1; /* CURVE's READY is a box */
    if (zm_decoder_init(&s->dec, &dc) < 0)
        return fail(s, "decoder init");
    det_sodium_seed(seed);
    if (zm_mech_start(&s->m, &zm_mech_curve, &cfg, &s->out) < 0)
        return fail(s, "start failed");
    return 0;
}

static void session_end(session *s)
{
    zm_mech_end(&s->m);
    zm_decoder_free(&s->dec);
    zm_wbuf_free(&s->out);
}

/* READY: our messages, sealed, after the handshake's bytes. */
static int send_ours(session *s)
{
    for (size_t i = 0; i < s->send->n; i++)
        if (s->m.ops->encode(&s->m, s->send->data[i], s->send->len[i],
                             s->send->more[i] ? ZM_FLAG_MORE : 0,
                             &s->out) < 0)
            return fail(s, "encode failed");
    s->sent = 1;
    return 0;
}

/* One sealed frame (a MESSAGE command body) from the peer. */
static int open_frame(session *s, const unsigned char *body, size_t len)
{
    zm_command cmd;
    zm_wbuf plain;
    unsigned flags = 0;
    size_t k = s->got;
    int ok;

    if (zm_command_parse(body, len, &cmd) < 0)
        return fail(s, "a sealed frame does not parse");
    zm_wbuf_init(&plain);
    if (s->m.ops->decode(&s->m, &cmd, &plain, &flags) < 0) {
        zm_wbuf_free(&plain);
        return fail(s, "a MESSAGE box did not open");
    }
    ok = k < s->expect->n && plain.len == s->expect->len[k] &&
         (plain.len == 0 || memcmp(plain.data, s->expect->data[k], plain.len) == 0) &&
         !!(flags & ZM_FLAG_MORE) == !!s->expect->more[k] &&
         !(flags & ZM_FLAG_COMMAND);
    zm_wbuf_free(&plain);
    if (!ok)
        return fail(s, "a MESSAGE opened to other bytes than recorded");
    s->got++;
    return 0;
}

/* The peer's bytes: through the decoder into the mechanism. */
static int session_feed(session *s, const unsigned char *data, size_t n)
{
    zm_event ev;

    while (!s->failed) {
        int kind = zm_decoder_next(&s->dec, &ev);
        if (kind == ZM_EV_NEED_DATA) {
            size_t used = 0;
            if (n == 0)
                return 0;
            if (zm_decoder_feed(&s->dec, data, n, &used) < 0)
                return fail(s, "decoder feed");
            data += used;
            n -= used;
            continue;
        }
        if (kind == ZM_EV_ERROR)
            return fail(s, "the peer's bytes do not decode");
        if (kind == ZM_EV_GREETING) {
            if (strcmp(ev.greeting.mechanism, "CURVE") != 0)
                return fail(s, "the peer's greeting is not CURVE");
            if (zm_mech_greeting(&s->m, &ev.greeting, &s->out) < 0)
                return fail(s, "greeting refused");
            continue;
        }
        if (kind == ZM_EV_COMMAND) {
            int rc = 0;
            if (zm_mech_status(&s->m) == ZM_MECH_HANDSHAKING) {
                rc = zm_mech_handle(&s->m, &ev.cmd, &s->out);
                if (rc == 0 && zm_mech_zap_pending(&s->m))
                    rc = zm_mech_zap_reply(&s->m, 200, &s->out);
                if (rc < 0)
                    fail(s, "a handshake command was refused");
                else if (zm_mech_status(&s->m) == ZM_MECH_READY)
                    rc = send_ours(s);
            } else if (zm_mech_status(&s->m) == ZM_MECH_READY) {
                rc = open_frame(s, ev.command.data, ev.command.size);
            }
            zm_frame_release(&ev.command);
            if (rc < 0)
                return -1;
            continue;
        }
        /* a message: each frame a MESSAGE box */
        if (zm_mech_status(&s->m) != ZM_MECH_READY) {
            zm_msg_clear(&ev.msg);
            return fail(s, "a message before READY");
        }
        {
            zm_frame *fr = zm_msg_frames(&ev.msg);
            for (size_t i = 0; i < ev.msg.n && !s->failed; i++)
                open_frame(s, fr[i].data, fr[i].size);
            zm_msg_clear(&ev.msg);
        }
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* Replay                                                             */
/* ------------------------------------------------------------------ */

static void list_free(msg_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->data[i]);
    l->n = 0;
}

static int list_add(msg_list *l, const char *more, const char *hex)
{
    if (l->n >= MAX_MSGS)
        return -1;
    if (unhex(hex, &l->data[l->n], &l->len[l->n]) < 0)
        return -1;
    l->more[l->n] = strcmp(more, "1") == 0;
    l->n++;
    return 0;
}

/* The fixture: "case NAME" starts a case; then "seed N", "public HEX",
 * "secret HEX", "server HEX", "zmtp HEX", "libzmq HEX", "from_zmtp MORE
 * HEX", "from_libzmq MORE HEX"; '#' starts a comment line. */
static int load(const char *path, kat_case cases[2], size_t *ncases)
{
    FILE *f = fopen(path, "r");
    static char line[1 << 16];
    kat_case *c = NULL;
    int rc = 0;

    *ncases = 0;
    if (f == NULL)
        return -1;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        char *key = strtok(line, " \n"), *a = strtok(NULL, " \n"),
             *b = strtok(NULL, " \n");
        if (key == NULL || key[0] == '#')
            continue;
        if (strcmp(key, "case") == 0) {
            if (*ncases >= 2 || a == NULL) {
                rc = -1;
                break;
            }
            c = &cases[(*ncases)++];
            memset(c, 0, sizeof(*c));
            snprintf(c->name, sizeof(c->name), "%s", a);
            continue;
        }
        if (c == NULL || a == NULL) {
            rc = -1;
        } else if (strcmp(key, "seed") == 0) {
            c->seed = strtoull(a, NULL, 10);
        } else if (strcmp(key, "public") == 0) {
            rc = unhex32(a, c->pub);
        } else if (strcmp(key, "secret") == 0) {
            rc = unhex32(a, c->sec);
        } else if (strcmp(key, "server") == 0) {
            rc = unhex32(a, c->server);
        } else if (strcmp(key, "zmtp") == 0) {
            rc = unhex(a, &c->zmtp, &c->zmtp_len);
        } else if (strcmp(key, "libzmq") == 0) {
            rc = unhex(a, &c->libzmq, &c->libzmq_len);
        } else if (strcmp(key, "from_zmtp") == 0) { /* no HEX: empty */
            rc = list_add(&c->from_zmtp, a, b != NULL ? b : "");
        } else if (strcmp(key, "from_libzmq") == 0) {
            rc = list_add(&c->from_libzmq, a, b != NULL ? b : "");
        } /* other keys (the keys' Z85, notes): for the reader */
    }
    fclose(f);
    return rc;
}

/* Replay a case with libzmq's bytes as given: 0 when every check held
 * (else *why says which failed). */
static int replay(const kat_case *c, const unsigned char *libzmq,
                  char *why, size_t whylen)
{
    session s;
    int rc;

    session_start(&s, strcmp(c->name, "server") == 0, c->seed, c->pub,
                  c->sec, c->server, &c->from_zmtp, &c->from_libzmq);
    if (!s.failed)
        session_feed(&s, libzmq, c->libzmq_len);
    if (!s.failed && zm_mech_status(&s.m) != ZM_MECH_READY)
        fail(&s, "the handshake did not complete");
    if (!s.failed && s.got != c->from_libzmq.n)
        fail(&s, "not every recorded MESSAGE of libzmq arrived");
    if (!s.failed && (s.out.len != c->zmtp_len ||
                      memcmp(s.out.data, c->zmtp, c->zmtp_len) != 0)) {
        size_t i = 0;
        while (i < s.out.len && i < c->zmtp_len && s.out.data[i] == c->zmtp[i])
            i++;
        snprintf(s.why, sizeof(s.why),
                 "zmtp's bytes differ from the recording at offset %zu "
                 "(%zu bytes made, %zu recorded)", i, s.out.len, c->zmtp_len);
        s.failed = 1;
    }
    rc = s.failed ? -1 : 0;
    snprintf(why, whylen, "%s", s.why);
    session_end(&s);
    return rc;
}

/* The offsets of the frame bodies in a stream after its greeting. */
static size_t body_offsets(const unsigned char *d, size_t n, size_t *offs,
                           size_t max)
{
    size_t i = 64, k = 0;

    while (i + 2 <= n) {
        uint64_t size;
        size_t hdr;
        if (d[i] & ZM_FLAG_LONG) {
            if (i + 9 > n)
                break;
            size = zm_get_u64(d + i + 1);
            hdr = 9;
        } else {
            size = d[i + 1];
            hdr = 2;
        }
        if (size > n - i - hdr)
            break;
        for (size_t j = 0; j < size && k < max; j++)
            offs[k++] = i + hdr + j;
        i += hdr + (size_t)size;
    }
    return k;
}

static int replay_main(const char *path)
{
    kat_case cases[2];
    size_t ncases = 0;
    int bad = 0;

    memset(cases, 0, sizeof(cases));
    if (load(path, cases, &ncases) < 0 || ncases != 2) {
        printf("FAIL cannot read the fixture %s\n", path);
        return 1;
    }
    for (size_t i = 0; i < ncases; i++) {
        kat_case *c = &cases[i];
        char why[160];
        size_t *offs = malloc(c->libzmq_len * sizeof(size_t) + 1);
        unsigned char *copy = malloc(c->libzmq_len + 1);
        size_t n, missed = 0;

        if (c->zmtp == NULL || c->libzmq == NULL || offs == NULL ||
            copy == NULL || c->from_zmtp.n == 0 || c->from_libzmq.n == 0) {
            printf("FAIL %s: incomplete case\n", c->name);
            bad = 1;
        } else if (replay(c, c->libzmq, why, sizeof(why)) < 0) {
            printf("FAIL %s: %s\n", c->name, why);
            bad = 1;
        } else {
            printf("ok replay_%s\n", c->name);
            /* every byte of every frame body libzmq sent, flipped */
            n = body_offsets(c->libzmq, c->libzmq_len, offs, c->libzmq_len);
            for (size_t k = 0; k < n; k++) {
                memcpy(copy, c->libzmq, c->libzmq_len);
                copy[offs[k]] ^= 0x01;
                if (replay(c, copy, why, sizeof(why)) == 0) {
                    if (missed++ < 5)
                        printf("FAIL %s: byte %zu of libzmq's stream "
                               "flipped was accepted\n", c->name, offs[k]);
                }
            }
            if (missed == 0 && n > 0)
                printf("ok flips_%s %zu\n", c->name, n);
            else
                bad = 1;
        }
        free(offs);
        free(copy);
        free(c->zmtp);
        free(c->libzmq);
        list_free(&c->from_zmtp);
        list_free(&c->from_libzmq);
    }
    return bad;
}

/* ------------------------------------------------------------------ */
/* The recording peer                                                 */
/* ------------------------------------------------------------------ */

static const kat_msg KAT_ZMTP_MSGS[] = {
    {"zmtp to libzmq", 14, 0},
    {"part one", 8, 1},
    {"part two", 8, 0},
    {"", 0, 0},
};
static const kat_msg KAT_LIBZMQ_MSGS[] = {
    {"libzmq to zmtp", 14, 0},
    {"alpha", 5, 1},
    {"beta", 4, 0},
    {NULL, 300, 0}, /* 300 x 'z': a long frame */
};

static void fill(msg_list *l, const kat_msg *m, size_t n)
{
    l->n = 0;
    for (size_t i = 0; i < n; i++) {
        l->data[i] = malloc(m[i].len + 1);
        if (m[i].data != NULL)
            memcpy(l->data[i], m[i].data, m[i].len);
        else
            memset(l->data[i], 'z', m[i].len);
        l->len[i] = m[i].len;
        l->more[i] = m[i].more;
        l->n++;
    }
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int peer_main(int argc, char **argv)
{
    int as_server, fd = -1, rc = 1;
    unsigned short port;
    unsigned char pub[32], sec[32], server[32], buf[4096];
    struct sockaddr_in sa;
    msg_list ours, theirs;
    session s;
    size_t written = 0;

    if (argc != 8 || unhex32(argv[5], pub) < 0 || unhex32(argv[6], sec) < 0 ||
        unhex32(argv[7], server) < 0) {
        fprintf(stderr, "usage: peer client|server PORT SEED PUB SEC SERVER\n");
        return 2;
    }
    as_server = strcmp(argv[2], "server") == 0;
    port = (unsigned short)atoi(argv[3]);
    fill(&ours, KAT_ZMTP_MSGS, sizeof(KAT_ZMTP_MSGS) / sizeof(KAT_ZMTP_MSGS[0]));
    fill(&theirs, KAT_LIBZMQ_MSGS,
         sizeof(KAT_LIBZMQ_MSGS) / sizeof(KAT_LIBZMQ_MSGS[0]));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    if (as_server) {
        int ls = socket(AF_INET, SOCK_STREAM, 0);
        socklen_t sl = sizeof(sa);
        if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            listen(ls, 1) < 0 ||
            getsockname(ls, (struct sockaddr *)&sa, &sl) < 0)
            goto out;
        printf("listening %u\n", ntohs(sa.sin_port));
        fflush(stdout);
        fd = accept(ls, NULL, NULL);
        close(ls);
    } else {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0)
        goto out;
    session_start(&s, as_server, strtoull(argv[4], NULL, 10), pub, sec,
                  server, &ours, &theirs);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t r;
        if (s.out.len > written) {
            if (write_all(fd, s.out.data + written, s.out.len - written) < 0)
                break;
            written = s.out.len;
        }
        if (s.failed || (s.sent && s.got == theirs.n))
            break;
        if (poll(&p, 1, 10000) <= 0) {
            fail(&s, "timed out");
            break;
        }
        r = read(fd, buf, sizeof(buf));
        if (r <= 0) {
            fail(&s, "the peer closed");
            break;
        }
        session_feed(&s, buf, (size_t)r);
    }
    if (!s.failed && s.sent && s.got == theirs.n) {
        /* everything sent and received: let libzmq close first */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        shutdown(fd, SHUT_WR);
        while (poll(&p, 1, 5000) > 0 && read(fd, buf, sizeof(buf)) > 0)
            ;
        rc = 0;
    } else {
        fprintf(stderr, "peer: %s\n", s.why[0] ? s.why : "incomplete");
    }
    session_end(&s);
    close(fd);
out:
    list_free(&ours);
    list_free(&theirs);
    return rc;
}

int main(int argc, char **argv)
{
    const char *why = NULL;

    if (det_sodium_real(&why) == NULL) {
        printf("skip no libsodium: %s\n", why ? why : "");
        return 77;
    }
    if (argc == 3 && strcmp(argv[1], "replay") == 0)
        return replay_main(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "peer") == 0)
        return peer_main(argc, argv);
    fprintf(stderr, "usage: test_curve_kat replay FIXTURE | peer ...\n");
    return 2;
}
