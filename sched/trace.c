/* trace.c - the trace: what every worker ran and why it switched
 * (sl_trace_start / sl_trace_stop, or SL_TRACE=path), recorded while the
 * program runs and turned into Chrome Trace Event JSON when it stops
 * (sched/trace_json.c). docs/trace.md is the user's view.
 *
 * Design.
 *   - Recording is cheap and owner-only. Each worker appends fixed
 *     32-byte records (a tick count and a few words, sched/trace.h) to a
 *     buffer of its own: no lock, no atomic read-modify-write, nothing
 *     formatted. The clock is the CPU's tick counter where it is invariant
 *     (arch/), about 10 ns a read.
 *   - A worker writes its own full buffer to the raw file, one writev(2)
 *     per 16,384 records (512 KiB), and goes on; nobody stops for it, and
 *     a program that dies has lost at most the buffer each worker was
 *     filling. The JSON is made from the raw file when the trace stops:
 *     JSON text costs ten times the bytes and several times the work of a
 *     record, which the workers cannot pay while they run (hackysack makes
 *     about five records a kick), and a thread formatting beside them
 *     falls behind on two CPUs. A raw file left by a program that died
 *     converts with tools/stackless-trace.
 *   - Stopping does not stop the world either. sl_trace_stop turns
 *     recording off, then waits until no worker is inside an append (each
 *     marks itself busy around one). That needs the workers' "busy, then
 *     look at `on`" to be seen in order by the stopper: a membarrier(2) on
 *     the stopper's side gives that without a fence on every append
 *     (userspace RCU's asymmetric fence); where membarrier is missing
 *     every append fences. Then every buffer is the stopper's.
 *   - Ticks become microseconds in the converter, by linear
 *     interpolation between the (tick, CLOCK_MONOTONIC) pairs the chunks
 *     carry (each read after its chunk's records, under the lock that
 *     orders the writes): the same mapping for every track, never going
 *     backwards, and no calibration pause at the start.
 *
 * Rejected: formatting JSON in place, or in a writer thread (above); one
 * buffer for every worker (a lock or an atomic on every event); stopping
 * the workers to collect their buffers (a tasklet that never yields would
 * hold the stop forever); calibrating the tick rate once at the start (a
 * pause, and an error that grows with the trace's length). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sched/observe.h"
#include "sched/trace.h"
#include "sched/wait.h"

/* Records a buffer: 512 KiB. On hackysack (docs/trace.md), 64 KiB writes
 * cost about a tenth of the untraced game's CPU time more than 512 KiB
 * ones, on ext4 and tmpfs alike (the kernel's cost is partly per write);
 * 16 KiB ones 0.2 more. A bigger buffer loses more to a crash (the one
 * being filled). */
#define TB_RECS 16384
#define MAX_WORKERS 128

#ifndef MEMBARRIER_CMD_PRIVATE_EXPEDITED
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED (1 << 3)
#define MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED (1 << 4)
#endif

struct tbuf {
    uint32_t n; /* records used */
    struct sl_trace_rec r[TB_RECS];
};

/* Per worker, on a cache line of its own. */
struct slot {
    uint8_t busy;      /* (owner; the stopper reads) inside an append    */
    struct tbuf *cur;  /* (owner while recording) its buffer             */
    uint32_t flows;    /* (owner) flows started here this session       */
} __attribute__((aligned(SL_CACHE_LINE)));
static struct slot slots[MAX_WORKERS];

static struct {
    pthread_mutex_t lock;  /* start and stop, one at a time               */
    pthread_mutex_t wlock; /* chunk writes: pairs in file order           */
    bool running;          /* (lock) a trace is on                        */
    uint8_t on;            /* (atomic) workers record                     */
    uint8_t session;       /* (atomic reads) tags flow ids: 1..255        */
    bool use_ticks;        /* the tick counter is the clock               */
    int nworkers;
    int raw, json;         /* the raw file (append only), the JSON's       */
    char *raw_path;
    int err;               /* (wlock) the first write error               */
} tr = {.lock = PTHREAD_MUTEX_INITIALIZER,
        .wlock = PTHREAD_MUTEX_INITIALIZER,
        .raw = -1,
        .json = -1};

