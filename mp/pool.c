/* pool.c - the process pool: Python's multiprocessing.Pool for tasklets,
 * over shared memory. This file: the design, and the pool's public calls
 * (the rest of mp/: mp.h lists who does what).
 *
 * DESIGN
 *
 * Glossary.
 *   parent    the process that made the pool; it runs a runtime, and any of
 *             its tasklets may submit and wait.
 *   worker    a process forked by the pool (slot 0 .. processes-1). It
 *             forgets the parent's runtime, starts its own, and runs tasks
 *             one at a time in a dispatcher tasklet (worker.c).
 *   task      fn(in) -> (status, out), bytes in and out. A chunk is a task
 *             that runs fn over many same-size items (sl_pool_map: map.c).
 *   pending   the parent's record of a task in flight (a future, a chunk of
 *             a map, an apply_async), kept per worker in submission order.
 *   collector the parent tasklet that takes results, gives large results
 *             their room, feeds maps and watches the workers' lives
 *             (collector.c).
 *
 * Chosen approach.
 *   - One anonymous MAP_SHARED mapping, made before the first fork
 *     (shm.c): per worker a task ring and a result ring (single producer,
 *     single consumer, 256-byte slots: small payloads travel inline), and
 *     a heap for larger payloads and mpchans. Nothing is left in the file
 *     system; the mapping dies with the last process.
 *   - The parent dispatches each task to the worker with the fewest tasks
 *     in flight. Per worker, tasks run and results come back in ring order,
 *     so the parent's pending records for a worker form a FIFO and a result
 *     always settles the oldest one: no table, no search.
 *   - A map is fed, not dumped: its chunks are queued about 2 ms of work
 *     per worker ahead (at least 2 chunks: one running, one waiting),
 *     estimated from how fast the job's chunks come back, and the
 *     collector tops the queues up as results arrive. A worker that runs
 *     faster (its core is not shared, it started sooner) so takes more
 *     chunks, where a split made up front waits for the slowest worker.
 *   - Which tasks a worker holds is which it has taken off its ring: it
 *     copies a task's slot, then moves the ring's consumer counter past
 *     it, then runs it. When a worker dies, the collector first takes every
 *     result it pushed, then fails the tasks it had taken and not answered
 *     (an honest worker holds at most one) with SL_EWORKERDIED, and forks
 *     a replacement into the same slot, which runs the tasks still in the
 *     ring. Nothing else is lost or run twice.
 *   - Only the parent allocates in the heap (task inputs, mpchans), and
 *     the allocator's metadata is in its private memory; an input's block
 *     is recorded in its pending record, and freed when that settles,
 *     however its worker ends. A result too large for a slot goes into
 *     its worker's result area, a byte ring filled and emptied in result
 *     order: where each result lies follows from the parent's own count
 *     of the bytes taken (mp_area_at), no allocation, no lock, and a
 *     worker that dies mid-copy leaves nothing to give back.
 *   - Wake-ups: each side spins briefly (50 us, yielding to its other
 *     tasklets), then raises a "sleeping" flag and waits on its eventfd
 *     with sl_wait_fd; the other side rings the eventfd only when it sees
 *     the flag (store-fence-load on both sides, so no wake is lost). A busy
 *     pool makes no system calls; an idle pool uses no CPU (a sleeper looks
 *     again once a second anyway: a flag a task wrote over can delay a
 *     wake-up, not lose it). The collector and the workers spin without
 *     sched_yield(): on a core busy with a long task of another process a
 *     yield hands that task a whole time slice (milliseconds), while nobody
 *     rings us, since we do not look asleep. The collector also stops
 *     spinning after two spins in a row found nothing (tasks longer than a
 *     spin), until a sleep turns out shorter than a spin: a parent waiting
 *     for millisecond tasks sleeps.
 *   - Handles are tokens (tag, table index, generation), not addresses:
 *     a freed pool's handle is refused (SL_EINVAL) even when a new pool
 *     has been allocated where the old one was, without reading freed
 *     memory (handle.c).
 *   - The collector waits on an epoll set of its own (the parent's eventfd
 *     and a pidfd per worker) only while tasks are in flight; with none, it
 *     waits on an event that submit sets, so sl_run() can return.
 *
 * Trust. A worker runs the user's code, which may crash, lie, write
 * anywhere in its process - the shared mapping included - or fork. None of
 * that may hang, crash or corrupt the parent:
 *   - the parent keeps its own copy of everything it hands out (ring
 *     positions, task ids, heap blocks and their sizes, descriptors, the
 *     layout) and reads from the mapping only what a worker must say: a
 *     ring counter, a result's id, status and length, a chunk's statuses
 *     and sizes, a request for room. Each is read once and checked against
 *     that copy; a length beyond what the task was given fails the task
 *     (-EOVERFLOW), any other value that cannot be has the worker killed
 *     and handled as dead;
 *   - no lock in shared memory: the rings are single-producer counters, the
 *     heap's allocator is the parent's alone, and an mpchan's copy is
 *     claimed by a compare-and-swap that names the process copying, which
 *     the parent undoes if that process dies (mpchan.c);
 *   - each worker can reach only its own rings and control page besides the
 *     heap and a header (mprotect after the fork), keeps no descriptor but
 *     the pool's (close_range), and writes its results from a buffer with
 *     guard pages on both sides;
 *   - worker life is watched with pidfds, which a task that forks cannot
 *     hold open (a life pipe could be: it is the fallback where pidfds are
 *     missing, with the fork's child closing its copy); a worker learns of
 *     the parent's death from a thread blocked on the parent's pidfd, so
 *     even a task that never yields ends with it (PR_SET_PDEATHSIG where
 *     pidfds are missing);
 *   - a copy of a worker forked by a task never runs pool code again.
 * What stays possible: a worker that writes a plausible wrong result, or
 * spoils the bytes of another task's input, result or an mpchan's message
 * in the heap, gives wrong results; a task that never returns holds its
 * worker (sl_pool_terminate ends it).
 *
 * Rejected.
 *   - pipes and serialisation (Python's way): a copy through the kernel and
 *     a system call per message; the rings cost a memcpy and no call;
 *   - one shared task queue for all workers (multi-consumer): needs a lock
 *     or CAS per task and loses the per-worker FIFO that makes crash
 *     accounting exact;
 *   - a spin lock in shared memory for the heap and the mpchans (the first
 *     design): a worker killed holding it wedged every process, and one
 *     writing over it hung the parent; robust process-shared mutexes
 *     recover from a dead holder but not from a forged one, and block the
 *     thread, not the tasklet;
 *   - workers allocating their result blocks in the heap (also the first
 *     design): free lists inside the blocks, which a task that wrote past
 *     its buffer corrupted under the parent's feet, and blocks lost when a
 *     worker died between allocating one and pushing its result;
 *   - the parent giving each large result its heap block on request (a
 *     request in the worker's control page, answered by the collector):
 *     safe, but a round trip to the parent per result: 87 us a task in
 *     bulk on a loaded machine, against 3.6 us before and with the result
 *     areas;
 *   - a life pipe as the sign of a worker's death: a task that forks a
 *     helper hands the helper the write end, and the death shows only when
 *     the helper ends;
 *   - futex wake-ups: the workers' schedulers wait in epoll, and an eventfd
 *     is what epoll can watch;
 *   - a shm_open object: a crash would leave it in /dev/shm.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mp/mp.h"

#define DEFAULT_TASK_SIZE ((size_t)1 << 20)
#define DEFAULT_RESULT_SIZE ((size_t)64 << 10)
#define DEFAULT_SHM_SIZE ((size_t)64 << 20)
#define DEFAULT_DEPTH 1024
#define AREA_MIN ((size_t)1 << 20)

void sl_pool_config_init(sl_pool_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->processes = n > 0 ? (int)(n > SL__MP_MAX_PROCESSES
                                       ? SL__MP_MAX_PROCESSES
                                       : n)
                           : 1;
    cfg->workers = 1;
    cfg->max_task_size = DEFAULT_TASK_SIZE;
    cfg->max_result_size = DEFAULT_RESULT_SIZE;
    cfg->shm_size = DEFAULT_SHM_SIZE;
    cfg->queue_depth = DEFAULT_DEPTH;
}

static void pool_destroy(sl_pool *p)
{
    if (p->ws) {
        for (uint32_t i = 0; i < p->map.nprocs; i++) {
            struct wstate *w = &p->ws[i];
            free(w->fifo);
            if (w->lifefd >= 0)
                close(w->lifefd);
            if (w->evfd >= 0)
                close(w->evfd);
            if (w->bell >= 0)
                close(w->bell);
        }
        free(p->ws);
    }
    if (p->parent_evfd >= 0)
        close(p->parent_evfd);
    if (p->parent_bell >= 0)
        close(p->parent_bell);
    if (p->epfd >= 0)
        close(p->epfd);
    sl__mp_heap_fini(&p->heap);
    sl__mp_unmap(&p->map);
    free(p->chans);
    sl_lock_destroy(&p->lock);
    sl_event_destroy(&p->work);
    sl_event_destroy(&p->gone);
    free(p);
}

/* The config with its defaults filled in, or SL_EINVAL. */
static int config_check(sl_pool_config *c)
{
    if (c->processes < 1 || c->processes > SL__MP_MAX_PROCESSES ||
        c->workers < 1 || c->workers > SL__MP_MAX_WORKERS ||
        c->max_tasks_per_child < 0 || c->queue_depth < 0 ||
        c->queue_depth > (int)SL__MP_MAX_DEPTH ||
        c->max_task_size > SL__MP_MAX_PAYLOAD ||
        c->max_result_size > SL__MP_MAX_PAYLOAD ||
        c->shm_size > SL__MP_MAX_HEAP)
        return SL_EINVAL;
    if (c->queue_depth == 0)
        c->queue_depth = DEFAULT_DEPTH;
    if (c->shm_size == 0)
        c->shm_size = DEFAULT_SHM_SIZE;
    if (c->max_result_size == 0)
        c->max_result_size = DEFAULT_RESULT_SIZE;
    if (c->max_task_size == 0)
        c->max_task_size = DEFAULT_TASK_SIZE;
    if (sl__mp_pow2(c->shm_size) < sl__mp_pow2(c->max_task_size))
        return SL_EINVAL; /* an input could never fit */
    return 0;
}

