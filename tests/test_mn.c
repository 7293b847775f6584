/* test_mn.c - M:N workers: stress (every value received exactly once, across
 * 2 and 4 workers, repeated), token rings, stealing, pinning, main staying
 * on its thread, quiescence (sl_run's end, main's deadlock), kill across
 * workers, idle workers using no CPU, shutdown with work left elsewhere. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "test_hook.h"
#include "test_util.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#else
#define SLOW_BUILD 0
#endif

static int start(int workers, int steal)
{
    sl_config c;
    sl_config_init(&c);
    c.workers = workers;
    c.steal = steal;
    return sl_init(&c);
}

/* ---- producers and consumers on one shared channel --------------------- */

static sl_channel *pc_ch;
static atomic_long pc_sum, pc_count;
static long pc_per;
static atomic_int pc_errors;

static void producer(void *arg)
{
    long base = (long)(intptr_t)arg;
    for (long i = 0; i < pc_per; i++)
        if (sl_channel_send(pc_ch, TU_MSG(base + i + 1)) != 0)
            atomic_fetch_add(&pc_errors, 1);
}

static void consumer(void *arg)
{
    (void)arg;
    void *m;
    for (long i = 0; i < pc_per; i++) {
        if (sl_channel_receive(pc_ch, &m) != 0) {
            atomic_fetch_add(&pc_errors, 1);
            continue;
        }
        atomic_fetch_add(&pc_sum, TU_INT(m));
        atomic_fetch_add(&pc_count, 1);
    }
}

static void producers_consumers(int workers, int rounds)
{
    const int np = 8, nc = 8;
    pc_per = SLOW_BUILD ? 2000 : 50000;
    TU_EQ(start(workers, 1), 0);
    pc_ch = sl_channel_new();
    for (int r = 0; r < rounds; r++) {
        pc_sum = 0;
        pc_count = 0;
        pc_errors = 0;
        for (int i = 0; i < np; i++)
            CU_ASSERT_PTR_NOT_NULL(sl_spawn(producer, TU_MSG(i * pc_per)));
        for (int i = 0; i < nc; i++)
            CU_ASSERT_PTR_NOT_NULL(sl_spawn(consumer, NULL));
        TU_EQ(sl_run(), 0);
        long n = np * pc_per;
        TU_EQ(pc_count, n);
        TU_EQ(pc_sum, n * (n + 1) / 2); /* each value exactly once */
        TU_EQ(pc_errors, 0);
        TU_EQ(sl_getlivecount(), 0);
        TU_EQ(sl_channel_balance(pc_ch), 0);
    }
    TU_EQ(sl_channel_free(pc_ch), 0);
    TU_EQ(sl_shutdown(), 0);
}

TU_TEST_NOINIT(producers_consumers_two_workers) { producers_consumers(2, 5); }
TU_TEST_NOINIT(producers_consumers_four_workers) { producers_consumers(4, 5); }

/* ---- token rings -------------------------------------------------------- */

enum { RING = 64 };
static sl_channel *ring[RING];
static atomic_long ring_hops;
static long ring_laps;

static void ring_member(void *arg)
{
    int i = (int)(intptr_t)arg;
    void *tok;
    for (;;) {
        if (sl_channel_receive(ring[i], &tok) != 0)
            return;
        long v = TU_INT(tok);
        atomic_fetch_add(&ring_hops, 1);
        if (v == 0) { /* the stop token: pass it on (member 0 has ended) */
            if (i != RING - 1)
                sl_channel_send(ring[i + 1], TU_MSG(0));
            return;
        }
        if (i == 0 && v == ring_laps) {
            sl_channel_send(ring[1], TU_MSG(0));
            return;
        }
        sl_channel_send(ring[(i + 1) % RING], TU_MSG(i == RING - 1 ? v + 1 : v));
    }
}

static void token_ring(int workers, bool pinned)
{
    ring_laps = SLOW_BUILD ? 20 : 500;
    ring_hops = 0;
    TU_EQ(start(workers, 1), 0);
    for (int i = 0; i < RING; i++)
        ring[i] = sl_channel_new();
    for (int i = 0; i < RING; i++) {
        sl_spawn_attr a;
        sl_spawn_attr_init(&a);
        a.worker = pinned ? i % workers : -1;
        CU_ASSERT_PTR_NOT_NULL(sl_spawn_ex(&a, ring_member, TU_MSG(i)));
    }
    TU_EQ(sl_channel_send(ring[0], TU_MSG(1)), 0);
    TU_EQ(sl_run(), 0);
    /* laps - 1 full rounds; then member 0 sees lap `laps` and sends the
     * stop token, which the other RING - 1 members see once each. */
    TU_EQ(ring_hops, ring_laps * RING);
    TU_EQ(sl_getlivecount(), 0);
    for (int i = 0; i < RING; i++)
        TU_EQ(sl_channel_free(ring[i]), 0);
    TU_EQ(sl_shutdown(), 0);
}

TU_TEST_NOINIT(token_ring_pinned_across_two_workers) { token_ring(2, true); }
TU_TEST_NOINIT(token_ring_pinned_across_four_workers) { token_ring(4, true); }
TU_TEST_NOINIT(token_ring_free_four_workers_repeated)
{
    for (int r = 0; r < 3; r++)
        token_ring(4, false);
}

/* ---- stealing, pinning, main's thread ----------------------------------- */

static atomic_int ran_on[8], ran_on_1;

