/* bench_spawn.c - the cost of a short-lived tasklet: spawn it, let it run to
 * its end, repeat. Only one tasklet lives at a time, so a runtime that keeps
 * a freed stack for the next tasklet never maps memory in the loop. */
#include <stackless.h>

#include "bench_stack.h"

static uint64_t ran;

static void noop(void *arg)
{
    (void)arg;
    ran++;
}

static uint64_t body(uint64_t iters)
{
    ran = 0;
    bs_begin();
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        if (!sl_spawn(noop, NULL)) {
            fprintf(stderr, "bench_spawn: sl_spawn failed at %" PRIu64 "\n", i);
            exit(1);
        }
        sl_run(); /* switch to it, it ends, back to main */
    }
    uint64_t ns = bench_now_ns() - t0;
    bs_end(iters);
    if (ran != iters || sl_getlivecount() != 0) {
        fprintf(stderr, "bench_spawn: %" PRIu64 " of %" PRIu64 " ran, %d left\n", ran, iters,
                sl_getlivecount());
        exit(1);
    }
    return ns;
}

int main(int argc, char **argv)
{
    static const bench_spec b = {
        .name = "bench_spawn",
        .what = "sl_spawn + first run + exit of one tasklet at a time (sl_run)",
        .unit = "ns_per_spawn",
        .iters = 1000000,
        .body = body,
        .stack_modes = 1,
        .extra = bs_extra,
    };
    int rc = bs_init(argc, argv);
    if (rc < 0) {
        fprintf(stderr, "bench_spawn: sl_init: %s\n", sl_strerror(rc));
        return 1;
    }
    rc = bench_main(&b, argc, argv);
    sl_shutdown();
    return rc;
}
