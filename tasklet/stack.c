/* stack.c - tasklet stacks: big NORESERVE regions cut into guarded slots, prepared in batches (by a helper thread where a CPU is spare), reused LIFO. */

/*
 * Why not one mmap per stack: each guarded stack would cost two VMAs
 * (the stack and its PROT_NONE guard), and vm.max_map_count (65530 by
 * default) stops a process near 32k stacks. We want a million.
 *
 * Chosen: map regions of at least 1024 slots / 64 MiB with MAP_NORESERVE
 * (untouched pages cost neither memory nor commit charge) and carve slots
 * from them only when a tasklet first runs. A region stays one VMA
 * because the guard page of each slot is a PTE marker installed with
 * MADV_GUARD_INSTALL (Linux >= 6.13), not a mapping. Freed slots go on a
 * LIFO so the next tasklet gets the warmest stack; the list is linked
 * through each slot's highest word, a page the last tasklet touched, so
 * freeing and reusing touch nothing new.
 *
 * The provisioner. A fresh slot costs the kernel two things: its guard
 * marker and its top page (a page fault at the first run: a page to
 * allocate and zero). On the 2-CPU VM of docs/benchmarks.md the guard
 * alone cost 0.7 us a slot by madvise() (a syscall, a VMA lookup, a page
 * walk) and the fault 1.1-1.3 us of CPU (bench/bench_pages.c;
 * docs/stacks.md has the figures). So slots are prepared a batch at a
 * time: one process_madvise() on our own pidfd (Linux >= 6.13 takes any
 * advice for the calling process) installs the guards of up to 512
 * slots, one more with MADV_POPULATE_WRITE makes their top pages present
 * (0.3 us and 1.0 us a slot, and the first run then touches a present
 * page: 0.06 us). A batch is as big as the demand the pool knows of:
 * the promises not covered by free slots (a spawn storm of a million
 * asks for 512 at a time, a program that spawns one tasklet at a time
 * for one). With two CPUs or more, batches beyond the one in use go to
 * a helper thread, so the page work is done beside the worker instead of
 * on it; a worker that finds nothing ready prepares a batch itself
 * rather than wait, so on a busy machine both do the work. The kernel
 * work is the same either way (bare metal pays ~0.25 us a page, where
 * the helper matters less but still takes the work off the worker).
 *
 * Fallbacks, in order, when the kernel says EINVAL to MADV_GUARD_INSTALL
 * (or accepts it without guarding, as qemu-user does: probed once):
 * mprotect(PROT_NONE) guards while a process-wide budget lasts (a quarter
 * of max_map_count, each guard splitting a VMA in up to three), then a
 * canary word at the bottom of the usable range that callers check.
 * Without process_madvise (older kernels, valgrind) slots are guarded one
 * by one and their pages fault in. Stacks move between pools (the depot,
 * tasklets that migrate), so a slot says itself whether it is a canary
 * slot: a mark in its top 64 bytes (which no tasklet writes), written
 * when it is carved in canary mode, and the check reads that, never the
 * checking worker's pool. All pools share one geometry.
 *
 * Promises: sl_spawn must fail cleanly when memory runs out, but the
 * tasklet takes its stack later, when it first runs, where failing is not
 * an option. So spawn reserves (may map a region, may fail) and the first
 * run takes (never fails, maps nothing; it only prepares a batch, and if
 * a guard fails it degrades to a canary rather than failing; populating
 * is a hint: a page it could not make present faults in as before).
 *
 * Rejected: mmap per stack (map count); one giant up-front reservation
 * (fixes the pool's capacity, and a huge map may exceed RLIMIT_AS);
 * guards installed at reserve time (a promise would then cost a syscall
 * even for tasklets killed before running); MADV_POPULATE_WRITE over a
 * whole region (every page of every slot, 17 times the memory); a
 * helper that prepares whole regions ahead of any demand (RSS for slots
 * nobody asked for); waiting for the helper when nothing is ready (a
 * busy machine would then run the work on neither CPU).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tasklet/stack.h"
#include "tasklet/sysdefs.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#if SL_VALGRIND
#include <valgrind/valgrind.h>
#endif


#define REGION_MIN_SLOTS 1024
#define REGION_MIN_BYTES ((size_t)64 << 20)
#define USABLE_MAX ((size_t)1 << 40)
#define BUDGET_CHUNK 256  /* mprotect guards a pool draws at a time */
#define SYSCALL_RETRIES 8
#define CANARY_MAGIC UINT64_C(0x5354414b4c455353) /* "SSELKATS" */
#define BATCH_MAX 512     /* slots per batch: iovecs per process_madvise */

/* MADV_GUARD_INSTALL works in this process: 0 unknown, 1 yes, 2 no. */
static atomic_int madv_state;
/* mprotect guards any pool may still make; -1 until computed. */
static atomic_long mprotect_left = -1;

