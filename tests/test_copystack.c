/* test_copystack.c - copy-mode stacks: frames survive switches in every
 * combination of modes, deep and large frames, buffers reused and freed,
 * in-place resumes, kill, the pinning rule on two workers, offload, bad
 * attributes, and the debug-build check of &local sent through a channel.
 * The other suites run again with copy stacks as the default
 * (SL_TEST_STACK=copy; ctest's *_copy entries). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

static sl_tasklet *spawn_mode(int mode, sl_fn fn, void *arg)
{
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.stack_mode = mode;
    return sl_spawn_ex(&a, fn, arg);
}

static sl_stack_stats stats(void)
{
    sl_stack_stats s;
    TU_EQ(sl_stack_stats_get(&s), 0);
    return s;
}

/* Fill a local array with a pattern of `seed`, yield `rounds` times, and
 * count the tasklets whose array came back intact. */
static int intact;

static __attribute__((noinline)) void keep_locals(int seed, int rounds,
                                                  size_t len)
{
    volatile unsigned char buf[len];
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(seed * 31 + i);
    for (int r = 0; r < rounds; r++) {
        tu_log_putc((char)('a' + seed));
        TU_EQ(sl_schedule(), 0);
    }
    for (size_t i = 0; i < len; i++)
        if (buf[i] != (unsigned char)(seed * 31 + i))
            return;
    intact++;
}

static void small_frames(void *arg)
{
    keep_locals((int)TU_INT(arg), 3, 100);
}

TU_TEST(copy_tasklets_keep_their_frames)
{
    sl_stack_stats s0 = stats();
    intact = 0;
    for (int i = 0; i < 3; i++)
        CU_ASSERT_PTR_NOT_NULL_FATAL(spawn_mode(SL_STACK_COPY, small_frames,
                                                TU_MSG(i)));
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("abcabcabc");
    TU_EQ(intact, 3);
    sl_stack_stats s1 = stats();
    CU_ASSERT(s1.saves - s0.saves >= 9);
    CU_ASSERT(s1.restores - s0.restores >= 6);
    CU_ASSERT(s1.bytes_saved > s0.bytes_saved);
    TU_EQ(s1.buffer_bytes, 0); /* every buffer went back at the end */
}

TU_TEST(fixed_and_copy_tasklets_switch_in_any_order)
{
    intact = 0;
    int modes[] = {SL_STACK_FIXED, SL_STACK_COPY, SL_STACK_COPY,
                   SL_STACK_FIXED, SL_STACK_COPY};
    for (int i = 0; i < 5; i++)
        CU_ASSERT_PTR_NOT_NULL_FATAL(spawn_mode(modes[i], small_frames,
                                                TU_MSG(i)));
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("abcdeabcdeabcde");
    TU_EQ(intact, 5);
}

/* Main runs between two rounds of one copy tasklet: its frames never
 * leave the shared stack, and the resume copies nothing. */
static void yield_twice(void *arg)
{
    (void)arg;
    keep_locals(0, 2, 64);
}

