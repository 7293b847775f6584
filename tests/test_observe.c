/* test_observe.c - seeing inside: the schedule and channel callbacks, the
 * trace's API and its file (tests/trace_check.py parses the JSON of a
 * known program), a trace cut short by a crash, and the SIGQUIT dump. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_hook.h"
#include "test_util.h"
#include "stackless_sync.h"

/* The converter of a raw trace (sched/trace.h), as tools/stackless-trace
 * uses it. */
int sl__trace_convert(int raw, int json);

/* ---- helpers --------------------------------------------------------------- */

/* A temporary file name (not created), NUL-ended in buf. */
static void temp_path(char *buf, size_t cap, const char *what)
{
    const char *dir = getenv("TMPDIR");
    snprintf(buf, cap, "%s/sl-observe-%d-%s.json", dir ? dir : "/tmp",
             (int)getpid(), what);
}

/* The whole of a file, NUL-ended (NULL if it cannot be read); free it. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 65536;
            char *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        size_t k = fread(buf + n, 1, 4096, f);
        n += k;
        if (k == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* How often `what` occurs in s. (By hand: the sanitizers' strstr and
 * memmem check the whole rest at every call, quadratic over a trace of a
 * few megabytes.) */
static int count(const char *s, const char *what)
{
    int n = 0;
    size_t len = strlen(what);
    for (const char *p = s; *p; p++) {
        size_t i = 0;
        while (i < len && p[i] == what[i])
            i++;
        if (i == len) {
            n++;
            p += len - 1;
        }
    }
    return n;
}

/* ---- the schedule callback -------------------------------------------------- */

/* What the callbacks saw, as text: a schedule callback appends "P>N "
 * (names' first letters, '-' for NULL: a worker's idle loop), a channel
 * callback "name:s|r:block|go ". */
static char seen[4096];
static int nseen, nswitches;

static char letter(sl_tasklet *t)
{
    if (!t)
        return '-';
    if (t == sl_main())
        return 'm';
    const char *n = sl_tasklet_name(t);
    return n && n[0] ? n[0] : '?';
}

static void seen_add(const char *s)
{
    size_t len = strlen(s);
    if (nseen + len + 1 < sizeof seen) {
        memcpy(seen + nseen, s, len + 1);
        nseen += (int)len;
    }
}

static void log_switch(sl_tasklet *prev, sl_tasklet *next)
{
    char s[8] = {letter(prev), '>', letter(next), ' ', '\0'};
    seen_add(s);
    __atomic_add_fetch(&nswitches, 1, __ATOMIC_RELAXED);
}

static void yield_once(void *arg)
{
    (void)arg;
    TU_EQ(sl_schedule(), 0);
}

static sl_tasklet *spawn_named(sl_fn fn, void *arg, const char *name)
{
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.name = name;
    sl_tasklet *t = sl_spawn_ex(&a, fn, arg);
    CU_ASSERT_PTR_NOT_NULL(t);
    return t;
}

static void seen_reset(void)
{
    seen[0] = '\0';
    nseen = 0;
    nswitches = 0;
}

TU_TEST(schedule_callback_sees_every_switch_before_it_happens)
{
    TU_ONE_WORKER_ONLY(); /* the exact order is one worker's */
    seen_reset();
    spawn_named(yield_once, NULL, "a");
    spawn_named(yield_once, NULL, "b");
    CU_ASSERT_PTR_NULL(sl_set_schedule_callback(log_switch));
    TU_EQ(sl_run(), 0);
    CU_ASSERT_PTR_EQUAL(sl_set_schedule_callback(NULL), log_switch);
    /* main pauses in sl_run; a yields to b, b to a; a ends (prev is the
     * tasklet that ends), then b, and main runs again. */
    CU_ASSERT_STRING_EQUAL(seen, "m>a a>b b>a a>b b>m ");
}

static sl_tasklet *cb_current;
static void note_current(sl_tasklet *prev, sl_tasklet *next)
{
    (void)prev;
    (void)next;
    if (!cb_current) /* the first switch: main to a */
        cb_current = sl_current();
}

TU_TEST(schedule_callback_runs_with_next_already_current)
{
    TU_ONE_WORKER_ONLY();
    sl_tasklet *a = spawn_named(yield_once, NULL, "a");
    sl_set_schedule_callback(note_current);
    TU_EQ(sl_schedule(), 0); /* main -> a */
    sl_set_schedule_callback(NULL);
    CU_ASSERT_PTR_EQUAL(cb_current, a); /* docs/trace.md says so */
    TU_EQ(sl_run(), 0);
}

TU_TEST(schedule_callback_off_sees_nothing_more)
{
    seen_reset();
    sl_set_schedule_callback(log_switch);
    CU_ASSERT_PTR_EQUAL(sl_get_schedule_callback(), log_switch);
    CU_ASSERT_PTR_EQUAL(sl_set_schedule_callback(NULL), log_switch);
    CU_ASSERT_PTR_NULL(sl_get_schedule_callback());
    spawn_named(yield_once, NULL, "a");
    TU_EQ(sl_run(), 0);
    TU_EQ(nswitches, 0);
}

static void count_switch(sl_tasklet *prev, sl_tasklet *next)
{
    (void)prev;
    (void)next;
    __atomic_add_fetch(&nswitches, 1, __ATOMIC_RELAXED);
}

/* Set before sl_init, it sees the runtime's switches; switches on every
 * worker when there are several (each worker calls it: it counts
 * atomically). */
TU_TEST_NOINIT(schedule_callback_set_before_the_runtime_starts)
{
    seen_reset();
    sl_set_schedule_callback(count_switch);
    sl_config c;
    sl_config_init(&c);
    c.workers = tu_workers();
    TU_EQ(sl_init(&c), 0);
    for (int i = 0; i < 20; i++)
        spawn_named(yield_once, NULL, "t");
    TU_EQ(sl_run(), 0);
    sl_set_schedule_callback(NULL);
    TU_EQ(sl_shutdown(), 0);
    /* Each of the 20 ran twice (a yield) and ended: at least 40 switches
     * to them, wherever they ran. */
    CU_ASSERT(__atomic_load_n(&nswitches, __ATOMIC_RELAXED) >= 40);
}

/* ---- the channel callback ---------------------------------------------------- */

