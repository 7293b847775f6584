/* bench.h - what the micro-benchmarks share: a clock, flags, and the
 * warm-up-then-best-of-N loop. Header-only; every bench is one .c file.
 *
 * A bench supplies a body that performs `iters` operations and returns the
 * nanoseconds they took (so it times only what it means to). bench_main()
 * parses --iters/--runs, runs one warm-up of iters/10, then `runs` timed
 * runs, prints each, and ends with one line of key=value pairs whose last
 * key is the figure, e.g. "iters=10000000 runs=5 best_ns=61234567
 * ns_per_switch=6.12".
 *
 * Benches that run tasklets in either stack mode set .stack_modes and read
 * --stack fixed|copy with bench_stack_mode() before sl_init; their .extra
 * hook adds pairs (stack=copy bytes_per_switch=...) before the figure. */
#ifndef BENCH_H
#define BENCH_H

#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef uint64_t (*bench_body)(uint64_t iters);

typedef struct bench_spec {
    const char *name;    /* program name, for messages */
    const char *what;    /* one line: what one operation is */
    const char *unit;    /* key of the figure: "ns_per_switch" */
    uint64_t iters;      /* default operations per run */
    bench_body body;
    int stack_modes;     /* accepts --stack fixed|copy */
    void (*extra)(FILE *out); /* more key=value pairs, each with a trailing space */
} bench_spec;

/* --stack fixed|copy from argv (1 fixed, 2 copy: SL_STACK_FIXED and
 * SL_STACK_COPY), for sl_config.stack_mode; exits 2 on a bad value. */
static __attribute__((unused)) int bench_stack_mode(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--stack") != 0)
            continue;
        if (strcmp(argv[i + 1], "fixed") == 0)
            return 1;
        if (strcmp(argv[i + 1], "copy") == 0)
            return 2;
        fprintf(stderr, "%s: --stack wants fixed or copy, not '%s'\n", argv[0], argv[i + 1]);
        exit(2);
    }
    return 1;
}

static uint64_t bench_parse(const bench_spec *b, const char *flag, const char *s, uint64_t min)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end || errno || v < min) {
        fprintf(stderr, "%s: %s wants a number >= %" PRIu64 ", not '%s'\n", b->name, flag, min, s);
        exit(2);
    }
    return v;
}

static void bench_usage(const bench_spec *b, FILE *out)
{
    fprintf(out,
            "usage: %s [--iters N] [--runs R]%s\n"
            "  measures %s\n"
            "  --iters N  operations per run (default %" PRIu64 ")\n"
            "  --runs R   timed runs after one warm-up; the best counts (default 5)\n"
            "%s"
            "The last line is key=value pairs ending with %s.\n",
            b->name, b->stack_modes ? " [--stack fixed|copy]" : "", b->what, b->iters,
            b->stack_modes ? "  --stack M  the tasklets' stacks: fixed (default) or copy\n" : "",
            b->unit);
}

static __attribute__((unused)) int bench_main(const bench_spec *b, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"iters", required_argument, NULL, 'i'},
        {"runs", required_argument, NULL, 'r'},
        {"stack", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t iters = b->iters, runs = 5;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'i': iters = bench_parse(b, "--iters", optarg, 2); break;
        case 'r': runs = bench_parse(b, "--runs", optarg, 1); break;
        case 's':
            if (b->stack_modes)
                break; /* read by bench_stack_mode() before sl_init */
            bench_usage(b, stderr);
            return 2;
        case 'h': bench_usage(b, stdout); return 0;
        default: bench_usage(b, stderr); return 2;
        }
    }
    if (optind < argc) {
        bench_usage(b, stderr);
        return 2;
    }
    iters &= ~(uint64_t)1; /* ping-pong bodies split the work in halves */

    uint64_t warm = iters / 10 < 2 ? 2 : (iters / 10) & ~(uint64_t)1;
    b->body(warm);
    uint64_t best = UINT64_MAX;
    for (uint64_t r = 1; r <= runs; r++) {
        uint64_t ns = b->body(iters);
        printf("run %" PRIu64 ": %" PRIu64 " ops in %.3f ms, %.2f ns each\n", r, iters, ns / 1e6,
               (double)ns / (double)iters);
        if (ns < best)
            best = ns;
    }
    printf("%s: %s; best of %" PRIu64 " runs after a warm-up\n", b->name, b->what, runs);
    printf("iters=%" PRIu64 " runs=%" PRIu64 " best_ns=%" PRIu64 " ", iters, runs, best);
    if (b->extra)
        b->extra(stdout);
    printf("%s=%.2f\n", b->unit, (double)best / (double)iters);
    return 0;
}

#endif /* BENCH_H */