TU_TEST(a_resume_after_fixed_tasklets_copies_nothing)
{
    intact = 0;
    sl_tasklet *t = spawn_mode(SL_STACK_COPY, yield_twice, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    sl_stack_stats s0 = stats();
    TU_EQ(sl_schedule(), 0); /* t runs, yields back to main */
    TU_EQ(sl_schedule(), 0);
    TU_EQ(sl_schedule(), 0);
    sl_stack_stats s1 = stats();
    TU_EQ(s1.saves - s0.saves, 0);
    TU_EQ(s1.restores - s0.restores, 0);
    CU_ASSERT(s1.in_place - s0.in_place >= 2);
    TU_EQ(intact, 1);
    TU_EQ(sl_getlivecount(), 0);
}

/* Deep recursion with a yield at the bottom, while another copy tasklet
 * runs on the same shared stack. */
static __attribute__((noinline)) int recurse(int depth, int seed)
{
    volatile char pad[512];
    memset((char *)pad, seed + depth, sizeof pad);
    int r = depth > 0 ? recurse(depth - 1, seed) : (sl_schedule(), 0);
    for (size_t i = 0; i < sizeof pad; i++)
        if (pad[i] != (char)(seed + depth))
            return -1000000;
    return r + 1;
}

static int deep_results[2];

static void deep_body(void *arg)
{
    int k = (int)TU_INT(arg);
    deep_results[k] = recurse(k == 0 ? 80 : 3, 7 * k + 1);
}

TU_TEST(deep_frames_are_saved_whole)
{
    sl_stack_stats s0 = stats();
    CU_ASSERT_PTR_NOT_NULL_FATAL(spawn_mode(SL_STACK_COPY, deep_body, TU_MSG(0)));
    CU_ASSERT_PTR_NOT_NULL_FATAL(spawn_mode(SL_STACK_COPY, deep_body, TU_MSG(1)));
    TU_EQ(sl_run(), 0);
    TU_EQ(deep_results[0], 81);
    TU_EQ(deep_results[1], 4);
    sl_stack_stats s1 = stats();
    /* 81 frames of over 512 bytes were saved at least once. */
    CU_ASSERT(s1.bytes_saved - s0.bytes_saved > 81 * 512);
}

/* A tasklet's frames grow, shrink and grow again across switches: its
 * buffer is reused while they fit and replaced when they do not. */
static void growing(void *arg)
{
    (void)arg;
    keep_locals(1, 2, 64);
    keep_locals(1, 2, 20000);
    keep_locals(1, 2, 64);
}

static void steady(void *arg)
{
    (void)arg;
    keep_locals(2, 6, 64);
}

TU_TEST(buffers_grow_shrink_and_go_back)
{
    intact = 0;
    CU_ASSERT_PTR_NOT_NULL_FATAL(spawn_mode(SL_STACK_COPY, growing, NULL));
    CU_ASSERT_PTR_NOT_NULL_FATAL(spawn_mode(SL_STACK_COPY, steady, NULL));
    TU_EQ(sl_schedule(), 0); /* both run once and yield */
    sl_stack_stats a = stats();
    CU_ASSERT(a.buffer_bytes > 0 && a.buffer_bytes < 2048);
    TU_EQ(sl_schedule(), 0);
    TU_EQ(sl_schedule(), 0); /* growing is 20 KB deep now */
    sl_stack_stats b = stats();
    CU_ASSERT(b.buffer_bytes > 20000);
    TU_EQ(sl_run(), 0);
    TU_EQ(intact, 4);
    sl_stack_stats c = stats();
    TU_EQ(c.buffer_bytes, 0);
    CU_ASSERT(c.arena_bytes > 0);
}

static void receive_once(void *arg)
{
    void *msg;
    TU_EQ(sl_channel_receive(arg, &msg), 0);
    TU_EQ(TU_INT(msg), 42);
}

TU_TEST(many_blocked_copy_tasklets_cost_few_bytes_each)
{
    /* TSan counts each tasklet (fiber) as a thread and stops at 8128. */
#if defined(__SANITIZE_THREAD__)
    int n = 4000;
#else
    int n = TU_SIZE(100000, 2000);
#endif
    sl_channel *ch = sl_channel_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
    for (int i = 0; i < n; i++)
        CU_ASSERT_PTR_NOT_NULL_FATAL(spawn_mode(SL_STACK_COPY, receive_once, ch));
    TU_EQ(sl_schedule(), 0); /* all of them run and block */
    TU_EQ(sl_channel_balance(ch), -n);
    sl_stack_stats s = stats();
    printf("(%llu saved bytes per blocked tasklet) ",
           (unsigned long long)(s.buffer_bytes / (uint64_t)n));
#if defined(__SANITIZE_ADDRESS__) || !defined(__OPTIMIZE__)
    CU_ASSERT(s.buffer_bytes / (uint64_t)n <= 2048); /* redzones, -O0 */
#else
    CU_ASSERT(s.buffer_bytes / (uint64_t)n <= 512);
#endif
    for (int i = 0; i < n; i++)
        TU_EQ(sl_channel_send(ch, TU_MSG(42)), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_channel_free(ch), 0);
}

/* ---- kill -------------------------------------------------------------- */

static void block_forever(void *arg)
{
    void *msg;
    char local[200];
    memset(local, 'x', sizeof local);
    TU_EQ(sl_channel_receive(arg, &msg), SL_EKILLED);
    TU_EQ(local[199], 'x');
    tu_log_putc('k');
}

TU_TEST(killing_copy_tasklets)
{
    sl_channel *ch = sl_channel_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
    sl_tasklet *a = spawn_mode(SL_STACK_COPY, block_forever, ch);
    sl_tasklet *b = spawn_mode(SL_STACK_COPY, block_forever, ch);
    sl_tasklet *never = spawn_mode(SL_STACK_COPY, block_forever, ch);
    TU_EQ(sl_tasklet_kill(never), 0); /* dies without running */
    TU_EQ(sl_schedule(), 0);          /* a and b block; b owns the stack */
    TU_EQ(sl_channel_balance(ch), -2);
    TU_EQ(sl_tasklet_kill(a), 0);     /* a's frames are copied back */
    TU_EQ(sl_tasklet_kill(b), 0);
    TU_ASSERT_LOG("kk");
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(stats().buffer_bytes, 0);
    TU_EQ(sl_channel_free(ch), 0);
}

/* ---- ends: the next tasklet is fixed, copy, or copy and never ran ------- */

static void chain(void *arg)
{
    int k = (int)TU_INT(arg);
    char local[64];
    memset(local, k, sizeof local);
    TU_EQ(sl_schedule(), 0);
    tu_log_putc(local[63] == k ? (char)('0' + k) : '!');
}

TU_TEST(ending_copy_tasklets_hand_the_stack_on)
{
    int modes[] = {SL_STACK_COPY, SL_STACK_COPY, SL_STACK_FIXED,
                   SL_STACK_COPY, SL_STACK_FIXED, SL_STACK_FIXED,
                   SL_STACK_COPY};
    for (int i = 0; i < 7; i++)
        CU_ASSERT_PTR_NOT_NULL_FATAL(spawn_mode(modes[i], chain, TU_MSG(i)));
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("0123456");
}

/* ---- offload ----------------------------------------------------------- */

static void add_one(void *arg)
{
    /* Offload threads run the four calls at once: a plain ++ loses one. */
    __atomic_fetch_add((int *)arg, 1, __ATOMIC_RELAXED);
}

static void offloader(void *arg)
{
    int *box = arg; /* on the heap: a copy-mode tasklet's stack moves */
    char local[300];
    memset(local, 'o', sizeof local);
    TU_EQ(sl_offload(add_one, box), 0);
    TU_EQ(local[299], 'o');
}

static void spinner(void *arg)
{
    (void)arg;
    char local[300];
    memset(local, 's', sizeof local);
    for (int i = 0; i < 50; i++) {
        sl_sleep_ms(1);
        TU_EQ(local[i], 's');
    }
}

TU_TEST(offload_from_copy_tasklets)
{
    int *box = calloc(1, sizeof *box);
    CU_ASSERT_PTR_NOT_NULL_FATAL(box);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_PTR_NOT_NULL_FATAL(spawn_mode(SL_STACK_COPY, offloader, box));
    CU_ASSERT_PTR_NOT_NULL_FATAL(spawn_mode(SL_STACK_COPY, spinner, NULL));
    TU_EQ(sl_run(), 0);
    TU_EQ(*box, 4);
    free(box);
}

/* ---- two workers: a copy tasklet stays where it first ran ------------- */

static sl_channel *pin_ch;
static int pin_seen[8];

static void pinned_player(void *arg)
{
    (void)arg;
    char local[128];
    memset(local, 'p', sizeof local);
    for (int i = 0; i < 8; i++) {
        void *msg;
        TU_EQ(sl_channel_receive(pin_ch, &msg), 0);
        pin_seen[i] = sl_worker_index();
    }
    TU_EQ(local[127], 'p');
}

static sl_tasklet *player;

static void spawner_on_1(void *arg)
{
    (void)arg;
    sl_tasklet *t = spawn_mode(SL_STACK_COPY, pinned_player, NULL);
    sl_tasklet_ref(t);
    __atomic_store_n(&player, t, __ATOMIC_RELEASE);
}

/* A runtime on two workers (fixed stacks by default, no stealing) and fn
 * spawned on worker 1; false if either fails. */
static bool two_workers_and_spawn_on_1(sl_fn fn)
{
    sl_config cfg;
    sl_config_init(&cfg);
    cfg.workers = 2;
    cfg.steal = 0;
    if (!TU_EQ(sl_init(&cfg), 0))
        return false;
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.worker = 1;
    return sl_spawn_ex(&a, fn, NULL) != NULL;
}

TU_TEST_NOINIT(copy_tasklets_stay_on_the_worker_that_first_ran_them)
{
    pin_ch = sl_channel_new();
    CU_ASSERT_FATAL(two_workers_and_spawn_on_1(spawner_on_1));
    while (!__atomic_load_n(&player, __ATOMIC_ACQUIRE) ||
           sl_channel_balance(pin_ch) != -1)
        sl_sleep_ms(1);
    /* Sends from worker 0 wake it on worker 1, every time. */
    for (int i = 0; i < 8; i++) {
        TU_EQ(sl_channel_send(pin_ch, NULL), 0);
        while (i < 7 && sl_channel_balance(pin_ch) != -1)
            sl_sleep_ms(1);
    }
    TU_EQ(sl_run(), 0);
    for (int i = 0; i < 8; i++)
        TU_EQ(pin_seen[i], 1);
    TU_EQ(sl_tasklet_alive(player), 0);
    sl_tasklet_unref(player);
    TU_EQ(sl_channel_free(pin_ch), 0);
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_shutdown(), 0);
}