/* 20 chunks of work, a scheduling point after each. With a non-NULL arg
 * it then keeps yielding until some tasklet has run on worker 1 (at most
 * 10 s): on a loaded machine worker 1's thread may get no CPU before the
 * chunks are done, and a steal needs it to ask. */
static void cpu_chunk(void *arg)
{
    volatile unsigned long x = 1;
    for (int k = 0; k < 20; k++) {
        for (int i = 0; i < 200000; i++)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
        atomic_fetch_add(&ran_on[sl_worker_index()], 1);
        if (sl_worker_index() == 1)
            atomic_store(&ran_on_1, 1);
        sl_schedule();
    }
    int64_t end = sl_now_ms() + 10000;
    while (arg && !atomic_load(&ran_on_1) && sl_now_ms() < end) {
        if (sl_worker_index() == 1)
            atomic_store(&ran_on_1, 1);
        sl_schedule();
    }
}

TU_TEST_NOINIT(idle_worker_steals_spawned_work)
{
    for (int i = 0; i < 8; i++)
        ran_on[i] = 0;
    ran_on_1 = 0;
    TU_EQ(start(2, 1), 0);
    for (int i = 0; i < 16; i++)
        sl_spawn(cpu_chunk, &ran_on_1);
    TU_EQ(sl_run(), 0);
    TU_EQ(ran_on[0] + ran_on[1], 16 * 20);
    TU_EQ(ran_on_1, 1); /* worker 1 asked for work and got some */
    TU_EQ(sl_shutdown(), 0);
}

TU_TEST_NOINIT(no_stealing_keeps_work_on_its_worker)
{
    for (int i = 0; i < 8; i++)
        ran_on[i] = 0;
    ran_on_1 = 0;
    TU_EQ(start(2, 0), 0);
    for (int i = 0; i < 4; i++)
        sl_spawn(cpu_chunk, NULL);
    TU_EQ(sl_run(), 0);
    TU_EQ(ran_on[0], 4 * 20);
    TU_EQ(ran_on[1], 0);
    TU_EQ(sl_shutdown(), 0);
}

static sl_channel *pin_ch;
static atomic_int pin_wrong;

static void pinned_echo(void *arg)
{
    int want = (int)(intptr_t)arg;
    void *m;
    for (int i = 0; i < 1000; i++) {
        if (sl_channel_receive(pin_ch, &m) != 0)
            break;
        if (sl_worker_index() != want)
            atomic_fetch_add(&pin_wrong, 1);
    }
}

TU_TEST_NOINIT(pinned_tasklet_runs_only_on_its_worker_and_main_on_zero)
{
    pin_wrong = 0;
    TU_EQ(start(2, 1), 0);
    pin_ch = sl_channel_new();
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.worker = 1;
    a.name = "pinned";
    sl_tasklet *t = sl_spawn_ex(&a, pinned_echo, TU_MSG(1));
    CU_ASSERT_PTR_NOT_NULL(t);
    CU_ASSERT_STRING_EQUAL(sl_tasklet_name(t), "pinned");
    for (int i = 0; i < 1000; i++) {
        TU_EQ(sl_channel_send(pin_ch, TU_MSG(i)), 0);
        if (sl_worker_index() != 0)
            atomic_fetch_add(&pin_wrong, 100000);
    }
    TU_EQ(sl_run(), 0);
    TU_EQ(pin_wrong, 0);
    a.worker = 2; /* out of range */
    CU_ASSERT_PTR_NULL(sl_spawn_ex(&a, pinned_echo, NULL));
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_channel_free(pin_ch), 0);
    TU_EQ(sl_shutdown(), 0);
}

/* ---- quiescence: what replaces the one-worker deadlock rules ------------- */

static sl_channel *q_ch;
static int q_rc;

static void q_blocker(void *arg)
{
    void *m;
    (void)arg;
    q_rc = sl_channel_receive(q_ch, &m);
}

TU_TEST_NOINIT(main_alone_receiving_gets_edeadlock)
{
    TU_EQ(start(2, 1), 0);
    q_ch = sl_channel_new();
    void *m;
    TU_EQ(sl_channel_receive(q_ch, &m), SL_EDEADLOCK);
    TU_EQ(sl_channel_balance(q_ch), 0);
    TU_EQ(sl_channel_free(q_ch), 0);
    TU_EQ(sl_shutdown(), 0);
}

TU_TEST_NOINIT(main_blocked_and_others_blocked_gets_edeadlock)
{
    TU_EQ(start(4, 1), 0);
    q_ch = sl_channel_new();
    sl_channel *other = sl_channel_new();
    q_rc = 12345;
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.worker = 3;
    sl_tasklet *t = sl_spawn_ex(&a, q_blocker, NULL);
    sl_tasklet_ref(t);
    void *m;
    TU_EQ(sl_channel_receive(other, &m), SL_EDEADLOCK); /* nobody can send */
    TU_EQ(sl_channel_balance(other), 0);
    TU_EQ(sl_channel_balance(q_ch), -1); /* the tasklet stays blocked */
    TU_EQ(q_rc, 12345);
    TU_EQ(sl_tasklet_kill(t), 0); /* pinned to 3: it reacts there */
    TU_EQ(sl_run(), 0);
    TU_EQ(q_rc, SL_EKILLED);
    TU_EQ(sl_tasklet_alive(t), false);
    sl_tasklet_unref(t);
    TU_EQ(sl_channel_free(q_ch), 0);
    TU_EQ(sl_channel_free(other), 0);
    TU_EQ(sl_shutdown(), 0);
}

