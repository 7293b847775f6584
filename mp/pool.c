/* pool.c - the process pool: Python's multiprocessing.Pool for tasklets,
 * over shared memory.
 *
 * DESIGN
 *
 * Glossary.
 *   parent    the process that made the pool; it runs a runtime, and any of
 *             its tasklets may submit and wait.
 *   worker    a process forked by the pool (slot 0 .. processes-1). It
 *             forgets the parent's runtime, starts its own, and runs tasks
 *             one at a time in a dispatcher tasklet.
 *   task      fn(in) -> (status, out), bytes in and out. A chunk is a task
 *             that runs fn over many same-size items (sl_pool_map).
 *   pending   the parent's record of a task in flight (a future, a chunk of
 *             a map, an apply_async), kept per worker in submission order.
 *   collector the parent tasklet that takes results, settles pending
 *             records and watches the workers' lives.
 *
 * Chosen approach.
 *   - One anonymous MAP_SHARED mapping, made before the first fork
 *     (mp/shm.c): per worker a task ring and a result ring (single
 *     producer, single consumer, 256-byte slots: small payloads travel
 *     inline), and a buddy heap for larger payloads. Nothing is left in the
 *     file system; the mapping dies with the last process.
 *   - The parent dispatches each task to the worker with the fewest tasks
 *     in flight. Per worker, tasks run and results come back in ring order,
 *     so the parent's pending records for a worker form a FIFO and a result
 *     always settles the oldest one: no table, no search.
 *   - A map is fed, not dumped: its chunks are queued about 2 ms of work
 *     per worker ahead (at least 2 chunks: one running, one waiting),
 *     estimated from how fast the job's chunks come back, and the
 *     collector tops the queues up as results arrive. A worker that runs
 *     faster (its core is not shared, it started sooner) so takes more
 *     chunks, where a split made up front waits for the slowest worker;
 *     and queued inputs never fill the shared heap (a heap-backed chunk
 *     is queued only while the heap keeps room for a result per worker).
 *   - Which task a worker holds is in shared memory (wslot.current): set
 *     before it takes the task off the ring, cleared after its result is
 *     pushed. When a worker dies, the collector (told by the worker's
 *     life pipe) first takes every result the worker pushed, then fails the
 *     oldest pending record if it is the one in `current` (SL_EWORKERDIED),
 *     and forks a replacement into the same slot: the tasks still in the
 *     ring are run by the replacement. Nothing else is lost or run twice.
 *   - Wake-ups: each side spins briefly (50 us, yielding to its other
 *     tasklets), then raises a "sleeping" flag and waits on its eventfd
 *     with sl_wait_fd; the other side rings the eventfd only when it sees
 *     the flag (store-fence-load on both sides, so no wake is lost). A busy
 *     pool makes no system calls; an idle pool uses no CPU. The collector
 *     and the workers spin without sched_yield(): on a core busy with a
 *     long task of another process a yield hands that task a whole time
 *     slice (milliseconds), while nobody rings us, since we do not look
 *     asleep. The collector also stops spinning after two spins in a row
 *     found nothing (tasks longer than a spin), until a sleep turns out
 *     shorter than a spin: a parent waiting for millisecond tasks sleeps.
 *   - Handles are tokens (tag, table index, generation), not addresses:
 *     a freed pool's handle is refused (SL_EINVAL) even when a new pool
 *     has been allocated where the old one was, without reading freed
 *     memory.
 *   - The collector waits on an epoll set of its own (the parent's eventfd
 *     and one life pipe per worker) only while tasks are in flight; with none,
 *     it waits on an event that submit sets, so sl_run() can return.
 *   - Workers learn of the parent's death through a pidfd of the parent
 *     (PR_SET_PDEATHSIG follows the forking *thread*, which may be a
 *     worker thread of the parent's runtime) and exit.
 *
 * Rejected.
 *   - pipes and serialisation (Python's way): a copy through the kernel and
 *     a system call per message; the rings cost a memcpy and no call;
 *   - one shared task queue for all workers (multi-consumer): needs a lock
 *     or CAS per task and loses the per-worker FIFO that makes crash
 *     accounting exact;
 *   - futex wake-ups: the workers' schedulers wait in epoll, and an eventfd
 *     is what epoll can watch;
 *   - a shm_open object: a crash would leave it in /dev/shm.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mp/mp.h"

#define SPIN_NS 50000

/* ---- pending records (parent) ------------------------------------------ */

enum { PEND_FUTURE = 1, PEND_APPLY, PEND_CHUNK };

struct pend {
    int kind;
    uint64_t in_off;      /* heap block of the input, 0: inline */
    union {
        sl_future *future;
        struct apply *apply;
        struct chunk *chunk;
    } u;
};

struct sl_future {
    sl_pool *pool;
    sl_event done;
    int status;
    bool settled;
    bool orphan;          /* freed by the user before it settled */
    size_t len;
    char *data;           /* len bytes (inline_buf or malloc'd) */
    char inline_buf[64];
};

struct apply {
    sl_pool_callback cb;
    sl_pool_error_callback ecb;
    void *arg;
    int status;
    size_t len;
    char *data;
};

/* A map's shared bookkeeping and one chunk of it. Its chunks are queued
 * a few at a time (feed_job), not all at once, so that a worker that runs
 * faster (or starts sooner) than another takes more of them. */
struct mapjob {
    sl_pool *pool;
    sl_task_fn fn;
    const char *inputs;
    char *outputs;        /* sl_pool_map: results land here directly */
    int *statuses;
    size_t in_size, out_size, n;
    struct chunk *chunks;
    size_t nchunks;
    size_t next_chunk;    /* the next chunk to queue */
    size_t settled;       /* chunks settled */
    size_t chunks_left;   /* chunks not settled yet */
    int64_t t0;           /* when its first chunk was queued, ns */
    bool caller_feeds;    /* sl_pool_map from a copy-stack tasklet: its
                             buffers may be on its stack, which is not
                             where it seems while it is parked, so it
                             queues and scatters the chunks itself */
    struct mapjob *feed_next; /* in the pool's list of jobs being fed */
    sl_event done;
    /* imap_unordered: finished chunks, in completion order */
    struct chunk *ready_head, *ready_tail;
    sl_event ready;
};

struct chunk {
    struct mapjob *job;
    size_t first, n;
    int status;           /* map: the chunk's own status */
    uint64_t res_off;     /* map: its result, a heap block now ours, or */
    char *res_inl;        /* a copy of a result that came inline        */
    size_t res_len;
    int *st;              /* imap: statuses and sizes and results kept */
    uint32_t *lens;
    char *outs;
    size_t next;          /* imap: items handed out */
    struct chunk *link;
};

struct sl_pool_iter {
    struct mapjob job;
    char *inputs;         /* a copy of the caller's */
    struct chunk *chunks;
    size_t nchunks;
    struct chunk *cur;
    size_t handed;
};

/* ---- the parent's side of one worker ----------------------------------- */

struct wstate {
    struct pend *fifo;    /* pending records, ring of depth */
    uint64_t head, tail;
    int pidfd;            /* read end of its life pipe (fork_worker) */
    pid_t pid;
    bool alive;
    bool stop_sent;
};

struct sl_pool {
    struct mp_shared *sh;
    sl_pool_config cfg;
    struct wstate *ws;
    sl_lock lock;         /* submission, FIFOs, flags */
    sl_event work;        /* set by submit when the collector idles */
    sl_event gone;        /* set when every worker has exited */
    int epfd;             /* collector: parent_evfd + life pipes */
    size_t inflight;
    struct mapjob *feeding; /* maps with chunks still to queue */
    int spin_misses;      /* the collector's spins that found nothing */
    int live;             /* worker processes alive */
    bool closed, stopping, terminated, collector_done;
    bool collector_idle;
    sl_tasklet *collector;
    struct mp_local local; /* mpchan waiting in this process */
};

