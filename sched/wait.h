/* wait.h - the one wait layer (private): waiters, wait queues, and the
 * claim that decides how a wait ends. Channels, select, the sync objects,
 * sleeps, descriptor waits and offloaded calls all park tasklets through
 * it; it knows nothing of what they exchange.
 *
 * Glossary.
 *   wait      the time a tasklet spends parked in one blocking call. Its
 *             generation g is the tasklet's wseq, odd while the wait is on.
 *   waiter    one place a wait is visible from: a struct sl_waiter linked
 *             in a wait queue. A plain wait uses the waiter embedded in the
 *             tasklet (no allocation); a select has one per case. Sleeps,
 *             descriptor waits and offloaded calls have none (a timer
 *             entry, a descriptor slot or a job names the tasklet and g).
 *   wait queue a FIFO circle of waiters (struct sl_waitq) guarded by a
 *             byte lock its owner keeps (a channel's lock, a sync object's
 *             guard). Its balance is the sum of its waiters' dir (+1 or -1):
 *             a channel's balance, a sync object's waiter count.
 *   claim     the compare-and-swap of wseq from g to g + 1. Whoever wins it
 *             is the one party that ends wait g.
 *
 * Invariants (the protocol every blocking path follows):
 *  W1 One end per wait. The parties that may end wait g - a partner that
 *     met one of its waiters (under that queue's lock), the timer, a
 *     descriptor event, an offload helper, a throw or kill, the deadlock
 *     rules, the post-switch check of pending errors, shutdown - each
 *     claim it first; exactly one wins, the others leave the tasklet
 *     alone.
 *  W2 A waiter is linked in at most one queue, only under that queue's
 *     lock; w->q is non-NULL exactly while it is linked. Anyone holding the
 *     lock may unlink a waiter whose wait is over (its claim fails); unlink
 *     is idempotent, so whoever comes second finds w->q NULL.
 *  W3 A parking tasklet is SWITCHING until its switch has landed, then
 *     BLOCKED (with one worker it is BLOCKED at once). The post-switch work
 *     publishes the state first, then releases the queue locks taken for
 *     the wait, then looks at its pending error again (W6). A claimer
 *     waits for the state to leave SWITCHING before it touches the
 *     tasklet: its context is saved then. A partner never waits: it met
 *     the waiter under a lock the post-switch work released after
 *     publishing.
 *  W4 The winner of the claim makes the tasklet runnable exactly once,
 *     with the outcome in t->wait.result: a partner leaves the exchange in
 *     the waiter it met (for a plain wait that is t->wait itself: 0, or a
 *     send_error code a receiver got; a select's waiter is marked done and
 *     its select's outcome stays 0); any other claimer writes its code
 *     (SL_ETIMEDOUT, SL_EDEADLOCK, ready events, or SL__EPENDING for a
 *     throw or a kill: the tasklet takes the error itself when it runs,
 *     sl__wait_result; no sender may send SL__EPENDING's value).
 *  W5 Waiter memory outlives every access, and no queue counts a waiter
 *     once its tasklet is woken. Whoever ends a wait unlinks all its
 *     waiters before it wakes the tasklet: a partner the one it met (under
 *     that queue's lock) and then, for a select, the others, each under
 *     its own lock once it has released the first (never two locks at
 *     once: no lock order to keep); any other claimer all of them the same
 *     way. So nothing reaches a waiter once its call has returned.
 *  W6 No lost pending error (a kill or a throw). A thrower stores the
 *     error (perr, then the pend flag) and then reads the wait's
 *     generation and the state; a parking tasklet publishes its state and
 *     then reads pend and perr (each side a full fence between: seq_cst).
 *     At least one sees the other: the thrower claims a wait it sees
 *     published, the post-switch check claims one the thrower missed.
 *     Either way the claim decides (W1). Only the tasklet itself clears a
 *     thrown error (sl__pend_take), so a stale pend flag may stay behind;
 *     every reader checks perr before it acts.
 *  W7 Counts. A wait that can end by itself (a timer, a descriptor, an
 *     offloaded call) counts in sl__rt.nwaits, which keeps the deadlock
 *     rules off, from its start until its tasklet runs again, or is
 *     removed before that (sl__wait_account): a runnable tasklet keeps the
 *     runtime busy anyway, and a wait that ended must not outlive its
 *     tasklet's leaving the run queue.
 *
 * A tasklet in transit to another worker (woken from elsewhere, given to a
 * thief) is INBOX until that worker links it into its run queue; only that
 * worker may touch it then.
 */
