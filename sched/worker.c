/* worker.c - M:N machinery: worker threads, idle loops, inboxes, work
 * requests (stealing), parking, and quiescence (when nothing can run
 * anywhere, main gets control back). The design is in sched.c's essay. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "sched/wait.h"

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

/* The tasklet p just parked (PAUSED, published by the caller) has an
 * error pending (a kill or a throw that came meanwhile: W6): take it back
 * from PAUSED and send it home, where its pausing call returns the error.
 * g is the wseq it paused with: if it moved on, p was inserted (and maybe
 * paused again, or even ended and its block reused) by someone else
 * meanwhile, who answers for it. */
static void pause_pending(sl_tasklet *p, uint32_t g)
{
    if (!sl__claim_paused(p))
        return;
    if (SL_LOAD(&p->wseq) != g) {
        SL_STORE_REL(&p->state, (uint8_t)SL_T_PAUSED); /* not ours */
        return;
    }
    sl__inbox_push(p->pin >= 0 ? sl__rt.workers[p->pin]
                               : SL_LOAD(&p->worker), p);
}

void sl__post_switch(sl_worker *w)
{
    w->post = 0;
    sl_tasklet *p = w->park;
    uint32_t pend_gen = 0; /* a wait of p that a pending error ends */
    if (p) {
        /* W3: the state first: whoever takes a lock below may look at
         * it. W6: then look at the pending error (the store is a full
         * fence). */
        w->park = NULL;
        uint8_t st = w->park_state;
        uint32_t g = SL_LOAD(&p->wseq);
        __atomic_store_n(&p->state, st, __ATOMIC_SEQ_CST);
        if (sl_unlikely(sl__pend_on(p))) {
            if (st == SL_T_PAUSED)
                pause_pending(p, g);
            else if (SL_LOAD(&p->wkind) != SL_W_OFFLOAD)
                pend_gen = g; /* ended below, once the locks are free */
        }
    }
    if (w->post_unlock) {
        sl__spin_unlock(w->post_unlock);
        w->post_unlock = NULL;
    }
    if (w->post_unlocks) {
        /* The list lives on the parked tasklet's frames, which it may
         * reuse once the last lock is free: read each entry before
         * releasing the previous lock. */
        uint8_t **l = w->post_unlocks;
        w->post_unlocks = NULL;
        uint8_t *cur = *l;
        while (cur) {
            uint8_t *next = *++l;
            sl__spin_unlock(cur);
            cur = next;
        }
    }
    if (sl_unlikely(w->npost_unrefs)) {
        for (uint32_t i = 0; i < w->npost_unrefs; i++)
            sl_tasklet_unref(w->post_unrefs[i]);
        w->npost_unrefs = 0;
    }
#if SL_TSAN
    if (w->post_fiber) {
        __tsan_destroy_fiber(w->post_fiber);
        w->post_fiber = NULL;
    }
#endif
    /* A claim with the generation read before the unlocks: if p's wait
     * ended meanwhile (or p is even gone), the claim fails. */
    if (sl_unlikely(pend_gen & 1))
        (void)sl__wait_end(NULL, p, pend_gen, SL__EPENDING);
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
    SL_STORE_REL(&t->state, (uint8_t)SL_T_INBOX);
    inbox_push_locked(target, t);
    pthread_mutex_unlock(&sl__rt.lock);
    /* One worker: it may be waiting in epoll without being "parked". */
    if (!sl__rt.mt)
        sl__worker_kick(target);
}

bool sl__wake_remote(sl_worker *w, sl_tasklet *t)
{
    (void)w;
    sl__inbox_push(sl__rt.workers[t->pin], t);
    return false;
}

/* Link the tasklets of w's inbox (INBOX for w) into its run queue (or the
 * idle circle) before head. Owner only. */
static void inbox_link(sl_worker *w, sl_tasklet *in, sl_tasklet *head)
{
    while (in) {
        sl_tasklet *n = in->next;
        sl__rq_link_before(head, in);
        SL_STORE_REL(&in->state, (uint8_t)SL_T_RUNNABLE);
        sl__runcount_add(w, 1);
        in = n;
    }
}

/* Take w's inbox under the lock. */
static sl_tasklet *inbox_grab(sl_worker *w)
{
    pthread_mutex_lock(&sl__rt.lock);
    sl_tasklet *in = w->inbox_head;
    w->inbox_head = w->inbox_tail = NULL;
    pthread_mutex_unlock(&sl__rt.lock);
    return in;
}

void sl__inbox_take(sl_worker *w)
{
    inbox_link(w, inbox_grab(w), w->current);
}

/* Owner, at a scheduling point with the current tasklet in the run queue:
 * take the inbox into the run queue and answer a steal request by giving
 * the thief half of the runnable tasklets (from the end of the queue, the
 * ones that would run last here). */
