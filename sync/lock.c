/* lock.c - sl_lock (threading.Lock) and sl_rlock (threading.RLock).
 *
 * Design of sync/ (lock, sem, event, cond, barrier, queue)
 * ---------------------------------------------------------
 * Every object is some state, a guard byte and one or more wait queues
 * (sched/wait.h). The rule is the same everywhere: take the guard, look
 * at the state, then either change it and wake waiters, or wait (the wait
 * queue drops the guard once the caller has switched out, so no wake can
 * slip between the look and the wait).
 *
 * Wakes are direct hand-offs: whoever frees a resource (the lock, a
 * permit, a queue item, a free slot of a full queue) gives it to the first
 * live waiter with sl__waitq_wake and the state never shows it free in
 * between. So no tasklet that arrives later can barge in and starve a
 * waiter (waiters are served in arrival order), and a woken waiter never
 * has to look again. The runtime decides how each wait ends (woken, timed
 * out, killed), and sl__waitq_wake skips a waiter that is leaving, so a
 * hand-off is never lost: it goes to the next waiter, or back into the
 * state when there is none.
 *
 * Rejected: wake-and-retry (the woken waiter competes again for the
 * resource, as with futexes or Python's Condition-based primitives): a
 * newcomer barges in, a waiter can starve, and broadcasts stampede. Also
 * rejected: wait lists of our own in each object: the arbitration between
 * a wake, a timeout and a kill, and the deadlock rules, belong to the
 * runtime, which already does it for channels.
 *
 * Lock order: an sl_cond's guard may be held while its sl_lock's guard is
 * taken (sl_cond_wait releases the lock under the cond's guard). No other
 * guard is ever held while taking another.
 *
 * The lock's fast path: with one worker, tasklets run one at a time and
 * never in the middle of a call, so acquire and release are a load and a
 * store (the guard is a no-op too). With several workers they are one
 * compare-and-swap each on the state word, and the guard is taken only when
 * the state says someone waits.
 */
#include "sync/sync.h"

/* state_: FREE, HELD (nobody waits), or CONTENDED (someone may wait:
 * release takes the slow path). It changes from FREE and HELD without the
 * guard (the fast paths), to and from CONTENDED only under it. */
enum { LOCK_FREE = 0, LOCK_HELD = 1, LOCK_CONTENDED = 2 };

