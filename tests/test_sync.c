/* test_sync.c - locks, reentrant locks, semaphores, events, conditions,
 * barriers and queues: hand-off order, counts and sums under contention
 * (spread over every worker when SL_TEST_WORKERS > 1), timeouts and the
 * state they leave, kills, deadlock reports, bad input, destroy. */
#include <limits.h>
#include <stdatomic.h>

#include "test_hook.h"
#include "test_util.h"

/* ---- helpers --------------------------------------------------------------- */

/* What each tagged tasklet's last call returned, by tag; NOT_RUN before. */
enum { NOT_RUN = 1 };
static int rc_of[128];

static void reset_rcs(void)
{
    for (size_t i = 0; i < sizeof rc_of / sizeof rc_of[0]; i++)
        rc_of[i] = NOT_RUN;
}

/* Tasklet i of a contention test, pinned to worker i mod N, so that with
 * several workers they really run in parallel. */
static sl_tasklet *spawn_spread(int i, sl_fn fn, void *arg)
{
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.worker = i % sl_worker_count();
    return sl_spawn_ex(&a, fn, arg);
}

/* Run until every tasklet has ended, timed waits included (main sleeps
 * while they wait for their timeouts). At most about 5 s. */
static void run_all(void)
{
    for (int i = 0; i < 5000 && sl_getlivecount() > 0; i++) {
        TU_EQ(sl_run(), 0);
        if (sl_getlivecount() > 0)
            sl_sleep_ms(1);
    }
}

/* Main sleeps until the tasklet tagged tag has stored its result. */
static void await_rc(char tag)
{
    for (int i = 0; i < 5000 && rc_of[(int)tag] == NOT_RUN; i++)
        sl_sleep_ms(1);
    TU_EQ(rc_of[(int)tag] != NOT_RUN, true);
}

static atomic_int errors; /* failed calls inside contention tasklets */

static void log_tag(void *tag)
{
    tu_log_putc((char)TU_INT(tag));
}

/* ---- lock ---------------------------------------------------------------------- */

static sl_lock lk;

/* Acquires lk, logs its tag, releases; rc_of[tag] = the acquire's result. */
static void lock_and_log(void *tag, int64_t timeout_ms)
{
    char c = (char)TU_INT(tag);
    int rc = sl_lock_acquire_timeout(&lk, timeout_ms);
    rc_of[(int)c] = rc;
    if (rc == 0) {
        tu_log_putc(c);
        TU_EQ(sl_lock_release(&lk), 0);
    }
}

static void lock_tagged(void *tag) { lock_and_log(tag, -1); }
static void lock_tagged_20ms(void *tag) { lock_and_log(tag, 20); }

TU_TEST(lock_acquire_try_release_and_their_errors)
{
    TU_EQ(sl_lock_init(&lk), 0);
    TU_EQ(sl_lock_locked(&lk), false);
    TU_EQ(sl_lock_try_acquire(&lk), 0);
    TU_EQ(sl_lock_locked(&lk), true);
    TU_EQ(sl_lock_try_acquire(&lk), SL_EWOULDBLOCK);
    TU_EQ(sl_lock_acquire_timeout(&lk, 0), SL_ETIMEDOUT);
    TU_EQ(sl_lock_destroy(&lk), SL_ESTATE); /* held */
    TU_EQ(sl_lock_release(&lk), 0);
    TU_EQ(sl_lock_release(&lk), SL_ESTATE); /* not held */
    TU_EQ(sl_lock_locked(&lk), false);
    TU_EQ(sl_lock_acquire(&lk), 0);
    TU_EQ(sl_lock_release(&lk), 0);
    TU_EQ(sl_lock_destroy(&lk), 0);
}

TU_TEST(lock_waiters_get_it_in_arrival_order)
{
    reset_rcs();
    TU_EQ(sl_lock_init(&lk), 0);
    TU_EQ(sl_lock_acquire(&lk), 0);
    sl_spawn(lock_tagged, TU_MSG('a'));
    sl_spawn(lock_tagged, TU_MSG('b'));
    sl_spawn(lock_tagged, TU_MSG('c'));
    TU_EQ(sl_run(), 0); /* all three wait */
    TU_ASSERT_LOG("");
    TU_EQ(sl_lock_destroy(&lk), SL_ESTATE);
    TU_EQ(sl_lock_release(&lk), 0);
    /* Handed to 'a', which has not run yet: still locked for anyone else. */
    TU_EQ(sl_lock_locked(&lk), true);
    TU_EQ(sl_lock_try_acquire(&lk), SL_EWOULDBLOCK);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("abc");
    TU_EQ(sl_lock_locked(&lk), false);
    TU_EQ(sl_lock_destroy(&lk), 0);
}

TU_TEST(lock_release_hands_over_so_a_newcomer_cannot_barge_in)
{
    reset_rcs();
    TU_EQ(sl_lock_init(&lk), 0);
    TU_EQ(sl_lock_acquire(&lk), 0);
    sl_spawn(lock_tagged, TU_MSG('a'));
    TU_EQ(sl_run(), 0); /* a waits */
    sl_spawn(lock_tagged, TU_MSG('b')); /* queued before a is woken */
    TU_EQ(sl_lock_release(&lk), 0);
    /* b runs first and finds the lock already a's: it waits behind a. */
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("ab");
    TU_EQ(sl_lock_locked(&lk), false);
    TU_EQ(sl_lock_destroy(&lk), 0);
}

static void lock_releaser(void *arg)
{
    (void)arg;
    TU_EQ(sl_lock_release(&lk), 0);
}

TU_TEST(lock_may_be_released_by_another_tasklet)
{
    TU_EQ(sl_lock_init(&lk), 0);
    TU_EQ(sl_lock_acquire(&lk), 0);
    sl_spawn(lock_releaser, NULL);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_lock_locked(&lk), false);
    TU_EQ(sl_lock_destroy(&lk), 0);
}

static long counter;
enum { ADDERS = 16, ADDS = 200 };

/* Read-yield-write under lk: without mutual exclusion increments get lost. */
static void lock_adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < ADDS; i++) {
        if (sl_lock_acquire(&lk) != 0) {
            atomic_fetch_add(&errors, 1);
            continue;
        }
        long v = counter;
        if (i % 3 == 0)
            sl_schedule();
        counter = v + 1;
        if (sl_lock_release(&lk) != 0)
            atomic_fetch_add(&errors, 1);
    }
}

TU_TEST(lock_counts_exactly_under_contention)
{
    TU_EQ(sl_lock_init(&lk), 0);
    counter = 0;
    atomic_store(&errors, 0);
    for (int i = 0; i < ADDERS; i++)
        CU_ASSERT_PTR_NOT_NULL(spawn_spread(i, lock_adder, NULL));
    run_all();
    TU_EQ(atomic_load(&errors), 0);
    TU_EQ(counter, ADDERS * ADDS);
    TU_EQ(sl_lock_locked(&lk), false);
    TU_EQ(sl_lock_destroy(&lk), 0);
}

TU_TEST(lock_timed_out_waiter_leaves_it_consistent)
{
    reset_rcs();
    TU_EQ(sl_lock_init(&lk), 0);
    TU_EQ(sl_lock_acquire(&lk), 0);
    sl_spawn(lock_tagged_20ms, TU_MSG('a'));
    sl_spawn(lock_tagged, TU_MSG('b'));
    TU_EQ(sl_run(), 0);
    await_rc('a');
    TU_EQ(rc_of['a'], SL_ETIMEDOUT);
    TU_EQ(sl_lock_locked(&lk), true); /* still main's */
    TU_EQ(sl_lock_release(&lk), 0);   /* goes to b, not to the gone a */
    run_all();
    TU_ASSERT_LOG("b");
    TU_EQ(rc_of['b'], 0);

    /* The only waiter times out: the next release frees the lock. */
    TU_EQ(sl_lock_acquire(&lk), 0);
    sl_spawn(lock_tagged_20ms, TU_MSG('c'));
    run_all();
    TU_EQ(rc_of['c'], SL_ETIMEDOUT);
    TU_EQ(sl_lock_release(&lk), 0);
    TU_EQ(sl_lock_locked(&lk), false);
    TU_EQ(sl_lock_try_acquire(&lk), 0);
    TU_EQ(sl_lock_release(&lk), 0);
    TU_ASSERT_LOG("b");
    TU_EQ(sl_lock_destroy(&lk), 0);
}

