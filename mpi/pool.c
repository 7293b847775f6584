/* pool.c - the process pool over MPI ranks: rank 0 submits, the other
 * ranks serve.
 *
 * Rank 0 (the caller).
 *   - A task is one W_TASK message: the function's name hash, the input.
 *     It goes to the live serving rank with the fewest tasks in flight,
 *     at most tasks_per_rank ahead per rank; the rest wait in a backlog
 *     on rank 0, fed as results come back (by the engine, which holds
 *     the layer's mutex while it settles results).
 *   - A serving rank runs its tasks one at a time, in order, and MPI
 *     keeps messages between two ranks in order, so the results of a rank
 *     come back in the order its tasks went out: rank 0 keeps a FIFO of
 *     pending records per rank and a result settles its head. No table,
 *     no search; a result that does not match the head is dropped.
 *   - A map is fed by its caller's tasklet, not by the engine: the caller
 *     cuts chunks from its own input array (which may be on a copy-mode
 *     stack, not where it seems while the caller is parked), posts them
 *     while ranks have room, parks until a chunk comes back, and copies
 *     the results into its output array itself. A rank takes at least 2
 *     and at most tasks_per_rank chunks ahead, about 256 KiB of input.
 *   - A rank that dies (its pidfd, on the same node): the head of its FIFO
 *     may have been running and fails with SL_EWORKERDIED (a chunk: all
 *     its items); the records behind it never started and go back to the
 *     backlog (a chunk: to its map), for the other ranks. Nothing else is
 *     lost or run twice.
 *   - Join sends W_POOL_END behind the queued tasks, terminate fails every
 *     unfinished record at once and sends W_POOL_END(SL_ECLOSED); both wait
 *     for each live rank's W_POOL_ACK.
 *
 * A serving rank. Inside sl_mpi_pool_new: a loop that takes the W_TASKs
 * the engine queued, looks the function up by its hash (SL_ENOTASK when
 * the name is unknown here), runs it into a scratch buffer (a chunk: into
 * the result message's slots directly), posts W_RESULT and yields once,
 * so the engine sends the result while the next task runs.
 *
 * The handle rank 0 gets is a token (a generation number, never an
 * address), so a freed pool's handle is refused with SL_EINVAL, also
 * after a new pool was made. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/slmpi.h"

#define DEFAULT_TASK (1u << 20)
#define DEFAULT_RESULT (64u << 10)
#define DEFAULT_AHEAD 64
#define MAX_SIZE (1u << 30)
#define CHUNK_BYTES_AHEAD (256u << 10)

enum { P_FUTURE = 1, P_APPLY, P_CHUNK };

struct sl_mpi_future {
    sl_event done;
    int status;
    bool settled;
    bool orphan;          /* freed by the user before it settled */
    slmsg *result;        /* the W_RESULT (payload: the result), or NULL */
};

struct apply {
    sl_pool_callback cb;
    sl_pool_error_callback ecb;
    void *arg;
    int status;
    slmsg *result;
};

struct job;

typedef struct pend {
    struct pend *next;
    int kind;
    uint64_t opid;
    slmsg *task;          /* kept until settled: sent again if its rank dies */
    union {
        sl_mpi_future *f;
        struct apply *a;
        struct job *j;
    } u;
    size_t first;         /* chunk: its first item, and its items */
    size_t count;
    int status;           /* chunk, settled: the chunk's own status */
    slmsg *result;        /* chunk, settled: its result */
} pend;

struct wslot {
    pend *head, *tail;    /* in flight, oldest first */
    int inflight;         /* records in the FIFO */
    int chunks;           /* of which chunks */
    size_t chunk_bytes;   /* their input bytes */
    bool dead;
    bool acked;
};

/* A map in progress (also an imap's iterator's). Fields under the mutex
 * but inputs, outputs, statuses and scattered, which only its caller
 * touches. */
struct job {
    struct job *next;     /* in the pool's list */
    struct pool *pool;    /* NULL once the pool is freed */
    sl_event ev;          /* set when a chunk comes back or fails */
    uint64_t fnhash;
    const char *inputs;
    char *outputs;        /* map: the caller's; imap: NULL */
    int *statuses;
    size_t in_size, out_size, n, chunk;
    size_t next_item;     /* the next item to queue */
    size_t settled;       /* items whose chunk came back or failed */
    int inflight;         /* chunks out */
    pend *done_head, *done_tail;   /* settled chunks, not yet taken */
    pend *redo_head, *redo_tail;   /* chunks of a dead rank, to send again */
    int fail;             /* SL_ECLOSED after terminate, SL_EWORKERDIED
                             when no rank is left: the items not queued
                             fail with it */
    bool orphan;          /* imap's iterator freed: drop what comes back */
    char *copy;           /* imap: its copy of the inputs */
};

struct sl_mpi_pool_iter {
    struct job *j;
    pend *cur;            /* the chunk being handed out */
    size_t pos;           /* its next item */
    size_t handed;        /* items handed out */
};

struct pool {
    uint64_t gen;
    sl_mpi_pool_config cfg;
    struct wslot *w;      /* by rank; w[0] unused */
    int live;             /* serving ranks alive */
    pend *bl_head, *bl_tail; /* tasks not sent yet */
    int busy;             /* tasks not settled + live maps */
    uint64_t next_opid;
    struct job *jobs;
    bool closed, terminated, ended;
    int acks_left;
    sl_event idle;        /* busy == 0 (join) */
    sl_event done;        /* every live rank acknowledged the end */
};

/* Rank 0's pool, and the handle it was given. */
static struct pool *P;
static uint64_t P_gen;

/* A serving rank's queue of W_TASK and W_POOL_END messages, in order. */
static struct {
    slmsg *head, *tail;
    sl_sem avail;
    bool init;
    int failed;           /* rank 0 died: SL_EWORKERDIED */
} S;

static sl_mpi_pool *token(uint64_t gen)
{
    /* Never an address: the low bits tag it, the rest is the generation. */
    return (sl_mpi_pool *)(uintptr_t)((gen << 4) | 0xb);
}

