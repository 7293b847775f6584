/* test_util.c - the shared CUnit harness: fork-per-test runner, runtime
 * setup/teardown, order log and value-printing assertions. */
#define _GNU_SOURCE
#include "test_util.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TU_HAVE_VALGRIND 1
#endif
#endif
#ifndef TU_HAVE_VALGRIND
#define TU_HAVE_VALGRIND 0
#endif

/* ---- environment ------------------------------------------------------- */

static long env_long(const char *name, long dflt, long min)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return dflt;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min) {
        fprintf(stderr, "test: ignoring %s=\"%s\" (want an integer >= %ld)\n",
                name, s, min);
        return dflt;
    }
    return v;
}

int tu_workers(void)
{
    return (int)env_long("SL_TEST_WORKERS", 1, 1);
}

int tu_stack_mode(void)
{
    const char *s = getenv("SL_TEST_STACK");
    if (s == NULL || *s == '\0' || strcmp(s, "fixed") == 0)
        return SL_STACK_FIXED;
    if (strcmp(s, "copy") == 0)
        return SL_STACK_COPY;
    fprintf(stderr, "test: ignoring SL_TEST_STACK=\"%s\" (fixed or copy)\n", s);
    return SL_STACK_FIXED;
}

#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer's defaults for the suites (TSAN_OPTIONS still wins):
 * no second of sleep at exit (atexit_sleep_ms, default 1000), which every
 * forked test case paid, about 450 s per run of the TSan tree. That sleep
 * waits for threads still running at exit; a case's child exits after
 * sl_shutdown has joined the runtime's threads. */
const char *__tsan_default_options(void);
__attribute__((used, visibility("default"))) const char *
__tsan_default_options(void)
{
    return "atexit_sleep_ms=0";
}
#endif

bool tu_under_tsan(void)
{
#if defined(__SANITIZE_THREAD__)
    return true;
#else
    return false;
#endif
}

bool tu_under_valgrind(void)
{
#if TU_HAVE_VALGRIND
    return RUNNING_ON_VALGRIND != 0;
#else
    return false;
#endif
}

static bool nofork(void)
{
    return env_long("SL_TEST_NOFORK", 0, 0) != 0;
}

/* ---- order log --------------------------------------------------------- */

static char log_buf[1 << 16];
static size_t log_len;

void tu_log_reset(void)
{
    log_len = 0;
    log_buf[0] = '\0';
}

void tu_log_putc(char c)
{
    if (log_len + 1 < sizeof log_buf)
        log_buf[log_len++] = c;
    else
        log_buf[sizeof log_buf - 2] = '!'; /* overflow marker */
    log_buf[log_len] = '\0';
}

const char *tu_log(void)
{
    return log_buf;
}

void tu__assert_log(const char *expected, unsigned line, const char *file)
{
    char msg[512];
    bool ok = strcmp(log_buf, expected) == 0;
    snprintf(msg, sizeof msg, "order log is \"%.200s\", expected \"%.200s\"",
             log_buf, expected);
    CU_assertImplementation(ok, line, msg, file, "", CU_FALSE);
}

/* ---- assertions -------------------------------------------------------- */

const char *tu_code_name(long long v)
{
    switch (v) {
#define TU__NAME_CASE(name, value, msg) case name: return #name;
    SL_ERRNO_MAP(TU__NAME_CASE)
#undef TU__NAME_CASE
    default: return NULL;
    }
}

static void describe(char *buf, size_t n, long long v)
{
    const char *name = tu_code_name(v);
    if (name)
        snprintf(buf, n, "%s (%lld)", name, v);
    else
        snprintf(buf, n, "%lld", v);
}

bool tu__assert_eq(long long actual, long long expected, const char *a_src,
                   const char *e_src, unsigned line, const char *file)
{
    char a[64], e[64], msg[512];
    bool ok = actual == expected;
    describe(a, sizeof a, actual);
    describe(e, sizeof e, expected);
    snprintf(msg, sizeof msg, "%.180s == %.120s: got %s, expected %s",
             a_src, e_src, a, e);
    CU_assertImplementation(ok, line, msg, file, "", CU_FALSE);
    return ok;
}

