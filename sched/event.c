/* event.c - time and descriptors: per-worker timer heaps, per-worker epoll
 * instances, sl_sleep_ms, sl_wait_fd and the tasklet I/O calls built on it.
 *
 * Each worker owns a timer heap and an epoll instance; only its own thread
 * touches them. A tasklet that waits with a deadline arms a timer on the
 * worker it runs on; one that waits for a descriptor registers it with
 * that worker's epoll. The worker looks at both when its run queue is
 * empty (the idle loop: it sleeps in epoll_pwait2 until the next deadline,
 * a ready descriptor, or a kick on its eventfd) and, while busy, every
 * SL_POLL_EVERY scheduling points.
 *
 * Cancelling is lazy: a wait that ends some other way leaves its heap
 * entry behind, and the entry is recognised as stale because the waiter's
 * wseq has moved on (tasklet.h). Stale entries are dropped when they reach
 * the top, or all at once when they outnumber the live ones. So arming is
 * O(log n), cancelling is free, and no other thread ever touches a heap.
 *
 * Descriptors: one registration per (worker, fd), persistent and
 * edge-triggered (EPOLLET, for reading and writing at once), made by the
 * first wait on the descriptor and kept between waits, so that a wait
 * usually costs no system call at all. The slot of (worker, fd) keeps its
 * waiters (one reader and one writer at most: a second one gets -EBUSY,
 * as two tasklets reading one socket at once would interleave its bytes
 * anyway) and, per direction, a "may be ready" bit: set by every event
 * epoll reports, cleared only when the runtime has seen the descriptor
 * empty (EAGAIN from sl_read/sl_write/sl_accept, or a short sl_read of a
 * TCP socket, which drains its receive queue). While the bit is clear any
 * new readiness comes as a new edge, so a wait may park without asking
 * the kernel. Otherwise the wait re-checks the registration with
 * EPOLL_CTL_MOD, which makes epoll report the descriptor again if it is
 * ready now (and fails with ENOENT if the number now names another file,
 * which is then registered with EPOLL_CTL_ADD).
 *
 * A registration that reports two events in a row with nobody waiting
 * here is dropped (its tasklets moved to another worker, or stopped
 * waiting), so that a worker is not woken for descriptors it no longer
 * serves.
 *
 * Waits park without a system call only on TCP sockets (SO_PROTOCOL, read
 * once at registration); every other descriptor is re-checked at each
 * wait, as before. A number can outlive its file: close(2) drops the
 * file's registration and a new descriptor may get the number. The calls
 * that make or end descriptors (sl_accept, sl_connect, sl_close) bump the
 * number's epoch (a global table), and a slot registered under an older
 * epoch registers again. For a number closed and reused behind the
 * runtime's back, every wait parked without a check is re-checked after
 * FD_RECHECK_NS (a ring per worker, in parking order): such a wait is
 * late, never lost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "sched/testclock.h"
#include "sched/wait.h"

struct sl_timer {
    int64_t when;   /* deadline, monotonic ns */
    uint64_t seq;   /* arming order: equal deadlines fire in that order */
    sl_tasklet *t;
    uint32_t gen;   /* the wait it ends */
};

struct sl_fdslot {
    sl_tasklet *t[2]; /* [0] waits to read, [1] to write */
    uint32_t gen[2];
    uint32_t epoch;   /* fd_epoch(fd) when registered */
    uint8_t rdy;      /* bit d: direction d may be ready (see the top) */
    uint8_t unwaited; /* events in a row that found nobody waiting */
    uint8_t reg : 1;  /* registered with this epoll (persistent, EPOLLET) */
    uint8_t tcp : 1;  /* a TCP socket when registered: waits need no check */
    uint8_t noproof : 1; /* urgent data, hang-up or error seen: a short
                            read proves nothing any more               */
};

/* A wait parked without a check, to re-check once it is this old. */
struct sl_fdcheck {
    int64_t due;
    int fd;
    uint32_t gen;
};

#define FD_RECHECK_NS (50 * 1000000LL)
#define FD_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET)

#define EVFD_KEY UINT64_MAX

/* TEST HOOK (tests/model, sched/testclock.h): while on, the virtual time
 * in ns (>= 1); 0 when off, the normal case, which costs sl__now_ns one
 * predictable branch. */
static int64_t vclock_ns;

