/* test_sched.c - the run queue: round robin, run counts, schedule_remove,
 * tasklet run/switch rotation, sl_run, deadlock detection, throw, and the
 * watchdog with a budget (sl_run_for; stackless-testsuite's
 * test_watchdog.py in C). */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_hook.h"
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

/* ---- issue 13's regressions ----------------------------------------------- */

/* The inbox window (issue 13, item 3 and the suspected "same window for
 * run, switch and remove"): A, pinned to worker 0, blocks sending on a
 * rendezvous channel, and C behind it (so that A's stale links point at a
 * live waiter); B, pinned to worker 1, receives, which puts A into
 * worker 0's inbox (RUNNABLE, worker 0, but not in its run queue). Before
 * worker 0 reaches a scheduling point, a tasklet there (K, spinning on an
 * atomic) or main acts on A. */
enum inbox_op { OP_KILL, OP_RUN, OP_SWITCH, OP_REMOVE };

static struct inbox_case {
    sl_channel *ch;
    sl_tasklet *a;
    int op;
    int received; /* B's receive returned: A is in worker 0's inbox */
    int send_rc, next_rc, a_done;
    int op_rc, k_done;
} ic;

static void inbox_a(void *arg)
{
    (void)arg;
    ic.send_rc = sl_channel_send(ic.ch, TU_MSG(1));
    tu_log_putc('A');
    ic.next_rc = sl_schedule(); /* a kill shows at the next call */
    tu_st(&ic.a_done, 1);
}

static void inbox_c(void *arg)
{
    (void)arg;
    TU_EQ(sl_channel_send(ic.ch, TU_MSG(2)), 0);
}

static void inbox_b(void *arg)
{
    (void)arg;
    while (sl_channel_balance(ic.ch) != 2) /* A and C wait */
        ;
    void *m = NULL;
    TU_EQ(sl_channel_receive(ic.ch, &m), 0);
    TU_EQ(TU_INT(m), 1);
    tu_st(&ic.received, 1);
}

static int inbox_act(void)
{
    switch (ic.op) {
    case OP_KILL:
        return sl_tasklet_kill(ic.a);
    case OP_RUN:
        return sl_tasklet_run(ic.a);
    case OP_SWITCH:
        return sl_tasklet_switch(ic.a);
    default:
        return sl_tasklet_remove(ic.a);
    }
}

static void receive_3(void *arg)
{
    void *m = NULL;
    TU_EQ(sl_channel_receive(arg, &m), 0);
    TU_EQ(TU_INT(m), 3);
}

static void inbox_k(void *arg)
{
    (void)arg;
    CU_ASSERT(tu_spin_until(&ic.received, 10000)); /* no scheduling point */
    ic.op_rc = inbox_act();
    tu_log_putc('K');
    tu_st(&ic.k_done, 1);
}

/* Runs the case with K (by_main false) or main as the actor; checks what
 * every operation must leave: A's send completed (0), everything ends,
 * nothing is run twice or lost. Returns the operation's code. */
static int inbox_window(int op, bool by_main)
{
    memset(&ic, 0, sizeof ic);
    ic.op = op;
    ic.send_rc = ic.next_rc = ic.op_rc = 12345;
    ic.ch = sl_channel_new();
    ic.a = tu_spawn_pinned(0, inbox_a, NULL);
    sl_tasklet_ref(ic.a);
    tu_spawn_pinned(0, inbox_c, NULL);
    sl_tasklet *k = NULL;
    if (!by_main) {
        k = tu_spawn_pinned(0, inbox_k, NULL);
        sl_tasklet_ref(k);
    }
    tu_spawn_pinned(1, inbox_b, NULL);
    if (by_main) {
        while (sl_channel_balance(ic.ch) != 2) /* A and C block */
            sl_schedule();
        CU_ASSERT(tu_spin_until(&ic.received, 10000));
        ic.op_rc = inbox_act();
        tu_log_putc('K');
        tu_st(&ic.k_done, 1);
    }
    TU_EQ(sl_run(), 0);
    /* Paused by the operation (switch pauses K, remove pauses A): the
     * test puts them back. */
    if (k && sl_tasklet_alive(k) && sl_tasklet_paused(k))
        TU_EQ(sl_tasklet_insert(k), 0);
    if (sl_tasklet_alive(ic.a) && sl_tasklet_paused(ic.a))
        TU_EQ(sl_tasklet_insert(ic.a), 0);
    TU_EQ(sl_run(), 0);
    void *m = NULL;
    TU_EQ(sl_channel_receive(ic.ch, &m), 0); /* C's, still waiting */
    TU_EQ(TU_INT(m), 2);
    TU_EQ(sl_run(), 0);
    /* The channel's queue is intact: one more exchange through it. */
    tu_spawn_pinned(0, receive_3, ic.ch);
    while (sl_channel_balance(ic.ch) != -1)
        sl_schedule();
    TU_EQ(sl_channel_send(ic.ch, TU_MSG(3)), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(ic.k_done, 1);
    TU_EQ(ic.a_done, 1);
    TU_EQ(ic.send_rc, 0); /* the message was taken: the send completed */
    TU_EQ(sl_tasklet_alive(ic.a), false);
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_channel_balance(ic.ch), 0);
    sl_tasklet_unref(ic.a);
    if (k)
        sl_tasklet_unref(k);
    TU_EQ(sl_channel_free(ic.ch), 0);
    return ic.op_rc;
}

/* Item 3: the killer must be resumed, and A's next call reports the
 * kill (before the fix: the killer is never resumed, or a crash in
 * sl__poll_inbox / sl__rq_link_before). */
TU_TEST_TIMEOUT(kill_of_a_tasklet_in_the_killers_own_inbox_resumes_the_killer, 20)
{
    TU_MULTI_WORKER_ONLY();
    TU_EQ(inbox_window(OP_KILL, false), 0);
    TU_EQ(ic.next_rc, SL_EKILLED);
    /* A reacts before the killer goes on (like a kill of a tasklet
     * runnable here), or after (like one runnable elsewhere: pending). */
    CU_ASSERT(strcmp(tu_log(), "AK") == 0 || strcmp(tu_log(), "KA") == 0);
}

/* Item 3, with main as the killer (before the fix: an abort on
 * st == SL_T_PAUSED in sched/worker.c). */
TU_TEST_TIMEOUT(kill_by_main_of_a_tasklet_in_its_inbox_resumes_main, 20)
{
    TU_MULTI_WORKER_ONLY();
    TU_EQ(inbox_window(OP_KILL, true), 0);
    TU_EQ(ic.next_rc, SL_EKILLED);
    CU_ASSERT(strcmp(tu_log(), "AK") == 0 || strcmp(tu_log(), "KA") == 0);
}

/* Suspected, run and switch: either A runs now (0, and it ran before the
 * call returned) or the call refuses a tasklet not yet in the run queue
 * (SL_ESTATE). */