/* The live pool a handle names, or NULL (lock held). */
static struct pool *pool_of_locked(sl_mpi_pool *h)
{
    if (!P || !h || h != token(P->gen))
        return NULL;
    return P;
}

void sl_mpi_pool_config_init(sl_mpi_pool_config *cfg)
{
    if (!cfg)
        return;
    cfg->max_task_size = DEFAULT_TASK;
    cfg->max_result_size = DEFAULT_RESULT;
    cfg->tasks_per_rank = DEFAULT_AHEAD;
    cfg->initializer = NULL;
    cfg->initarg = NULL;
}

int sl_mpi_pool_ranks(sl_mpi_pool *pool)
{
    lock();
    struct pool *p = pool_of_locked(pool);
    int n = p ? E.size - 1 : SL_EINVAL;
    unlock();
    return n;
}

/* ---- rank 0: dispatch --------------------------------------------------- */

static void busy_add_locked(struct pool *p, int delta)
{
    p->busy += delta;
    if (p->busy == 0)
        sl_event_set(&p->idle);
    else
        sl_event_clear(&p->idle);
}

/* The live rank with the fewest records in flight and room for one more
 * (a chunk of chunk_bytes bytes when chunk_bytes > 0), or -1. */
static int pick_rank_locked(struct pool *p, size_t chunk_bytes)
{
    int best = -1;
    for (int r = 1; r < E.size; r++) {
        struct wslot *w = &p->w[r];
        if (w->dead || w->inflight >= p->cfg.tasks_per_rank)
            continue;
        if (chunk_bytes && w->chunks >= 2 &&
            w->chunk_bytes + chunk_bytes > CHUNK_BYTES_AHEAD)
            continue;
        if (best < 0 || w->inflight < p->w[best].inflight)
            best = r;
    }
    return best;
}

/* Send pd's task to rank r and queue pd in its FIFO (lock held). A task
 * message still in MPI's hands (sent before to a rank that died) is
 * copied first: the engine's list of sends in flight holds it. */
static void dispatch_locked(struct pool *p, pend *pd, int r)
{
    slmsg *m = pd->task;
    if (m->refs > 1) {
        slmsg *c = malloc(sizeof *c + msg_payload_len(m));
        SLMPI_ASSERT(c); /* out of memory re-sending a dead rank's task */
        memcpy(c, m, sizeof *c + msg_payload_len(m));
        c->refs = 1;
        sl__mpi_msg_unref(m);
        pd->task = m = c;
    }
    m->peer = r;
    m->w.opid = pd->opid;
    m->refs++; /* the send's reference; pd keeps its own */
    sl__mpi_post_locked(m);
    struct wslot *w = &p->w[r];
    pd->next = NULL;
    if (w->tail)
        w->tail->next = pd;
    else
        w->head = pd;
    w->tail = pd;
    w->inflight++;
    if (pd->kind == P_CHUNK) {
        w->chunks++;
        w->chunk_bytes += msg_payload_len(m);
    }
}

/* Send what the backlog holds while ranks have room (lock held). */
static void feed_locked(struct pool *p)
{
    while (p->bl_head) {
        int r = pick_rank_locked(p, 0);
        if (r < 0)
            return;
        pend *pd = p->bl_head;
        p->bl_head = pd->next;
        if (!p->bl_head)
            p->bl_tail = NULL;
        dispatch_locked(p, pd, r);
    }
}

static void job_end_locked(struct job *j, pend *spare);

static void apply_run(void *arg)
{
    struct apply *a = arg;
    if (a->status == 0 && a->cb)
        a->cb(a->arg, a->result ? msg_payload(a->result) : NULL,
              a->result ? msg_payload_len(a->result) : 0);
    else if (a->status != 0 && a->ecb)
        a->ecb(a->arg, a->status);
    sl__mpi_msg_unref(a->result);
    free(a);
}

/* pd is done with status and result (owned; may be NULL) (lock held).
 * Frees pd but a chunk's, which goes to its map. */
static void settle_locked(struct pool *p, pend *pd, int status, slmsg *result)
{
    sl__mpi_msg_unref(pd->task);
    pd->task = NULL;
    switch (pd->kind) {
    case P_FUTURE: {
        sl_mpi_future *f = pd->u.f;
        f->status = status;
        f->result = result;
        f->settled = true;
        if (f->orphan) {
            sl_event_destroy(&f->done);
            sl__mpi_msg_unref(result);
            free(f);
        } else {
            sl_event_set(&f->done);
        }
        busy_add_locked(p, -1);
        break;
    }
    case P_APPLY: {
        struct apply *a = pd->u.a;
        a->status = status;
        a->result = result;
        if ((status == 0 && a->cb) || (status != 0 && a->ecb)) {
            sl_spawn_attr at;
            sl_spawn_attr_init(&at);
            at.name = "sl_mpi callback";
            if (!sl_spawn_ex(&at, apply_run, a)) {
                sl__mpi_msg_unref(result);
                free(a);
            }
        } else {
            sl__mpi_msg_unref(result);
            free(a);
        }
        busy_add_locked(p, -1);
        break;
    }
    case P_CHUNK: {
        struct job *j = pd->u.j;
        j->inflight--;
        if (j->orphan) {
            /* Its caller left: this was its last chunk out or not. */
            sl__mpi_msg_unref(result);
            free(pd);
            if (j->inflight == 0) {
                job_end_locked(j, NULL);
                sl_event_destroy(&j->ev);
                free(j->copy);
                free(j);
            }
            return;
        }
        pd->status = status;
        pd->result = result;
        pd->next = NULL;
        if (j->done_tail)
            j->done_tail->next = pd;
        else
            j->done_head = pd;
        j->done_tail = pd;
        sl_event_set(&j->ev);
        return;
    }
    }
    free(pd);
}

/* A slot freed: maps waiting for room may feed again (lock held). */
static void wake_jobs_locked(struct pool *p)
{
    for (struct job *j = p->jobs; j; j = j->next)
        if (!j->orphan)
            sl_event_set(&j->ev);
}

