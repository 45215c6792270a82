/*
 * trie.h - subscriptions: a byte trie with a count per topic and prefix
 * matching (PUB/XPUB per peer, SUB/XSUB per socket).
 *
 * Matching walks the message's first bytes down the trie: O(length of the
 * longest matching prefix), whatever the number of subscriptions.  Every
 * node is counted against a budget, so a peer cannot make it grow without
 * bound: an add that would pass the budget fails with -ENOSPC.
 *
 * Layering: calls common.h (allocation, zm_grow) only; no I/O, no Python,
 * no knowledge of sockets or messages (topics are bytes).  Used by the
 * engine's publish-subscribe code only; it must never call the engine.
 * Walks and frees are iterative (no recursion), so a topic as long as a
 * frame cannot exhaust the stack.
 */
#ifndef ZMTP_TRIE_H
#define ZMTP_TRIE_H

#include "common.h"

typedef struct zm_trie_node {
    uint32_t count;   /* subscriptions ending here */
    uint16_t n, cap;  /* children */
    unsigned char *keys;        /* n bytes, sorted */
    struct zm_trie_node **kids; /* n children */
} zm_trie_node;

typedef struct zm_subs {
    zm_trie_node root;
    size_t nodes;     /* nodes below the root */
    size_t max_nodes; /* budget; 0 = no limit */
    size_t topics;    /* distinct topics with a count > 0 */
} zm_subs;

#define ZM_SUBS_MAX_NODES_DEFAULT ((size_t)1 << 16)

void zm_subs_init(zm_subs *s, size_t max_nodes);
void zm_subs_clear(zm_subs *s);

/* Count one more subscription to topic: the new count (>= 1), or -ENOSPC
 * (budget) / -ENOMEM; nothing changes on failure. */
int64_t zm_subs_add(zm_subs *s, const unsigned char *topic, size_t n);

/* Count one fewer: the remaining count (>= 0), or -ENOENT when the topic
 * is not subscribed.  Nodes left unused are freed. */
int64_t zm_subs_rm(zm_subs *s, const unsigned char *topic, size_t n);

/* The count of exactly this topic. */
uint32_t zm_subs_count(const zm_subs *s, const unsigned char *topic, size_t n);

/* 1 when some subscribed topic is a prefix of data[0..n). */
int zm_subs_match(const zm_subs *s, const unsigned char *data, size_t n);

/* Call fn(ctx, topic, len, count) for every topic with a count; 0 or
 * -ENOMEM.  The topic buffer is only valid during the call. */
typedef void (*zm_subs_fn)(void *ctx, const unsigned char *topic, size_t n,
                           uint32_t count);
int zm_subs_apply(const zm_subs *s, zm_subs_fn fn, void *ctx);

#endif /* ZMTP_TRIE_H */