static void check_runs_once(int op)
{
    int rc = inbox_window(op, false);
    CU_ASSERT(rc == 0 || rc == SL_ESTATE);
    TU_EQ(ic.next_rc, 0);
    if (rc == 0)
        TU_ASSERT_LOG("AK");
}

TU_TEST_TIMEOUT(run_of_a_tasklet_in_the_callers_inbox_runs_it_once, 20)
{
    TU_MULTI_WORKER_ONLY();
    check_runs_once(OP_RUN);
}

TU_TEST_TIMEOUT(switch_to_a_tasklet_in_the_callers_inbox_runs_it_once, 20)
{
    TU_MULTI_WORKER_ONLY();
    check_runs_once(OP_SWITCH);
}

/* Remove: either A is paused (0: it must not run until inserted) or the
 * call refuses (SL_ESTATE). */
TU_TEST_TIMEOUT(remove_of_a_tasklet_in_the_callers_inbox_pauses_it_or_refuses, 20)
{
    TU_MULTI_WORKER_ONLY();
    int rc = inbox_window(OP_REMOVE, false);
    CU_ASSERT(rc == 0 || rc == SL_ESTATE);
    TU_EQ(ic.next_rc, 0);
    TU_ASSERT_LOG("KA"); /* K went on; A ran later (inserted, or queued) */
}

/* Suspected: a kill lost while its target, runnable on another worker, is
 * starting to block; sl_schedule_remove's case. The target (worker 1) is
 * stopped inside its sl_schedule_remove after the kill check: at a timer
 * tick (the tick's clock read), which the test makes fall on that call by
 * counting scheduling points (SL_POLL_EVERY = 128) with a sleeping
 * tasklet's timer armed on that worker. After the kill the target must
 * not stay paused: its call returns SL_EKILLED. */
static struct {
    int counted, rc, done;
} sr;

static void sleep_a_while(void *arg)
{
    (void)arg;
    TU_EQ(sl_sleep_ms(1000), 0); /* a live timer on worker 1 */
}

static void remove_at_tick(void *arg)
{
    (void)arg;
    tu_hook_count_start(TU_HOOK_CLOCK_GETTIME, tu_tid());
    int n = 0;
    while (tu_hook_count() == 0 && n++ < 1000)
        sl_schedule(); /* alone here: returns at once, one point each */
    tu_hook_disarm();
    tu_st(&sr.counted, n < 1000);
    for (int i = 0; i < 127; i++)
        sl_schedule();
    /* The next scheduling point is the 128th since the tick. */
    tu_window_enter(TU_HOOK_CLOCK_GETTIME, 0);
    sr.rc = sl_schedule_remove();
    tu_st(&sr.done, 1);
}

