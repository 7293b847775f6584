/* stackless.h - public API of the stackless runtime: tasklets, a round-robin
 * scheduler and rendezvous channels with Stackless Python's semantics.
 *
 * Conventions (see docs/api.md):
 *  - every call that can fail returns int: 0 on success or a negative code;
 *    system errors are -errno, runtime errors are the SL_E* codes below,
 *    which lie outside the errno range;
 *  - calls that need the runtime, made on a thread where sl_init() has not
 *    been called, return SL_ESTATE (sl_spawn/sl_current/sl_main NULL);
 *    channels are plain objects: creating one and its getters and setters
 *    need no runtime;
 *  - bad arguments (NULL, out of range) return SL_EINVAL. A handle used
 *    after its object is gone (a tasklet without a reference after its
 *    end, anything after sl_shutdown) is undefined behaviour, as in C.
 */
#ifndef STACKLESS_H
#define STACKLESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_VERSION_MAJOR 0
#define SL_VERSION_MINOR 1
#define SL_VERSION_PATCH 0

/* ---- errors ------------------------------------------------------------ */

/* X(name, value, message): the one table every error code comes from. */
#define SL_ERRNO_MAP(X)                                                      \
    X(SL_EINVAL, -10001, "invalid argument")                                 \
    X(SL_ENOMEM, -10002, "out of memory")                                    \
    X(SL_ESTATE, -10003, "wrong state for this operation")                   \
    X(SL_ECLOSED, -10004, "channel is closing")                              \
    X(SL_EDEADLOCK, -10005, "deadlock: no tasklet can make progress")        \
    X(SL_EKILLED, -10006, "tasklet was killed")                              \
    X(SL_EWOULDBLOCK, -10007, "operation would block")                       \
    X(SL_ETIMEDOUT, -10008, "timed out")                                     \
    X(SL_EBROKEN, -10009, "barrier is broken")                               \
    X(SL_EWORKERDIED, -10010, "pool worker process died")                    \
    X(SL_ENOTASK, -10011, "task function not registered on this rank")      \
    X(SL_ERANKDIED, -10012, "an MPI rank this call depends on died")

enum {
#define SL__ERR_ENUM(name, value, msg) name = value,
    SL_ERRNO_MAP(SL__ERR_ENUM)
#undef SL__ERR_ENUM
};

/* A message for any code this library returns: an SL_E* code, a -errno
 * value, or 0. Never NULL. */
const char *sl_strerror(int err);
/* The symbolic name of a code ("SL_EINVAL", "ENOENT", "0"); "UNKNOWN" for
 * anything else. Never NULL. */
const char *sl_err_name(int err);

/* ---- runtime ----------------------------------------------------------- */

typedef struct sl_config {
    int workers;       /* OS threads running tasklets, 1 .. 127; default 1;
                          the calling thread is worker 0                  */
    int steal;         /* workers > 1: an idle worker asks a busy one for
                          half of its runnable tasklets (default 1). 0:
                          tasklets stay where they are spawned or woken,
                          so each worker's order is exactly Stackless's   */
    size_t stack_size; /* usable bytes per tasklet stack; default 64 KiB,
                          rounded up to whole pages, raised to 16 KiB,
                          at most 1 GiB (SL_EINVAL above)                 */
    int offload_threads; /* helper OS threads for sl_offload, 1 .. 256;
                          default 4; started on the first sl_offload     */
    int stack_mode;    /* SL_STACK_FIXED (default) or SL_STACK_COPY: how
                          tasklets spawned without a mode get their stack
                          (docs/stacks.md)                               */
} sl_config;