/* Whether MADV_GUARD_INSTALL makes a page fault here. Success is not
 * enough: qemu-user (how CI runs the aarch64 build) accepts madvise
 * advice it does not know and does nothing. So the probe also asks the
 * kernel to fault the guarded page in: MADV_POPULATE_READ (Linux 5.14,
 * older than guards) fails with EFAULT on a guard, and qemu accepts and
 * ignores it too. A probe that reads the page through a system call's
 * argument would also do, natively, but valgrind reads such arguments
 * itself and dies on the guard. */
bool sl__madv_guard_works(void)
{
    int st = atomic_load_explicit(&madv_state, memory_order_relaxed);
    if (st == 0) {
        size_t pg = (size_t)sysconf(_SC_PAGESIZE);
        char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            return true; /* can't tell now; carving falls back if need be */
        st = madvise(m, pg, MADV_GUARD_INSTALL) == 0 &&
                     madvise(m, pg, MADV_POPULATE_READ) != 0 &&
                     errno == EFAULT
                 ? 1
                 : 2;
        munmap(m, 2 * pg);
        atomic_store_explicit(&madv_state, st, memory_order_relaxed);
    }
    return st == 1;
}

/* A quarter of vm.max_map_count: a guard costs up to two VMAs, and half
 * the map count stays for everything else in the process. */
static long mprotect_budget_total(void)
{
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f != NULL) {
        if (fscanf(f, "%ld", &max) != 1 || max < 0)
            max = 65530;
        fclose(f);
    }
    return max / 4;
}

/* Take up to want guards from the process-wide budget; returns how many. */
static size_t budget_draw(size_t want)
{
    long cur = atomic_load(&mprotect_left);
    if (cur < 0) {
        long expect = -1;
        atomic_compare_exchange_strong(&mprotect_left, &expect,
                                       mprotect_budget_total());
        cur = atomic_load(&mprotect_left);
    }
    while (cur > 0) {
        long n = cur < (long)want ? cur : (long)want;
        if (atomic_compare_exchange_weak(&mprotect_left, &cur, cur - n))
            return (size_t)n;
    }
    return 0;
}

static void budget_return(size_t n)
{
    if (n > 0)
        atomic_fetch_add(&mprotect_left, (long)n);
}

/* 1, 2 or 3 when the environment variable var names the first, second or
 * third of names; 0 when it is unset or names none of them. */
static int env_pick(const char *var, const char *const names[3])
{
    const char *env = getenv(var);
    for (int i = 0; env != NULL && i < 3; i++)
        if (strcmp(env, names[i]) == 0)
            return i + 1;
    return 0;
}

static int initial_mode(void)
{
    static const char *const names[3] = {"madv", "mprotect", "canary"};
    int m = env_pick("SL_STACK_GUARD", names); /* in SL_GUARD_* order */
    if (m == SL_GUARD_MPROTECT || m == SL_GUARD_CANARY)
        return m;
    /* madv, forced or not, falls back when it does not guard */
    return sl__madv_guard_works() ? SL_GUARD_MADV : SL_GUARD_MPROTECT;
}

/* ---- the provisioner's process-wide part --------------------------------- */

/* The helper thread, its queue of batches, our pidfd, and the list of
 * pools (for the fork handler). lock guards all of it; the helper holds
 * it only to take a batch off the queue, never across a system call. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;         /* the helper waits here for a batch     */
    pthread_cond_t done;         /* a pool being destroyed waits here     */
    struct sl__stack_batch *head, *tail; /* the queue, FIFO              */
    sl_stack_pool *pools;        /* every pool that queued a batch        */
    struct sl__stack_batch *ranges; /* range jobs not claimed yet         */
    int users;                   /* pools in the list and range jobs: the
                                    thread ends when there are none       */
    bool running;                /* the thread exists                     */
    bool stop;                   /* it is asked to end                    */
    bool failed;                 /* it could not be started: none again   */
    pthread_t thread;
    int pidfd;                   /* ours, or -1                           */
    pid_t pidfd_pid;             /* the process pidfd refers to           */
    int broken;                  /* (atomic) process_madvise refused: 1
                                    guards, 2 populating too              */
    bool atfork;                 /* the fork handlers are registered (once) */
    uint64_t helped, batched, single; /* (atomic) slots prepared by the
                                    helper, by workers in batches, and one
                                    at a time (sl__stack_provision_stats)  */
} prov = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .cond = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER,
          .pidfd = -1};

/* A batch's state is read and written by the worker and the helper:
 * atomically, the reader acquiring what the writer released (READY
 * publishes the helper's work). */
static uint32_t batch_state(const struct sl__stack_batch *b)
{
    return __atomic_load_n(&b->state, __ATOMIC_ACQUIRE);
}

static void set_state(struct sl__stack_batch *b, uint32_t st)
{
    __atomic_store_n(&b->state, st, __ATOMIC_RELEASE);
}

/* process_madvise(advice) on our own pidfd over n iovecs, retried on
 * EINTR/EAGAIN. 0 when all of them were advised; -errno otherwise. */
