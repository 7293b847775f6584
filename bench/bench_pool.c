/* bench_pool.c - the process pool's costs: no-op tasks submitted and
 * awaited one at a time and in bulk, tiny tasks through sl_pool_map, the
 * cross-process channel round trip, and a CPU-bound map on P processes
 * against one.
 *
 * Measures (--measures picks some, comma-separated; default all):
 *   one     submit one no-op task (8 bytes in, the same 8 out), wait for
 *           it, free the future; then the next. --tasks N of them.
 *   bulk    submit --bulk-tasks N no-op tasks, then wait for each in order
 *           (submit blocks the tasklet while every worker's queue is full).
 *   map     sl_pool_map over --map-items N items of 8 bytes (out = 2 in +
 *           1), at the default chunksize and at --big-chunk items; and over
 *           --map-c1-items items at chunksize 1 (a task per item, as
 *           Python's map with chunksize=1).
 *   heap    like bulk, with a 1 KiB input and a 4 KiB result per task
 *           (--heap-tasks N): both too large for a ring slot, so the input
 *           goes through the shared heap and the result through the
 *           worker's result area.
 *   mpchan  the parent sends 8 bytes on one sl_mpchan and receives them
 *           back on another from a task in a worker that echoes them:
 *           --rounds round trips, both sides busy in the loop.
 *   cpu     sl_pool_map, chunksize 1, over --cpu-items items of about
 *           --cpu-ms ms of SipRounds each (calibrated at start) on P
 *           processes and on 1, the two pools taking turns run for run;
 *           the ratio of the best times is the speed-up. The parent's
 *           own CPU time during the best P-process run is reported too
 *           (cpu_parent_ms: it should wait, not spin). --cpu-trace
 *           prints, per run and worker process, the items it ran, the
 *           time inside them and its idle gaps between items (stderr).
 * Each measure runs once to warm up, then --runs times (default 5); the
 * best run counts. Every result is checked (exit 1 when one is wrong).
 *
 * Output: a line per measure, then one last line of key=value pairs with
 * every figure, ending with tasks_per_sec= (the bulk figure: submit N, then
 * wait for all). Exit 2 on bad usage. */
#include "args.h"
#include <getopt.h>
#include <stackless.h>
#include <string.h>

#include "bench.h"

static struct {
    int processes;
    uint64_t runs, tasks, bulk_tasks, heap_tasks, map_items, big_chunk, map_c1_items, rounds, cpu_items;
    double cpu_ms;
    int queue_depth;
    const char *measures;
    bool cpu_trace;
} opt = {2, 5, 100000, 200000, 50000, 10000000, 65536, 200000, 100000, 200, 1.0, 0, "one,bulk,heap,map,mpchan,cpu", false};

static struct {
    double one_tps, one_ns, bulk_tps, bulk_ns, heap_tps, heap_ns, map_tps, map_big_tps, map_c1_tps, rtt_us;
    double cpu_1_s, cpu_p_s, cpu_speedup, item_ms, cpu_parent_ms;
    uint64_t cpu_rounds, map_chunk_default;
    int failed;
} R;

static void fail(const char *what, int rc)
{
    fprintf(stderr, "bench_pool: %s: %s\n", what, rc < 0 ? sl_strerror(rc) : "wrong result");
    R.failed = 1;
}

static bool wanted(const char *m)
{
    size_t n = strlen(m);
    for (const char *s = opt.measures; (s = strstr(s, m)); s += n)
        if ((s == opt.measures || s[-1] == ',') && (s[n] == ',' || s[n] == 0))
            return true;
    return false;
}

/* ---- the tasks (run in the workers) ------------------------------------ */

static int noop(const void *in, size_t in_len, void *out, size_t *out_len)
{
    if (in_len > *out_len)
        return SL_EINVAL;
    memcpy(out, in, in_len);
    *out_len = in_len;
    return 0;
}

enum { HEAP_IN = 1024, HEAP_OUT = 4096 };

/* Four copies of its 1 KiB input. */
static int quadruple(const void *in, size_t in_len, void *out, size_t *out_len)
{
    if (in_len != HEAP_IN || *out_len < HEAP_OUT)
        return SL_EINVAL;
    for (int k = 0; k < HEAP_OUT / HEAP_IN; k++)
        memcpy((char *)out + k * HEAP_IN, in, HEAP_IN);
    *out_len = HEAP_OUT;
    return 0;
}