TU_TEST_NOINIT(run_returns_with_blocked_tasklets_left_blocked)
{
    TU_EQ(start(2, 1), 0);
    q_ch = sl_channel_new();
    for (int i = 0; i < 10; i++)
        sl_spawn(q_blocker, NULL);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_channel_balance(q_ch), -10);
    TU_EQ(sl_getlivecount(), 10);
    for (int i = 0; i < 10; i++)
        TU_EQ(sl_channel_send(q_ch, TU_MSG(i)), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_channel_free(q_ch), 0);
    TU_EQ(sl_shutdown(), 0);
}

/* ---- kill across workers --------------------------------------------- */

static atomic_int k_reacted, k_started;

static void k_spinner(void *arg)
{
    (void)arg;
    atomic_store(&k_started, 1);
    while (sl_schedule() == 0)
        ;
    atomic_store(&k_reacted, 1);
}

TU_TEST_NOINIT(kill_of_a_tasklet_running_elsewhere_is_pending)
{
    k_reacted = 0;
    k_started = 0;
    TU_EQ(start(2, 1), 0);
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.worker = 1;
    sl_tasklet *t = sl_spawn_ex(&a, k_spinner, NULL);
    sl_tasklet_ref(t);
    while (!atomic_load(&k_started)) /* until it spins on worker 1 */
        usleep(100);
    TU_EQ(sl_tasklet_kill(t), 0);
    TU_EQ(sl_run(), 0); /* returns once it has ended: nothing else runs */
    TU_EQ(k_reacted, 1);
    TU_EQ(sl_tasklet_alive(t), false);
    sl_tasklet_unref(t);
    TU_EQ(sl_shutdown(), 0);
}

/* ---- paused tasklets are claimed by whichever worker inserts them ------- */

static sl_tasklet *ins_target;
static atomic_int ins_ran_on;

static void ins_body(void *arg)
{
    (void)arg;
    atomic_store(&ins_ran_on, sl_worker_index() + 1);
}

static void ins_inserter(void *arg)
{
    (void)arg;
    TU_EQ(sl_tasklet_insert(ins_target), 0);
}

TU_TEST_NOINIT(insert_from_another_worker_runs_a_never_run_tasklet_there)
{
    for (int r = 0; r < 20; r++) {
        ins_ran_on = 0;
        TU_EQ(start(2, 0), 0);
        ins_target = sl_spawn(ins_body, NULL); /* promised on worker 0 */
        sl_tasklet_ref(ins_target);
        TU_EQ(sl_tasklet_remove(ins_target), 0); /* paused, never ran */
        sl_spawn_attr a;
        sl_spawn_attr_init(&a);
        a.worker = 1;
        sl_spawn_ex(&a, ins_inserter, NULL);
        TU_EQ(sl_run(), 0);
        TU_EQ(ins_ran_on, 2); /* it ran on worker 1, which took it */
        TU_EQ(sl_tasklet_alive(ins_target), false);
        sl_tasklet_unref(ins_target);
        TU_EQ(sl_getlivecount(), 0);
        TU_EQ(sl_shutdown(), 0);
    }
}

/* ---- idle workers use no CPU; shutdown with work elsewhere ------------- */

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

TU_TEST_NOINIT(idle_runtime_uses_no_cpu)
{
    TU_EQ(start(4, 1), 0);
    usleep(20000); /* let the workers finish spinning and park */
    double c0 = cpu_seconds();
    usleep(300000);
    double used = cpu_seconds() - c0;
    CU_ASSERT(used < 0.03); /* 300 ms of idling: well under 10% of a core */
    if (used >= 0.03)
        printf("idle runtime used %.3f s of CPU in 0.3 s\n", used);
    TU_EQ(sl_shutdown(), 0);
}

TU_TEST_NOINIT(shutdown_discards_tasklets_blocked_on_other_workers)
{
    TU_EQ(start(2, 1), 0);
    q_ch = sl_channel_new();
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.worker = 1;
    for (int i = 0; i < 5; i++)
        sl_spawn_ex(&a, q_blocker, NULL);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_channel_balance(q_ch), -5);
    TU_EQ(sl_shutdown(), 0);
    TU_EQ(sl_channel_balance(q_ch), 0);
    TU_EQ(sl_channel_free(q_ch), 0);
    TU_EQ(start(2, 1), 0); /* and the runtime starts again */
    TU_EQ(sl_shutdown(), 0);
}

/* ---- review (issue 13): quiescence decided twice ------------------------ */

/* Every worker that parks last runs the quiescence check (worker.c
 * idle_loop). wake_main_quiescent drops the runtime lock before it claims
 * a blocked main's wait, and main stays BLOCKED (not yet in worker 0's
 * inbox) until that claim's wake: a second worker that unparks meanwhile
 * (a late kick from a spawn) and parks again finds every worker idle and
 * main BLOCKED, claims too, loses, and SL__ASSERT(won) aborts. A stress:
 * rounds of "spawn a burst, everything blocks, main's receive gets
 * SL_EDEADLOCK" on 4 workers; it needs the first worker preempted in the
 * window, so run it with the CPUs loaded.
 *
 * Seen (two busy loops, 2 CPUs): a hang, worker 0 looping in inbox_link
 * with main in its inbox twice. The second worker's claim did not fail:
 * it read main's wseq after the first claim had made it even, and
 * sl__claim succeeds on an even (no wait) generation, so main was pushed
 * into worker 0's inbox a second time; its ->next then pointed into the
 * idle circle and the inbox walk never ends. */
