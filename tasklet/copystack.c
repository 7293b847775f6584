/* copystack.c - copy-mode stacks: tasklets that run on their worker's
 * shared stack and keep their frames in a right-sized heap buffer while
 * another copy-mode tasklet uses it (Stackless Python's and libaco's
 * "shared stacks").
 *
 * Rules.
 *   - Each worker has one shared stack (a slot laid out like a pool slot:
 *     a guard page, then stack_size bytes) and a switcher: a small context
 *     on a stack of its own. Copy-mode frames always start at the same
 *     address (cs->top), so a saved copy goes back exactly where it was
 *     made and the pointers inside it stay right.
 *   - Saving is lazy. The shared stack has an owner: the copy-mode tasklet
 *     whose frames are on it. A copy-mode tasklet that switches to a
 *     fixed-stack one (main, idle, a fixed tasklet) leaves its frames in
 *     place; they are saved only when another copy-mode tasklet needs the
 *     stack, and a resume of the owner copies nothing (libaco's trick).
 *   - A copy cannot be made by the tasklet that runs on the stack it
 *     overwrites. When the switch leaves a copy-mode tasklet for another
 *     one, it jumps to the switcher, which saves the owner [ctx, top) into
 *     its buffer, runs the post-switch work (unlocks, publication: it may
 *     read the blocked tasklet's frames, which are intact until now),
 *     copies the incoming frames back (or makes a fresh context at top)
 *     and jumps there. When the switch leaves a fixed-stack context, the
 *     copies are made right there, before the one jump.
 *   - Pinning. A copy-mode tasklet runs only on the worker that first ran
 *     it (its pin is set then): its saved frames hold addresses of that
 *     worker's shared stack. Wakes from other workers go through the
 *     worker's inbox, as for any pinned tasklet; stealing moves only
 *     copy-mode tasklets that never ran.
 *   - Buffers: size classes (32-byte steps to 2 KiB, then powers of two to
 *     64 KiB) carved from chunks made present in bulk (MADV_POPULATE_WRITE,
 *     ~0.5 us a page instead of a ~10 us fault each); the first buffer is
 *     the size class of the frames, it is reused while they fit, grows by
 *     half when they do not, and shrinks when they use a quarter of a
 *     buffer over 4 KiB. Each worker's arena
 *     is its own: a copy-mode tasklet never leaves its worker. An arena
 *     that holds nothing (after 4096 frees) starts carving from its
 *     oldest chunk again, so that buffers stay in spawn order.
 *   - Every byte between top and the saved stack pointer is copied twice
 *     a switch: the way into the switcher pushes nothing but return
 *     addresses and the register save area (see sl__jump_slow and
 *     sl__trampoline_copy), and copies are inline 16-byte moves.
 *
 * Rejected: several shared stacks a tasklet may borrow (migration then
 * needs a free stack at the right address on the target worker: more
 * memory and a search on every resume, for balance that the spawn-time
 * stealing of new tasklets mostly gives anyway); saving on every switch
 * out (costs a copy for every switch to main or to a fixed tasklet, and
 * the in-place resume would be lost); malloc per buffer (a page fault per
 * 4 KiB of fresh buffers: ten million players would fault in 3 GiB one
 * page at a time).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sched/observe.h"

#if SL_VALGRIND
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define SWITCHER_STACK (64u << 10)
#define CHUNK_FIRST (256u << 10)
#define CHUNK_MAX (64u << 20)
/* An arena that holds nothing is reset only after this many frees since
 * the last reset (one tasklet spawned and ended at a time would pay the
 * reset at every end). */
#define CA_RESET_FREES 4096u

void sl__trampoline_copy(sl_transfer tr);

/* ---- the arena ----------------------------------------------------------- */

struct chunk {
    struct chunk *next;  /* older */
    struct chunk *newer;
    size_t bytes;
};

/* The class of a buffer for n bytes (n <= SL_CA_MAX) and its size. */
static unsigned ca_class(size_t n, uint32_t *size)
{
    if (n <= SL_CA_SMALL) {
        unsigned c = n ? (unsigned)((n - 1) / 32) : 0;
        *size = (c + 1) * 32;
        return c;
    }
    unsigned c = SL_CA_NSMALL;
    uint32_t s = 4096;
    while (s < n) {
        s *= 2;
        c++;
    }
    *size = s;
    return c;
}

