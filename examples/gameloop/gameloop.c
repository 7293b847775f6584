/* gameloop.c - a game loop on Stackless's watchdog: each frame runs the
 * world's tasklets for a budget of time (sl_run_for), then draws.
 *
 * The world is a crowd of actors, a tasklet each. An actor thinks (a spin
 * of --work-us microseconds: its AI for one step), then yields. A frame
 * gives the world --budget-ms of update time: sl_run_for runs the actors
 * round robin and, once the budget is spent, takes the actor that reaches
 * its next yield out of the run queue and returns it; the frame draws,
 * and the next frame puts that actor back at the end of the queue
 * (Stackless's autoscheduler does the same with run(timeout)). So a
 * crowd that needs more than a frame's budget is updated over several
 * frames, fairly, and the frame rate holds. The budget is cooperative: an
 * actor is only ever interrupted where it yields, so a frame overruns its
 * budget by at most one thought.
 *
 * The program checks its own result (every thought thought, every actor
 * ended, at least as many frames as the budget allows: a frame runs at
 * most ceil(budget / work) thoughts) and exits 1 otherwise. It prints one
 * line per frame (unless --quiet), then one machine-readable line. */
#define _GNU_SOURCE
#include "args.h"
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stackless.h>

typedef struct actor {
    long left;  /* thoughts still to think */
    long done;
} actor;

static int64_t work_ns;   /* one thought */
static long thoughts;     /* thought in all, by every actor */
static int failed;        /* first unexpected error, 0 if none */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One step of an actor's AI: here, burning work_ns of CPU. */
static void think(void)
{
    int64_t end = now_ns() + work_ns;
    while (now_ns() < end)
        ;
}

static void actor_main(void *arg)
{
    actor *a = arg;
    while (a->left > 0) {
        think();
        a->left--;
        a->done++;
        thoughts++;
        int rc = sl_schedule(); /* where the watchdog may stop the frame */
        if (rc < 0) {
            if (!failed)
                failed = rc;
            return;
        }
    }
}

/* The "draw" of a frame: one line with a bar of the crowd's progress. */
static void draw(int frame, long now, long total, int64_t update_ns,
                 long in_frame, const sl_tasklet *late)
{
    char bar[41];
    int fill = (int)(40 * now / (total ? total : 1));
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(40 - fill));
    bar[40] = '\0';
    printf("frame %3d [%s] %6.2f ms update, %3ld thoughts%s\n", frame, bar,
           (double)update_ns / 1e6, in_frame,
           late ? ", budget spent" : "");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: gameloop [--actors N] [--thoughts N] [--work-us N]\n"
               "                [--budget-ms N] [--max-frames N] [--quiet]\n"
               "  each of N actors thinks --thoughts times, --work-us each\n"
               "  (default 200 actors, 20 thoughts, 200 us); each frame\n"
               "  updates the world for --budget-ms (default 16) and draws\n");
}

int main(int argc, char **argv)
{
    long nactors = 200, per = 20, work_us = 200, budget_ms = 16;
    long max_frames = 100000;
    bool quiet = false;
    static const struct option opts[] = {
        {"actors", required_argument, NULL, 'a'},
        {"thoughts", required_argument, NULL, 't'},
        {"work-us", required_argument, NULL, 'w'},
        {"budget-ms", required_argument, NULL, 'b'},
        {"max-frames", required_argument, NULL, 'f'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a': nactors = args_num("gameloop", "--actors", optarg, 1, 1000000, usage); break;
        case 't': per = args_num("gameloop", "--thoughts", optarg, 1, 1000000, usage); break;
        case 'w': work_us = args_num("gameloop", "--work-us", optarg, 1, 1000000, usage); break;
        case 'b': budget_ms = args_num("gameloop", "--budget-ms", optarg, 1, 10000, usage); break;
        case 'f': max_frames = args_num("gameloop", "--max-frames", optarg, 1, 100000000, usage); break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    work_ns = work_us * 1000;
    int rc = sl_init(NULL);
    actor *world = calloc((size_t)nactors, sizeof *world);
    if (rc < 0 || !world) {
        fprintf(stderr, "gameloop: %s\n", rc < 0 ? sl_strerror(rc) : "out of memory");
        return 1;
    }
    for (long i = 0; i < nactors; i++) {
        world[i].left = per;
        if (!sl_spawn(actor_main, &world[i])) {
            fprintf(stderr, "gameloop: sl_spawn failed\n");
            return 1;
        }
    }

    long total = nactors * per;
    int64_t budget_ns = budget_ms * 1000000, worst = 0;
    sl_tasklet *late = NULL;
    int frames = 0, spent = 0;
    while (sl_getlivecount() > 0 && frames < max_frames) {
        if (late) { /* the actor the last frame stopped goes on, at the end */
            sl_tasklet_insert(late);
            sl_tasklet_unref(late); /* the reference sl_run_for gave */
        }
        long before = thoughts;
        int64_t t0 = now_ns();
        rc = sl_run_for(budget_ns, 0, &late); /* the update */
        int64_t update = now_ns() - t0;
        if (rc < 0) {
            fprintf(stderr, "gameloop: sl_run_for: %s\n", sl_strerror(rc));
            return 1;
        }
        spent += rc == 1;
        worst = update > worst ? update : worst;
        if (!quiet) /* the draw */
            draw(frames, thoughts, total, update, thoughts - before, late);
        frames++;
    }
    if (late) /* stopped at max_frames */
        sl_tasklet_unref(late);

    /* A frame runs at most ceil(budget / work) thoughts: it stops at the
     * first yield after its deadline, and each thought takes work_ns. */
    long per_frame = (budget_ns + work_ns - 1) / work_ns;
    long min_frames = (total + per_frame - 1) / per_frame;
    bool ok = !failed && thoughts == total && sl_getlivecount() == 0 &&
              frames >= min_frames;
    for (long i = 0; i < nactors; i++)
        ok = ok && world[i].done == per && world[i].left == 0;
    printf("frames=%d actors=%ld thoughts=%ld work_us=%ld budget_ms=%ld "
           "budget_spent=%d min_frames=%ld worst_update_ms=%.2f ok=%d\n",
           frames, nactors, thoughts, work_us, budget_ms, spent, min_frames,
           (double)worst / 1e6, ok);
    if (failed)
        fprintf(stderr, "gameloop: an actor failed: %s\n", sl_strerror(failed));
    free(world);
    sl_shutdown();
    return ok ? 0 : 1;
}
