/* shm.h - the pool's shared mapping: layout, a buddy allocator for large
 * payloads, single-producer single-consumer rings, and the process-shared
 * spin lock (private to mp/). */
#ifndef SL_MP_SHM_H
#define SL_MP_SHM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/arch.h"
#include "stackless.h"

#define MP_SLOT 256             /* bytes of a ring slot                    */
#define MP_MIN_ORDER 6          /* smallest heap block: 64 bytes           */
#define MP_MAX_ORDERS 48

/* A byte spin lock in shared memory (processes, not only threads). */
void mp_lock(_Atomic uint8_t *l);
static inline void mp_unlock(_Atomic uint8_t *l)
{
    atomic_store_explicit(l, 0, memory_order_release);
}

/* ---- ring slots ------------------------------------------------------- */

enum { MP_TASK = 1, MP_CHUNK = 2, MP_STOP = 3 };

/* Parent -> worker. Input bytes inline (in_len <= MP_TASK_INLINE) or in
 * the heap at in_off. */
struct mp_task {
    uint64_t id;       /* the parent's pending record, for checking      */
    sl_task_fn fn;
    uint32_t kind;     /* MP_TASK, MP_CHUNK (n items), MP_STOP            */
    uint32_t in_len;
    uint64_t in_off;   /* heap offset + 1, 0: inline                      */
    uint32_t n, in_size, out_size, pad;
    char data[];
};
#define MP_TASK_INLINE (MP_SLOT - sizeof(struct mp_task))

/* Worker -> parent. */
struct mp_result {
    uint64_t id;
    int32_t status;
    uint32_t out_len;
    uint64_t out_off;  /* heap offset + 1, 0: inline                      */
    char data[];
};
#define MP_RESULT_INLINE (MP_SLOT - sizeof(struct mp_result))

/* A single-producer single-consumer ring of MP_SLOT-byte slots. */
struct mp_ring {
    _Alignas(SL_CACHE_LINE) _Atomic uint64_t head; /* next to consume (consumer) */
    _Alignas(SL_CACHE_LINE) _Atomic uint64_t tail; /* next to fill (producer)    */
    _Alignas(SL_CACHE_LINE) uint32_t mask;
    char slots[] __attribute__((aligned(SL_CACHE_LINE)));
};

static inline void *mp_ring_slot(struct mp_ring *r, uint64_t i)
{
    return r->slots + (size_t)(i & r->mask) * MP_SLOT;
}

/* Producer: the slot to fill, or NULL when full; mp_ring_push publishes. */
static inline void *mp_ring_reserve(struct mp_ring *r)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    return t - h > r->mask ? NULL : mp_ring_slot(r, t);
}
static inline void mp_ring_push(struct mp_ring *r)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
}
/* Consumer: the oldest slot, or NULL when empty; mp_ring_pop frees it. */
static inline void *mp_ring_peek(struct mp_ring *r)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    return h == t ? NULL : mp_ring_slot(r, h);
}
static inline void mp_ring_pop(struct mp_ring *r)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
}

/* ---- the shared mapping ------------------------------------------------ */

/* One per worker process slot (a replacement takes over its slot). */
struct mp_wslot {
    _Atomic int32_t pid;
    _Atomic uint32_t sleeping;   /* waits on evfd for tasks               */
    _Atomic uint64_t current;    /* id of the task it runs, 0: none        */
    int evfd;                    /* doorbell for tasks                    */
    int bell;                    /* doorbell for mpchans                  */
    uint64_t task_ring, result_ring; /* offsets in the mapping            */
};

struct mp_heap {
    _Atomic uint8_t lock;
    uint32_t orders;             /* the heap is 1 << (orders-1+MIN) bytes  */
    uint64_t base;               /* offset of the heap in the mapping     */
    uint64_t meta;               /* offset of one byte per 64-byte block:
                                    order | 0x80 when a free block starts */
    uint64_t free_head[MP_MAX_ORDERS]; /* offset + 1 of a free block       */
    uint64_t in_use;             /* bytes handed out                      */
};

struct mp_shared {
    uint32_t nprocs;
    uint32_t depth;
    _Atomic uint32_t parent_sleeping; /* the collector waits on parent_evfd */
    int parent_evfd;
    int parent_bell;             /* mpchan doorbell of the parent          */
    int32_t parent_pid;
    size_t size;
    struct mp_heap heap;
    struct mp_wslot w[];
};

static inline void *mp_at(struct mp_shared *s, uint64_t off)
{
    return (char *)s + off;
}

/* Map and lay out a region for nprocs workers with rings of depth slots
 * and a heap of heap_size bytes (a power of two). NULL and errno. */
struct mp_shared *mp_shared_new(uint32_t nprocs, uint32_t depth,
                                size_t heap_size);
void mp_shared_free(struct mp_shared *s);

/* Heap: offset + 1 of a block of at least n bytes, or 0 when there is no
 * room now. */
uint64_t mp_heap_alloc(struct mp_shared *s, size_t n);
void mp_heap_free(struct mp_shared *s, uint64_t off1);
static inline void *mp_heap_ptr(struct mp_shared *s, uint64_t off1)
{
    return (char *)s + s->heap.base + (off1 - 1);
}
/* Bytes of the heap (the largest block). */
static inline size_t mp_heap_size(const struct mp_shared *s)
{
    return (size_t)1 << (s->heap.orders - 1 + MP_MIN_ORDER);
}

/* Wake the process behind an eventfd doorbell. */
void mp_ring_bell(int fd);
/* Drain an eventfd (non-blocking). */
void mp_drain_bell(int fd);

#endif /* SL_MP_SHM_H */
