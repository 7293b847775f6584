/* bench_mpi.c - the MPI layer's costs, run as
 *   mpirun --oversubscribe -np 3 bench/bench_mpi
 * (rank 0 measures, ranks 1 and 2 serve; run as root, Open MPI also wants
 * OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1).
 *
 * Measures, in this order, in one run:
 *   rtt      rank 0 sends 8 bytes on a channel homed on rank 1, whose
 *            tasklet sends them back on one homed on rank 0: --rounds
 *            round trips (both sides busy in the loop); rtt_us.
 *   mpi_rtt  the same with the ranks' main threads calling MPI_Send and
 *            MPI_Recv directly (no tasklets, Open MPI's own spinning), in
 *            the same run, rank 2 asleep; mpi_rtt_us.
 *   idle     ranks 1 and 2 park on a channel for --idle-ms while rank 0
 *            sleeps; each reports its process CPU time over that span
 *            (getrusage: every thread, MPI's too): idle_cpu_pct is the
 *            larger. Then rank 0 wakes each with a send that returns once
 *            the sleeping rank has taken the message: wake_us (a doorbell
 *            ring, two wake-ups, a message each way).
 *   one      pool: submit one no-op task (8 bytes each way), wait, free;
 *            then the next: --one N of them; one_tasks_per_sec.
 *   bulk     pool: submit --tasks N no-op tasks, then wait for each in
 *            order (a message per task each way, no batching);
 *            tasks_per_sec. rank0_cpu_us_per_task: rank 0's own CPU time
 *            (dispatching, collecting) per task of the best run.
 *   map      sl_mpi_pool_map over --map-items tiny items (8 bytes in, 8
 *            out) at the default chunksize (map_tasks_per_sec) and at
 *            chunksize 1000 (map_c1000_tasks_per_sec), as mpi4py's
 *            executor.map(chunksize=1000) in bench/mpi_python.py.
 * Each runs once to warm up, then --runs times; the best run counts. Every
 * result is checked (exit 1 if one is wrong). The last line is key=value
 * pairs ending with tasks_per_sec= map_tasks_per_sec= rtt_us= mpi_rtt_us=
 * idle_cpu_pct=. Exit 2 on bad usage. */
#define _GNU_SOURCE
#include "args.h"
#include <getopt.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <stackless_mpi.h>

static struct {
    uint64_t runs, rounds, one, tasks, map_items, idle_ms;
    const char *measures;
} opt = {5, 20000, 20000, 200000, 4000000, 1000, "rtt,mpi_rtt,idle,one,bulk,map"};

static bool wanted(const char *m)
{
    size_t n = strlen(m);
    for (const char *s = opt.measures; (s = strstr(s, m)); s += n)
        if ((s == opt.measures || s[-1] == ',') && (s[n] == ',' || s[n] == 0))
            return true;
    return false;
}

static int me, nranks, failed;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static void fail(const char *what, int rc)
{
    fprintf(stderr, "bench_mpi: rank %d: %s: %s\n", me, what,
            rc < 0 ? sl_strerror(rc) : "wrong result");
    failed = 1;
}

static int noop(const void *in, size_t in_len, void *out, size_t *out_len)
{
    if (in_len > *out_len)
        return SL_EINVAL;
    memcpy(out, in, in_len);
    *out_len = in_len;
    return 0;
}
SL_MPI_TASK(noop)

/* out = 2 in + 1 */
static int tiny(const void *in, size_t in_len, void *out, size_t *out_len)
{
    uint64_t x;
    (void)in_len;
    memcpy(&x, in, sizeof x);
    x = 2 * x + 1;
    memcpy(out, &x, sizeof x);
    *out_len = sizeof x;
    return 0;
}
SL_MPI_TASK(tiny)

/* ---- channels ------------------------------------------------------------ */

enum { K_PING = 1, K_PONG, K_CTL, K_REPORT, K_READY };
static sl_mpi_chan *ping, *pong, *ctl_mine, *ctl[16], *report, *ready_ch;

static void ctl_send(int r, int64_t v)
{
    int rc = sl_mpi_chan_send(ctl[r], &v, sizeof v);
    if (rc < 0)
        fail("control send", rc);
}

static int64_t ctl_wait(void)
{
    int64_t v = -1;
    size_t len = sizeof v;
    int rc = sl_mpi_chan_receive(ctl_mine, &v, &len);
    if (rc < 0)
        fail("control receive", rc);
    return v;
}

