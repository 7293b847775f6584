/* test_time.c - sl_now_ms, sl_sleep_ms and channel operations with
 * timeouts: deadline order, overlapping sleeps, kills, balance after a
 * timeout, races between a partner and the timer, and the deadlock rules
 * once something can still end a wait by itself. */
#include "test_hook.h"
#include "test_util.h"

static sl_channel *chan;

static void new_chan(void)
{
    chan = sl_channel_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(chan);
}

/* ---- sleep -------------------------------------------------------------- */

static void sleep_then_log(void *arg)
{
    intptr_t v = TU_INT(arg);
    if (TU_EQ(sl_sleep_ms(v / 256), 0))
        tu_log_putc((char)(v % 256));
}

TU_TEST(sleepers_wake_in_deadline_order)
{
    sl_spawn(sleep_then_log, TU_MSG(60 * 256 + 'a'));
    sl_spawn(sleep_then_log, TU_MSG(20 * 256 + 'b'));
    sl_spawn(sleep_then_log, TU_MSG(40 * 256 + 'c'));
    sl_spawn(sleep_then_log, TU_MSG(1 * 256 + 'd'));
    int64_t t0 = sl_now_ms();
    TU_EQ(sl_run(), 0); /* returns once every sleeper has woken */
    int64_t dt = sl_now_ms() - t0;
    TU_ASSERT_LOG("dbca");
    CU_ASSERT(dt >= 60);
}

static void sleep_10(void *arg)
{
    int *done = arg;
    if (TU_EQ(sl_sleep_ms(10), 0))
        __atomic_add_fetch(done, 1, __ATOMIC_RELAXED);
}

TU_TEST(many_sleeps_overlap)
{
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    int n = 200, done = 0; /* a fiber costs a sanitizer a lot */
#else
    int n = TU_SIZE(1000, 200), done = 0;
#endif
    for (int i = 0; i < n; i++)
        CU_ASSERT_PTR_NOT_NULL_FATAL(sl_spawn(sleep_10, &done));
    int64_t t0 = sl_now_ms();
    TU_EQ(sl_run(), 0);
    int64_t dt = sl_now_ms() - t0;
    TU_EQ(done, n);
    CU_ASSERT(dt >= 10);
    /* 1,000 sleeps of 10 ms overlap: far from 10 s (sanitizers make each
     * switch cost tens of microseconds: a looser bound there). */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    CU_ASSERT(dt < 3000);
#else
    CU_ASSERT(dt < TU_SIZE(300, 3000));
#endif
}

TU_TEST(sleep_measures_at_least_its_time)
{
    int64_t t0 = sl_now_ms();
    TU_EQ(sl_sleep_ms(25), 0); /* main alone: not a deadlock */
    CU_ASSERT(sl_now_ms() - t0 >= 25);
    TU_EQ(sl_sleep_ms(0), 0);
    TU_EQ(sl_sleep_ms(-5), 0);
}

static void count_loop(void *arg)
{
    int *n = arg;
    for (int i = 0; i < 5; i++) {
        (*n)++;
        sl_schedule();
    }
}

TU_TEST(zero_sleep_yields_to_others)
{
    TU_ONE_WORKER_ONLY();
    int n = 0;
    sl_spawn(count_loop, &n);
    TU_EQ(sl_sleep_ms(0), 0);
    TU_EQ(n, 1);
    TU_EQ(sl_run(), 0);
    TU_EQ(n, 5);
}

static void sleep_long(void *arg)
{
    int *rc = arg;
    *rc = sl_sleep_ms(10000);
}

