/* sched.h - workers, their run queues and the switch (private, inlined into
 * the tasklet and channel paths). See sched.c for the design essay. */
#ifndef SL_SCHED_H
#define SL_SCHED_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "arch/arch.h"
#include "tasklet/tasklet.h"
#include "tasklet/stack.h"
#include "tasklet/copystack.h"

#if SL_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#if SL_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Relaxed atomic access to fields another worker may read (or, for
 * state, claim). On x86 these are plain moves; they keep TSan exact. */
#define SL_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define SL_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define SL_LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define SL_STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
/* A hot path's one look at a flag another thread may set at any time (the
 * observe flag, sched/observe.h): a plain read, which the compiler folds
 * into the compare (x86: `cmpb $0, flag`, where an atomic load costs a
 * load and a test: one instruction per call, 1% of a channel message).
 * For a byte read once per call and never in a loop that could keep it
 * in a register, that is what a relaxed load compiles to anyway; TSan
 * builds make it one, so TSan still sees every access as atomic. */
#if SL_TSAN
#define SL_PEEK(p) SL_LOAD(p)
#else
#define SL_PEEK(p) (*(p))
#endif

/* A byte spinlock: channel locks. Critical sections are a few dozen
 * instructions, so spinning (with the CPU's relax hint, then yielding)
 * beats sleeping. */
