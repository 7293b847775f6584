/* handle.c - the table of live pools: a pool used after sl_pool_free gets
 * SL_EINVAL, and an mpchan finds its pool by address.
 *
 * What sl_pool_new gives out is not the address of the pool but a token:
 * a tag, the index of the pool's entry in a table of live pools, and the
 * generation that entry had when the pool was made (every registration
 * takes a new one). Every call looks the token up; a freed pool's entry
 * is empty or has moved on to a later generation, so its token gets
 * SL_EINVAL, even when a new pool has been allocated at the old one's
 * address (where a table of addresses would take the stale handle for
 * the new pool), and nothing freed is ever read (as a magic number in
 * the pool itself would be). The tag makes the token a non-canonical
 * address: dereferenced by mistake, it faults at once. */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "mp/mp.h"

#define HANDLE_TAG ((uintptr_t)0x5100000000000000u)
#define HANDLE_TAG_MASK ((uintptr_t)0xff00000000000000u)
#define HANDLE_GEN_MASK (((uint64_t)1 << 50) - 1)

static struct {
    sl_pool *_Atomic pool;
    _Atomic uint64_t gen;
} pool_table[SL__MP_MAX_POOLS];
static _Atomic uint64_t pool_gens;

sl_pool *sl__mp_pool_lookup(const sl_pool *h)
{
    uintptr_t v = (uintptr_t)h;
    if ((v & HANDLE_TAG_MASK) != HANDLE_TAG)
        return NULL;
    unsigned i = (unsigned)(v & (SL__MP_MAX_POOLS - 1));
    uint64_t gen = (uint64_t)(v >> 6) & HANDLE_GEN_MASK;
    if (atomic_load_explicit(&pool_table[i].gen, memory_order_acquire) != gen)
        return NULL;
    sl_pool *p = atomic_load_explicit(&pool_table[i].pool, memory_order_acquire);
    if (atomic_load_explicit(&pool_table[i].gen, memory_order_acquire) != gen)
        return NULL; /* freed meanwhile (a race of the caller's own) */
    return p;
}

/* In a worker process no handle is live (a task cannot submit to, close or
 * free the pool it runs in: the worker has a copy of the parent's pool,
 * not the pool). */
sl_pool *sl__mp_pool_get(const sl_pool *h)
{
    return sl__mp_my_slot >= 0 ? NULL : sl__mp_pool_lookup(h);
}

sl_pool *sl__mp_pool_register(sl_pool *p)
{
    for (unsigned i = 0; i < SL__MP_MAX_POOLS; i++) {
        sl_pool *e = NULL;
        if (!atomic_compare_exchange_strong(&pool_table[i].pool, &e, p))
            continue;
        uint64_t gen = (atomic_fetch_add(&pool_gens, 1) + 1) & HANDLE_GEN_MASK;
        atomic_store_explicit(&pool_table[i].gen, gen, memory_order_release);
        return (sl_pool *)(HANDLE_TAG | (uintptr_t)(gen << 6) | i);
    }
    return NULL;
}

void sl__mp_pool_unregister(const sl_pool *h)
{
    unsigned i = (unsigned)((uintptr_t)h & (SL__MP_MAX_POOLS - 1));
    atomic_store_explicit(&pool_table[i].gen, 0, memory_order_release);
    atomic_store_explicit(&pool_table[i].pool, NULL, memory_order_release);
}

static bool in_heap(const sl_pool *p, const void *addr)
{
    const char *a = addr;
    return a >= p->map.heap && a < p->map.heap + p->map.heap_size;
}

sl_pool *sl__mp_pool_of(const void *addr)
{
    if (sl__mp_my_slot >= 0)
        return in_heap(sl__mp_my_pool, addr) ? sl__mp_my_pool : NULL;
    for (unsigned i = 0; i < SL__MP_MAX_POOLS; i++) {
        sl_pool *p =
            atomic_load_explicit(&pool_table[i].pool, memory_order_acquire);
        if (p && in_heap(p, addr))
            return p;
    }
    return NULL;
}

void sl__mp_forget_other_pools(const sl_pool *mine)
{
    for (unsigned i = 0; i < SL__MP_MAX_POOLS; i++) {
        sl_pool *p =
            atomic_load_explicit(&pool_table[i].pool, memory_order_relaxed);
        if (p && p != mine) {
            munmap(p->map.base, p->map.size);
            atomic_store_explicit(&pool_table[i].pool, NULL,
                                  memory_order_relaxed);
            atomic_store_explicit(&pool_table[i].gen, 0, memory_order_relaxed);
        }
    }
}