void sl__test_virtual_clock(bool on)
{
    __atomic_store_n(&vclock_ns, on ? 1000000000 : 0, __ATOMIC_RELAXED);
}

int64_t sl__now_ns(void)
{
    int64_t v = __atomic_load_n(&vclock_ns, __ATOMIC_RELAXED);
    if (sl_unlikely(v))
        return v;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t sl_now_ms(void)
{
    return sl__now_ns() / 1000000;
}

int64_t sl__deadline(int64_t timeout_ms)
{
    if (timeout_ms < 0)
        return 0;
    int64_t now = sl__now_ns();
    if (timeout_ms > (INT64_MAX - now) / 1000000)
        return INT64_MAX;
    return now + timeout_ms * 1000000;
}

/* ---- the timer heap ------------------------------------------------------ */

static bool timer_before(const struct sl_timer *a, const struct sl_timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_up(struct sl_timer *h, size_t i)
{
    struct sl_timer e = h[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!timer_before(&e, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static void heap_down(struct sl_timer *h, size_t n, size_t i)
{
    struct sl_timer e = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && timer_before(&h[c + 1], &h[c]))
            c++;
        if (!timer_before(&h[c], &e))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = e;
}

static bool timer_stale(const struct sl_timer *e)
{
    return SL_LOAD(&e->t->wseq) != e->gen;
}

static void heap_pop(sl_worker *w)
{
    w->timers[0] = w->timers[--w->ntimers];
    if (w->ntimers)
        heap_down(w->timers, w->ntimers, 0);
}

/* Drop every stale entry and rebuild (they outnumber the live ones). */
static void heap_compact(sl_worker *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->ntimers; i++)
        if (!timer_stale(&w->timers[i]))
            w->timers[n++] = w->timers[i];
    w->ntimers = n;
    for (size_t i = n / 2; i-- > 0;)
        heap_down(w->timers, n, i);
}

int sl__timer_arm(sl_worker *w, sl_tasklet *t, uint32_t gen, int64_t when)
{
    if (w->ntimers > 64 &&
        w->ntimers > 2 * (size_t)SL_LOAD(&w->timers_live))
        heap_compact(w);
    if (w->ntimers == w->timers_cap) {
        size_t cap = w->timers_cap ? 2 * w->timers_cap : 64;
        struct sl_timer *h = realloc(w->timers, cap * sizeof *h);
        if (!h)
            return SL_ENOMEM;
        w->timers = h;
        w->timers_cap = cap;
    }
    struct sl_timer *e = &w->timers[w->ntimers];
    e->when = when;
    e->seq = w->timer_seq++;
    e->t = t;
    e->gen = gen;
    heap_up(w->timers, w->ntimers++);
    __atomic_add_fetch(&w->timers_live, 1, __ATOMIC_RELAXED);
    sl__nwaits_add(1);
    t->wait_w = w;
    t->wcount |= SL_WC_TIMER;
    return 0;
}


/* End the waits whose deadline has passed, in deadline order. Returns the
 * next deadline (0: none); *woke counts the tasklets it made runnable. */
static int64_t run_timers(sl_worker *w, int *woke)
{
    int64_t now = 0;
    while (w->ntimers) {
        struct sl_timer e = w->timers[0];
        if (timer_stale(&e)) {
            heap_pop(w);
            continue;
        }
        if (!now)
            now = sl__now_ns();
        if (e.when > now)
            return e.when;
        heap_pop(w);
        if (sl__claim(e.t, e.gen)) {
            sl__wait_claimed_end(w, e.t,
                                 SL_LOAD(&e.t->wkind) == SL_W_SLEEP
                                     ? 0
                                     : SL_ETIMEDOUT);
            (*woke)++;
        }
    }
    return 0;
}

/* ---- descriptors --------------------------------------------------------- */

/* Epochs: per descriptor number, bumped by the calls that make or end a
 * descriptor. Chunks are allocated on first bump and kept for the life of
 * the process (numbers are reused, and so are their chunks). A number
 * never bumped, or beyond the table, has epoch 0. */
#define EPOCH_CHUNK_LOG 12
#define EPOCH_CHUNKS 16384 /* numbers up to 2^26 */
static uint32_t *epoch_chunks[EPOCH_CHUNKS];

static uint32_t fd_epoch(int fd)
{
    unsigned c = (unsigned)fd >> EPOCH_CHUNK_LOG;
    if (c >= EPOCH_CHUNKS)
        return 0;
    uint32_t *e = __atomic_load_n(&epoch_chunks[c], __ATOMIC_ACQUIRE);
    return e ? __atomic_load_n(&e[fd & ((1 << EPOCH_CHUNK_LOG) - 1)],
                               __ATOMIC_ACQUIRE)
             : 0;
}

/* fd now names (or will name) another file than any registration of it. */
static void fd_epoch_bump(int fd)
{
    unsigned c = (unsigned)fd >> EPOCH_CHUNK_LOG;
    if (fd < 0 || c >= EPOCH_CHUNKS)
        return;
    uint32_t *e = __atomic_load_n(&epoch_chunks[c], __ATOMIC_ACQUIRE);
    if (!e) {
        uint32_t *n = calloc(1u << EPOCH_CHUNK_LOG, sizeof *n);
        if (!n)
            return; /* the waits of fd are re-checked anyway */
        if (__atomic_compare_exchange_n(&epoch_chunks[c], &e, n, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            e = n;
        else
            free(n);
    }
    __atomic_add_fetch(&e[fd & ((1 << EPOCH_CHUNK_LOG) - 1)], 1,
                       __ATOMIC_RELEASE);
}

/* Forget the waiters that left (timeout, kill). */
static void slot_forget_gone(struct sl_fdslot *s)
{
    for (int d = 0; d < 2; d++)
        if (s->t[d] && SL_LOAD(&s->t[d]->wseq) != s->gen[d])
            s->t[d] = NULL;
}

static bool slot_is_tcp(int fd)
{
    int p = 0;
    socklen_t l = sizeof p;
    return getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &p, &l) == 0 &&
           p == IPPROTO_TCP;
}

/* Register fd with w's epoll, or check its registration: EPOLL_CTL_MOD
 * makes epoll report fd again if it is ready now, and fails with ENOENT
 * when the number names a file not registered here (closed and reused),
 * which is then added. 0 or -errno (the slot is then unregistered). */
static int slot_register(sl_worker *w, int fd, struct sl_fdslot *s,
                         uint32_t epoch)
{
    struct epoll_event e = {.events = FD_EVENTS, .data.u64 = (uint64_t)fd};
    bool fresh = !s->reg || s->epoch != epoch;
    if (!fresh && epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &e) == 0)
        return 0;
    if (!fresh && errno != ENOENT) {
        s->reg = 0;
        return -errno;
    }
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &e) < 0 &&
        (errno != EEXIST || epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &e) < 0)) {
        s->reg = 0;
        return -errno;
    }
    s->reg = 1;
    s->epoch = epoch;
    s->rdy = 0; /* epoll reports what is ready now */
    s->noproof = 0;
    s->tcp = slot_is_tcp(fd);
    return 0;
}