/* Take the head record of rank r's FIFO (lock held). */
static pend *pop_locked(struct pool *p, int r)
{
    struct wslot *w = &p->w[r];
    pend *pd = w->head;
    if (!pd)
        return NULL;
    w->head = pd->next;
    if (!w->head)
        w->tail = NULL;
    w->inflight--;
    if (pd->kind == P_CHUNK) {
        w->chunks--;
        w->chunk_bytes -= msg_payload_len(pd->task);
    }
    return pd;
}

static void result_locked(slmsg *m)
{
    struct pool *p = P;
    int r = m->peer;
    if (!p || m->w.key != p->gen || r < 1 || r >= E.size || !p->w[r].head ||
        p->w[r].head->opid != m->w.opid) {
        sl__mpi_msg_unref(m); /* a terminated pool's, or not ours */
        return;
    }
    pend *pd = pop_locked(p, r);
    settle_locked(p, pd, m->w.status, m);
    feed_locked(p);
    wake_jobs_locked(p);
}

static void ack_locked(struct pool *p, int r)
{
    if (p->w[r].acked)
        return;
    p->w[r].acked = true;
    if (--p->acks_left == 0) {
        p->ended = true;
        sl_event_set(&p->done);
    }
}

/* ---- a serving rank: its queue ------------------------------------------ */

static void serve_init(void)
{
    if (!S.init) {
        sl_sem_init(&S.avail, 0);
        S.init = true;
    }
}

static void serve_push_locked(slmsg *m)
{
    serve_init();
    m->next = NULL;
    if (S.tail)
        S.tail->next = m;
    else
        S.head = m;
    S.tail = m;
    sl_sem_release(&S.avail);
}

/* Terminate: drop the tasks not started (rank 0 has failed them). */
static void serve_drop_locked(void)
{
    while (S.head) {
        slmsg *m = S.head;
        S.head = m->next;
        sl__mpi_msg_unref(m);
        sl_sem_try_acquire(&S.avail);
    }
    S.tail = NULL;
}

void sl__mpi_pool_incoming_locked(slmsg *m)
{
    switch (m->w.type) {
    case W_RESULT:
        result_locked(m);
        return;
    case W_POOL_ACK:
        if (P && m->w.key == P->gen && m->peer >= 1 && m->peer < E.size)
            ack_locked(P, m->peer);
        sl__mpi_msg_unref(m);
        return;
    case W_TASK:
    case W_POOL_END:
        if (m->peer != 0 || E.rank == 0) {
            sl__mpi_msg_unref(m); /* only rank 0 gives tasks */
            return;
        }
        if (m->w.type == W_POOL_END && m->w.status == SL_ECLOSED)
            serve_drop_locked();
        serve_push_locked(m);
        return;
    }
    sl__mpi_msg_unref(m);
}

/* ---- rank death --------------------------------------------------------- */

/* Put pd back for another rank (lock held): a task in front of the
 * backlog, a chunk on its map's list. */
static void requeue_locked(struct pool *p, pend *pd)
{
    if (pd->kind == P_CHUNK) {
        struct job *j = pd->u.j;
        if (j->orphan) {
            settle_locked(p, pd, SL_EWORKERDIED, NULL); /* dropped */
            return;
        }
        pd->next = NULL;
        if (j->redo_tail)
            j->redo_tail->next = pd;
        else
            j->redo_head = pd;
        j->redo_tail = pd;
        j->inflight--;
        sl_event_set(&j->ev);
        return;
    }
    pd->next = p->bl_head;
    p->bl_head = pd;
    if (!p->bl_tail)
        p->bl_tail = pd;
}

/* Fail everything not settled with status (lock held): the backlog, the
 * maps' redo lists and unqueued items are failed by their callers, which
 * see j->fail. */
static void fail_all_locked(struct pool *p, int status)
{
    while (p->bl_head) {
        pend *pd = p->bl_head;
        p->bl_head = pd->next;
        settle_locked(p, pd, status, NULL);
    }
    p->bl_tail = NULL;
    for (int r = 1; r < E.size; r++) {
        pend *pd;
        while ((pd = pop_locked(p, r)))
            settle_locked(p, pd, status, NULL);
    }
    for (struct job *j = p->jobs; j; j = j->next) {
        j->fail = status;
        sl_event_set(&j->ev);
    }
}

void sl__mpi_pool_rank_died_locked(int rank)
{
    if (E.rank != 0) {
        if (rank == 0 && S.init) {
            /* The caller is gone: stop serving. */
            S.failed = SL_EWORKERDIED;
            serve_drop_locked();
            slmsg *m = sl__mpi_msg_new(W_POOL_END, 0, 0);
            SLMPI_ASSERT(m);
            m->w.status = SL_EWORKERDIED;
            serve_push_locked(m);
        }
        return;
    }
    struct pool *p = P;
    if (!p || p->w[rank].dead)
        return;
    struct wslot *w = &p->w[rank];
    w->dead = true;
    p->live--;
    /* The head may have been running: it fails. The rest never started. */
    pend *pd = pop_locked(p, rank);
    if (pd)
        settle_locked(p, pd, SL_EWORKERDIED, NULL);
    pend *rest = NULL, **tail = &rest;
    while ((pd = pop_locked(p, rank))) {
        *tail = pd;
        tail = &pd->next;
        pd->next = NULL;
    }
    /* Back to the front of the backlog, in their order. */
    pend *singles = NULL, **st = &singles;
    while (rest) {
        pd = rest;
        rest = pd->next;
        pd->next = NULL;
        if (pd->kind == P_CHUNK) {
            requeue_locked(p, pd);
        } else {
            *st = pd;
            st = &pd->next;
        }
    }
    if (singles) {
        *st = p->bl_head;
        p->bl_head = singles;
        if (!p->bl_tail) {
            pend *t = singles;
            while (t->next)
                t = t->next;
            p->bl_tail = t;
        }
    }
    if (p->acks_left > 0)
        ack_locked(p, rank);
    if (p->live == 0)
        fail_all_locked(p, SL_EWORKERDIED);
    else
        feed_locked(p);
    wake_jobs_locked(p);
}

/* ---- rank 0: the calls -------------------------------------------------- */

