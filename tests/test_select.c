/* test_select.c - buffered channels and sl_select: FIFO order, room and
 * blocking, close, try and timeouts on buffered channels; select's choice
 * rule, blocking, timeouts, kills, closing channels, argument checks, and
 * exact delivery when many selects and partners race. */
#include <stdio.h>
#include <string.h>

#include "test_hook.h"
#include "test_util.h"

/* ---- buffered channels --------------------------------------------------- */

TU_TEST_NOINIT(buffered_channel_getters)
{
    sl_channel *ch = sl_channel_new_buffered(3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
    TU_EQ(sl_channel_capacity(ch), 3);
    TU_EQ(sl_channel_count(ch), 0);
    TU_EQ(sl_channel_balance(ch), 0);
    TU_EQ(sl_channel_free(ch), 0);
    sl_channel *r = sl_channel_new_buffered(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    TU_EQ(sl_channel_capacity(r), 0);
    TU_EQ(sl_channel_free(r), 0);
    CU_ASSERT_PTR_NULL(sl_channel_new_buffered(SL_CHANNEL_MAX_CAPACITY + 1));
    TU_EQ(sl_channel_capacity(NULL), 0);
    TU_EQ(sl_channel_count(NULL), 0);
}

TU_TEST(buffered_sends_complete_without_receiver_in_fifo_order)
{
    sl_channel *ch = sl_channel_new_buffered(4);
    for (int i = 1; i <= 4; i++)
        TU_EQ(sl_channel_send(ch, TU_MSG(i)), 0);
    TU_EQ(sl_channel_count(ch), 4);
    TU_EQ(sl_channel_balance(ch), 0);
    TU_EQ(sl_channel_try_send(ch, TU_MSG(5)), SL_EWOULDBLOCK);
    TU_EQ(sl_channel_send_timeout(ch, TU_MSG(5), 0), SL_ETIMEDOUT);
    for (int i = 1; i <= 4; i++) {
        void *m = NULL;
        TU_EQ(sl_channel_receive(ch, &m), 0);
        TU_EQ(TU_INT(m), i);
    }
    void *m = NULL;
    TU_EQ(sl_channel_try_receive(ch, &m), SL_EWOULDBLOCK);
    TU_EQ(sl_channel_receive_timeout(ch, &m, 10), SL_ETIMEDOUT);
    /* Main alone on an empty buffer: nothing can fill it. */
    TU_EQ(sl_channel_receive(ch, &m), SL_EDEADLOCK);
    TU_EQ(sl_channel_free(ch), 0);
}

static sl_channel *bch;

static void send_range(void *arg)
{
    intptr_t base = TU_INT(arg);
    for (int i = 0; i < 10; i++)
        TU_EQ(sl_channel_send(bch, TU_MSG(base + i)), 0);
}

TU_TEST(full_buffer_blocks_senders_and_refills_in_order)
{
    TU_ONE_WORKER_ONLY();
    bch = sl_channel_new_buffered(2);
    sl_spawn(send_range, TU_MSG(100));
    TU_EQ(sl_run(), 0);
    /* Two in the ring, the sender blocked on the third. */
    TU_EQ(sl_channel_count(bch), 2);
    TU_EQ(sl_channel_balance(bch), 1);
    for (int i = 0; i < 10; i++) {
        void *m = NULL;
        TU_EQ(sl_channel_receive(bch, &m), 0);
        TU_EQ(TU_INT(m), 100 + i);
    }
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_channel_count(bch), 0);
    TU_EQ(sl_channel_balance(bch), 0);
    TU_EQ(sl_channel_free(bch), 0);
}

static void receive_sum(void *arg)
{
    long *sum = arg;
    for (int i = 0; i < 10; i++) {
        void *m = NULL;
        if (TU_EQ(sl_channel_receive(bch, &m), 0))
            __atomic_add_fetch(sum, TU_INT(m), __ATOMIC_RELAXED);
    }
}

TU_TEST(buffered_producers_and_consumers_deliver_exactly)
{
    bch = sl_channel_new_buffered(3);
    long sum = 0, want = 0;
    for (int p = 0; p < 20; p++) {
        sl_spawn(send_range, TU_MSG(p * 1000));
        for (int i = 0; i < 10; i++)
            want += p * 1000 + i;
        sl_spawn(receive_sum, &sum);
    }
    TU_EQ(sl_run(), 0);
    TU_EQ(sum, want);
    TU_EQ(sl_channel_count(bch), 0);
    TU_EQ(sl_channel_balance(bch), 0);
    TU_EQ(sl_channel_free(bch), 0);
}

TU_TEST(closing_buffered_channel_drains_then_fails)
{
    sl_channel *ch = sl_channel_new_buffered(4);
    TU_EQ(sl_channel_send(ch, TU_MSG(1)), 0);
    TU_EQ(sl_channel_send(ch, TU_MSG(2)), 0);
    sl_channel_close(ch);
    TU_EQ(sl_channel_send(ch, TU_MSG(3)), SL_ECLOSED); /* no new messages */
    TU_EQ(sl_channel_closed(ch), false);               /* still holds two */
    void *m = NULL;
    TU_EQ(sl_channel_receive(ch, &m), 0);
    TU_EQ(TU_INT(m), 1);
    TU_EQ(sl_channel_receive(ch, &m), 0);
    TU_EQ(TU_INT(m), 2);
    TU_EQ(sl_channel_closed(ch), true);
    TU_EQ(sl_channel_receive(ch, &m), SL_ECLOSED);
    TU_EQ(sl_channel_free(ch), 0);
}

TU_TEST(send_error_travels_through_the_buffer)
{
    sl_channel *ch = sl_channel_new_buffered(2);
    TU_EQ(sl_channel_send_error(ch, -77), 0);
    TU_EQ(sl_channel_send(ch, TU_MSG(8)), 0);
    void *m = TU_MSG(0);
    TU_EQ(sl_channel_receive(ch, &m), -77);
    TU_EQ(TU_INT(m), 0);
    TU_EQ(sl_channel_receive(ch, &m), 0);
    TU_EQ(TU_INT(m), 8);
    /* A channel freed with messages in it just drops them. */
    TU_EQ(sl_channel_send(ch, TU_MSG(9)), 0);
    TU_EQ(sl_channel_free(ch), 0);
}

/* ---- select --------------------------------------------------------------- */

static sl_channel *ca, *cb, *cc;

static void new_chans(void)
{
    ca = sl_channel_new();
    cb = sl_channel_new();
    cc = sl_channel_new_buffered(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ca);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cc);
}

