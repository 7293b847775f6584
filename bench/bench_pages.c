/* bench_pages.c - what a fresh stack slot costs the kernel and the machine:
 * the ways tasklet/stack.c could guard a slot and make its top page present,
 * each timed per slot, on memory this process has never touched.
 *
 * A slot is laid out as the runtime lays it out: a guard page at the bottom,
 * the usable pages above it, and the tasklet's first frames on the top page.
 * Variants (--variant):
 *   touch         write the top page: a page fault, no guard
 *   guard-touch   madvise(MADV_GUARD_INSTALL) on the guard, then the write
 *                 (what the runtime did before the provisioner: two kernel
 *                 entries per slot)
 *   batch         process_madvise() on our own pidfd, --batch slots per
 *                 call: MADV_GUARD_INSTALL over the guards, then
 *                 MADV_POPULATE_WRITE over the top pages; then the writes,
 *                 timed apart (prep_ns / touch_ns)
 *   helper        the batch variant done by a second thread, --batch slots
 *                 ahead of the writes; the writing thread's time is what a
 *                 worker would pay (main_ns), the helper's is helper_ns
 *   range         one madvise(MADV_POPULATE_WRITE) over --slots contiguous
 *                 pages (a slab chunk), then a write to each
 * --recycled first maps, touches and unmaps the same amount: the pages then
 * come from memory the guest kernel freed a moment ago, which the
 * hypervisor has already backed (the difference between the two is the
 * host's share of a first touch).
 * Last line: variant=V slots=N batch=B recycled=0|1 prep_ns=... touch_ns=...
 * ns_per_slot=... (the whole cost per slot, as the writing thread saw it). */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "tasklet/sysdefs.h"