static int serve(void);

int sl_mpi_pool_new(sl_mpi_pool **out, const sl_mpi_pool_config *cfg)
{
    sl_mpi_pool_config c;
    int rc;
    if ((rc = sl__mpi_check()) < 0)
        return rc;
    if (!out)
        return SL_EINVAL;
    if (cfg) {
        c = *cfg;
        if (c.max_task_size == 0 || c.max_task_size > MAX_SIZE ||
            c.max_result_size == 0 || c.max_result_size > MAX_SIZE ||
            c.tasks_per_rank < 1 || c.tasks_per_rank > 65536)
            return SL_EINVAL;
    } else {
        sl_mpi_pool_config_init(&c);
    }
    if (E.size < 2)
        return SL_ESTATE; /* nobody to serve */
    if (E.rank != 0) {
        *out = NULL;
        if (c.initializer)
            c.initializer(c.initarg);
        return serve();
    }
    struct pool *p = calloc(1, sizeof *p);
    if (!p || !(p->w = calloc((size_t)E.size, sizeof *p->w))) {
        free(p);
        return SL_ENOMEM;
    }
    p->cfg = c;
    p->live = E.size - 1;
    sl_event_init(&p->idle);
    sl_event_init(&p->done);
    sl_event_set(&p->idle);
    lock();
    if (P || E.finalizing) {
        unlock();
        free(p->w);
        free(p);
        return SL_ESTATE;
    }
    p->gen = ++P_gen;
    P = p;
    /* The serving ranks send results and acks until the end. */
    sl__mpi_interest_locked(1);
    unlock();
    *out = token(p->gen);
    return 0;
}

/* A task message for fn(in) for pool generation gen, or an error. */
static int task_msg(uint64_t gen, const sl_mpi_pool_config *cfg, sl_task_fn fn,
                    const void *in, size_t in_len, slmsg **out)
{
    if (!fn || (!in && in_len > 0) || in_len > cfg->max_task_size)
        return SL_EINVAL;
    uint64_t h = sl__mpi_fn_hash(fn);
    if (!h)
        return SL_ENOTASK;
    slmsg *m = sl__mpi_msg_new(W_TASK, 1, in_len);
    if (!m)
        return SL_ENOMEM;
    if (in_len)
        memcpy(msg_payload(m), in, in_len);
    m->w.key = gen;
    m->w.arg = h;
    m->w.out_size = (uint32_t)cfg->max_result_size;
    *out = m;
    return 0;
}

/* Queue a single task record (its task message built); lock not held. */
static int queue_single(sl_mpi_pool *pool, pend *pd, slmsg *m)
{
    lock();
    struct pool *p = pool_of_locked(pool);
    int rc = !p ? SL_EINVAL : p->closed ? SL_ECLOSED : 0;
    if (rc == 0) {
        pd->task = m;
        pd->opid = ++p->next_opid;
        pd->next = NULL;
        if (p->bl_tail)
            p->bl_tail->next = pd;
        else
            p->bl_head = pd;
        p->bl_tail = pd;
        busy_add_locked(p, 1);
        feed_locked(p);
    }
    unlock();
    return rc;
}

/* Validate a submission against the pool's sizes (lock taken briefly). */
static int prepare(sl_mpi_pool *pool, sl_task_fn fn, const void *in,
                   size_t in_len, slmsg **m)
{
    int rc;
    if ((rc = sl__mpi_check()) < 0)
        return rc;
    lock();
    struct pool *p = pool_of_locked(pool);
    sl_mpi_pool_config cfg;
    uint64_t gen = 0;
    rc = !p ? SL_EINVAL : p->closed ? SL_ECLOSED : 0;
    if (rc == 0) {
        cfg = p->cfg;
        gen = p->gen;
    }
    unlock();
    if (rc < 0)
        return rc;
    return task_msg(gen, &cfg, fn, in, in_len, m);
}

int sl_mpi_pool_submit(sl_mpi_pool *pool, sl_task_fn fn, const void *in,
                       size_t in_len, sl_mpi_future **out)
{
    slmsg *m;
    int rc;
    if (!out)
        return SL_EINVAL;
    if ((rc = prepare(pool, fn, in, in_len, &m)) < 0)
        return rc;
    sl_mpi_future *f = calloc(1, sizeof *f);
    pend *pd = calloc(1, sizeof *pd);
    if (!f || !pd) {
        free(f);
        free(pd);
        free(m);
        return SL_ENOMEM;
    }
    sl_event_init(&f->done);
    pd->kind = P_FUTURE;
    pd->u.f = f;
    if ((rc = queue_single(pool, pd, m)) < 0) {
        sl_event_destroy(&f->done);
        free(f);
        free(pd);
        free(m);
        return rc;
    }
    *out = f;
    return 0;
}

int sl_mpi_pool_apply_async(sl_mpi_pool *pool, sl_task_fn fn, const void *in,
                            size_t in_len, sl_pool_callback callback,
                            sl_pool_error_callback error_callback, void *arg)
{
    slmsg *m;
    int rc;
    if ((rc = prepare(pool, fn, in, in_len, &m)) < 0)
        return rc;
    struct apply *a = calloc(1, sizeof *a);
    pend *pd = calloc(1, sizeof *pd);
    if (!a || !pd) {
        free(a);
        free(pd);
        free(m);
        return SL_ENOMEM;
    }
    a->cb = callback;
    a->ecb = error_callback;
    a->arg = arg;
    pd->kind = P_APPLY;
    pd->u.a = a;
    if ((rc = queue_single(pool, pd, m)) < 0) {
        free(a);
        free(pd);
        free(m);
        return rc;
    }
    return 0;
}

int sl_mpi_future_wait_timeout(sl_mpi_future *f, void *out, size_t *out_len,
                               int64_t timeout_ms)
{
    if (!f || (out_len && *out_len > 0 && !out))
        return SL_EINVAL;
    int rc = sl_event_wait(&f->done, timeout_ms);
    if (rc < 0)
        return rc;
    size_t len = f->result ? msg_payload_len(f->result) : 0;
    if (out_len) {
        if (len > *out_len) {
            *out_len = len;
            return -EMSGSIZE;
        }
        if (len)
            memcpy(out, msg_payload(f->result), len);
        *out_len = len;
    }
    return f->status;
}