/* End the waits parked on s with result rc: the descriptor went away
 * under them (-EBADF: closed; -EPERM: the number is a regular file now). */
static void slot_wake_all(sl_worker *w, struct sl_fdslot *s, int rc)
{
    for (int d = 0; d < 2; d++) {
        sl_tasklet *t = s->t[d];
        if (t)
            (void)sl__wait_end(w, t, s->gen[d], rc);
        s->t[d] = NULL;
    }
}

/* Drop w's registration of fd, which no tasklet of w waits on: the user
 * may be closing fd on another thread meanwhile. That race is benign: the
 * call removes the registration of the file fd names, which is either
 * the one meant, or one no tasklet of w registered (fails: ENOENT), since
 * w alone registers with its epoll and its slot says nothing waits. It is
 * made with syscall(2) because ThreadSanitizer counts any call on fd that
 * races with a close of fd as a data race on the descriptor. */
static void slot_drop_unwaited(sl_worker *w, int fd)
{
    struct epoll_event e = {0};
    (void)syscall(SYS_epoll_ctl, w->epfd, EPOLL_CTL_DEL, fd, &e);
}

static void fd_event(sl_worker *w, int fd, uint32_t revents)
{
    if (fd < 0 || fd >= w->nfds)
        return;
    struct sl_fdslot *s = &w->fds[fd];
    bool bad = revents & (EPOLLERR | EPOLLHUP);
    if (revents & (EPOLLPRI | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
        s->noproof = 1;
    int r = (bad || (revents & (EPOLLIN | EPOLLRDHUP)) ? SL_READABLE : 0) |
            (bad || (revents & EPOLLOUT) ? SL_WRITABLE : 0);
    s->rdy |= (uint8_t)r;
    slot_forget_gone(s);
    if (!s->t[0] && !s->t[1]) {
        /* Nobody here waits. Twice in a row: the descriptor's tasklets
         * have most likely moved to another worker, or stopped waiting;
         * drop the registration rather than be woken for them. The next
         * wait here registers afresh. */
        if (s->reg && ++s->unwaited >= 2) {
            slot_drop_unwaited(w, fd);
            s->reg = 0;
            s->unwaited = 0;
        }
        return;
    }
    s->unwaited = 0;
    for (int d = 0; d < 2; d++) {
        sl_tasklet *t = s->t[d];
        if (!t || !(r & (d == 0 ? SL_READABLE : SL_WRITABLE)))
            continue;
        uint32_t g = s->gen[d];
        s->t[d] = NULL;
        if (!sl__claim(t, g))
            continue;
        /* Report every event the tasklet asked for that is ready. */
        int asked = (int)(intptr_t)t->wait.value;
        sl__wait_claimed_end(w, t, (r & asked) ? (r & asked) : asked);
    }
}

/* The runtime saw fd empty in direction d (EAGAIN): new readiness will come
 * as an edge. Only for the current registration of this worker. */
static void fd_seen_empty(int fd, int d)
{
    sl_worker *w = sl__self();
    if (!w || fd >= w->nfds)
        return;
    struct sl_fdslot *s = &w->fds[fd];
    if (s->reg && s->epoch == fd_epoch(fd))
        s->rdy &= (uint8_t)~(d == 0 ? SL_READABLE : SL_WRITABLE);
}

/* A read of len returned n: short on a TCP socket means its receive queue
 * was drained (tcp_recvmsg copies until it is empty), unless urgent data,
 * a hang-up or an error may have stopped it. */
static void fd_read_done(int fd, ssize_t n, size_t len)
{
    sl_worker *w = sl__self();
    if (!w || fd >= w->nfds || n <= 0 || (size_t)n >= len)
        return;
    struct sl_fdslot *s = &w->fds[fd];
    if (s->reg && s->tcp && !s->noproof && s->epoch == fd_epoch(fd))
        s->rdy &= (uint8_t)~SL_READABLE;
}

/* A read now would fail with EAGAIN: the calling tasklet's worker saw fd
 * (a TCP socket) empty and no edge has come since. */
static bool fd_known_empty(int fd)
{
    sl_worker *w = sl__self();
    if (!w || fd < 0 || fd >= w->nfds || SL_LOAD(&w->current->pend))
        return false;
    struct sl_fdslot *s = &w->fds[fd];
    return s->reg && s->tcp && !(s->rdy & SL_READABLE) && !s->t[0] &&
           s->epoch == fd_epoch(fd);
}

/* ---- re-checks of the waits parked without one ----------------------------- */

static bool check_push(sl_worker *w, int fd, uint32_t gen)
{
    if (w->fdchecks_len == w->fdchecks_cap) {
        uint32_t cap = w->fdchecks_cap ? 2 * w->fdchecks_cap : 256;
        struct sl_fdcheck *r = malloc(cap * sizeof *r);
        if (!r)
            return false;
        for (uint32_t i = 0; i < w->fdchecks_len; i++)
            r[i] = w->fdchecks[(w->fdchecks_head + i) & (w->fdchecks_cap - 1)];
        free(w->fdchecks);
        w->fdchecks = r;
        w->fdchecks_cap = cap;
        w->fdchecks_head = 0;
    }
    struct sl_fdcheck *c =
        &w->fdchecks[(w->fdchecks_head + w->fdchecks_len++) & (w->fdchecks_cap - 1)];
    c->due = sl__now_ns() + FD_RECHECK_NS;
    c->fd = fd;
    c->gen = gen;
    return true;
}

/* Is the wait gen still parked on slot s? */
static bool slot_has_wait(struct sl_fdslot *s, uint32_t gen)
{
    for (int d = 0; d < 2; d++)
        if (s->t[d] && s->gen[d] == gen && SL_LOAD(&s->t[d]->wseq) == gen)
            return true;
    return false;
}

/* Re-check the waits due; returns when the next one is due (0: none). */
static int64_t run_checks(sl_worker *w)
{
    int64_t now = 0;
    while (w->fdchecks_len) {
        struct sl_fdcheck *c = &w->fdchecks[w->fdchecks_head];
        struct sl_fdslot *s = &w->fds[c->fd];
        if (slot_has_wait(s, c->gen)) {
            if (!now)
                now = sl__now_ns();
            if (c->due > now)
                return c->due;
            int rc = slot_register(w, c->fd, s, fd_epoch(c->fd));
            if (rc < 0)
                slot_wake_all(w, s, rc);
        }
        w->fdchecks_head = (w->fdchecks_head + 1) & (w->fdchecks_cap - 1);
        w->fdchecks_len--;
    }
    return 0;
}

/* ---- the worker's view --------------------------------------------------- */

int sl__events_init(sl_worker *w)
{
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        return -errno;
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->evfd < 0)
        return -errno;
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = EVFD_KEY};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &e) < 0)
        return -errno;
    return 0;
}

