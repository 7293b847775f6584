/* bench_parallel.c - CPU-bound work spread over tasklets: the workload that
 * M:N workers should speed up, and the one a single worker cannot.
 *
 * --tasklets T tasklets (default 64) each run --iters rounds (default
 * 12,500,000) of an ARX mixing function (SipHash's round on four 64-bit
 * words, seeded from the tasklet's index): pure register work, no memory
 * traffic, no channels. Every --yield-every rounds (default 100,000) a
 * tasklet calls sl_schedule(), so the scheduler gets a chance to move work
 * between workers. The defaults are about 2 s on one core of the 2-CPU VM
 * of docs/benchmarks.md.
 *
 * Each tasklet stores its final state in its own slot; main folds the slots
 * in index order into the checksum, so the checksum depends on T and
 * --iters only, never on the number of workers or on the order in which
 * tasklets ran. --repeat R runs the whole set R times (same checksum each
 * time, checked) and reports the fastest.
 *
 * Also reported: cpu_seconds (user+system time of the process during the
 * best run: about seconds x busy workers), and over all R runs threads (how
 * many OS threads ran a tasklet round, seen with gettid() at every yield)
 * and migrations (times a tasklet came back from sl_schedule() on another
 * thread than it left).
 *
 * Last line: workers=N tasklets=T seconds=S checksum=HEX iters=I
 * yield_every=Y cpu_seconds=C threads=K migrations=M ns_per_round=R.
 * Exit 1 on a runtime failure or a checksum that changed between repeats,
 * 2 on bad usage or a configuration the runtime refuses (sl_init says
 * SL_EINVAL, e.g. more workers than it supports). */
#include "args.h"
#include <stackless.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

#define MAX_THREADS 256

typedef struct job {
    uint64_t index;
    uint64_t result;
    char pad[48]; /* one job per cache line */
} job;

static uint64_t iters = 12500000, yield_every = 100000;
static atomic_int first_error;
static atomic_long migrations;
/* The distinct thread ids that ran tasklet rounds; 0 marks a free slot. */
static atomic_long tids[MAX_THREADS];

static void note_error(int rc)
{
    int none = 0;
    if (rc < 0)
        atomic_compare_exchange_strong(&first_error, &none, rc);
}

static long my_tid(void)
{
    return (long)syscall(SYS_gettid);
}

static void note_thread(long tid)
{
    for (int i = 0; i < MAX_THREADS; i++) {
        long seen = atomic_load_explicit(&tids[i], memory_order_relaxed);
        if (seen == tid)
            return;
        if (seen == 0) {
            long none = 0;
            if (atomic_compare_exchange_strong(&tids[i], &none, tid) || none == tid)
                return;
            i--; /* another thread took the slot: look at it again */
        }
    }
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* splitmix64's finaliser: a seed or a fold step. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void work(void *arg)
{
    job *j = arg;
    uint64_t v0 = mix64(j->index + 1), v1 = mix64(v0), v2 = mix64(v1), v3 = mix64(v2);
    long tid = my_tid();
    note_thread(tid);
    for (uint64_t done = 0; done < iters;) {
        uint64_t n = iters - done < yield_every ? iters - done : yield_every;
        for (uint64_t i = 0; i < n; i++) {
            /* one SipRound, plus a counter so the state never cycles short */
            v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
            v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
            v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
            v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
            v3 ^= done + i;
        }
        done += n;
        if (done < iters) {
            int rc = sl_schedule();
            if (rc < 0) {
                note_error(rc);
                return;
            }
            long now = my_tid();
            if (now != tid) {
                atomic_fetch_add_explicit(&migrations, 1, memory_order_relaxed);
                note_thread(now);
                tid = now;
            }
        }
    }
    j->result = v0 ^ v1 ^ v2 ^ v3;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bench_parallel [--workers N] [--tasklets T] [--iters I] [--yield-every Y] [--repeat R]\n"
            "  --workers N      OS threads running tasklets (sl_config.workers, default 1)\n"
            "  --tasklets T     tasklets, each doing the same amount of work (default 64)\n"
            "  --iters I        mixing rounds per tasklet (default 12500000)\n"
            "  --yield-every Y  rounds between two sl_schedule() calls (default 100000)\n"
            "  --repeat R       run the whole set R times, report the fastest (default 1)\n"
            "The last line is: workers=N tasklets=T seconds=S checksum=HEX iters=I\n"
            "yield_every=Y cpu_seconds=C threads=K migrations=M ns_per_round=R.\n"
            "The checksum depends on T and I only.\n");
}

