/* test_io.c - tasklet I/O: sl_wait_fd (parking, readiness, timeouts,
 * polls, argument checks, regular files, one reader and one writer per
 * descriptor per worker, kills), sl_read / sl_write / sl_accept /
 * sl_connect on non-blocking descriptors, and sl_offload (helper threads,
 * concurrency, kills, the pool size, shutdown with calls in progress).
 *
 * With SL_TEST_WORKERS=2 the tests that do not check an order pin some
 * tasklets to worker 1 (spawn_on), so descriptors and offloaded calls are
 * also served across workers. */
#define _GNU_SOURCE
#include "test_hook.h"
#include "test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

/* A connected pair of non-blocking, close-on-exec stream sockets. */
static void nb_socketpair(int sv[2])
{
    int rc = socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        0, sv);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
}

static void nb_pipe(int p[2])
{
    int rc = pipe2(p, O_NONBLOCK | O_CLOEXEC);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
}

static void close2(int fd[2])
{
    close(fd[0]);
    close(fd[1]);
}

/* A descriptor number that is not open (it was a moment ago). */
static int closed_fd(void)
{
    int p[2];
    if (pipe(p) != 0)
        return 1000000;
    close(p[1]);
    close(p[0]);
    return p[0];
}

/* Spawn on worker i % workers (pinned), so that two-worker runs spread the
 * tasklets; on one worker this is sl_spawn with a pin to worker 0. */
static sl_tasklet *spawn_on(int i, sl_fn fn, void *arg)
{
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.worker = i % sl_worker_count();
    return sl_spawn_ex(&a, fn, arg);
}

static int load(const int *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store(int *p, int v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Main yields until *flag is set (at most 10 s). A tasklet on main's worker
 * that set the flag right before parking has parked when this returns. */
static void yield_until(const int *flag)
{
    int64_t end = sl_now_ms() + 10000;
    while (!load(flag) && sl_now_ms() < end)
        sl_schedule();
    CU_ASSERT(load(flag));
}

/* Sleep the calling OS thread until *flag is set (at most 10 s); for main
 * waiting on a helper thread while no tasklet needs to run. */
static void os_wait_until(const int *flag)
{
    int64_t end = sl_now_ms() + 10000;
    while (!load(flag) && sl_now_ms() < end)
        usleep(1000);
    CU_ASSERT(load(flag));
}

/* The timeout of a wait that an event must end: only a lost event lets it
 * expire, never a delay by load (issue 13: the suites pass while other
 * programs load the machine). Its result tells which ended the wait:
 * events or SL_ETIMEDOUT. */
enum { UNREACHED_MS = 10000 };

static long tid(void)
{
    return (long)syscall(SYS_gettid);
}

/* sl_write until len bytes are written; the byte count, or the first error.
 * *calls counts the sl_write calls. */
static ssize_t write_all(int fd, const void *buf, size_t len, int *calls)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = sl_write(fd, (const char *)buf + done, len - done);
        if (calls)
            (*calls)++;
        if (n < 0)
            return n;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* sl_read until len bytes or EOF; the byte count, or the first error. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = sl_read(fd, (char *)buf + done, len - done);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* The byte at position pos of stream id: every stream differs, and a byte
 * lost, duplicated or reordered shows. */
static uint8_t pattern(int id, size_t pos)
{
    return (uint8_t)(id * 131 + pos * 7 + (pos >> 9));
}

/* len bytes of pattern(id, ...) on the heap (the test stops if malloc
 * fails). */
static uint8_t *pattern_buf(int id, size_t len)
{
    uint8_t *buf = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern(id, i);
    return buf;
}

static uint64_t sum_step(uint64_t sum, uint8_t b)
{
    return sum * 1099511628211ULL + b;
}

/* One tasklet waiting on a descriptor; the fields after rc are results. */
struct waiter {
    int fd, events;
    int64_t timeout;
    int entered, done; /* atomics */
    int rc;
    int64_t t_end;
};

static void waiter_fn(void *arg)
{
    struct waiter *w = arg;
    store(&w->entered, 1);
    w->rc = sl_wait_fd(w->fd, w->events, w->timeout);
    w->t_end = sl_now_ms();
    store(&w->done, 1);
}

static struct waiter waiter(int fd, int events, int64_t timeout)
{
    struct waiter w = {.fd = fd, .events = events, .timeout = timeout};
    w.rc = 12345;
    return w;
}

/* ---- sl_wait_fd ------------------------------------------------------------ */

static int pfd[2]; /* pipe of the order test */

static void log_reader(void *arg)
{
    int *rc = arg;
    tu_log_putc('r');
    *rc = sl_wait_fd(pfd[0], SL_READABLE, -1);
    tu_log_putc('R');
}

static void log_busy_then_write(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        tu_log_putc('b');
        sl_schedule();
    }
    CU_ASSERT(write(pfd[1], "x", 1) == 1);
    tu_log_putc('w');
}

TU_TEST(reader_parks_while_its_worker_runs_others)
{
    nb_pipe(pfd);
    int rc = 12345;
    sl_spawn(log_reader, &rc);
    sl_spawn(log_busy_then_write, NULL);
    TU_EQ(sl_run(), 0);
    /* The reader parked ('r'), the other tasklet ran three rounds and wrote
     * ('bbbw'), and only then did the reader come back ('R'). */
    TU_ASSERT_LOG("rbbbwR");
    TU_EQ(rc, SL_READABLE);
    char c = 0;
    TU_EQ(sl_read(pfd[0], &c, 1), 1);
    TU_EQ(c, 'x');
    close2(pfd);
}

/* Ready already: each wait is ended by its events (a wait without a
 * timeout that missed them would never return; one with a timeout would
 * return SL_ETIMEDOUT). */
TU_TEST(ready_events_are_returned_at_once)
{
    int sv[2];
    nb_socketpair(sv);
    /* Writable, not readable: only what is ready is reported. */
    TU_EQ(sl_wait_fd(sv[0], SL_WRITABLE, -1), SL_WRITABLE);
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE | SL_WRITABLE, -1), SL_WRITABLE);
    CU_ASSERT(write(sv[1], "ab", 2) == 2);
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, -1), SL_READABLE);
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE | SL_WRITABLE, UNREACHED_MS),
          SL_READABLE | SL_WRITABLE);
    close2(sv);
}

TU_TEST(main_alone_times_out_instead_of_deadlocking)
{
    int sv[2];
    nb_socketpair(sv);
    int64_t t0 = sl_now_ms();
    int rc = sl_wait_fd(sv[0], SL_READABLE, 50);
    int64_t dt = sl_now_ms() - t0;
    TU_EQ(rc, SL_ETIMEDOUT); /* not SL_EDEADLOCK: nothing else can end it */
    CU_ASSERT(dt >= 50);
    /* The descriptor is usable afterwards. */
    CU_ASSERT(write(sv[1], "z", 1) == 1);
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, -1), SL_READABLE);
    close2(sv);
}

TU_TEST(tasklet_wait_times_out)
{
    int sv[2];
    nb_socketpair(sv);
    struct waiter w = waiter(sv[0], SL_READABLE, 40);
    int64_t t0 = sl_now_ms(); /* on worker 1 it may start at once */
    spawn_on(1, waiter_fn, &w);
    TU_EQ(sl_run(), 0); /* returns once the wait has timed out */
    TU_EQ(w.rc, SL_ETIMEDOUT);
    CU_ASSERT(w.t_end - t0 >= 40);
    close2(sv);
}

/* A timeout that falls due just as the worker runs out of work (the other
 * tasklet busy-spins until about then, sweeping the moment over 200 us)
 * must still wake its tasklet: the worker must not then sleep in epoll
 * with nothing left to end the sleep. */
static void busy_spin_us(void *arg)
{
    int64_t end = tu_now_ns() + (int64_t)TU_INT(arg) * 1000;
    while (tu_now_ns() < end)
        ;
}

TU_TEST(timeout_due_as_the_worker_goes_idle_is_not_lost)
{
    int sv[2];
    nb_socketpair(sv);
    int rounds = 0, not_timed_out = 0;
    for (int us = 900; us <= 1100; us += TU_SIZE(1, 10), rounds++) {
        struct waiter w = waiter(sv[0], SL_READABLE, 1);
        sl_spawn(waiter_fn, &w);          /* both on main's worker */
        sl_spawn(busy_spin_us, TU_MSG(us));
        TU_EQ(sl_run(), 0); /* hangs if the wakeup is lost */
        not_timed_out += w.rc != SL_ETIMEDOUT;
    }
    TU_EQ(not_timed_out, 0);
    CU_ASSERT(rounds > 0);
    close2(sv);
}

/* A wait that ended by its event leaves its timer behind (lazy cancel): the
 * stale timer must not end the next wait of the same tasklet. */
static void served_then_waits_again(void *arg)
{
    struct waiter *w = arg;
    int64_t t0 = sl_now_ms();
    int rc = sl_wait_fd(w->fd, SL_READABLE, 100); /* served at ~20 ms */
    if (rc != SL_READABLE) { /* the writer came too late (load) */
        TU_EQ(rc, SL_ETIMEDOUT);
        return;
    }
    char c;
    TU_EQ(sl_read(w->fd, &c, 1), 1);
    store(&w->entered, 1); /* served: the case under test */
    w->rc = sl_wait_fd(w->fd, SL_READABLE, 250); /* spans the old deadline */
    w->t_end = sl_now_ms() - t0;
}

static void write_after_20ms(void *arg)
{
    int fd = *(int *)arg;
    TU_EQ(sl_sleep_ms(20), 0);
    CU_ASSERT(write(fd, "d", 1) == 1);
}

TU_TEST(stale_timer_of_a_served_wait_does_not_end_the_next)
{
    int sv[2];
    nb_socketpair(sv);
    /* The case needs the first wait served before its 100 ms: when load
     * delays the writer past that, the attempt proves nothing and is made
     * again (issue 13: tests may not depend on prompt scheduling). */
    bool served = false;
    for (int attempt = 0; attempt < 10 && !served; attempt++) {
        struct waiter w = waiter(sv[0], SL_READABLE, 0);
        sl_spawn(served_then_waits_again, &w);
        spawn_on(1, write_after_20ms, &sv[1]);
        TU_EQ(sl_run(), 0);
        served = load(&w.entered);
        if (!served) { /* drop the late byte */
            char c;
            while (read(sv[0], &c, 1) == 1)
                ;
            continue;
        }
        TU_EQ(w.rc, SL_ETIMEDOUT);
        CU_ASSERT(w.t_end >= 250); /* the stale timer would end it at ~100 */
    }
    CU_ASSERT(served);
    close2(sv);
}