static int self_madvise(struct iovec *iov, size_t n, int advice)
{
    pthread_mutex_lock(&prov.lock);
    pid_t me = getpid();
    if (prov.pidfd >= 0 && prov.pidfd_pid != me) {
        /* A fork the handlers did not see (a raw clone): that pidfd is
         * our parent's. Forget it, do not close it: the number may have
         * been reused by the child's own code. */
        prov.pidfd = -1;
    }
    if (prov.pidfd < 0) {
        prov.pidfd = (int)syscall(SYS_pidfd_open, me, 0);
        prov.pidfd_pid = me;
    }
    int fd = prov.pidfd;
    pthread_mutex_unlock(&prov.lock);
    if (fd < 0)
        return -errno;
    size_t want = 0;
    for (size_t i = 0; i < n; i++)
        want += iov[i].iov_len;
    for (int tries = 0;; tries++) {
        long got = syscall(SYS_process_madvise, fd, iov, n, advice, 0);
        if (got == (long)want)
            return 0;
        if (got >= 0)
            return -EAGAIN; /* partial: the caller redoes it all */
        if ((errno != EINTR && errno != EAGAIN) || tries == SYSCALL_RETRIES)
            return -errno;
    }
}

/* Guard slots [base, base + n * p->size) with one system call and make
 * their top pages present with another. True if the guards are in; the
 * populating is best effort. Called by the worker or the helper; touches
 * nothing but the kernel's view of the batch. */
static bool prepare_batch(const sl_stack_pool *p, char *base, uint32_t n)
{
    struct iovec iov[BATCH_MAX];
    int broken = __atomic_load_n(&prov.broken, __ATOMIC_RELAXED);
    if (broken >= 1)
        return false;
    SL__ASSERT(n >= 1 && n <= BATCH_MAX);
    for (uint32_t i = 0; i < n; i++) {
        iov[i].iov_base = base + (size_t)i * p->size;
        iov[i].iov_len = p->guard;
    }
    int rc = self_madvise(iov, n, MADV_GUARD_INSTALL);
    if (rc < 0) {
        if (rc == -ENOSYS || rc == -EINVAL || rc == -EPERM ||
            rc == -EBADF || rc == -ESRCH || rc == -EMFILE)
            __atomic_store_n(&prov.broken, 1, __ATOMIC_RELAXED);
        return false;
    }
    if (broken < 2) {
        for (uint32_t i = 0; i < n; i++)
            iov[i].iov_base = base + (size_t)(i + 1) * p->size - p->guard;
        rc = self_madvise(iov, n, MADV_POPULATE_WRITE);
        if (rc == -EINVAL || rc == -ENOSYS)
            __atomic_store_n(&prov.broken, 2, __ATOMIC_RELAXED);
        /* ENOMEM, EFAULT, a partial run: those pages fault in later */
    }
    return true;
}

static void *helper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&prov.lock);
    while (!prov.stop) {
        struct sl__stack_batch *b = prov.head;
        if (b == NULL) {
            pthread_cond_wait(&prov.cond, &prov.lock);
            continue;
        }
        prov.head = b->qnext;
        if (prov.head == NULL)
            prov.tail = NULL;
        b->qnext = NULL;
        uint32_t expect = SL_BATCH_QUEUED;
        if (!__atomic_compare_exchange_n(&b->state, &expect, SL_BATCH_HELPER,
                                         false, __ATOMIC_ACQUIRE,
                                         __ATOMIC_RELAXED))
            continue; /* its worker took it back */
        pthread_mutex_unlock(&prov.lock);
        bool ok;
        if (b->pool) {
            ok = prepare_batch(b->pool, b->base, b->n);
            if (ok)
                __atomic_add_fetch(&prov.helped, b->n, __ATOMIC_RELAXED);
        } else { /* a range (a slab chunk) */
            ok = madvise(b->base, b->len, MADV_POPULATE_WRITE) == 0;
        }
        pthread_mutex_lock(&prov.lock);
        __atomic_store_n(&b->state, ok ? SL_BATCH_READY : SL_BATCH_FAILED,
                         __ATOMIC_RELEASE);
        pthread_cond_broadcast(&prov.done);
    }
    pthread_mutex_unlock(&prov.lock);
    return NULL;
}

