/* stackless_mpi.h - tasklets over MPI: a process pool whose workers are MPI
 * ranks, and rendezvous channels between tasklets of different ranks
 * (libstackless_mpi.a; needs libstackless.a and an MPI library). See
 * docs/distributed.md and the design essay at the top of mpi/engine.c.
 *
 * A program is started with mpirun; every rank runs the same executable,
 * calls sl_init() and then sl_mpi_init() on its main thread, and ends with
 * sl_mpi_finalize() before sl_shutdown(). The pool's caller is rank 0; the
 * other ranks serve its tasks inside sl_mpi_pool_new(), which returns on
 * them when the pool ends (with *out NULL).
 *
 * Every MPI call of the library is made by one tasklet per rank, pinned to
 * worker 0 (the thread that called sl_init and MPI_Init): MPI needs only
 * MPI_THREAD_FUNNELED. Waiting parks the calling tasklet only; an idle
 * rank sleeps in epoll and uses no CPU (a peer on the same node rings it
 * through a datagram socket when it sends to a sleeping rank).
 *
 * Errors are the library's usual 0 or negative codes (stackless.h);
 * SL_ENOTASK and SL_ERANKDIED are the ones this part adds.
 */
#ifndef STACKLESS_MPI_H
#define STACKLESS_MPI_H

#include <stackless.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- start and stop ---------------------------------------------------- */

typedef struct sl_mpi_config {
    size_t max_msg_size; /* largest channel message, bytes; default 1 MiB,
                            at most 1 GiB                                */
    int spin_us;         /* after its last message the progress tasklet
                            keeps polling this long before it sleeps;
                            0 .. 1000000, default 50                      */
    int poll_ms;         /* longest sleep between two polls while nothing
                            can ring this rank awake (a peer on another
                            node, or a request of ours in flight); 1 ..
                            10000, default 10                             */
} sl_mpi_config;

void sl_mpi_config_init(sl_mpi_config *cfg);

/* Start the MPI layer on this rank. Called by main (worker 0 of a running
 * runtime) on every rank. Initialises MPI (MPI_Init_thread, asking for
 * MPI_THREAD_FUNNELED) unless the program already did, in which case the
 * program keeps the duty to call MPI_Finalize after sl_mpi_finalize. argc
 * and argv go to MPI_Init_thread and may be NULL. Collective over
 * MPI_COMM_WORLD: every rank must call it. SL_ESTATE: no runtime, not
 * main, already started, MPI already finalised, or MPI provides less than
 * MPI_THREAD_FUNNELED (or this is not its main thread); SL_EINVAL: a bad
 * config; SL_ENOMEM; -EIO: an MPI call failed. */
int sl_mpi_init(int *argc, char ***argv, const sl_mpi_config *cfg);

/* Stop it. Called by main on every rank (collective). Closes the channels
 * homed on this rank (waiters get SL_ECLOSED), waits for this rank's
 * remote operations to be answered, keeps answering the other ranks until
 * every live rank has reached sl_mpi_finalize, then frees its MPI objects
 * and calls MPI_Finalize if sl_mpi_init called MPI_Init. A pool still
 * live on rank 0 is terminated and freed first. SL_ESTATE: not started, or
 * not called by main. */
int sl_mpi_finalize(void);

/* Park the caller until every message this rank has queued has been
 * handed to MPI and sent (answers owed to other ranks included). For a
 * program that also calls blocking MPI functions itself: a tasklet that
 * blocks the thread in MPI_Recv stops this rank's progress, and a peer
 * still waiting for our answer would wait with it. 0, SL_ESTATE,
 * SL_EKILLED. */
int sl_mpi_flush(void);

/* This rank (0 .. size-1) and the number of ranks; -1 before
 * sl_mpi_init. */
int sl_mpi_rank(void);
int sl_mpi_size(void);

/* Counters of this rank's progress tasklet since sl_mpi_init (a
 * snapshot: it keeps counting while they are read). */
typedef struct sl_mpi_stats {
    uint64_t msgs_sent, msgs_received; /* MPI messages                   */
    uint64_t records_bundled; /* messages that left in a bundle with
                                 others to the same rank (one MPI message) */
    uint64_t polls;        /* passes over MPI (each an MPI_Improbe at least) */
    uint64_t sleeps;       /* times the progress tasklet went to sleep      */
    uint64_t rings_sent;   /* doorbells rung: a peer slept when we sent     */
    uint64_t rings_received;
    uint64_t timed_wakes;  /* sleeps ended by their timeout, not a ring     */
    uint64_t late_wakes;   /* of those, ones that found a message that no
                              doorbell announced (another node's, or the
                              bytes of a large one)                     */
    uint64_t ranks_died;   /* ranks seen dead (same node: their pidfds)     */
} sl_mpi_stats;
/* 0, SL_EINVAL for NULL, SL_ESTATE before sl_mpi_init. */
int sl_mpi_stats_get(sl_mpi_stats *out);

