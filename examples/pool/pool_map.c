/* pool_map.c - a CPU-bound parallel map: count the primes in consecutive
 * blocks of numbers by trial division (the seeds' CPU-bound example, Pool.
 * map over a list), first with one worker process, then with one per core,
 * and print the speed-up.
 *
 * Item k is the block [k * B, (k + 1) * B) (--block B); its result is the
 * number of primes in it. The parent checks every result against a sieve
 * of its own, and the total against pi(x) for a few known x, and exits 1
 * if any is wrong (2 on bad usage). The speed-up is printed, not checked:
 * on a busy machine it says more about the machine. */
#define _GNU_SOURCE
#include "args.h"
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stackless.h>

static uint64_t block = 20000;
static uint64_t items = 200;
static int cores;
static size_t chunksize = 1;

static bool is_prime(uint64_t n)
{
    if (n < 2)
        return false;
    if (n % 2 == 0)
        return n == 2;
    for (uint64_t d = 3; d * d <= n; d += 2)
        if (n % d == 0)
            return false;
    return true;
}

/* The task: primes in block k. In: k (8 bytes); out: the count. */
static int count_primes(const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in_len;
    uint64_t k, n = 0;
    memcpy(&k, in, 8);
    for (uint64_t x = k * block; x < (k + 1) * block; x++)
        n += is_prime(x);
    memcpy(out, &n, 8);
    *out_len = 8;
    return 0;
}

static int status;

static double map_with(int processes, const uint64_t *in, uint64_t *out)
{
    sl_pool_config cfg;
    sl_pool_config_init(&cfg);
    cfg.processes = processes;
    sl_pool *p;
    int rc = sl_pool_new(&p, &cfg);
    if (rc < 0) {
        fprintf(stderr, "pool_map: sl_pool_new(%d): %s\n", processes, sl_strerror(rc));
        status = 1;
        return 0;
    }
    int64_t t0 = sl_now_ms();
    rc = sl_pool_map(p, count_primes, in, 8, items, out, 8, chunksize, NULL);
    double s = (double)(sl_now_ms() - t0) / 1e3;
    if (rc < 0) {
        fprintf(stderr, "pool_map: sl_pool_map: %s\n", sl_strerror(rc));
        status = 1;
    }
    if ((rc = sl_pool_close(p)) < 0 || (rc = sl_pool_join(p)) < 0) {
        fprintf(stderr, "pool_map: close/join: %s\n", sl_strerror(rc));
        status = 1;
    }
    sl_pool_free(p);
    return s;
}

static void program(void *arg)
{
    (void)arg;
    uint64_t *in = calloc(items, 8), *one = calloc(items, 8), *all = calloc(items, 8);
    uint64_t limit = items * block;
    char *composite = calloc(limit + 1, 1);
    if (!in || !one || !all || !composite) {
        fprintf(stderr, "pool_map: out of memory\n");
        status = 1;
        return;
    }
    for (uint64_t k = 0; k < items; k++)
        in[k] = k;
    double s1 = map_with(1, in, one);
    double sn = map_with(cores, in, all);

    /* The parent's own answer: a sieve. */
    composite[0] = composite[1] = 1;
    for (uint64_t i = 2; i * i < limit; i++)
        if (!composite[i])
            for (uint64_t j = i * i; j < limit; j += i)
                composite[j] = 1;
    uint64_t total = 0, wrong = 0;
    for (uint64_t k = 0; k < items; k++) {
        uint64_t n = 0;
        for (uint64_t x = k * block; x < (k + 1) * block; x++)
            n += !composite[x];
        wrong += one[k] != n || all[k] != n;
        total += all[k];
    }
    /* pi(10^k), for the limits that are powers of ten. */
    static const uint64_t pi[][2] = {{100000, 9592}, {1000000, 78498}, {10000000, 664579}};
    for (size_t i = 0; i < sizeof pi / sizeof *pi; i++)
        if (limit == pi[i][0] && total != pi[i][1])
            wrong++;
    if (wrong) {
        fprintf(stderr, "pool_map: %" PRIu64 " wrong results\n", wrong);
        status = 1;
    }
    printf("pool_map: primes below %" PRIu64 ": %" PRIu64 "; 1 process %.3f s, %d processes %.3f s\n",
           limit, total, s1, cores, sn);
    printf("items=%" PRIu64 " block=%" PRIu64 " primes=%" PRIu64 " processes=%d seconds_1=%.3f seconds_n=%.3f speedup=%.2f ok=%d\n",
           items, block, total, cores, s1, sn, sn > 0 ? s1 / sn : 0.0, status == 0);
    free(in);
    free(one);
    free(all);
    free(composite);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: pool_map [--items N] [--block B] [--processes P] [--chunksize C]\n"
                 "  --items N      blocks of numbers to count primes in (default 200)\n"
                 "  --block B      numbers per block (default 20000)\n"
                 "  --processes P  the second run's worker processes (default: online cores)\n"
                 "  --chunksize C  items per task (default 1)\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"items", required_argument, NULL, 'n'},     {"block", required_argument, NULL, 'b'},
        {"processes", required_argument, NULL, 'p'}, {"chunksize", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0},
    };
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cores = n > 0 ? (int)(n > 256 ? 256 : n) : 1;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': items = (uint64_t)args_num("pool_map", "--items", optarg, 1, 1000000, usage); break;
        case 'b': block = (uint64_t)args_num("pool_map", "--block", optarg, 1, 10000000, usage); break;
        case 'p': cores = (int)args_num("pool_map", "--processes", optarg, 1, 256, usage); break;
        case 'c': chunksize = (size_t)args_num("pool_map", "--chunksize", optarg, 1, 1000000, usage); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || items * block > 2000000000u) {
        usage(stderr);
        return 2;
    }
    int rc = sl_init(NULL);
    if (rc < 0 || !sl_spawn(program, NULL) || (rc = sl_run()) < 0) {
        fprintf(stderr, "pool_map: runtime: %s\n", sl_strerror(rc));
        return 1;
    }
    sl_shutdown();
    return status;
}
