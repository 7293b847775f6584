/* trace_pingpong.c - the known program the trace test reads back
 * (tests/trace_check.py): "ping" sends 1..N on channel a and receives each
 * back on b, "pong" receives on a and sends on b. It knows nothing of the
 * trace: the test runs it with SL_TRACE set. Prints what the checker
 * needs: the rounds, the workers and both channels' addresses.
 *
 * usage: trace_pingpong ROUNDS [WORKERS] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <stackless.h>

static sl_channel *a, *b;
static long rounds;
static int failures;

static void ping(void *arg)
{
    (void)arg;
    for (long i = 1; i <= rounds; i++) {
        void *m;
        if (sl_channel_send(a, (void *)(intptr_t)i) != 0 ||
            sl_channel_receive(b, &m) != 0 || (intptr_t)m != i)
            failures++;
    }
}

static void pong(void *arg)
{
    (void)arg;
    for (long i = 1; i <= rounds; i++) {
        void *m;
        if (sl_channel_receive(a, &m) != 0 || sl_channel_send(b, m) != 0)
            failures++;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || (rounds = atol(argv[1])) <= 0) {
        fprintf(stderr, "usage: trace_pingpong ROUNDS [WORKERS]\n");
        return 2;
    }
    sl_config cfg;
    sl_config_init(&cfg);
    cfg.workers = argc > 2 ? atoi(argv[2]) : 1;
    if (sl_init(&cfg) != 0)
        return 1;
    a = sl_channel_new();
    b = sl_channel_new();
    sl_spawn_attr attr;
    sl_spawn_attr_init(&attr);
    attr.name = "ping";
    attr.worker = cfg.workers > 1 ? 1 : -1; /* two workers: apart, so the
                                              flows cross tracks */
    sl_tasklet *p = sl_spawn_ex(&attr, ping, NULL);
    attr.name = "pong";
    attr.worker = cfg.workers > 1 ? 0 : -1;
    sl_tasklet *q = sl_spawn_ex(&attr, pong, NULL);
    if (!p || !q || sl_run() != 0 || failures || sl_getlivecount() != 0) {
        fprintf(stderr, "trace_pingpong: the game failed (%d)\n", failures);
        return 1;
    }
    printf("rounds=%ld workers=%d a=%p b=%p\n", rounds, cfg.workers,
           (void *)a, (void *)b);
    sl_channel_free(a);
    sl_channel_free(b);
    return sl_shutdown() == 0 ? 0 : 1;
}