/* Rank 0's side of n round trips; ns they took. */
static uint64_t rtt_run(uint64_t n)
{
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = i, back = 0;
        size_t len = sizeof back;
        int rc = sl_mpi_chan_send(ping, &v, sizeof v);
        if (rc == 0)
            rc = sl_mpi_chan_receive(pong, &back, &len);
        if (rc < 0 || back != i + 1) {
            fail("ping-pong", rc);
            break;
        }
    }
    return now_ns() - t0;
}

/* Rank 1's echo of n round trips. */
static void rtt_echo(uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = 0;
        size_t len = sizeof v;
        int rc = sl_mpi_chan_receive(ping, &v, &len);
        v++;
        if (rc == 0)
            rc = sl_mpi_chan_send(pong, &v, sizeof v);
        if (rc < 0) {
            fail("echo", rc);
            break;
        }
    }
}

/* The raw MPI ping-pong between the main threads of ranks 0 and 1. */
static uint64_t mpi_rtt_run(MPI_Comm comm, uint64_t n)
{
    uint64_t v = 0, t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        if (me == 0) {
            v = i;
            MPI_Send(&v, 8, MPI_BYTE, 1, 9, comm);
            MPI_Recv(&v, 8, MPI_BYTE, 1, 9, comm, MPI_STATUS_IGNORE);
            if (v != i + 1)
                fail("MPI ping-pong", 0);
        } else {
            MPI_Recv(&v, 8, MPI_BYTE, 0, 9, comm, MPI_STATUS_IGNORE);
            v++;
            MPI_Send(&v, 8, MPI_BYTE, 0, 9, comm);
        }
    }
    return now_ns() - t0;
}

/* Ranks 0 and 1 before their main threads block in MPI themselves: every
 * answer either owes the other is sent first (sl_mpi_flush), else the
 * other could wait for it while we sit in MPI_Recv. */
static void raw_sync(void)
{
    int32_t ready = 1;
    size_t len = sizeof ready;
    int rc = me == 1 ? sl_mpi_chan_send(ready_ch, &ready, sizeof ready)
                     : sl_mpi_chan_receive(ready_ch, &ready, &len);
    if (rc < 0)
        fail("ready", rc);
    sl_mpi_flush();
}

/* ---- the pool (rank 0) --------------------------------------------------- */

static uint64_t one_run(sl_mpi_pool *pool, uint64_t n)
{
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        sl_mpi_future *f;
        uint64_t back = 0;
        size_t len = sizeof back;
        int rc = sl_mpi_pool_submit(pool, noop, &i, sizeof i, &f);
        if (rc == 0) {
            rc = sl_mpi_future_wait(f, &back, &len);
            sl_mpi_future_free(f);
        }
        if (rc < 0 || back != i) {
            fail("one task", rc);
            break;
        }
    }
    return now_ns() - t0;
}

static sl_mpi_future **futs;

static uint64_t bulk_run(sl_mpi_pool *pool, uint64_t n)
{
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        int rc = sl_mpi_pool_submit(pool, noop, &i, sizeof i, &futs[i]);
        if (rc < 0) {
            fail("submit", rc);
            return now_ns() - t0;
        }
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t back = 0;
        size_t len = sizeof back;
        int rc = sl_mpi_future_wait(futs[i], &back, &len);
        sl_mpi_future_free(futs[i]);
        if (rc < 0 || back != i)
            fail("bulk task", rc);
    }
    return now_ns() - t0;
}

static uint64_t *map_in, *map_out;

static uint64_t map_run(sl_mpi_pool *pool, uint64_t n, size_t chunk)
{
    memset(map_out, 0, n * sizeof *map_out);
    uint64_t t0 = now_ns();
    int rc = sl_mpi_pool_map(pool, tiny, map_in, 8, n, map_out, 8, chunk, NULL);
    uint64_t dt = now_ns() - t0;
    if (rc < 0)
        fail("map", rc);
    for (uint64_t i = 0; i < n; i += n / 1000 + 1)
        if (map_out[i] != 2 * i + 1) {
            fail("map result", 0);
            break;
        }
    if (map_out[n - 1] != 2 * (n - 1) + 1)
        fail("map result", 0);
    return dt;
}

/* What a measure runs: n operations, the ns they took. */
typedef uint64_t (*measure)(void *ctx, uint64_t n);