static sl_channel *qd_sink;

static void qd_blocker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        sl_schedule();
    void *m;
    sl_channel_receive(qd_sink, &m);
}

TU_TEST_NOINIT(quiescence_is_decided_once_under_load)
{
    TU_EQ(start(4, 1), 0);
    qd_sink = sl_channel_new();
    sl_channel *none = sl_channel_new();
    /* 3 s of rounds (about 6,000 in Release on the loaded 2-CPU VM; the
     * review ran 15 s to hit the window under two busy loops). */
    int64_t end = sl_now_ms() + 3000;
    long rounds = 0;
    for (; sl_now_ms() < end; rounds++) {
        for (int i = 0; i < 8; i++)
            CU_ASSERT_PTR_NOT_NULL(sl_spawn(qd_blocker, NULL));
        void *m;
        TU_EQ(sl_channel_receive(none, &m), SL_EDEADLOCK);
        for (int i = 0; i < 8; i++)
            TU_EQ(sl_channel_send(qd_sink, TU_MSG(i)), 0);
        TU_EQ(sl_run(), 0);
        TU_EQ(sl_getlivecount(), 0);
    }
    printf("(%ld rounds) ", rounds);
    TU_EQ(sl_channel_free(qd_sink), 0);
    TU_EQ(sl_channel_free(none), 0);
    TU_EQ(sl_shutdown(), 0);
}

/* ---- review (issue 13): references from a thread that runs no tasklet -- */

/* docs/tasklet.md: ref and unref may be called from any thread, and from
 * a thread that runs no tasklet they are atomic. With one worker
 * sl_tasklet_ref is a plain t->refs++ whatever the calling thread
 * (tasklet.c; only unref looks at sl__tls_worker), so a foreign thread's
 * references race main's: increments are lost and the count reaches 0
 * while references remain. t stays blocked throughout: nobody drops a
 * reference as it ends (the one documented limit). In the mn suite so
 * that the TSan tree sees it too. */
static sl_channel *ref_ch;
enum { REF_N = 1000000 };

static void ref_blocked(void *arg)
{
    (void)arg;
    void *m;
    sl_channel_receive(ref_ch, &m);
}

static void *ref_take(void *t)
{
    for (int i = 0; i < REF_N; i++)
        sl_tasklet_ref(t);
    return NULL;
}

static void *ref_drop(void *t)
{
    for (int i = 0; i < REF_N; i++)
        sl_tasklet_unref(t);
    return NULL;
}

TU_TEST_NOINIT(references_from_a_foreign_thread_are_atomic_with_one_worker)
{
    TU_EQ(start(1, 1), 0);
    ref_ch = sl_channel_new();
    sl_tasklet *t = sl_spawn(ref_blocked, NULL);
    sl_tasklet_ref(t);
    sl_schedule(); /* t blocks */
    TU_EQ(sl_tasklet_blocked(t), true);
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, ref_take, t), 0);
    for (int i = 0; i < REF_N; i++) /* at the same time as the thread */
        sl_tasklet_ref(t);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, ref_drop, t), 0);
    pthread_join(th, NULL);
    for (int i = 0; i < REF_N; i++) /* a lost one: "unref without a
                                       reference", or an invariant */
        sl_tasklet_unref(t);
    TU_EQ(sl_tasklet_blocked(t), true);
    TU_EQ(sl_channel_send(ref_ch, NULL), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_tasklet_alive(t), false);
    sl_tasklet_unref(t);
    TU_EQ(sl_channel_free(ref_ch), 0);
    TU_EQ(sl_shutdown(), 0);
}

/* ---- review (issue 13): sl_dump while other workers run ------------------ */

/* sl_dump is documented to work with several workers ("a snapshot taken
 * while they run"), but it walks every worker's slab with plain reads
 * (tasklet.c sl__slab_each: s->chunks, b[i].state) and reads names, ids
 * and wait queues of blocks their owners are writing: data races for
 * ThreadSanitizer (and, for a wait queue freed meanwhile, a read of
 * freed memory). */
static atomic_int dump_stop;

static void dump_nothing(void *arg) { (void)arg; }

static void dump_spawner(void *arg)
{
    (void)arg;
    while (!atomic_load(&dump_stop)) {
        for (int i = 0; i < 64; i++)
            sl_spawn(dump_nothing, NULL);
        sl_schedule();
    }
}

TU_TEST_NOINIT(dump_while_another_worker_spawns)
{
    dump_stop = 0;
    TU_EQ(start(2, 0), 0);
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.worker = 1;
    CU_ASSERT_PTR_NOT_NULL(sl_spawn_ex(&a, dump_spawner, NULL));
    FILE *devnull = fopen("/dev/null", "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(devnull);
    for (int i = 0; i < 200; i++)
        sl_dump(devnull);
    fclose(devnull);
    atomic_store(&dump_stop, 1);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_shutdown(), 0);
}

/* ---- review (issue 13): references to a tasklet selecting elsewhere ---- */

/* sl_tasklet_ref/unref may be used on a tasklet that runs on another
 * worker. Their `t->is_main || t->is_idle` test reads plain bytes next to
 * wheap (and pin), which sl_select writes on the selecting tasklet's
 * worker; the compiler reads the four bytes at once, and ThreadSanitizer
 * reports a race (tasklet.c sl_tasklet_ref vs select.c `cur->wheap =`).
 * The post-switch unref of a pinned spawn's handle is the same read. */
