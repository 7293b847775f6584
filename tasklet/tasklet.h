/* tasklet.h - the tasklet control block and its slab allocator (private). */
#ifndef SL_TASKLET_H
#define SL_TASKLET_H

#include <stdint.h>

#include "tasklet/fcontext.h"
#include "tasklet/internal.h"

typedef struct sl_worker sl_worker;

/* Where a tasklet is. "scheduled" in Stackless's sense is RUNNABLE or
 * BLOCKED; "paused" is PAUSED; "alive" is anything but DEAD. */
enum sl_tstate {
    SL_T_RUNNABLE = 0, /* linked in its worker's run queue (next/prev)      */
    SL_T_BLOCKED,      /* linked in a channel's wait queue (next/prev)      */
    SL_T_PAUSED,       /* in no queue                                       */
    SL_T_DEAD,         /* ended; the control block lives while refs > 0     */
    SL_T_FREE,         /* a free slab block (no tasklet)                    */
    SL_T_SWITCHING,    /* mt: pausing, blocking or claimed; becomes PAUSED,
                          BLOCKED, WAITING or RUNNABLE within a switch:
                          wait, don't touch                              */
    SL_T_WAITING,      /* in no queue, parked on a timer, a descriptor, an
                          offloaded call or a select: only whoever claims
                          its wait (wseq) may wake it                     */
};

/* What a BLOCKED or WAITING tasklet waits on (wkind). Every kind but
 * SL_W_PLAIN is "claimable": several parties may try to end the wait (a
 * partner, the timer, a kill, an event) and the one whose compare-and-swap
 * moves wseq from the wait's odd generation to the next even value wins;
 * the others leave it alone. A plain channel wait is ended under the
 * channel's lock instead, which costs the hand-over path nothing. */
enum sl_wkind {
    SL_W_PLAIN = 0, /* channel wait without timeout (BLOCKED)              */
    SL_W_CHAN,      /* channel or wait-queue wait with a timeout, or a
                       sync primitive's wait (BLOCKED, in the queue)      */
    SL_W_PROXY,     /* not a tasklet: a select case standing in a channel's
                       queue for its owner (arg), case index in id        */
    SL_W_SELECT,    /* select (WAITING; its proxies are in the queues)    */
    SL_W_SLEEP,     /* sl_sleep_ms (WAITING)                               */
    SL_W_FD,        /* sl_wait_fd (WAITING)                                */
    SL_W_OFFLOAD,   /* sl_offload (WAITING; only completion ends it)       */
};

/* The control block. It lives in a dense slab (not on the stack), because a
 * tasklet gets its stack only when it first runs: a spawned-but-not-started
 * tasklet costs these bytes only. Fields in the first cache line are the
 * ones the switch and channel paths touch. */
struct sl_tasklet {
    /* -- hot: run queue / channel queue, switch, message exchange -------- */
    sl_tasklet *next, *prev; /* run-queue circle or channel wait queue,
                                by state; NULL when in neither           */
    sl_fcontext ctx;         /* saved context; NULL before the first run */
    void *value;             /* message being sent or received           */
    struct sl_channel *chan; /* channel waited on, when BLOCKED          */
    int result;              /* outcome of the pending blocking call     */
    uint8_t state;           /* enum sl_tstate                           */
    uint8_t killed;          /* sl_tasklet_kill happened: every later
                                blocking call returns SL_EKILLED         */
    int8_t dir;              /* +1 blocked sending, -1 receiving         */
    uint8_t is_main;
    int8_t pin;              /* worker it must run on, or -1              */
    uint8_t is_idle;         /* a worker's idle context, not a tasklet    */
    uint8_t wkind;           /* enum sl_wkind of the current wait          */
    uint8_t copy;            /* copy-mode stack (tasklet/copystack.h)      */
    uint32_t wseq;           /* (atomic) wait generation: odd while a
                                claimable wait is in progress            */
    union {
        char *stack;         /* fixed: lowest address of its stack slot, or
                                NULL (main: the thread's own stack)      */
        char *saved;         /* copy: heap buffer its frames are saved in
                                (save_cap bytes), or NULL                */
    };
    /* -- cold ------------------------------------------------------------ */
    sl_fn fn;
    void *arg;
    sl_worker *worker;           /* the worker whose run queue has it (or
                                    had it last); changes as it migrates  */
    uint64_t id;
    int refs;                    /* (atomic) the runtime holds 1 while
                                    alive                                 */
    uint32_t save_cap;           /* copy: bytes of saved (owner worker)   */
    uint8_t *wlock;              /* claimable channel wait: the lock that
                                    guards the queue it is linked in      */
#if SL_TSAN
    void *tsan_fiber;            /* TSan's fiber for this context          */
#endif
#if SL_ASAN
    void *asan_fake;             /* ASan fake stack while switched out    */
    const void *asan_bottom;     /* stack bounds ASan is told about       */
    size_t asan_size;
#endif
    char name[32];
};

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
