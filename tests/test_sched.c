/* test_sched.c - the run queue: round robin, run counts, schedule_remove,
 * tasklet run/switch rotation, sl_run, and deadlock detection. */
#include "test_util.h"

/* ---- tasklet bodies ------------------------------------------------------ */

static void log_arg(void *arg)
{
    tu_log_putc((char)TU_INT(arg));
}

static sl_tasklet *spawn_log(char c)
{
    sl_tasklet *t = sl_spawn(log_arg, TU_MSG(c));
    CU_ASSERT_PTR_NOT_NULL(t);
    return t;
}

/* Logs its letter and yields, YIELDS times. */
enum { YIELDS = 3 };
static void log_and_yield(void *arg)
{
    for (int i = 0; i < YIELDS; i++) {
        tu_log_putc((char)TU_INT(arg));
        TU_EQ(sl_schedule(), 0);
    }
}

/* Logs its letter and yields twice. */
static void log_and_yield_twice(void *arg)
{
    for (int i = 0; i < 2; i++) {
        tu_log_putc((char)TU_INT(arg));
        TU_EQ(sl_schedule(), 0);
    }
}

static void receive_and_log(void *ch)
{
    void *msg = NULL;
    if (TU_EQ(sl_channel_receive(ch, &msg), 0))
        tu_log_putc((char)TU_INT(msg));
}

/* ---- round robin ----------------------------------------------------------- */

TU_TEST(schedule_interleaves_round_robin)
{
    sl_spawn(log_and_yield, TU_MSG('A'));
    sl_spawn(log_and_yield, TU_MSG('B'));
    sl_spawn(log_and_yield, TU_MSG('C'));
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("ABCABCABC");
}

TU_TEST(main_takes_its_turn_in_round_robin)
{
    sl_spawn(log_and_yield_twice, TU_MSG('a'));
    sl_spawn(log_and_yield_twice, TU_MSG('b'));
    for (int i = 0; i < 3; i++) {
        tu_log_putc('m');
        TU_EQ(sl_schedule(), 0);
    }
    TU_ASSERT_LOG("mabmabm");
    TU_EQ(sl_getlivecount(), 0);
}

TU_TEST(schedule_alone_in_main_returns_0_without_switching)
{
    TU_EQ(sl_schedule(), 0);
    TU_EQ(sl_getruncount(), 1);
    TU_ASSERT_LOG("");
}

static int lone_runcount, lone_rc;

static void lone_yield(void *arg)
{
    (void)arg;
    tu_log_putc('a');
    lone_runcount = sl_getruncount();
    lone_rc = sl_schedule();
    tu_log_putc('b');
}

TU_TEST(schedule_alone_in_run_returns_0_without_switching)
{
    sl_spawn(lone_yield, NULL);
    TU_EQ(sl_run(), 0);
    TU_EQ(lone_runcount, 1); /* main is not in the run queue during sl_run */
    TU_EQ(lone_rc, 0);
    TU_ASSERT_LOG("ab");
}

/* ---- run counts ------------------------------------------------------------ */

static int seen_runcount[8];
static int seen_n;

static void record_runcount(void *arg)
{
    (void)arg;
    if (seen_n < 8)
        seen_runcount[seen_n++] = sl_getruncount();
}

TU_TEST(runcount_in_main_includes_main)
{
    seen_n = 0;
    TU_EQ(sl_getruncount(), 1);
    for (int i = 0; i < 3; i++)
        sl_spawn(record_runcount, NULL);
    TU_EQ(sl_getruncount(), 4);
    TU_EQ(sl_schedule(), 0); /* main goes last: the three see 4, 3, 2 */
    TU_EQ(seen_n, 3);
    TU_EQ(seen_runcount[0], 4);
    TU_EQ(seen_runcount[1], 3);
    TU_EQ(seen_runcount[2], 2);
    TU_EQ(sl_getruncount(), 1);
}

TU_TEST(runcount_during_run_excludes_main)
{
    seen_n = 0;
    for (int i = 0; i < 3; i++)
        sl_spawn(record_runcount, NULL);
    TU_EQ(sl_run(), 0);
    TU_EQ(seen_n, 3);
    TU_EQ(seen_runcount[0], 3);
    TU_EQ(seen_runcount[1], 2);
    TU_EQ(seen_runcount[2], 1);
}

