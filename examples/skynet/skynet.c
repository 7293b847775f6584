/* skynet.c - the skynet benchmark (github.com/atemerev/skynet) with
 * tasklets: a 10-ary tree of --leaves leaf tasklets (a power of 10, default
 * 1,000,000, so 1,111,111 tasklets in all). Every internal node makes a
 * result channel, spawns ten children and sums the ten numbers they send on
 * it; a leaf sends its own number (0 .. leaves-1). Each node then sends its
 * sum to its parent's channel, and main receives the root's. The result
 * must be leaves*(leaves-1)/2: the program checks it and exits 1 otherwise.
 *
 * The run queue is FIFO, so the tree unfolds level by level: all 111,111
 * internal nodes are spawned, run and wait in receive before the first leaf
 * runs. What happens at a leaf's send depends on the preference of its
 * parent's result channel (--preference; see docs/channel.md):
 *
 *   -1 (Stackless's default, prefer the receiver): every leaf finds its
 *      parent waiting, hands over and is switched out to the parent, which
 *      takes the number and waits again. The leaf is now at the end of the
 *      run queue, behind every other leaf: it ends only when the queue
 *      comes round, so all 1,000,000 leaf stacks are alive at once.
 *   +1 (prefer the sender): the first of ten siblings finds the parent
 *      waiting; its send returns at once and it ends, but the parent is now
 *      runnable at the end of the queue, no longer waiting, so the other
 *      nine siblings block in send, each holding its stack (900,000 of
 *      them). The parent then takes them one at a time, and each receive
 *      from a waiting sender switches to that sender and sends the parent to
 *      the end of the queue again: ten trips round the queue per level.
 *    0 (prefer neither): the same first hand-over as +1, and the same nine
 *      blocked siblings; but the parent drains the nine in one go (a receive
 *      from a waiting sender returns at once), and each sender just goes to
 *      the end of the queue and ends there.
 *
 * So no preference gives "one warm stack reused by every leaf": the leaf
 * that has just sent is either queued (-1) or its siblings are blocked
 * (0, +1). What 0 and +1 save is the first sibling's stack: 100,000 of
 * 1,111,111, 400 MB of peak RSS, and the first-touch page faults with them
 * (about 10 us each on this VM, see ../shared/reference/anchors.md).
 *
 * Measured on the 2-CPU, 24 GiB VM of docs/benchmarks.md, Release build
 * (library at f058569, one worker), default 1,000,000 leaves, eight fresh
 * processes per preference, interleaved:
 *
 *   for i in 1 2 3 4 5 6 7 8; do for p in -1 0 1; do
 *     build-sky/examples/skynet/skynet --preference $p | tail -n 1; done; done
 *
 *   preference  ms (cold: every stack page faulted in for the first time)  peak_rss_kb
 *     -1        4702 4762 4867 5483 5557 6725 6852 7134  (median 5520)    4,588,400
 *      0        3080 3305 3340 3503 3555 4235 4384 4516  (median 3529)    4,188,400
 *     +1        3295 3642 3784 4339 4365 4834 5060 6348  (median 4352)    4,188,400
 *
 *   build-sky/examples/skynet/skynet --preference $p --warmup --repeat 5
 *   (warm: best of five trees after a tenth-size warm-up; stacks reused;
 *   two processes each): -1 689 and 796 ms, 0 808 and 1128 ms,
 *   +1 1628 and 1733 ms.
 *
 * The choice: preference 0 (prefer neither). A skynet run is one tree in a
 * fresh process, and there 0 is the fastest (median 3.5 s against 5.5 s
 * for -1 and 4.4 s for +1) and, with +1, the smallest (400 MB less than -1).
 * +1 buys nothing over 0 here and costs ten trips round the run queue per
 * parent, which doubles its warm time. -1 is the fastest only once every
 * stack is warm (0.7-0.8 s against 0.8-1.1 s); --preference -1 gives
 * Stackless's order back. bench/run.sh reports both 0 and -1.
 * On two workers (ebf3c05) no ranking holds yet: four runs each of
 * --warmup --repeat 5, made while other processes kept up to one of the
 * two CPUs busy, gave best times of 1281-2567 ms for 0 and 433-3574 ms for
 * -1 (one worker: 681-894 ms for 0), so the choice rests on one worker.
 *
 * Usage: skynet [--leaves N] [--workers N] [--preference -1|0|1]
 *               [--repeat R] [--warmup] [--stack fixed|copy]
 * Last line: result=S workers=N ms=M first_ms=F leaves=N tasklets=T
 * preference=P repeat=R peak_rss_kb=K stack=fixed|copy, where ms is the
 * best of the R trees and first_ms the first. Exit status 0, 1 on a wrong result or a runtime
 * failure, 2 on bad usage or a configuration the runtime refuses (sl_init
 * says SL_EINVAL, e.g. more workers than it supports). */
