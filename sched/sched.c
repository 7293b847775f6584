/* sched.c - the scheduler: runtime start and stop, the run queue operations
 * of the public API, deadlock rules, kill, and stack-overflow reporting.
 *
 * DESIGN
 *
 * Glossary.
 *   tasklet   a function running on its own stack (or main: the thread's own
 *             context). Control block: struct sl_tasklet (tasklet/tasklet.h).
 *   worker    an OS thread running tasklets: struct sl_worker (sched.h). It
 *             owns a run queue, a stack pool and a slab of control blocks.
 *   run queue the runnable tasklets of a worker, as a circle whose head is
 *             the running tasklet (Stackless's own representation).
 *   main      the tasklet of the thread that called sl_init(). It is the
 *             watchdog: when nothing else is runnable, control returns to
 *             it (sl_run returns, or its blocking call reports deadlock).
 *
 * The run queue. Stackless keeps runnable tasklets in a circle and calls its
 * head "current". We do the same, because it makes every Stackless rule an
 * O(1) pointer move with nothing to translate:
 *   schedule()      head = head->next (the old head is now the last)
 *   insert(t)       link t before the head (the end of the circle)
 *   run(t)          insert t if needed, head = t: the queue goes on from t,
 *                   and what stood between the caller and t moves behind
 *   block/remove    unlink the head, head = its successor
 *   "partner first" link the partner right after the head, head = partner:
 *                   the caller ends up at the end
 * A tasklet is in at most one circle: the run queue or one channel's wait
 * queue, both through the same next/prev links, so blocking moves two
 * pointers and costs no allocation. sl_schedule() with another tasklet
 * runnable is one load, one store and the jump.
 *
 * The switch is boost.context's jump_fcontext (tasklet/fcontext.h): it
 * saves the callee-saved registers on the old stack and returns, on the new
 * one, the context it left. The resumed side stores that context into the
 * tasklet it came from, which the switcher names in worker->prev; the data
 * word of the jump carries the worker, so code after a switch never relies
 * on a thread-local read made before it (a tasklet may resume on another
 * thread once there are several workers). A tasklet that ends names the
 * worker's "graveyard" block instead, so its own control block can be
 * recycled before it jumps away.
 *
 * Deadlock. Main never silently hangs. When the running tasklet would leave
 * the run queue empty:
 *   - it is main blocking (or pausing): its call returns SL_EDEADLOCK;
 *   - main is blocked on a channel and the tasklet blocks: the tasklet's
 *     call returns SL_EDEADLOCK (nothing could ever wake either of them);
 *   - main is blocked on a channel and the tasklet ends: main is taken off
 *     its channel and its call returns SL_EDEADLOCK;
 *   - main is paused (in sl_run, or it removed/switched itself away): main
 *     runs again and its call returns 0. Blocked tasklets stay blocked.
 *
 * Stacks (tasklet/stack.c) are given at the first run, not at spawn, from a
 * per-worker LIFO of warm stacks carved out of large mappings with guard
 * pages installed by MADV_GUARD_INSTALL (no VMA split, so a million stacks
 * fit in vm.max_map_count). Spawn only promises one, so running out is
 * reported by sl_spawn, not at the first run.
 *
 * Rejected:
 *   - a linear FIFO run queue plus a separate "current": run(t) and the
 *     preference rules then need list surgery to reproduce Stackless's
 *     rotation exactly;
 *   - main as an ordinary queue member during sl_run: every round of the
 *     queue would switch through main for nothing;
 *   - the control block on the stack's top page: a tasklet could then not
 *     exist without its stack, and skynet-like programs that spawn a million
 *     tasklets before the first one runs would fault in a million stacks;
 *     the slab costs 1/20 of a page per tasklet, made present in bulk;
 *   - a global "current" pointer: it could not become per-thread.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel/channel.h"
#include "sched/sched.h"

__thread sl_worker *sl__tls_worker __attribute__((tls_model("initial-exec")));

void sl__tasklet_discard_new(sl_worker *w, sl_tasklet *t);
void sl__tasklet_discard_all(sl_worker *w);

#define SL_DEFAULT_STACK (64u << 10)
#define SL_MIN_STACK (16u << 10)
#define SL_MAX_STACK (1u << 30)

/* One runtime per process for now. */
static atomic_int runtime_active;

