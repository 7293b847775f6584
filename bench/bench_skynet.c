/* bench_skynet.c - the skynet benchmark (github.com/atemerev/skynet) with
 * tasklets, beside bench/go/skynet.go: a tree in which every node spawns ten
 * children until --size leaves each send their number up a channel; every
 * node sums what its children send and sends the sum to its parent.
 * 1,000,000 leaves make 1,111,111 tasklets.
 *
 * The run queue is FIFO, so the tree unfolds level by level: every node is
 * spawned (and, with the default preference, every leaf has run and holds a
 * stack) before the first leaf ends. That is the Stackless order, and it is
 * what this measures; --preference 1 lets each leaf end as soon as it has
 * sent, so its stack is reused at once. */
#include <stackless.h>
#include <sys/resource.h>

#include "bench.h"

/* Tree nodes travel to their tasklet on the heap; the tasklet frees it. */
typedef struct node {
    sl_channel *parent;
    long num, size;
} node;

static int pref = -1;
static int failed;
static uint64_t spawned;

static void fail(int rc)
{
    if (rc < 0 && !failed)
        failed = rc;
}

static void skynet(void *arg)
{
    node n = *(node *)arg;
    free(arg);
    if (n.size == 1) {
        fail(sl_channel_send(n.parent, (void *)(intptr_t)n.num));
        return;
    }
    sl_channel *rc = sl_channel_new();
    if (!rc) {
        fail(SL_ENOMEM);
        return;
    }
    sl_channel_set_preference(rc, pref);
    long sub = n.size / 10;
    for (int i = 0; i < 10; i++) {
        node *c = malloc(sizeof *c);
        if (!c || !sl_spawn(skynet, c)) {
            fail(SL_ENOMEM);
            exit(1); /* no way to unwind a half-spawned tree here */
        }
        *c = (node){rc, n.num + i * sub, sub};
        spawned++;
    }
    long sum = 0;
    for (int i = 0; i < 10; i++) {
        void *v;
        if (sl_channel_receive(rc, &v) < 0)
            fail(SL_ESTATE);
        sum += (long)(intptr_t)v;
    }
    sl_channel_free(rc);
    fail(sl_channel_send(n.parent, (void *)(intptr_t)sum));
}

/* One tree of size leaves; returns ns and stores the root's sum. */
static uint64_t run_once(long size, long *sum)
{
    sl_channel *top = sl_channel_new();
    node *root = malloc(sizeof *root);
    if (!top || !root) {
        fprintf(stderr, "bench_skynet: out of memory\n");
        exit(1);
    }
    *root = (node){top, 0, size};
    spawned = 1;
    uint64_t t0 = bench_now_ns();
    if (!sl_spawn(skynet, root)) {
        fprintf(stderr, "bench_skynet: sl_spawn failed\n");
        exit(1);
    }
    void *v;
    int rc = sl_channel_receive(top, &v); /* main waits; the tree runs */
    if (rc == 0)
        rc = sl_run(); /* let the root end */
    uint64_t ns = bench_now_ns() - t0;
    if (rc < 0 || failed || sl_getlivecount() != 0) {
        fprintf(stderr, "bench_skynet: %s / %s, %d tasklets left\n", sl_strerror(rc),
                sl_strerror(failed), sl_getlivecount());
        exit(1);
    }
    sl_channel_free(top);
    *sum = (long)(intptr_t)v;
    return ns;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"size", required_argument, NULL, 's'},
        {"runs", required_argument, NULL, 'r'},
        {"preference", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long size = 1000000, runs = 5;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 's': size = strtol(optarg, &end, 10); if (*end || size < 1) goto bad; break;
        case 'r': runs = strtol(optarg, &end, 10); if (*end || runs < 1) goto bad; break;
        case 'p': pref = (int)strtol(optarg, &end, 10); if (*end || pref < -1 || pref > 1) goto bad; break;
        case 'h':
            printf("usage: bench_skynet [--size LEAVES] [--runs R] [--preference -1|0|1]\n");
            return 0;
        default: goto bad;
        }
    }
    if (optind < argc)
        goto bad;
    for (long s = size; s > 1; s /= 10)
        if (s % 10)
            goto bad;

    int rc = sl_init(NULL);
    if (rc < 0) {
        fprintf(stderr, "bench_skynet: sl_init: %s\n", sl_strerror(rc));
        return 1;
    }
    long want = size * (size - 1) / 2, sum = 0;
    uint64_t best = UINT64_MAX, first = 0;
    run_once(size / 10 ? size / 10 : 1, &sum); /* warm-up */
    for (long r = 1; r <= runs; r++) {
        uint64_t ns = run_once(size, &sum);
        if (sum != want) {
            fprintf(stderr, "bench_skynet: sum %ld, want %ld\n", sum, want);
            return 1;
        }
        printf("run %ld: sum %ld in %.3f ms\n", r, sum, ns / 1e6);
        if (r == 1)
            first = ns;
        if (ns < best)
            best = ns;
    }
    sl_shutdown();
    printf("bench_skynet: %ld leaves, %" PRIu64 " tasklets, preference %d; best of %ld runs after a warm-up\n",
           size, spawned, pref, runs);
    /* The first run at full size maps and first-touches the stacks; later
     * runs reuse them. Both are printed; seconds is the best run. */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("size=%ld runs=%ld tasklets=%" PRIu64 " sum=%ld peak_rss_kb=%ld first_run_seconds=%.4f "
           "seconds=%.4f ns_per_tasklet=%.1f\n",
           size, runs, spawned, want, ru.ru_maxrss, first / 1e9, best / 1e9,
           (double)best / (double)spawned);
    return 0;

bad:
    fprintf(stderr, "usage: bench_skynet [--size LEAVES (a power of 10)] [--runs R] [--preference -1|0|1]\n");
    return 2;
}
