/*
 * engine.h - the socket engine's public interface: sockets of the twelve
 * types (PAIR, PUB, SUB, REQ, REP, DEALER, ROUTER, PULL, PUSH, XPUB,
 * XSUB: RFC 28-31; STREAM: raw bytes, libzmq's ZMQ_STREAM), their
 * connections, handshakes and routing.
 *
 * No Python and no waiting here.  Every function is a non-blocking step
 * that does what can be done now (accept, finish connects, read, decode,
 * route, write) and says what it would need to go on.  The caller (the
 * Python binding, or the context's progress thread) waits on a backend
 * (backend.h) between steps, with the GIL released, and calls again.  A
 * socket is driven by one thread at a time: the binding checks that and
 * the progress thread only steps a socket it could claim.
 *
 * Implemented by: engine.c (the socket: set-up, bind/connect, the step,
 * watch, flush), engine_conn.c (a tcp/ipc connection), engine_inproc.c
 * (an inproc connection), engine_route.c (routing per socket type: send,
 * recv, events, the socket types), engine_pubsub.c (publish-subscribe),
 * engine_monitor.c (monitor events); what they share is engine_int.h.
 * May call: codec, inproc pipes and mailboxes, outq, transport, trie, msg,
 * arena.  Called by: the Python face and progress.c.  Must never be called
 * by the layers below it (codec, outq, transport, trie, msg, arena,
 * backends, inproc.c).
 */
#ifndef ZMTP_ENGINE_H
#define ZMTP_ENGINE_H

#include "codec.h"
#include "inproc.h"
#include "mechanism.h"
#include "minheap.h"
#include "outq.h"
#include "transport.h"
#include "trie.h"

/* Socket types, with libzmq's numbers. */
enum zm_socktype {
    ZM_PAIR = 0,
    ZM_PUB = 1,
    ZM_SUB = 2,
    ZM_REQ = 3,
    ZM_REP = 4,
    ZM_DEALER = 5,
    ZM_ROUTER = 6,
    ZM_PULL = 7,
    ZM_PUSH = 8,
    ZM_XPUB = 9,
    ZM_XSUB = 10,
    ZM_STREAM = 11, /* raw tcp/ipc: no greeting, no framing */
    ZM_SOCKTYPE_COUNT_
};

/* libzmq's own errno values (ZMQ_HAUSNUMERO 156384712 + n). */
#define ZM_EFSM 156384763
#define ZM_ENOCOMPATPROTO 156384764
#define ZM_ETERM 156384765
#define ZM_EMTHREAD 156384766

/* Monitor events (zmq_socket_monitor), with libzmq's numbers.  Each is sent
 * to the monitor as two frames: 6 octets (uint16 event, uint32 value, in
 * host order) and the endpoint. */
enum zm_monitor_event {
    ZM_EVENT_CONNECTED = 0x0001,       /* value: fd */
    ZM_EVENT_CONNECT_DELAYED = 0x0002, /* value: errno (EINPROGRESS) */
    ZM_EVENT_CONNECT_RETRIED = 0x0004, /* value: next interval, ms */
    ZM_EVENT_LISTENING = 0x0008,       /* value: fd */
    ZM_EVENT_BIND_FAILED = 0x0010,     /* value: errno */
    ZM_EVENT_ACCEPTED = 0x0020,        /* value: fd */
    ZM_EVENT_ACCEPT_FAILED = 0x0040,   /* value: errno */
    ZM_EVENT_CLOSED = 0x0080,          /* value: fd */
    ZM_EVENT_CLOSE_FAILED = 0x0100,    /* never sent (close cannot fail here) */
    ZM_EVENT_DISCONNECTED = 0x0200,    /* value: fd */
    ZM_EVENT_MONITOR_STOPPED = 0x0400, /* value: 0 */
    ZM_EVENT_HANDSHAKE_FAILED_NO_DETAIL = 0x0800, /* value: errno */
    ZM_EVENT_HANDSHAKE_SUCCEEDED = 0x1000,        /* value: 0 */
    ZM_EVENT_HANDSHAKE_FAILED_PROTOCOL = 0x2000,  /* value: ZM_PROTO_* */
    ZM_EVENT_HANDSHAKE_FAILED_AUTH = 0x4000,      /* value: ZAP status (not
                                                     sent yet: NULL only) */
    ZM_EVENT_ALL = 0xFFFF
};

/* HANDSHAKE_FAILED_PROTOCOL values (ZM_PROTO_*): in mechanism.h. */

/* Bytes of events a monitor may leave unread before newer events are
 * dropped (counted in stats.monitor_dropped). */
