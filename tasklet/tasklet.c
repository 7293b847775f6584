/* tasklet.c - tasklet objects: the control-block slab, spawn, first run,
 * exit, references, state predicates, names and sl_dump. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sched/observe.h"
#include "sched/wait.h"

#if SL_ASAN
#include <sanitizer/asan_interface.h>
#endif

#include "tasklet/sysdefs.h"

#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif

/* ---- slab -------------------------------------------------------------- */

#define SLAB_FIRST_CHUNK (64u << 10)
#define SLAB_MAX_CHUNK (8u << 20)
#define SLAB_AHEAD_CHUNK SLAB_MAX_CHUNK /* from this size on, map one ahead */
/* A slab whose blocks are all free is reset (address order again) only
 * after this many frees since the last reset: a loop that spawns and ends one
 * tasklet at a time would otherwise reset, and thread a new batch, at
 * every end (bench_spawn: 27 ns -> 110 ns). */
#define SLAB_RESET_FREES 4096

struct slab_chunk {
    struct slab_chunk *next;  /* older */
    struct slab_chunk *newer;
    size_t bytes;
};

void sl__slab_init(sl_slab *s, sl_worker *owner)
{
    s->owner = owner;
    s->free = NULL;
    s->nfree = 0;
    s->depot_high = SIZE_MAX;
    s->chunks = NULL;
    s->next_chunk = SLAB_FIRST_CHUNK;
    s->nblocks = 0;
    s->oldest = NULL;
    s->carve = NULL;
    s->carve_i = 0;
    s->frees = 0;
    s->ahead = NULL;
}

void sl__slab_destroy(sl_slab *s)
{
    if (s->ahead) {
        (void)sl__provision_claim(&s->ahead_job);
        munmap(s->ahead, s->next_chunk);
    }
    struct slab_chunk *c = s->chunks;
    while (c) {
        struct slab_chunk *n = c->next;
#if SL_ASAN
        /* Manual poison outlives munmap: the next mapping there would be
         * born poisoned. */
        ASAN_UNPOISON_MEMORY_REGION(c, c->bytes);
#endif
        munmap(c, c->bytes);
        c = n;
    }
    sl__slab_init(s, s->owner);
}

#if SL_ASAN
/* A free block is poisoned but for its free-list link and wseq: timers and
 * descriptor slots may still look at the wait generation of a tasklet that
 * has ended (sched/event.c), which is how they know they are stale. */
static void poison_free_block(sl_tasklet *t)
{
    char *b = (char *)t, *g = (char *)&t->wseq;
    /* next and prev stay addressable: the free list and the depot's batch
     * ends (slab_depot_put). */
    ASAN_POISON_MEMORY_REGION(b + 2 * sizeof(void *),
                              (size_t)(g - b) - 2 * sizeof(void *));
    ASAN_POISON_MEMORY_REGION(g + sizeof t->wseq,
                              sizeof *t - (size_t)(g - b) - sizeof t->wseq);
}
#endif

static sl_tasklet *chunk_blocks(struct slab_chunk *c, size_t *n)
{
    size_t first = SL_CACHE_LINE; /* header; keeps blocks on line boundaries */
    *n = (c->bytes - first) / sizeof(sl_tasklet);
    return (sl_tasklet *)((char *)c + first);
}

/* sl_dump (through sl__slab_each) reads blocks other workers may free
 * meanwhile (a snapshot: every field an atomic load, the memory stays
 * mapped); ASan's poisoning of a freed block must not stop it (the
 * check below and the reads after it race with the free). */
#if SL_ASAN
#define DUMP_READS __attribute__((no_sanitize("address")))
#else
#define DUMP_READS
#endif

DUMP_READS void sl__slab_each(sl_slab *s, void (*fn)(sl_tasklet *, void *),
                               void *arg)
{
    for (struct slab_chunk *c = __atomic_load_n(&s->chunks, __ATOMIC_ACQUIRE);
         c; c = c->next) {
        size_t n;
        sl_tasklet *b = chunk_blocks(c, &n);
        for (size_t i = 0; i < n; i++) {
#if SL_ASAN
            if (__asan_address_is_poisoned(&b[i].state))
                continue; /* free */
#endif
            if (SL_LOAD(&b[i].state) != SL_T_FREE)
                fn(&b[i], arg);
        }
    }
}

/* M:N: free blocks move between workers' slabs through this depot, a
 * batch at a time (see the stack depot in stack.c for why). The depot is
 * one list made of whole batches; the first block of each has prev
 * pointing at its last, so a batch is taken without walking 256 cold
 * blocks under the lock (that walk was 12% of skynet --stack copy on two
 * workers). */
#define SLAB_BATCH 256
static struct {
    pthread_mutex_t lock;
    sl_tasklet *free;
    size_t n;
} slab_depot = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static void slab_depot_put(sl_slab *s)
{
    /* Below the head, which may be the block of the tasklet ending now
     * (as with stacks: nobody else may have it before it switched away). */
    sl_tasklet *head = s->free;
    sl_tasklet *first = head->next, *last = first;
    for (int i = 1; i < SLAB_BATCH; i++)
        last = last->next;
    head->next = last->next;
    s->nfree -= SLAB_BATCH;
    first->prev = last;
    pthread_mutex_lock(&slab_depot.lock);
    last->next = slab_depot.free;
    slab_depot.free = first;
    __atomic_store_n(&slab_depot.n, slab_depot.n + SLAB_BATCH, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&slab_depot.lock);
}