/* ---- stack overflow reporting ------------------------------------------ */

static struct sigaction old_segv, old_bus;
static stack_t old_altstack;
static void *altstack_mem;

static size_t fmt_u64(char *p, unsigned long long v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

/* Async-signal-safe: called from the SIGSEGV handler. */
void sl__overflow_abort(const sl_tasklet *t)
{
    {
        char buf[160];
        size_t n = 0;
        static const char a[] = "stackless: stack overflow in tasklet #";
        memcpy(buf + n, a, sizeof a - 1);
        n += sizeof a - 1;
        n += fmt_u64(buf + n, t->id);
        buf[n++] = ' ';
        buf[n++] = '\'';
        size_t len = strnlen(t->name, sizeof t->name);
        memcpy(buf + n, t->name, len);
        n += len;
        static const char b[] = "'; aborting\n";
        memcpy(buf + n, b, sizeof b - 1);
        n += sizeof b - 1;
        ssize_t r = write(2, buf, n);
        (void)r;
        signal(SIGABRT, SIG_DFL);
        abort();
    }
}

static void overflow_handler(int sig, siginfo_t *si, void *uc)
{
    sl_worker *w = sl__tls_worker;
    sl_tasklet *t = w ? w->current : NULL;
    if (t && t->stack && sl__stack_guard_hit(&w->stacks, t->stack, si->si_addr))
        sl__overflow_abort(t);
    /* Not an overflow of ours: hand it to whoever had the signal before. */
    struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;
    if (old->sa_flags & SA_SIGINFO) {
        old->sa_sigaction(sig, si, uc);
    } else if (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN) {
        signal(sig, SIG_DFL); /* a real fault repeats and kills us */
        if (si->si_code <= 0)  /* sent by kill() or raise(): send it again */
            raise(sig);
    } else {
        old->sa_handler(sig);
    }
}

static void overflow_install(void)
{
    stack_t ss;
    if (sigaltstack(NULL, &old_altstack) == 0 &&
        (old_altstack.ss_flags & SS_DISABLE)) {
        size_t sz = 64u << 10;
        altstack_mem = malloc(sz);
        if (altstack_mem) {
            ss.ss_sp = altstack_mem;
            ss.ss_size = sz;
            ss.ss_flags = 0;
            if (sigaltstack(&ss, NULL) != 0) {
                free(altstack_mem);
                altstack_mem = NULL;
            }
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = overflow_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

/* Put back the handlers we replaced, unless someone replaced ours since. */
static void restore_if_ours(int sig, const struct sigaction *old)
{
    struct sigaction now;
    if (sigaction(sig, NULL, &now) == 0 && (now.sa_flags & SA_SIGINFO) &&
        now.sa_sigaction == overflow_handler)
        sigaction(sig, old, NULL);
}

static void overflow_uninstall(void)
{
    restore_if_ours(SIGSEGV, &old_segv);
    restore_if_ours(SIGBUS, &old_bus);
    if (altstack_mem) {
        stack_t ss = {.ss_flags = SS_DISABLE};
        sigaltstack(&ss, NULL);
        free(altstack_mem);
        altstack_mem = NULL;
    }
}

/* ---- runtime ------------------------------------------------------------- */

void sl_config_init(sl_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->workers = 1;
    cfg->stack_size = SL_DEFAULT_STACK;
}

int sl_init(const sl_config *cfg)
{
    sl_config c;
    if (cfg)
        c = *cfg;
    else
        sl_config_init(&c);
    if (c.workers < 1 || c.stack_size > SL_MAX_STACK)
        return SL_EINVAL;
    if (c.workers != 1)
        return SL_EINVAL; /* M:N workers: not in this version */
    if (c.stack_size == 0)
        c.stack_size = SL_DEFAULT_STACK;
    if (c.stack_size < SL_MIN_STACK)
        c.stack_size = SL_MIN_STACK;
    int expected = 0;
    if (sl__tls_worker ||
        !atomic_compare_exchange_strong(&runtime_active, &expected, 1))
        return SL_ESTATE;

    sl_worker *w = calloc(1, sizeof *w);
    if (!w) {
        atomic_store(&runtime_active, 0);
        return SL_ENOMEM;
    }
    int rc = sl__stack_pool_init(&w->stacks, c.stack_size);
    if (rc < 0) {
        free(w);
        atomic_store(&runtime_active, 0);
        return rc;
    }
    sl__slab_init(&w->slab, w);
    sl_tasklet *m = &w->main_block;
    m->is_main = 1;
    m->state = SL_T_RUNNABLE;
    m->next = m->prev = m;
    m->worker = w;
    m->refs = 1;
    m->ctx = NULL; /* filled in when main first switches away */
    w->main = m;
    w->current = m;
    w->runcount = 1;
    w->graveyard.state = SL_T_DEAD;
    overflow_install();
    sl__tls_worker = w;
    return 0;
}

int sl_shutdown(void)
{
    sl_worker *w = sl__self();
    if (!w || w->current != w->main)
        return SL_ESTATE;
    sl__tasklet_discard_all(w);
    sl__stack_pool_destroy(&w->stacks);
    sl__slab_destroy(&w->slab);
    overflow_uninstall();
    sl__tls_worker = NULL;
    free(w);
    atomic_store(&runtime_active, 0);
    return 0;
}

int sl_run(void)
{
    sl_worker *w = sl__self();
    if (!w)
        return SL_ESTATE;
    sl_tasklet *m = w->main;
    if (w->current != m)
        return SL_ESTATE;
    /* Main leaves the queue and watches: it is switched back to when the
     * queue runs dry (sl__idle_*), or when somebody inserts it. */
    while (m->next != m) {
        sl_tasklet *next = m->next;
        sl__rq_unlink(w, m);
        m->state = SL_T_PAUSED;
        w->current = next;
        w = sl__jump(w, m, next);
    }
    return 0;
}

sl_tasklet *sl__idle_block(sl_worker *w)
{
    sl_tasklet *m = w->main;
    if (w->current == m || m->state == SL_T_BLOCKED)
        return NULL;
    SL__ASSERT(m->state == SL_T_PAUSED);
    m->result = 0;
    sl__rq_append(w, m);
    return m;
}

sl_tasklet *sl__idle_end(sl_worker *w)
{
    sl_tasklet *m = w->main;
    SL__ASSERT(w->current != m);
    if (m->state == SL_T_BLOCKED) {
        sl__channel_unwait(m);
        m->result = SL_EDEADLOCK;
    } else {
        SL__ASSERT(m->state == SL_T_PAUSED);
        m->result = 0;
    }
    sl__rq_append(w, m);
    return m;
}

sl_tasklet *sl_current(void)
{
    sl_worker *w = sl__self();
    return w ? w->current : NULL;
}

sl_tasklet *sl_main(void)
{
    sl_worker *w = sl__self();
    return w ? w->main : NULL;
}

int sl_getruncount(void)
{
    sl_worker *w = sl__self();
    return w ? w->runcount : SL_ESTATE;
}

int sl_getlivecount(void)
{
    sl_worker *w = sl__self();
    return w ? w->livecount : SL_ESTATE;
}

/* ---- yielding and moving tasklets -------------------------------------- */

int sl_schedule(void)
{
    sl_worker *w = sl__self();
    if (sl_unlikely(!w))
        return SL_ESTATE;
    sl_tasklet *cur = w->current;
    if (sl_unlikely(cur->killed))
        return SL_EKILLED;
    sl_tasklet *next = cur->next;
    if (next == cur)
        return 0;
    w->current = next;
    sl__jump(w, cur, next);
    return sl__resumed(cur, 0);
}

int sl_schedule_remove(void)
{
    sl_worker *w = sl__self();
    if (sl_unlikely(!w))
        return SL_ESTATE;
    sl_tasklet *cur = w->current;
    if (sl_unlikely(cur->killed))
        return SL_EKILLED;
    sl_tasklet *next = sl__rq_leave(w, cur);
    if (!next)
        return SL_EDEADLOCK;
    cur->state = SL_T_PAUSED;
    sl__jump(w, cur, next);
    return sl__resumed(cur, 0);
}

/* Validate t against the calling worker; 0 or an error code. */
static int check_target(sl_worker *w, const sl_tasklet *t)
{
    if (!w)
        return SL_ESTATE;
    if (!t || t->worker != w)
        return SL_EINVAL;
    return 0;
}

int sl_tasklet_insert(sl_tasklet *t)
{
    sl_worker *w = sl__self();
    int rc = check_target(w, t);
    if (rc)
        return rc;
    switch (t->state) {
    case SL_T_RUNNABLE:
        return 0;
    case SL_T_PAUSED:
        sl__rq_append(w, t);
        return 0;
    default: /* blocked on a channel, or dead */
        return SL_ESTATE;
    }
}

int sl_tasklet_remove(sl_tasklet *t)
{
    sl_worker *w = sl__self();
    int rc = check_target(w, t);
    if (rc)
        return rc;
    if (t == w->current)
        return SL_ESTATE; /* use sl_schedule_remove */
    switch (t->state) {
    case SL_T_PAUSED:
        return 0;
    case SL_T_RUNNABLE:
        sl__rq_unlink(w, t);
        t->state = SL_T_PAUSED;
        return 0;
    default:
        return SL_ESTATE;
    }
}

/* run(t): t becomes the head of the run queue and runs now; the caller
 * stays runnable (run) or is paused (switch). */
static int run_or_switch(sl_tasklet *t, bool pause_self)
{
    sl_worker *w = sl__self();
    int rc = check_target(w, t);
    if (rc)
        return rc;
    if (t->state == SL_T_DEAD || t->state == SL_T_BLOCKED)
        return SL_ESTATE;
    sl_tasklet *cur = w->current;
    if (cur->killed)
        return SL_EKILLED;
    if (t == cur)
        return 0;
    if (t->state == SL_T_PAUSED)
        sl__rq_append(w, t);
    if (pause_self) {
        sl__rq_unlink(w, cur);
        cur->state = SL_T_PAUSED;
    }
    w->current = t;
    sl__jump(w, cur, t);
    return sl__resumed(cur, 0);
}

int sl_tasklet_run(sl_tasklet *t)
{
    return run_or_switch(t, false);
}

int sl_tasklet_switch(sl_tasklet *t)
{
    return run_or_switch(t, true);
}

int sl_tasklet_kill(sl_tasklet *t)
{
    sl_worker *w = sl__self();
    int rc = check_target(w, t);
    if (rc)
        return rc;
    if (t->state == SL_T_DEAD)
        return 0;
    if (t->is_main)
        return SL_EINVAL;
    sl_tasklet *cur = w->current;
    if (t == cur) {
        t->killed = 1;
        return SL_EKILLED;
    }
    if (!t->ctx) { /* never ran: dies without running its body */
        sl__tasklet_discard_new(w, t);
        return 0;
    }
    t->killed = 1;
    if (t->state == SL_T_BLOCKED) {
        sl__channel_unwait(t);
        t->result = SL_EKILLED;
    }
    if (t->state == SL_T_PAUSED)
        sl__rq_append(w, t);
    /* Like run(t): its pending call returns SL_EKILLED now, and its reaction
     * has happened by the time we are resumed. */
    w->current = t;
    sl__jump(w, cur, t);
    return sl__resumed(cur, 0);
}