static void log_arg(void *arg)
{
    tu_log_putc((char)TU_INT(arg));
}

TU_TEST(timeout_zero_polls_without_switching)
{
    int sv[2];
    nb_socketpair(sv);
    sl_spawn(log_arg, TU_MSG('t'));
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, 0), SL_ETIMEDOUT);
    TU_EQ(sl_wait_fd(sv[0], SL_WRITABLE, 0), SL_WRITABLE);
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE | SL_WRITABLE, 0), SL_WRITABLE);
    CU_ASSERT(write(sv[1], "q", 1) == 1);
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, 0), SL_READABLE);
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE | SL_WRITABLE, 0),
          SL_READABLE | SL_WRITABLE);
    TU_EQ(sl_wait_fd(closed_fd(), SL_READABLE, 0), -EBADF);
    TU_ASSERT_LOG(""); /* none of them let the spawned tasklet run */
    TU_EQ(sl_run(), 0);
    TU_ASSERT_LOG("t");
    close2(sv);
}

TU_TEST(bad_arguments_are_einval)
{
    int sv[2];
    nb_socketpair(sv);
    TU_EQ(sl_wait_fd(-1, SL_READABLE, -1), SL_EINVAL);
    TU_EQ(sl_wait_fd(-1, SL_READABLE, 0), SL_EINVAL);
    TU_EQ(sl_wait_fd(sv[0], 0, -1), SL_EINVAL);
    TU_EQ(sl_wait_fd(sv[0], 4, -1), SL_EINVAL);
    TU_EQ(sl_wait_fd(sv[0], 4 | SL_READABLE, 0), SL_EINVAL);
    TU_EQ(sl_wait_fd(sv[0], -1, 10), SL_EINVAL);
    TU_EQ(sl_wait_fd(closed_fd(), SL_READABLE, -1), -EBADF);
    TU_EQ(sl_wait_fd(closed_fd(), SL_WRITABLE, 100), -EBADF);
    close2(sv);
}

TU_TEST(regular_file_is_eperm_and_leaves_no_wait_behind)
{
    char path[] = "/tmp/sl_test_io_XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    unlink(path);
    TU_EQ(sl_wait_fd(fd, SL_READABLE, -1), -EPERM);
    TU_EQ(sl_wait_fd(fd, SL_WRITABLE, 100), -EPERM);
    TU_EQ(sl_wait_fd(fd, SL_READABLE | SL_WRITABLE, -1), -EPERM);
    /* A poll asks poll(2), for which a file is always ready. */
    TU_EQ(sl_wait_fd(fd, SL_READABLE | SL_WRITABLE, 0),
          SL_READABLE | SL_WRITABLE);
    /* Nothing is left waiting: main blocking alone is a deadlock at once,
     * not a wait for an event that cannot come. */
    sl_channel *ch = sl_channel_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
    TU_EQ(sl_channel_receive(ch, NULL), SL_EDEADLOCK);
    TU_EQ(sl_channel_free(ch), 0);
    close(fd);
}

TU_TEST(second_reader_on_one_worker_is_ebusy_a_writer_is_not)
{
    int sv[2];
    nb_socketpair(sv);
    struct waiter a = waiter(sv[0], SL_READABLE, -1);
    sl_spawn(waiter_fn, &a);
    yield_until(&a.entered); /* a is parked on main's worker */
    TU_EQ(load(&a.done), 0);
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, -1), -EBUSY);
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, 1000), -EBUSY);
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE | SL_WRITABLE, -1), -EBUSY);
    /* A poll does not register: no conflict. */
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, 0), SL_ETIMEDOUT);
    /* The writer's place is free: one reader and one writer. */
    TU_EQ(sl_wait_fd(sv[0], SL_WRITABLE, -1), SL_WRITABLE);
    TU_EQ(load(&a.done), 0); /* the writable event did not wake the reader */
    CU_ASSERT(write(sv[1], "r", 1) == 1);
    TU_EQ(sl_run(), 0);
    TU_EQ(a.rc, SL_READABLE);
    /* The reader's place is free again. */
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, -1), SL_READABLE);
    close2(sv);
}

/* One reader per descriptor per worker: readers of one descriptor on two
 * workers are both served (on one worker the second is -EBUSY). */
TU_TEST(readers_of_one_descriptor_on_different_workers)
{
    int sv[2];
    nb_socketpair(sv);
    struct waiter a = waiter(sv[0], SL_READABLE, -1);
    struct waiter b = waiter(sv[0], SL_READABLE, -1);
    spawn_on(0, waiter_fn, &a);
    yield_until(&a.entered);
    spawn_on(1, waiter_fn, &b);
    if (sl_worker_count() == 1) {
        yield_until(&b.done); /* b returns at once; a still waits */
        TU_EQ(b.rc, -EBUSY);
        TU_EQ(load(&a.done), 0);
    } else {
        yield_until(&b.entered);
        usleep(20000); /* let b park on worker 1 */
    }
    CU_ASSERT(write(sv[1], "x", 1) == 1);
    TU_EQ(sl_run(), 0);
    TU_EQ(a.rc, SL_READABLE);
    if (sl_worker_count() > 1)
        TU_EQ(b.rc, SL_READABLE);
    close2(sv);
}

/* Kills: the parked tasklet returns SL_EKILLED at once, and its place on
 * the descriptor is free for the next waiter. */
struct reader {
    int fd;
    int entered, done;
    ssize_t rc;
};

static void sl_read_fn(void *arg)
{
    struct reader *r = arg;
    char buf[16];
    store(&r->entered, 1);
    r->rc = sl_read(r->fd, buf, sizeof buf);
    store(&r->done, 1);
}

TU_TEST(killed_waiter_returns_at_once_and_the_descriptor_works_after)
{
    int sv[2];
    nb_socketpair(sv);
    struct waiter a = waiter(sv[0], SL_READABLE, 150);
    sl_tasklet *ta = sl_spawn(waiter_fn, &a);
    sl_tasklet_ref(ta);
    yield_until(&a.entered);
    TU_EQ(load(&a.done), 0);
    /* No scheduling point of main's worker since a parked: its timer
     * cannot have ended its wait, however late this runs. */
    TU_EQ(sl_tasklet_kill(ta), 0);
    /* Same worker: the kill ran the waiter before returning. */
    TU_EQ(load(&a.done), 1);
    TU_EQ(a.rc, SL_EKILLED);
    TU_EQ(sl_tasklet_alive(ta), false);
    sl_tasklet_unref(ta);

    /* sl_read parked the same way, killed the same way. */
    struct reader r = {.fd = sv[0], .rc = 12345};
    sl_tasklet *tr = sl_spawn(sl_read_fn, &r);
    yield_until(&r.entered);
    TU_EQ(load(&r.done), 0);
    TU_EQ(sl_tasklet_kill(tr), 0);
    TU_EQ(r.rc, SL_EKILLED);

    /* The next reader is accepted, and is not ended by a's stale timer
     * (150 ms after a's start): it times out after its own 300 ms. */
    struct waiter b = waiter(sv[0], SL_READABLE, 300);
    sl_spawn(waiter_fn, &b);
    int64_t t1 = sl_now_ms();
    TU_EQ(sl_run(), 0);
    TU_EQ(b.rc, SL_ETIMEDOUT);
    CU_ASSERT(b.t_end - t1 >= 300);
    /* And one without a timeout is served by data. */
    struct waiter c = waiter(sv[0], SL_READABLE, -1);
    sl_spawn(waiter_fn, &c);
    yield_until(&c.entered);
    CU_ASSERT(write(sv[1], "k", 1) == 1);
    TU_EQ(sl_run(), 0);
    TU_EQ(c.rc, SL_READABLE);
    close2(sv);
}

TU_TEST(killed_waiter_on_another_worker)
{
    int sv[2];
    nb_socketpair(sv);
    struct waiter a = waiter(sv[0], SL_READABLE, -1);
    sl_tasklet *ta = spawn_on(1, waiter_fn, &a);
    sl_tasklet_ref(ta);
    yield_until(&a.entered);
    usleep(20000); /* two workers: let it park there */
    int64_t t0 = sl_now_ms();
    TU_EQ(sl_tasklet_kill(ta), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(a.rc, SL_EKILLED); /* no upper bound on when: load may delay it */
    CU_ASSERT(a.t_end >= t0);
    TU_EQ(sl_tasklet_alive(ta), false);
    sl_tasklet_unref(ta);
    struct waiter b = waiter(sv[0], SL_READABLE, -1);
    spawn_on(1, waiter_fn, &b);
    yield_until(&b.entered);
    CU_ASSERT(write(sv[1], "k", 1) == 1);
    TU_EQ(sl_run(), 0);
    TU_EQ(b.rc, SL_READABLE);
    close2(sv);
}

/* A tasklet killed before it calls: every call that would park returns
 * SL_EKILLED at once; a read that finds data still reads it. */
static int killed_offload_ran;

static void set_flag_fn(void *arg)
{
    store(arg, 1);
}

static void killed_self_calls(void *arg)
{
    int *sv = arg;
    TU_EQ(sl_tasklet_kill(sl_current()), SL_EKILLED);
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, -1), SL_EKILLED);
    TU_EQ(sl_wait_fd(sv[0], SL_WRITABLE, 100), SL_EKILLED);
    char buf[4];
    TU_EQ(sl_read(sv[0], buf, sizeof buf), SL_EKILLED);
    TU_EQ(sl_offload(set_flag_fn, &killed_offload_ran), SL_EKILLED);
    CU_ASSERT(write(sv[1], "ab", 2) == 2);
    TU_EQ(sl_read(sv[0], buf, sizeof buf), 2);
}

TU_TEST(killed_tasklet_calls_return_ekilled_at_once)
{
    int sv[2];
    nb_socketpair(sv);
    sl_spawn(killed_self_calls, sv);
    TU_EQ(sl_run(), 0);
    TU_EQ(load(&killed_offload_ran), 0);
    close2(sv);
}