static void *ca_carve(struct sl_copyarena *a, uint32_t size)
{
    struct chunk *cur = a->cur;
    if ((size_t)(a->bump_end - a->bump) < size && cur && cur->newer) {
        /* After a reset: carve the chunks again, oldest first. */
        cur = cur->newer;
        a->cur = cur;
        a->bump = (char *)cur + 64;
        a->bump_end = (char *)cur + cur->bytes;
    }
    if ((size_t)(a->bump_end - a->bump) < size) {
        size_t bytes = a->next_chunk ? a->next_chunk : CHUNK_FIRST;
        void *p = sl__map_populated(bytes);
        if (!p)
            return NULL;
        if (bytes < CHUNK_MAX)
            a->next_chunk = bytes * 2;
        struct chunk *c = p;
        c->next = a->chunks;
        c->newer = NULL;
        c->bytes = bytes;
        if (a->chunks)
            ((struct chunk *)a->chunks)->newer = c;
        else
            a->oldest = c;
        a->chunks = c;
        a->cur = c;
        a->bump = (char *)p + 64;
        a->bump_end = (char *)p + bytes;
        SL_STORE(&a->mapped, a->mapped + bytes);
    }
    void *b = a->bump;
    a->bump += size;
    return b;
}

/* A buffer of at least n bytes, *cap its size; NULL when out of memory. */
static char *ca_alloc(struct sl_copyarena *a, size_t n, uint32_t *cap)
{
    char *b;
    if (n > SL_CA_MAX) {
        size_t sz = (n + 4095) & ~(size_t)4095;
        b = malloc(sz);
        *cap = (uint32_t)sz;
    } else {
        unsigned c = ca_class(n, cap);
        b = a->free[c];
        if (b)
            a->free[c] = *(void **)b;
        else
            b = ca_carve(a, *cap);
    }
    if (b)
        SL_STORE(&a->held, a->held + *cap);
    return b;
}

static void ca_free(struct sl_copyarena *a, char *b, uint32_t cap)
{
    SL_STORE(&a->held, a->held - cap);
    if (cap > SL_CA_MAX) {
        free(b);
        return;
    }
    a->frees++;
    if (sl_unlikely(a->held == 0) && a->oldest && a->frees >= CA_RESET_FREES) {
        /* Nothing is handed out: forget the free lists and carve again
         * from the start of the oldest chunk. LIFO reuse hands buffers out
         * in the reverse of the order they came back, which after a few
         * generations of tasklets is no order at all: the buffers of
         * tasklets spawned one after another end up scattered over the
         * arena, one cache line and often one TLB entry each. Carving
         * again lays them out in spawn order (skynet --repeat: each tree
         * after the first starts from an empty arena). */
        memset(a->free, 0, sizeof a->free);
        a->frees = 0;
        struct chunk *o = a->oldest;
        a->cur = o;
        a->bump = (char *)o + 64;
        a->bump_end = (char *)o + o->bytes;
        return;
    }
    uint32_t size;
    unsigned c = ca_class(cap, &size);
    *(void **)b = a->free[c];
    a->free[c] = b;
}

static void ca_destroy(struct sl_copyarena *a)
{
    struct chunk *c = a->chunks;
    while (c) {
        struct chunk *n = c->next;
        munmap(c, c->bytes);
        c = n;
    }
    memset(a, 0, sizeof *a);
}

/* ---- copying ------------------------------------------------------------- */

#if SL_ASAN
/* Stack bytes carry redzones: the copy must not be checked, and must not
 * become a call to the (intercepted) memcpy either. */
