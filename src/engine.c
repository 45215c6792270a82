/*
 * engine.c - the socket (see engine.h, its public interface): set-up and
 * teardown, listeners (bind, unbind, accept), connect, disconnect and
 * adopting a descriptor, the non-blocking step of all its I/O
 * (zm_sock_process), what to wait for (zm_sock_watch), the readiness set
 * of its connections (many peers: which to read, one descriptor to wait
 * on) and the writing of output held back (flush, push_output).  Sending,
 * receiving and readiness per socket type are engine_route.c's.
 *
 * May call: engine_conn.c (a connection's step, dial, handshake, write,
 * free), engine_inproc.c (adopting offered pipes), engine_route.c
 * (forgetting a freed connection), engine_monitor.c (events), and the
 * layers below (transport, inproc mailboxes, outq, trie, msg).
 * Must never call it: those layers below.  Its callers are the Python
 * face and progress.c (through engine.h); inside the engine, only a
 * publisher's send steps the socket (zm_sock_process, engine_pubsub.c).
 */
#include "engine_int.h"
#include "sodium.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define ZM_ACCEPT_BATCH 16

/* ================================================================== */
/* The readiness set (many peers)                                     */
/* ================================================================== */

/*
 * With thousands of connected peers and only a few talking, a step that
 * tried a recv on every connection (EAGAIN for nearly all), and a wait
 * that watched and unwatched every descriptor, cost two syscalls per peer
 * per request.  Instead the ACTIVE tcp/ipc connections are kept in one
 * epoll set per socket (level-triggered EPOLLIN; HUP and ERR always
 * come): a step asks it which have bytes (one epoll_wait that never
 * sleeps) and reads only those, and a wait watches the set's descriptor
 * instead of theirs.  Below ZM_RSET_MIN such connections none of this
 * happens (one extra syscall per step would cost the few-peers rows more
 * than it saves).  Who adds: zm_sock_process, after a connection's step
 * found it ACTIVE; who removes: zm_rset_forget, before its descriptor
 * closes (zm_conn_lost); the set goes with the socket (zm_sock_destroy).
 * All on the thread that holds the socket.  Errors are not fatal: a
 * connection that could not be added is read at every step, as before,
 * and a failed epoll_wait makes the step read them all.
 */
#define ZM_RSET_MIN ((size_t)16)
#define ZM_FLUSH_DUE_WALK_MAX 64
#define ZM_RSET_BATCH 64

/*
 * The step list and the timer heap (many peers, flat per call).  A step
 * visits the connections on the step list (zm_sock.hot, doubly linked
 * through zm_conn.hot_next), not all of them:
 *
 *   - every connection that is not in the readiness set is on it, always
 *     (added at zm_conn_new and again by zm_rset_forget);
 *   - one in the set joins it when the set reports it (rset_poll), when
 *     output is queued on it (conn_begin_msg, zm_conn_put_encoded,
 *     zm_conn_send_soon: engine_int.h, engine_conn.c, engine_route.c),
 *     when its timer is due (the heap) and when the heartbeat options
 *     change (every one);
 *   - it leaves it at the end of its step when it rests: ACTIVE, in the
 *     set, nothing queued or held back, no message half sent, no bytes in
 *     its decoder.  Its next timer (zm_conn_next_timer: heartbeats, the
 *     peer's TTL) then goes to the heap (zm_sock.theap, a binary min-heap,
 *     minheap.h); none: it waits for the set alone.
 *
 * So a connection off the list has nothing to write and wants only input
 * (what the set's descriptor says): zm_sock_watch, the flushes and
 * zm_progress_wanted walk the list alone, and the first timer of the
 * rest is the heap's top.  A heap that cannot grow keeps the connection
 * on the list (stepped every step, as before).  Only the thread holding
 * the socket touches either.
 */
void zm_hot_add(zm_sock *s, zm_conn *c)
{
    if (c->hot)
        return;
    /* on the list its timer is read by the walks */
    zm_heap_del(&s->theap, &c->theap);
    c->hot_prev = NULL;
    c->hot_next = s->hot;
    if (s->hot != NULL)
        s->hot->hot_prev = c;
    s->hot = c;
    c->hot = 1;
}