TU_TEST_TIMEOUT(kill_of_a_tasklet_starting_to_pause_on_another_worker_is_not_lost, 20)
{
    TU_MULTI_WORKER_ONLY();
    sr.counted = sr.done = 0;
    sr.rc = 12345;
    tu_spawn_pinned(1, sleep_a_while, NULL);
    sl_tasklet *t = tu_spawn_pinned(1, remove_at_tick, NULL);
    sl_tasklet_ref(t);
    TU_EQ(tu_kill_at_stop(t), 0);
    TU_EQ(sl_run(), 0); /* until nothing can run: the sleeper ends */
    TU_EQ(sr.counted, 1);
    TU_EQ(sr.done, 1);  /* before the fix: left paused, killed */
    TU_EQ(sl_tasklet_alive(t), false);
    if (sl_tasklet_alive(t) && sl_tasklet_paused(t))
        TU_EQ(sl_tasklet_insert(t), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(sr.rc, SL_EKILLED);
    sl_tasklet_unref(t);
}

/* Suspected: claim_blocked marks its target PAUSED under the channel lock
 * and SWITCHING only after unlocking; in between, an insert (or a second
 * kill) on another worker can claim the same PAUSED tasklet, and its one
 * context is resumed on two workers. A stress: each round a tasklet
 * blocks on a rendezvous channel (worker 0) and main kills it while a
 * tasklet on worker 1 inserts it in a tight loop. Each round the target
 * must resume exactly once, with SL_EKILLED. The inserter lives across
 * rounds (it takes the round's target from `cur`, and main waits for it to
 * let go of a target, through `epoch`, before dropping its reference), and
 * main kills only once the inserter is seen running. Before the fix it
 * failed in 16 of 16 runs on the loaded machine, most within a second (a
 * crash jumping into the ended target's context, or main never resumed:
 * the target woken twice, into worker 0's inbox by the insert and into
 * its run queue by the kill). */
static struct {
    sl_channel *ch;
    sl_tasklet *cur; /* the round's target, or NULL */
    int epoch, seen, stop, resumed, rc;
} cb;

static void blocked_target(void *arg)
{
    (void)arg;
    void *m;
    cb.rc = sl_channel_receive(cb.ch, &m);
    __atomic_add_fetch(&cb.resumed, 1, __ATOMIC_ACQ_REL);
}

static void inserter(void *arg)
{
    (void)arg;
    while (!tu_ld(&cb.stop)) {
        int e = tu_ld(&cb.epoch);
        sl_tasklet *t = __atomic_load_n(&cb.cur, __ATOMIC_ACQUIRE);
        /* Reading the channel keeps its line (and its lock byte) shared
         * here: the killer's unlock, between PAUSED and SWITCHING, then
         * waits for that line, which widens the window. */
        (void)sl_channel_balance(cb.ch);
        if (t)
            (void)sl_tasklet_insert(t); /* 0 once the kill made it runnable */
        tu_st(&cb.seen, e);
    }
}

TU_TEST_TIMEOUT(kill_and_insert_from_two_workers_resume_a_blocked_tasklet_once, 20)
{
    TU_MULTI_WORKER_ONLY();
    int rounds = TU_SIZE(1000000, 2000), bad = 0, r;
    int64_t end = sl_now_ms() + 5000;
    memset(&cb, 0, sizeof cb);
    cb.ch = sl_channel_new();
    tu_spawn_pinned(1, inserter, NULL);
    for (r = 0; r < rounds && !bad && sl_now_ms() < end; r++) {
        tu_st(&cb.resumed, 0);
        cb.rc = 12345;
        sl_tasklet *t = tu_spawn_pinned(0, blocked_target, NULL);
        sl_tasklet_ref(t);
        while (sl_channel_balance(cb.ch) != -1)
            sl_schedule();
        __atomic_store_n(&cb.cur, t, __ATOMIC_RELEASE);
        int e = __atomic_add_fetch(&cb.epoch, 1, __ATOMIC_ACQ_REL);
        while (tu_ld(&cb.seen) != e) /* the inserter hammers t now */
            ;
        for (volatile int d = r % 64; d > 0; d--) /* sweeps the timing */
            ;
        TU_EQ(sl_tasklet_kill(t), 0);
        __atomic_store_n(&cb.cur, NULL, __ATOMIC_RELEASE);
        e = __atomic_add_fetch(&cb.epoch, 1, __ATOMIC_ACQ_REL);
        while (tu_ld(&cb.seen) != e) /* the inserter let go of t */
            ;
        for (int i = 0; i < 4; i++) /* a second resume would come now */
            sl_schedule();
        bad += tu_ld(&cb.resumed) != 1 || cb.rc != SL_EKILLED;
        sl_tasklet_unref(t);
    }
    tu_st(&cb.stop, 1);
    TU_EQ(sl_run(), 0);
    TU_EQ(bad, 0);
    printf("(%d rounds) ", r);
    TU_EQ(sl_channel_free(cb.ch), 0);
}

/* Issue 13, item 6: sl_tasklet_kill reads the target's wkind plainly,
 * while the target, on another worker, blocks and resumes (a plain store
 * of wkind after every resume, and a plain block publishes BLOCKED with a
 * relaxed store, so the kill's acquire load orders nothing).
 * ThreadSanitizer reports it (sched_w2 in the TSan tree). Without TSan:
 * every kill of a tasklet that keeps receiving from a busy feeder ends
 * it with SL_EKILLED; before the fix some runs also lose a kill that
 * falls between a receive's kill check and its block (the suspected
 * item tested by kill_of_a_tasklet_starting_a_plain_receive_... in
 * test_channel.c): that receiver stays blocked. */
static struct {
    sl_channel *ch;
    int rc[64], started[64];
    int stop;
} kw;

static void receive_loop(void *arg)
{
    int i = (int)TU_INT(arg);
    void *m;
    int rc;
    tu_st(&kw.started[i], 1);
    while ((rc = sl_channel_receive(kw.ch, &m)) == 0)
        ;
    kw.rc[i] = rc;
}

static void feeder(void *arg)
{
    (void)arg;
    while (!tu_ld(&kw.stop))
        if (sl_channel_try_send(kw.ch, TU_MSG(1)) != 0)
            sl_schedule();
}

TU_TEST_TIMEOUT(kill_of_tasklets_blocking_on_another_worker_reads_their_wait_safely, 60)
{
    TU_MULTI_WORKER_ONLY();
    int n = TU_SIZE(64, 8);
    sl_tasklet *ts[64];
    kw.ch = sl_channel_new();
    kw.stop = 0;
    for (int i = 0; i < n; i++) {
        kw.rc[i] = 12345;
        kw.started[i] = 0;
        ts[i] = tu_spawn_pinned(1, receive_loop, TU_MSG(i));
        sl_tasklet_ref(ts[i]);
    }
    tu_spawn_pinned(1, feeder, NULL);
    for (int i = 0; i < n; i++) {
        while (!tu_ld(&kw.started[i])) /* a kill before the first run ends it */
            TU_EQ(sl_sleep_ms(1), 0); /* without running: not this case */
        TU_EQ(sl_sleep_ms(1), 0);
        TU_EQ(sl_tasklet_kill(ts[i]), 0);
    }
    tu_st(&kw.stop, 1);
    TU_EQ(sl_run(), 0);
    for (int i = 0; i < n; i++) {
        TU_EQ(kw.rc[i], SL_EKILLED);
        sl_tasklet_unref(ts[i]);
    }
    TU_EQ(sl_channel_balance(kw.ch), 0);
    TU_EQ(sl_channel_free(kw.ch), 0);
}

/* Found by the model tester under load (model_copy_w2 in the TSan tree,
 * seed 121; fixed: pin is stored and read atomically): a copy-mode tasklet is pinned to the worker
 * that first runs it (tasklet/copystack.c take_shared stores t->pin there
 * with a plain store), and sl_tasklet_run from another worker reads t->pin
 * before it claims t (sched/sched.c run_or_switch, the pin check before
 * sl__claim_paused), with nothing ordering the two: a data race. Should t
 * pause on its worker between that read (still -1) and the claim, the
 * caller would run t on its own worker's shared stack. Here t spins on
 * worker 0 (its first run pins it there) while a tasklet on worker 1,
 * which synchronised with worker 0 only before that, runs it.
 * ThreadSanitizer reports the race (sched_w2 and sched_copy_w2 in the TSan
 * tree); elsewhere the run returns SL_ESTATE, as for any copy tasklet of
 * another worker. */
static struct {
    sl_tasklet *t;
    int started, stop, rc; /* started, stop: relaxed, they order nothing
                              for ThreadSanitizer */
} cpin;

/* Runs (its first run pinned it) and holds worker 0, with no scheduling
 * point, lock or write to t, until stopped (at most 10 s). */
static void copy_spinner(void *arg)
{
    (void)arg;
    __atomic_store_n(&cpin.started, 1, __ATOMIC_RELAXED);
    CU_ASSERT(tu_spin_until_relaxed(&cpin.stop, 10000));
}

static void run_from_worker_1(void *arg)
{
    (void)arg;
    CU_ASSERT(tu_spin_until_relaxed(&cpin.started, 10000));
    cpin.rc = sl_tasklet_run(cpin.t);
    __atomic_store_n(&cpin.stop, 1, __ATOMIC_RELAXED);
}

TU_TEST_TIMEOUT(run_from_another_worker_reads_a_copy_tasklets_pin_safely, 30)
{
    TU_MULTI_WORKER_ONLY();
    cpin.started = cpin.stop = 0;
    cpin.rc = 12345;
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.stack_mode = SL_STACK_COPY;
    cpin.t = sl_spawn_ex(&a, copy_spinner, NULL); /* main's worker: 0 */
    CU_ASSERT_PTR_NOT_NULL_FATAL(cpin.t);
    sl_tasklet_ref(cpin.t);
    /* The handle reaches worker 1 before t first runs: the spawn below is
     * the last synchronisation between the two workers. */
    sl_spawn_attr_init(&a);
    a.worker = 1;
    a.stack_mode = SL_STACK_FIXED;
    CU_ASSERT_PTR_NOT_NULL(sl_spawn_ex(&a, run_from_worker_1, NULL));
    TU_EQ(sl_run(), 0);
    TU_EQ(cpin.rc, SL_ESTATE);
    sl_tasklet_unref(cpin.t);
}

/* ---- throw (sl_tasklet_throw) ------------------------------------------- */

/* Every tasklet of these tests is pinned to worker 0, main's: with two
 * workers the order is then one worker's, and the M:N paths (claims,
 * publication after the switch) run under it. */
#define E1 (-101)
#define E2 (-102)

static sl_tasklet *spawn0(sl_fn fn, void *arg)
{
    return tu_spawn_pinned(0, fn, arg);
}

static int th_rc[4];

/* Receives twice: logs 'a' before, then each result as a letter: 'm' for
 * the message 'm', 'x' for E1, 'y' for E2, 'K' for SL_EKILLED. */
static char code_letter(int rc, void *msg)
{
    return rc == 0 ? (char)TU_INT(msg)
           : rc == E1 ? 'x'
           : rc == E2 ? 'y'
           : rc == SL_EKILLED ? 'K' : '?';
}

static void receive_twice(void *ch)
{
    for (int i = 0; i < 2; i++) {
        void *m = NULL;
        th_rc[i] = sl_channel_receive(ch, &m);
        tu_log_putc(code_letter(th_rc[i], m));
    }
}

TU_TEST(throw_into_a_blocked_receive_returns_the_code_once)
{
    sl_channel *ch = sl_channel_new();
    sl_tasklet *t = spawn0(receive_twice, ch);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_channel_balance(ch), -1);
    TU_EQ(sl_tasklet_throw(t, E1, 0), 0);
    /* t ran at once: its receive returned E1, its next one waits again */
    TU_ASSERT_LOG("x");
    TU_EQ(th_rc[0], E1);
    TU_EQ(sl_channel_balance(ch), -1);
    TU_ASSERT_STATE(t, true, true, true, false);
    TU_EQ(sl_channel_send(ch, TU_MSG('m')), 0);
    TU_ASSERT_LOG("xm");
    TU_EQ(th_rc[1], 0);
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_channel_free(ch), 0);
}