#define ZM_MONITOR_MAX_BYTES ((size_t)1 << 20)

/* Readiness bits (zmq POLLIN / POLLOUT). */
#define ZM_POLLIN 1
#define ZM_POLLOUT 2

enum zm_conn_state {
    ZM_CS_CONNECTING = 1, /* non-blocking connect in progress */
    ZM_CS_RETRY,          /* connecter waiting to redial */
    ZM_CS_HANDSHAKE,      /* greeting and READY exchange */
    ZM_CS_ACTIVE,         /* traffic */
    ZM_CS_DEAD            /* closed; kept until its input is drained */
};

/* Capacity of a connection's ring of message spans (zm_conn.ends) when it
 * is first needed; it doubles when full. */
#define ZM_CONN_ENDS_FIRST ((size_t)16)

typedef struct zm_conn {
    struct zm_conn *next;
    struct zm_conn *prev;  /* zm_sock.conns is doubly linked: a dead one
                              leaves without a walk (reap_dead) */
    int fd;
    int state;
    int connecter;        /* we dialled it: redial when it drops */
    int subs_early;       /* inproc SUB/XSUB: subscriptions went into the
                           * pipe at connect, before the binder adopted it */
    zm_addr addr;         /* connecter: where to */
    zm_sockopts tcp;      /* connecter: the socket's transport options at
                             connect(), for every dial (libzmq copies them
                             into its connecter) */
    int connect_timeout_ms; /* connecter: CONNECT_TIMEOUT at connect() */
    char endpoint[ZM_ENDPOINT_MAX];
    int64_t retry_at_ns;  /* ZM_CS_RETRY: when to redial */
    int retry_ivl_ms;     /* current redial interval (backs off) */
    int64_t hs_deadline_ns; /* ZM_CS_HANDSHAKE: give up at (0: never) */
    int64_t connect_deadline_ns; /* ZM_CS_CONNECTING: CONNECT_TIMEOUT ends
                                    the dial at (0: never) */
    int64_t last_rx_ns;   /* last bytes received */
    int64_t next_ping_ns; /* heartbeats: next PING due */
    int64_t ping_sent_ns; /* a PING waiting for any traffic back (0: none) */
    int64_t peer_ttl_ns;  /* the peer's PING TTL: silence allowed (0: none) */
    zm_decoder dec;
    int got_greeting;
    int peer_minor;
    int peer_type;
    int v2;               /* the peer greeted in ZMTP/2.0 (engine_conn.c,
                             conn_greeting_v2): 2.0 framing, no commands */
    /*
     * Output and its byte accounting.  `out` is the queue of encoded bytes
     * not yet written: first the hs_left bytes of our greeting and READY
     * (after a (re)connect; the only bytes written before the handshake
     * completes), then message frames and commands.  Offsets count message
     * and command bytes ever queued on this connection (never the
     * handshake), so a byte keeps its offset while it waits:
     *
     *   enc_total      offset of the next byte to queue (bytes queued
     *                  so far, less any message cut from the back);
     *   enc_total - (out.bytes - hs_left)
     *                  offset of the next byte to write (conn_sent_offset);
     *   written_total  that offset as of the last write (SNDHWM and
     *                  coalescing read it; lags between writes);
     *   msg_written    message bytes written since the last (re)connect:
     *                  > 0 means the peer may hold part of the head
     *                  message (conn_lost drops the rest of it);
     *   in_msg         a message is being queued frame by frame: its first
     *                  frame is queued (or being queued), its last not yet;
     *   msg_start      while in_msg: that message's offset; its frames are
     *                  exactly the bytes [msg_start, enc_total), at the
     *                  back of out (commands wait in `deferred` meanwhile);
     *   ends[]         ring of [start, end) offsets of the whole messages
     *                  not yet written in full, oldest first: ends_n is
     *                  what SNDHWM counts.  conn_begin_msg reserves the
     *                  slot of a message at its first frame, so ending a
     *                  message (conn_end_msg) never fails.
     *
     * Invariant between engine calls: hs_left <= out.bytes;
     * written_total <= conn_sent_offset <= enc_total; every ends[i].end <=
     * enc_total and ends[i].start < ends[i].end; and !in_msg, or
     * msg_start >= the end of every span and enc_total - msg_start <=
     * out.bytes - hs_left (none of the message is written) unless the
     * message is being written while it is queued.  A failed frame cuts
     * [msg_start, enc_total) (conn_abort_msg), or drops the connection
     * when part of it is already written, so a peer never gets part of a
     * message.
     */
    zm_outq out;
    size_t hs_left;         /* bytes of our handshake at the front of out */
    zm_wbuf hs_held;        /* the rest of our greeting and the mechanism's
                               first commands, held until the peer's first
                               ZM_GREETING_STAGE octets arrived (as libzmq:
                               engine_conn.c, conn_greeting_stage) */
    size_t hs_rx;           /* octets received while hs_held waits */
    uint64_t msg_written;
    uint64_t enc_total;
    uint64_t written_total;
    uint64_t msg_start;
    int in_msg;
    struct zm_span { uint64_t start, end; } *ends;
    size_t ends_cap, ends_head, ends_n;
    /* input */
    zm_msgq inq;
    struct zm_sock *sock;   /* the socket it belongs to: its input list
                               (zm_sock.in_head) holds this connection
                               while inq is not empty (engine_int.h,
                               zm_route_queue_in and conn_pop) */
    struct zm_conn *in_next, *in_prev; /* in the socket's input list */
    int in_listed;
    /* the peer's routing id (ROUTER) */
    unsigned char rid[255];
    size_t rid_len;
    int rid_fixed;          /* CONNECT_ROUTING_ID gave rid: kept at admission */
    struct zm_conn *rid_hnext; /* in zm_sock.rid_tab's chain of its id */
    int rid_hashed;         /* rid is in zm_sock.rid_tab */
    /* PUB/XPUB: the topics this peer subscribed to (a set) */
    zm_subs subs;
    zm_wbuf deferred;       /* commands waiting for a message's last frame */
    uint32_t zap_id;        /* a ZAP request for it is out (engine_zap.c) */
    zm_page *props;         /* the connection's properties, as libzmq gives
                               them to its messages (Frame.get): a property
                               list, refcounted (its messages' Frames hold
                               it), built at admission (conn_build_props);
                               during the handshake ZAP's part, or NULL */
    int hs_event_sent;      /* a HANDSHAKE_FAILED_* event already went out */
    int hs_slot;            /* an accepted connection in its handshake,
                               counted in zm_sock.hs_accepted */
    int64_t last_write_ns;  /* last sendmsg of messages (coalescing) */
    int64_t flush_at_ns;    /* held-back output must go by then (0: none) */
    int lost_errno;         /* why the transport failed (0: EOF or unknown) */
    int rset_reg;           /* fd is in the socket's readiness set
                               (zm_sock.rset_fd, engine.c) */
    int idle_in;            /* set around one zm_conn_step by the step that
                               found fd not readable in the readiness set:
                               conn_read decodes what it holds but makes
                               no recv (that would only say EAGAIN) */
    /* Many peers (engine.c, "The step list"): the connections a step
     * visits.  Every connection not in the readiness set is on it; one in
     * the set only while it may have something to do (reported readable,
     * output queued, bytes in its decoder, a timer due); a quiet one waits
     * off it, its next timer in the socket's timer heap. */
    struct zm_conn *hot_next, *hot_prev;
    int hot;                /* on zm_sock.hot */
    int rset_ready;         /* the readiness set reported it this step */
    zm_heap_item theap;     /* its place in zm_sock.theap (timer: .at) */
    /* inproc: the pipe instead of fd, decoder and output queue */
    int inproc;             /* an inproc connection (for good) */
    zm_pipe *pipe;          /* NULL for tcp/ipc, and once detached */
    int pipe_end;           /* 0: we connected, 1: we bound */
    zm_msg pipe_out;        /* the message being sent frame by frame */
    /* STREAM (zm_route_raw): no greeting and no framing; ACTIVE from the
     * connect or accept on, reads become [bytes] messages (raw_page holds
     * them), writes are the data as sent.  raw_closing: the application
     * closed it (an empty frame): the output goes, then the descriptor,
     * with no disconnect notification and no redial.  After the per-
     * message fields: read once per step, they move none of them. */
    int raw;
    int raw_closing;
    zm_page *raw_page;
    /* the handshake after the greeting (tcp/ipc); last, with the other
     * cold fields, so that it moves none of the per-message ones */
    zm_mech mech;
    /* A mechanism that seals frames (CURVE), once ACTIVE: `out` keeps
     * plain ZMTP frames (all the offsets above count them); zm_conn_write
     * seals whole messages from its front into the hs_left region just
     * before writing them, so sealed bytes count as written.  `unsealed`
     * holds the frames of a message being received, opened. */
    int sealed;
    zm_msg unsealed;
} zm_conn;