static sl_tasklet *slab_depot_get(sl_slab *s)
{
    if (__atomic_load_n(&slab_depot.n, __ATOMIC_RELAXED) < SLAB_BATCH)
        return NULL;
    pthread_mutex_lock(&slab_depot.lock);
    sl_tasklet *first = NULL;
    if (slab_depot.n >= SLAB_BATCH) {
        first = slab_depot.free;
        sl_tasklet *last = first->prev;
        first->prev = NULL;
        slab_depot.free = last->next;
        __atomic_store_n(&slab_depot.n, slab_depot.n - SLAB_BATCH, __ATOMIC_RELAXED);
        last->next = NULL;
    }
    pthread_mutex_unlock(&slab_depot.lock);
    if (first)
        s->nfree += SLAB_BATCH;
    return first;
}

void sl__slab_depot_forget(void)
{
    pthread_mutex_init(&slab_depot.lock, NULL); /* a fork may have left it held */
    slab_depot.free = NULL;
    slab_depot.n = 0;
}

void sl__slab_depot_reset(void)
{
    pthread_mutex_lock(&slab_depot.lock);
    slab_depot.free = NULL;
    __atomic_store_n(&slab_depot.n, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&slab_depot.lock);
}

static void *map_chunk(size_t bytes);

void *sl__map_populated(size_t bytes)
{
    void *p = map_chunk(bytes);
    if (p)
        (void)madvise(p, bytes, MADV_POPULATE_WRITE); /* best effort */
    return p;
}

/* bytes of fresh memory, on huge pages where the kernel allows when bytes
 * is a multiple of the huge page size (not made present); NULL when
 * refused. */
