/* stack.h - per-worker pool of tasklet stacks: guarded slots cut from big NORESERVE regions, prepared in batches, recycled LIFO. */
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
    bool fresh;         /* no slot cut from it yet (waits for the cursor) */
};

/* The provisioner (stack.c): slots are guarded and their top page made
 * present a batch at a time, by the worker itself or, ahead of its
 * demand, by a helper thread. A batch's state moves
 *   QUEUED -> HELPER -> READY or FAILED   (the helper took it), or
 *   QUEUED -> OWNED                        (the worker took it back),
 * each move a compare-and-swap of the mover; only the holder of HELPER
 * touches the batch's memory meanwhile. */
enum {
    SL_BATCH_FREE = 0, /* ring entry unused                              */
    SL_BATCH_QUEUED,   /* cut, waiting in the helper's queue              */
    SL_BATCH_HELPER,   /* the helper is guarding and populating it        */
    SL_BATCH_READY,    /* guarded and present: the worker may take it    */
    SL_BATCH_FAILED,   /* the helper could not guard it: the worker does
                          it slot by slot (with the guard fallbacks)     */
    SL_BATCH_OWNED,    /* taken back by the worker before the helper began */
};
#define SL_STACK_RING 16   /* batches a pool may have ahead of the worker */

typedef struct sl_stack_pool sl_stack_pool;
struct sl__stack_batch {
    char *base;                   /* its first slot                        */
    uint32_t n;                   /* slots                                 */
    uint32_t state;               /* (atomic) SL_BATCH_*                   */
    uint64_t seq;                 /* cut order (the helper's order)        */
    struct sl__stack_batch *qnext;/* (provisioner lock) the helper's queue */
    sl_stack_pool *pool;          /* its pool (the helper reads its size);
                                     NULL: a range job (below)             */
    size_t len;                   /* a range job's bytes                   */
    struct sl__stack_batch *rnext;/* (provisioner lock) range jobs        */
    bool counted;                 /* (provisioner lock) keeps the helper   */
};

/* The helper's other job: make [addr, addr + len) present ahead of its
 * use (a slab chunk mapped ahead). job is the caller's and stays its own
 * until claimed. False, and nothing queued, when there is no helper. */
bool sl__provision_populate(struct sl__stack_batch *job, void *addr,
                            size_t len);
/* The range is needed now, or goes away: the job is taken back if the
 * helper has not begun it, waited for if it has. True if the range was
 * made present. Call it exactly once per sl__provision_populate, even one
 * that returned false. */
bool sl__provision_claim(struct sl__stack_batch *job);

/* One per worker; single-threaded but for the batches the helper works
 * on (above) and the mprotect budget (shared, atomically). Every slot is
 * in exactly one state: uncarved (counted in ncarve: never cut, in a ring
 * batch, or prepared and waiting between bump and bump_end), free (on the
 * free list), or taken (owned by a tasklet).
 * Invariant: nfree + ncarve >= promised, so a promise can always be kept
 * without a syscall that could fail. fork(): the child gets a copy of the
 * pool and of its mappings, guards included (a child of sl_pool's forgets
 * the runtime; stack.c's fork handler forgets the helper). */
struct sl_stack_pool {
    size_t size;        /* bytes per slot, guard included; page multiple  */
    size_t usable;      /* size - guard                                   */
    size_t guard;       /* bytes of guard at the bottom of a slot (1 page) */
    void *free;         /* LIFO of given-back slots (lowest addresses),
                           linked through each slot's highest word        */
    size_t nfree;       /* slots on free                                  */
    char *bump;         /* next prepared slot to take ...                 */
    char *bump_end;     /* ... and the end of that prepared run           */
    char *cut;          /* next slot of the current region no batch has
                           had yet ...                                    */
    char *cut_end;      /* ... and the region's end                       */
    size_t ncarve;      /* uncarved slots in all regions (see above)      */
    size_t promised;    /* reserved for tasklets that have not run yet    */
    size_t ncarved;     /* slots carved so far (free + taken)             */
    size_t nslots;      /* slots mapped so far (ncarved + ncarve)         */
    size_t nqueued;     /* slots in ring batches                          */
    uint64_t nbatches;  /* batches queued so far                          */
    struct sl__stack_region *regions; /* malloc'd, sorted by base         */
    size_t nregions, cap_regions;
    int guard_mode;     /* SL_GUARD_*: how the next carved slot is guarded */
    int provision;      /* SL_PROVISION_*: how slots are prepared         */
    size_t mprotect_budget; /* mprotect guards we may still make, drawn in
                           chunks from a process-wide budget              */
    size_t nmprotect;   /* mprotect guards made (given back at destroy)   */
    size_t ncanary;     /* slots carved in canary mode                    */
    unsigned *vg_ids;   /* valgrind stack ids of carved slots; malloc'd,
                           capacity nslots; NULL when not under valgrind  */
    size_t nvg;
    bool valgrind;      /* running under valgrind                         */
    bool registered;    /* in the provisioner's list of pools             */
    size_t depot_high;  /* M:N: more free stacks than this go to the
                           process-wide depot (SIZE_MAX: never)          */
    sl_stack_pool *reg_next; /* (provisioner lock) the list of pools      */
    struct sl__stack_batch ring[SL_STACK_RING]; /* batches ahead          */
};

