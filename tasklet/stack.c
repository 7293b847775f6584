/* stack.c - tasklet stacks: big NORESERVE regions carved lazily into guarded slots, reused LIFO. */

/*
 * Why not one mmap per stack: each guarded stack would cost two VMAs
 * (the stack and its PROT_NONE guard), and vm.max_map_count (65530 by
 * default) stops a process near 32k stacks. We want a million.
 *
 * Chosen: map regions of at least 1024 slots / 64 MiB with MAP_NORESERVE
 * (untouched pages cost neither memory nor commit charge) and carve slots
 * from them with a bump pointer only when a tasklet first runs. A region
 * stays one VMA because the guard page of each slot is a PTE marker
 * installed with madvise(MADV_GUARD_INSTALL) (Linux >= 6.13), not a
 * mapping. Freed slots go on a LIFO so the next tasklet gets the warmest
 * stack; the list is linked through each slot's highest word, a page the
 * last tasklet touched, so freeing and reusing touch nothing new.
 *
 * Fallbacks, in order, when the kernel says EINVAL to MADV_GUARD_INSTALL
 * (or accepts it without guarding, as qemu-user does: probed once):
 * mprotect(PROT_NONE) guards while a process-wide budget lasts (a quarter
 * of max_map_count, each guard splitting a VMA in up to three), then a
 * canary word at the bottom of the usable range that callers check. The
 * mode only ever moves down, so a region's canary slots are those carved
 * at or above one address (canary_from). Stacks move between pools (the
 * depot, tasklets that migrate), so a slot says itself whether it is a
 * canary slot: a mark in its top 64 bytes (which no tasklet writes),
 * written when it is carved in canary mode, and the check reads that,
 * never the checking worker's pool. All pools share one geometry.
 *
 * Promises: sl_spawn must fail cleanly when memory runs out, but the
 * tasklet takes its stack later, when it first runs, where failing is not
 * an option. So spawn reserves (may map a region, may fail) and the first
 * run takes (never fails, maps nothing; it only installs a guard, and if
 * that fails it degrades to a canary rather than failing).
 *
 * Rejected: mmap per stack (map count); one giant up-front reservation
 * (fixes the pool's capacity, and a huge map may exceed RLIMIT_AS);
 * guards installed at reserve time (a promise would then cost a syscall
 * even for tasklets killed before running).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tasklet/stack.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if SL_VALGRIND
#include <valgrind/valgrind.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

#define REGION_MIN_SLOTS 1024
#define REGION_MIN_BYTES ((size_t)64 << 20)
#define USABLE_MAX ((size_t)1 << 40)
#define BUDGET_CHUNK 256  /* mprotect guards a pool draws at a time */
#define SYSCALL_RETRIES 8
#define CANARY_MAGIC UINT64_C(0x5354414b4c455353) /* "SSELKATS" */

/* MADV_GUARD_INSTALL works in this process: 0 unknown, 1 yes, 2 no. */
static atomic_int madv_state;
/* mprotect guards any pool may still make; -1 until computed. */
static atomic_long mprotect_left = -1;

/* Whether MADV_GUARD_INSTALL makes a page fault here. Success is not
 * enough: qemu-user (how CI runs the aarch64 build) accepts madvise
 * advice it does not know and does nothing. So the probe also asks the
 * kernel to fault the guarded page in: MADV_POPULATE_READ (Linux 5.14,
 * older than guards) fails with EFAULT on a guard, and qemu accepts and
 * ignores it too. A probe that reads the page through a system call's
 * argument would also do, natively, but valgrind reads such arguments
 * itself and dies on the guard. */
bool sl__madv_guard_works(void)
{
    int st = atomic_load_explicit(&madv_state, memory_order_relaxed);
    if (st == 0) {
        size_t pg = (size_t)sysconf(_SC_PAGESIZE);
        char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            return true; /* can't tell now; carving falls back if need be */
        st = madvise(m, pg, MADV_GUARD_INSTALL) == 0 &&
                     madvise(m, pg, MADV_POPULATE_READ) != 0 &&
                     errno == EFAULT
                 ? 1
                 : 2;
        munmap(m, 2 * pg);
        atomic_store_explicit(&madv_state, st, memory_order_relaxed);
    }
    return st == 1;
}

/* A quarter of vm.max_map_count: a guard costs up to two VMAs, and half
 * the map count stays for everything else in the process. */