typedef struct zm_listener {
    struct zm_listener *next;
    int fd;
    int pending;           /* the descriptor was reported readable */
    int64_t next_try_ns;   /* accept anyway from then on (a busy owner) */
    zm_addr addr;
    int caller_fd;         /* USE_FD: the caller made it; an ipc path is
                              left in place at close (libzmq) */
    zm_sockopts tcp;       /* the socket's at bind(): what every accepted
                              descriptor gets (libzmq's listener copy) */
    char endpoint[ZM_ENDPOINT_MAX];
} zm_listener;

/* Counters of what happened to a socket's connections. */
typedef struct zm_sock_stats {
    uint64_t accepted;
    uint64_t connected;
    uint64_t disconnected;
    uint64_t handshake_failed;           /* bad greeting/READY/socket type */
    uint64_t protocol_errors[ZM_ERR_COUNT_]; /* by codec error code */
    uint64_t dropped_msgs;               /* unroutable or lost at close */
    uint64_t subs_refused;               /* over a peer's subscription budget */
    uint64_t handshake_timeouts;         /* closed by HANDSHAKE_IVL */
    uint64_t heartbeat_timeouts;         /* closed: no traffic after a PING
                                            or past the peer's TTL */
    uint64_t monitor_dropped;            /* events the monitor had no room for */
    uint64_t progress_steps;             /* full steps (reads, accepts,
                                            timers) taken by the progress
                                            thread for an owner away */
    uint64_t accepts_paused;             /* times accepting stopped: as many
                                            accepted connections as
                                            ZM_HANDSHAKES_MAX were still in
                                            their handshake */
} zm_sock_stats;