static void *map_chunk(size_t bytes)
{
    size_t huge = sl_arch_huge_size((size_t)sysconf(_SC_PAGESIZE));
    if (bytes < huge || bytes % huge) {
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
    }
    /* Huge-page aligned: the kernel may back it with 2 MiB pages, one TLB
     * entry each (THP "madvise" mode needs the advice). Data touched at
     * random, like the blocks and saved stacks of a million tasklets,
     * misses the TLB far less. */
    char *m = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    char *p = (char *)(((uintptr_t)m + huge - 1) & ~(uintptr_t)(huge - 1));
    if (p > m)
        munmap(m, (size_t)(p - m));
    if (p + bytes < m + bytes + huge)
        munmap(p + bytes, (size_t)(m + bytes + huge - (p + bytes)));
    (void)madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

/* Blocks whose last reference a thread running no worker dropped: a
 * worker's slab takes them back when it runs dry. */
static struct {
    pthread_mutex_t lock;
    sl_tasklet *head;
    size_t n;
} orphans = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static void orphan_put(sl_tasklet *t)
{
    SL__ASSERT(SL_LOAD(&t->state) == SL_T_DEAD && !t->is_main);
    pthread_mutex_lock(&orphans.lock);
    SL_STORE(&t->state, (uint8_t)SL_T_FREE);
    t->next = orphans.head;
    orphans.head = t;
    __atomic_store_n(&orphans.n, orphans.n + 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&orphans.lock);
}

/* The orphans, as a free list for s (NULL if none). */
static sl_tasklet *orphans_take(sl_slab *s)
{
    if (sl_likely(!__atomic_load_n(&orphans.n, __ATOMIC_RELAXED)))
        return NULL;
    pthread_mutex_lock(&orphans.lock);
    sl_tasklet *list = orphans.head;
    s->nfree += orphans.n;
    orphans.head = NULL;
    __atomic_store_n(&orphans.n, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&orphans.lock);
#if SL_ASAN
    for (sl_tasklet *t = list; t; t = t->next)
        poison_free_block(t);
#endif
    return list;
}

/* sl_shutdown: the slabs the orphans belong to are unmapped. */
void sl__orphans_reset(void)
{
    pthread_mutex_lock(&orphans.lock);
    orphans.head = NULL;
    __atomic_store_n(&orphans.n, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&orphans.lock);
}

void sl__orphans_forget(void)
{
    pthread_mutex_init(&orphans.lock, NULL); /* a fork may have left it held */
    orphans.head = NULL;
    orphans.n = 0;
}

/* Map a new chunk, made present in one call, and thread its blocks onto the
 * free list in address order. NULL when the kernel refuses the mapping. */
sl_tasklet *sl__slab_refill(sl_slab *s)
{
    /* After a reset: thread the next batch of blocks, in address order
     * (they are free and counted in nfree already). */
    while (s->carve) {
        struct slab_chunk *c = s->carve;
        size_t n;
        sl_tasklet *b = chunk_blocks(c, &n);
        size_t i = s->carve_i, end = i + 256 < n ? i + 256 : n;
        if (i < end) {
            for (size_t k = i; k < end; k++)
                b[k].next = k + 1 < end ? &b[k + 1] : NULL;
            s->carve_i = end;
            return &b[i];
        }
        s->carve = c->newer;
        s->carve_i = 0;
    }
    sl_tasklet *o = orphans_take(s);
    if (o)
        return o;
    if (s->depot_high != SIZE_MAX) {
        sl_tasklet *b = slab_depot_get(s);
        if (b)
            return b;
    }
    size_t bytes = s->next_chunk;
    void *p;
    if (s->ahead) { /* mapped ahead (next_chunk has not changed since) */
        p = s->ahead;
        s->ahead = NULL;
        if (!sl__provision_claim(&s->ahead_job))
            (void)madvise(p, bytes, MADV_POPULATE_WRITE); /* best effort */
    } else if (!(p = sl__map_populated(bytes))) {
        return NULL;
    }
#if SL_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, bytes); /* see sl__slab_destroy */
#endif
    if (s->next_chunk < SLAB_MAX_CHUNK)
        s->next_chunk *= 2;
    struct slab_chunk *c = p;
    c->next = s->chunks;
    c->newer = NULL;
    c->bytes = bytes;
    if (s->chunks)
        ((struct slab_chunk *)s->chunks)->newer = c;
    else
        s->oldest = c;

    size_t n;
    sl_tasklet *blocks = chunk_blocks(c, &n);
    s->nfree += n;
    s->nblocks += n;
    for (size_t i = 0; i < n; i++) {
        blocks[i].next = i + 1 < n ? &blocks[i + 1] : NULL;
        blocks[i].state = SL_T_FREE;
        blocks[i].worker = s->owner;
        blocks[i].is_main = 0;
        blocks[i].is_idle = 0;
        /* The embedded waiter is the block's for good; a tasklet leaves
         * it unlinked and wv NULL when its wait ends (sched/wait.h). */
        blocks[i].wait.t = &blocks[i];
        blocks[i].wait.q = NULL;
        blocks[i].wv = NULL;
        blocks[i].wn = 0;
        blocks[i].wheap = 0;
    }
#if SL_ASAN
    for (size_t i = 0; i < n; i++)
        poison_free_block(&blocks[i]);
#endif
    /* Published last, with its blocks marked free: sl_dump walks the
     * chunks of other workers' slabs while they run. */
    __atomic_store_n(&s->chunks, (void *)c, __ATOMIC_RELEASE);
    /* A spawn storm (chunks have grown to 2 MiB and more): the next chunk
     * is mapped now, and the stack provisioner's helper makes it present
     * while this one is used, so the worker does not zero it later. */
    if (s->next_chunk >= SLAB_AHEAD_CHUNK && s->owner &&
        s->owner->stacks.provision == SL_PROVISION_HELPER &&
        (s->ahead = map_chunk(s->next_chunk)) != NULL)
        (void)sl__provision_populate(&s->ahead_job, s->ahead, s->next_chunk);
    return blocks;
}

/* Every block of s is free: reset it to address order (see below). */
static __attribute__((noinline, cold)) void slab_all_free(sl_slab *s)
{
    /* One worker only (no depot, so all of them are in this list), and
     * not at every end of a loop that spawns and ends one tasklet at a
     * time: forget the list and hand blocks out in address order again.
     * LIFO reuse returns them in the reverse of the order they came back,
     * which after a few generations is no order at all: tasklets spawned
     * one after another get blocks scattered over the slab, a cache line
     * and often a TLB entry each (skynet --repeat: each tree slower than
     * the last). */
    if (s->depot_high != SIZE_MAX)
        return;
    s->free = NULL;
    s->carve = s->oldest;
    s->carve_i = 0;
    s->frees = 0;
}

void sl__slab_free(sl_slab *s, sl_tasklet *t)
{
    SL_STORE(&t->state, (uint8_t)SL_T_FREE);
    t->next = s->free;
    s->free = t;
#if SL_ASAN
    poison_free_block(t);
#endif
    s->frees++;
    if (sl_unlikely(++s->nfree > s->depot_high)) /* never when SIZE_MAX */
        slab_depot_put(s);
    else if (sl_unlikely(s->nfree == s->nblocks) &&
             s->frees >= SLAB_RESET_FREES)
        slab_all_free(s);
}

/* The runtime drops its own reference (the tasklet ended or is
 * discarded): the references left. When it is the only one, nobody else
 * can be touching the count (a reference is taken only through a valid
 * handle, by someone who holds one or by the spawner before it switches),
 * so no locked instruction (~20 cycles) on the usual exit; otherwise an
 * atomic decrement, since the holders may drop theirs from any thread. */
static inline int unref_runtime(sl_tasklet *t)
{
    if (sl_likely(SL_LOAD(&t->refs) == 1))
        return 0;
    return __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL);
}

static inline void release_block(sl_worker *w, sl_tasklet *t)
{
    SL__ASSERT(SL_LOAD(&t->state) == SL_T_DEAD && !t->is_main);
    sl__slab_free(&w->slab, t);
}

