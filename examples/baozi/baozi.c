/* baozi.c - the seeds' producer/consumer example ("baozi", steamed buns)
 * with a tasklet queue, as the seed wrote it with queue.Queue: producers
 * put numbered buns into an sl_queue, consumers get them and mark each one
 * done (task_done). The last producer to finish sets an sl_event; main
 * waits for it, then for every bun to be eaten (join).
 *
 * Unlike prodcons (a channel: every bun handed from hand to hand), the
 * queue holds up to --capacity buns: producers run ahead of the consumers
 * until it is full, then wait for room. When every bun is eaten main puts
 * one NULL per consumer: "no baozi anymore", and each consumer leaves.
 *
 * The program checks its own totals (every bun made once and eaten once,
 * the sum of their numbers) and exits 1 if anything is off. */
#define _GNU_SOURCE
#include "args.h"
#include <getopt.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stackless.h>

#define MAX_CONSUMERS 25 /* named B .. Z */
#define MAX_PRODUCERS 8  /* named A, A2 .. A8 */

typedef struct eater {
    char name[4];
    long eaten;
    long sum;
} eater;

typedef struct maker {
    char name[4];
    long first, count; /* buns first .. first + count - 1 */
} maker;

static sl_queue q;
static sl_event all_made;         /* set by the last producer to finish */
static atomic_int producing;      /* producers still making buns */
static atomic_uchar *eaten_times; /* per bun number: how often eaten */
static atomic_int failed;         /* first unexpected error, 0 if none */
static bool quiet;

static void fail(int rc)
{
    int none = 0;
    if (rc < 0)
        atomic_compare_exchange_strong(&failed, &none, rc);
}

static void producer_main(void *arg)
{
    maker *me = arg;
    for (long n = me->first; n < me->first + me->count; n++) {
        if (!quiet)
            printf("producer %s is making baozi %ld\n", me->name, n);
        /* A bun is its number; numbers start at 1 so no bun is NULL. */
        int rc = sl_queue_put(&q, (void *)(intptr_t)n, -1);
        if (rc < 0) {
            fail(rc);
            return;
        }
        if (!quiet)
            printf("producer %s has produced baozi %ld\n", me->name, n);
    }
    if (atomic_fetch_sub(&producing, 1) == 1)
        fail(sl_event_set(&all_made));
}

static void consumer_main(void *arg)
{
    eater *me = arg;
    for (;;) {
        void *bun;
        int rc = sl_queue_get(&q, &bun, -1);
        if (rc < 0) {
            fail(rc);
            return;
        }
        if (!bun) { /* main's "no baozi anymore" */
            if (!quiet)
                printf("consumer %s: no baozi anymore\n", me->name);
            fail(sl_queue_task_done(&q));
            return;
        }
        long n = (long)(intptr_t)bun;
        me->eaten++;
        me->sum += n;
        atomic_fetch_add(&eaten_times[n], 1);
        if (!quiet)
            printf("consumer %s has eaten baozi %ld\n", me->name, n);
        fail(sl_queue_task_done(&q));
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: baozi [--buns N] [--producers P] [--consumers C] [--capacity K]\n"
            "             [--workers W] [--quiet]\n"
            "  --buns N       buns made in all (default 10)\n"
            "  --producers P  producers, 1..%d (default 1)\n"
            "  --consumers C  consumers, 1..%d (default 3)\n"
            "  --capacity K   buns the queue holds, 0 = unbounded (default 3)\n"
            "  --workers W    worker threads (default 1)\n"
            "  --quiet        print only the summary\n",
            MAX_PRODUCERS, MAX_CONSUMERS);
}

