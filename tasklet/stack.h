/* stack.h - per-worker pool of tasklet stacks: guarded slots carved lazily from big NORESERVE regions, recycled LIFO. */
#ifndef SL_TASKLET_STACK_H
#define SL_TASKLET_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stackless.h"
#include "tasklet/internal.h"

#if SL_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* How a slot's overflow is caught. A pool starts in the best mode that
 * works and only moves down this list (see guard_slot() in stack.c). */
enum {
    SL_GUARD_MADV = 1,  /* madvise(MADV_GUARD_INSTALL) on the lowest page:
                           a PTE marker, no extra VMA (Linux >= 6.13)    */
    SL_GUARD_MPROTECT,  /* mprotect(PROT_NONE) on the lowest page: costs up
                           to 2 VMAs, so limited by a process-wide budget */
    SL_GUARD_CANARY     /* no trap: a magic word at the lowest usable
                           address that callers check (sl__stack_canary_check) */
};

/* A slot, low to high: [guard (1 page) | usable ... top). A tasklet's SP
 * starts at the top and grows down toward the guard. */

/* One mmap()ed region of slots. Lives in sl_stack_pool.regions. */
struct sl__stack_region {
    char *base;         /* mmap address; the region is nslots * size bytes */
    size_t nslots;
    char *canary_from;  /* slots at or above it were carved in canary mode;
                           base + nslots * size if none were              */
    bool fresh;         /* no slot carved yet (waits for the bump cursor) */
};

/* One per worker; single-threaded (only the mprotect budget is shared, and
 * atomically). Every slot is in exactly one state: uncarved (counted in
 * ncarve), free (on the free list), or taken (owned by a tasklet).
 * Invariant: nfree + ncarve >= promised, so a promise can always be kept
 * without a syscall that could fail. fork(): the child gets a copy of the
 * pool and of its mappings, guards included, and may go on using it. */
typedef struct sl_stack_pool sl_stack_pool;
struct sl_stack_pool {
    size_t size;        /* bytes per slot, guard included; page multiple  */
    size_t usable;      /* size - guard                                   */
    size_t guard;       /* bytes of guard at the bottom of a slot (1 page) */
    void *free;         /* LIFO of given-back slots (lowest addresses),
                           linked through each slot's highest word        */
    size_t nfree;       /* slots on free                                  */
    char *bump;         /* next slot to carve in the current region ...   */
    char *bump_end;     /* ... and its end; bump == bump_end: none left   */
    size_t ncarve;      /* uncarved slots in all regions, bump's included  */
    size_t promised;    /* reserved for tasklets that have not run yet    */
    size_t ncarved;     /* slots carved so far (free + taken)             */
    size_t nslots;      /* slots mapped so far (ncarved + ncarve)         */
    struct sl__stack_region *regions; /* malloc'd, sorted by base         */
    size_t nregions, cap_regions;
    int guard_mode;     /* SL_GUARD_*: how the next carved slot is guarded */
    size_t mprotect_budget; /* mprotect guards we may still make, drawn in
                           chunks from a process-wide budget              */
    size_t nmprotect;   /* mprotect guards made (given back at destroy)   */
    size_t ncanary;     /* slots carved in canary mode                    */
    unsigned *vg_ids;   /* valgrind stack ids of carved slots; malloc'd,
                           capacity nslots; NULL when not under valgrind  */
    size_t nvg;
    bool valgrind;      /* running under valgrind                         */
    size_t depot_high;  /* M:N: more free stacks than this go to the
                           process-wide depot (SIZE_MAX: never)          */
};

/* M:N: stacks a worker frees are reused by the worker that frees them; a
 * worker that frees more than it spawns (it is given work) would hoard
 * them while another maps fresh ones. The depot moves batches of free
 * stacks between pools (under a mutex, a batch at a time). */
void sl__stack_depot_put(sl_stack_pool *p);
bool sl__stack_depot_get(sl_stack_pool *p);
void sl__stack_depot_forget(void); /* fork child: no lock, no contents */
void sl__stack_depot_reset(void);

/* Set up an empty pool whose stacks have at least usable_size bytes
 * (rounded up to whole pages; a guard page is added below). Maps nothing.
 * 0, or SL_EINVAL for a size of 0 or above 1 TiB. SL_STACK_GUARD=madv|
 * mprotect|canary in the environment forces the starting guard mode. */
int sl__stack_pool_init(sl_stack_pool *p, size_t usable_size);
/* Unmap every region (taken stacks included: nobody may still run on
 * one) and release everything the pool holds. The pool can be
 * initialised again afterwards. */
void sl__stack_pool_destroy(sl_stack_pool *p);
/* Whether madvise(MADV_GUARD_INSTALL) really guards a page in this
 * process (probed once: an emulator may accept it and do nothing). */
bool sl__madv_guard_works(void);

