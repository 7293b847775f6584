/* worker.c - the child's side of the pool: a worker process's start (what
 * it keeps of the parent, how it learns of the parent's death), its
 * dispatcher, and the task runner.
 *
 * A worker trusts nothing either, but the stakes are its own: when its
 * rings or descriptors make no sense (another process wrote over them) it
 * exits (SL__MP_EXIT_CORRUPT), and the parent treats that as any death. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mp/mp.h"

int sl__mp_my_slot = -1;
sl_pool *sl__mp_my_pool;

int sl_pool_worker_index(void)
{
    return sl__mp_my_slot;
}

/* 1: pidfd_open works, -1: it does not (old kernels, valgrind), 0: not
 * tried yet. Children inherit what the parent found. */
static int pidfd_works;

int sl__mp_pidfd_open(pid_t pid)
{
    if (pidfd_works < 0)
        return -1;
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0 && errno == ENOSYS)
        pidfd_works = -1;
    else if (fd >= 0)
        pidfd_works = 1;
    return fd;
}

bool sl__mp_have_pidfds(void)
{
    if (pidfd_works == 0) {
        int fd = sl__mp_pidfd_open(getpid());
        if (fd >= 0)
            close(fd);
    }
    return pidfd_works > 0;
}

/* This process's state as worker of slot (its own memory). */
static struct {
    sl_pool *p;
    uint32_t slot;
    struct mp_wctl *ctl;
    struct mp_ring tr;  /* tasks: we consume  */
    struct mp_ring rr;  /* results: we produce */
    size_t cap;         /* max_result_size    */
    char *outbuf;       /* cap bytes, guard pages around */
    char *area;         /* our result area (mp.h, mp_area_at) */
    uint64_t area_pos;  /* bytes of it written */
    int32_t *side;      /* a chunk's statuses, then its sizes */
    int evfd;
    int life;           /* the life pipe's write end (no pidfds), or -1 */
} W;

volatile sig_atomic_t sl__mp_forked_away;

/* pthread_atfork's child handler, in a worker. */
static void on_task_fork(void)
{
    sl__mp_forked_away = 1;
    if (W.life >= 0) /* the worker's death must show, not the helper's */
        close(W.life);
}

static void corrupt(void)
{
    _exit(SL__MP_EXIT_CORRUPT);
}

/* ---- start ------------------------------------------------------------- */

static int cmp_int(const void *a, const void *b)
{
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

static void close_from(unsigned lo, unsigned hi)
{
    if (syscall(SYS_close_range, lo, hi, 0) == 0 || lo > hi)
        return;
    struct rlimit rl; /* no close_range: one by one, up to the limit */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        rl.rlim_cur = 65536;
    for (unsigned fd = lo; fd <= hi && fd < rl.rlim_cur; fd++)
        close((int)fd);
}

/* Close every descriptor but the standard ones and what the worker uses:
 * the parent's doorbells, every process's mpchan bell, its own task bell,
 * its life pipe. A socket the parent closes then ends at its peer, and a
 * replacement worker holds nothing opened since. */
static void keep_only_ours(sl_pool *p, int slot, int life)
{
    int keep[SL__MP_MAX_PROCESSES + 8];
    int n = 0;
    keep[n++] = 0, keep[n++] = 1, keep[n++] = 2;
    keep[n++] = p->parent_evfd;
    keep[n++] = p->parent_bell;
    keep[n++] = p->ws[slot].evfd;
    if (life >= 0)
        keep[n++] = life;
    for (uint32_t k = 0; k < p->map.nprocs; k++)
        keep[n++] = p->ws[k].bell;
    qsort(keep, (size_t)n, sizeof *keep, cmp_int);
    unsigned lo = 0;
    for (int i = 0; i < n; i++) {
        if (keep[i] < 0 || (unsigned)keep[i] < lo)
            continue;
        if ((unsigned)keep[i] > lo)
            close_from(lo, (unsigned)keep[i] - 1);
        lo = (unsigned)keep[i] + 1;
    }
    close_from(lo, ~0u);
}

/* The parent's death, seen by a thread of our own blocked on its pidfd:
 * it ends the process even while a task runs and never yields. */
static void *parent_watch(void *arg)
{
    struct pollfd pf = {.fd = (int)(intptr_t)arg, .events = POLLIN};
    while (poll(&pf, 1, -1) < 0 && errno == EINTR)
        ;
    _exit(SL__MP_EXIT_ORPHAN);
    return NULL;
}

static bool watch_parent(pid_t parent)
{
    int fd = sl__mp_pidfd_open(parent);
    if (fd < 0)
        return false;
    pthread_attr_t a;
    pthread_t th;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 << 10);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &a, parent_watch, (void *)(intptr_t)fd);
    pthread_attr_destroy(&a);
    if (rc != 0)
        close(fd);
    return rc == 0;
}