/* A paused copy tasklet that ran on worker 1 cannot be run from worker 0. */
static void pause_self(void *arg)
{
    (void)arg;
    TU_EQ(sl_schedule_remove(), 0);
}

static sl_tasklet *paused;

static void spawn_pauser(void *arg)
{
    (void)arg;
    __atomic_store_n(&paused, spawn_mode(SL_STACK_COPY, pause_self, NULL),
                     __ATOMIC_RELEASE);
}

TU_TEST_NOINIT(a_paused_copy_tasklet_runs_only_on_its_worker)
{
    CU_ASSERT_FATAL(two_workers_and_spawn_on_1(spawn_pauser));
    while (!__atomic_load_n(&paused, __ATOMIC_ACQUIRE) ||
           !sl_tasklet_paused(paused))
        sl_sleep_ms(1);
    TU_EQ(sl_tasklet_run(paused), SL_ESTATE);
    TU_EQ(sl_tasklet_insert(paused), 0); /* queued on worker 1 */
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_shutdown(), 0);
}

/* ---- arguments --------------------------------------------------------- */

static void nothing(void *arg)
{
    (void)arg;
}

TU_TEST_NOINIT(bad_stack_modes_are_refused)
{
    sl_stack_stats s;
    TU_EQ(sl_stack_stats_get(&s), SL_ESTATE);
    sl_config cfg;
    sl_config_init(&cfg);
    TU_EQ(cfg.stack_mode, SL_STACK_FIXED);
    cfg.stack_mode = 3;
    TU_EQ(sl_init(&cfg), SL_EINVAL);
    cfg.stack_mode = -1;
    TU_EQ(sl_init(&cfg), SL_EINVAL);
    cfg.stack_mode = SL_STACK_COPY;
    TU_EQ(sl_init(&cfg), 0);
    TU_EQ(sl_stack_stats_get(NULL), SL_EINVAL);
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    TU_EQ(a.stack_mode, SL_STACK_DEFAULT);
    a.stack_mode = 9;
    CU_ASSERT_PTR_NULL(sl_spawn_ex(&a, nothing, NULL));
    a.stack_mode = SL_STACK_FIXED;
    CU_ASSERT_PTR_NOT_NULL(sl_spawn_ex(&a, nothing, NULL));
    CU_ASSERT_PTR_NOT_NULL(sl_spawn(nothing, NULL)); /* copy: the default */
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_shutdown(), 0);
}

