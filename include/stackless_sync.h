/* stackless_sync.h - tasklet-level synchronisation: locks, reentrant locks,
 * semaphores, events, conditions, barriers and queues (included by
 * stackless.h; do not include it alone).
 *
 * The seeds' threading toolbox (Lock, RLock, Semaphore, BoundedSemaphore,
 * Event, Condition, Barrier, Queue) for tasklets: waiting blocks the
 * calling tasklet, never its worker thread, and works across workers.
 *
 * Conventions:
 *  - objects are caller-allocated: *_init before use, *_destroy after;
 *    destroy returns SL_ESTATE while tasklets wait on the object (or a
 *    lock is held) and leaves it usable then; a destroyed object must be
 *    initialised again before reuse; an object must outlive every call
 *    made on it;
 *  - the fields are private: use the functions;
 *  - blocking calls take a timeout in milliseconds where it makes sense
 *    (-1 forever, 0 only try, > 0 at most that long) and return 0 or:
 *    SL_ETIMEDOUT, SL_EKILLED (the caller was killed while waiting),
 *    SL_EDEADLOCK (nothing could ever wake it: the same rules as a channel
 *    call, docs/runtime.md), SL_ESTATE without a runtime, SL_EINVAL for a
 *    NULL object;
 *  - init and the non-blocking calls need no runtime.
 */
#ifndef STACKLESS_SYNC_H
#define STACKLESS_SYNC_H