int tu_child_stderr(void (*fn)(void *), void *arg, char *err, size_t cap)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        close(pfd[0]);
        dup2(pfd[1], 2);
        fn(arg);
        _exit(0);
    }
    close(pfd[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(pfd[0], err + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    err[n] = '\0';
    close(pfd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

/* ---- running one test -------------------------------------------------- */

static jmp_buf fatal_jump;

/* Setup, body, teardown, in this process. A fatal CUnit assertion in the
 * body lands on fatal_jump instead of CUnit's own buffer, so the teardown
 * still runs. */
static void run_here(tu_body_fn body, int flags)
{
    CU_pTest test = CU_get_current_test();
    jmp_buf *cunit_jump = test ? test->pJumpBuf : NULL;

    tu_log_reset();
    if (!(flags & TU_NOINIT)) {
        /* SL_TEST_WORKERS > 1: the same tests on several workers, with
         * stealing off so that tasklets stay on the worker that spawns or
         * wakes them and each worker's order is Stackless's exactly (the
         * mn suite tests stealing). */
        sl_config cfg;
        sl_config_init(&cfg);
        cfg.workers = tu_workers();
        cfg.steal = 0;
        cfg.stack_mode = tu_stack_mode();
        int rc = sl_init(&cfg);
        if (!TU_EQ(rc, 0))
            return;
    }
    if (test)
        test->pJumpBuf = &fatal_jump;
    if (setjmp(fatal_jump) == 0)
        body();
    if (test)
        test->pJumpBuf = cunit_jump;

    if (!(flags & TU_NOINIT)) {
        int live_tasklets_left_by_test = sl_getlivecount();
        TU_EQ(live_tasklets_left_by_test, 0);
        TU_EQ(sl_shutdown(), 0);
    } else if (sl_getruncount() != SL_ESTATE) {
        CU_FAIL("test left the runtime initialised");
        sl_shutdown();
    }
}

/* Child -> parent report: "A <asserts>\n", then one "F <line>\t<file>\t<cond>\n"
 * per failure recorded since the fork. */
static void report_to_parent(FILE *out, unsigned failures_before,
                             unsigned asserts_before)
{
    fprintf(out, "A %u\n", CU_get_number_of_asserts() - asserts_before);
    unsigned i = 0;
    for (CU_pFailureRecord f = CU_get_failure_list(); f; f = f->pNext, i++) {
        if (i < failures_before)
            continue;
        fprintf(out, "F %u\t", f->uiLineNumber);
        for (const char *p = f->strFileName ? f->strFileName : ""; *p; p++)
            fputc(*p == '\t' || *p == '\n' ? ' ' : *p, out);
        fputc('\t', out);
        for (const char *p = f->strCondition ? f->strCondition : ""; *p; p++)
            fputc(*p == '\t' || *p == '\n' ? ' ' : *p, out);
        fputc('\n', out);
    }
}

/* Records the child's results in this process; returns the failure count. */
static unsigned replay_report(char *report)
{
    unsigned asserts = 0, failures = 0;
    for (char *line = strtok(report, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == 'A') {
            asserts = (unsigned)strtoul(line + 2, NULL, 10);
        } else if (line[0] == 'F') {
            char *file = strchr(line, '\t');
            char *cond = file ? strchr(file + 1, '\t') : NULL;
            if (!cond)
                continue;
            *file++ = '\0';
            *cond++ = '\0';
            CU_assertImplementation(CU_FALSE,
                                    (unsigned)strtoul(line + 2, NULL, 10),
                                    cond, file, "", CU_FALSE);
            failures++;
        }
    }
    for (unsigned i = failures; i < asserts; i++)
        CU_assertImplementation(CU_TRUE, 0, "", "", "", CU_FALSE);
    return failures;
}

int64_t tu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double now_s(void)
{
    return (double)tu_now_ns() / 1e9;
}

/* A hung case: before it is killed, print every thread's backtrace (gdb
 * attached for a moment) so that a hang seen once, e.g. in a round of
 * tests/load.sh, leaves its evidence in the log. SL_TEST_HANG_GDB=0 turns
 * it off; without gdb, or under valgrind, nothing is printed. */
static void hang_backtraces(pid_t pid)
{
    const char *v = getenv("SL_TEST_HANG_GDB");
    if ((v && strcmp(v, "0") == 0) || tu_under_valgrind())
        return;
    char cmd[320];
    snprintf(cmd, sizeof cmd,
             "command -v gdb >/dev/null 2>&1 && timeout 120 gdb -p %d -batch -nx"
             " -ex 'set pagination off' -ex 'thread apply all bt' </dev/null 2>&1",
             (int)pid);
    printf("\nharness: the case hangs; its threads (pid %d):\n", (int)pid);
    fflush(NULL);
    if (system(cmd) != 0)
        printf("harness: no backtraces (gdb missing or could not attach)\n");
    fflush(NULL);
}

void tu_run(tu_body_fn body, int flags)
{
    if (nofork()) {
        run_here(body, flags);
        return;
    }

    int fds[2];
    if (pipe(fds) != 0) {
        CU_FAIL("harness: pipe() failed");
        return;
    }
    unsigned failures_before = CU_get_number_of_failure_records();
    unsigned asserts_before = CU_get_number_of_asserts();
    fflush(NULL); /* or the child flushes the parent's buffers again */
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        CU_FAIL("harness: fork() failed");
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        run_here(body, flags);
        FILE *out = fdopen(fds[1], "w");
        if (out) {
            report_to_parent(out, failures_before, asserts_before);
            fclose(out);
        }
        /* exit(), not _exit(): LeakSanitizer checks the child here. */
        exit(CU_get_number_of_failure_records() > failures_before ? 1 : 0);
    }
    close(fds[1]);

    long timeout = env_long("SL_TEST_CASE_TIMEOUT", 60, 1);
    long own = flags >> TU_TIMEOUT_SHIFT;
    if (own > 0 && tu_under_valgrind())
        own *= 10;
    if (own > 0 && own < timeout)
        timeout = own;
    double started = now_s(), deadline = started + (double)timeout;
    char *report = NULL;
    size_t len = 0, cap = 0;
    bool timed_out = false;
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = { .fd = fds[0], .events = POLLIN };
        int n = poll(&p, 1, left > 1.0 ? 1000 : (int)(left * 1000) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        if (cap - len < 4096) {
            cap = cap ? 2 * cap : 8192;
            report = realloc(report, cap);
            if (!report)
                abort();
        }
        ssize_t got = read(fds[0], report + len, cap - len - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fds[0]);
    if (timed_out) {
        hang_backtraces(pid);
        kill(pid, SIGKILL);
    }
    int status = 0;
    struct rusage ru = {0};
    for (;;) { /* it may also hang after its report, e.g. at exit */
        pid_t r = wait4(pid, &status, timed_out ? 0 : WNOHANG, &ru);
        if (r == pid || (r < 0 && errno != EINTR))
            break;
        if (r == 0 && now_s() >= deadline) {
            timed_out = true;
            hang_backtraces(pid);
            kill(pid, SIGKILL);
        } else if (r == 0) {
            nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000 * 1000 }, NULL);
        }
    }

    /* How long the case took, when it is long enough to matter for its
     * limit (SL_TEST_CASE_TIMEOUT), and the CPU time it used: under load
     * or a sanitizer the slow cases show in the log, and wall / cpu says
     * how much of it was waiting for a CPU. */
    double took = now_s() - started;
    if (took >= 1.0)
        printf("[%.1f s, cpu %.1f s] ", took,
               ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
                   (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);

    unsigned failures = 0;
    bool got_report = len > 0;
    if (report) {
        report[len] = '\0';
        failures = replay_report(report);
        free(report);
    }
    char msg[160];
    if (timed_out) {
        snprintf(msg, sizeof msg,
                 "harness: test timed out after %ld s (its own limit or SL_TEST_CASE_TIMEOUT) and was killed",
                 timeout);
        CU_assertImplementation(CU_FALSE, 0, msg, "test_util.c", "", CU_FALSE);
    } else if (WIFSIGNALED(status)) {
        snprintf(msg, sizeof msg, "harness: test crashed: signal %d (%s)",
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
        CU_assertImplementation(CU_FALSE, 0, msg, "test_util.c", "", CU_FALSE);
    } else if (!got_report) {
        CU_FAIL("harness: test process sent no report");
    } else if (WEXITSTATUS(status) != 0 &&
               (WEXITSTATUS(status) != 1 || failures == 0)) {
        /* 1 with failures is ours; anything else came after the report,
         * e.g. LeakSanitizer at exit, or valgrind's --error-exitcode. */
        snprintf(msg, sizeof msg,
                 "harness: test process exited with status %d (sanitizer or valgrind report above?)",
                 WEXITSTATUS(status));
        CU_assertImplementation(CU_FALSE, 0, msg, "test_util.c", "", CU_FALSE);
    }
}

/* ---- main -------------------------------------------------------------- */

int tu_main(int argc, char **argv, const char *suite_name, CU_TestInfo *tests)
{
    int workers = tu_workers();
    if (workers != 1)
        printf("SL_TEST_WORKERS=%d: tests run on %d workers (stealing off)\n",
               workers, workers);
    if (tu_stack_mode() == SL_STACK_COPY)
        printf("SL_TEST_STACK=copy: tasklets run on copy stacks\n");

    if (CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "%s: CU_initialize_registry: %s\n", suite_name,
                CU_get_error_msg());
        return 1;
    }
    CU_pSuite suite = CU_add_suite(suite_name, NULL, NULL);
    for (CU_TestInfo *t = tests; suite && t->pName; t++)
        if (!CU_add_test(suite, t->pName, t->pTestFunc))
            suite = NULL;
    if (!suite) {
        fprintf(stderr, "%s: cannot register tests: %s\n", suite_name,
                CU_get_error_msg());
        CU_cleanup_registry();
        return 1;
    }

    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_ErrorCode rc;
    if (argc > 1) {
        CU_pTest test = CU_get_test(suite, argv[1]);
        if (!test) {
            fprintf(stderr, "%s: no test named %s\n", suite_name, argv[1]);
            CU_cleanup_registry();
            return 1;
        }
        rc = CU_basic_run_test(suite, test);
    } else {
        rc = CU_basic_run_tests();
    }
    printf("\n");
    bool failed = rc != CUE_SUCCESS || CU_get_number_of_failures() != 0 ||
                  CU_get_number_of_tests_failed() != 0;
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