static long mprotect_budget_total(void)
{
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f != NULL) {
        if (fscanf(f, "%ld", &max) != 1 || max < 0)
            max = 65530;
        fclose(f);
    }
    return max / 4;
}

/* Take up to want guards from the process-wide budget; returns how many. */
static size_t budget_draw(size_t want)
{
    long cur = atomic_load(&mprotect_left);
    if (cur < 0) {
        long expect = -1;
        atomic_compare_exchange_strong(&mprotect_left, &expect,
                                       mprotect_budget_total());
        cur = atomic_load(&mprotect_left);
    }
    while (cur > 0) {
        long n = cur < (long)want ? cur : (long)want;
        if (atomic_compare_exchange_weak(&mprotect_left, &cur, cur - n))
            return (size_t)n;
    }
    return 0;
}

static void budget_return(size_t n)
{
    if (n > 0)
        atomic_fetch_add(&mprotect_left, (long)n);
}

static int initial_mode(void)
{
    const char *env = getenv("SL_STACK_GUARD");
    if (env != NULL) {
        if (strcmp(env, "madv") == 0) /* falls back when it does nothing */
            return sl__madv_guard_works() ? SL_GUARD_MADV : SL_GUARD_MPROTECT;
        if (strcmp(env, "mprotect") == 0)
            return SL_GUARD_MPROTECT;
        if (strcmp(env, "canary") == 0)
            return SL_GUARD_CANARY;
    }
    return sl__madv_guard_works() ? SL_GUARD_MADV : SL_GUARD_MPROTECT;
}

int sl__stack_pool_init(sl_stack_pool *p, size_t usable_size)
{
    if (p == NULL || usable_size == 0 || usable_size > USABLE_MAX)
        return SL_EINVAL;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    memset(p, 0, sizeof *p);
    p->guard = pg;
    p->usable = (usable_size + pg - 1) & ~(pg - 1);
    p->size = p->usable + p->guard;
    p->guard_mode = initial_mode();
    p->depot_high = SIZE_MAX;
#if SL_VALGRIND
    p->valgrind = RUNNING_ON_VALGRIND != 0;
#endif
    return 0;
}