static size_t pg, slot;
static long nslots, batch = 512;
static char *region;
static int pidfd = -1;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the calling thread: what the machine's load does not inflate
 * (the wall-clock figures of a loaded VM include other processes' turns). */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static char *map_region(void)
{
    char *m = mmap(NULL, (size_t)nslots * slot, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        perror("bench_pages: mmap");
        exit(1);
    }
    (void)madvise(m, (size_t)nslots * slot, MADV_NOHUGEPAGE);
    return m;
}

static void touch(long i)
{
    *(volatile long *)(region + (size_t)(i + 1) * slot - 64) = i;
}

/* process_madvise over slots [from, to): advice on each guard page, or on
 * each top page. Exits on failure (the kernel is too old, or refuses). */
static void advise(long from, long to, int advice)
{
    struct iovec iov[1024];
    long n = 0;
    for (long i = from; i < to; i++) {
        char *s = region + (size_t)i * slot;
        iov[n].iov_base = advice == MADV_GUARD_INSTALL ? s : s + slot - pg;
        iov[n].iov_len = pg;
        if (++n == 1024 || i + 1 == to) {
            size_t want = (size_t)n * pg;
            long got = syscall(SYS_process_madvise, pidfd, iov, n, advice, 0);
            if (got != (long)want) {
                fprintf(stderr, "bench_pages: process_madvise(%d) gave %ld of %zu: %s\n",
                        advice, got, want, strerror(errno));
                exit(1);
            }
            n = 0;
        }
    }
}

static uint64_t guard_cpu; /* CPU time of the guard installs alone */

static void prepare(long from, long to)
{
    uint64_t c0 = cpu_ns();
    advise(from, to, MADV_GUARD_INSTALL);
    guard_cpu += cpu_ns() - c0;
    advise(from, to, MADV_POPULATE_WRITE);
}

static atomic_long ready; /* helper: slots prepared so far */
static uint64_t helper_ns, helper_cpu;

static void *helper(void *arg)
{
    (void)arg;
    uint64_t t0 = now_ns(), c0 = cpu_ns();
    for (long i = 0; i < nslots; i += batch) {
        long to = i + batch < nslots ? i + batch : nslots;
        prepare(i, to);
        atomic_store_explicit(&ready, to, memory_order_release);
    }
    helper_ns = now_ns() - t0;
    helper_cpu = cpu_ns() - c0;
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"variant", required_argument, NULL, 'v'}, {"slots", required_argument, NULL, 'n'},
        {"slot-kib", required_argument, NULL, 's'}, {"batch", required_argument, NULL, 'b'},
        {"recycled", no_argument, NULL, 'r'},       {NULL, 0, NULL, 0}};
    const char *variant = "touch";
    long slot_kib = 68;
    int recycled = 0, c;
    nslots = 50000;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'v': variant = optarg; break;
        case 'n': nslots = atol(optarg); break;
        case 's': slot_kib = atol(optarg); break;
        case 'b': batch = atol(optarg); break;
        case 'r': recycled = 1; break;
        default:
            fprintf(stderr, "usage: bench_pages [--variant touch|guard-touch|batch|helper|range] "
                            "[--slots N] [--slot-kib K] [--batch B] [--recycled]\n");
            return 2;
        }
    }
    if (nslots < 1 || slot_kib < 8 || batch < 1) {
        fprintf(stderr, "bench_pages: --slots >= 1, --slot-kib >= 8, --batch >= 1\n");
        return 2;
    }
    pg = (size_t)sysconf(_SC_PAGESIZE);
    slot = (size_t)slot_kib << 10;
    pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    int range = strcmp(variant, "range") == 0;
    if (range)
        slot = pg; /* contiguous pages */
    if (recycled) {
        region = map_region();
        for (long i = 0; i < nslots; i++)
            touch(i);
        munmap(region, (size_t)nslots * slot);
    }
    region = map_region();

    /* Wall and CPU time of the preparing phase and of the writes. */
    uint64_t w0 = now_ns(), c0 = cpu_ns(), w1 = w0, c1 = c0;
    int helped = strcmp(variant, "helper") == 0;
    if (strcmp(variant, "touch") == 0) {
        for (long i = 0; i < nslots; i++)
            touch(i);
    } else if (strcmp(variant, "guard-touch") == 0) {
        for (long i = 0; i < nslots; i++) {
            if (madvise(region + (size_t)i * slot, pg, MADV_GUARD_INSTALL) != 0) {
                perror("bench_pages: madvise(MADV_GUARD_INSTALL)");
                return 1;
            }
            touch(i);
        }
    } else if (strcmp(variant, "batch") == 0) {
        for (long i = 0; i < nslots; i += batch)
            prepare(i, i + batch < nslots ? i + batch : nslots);
        w1 = now_ns(), c1 = cpu_ns();
        for (long i = 0; i < nslots; i++)
            touch(i);
    } else if (helped) {
        pthread_t th;
        pthread_create(&th, NULL, helper, NULL);
        for (long i = 0; i < nslots; i++) {
            while (atomic_load_explicit(&ready, memory_order_acquire) <= i)
                ;
            touch(i);
        }
        pthread_join(th, NULL);
    } else if (range) {
        if (madvise(region, (size_t)nslots * pg, MADV_POPULATE_WRITE) != 0) {
            perror("bench_pages: madvise(MADV_POPULATE_WRITE)");
            return 1;
        }
        w1 = now_ns(), c1 = cpu_ns();
        for (long i = 0; i < nslots; i++)
            touch(i);
    } else {
        fprintf(stderr, "bench_pages: unknown variant '%s'\n", variant);
        return 2;
    }
    uint64_t w2 = now_ns(), c2 = cpu_ns();
    double n = (double)nslots;
    double prep_w = (double)(w1 - w0) / n, prep_c = (double)(c1 - c0) / n;
    double tch_w = (double)(w2 - w1) / n, tch_c = (double)(c2 - c1) / n;
    if (helped) { /* the helper prepared on another CPU meanwhile; the
                     writer's time includes its waits for it */
        prep_w = (double)helper_ns / n, prep_c = (double)helper_cpu / n;
    }
    /* ns_per_slot / cpu_ns_per_slot: what the writing thread paid in all. */
    printf("variant=%s slots=%ld slot_kib=%zu batch=%ld recycled=%d prep_ns_per_slot=%.0f "
           "prep_cpu_ns_per_slot=%.0f touch_ns_per_slot=%.0f touch_cpu_ns_per_slot=%.0f "
           "guard_cpu_ns_per_slot=%.0f cpu_ns_per_slot=%.0f ns_per_slot=%.0f\n",
           variant, nslots, slot >> 10, batch, recycled, prep_w, prep_c, tch_w, tch_c,
           (double)guard_cpu / n, (double)(c2 - c0) / n, (double)(w2 - w0) / n);
    return 0;
}
