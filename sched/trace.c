/* trace.c - the trace: what every worker ran and why it switched
 * (sl_trace_start / sl_trace_stop, or SL_TRACE=path), recorded while the
 * program runs and turned into Chrome Trace Event JSON when it stops
 * (sched/trace_json.c). docs/trace.md is the user's view.
 *
 * Design.
 *   - Recording is cheap and owner-only. Each worker appends packed
 *     records of one to six 64-bit words (a tick delta, an id, flags,
 *     sched/trace.h) to a buffer of its own: no lock, no atomic
 *     read-modify-write, nothing formatted. The clock is the CPU's tick
 *     counter where it is invariant (arch/), about 10 ns a read.
 *   - What a busy program does most costs least: a channel hand-over
 *     whose partner runs at once is one record of two words, made by the
 *     wake hook (the switch it announces is then skipped), and a tasklet
 *     blocking in a channel one of two words. hackysack makes about four
 *     words a kick, against five 32-byte records in the first version:
 *     writing the bytes, not making them, was most of its cost.
 *   - A worker writes its own full buffer to the raw file, one writev(2)
 *     per 256 KiB, and goes on; nobody stops for it, and a program that
 *     dies has lost at most the buffer each worker was filling. The JSON
 *     is made from the raw file when the trace stops: JSON text costs
 *     twenty times the bytes and several times the work of a record,
 *     which the workers cannot pay while they run, and a thread
 *     formatting beside them falls behind on two CPUs. A raw file left by
 *     a program that died converts with tools/stackless-trace.
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

/* A buffer: 256 KiB, about 5,000 kicks of hackysack (docs/trace.md). The
 * kernel's cost of a write is partly per call (64 KiB writes cost a tenth
 * of the untraced game more than 512 KiB ones, with the first version's
 * 32-byte records); a bigger buffer loses more to a crash (the one being
 * filled). */
#define TB_WORDS (32u << 10)
#define MAX_WORKERS 128

#ifndef MEMBARRIER_CMD_PRIVATE_EXPEDITED
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED (1 << 3)
#define MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED (1 << 4)
#endif

struct tbuf {
    uint64_t w[TB_WORDS];
};

/* Per worker, on a cache line of its own. What the records are relative
 * to (sched/trace.h) is (owner) state here: the reader keeps the same. */
struct slot {
    uint8_t busy;      /* (owner; the stopper reads) inside an append    */
    struct tbuf *cur;  /* (owner while recording) its buffer             */
    uint64_t *p;       /* where its next record goes                     */
    uint64_t *fast;    /* records below this take the fast paths: room
                          for the longest (cur->w itself while there is
                          no tick counter: every record the slow way)    */
    uint64_t ts;       /* the tick of its last record                    */
    uint64_t addr;     /* the last address it recorded                   */
    uint64_t running;  /* the tasklet its last switch went to (id)      */
    uint32_t idhi;     /* the high half of the ids it records            */
    uint32_t flows;    /* the id of the next flow started here (before
                          the mask): n * nworkers + worker for the n-th */
    uint32_t flow;     /* the latest of them (masked)                    */
    bool started;      /* its START is written (begin_track)             */
} __attribute__((aligned(SL_CACHE_LINE)));
static struct slot slots[MAX_WORKERS];

static struct {
    pthread_mutex_t lock;  /* start and stop, one at a time               */
    pthread_mutex_t wlock; /* chunk writes: pairs in file order           */
    bool running;          /* (lock) a trace is on                        */
    uint8_t on;            /* (atomic) workers record                     */
    uint8_t session;       /* (atomic reads) tags flow ids: 1..255        */
    bool use_ticks;        /* the tick counter is the clock               */
    uint64_t t_on;         /* the tick read just before `on` was set: when
                              every track starts                         */
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
    struct slot *s = &slots[wi];
    struct tbuf *b = s->cur;
    uint32_t n = (uint32_t)(s->p - b->w);
    struct sl_trace_chunk h = {SL_TRACE_CHUNK_MAGIC, wi, n, 0, 0, 0};
    struct iovec v[2] = {{&h, sizeof h}, {b->w, (size_t)n * sizeof b->w[0]}};
    pthread_mutex_lock(&tr.wlock);
    read_pair(&h.tick, &h.ns); /* after every record of b */
    int rc = tr.err ? 0 : write_all(tr.raw, v, 2);
    if (rc && !tr.err)
        tr.err = rc;
    pthread_mutex_unlock(&tr.wlock);
    s->p = b->w;
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
    bool on = SL_LOAD_ACQ(&tr.on); /* (and the bits set before it) */
#endif
    if (!on)
        SL_STORE_REL(&s->busy, 0);
    return on;
}