static sl_channel *rs_a, *rs_b;
static atomic_int rs_stop;

static void rs_selector(void *arg)
{
    (void)arg;
    while (!atomic_load(&rs_stop)) {
        sl_select_case cs[] = {{rs_a, SL_RECV, NULL}, {rs_b, SL_RECV, NULL}};
        if (sl_select(cs, 2, -1) < 0)
            return;
    }
}

static void rs_feeder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++)
        sl_channel_send(i & 1 ? rs_a : rs_b, NULL);
    atomic_store(&rs_stop, 1);
    sl_channel_send(rs_a, NULL);
}

TU_TEST_NOINIT(references_to_a_tasklet_selecting_on_another_worker)
{
    rs_stop = 0;
    TU_EQ(start(2, 0), 0);
    rs_a = sl_channel_new();
    rs_b = sl_channel_new();
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.worker = 1;
    sl_tasklet *t = sl_spawn_ex(&a, rs_selector, NULL);
    sl_tasklet_ref(t);
    CU_ASSERT_PTR_NOT_NULL(sl_spawn_ex(&a, rs_feeder, NULL));
    while (!atomic_load(&rs_stop)) {
        sl_tasklet_ref(t);
        sl_tasklet_unref(t);
    }
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_tasklet_alive(t), false);
    sl_tasklet_unref(t);
    TU_EQ(sl_channel_free(rs_a), 0);
    TU_EQ(sl_channel_free(rs_b), 0);
    TU_EQ(sl_shutdown(), 0);
}

/* ---- issue 13's regressions ----------------------------------------------- */

/* Issue 13, item 4: docs/tasklet.md promises that a spawned tasklet's
 * handle stays valid until the spawner next switches. Pinned to another
 * worker, the tasklet runs there at once and may end before that; the
 * handle must still be usable (sl_tasklet_ref on it, the tasklet seen
 * dead). Before the fix its block is already recycled: alive() says true
 * (a free block), and the unref aborts on "state == SL_T_DEAD". */
static int p4_ran;

static void p4_body(void *arg)
{
    (void)arg;
    tu_st(&p4_ran, 1);
}

TU_TEST_NOINIT_TIMEOUT(pinned_spawn_handle_stays_valid_until_the_spawner_switches, 20)
{
    TU_EQ(start(2, 0), 0);
    p4_ran = 0;
    sl_tasklet *t = tu_spawn_pinned(1, p4_body, NULL);
    /* No scheduling point from here to the ref: main has not switched. */
    CU_ASSERT(tu_spin_until(&p4_ran, 10000));
    for (int i = 0; i < 10000 && sl_getlivecount() > 0; i++)
        usleep(100);
    usleep(10000); /* it has ended on worker 1 */
    sl_tasklet_ref(t);
    TU_EQ(sl_tasklet_alive(t), false);
    sl_tasklet_unref(t);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_shutdown(), 0);
}

/* Issue 13, item 3 via the steal hand-over ("the steal hand-over reaches
 * the same branch"): worker 0, idle, asks worker 1 for work and parks;
 * then K, pinned to worker 0, runs there and spins while worker 1 answers
 * the request, putting two never-run tasklets into worker 0's inbox
 * (RUNNABLE, worker 0, not in its run queue). K kills one of them before
 * worker 0 reaches a scheduling point. K must be resumed; the killed one
 * never runs its body; the other one runs. */
static struct {
    sl_tasklet *s[4];
    int ran[4], ran_on[4];
    int k_running, answered, k_done, kill_rc;
} sh;

static void sh_body(void *arg)
{
    int i = (int)TU_INT(arg);
    tu_st(&sh.ran_on[i], sl_worker_index() + 1);
    tu_st(&sh.ran[i], 1);
}

static void sh_killer(void *arg)
{
    (void)arg;
    tu_st(&sh.k_running, 1);
    CU_ASSERT(tu_spin_until(&sh.answered, 10000)); /* no scheduling point */
    sh.kill_rc = sl_tasklet_kill(sh.s[3]);
    tu_st(&sh.k_done, 1);
}

/* Voluntary context switches of thread tid, and whether it sleeps now. */
static long thread_sleeps(long tid, bool *sleeping)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/self/task/%ld/status", tid);
    FILE *f = fopen(path, "r");
    long n = -1;
    *sleeping = false;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "State:", 6) == 0)
            *sleeping = strchr(line, 'S') != NULL;
        sscanf(line, "voluntary_ctxt_switches: %ld", &n);
    }
    fclose(f);
    return n;
}

static void sh_victim(void *arg)
{
    long w0 = TU_INT(arg); /* worker 0's thread */
    bool sleeping;
    long c0 = thread_sleeps(w0, &sleeping);
    for (int i = 0; i < 4; i++) { /* unpinned: they join our queue */
        sh.s[i] = sl_spawn(sh_body, TU_MSG(i));
        sl_tasklet_ref(sh.s[i]);
    }
    /* Worker 0 is woken by these spawns, asks us for work (we have 5
     * runnable) and parks again: wait for it to sleep once more. */
    for (int i = 0; i < 5000; i++) {
        long c = thread_sleeps(w0, &sleeping);
        if (c > c0 && sleeping)
            break;
        usleep(1000);
    }
    tu_spawn_pinned(0, sh_killer, NULL);
    CU_ASSERT(tu_spin_until(&sh.k_running, 10000));
    sl_schedule(); /* answers the request: the last two go to worker 0 */
    tu_st(&sh.answered, 1);
}