static uint64_t parse_num(const char *flag, const char *s, uint64_t min, uint64_t max)
{
    return (uint64_t)args_num("bench_parallel", flag, s, (int64_t)min, (uint64_t)max, usage);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"workers", required_argument, NULL, 'w'}, {"tasklets", required_argument, NULL, 't'},
        {"iters", required_argument, NULL, 'i'},   {"yield-every", required_argument, NULL, 'y'},
        {"repeat", required_argument, NULL, 'r'},  {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t ntasklets = 64, repeat = 1;
    int workers = 1, c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'w': workers = (int)parse_num("--workers", optarg, 1, 1024); break;
        case 't': ntasklets = parse_num("--tasklets", optarg, 1, 10000000); break;
        case 'i': iters = parse_num("--iters", optarg, 1, UINT64_MAX / 2); break;
        case 'y': yield_every = parse_num("--yield-every", optarg, 1, UINT64_MAX / 2); break;
        case 'r': repeat = parse_num("--repeat", optarg, 1, 1000); break;
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
    int rc = sl_init(&cfg);
    if (rc < 0) {
        fprintf(stderr, "bench_parallel: sl_init(workers=%d): %s\n", workers, sl_strerror(rc));
        return rc == SL_EINVAL ? 2 : 1;
    }
    job *jobs = aligned_alloc(64, ntasklets * sizeof *jobs);
    if (!jobs) {
        fprintf(stderr, "bench_parallel: out of memory\n");
        return 1;
    }
    uint64_t best_ns = UINT64_MAX, checksum = 0;
    double best_cpu = 0;
    for (uint64_t r = 1; r <= repeat; r++) {
        for (uint64_t i = 0; i < ntasklets; i++)
            jobs[i] = (job){.index = i};
        double c0 = cpu_seconds();
        uint64_t t0 = bench_now_ns();
        for (uint64_t i = 0; i < ntasklets; i++) {
            if (!sl_spawn(work, &jobs[i])) {
                fprintf(stderr, "bench_parallel: sl_spawn failed after %" PRIu64 " tasklets\n", i);
                return 1;
            }
        }
        rc = sl_run();
        uint64_t ns = bench_now_ns() - t0;
        double cpu = cpu_seconds() - c0;
        int err = atomic_load(&first_error), live = sl_getlivecount();
        if (rc < 0 || err < 0 || live != 0) {
            fprintf(stderr, "bench_parallel: sl_run: %s; tasklets: %s; %d left alive\n",
                    sl_strerror(rc), sl_strerror(err), live);
            return 1;
        }
        uint64_t sum = 0x6a09e667f3bcc908ull;
        for (uint64_t i = 0; i < ntasklets; i++)
            sum = mix64(sum ^ jobs[i].result);
        if (r > 1 && sum != checksum) {
            fprintf(stderr, "bench_parallel: run %" PRIu64 " checksum %016" PRIx64 ", run 1 %016" PRIx64 "\n",
                    r, sum, checksum);
            return 1;
        }
        checksum = sum;
        printf("run %" PRIu64 ": %.4f s, cpu %.4f s\n", r, ns / 1e9, cpu);
        if (ns < best_ns) {
            best_ns = ns;
            best_cpu = cpu;
        }
    }
    if ((rc = sl_shutdown()) < 0) {
        fprintf(stderr, "bench_parallel: sl_shutdown: %s\n", sl_strerror(rc));
        return 1;
    }
    free(jobs);
    int nthreads = 0;
    while (nthreads < MAX_THREADS && atomic_load(&tids[nthreads]))
        nthreads++;
    printf("workers=%d tasklets=%" PRIu64 " seconds=%.4f checksum=%016" PRIx64 " iters=%" PRIu64
           " yield_every=%" PRIu64 " cpu_seconds=%.4f threads=%d migrations=%ld ns_per_round=%.3f\n",
           workers, ntasklets, best_ns / 1e9, checksum, iters, yield_every, best_cpu, nthreads,
           atomic_load(&migrations), (double)best_ns / ((double)ntasklets * (double)iters));
    return 0;
}