int sl_mpi_future_wait(sl_mpi_future *f, void *out, size_t *out_len)
{
    return sl_mpi_future_wait_timeout(f, out, out_len, -1);
}

bool sl_mpi_future_done(const sl_mpi_future *f)
{
    return f && sl_event_is_set(&f->done);
}

void sl_mpi_future_free(sl_mpi_future *f)
{
    if (!f)
        return;
    lock();
    if (!f->settled) {
        f->orphan = true; /* its settling frees it */
        unlock();
        return;
    }
    unlock();
    sl_event_destroy(&f->done);
    sl__mpi_msg_unref(f->result);
    free(f);
}

/* ---- rank 0: maps ------------------------------------------------------- */

/* Sizes of a chunk of count items: input and result bytes. */
static size_t chunk_in(const struct job *j, size_t count)
{
    return count * j->in_size;
}
static size_t chunk_out(const struct job *j, size_t count)
{
    return count * (8 + j->out_size);
}

static int job_start(sl_mpi_pool *pool, sl_task_fn fn, const void *inputs,
                     size_t in_size, size_t n, size_t out_size,
                     size_t chunksize, struct job *j)
{
    int rc;
    if ((rc = sl__mpi_check()) < 0)
        return rc;
    if (!fn || (n > 0 && (!inputs || in_size == 0 || out_size == 0)) ||
        in_size > MAX_SIZE || out_size > MAX_SIZE)
        return SL_EINVAL;
    uint64_t h = sl__mpi_fn_hash(fn);
    lock();
    struct pool *p = pool_of_locked(pool);
    rc = !p ? SL_EINVAL : p->closed ? SL_ECLOSED : !h ? SL_ENOTASK : 0;
    if (rc == 0) {
        /* Items per chunk: asked, or about n / (4 ranks); what fits. */
        size_t maxc = p->cfg.max_task_size / (in_size ? in_size : 1);
        size_t maxr = p->cfg.max_result_size / (8 + out_size);
        if (maxr < maxc)
            maxc = maxr;
        if (maxc > UINT32_MAX)
            maxc = UINT32_MAX;
        size_t c = chunksize ? chunksize : n / (4 * (size_t)(E.size - 1));
        if (c == 0)
            c = 1;
        if (c > maxc)
            c = maxc;
        if (n > 0 && (maxc == 0 || (chunksize && chunksize > maxc)))
            rc = SL_EINVAL; /* an item (or the asked chunk) cannot fit */
        j->chunk = c;
    }
    if (rc == 0) {
        j->pool = p;
        j->fnhash = h;
        j->inputs = inputs;
        j->in_size = in_size;
        j->out_size = out_size;
        j->n = n;
        sl_event_init(&j->ev);
        j->next = p->jobs;
        p->jobs = j;
        busy_add_locked(p, 1);
    }
    unlock();
    return rc;
}

/* The next chunk's task message, cut from the caller's inputs (called by
 * the job's caller, lock not held); NULL when out of memory. */
static pend *chunk_new(uint64_t gen, struct job *j, size_t first, size_t count)
{
    slmsg *m = sl__mpi_msg_new(W_TASK, 1, chunk_in(j, count));
    pend *pd = calloc(1, sizeof *pd);
    if (!m || !pd) {
        free(m);
        free(pd);
        return NULL;
    }
    memcpy(msg_payload(m), j->inputs + first * j->in_size, chunk_in(j, count));
    m->w.key = gen;
    m->w.arg = j->fnhash;
    m->w.n = (uint32_t)count;
    m->w.in_size = (uint32_t)j->in_size;
    m->w.out_size = (uint32_t)j->out_size;
    pd->kind = P_CHUNK;
    pd->u.j = j;
    pd->first = first;
    pd->count = count;
    pd->task = m;
    return pd;
}

/* Queue chunks of j while ranks have room (its caller; lock held). A
 * chunk built but not placed waits in *spare for the next round. */
static void job_feed_locked(struct job *j, pend **spare)
{
    while (j->pool && !j->fail) {
        pend *pd = j->redo_head;
        if (!pd) {
            if (!*spare && j->next_item < j->n) {
                size_t count = j->n - j->next_item < j->chunk
                                   ? j->n - j->next_item
                                   : j->chunk;
                uint64_t gen = j->pool->gen;
                unlock();
                pend *c = chunk_new(gen, j, j->next_item, count);
                lock();
                if (!c)
                    return; /* out of memory: try again when one comes back */
                *spare = c;
                j->next_item += count;
                if (!j->pool || j->fail)
                    return;
            }
            pd = *spare;
        }
        if (!pd)
            return;
        struct pool *p = j->pool;
        int r = pick_rank_locked(p, msg_payload_len(pd->task));
        if (r < 0)
            return;
        if (pd == j->redo_head) {
            j->redo_head = pd->next;
            if (!j->redo_head)
                j->redo_tail = NULL;
        } else {
            *spare = NULL;
        }
        pd->opid = ++p->next_opid;
        j->inflight++;
        dispatch_locked(p, pd, r);
    }
}

/* Whether a chunk that came back is the compact kind (W_CHUNK_FULL: every
 * item 0 and out_size bytes), the full kind (count slots, then int32
 * statuses, then uint32 lengths), or neither: a result of another shape
 * fails the chunk with -EIO (never trust what another process wrote). */
enum { CHUNK_BAD, CHUNK_FULL, CHUNK_ITEMS };

static int chunk_kind(const struct job *j, const pend *pd)
{
    if (pd->status != 0 || !pd->result)
        return CHUNK_BAD;
    size_t len = msg_payload_len(pd->result), slots = pd->count * j->out_size;
    if (pd->result->w.flags & W_CHUNK_FULL)
        return len == slots ? CHUNK_FULL : CHUNK_BAD;
    return len == chunk_out(j, pd->count) ? CHUNK_ITEMS : CHUNK_BAD;
}