/* 1: membarrier(2) is registered, appends need no fence; 2: they fence.
 * Decided at the first trace of the process. */
static int fence_mode;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline uint64_t ticks(void)
{
    if (sl_likely(tr.use_ticks))
        return sl_arch_ticks();
    return (uint64_t)mono_ns();
}

/* A (tick, ns) pair read close together: the closest of a few tries. */
static void read_pair(uint64_t *tick, int64_t *ns)
{
    int64_t spread = INT64_MAX;
    for (int i = 0; i < 4; i++) {
        int64_t a = mono_ns();
        uint64_t k = ticks();
        int64_t b = mono_ns();
        if (b - a < spread) {
            spread = b - a;
            *tick = k;
            *ns = a + (b - a) / 2;
        }
    }
}

/* ---- writing the raw file ------------------------------------------------ */

static int write_all(int fd, const struct iovec *iov, int n)
{
    struct iovec v[2];
    memcpy(v, iov, (size_t)n * sizeof *v);
    struct iovec *p = v;
    while (n > 0) {
        ssize_t k = writev(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -EIO;
        while (n > 0 && (size_t)k >= p->iov_len) {
            k -= (ssize_t)p->iov_len;
            p++;
            n--;
        }
        if (n > 0) {
            p->iov_base = (char *)p->iov_base + k;
            p->iov_len -= (size_t)k;
        }
    }
    return 0;
}

/* Write worker wi's buffer as a chunk and empty it (its owner, or the
 * stopper once it owns it). A failed write is kept for sl_trace_stop; the
 * records are dropped. */
static __attribute__((noinline)) void flush(int wi)
{
    struct tbuf *b = slots[wi].cur;
    struct sl_trace_chunk h = {SL_TRACE_CHUNK_MAGIC, wi, b->n, 0, 0, 0};
    struct iovec v[2] = {{&h, sizeof h},
                         {b->r, (size_t)b->n * sizeof b->r[0]}};
    pthread_mutex_lock(&tr.wlock);
    read_pair(&h.tick, &h.ns); /* after every record of b */
    int rc = tr.err ? 0 : write_all(tr.raw, v, 2);
    if (rc && !tr.err)
        tr.err = rc;
    pthread_mutex_unlock(&tr.wlock);
    b->n = 0;
}

/* ---- recording (the workers) --------------------------------------------- */

/* Mark the slot busy and look at `on` (see the top). False: not
 * recording, and the slot is not busy. */
static inline bool append_begin(struct slot *s)
{
#if SL_TSAN
    __atomic_store_n(&s->busy, 1, __ATOMIC_SEQ_CST);
    bool on = __atomic_load_n(&tr.on, __ATOMIC_SEQ_CST);
#else
    SL_STORE(&s->busy, 1);
    if (sl_unlikely(fence_mode != 1))
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    else
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    bool on = SL_LOAD(&tr.on);
#endif
    if (!on)
        SL_STORE_REL(&s->busy, 0);
    return on;
}

static inline void append_end(struct slot *s)
{
    SL_STORE_REL(&s->busy, 0);
}

/* Room for n records in worker wi's buffer (s is its slot). */
static inline struct sl_trace_rec *room(struct slot *s, int wi, uint32_t n)
{
    struct tbuf *b = s->cur;
    if (sl_unlikely(b->n + n > TB_RECS))
        flush(wi);
    return &b->r[b->n];
}

static void rec(sl_worker *w, int kind, uint64_t a, uint64_t b, uint32_t c,
                uint8_t x, uint16_t y)
{
    struct slot *s = &slots[w->index];
    if (!append_begin(s))
        return;
    struct sl_trace_rec *r = room(s, w->index, 1);
    *r = (struct sl_trace_rec){ticks(), a, b, c, (uint8_t)kind, x, y};
    s->cur->n++;
    append_end(s);
}

static inline uint64_t tid_of(const sl_tasklet *t)
{
    return t->is_idle ? SL_TR_IDLE : SL_LOAD(&t->id);
}

uint32_t sl__trace_flow(sl_worker *w)
{
    struct slot *s = &slots[w->index];
    uint32_t k = s->flows++ * (uint32_t)tr.nworkers + (uint32_t)w->index;
    return (uint32_t)SL_LOAD(&tr.session) << 24 | (k & 0xffffff);
}

/* The switch from `from` to `to` on w into buffer b (room for two made),
 * at ts: a BLOCK record first when from parks in a wait, then the SWITCH,
 * with the flow `to` was woken by. */
static inline __attribute__((always_inline)) void
switch_body(sl_worker *w, struct tbuf *b, uint64_t ts, sl_tasklet *from,
            sl_tasklet *to, bool ends)
{
    struct sl_trace_rec *r = &b->r[b->n];
    uint64_t fid = tid_of(from);
    uint8_t why = SL_TR_WHY_YIELD;
    uint32_t n = 1;
    if (ends) {
        why = SL_TR_WHY_END;
    } else if (fid != SL_TR_IDLE) {
        uint8_t st = SL_LOAD(&from->state);
        if (st == SL_T_SWITCHING && w->park == from)
            st = w->park_state; /* (mt: published after the switch) */
        if (st == SL_T_BLOCKED) {
            why = SL_TR_WHY_BLOCK;
            uint8_t k = from->wkind;
            r->ts = ts;
            r->a = fid;
            /* (a channel's wait queue is its first field) */
            r->b = k == SL_W_FD ? (uint64_t)(uint32_t)from->wait.result
                   : k == SL_W_CHAN || k == SL_W_SYNC
                       ? (uint64_t)(uintptr_t)from->wait.q
                       : 0;
            r->c = (from->wcount & SL_WC_TIMER) != 0;
            r->kind = SL_TR_BLOCK;
            r->x = k;
            r->y = k == SL_W_CHAN     ? (uint16_t)(uint8_t)from->wait.dir
                   : k == SL_W_SELECT ? from->wn
                   : k == SL_W_FD     ? (uint16_t)(uintptr_t)from->wait.value
                                      : 0;
            r++;
            n = 2;
        } else if (st == SL_T_PAUSED) {
            why = SL_TR_WHY_PAUSE;
        }
    }
    uint32_t flow = 0;
    if (!to->is_idle) {
        uint32_t f = SL_LOAD(&to->trace_flow);
        if (f) { /* one of this session's, or a leftover to drop */
            SL_STORE(&to->trace_flow, 0);
            if (f >> 24 == tr.session)
                flow = f;
        }
    }
    r->ts = ts;
    r->a = fid;
    r->b = tid_of(to);
    r->c = flow;
    r->kind = SL_TR_SWITCH;
    r->x = why;
    r->y = 0;
    b->n += n;
}

/* sl__trace_switch when the buffer is full or there is no tick counter
 * (the slot is busy). Apart, so that the usual path calls nothing. */
static __attribute__((noinline)) void
switch_slow(sl_worker *w, sl_tasklet *from, sl_tasklet *to, bool ends)
{
    struct slot *s = &slots[w->index];
    struct tbuf *b = s->cur;
    if (b->n + 2 > TB_RECS)
        flush(w->index);
    switch_body(w, b, ticks(), from, to, ends);
    append_end(s);
}

void sl__trace_switch(sl_worker *w, sl_tasklet *from, sl_tasklet *to,
                      bool ends)
{
    struct slot *s = &slots[w->index];
    if (!append_begin(s))
        return;
    struct tbuf *b = s->cur;
    if (sl_unlikely(b->n + 2 > TB_RECS || !tr.use_ticks))
        return switch_slow(w, from, to, ends);
    switch_body(w, b, sl_arch_ticks(), from, to, ends);
    append_end(s);
}

void sl__obs_spawn(sl_worker *w, sl_tasklet *t)
{
    rec(w, SL_TR_SPAWN, SL_LOAD(&t->id), 0, 0, 0, 0);
}

void sl__obs_kill(sl_worker *w, sl_tasklet *t)
{
    rec(w, SL_TR_KILL, SL_LOAD(&t->id), 0, 0, 0, 0);
}

static inline __attribute__((always_inline)) void
wake_body(sl_worker *w, struct tbuf *b, uint64_t ts, sl_tasklet *t,
          int cause, const void *on)
{
    struct sl_trace_rec *r = &b->r[b->n];
    uint32_t flow = sl__trace_flow(w);
    SL_STORE(&t->trace_flow, flow); /* before t can run: the caller wakes
                                       it after this */
    r->ts = ts;
    r->a = SL_LOAD(&t->id);
    r->b = (uint64_t)(uintptr_t)on;
    r->c = flow;
    r->kind = SL_TR_WAKE;
    r->x = (uint8_t)cause;
    r->y = SL_LOAD(&t->wkind);
    b->n++;
}

static __attribute__((noinline)) void
wake_slow(sl_worker *w, sl_tasklet *t, int cause, const void *on)
{
    struct slot *s = &slots[w->index];
    struct tbuf *b = s->cur;
    if (b->n + 1 > TB_RECS)
        flush(w->index);
    wake_body(w, b, ticks(), t, cause, on);
    append_end(s);
}

void sl__obs_wake(sl_worker *w, sl_tasklet *t, int cause, const void *on)
{
    struct slot *s = &slots[w->index];
    if (!append_begin(s))
        return;
    struct tbuf *b = s->cur;
    if (sl_unlikely(b->n + 1 > TB_RECS || !tr.use_ticks))
        return wake_slow(w, t, cause, on);
    wake_body(w, b, sl_arch_ticks(), t, cause, on);
    append_end(s);
}

void sl__obs_wait_end(sl_tasklet *t, int result)
{
    sl_worker *w = sl__self();
    if (!w) /* an offload helper: not a worker, no track */
        return;
    uint8_t k = SL_LOAD(&t->wkind);
    /* A throw or a kill ends a wait with SL__EPENDING (the tasklet takes
     * the error itself); the trace has one cause for both. */
    int cause = result == SL__EPENDING || result == SL_EKILLED
                    ? SL_OBS_KILL
                : result == SL_EDEADLOCK ? SL_OBS_DEADLOCK
                : k == SL_W_FD           ? SL_OBS_IO
                                         : SL_OBS_TIMER;
    uint64_t fd = k == SL_W_FD ? (uint64_t)(uint32_t)SL_LOAD(&t->wait.result)
                               : 0;
    rec(w, SL_TR_WAKE, SL_LOAD(&t->id), fd, 0, (uint8_t)cause,
        (uint16_t)(k | (result > 0 && result < 256 ? result << 8 : 0)));
}

/* A NAME record and the name after it, into slot s of worker wi (its
 * owner, or the starter before recording is on). */
static void name_rec(struct slot *s, int wi, const sl_tasklet *t)
{
    struct sl_trace_rec *r = room(s, wi, 2);
    r[0] = (struct sl_trace_rec){ticks(), SL_LOAD(&t->id), 0, 0,
                                 SL_TR_NAME, 0, 0};
    char *d = (char *)&r[1];
    _Static_assert(sizeof r[1] >= sizeof t->name, "a name fits a record");
    for (size_t i = 0; i < sizeof t->name; i++)
        d[i] = SL_LOAD(&t->name[i]);
    d[sizeof t->name - 1] = '\0';
    s->cur->n += 2;
}

void sl__obs_name(sl_tasklet *t)
{
    sl_worker *w = sl__self();
    if (!w)
        return;
    struct slot *s = &slots[w->index];
    if (!append_begin(s))
        return;
    name_rec(s, w->index, t);
    append_end(s);
}

/* ---- start and stop ------------------------------------------------------ */

static void name_cb(sl_tasklet *t, void *arg)
{
    (void)arg;
    if (SL_LOAD(&t->state) != SL_T_DEAD && SL_LOAD(&t->name[0]))
        name_rec(&slots[0], 0, t);
}

static void release(void)
{
    for (int i = 0; i < tr.nworkers; i++) {
        free(slots[i].cur);
        slots[i].cur = NULL;
    }
    if (tr.raw >= 0)
        close(tr.raw);
    if (tr.json >= 0)
        close(tr.json);
    tr.raw = tr.json = -1;
    free(tr.raw_path);
    tr.raw_path = NULL;
}

static void at_exit(void)
{
    (void)sl__trace_stop_any();
}

int sl_trace_start(const char *path)
{
    if (!path)
        return SL_EINVAL;
    sl_worker *w = sl__self();
    if (!w)
        return SL_ESTATE;
    pthread_mutex_lock(&tr.lock);
    if (tr.running) {
        pthread_mutex_unlock(&tr.lock);
        return SL_ESTATE;
    }
    int rc = 0;
    int n = sl__rt.nworkers;
    SL__ASSERT(n <= MAX_WORKERS);
    tr.nworkers = n;
    tr.err = 0;
    /* The JSON is written when the trace stops; the records go to
     * path.raw meanwhile (see the top). */
    size_t len = strlen(path);
    tr.raw_path = malloc(len + 5);
    if (!tr.raw_path)
        goto nomem;
    memcpy(tr.raw_path, path, len);
    memcpy(tr.raw_path + len, ".raw", 5);
    tr.json = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (tr.json < 0)
        goto errno_fail;
    tr.raw = open(tr.raw_path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND |
                  O_CLOEXEC, 0644);
    if (tr.raw < 0)
        goto errno_fail;
    for (int i = 0; i < n; i++) {
        slots[i].cur = malloc(sizeof(struct tbuf));
        if (!slots[i].cur)
            goto nomem;
        slots[i].cur->n = 0;
        /* busy is left alone: it is 0 but while a worker is inside an
         * append, and a worker that still saw the last session's bits may
         * be marking itself busy now (it then reads `on`); a store of 0
         * here could hide that append from the next stop. */
        slots[i].flows = 0;
    }
    if (!fence_mode) /* membarrier where the kernel has it (not under
                        valgrind or qemu-user: every append fences) */
        fence_mode = syscall(SYS_membarrier,
                             MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0,
                             0) == 0 ? 1 : 2;
    static bool exit_hook;
    if (!exit_hook && atexit(at_exit) == 0)
        exit_hook = true;
    tr.use_ticks = sl_arch_ticks_ok();
    uint8_t sess = (uint8_t)(tr.session + 1);
    SL_STORE(&tr.session, sess ? sess : 1);

    struct sl_trace_head h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, SL_TRACE_MAGIC, sizeof h.magic);
    h.nworkers = (uint32_t)n;
    h.pid = (int32_t)getpid();
    h.use_ticks = tr.use_ticks;
    read_pair(&h.tick0, &h.ns0);
    int f = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
    if (f >= 0) {
        ssize_t k = read(f, h.comm, sizeof h.comm - 1);
        close(f);
        for (ssize_t i = 0; i < k; i++)
            if (h.comm[i] == '\n')
                h.comm[i] = '\0';
    }
    struct iovec v = {&h, sizeof h};
    if ((rc = write_all(tr.raw, &v, 1)) < 0)
        goto fail;
    /* Where each track starts, and the names given already (a snapshot,
     * as sl_dump's): no worker records before `on`. */
    for (int i = 0; i < n; i++) {
        sl_tasklet *c = SL_LOAD(&sl__rt.workers[i]->current);
        struct sl_trace_rec *r = room(&slots[i], i, 1);
        *r = (struct sl_trace_rec){h.tick0, c ? tid_of(c) : SL_TR_IDLE, 0,
                                   0, SL_TR_START, 0, 0};
        slots[i].cur->n++;
    }
    name_cb(sl__rt.main, NULL);
    for (int i = 0; i < n; i++)
        sl__slab_each(&sl__rt.workers[i]->slab, name_cb, NULL);
    tr.running = true;
    __atomic_store_n(&tr.on, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_or(&sl__observe, (uint8_t)SL_OBS_TRACE, __ATOMIC_RELAXED);
    sl__obs_jump_bits();
    goto out;
errno_fail:
    rc = -errno;
    goto fail;
nomem:
    rc = SL_ENOMEM;
fail:
    if (tr.raw_path) {
        if (tr.raw >= 0)
            unlink(tr.raw_path);
        if (tr.json >= 0)
            unlink(path);
    }
    release();
out:
    pthread_mutex_unlock(&tr.lock);
    return rc;
}

/* Under tr.lock, a trace running: end it and make the JSON. */
static int stop_locked(void)
{
    /* No worker starts an append after this; wait for those inside one. */
    __atomic_fetch_and(&sl__observe, (uint8_t)~SL_OBS_TRACE,
                       __ATOMIC_RELAXED);
    sl__obs_jump_bits();
    __atomic_store_n(&tr.on, 0, __ATOMIC_SEQ_CST);
    if (fence_mode == 1)
        (void)syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0,
                      0);
    for (int i = 0; i < tr.nworkers; i++)
        while (__atomic_load_n(&slots[i].busy, __ATOMIC_ACQUIRE))
            sched_yield();
    /* Every buffer is ours now: close each track, write what is left. */
    uint64_t now = ticks();
    for (int i = 0; i < tr.nworkers; i++) {
        struct sl_trace_rec *r = room(&slots[i], i, 1);
        *r = (struct sl_trace_rec){now, 0, 0, 0, SL_TR_STOP, 0, 0};
        slots[i].cur->n++;
        flush(i);
    }
    int rc = tr.err;
    if (!rc && lseek(tr.raw, 0, SEEK_SET) < 0)
        rc = -errno;
    if (!rc)
        rc = sl__trace_convert(tr.raw, tr.json);
    if (!rc && close(tr.json) < 0)
        rc = -errno;
    else if (rc)
        close(tr.json);
    tr.json = -1;
    if (!rc) /* (kept otherwise: tools/stackless-trace converts it) */
        unlink(tr.raw_path);
    release();
    tr.running = false;
    return rc;
}