__attribute__((no_sanitize_address, noinline)) static void
copy_bytes(char *dst, const char *src, size_t n)
{
    volatile uint64_t *d = (volatile uint64_t *)dst;
    const uint64_t *s = (const uint64_t *)src;
    for (size_t i = 0; i < n / 8; i++)
        d[i] = s[i];
}
#define copy_frames copy_bytes
#else
/* Frames are never copied by memcpy: its 64-byte vector loads straddle
 * the words just pushed (each such load waits for its stores to reach
 * the cache), and the call costs a PLT jump. 16-byte moves, two to an
 * iteration, inline: a save reads words pushed a few dozen instructions
 * earlier, a restore writes what the jump that follows pops eight bytes
 * at a time, each inside one of its stores (bench_switch --stack copy:
 * 8-byte moves were ~1 ns slower, memcpy ~3 ns). n is a multiple of 8
 * (both ends are stack pointers, top 16-aligned, an fcontext 8-aligned).
 * volatile keeps the compiler from turning the loop back into memcpy. */
typedef uint64_t sl_v2u __attribute__((vector_size(16), aligned(8)));
static inline __attribute__((always_inline)) void
copy_frames(char *dst, const char *src, size_t n)
{
    volatile sl_v2u *d = (volatile sl_v2u *)dst;
    const sl_v2u *s = (const sl_v2u *)src;
    size_t i = 0, nv = n / 16;
    for (; i + 2 <= nv; i += 2) {
        sl_v2u a = s[i], b = s[i + 1];
        d[i] = a;
        d[i + 1] = b;
    }
    for (; i < nv; i++)
        d[i] = s[i];
    if (n & 8)
        *(volatile uint64_t *)(dst + n - 8) = *(const uint64_t *)(src + n - 8);
}
#endif

/* Out of memory for a saved stack: nothing sensible is left to do. */
static void __attribute__((noreturn, cold)) save_failed(const sl_tasklet *t,
                                                       size_t n)
{
    fprintf(stderr,
            "stackless: out of memory saving %zu stack bytes of tasklet "
            "#%llu '%s'; aborting\n",
            n, (unsigned long long)t->id, t->name);
    abort();
}

/* The owner t switched out earlier: copy its frames [ctx, top) into its
 * buffer (reused when it fits). */
static __attribute__((noinline)) void save_realloc(struct sl_copystate *cs,
                                                    sl_tasklet *t, size_t n)
{
    uint32_t cap = t->save_cap;
    if (t->saved)
        ca_free(&cs->arena, t->saved, cap);
    /* The first buffer fits (most tasklets block at one depth); one that
     * grows gets half as much again, one that shrank twice. */
    size_t want = cap == 0 ? n : n > cap ? n + n / 2 : n * 2;
    /* Stored atomically: a partner on another worker reads it to prefetch
     * the frames of a copy-mode tasklet it wakes (a hint, channel.c). */
    SL_STORE(&t->saved, (char *)ca_alloc(&cs->arena, want, &t->save_cap));
    if (!t->saved)
        save_failed(t, n);
}

static inline __attribute__((always_inline)) void save(sl_worker *w,
                                                       sl_tasklet *t)
{
    struct sl_copystate *cs = &w->copy;
    char *sp = (char *)t->ctx;
    size_t n = (size_t)(cs->top - sp);
    uint32_t cap = t->save_cap;
    if (sl_unlikely(n > cap || (cap > 4096 && n <= cap / 4)))
        save_realloc(cs, t, n);
    copy_frames(t->saved, sp, n);
    SL_STORE(&cs->saves, cs->saves + 1);
    SL_STORE(&cs->bytes_saved, cs->bytes_saved + n);
#if SL_ASAN
    if (sp < cs->dirty)
        cs->dirty = sp;
#endif
}

/* Ready the shared stack for copy-mode tasklet t, while running somewhere
 * else (a fixed stack, or the switcher): save the owner, copy t's frames
 * back (or give it a fresh context at top) and make it the owner. Post-
 * switch work runs in between when in_switcher (its data may live on the
 * owner's frames, intact until the restore). */