TU_TEST(throw_pending_makes_a_blocked_tasklet_runnable_without_switching)
{
    sl_channel *ch = sl_channel_new();
    sl_tasklet *t = spawn0(receive_twice, ch);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_tasklet_throw(t, E1, SL_THROW_PENDING), 0);
    TU_ASSERT_LOG(""); /* nothing ran */
    TU_ASSERT_STATE(t, true, true, false, false);
    TU_EQ(sl_channel_balance(ch), 0); /* off the channel */
    TU_EQ(sl_tasklet_next(sl_current()), t); /* at the end of the queue */
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("x");
    TU_EQ(sl_channel_send(ch, TU_MSG('m')), 0);
    TU_ASSERT_LOG("xm");
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_channel_free(ch), 0);
}

/* Yields, then pauses: logs what each returned. */
static void yield_then_pause(void *arg)
{
    (void)arg;
    th_rc[0] = sl_schedule();
    tu_log_putc(code_letter(th_rc[0], TU_MSG('s')));
    th_rc[1] = sl_schedule_remove();
    tu_log_putc(code_letter(th_rc[1], TU_MSG('r')));
}

TU_TEST(throw_into_yield_and_pause_returns_the_code_from_them)
{
    sl_tasklet *t = spawn0(yield_then_pause, NULL);
    TU_EQ(sl_schedule(), 0); /* t runs and yields back */
    TU_EQ(sl_tasklet_throw(t, E1, 0), 0); /* runnable: runs where it is */
    TU_ASSERT_LOG("x");
    TU_EQ(th_rc[0], E1);
    TU_ASSERT_STATE(t, true, false, false, true); /* paused itself */
    TU_EQ(sl_tasklet_throw(t, E2, SL_THROW_PENDING), 0);
    TU_ASSERT_STATE(t, true, true, false, false); /* inserted, not run */
    TU_ASSERT_LOG("x");
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("xy");
    TU_EQ(th_rc[1], E2);
    TU_EQ(sl_getlivecount(), 0);
}

static void log_a(void *arg)
{
    (void)arg;
    tu_log_putc('a');
}

TU_TEST(throw_to_a_tasklet_that_never_ran_skips_its_function)
{
    sl_tasklet *t = spawn0(log_a, NULL);
    sl_tasklet_ref(t);
    TU_EQ(sl_tasklet_throw(t, E1, 0), 0); /* dies at once */
    TU_ASSERT_STATE(t, false, false, false, false);
    sl_tasklet_unref(t);
    /* Pending: it stays scheduled, and dies without running when its
     * turn comes (Stackless: the exception is raised at its start). */
    t = spawn0(log_a, NULL);
    sl_tasklet_ref(t);
    TU_EQ(sl_tasklet_throw(t, E1, SL_THROW_PENDING), 0);
    TU_ASSERT_STATE(t, true, true, false, false);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_STATE(t, false, false, false, false);
    TU_ASSERT_LOG("");
    TU_EQ(sl_getlivecount(), 0);
    sl_tasklet_unref(t);
}

TU_TEST(throw_to_a_dead_tasklet_is_estate_and_its_kill_a_no_op)
{
    sl_tasklet *t = spawn0(log_a, NULL);
    sl_tasklet_ref(t);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_tasklet_throw(t, E1, 0), SL_ESTATE);
    TU_EQ(sl_tasklet_throw(t, E1, SL_THROW_PENDING), SL_ESTATE);
    TU_EQ(sl_tasklet_throw(t, SL_EKILLED, 0), 0);
    TU_EQ(sl_tasklet_throw(t, SL_EKILLED, SL_THROW_PENDING), 0);
    TU_EQ(sl_tasklet_kill(t), 0);
    TU_ASSERT_LOG("a");
    sl_tasklet_unref(t);
}

static int self_rc[3];

static void throw_at_self(void *arg)
{
    (void)arg;
    self_rc[0] = sl_tasklet_throw(sl_current(), E1, 0);
    self_rc[1] = sl_tasklet_throw(sl_current(), E2, SL_THROW_PENDING);
    self_rc[2] = sl_schedule(); /* nothing pending: a plain yield */
    tu_log_putc('b');
}

TU_TEST(throw_to_self_returns_the_code_at_once_and_leaves_nothing)
{
    spawn0(throw_at_self, NULL);
    spawn0(log_a, NULL);
    TU_EQ(sl_run(), 0);
    TU_EQ(self_rc[0], E1);
    TU_EQ(self_rc[1], E2);
    TU_EQ(self_rc[2], 0);
    TU_ASSERT_LOG("ab"); /* its yield let 'a' run first */
}

TU_TEST(throw_arguments_are_checked)
{
    sl_tasklet *t = spawn0(log_a, NULL);
    TU_EQ(sl_tasklet_throw(NULL, E1, 0), SL_EINVAL);
    TU_EQ(sl_tasklet_throw(t, 0, 0), SL_EINVAL);
    TU_EQ(sl_tasklet_throw(t, 5, 0), SL_EINVAL);
    TU_EQ(sl_tasklet_throw(t, E1, 2), SL_EINVAL);
    TU_EQ(sl_tasklet_throw(sl_main(), SL_EKILLED, 0), SL_EINVAL);
    TU_EQ(sl_tasklet_throw(sl_main(), SL_EKILLED, SL_THROW_PENDING),
          SL_EINVAL);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("a");
}

/* Receives until it fails twice in a row with the same code; logs each
 * result. */
static void receive_until_stuck(void *ch)
{
    int last = 1, rc;
    do {
        void *m = NULL;
        int prev = last;
        last = rc = sl_channel_receive(ch, &m);
        tu_log_putc(code_letter(rc, m));
        if (rc < 0 && rc == prev)
            break;
    } while (1);
}

TU_TEST(kill_is_sticky_and_a_throw_is_not)
{
    sl_channel *ch = sl_channel_new();
    sl_tasklet *t = spawn0(receive_until_stuck, ch);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_tasklet_throw(t, E1, 0), 0); /* once: it waits again */
    TU_ASSERT_LOG("x");
    TU_EQ(sl_channel_balance(ch), -1);
    TU_EQ(sl_tasklet_throw(t, E2, 0), 0);
    TU_ASSERT_LOG("xy");
    TU_EQ(sl_tasklet_kill(t), 0); /* every later one fails at once */
    TU_ASSERT_LOG("xyKK");
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_channel_free(ch), 0);
}