/* Item k of a chunk that came back: its status, *data and *len its
 * result. */
static int chunk_item(const struct job *j, const pend *pd, size_t k,
                      const char **data, size_t *len)
{
    int kind = chunk_kind(j, pd);
    if (kind == CHUNK_BAD)
        return pd->status ? pd->status : -EIO;
    const char *base = msg_payload(pd->result);
    *data = base + k * j->out_size;
    if (kind == CHUNK_FULL) {
        *len = j->out_size;
        return 0;
    }
    int32_t st;
    uint32_t l;
    const char *tail = base + pd->count * j->out_size;
    memcpy(&st, tail + 4 * k, 4);
    memcpy(&l, tail + 4 * pd->count + 4 * k, 4);
    *len = l < j->out_size ? l : j->out_size;
    return st;
}

/* Take the settled chunks of j, or park until one comes: its caller
 * (lock held on entry and return). Returns the list, or NULL with *rc
 * the job's failure (nothing is out any more), or with *rc the error that
 * cut the wait short and *cut set: a kill, or a code thrown to the caller
 * (sl_tasklet_throw), chunks maybe still out. */
static pend *job_take_locked(struct job *j, pend **spare, int *rc, bool *cut)
{
    for (;;) {
        job_feed_locked(j, spare);
        pend *list = j->done_head;
        if (list) {
            j->done_head = j->done_tail = NULL;
            return list;
        }
        if (!j->pool && !j->fail)
            j->fail = SL_ECLOSED;
        if (j->fail && j->inflight == 0) {
            *rc = j->fail;
            return NULL;
        }
        sl_event_clear(&j->ev);
        unlock();
        int w = sl_event_wait(&j->ev, -1);
        lock();
        if (w < 0) {
            *rc = w;
            *cut = true;
            return NULL;
        }
    }
}

/* Free a list of records with the message each still holds: its task
 * (never sent) or its result (never taken). */
static void pends_free(pend *pd)
{
    while (pd) {
        pend *next = pd->next;
        sl__mpi_msg_unref(pd->task);
        sl__mpi_msg_unref(pd->result);
        free(pd);
        pd = next;
    }
}

/* The caller of j leaves while chunks are out (killed, or an iterator
 * freed; lock held): the last chunk back frees j. */
static void job_orphan_locked(struct job *j, pend *spare)
{
    j->orphan = true;
    pends_free(spare);
    pends_free(j->redo_head);
    pends_free(j->done_head);
    j->redo_head = j->redo_tail = j->done_head = j->done_tail = NULL;
}

/* The job is over (its caller; lock held): out of its pool's list, and
 * what it still holds freed. */
static void job_end_locked(struct job *j, pend *spare)
{
    struct pool *p = j->pool;
    if (p) {
        struct job **jp = &p->jobs;
        while (*jp != j)
            jp = &(*jp)->next;
        *jp = j->next;
        busy_add_locked(p, -1);
        j->pool = NULL;
    }
    pends_free(spare);
    pends_free(j->redo_head);
    j->redo_head = j->redo_tail = NULL;
}

/* Items first .. first + count - 1 fail with st. */
static void fail_items(size_t first, size_t count, int st, int *statuses,
                       size_t *first_bad, int *bad)
{
    if (count == 0)
        return;
    if (statuses)
        for (size_t i = first; i < first + count; i++)
            statuses[i] = st;
    if (first < *first_bad) {
        *first_bad = first;
        *bad = st;
    }
}

/* Copy a settled chunk's items out; frees it. */
static void scatter(const struct job *j, pend *pd, char *outputs, int *statuses,
                    size_t *first_bad, int *bad)
{
    if (chunk_kind(j, pd) == CHUNK_FULL) {
        /* Every item full: the slots are the outputs, in one copy. */
        memcpy(outputs + pd->first * j->out_size, msg_payload(pd->result),
               pd->count * j->out_size);
        if (statuses)
            memset(statuses + pd->first, 0, pd->count * sizeof *statuses);
        sl__mpi_msg_unref(pd->result);
        free(pd);
        return;
    }
    for (size_t k = 0; k < pd->count; k++) {
        const char *data = NULL;
        size_t len = 0;
        int st = chunk_item(j, pd, k, &data, &len);
        size_t i = pd->first + k;
        if (data && len)
            memcpy(outputs + i * j->out_size, data, len);
        if (statuses)
            statuses[i] = st;
        if (st != 0 && i < *first_bad) {
            *first_bad = i;
            *bad = st;
        }
    }
    sl__mpi_msg_unref(pd->result);
    free(pd);
}

int sl_mpi_pool_map(sl_mpi_pool *pool, sl_task_fn fn, const void *inputs,
                    size_t in_size, size_t n, void *outputs, size_t out_size,
                    size_t chunksize, int *statuses)
{
    int rc, bad = 0;
    size_t first_bad = n, settled = 0;
    if (n > 0 && !outputs)
        return SL_EINVAL;
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return SL_ENOMEM;
    if ((rc = job_start(pool, fn, inputs, in_size, n, out_size, chunksize, j)) <
        0) {
        free(j);
        return rc;
    }
    pend *spare = NULL;
    lock();
    while (settled < n) {
        bool cut = false;
        pend *list = job_take_locked(j, &spare, &rc, &cut);
        if (!list && cut && j->pool && j->inflight > 0) {
            job_orphan_locked(j, spare);
            unlock();
            return rc; /* SL_EKILLED, or a thrown code */
        }
        if (!list) {
            /* Failed, nothing out: what was never sent fails with it. */
            fail_items(j->next_item, n - j->next_item, rc, statuses, &first_bad,
                       &bad);
            if (spare)
                fail_items(spare->first, spare->count, rc, statuses, &first_bad,
                           &bad);
            for (pend *pd = j->redo_head; pd; pd = pd->next)
                fail_items(pd->first, pd->count, rc, statuses, &first_bad,
                           &bad);
            break;
        }
        unlock();
        while (list) {
            pend *pd = list;
            list = pd->next;
            settled += pd->count;
            scatter(j, pd, outputs, statuses, &first_bad, &bad);
        }
        lock();
    }
    job_end_locked(j, spare);
    unlock();
    sl_event_destroy(&j->ev);
    free(j);
    return first_bad < n ? bad : 0;
}