#define _GNU_SOURCE
#include "args.h"
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <stackless.h>

#define DEFAULT_PREFERENCE 0 /* see the top of this file */

/* What a node is told: where to send its sum, and which leaves it covers.
 * A parent keeps its children's nodes in its own frame: it cannot return
 * before all ten have sent, and each copies its node before sending. With
 * copy stacks (--stack copy) a frame is valid only while its tasklet runs
 * (docs/stacks.md): the children run while the parent waits, so the nodes
 * go on the heap there. */
typedef struct node {
    sl_channel *up;
    int64_t first;  /* number of its first leaf */
    int64_t leaves; /* leaves below it (1: it is a leaf) */
} node;

static int preference = DEFAULT_PREFERENCE;
static int copy_stacks;
/* The first error any tasklet saw, 0 if none. Atomic: with M:N workers the
 * tasklets run on several threads. */
static atomic_int first_error;

static void note_error(int rc)
{
    int none = 0;
    if (rc < 0)
        atomic_compare_exchange_strong(&first_error, &none, rc);
}

static void skynet(void *arg)
{
    node me = *(const node *)arg;
    if (me.leaves == 1) {
        note_error(sl_channel_send(me.up, (void *)(intptr_t)me.first));
        return;
    }
    int64_t sum = 0;
    sl_channel *results = sl_channel_new();
    if (!results) {
        note_error(SL_ENOMEM);
    } else {
        sl_channel_set_preference(results, preference);
        node frame_kids[10];
        node *kids = copy_stacks ? malloc(10 * sizeof *kids) : frame_kids;
        if (!kids) {
            note_error(SL_ENOMEM);
            kids = frame_kids; /* spawns none: the loop below fails */
        }
        int spawned = 0;
        int64_t sub = me.leaves / 10;
        for (int i = 0; i < 10; i++) {
            kids[i] = (node){results, me.first + i * sub, sub};
            if (!sl_spawn(skynet, &kids[i])) {
                note_error(SL_ENOMEM); /* the sum will be short: main says so */
                break;
            }
            spawned++;
        }
        for (int i = 0; i < spawned; i++) {
            void *v;
            int rc = sl_channel_receive(results, &v);
            if (rc < 0) {
                note_error(rc);
                break;
            }
            sum += (int64_t)(intptr_t)v;
        }
        if (kids != frame_kids)
            free(kids);
        note_error(sl_channel_free(results));
    }
    note_error(sl_channel_send(me.up, (void *)(intptr_t)sum));
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Builds one tree; 0 with *sum and *ms set, or 1 after a message. */
static int run_tree(int64_t leaves, int64_t *sum, double *ms)
{
    sl_channel *top = sl_channel_new();
    if (!top) {
        fprintf(stderr, "skynet: out of memory\n");
        return 1;
    }
    sl_channel_set_preference(top, preference);
    node root = {top, 0, leaves};
    void *v = NULL;
    double t0 = now_ms();
    int rc = sl_spawn(skynet, &root) ? 0 : SL_ENOMEM;
    if (rc == 0)
        rc = sl_channel_receive(top, &v); /* main waits; the tree runs */
    if (rc == 0)
        rc = sl_run(); /* let the root end */
    *ms = now_ms() - t0;
    int err = atomic_load(&first_error), live = sl_getlivecount();
    if (rc < 0 || err < 0 || live != 0) {
        fprintf(stderr, "skynet: tree of %" PRId64 " leaves failed: main: %s; tasklets: %s; %d left alive\n",
                leaves, sl_strerror(rc), sl_strerror(err), live);
        return 1;
    }
    if ((rc = sl_channel_free(top)) < 0) {
        fprintf(stderr, "skynet: sl_channel_free: %s\n", sl_strerror(rc));
        return 1;
    }
    *sum = (int64_t)(intptr_t)v;
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: skynet [--leaves N] [--workers N] [--preference -1|0|1] [--repeat R] [--warmup]\n"
            "              [--stack fixed|copy]\n"
            "  --leaves N          leaf tasklets, a power of 10 (default 1000000)\n"
            "  --workers N         OS threads running tasklets (sl_config.workers, default 1)\n"
            "  --preference P      preference of every result channel (default %d)\n"
            "  --repeat R          build the tree R times in one runtime; ms is the best (default 1)\n"
            "  --warmup            first build an untimed tree a tenth the size\n"
            "  --stack fixed|copy  a stack per tasklet (default) or copy stacks (docs/stacks.md)\n"
            "The last line is: result=S workers=N ms=M first_ms=F leaves=N tasklets=T\n"
            "preference=P repeat=R peak_rss_kb=K stack=fixed|copy. Exit 1 if S != N*(N-1)/2.\n",
            DEFAULT_PREFERENCE);
}

