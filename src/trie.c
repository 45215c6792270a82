/*
 * trie.c - the subscription trie (see trie.h): add, remove, count, match
 * and apply, each without recursion.
 *
 * Layering: calls common.h only (see trie.h for its one user, the engine).
 */
#include "trie.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void zm_subs_init(zm_subs *s, size_t max_nodes)
{
    memset(s, 0, sizeof(*s));
    s->max_nodes = max_nodes;
}

/* Free every node below `top` without recursion (a topic may be as long as
 * a frame, so the depth is the peer's choice): each node is unlinked from
 * its parent's last slot and its own children are taken first. */
static void node_free_children(zm_trie_node *top)
{
    zm_trie_node *node = top;
    zm_trie_node **stack = NULL;
    size_t depth = 0, cap = 0;

    for (;;) {
        if (node->n > 0) {
            zm_trie_node *kid = node->kids[node->n - 1];
            if (depth == cap) {
                zm_trie_node **ns = zm_grow(stack, &cap, NULL, depth,
                                            depth + 1, sizeof(*ns), 64);
                if (ns == NULL)
                    break; /* leak rather than recurse; out of memory */
                stack = ns;
            }
            stack[depth++] = node;
            node = kid;
            continue;
        }
        free(node->keys);
        free(node->kids);
        if (node == top) {
            node->keys = NULL;
            node->kids = NULL;
            node->n = node->cap = 0;
            break;
        }
        free(node);
        node = stack[--depth];
        node->n--; /* the child just freed was its last */
    }
    free(stack);
}

void zm_subs_clear(zm_subs *s)
{
    size_t max = s->max_nodes;

    node_free_children(&s->root);
    zm_subs_init(s, max);
}

/* Index of key among node's children, or where it would go (*found 0). */
static uint16_t child_index(const zm_trie_node *node, unsigned char key,
                            int *found)
{
    uint16_t lo = 0, hi = node->n;

    while (lo < hi) {
        uint16_t mid = (uint16_t)((lo + hi) / 2);
        if (node->keys[mid] < key)
            lo = (uint16_t)(mid + 1);
        else
            hi = mid;
    }
    *found = lo < node->n && node->keys[lo] == key;
    return lo;
}

static zm_trie_node *child(const zm_trie_node *node, unsigned char key)
{
    int found;
    uint16_t i = child_index(node, key, &found);
    return found ? node->kids[i] : NULL;
}

/* Room for one more child: 0, or -ENOMEM with the children unchanged
 * (an array that did grow keeps its old contents and is merely larger). */
static int node_reserve(zm_trie_node *node)
{
    size_t kcap = node->cap, ccap = node->cap;
    unsigned char *keys;
    zm_trie_node **kids;

    if (node->n < node->cap)
        return 0;
    /* At most 256 children (one per byte): 2, 4, ... 256 fits uint16. */
    keys = zm_grow(node->keys, &kcap, NULL, node->n, (size_t)node->n + 1,
                   1, 2);
    if (keys == NULL)
        return -ENOMEM;
    node->keys = keys;
    kids = zm_grow(node->kids, &ccap, NULL, node->n, (size_t)node->n + 1,
                   sizeof(*kids), 2);
    if (kids == NULL)
        return -ENOMEM;
    node->kids = kids;
    node->cap = (uint16_t)kcap;
    return 0;
}

/* Free a chain built by zm_subs_add and never linked (one child each). */
static void chain_free(zm_trie_node *node)
{
    while (node != NULL) {
        zm_trie_node *next = node->n > 0 ? node->kids[0] : NULL;
        free(node->keys);
        free(node->kids);
        free(node);
        node = next;
    }
}

int64_t zm_subs_add(zm_subs *s, const unsigned char *topic, size_t n)
{
    zm_trie_node *node = &s->root, *top = NULL, *leaf = NULL;
    size_t missing = 0, i, k;
    int found;
    uint16_t at;

    /* Find where the topic leaves the trie and count the nodes this add
     * would create before creating any. */
    for (i = 0; i < n; i++) {
        zm_trie_node *next = child(node, topic[i]);
        if (next == NULL) {
            missing = n - i;
            break;
        }
        node = next;
    }
    if (missing == 0) {
        if (node->count == UINT32_MAX)
            return -ENOSPC;
        if (node->count++ == 0)
            s->topics++;
        return node->count;
    }
    if (s->max_nodes > 0 && s->nodes + missing > s->max_nodes)
        return -ENOSPC;
    /* The missing nodes are built aside, deepest first, and linked to the
     * trie last, in one step that cannot fail: an allocation that fails
     * half-way frees the part built and leaves the trie as it was (no
     * orphan node counts against the budget). */
    for (k = n; k-- > i;) {
        zm_trie_node *fresh = zm_calloc(1, sizeof(*fresh));
        if (fresh == NULL)
            goto nomem;
        if (top != NULL) {
            if (node_reserve(fresh) < 0) {
                free(fresh);
                goto nomem;
            }
            fresh->keys[0] = topic[k + 1];
            fresh->kids[0] = top;
            fresh->n = 1;
        } else {
            leaf = fresh;
        }
        top = fresh;
    }
    if (node_reserve(node) < 0)
        goto nomem;
    at = child_index(node, topic[i], &found);
    memmove(node->keys + at + 1, node->keys + at, (size_t)(node->n - at));
    memmove(node->kids + at + 1, node->kids + at,
            (size_t)(node->n - at) * sizeof(*node->kids));
    node->keys[at] = topic[i];
    node->kids[at] = top;
    node->n++;
    s->nodes += missing;
    leaf->count = 1;
    s->topics++;
    return 1;
nomem:
    chain_free(top);
    return -ENOMEM;
}