/* The region holding stack, or NULL. Regions are sorted by base. */
static struct sl__stack_region *find_region(const sl_stack_pool *p,
                                            const char *stack)
{
    size_t lo = 0, hi = p->nregions;
    while (lo < hi) { /* first region with base > stack */
        size_t mid = lo + (hi - lo) / 2;
        if (p->regions[mid].base <= stack)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    struct sl__stack_region *r = &p->regions[lo - 1];
    return stack < r->base + r->nslots * p->size ? r : NULL;
}

/* Map one more region so that one more promise can be made. On failure
 * the pool is unchanged. */
int sl__stack_grow(sl_stack_pool *p)
{
    size_t n = (REGION_MIN_BYTES + p->size - 1) / p->size;
    if (n < REGION_MIN_SLOTS)
        n = REGION_MIN_SLOTS;

    if (p->nregions == p->cap_regions) {
        size_t cap = p->cap_regions ? 2 * p->cap_regions : 16;
        void *r = realloc(p->regions, cap * sizeof *p->regions);
        if (r == NULL)
            return SL_ENOMEM;
        p->regions = r;
        p->cap_regions = cap;
    }
    char *base;
    for (;;) { /* halve on ENOMEM: RLIMIT_AS or a fragmented address space */
        base = mmap(NULL, n * p->size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base != MAP_FAILED)
            break;
        if (errno != ENOMEM || n == 1)
            return -errno;
        n /= 2;
    }
    if (p->valgrind) { /* room for an id per slot: carving can't fail */
        unsigned *ids = realloc(p->vg_ids, (p->nslots + n) * sizeof *ids);
        if (ids == NULL) {
            munmap(base, n * p->size);
            return SL_ENOMEM;
        }
        p->vg_ids = ids;
    }
    /* With THP "always", a slot without a guard marker in its 2 MiB
     * (canary mode) could fault in a huge page. Best effort. */
    (void)madvise(base, n * p->size, MADV_NOHUGEPAGE);

    size_t i = p->nregions;
    while (i > 0 && p->regions[i - 1].base > base) {
        p->regions[i] = p->regions[i - 1];
        i--;
    }
    p->regions[i] = (struct sl__stack_region){
        .base = base, .nslots = n, .canary_from = base + n * p->size,
        .fresh = true};
    p->nregions++;
    p->nslots += n;
    p->ncarve += n;
    return 0;
}

/* Move the bump cursor to a region nothing was carved from yet. Called
 * once per region, so the linear scan is cheap. */
static void enter_fresh_region(sl_stack_pool *p)
{
    for (size_t i = 0; i < p->nregions; i++) {
        struct sl__stack_region *r = &p->regions[i];
        if (r->fresh) {
            r->fresh = false;
            p->bump = r->base;
            p->bump_end = r->base + r->nslots * p->size;
            if (p->guard_mode == SL_GUARD_CANARY)
                r->canary_from = r->base;
            return;
        }
    }
    SL__ASSERT(!"ncarve > 0 but no fresh region");
}

/* Switch the pool to canary mode for good, starting with slot s. */
static void start_canary(sl_stack_pool *p, char *s)
{
    struct sl__stack_region *r = find_region(p, s);
    SL__ASSERT(r != NULL);
    p->guard_mode = SL_GUARD_CANARY;
    r->canary_from = s;
}

static int madvise_retry(void *addr, size_t len, int advice)
{
    int rc, tries = 0;
    while ((rc = madvise(addr, len, advice)) != 0 &&
           (errno == EINTR || errno == EAGAIN) && ++tries < SYSCALL_RETRIES)
        ;
    return rc;
}

uint8_t sl__stack_canary_any;

/* Where slot s says it is a canary slot: its fourth-highest word (the
 * highest two link free stacks and depot batches). */
static uint64_t *canary_mark(const sl_stack_pool *p, const char *s)
{
    return (uint64_t *)(s + p->size - 4 * sizeof(uint64_t));
}

/* Protect the lowest page of a newly carved slot s in the pool's mode,
 * degrading (never failing) when that mode doesn't work. */
static void guard_slot(sl_stack_pool *p, char *s)
{
    if (p->guard_mode == SL_GUARD_MADV) {
        if (madvise_retry(s, p->guard, MADV_GUARD_INSTALL) == 0)
            return;
        if (errno == EINVAL) /* kernel < 6.13, or an mlocked process */
            p->guard_mode = SL_GUARD_MPROTECT;
        /* Otherwise (ENOMEM: no page table) try mprotect for this one. */
    }
    if (p->guard_mode != SL_GUARD_CANARY) {
        if (p->mprotect_budget == 0)
            p->mprotect_budget = budget_draw(BUDGET_CHUNK);
        if (p->mprotect_budget > 0 && mprotect(s, p->guard, PROT_NONE) == 0) {
            p->mprotect_budget--;
            p->nmprotect++;
            return;
        }
        start_canary(p, s);
    }
    *(uint64_t *)(s + p->guard) = CANARY_MAGIC;
    *canary_mark(p, s) = CANARY_MAGIC;
    p->ncanary++;
    if (!__atomic_load_n(&sl__stack_canary_any, __ATOMIC_RELAXED))
        __atomic_store_n(&sl__stack_canary_any, 1, __ATOMIC_RELEASE);
}

/* Carve a new slot: the free list is empty and a promise is being kept,
 * so an uncarved slot exists. */
void *sl__stack_carve(sl_stack_pool *p)
{
    SL__ASSERT(p->ncarve > 0);
    if (p->bump == p->bump_end)
        enter_fresh_region(p);
    char *s = p->bump;
    p->bump += p->size;
    p->ncarve--;
    p->ncarved++;
    guard_slot(p, s);
#if SL_VALGRIND
    if (p->valgrind)
        p->vg_ids[p->nvg++] = VALGRIND_STACK_REGISTER(s + p->guard, s + p->size);
#endif
    return s;
}

#if SL_ASAN
__attribute__((no_sanitize_address))
#endif
static uint64_t read_canary(const char *at)
{
    return *(const volatile uint64_t *)at;
}

bool sl__stack_canary_check(const sl_stack_pool *p, const void *stack)
{
    const char *s = stack;
    if (*canary_mark(p, s) != CANARY_MAGIC)
        return true; /* a guarded slot, from whichever pool */
    return read_canary(s + p->guard) == CANARY_MAGIC;
}

bool sl__stack_guard_hit(const sl_stack_pool *p, const void *stack,
                         const void *addr)
{
    uintptr_t s = (uintptr_t)stack, a = (uintptr_t)addr;
    return a < s + p->guard && (a >= s || s - a <= p->guard);
}

void sl__stack_pool_destroy(sl_stack_pool *p)
{
#if SL_VALGRIND
    for (size_t i = 0; i < p->nvg; i++)
        VALGRIND_STACK_DEREGISTER(p->vg_ids[i]);
#endif
    free(p->vg_ids);
    /* Unmapping part of a VMA may need a split, which fails at the map
     * count limit; a second pass retries once the others are gone. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < p->nregions; i++) {
            struct sl__stack_region *r = &p->regions[i];
            if (r->base == NULL)
                continue;
            char *end = r->base + r->nslots * p->size;
#if SL_ASAN
            /* Taken stacks may hold poisoned frames; a later mapping at
             * this address must not inherit them. */
            if (!r->fresh) {
                char *carved = p->bump > r->base && p->bump <= end ? p->bump
                                                                   : end;
                for (char *s = r->base; s < carved; s += p->size)
                    sl__stack_asan_clean(s + p->guard, p->usable);
            }
#endif
            if (munmap(r->base, (size_t)(end - r->base)) == 0)
                r->base = NULL;
        }
    }
    budget_return(p->mprotect_budget + p->nmprotect);
    free(p->regions);
    memset(p, 0, sizeof *p);
}