/* ---- handles: a pool used after sl_pool_free gets SL_EINVAL ------------ */

/* What sl_pool_new gives out is not the address of the pool but a token:
 * a tag, the index of the pool's entry in a table of live pools, and the
 * generation that entry had when the pool was made (every registration
 * takes a new one). Every call looks the token up; a freed pool's entry
 * is empty or has moved on to a later generation, so its token gets
 * SL_EINVAL, even when a new pool has been allocated at the old one's
 * address (where a table of addresses would take the stale handle for
 * the new pool), and nothing freed is ever read (as a magic number in
 * the pool itself would be). The tag makes the token a non-canonical
 * address: dereferenced by mistake, it faults at once. */
#define MAX_POOLS 64
#define HANDLE_TAG ((uintptr_t)0x5100000000000000u)
#define HANDLE_TAG_MASK ((uintptr_t)0xff00000000000000u)
#define HANDLE_GEN_MASK (((uint64_t)1 << 50) - 1)

static struct {
    sl_pool *_Atomic pool;
    _Atomic uint64_t gen;
} pool_table[MAX_POOLS];
static _Atomic uint64_t pool_gens;

static int my_slot = -1; /* set in a worker process only */

/* The pool behind handle h, in any process of the pool. */
static sl_pool *pool_lookup(const sl_pool *h)
{
    uintptr_t v = (uintptr_t)h;
    if ((v & HANDLE_TAG_MASK) != HANDLE_TAG)
        return NULL;
    unsigned i = (unsigned)(v & (MAX_POOLS - 1));
    uint64_t gen = (uint64_t)(v >> 6) & HANDLE_GEN_MASK;
    if (atomic_load_explicit(&pool_table[i].gen, memory_order_acquire) != gen)
        return NULL;
    sl_pool *p = atomic_load_explicit(&pool_table[i].pool, memory_order_acquire);
    if (atomic_load_explicit(&pool_table[i].gen, memory_order_acquire) != gen)
        return NULL; /* freed meanwhile (a race of the caller's own) */
    return p;
}

/* For the pool's calls: in a worker process no handle is live (a task
 * cannot submit to, close or free the pool it runs in: the worker has a
 * copy of the parent's pool, not the pool). */
static sl_pool *pool_get(const sl_pool *h)
{
    return my_slot >= 0 ? NULL : pool_lookup(h);
}

sl_pool *mp_pool_get(const sl_pool *handle)
{
    return pool_lookup(handle);
}

/* An entry for p: its handle, or NULL when MAX_POOLS pools exist. */
static sl_pool *pool_register(sl_pool *p)
{
    for (unsigned i = 0; i < MAX_POOLS; i++) {
        sl_pool *e = NULL;
        if (!atomic_compare_exchange_strong(&pool_table[i].pool, &e, p))
            continue;
        uint64_t gen = (atomic_fetch_add(&pool_gens, 1) + 1) & HANDLE_GEN_MASK;
        atomic_store_explicit(&pool_table[i].gen, gen, memory_order_release);
        return (sl_pool *)(HANDLE_TAG | (uintptr_t)(gen << 6) | i);
    }
    return NULL;
}

static void pool_unregister(const sl_pool *h)
{
    unsigned i = (unsigned)((uintptr_t)h & (MAX_POOLS - 1));
    atomic_store_explicit(&pool_table[i].gen, 0, memory_order_release);
    atomic_store_explicit(&pool_table[i].pool, NULL, memory_order_release);
}

/* ---- worker process ------------------------------------------------------ */

static struct mp_shared *my_sh;
struct mp_local *mp_my_local;
static sl_pool *my_pool;

int sl_pool_worker_index(void)
{
    return my_slot;
}

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* The parent died: nothing will read our results. */
static void parent_watch(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (;;) {
        int rc = sl_wait_fd(fd, SL_READABLE, -1);
        if (rc > 0 || rc == -EBADF)
            _exit(3);
    }
}

/* Run one task or chunk into res (a reserved result slot). */
static void run_task(sl_pool *p, struct mp_shared *sh, struct mp_task *t,
                     struct mp_result *res, char *outbuf)
{
    const char *in = t->in_off ? mp_heap_ptr(sh, t->in_off) : t->data;
    size_t cap = p->cfg.max_result_size;
    size_t out_len = 0;
    int status = 0;
    if (t->kind == MP_TASK) {
        out_len = cap;
        status = t->fn(in, t->in_len, outbuf, &out_len);
        if (status != 0) /* a failed task has no result */
            out_len = 0;
        if (out_len > cap) /* the task lied about its size */
            out_len = cap;
    } else { /* a chunk: statuses, sizes, then results */
        int32_t *st = (int32_t *)outbuf;
        uint32_t *lens = (uint32_t *)(st + t->n);
        char *outs = (char *)(lens + t->n);
        for (uint32_t i = 0; i < t->n; i++) {
            size_t l = t->out_size;
            st[i] = t->fn(in + (size_t)i * t->in_size, t->in_size,
                          outs + (size_t)i * t->out_size, &l);
            lens[i] = (uint32_t)(l > t->out_size ? t->out_size : l);
        }
        out_len = (size_t)t->n * (8 + t->out_size);
    }
    res->id = t->id;
    res->status = status;
    res->out_len = (uint32_t)out_len;
    res->out_off = 0;
    if (out_len <= MP_RESULT_INLINE) {
        memcpy(res->data, outbuf, out_len);
        return;
    }
    uint64_t off;
    while (!(off = mp_heap_alloc(sh, out_len)))
        sl_sleep_ms(1); /* the parent frees as it collects */
    memcpy(mp_heap_ptr(sh, off), outbuf, out_len);
    res->out_off = off;
}

/* Spin for about SPIN_NS, running this process's other tasklets between
 * looks. With yield (mpchans), sched_yield() every 64 looks lets a
 * partner that shares our core run (more spinners than cores); but a
 * sched_yield() on a core busy with another process's long task can give
 * that task a whole time slice (milliseconds under EEVDF), during which
 * nobody rings us since we do not look asleep: when one took longer than
 * the spin itself, stop spinning and go to sleep the ordinary way. */
static bool spin_until(bool (*cond)(void *), void *arg, bool yield)
{
    int64_t t0 = sl__now_ns();
    for (unsigned i = 0;; i++) {
        if (cond(arg))
            return true;
        sl_schedule();
        sl_arch_relax();
        if ((i & 63) == 63) {
            int64_t before = yield ? sl__now_ns() : 0;
            if (yield)
                sched_yield();
            int64_t now = sl__now_ns();
            if (now - t0 > SPIN_NS || (yield && now - before > SPIN_NS))
                return cond(arg);
        }
    }
}

bool mp_spin_until(bool (*cond)(void *), void *arg)
{
    return spin_until(cond, arg, true);
}

/* ---- waiting for other processes (mp.h) ------------------------------ */

void mp_local_init(struct mp_local *l, int bell)
{
    sl_lock_init(&l->lock);
    sl_cond_init(&l->cond);
    l->gen = 0;
    l->leader = false;
    l->bell = bell;
}

uint64_t mp_local_gen(struct mp_local *l)
{
    sl_lock_acquire(&l->lock);
    uint64_t g = l->gen;
    sl_lock_release(&l->lock);
    return g;
}