/* ---- spawn, first run, exit -------------------------------------------- */

void sl_spawn_attr_init(sl_spawn_attr *a)
{
    if (!a)
        return;
    memset(a, 0, sizeof *a);
    a->worker = -1;
}

/* Promises of stacks a worker made that another worker took over (mt). */
static void fold_refunds(sl_worker *w)
{
    size_t n = __atomic_exchange_n(&w->promise_refund, 0, __ATOMIC_RELAXED);
    SL__ASSERT(w->stacks.promised >= n);
    w->stacks.promised -= n;
}

/* t, never run and promised a stack by its spawner (t->worker), is taken
 * over by w: w promises one itself and the spawner gets its promise back. */
int sl__promise_move(sl_worker *w, sl_tasklet *t)
{
    sl_worker *x = SL_LOAD(&t->worker);
    if (t->ctx || x == w || t->copy) /* copy mode: no stack of its own */
        return 0;
    int rc = sl__stack_reserve(&w->stacks);
    if (rc < 0)
        return rc;
    __atomic_fetch_add(&x->promise_refund, 1, __ATOMIC_RELAXED);
    SL_STORE(&t->worker, w);
    return 0;
}

/* Room for one more reference to drop after w's next switch. */
int sl__reserve_unref(sl_worker *w)
{
    if (w->npost_unrefs < w->cap_post_unrefs)
        return 0;
    uint32_t cap = w->cap_post_unrefs ? 2 * w->cap_post_unrefs : 16;
    sl_tasklet **v = realloc(w->post_unrefs, cap * sizeof *v);
    if (!v)
        return SL_ENOMEM;
    w->post_unrefs = v;
    w->cap_post_unrefs = cap;
    return 0;
}

/* Hold a reference to t until w's current tasklet next switches (room
 * reserved). */
void sl__defer_unref(sl_worker *w, sl_tasklet *t)
{
    __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
    w->post_unrefs[w->npost_unrefs++] = t;
    w->post = 1;
}

static inline __attribute__((always_inline)) sl_tasklet *
spawn(sl_worker *w, sl_fn fn, void *arg, int pin, bool copy, bool paused)
{
    if (sl_unlikely(SL_LOAD(&w->promise_refund)))
        fold_refunds(w);
    bool remote = pin >= 0 && pin != w->index;
    if (remote && sl__reserve_unref(w) < 0)
        return NULL;
    if (!copy && sl_unlikely(sl__stack_reserve(&w->stacks) < 0))
        return NULL;
    sl_tasklet *t = sl__slab_alloc(&w->slab);
    if (sl_unlikely(!t)) {
        if (!copy)
            sl__stack_unreserve(&w->stacks);
        return NULL;
    }
#if SL_ASAN
    ASAN_UNPOISON_MEMORY_REGION(t, sizeof *t);
#endif
    /* is_main, is_idle and the embedded waiter were stamped when the
     * chunk was made; result and the waiter's fields are written by
     * whatever parks the tasklet. */
    SL_STORE(&t->ctx, (sl_fcontext)NULL);
    SL_STORE(&t->pend, (uint8_t)0);
    SL_STORE(&t->perr, 0);
    /* wkind is SL_W_CHAN at rest (sched/waiter.h); wseq goes on from the
     * block's last tasklet: a stale timer cannot match a new wait. */
    t->pin = (int8_t)pin;
    t->copy = copy;
    t->stack = NULL;
    t->save_cap = 0;
    t->fn = fn;
    t->arg = arg;
    SL_STORE(&t->id, sl_likely(!sl__rt.mt)
                         ? ++w->next_id
                         : __atomic_add_fetch(&sl__rt.next_id, 1,
                                              __ATOMIC_RELAXED));
    t->refs = 1;
    SL_STORE(&t->name[0], '\0'); /* (sl_dump may read it from elsewhere) */
#if SL_ASAN
    t->asan_fake = NULL;
    t->asan_bottom = NULL;
    t->asan_size = 0;
#endif
#if SL_TSAN
    t->tsan_fiber = NULL;
#endif
    SL_STORE(&w->livecount, w->livecount + 1);
    if (sl_unlikely(paused)) {
        SL_STORE(&t->worker, w);
        /* Bound, not scheduled (Stackless's tasklet(f) before insert): in
         * no queue until someone inserts, runs, switches to or throws at
         * it. Pinned to another worker, it takes its stack from our pool
         * now (as below), since it will start there. */
        if (remote && !copy)
            sl__tasklet_prepare(w, t);
        SL_STORE_REL(&t->state, (uint8_t)SL_T_PAUSED);
        return t;
    }
    if (!remote) {
        sl__rq_append(w, t); /* sets t->worker too */
        sl__maybe_wake_idle(w);
    } else {
        SL_STORE(&t->worker, w);
        /* Pinned to another worker: it leaves with a stack from our pool
         * (copy mode: it starts on that worker's shared stack). It may run
         * and end there at once, but the handle we return stays valid
         * until the caller next switches (docs/tasklet.md): a reference
         * held until then, dropped by the post-switch work. */
        if (!copy)
            sl__tasklet_prepare(w, t);
        sl__defer_unref(w, t);
        sl__wake_remote(w, t);
    }
    return t;
}