/* ---- the depot (M:N) ----------------------------------------------------- */

#define DEPOT_BATCH 256

/* Batches of free stacks. A batch is a chain linked like a pool's free
 * list (each stack's highest word); batches are linked through the
 * second-highest word of their first stack. */
static struct {
    pthread_mutex_t lock;
    void *batches;
    size_t nbatches;
} depot = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static void **link_of(const sl_stack_pool *p, void *stack, int word)
{
    return (void **)((char *)stack + p->size - (size_t)word * sizeof(void *));
}

void sl__stack_depot_put(sl_stack_pool *p)
{
    /* Keep what is promised to tasklets that have not run yet (beyond the
     * uncarved slots), and half of the high mark for our own reuse. */
    size_t keep = p->promised > p->ncarve ? p->promised - p->ncarve : 0;
    if (keep < p->depot_high / 2)
        keep = p->depot_high / 2;
    if (p->nfree < keep + DEPOT_BATCH + 1)
        return;
    /* The batch starts below the head: the head may be the stack of the
     * tasklet that is ending right now, which runs on it until it has
     * switched away, and no other worker may have it before that. */
    void *head = p->free;
    void *first = *link_of(p, head, 1), *last = first;
    for (size_t i = 1; i < DEPOT_BATCH; i++)
        last = *link_of(p, last, 1);
    *link_of(p, head, 1) = *link_of(p, last, 1);
    *link_of(p, last, 1) = NULL;
    p->nfree -= DEPOT_BATCH;
    pthread_mutex_lock(&depot.lock);
    *link_of(p, first, 2) = depot.batches;
    depot.batches = first;
    __atomic_store_n(&depot.nbatches, depot.nbatches + 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&depot.lock);
}

bool sl__stack_depot_get(sl_stack_pool *p)
{
    if (!__atomic_load_n(&depot.nbatches, __ATOMIC_RELAXED))
        return false;
    pthread_mutex_lock(&depot.lock);
    void *b = depot.batches;
    if (b) {
        depot.batches = *link_of(p, b, 2);
        __atomic_store_n(&depot.nbatches, depot.nbatches - 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&depot.lock);
    if (!b)
        return false;
    SL__ASSERT(p->free == NULL);
    p->free = b;
    p->nfree += DEPOT_BATCH;
    return true;
}

void sl__stack_depot_forget(void)
{
    sl__stack_canary_any = 0; /* the child's pools start afresh */
    pthread_mutex_init(&depot.lock, NULL); /* a fork may have left it held */
    depot.batches = NULL;
    depot.nbatches = 0;
}

void sl__stack_depot_reset(void)
{
    __atomic_store_n(&sl__stack_canary_any, 0, __ATOMIC_RELAXED);
    pthread_mutex_lock(&depot.lock);
    depot.batches = NULL;
    __atomic_store_n(&depot.nbatches, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&depot.lock);
}