void sl__spin_lock_slow(uint8_t *l);
static inline void sl__spin_lock(uint8_t *l)
{
    if (sl_likely(!__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)))
        return;
    sl__spin_lock_slow(l);
}
static inline void sl__spin_unlock(uint8_t *l)
{
    __atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* One per OS thread running tasklets. Fields marked (owner) are touched
 * only by the worker's own thread; (rt.lock) under the runtime lock;
 * (atomic) read by other workers with relaxed loads. */
struct sl_worker {
    sl_tasklet *current;   /* (owner) running tasklet; the head of the run
                              queue circle whenever it is runnable; the
                              idle context when the queue is empty (mt)   */
    sl_tasklet *prev;      /* (owner) the tasklet we switch away from: the
                              resumed side stores its context here        */
    int runcount;          /* (owner, atomic) tasklets in the run queue    */
    int livecount;         /* (owner, atomic) spawned here minus ended here*/
    int inbox_flag;        /* (atomic) set by others: inbox, steal request,
                              stop; the owner looks at scheduling points  */
    uint32_t poll_tick;    /* (owner) scheduling points until timers and
                              descriptors are looked at again            */
    uint8_t post;          /* (owner) work left for the resumed side       */
    uint8_t jump_slow;     /* (atomic) switches take sl__jump_slow while
                              any SL_JS_* bit is set (below)             */
    uint8_t park_state;    /* (owner) the state park gets                  */
    uint8_t *post_unlock;  /* (owner) lock to release after the switch     */
    sl_tasklet *trace_skip; /* (atomic) the trace recorded the next switch,
                               to this tasklet, already (sched/trace.c) */
    uint8_t **post_unlocks;/* (owner) more of them (select), NULL-ended;
                              they live on the parked tasklet's frames    */
    sl_tasklet *park;      /* (owner) the tasklet that just left: it gets
                              park_state after the switch (mt)           */
    sl_tasklet **post_unrefs; /* (owner) references to drop after the next
                              switch (pinned spawns), npost_unrefs of them */
    uint32_t npost_unrefs, cap_post_unrefs;
#if SL_TSAN
    void *post_fiber;      /* (owner) TSan fiber of a tasklet that ended   */
#endif
    sl_stack_pool stacks;  /* (owner) */
    sl_slab slab;          /* (owner) */
    sl_tasklet *main;      /* the main tasklet (worker 0's thread)         */
    sl_tasklet *idle;      /* (owner) idle context, mt only                */
    int index;             /* 0 .. workers-1                               */
    int steal_req;         /* (atomic) thief index + 1, or 0               */
    sl_tasklet *inbox_head, *inbox_tail; /* (rt.lock) FIFO via ->next      */
    int parked;            /* (rt.lock) sleeping on futex                  */
    uint32_t futex;        /* (atomic) park word                           */
    pthread_t thread;      /* workers 1..N-1                               */
    uint64_t next_id;      /* (owner) single worker only                   */
    size_t promise_refund; /* (atomic) stack promises others took over     */
    sl_tasklet graveyard;  /* stands in for a tasklet that ended: the next
                              tasklet writes the dead context here        */
    sl_tasklet idle_block; /* the idle context's control block (mt)        */
    sl_tasklet main_block; /* main's control block (worker 0)              */
    /* -- timers and descriptors (sched/event.c) -- */
    int epfd;              /* epoll instance: descriptors and evfd         */
    int evfd;              /* eventfd: other threads wake us through it    */
    struct sl_timer *timers;/* (owner) binary heap by deadline, with stale
                              entries (ended waits) dropped lazily       */
    size_t ntimers, timers_cap;
    uint64_t timer_seq;    /* (owner) ties broken by arming order          */
    int timers_live;       /* (atomic) armed timers whose wait goes on     */
    int fd_waits;          /* (atomic) sl_wait_fd calls parked here        */
    struct sl_fdslot *fds; /* (owner) per descriptor: who waits for what   */
    int nfds;
    struct sl_fdcheck *fdchecks; /* (owner) ring of waits parked without a
                              check, to re-check once old (event.c)      */
    uint32_t fdchecks_cap, fdchecks_head, fdchecks_len;
    struct sl_copystate copy; /* (owner) copy-mode stacks (copystack.h)    */
    /* -- sl_run_for's watchdog (sched.c): main's worker, while it runs -- */
    uint8_t run_for;       /* (owner) main is in sl_run_for: a run queue
                              that runs dry gives main control at once   */
    uint8_t bud_spent;     /* (owner) the budget is spent: the next
                              scheduling point of a tasklet that is not
                              atomic returns to main                     */
    uint64_t bud_left;     /* (owner) scheduling points left; 0: no limit */
    int64_t bud_deadline;  /* (owner) sl__now_ns() it ends at; 0: none    */
    sl_tasklet *bud_victim;/* (owner) the tasklet it took out, with a
                              reference for sl_run_for's caller, or NULL */
    /* -- looking at a wait queue (sched/wait.c, sl_tasklet_next) -- */
    uint32_t inspect_seq;  /* (owner writes, atomic) odd while this worker
                              reads a wait queue it found through a
                              tasklet; retirers wait for it to move on   */
};

/* The bits of worker->jump_slow: why its switches take sl__jump_slow.
 * Several reasons come and go on their own, so each is set with an atomic
 * OR and cleared with an atomic AND: others set SL_JS_STACK, the owner
 * sets and clears SL_JS_BUDGET, sched/observe.c sets and clears
 * SL_JS_OBSERVE in every worker. */
enum {
    SL_JS_STACK = 1,   /* copy mode is on, or a stack slot has a canary    */
    SL_JS_BUDGET = 2,  /* sl_run_for's budget is armed: each switch counts
                          (sl__budget_switch)                            */
    SL_JS_OBSERVE = 4, /* a callback or the trace watches (observe.h)     */
};
static inline void sl__jump_slow_set(sl_worker *w, uint8_t bit)
{
    __atomic_fetch_or(&w->jump_slow, bit, __ATOMIC_RELAXED);
}

/* The runtime: one per process. */
struct sl_runtime {
    int nworkers;
    int nstarted;             /* worker threads running (incl. worker 0)  */
    bool mt;                  /* nworkers > 1: channels lock, wakeups may
                                 cross workers                           */
    bool steal;               /* idle workers request work               */
    sl_worker **workers;
    sl_tasklet *main;
    pthread_mutex_t lock;     /* inboxes, idle/park, quiescence           */
    int nidle;                /* (lock) workers in their idle loop        */
    int nparked;              /* (lock; atomic reads) asleep on futex     */
    int nspinning;            /* (atomic) idle and looking for work       */
    int quiescent;            /* (lock) main was woken: nothing ran since */
    int stopping;             /* (atomic) sl_shutdown in progress         */
    uint64_t next_id;         /* (atomic) ids when mt                     */
    size_t stack_size;
    int stack_mode;           /* SL_STACK_FIXED or SL_STACK_COPY: default */
    int copy_on;              /* (lock; atomic reads) copy mode set up     */
    int nwaits;               /* (atomic) waits that end by themselves: a
                                 timeout, a descriptor, an offloaded call.
                                 While > 0 nothing is deadlocked          */
    int offload_threads;      /* sl_config.offload_threads                */
    struct sl_offload_pool *offload; /* started by the first sl_offload   */
    int inspecting;           /* (atomic) workers reading a wait queue found
                                 through a tasklet now (sched/wait.c)     */
};
extern struct sl_runtime sl__rt;

/* Why a channel operation leaves its inline path for channel/channel.c's
 * out-of-line one: one byte, so that the inline path tests once. Each
 * bit is set and cleared with an atomic OR and AND (relaxed reads). */
enum {
    SL_CS_MT = 1, /* several workers (sl__rt.mt): channels lock       */
    SL_CS_CB = 2, /* a schedule or channel callback is set (observe.c) */
};
extern uint8_t sl__chan_slow;
static inline void sl__chan_slow_set(uint8_t bit, bool on)
{
    if (on)
        __atomic_fetch_or(&sl__chan_slow, bit, __ATOMIC_RELAXED);
    else
        __atomic_fetch_and(&sl__chan_slow, (uint8_t)~bit, __ATOMIC_RELAXED);
}

/* The worker of the calling thread, NULL when the runtime is not running
 * here. Read once at each public entry point; after a switch use the
 * worker the switch returns (a tasklet may resume on another thread). */
extern __thread sl_worker *sl__tls_worker
    __attribute__((tls_model("initial-exec")));

#ifndef SL_ARCH_TLS_CACHED
#error "arch/: SL_ARCH_TLS_CACHED undefined"
#endif
#if SL_ARCH_TLS_CACHED
/* &sl__tls_worker minus the thread pointer: the same in every thread (the
 * initial-exec model puts it in the static TLS block at a fixed offset,
 * never 0 on aarch64, whose thread pointer addresses the 16-byte TCB),
 * set by a constructor in sched.c before main runs. */
extern uintptr_t sl__tls_worker_off;
static inline sl_worker *sl__self(void)
{
    uintptr_t off = sl__tls_worker_off;
    if (sl_unlikely(!off)) /* before the constructor (another one's call):
                              no switch has happened yet */
        return sl__tls_worker;
    return *(sl_worker *const *)(sl_arch_thread_pointer() + off);
}
#else
static inline sl_worker *sl__self(void) { return sl__tls_worker; }
#endif

/* ---- run queue: a circle through next/prev whose head is current ------- */

/* Link t just before pos (at the end of the circle headed by pos). */
static inline void sl__rq_link_before(sl_tasklet *pos, sl_tasklet *t)
{
    t->next = pos;
    t->prev = pos->prev;
    pos->prev->next = t;
    pos->prev = t;
}

static inline void sl__runcount_add(sl_worker *w, int d)
{
    SL_STORE(&w->runcount, w->runcount + d);
}

/* t joins this worker's run queue. The worker first, then the state (a
 * release): see sl__where. */
static inline void sl__make_runnable(sl_worker *w, sl_tasklet *t)
{
    SL_STORE(&t->worker, w);
    SL_STORE_REL(&t->state, (uint8_t)SL_T_RUNNABLE);
    sl__runcount_add(w, 1);
}

/* t's state and worker, read so that they belong together: another worker
 * may be moving t (waking it into its queue or inbox, or giving it to a
 * thief) and a torn pair - RUNNABLE with the worker it is leaving, say -
 * would make the reader act on a tasklet in someone else's queue. The
 * writers store worker and state in the order that keeps every pair a
 * reader can see safe: a wake stores the new worker, then the state; a
 * steal stores INBOX, then the thief. Reading the worker on both sides of
 * the state (seq_cst: it is also the kill's read, sched/wait.h W6) and
 * retrying when they differ leaves only pairs of one moment. */
static inline uint8_t sl__where(const sl_tasklet *t, sl_worker **where)
{
    for (;;) {
        sl_worker *a = SL_LOAD_ACQ(&t->worker);
        uint8_t st = __atomic_load_n(&t->state, __ATOMIC_SEQ_CST);
        sl_worker *b = SL_LOAD_ACQ(&t->worker);
        if (a == b) {
            *where = a;
            return st;
        }
    }
}

/* Append t to the end of the run queue (just before the current one). */
static inline void sl__rq_append(sl_worker *w, sl_tasklet *t)
{
    sl__rq_link_before(w->current, t);
    sl__make_runnable(w, t);
}

/* Put t right after the current tasklet: switching to it then leaves the
 * current one at the end (Stackless's "move target after source"). */
static inline void sl__rq_link_after_current(sl_worker *w, sl_tasklet *t)
{
    sl__rq_link_before(w->current->next, t);
    sl__make_runnable(w, t);
}

/* (t's next and prev mean nothing once it is out of the queue.) */
static inline void sl__rq_unlink(sl_worker *w, sl_tasklet *t)
{
    t->prev->next = t->next;
    t->next->prev = t->prev;
    sl__runcount_add(w, -1);
}

/* ---- the switch -------------------------------------------------------- */

void sl__tasklet_prepare(sl_worker *w, sl_tasklet *t); /* first run: stack */
/* A reference to t held until w's current tasklet next switches (the
 * handle promise of docs/tasklet.md for a tasklet that leaves w before
 * that): room first (SL_ENOMEM), then the reference. */
int sl__reserve_unref(sl_worker *w);
void sl__defer_unref(sl_worker *w, sl_tasklet *t);
/* Report that t overflowed its stack, by id and name, and abort. */
void sl__overflow_abort(const sl_tasklet *t) __attribute__((noreturn, cold));
/* The resumed side's leftovers (mt, TSan): unlock, publish a parked state. */
void sl__post_switch(sl_worker *w);

/* The jump of a switch from `from` (running) to the ready context `to`;
 * returns once `from` is resumed, with the worker it resumed on. */
static inline sl_worker *sl__jump_to(sl_worker *w, sl_tasklet *from,
                                     sl_tasklet *to)
{
    w->prev = from;
#if SL_ASAN
    __sanitizer_start_switch_fiber(&from->asan_fake, to->asan_bottom,
                                   to->asan_size);
#endif
#if SL_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    sl_transfer tr = sl__jump_fcontext(to->ctx, w);
    w = (sl_worker *)tr.data;
    SL_STORE(&w->prev->ctx, tr.fctx);
#if SL_ASAN
    __sanitizer_finish_switch_fiber(w->current->asan_fake,
                                    &w->prev->asan_bottom,
                                    &w->prev->asan_size);
#endif
    if (sl_unlikely(w->post))
        sl__post_switch(w);
    return w;
}

/* Switch from `from` (the running tasklet) to `to`, which must already be
 * w->current. Returns when `from` is resumed, with the worker it resumed
 * on. The tasklet that resumes us stores our context through w->prev.
 * With copy mode on (or canary-guarded stacks), while sl_run_for's
 * budget is armed or while a callback or the trace watches, the switch
 * is sl__jump_slow's (tasklet/copystack.c). */
static inline sl_worker *sl__jump(sl_worker *w, sl_tasklet *from,
                                  sl_tasklet *to)
{
    if (sl_unlikely(SL_LOAD(&w->jump_slow)))
        return sl__jump_slow(w, from, to);
    if (sl_unlikely(!to->ctx))
        sl__tasklet_prepare(w, to);
    return sl__jump_to(w, from, to);
}

/* First code of a context made by make_fcontext (a tasklet's first run,
 * worker 0's idle loop): what sl__jump does after its jump. */
static inline sl_worker *sl__resume_fresh(sl_transfer tr)
{
    sl_worker *w = (sl_worker *)tr.data;
    SL_STORE(&w->prev->ctx, tr.fctx);
#if SL_ASAN
    __sanitizer_finish_switch_fiber(NULL, &w->prev->asan_bottom,
                                    &w->prev->asan_size);
#endif
    if (w->post)
        sl__post_switch(w);
    return w;
}

/* ---- pending errors: sl_tasklet_throw and kill ------------------------- */

/* The result of a wait that a pending error ended (a throw or a kill, by
 * the thrower or by the post-switch check, sched/wait.h W6). The tasklet
 * turns it into the error itself once it runs (sl__wait_result), so that
 * a one-shot throw is taken exactly once, by the call it ended. */
#define SL__EPENDING INT_MIN

/* The calling tasklet's pending error, taken: SL_EKILLED stays (a kill is
 * sticky), a thrown code is cleared (one-shot). 0 if none (t->pend may be
 * a stale hint). Only the tasklet itself takes its errors. */
int sl__pend_take(sl_tasklet *self) __attribute__((cold, noinline));

/* Make err (< 0) t's pending error and raise its flag (W6: the caller
 * reads t's state after this). SL_EKILLED replaces anything and is never
 * replaced: false (nothing changed) if t is killed and err is not a kill.
 * A later throw replaces an earlier one not yet taken. */
bool sl__pend_set(sl_tasklet *t, int err);

/* A thrown error err that the calling tasklet took in one part of a call
 * made of several is pending again, for its next blocking call, unless
 * another one (or a kill) came meanwhile. */
void sl__pend_put_back(sl_tasklet *self, int err);

/* The check at the start of a blocking call: 0 to go on, or the error it
 * must return instead (kill first: docs/errors.md). */
static inline int sl__pend_check(sl_tasklet *self)
{
    if (sl_likely(!__atomic_load_n(&self->pend, __ATOMIC_SEQ_CST)))
        return 0;
    return sl__pend_take(self);
}

/* Is an error pending for t (a snapshot of perr, seq_cst: the parking
 * side's read of W6)? */
static inline bool sl__pend_on(const sl_tasklet *t)
{
    return __atomic_load_n(&t->pend, __ATOMIC_SEQ_CST) &&
           __atomic_load_n(&t->perr, __ATOMIC_SEQ_CST) != 0;
}

/* The outcome of a call that carries no data (a yield, run, switch) once
 * the caller runs again: its pending error, or result. */
static inline int sl__resumed(sl_tasklet *self, int result)
{
    if (sl_unlikely(SL_LOAD(&self->pend))) {
        int e = sl__pend_take(self);
        if (e)
            return e;
    }
    return result;
}

/* New work appeared on w (a spawn, a yield with others waiting): if some
 * worker sleeps and none is already looking for work, wake one to ask
 * for it. Channel wakeups do not call this: a woken partner stays on the
 * waker's core (see the essay in sched.c). */
void sl__wake_idle_worker(void);
static inline void sl__maybe_wake_idle(sl_worker *w)
{
    if (sl_unlikely(SL_LOAD(&sl__rt.nparked) > 0) && w->runcount >= 2 &&
        SL_LOAD(&sl__rt.nspinning) == 0 && sl__rt.steal)
        sl__wake_idle_worker();
}

/* m->wait.result of a main woken because nothing can run anywhere (mt). */
#define SL__QUIESCENT 1

/* Work for the owner at a scheduling point: inbox, steal request, stop.
 * True when this worker must stop running tasklets (sl_shutdown). */
bool sl__poll_inbox(sl_worker *w);
static inline bool sl__check_inbox(sl_worker *w)
{
    if (sl_unlikely(SL_LOAD(&w->inbox_flag)))
        return sl__poll_inbox(w);
    return false;
}

/* Timers due and descriptors ready, looked at every SL_POLL_EVERY
 * switches (yields, resumes after a block, ends), so a busy worker still
 * serves them. Call with no lock held: firing a timer takes the lock of
 * the queue its tasklet waits in. */
#define SL_POLL_EVERY 128
void sl__events_tick(sl_worker *w);
static inline void sl__events_due(sl_worker *w)
{
    if (sl_unlikely(--w->poll_tick == 0))
        sl__events_tick(w);
}

/* sl_shutdown is stopping this worker: leave the current tasklet where it
 * is (it is discarded) and go to the idle context, which ends the thread. */
void sl__abandon(sl_worker *w) __attribute__((noreturn));

/* ---- leaving the run queue with nothing else runnable ------------------ */

/* The current tasklet is about to block or be paused and is alone in the run
 * queue. Returns the tasklet (or idle context) to run instead, or NULL
 * when the caller must get SL_EDEADLOCK instead of blocking (one worker:
 * it is main, or main is itself blocked on a channel). With one worker
 * the tasklet returned is main, put back in the run queue; its pausing
 * call then returns 0. */
sl_tasklet *sl__idle_block(sl_worker *w);

/* Main is in sl_run_for and the run queue of w (its worker) runs dry:
 * main, claimed and put in the run queue (it runs next), or NULL (not in
 * sl_run_for, or on its way back already). */
sl_tasklet *sl__run_for_main(sl_worker *w);

/* Same for a tasklet that ends (one worker): main runs next, put back in
 * the run queue; when it is blocked, its wait is ended with SL_EDEADLOCK
 * (sl__main_deadlocked). */
void sl__main_deadlocked(sl_worker *w);
static inline sl_tasklet *sl__idle_end(sl_worker *w)
{
    sl_tasklet *m = w->main;
    if (sl_unlikely(m->state == SL_T_BLOCKED)) {
        sl__main_deadlocked(w);
    } else {
        m->wait.result = 0; /* paused: sl_run's usual end */
        sl__rq_append(w, m);
    }
    return m;
}

/* Take the current tasklet out of the run queue (it blocks or pauses) and
 * make the next one current. Returns that next tasklet, or NULL (nothing
 * changed) when blocking would deadlock. */
static inline sl_tasklet *sl__rq_leave(sl_worker *w, sl_tasklet *cur)
{
    sl_tasklet *next = cur->next;
    if (sl_unlikely(next == cur)) {
        next = sl__idle_block(w);
        if (!next)
            return NULL;
        if (next == w->idle) { /* mt: the queue empties, idle takes over */
            cur->next = cur->prev = NULL;
            sl__runcount_add(w, -1);
            SL_STORE(&w->current, next);
            return next;
        }
    }
    sl__rq_unlink(w, cur);
    SL_STORE(&w->current, next);
    __builtin_prefetch(next->next); /* likely the one after it: cold */
    return next;
}

/* Give the current tasklet state st (PAUSED or BLOCKED) once it has
 * switched away (mt: another worker may take it the moment it shows that
 * state, so not before: sched/wait.h, W3). */
static inline void sl__publish_after_switch(sl_worker *w, sl_tasklet *cur,
                                            uint8_t st)
{
    if (sl__rt.mt) {
        SL_STORE(&cur->state, (uint8_t)SL_T_SWITCHING);
        w->park = cur;
        w->park_state = st;
        w->post = 1;
    } else {
        cur->state = st;
    }
}

/* Pausing: cur leaves the run queue for no wait. Its wseq moves on by 2
 * (it stays even: no wait is on), so that one pausing can be told from a
 * later one (sl__post_switch's kill check). */
static inline void sl__pause_after_switch(sl_worker *w, sl_tasklet *cur)
{
    /* Read atomically too: a thrower's claim of cur's last wait wrote it
     * (a compare-and-swap) on another thread. None can write it now (no
     * wait is on: every claim's compare fails), so load + store loses
     * nothing. (TSan: channel_w2, throws_into_a_tasklet_blocking_...) */
    SL_STORE(&cur->wseq, SL_LOAD(&cur->wseq) + 2);
    sl__publish_after_switch(w, cur, SL_T_PAUSED);
}

/* Take a PAUSED tasklet (mt: another worker may race us for it; a switch
 * into PAUSED may be landing). True if we own it now: it is SWITCHING, in
 * no queue, and we must give it a state. */
bool sl__claim_paused(sl_tasklet *t);

/* Link the tasklets in w's inbox into its run queue now (owner, current
 * in the run queue). */
void sl__inbox_take(sl_worker *w);

/* sl__rt.nwaits += d (waits that end by themselves). Atomic even with one
 * worker: an offload helper ends such a wait from its own thread. */
static inline void sl__nwaits_add(int d)
{
    __atomic_add_fetch(&sl__rt.nwaits, d, __ATOMIC_RELAXED);
}

/* Monotonic nanoseconds; the deadline of a timeout in ms (0: none). */
int64_t sl__now_ns(void);
int64_t sl__deadline(int64_t timeout_ms);
/* Arm a timer on w for wait gen of t (the current tasklet); counts it in
 * nwaits and in t's wcount (SL_WC_TIMER), undone by sl__wait_account.
 * SL_ENOMEM if the heap cannot grow. */
int sl__timer_arm(sl_worker *w, sl_tasklet *t, uint32_t gen,
                  int64_t deadline);

/* Append t to target's inbox from any thread: t must be claimed (its wait,
 * or from PAUSED) and its switch landed. It is INBOX until target links it
 * into its run queue. */
void sl__inbox_push(sl_worker *target, sl_tasklet *t);
/* Wake w's thread if it waits in epoll (eventfd). */
void sl__worker_kick(sl_worker *w);
/* Per-worker epoll/eventfd and timer heap: set up and torn down. */
int sl__events_init(sl_worker *w);
void sl__events_fini(sl_worker *w);
/* The idle loop's view: run due timers and ready descriptors now (timeout
 * 0) or wait for the first of them, an inbox kick or the next deadline
 * (block). Woken tasklets join w's run queue (the idle circle). */
void sl__events_run(sl_worker *w, bool block);
void sl__offload_stop(void);
/* In a child just forked from a process running the runtime (mp/): forget
 * the inherited runtime so that the child can sl_init() its own. */
void sl__fork_child_reset(void);

/* Wake t, whose wait w's tasklet ended or which it claimed from PAUSED: it
 * joins w's run queue at the end, or the inbox of the worker it is pinned
 * to. Returns true if it joined w's queue. */
bool sl__wake_remote(sl_worker *w, sl_tasklet *t);
static inline bool sl__wake(sl_worker *w, sl_tasklet *t)
{
    if (sl_unlikely(t->pin >= 0) && t->pin != w->index)
        return sl__wake_remote(w, t);
    sl__rq_append(w, t);
    return true;
}

#endif /* SL_SCHED_H */