static inline bool state_cas(uint32_t *state, uint32_t from, uint32_t to)
{
    if (sl_likely(!sl__rt.mt)) {
        if (SL_LOAD(state) != from)
            return false;
        SL_STORE(state, to);
        return true;
    }
    return __atomic_compare_exchange_n(state, &from, to, false,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

int sl_lock_init(sl_lock *l)
{
    if (!l)
        return SL_EINVAL;
    sl__waitq_init(&l->q_, &l->guard_);
    l->state_ = LOCK_FREE;
    l->guard_ = 0;
    return 0;
}

/* The lock was not free: mark it contended and wait for a release to
 * hand it over. */
static __attribute__((noinline)) int acquire_slow(sl_lock *l,
                                                  int64_t timeout_ms)
{
    if (timeout_ms == 0)
        return SL_ETIMEDOUT;
    SYNC_LOCK(l);
    for (;;) {
        uint32_t s = SL_LOAD(&l->state_);
        if (s == LOCK_FREE && state_cas(&l->state_, LOCK_FREE, LOCK_HELD)) {
            SYNC_UNLOCK(l); /* released meanwhile: nobody waits */
            return 0;
        }
        if (s == LOCK_CONTENDED ||
            (s == LOCK_HELD &&
             state_cas(&l->state_, LOCK_HELD, LOCK_CONTENDED)))
            break;
    }
    /* 0: the releaser handed the lock to us and left it held. Any error:
     * the state may stay CONTENDED with nobody waiting; the next release
     * finds nobody to wake and frees it. */
    return sl__waitq_wait(&l->q_, &l->guard_, timeout_ms, NULL);
}

int sl_lock_acquire_timeout(sl_lock *l, int64_t timeout_ms)
{
    if (sl_unlikely(!l))
        return SL_EINVAL;
    if (sl_likely(state_cas(&l->state_, LOCK_FREE, LOCK_HELD)))
        return 0;
    return acquire_slow(l, timeout_ms);
}

int sl_lock_acquire(sl_lock *l)
{
    return sl_lock_acquire_timeout(l, -1);
}

int sl_lock_try_acquire(sl_lock *l)
{
    if (!l)
        return SL_EINVAL;
    return state_cas(&l->state_, LOCK_FREE, LOCK_HELD) ? 0 : SL_EWOULDBLOCK;
}

/* Someone may wait: hand the lock to the first live waiter, else free it. */
static __attribute__((noinline)) int release_slow(sl_lock *l)
{
    SYNC_LOCK(l);
    int rc = 0;
    uint32_t s = SL_LOAD(&l->state_);
    if (s == LOCK_HELD && !state_cas(&l->state_, LOCK_HELD, LOCK_FREE))
        s = LOCK_FREE; /* a racing release freed it first */
    if (s == LOCK_FREE)
        rc = SL_ESTATE;
    else if (s == LOCK_CONTENDED) {
        /* Release stores: a fast-path acquirer on another worker takes
         * the lock with a compare-and-swap on state_ alone, never the
         * guard, and must see what the holder wrote (ARM would not show
         * it after a relaxed store; x86 does). */
        if (sl__waitq_wake(&l->q_, NULL))
            SL_STORE_REL(&l->state_, sl__waitq_has_waiters(&l->q_)
                                         ? (uint32_t)LOCK_CONTENDED
                                         : (uint32_t)LOCK_HELD);
        else
            SL_STORE_REL(&l->state_, (uint32_t)LOCK_FREE);
    }
    SYNC_UNLOCK(l);
    return rc;
}

int sl_lock_release(sl_lock *l)
{
    if (sl_unlikely(!l))
        return SL_EINVAL;
    if (sl_likely(state_cas(&l->state_, LOCK_HELD, LOCK_FREE)))
        return 0;
    return release_slow(l);
}

bool sl_lock_locked(const sl_lock *l)
{
    return l && SL_LOAD(&l->state_) != LOCK_FREE;
}

int sl_lock_destroy(sl_lock *l)
{
    if (!l)
        return SL_EINVAL;
    SYNC_LOCK(l);
    int rc = SL_LOAD(&l->state_) != LOCK_FREE ||
                     sl__waitq_has_waiters(&l->q_)
                 ? SL_ESTATE
                 : 0;
    SYNC_UNLOCK(l);
    return sync_destroyed(rc);
}

/* ---- reentrant lock ------------------------------------------------------
 * owner_ is written only by the tasklet that holds lock_ (itself when it
 * takes it, NULL when it lets go) and read by anyone, so a tasklet reading
 * its own pointer there knows it holds the lock. depth_ belongs to the
 * owner. */

static int rlock_take(sl_rlock *l, int64_t timeout_ms, bool try_only)
{
    if (!l)
        return SL_EINVAL;
    sl_tasklet *self = sl__waitq_self();
    if (!self)
        return SL_ESTATE;
    if (SL_LOAD(&l->owner_) == self) {
        if (l->depth_ == UINT32_MAX)
            return SL_EINVAL;
        l->depth_++;
        return 0;
    }
    int rc = try_only ? sl_lock_try_acquire(&l->lock_)
                      : sl_lock_acquire_timeout(&l->lock_, timeout_ms);
    if (rc == 0) {
        SL_STORE(&l->owner_, self);
        l->depth_ = 1;
    }
    return rc;
}

int sl_rlock_init(sl_rlock *l)
{
    if (!l)
        return SL_EINVAL;
    l->owner_ = NULL;
    l->depth_ = 0;
    return sl_lock_init(&l->lock_);
}

int sl_rlock_acquire(sl_rlock *l)
{
    return rlock_take(l, -1, false);
}

int sl_rlock_acquire_timeout(sl_rlock *l, int64_t timeout_ms)
{
    return rlock_take(l, timeout_ms, false);
}

int sl_rlock_try_acquire(sl_rlock *l)
{
    return rlock_take(l, 0, true);
}

int sl_rlock_release(sl_rlock *l)
{
    if (!l)
        return SL_EINVAL;
    sl_tasklet *self = sl__waitq_self();
    if (!self)
        return SL_ESTATE;
    if (SL_LOAD(&l->owner_) != self)
        return SL_ESTATE;
    if (--l->depth_ > 0)
        return 0;
    SL_STORE(&l->owner_, (sl_tasklet *)NULL);
    return sl_lock_release(&l->lock_);
}

int sl_rlock_destroy(sl_rlock *l)
{
    if (!l)
        return SL_EINVAL;
    if (SL_LOAD(&l->owner_))
        return SL_ESTATE;
    return sl_lock_destroy(&l->lock_);
}