int mp_local_wait(struct mp_local *l, uint64_t gen)
{
    int rc = sl_lock_acquire(&l->lock);
    if (rc < 0)
        return rc;
    while (l->gen == gen) {
        if (!l->leader) {
            l->leader = true;
            sl_lock_release(&l->lock);
            rc = sl_wait_fd(l->bell, SL_READABLE, -1);
            mp_drain_bell(l->bell);
            sl_lock_acquire(&l->lock); /* a kill: taken anyway (try below) */
            l->leader = false;
            l->gen++;
            sl_cond_notify_all(&l->cond);
            if (rc < 0)
                break;
        } else {
            rc = sl_cond_wait(&l->cond, &l->lock, -1);
            if (rc < 0 && rc != SL_ETIMEDOUT)
                return rc; /* the lock is not held then */
        }
    }
    sl_lock_release(&l->lock);
    return rc < 0 ? rc : 0;
}

int mp_proc_index(sl_pool *p)
{
    if (my_slot >= 0)
        return my_slot + 1;
    return getpid() == p->sh->parent_pid ? 0 : -1;
}

static bool ring_nonempty(void *r)
{
    return mp_ring_peek(r) != NULL;
}

static bool ring_has_room(void *r)
{
    return mp_ring_reserve(r) != NULL;
}

/* The dispatcher: a worker's main loop. */
static void dispatcher(void *arg)
{
    sl_pool *p = arg;
    struct mp_shared *sh = p->sh;
    struct mp_wslot *ws = &sh->w[my_slot];
    struct mp_ring *tr = mp_at(sh, ws->task_ring);
    struct mp_ring *rr = mp_at(sh, ws->result_ring);
    size_t cap = p->cfg.max_result_size;
    size_t chunk_cap = cap; /* chunks fit max_result_size by construction */
    char *outbuf = malloc(chunk_cap ? chunk_cap : 1);
    if (!outbuf)
        _exit(4);
    if (p->cfg.initializer)
        p->cfg.initializer(p->cfg.initarg);
    int done = 0;
    for (;;) {
        struct mp_task *t = mp_ring_peek(tr);
        if (!t) {
            if (spin_until(ring_nonempty, tr, false))
                continue;
            atomic_store(&ws->sleeping, 1);
            atomic_thread_fence(memory_order_seq_cst);
            if (!mp_ring_peek(tr))
                sl_wait_fd(ws->evfd, SL_READABLE, -1);
            atomic_store(&ws->sleeping, 0);
            mp_drain_bell(ws->evfd);
            continue;
        }
        if (t->kind == MP_STOP) {
            mp_ring_pop(tr);
            break;
        }
        atomic_store(&ws->current, t->id);
        /* Copy the slot: the ring slot is given back before fn runs, so
         * the parent can queue the next task meanwhile. */
        union {
            struct mp_task t;
            char raw[MP_SLOT];
        } copy;
        memcpy(copy.raw, t, MP_SLOT);
        mp_ring_pop(tr);
        struct mp_result *res = mp_ring_reserve(rr);
        if (!res) {
            spin_until(ring_has_room, rr, false);
            while (!(res = mp_ring_reserve(rr)))
                sl_sleep_ms(1);
        }
        run_task(p, sh, &copy.t, res, outbuf);
        mp_ring_push(rr);
        atomic_store(&ws->current, 0);
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load(&sh->parent_sleeping))
            mp_ring_bell(sh->parent_evfd);
        if (p->cfg.max_tasks_per_child > 0 &&
            ++done >= p->cfg.max_tasks_per_child)
            break;
    }
    free(outbuf);
    _exit(0);
}

/* In the child just forked for slot: become that worker. Never returns. */
static void worker_main(sl_pool *p, int slot, pid_t parent)
{
    sl__fork_child_reset();
    my_slot = slot;
    my_sh = p->sh;
    my_pool = p;
    /* The parent's death: its pidfd becomes readable. Where pidfd_open is
     * missing (old kernels, valgrind), PR_SET_PDEATHSIG instead, which
     * follows the forking thread: good enough as a fallback. */
    int pfd = pidfd_open_(parent);
    if (pfd < 0)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(3); /* the parent is already gone */
    sl_config c;
    sl_config_init(&c);
    c.workers = p->cfg.workers;
    if (sl_init(&c) < 0)
        _exit(5);
    mp_local_init(&p->local, p->sh->w[slot].bell);
    mp_my_local = &p->local;
    if (pfd >= 0)
        sl_spawn(parent_watch, (void *)(intptr_t)pfd);
    sl_spawn(dispatcher, p);
    sl_run();
    _exit(0);
}

/* ---- parent: workers' lives ---------------------------------------------- */

/* A worker's life is a pipe: it holds the only write end (the parent
 * closes its copy at once), so its end, however it comes, makes the read
 * end report hang-up in the collector's epoll. A pidfd would do too, but
 * is not available everywhere (valgrind). */
static int fork_worker(sl_pool *p, int slot)
{
    struct wstate *w = &p->ws[slot];
    pid_t parent = getpid();
    int life[2];
    if (pipe2(life, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(life[0]);
        close(life[1]);
        return -e;
    }
    if (pid == 0) {
        close(life[0]);
        worker_main(p, slot, parent);
    }
    close(life[1]);
    int fd = life[0];
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)slot};
    epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
    atomic_store(&p->sh->w[slot].pid, pid);
    w->pid = pid;
    w->pidfd = fd;
    w->alive = true;
    w->stop_sent = false;
    p->live++;
    return 0;
}

/* ---- parent: settling pending records ------------------------------------ */

static void future_release(sl_future *f)
{
    if (f->data != f->inline_buf)
        free(f->data);
    sl_event_destroy(&f->done);
    free(f);
}

static void run_apply(void *arg)
{
    struct apply *a = arg;
    if (a->status == 0) {
        if (a->cb)
            a->cb(a->arg, a->data, a->len);
    } else if (a->ecb) {
        a->ecb(a->arg, a->status);
    }
    free(a->data);
    free(a);
}

/* A chunk's results are in: hand them to the map's caller, which scatters
 * them into its buffers itself (they may be on its stack, which is not
 * where they seem while it is parked, with copy stacks), taking over the
 * heap block they came in (*heap_off becomes 0); or keep them (imap).
 * data NULL: the chunk failed with status. Lock held. */
static void chunk_settle(struct chunk *c, int status, const char *data,
                         size_t len, uint64_t *heap_off)
{
    struct mapjob *j = c->job;
    size_t n = c->n;
    const int32_t *st = (const int32_t *)data;
    const uint32_t *lens = (const uint32_t *)(st + n);
    const char *outs = (const char *)(lens + n);
    bool ok = data && status == 0 && len == n * (8 + j->out_size);
    if (j->outputs && !j->caller_feeds) {
        /* A fixed-stack caller: its buffers stay put, scatter here. */
        for (size_t i = 0; i < n; i++) {
            j->statuses[c->first + i] =
                ok ? st[i] : status ? status : SL_EINVAL;
            if (ok)
                memcpy(j->outputs + (c->first + i) * j->out_size,
                       outs + i * j->out_size, lens[i]);
        }
        j->settled++;
        if (--j->chunks_left == 0)
            sl_event_set(&j->done);
        return;
    }
    if (j->outputs) {
        c->status = ok ? 0 : status ? status : SL_EINVAL;
        if (ok && heap_off && *heap_off) {
            c->res_off = *heap_off;
            *heap_off = 0;
        } else if (ok) {
            c->res_inl = malloc(len + 1);
            if (c->res_inl)
                memcpy(c->res_inl, data, len);
            else
                c->status = SL_ENOMEM;
        }
        c->res_len = len;
    } else {
        c->st = malloc(n * sizeof *c->st);
        c->lens = malloc(n * sizeof *c->lens);
        c->outs = malloc(n * j->out_size + 1);
        if (!c->st || !c->lens || !c->outs)
            ok = false, status = status ? status : SL_ENOMEM;
        for (size_t i = 0; i < n && c->st; i++) {
            c->st[i] = ok ? st[i] : status;
            if (c->lens)
                c->lens[i] = ok ? lens[i] : 0;
        }
        if (ok)
            memcpy(c->outs, outs, n * j->out_size);
    }
    c->link = NULL;
    if (j->ready_tail)
        j->ready_tail->link = c;
    else
        j->ready_head = c;
    j->ready_tail = c;
    sl_event_set(&j->ready);
    j->settled++;
    if (--j->chunks_left == 0)
        sl_event_set(&j->done);
}