static void hot_del(zm_sock *s, zm_conn *c)
{
    if (c->hot_prev != NULL)
        c->hot_prev->hot_next = c->hot_next;
    else
        s->hot = c->hot_next;
    if (c->hot_next != NULL)
        c->hot_next->hot_prev = c->hot_prev;
    c->hot_next = c->hot_prev = NULL;
    c->hot = 0;
}

void zm_conn_unlist(zm_sock *s, zm_conn *c)
{
    if (c->hot)
        hot_del(s, c);
    zm_heap_del(&s->theap, &c->theap);
    if (c->in_listed)
        in_list_del(s, c);
    zm_rid_unhash(s, c);
}

/* After its step: c (in the set) has nothing to do until the set reports
 * it, output is queued on it or its timer is due. */
static int conn_rests(const zm_conn *c)
{
    return c->rset_reg && c->state == ZM_CS_ACTIVE && c->out.bytes == 0 &&
           c->flush_at_ns == 0 && !c->in_msg && c->dec.page == NULL;
}

/* Connections visited by steps (io_stats' "conn_visits"): one add per
 * step, so that a test can see the walk stay flat. */
static void count_visits(size_t n)
{
    (void)__atomic_fetch_add(&zm_counters[ZM_CNT_CONN_VISIT], (uint64_t)n,
                             __ATOMIC_RELAXED);
}