TU_TEST(a_kill_replaces_a_pending_throw_and_no_throw_replaces_a_kill)
{
    sl_channel *ch = sl_channel_new();
    sl_tasklet *t = spawn0(receive_twice, ch);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_tasklet_throw(t, E1, SL_THROW_PENDING), 0);
    TU_EQ(sl_tasklet_throw(t, E2, SL_THROW_PENDING), 0); /* the later one */
    TU_EQ(sl_tasklet_throw(t, SL_EKILLED, SL_THROW_PENDING), 0);
    TU_EQ(sl_tasklet_throw(t, E1, SL_THROW_PENDING), 0); /* killed: no */
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("KK");
    TU_EQ(sl_getlivecount(), 0);

    t = spawn0(receive_twice, ch);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_tasklet_throw(t, E1, SL_THROW_PENDING), 0);
    TU_EQ(sl_tasklet_throw(t, E2, SL_THROW_PENDING), 0);
    TU_EQ(sl_run(), 0); /* the later throw, once */
    TU_ASSERT_LOG("KKy");
    TU_EQ(sl_channel_send(ch, TU_MSG('m')), 0);
    TU_ASSERT_LOG("KKym");
    TU_EQ(sl_channel_free(ch), 0);
}

TU_TEST(a_throw_after_a_completed_receive_loses_no_message)
{
    sl_channel *ch = sl_channel_new();
    sl_channel_set_preference(ch, 0); /* the sender goes on */
    sl_tasklet *t = spawn0(receive_twice, ch);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_channel_send(ch, TU_MSG('m')), 0); /* completed, t runnable */
    TU_ASSERT_LOG("");
    TU_EQ(sl_tasklet_throw(t, E1, 0), 0);
    /* Its receive returns the message; the throw shows at the next. */
    TU_ASSERT_LOG("mx");
    TU_EQ(th_rc[0], 0);
    TU_EQ(th_rc[1], E1);
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_channel_free(ch), 0);
}

static int main_thrower_rc = 12345;

static void throw_at_main(void *arg)
{
    main_thrower_rc = sl_tasklet_throw(sl_main(), (int)TU_INT(arg), 0);
    tu_log_putc('t');
}

TU_TEST(throw_to_main_ends_its_receive_and_its_run)
{
    sl_channel *ch = sl_channel_new();
    spawn0(throw_at_main, TU_MSG(E1));
    void *m;
    TU_EQ(sl_channel_receive(ch, &m), E1);
    TU_EQ(main_thrower_rc, 12345); /* main ran first: the thrower has not */
    TU_ASSERT_LOG("");              /* resumed from its throw */
    TU_EQ(sl_run(), 0);
    TU_EQ(main_thrower_rc, 0);
    TU_ASSERT_LOG("t");
    spawn0(throw_at_main, TU_MSG(E2));
    spawn0(log_a, NULL);
    TU_EQ(sl_run(), E2); /* sl_run is main's blocking call */
    TU_ASSERT_LOG("t");
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("tta");
    TU_EQ(sl_channel_free(ch), 0);
}

static int wait_rc[4];
static sl_lock th_lock;

static void sleep_lock_select(void *ch)
{
    wait_rc[0] = sl_sleep_ms(60000);
    wait_rc[1] = sl_lock_acquire(&th_lock);
    sl_select_case c = {ch, SL_RECV, NULL};
    wait_rc[2] = sl_select(&c, 1, -1);
    wait_rc[3] = sl_channel_receive_timeout(ch, NULL, 60000);
}

TU_TEST(throw_ends_sleeps_lock_waits_selects_and_timed_waits)
{
    sl_channel *ch = sl_channel_new();
    TU_EQ(sl_lock_init(&th_lock), 0);
    TU_EQ(sl_lock_acquire(&th_lock), 0);
    sl_tasklet *t = spawn0(sleep_lock_select, ch);
    sl_tasklet_ref(t);
    int codes[4] = {-201, -202, -203, -204};
    for (int i = 0; i < 4; i++) {
        TU_EQ(sl_schedule(), 0); /* t starts its next wait */
        TU_EQ(sl_tasklet_blocked(t), true);
        TU_EQ(sl_tasklet_throw(t, codes[i], 0), 0);
        TU_EQ(wait_rc[i], codes[i]);
    }
    TU_EQ(sl_tasklet_alive(t), false);
    TU_EQ(sl_channel_balance(ch), 0);
    TU_EQ(sl_lock_release(&th_lock), 0);
    TU_EQ(sl_lock_destroy(&th_lock), 0);
    sl_tasklet_unref(t);
    TU_EQ(sl_channel_free(ch), 0);
}

/* ---- the watchdog: sl_run_for (Stackless's run(timeout)) --------------- */

/* A tasklet of the watchdog's tests: logs its letter and yields, n times. */
struct yielder {
    char c;
    int n, done;
};

/* Insert a tasklet sl_run_for interrupted, to go on, and drop the
 * reference sl_run_for gave with it. */
static void go_on(sl_tasklet *late)
{
    TU_EQ(sl_tasklet_insert(late), 0);
    sl_tasklet_unref(late);
}

static void yield_n(void *arg)
{
    struct yielder *y = arg;
    for (int i = 0; i < y->n; i++) {
        tu_log_putc(y->c);
        TU_EQ(sl_schedule(), 0);
    }
    y->done = 1;
}

TU_TEST(run_for_without_a_budget_runs_until_the_queue_is_empty)
{
    struct yielder a = {'a', 3, 0}, b = {'b', 3, 0};
    spawn0(yield_n, &a);
    spawn0(yield_n, &b);
    sl_tasklet *late = sl_main(); /* (overwritten with NULL) */
    TU_EQ(sl_run_for(0, 0, &late), 0);
    CU_ASSERT_PTR_NULL(late);
    TU_ASSERT_LOG("ababab");
    TU_EQ(a.done + b.done, 2);
    TU_EQ(sl_getlivecount(), 0);
}