sl_tasklet *sl_spawn(sl_fn fn, void *arg)
{
    sl_worker *w = sl__self();
    if (sl_unlikely(!w || !fn))
        return NULL;
    SL__COPY_CHECK(w, arg, "sl_spawn"); /* debug builds: &local */
    sl_tasklet *t = spawn(w, fn, arg, -1, sl__rt.stack_mode == SL_STACK_COPY,
                          false);
    if (sl__obs_tracing() && t)
        sl__obs_spawn(w, t);
    return t;
}

sl_tasklet *sl_spawn_ex(const sl_spawn_attr *attr, sl_fn fn, void *arg)
{
    sl_worker *w = sl__self();
    if (!w || !fn)
        return NULL;
    int pin = attr ? attr->worker : -1;
    if (pin < -1 || pin >= sl__rt.nworkers)
        return NULL;
    int mode = attr ? attr->stack_mode : SL_STACK_DEFAULT;
    if (mode == SL_STACK_DEFAULT)
        mode = sl__rt.stack_mode;
    if (mode != SL_STACK_FIXED && mode != SL_STACK_COPY)
        return NULL;
    bool copy = mode == SL_STACK_COPY;
    SL__COPY_CHECK(w, arg, "sl_spawn_ex"); /* debug builds: &local */
    if (copy && sl__copy_enable() < 0)
        return NULL;
    sl_tasklet *t = spawn(w, fn, arg, pin, copy, attr && attr->paused);
    if (sl__obs_tracing() && t)
        sl__obs_spawn(w, t);
    if (t && attr && attr->name)
        sl_tasklet_set_name(t, attr->name);
    return t;
}

void sl__trampoline(sl_transfer tr);
void sl__trampoline_copy(sl_transfer tr);
/* The end of a tasklet, inlined into sl__trampoline (fixed stacks). A
 * copy-mode tasklet starts in sl__trampoline_copy instead, which reaches
 * it through tasklet_exit, not inlined: its frame (frame pointer,
 * callee-saved registers) would sit under every frame of a copy-mode
 * tasklet and be copied at each of its switches; that trampoline's frame
 * is 8 bytes. tasklet_exit is not declared noreturn, though it never
 * returns, so that the trampoline's last act is a jmp to it (a sibling
 * call), not a call: a call pushes a return-stack-buffer entry that is
 * never popped, and the ret that follows the next switch (in main's
 * sl_run, say) is then mispredicted (bench_spawn --stack copy: 28 ns
 * -> 39 ns). Under ASan a noreturn call would also unpoison the whole
 * stack (and ask sigaltstack where it is) on every tasklet end. */
static inline __attribute__((always_inline)) void tasklet_end(sl_worker *w);
#if defined(__clang__)
static void tasklet_exit(sl_worker *w) __attribute__((noinline));
#else /* noipa: GCC would otherwise find out it never returns, and call it */
static void tasklet_exit(sl_worker *w) __attribute__((noipa));
#endif

/* First run of t: give it a stack (promised at spawn, so this cannot fail)
 * and a context that starts in trampoline(). */
void sl__tasklet_prepare(sl_worker *w, sl_tasklet *t)
{
    SL__ASSERT(!t->copy); /* copy mode: sl__jump_slow starts it */
#if SL_TSAN
    t->tsan_fiber = __tsan_create_fiber(0);
#endif
    t->stack = sl__stack_take(&w->stacks);
    /* The top 64 bytes stay free (the pool links free stacks there), and
     * the frames start at the slot's cache colour below them. */
    size_t below = sl__stack_below_top(t->stack);
    char *top = (char *)sl__stack_top(&w->stacks, t->stack) - below;
    SL_STORE(&t->ctx, make_fcontext(top, w->stacks.usable - below,
                                    sl__trampoline));
    if (sl_unlikely(SL_LOAD(&sl__stack_canary_any)) &&
        !(SL_LOAD(&w->jump_slow) & SL_JS_STACK)) /* switches check
                                                       canaries now */
        for (int i = 0; i < sl__rt.nworkers; i++)
            sl__jump_slow_set(sl__rt.workers[i], SL_JS_STACK);
#if SL_ASAN
    t->asan_bottom = t->stack + (w->stacks.size - w->stacks.usable);
    t->asan_size = w->stacks.usable;
#endif
}

void sl__trampoline(sl_transfer tr)
{
    sl_worker *w = sl__resume_fresh(tr);
    sl_tasklet *self = w->current;
    /* A throw or kill before the first run: the function never runs. */
    if (sl_likely(!SL_LOAD(&self->pend)) || !SL_LOAD(&self->perr))
        self->fn(self->arg);
    /* fn may have moved us to another worker: ask the thread afresh. */
    tasklet_end(sl__self());
    __builtin_unreachable();
}

void sl__trampoline_copy(sl_transfer tr)
{
    sl_worker *w = sl__resume_fresh(tr);
    sl_tasklet *self = w->current;
    if (sl_likely(!SL_LOAD(&self->pend)) || !SL_LOAD(&self->perr))
        self->fn(self->arg);
    tasklet_exit(sl__self()); /* never returns (see above) */
}

