/* bench_stack.h - what the tasklet micro-benchmarks share for the two stack
 * modes: --stack fixed|copy into sl_config, and the bytes copy mode copied
 * (saved plus restored) per operation of the last timed run. */
#ifndef BENCH_STACK_H
#define BENCH_STACK_H

#include <stackless.h>

#include "bench.h"

static int bs_mode;
static double bs_bytes_per_op;
static sl_stack_stats bs_before;

/* sl_init with the --stack mode of argv. */
static int bs_init(int argc, char **argv)
{
    sl_config cfg;
    sl_config_init(&cfg);
    cfg.stack_mode = bs_mode = bench_stack_mode(argc, argv);
    return sl_init(&cfg);
}

/* Around a run of ops operations. */
static void bs_begin(void)
{
    sl_stack_stats_get(&bs_before);
}

static void bs_end(uint64_t ops)
{
    sl_stack_stats a;
    sl_stack_stats_get(&a);
    uint64_t n = a.bytes_saved + a.bytes_restored - bs_before.bytes_saved -
                 bs_before.bytes_restored;
    bs_bytes_per_op = ops ? (double)n / (double)ops : 0;
}

/* bench_spec.extra: "stack=copy bytes_copied_per_op=352.0 ". */
static void bs_extra(FILE *out)
{
    fprintf(out, "stack=%s bytes_copied_per_op=%.1f ",
            bs_mode == SL_STACK_COPY ? "copy" : "fixed", bs_bytes_per_op);
}

#endif /* BENCH_STACK_H */
