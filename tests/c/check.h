/*
 * check.h - the check macro of the small C tests (test_alloc_trie.c,
 * test_mech.c, test_mech_conn.c): a failed check prints
 * "FAIL file:line: why" and counts in `failures`; the test goes on.
 * Included by those tests only (one translation unit each).
 */
#ifndef ZMTP_TESTS_CHECK_H
#define ZMTP_TESTS_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                      \
            printf(__VA_ARGS__);                                             \
            printf("\n");                                                    \
            failures++;                                                      \
        }                                                                    \
    } while (0)

#endif /* ZMTP_TESTS_CHECK_H */