#ifdef __cplusplus
extern "C" {
#endif

/* Storage for the runtime's internal wait queue (a FIFO of waiting
 * tasklets: a pointer and a count). Private. */
struct sl__waitq {
    void *opaque_[2];
};

/* ---- lock (threading.Lock) --------------------------------------------- */

typedef struct sl_lock {
    struct sl__waitq q_;
    uint32_t state_;
    uint8_t guard_;
} sl_lock;

int sl_lock_init(sl_lock *l);
/* Blocks until the lock is free and takes it. Any tasklet may release it
 * (like threading.Lock); re-acquiring a held lock blocks. */
int sl_lock_acquire(sl_lock *l);
int sl_lock_acquire_timeout(sl_lock *l, int64_t timeout_ms);
/* 0, or SL_EWOULDBLOCK when the lock is held. */
int sl_lock_try_acquire(sl_lock *l);
/* Frees the lock, handing it to the longest waiter if any. SL_ESTATE if
 * it is not held. */
int sl_lock_release(sl_lock *l);
bool sl_lock_locked(const sl_lock *l);
int sl_lock_destroy(sl_lock *l);

/* ---- reentrant lock (threading.RLock) ----------------------------------- */

typedef struct sl_rlock {
    sl_lock lock_;
    sl_tasklet *owner_;
    uint32_t depth_;
} sl_rlock;

int sl_rlock_init(sl_rlock *l);
/* The owner may acquire again; each acquire needs a release. */
int sl_rlock_acquire(sl_rlock *l);
int sl_rlock_acquire_timeout(sl_rlock *l, int64_t timeout_ms);
int sl_rlock_try_acquire(sl_rlock *l);
/* SL_ESTATE if the caller is not the owner. */
int sl_rlock_release(sl_rlock *l);
int sl_rlock_destroy(sl_rlock *l);

/* ---- semaphore (threading.Semaphore, BoundedSemaphore) ----------------- */

typedef struct sl_sem {
    struct sl__waitq q_;
    int64_t value_;
    int64_t bound_; /* -1: unbounded */
    uint8_t guard_;
} sl_sem;

/* A counting semaphore with value permits (value <= INT32_MAX). */
int sl_sem_init(sl_sem *s, int64_t value);
/* A bounded semaphore: releasing beyond the initial value is an error
 * (SL_EINVAL), which catches a release without an acquire. */
int sl_sem_init_bounded(sl_sem *s, int64_t value);
int sl_sem_acquire(sl_sem *s);
int sl_sem_acquire_timeout(sl_sem *s, int64_t timeout_ms);
int sl_sem_try_acquire(sl_sem *s);
int sl_sem_release(sl_sem *s);
/* Permits available now. */
int64_t sl_sem_value(const sl_sem *s);
int sl_sem_destroy(sl_sem *s);

/* ---- event (threading.Event) ------------------------------------------- */

typedef struct sl_event {
    struct sl__waitq q_;
    uint32_t set_;
    uint8_t guard_;
} sl_event;

int sl_event_init(sl_event *e);
/* Sets the flag and wakes every waiter. */
int sl_event_set(sl_event *e);
int sl_event_clear(sl_event *e);
bool sl_event_is_set(const sl_event *e);
/* 0 at once if set, else when set; SL_ETIMEDOUT if not set in time. */
int sl_event_wait(sl_event *e, int64_t timeout_ms);
int sl_event_destroy(sl_event *e);

/* ---- condition (threading.Condition over an sl_lock) ------------------- */

typedef struct sl_cond {
    struct sl__waitq q_;
    uint8_t guard_;
} sl_cond;

int sl_cond_init(sl_cond *c);
/* The caller holds lock (SL_ESTATE otherwise). Releases it, waits for a
 * notify, and takes it again before returning 0 or SL_ETIMEDOUT. After
 * SL_EKILLED or SL_EDEADLOCK the lock is not held: a killed tasklet
 * cannot wait for it any more (docs/sync.md). */
int sl_cond_wait(sl_cond *c, sl_lock *lock, int64_t timeout_ms);
/* Wake one waiter / every waiter (0 when there is none). */
int sl_cond_notify(sl_cond *c);
int sl_cond_notify_all(sl_cond *c);
int sl_cond_destroy(sl_cond *c);

/* ---- barrier (threading.Barrier) ---------------------------------------- */

typedef struct sl_barrier {
    struct sl__waitq q_;
    uint32_t parties_, waiting_, generation_, broken_;
    uint32_t last_break_; /* the generation that broke last */
    uint8_t guard_;
} sl_barrier;

/* parties >= 1. */
int sl_barrier_init(sl_barrier *b, unsigned parties);
/* Wait until parties tasklets have called it; returns the caller's arrival
 * index (0 .. parties-1, the last to arrive gets parties-1) and the
 * barrier resets for the next round. A wait that times out or is killed
 * breaks the barrier: every waiter, and every later wait until
 * sl_barrier_reset, gets SL_EBROKEN. */
int sl_barrier_wait(sl_barrier *b, int64_t timeout_ms);
/* Break the barrier on purpose (waiters get SL_EBROKEN). */
int sl_barrier_abort(sl_barrier *b);
/* Make a broken barrier usable again (waiters still inside get SL_EBROKEN). */
int sl_barrier_reset(sl_barrier *b);
int sl_barrier_destroy(sl_barrier *b);

/* ---- queue (queue.Queue, LifoQueue, PriorityQueue) --------------------- */

enum { SL_QUEUE_FIFO = 0, SL_QUEUE_LIFO = 1, SL_QUEUE_PRIORITY = 2 };

/* Priority order: < 0 when a comes out before b (smallest first). */
typedef int (*sl_queue_cmp)(const void *a, const void *b);

typedef struct sl_queue {
    struct sl__waitq getters_, putters_, joiners_;
    void **items_;
    size_t alloc_, head_, count_, capacity_, unfinished_;
    size_t reserved_; /* free slots promised to woken putters */
    sl_queue_cmp cmp_;
    int kind_;
    uint8_t guard_;
} sl_queue;

/* kind SL_QUEUE_FIFO, _LIFO or _PRIORITY (cmp required, else NULL);
 * capacity 0 means unbounded. SL_EINVAL for a bad kind or missing cmp,
 * SL_ENOMEM. Items are pointers, owned by the caller. */
int sl_queue_init(sl_queue *q, int kind, size_t capacity, sl_queue_cmp cmp);
/* Blocks while the queue is full. SL_ENOMEM if an unbounded queue cannot
 * grow. */
int sl_queue_put(sl_queue *q, void *item, int64_t timeout_ms);
/* Blocks while the queue is empty. */
int sl_queue_get(sl_queue *q, void **item, int64_t timeout_ms);
/* One item taken by get is processed: when every item put has been
 * marked done, join returns. SL_ESTATE if called more times than items
 * were put. */
int sl_queue_task_done(sl_queue *q);
/* Blocks until every item put has been marked done. */
int sl_queue_join(sl_queue *q, int64_t timeout_ms);
size_t sl_queue_size(const sl_queue *q);
bool sl_queue_empty(const sl_queue *q);
bool sl_queue_full(const sl_queue *q);
/* Frees the item storage (items still queued are dropped: the caller owns
 * what they point to). SL_ESTATE while tasklets wait on it. */
int sl_queue_destroy(sl_queue *q);

#ifdef __cplusplus
}
#endif

#endif /* STACKLESS_SYNC_H */
