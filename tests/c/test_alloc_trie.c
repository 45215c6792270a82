/*
 * test_alloc_trie.c - the subscription trie under allocation failure
 * (tests/test_alloc_failure.py compiles and runs it).
 *
 * zm_subs_add of a topic that needs many new nodes is run with its N-th
 * allocation failing, for every N it makes: a failed add must leave the
 * trie exactly as it was (node count, topics, matches: no orphan node
 * counted against the budget), and the same add must then succeed.
 * Prints "ok ..." / "FAIL ..." lines; exit 0 or 1.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "trie.h"
#include "check.h"

static void count_cb(void *ctx, const unsigned char *topic, size_t n,
                     uint32_t count)
{
    (void)topic;
    (void)n;
    *(size_t *)ctx += count;
}

int main(void)
{
    unsigned char base[8] = "abcdefg";
    unsigned char topic[40];
    size_t budget = 7 + sizeof(topic) - 3; /* "abc" is shared with base */
    int swept = 0;

    memset(topic, 'x', sizeof(topic));
    memcpy(topic, "abc", 3);
    for (uint64_t nth = 1;; nth++) {
        zm_subs s;
        int64_t rc;
        size_t nodes, topics, counted = 0;
        uint64_t attempts, failed;

        zm_subs_init(&s, budget);
        CHECK(zm_subs_add(&s, base, 7) == 1, "base add");
        nodes = s.nodes;
        topics = s.topics;
        zm_alloc_fail_arm(1, nth, 1, 0, 0, 1);
        rc = zm_subs_add(&s, topic, sizeof(topic));
        zm_alloc_fail_counts(&attempts, &failed);
        zm_alloc_fail_arm(0, 0, 0, 0, 0, 0);
        if (failed == 0) {
            /* Past the last allocation: the add went through. */
            CHECK(rc == 1, "add without failure: %lld", (long long)rc);
            CHECK(s.nodes == budget, "nodes %zu, budget %zu", s.nodes, budget);
            zm_subs_clear(&s);
            break;
        }
        swept++;
        CHECK(rc == -ENOMEM, "nth %llu: rc %lld", (unsigned long long)nth,
              (long long)rc);
        CHECK(s.nodes == nodes, "nth %llu: %zu nodes after a failed add, "
              "%zu before (orphans)", (unsigned long long)nth, s.nodes, nodes);
        CHECK(s.topics == topics, "nth %llu: topics %zu, before %zu",
              (unsigned long long)nth, s.topics, topics);
        CHECK(!zm_subs_match(&s, topic, sizeof(topic)), "nth %llu: matches",
              (unsigned long long)nth);
        CHECK(zm_subs_match(&s, base, 7), "nth %llu: base lost",
              (unsigned long long)nth);
        zm_subs_apply(&s, count_cb, &counted);
        CHECK(counted == 1, "nth %llu: %zu subscriptions walked",
              (unsigned long long)nth, counted);
        /* The budget fits the topic exactly: orphans would refuse it. */
        rc = zm_subs_add(&s, topic, sizeof(topic));
        CHECK(rc == 1, "nth %llu: the add again: %lld",
              (unsigned long long)nth, (long long)rc);
        CHECK(zm_subs_rm(&s, topic, sizeof(topic)) == 0, "rm");
        CHECK(s.nodes == nodes, "nth %llu: %zu nodes after rm, %zu before",
              (unsigned long long)nth, s.nodes, nodes);
        zm_subs_clear(&s);
    }
    CHECK(swept >= (int)sizeof(topic) - 3, "only %d allocations swept", swept);
    if (failures == 0)
        printf("ok trie: %d failing allocations of an add swept\n", swept);
    return failures ? 1 : 0;
}