static inline void append_end(struct slot *s)
{
    SL_STORE_REL(&s->busy, 0);
}

/* ---- packing (sched/trace.h) ---- */

static inline uint64_t tid_of(const sl_tasklet *t)
{
    return t->is_idle ? SL_TR_IDLE : SL_LOAD(&t->id);
}

/* Room for one record in s's buffer, of worker wi. */
static inline void room(struct slot *s, int wi)
{
    SL__ASSERT(s->p <= s->cur->w + TB_WORDS); /* (SL_TR_REC_MAX held) */
    if (sl_unlikely(s->p + SL_TR_REC_MAX > s->cur->w + TB_WORDS))
        flush(wi);
}

static inline void put(struct slot *s, uint64_t w)
{
    *s->p++ = w;
}

/* What a first word may need before it: a TIME for a dt that does not
 * fit, an IDHI for an id of another high half. Apart: rare. */
static __attribute__((noinline)) void escape(struct slot *s, uint64_t ts,
                                             uint64_t id)
{
    if (ts - s->ts >= 1u << SL_TR_DT_BITS) { /* (or backwards) */
        put(s, SL_TR_TIME);
        put(s, ts);
        s->ts = ts;
    }
    if ((uint32_t)(id >> 32) != s->idhi) {
        s->idhi = (uint32_t)(id >> 32);
        put(s, SL_TR_IDHI | (uint64_t)s->idhi << 32);
    }
}

/* A record's first word (room made): kind, flags, dt to ts, the low half
 * of id (escapes put before it). */
static inline __attribute__((always_inline)) uint64_t
first(struct slot *s, unsigned kind, unsigned flags, uint64_t ts, uint64_t id)
{
    if (sl_unlikely(((ts - s->ts) >> SL_TR_DT_BITS |
                     ((id >> 32) ^ s->idhi)) != 0))
        escape(s, ts, id);
    uint64_t dt = ts - s->ts;
    s->ts = ts;
    return kind | flags << 4 | dt << 10 | id << 32;
}

/* A wait word for address a (what it is relative to moves on); *far: the
 * address does not fit, a word with it follows. */
static inline __attribute__((always_inline)) uint64_t
wait_word(struct slot *s, unsigned k, unsigned y, uint64_t a, bool *far)
{
    uint64_t d = a - s->addr;
    s->addr = a;
    *far = d + (1ull << (SL_TR_ADDR_BITS - 1)) >= 1ull << SL_TR_ADDR_BITS;
    return k | (*far ? SL_TR_W_FAR : 0) | (uint64_t)(y & 0xffff) << 8 |
           d << 24;
}

/* No escape needed (sched/trace.h): dt fits, the id's high half is the
 * one in place, the address difference fits. */
static inline bool plain(const struct slot *s, uint64_t dt, uint64_t id,
                         uint64_t d)
{
    return ((dt >> SL_TR_DT_BITS | ((id >> 32) ^ s->idhi)) |
            ((d + (1ull << (SL_TR_ADDR_BITS - 1))) >> SL_TR_ADDR_BITS)) == 0;
}

/* A WAKE record (room made): its first word w0, then the wait word. */
static inline __attribute__((always_inline)) void
wake_rec(struct slot *s, uint64_t w0, uint64_t a, unsigned y)
{
    bool far;
    uint64_t w1 = wait_word(s, 0, y, a, &far);
    uint64_t *p = s->p;
    p[0] = w0;
    p[1] = w1;
    p[2] = a; /* (kept only if far) */
    s->p = p + (far ? 3 : 2);
}

/* A track's first record, in its owner (the slow paths: until then the
 * fast ones are closed, s->fast at the buffer's start): a START naming
 * the tasklet running, at the tick the trace went on. Written here, not
 * by the starter: every switch after `on` is watched (sl_trace_start sets
 * the workers' bits first), so the tasklet running at a worker's first
 * record has run since the trace went on, and nothing is recorded about
 * a switch the trace did not see. */
static __attribute__((noinline)) void begin_track(struct slot *s,
                                                  const sl_tasklet *running)
{
    uint64_t id = running ? tid_of(running) : SL_TR_IDLE;
    bool idle = id == SL_TR_IDLE;
    put(s, first(s, SL_TR_START, idle, tr.t_on, idle ? 0 : id));
    s->running = id;
    s->started = true;
    if (tr.use_ticks)
        s->fast = s->cur->w + TB_WORDS - SL_TR_REC_MAX;
}

