/* prodcons.c - the producer/consumer ("baozi") example from the seeds, with
 * a channel instead of a queue: producer A makes buns, consumers B, C, D eat
 * them.
 *
 * A channel holds nothing: the producer's send completes only when a
 * consumer takes the bun, so no bun is ever made before someone is ready
 * for it and no consumer polls an empty queue. When the buns run out the
 * producer tells each consumer so with sl_channel_send_error() (Stackless's
 * send_exception): the consumer's receive returns SL_ECLOSED and its loop
 * ends. */
#define _GNU_SOURCE
#include "args.h"
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <stackless.h>

#define MAX_CONSUMERS 25 /* named B .. Z */

typedef struct consumer {
    char name[2];
    long eaten;
} consumer;

static sl_channel *buns;  /* the counter between producer and consumers */
static long buns_wanted, made;
static int nconsumers;
static bool quiet;
static int failed;        /* first unexpected error, 0 if none */

static void fail(int rc)
{
    if (rc < 0 && !failed)
        failed = rc;
}

static void producer_main(void *arg)
{
    const char *name = arg;
    int rc;
    for (long n = 1; n <= buns_wanted; n++) {
        made++;
        if (!quiet)
            printf("producer %s has made baozi %ld\n", name, n);
        /* A bun is its number; numbers start at 1 so no bun is NULL. */
        if ((rc = sl_channel_send(buns, (void *)(intptr_t)n)) < 0) {
            fail(rc);
            return;
        }
    }
    /* Every consumer gets one "no baozi anymore", then the channel closes
     * so that any further receive fails at once instead of waiting. */
    for (int i = 0; i < nconsumers; i++)
        if ((rc = sl_channel_send_error(buns, SL_ECLOSED)) < 0)
            fail(rc);
    sl_channel_close(buns);
}

static void consumer_main(void *arg)
{
    consumer *me = arg;
    void *bun;
    int rc;
    while ((rc = sl_channel_receive(buns, &bun)) == 0) {
        me->eaten++;
        if (!quiet)
            printf("consumer %s has eaten baozi %ld\n", me->name, (long)(intptr_t)bun);
    }
    if (rc != SL_ECLOSED)
        fail(rc);
    else if (!quiet)
        printf("consumer %s: no baozi anymore\n", me->name);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: prodcons [--buns N] [--consumers C] [--quiet]\n"
                 "  --buns N       buns the producer makes (default 10)\n"
                 "  --consumers C  consumers, 1..%d (default 3)\n"
                 "  --quiet        print only the summary\n",
            MAX_CONSUMERS);
}

static long parse_num(const char *flag, const char *s, long min, long max)
{
    return (long)args_num("prodcons", flag, s, (int64_t)min, (uint64_t)max, NULL);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"buns", required_argument, NULL, 'b'}, {"consumers", required_argument, NULL, 'c'},
        {"quiet", no_argument, NULL, 'q'},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static consumer consumers[MAX_CONSUMERS];
    buns_wanted = 10;
    nconsumers = 3;
    int c, rc;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': buns_wanted = parse_num("--buns", optarg, 0, 1L << 40); break;
        case 'c': nconsumers = (int)parse_num("--consumers", optarg, 1, MAX_CONSUMERS); break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }

    if ((rc = sl_init(NULL)) < 0) {
        fprintf(stderr, "prodcons: sl_init: %s\n", sl_strerror(rc));
        return 1;
    }
    if (!(buns = sl_channel_new()) || !sl_spawn(producer_main, "A")) {
        fprintf(stderr, "prodcons: out of memory\n");
        return 1;
    }
    for (int i = 0; i < nconsumers; i++) {
        consumers[i].name[0] = (char)('B' + i);
        if (!sl_spawn(consumer_main, &consumers[i])) {
            fprintf(stderr, "prodcons: out of memory\n");
            return 1;
        }
    }
    if ((rc = sl_run()) < 0) {
        fprintf(stderr, "prodcons: sl_run: %s\n", sl_strerror(rc));
        return 1;
    }

    long eaten = 0;
    printf("buns=%ld made=%ld", buns_wanted, made);
    for (int i = 0; i < nconsumers; i++)
        eaten += consumers[i].eaten;
    printf(" eaten=%ld consumers=%d eaten_by=", eaten, nconsumers);
    for (int i = 0; i < nconsumers; i++)
        printf("%s%s:%ld", i ? "," : "", consumers[i].name, consumers[i].eaten);
    printf("\n");

    int live = sl_getlivecount();
    sl_channel_free(buns);
    sl_shutdown();
    if (failed || live != 0 || made != buns_wanted || eaten != buns_wanted) {
        fprintf(stderr, "prodcons: %d tasklets left, error: %s\n", live, sl_strerror(failed));
        return 1;
    }
    return 0;
}