TU_TEST_NOINIT(without_runtime_calls_that_would_park_are_estate)
{
    int sv[2];
    nb_socketpair(sv);
    int ran = 0;
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, -1), SL_ESTATE);
    TU_EQ(sl_wait_fd(sv[0], SL_WRITABLE, 0), SL_ESTATE);
    TU_EQ(sl_wait_fd(-1, 0, 0), SL_ESTATE);
    TU_EQ(sl_offload(set_flag_fn, &ran), SL_ESTATE);
    TU_EQ(sl_offload(NULL, NULL), SL_ESTATE);
    TU_EQ(ran, 0);
    char buf[4];
    TU_EQ(sl_read(sv[0], buf, sizeof buf), SL_ESTATE); /* would park */
    /* Calls that do not park are plain system calls. */
    TU_EQ(sl_write(sv[1], "ok", 2), 2);
    TU_EQ(sl_read(sv[0], buf, sizeof buf), 2);
    TU_EQ(sl_read(-1, buf, sizeof buf), -EBADF);
    close2(sv);
}

/* A waiter without a timeout keeps sl_run from returning until it is
 * served: it is not "blocked forever". */
static void waiter_then_log(void *arg)
{
    waiter_fn(arg);
    tu_log_putc('R');
}

static void sleep_then_write_log(void *arg)
{
    int fd = *(int *)arg;
    TU_EQ(sl_sleep_ms(20), 0);
    tu_log_putc('w');
    CU_ASSERT(write(fd, "x", 1) == 1);
}

TU_TEST(run_waits_for_a_tasklet_parked_on_a_descriptor)
{
    int sv[2];
    nb_socketpair(sv);
    struct waiter w = waiter(sv[0], SL_READABLE, -1);
    sl_spawn(waiter_then_log, &w);
    sl_spawn(sleep_then_write_log, &sv[1]);
    int64_t t0 = sl_now_ms();
    TU_EQ(sl_run(), 0);
    CU_ASSERT(sl_now_ms() - t0 >= 20);
    TU_EQ(w.rc, SL_READABLE);
    TU_ASSERT_LOG("wR");
    TU_EQ(sl_getlivecount(), 0);
    close2(sv);
}

/* A worker that never runs dry still looks at its descriptors every
 * SL_POLL_EVERY (128) scheduling points. */
struct spin {
    struct waiter *w;
    int write_fd;
    int iters; /* sl_schedule calls between the write and the wakeup */
};

static void spin_until_served(void *arg)
{
    struct spin *s = arg;
    for (int i = 0; i < 10; i++)
        sl_schedule();
    CU_ASSERT(write(s->write_fd, "x", 1) == 1);
    while (!load(&s->w->done) && s->iters < 1000000) {
        sl_schedule();
        s->iters++;
    }
}

TU_TEST(busy_worker_still_serves_descriptors)
{
    int sv[2];
    nb_socketpair(sv);
    struct waiter w = waiter(sv[0], SL_READABLE, -1);
    struct spin s = {.w = &w, .write_fd = sv[1]};
    sl_spawn(waiter_fn, &w);
    sl_spawn(spin_until_served, &s); /* never lets the run queue empty */
    TU_EQ(sl_run(), 0);
    TU_EQ(w.rc, SL_READABLE);
    CU_ASSERT(s.iters >= 1);
    CU_ASSERT(s.iters <= 2 * 128);
    if (s.iters > 2 * 128)
        printf("(served after %d scheduling points) ", s.iters);
    close2(sv);
}

/* The safe way to take a descriptor from under a waiter: shutdown(2) wakes
 * it (a hang-up counts as every event it asked for); then close. */
TU_TEST(shutdown_wakes_a_waiter_so_the_descriptor_can_be_closed)
{
    int sv[2];
    nb_socketpair(sv);
    struct waiter w = waiter(sv[0], SL_READABLE, -1);
    spawn_on(1, waiter_fn, &w);
    yield_until(&w.entered);
    TU_EQ(shutdown(sv[0], SHUT_RDWR), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(w.rc, SL_READABLE);
    char c;
    TU_EQ(sl_read(sv[0], &c, 1), 0);
    close2(sv);
}

TU_TEST(hangup_and_error_count_as_the_requested_events)
{
    int sv[2];
    nb_socketpair(sv);
    close(sv[1]); /* peer gone: readable (EOF) */
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, -1), SL_READABLE);
    char c;
    TU_EQ(sl_read(sv[0], &c, 1), 0);
    close(sv[0]);

    int p[2];
    nb_pipe(p);
    close(p[0]); /* reader gone: the write end reports an error */
    TU_EQ(sl_wait_fd(p[1], SL_WRITABLE, -1), SL_WRITABLE);
    signal(SIGPIPE, SIG_IGN); /* this test's process only */
    TU_EQ(sl_write(p[1], "x", 1), -EPIPE);
    close(p[1]);
}

static void tcp_pair(int sv[2]);

/* ---- sl_read / sl_write ------------------------------------------------------ */

struct stream {
    int fd, id;
    size_t size;     /* bytes to send / expected */
    size_t bytes;    /* sent / received */
    uint64_t sum;    /* checksum of the bytes in order */
    int mismatches;  /* received bytes that differ from the pattern */
    int err;         /* first negative return, or 0 */
    int eof;         /* reader: saw 0 after the last byte */
};

static void stream_writer(void *arg)
{
    struct stream *s = arg;
    uint8_t buf[4096];
    size_t k = 0;
    while (s->bytes < s->size) {
        size_t chunk = 1 + (k++ * 1237) % sizeof buf;
        if (chunk > s->size - s->bytes)
            chunk = s->size - s->bytes;
        for (size_t i = 0; i < chunk; i++) {
            buf[i] = pattern(s->id, s->bytes + i);
            s->sum = sum_step(s->sum, buf[i]);
        }
        ssize_t n = write_all(s->fd, buf, chunk, NULL);
        if (n < 0) {
            s->err = (int)n;
            return;
        }
        s->bytes += (size_t)n;
    }
    shutdown(s->fd, SHUT_WR);
}

static void stream_reader(void *arg)
{
    struct stream *s = arg;
    uint8_t buf[3000];
    for (;;) {
        ssize_t n = sl_read(s->fd, buf, 1 + (s->bytes * 13) % sizeof buf);
        if (n < 0) {
            s->err = (int)n;
            return;
        }
        if (n == 0) {
            s->eof = 1;
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != pattern(s->id, s->bytes + (size_t)i))
                s->mismatches++;
            s->sum = sum_step(s->sum, buf[i]);
        }
        s->bytes += (size_t)n;
    }
}

#define PAIRS 100
static struct io_pair {
    int sv[2];
    struct stream w, r;
} pairs[PAIRS];

TU_TEST(many_pairs_exchange_exact_bytes)
{
    int n = TU_TSAN_SIZE(PAIRS, 20);
    size_t size = TU_TSAN_SIZE(200 * 1024, 24 * 1024); /* several socket buffers */
    for (int i = 0; i < n; i++) {
        struct io_pair *p = &pairs[i];
        nb_socketpair(p->sv);
        p->w = (struct stream){.fd = p->sv[0], .id = i, .size = size};
        p->r = (struct stream){.fd = p->sv[1], .id = i, .size = size};
        CU_ASSERT_PTR_NOT_NULL_FATAL(spawn_on(i, stream_writer, &p->w));
        CU_ASSERT_PTR_NOT_NULL_FATAL(spawn_on(i + 1, stream_reader, &p->r));
    }
    TU_EQ(sl_run(), 0);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        struct io_pair *p = &pairs[i];
        bool ok = p->w.err == 0 && p->r.err == 0 && p->w.bytes == size &&
                  p->r.bytes == size && p->r.mismatches == 0 && p->r.eof &&
                  p->w.sum == p->r.sum;
        if (!ok && bad++ < 3) {
            TU_EQ(p->w.err, 0);
            TU_EQ(p->r.err, 0);
            TU_EQ(p->w.bytes, size);
            TU_EQ(p->r.bytes, size);
            TU_EQ(p->r.mismatches, 0);
            TU_EQ(p->r.eof, 1);
            CU_ASSERT(p->w.sum == p->r.sum);
        }
        close2(p->sv);
    }
    TU_EQ(bad, 0);
}

/* One big sl_write fills the socket buffer and returns the part that fit;
 * the next one parks until the reader (which has not run yet) drains. */
struct big_writer {
    int fd;
    const uint8_t *buf;
    size_t len;
    ssize_t total;
    int calls;
    ssize_t first;          /* what the first sl_write returned */
    int reader_ran_before;  /* the reader had run before the 2nd call */
    int reader_ran_after;   /* ... and had run when it returned */
    int *reader_started;    /* read atomically: the reader may run on
                               another worker */
};

static void big_write_fn(void *arg)
{
    struct big_writer *b = arg;
    b->first = sl_write(b->fd, b->buf, b->len);
    b->calls = 1;
    if (b->first < 0)
        return;
    b->reader_ran_before = __atomic_load_n(b->reader_started, __ATOMIC_ACQUIRE);
    ssize_t rest = write_all(b->fd, b->buf + b->first,
                             b->len - (size_t)b->first, &b->calls);
    b->reader_ran_after = __atomic_load_n(b->reader_started, __ATOMIC_ACQUIRE);
    b->total = rest < 0 ? rest : b->first + rest;
    shutdown(b->fd, SHUT_WR);
}

struct big_reader {
    int fd;
    int started;
    int delay_ms;           /* sleep this long before the first read */
    const uint8_t *expect;
    size_t len;
    ssize_t got;
    int mismatch;
};

static void big_read_fn(void *arg)
{
    struct big_reader *r = arg;
    __atomic_store_n(&r->started, 1, __ATOMIC_RELEASE);
    if (r->delay_ms)
        sl_sleep_ms(r->delay_ms);
    uint8_t buf[8192];
    size_t got = 0;
    for (;;) {
        ssize_t n = sl_read(r->fd, buf, sizeof buf);
        if (n < 0) {
            r->got = n;
            return;
        }
        if (n == 0)
            break;
        if (got + (size_t)n > r->len ||
            memcmp(buf, r->expect + got, (size_t)n) != 0)
            r->mismatch = 1;
        got += (size_t)n;
    }
    r->got = (ssize_t)got;
}