static void log_channel(sl_channel *ch, sl_tasklet *t, bool sending,
                        bool willblock)
{
    (void)ch;
    char s[16];
    snprintf(s, sizeof s, "%c:%c:%s ", letter(t), sending ? 's' : 'r',
             willblock ? "block" : "go");
    seen_add(s);
}

static void receive_one(void *ch)
{
    void *m;
    TU_EQ(sl_channel_receive(ch, &m), 0);
    TU_EQ(TU_INT(m), 7);
}

TU_TEST(channel_callback_sees_each_operation_first)
{
    TU_ONE_WORKER_ONLY();
    seen_reset();
    sl_channel *ch = sl_channel_new();
    spawn_named(receive_one, ch, "r");
    CU_ASSERT_PTR_NULL(sl_set_channel_callback(log_channel));
    CU_ASSERT_PTR_EQUAL(sl_get_channel_callback(), log_channel);
    TU_EQ(sl_run(), 0);                       /* r blocks: nobody sends */
    TU_EQ(sl_channel_send(ch, TU_MSG(7)), 0); /* r waits: goes through */
    void *m;
    TU_EQ(sl_channel_try_receive(ch, &m), SL_EWOULDBLOCK);
    CU_ASSERT_PTR_EQUAL(sl_set_channel_callback(NULL), log_channel);
    CU_ASSERT_STRING_EQUAL(seen, "r:r:block m:s:go m:r:block ");
    TU_EQ(sl_channel_free(ch), 0);
}

TU_TEST(channel_callback_says_a_buffered_send_with_room_goes_through)
{
    seen_reset();
    sl_channel *ch = sl_channel_new_buffered(1);
    sl_set_channel_callback(log_channel);
    TU_EQ(sl_channel_try_send(ch, TU_MSG(1)), 0);
    TU_EQ(sl_channel_try_send(ch, TU_MSG(2)), SL_EWOULDBLOCK);
    void *m;
    TU_EQ(sl_channel_receive(ch, &m), 0);
    sl_set_channel_callback(NULL);
    CU_ASSERT_STRING_EQUAL(seen, "m:s:go m:s:block m:r:go ");
    TU_EQ(sl_channel_free(ch), 0);
}

/* ---- what a callback may not do ------------------------------------------------ */

static int inner_rc;
static sl_channel *inner_ch;

static void channel_from_channel_cb(sl_channel *ch, sl_tasklet *t,
                                    bool sending, bool willblock)
{
    (void)ch;
    (void)t;
    (void)sending;
    (void)willblock;
    __atomic_store_n(&inner_rc, sl_channel_try_send(inner_ch, TU_MSG(1)),
                     __ATOMIC_RELAXED);
}

static void channel_from_schedule_cb(sl_tasklet *prev, sl_tasklet *next)
{
    (void)prev;
    (void)next;
    __atomic_store_n(&inner_rc, sl_channel_try_send(inner_ch, TU_MSG(1)),
                     __ATOMIC_RELAXED);
}

TU_TEST(callbacks_may_not_use_channels)
{
    inner_ch = sl_channel_new_buffered(4);
    sl_channel *ch = sl_channel_new_buffered(1);
    inner_rc = 1;
    sl_set_channel_callback(channel_from_channel_cb);
    TU_EQ(sl_channel_try_send(ch, TU_MSG(1)), 0); /* the call itself: fine */
    sl_set_channel_callback(NULL);
    TU_EQ(inner_rc, SL_ESTATE);
    inner_rc = 1;
    sl_set_schedule_callback(channel_from_schedule_cb);
    spawn_named(yield_once, NULL, "a");
    TU_EQ(sl_run(), 0);
    sl_set_schedule_callback(NULL);
    TU_EQ(inner_rc, SL_ESTATE);
    TU_EQ(sl_channel_count(inner_ch), 0); /* nothing got in */
    TU_EQ(sl_channel_free(inner_ch), 0);
    void *m;
    TU_EQ(sl_channel_receive(ch, &m), 0);
    TU_EQ(sl_channel_free(ch), 0);
}

static void switching_cb(sl_tasklet *prev, sl_tasklet *next)
{
    (void)prev;
    (void)next;
    sl_schedule(); /* not allowed: aborts */
}

static void switch_in_callback_child(void *arg)
{
    (void)arg;
    if (sl_init(NULL) != 0)
        _exit(3);
    spawn_named(yield_once, NULL, "a");
    spawn_named(yield_once, NULL, "b");
    sl_set_schedule_callback(switching_cb);
    sl_run();
    _exit(4); /* not reached */
}

TU_TEST_NOINIT(a_callback_that_switches_is_stopped_with_a_message)
{
    char err[2048];
    int st = tu_child_stderr(switch_in_callback_child, NULL, err, sizeof err);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "callbacks may not"));
}

/* ---- what a callback may call (docs/trace.md) ---------------------------------- */

#define E1 (-1001)

/* A schedule callback acting once, at the first switch it sees whose prev
 * is cbw_prev (or any, if NULL) and whose next is cbw_next (or any). */
static sl_tasklet *cbw_prev, *cbw_next;
static void (*cbw_act)(sl_tasklet *prev, sl_tasklet *next);
static int cbw_done;

static void acting_cb(sl_tasklet *prev, sl_tasklet *next)
{
    if (cbw_done || (cbw_prev && prev != cbw_prev) ||
        (cbw_next && next != cbw_next))
        return;
    cbw_done = 1; /* (once: on the worker that meets it first) */
    cbw_act(prev, next);
}

static void cbw_set(sl_tasklet *prev, sl_tasklet *next,
                    void (*act)(sl_tasklet *, sl_tasklet *))
{
    cbw_prev = prev;
    cbw_next = next;
    cbw_act = act;
    cbw_done = 0;
    sl_set_schedule_callback(acting_cb);
}