static void free_chans(void)
{
    TU_EQ(sl_channel_balance(ca), 0);
    TU_EQ(sl_channel_balance(cb), 0);
    TU_EQ(sl_channel_free(ca), 0);
    TU_EQ(sl_channel_free(cb), 0);
    TU_EQ(sl_channel_free(cc), 0);
}

static void send_on(void *arg)
{
    sl_channel *ch = arg;
    TU_EQ(sl_channel_send(ch, TU_MSG(ch == ca ? 'a' : 'b')), 0);
}

TU_TEST(first_ready_case_wins)
{
    new_chans();
    sl_spawn(send_on, cb);
    sl_spawn(send_on, ca);
    while (sl_channel_balance(ca) != 1 || sl_channel_balance(cb) != 1)
        sl_schedule();
    sl_select_case cs[] = {{NULL, SL_RECV, NULL},
                           {cb, SL_RECV, NULL},
                           {ca, SL_RECV, NULL}};
    TU_EQ(sl_select(cs, 3, -1), 1);
    TU_EQ(TU_INT(cs[1].value), 'b');
    TU_EQ(sl_select(cs, 3, -1), 2);
    TU_EQ(TU_INT(cs[2].value), 'a');
    TU_EQ(sl_select(cs, 3, 0), SL_ETIMEDOUT);
    TU_EQ(sl_run(), 0);
    free_chans();
}

static void receive_log(void *arg)
{
    sl_channel *ch = arg;
    void *m = NULL;
    if (TU_EQ(sl_channel_receive(ch, &m), 0))
        tu_log_putc((char)TU_INT(m));
}

TU_TEST(select_sends_to_a_waiting_receiver_and_into_room)
{
    new_chans();
    sl_spawn(receive_log, cb);
    while (sl_channel_balance(cb) != -1)
        sl_schedule();
    sl_select_case cs[] = {{ca, SL_SEND, TU_MSG('x')},
                           {cb, SL_SEND, TU_MSG('y')}};
    TU_EQ(sl_select(cs, 2, -1), 1);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("y");
    /* A buffered channel with room is ready for a send. */
    sl_select_case cs2[] = {{ca, SL_SEND, TU_MSG('x')},
                            {cc, SL_SEND, TU_MSG('z')}};
    TU_EQ(sl_select(cs2, 2, 0), 1);
    TU_EQ(sl_channel_count(cc), 1);
    sl_select_case cs3[] = {{ca, SL_RECV, NULL}, {cc, SL_RECV, NULL}};
    TU_EQ(sl_select(cs3, 2, 0), 1);
    TU_EQ(TU_INT(cs3[1].value), 'z');
    free_chans();
}

static void send_later(void *arg)
{
    sl_channel *ch = arg;
    TU_EQ(sl_sleep_ms(10), 0);
    TU_EQ(sl_channel_send(ch, TU_MSG(ch == ca ? 'a' : 'b')), 0);
}