TU_TEST(lock_killed_waiter_gets_ekilled_and_the_next_one_the_lock)
{
    reset_rcs();
    TU_EQ(sl_lock_init(&lk), 0);
    TU_EQ(sl_lock_acquire(&lk), 0);
    sl_tasklet *a = sl_spawn(lock_tagged, TU_MSG('a'));
    sl_spawn(lock_tagged, TU_MSG('b'));
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_tasklet_kill(a), 0);
    TU_EQ(rc_of['a'], SL_EKILLED);
    TU_EQ(sl_lock_locked(&lk), true);
    TU_EQ(sl_lock_release(&lk), 0);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("b");
    TU_EQ(sl_lock_locked(&lk), false);
    TU_EQ(sl_lock_destroy(&lk), 0);
}

TU_TEST(lock_main_waiting_for_its_own_lock_gets_edeadlock)
{
    TU_EQ(sl_lock_init(&lk), 0);
    TU_EQ(sl_lock_acquire(&lk), 0);
    TU_EQ(sl_lock_acquire(&lk), SL_EDEADLOCK);
    TU_EQ(sl_lock_locked(&lk), true);
    TU_EQ(sl_lock_release(&lk), 0);
    TU_EQ(sl_lock_locked(&lk), false);
    TU_EQ(sl_lock_destroy(&lk), 0);
}

/* Two tasklets take two locks in opposite order; main waits on an event
 * the first one sets when done. */
static sl_lock lk_a, lk_b;
static sl_event ev;

static void abba(void *arg)
{
    char c = (char)TU_INT(arg);
    sl_lock *first = c == 'x' ? &lk_a : &lk_b;
    sl_lock *second = c == 'x' ? &lk_b : &lk_a;
    TU_EQ(sl_lock_acquire(first), 0);
    sl_schedule(); /* let the other take its first lock */
    int rc = sl_lock_acquire(second);
    rc_of[(int)c] = rc;
    if (rc == 0)
        TU_EQ(sl_lock_release(second), 0);
    TU_EQ(sl_lock_release(first), 0);
    if (c == 'x')
        TU_EQ(sl_event_set(&ev), 0);
}

TU_TEST(lock_order_inversion_is_reported_to_the_last_blocker)
{
    TU_ONE_WORKER_ONLY();
    reset_rcs();
    TU_EQ(sl_lock_init(&lk_a), 0);
    TU_EQ(sl_lock_init(&lk_b), 0);
    TU_EQ(sl_event_init(&ev), 0);
    sl_spawn(abba, TU_MSG('x'));
    sl_spawn(abba, TU_MSG('y'));
    /* x waits for b; y would wait for a with main blocked: deadlock. y
     * backs off, x gets b, finishes and sets the event. */
    TU_EQ(sl_event_wait(&ev, -1), 0);
    TU_EQ(rc_of['y'], SL_EDEADLOCK);
    TU_EQ(rc_of['x'], 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_lock_locked(&lk_a), false);
    TU_EQ(sl_lock_locked(&lk_b), false);
    TU_EQ(sl_lock_destroy(&lk_a), 0);
    TU_EQ(sl_lock_destroy(&lk_b), 0);
    TU_EQ(sl_event_destroy(&ev), 0);
}

TU_TEST_NOINIT(lock_without_runtime_works_until_it_would_block)
{
    TU_EQ(sl_lock_init(&lk), 0);
    TU_EQ(sl_lock_acquire(&lk), 0);
    TU_EQ(sl_lock_try_acquire(&lk), SL_EWOULDBLOCK);
    TU_EQ(sl_lock_acquire_timeout(&lk, 0), SL_ETIMEDOUT);
    TU_EQ(sl_lock_acquire(&lk), SL_ESTATE);
    TU_EQ(sl_lock_release(&lk), 0);
    TU_EQ(sl_lock_locked(&lk), false);
    TU_EQ(sl_lock_destroy(&lk), 0);
}

TU_TEST(lock_null_is_einval)
{
    TU_EQ(sl_lock_init(NULL), SL_EINVAL);
    TU_EQ(sl_lock_acquire(NULL), SL_EINVAL);
    TU_EQ(sl_lock_acquire_timeout(NULL, 10), SL_EINVAL);
    TU_EQ(sl_lock_try_acquire(NULL), SL_EINVAL);
    TU_EQ(sl_lock_release(NULL), SL_EINVAL);
    TU_EQ(sl_lock_locked(NULL), false);
    TU_EQ(sl_lock_destroy(NULL), SL_EINVAL);
}

/* ---- reentrant lock ------------------------------------------------------- */

static sl_rlock rl;

static void rlock_tagged(void *tag)
{
    char c = (char)TU_INT(tag);
    TU_EQ(sl_rlock_try_acquire(&rl), SL_EWOULDBLOCK);
    TU_EQ(sl_rlock_release(&rl), SL_ESTATE); /* not the owner */
    int rc = sl_rlock_acquire(&rl);
    rc_of[(int)c] = rc;
    if (rc != 0)
        return;
    TU_EQ(sl_rlock_acquire(&rl), 0); /* again: nested */
    tu_log_putc(c);
    TU_EQ(sl_rlock_release(&rl), 0);
    TU_EQ(sl_rlock_release(&rl), 0);
}

TU_TEST(rlock_nests_for_its_owner_and_refuses_others)
{
    reset_rcs();
    TU_EQ(sl_rlock_init(&rl), 0);
    TU_EQ(sl_rlock_acquire(&rl), 0);
    TU_EQ(sl_rlock_acquire(&rl), 0);
    TU_EQ(sl_rlock_try_acquire(&rl), 0);
    sl_spawn(rlock_tagged, TU_MSG('a'));
    sl_spawn(rlock_tagged, TU_MSG('b'));
    TU_EQ(sl_run(), 0); /* both wait */
    TU_EQ(sl_rlock_release(&rl), 0);
    TU_EQ(sl_rlock_release(&rl), 0);
    TU_EQ(sl_rlock_destroy(&rl), SL_ESTATE); /* still held once */
    TU_ASSERT_LOG("");
    TU_EQ(sl_rlock_release(&rl), 0); /* the last one: a owns it now */
    TU_EQ(sl_rlock_release(&rl), SL_ESTATE);
    TU_EQ(sl_rlock_try_acquire(&rl), SL_EWOULDBLOCK);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("ab");
    TU_EQ(sl_rlock_destroy(&rl), 0);
}

static void rlock_20ms(void *tag)
{
    rc_of[TU_INT(tag)] = sl_rlock_acquire_timeout(&rl, 20);
}

TU_TEST(rlock_times_out_and_stays_its_owners)
{
    reset_rcs();
    TU_EQ(sl_rlock_init(&rl), 0);
    TU_EQ(sl_rlock_acquire(&rl), 0);
    sl_spawn(rlock_20ms, TU_MSG('a'));
    run_all();
    TU_EQ(rc_of['a'], SL_ETIMEDOUT);
    TU_EQ(sl_rlock_acquire(&rl), 0); /* still ours, nested */
    TU_EQ(sl_rlock_release(&rl), 0);
    TU_EQ(sl_rlock_release(&rl), 0);
    TU_EQ(sl_rlock_release(&rl), SL_ESTATE);
    TU_EQ(sl_rlock_destroy(&rl), 0);
}

TU_TEST_NOINIT(rlock_needs_a_runtime_and_rejects_null)
{
    TU_EQ(sl_rlock_init(&rl), 0);
    TU_EQ(sl_rlock_acquire(&rl), SL_ESTATE);
    TU_EQ(sl_rlock_try_acquire(&rl), SL_ESTATE);
    TU_EQ(sl_rlock_release(&rl), SL_ESTATE);
    TU_EQ(sl_rlock_destroy(&rl), 0);
    TU_EQ(sl_rlock_init(NULL), SL_EINVAL);
    TU_EQ(sl_rlock_acquire(NULL), SL_EINVAL);
    TU_EQ(sl_rlock_acquire_timeout(NULL, 5), SL_EINVAL);
    TU_EQ(sl_rlock_try_acquire(NULL), SL_EINVAL);
    TU_EQ(sl_rlock_release(NULL), SL_EINVAL);
    TU_EQ(sl_rlock_destroy(NULL), SL_EINVAL);
}