static sl_tasklet *spawn_here(sl_fn fn, void *arg)
{
    sl_tasklet *t = tu_spawn_pinned(0, fn, arg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    return t;
}

static int thr_rc[6];

static void throw_at_both(sl_tasklet *prev, sl_tasklet *next)
{
    thr_rc[0] = sl_tasklet_throw(prev, E1, 0);
    thr_rc[1] = sl_tasklet_throw(prev, E1, SL_THROW_PENDING);
    thr_rc[2] = sl_tasklet_kill(prev);
    thr_rc[3] = sl_tasklet_throw(next ? next : prev, E1, 0);
    thr_rc[4] = sl_tasklet_throw(next ? next : prev, E1, SL_THROW_PENDING);
    thr_rc[5] = sl_tasklet_throw(next ? next : prev, SL_EKILLED,
                                 SL_THROW_PENDING);
}

/* A throw or a kill from a schedule callback, at the tasklet switched
 * from (here: blocking, its switch half done) or to, is refused with
 * SL_ESTATE and changes nothing: it would wait for the switch it is
 * called from to land (several workers: forever), or switch inside it. */
TU_TEST_TIMEOUT(throw_from_a_schedule_callback_is_refused, 30)
{
    sl_channel *ch = sl_channel_new();
    sl_tasklet *a = spawn_here(receive_one, ch);
    sl_tasklet_ref(a);
    cbw_set(a, NULL, throw_at_both); /* a blocks in its receive */
    TU_EQ(sl_run(), 0);
    sl_set_schedule_callback(NULL);
    TU_EQ(cbw_done, 1);
    for (int i = 0; i < 6; i++)
        TU_EQ(thr_rc[i], SL_ESTATE);
    TU_EQ(sl_tasklet_blocked(a), true);      /* its wait goes on */
    TU_EQ(sl_channel_send(ch, TU_MSG(7)), 0); /* receive_one: 0 and 7 */
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_tasklet_alive(a), false);
    sl_tasklet_unref(a);
    TU_EQ(sl_channel_free(ch), 0);
}

static int thr_ch_rc = 1;
static void throwing_channel_cb(sl_channel *ch, sl_tasklet *t, bool sending,
                                bool willblock)
{
    (void)ch;
    (void)sending;
    (void)willblock;
    thr_ch_rc = sl_tasklet_throw(t, E1, SL_THROW_PENDING);
}

TU_TEST(throw_from_a_channel_callback_is_refused)
{
    sl_channel *ch = sl_channel_new_buffered(1);
    sl_set_channel_callback(throwing_channel_cb);
    TU_EQ(sl_channel_try_send(ch, TU_MSG(1)), 0);
    sl_set_channel_callback(NULL);
    TU_EQ(thr_ch_rc, SL_ESTATE);
    TU_EQ(sl_schedule(), 0); /* nothing pending for main */
    void *m;
    TU_EQ(sl_channel_receive(ch, &m), 0);
    TU_EQ(sl_channel_free(ch), 0);
}

/* Every call docs/trace.md lists, from a schedule callback at a switch to
 * main (the calls only main makes are refused there too). */
static struct {
    sl_tasklet *paused, *w1, *w2, *spawned;
    sl_channel *ch;
    int rc[12];
    sl_tasklet *next_w1, *queue, *next_cur;
    int atomic_old[2], named;
    int spawned_ran;
} wc;

static void note_ran(void *arg)
{
    (void)arg;
    wc.spawned_ran++;
}

static void call_everything(sl_tasklet *prev, sl_tasklet *next)
{
    (void)next;
    sl_select_case sc = {.ch = wc.ch, .op = SL_SEND,
                         .value = TU_MSG(1)};
    /* refused: SL_ESTATE */
    wc.rc[0] = sl_tasklet_run(wc.paused);
    wc.rc[1] = sl_tasklet_switch(wc.paused);
    wc.rc[2] = sl_tasklet_insert(wc.paused);
    wc.rc[3] = sl_tasklet_remove(wc.paused);
    wc.rc[4] = sl_schedule_remove();
    wc.rc[5] = sl_run_for(0, 0, NULL);
    wc.rc[6] = sl_shutdown();
    wc.rc[7] = sl_select(&sc, 1, 0);
    wc.rc[8] = sl_channel_try_send(wc.ch, TU_MSG(1));
    wc.rc[9] = sl_tasklet_kill(wc.paused);
    /* looking into a wait queue: NULL */
    wc.next_w1 = sl_tasklet_next(wc.w1);
    wc.queue = sl_channel_queue(wc.ch);
    /* works */
    wc.next_cur = sl_tasklet_next(sl_current());
    wc.spawned = sl_spawn(note_ran, NULL);
    wc.atomic_old[0] = sl_tasklet_set_atomic(wc.paused, true);
    wc.atomic_old[1] = sl_tasklet_set_atomic(wc.paused, false);
    wc.named = sl_tasklet_set_name(wc.paused, "renamed");
    (void)prev; /* (NULL with several workers: main comes from idle) */
    sl_tasklet_ref(wc.w1);
    sl_tasklet_unref(wc.w1);
    wc.rc[10] = sl_tasklet_id(wc.w1) > 0;
    wc.rc[11] = sl_tasklet_alive(wc.w1);
}

static void receive_any(void *ch)
{
    void *m;
    TU_EQ(sl_channel_receive(ch, &m), 0);
}

