/* tasklet.h - the tasklet control block and its slab allocator (private). */
#ifndef SL_TASKLET_H
#define SL_TASKLET_H

#include <stdint.h>

#include "sched/waiter.h"
#include "tasklet/fcontext.h"
#include "tasklet/internal.h"
#include "tasklet/stack.h"

typedef struct sl_worker sl_worker;

/* Where a tasklet is. "scheduled" in Stackless's sense is RUNNABLE, INBOX
 * or BLOCKED; "paused" is PAUSED; "alive" is anything but DEAD. Only the
 * owner of the state below changes it (see sched/wait.h for waits). */
enum sl_tstate {
    SL_T_RUNNABLE = 0, /* in t->worker's run queue (next/prev), or running:
                          only that worker touches it                     */
    SL_T_BLOCKED,      /* parked in a wait (wkind): its wait's claimer
                          alone may wake it (sched/wait.h)                */
    SL_T_PAUSED,       /* in no queue: whoever moves it to SWITCHING with
                          a compare-and-swap may insert it               */
    SL_T_DEAD,         /* ended; the control block lives while refs > 0     */
    SL_T_FREE,         /* a free slab block (no tasklet)                    */
    SL_T_SWITCHING,    /* mt: pausing or blocking, its switch not landed
                          yet; or just claimed from PAUSED. Becomes
                          another state within a switch: wait, don't
                          touch                                           */
    SL_T_INBOX,        /* in transit: in t->worker's inbox (woken or given
                          from another worker); only that worker touches
                          it, and it becomes RUNNABLE there             */
};

/* The control block. It lives in a dense slab (not on the stack), because a
 * tasklet gets its stack only when it first runs: a spawned-but-not-started
 * tasklet costs these bytes only. The first cache line is what the switch
 * and run-queue paths touch, the second the embedded waiter (a channel
 * hand-over touches both); blocks are 64-byte aligned. */
struct sl_tasklet {
    /* -- hot: run queue, switch, wait ------------------------------------ */
    sl_tasklet *next, *prev; /* (worker) run-queue circle; inbox list      */
    sl_fcontext ctx;         /* saved context; NULL before the first run */
    union {
        char *stack;         /* fixed: lowest address of its stack slot, or
                                NULL (main: the thread's own stack)      */
        char *saved;         /* copy: heap buffer its frames are saved in
                                (save_cap bytes), or NULL                */
    };
    sl_worker *worker;       /* (atomic) the worker whose run queue or
                                inbox has it (or had it last)             */
    uint32_t wseq;           /* (atomic) wait generation: odd while a wait
                                is on; the claim moves it (sched/wait.h)  */
    uint32_t trace_flow;     /* (atomic) the trace's flow from whoever
                                woke it, ended when it next runs; 0: none
                                (sched/observe.h). Here, with id below:
                                the trace reads them where a switch and
                                a wake read anyway (a cold line missed a
                                kick cost more than the recording)      */
    uint8_t state;           /* (atomic) enum sl_tstate                   */
    uint8_t pend;            /* (atomic) a pending error may be set (perr):
                                the hot-line hint every blocking call
                                tests, and the flag of W6 (sched/wait.h) */
    uint8_t wkind;           /* enum sl_wkind of the current wait          */
    uint8_t copy;            /* copy-mode stack (tasklet/copystack.h)      */
    int8_t pin;              /* worker it must run on, or -1              */
    uint8_t is_main;
    uint8_t is_idle;         /* a worker's idle context, not a tasklet    */
    uint8_t wcount;          /* what the current wait counts in: SL_WC_*
                                flags, undone by whoever ends it (here:
                                the trace reads it at a block)          */
    uint64_t id;
    /* -- the embedded waiter (its own cache line) ------------------------ */
    sl_waiter wait;
    sl_waiter *wv;           /* a select's array of wn waiters while it
                                waits; NULL: just the embedded one        */
    /* -- cold ------------------------------------------------------------ */
    sl_fn fn;
    void *arg;
    int refs;                    /* (atomic) the runtime holds 1 while
                                    alive                                 */
    uint32_t save_cap;           /* copy: bytes of saved (owner worker)   */
    uint16_t wn;                 /* waiters in wv                          */
    uint8_t wheap;               /* wv was malloc'd (a select)             */
    uint8_t spare;
    sl_worker *wait_w;           /* the worker whose timer heap / epoll
                                    the current wait uses                */
    int perr;                    /* (atomic) the pending error: 0 none,
                                    SL_EKILLED (sticky: every later
                                    blocking call returns it), or a code
                                    sl_tasklet_throw gave (one-shot: the
                                    next blocking call returns it). Set by
                                    throwers, taken by the tasklet itself
                                    (sl__pend_take)                      */
    uint32_t ntaken;             /* (the tasklet itself) thrown errors it
                                    took: a call made of several blocking
                                    calls tells by the count whether one
                                    ended by a throw                      */
    uint64_t atomic_id;          /* (atomic) sl_tasklet_set_atomic: id + 1
                                    while the watchdog of sl_run_for must
                                    leave it be. Tied to the id, not a
                                    flag: a block's next tasklet has
                                    another id, so spawn resets nothing  */
#if SL_TSAN
    void *tsan_fiber;            /* TSan's fiber for this context          */
#endif
#if SL_ASAN
    void *asan_fake;             /* ASan fake stack while switched out    */
    const void *asan_bottom;     /* stack bounds ASan is told about       */
    size_t asan_size;
#endif
    char name[32];
} __attribute__((aligned(64)));
_Static_assert(offsetof(struct sl_tasklet, wait) == 64 &&
                   offsetof(struct sl_tasklet, wv) + sizeof(void *) <= 128,
               "a control block's hot line, then its waiter's");