/* Whether worker 0 has asked for work by the time the victim's schedule
 * answers depends on when its idle loop runs, which a loaded machine (or
 * ThreadSanitizer) delays: the scenario is played until the hand-over
 * happens (s[3] killed before its first run), at most 20 times, and every
 * round must resume the killer and end cleanly whatever happened. */
TU_TEST_NOINIT_TIMEOUT(kill_of_a_tasklet_handed_over_by_a_steal_resumes_the_killer, 120)
{
    int handed = 0, rounds = 0;
    for (; rounds < 20 && !handed; rounds++) {
        memset(&sh, 0, sizeof sh);
        sh.kill_rc = 12345;
        TU_EQ(start(2, 1), 0);
        tu_spawn_pinned(1, sh_victim, TU_MSG(getpid())); /* main's thread id */
        TU_EQ(sl_run(), 0);
        TU_EQ(sh.k_done, 1); /* the killer was resumed */
        TU_EQ(sh.kill_rc, 0);
        TU_EQ(sh.ran[0] + sh.ran[1] + sh.ran[2], 3);
        /* Handed over, then killed before it ran. (Where the other one
         * handed over ran is not fixed: once the victim ends, worker 1 is
         * idle and may steal it back from worker 0.) */
        if (sh.ran[3] == 0)
            handed = 1;
        TU_EQ(sl_getlivecount(), 0);
        for (int i = 0; i < 4; i++) {
            TU_EQ(sl_tasklet_alive(sh.s[i]), false);
            sl_tasklet_unref(sh.s[i]);
        }
        TU_EQ(sl_shutdown(), 0);
    }
    printf("(%d round%s) ", rounds, rounds == 1 ? "" : "s");
    TU_EQ(handed, 1);
}

/* Suspected: sl_tasklet_unref from a thread that runs no tasklets frees
 * the block into its owner worker's slab, which only that worker may
 * touch: a data race with the owner spawning and ending tasklets
 * (ThreadSanitizer reports it: mn in the TSan tree), which can corrupt the
 * slab's free list. Without TSan: every tasklet spawned meanwhile runs
 * exactly once and the runtime stays usable. */
static sl_tasklet **ur_handles;
static int ur_n, ur_ran;

static void *unref_all(void *arg)
{
    (void)arg;
    for (int i = 0; i < ur_n; i++)
        sl_tasklet_unref(ur_handles[i]);
    return NULL;
}

static void ur_body(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&ur_ran, 1, __ATOMIC_RELAXED);
}

TU_TEST_NOINIT_TIMEOUT(unref_from_a_thread_without_runtime_races_no_spawn, 60)
{
    TU_EQ(start(2, 0), 0);
    /* Under ThreadSanitizer each tasklet's fiber costs a map and an unmap:
     * 2000 handles (8,000 tasklets) took 2.5 s of CPU and 75 s loaded. */
    ur_n = TU_TSAN_SIZE(20000, 500);
    ur_ran = 0;
    ur_handles = calloc((size_t)ur_n, sizeof *ur_handles);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ur_handles);
    for (int i = 0; i < ur_n; i++) {
        ur_handles[i] = sl_spawn(ur_body, NULL);
        sl_tasklet_ref(ur_handles[i]);
    }
    TU_EQ(sl_run(), 0); /* all ended; our references keep their blocks */
    pthread_t th;
    TU_EQ(pthread_create(&th, NULL, unref_all, NULL), 0);
    int spawned = 0;
    for (int k = 0; k < 20; k++) { /* meanwhile: spawn and end on worker 0 */
        for (int i = 0; i < ur_n / 10; i++, spawned++)
            sl_spawn(ur_body, NULL);
        TU_EQ(sl_run(), 0);
    }
    pthread_join(th, NULL);
    for (int i = 0; i < ur_n; i++, spawned++) /* the slab still works */
        sl_spawn(ur_body, NULL);
    TU_EQ(sl_run(), 0);
    TU_EQ(ur_ran, ur_n + spawned);
    TU_EQ(sl_getlivecount(), 0);
    free(ur_handles);
    TU_EQ(sl_shutdown(), 0);
}

/* Review (issue 13, item 4 by another road): the handle promise of
 * docs/tasklet.md ("valid at least until the caller next switches") holds
 * for an unpinned spawn too. Worker 1, idle, asks worker 0 for work; main
 * answers at its next scheduling point, and a call that does not switch
 * is one (here sl_channel_try_receive on an empty channel: it polls the
 * inbox, sl__poll_inbox, and gives away half the queue from its end,
 * i.e. the tasklet just spawned). Worker 1 runs it to its end and frees
 * its block (refs 1, tasklet.c unref_runtime): main never switched, yet
 * its handle now names a free block (alive() says true, and a ref/unref
 * pair on it would abort on "state == SL_T_DEAD"). */
static int ss_ran;

static void ss_body(void *arg)
{
    (void)arg;
    tu_st(&ss_ran, sl_worker_index() + 1);
}

