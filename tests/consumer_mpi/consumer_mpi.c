/* consumer_mpi.c - a program built against an installed libstackless_mpi:
 * two ranks, a task on the pool and a message over a channel. Exits 0
 * when both came back right. */
#include <stdio.h>
#include <string.h>

#include <stackless_mpi.h>

static int twice(const void *in, size_t in_len, void *out, size_t *out_len)
{
    int v;
    (void)in_len;
    memcpy(&v, in, sizeof v);
    v *= 2;
    memcpy(out, &v, sizeof v);
    *out_len = sizeof v;
    return 0;
}
SL_MPI_TASK(twice)

static sl_mpi_chan *c;
static int sent = -1;

/* Rank 1: a tasklet that sends while main serves the pool. */
static void sender(void *arg)
{
    int msg = 7;
    (void)arg;
    sent = sl_mpi_chan_send(c, &msg, sizeof msg);
}

int main(int argc, char **argv)
{
    int bad = 1;
    if (sl_init(NULL) < 0 || sl_mpi_init(&argc, &argv, NULL) < 0)
        return 1;
    sl_mpi_chan_open(0, 1, &c);
    if (sl_mpi_rank() != 0)
        sl_spawn(sender, NULL);
    sl_mpi_pool *pool;
    if (sl_mpi_pool_new(&pool, NULL) == 0 && pool) {
        int in = 21, out = 0, msg = 0;
        size_t len = sizeof out, mlen = sizeof msg;
        sl_mpi_future *f;
        if (sl_mpi_pool_submit(pool, twice, &in, sizeof in, &f) == 0) {
            sl_mpi_future_wait(f, &out, &len);
            sl_mpi_future_free(f);
        }
        sl_mpi_chan_receive(c, &msg, &mlen);
        bad = !(out == 42 && msg == 7);
        printf("consumer_mpi: task %d, message %d: %s\n", out, msg, bad ? "wrong" : "ok");
        sl_mpi_pool_close(pool);
        sl_mpi_pool_join(pool);
        sl_mpi_pool_free(pool);
    } else {
        bad = sent != 0;
    }
    sl_mpi_chan_free(c);
    sl_mpi_finalize();
    sl_shutdown();
    return bad;
}