/* cap bytes between two inaccessible pages (the end against the upper
 * one, to 64 bytes): a task that writes past its buffer faults at once
 * instead of spoiling the worker's own heap. */
static char *guarded(size_t cap, size_t pg)
{
    size_t len = (cap + pg - 1) / pg * pg;
    if (len == 0)
        len = pg;
    char *b = mmap(NULL, len + 2 * pg, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        return NULL;
    if (mprotect(b + pg, len, PROT_READ | PROT_WRITE) != 0)
        return NULL;
    return b + pg + ((len - cap) & ~(size_t)63);
}

static void dispatcher(void *arg);

void sl__mp_worker_main(sl_pool *p, int slot, pid_t parent, int life)
{
    sl__fork_child_reset();
    sl__mp_my_slot = slot;
    sl__mp_my_pool = p;
    W.life = life;
    keep_only_ours(p, slot, life);
    sl__mp_forget_other_pools(p);
    sl__mp_protect(&p->map, (uint32_t)slot);
    /* Where there are no pidfds (valgrind), PR_SET_PDEATHSIG instead: it
     * follows the forking thread, whose end (the parent's runtime shut
     * down) then also ends us. */
    if (!watch_parent(parent))
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(SL__MP_EXIT_ORPHAN); /* the parent is already gone */
    pthread_atfork(NULL, NULL, on_task_fork);
    sl_config c;
    sl_config_init(&c);
    c.workers = p->cfg.workers;
    if (sl_init(&c) < 0)
        _exit(SL__MP_EXIT_RUNTIME);
    sl__mp_local_init(&p->local, p->ws[slot].bell);
    sl_spawn(dispatcher, p);
    sl_run();
    _exit(SL__MP_EXIT_DONE);
}

/* ---- waiting --------------------------------------------------------------- */

static bool task_ready(void *arg)
{
    (void)arg;
    return mp_ring_ready(&W.tr);
}

static bool result_room(void *arg)
{
    (void)arg;
    return mp_ring_reserve(&W.rr) != NULL || W.rr.bad;
}

/* The parent has taken the area's bytes up to *arg. */
static bool area_taken(void *arg)
{
    uint64_t upto = *(const uint64_t *)arg;
    return atomic_load_explicit(&W.ctl->area_head, memory_order_acquire) >=
           upto;
}

/* Sleep on our task bell until rung (the parent rings it when it sees us
 * asleep) or a nap has passed, unless cond already holds. */
static void nap(bool (*cond)(void *), void *arg)
{
    atomic_store(&W.ctl->sleeping, 1);
    atomic_thread_fence(memory_order_seq_cst);
    if (!cond(arg)) {
        int rc = sl_wait_fd(W.evfd, SL_READABLE, SL__MP_NAP_MS);
        if (rc < 0 && rc != SL_ETIMEDOUT)
            corrupt(); /* a task closed our bell */
    }
    atomic_store(&W.ctl->sleeping, 0);
    sl__mp_bell_drain(W.evfd);
}

static void wait_for(bool (*cond)(void *), void *arg)
{
    while (!cond(arg))
        if (!sl__mp_spin_until(cond, arg, false))
            nap(cond, arg);
}

static void ring_parent(sl_pool *p)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&mp_header(&p->map)->parent_sleeping))
        sl__mp_bell_ring(p->parent_evfd);
}

/* Room for a result of len bytes in our area, once the parent has taken
 * what was there (the collector rings us when it has taken results and
 * sees us asleep). */
static char *area_room(size_t len)
{
    size_t bytes = W.p->map.area_bytes;
    size_t off = mp_area_at(&W.area_pos, len, bytes);
    uint64_t upto = W.area_pos - bytes;
    if (W.area_pos > bytes)
        wait_for(area_taken, &upto);
    return W.area + off;
}

/* ---- running a task -------------------------------------------------------- */

/* After fn returns: a copy of this worker forked by the task ends here,
 * before it touches anything of the pool. */
static void back_from_task(void)
{
    if (sl__mp_forked_away)
        _exit(SL__MP_EXIT_FORKED);
}