/* Slow paths of the inline calls below; call those instead. */
int sl__stack_grow(sl_stack_pool *p);
void *sl__stack_carve(sl_stack_pool *p);
/* False if stack was carved in canary mode and its canary is gone (it
 * overflowed), whichever pool carved it (p gives the geometry, which all
 * pools share). Callers skip it while sl__stack_canary_any is 0. */
bool sl__stack_canary_check(const sl_stack_pool *p, const void *stack);
/* (atomic) Some pool of the process has carved a canary slot: from then
 * on every worker checks canaries at its switches. */
extern uint8_t sl__stack_canary_any;

/* Promise one stack to a tasklet that will run later; touches no stack
 * page. Maps a new region when every free or uncarved slot is already
 * promised. 0; or SL_ENOMEM / -errno, and then the pool is unchanged. */
static inline int sl__stack_reserve(sl_stack_pool *p)
{
    if (sl_unlikely(p->nfree + p->ncarve <= p->promised)) {
        int rc = sl__stack_grow(p);
        if (rc < 0)
            return rc;
    }
    p->promised++;
    return 0;
}

/* Drop a promise (the tasklet died before it ever ran). */
static inline void sl__stack_unreserve(sl_stack_pool *p)
{
    SL__ASSERT(p->promised > 0);
    p->promised--;
}

/* Consume a promise: the warmest free slot, else a newly carved one (its
 * guard installed, registered with valgrind). Returns the slot's lowest
 * address (its guard page); the stack proper starts at sl__stack_top().
 * Never fails. */
static inline void *sl__stack_take(sl_stack_pool *p)
{
    SL__ASSERT(p->promised > 0);
    p->promised--;
    void *s = p->free;
    if (sl_unlikely(s == NULL)) {
        if (p->depot_high == SIZE_MAX || !sl__stack_depot_get(p))
            return sl__stack_carve(p);
        s = p->free;
    }
    p->free = *(void **)((char *)s + p->size - sizeof(void *));
    p->nfree--;
    return s;
}

#if SL_ASAN
/* Unpoison [lo, lo + len), a stack's usable range. Poison lies only in the
 * part a tasklet used, near the top, so unpoison from the lowest poisoned
 * byte up: the shadow of the untouched rest is only read, never written,
 * and costs no memory. */
static inline void sl__stack_asan_clean(char *lo, size_t len)
{
    char *bad = (char *)__asan_region_is_poisoned(lo, len);
    if (bad != NULL)
        ASAN_UNPOISON_MEMORY_REGION(bad, (size_t)(lo + len - bad));
}
#endif

/* Give a taken slot back; O(1). Writes only the slot's highest word, which
 * is dead once the tasklet has started (boost's make_fcontext keeps only
 * the first jump's return address there), so the dying tasklet may call
 * this on its own stack, provided nothing takes the slot before it has
 * switched away. Under ASan the usable range is unpoisoned first: a dead
 * fiber leaves poisoned redzones behind. */
static inline void sl__stack_give(sl_stack_pool *p, void *stack)
{
    char *top = (char *)stack + p->size;
#if SL_ASAN
    /* A tasklet that ended has unwound every frame below its last one, and
     * their epilogues unpoisoned them: only the top of the stack can still
     * be poisoned. sl__stack_give_used says how much; this is the
     * conservative default. */
    sl__stack_asan_clean(top - p->usable, p->usable);
#endif
    *(void **)(top - sizeof(void *)) = p->free;
    p->free = stack;
    p->nfree++;
    if (sl_unlikely(p->nfree > p->depot_high))
        sl__stack_depot_put(p);
}

/* sl__stack_give for a stack whose only possibly poisoned bytes lie at or
 * above `lowest` (ASan builds: a tasklet ending knows its deepest live
 * frame; scanning 64 KiB of shadow per tasklet end made a million
 * tasklets take a minute). */
static inline void sl__stack_give_used(sl_stack_pool *p, void *stack,
                                       const void *lowest)
{
#if SL_ASAN
    char *top = (char *)stack + p->size;
    char *lo = (char *)lowest;
    if (lo < top - p->usable || lo > top)
        lo = top - p->usable;
    sl__stack_asan_clean(lo, (size_t)(top - lo));
    *(void **)(top - sizeof(void *)) = p->free;
    p->free = stack;
    p->nfree++;
    if (p->nfree > p->depot_high)
        sl__stack_depot_put(p);
#else
    (void)lowest;
    sl__stack_give(p, stack);
#endif
}

/* The initial stack pointer of a slot (one past its highest byte). */
static inline void *sl__stack_top(const sl_stack_pool *p, void *stack)
{
    return (char *)stack + p->size;
}

/* Whether a fault at addr is an overflow of stack: addr lies in its guard
 * or up to one page below it (a frame larger than a page may jump the
 * guard). Pure arithmetic: safe in a signal handler. */
bool sl__stack_guard_hit(const sl_stack_pool *p, const void *stack,
                         const void *addr);


#endif /* SL_TASKLET_STACK_H */