TU_TEST(killed_sleeper_returns_at_once)
{
    int rc = 1;
    sl_tasklet *t = sl_spawn(sleep_long, &rc);
    sl_tasklet_ref(t);
    while (!sl_tasklet_blocked(t))
        sl_schedule();
    int64_t t0 = sl_now_ms();
    TU_EQ(sl_tasklet_kill(t), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(rc, SL_EKILLED);
    CU_ASSERT(sl_now_ms() - t0 < 1000);
    TU_EQ(sl_tasklet_alive(t), false);
    sl_tasklet_unref(t);
}

TU_TEST(sleeping_tasklet_counts_as_blocked)
{
    int rc = 1;
    sl_tasklet *t = sl_spawn(sleep_long, &rc);
    sl_tasklet_ref(t);
    while (!sl_tasklet_blocked(t))
        sl_schedule();
    TU_ASSERT_STATE(t, true, true, true, false);
    TU_EQ(sl_tasklet_kill(t), 0);
    TU_EQ(sl_run(), 0);
    sl_tasklet_unref(t);
}

TU_TEST_NOINIT(time_without_runtime)
{
    int64_t a = sl_now_ms();
    CU_ASSERT(a >= 0);
    TU_EQ(sl_sleep_ms(1), SL_ESTATE);
    CU_ASSERT(sl_now_ms() >= a);
}

/* ---- channel timeouts --------------------------------------------------- */

static void receive_timeout_20(void *arg)
{
    int *rc = arg;
    void *m = NULL;
    *rc = sl_channel_receive_timeout(chan, &m, 20);
}

TU_TEST(receive_timeout_leaves_balance_as_before)
{
    TU_ONE_WORKER_ONLY();
    new_chan();
    int rc = 1;
    sl_spawn(receive_timeout_20, &rc);
    TU_EQ(sl_schedule(), 0); /* it blocks */
    TU_EQ(sl_channel_balance(chan), -1);
    int64_t t0 = sl_now_ms();
    TU_EQ(sl_run(), 0); /* waits for its timeout */
    CU_ASSERT(sl_now_ms() - t0 >= 15);
    TU_EQ(rc, SL_ETIMEDOUT);
    TU_EQ(sl_channel_balance(chan), 0);
    TU_EQ(sl_channel_free(chan), 0);
}

TU_TEST(main_alone_times_out_instead_of_deadlock)
{
    new_chan();
    void *m = TU_MSG(7);
    int64_t t0 = sl_now_ms();
    TU_EQ(sl_channel_receive_timeout(chan, &m, 20), SL_ETIMEDOUT);
    CU_ASSERT(sl_now_ms() - t0 >= 20);
    TU_EQ(TU_INT(m), 7); /* untouched */
    TU_EQ(sl_channel_send_timeout(chan, m, 5), SL_ETIMEDOUT);
    TU_EQ(sl_channel_balance(chan), 0);
    /* Without a timeout it is a deadlock, as before. */
    TU_EQ(sl_channel_receive(chan, &m), SL_EDEADLOCK);
    TU_EQ(sl_channel_free(chan), 0);
}

static void send_after_sleep(void *arg)
{
    sl_sleep_ms(20);
    TU_EQ(sl_channel_send(chan, arg), 0);
}

TU_TEST(blocked_main_waits_for_a_sleeper_to_send)
{
    new_chan();
    sl_spawn(send_after_sleep, TU_MSG(42));
    void *m = NULL;
    /* Main blocks without a timeout; the sleeper can still wake it. */
    TU_EQ(sl_channel_receive(chan, &m), 0);
    TU_EQ(TU_INT(m), 42);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_channel_free(chan), 0);
}

static void send_timeout_long(void *arg)
{
    int *rc = arg;
    *rc = sl_channel_send_timeout(chan, TU_MSG(5), 5000);
}

TU_TEST(timed_send_completes_when_a_receiver_comes)
{
    new_chan();
    int rc = 1;
    sl_spawn(send_timeout_long, &rc);
    void *m = NULL;
    TU_EQ(sl_channel_receive(chan, &m), 0);
    TU_EQ(TU_INT(m), 5);
    TU_EQ(sl_run(), 0);
    TU_EQ(rc, 0);
    TU_EQ(sl_channel_balance(chan), 0);
    TU_EQ(sl_channel_free(chan), 0);
}

static void receive_forever(void *arg)
{
    void *m = NULL;
    TU_EQ(sl_channel_receive(chan, &m), 0);
    TU_EQ(TU_INT(m), TU_INT(arg));
}

TU_TEST(timeout_zero_only_tries)
{
    new_chan();
    TU_EQ(sl_channel_send_timeout(chan, TU_MSG(1), 0), SL_ETIMEDOUT);
    TU_EQ(sl_channel_balance(chan), 0);
    sl_spawn(receive_forever, TU_MSG(9));
    while (sl_channel_balance(chan) != -1)
        sl_schedule();
    TU_EQ(sl_channel_send_timeout(chan, TU_MSG(9), 0), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_channel_free(chan), 0);
}

static void receive_timeout_long(void *arg)
{
    int *rc = arg;
    void *m = NULL;
    *rc = sl_channel_receive_timeout(chan, &m, 10000);
}