/* ---- semaphore ------------------------------------------------------------- */

static sl_sem sem;

/* Takes a permit and logs its tag; rc_of[tag] = the acquire's result. */
static void sem_and_log(void *tag, int64_t timeout_ms)
{
    char c = (char)TU_INT(tag);
    int rc = sl_sem_acquire_timeout(&sem, timeout_ms);
    rc_of[(int)c] = rc;
    if (rc == 0)
        tu_log_putc(c);
}

static void sem_tagged(void *tag) { sem_and_log(tag, -1); }
static void sem_tagged_20ms(void *tag) { sem_and_log(tag, 20); }

TU_TEST(sem_counts_permits)
{
    TU_EQ(sl_sem_init(&sem, 2), 0);
    TU_EQ(sl_sem_value(&sem), 2);
    TU_EQ(sl_sem_acquire(&sem), 0);
    TU_EQ(sl_sem_try_acquire(&sem), 0);
    TU_EQ(sl_sem_value(&sem), 0);
    TU_EQ(sl_sem_try_acquire(&sem), SL_EWOULDBLOCK);
    TU_EQ(sl_sem_acquire_timeout(&sem, 0), SL_ETIMEDOUT);
    TU_EQ(sl_sem_acquire(&sem), SL_EDEADLOCK); /* main, nobody to release */
    TU_EQ(sl_sem_release(&sem), 0);
    TU_EQ(sl_sem_release(&sem), 0);
    TU_EQ(sl_sem_release(&sem), 0); /* unbounded: beyond the start */
    TU_EQ(sl_sem_value(&sem), 3);
    TU_EQ(sl_sem_destroy(&sem), 0);
}

TU_TEST(sem_release_hands_permits_to_waiters_in_order)
{
    reset_rcs();
    TU_EQ(sl_sem_init(&sem, 0), 0);
    sl_spawn(sem_tagged, TU_MSG('a'));
    sl_spawn(sem_tagged, TU_MSG('b'));
    sl_spawn(sem_tagged, TU_MSG('c'));
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_sem_destroy(&sem), SL_ESTATE);
    TU_EQ(sl_sem_release(&sem), 0);
    TU_EQ(sl_sem_value(&sem), 0);                   /* went to a */
    TU_EQ(sl_sem_try_acquire(&sem), SL_EWOULDBLOCK); /* no barging */
    TU_EQ(sl_sem_release(&sem), 0);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("ab");
    TU_EQ(sl_sem_release(&sem), 0);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("abc");
    TU_EQ(sl_sem_value(&sem), 0);
    TU_EQ(sl_sem_destroy(&sem), 0);
}

TU_TEST(sem_bounded_refuses_release_beyond_its_start)
{
    reset_rcs();
    TU_EQ(sl_sem_init_bounded(&sem, 1), 0);
    TU_EQ(sl_sem_release(&sem), SL_EINVAL);
    TU_EQ(sl_sem_value(&sem), 1);
    TU_EQ(sl_sem_acquire(&sem), 0);
    sl_spawn(sem_tagged, TU_MSG('a'));
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_sem_release(&sem), 0); /* to the waiter: within the bound */
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("a");
    TU_EQ(sl_sem_release(&sem), 0); /* a's permit back */
    TU_EQ(sl_sem_release(&sem), SL_EINVAL);
    TU_EQ(sl_sem_value(&sem), 1);
    TU_EQ(sl_sem_destroy(&sem), 0);
}

TU_TEST(sem_timed_out_waiter_does_not_eat_a_permit)
{
    reset_rcs();
    TU_EQ(sl_sem_init(&sem, 0), 0);
    sl_spawn(sem_tagged_20ms, TU_MSG('a'));
    sl_spawn(sem_tagged, TU_MSG('b'));
    TU_EQ(sl_run(), 0);
    await_rc('a');
    TU_EQ(rc_of['a'], SL_ETIMEDOUT);
    TU_EQ(sl_sem_release(&sem), 0); /* to b */
    run_all();
    TU_ASSERT_LOG("b");
    TU_EQ(sl_sem_value(&sem), 0);
    TU_EQ(sl_sem_release(&sem), 0); /* nobody waits: kept */
    TU_EQ(sl_sem_value(&sem), 1);
    TU_EQ(sl_sem_destroy(&sem), 0);
}

TU_TEST(sem_killed_waiter_gets_ekilled_and_the_next_one_the_permit)
{
    reset_rcs();
    TU_EQ(sl_sem_init(&sem, 0), 0);
    sl_tasklet *a = sl_spawn(sem_tagged, TU_MSG('a'));
    sl_spawn(sem_tagged, TU_MSG('b'));
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_tasklet_kill(a), 0);
    TU_EQ(rc_of['a'], SL_EKILLED);
    TU_EQ(sl_sem_release(&sem), 0);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("b");
    TU_EQ(sl_sem_value(&sem), 0);
    TU_EQ(sl_sem_destroy(&sem), 0);
}

enum { SEM_PERMITS = 3, SEM_USERS = 12, SEM_ROUNDS = 50 };
static atomic_int inside, most_inside;

static void sem_user(void *arg)
{
    (void)arg;
    for (int i = 0; i < SEM_ROUNDS; i++) {
        if (sl_sem_acquire(&sem) != 0) {
            atomic_fetch_add(&errors, 1);
            continue;
        }
        int n = atomic_fetch_add(&inside, 1) + 1;
        int m = atomic_load(&most_inside);
        while (n > m && !atomic_compare_exchange_weak(&most_inside, &m, n))
            ;
        sl_schedule();
        atomic_fetch_sub(&inside, 1);
        if (sl_sem_release(&sem) != 0)
            atomic_fetch_add(&errors, 1);
    }
}

TU_TEST(sem_admits_at_most_its_permits_under_contention)
{
    TU_EQ(sl_sem_init_bounded(&sem, SEM_PERMITS), 0);
    atomic_store(&errors, 0);
    atomic_store(&inside, 0);
    atomic_store(&most_inside, 0);
    for (int i = 0; i < SEM_USERS; i++)
        CU_ASSERT_PTR_NOT_NULL(spawn_spread(i, sem_user, NULL));
    run_all();
    TU_EQ(atomic_load(&errors), 0);
    TU_EQ(atomic_load(&most_inside), SEM_PERMITS); /* used, never exceeded */
    TU_EQ(sl_sem_value(&sem), SEM_PERMITS);
    TU_EQ(sl_sem_destroy(&sem), 0);
}

TU_TEST_NOINIT(sem_bad_input_and_no_runtime)
{
    TU_EQ(sl_sem_init(NULL, 1), SL_EINVAL);
    TU_EQ(sl_sem_init(&sem, -1), SL_EINVAL);
    TU_EQ(sl_sem_init(&sem, (int64_t)INT32_MAX + 1), SL_EINVAL);
    TU_EQ(sl_sem_init_bounded(&sem, -1), SL_EINVAL);
    TU_EQ(sl_sem_init_bounded(NULL, 1), SL_EINVAL);
    TU_EQ(sl_sem_acquire(NULL), SL_EINVAL);
    TU_EQ(sl_sem_acquire_timeout(NULL, 1), SL_EINVAL);
    TU_EQ(sl_sem_try_acquire(NULL), SL_EINVAL);
    TU_EQ(sl_sem_release(NULL), SL_EINVAL);
    TU_EQ(sl_sem_value(NULL), SL_EINVAL);
    TU_EQ(sl_sem_destroy(NULL), SL_EINVAL);
    /* No runtime: permits come and go; waiting is refused. */
    TU_EQ(sl_sem_init(&sem, 1), 0);
    TU_EQ(sl_sem_acquire(&sem), 0);
    TU_EQ(sl_sem_acquire(&sem), SL_ESTATE);
    TU_EQ(sl_sem_release(&sem), 0);
    TU_EQ(sl_sem_value(&sem), 1);
    TU_EQ(sl_sem_destroy(&sem), 0);
}