TU_TEST_NOINIT_TIMEOUT(stolen_spawn_handle_stays_valid_until_the_spawner_switches, 30)
{
    TU_EQ(start(2, 1), 0);
    sl_channel *ch = sl_channel_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
    bool seen = false;
    for (int round = 0; round < 20 && !seen; round++) {
        ss_ran = 0;
        usleep(20000); /* worker 1 parks: the spawn kicks it, it asks */
        sl_tasklet *t = sl_spawn(ss_body, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        void *m;
        /* No switch from here to the checks: try_receive on an empty
         * channel returns at once, but answers a steal request. */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            int rc = sl_channel_try_receive(ch, &m);
            if (rc != SL_EWOULDBLOCK) {
                TU_EQ(rc, SL_EWOULDBLOCK);
                break;
            }
            if (tu_ld(&ss_ran))
                break;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (t1.tv_sec - t0.tv_sec > 2)
                break;
        }
        if (tu_ld(&ss_ran) != 2) { /* not stolen this round: run it here */
            TU_EQ(sl_run(), 0);
            continue;
        }
        seen = true;
        for (int i = 0; i < 10000 && sl_getlivecount() > 1; i++)
            usleep(100);
        usleep(10000); /* it has ended on worker 1 */
        bool alive = sl_tasklet_alive(t);
        TU_EQ(alive, false); /* dead, not a free block */
        if (!alive) { /* (on a free block the unref would abort) */
            sl_tasklet_ref(t);
            sl_tasklet_unref(t);
        }
    }
    CU_ASSERT(seen); /* the steal happened in one of the rounds */
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_channel_free(ch), 0);
    TU_EQ(sl_shutdown(), 0);
}

/* ---- two throws at once at a tasklet that never ran --------------------- */

/* Found by the model tester under TSan (workers 2, seed 400 of seed 1's
 * run): two throwers of a paused tasklet that never ran, on two workers.
 * The one that claims it discards it, reading its state with a plain load
 * while the other's claim (a compare-and-swap that fails) touches the
 * same byte: a data race. Each round two throwers, one per worker, meet
 * (the second to arrive lets both go) and throw at a new paused tasklet
 * together; it must die once without running, each throw returning 0 (it
 * did it, or found it dead under a kill, which is sticky). The window is
 * tens of nanoseconds: this is a stress test, the model tester's seed the
 * way the race was seen. */
static sl_tasklet *tw_target;
static int tw_ready, tw_rc[2], tw_ran;

static void tw_body(void *arg)
{
    (void)arg;
    __atomic_store_n(&tw_ran, 1, __ATOMIC_RELAXED);
}

static void tw_thrower(void *arg)
{
    int i = TU_INT(arg);
    __atomic_add_fetch(&tw_ready, 1, __ATOMIC_ACQ_REL);
    while (__atomic_load_n(&tw_ready, __ATOMIC_ACQUIRE) < 2)
        ;
    __atomic_store_n(&tw_rc[i], sl_tasklet_throw(tw_target, SL_EKILLED, 0),
                     __ATOMIC_RELEASE);
}