/* Stack modes (sl_config.stack_mode, sl_spawn_attr.stack_mode).
 *   SL_STACK_FIXED  a stack of stack_size bytes of its own per tasklet:
 *                   a blocked tasklet costs at least one 4 KiB page.
 *   SL_STACK_COPY   the tasklet runs on a stack its worker shares; when
 *                   another copy-mode tasklet needs it, the frames in use
 *                   are saved to a right-sized heap buffer (and copied back
 *                   when it resumes). A blocked tasklet costs the bytes its
 *                   frames use. It stays on the worker that first ran it.
 *                   CAVEAT: a pointer to a local variable of a copy-mode
 *                   tasklet is valid only while that tasklet runs: do not
 *                   send &local through a channel, give it to sl_spawn or
 *                   sl_offload, or keep it anywhere another tasklet or
 *                   thread reads it (debug builds abort on a channel send,
 *                   spawn or offload of such a pointer).
 * SL_STACK_DEFAULT (0) in an attribute means the runtime's mode. */
#define SL_STACK_DEFAULT 0
#define SL_STACK_FIXED 1
#define SL_STACK_COPY 2

void sl_config_init(sl_config *cfg);

/* Start the runtime on the calling thread, which becomes the main tasklet.
 * cfg NULL means defaults. SL_ESTATE if already initialised on this thread
 * or on another; SL_EINVAL for a bad config. */
int sl_init(const sl_config *cfg);

/* Free everything the runtime owns. Tasklets still blocked, paused or
 * runnable are discarded without running again. Must be called by the main
 * tasklet (SL_ESTATE otherwise). Channels are not owned by the runtime: free
 * them yourself (after shutdown, sl_channel_free of a channel that had
 * waiters succeeds because the waiters are gone). */
int sl_shutdown(void);

/* Called by main: run tasklets until no tasklet other than main is runnable,
 * then return 0. Tasklets still blocked stay blocked. SL_ESTATE if called by
 * a tasklet other than main. */
int sl_run(void);

/* ---- tasklets ---------------------------------------------------------- */

typedef struct sl_tasklet sl_tasklet;
typedef void (*sl_fn)(void *arg);

/* Stackless's watchdog, run(timeout): like sl_run, main runs the other
 * tasklets, but only until the run queue is empty (tasklets waiting for
 * timers or descriptors do not keep it: those due are run first) or the
 * budget is spent: budget_ns nanoseconds on the monotonic clock, or
 * `switches` scheduling points of tasklets (0: no limit of that kind;
 * both 0: until the run queue is empty). The budget is looked at when a
 * tasklet switches (yields, blocks, hands over, runs another, ends): once
 * it is spent, the next tasklet that switches and is not atomic
 * (sl_tasklet_set_atomic) is taken out of the run queue (paused) if it was
 * still in it, *interrupted gets it (NULL otherwise) and main runs again;
 * insert it to let it go on. *interrupted holds a reference (Stackless's
 * run() returns the tasklet object): the caller drops it with
 * sl_tasklet_unref, and the handle stays valid until then even if the
 * tasklet is killed or ends first. Cooperative: a tasklet that never switches
 * is never interrupted. With several workers it watches main's worker
 * (worker 0) only. Returns 0 (the queue ran dry), 1 (the budget was
 * spent), SL_ESTATE (no runtime, not main), SL_EINVAL (budget_ns < 0),
 * or a throw to main. interrupted may be NULL. */
int sl_run_for(int64_t budget_ns, uint64_t switches,
               sl_tasklet **interrupted);

/* A new tasklet running fn(arg), appended to the end of the run queue. It
 * gets its stack when it first runs. NULL when fn is NULL, the runtime is
 * not initialised, or memory / mappings are exhausted (the runtime keeps
 * working). The handle is valid while the tasklet is alive; take a reference
 * with sl_tasklet_ref() to use it after the tasklet ends. */
sl_tasklet *sl_spawn(sl_fn fn, void *arg);