/* ---- event ---------------------------------------------------------------- */

static void event_tagged(void *tag)
{
    char c = (char)TU_INT(tag);
    int rc = sl_event_wait(&ev, -1);
    rc_of[(int)c] = rc;
    if (rc == 0)
        tu_log_putc(c);
}

TU_TEST(event_set_wakes_every_waiter_and_wait_returns_at_once_while_set)
{
    reset_rcs();
    TU_EQ(sl_event_init(&ev), 0);
    TU_EQ(sl_event_is_set(&ev), false);
    TU_EQ(sl_event_wait(&ev, 0), SL_ETIMEDOUT);
    sl_spawn(event_tagged, TU_MSG('a'));
    sl_spawn(event_tagged, TU_MSG('b'));
    sl_spawn(event_tagged, TU_MSG('c'));
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("");
    TU_EQ(sl_event_destroy(&ev), SL_ESTATE);
    TU_EQ(sl_event_set(&ev), 0);
    TU_EQ(sl_event_is_set(&ev), true);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("abc");
    TU_EQ(sl_event_wait(&ev, -1), 0); /* set: at once */
    sl_spawn(event_tagged, TU_MSG('d'));
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("abcd");
    TU_EQ(sl_event_clear(&ev), 0);
    TU_EQ(sl_event_is_set(&ev), false);
    TU_EQ(sl_event_wait(&ev, 0), SL_ETIMEDOUT);
    TU_EQ(sl_event_destroy(&ev), 0);
}

TU_TEST(event_waiters_woken_by_set_return_0_even_if_cleared_at_once)
{
    reset_rcs();
    TU_EQ(sl_event_init(&ev), 0);
    sl_spawn(event_tagged, TU_MSG('a'));
    sl_spawn(event_tagged, TU_MSG('b'));
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_event_set(&ev), 0);
    TU_EQ(sl_event_clear(&ev), 0);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("ab");
    TU_EQ(rc_of['a'], 0);
    TU_EQ(rc_of['b'], 0);
    TU_EQ(sl_event_destroy(&ev), 0);
}

static void event_20ms(void *tag)
{
    rc_of[TU_INT(tag)] = sl_event_wait(&ev, 20);
}

TU_TEST(event_wait_times_out_and_a_kill_ends_it)
{
    reset_rcs();
    TU_EQ(sl_event_init(&ev), 0);
    sl_spawn(event_20ms, TU_MSG('a'));
    sl_tasklet *b = sl_spawn(event_tagged, TU_MSG('b'));
    sl_spawn(event_tagged, TU_MSG('c'));
    TU_EQ(sl_run(), 0);
    await_rc('a');
    TU_EQ(rc_of['a'], SL_ETIMEDOUT);
    TU_EQ(sl_tasklet_kill(b), 0);
    TU_EQ(rc_of['b'], SL_EKILLED);
    TU_EQ(sl_event_set(&ev), 0);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("c");
    TU_EQ(sl_event_destroy(&ev), 0);
}

TU_TEST(event_main_waiting_gets_edeadlock_when_the_last_tasklet_ends)
{
    TU_EQ(sl_event_init(&ev), 0);
    sl_spawn(log_tag, TU_MSG('a'));
    TU_EQ(sl_event_wait(&ev, -1), SL_EDEADLOCK);
    TU_ASSERT_LOG("a");
    TU_EQ(sl_event_destroy(&ev), 0);
}

TU_TEST_NOINIT(event_without_runtime_and_null)
{
    TU_EQ(sl_event_init(&ev), 0);
    TU_EQ(sl_event_wait(&ev, -1), SL_ESTATE);
    TU_EQ(sl_event_set(&ev), 0);
    TU_EQ(sl_event_wait(&ev, -1), 0);
    TU_EQ(sl_event_clear(&ev), 0);
    TU_EQ(sl_event_destroy(&ev), 0);
    TU_EQ(sl_event_init(NULL), SL_EINVAL);
    TU_EQ(sl_event_set(NULL), SL_EINVAL);
    TU_EQ(sl_event_clear(NULL), SL_EINVAL);
    TU_EQ(sl_event_is_set(NULL), false);
    TU_EQ(sl_event_wait(NULL, 0), SL_EINVAL);
    TU_EQ(sl_event_destroy(NULL), SL_EINVAL);
}

/* ---- condition -------------------------------------------------------------- */

static sl_cond cv;
static int ready; /* under lk */

/* Waits under lk until ready > 0, takes one, logs its tag. */
static void cond_tagged(void *tag)
{
    char c = (char)TU_INT(tag);
    TU_EQ(sl_lock_acquire(&lk), 0);
    int rc = 0;
    while (ready == 0 && rc == 0)
        rc = sl_cond_wait(&cv, &lk, -1);
    rc_of[(int)c] = rc;
    if (rc == SL_EKILLED)
        return; /* without the lock */
    TU_EQ(sl_lock_locked(&lk), true);
    if (rc == 0) {
        ready--;
        tu_log_putc(c);
    }
    TU_EQ(sl_lock_release(&lk), 0);
}

static void cond_objects(void)
{
    TU_EQ(sl_lock_init(&lk), 0);
    TU_EQ(sl_cond_init(&cv), 0);
    ready = 0;
    reset_rcs();
}

static void cond_objects_destroy(void)
{
    TU_EQ(sl_cond_destroy(&cv), 0);
    TU_EQ(sl_lock_destroy(&lk), 0);
}

TU_TEST(cond_notify_wakes_one_in_order_notify_all_the_rest)
{
    cond_objects();
    TU_EQ(sl_cond_notify(&cv), 0); /* nobody waits: nothing */
    sl_spawn(cond_tagged, TU_MSG('a'));
    sl_spawn(cond_tagged, TU_MSG('b'));
    sl_spawn(cond_tagged, TU_MSG('c'));
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_lock_locked(&lk), false); /* every waiter let it go */
    TU_EQ(sl_cond_destroy(&cv), SL_ESTATE);
    TU_EQ(sl_lock_acquire(&lk), 0);
    ready = 3;
    TU_EQ(sl_cond_notify(&cv), 0);
    TU_EQ(sl_run(), 0); /* a waits for the lock main holds */
    TU_ASSERT_LOG("");
    TU_EQ(sl_lock_release(&lk), 0);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("a");
    TU_EQ(sl_cond_notify_all(&cv), 0);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("abc");
    cond_objects_destroy();
}

static void cond_20ms(void *tag)
{
    TU_EQ(sl_lock_acquire(&lk), 0);
    int rc = sl_cond_wait(&cv, &lk, 20);
    TU_EQ(sl_lock_locked(&lk), true); /* taken back */
    rc_of[TU_INT(tag)] = rc;
    TU_EQ(sl_lock_release(&lk), 0);
}


TU_TEST(cond_wait_times_out_with_the_lock_taken_back)
{
    cond_objects();
    sl_spawn(cond_20ms, TU_MSG('a'));
    TU_EQ(sl_schedule(), 0); /* a waits on cv (sl_run would wait for a) */
    TU_EQ(sl_lock_acquire(&lk), 0);
    sl_sleep_ms(60); /* a times out, then waits for the lock main holds */
    TU_EQ(rc_of['a'], NOT_RUN);
    TU_EQ(sl_lock_release(&lk), 0);
    run_all();
    TU_EQ(rc_of['a'], SL_ETIMEDOUT);
    TU_EQ(sl_lock_locked(&lk), false);
    cond_objects_destroy();
}

TU_TEST(cond_killed_waiter_returns_ekilled_without_the_lock)
{
    cond_objects();
    sl_tasklet *a = sl_spawn(cond_tagged, TU_MSG('a'));
    sl_spawn(cond_tagged, TU_MSG('b'));
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_lock_acquire(&lk), 0);
    TU_EQ(sl_tasklet_kill(a), 0);
    TU_EQ(rc_of['a'], SL_EKILLED);
    TU_EQ(sl_lock_locked(&lk), true); /* still main's */
    ready = 1;
    TU_EQ(sl_cond_notify(&cv), 0); /* to b: a has left */
    TU_EQ(sl_lock_release(&lk), 0);
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("b");
    TU_EQ(sl_lock_locked(&lk), false);
    cond_objects_destroy();
}