TU_TEST(large_write_parks_until_the_reader_drains)
{
    size_t len = TU_SIZE(8u << 20, 1u << 20);
    uint8_t *buf = pattern_buf(7, len);
    int sv[2];
    nb_socketpair(sv);
    struct big_reader r = {.fd = sv[1], .expect = buf, .len = len};
    struct big_writer w = {.fd = sv[0], .buf = buf, .len = len,
                           .reader_started = &r.started};
    sl_spawn(big_write_fn, &w); /* same worker, runs first */
    sl_spawn(big_read_fn, &r);
    TU_EQ(sl_run(), 0);
    CU_ASSERT(w.first > 0 && (size_t)w.first < len); /* the buffer filled */
    TU_EQ(w.reader_ran_before, 0);
    TU_EQ(w.reader_ran_after, 1); /* so the writer parked meanwhile */
    CU_ASSERT(w.calls >= 2);
    TU_EQ(w.total, len);
    TU_EQ(r.got, len);
    TU_EQ(r.mismatch, 0);
    close2(sv);
    free(buf);
}

/* The same through TCP, writer and reader on different workers when there
 * are two: the writer's waits for room and the reader's waits for data
 * park without a check once each has seen the socket full or empty. */
TU_TEST(large_write_through_tcp_arrives_whole)
{
    size_t len = TU_SIZE(16u << 20, 4u << 20);
    uint8_t *buf = pattern_buf(9, len);
    int sv[2];
    tcp_pair(sv);
    /* Small fixed buffers and a reader that starts late: the first write
     * must fill them and park (with autotuned buffers and a reader draining
     * on the other CPU, one write could take it all). */
    int small = 64 << 10;
    CU_ASSERT(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    CU_ASSERT(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
    struct big_reader r = {.fd = sv[1], .expect = buf, .len = len, .delay_ms = 20};
    struct big_writer w = {.fd = sv[0], .buf = buf, .len = len,
                           .reader_started = &r.started};
    spawn_on(0, big_write_fn, &w);
    spawn_on(1, big_read_fn, &r);
    TU_EQ(sl_run(), 0);
    CU_ASSERT(w.first > 0 && (size_t)w.first < len); /* the socket filled */
    CU_ASSERT(w.calls >= 2);
    TU_EQ(w.total, len);
    TU_EQ(r.got, len);
    TU_EQ(r.mismatch, 0);
    close2(sv);
    free(buf);
}

TU_TEST(read_returns_zero_at_eof)
{
    int sv[2];
    nb_socketpair(sv);
    struct reader r = {.fd = sv[0], .rc = 12345};
    spawn_on(1, sl_read_fn, &r);
    yield_until(&r.entered);
    TU_EQ(sl_write(sv[1], "abc", 3), 3);
    TU_EQ(sl_run(), 0);
    TU_EQ(r.rc, 3);
    /* Parked in sl_read when the peer closes: 0. */
    r = (struct reader){.fd = sv[0], .rc = 12345};
    spawn_on(1, sl_read_fn, &r);
    yield_until(&r.entered);
    close(sv[1]);
    TU_EQ(sl_run(), 0);
    TU_EQ(r.rc, 0);
    char c;
    TU_EQ(sl_read(sv[0], &c, 1), 0); /* and again, at once */
    close(sv[0]);

    int p[2];
    nb_pipe(p);
    TU_EQ(sl_write(p[1], "z", 1), 1);
    close(p[1]);
    TU_EQ(sl_read(p[0], &c, 1), 1);
    TU_EQ(c, 'z');
    TU_EQ(sl_read(p[0], &c, 1), 0);
    close(p[0]);
}

TU_TEST(bad_descriptors_are_ebadf)
{
    char c = 0;
    int fd = closed_fd();
    TU_EQ(sl_read(-1, &c, 1), -EBADF);
    TU_EQ(sl_read(fd, &c, 1), -EBADF);
    TU_EQ(sl_write(-1, &c, 1), -EBADF);
    TU_EQ(sl_write(fd, &c, 1), -EBADF);
    TU_EQ(sl_accept(-1, NULL, NULL), -EBADF);
    TU_EQ(sl_accept(fd, NULL, NULL), -EBADF);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    TU_EQ(sl_connect(-1, (struct sockaddr *)&a, sizeof a), -EBADF);
    TU_EQ(sl_connect(fd, (struct sockaddr *)&a, sizeof a), -EBADF);
    int p[2];
    nb_pipe(p);
    TU_EQ(sl_accept(p[0], NULL, NULL), -ENOTSOCK);
    close2(p);
}

/* ---- sl_accept / sl_connect --------------------------------------------------- */

#define CONNS_MAX 64
#define ECHO_ROUNDS 8
#define ECHO_CHUNK 1500

static struct echo {
    int lfd;
    struct sockaddr_in addr;
    int nconns;
    int accepted, accept_err, peer_bad;
    int nonblocking, cloexec;   /* accepted descriptors that are */
    long echoed;                /* bytes the handlers echoed */
    int handler_err;
    int client_ok, client_err;
} echo;

static void echo_handler(void *arg)
{
    int fd = (int)TU_INT(arg);
    int fl = fcntl(fd, F_GETFL);
    int fdfl = fcntl(fd, F_GETFD);
    if (fl >= 0 && (fl & O_NONBLOCK))
        __atomic_add_fetch(&echo.nonblocking, 1, __ATOMIC_RELAXED);
    if (fdfl >= 0 && (fdfl & FD_CLOEXEC))
        __atomic_add_fetch(&echo.cloexec, 1, __ATOMIC_RELAXED);
    char buf[1024];
    for (;;) {
        ssize_t n = sl_read(fd, buf, sizeof buf);
        if (n <= 0) {
            if (n < 0)
                __atomic_add_fetch(&echo.handler_err, 1, __ATOMIC_RELAXED);
            break;
        }
        ssize_t m = write_all(fd, buf, (size_t)n, NULL);
        if (m != n) {
            __atomic_add_fetch(&echo.handler_err, 1, __ATOMIC_RELAXED);
            break;
        }
        __atomic_add_fetch(&echo.echoed, (long)n, __ATOMIC_RELAXED);
    }
    close(fd);
}

static void echo_server(void *arg)
{
    (void)arg;
    for (int i = 0; i < echo.nconns; i++) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        int c = sl_accept(echo.lfd, (struct sockaddr *)&peer, &plen);
        if (c < 0) {
            echo.accept_err = c;
            break;
        }
        echo.accepted++;
        if (plen != sizeof peer || peer.sin_family != AF_INET ||
            peer.sin_addr.s_addr != htonl(INADDR_LOOPBACK))
            echo.peer_bad++;
        if (!spawn_on(i + 1, echo_handler, TU_MSG(c)))
            close(c);
    }
}

static void echo_client(void *arg)
{
    int id = (int)TU_INT(arg);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = fd < 0 ? -errno
                    : sl_connect(fd, (struct sockaddr *)&echo.addr,
                                 sizeof echo.addr);
    bool ok = rc == 0;
    uint8_t out[ECHO_CHUNK], in[ECHO_CHUNK];
    size_t pos = 0;
    for (int round = 0; ok && round < ECHO_ROUNDS; round++) {
        size_t len = 1 + (size_t)(id * 97 + round * 389) % ECHO_CHUNK;
        for (size_t i = 0; i < len; i++)
            out[i] = pattern(id, pos + i);
        pos += len;
        ok = write_all(fd, out, len, NULL) == (ssize_t)len &&
             read_full(fd, in, len) == (ssize_t)len &&
             memcmp(in, out, len) == 0;
    }
    if (ok) { /* our EOF makes the handler close: then EOF here */
        char c;
        ok = shutdown(fd, SHUT_WR) == 0 && sl_read(fd, &c, 1) == 0;
    }
    if (fd >= 0)
        close(fd);
    __atomic_add_fetch(ok ? &echo.client_ok : &echo.client_err, 1,
                       __ATOMIC_RELAXED);
}

static int listen_loopback(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(fd >= 0);
    *addr = (struct sockaddr_in){.sin_family = AF_INET,
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof *addr;
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)addr, sizeof *addr) == 0);
    CU_ASSERT_FATAL(listen(fd, 128) == 0);
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)addr, &len) == 0);
    CU_ASSERT(addr->sin_port != 0);
    return fd;
}

TU_TEST(server_accepts_and_echoes_every_client)
{
    memset(&echo, 0, sizeof echo);
    echo.nconns = TU_SIZE(CONNS_MAX, 16);
    echo.lfd = listen_loopback(&echo.addr);
    sl_spawn(echo_server, NULL); /* accepts on main's worker */
    for (int i = 0; i < echo.nconns; i++)
        CU_ASSERT_PTR_NOT_NULL_FATAL(spawn_on(i, echo_client, TU_MSG(i)));
    TU_EQ(sl_run(), 0);
    long per_client = 0;
    for (int i = 0; i < echo.nconns; i++)
        for (int round = 0; round < ECHO_ROUNDS; round++)
            per_client += 1 + (i * 97 + round * 389) % ECHO_CHUNK;
    TU_EQ(echo.accept_err, 0);
    TU_EQ(echo.accepted, echo.nconns);
    TU_EQ(echo.peer_bad, 0);
    TU_EQ(echo.nonblocking, echo.nconns);
    TU_EQ(echo.cloexec, echo.nconns);
    TU_EQ(echo.handler_err, 0);
    TU_EQ(echo.echoed, per_client);
    TU_EQ(echo.client_err, 0);
    TU_EQ(echo.client_ok, echo.nconns);
    close(echo.lfd);
}