/* Run one task or chunk into res (a reserved result slot). */
static void run_task(sl_pool *p, const struct mp_task *t,
                     struct mp_result *res)
{
    const struct mp_layout *m = &p->map;
    size_t cap = W.cap;
    const char *in = t->data;
    if (t->in_off) {
        if (t->in_off - 1 > m->heap_size ||
            t->in_len > m->heap_size - (t->in_off - 1))
            corrupt();
        in = mp_heap_ptr(m, t->in_off);
    } else if (t->in_len > MP_TASK_INLINE) {
        corrupt();
    }
    size_t out_len = 0;
    int status = 0;
    if (t->kind == MP_TASK) {
        out_len = cap;
        status = t->fn(in, t->in_len, W.outbuf, &out_len);
        back_from_task();
        if (status != 0) /* a failed task has no result */
            out_len = 0;
        else if (out_len > cap) /* more than it was given: an error */
            status = -EOVERFLOW, out_len = 0;
    } else if (t->kind == MP_CHUNK) {
        /* Statuses, sizes, then results; the first two are kept apart
         * while the items run, so that an item that writes before its
         * buffer spoils another item's bytes at worst, not the sizes. */
        size_t n = t->n, isz = t->in_size, osz = t->out_size;
        if (n == 0 || osz > cap / n || n * 8 > cap - n * osz ||
            (size_t)t->in_len != n * isz)
            corrupt();
        int32_t *st = W.side;
        uint32_t *lens = (uint32_t *)(st + n);
        char *outs = W.outbuf + 8 * n;
        for (size_t i = 0; i < n; i++) {
            size_t l = osz;
            int s = t->fn(in + i * isz, isz, outs + i * osz, &l);
            back_from_task();
            if (s == 0 && l > osz)
                s = -EOVERFLOW;
            st[i] = s;
            lens[i] = s ? 0 : (uint32_t)l;
        }
        memcpy(W.outbuf, st, 8 * n);
        out_len = n * (8 + osz);
    } else {
        corrupt();
    }
    res->id = t->id;
    res->status = status;
    res->out_len = out_len;
    res->in_area = out_len > MP_RESULT_INLINE;
    memcpy(res->in_area ? area_room(out_len) : res->data, W.outbuf, out_len);
}

/* The dispatcher: a worker's main loop. */
static void dispatcher(void *arg)
{
    sl_pool *p = arg;
    const struct mp_layout *m = &p->map;
    W.p = p;
    W.slot = (uint32_t)sl__mp_my_slot;
    W.ctl = mp_wctl(m, W.slot);
    W.evfd = p->ws[W.slot].evfd;
    sl__mp_ring_view(&W.tr, &W.ctl->task_head, &W.ctl->task_tail,
                     mp_task_slots(m, W.slot), m->depth - 1);
    sl__mp_ring_view(&W.rr, &W.ctl->res_tail, &W.ctl->res_head,
                     mp_result_slots(m, W.slot), m->depth - 1);
    W.cap = p->cfg.max_result_size;
    W.area = mp_area(m, W.slot);
    W.area_pos = atomic_load(&W.ctl->area_head); /* all taken */
    W.outbuf = guarded(W.cap, m->page);
    W.side = malloc(W.cap + 8);
    if (!W.outbuf || !W.side)
        _exit(SL__MP_EXIT_NOMEM);
    if (p->cfg.initializer)
        p->cfg.initializer(p->cfg.initarg);
    int done = 0;
    for (;;) {
        struct mp_task *t = mp_ring_peek(&W.tr);
        if (!t) {
            if (W.tr.bad)
                corrupt();
            wait_for(task_ready, NULL);
            continue;
        }
        /* Copy the slot: it is given back before fn runs, so the parent
         * can queue the next task meanwhile. Taking it off the ring is
         * what tells the parent we hold it (should we die now, it fails). */
        union {
            struct mp_task t;
            char raw[MP_SLOT];
        } copy;
        memcpy(copy.raw, t, MP_SLOT);
        mp_ring_pop(&W.tr);
        if (copy.t.kind == MP_STOP)
            break;
        struct mp_result *res;
        while (!(res = mp_ring_reserve(&W.rr))) {
            if (W.rr.bad)
                corrupt();
            if (!sl__mp_spin_until(result_room, NULL, false))
                sl_sleep_ms(1); /* the parent collects without ringing */
        }
        run_task(p, &copy.t, res);
        mp_ring_push(&W.rr);
        ring_parent(p);
        if (p->cfg.max_tasks_per_child > 0 &&
            ++done >= p->cfg.max_tasks_per_child)
            break;
    }
    _exit(SL__MP_EXIT_DONE);
}