TU_TEST_TIMEOUT(what_a_schedule_callback_may_call, 30)
{
    memset(&wc, 0, sizeof wc);
    wc.ch = sl_channel_new();
    sl_spawn_attr at;
    sl_spawn_attr_init(&at);
    at.worker = 0;
    at.paused = 1;
    wc.paused = sl_spawn_ex(&at, note_ran, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(wc.paused);
    wc.w1 = spawn_here(receive_any, wc.ch);
    wc.w2 = spawn_here(receive_any, wc.ch);
    TU_EQ(sl_run(), 0); /* both wait on ch now */
    TU_EQ(sl_tasklet_next(wc.w1), wc.w2);
    TU_EQ(sl_channel_queue(wc.ch), wc.w1);
    sl_tasklet *a = spawn_here(yield_once, NULL);
    cbw_set(NULL, sl_main(), call_everything); /* back to main */
    TU_EQ(sl_run(), 0);
    sl_set_schedule_callback(NULL);
    (void)a;
    TU_EQ(cbw_done, 1);
    for (int i = 0; i < 10; i++) {
        if (!TU_EQ(wc.rc[i], SL_ESTATE))
            fprintf(stderr, "  (call %d)\n", i);
    }
    TU_EQ(wc.rc[10], 1);
    TU_EQ(wc.rc[11], 1);
    CU_ASSERT_PTR_NULL(wc.next_w1);
    CU_ASSERT_PTR_NULL(wc.queue);
    CU_ASSERT_PTR_NOT_NULL(wc.next_cur); /* main, in our run queue */
    CU_ASSERT_PTR_NOT_NULL(wc.spawned);
    TU_EQ(wc.atomic_old[0], 0);
    TU_EQ(wc.atomic_old[1], 1);
    TU_EQ(wc.named, 0);
    CU_ASSERT_STRING_EQUAL(sl_tasklet_name(wc.paused), "renamed");
    /* Nothing the refused calls would have done happened: the paused
     * tasklet is still paused, the waiters still wait, in order. */
    TU_ASSERT_STATE(wc.paused, true, false, false, true);
    TU_EQ(sl_tasklet_next(wc.w1), wc.w2);
    TU_EQ(sl_channel_queue(wc.ch), wc.w1);
    TU_EQ(sl_run(), 0); /* the tasklet spawned from the callback runs */
    TU_EQ(wc.spawned_ran, 1);
    TU_EQ(sl_tasklet_kill(wc.paused), 0);
    TU_EQ(wc.spawned_ran, 1); /* (killed before it ever ran) */
    TU_EQ(sl_channel_send(wc.ch, TU_MSG(1)), 0);
    TU_EQ(sl_channel_send(wc.ch, TU_MSG(2)), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_channel_free(wc.ch), 0);
}

/* Calls that switch, or use a sync object, abort from a callback. */
static void schedule_alone_cb(sl_tasklet *prev, sl_tasklet *next)
{
    (void)prev;
    if (next == sl_main())
        sl_schedule(); /* main alone: it would not even switch */
}

static sl_event cb_event;
static void sync_cb(sl_tasklet *prev, sl_tasklet *next)
{
    (void)prev;
    (void)next;
    sl_event_set(&cb_event);
}

static void abort_child(void *arg)
{
    if (sl_init(NULL) != 0)
        _exit(3);
    sl_event_init(&cb_event);
    spawn_named(yield_once, NULL, "a");
    sl_set_schedule_callback((sl_schedule_cb)arg);
    sl_run();
    _exit(4); /* not reached */
}

TU_TEST_NOINIT(callbacks_that_schedule_alone_or_use_a_sync_object_abort)
{
    sl_schedule_cb cbs[] = {schedule_alone_cb, sync_cb};
    for (int i = 0; i < 2; i++) {
        char err[2048];
        int st = tu_child_stderr(abort_child, (void *)cbs[i], err, sizeof err);
        CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "callbacks may not"));
    }
}

/* ---- the trace: the API --------------------------------------------------------- */

TU_TEST_NOINIT(trace_needs_a_runtime)
{
    char path[256];
    temp_path(path, sizeof path, "noinit");
    TU_EQ(sl_trace_start(path), SL_ESTATE);
    TU_EQ(sl_trace_stop(), SL_ESTATE);
    CU_ASSERT(access(path, F_OK) != 0); /* nothing made */
}

TU_TEST(trace_start_and_stop_errors)
{
    TU_EQ(sl_trace_start(NULL), SL_EINVAL);
    TU_EQ(sl_trace_stop(), SL_ESTATE); /* none running */
    TU_EQ(sl_trace_start("/nonexistent-dir/x/trace.json"), -ENOENT);
    char path[256];
    temp_path(path, sizeof path, "errors");
    TU_EQ(sl_trace_start(path), 0);
    TU_EQ(sl_trace_start(path), SL_ESTATE); /* one at a time */
    TU_EQ(sl_trace_stop(), 0);
    TU_EQ(sl_trace_stop(), SL_ESTATE);
    unlink(path);
}

static void ping_n(void *ch)
{
    for (int i = 0; i < 50; i++)
        TU_EQ(sl_channel_send(ch, TU_MSG(i)), 0);
}

static void pong_n(void *ch)
{
    void *m;
    for (int i = 0; i < 50; i++) {
        TU_EQ(sl_channel_receive(ch, &m), 0);
        TU_EQ(TU_INT(m), i);
    }
}

/* Run 50 messages between two named tasklets. */
static void fifty_messages(void)
{
    sl_channel *ch = sl_channel_new();
    spawn_named(ping_n, ch, "ping");
    spawn_named(pong_n, ch, "pong");
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_channel_free(ch), 0);
}

/* A trace file holds the events of the program traced: the array closed,
 * each spawn, both names, a flow's start for every end, the raw file
 * gone. */
