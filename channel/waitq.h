/* waitq.h - the internal wait queue the sync primitives (sync/) build on.
 *
 * A struct sl__waitq is a FIFO of tasklets waiting on some condition of
 * the object that embeds it. The object guards its own state, and every
 * operation on its wait queues, with one byte spinlock of its own (the
 * "guard"): take it with sl__guard_lock (a no-op with one worker), check
 * the state, then either change it and wake waiters, or wait.
 *
 * A wait ends in exactly one way (the runtime arbitrates): woken by
 * sl__waitq_wake (0, with the value the waker passed), timed out
 * (SL_ETIMEDOUT), killed (SL_EKILLED), or refused because nothing could
 * ever wake the caller (SL_EDEADLOCK, before blocking). A waiter that
 * timed out or was killed is skipped by sl__waitq_wake, so a wake is never
 * lost on a waiter that is leaving: it goes to the next one.
 */
#ifndef SL_WAITQ_H
#define SL_WAITQ_H

#include "stackless.h"

void sl__waitq_init(struct sl__waitq *q);

/* The guard: a byte spinlock, taken only when several workers run. */
void sl__guard_lock(uint8_t *guard);
void sl__guard_unlock(uint8_t *guard);

/* Called with *guard held. Blocks the calling tasklet at the tail of q
 * until it is woken, timeout_ms passes (-1: forever; 0 returns
 * SL_ETIMEDOUT at once), or it is killed. The guard is released once the
 * caller has switched out, and is NOT held when this returns (whatever the
 * result): take it again to look at the object's state.
 * Returns 0 (woken; *value, if value is not NULL, gets what the waker
 * passed), SL_ETIMEDOUT, SL_EKILLED, SL_EDEADLOCK, or SL_ESTATE (no
 * runtime on this thread). */
int sl__waitq_wait(struct sl__waitq *q, uint8_t *guard, int64_t timeout_ms,
                   void **value);

/* Called with the guard held. Wakes the first waiter that is still waiting
 * (its sl__waitq_wait returns 0 and value); it becomes runnable at the end
 * of the caller's run queue, the caller keeps running. False if nobody
 * waits. Must be called from a tasklet (a thread running the runtime):
 * without one it wakes nobody and returns false, so objects with waiters
 * are released from tasklets only (documented in docs/sync.md). */
bool sl__waitq_wake(struct sl__waitq *q, void *value);

/* Called with the guard held: are there waiters? (A waiter that is just
 * timing out may still be counted.) */
bool sl__waitq_has_waiters(const struct sl__waitq *q);

/* The calling tasklet, or NULL without a runtime (for owner checks). */
static inline sl_tasklet *sl__waitq_self(void) { return sl_current(); }

#endif /* SL_WAITQ_H */
