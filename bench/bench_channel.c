/* bench_channel.c - the cost of one channel message: two tasklets on one
 * worker passing a message back and forth over two channels (ping sends on
 * a and receives on b, pong the mirror image). With the default preference
 * every message is one send, one receive and one switch. */
#include <stackless.h>

#include "bench_stack.h"

static sl_channel *ch_a, *ch_b;
static uint64_t rounds;
static int failed;

static void ping(void *arg)
{
    void *msg;
    int rc;
    for (uint64_t i = 0; i < rounds; i++) {
        if ((rc = sl_channel_send(ch_a, arg)) < 0 || (rc = sl_channel_receive(ch_b, &msg)) < 0) {
            failed = rc;
            return;
        }
    }
}

static void pong(void *arg)
{
    void *msg;
    int rc;
    (void)arg;
    for (uint64_t i = 0; i < rounds; i++) {
        if ((rc = sl_channel_receive(ch_a, &msg)) < 0 || (rc = sl_channel_send(ch_b, msg)) < 0) {
            failed = rc;
            return;
        }
    }
}

static uint64_t body(uint64_t iters)
{
    static int ball;
    rounds = iters / 2; /* a round trip is two one-way messages */
    if (!sl_spawn(ping, &ball) || !sl_spawn(pong, NULL)) {
        fprintf(stderr, "bench_channel: sl_spawn failed\n");
        exit(1);
    }
    bs_begin();
    uint64_t t0 = bench_now_ns();
    int rc = sl_run();
    uint64_t ns = bench_now_ns() - t0;
    bs_end(iters);
    if (rc < 0 || failed || sl_getlivecount() != 0) {
        fprintf(stderr, "bench_channel: sl_run: %s, channel: %s, %d tasklets left\n",
                sl_strerror(rc), sl_strerror(failed), sl_getlivecount());
        exit(1);
    }
    return ns;
}

int main(int argc, char **argv)
{
    static const bench_spec b = {
        .name = "bench_channel",
        .what = "one-way channel message between two tasklets on one worker",
        .unit = "ns_per_message",
        .iters = 4000000,
        .body = body,
        .stack_modes = 1,
        .extra = bs_extra,
    };
    int rc = bs_init(argc, argv);
    if (rc < 0) {
        fprintf(stderr, "bench_channel: sl_init: %s\n", sl_strerror(rc));
        return 1;
    }
    ch_a = sl_channel_new();
    ch_b = sl_channel_new();
    if (!ch_a || !ch_b) {
        fprintf(stderr, "bench_channel: sl_channel_new failed\n");
        return 1;
    }
    rc = bench_main(&b, argc, argv);
    sl_channel_free(ch_a);
    sl_channel_free(ch_b);
    sl_shutdown();
    return rc;
}
