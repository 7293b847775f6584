/* bench_fcontext.c - the floor under every tasklet switch: boost.context's
 * jump_fcontext ping-ponging between main and one context. One switch is one
 * jump. Needs only libboost_context, not the runtime. */
#include "bench.h"

/* boost.context's C ABI (boost/context/detail/fcontext.hpp), declared here
 * so the bench needs no C++ header. */
typedef void *fcontext_t;
typedef struct {
    fcontext_t fctx;
    void *data;
} transfer_t;
transfer_t jump_fcontext(fcontext_t const to, void *vp);
fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));

#define STACK_SIZE (64 * 1024)

static fcontext_t peer; /* the bouncing context, suspended in its loop */

/* Jumps straight back to whoever jumped here, forever. */
static void bounce(transfer_t t)
{
    for (;;)
        t = jump_fcontext(t.fctx, NULL);
}

static uint64_t body(uint64_t iters)
{
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < iters / 2; i++)
        peer = jump_fcontext(peer, NULL).fctx; /* there and back: two jumps */
    return bench_now_ns() - t0;
}

int main(int argc, char **argv)
{
    static const bench_spec b = {
        .name = "bench_fcontext",
        .what = "raw jump_fcontext between two contexts, one jump per switch",
        .unit = "ns_per_switch",
        .iters = 10000000,
        .body = body,
    };
    char *stack = malloc(STACK_SIZE);
    if (!stack) {
        fprintf(stderr, "bench_fcontext: out of memory\n");
        return 1;
    }
    peer = make_fcontext(stack + STACK_SIZE, STACK_SIZE, bounce);
    peer = jump_fcontext(peer, NULL).fctx; /* start it: now it waits in its loop */
    int rc = bench_main(&b, argc, argv);
    free(stack); /* the context is abandoned mid-loop; its stack owns nothing */
    return rc;
}