/* Slab of control blocks, one per worker. Chunks are mapped and made
 * present in bulk (MADV_POPULATE_WRITE): a page fault costs ~10 us on the
 * target VM, populating a range ~0.5 us per page. */
typedef struct sl_slab {
    sl_tasklet *free;  /* LIFO of free blocks, linked through ->next */
    size_t nfree;
    size_t depot_high; /* M:N: beyond this many free blocks, a batch goes
                          to the process-wide depot (SIZE_MAX: never)  */
    sl_worker *owner;  /* stamped into every block                   */
    void *chunks;      /* list of mapped chunks, newest first, for munmap */
    size_t next_chunk; /* bytes of the next chunk to map (doubles) */
    size_t nblocks;    /* blocks in those chunks                        */
    void *oldest;      /* the first chunk mapped                        */
    void *carve;       /* after a reset (every block free, one worker):
                          the chunk whose blocks refills thread next, in
                          address order; NULL: map a new chunk         */
    size_t carve_i;    /* the next block of carve to thread             */
    size_t frees;      /* blocks freed since the last reset             */
    void *ahead;       /* the next chunk (next_chunk bytes), mapped and
                          being made present by the stack provisioner's
                          helper (ahead_job), or NULL                   */
    struct sl__stack_batch ahead_job;
} sl_slab;

void sl__slab_init(sl_slab *s, sl_worker *owner);
/* Call fn on every block that holds a tasklet (alive or dead). */
void sl__slab_each(sl_slab *s, void (*fn)(sl_tasklet *, void *), void *arg);
void sl__slab_destroy(sl_slab *s);
sl_tasklet *sl__slab_refill(sl_slab *s); /* slow path of sl__slab_alloc */

static inline sl_tasklet *sl__slab_alloc(sl_slab *s)
{
    sl_tasklet *t = s->free;
    if (sl_unlikely(!t))
        t = sl__slab_refill(s);
    if (t) {
        s->free = t->next;
        s->nfree--;
        /* The next spawn's block: cold once the free list is out of
         * address order (blocks coming back from many tasklets). */
        if (s->free) /* (a prefetch of NULL walks the page tables) */
            __builtin_prefetch(s->free, 1);
    }
    return t;
}

void sl__slab_free(sl_slab *s, sl_tasklet *t);
/* bytes of fresh memory, made present in one call (~0.5 us a page instead
 * of a fault each), on huge pages where the kernel allows when bytes is a
 * multiple of 2 MiB; NULL when the kernel refuses. Free with munmap. */
void *sl__map_populated(size_t bytes);
void sl__slab_depot_reset(void);
void sl__slab_depot_forget(void); /* fork child: no lock, no contents */

#endif /* SL_TASKLET_H */
