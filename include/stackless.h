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
    X(SL_ETIMEDOUT, -10008, "timed out")

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
} sl_config;

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
} sl_spawn_attr;

void sl_spawn_attr_init(sl_spawn_attr *attr);
/* sl_spawn with attributes (attr NULL = defaults). NULL also when
 * attr->worker is out of range. A tasklet pinned to another worker is
 * queued there at once. */
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
int sl_tasklet_remove(sl_tasklet *t);
int sl_tasklet_run(sl_tasklet *t);
int sl_tasklet_switch(sl_tasklet *t);
int sl_tasklet_kill(sl_tasklet *t);

bool sl_tasklet_alive(const sl_tasklet *t);
bool sl_tasklet_blocked(const sl_tasklet *t);
bool sl_tasklet_scheduled(const sl_tasklet *t);
bool sl_tasklet_paused(const sl_tasklet *t);

/* Debugging: a copy of name is kept (at most 31 bytes). */
int sl_tasklet_set_name(sl_tasklet *t, const char *name);
const char *sl_tasklet_name(const sl_tasklet *t);
uint64_t sl_tasklet_id(const sl_tasklet *t);
/* Every live tasklet with its id, name, state and what it waits on. */
void sl_dump(FILE *out);

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
 * message. SL_EINVAL if err >= 0. */
int sl_channel_send_error(sl_channel *ch, int err);

int sl_channel_balance(const sl_channel *ch);
int sl_channel_preference(const sl_channel *ch);
void sl_channel_set_preference(sl_channel *ch, int pref);
bool sl_channel_schedule_all(const sl_channel *ch);
void sl_channel_set_schedule_all(sl_channel *ch, bool on);
void sl_channel_close(sl_channel *ch);
void sl_channel_open(sl_channel *ch);
bool sl_channel_closing(const sl_channel *ch);
bool sl_channel_closed(const sl_channel *ch);

#ifdef __cplusplus
}
#endif

#endif /* STACKLESS_H */