static void check_trace_file(const char *path)
{
    char *j = slurp(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT(strncmp(j, "[\n", 2) == 0);
    size_t n = strlen(j);
    CU_ASSERT(n > 3 && strcmp(j + n - 3, "\n]\n") == 0);
    TU_EQ(count(j, "\"name\":\"spawn\""), 2);
    TU_EQ(count(j, "\"name\":\"end\""), 2);
    CU_ASSERT(count(j, "\"name\":\"ping #") > 0);
    CU_ASSERT(count(j, "\"name\":\"pong #") > 0);
    /* 50 hand-overs, each a wake with a flow to the woken one's slice. */
    TU_EQ(count(j, "\"name\":\"wake\",\"args\""), 50);
    TU_EQ(count(j, "\"ph\":\"s\""), 50);
    TU_EQ(count(j, "\"ph\":\"f\""), 50);
    free(j);
    char raw[300];
    snprintf(raw, sizeof raw, "%s.raw", path);
    CU_ASSERT(access(raw, F_OK) != 0);
}

TU_TEST(trace_holds_the_events_of_the_program)
{
    char path[256];
    temp_path(path, sizeof path, "events");
    TU_EQ(sl_trace_start(path), 0);
    fifty_messages();
    TU_EQ(sl_trace_stop(), 0);
    check_trace_file(path);
    unlink(path);
}

/* A gap longer than a record's tick delta holds (2^22 ticks, about 1.4 ms
 * at 3 GHz) is carried by a TIME record (sched/trace.h): "long" runs 30
 * ms without a switch between two yields to "short"; its slice lasts at
 * least that long in the JSON (and no longer than the whole run). */
static void long_runner(void *arg)
{
    (void)arg;
    TU_EQ(sl_schedule(), 0);
    int64_t end = tu_now_ns() + 30 * 1000000;
    while (tu_now_ns() < end)
        ;
    TU_EQ(sl_schedule(), 0);
}

static void short_runner(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        TU_EQ(sl_schedule(), 0);
}

/* The largest "dur" of a slice whose name starts with `name`
 * (microseconds; -1: none). */
static double longest_slice(const char *j, const char *name)
{
    double best = -1;
    for (const char *p = j; (p = strstr(p, "\"ph\":\"X\"")); p++) {
        const char *d = strstr(p, "\"dur\":");
        const char *nm = strstr(p, "\"name\":\"");
        if (!d || !nm)
            break;
        double dur = atof(d + 6);
        if (strncmp(nm + 8, name, strlen(name)) == 0 && dur > best)
            best = dur;
    }
    return best;
}

TU_TEST(a_gap_longer_than_a_tick_delta_keeps_its_time)
{
    char path[256];
    temp_path(path, sizeof path, "gap");
    TU_EQ(sl_trace_start(path), 0);
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.name = "long";
    a.worker = 0;
    CU_ASSERT_PTR_NOT_NULL_FATAL(sl_spawn_ex(&a, long_runner, NULL));
    a.name = "short";
    CU_ASSERT_PTR_NOT_NULL_FATAL(sl_spawn_ex(&a, short_runner, NULL));
    int64_t t0 = tu_now_ns();
    TU_EQ(sl_run(), 0);
    double run_us = (double)(tu_now_ns() - t0) / 1000;
    TU_EQ(sl_trace_stop(), 0);
    char *j = slurp(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    double dur = longest_slice(j, "long #");
    CU_ASSERT(dur >= 29900);   /* its 30 ms */
    CU_ASSERT(dur <= run_us);  /* (and not more than the whole run) */
    free(j);
    unlink(path);
}

TU_TEST(a_second_trace_holds_only_its_own_events)
{
    char p1[256], p2[256];
    temp_path(p1, sizeof p1, "first");
    temp_path(p2, sizeof p2, "second");
    TU_EQ(sl_trace_start(p1), 0);
    fifty_messages();
    TU_EQ(sl_trace_stop(), 0);
    fifty_messages(); /* not traced */
    TU_EQ(sl_trace_start(p2), 0);
    fifty_messages();
    TU_EQ(sl_trace_stop(), 0);
    check_trace_file(p1);
    check_trace_file(p2);
    unlink(p1);
    unlink(p2);
}

/* A child that traces fifty messages and ends without sl_trace_stop: by
 * sl_shutdown, by exit(), or with SL_TRACE and sl_shutdown (a program that
 * does not know it is traced). Each must leave the whole trace. */
enum { BY_SHUTDOWN, BY_EXIT, BY_ENV };
struct trace_child {
    const char *path;
    int how;
};

static void trace_child(void *arg)
{
    const struct trace_child *c = arg;
    if (c->how == BY_ENV)
        setenv("SL_TRACE", c->path, 1);
    if (sl_init(NULL) != 0)
        _exit(3);
    if (c->how != BY_ENV && sl_trace_start(c->path) != 0)
        _exit(4);
    fifty_messages();
    if (c->how == BY_EXIT)
        exit(0);
    _exit(sl_shutdown() == 0 ? 0 : 5);
}

TU_TEST_NOINIT(trace_finished_by_shutdown_exit_and_from_the_environment)
{
    static const char *names[] = {"shutdown", "exit", "env"};
    for (int how = BY_SHUTDOWN; how <= BY_ENV; how++) {
        char path[256], err[1024];
        temp_path(path, sizeof path, names[how]);
        struct trace_child c = {path, how};
        int st = tu_child_stderr(trace_child, &c, err, sizeof err);
        CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        check_trace_file(path);
        unlink(path);
    }
}

/* ---- the trace: a crash --------------------------------------------------------- */

/* BUF_RECS: the most records a worker's buffer holds (sched/trace.c's
 * TB_WORDS, 256 KiB, over the smallest record: a word), what a crash may
 * lose; the run writes several buffers before it dies. */
enum { CRASH_YIELDS = 50000, BUF_RECS = (256 << 10) / 8 };

static void yield_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < CRASH_YIELDS; i++)
        sl_schedule();
}

static void trace_then_abort_child(void *path)
{
    sl_config c;
    sl_config_init(&c); /* one worker: every record on one track */
    if (sl_init(&c) != 0)
        _exit(3);
    if (sl_trace_start(path) != 0)
        _exit(4);
    spawn_named(yield_many, NULL, "a");
    spawn_named(yield_many, NULL, "b");
    sl_run();
    signal(SIGABRT, SIG_DFL);
    abort(); /* no stop, no exit: only what the workers wrote */
}

/* A program that dies loses at most the buffer each worker was filling
 * (BUF_RECS records): the raw file converts to the rest. */