static int twice_plus_one(const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in_len;
    uint64_t v;
    memcpy(&v, in, 8);
    v = 2 * v + 1;
    memcpy(out, &v, 8);
    *out_len = 8;
    return 0;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* rounds SipRounds from seed: pure register work. */
static uint64_t spin_work(uint64_t seed, uint64_t rounds)
{
    uint64_t v0 = seed ^ 0x736f6d6570736575ull, v1 = seed + 0x646f72616e646f6dull,
             v2 = 0x6c7967656e657261ull, v3 = 0x7465646279746573ull;
    for (uint64_t i = 0; i < rounds; i++) {
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
        v3 ^= i;
    }
    return v0 ^ v1 ^ v2 ^ v3;
}

struct cpu_in {
    uint64_t seed, rounds;
};

/* --cpu-trace: a result is the value, then when the item started and
 * ended (CLOCK_MONOTONIC is the same clock in every process) and which
 * worker process ran it. */
struct cpu_out {
    uint64_t v, start_ns, end_ns, worker;
};

static int cpu_task(const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in_len;
    struct cpu_in c;
    memcpy(&c, in, sizeof c);
    uint64_t t0 = *out_len >= sizeof(struct cpu_out) ? bench_now_ns() : 0;
    uint64_t v = spin_work(c.seed, c.rounds);
    memcpy(out, &v, 8);
    if (*out_len >= sizeof(struct cpu_out)) {
        struct cpu_out o = {v, t0, bench_now_ns(), (uint64_t)sl_pool_worker_index()};
        memcpy(out, &o, sizeof o);
        *out_len = sizeof o;
    } else {
        *out_len = 8;
    }
    return 0;
}

struct echo_in {
    sl_mpchan *to_worker, *to_parent;
    uint64_t rounds;
};

/* In a worker: receive on one channel, send it back on the other. */
static int echo_task(const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in_len;
    struct echo_in e;
    memcpy(&e, in, sizeof e);
    *out_len = 0;
    (void)out;
    for (uint64_t i = 0; i < e.rounds; i++) {
        char buf[8];
        size_t len = sizeof buf;
        int rc = sl_mpchan_receive(e.to_worker, buf, &len);
        if (rc < 0)
            return rc;
        if ((rc = sl_mpchan_send(e.to_parent, buf, len)) < 0)
            return rc;
    }
    return 0;
}

/* ---- the measures (run in a tasklet of the parent) --------------------- */

static sl_pool *new_pool(int processes, size_t max_result, size_t shm)
{
    sl_pool_config c;
    sl_pool_config_init(&c);
    c.processes = processes;
    if (max_result)
        c.max_result_size = max_result;
    if (shm)
        c.shm_size = shm;
    if (opt.queue_depth)
        c.queue_depth = opt.queue_depth;
    sl_pool *p;
    int rc = sl_pool_new(&p, &c);
    if (rc < 0) {
        fail("sl_pool_new", rc);
        return NULL;
    }
    return p;
}

static void end_pool(sl_pool *p)
{
    int rc;
    if ((rc = sl_pool_close(p)) < 0 || (rc = sl_pool_join(p)) < 0)
        fail("close/join", rc);
    sl_pool_free(p);
}

static uint64_t run_one(sl_pool *p, uint64_t n)
{
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        sl_future *f;
        uint64_t v = 0;
        size_t len = sizeof v;
        int rc = sl_pool_submit(p, noop, &i, sizeof i, &f);
        if (rc < 0) {
            fail("sl_pool_submit", rc);
            return 1;
        }
        rc = sl_future_wait(f, &v, &len);
        sl_future_free(f);
        if (rc < 0 || len != 8 || v != i) {
            fail("one at a time: sl_future_wait", rc);
            return 1;
        }
    }
    return bench_now_ns() - t0;
}

static sl_future **futs;

/* n tasks fn submitted, then awaited in order: inputs of in_size bytes
 * starting with i, results of out_size bytes starting with it again. */