void sl__events_fini(sl_worker *w)
{
    if (w->evfd >= 0)
        close(w->evfd);
    if (w->epfd >= 0)
        close(w->epfd);
    w->evfd = w->epfd = -1;
    free(w->timers);
    free(w->fds);
    free(w->fdchecks);
    w->timers = NULL;
    w->fds = NULL;
    w->fdchecks = NULL;
    w->fdchecks_cap = w->fdchecks_head = w->fdchecks_len = 0;
    w->ntimers = w->timers_cap = 0;
    w->nfds = 0;
}

void sl__worker_kick(sl_worker *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->evfd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is full, a kick is pending anyway */
}

/* epoll_pwait2 with a timeout until deadline (0: forever, -1: none). */
static int poll_epoll(sl_worker *w, int64_t deadline)
{
    struct epoll_event ev[128];
    struct timespec ts, *tp = NULL;
    if (sl_unlikely(deadline > 0 && SL_LOAD(&vclock_ns))) {
        /* TEST HOOK: virtual time jumps to the deadline; only look. */
        if (deadline > SL_LOAD(&vclock_ns))
            SL_STORE(&vclock_ns, deadline);
        deadline = -1;
    }
    if (deadline < 0) {
        ts.tv_sec = ts.tv_nsec = 0;
        tp = &ts;
    } else if (deadline > 0) {
        int64_t d = deadline - sl__now_ns();
        if (d < 0)
            d = 0;
        ts.tv_sec = d / 1000000000;
        ts.tv_nsec = d % 1000000000;
        tp = &ts;
    }
    int n = -1;
    static int no_pwait2; /* valgrind does not know epoll_pwait2 */
    if (!__atomic_load_n(&no_pwait2, __ATOMIC_RELAXED)) {
        n = epoll_pwait2(w->epfd, ev, 128, tp, NULL);
        if (n < 0 && errno == ENOSYS)
            __atomic_store_n(&no_pwait2, 1, __ATOMIC_RELAXED);
    }
    if (__atomic_load_n(&no_pwait2, __ATOMIC_RELAXED)) {
        /* Milliseconds, rounded up: never wake before the deadline. */
        int ms = !tp ? -1
                     : (int)((tp->tv_sec * 1000000000LL + tp->tv_nsec +
                              999999) / 1000000);
        n = epoll_wait(w->epfd, ev, 128, ms);
    }
    for (int i = 0; i < n; i++) {
        if (ev[i].data.u64 == EVFD_KEY) {
            uint64_t v;
            ssize_t r = read(w->evfd, &v, sizeof v);
            (void)r;
            continue;
        }
        fd_event(w, (int)ev[i].data.u64, ev[i].events);
    }
    return n;
}

