/* collector.c - the parent's side of the workers' lives: forking them,
 * taking their results, noticing their deaths, and the collector tasklet
 * that does it all.
 *
 * Every value read here from the shared mapping is read once and checked
 * against the parent's own records before it is used: a result's id
 * against the worker's FIFO, its length against what the task may return
 * (where it lies in the result area is the parent's own count), a ring
 * counter against the last one and the ring's size. A length beyond what
 * the task may return fails that task (-EOVERFLOW); anything else that
 * cannot be marks the worker broken: it is killed, and its death is
 * handled as any other (sl__mp_worker_broken). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mp/mp.h"

/* ---- forking a worker ---------------------------------------------------- */

/* Point slot's shared counters at where the parent's records say its rings
 * are (a worker that died may have left anything there), for the worker
 * about to be forked into it. */
static void reset_slot(sl_pool *p, int slot)
{
    struct wstate *w = &p->ws[slot];
    struct mp_wctl *c = mp_wctl(&p->map, (uint32_t)slot);
    w->tr.bad = w->rr.bad = false;
    w->rr.seen = w->rr.pos;
    atomic_store(&c->task_head, w->tr.seen);
    atomic_store(&c->task_tail, w->tr.pos);
    atomic_store(&c->res_head, w->rr.pos);
    atomic_store(&c->res_tail, w->rr.pos);
    atomic_store(&c->sleeping, 0);
    atomic_store(&c->area_head, w->area_pos); /* all taken */
}

/* A worker's life is watched through a pidfd: readable once it has ended,
 * however it ends, whoever else holds what it held. Where there are no
 * pidfds (valgrind), through a pipe whose only write end it holds (a fork
 * in a task closes its copy: worker.c, on_task_fork). */
int sl__mp_fork_worker(sl_pool *p, int slot)
{
    struct wstate *w = &p->ws[slot];
    pid_t parent = getpid();
    int life[2] = {-1, -1};
    bool pidfd = sl__mp_have_pidfds();
    if (!pidfd && pipe2(life, O_CLOEXEC) < 0)
        return -errno;
    reset_slot(p, slot);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        if (!pidfd) {
            close(life[0]);
            close(life[1]);
        }
        return -e;
    }
    if (pid == 0) {
        if (!pidfd)
            close(life[0]);
        sl__mp_worker_main(p, slot, parent, life[1]);
    }
    int fd = life[0];
    if (pidfd)
        fd = sl__mp_pidfd_open(pid);
    else
        close(life[1]);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)slot};
    if (fd < 0 || epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        if (fd >= 0)
            close(fd);
        return -e;
    }
    w->pid = pid;
    w->lifefd = fd;
    w->alive = true;
    w->broken = false;
    p->live++;
    return 0;
}

static struct pend *fifo_at(sl_pool *p, struct wstate *w, uint64_t id)
{
    return &w->fifo[(id - 1) & (p->map.depth - 1)];
}

void sl__mp_reap(sl_pool *p, int i)
{
    struct wstate *w = &p->ws[i];
    kill(w->pid, SIGKILL); /* not reaped yet: the pid is still ours */
    waitpid(w->pid, NULL, 0);
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, w->lifefd, NULL);
    close(w->lifefd);
    w->lifefd = -1;
    w->alive = false;
    p->live--;
}

void sl__mp_unlock_waking(sl_pool *p)
{
    bool wake = p->collector_idle;
    p->collector_idle = false;
    sl_lock_release(&p->lock);
    if (wake)
        sl_event_set(&p->work);
}

void sl__mp_worker_broken(sl_pool *p, int i)
{
    struct wstate *w = &p->ws[i];
    if (w->alive && !w->broken) {
        w->broken = true;
        kill(w->pid, SIGKILL); /* not reaped yet: the pid is still ours */
    }
}

int sl__mp_pick_worker(sl_pool *p, struct mp_task **slot)
{
    int best = -1;
    uint64_t best_n = UINT64_MAX;
    *slot = NULL;
    for (uint32_t i = 0; i < p->map.nprocs; i++) {
        struct wstate *w = &p->ws[i];
        uint64_t q = w->tail - w->head;
        if (!w->alive || w->broken || q >= best_n || q >= p->map.depth)
            continue;
        struct mp_task *t = mp_ring_reserve(&w->tr);
        if (t) {
            best_n = q;
            best = (int)i;
            *slot = t;
        } else if (w->tr.bad) {
            sl__mp_worker_broken(p, (int)i);
        }
    }
    return best;
}

void sl__mp_wake_worker(sl_pool *p, int i)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&mp_wctl(&p->map, (uint32_t)i)->sleeping))
        sl__mp_bell_ring(p->ws[i].evfd);
}