TU_TEST(cond_wait_needs_the_lock_held)
{
    cond_objects();
    TU_EQ(sl_cond_wait(&cv, &lk, -1), SL_ESTATE);
    TU_EQ(sl_cond_wait(NULL, &lk, -1), SL_EINVAL);
    TU_EQ(sl_cond_wait(&cv, NULL, -1), SL_EINVAL);
    TU_EQ(sl_lock_acquire(&lk), 0);
    /* Main alone: nobody could notify. The lock is not taken back. */
    TU_EQ(sl_cond_wait(&cv, &lk, -1), SL_EDEADLOCK);
    TU_EQ(sl_lock_locked(&lk), false);
    TU_EQ(sl_lock_acquire(&lk), 0);
    TU_EQ(sl_cond_wait(&cv, &lk, 0), SL_ETIMEDOUT);
    TU_EQ(sl_lock_locked(&lk), true);
    TU_EQ(sl_lock_release(&lk), 0);
    cond_objects_destroy();
}

TU_TEST_NOINIT(cond_without_runtime_and_null)
{
    cond_objects();
    TU_EQ(sl_lock_acquire(&lk), 0);
    TU_EQ(sl_cond_wait(&cv, &lk, -1), SL_ESTATE);
    TU_EQ(sl_lock_locked(&lk), true); /* untouched */
    TU_EQ(sl_lock_release(&lk), 0);
    TU_EQ(sl_cond_notify(&cv), 0);
    TU_EQ(sl_cond_notify_all(&cv), 0);
    cond_objects_destroy();
    TU_EQ(sl_cond_init(NULL), SL_EINVAL);
    TU_EQ(sl_cond_notify(NULL), SL_EINVAL);
    TU_EQ(sl_cond_notify_all(NULL), SL_EINVAL);
    TU_EQ(sl_cond_destroy(NULL), SL_EINVAL);
}

/* A bounded buffer of CV_SLOTS built from lk and two conditions. */
enum { CV_SLOTS = 4, CV_PRODUCERS = 4, CV_CONSUMERS = 4, CV_ITEMS = 100 };
static sl_cond cv_not_full;
static long cv_buf[CV_SLOTS];
static int cv_head, cv_count; /* under lk */
static long cv_sum;           /* under lk */

static void cv_producer(void *arg)
{
    long base = TU_INT(arg) * 1000;
    for (long k = 1; k <= CV_ITEMS; k++) {
        int rc = sl_lock_acquire(&lk);
        while (rc == 0 && cv_count == CV_SLOTS)
            rc = sl_cond_wait(&cv_not_full, &lk, -1);
        if (rc != 0) {
            atomic_fetch_add(&errors, 1);
            return;
        }
        cv_buf[(cv_head + cv_count++) % CV_SLOTS] = base + k;
        sl_cond_notify(&cv);
        sl_lock_release(&lk);
    }
}

static void cv_consumer(void *arg)
{
    (void)arg;
    for (int k = 0; k < CV_ITEMS * CV_PRODUCERS / CV_CONSUMERS; k++) {
        int rc = sl_lock_acquire(&lk);
        while (rc == 0 && cv_count == 0)
            rc = sl_cond_wait(&cv, &lk, -1);
        if (rc != 0) {
            atomic_fetch_add(&errors, 1);
            return;
        }
        cv_sum += cv_buf[cv_head];
        cv_head = (cv_head + 1) % CV_SLOTS;
        cv_count--;
        sl_cond_notify(&cv_not_full);
        sl_lock_release(&lk);
    }
}

TU_TEST(cond_bounded_buffer_sums_exactly_under_contention)
{
    cond_objects();
    TU_EQ(sl_cond_init(&cv_not_full), 0);
    atomic_store(&errors, 0);
    cv_head = cv_count = 0;
    cv_sum = 0;
    long want = 0;
    for (int i = 0; i < CV_PRODUCERS; i++) {
        CU_ASSERT_PTR_NOT_NULL(spawn_spread(i, cv_producer, TU_MSG(i + 1)));
        want += (i + 1) * 1000L * CV_ITEMS + CV_ITEMS * (CV_ITEMS + 1L) / 2;
    }
    for (int i = 0; i < CV_CONSUMERS; i++)
        CU_ASSERT_PTR_NOT_NULL(spawn_spread(i + 1, cv_consumer, NULL));
    run_all();
    TU_EQ(atomic_load(&errors), 0);
    TU_EQ(cv_count, 0);
    TU_EQ(cv_sum, want);
    TU_EQ(sl_cond_destroy(&cv_not_full), 0);
    cond_objects_destroy();
}

/* ---- barrier ------------------------------------------------------------------ */

static sl_barrier bar;

/* Logs its tag, waits at bar, logs the tag in upper case. */
static void barrier_tagged(void *tag)
{
    char c = (char)TU_INT(tag);
    tu_log_putc(c);
    int rc = sl_barrier_wait(&bar, -1);
    rc_of[(int)c] = rc;
    tu_log_putc((char)(c - 'a' + 'A'));
}

static void barrier_20ms(void *tag)
{
    rc_of[TU_INT(tag)] = sl_barrier_wait(&bar, 20);
}

static void barrier_round(const char *tags)
{
    for (const char *t = tags; *t; t++)
        sl_spawn(barrier_tagged, TU_MSG(*t));
    TU_EQ(sl_run(), 0);
}

TU_TEST(barrier_lets_all_pass_when_the_last_arrives_round_after_round)
{
    reset_rcs();
    TU_EQ(sl_barrier_init(&bar, 3), 0);
    sl_spawn(barrier_tagged, TU_MSG('a'));
    sl_spawn(barrier_tagged, TU_MSG('b'));
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("ab"); /* both wait */
    TU_EQ(sl_barrier_destroy(&bar), SL_ESTATE);
    barrier_round("c"); /* the last: passes at once, then the others */
    TU_ASSERT_LOG("abcCAB");
    TU_EQ(rc_of['a'], 0);
    TU_EQ(rc_of['b'], 1);
    TU_EQ(rc_of['c'], 2);
    reset_rcs();
    barrier_round("cab"); /* the next generation */
    TU_ASSERT_LOG("abcCABcabBCA");
    TU_EQ(rc_of['c'], 0);
    TU_EQ(rc_of['a'], 1);
    TU_EQ(rc_of['b'], 2);
    TU_EQ(sl_barrier_destroy(&bar), 0);
}

TU_TEST(barrier_timeout_breaks_it_until_reset)
{
    reset_rcs();
    TU_EQ(sl_barrier_init(&bar, 3), 0);
    sl_spawn(barrier_tagged, TU_MSG('a'));
    sl_spawn(barrier_20ms, TU_MSG('b'));
    TU_EQ(sl_run(), 0);
    await_rc('b');
    run_all();
    TU_EQ(rc_of['b'], SL_ETIMEDOUT);
    TU_EQ(rc_of['a'], SL_EBROKEN);
    TU_EQ(sl_barrier_wait(&bar, -1), SL_EBROKEN); /* at once */
    TU_EQ(sl_barrier_reset(&bar), 0);
    reset_rcs();
    tu_log_reset();
    barrier_round("abc");
    TU_ASSERT_LOG("abcCAB");
    TU_EQ(rc_of['c'], 2);
    TU_EQ(sl_barrier_destroy(&bar), 0);
}

TU_TEST(barrier_kill_and_abort_break_it_reset_with_waiters_too)
{
    reset_rcs();
    TU_EQ(sl_barrier_init(&bar, 2), 0);
    sl_tasklet *a = sl_spawn(barrier_tagged, TU_MSG('a'));
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_tasklet_kill(a), 0);
    TU_EQ(rc_of['a'], SL_EKILLED);
    TU_EQ(sl_barrier_wait(&bar, -1), SL_EBROKEN);
    TU_EQ(sl_barrier_reset(&bar), 0);

    TU_EQ(sl_barrier_init(&bar, 3), 0);
    reset_rcs();
    barrier_round("ab");
    TU_EQ(sl_barrier_abort(&bar), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(rc_of['a'], SL_EBROKEN);
    TU_EQ(rc_of['b'], SL_EBROKEN);
    TU_EQ(sl_barrier_wait(&bar, 0), SL_EBROKEN);
    TU_EQ(sl_barrier_reset(&bar), 0);

    reset_rcs();
    barrier_round("ab");
    TU_EQ(sl_barrier_reset(&bar), 0); /* waiters inside: broken for them */
    TU_EQ(sl_run(), 0);
    TU_EQ(rc_of['a'], SL_EBROKEN);
    TU_EQ(rc_of['b'], SL_EBROKEN);
    reset_rcs();
    barrier_round("abc"); /* and usable at once */
    TU_EQ(rc_of['a'], 0);
    TU_EQ(rc_of['c'], 2);
    TU_EQ(sl_barrier_destroy(&bar), 0);
}