int sl_mpi_pool_imap_unordered(sl_mpi_pool *pool, sl_task_fn fn,
                               const void *inputs, size_t in_size, size_t n,
                               size_t out_size, size_t chunksize,
                               sl_mpi_pool_iter **out)
{
    if (!out)
        return SL_EINVAL;
    if (n > 0 && (!inputs || in_size == 0 || in_size > MAX_SIZE))
        return SL_EINVAL;
    sl_mpi_pool_iter *it = calloc(1, sizeof *it);
    struct job *j = calloc(1, sizeof *j);
    char *copy = n ? malloc(n * in_size) : NULL;
    if (!it || !j || (n && !copy)) {
        free(it);
        free(j);
        free(copy);
        return SL_ENOMEM;
    }
    if (n)
        memcpy(copy, inputs, n * in_size);
    int rc = job_start(pool, fn, copy, in_size, n, out_size, chunksize, j);
    if (rc < 0) {
        free(it);
        free(j);
        free(copy);
        return rc;
    }
    j->copy = copy;
    it->j = j;
    *out = it;
    return 0;
}

int sl_mpi_pool_iter_next(sl_mpi_pool_iter *it, size_t *index, void *out,
                          size_t *out_len)
{
    int rc;
    if ((rc = sl__mpi_check()) < 0)
        return rc;
    if (!it || !index || !out_len || (!out && *out_len > 0))
        return SL_EINVAL;
    struct job *j = it->j;
    for (;;) {
        if (it->cur && it->pos < it->cur->count) {
            pend *pd = it->cur;
            size_t k = it->pos++;
            const char *data = NULL;
            size_t len = 0;
            int st = chunk_item(j, pd, k, &data, &len);
            if (len > *out_len)
                len = *out_len;
            if (data && len)
                memcpy(out, data, len);
            *out_len = data ? len : 0;
            *index = pd->first + k;
            it->handed++;
            return st;
        }
        pends_free(it->cur);
        it->cur = NULL;
        if (it->handed >= j->n)
            return SL_ECLOSED;
        lock();
        pend *spare = NULL;
        bool cut = false;
        pend *list = job_take_locked(j, &spare, &rc, &cut);
        if (spare) {
            /* Not placed yet: its items go back to be cut again later. */
            j->next_item = spare->first;
            pends_free(spare);
        }
        if (!list && cut) {
            unlock();
            return rc; /* the iterator stays valid */
        }
        if (!list) {
            /* Failed, nothing out: hand out what was never sent, failed. */
            pend *pd = j->redo_head;
            size_t i;
            if (pd) {
                i = pd->first + it->pos++;
                if (it->pos == pd->count) {
                    j->redo_head = pd->next;
                    if (!j->redo_head)
                        j->redo_tail = NULL;
                    sl__mpi_msg_unref(pd->task);
                    free(pd);
                    it->pos = 0;
                }
            } else {
                i = j->next_item++;
            }
            unlock();
            *index = i;
            *out_len = 0;
            it->handed++;
            return rc;
        }
        /* One chunk to hand out now; the rest back for later calls. */
        it->cur = list;
        it->pos = 0;
        pend *rest = list->next;
        list->next = NULL;
        if (rest) {
            pend *t = rest;
            while (t->next)
                t = t->next;
            t->next = j->done_head;
            j->done_head = rest;
            if (!j->done_tail)
                j->done_tail = t;
        }
        unlock();
    }
}

void sl_mpi_pool_iter_free(sl_mpi_pool_iter *it)
{
    if (!it)
        return;
    struct job *j = it->j;
    pends_free(it->cur);
    lock();
    bool orphan = j->pool && j->inflight > 0;
    if (orphan)
        job_orphan_locked(j, NULL);
    else
        job_end_locked(j, NULL);
    pends_free(j->done_head);
    j->done_head = j->done_tail = NULL;
    unlock();
    if (!orphan) {
        sl_event_destroy(&j->ev);
        free(j->copy);
        free(j);
    }
    free(it);
}

/* ---- rank 0: the end ---------------------------------------------------- */

int sl_mpi_pool_close(sl_mpi_pool *pool)
{
    lock();
    struct pool *p = pool_of_locked(pool);
    if (p)
        p->closed = true;
    unlock();
    return p ? 0 : SL_EINVAL;
}

/* Send W_POOL_END(status) to every live rank and wait for their acks
 * (lock held on entry, not on return). */
static int end_ranks(struct pool *p, int status)
{
    if (p->acks_left == 0 && !p->ended) {
        for (int r = 1; r < E.size; r++) {
            if (p->w[r].dead) {
                p->w[r].acked = true;
                continue;
            }
            slmsg *m = sl__mpi_msg_new(W_POOL_END, r, 0);
            SLMPI_ASSERT(m);
            m->w.key = p->gen;
            m->w.status = status;
            sl__mpi_post_locked(m);
            p->acks_left++;
        }
        if (p->acks_left == 0) {
            p->ended = true;
            sl_event_set(&p->done);
        }
    }
    unlock();
    return sl_event_wait(&p->done, -1);
}

/* The live pool a handle names, with the mutex held; NULL, the mutex not
 * held and *rc the error (SL_ESTATE, SL_EINVAL) otherwise. */
static struct pool *pool_enter(sl_mpi_pool *pool, int *rc)
{
    if ((*rc = sl__mpi_check()) < 0)
        return NULL;
    lock();
    struct pool *p = pool_of_locked(pool);
    if (!p) {
        unlock();
        *rc = SL_EINVAL;
    }
    return p;
}

int sl_mpi_pool_join(sl_mpi_pool *pool)
{
    int rc;
    struct pool *p = pool_enter(pool, &rc);
    if (!p)
        return rc;
    if (!p->closed) {
        unlock();
        return SL_ESTATE;
    }
    while (p->busy > 0) {
        unlock();
        if ((rc = sl_event_wait(&p->idle, -1)) < 0)
            return rc;
        lock();
        if (pool_of_locked(pool) != p) {
            unlock();
            return SL_EINVAL;
        }
    }
    return end_ranks(p, 0);
}