void sl__mp_queue(sl_pool *p, int i, struct mp_task *t,
                  const struct mp_task *hdr, const void *in, struct pend pd)
{
    struct wstate *w = &p->ws[i];
    SL__ASSERT(w->tr.pos == w->tail); /* no stop queued before a task */
    w->tail++;
    *fifo_at(p, w, w->tail) = pd;
    *t = *hdr;
    t->id = w->tail; /* = position + 1: checked against the FIFO */
    if (in && hdr->in_len)
        memcpy(t->data, in, hdr->in_len);
    mp_ring_push(&w->tr);
    p->inflight++;
    sl__mp_wake_worker(p, i);
}

/* ---- settling pending records ------------------------------------------- */

void sl__mp_future_release(sl_future *f)
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

/* A pending record is done: its status and result bytes (data may point
 * into shared memory: what is kept is copied; len is checked already).
 * Its input's heap block goes back.
 * Lock held. */
void sl__mp_settle(sl_pool *p, struct pend *pd, int status, const char *data,
                   size_t len)
{
    p->inflight--;
    switch (pd->kind) {
    case PEND_FUTURE: {
        sl_future *f = pd->u.future;
        if (f->orphan) {
            sl__mp_future_release(f);
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
        if (!sl_spawn(run_apply, a)) /* no tasklet: run it here */
            run_apply(a);
        break;
    }
    case PEND_CHUNK:
        sl__mp_chunk_settle(pd->u.chunk, status, data, len);
        break;
    }
    sl__mp_heap_free(&p->heap, pd->in_off);
    pd->in_off = 0;
}

/* Take every result worker i has pushed, each checked. Lock held. */
static size_t drain_worker(sl_pool *p, int i)
{
    struct wstate *w = &p->ws[i];
    struct mp_wctl *ctl = mp_wctl(&p->map, (uint32_t)i);
    size_t n = 0;
    bool area = false;
    struct mp_result *r;
    while (!w->broken && (r = mp_ring_peek(&w->rr))) {
        uint64_t id = MP_ONCE(r->id);
        int status = MP_ONCE(r->status);
        uint64_t len = MP_ONCE(r->out_len);
        bool in_area = MP_ONCE(r->in_area) != 0;
        struct pend *pd = fifo_at(p, w, id);
        size_t want = len; /* a chunk's result has one size */
        if (w->head != w->tail && id == w->head + 1 && pd->kind == PEND_CHUNK)
            want = pd->u.chunk->n * (8 + pd->u.chunk->job->out_size);
        if (w->head == w->tail || id != w->head + 1 || len != want ||
            in_area != (len > MP_RESULT_INLINE) ||
            (in_area && len > p->cfg.max_result_size)) {
            sl__mp_worker_broken(p, i); /* not a result it can have */
            break;
        }
        const char *data = r->data;
        if (in_area)
            data = mp_area(&p->map, (uint32_t)i) +
                   mp_area_at(&w->area_pos, len, p->map.area_bytes);
        if (pd->kind != PEND_CHUNK && len > p->cfg.max_result_size)
            status = -EOVERFLOW; /* more than it was given */
        if (status != 0 && pd->kind != PEND_CHUNK)
            len = 0, data = NULL; /* a failed task has no result */
        sl__mp_settle(p, pd, status, data, (size_t)len);
        w->head++;
        mp_ring_pop(&w->rr);
        area |= in_area;
        n++;
    }
    if (area) { /* copied: the worker may write there again */
        atomic_store_explicit(&ctl->area_head, w->area_pos,
                              memory_order_release);
        sl__mp_wake_worker(p, i); /* if it waits for that room */
    }
    if (w->rr.bad)
        sl__mp_worker_broken(p, i);
    return n;
}

size_t sl__mp_drain_all(sl_pool *p)
{
    size_t n = 0;
    for (uint32_t i = 0; i < p->map.nprocs; i++)
        n += drain_worker(p, (int)i);
    return n;
}

/* Put back what the parent last wrote in each worker's control page, in
 * case a task wrote over it: the tail of its task ring, the heads of its
 * result ring and result area. A worker would otherwise wait for tasks or
 * room it has. Lock held. */
static void heal(sl_pool *p)
{
    for (uint32_t i = 0; i < p->map.nprocs; i++) {
        struct wstate *w = &p->ws[i];
        struct mp_wctl *c = mp_wctl(&p->map, i);
        if (!w->alive || w->broken)
            continue;
        bool fixed = false;
        if (atomic_load(&c->task_tail) != w->tr.pos)
            atomic_store(&c->task_tail, w->tr.pos), fixed = true;
        if (atomic_load(&c->res_head) != w->rr.pos)
            atomic_store(&c->res_head, w->rr.pos), fixed = true;
        if (atomic_load(&c->area_head) != w->area_pos)
            atomic_store(&c->area_head, w->area_pos), fixed = true;
        if (fixed)
            sl__mp_bell_ring(w->evfd);
    }
}

/* A result for the collector. */
static bool any_result(void *arg)
{
    sl_pool *p = arg;
    for (uint32_t i = 0; i < p->map.nprocs; i++) {
        struct wstate *w = &p->ws[i];
        if (w->alive && !w->broken && mp_ring_ready(&w->rr))
            return true;
    }
    return false;
}

/* Fail every pending record of worker i. Lock held. */
void sl__mp_fail_all(sl_pool *p, int i, int status)
{
    struct wstate *w = &p->ws[i];
    while (w->head != w->tail) {
        sl__mp_settle(p, fifo_at(p, w, w->head + 1), status, NULL, 0);
        w->head++;
    }
}

/* ---- deaths -------------------------------------------------------------- */

/* Worker i's process has ended. Which tasks it held is which it took off
 * its ring: the ring's consumer counter, checked against the parent's own
 * positions (task id = position + 1). An honest worker holds at most one,
 * which fails with SL_EWORKERDIED; the rest of its ring goes to the
 * replacement. A counter that cannot be fails every task queued on it and
 * empties the ring. Lock held. */
static void worker_died(sl_pool *p, int i)
{
    struct wstate *w = &p->ws[i];
    drain_worker(p, i); /* what it finished counts */
    /* Its life descriptor says it has ended (a pidfd cannot be fooled; a
     * life pipe could be, by a task closing its end), so this kill, before
     * it is reaped, is harmless - or ends what only looked dead. */
    sl__mp_reap(p, i);
    uint64_t h = atomic_load(&mp_wctl(&p->map, (uint32_t)i)->task_head);
    bool sane = !w->tr.bad && h >= w->tr.seen && h >= w->head &&
                h <= w->tr.pos;
    while (w->head != w->tail && (!sane || w->head < h)) {
        sl__mp_settle(p, fifo_at(p, w, w->head + 1), SL_EWORKERDIED, NULL,
                      0);
        w->head++;
    }
    w->tr.seen = sane ? h : w->tr.pos;
    sl__mp_chans_repair(p, i);
    if (p->terminated)
        return;
    /* Replace it (the tasks left in its ring, and a stop queued after
     * them, go to the new one), unless it ended because it was told to. */
    bool more = w->head != w->tail;
    if ((!p->stopping || more) && sl__mp_fork_worker(p, i) < 0)
        sl__mp_fail_all(p, i, SL_EWORKERDIED);
}

/* Look at the workers' lives (non-blocking). Lock held. */
static void check_deaths(sl_pool *p)
{
    struct epoll_event ev[16];
    int n = epoll_wait(p->epfd, ev, 16, 0);
    for (int k = 0; k < n; k++) {
        if (ev[k].data.u64 == UINT64_MAX) {
            sl__mp_bell_drain(p->parent_evfd);
            continue;
        }
        int i = (int)ev[k].data.u64;
        if (p->ws[i].alive)
            worker_died(p, i);
    }
}

void sl__mp_collector(void *arg)
{
    sl_pool *p = arg;
    struct mp_header *hdr = mp_header(&p->map);
    for (unsigned round = 0;; round++) {
        sl_lock_acquire(&p->lock);
        size_t n = sl__mp_drain_all(p);
        if (p->feeding && !p->terminated)
            n += sl__mp_feed_all(p);
        if ((round & 255) == 255) { /* busy: still notice a death */
            check_deaths(p);
            heal(p);
        }
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
            if (sl__mp_spin_until(any_result, p, false)) {
                p->spin_misses = 0;
                continue;
            }
            p->spin_misses++;
        }
        /* Sleep until a result's bell or a worker's end. */
        int64_t slept = sl__now_ns();
        atomic_store(&hdr->parent_sleeping, 1);
        atomic_thread_fence(memory_order_seq_cst);
        if (!results_due || !any_result(p))
            sl_wait_fd(p->epfd, SL_READABLE, SL__MP_NAP_MS);
        atomic_store(&hdr->parent_sleeping, 0);
        if (sl__now_ns() - slept < SL__MP_SPIN_NS)
            p->spin_misses = 0;
        bool long_nap = sl__now_ns() - slept >= SL__MP_NAP_MS * 1000000;
        sl_lock_acquire(&p->lock);
        check_deaths(p);
        if (long_nap) /* nothing came: was a wake-up lost to a wild write? */
            heal(p);
        sl_lock_release(&p->lock);
    }
    p->collector_done = true;
    sl_event_set(&p->gone);
}