static uint64_t run_bulk(sl_pool *p, uint64_t n, sl_task_fn fn, size_t in_size, size_t out_size)
{
    static char in[HEAP_IN], out[HEAP_OUT];
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        memcpy(in, &i, sizeof i);
        int rc = sl_pool_submit(p, fn, in, in_size, &futs[i]);
        if (rc < 0) {
            fail("sl_pool_submit", rc);
            return 1;
        }
    }
    int bad = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = 0;
        size_t len = out_size;
        int rc = sl_future_wait(futs[i], out, &len);
        sl_future_free(futs[i]);
        memcpy(&v, out, sizeof v);
        bad |= rc < 0 || len != out_size || v != i;
    }
    uint64_t ns = bench_now_ns() - t0;
    if (bad)
        fail("bulk: a result", 0);
    return ns;
}

static uint64_t *map_in, *map_out;

static uint64_t run_map(sl_pool *p, uint64_t n, size_t chunk)
{
    memset(map_out, 0, n * 8);
    uint64_t t0 = bench_now_ns();
    int rc = sl_pool_map(p, twice_plus_one, map_in, 8, n, map_out, 8, chunk, NULL);
    uint64_t ns = bench_now_ns() - t0;
    if (rc < 0)
        fail("sl_pool_map", rc);
    for (uint64_t i = 0; i < n && !R.failed; i++)
        if (map_out[i] != 2 * map_in[i] + 1)
            fail("sl_pool_map: an item", 0);
    return ns;
}

static uint64_t run_rtt(sl_pool *p, sl_mpchan *a, sl_mpchan *b, uint64_t rounds)
{
    struct echo_in e = {a, b, rounds};
    sl_future *f;
    int rc = sl_pool_submit(p, echo_task, &e, sizeof e, &f);
    if (rc < 0) {
        fail("sl_pool_submit(echo)", rc);
        return 1;
    }
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < rounds; i++) {
        uint64_t v = 0;
        size_t len = sizeof v;
        if ((rc = sl_mpchan_send(a, &i, sizeof i)) < 0 ||
            (rc = sl_mpchan_receive(b, &v, &len)) < 0 || v != i) {
            fail("mpchan round trip", rc);
            break;
        }
    }
    uint64_t ns = bench_now_ns() - t0;
    if ((rc = sl_future_wait(f, NULL, NULL)) < 0)
        fail("echo task", rc);
    sl_future_free(f);
    return ns;
}

static struct cpu_in *cpu_in;
static uint64_t *cpu_out, *cpu_ref, cpu_ref_n; /* ref: the first results */
static struct cpu_out *cpu_traced;
static uint64_t cpu_parent_ns; /* the parent's CPU time in the last run_cpu */

static uint64_t process_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int by_start(const void *a, const void *b)
{
    const struct cpu_out *x = a, *y = b;
    if (x->worker != y->worker)
        return x->worker < y->worker ? -1 : 1;
    return x->start_ns < y->start_ns ? -1 : x->start_ns > y->start_ns;
}

/* --cpu-trace: per worker process, what it ran and how long it waited
 * between items (gaps over 50 us). */
static void cpu_trace_print(int procs, uint64_t n, uint64_t t0, uint64_t ns)
{
    fprintf(stderr, "cpu trace: processes=%d items=%" PRIu64 " wall_ms=%.2f parent_cpu_ms=%.2f\n", procs, n,
            ns / 1e6, cpu_parent_ns / 1e6);
    qsort(cpu_traced, n, sizeof *cpu_traced, by_start);
    for (uint64_t i = 0; i < n;) {
        uint64_t w = cpu_traced[i].worker, items = 0, busy = 0, gaps = 0, gap_ns = 0, gap_max = 0;
        uint64_t first = cpu_traced[i].start_ns, last = 0;
        for (; i < n && cpu_traced[i].worker == w; i++, items++) {
            busy += cpu_traced[i].end_ns - cpu_traced[i].start_ns;
            if (last && cpu_traced[i].start_ns > last + 50000) {
                uint64_t g = cpu_traced[i].start_ns - last;
                gaps++, gap_ns += g, gap_max = g > gap_max ? g : gap_max;
            }
            last = cpu_traced[i].end_ns;
        }
        fprintf(stderr, "  worker %" PRIu64 ": items=%" PRIu64 " first_ms=%.2f last_ms=%.2f in_items_ms=%.2f gaps=%" PRIu64
                " gap_ms=%.2f gap_max_ms=%.2f\n", w, items, (first - t0) / 1e6, (last - t0) / 1e6, busy / 1e6, gaps,
                gap_ns / 1e6, gap_max / 1e6);
    }
}

