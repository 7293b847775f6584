/* wait.c - how a process of a pool waits for the others: a brief spin that
 * runs its other tasklets, then its doorbell (mp.h, struct mp_local). */
#define _GNU_SOURCE
#include <sched.h>

#include "mp/mp.h"

/* Spin for about SL__MP_SPIN_NS, running this process's other tasklets
 * between looks. With yield (mpchans), sched_yield() every 64 looks lets a
 * partner that shares our core run (more spinners than cores); but a
 * sched_yield() on a core busy with another process's long task can give
 * that task a whole time slice (milliseconds under EEVDF), during which
 * nobody rings us since we do not look asleep: when one took longer than
 * the spin itself, stop spinning and go to sleep the ordinary way. */
bool sl__mp_spin_until(bool (*cond)(void *), void *arg, bool yield)
{
    int64_t t0 = sl__now_ns();
    for (unsigned i = 0;; i++) {
        if (cond(arg))
            return true;
        sl_schedule();
        sl_arch_relax();
        if ((i & 63) == 63) {
            int64_t before = yield ? sl__now_ns() : 0;
            if (yield)
                sched_yield();
            int64_t now = sl__now_ns();
            if (now - t0 > SL__MP_SPIN_NS ||
                (yield && now - before > SL__MP_SPIN_NS))
                return cond(arg);
        }
    }
}

void sl__mp_local_init(struct mp_local *l, int bell)
{
    sl_lock_init(&l->lock);
    sl_cond_init(&l->cond);
    l->gen = 0;
    l->leader = false;
    l->bell = bell;
}

uint64_t sl__mp_local_gen(struct mp_local *l)
{
    sl_lock_acquire(&l->lock);
    uint64_t g = l->gen;
    sl_lock_release(&l->lock);
    return g;
}

int sl__mp_local_wait(struct mp_local *l, uint64_t gen)
{
    int rc = sl_lock_acquire(&l->lock);
    if (rc < 0)
        return rc;
    while (l->gen == gen) {
        if (!l->leader) {
            l->leader = true;
            sl_lock_release(&l->lock);
            /* A timeout counts as a bell: every waiter looks again. */
            rc = sl_wait_fd(l->bell, SL_READABLE, SL__MP_NAP_MS);
            if (rc == SL_ETIMEDOUT)
                rc = 0;
            sl__mp_bell_drain(l->bell);
            sl_lock_acquire(&l->lock); /* a kill: taken anyway (try below) */
            l->leader = false;
            l->gen++;
            sl_cond_notify_all(&l->cond);
            if (rc < 0)
                break;
        } else {
            rc = sl_cond_wait(&l->cond, &l->lock, -1);
            if (rc < 0 && rc != SL_ETIMEDOUT)
                return rc; /* the lock is not held then */
        }
    }
    sl_lock_release(&l->lock);
    return rc < 0 ? rc : 0;
}