void sl__events_run(sl_worker *w, bool block)
{
    int woke = 0;
    int64_t next = run_timers(w, &woke);
    int64_t check = w->fdchecks_len ? run_checks(w) : 0;
    if (check && (!next || check < next))
        next = check;
    if (block && woke == 0) {
        poll_epoll(w, next); /* next 0: no timer, wait for an event */
        run_timers(w, &woke);
    } else if (block || SL_LOAD(&w->fd_waits) > 0) {
        poll_epoll(w, -1); /* something runs now: only look */
    }
}

void sl__events_tick(sl_worker *w)
{
    w->poll_tick = SL_POLL_EVERY;
    if (w->ntimers || w->fdchecks_len || SL_LOAD(&w->fd_waits) > 0)
        sl__events_run(w, false);
}

/* ---- parking: sleep, descriptors ----------------------------------------- */

/* The current tasklet parks (BLOCKED, with no waiter in any queue) in
 * wait gen until it is claimed; a deadline (0: none) arms a timer.
 * Returns the claimer's result. */
static int park(sl_worker *w, sl_tasklet *cur, uint32_t gen, int64_t deadline)
{
    if (deadline) {
        int rc = sl__timer_arm(w, cur, gen, deadline);
        if (rc < 0) {
            sl__wait_account(cur); /* an fd wait's count, if any */
            sl__wait_abandon(cur, gen);
            return rc;
        }
    }
    sl_tasklet *next = sl__rq_leave(w, cur);
    SL__ASSERT(next); /* something can end this wait: never a deadlock */
    sl__publish_after_switch(w, cur, SL_T_BLOCKED);
    w = sl__jump(w, cur, next);
    sl__events_due(w);
    int rc = sl__wait_result(cur);
    sl__wait_kind_reset(cur);
    sl__wait_account(cur);
    return rc;
}