static void pool_free(sl_pool *p);

static void kill_forked(sl_pool *p, int n)
{
    for (int k = 0; k < n; k++) {
        kill(p->ws[k].pid, SIGKILL);
        waitpid(p->ws[k].pid, NULL, 0);
    }
}

int sl_pool_new(sl_pool **out, const sl_pool_config *cfg)
{
    if (!out)
        return SL_EINVAL;
    *out = NULL;
    if (!sl_current())
        return SL_ESTATE;
    if (sl__mp_my_slot >= 0)
        return SL_ESTATE; /* no pools inside a pool's worker */
    sl_pool_config c;
    if (cfg)
        c = *cfg;
    else
        sl_pool_config_init(&c);
    if (config_check(&c) < 0)
        return SL_EINVAL;
    uint32_t nprocs = (uint32_t)c.processes;
    uint32_t depth = 1;
    while (depth < (uint32_t)c.queue_depth)
        depth <<= 1;

    sl_pool *p = calloc(1, sizeof *p);
    if (!p)
        return SL_ENOMEM;
    p->cfg = c;
    p->epfd = p->parent_evfd = p->parent_bell = -1;
    sl_lock_init(&p->lock);
    sl_event_init(&p->work);
    sl_event_init(&p->gone);
    /* A result area holds four largest results (a worker writes the next
     * ones while the parent copies the last), and at least AREA_MIN: a
     * worker whose area is full waits for the collector, which may be
     * busy (a tasklet submitting in bulk holds the parent's thread until
     * every queue is full). */
    size_t area = sl__mp_pow2(4 * c.max_result_size);
    if (area < AREA_MIN)
        area = AREA_MIN; /* and at least a page: shm.c */
    int rc = sl__mp_map(&p->map, nprocs, depth, area,
                        sl__mp_pow2(c.shm_size));
    if (rc < 0)
        goto fail;
    rc = SL_ENOMEM;
    p->ws = calloc(nprocs, sizeof *p->ws);
    if (!p->ws)
        goto fail;
    for (uint32_t i = 0; i < nprocs; i++)
        p->ws[i].lifefd = p->ws[i].evfd = p->ws[i].bell = -1;
    if (sl__mp_heap_init(&p->heap, p->map.heap, p->map.orders) < 0)
        goto fail;
    p->parent_pid = getpid();
    for (uint32_t i = 0; i < nprocs; i++) {
        struct wstate *w = &p->ws[i];
        struct mp_wctl *ctl = mp_wctl(&p->map, i);
        w->fifo = calloc(depth, sizeof(struct pend));
        if (!w->fifo)
            goto fail;
        sl__mp_ring_view(&w->tr, &ctl->task_tail, &ctl->task_head,
                         mp_task_slots(&p->map, i), depth - 1);
        sl__mp_ring_view(&w->rr, &ctl->res_head, &ctl->res_tail,
                         mp_result_slots(&p->map, i), depth - 1);
    }
    int fl = EFD_NONBLOCK | EFD_CLOEXEC;
    if ((p->parent_evfd = eventfd(0, fl)) < 0 ||
        (p->parent_bell = eventfd(0, fl)) < 0 ||
        (p->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        rc = -errno;
        goto fail;
    }
    for (uint32_t i = 0; i < nprocs; i++) {
        if ((p->ws[i].evfd = eventfd(0, fl)) < 0 ||
            (p->ws[i].bell = eventfd(0, fl)) < 0) {
            rc = -errno;
            goto fail;
        }
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->parent_evfd, &ev) < 0) {
        rc = -errno;
        goto fail;
    }
    sl__mp_local_init(&p->local, p->parent_bell);
    for (uint32_t i = 0; i < nprocs; i++) {
        if ((rc = sl__mp_fork_worker(p, (int)i)) < 0) {
            kill_forked(p, (int)i);
            goto fail;
        }
    }
    p->collector = sl_spawn(sl__mp_collector, p);
    if (!p->collector) {
        rc = SL_ENOMEM;
        kill_forked(p, (int)nprocs);
        goto fail;
    }
    sl_tasklet_ref(p->collector);
    sl_pool *h = sl__mp_pool_register(p);
    if (!h) { /* SL__MP_MAX_POOLS pools at once */
        pool_free(p);
        return SL_ENOMEM;
    }
    *out = h;
    return 0;
fail:
    pool_destroy(p);
    return rc;
}