static inline __attribute__((always_inline)) void
take_shared(sl_worker *w, sl_tasklet *t, bool in_switcher)
{
    struct sl_copystate *cs = &w->copy;
    if (t->saved) { /* cold for a tasklet that waited long: fetch early */
        size_t n = (size_t)(cs->top - (char *)t->ctx);
        for (size_t off = 0; off < n; off += SL_CACHE_LINE)
            __builtin_prefetch(t->saved + off);
    }
    sl_tasklet *o = cs->owner;
    if (o)
        save(w, o);
    cs->owner = NULL;
    if (in_switcher && w->post)
        sl__post_switch(w);
#if SL_ASAN
    /* Redzones of the frames that left must not show through t's. */
    if (cs->dirty < cs->top) {
        sl__stack_asan_clean(cs->dirty, (size_t)(cs->top - cs->dirty));
        cs->dirty = cs->top;
    }
#endif
#if SL_VALGRIND
    /* memcheck marks what lies below a stack pointer as unaddressable when
     * the pointer moves up; the frames we put back may lie below where the
     * last tasklet left the shared stack. */
    if (sl_unlikely(w->stacks.valgrind)) {
        char *lo = t->ctx ? (char *)t->ctx : cs->top - 256;
        VALGRIND_MAKE_MEM_UNDEFINED(lo, (size_t)(cs->top - lo));
    }
#endif
    if (t->ctx) {
        char *sp = (char *)t->ctx;
        size_t n = (size_t)(cs->top - sp);
        copy_frames(sp, t->saved, n);
        SL_STORE(&cs->restores, cs->restores + 1);
        SL_STORE(&cs->bytes_restored, cs->bytes_restored + n);
    } else {
        /* First run: it starts at top, and stays on this worker. */
        size_t usable = w->stacks.usable;
        t->ctx = make_fcontext(cs->top, usable - 64, sl__trampoline_copy);
        if (t->pin < 0) /* (another worker's run/switch may read it) */
            SL_STORE(&t->pin, (int8_t)w->index);
#if SL_ASAN
        t->asan_bottom = cs->shared + w->stacks.guard;
        t->asan_size = usable;
#endif
#if SL_TSAN
        t->tsan_fiber = __tsan_create_fiber(0);
#endif
    }
    cs->owner = t;
}

/* The switcher. A copy-mode tasklet leaving for another one (or ending)
 * enters it; it readies the shared stack for w->current and jumps there.
 *
 * Two forms. The general one is a context of its own that loops, entered
 * and left with jump_fcontext (sanitizer builds: every jump is annotated).
 * Otherwise, on a CPU whose layer has the switcher's routines (arch/: both
 * x86-64 and aarch64), entering needs no jump_fcontext: sl__switcher_enter
 * saves the leaving tasklet's registers exactly as jump_fcontext does (so
 * a jump_fcontext resumes it) and moves to the top of the switcher's stack
 * with one mov; the second full context switch's saves (and, on x86-64,
 * its MXCSR/x87 loads and indirect jump) are saved (bench_switch --stack
 * copy on x86-64: 43 ns to ~35 ns). */
#if SL_ARCH_SWITCHER && !SL_ASAN && !SL_TSAN && \
    !(SL_ARCH_JUMP_BY_JMP && defined(SL_PLAIN_CALL))
#define FAST_SWITCHER 1
#else
#define FAST_SWITCHER 0
#endif

#if FAST_SWITCHER
/* sl__switcher_enter(top, w) and sl__switcher_resume(ctx, data): see the
 * architecture's header for their registers and layout. */
__asm__(SL_ARCH_SWITCHER_ASM);
sl_transfer sl__switcher_enter(void *top, sl_worker *w)
    __attribute__((visibility("hidden")));

void sl__switcher_run(void *ctx, sl_worker *w)
    __attribute__((noreturn, used, visibility("hidden")));
void sl__switcher_run(void *ctx, sl_worker *w)
{
    SL_STORE(&w->prev->ctx, ctx);
    /* The floating-point control state in force: the leaving context's
     * (read before the restore may overwrite it). */
    sl_arch_fpctl fp = sl_arch_fpctl_of(ctx);
    sl_tasklet *to = w->current;
    take_shared(w, to, true);
    /* Nothing resumes this frame: the next entry starts at the top again,
     * and the resumed side stores its NULL "previous context" here. */
    w->prev = &w->graveyard;
    sl_arch_switcher_leave(to->ctx, w, fp);
}

/* The post-switch work of a resumed side, as a tail call (keeps the frame
 * of the switch path empty: see sl__jump_slow). */