/* Add n to a zm_sock_stats counter.  Written only by whoever holds the
 * socket (its owner's call or the progress thread's step: one writer at a
 * time), read by Socket.stats() from any thread without taking the socket
 * (zm_sock_stats_read).  Relaxed atomics: a reader sees no torn value and
 * needs no ordering (each counter only grows); the single writer needs no
 * locked add. */
#define ZM_STAT_ADD(field, n)                                              \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) \
                     + (uint64_t)(n), __ATOMIC_RELAXED)

/* Copy every counter (each with a relaxed load; see ZM_STAT_ADD). */
ZM_INLINE void zm_sock_stats_read(const zm_sock_stats *src, zm_sock_stats *out)
{
    const uint64_t *from = (const uint64_t *)src;
    uint64_t *to = (uint64_t *)out;

    _Static_assert(sizeof(zm_sock_stats) % sizeof(uint64_t) == 0,
                   "zm_sock_stats holds uint64_t counters only");
    for (size_t i = 0; i < sizeof(zm_sock_stats) / sizeof(uint64_t); i++)
        to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
}

typedef struct zm_sock {
    int type;
    /* options */
    int sndhwm, rcvhwm;          /* messages per peer, 0 = no limit */
    int64_t maxmsgsize;          /* per frame, -1 = no limit */
    int router_mandatory;
    int stream_notify;           /* STREAM: [id, empty] at connect and at
                                    disconnect (libzmq's default 1) */
    int reconnect_ivl_ms;        /* -1: never redial */
    int reconnect_ivl_max_ms;    /* backoff cap; 0: no backoff */
    int handshake_ivl_ms;        /* 0: no handshake time limit */
    int heartbeat_ivl_ms;        /* 0: no PINGs */
    int heartbeat_ttl_ms;        /* TTL announced in our PINGs */
    int heartbeat_timeout_ms;    /* -1: same as heartbeat_ivl_ms */
    int immediate;               /* queue only to completed connections */
    size_t read_buf_size;
    size_t write_buf_size;       /* coalescing: write once this much waits */
    int coalesce;                /* set by the caller for each send: this
                                    send follows a send on this socket with
                                    no other call in between (a burst) */
    int in_call;                 /* set by the binding while its owner's
                                    call holds the socket (0 while the
                                    progress thread steps it) */
    int hold;                    /* send_buffered/send_batch: hold output
                                    until flush, write_buf_size or
                                    ZM_HOLD_NS, not just ZM_COALESCE_NS */
    zm_page *send_page;          /* set around zm_sock_send by a caller whose
                                    frame lies in this page (the proxy, a
                                    received frame): one of ZM_SEND_REF_MIN
                                    bytes or more is queued by reference,
                                    not copied (borrowed; NULL: copy) */
    int auto_write;              /* BufferConfig.auto(): write_buf_size
                                    follows the sizes sent */
    uint64_t avg_msg;            /* EWMA of message sizes sent (auto) */
    int64_t now_ns;              /* one clock reading shared by a call's
                                    sends (0: none yet); the caller clears
                                    it at each call and after each wait */
    size_t max_frames;
    unsigned char routing_id[255];
    size_t routing_id_len;
    char last_endpoint[ZM_ENDPOINT_MAX];
    /* transport options (libzmq's; see zm_sockopts in transport.h) */
    zm_sockopts tcp;             /* copied by each bind and connect: set
                                    later, they apply to later binds and
                                    connects only (as libzmq) */
    int connect_timeout_ms;      /* CONNECT_TIMEOUT: a tcp dial not done by
                                    then is closed and redialled; 0: the
                                    kernel's own time-out */
    int use_fd;                  /* USE_FD: bind listens on this descriptor
                                    the caller made (-1: none) */
    uint64_t affinity;           /* AFFINITY: kept, read back, no effect */

    zm_listener *listeners;
    zm_conn *conns;
    zm_conn *conns_tail;         /* its last: a new connection is appended */
    zm_conn *rr;                 /* round-robin cursor (next to try) */

    /* a message being sent frame by frame */
    int out_more;                /* inside a multipart send */
    int out_drop;                /* rest of that message is dropped */
    zm_conn *out_conn;

    /* REQ: 0 may send, 1 awaits the reply from req_peer */
    int req_waiting;
    zm_conn *req_peer;
    /* REP: 1 after a request was received, until the reply is sent */
    int rep_replying;
    zm_conn *rep_peer;
    zm_msg rep_envelope;

    uint32_t next_rid;           /* generated ROUTER ids: 0x00 + counter */
    zm_conn **rid_tab;           /* ROUTER: connections by routing id, a
                                    hash table of chains (engine_route.c,
                                    find_rid); NULL: none yet */
    size_t rid_tab_cap, rid_tab_n; /* buckets (a power of two), ids in it */
    int rid_linear;              /* the table could not grow: find_rid
                                    walks the connections */

    /* publish-subscribe */
    zm_subs subs;                /* SUB/XSUB: ours (counted); XPUB: peers
                                    per topic */
    int xpub_verbose;            /* XPUB: pass every subscription up */
    zm_msgq xpub_q;              /* XPUB: subscription messages to recv */
    zm_conn **targets;           /* PUB/XPUB/XSUB: peers of the message
                                    being sent */
    size_t ntargets, cap_targets;
    size_t peer_max_sub_nodes;   /* budget of each peer's trie */
    int64_t fanout_step_ns;      /* PUB/XPUB: next I/O step from send() */
    zm_page *pubpage;            /* fan-out: frames are encoded here once and
                                    every target's queue references them */
    zm_page *send_ref;           /* during zm_sock_send_ref only: the page
                                    holding the frame's bytes (queued by
                                    reference, not copied) */

    /* monitor: events written as ZMTP to one end of a socketpair whose
     * other end is a PAIR socket's connection (zm_sock_adopt) */
    int mon_fd;                  /* -1: not monitored */
    unsigned mon_events;         /* ZM_EVENT_* mask */
    zm_outq mon_out;             /* encoded events the kernel has not taken */

    /* inproc: made at the first bind or connect to inproc:// */
    zm_mailbox *mb;
    uint64_t mb_seen;            /* mb's seq when the last step began */
    zm_inbox_item *adopt_later;  /* offered pipes not adopted yet (out of
                                    memory at the last step) */
    int notify_fd;               /* Socket.fileno() was asked for: mb's
                                    eventfd stays armed between calls and
                                    the progress thread signals it */
    unsigned fd_gen;             /* bumped whenever the engine opens a
                                    descriptor (accept, dial, bind, adopt,
                                    monitor): a number watched before may
                                    now name another file (loopset.c) */

    /* The readiness set (engine.c, "Many peers"): an epoll descriptor
     * holding the fds of ACTIVE tcp/ipc connections (level-triggered
     * EPOLLIN), made once ZM_RSET_MIN of them were stepped.  A step asks
     * it once (epoll_wait, no wait) which of them the kernel has bytes
     * for and reads only those; the blocking wait and the progress thread
     * watch it instead of each connection.  -1: none. */
    int rset_fd;
    size_t rset_n;               /* connections in it */
    size_t nio;                  /* ACTIVE tcp/ipc connections at the last
                                    full step */
    zm_conn *in_head, *in_tail;  /* those connections, in the fair-queue's
                                    order: a receive takes the head's
                                    message and moves it to the tail */
    zm_conn *hot;                /* the step list (zm_conn.hot_next) */
    zm_heap theap;               /* quiet connections by next timer
                                    (minheap.h, zm_conn.theap) */
    int hb_ivl_seen, hb_timeout_seen; /* the heartbeat options the quiet
                                    connections' timers were computed with */

    zm_sock_stats stats;
    /* Accepted connections in their handshake (zm_conn.hs_slot): at
     * hs_max the listeners are neither accepted from nor
     * watched until one finishes, fails or times out (HANDSHAKE_IVL). */
    size_t hs_accepted;
    size_t hs_max;               /* the cap: ZMTP_HANDSHAKES_MAX or
                                    ZM_HANDSHAKES_MAX (zm_sock_init) */
    int accept_paused;           /* at the cap since the last accept */

    /* Security: the mechanism of every tcp/ipc handshake (NULL: the NULL
     * mechanism) and its options; each connection starts from a copy with
     * Socket-Type and Identity filled in (mechanism.h).  Last: read once
     * per handshake, it moves none of the fields above. */
    const zm_mech_ops *mech_ops;
    zm_mech_config mech_cfg;
    /* PLAIN's client credentials (mech_cfg points here; the password is
     * wiped when the socket is destroyed). */
    unsigned char plain_username[255];
    unsigned char plain_password[255];
    /* ZAP (engine_zap.c): the pipe to the Context's handler, or NULL */
    zm_pipe *zap_pipe;
    uint32_t zap_next_id;
    char zap_domain[255];        /* ZAP_DOMAIN */
    size_t zap_domain_len;
    int zap_enforce_domain;      /* ZAP_ENFORCE_DOMAIN: NULL with a domain
                                    and no handler refuses (mech_null.c);
                                    no effect on PLAIN and CURVE (libzmq) */
    zm_page *recv_props;         /* the props of the connection the last
                                    zm_sock_recv took from (borrowed: take a
                                    reference before the next step) */

    /* Pattern options (libzmq's, docs/options.md), cold: read once per
     * message at most, never per frame on the fan-out path. */
    int conflate;                /* CONFLATE as set (getsockopt) */
    int conflate_in;             /* its effect: a peer's input queue keeps
                                    only its newest message (DEALER, PULL,
                                    SUB: libzmq's conflating types) */
    int conflate_out;            /* and a new message replaces those queued
                                    for a tcp/ipc peer that no byte of has
                                    been written (DEALER, PUSH, PUB) */
    int req_correlate;           /* REQ_CORRELATE: requests carry req_id */
    int req_relaxed;             /* REQ_RELAXED: a new request may go
                                    before the reply */
    uint32_t req_id;             /* REQ_CORRELATE: the last request's id */
    int probe_router;            /* PROBE_ROUTER: an empty message to each
                                    new peer (ROUTER, DEALER, REQ) */
    int router_handover;         /* ROUTER_HANDOVER: a duplicate id takes
                                    the routing id over */
    unsigned char connect_rid[255]; /* CONNECT_ROUTING_ID: the next
                                    connect's peer gets it (ROUTER, STREAM) */
    size_t connect_rid_len;
    int xpub_verboser;           /* XPUB_VERBOSER: every cancel passed up */
    int xpub_nodrop;             /* XPUB_NODROP: EAGAIN, not a drop, at a
                                    subscriber's SNDHWM */
    int xpub_manual;             /* XPUB_MANUAL: the application subscribes
                                    peers (SUBSCRIBE on the XPUB) */
    zm_conn *xpub_last;          /* XPUB_MANUAL: the peer of the last
                                    subscription message received */
    zm_conn **xpub_from;         /* XPUB: the peer of each xpub_q message
                                    (NULL: none), a ring beside it */
    size_t xpub_from_cap, xpub_from_head, xpub_from_n;
    unsigned char *welcome;      /* XPUB_WELCOME_MSG (NULL: none) */
    size_t welcome_len;
    int invert_matching;         /* INVERT_MATCHING: PUB/XPUB send, SUB/XSUB
                                    keep what does NOT match */
    int only_first_subscribe;    /* ONLY_FIRST_SUBSCRIBE: a multipart message
                                    whose first frame is a subscription is
                                    one (XPUB: all its frames of that form;
                                    XSUB: that frame) */
    /* METADATA: "X-name:value" properties announced in every handshake
     * (mech_cfg.app_props points here); each allocated once, never moved
     * (a handshake's copy of mech_cfg keeps pointing at them), freed with
     * the socket. */
    zm_prop app_props[ZM_MECH_APP_PROPS_MAX];
    size_t app_nprops;
} zm_sock;

