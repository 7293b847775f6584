/* pool_callback.c - the seeds' Pool(5) + apply_async(callback=...) program
 * with the process pool:
 *
 *     def myFun(i):
 *         time.sleep(2)
 *         return i + 100
 *     def end_call(arg):
 *         print("end_call>>", arg)
 *     p = Pool(5)
 *     for i in range(10):
 *         p.apply_async(func=myFun, args=(i,), callback=end_call)
 *     print("end")
 *     p.close()
 *     p.join()
 *
 * my_fun runs in one of five worker processes (it sleeps as a tasklet
 * there, --sleep-ms, default 200, instead of 2 s) and returns i + 100 with
 * the worker's index and pid. end_call runs in a new tasklet of this
 * process as each result arrives and prints it. One more task, with i =
 * -1, fails on purpose (my_fun refuses negative numbers), so error_call,
 * the error callback, runs once too.
 *
 * The program checks what it saw (--tasks callbacks with the right values,
 * one error callback with SL_EINVAL, no child process left after join, a
 * submission after close refused with SL_ECLOSED) and exits 1 otherwise;
 * 2 on bad usage. */
#define _GNU_SOURCE
#include "args.h"
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stackless.h>

struct reply {
    int64_t value;
    int32_t worker;
    int32_t pid;
};

static int64_t sleep_ms = 200;
static int tasks = 10, processes = 5;
static bool quiet;

/* The task: runs in a worker process. */
static int my_fun(const void *in, size_t in_len, void *out, size_t *out_len)
{
    int64_t i;
    if (in_len != sizeof i || *out_len < sizeof(struct reply))
        return SL_EINVAL;
    memcpy(&i, in, sizeof i);
    if (i < 0)
        return SL_EINVAL; /* the failing task: error_call hears of it */
    sl_sleep_ms(sleep_ms); /* blocks this tasklet, not the worker */
    struct reply r = {i + 100, sl_pool_worker_index(), (int32_t)getpid()};
    memcpy(out, &r, sizeof r);
    *out_len = sizeof r;
    return 0;
}

/* What the callbacks saw; they run in tasklets of this process. */
static struct {
    int calls, errors, last_error;
    int64_t sum;
    uint64_t seen; /* bit i: i + 100 arrived */
    bool bad;
} got;

static void end_call(void *arg, const void *out, size_t out_len)
{
    (void)arg;
    struct reply r;
    if (out_len != sizeof r) {
        got.bad = true;
        return;
    }
    memcpy(&r, out, sizeof r);
    if (!quiet)
        printf("end_call>> %" PRId64 " (worker %d, pid %d; callback in pid %d)\n", r.value,
               (int)r.worker, (int)r.pid, (int)getpid());
    int64_t i = r.value - 100;
    if (i < 0 || i >= tasks || (i < 64 && (got.seen >> i & 1)))
        got.bad = true;
    if (i >= 0 && i < 64)
        got.seen |= (uint64_t)1 << i;
    got.calls++;
    got.sum += r.value;
}

static void error_call(void *arg, int status)
{
    if (!quiet)
        printf("error_call>> task %" PRId64 " failed: %s\n", *(int64_t *)arg,
               sl_strerror(status));
    got.errors++;
    got.last_error = status;
}

static int status;

static void program(void *arg)
{
    (void)arg;
    sl_pool_config cfg;
    sl_pool_config_init(&cfg);
    cfg.processes = processes; /* Pool(5) */
    sl_pool *p;
    int rc = sl_pool_new(&p, &cfg);
    if (rc < 0) {
        fprintf(stderr, "pool_callback: sl_pool_new: %s\n", sl_strerror(rc));
        status = 1;
        return;
    }
    if (!quiet)
        printf("main pid %d\n", (int)getpid());
    int64_t t0 = sl_now_ms();
    static int64_t minus_one = -1;
    for (int64_t i = 0; i < tasks && rc == 0; i++)
        rc = sl_pool_apply_async(p, my_fun, &i, sizeof i, end_call, error_call, NULL);
    if (rc == 0)
        rc = sl_pool_apply_async(p, my_fun, &minus_one, sizeof minus_one, end_call,
                                 error_call, &minus_one);
    if (rc < 0) {
        fprintf(stderr, "pool_callback: sl_pool_apply_async: %s\n", sl_strerror(rc));
        status = 1;
    }
    if (!quiet)
        printf("end\n");
    if ((rc = sl_pool_close(p)) < 0 || (rc = sl_pool_join(p)) < 0) {
        fprintf(stderr, "pool_callback: close/join: %s\n", sl_strerror(rc));
        status = 1;
    }
    int64_t ms = sl_now_ms() - t0;
    /* Joined: every worker has exited and been reaped. */
    if (waitpid(-1, NULL, WNOHANG) != -1) {
        fprintf(stderr, "pool_callback: a child process is left after join\n");
        status = 1;
    }
    /* Closed: a submission is refused. */
    int64_t zero = 0;
    if ((rc = sl_pool_apply_async(p, my_fun, &zero, sizeof zero, end_call, NULL, NULL)) != SL_ECLOSED) {
        fprintf(stderr, "pool_callback: apply_async after close: %s, want SL_ECLOSED\n",
                sl_strerror(rc));
        status = 1;
    }
    sl_pool_free(p);
    printf("joined after %" PRId64 " ms (%d tasks of %" PRId64 " ms on %d processes)\n", ms, tasks,
           sleep_ms, processes);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: pool_callback [--tasks N] [--processes P] [--sleep-ms MS] [--quiet]\n"
                 "  --tasks N       apply_async calls that succeed, 1 .. 64 (default 10)\n"
                 "  --processes P   the pool's worker processes (default 5, as Pool(5))\n"
                 "  --sleep-ms MS   how long each task sleeps in its worker (default 200)\n"
                 "  --quiet         print the last line only\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"tasks", required_argument, NULL, 't'}, {"processes", required_argument, NULL, 'p'},
        {"sleep-ms", required_argument, NULL, 's'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 't': tasks = (int)args_num("pool_callback", "--tasks", optarg, 1, 64, usage); break;
        case 'p': processes = (int)args_num("pool_callback", "--processes", optarg, 1, 256, usage); break;
        case 's': sleep_ms = args_num("pool_callback", "--sleep-ms", optarg, 0, 60000, usage); break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    int rc = sl_init(NULL);
    if (rc < 0 || !sl_spawn(program, NULL) || (rc = sl_run()) < 0) {
        fprintf(stderr, "pool_callback: runtime: %s\n", sl_strerror(rc));
        return 1;
    }
    sl_shutdown();
    /* sl_run() has returned: every callback tasklet has run. */
    int64_t want = 0;
    for (int i = 0; i < tasks; i++)
        want += i + 100;
    if (got.bad || got.calls != tasks || got.sum != want || got.errors != 1 ||
        got.last_error != SL_EINVAL) {
        fprintf(stderr, "pool_callback: %d callbacks (sum %" PRId64 "), %d error callbacks (%s); want %d (sum %" PRId64 ") and 1 (SL_EINVAL)\n",
                got.calls, got.sum, got.errors, sl_strerror(got.last_error), tasks, want);
        status = 1;
    }
    printf("tasks=%d processes=%d callbacks=%d sum=%" PRId64 " error_callbacks=%d ok=%d\n", tasks,
           processes, got.calls, got.sum, got.errors, status == 0);
    return status;
}