static __attribute__((noinline)) sl_worker *post_then(sl_worker *w)
{
    sl__post_switch(w);
    return w;
}

/* Leave `from` for the switcher; returns when `from` is resumed. Inlined
 * where nothing stays live across the jump, so that no callee-saved
 * register is pushed: every byte on the stack here is copied twice per
 * switch. */
static inline __attribute__((always_inline)) sl_worker *
switcher_call(sl_worker *w, sl_tasklet *from)
{
    w->prev = from;
    sl_transfer tr;
    SL_ARCH_SWITCHER_ENTER(w->copy.sw.ctx, w, tr);
    w = (sl_worker *)tr.data;
    SL_STORE(&w->prev->ctx, tr.fctx);
    if (sl_unlikely(w->post))
        return post_then(w);
    return w;
}
#else
static void switcher(sl_transfer tr)
{
    for (;;) {
        sl_worker *w = (sl_worker *)tr.data;
        SL_STORE(&w->prev->ctx, tr.fctx);
#if SL_ASAN
        __sanitizer_finish_switch_fiber(w->copy.sw.asan_fake,
                                        &w->prev->asan_bottom,
                                        &w->prev->asan_size);
#endif
        sl_tasklet *to = w->current;
        take_shared(w, to, true);
        w->prev = &w->copy.sw;
#if SL_ASAN
        __sanitizer_start_switch_fiber(&w->copy.sw.asan_fake, to->asan_bottom,
                                       to->asan_size);
#endif
#if SL_TSAN
        __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
        tr = sl__jump_fcontext(to->ctx, w);
    }
}
#endif

sl_tasklet *sl__jump_via(sl_worker *w, sl_tasklet *from, sl_tasklet *to)
{
    if (sl_unlikely(SL_LOAD(&sl__stack_canary_any)) && !from->copy &&
        from->stack &&
        !sl__stack_canary_check(&w->stacks, from->stack))
        sl__overflow_abort(from);
    if (!to->copy) {
        if (!to->ctx)
            sl__tasklet_prepare(w, to);
        return to;
    }
    struct sl_copystate *cs = &w->copy;
    if (to == cs->owner) { /* its frames never left */
        SL_STORE(&cs->in_place, cs->in_place + 1);
        return to;
    }
    if (from->copy) /* we run on the shared stack: copy from elsewhere */
        return &cs->sw;
    take_shared(w, to, false);
    return to;
}

static __attribute__((noinline)) sl_worker *
jump_slow_rest(sl_worker *w, sl_tasklet *from, sl_tasklet *to)
{
    sl_tasklet *via = sl__jump_via(w, from, to);
#if FAST_SWITCHER
    if (via == &w->copy.sw)
        return switcher_call(w, from);
#endif
    return sl__jump_to(w, from, via);
}

static inline __attribute__((always_inline)) sl_worker *
jump_slow_body(sl_worker *w, sl_tasklet *from, sl_tasklet *to)
{
#if FAST_SWITCHER
    /* Copy-mode to copy-mode (from runs on the shared stack, so it is the
     * owner; to is not): the switcher, entered with nothing of this
     * function on the stack but its return address. from has no canary to
     * check (its stack is the shared one). */
    if (sl_likely(from->copy & to->copy) && to != w->copy.owner)
        return switcher_call(w, from);
#endif
    return jump_slow_rest(w, from, to);
}

/* What watches a switch sees it (sl_run_for's watchdog first: it may send
 * the switch to main instead), before the jump. Returns the tasklet to
 * switch to. */
static inline __attribute__((always_inline)) sl_tasklet *
jump_watch(sl_worker *w, sl_tasklet *from, sl_tasklet *to)
{
    uint8_t slow = SL_LOAD(&w->jump_slow);
    if (slow & SL_JS_BUDGET)
        to = sl__budget_switch(w, from, to);
    if (slow & SL_JS_OBSERVE)
        sl__obs_switch(w, from, to, false);
    return to;
}

/* The plain switch after jump_watch, as a tail call of sl__jump_slow: no
 * frame but its return address is live across the jump (each frame a
 * resumed tasklet returns through is a cache miss when there are many of
 * them). */
