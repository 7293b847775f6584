/* test_hook.c - libc calls the runtime makes, interposed so that a test can
 * stop one thread inside a cross-worker window (see test_hook.h). */
#define _GNU_SOURCE
#include "test_hook.h"
#include "test_util.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*epoll_ctl_fn)(int, int, int, struct epoll_event *);
typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *,
                                 void *(*)(void *), void *);
typedef int (*pthread_mutex_lock_fn)(pthread_mutex_t *);

static clock_gettime_fn real_clock_gettime;
static epoll_ctl_fn real_epoll_ctl;
static pthread_create_fn real_pthread_create;
static pthread_mutex_lock_fn real_pthread_mutex_lock;

static void *next_symbol(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        fprintf(stderr, "test_hook: dlsym(RTLD_NEXT, %s) failed\n", name);
        abort();
    }
    return f;
}

__attribute__((constructor)) static void hook_init(void)
{
    real_clock_gettime = (clock_gettime_fn)next_symbol("clock_gettime");
    real_epoll_ctl = (epoll_ctl_fn)next_symbol("epoll_ctl");
    real_pthread_create = (pthread_create_fn)next_symbol("pthread_create");
    real_pthread_mutex_lock =
        (pthread_mutex_lock_fn)next_symbol("pthread_mutex_lock");
}

static struct {
    int fn;       /* enum tu_hook_fn armed, or TU_HOOK_NONE */
    long tid;
    int skip;     /* calls to let through before the stop */
    int counting; /* count instead of stopping */
    int count;
    int reached, released;
} hook;

static int ld(const int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void st(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

long tu_tid(void)
{
    return (long)syscall(SYS_gettid);
}

static long long real_now_ms(void)
{
    struct timespec ts;
    real_clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A spin-wait step: the OS thread yields its CPU (on the loaded 2-CPU
 * machine the thread waited for may need it), portable to every arch. */
static void pause_cpu(void)
{
    sched_yield();
}

/* Called at every interposed call: stop here if armed for it. */
static void hook_point(int fn)
{
    if (ld(&hook.fn) != fn || __atomic_load_n(&hook.tid, __ATOMIC_ACQUIRE) !=
                                   tu_tid())
        return;
    if (ld(&hook.counting)) {
        __atomic_add_fetch(&hook.count, 1, __ATOMIC_ACQ_REL);
        return;
    }
    if (__atomic_fetch_sub(&hook.skip, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    st(&hook.fn, TU_HOOK_NONE);
    st(&hook.reached, 1);
    long long end = real_now_ms() + 3000;
    while (!ld(&hook.released) && real_now_ms() < end)
        pause_cpu();
}

void tu_hook_arm(enum tu_hook_fn fn, long tid, int skip)
{
    st(&hook.fn, TU_HOOK_NONE);
    st(&hook.counting, 0);
    st(&hook.reached, 0);
    st(&hook.released, 0);
    st(&hook.skip, skip);
    __atomic_store_n(&hook.tid, tid, __ATOMIC_RELEASE);
    st(&hook.fn, (int)fn);
}

void tu_hook_disarm(void)
{
    st(&hook.fn, TU_HOOK_NONE);
    st(&hook.counting, 0);
}

bool tu_hook_wait_reached(int timeout_ms)
{
    return tu_spin_until(&hook.reached, timeout_ms);
}

void tu_hook_release(void)
{
    st(&hook.released, 1);
}

void tu_hook_count_start(enum tu_hook_fn fn, long tid)
{
    st(&hook.fn, TU_HOOK_NONE);
    st(&hook.count, 0);
    st(&hook.counting, 1);
    __atomic_store_n(&hook.tid, tid, __ATOMIC_RELEASE);
    st(&hook.fn, (int)fn);
}

int tu_hook_count(void)
{
    return ld(&hook.count);
}

static bool spin_until(const int *flag, int timeout_ms, int order)
{
    long long end = real_now_ms() + timeout_ms;
    while (!__atomic_load_n(flag, order)) {
        if (real_now_ms() >= end)
            return false;
        pause_cpu();
    }
    return true;
}

bool tu_spin_until(const int *flag, int timeout_ms)
{
    return spin_until(flag, timeout_ms, __ATOMIC_ACQUIRE);
}

bool tu_spin_until_relaxed(const int *flag, int timeout_ms)
{
    return spin_until(flag, timeout_ms, __ATOMIC_RELAXED);
}

void tu_window_enter(enum tu_hook_fn fn, int skip)
{
    tu_hook_arm(fn, tu_tid(), skip);
}

int tu_throw_at_stop(sl_tasklet *t, int err, int flags)
{
    if (!tu_hook_wait_reached(10000)) {
        tu_hook_disarm();
        return TU_NO_STOP;
    }
    int rc = sl_tasklet_throw(t, err, flags);
    tu_hook_release();
    return rc;
}

int tu_kill_at_stop(sl_tasklet *t)
{
    return tu_throw_at_stop(t, SL_EKILLED, 0);
}

int tu_throw_in_window(sl_fn fn, void *arg, int err, int flags)
{
    sl_tasklet *t = tu_spawn_pinned(1, fn, arg);
    sl_tasklet_ref(t);
    int rc = tu_throw_at_stop(t, err, flags);
    TU_EQ(sl_run(), 0);
    TU_EQ(sl_tasklet_alive(t), false);
    sl_tasklet_unref(t);
    return rc;
}

int tu_kill_in_window(sl_fn fn, void *arg)
{
    return tu_throw_in_window(fn, arg, SL_EKILLED, 0);
}

sl_tasklet *tu_spawn_pinned(int worker, sl_fn fn, void *arg)
{
    sl_spawn_attr a;
    sl_spawn_attr_init(&a);
    a.worker = worker;
    sl_tasklet *t = sl_spawn_ex(&a, fn, arg);
    CU_ASSERT_PTR_NOT_NULL(t);
    return t;
}

/* ---- the interposed calls ------------------------------------------------ */

int clock_gettime(clockid_t clk, struct timespec *ts)
{
    if (__builtin_expect(!real_clock_gettime, 0))
        hook_init(); /* called before our constructor ran */
    hook_point(TU_HOOK_CLOCK_GETTIME);
    return real_clock_gettime(clk, ts);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (__builtin_expect(!real_epoll_ctl, 0))
        hook_init();
    hook_point(TU_HOOK_EPOLL_CTL);
    return real_epoll_ctl(epfd, op, fd, ev);
}

int pthread_create(pthread_t *th, const pthread_attr_t *attr,
                   void *(*fn)(void *), void *arg)
{
    if (__builtin_expect(!real_pthread_create, 0))
        hook_init();
    hook_point(TU_HOOK_PTHREAD_CREATE);
    return real_pthread_create(th, attr, fn, arg);
}

int pthread_mutex_lock(pthread_mutex_t *m)
{
    if (__builtin_expect(!real_pthread_mutex_lock, 0))
        hook_init();
    hook_point(TU_HOOK_PTHREAD_MUTEX_LOCK);
    return real_pthread_mutex_lock(m);
}
