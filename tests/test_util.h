/* test_util.h - the shared CUnit harness: per-test runtime setup/teardown in
 * a child process, an order log, and assertions that print what they saw.
 *
 * A suite defines its tests with TU_TEST (runtime initialised before the
 * body, and after it: no live tasklet may be left, then sl_shutdown) or
 * TU_TEST_NOINIT (the body runs with no runtime), lists them with TU_CASE in
 * a CU_TestInfo array ending in CU_TEST_INFO_NULL, and its main() returns
 * tu_main(). Each test runs in a forked child so that a crash or a hang in
 * the runtime fails that test alone; the child's assertion results are
 * replayed in the parent, where CUnit reports them.
 *
 * Environment:
 *   SL_TEST_WORKERS       worker threads wanted (read and reported; 1 is
 *                         used for now, later suites run with 2)
 *   SL_TEST_STACK         fixed (default) or copy: sl_config.stack_mode of
 *                         the runtime each TU_TEST starts (the suites
 *                         again with copy stacks as the default)
 *   SL_TEST_CASE_TIMEOUT  seconds one test may take before it is killed
 *                         (default 60; ctest's own limit covers the suite)
 *   SL_TEST_NOFORK=1      run tests in-process (for gdb; name one test on
 *                         the command line: tests share static state then)
 *
 * Under valgrind (test.sh's valgrind stage) the forked children stay under
 * valgrind, and a child with a valgrind error exits with the stage's
 * --error-exitcode, which the parent reports as a failure of that test.
 *
 * Rules for test bodies: use CU_*_FATAL only on the main tasklet (a fatal
 * assertion longjmps, which must not leave a tasklet stack); plain
 * assertions work anywhere. */
#ifndef SL_TEST_UTIL_H
#define SL_TEST_UTIL_H

#include <CUnit/Basic.h>
#include <stdbool.h>
#include <stdint.h>

#include "stackless.h"

enum { TU_INIT = 0, TU_NOINIT = 1 };
/* flags >> TU_TIMEOUT_SHIFT: the case's own timeout in seconds (0: none). */
#define TU_TIMEOUT_SHIFT 8

typedef void (*tu_body_fn)(void);

/* Run body as one test, in a child process unless SL_TEST_NOFORK is set. */
void tu_run(tu_body_fn body, int flags);

#define TU__DEFINE(name, flags)                                              \
    static void name(void);                                                  \
    static void name##__case(void) { tu_run(name, (flags)); }                \
    static void name(void)
#define TU_TEST(name) TU__DEFINE(name, TU_INIT)
#define TU_TEST_NOINIT(name) TU__DEFINE(name, TU_NOINIT)
/* The same with a timeout of their own, for cases whose failure is a hang:
 * the case is killed after the smaller of secs and SL_TEST_CASE_TIMEOUT
 * (secs x 10 under valgrind), so a hang costs seconds, not a minute. */
#define TU_TEST_TIMEOUT(name, secs)                                          \
    TU__DEFINE(name, TU_INIT | ((secs) << TU_TIMEOUT_SHIFT))
#define TU_TEST_NOINIT_TIMEOUT(name, secs)                                   \
    TU__DEFINE(name, TU_NOINIT | ((secs) << TU_TIMEOUT_SHIFT))
#define TU_CASE(name) { #name, name##__case }

/* Register one suite, run it (all tests, or only argv[1] when given) with
 * CU_basic_run_tests in verbose mode, print CUnit's summary; 0 when every
 * test passed, 1 otherwise. */
int tu_main(int argc, char **argv, const char *suite, CU_TestInfo *tests);

/* SL_TEST_WORKERS, or 1 when unset; a bad value is reported and gives 1. */
int tu_workers(void);
/* SL_TEST_STACK as SL_STACK_FIXED or SL_STACK_COPY (fixed when unset). */
int tu_stack_mode(void);

/* For rules that hold only with one worker (Stackless's exact deadlock
 * rules; with several workers quiescence decides, tested in test_mn.c):
 * the test says so and passes without running when SL_TEST_WORKERS > 1. */