TU_TEST_NOINIT(a_crash_loses_at_most_the_last_buffer)
{
    char path[256], raw[300], json[300], err[1024];
    temp_path(path, sizeof path, "crash");
    snprintf(raw, sizeof raw, "%s.raw", path);
    snprintf(json, sizeof json, "%s.rescued", path);
    int st = tu_child_stderr(trace_then_abort_child, path, err, sizeof err);
    CU_ASSERT_FATAL(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    int in = open(raw, O_RDONLY);
    int out = open(json, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(in >= 0 && out >= 0);
    TU_EQ(sl__trace_convert(in, out), 0);
    close(in);
    close(out);
    char *j = slurp(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    /* 2 x CRASH_YIELDS yields and the ends: 2 x CRASH_YIELDS + 3
     * switches, each one slice and one record: at most BUF_RECS records
     * lost, so at most that many slices fewer. */
    int all = 2 * CRASH_YIELDS + 3;
    int slices = count(j, "\"ph\":\"X\"");
    CU_ASSERT(slices >= all - BUF_RECS && slices <= all + 1); /* (+ main's,
                                                    closed at the end) */
    size_t n = strlen(j);
    CU_ASSERT(n > 3 && strcmp(j + n - 3, "\n]\n") == 0);
    free(j);
    unlink(raw);
    unlink(json);
    unlink(path);
}

TU_TEST_NOINIT(a_file_that_is_no_trace_is_refused)
{
    char path[256];
    temp_path(path, sizeof path, "bogus");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(fd >= 0);
    TU_EQ(write(fd, "not a trace at all, not even close", 34), 34);
    TU_EQ(lseek(fd, 0, SEEK_SET), 0);
    int out = open("/dev/null", O_WRONLY);
    TU_EQ(sl__trace_convert(fd, out), SL_EINVAL);
    close(out);
    close(fd);
    unlink(path);
}

/* A raw file written by hand, as sched/trace.h lays it out, with every
 * escape a writer may need: ids past 2^32 (IDHI), a gap too long for dt
 * (TIME), an address far from the last (a wait word's FAR bit), a flow
 * by id and by "the latest". The JSON says what the records say. */
enum { R_SWITCH = 1, R_WAKE, R_SPAWN, R_KILL, R_NAME, R_START, R_STOP,
       R_TIME, R_IDHI };
static uint64_t rec_word(unsigned kind, unsigned flags, uint64_t dt,
                         uint64_t id)
{
    return kind | flags << 4 | dt << 10 | (id & 0xffffffffu) << 32;
}

TU_TEST_NOINIT(a_raw_file_with_every_escape_converts)
{
    char path[256], json[300];
    temp_path(path, sizeof path, "escapes");
    snprintf(json, sizeof json, "%s.out", path);
    struct {
        char magic[8];
        uint32_t nworkers;
        int32_t pid;
        uint32_t use_ticks, pad;
        int64_t ns0;
        uint64_t tick0;
        char comm[32];
    } head = {"SLTRACE2", 1, 4242, 0, 0, 0, 0, "escapes"};
    uint64_t w[64];
    int n = 0;
    const uint64_t far = 0x7f00deadbee0ull, near = far - 0x40;
    w[n++] = rec_word(R_START, 0, 0, 5);         /* at 0 ns, #5 runs */
    w[n++] = rec_word(R_NAME, 0, 10, 5);
    memcpy(&w[n], "five\0\0\0\0" "\0\0\0\0\0\0\0\0" "\0\0\0\0\0\0\0\0"
                  "\0\0\0\0\0\0\0\0", 32);
    n += 4;
    w[n++] = R_IDHI | (uint64_t)1 << 32;       /* ids 2^32 + ... from here */
    w[n++] = rec_word(R_SPAWN, 0, 10, 7);       /* #4294967303 at 20 ns */
    w[n++] = R_TIME;                            /* a gap: 10 ms */
    w[n++] = 10000000;
    /* A wake of #4294967303 by a send on a far channel (a flow), at 10 ms
     * + 100 ns; the switch to it 100 ns later takes "the latest" flow. */
    w[n++] = rec_word(R_WAKE, 1 /* SEND */, 100, 7);
    w[n++] = 0x20 | (uint64_t)0 << 8;          /* FAR: the address follows */
    w[n++] = far;
    w[n++] = rec_word(R_SWITCH, 0 /* yield */ | 2 << 2 /* latest flow */,
                      100, 7);
    /* #4294967303 blocks receiving on a channel near the last (its
     * difference coded in the wait word) and the idle context runs. */
    w[n++] = rec_word(R_SWITCH, 1 /* block */ | 0x20 /* to idle */, 100, 0);
    w[n++] = 0 /* channel */ | (uint64_t)0xff << 8 |
             (uint64_t)(near - far) << 24;
    w[n++] = rec_word(R_STOP, 0, 1000, (uint64_t)1 << 32);
    struct {
        uint32_t magic;
        int32_t worker;
        uint32_t n, pad;
        uint64_t tick;
        int64_t ns;
    } chunk = {0x4b43534cu, 0, (uint32_t)n, 0, 0, 0};
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(fd >= 0);
    TU_EQ(write(fd, &head, sizeof head), (ssize_t)sizeof head);
    TU_EQ(write(fd, &chunk, sizeof chunk), (ssize_t)sizeof chunk);
    TU_EQ(write(fd, w, (size_t)n * 8), (ssize_t)n * 8);
    TU_EQ(lseek(fd, 0, SEEK_SET), 0);
    int out = open(json, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(out >= 0);
    TU_EQ(sl__trace_convert(fd, out), 0);
    close(out);
    close(fd);
    char *j = slurp(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    /* #5's slice runs to the wake's switch at 10 ms + 200 ns. */
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"ts\":0.000,\"ph\":\"X\",\"dur\":10000.200,"
                                     "\"name\":\"five #5\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"name\":\"spawn\",\"args\":{\"id\":"
                                     "4294967303}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"by\":\"send\",\"ch\":\"0x7f00deadbee0\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"op\":\"receive\",\"ch\":"
                                     "\"0x7f00deadbea0\""));
    /* The flow starts at the wake and ends in #4294967303's slice. */
    TU_EQ(count(j, "\"ph\":\"s\""), 1);
    TU_EQ(count(j, "\"ph\":\"f\""), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"ts\":10000.200,\"ph\":\"X\",\"dur\":0.100,"
                                     "\"name\":\"#4294967303\""));
    free(j);
    unlink(path);
    unlink(json);
}

/* ---- the SIGQUIT dump --------------------------------------------------------- */

static void sigquit_child(void *arg)
{
    if (arg)
        setenv("SL_DUMP_SIGQUIT", "1", 1);
    struct rlimit no_core = {0, 0}; /* SIGQUIT's default dumps core */
    setrlimit(RLIMIT_CORE, &no_core);
    if (sl_init(NULL) != 0)
        _exit(3);
    sl_channel *ch = sl_channel_new();
    spawn_named(receive_one, ch, "stuck-one");
    spawn_named(receive_one, ch, "stuck-two");
    sl_run();
    raise(SIGQUIT);
    /* The dump goes on with the program: both still wait. */
    sl_channel_send(ch, TU_MSG(7));
    sl_channel_send(ch, TU_MSG(7));
    _exit(sl_getlivecount() == 0 && sl_shutdown() == 0 ? 0 : 5);
}

TU_TEST_NOINIT(sigquit_dumps_every_tasklet_when_asked)
{
    char err[4096];
    int st = tu_child_stderr(sigquit_child, "on", err, sizeof err);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "stackless: SIGQUIT: 2 live tasklet(s)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "stuck-one"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "stuck-two"));
    TU_EQ(count(err, "blocked-receive"), 2);
}

TU_TEST_NOINIT(sigquit_is_left_alone_unless_asked)
{
    char err[1024];
    int st = tu_child_stderr(sigquit_child, NULL, err, sizeof err);
    CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGQUIT);
    CU_ASSERT_PTR_NULL(strstr(err, "stackless: SIGQUIT"));
}

/* ---- the review of issue 16's trace (review3) ---------------------------- */

/* Traces started and stopped again and again while tasklets on two workers
 * meet on a channel. Found by ThreadSanitizer (2 of 2 runs): sl_trace_start
 * reset each worker's busy mark with a plain store (sched/trace.c, the
 * slot loop of sl_trace_start) while a worker that had seen the trace bit
 * of the previous session still set (sl__obs_tracing is a relaxed peek)
 * was marking itself busy in append_begin. Beyond the report: the start's
 * 0 can overwrite that worker's 1 before it reads `on` (now 1) and
 * appends, so a following sl_trace_stop finds it not busy, writes and
 * frees the buffer it is appending to. */
static int tt_stop;

static void tt_ping(void *arg)
{
    sl_channel *ch = arg;
    while (!__atomic_load_n(&tt_stop, __ATOMIC_ACQUIRE)) {
        if (sl_channel_send_timeout(ch, TU_MSG(1), 5) == SL_EKILLED)
            return;
        if (sl_schedule() == SL_EKILLED)
            return;
    }
}

static void tt_pong(void *arg)
{
    sl_channel *ch = arg;
    while (!__atomic_load_n(&tt_stop, __ATOMIC_ACQUIRE)) {
        void *m;
        if (sl_channel_receive_timeout(ch, &m, 5) == SL_EKILLED)
            return;
    }
}

TU_TEST_TIMEOUT(traces_started_and_stopped_while_two_workers_record, 120)
{
    TU_MULTI_WORKER_ONLY();
    tt_stop = 0;
    sl_channel *ch = sl_channel_new();
    sl_tasklet *ts[4];
    for (int i = 0; i < 4; i++) {
        sl_spawn_attr a;
        sl_spawn_attr_init(&a);
        a.worker = i % 2;
        ts[i] = sl_spawn_ex(&a, i < 2 ? tt_ping : tt_pong, ch);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ts[i]);
        sl_tasklet_ref(ts[i]);
    }
    char path[] = "/tmp/sl_trace_restartXXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    char raw[sizeof path + 4];
    snprintf(raw, sizeof raw, "%s.raw", path);
    for (int r = 0; r < 30; r++) {
        TU_EQ(sl_trace_start(path), 0);
        for (int i = 0; i < 3; i++)
            TU_EQ(sl_sleep_ms(1), 0);
        TU_EQ(sl_trace_stop(), 0);
    }
    __atomic_store_n(&tt_stop, 1, __ATOMIC_RELEASE);
    TU_EQ(sl_run(), 0);
    for (int i = 0; i < 4; i++) {
        TU_EQ(sl_tasklet_alive(ts[i]), false);
        sl_tasklet_unref(ts[i]);
    }
    TU_EQ(sl_channel_free(ch), 0);
    unlink(path);
    unlink(raw);
}

