/* lockorder.c - the seeds' deadlock example: two tasklets take two locks
 * in opposite order (x: A then B; y: B then A). With threads that hangs
 * forever; here the runtime reports it.
 *
 * A barrier makes sure each has taken its first lock before either asks
 * for its second, so the deadlock happens on any number of workers. Main
 * meanwhile waits for an event that is set only when both have finished
 * their work.
 *
 *  - One worker (the default): the tasklet that blocks last would leave
 *    nothing runnable while main waits, so its sl_lock_acquire returns
 *    SL_EDEADLOCK. It backs off (releases its first lock), so the other
 *    gets both locks and finishes. Then nothing is left that could set the
 *    event: main's sl_event_wait returns SL_EDEADLOCK too.
 *  - Several workers (--workers N): the runtime cannot tell which tasklet
 *    blocked last; both stay blocked, every worker goes idle, and main's
 *    wait returns SL_EDEADLOCK. Main then kills the two, whose waits
 *    return SL_EKILLED, and they release what they hold.
 *
 * Prints what happened; exits 0 when the deadlock was reported (to main,
 * and with one worker to a tasklet as well), 1 otherwise. */
#define _GNU_SOURCE
#include "args.h"
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>

#include <stackless.h>

typedef struct worker {
    const char *name;
    sl_lock *first, *second;
    const char *first_name, *second_name;
    int rc; /* what the second acquire returned; NOT_ASKED before */
} worker;

enum { NOT_ASKED = 1 };

static sl_lock lock_a, lock_b;
static sl_barrier both_hold_one;
static sl_event both_done;
static atomic_int finished;

static void worker_main(void *arg)
{
    worker *me = arg;
    if (sl_lock_acquire(me->first) != 0)
        return;
    printf("%s: took lock %s\n", me->name, me->first_name);
    sl_barrier_wait(&both_hold_one, -1);
    printf("%s: waiting for lock %s\n", me->name, me->second_name);
    me->rc = sl_lock_acquire(me->second);
    if (me->rc == 0) {
        printf("%s: took lock %s, done\n", me->name, me->second_name);
        sl_lock_release(me->second);
        if (atomic_fetch_add(&finished, 1) == 1)
            sl_event_set(&both_done);
    } else {
        printf("%s: sl_lock_acquire(%s): %s; releasing lock %s\n", me->name,
               me->second_name, sl_err_name(me->rc), me->first_name);
    }
    sl_lock_release(me->first);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: lockorder [--workers N]\n"
                 "  two tasklets take two locks in opposite order; the runtime\n"
                 "  reports the deadlock. Exit 0 when it was reported.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"workers", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int workers = 1, c, rc;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'w':
            workers = (int)args_num("lockorder", "--workers", optarg, 1, 127, usage);
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }

    sl_config cfg;
    sl_config_init(&cfg);
    cfg.workers = workers;
    if ((rc = sl_init(&cfg)) < 0 || (rc = sl_lock_init(&lock_a)) < 0 ||
        (rc = sl_lock_init(&lock_b)) < 0 ||
        (rc = sl_barrier_init(&both_hold_one, 2)) < 0 ||
        (rc = sl_event_init(&both_done)) < 0) {
        fprintf(stderr, "lockorder: %s\n", sl_strerror(rc));
        return 1;
    }
    worker x = {"x", &lock_a, &lock_b, "A", "B", NOT_ASKED};
    worker y = {"y", &lock_b, &lock_a, "B", "A", NOT_ASKED};
    sl_tasklet *tx = sl_spawn(worker_main, &x);
    sl_tasklet *ty = sl_spawn(worker_main, &y);
    if (!tx || !ty) {
        fprintf(stderr, "lockorder: cannot spawn\n");
        return 1;
    }
    sl_tasklet_ref(tx); /* kill below may come after they ended */
    sl_tasklet_ref(ty);

    int main_rc = sl_event_wait(&both_done, -1);
    printf("main: sl_event_wait: %s\n", main_rc ? sl_err_name(main_rc) : "0 (both finished)");
    if (sl_getlivecount() > 0) {
        printf("main: %d tasklets still blocked: killing them\n", sl_getlivecount());
        sl_tasklet_kill(tx);
        sl_tasklet_kill(ty);
        sl_run();
    }
    sl_tasklet_unref(tx);
    sl_tasklet_unref(ty);

    bool tasklet_told = x.rc == SL_EDEADLOCK || y.rc == SL_EDEADLOCK;
    bool ok = main_rc == SL_EDEADLOCK && (workers > 1 || tasklet_told) &&
              sl_getlivecount() == 0 && !sl_lock_locked(&lock_a) &&
              !sl_lock_locked(&lock_b);
    printf("deadlock %s: x=%s y=%s main=%s workers=%d\n",
           ok ? "reported" : "NOT reported",
           x.rc == NOT_ASKED ? "-" : sl_err_name(x.rc),
           y.rc == NOT_ASKED ? "-" : sl_err_name(y.rc),
           sl_err_name(main_rc), workers);
    sl_lock_destroy(&lock_a);
    sl_lock_destroy(&lock_b);
    sl_barrier_destroy(&both_hold_one);
    sl_event_destroy(&both_done);
    sl_shutdown();
    return ok ? 0 : 1;
}