TU_TEST(run_for_takes_the_interrupted_tasklet_out_of_the_queue)
{
    struct yielder a = {'a', 3, 0}, b = {'b', 3, 0};
    sl_tasklet *ta = spawn0(yield_n, &a);
    spawn0(yield_n, &b);
    sl_tasklet *late = NULL;
    /* Three scheduling points: a's, b's, and at a's second one the
     * budget is spent: a is taken out, b stays queued. */
    TU_EQ(sl_run_for(0, 3, &late), 1);
    TU_EQ(late, ta);
    TU_ASSERT_LOG("aba");
    TU_ASSERT_STATE(ta, true, false, false, true);
    TU_EQ(sl_getruncount(), 2); /* main and b */
    TU_EQ(sl_tasklet_next(sl_current()), sl_tasklet_prev(sl_current()));
    /* Stackless's autoscheduler: insert it again and go on. */
    int ticks = 1, rc = 1;
    while (rc == 1) { /* (spent at an end, nobody is taken out) */
        if (late)
            go_on(late);
        rc = sl_run_for(0, 3, &late);
        CU_ASSERT(rc == 0 || rc == 1);
        ticks++;
    }
    TU_EQ(a.done + b.done, 2);
    CU_ASSERT(ticks >= 2);
    TU_EQ(sl_getlivecount(), 0);
    size_t na = 0, nb = 0;
    for (const char *p = tu_log(); *p; p++)
        *p == 'a' ? na++ : nb++;
    TU_EQ(na, 3);
    TU_EQ(nb, 3);
}

static void yield_until_killed(void *arg)
{
    (void)arg;
    int rc;
    while ((rc = sl_schedule()) == 0)
        ;
    TU_EQ(rc, SL_EKILLED);
}

/* *interrupted is a reference, as Stackless's run() returns the tasklet
 * object: killed (it ends) before main's caller looks at it, the handle
 * stays valid and its block is not reused, until sl_tasklet_unref. (Without
 * the reference the block is free at the kill: ASan stops the reads
 * below, and a spawn would get the same block.) */
TU_TEST(run_for_interrupted_tasklet_is_a_reference_the_caller_drops)
{
    sl_tasklet *t = spawn0(yield_until_killed, NULL);
    uint64_t id = sl_tasklet_id(t);
    sl_tasklet *late = NULL;
    TU_EQ(sl_run_for(0, 1, &late), 1); /* spent at t's first yield */
    TU_EQ(late, t);
    TU_EQ(sl_tasklet_kill(late), 0); /* it runs now, and ends */
    TU_EQ(sl_getlivecount(), 0);
    sl_tasklet *fresh = spawn0(yield_until_killed, NULL);
    CU_ASSERT(fresh != late);
    TU_EQ(sl_tasklet_alive(late), false);
    TU_EQ(sl_tasklet_id(late), id);
    sl_tasklet_unref(late);
    /* interrupted NULL: the reference is dropped inside (no leak, and the
     * tasklet is freed once it ends). */
    TU_EQ(sl_run_for(0, 1, NULL), 1);
    TU_ASSERT_STATE(fresh, true, false, false, true);
    TU_EQ(sl_tasklet_kill(fresh), 0);
    TU_EQ(sl_getlivecount(), 0);
}

static void block_on(void *ch)
{
    tu_log_putc('w');
    void *m;
    TU_EQ(sl_channel_receive(ch, &m), 0);
    tu_log_putc((char)TU_INT(m));
}

/* Yields until told to stop: alone in the run queue, its sl_schedule
 * switches nowhere, but is a scheduling point all the same. */
static int lone_stop, lone_yields;

static void yield_until_stopped(void *arg)
{
    (void)arg;
    while (!lone_stop) {
        lone_yields++;
        TU_EQ(sl_schedule(), 0);
    }
}

TU_TEST(run_for_interrupts_a_tasklet_yielding_alone)
{
    lone_stop = lone_yields = 0;
    sl_tasklet *t = spawn0(yield_until_stopped, NULL);
    sl_tasklet *late = NULL;
    TU_EQ(sl_run_for(0, 5, &late), 1);
    TU_EQ(late, t);
    TU_EQ(lone_yields, 5); /* its fifth yield was the fifth point */
    TU_ASSERT_STATE(t, true, false, false, true);
    go_on(late);
    TU_EQ(sl_run_for(2000000, 0, &late), 1); /* 2 ms of time */
    TU_EQ(late, t);
    CU_ASSERT(lone_yields > 5);
    lone_stop = 1;
    go_on(late);
    TU_EQ(sl_run_for(0, 0, &late), 0);
    CU_ASSERT_PTR_NULL(late);
    TU_EQ(sl_getlivecount(), 0);
}

/* Spawns the next link (pinned to worker 0) and ends: only ends and
 * first runs, no yield. */
static int chain_left;

static void chain_link(void *arg)
{
    (void)arg;
    if (--chain_left > 0)
        CU_ASSERT_PTR_NOT_NULL(tu_spawn_pinned(0, chain_link, NULL));
}

TU_TEST(run_for_counts_a_tasklet_s_end_as_a_scheduling_point)
{
    chain_left = 20;
    spawn0(chain_link, NULL);
    sl_tasklet *late = sl_main();
    int ticks = 0, rc;
    do {
        rc = sl_run_for(0, 3, &late);
        CU_ASSERT_PTR_NULL(late); /* an ending tasklet is taken out by no one */
        ticks++;
    } while (rc == 1 && ticks < 100);
    TU_EQ(rc, 0);
    TU_EQ(chain_left, 0);
    CU_ASSERT(ticks >= 20 / 3); /* at most 3 ends a tick */
    TU_EQ(sl_getlivecount(), 0);
}

TU_TEST(run_for_spent_at_a_block_interrupts_no_one)
{
    sl_channel *ch = sl_channel_new();
    struct yielder b = {'b', 2, 0};
    spawn0(block_on, ch);
    spawn0(yield_n, &b);
    sl_tasklet *late = sl_main();
    TU_EQ(sl_run_for(0, 1, &late), 1); /* spent as the receiver blocks */
    CU_ASSERT_PTR_NULL(late);
    TU_ASSERT_LOG("w");
    TU_EQ(sl_getruncount(), 2); /* main and b, which has not run */
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("wbb");
    TU_EQ(sl_channel_send(ch, TU_MSG('m')), 0);
    TU_ASSERT_LOG("wbbm");
    TU_EQ(sl_channel_free(ch), 0);
}

static void atomic_yield_n(void *arg)
{
    TU_EQ(sl_tasklet_set_atomic(sl_current(), true), 0);
    yield_n(arg);
    TU_EQ(sl_tasklet_set_atomic(sl_current(), false), 1);
}

TU_TEST(run_for_never_interrupts_an_atomic_tasklet)
{
    struct yielder a = {'a', 4, 0}, b = {'b', 4, 0};
    spawn0(atomic_yield_n, &a);
    sl_tasklet *tb = spawn0(yield_n, &b);
    sl_tasklet *late;
    int ticks = 0, rc;
    do {
        rc = sl_run_for(0, 1, &late);
        CU_ASSERT(rc == 0 || rc == 1);
        CU_ASSERT(late == NULL || late == tb);
        if (late)
            go_on(late);
        ticks++;
    } while (rc == 1 && ticks < 100);
    TU_EQ(a.done + b.done, 2);
    CU_ASSERT(ticks >= 4); /* b was taken out at each of its yields */
    TU_EQ(sl_getlivecount(), 0);
}