TU_TEST(connect_to_a_closed_port_is_econnrefused)
{
    /* A port bound but not listening (kept bound, so nobody else takes it
     * meanwhile): the connection is refused. */
    int hold = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(hold >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CU_ASSERT_FATAL(bind(hold, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT_FATAL(getsockname(hold, (struct sockaddr *)&a, &len) == 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(fd >= 0);
    TU_EQ(sl_connect(fd, (struct sockaddr *)&a, sizeof a), -ECONNREFUSED);
    close(fd);
    close(hold);
}

/* A listener with nobody connecting: the acceptor parks, the worker runs
 * the others, a connection wakes it. */
static void accept_one(void *arg)
{
    struct reader *r = arg;
    store(&r->entered, 1);
    r->rc = sl_accept(r->fd, NULL, NULL);
    store(&r->done, 1);
}

TU_TEST(accept_parks_until_a_client_connects)
{
    struct sockaddr_in addr;
    int lfd = listen_loopback(&addr);
    struct reader r = {.fd = lfd, .rc = 12345};
    sl_spawn(accept_one, &r);
    yield_until(&r.entered);
    TU_EQ(load(&r.done), 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(fd >= 0);
    TU_EQ(sl_connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    TU_EQ(sl_run(), 0);
    CU_ASSERT(r.rc >= 0);
    if (r.rc >= 0) {
        TU_EQ(sl_write(fd, "hi", 2), 2);
        char buf[2];
        TU_EQ(read_full((int)r.rc, buf, 2), 2);
        CU_ASSERT(memcmp(buf, "hi", 2) == 0);
        close((int)r.rc);
    }
    close(fd);
    close(lfd);
}

/* ---- registrations kept between waits ------------------------------------------ */

/* A connected pair of non-blocking TCP sockets on loopback, without
 * Nagle's delay. */
static void tcp_pair(int sv[2])
{
    struct sockaddr_in addr;
    int lfd = listen_loopback(&addr), one = 1;
    sv[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(sv[1] >= 0);
    CU_ASSERT_FATAL(connect(sv[1], (struct sockaddr *)&addr, sizeof addr) == 0);
    sv[0] = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    CU_ASSERT_FATAL(sv[0] >= 0);
    CU_ASSERT_FATAL(fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK) == 0);
    setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    close(lfd);
}

/* Registers sv[0] with this worker's epoll and leaves it seen empty: a wait,
 * a byte, a short sl_read. The next wait parks without a system call. */
static void tcp_seen_empty(int sv[2])
{
    char buf[64];
    CU_ASSERT(write(sv[1], "e", 1) == 1);
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, UNREACHED_MS), SL_READABLE);
    TU_EQ(sl_read(sv[0], buf, sizeof buf), 1);
}

static void write_after_20ms_fd(void *arg)
{
    TU_EQ(sl_sleep_ms(20), 0);
    CU_ASSERT(write((int)TU_INT(arg), "w", 1) == 1);
}

/* Edge-triggered underneath, level-triggered as documented: what is left
 * unread is reported again, and an empty socket is not. */
TU_TEST(data_left_unread_is_reported_again)
{
    int kinds[2][2];
    tcp_pair(kinds[0]);
    nb_socketpair(kinds[1]);
    for (int k = 0; k < 2; k++) {
        int *sv = kinds[k];
        char buf[64];
        CU_ASSERT(write(sv[1], "0123456789", 10) == 10);
        TU_EQ(sl_wait_fd(sv[0], SL_READABLE, UNREACHED_MS), SL_READABLE);
        TU_EQ(sl_read(sv[0], buf, 4), 4); /* not all of it */
        TU_EQ(sl_wait_fd(sv[0], SL_READABLE, UNREACHED_MS), SL_READABLE);
        TU_EQ(sl_wait_fd(sv[0], SL_READABLE | SL_WRITABLE, UNREACHED_MS),
              SL_READABLE | SL_WRITABLE);
        TU_EQ(sl_read(sv[0], buf, sizeof buf), 6); /* the rest: now empty */
        TU_EQ(sl_wait_fd(sv[0], SL_READABLE, 30), SL_ETIMEDOUT);
        /* A later byte wakes a parked reader (or it waits forever). */
        spawn_on(1, write_after_20ms_fd, TU_MSG(sv[1]));
        TU_EQ(sl_read(sv[0], buf, sizeof buf), 1);
        TU_EQ(sl_run(), 0);
        close2(sv);
    }
}

/* Data that comes while nobody waits is reported to the next wait; data
 * taken behind the runtime's back (plain read) is not. */
TU_TEST(data_that_came_while_nobody_waited_is_read_at_once)
{
    int sv[2];
    tcp_pair(sv);
    tcp_seen_empty(sv);
    char buf[64];
    CU_ASSERT(write(sv[1], "x", 1) == 1);
    TU_EQ(sl_sleep_ms(10), 0); /* the worker sees the event, nobody waits */
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, UNREACHED_MS), SL_READABLE);
    TU_EQ(sl_read(sv[0], buf, sizeof buf), 1);
    /* Seen ready, then drained by read(2): the next wait times out. */
    CU_ASSERT(write(sv[1], "y", 1) == 1);
    TU_EQ(sl_sleep_ms(10), 0);
    CU_ASSERT(read(sv[0], buf, sizeof buf) == 1);
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, 30), SL_ETIMEDOUT);
    /* Data that comes just before a read that parks at once (the socket
     * was seen empty): the read still gets it. */
    tcp_seen_empty(sv);
    CU_ASSERT(write(sv[1], "z", 1) == 1);
    TU_EQ(sl_read(sv[0], buf, sizeof buf), 1);
    TU_EQ(buf[0], 'z');
    close2(sv);
}

/* A short read followed by the peer's end of file: the read after it
 * returns 0, whether the hang-up was seen before that read or not. */
TU_TEST(end_of_file_after_a_short_read_is_returned)
{
    for (int seen = 0; seen < 2; seen++) {
        int sv[2];
        tcp_pair(sv);
        tcp_seen_empty(sv);
        char buf[64];
        CU_ASSERT(write(sv[1], "abc", 3) == 3);
        TU_EQ(shutdown(sv[1], SHUT_WR), 0);
        if (seen)
            TU_EQ(sl_sleep_ms(10), 0);
        TU_EQ(sl_read(sv[0], buf, sizeof buf), 3);
        TU_EQ(sl_read(sv[0], buf, sizeof buf), 0);
        TU_EQ(sl_read(sv[0], buf, sizeof buf), 0);
        close2(sv);
    }
}

/* Move the file of fd to number n (closing what n was, behind the
 * runtime's back) and close fd. */
static void renumber(int fd, int n)
{
    if (fd == n)
        return; /* the lowest free number was n already */
    CU_ASSERT_FATAL(dup2(fd, n) == n);
    close(fd);
}

/* A number closed and given to another descriptor between waits: the
 * runtime registers the new one, at once after sl_close, sl_accept or
 * sl_connect, and otherwise at the latest when a wait parked without a
 * check is re-checked (50 ms). Never a wait that is not woken. */
TU_TEST(closed_and_reused_number_is_registered_afresh)
{
    char buf[64];
    /* sl_close, then the number is a pipe's. */
    int a[2];
    tcp_pair(a);
    tcp_seen_empty(a);
    int n = a[0];
    int p[2];
    nb_pipe(p); /* before the close: neither end gets the number */
    TU_EQ(sl_close(n), 0);
    renumber(p[0], n);
    p[0] = n;
    CU_ASSERT(write(p[1], "p", 1) == 1);
    TU_EQ(sl_wait_fd(n, SL_READABLE, UNREACHED_MS), SL_READABLE);
    TU_EQ(sl_read(n, buf, sizeof buf), 1);
    TU_EQ(sl_wait_fd(n, SL_READABLE, 20), SL_ETIMEDOUT);
    close2(p);
    close(a[1]);

    /* close(2) behind the runtime's back, the number then another TCP
     * socket that has data: its read parks at once (the old socket was
     * seen empty), and the re-check finds the new one. */
    int b[2], c[2];
    tcp_pair(b);
    tcp_seen_empty(b);
    n = b[0];
    tcp_pair(c);
    renumber(c[0], n); /* closes b[0] */
    c[0] = n;
    CU_ASSERT(write(c[1], "c", 1) == 1);
    TU_EQ(sl_read(n, buf, sizeof buf), 1); /* or it waits forever */
    TU_EQ(buf[0], 'c');
    /* From then on the new socket is served like any other. */
    spawn_on(1, write_after_20ms_fd, TU_MSG(c[1]));
    TU_EQ(sl_read(n, buf, sizeof buf), 1);
    TU_EQ(sl_wait_fd(n, SL_READABLE, 20), SL_ETIMEDOUT);
    TU_EQ(sl_run(), 0);
    close2(c);
    close(b[1]);

    /* A parked wait whose number is closed under it learns it at the
     * re-check (the documented rule is still: do not) as -EBADF; a wait
     * on the number after that fails at once. */
    int d[2];
    tcp_pair(d);
    tcp_seen_empty(d);
    struct reader r = {.fd = d[0], .rc = 12345};
    sl_spawn(sl_read_fn, &r);
    yield_until(&r.entered);
    int keep = dup(d[0]); /* the file lives on: only the number goes */
    close(d[0]);
    TU_EQ(sl_run(), 0);
    TU_EQ(r.rc, -EBADF);
    TU_EQ(sl_wait_fd(d[0], SL_READABLE, 2000), -EBADF);
    close(keep);
    close(d[1]);
}

/* The number an accepted connection gets may be one a closed connection
 * had: sl_accept makes it register afresh. */
TU_TEST(accepted_descriptor_on_a_reused_number_is_served)
{
    struct sockaddr_in addr;
    int lfd = listen_loopback(&addr);
    int last = -1, reused = 0;
    for (int i = 0; i < 4; i++) {
        int cl = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        CU_ASSERT_FATAL(cl >= 0);
        TU_EQ(sl_connect(cl, (struct sockaddr *)&addr, sizeof addr), 0);
        int s = sl_accept(lfd, NULL, NULL);
        CU_ASSERT_FATAL(s >= 0);
        reused += s == last;
        char buf[64];
        CU_ASSERT(write(cl, "q", 1) == 1);
        TU_EQ(sl_read(s, buf, sizeof buf), 1); /* parks, then short */
        spawn_on(1, write_after_20ms_fd, TU_MSG(cl));
        TU_EQ(sl_read(s, buf, sizeof buf), 1); /* parks without a check */
        TU_EQ(sl_run(), 0);
        last = s;
        close(s); /* not sl_close: the next accept reuses the number */
        close(cl);
    }
    CU_ASSERT(reused > 0);
    close(lfd);
}

/* Timeouts and kills of waits parked without a check, here and on another
 * worker; the socket is served normally after them. */