/* The oldest settled chunk of j, taken off its ready list, or NULL (and
 * j->ready cleared, so a waiter sleeps until the next one settles).
 * Called with the pool's lock held. */
static struct chunk *ready_pop(struct mapjob *j)
{
    struct chunk *c = j->ready_head;
    if (c) {
        j->ready_head = c->link;
        if (!j->ready_head)
            j->ready_tail = NULL;
    } else {
        sl_event_clear(&j->ready);
    }
    return c;
}

/* The oldest pending record of worker w is done: status and result bytes
 * (data may point into shared memory: copy what is kept). Lock held. */
static void settle(sl_pool *p, struct pend *pd, int status, const char *data,
                   size_t len, uint64_t *heap_off)
{
    p->inflight--;
    switch (pd->kind) {
    case PEND_FUTURE: {
        sl_future *f = pd->u.future;
        if (f->orphan) {
            future_release(f);
            break;
        }
        f->status = status;
        f->len = len;
        f->data = f->inline_buf;
        if (len > sizeof f->inline_buf) {
            f->data = malloc(len);
            if (!f->data) {
                f->data = f->inline_buf;
                f->len = 0;
                f->status = SL_ENOMEM;
            }
        }
        if (data && f->len)
            memcpy(f->data, data, f->len);
        f->settled = true;
        sl_event_set(&f->done);
        break;
    }
    case PEND_APPLY: {
        struct apply *a = pd->u.apply;
        a->status = status;
        a->len = len;
        a->data = malloc(len + 1);
        if (!a->data) {
            a->status = SL_ENOMEM;
            a->len = 0;
        } else if (len) {
            memcpy(a->data, data, len);
        }
        if (!sl_spawn(run_apply, a)) { /* no tasklet: run it here */
            run_apply(a);
        }
        break;
    }
    case PEND_CHUNK:
        chunk_settle(pd->u.chunk, status, data, len, heap_off);
        break;
    }
    if (pd->in_off)
        mp_heap_free(p->sh, pd->in_off);
}

/* Take every result worker i has pushed. Lock held. */
static size_t drain_worker(sl_pool *p, int i)
{
    struct mp_shared *sh = p->sh;
    struct mp_ring *rr = mp_at(sh, sh->w[i].result_ring);
    struct wstate *w = &p->ws[i];
    size_t n = 0;
    struct mp_result *r;
    while ((r = mp_ring_peek(rr))) {
        SL__ASSERT(w->head != w->tail);
        struct pend *pd = &w->fifo[w->head % sh->depth];
        SL__ASSERT(r->id == w->head + 1);
        const char *data = r->out_off ? mp_heap_ptr(sh, r->out_off) : r->data;
        uint64_t off = r->out_off;
        settle(p, pd, r->status, data, r->out_len, &off);
        mp_heap_free(sh, off); /* unless a map's caller took it */
        w->head++;
        mp_ring_pop(rr);
        n++;
    }
    return n;
}

static size_t drain_all(sl_pool *p)
{
    size_t n = 0;
    for (uint32_t i = 0; i < p->sh->nprocs; i++)
        n += drain_worker(p, (int)i);
    return n;
}

static bool any_result(void *arg)
{
    sl_pool *p = arg;
    for (uint32_t i = 0; i < p->sh->nprocs; i++)
        if (mp_ring_peek(mp_at(p->sh, p->sh->w[i].result_ring)))
            return true;
    return false;
}

/* Fail every pending record of worker i (terminate). Lock held. */
static void fail_all(sl_pool *p, int i, int status)
{
    struct wstate *w = &p->ws[i];
    while (w->head != w->tail) {
        settle(p, &w->fifo[w->head % p->sh->depth], status, NULL, 0, NULL);
        w->head++;
    }
}

/* How much of a map each worker gets queued ahead: about FEED_AHEAD_NS of
 * its chunks (at least 2: one running, one waiting), judged from how fast
 * the job's chunks have come back so far. Enough that a worker does not
 * run dry while the parent wakes to refill it; little enough that one
 * that turns out slower than the others (a busy core) holds back only a
 * few milliseconds of work at the end. */
#define FEED_AHEAD_NS 2000000

static size_t pow2_at_least(size_t n);

/* Queue what job j may have in flight now (non-blocking: stops when the
 * rings or the heap are full; the collector calls again as results come
 * back). Lock held. true if it queued something. */
static bool feed_job(sl_pool *p, struct mapjob *j, int64_t now)
{
    struct mp_shared *sh = p->sh;
    size_t ahead = 2;
    if (j->settled > 0) {
        int64_t per_chunk = (now - j->t0) * (int64_t)sh->nprocs /
                            (int64_t)j->settled; /* per worker, ns */
        if (per_chunk < 1)
            per_chunk = 1;
        if ((size_t)(FEED_AHEAD_NS / per_chunk) > ahead)
            ahead = (size_t)(FEED_AHEAD_NS / per_chunk);
    }
    size_t limit = ahead * sh->nprocs;
    bool queued = false;
    while (j->next_chunk < j->nchunks &&
           j->next_chunk - j->settled < limit) {
        int best = -1;
        uint64_t best_n = UINT64_MAX;
        for (uint32_t i = 0; i < sh->nprocs; i++) {
            uint64_t q = p->ws[i].tail - p->ws[i].head;
            if (q < best_n && q < sh->depth &&
                mp_ring_reserve(mp_at(sh, sh->w[i].task_ring))) {
                best_n = q;
                best = (int)i;
            }
        }
        if (best < 0)
            break; /* every ring is full */
        struct chunk *c = &j->chunks[j->next_chunk];
        const char *in = j->inputs + c->first * j->in_size;
        size_t in_len = c->n * j->in_size;
        uint64_t off = 0;
        if (in_len > MP_TASK_INLINE) {
            /* Leave the workers room for their results: inputs waiting
             * in the queues must not fill the heap, or the workers would
             * wait for room that only their results' collection frees.
             * (With nothing of the job in flight, queue anyway.) */
            size_t res_len = c->n * (8 + j->out_size);
            size_t used = __atomic_load_n(&sh->heap.in_use, __ATOMIC_RELAXED);
            if (j->next_chunk > j->settled &&
                used + pow2_at_least(in_len) +
                        (res_len > MP_RESULT_INLINE
                             ? sh->nprocs * pow2_at_least(res_len)
                             : 0) >
                    mp_heap_size(sh))
                break;
            if (!(off = mp_heap_alloc(sh, in_len)))
                break; /* results being collected will free room */
            memcpy(mp_heap_ptr(sh, off), in, in_len);
        }
        struct mp_ring *tr = mp_at(sh, sh->w[best].task_ring);
        struct mp_task *t = mp_ring_reserve(tr);
        struct wstate *w = &p->ws[best];
        w->fifo[w->tail % sh->depth] =
            (struct pend){.kind = PEND_CHUNK, .in_off = off, .u.chunk = c};
        w->tail++;
        t->id = w->tail;
        t->fn = j->fn;
        t->kind = MP_CHUNK;
        t->in_len = (uint32_t)in_len;
        t->in_off = off;
        t->n = (uint32_t)c->n;
        t->in_size = (uint32_t)j->in_size;
        t->out_size = (uint32_t)j->out_size;
        if (!off)
            memcpy(t->data, in, in_len);
        mp_ring_push(tr);
        p->inflight++;
        j->next_chunk++;
        queued = true;
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load(&sh->w[best].sleeping))
            mp_ring_bell(sh->w[best].evfd);
    }
    return queued;
}

