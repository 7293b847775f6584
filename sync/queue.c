/* queue.c - sl_queue (queue.Queue, LifoQueue, PriorityQueue): items are
 * pointers kept in a ring (FIFO), a stack (LIFO) or a binary heap ordered
 * by cmp (PRIORITY), with an optional capacity, blocking put and get, and
 * task_done / join.
 *
 * Invariants (under the guard):
 *  - getters wait only while the queue is empty; a put that finds one
 *    hands its item straight to the first (the item is never stored);
 *  - putters wait only while the queue is full (count_ + reserved_ ==
 *    capacity_); whenever a slot comes free and a putter waits, the first
 *    one is woken and the slot kept for it (reserved_), so a putter
 *    arriving later cannot take that slot first;
 *  - count_ + reserved_ <= alloc_: a woken putter always finds room;
 *  - unfinished_ counts the items put and not yet marked done.
 * count_ and reserved_ are read without the guard by size/empty/full. */
#include <stdlib.h>
#include <string.h>

#include "sync/sync.h"

#define QUEUE_FIRST_ALLOC 16

int sl_queue_init(sl_queue *q, int kind, size_t capacity, sl_queue_cmp cmp)
{
    if (!q || kind < SL_QUEUE_FIFO || kind > SL_QUEUE_PRIORITY ||
        (kind == SL_QUEUE_PRIORITY) != (cmp != NULL))
        return SL_EINVAL;
    size_t alloc = capacity && capacity < QUEUE_FIRST_ALLOC
                       ? capacity
                       : QUEUE_FIRST_ALLOC;
    void **items = malloc(alloc * sizeof *items);
    if (!items)
        return SL_ENOMEM;
    memset(q, 0, sizeof *q);
    sl__waitq_init(&q->getters_, &q->guard_);
    sl__waitq_init(&q->putters_, &q->guard_);
    sl__waitq_init(&q->joiners_, &q->guard_);
    q->items_ = items;
    q->alloc_ = alloc;
    q->capacity_ = capacity;
    q->cmp_ = cmp;
    q->kind_ = kind;
    return 0;
}

/* ---- storage: ring, stack or heap in items_[alloc_] ------------------------ */

static void heap_push(void **h, size_t n, void *item, sl_queue_cmp cmp)
{
    while (n > 0) {
        size_t parent = (n - 1) / 2;
        if (cmp(item, h[parent]) >= 0)
            break;
        h[n] = h[parent];
        n = parent;
    }
    h[n] = item;
}

/* Put item in the hole at the root of the heap h[0 .. n). */
static void heap_sift_down(void **h, size_t n, void *item, sl_queue_cmp cmp)
{
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && cmp(h[c + 1], h[c]) < 0)
            c++;
        if (cmp(h[c], item) >= 0)
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = item;
}

/* There is room (count_ < alloc_). */
static void store_push(sl_queue *q, void *item)
{
    size_t n = q->count_;
    if (q->kind_ == SL_QUEUE_FIFO) {
        size_t i = q->head_ + n;
        q->items_[i >= q->alloc_ ? i - q->alloc_ : i] = item;
    } else if (q->kind_ == SL_QUEUE_LIFO) {
        q->items_[n] = item;
    } else {
        heap_push(q->items_, n, item, q->cmp_);
    }
    SL_STORE(&q->count_, n + 1);
}

/* The queue is not empty. */
static void *store_pop(sl_queue *q)
{
    size_t n = q->count_ - 1;
    void *item;
    if (q->kind_ == SL_QUEUE_FIFO) {
        item = q->items_[q->head_];
        q->head_ = q->head_ + 1 == q->alloc_ ? 0 : q->head_ + 1;
    } else if (q->kind_ == SL_QUEUE_LIFO) {
        item = q->items_[n];
    } else {
        item = q->items_[0];
        heap_sift_down(q->items_, n, q->items_[n], q->cmp_);
    }
    SL_STORE(&q->count_, n);
    return item;
}

/* Make room for one more item: double alloc_ (up to capacity_). */
static int store_grow(sl_queue *q)
{
    size_t old = q->alloc_;
    size_t want = old * 2;
    if (q->capacity_ && want > q->capacity_)
        want = q->capacity_;
    if (want <= old || want > SIZE_MAX / sizeof(void *))
        return SL_ENOMEM;
    void **items = realloc(q->items_, want * sizeof *items);
    if (!items)
        return SL_ENOMEM;
    if (q->kind_ == SL_QUEUE_FIFO && q->head_ + q->count_ > old) {
        /* The ring wrapped: move its first part to the new end. */
        size_t first = old - q->head_;
        memmove(items + want - first, items + q->head_, first * sizeof *items);
        q->head_ = want - first;
    }
    q->items_ = items;
    q->alloc_ = want;
    return 0;
}