TU_TEST(runcount_excludes_blocked_and_paused)
{
    sl_channel *ch = sl_channel_new();
    sl_spawn(receive_and_log, ch);
    sl_tasklet *p = spawn_log('p');
    spawn_log('r');
    TU_EQ(sl_tasklet_remove(p), 0);
    TU_EQ(sl_getruncount(), 3); /* main, receiver (not yet run), 'r' */
    TU_EQ(sl_schedule(), 0);    /* receiver blocks, 'r' ends */
    TU_EQ(sl_getruncount(), 1);
    TU_EQ(sl_getlivecount(), 2);
    TU_EQ(sl_tasklet_insert(p), 0);
    TU_EQ(sl_getruncount(), 2);
    TU_EQ(sl_channel_send(ch, TU_MSG('m')), 0);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("rmp");
    TU_EQ(sl_channel_free(ch), 0);
}

/* ---- schedule_remove ------------------------------------------------------- */

static int pause_rc;

static void pause_between_a_and_b(void *arg)
{
    (void)arg;
    tu_log_putc('a');
    pause_rc = sl_schedule_remove();
    tu_log_putc('b');
}

TU_TEST(schedule_remove_pauses_caller_until_insert)
{
    sl_tasklet *t = sl_spawn(pause_between_a_and_b, NULL);
    spawn_log('B');
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("aB");
    TU_EQ(sl_tasklet_paused(t), true);
    TU_EQ(sl_getruncount(), 1);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("aB"); /* nothing inserted it: still paused */
    TU_EQ(sl_tasklet_insert(t), 0);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("aBb");
    TU_EQ(pause_rc, 0);
}

/* ---- sl_tasklet_run / sl_tasklet_switch -------------------------------------- */

TU_TEST(run_from_main_rotates_queue_to_target)
{
    /* queue: main A B C D; run(C) makes it C D main A B */
    spawn_log('A');
    spawn_log('B');
    sl_tasklet *c = spawn_log('C');
    spawn_log('D');
    TU_EQ(sl_tasklet_run(c), 0);
    tu_log_putc('m');
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("CDmAB");
}

static sl_tasklet *target;

static void run_target(void *arg)
{
    tu_log_putc((char)TU_INT(arg));
    TU_EQ(sl_tasklet_run(target), 0);
    tu_log_putc('a');
}

TU_TEST(run_from_tasklet_rotates_queue_to_target)
{
    /* queue during sl_run: A B C D; A runs C: C D A B */
    sl_spawn(run_target, TU_MSG('A'));
    spawn_log('B');
    target = spawn_log('C');
    spawn_log('D');
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("ACDaB");
}

TU_TEST(run_of_paused_inserts_it_then_switches)
{
    /* queue: main A, B paused; run(B): B main A */
    spawn_log('A');
    sl_tasklet *b = spawn_log('B');
    TU_EQ(sl_tasklet_remove(b), 0);
    TU_EQ(sl_tasklet_run(b), 0);
    tu_log_putc('m');
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("BmA");
}

static int switch_rc = -1;

static void switch_target(void *arg)
{
    tu_log_putc((char)TU_INT(arg));
    switch_rc = sl_tasklet_switch(target);
    tu_log_putc('a');
}

TU_TEST(switch_from_tasklet_pauses_caller)
{
    /* queue during sl_run: A B C; A switches to C: C B, A paused */
    sl_tasklet *a = sl_spawn(switch_target, TU_MSG('A'));
    spawn_log('B');
    target = spawn_log('C');
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("ACB");
    TU_EQ(sl_tasklet_paused(a), true);
    TU_EQ(sl_tasklet_insert(a), 0);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("ACBa");
    TU_EQ(switch_rc, 0);
}

TU_TEST(switch_from_main_returns_when_last_tasklet_ends)
{
    /* queue: main A B C; switch(B): B C A, main paused until they end */
    spawn_log('A');
    sl_tasklet *b = spawn_log('B');
    spawn_log('C');
    TU_EQ(sl_tasklet_switch(b), 0);
    TU_ASSERT_LOG("BCA");
    TU_EQ(sl_tasklet_scheduled(sl_main()), true);
    TU_EQ(sl_getruncount(), 1);
}