#ifndef SL_WAIT_H
#define SL_WAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "sched/sched.h"

/* ---- the claim -------------------------------------------------------- */

/* The current tasklet starts a wait of this kind: its generation (odd).
 * A kind other than SL_W_CHAN must be put back with sl__wait_kind_reset
 * once the wait is over. */
static inline uint32_t sl__wait_begin(sl_tasklet *t, uint8_t kind)
{
    /* Read atomically: a thrower's claim of an older generation (a
     * compare-and-swap that fails) may touch wseq from another thread
     * meanwhile (TSan: throws_into_a_tasklet_cycling_through_waits_...).
     * Only the tasklet itself writes it while no wait is on. */
    uint32_t g = SL_LOAD(&t->wseq) + 1; /* odd: every claim adds one (W1) */
    if (kind != SL_W_CHAN)
        __atomic_store_n(&t->wkind, kind, __ATOMIC_RELAXED);
    /* A release: a killer that reads g (acquire) then sees the state this
     * tasklet had when it began the wait, not an older one (sched.c). */
    __atomic_store_n(&t->wseq, g, __ATOMIC_RELEASE);
    return g;
}

/* The claim as a compare-and-swap, for threads that are not workers (an
 * offload helper), which may race a worker even when there is one. */
static inline bool sl__claim_atomic(sl_tasklet *t, uint32_t gen)
{
    uint32_t e = gen;
    return __atomic_compare_exchange_n(&t->wseq, &e, gen + 1, false,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* End wait gen of t: true for exactly one caller (W1). With one worker
 * nothing runs concurrently: a compare and a store. */
static inline bool sl__claim_in(sl_tasklet *t, uint32_t gen, bool mt)
{
    if (sl_likely(!mt)) {
        if (t->wseq != gen)
            return false;
        t->wseq = gen + 1;
        return true;
    }
    return sl__claim_atomic(t, gen);
}

static inline bool sl__claim(sl_tasklet *t, uint32_t gen)
{
    return sl__claim_in(t, gen, sl__rt.mt);
}

/* The caller's wait (of a kind other than SL_W_CHAN) is over. */
static inline void sl__wait_kind_reset(sl_tasklet *t)
{
    __atomic_store_n(&t->wkind, (uint8_t)SL_W_CHAN, __ATOMIC_RELAXED);
}

/* Give up a wait that never parked (the caller's own, before its switch:
 * nobody else can have seen it). */
static inline void sl__wait_abandon(sl_tasklet *t, uint32_t gen)
{
    SL__ASSERT(SL_LOAD(&t->wseq) == gen); /* (see sl__wait_begin) */
    __atomic_store_n(&t->wseq, gen + 1, __ATOMIC_RELAXED);
    sl__wait_kind_reset(t);
}

/* Is wait gen of t still on? (A snapshot, for lazy clean-up.) */
static inline bool sl__wait_on(const sl_tasklet *t, uint32_t gen)
{
    return __atomic_load_n(&t->wseq, __ATOMIC_RELAXED) == gen;
}

/* ---- wait queues (the caller holds the queue's lock) ------------------ */

static inline void sl__waitq_init_q(struct sl_waitq *q, uint8_t *lock)
{
    q->head = NULL;
    q->balance = 0;
    q->lock_off = (int32_t)(lock - (uint8_t *)q);
}

/* The lock that guards q. */
static inline uint8_t *sl__waitq_lock(struct sl_waitq *q)
{
    return (uint8_t *)q + q->lock_off;
}

/* Link w, whose dir is dir, at the tail of q. */
static inline void sl__waitq_link_dir(struct sl_waitq *q, struct sl_waiter *w,
                                      int dir)
{
    struct sl_waiter *h = q->head;
    if (!h) {
        q->head = w;
        w->next = w->prev = w;
    } else {
        w->next = h;
        w->prev = h->prev;
        h->prev->next = w;
        h->prev = w;
    }
    /* A release (a plain store on x86): sl_tasklet_next finds q through
     * the waiter and reads q's lock offset before it holds the lock. */
    __atomic_store_n(&w->q, q, __ATOMIC_RELEASE);
    __atomic_store_n(&q->balance, q->balance + dir, __ATOMIC_RELAXED);
}

/* Link w (its dir set) at the tail of q. */
static inline void sl__waitq_link(struct sl_waitq *q, struct sl_waiter *w)
{
    sl__waitq_link_dir(q, w, w->dir);
}

/* Unlink w from its queue if it is still linked (W2). Its next and prev
 * mean nothing once q is NULL. */
static inline void sl__waitq_unlink(struct sl_waiter *w)
{
    struct sl_waitq *q = w->q;
    if (!q)
        return;
    if (w->next == w) {
        q->head = NULL;
    } else {
        w->prev->next = w->next;
        w->next->prev = w->prev;
        if (q->head == w)
            q->head = w->next;
    }
    __atomic_store_n(&q->balance, q->balance - w->dir, __ATOMIC_RELAXED);
    __atomic_store_n(&w->q, NULL, __ATOMIC_RELAXED);
}

/* Unlink w, the head of q, whose dir is -dir (a partner of direction dir
 * takes it: the hand-over path). */
static inline void sl__waitq_unlink_head(struct sl_waitq *q,
                                         struct sl_waiter *w, int dir)
{
    if (w->next == w) {
        q->head = NULL;
    } else {
        w->prev->next = w->next;
        w->next->prev = w->prev;
        q->head = w->next;
    }
    __atomic_store_n(&q->balance, q->balance + dir, __ATOMIC_RELAXED);
    __atomic_store_n(&w->q, NULL, __ATOMIC_RELAXED);
}

/* ---- ending a wait ---------------------------------------------------- */

/* The first waiter of q whose wait the caller claims (a partner); waiters
 * whose wait is over are unlinked on the way. NULL when none is left. */
struct sl_waiter *sl__waitq_claim_head(struct sl_waitq *q);

/* A select's waiters keep their wait's generation minus one (even), so
 * that the hand-over's fast claim, sl__claim(w->t, w->gen), fails on them
 * and they take the slow path, which withdraws the select's other waiters
 * (W5). The wait's generation is w->gen | 1 for every waiter. */
static inline bool sl__waiter_slow(const struct sl_waiter *w)
{
    return !(w->gen & 1);
}

/* Undo what t's wait counted in (its timer, its descriptor, nwaits): by the
 * tasklet when it runs again, or by sl_tasklet_remove when it is taken out
 * of the run queue before that (its wait is over, so it must not keep the
 * deadlock rules off). A wait whose tasklet is runnable but has not run
 * yet still counts: harmless, the runtime is not idle while it is
 * runnable; and it keeps a worker that woke it from its idle loop (a timer
 * fired in epoll) from looking idle with nwaits at 0 meanwhile. */
void sl__wait_account(sl_tasklet *t);

/* t's wait was claimed by the caller, which is not a partner: unlink its
 * waiters, set its result and make it runnable on w (or on its pinned
 * worker); w NULL: send it home through the inbox of its pinned worker,
 * else of the worker it parked on. True if it joined w's run queue. */
bool sl__wait_claimed_end(sl_worker *w, sl_tasklet *t, int result);

/* Claim wait gen of t and end it with result: false if someone else ended
 * it first. The one way a wait is failed with a code (timeouts, kills,
 * deadlock, descriptor events). */
static inline bool sl__wait_end(sl_worker *w, sl_tasklet *t, uint32_t gen,
                                int result)
{
    if (!(gen & 1) || !sl__claim(t, gen)) /* (even: no wait is on) */
        return false;
    sl__wait_claimed_end(w, t, result);
    return true;
}

/* A partner completed t's wait through waiter wt, which it has unlinked
 * (lock held or not): make t runnable (W4). Spins while its switch lands. */
void sl__wait_wake_partner(sl_worker *w, sl_tasklet *t);

/* The tasklet waiting next to t (dir +1: after it, -1: before it) in the
 * wait queue t waits in through its own waiter (a plain channel or sync
 * wait); NULL past either end, and when t waits in no queue that way (a
 * select, a sleep...). A snapshot taken under the queue's lock. w is the
 * caller's worker. Safe while t moves between queues whose objects are
 * freed meanwhile: see sl__waitq_retire. */
sl_tasklet *sl__waitq_neighbour(sl_worker *w, const sl_tasklet *t, int dir);

/* The memory of an object with wait queues (a channel, a sync object) is
 * about to be freed or reused: its queues are empty and no call on it is
 * in progress. Returns once no sl__waitq_neighbour that could have found
 * one of its queues through a tasklet still reads it (wait.c). Cheap when
 * nobody inspects: a fence and a load. */
void sl__waitq_retire(void);

/* The tasklet of q's first waiter, or NULL (a snapshot, under its lock). */
sl_tasklet *sl__waitq_first(struct sl_waitq *q);

/* Wait until t's switch has landed (W3). */
void sl__wait_landed_slow(sl_tasklet *t);
static inline void sl__wait_landed(sl_tasklet *t)
{
    if (sl__rt.mt && sl_unlikely(__atomic_load_n(&t->state,
                                                   __ATOMIC_ACQUIRE) ==
                                   SL_T_SWITCHING))
        sl__wait_landed_slow(t);
}

/* A partner completed t's wait through one of its waiters, a select's
 * (sl__waiter_slow), which is unlinked: with no lock held, unlink t's
 * other waiters, each under its own lock (W5). */
void sl__wait_finish(sl_tasklet *t);

/* ---- parking in one queue ---------------------------------------------- */

/* The checks before a wait (a pending error first: docs/errors.md): the
 * pending error (SL_EKILLED or a thrown code), SL_ETIMEDOUT for a timeout
 * of 0, or 0 to go on and wait. */
static inline int sl__wait_check(sl_tasklet *cur, int64_t timeout_ms)
{
    int rc = sl__pend_check(cur);
    if (sl_unlikely(rc))
        return rc;
    if (timeout_ms == 0)
        return SL_ETIMEDOUT;
    return 0;
}

/* rc, the result of the caller's wait (cur->wait.result, set by whoever
 * ended it), as its call returns it: the mark of a pending error becomes
 * the error (and a thrown one is taken). */
static inline int sl__wait_rc(sl_tasklet *cur, int rc)
{
    if (sl_unlikely(rc == SL__EPENDING)) {
        rc = sl__pend_take(cur);
        SL__ASSERT(rc != 0); /* only the tasklet itself takes it */
    }
    return rc;
}
static inline int sl__wait_result(sl_tasklet *cur)
{
    return sl__wait_rc(cur, cur->wait.result);
}

/* The current tasklet cur of worker *wp waits in q, whose lock lk (q's
 * own) the caller holds, through its embedded waiter (dir, value and result as
 * given), for timeout_ms (< 0: forever). The lock is released once cur has
 * switched out (or before an early return). Returns the wait's raw result
 * (0: a partner completed it; cur->wait holds the exchange), SL_ETIMEDOUT,
 * SL__EPENDING (the caller passes a nonzero result through sl__wait_rc:
 * the receive path, which tests for 0 anyway, pays nothing for it),
 * SL_EDEADLOCK (nothing could ever end it: not parked), or SL_ENOMEM (no
 * room for the timer: not parked). *wp is the worker cur resumed on. */
static inline __attribute__((always_inline)) int
sl__wait_one_in(sl_worker **wp, sl_tasklet *cur, struct sl_waitq *q,
                uint8_t *lk, int dir, void *value, int result,
                int64_t timeout_ms, uint8_t kind, bool mt)
{
    sl_worker *w = *wp;
    uint32_t gen = sl__wait_begin(cur, kind);
    bool timed = timeout_ms > 0;
    int rc;
    if (timed && (rc = sl__timer_arm(w, cur, gen, sl__deadline(timeout_ms)))) {
        sl__wait_abandon(cur, gen);
        if (mt)
            sl__spin_unlock(lk);
        return rc;
    }
    sl_tasklet *next = sl__rq_leave(w, cur);
    if (sl_unlikely(!next)) { /* never with a timer: it counts in nwaits */
        sl__wait_abandon(cur, gen);
        if (mt)
            sl__spin_unlock(lk);
        return SL_EDEADLOCK;
    }
    sl_waiter *wt = &cur->wait;
    SL_STORE(&wt->dir, (int8_t)dir); /* (sl_dump reads it) */
    wt->value = value;
    wt->result = result;
    wt->gen = gen;
    sl__waitq_link_dir(q, wt, dir);
    if (mt) { /* published, and lk released, once we are switched
                        out (W3): sl__publish_after_switch and more */
        SL_STORE(&cur->state, (uint8_t)SL_T_SWITCHING);
        w->park = cur;
        w->park_state = SL_T_BLOCKED;
        w->post_unlock = lk;
        w->post = 1;
    } else {
        cur->state = SL_T_BLOCKED;
    }
    w = sl__jump(w, cur, next);
    sl__events_due(w);
    *wp = w;
    rc = wt->result; /* raw (see above): the partner's exchange, or the
                        claimer's code */
    if (kind != SL_W_CHAN)
        sl__wait_kind_reset(cur);
    if (timed)
        sl__wait_account(cur);
    return rc;
}

/* sl__wait_one_in with the runtime's worker count read here; callers on a
 * hot path pass it as a constant instead (channel.c). */
static inline __attribute__((always_inline)) int
sl__wait_one(sl_worker **wp, sl_tasklet *cur, struct sl_waitq *q,
             uint8_t *lk, int dir, void *value, int result,
             int64_t timeout_ms, uint8_t kind)
{
    return sl__wait_one_in(wp, cur, q, lk, dir, value, result, timeout_ms,
                           kind, sl__rt.mt);
}

/* ---- the sync objects' view (sync/) ----------------------------------- */

/* A sync object embeds its wait queues as struct sl__waitq (public
 * storage, stackless_sync.h), which is a struct sl_waitq. */
_Static_assert(sizeof(struct sl__waitq) == sizeof(struct sl_waitq) &&
                   _Alignof(struct sl__waitq) >= _Alignof(struct sl_waitq),
               "struct sl__waitq is the storage of a struct sl_waitq");
static inline struct sl_waitq *sl__waitq_of(struct sl__waitq *s)
{
    return (struct sl_waitq *)(void *)s;
}

/* q's lock is guard, a byte of the same object (it must not move). */
static inline void sl__waitq_init(struct sl__waitq *q, uint8_t *guard)
{
    sl__waitq_init_q(sl__waitq_of(q), guard);
}

/* The guard: a byte spinlock, taken only when several workers run. */
void sl__guard_lock(uint8_t *guard);
void sl__guard_unlock(uint8_t *guard);

/* Called with *guard held. Blocks the calling tasklet at the tail of q
 * until a wake, timeout_ms (-1 forever; 0 returns SL_ETIMEDOUT at once),
 * or a kill. The guard is released once the caller has switched out and
 * is NOT held when this returns. 0 (woken; *value, if value is not NULL,
 * gets what the waker passed), SL_ETIMEDOUT, SL_EKILLED, SL_EDEADLOCK, or
 * SL_ESTATE (no runtime on this thread). */
int sl__waitq_wait(struct sl__waitq *q, uint8_t *guard, int64_t timeout_ms,
                   void **value);
/* Called with the guard held: wake the first waiter still waiting (its
 * wait returns 0 and value): it joins the end of the caller's run queue.
 * False if nobody waits, or without a runtime on this thread. */
bool sl__waitq_wake(struct sl__waitq *q, void *value);
/* Called with the guard held: are there waiters? */
static inline bool sl__waitq_has_waiters(const struct sl__waitq *q)
{
    const struct sl_waitq *wq = (const struct sl_waitq *)(const void *)q;
    return SL_LOAD(&wq->balance) != 0;
}
/* The calling tasklet, or NULL without a runtime (for owner checks). */
static inline sl_tasklet *sl__waitq_self(void) { return sl_current(); }

#endif /* SL_WAIT_H */