/* 0, or -EINVAL for a type this engine does not build yet. */
int zm_sock_init(zm_sock *s, int type);
/* Close every connection and listener (ipc paths are removed) and free. */
void zm_sock_destroy(zm_sock *s);

/* Bind or connect to `endpoint`, whose address the caller resolved first:
 * `parsed` is what zm_addr_parse(endpoint, for_bind, addr, ...) returned
 * (0, or -errno: then addr is not read and the failure is the result).
 * Resolution is the caller's step because it may block (getaddrinfo): the
 * binding runs it without the GIL.  0 or -errno. */
int zm_sock_bind(zm_sock *s, const char *endpoint, int parsed,
                 const zm_addr *addr);
int zm_sock_connect(zm_sock *s, const char *endpoint, int parsed,
                    const zm_addr *addr);
int zm_sock_unbind(zm_sock *s, const char *endpoint);
int zm_sock_disconnect(zm_sock *s, const char *endpoint);

/* inproc:// (the names are the context's business: zmtp/_inproc.py).
 * enable: make the mailbox (at bind); 0 or -errno.  connect: a pipe from
 * this socket, end 0 queued as a connection to `endpoint` until the binder
 * adopts end 1 (*peer: its reference; hand it to the binder's mailbox with
 * zm_mailbox_offer); 0 or -errno.  Offered pipes are adopted by
 * zm_sock_process.  (unbind only frees the name, as libzmq's inproc: the
 * pipes already joined stay.) */