int sl_sleep_ms(int64_t ms)
{
    sl_worker *w = sl__self();
    if (!w)
        return SL_ESTATE;
    sl_tasklet *cur = w->current;
    int rc = sl__pend_check(cur);
    if (rc)
        return rc;
    if (ms <= 0)
        return sl_schedule();
    if (sl__check_inbox(w))
        sl__abandon(w);
    uint32_t gen = sl__wait_begin(cur, SL_W_SLEEP);
    return park(w, cur, gen, sl__deadline(ms));
}

/* Make w's descriptor table cover fd. A number beyond the table is first
 * checked to name an open descriptor (it cannot otherwise, if it is at or
 * above the process's descriptor limit): -EBADF, never a table sized by a
 * number nobody opened. */
static int fds_cover(sl_worker *w, int fd)
{
    if (fd < w->nfds)
        return 0;
    if (fcntl(fd, F_GETFD) < 0)
        return -errno;
    int n = w->nfds ? w->nfds : 64;
    while (n <= fd) {
        if (n > INT_MAX / 2)
            return SL_ENOMEM;
        n *= 2;
    }
    struct sl_fdslot *f = realloc(w->fds, (size_t)n * sizeof *f);
    if (!f)
        return SL_ENOMEM;
    memset(f + w->nfds, 0, (size_t)(n - w->nfds) * sizeof *f);
    w->fds = f;
    w->nfds = n;
    return 0;
}

/* Ready now? poll(2) without waiting: the events, or 0. */
static int poll_now(int fd, int events)
{
    struct pollfd p = {.fd = fd,
                       .events = (short)((events & SL_READABLE ? POLLIN : 0) |
                                         (events & SL_WRITABLE ? POLLOUT : 0))};
    int n = poll(&p, 1, 0);
    if (n < 0)
        return -errno;
    if (n == 0)
        return 0;
    if (p.revents & POLLNVAL)
        return -EBADF;
    if (p.revents & (POLLERR | POLLHUP))
        return events;
    return (p.revents & POLLIN ? SL_READABLE : 0) |
           (p.revents & POLLOUT ? SL_WRITABLE : 0);
}