static uint64_t run_cpu(sl_pool *p, int procs, uint64_t n)
{
    memset(cpu_out, 0, n * 8);
    uint64_t c0 = process_cpu_ns();
    uint64_t t0 = bench_now_ns();
    int rc = opt.cpu_trace
                 ? sl_pool_map(p, cpu_task, cpu_in, sizeof *cpu_in, n, cpu_traced, sizeof *cpu_traced, 1, NULL)
                 : sl_pool_map(p, cpu_task, cpu_in, sizeof *cpu_in, n, cpu_out, 8, 1, NULL);
    uint64_t ns = bench_now_ns() - t0;
    cpu_parent_ns = process_cpu_ns() - c0;
    if (opt.cpu_trace) {
        for (uint64_t i = 0; i < n; i++)
            cpu_out[i] = cpu_traced[i].v;
        cpu_trace_print(procs, n, t0, ns);
    }
    if (rc < 0)
        fail("sl_pool_map(cpu)", rc);
    uint64_t same = n < cpu_ref_n ? n : cpu_ref_n;
    if (memcmp(cpu_ref, cpu_out, same * 8) != 0)
        fail("cpu map: results differ between runs", 0);
    if (n > cpu_ref_n) { /* checked against the parent's below */
        memcpy(cpu_ref, cpu_out, n * 8);
        cpu_ref_n = n;
    }
    return ns;
}

/* Best of --runs after one warm-up. */
#define BEST(expr_warm, expr)                                                                       \
    ({                                                                                             \
        (void)(expr_warm);                                                                         \
        uint64_t best_ = UINT64_MAX;                                                               \
        for (uint64_t r_ = 0; r_ < opt.runs && !R.failed; r_++) {                                  \
            uint64_t ns_ = (expr);                                                                 \
            if (ns_ < best_)                                                                       \
                best_ = ns_;                                                                       \
        }                                                                                          \
        best_;                                                                                     \
    })