/* Feed every job that has chunks left to queue; drop the ones done from
 * the list. Lock held. */
static bool feed_all(sl_pool *p)
{
    bool queued = false;
    int64_t now = sl__now_ns();
    for (struct mapjob **jp = &p->feeding; *jp;) {
        struct mapjob *j = *jp;
        if (!j->caller_feeds)
            queued |= feed_job(p, j, now);
        if (j->next_chunk == j->nchunks)
            *jp = j->feed_next;
        else
            jp = &j->feed_next;
    }
    return queued;
}

static void feeding_remove(sl_pool *p, struct mapjob *j)
{
    for (struct mapjob **jp = &p->feeding; *jp; jp = &(*jp)->feed_next)
        if (*jp == j) {
            *jp = j->feed_next;
            return;
        }
}

/* Terminate: the chunks never queued fail too. Lock held. */
static void fail_feeding(sl_pool *p, int status)
{
    while (p->feeding) {
        struct mapjob *j = p->feeding;
        p->feeding = j->feed_next;
        while (j->next_chunk < j->nchunks)
            chunk_settle(&j->chunks[j->next_chunk++], status, NULL, 0, NULL);
    }
}

/* Worker i's process has ended. Lock held. */
static void worker_died(sl_pool *p, int i)
{
    struct mp_shared *sh = p->sh;
    struct wstate *w = &p->ws[i];
    struct mp_wslot *s = &sh->w[i];
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, w->pidfd, NULL);
    close(w->pidfd);
    w->pidfd = -1;
    int wst = 0;
    waitpid(w->pid, &wst, 0);
    w->alive = false;
    p->live--;
    drain_worker(p, i); /* what it finished counts */
    uint64_t cur = atomic_load(&s->current);
    if (cur && w->head != w->tail && cur == w->head + 1) {
        /* It died running that task: that task, and only it, fails. */
        struct mp_ring *tr = mp_at(sh, s->task_ring);
        struct mp_task *t = mp_ring_peek(tr);
        if (t && t->id == cur) /* died before taking it off the ring */
            mp_ring_pop(tr);
        settle(p, &w->fifo[w->head % sh->depth], SL_EWORKERDIED, NULL, 0,
               NULL);
        w->head++;
    }
    atomic_store(&s->current, 0);
    atomic_store(&s->sleeping, 0);
    atomic_store(&s->pid, 0);
    if (p->terminated)
        return;
    /* Replace it (the tasks left in its ring, and a stop queued after
     * them, go to the new one), unless it ended because it was told to. */
    bool more = w->head != w->tail;
    if ((!p->stopping || more) && fork_worker(p, i) < 0)
        fail_all(p, i, SL_EWORKERDIED);
}

/* Look at the life pipes (non-blocking). Lock held. */
static void check_deaths(sl_pool *p)
{
    struct epoll_event ev[16];
    int n = epoll_wait(p->epfd, ev, 16, 0);
    for (int k = 0; k < n; k++) {
        if (ev[k].data.u64 == UINT64_MAX) {
            mp_drain_bell(p->sh->parent_evfd);
            continue;
        }
        int i = (int)ev[k].data.u64;
        if (p->ws[i].alive)
            worker_died(p, i);
    }
}

static void collector(void *arg)
{
    sl_pool *p = arg;
    struct mp_shared *sh = p->sh;
    for (unsigned round = 0;; round++) {
        sl_lock_acquire(&p->lock);
        size_t n = drain_all(p);
        if (p->feeding && !p->terminated)
            n += feed_all(p);
        if ((round & 255) == 255) /* busy: still notice a death */
            check_deaths(p);
        if (p->terminated || (p->stopping && p->live == 0)) {
            sl_lock_release(&p->lock);
            break;
        }
        bool idle = p->inflight == 0 && !p->stopping && !p->feeding;
        bool results_due = p->inflight > 0;
        if (idle)
            p->collector_idle = true;
        sl_lock_release(&p->lock);
        if (n)
            continue;
        if (idle) { /* nothing in flight: sl_run() may return meanwhile */
            sl_event_wait(&p->work, -1);
            sl_event_clear(&p->work);
            continue;
        }
        /* Spin for the next result only while spinning pays: after two
         * spins in a row found nothing (tasks longer than the spin), sleep
         * at once, until a sleep turns out shorter than a spin. A parent
         * that spun after every result of millisecond tasks would take
         * the cores the workers need. */
        if (results_due && p->spin_misses < 2) {
            if (spin_until(any_result, p, false)) {
                p->spin_misses = 0;
                continue;
            }
            p->spin_misses++;
        }
        /* Sleep until a result's bell or a worker's end (its pipe). */
        int64_t slept = sl__now_ns();
        atomic_store(&sh->parent_sleeping, 1);
        atomic_thread_fence(memory_order_seq_cst);
        if (!results_due || !any_result(p))
            sl_wait_fd(p->epfd, SL_READABLE, 1000);
        atomic_store(&sh->parent_sleeping, 0);
        if (sl__now_ns() - slept < SPIN_NS)
            p->spin_misses = 0;
        sl_lock_acquire(&p->lock);
        check_deaths(p);
        sl_lock_release(&p->lock);
    }
    p->collector_done = true;
    sl_event_set(&p->gone);
}

/* ---- parent: API ---------------------------------------------------------- */

static void pool_free(sl_pool *p);