int zm_sock_inproc_enable(zm_sock *s);
int zm_sock_inproc_connect(zm_sock *s, const char *endpoint, zm_pipe **peer);
/* The owner is about to block (wait_sockets): -1 when the socket has no
 * inproc, 0 to watch mb->efd, 1 when something happened since its last
 * step (do not sleep). */
int zm_sock_inproc_arm(zm_sock *s);
/* ZAP: a pipe to the Context's handler at inproc://zeromq.zap.01 (any
 * earlier one dropped); end 1 goes to the handler's mailbox as an inproc
 * connect's does.  0 or -errno. */
int zm_sock_zap_connect(zm_sock *s, zm_pipe **peer);

/* Send this socket's events in `events` to `fd` (a connected stream
 * socket, non-blocking; the engine owns it from now on), replacing any
 * monitor before (which gets MONITOR_STOPPED).  fd < 0 stops monitoring.
 * 0 or -ENOMEM. */
int zm_sock_monitor(zm_sock *s, int fd, unsigned events);

/* Take a connected stream socket (non-blocking; the engine owns it) as a
 * peer connection, as if accepted on `endpoint`: handshake, then traffic.
 * 0 or -ENOMEM. */
int zm_sock_adopt(zm_sock *s, int fd, const char *endpoint);

/* A wait reported `fd` ready: lets a step skip the accept() calls that
 * would only say EAGAIN (listeners are also tried every
 * ZM_ACCEPT_RETRY_NS without it, for owners that never wait). */