static void tasklet_exit(sl_worker *w)
{
    tasklet_end(w);
}

/* The current tasklet ended: unlink it, recycle its stack (we still run on
 * it, but nothing can take it before we have jumped away) and its block,
 * and jump to the next runnable tasklet. */
static inline __attribute__((always_inline)) void tasklet_end(sl_worker *w)
{
    sl_tasklet *self = w->current;
    sl_tasklet *next;
    sl__events_due(w);
    bool stop = sl__check_inbox(w);
    if (sl_unlikely(self->next == self || stop)) {
        if (sl__rt.mt || SL_LOAD(&sl__rt.nwaits) > 0) {
            if (stop || !sl__run_for_main(w)) {
                /* Nothing else here, or stopping: go idle (one worker:
                 * it waits for timers, descriptors or offloaded calls). */
                next = w->idle;
                if (self->next == self) {
                    self->next = self->prev = NULL;
                    sl__runcount_add(w, -1);
                } else {
                    sl__rq_unlink(w, self);
                }
                goto unlinked;
            }
            /* (main is in sl_run_for: it runs next, and returns) */
        } else {
            /* One worker, nothing else runnable: back to main. */
            (void)sl__idle_end(w);
        }
    }
    next = self->next;
    sl__rq_unlink(w, self);
unlinked:
    SL_STORE(&w->current, next);
    __builtin_prefetch(next->next); /* likely the one after it: cold */

    /* A next tasklet that never ran takes its stack now, before ours goes
     * back to the pool: it would otherwise get the one we still run on.
     * Copy mode: we run on the shared stack, so the switcher readies it
     * for a copy-mode next (there is nothing of ours to save). */
    sl_tasklet *via = next;
    char *lowest = (char *)__builtin_frame_address(0) - 4096;
    if (sl_unlikely(self->copy)) {
        sl__copy_exit(w, self, lowest);
        uint8_t slow = SL_LOAD(&w->jump_slow);
        if (sl_unlikely(slow & (SL_JS_BUDGET | SL_JS_OBSERVE))) {
            if (slow & SL_JS_BUDGET)
                via = next = sl__budget_end(w, self, next); /* sl_run_for */
            if (slow & SL_JS_OBSERVE)
                sl__obs_switch(w, self, next, true);
        }
        if (next->copy)
            via = &w->copy.sw;
        else if (!next->ctx)
            sl__tasklet_prepare(w, next);
    } else {
        uint8_t slow = SL_LOAD(&w->jump_slow);
        if (sl_unlikely(slow)) {
            if (slow & SL_JS_BUDGET) /* sl_run_for's watchdog */
                next = sl__budget_end(w, self, next);
            if (slow & SL_JS_OBSERVE)
                sl__obs_switch(w, self, next, true);
            via = sl__jump_via(w, self, next);
        } else if (sl_unlikely(!next->ctx))
            sl__tasklet_prepare(w, next);
        if (sl_unlikely(SL_LOAD(&sl__stack_canary_any)) &&
            !sl__stack_canary_check(&w->stacks, self->stack))
            sl__overflow_abort(self);
        sl__stack_give_used(&w->stacks, self->stack, lowest);
    }
    SL_STORE(&w->livecount, w->livecount - 1);
    self->stack = NULL;
#if SL_TSAN
    w->post_fiber = self->tsan_fiber; /* destroyed once we are off it */
    w->post = 1;
#endif
    SL_STORE_REL(&self->state, (uint8_t)SL_T_DEAD);
    if (unref_runtime(self) == 0)
        release_block(w, self);

    if (via == &w->copy.sw)
        sl__switcher_jump_dead(w);
    w->prev = &w->graveyard;
#if SL_ASAN
    __sanitizer_start_switch_fiber(NULL, via->asan_bottom, via->asan_size);
#endif
#if SL_TSAN
    __tsan_switch_to_fiber(via->tsan_fiber, 0);
#endif
    sl__jump_fcontext(via->ctx, w);
    __builtin_unreachable();
}

/* Kill a tasklet that never ran: it dies without running its body. */
void sl__tasklet_discard_new(sl_worker *w, sl_tasklet *t)
{
    /* RUNNABLE in our queue, PAUSED (one worker), or SWITCHING: claimed
     * from PAUSED by the caller (mt). Read atomically: another thrower's
     * claim may be trying its compare-and-swap on the byte meanwhile (it
     * fails, but it is an access: test_mn's two_throws_...). */
    uint8_t st = SL_LOAD(&t->state);
    SL__ASSERT(!t->ctx && st != SL_T_BLOCKED && !t->is_main);
    if (st == SL_T_RUNNABLE)
        sl__rq_unlink(w, t);
    sl_worker *x = SL_LOAD(&t->worker); /* whose pool promised its stack */
    if (t->copy)
        ; /* copy mode: nothing was promised */
    else if (x == w)
        sl__stack_unreserve(&w->stacks);
    else
        __atomic_fetch_add(&x->promise_refund, 1, __ATOMIC_RELAXED);
    SL_STORE(&w->livecount, w->livecount - 1);
    SL_STORE_REL(&t->state, (uint8_t)SL_T_DEAD);
    if (unref_runtime(t) == 0)
        release_block(w, t);
}

