/* observe.c - seeing inside: Stackless's schedule and channel callbacks,
 * the switch hook that serves them and the trace, the SIGQUIT dump, and
 * the gdb extension embedded for auto-loading. The trace's recorder and
 * writer are sched/trace.c; what the hot paths pay is in observe.h.
 *
 * A callback runs on the worker that acts, in the middle of a switch (the
 * schedule callback) or at the start of a channel operation (the channel
 * callback). It must not switch: the switch it would start could not be
 * told from the one in progress, whose queue locks may be held (M:N). So
 * each thread notes when it is inside a callback (sl__obs_in_cb), and:
 *  - calls that would change a tasklet's place or wait (throw, kill, run,
 *    switch, insert, remove, schedule_remove, a channel operation, a
 *    select, sl_run_for, sl_shutdown) look at it first and return
 *    SL_ESTATE, having done nothing;
 *  - calls that look into a wait queue (sl_tasklet_next/prev of a waiting
 *    tasklet, sl_channel_queue) return NULL: its lock may be the one the
 *    switch in progress holds;
 *  - a switch made from one aborts with a message: sl_schedule and
 *    sl_run (whose paths are too hot for a test of their own: they are
 *    caught where they switch, or in their slow branches; sl_run with
 *    nothing to run returns 0 at once) and the blocking calls, which
 *    cannot be refused once half done; and so does any call of a sync
 *    object (its guard may be held by the switch in progress);
 *  - timers and descriptors are not served during a callback (a timer
 *    firing there would take a queue lock): the worker's poll countdown
 *    is held off and put back after.
 * docs/trace.md lists every call; tests/test_observe.c exercises each
 * group. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sched/observe.h"

uint8_t sl__observe;

static sl_schedule_cb sched_cb; /* (atomic) */
static sl_channel_cb chan_cb;   /* (atomic) */
/* Guards the runtime's workers against a callback set while sl_init or
 * sl_shutdown runs on another thread; rt_up says they exist. */
static pthread_mutex_t obs_lock = PTHREAD_MUTEX_INITIALIZER;
static bool rt_up;
/* The calling thread runs a callback now (observe.h). */
__thread uint8_t sl__obs_in_cb __attribute__((tls_model("initial-exec")));

/* Under obs_lock: each worker's SL_JS_OBSERVE bit from sl__observe
 * (the channel callback needs the switch hook too: to catch a callback
 * that switches). */
static void jump_bits_locked(void)
{
    if (!rt_up)
        return;
    bool on = SL_LOAD(&sl__observe) != 0;
    for (int i = 0; i < sl__rt.nworkers; i++) {
        uint8_t *b = &sl__rt.workers[i]->jump_slow;
        if (on)
            __atomic_fetch_or(b, (uint8_t)SL_JS_OBSERVE, __ATOMIC_RELAXED);
        else
            __atomic_fetch_and(b, (uint8_t)~SL_JS_OBSERVE,
                               __ATOMIC_RELAXED);
    }
}

void sl__obs_jump_bits(void)
{
    pthread_mutex_lock(&obs_lock);
    jump_bits_locked();
    pthread_mutex_unlock(&obs_lock);
}

/* Under obs_lock: a callback's bit of sl__observe, and what follows from
 * it: the channel operations' slow byte (any callback) and the workers'
 * switch bits. */
static void set_cb_bit_locked(uint8_t bit, bool on)
{
    if (on)
        __atomic_fetch_or(&sl__observe, bit, __ATOMIC_RELAXED);
    else
        __atomic_fetch_and(&sl__observe, (uint8_t)~bit, __ATOMIC_RELAXED);
    sl__chan_slow_set(SL_CS_CB, (SL_LOAD(&sl__observe) &
                                 (SL_OBS_SCHED_CB | SL_OBS_CHAN_CB)) != 0);
    jump_bits_locked();
}

/* ---- the callbacks ------------------------------------------------------- */

sl_schedule_cb sl_set_schedule_callback(sl_schedule_cb cb)
{
    pthread_mutex_lock(&obs_lock);
    sl_schedule_cb old = __atomic_exchange_n(&sched_cb, cb, __ATOMIC_ACQ_REL);
    set_cb_bit_locked(SL_OBS_SCHED_CB, cb != NULL);
    pthread_mutex_unlock(&obs_lock);
    return old;
}

sl_schedule_cb sl_get_schedule_callback(void)
{
    return __atomic_load_n(&sched_cb, __ATOMIC_ACQUIRE);
}

sl_channel_cb sl_set_channel_callback(sl_channel_cb cb)
{
    pthread_mutex_lock(&obs_lock);
    sl_channel_cb old = __atomic_exchange_n(&chan_cb, cb, __ATOMIC_ACQ_REL);
    set_cb_bit_locked(SL_OBS_CHAN_CB, cb != NULL);
    pthread_mutex_unlock(&obs_lock);
    return old;
}

sl_channel_cb sl_get_channel_callback(void)
{
    return __atomic_load_n(&chan_cb, __ATOMIC_ACQUIRE);
}