static void rset_add(zm_sock *s, zm_conn *c)
{
    struct epoll_event ev;

    if (s->rset_fd < 0) {
        int fd = epoll_create1(EPOLL_CLOEXEC);
        if (fd < 0)
            return;
        s->rset_fd = fd;
        s->fd_gen++;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = c; /* removed before c's descriptor closes */
    ZM_COUNT(ZM_CNT_EPOLL_CTL);
    if (epoll_ctl(s->rset_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        return;
    c->rset_ready = 0;
    c->rset_reg = 1;
    s->rset_n++;
}

void zm_rset_forget(zm_sock *s, zm_conn *c)
{
    if (!c->rset_reg)
        return;
    ZM_COUNT(ZM_CNT_EPOLL_CTL);
    (void)epoll_ctl(s->rset_fd, EPOLL_CTL_DEL, c->fd, NULL);
    c->rset_reg = 0;
    c->rset_ready = 0;
    s->rset_n--;
    zm_hot_add(s, c); /* out of the set: stepped every step */
}

/* Whether the set is consulted now: it holds enough connections. */
static int rset_used(const zm_sock *s)
{
    return s->rset_fd >= 0 && s->rset_n >= ZM_RSET_MIN;
}

/* Put the connections the set reports readable on the step list; 0, or
 * -1 when it could not say (then every connection is read).  Level-
 * triggered entries go back to the end of the kernel's ready list once
 * reported, so with more ready than a batch the calls are bounded by the
 * set's size. */
static int rset_poll(zm_sock *s)
{
    struct epoll_event evs[ZM_RSET_BATCH];
    size_t rounds = s->rset_n / ZM_RSET_BATCH + 1;

    for (size_t r = 0; r < rounds; r++) {
        int n;
        ZM_COUNT(ZM_CNT_EPOLL_WAIT);
        n = epoll_wait(s->rset_fd, evs, ZM_RSET_BATCH, 0);
        if (n < 0)
            return -1;
        for (int i = 0; i < n; i++) {
            zm_conn *c = evs[i].data.ptr;
            c->rset_ready = 1;
            zm_hot_add(s, c);
        }
        if (n < ZM_RSET_BATCH)
            break;
    }
    return 0;
}

static void listener_accept(zm_sock *s, zm_listener *l, int64_t now)
{
    l->pending = 0;
    l->next_try_ns = now + ZM_ACCEPT_RETRY_NS;
    /* At most ZM_ACCEPT_BATCH a step: every connection accepted may take a
     * read page and a partial message before the step cuts or serves it,
     * so this bounds what a connection flood holds at once (16 x 64 KiB
     * page + 4096-frame array: about 4 MiB). The listener stays pending:
     * the next step, at once, takes the next batch. */
    for (int i = 0; i < ZM_ACCEPT_BATCH; i++) {
        int fd;
        zm_conn *c;
        if (!zm_sock_may_accept(s)) {
            l->pending = 1; /* the backlog waits: once a handshake ends */
            return;
        }
        fd = zm_accept(l->fd, l->addr.transport, &l->tcp);
        if (fd < 0) {
            /* EAGAIN, or a transient error (EMFILE...) */
            if (fd != -EAGAIN)
                zm_mon_event(s, ZM_EVENT_ACCEPT_FAILED, (uint32_t)-fd, l->endpoint);
            return;
        }
        if (i == ZM_ACCEPT_BATCH - 1)
            l->pending = 1; /* maybe more: look again next step */
        c = zm_conn_new(s);
        if (c == NULL) {
            close(fd);
            return;
        }
        c->fd = fd;
        s->fd_gen++;
        memcpy(c->endpoint, l->endpoint, sizeof(c->endpoint));
        ZM_STAT_ADD(s->stats.accepted, 1);
        zm_mon_event(s, ZM_EVENT_ACCEPTED, (uint32_t)fd, l->endpoint);
        if (zm_conn_start_handshake(s, c) < 0) {
            c->state = ZM_CS_DEAD;
            close(c->fd);
            c->fd = -1;
        }
    }
}

/* Remove dead connections whose input has been consumed (never in the
 * readiness set, so on the step list). */
static void reap_dead(zm_sock *s)
{
    zm_conn *next;

    for (zm_conn *c = s->hot; c != NULL; c = next) {
        next = c->hot_next;
        if (c->state != ZM_CS_DEAD || c->inq.n != 0)
            continue;
        zm_route_forget(s, c);
        zm_conn_unlist(s, c);
        if (c->prev != NULL)
            c->prev->next = c->next;
        else
            s->conns = c->next;
        if (c->next != NULL)
            c->next->prev = c->prev;
        else
            s->conns_tail = c->prev;
        zm_conn_free(c);
    }
}

/* A registered connection the set did not report, with nothing to write,
 * no bytes in its decoder and no timer due: its step would do nothing, so
 * zm_sock_process does not take it (a few fields read, no call). */
static int conn_quiet(const zm_sock *s, const zm_conn *c, int64_t now)
{
    int64_t t;

    if (!c->idle_in || c->state != ZM_CS_ACTIVE || c->out.bytes != 0 ||
        c->flush_at_ns != 0 || c->dec.page != NULL)
        return 0;
    t = zm_conn_next_timer(s, c);
    return t < 0 || t > now;
}

void zm_sock_io_ready(zm_sock *s, int fd)
{
    for (zm_listener *l = s->listeners; l != NULL; l = l->next)
        if (l->fd == fd)
            l->pending = 1;
}

/* One connection's turn in a step (either walk). */
static void step_one(zm_sock *s, zm_conn *c, int64_t now, int use,
                     size_t *nio)
{
    if (use && c->rset_reg) {
        c->idle_in = !c->rset_ready;
        c->rset_ready = 0;
        if (conn_quiet(s, c, now)) {
            c->idle_in = 0;
            return;
        }
    }
    zm_conn_step(s, c, now);
    c->idle_in = 0;
    if (c->state == ZM_CS_ACTIVE && c->fd >= 0 && !c->inproc && !c->raw &&
        !c->rset_reg) {
        if (s->nio >= ZM_RSET_MIN)
            rset_add(s, c);
        if (!c->rset_reg)
            (*nio)++; /* s->nio: these and the set's */
    }
}

void zm_sock_process(zm_sock *s, int64_t now)
{
    size_t nio = 0, visits = 0;
    int use;

    if (s->mb != NULL) {
        /* Before looking at any pipe: an event after this read makes the
         * owner's zm_sock_inproc_arm say "do not sleep". */
        s->mb_seen = zm_mailbox_seq(s->mb);
        zm_inproc_adopt(s);
        zm_zap_step(s, now); /* replies before the connections step */
    }
    if (s->mon_fd >= 0) {
        zm_mon_drain(s);
        zm_mon_flush(s);
    }
    for (zm_listener *l = s->listeners; l != NULL; l = l->next)
        if (l->pending || now >= l->next_try_ns)
            listener_accept(s, l, now);
    if (s->heartbeat_ivl_ms != s->hb_ivl_seen ||
        s->heartbeat_timeout_ms != s->hb_timeout_seen) {
        /* The resting connections' timers were computed with the old
         * options: every one is looked at again. */
        s->hb_ivl_seen = s->heartbeat_ivl_ms;
        s->hb_timeout_seen = s->heartbeat_timeout_ms;
        for (zm_conn *c = s->conns; c != NULL; c = c->next)
            zm_hot_add(s, c);
    }
    use = rset_used(s) && rset_poll(s) == 0;
    if (!use) {
        /* Every connection, in order, each kept on the step list. */
        for (zm_conn *c = s->conns; c != NULL; c = c->next) {
            zm_hot_add(s, c);
            step_one(s, c, now, 0, &nio);
            visits++;
        }
        s->nio = nio + s->rset_n;
    } else {
        zm_conn *next;
        while (zm_heap_top(&s->theap) != NULL &&
               zm_heap_top(&s->theap)->at <= now) /* its timer is due */
            zm_hot_add(s, ZM_HEAP_OWNER(zm_heap_top(&s->theap), zm_conn,
                                        theap));
        /* Connections the steps add (at the head) wait for the next step;
         * only this walk takes one off. */
        for (zm_conn *c = s->hot; c != NULL; c = next) {
            step_one(s, c, now, 1, &nio);
            visits++;
            next = c->hot_next;
            if (conn_rests(c)) {
                int64_t t = zm_conn_next_timer(s, c);
                hot_del(s, c);
                if (t >= 0 && zm_heap_put(&s->theap, &c->theap, t) < 0)
                    zm_hot_add(s, c); /* no room in the heap: stays */
            }
        }
        s->nio = nio + s->rset_n;
    }
    count_visits(visits);
    reap_dead(s);
}

/* ================================================================== */
/* Socket set-up                                                      */
/* ================================================================== */

int zm_sock_init(zm_sock *s, int type)
{
    memset(s, 0, sizeof(*s));
    if (type < 0 || type >= ZM_SOCKTYPE_COUNT_)
        return -EINVAL; /* every type has its entry in zm_routes */
    s->type = type;
    s->sndhwm = 1000;
    s->rcvhwm = 1000;
    s->maxmsgsize = -1;
    s->reconnect_ivl_ms = 100;
    s->handshake_ivl_ms = 30000; /* libzmq's default */
    s->heartbeat_timeout_ms = -1;
    s->stream_notify = 1; /* libzmq: ZMQ_STREAM_NOTIFY defaults to 1 */
    zm_sockopts_init(&s->tcp);
    s->use_fd = -1;
    s->read_buf_size = ZM_PAGE_SIZE_DEFAULT;
    s->write_buf_size = ZM_WRITE_BUF_DEFAULT;
    /* the timer heap's room made now, not while messages flow (a failure
     * only defers it to the first put) */
    (void)zm_heap_reserve(&s->theap, 16);
    s->max_frames = ZM_MAX_FRAMES_DEFAULT;
    s->hs_max = zm_handshakes_max();
    /* libzmq starts generated ids at a random value. */
    s->next_rid = (uint32_t)(zm_now_ns() ^ (int64_t)(uintptr_t)s);
    s->req_id = s->next_rid * 2654435761u; /* REQ_CORRELATE's first - 1 */
    zm_msg_init(&s->rep_envelope);
    zm_subs_init(&s->subs, 0);
    s->peer_max_sub_nodes = ZM_SUBS_MAX_NODES_DEFAULT;
    s->mon_fd = -1;
    s->rset_fd = -1;
    zm_outq_init(&s->mon_out);
    return 0;
}

static void listener_close(zm_listener *l)
{
    close(l->fd);
    if (l->addr.transport == ZM_TR_IPC && !l->caller_fd) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)&l->addr.ss;
        if (sun->sun_path[0] != '\0')
            unlink(sun->sun_path);
    }
    free(l);
}

void zm_sock_destroy(zm_sock *s)
{
    zm_secure_zero(s->mech_cfg.curve_secret, sizeof(s->mech_cfg.curve_secret));
    while (s->listeners != NULL) {
        zm_listener *l = s->listeners;
        s->listeners = l->next;
        zm_mon_event(s, ZM_EVENT_CLOSED, (uint32_t)l->fd, l->endpoint);
        listener_close(l);
    }
    /* The monitor learns the end; what the kernel takes now is all it
     * gets. */
    zm_sock_monitor(s, -1, 0);
    zm_outq_free(&s->mon_out);
    zm_mech_wipe(s->plain_password, sizeof(s->plain_password));
    zm_zap_close(s);
    if (s->rset_fd >= 0)
        close(s->rset_fd); /* its registrations go with it */
    zm_heap_free(&s->theap);
    free(s->rid_tab);
    while (s->conns != NULL) {
        zm_conn *c = s->conns;
        s->conns = c->next;
        zm_conn_free(c);
    }
    while (s->adopt_later != NULL) {
        zm_inbox_item *it = s->adopt_later;
        s->adopt_later = it->next;
        zm_pipe_detach(it->pipe, 1); /* offered, never adopted: it ends */
        free(it);
    }
    if (s->mb != NULL) {
        zm_mailbox_close(s->mb); /* pipes offered and not adopted end */
        zm_mailbox_unref(s->mb);
    }
    zm_msg_clear(&s->rep_envelope);
    zm_subs_clear(&s->subs);
    zm_msgq_free(&s->xpub_q);
    free(s->xpub_from);
    free(s->welcome);
    for (size_t i = 0; i < s->app_nprops; i++)
        free((void *)s->app_props[i].name); /* name and value: one block */
    free(s->targets);
    if (s->pubpage != NULL)
        zm_page_decref(s->pubpage);
    memset(s, 0, sizeof(*s));
    s->mon_fd = -1;
    s->rset_fd = -1;
}

int zm_sock_bind(zm_sock *s, const char *endpoint, int parsed,
                 const zm_addr *addr)
{
    zm_addr a;
    zm_listener *l;
    int fd;

    if (parsed < 0) {
        if (parsed != -EPROTONOSUPPORT)
            zm_mon_event(s, ZM_EVENT_BIND_FAILED, (uint32_t)-parsed, endpoint);
        return parsed;
    }
    if (s->use_fd >= 0) {
        /* USE_FD: the caller's descriptor, bound already (the endpoint's
         * address is not used, as libzmq); ours from now on, closed with
         * the listener.  Every bind while USE_FD is set takes it. */
        fd = zm_listen_fd(s->use_fd, &a);
        if (fd == 0)
            fd = s->use_fd;
    } else {
        a = *addr;
        fd = zm_listen(&a, &s->tcp);
    }
    if (fd < 0) {
        zm_mon_event(s, ZM_EVENT_BIND_FAILED, (uint32_t)-fd, endpoint);
        return fd;
    }
    l = zm_calloc(1, sizeof(*l));
    if (l == NULL) {
        close(fd);
        return -ENOMEM;
    }
    l->fd = fd;
    s->fd_gen++;
    l->pending = 1;
    l->addr = a;
    l->tcp = s->tcp;
    l->caller_fd = s->use_fd >= 0;
    zm_addr_format(&a, l->endpoint, sizeof(l->endpoint));
    memcpy(s->last_endpoint, l->endpoint, sizeof(s->last_endpoint));
    l->next = s->listeners;
    s->listeners = l;
    zm_mon_event(s, ZM_EVENT_LISTENING, (uint32_t)fd, l->endpoint);
    return 0;
}

int zm_sock_connect(zm_sock *s, const char *endpoint, int parsed,
                    const zm_addr *addr)
{
    zm_conn *c;

    if (parsed < 0)
        return parsed;
    c = zm_conn_new(s);
    if (c == NULL)
        return -ENOMEM;
    c->connecter = 1;
    zm_route_connected(s, c); /* CONNECT_ROUTING_ID, PROBE_ROUTER */
    if (zm_route_raw(s))
        zm_stream_identify(s, c); /* known (and reachable) at once */
    c->addr = *addr;
    c->tcp = s->tcp;
    c->connect_timeout_ms = s->connect_timeout_ms;
    snprintf(c->endpoint, sizeof(c->endpoint), "%s", endpoint);
    snprintf(s->last_endpoint, sizeof(s->last_endpoint), "%s", endpoint);
    c->state = ZM_CS_RETRY;
    c->retry_at_ns = 0; /* dial on the next step */
    zm_conn_dial(s, c, zm_now_ns());
    return 0;
}

int zm_sock_unbind(zm_sock *s, const char *endpoint)
{
    for (zm_listener **pp = &s->listeners; *pp != NULL; pp = &(*pp)->next) {
        zm_listener *l = *pp;
        if (strcmp(l->endpoint, endpoint) == 0) {
            *pp = l->next;
            zm_mon_event(s, ZM_EVENT_CLOSED, (uint32_t)l->fd, l->endpoint);
            listener_close(l);
            return 0;
        }
    }
    return -ENOENT;
}

int zm_sock_disconnect(zm_sock *s, const char *endpoint)
{
    for (zm_conn *c = s->conns; c != NULL; c = c->next) {
        if (c->connecter && c->state != ZM_CS_DEAD &&
            strcmp(c->endpoint, endpoint) == 0) {
            c->connecter = 0; /* no redial */
            if (zm_route_raw(s))
                c->raw_closing = 1; /* ours: no notification (libzmq) */
            zm_conn_lost(s, c, zm_now_ns());
            return 0;
        }
    }
    return -ENOENT;
}

int zm_sock_adopt(zm_sock *s, int fd, const char *endpoint)
{
    zm_conn *c = zm_conn_new(s);

    if (c == NULL) {
        close(fd);
        return -ENOMEM;
    }
    c->fd = fd;
    s->fd_gen++;
    snprintf(c->endpoint, sizeof(c->endpoint), "%s", endpoint);
    if (zm_conn_start_handshake(s, c) < 0) {
        c->state = ZM_CS_DEAD;
        close(c->fd);
        c->fd = -1;
        return -ENOMEM;
    }
    zm_conn_write(s, c, zm_now_ns());
    return 0;
}

int zm_sock_push_output(zm_sock *s, int64_t now, zm_watch_fn watch, void *ctx)
{
    int n = 0;

    /* Off the step list nothing is queued (zm_hot_add, above). */
    for (zm_conn *c = s->hot; c != NULL; c = c->hot_next) {
        if (c->state != ZM_CS_ACTIVE || c->fd < 0 || c->out.bytes == 0 ||
            c->flush_at_ns > 0)
            continue;
        zm_conn_write(s, c, now);
        if (c->fd >= 0 && c->state == ZM_CS_ACTIVE && c->out.bytes > 0) {
            watch(ctx, c->fd, WATCH_OUT);
            n++;
        }
    }
    return n;
}

int64_t zm_sock_flush_due(const zm_sock *s)
{
    int64_t due = 0;
    int walked = 0;

    for (const zm_conn *c = s->hot; c != NULL; c = c->hot_next) {
        /* A hint for the progress thread's timer, read after every call:
         * past ZM_FLUSH_DUE_WALK_MAX connections with something to do
         * (thousands in their handshake), "as soon as may be" (1: a time
         * gone by) rather than a walk of them all. */
        if (++walked > ZM_FLUSH_DUE_WALK_MAX)
            return 1;
        if (c->flush_at_ns > 0 && (due == 0 || c->flush_at_ns < due))
            due = c->flush_at_ns;
    }
    return due;
}

int64_t zm_sock_flush(zm_sock *s, int64_t now)
{
    int64_t next = -1;

    for (zm_conn *c = s->hot; c != NULL; c = c->hot_next) {
        if (c->flush_at_ns == 0)
            continue;
        if (now < 0 || now >= c->flush_at_ns) {
            if (c->state == ZM_CS_ACTIVE && c->fd >= 0)
                zm_conn_write(s, c, now < 0 ? zm_now_ns() : now);
            c->flush_at_ns = 0;
        } else if (next < 0 || c->flush_at_ns < next) {
            next = c->flush_at_ns;
        }
    }
    return next;
}

size_t zm_sock_pending_out(const zm_sock *s)
{
    size_t n = 0;

    for (const zm_conn *c = s->hot; c != NULL; c = c->hot_next)
        if (c->state != ZM_CS_DEAD && (c->state == ZM_CS_ACTIVE || c->connecter))
            n += c->out.bytes;
    return n;
}

/* What a connection in the handshake or in traffic waits for. */
static unsigned conn_interest(const zm_sock *s, const zm_conn *c)
{
    size_t limit = c->state == ZM_CS_ACTIVE ? c->out.bytes : c->hs_left;
    unsigned ev = 0;

    /* As conn_read: it stops at RCVHWM, and for an owner in a call at
     * ZM_READ_AHEAD; interest beyond would only wake a level-triggered
     * watcher (the loop set) for nothing. */
    if ((s->rcvhwm <= 0 || c->inq.n < (size_t)s->rcvhwm) &&
        !(s->in_call && c->inq.n >= ZM_READ_AHEAD) && !xpub_full(s))
        ev |= WATCH_IN;
    if (limit > 0)
        ev |= WATCH_OUT;
    return ev;
}

/* Whether a wait may watch the readiness set instead of its connections:
 * not while one of them wants no input (RCVHWM, read-ahead, XPUB's
 * queue): the set is level-triggered and would wake the wait for it at
 * once, again and again.  Those waits watch each connection, as before. */
static int rset_waitable(const zm_sock *s)
{
    if (!rset_used(s) || xpub_full(s))
        return 0;
    /* Only a connection with input queued may want no more: the input
     * list holds them all (none queued: every connection wants more). */
    for (const zm_conn *c = s->in_head; c != NULL; c = c->in_next)
        if (c->rset_reg && !(conn_interest(s, c) & WATCH_IN))
            return 0;
    return 1;
}

void zm_sock_watch_traffic(zm_sock *s, zm_watch_fn watch, void *ctx)
{
    int use_set = rset_waitable(s);

    /* With the set watched, the step list alone (off it a connection
     * wants only input, which the set's descriptor says). */
    for (zm_conn *c = use_set ? s->hot : s->conns; c != NULL;
         c = use_set ? c->hot_next : c->next) {
        unsigned ev;

        if (c->inproc || c->state != ZM_CS_ACTIVE || c->fd < 0)
            continue;
        ev = conn_interest(s, c);
        if (use_set && c->rset_reg)
            ev &= ~(unsigned)WATCH_IN; /* the set's descriptor says */
        if (ev != 0)
            watch(ctx, c->fd, ev);
    }
    if (use_set)
        watch(ctx, s->rset_fd, WATCH_IN);
}

int64_t zm_sock_watch(zm_sock *s, zm_watch_fn watch, void *ctx)
{
    int64_t next = -1;
    int use_set = rset_waitable(s);

    /* At the handshake cap, a waiting backlog would wake the owner for
     * nothing: the listeners are watched again once a handshake ends. */
    for (zm_listener *l = s->listeners;
         l != NULL && s->hs_accepted < s->hs_max; l = l->next)
        watch(ctx, l->fd, WATCH_IN);
    if (s->mon_fd >= 0)
        watch(ctx, s->mon_fd, WATCH_IN | (s->mon_out.bytes > 0 ? WATCH_OUT : 0u));
    /* With the set watched, the step list alone: off it a connection
     * wants only input (the set's descriptor) and its timer is in the
     * heap. */
    for (zm_conn *c = use_set ? s->hot : s->conns; c != NULL;
         c = use_set ? c->hot_next : c->next) {
        unsigned ev = 0;
        if (c->inproc)
            continue; /* the owner's wait watches the mailbox instead */
        switch (c->state) {
        case ZM_CS_CONNECTING:
            ev = WATCH_OUT;
            if (c->connect_deadline_ns > 0 &&
                (next < 0 || c->connect_deadline_ns < next))
                next = c->connect_deadline_ns;
            break;
        case ZM_CS_RETRY:
            if (next < 0 || c->retry_at_ns < next)
                next = c->retry_at_ns;
            break;
        case ZM_CS_HANDSHAKE:
        case ZM_CS_ACTIVE: {
            int64_t t = zm_conn_next_timer(s, c);
            if (t >= 0 && (next < 0 || t < next))
                next = t;
            ev = conn_interest(s, c);
            if (use_set && c->rset_reg)
                ev &= ~(unsigned)WATCH_IN; /* the set's descriptor says */
            break;
        }
        default:
            break;
        }
        if (ev != 0 && c->fd >= 0)
            watch(ctx, c->fd, ev);
    }
    if (use_set) {
        watch(ctx, s->rset_fd, WATCH_IN);
        if (zm_heap_top(&s->theap) != NULL &&
            (next < 0 || zm_heap_top(&s->theap)->at < next))
            next = zm_heap_top(&s->theap)->at;
    }
    return next;
}