void zm_sock_io_ready(zm_sock *s, int fd);
#define ZM_ACCEPT_RETRY_NS ((int64_t)10000000) /* 10 ms */

/* Handshake floods (docs/security.md, "Handshake floods").  At most
 * ZM_HANDSHAKES_MAX accepted connections of a socket are in their
 * handshake at once: past it, new connections wait in the kernel's listen
 * backlog, unaccepted (no descriptor, no memory, no Curve25519 work),
 * until one finishes, fails or is closed by HANDSHAKE_IVL.  Until READY,
 * no frame may be larger than ZM_HANDSHAKE_FRAME_MAX (every handshake
 * command of NULL, PLAIN and CURVE is a few hundred octets; MAXMSGSIZE,
 * when smaller, still applies): a peer not yet authenticated never makes
 * the socket hold more than that (and a read page) on its behalf. */
#define ZM_HANDSHAKES_MAX ((size_t)1024)
#define ZM_HANDSHAKE_FRAME_MAX ((int64_t)65536)

/* The cap of a socket made now: the environment's ZMTP_HANDSHAKES_MAX
 * (1..1000000) when set, else ZM_HANDSHAKES_MAX. */
size_t zm_handshakes_max(void);

/* 1 while the socket may accept: fewer than s->hs_max accepted
 * connections are in their handshake (engine_conn.c).  The first time it
 * says 0 after having said 1, stats.accepts_paused is counted. */
int zm_sock_may_accept(zm_sock *s);

/* One non-blocking step of all I/O: accept, connect, read, decode, write,
 * redial when due.  `now_ns` is CLOCK_MONOTONIC. */
void zm_sock_process(zm_sock *s, int64_t now_ns);

/* A frame of at least this many bytes whose page the caller names
 * (zm_sock.send_page) joins an output queue or an inproc pipe by reference:
 * smaller ones are cheaper to copy than to queue as a segment of their
 * own, and would pin a whole read page each. */