TU_TEST(barrier_main_waiting_alone_gets_edeadlock_and_breaks_it)
{
    TU_EQ(sl_barrier_init(&bar, 2), 0);
    TU_EQ(sl_barrier_wait(&bar, -1), SL_EDEADLOCK);
    TU_EQ(sl_barrier_wait(&bar, -1), SL_EBROKEN);
    TU_EQ(sl_barrier_reset(&bar), 0);
    TU_EQ(sl_barrier_destroy(&bar), 0);
}

enum { BAR_PARTIES = 8, BAR_ROUNDS = 50 };
static atomic_int arrived;
static atomic_long index_sum;

static void barrier_member(void *arg)
{
    (void)arg;
    for (int r = 0; r < BAR_ROUNDS; r++) {
        atomic_fetch_add(&arrived, 1);
        int rc = sl_barrier_wait(&bar, -1);
        if (rc < 0 || atomic_load(&arrived) < (r + 1) * BAR_PARTIES)
            atomic_fetch_add(&errors, 1); /* passed before all arrived */
        else
            atomic_fetch_add(&index_sum, rc);
    }
}

TU_TEST(barrier_rounds_under_contention_pass_only_when_all_arrived)
{
    TU_EQ(sl_barrier_init(&bar, BAR_PARTIES), 0);
    atomic_store(&errors, 0);
    atomic_store(&arrived, 0);
    atomic_store(&index_sum, 0);
    for (int i = 0; i < BAR_PARTIES; i++)
        CU_ASSERT_PTR_NOT_NULL(spawn_spread(i, barrier_member, NULL));
    run_all();
    TU_EQ(atomic_load(&errors), 0);
    TU_EQ(atomic_load(&index_sum),
          BAR_ROUNDS * BAR_PARTIES * (BAR_PARTIES - 1) / 2);
    TU_EQ(sl_barrier_destroy(&bar), 0);
}

TU_TEST_NOINIT(barrier_of_one_and_bad_input)
{
    TU_EQ(sl_barrier_init(&bar, 1), 0);
    TU_EQ(sl_barrier_wait(&bar, -1), 0); /* no runtime needed: never waits */
    TU_EQ(sl_barrier_wait(&bar, -1), 0);
    TU_EQ(sl_barrier_destroy(&bar), 0);
    TU_EQ(sl_barrier_init(&bar, 0), SL_EINVAL);
    TU_EQ(sl_barrier_init(NULL, 2), SL_EINVAL);
    TU_EQ(sl_barrier_wait(NULL, -1), SL_EINVAL);
    TU_EQ(sl_barrier_abort(NULL), SL_EINVAL);
    TU_EQ(sl_barrier_reset(NULL), SL_EINVAL);
    TU_EQ(sl_barrier_destroy(NULL), SL_EINVAL);
}

/* ---- queue --------------------------------------------------------------------- */

static sl_queue qu;

static int cmp_int(const void *a, const void *b)
{
    intptr_t x = TU_INT(a), y = TU_INT(b);
    return x < y ? -1 : x > y;
}

/* Gets one item (forever) and logs its tag and the item. */
static void get_tagged(void *tag)
{
    char c = (char)TU_INT(tag);
    void *item = NULL;
    int rc = sl_queue_get(&qu, &item, -1);
    rc_of[(int)c] = rc;
    if (rc == 0) {
        tu_log_putc(c);
        tu_log_putc((char)TU_INT(item));
    }
}

static void get_tagged_20ms(void *tag)
{
    char c = (char)TU_INT(tag);
    void *item = NULL;
    rc_of[(int)c] = sl_queue_get(&qu, &item, 20);
}

/* Puts its own tag (forever). */
static void put_tagged(void *tag)
{
    rc_of[TU_INT(tag)] = sl_queue_put(&qu, tag, -1);
}

static void put_all(const char *items)
{
    for (const char *p = items; *p; p++)
        TU_EQ(sl_queue_put(&qu, TU_MSG(*p), 0), 0);
}

static void get_all_into_log(void)
{
    void *item;
    while (sl_queue_get(&qu, &item, 0) == 0)
        tu_log_putc((char)TU_INT(item));
}

TU_TEST(queue_fifo_lifo_and_priority_orders)
{
    static const struct {
        int kind;
        const char *out;
    } cases[] = {{SL_QUEUE_FIFO, "51423"},
                 {SL_QUEUE_LIFO, "32415"},
                 {SL_QUEUE_PRIORITY, "12345"}};
    for (size_t i = 0; i < 3; i++) {
        tu_log_reset();
        int kind = cases[i].kind;
        TU_EQ(sl_queue_init(&qu, kind, 0,
                            kind == SL_QUEUE_PRIORITY ? cmp_int : NULL),
              0);
        TU_EQ(sl_queue_empty(&qu), true);
        put_all("51423");
        TU_EQ(sl_queue_size(&qu), 5);
        TU_EQ(sl_queue_full(&qu), false); /* unbounded */
        get_all_into_log();
        TU_ASSERT_LOG(cases[i].out);
        TU_EQ(sl_queue_empty(&qu), true);
        void *item;
        TU_EQ(sl_queue_get(&qu, &item, 0), SL_ETIMEDOUT);
        TU_EQ(sl_queue_destroy(&qu), 0);
    }
}

TU_TEST(queue_grows_across_the_ring_wrap_and_keeps_every_order)
{
    TU_EQ(sl_queue_init(&qu, SL_QUEUE_FIFO, 0, NULL), 0);
    intptr_t next_put = 0, next_get = 0;
    bool in_order = true;
    for (int round = 0; round < 2000; round++) {
        for (int i = 0; i < 10; i++)
            TU_EQ(sl_queue_put(&qu, TU_MSG(next_put++), 0), 0);
        for (int i = 0; i < 7; i++) {
            void *item = NULL;
            TU_EQ(sl_queue_get(&qu, &item, 0), 0);
            in_order &= TU_INT(item) == next_get++;
        }
    }
    TU_EQ(in_order, true);
    TU_EQ(sl_queue_size(&qu), 2000 * 3);
    TU_EQ(sl_queue_destroy(&qu), 0); /* items left: dropped */

    /* A heap of pseudo-random keys comes out sorted. */
    TU_EQ(sl_queue_init(&qu, SL_QUEUE_PRIORITY, 0, cmp_int), 0);
    uint32_t x = 12345;
    for (int i = 0; i < 5000; i++) {
        x = x * 1103515245u + 12345u;
        TU_EQ(sl_queue_put(&qu, TU_MSG((x >> 8) % 1000), 0), 0);
    }
    intptr_t last = -1;
    bool sorted = true;
    void *item;
    while (sl_queue_get(&qu, &item, 0) == 0) {
        sorted &= TU_INT(item) >= last;
        last = TU_INT(item);
    }
    TU_EQ(sorted, true);
    TU_EQ(sl_queue_destroy(&qu), 0);
}

TU_TEST(queue_getters_are_handed_items_in_arrival_order)
{
    reset_rcs();
    TU_EQ(sl_queue_init(&qu, SL_QUEUE_FIFO, 0, NULL), 0);
    sl_spawn(get_tagged, TU_MSG('a'));
    sl_spawn(get_tagged, TU_MSG('b'));
    sl_spawn(get_tagged, TU_MSG('c'));
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_queue_destroy(&qu), SL_ESTATE);
    put_all("xyz");
    TU_EQ(sl_queue_size(&qu), 0); /* handed over, never stored */
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("axbycz");
    TU_EQ(sl_queue_destroy(&qu), 0);
}