TU_TEST(switch_from_main_returns_when_last_tasklet_blocks)
{
    sl_channel *ch = sl_channel_new();
    sl_tasklet *r = sl_spawn(receive_and_log, ch);
    TU_EQ(sl_tasklet_switch(r), 0);
    TU_EQ(sl_tasklet_blocked(r), true);
    TU_EQ(sl_channel_send(ch, TU_MSG('m')), 0);
    TU_ASSERT_LOG("m");
    TU_EQ(sl_channel_free(ch), 0);
}

TU_TEST(schedule_remove_in_main_returns_when_last_tasklet_ends)
{
    spawn_log('a');
    spawn_log('b');
    TU_EQ(sl_schedule_remove(), 0);
    TU_ASSERT_LOG("ab");
    TU_EQ(sl_tasklet_scheduled(sl_main()), true);
    TU_EQ(sl_getruncount(), 1);
}

TU_TEST(schedule_remove_in_main_returns_when_last_tasklet_blocks)
{
    sl_channel *ch = sl_channel_new();
    sl_tasklet *r = sl_spawn(receive_and_log, ch);
    TU_EQ(sl_schedule_remove(), 0);
    TU_EQ(sl_tasklet_blocked(r), true);
    TU_EQ(sl_channel_balance(ch), -1);
    TU_EQ(sl_channel_send(ch, TU_MSG('m')), 0);
    TU_ASSERT_LOG("m");
    TU_EQ(sl_channel_free(ch), 0);
}

/* ---- sl_run ------------------------------------------------------------------ */

TU_TEST(run_with_only_main_returns_0)
{
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_getruncount(), 1);
}

static int blocked_send_rc = -1;

static void send_and_log(void *ch)
{
    blocked_send_rc = sl_channel_send(ch, TU_MSG('x'));
    tu_log_putc('s');
}

TU_TEST(run_returns_leaving_blocked_tasklets_blocked)
{
    sl_channel *ch = sl_channel_new();
    sl_tasklet *s = sl_spawn(send_and_log, ch);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_tasklet_blocked(s), true);
    TU_EQ(sl_channel_balance(ch), 1);
    TU_ASSERT_LOG("");
    void *msg = NULL;
    TU_EQ(sl_channel_receive(ch, &msg), 0);
    TU_EQ(TU_INT(msg), 'x');
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("s");
    TU_EQ(blocked_send_rc, 0);
    TU_EQ(sl_channel_free(ch), 0);
}

/* Hackysack (Grant Olson's tutorial): players pass a ball at random; the
 * kicker of the last turn sends "exit" to every other player, then to
 * itself last, and stays blocked on that send; sl_run still returns. */
enum { PLAYERS = 10, TURNS = 1000 };
static sl_channel *hs_ch[PLAYERS];
static int hs_kicks, hs_errors;
#define HS_EXIT TU_MSG(-1)

static void hs_player(void *arg)
{
    int me = (int)TU_INT(arg);
    unsigned rng = 2166136261u ^ (unsigned)me;
    for (;;) {
        void *msg = NULL;
        if (sl_channel_receive(hs_ch[me], &msg) != 0) {
            hs_errors++;
            return;
        }
        if (msg == HS_EXIT)
            return;
        int to;
        do {
            rng = rng * 1103515245u + 12345u;
            to = (int)((rng >> 16) % PLAYERS);
        } while (to == me);
        if (++hs_kicks == TURNS) {
            for (int p = 0; p < PLAYERS; p++)
                if (p != me && sl_channel_send(hs_ch[p], HS_EXIT) != 0)
                    hs_errors++;
            sl_channel_send(hs_ch[me], HS_EXIT); /* blocks: nobody listens */
            return;
        }
        if (sl_channel_send(hs_ch[to], TU_MSG(me)) != 0) {
            hs_errors++;
            return;
        }
    }
}