int sl_wait_fd(int fd, int events, int64_t timeout_ms)
{
    sl_worker *w = sl__self();
    if (!w)
        return SL_ESTATE;
    if (fd < 0 || events <= 0 || (events & ~(SL_READABLE | SL_WRITABLE)))
        return SL_EINVAL;
    sl_tasklet *cur = w->current;
    int rc = sl__pend_check(cur);
    if (rc)
        return rc;
    if (sl__check_inbox(w))
        sl__abandon(w);
    if (timeout_ms == 0) {
        int r = poll_now(fd, events);
        return r == 0 ? SL_ETIMEDOUT : r;
    }
    rc = fds_cover(w, fd);
    if (rc < 0)
        return rc;
    struct sl_fdslot *s = &w->fds[fd];
    slot_forget_gone(s);
    for (int d = 0; d < 2; d++)
        if ((events & (d == 0 ? SL_READABLE : SL_WRITABLE)) && s->t[d])
            return -EBUSY;
    /* Park without a check only where nothing can have been missed: a TCP
     * socket registered under its current epoch, seen empty since its
     * last event. Otherwise register, or check the registration (epoll
     * then reports fd again if it is ready now). */
    uint32_t epoch = fd_epoch(fd);
    bool trusted = s->reg && s->tcp && s->epoch == epoch && !(s->rdy & events);
    if (!trusted) {
        rc = slot_register(w, fd, s, epoch);
        if (rc < 0)
            return rc;
        s->rdy &= (uint8_t)~events;
    }
    uint32_t gen = sl__wait_begin(cur, SL_W_FD);
    cur->wait.value = (void *)(intptr_t)events;
    SL_STORE(&cur->wait.result, fd); /* (for sl_dump, the trace and gdb) */
    s->unwaited = 0;
    for (int d = 0; d < 2; d++) {
        if (events & (d == 0 ? SL_READABLE : SL_WRITABLE)) {
            s->t[d] = cur;
            s->gen[d] = gen;
        }
    }
    if (trusted && !check_push(w, fd, gen)) {
        /* No room to remember a re-check: check now instead. */
        rc = slot_register(w, fd, s, epoch);
        if (rc < 0) {
            sl__wait_abandon(cur, gen);
            cur->wait.value = NULL;
            s->t[0] = s->t[0] == cur ? NULL : s->t[0];
            s->t[1] = s->t[1] == cur ? NULL : s->t[1];
            return rc;
        }
    }
    __atomic_add_fetch(&w->fd_waits, 1, __ATOMIC_RELAXED);
    sl__nwaits_add(1);
    cur->wait_w = w;
    cur->wcount = SL_WC_FD;
    rc = park(w, cur, gen, sl__deadline(timeout_ms));
    cur->wait.value = NULL;
    return rc;
}

int sl_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    sl_worker *w = sl__self();
    if (w && fd < w->nfds && w->fds[fd].reg) {
        /* Drop this worker's registration while fd still names the file
         * (it would outlive close(2) if the file is open elsewhere). */
        struct epoll_event e = {0};
        (void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, &e);
        w->fds[fd].reg = 0;
    }
    fd_epoch_bump(fd);
    return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

/* ---- I/O calls ----------------------------------------------------------- */

static bool would_block(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK;
}

ssize_t sl_read(int fd, void *buf, size_t len)
{
    /* The worker saw this socket empty and no edge has come since: the read
     * would fail with EAGAIN, so wait first. */
    bool wait_first = len > 0 && fd_known_empty(fd);
    for (;;) {
        if (wait_first) {
            int rc = sl_wait_fd(fd, SL_READABLE, -1);
            if (rc < 0)
                return rc;
        }
        wait_first = true;
        ssize_t n = read(fd, buf, len);
        if (n >= 0) {
            fd_read_done(fd, n, len);
            return n;
        }
        int e = errno;
        if (e == EINTR) {
            wait_first = false;
            continue;
        }
        if (!would_block(e))
            return -e;
        fd_seen_empty(fd, 0);
    }
}

ssize_t sl_write(int fd, const void *buf, size_t len)
{
    for (;;) {
        ssize_t n = write(fd, buf, len);
        if (n >= 0)
            return n;
        int e = errno;
        if (e == EINTR)
            continue;
        if (!would_block(e))
            return -e;
        fd_seen_empty(fd, 1);
        int rc = sl_wait_fd(fd, SL_WRITABLE, -1);
        if (rc < 0)
            return rc;
    }
}

int sl_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    for (;;) {
        int c = accept4(fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0) {
            fd_epoch_bump(c); /* a new file: registrations of c are stale */
            return c;
        }
        int e = errno;
        if (e == EINTR || e == ECONNABORTED)
            continue;
        if (!would_block(e))
            return -e;
        fd_seen_empty(fd, 0);
        int rc = sl_wait_fd(fd, SL_READABLE, -1);
        if (rc < 0)
            return rc;
    }
}

int sl_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    fd_epoch_bump(fd); /* most likely a new socket: register it afresh */
    if (connect(fd, addr, addrlen) == 0)
        return 0;
    int e = errno;
    if (e != EINPROGRESS && e != EINTR && e != EAGAIN)
        return -e;
    int rc = sl_wait_fd(fd, SL_WRITABLE, -1);
    if (rc < 0)
        return rc;
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
        return -errno;
    return -err;
}