TU_TEST(queue_full_put_blocks_and_a_freed_slot_is_kept_for_the_waiter)
{
    reset_rcs();
    TU_EQ(sl_queue_init(&qu, SL_QUEUE_FIFO, 2, NULL), 0);
    put_all("12");
    TU_EQ(sl_queue_full(&qu), true);
    TU_EQ(sl_queue_put(&qu, TU_MSG('x'), 0), SL_ETIMEDOUT);
    sl_spawn(put_tagged, TU_MSG('p'));
    sl_spawn(put_tagged, TU_MSG('q'));
    TU_EQ(sl_run(), 0); /* both wait */
    TU_EQ(sl_queue_size(&qu), 2);
    void *item = NULL;
    TU_EQ(sl_queue_get(&qu, &item, 0), 0);
    TU_EQ(TU_INT(item), '1');
    /* The slot is p's: main cannot take it. */
    TU_EQ(sl_queue_full(&qu), true);
    TU_EQ(sl_queue_put(&qu, TU_MSG('x'), 0), SL_ETIMEDOUT);
    TU_EQ(sl_run(), 0);
    TU_EQ(rc_of['p'], 0);
    TU_EQ(rc_of['q'], NOT_RUN);
    TU_EQ(sl_queue_get(&qu, &item, 0), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(rc_of['q'], 0);
    get_all_into_log();
    TU_ASSERT_LOG("pq");
    TU_EQ(TU_INT(item), '2');
    TU_EQ(sl_queue_destroy(&qu), 0);
}

TU_TEST(queue_woken_putter_that_hands_its_item_over_passes_its_slot_on)
{
    reset_rcs();
    TU_EQ(sl_queue_init(&qu, SL_QUEUE_FIFO, 1, NULL), 0);
    put_all("A");
    sl_spawn(put_tagged, TU_MSG('p'));
    sl_spawn(put_tagged, TU_MSG('q'));
    TU_EQ(sl_run(), 0); /* p and q wait: full */
    sl_spawn(get_tagged, TU_MSG('g')); /* runs before p */
    void *item = NULL;
    TU_EQ(sl_queue_get(&qu, &item, 0), 0); /* 'A'; the slot is p's */
    /* g finds the queue empty and waits; p hands 'p' to g and its slot to
     * q, which stores 'q'. */
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("gp");
    TU_EQ(rc_of['q'], 0);
    TU_EQ(sl_queue_size(&qu), 1);
    TU_EQ(sl_queue_get(&qu, &item, 0), 0);
    TU_EQ(TU_INT(item), 'q');
    TU_EQ(sl_queue_destroy(&qu), 0);
}

TU_TEST(queue_timed_out_or_killed_waiters_lose_nothing)
{
    reset_rcs();
    TU_EQ(sl_queue_init(&qu, SL_QUEUE_FIFO, 1, NULL), 0);
    sl_spawn(get_tagged_20ms, TU_MSG('a'));
    sl_tasklet *b = sl_spawn(get_tagged, TU_MSG('b'));
    sl_spawn(get_tagged, TU_MSG('c'));
    TU_EQ(sl_run(), 0);
    await_rc('a');
    TU_EQ(rc_of['a'], SL_ETIMEDOUT);
    TU_EQ(sl_tasklet_kill(b), 0);
    TU_EQ(rc_of['b'], SL_EKILLED);
    put_all("x"); /* to c */
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("cx");
    TU_EQ(sl_queue_size(&qu), 0);

    /* Putters on a full queue: q and r wait, then main's timed put
     * times out behind them, q is killed; the freed slot goes to r. */
    put_all("1");
    sl_tasklet *q = sl_spawn(put_tagged, TU_MSG('q'));
    sl_spawn(put_tagged, TU_MSG('r'));
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_queue_put(&qu, TU_MSG('p'), 20), SL_ETIMEDOUT);
    TU_EQ(sl_tasklet_kill(q), 0);
    TU_EQ(rc_of['q'], SL_EKILLED);
    TU_EQ(sl_queue_destroy(&qu), SL_ESTATE); /* r waits */
    void *item = NULL;
    TU_EQ(sl_queue_get(&qu, &item, 0), 0);
    TU_EQ(TU_INT(item), '1');
    TU_EQ(sl_queue_get(&qu, &item, 0), SL_ETIMEDOUT); /* r has not run */
    TU_EQ(sl_run(), 0);
    TU_EQ(rc_of['r'], 0);
    TU_EQ(sl_queue_get(&qu, &item, 0), 0);
    TU_EQ(TU_INT(item), 'r');
    TU_EQ(sl_queue_destroy(&qu), 0);
}

/* Takes three items, marking each done. */
static void queue_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        void *item;
        if (TU_EQ(sl_queue_get(&qu, &item, -1), 0)) {
            tu_log_putc((char)TU_INT(item));
            TU_EQ(sl_queue_task_done(&qu), 0);
        }
    }
}

TU_TEST(queue_join_waits_until_every_item_is_done)
{
    TU_EQ(sl_queue_init(&qu, SL_QUEUE_FIFO, 0, NULL), 0);
    TU_EQ(sl_queue_join(&qu, -1), 0); /* nothing put */
    TU_EQ(sl_queue_task_done(&qu), SL_ESTATE);
    put_all("xyz");
    TU_EQ(sl_queue_join(&qu, 0), SL_ETIMEDOUT);
    TU_EQ(sl_queue_join(&qu, 20), SL_ETIMEDOUT); /* a timed wait, alone */
    sl_spawn(queue_worker, NULL);
    TU_EQ(sl_queue_join(&qu, -1), 0);
    TU_ASSERT_LOG("xyz");
    TU_EQ(sl_queue_task_done(&qu), SL_ESTATE); /* more than were put */
    TU_EQ(sl_queue_join(&qu, 0), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_queue_destroy(&qu), 0);
}

enum { Q_PRODUCERS = 4, Q_CONSUMERS = 4, Q_ITEMS = 500 };
static atomic_long q_sum;

static void q_producer(void *arg)
{
    intptr_t base = TU_INT(arg) * 100000;
    for (intptr_t k = 1; k <= Q_ITEMS; k++)
        if (sl_queue_put(&qu, TU_MSG(base + k), -1) != 0)
            atomic_fetch_add(&errors, 1);
}

static void q_consumer(void *arg)
{
    (void)arg;
    for (int k = 0; k < Q_ITEMS * Q_PRODUCERS / Q_CONSUMERS; k++) {
        void *item;
        if (sl_queue_get(&qu, &item, -1) != 0 ||
            sl_queue_task_done(&qu) != 0) {
            atomic_fetch_add(&errors, 1);
            continue;
        }
        atomic_fetch_add(&q_sum, TU_INT(item));
    }
}

/* join returns once unfinished_ is 0; with several workers producers may
 * put more right after, so only its result is checked here. */
static void q_joiner(void *arg)
{
    (void)arg;
    if (sl_queue_join(&qu, -1) != 0)
        atomic_fetch_add(&errors, 1);
}

TU_TEST(queue_producers_and_consumers_sum_exactly_under_contention)
{
    static const int kinds[] = {SL_QUEUE_FIFO, SL_QUEUE_LIFO,
                                SL_QUEUE_PRIORITY};
    for (size_t n = 0; n < 3; n++) {
        int kind = kinds[n];
        TU_EQ(sl_queue_init(&qu, kind, 8,
                            kind == SL_QUEUE_PRIORITY ? cmp_int : NULL),
              0);
        atomic_store(&errors, 0);
        atomic_store(&q_sum, 0);
        long want = 0;
        for (int i = 0; i < Q_PRODUCERS; i++) {
            spawn_spread(i, q_producer, TU_MSG(i + 1));
            want += (i + 1) * 100000L * Q_ITEMS + Q_ITEMS * (Q_ITEMS + 1L) / 2;
        }
        for (int i = 0; i < Q_CONSUMERS; i++)
            spawn_spread(i + 1, q_consumer, NULL);
        spawn_spread(0, q_joiner, NULL);
        run_all();
        TU_EQ(atomic_load(&errors), 0);
        TU_EQ(atomic_load(&q_sum), want);
        TU_EQ(sl_queue_size(&qu), 0);
        TU_EQ(sl_queue_destroy(&qu), 0);
    }
}

