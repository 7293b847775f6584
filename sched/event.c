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
 * Descriptors: one registration per (worker, fd), EPOLLONESHOT, carrying
 * the union of what the tasklets parked on it here wait for (one reader
 * and one writer at most: a second one gets -EBUSY, as two tasklets
 * reading one socket at once would interleave its bytes anyway). After an
 * event the registration is re-armed for whoever still waits. A
 * registration whose waiters left (timeout, kill) stays disarmed; the next
 * wait re-arms it with EPOLL_CTL_MOD (or ADD when the descriptor was
 * closed and its number reused).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "channel/channel.h"
#include "sched/sched.h"

struct sl_timer {
    int64_t when;   /* deadline, monotonic ns */
    uint64_t seq;   /* arming order: equal deadlines fire in that order */
    sl_tasklet *t;
    uint32_t gen;   /* the wait it ends */
};

struct sl_fdslot {
    sl_tasklet *t[2]; /* [0] waits to read, [1] to write */
    uint32_t gen[2];
    uint32_t armed;   /* events of the registration, 0: none/disarmed */
    uint8_t added;    /* registered with this epoll (may be stale) */
};

#define EVFD_KEY UINT64_MAX

int64_t sl__now_ns(void)
{
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
    return 0;
}

void sl__timer_done(sl_worker *tw)
{
    __atomic_sub_fetch(&tw->timers_live, 1, __ATOMIC_RELAXED);
    sl__nwaits_add(-1);
}

void sl__claimed_wake(sl_worker *w, sl_tasklet *t, int result)
{
    while (SL_LOAD_ACQ(&t->state) == SL_T_SWITCHING)
        sched_yield();
    sl__channel_unwait_claimed(t);
    t->result = result;
    sl__wake(w, t);
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
            sl__claimed_wake(w, e.t,
                             e.t->wkind == SL_W_SLEEP ? 0 : SL_ETIMEDOUT);
            (*woke)++;
        }
    }
    return 0;
}

/* ---- descriptors --------------------------------------------------------- */

static uint32_t slot_live_events(struct sl_fdslot *s)
{
    uint32_t ev = 0;
    for (int d = 0; d < 2; d++) {
        if (s->t[d] && SL_LOAD(&s->t[d]->wseq) == s->gen[d])
            ev |= d == 0 ? EPOLLIN | EPOLLRDHUP : EPOLLOUT;
        else
            s->t[d] = NULL;
    }
    return ev;
}

/* (Re)arm fd's registration for its live waiters. 0 or -errno. */
static int slot_arm(sl_worker *w, int fd, struct sl_fdslot *s)
{
    uint32_t ev = slot_live_events(s);
    if (!ev)
        return 0;
    struct epoll_event e = {.events = ev | EPOLLONESHOT, .data.u64 = (uint64_t)fd};
    if (s->added && epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &e) == 0) {
        s->armed = ev;
        return 0;
    }
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
        if (errno != EEXIST || epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &e) < 0)
            return -errno;
    }
    s->added = 1;
    s->armed = ev;
    return 0;
}

static void fd_event(sl_worker *w, int fd, uint32_t revents)
{
    if (fd < 0 || fd >= w->nfds)
        return;
    struct sl_fdslot *s = &w->fds[fd];
    s->armed = 0; /* one-shot: disarmed now */
    bool bad = revents & (EPOLLERR | EPOLLHUP);
    for (int d = 0; d < 2; d++) {
        sl_tasklet *t = s->t[d];
        if (!t)
            continue;
        uint32_t want = d == 0 ? EPOLLIN | EPOLLRDHUP : EPOLLOUT;
        if (!(revents & want) && !bad)
            continue;
        uint32_t g = s->gen[d];
        s->t[d] = NULL;
        if (!sl__claim(t, g))
            continue;
        /* Report every event the tasklet asked for that is ready. */
        int ready = 0;
        int asked = (int)(intptr_t)t->value;
        if (bad || (revents & (EPOLLIN | EPOLLRDHUP)))
            ready |= asked & SL_READABLE;
        if (bad || (revents & EPOLLOUT))
            ready |= asked & SL_WRITABLE;
        sl__claimed_wake(w, t, ready ? ready : asked);
    }
    if (slot_arm(w, fd, s) < 0) {
        /* The descriptor went away under its waiter: it learns at once. */
        for (int d = 0; d < 2; d++) {
            sl_tasklet *t = s->t[d];
            if (t && sl__claim(t, s->gen[d]))
                sl__claimed_wake(w, t, (int)(intptr_t)t->value);
            s->t[d] = NULL;
        }
    }
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
    w->timers = NULL;
    w->fds = NULL;
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
    if (w->ntimers || SL_LOAD(&w->fd_waits) > 0)
        sl__events_run(w, false);
}