/* ---- the caveat, caught in debug builds --------------------------------- */

#ifndef NDEBUG

static sl_channel *leak_ch;

static void send_local(void *arg)
{
    (void)arg;
    int local = 5;
    sl_channel_send(leak_ch, &local);
}

static void spawn_local(void *arg)
{
    (void)arg;
    int local = 5;
    sl_spawn(nothing, &local);
}

/* The child's part: run fn (a tasklet body) as a copy-mode tasklet. */
static void copy_child(void *fn)
{
    sl_config cfg;
    sl_config_init(&cfg);
    cfg.stack_mode = SL_STACK_COPY;
    if (sl_init(&cfg) != 0)
        _exit(3);
    leak_ch = sl_channel_new();
    sl_spawn((sl_fn)fn, NULL);
    sl_run();
}

static int run_child(sl_fn fn, char *err, size_t cap)
{
    return tu_child_stderr(copy_child, (void *)fn, err, cap);
}

#endif

TU_TEST_NOINIT(sending_a_pointer_to_a_local_aborts_in_debug_builds)
{
#ifdef NDEBUG
    printf("(release build: not checked) ");
#else
    char err[2048];
    int st = run_child(send_local, err, sizeof err);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "a channel send given"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "pointer into the stack of copy-mode"));
    st = run_child(spawn_local, err, sizeof err);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "sl_spawn given"));
#endif
}

int main(int argc, char **argv)
{
    static CU_TestInfo tests[] = {
        TU_CASE(copy_tasklets_keep_their_frames),
        TU_CASE(fixed_and_copy_tasklets_switch_in_any_order),
        TU_CASE(a_resume_after_fixed_tasklets_copies_nothing),
        TU_CASE(deep_frames_are_saved_whole),
        TU_CASE(buffers_grow_shrink_and_go_back),
        TU_CASE(many_blocked_copy_tasklets_cost_few_bytes_each),
        TU_CASE(killing_copy_tasklets),
        TU_CASE(ending_copy_tasklets_hand_the_stack_on),
        TU_CASE(offload_from_copy_tasklets),
        TU_CASE(copy_tasklets_stay_on_the_worker_that_first_ran_them),
        TU_CASE(a_paused_copy_tasklet_runs_only_on_its_worker),
        TU_CASE(bad_stack_modes_are_refused),
        TU_CASE(sending_a_pointer_to_a_local_aborts_in_debug_builds),
        CU_TEST_INFO_NULL,
    };
    return tu_main(argc, argv, "copystack", tests);
}
