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
 * Copy stacks (SL_STACK_COPY, tasklet/copystack.c). A copy-mode tasklet
 * runs on its worker's shared stack; its frames are saved to a heap
 * buffer only when another copy-mode tasklet needs that stack, by a small
 * switcher context (nothing may overwrite the stack it runs on), and
 * copied back to the same addresses when it resumes. Consequences here:
 *   - a copy-mode tasklet is pinned to the worker that first ran it: its
 *     frames hold that shared stack's addresses. Every wake path already
 *     honours pins (sl__wake, run_partner: the inbox), stealing moves
 *     only tasklets that never ran;
 *   - the switcher runs the post-switch work (worker->post) after saving
 *     the blocked tasklet and before the stack is reused, because that
 *     work may read the blocked tasklet's frames (select's lock list);
 *   - nothing another thread reads while a tasklet is switched out may
 *     live on a copy-mode frame (offload's job goes on the heap there);
 *   - the fixed-stack switch pays one byte test (worker->jump_slow, which
 *     also carries the canary check and sl_run_for's budget: a bit each,
 *     SL_JS_*) for all this.
 * Rejected: saving at every switch out (a resume after main or a fixed
 * tasklet would copy for nothing), migrating copy-mode tasklets between
 * several shared stacks (a free stack at the right address must be found
 * on the target worker at every resume).
 *
 * M:N workers (sl_config.workers = N). Worker 0 is the thread that called
 * sl_init (main is pinned to it); workers 1..N-1 are threads of ours. Each
 * worker owns its run queue, stack pool and slab; only its thread touches
 * them, so the switch and run-queue paths take no lock and no atomic RMW.
 *   - Channels carry a byte spinlock (taken only when N > 1). A tasklet a
 *     channel operation wakes joins the *waker's* run queue (it migrates):
 *     with the preference saying "partner first" it runs at once, on this
 *     core, which keeps a hot ball like hackysack's on one core instead of
 *     bouncing it between caches. Go's goready does the same (runnext).
 *   - Blocking publishes the tasklet only after it has switched out: the
 *     channel lock is released, and the BLOCKED or PAUSED state becomes
 *     visible, by whoever runs next on that worker (worker->post), so
 *     another worker never sees a parked tasklet whose context is not yet
 *     saved (Go's gopark unlocks on g0 after the switch for the same
 *     reason). The same post-switch work then looks at the tasklet's
 *     pending error again (sched/wait.h, W6): a throw or kill that saw it
 *     still running is carried out there.
 *   - Wakeups that must cross workers (a pinned tasklet, main, a tasklet
 *     given away) go through the target's inbox: a list under the runtime
 *     lock, plus a futex wake if the target is parked. Inboxes are looked
 *     at by their owner at scheduling points (one relaxed load of
 *     inbox_flag) and in the idle loop. A tasklet in an inbox is INBOX,
 *     not RUNNABLE, until its owner links it in: nobody else may touch
 *     it, and a call of its owner's (kill, run, switch, remove) that
 *     meets it links the inbox first.
 *   - Balancing is work *requesting*: an idle worker asks a busy one
 *     (steal_req, a CAS), and the busy worker gives away half of its
 *     runnable tasklets, from the end of its queue, at its next
 *     scheduling point. The owner's queue stays owner-only; a tasklet that
 *     never yields is not moved while it runs (nothing could move it
 *     anyway: stacks are not preemptible).
 *   - An idle worker spins for 50 us watching its inbox, then parks on a
 *     futex: an idle runtime uses no CPU.
 *   - Stacks and control blocks are per worker, but a worker that is given
 *     work frees more than it allocates: beyond a high mark it moves a
 *     batch of 256 to a process-wide depot (one mutex), where a worker that
 *     runs dry takes them before mapping new memory.
 *   - Quiescence replaces the one-worker deadlock rules: when every worker
 *     is parked with an empty inbox, nothing can ever run again, so main
 *     gets control back: sl_run returns, or main's blocked channel call
 *     returns SL_EDEADLOCK. (With one worker the exact Stackless rules
 *     above hold, including "the last runnable tasklet that would block
 *     gets SL_EDEADLOCK".)
 *   - A tasklet runnable on another worker (or on its way there) cannot
 *     be removed, run or switched to from here (SL_ESTATE); a throw or a
 *     kill of it is pending: its error is recorded and its current or
 *     next blocking call returns it.
 *
 * Waits (sched/wait.h, the one wait layer). Every blocking call parks its
 * tasklet in a *wait*: a generation in the tasklet's wseq (odd while the
 * wait is on) and, for calls that queue, *waiters* linked in wait queues:
 * the one embedded in the control block (a plain send, receive or sync
 * wait allocates nothing), or one per case for a select. Every party that
 * may end a wait - a partner meeting a waiter, a timer, a descriptor, an
 * offload helper, a throw or a kill, the deadlock rules - claims it first with a
 * compare-and-swap of wseq (a compare and a store with one worker), and
 * only the winner wakes the tasklet; that one claim/cancel protocol,
 * written once, replaces per-primitive rules. Channels (channel/),
 * select, the sync objects (sync/) and the waits below build on it; the
 * scheduler knows nothing of channels.
 *
 * Time, descriptors and offloaded calls (sched/event.c, sched/offload.c).
 * Each worker owns a timer heap and an epoll instance (its eventfd is how
 * other threads wake it: parking is epoll_pwait2 with the next deadline as
 * timeout). A worker looks at both when its queue is empty and every
 * SL_POLL_EVERY switches while busy. One worker has an idle context too,
 * used only while something can end a wait by itself.
 *   - Timers are cancelled lazily: a heap entry whose generation no longer
 *     matches is stale and dropped when met. No thread touches another
 *     worker's heap.
 *   - The runtime counts waits that end by themselves (timeouts,
 *     descriptors, offloaded calls: sl__rt.nwaits). While one is in
 *     progress nothing is deadlocked: a worker with nothing to run waits
 *     in epoll instead of applying the deadlock rules, and quiescence
 *     needs nwaits == 0 too.
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
 *   - a global "current" pointer: it could not become per-thread;
 *   - (M:N) per-worker locked run queues that thieves take from directly:
 *     every schedule() would pay a lock; Chase-Lev deques: they give LIFO
 *     or FIFO ends, not Stackless's rotating circle; one global queue: a
 *     lock on every switch and no cache affinity;
 *   - (M:N) waking a tasklet on the worker it last ran on: the ball of a
 *     ping-pong would cross cores on every message.
 *   - (timers) one timer thread for the runtime: a wake-up would cross
 *     threads every time; a timer wheel: sleeps here range from 1 ms to
 *     hours and a heap with lazy deletion has no tick to drive;
 *   - (timeouts) taking the channel lock to time a waiter out, without a
 *     claim: the timer would race a partner that already took the waiter,
 *     and a freed channel could be locked; the CAS decides first;
 *   - (waits) plain channel waits ended under the channel lock alone, with
 *     claims only for waits with a timeout: it saved a compare and a store
 *     per hand-over, but gave every blocking path two protocols, and the
 *     gaps between them lost wake-ups and kills (issue 13); one select
 *     proxy per case as a whole control block: a waiter is all it needs;
 *   - (I/O) one epoll for all workers: every wait would contend on it, and
 *     a woken tasklet would land on whichever worker polled.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <ucontext.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sched/observe.h"
#include "sched/wait.h"

__thread sl_worker *sl__tls_worker __attribute__((tls_model("initial-exec")));
#if SL_ARCH_TLS_CACHED
uintptr_t sl__tls_worker_off;

__attribute__((constructor)) static void tls_worker_off_init(void)
{
    sl__tls_worker_off =
        (uintptr_t)((char *)&sl__tls_worker - sl_arch_thread_pointer());
}
#endif
struct sl_runtime sl__rt;
uint8_t sl__chan_slow;

void sl__tasklet_discard_new(sl_worker *w, sl_tasklet *t);
void sl__orphans_forget(void);
void sl__orphans_reset(void);
void sl__offload_fork_reset(void);
int sl__promise_move(sl_worker *w, sl_tasklet *t);
void sl__tasklet_discard_unlink(sl_worker *w);
void sl__tasklet_discard_all(sl_worker *w);
int sl__idle_init(sl_worker *w);
int sl__workers_start(void);
void sl__workers_stop(void);

#define SL_DEFAULT_STACK (64u << 10)
#define SL_MIN_STACK (16u << 10)
#define SL_MAX_STACK (1u << 30)
#define SL_MAX_WORKERS 127
#define SL_DEFAULT_OFFLOAD 4
#define SL_MAX_OFFLOAD 256

/* One runtime per process. */
static atomic_int runtime_active;

/* ---- stack overflow reporting ------------------------------------------ */

static struct sigaction old_segv, old_bus;

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

/* The interrupted stack pointer lies below the usable part of t's stack:
 * whatever faulted, t has run off its stack (in canary mode there is no
 * guard page, and a fault may come from far below it). */
static bool sp_below(const sl_worker *w, const char *slot, void *uc)
{
    uintptr_t sp = sl_arch_signal_sp(uc);
    uintptr_t lo = (uintptr_t)slot + w->stacks.guard;
    return sp < lo && lo - sp < (uintptr_t)w->stacks.size * 64;
}

static void overflow_handler(int sig, siginfo_t *si, void *uc)
{
    sl_worker *w = sl__tls_worker;
    sl_tasklet *t = w ? w->current : NULL;
    char *slot = t ? sl__copy_slot(&w->copy, t) : NULL; /* its stack */
    if (slot && (sl__stack_guard_hit(&w->stacks, slot, si->si_addr) ||
                 sp_below(w, slot, uc)))
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

/* Each thread running tasklets needs an alternate signal stack: an
 * overflow leaves no room on the tasklet's own stack for the handler. */
static __thread void *altstack_mem;

void sl__altstack_init(void)
{
    stack_t old;
    if (sigaltstack(NULL, &old) != 0 || !(old.ss_flags & SS_DISABLE))
        return; /* the thread has one already */
    size_t sz = 64u << 10;
    void *mem = malloc(sz);
    if (!mem)
        return;
    stack_t ss = {.ss_sp = mem, .ss_size = sz, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        free(mem);
        return;
    }
    altstack_mem = mem;
}

void sl__altstack_fini(void)
{
    if (!altstack_mem)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(altstack_mem);
    altstack_mem = NULL;
}

static void overflow_install(void)
{
    sl__altstack_init();
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
    sl__altstack_fini();
}

/* ---- runtime ------------------------------------------------------------- */

void sl_config_init(sl_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->workers = 1;
    cfg->steal = 1;
    cfg->stack_size = SL_DEFAULT_STACK;
    cfg->offload_threads = SL_DEFAULT_OFFLOAD;
    cfg->stack_mode = SL_STACK_FIXED;
}

static void free_workers(void)
{
    for (int i = 0; i < sl__rt.nworkers; i++) {
        sl_worker *w = sl__rt.workers[i];
        if (!w)
            continue;
        sl__copy_fini(w); /* before the pool: it reads the pool's sizes */
        sl__stack_pool_destroy(&w->stacks);
        sl__slab_destroy(&w->slab);
        sl__events_fini(w);
        free(w->post_unrefs);
        free(w);
    }
    free(sl__rt.workers);
    sl__rt.workers = NULL;
}

int sl_init(const sl_config *cfg)
{
    sl_config c;
    if (cfg)
        c = *cfg;
    else
        sl_config_init(&c);
    if (c.workers < 1 || c.workers > SL_MAX_WORKERS ||
        c.stack_size > SL_MAX_STACK || c.offload_threads < 0 ||
        c.offload_threads > SL_MAX_OFFLOAD || c.stack_mode < 0 ||
        c.stack_mode > SL_STACK_COPY)
        return SL_EINVAL;
    if (c.stack_mode == SL_STACK_DEFAULT) /* a config made by hand */
        c.stack_mode = SL_STACK_FIXED;
    if (c.offload_threads == 0) /* a config made without sl_config_init */
        c.offload_threads = SL_DEFAULT_OFFLOAD;
    if (c.stack_size == 0)
        c.stack_size = SL_DEFAULT_STACK;
    if (c.stack_size < SL_MIN_STACK)
        c.stack_size = SL_MIN_STACK;
    int expected = 0;
    if (sl__tls_worker ||
        !atomic_compare_exchange_strong(&runtime_active, &expected, 1))
        return SL_ESTATE;

    memset(&sl__rt, 0, sizeof sl__rt);
    sl__rt.nworkers = c.workers;
    sl__rt.mt = c.workers > 1;
    sl__chan_slow_set(SL_CS_MT, sl__rt.mt);
    sl__rt.steal = c.steal != 0;
    sl__rt.stack_size = c.stack_size;
    sl__rt.stack_mode = c.stack_mode;
    sl__rt.offload_threads = c.offload_threads;
    pthread_mutex_init(&sl__rt.lock, NULL);
    int rc = SL_ENOMEM;
    sl__rt.workers = calloc((size_t)c.workers, sizeof *sl__rt.workers);
    if (!sl__rt.workers)
        goto fail;
    for (int i = 0; i < c.workers; i++) {
        sl_worker *w = calloc(1, sizeof *w);
        if (!w)
            goto fail;
        sl__rt.workers[i] = w;
        w->index = i;
        w->epfd = w->evfd = -1;
        rc = sl__stack_pool_init(&w->stacks, c.stack_size);
        if (rc < 0) {
            w->stacks.size = 0;
            goto fail;
        }
        sl__slab_init(&w->slab, w);
        if (sl__rt.mt) { /* free stacks and blocks flow between workers */
            w->stacks.depot_high = 1024;
            w->slab.depot_high = 4096;
        }
        w->graveyard.state = SL_T_DEAD;
        w->poll_tick = SL_POLL_EVERY;
        if ((rc = sl__events_init(w)) < 0 || (rc = sl__idle_init(w)) < 0)
            goto fail;
    }
    sl_worker *w = sl__rt.workers[0];
    sl_tasklet *m = &w->main_block;
    m->is_main = 1;
    m->pin = 0;
    m->state = SL_T_RUNNABLE;
    m->next = m->prev = m;
    m->worker = w;
    m->refs = 1;
    m->wait.t = m;
    m->ctx = NULL; /* filled in when main first switches away */
#if SL_TSAN
    m->tsan_fiber = __tsan_get_current_fiber();
#endif
    sl__rt.main = m;
    for (int i = 0; i < c.workers; i++)
        sl__rt.workers[i]->main = m;
    if (c.stack_mode == SL_STACK_COPY && (rc = sl__copy_enable()) < 0)
        goto fail;
    SL_STORE(&w->current, m);
    w->runcount = 1;
    overflow_install();
    sl__tls_worker = w;
    if (sl__rt.mt && (rc = sl__workers_start()) < 0) {
        sl__workers_stop();
        overflow_uninstall();
        sl__tls_worker = NULL;
        goto fail;
    }
    sl__obs_init();
    return 0;

fail:
    if (sl__rt.workers)
        free_workers();
    pthread_mutex_destroy(&sl__rt.lock);
    atomic_store(&runtime_active, 0);
    return rc;
}

struct sl_runtime sl__forgotten_rt; /* a fork child's inherited runtime */

void sl__fork_child_reset(void)
{
    /* The other threads did not survive the fork, and whatever they held
     * (locks, tasklets half-switched) is gone with them: forget the whole
     * runtime. Its memory is copy-on-write and untouched, so leaving it
     * costs nothing; the child may sl_init() afresh. */
    sl__stack_depot_forget();
    sl__slab_depot_forget();
    sl__orphans_forget();
    sl__offload_fork_reset();
    sl__obs_fork_child();
    sl__tls_worker = NULL;
    /* The SIGSEGV/SIGBUS handler goes with it: a new sl_init would take it
     * for the previous handler to chain to, and a real fault would loop. */
    restore_if_ours(SIGSEGV, &old_segv);
    restore_if_ours(SIGBUS, &old_bus);
    sl__forgotten_rt = sl__rt; /* still reachable: not a leak */
    memset(&sl__rt, 0, sizeof sl__rt);
    atomic_store(&runtime_active, 0);
}

/* The entry of the calls only main makes (sl_run, sl_run_for,
 * sl_shutdown): main's worker, or NULL (no runtime, or the caller is not
 * main). */
static inline sl_worker *main_entry(void)
{
    sl_worker *w = sl__self();
    return w && w->current == w->main ? w : NULL;
}

int sl_shutdown(void)
{
    sl_worker *w = main_entry();
    if (!w || sl__obs_in_callback()) /* (a callback switching to main) */
        return SL_ESTATE;
    sl__obs_shutdown(); /* the trace ends before the workers do */
    sl__offload_stop(); /* calls in progress finish first */
    if (sl__rt.mt)
        sl__workers_stop();
    for (int i = 0; i < sl__rt.nworkers; i++)
        sl__tasklet_discard_unlink(sl__rt.workers[i]);
    for (int i = 0; i < sl__rt.nworkers; i++)
        sl__tasklet_discard_all(sl__rt.workers[i]);
    free_workers();
    sl__stack_depot_reset();
    sl__slab_depot_reset();
    sl__orphans_reset(); /* blocks of slabs that are gone now */
    overflow_uninstall();
    pthread_mutex_destroy(&sl__rt.lock);
    sl__tls_worker = NULL;
    atomic_store(&runtime_active, 0);
    return 0;
}

/* mt: main leaves the run queue (paused: the watchdog) until quiescence or
 * someone inserts it. Returns the worker main resumed on and its result. */
static int main_pause(sl_worker **wp, sl_tasklet *m)
{
    sl_worker *w = *wp;
    m->wait.result = 0;
    sl_tasklet *next = sl__rq_leave(w, m);
    SL__ASSERT(next); /* mt: never a deadlock here */
    sl__pause_after_switch(w, m);
    *wp = sl__jump(w, m, next);
    return m->wait.result;
}

/* sl_run with several workers: until nothing can run on any worker, or a
 * throw to main. (Out of line: its registers would cost the one-worker
 * loop below a frame.) */
static __attribute__((noinline)) int run_mt(sl_worker *w, sl_tasklet *m)
{
    if (sl__obs_in_callback()) /* it always switches (observe.c) */
        sl__obs_cb_misuse();
    int rc = sl__pend_check(m);
    if (rc)
        return rc;
    int r;
    do {
        r = main_pause(&w, m);
        m->wait.result = 0;
        if ((rc = sl__resumed(m, 0)))
            return rc;
    } while (r != SL__QUIESCENT);
    return 0;
}

int sl_run(void)
{
    sl_worker *w = main_entry();
    if (!w)
        return SL_ESTATE;
    sl_tasklet *m = w->main;
    if (sl__rt.mt)
        return run_mt(w, m);
    int rc;
    /* Main leaves the queue and watches: it is switched back to when the
     * queue runs dry (sl__idle_*), or when somebody inserts it, or throws
     * to it: its error ends sl_run, as the tasklet's own call would. With
     * one worker only this thread writes main's pend: plain reads (a
     * compare with memory each, where an atomic load and a test would
     * cost bench_spawn 1%). A callback switching to main is caught where
     * it would switch, or here: it must not take main's error. */
    if (sl_unlikely(m->pend)) {
        if (sl__obs_in_callback())
            sl__obs_cb_misuse();
        if ((rc = sl__pend_take(m)))
            return rc;
    }
    while (m->next != m || SL_LOAD(&sl__rt.nwaits) > 0) {
        /* Alone but a wait can still end (a timer, a descriptor): the
         * idle context waits for it. */
        sl_tasklet *next = sl__rq_leave(w, m);
        SL__ASSERT(next);
        m->state = SL_T_PAUSED;
        w = sl__jump(w, m, next);
        if (sl_unlikely(m->pend) && (rc = sl__pend_take(m)))
            return rc;
    }
    return 0;
}

/* ---- sl_run_for: the watchdog with a budget ---------------------------- *
 *
 * Stackless's run(timeout) interrupts the running tasklet after so many
 * bytecodes, takes it out of the run queue and returns it. C code cannot
 * be interrupted safely, so the budget (time, or a number of switches) is
 * looked at where tasklets switch: while it is armed, worker->jump_slow
 * has SL_JS_BUDGET set and every switch goes through sl__budget_switch
 * (tasklet/copystack.c calls it), as does a yield with nothing else to
 * run (budget_yield); the fast switch path pays nothing more than the
 * byte test it already makes. Once the budget is spent, the next
 * switch of a tasklet that is not atomic goes to main instead: the
 * tasklet, if it is still in the run queue (it yields, hands over, runs
 * another), is taken out (paused) and handed to main. Main's worker only:
 * the other workers' tasklets run in parallel and take none of its time.
 * A run queue that runs dry gives main control at once (sl__run_for_main),
 * even while timers or descriptors are awaited: sl_run_for runs what can
 * run now, as Stackless's run() returns when runcount is 1. */

sl_tasklet *sl__run_for_main(sl_worker *w)
{
    if (sl_likely(!w->run_for))
        return NULL;
    sl_tasklet *m = w->main;
    if (sl__rt.mt ? !sl__claim_paused(m) : m->state != SL_T_PAUSED)
        return NULL; /* on its way back already */
    m->wait.result = 0;
    sl__rq_append(w, m);
    return m;
}

/* A scheduling point of `from` counts against the budget: true once the
 * budget is spent, `from` may be interrupted (not main, not atomic) and
 * main is ours to run (claimed, with several workers). */
static bool budget_due(sl_worker *w, sl_tasklet *from)
{
    sl_tasklet *m = w->main;
    if (from == m || from->is_idle)
        return false; /* main's own switches do not count */
    if (!w->bud_spent) {
        if (w->bud_left && --w->bud_left == 0)
            w->bud_spent = 1;
        else if (w->bud_deadline && sl__now_ns() >= w->bud_deadline)
            w->bud_spent = 1;
        else
            return false;
    }
    if (SL_LOAD(&from->atomic_id) == SL_LOAD(&from->id) + 1)
        return false; /* atomic: it is not interrupted, the next one is */
    /* (else main runs soon anyway: inserted, or thrown at) */
    return sl__rt.mt ? sl__claim_paused(m) : m->state == SL_T_PAUSED;
}

/* The budget is spent at a switch from `from` to `to` (w->current; `to`
 * is `from` when it yields alone): `from`, if it stays in the run queue
 * (not ending), is taken out (paused) and handed to main, which runs now,
 * the queue going on from `to` after it. Returns main. */
static sl_tasklet *budget_interrupt(sl_worker *w, sl_tasklet *from,
                                    sl_tasklet *to, bool ending)
{
    sl_tasklet *m = w->main;
    m->wait.result = 0;
    sl__rq_link_before(to, m);
    sl__make_runnable(w, m);
    bool out = !ending && SL_LOAD(&from->state) == SL_T_RUNNABLE;
    if (out) {
        sl__rq_unlink(w, from);
        sl__pause_after_switch(w, from);
    }
    SL_STORE(&w->current, m);
    /* The handle sl_run_for gives its caller is a reference (Stackless's
     * run() returns the tasklet object): taken here, while `from` is
     * surely alive, since it may be killed or end (on another worker too)
     * before main's caller looks at it. */
    if (out)
        sl_tasklet_ref(from);
    w->bud_victim = out ? from : NULL;
    __atomic_fetch_and(&w->jump_slow, (uint8_t)~SL_JS_BUDGET,
                       __ATOMIC_RELAXED);
    return m;
}

sl_tasklet *sl__budget_switch(sl_worker *w, sl_tasklet *from, sl_tasklet *to)
{
    if (to == w->main || to->is_idle || !budget_due(w, from))
        return to;
    return budget_interrupt(w, from, to, false);
}

sl_tasklet *sl__budget_end(sl_worker *w, sl_tasklet *self, sl_tasklet *next)
{
    if (!(SL_LOAD(&w->jump_slow) & SL_JS_BUDGET) || next == w->main ||
        next->is_idle || !budget_due(w, self))
        return next;
    return budget_interrupt(w, self, next, true);
}

/* sl_schedule of cur, alone in the run queue, while a budget is armed: a
 * scheduling point with no switch, where the watchdog may stop it too. */
static __attribute__((noinline)) int budget_yield(sl_worker *w,
                                                  sl_tasklet *cur)
{
    if (!budget_due(w, cur))
        return 0;
    sl_tasklet *m = budget_interrupt(w, cur, cur, false);
    sl__jump(w, cur, m);
    return sl__resumed(cur, 0);
}

int sl_run_for(int64_t budget_ns, uint64_t switches,
               sl_tasklet **interrupted)
{
    if (interrupted)
        *interrupted = NULL;
    sl_worker *w = main_entry();
    if (!w || sl__obs_in_callback()) /* (a callback switching to main) */
        return SL_ESTATE;
    sl_tasklet *m = w->main;
    if (budget_ns < 0)
        return SL_EINVAL;
    int rc = sl__pend_check(m); /* a throw to main */
    if (rc)
        return rc;
    sl__events_tick(w); /* timers due and descriptors ready run now */
    w->bud_left = switches;
    w->bud_deadline = 0;
    if (budget_ns) {
        int64_t now = sl__now_ns();
        w->bud_deadline = budget_ns > INT64_MAX - now ? INT64_MAX
                                                      : now + budget_ns;
    }
    w->bud_spent = 0;
    w->bud_victim = NULL;
    w->run_for = 1;
    if (switches || budget_ns)
        sl__jump_slow_set(w, SL_JS_BUDGET);
    /* Main leaves the queue and watches, as in sl_run, until the queue
     * runs dry or the budget is spent (or a throw to main). */
    while (m->next != m && !w->bud_spent) {
        sl_tasklet *next = sl__rq_leave(w, m);
        SL__ASSERT(next && next != m);
        m->wait.result = 0;
        sl__pause_after_switch(w, m);
        w = sl__jump(w, m, next);
        if ((rc = sl__resumed(m, 0)))
            break;
    }
    __atomic_fetch_and(&w->jump_slow, (uint8_t)~SL_JS_BUDGET,
                       __ATOMIC_RELAXED);
    w->run_for = 0;
    sl_tasklet *victim = w->bud_victim; /* with a reference: the caller's */
    w->bud_victim = NULL;
    if (interrupted)
        *interrupted = victim;
    else if (victim)
        sl_tasklet_unref(victim);
    if (rc)
        return rc;
    return w->bud_spent;
}

int sl_tasklet_set_atomic(sl_tasklet *t, bool on)
{
    if (!t || t->is_idle)
        return SL_EINVAL;
    uint64_t mark = SL_LOAD(&t->id) + 1;
    uint64_t old = __atomic_exchange_n(&t->atomic_id, on ? mark : 0,
                                       __ATOMIC_RELAXED);
    return old == mark;
}

sl_tasklet *sl__idle_block(sl_worker *w)
{
    if (sl__rt.mt || SL_LOAD(&sl__rt.nwaits) > 0) {
        sl_tasklet *m = sl__run_for_main(w); /* sl_run_for returns now */
        return m ? m : w->idle; /* it waits for events, or for others */
    }
    sl_tasklet *m = w->main;
    if (w->current == m || m->state == SL_T_BLOCKED)
        return NULL;
    SL__ASSERT(m->state == SL_T_PAUSED);
    m->wait.result = 0;
    sl__rq_append(w, m);
    return m;
}

void sl__main_deadlocked(sl_worker *w)
{
    sl_tasklet *m = w->main;
    SL__ASSERT(w->current != m && !sl__rt.mt && m->state == SL_T_BLOCKED);
    bool won = sl__wait_end(w, m, m->wseq, SL_EDEADLOCK);
    SL__ASSERT(won); /* one worker: nothing else can be ending it */
    (void)won;
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

/* Stackless's tasklet.next / .prev. The run queue is its owner's alone,
 * so it answers for a tasklet runnable on the caller's worker (nobody
 * else can take it out while we read); a waiting tasklet's neighbours are
 * read under its queue's lock, the queue's memory kept from being freed
 * meanwhile by the grace period of sched/wait.c (a tasklet may move on
 * and its old channel be freed between reading where it waits and
 * taking that lock). */
static sl_tasklet *neighbour(const sl_tasklet *t, int dir)
{
    sl_worker *w = sl__self();
    if (!w || !t || t->is_idle)
        return NULL;
    sl_worker *at;
    switch (sl__where(t, &at)) {
    case SL_T_RUNNABLE: /* in at's run-queue circle */
        if (at != w)
            return NULL;
        return dir > 0 ? t->next : t->prev;
    case SL_T_BLOCKED:
    case SL_T_SWITCHING: /* (its waiter is linked before it switches) */
        return sl__waitq_neighbour(w, t, dir);
    default:
        return NULL;
    }
}

sl_tasklet *sl_tasklet_next(const sl_tasklet *t)
{
    return neighbour(t, 1);
}

sl_tasklet *sl_tasklet_prev(const sl_tasklet *t)
{
    return neighbour(t, -1);
}

int sl_getruncount(void)
{
    sl_worker *w = sl__self();
    return w ? w->runcount : SL_ESTATE;
}

int sl_getlivecount(void)
{
    sl_worker *w = sl__self();
    if (!w)
        return SL_ESTATE;
    int n = 0;
    for (int i = 0; i < sl__rt.nworkers; i++)
        n += SL_LOAD(&sl__rt.workers[i]->livecount);
    return n;
}

int sl_worker_index(void)
{
    sl_worker *w = sl__self();
    return w ? w->index : SL_ESTATE;
}

int sl_worker_count(void)
{
    return sl__self() ? sl__rt.nworkers : SL_ESTATE;
}

/* ---- yielding and moving tasklets -------------------------------------- */

/* Entry of the calls that yield: 0 and the caller's worker and tasklet, or
 * the code to return at once. */
static inline int yield_entry(sl_worker **wp, sl_tasklet **cp)
{
    sl_worker *w = sl__self();
    if (sl_unlikely(!w))
        return SL_ESTATE;
    *wp = w;
    *cp = w->current;
    if (sl_unlikely(SL_LOAD(&(*cp)->pend))) {
        if (sl__obs_in_callback()) /* it would take next's error */
            sl__obs_cb_misuse();
        int e = sl__pend_take(*cp);
        if (e)
            return e;
    }
    if (sl_unlikely(sl__check_inbox(w)))
        sl__abandon(w);
    sl__events_due(w);
    return 0;
}

int sl_schedule(void)
{
    sl_worker *w;
    sl_tasklet *cur;
    int rc = yield_entry(&w, &cur);
    if (sl_unlikely(rc))
        return rc;
    sl_tasklet *next = cur->next;
    if (next == cur) { /* alone: nothing switches (unless the watchdog) */
        if (sl__obs_in_callback()) /* as it would where it switches */
            sl__obs_cb_misuse();
        if (sl_unlikely(SL_LOAD(&w->jump_slow) & SL_JS_BUDGET))
            return budget_yield(w, cur);
        return 0;
    }
    sl__maybe_wake_idle(w);
    SL_STORE(&w->current, next);
    sl__jump(w, cur, next);
    return sl__resumed(cur, 0);
}

int sl_schedule_remove(void)
{
    if (sl__obs_in_callback()) /* (sched/observe.c) */
        return SL_ESTATE;
    sl_worker *w;
    sl_tasklet *cur;
    int rc = yield_entry(&w, &cur);
    if (sl_unlikely(rc))
        return rc;
    sl_tasklet *next = sl__rq_leave(w, cur);
    if (!next)
        return SL_EDEADLOCK;
    sl__pause_after_switch(w, cur);
    sl__jump(w, cur, next);
    return sl__resumed(cur, 0);
}

/* The entry of the calls that move a tasklet (insert, remove, run,
 * switch, throw, kill). From a schedule or channel callback: SL_ESTATE
 * (sched/observe.c: the switch in progress may hold t's queue lock, or
 * be t's own; a throw would wait for it to land). */
static int check_target(sl_worker *w, const sl_tasklet *t)
{
    if (!w || sl__obs_in_callback())
        return SL_ESTATE;
    if (!t || t->is_idle)
        return SL_EINVAL;
    return 0;
}

bool sl__claim_paused(sl_tasklet *t)
{
    for (;;) {
        uint8_t st = SL_LOAD_ACQ(&t->state);
        if (st == SL_T_SWITCHING) { /* a switch is landing */
            sched_yield();
            continue;
        }
        if (st != SL_T_PAUSED)
            return false;
        if (__atomic_compare_exchange_n(&t->state, &st,
                                        (uint8_t)SL_T_SWITCHING, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            return true;
    }
}

/* t is ours from PAUSED (sl__claim_paused; with one worker it is just
 * PAUSED): it joins the end of this worker's run queue, or the inbox of
 * the worker it is pinned to. A tasklet that never ran takes its stack
 * promise over (mt). 1 if it joined our queue, 0 if it went to another
 * worker, or SL_ENOMEM (no stack can be promised: it stays PAUSED). */
static int wake_paused(sl_worker *w, sl_tasklet *t)
{
    if (sl__rt.mt && (t->pin < 0 || t->pin == w->index)) {
        int prc = sl__promise_move(w, t);
        if (prc < 0) {
            SL_STORE_REL(&t->state, (uint8_t)SL_T_PAUSED);
            return prc;
        }
    }
    return sl__wake(w, t);
}

int sl_tasklet_insert(sl_tasklet *t)
{
    sl_worker *w = sl__self();
    int rc = check_target(w, t);
    if (rc)
        return rc;
    if (!sl__rt.mt) {
        switch (t->state) {
        case SL_T_RUNNABLE:
        case SL_T_INBOX: /* an offloaded call's end sent it back */
            return 0;
        case SL_T_PAUSED:
            sl__rq_append(w, t);
            return 0;
        default: /* blocked, or dead */
            return SL_ESTATE;
        }
    }
    if (sl__claim_paused(t))
        return (rc = wake_paused(w, t)) < 0 ? rc : 0;
    uint8_t st = SL_LOAD(&t->state);
    return st == SL_T_RUNNABLE || st == SL_T_INBOX ? 0 : SL_ESTATE;
}

/* t, a tasklet of this worker just made PAUSED here by someone else than
 * itself (sl_tasklet_remove), was thrown at (or killed) meanwhile (W6 of
 * sched/wait.h): a thrower that saw it runnable here left it to us. It
 * becomes runnable again and its pending call returns the error. */
static void removed_pending(sl_worker *w, sl_tasklet *t)
{
    if (sl__pend_on(t) && sl__claim_paused(t))
        sl__wake(w, t);
}

int sl_tasklet_remove(sl_tasklet *t)
{
    sl_worker *w = sl__self();
    int rc = check_target(w, t);
    if (rc)
        return rc;
    if (t == w->current)
        return SL_ESTATE; /* use sl_schedule_remove */
    for (;;) {
        sl_worker *at;
        switch (sl__where(t, &at)) {
        case SL_T_PAUSED:
            return 0;
        case SL_T_INBOX:
            if (at != w)
                return SL_ESTATE; /* on its way to another worker */
            sl__inbox_take(w);
            continue;
        case SL_T_RUNNABLE:
            if (at != w)
                return SL_ESTATE; /* in another worker's queue */
            if (t->is_main && sl__rt.mt)
                return SL_ESTATE;
            sl__rq_unlink(w, t);
            /* A wait of its that ended (it has not run since) counts no
             * more: paused, it must not keep the deadlock rules off. */
            sl__wait_account(t);
            SL_STORE(&t->wseq, t->wseq + 2); /* paused anew (worker.c) */
            __atomic_store_n(&t->state, (uint8_t)SL_T_PAUSED,
                             __ATOMIC_SEQ_CST);
            if (sl__rt.mt)
                removed_pending(w, t);
            return 0;
        case SL_T_DEAD:
            return 0; /* in no queue: Stackless's remove is a no-op */
        default:
            return SL_ESTATE;
        }
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
    sl_tasklet *cur = w->current;
    if ((rc = sl__pend_check(cur)))
        return rc;
    if (t == cur)
        return 0;
    int8_t pin = SL_LOAD(&t->pin); /* (a copy-mode tasklet's first run
                                       on another worker may set it) */
    if (pin >= 0 && pin != w->index)
        return SL_ESTATE; /* it may not run on this worker */
    sl_worker *at;
    if (sl__where(t, &at) == SL_T_INBOX && at == w)
        sl__inbox_take(w); /* on its way here: link it now */
    if (sl__rt.mt) {
        if (sl__claim_paused(t)) {
            int prc = sl__promise_move(w, t);
            if (prc < 0) {
                SL_STORE_REL(&t->state, (uint8_t)SL_T_PAUSED);
                return prc;
            }
            sl__rq_append(w, t);
        } else if (sl__where(t, &at) != SL_T_RUNNABLE || at != w) {
            return SL_ESTATE;
        }
    } else {
        if (t->state != SL_T_RUNNABLE && t->state != SL_T_PAUSED)
            return SL_ESTATE; /* blocked, dead, or its offload's end has
                                 not reached us: not runnable here yet */
        if (t->state == SL_T_PAUSED)
            sl__rq_append(w, t);
    }
    if (pause_self) {
        sl__rq_unlink(w, cur);
        sl__pause_after_switch(w, cur);
    }
    SL_STORE(&w->current, t);
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

/* ---- pending errors: throw and kill -------------------------------------- */

int sl__pend_take(sl_tasklet *self)
{
    int e = __atomic_load_n(&self->perr, __ATOMIC_SEQ_CST);
    if (e == SL_EKILLED)
        return e; /* sticky: the flag stays */
    /* The flag first, then the error: a throw that comes later stores
     * both again (the error, then the flag), so it is not missed; one
     * that came before may leave a stale flag, which costs the next
     * blocking call one more look. */
    __atomic_store_n(&self->pend, (uint8_t)0, __ATOMIC_SEQ_CST);
    e = __atomic_load_n(&self->perr, __ATOMIC_SEQ_CST);
    while (e != 0 && e != SL_EKILLED) {
        if (__atomic_compare_exchange_n(&self->perr, &e, 0, false,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            self->ntaken++;
            return e; /* taken: a thrown error is given once */
        }
    }
    if (e == SL_EKILLED) /* a kill came meanwhile: its flag again */
        __atomic_store_n(&self->pend, (uint8_t)1, __ATOMIC_SEQ_CST);
    return e;
}

bool sl__pend_set(sl_tasklet *t, int err)
{
    if (err == SL_EKILLED) {
        __atomic_store_n(&t->perr, SL_EKILLED, __ATOMIC_SEQ_CST);
    } else {
        int old = __atomic_load_n(&t->perr, __ATOMIC_SEQ_CST);
        do {
            if (old == SL_EKILLED)
                return false; /* a kill is never replaced */
        } while (!__atomic_compare_exchange_n(&t->perr, &old, err, false,
                                              __ATOMIC_SEQ_CST,
                                              __ATOMIC_SEQ_CST));
    }
    /* W6: the error, the flag, then (the caller) the state. */
    __atomic_store_n(&t->pend, (uint8_t)1, __ATOMIC_SEQ_CST);
    return true;
}

void sl__pend_put_back(sl_tasklet *self, int err)
{
    int zero = 0;
    if (__atomic_compare_exchange_n(&self->perr, &zero, err, false,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        __atomic_store_n(&self->pend, (uint8_t)1, __ATOMIC_SEQ_CST);
}

/* Throw. Stackless's tasklet.throw(exc, pending) raises exc in t: here t's
 * pending blocking call returns err (or its next one, if it is not in
 * one), once (a kill, err SL_EKILLED, is sticky: every later one returns
 * it). Without SL_THROW_PENDING, t runs now when it can run here (like
 * sl_tasklet_run); with it, or when t runs or is queued on another
 * worker, t is only made runnable and reacts when its turn comes (W6 of
 * sched/wait.h makes sure a wait it is just starting is not missed). */
int sl_tasklet_throw(sl_tasklet *t, int err, int flags)
{
    sl_worker *w = sl__self();
    int rc = check_target(w, t);
    if (rc)
        return rc;
    if (err >= 0 || (flags & ~SL_THROW_PENDING) ||
        (t->is_main && err == SL_EKILLED))
        return SL_EINVAL;
    bool pending = flags & SL_THROW_PENDING;
    sl_tasklet *cur = w->current;
    if (sl__obs_tracing() && err == SL_EKILLED)
        sl__obs_kill(w, t);
    if (t == cur) { /* raised at once, as Stackless does */
        if (err == SL_EKILLED)
            sl__pend_set(t, err);
        return err;
    }
    /* Stackless: a kill of a dead tasklet does nothing, any other throw
     * to it is an error. (Dead is final: the caller holds a reference.) */
    if (SL_LOAD_ACQ(&t->state) == SL_T_DEAD)
        return err == SL_EKILLED ? 0 : SL_ESTATE;
    if (!sl__pend_set(t, err))
        return 0; /* killed already: that is what it gets */
    for (;;) {
        /* The wait generation first (an acquire: wait_begin releases it),
         * then the state: a BLOCKED seen after g is the wait g (or a later
         * one, whose claim with g fails), never an earlier wait while a
         * new one is not yet published. */
        uint32_t g = SL_LOAD_ACQ(&t->wseq);
        sl_worker *at;
        uint8_t st = sl__where(t, &at);
        switch (st) {
        case SL_T_DEAD: /* it ended meanwhile, alive when thrown at */
            return 0;
        case SL_T_SWITCHING: /* a switch lands, or a claim completes */
            sched_yield();
            continue;
        case SL_T_INBOX:
            if (at != w)
                return 0; /* pending: it reacts there */
            sl__inbox_take(w); /* on its way here: link it */
            continue;
        case SL_T_RUNNABLE:
            if (at != w)
                return 0; /* pending: it reacts there */
            if (!SL_LOAD(&t->ctx)) {
                /* Never ran: it dies without running its function (at
                 * once, or when the scheduler reaches it: trampoline). */
                if (!pending)
                    sl__tasklet_discard_new(w, t);
                return 0;
            }
            if (pending)
                return 0; /* runnable: it reacts at its turn */
            goto run;
        case SL_T_BLOCKED:
            if (SL_LOAD(&t->wkind) == SL_W_OFFLOAD)
                return 0; /* reported once the offloaded call returns */
            /* Still pending? With several workers t may have taken the
             * throw (at a call's start, or woken by the post-switch check:
             * W6) and be parked in a later wait, which this throw must
             * not end. Read after g: a wait g published after the taking
             * shows it taken; and while wait g is on, t cannot take it, so
             * a claim of g that succeeds ends it with the error pending. */
            if (!__atomic_load_n(&t->perr, __ATOMIC_SEQ_CST))
                return 0;
            if (!(g & 1) || !sl__claim(t, g)) {
                sched_yield(); /* ended meanwhile: look again */
                continue;
            }
            if (!sl__wait_claimed_end(w, t, SL__EPENDING) || pending)
                return 0; /* queued (here or where it is pinned) */
            goto run;
        case SL_T_PAUSED:
            if (sl__rt.mt && !sl__claim_paused(t))
                continue;
            if (!__atomic_load_n(&t->perr, __ATOMIC_SEQ_CST)) {
                /* taken meanwhile (see above), then paused again */
                SL_STORE_REL(&t->state, (uint8_t)SL_T_PAUSED);
                return 0;
            }
            if (!t->ctx && !pending) { /* (still SWITCHING in mt: ours,
                                          nobody else may insert it) */
                sl__tasklet_discard_new(w, t);
                return 0;
            }
            if ((rc = wake_paused(w, t)) < 0)
                return rc; /* never ran, and no stack for it here */
            if (rc == 0 || pending)
                return 0; /* queued (here or where it is pinned) */
            goto run;
        default:
            SL__ASSERT(!"a tasklet in no known state");
        }
    }
run:
    /* Like run(t): its pending call returns err now, and its reaction
     * has happened by the time we are resumed. */
    SL_STORE(&w->current, t);
    sl__jump(w, cur, t);
    return sl__resumed(cur, 0);
}

/* Kill: Stackless's tasklet.kill() raises TaskletExit; here the throw of
 * SL_EKILLED, which is sticky. A pending kill (kill(pending=True)) is
 * sl_tasklet_throw(t, SL_EKILLED, SL_THROW_PENDING). */
int sl_tasklet_kill(sl_tasklet *t)
{
    return sl_tasklet_throw(t, SL_EKILLED, 0);
}