bool sl__poll_inbox(sl_worker *w)
{
    /* The flag first, then what it announces: an inbox push or a steal
     * request made after these reads sets it again, so none is lost (a
     * request left set under a clear flag would never be answered, and
     * no other worker could ask this one again). */
    __atomic_store_n(&w->inbox_flag, 0, __ATOMIC_SEQ_CST);
    inbox_link(w, inbox_grab(w), w->current);
    int req = __atomic_exchange_n(&w->steal_req, 0, __ATOMIC_SEQ_CST);
    if (SL_LOAD(&sl__rt.stopping))
        SL_STORE(&w->inbox_flag, 1);
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
            /* We may be at a scheduling point that is not a switch (a
             * try_receive): t may be a spawn whose handle the current
             * tasklet holds, valid until it next switches; the thief may
             * run t to its end before that. A reference until then. */
            if (sl__reserve_unref(w) < 0)
                break; /* no memory: give fewer */
            sl__defer_unref(w, t);
            skipped = 0;
            if (!t->ctx && !t->copy) /* its stack comes from our pool */
                sl__tasklet_prepare(w, t);
            sl__rq_unlink(w, t);
            /* INBOX first, then the thief (sl__where): a reader never
             * sees it RUNNABLE on the thief before it is there. */
            SL_STORE(&t->state, (uint8_t)SL_T_INBOX);
            SL_STORE_REL(&t->worker, thief);
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
    SL_STORE(&w->current, w->idle);
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
                                        __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
            /* After the request (sl__poll_inbox reads them the other
             * way round). */
            __atomic_store_n(&v->inbox_flag, 1, __ATOMIC_SEQ_CST);
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
    if (st == SL_T_BLOCKED) {
        /* A wait with nothing left that could end it. Claimed under the
         * runtime lock, so that a second worker that finds every worker
         * idle before main reaches worker 0's inbox (we drop the lock to
         * take the wait's queue locks) does not decide it again: its claim
         * fails. Its waiters are unlinked under their locks; main joins
         * worker 0's inbox. */
        uint32_t g = SL_LOAD(&m->wseq);
        if (!(g & 1) || !sl__claim(m, g))
            return; /* decided already: main is on its way */
        pthread_mutex_unlock(&sl__rt.lock);
        sl__wait_claimed_end(NULL, m, SL_EDEADLOCK);
        pthread_mutex_lock(&sl__rt.lock);
        return;
    }
    SL__ASSERT(st == SL_T_PAUSED);
    m->wait.result = SL__QUIESCENT;
    SL_STORE(&m->worker, sl__rt.workers[0]);
    SL_STORE_REL(&m->state, (uint8_t)SL_T_INBOX);
    inbox_push_locked(sl__rt.workers[0], m);
}

/* Run what gathered in the idle circle (inbox, timers, descriptors): the
 * idle context leaves the circle and its first tasklet runs. Returns when
 * the run queue has emptied again. The idle context's links are reset
 * before it leaves: a post-switch wake may link a tasklet before it when
 * the queue has run dry and it is resumed. */
static sl_worker *idle_run(sl_worker *w)
{
    sl_tasklet *idle = w->idle;
    sl_tasklet *first = idle->next;
    idle->prev->next = first;
    first->prev = idle->prev;
    idle->next = idle->prev = idle;
    SL_STORE(&w->current, first);
    return sl__jump(w, idle, first);
}

/* One worker, nothing runnable, nothing that could end a wait by itself:
 * Stackless's rules give main control back (sched.c, "Deadlock"). */
static void idle_deadlock_one(sl_worker *w)
{
    sl_tasklet *m = w->main;
    if (m->state == SL_T_PAUSED) {
        m->wait.result = 0;
        sl__rq_append(w, m);
        return;
    }
    SL__ASSERT(m->state == SL_T_BLOCKED);
    bool won = sl__wait_end(w, m, m->wseq, SL_EDEADLOCK);
    SL__ASSERT(won);
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
        /* As sl__poll_inbox: the flag first. A steal request is
         * dropped: we have nothing to give. */
        __atomic_store_n(&w->inbox_flag, 0, __ATOMIC_SEQ_CST);
        pthread_mutex_lock(&sl__rt.lock);
        sl_tasklet *in = w->inbox_head;
        w->inbox_head = w->inbox_tail = NULL;
        int stop = SL_LOAD(&sl__rt.stopping);
        if (stop)
            SL_STORE(&w->inbox_flag, 1);
        pthread_mutex_unlock(&sl__rt.lock);
        __atomic_store_n(&w->steal_req, 0, __ATOMIC_SEQ_CST);
        inbox_link(w, in, idle);
        if (stop && w->index != 0)
            return;
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
    SL_STORE(&w->current, w->idle);
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
