/* event.c - sl_event (threading.Event): a flag; waiting for it blocks
 * until some tasklet sets it, and setting it wakes every waiter. set_
 * changes only under the guard; it is read without it (a set publishes
 * what the setter wrote before, to a waiter that finds it set). */
#include "sync/sync.h"

int sl_event_init(sl_event *e)
{
    if (!e)
        return SL_EINVAL;
    sl__waitq_init(&e->q_, &e->guard_);
    e->set_ = 0;
    e->guard_ = 0;
    return 0;
}

int sl_event_set(sl_event *e)
{
    if (!e)
        return SL_EINVAL;
    SYNC_LOCK(e);
    SL_STORE_REL(&e->set_, 1u);
    sync_wake_all(&e->q_, NULL);
    SYNC_UNLOCK(e);
    return 0;
}

int sl_event_clear(sl_event *e)
{
    if (!e)
        return SL_EINVAL;
    SYNC_LOCK(e);
    SL_STORE(&e->set_, 0u);
    SYNC_UNLOCK(e);
    return 0;
}

bool sl_event_is_set(const sl_event *e)
{
    return e && SL_LOAD_ACQ(&e->set_);
}

int sl_event_wait(sl_event *e, int64_t timeout_ms)
{
    if (!e)
        return SL_EINVAL;
    if (SL_LOAD_ACQ(&e->set_))
        return 0;
    if (timeout_ms == 0)
        return SL_ETIMEDOUT;
    SYNC_LOCK(e);
    if (e->set_) {
        SYNC_UNLOCK(e);
        return 0;
    }
    /* Woken by a set: 0 even if the flag was cleared again since. */
    return sl__waitq_wait(&e->q_, &e->guard_, timeout_ms, NULL);
}

int sl_event_destroy(sl_event *e)
{
    if (!e)
        return SL_EINVAL;
    return sync_check_idle(&e->q_, &e->guard_);
}