static inline void track_begun(struct slot *s, const sl_tasklet *running)
{
    if (sl_unlikely(!s->started))
        begin_track(s, running);
}

/* A record of a kind whose only field is a tasklet id. */
static void rec_id(sl_worker *w, int kind, uint64_t id)
{
    struct slot *s = &slots[w->index];
    if (!append_begin(s))
        return;
    room(s, w->index);
    track_begun(s, w->current);
    put(s, first(s, (unsigned)kind, 0, ticks(), id));
    append_end(s);
}

/* A flow id for a wake on w, tagged with the trace session, to leave in
 * the woken tasklet's trace_flow. */
static inline uint32_t trace_flow(struct slot *s)
{
    s->flow = s->flows & SL_TR_FLOW_MASK;
    s->flows += (uint32_t)tr.nworkers;
    return (uint32_t)SL_LOAD(&tr.session) << 24 | s->flow;
}

/* The switch from `from` to `to` on w into slot s (room made, no wake
 * pending), at ts: why from left, what it blocks in, the flow `to` was
 * woken by. Every load comes before the first store into the buffer
 * (which could alias the slot, for all the compiler knows). */
static inline __attribute__((always_inline)) void
switch_body(sl_worker *w, struct slot *s, uint64_t ts, sl_tasklet *from,
            sl_tasklet *to, bool ends)
{
    uint64_t fid = tid_of(from);
    unsigned why = SL_TR_WHY_YIELD;
    if (ends) {
        why = SL_TR_WHY_END;
    } else if (fid != SL_TR_IDLE) {
        uint8_t st = SL_LOAD(&from->state);
        if (st == SL_T_SWITCHING && w->park == from)
            st = w->park_state; /* (mt: published after the switch) */
        if (st == SL_T_BLOCKED)
            why = SL_TR_WHY_BLOCK;
        else if (st == SL_T_PAUSED)
            why = SL_TR_WHY_PAUSE;
    }
    uint32_t flow = 0;
    unsigned flags = SL_TR_F_TO_IDLE;
    uint64_t tid = 0, running = SL_TR_IDLE;
    if (!to->is_idle) {
        tid = running = SL_LOAD(&to->id);
        flags = 0;
        uint32_t f = SL_LOAD(&to->trace_flow);
        if (f) { /* one of this session's, or a leftover to drop */
            SL_STORE(&to->trace_flow, 0);
            if (f >> 24 == tr.session) {
                flow = f & SL_TR_FLOW_MASK;
                flags = (flow == s->flow ? SL_TR_FLOW_LAST
                                         : SL_TR_FLOW_ID) << 2;
            }
        }
    }
    bool other = fid != s->running;
    flags |= why | (other ? SL_TR_F_FROM : 0);
    uint64_t wait = 0, a = 0;
    bool far = false;
    if (why == SL_TR_WHY_BLOCK) {
        uint8_t k = from->wkind;
        a = k == SL_W_FD ? (uint64_t)(uint32_t)from->wait.result
            : k == SL_W_CHAN || k == SL_W_SYNC
                ? (uint64_t)(uintptr_t)from->wait.q
                : 0; /* (a channel's wait queue is its first field) */
        unsigned y = k == SL_W_CHAN     ? (uint8_t)from->wait.dir
                     : k == SL_W_SELECT ? from->wn
                     : k == SL_W_FD     ? (uint16_t)(uintptr_t)from->wait.value
                                        : 0;
        wait = wait_word(s, k | ((from->wcount & SL_WC_TIMER)
                                     ? SL_TR_W_TIMEOUT
                                     : 0),
                         y, a, &far);
    }
    uint64_t w0 = first(s, SL_TR_SWITCH, flags, ts, tid);
    s->running = running;
    uint64_t *p = s->p;
    *p++ = w0;
    if ((flags >> 2 & 3) == SL_TR_FLOW_ID)
        *p++ = flow;
    if (other)
        *p++ = fid;
    if (why == SL_TR_WHY_BLOCK) {
        *p++ = wait;
        if (sl_unlikely(far))
            *p++ = a;
    }
    s->p = p;
}

/* Any switch, the slot busy: what sl__trace_switch's fast path leaves. */
static __attribute__((noinline)) void
switch_any(sl_worker *w, struct slot *s, sl_tasklet *from, sl_tasklet *to,
           bool ends)
{
    room(s, w->index);
    track_begun(s, from);
    switch_body(w, s, ticks(), from, to, ends);
    append_end(s);
}

/* The switch from `from` to `to` on w. The two a channel's hand-over
 * makes cost least: the caller yielding to the partner it woke was
 * recorded with the wake (w->trace_skip, sl__obs_switch), and a tasklet
 * blocking in a channel, the
 * next one not entered by a flow, has a path of its own; everything else
 * is switch_any's. */