TU_TEST(blocking_select_is_woken_by_any_case)
{
    new_chans();
    sl_spawn(send_later, cb);
    sl_select_case cs[] = {{ca, SL_RECV, NULL}, {cb, SL_RECV, NULL}};
    TU_EQ(sl_select(cs, 2, -1), 1);
    TU_EQ(TU_INT(cs[1].value), 'b');
    TU_EQ(sl_run(), 0);
    free_chans(); /* the proxy left on ca is gone: balance 0 */
}

TU_TEST(select_timeout_restores_every_balance)
{
    new_chans();
    sl_select_case cs[] = {{ca, SL_RECV, NULL}, {cb, SL_SEND, TU_MSG(1)}};
    int64_t t0 = sl_now_ms();
    TU_EQ(sl_select(cs, 2, 20), SL_ETIMEDOUT);
    CU_ASSERT(sl_now_ms() - t0 >= 20);
    TU_EQ(sl_channel_balance(ca), 0);
    TU_EQ(sl_channel_balance(cb), 0);
    /* Main alone selecting forever: nothing can complete it. */
    TU_EQ(sl_select(cs, 2, -1), SL_EDEADLOCK);
    free_chans();
}

static void select_forever(void *arg)
{
    int *rc = arg;
    sl_select_case cs[] = {{ca, SL_RECV, NULL}, {cb, SL_RECV, NULL}};
    *rc = sl_select(cs, 2, -1);
}