/* A tasklet blocked in a receive with no timeout is killed, another is
 * thrown at: each one's wake in the trace says a kill (or throw) ended its
 * wait, and the program has no timer, so no wake says "timeout". Before
 * the fix both said "timeout": sl__obs_wait_end (sched/trace.c) maps
 * SL_EKILLED to the kill cause, but a throw or kill now ends a wait with
 * SL__EPENDING (sched.c, sl_tasklet_throw; worker.c, sl__post_switch),
 * which fell through to SL_OBS_TIMER. */
static void tk_receive(void *arg)
{
    void *m;
    int rc = sl_channel_receive(arg, &m);
    CU_ASSERT(rc == SL_EKILLED || rc == -77);
}

TU_TEST(trace_says_a_kill_or_throw_ended_a_wait_not_a_timeout)
{
    char path[256];
    temp_path(path, sizeof path, "killwake");
    sl_channel *ch = sl_channel_new();
    sl_tasklet *a = sl_spawn(tk_receive, ch);
    sl_tasklet *b = sl_spawn(tk_receive, ch);
    sl_tasklet_ref(a);
    sl_tasklet_ref(b);
    TU_EQ(sl_trace_start(path), 0);
    TU_EQ(sl_run(), 0); /* both block */
    TU_EQ(sl_tasklet_blocked(a), true);
    TU_EQ(sl_tasklet_blocked(b), true);
    TU_EQ(sl_tasklet_kill(a), 0);
    TU_EQ(sl_tasklet_throw(b, -77, 0), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_trace_stop(), 0);
    TU_EQ(sl_tasklet_alive(a), false);
    TU_EQ(sl_tasklet_alive(b), false);
    sl_tasklet_unref(a);
    sl_tasklet_unref(b);
    char *s = slurp(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    TU_EQ(count(s, "\"by\":\"timeout\""), 0);
    TU_EQ(count(s, "\"by\":\"kill\""), 2);
    free(s);
    unlink(path);
    TU_EQ(sl_channel_free(ch), 0);
}

/* A tasklet waits until a pipe is readable; the trace's io event names
 * the pipe's descriptor (a number no events mask can be). Before the fix
 * it named the ready events instead ("fd":1 for readable):
 * sl__wait_claimed_end (sched/wait.c) stores the result (the events) in
 * t->wait.result, where sl_wait_fd keeps the descriptor, before it calls
 * sl__obs_wait_end (sched/trace.c), which reads the descriptor there. */
static void tk_wait_fd(void *arg)
{
    TU_EQ(sl_wait_fd(*(int *)arg, SL_READABLE, -1), SL_READABLE);
}

TU_TEST(trace_io_event_names_the_descriptor)
{
    char path[256];
    temp_path(path, sizeof path, "iofd");
    int p[2];
    TU_EQ(pipe(p), 0);
    int fd = fcntl(p[0], F_DUPFD_CLOEXEC, 40);
    CU_ASSERT_FATAL(fd >= 40);
    sl_spawn(tk_wait_fd, &fd);
    TU_EQ(sl_trace_start(path), 0);
    TU_EQ(sl_schedule(), 0); /* it starts waiting */
    TU_EQ((int)write(p[1], "x", 1), 1);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_trace_stop(), 0);
    char *s = slurp(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    TU_EQ(count(s, "\"name\":\"io\""), 1);
    const char *io = strstr(s, "\"name\":\"io\"");
    const char *f = io ? strstr(io, "\"fd\":") : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    TU_EQ(atoi(f + 5), fd); /* before the fix: 1, the events */
    free(s);
    unlink(path);
    close(fd);
    close(p[0]);
    close(p[1]);
}

/* ---- the review of today's trace (review4) ------------------------------- */

/* A channel hand-over on worker 1 while worker 0's sl_trace_start is
 * between turning the trace on (sl__observe) and setting the workers'
 * SL_JS_OBSERVE bits (sl__obs_jump_bits, stopped there at its lock by the
 * test hook). The wake recorded the switch to the receiver with itself
 * (a fold: w->trace_skip) but the switch was not watched, so nothing
 * cleared trace_skip; the receiver's next switch in, a yield back to it
 * once the trace is fully on, was then skipped: its slice was missing
 * from the trace: the sender's slice it ended was given to the
 * receiver instead (worker 1's last slices rcv, rcv, snd, not snd, rcv,
 * snd). */
static int fw_ready, fw_started;

static void fw_receiver(void *ch)
{
    void *m;
    TU_EQ(sl_channel_receive(ch, &m), 0);
    TU_EQ(sl_channel_receive(ch, &m), 0);
    tu_hook_release(); /* the start goes on */
    CU_ASSERT(tu_spin_until(&fw_started, 10000));
    TU_EQ(sl_schedule(), 0); /* to the sender: recorded */
}

static void fw_sender(void *ch)
{
    tu_st(&fw_ready, 1);
    CU_ASSERT(tu_hook_wait_reached(10000)); /* the start is in its window */
    /* Receiver preferred: it runs now, twice (the first wake's address
     * is far from the track's start: recorded apart; the second folds). */
    TU_EQ(sl_channel_send(ch, TU_MSG(1)), 0);
    TU_EQ(sl_channel_send(ch, TU_MSG(2)), 0);
    TU_EQ(sl_schedule(), 0); /* back to the receiver: its second slice */
}

TU_TEST_TIMEOUT(a_hand_over_while_the_trace_starts_loses_no_switch, 60)
{
    TU_MULTI_WORKER_ONLY();
    char path[256];
    temp_path(path, sizeof path, "fold_window");
    /* How many mutex locks sl_trace_start takes: the last is the one of
     * sl__obs_jump_bits. */
    tu_hook_count_start(TU_HOOK_PTHREAD_MUTEX_LOCK, tu_tid());
    TU_EQ(sl_trace_start(path), 0);
    int nlocks = tu_hook_count();
    tu_hook_disarm();
    TU_EQ(sl_trace_stop(), 0);
    CU_ASSERT_FATAL(nlocks >= 2);
    fw_ready = fw_started = 0;
    sl_channel *ch = sl_channel_new();
    sl_tasklet *r = tu_spawn_pinned(1, fw_receiver, ch);
    sl_tasklet *s = tu_spawn_pinned(1, fw_sender, ch);
    TU_EQ(sl_tasklet_set_name(r, "rcv"), 0);
    TU_EQ(sl_tasklet_set_name(s, "snd"), 0);
    CU_ASSERT_FATAL(tu_spin_until(&fw_ready, 10000));
    tu_hook_arm(TU_HOOK_PTHREAD_MUTEX_LOCK, tu_tid(), nlocks - 1);
    TU_EQ(sl_trace_start(path), 0);
    tu_st(&fw_started, 1);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_trace_stop(), 0);
    TU_EQ(sl_channel_free(ch), 0);
    char *j = slurp(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    /* Worker 1's slices in order, a letter each. Nothing is recorded
     * before every switch is watched (sl_trace_start sets the workers'
     * bits before recording goes on): the trace starts with rcv running
     * (it released the start and spins), then rcv yields to snd, snd
     * yields back, rcv ends, snd ends: rcv, snd, rcv, snd. (Before the
     * fix of the start's order the first slice was given to whichever
     * tasklet ran when the start read the worker's current one.) */
    char order[64];
    size_t no = 0;
    for (char *l = strtok(j, "\n"); l && no < sizeof order - 1;
         l = strtok(NULL, "\n"))
        if (strstr(l, "\"tid\":2,") && strstr(l, "\"ph\":\"X\""))
            order[no++] = strstr(l, "\"name\":\"rcv #") ? 'r'
                          : strstr(l, "\"name\":\"snd #") ? 's'
                                                           : '?';
    order[no] = '\0';
    CU_ASSERT_STRING_EQUAL(order, "rsrs");
    /* The two hand-overs happened before recording went on: no wake of
     * theirs is in the trace (the old order recorded them, inside a slice
     * the trace gave to the tasklet they woke). */
    free(j);
    j = slurp(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    TU_EQ(count(j, "\"name\":\"wake\""), 0);
    free(j);
    unlink(path);
}

static CU_TestInfo tests[] = {
    TU_CASE(schedule_callback_sees_every_switch_before_it_happens),
    TU_CASE(schedule_callback_runs_with_next_already_current),
    TU_CASE(schedule_callback_off_sees_nothing_more),
    TU_CASE(schedule_callback_set_before_the_runtime_starts),
    TU_CASE(channel_callback_sees_each_operation_first),
    TU_CASE(channel_callback_says_a_buffered_send_with_room_goes_through),
    TU_CASE(callbacks_may_not_use_channels),
    TU_CASE(a_callback_that_switches_is_stopped_with_a_message),
    TU_CASE(throw_from_a_schedule_callback_is_refused),
    TU_CASE(throw_from_a_channel_callback_is_refused),
    TU_CASE(what_a_schedule_callback_may_call),
    TU_CASE(callbacks_that_schedule_alone_or_use_a_sync_object_abort),
    TU_CASE(trace_needs_a_runtime),
    TU_CASE(trace_start_and_stop_errors),
    TU_CASE(trace_holds_the_events_of_the_program),
    TU_CASE(a_second_trace_holds_only_its_own_events),
    TU_CASE(a_gap_longer_than_a_tick_delta_keeps_its_time),
    TU_CASE(trace_finished_by_shutdown_exit_and_from_the_environment),
    TU_CASE(a_crash_loses_at_most_the_last_buffer),
    TU_CASE(a_file_that_is_no_trace_is_refused),
    TU_CASE(a_raw_file_with_every_escape_converts),
    TU_CASE(sigquit_dumps_every_tasklet_when_asked),
    TU_CASE(sigquit_is_left_alone_unless_asked),
    /* the review of issue 16 (review3) */
    TU_CASE(traces_started_and_stopped_while_two_workers_record),
    TU_CASE(trace_says_a_kill_or_throw_ended_a_wait_not_a_timeout),
    TU_CASE(trace_io_event_names_the_descriptor),
    /* the review of today's trace (review4) */
    TU_CASE(a_hand_over_while_the_trace_starts_loses_no_switch),
    CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
    return tu_main(argc, argv, "observe", tests);
}
