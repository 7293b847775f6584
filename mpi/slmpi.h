/* slmpi.h - what the MPI layer's files share: the wire format, messages,
 * operation records, and the engine's state (one per rank). */
#ifndef SL_MPI_INTERNAL_H
#define SL_MPI_INTERNAL_H

#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

#include <stackless_mpi.h>

/* Always-on check of our own invariants (a broken one is our bug). */
#define SLMPI_ASSERT(c)                                                        \
    ((c) ? (void)0 : sl__mpi_assert_fail(#c, __FILE__, __LINE__))
_Noreturn void sl__mpi_assert_fail(const char *expr, const char *file,
                                   int line);

/* ---- the wire -------------------------------------------------------------
 * Every message is one MPI message on our own communicator (a dup of
 * MPI_COMM_WORLD) with one tag, so MPI's non-overtaking rule orders all
 * messages from one rank to another: a cancel never passes the send it
 * cancels. A message is a header and its payload. */
#define SLMPI_TAG 7
#define SLMPI_TAG_LARGE 8 /* a message above the posted receives' size */

enum wire_type {
    W_CH_SEND = 1, /* origin -> home: key, opid; payload: the message   */
    W_CH_REPLY,    /* home -> origin: opid, status (0: taken)           */
    W_CH_CANCEL,   /* origin -> home: key, opid, status: the reason     */
    W_CH_CLOSE,    /* origin -> home: key, opid; answered by a REPLY     */
    W_TASK,        /* rank 0 -> server: key = pool, opid, arg = function
                      hash, n items (0: one task); payload: the input(s) */
    W_RESULT,      /* server -> rank 0: key = pool, opid, status;
                      payload: the result (a chunk: n slots of out_size
                      bytes, then n int32 statuses and n uint32 lengths,
                      which W_CHUNK_FULL leaves out)                     */
    W_POOL_END,    /* rank 0 -> server: key = pool; status 0: join (after
                      the queued tasks), SL_ECLOSED: terminate          */
    W_POOL_ACK,    /* server -> rank 0: key = pool; it left its loop     */
    W_FIN,         /* any -> all: finalize; nothing more will be asked   */
    W_BUNDLE,      /* n messages to one rank in one (engine.c)          */
    W_LARGE,       /* arg bytes follow on SLMPI_TAG_LARGE (engine.c)    */
};

typedef struct wire {
    uint32_t type;
    int32_t status;
    uint64_t key;
    uint64_t opid;
    uint64_t arg;
    uint32_t n, in_size, out_size, flags;
} wire;

/* wire.flags of a chunk's W_RESULT: every item returned 0 with a result
 * of out_size bytes, and the payload is just the n results. */
#define W_CHUNK_FULL 1u

/* A message: header and payload in one allocation. Outgoing ones are
 * owned by the outbox, then by the send in flight (refs counts a second
 * owner: a pool task kept for re-dispatch); received ones by whoever the
 * engine hands them to. */
typedef struct slmsg {
    struct slmsg *next;
    int peer;       /* destination, or source of a received one */
    int refs;
    size_t len;     /* bytes of w and payload */
    wire w;         /* must stay last: the payload follows it */
} slmsg;

static inline char *msg_payload(slmsg *m) { return (char *)(&m->w + 1); }
static inline size_t msg_payload_len(const slmsg *m)
{
    return m->len - sizeof(wire);
}

slmsg *sl__mpi_msg_new(int type, int peer, size_t payload);
void sl__mpi_msg_unref(slmsg *m);

/* ---- operations waiting for another rank's answer (origin side) --------- */

typedef struct slop {
    uint64_t id;
    struct slop *hnext;   /* in the op table's bucket */
    int peer;             /* the rank that owes the answer */
    int status;
    bool settled;
    bool orphan;          /* its tasklet left (killed): free when settled */
    sl_event done;
    slmsg *reply;         /* the answer, when it carries bytes */
} slop;

/* ---- node-local neighbours: sleep words and doorbells ------------------- */

/* One per rank on this node, in a page they share. sleep is (epoch << 1)
 * | asleep: the rank raises it before its last look at MPI and sleeping; a
 * sender on the node that finds it raised after sending rings the rank's
 * doorbell once per epoch. A cache line each. */
struct node_slot {
    _Atomic uint64_t sleep;
    char pad[56];
};

struct peer {
    struct node_slot *slot; /* NULL: on another node (or no shared page) */
    struct sockaddr_un bell;
    socklen_t bell_len;
    uint64_t rung;        /* the sleep word we last rang for */
    int pidfd;            /* -1: none */
    bool dead;
    bool fin;             /* sent us W_FIN */
    slmsg *chain_head, *chain_tail; /* engine: this batch's messages to it */
    bool held;            /* engine: a large message from it is coming */
    slmsg *held_head, *held_tail; /* engine: what it sent after that */
    int chain_next;       /* engine: the next rank with a chain, or -1 */
};

/* ---- the engine --------------------------------------------------------- */

struct slmpi {
    pthread_mutex_t lock; /* everything below not marked engine-only */
    bool started;
    bool own_mpi;         /* we called MPI_Init: we call MPI_Finalize */
    bool finalizing;
    int rank, size;
    MPI_Comm comm;        /* engine-only after init */
    sl_mpi_config cfg;

    /* the progress tasklet */
    bool running;         /* it exists */
    bool parked;          /* it sleeps in sl_wait_fd on epfd */
    int interest;         /* reasons to keep it alive: waiters, ops, pools */
    slmsg *out_head, *out_tail;
    _Atomic bool out_ready; /* out_head is not NULL (read without the mutex) */
    int evfd;             /* rung by a tasklet of ours when it is parked */
    int sends_pending;    /* a copy of nsend, for sl_mpi_flush */

    /* engine-only */
    int epfd;             /* evfd, the doorbell, the pidfds */
    int bellfd;           /* our doorbell: an abstract datagram socket */
    struct peer *peers;   /* by world rank */
    struct node_slot *myslot;
    void *page;           /* the node's page of sleep words */
    size_t page_len;
    uint64_t epoch;       /* sleeps so far: never repeats a sleep word */
    bool remote_peers;    /* a rank on another node: we must poll */
    MPI_Request *sreq;    /* sends in flight */
    slmsg **smsg;
    int nsend, capsend;
    int deaths;           /* ranks seen dead */

    /* origin-side operations, by id */
    uint64_t next_opid;
    slop **optab;
    size_t opmask, opcount;

    sl_mpi_stats stats;
    sl_event fin_done;    /* finalize: every live rank sent W_FIN */
};

extern struct slmpi sl__mpi;
#define E sl__mpi

static inline void lock(void) { pthread_mutex_lock(&E.lock); }
static inline void unlock(void) { pthread_mutex_unlock(&E.lock); }

/* Queue m for sending (lock held); wakes or starts the progress tasklet. */
void sl__mpi_post_locked(slmsg *m);
/* One more (+1) or one less (-1) reason to keep progress going (lock
 * held); the first one wakes or starts the progress tasklet. */
void sl__mpi_interest_locked(int delta);
/* A new op owed by peer, in the table (lock held); SL_ENOMEM, or
 * SL_ERANKDIED when peer is known dead. */
int sl__mpi_op_new_locked(int peer, slop **out);
/* Wait for op to settle (timeout as usual); on success its status. The op
 * stays the caller's: free it with sl__mpi_op_free. */
int sl__mpi_op_wait(slop *op, int64_t timeout_ms);
void sl__mpi_op_free(slop *op);
/* Settle op with status and reply (lock held): wakes its tasklet, or
 * frees it if orphaned. */
void sl__mpi_op_settle_locked(slop *op, int status, slmsg *reply);
slop *sl__mpi_op_find_locked(uint64_t id);
bool sl__mpi_rank_dead_locked(int rank);
/* Must be called from a tasklet of a started layer: SL_ESTATE if not. */
int sl__mpi_check(void);

/* Handlers of received messages, lock held; each takes ownership of m. */
void sl__mpi_chan_incoming_locked(slmsg *m);
void sl__mpi_pool_incoming_locked(slmsg *m);
/* A rank died: fail what depended on it (lock held). */
void sl__mpi_chan_rank_died_locked(int rank);
void sl__mpi_pool_rank_died_locked(int rank);
/* sl_mpi_finalize: close every channel homed here (lock held). */
void sl__mpi_chan_close_all_locked(void);
/* sl_mpi_finalize: terminate and free rank 0's pool, if any. */
void sl__mpi_pool_finalize(void);
/* sl_mpi_finalize: free the channel tables. */
void sl__mpi_chan_free_all(void);

/* The registry (registry.c). */
uint64_t sl__mpi_name_hash(const char *name);
uint64_t sl__mpi_fn_hash(sl_task_fn fn);
sl_task_fn sl__mpi_fn_lookup(uint64_t hash);

#endif /* SL_MPI_INTERNAL_H */
