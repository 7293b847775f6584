/* cond.c - sl_cond (threading.Condition) over an sl_lock.
 *
 * sl_cond_wait takes the cond's guard before it releases the lock, and
 * the wait queue drops that guard only once the waiter has switched out.
 * A notify takes the guard too, so none can happen between the release
 * and the waiter being queued: a tasklet that takes the lock after the
 * release, changes the state and notifies always finds the waiter queued.
 * No notify is lost. */
#include "sync/sync.h"

int sl_cond_init(sl_cond *c)
{
    if (!c)
        return SL_EINVAL;
    sl__waitq_init(&c->q_, &c->guard_);
    c->guard_ = 0;
    return 0;
}

int sl_cond_wait(sl_cond *c, sl_lock *lock, int64_t timeout_ms)
{
    if (!c || !lock)
        return SL_EINVAL;
    if (!sl__waitq_self() || !sl_lock_locked(lock))
        return SL_ESTATE; /* nothing changed */
    SYNC_LOCK(c);
    int rc = sl_lock_release(lock);
    if (rc) {
        SYNC_UNLOCK(c); /* someone else released it just now */
        return rc;
    }
    rc = sl__waitq_wait(&c->q_, &c->guard_, timeout_ms, NULL);
    /* The lock is held on return exactly when the result is 0 or
     * SL_ETIMEDOUT. A killed tasklet cannot wait any more (every later
     * wait returns SL_EKILLED), so it cannot wait its turn for the lock:
     * it returns without it rather than only when the lock happens to be
     * free, which its caller could not tell apart. SL_EDEADLOCK: nothing
     * can run that would let the caller go on; the same rule keeps it
     * simple. */
    if (rc != 0 && rc != SL_ETIMEDOUT)
        return rc;
    int arc = sl_lock_acquire(lock);
    return arc ? arc : rc;
}

int sl_cond_notify(sl_cond *c)
{
    if (!c)
        return SL_EINVAL;
    SYNC_LOCK(c);
    sl__waitq_wake(&c->q_, NULL);
    SYNC_UNLOCK(c);
    return 0;
}

int sl_cond_notify_all(sl_cond *c)
{
    if (!c)
        return SL_EINVAL;
    SYNC_LOCK(c);
    sync_wake_all(&c->q_, NULL);
    SYNC_UNLOCK(c);
    return 0;
}

int sl_cond_destroy(sl_cond *c)
{
    if (!c)
        return SL_EINVAL;
    return sync_check_idle(&c->q_, &c->guard_);
}