TU_TEST(killed_selector_leaves_every_queue)
{
    new_chans();
    int rc = 1;
    sl_tasklet *t = sl_spawn(select_forever, &rc);
    sl_tasklet_ref(t);
    while (sl_channel_balance(ca) != -1)
        sl_schedule();
    TU_EQ(sl_channel_balance(cb), -1);
    TU_EQ(sl_tasklet_blocked(t), true);
    TU_EQ(sl_tasklet_kill(t), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(rc, SL_EKILLED);
    sl_tasklet_unref(t);
    free_chans();
}

/* Review (issue 13): docs/select.md says a select counts in each
 * channel's balance "while it waits". Once a partner has completed one
 * case, the select's waiters in the other channels stay linked (and
 * counted) until the selecting tasklet runs again (select.c, W5 of
 * sched/wait.h): sl_channel_balance reports a receiver nobody is, and
 * sl_channel_free refuses the channel. */
TU_TEST(completed_select_no_longer_counts_in_the_other_balances)
{
    TU_ONE_WORKER_ONLY(); /* with several workers it may run at once */
    new_chans();
    sl_channel_set_preference(ca, 0); /* the sender goes on running */
    int rc = 1;
    sl_spawn(select_forever, &rc);
    while (sl_channel_balance(ca) != -1)
        sl_schedule();
    TU_EQ(sl_channel_send(ca, TU_MSG('a')), 0); /* completes the select */
    TU_EQ(rc, 1); /* it has not run since */
    TU_EQ(sl_channel_balance(ca), 0);
    TU_EQ(sl_channel_balance(cb), 0); /* nobody waits on cb */
    TU_EQ(sl_run(), 0);
    TU_EQ(rc, 0);
    free_chans();
}

/* Review: a killed tasklet's select with a ready case. docs/tasklet.md
 * ("Kill is sticky"): once killed, a call that would block or yield
 * returns SL_EKILLED, but "operations that complete without blocking
 * still complete: a send to a waiting receiver delivers the message, a
 * receive from a waiting sender takes it"; docs/select.md gives
 * SL_EKILLED for a caller "killed while waiting" only, and a ready case
 * completes without switching. The plain receive does complete; the
 * select must too (issue 13, item 1: every select path as its plain
 * counterpart). */
struct ks {
    int recv_rc, sel_rc;
    void *recv_msg, *sel_msg;
};

static void send_b(void *arg)
{
    TU_EQ(sl_channel_send(arg, TU_MSG('b')), 0);
}

static void killed_receiver(void *arg)
{
    struct ks *k = arg;
    TU_EQ(sl_tasklet_kill(sl_current()), SL_EKILLED);
    /* A sender waits on ca, another on cb: both calls are ready. */
    k->recv_rc = sl_channel_receive(ca, &k->recv_msg);
    sl_select_case cs[] = {{cb, SL_RECV, NULL}};
    k->sel_rc = sl_select(cs, 1, -1);
    k->sel_msg = cs[0].value;
}

TU_TEST(killed_tasklet_select_with_a_ready_case_completes_like_receive)
{
    new_chans();
    struct ks k = {1, 1, NULL, NULL};
    sl_spawn(send_on, ca);
    sl_spawn(send_b, cb);
    while (sl_channel_balance(ca) != 1 || sl_channel_balance(cb) != 1)
        sl_schedule();
    sl_spawn(killed_receiver, &k);
    TU_EQ(sl_run(), 0);
    TU_EQ(k.recv_rc, 0); /* the plain receive took the waiting message */
    TU_EQ(TU_INT(k.recv_msg), 'a');
    TU_EQ(k.sel_rc, 0); /* the ready case completes the same way */
    TU_EQ(TU_INT(k.sel_msg), 'b');
    if (sl_channel_balance(cb) == 1) { /* the sender still waits: free it */
        void *m;
        TU_EQ(sl_channel_receive(cb, &m), 0);
        TU_EQ(sl_run(), 0);
    }
    free_chans();
}

TU_TEST(select_on_closing_channels)
{
    new_chans();
    sl_channel_close(ca);
    sl_channel_close(cb);
    sl_select_case cs[] = {{ca, SL_RECV, NULL}, {cb, SL_RECV, NULL}};
    TU_EQ(sl_select(cs, 2, -1), SL_ECLOSED);
    /* One open case: the closing one is ignored, the open one waits. */
    sl_channel_open(cb);
    TU_EQ(sl_select(cs, 2, 5), SL_ETIMEDOUT);
    free_chans();
}

TU_TEST(select_rejects_bad_arguments)
{
    new_chans();
    sl_select_case bad_op[] = {{ca, 0, NULL}};
    TU_EQ(sl_select(bad_op, 1, 0), SL_EINVAL);
    sl_select_case both[] = {{ca, SL_SEND, NULL}, {ca, SL_RECV, NULL}};
    TU_EQ(sl_select(both, 2, 0), SL_EINVAL);
    sl_select_case none[] = {{NULL, SL_RECV, NULL}};
    TU_EQ(sl_select(none, 1, 0), SL_EINVAL);
    TU_EQ(sl_select(NULL, 1, 0), SL_EINVAL);
    TU_EQ(sl_select(bad_op, -1, 0), SL_EINVAL);
    TU_EQ(sl_select(bad_op, SL_SELECT_MAX + 1, 0), SL_EINVAL);
    free_chans();
}

TU_TEST_NOINIT(select_without_runtime)
{
    sl_channel *ch = sl_channel_new();
    sl_select_case cs[] = {{ch, SL_RECV, NULL}};
    TU_EQ(sl_select(cs, 1, 0), SL_ESTATE);
    TU_EQ(sl_channel_free(ch), 0);
}

static void send_error_on(void *arg)
{
    TU_EQ(sl_channel_send_error(arg, -55), 0);
}

TU_TEST(select_receives_a_send_error)
{
    new_chans();
    sl_spawn(send_error_on, cb);
    sl_select_case cs[] = {{ca, SL_RECV, NULL}, {cb, SL_RECV, TU_MSG(3)}};
    TU_EQ(sl_select(cs, 2, -1), -55);
    TU_EQ(TU_INT(cs[1].value), 3);
    TU_EQ(sl_run(), 0);
    free_chans();
}

/* Many selectors receive from two channels fed by two senders: every
 * message arrives exactly once. */
struct tally {
    long sum;
    int count;
    long migrations;
};

static void selector(void *arg)
{
    struct tally *t = arg;
    for (;;) {
        sl_select_case cs[] = {{ca, SL_RECV, NULL}, {cb, SL_RECV, NULL}};
        int i = sl_select(cs, 2, -1);
        if (i < 0) {
            TU_EQ(i, SL_ECLOSED);
            return;
        }
        intptr_t v = TU_INT(cs[i].value);
        if (v == 0) /* stop token */
            return;
        __atomic_add_fetch(&t->sum, v, __ATOMIC_RELAXED);
        __atomic_add_fetch(&t->count, 1, __ATOMIC_RELAXED);
    }
}

static int per_sender;

static void numbered_sender(void *arg)
{
    sl_channel *ch = arg;
    for (int i = 1; i <= per_sender; i++)
        TU_EQ(sl_channel_send(ch, TU_MSG(i)), 0);
}

TU_TEST(racing_selects_deliver_every_message_once)
{
    new_chans();
    per_sender = TU_SIZE(20000, 1000);
    struct tally t = {0};
    enum { SELECTORS = 8 };
    for (int i = 0; i < SELECTORS; i++)
        sl_spawn(selector, &t);
    sl_spawn(numbered_sender, ca);
    sl_spawn(numbered_sender, cb);
    /* Wait for both senders to finish: everything they sent arrived. */
    while (__atomic_load_n(&t.count, __ATOMIC_RELAXED) < 2 * per_sender)
        TU_EQ(sl_sleep_ms(1), 0);
    for (int i = 0; i < SELECTORS; i++)
        TU_EQ(sl_channel_send(ca, TU_MSG(0)), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(t.count, 2 * per_sender);
    TU_EQ(t.sum, 2L * per_sender * (per_sender + 1) / 2);
    free_chans();
}

static void timed_selector(void *arg)
{
    struct tally *t = arg;
    for (int k = 0; k < 200; k++) {
        sl_select_case cs[] = {{ca, SL_RECV, NULL}, {cb, SL_RECV, NULL}};
        int i = sl_select(cs, 2, 1);
        if (i >= 0) {
            __atomic_add_fetch(&t->sum, TU_INT(cs[i].value), __ATOMIC_RELAXED);
            __atomic_add_fetch(&t->count, 1, __ATOMIC_RELAXED);
        } else {
            TU_EQ(i, SL_ETIMEDOUT);
        }
    }
}

struct timed_sent {
    long sum;
    int count;
};

static void timed_sender(void *arg)
{
    struct timed_sent *s = arg;
    for (int i = 1; i <= 300; i++) {
        sl_channel *ch = i % 2 ? ca : cb;
        if (sl_channel_send_timeout(ch, TU_MSG(i), 1) == 0) {
            __atomic_add_fetch(&s->sum, i, __ATOMIC_RELAXED);
            __atomic_add_fetch(&s->count, 1, __ATOMIC_RELAXED);
        }
    }
}

TU_TEST(timed_selects_and_timed_sends_lose_nothing)
{
    new_chans();
    struct tally t = {0};
    struct timed_sent s = {0};
    for (int i = 0; i < 4; i++)
        sl_spawn(timed_selector, &t);
    sl_spawn(timed_sender, &s);
    sl_spawn(timed_sender, &s);
    TU_EQ(sl_run(), 0);
    TU_EQ(t.count, s.count);
    TU_EQ(t.sum, s.sum);
    free_chans();
}

/* ---- issue 13's regressions ----------------------------------------------- */

struct got {
    sl_channel *ch;
    int rc, done;
    void *msg;
};

static void receive_into(void *arg)
{
    struct got *g = arg;
    g->rc = sl_channel_receive(g->ch, &g->msg);
    __atomic_store_n(&g->done, 1, __ATOMIC_RELEASE);
}

/* Issue 13, item 1: a select send on a buffered channel with a receiver
 * waiting hands the message to the receiver, as sl_channel_send does; it
 * must not put it in the ring (where nobody would ever take it). */
TU_TEST_TIMEOUT(select_send_on_a_buffered_channel_wakes_its_waiting_receiver, 20)
{
    sl_channel *ch = sl_channel_new_buffered(4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
    struct got g = {.ch = ch, .rc = 12345};
    sl_tasklet *t = sl_spawn(receive_into, &g);
    sl_tasklet_ref(t);
    while (sl_channel_balance(ch) != -1)
        sl_schedule();
    sl_select_case cs[] = {{ch, SL_SEND, TU_MSG(7)}};
    TU_EQ(sl_select(cs, 1, -1), 0);
    TU_EQ(sl_channel_count(ch), 0);
    TU_EQ(sl_channel_balance(ch), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(g.done, 1);
    TU_EQ(g.rc, 0);
    TU_EQ(TU_INT(g.msg), 7);
    if (sl_tasklet_alive(t)) /* the wake-up was lost: end it */
        sl_tasklet_kill(t);
    TU_EQ(sl_run(), 0);
    sl_tasklet_unref(t);
    void *m;
    while (sl_channel_try_receive(ch, &m) == 0)
        ;
    TU_EQ(sl_channel_free(ch), 0);
}

/* Issue 13, item 1 ("check every select path against its plain
 * counterpart"): a one-case select with timeout 0 and the plain try_* call
 * must do the same thing in every state of a channel: rendezvous or
 * buffered (empty, part full, full), closing or not, nobody waiting or a
 * plain or selecting receiver or sender waiting. Compared: whether the
 * operation completed, the message received, count and balance right
 * after, what the waiter's call returned and got, and what is left in the
 * channel. */
enum waiter_kind { W_NONE, W_RECV, W_SEND, W_SEL_RECV, W_SEL_SEND, W_KINDS };
static const char *const waiter_name[] = {"nobody", "receiver", "sender",
                                          "select-receiver", "select-sender"};

struct waiter_ctx {
    sl_channel *ch;
    int kind, rc, done;
    void *got;
};

static void waiter_body(void *arg)
{
    struct waiter_ctx *w = arg;
    sl_select_case c = {w->ch, SL_RECV, NULL};
    switch (w->kind) {
    case W_RECV:
        w->rc = sl_channel_receive(w->ch, &w->got);
        break;
    case W_SEND:
        w->rc = sl_channel_send(w->ch, TU_MSG(900));
        break;
    case W_SEL_RECV:
        w->rc = sl_select(&c, 1, -1);
        w->got = c.value;
        break;
    case W_SEL_SEND:
        c.op = SL_SEND;
        c.value = TU_MSG(900);
        w->rc = sl_select(&c, 1, -1);
        break;
    }
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
}

struct outcome {
    int completed; /* the operation took place */
    long got;      /* what a receive got */
    int count, balance;
    int waiter_rc;
    long waiter_got;
    long left[8];  /* drained after, in order; 0 ends */
};

/* One operation (dir +1 send of 500, -1 receive) on a channel of capacity
 * cap holding prefill messages (100, 101, ...), closing or not, with a
 * waiter of the given kind. */
static struct outcome one_case(int cap, int prefill, bool closing, int kind,
                               int dir, bool via_select)
{
    struct outcome o;
    memset(&o, 0, sizeof o);
    sl_channel *ch = cap ? sl_channel_new_buffered((size_t)cap)
                         : sl_channel_new();
    for (int i = 0; i < prefill; i++)
        TU_EQ(sl_channel_try_send(ch, TU_MSG(100 + i)), 0);
    struct waiter_ctx w = {.ch = ch, .kind = kind, .rc = 12345};
    sl_tasklet *t = NULL;
    if (kind != W_NONE) {
        t = sl_spawn(waiter_body, &w);
        sl_tasklet_ref(t);
        for (int i = 0; i < 1000 && sl_channel_balance(ch) == 0; i++)
            sl_schedule();
        TU_EQ(sl_channel_balance(ch) != 0, 1);
    }
    if (closing)
        sl_channel_close(ch);
    void *got = NULL;
    int rc;
    if (via_select) {
        sl_select_case c = {ch, dir > 0 ? SL_SEND : SL_RECV,
                            dir > 0 ? TU_MSG(500) : NULL};
        rc = sl_select(&c, 1, 0);
        got = c.value;
        o.completed = rc == 0;
    } else {
        rc = dir > 0 ? sl_channel_try_send(ch, TU_MSG(500))
                     : sl_channel_try_receive(ch, &got);
        o.completed = rc == 0;
    }
    if (o.completed && dir < 0)
        o.got = TU_INT(got);
    o.count = (int)sl_channel_count(ch);
    o.balance = sl_channel_balance(ch);
    TU_EQ(sl_run(), 0);
    if (t) {
        if (sl_tasklet_alive(t)) /* still waiting: end it */
            TU_EQ(sl_tasklet_kill(t), 0);
        TU_EQ(sl_run(), 0);
        TU_EQ(w.done, 1);
        sl_tasklet_unref(t);
        o.waiter_rc = w.rc;
        o.waiter_got = TU_INT(w.got);
    }
    sl_channel_open(ch);
    void *m;
    for (int i = 0; i < 7 && sl_channel_try_receive(ch, &m) == 0; i++)
        o.left[i] = TU_INT(m);
    TU_EQ(sl_channel_balance(ch), 0);
    TU_EQ(sl_channel_free(ch), 0);
    return o;
}

static void same(const char *what, long plain, long sel, const char *where,
                 int *mismatches)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s: plain call %ld, select %ld", where,
             what, plain, sel);
    CU_assertImplementation(plain == sel, __LINE__, msg, __FILE__, "",
                            CU_FALSE);
    if (plain != sel)
        (*mismatches)++;
}

TU_TEST_TIMEOUT(select_does_what_the_plain_call_does_in_every_channel_state, 60)
{
    int cases = 0, mismatches = 0;
    for (int cap = 0; cap <= 4; cap += 4) {
        for (int prefill = 0; prefill <= cap; prefill += 2) {
            for (int closing = 0; closing < 2; closing++) {
                for (int kind = 0; kind < W_KINDS; kind++) {
                    bool recv_waits = kind == W_RECV || kind == W_SEL_RECV;
                    bool send_waits = kind == W_SEND || kind == W_SEL_SEND;
                    if ((recv_waits && prefill > 0) ||
                        (send_waits && prefill < cap))
                        continue; /* such a waiter would not wait */
                    for (int dir = -1; dir <= 1; dir += 2) {
                        char where[128];
                        snprintf(where, sizeof where,
                                 "capacity %d holding %d%s, %s waiting, %s",
                                 cap, prefill, closing ? ", closing" : "",
                                 waiter_name[kind],
                                 dir > 0 ? "send" : "receive");
                        struct outcome p =
                            one_case(cap, prefill, closing, kind, dir, false);
                        struct outcome s =
                            one_case(cap, prefill, closing, kind, dir, true);
                        cases++;
                        same("completed", p.completed, s.completed, where,
                             &mismatches);
                        same("received", p.got, s.got, where, &mismatches);
                        same("count after", p.count, s.count, where,
                             &mismatches);
                        same("balance after", p.balance, s.balance, where,
                             &mismatches);
                        same("waiter's result", p.waiter_rc, s.waiter_rc,
                             where, &mismatches);
                        same("waiter got", p.waiter_got, s.waiter_got, where,
                             &mismatches);
                        for (int i = 0; i < 8; i++)
                            same("left in the channel", p.left[i], s.left[i],
                                 where, &mismatches);
                    }
                }
            }
        }
    }
    printf("(%d states, %d differences) ", cases, mismatches);
}

/* Issue 13, suspected ("a kill can be lost while its target, runnable on
 * another worker, is starting to block"), select's case: the kill comes
 * after the selecting tasklet's kill check, before it parks (the hook
 * stops it computing its deadline). Its select must end SL_EKILLED, not
 * wait for the timeout. */
static void select_with_timeout(void *arg)
{
    struct got *g = arg;
    sl_select_case cs[] = {{ca, SL_RECV, NULL}, {cb, SL_RECV, NULL}};
    tu_window_enter(TU_HOOK_CLOCK_GETTIME, 0);
    g->rc = sl_select(cs, 2, 2000);
}

TU_TEST_TIMEOUT(kill_of_a_tasklet_starting_a_select_on_another_worker_is_not_lost, 30)
{
    TU_MULTI_WORKER_ONLY();
    new_chans();
    struct got g = {.rc = 12345};
    TU_EQ(tu_kill_in_window(select_with_timeout, &g), 0);
    TU_EQ(g.rc, SL_EKILLED);
    free_chans();
}

/* Issue 13, item 5: the worker a selecting tasklet blocked on unlocks its
 * channels after the switch, walking the NULL-ended lock list on the
 * tasklet's stack; after the last unlock the tasklet may already run on
 * another worker and call sl_select again, rewriting that list, before
 * the walk reads the terminator. A selector woken alternately by partners
 * pinned to each worker migrates at every message, which makes that
 * happen all the time; ThreadSanitizer reports the read against the next
 * select's write (the TSan tree runs this in select_w2). Without TSan the
 * test checks exact delivery, which an unlock of a stray address may
 * break. */
static int migrations_per_sender;

static void migrating_selector(void *arg)
{
    struct tally *t = arg;
    int last = sl_worker_index();
    for (int k = 0; k < 2 * migrations_per_sender; k++) {
        sl_select_case cs[] = {{ca, SL_RECV, NULL}, {cb, SL_RECV, NULL}};
        int i = sl_select(cs, 2, -1);
        if (!TU_EQ(i >= 0, 1))
            return;
        __atomic_add_fetch(&t->sum, TU_INT(cs[i].value), __ATOMIC_RELAXED);
        __atomic_add_fetch(&t->count, 1, __ATOMIC_RELAXED);
        int now = sl_worker_index();
        if (now != last)
            __atomic_add_fetch(&t->migrations, 1, __ATOMIC_RELAXED);
        last = now;
    }
}

/* Sender i (pinned to worker i) sends on its channel when it is its turn
 * and the selector waits there, so that the selector is woken on worker 0
 * and worker 1 in turn. */
static int sender_turn;

static void pinned_sender(void *arg)
{
    int me = sl_worker_index();
    sl_channel *ch = arg;
    for (int i = 1; i <= migrations_per_sender; i++) {
        while (__atomic_load_n(&sender_turn, __ATOMIC_ACQUIRE) != me ||
               sl_channel_balance(ch) != -1)
            sl_schedule();
        TU_EQ(sl_channel_send(ch, TU_MSG(i)), 0);
        __atomic_store_n(&sender_turn, 1 - me, __ATOMIC_RELEASE);
    }
}

TU_TEST_TIMEOUT(select_unlocks_no_stale_lock_list_when_its_tasklet_migrates, 60)
{
    TU_MULTI_WORKER_ONLY();
    new_chans();
    migrations_per_sender = TU_SIZE(1000, 100);
    struct tally t = {0};
    sender_turn = 0;
    sl_spawn(migrating_selector, &t);
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.worker = 0;
    sl_spawn_ex(&a, pinned_sender, ca);
    a.worker = 1;
    sl_spawn_ex(&a, pinned_sender, cb);
    TU_EQ(sl_run(), 0);
    TU_EQ(t.count, 2 * migrations_per_sender);
    TU_EQ(t.sum, 2L * migrations_per_sender * (migrations_per_sender + 1) / 2);
    /* The case the test is about happened (copy-mode tasklets stay on the
     * worker that first ran them: no migration there). */
    if (tu_stack_mode() == SL_STACK_FIXED)
        CU_ASSERT(t.migrations > 0);
    printf("(%ld migrations) ", (long)t.migrations);
    free_chans();
}

/* Review (issue 13, item 5 again): sl__post_switch reads select's lock
 * list (on the selecting tasklet's frames) entry by entry, each before it
 * releases the previous lock, so that the tasklet cannot be completed and
 * reuse its frames while the list is still read. That holds only while
 * every lock in the list guards a waiter of the select. A closing channel
 * is locked (it is one of the cases' channels) but gets no waiter
 * (select.c: `if (!ch || ch->closing) continue;`). With the closing
 * channel last in address order, locks = {open, closing, NULL}: the
 * post-switch reads locks[1], releases the open channel's lock, and only
 * then reads locks[2]. A partner on the other worker takes the open
 * channel's lock at that moment, completes the select and wakes the
 * selector on its own worker; it returns and its next sl_select writes
 * locks[] at the same addresses (prepare) while the first worker still
 * reads locks[2]. ThreadSanitizer reports the race every run (the read is
 * after the release the partner acquired, so nothing orders it before
 * the selector's write); in a Release build a reused slot holding a
 * pointer makes the post-switch "unlock" a byte it does not hold. */
static sl_channel *lz_open, *lz_closing;
static int lz_per_sender, lz_turn;
static long lz_count, lz_migrations;

static void lz_selector(void *arg)
{
    (void)arg;
    int last = sl_worker_index();
    for (int k = 0; k < 2 * lz_per_sender; k++) {
        sl_select_case cs[] = {{lz_open, SL_RECV, NULL},
                               {lz_closing, SL_RECV, NULL}};
        int i = sl_select(cs, 2, -1);
        if (!TU_EQ(i, 0))
            return;
        lz_count++;
        int now = sl_worker_index();
        lz_migrations += now != last;
        last = now;
    }
}

static void lz_sender(void *arg)
{
    (void)arg;
    int me = sl_worker_index();
    for (int i = 1; i <= lz_per_sender; i++) {
        while (__atomic_load_n(&lz_turn, __ATOMIC_ACQUIRE) != me ||
               sl_channel_balance(lz_open) != -1)
            sl_schedule();
        TU_EQ(sl_channel_send(lz_open, TU_MSG(i)), 0);
        __atomic_store_n(&lz_turn, 1 - me, __ATOMIC_RELEASE);
    }
}

TU_TEST_TIMEOUT(select_with_a_closing_channel_last_reads_no_stale_lock_list, 60)
{
    TU_MULTI_WORKER_ONLY();
    sl_channel *a = sl_channel_new(), *b = sl_channel_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    /* The closing one last in the lock list (address order). */
    lz_open = (uintptr_t)a < (uintptr_t)b ? a : b;
    lz_closing = lz_open == a ? b : a;
    sl_channel_close(lz_closing);
    lz_per_sender = TU_SIZE(1000, 100);
    lz_turn = 0;
    lz_count = lz_migrations = 0;
    sl_spawn(lz_selector, NULL);
    sl_spawn_attr at;
    sl_spawn_attr_init(&at);
    at.worker = 0;
    sl_spawn_ex(&at, lz_sender, NULL);
    at.worker = 1;
    sl_spawn_ex(&at, lz_sender, NULL);
    TU_EQ(sl_run(), 0);
    TU_EQ(lz_count, 2 * lz_per_sender);
    if (tu_stack_mode() == SL_STACK_FIXED)
        CU_ASSERT(lz_migrations > 0);
    TU_EQ(sl_channel_balance(lz_open), 0);
    TU_EQ(sl_channel_free(lz_open), 0);
    TU_EQ(sl_channel_free(lz_closing), 0);
}

static CU_TestInfo tests[] = {
    TU_CASE(buffered_channel_getters),
    TU_CASE(buffered_sends_complete_without_receiver_in_fifo_order),
    TU_CASE(full_buffer_blocks_senders_and_refills_in_order),
    TU_CASE(buffered_producers_and_consumers_deliver_exactly),
    TU_CASE(closing_buffered_channel_drains_then_fails),
    TU_CASE(send_error_travels_through_the_buffer),
    TU_CASE(first_ready_case_wins),
    TU_CASE(select_sends_to_a_waiting_receiver_and_into_room),
    TU_CASE(blocking_select_is_woken_by_any_case),
    TU_CASE(select_timeout_restores_every_balance),
    TU_CASE(killed_selector_leaves_every_queue),
    TU_CASE(completed_select_no_longer_counts_in_the_other_balances),
    TU_CASE(killed_tasklet_select_with_a_ready_case_completes_like_receive),
    TU_CASE(select_on_closing_channels),
    TU_CASE(select_rejects_bad_arguments),
    TU_CASE(select_without_runtime),
    TU_CASE(select_receives_a_send_error),
    TU_CASE(racing_selects_deliver_every_message_once),
    TU_CASE(timed_selects_and_timed_sends_lose_nothing),
    /* issue 13's regressions */
    TU_CASE(select_send_on_a_buffered_channel_wakes_its_waiting_receiver),
    TU_CASE(select_does_what_the_plain_call_does_in_every_channel_state),
    TU_CASE(kill_of_a_tasklet_starting_a_select_on_another_worker_is_not_lost),
    TU_CASE(select_unlocks_no_stale_lock_list_when_its_tasklet_migrates),
    TU_CASE(select_with_a_closing_channel_last_reads_no_stale_lock_list),
    CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
    return tu_main(argc, argv, "select", tests);
}