void sl_pool_config_init(sl_pool_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->processes = n > 0 ? (int)(n > 256 ? 256 : n) : 1;
    cfg->workers = 1;
    cfg->max_task_size = 1u << 20;
    cfg->max_result_size = 64u << 10;
    cfg->shm_size = 64u << 20;
    cfg->queue_depth = 1024;
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

static void pool_destroy(sl_pool *p)
{
    if (p->ws) {
        for (int i = 0; i < p->cfg.processes; i++) {
            free(p->ws[i].fifo);
            if (p->ws[i].pidfd >= 0)
                close(p->ws[i].pidfd);
        }
        free(p->ws);
    }
    if (p->sh) {
        for (uint32_t i = 0; i < p->sh->nprocs; i++) {
            if (p->sh->w[i].evfd >= 0)
                close(p->sh->w[i].evfd);
            if (p->sh->w[i].bell >= 0)
                close(p->sh->w[i].bell);
        }
        if (p->sh->parent_evfd >= 0)
            close(p->sh->parent_evfd);
        if (p->sh->parent_bell >= 0)
            close(p->sh->parent_bell);
        mp_shared_free(p->sh);
    }
    if (p->epfd >= 0)
        close(p->epfd);
    sl_lock_destroy(&p->lock);
    sl_event_destroy(&p->work);
    sl_event_destroy(&p->gone);
    free(p);
}

int sl_pool_new(sl_pool **out, const sl_pool_config *cfg)
{
    if (!out)
        return SL_EINVAL;
    *out = NULL;
    if (!sl_current())
        return SL_ESTATE;
    if (my_slot >= 0)
        return SL_ESTATE; /* no pools inside a pool's worker */
    sl_pool_config c;
    if (cfg)
        c = *cfg;
    else
        sl_pool_config_init(&c);
    if (c.processes < 1 || c.processes > 256 || c.workers < 1 ||
        c.workers > 127 || c.max_tasks_per_child < 0 ||
        c.queue_depth < 0 || c.queue_depth > (1 << 20) ||
        c.max_task_size > (1u << 30) || c.max_result_size > (1u << 30))
        return SL_EINVAL;
    if (c.queue_depth == 0)
        c.queue_depth = 1024;
    if (c.shm_size == 0)
        c.shm_size = 64u << 20;
    if (c.max_result_size == 0)
        c.max_result_size = 64u << 10;
    if (c.max_task_size == 0)
        c.max_task_size = 1u << 20;
    size_t heap = pow2_at_least(c.shm_size);
    if (heap < pow2_at_least(c.max_task_size) ||
        heap < pow2_at_least(c.max_result_size) || heap > ((size_t)1 << 40))
        return SL_EINVAL; /* a payload could never fit */
    uint32_t depth = (uint32_t)pow2_at_least((size_t)c.queue_depth);

    sl_pool *p = calloc(1, sizeof *p);
    if (!p)
        return SL_ENOMEM;
    p->cfg = c;
    p->epfd = -1;
    sl_lock_init(&p->lock);
    sl_event_init(&p->work);
    sl_event_init(&p->gone);
    int rc = SL_ENOMEM;
    p->sh = mp_shared_new((uint32_t)c.processes, depth, heap);
    if (!p->sh) {
        rc = -errno;
        goto fail;
    }
    struct mp_shared *sh = p->sh;
    sh->parent_evfd = sh->parent_bell = -1;
    sh->parent_pid = getpid();
    p->ws = calloc((size_t)c.processes, sizeof *p->ws);
    if (!p->ws)
        goto fail;
    for (int i = 0; i < c.processes; i++) {
        p->ws[i].pidfd = -1;
        p->ws[i].fifo = calloc(depth, sizeof(struct pend));
        if (!p->ws[i].fifo)
            goto fail;
    }
    int fl = EFD_NONBLOCK | EFD_CLOEXEC;
    if ((sh->parent_evfd = eventfd(0, fl)) < 0 ||
        (sh->parent_bell = eventfd(0, fl)) < 0 ||
        (p->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        rc = -errno;
        goto fail;
    }
    for (int i = 0; i < c.processes; i++) {
        if ((sh->w[i].evfd = eventfd(0, fl)) < 0 ||
            (sh->w[i].bell = eventfd(0, fl)) < 0) {
            rc = -errno;
            goto fail;
        }
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, sh->parent_evfd, &ev) < 0) {
        rc = -errno;
        goto fail;
    }
    mp_local_init(&p->local, sh->parent_bell);
    for (int i = 0; i < c.processes; i++) {
        if ((rc = fork_worker(p, i)) < 0) {
            p->terminated = true;
            for (int k = 0; k < i; k++) {
                kill(p->ws[k].pid, SIGKILL);
                waitpid(p->ws[k].pid, NULL, 0);
            }
            goto fail;
        }
    }
    p->collector = sl_spawn(collector, p);
    if (!p->collector) {
        rc = SL_ENOMEM;
        p->terminated = true;
        for (int k = 0; k < c.processes; k++) {
            kill(p->ws[k].pid, SIGKILL);
            waitpid(p->ws[k].pid, NULL, 0);
        }
        goto fail;
    }
    sl_tasklet_ref(p->collector);
    sl_pool *h = pool_register(p);
    if (!h) { /* MAX_POOLS pools at once */
        pool_free(p);
        return SL_ENOMEM;
    }
    *out = h;
    return 0;
fail:
    pool_destroy(p);
    return rc;
}

/* Queue one task on the least loaded worker: kind, fn, input bytes, chunk
 * geometry, and its pending record. Blocks (the tasklet) while every
 * queue is full or the heap has no room. */
static int enqueue(sl_pool *p, uint32_t kind, sl_task_fn fn, const void *in,
                   size_t in_len, uint32_t n, uint32_t in_size,
                   uint32_t out_size, struct pend pd)
{
    struct mp_shared *sh = p->sh;
    uint64_t off = 0;
    if (in_len > MP_TASK_INLINE) {
        while (!(off = mp_heap_alloc(sh, in_len))) {
            int rc = sl_sleep_ms(1); /* results being collected free it */
            if (rc < 0)
                return rc;
        }
        memcpy(mp_heap_ptr(sh, off), in, in_len);
    }
    pd.in_off = off;
    for (;;) {
        int rc = sl_lock_acquire(&p->lock);
        if (rc < 0) {
            mp_heap_free(sh, off);
            return rc;
        }
        if (p->closed || p->terminated) {
            sl_lock_release(&p->lock);
            mp_heap_free(sh, off);
            return SL_ECLOSED;
        }
        int best = -1;
        uint64_t best_n = UINT64_MAX;
        for (uint32_t i = 0; i < sh->nprocs; i++) {
            uint64_t q = p->ws[i].tail - p->ws[i].head;
            if (q < best_n && q < sh->depth) {
                best_n = q;
                best = (int)i;
            }
        }
        struct mp_task *t = NULL;
        if (best >= 0)
            t = mp_ring_reserve(mp_at(sh, sh->w[best].task_ring));
        if (!t) {
            sl_lock_release(&p->lock);
            rc = sl_sleep_ms(1); /* every queue is full */
            if (rc < 0) {
                mp_heap_free(sh, off);
                return rc;
            }
            continue;
        }
        struct wstate *w = &p->ws[best];
        w->fifo[w->tail % sh->depth] = pd;
        w->tail++;
        t->id = w->tail; /* = position + 1: checked against the FIFO */
        t->fn = fn;
        t->kind = kind;
        t->in_len = (uint32_t)in_len;
        t->in_off = off;
        t->n = n;
        t->in_size = in_size;
        t->out_size = out_size;
        if (!off && in_len)
            memcpy(t->data, in, in_len);
        struct mp_ring *tr = mp_at(sh, sh->w[best].task_ring);
        mp_ring_push(tr);
        p->inflight++;
        bool wake_collector = p->collector_idle;
        p->collector_idle = false;
        sl_lock_release(&p->lock);
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load(&sh->w[best].sleeping))
            mp_ring_bell(sh->w[best].evfd);
        if (wake_collector)
            sl_event_set(&p->work);
        return 0;
    }
}

static int check_submit(sl_pool *p, sl_task_fn fn, const void *in,
                        size_t in_len)
{
    if (!p || !fn || (!in && in_len))
        return SL_EINVAL;
    if (in_len > p->cfg.max_task_size)
        return SL_EINVAL;
    if (!sl_current())
        return SL_ESTATE;
    return 0;
}

int sl_pool_submit(sl_pool *h, sl_task_fn fn, const void *in, size_t in_len,
                   sl_future **out)
{
    sl_pool *p = pool_get(h);
    if (!out)
        return SL_EINVAL;
    *out = NULL;
    int rc = check_submit(p, fn, in, in_len);
    if (rc)
        return rc;
    sl_future *f = calloc(1, sizeof *f);
    if (!f)
        return SL_ENOMEM;
    sl_event_init(&f->done);
    f->data = f->inline_buf;
    f->pool = p;
    struct pend pd = {.kind = PEND_FUTURE, .u.future = f};
    rc = enqueue(p, MP_TASK, fn, in, in_len, 0, 0, 0, pd);
    if (rc < 0) {
        future_release(f);
        return rc;
    }
    *out = f;
    return 0;
}

int sl_future_wait_timeout(sl_future *f, void *out, size_t *out_len,
                           int64_t timeout_ms)
{
    if (!f || (out_len && *out_len && !out))
        return SL_EINVAL;
    int rc = sl_event_wait(&f->done, timeout_ms);
    if (rc < 0)
        return rc;
    if (out_len) {
        size_t cap = *out_len;
        *out_len = f->len;
        if (f->len > cap)
            return -EMSGSIZE;
        if (f->len)
            memcpy(out, f->data, f->len);
    }
    return f->status;
}