int64_t zm_subs_rm(zm_subs *s, const unsigned char *topic, size_t n)
{
    zm_trie_node *node = &s->root;
    zm_trie_node **path;
    uint32_t left;
    size_t i;

    for (i = 0; i < n && node != NULL; i++)
        node = child(node, topic[i]);
    if (node == NULL || node->count == 0)
        return -ENOENT;
    left = --node->count;
    if (left > 0)
        return left;
    s->topics--;
    if (node->n > 0 || n == 0)
        return 0;
    /* Prune the nodes the topic alone kept alive, deepest first. */
    path = zm_malloc((n + 1) * sizeof(*path));
    if (path == NULL)
        return 0; /* keep the nodes; still correct, only larger */
    path[0] = &s->root;
    for (i = 0; i < n; i++)
        path[i + 1] = child(path[i], topic[i]);
    for (i = n; i > 0; i--) {
        zm_trie_node *cur = path[i], *parent = path[i - 1];
        int found;
        uint16_t at;
        if (cur->count > 0 || cur->n > 0)
            break;
        at = child_index(parent, topic[i - 1], &found);
        memmove(parent->keys + at, parent->keys + at + 1,
                (size_t)(parent->n - at - 1));
        memmove(parent->kids + at, parent->kids + at + 1,
                (size_t)(parent->n - at - 1) * sizeof(*parent->kids));
        parent->n--;
        free(cur->keys);
        free(cur->kids);
        free(cur);
        s->nodes--;
    }
    free(path);
    return 0;
}

uint32_t zm_subs_count(const zm_subs *s, const unsigned char *topic, size_t n)
{
    const zm_trie_node *node = &s->root;

    for (size_t i = 0; i < n && node != NULL; i++)
        node = child(node, topic[i]);
    return node != NULL ? node->count : 0;
}

int zm_subs_match(const zm_subs *s, const unsigned char *data, size_t n)
{
    const zm_trie_node *node = &s->root;

    for (size_t i = 0;; i++) {
        if (node->count > 0)
            return 1;
        if (i == n)
            return 0;
        node = child(node, data[i]);
        if (node == NULL)
            return 0;
    }
}

int zm_subs_apply(const zm_subs *s, zm_subs_fn fn, void *ctx)
{
    /* Iterative depth-first walk: stack[d] is the node at depth d and
     * next[d] the index of its next child to visit; buf[0..d) the topic. */
    const zm_trie_node **stack = NULL;
    uint32_t *next = NULL;
    unsigned char *buf = NULL;
    size_t depth = 0, cap = 0;
    int rc = 0;

    if (s->root.count > 0)
        fn(ctx, (const unsigned char *)"", 0, s->root.count);
    cap = 64;
    stack = zm_malloc(cap * sizeof(*stack));
    next = zm_malloc(cap * sizeof(*next));
    buf = zm_malloc(cap);
    if (stack == NULL || next == NULL || buf == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    stack[0] = &s->root;
    next[0] = 0;
    for (;;) {
        const zm_trie_node *node = stack[depth];
        const zm_trie_node *kid;
        if (next[depth] >= node->n) {
            if (depth == 0)
                break;
            depth--;
            continue;
        }
        kid = node->kids[next[depth]];
        buf[depth] = node->keys[next[depth]];
        next[depth]++;
        if (depth + 1 >= cap) {
            /* Three arrays of the same capacity: each grows from `cap`,
             * which moves on only once all three have. */
            size_t c1 = cap, c2 = cap, c3 = cap;
            const zm_trie_node **a;
            uint32_t *b;
            unsigned char *c;
            a = zm_grow(stack, &c1, NULL, depth + 1, cap + 1, sizeof(*stack), 64);
            if (a == NULL) {
                rc = -ENOMEM;
                goto done;
            }
            stack = a;
            b = zm_grow(next, &c2, NULL, depth + 1, cap + 1, sizeof(*next), 64);
            if (b == NULL) {
                rc = -ENOMEM;
                goto done;
            }
            next = b;
            c = zm_grow(buf, &c3, NULL, depth, cap + 1, 1, 64);
            if (c == NULL) {
                rc = -ENOMEM;
                goto done;
            }
            buf = c;
            cap = c1;
        }
        depth++;
        stack[depth] = kid;
        next[depth] = 0;
        if (kid->count > 0)
            fn(ctx, buf, depth, kid->count);
    }
done:
    free(stack);
    free(next);
    free(buf);
    return rc;
}