/* ---- references, predicates, names -------------------------------------- */

void sl_tasklet_ref(sl_tasklet *t)
{
    if (!t || SL_LOAD(&t->is_main) || SL_LOAD(&t->is_idle))
        return;
    __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
}

void sl_tasklet_unref(sl_tasklet *t)
{
    if (!t || SL_LOAD(&t->is_main) || SL_LOAD(&t->is_idle))
        return;
    int left = __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL);
    if (left < 0) {
        fprintf(stderr, "stackless: sl_tasklet_unref without a reference "
                        "(tasklet #%llu); aborting\n",
                (unsigned long long)t->id);
        abort();
    }
    if (left == 0) {
        /* The block goes to the calling thread's slab (any slab will do:
         * they are free lists over memory the runtime owns); from a
         * thread that runs no worker, to the orphans, which a worker
         * takes back when its slab runs dry (a slab is its owner's
         * alone). */
        sl_worker *w = sl__self();
        if (w)
            release_block(w, t);
        else
            orphan_put(t);
    }
}

bool sl_tasklet_alive(const sl_tasklet *t)
{
    return t && SL_LOAD(&t->state) != SL_T_DEAD;
}

bool sl_tasklet_blocked(const sl_tasklet *t)
{
    uint8_t st = t ? SL_LOAD(&t->state) : (uint8_t)SL_T_DEAD;
    return st == SL_T_BLOCKED;
}

bool sl_tasklet_scheduled(const sl_tasklet *t)
{
    uint8_t st = t ? SL_LOAD(&t->state) : (uint8_t)SL_T_DEAD;
    return st == SL_T_RUNNABLE || st == SL_T_BLOCKED || st == SL_T_INBOX;
}

bool sl_tasklet_paused(const sl_tasklet *t)
{
    uint8_t st = t ? SL_LOAD(&t->state) : (uint8_t)SL_T_DEAD;
    return st == SL_T_PAUSED || st == SL_T_SWITCHING;
}

int sl_tasklet_set_name(sl_tasklet *t, const char *name)
{
    if (!t)
        return SL_EINVAL;
    if (!name)
        name = "";
    size_t n = strnlen(name, sizeof t->name - 1);
    for (size_t i = 0; i < n; i++) /* byte by byte: sl_dump may read it */
        SL_STORE(&t->name[i], name[i]);
    SL_STORE(&t->name[n], '\0');
    if (sl__obs_tracing())
        sl__obs_name(t);
    return 0;
}

const char *sl_tasklet_name(const sl_tasklet *t)
{
    return t ? t->name : NULL;
}

uint64_t sl_tasklet_id(const sl_tasklet *t)
{
    return t ? t->id : 0;
}

DUMP_READS static const char *state_name(const sl_tasklet *t)
{
    for (int i = 0; i < sl__rt.nworkers; i++)
        if (t == SL_LOAD(&sl__rt.workers[i]->current))
            return "running";
    switch (SL_LOAD(&t->state)) {
    case SL_T_RUNNABLE:
    case SL_T_INBOX:
        return SL_LOAD(&t->ctx) ? "runnable" : "new";
    case SL_T_BLOCKED:
        switch (SL_LOAD(&t->wkind)) {
        case SL_W_CHAN:
            return SL_LOAD(&t->wait.dir) > 0 ? "blocked-send"
                                             : "blocked-receive";
        case SL_W_SELECT:
            return "selecting";
        case SL_W_SYNC:
            return "waiting";
        case SL_W_SLEEP:
            return "sleeping";
        case SL_W_FD:
            return "waiting-fd";
        case SL_W_OFFLOAD:
            return "offloaded";
        default:
            return "blocked";
        }
    case SL_T_PAUSED:
    case SL_T_SWITCHING:
        return "paused";
    default:
        return "dead";
    }
}

/* One line for t into buf (cap bytes), NUL-ended; its length. With
 * several workers the fields are read while their owners write them: each
 * with an atomic load, names byte by byte (a name being set may come out
 * half old, half new). snprintf only: the SIGQUIT dump (sl__dump_fd) runs
 * in a signal handler, where stdio's locks may be held. */