TU_TEST(timeouts_and_kills_of_waits_on_a_socket_seen_empty)
{
    int sv[2];
    tcp_pair(sv);
    tcp_seen_empty(sv);
    int64_t t0 = sl_now_ms();
    TU_EQ(sl_wait_fd(sv[0], SL_READABLE, 30), SL_ETIMEDOUT);
    CU_ASSERT(sl_now_ms() - t0 >= 30);
    for (int on = 0; on < 2; on++) {
        struct reader r = {.fd = sv[0], .rc = 12345};
        sl_tasklet *t = spawn_on(on, sl_read_fn, &r);
        sl_tasklet_ref(t);
        yield_until(&r.entered);
        usleep(20000); /* on another worker: let it park there */
        TU_EQ(sl_tasklet_kill(t), 0);
        TU_EQ(sl_run(), 0);
        TU_EQ(r.rc, SL_EKILLED);
        sl_tasklet_unref(t);
        struct waiter w = waiter(sv[0], SL_READABLE, 40);
        spawn_on(on, waiter_fn, &w);
        TU_EQ(sl_run(), 0);
        TU_EQ(w.rc, SL_ETIMEDOUT);
    }
    TU_EQ(sl_sleep_ms(60), 0); /* the re-checks of those waits fall due */
    struct reader r = {.fd = sv[0], .rc = 12345};
    spawn_on(1, sl_read_fn, &r);
    spawn_on(0, write_after_20ms_fd, TU_MSG(sv[1]));
    TU_EQ(sl_run(), 0);
    TU_EQ(r.rc, 1);
    close2(sv);
}

/* Readers of one TCP socket on two workers, each registered with its own
 * worker's epoll: every byte is read once, both see the end of file. */
struct shared_reader {
    int fd, worker;
    long *total;
    int eof, err;
};

static void shared_read_fn(void *arg)
{
    struct shared_reader *s = arg;
    char buf[64];
    for (;;) {
        ssize_t n = sl_read(s->fd, buf, sizeof buf);
        if (n == 0) {
            s->eof = 1;
            return;
        }
        if (n < 0) {
            s->err = (int)n;
            return;
        }
        __atomic_add_fetch(s->total, (long)n, __ATOMIC_RELAXED);
    }
}

TU_TEST(socket_read_by_tasklets_on_two_workers)
{
    if (sl_worker_count() < 2) {
        printf("(two workers only) ");
        return;
    }
    int sv[2];
    tcp_pair(sv);
    long total = 0;
    struct shared_reader a = {.fd = sv[0], .total = &total};
    struct shared_reader b = {.fd = sv[0], .total = &total};
    spawn_on(0, shared_read_fn, &a);
    spawn_on(1, shared_read_fn, &b);
    TU_EQ(sl_sleep_ms(10), 0);
    for (int i = 0; i < 20; i++) {
        CU_ASSERT(write(sv[1], "0123456789", 10) == 10);
        TU_EQ(sl_sleep_ms(2), 0);
    }
    TU_EQ(shutdown(sv[1], SHUT_WR), 0);
    TU_EQ(sl_run(), 0);
    TU_EQ(total, 200);
    TU_EQ(a.eof + b.eof, 2);
    TU_EQ(a.err, 0);
    TU_EQ(b.err, 0);
    close2(sv);
}

/* Events that find nobody waiting, several in a row (the registration is
 * then dropped): the next waits register afresh and miss nothing. */
TU_TEST(descriptor_nobody_waits_on_for_a_while_is_served_after)
{
    int kinds[2][2];
    tcp_pair(kinds[0]);
    nb_socketpair(kinds[1]);
    for (int k = 0; k < 2; k++) {
        int *sv = kinds[k];
        char buf[64];
        CU_ASSERT(write(sv[1], "a", 1) == 1);
        TU_EQ(sl_wait_fd(sv[0], SL_READABLE, UNREACHED_MS), SL_READABLE);
        TU_EQ(sl_read(sv[0], buf, sizeof buf), 1);
        for (int i = 0; i < 3; i++) { /* each seen by the worker, unwaited */
            CU_ASSERT(write(sv[1], "b", 1) == 1);
            TU_EQ(sl_sleep_ms(5), 0);
        }
        TU_EQ(sl_wait_fd(sv[0], SL_READABLE, UNREACHED_MS), SL_READABLE);
        TU_EQ(sl_read(sv[0], buf, sizeof buf), 3);
        TU_EQ(sl_wait_fd(sv[0], SL_READABLE, 20), SL_ETIMEDOUT);
        spawn_on(1, write_after_20ms_fd, TU_MSG(sv[1]));
        TU_EQ(sl_read(sv[0], buf, sizeof buf), 1);
        TU_EQ(sl_run(), 0);
        close2(sv);
    }
}

TU_TEST(sl_close_closes)
{
    int sv[2];
    tcp_pair(sv);
    TU_EQ(sl_wait_fd(sv[0], SL_WRITABLE, UNREACHED_MS), SL_WRITABLE);
    TU_EQ(sl_close(sv[0]), 0);
    TU_EQ(fcntl(sv[0], F_GETFD), -1);
    TU_EQ(sl_close(sv[0]), -EBADF);
    TU_EQ(sl_close(-1), -EBADF);
    char c;
    TU_EQ(sl_read(sv[1], &c, 1), 0); /* the peer sees the close */
    close(sv[1]);
}

TU_TEST_NOINIT(sl_close_without_runtime)
{
    int p[2];
    nb_pipe(p);
    TU_EQ(sl_close(p[0]), 0);
    TU_EQ(sl_close(p[1]), 0);
    TU_EQ(sl_close(p[1]), -EBADF);
}

/* ---- sl_offload ------------------------------------------------------------- */

struct job {
    long tid;
    pthread_t self;
    int64_t start_ns, end_ns;
    int ms;          /* how long fn sleeps, at least */
    int *counter;    /* optional: read at start and end; fn also waits
                        (at most 10 s) until it has moved on twice */
    int gather;      /* optional: fn waits (at most 10 s) until this many
                        calls have been inside fn at once */
    int count_start, count_end;
    int rc;          /* the caller's sl_offload result */
    long caller_tid, caller_tid_after;
    int worker_before, worker_after;
};

/* Calls inside job_fn now, and the most there were at once. */
static int jobs_inside, jobs_inside_peak;

static void job_enter(void)
{
    int now = __atomic_add_fetch(&jobs_inside, 1, __ATOMIC_ACQ_REL);
    int peak = load(&jobs_inside_peak);
    while (now > peak &&
           !__atomic_compare_exchange_n(&jobs_inside_peak, &peak, now, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        ;
}

/* Runs on an offload thread. Its waits for other parties (gather,
 * counter) are bounded by 10 s, so that a runtime that never lets the
 * other party act fails the test instead of hanging it. */
static void job_fn(void *arg)
{
    struct job *j = arg;
    j->tid = tid();
    j->self = pthread_self();
    j->start_ns = tu_now_ns();
    job_enter();
    if (j->counter)
        j->count_start = load(j->counter);
    int64_t limit = j->start_ns + 10 * 1000000000LL;
    /* Sleep the whole time: usleep may return early when a signal comes
     * (sanitizers use some). */
    for (;;) {
        int64_t now = tu_now_ns();
        bool waiting = now - j->start_ns < (int64_t)j->ms * 1000000;
        if (now < limit)
            waiting = waiting ||
                      (j->gather && load(&jobs_inside_peak) < j->gather) ||
                      (j->counter && load(j->counter) < j->count_start + 2);
        if (!waiting)
            break;
        usleep(1000);
    }
    if (j->counter)
        j->count_end = load(j->counter);
    __atomic_sub_fetch(&jobs_inside, 1, __ATOMIC_ACQ_REL);
    j->end_ns = tu_now_ns();
}

static void offloader(void *arg)
{
    struct job *j = arg;
    j->caller_tid = tid();
    j->worker_before = sl_worker_index();
    j->rc = sl_offload(job_fn, j);
    j->caller_tid_after = tid();
    j->worker_after = sl_worker_index();
}

static void count_until(void *arg)
{
    struct job *j = arg;
    while (j->rc == 12345) {
        __atomic_add_fetch(j->counter, 1, __ATOMIC_RELEASE);
        if (sl_sleep_ms(1) < 0)
            break;
    }
}

/* While fn runs, the caller's worker runs the other tasklet: fn returns
 * once that tasklet's counter has moved on (or after 10 s: then the
 * counter assertion fails). */
TU_TEST(offload_runs_on_another_thread_while_others_run)
{
    int counter = 0;
    struct job j = {.ms = 50, .counter = &counter, .rc = 12345};
    sl_spawn(offloader, &j);
    sl_spawn(count_until, &j);
    TU_EQ(sl_run(), 0);
    TU_EQ(j.rc, 0);
    CU_ASSERT(j.tid != j.caller_tid);
    CU_ASSERT(!pthread_equal(j.self, pthread_self()));
    TU_EQ(j.caller_tid_after, j.caller_tid);
    CU_ASSERT(j.count_end > j.count_start); /* others ran during fn */
    CU_ASSERT(j.end_ns - j.start_ns >= 50 * 1000000LL);

    /* Main offloads too; arguments on its stack are fine. */
    struct job m = {.ms = 5};
    TU_EQ(sl_offload(job_fn, &m), 0);
    CU_ASSERT(m.tid != tid());
    CU_ASSERT(m.end_ns > m.start_ns);
}

/* Four threads run calls side by side: each call waits until four have
 * been inside fn at once (a pool of fewer threads never gets there: the
 * calls give up after 10 s and the peak shows it), and no more than four
 * ever are. */
TU_TEST(many_offloads_share_the_default_four_threads)
{
    enum { N = 64 };
    static struct job jobs[N];
    jobs_inside = jobs_inside_peak = 0;
    int64_t t0 = sl_now_ms();
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct job){.ms = 10, .gather = 4, .rc = 12345};
        CU_ASSERT_PTR_NOT_NULL_FATAL(spawn_on(i, offloader, &jobs[i]));
    }
    TU_EQ(sl_run(), 0);
    int64_t dt = sl_now_ms() - t0;
    /* 64 x 10 ms on 4 threads: at least 16 in a row on one of them. */
    CU_ASSERT(dt >= 150);
    TU_EQ(jobs_inside_peak, 4);
    TU_EQ(jobs_inside, 0);
    long tids[N];
    int ntids = 0, bad_rc = 0, same_thread = 0, moved = 0;
    for (int i = 0; i < N; i++) {
        bad_rc += jobs[i].rc != 0;
        same_thread += jobs[i].tid == jobs[i].caller_tid;
        /* pinned: it resumes on its own worker */
        moved += jobs[i].worker_after != jobs[i].worker_before ||
                 jobs[i].worker_after != i % sl_worker_count();
        int k = 0;
        while (k < ntids && tids[k] != jobs[i].tid)
            k++;
        if (k == ntids)
            tids[ntids++] = jobs[i].tid;
    }
    TU_EQ(bad_rc, 0);
    TU_EQ(same_thread, 0);
    TU_EQ(moved, 0);
    TU_EQ(ntids, 4);
}