/* The fork handlers: a child has no helper thread, whatever it held is
 * void, and batches it had begun are left for their workers to redo
 * (prepared twice is harmless: both advices are idempotent). The pidfd
 * names the parent: it is closed. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&prov.lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&prov.lock);
}

static void fork_child(void)
{
    pthread_mutex_init(&prov.lock, NULL);
    pthread_cond_init(&prov.cond, NULL);
    pthread_cond_init(&prov.done, NULL);
    for (sl_stack_pool *p = prov.pools; p != NULL; p = p->reg_next) {
        for (int i = 0; i < SL_STACK_RING; i++) {
            struct sl__stack_batch *b = &p->ring[i];
            uint32_t st = __atomic_load_n(&b->state, __ATOMIC_RELAXED);
            if (st == SL_BATCH_QUEUED || st == SL_BATCH_HELPER)
                __atomic_store_n(&b->state, SL_BATCH_FAILED, __ATOMIC_RELAXED);
            b->qnext = NULL;
        }
        p->registered = false; /* a pool the child goes on using joins again */
    }
    for (struct sl__stack_batch *r = prov.ranges; r != NULL; r = r->rnext) {
        uint32_t st = __atomic_load_n(&r->state, __ATOMIC_RELAXED);
        if (st == SL_BATCH_QUEUED || st == SL_BATCH_HELPER)
            __atomic_store_n(&r->state, SL_BATCH_FAILED, __ATOMIC_RELAXED);
        r->qnext = NULL;
        r->counted = false; /* its claim must not count it off again */
    }
    prov.pools = NULL;
    prov.ranges = NULL;
    prov.users = 0;
    prov.head = prov.tail = NULL;
    prov.running = prov.stop = false;
    if (prov.pidfd >= 0)
        close(prov.pidfd);
    prov.pidfd = -1;
}

/* Unlink b from the queue (lock held). */
static void queue_unlink(struct sl__stack_batch *b)
{
    struct sl__stack_batch **pp = &prov.head, *last = NULL;
    while (*pp && *pp != b) {
        last = *pp;
        pp = &(*pp)->qnext;
    }
    if (*pp == NULL)
        return;
    *pp = b->qnext;
    if (prov.tail == b)
        prov.tail = last;
    b->qnext = NULL;
}

/* Start the helper unless it runs (lock held). False if it cannot. */
static bool helper_start(void)
{
    if (!prov.running && !prov.failed) {
        /* Its frames are prepare_batch's iovecs and a few calls: 64 KiB,
         * not the default 8 MiB of address space (RLIMIT_AS counts it).
         * It starts with every signal blocked: the program's handlers are
         * for its own threads. */
        pthread_attr_t attr;
        sigset_t all, old;
        prov.stop = false;
        sigfillset(&all);
        if (pthread_attr_init(&attr) == 0) {
            (void)pthread_attr_setstacksize(&attr, 64 << 10);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            if (pthread_create(&prov.thread, &attr, helper_main, NULL) == 0)
                prov.running = true;
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            pthread_attr_destroy(&attr);
        }
        prov.failed = !prov.running;
    }
    return prov.running;
}

/* Append b to the helper's queue and wake it (lock held). */
static void enqueue(struct sl__stack_batch *b)
{
    b->qnext = NULL;
    if (prov.tail)
        prov.tail->qnext = b;
    else
        prov.head = b;
    prov.tail = b;
    pthread_cond_signal(&prov.cond);
}

/* Stop the helper when nobody uses it any more (called with the lock
 * held, returns with it released). One caller joins it: two workers
 * whose last uses end together must not both join the same thread (the
 * second join would wait forever). Jobs queued while it was ending (it
 * still counted as running) start a new one. */
static void unlock_and_stop_if_unused(void)
{
    bool join = prov.users == 0 && prov.running && !prov.stop;
    if (join) {
        prov.stop = true;
        pthread_cond_signal(&prov.cond);
    }
    pthread_mutex_unlock(&prov.lock);
    if (join) {
        pthread_join(prov.thread, NULL);
        pthread_mutex_lock(&prov.lock);
        prov.running = false;
        if (prov.head != NULL)
            (void)helper_start();
        pthread_mutex_unlock(&prov.lock);
    }
}

static void register_atfork(void)
{
    prov.atfork = pthread_atfork(fork_prepare, fork_parent, fork_child) == 0;
}

/* Queue job (QUEUED already) for the helper, starting it if need be;
 * false if there is no helper (it could not be started, or there are no
 * fork handlers), and the caller takes job back. Each user keeps the
 * helper alive: a pool once it has queued a batch (until it is
 * destroyed), a range job until it is claimed. A job queued while the
 * helper is ending stays queued until the next one starts it again, or
 * its owner takes it back. */
static bool helper_queue(struct sl__stack_batch *job)
{
    /* Not under our lock: a fork in progress holds glibc's atfork lock
     * and waits for ours in fork_prepare. */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_atfork);
    pthread_mutex_lock(&prov.lock);
    bool ok = prov.atfork && helper_start(); /* a child could hang on a
                                                lock held at fork */
    sl_stack_pool *p = job->pool;
    if (ok && p && !p->registered) {
        p->registered = true;
        p->reg_next = prov.pools;
        prov.pools = p;
        prov.users++;
    } else if (ok && !p) {
        job->counted = true;
        job->rnext = prov.ranges;
        prov.ranges = job;
        prov.users++;
    }
    if (ok)
        enqueue(job);
    pthread_mutex_unlock(&prov.lock);
    return ok;
}

bool sl__provision_populate(struct sl__stack_batch *job, void *addr,
                            size_t len)
{
    memset(job, 0, sizeof *job);
    job->base = addr;
    job->len = len;
    job->state = SL_BATCH_QUEUED;
    if (helper_queue(job))
        return true;
    job->state = SL_BATCH_FAILED;
    return false;
}