/* Spawn attributes (sl_spawn_ex). Initialise with sl_spawn_attr_init. */
typedef struct sl_spawn_attr {
    int worker;       /* -1 (default): any worker, the tasklet may migrate;
                         0 .. workers-1: pinned, it only ever runs there
                         (for code that is thread-affine)                */
    const char *name; /* copied as with sl_tasklet_set_name, or NULL     */
    int stack_mode;   /* SL_STACK_DEFAULT (sl_config's), SL_STACK_FIXED or
                         SL_STACK_COPY                                   */
    int paused;       /* nonzero: created paused, in no queue (Stackless's
                         tasklet(f) bound but not scheduled): alive and
                         paused until sl_tasklet_insert, _run, _switch or
                         a throw (a pending one schedules it)           */
} sl_spawn_attr;

void sl_spawn_attr_init(sl_spawn_attr *attr);
/* sl_spawn with attributes (attr NULL = defaults). NULL also when
 * attr->worker or attr->stack_mode is out of range. A tasklet pinned to
 * another worker is queued there at once. */
sl_tasklet *sl_spawn_ex(const sl_spawn_attr *attr, sl_fn fn, void *arg);

void sl_tasklet_ref(sl_tasklet *t);
void sl_tasklet_unref(sl_tasklet *t);

sl_tasklet *sl_current(void);
sl_tasklet *sl_main(void);
/* Runnable tasklets of the calling worker, including the current one. */
int sl_getruncount(void);
/* Live tasklets other than main (new, runnable, blocked or paused). */
int sl_getlivecount(void);

/* The index (0 .. workers-1) of the worker running the caller; main runs
 * on worker 0. A tasklet may move between workers at any blocking call, so
 * this is a snapshot (and thread-local variables are per worker, not per
 * tasklet). */
int sl_worker_index(void);
/* sl_config.workers of the running runtime. */
int sl_worker_count(void);

/* Yield: the current tasklet goes to the end of the run queue and the next
 * one runs. 0, or SL_EKILLED if the caller is (or gets) killed. */
int sl_schedule(void);
/* Like sl_schedule, but the caller leaves the run queue (paused) until
 * someone inserts it again. SL_EDEADLOCK if nothing else could ever run it. */
int sl_schedule_remove(void);

int sl_tasklet_insert(sl_tasklet *t);
/* A dead tasklet: 0, as Stackless (it is in no queue). */
int sl_tasklet_remove(sl_tasklet *t);
int sl_tasklet_run(sl_tasklet *t);
int sl_tasklet_switch(sl_tasklet *t);
/* sl_tasklet_throw(t, SL_EKILLED, 0): every later blocking call of t
 * returns SL_EKILLED. */
int sl_tasklet_kill(sl_tasklet *t);

/* Stackless's tasklet.throw: t's current blocking call (or, if it is not
 * in one, its next) returns err, a negative code of the caller's choosing,
 * once; SL_EKILLED is a kill, which is sticky. A tasklet that never ran
 * dies without running its function. Without SL_THROW_PENDING t runs at
 * once when it can run on the caller's worker (like sl_tasklet_run); with
 * it t is only made runnable. A pending kill (Stackless's
 * kill(pending=True)) is sl_tasklet_throw(t, SL_EKILLED, SL_THROW_PENDING).
 * t the caller: returns err at once. 0, or SL_EINVAL (err >= 0, bad flags,
 * a kill of main), SL_ESTATE (t is dead and err is not SL_EKILLED), the
 * caller's own pending error. */
#define SL_THROW_PENDING 1
int sl_tasklet_throw(sl_tasklet *t, int err, int flags);

/* Stackless's tasklet.next / .prev, for tools and tests. t runnable on
 * the caller's worker: its neighbour in that run queue (a circle: a
 * tasklet alone is its own); t waiting in a channel's or sync object's
 * queue (not a select): its neighbour there, NULL past either end;
 * anything else (paused, dead, runnable on another worker, sleeping...):
 * NULL. With several workers the answer is a snapshot (the neighbour may
 * move or end at once: its handle is valid only while it lives); t may
 * move on and the object it waited on be freed meanwhile: the free waits
 * for this call (docs/tasklet.md). */
