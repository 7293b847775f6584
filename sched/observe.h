/* observe.h - seeing inside (private): the flag the hot paths test and the
 * hooks they call while it is set, for the schedule and channel callbacks
 * (sched/observe.c) and the trace (sched/trace.c).
 *
 * What it costs when nothing watches. A switch pays nothing more: a
 * callback or the trace sets SL_JS_OBSERVE in every worker's jump_slow
 * byte, which the switch tests already (sched.h), and sl__jump_slow sends
 * the switch through sl__obs_switch before it jumps. A channel operation
 * tests one byte that also says "several workers" (sl__chan_slow,
 * sched.h) for the channel callback, and where it completes a partner's
 * wait, sl__observe for the trace; a spawn and a woken wait's slow paths
 * test sl__observe. One predictable branch each; everything behind it is
 * out of line.
 *
 * Hooks run on the thread of the worker that acts (sl__self()); a thread
 * that is not a worker (an offload helper ending its call) records
 * nothing. */
#ifndef SL_OBSERVE_H
#define SL_OBSERVE_H

#include "sched/sched.h"

/* What watches: bits of sl__observe. */
enum {
    SL_OBS_TRACE = 1,    /* a trace is being written (sl_trace_start)       */
    SL_OBS_SCHED_CB = 2, /* sl_set_schedule_callback                        */
    SL_OBS_CHAN_CB = 4,  /* sl_set_channel_callback                         */
};
/* (relaxed reads; written under the observe lock) */
extern uint8_t sl__observe;

static inline bool sl__obs_tracing(void)
{
    return sl_unlikely(SL_PEEK(&sl__observe) & SL_OBS_TRACE);
}

/* Why a woken tasklet's wait ended (the trace's wake events). */
enum sl_obs_cause {
    SL_OBS_SEND = 1,  /* a partner sent to it (a channel receive completed) */
    SL_OBS_RECV,      /* a partner received from it (a send completed)      */
    SL_OBS_SYNC,      /* a sync object handed it what it waited for         */
    SL_OBS_TIMER,     /* its deadline passed (a timeout, a sleep's end)     */
    SL_OBS_IO,        /* its descriptor is ready (or went away)             */
    SL_OBS_KILL,      /* sl_tasklet_kill                                    */
    SL_OBS_DEADLOCK,  /* nothing could ever end it                          */
};

/* ---- hooks (called only while sl__observe or SL_JS_OBSERVE is set) ---- */

/* The switch from `from` to `to` on w (ends: from ends) for the trace,
 * and for the callbacks (observe.c). */
void sl__trace_switch(sl_worker *w, sl_tasklet *from, sl_tasklet *to,
                      bool ends);
void sl__obs_cb_switch(sl_tasklet *from, sl_tasklet *to);

/* Before the switch from `from` to `to` on w (to is w->current already),
 * or (ends) before the current tasklet `from` ends, `to` running next
 * (tasklet_end: from's block is still there). Either may be w's idle
 * context. */
static inline void sl__obs_switch(sl_worker *w, sl_tasklet *from,
                                  sl_tasklet *to, bool ends)
{
    uint8_t o = SL_LOAD(&sl__observe);
    if (o & SL_OBS_TRACE) {
        if (SL_LOAD(&w->trace_skip) == to) /* (recorded with its wake) */
            SL_STORE(&w->trace_skip, NULL);
        else
            sl__trace_switch(w, from, to, ends);
    }
    if (o & (SL_OBS_SCHED_CB | SL_OBS_CHAN_CB))
        sl__obs_cb_switch(from, to);
}
/* t was spawned by w's current tasklet. */
void sl__obs_spawn(sl_worker *w, sl_tasklet *t);
/* A partner completed t's wait (cause SL_OBS_SEND/RECV on channel `on`,
 * SL_OBS_SYNC on wait queue `on`): before t is made runnable. switching:
 * w's next switch is to t, from the tasklet running now, which stays
 * runnable (a channel's partner preference). True if the trace recorded
 * that switch too: w->trace_skip is t, and sl__obs_switch will not
 * record it again. */
bool sl__obs_wake(sl_worker *w, sl_tasklet *t, int cause, const void *on,
                  bool switching);
/* A claimer that is not a partner ended t's wait with result (timer,
 * descriptor, kill, deadlock): before t is made runnable. */
void sl__obs_wait_end(sl_tasklet *t, int result);
/* w's current tasklet kills t. */
void sl__obs_kill(sl_worker *w, sl_tasklet *t);
/* t's name changed. */
void sl__obs_name(sl_tasklet *t);
/* The channel callback, if one is set, for an operation of the current
 * tasklet cur on ch. SL_ESTATE if the caller is itself a callback (which
 * may not use channels), else 0. */
int sl__obs_channel(sl_channel *ch, sl_tasklet *cur, bool sending,
                    bool willblock);

/* The calling thread runs a schedule or channel callback now. Calls a
 * callback may not make test it (observe.c says which): not on the hot
 * paths, which catch a callback where it switches instead. */
extern __thread uint8_t sl__obs_in_cb __attribute__((tls_model("initial-exec")));
static inline bool sl__obs_in_callback(void)
{
    return sl_unlikely(sl__obs_in_cb != 0);
}
/* A callback switched, or used what it may not: abort with the message. */
void sl__obs_cb_misuse(void) __attribute__((noreturn, cold));

/* sl_init, once its workers exist: the environment (SL_TRACE,
 * SL_DUMP_SIGQUIT) and the workers' SL_JS_OBSERVE bits. */
void sl__obs_init(void);
/* sl_shutdown, before the workers go: the trace is stopped. */
void sl__obs_shutdown(void);
/* A forked child of a running runtime: forget the trace (its writer
 * thread did not survive the fork). */
void sl__obs_fork_child(void);

/* Every live tasklet with its state, to fd, with write(2) only: the
 * SIGQUIT dump (tasklet/tasklet.c). why opens the first line. */
void sl__dump_fd(int fd, const char *why);

/* ---- the trace (sched/trace.c) ------------------------------------------ */

/* Stop the trace if one runs (sl_shutdown, exit): 0, or SL_ESTATE when
 * none runs, or sl_trace_stop's errors. */
int sl__trace_stop_any(void);
void sl__trace_fork_child(void);
/* A trace the environment asked for (SL_TRACE): start it. */
void sl__trace_from_env(void);
/* Each worker's SL_JS_OBSERVE bit from sl__observe (observe.c). */
void sl__obs_jump_bits(void);

#endif /* SL_OBSERVE_H */