bool sl__provision_claim(struct sl__stack_batch *job)
{
    pthread_mutex_lock(&prov.lock);
    uint32_t expect = SL_BATCH_QUEUED;
    if (__atomic_compare_exchange_n(&job->state, &expect, SL_BATCH_OWNED,
                                    false, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED))
        queue_unlink(job);
    while (batch_state(job) == SL_BATCH_HELPER)
        pthread_cond_wait(&prov.done, &prov.lock);
    bool done = batch_state(job) == SL_BATCH_READY;
    for (struct sl__stack_batch **r = &prov.ranges; *r; r = &(*r)->rnext)
        if (*r == job) {
            *r = job->rnext;
            break;
        }
    if (job->counted) {
        job->counted = false;
        prov.users--;
    }
    job->state = SL_BATCH_FREE;
    unlock_and_stop_if_unused();
    return done;
}

/* Take back a batch the helper has not begun: true if it was still
 * QUEUED (it is OWNED now and out of the queue). */
static bool take_back(struct sl__stack_batch *b)
{
    pthread_mutex_lock(&prov.lock);
    uint32_t expect = SL_BATCH_QUEUED;
    bool got = __atomic_compare_exchange_n(&b->state, &expect, SL_BATCH_OWNED,
                                           false, __ATOMIC_ACQUIRE,
                                           __ATOMIC_RELAXED);
    if (got)
        queue_unlink(b);
    pthread_mutex_unlock(&prov.lock);
    return got;
}

/* Before p goes away: take its batches out of the queue, wait for the one
 * the helper may be working on, leave the list of pools, and stop the
 * helper when no pool is left. */
static void helper_forget(sl_stack_pool *p)
{
    if (!p->registered)
        return;
    pthread_mutex_lock(&prov.lock);
    struct sl__stack_batch **pp = &prov.head, *last = NULL;
    while (*pp) {
        if ((*pp)->pool == p) {
            *pp = (*pp)->qnext;
        } else {
            last = *pp;
            pp = &(*pp)->qnext;
        }
    }
    prov.tail = last;
    for (int i = 0; i < SL_STACK_RING; i++)
        while (__atomic_load_n(&p->ring[i].state, __ATOMIC_ACQUIRE) ==
               SL_BATCH_HELPER)
            pthread_cond_wait(&prov.done, &prov.lock);
    for (sl_stack_pool **q = &prov.pools; *q; q = &(*q)->reg_next)
        if (*q == p) {
            *q = p->reg_next;
            break;
        }
    p->registered = false;
    prov.users--;
    unlock_and_stop_if_unused();
}

static int initial_provision(const sl_stack_pool *p)
{
    static const char *const names[3] = {"off", "inline", "helper"};
    if (p->valgrind)
        return SL_PROVISION_OFF;
    int m = env_pick("SL_STACK_PROVISION", names); /* SL_PROVISION_* + 1 */
    if (m != 0)
        return m - 1;
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) >= 2)
        return SL_PROVISION_HELPER;
    return SL_PROVISION_INLINE;
}

/* ---- pools ------------------------------------------------------------- */

int sl__stack_pool_init(sl_stack_pool *p, size_t usable_size)
{
    if (p == NULL || usable_size == 0 || usable_size > USABLE_MAX)
        return SL_EINVAL;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    memset(p, 0, sizeof *p);
    p->guard = pg;
    p->usable = (usable_size + SL_STACK_TOP_ROOM + pg - 1) & ~(pg - 1);
    p->size = p->usable + p->guard;
    p->guard_mode = initial_mode();
    p->depot_high = SIZE_MAX;
#if SL_VALGRIND
    p->valgrind = RUNNING_ON_VALGRIND != 0;
#endif
    p->provision = initial_provision(p);
    for (int i = 0; i < SL_STACK_RING; i++)
        p->ring[i].pool = p;
    return 0;
}

static void queue_ahead(sl_stack_pool *p);

/* Map one more region so that one more promise can be made. On failure
 * the pool is unchanged (but for batches queued for the helper). */