static void bench(void *arg)
{
    (void)arg;
    int P = opt.processes;
    if (wanted("one") || wanted("bulk") || wanted("heap")) {
        sl_pool *p = new_pool(P, 0, 0);
        if (!p)
            return;
        if (wanted("one")) {
            uint64_t ns = BEST(run_one(p, opt.tasks / 10 + 1), run_one(p, opt.tasks));
            R.one_ns = (double)ns / opt.tasks;
            R.one_tps = 1e9 / R.one_ns;
            printf("one: processes=%d tasks=%" PRIu64 " best_ns=%" PRIu64 " ns_per_task=%.1f tasks_per_sec=%.0f\n",
                   P, opt.tasks, ns, R.one_ns, R.one_tps);
        }
        if (wanted("bulk") && !R.failed) {
            futs = malloc(opt.bulk_tasks * sizeof *futs);
            uint64_t ns = BEST(run_bulk(p, opt.bulk_tasks / 10 + 1, noop, 8, 8), run_bulk(p, opt.bulk_tasks, noop, 8, 8));
            R.bulk_ns = (double)ns / opt.bulk_tasks;
            R.bulk_tps = 1e9 / R.bulk_ns;
            printf("bulk: processes=%d tasks=%" PRIu64 " best_ns=%" PRIu64 " ns_per_task=%.1f tasks_per_sec=%.0f\n",
                   P, opt.bulk_tasks, ns, R.bulk_ns, R.bulk_tps);
            free(futs);
        }
        if (wanted("heap") && !R.failed) {
            futs = malloc(opt.heap_tasks * sizeof *futs);
            uint64_t ns = BEST(run_bulk(p, opt.heap_tasks / 10 + 1, quadruple, HEAP_IN, HEAP_OUT),
                               run_bulk(p, opt.heap_tasks, quadruple, HEAP_IN, HEAP_OUT));
            R.heap_ns = (double)ns / opt.heap_tasks;
            R.heap_tps = 1e9 / R.heap_ns;
            printf("heap: processes=%d tasks=%" PRIu64 " in=%d out=%d best_ns=%" PRIu64
                   " ns_per_task=%.1f tasks_per_sec=%.0f\n",
                   P, opt.heap_tasks, HEAP_IN, HEAP_OUT, ns, R.heap_ns, R.heap_tps);
            free(futs);
        }
        end_pool(p);
    }
    if (wanted("map") && !R.failed) {
        /* Room for big chunks: a result of 16 bytes per item. And a heap
         * that would hold every chunk's input at once (the pool feeds a
         * map's chunks a few at a time and keeps room for results now, so
         * a smaller one works too; kept so the figures stay comparable
         * with earlier runs). */
        size_t maxres = (size_t)16 * opt.big_chunk;
        if (maxres < (64u << 10))
            maxres = 64u << 10;
        size_t shm = 4 * (size_t)8 * opt.map_items + 4 * maxres;
        sl_pool *p = new_pool(P, maxres, shm);
        if (!p)
            return;
        uint64_t n = opt.map_items;
        map_in = malloc(n * 8);
        map_out = malloc(n * 8);
        for (uint64_t i = 0; i < n; i++)
            map_in[i] = i * 0x9e3779b97f4a7c15ull;
        uint64_t ns = BEST(run_map(p, n / 10 + 1, 0), run_map(p, n, 0));
        R.map_tps = n * 1e9 / ns;
        printf("map: processes=%d items=%" PRIu64 " chunksize=default best_ns=%" PRIu64 " tasks_per_sec=%.0f\n",
               P, n, ns, R.map_tps);
        if (!R.failed) {
            ns = BEST(run_map(p, n / 10 + 1, opt.big_chunk), run_map(p, n, opt.big_chunk));
            R.map_big_tps = n * 1e9 / ns;
            printf("map: processes=%d items=%" PRIu64 " chunksize=%" PRIu64 " best_ns=%" PRIu64
                   " tasks_per_sec=%.0f\n", P, n, opt.big_chunk, ns, R.map_big_tps);
        }
        if (!R.failed) {
            uint64_t n1 = opt.map_c1_items < n ? opt.map_c1_items : n;
            ns = BEST(run_map(p, n1 / 10 + 1, 1), run_map(p, n1, 1));
            R.map_c1_tps = n1 * 1e9 / ns;
            printf("map: processes=%d items=%" PRIu64 " chunksize=1 best_ns=%" PRIu64 " tasks_per_sec=%.0f\n",
                   P, n1, ns, R.map_c1_tps);
        }
        free(map_in);
        free(map_out);
        end_pool(p);
    }
    if (wanted("mpchan") && !R.failed) {
        sl_pool *p = new_pool(P, 0, 0);
        if (!p)
            return;
        sl_mpchan *a, *b;
        int rc;
        if ((rc = sl_mpchan_new(p, 8, &a)) < 0 || (rc = sl_mpchan_new(p, 8, &b)) < 0) {
            fail("sl_mpchan_new", rc);
            return;
        }
        uint64_t ns = BEST(run_rtt(p, a, b, opt.rounds / 10 + 1), run_rtt(p, a, b, opt.rounds));
        R.rtt_us = (double)ns / opt.rounds / 1e3;
        printf("mpchan: processes=%d rounds=%" PRIu64 " best_ns=%" PRIu64 " round_trip_us=%.3f\n", P,
               opt.rounds, ns, R.rtt_us);
        sl_mpchan_free(a);
        sl_mpchan_free(b);
        end_pool(p);
    }
    if (wanted("cpu") && !R.failed) {
        /* Calibrate: rounds for about cpu_ms on this core (the best of
         * five tries: a busy machine only makes a try slower). */
        uint64_t k = 200000, best_cal = UINT64_MAX;
        for (int t = 0; t < 5; t++) {
            uint64_t t0 = bench_now_ns();
            volatile uint64_t sink = spin_work((uint64_t)t, k);
            (void)sink;
            uint64_t d = bench_now_ns() - t0;
            best_cal = d < best_cal ? d : best_cal;
        }
        double ns_per_round = (double)best_cal / k;
        R.cpu_rounds = (uint64_t)(opt.cpu_ms * 1e6 / ns_per_round);
        uint64_t n = opt.cpu_items;
        cpu_in = malloc(n * sizeof *cpu_in);
        cpu_out = malloc(n * 8);
        cpu_ref = calloc(n, 8);
        cpu_traced = opt.cpu_trace ? calloc(n, sizeof *cpu_traced) : NULL;
        cpu_ref_n = 0;
        for (uint64_t i = 0; i < n; i++)
            cpu_in[i] = (struct cpu_in){i + 1, R.cpu_rounds};
        /* The two pools take turns, run for run, so that load from other
         * programs weighs on both alike. */
        uint64_t best[2] = {UINT64_MAX, UINT64_MAX}, best_parent = 0;
        int procs[2] = {1, P};
        sl_pool *pools[2] = {new_pool(1, 0, 0), new_pool(P, 0, 0)};
        if (!pools[0] || !pools[1])
            return;
        for (int w = 0; w < 2; w++)
            run_cpu(pools[w], procs[w], n / 10 + 1);
        for (uint64_t r = 0; r < opt.runs && !R.failed; r++)
            for (int w = 0; w < 2; w++) {
                uint64_t ns = run_cpu(pools[w], procs[w], n);
                if (ns < best[w]) {
                    best[w] = ns;
                    if (w == 1)
                        best_parent = cpu_parent_ns;
                }
            }
        end_pool(pools[0]);
        end_pool(pools[1]);
        /* Spot-check the workers' results against the parent's. */
        for (uint64_t i = 0; i < n && !R.failed; i += n / 7 + 1)
            if (cpu_ref[i] != spin_work(cpu_in[i].seed, cpu_in[i].rounds))
                fail("cpu map: an item", 0);
        R.cpu_1_s = best[0] / 1e9;
        R.cpu_p_s = best[1] / 1e9;
        R.cpu_speedup = R.cpu_1_s / R.cpu_p_s;
        R.item_ms = R.cpu_1_s * 1e3 / n; /* as run by one worker process */
        R.cpu_parent_ms = best_parent / 1e6;
        printf("cpu: items=%" PRIu64 " item_ms=%.3f processes=1 best_s=%.4f processes=%d best_s=%.4f speedup=%.3f"
               " parent_cpu_ms=%.2f\n", n, R.item_ms, R.cpu_1_s, P, R.cpu_p_s, R.cpu_speedup, R.cpu_parent_ms);
        free(cpu_traced);
        free(cpu_in);
        free(cpu_out);
        free(cpu_ref);
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bench_pool [options]\n"
            "  --processes P     worker processes (default 2)\n"
            "  --measures LIST   some of one,bulk,heap,map,mpchan,cpu (default all)\n"
            "  --runs R          timed runs after a warm-up; the best counts (default 5)\n"
            "  --tasks N         one: no-op tasks submitted and awaited one at a time (100000)\n"
            "  --bulk-tasks N    bulk: no-op tasks submitted, then awaited (200000)\n"
            "  --heap-tasks N    heap: tasks of 1 KiB in, 4 KiB out, submitted, then awaited (50000)\n"
            "  --queue-depth D   sl_pool_config.queue_depth (default: the pool's, 1024)\n"
            "  --map-items N     map: 8-byte items (10000000)\n"
            "  --big-chunk C     map: the large chunksize (65536)\n"
            "  --map-c1-items N  map: items at chunksize 1 (200000; at most --map-items)\n"
            "  --rounds N        mpchan: round trips (100000)\n"
            "  --cpu-items N     cpu: items of about --cpu-ms each (200)\n"
            "  --cpu-ms MS       cpu: milliseconds of work per item, 0.01 .. 1000 (1)\n"
            "  --cpu-trace       cpu: per run and worker, items run and idle gaps (stderr)\n"
            "The last line is key=value pairs ending with tasks_per_sec (bulk).\n");
}