TU_TEST(queue_main_getting_from_an_empty_queue_alone_gets_edeadlock)
{
    TU_EQ(sl_queue_init(&qu, SL_QUEUE_FIFO, 1, NULL), 0);
    void *item = NULL;
    TU_EQ(sl_queue_get(&qu, &item, -1), SL_EDEADLOCK);
    put_all("1");
    TU_EQ(sl_queue_put(&qu, TU_MSG('2'), -1), SL_EDEADLOCK);
    TU_EQ(sl_queue_size(&qu), 1);
    TU_EQ(sl_queue_destroy(&qu), 0);
}

TU_TEST_NOINIT(queue_bad_input_and_no_runtime)
{
    TU_EQ(sl_queue_init(NULL, SL_QUEUE_FIFO, 0, NULL), SL_EINVAL);
    TU_EQ(sl_queue_init(&qu, 3, 0, NULL), SL_EINVAL);
    TU_EQ(sl_queue_init(&qu, -1, 0, NULL), SL_EINVAL);
    TU_EQ(sl_queue_init(&qu, SL_QUEUE_PRIORITY, 0, NULL), SL_EINVAL);
    TU_EQ(sl_queue_init(&qu, SL_QUEUE_FIFO, 0, cmp_int), SL_EINVAL);
    void *item = NULL;
    TU_EQ(sl_queue_put(NULL, NULL, 0), SL_EINVAL);
    TU_EQ(sl_queue_get(NULL, &item, 0), SL_EINVAL);
    TU_EQ(sl_queue_task_done(NULL), SL_EINVAL);
    TU_EQ(sl_queue_join(NULL, 0), SL_EINVAL);
    TU_EQ(sl_queue_size(NULL), 0);
    TU_EQ(sl_queue_empty(NULL), true);
    TU_EQ(sl_queue_full(NULL), false);
    TU_EQ(sl_queue_destroy(NULL), SL_EINVAL);
    /* No runtime: what does not block works. NULL items are items. */
    TU_EQ(sl_queue_init(&qu, SL_QUEUE_LIFO, 1, NULL), 0);
    TU_EQ(sl_queue_get(&qu, NULL, 0), SL_EINVAL);
    TU_EQ(sl_queue_get(&qu, &item, -1), SL_ESTATE);
    TU_EQ(sl_queue_put(&qu, NULL, -1), 0);
    TU_EQ(sl_queue_put(&qu, NULL, -1), SL_ESTATE);
    TU_EQ(sl_queue_full(&qu), true);
    item = &item;
    TU_EQ(sl_queue_get(&qu, &item, -1), 0);
    CU_ASSERT_PTR_NULL(item);
    TU_EQ(sl_queue_task_done(&qu), 0);
    TU_EQ(sl_queue_join(&qu, -1), 0);
    TU_EQ(sl_queue_destroy(&qu), 0);
}

/* ---- issue 13's regressions ----------------------------------------------- */

/* Suspected ("a kill can be lost while its target, runnable on another
 * worker, is starting to block"), the wait queue's case: a tasklet on
 * worker 1 waiting for a lock main holds is stopped after its kill check
 * (computing its deadline: the hook on clock_gettime) and killed there.
 * Its acquire must end SL_EKILLED, not by its timeout. */
static sl_lock kl;
static int kla_rc;

static void acquire_in_window(void *arg)
{
    (void)arg;
    tu_window_enter(TU_HOOK_CLOCK_GETTIME, 0);
    kla_rc = sl_lock_acquire_timeout(&kl, 2000);
    if (kla_rc == 0)
        sl_lock_release(&kl);
}

TU_TEST_TIMEOUT(kill_of_a_tasklet_starting_to_wait_for_a_lock_on_another_worker_is_not_lost, 30)
{
    TU_MULTI_WORKER_ONLY();
    TU_EQ(sl_lock_init(&kl), 0);
    TU_EQ(sl_lock_acquire(&kl), 0);
    kla_rc = 12345;
    TU_EQ(tu_kill_in_window(acquire_in_window, NULL), 0);
    TU_EQ(kla_rc, SL_EKILLED);
    TU_EQ(sl_lock_release(&kl), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_lock_destroy(&kl), 0);
}

static CU_TestInfo tests[] = {
    TU_CASE(lock_acquire_try_release_and_their_errors),
    TU_CASE(lock_waiters_get_it_in_arrival_order),
    TU_CASE(lock_release_hands_over_so_a_newcomer_cannot_barge_in),
    TU_CASE(lock_may_be_released_by_another_tasklet),
    TU_CASE(lock_counts_exactly_under_contention),
    TU_CASE(lock_timed_out_waiter_leaves_it_consistent),
    TU_CASE(lock_killed_waiter_gets_ekilled_and_the_next_one_the_lock),
    TU_CASE(lock_main_waiting_for_its_own_lock_gets_edeadlock),
    TU_CASE(lock_order_inversion_is_reported_to_the_last_blocker),
    TU_CASE(lock_without_runtime_works_until_it_would_block),
    TU_CASE(lock_null_is_einval),
    TU_CASE(rlock_nests_for_its_owner_and_refuses_others),
    TU_CASE(rlock_times_out_and_stays_its_owners),
    TU_CASE(rlock_needs_a_runtime_and_rejects_null),
    TU_CASE(sem_counts_permits),
    TU_CASE(sem_release_hands_permits_to_waiters_in_order),
    TU_CASE(sem_bounded_refuses_release_beyond_its_start),
    TU_CASE(sem_timed_out_waiter_does_not_eat_a_permit),
    TU_CASE(sem_killed_waiter_gets_ekilled_and_the_next_one_the_permit),
    TU_CASE(sem_admits_at_most_its_permits_under_contention),
    TU_CASE(sem_bad_input_and_no_runtime),
    TU_CASE(event_set_wakes_every_waiter_and_wait_returns_at_once_while_set),
    TU_CASE(event_waiters_woken_by_set_return_0_even_if_cleared_at_once),
    TU_CASE(event_wait_times_out_and_a_kill_ends_it),
    TU_CASE(event_main_waiting_gets_edeadlock_when_the_last_tasklet_ends),
    TU_CASE(event_without_runtime_and_null),
    TU_CASE(cond_notify_wakes_one_in_order_notify_all_the_rest),
    TU_CASE(cond_wait_times_out_with_the_lock_taken_back),
    TU_CASE(cond_killed_waiter_returns_ekilled_without_the_lock),
    TU_CASE(cond_wait_needs_the_lock_held),
    TU_CASE(cond_without_runtime_and_null),
    TU_CASE(cond_bounded_buffer_sums_exactly_under_contention),
    TU_CASE(barrier_lets_all_pass_when_the_last_arrives_round_after_round),
    TU_CASE(barrier_timeout_breaks_it_until_reset),
    TU_CASE(barrier_kill_and_abort_break_it_reset_with_waiters_too),
    TU_CASE(barrier_main_waiting_alone_gets_edeadlock_and_breaks_it),
    TU_CASE(barrier_rounds_under_contention_pass_only_when_all_arrived),
    TU_CASE(barrier_of_one_and_bad_input),
    TU_CASE(queue_fifo_lifo_and_priority_orders),
    TU_CASE(queue_grows_across_the_ring_wrap_and_keeps_every_order),
    TU_CASE(queue_getters_are_handed_items_in_arrival_order),
    TU_CASE(queue_full_put_blocks_and_a_freed_slot_is_kept_for_the_waiter),
    TU_CASE(queue_woken_putter_that_hands_its_item_over_passes_its_slot_on),
    TU_CASE(queue_timed_out_or_killed_waiters_lose_nothing),
    TU_CASE(queue_join_waits_until_every_item_is_done),
    TU_CASE(queue_producers_and_consumers_sum_exactly_under_contention),
    TU_CASE(queue_main_getting_from_an_empty_queue_alone_gets_edeadlock),
    TU_CASE(queue_bad_input_and_no_runtime),
    /* issue 13's regressions */
    TU_CASE(kill_of_a_tasklet_starting_to_wait_for_a_lock_on_another_worker_is_not_lost),
    CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
    return tu_main(argc, argv, "sync", tests);
}
