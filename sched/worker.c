/* worker.c - M:N machinery: worker threads, idle loops, inboxes, work
 * requests (stealing), parking, and quiescence (when nothing can run
 * anywhere, main gets control back). The design is in sched.c's essay. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "channel/channel.h"
#include "sched/sched.h"

/* A steal request's walk of the run queue stops after this many tasklets
 * in a row that cannot move (sl__poll_inbox). */
#define STEAL_SKIP 64

/* How long an idle worker spins, watching its inbox, before it parks. */
#define SPIN_NS 50000

void sl__spin_lock_slow(uint8_t *l)
{
    for (unsigned i = 0;; i++) {
        while (SL_LOAD(l)) {
            if (i++ < 128) {
                sl_arch_relax();
            } else {
                sched_yield();
            }
        }
        if (!__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
            return;
    }
}

void sl__post_switch(sl_worker *w)
{
    w->post = 0;
    /* The state first: whoever takes a lock below may look at it. */
    if (w->post_pause) {
        SL_STORE_REL(&w->post_pause->state, w->post_state);
        w->post_pause = NULL;
    }
    if (w->post_unlock) {
        sl__spin_unlock(w->post_unlock);
        w->post_unlock = NULL;
    }
    if (w->post_unlocks) {
        for (uint8_t **l = w->post_unlocks; *l; l++)
            sl__spin_unlock(*l);
        w->post_unlocks = NULL;
    }
#if SL_TSAN
    if (w->post_fiber) {
        __tsan_destroy_fiber(w->post_fiber);
        w->post_fiber = NULL;
    }
#endif
}

/* Under sl__rt.lock, target parked: wake it once (futex is the "already
 * kicked" mark). */
static void kick_parked(sl_worker *target)
{
    if (SL_LOAD(&target->futex) == 0) {
        SL_STORE(&target->futex, 1);
        sl__worker_kick(target);
    }
}

/* Under sl__rt.lock: is there anything for w to look at? */
static int flag_value(const sl_worker *w)
{
    return w->inbox_head != NULL || SL_LOAD(&w->steal_req) != 0 ||
           SL_LOAD(&sl__rt.stopping);
}

/* Under sl__rt.lock: append t to w's inbox and wake w if it sleeps. */
static void inbox_push_locked(sl_worker *target, sl_tasklet *t)
{
    t->next = NULL;
    if (target->inbox_tail)
        target->inbox_tail->next = t;
    else
        target->inbox_head = t;
    target->inbox_tail = t;
    SL_STORE(&target->inbox_flag, 1);
    if (target->parked)
        kick_parked(target);
}

void sl__inbox_push(sl_worker *target, sl_tasklet *t)
{
    SL_STORE(&t->worker, target);
    pthread_mutex_lock(&sl__rt.lock);
    SL_STORE_REL(&t->state, (uint8_t)SL_T_RUNNABLE);
    inbox_push_locked(target, t);
    pthread_mutex_unlock(&sl__rt.lock);
    /* One worker: it may be waiting in epoll without being "parked". */
    if (!sl__rt.mt)
        sl__worker_kick(target);
}

bool sl__wake_remote(sl_worker *w, sl_tasklet *t)
{
    (void)w;
    sl_worker *target = sl__rt.workers[t->pin];
    SL_STORE(&t->state, (uint8_t)SL_T_RUNNABLE);
    SL_STORE(&t->worker, target);
    pthread_mutex_lock(&sl__rt.lock);
    inbox_push_locked(target, t);
    pthread_mutex_unlock(&sl__rt.lock);
    return false;
}

/* Owner, at a scheduling point with the current tasklet in the run queue:
 * take the inbox into the run queue and answer a steal request by giving
 * the thief half of the runnable tasklets (from the end of the queue, the
 * ones that would run last here). */
bool sl__poll_inbox(sl_worker *w)
{
    pthread_mutex_lock(&sl__rt.lock);
    sl_tasklet *in = w->inbox_head;
    w->inbox_head = w->inbox_tail = NULL;
    int req = SL_LOAD(&w->steal_req);
    SL_STORE(&w->steal_req, 0);
    SL_STORE(&w->inbox_flag, SL_LOAD(&sl__rt.stopping));
    pthread_mutex_unlock(&sl__rt.lock);

    while (in) {
        sl_tasklet *n = in->next;
        sl__rq_link_before(w->current, in);
        sl__runcount_add(w, 1);
        in = n;
    }
    if (w->index != 0 && SL_LOAD(&sl__rt.stopping))
        return true;
    if (req == 0)
        return false;
    sl_worker *thief = sl__rt.workers[req - 1];
    int give = w->runcount / 2;
    sl_tasklet *list = NULL, *tail = NULL;
    sl_tasklet *t = w->current->prev;
    /* Pinned tasklets (copy-mode ones that ran, above all) cannot go: the
     * walk gives up after STEAL_SKIP of them in a row. Walking a whole
     * queue of cold control blocks at each request cost skynet --stack
     * copy on two workers most of its time (a million runnable tasklets,
     * nearly all pinned, and a request every time the thief woke). */
    int skipped = 0;
    while (give > 0 && t != w->current && skipped < STEAL_SKIP) {
        sl_tasklet *p = t->prev;
        skipped++;
        if (t->pin < 0 && !t->is_main) { /* copy mode: it never ran */
            skipped = 0;
            if (!t->ctx && !t->copy) /* its stack comes from our pool */
                sl__tasklet_prepare(w, t);
            sl__rq_unlink(w, t);
            SL_STORE(&t->worker, thief);
            t->next = NULL;
            if (tail)
                tail->next = t;
            else
                list = t;
            tail = t;
            give--;
        }
        t = p;
    }
    if (!list)
        return false;
    pthread_mutex_lock(&sl__rt.lock);
    for (t = list; t;) {
        sl_tasklet *n = t->next;
        inbox_push_locked(thief, t);
        t = n;
    }
    pthread_mutex_unlock(&sl__rt.lock);
    return false;
}

void sl__abandon(sl_worker *w)
{
    sl_tasklet *cur = w->current;
    w->current = w->idle;
    sl__jump(w, cur, w->idle);
    sl__assert_fail("an abandoned tasklet was resumed", __FILE__, __LINE__);
}

void sl__wake_idle_worker(void)
{
    pthread_mutex_lock(&sl__rt.lock);
    for (int i = 0; i < sl__rt.nworkers; i++) {
        sl_worker *v = sl__rt.workers[i];
        if (v->parked && SL_LOAD(&v->futex) == 0) {
            kick_parked(v);
            break;
        }
    }
    pthread_mutex_unlock(&sl__rt.lock);
}

/* Ask a busy worker for work: it answers at its next scheduling point. */
static void request_work(sl_worker *w)
{
    if (!sl__rt.steal)
        return;
    int n = sl__rt.nworkers;
    for (int k = 1; k < n; k++) {
        sl_worker *v = sl__rt.workers[(w->index + k) % n];
        if (SL_LOAD(&v->runcount) < 2)
            continue;
        int expected = 0;
        if (__atomic_compare_exchange_n(&v->steal_req, &expected,
                                        w->index + 1, false,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            SL_STORE(&v->inbox_flag, 1);
            return;
        }
    }
}

/* Under sl__rt.lock, every worker idle, every inbox empty: nothing can run
 * anywhere. Give main back its control (pinned to worker 0): a main
 * blocked on a channel gets SL_EDEADLOCK, a paused main (sl_run's
 * watchdog, or paused by hand) resumes with the quiescence mark. */
static void wake_main_quiescent(void)
{
    sl_tasklet *m = sl__rt.main;
    uint8_t st = SL_LOAD_ACQ(&m->state);
    if ((st == SL_T_BLOCKED || st == SL_T_WAITING) && m->wkind != SL_W_PLAIN) {
        /* A claimable wait with nothing left that could end it. */
        uint32_t g = SL_LOAD(&m->wseq);
        SL__ASSERT(g & 1);
        bool won = sl__claim(m, g);
        SL__ASSERT(won);
        (void)won;
        sl__channel_unwait_claimed(m);
        m->result = SL_EDEADLOCK;
    } else if (st == SL_T_BLOCKED) {
        sl_channel *ch = m->chan;
        sl__spin_lock(&ch->lock);
        sl__channel_unwait(m);
        sl__spin_unlock(&ch->lock);
        m->result = SL_EDEADLOCK;
    } else {
        SL__ASSERT(st == SL_T_PAUSED);
        m->result = SL__QUIESCENT;
    }
    SL_STORE(&m->state, (uint8_t)SL_T_RUNNABLE);
    inbox_push_locked(sl__rt.workers[0], m);
}

/* Run what gathered in the idle circle (inbox, timers, descriptors): the
 * idle context leaves the circle and its first tasklet runs. Returns when
 * the run queue has emptied again. */
static sl_worker *idle_run(sl_worker *w)
{
    sl_tasklet *idle = w->idle;
    sl_tasklet *first = idle->next;
    idle->prev->next = first;
    first->prev = idle->prev;
    w->current = first;
    w = sl__jump(w, idle, first);
    idle->next = idle->prev = idle;
    return w;
}

/* One worker, nothing runnable, nothing that could end a wait by itself:
 * Stackless's rules give main control back (sched.c, "Deadlock"). */
static void idle_deadlock_one(sl_worker *w)
{
    sl_tasklet *m = w->main;
    if (m->state == SL_T_PAUSED) {
        m->result = 0;
    } else if (m->wkind != SL_W_PLAIN) { /* BLOCKED or WAITING, claimable */
        bool won = sl__claim(m, m->wseq);
        SL__ASSERT(won);
        (void)won;
        sl__channel_unwait_claimed(m);
        m->result = SL_EDEADLOCK;
    } else {
        SL__ASSERT(m->state == SL_T_BLOCKED);
        sl__channel_unwait(m);
        m->result = SL_EDEADLOCK;
    }
    sl__rq_append(w, m);
}

/* The idle loop of worker w: runs on the worker's idle context whenever its
 * run queue is empty. Returns only when the runtime stops (workers 1..N-1;
 * worker 0's never sees the stop: main stops the runtime). Tasklets that
 * become runnable here (inbox, timers, descriptors) gather in a circle
 * headed by the idle context, which then steps out of it. */
static void idle_loop(sl_worker *w)
{
    sl_tasklet *idle = w->idle;
    idle->next = idle->prev = idle;
    for (;;) {
        pthread_mutex_lock(&sl__rt.lock);
        sl_tasklet *in = w->inbox_head;
        w->inbox_head = w->inbox_tail = NULL;
        SL_STORE(&w->steal_req, 0); /* nothing to give: we are empty */
        SL_STORE(&w->inbox_flag, SL_LOAD(&sl__rt.stopping));
        int stop = SL_LOAD(&sl__rt.stopping) && w->index != 0;
        pthread_mutex_unlock(&sl__rt.lock);
        if (stop)
            return;
        while (in) {
            sl_tasklet *n = in->next;
            sl__rq_link_before(idle, in);
            sl__runcount_add(w, 1);
            in = n;
        }
        sl__events_run(w, false);
        if (idle->next != idle) {
            w = idle_run(w);
            continue;
        }

        if (!sl__rt.mt) {
            if (SL_LOAD(&sl__rt.nwaits) == 0) {
                idle_deadlock_one(w);
                w = idle_run(w);
            } else {
                sl__events_run(w, true);
            }
            continue;
        }

        __atomic_add_fetch(&sl__rt.nspinning, 1, __ATOMIC_RELAXED);
        request_work(w);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            if (SL_LOAD(&w->inbox_flag))
                break;
            for (int i = 0; i < 32; i++)
                sl_arch_relax();
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if ((t1.tv_sec - t0.tv_sec) * 1000000000L +
                    (t1.tv_nsec - t0.tv_nsec) > SPIN_NS)
                break;
        }
        __atomic_sub_fetch(&sl__rt.nspinning, 1, __ATOMIC_RELAXED);
        if (SL_LOAD(&w->inbox_flag))
            continue;

        pthread_mutex_lock(&sl__rt.lock);
        if (flag_value(w)) {
            pthread_mutex_unlock(&sl__rt.lock);
            continue;
        }
        sl__rt.nidle++;
        if (sl__rt.nidle == sl__rt.nworkers &&
            SL_LOAD(&sl__rt.nwaits) == 0) {
            bool empty = true;
            for (int i = 0; i < sl__rt.nworkers; i++)
                empty = empty && !sl__rt.workers[i]->inbox_head;
            if (empty) {
                wake_main_quiescent();
                sl__rt.nidle--;
                pthread_mutex_unlock(&sl__rt.lock);
                continue;
            }
        }
        w->parked = 1;
        SL_STORE(&sl__rt.nparked, sl__rt.nparked + 1);
        SL_STORE(&w->futex, 0);
        pthread_mutex_unlock(&sl__rt.lock);
        /* Parked: in epoll until a kick (eventfd), a descriptor or the
         * next deadline. What it wakes gathers in the idle circle. */
        sl__events_run(w, true);
        pthread_mutex_lock(&sl__rt.lock);
        w->parked = 0;
        SL_STORE(&sl__rt.nparked, sl__rt.nparked - 1);
        sl__rt.nidle--;
        pthread_mutex_unlock(&sl__rt.lock);
    }
}

/* Worker 0's idle context runs on a stack of its own (main's is taken). */
static void idle0_entry(sl_transfer tr)
{
    idle_loop(sl__resume_fresh(tr));
    sl__assert_fail("worker 0's idle loop returned", __FILE__, __LINE__);
}

/* Set up w's idle context; worker 0's gets a stack from its pool. */
int sl__idle_init(sl_worker *w)
{
    sl_tasklet *i = &w->idle_block;
    i->is_idle = 1;
    i->pin = (int8_t)w->index;
    i->worker = w;
    i->state = SL_T_PAUSED;
    i->refs = 1;
    w->idle = i;
    if (w->index != 0) {
#if SL_TSAN
        i->tsan_fiber = NULL; /* set by the thread itself */
#endif
        return 0;
    }
    int rc = sl__stack_reserve(&w->stacks);
    if (rc < 0)
        return rc;
    i->stack = sl__stack_take(&w->stacks);
    char *top = (char *)sl__stack_top(&w->stacks, i->stack) - 64;
    i->ctx = make_fcontext(top, w->stacks.usable - 64, idle0_entry);
#if SL_ASAN
    i->asan_bottom = i->stack + (w->stacks.size - w->stacks.usable);
    i->asan_size = w->stacks.usable;
#endif
#if SL_TSAN
    i->tsan_fiber = __tsan_create_fiber(0);
#endif
    return 0;
}

void sl__altstack_init(void);
void sl__altstack_fini(void);

static void *worker_thread(void *arg)
{
    sl_worker *w = arg;
    sl__tls_worker = w;
    sl__altstack_init();
#if SL_TSAN
    w->idle->tsan_fiber = __tsan_get_current_fiber();
#endif
    w->current = w->idle;
    idle_loop(w);
    sl__altstack_fini();
    sl__tls_worker = NULL;
    return NULL;
}

int sl__workers_start(void)
{
    sl__rt.nstarted = 1; /* worker 0 is the calling thread */
    for (int i = 1; i < sl__rt.nworkers; i++) {
        sl_worker *w = sl__rt.workers[i];
        int rc = pthread_create(&w->thread, NULL, worker_thread, w);
        if (rc != 0)
            return -rc; /* sl__workers_stop joins the ones we have */
        sl__rt.nstarted = i + 1;
    }
    return 0;
}

void sl__workers_stop(void)
{
    pthread_mutex_lock(&sl__rt.lock);
    SL_STORE(&sl__rt.stopping, 1);
    for (int i = 1; i < sl__rt.nworkers; i++) {
        sl_worker *w = sl__rt.workers[i];
        SL_STORE(&w->inbox_flag, 1);
        if (w->parked)
            kick_parked(w);
    }
    pthread_mutex_unlock(&sl__rt.lock);
    for (int i = 1; i < sl__rt.nstarted; i++)
        pthread_join(sl__rt.workers[i]->thread, NULL);
}
