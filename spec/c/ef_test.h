/* Minimal C unit-test harness: EF_TEST(name) { ... EF_CHECK(cond); ... }
 * Each binary prints one line per failed check and a final "ctest: P F". */
#ifndef EF_TEST_H
#define EF_TEST_H

#include <stdio.h>
#include <string.h>

static int s_tests_passed;
static int s_tests_failed;
static int s_current_failed;

#define EF_CHECK(cond)                                                        \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                   \
            s_current_failed = 1;                                             \
        }                                                                     \
    } while (0)

#define EF_CHECK_STR(a, b) EF_CHECK(strcmp((a), (b)) == 0)

#define EF_RUN(fn)                                                            \
    do {                                                                      \
        s_current_failed = 0;                                                 \
        fn();                                                                 \
        if (s_current_failed) {                                               \
            s_tests_failed++;                                                 \
            fprintf(stderr, "FAIL %s\n", #fn);                                \
        } else {                                                              \
            s_tests_passed++;                                                 \
        }                                                                     \
    } while (0)

#define EF_DONE()                                                             \
    (printf("ctest: %d %d\n", s_tests_passed, s_tests_failed),                \
     s_tests_failed ? 1 : 0)

#endif