int sl_mpi_pool_terminate(sl_mpi_pool *pool)
{
    int rc;
    struct pool *p = pool_enter(pool, &rc);
    if (!p)
        return rc;
    p->closed = true;
    if (!p->terminated) {
        p->terminated = true;
        fail_all_locked(p, SL_ECLOSED);
    }
    return end_ranks(p, SL_ECLOSED);
}

void sl_mpi_pool_free(sl_mpi_pool *pool)
{
    lock();
    struct pool *p = pool_of_locked(pool);
    if (!p) {
        unlock();
        return;
    }
    bool ended = p->ended;
    unlock();
    if (!ended && sl_mpi_pool_terminate(pool) < 0)
        return; /* killed while waiting: the pool stays */
    lock();
    /* Maps still running (in other tasklets) have seen the failure and
     * have nothing out; they leave on their own. An orphaned job with
     * nothing out cannot exist (its last chunk freed it). */
    for (struct job *j = p->jobs, *next; j; j = next) {
        next = j->next;
        j->pool = NULL;
        j->next = NULL;
        sl_event_set(&j->ev);
    }
    p->jobs = NULL;
    P = NULL;
    sl__mpi_interest_locked(-1);
    unlock();
    sl_event_destroy(&p->idle);
    sl_event_destroy(&p->done);
    free(p->w);
    free(p);
}

void sl__mpi_pool_finalize(void)
{
    lock();
    sl_mpi_pool *h = P ? token(P->gen) : NULL;
    unlock();
    if (h)
        sl_mpi_pool_free(h);
}

/* ---- a serving rank: the loop ------------------------------------------- */

/* Run a chunk: fn over each item, straight into the result's slots. */
static int run_chunk(sl_task_fn fn, slmsg *m, slmsg **res)
{
    size_t n = m->w.n, in_size = m->w.in_size, out_size = m->w.out_size;
    if (in_size == 0 || msg_payload_len(m) != n * in_size)
        return SL_EINVAL; /* not a chunk rank 0 would send */
    slmsg *r = sl__mpi_msg_new(W_RESULT, 0, n * (8 + out_size));
    if (!r)
        return SL_ENOMEM;
    char *base = msg_payload(r), *tail = base + n * out_size;
    const char *in = msg_payload(m);
    bool full = true;
    for (size_t k = 0; k < n; k++) {
        size_t len = out_size;
        int32_t st = fn(in + k * in_size, in_size, base + k * out_size, &len);
        /* A failed item has no result, as a failed task has none. */
        uint32_t l = st != 0 ? 0 : (uint32_t)(len < out_size ? len : out_size);
        full = full && st == 0 && l == out_size;
        memcpy(tail + 4 * k, &st, 4);
        memcpy(tail + 4 * n + 4 * k, &l, 4);
    }
    if (full) { /* the statuses and lengths say nothing: leave them out */
        r->w.flags = W_CHUNK_FULL;
        r->len = sizeof(wire) + n * out_size;
    }
    *res = r;
    return 0;
}

static int serve(void)
{
    sl_task_fn last_fn = NULL;
    uint64_t last_hash = 0;
    char *scratch = NULL;
    size_t scratch_len = 0;
    int rc = 0, unyielded = 0;

    lock();
    serve_init();
    sl__mpi_interest_locked(1);
    unlock();
    for (;;) {
        if ((rc = sl_sem_acquire(&S.avail)) < 0)
            break; /* killed */
        lock();
        slmsg *m = S.head;
        S.head = m->next;
        if (!S.head)
            S.tail = NULL;
        unlock();
        if (m->w.type == W_POOL_END) {
            uint64_t gen = m->w.key;
            rc = m->w.status == SL_EWORKERDIED ? SL_EWORKERDIED : 0;
            sl__mpi_msg_unref(m);
            if (rc == 0) {
                slmsg *a = sl__mpi_msg_new(W_POOL_ACK, 0, 0);
                SLMPI_ASSERT(a);
                a->w.key = gen;
                lock();
                sl__mpi_post_locked(a);
                unlock();
            }
            break;
        }
        sl_task_fn fn =
            m->w.arg == last_hash ? last_fn : sl__mpi_fn_lookup(m->w.arg);
        if (fn) {
            last_fn = fn;
            last_hash = m->w.arg;
        }
        slmsg *res = NULL;
        int status;
        if (!fn) {
            status = SL_ENOTASK;
        } else if (m->w.n > 0) {
            status = run_chunk(fn, m, &res);
        } else {
            size_t cap = m->w.out_size;
            if (cap > scratch_len) {
                char *s = realloc(scratch, cap);
                if (s) {
                    scratch = s;
                    scratch_len = cap;
                }
            }
            size_t len = cap <= scratch_len ? cap : 0;
            status = fn(msg_payload(m), msg_payload_len(m), scratch, &len);
            if (status != 0) /* a failed task has no result */
                len = 0;
            if (len > cap)
                len = cap;
            res = sl__mpi_msg_new(W_RESULT, 0, len);
            if (res && len)
                memcpy(msg_payload(res), scratch, len);
        }
        if (!res) {
            res = sl__mpi_msg_new(W_RESULT, 0, 0);
            SLMPI_ASSERT(res);
            if (status == 0)
                status = SL_ENOMEM;
        }
        res->w.key = m->w.key;
        res->w.opid = m->w.opid;
        res->w.status = status;
        sl__mpi_msg_unref(m);
        lock();
        sl__mpi_post_locked(res);
        bool more = S.head != NULL;
        unlock();
        /* Let the engine send what we have (and take more tasks) when the
         * queue is empty, or every 16 results: they leave as one bundle. */
        if (!more || ++unyielded >= 16) {
            unyielded = 0;
            sl_schedule();
        }
    }
    free(scratch);
    lock();
    sl__mpi_interest_locked(-1);
    if (S.failed)
        rc = S.failed;
    unlock();
    return rc;
}