static uint64_t num(const char *flag, const char *s, uint64_t min, uint64_t max)
{
    return (uint64_t)args_num("bench_pool", flag, s, (int64_t)min, max, usage);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"processes", required_argument, NULL, 'p'}, {"measures", required_argument, NULL, 'm'},
        {"runs", required_argument, NULL, 'r'},      {"tasks", required_argument, NULL, 't'},
        {"bulk-tasks", required_argument, NULL, 'b'}, {"queue-depth", required_argument, NULL, 'q'},
        {"heap-tasks", required_argument, NULL, 'H'},
        {"map-items", required_argument, NULL, 'n'}, {"big-chunk", required_argument, NULL, 'c'},
        {"map-c1-items", required_argument, NULL, '1'}, {"rounds", required_argument, NULL, 'R'},    {"cpu-items", required_argument, NULL, 'i'},
        {"cpu-ms", required_argument, NULL, 'M'},    {"cpu-trace", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': opt.processes = (int)num("--processes", optarg, 1, 256); break;
        case 'm': opt.measures = optarg; break;
        case 'r': opt.runs = num("--runs", optarg, 1, 1000); break;
        case 't': opt.tasks = num("--tasks", optarg, 1, 1u << 30); break;
        case 'b': opt.bulk_tasks = num("--bulk-tasks", optarg, 1, 1u << 30); break;
        case 'H': opt.heap_tasks = num("--heap-tasks", optarg, 1, 1u << 30); break;
        case 'q': opt.queue_depth = (int)num("--queue-depth", optarg, 1, 1u << 20); break;
        case 'n': opt.map_items = num("--map-items", optarg, 1, 1u << 30); break;
        case 'c': opt.big_chunk = num("--big-chunk", optarg, 1, 1u << 24); break;
        case '1': opt.map_c1_items = num("--map-c1-items", optarg, 1, 1u << 30); break;
        case 'R': opt.rounds = num("--rounds", optarg, 1, 1u << 30); break;
        case 'i': opt.cpu_items = num("--cpu-items", optarg, 2, 1u << 20); break;
        case 'M':
            opt.cpu_ms = strtod(optarg, &end);
            if (end == optarg || *end || !(opt.cpu_ms >= 0.01 && opt.cpu_ms <= 1000)) {
                fprintf(stderr, "bench_pool: --cpu-ms wants a number in [0.01, 1000], not '%s'\n", optarg);
                usage(stderr);
                return 2;
            }
            break;
        case 'T': opt.cpu_trace = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    static const char *known[] = {"one", "bulk", "heap", "map", "mpchan", "cpu"};
    for (const char *s = opt.measures; *s;) {
        size_t n = strcspn(s, ",");
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof *known; k++)
            ok |= n == strlen(known[k]) && strncmp(s, known[k], n) == 0;
        if (!ok) {
            fprintf(stderr, "bench_pool: unknown measure in '%s'\n", opt.measures);
            usage(stderr);
            return 2;
        }
        s += n + (s[n] == ',');
    }

    int rc = sl_init(NULL);
    if (rc < 0) {
        fprintf(stderr, "bench_pool: sl_init: %s\n", sl_strerror(rc));
        return 1;
    }
    if (!sl_spawn(bench, NULL) || (rc = sl_run()) < 0) {
        fprintf(stderr, "bench_pool: sl_spawn/sl_run: %s\n", sl_strerror(rc));
        return 1;
    }
    sl_shutdown();
    if (R.failed)
        return 1;
    printf("processes=%d runs=%" PRIu64, opt.processes, opt.runs);
    if (wanted("one"))
        printf(" one_ns_per_task=%.1f one_tasks_per_sec=%.0f", R.one_ns, R.one_tps);
    if (wanted("bulk"))
        printf(" bulk_ns_per_task=%.1f bulk_tasks_per_sec=%.0f", R.bulk_ns, R.bulk_tps);
    if (wanted("heap"))
        printf(" heap_ns_per_task=%.1f heap_tasks_per_sec=%.0f", R.heap_ns, R.heap_tps);
    if (wanted("map"))
        printf(" map_items=%" PRIu64 " map_tasks_per_sec=%.0f map_big_chunk=%" PRIu64
               " map_big_tasks_per_sec=%.0f map_c1_tasks_per_sec=%.0f",
               opt.map_items, R.map_tps, opt.big_chunk, R.map_big_tps, R.map_c1_tps);
    if (wanted("mpchan"))
        printf(" mpchan_round_trip_us=%.3f", R.rtt_us);
    if (wanted("cpu"))
        printf(" cpu_items=%" PRIu64 " cpu_item_ms=%.3f cpu_1_s=%.4f cpu_p_s=%.4f cpu_speedup=%.3f cpu_parent_ms=%.2f",
               opt.cpu_items, R.item_ms, R.cpu_1_s, R.cpu_p_s, R.cpu_speedup, R.cpu_parent_ms);
    printf(" tasks_per_sec=%.0f\n", wanted("bulk") ? R.bulk_tps : R.one_tps);
    return 0;
}
