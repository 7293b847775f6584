/* bench_lock.c - the cost of an uncontended sl_lock: main acquires and
 * releases a free lock in a loop. One operation is one acquire plus one
 * release (the fast path: no guard, no wait queue). */
#include <stackless.h>

#include "bench.h"

static sl_lock lock;

static uint64_t body(uint64_t iters)
{
    uint64_t failed = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        failed += sl_lock_acquire(&lock) != 0;
        failed += sl_lock_release(&lock) != 0;
    }
    uint64_t ns = bench_now_ns() - t0;
    if (failed) {
        fprintf(stderr, "bench_lock: %" PRIu64 " calls failed\n", failed);
        exit(1);
    }
    return ns;
}

int main(int argc, char **argv)
{
    static const bench_spec b = {
        .name = "bench_lock",
        .what = "sl_lock_acquire() + sl_lock_release() of a free lock, on one worker",
        .unit = "lock_ns",
        .iters = 50000000,
        .body = body,
    };
    int rc = sl_init(NULL);
    if (rc == 0)
        rc = sl_lock_init(&lock);
    if (rc < 0) {
        fprintf(stderr, "bench_lock: %s\n", sl_strerror(rc));
        return 1;
    }
    rc = bench_main(&b, argc, argv);
    sl_lock_destroy(&lock);
    sl_shutdown();
    return rc;
}