void sl__trace_switch(sl_worker *w, sl_tasklet *from, sl_tasklet *to,
                      bool ends)
{
    struct slot *s = &slots[w->index];
    if (!append_begin(s))
        return;
    if (sl_likely(s->p < s->fast) && !ends &&
        SL_LOAD(&from->state) == SL_T_BLOCKED && from->wkind == SL_W_CHAN &&
        !to->is_idle && SL_LOAD(&from->id) == s->running &&
        SL_LOAD(&to->trace_flow) == 0) {
        /* A channel wait, to a tasklet that no wake's flow enters. Read
         * everything, then write (as in sl__obs_wake). */
        uint64_t *p = s->p;
        uint64_t ts = sl_arch_ticks();
        uint64_t id = SL_LOAD(&to->id);
        uint64_t a = (uint64_t)(uintptr_t)from->wait.q;
        uint64_t dt = ts - s->ts, d = a - s->addr;
        if (sl_likely(plain(s, dt, id, d))) {
            uint64_t y = (uint8_t)from->wait.dir;
            unsigned k = SL_W_CHAN |
                         ((from->wcount & SL_WC_TIMER) ? SL_TR_W_TIMEOUT : 0);
            s->ts = ts;
            s->addr = a;
            s->running = id;
            p[0] = SL_TR_SWITCH | SL_TR_WHY_BLOCK << 4 | dt << 10 | id << 32;
            p[1] = k | y << 8 | d << 24;
            s->p = p + 2;
            append_end(s);
            return;
        }
    }
    switch_any(w, s, from, to, ends);
}

void sl__obs_spawn(sl_worker *w, sl_tasklet *t)
{
    rec_id(w, SL_TR_SPAWN, SL_LOAD(&t->id));
}

void sl__obs_kill(sl_worker *w, sl_tasklet *t)
{
    rec_id(w, SL_TR_KILL, SL_LOAD(&t->id));
}

static __attribute__((noinline)) void
wake_slow(sl_worker *w, sl_tasklet *t, int cause, const void *on)
{
    struct slot *s = &slots[w->index];
    room(s, w->index);
    track_begun(s, w->current);
    uint64_t id = SL_LOAD(&t->id);
    wake_rec(s, first(s, SL_TR_WAKE, (unsigned)cause, ticks(), id),
             (uint64_t)(uintptr_t)on, SL_LOAD(&t->wkind));
    /* (the switch, if one follows, is recorded when it happens) */
    SL_STORE(&t->trace_flow, trace_flow(s));
    append_end(s);
}

bool sl__obs_wake(sl_worker *w, sl_tasklet *t, int cause, const void *on,
                  bool switching)
{
    struct slot *s = &slots[w->index];
    if (!append_begin(s))
        return false;
    /* Everything read first, then written (the buffer's words could be
     * the slot's, for all the compiler knows). */
    uint64_t *p = s->p;
    uint64_t id = SL_LOAD(&t->id), a = (uint64_t)(uintptr_t)on;
    uint64_t ts = sl_arch_ticks(); /* (not used unless fast: see fast) */
    uint64_t dt = ts - s->ts, d = a - s->addr;
    if (sl_unlikely(p >= s->fast || !plain(s, dt, id, d))) {
        wake_slow(w, t, cause, on);
        return false;
    }
    unsigned wk = SL_LOAD(&t->wkind);
    uint32_t k = s->flows;
    /* (the flow: the n-th of this worker's, which the reader counts) */
    uint32_t flow = (uint32_t)SL_LOAD(&tr.session) << 24 | (k & SL_TR_FLOW_MASK);
    /* The next switch is to t, from the tasklet the trace has running,
     * and no budget can send it elsewhere: one record for both, the flow
     * ending in it. Only if that switch is watched (SL_JS_OBSERVE, not
     * yet set while sl_trace_start runs): sl__obs_switch must take
     * trace_skip back, or it would skip a later switch to t. */
    bool fold = switching &&
                (SL_LOAD(&w->jump_slow) & (SL_JS_BUDGET | SL_JS_OBSERVE)) ==
                    SL_JS_OBSERVE &&
                SL_LOAD(&w->current->id) == s->running &&
                !w->current->is_idle;
    s->flows = k + (uint32_t)tr.nworkers;
    s->flow = k & SL_TR_FLOW_MASK;
    s->ts = ts;
    s->addr = a;
    unsigned f = (unsigned)cause;
    if (fold) {
        f |= SL_TR_F_SWITCHED;
        s->running = id;
        flow = 0;
        SL_STORE(&w->trace_skip, t); /* (sl__obs_switch) */
    }
    SL_STORE(&t->trace_flow, flow); /* before t can run: the caller wakes
                                       it after this */
    p[0] = SL_TR_WAKE | f << 4 | dt << 10 | id << 32;
    p[1] = (uint64_t)wk << 8 | d << 24;
    s->p = p + 2;
    append_end(s);
    return fold;
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
    struct slot *s = &slots[w->index];
    if (!append_begin(s))
        return;
    room(s, w->index);
    track_begun(s, w->current);
    wake_rec(s,
             first(s, SL_TR_WAKE, (unsigned)cause, ticks(), SL_LOAD(&t->id)),
             fd, k | (result > 0 && result < 256 ? (unsigned)result << 8 : 0));
    append_end(s);
}