TU_TEST(run_returns_when_hackysack_kicker_blocks_on_itself)
{
    hs_kicks = hs_errors = 0;
    for (int p = 0; p < PLAYERS; p++) {
        hs_ch[p] = sl_channel_new();
        CU_ASSERT_PTR_NOT_NULL_FATAL(hs_ch[p]);
        CU_ASSERT_PTR_NOT_NULL(sl_spawn(hs_player, TU_MSG(p)));
    }
    TU_EQ(sl_run(), 0); /* every player blocks on its receive */
    TU_EQ(sl_channel_send(hs_ch[0], TU_MSG(0)), 0); /* the ball */
    TU_EQ(sl_run(), 0);
    TU_EQ(hs_kicks, TURNS);
    TU_EQ(hs_errors, 0);
    TU_EQ(sl_getlivecount(), 1);

    int kicker = -1, balances = 0;
    for (int p = 0; p < PLAYERS; p++) {
        int b = sl_channel_balance(hs_ch[p]);
        balances += b;
        if (b == 1)
            kicker = p;
    }
    TU_EQ(balances, 1);
    CU_ASSERT_FATAL(kicker >= 0);
    void *msg = NULL;
    TU_EQ(sl_channel_receive(hs_ch[kicker], &msg), 0);
    CU_ASSERT_PTR_EQUAL(msg, HS_EXIT);
    TU_EQ(sl_run(), 0);
    for (int p = 0; p < PLAYERS; p++)
        TU_EQ(sl_channel_free(hs_ch[p]), 0);
}

static int misuse_run_rc, misuse_shutdown_rc;

static void call_run_and_shutdown(void *arg)
{
    (void)arg;
    misuse_run_rc = sl_run();
    misuse_shutdown_rc = sl_shutdown();
}

TU_TEST(run_and_shutdown_from_tasklet_are_estate)
{
    sl_spawn(call_run_and_shutdown, NULL);
    TU_EQ(sl_run(), 0);
    TU_EQ(misuse_run_rc, SL_ESTATE);
    TU_EQ(misuse_shutdown_rc, SL_ESTATE);
}

/* ---- deadlock ---------------------------------------------------------------- */

TU_TEST(main_receive_with_nothing_runnable_is_edeadlock)
{
    sl_channel *ch = sl_channel_new();
    void *msg = NULL;
    TU_EQ(sl_channel_receive(ch, &msg), SL_EDEADLOCK);
    TU_EQ(sl_channel_balance(ch), 0);
    TU_EQ(sl_channel_send(ch, TU_MSG('x')), SL_EDEADLOCK);
    TU_EQ(sl_channel_balance(ch), 0);
    TU_EQ(sl_channel_free(ch), 0);
}

TU_TEST(main_receive_with_only_blocked_tasklets_is_edeadlock)
{
    sl_channel *ch = sl_channel_new(), *other = sl_channel_new();
    sl_spawn(receive_and_log, other);
    TU_EQ(sl_run(), 0);
    void *msg = NULL;
    TU_EQ(sl_channel_receive(ch, &msg), SL_EDEADLOCK);
    TU_EQ(sl_channel_balance(ch), 0);
    TU_EQ(sl_channel_send(other, TU_MSG('m')), 0);
    TU_ASSERT_LOG("m");
    TU_EQ(sl_channel_free(ch), 0);
    TU_EQ(sl_channel_free(other), 0);
}

TU_TEST(main_receive_when_last_tasklet_ends_is_edeadlock)
{
    sl_channel *ch = sl_channel_new();
    spawn_log('a');
    void *msg = NULL;
    TU_EQ(sl_channel_receive(ch, &msg), SL_EDEADLOCK);
    TU_ASSERT_LOG("a");
    TU_EQ(sl_channel_balance(ch), 0);
    TU_EQ(sl_channel_free(ch), 0);
}

TU_TEST(main_send_when_last_tasklet_ends_is_edeadlock)
{
    sl_channel *ch = sl_channel_new();
    spawn_log('a');
    TU_EQ(sl_channel_send(ch, TU_MSG('x')), SL_EDEADLOCK);
    TU_ASSERT_LOG("a");
    TU_EQ(sl_channel_balance(ch), 0);
    TU_EQ(sl_channel_free(ch), 0);
}

static sl_channel *main_waits_on, *nobody_sends_on;
static int last_runnable_rc;

/* Runs while main is blocked on main_waits_on: its own blocking call finds
 * nobody else runnable. Then it releases main. */
static void block_while_main_blocked(void *arg)
{
    void *msg = NULL;
    if (arg == NULL)
        last_runnable_rc = sl_channel_receive(nobody_sends_on, &msg);
    else
        last_runnable_rc = sl_schedule_remove();
    tu_log_putc('d');
    tu_log_putc('s');
    TU_EQ(sl_channel_send(main_waits_on, TU_MSG('x')), 0);
    tu_log_putc('e');
}