TU_TEST(set_atomic_returns_the_old_value)
{
    sl_tasklet *t = spawn0(log_a, NULL);
    TU_EQ(sl_tasklet_set_atomic(t, true), 0);
    TU_EQ(sl_tasklet_set_atomic(t, true), 1);
    TU_EQ(sl_tasklet_set_atomic(t, false), 1);
    TU_EQ(sl_tasklet_set_atomic(t, false), 0);
    TU_EQ(sl_tasklet_set_atomic(NULL, true), SL_EINVAL);
    TU_EQ(sl_tasklet_set_atomic(sl_main(), true), 0);
    TU_EQ(sl_tasklet_set_atomic(sl_main(), false), 1);
    TU_EQ(sl_run(), 0);
}

/* Spins for at least `us` microseconds of the monotonic clock, then
 * yields, n times. */
struct spinner {
    int64_t us;
    int n, done;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void spin_and_yield(void *arg)
{
    struct spinner *s = arg;
    for (int i = 0; i < s->n; i++) {
        int64_t end = now_us() + s->us;
        while (now_us() < end)
            ;
        TU_EQ(sl_schedule(), 0);
    }
    s->done = 1;
}

TU_TEST(run_for_a_time_budget_needs_at_least_work_over_budget_ticks)
{
    /* 4 tasklets x 10 steps of >= 1 ms: at least 40 ms of work. A tick of
     * 5 ms runs at most 5 + 1 steps (the budget is looked at after each
     * step), so at least 40 / 6 = 7 ticks, however slow the machine. */
    struct spinner s[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (struct spinner){1000, 10, 0};
        spawn0(spin_and_yield, &s[i]);
    }
    sl_tasklet *late;
    int ticks = 0, interrupted = 0;
    do {
        int rc = sl_run_for(5 * 1000000, 0, &late);
        CU_ASSERT(rc == 0 || rc == 1);
        interrupted += rc == 1;
        if (late)
            go_on(late);
        ticks++;
    } while (sl_getlivecount() > 0 && ticks < 10000);
    for (int i = 0; i < 4; i++)
        TU_EQ(s[i].done, 1);
    CU_ASSERT(ticks >= 7);
    CU_ASSERT(interrupted >= 6);
}

static int sleeper_done;

static void sleep_20(void *arg)
{
    (void)arg;
    TU_EQ(sl_sleep_ms(20), 0);
    sleeper_done = 1;
}

TU_TEST(run_for_returns_while_tasklets_sleep_and_runs_them_once_due)
{
    sleeper_done = 0;
    spawn0(sleep_20, NULL);
    int64_t t0 = sl_now_ms();
    TU_EQ(sl_run_for(0, 0, NULL), 0); /* it sleeps: nothing runnable */
    TU_EQ(sleeper_done, 0);
    TU_EQ(sl_getlivecount(), 1);
    int calls = 1;
    while (!sleeper_done && calls < 100000) {
        usleep(1000); /* main does something else: a frame drawn */
        TU_EQ(sl_run_for(0, 0, NULL), 0);
        calls++;
    }
    TU_EQ(sleeper_done, 1);
    CU_ASSERT(sl_now_ms() - t0 >= 20);
    TU_EQ(sl_getlivecount(), 0);
}

static int wd_rc = 12345;

static void call_run_for(void *arg)
{
    (void)arg;
    wd_rc = sl_run_for(0, 0, NULL);
}

TU_TEST(run_for_is_main_s_and_checks_its_budget)
{
    TU_EQ(sl_run_for(-1, 0, NULL), SL_EINVAL);
    spawn0(call_run_for, NULL);
    TU_EQ(sl_run(), 0);
    TU_EQ(wd_rc, SL_ESTATE);
}

TU_TEST_NOINIT(run_for_without_a_runtime_is_estate)
{
    sl_tasklet *late = (sl_tasklet *)&late;
    TU_EQ(sl_run_for(1000, 0, &late), SL_ESTATE);
    CU_ASSERT_PTR_NULL(late);
    TU_EQ(sl_tasklet_throw(NULL, E1, 0), SL_ESTATE);
}

TU_TEST(throw_to_main_ends_its_run_for)
{
    struct yielder b = {'b', 3, 0};
    spawn0(throw_at_main, TU_MSG(E1));
    spawn0(yield_n, &b);
    TU_EQ(sl_run_for(0, 0, NULL), E1);
    TU_EQ(sl_run(), 0);
    TU_EQ(b.done, 1);
}

/* The suite's send/recv under a watchdog: a server counts what three
 * clients send, 20 each, with a budget of 3 switches per run. */
static sl_channel *srv_ch;
static int srv_count;

static void server(void *arg)
{
    (void)arg;
    void *m;
    while (sl_channel_receive(srv_ch, &m) == 0)
        srv_count++;
}

static void client(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++)
        TU_EQ(sl_channel_send(srv_ch, TU_MSG(i)), 0);
}

TU_TEST(run_for_serves_a_server_and_its_clients_in_slices)
{
    srv_ch = sl_channel_new();
    srv_count = 0;
    sl_tasklet *srv = spawn0(server, NULL);
    for (int i = 0; i < 3; i++)
        spawn0(client, NULL);
    sl_tasklet *late;
    int ticks = 0;
    do {
        int rc = sl_run_for(0, 3, &late);
        CU_ASSERT(rc == 0 || rc == 1);
        if (late)
            go_on(late);
        ticks++;
    } while ((late || sl_getruncount() > 1) && ticks < 10000);
    TU_EQ(srv_count, 60);
    CU_ASSERT(ticks > 1);
    TU_EQ(sl_tasklet_blocked(srv), true);
    TU_EQ(sl_tasklet_kill(srv), 0);
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_channel_free(srv_ch), 0);
}

/* ---- the review of issue 16's throw (review3) ------------------------- */

/* Throws from main (worker 0) into a tasklet on worker 1 that cycles
 * through every kind of wait (a receive with a timeout, a select, a sleep,
 * a yield, a receive on a buffered channel), one code at a time: each code
 * must be taken exactly once, in order, by whichever call it ended.
 * Found by ThreadSanitizer: sl__wait_begin read t->wseq plainly while a
 * thrower's claim of an older generation (a compare-and-swap, which fails)
 * touched it from worker 0 (sched/wait.h, sl__wait_begin and
 * sl__wait_abandon's assertion); the same kind of report as
 * sl__pause_after_switch's (bc32f4a). */
static struct {
    int stop;  /* main: the target ends */
    int taken; /* target: thrown codes taken */
    int last;  /* target: the last code taken */
    int bad;   /* codes taken out of order or twice */
    long ops;  /* target: calls made */
    sl_channel *a, *b;
} tc;

#define TC_BASE 1000 /* thrown codes: -(TC_BASE + k), k = 1..TC_N */
#define TC_N 2000

static void tc_partner(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&tc.stop, __ATOMIC_ACQUIRE)) {
        (void)sl_channel_send_timeout(tc.a, TU_MSG(1), 1);
        (void)sl_schedule();
    }
}