int sl__stack_grow(sl_stack_pool *p)
{
    size_t n = (REGION_MIN_BYTES + p->size - 1) / p->size;
    if (n < REGION_MIN_SLOTS)
        n = REGION_MIN_SLOTS;

    if (p->nregions == p->cap_regions) {
        size_t cap = p->cap_regions ? 2 * p->cap_regions : 16;
        void *r = realloc(p->regions, cap * sizeof *p->regions);
        if (r == NULL)
            return SL_ENOMEM;
        p->regions = r;
        p->cap_regions = cap;
    }
    char *base;
    for (;;) { /* halve on ENOMEM: RLIMIT_AS or a fragmented address space */
        base = mmap(NULL, n * p->size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base != MAP_FAILED)
            break;
        if (errno != ENOMEM || n == 1)
            return -errno;
        n /= 2;
    }
    if (p->valgrind) { /* room for an id per slot: carving can't fail */
        unsigned *ids = realloc(p->vg_ids, (p->nslots + n) * sizeof *ids);
        if (ids == NULL) {
            munmap(base, n * p->size);
            return SL_ENOMEM;
        }
        p->vg_ids = ids;
    }
    /* With THP "always", a slot without a guard marker in its 2 MiB
     * (canary mode) could fault in a huge page. Best effort. */
    (void)madvise(base, n * p->size, MADV_NOHUGEPAGE);

    size_t i = p->nregions;
    while (i > 0 && p->regions[i - 1].base > base) {
        p->regions[i] = p->regions[i - 1];
        i--;
    }
    p->regions[i] = (struct sl__stack_region){
        .base = base, .nslots = n, .fresh = true};
    p->nregions++;
    p->nslots += n;
    p->ncarve += n;
    /* Every slot was promised: a spawn storm may be on. The helper can
     * prepare the slots promised so far before their tasklets first run. */
    if (p->provision == SL_PROVISION_HELPER)
        queue_ahead(p);
    return 0;
}

/* Move the cut cursor to a region nothing was cut from yet. False if
 * there is none. Called once per region, so the linear scan is cheap. */
static bool enter_fresh_region(sl_stack_pool *p)
{
    for (size_t i = 0; i < p->nregions; i++) {
        struct sl__stack_region *r = &p->regions[i];
        if (r->fresh) {
            r->fresh = false;
            p->cut = r->base;
            p->cut_end = r->base + r->nslots * p->size;
            return true;
        }
    }
    return false;
}

/* Cut up to want slots (at least one) from the current region, or from
 * the next fresh one; 0 when every slot has been cut already. */
static uint32_t cut_slots(sl_stack_pool *p, size_t want, char **base)
{
    if (p->cut == p->cut_end && !enter_fresh_region(p))
        return 0;
    size_t left = (size_t)(p->cut_end - p->cut) / p->size;
    size_t n = want < 1 ? 1 : want > BATCH_MAX ? BATCH_MAX : want;
    if (n > left)
        n = left;
    *base = p->cut;
    p->cut += n * p->size;
    return (uint32_t)n;
}

static int madvise_retry(void *addr, size_t len, int advice)
{
    int rc, tries = 0;
    while ((rc = madvise(addr, len, advice)) != 0 &&
           (errno == EINTR || errno == EAGAIN) && ++tries < SYSCALL_RETRIES)
        ;
    return rc;
}

uint8_t sl__stack_canary_any;

/* Where slot s says it is a canary slot: its fourth-highest word (the
 * highest two link free stacks and depot batches). */
static uint64_t *canary_mark(const sl_stack_pool *p, const char *s)
{
    return (uint64_t *)(s + p->size - 4 * sizeof(uint64_t));
}

/* Protect the lowest page of a newly carved slot s in the pool's mode,
 * degrading (never failing) when that mode doesn't work. */
static void guard_slot(sl_stack_pool *p, char *s)
{
    if (p->guard_mode == SL_GUARD_MADV) {
        if (madvise_retry(s, p->guard, MADV_GUARD_INSTALL) == 0)
            return;
        if (errno == EINVAL) /* kernel < 6.13, or an mlocked process */
            p->guard_mode = SL_GUARD_MPROTECT;
        /* Otherwise (ENOMEM: no page table) try mprotect for this one. */
    }
    if (p->guard_mode != SL_GUARD_CANARY) {
        if (p->mprotect_budget == 0)
            p->mprotect_budget = budget_draw(BUDGET_CHUNK);
        if (p->mprotect_budget > 0 && mprotect(s, p->guard, PROT_NONE) == 0) {
            p->mprotect_budget--;
            p->nmprotect++;
            return;
        }
        p->guard_mode = SL_GUARD_CANARY; /* for good */
    }
    *(uint64_t *)(s + p->guard) = CANARY_MAGIC;
    *canary_mark(p, s) = CANARY_MAGIC;
    p->ncanary++;
    if (!__atomic_load_n(&sl__stack_canary_any, __ATOMIC_RELAXED))
        __atomic_store_n(&sl__stack_canary_any, 1, __ATOMIC_RELEASE);
}

/* Prepare slots [base, base + n * size) on the worker: a batch when the
 * pool guards with MADV_GUARD_INSTALL and batching works, else slot by
 * slot (which also covers the fallbacks). */