static long parse_num(const char *flag, const char *s, long min, long max)
{
    return (long)args_num("baozi", flag, s, (int64_t)min, (uint64_t)max, usage);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"buns", required_argument, NULL, 'b'},
        {"producers", required_argument, NULL, 'p'},
        {"consumers", required_argument, NULL, 'c'},
        {"capacity", required_argument, NULL, 'k'},
        {"workers", required_argument, NULL, 'w'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static eater eaters[MAX_CONSUMERS];
    static maker makers[MAX_PRODUCERS];
    long buns = 10, capacity = 3;
    int nproducers = 1, nconsumers = 3, workers = 1, c, rc;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': buns = parse_num("--buns", optarg, 0, 1L << 30); break;
        case 'p': nproducers = (int)parse_num("--producers", optarg, 1, MAX_PRODUCERS); break;
        case 'c': nconsumers = (int)parse_num("--consumers", optarg, 1, MAX_CONSUMERS); break;
        case 'k': capacity = parse_num("--capacity", optarg, 0, 1L << 30); break;
        case 'w': workers = (int)parse_num("--workers", optarg, 1, 127); break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (!(eaten_times = calloc((size_t)buns + 1, sizeof *eaten_times))) {
        fprintf(stderr, "baozi: out of memory\n");
        return 1;
    }

    sl_config cfg;
    sl_config_init(&cfg);
    cfg.workers = workers;
    if ((rc = sl_init(&cfg)) < 0 ||
        (rc = sl_queue_init(&q, SL_QUEUE_FIFO, (size_t)capacity, NULL)) < 0 ||
        (rc = sl_event_init(&all_made)) < 0) {
        fprintf(stderr, "baozi: %s\n", sl_strerror(rc));
        return 1;
    }
    atomic_store(&producing, nproducers);
    for (int i = 0; i < nproducers; i++) {
        maker *m = &makers[i];
        snprintf(m->name, sizeof m->name, i ? "A%d" : "A", i + 1);
        m->first = 1 + buns * i / nproducers;
        m->count = buns * (i + 1) / nproducers - buns * i / nproducers;
        if (!sl_spawn(producer_main, m)) {
            fprintf(stderr, "baozi: cannot spawn\n");
            return 1;
        }
    }
    for (int i = 0; i < nconsumers; i++) {
        eaters[i].name[0] = (char)('B' + i);
        if (!sl_spawn(consumer_main, &eaters[i])) {
            fprintf(stderr, "baozi: cannot spawn\n");
            return 1;
        }
    }

    /* Once every bun is made, join returns when every one has been eaten
     * (marked done); then each consumer gets its "no baozi anymore". */
    fail(sl_event_wait(&all_made, -1));
    fail(sl_queue_join(&q, -1));
    for (int i = 0; i < nconsumers; i++)
        fail(sl_queue_put(&q, NULL, -1));
    fail(sl_run());

    long eaten = 0, sum = 0, once = 0;
    for (int i = 0; i < nconsumers; i++) {
        eaten += eaters[i].eaten;
        sum += eaters[i].sum;
    }
    for (long n = 1; n <= buns; n++)
        once += atomic_load(&eaten_times[n]) == 1;
    printf("buns=%ld eaten=%ld eaten_once=%ld sum=%ld producers=%d consumers=%d "
           "capacity=%ld workers=%d eaten_by=",
           buns, eaten, once, sum, nproducers, nconsumers, capacity, workers);
    for (int i = 0; i < nconsumers; i++)
        printf("%s%s:%ld", i ? "," : "", eaters[i].name, eaters[i].eaten);
    printf("\n");

    int live = sl_getlivecount();
    int qrc = sl_queue_destroy(&q);
    if (!qrc)
        qrc = sl_event_destroy(&all_made);
    sl_shutdown();
    free(eaten_times);
    rc = atomic_load(&failed);
    if (rc || qrc || live != 0 || eaten != buns || once != buns ||
        sum != buns * (buns + 1) / 2) {
        fprintf(stderr, "baozi: wrong totals (%d tasklets left, error: %s)\n", live,
                sl_strerror(rc ? rc : qrc));
        return 1;
    }
    return 0;
}
