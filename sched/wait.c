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

/* ---- looking at a queue (sl_tasklet_next, sl_channel_queue) ------------- */

sl_tasklet *sl__waitq_neighbour(const sl_tasklet *t, int dir)
{
    const sl_waiter *wt = &t->wait;
    struct sl_waitq *q = SL_LOAD(&wt->q);
    if (!q)
        return NULL;
    /* q outlives its waiters (the caller may not free the object while
     * it looks); t may leave it meanwhile: look again under the lock. */
    uint8_t *lk = sl__waitq_lock(q);
    sl__guard_lock(lk);
    sl_tasklet *r = NULL;
    if (SL_LOAD(&wt->q) == q) {
        const sl_waiter *n = dir > 0 ? wt->next : wt->prev;
        if (dir > 0 ? n != q->head : wt != q->head)
            r = n->t;
    }
    sl__guard_unlock(lk);
    return r;
}

sl_tasklet *sl__waitq_first(struct sl_waitq *q)
{
    uint8_t *lk = sl__waitq_lock(q);
    sl__guard_lock(lk);
    sl_tasklet *r = q->head ? q->head->t : NULL;
    sl__guard_unlock(lk);
    return r;
}

/* ---- the sync objects' wait queue --------------------------------------- */

void sl__guard_lock(uint8_t *guard)
{
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