static void prepare_here(sl_stack_pool *p, char *base, uint32_t n)
{
    if (p->provision != SL_PROVISION_OFF && p->guard_mode == SL_GUARD_MADV &&
        prepare_batch(p, base, n)) {
        __atomic_add_fetch(&prov.batched, n, __ATOMIC_RELAXED);
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        guard_slot(p, base + (size_t)i * p->size);
    __atomic_add_fetch(&prov.single, n, __ATOMIC_RELAXED);
}

void sl__stack_provision_stats(uint64_t *helped, uint64_t *batched,
                               uint64_t *single)
{
    *helped = __atomic_load_n(&prov.helped, __ATOMIC_RELAXED);
    *batched = __atomic_load_n(&prov.batched, __ATOMIC_RELAXED);
    *single = __atomic_load_n(&prov.single, __ATOMIC_RELAXED);
}

/* Slots promised beyond those free, prepared or queued: what the pool
 * knows will be carved. */
static size_t demand(const sl_stack_pool *p)
{
    size_t have = p->nfree + (size_t)(p->bump_end - p->bump) / p->size +
                  p->nqueued;
    return p->promised > have ? p->promised - have : 0;
}

/* Queue batches for the helper while the demand goes beyond what is
 * prepared and the ring has room. */
static void queue_ahead(sl_stack_pool *p)
{
    if (p->guard_mode != SL_GUARD_MADV) /* the helper only batches those */
        return;
    for (int i = 0; i < SL_STACK_RING; i++) {
        struct sl__stack_batch *b = &p->ring[i];
        if (batch_state(b) != SL_BATCH_FREE)
            continue;
        size_t want = demand(p);
        if (want == 0)
            return;
        uint32_t n = cut_slots(p, want, &b->base);
        if (n == 0)
            return;
        b->n = n;
        b->seq = ++p->nbatches;
        set_state(b, SL_BATCH_QUEUED);
        p->nqueued += n;
        if (!helper_queue(b)) { /* no helper after all */
            set_state(b, SL_BATCH_OWNED);
            p->provision = SL_PROVISION_INLINE;
            prepare_here(p, b->base, n);
            set_state(b, SL_BATCH_READY);
            return;
        }
    }
}

/* The queued batch the helper would reach last (it works in queue order),
 * taken back; NULL if none is queued. */
static struct sl__stack_batch *take_back_last(sl_stack_pool *p)
{
    for (;;) {
        struct sl__stack_batch *last = NULL;
        for (int i = 0; i < SL_STACK_RING; i++) {
            struct sl__stack_batch *b = &p->ring[i];
            if (__atomic_load_n(&b->state, __ATOMIC_RELAXED) ==
                    SL_BATCH_QUEUED &&
                (!last || b->seq > last->seq))
                last = b;
        }
        if (!last || take_back(last))
            return last;
        /* the helper began it meanwhile: try the one before */
    }
}

/* Make [bump, bump_end) a run of prepared slots: a batch the helper has
 * finished; else, for demand no batch covers, slots the worker cuts and
 * prepares now; else a batch the helper has not begun, taken back; else
 * the helper's current one, waited for. An uncarved slot exists (a
 * promise is being kept). */
static void next_run(sl_stack_pool *p)
{
    struct sl__stack_batch *use = NULL;
    for (int i = 0; i < SL_STACK_RING && !use; i++) {
        uint32_t st = __atomic_load_n(&p->ring[i].state, __ATOMIC_ACQUIRE);
        if (st == SL_BATCH_READY || st == SL_BATCH_FAILED)
            use = &p->ring[i];
    }
    /* This slot and the promises beyond the free and queued slots (off:
     * this slot alone, as the runtime did before the provisioner). */
    size_t need = p->promised + 1 > p->nfree + p->nqueued
                      ? p->promised + 1 - p->nfree - p->nqueued
                      : 0;
    if (p->provision == SL_PROVISION_OFF && need > 1)
        need = 1;
    char *base;
    uint32_t n;
    if (use == NULL && need > 0 && (n = cut_slots(p, need, &base)) > 0) {
        prepare_here(p, base, n);
    } else {
        if (use == NULL && (use = take_back_last(p)) != NULL)
            set_state(use, SL_BATCH_FAILED); /* prepared below */
        for (int i = 0; i < SL_STACK_RING && !use; i++) {
            if (__atomic_load_n(&p->ring[i].state, __ATOMIC_RELAXED) ==
                SL_BATCH_HELPER) {
                /* The last slots are in the helper's hands: a system call
                 * or two away. */
                while (__atomic_load_n(&p->ring[i].state, __ATOMIC_ACQUIRE) ==
                       SL_BATCH_HELPER)
                    sched_yield();
                use = &p->ring[i];
            }
        }
        SL__ASSERT(use != NULL);
        base = use->base;
        n = use->n;
        p->nqueued -= n;
        if (batch_state(use) == SL_BATCH_FAILED)
            prepare_here(p, base, n);
        set_state(use, SL_BATCH_FREE);
    }
    p->bump = base;
    p->bump_end = base + (size_t)n * p->size;
    if (p->provision == SL_PROVISION_HELPER)
        queue_ahead(p);
}

/* Carve a slot: the free list is empty and a promise is being kept, so
 * an uncarved slot exists. */
void *sl__stack_carve(sl_stack_pool *p)
{
    SL__ASSERT(p->ncarve > 0);
    if (p->bump == p->bump_end)
        next_run(p);
    char *s = p->bump;
    p->bump += p->size;
    p->ncarve--;
    p->ncarved++;
#if SL_VALGRIND
    if (p->valgrind)
        p->vg_ids[p->nvg++] = VALGRIND_STACK_REGISTER(s + p->guard, s + p->size);
#endif
    return s;
}

#if SL_ASAN
__attribute__((no_sanitize_address))
#endif
static uint64_t read_canary(const char *at)
{
    return *(const volatile uint64_t *)at;
}

bool sl__stack_canary_check(const sl_stack_pool *p, const void *stack)
{
    const char *s = stack;
    if (*canary_mark(p, s) != CANARY_MAGIC)
        return true; /* a guarded slot, from whichever pool */
    return read_canary(s + p->guard) == CANARY_MAGIC;
}

bool sl__stack_guard_hit(const sl_stack_pool *p, const void *stack,
                         const void *addr)
{
    uintptr_t s = (uintptr_t)stack, a = (uintptr_t)addr;
    return a < s + p->guard && (a >= s || s - a <= p->guard);
}

void sl__stack_pool_destroy(sl_stack_pool *p)
{
    helper_forget(p);
#if SL_VALGRIND
    for (size_t i = 0; i < p->nvg; i++)
        VALGRIND_STACK_DEREGISTER(p->vg_ids[i]);
#endif
    free(p->vg_ids);
    /* Unmapping part of a VMA may need a split, which fails at the map
     * count limit; a second pass retries once the others are gone. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < p->nregions; i++) {
            struct sl__stack_region *r = &p->regions[i];
            if (r->base == NULL)
                continue;
            char *end = r->base + r->nslots * p->size;
#if SL_ASAN
            /* Taken stacks may hold poisoned frames; a later mapping at
             * this address must not inherit them. Slots are cut in
             * address order: the current region up to the cursor. */
            if (!r->fresh) {
                char *cut = p->cut > r->base && p->cut <= end ? p->cut : end;
                for (char *s = r->base; s < cut; s += p->size)
                    sl__stack_asan_clean(s + p->guard, p->usable);
            }
#endif
            if (munmap(r->base, (size_t)(end - r->base)) == 0)
                r->base = NULL;
        }
    }
    budget_return(p->mprotect_budget + p->nmprotect);
    free(p->regions);
    memset(p, 0, sizeof *p);
}

