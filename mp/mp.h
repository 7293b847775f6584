/* mp.h - what the pool and the cross-process channels share (private to
 * mp/). */
#ifndef SL_MP_H
#define SL_MP_H

#include "mp/shm.h"
#include "sched/sched.h"

/* One process's way of waiting for other processes: its doorbell eventfd,
 * watched by one waiting tasklet at a time (the leader), which tells the
 * others through a condition. A waiter reads the generation, looks at the
 * shared state, registers for a bell, then waits for the generation to
 * move; the bell is rung after the shared state changed, so no wake-up
 * is lost. */
struct mp_local {
    sl_lock lock;
    sl_cond cond;
    uint64_t gen;
    bool leader;
    int bell;
};

void mp_local_init(struct mp_local *l, int bell);
uint64_t mp_local_gen(struct mp_local *l);
/* Block until the generation is no longer gen. 0, or SL_EKILLED. */
int mp_local_wait(struct mp_local *l, uint64_t gen);

/* Spin (yielding to this process's other tasklets) until cond(arg) or
 * about 50 us have passed; true if cond holds. */
bool mp_spin_until(bool (*cond)(void *), void *arg);

/* The pool behind a handle from sl_pool_new, or NULL when it is not one
 * or its pool has been freed. */
sl_pool *mp_pool_get(const sl_pool *handle);
struct mp_shared *mp_pool_shared(sl_pool *p);
/* This process's waiting (the parent's, or this worker's). */
struct mp_local *mp_pool_local(sl_pool *p);
/* This process's index among the pool's: 0 the parent, 1 + slot for a
 * worker; -1 for a process that is neither. */
int mp_proc_index(sl_pool *p);

#endif /* SL_MP_H */