/* A warm-up of n / 10 + 1, then opt.runs runs of n: the best ns. */
static uint64_t best_of(measure fn, void *ctx, uint64_t n)
{
    fn(ctx, n / 10 + 1);
    uint64_t best = UINT64_MAX;
    for (uint64_t r = 0; r < opt.runs; r++) {
        uint64_t t = fn(ctx, n);
        if (t < best)
            best = t;
    }
    return best;
}

static uint64_t m_one(void *ctx, uint64_t n) { return one_run(ctx, n); }
static uint64_t m_map(void *ctx, uint64_t n) { return map_run(ctx, n, 0); }
static uint64_t m_map1000(void *ctx, uint64_t n) { return map_run(ctx, n, 1000); }

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun --oversubscribe -np 3 bench_mpi [--runs R] [--rounds N] [--one N]\n"
            "         [--tasks N] [--map-items N] [--idle-ms MS]\n"
            "  --runs R       timed runs of each measure, the best counts (default 5)\n"
            "  --rounds N     channel and raw MPI round trips per run (default 20000)\n"
            "  --one N        tasks submitted and awaited one at a time (default 20000)\n"
            "  --tasks N      tasks submitted, then awaited (default 200000)\n"
            "  --map-items N  items of the maps (default 4000000)\n"
            "  --idle-ms MS   how long ranks 1 and 2 stay idle (default 1000)\n"
            "  --measures L   some of rtt,mpi_rtt,idle,one,bulk,map (default all)\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"runs", required_argument, NULL, 'r'},  {"rounds", required_argument, NULL, 'n'},
        {"one", required_argument, NULL, 'o'},   {"tasks", required_argument, NULL, 't'},
        {"map-items", required_argument, NULL, 'm'}, {"idle-ms", required_argument, NULL, 'i'},
        {"measures", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'r':
            opt.runs = (uint64_t)args_num("bench_mpi", "--runs", optarg, 1, 1000, usage);
            break;
        case 'n':
            opt.rounds = (uint64_t)args_num("bench_mpi", "--rounds", optarg, 1, 1u << 30, usage);
            break;
        case 'o':
            opt.one = (uint64_t)args_num("bench_mpi", "--one", optarg, 1, 1u << 30, usage);
            break;
        case 't':
            opt.tasks = (uint64_t)args_num("bench_mpi", "--tasks", optarg, 1, 1u << 26, usage);
            break;
        case 'm':
            opt.map_items =
                (uint64_t)args_num("bench_mpi", "--map-items", optarg, 1000, 1u << 28, usage);
            break;
        case 'i':
            opt.idle_ms = (uint64_t)args_num("bench_mpi", "--idle-ms", optarg, 10, 600000, usage);
            break;
        case 'M': opt.measures = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (sl_init(NULL) < 0 || sl_mpi_init(&argc, &argv, NULL) < 0) {
        fprintf(stderr, "bench_mpi: cannot start\n");
        return 1;
    }
    me = sl_mpi_rank();
    nranks = sl_mpi_size();
    if (nranks < 3 || nranks > 16) {
        if (me == 0)
            fprintf(stderr, "bench_mpi: run with 3 to 16 ranks (mpirun -np 3), not %d\n", nranks);
        sl_mpi_finalize();
        sl_shutdown();
        return 2;
    }
    MPI_Comm raw;
    MPI_Comm_dup(MPI_COMM_WORLD, &raw);
    sl_mpi_chan_open(1, K_PING, &ping);
    sl_mpi_chan_open(0, K_PONG, &pong);
    sl_mpi_chan_open(0, K_REPORT, &report);
    sl_mpi_chan_open(0, K_READY, &ready_ch);
    for (int r = 0; r < nranks; r++)
        sl_mpi_chan_open(r, K_CTL, &ctl[r]);
    ctl_mine = ctl[me];

    /* rtt and the raw MPI one, run for run in turn (the machine's load
     * changes from second to second); rank 2 sleeps meanwhile. */
    double rtt_us = 0, mpi_rtt_us = 0;
    if (me <= 1 && (wanted("rtt") || wanted("mpi_rtt"))) {
        uint64_t best = UINT64_MAX, best_raw = UINT64_MAX;
        sl_mpi_stats s0, s1;
        sl_mpi_stats_get(&s0);
        for (uint64_t r = 0; r <= opt.runs; r++) {
            uint64_t n = r ? opt.rounds : opt.rounds / 10 + 1; /* r 0: warm-up */
            if (wanted("rtt")) {
                uint64_t t = me == 0 ? rtt_run(n) : (rtt_echo(n), 0);
                if (r && t < best)
                    best = t;
            }
            if (wanted("mpi_rtt")) {
                raw_sync();
                uint64_t t = mpi_rtt_run(raw, n);
                if (r && t < best_raw)
                    best_raw = t;
            }
        }
        sl_mpi_stats_get(&s1);
        uint64_t total = opt.rounds / 10 + 1 + opt.runs * opt.rounds;
        if (wanted("rtt")) {
            rtt_us = (double)best / opt.rounds / 1000.0;
            fprintf(stderr,
                    "rtt: rank %d: per round trip %.2f polls, %.2f msgs sent, %.2f received, %.3f "
                    "sleeps\n",
                    me, (double)(s1.polls - s0.polls) / total,
                    (double)(s1.msgs_sent - s0.msgs_sent) / total,
                    (double)(s1.msgs_received - s0.msgs_received) / total,
                    (double)(s1.sleeps - s0.sleeps) / total);
        }
        if (wanted("mpi_rtt"))
            mpi_rtt_us = (double)best_raw / opt.rounds / 1000.0;
    }

    /* idle: every rank but 0 parks; then rank 0 wakes each in turn. */
    double idle_pct = 0, wake_us = 0;
    if (!wanted("idle")) {
    } else if (me == 0) {
        for (int r = 1; r < nranks; r++)
            ctl_send(r, 1); /* "stay idle" */
        sl_sleep_ms((int64_t)opt.idle_ms);
        for (int r = 1; r < nranks; r++) {
            uint64_t t0 = now_ns();
            ctl_send(r, 2); /* "wake" */
            double us = (double)(now_ns() - t0) / 1000.0;
            wake_us = us > wake_us ? us : wake_us;
            double pct = 0;
            size_t len = sizeof pct;
            int rc = sl_mpi_chan_receive(report, &pct, &len);
            if (rc < 0)
                fail("report", rc);
            idle_pct = pct > idle_pct ? pct : idle_pct;
        }
    } else {
        if (ctl_wait() != 1)
            fail("idle order", 0);
        sl_mpi_stats s0, s1;
        sl_mpi_stats_get(&s0);
        double c0 = cpu_s();
        uint64_t t0 = now_ns();
        if (ctl_wait() != 2)
            fail("wake order", 0);
        double pct = 100.0 * (cpu_s() - c0) / ((double)(now_ns() - t0) * 1e-9);
        sl_mpi_stats_get(&s1);
        fprintf(stderr,
                "idle rank %d: cpu %.3f%% of %.0f ms, sleeps %llu, timed wakes %llu, polls %llu\n",
                me, pct, (double)(now_ns() - t0) * 1e-6,
                (unsigned long long)(s1.sleeps - s0.sleeps),
                (unsigned long long)(s1.timed_wakes - s0.timed_wakes),
                (unsigned long long)(s1.polls - s0.polls));
        int rc = sl_mpi_chan_send(report, &pct, sizeof pct);
        if (rc < 0)
            fail("report", rc);
    }

    /* The pool. */
    sl_mpi_pool *pool = NULL;
    bool use_pool = wanted("one") || wanted("bulk") || wanted("map");
    int rc = use_pool ? sl_mpi_pool_new(&pool, NULL) : -1;
    if (rc < 0 && use_pool)
        fail("sl_mpi_pool_new", rc);
    double one_tps = 0, bulk_tps = 0, map_tps = 0, map1000_tps = 0, cpu_per_task = 0;
    size_t default_chunk = 0;
    if (me == 0 && rc == 0) {
        uint64_t best;
        if (wanted("one")) {
            best = best_of(m_one, pool, opt.one);
            one_tps = opt.one / (best * 1e-9);
        }

        futs = malloc(opt.tasks * sizeof *futs);
        double best_cpu = 0;
        best = UINT64_MAX;
        if (wanted("bulk"))
            bulk_run(pool, opt.tasks / 10 + 1);
        for (uint64_t r = 0; wanted("bulk") && r < opt.runs; r++) {
            double c0 = cpu_s();
            uint64_t t = bulk_run(pool, opt.tasks);
            if (t < best) {
                best = t;
                best_cpu = cpu_s() - c0;
            }
        }
        bulk_tps = opt.tasks / (best * 1e-9);
        cpu_per_task = best_cpu / opt.tasks * 1e6;
        free(futs);

        map_in = malloc(opt.map_items * 8);
        map_out = malloc(opt.map_items * 8);
        for (uint64_t i = 0; i < opt.map_items; i++)
            map_in[i] = i;
        if (wanted("map")) {
            best = best_of(m_map, pool, opt.map_items);
            map_tps = opt.map_items / (best * 1e-9);
            best = best_of(m_map1000, pool, opt.map_items);
            map1000_tps = opt.map_items / (best * 1e-9);
        }
        default_chunk = opt.map_items / (4 * (size_t)(nranks - 1));
        if (default_chunk > 4096)
            default_chunk = 4096; /* 64 KiB of results: 8 + 8 bytes an item */
        free(map_in);
        free(map_out);
        sl_mpi_pool_close(pool);
        sl_mpi_pool_join(pool);
        sl_mpi_pool_free(pool);
    }

    /* What each rank's progress tasklet did, on stderr. */
    sl_mpi_stats st;
    if (sl_mpi_stats_get(&st) == 0)
        fprintf(stderr,
                "rank %d: msgs sent %llu received %llu bundled %llu, polls %llu, sleeps %llu "
                "(timed %llu, late %llu), rings sent %llu received %llu\n",
                me, (unsigned long long)st.msgs_sent, (unsigned long long)st.msgs_received,
                (unsigned long long)st.records_bundled, (unsigned long long)st.polls,
                (unsigned long long)st.sleeps, (unsigned long long)st.timed_wakes,
                (unsigned long long)st.late_wakes, (unsigned long long)st.rings_sent,
                (unsigned long long)st.rings_received);

    /* Everyone's failures to rank 0. */
    int32_t f = failed;
    if (me != 0) {
        sl_mpi_chan_send(report, &f, sizeof f);
    } else {
        for (int r = 1; r < nranks; r++) {
            size_t len = sizeof f;
            if (sl_mpi_chan_receive(report, &f, &len) < 0 || f)
                failed = 1;
        }
    }
    if (me == 0) {
        printf("rtt: %.3f us a round trip (channels, 8 bytes); raw MPI %.3f us (ratio %.2f)\n",
               rtt_us, mpi_rtt_us, rtt_us / mpi_rtt_us);
        printf("idle: %.3f%% CPU (the busier idle rank); waking a sleeping rank %.1f us\n",
               idle_pct, wake_us);
        printf("pool: one at a time %.0f tasks/s; bulk %.0f tasks/s (rank 0 %.2f us CPU a task); "
               "map %.0f items/s (chunk %zu), chunksize 1000 %.0f items/s\n",
               one_tps, bulk_tps, cpu_per_task, map_tps, default_chunk, map1000_tps);
        printf(
            "ranks=%d runs=%llu rounds=%llu one=%llu tasks=%llu map_items=%llu idle_ms=%llu "
            "one_tasks_per_sec=%.0f map_c1000_tasks_per_sec=%.0f map_chunk=%zu wake_us=%.1f "
            "rank0_cpu_us_per_task=%.3f rtt_ratio=%.2f tasks_per_sec=%.0f map_tasks_per_sec=%.0f "
            "rtt_us=%.3f mpi_rtt_us=%.3f idle_cpu_pct=%.3f\n",
            nranks, (unsigned long long)opt.runs, (unsigned long long)opt.rounds,
            (unsigned long long)opt.one, (unsigned long long)opt.tasks,
            (unsigned long long)opt.map_items, (unsigned long long)opt.idle_ms, one_tps,
            map1000_tps, default_chunk, wake_us, cpu_per_task, rtt_us / mpi_rtt_us, bulk_tps,
            map_tps, rtt_us, mpi_rtt_us, idle_pct);
    }
    for (int r = 0; r < nranks; r++)
        sl_mpi_chan_free(ctl[r]);
    sl_mpi_chan_free(ping);
    sl_mpi_chan_free(pong);
    sl_mpi_chan_free(report);
    sl_mpi_chan_free(ready_ch);
    MPI_Comm_free(&raw);
    sl_mpi_finalize();
    sl_shutdown();
    return failed;
}