int sl_trace_stop(void)
{
    if (!sl__self())
        return SL_ESTATE;
    return sl__trace_stop_any();
}

int sl__trace_stop_any(void)
{
    pthread_mutex_lock(&tr.lock);
    int rc = tr.running ? stop_locked() : SL_ESTATE;
    pthread_mutex_unlock(&tr.lock);
    return rc;
}

void sl__trace_fork_child(void)
{
    /* The child forgets the trace: the files stay the parent's (our
     * copies of their descriptors are closed), and the locks may have
     * been held by a thread that did not come along. */
    pthread_mutex_init(&tr.lock, NULL);
    pthread_mutex_init(&tr.wlock, NULL);
    if (tr.raw >= 0)
        close(tr.raw);
    if (tr.json >= 0)
        close(tr.json);
    tr.raw = tr.json = -1;
    tr.raw_path = NULL; /* (the parent's copy: left, as the forgotten
                           runtime is) */
    for (int i = 0; i < MAX_WORKERS; i++)
        slots[i] = (struct slot){0};
    tr.running = false;
    tr.on = 0;
    fence_mode = 0; /* membarrier's registration is the process's */
}

void sl__trace_from_env(void)
{
    const char *p = getenv("SL_TRACE");
    if (!p || !*p)
        return;
    /* %p becomes the process id: forked pool workers that start a runtime
     * of their own then trace to files of their own. Without it, only the
     * process that read it first traces (a child would truncate its
     * parent's file). */
    static int owner;
    char path[4096];
    size_t n = 0;
    bool per_pid = false;
    for (const char *s = p; *s && n < sizeof path - 24; s++) {
        if (s[0] == '%' && s[1] == 'p') {
            n += (size_t)snprintf(path + n, sizeof path - n, "%d",
                                  (int)getpid());
            s++;
            per_pid = true;
        } else {
            path[n++] = *s;
        }
    }
    path[n] = '\0';
    if (!per_pid) {
        if (owner && owner != (int)getpid())
            return;
        owner = (int)getpid();
    }
    int rc = sl_trace_start(path);
    if (rc < 0)
        fprintf(stderr, "stackless: SL_TRACE=%s: cannot trace: %s\n", p,
                sl_strerror(rc));
}