#define ZM_SEND_REF_MIN ((size_t)8192)

/* Send one frame.  0, or -EAGAIN (no peer can take it now: wait and retry
 * the same frame), -ZM_EFSM (REQ/REP order), -EHOSTUNREACH (ROUTER_MANDATORY
 * and no such peer), -ENOTSUP (socket type cannot send). */
int zm_sock_send(zm_sock *s, const void *data, size_t n, int more);
/* zm_sock_send of a frame whose n bytes at `data` lie in the page `ref`
 * (an external page, arena.h: a caller's buffer; or a received frame's
 * read page): every connection it goes to queues a reference instead of a
 * copy (inproc peers get a frame of it).  The caller keeps its own
 * reference: the queues hold theirs until the bytes are written or the
 * queue is freed. */
int zm_sock_send_ref(zm_sock *s, zm_page *ref, const void *data, size_t n,
                     int more);

/* Take the next whole message.  0 with *out filled (the caller owns it)
 * and, for ROUTER, *prefix / *prefix_len set to the routing id to put
 * first; -EAGAIN when none; -ZM_EFSM (REQ/REP order); -ENOTSUP. */
int zm_sock_recv(zm_sock *s, zm_msg *out, const unsigned char **prefix,
                 size_t *prefix_len);

/* SUB/XSUB: subscribe (on=1) or unsubscribe to a topic; sent to every
 * connected publisher and replayed to later ones.  0, -ENOTSUP (other
 * types), -ENOMEM. */
int zm_sock_subscribe(zm_sock *s, const void *topic, size_t n, int on);

/* ZM_POLLIN / ZM_POLLOUT as they stand now (no I/O). */
int zm_sock_events(zm_sock *s);

/* Write coalescing: a message sent within ZM_COALESCE_NS of the last
 * write on its connection is held back (up to write_buf_size bytes) and
 * goes with the next write: the next send after the window, any blocking
 * call (which steps the socket first), or the progress thread at
 * flush_at_ns.  A send to a connection idle for longer goes at once. */
#define ZM_COALESCE_NS ((int64_t)30000) /* 30 us */
#define ZM_WRITE_BUF_DEFAULT ((size_t)65536)
#define ZM_HOLD_NS ((int64_t)1000000) /* buffered output goes within 1 ms */
/* Messages a connection decodes ahead of its owner's call: the owner takes
 * them next, so more only pushes the queue and the pages out of the CPU
 * cache before they are read (PUB -> SUB with RCVHWM 0 decoded 16 pages,
 * about 16 000 messages, at a time). The progress thread, which reads for
 * an owner that is away, still reads up to RCVHWM. */
#define ZM_READ_AHEAD ((size_t)512)

/* Write what coalescing holds back on connections due by `now` (all of it
 * when now < 0); returns the next flush deadline, or -1 when none. */
int64_t zm_sock_flush(zm_sock *s, int64_t now);
/* The earliest flush deadline of held-back output, or 0 when none (a
 * hint: with more than 64 connections on the step list, 1). */
int64_t zm_sock_flush_due(const zm_sock *s);

/* Bytes queued for peers that are still to be written. */
size_t zm_sock_pending_out(const zm_sock *s);

/* What to wait for: calls watch(fd, ZM_IO_IN|ZM_IO_OUT mask, ctx) for each
 * descriptor that needs it, and returns the next timer deadline
 * (CLOCK_MONOTONIC ns) or -1 when none. */
typedef int (*zm_watch_fn)(void *ctx, int fd, unsigned events);
int64_t zm_sock_watch(zm_sock *s, zm_watch_fn watch, void *ctx);
/* The part of zm_sock_watch for connections in traffic (ZM_CS_ACTIVE,
 * tcp/ipc) only, with the same interest: what an event loop's loop set
 * watches (loopset.h); listeners, dials, handshakes, the monitor and
 * timers are left to the progress thread. */
void zm_sock_watch_traffic(zm_sock *s, zm_watch_fn watch, void *ctx);

/* Write output the kernel could not take before (not what coalescing
 * holds back) and watch for room for the rest: the step the progress
 * thread may take on a socket its owner is busy with, since writing steals
 * nothing from the owner.  Returns how many descriptors were watched. */
int zm_sock_push_output(zm_sock *s, int64_t now, zm_watch_fn watch, void *ctx);

/* True when a socket of type `a` may talk to one of type `b` (RFC 28-31). */
int zm_socktype_compatible(int a, int b);
/* "REQ", "ROUTER", ... or NULL. */
const char *zm_socktype_name(int type);

#endif /* ZMTP_ENGINE_H */
