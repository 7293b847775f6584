/* wait.c - the one wait layer: ending waits (the claim's winner's side),
 * waking their tasklets, and the sync objects' wait queue. The protocol
 * and its invariants (W1-W6) are at the top of sched/wait.h. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>

#include "sched/observe.h"
#include "sched/wait.h"

void sl__wait_landed_slow(sl_tasklet *t)
{
    while (SL_LOAD_ACQ(&t->state) == SL_T_SWITCHING)
        sched_yield();
}

struct sl_waiter *sl__waitq_claim_head(struct sl_waitq *q)
{
    struct sl_waiter *wt;
    while ((wt = q->head)) {
        if (sl__claim(wt->t, wt->gen | 1)) /* (| 1: a select's, W5) */
            return wt;
        sl__waitq_unlink(wt); /* its wait is over: timed out, killed... */
    }
    return NULL;
}

/* Unlink every waiter of t that is still linked, each under its own lock
 * (W5). t's wait is claimed by the caller and its switch has landed, so
 * t cannot run, return and reuse its waiters meanwhile. */
static void cancel_one(sl_waiter *wt)
{
    struct sl_waitq *q = SL_LOAD(&wt->q);
    if (!q)
        return; /* never linked, or unlinked already: never again (W2) */
    uint8_t *lk = sl__waitq_lock(q); /* q outlives its waiters */
    if (sl__rt.mt)
        sl__spin_lock(lk);
    sl__waitq_unlink(wt);
    if (sl__rt.mt)
        sl__spin_unlock(lk);
}

static void cancel_waiters(sl_tasklet *t)
{
    if (!t->wv) { /* a plain wait, or one with no waiter (sleep, fd...) */
        cancel_one(&t->wait);
        return;
    }
    for (unsigned i = 0; i < t->wn; i++)
        cancel_one(&t->wv[i]);
}

/* t (claimed, landed) becomes runnable: on w's run queue or its pinned
 * worker's inbox; w NULL: through the inbox of its home worker (its pin,
 * else the worker it parked on). */
static bool wake(sl_worker *w, sl_tasklet *t)
{
    if (w)
        return sl__wake(w, t);
    sl_worker *home = t->pin >= 0 ? sl__rt.workers[t->pin]
                                  : SL_LOAD(&t->worker);
    sl__inbox_push(home, t);
    return false;
}

void sl__wait_account(sl_tasklet *t)
{
    uint8_t f = t->wcount;
    if (!f)
        return;
    t->wcount = 0;
    sl_worker *x = t->wait_w;
    if (f & SL_WC_TIMER) {
        __atomic_sub_fetch(&x->timers_live, 1, __ATOMIC_RELAXED);
        sl__nwaits_add(-1);
    }
    if (f & SL_WC_FD) {
        __atomic_sub_fetch(&x->fd_waits, 1, __ATOMIC_RELAXED);
        sl__nwaits_add(-1);
    }
    if (f & SL_WC_NWAIT)
        sl__nwaits_add(-1);
}

bool sl__wait_claimed_end(sl_worker *w, sl_tasklet *t, int result)
{
    sl__wait_landed(t);
    cancel_waiters(t);
    if (sl__obs_tracing()) /* (first: it reads an fd wait's descriptor
                              from wait.result) */
        sl__obs_wait_end(t, result);
    t->wait.result = result;
    return wake(w, t);
}

void sl__wait_wake_partner(sl_worker *w, sl_tasklet *t)
{
    sl__wait_landed(t);
    t->wait.result = 0;
    sl__wake(w, t);
}

void sl__wait_finish(sl_tasklet *t)
{
    cancel_waiters(t);
}

/* ---- looking at a queue (sl_tasklet_next, sl_channel_queue) ------------- *
 *
 * sl_tasklet_next of a waiting tasklet t reads which queue t waits in
 * (t->wait.q) and then locks that queue. With several workers t may be
 * woken between the two, return, wait somewhere else, and the object the
 * first queue belongs to may be freed by then (a channel freed once its
 * calls have returned, as its owner may): the lock would be taken in
 * freed memory. Neither end can be pinned from here: the queue has no
 * reference count, and t's wait belongs to the claim protocol (W1), which
 * an inspector must not hold up. So the inspector announces itself, and
 * whoever frees an object with wait queues waits for the inspections that
 * may have found it (sl__waitq_retire), an RCU-like grace period:
 *
 *   inspector (worker k)             retirer (frees the object of q)
 *   inspecting++, seq_k odd          (every call on q has returned, so
 *   fence                             t's waiter left q before: W5)
 *   q = t->wait.q                    fence
 *   lock q, check, read, unlock      inspecting == 0: free at once
 *   seq_k even, inspecting--         else each odd seq_k: wait till it moves
 *
 * Why it is safe. Say the inspector read q. Its load did not see the
 * unlink of t's waiter from q, which happens before the retirer's fence
 * (the object's calls have returned); so the inspector's fence precedes
 * the retirer's in the single order of seq_cst fences (C11/C++20
 * [atomics.order]), and the retirer's loads after its fence see the
 * inspector's count and odd seq_k: it waits until seq_k moves on, which
 * the inspector stores (release) after its unlock; its acquire load then
 * orders the whole inspection before the free. An inspector that starts
 * later reads t->wait.q after the unlink: NULL, or a queue t waits in
 * now. The retirer waits for at most one inspection per worker, so a
 * stream of inspections cannot starve it. (TSan does not model fences:
 * there every access of the protocol is seq_cst instead, as in trace.c.)
 * The retirers are sl_channel_free and the sync objects' destroy calls;
 * with one worker nothing runs concurrently and none of this is done. */

