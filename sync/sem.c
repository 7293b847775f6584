/* sem.c - sl_sem: counting and bounded semaphores (threading.Semaphore,
 * BoundedSemaphore). A release with waiters hands its permit straight to
 * the first one (see the design note in lock.c), so value_ is 0 whenever
 * anyone waits. value_ changes only under the guard; sl_sem_value reads it
 * without. */
#include <limits.h>

#include "sync/sync.h"

static int sem_init(sl_sem *s, int64_t value, int64_t bound)
{
    if (!s || value < 0 || value > INT32_MAX)
        return SL_EINVAL;
    sl__waitq_init(&s->q_, &s->guard_);
    s->value_ = value;
    s->bound_ = bound;
    s->guard_ = 0;
    return 0;
}

int sl_sem_init(sl_sem *s, int64_t value)
{
    return sem_init(s, value, -1);
}

int sl_sem_init_bounded(sl_sem *s, int64_t value)
{
    return sem_init(s, value, value);
}

/* Take a permit, or wait for one to be handed over; busy_rc when the
 * caller only tries (timeout_ms 0) and there is none. */
static int sem_take(sl_sem *s, int64_t timeout_ms, int busy_rc)
{
    if (!s)
        return SL_EINVAL;
    SYNC_LOCK(s);
    int64_t v = s->value_;
    if (v > 0) {
        SL_STORE(&s->value_, v - 1);
        SYNC_UNLOCK(s);
        return 0;
    }
    if (timeout_ms == 0) {
        SYNC_UNLOCK(s);
        return busy_rc;
    }
    return sl__waitq_wait(&s->q_, &s->guard_, timeout_ms, NULL);
}

int sl_sem_acquire(sl_sem *s)
{
    return sem_take(s, -1, SL_ETIMEDOUT);
}

int sl_sem_acquire_timeout(sl_sem *s, int64_t timeout_ms)
{
    return sem_take(s, timeout_ms, SL_ETIMEDOUT);
}

int sl_sem_try_acquire(sl_sem *s)
{
    return sem_take(s, 0, SL_EWOULDBLOCK);
}

int sl_sem_release(sl_sem *s)
{
    if (!s)
        return SL_EINVAL;
    SYNC_LOCK(s);
    int64_t v = s->value_;
    int rc = 0;
    if ((s->bound_ >= 0 && v >= s->bound_) || v == INT64_MAX)
        rc = SL_EINVAL; /* more releases than acquires */
    else if (!sl__waitq_wake(&s->q_, NULL))
        SL_STORE(&s->value_, v + 1);
    SYNC_UNLOCK(s);
    return rc;
}

int64_t sl_sem_value(const sl_sem *s)
{
    return s ? SL_LOAD(&s->value_) : SL_EINVAL;
}

int sl_sem_destroy(sl_sem *s)
{
    if (!s)
        return SL_EINVAL;
    return sync_check_idle(&s->q_, &s->guard_);
}