/* A NAME record into slot s of worker wi (its owner, or the starter
 * before recording is on). */
static void name_rec(struct slot *s, int wi, const sl_tasklet *t)
{
    room(s, wi);
    put(s, first(s, SL_TR_NAME, 0, ticks(), SL_LOAD(&t->id)));
    char name[32] = {0};
    _Static_assert(sizeof t->name <= sizeof name, "a name fits a record");
    for (size_t i = 0; i < sizeof t->name - 1; i++)
        name[i] = SL_LOAD(&t->name[i]);
    memcpy(s->p, name, sizeof name);
    s->p += sizeof name / sizeof(uint64_t);
}

void sl__obs_name(sl_tasklet *t)
{
    sl_worker *w = sl__self();
    if (!w)
        return;
    struct slot *s = &slots[w->index];
    if (!append_begin(s))
        return;
    room(s, w->index);
    track_begun(s, w->current);
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
        slots[i].p = slots[i].cur->w;
        /* busy is left alone: it is 0 but while a worker is inside an
         * append, and a worker that still saw the last session's bits may
         * be marking itself busy now (it then reads `on`); a store of 0
         * here could hide that append from the next stop. */
        slots[i].flows = (uint32_t)i;
        slots[i].flow = 0;
        slots[i].addr = 0;
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
    for (int i = 0; i < n; i++) /* (the slow ways until begin_track) */
        slots[i].fast = slots[i].cur->w;
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
    /* The names given already (a snapshot, as sl_dump's), into worker 0's
     * buffer: no worker records before `on`. Each track's START is its
     * owner's (begin_track). */
    for (int i = 0; i < n; i++) {
        slots[i].ts = h.tick0;
        slots[i].idhi = 0;
        slots[i].started = false;
    }
    name_cb(sl__rt.main, NULL);
    for (int i = 0; i < n; i++)
        sl__slab_each(&sl__rt.workers[i]->slab, name_cb, NULL);
    tr.running = true;
    /* Every switch watched before anything is recorded: a worker that
     * sees `on` (acquire) sees its SL_JS_OBSERVE bit too. */
    __atomic_fetch_or(&sl__observe, (uint8_t)SL_OBS_TRACE, __ATOMIC_RELAXED);
    sl__obs_jump_bits();
    tr.t_on = ticks();
    __atomic_store_n(&tr.on, 1, __ATOMIC_SEQ_CST);
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
    /* No worker starts an append after this; wait for those inside one.
     * The hooks stay on until then (the mirror of the start): everything
     * before `on` goes off is recorded, nothing after it, and each track
     * ends when it went off. */
    uint64_t now = ticks();
    __atomic_store_n(&tr.on, 0, __ATOMIC_SEQ_CST);
    if (fence_mode == 1)
        (void)syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0,
                      0);
    for (int i = 0; i < tr.nworkers; i++)
        while (__atomic_load_n(&slots[i].busy, __ATOMIC_ACQUIRE))
            sched_yield();
    __atomic_fetch_and(&sl__observe, (uint8_t)~SL_OBS_TRACE,
                       __ATOMIC_RELAXED);
    sl__obs_jump_bits();
    for (int i = 0; i < tr.nworkers; i++) /* (none is set after this) */
        SL_STORE(&sl__rt.workers[i]->trace_skip, NULL);
    /* Every buffer is ours now: close each track, write what is left. */
    for (int i = 0; i < tr.nworkers; i++) {
        struct slot *sl = &slots[i];
        room(sl, i);
        if (!sl->started) /* no switch since `on`: one tasklet ran */
            begin_track(sl, SL_LOAD(&sl__rt.workers[i]->current));
        put(sl, first(sl, SL_TR_STOP, 0, now, (uint64_t)sl->idhi << 32));
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