sl_tasklet *sl_tasklet_next(const sl_tasklet *t);
sl_tasklet *sl_tasklet_prev(const sl_tasklet *t);

bool sl_tasklet_alive(const sl_tasklet *t);
bool sl_tasklet_blocked(const sl_tasklet *t);
bool sl_tasklet_scheduled(const sl_tasklet *t);
bool sl_tasklet_paused(const sl_tasklet *t);

/* Stackless's set_atomic: while on, sl_run_for's budget never interrupts
 * t (it still switches when it yields or blocks). Returns the old value
 * (0 or 1), or SL_EINVAL for NULL. */
int sl_tasklet_set_atomic(sl_tasklet *t, bool on);

/* Debugging: a copy of name is kept (at most 31 bytes). */
int sl_tasklet_set_name(sl_tasklet *t, const char *name);
const char *sl_tasklet_name(const sl_tasklet *t);
uint64_t sl_tasklet_id(const sl_tasklet *t);
/* Every live tasklet with its id, name, state and what it waits on. */
void sl_dump(FILE *out);

/* Copy-stack counters since sl_init, summed over the workers (a snapshot
 * while they run). 0, SL_EINVAL for NULL, SL_ESTATE without a runtime. */
typedef struct sl_stack_stats {
    uint64_t saves;          /* frames of a copy-mode tasklet copied out   */
    uint64_t restores;       /* frames copied back onto the shared stack   */
    uint64_t bytes_saved;    /* bytes copied out, in all                   */
    uint64_t bytes_restored; /* bytes copied back, in all                  */
    uint64_t in_place;       /* resumes that found their frames still on
                                the shared stack (nothing copied)          */
    uint64_t buffer_bytes;   /* heap bytes saved stacks hold now           */
    uint64_t arena_bytes;    /* bytes mapped for saved stacks              */
} sl_stack_stats;
int sl_stack_stats_get(sl_stack_stats *out);

/* ---- channels ---------------------------------------------------------- */

typedef struct sl_channel sl_channel;

sl_channel *sl_channel_new(void);
/* SL_ESTATE while tasklets wait on it; SL_EINVAL for NULL. */
int sl_channel_free(sl_channel *ch);

int sl_channel_send(sl_channel *ch, void *msg);
int sl_channel_receive(sl_channel *ch, void **msg);
int sl_channel_try_send(sl_channel *ch, void *msg);
int sl_channel_try_receive(sl_channel *ch, void **msg);
/* Like send, but the receiver's receive returns err (< 0) instead of a
 * message. SL_EINVAL if err >= 0 or err is INT_MIN (reserved). */
int sl_channel_send_error(sl_channel *ch, int err);

/* Stackless's send_sequence: sends msgs[0..n-1] in turn, each as
 * sl_channel_send. Returns n; or, when a send fails, that error if it was
 * the first, else the number sent before it (a thrown error that stopped
 * it is then returned by the caller's next blocking call). SL_EINVAL for
 * NULL or n > INT_MAX. */
int sl_channel_send_sequence(sl_channel *ch, void *const *msgs, size_t n);

/* Iterating a channel, as Stackless's `for x in ch`: receive until it is
 * closed (closing, no sender waiting, nothing buffered). The body runs
 * once per message with msg (a pointer variable of any type) set to it;
 * after the loop rc is SL_ECLOSED when the channel was closed, else the
 * error that ended it (the caller killed or thrown at, a deadlock, a
 * sender's send_error code). */
#define SL_CHANNEL_FOREACH(ch, msg, rc)                                      \
    for (void *sl__msg_; ((rc) = sl_channel_receive((ch), &sl__msg_)) == 0 && \
                         ((msg) = sl__msg_, 1);)

/* The first tasklet waiting on ch (Stackless's channel.queue; follow the
 * queue with sl_tasklet_next), or NULL. A snapshot, for tools and tests;
 * see sl_tasklet_next. */
sl_tasklet *sl_channel_queue(const sl_channel *ch);