static __attribute__((noinline)) sl_worker *
jump_plain(sl_worker *w, sl_tasklet *from, sl_tasklet *to)
{
    if (sl_unlikely(!to->ctx)) /* (what sl__jump does) */
        sl__tasklet_prepare(w, to);
    return sl__jump_to(w, from, to);
}

static __attribute__((noinline)) sl_worker *
jump_stack(sl_worker *w, sl_tasklet *from, sl_tasklet *to)
{
    return jump_slow_body(w, from, to);
}

/* A watched switch: seen, then made by a tail call (above). */
static __attribute__((noinline)) sl_worker *
jump_watched(sl_worker *w, sl_tasklet *from, sl_tasklet *to)
{
    to = jump_watch(w, from, to);
    if (SL_LOAD(&w->jump_slow) & SL_JS_STACK)
        return jump_stack(w, from, to);
    return jump_plain(w, from, to);
}

/* (Its frame stays empty on the way to the switcher: every byte on the
 * stack here is copied twice a switch in copy mode.) */
sl_worker *sl__jump_slow(sl_worker *w, sl_tasklet *from, sl_tasklet *to)
{
    if (sl_unlikely(SL_LOAD(&w->jump_slow) & (SL_JS_BUDGET | SL_JS_OBSERVE)))
        return jump_watched(w, from, to);
    return jump_slow_body(w, from, to);
}

void sl__switcher_jump_dead(sl_worker *w)
{
#if FAST_SWITCHER
    switcher_call(w, &w->graveyard);
#else
#if SL_ASAN
    __sanitizer_start_switch_fiber(NULL, w->copy.sw.asan_bottom,
                                   w->copy.sw.asan_size);
#endif
#if SL_TSAN
    __tsan_switch_to_fiber(w->copy.sw.tsan_fiber, 0);
#endif
    w->prev = &w->graveyard;
    sl__jump_fcontext(w->copy.sw.ctx, w);
#endif
    __builtin_unreachable();
}

void sl__copy_exit(sl_worker *w, sl_tasklet *self, const void *lowest)
{
    struct sl_copystate *cs = &w->copy;
    SL__ASSERT(cs->owner == self);
    cs->owner = NULL;
    if (self->saved)
        ca_free(&cs->arena, self->saved, self->save_cap);
    self->saved = NULL;
    self->save_cap = 0;
#if SL_ASAN
    char *lo = (char *)lowest;
    if (lo < cs->shared + w->stacks.guard)
        lo = cs->shared + w->stacks.guard;
    if (lo < cs->dirty)
        cs->dirty = lo;
#else
    (void)lowest;
#endif
}

void sl__copy_discard(sl_tasklet *t)
{
    if (t->copy && t->saved && t->save_cap > SL_CA_MAX)
        free(t->saved);
    if (t->copy) {
        t->saved = NULL;
        t->save_cap = 0;
    }
}

/* ---- setting up ------------------------------------------------------------ */

static int guard(char *p, size_t len)
{
    if (sl__madv_guard_works() && madvise(p, len, MADV_GUARD_INSTALL) == 0)
        return 0;
    return mprotect(p, len, PROT_NONE) == 0 ? 0 : -errno;
}

int sl__copy_init(sl_worker *w)
{
    struct sl_copystate *cs = &w->copy;
    if (cs->map)
        return 0;
    size_t pg = w->stacks.guard, slot = w->stacks.size;
    size_t len = pg + SWITCHER_STACK + slot;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return -errno;
    char *sw_lo = m + pg, *shared = sw_lo + SWITCHER_STACK;
    int rc;
    if ((rc = guard(m, pg)) < 0 || (rc = guard(shared, pg)) < 0) {
        munmap(m, len);
        return rc;
    }
    (void)madvise(m, len, MADV_NOHUGEPAGE);
    cs->map = m;
    cs->map_len = len;
    cs->shared = shared;
    cs->top = shared + slot - 64;
    cs->owner = NULL;
    cs->dirty = cs->top;
    sl_tasklet *s = &cs->sw;
    memset(s, 0, sizeof *s);
    s->is_idle = 1; /* no public call may take it */
    s->pin = (int8_t)w->index;
    s->state = SL_T_PAUSED;
    s->worker = w;
#if FAST_SWITCHER
    s->ctx = sw_lo + SWITCHER_STACK - 64; /* the top sl__switcher_enter uses */
#else
    s->ctx = make_fcontext(sw_lo + SWITCHER_STACK - 64, SWITCHER_STACK - 64,
                           switcher);
#endif
#if SL_ASAN
    s->asan_bottom = sw_lo;
    s->asan_size = SWITCHER_STACK;
#endif
#if SL_TSAN
    s->tsan_fiber = __tsan_create_fiber(0);
#endif
#if SL_VALGRIND
    if (w->stacks.valgrind) {
        cs->vg_ids[0] = VALGRIND_STACK_REGISTER(sw_lo, sw_lo + SWITCHER_STACK);
        cs->vg_ids[1] = VALGRIND_STACK_REGISTER(shared + pg, shared + slot);
    }
#endif
    return 0;
}