/* A heap block holding in's in_len bytes, for a task input. Parks (1 ms
 * at a time) until there is room: results being collected free it.
 * SL_EKILLED. */
static int input_block(sl_pool *p, const void *in, size_t in_len,
                       uint64_t *off)
{
    while (!(*off = sl__mp_heap_alloc(&p->heap, in_len, MP_BLOCK_DATA))) {
        int rc = sl_sleep_ms(1);
        if (rc < 0)
            return rc;
    }
    memcpy(mp_heap_ptr(&p->map, *off), in, in_len);
    return 0;
}

/* Queue one task on the least loaded worker, with its pending record.
 * Parks the tasklet while every queue is full or the heap has no room. */
static int enqueue(sl_pool *p, sl_task_fn fn, const void *in, size_t in_len,
                   struct pend pd)
{
    bool in_heap = in_len > MP_TASK_INLINE;
    int rc = in_heap ? input_block(p, in, in_len, &pd.in_off) : 0;
    while (rc == 0) {
        if ((rc = sl_lock_acquire(&p->lock)) < 0)
            break;
        if (p->closed || p->terminated) {
            sl_lock_release(&p->lock);
            rc = SL_ECLOSED;
            break;
        }
        struct mp_task *t;
        int best = sl__mp_pick_worker(p, &t);
        if (best < 0) {
            sl_lock_release(&p->lock);
            rc = sl_sleep_ms(1); /* every queue is full */
            continue;
        }
        struct mp_task hdr = {.fn = fn, .kind = MP_TASK,
                              .in_len = (uint32_t)in_len,
                              .in_off = pd.in_off};
        sl__mp_queue(p, best, t, &hdr, in_heap ? NULL : in, pd);
        sl__mp_unlock_waking(p);
        return 0;
    }
    sl__mp_heap_free(&p->heap, pd.in_off);
    return rc;
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
    sl_pool *p = sl__mp_pool_get(h);
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
    rc = enqueue(p, fn, in, in_len, pd);
    if (rc < 0) {
        sl__mp_future_release(f);
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
        sl__mp_future_release(f);
}

int sl_pool_apply_async(sl_pool *h, sl_task_fn fn, const void *in,
                        size_t in_len, sl_pool_callback callback,
                        sl_pool_error_callback error_callback, void *arg)
{
    sl_pool *p = sl__mp_pool_get(h);
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
    rc = enqueue(p, fn, in, in_len, pd);
    if (rc < 0)
        free(a);
    return rc;
}

int sl_pool_close(sl_pool *h)
{
    sl_pool *p = sl__mp_pool_get(h);
    if (!p)
        return SL_EINVAL;
    sl_lock_acquire(&p->lock);
    p->closed = true;
    sl_lock_release(&p->lock);
    return 0;
}

int sl_pool_join(sl_pool *h)
{
    sl_pool *p = sl__mp_pool_get(h);
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
        for (uint32_t i = 0; i < p->map.nprocs; i++) {
            struct wstate *w = &p->ws[i];
            struct mp_task *t;
            while (w->alive && !(t = mp_ring_reserve(&w->tr)) && !w->tr.bad) {
                sl_lock_release(&p->lock);
                sl_sleep_ms(1);
                sl_lock_acquire(&p->lock);
            }
            if (!w->alive || w->tr.bad) {
                if (w->tr.bad)
                    sl__mp_worker_broken(p, (int)i);
                continue; /* dead: it gets no replacement now */
            }
            memset(t, 0, sizeof *t);
            t->kind = MP_STOP;
            mp_ring_push(&w->tr);
            sl__mp_wake_worker(p, (int)i);
        }
    }
    sl__mp_unlock_waking(p);
    return sl_event_wait(&p->gone, -1);
}

static void pool_terminate(sl_pool *p)
{
    sl_lock_acquire(&p->lock);
    if (!p->terminated) {
        p->terminated = true;
        p->closed = true;
        for (uint32_t i = 0; i < p->map.nprocs; i++) {
            struct wstate *w = &p->ws[i];
            if (!w->alive)
                continue;
            sl__mp_reap(p, (int)i);
        }
        sl__mp_drain_all(p); /* results pushed before the kill still count */
        for (uint32_t i = 0; i < p->map.nprocs; i++) {
            sl__mp_fail_all(p, (int)i, SL_ECLOSED);
            sl__mp_chans_repair(p, (int)i);
        }
        sl__mp_fail_feeding(p, SL_ECLOSED);
        sl__mp_bell_ring(p->parent_evfd);
    }
    sl__mp_unlock_waking(p);
    if (sl_current() && !p->collector_done)
        sl_event_wait(&p->gone, -1);
}

int sl_pool_terminate(sl_pool *h)
{
    sl_pool *p = sl__mp_pool_get(h);
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
    sl_pool *p = sl__mp_pool_get(h);
    if (!p)
        return; /* NULL, or freed already */
    sl__mp_pool_unregister(h);
    pool_free(p);
}