DUMP_READS static size_t dump_line(char *buf, size_t cap, const sl_tasklet *t)
{
    char name[sizeof t->name];
    for (size_t i = 0; i < sizeof name; i++)
        name[i] = SL_LOAD(&t->name[i]);
    name[sizeof name - 1] = '\0';
    size_t n = 0;
#define DUMP_ADD(...)                                                        \
    do {                                                                     \
        int k_ = snprintf(buf + n, cap - n, __VA_ARGS__);                    \
        if (k_ > 0)                                                          \
            n = n + (size_t)k_ < cap ? n + (size_t)k_ : cap - 1;             \
    } while (0)
    DUMP_ADD("  #%llu %-20s %-16s", (unsigned long long)SL_LOAD(&t->id),
             name[0] ? name : (t->is_main ? "main" : "-"), state_name(t));
    if (sl__rt.mt)
        DUMP_ADD(" worker %d", SL_LOAD(&t->worker)->index);
    if (SL_LOAD(&t->state) == SL_T_BLOCKED) {
        uint8_t k = SL_LOAD(&t->wkind);
        struct sl_waitq *q = SL_LOAD(&t->wait.q);
        /* The balance only with one worker: with several, t may be woken
         * and its channel freed while we read (this may run in a signal
         * handler, which cannot take part in sl__waitq_retire's grace
         * period), so the address is all that is safe to show. */
        if ((k == SL_W_CHAN || k == SL_W_SYNC) && q && !sl__rt.mt)
            DUMP_ADD(" on %s %p (balance %d)",
                     k == SL_W_CHAN ? "channel" : "wait queue", (void *)q,
                     SL_LOAD(&q->balance));
        else if (k == SL_W_CHAN || k == SL_W_SYNC)
            DUMP_ADD(" on %s %p", k == SL_W_CHAN ? "channel" : "wait queue",
                     (void *)q);
        else if (k == SL_W_SELECT)
            DUMP_ADD(" over %u cases", (unsigned)SL_LOAD(&t->wn));
        else if (k == SL_W_FD)
            DUMP_ADD(" on fd %d", SL_LOAD(&t->wait.result));
    }
    int e = SL_LOAD(&t->perr);
    if (e == SL_EKILLED)
        DUMP_ADD(" killed");
    else if (e)
        DUMP_ADD(" throw %s", sl_err_name(e));
    DUMP_ADD("\n");
#undef DUMP_ADD
    return n;
}

struct dump_to {
    FILE *out; /* or, when NULL: */
    int fd;
};

static void dump_put(const struct dump_to *to, const char *s, size_t n)
{
    if (to->out) {
        fwrite(s, 1, n, to->out);
        return;
    }
    while (n > 0) {
        ssize_t k = write(to->fd, s, n);
        if (k <= 0)
            return;
        s += k;
        n -= (size_t)k;
    }
}

static void dump_one(const struct dump_to *to, const sl_tasklet *t)
{
    char line[256];
    dump_put(to, line, dump_line(line, sizeof line, t));
}

DUMP_READS static void dump_cb(sl_tasklet *t, void *arg)
{
    if (SL_LOAD(&t->state) != SL_T_DEAD)
        dump_one(arg, t);
}

static void dump_all(const struct dump_to *to)
{
    dump_one(to, sl__rt.main);
    for (int i = 0; i < sl__rt.nworkers; i++)
        sl__slab_each(&sl__rt.workers[i]->slab, dump_cb, (void *)to);
}

/* With several workers the listing is a snapshot taken while they run:
 * states may be a moment old. */
void sl_dump(FILE *out)
{
    sl_worker *w = sl__self();
    if (!out)
        out = stderr;
    if (!w) {
        fprintf(out, "stackless: runtime not initialised\n");
        return;
    }
    fprintf(out, "stackless: %d live tasklet(s), %d runnable on worker %d "
                 "of %d\n",
            sl_getlivecount(), w->runcount, w->index, sl__rt.nworkers);
    struct dump_to to = {out, -1};
    dump_all(&to);
}

void sl__dump_fd(int fd, const char *why)
{
    char line[160];
    int live = 0;
    for (int i = 0; i < sl__rt.nworkers; i++)
        live += SL_LOAD(&sl__rt.workers[i]->livecount);
    struct dump_to to = {NULL, fd};
    int n = snprintf(line, sizeof line,
                     "stackless: %s: %d live tasklet(s) on %d worker(s)\n",
                     why, live, sl__rt.nworkers);
    if (n > 0)
        dump_put(&to, line, (size_t)n < sizeof line ? (size_t)n
                                                    : sizeof line - 1);
    dump_all(&to);
}

/* sl_shutdown: every live tasklet is discarded; the queues they waited in
 * are left without their waiters, so that channels and sync objects can
 * be freed. Two passes: every waiter is unlinked before any select's
 * array is freed (unlinking touches the neighbours). Every worker has
 * stopped: no lock. */
static void discard_unlink_cb(sl_tasklet *t, void *arg)
{
    (void)arg;
    if (!t->wv) {
        sl__waitq_unlink(&t->wait);
        return;
    }
    for (unsigned i = 0; i < t->wn; i++)
        sl__waitq_unlink(&t->wv[i]);
}

static void discard_cb(sl_tasklet *t, void *arg)
{
    (void)arg;
    sl__copy_discard(t);
    if (t->wheap)
        free(t->wv);
    t->wv = NULL;
    t->wn = 0;
    t->wheap = 0;
}

void sl__tasklet_discard_unlink(sl_worker *w)
{
    sl__slab_each(&w->slab, discard_unlink_cb, NULL);
}

void sl__tasklet_discard_all(sl_worker *w)
{
    sl__slab_each(&w->slab, discard_cb, NULL);
    w->livecount = 0;
}