static int64_t parse_num(const char *flag, const char *s, int64_t min, int64_t max)
{
    return (int64_t)args_num("skynet", flag, s, (int64_t)min, (uint64_t)max, usage);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"leaves", required_argument, NULL, 'l'},     {"workers", required_argument, NULL, 'w'},
        {"preference", required_argument, NULL, 'p'}, {"repeat", required_argument, NULL, 'r'},
        {"warmup", no_argument, NULL, 'W'},           {"help", no_argument, NULL, 'h'},
        {"stack", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    int64_t leaves = 1000000, repeat = 1;
    int workers = 1, c;
    int warmup = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'l': leaves = parse_num("--leaves", optarg, 1, 1000000000); break;
        case 'w': workers = (int)parse_num("--workers", optarg, 1, 1024); break;
        case 'p': preference = (int)parse_num("--preference", optarg, -1, 1); break;
        case 'r': repeat = parse_num("--repeat", optarg, 1, 1000000); break;
        case 'W': warmup = 1; break;
        case 's':
            if (strcmp(optarg, "copy") == 0) {
                copy_stacks = 1;
            } else if (strcmp(optarg, "fixed") != 0) {
                usage(stderr);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    for (int64_t l = leaves; l > 1; l /= 10) {
        if (l % 10) {
            fprintf(stderr, "skynet: --leaves %" PRId64 " is not a power of 10\n", leaves);
            return 2;
        }
    }

    sl_config cfg;
    sl_config_init(&cfg);
    cfg.workers = workers;
    cfg.stack_mode = copy_stacks ? SL_STACK_COPY : SL_STACK_FIXED;
    int rc = sl_init(&cfg);
    if (rc < 0) {
        fprintf(stderr, "skynet: sl_init(workers=%d): %s\n", workers, sl_strerror(rc));
        return rc == SL_EINVAL ? 2 : 1;
    }
    int64_t want = leaves * (leaves - 1) / 2, sum = 0;
    int64_t tasklets = (leaves * 10 - 1) / 9; /* 1 + 10 + ... + leaves */
    double ms, best = 0, first = 0;
    int status = 0;
    if (warmup && run_tree(leaves >= 10 ? leaves / 10 : 1, &sum, &ms))
        status = 1;
    for (int64_t r = 1; r <= repeat && !status; r++) {
        if (run_tree(leaves, &sum, &ms)) {
            status = 1;
        } else if (sum != want) {
            fprintf(stderr, "skynet: result %" PRId64 ", want %" PRId64 "\n", sum, want);
            status = 1;
        } else {
            if (repeat > 1)
                printf("run %" PRId64 ": result=%" PRId64 " ms=%.1f\n", r, sum, ms);
            if (r == 1)
                first = best = ms;
            if (ms < best)
                best = ms;
        }
    }
    if ((rc = sl_shutdown()) < 0) {
        fprintf(stderr, "skynet: sl_shutdown: %s\n", sl_strerror(rc));
        status = 1;
    }
    if (status) {
        printf("result=%" PRId64 " workers=%d error=1\n", sum, workers);
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("result=%" PRId64 " workers=%d ms=%.1f first_ms=%.1f leaves=%" PRId64 " tasklets=%" PRId64
           " preference=%d repeat=%" PRId64 " peak_rss_kb=%ld stack=%s\n",
           sum, workers, best, first, leaves, tasklets, preference, repeat, ru.ru_maxrss,
           copy_stacks ? "copy" : "fixed");
    return 0;
}