#define TU_ONE_WORKER_ONLY()                                                 \
    do {                                                                     \
        if (tu_workers() > 1) {                                              \
            printf("(one worker only) ");                                    \
            return;                                                          \
        }                                                                    \
    } while (0)

/* The converse, for tests of what only happens across workers: the test
 * says so and passes without running when the runtime has one worker (the
 * *_w2 ctest entries run them). Needs a runtime (TU_TEST). */
#define TU_MULTI_WORKER_ONLY()                                               \
    do {                                                                     \
        if (sl_worker_count() < 2) {                                         \
            printf("(two workers or more only) ");                           \
            return;                                                          \
        }                                                                    \
    } while (0)

/* Run fn(arg) in a forked child whose stderr is captured into err (at most
 * cap - 1 bytes, NUL-ended); the child exits 0 when fn returns. Returns
 * the child's wait status (-1 if it could not start): for tests of what
 * aborts, such as overflow reports and misuse checks. */
int tu_child_stderr(void (*fn)(void *), void *arg, char *err, size_t cap);

/* True when the test runs under valgrind (RUNNING_ON_VALGRIND; false when
 * the suite was built without <valgrind/valgrind.h>). Tests with many live
 * tasklets use it to scale their sizes down, never to skip assertions:
 * valgrind looks each switch's new stack up in a linear list of registered
 * stacks, so a switch costs O(stacks carved), and its own memory counts
 * against RLIMIT_AS. TU_SIZE(native, valgrind) picks one of two sizes. */
bool tu_under_valgrind(void);
#define TU_SIZE(native, under_valgrind)                                      \
    (tu_under_valgrind() ? (under_valgrind) : (native))

/* True in a ThreadSanitizer build (5-15x slower, more on a loaded
 * machine). TU_TSAN_SIZE(native, smaller) picks the smaller size there and
 * under valgrind, for stress loops whose size is not what they check. */
bool tu_under_tsan(void);
#define TU_TSAN_SIZE(native, smaller)                                        \
    (tu_under_tsan() || tu_under_valgrind() ? (smaller) : (native))

/* CLOCK_MONOTONIC in nanoseconds (the runtime's clock, sl_now_ms's). */
int64_t tu_now_ns(void);

/* ---- order log: tasklets append characters, tests compare the string ---- */

void tu_log_reset(void);
void tu_log_putc(char c);
const char *tu_log(void);
#define TU_ASSERT_LOG(expected) tu__assert_log((expected), __LINE__, __FILE__)
void tu__assert_log(const char *expected, unsigned line, const char *file);

/* ---- assertions that show the values (and SL_E* names) they compared ---- */

#define TU_EQ(actual, expected)                                              \
    tu__assert_eq((long long)(actual), (long long)(expected), #actual,       \
                  #expected, __LINE__, __FILE__)
bool tu__assert_eq(long long actual, long long expected, const char *a_src,
                   const char *e_src, unsigned line, const char *file);

/* "SL_EKILLED" for an SL_E* value, NULL otherwise (from SL_ERRNO_MAP, so it
 * does not depend on the library's sl_err_name). */
const char *tu_code_name(long long v);

/* alive, scheduled, blocked, paused: the four predicates in one line. */
#define TU_ASSERT_STATE(t, alive, scheduled, blocked, paused)                \
    do {                                                                     \
        TU_EQ(sl_tasklet_alive(t), (alive));                                 \
        TU_EQ(sl_tasklet_scheduled(t), (scheduled));                         \
        TU_EQ(sl_tasklet_blocked(t), (blocked));                             \
        TU_EQ(sl_tasklet_paused(t), (paused));                               \
    } while (0)

/* Messages cross the channel as void *: these make integers out of them. */
#define TU_MSG(i) ((void *)(intptr_t)(i))
#define TU_INT(p) ((intptr_t)(p))

#endif /* SL_TEST_UTIL_H */