static inline void inspect_fence(void)
{
#if !SL_TSAN
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

sl_tasklet *sl__waitq_neighbour(sl_worker *w, const sl_tasklet *t, int dir)
{
    if (sl__obs_in_callback()) /* the switch in progress may hold the lock */
        return NULL;
    const sl_waiter *wt = &t->wait;
    bool mt = sl__rt.mt;
    uint32_t seq = 0;
    if (mt) {
        __atomic_fetch_add(&sl__rt.inspecting, 1, __ATOMIC_SEQ_CST);
        seq = SL_LOAD(&w->inspect_seq);
        __atomic_store_n(&w->inspect_seq, seq + 1, __ATOMIC_SEQ_CST);
        inspect_fence();
    }
    struct sl_waitq *q = __atomic_load_n(&wt->q, __ATOMIC_SEQ_CST);
    sl_tasklet *r = NULL;
    if (q) {
        /* q's memory is ours until we announce we are done; t may leave
         * q meanwhile: look again under its lock. */
        uint8_t *lk = sl__waitq_lock(q);
        sl__guard_lock(lk);
        if (SL_LOAD(&wt->q) == q) {
            const sl_waiter *n = dir > 0 ? wt->next : wt->prev;
            if (dir > 0 ? n != q->head : wt != q->head)
                r = n->t;
        }
        sl__guard_unlock(lk);
    }
    if (mt) {
        __atomic_store_n(&w->inspect_seq, seq + 2, __ATOMIC_RELEASE);
        __atomic_fetch_sub(&sl__rt.inspecting, 1, __ATOMIC_RELEASE);
    }
    return r;
}

void sl__waitq_retire(void)
{
    if (!sl__rt.mt)
        return;
    inspect_fence();
    if (__atomic_load_n(&sl__rt.inspecting, __ATOMIC_SEQ_CST) == 0)
        return;
    for (int i = 0; i < sl__rt.nworkers; i++) {
        const uint32_t *sp = &sl__rt.workers[i]->inspect_seq;
        uint32_t s = __atomic_load_n(sp, __ATOMIC_SEQ_CST);
        if (!(s & 1))
            continue;
        while (__atomic_load_n(sp, __ATOMIC_ACQUIRE) == s)
            sched_yield(); /* a few loads and a lock: it ends soon */
    }
}

sl_tasklet *sl__waitq_first(struct sl_waitq *q)
{
    if (sl__obs_in_callback()) /* (as sl__waitq_neighbour) */
        return NULL;
    uint8_t *lk = sl__waitq_lock(q);
    sl__guard_lock(lk);
    sl_tasklet *r = q->head ? q->head->t : NULL;
    sl__guard_unlock(lk);
    return r;
}

/* ---- the sync objects' wait queue --------------------------------------- */

void sl__guard_lock(uint8_t *guard)
{
    /* A sync object's call from a callback: the switch in progress may
     * hold this very guard (its tasklet parks on the object), and a wake
     * from there could not be told from the switch (observe.c). */
    if (sl__obs_in_callback())
        sl__obs_cb_misuse();
    if (sl__rt.mt)
        sl__spin_lock(guard);
}

void sl__guard_unlock(uint8_t *guard)
{
    if (sl__rt.mt)
        sl__spin_unlock(guard);
}

int sl__waitq_wait(struct sl__waitq *sq, uint8_t *guard, int64_t timeout_ms,
                   void **value)
{
    sl_worker *w = sl__self();
    if (!w) {
        sl__guard_unlock(guard);
        return SL_ESTATE;
    }
    sl_tasklet *cur = w->current;
    int rc = sl__wait_check(cur, timeout_ms);
    if (rc) {
        sl__guard_unlock(guard);
        return rc;
    }
    rc = sl__wait_one(&w, cur, sl__waitq_of(sq), guard, -1, NULL, 0,
                      timeout_ms < 0 ? -1 : timeout_ms, SL_W_SYNC);
    if (rc == 0 && value)
        *value = cur->wait.value;
    return sl__wait_rc(cur, rc);
}

bool sl__waitq_wake(struct sl__waitq *sq, void *value)
{
    struct sl_waitq *q = sl__waitq_of(sq);
    if (q->balance == 0)
        return false;
    sl_worker *w = sl__self();
    if (!w)
        return false;
    sl_waiter *wt = sl__waitq_claim_head(q);
    if (!wt)
        return false;
    sl__waitq_unlink(wt);
    wt->value = value;
    if (sl__obs_tracing())
        sl__obs_wake(w, wt->t, SL_OBS_SYNC, q, false);
    sl__wait_wake_partner(w, wt->t);
    return true;
}