static bool queue_full(const sl_queue *q)
{
    return q->capacity_ &&
           SL_LOAD(&q->count_) + SL_LOAD(&q->reserved_) >= q->capacity_;
}

/* ---- put, get ---------------------------------------------------------------- */

/* Called with the guard held after a slot may have come free (a get took
 * an item; a woken putter handed its item to a getter instead of using
 * the slot kept for it): keep it for the first waiting putter. */
static void pass_slot(sl_queue *q)
{
    if (q->capacity_ && !queue_full(q) && sl__waitq_wake(&q->putters_, NULL))
        SL_STORE(&q->reserved_, q->reserved_ + 1);
}

int sl_queue_put(sl_queue *q, void *item, int64_t timeout_ms)
{
    if (!q)
        return SL_EINVAL;
    SYNC_LOCK(q);
    if (queue_full(q)) {
        if (timeout_ms == 0) {
            SYNC_UNLOCK(q);
            return SL_ETIMEDOUT;
        }
        int rc = sl__waitq_wait(&q->putters_, &q->guard_, timeout_ms, NULL);
        if (rc)
            return rc; /* skipped by every get: no slot was kept for us */
        SYNC_LOCK(q);
        SL_STORE(&q->reserved_, q->reserved_ - 1); /* the slot kept for us */
    } else if (q->count_ + q->reserved_ == q->alloc_) {
        int rc = store_grow(q);
        if (rc) {
            SYNC_UNLOCK(q);
            return rc;
        }
    }
    if (!sl__waitq_wake(&q->getters_, item))
        store_push(q, item);
    q->unfinished_++;
    pass_slot(q);
    SYNC_UNLOCK(q);
    return 0;
}

int sl_queue_get(sl_queue *q, void **item, int64_t timeout_ms)
{
    if (!q || !item)
        return SL_EINVAL;
    SYNC_LOCK(q);
    if (q->count_ == 0) {
        if (timeout_ms == 0) {
            SYNC_UNLOCK(q);
            return SL_ETIMEDOUT;
        }
        void *handed = NULL;
        int rc = sl__waitq_wait(&q->getters_, &q->guard_, timeout_ms, &handed);
        if (rc == 0)
            *item = handed;
        return rc;
    }
    *item = store_pop(q);
    pass_slot(q);
    SYNC_UNLOCK(q);
    return 0;
}

/* ---- task_done, join ----------------------------------------------------------- */

int sl_queue_task_done(sl_queue *q)
{
    if (!q)
        return SL_EINVAL;
    SYNC_LOCK(q);
    int rc = 0;
    if (q->unfinished_ == 0)
        rc = SL_ESTATE;
    else if (--q->unfinished_ == 0)
        sync_wake_all(&q->joiners_, NULL);
    SYNC_UNLOCK(q);
    return rc;
}

int sl_queue_join(sl_queue *q, int64_t timeout_ms)
{
    if (!q)
        return SL_EINVAL;
    SYNC_LOCK(q);
    if (q->unfinished_ == 0) {
        SYNC_UNLOCK(q);
        return 0;
    }
    if (timeout_ms == 0) {
        SYNC_UNLOCK(q);
        return SL_ETIMEDOUT;
    }
    return sl__waitq_wait(&q->joiners_, &q->guard_, timeout_ms, NULL);
}

/* ---- size, destroy ---------------------------------------------------------- */

size_t sl_queue_size(const sl_queue *q)
{
    return q ? SL_LOAD(&q->count_) : 0;
}

bool sl_queue_empty(const sl_queue *q)
{
    return sl_queue_size(q) == 0;
}

bool sl_queue_full(const sl_queue *q)
{
    return q && queue_full(q);
}

int sl_queue_destroy(sl_queue *q)
{
    if (!q)
        return SL_EINVAL;
    SYNC_LOCK(q);
    bool busy = q->reserved_ > 0 || sl__waitq_has_waiters(&q->getters_) ||
                sl__waitq_has_waiters(&q->putters_) ||
                sl__waitq_has_waiters(&q->joiners_);
    if (!busy) {
        free(q->items_);
        q->items_ = NULL;
        q->alloc_ = q->head_ = q->capacity_ = 0;
        SL_STORE(&q->count_, (size_t)0);
    }
    SYNC_UNLOCK(q);
    return sync_destroyed(busy ? SL_ESTATE : 0);
}