TU_TEST(offload_of_null_is_einval)
{
    TU_EQ(sl_offload(NULL, NULL), SL_EINVAL);
    int x = 0;
    TU_EQ(sl_offload(NULL, &x), SL_EINVAL);
}

/* Killed while its call runs: the kill is recorded, and the call returns
 * SL_EKILLED only once fn has returned. */
static struct killed_job {
    int entered, fn_started, release, fn_done, returned;
    int rc, fn_done_at_return;
} kj;

static void held_fn(void *arg)
{
    (void)arg;
    store(&kj.fn_started, 1);
    /* Until main has killed the caller (no CUnit here: another thread). */
    for (int i = 0; i < 10000 && !load(&kj.release); i++)
        usleep(1000);
    usleep(20000);
    store(&kj.fn_done, 1);
}

static void killed_offloader(void *arg)
{
    (void)arg;
    store(&kj.entered, 1);
    kj.rc = sl_offload(held_fn, NULL);
    kj.fn_done_at_return = load(&kj.fn_done);
    store(&kj.returned, 1);
}

TU_TEST(killed_offloader_returns_only_after_fn)
{
    memset(&kj, 0, sizeof kj);
    kj.rc = 12345;
    sl_tasklet *t = spawn_on(1, killed_offloader, NULL);
    sl_tasklet_ref(t);
    yield_until(&kj.entered);
    /* fn runs: the caller is parked in sl_offload (on worker 1 it might
     * still be on its way when entered is set, and a kill before the call
     * is the other case: SL_EKILLED at once, fn never runs). */
    os_wait_until(&kj.fn_started);
    TU_EQ(sl_tasklet_kill(t), 0);
    for (int i = 0; i < 10; i++)
        sl_schedule();
    usleep(10000);
    TU_EQ(load(&kj.returned), 0); /* fn still runs: the call waits */
    TU_EQ(sl_tasklet_alive(t), true);
    store(&kj.release, 1);
    TU_EQ(sl_run(), 0);
    TU_EQ(kj.rc, SL_EKILLED);
    TU_EQ(kj.fn_done_at_return, 1);
    TU_EQ(sl_tasklet_alive(t), false);
    sl_tasklet_unref(t);
}

/* Review (issue 13): with one worker, an offload helper hands the caller
 * back through worker 0's inbox (SL_T_INBOX) while other tasklets run.
 * sl_tasklet_run and sl_tasklet_switch on one worker look only for
 * DEAD, BLOCKED and PAUSED (sched.c run_or_switch), so they jump straight
 * into a tasklet that sits in the inbox and is in no run queue; the
 * inbox is linked in later around it (sl_tasklet_insert says SL_ESTATE
 * for it, where "scheduled" should be a no-op). */
static int ib_done;
static void ib_fn(void *arg) { (void)arg; }
static void ib_offloader(void *arg)
{
    (void)arg;
    TU_EQ(sl_offload(ib_fn, NULL), 0);
    store(&ib_done, 1);
}

TU_TEST(run_of_a_tasklet_handed_back_by_its_offload_links_it_first)
{
    TU_ONE_WORKER_ONLY();
    ib_done = 0;
    sl_tasklet *t = sl_spawn(ib_offloader, NULL);
    sl_tasklet_ref(t);
    TU_EQ(sl_schedule(), 0); /* t starts its call and parks */
    /* fn has returned and t is on its way back (no scheduling point of
     * ours has looked at the inbox since) */
    for (int i = 0; i < 5000 && sl_tasklet_blocked(t); i++)
        usleep(1000);
    TU_EQ(sl_tasklet_blocked(t), false);
    TU_EQ(sl_tasklet_scheduled(t), true);
    TU_EQ(sl_tasklet_insert(t), 0); /* scheduled: a no-op */
    TU_EQ(sl_tasklet_run(t), 0);
    TU_EQ(load(&ib_done), 1);
    TU_EQ(sl_tasklet_alive(t), false);
    TU_EQ(sl_getruncount(), 1); /* main alone */
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_getlivecount(), 0);
    TU_EQ(sl_getruncount(), 1);
    sl_tasklet_unref(t);
}

static int init_with_offload_threads(int n)
{
    sl_config cfg;
    sl_config_init(&cfg);
    cfg.workers = tu_workers();
    cfg.steal = 0;
    cfg.offload_threads = n;
    return sl_init(&cfg);
}

TU_TEST_NOINIT(one_offload_thread_serialises)
{
    TU_EQ(init_with_offload_threads(1), 0);
    struct job a = {.ms = 30, .rc = 12345}, b = {.ms = 30, .rc = 12345};
    int64_t t0 = sl_now_ms();
    spawn_on(0, offloader, &a);
    spawn_on(1, offloader, &b);
    TU_EQ(sl_run(), 0);
    int64_t dt = sl_now_ms() - t0;
    TU_EQ(a.rc, 0);
    TU_EQ(b.rc, 0);
    CU_ASSERT(dt >= 60);
    TU_EQ(a.tid, b.tid);
    CU_ASSERT(a.end_ns <= b.start_ns || b.end_ns <= a.start_ns);
    TU_EQ(sl_shutdown(), 0);
}

/* Two threads: two calls run at the same time (each waits for the other to
 * have started). */
static int both_running;

static void rendezvous_fn(void *arg)
{
    int *ok = arg;
    __atomic_add_fetch(&both_running, 1, __ATOMIC_ACQ_REL);
    int64_t end = sl_now_ms() + 10000;
    while (load(&both_running) < 2 && sl_now_ms() < end)
        usleep(500);
    *ok = load(&both_running) >= 2;
}

static void rendezvous_offloader(void *arg)
{
    TU_EQ(sl_offload(rendezvous_fn, arg), 0);
}

TU_TEST_NOINIT(two_offload_threads_run_calls_concurrently)
{
    TU_EQ(init_with_offload_threads(2), 0);
    int ok_a = 0, ok_b = 0;
    spawn_on(0, rendezvous_offloader, &ok_a);
    spawn_on(1, rendezvous_offloader, &ok_b);
    TU_EQ(sl_run(), 0);
    TU_EQ(ok_a, 1);
    TU_EQ(ok_b, 1);
    TU_EQ(sl_shutdown(), 0);
}

TU_TEST_NOINIT(bad_offload_threads_are_einval)
{
    TU_EQ(init_with_offload_threads(-1), SL_EINVAL);
    TU_EQ(init_with_offload_threads(1000), SL_EINVAL);
    TU_EQ(init_with_offload_threads(257), SL_EINVAL);
    TU_EQ(sl_getruncount(), SL_ESTATE); /* nothing was started */
    TU_EQ(init_with_offload_threads(256), 0);
    TU_EQ(sl_shutdown(), 0);
    TU_EQ(init_with_offload_threads(0), 0); /* 0: the default */
    struct job j = {.ms = 1};
    TU_EQ(sl_offload(job_fn, &j), 0);
    TU_EQ(sl_shutdown(), 0);
}

/* sl_shutdown with a call in progress waits for it; a call still queued
 * is dropped (its fn never runs); the tasklets are discarded. */
static struct shut {
    int entered[2];
    int started, go, finished, queued_ran, returned;
} sh;

/* Runs until main is about to shut down (go; at most 10 s), then 50 ms
 * more: a shutdown that did not wait for it would find it unfinished. */
static void slow_fn(void *arg)
{
    (void)arg;
    store(&sh.started, 1);
    for (int i = 0; i < 10000 && !load(&sh.go); i++)
        usleep(1000);
    usleep(50000);
    store(&sh.finished, 1);
}

static void queued_fn(void *arg)
{
    (void)arg;
    store(&sh.queued_ran, 1);
}

static void shut_offloader(void *arg)
{
    int i = (int)TU_INT(arg);
    store(&sh.entered[i], 1);
    sl_offload(i == 0 ? slow_fn : queued_fn, NULL);
    store(&sh.returned, 1); /* never: discarded by the shutdown */
}

TU_TEST_NOINIT(shutdown_waits_for_an_offload_in_progress)
{
    memset(&sh, 0, sizeof sh);
    TU_EQ(init_with_offload_threads(1), 0);
    sl_spawn(shut_offloader, TU_MSG(0));
    sl_spawn(shut_offloader, TU_MSG(1));
    yield_until(&sh.entered[0]);
    yield_until(&sh.entered[1]);
    os_wait_until(&sh.started); /* the slow call runs, the other queues */
    TU_EQ(load(&sh.finished), 0);
    store(&sh.go, 1);
    TU_EQ(sl_shutdown(), 0);
    TU_EQ(load(&sh.finished), 1);
    TU_EQ(load(&sh.queued_ran), 0);
    TU_EQ(load(&sh.returned), 0);
    usleep(20000); /* nothing runs late */
    TU_EQ(load(&sh.queued_ran), 0);
    TU_EQ(load(&sh.returned), 0);
    /* A new runtime starts a new pool. */
    TU_EQ(init_with_offload_threads(1), 0);
    struct job j = {.ms = 1};
    TU_EQ(sl_offload(job_fn, &j), 0);
    TU_EQ(sl_shutdown(), 0);
}

/* ---- issue 13's regressions ----------------------------------------------- */

/* Item 2: a descriptor number far beyond any open one is refused at once,
 * as -5 is (before the fix: the per-worker table's size doubles past
 * INT_MAX and the call never returns). */
TU_TEST_TIMEOUT(wait_on_a_huge_descriptor_number_fails_at_once, 10)
{
    int fds[] = {1 << 30, INT_MAX};
    for (int i = 0; i < 2; i++) {
        int rc = sl_wait_fd(fds[i], SL_READABLE, 10);
        CU_ASSERT(rc == -EBADF || rc == SL_EINVAL);
        rc = sl_wait_fd(fds[i], SL_WRITABLE, -1);
        CU_ASSERT(rc == -EBADF || rc == SL_EINVAL);
        char buf[4];
        TU_EQ(sl_read(fds[i], buf, sizeof buf), -EBADF);
    }
}