/* How slots are prepared (sl_stack_pool.provision; SL_STACK_PROVISION=
 * off|inline|helper in the environment forces one). */
enum {
    SL_PROVISION_OFF = 0, /* one at a time when carved: a guard syscall, and
                             the first touch faults the top page in       */
    SL_PROVISION_INLINE,  /* batches on the worker, one process_madvise
                             call for the guards of up to 512 slots and
                             one making their top pages present          */
    SL_PROVISION_HELPER,  /* the same, and batches beyond the one being
                             used prepared ahead by a helper thread      */
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
 * (plus SL_STACK_TOP_ROOM, rounded up to whole pages; a guard page is
 * added below). Maps nothing.
 * 0, or SL_EINVAL for a size of 0 or above 1 TiB. SL_STACK_GUARD=madv|
 * mprotect|canary in the environment forces the starting guard mode,
 * SL_STACK_PROVISION=off|inline|helper how slots are prepared (default:
 * helper with two CPUs or more to run on, else inline; off under
 * valgrind, which knows neither pidfd_open nor process_madvise). */
int sl__stack_pool_init(sl_stack_pool *p, size_t usable_size);
/* Unmap every region (taken stacks included: nobody may still run on
 * one) and release everything the pool holds, after the helper has let
 * go of the pool's batches (it waits for one in progress). The pool can
 * be initialised again afterwards. The last pool's destroy stops the
 * helper thread. */
void sl__stack_pool_destroy(sl_stack_pool *p);
/* Whether madvise(MADV_GUARD_INSTALL) really guards a page in this
 * process (probed once: an emulator may accept it and do nothing). */
bool sl__madv_guard_works(void);

/* Slow paths of the inline calls below; call those instead. */
int sl__stack_grow(sl_stack_pool *p);
void *sl__stack_carve(sl_stack_pool *p);
/* Slots prepared so far in this process: by the helper thread, by workers
 * a batch at a time, and one at a time (guard by guard, the page faulted
 * in at the first run). For tests and measurements. */
void sl__stack_provision_stats(uint64_t *helped, uint64_t *batched,
                               uint64_t *single);
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

/* Where in its top page a slot's frames start, below the pool's 64 bytes
 * (free-list links, the canary mark): one of SL_STACK_COLORS cache-line
 * offsets, picked from the slot's address. Slots are a whole number of
 * pages apart, so without it every tasklet's hot frames would fall in the
 * same few cache sets (cachegrind: a 10,000-player game's last-level read
 * misses 104k -> 6k, docs/stacks.md). The pool maps SL_STACK_TOP_ROOM
 * bytes more per slot, so a tasklet still has the usable bytes asked for. */
#define SL_STACK_COLORS 32
#define SL_STACK_TOP_ROOM (64 * SL_STACK_COLORS)
static inline size_t sl__stack_below_top(const void *stack)
{
    uint32_t h = (uint32_t)((uintptr_t)stack >> 12) * UINT32_C(0x9E3779B1);
    return 64 + (size_t)(h >> 27) * 64;
}

/* Whether a fault at addr is an overflow of stack: addr lies in its guard
 * or up to one page below it (a frame larger than a page may jump the
 * guard). Pure arithmetic: safe in a signal handler. */
bool sl__stack_guard_hit(const sl_stack_pool *p, const void *stack,
                         const void *addr);


#endif /* SL_TASKLET_STACK_H */
