/* stackless_mp.h - a process pool and cross-process channels over shared
 * memory (included by stackless.h; do not include it alone). See
 * docs/mp.md and the design essay at the top of mp/pool.c.
 *
 * The pool forks worker processes, each running its own tasklet runtime.
 * Tasks and results travel through rings in one shared mapping (made
 * before the first fork, anonymous: nothing is left anywhere after exit,
 * even after a crash). Waiting blocks the calling tasklet, never its
 * thread. A worker that dies fails exactly the task it was running
 * (SL_EWORKERDIED) and is replaced; the other tasks complete. Nothing a
 * task does in its worker (crash, lie about sizes, write over the shared
 * mapping, fork) can crash or hang the parent or overflow a caller's
 * buffer: docs/mp.md, "Failure model".
 *
 * Functions run in the workers are named by their address: workers are
 * forks of the parent, so a function (and any pointer into the shared
 * mapping, e.g. an sl_mpchan) means the same there. Task input and output
 * are bytes, copied. Descriptors are not: a worker keeps only stdin,
 * stdout, stderr and the pool's own.
 */
#ifndef STACKLESS_MP_H
#define STACKLESS_MP_H

#ifdef __cplusplus
extern "C" {
#endif

/* A task: runs in a worker process. in/in_len: the bytes submitted (valid
 * during the call). out: a buffer of *out_len bytes (the pool's
 * max_result_size) on entry; set *out_len to the size of the result (more
 * than it was given fails the task with -EOVERFLOW; a failed task has no
 * result). Returns 0 or a negative code, which reaches the caller. It may spawn
 * tasklets and block on channels and mpchans (the worker runs a tasklet
 * scheduler); one task runs at a time per worker process. */
typedef int (*sl_task_fn)(const void *in, size_t in_len, void *out,
                          size_t *out_len);

typedef struct sl_pool_config {
    int processes;           /* worker processes, 1 .. 256; default: one per
                                online core                              */
    int workers;             /* tasklet worker threads in each, 1 .. 127;
                                default 1                                 */
    size_t max_task_size;    /* largest task input, bytes; default 1 MiB  */
    size_t max_result_size;  /* largest result, bytes; default 64 KiB      */
    int max_tasks_per_child; /* a worker exits after this many tasks and is
                                replaced; 0 (default): never             */
    void (*initializer)(void *arg); /* run once in each worker process, as
                                a tasklet, before its first task; NULL  */
    void *initarg;
    size_t shm_size;         /* shared heap for inputs too large for a
                                ring slot (and for mpchans), bytes;
                                default 64 MiB, rounded up to a power of
                                two; at most 128 GiB                      */
    int queue_depth;         /* task slots per worker process; default
                                1024                                      */
} sl_pool_config;

void sl_pool_config_init(sl_pool_config *cfg);

typedef struct sl_pool sl_pool;
typedef struct sl_future sl_future;

/* Start a pool (forks the workers). Needs the runtime (SL_ESTATE), from a
 * tasklet. SL_EINVAL for a bad config; -errno when memory, descriptors or
 * processes run out. */
int sl_pool_new(sl_pool **out, const sl_pool_config *cfg);

/* Queue fn(in) on the pool; *out gets a future to wait on (free it with
 * sl_future_free). SL_EINVAL for NULL fn/out, in NULL with in_len > 0, or
 * in_len > max_task_size; SL_ECLOSED after sl_pool_close or terminate;
 * SL_ENOMEM. May block the calling tasklet while every queue is full. */
int sl_pool_submit(sl_pool *pool, sl_task_fn fn, const void *in,
                   size_t in_len, sl_future **out);

/* Wait for the task (blocks the calling tasklet) and return its status: the
 * task's own return value, or SL_EWORKERDIED (its process died running
 * it), -EOVERFLOW (it said its result was larger than its buffer),
 * SL_ECLOSED (the pool was terminated first), SL_EKILLED (the caller
 * was killed while waiting: the future stays valid). *out_len holds the
 * capacity of out on entry and the result's size on return; a result
 * larger than the capacity gives -EMSGSIZE and *out_len the size needed
 * (wait again with room). out may be NULL when out_len is NULL or 0. */
int sl_future_wait(sl_future *f, void *out, size_t *out_len);
/* The same with a timeout: SL_ETIMEDOUT, the future stays valid. */
int sl_future_wait_timeout(sl_future *f, void *out, size_t *out_len,
                           int64_t timeout_ms);
/* True once the task has finished (or failed): sl_future_wait then does
 * not block. */
bool sl_future_done(const sl_future *f);
/* Free a future, waited on or not (a task still running completes and its
 * result is discarded). */
void sl_future_free(sl_future *f);

/* Python's apply_async with callbacks: when the task's result arrives,
 * callback(arg, out, out_len) runs in a new tasklet of this process (it
 * may block); if the task fails, error_callback(arg, status) instead (or
 * nothing when it is NULL). Same errors as sl_pool_submit. */
typedef void (*sl_pool_callback)(void *arg, const void *out, size_t out_len);
typedef void (*sl_pool_error_callback)(void *arg, int status);
int sl_pool_apply_async(sl_pool *pool, sl_task_fn fn, const void *in,
                        size_t in_len, sl_pool_callback callback,
                        sl_pool_error_callback error_callback, void *arg);

/* fn over n inputs of in_size bytes each (inputs[i] at inputs + i *
 * in_size), results into outputs[i] (out_size bytes each: a result's
 * capacity; bytes past its size are left as they were), in chunks of
 * chunksize items per task (0: about n / (4 * processes)), queued a few
 * milliseconds of work per worker ahead as results come back (a faster
 * worker takes more chunks). Blocks until all are done. statuses, if not
 * NULL, gets each item's status (-EOVERFLOW for an item that said its
 * result was larger than out_size; a failed item's output is left as it
 * was). Returns 0 when every item returned 0, else the status of the first
 * item (lowest index) that did not. SL_EINVAL for bad sizes (in_size or
 * out_size 0 with n > 0, a chunk larger than max_task_size or
 * max_result_size, n times a size beyond SIZE_MAX). */
int sl_pool_map(sl_pool *pool, sl_task_fn fn, const void *inputs,
                size_t in_size, size_t n, void *outputs, size_t out_size,
                size_t chunksize, int *statuses);

/* Python's imap_unordered: the same work, results handed out as they
 * complete. The inputs are copied before it returns. */
typedef struct sl_pool_iter sl_pool_iter;
int sl_pool_imap_unordered(sl_pool *pool, sl_task_fn fn, const void *inputs,
                           size_t in_size, size_t n, size_t out_size,
                           size_t chunksize, sl_pool_iter **out);
/* The next finished item: *index gets its index, out (out_size bytes) its
 * result, *out_len its size (at most out_size); returns the item's status.
 * SL_ECLOSED when every item has been handed out. Blocks the calling
 * tasklet. */
int sl_pool_iter_next(sl_pool_iter *it, size_t *index, void *out,
                      size_t *out_len);
void sl_pool_iter_free(sl_pool_iter *it);

/* Refuse new tasks (SL_ECLOSED); queued ones still run. */
int sl_pool_close(sl_pool *pool);
/* After close: wait (blocking the tasklet) until every task has finished
 * and every worker has exited. SL_ESTATE if the pool is not closed. */
int sl_pool_join(sl_pool *pool);
/* Stop now: kill the workers; unfinished tasks fail with SL_ECLOSED.
 * Returns once they are gone. */
int sl_pool_terminate(sl_pool *pool);
/* Terminate if needed and free everything (the shared mapping goes with
 * the last process). Its futures and mpchans must not be used after; the
 * pool's handle may be: every pool call then gets SL_EINVAL (handles are
 * generation-checked, also once a new pool has the old one's memory), and
 * freeing it again does nothing. In a worker process no pool handle is
 * live (SL_EINVAL: a task cannot submit to, close or free its pool). */
void sl_pool_free(sl_pool *pool);

/* The pool's worker processes (for a task: which one am I). -1 when the
 * caller is not a worker process. */
int sl_pool_worker_index(void);

/* ---- cross-process channels -------------------------------------------- */

/* A rendezvous channel between tasklets of the pool's processes (the
 * parent and its workers), carrying byte messages of up to max_msg bytes:
 * a send completes when a receiver in any process has taken the message.
 * Created by the parent before or after the workers start (it lives in the
 * shared mapping: pass the pointer to tasks). Blocking blocks the tasklet
 * only: a brief spin, then the process's eventfd. */
typedef struct sl_mpchan sl_mpchan;
int sl_mpchan_new(sl_pool *pool, size_t max_msg, sl_mpchan **out);
/* 0, SL_EINVAL (len > max_msg, NULL, not a live pool's channel),
 * SL_ECLOSED (closed), SL_EKILLED, SL_ESTATE (no runtime, or not a process
 * of its pool). A process that dies mid-copy blocks nobody: the parent puts
 * the channel back as it was before that copy. */
int sl_mpchan_send(sl_mpchan *ch, const void *msg, size_t len);
/* *len: capacity on entry, message size on return (-EMSGSIZE and the size
 * needed if too small: the message stays in the channel; -EOVERFLOW for a
 * message whose length a worker wrote over: it is dropped). */
int sl_mpchan_receive(sl_mpchan *ch, void *buf, size_t *len);
/* Wake every waiter with SL_ECLOSED; later calls get it at once. */
int sl_mpchan_close(sl_mpchan *ch);
/* Parent only, once no process uses it. */
int sl_mpchan_free(sl_mpchan *ch);

#ifdef __cplusplus
}
#endif

#endif /* STACKLESS_MP_H */