TU_TEST(killed_timed_waiter_leaves_the_queue)
{
    new_chan();
    int rc = 1;
    sl_tasklet *t = sl_spawn(receive_timeout_long, &rc);
    sl_tasklet_ref(t);
    while (sl_channel_balance(chan) != -1)
        sl_schedule();
    TU_EQ(sl_tasklet_kill(t), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(rc, SL_EKILLED);
    TU_EQ(sl_channel_balance(chan), 0);
    sl_tasklet_unref(t);
    TU_EQ(sl_channel_free(chan), 0);
}

/* Receivers with short timeouts race a sender: every message sent is
 * received exactly once, every receiver either gets one or times out. */
struct race {
    int received, timed_out, other;
    long sum;
};

static void racing_receiver(void *arg)
{
    struct race *r = arg;
    void *m = NULL;
    int rc = sl_channel_receive_timeout(chan, &m, 1 + (intptr_t)(r->received % 3));
    if (rc == 0) {
        __atomic_add_fetch(&r->received, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&r->sum, TU_INT(m), __ATOMIC_RELAXED);
    } else if (rc == SL_ETIMEDOUT) {
        __atomic_add_fetch(&r->timed_out, 1, __ATOMIC_RELAXED);
    } else {
        __atomic_add_fetch(&r->other, 1, __ATOMIC_RELAXED);
    }
}

struct race_sender {
    int sent;
    long sum;
    int n;
};

static void racing_sender(void *arg)
{
    struct race_sender *s = arg;
    for (int i = 1; i <= s->n; i++) {
        /* Give timers a chance to fire while receivers wait. */
        if (i % 16 == 0)
            sl_sleep_ms(1);
        if (sl_channel_send_timeout(chan, TU_MSG(i), 3) == 0) {
            s->sent++;
            s->sum += i;
        }
    }
}

TU_TEST(partner_and_timer_race_without_loss)
{
    new_chan();
    struct race r = {0};
    int n = TU_SIZE(2000, 200);
    struct race_sender s = {.n = n};
    for (int i = 0; i < n; i++)
        sl_spawn(racing_receiver, &r);
    sl_spawn(racing_sender, &s);
    TU_EQ(sl_run(), 0);
    TU_EQ(r.other, 0);
    TU_EQ(r.received + r.timed_out, n);
    TU_EQ(r.received, s.sent);
    TU_EQ(r.sum, s.sum);
    TU_EQ(sl_channel_balance(chan), 0);
    TU_EQ(sl_channel_free(chan), 0);
}

static void timed_receive_on_other(void *arg)
{
    sl_channel *other = arg;
    void *m = NULL;
    TU_EQ(sl_channel_receive_timeout(other, &m, 20), SL_ETIMEDOUT);
}

TU_TEST(deadlock_is_reported_once_no_timer_is_left)
{
    TU_ONE_WORKER_ONLY();
    new_chan();
    sl_channel *other = sl_channel_new();
    sl_spawn(timed_receive_on_other, other);
    void *m = NULL;
    /* Main blocks for good; the tasklet's timeout can still run it, so
     * this is no deadlock until the tasklet has timed out and ended. */
    int64_t t0 = sl_now_ms();
    TU_EQ(sl_channel_receive(chan, &m), SL_EDEADLOCK);
    CU_ASSERT(sl_now_ms() - t0 >= 20);
    TU_EQ(sl_channel_balance(chan), 0);
    TU_EQ(sl_channel_free(other), 0);
    TU_EQ(sl_channel_free(chan), 0);
}

static void sleep_and_log(void *arg)
{
    (void)arg;
    sl_sleep_ms(30);
    tu_log_putc('s');
}

/* Review (issue 13): a timed wait counts in nwaits (the runtime waits for
 * its timer instead of applying the deadlock rules) until its tasklet
 * runs again. A tasklet whose timed wait a partner completed and which is
 * then removed before it runs (legal: it is runnable) never runs that
 * epilogue: nwaits stayed 1 for good, so sl_run waited in epoll forever
 * (one worker) or quiescence never came (several). Now the removal undoes
 * the count. All three on one worker, in a fixed order: T waits with a
 * long timeout; R sends to it (preference 0: R goes on, T is only queued)
 * and removes it before it runs. sl_run must return with T paused, its
 * call not returned; inserted, T gets the message. */
static sl_tasklet *rm_t;
static int rm_rc, rm_t_rc;
static void *rm_t_msg;

static void rm_timed_receiver(void *arg)
{
    (void)arg;
    rm_t_rc = sl_channel_receive_timeout(chan, &rm_t_msg, 600000);
}

static void rm_remover(void *arg)
{
    (void)arg;
    TU_EQ(sl_channel_send(chan, TU_MSG(7)), 0); /* T becomes runnable */
    rm_rc = sl_tasklet_remove(rm_t);          /* before it runs */
}

TU_TEST(timed_out_tasklet_removed_before_it_runs_does_not_stall_run)
{
    new_chan();
    sl_channel_set_preference(chan, 0);
    rm_rc = rm_t_rc = 12345;
    rm_t_msg = NULL;
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.worker = sl_worker_count() - 1;
    rm_t = sl_spawn_ex(&a, rm_timed_receiver, NULL);
    sl_tasklet_ref(rm_t);
    CU_ASSERT_PTR_NOT_NULL(sl_spawn_ex(&a, rm_remover, NULL));
    TU_EQ(sl_run(), 0); /* hung before the fix: the case timeout catches it */
    TU_EQ(rm_rc, 0);
    TU_EQ(sl_tasklet_paused(rm_t), true);
    TU_EQ(rm_t_rc, 12345); /* its call has not returned */
    TU_EQ(sl_tasklet_insert(rm_t), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(rm_t_rc, 0);
    TU_EQ(TU_INT(rm_t_msg), 7);
    sl_tasklet_unref(rm_t);
    TU_EQ(sl_channel_balance(chan), 0);
    TU_EQ(sl_channel_free(chan), 0);
}

TU_TEST(run_waits_for_sleepers)
{
    sl_spawn(sleep_and_log, NULL);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("s");
    TU_EQ(sl_getlivecount(), 0);
}

TU_TEST(sleepers_on_many_tasklets_interleave_with_work)
{
    int n = 0;
    sl_spawn(sleep_and_log, NULL);
    sl_spawn(count_loop, &n);
    TU_EQ(sl_run(), 0);
    TU_EQ(n, 5);
    TU_ASSERT_LOG("s");
}

/* ---- issue 13's regressions ----------------------------------------------- */

/* Suspected ("a kill can be lost while its target, runnable on another
 * worker, is starting to block"), sl_sleep_ms's case (the example:
 * "sl_sleep_ms(10000) ends with SL_ETIMEDOUT"): the sleeper, on worker 1,
 * is stopped after its kill check while computing its deadline (the hook
 * on clock_gettime), and killed there. Its sleep must end SL_EKILLED, not
 * run its course. */
static int ks_rc;

static void sleep_in_window(void *arg)
{
    (void)arg;
    tu_window_enter(TU_HOOK_CLOCK_GETTIME, 0);
    ks_rc = sl_sleep_ms(2000);
}

TU_TEST_TIMEOUT(kill_of_a_tasklet_starting_to_sleep_on_another_worker_is_not_lost, 30)
{
    TU_MULTI_WORKER_ONLY();
    ks_rc = 12345;
    TU_EQ(tu_kill_in_window(sleep_in_window, NULL), 0);
    TU_EQ(ks_rc, SL_EKILLED);
}

static CU_TestInfo tests[] = {
    TU_CASE(sleepers_wake_in_deadline_order),
    TU_CASE(many_sleeps_overlap),
    TU_CASE(sleep_measures_at_least_its_time),
    TU_CASE(zero_sleep_yields_to_others),
    TU_CASE(killed_sleeper_returns_at_once),
    TU_CASE(sleeping_tasklet_counts_as_blocked),
    TU_CASE(time_without_runtime),
    TU_CASE(receive_timeout_leaves_balance_as_before),
    TU_CASE(main_alone_times_out_instead_of_deadlock),
    TU_CASE(blocked_main_waits_for_a_sleeper_to_send),
    TU_CASE(timed_send_completes_when_a_receiver_comes),
    TU_CASE(timeout_zero_only_tries),
    TU_CASE(killed_timed_waiter_leaves_the_queue),
    TU_CASE(partner_and_timer_race_without_loss),
    TU_CASE(deadlock_is_reported_once_no_timer_is_left),
    TU_CASE(timed_out_tasklet_removed_before_it_runs_does_not_stall_run),
    TU_CASE(run_waits_for_sleepers),
    TU_CASE(sleepers_on_many_tasklets_interleave_with_work),
    /* issue 13's regressions */
    TU_CASE(kill_of_a_tasklet_starting_to_sleep_on_another_worker_is_not_lost),
    CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
    return tu_main(argc, argv, "time", tests);
}
