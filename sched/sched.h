/* sched.h - the worker, its run queue and the switch (private, inlined into
 * the tasklet and channel paths). See sched.c for the design essay. */
#ifndef SL_SCHED_H
#define SL_SCHED_H

#include "tasklet/tasklet.h"
#include "tasklet/stack.h"

#if SL_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

/* One per OS thread running tasklets. Today there is one worker, owned by
 * the thread that called sl_init(); every field is touched by that thread
 * only. */
struct sl_worker {
    sl_tasklet *current;   /* running tasklet; also the head of the run
                              queue circle whenever it is runnable        */
    sl_tasklet *prev;      /* the tasklet we are switching away from: the
                              resumed side stores its context here        */
    int runcount;          /* tasklets in the run queue                    */
    int livecount;         /* live tasklets other than main                */
    sl_stack_pool stacks;  /* this worker's stacks                         */
    sl_slab slab;          /* this worker's control blocks                 */
    sl_tasklet *main;      /* the thread's own context                     */
    uint64_t next_id;
    sl_tasklet graveyard;  /* stands in for a tasklet that ended: the next
                              tasklet writes the dead context here        */
    sl_tasklet main_block; /* main's control block                         */
};

/* The worker of the calling thread, NULL when the runtime is not running
 * here. Read once at each public entry point; after a switch use the
 * worker the switch returns (a tasklet may resume on another thread). */
extern __thread sl_worker *sl__tls_worker
    __attribute__((tls_model("initial-exec")));

static inline sl_worker *sl__self(void) { return sl__tls_worker; }

/* ---- run queue: a circle through next/prev whose head is current ------- */

/* Link t just before pos (at the end of the circle headed by pos). */
static inline void sl__rq_link_before(sl_tasklet *pos, sl_tasklet *t)
{
    t->next = pos;
    t->prev = pos->prev;
    pos->prev->next = t;
    pos->prev = t;
}

/* Append t to the end of the run queue (just before the current one). */
static inline void sl__rq_append(sl_worker *w, sl_tasklet *t)
{
    sl__rq_link_before(w->current, t);
    t->state = SL_T_RUNNABLE;
    w->runcount++;
}

/* Put t right after the current tasklet: switching to it then leaves the
 * current one at the end (Stackless's "move target after source"). */
static inline void sl__rq_link_after_current(sl_worker *w, sl_tasklet *t)
{
    sl__rq_link_before(w->current->next, t);
    t->state = SL_T_RUNNABLE;
    w->runcount++;
}

static inline void sl__rq_unlink(sl_worker *w, sl_tasklet *t)
{
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->next = t->prev = NULL;
    w->runcount--;
}

/* ---- the switch -------------------------------------------------------- */

void sl__tasklet_prepare(sl_worker *w, sl_tasklet *t); /* first run: stack */
/* Report that t overflowed its stack, by id and name, and abort. */
void sl__overflow_abort(const sl_tasklet *t) __attribute__((noreturn, cold));

/* Switch from `from` (the running tasklet) to `to`, which must already be
 * w->current. Returns when `from` is resumed, with the worker it resumed
 * on. The tasklet that resumes us stores our context through w->prev. */
static inline sl_worker *sl__jump(sl_worker *w, sl_tasklet *from,
                                  sl_tasklet *to)
{
    if (sl_unlikely(!to->ctx))
        sl__tasklet_prepare(w, to);
    if (sl_unlikely(w->stacks.ncanary) && from->stack &&
        !sl__stack_canary_check(&w->stacks, from->stack))
        sl__overflow_abort(from);
    w->prev = from;
#if SL_ASAN
    __sanitizer_start_switch_fiber(&from->asan_fake, to->asan_bottom,
                                   to->asan_size);
#endif
    sl_transfer tr = sl__jump_fcontext(to->ctx, w);
    w = (sl_worker *)tr.data;
    w->prev->ctx = tr.fctx;
#if SL_ASAN
    __sanitizer_finish_switch_fiber(w->current->asan_fake,
                                    &w->prev->asan_bottom,
                                    &w->prev->asan_size);
#endif
    return w;
}

/* The outcome of a blocking call once the caller runs again. */
static inline int sl__resumed(const sl_tasklet *self, int result)
{
    return sl_unlikely(self->killed) ? SL_EKILLED : result;
}

/* ---- leaving the run queue with nothing else runnable ------------------ */

/* The current tasklet is about to block or pause and is alone in the run
 * queue. Returns the tasklet to run instead (main, put back in the run
 * queue, whose pausing call then returns 0), or NULL when the caller must
 * get SL_EDEADLOCK instead of blocking (it is main, or main is itself
 * blocked on a channel, so nothing could ever wake anybody). */
sl_tasklet *sl__idle_block(sl_worker *w);

/* Same for a tasklet that ends: never NULL; when main is blocked on a
 * channel, main is unblocked and its call returns SL_EDEADLOCK. */
sl_tasklet *sl__idle_end(sl_worker *w);

/* Take the current tasklet out of the run queue (it blocks or pauses) and
 * make the next one current. Returns that next tasklet, or NULL (nothing
 * changed) when blocking would deadlock. */
static inline sl_tasklet *sl__rq_leave(sl_worker *w, sl_tasklet *cur)
{
    sl_tasklet *next = cur->next;
    if (sl_unlikely(next == cur)) {
        next = sl__idle_block(w);
        if (!next)
            return NULL;
    }
    sl__rq_unlink(w, cur);
    w->current = next;
    return next;
}

#endif /* SL_SCHED_H */
