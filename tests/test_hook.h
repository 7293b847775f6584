/* test_hook.h - stop a thread inside the runtime at a chosen libc call, so
 * that a cross-worker window (a tasklet between "am I killed?" and parking)
 * is hit on purpose, not by luck.
 *
 * test_hook.c defines clock_gettime, epoll_ctl, pthread_create and
 * pthread_mutex_lock in the test executable: the library is linked
 * statically into it, so its calls bind to these, which pass every call
 * on to the real function (found with dlsym(RTLD_NEXT): libc, or a
 * sanitizer's interceptor). Armed for one thread, the hook stops that
 * thread's next call of the chosen function: it marks the stop reached and
 * spins (no scheduling point, no lock) until the test releases it, then
 * makes the real call. One hook at a time.
 *
 * Where the runtime calls them (what a stop there means):
 *   clock_gettime  sl__deadline/sl__now_ns: a wait with a timeout computes
 *                  its deadline after its kill check and before it parks
 *                  (sl_sleep_ms, timed channel and wait-queue waits, timed
 *                  select); a timer tick (run_timers) at a scheduling point
 *                  of a worker with timers armed. Also the idle loop's spin.
 *   epoll_ctl      sl_wait_fd registering (or re-checking) a descriptor,
 *                  after its kill check and before it parks.
 *   pthread_create sl_offload's first call starting the helper pool, with
 *                  the pool's start lock held.
 *   pthread_mutex_lock  the runtime lock (sl__rt.lock) among others; a
 *                  parked worker's first call after the events that woke
 *                  it (sched/worker.c idle_loop) is that lock, taken to
 *                  stop counting itself idle.
 * The hook file must be one of the executable's own sources (an object,
 * not an archive member), or the library's calls would bind to libc. */
#ifndef SL_TEST_HOOK_H
#define SL_TEST_HOOK_H

#include <stdbool.h>

#include "stackless.h"

enum tu_hook_fn {
    TU_HOOK_NONE = 0,
    TU_HOOK_CLOCK_GETTIME,
    TU_HOOK_EPOLL_CTL,
    TU_HOOK_PTHREAD_CREATE,
    TU_HOOK_PTHREAD_MUTEX_LOCK,
};

/* The calling thread's id (gettid). */
long tu_tid(void);

/* Stop the (skip + 1)-th call of fn made by thread tid from now on. */
void tu_hook_arm(enum tu_hook_fn fn, long tid, int skip);
/* Disarm without stopping anything (a test that did not reach it). */
void tu_hook_disarm(void);
/* Spin until the armed thread is stopped (true), or timeout_ms passed. */
bool tu_hook_wait_reached(int timeout_ms);
/* Let the stopped thread go on (it also goes on by itself 3 s after it
 * stopped, so that a test that fails, or a fixed runtime whose kill waits
 * for its target to settle, cannot hang a worker forever). */
void tu_hook_release(void);
/* Calls of fn made by thread tid since tu_hook_count_start (counting does
 * not stop anything). */
void tu_hook_count_start(enum tu_hook_fn fn, long tid);
int tu_hook_count(void);

/* Busy-wait (no scheduling point, no lock) until *flag != 0 or timeout_ms
 * passed: orders steps across workers without letting this worker switch.
 * True if the flag was seen set. */
bool tu_spin_until(const int *flag, int timeout_ms);
/* The same with relaxed loads, which order nothing for ThreadSanitizer: for
 * a test of a data race, whose two threads must not synchronise through
 * the test's own flags (the flag's setter stores it relaxed too). */
bool tu_spin_until_relaxed(const int *flag, int timeout_ms);

/* ---- a kill inside the window of a blocking call ------------------------ */

/* The pattern of issue 13's lost-kill tests: a tasklet pinned to worker 1
 * calls tu_window_enter(fn, skip) right before a blocking call, which arms
 * the hook for its own thread; main (worker 0) calls tu_kill_at_stop(t):
 * it waits for the stop (the tasklet has passed its kill check and not yet
 * parked), kills it there and releases it. Returns sl_tasklet_kill's code,
 * or TU_NO_STOP when the stop was not reached within 10 s (the hook is
 * disarmed then). */
#define TU_NO_STOP (-99999)
void tu_window_enter(enum tu_hook_fn fn, int skip);
int tu_kill_at_stop(sl_tasklet *t);
/* The whole pattern: spawn fn(arg) pinned to worker 1, kill it at its stop,
 * run until nothing can run (asserting it ended). Returns the kill's code;
 * fn records what its blocking call returned. */
int tu_kill_in_window(sl_fn fn, void *arg);
/* The same with sl_tasklet_throw(t, err, flags) for the kill. */
int tu_throw_at_stop(sl_tasklet *t, int err, int flags);
int tu_throw_in_window(sl_fn fn, void *arg, int err, int flags);

/* ---- small helpers of the cross-worker tests ----------------------------- */

/* sl_spawn_ex pinned to worker (asserts it spawned). */
sl_tasklet *tu_spawn_pinned(int worker, sl_fn fn, void *arg);
/* Acquire load and release store of an int shared across workers. */
static inline int tu_ld(const int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void tu_st(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

#endif /* SL_TEST_HOOK_H */
