/* pingpong.c - the tutorial's ping/pong coroutines: two tasklets that call
 * each other back and forth through two channels, forever if you like, in
 * constant memory.
 *
 * Written as plain functions, ping() calling pong() calling ping() ... would
 * grow the C stack by a frame per call and overflow it. As tasklets, neither
 * calls the other: each sends a message and waits for the answer, so both
 * stacks stay as deep as one loop iteration. The program proves it by
 * measuring the resident set after the first thousand rounds and at the end.
 *
 *   Python (Stackless):                      C (this file):
 *     def ping():                              ping_main():
 *         while ping_channel.receive():            receive on ping_ch
 *             pong_channel.send("from ping")       send on pong_ch
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <stackless.h>

static sl_channel *ping_ch, *pong_ch;
static uint64_t rounds_wanted, rounds_done;
static bool verbose;
static long rss_after_1k_kb;
static int failed; /* first channel error, 0 if none */

static long rss_now_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int check(int rc)
{
    if (rc < 0 && !failed)
        failed = rc;
    return rc;
}

/* Waits for a message on ping_ch; a NULL message ends the game (Python's
 * "while ping_channel.receive():" stops on a false value). */
static void ping_main(void *arg)
{
    (void)arg;
    void *msg;
    while (check(sl_channel_receive(ping_ch, &msg)) == 0 && msg) {
        rounds_done++;
        if (verbose)
            printf("PING %" PRIu64 "\n", rounds_done);
        if (rounds_done == 1000)
            rss_after_1k_kb = rss_now_kb();
        if (rounds_done == rounds_wanted) {
            check(sl_channel_send(pong_ch, NULL)); /* tell pong to stop */
            return;
        }
        if (check(sl_channel_send(pong_ch, "from ping")) < 0)
            return;
    }
}

static void pong_main(void *arg)
{
    (void)arg;
    void *msg;
    while (check(sl_channel_receive(pong_ch, &msg)) == 0 && msg) {
        if (verbose)
            printf("PONG\n");
        if (check(sl_channel_send(ping_ch, "from pong")) < 0)
            return;
    }
}

static void usage(FILE *out)
{
    fprintf(out, "usage: pingpong [--rounds N] [--verbose]\n"
                 "  --rounds N  ping/pong round trips (default 1000000)\n"
                 "  --verbose   print PING and PONG every round\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"rounds", required_argument, NULL, 'r'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    rounds_wanted = 1000000;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'r':
            errno = 0;
            rounds_wanted = strtoull(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end || errno || rounds_wanted == 0) {
                fprintf(stderr, "pingpong: --rounds wants a positive number, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'v': verbose = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }

    int rc = sl_init(NULL);
    if (rc < 0) {
        fprintf(stderr, "pingpong: sl_init: %s\n", sl_strerror(rc));
        return 1;
    }
    ping_ch = sl_channel_new();
    pong_ch = sl_channel_new();
    if (!ping_ch || !pong_ch || !sl_spawn(ping_main, NULL) || !sl_spawn(pong_main, NULL)) {
        fprintf(stderr, "pingpong: out of memory\n");
        return 1;
    }

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* Both tasklets would wait for each other forever, so main "primes the
     * game" with the first message, as the tutorial does. ping has not run
     * yet, so main blocks in this send while ping and pong start; the send
     * returns once ping has taken the message and main's turn comes round.
     * sl_run() then plays the remaining rounds. */
    if ((rc = sl_channel_send(ping_ch, "startup")) < 0 || (rc = sl_run()) < 0) {
        fprintf(stderr, "pingpong: %s\n", sl_strerror(rc));
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);

    int live = sl_getlivecount();
    long rss_end_kb = rss_now_kb();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    sl_channel_free(ping_ch);
    sl_channel_free(pong_ch);
    sl_shutdown();

    if (failed || live != 0 || rounds_done != rounds_wanted) {
        fprintf(stderr, "pingpong: %" PRIu64 " of %" PRIu64 " rounds, %d tasklets left, error: %s\n",
                rounds_done, rounds_wanted, live, sl_strerror(failed));
        return 1;
    }
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("pingpong: %" PRIu64 " rounds in %.3f s; resident memory %ld KiB after 1000 rounds, "
           "%ld KiB at the end\n",
           rounds_done, secs, rss_after_1k_kb, rss_end_kb);
    printf("rounds=%" PRIu64 " seconds=%.4f rss_kb_after_1k=%ld rss_kb_end=%ld peak_rss_kb=%ld\n",
           rounds_done, secs, rss_after_1k_kb, rss_end_kb, ru.ru_maxrss);
    return 0;
}