int sl_channel_balance(const sl_channel *ch);
int sl_channel_preference(const sl_channel *ch);
void sl_channel_set_preference(sl_channel *ch, int pref);
bool sl_channel_schedule_all(const sl_channel *ch);
void sl_channel_set_schedule_all(sl_channel *ch, bool on);
void sl_channel_close(sl_channel *ch);
void sl_channel_open(sl_channel *ch);
bool sl_channel_closing(const sl_channel *ch);
bool sl_channel_closed(const sl_channel *ch);

/* Buffered channel: a send completes without a receiver while fewer than
 * capacity messages are queued (FIFO); capacity 0 is sl_channel_new().
 * NULL when out of memory or capacity > SL_CHANNEL_MAX_CAPACITY. */
#define SL_CHANNEL_MAX_CAPACITY ((size_t)1 << 30)
sl_channel *sl_channel_new_buffered(size_t capacity);
/* The capacity given at creation (0 for a rendezvous channel). */
size_t sl_channel_capacity(const sl_channel *ch);
/* Messages queued in the buffer now (0 for a rendezvous channel). */
size_t sl_channel_count(const sl_channel *ch);

/* ---- time -------------------------------------------------------------- */

/* Timeouts are in milliseconds: -1 (any negative) waits forever, 0 only
 * tries, > 0 waits at most that long. Expiry is measured on the monotonic
 * clock. */

/* Milliseconds on the monotonic clock (CLOCK_MONOTONIC); needs no runtime. */
int64_t sl_now_ms(void);
/* The calling tasklet sleeps at least ms milliseconds while others run;
 * ms <= 0 yields like sl_schedule. 0, or SL_EKILLED (at once when killed
 * while sleeping), SL_ESTATE without a runtime. */
int sl_sleep_ms(int64_t ms);

/* sl_channel_send / receive that give up after timeout_ms: SL_ETIMEDOUT,
 * and the channel's balance is then as if the call never blocked. */
int sl_channel_send_timeout(sl_channel *ch, void *msg, int64_t timeout_ms);
int sl_channel_receive_timeout(sl_channel *ch, void **msg,
                               int64_t timeout_ms);

/* ---- select ------------------------------------------------------------ */

#define SL_SEND 1
#define SL_RECV 2

typedef struct sl_select_case {
    sl_channel *ch; /* the channel; NULL: the case is ignored             */
    int op;         /* SL_SEND: send value; SL_RECV: receive into value   */
    void *value;
} sl_select_case;

/* Wait until one case can complete, complete it, and return its index.
 * When several are ready, the first in array order wins (see
 * docs/select.md). SL_ETIMEDOUT after timeout_ms; SL_ECLOSED when every
 * case's channel is closing and none is ready; a received send_error's
 * code; SL_EKILLED, SL_EDEADLOCK as for a channel call; SL_EINVAL for a
 * bad op, n < 0 or > SL_SELECT_MAX, or one channel used both to send and
 * to receive. */
#define SL_SELECT_MAX 1024
int sl_select(sl_select_case *cases, int n, int64_t timeout_ms);

/* ---- tasklet I/O ------------------------------------------------------- */

#define SL_READABLE 1
#define SL_WRITABLE 2

/* Park the calling tasklet until fd is ready for events (SL_READABLE |
 * SL_WRITABLE) or timeout_ms passes; its worker runs other tasklets and
 * waits in epoll when it has nothing else. Returns the ready events (> 0;
 * an error or hang-up on fd counts as every requested event), or
 * SL_ETIMEDOUT, SL_EKILLED, SL_EINVAL, -errno from epoll (-EPERM for a
 * regular file: it is always ready, so use it directly or sl_offload). */
int sl_wait_fd(int fd, int events, int64_t timeout_ms);