/* Suspected ("a kill can be lost while its target, runnable on another
 * worker, is starting to block"), the event waits' case: the target, on
 * worker 1, is stopped in sl_wait_fd after its kill check, registering
 * the descriptor with its worker's epoll (the hook on epoll_ctl), and
 * killed there. Its wait must end SL_EKILLED (before the fix it parks with
 * the kill recorded and ends by its timeout). */
static void wait_fd_in_window(void *arg)
{
    struct waiter *w = arg;
    tu_window_enter(TU_HOOK_EPOLL_CTL, 0);
    w->rc = sl_wait_fd(w->fd, w->events, w->timeout);
    store(&w->done, 1);
}

TU_TEST_TIMEOUT(kill_of_a_tasklet_starting_to_wait_on_a_descriptor_on_another_worker_is_not_lost, 30)
{
    TU_MULTI_WORKER_ONLY();
    int sv[2];
    nb_socketpair(sv);
    struct waiter w = waiter(sv[0], SL_READABLE, 2000);
    TU_EQ(tu_kill_in_window(wait_fd_in_window, &w), 0);
    TU_EQ(w.rc, SL_EKILLED);
    close2(sv);
}

/* Item 7's hang, made deterministic: timeouts_and_kills_of_waits_on_a_
 * socket_seen_empty kills a reader on worker 1 after "usleep(20000): let it
 * park there"; on a loaded machine the reader had not parked yet, and the
 * kill fell between sl_wait_fd's kill check and its park: the kill is
 * recorded but nobody wakes the reader, which waits forever (no timeout),
 * and sl_run never returns. Here the reader is stopped in that window (its
 * epoll registration) and killed there; its read must return SL_EKILLED.
 * So that the test cannot hang, a tasklet writes a byte if the reader is
 * still not done after 3 s (then the read returns 1: the kill was lost). */
static struct reader lost_reader;

static void read_in_window(void *arg)
{
    (void)arg;
    tu_window_enter(TU_HOOK_EPOLL_CTL, 0);
    sl_read_fn(&lost_reader);
}

static void unstick_reader(void *arg)
{
    int fd = (int)TU_INT(arg);
    for (int i = 0; i < 300 && !load(&lost_reader.done); i++)
        TU_EQ(sl_sleep_ms(10), 0);
    if (!load(&lost_reader.done))
        CU_ASSERT(write(fd, "u", 1) == 1);
}

TU_TEST_TIMEOUT(kill_of_a_reader_starting_to_park_on_another_worker_is_not_lost, 30)
{
    TU_MULTI_WORKER_ONLY();
    int sv[2];
    nb_socketpair(sv);
    memset(&lost_reader, 0, sizeof lost_reader);
    lost_reader.fd = sv[0];
    lost_reader.rc = 12345;
    sl_tasklet *t = spawn_on(1, read_in_window, NULL);
    sl_tasklet_ref(t);
    TU_EQ(tu_kill_at_stop(t), 0);
    spawn_on(0, unstick_reader, TU_MSG(sv[1]));
    TU_EQ(sl_run(), 0);
    TU_EQ(lost_reader.done, 1);
    TU_EQ(lost_reader.rc, SL_EKILLED);
    sl_tasklet_unref(t);
    close2(sv);
}

/* Found under load (io_w2 in the TSan tree: shutdown_wakes_a_waiter_so_
 * the_descriptor_can_be_closed read its waiter's result before the waiter
 * had written it; and model_w4 seed 232 aborted on SL__ASSERT(st ==
 * SL_T_PAUSED) in wake_main_quiescent); fixed on main since. A parked worker
 * counts as idle (sl__rt.nidle) until it takes the runtime lock again
 * after sl__events_run (sched/worker.c idle_loop); the timers and
 * descriptor events it handles before that end waits (sl__rt.nwaits drops,
 * to 0 if they were the last) and link the woken tasklets into its own idle
 * circle, where no other worker looks. Another worker that parks in that
 * window finds every worker idle, no wait and every inbox empty: it gives
 * main back. sl_run then returns while a tasklet is runnable, and when the
 * tasklet woken is main itself (its sleep's timer), wake_main_quiescent
 * aborts on main's state. Here worker 1 is parked with the only wait, a
 * byte wakes it, and it is stopped at its first lock after the events (the
 * hook on pthread_mutex_lock) while main calls sl_run; a thread releases
 * the stop after a second. sl_run must not return before the waiter ran. */
static struct {
    struct waiter w;
    long tid;
} pw;

static void waiter_recording_its_thread(void *arg)
{
    (void)arg;
    __atomic_store_n(&pw.tid, tu_tid(), __ATOMIC_RELEASE);
    waiter_fn(&pw.w);
}

/* Whether thread tid is blocked in epoll (its /proc syscall file). */
static bool in_epoll(long tid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", tid);
    FILE *f = fopen(path, "r");
    long nr = -1;
    if (f) {
        if (fscanf(f, "%ld", &nr) != 1)
            nr = -1;
        fclose(f);
    }
    return nr == SYS_epoll_pwait
#ifdef SYS_epoll_wait
           || nr == SYS_epoll_wait
#endif
#ifdef SYS_epoll_pwait2
           || nr == SYS_epoll_pwait2
#endif
        ;
}

static void *release_after_a_second(void *arg)
{
    (void)arg;
    usleep(1000000);
    tu_hook_release();
    return NULL;
}

TU_TEST_TIMEOUT(run_waits_for_a_tasklet_a_parked_worker_is_waking, 30)
{
    TU_MULTI_WORKER_ONLY();
    int sv[2];
    nb_socketpair(sv);
    pw.w = waiter(sv[0], SL_READABLE, -1);
    pw.tid = 0;
    spawn_on(1, waiter_recording_its_thread, NULL);
    os_wait_until(&pw.w.entered);
    long tid = __atomic_load_n(&pw.tid, __ATOMIC_ACQUIRE);
    bool parked = false; /* worker 1 parks once the waiter has */
    for (int i = 0; i < 10000 && !(parked = in_epoll(tid)); i++)
        usleep(1000);
    CU_ASSERT_FATAL(parked);
    tu_hook_arm(TU_HOOK_PTHREAD_MUTEX_LOCK, tid, 0);
    CU_ASSERT(write(sv[1], "x", 1) == 1);
    CU_ASSERT(tu_hook_wait_reached(10000)); /* it woke the waiter, here */
    pthread_t th;
    TU_EQ(pthread_create(&th, NULL, release_after_a_second, NULL), 0);
    TU_EQ(sl_run(), 0);
    int done_when_run_returned = load(&pw.w.done);
    pthread_join(th, NULL);
    TU_EQ(done_when_run_returned, 1);
    os_wait_until(&pw.w.done);
    TU_EQ(sl_run(), 0);
    TU_EQ(pw.w.rc, SL_READABLE);
    close2(sv);
}

static CU_TestInfo tests[] = {
    TU_CASE(reader_parks_while_its_worker_runs_others),
    TU_CASE(ready_events_are_returned_at_once),
    TU_CASE(main_alone_times_out_instead_of_deadlocking),
    TU_CASE(tasklet_wait_times_out),
    TU_CASE(timeout_due_as_the_worker_goes_idle_is_not_lost),
    TU_CASE(stale_timer_of_a_served_wait_does_not_end_the_next),
    TU_CASE(timeout_zero_polls_without_switching),
    TU_CASE(bad_arguments_are_einval),
    TU_CASE(regular_file_is_eperm_and_leaves_no_wait_behind),
    TU_CASE(second_reader_on_one_worker_is_ebusy_a_writer_is_not),
    TU_CASE(readers_of_one_descriptor_on_different_workers),
    TU_CASE(killed_waiter_returns_at_once_and_the_descriptor_works_after),
    TU_CASE(killed_waiter_on_another_worker),
    TU_CASE(killed_tasklet_calls_return_ekilled_at_once),
    TU_CASE(without_runtime_calls_that_would_park_are_estate),
    TU_CASE(run_waits_for_a_tasklet_parked_on_a_descriptor),
    TU_CASE(busy_worker_still_serves_descriptors),
    TU_CASE(shutdown_wakes_a_waiter_so_the_descriptor_can_be_closed),
    TU_CASE(hangup_and_error_count_as_the_requested_events),
    TU_CASE(many_pairs_exchange_exact_bytes),
    TU_CASE(large_write_parks_until_the_reader_drains),
    TU_CASE(large_write_through_tcp_arrives_whole),
    TU_CASE(read_returns_zero_at_eof),
    TU_CASE(bad_descriptors_are_ebadf),
    TU_CASE(server_accepts_and_echoes_every_client),
    TU_CASE(connect_to_a_closed_port_is_econnrefused),
    TU_CASE(accept_parks_until_a_client_connects),
    TU_CASE(data_left_unread_is_reported_again),
    TU_CASE(data_that_came_while_nobody_waited_is_read_at_once),
    TU_CASE(end_of_file_after_a_short_read_is_returned),
    TU_CASE(closed_and_reused_number_is_registered_afresh),
    TU_CASE(accepted_descriptor_on_a_reused_number_is_served),
    TU_CASE(timeouts_and_kills_of_waits_on_a_socket_seen_empty),
    TU_CASE(socket_read_by_tasklets_on_two_workers),
    TU_CASE(descriptor_nobody_waits_on_for_a_while_is_served_after),
    TU_CASE(sl_close_closes),
    TU_CASE(sl_close_without_runtime),
    TU_CASE(offload_runs_on_another_thread_while_others_run),
    TU_CASE(many_offloads_share_the_default_four_threads),
    TU_CASE(offload_of_null_is_einval),
    TU_CASE(killed_offloader_returns_only_after_fn),
    TU_CASE(run_of_a_tasklet_handed_back_by_its_offload_links_it_first),
    TU_CASE(one_offload_thread_serialises),
    TU_CASE(two_offload_threads_run_calls_concurrently),
    TU_CASE(bad_offload_threads_are_einval),
    TU_CASE(shutdown_waits_for_an_offload_in_progress),
    /* issue 13's regressions */
    TU_CASE(wait_on_a_huge_descriptor_number_fails_at_once),
    TU_CASE(kill_of_a_tasklet_starting_to_wait_on_a_descriptor_on_another_worker_is_not_lost),
    TU_CASE(kill_of_a_reader_starting_to_park_on_another_worker_is_not_lost),
    TU_CASE(run_waits_for_a_tasklet_a_parked_worker_is_waking),
    CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
    return tu_main(argc, argv, "io", tests);
}