static void check_last_runnable_gets_edeadlock(void *how)
{
    main_waits_on = sl_channel_new();
    nobody_sends_on = sl_channel_new();
    sl_spawn(block_while_main_blocked, how);
    void *msg = NULL;
    TU_EQ(sl_channel_receive(main_waits_on, &msg), 0);
    tu_log_putc('M');
    TU_EQ(TU_INT(msg), 'x');
    TU_EQ(last_runnable_rc, SL_EDEADLOCK);
    TU_EQ(sl_channel_balance(nobody_sends_on), 0);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("dsMe"); /* main stayed blocked until the send */
    TU_EQ(sl_channel_free(main_waits_on), 0);
    TU_EQ(sl_channel_free(nobody_sends_on), 0);
}

TU_TEST(last_runnable_receive_while_main_blocked_is_edeadlock)
{
    TU_ONE_WORKER_ONLY(); /* with more, quiescence decides: see test_mn */
    check_last_runnable_gets_edeadlock(NULL);
}

TU_TEST(last_runnable_schedule_remove_while_main_blocked_is_edeadlock)
{
    TU_ONE_WORKER_ONLY(); /* with more, quiescence decides: see test_mn */
    check_last_runnable_gets_edeadlock(TU_MSG(1));
}

TU_TEST(main_schedule_remove_with_nothing_runnable_is_edeadlock)
{
    TU_ONE_WORKER_ONLY(); /* with more, quiescence decides: see test_mn */
    TU_EQ(sl_schedule_remove(), SL_EDEADLOCK);
    TU_EQ(sl_tasklet_scheduled(sl_main()), true);
    TU_EQ(sl_getruncount(), 1);
}

TU_TEST(main_schedule_remove_with_only_blocked_tasklets_is_edeadlock)
{
    TU_ONE_WORKER_ONLY(); /* with more, quiescence decides: see test_mn */
    sl_channel *ch = sl_channel_new();
    sl_spawn(receive_and_log, ch);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_schedule_remove(), SL_EDEADLOCK);
    TU_EQ(sl_getruncount(), 1);
    TU_EQ(sl_channel_send(ch, TU_MSG('m')), 0);
    TU_ASSERT_LOG("m");
    TU_EQ(sl_channel_free(ch), 0);
}

static CU_TestInfo tests[] = {
    TU_CASE(schedule_interleaves_round_robin),
    TU_CASE(main_takes_its_turn_in_round_robin),
    TU_CASE(schedule_alone_in_main_returns_0_without_switching),
    TU_CASE(schedule_alone_in_run_returns_0_without_switching),
    TU_CASE(runcount_in_main_includes_main),
    TU_CASE(runcount_during_run_excludes_main),
    TU_CASE(runcount_excludes_blocked_and_paused),
    TU_CASE(schedule_remove_pauses_caller_until_insert),
    TU_CASE(run_from_main_rotates_queue_to_target),
    TU_CASE(run_from_tasklet_rotates_queue_to_target),
    TU_CASE(run_of_paused_inserts_it_then_switches),
    TU_CASE(switch_from_tasklet_pauses_caller),
    TU_CASE(switch_from_main_returns_when_last_tasklet_ends),
    TU_CASE(switch_from_main_returns_when_last_tasklet_blocks),
    TU_CASE(schedule_remove_in_main_returns_when_last_tasklet_ends),
    TU_CASE(schedule_remove_in_main_returns_when_last_tasklet_blocks),
    TU_CASE(run_with_only_main_returns_0),
    TU_CASE(run_returns_leaving_blocked_tasklets_blocked),
    TU_CASE(run_returns_when_hackysack_kicker_blocks_on_itself),
    TU_CASE(run_and_shutdown_from_tasklet_are_estate),
    TU_CASE(main_receive_with_nothing_runnable_is_edeadlock),
    TU_CASE(main_receive_with_only_blocked_tasklets_is_edeadlock),
    TU_CASE(main_receive_when_last_tasklet_ends_is_edeadlock),
    TU_CASE(main_send_when_last_tasklet_ends_is_edeadlock),
    TU_CASE(last_runnable_receive_while_main_blocked_is_edeadlock),
    TU_CASE(last_runnable_schedule_remove_while_main_blocked_is_edeadlock),
    TU_CASE(main_schedule_remove_with_nothing_runnable_is_edeadlock),
    TU_CASE(main_schedule_remove_with_only_blocked_tasklets_is_edeadlock),
    CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
    return tu_main(argc, argv, "sched", tests);
}