/* read(2), write(2), accept4(2), connect(2) on a non-blocking descriptor,
 * parking the tasklet while the call would block. They return what the
 * system call returns, with -errno instead of -1/errno; sl_accept's new
 * descriptor is non-blocking and close-on-exec; sl_connect returns 0 once
 * connected or the connection's error. SL_EKILLED when killed while
 * parked. */
ssize_t sl_read(int fd, void *buf, size_t len);
ssize_t sl_write(int fd, const void *buf, size_t len);
int sl_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);
int sl_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
/* close(2) that also tells the runtime: the calling worker drops its
 * epoll registration of fd, and every worker registers the number afresh
 * when it is next waited on. 0 or -errno. No tasklet may be waiting on fd. */
int sl_close(int fd);

/* Run fn(arg) on one of the runtime's helper OS threads (the offload pool,
 * sl_config.offload_threads) while the calling tasklet parks and others
 * run: for calls that block with no non-blocking form (files,
 * getaddrinfo, blocking libraries). 0 once fn has returned; SL_EKILLED if
 * the tasklet was killed meanwhile (fn cannot be interrupted: the call
 * still returns only after fn has, so arg may live on the caller's
 * stack); SL_EINVAL for a NULL fn; -errno if a helper thread cannot be
 * started. fn must not call the runtime. */
int sl_offload(void (*fn)(void *), void *arg);

/* ---- seeing inside: callbacks and the trace (docs/trace.md) ----------- */

/* Stackless's set_schedule_callback: cb(prev, next) is called on the worker
 * that switches, right before every switch: prev is the tasklet that stops
 * running (it may be ending), next the one that runs; either is NULL for
 * the worker's idle loop (nothing to run). NULL turns it off. Returns the
 * callback it replaces. One per process; it may be set with or without a
 * runtime. The callback must not switch, block or use a channel: from a
 * callback, throw, kill, run, switch, insert, remove, schedule_remove,
 * sl_run_for, sl_shutdown, channel calls and sl_select return SL_ESTATE;
 * sl_schedule, blocking calls and sync objects abort (docs/trace.md has
 * the whole list). */
typedef void (*sl_schedule_cb)(sl_tasklet *prev, sl_tasklet *next);
sl_schedule_cb sl_set_schedule_callback(sl_schedule_cb cb);
sl_schedule_cb sl_get_schedule_callback(void);

/* Stackless's set_channel_callback: cb(ch, t, sending, willblock) is called
 * at the start of every send or receive on a channel (the try_, timeout and
 * send_error forms too; not sl_select), by the tasklet t making it, before
 * anything happens; willblock: no partner waits and no buffered message or
 * room serves it, so the call will block (or fail, if it may not). NULL
 * turns it off; returns the callback it replaces. */
typedef void (*sl_channel_cb)(sl_channel *ch, sl_tasklet *t, bool sending,
                              bool willblock);
sl_channel_cb sl_set_channel_callback(sl_channel_cb cb);
sl_channel_cb sl_get_channel_callback(void);

/* Record what every worker runs into path as Chrome Trace Event JSON
 * (chrome://tracing, ui.perfetto.dev): a track per worker, a slice per run
 * of a tasklet, instants for spawn, block, wake, timer, io, kill, and
 * arrows from a partner to the tasklet it woke. SL_TRACE=path in the
 * environment starts one at sl_init. 0; SL_EINVAL for NULL; SL_ESTATE
 * without a runtime or with a trace running; -errno if path cannot be
 * opened; SL_ENOMEM. */
int sl_trace_start(const char *path);
/* Finish the trace (sl_shutdown and exit do too). 0; SL_ESTATE without a
 * runtime or a trace; -errno if a write failed; SL_ENOMEM if events were
 * dropped for want of memory. */
int sl_trace_stop(void);

#ifdef __cplusplus
}
#endif

/* Locks, semaphores, events, conditions, barriers and queues for tasklets. */
#include "stackless_sync.h"
/* The process pool and cross-process channels. */
#include "stackless_mp.h"

#endif /* STACKLESS_H */