void sl__obs_cb_misuse(void)
{
    static const char m[] =
        "stackless: a schedule or channel callback switched tasklets (a "
        "blocking call, sl_schedule, a sync object...); callbacks may not "
        "(docs/trace.md); aborting\n";
    ssize_t r = write(2, m, sizeof m - 1);
    (void)r;
    abort();
}

/* Run a callback: marked as such, with the worker's timers and
 * descriptors held off (see the top of this file). */
#define RUN_CALLBACK(call)                                                   \
    do {                                                                     \
        sl_worker *w_ = sl__self();                                          \
        uint32_t tick_ = w_ ? w_->poll_tick : 0;                             \
        if (w_)                                                              \
            w_->poll_tick = UINT32_MAX;                                      \
        sl__obs_in_cb = 1;                                                   \
        call;                                                                \
        sl__obs_in_cb = 0;                                                   \
        if (w_)                                                              \
            w_->poll_tick = tick_;                                           \
    } while (0)

/* The tasklet a callback is given for t: NULL for a worker's idle
 * context. */
static inline sl_tasklet *cb_tasklet(sl_tasklet *t)
{
    return t->is_idle ? NULL : t;
}

static void schedule_cb(sl_tasklet *from, sl_tasklet *to)
{
    sl_schedule_cb cb = __atomic_load_n(&sched_cb, __ATOMIC_ACQUIRE);
    if (!cb)
        return;
    RUN_CALLBACK(cb(cb_tasklet(from), cb_tasklet(to)));
}

void sl__obs_cb_switch(sl_tasklet *from, sl_tasklet *to)
{
    if (sl_unlikely(sl__obs_in_cb))
        sl__obs_cb_misuse();
    if (SL_LOAD(&sl__observe) & SL_OBS_SCHED_CB)
        schedule_cb(from, to);
}

int sl__obs_channel(sl_channel *ch, sl_tasklet *cur, bool sending,
                    bool willblock)
{
    if (sl__obs_in_cb)
        return SL_ESTATE;
    sl_channel_cb cb = __atomic_load_n(&chan_cb, __ATOMIC_ACQUIRE);
    if (cb)
        RUN_CALLBACK(cb(ch, cur, sending, willblock));
    return 0;
}

/* ---- the SIGQUIT dump ---------------------------------------------------- */

static struct sigaction old_quit;
static bool quit_installed;

static void quit_handler(int sig)
{
    (void)sig;
    int e = errno;
    sl__dump_fd(2, "SIGQUIT");
    errno = e;
}

/* SL_DUMP_SIGQUIT=1 (libtask's habit, opt-in here): SIGQUIT (Ctrl-\) prints
 * every tasklet and the program goes on. */
static void quit_install(void)
{
    const char *e = getenv("SL_DUMP_SIGQUIT");
    if (!e || !*e || strcmp(e, "0") == 0 || quit_installed)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = quit_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGQUIT, &sa, &old_quit) == 0)
        quit_installed = true;
}

static void quit_uninstall(void)
{
    if (!quit_installed)
        return;
    struct sigaction now;
    if (sigaction(SIGQUIT, NULL, &now) == 0 && now.sa_handler == quit_handler)
        sigaction(SIGQUIT, &old_quit, NULL);
    quit_installed = false;
}

/* ---- the runtime's start and end ----------------------------------------- */

void sl__obs_init(void)
{
    pthread_mutex_lock(&obs_lock);
    rt_up = true;
    jump_bits_locked();
    pthread_mutex_unlock(&obs_lock);
    quit_install();
    sl__trace_from_env();
}

void sl__obs_shutdown(void)
{
    (void)sl__trace_stop_any();
    quit_uninstall();
    pthread_mutex_lock(&obs_lock);
    rt_up = false;
    pthread_mutex_unlock(&obs_lock);
}

void sl__obs_fork_child(void)
{
    pthread_mutex_init(&obs_lock, NULL); /* a fork may have left it held */
    rt_up = false;
    quit_installed = false; /* (the handler stays; the child's sl_init
                               installs its own if asked) */
    sl__trace_fork_child();
    __atomic_fetch_and(&sl__observe, (uint8_t)~SL_OBS_TRACE,
                       __ATOMIC_RELAXED);
}

/* ---- gdb ------------------------------------------------------------------
 *
 * The gdb extension (gdb/stackless-gdb.py) travels inside every program
 * linked with the library, in the .debug_gdb_scripts section: gdb runs it
 * when it loads the program, if `auto-load safe-path` allows the program
 * (docs/trace.md). Embedding the text rather than a path keeps the script
 * and the layout of the structures it reads from one build. The section
 * is not loaded at run time and goes with `strip`. */
#ifdef SL_GDB_SCRIPT
__asm__(".pushsection \".debug_gdb_scripts\", \"MS\",%progbits,1\n"
        ".byte 4\n" /* SECTION_SCRIPT_ID_PYTHON_TEXT */
        ".ascii \"stackless-gdb.py\\n\"\n"
        ".incbin \"" SL_GDB_SCRIPT "\"\n"
        ".byte 0\n"
        ".popsection\n");
#endif
