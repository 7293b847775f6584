/* barrier.c - sl_barrier (threading.Barrier): parties tasklets wait until
 * the last of them arrives, then all go on; the barrier is then ready for
 * the next round (a new generation).
 *
 * Every field is under the guard. A generation ends in one of two ways:
 * the last arrival trips it (every waiter is woken with BARRIER_PASS), or
 * it breaks (a wait timed out or was killed, sl_barrier_abort, or
 * sl_barrier_reset with waiters inside: every waiter is woken with
 * BARRIER_BROKEN, and broken_ stays set until sl_barrier_reset). Either
 * way generation_ moves on. A waiter that timed out while its generation
 * ended was skipped by the wake; it tells the two endings apart by
 * last_break_, the generation that broke last. */
#include <limits.h>

#include "sync/sync.h"

#define BARRIER_PASS ((void *)1)
#define BARRIER_BROKEN ((void *)2)

int sl_barrier_init(sl_barrier *b, unsigned parties)
{
    if (!b || parties < 1 || parties > INT_MAX)
        return SL_EINVAL;
    sl__waitq_init(&b->q_, &b->guard_);
    b->parties_ = parties;
    b->waiting_ = 0;
    b->generation_ = 0;
    b->broken_ = 0;
    b->last_break_ = UINT32_MAX;
    b->guard_ = 0;
    return 0;
}

/* Called with the guard held: end the current generation broken. */
static void barrier_break(sl_barrier *b)
{
    b->broken_ = 1;
    b->last_break_ = b->generation_++;
    b->waiting_ = 0;
    sync_wake_all(&b->q_, BARRIER_BROKEN);
}

int sl_barrier_wait(sl_barrier *b, int64_t timeout_ms)
{
    if (!b)
        return SL_EINVAL;
    SYNC_LOCK(b);
    if (b->broken_) {
        SYNC_UNLOCK(b);
        return SL_EBROKEN;
    }
    int index = (int)b->waiting_++;
    if (b->waiting_ == b->parties_) { /* the last one: trip */
        b->waiting_ = 0;
        b->generation_++;
        sync_wake_all(&b->q_, BARRIER_PASS);
        SYNC_UNLOCK(b);
        return index;
    }
    uint32_t gen = b->generation_;
    void *how = NULL;
    int rc = sync_wait_relock(&b->q_, &b->guard_, timeout_ms, &how);
    if (rc == 0)
        rc = how == BARRIER_PASS ? index : SL_EBROKEN;
    else if (b->generation_ == gen)
        barrier_break(b); /* we leave early: nobody may pass */
    else if (rc == SL_ETIMEDOUT && b->last_break_ != gen)
        rc = index; /* it tripped as we timed out: we were counted */
    SYNC_UNLOCK(b);
    return rc;
}

int sl_barrier_abort(sl_barrier *b)
{
    if (!b)
        return SL_EINVAL;
    SYNC_LOCK(b);
    if (!b->broken_)
        barrier_break(b);
    SYNC_UNLOCK(b);
    return 0;
}

int sl_barrier_reset(sl_barrier *b)
{
    if (!b)
        return SL_EINVAL;
    SYNC_LOCK(b);
    if (!b->broken_ && b->waiting_ > 0)
        barrier_break(b);
    b->broken_ = 0;
    SYNC_UNLOCK(b);
    return 0;
}

int sl_barrier_destroy(sl_barrier *b)
{
    if (!b)
        return SL_EINVAL;
    SYNC_LOCK(b);
    int rc = b->waiting_ > 0 || sl__waitq_has_waiters(&b->q_) ? SL_ESTATE : 0;
    SYNC_UNLOCK(b);
    return sync_destroyed(rc);
}
