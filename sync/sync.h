/* sync.h - what the sync primitives of sync/ share: the wait queue, the
 * relaxed atomics and a few helpers. Private, not installed. */
#ifndef SL_SYNC_H
#define SL_SYNC_H

#include "sched/wait.h"

/* The guard of an object: a byte spinlock, a no-op with one worker. */
#define SYNC_LOCK(obj) sl__guard_lock(&(obj)->guard_)
#define SYNC_UNLOCK(obj) sl__guard_unlock(&(obj)->guard_)

/* Called with the guard held: wake every live waiter of q with value.
 * Returns how many were woken. */
static inline unsigned sync_wake_all(struct sl__waitq *q, void *value)
{
    unsigned n = 0;
    while (sl__waitq_wake(q, value))
        n++;
    return n;
}

/* Called with the guard held: wait on q, then take the guard again.
 * Returns what sl__waitq_wait returned. For the callers that must look at
 * the object's state whatever the wait's outcome. */
static inline int sync_wait_relock(struct sl__waitq *q, uint8_t *guard,
                                   int64_t timeout_ms, void **value)
{
    int rc = sl__waitq_wait(q, guard, timeout_ms, value);
    sl__guard_lock(guard);
    return rc;
}

/* The end of a destroy that returns rc: when it succeeds (0), the
 * object's memory may be reused at once, so no inspection that found one
 * of its queues through a tasklet may still read it (sl__waitq_retire). */
static inline int sync_destroyed(int rc)
{
    if (rc == 0)
        sl__waitq_retire();
    return rc;
}

/* What destroy checks: SL_ESTATE while tasklets wait on q, else 0 (and
 * the object is retired: sync_destroyed). */
static inline int sync_check_idle(struct sl__waitq *q, uint8_t *guard)
{
    sl__guard_lock(guard);
    int rc = sl__waitq_has_waiters(q) ? SL_ESTATE : 0;
    sl__guard_unlock(guard);
    return sync_destroyed(rc);
}

#endif /* SL_SYNC_H */