/* ---- parking: sleep, descriptors ----------------------------------------- */

/* The current tasklet parks (WAITING) in a claimable wait gen until it is
 * claimed; a deadline (0: none) arms a timer. Returns the claimer's
 * result. */
static int park(sl_worker *w, sl_tasklet *cur, uint32_t gen, int64_t deadline)
{
    sl_worker *tw = w;
    if (deadline) {
        int rc = sl__timer_arm(w, cur, gen, deadline);
        if (rc < 0) {
            (void)sl__claim(cur, gen);
            cur->wkind = SL_W_PLAIN;
            return rc;
        }
    }
    sl_tasklet *next = sl__rq_leave(w, cur);
    SL__ASSERT(next); /* something can end this wait: never a deadlock */
    sl__publish_after_switch(w, cur, SL_T_WAITING);
    w = sl__jump(w, cur, next);
    sl__events_due(w);
    int rc = cur->result;
    cur->result = 0;
    cur->wkind = SL_W_PLAIN;
    if (deadline)
        sl__timer_done(tw);
    return rc;
}

int sl_sleep_ms(int64_t ms)
{
    sl_worker *w = sl__self();
    if (!w)
        return SL_ESTATE;
    sl_tasklet *cur = w->current;
    if (SL_LOAD(&cur->killed))
        return SL_EKILLED;
    if (ms <= 0)
        return sl_schedule();
    if (sl__check_inbox(w))
        sl__abandon(w);
    uint32_t gen = sl__wait_begin(cur, SL_W_SLEEP);
    return park(w, cur, gen, sl__deadline(ms));
}

/* Make w's descriptor table cover fd. */
static int fds_cover(sl_worker *w, int fd)
{
    if (fd < w->nfds)
        return 0;
    int n = w->nfds ? w->nfds : 64;
    while (n <= fd)
        n *= 2;
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
    if (SL_LOAD(&cur->killed))
        return SL_EKILLED;
    if (sl__check_inbox(w))
        sl__abandon(w);
    if (timeout_ms == 0) {
        int r = poll_now(fd, events);
        return r == 0 ? SL_ETIMEDOUT : r;
    }
    int rc = fds_cover(w, fd);
    if (rc < 0)
        return rc;
    struct sl_fdslot *s = &w->fds[fd];
    (void)slot_live_events(s); /* forget waiters that left */
    for (int d = 0; d < 2; d++)
        if ((events & (d == 0 ? SL_READABLE : SL_WRITABLE)) && s->t[d])
            return -EBUSY;
    uint32_t gen = sl__wait_begin(cur, SL_W_FD);
    cur->value = (void *)(intptr_t)events;
    for (int d = 0; d < 2; d++) {
        if (events & (d == 0 ? SL_READABLE : SL_WRITABLE)) {
            s->t[d] = cur;
            s->gen[d] = gen;
        }
    }
    rc = slot_arm(w, fd, s);
    if (rc < 0) {
        (void)sl__claim(cur, gen);
        cur->wkind = SL_W_PLAIN;
        cur->value = NULL;
        s->t[0] = s->t[0] == cur ? NULL : s->t[0];
        s->t[1] = s->t[1] == cur ? NULL : s->t[1];
        return rc;
    }
    sl_worker *fw = w;
    __atomic_add_fetch(&fw->fd_waits, 1, __ATOMIC_RELAXED);
    sl__nwaits_add(1);
    rc = park(w, cur, gen, sl__deadline(timeout_ms));
    __atomic_sub_fetch(&fw->fd_waits, 1, __ATOMIC_RELAXED);
    sl__nwaits_add(-1);
    cur->value = NULL;
    return rc;
}

/* ---- I/O calls ----------------------------------------------------------- */

static bool would_block(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK;
}

ssize_t sl_read(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        int e = errno;
        if (e == EINTR)
            continue;
        if (!would_block(e))
            return -e;
        int rc = sl_wait_fd(fd, SL_READABLE, -1);
        if (rc < 0)
            return rc;
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
        int rc = sl_wait_fd(fd, SL_WRITABLE, -1);
        if (rc < 0)
            return rc;
    }
}

int sl_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    for (;;) {
        int c = accept4(fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0)
            return c;
        int e = errno;
        if (e == EINTR || e == ECONNABORTED)
            continue;
        if (!would_block(e))
            return -e;
        int rc = sl_wait_fd(fd, SL_READABLE, -1);
        if (rc < 0)
            return rc;
    }
}

int sl_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
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
