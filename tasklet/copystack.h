/* copystack.h - copy-mode stacks (private): a worker's shared stack, the
 * switcher context that copies frames on and off it, and the arena their
 * saved copies live in. The rules are in docs/stacks.md and at the top of
 * copystack.c. */
#ifndef SL_COPYSTACK_H
#define SL_COPYSTACK_H

#include <stdint.h>

#include "tasklet/tasklet.h"

/* Saved stacks come in size classes: 32-byte steps up to 2 KiB, then
 * powers of two up to 64 KiB, carved from chunks made present in bulk;
 * larger ones are malloc'd. */
#define SL_CA_SMALL 2048
#define SL_CA_NSMALL (SL_CA_SMALL / 32)
#define SL_CA_MAX (64u << 10)
#define SL_CA_NCLASS (SL_CA_NSMALL + 5) /* 4, 8, 16, 32, 64 KiB */

struct sl_copyarena {
    void *free[SL_CA_NCLASS]; /* per class: LIFO through the first word */
    char *bump, *bump_end;    /* carving cursor in the newest chunk     */
    void *chunks;             /* mapped chunks, newest first, for munmap */
    uint32_t frees;           /* buffers freed since the last reset    */
    void *oldest, *cur;       /* the first chunk mapped; the one being
                                 carved (carving moves to newer ones)  */
    size_t next_chunk;        /* bytes of the next chunk (doubles)      */
    uint64_t mapped;          /* (atomic reads) bytes mapped            */
    uint64_t held;            /* (atomic reads) bytes handed out now    */
};

/* One per worker, touched only by its thread once running (set up before
 * any copy-mode tasklet can reach it). Counters are read by
 * sl_stack_stats_get from any thread (relaxed). */
struct sl_copystate {
    char *map;             /* the mapping: [guard | switcher stack | guard
                              | shared stack]; NULL until copy mode is on */
    size_t map_len;
    char *shared;          /* the shared slot, laid out like a pool slot:
                              its guard page, then stacks.usable bytes   */
    char *top;             /* where copy-mode frames start (64 bytes below
                              the slot's end); saved range is [ctx, top) */
    sl_tasklet *owner;     /* the copy-mode tasklet whose frames are on the
                              shared stack, unsaved; NULL if none         */
    char *dirty;           /* ASan: lowest shared-stack byte that may hold
                              a redzone of frames no longer there        */
    sl_tasklet sw;         /* the switcher: its context, sanitizer state */
    struct sl_copyarena arena;
    uint64_t saves, restores, bytes_saved, bytes_restored, in_place;
    unsigned vg_ids[2];
};

/* Map worker w's shared stack and switcher (idempotent). 0 or SL_ENOMEM /
 * -errno. Called under sl__rt.lock, before any copy tasklet reaches w. */
int sl__copy_init(sl_worker *w);
void sl__copy_fini(sl_worker *w);
/* Copy mode becomes possible on every worker (first copy-mode spawn, or
 * sl_config.stack_mode): sets up each worker and its slow-switch flag. */
int sl__copy_enable(void);

/* sl__jump when w->jump_slow: sl_run_for's watchdog (which may send the
 * switch to main instead), the callbacks and the trace see the switch
 * (SL_JS_BUDGET, SL_JS_OBSERVE); with SL_JS_STACK (copy mode on, or
 * canary slots) it checks from's canary, readies `to` and switches,
 * through the switcher when copies must be made off the shared stack. */
sl_worker *sl__jump_slow(sl_worker *w, sl_tasklet *from, sl_tasklet *to);
/* sl_run_for's watchdog at a switch from `from` to `to` (w->current),
 * while a budget is armed: the tasklet to switch to (sched/sched.c). */
sl_tasklet *sl__budget_switch(sl_worker *w, sl_tasklet *from, sl_tasklet *to);
/* The same where self ends and next (w->current, self already out of the
 * queue) would run: next, or main. */
sl_tasklet *sl__budget_end(sl_worker *w, sl_tasklet *self, sl_tasklet *next);
/* Its first half, for tasklet_exit: the context to jump to, `to` itself
 * or the switcher (w->copy.sw). */
sl_tasklet *sl__jump_via(sl_worker *w, sl_tasklet *from, sl_tasklet *to);
/* Jump to the switcher from a tasklet that ends (w->prev is the
 * graveyard); never returns. */
void sl__switcher_jump_dead(sl_worker *w) __attribute__((noreturn));

/* A copy-mode tasklet ends (on the shared stack): its buffer goes back to
 * the arena and the stack holds nothing worth saving. `lowest` is its
 * deepest live byte (ASan's cleanup bound). */
void sl__copy_exit(sl_worker *w, sl_tasklet *self, const void *lowest);

/* sl_shutdown: free what the arena does not own (large buffers). */
void sl__copy_discard(sl_tasklet *t);

/* The stack t runs on: its own slot, or its worker's shared slot. */
static inline char *sl__copy_slot(const struct sl_copystate *cs,
                                  const sl_tasklet *t)
{
    return t->copy ? cs->shared : t->stack;
}

/* Debug builds: abort with a message when p points into the shared stack
 * of w and the running tasklet is a copy-mode one (what names the call). */
void sl__copy_check_ptr(sl_worker *w, const void *p, const char *what);
#ifndef NDEBUG
#define SL__COPY_CHECK(w, p, what)                                           \
    do {                                                                     \
        if (sl_unlikely((w)->current->copy))                                 \
            sl__copy_check_ptr((w), (p), (what));                            \
    } while (0)
#else
#define SL__COPY_CHECK(w, p, what) ((void)0)
#endif

#endif /* SL_COPYSTACK_H */