void sl__copy_fini(sl_worker *w)
{
    struct sl_copystate *cs = &w->copy;
    if (!cs->map)
        return;
#if SL_VALGRIND
    if (w->stacks.valgrind) {
        VALGRIND_STACK_DEREGISTER(cs->vg_ids[0]);
        VALGRIND_STACK_DEREGISTER(cs->vg_ids[1]);
    }
#endif
#if SL_TSAN
    __tsan_destroy_fiber(cs->sw.tsan_fiber);
#endif
#if SL_ASAN
    /* Manual poison outlives munmap (see sl__slab_destroy). */
    size_t pg = w->stacks.guard;
    sl__stack_asan_clean(cs->map + pg, SWITCHER_STACK);
    sl__stack_asan_clean(cs->shared + pg, w->stacks.usable);
#endif
    munmap(cs->map, cs->map_len);
    ca_destroy(&cs->arena);
    memset(cs, 0, sizeof *cs);
}

int sl__copy_enable(void)
{
    if (SL_LOAD_ACQ(&sl__rt.copy_on))
        return 0;
    pthread_mutex_lock(&sl__rt.lock);
    int rc = 0;
    if (!sl__rt.copy_on) {
        for (int i = 0; i < sl__rt.nworkers && rc == 0; i++)
            rc = sl__copy_init(sl__rt.workers[i]);
        if (rc == 0) {
            for (int i = 0; i < sl__rt.nworkers; i++)
                sl__jump_slow_set(sl__rt.workers[i], SL_JS_STACK);
            SL_STORE_REL(&sl__rt.copy_on, 1);
        }
    }
    pthread_mutex_unlock(&sl__rt.lock);
    return rc;
}

/* ---- the caveat, checked --------------------------------------------------- */

void sl__copy_check_ptr(sl_worker *w, const void *p, const char *what)
{
    const struct sl_copystate *cs = &w->copy;
    const char *c = p;
    if (!cs->map || c < cs->shared || c >= cs->top + 64)
        return;
    const sl_tasklet *t = w->current;
    fprintf(stderr,
            "stackless: %s given %p, a pointer into the stack of copy-mode "
            "tasklet #%llu '%s': its locals move when it switches out, so "
            "they are valid only while it runs (docs/stacks.md); use the "
            "heap. Aborting\n",
            what, p, (unsigned long long)t->id, t->name);
    abort();
}

/* ---- counters -------------------------------------------------------------- */

int sl_stack_stats_get(sl_stack_stats *out)
{
    if (!out)
        return SL_EINVAL;
    if (!sl__self())
        return SL_ESTATE;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < sl__rt.nworkers; i++) {
        const struct sl_copystate *cs = &sl__rt.workers[i]->copy;
        out->saves += SL_LOAD(&cs->saves);
        out->restores += SL_LOAD(&cs->restores);
        out->bytes_saved += SL_LOAD(&cs->bytes_saved);
        out->bytes_restored += SL_LOAD(&cs->bytes_restored);
        out->in_place += SL_LOAD(&cs->in_place);
        out->buffer_bytes += SL_LOAD(&cs->arena.held);
        out->arena_bytes += SL_LOAD(&cs->arena.mapped);
    }
    return 0;
}