TU_TEST_NOINIT_TIMEOUT(two_throws_at_a_paused_new_tasklet_discard_it_once, 60)
{
    TU_EQ(start(2, 0), 0);
    int rounds = SLOW_BUILD ? 300 : 3000;
    for (int r = 0; r < rounds; r++) {
        sl_spawn_attr a;
        sl_spawn_attr_init(&a);
        a.paused = 1;
        tw_target = sl_spawn_ex(&a, tw_body, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(tw_target);
        sl_tasklet_ref(tw_target);
        tw_ready = 0;
        tw_rc[0] = tw_rc[1] = 1;
        for (int i = 0; i < 2; i++) {
            sl_spawn_attr_init(&a);
            a.worker = i;
            CU_ASSERT_PTR_NOT_NULL_FATAL(sl_spawn_ex(&a, tw_thrower,
                                                     TU_MSG(i)));
        }
        TU_EQ(sl_run(), 0);
        TU_EQ(__atomic_load_n(&tw_rc[0], __ATOMIC_ACQUIRE), 0);
        TU_EQ(__atomic_load_n(&tw_rc[1], __ATOMIC_ACQUIRE), 0);
        TU_EQ(sl_tasklet_alive(tw_target), false);
        TU_EQ(sl_getlivecount(), 0);
        sl_tasklet_unref(tw_target);
    }
    TU_EQ(__atomic_load_n(&tw_ran, __ATOMIC_RELAXED), 0);
    TU_EQ(sl_shutdown(), 0);
}

/* ---- sl_tasklet_next of a tasklet moving between freed channels --------- */

/* Worker 1: a sender B creates a channel per round, waits until two
 * receivers A and C wait on it (so each is the other's neighbour), sends
 * to both, waits until both have received, and frees the channel.
 * Meanwhile main, on worker 0, asks for A's and C's neighbours without
 * pause. Each answer reads the queue its tasklet waited in when it asked:
 * without the grace period of sched/wait.c the lock taken there could be
 * in a channel freed by then (ASan: heap-use-after-free; TSan: a race with
 * free). The sender and receivers share plain variables: all three are
 * pinned to worker 1. */
static sl_channel *nx_slot;
static int nx_gen, nx_acks, nx_stop;
static int nx_rounds, nx_done;
static sl_tasklet *nx_a, *nx_c;

static void nx_receiver(void *arg)
{
    (void)arg;
    int seen = 0;
    for (;;) {
        while (nx_gen == seen && !nx_stop)
            TU_EQ(sl_schedule(), 0);
        if (nx_stop)
            return;
        seen = nx_gen;
        void *m;
        TU_EQ(sl_channel_receive(nx_slot, &m), 0);
        TU_EQ(TU_INT(m), seen);
        nx_acks++;
    }
}

static void nx_sender(void *arg)
{
    int64_t end = tu_now_ns() + (int64_t)(intptr_t)arg * 1000000;
    int i;
    for (i = 1; i <= 100000 && tu_now_ns() < end; i++) {
        sl_channel *ch = sl_channel_new();
        CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
        nx_slot = ch;
        nx_gen = i;
        while (!sl_tasklet_blocked(nx_a) || !sl_tasklet_blocked(nx_c))
            TU_EQ(sl_schedule(), 0);
        TU_EQ(sl_channel_send(ch, TU_MSG(i)), 0);
        TU_EQ(sl_channel_send(ch, TU_MSG(i)), 0);
        while (nx_acks != 2 * i) /* both calls on ch have returned */
            TU_EQ(sl_schedule(), 0);
        TU_EQ(sl_channel_free(ch), 0);
    }
    nx_stop = 1;
    tu_st(&nx_rounds, i - 1);
    tu_st(&nx_done, 1);
}

static bool nx_known(sl_tasklet *r)
{
    return r == NULL || r == nx_a || r == nx_c;
}

TU_TEST_NOINIT_TIMEOUT(next_and_prev_of_a_tasklet_moving_between_freed_channels, 60)
{
    TU_EQ(start(2, 1), 0);
    sl_spawn_attr at;
    sl_spawn_attr_init(&at);
    at.worker = 1;
    /* Paused until all three exist: B looks at A and C from the start. */
    at.paused = 1;
    nx_a = sl_spawn_ex(&at, nx_receiver, NULL);
    nx_c = sl_spawn_ex(&at, nx_receiver, NULL);
    sl_tasklet *b = sl_spawn_ex(&at, nx_sender, TU_MSG(1500)); /* 1.5 s */
    CU_ASSERT_PTR_NOT_NULL_FATAL(nx_a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nx_c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    sl_tasklet_ref(nx_a); /* looked at until after they end */
    sl_tasklet_ref(nx_c);
    TU_EQ(sl_tasklet_insert(nx_a), 0);
    TU_EQ(sl_tasklet_insert(nx_c), 0);
    TU_EQ(sl_tasklet_insert(b), 0);
    long asked = 0, answered = 0, strange = 0;
    while (!tu_ld(&nx_done)) {
        sl_tasklet *r[4] = {sl_tasklet_next(nx_a), sl_tasklet_prev(nx_a),
                            sl_tasklet_next(nx_c), sl_tasklet_prev(nx_c)};
        for (int k = 0; k < 4; k++) {
            strange += !nx_known(r[k]);
            answered += r[k] != NULL;
        }
        asked += 4;
    }
    TU_EQ(sl_run(), 0);
    TU_EQ(strange, 0); /* never a tasklet other than A or C */
    CU_ASSERT(tu_ld(&nx_rounds) > 0);
    CU_ASSERT(asked > 0);
    fprintf(stderr, "  (%d rounds, %ld asked, %ld answered)\n",
            tu_ld(&nx_rounds), asked, answered);
    TU_EQ(sl_tasklet_alive(nx_a), false);
    sl_tasklet_unref(nx_a);
    sl_tasklet_unref(nx_c);
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_shutdown(), 0);
}

static CU_TestInfo tests[] = {
    TU_CASE(producers_consumers_two_workers),
    TU_CASE(producers_consumers_four_workers),
    TU_CASE(token_ring_pinned_across_two_workers),
    TU_CASE(token_ring_pinned_across_four_workers),
    TU_CASE(token_ring_free_four_workers_repeated),
    TU_CASE(idle_worker_steals_spawned_work),
    TU_CASE(no_stealing_keeps_work_on_its_worker),
    TU_CASE(pinned_tasklet_runs_only_on_its_worker_and_main_on_zero),
    TU_CASE(main_alone_receiving_gets_edeadlock),
    TU_CASE(main_blocked_and_others_blocked_gets_edeadlock),
    TU_CASE(run_returns_with_blocked_tasklets_left_blocked),
    TU_CASE(kill_of_a_tasklet_running_elsewhere_is_pending),
    TU_CASE(insert_from_another_worker_runs_a_never_run_tasklet_there),
    TU_CASE(idle_runtime_uses_no_cpu),
    TU_CASE(shutdown_discards_tasklets_blocked_on_other_workers),
    TU_CASE(quiescence_is_decided_once_under_load),
    TU_CASE(references_from_a_foreign_thread_are_atomic_with_one_worker),
    TU_CASE(dump_while_another_worker_spawns),
    TU_CASE(references_to_a_tasklet_selecting_on_another_worker),
    /* issue 13's regressions */
    TU_CASE(pinned_spawn_handle_stays_valid_until_the_spawner_switches),
    TU_CASE(kill_of_a_tasklet_handed_over_by_a_steal_resumes_the_killer),
    TU_CASE(unref_from_a_thread_without_runtime_races_no_spawn),
    TU_CASE(stolen_spawn_handle_stays_valid_until_the_spawner_switches),
    TU_CASE(next_and_prev_of_a_tasklet_moving_between_freed_channels),
    TU_CASE(two_throws_at_a_paused_new_tasklet_discard_it_once),
    CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
    return tu_main(argc, argv, "mn", tests);
}