int sl_future_wait(sl_future *f, void *out, size_t *out_len)
{
    return sl_future_wait_timeout(f, out, out_len, -1);
}

bool sl_future_done(const sl_future *f)
{
    return f && sl_event_is_set(&f->done);
}

void sl_future_free(sl_future *f)
{
    if (!f)
        return;
    sl_pool *p = f->pool;
    sl_lock_acquire(&p->lock);
    bool settled = f->settled;
    f->orphan = true; /* if not settled: the collector frees it then */
    sl_lock_release(&p->lock);
    if (settled)
        future_release(f);
}

int sl_pool_apply_async(sl_pool *h, sl_task_fn fn, const void *in,
                        size_t in_len, sl_pool_callback callback,
                        sl_pool_error_callback error_callback, void *arg)
{
    sl_pool *p = pool_get(h);
    int rc = check_submit(p, fn, in, in_len);
    if (rc)
        return rc;
    struct apply *a = calloc(1, sizeof *a);
    if (!a)
        return SL_ENOMEM;
    a->cb = callback;
    a->ecb = error_callback;
    a->arg = arg;
    struct pend pd = {.kind = PEND_APPLY, .u.apply = a};
    rc = enqueue(p, MP_TASK, fn, in, in_len, 0, 0, 0, pd);
    if (rc < 0)
        free(a);
    return rc;
}

/* Items per chunk: asked for (or n / (4 * processes)), within what one
 * task's input and one result may hold. */
static size_t chunk_items(sl_pool *p, size_t n, size_t in_size,
                          size_t out_size, size_t chunksize)
{
    size_t c = chunksize ? chunksize
                         : (n + 4 * (size_t)p->cfg.processes - 1) /
                               (4 * (size_t)p->cfg.processes);
    size_t by_in = p->cfg.max_task_size / in_size;
    size_t by_out = p->cfg.max_result_size / (8 + out_size);
    if (c > by_in)
        c = by_in;
    if (c > by_out)
        c = by_out;
    if (c > UINT32_MAX)
        c = UINT32_MAX;
    return c ? c : 1;
}

/* Cut job j into chunks of per items and start feeding it (the
 * collector queues the rest as results come back). SL_ECLOSED after
 * close or terminate. */
static int map_start(sl_pool *p, sl_task_fn fn, struct mapjob *j,
                     struct chunk *chunks, size_t nchunks, size_t per)
{
    j->fn = fn;
    j->chunks = chunks;
    j->nchunks = nchunks;
    j->chunks_left = nchunks;
    for (size_t k = 0; k < nchunks; k++) {
        struct chunk *c = &chunks[k];
        c->job = j;
        c->first = k * per;
        c->n = j->n - c->first < per ? j->n - c->first : per;
    }
    int rc = sl_lock_acquire(&p->lock);
    if (rc < 0)
        return rc;
    if (p->closed || p->terminated) {
        sl_lock_release(&p->lock);
        return SL_ECLOSED;
    }
    j->t0 = sl__now_ns();
    feed_job(p, j, j->t0);
    if (j->next_chunk < j->nchunks) {
        j->feed_next = p->feeding;
        p->feeding = j;
    }
    bool wake_collector = p->collector_idle;
    p->collector_idle = false;
    sl_lock_release(&p->lock);
    if (wake_collector)
        sl_event_set(&p->work);
    return 0;
}

static int map_check(sl_pool *p, sl_task_fn fn, const void *inputs,
                     size_t in_size, size_t n, size_t out_size)
{
    if (!p || !fn || (n && (!inputs || !in_size || !out_size)))
        return SL_EINVAL;
    if (in_size > p->cfg.max_task_size ||
        8 + out_size > p->cfg.max_result_size || out_size > UINT32_MAX)
        return SL_EINVAL;
    if (!sl_current())
        return SL_ESTATE;
    return 0;
}

int sl_pool_map(sl_pool *h, sl_task_fn fn, const void *inputs,
                size_t in_size, size_t n, void *outputs, size_t out_size,
                size_t chunksize, int *statuses)
{
    sl_pool *p = pool_get(h);
    int rc = map_check(p, fn, inputs, in_size, n, out_size);
    if (rc)
        return rc;
    if (n == 0)
        return 0;
    if (!outputs)
        return SL_EINVAL;
    size_t per = chunk_items(p, n, in_size, out_size, chunksize);
    size_t nchunks = (n + per - 1) / per;
    struct chunk *chunks = calloc(nchunks, sizeof *chunks);
    int *st = statuses ? statuses : malloc(n * sizeof *st);
    if (!chunks || !st) {
        free(chunks);
        if (!statuses)
            free(st);
        return SL_ENOMEM;
    }
    /* The job is on the heap, not our stack: the collector updates it
     * while we are parked. */
    struct mapjob *j = calloc(1, sizeof *j);
    if (!j) {
        free(chunks);
        if (!statuses)
            free(st);
        return SL_ENOMEM;
    }
    *j = (struct mapjob){.pool = p, .inputs = inputs, .outputs = outputs,
                         .statuses = st, .in_size = in_size,
                         .out_size = out_size, .n = n,
                         .caller_feeds = sl_current()->copy};
    sl_event_init(&j->done);
    sl_event_init(&j->ready);
    rc = map_start(p, fn, j, chunks, nchunks, per);
    /* A copy-mode caller (its stack holds what it holds only while it
     * runs) does it here, in its own tasklet: queue the chunks as room
     * comes, take every chunk as it is settled (by its result, a worker's
     * death or terminate) and scatter it. A fixed-stack caller leaves
     * both to the collector, which saves a wake-up of this tasklet and a
     * copy per chunk (10M tiny tasks/s at chunksize 1 against 1M). */
    size_t taken = 0;
    while (rc == 0 && !j->caller_feeds) { /* the collector does it all */
        sl_event_wait(&j->done, -1);
        sl_lock_acquire(&p->lock);
        bool more = j->chunks_left > 0;
        sl_lock_release(&p->lock);
        if (!more)
            break;
    }
    while (rc == 0 && j->caller_feeds && taken < nchunks) {
        sl_lock_acquire(&p->lock);
        if (j->next_chunk < j->nchunks && !p->terminated) {
            feed_job(p, j, sl__now_ns());
            if (j->next_chunk == j->nchunks)
                feeding_remove(p, j);
        }
        struct chunk *c = ready_pop(j);
        /* Nothing of ours in flight and chunks left to queue: the rings
         * or the heap are full of other work; look again soon. */
        bool stalled = j->next_chunk < j->nchunks &&
                       j->next_chunk == j->settled;
        sl_lock_release(&p->lock);
        if (!c) {
            sl_event_wait(&j->ready, stalled ? 1 : -1);
            continue;
        }
        taken++;
        const char *data = c->res_off ? mp_heap_ptr(p->sh, c->res_off)
                                      : c->res_inl;
        const int32_t *ist = (const int32_t *)data;
        const uint32_t *lens = (const uint32_t *)(ist + c->n);
        const char *outs = (const char *)(lens + c->n);
        for (size_t i = 0; i < c->n; i++) {
            bool ok = c->status == 0;
            st[c->first + i] = ok ? ist[i] : c->status;
            if (ok)
                memcpy((char *)outputs + (c->first + i) * out_size,
                       outs + i * out_size, lens[i]);
        }
        mp_heap_free(p->sh, c->res_off);
        free(c->res_inl);
    }
    if (rc == 0)
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = st[i];
    if (!statuses)
        free(st);
    free(chunks);
    sl_event_destroy(&j->done);
    sl_event_destroy(&j->ready);
    free(j);
    return rc;
}

