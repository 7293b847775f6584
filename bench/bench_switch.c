/* bench_switch.c - the cost of sl_schedule(): two tasklets yielding to each
 * other in turn on one worker. One switch is one sl_schedule() call. */
#include <stackless.h>

#include "bench_stack.h"

static uint64_t half;

static void yielder(void *arg)
{
    (void)arg;
    for (uint64_t i = 0; i < half; i++)
        sl_schedule();
}

static uint64_t body(uint64_t iters)
{
    half = iters / 2; /* each of the two does half the switches */
    if (!sl_spawn(yielder, NULL) || !sl_spawn(yielder, NULL)) {
        fprintf(stderr, "bench_switch: sl_spawn failed\n");
        exit(1);
    }
    bs_begin();
    uint64_t t0 = bench_now_ns();
    int rc = sl_run();
    uint64_t ns = bench_now_ns() - t0;
    bs_end(iters);
    if (rc < 0 || sl_getlivecount() != 0) {
        fprintf(stderr, "bench_switch: sl_run: %s, %d tasklets left\n", sl_strerror(rc),
                sl_getlivecount());
        exit(1);
    }
    return ns;
}

int main(int argc, char **argv)
{
    static const bench_spec b = {
        .name = "bench_switch",
        .what = "sl_schedule() between two tasklets on one worker, one call per switch",
        .unit = "ns_per_switch",
        .iters = 10000000,
        .body = body,
        .stack_modes = 1,
        .extra = bs_extra,
    };
    int rc = bs_init(argc, argv);
    if (rc < 0) {
        fprintf(stderr, "bench_switch: sl_init: %s\n", sl_strerror(rc));
        return 1;
    }
    rc = bench_main(&b, argc, argv);
    sl_shutdown();
    return rc;
}