/* ---- task functions, named across ranks --------------------------------- */

/* Register fn under name on this rank. Tasks travel by name (a 64-bit hash
 * of it), never by address: every rank must register the same names, and
 * a rank asked to run a name it does not know fails that task with
 * SL_ENOTASK. Needs no runtime and no MPI (SL_MPI_TASK registers from a
 * constructor, before main). The same name and function again is a no-op.
 * SL_EINVAL: NULL, an empty name or one of 64 bytes or more, or a name or
 * function already registered with another partner (or two names with
 * the same hash); SL_ENOMEM. */
int sl_mpi_task_register(const char *name, sl_task_fn fn);

/* Registers fn under its own name when the program starts, on every rank
 * (the same executable runs everywhere). Use at file scope after fn. */
#define SL_MPI_TASK(fn)                                                      \
    __attribute__((constructor)) static void sl__mpi_register_##fn(void)     \
    {                                                                        \
        (void)sl_mpi_task_register(#fn, fn);                                 \
    }

/* ---- the pool over ranks ------------------------------------------------ */

typedef struct sl_mpi_pool_config {
    size_t max_task_size;   /* largest task input, bytes; default 1 MiB     */
    size_t max_result_size; /* largest result, bytes; default 64 KiB       */
    int tasks_per_rank;     /* tasks sent ahead to a serving rank, 1 ..
                               65536; default 64 (the rest wait on rank 0) */
    void (*initializer)(void *arg); /* run on each serving rank, in its
                               serving tasklet, before its first task      */
    void *initarg;
} sl_mpi_pool_config;

void sl_mpi_pool_config_init(sl_mpi_pool_config *cfg);

typedef struct sl_mpi_pool sl_mpi_pool;
typedef struct sl_mpi_future sl_mpi_future;
typedef struct sl_mpi_pool_iter sl_mpi_pool_iter;

/* Collective: every rank calls it, from a tasklet (typically main). On
 * rank 0 it returns at once with the pool in *out. On every other rank it
 * serves rank 0's tasks, one at a time, until rank 0 joins or terminates
 * the pool, and then returns 0 with *out NULL. The sizes and
 * tasks_per_rank of rank 0's cfg are the pool's; the initializer is each
 * rank's own. SL_ESTATE: sl_mpi_init not called, a pool already live, a
 * single rank (nobody to serve); SL_EINVAL: NULL out, a bad config;
 * SL_ENOMEM. A serving rank returns SL_EWORKERDIED if rank 0 died. */
int sl_mpi_pool_new(sl_mpi_pool **out, const sl_mpi_pool_config *cfg);

/* Queue fn(in) on the serving rank with the fewest tasks in flight; *out
 * gets a future. Never blocks (tasks beyond tasks_per_rank per rank wait
 * on rank 0). SL_EINVAL: a pool that is not live, NULL fn or out, NULL in
 * with in_len > 0, in_len > max_task_size; SL_ENOTASK: fn is not
 * registered here; SL_ECLOSED: after close or terminate; SL_ENOMEM. */
int sl_mpi_pool_submit(sl_mpi_pool *pool, sl_task_fn fn, const void *in,
                       size_t in_len, sl_mpi_future **out);

/* As sl_future_wait (stackless_mp.h): the task's own status, or
 * SL_ENOTASK (the serving rank does not know the function), SL_EWORKERDIED
 * (its rank died), SL_ECLOSED (terminated first), SL_EKILLED, -EMSGSIZE
 * (out too small: *out_len is the size needed; wait again). */
int sl_mpi_future_wait(sl_mpi_future *f, void *out, size_t *out_len);
/* The same with a timeout: SL_ETIMEDOUT, the future stays valid. */
int sl_mpi_future_wait_timeout(sl_mpi_future *f, void *out, size_t *out_len,
                               int64_t timeout_ms);
bool sl_mpi_future_done(const sl_mpi_future *f);
/* Waited on or not; a task still running completes and its result is
 * dropped. */
void sl_mpi_future_free(sl_mpi_future *f);

/* Python's apply_async: callback(arg, out, out_len) runs in a new tasklet
 * of rank 0 when the result arrives; error_callback(arg, status) instead
 * when the task fails (nothing if NULL). Same errors as submit. */
int sl_mpi_pool_apply_async(sl_mpi_pool *pool, sl_task_fn fn, const void *in,
                            size_t in_len, sl_pool_callback callback,
                            sl_pool_error_callback error_callback, void *arg);

/* As sl_pool_map: fn over n items of in_size bytes, results into outputs
 * (out_size bytes each; bytes past a result's size are left as they
 * were), in chunks of chunksize items (0: about n / (4 * serving ranks),
 * cut to fit max_task_size and max_result_size). Blocks until every item
 * is done. statuses, if not NULL, gets each item's status. 0 when every
 * item returned 0, else the status of the lowest-index item that did not.
 * SL_EINVAL: bad sizes or pointers, a single item that cannot fit a
 * chunk; SL_ENOTASK, SL_ECLOSED as submit. */
int sl_mpi_pool_map(sl_mpi_pool *pool, sl_task_fn fn, const void *inputs,
                    size_t in_size, size_t n, void *outputs, size_t out_size,
                    size_t chunksize, int *statuses);

/* Python's imap_unordered: the same work, results handed out as chunks
 * complete. The inputs are copied before it returns. */
int sl_mpi_pool_imap_unordered(sl_mpi_pool *pool, sl_task_fn fn,
                               const void *inputs, size_t in_size, size_t n,
                               size_t out_size, size_t chunksize,
                               sl_mpi_pool_iter **out);
/* The next finished item: *index, out (out_size bytes), *out_len; returns
 * its status; SL_ECLOSED once every item has been handed out. */
int sl_mpi_pool_iter_next(sl_mpi_pool_iter *it, size_t *index, void *out,
                          size_t *out_len);
/* Frees it at once; chunks still out are dropped when they come back. */
void sl_mpi_pool_iter_free(sl_mpi_pool_iter *it);

/* Refuse new work (SL_ECLOSED); queued tasks still run. */
int sl_mpi_pool_close(sl_mpi_pool *pool);
/* After close: wait until every task is done and every serving rank has
 * left its serving loop. SL_ESTATE if not closed. */
int sl_mpi_pool_join(sl_mpi_pool *pool);
/* Stop now: unfinished tasks fail with SL_ECLOSED at once, the serving
 * ranks drop what they have queued; returns once each has finished the
 * task it was running and left its loop. */
int sl_mpi_pool_terminate(sl_mpi_pool *pool);
/* Terminate if needed and free; the handle is refused (SL_EINVAL) after. */
void sl_mpi_pool_free(sl_mpi_pool *pool);
/* Serving ranks of a live pool (size - 1), or SL_EINVAL. */
int sl_mpi_pool_ranks(sl_mpi_pool *pool);

/* ---- channels between ranks --------------------------------------------- */

/* A rendezvous channel named by (home rank, key), carrying byte messages
 * of up to max_msg_size bytes. Any rank may send on it; only its home rank
 * receives (an actor's mailbox). A send returns once a receiver on the
 * home rank has taken the message; both calls park the calling tasklet
 * only. Every rank that uses the channel opens its own handle. */
typedef struct sl_mpi_chan sl_mpi_chan;

/* A handle to channel (home, key). On the home rank it creates the
 * channel (reopening a key freed before); messages sent to it before then
 * wait for it. SL_ESTATE: sl_mpi_init not called; SL_EINVAL: home out of
 * range, NULL out; -EEXIST: (home, key) already open on this rank;
 * SL_ENOMEM. */
int sl_mpi_chan_open(int home, uint64_t key, sl_mpi_chan **out);

/* 0 once a receiver has taken the message. SL_EINVAL: NULL ch, NULL msg
 * with len > 0, len > max_msg_size; SL_ECLOSED: the channel is closed (the
 * message was not delivered); SL_ERANKDIED: its home rank died;
 * SL_EKILLED: killed while waiting (the message was not delivered on the
 * home rank; from another rank it is withdrawn unless the home rank had
 * handed it over already, see docs/distributed.md); SL_ESTATE. */
int sl_mpi_chan_send(sl_mpi_chan *ch, const void *msg, size_t len);
/* ... or SL_ETIMEDOUT after timeout_ms, once the home rank confirms the
 * message was not taken (0 if it was taken meanwhile). */
int sl_mpi_chan_send_timeout(sl_mpi_chan *ch, const void *msg, size_t len,
                             int64_t timeout_ms);
/* Home rank only (SL_EINVAL elsewhere). *len: capacity of buf on entry,
 * the message's size on return; -EMSGSIZE and the size needed when it is
 * too small (the message stays in the channel, its sender still waits).
 * SL_ECLOSED, SL_EKILLED, SL_ESTATE as send. */
int sl_mpi_chan_receive(sl_mpi_chan *ch, void *buf, size_t *len);
int sl_mpi_chan_receive_timeout(sl_mpi_chan *ch, void *buf, size_t *len,
                                int64_t timeout_ms);
/* Close it on its home rank (from any rank: blocks until the home has
 * done it): every waiter gets SL_ECLOSED, later calls too. SL_ERANKDIED,
 * SL_EINVAL, SL_ESTATE. */
int sl_mpi_chan_close(sl_mpi_chan *ch);
/* Free this rank's handle. On the home rank the channel is closed first
 * (later sends from other ranks get SL_ECLOSED until it is reopened).
 * SL_EINVAL for NULL; SL_ESTATE while a tasklet of this rank waits on it. */
int sl_mpi_chan_free(sl_mpi_chan *ch);
/* The home rank of a handle, or SL_EINVAL. */
int sl_mpi_chan_home(const sl_mpi_chan *ch);

#ifdef __cplusplus
}
#endif

#endif /* STACKLESS_MPI_H */