static void tc_target(void *arg)
{
    (void)arg;
    for (long i = 0; !__atomic_load_n(&tc.stop, __ATOMIC_ACQUIRE); i++) {
        int rc;
        void *m;
        switch (i % 5) {
        case 0:
            rc = sl_channel_receive_timeout(tc.a, &m, 2);
            break;
        case 1: {
            sl_select_case c[2] = {{tc.a, SL_RECV, NULL},
                                   {tc.b, SL_RECV, NULL}};
            rc = sl_select(c, 2, 2);
            break;
        }
        case 2:
            rc = sl_sleep_ms(1);
            break;
        case 3:
            rc = sl_schedule();
            break;
        default:
            rc = sl_channel_receive_timeout(tc.b, &m, 1);
            break;
        }
        if (rc == SL_EKILLED)
            return;
        if (rc <= -(TC_BASE + 1) && rc >= -(TC_BASE + TC_N)) {
            int k = -rc - TC_BASE;
            if (k != tc.last + 1)
                __atomic_add_fetch(&tc.bad, 1, __ATOMIC_RELAXED);
            tc.last = k;
            __atomic_add_fetch(&tc.taken, 1, __ATOMIC_RELEASE);
        }
        __atomic_add_fetch(&tc.ops, 1, __ATOMIC_RELEASE);
    }
}

static void throws_into_waits(bool pending)
{
    memset(&tc, 0, sizeof tc);
    tc.a = sl_channel_new();
    tc.b = sl_channel_new_buffered(2);
    tu_spawn_pinned(0, tc_partner, NULL);
    sl_tasklet *t = tu_spawn_pinned(1, tc_target, NULL);
    sl_tasklet_ref(t);
    /* Running first: a throw before its first run would end it unrun. */
    while (__atomic_load_n(&tc.ops, __ATOMIC_ACQUIRE) == 0)
        TU_EQ(sl_sleep_ms(1), 0);
    int k;
    for (k = 1; k <= TC_N; k++) {
        TU_EQ(sl_tasklet_throw(t, -(TC_BASE + k),
                               pending ? SL_THROW_PENDING : 0), 0);
        /* It cycles through timed waits: a code is taken within a few ms
         * of CPU; 20 s of the clock means it was lost. */
        int64_t give_up = 0;
        while (__atomic_load_n(&tc.taken, __ATOMIC_ACQUIRE) < k) {
            (void)sl_schedule();
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            if (!give_up)
                give_up = ts.tv_sec + 20;
            else if (ts.tv_sec > give_up)
                break;
        }
        if (__atomic_load_n(&tc.taken, __ATOMIC_ACQUIRE) < k)
            break;
    }
    TU_EQ(k, TC_N + 1); /* every code taken */
    TU_EQ(__atomic_load_n(&tc.taken, __ATOMIC_ACQUIRE), TC_N);
    TU_EQ(__atomic_load_n(&tc.bad, __ATOMIC_RELAXED), 0);
    __atomic_store_n(&tc.stop, 1, __ATOMIC_RELEASE);
    TU_EQ(sl_tasklet_kill(t), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_tasklet_alive(t), false);
    sl_tasklet_unref(t);
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_channel_free(tc.a), 0);
    TU_EQ(sl_channel_free(tc.b), 0);
}

TU_TEST_TIMEOUT(throws_into_a_tasklet_cycling_through_waits_on_another_worker_are_taken_once, 120)
{
    TU_MULTI_WORKER_ONLY();
    throws_into_waits(false);
}

TU_TEST_TIMEOUT(pending_throws_into_a_tasklet_cycling_through_waits_on_another_worker_are_taken_once, 120)
{
    TU_MULTI_WORKER_ONLY();
    throws_into_waits(true);
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
    /* issue 13's regressions */
    TU_CASE(kill_of_a_tasklet_in_the_killers_own_inbox_resumes_the_killer),
    TU_CASE(kill_by_main_of_a_tasklet_in_its_inbox_resumes_main),
    TU_CASE(run_of_a_tasklet_in_the_callers_inbox_runs_it_once),
    TU_CASE(switch_to_a_tasklet_in_the_callers_inbox_runs_it_once),
    TU_CASE(remove_of_a_tasklet_in_the_callers_inbox_pauses_it_or_refuses),
    TU_CASE(kill_of_a_tasklet_starting_to_pause_on_another_worker_is_not_lost),
    TU_CASE(kill_and_insert_from_two_workers_resume_a_blocked_tasklet_once),
    TU_CASE(kill_of_tasklets_blocking_on_another_worker_reads_their_wait_safely),
    TU_CASE(run_from_another_worker_reads_a_copy_tasklets_pin_safely),
    /* throw, and the watchdog (sl_run_for) */
    TU_CASE(throw_into_a_blocked_receive_returns_the_code_once),
    TU_CASE(throw_pending_makes_a_blocked_tasklet_runnable_without_switching),
    TU_CASE(throw_into_yield_and_pause_returns_the_code_from_them),
    TU_CASE(throw_to_a_tasklet_that_never_ran_skips_its_function),
    TU_CASE(throw_to_a_dead_tasklet_is_estate_and_its_kill_a_no_op),
    TU_CASE(throw_to_self_returns_the_code_at_once_and_leaves_nothing),
    TU_CASE(throw_arguments_are_checked),
    TU_CASE(kill_is_sticky_and_a_throw_is_not),
    TU_CASE(a_kill_replaces_a_pending_throw_and_no_throw_replaces_a_kill),
    TU_CASE(a_throw_after_a_completed_receive_loses_no_message),
    TU_CASE(throw_to_main_ends_its_receive_and_its_run),
    TU_CASE(throw_ends_sleeps_lock_waits_selects_and_timed_waits),
    TU_CASE(run_for_without_a_budget_runs_until_the_queue_is_empty),
    TU_CASE(run_for_takes_the_interrupted_tasklet_out_of_the_queue),
    TU_CASE(run_for_interrupted_tasklet_is_a_reference_the_caller_drops),
    TU_CASE(run_for_interrupts_a_tasklet_yielding_alone),
    TU_CASE(run_for_counts_a_tasklet_s_end_as_a_scheduling_point),
    TU_CASE(run_for_spent_at_a_block_interrupts_no_one),
    TU_CASE(run_for_never_interrupts_an_atomic_tasklet),
    TU_CASE(set_atomic_returns_the_old_value),
    TU_CASE(run_for_a_time_budget_needs_at_least_work_over_budget_ticks),
    TU_CASE(run_for_returns_while_tasklets_sleep_and_runs_them_once_due),
    TU_CASE(run_for_is_main_s_and_checks_its_budget),
    TU_CASE(run_for_without_a_runtime_is_estate),
    TU_CASE(throw_to_main_ends_its_run_for),
    TU_CASE(run_for_serves_a_server_and_its_clients_in_slices),
    /* the review of issue 16 (review3) */
    TU_CASE(throws_into_a_tasklet_cycling_through_waits_on_another_worker_are_taken_once),
    TU_CASE(pending_throws_into_a_tasklet_cycling_through_waits_on_another_worker_are_taken_once),
    CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
    return tu_main(argc, argv, "sched", tests);
}