int sl_pool_imap_unordered(sl_pool *h, sl_task_fn fn, const void *inputs,
                           size_t in_size, size_t n, size_t out_size,
                           size_t chunksize, sl_pool_iter **out)
{
    sl_pool *p = pool_get(h);
    if (!out)
        return SL_EINVAL;
    *out = NULL;
    int rc = map_check(p, fn, inputs, in_size, n, out_size);
    if (rc)
        return rc;
    sl_pool_iter *it = calloc(1, sizeof *it);
    if (!it)
        return SL_ENOMEM;
    size_t per = n ? chunk_items(p, n, in_size, out_size, chunksize) : 1;
    it->nchunks = (n + per - 1) / per;
    it->chunks = calloc(it->nchunks ? it->nchunks : 1, sizeof *it->chunks);
    if (!it->chunks) {
        free(it);
        return SL_ENOMEM;
    }
    /* The chunks are queued as the workers take them, after we return:
     * the iterator keeps its own copy of the inputs. */
    it->inputs = malloc(n * in_size + 1);
    if (!it->inputs) {
        free(it->chunks);
        free(it);
        return SL_ENOMEM;
    }
    if (n)
        memcpy(it->inputs, inputs, n * in_size);
    struct mapjob *j = &it->job;
    j->pool = p;
    j->inputs = it->inputs;
    j->in_size = in_size;
    j->out_size = out_size;
    j->n = n;
    sl_event_init(&j->done);
    sl_event_init(&j->ready);
    rc = map_start(p, fn, j, it->chunks, it->nchunks, per);
    if (rc < 0) {
        j->chunks_left = 0;
        it->nchunks = 0;
        sl_pool_iter_free(it);
        return rc;
    }
    *out = it;
    return 0;
}

int sl_pool_iter_next(sl_pool_iter *it, size_t *index, void *out,
                      size_t *out_len)
{
    if (!it)
        return SL_EINVAL;
    struct mapjob *j = &it->job;
    for (;;) {
        struct chunk *c = it->cur;
        if (c && c->next < c->n) {
            size_t i = c->next++;
            it->handed++;
            if (index)
                *index = c->first + i;
            size_t l = c->lens ? c->lens[i] : 0;
            if (out && c->outs)
                memcpy(out, c->outs + i * j->out_size, l);
            if (out_len)
                *out_len = l;
            return c->st ? c->st[i] : SL_ENOMEM;
        }
        if (it->handed == j->n)
            return SL_ECLOSED;
        sl_pool *p = j->pool;
        sl_lock_acquire(&p->lock);
        c = ready_pop(j);
        bool none_left = !c && j->chunks_left == 0;
        sl_lock_release(&p->lock);
        if (c) {
            it->cur = c;
            continue;
        }
        if (none_left)
            return SL_ECLOSED; /* some chunks could not be queued */
        int rc = sl_event_wait(&j->ready, -1);
        if (rc < 0)
            return rc;
    }
}

void sl_pool_iter_free(sl_pool_iter *it)
{
    if (!it)
        return;
    /* Chunks still in flight point at it: wait for them. */
    sl_pool *p = it->job.pool;
    for (;;) {
        sl_lock_acquire(&p->lock);
        bool busy = it->job.chunks_left > 0;
        sl_lock_release(&p->lock);
        if (!busy)
            break;
        sl_event_wait(&it->job.done, -1);
    }
    for (size_t k = 0; k < it->nchunks; k++) {
        free(it->chunks[k].st);
        free(it->chunks[k].lens);
        free(it->chunks[k].outs);
    }
    free(it->chunks);
    free(it->inputs);
    sl_event_destroy(&it->job.done);
    sl_event_destroy(&it->job.ready);
    free(it);
}

int sl_pool_close(sl_pool *h)
{
    sl_pool *p = pool_get(h);
    if (!p)
        return SL_EINVAL;
    sl_lock_acquire(&p->lock);
    p->closed = true;
    sl_lock_release(&p->lock);
    return 0;
}

int sl_pool_join(sl_pool *h)
{
    sl_pool *p = pool_get(h);
    if (!p)
        return SL_EINVAL;
    if (!p->closed)
        return SL_ESTATE;
    if (!sl_current())
        return SL_ESTATE;
    sl_lock_acquire(&p->lock);
    /* A map started before close is still being fed: its chunks must be
     * queued before the stops. */
    while (p->feeding && !p->terminated) {
        sl_lock_release(&p->lock);
        sl_sleep_ms(1);
        sl_lock_acquire(&p->lock);
    }
    if (!p->stopping && !p->terminated) {
        p->stopping = true;
        /* A stop after the queued tasks of every worker. */
        for (uint32_t i = 0; i < p->sh->nprocs; i++) {
            struct mp_ring *tr = mp_at(p->sh, p->sh->w[i].task_ring);
            struct mp_task *t;
            while (!(t = mp_ring_reserve(tr))) {
                sl_lock_release(&p->lock);
                sl_sleep_ms(1);
                sl_lock_acquire(&p->lock);
            }
            memset(t, 0, sizeof *t);
            t->kind = MP_STOP;
            mp_ring_push(tr);
            p->ws[i].stop_sent = true;
            atomic_thread_fence(memory_order_seq_cst);
            if (atomic_load(&p->sh->w[i].sleeping))
                mp_ring_bell(p->sh->w[i].evfd);
        }
        if (p->collector_idle) {
            p->collector_idle = false;
            sl_event_set(&p->work);
        }
    }
    sl_lock_release(&p->lock);
    return sl_event_wait(&p->gone, -1);
}

static void pool_terminate(sl_pool *p)
{
    sl_lock_acquire(&p->lock);
    if (!p->terminated) {
        p->terminated = true;
        p->closed = true;
        for (uint32_t i = 0; i < p->sh->nprocs; i++) {
            struct wstate *w = &p->ws[i];
            if (!w->alive)
                continue;
            kill(w->pid, SIGKILL);
            waitpid(w->pid, NULL, 0);
            epoll_ctl(p->epfd, EPOLL_CTL_DEL, w->pidfd, NULL);
            close(w->pidfd);
            w->pidfd = -1;
            w->alive = false;
            p->live--;
        }
        drain_all(p); /* results pushed before the kill still count */
        for (uint32_t i = 0; i < p->sh->nprocs; i++)
            fail_all(p, (int)i, SL_ECLOSED);
        fail_feeding(p, SL_ECLOSED);
        if (p->collector_idle) {
            p->collector_idle = false;
            sl_event_set(&p->work);
        }
        mp_ring_bell(p->sh->parent_evfd);
    }
    sl_lock_release(&p->lock);
    if (sl_current() && !p->collector_done)
        sl_event_wait(&p->gone, -1);
}

int sl_pool_terminate(sl_pool *h)
{
    sl_pool *p = pool_get(h);
    if (!p)
        return SL_EINVAL;
    pool_terminate(p);
    return 0;
}

static void pool_free(sl_pool *p)
{
    pool_terminate(p);
    if (p->collector) {
        if (!p->collector_done) /* no runtime to let it finish */
            sl_tasklet_kill(p->collector);
        sl_tasklet_unref(p->collector);
    }
    pool_destroy(p);
}

void sl_pool_free(sl_pool *h)
{
    sl_pool *p = pool_get(h);
    if (!p)
        return; /* NULL, or freed already */
    pool_unregister(h);
    pool_free(p);
}

/* For mpchan.c: the pool's shared mapping and this process's waiting. */
struct mp_shared *mp_pool_shared(sl_pool *p)
{
    return p->sh;
}

struct mp_local *mp_pool_local(sl_pool *p)
{
    return my_slot >= 0 ? mp_my_local : &p->local;
}