/* ---- the depot (M:N) ----------------------------------------------------- */

#define DEPOT_BATCH 256

/* Batches of free stacks. A batch is a chain linked like a pool's free
 * list (each stack's highest word); batches are linked through the
 * second-highest word of their first stack. */
static struct {
    pthread_mutex_t lock;
    void *batches;
    size_t nbatches;
} depot = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static void **link_of(const sl_stack_pool *p, void *stack, int word)
{
    return (void **)((char *)stack + p->size - (size_t)word * sizeof(void *));
}

void sl__stack_depot_put(sl_stack_pool *p)
{
    /* Keep what is promised to tasklets that have not run yet (beyond the
     * uncarved slots), and half of the high mark for our own reuse. */
    size_t keep = p->promised > p->ncarve ? p->promised - p->ncarve : 0;
    if (keep < p->depot_high / 2)
        keep = p->depot_high / 2;
    if (p->nfree < keep + DEPOT_BATCH + 1)
        return;
    /* The batch starts below the head: the head may be the stack of the
     * tasklet that is ending right now, which runs on it until it has
     * switched away, and no other worker may have it before that. */
    void *head = p->free;
    void *first = *link_of(p, head, 1), *last = first;
    for (size_t i = 1; i < DEPOT_BATCH; i++)
        last = *link_of(p, last, 1);
    *link_of(p, head, 1) = *link_of(p, last, 1);
    *link_of(p, last, 1) = NULL;
    p->nfree -= DEPOT_BATCH;
    pthread_mutex_lock(&depot.lock);
    *link_of(p, first, 2) = depot.batches;
    depot.batches = first;
    __atomic_store_n(&depot.nbatches, depot.nbatches + 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&depot.lock);
}

bool sl__stack_depot_get(sl_stack_pool *p)
{
    if (!__atomic_load_n(&depot.nbatches, __ATOMIC_RELAXED))
        return false;
    pthread_mutex_lock(&depot.lock);
    void *b = depot.batches;
    if (b) {
        depot.batches = *link_of(p, b, 2);
        __atomic_store_n(&depot.nbatches, depot.nbatches - 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&depot.lock);
    if (!b)
        return false;
    SL__ASSERT(p->free == NULL);
    p->free = b;
    p->nfree += DEPOT_BATCH;
    return true;
}

void sl__stack_depot_forget(void)
{
    sl__stack_canary_any = 0; /* the child's pools start afresh */
    pthread_mutex_init(&depot.lock, NULL); /* a fork may have left it held */
    depot.batches = NULL;
    depot.nbatches = 0;
}

void sl__stack_depot_reset(void)
{
    __atomic_store_n(&sl__stack_canary_any, 0, __ATOMIC_RELAXED);
    pthread_mutex_lock(&depot.lock);
    depot.batches = NULL;
    __atomic_store_n(&depot.nbatches, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&depot.lock);
}
