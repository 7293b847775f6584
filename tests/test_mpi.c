/* test_mpi.c - the MPI layer's suite (libstackless_mpi): the pool over
 * ranks, channels between ranks, bad input, timeouts, close, and (with
 * --die, under mpirun --enable-recovery) a rank that dies.
 *
 * Run under mpirun with 3 ranks (ctest does: tests/CMakeLists.txt). Not a
 * CUnit suite: the harness forks a child per test, which an MPI process
 * must not do. Every rank runs every test (they are collective); a failed
 * check prints rank, file and line. Rank 0 gathers the counts over a
 * channel and prints "N passed, N failed"; every rank exits 1 if any
 * check failed anywhere.
 *
 * Environment: SL_TEST_WORKERS=2 runs each rank's runtime on two workers
 * (the tests' tasklets then run beside the progress tasklet's worker). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stackless_mpi.h>

static int me, nranks;
static atomic_int checks, failures; /* tasklets of two workers count too */

#define CHECK(c)                                                                  \
    do {                                                                          \
        checks++;                                                                 \
        if (!(c)) {                                                               \
            failures++;                                                           \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s\n", me, __FILE__,   \
                    __LINE__, #c);                                                \
        }                                                                         \
    } while (0)
#define CHECK_RC(got, want)                                                       \
    do {                                                                          \
        int got_ = (got), want_ = (want);                                         \
        checks++;                                                                 \
        if (got_ != want_) {                                                      \
            failures++;                                                           \
            fprintf(stderr, "rank %d: %s:%d: %s is %s (%d), want %s\n", me,       \
                    __FILE__, __LINE__, #got, sl_err_name(got_), got_,            \
                    sl_err_name(want_));                                          \
        }                                                                         \
    } while (0)

/* Channel keys the tests use: a test's keys are its number times 100. */
enum { K_BARRIER = 1, K_COUNTS = 2, K_NAP_STARTS = 3 };

static sl_mpi_chan *bar_home, *bar_root;

/* All ranks meet here (over channels: the suite tests them too). */
static void barrier(void)
{
    int one = 1;
    size_t len = sizeof one;
    if (me == 0) {
        for (int i = 1; i < nranks; i++) {
            len = sizeof one;
            CHECK_RC(sl_mpi_chan_receive(bar_home, &one, &len), 0);
        }
        for (int r = 1; r < nranks; r++) {
            sl_mpi_chan *c;
            CHECK_RC(sl_mpi_chan_open(r, K_BARRIER, &c), 0);
            CHECK_RC(sl_mpi_chan_send(c, &one, sizeof one), 0);
            sl_mpi_chan_free(c);
        }
    } else {
        CHECK_RC(sl_mpi_chan_send(bar_root, &one, sizeof one), 0);
        CHECK_RC(sl_mpi_chan_receive(bar_home, &one, &len), 0);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- task functions ------------------------------------------------------ */

static int square(const void *in, size_t in_len, void *out, size_t *out_len)
{
    int64_t x;
    if (in_len != sizeof x || *out_len < sizeof x)
        return SL_EINVAL;
    memcpy(&x, in, sizeof x);
    x *= x;
    memcpy(out, &x, sizeof x);
    *out_len = sizeof x;
    return 0;
}
SL_MPI_TASK(square)

/* Items i: out = 3 i + rank-independent; odd multiples of 7 fail with -7. */
static int triple(const void *in, size_t in_len, void *out, size_t *out_len)
{
    int32_t x;
    (void)in_len;
    memcpy(&x, in, sizeof x);
    if (x % 14 == 7)
        return -7;
    x *= 3;
    memcpy(out, &x, sizeof x);
    *out_len = sizeof x;
    return 0;
}
SL_MPI_TASK(triple)

/* Sleeps the milliseconds it is given (parks its tasklet), returns the rank. */
static int nap(const void *in, size_t in_len, void *out, size_t *out_len)
{
    int32_t ms, r = sl_mpi_rank();
    (void)in_len;
    memcpy(&ms, in, sizeof ms);
    sl_sleep_ms(ms);
    memcpy(out, &r, sizeof r);
    *out_len = sizeof r;
    return 0;
}
SL_MPI_TASK(nap)

/* nap, except that a serving rank's first one first sends rank 0 (on
 * channel (0, K_NAP_STARTS)) the time it starts: its sleep ends 100 ms or
 * more after that. One rank's clock: the suite's ranks share a machine. */
static int nap_told(const void *in, size_t in_len, void *out, size_t *out_len)
{
    static bool told;
    if (!told) {
        told = true;
        sl_mpi_chan *c;
        double started = now_s();
        CHECK_RC(sl_mpi_chan_open(0, K_NAP_STARTS, &c), 0);
        CHECK_RC(sl_mpi_chan_send(c, &started, sizeof started), 0);
        CHECK_RC(sl_mpi_chan_free(c), 0);
    }
    return nap(in, in_len, out, out_len);
}
SL_MPI_TASK(nap_told)

/* A result of the size asked. */
static int sized(const void *in, size_t in_len, void *out, size_t *out_len)
{
    uint32_t n;
    (void)in_len;
    memcpy(&n, in, sizeof n);
    if (n > *out_len)
        return -EMSGSIZE;
    memset(out, 0x5a, n);
    *out_len = n;
    return 0;
}
SL_MPI_TASK(sized)

/* Registered on rank 0 only (at run time): the serving ranks do not know it. */
static int rank0_only(const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in, (void)in_len, (void)out;
    *out_len = 0;
    return 0;
}

/* Never registered anywhere. */
static int unregistered(const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in, (void)in_len, (void)out, (void)out_len;
    return 0;
}

/* --die: the serving rank it lands on dies. */
static int die(const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in, (void)in_len, (void)out, (void)out_len;
    if (sl_mpi_rank() == 2)
        raise(SIGKILL);
    *out_len = 0;
    return 0;
}
SL_MPI_TASK(die)

/* ---- tests: start, registry ------------------------------------------------ */

static void test_basics(void)
{
    CHECK(me >= 0 && me < nranks);
    CHECK_RC(sl_mpi_init(NULL, NULL, NULL), SL_ESTATE); /* once */
    CHECK_RC(sl_mpi_task_register("square", square), 0);  /* again: no-op */
    CHECK_RC(sl_mpi_task_register("square", triple), SL_EINVAL);
    CHECK_RC(sl_mpi_task_register("square2", square), SL_EINVAL);
    CHECK_RC(sl_mpi_task_register("", nap), SL_EINVAL);
    CHECK_RC(sl_mpi_task_register(NULL, nap), SL_EINVAL);
    char longname[80];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CHECK_RC(sl_mpi_task_register(longname, rank0_only), SL_EINVAL);
    sl_mpi_stats st;
    CHECK_RC(sl_mpi_stats_get(&st), 0);
    CHECK_RC(sl_mpi_stats_get(NULL), SL_EINVAL);
    CHECK(sl_err_name(SL_ENOTASK)[0] == 'S' && sl_err_name(SL_ERANKDIED)[0] == 'S');
}

/* ---- tests: channels --------------------------------------------------------- */

/* Rank 1 pings rank 0 1000 times (8 bytes each way, each reply the
 * number + 1); rank 2 meanwhile sends 200 numbers to rank 0's second
 * channel, whose sum rank 0 checks. */
static void test_chan_pingpong(void)
{
    enum { ROUNDS = 1000, SIDE = 200 };
    sl_mpi_chan *to0, *to1, *side;
    CHECK_RC(sl_mpi_chan_open(0, 100, &to0), 0);
    CHECK_RC(sl_mpi_chan_open(1, 101, &to1), 0);
    CHECK_RC(sl_mpi_chan_open(0, 102, &side), 0);
    barrier();
    if (me == 0) {
        int64_t sum = 0, got = 0;
        int n = 0, bad = 0;
        /* The pings first, then the side channel's 200: its senders
         * wait meanwhile (a rendezvous). */
        for (; n < ROUNDS; n++) {
            int64_t v;
            size_t len = sizeof v;
            CHECK_RC(sl_mpi_chan_receive(to0, &v, &len), 0);
            CHECK(len == sizeof v);
            bad += v != n;
            v++;
            CHECK_RC(sl_mpi_chan_send(to1, &v, sizeof v), 0);
        }
        for (int i = 0; i < SIDE; i++) {
            int64_t v;
            size_t len = sizeof v;
            CHECK_RC(sl_mpi_chan_receive(side, &v, &len), 0);
            sum += v;
            got++;
        }
        CHECK(bad == 0);
        CHECK(got == SIDE);
        CHECK(sum == (int64_t)SIDE * (SIDE + 1) / 2);
    } else if (me == 1) {
        int bad = 0;
        for (int64_t i = 0; i < ROUNDS; i++) {
            int64_t v = i;
            size_t len = sizeof v;
            CHECK_RC(sl_mpi_chan_send(to0, &v, sizeof v), 0);
            CHECK_RC(sl_mpi_chan_receive(to1, &v, &len), 0);
            bad += v != i + 1;
        }
        CHECK(bad == 0);
    } else if (me == 2) {
        for (int64_t i = 1; i <= SIDE; i++)
            CHECK_RC(sl_mpi_chan_send(side, &i, sizeof i), 0);
    }
    barrier();
    CHECK_RC(sl_mpi_chan_free(to0), 0);
    CHECK_RC(sl_mpi_chan_free(to1), 0);
    CHECK_RC(sl_mpi_chan_free(side), 0);
}

/* A send is a rendezvous: rank 1's send returns only once rank 0's
 * receiver has taken it, at least 100 ms after rank 1 sent. Messages
 * sent before the home opened the channel wait for it, in order. */
static void test_chan_rendezvous(void)
{
    sl_mpi_chan *c = NULL;
    if (me == 1) {
        CHECK_RC(sl_mpi_chan_open(0, 200, &c), 0);
        double t0 = now_s();
        int64_t v = 41;
        CHECK_RC(sl_mpi_chan_send(c, &v, sizeof v), 0); /* 0 opens it later */
        v = 42;
        CHECK_RC(sl_mpi_chan_send(c, &v, sizeof v), 0);
        CHECK(now_s() - t0 >= 0.1);
    }
    if (me == 0) {
        sl_sleep_ms(100);
        CHECK_RC(sl_mpi_chan_open(0, 200, &c), 0);
        int64_t v = 0;
        size_t len = sizeof v;
        CHECK_RC(sl_mpi_chan_receive(c, &v, &len), 0);
        CHECK(v == 41);
        len = sizeof v;
        CHECK_RC(sl_mpi_chan_receive(c, &v, &len), 0);
        CHECK(v == 42);
    }
    barrier();
    if (c)
        CHECK_RC(sl_mpi_chan_free(c), 0);
}

static void test_chan_timeouts(void)
{
    sl_mpi_chan *c;
    CHECK_RC(sl_mpi_chan_open(0, 300, &c), 0);
    barrier();
    if (me == 1) {
        /* Nobody receives: the send times out, the message withdrawn. */
        int64_t v = 7;
        double t0 = now_s();
        CHECK_RC(sl_mpi_chan_send_timeout(c, &v, sizeof v, 50), SL_ETIMEDOUT);
        CHECK(now_s() - t0 >= 0.05);
    }
    barrier();
    if (me == 0) {
        /* Rank 1's message was taken back: nothing is there. */
        int64_t v;
        size_t len = sizeof v;
        double t0 = now_s();
        CHECK_RC(sl_mpi_chan_receive_timeout(c, &v, &len, 30), SL_ETIMEDOUT);
        CHECK(now_s() - t0 >= 0.03);
        CHECK_RC(sl_mpi_chan_receive_timeout(c, &v, &len, 0), SL_ETIMEDOUT);
        /* A local send with a timeout and no receiver. */
        CHECK_RC(sl_mpi_chan_send_timeout(c, &v, sizeof v, 10), SL_ETIMEDOUT);
        CHECK_RC(sl_mpi_chan_send_timeout(c, &v, sizeof v, 0), SL_ETIMEDOUT);
    }
    barrier();
    if (me == 2) {
        /* Taken in time: 0, not a timeout. */
        int64_t v = 9;
        CHECK_RC(sl_mpi_chan_send_timeout(c, &v, sizeof v, 5000), 0);
    }
    if (me == 0) {
        int64_t v = 0;
        size_t len = sizeof v;
        CHECK_RC(sl_mpi_chan_receive(c, &v, &len), 0);
        CHECK(v == 9);
    }
    barrier();
    CHECK_RC(sl_mpi_chan_free(c), 0);
}

static void closer(void *arg)
{
    sl_sleep_ms(50);
    sl_mpi_chan_close(arg);
}

static void test_chan_close(void)
{
    sl_mpi_chan *c;
    CHECK_RC(sl_mpi_chan_open(0, 400, &c), 0);
    barrier();
    /* Rank 1 waits to send; rank 0 closes: rank 1 gets SL_ECLOSED. */
    if (me == 1) {
        int64_t v = 1;
        CHECK_RC(sl_mpi_chan_send(c, &v, sizeof v), SL_ECLOSED);
        CHECK_RC(sl_mpi_chan_send(c, &v, sizeof v), SL_ECLOSED); /* later too */
    }
    if (me == 0) {
        sl_sleep_ms(50);
        CHECK_RC(sl_mpi_chan_close(c), 0);
        int64_t v;
        size_t len = sizeof v;
        CHECK_RC(sl_mpi_chan_receive(c, &v, &len), SL_ECLOSED);
    }
    barrier();
    CHECK_RC(sl_mpi_chan_free(c), 0);
    /* Rank 2 closes rank 0's channel while rank 0 waits to receive. */
    CHECK_RC(sl_mpi_chan_open(0, 401, &c), 0);
    barrier();
    if (me == 2) {
        sl_sleep_ms(50);
        CHECK_RC(sl_mpi_chan_close(c), 0);
    }
    if (me == 0) {
        int64_t v;
        size_t len = sizeof v;
        CHECK_RC(sl_mpi_chan_receive(c, &v, &len), SL_ECLOSED);
    }
    barrier();
    CHECK_RC(sl_mpi_chan_free(c), 0);
    /* A local close from another tasklet wakes a local receiver. */
    if (me == 1) {
        CHECK_RC(sl_mpi_chan_open(1, 402, &c), 0);
        sl_spawn(closer, c);
        int64_t v;
        size_t len = sizeof v;
        CHECK_RC(sl_mpi_chan_receive(c, &v, &len), SL_ECLOSED);
        sl_sleep_ms(1);
        CHECK_RC(sl_mpi_chan_free(c), 0);
    }
    barrier();
}

static void test_chan_bad_input(void)
{
    sl_mpi_chan *c, *c2;
    int64_t v = 1;
    size_t len;
    CHECK_RC(sl_mpi_chan_open(nranks, 500, &c), SL_EINVAL);
    CHECK_RC(sl_mpi_chan_open(-1, 500, &c), SL_EINVAL);
    CHECK_RC(sl_mpi_chan_open(0, 500, NULL), SL_EINVAL);
    CHECK_RC(sl_mpi_chan_open(0, 500, &c), 0);
    CHECK_RC(sl_mpi_chan_open(0, 500, &c2), -EEXIST);
    CHECK(sl_mpi_chan_home(c) == 0);
    barrier();
    if (me == 1) {
        /* Too large: refused here, nothing sent. */
        CHECK_RC(sl_mpi_chan_send(c, &v, (1u << 20) + 1), SL_EINVAL);
        CHECK_RC(sl_mpi_chan_send(c, NULL, 8), SL_EINVAL);
        len = sizeof v;
        CHECK_RC(sl_mpi_chan_receive(c, &v, &len), SL_EINVAL); /* not home */
        /* A message too large for rank 0's buffer stays in the channel. */
        char big[100] = "hello";
        CHECK_RC(sl_mpi_chan_send(c, big, sizeof big), 0);
    }
    if (me == 0) {
        char buf[100] = {0};
        len = 10;
        CHECK_RC(sl_mpi_chan_receive(c, buf, &len), -EMSGSIZE);
        CHECK(len == 100);
        len = sizeof buf;
        CHECK_RC(sl_mpi_chan_receive(c, buf, &len), 0);
        CHECK(len == 100 && strcmp(buf, "hello") == 0);
    }
    CHECK_RC(sl_mpi_chan_send(NULL, &v, sizeof v), SL_EINVAL);
    barrier();
    CHECK_RC(sl_mpi_chan_free(c), 0);
    CHECK_RC(sl_mpi_chan_free(NULL), SL_EINVAL);
}

/* Messages larger than a posted receive (a notice, then the bytes on
 * their own tag): contents intact, order kept, and a cancel that follows
 * a large send does not overtake it. */
static void test_chan_large(void)
{
    enum { BIG = 200000 };
    static unsigned char buf[1 << 20];
    sl_mpi_chan *c;
    CHECK_RC(sl_mpi_chan_open(0, 800, &c), 0);
    barrier();
    size_t sizes[] = {8, BIG, 16, 1u << 20, 3000, BIG + 1};
    int nsizes = (int)(sizeof sizes / sizeof *sizes);
    if (me == 1) {
        for (int k = 0; k < nsizes; k++) {
            for (size_t i = 0; i < sizes[k]; i++)
                buf[i] = (unsigned char)(i * 7 + (size_t)k);
            CHECK_RC(sl_mpi_chan_send(c, buf, sizes[k]), 0);
        }
        /* Nobody takes it: the cancel must find it queued. */
        CHECK_RC(sl_mpi_chan_send_timeout(c, buf, BIG, 20), SL_ETIMEDOUT);
    }
    if (me == 0) {
        for (int k = 0; k < nsizes; k++) {
            size_t len = sizeof buf;
            CHECK_RC(sl_mpi_chan_receive(c, buf, &len), 0);
            CHECK(len == sizes[k]);
            size_t bad = 0;
            for (size_t i = 0; i < len; i++)
                bad += buf[i] != (unsigned char)(i * 7 + (size_t)k);
            CHECK(bad == 0);
        }
    }
    barrier();
    if (me == 0) {
        size_t len = sizeof buf;
        CHECK_RC(sl_mpi_chan_receive_timeout(c, buf, &len, 0), SL_ETIMEDOUT);
    }
    barrier();
    CHECK_RC(sl_mpi_chan_free(c), 0);
}

/* Many tasklets of rank 1 and 2 send to one channel of rank 0, each
 * 50 numbers; rank 0 counts and sums. */
struct sender {
    sl_mpi_chan *c;
    int64_t base;
};

static atomic_int senders_done;

static void sender_main(void *arg)
{
    struct sender *s = arg;
    for (int64_t i = 0; i < 50; i++) {
        int64_t v = s->base + i;
        CHECK_RC(sl_mpi_chan_send(s->c, &v, sizeof v), 0);
    }
    atomic_fetch_add(&senders_done, 1);
}

static void test_chan_many_senders(void)
{
    enum { TASKLETS = 20 };
    sl_mpi_chan *c;
    struct sender s[TASKLETS];
    CHECK_RC(sl_mpi_chan_open(0, 600, &c), 0);
    barrier();
    if (me == 0) {
        int64_t sum = 0, want = 0;
        int n = (nranks - 1) * TASKLETS * 50;
        for (int i = 0; i < n; i++) {
            int64_t v;
            size_t len = sizeof v;
            CHECK_RC(sl_mpi_chan_receive(c, &v, &len), 0);
            sum += v;
        }
        for (int r = 1; r < nranks; r++)
            for (int t = 0; t < TASKLETS; t++)
                for (int i = 0; i < 50; i++)
                    want += (int64_t)r * 1000000 + t * 1000 + i;
        CHECK(sum == want);
    } else {
        senders_done = 0;
        for (int t = 0; t < TASKLETS; t++) {
            s[t].c = c;
            s[t].base = (int64_t)me * 1000000 + t * 1000;
            CHECK(sl_spawn(sender_main, &s[t]) != NULL);
        }
        /* Not sl_run(): this rank homes channels (the barrier's), so it
         * listens and sl_run() would not return. */
        while (senders_done < TASKLETS)
            sl_sleep_ms(1);
    }
    barrier();
    CHECK_RC(sl_mpi_chan_free(c), 0);
}

/* ---- tests: the pool ------------------------------------------------------------ */

static int callbacks, error_callbacks;
static int64_t callback_sum;

static void on_result(void *arg, const void *out, size_t len)
{
    int64_t v;
    (void)arg;
    CHECK(len == sizeof v);
    memcpy(&v, out, sizeof v);
    callback_sum += v;
    callbacks++;
}

static void on_error(void *arg, int status)
{
    (void)arg;
    CHECK_RC(status, SL_ENOTASK);
    error_callbacks++;
}

static void test_pool(void)
{
    sl_mpi_pool *pool = NULL;
    sl_mpi_pool_config cfg;
    sl_mpi_pool_config_init(&cfg);
    cfg.tasks_per_rank = 8; /* so that the backlog is used too */
    if (me == 0)
        CHECK_RC(sl_mpi_task_register("rank0_only", rank0_only), 0);
    CHECK_RC(sl_mpi_pool_new(&pool, &cfg), 0);
    if (me != 0) {
        CHECK(pool == NULL); /* served, and the pool has ended */
        return;
    }
    CHECK(pool != NULL);
    CHECK(sl_mpi_pool_ranks(pool) == nranks - 1);

    /* Futures: 300 squares. */
    enum { N = 300 };
    sl_mpi_future *f[N];
    for (int64_t i = 0; i < N; i++)
        CHECK_RC(sl_mpi_pool_submit(pool, square, &i, sizeof i, &f[i]), 0);
    int64_t sum = 0;
    for (int i = 0; i < N; i++) {
        int64_t v = 0;
        size_t len = sizeof v;
        CHECK_RC(sl_mpi_future_wait(f[i], &v, &len), 0);
        CHECK(len == sizeof v);
        CHECK(sl_mpi_future_done(f[i]));
        sum += v;
        sl_mpi_future_free(f[i]);
    }
    CHECK(sum == (int64_t)(N - 1) * N * (2 * N - 1) / 6);

    /* Bad input: refused at once, and nothing is lost. */
    int64_t x = 5;
    sl_mpi_future *g;
    CHECK_RC(sl_mpi_pool_submit(pool, unregistered, &x, sizeof x, &g), SL_ENOTASK);
    CHECK_RC(sl_mpi_pool_submit(pool, NULL, &x, sizeof x, &g), SL_EINVAL);
    CHECK_RC(sl_mpi_pool_submit(pool, square, NULL, 8, &g), SL_EINVAL);
    CHECK_RC(sl_mpi_pool_submit(pool, square, &x, (1u << 20) + 1, &g), SL_EINVAL);
    CHECK_RC(sl_mpi_pool_submit(pool, square, &x, sizeof x, NULL), SL_EINVAL);
    CHECK_RC(sl_mpi_pool_submit((sl_mpi_pool *)0x123458, square, &x, sizeof x, &g), SL_EINVAL);
    /* Known here, unknown on the serving ranks: the task fails clearly. */
    CHECK_RC(sl_mpi_pool_submit(pool, rank0_only, &x, sizeof x, &g), 0);
    CHECK_RC(sl_mpi_future_wait(g, NULL, NULL), SL_ENOTASK);
    sl_mpi_future_free(g);
    /* A result larger than the buffer: -EMSGSIZE and the size; kept. */
    uint32_t want = 1000;
    CHECK_RC(sl_mpi_pool_submit(pool, sized, &want, sizeof want, &g), 0);
    char buf[1000];
    size_t len = 10;
    CHECK_RC(sl_mpi_future_wait(g, buf, &len), -EMSGSIZE);
    CHECK(len == 1000);
    len = sizeof buf;
    CHECK_RC(sl_mpi_future_wait(g, buf, &len), 0);
    CHECK(len == 1000 && (unsigned char)buf[999] == 0x5a);
    CHECK_RC(sl_mpi_future_wait(g, buf, NULL), 0); /* waiting again: same */
    sl_mpi_future_free(g);
    /* A timeout leaves the future valid. */
    int32_t ms = 200;
    CHECK_RC(sl_mpi_pool_submit(pool, nap, &ms, sizeof ms, &g), 0);
    CHECK_RC(sl_mpi_future_wait_timeout(g, NULL, NULL, 20), SL_ETIMEDOUT);
    CHECK(!sl_mpi_future_done(g));
    int32_t who = -1;
    len = sizeof who;
    CHECK_RC(sl_mpi_future_wait(g, &who, &len), 0);
    CHECK(who >= 1 && who < nranks);
    sl_mpi_future_free(g);
    /* A future freed unwaited. */
    CHECK_RC(sl_mpi_pool_submit(pool, square, &x, sizeof x, &g), 0);
    sl_mpi_future_free(g);

    /* apply_async: 50 callbacks in tasklets, 5 error callbacks. */
    callbacks = error_callbacks = 0;
    callback_sum = 0;
    for (int64_t i = 1; i <= 50; i++)
        CHECK_RC(sl_mpi_pool_apply_async(pool, square, &i, sizeof i, on_result, on_error, NULL), 0);
    for (int i = 0; i < 5; i++)
        CHECK_RC(sl_mpi_pool_apply_async(pool, rank0_only, &x, sizeof x, on_result, on_error, NULL),
                 0);
    /* (at most a minute: a loaded machine may take long; a hang fails) */
    for (int i = 0; i < 60000 && callbacks + error_callbacks < 55; i++)
        sl_sleep_ms(1);
    CHECK(callbacks == 50 && error_callbacks == 5);
    CHECK(callback_sum == 50 * 51 * 101 / 6);

    /* map: 10,000 items at several chunk sizes, results in order. */
    enum { M = 10000 };
    static int32_t in[M], out[M];
    static int st[M];
    for (int i = 0; i < M; i++)
        in[i] = i;
    size_t chunks[] = {0, 1, 7, 1000, 5000};
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
        memset(out, 0xff, sizeof out);
        int rc = sl_mpi_pool_map(pool, triple, in, sizeof *in, M, out, sizeof *out, chunks[c], st);
        CHECK_RC(rc, -7); /* item 7 is the first to fail */
        int wrong = 0, failed = 0;
        for (int i = 0; i < M; i++) {
            if (i % 14 == 7) {
                failed++;
                wrong += st[i] != -7 || out[i] != -1; /* untouched */
            } else {
                wrong += st[i] != 0 || out[i] != 3 * i;
            }
        }
        CHECK(wrong == 0);
        CHECK(failed == (M + 6) / 14);
        if (wrong)
            fprintf(stderr, "map chunksize %zu: %d wrong\n", chunks[c], wrong);
    }
    CHECK_RC(sl_mpi_pool_map(pool, square, in, 0, 10, out, 8, 0, NULL), SL_EINVAL);
    CHECK_RC(sl_mpi_pool_map(pool, square, in, 8, 10, NULL, 8, 0, NULL), SL_EINVAL);
    CHECK_RC(sl_mpi_pool_map(pool, unregistered, in, 8, 10, out, 8, 0, NULL), SL_ENOTASK);
    CHECK_RC(sl_mpi_pool_map(pool, square, in, 4, 0, out, 8, 0, NULL), 0); /* nothing */
    /* An item that cannot fit a chunk. */
    CHECK_RC(sl_mpi_pool_map(pool, square, in, 8, 1, out, 1u << 20, 0, NULL), SL_EINVAL);

    /* imap_unordered: every index once, every result right. */
    sl_mpi_pool_iter *it;
    CHECK_RC(sl_mpi_pool_imap_unordered(pool, triple, in, sizeof *in, M, sizeof *out, 300, &it), 0);
    static char seen[M];
    memset(seen, 0, sizeof seen);
    int handed = 0, wrong = 0, rc;
    size_t idx;
    int32_t v;
    len = sizeof v;
    while ((rc = sl_mpi_pool_iter_next(it, &idx, &v, &len)) != SL_ECLOSED) {
        CHECK(idx < M);
        if (idx >= M)
            break;
        seen[idx]++;
        handed++;
        if (idx % 14 == 7)
            wrong += rc != -7;
        else
            wrong += rc != 0 || len != sizeof v || v != 3 * (int32_t)idx;
        len = sizeof v;
    }
    int twice = 0;
    for (int i = 0; i < M; i++)
        twice += seen[i] != 1;
    CHECK(handed == M && twice == 0 && wrong == 0);
    sl_mpi_pool_iter_free(it);
    /* An iterator freed half-way. */
    CHECK_RC(sl_mpi_pool_imap_unordered(pool, triple, in, sizeof *in, M, sizeof *out, 100, &it), 0);
    len = sizeof v;
    CHECK(sl_mpi_pool_iter_next(it, &idx, &v, &len) != SL_ECLOSED);
    sl_mpi_pool_iter_free(it);

    /* join needs close; after close, new work is refused. */
    CHECK_RC(sl_mpi_pool_join(pool), SL_ESTATE);
    CHECK_RC(sl_mpi_pool_close(pool), 0);
    CHECK_RC(sl_mpi_pool_submit(pool, square, &x, sizeof x, &g), SL_ECLOSED);
    CHECK_RC(sl_mpi_pool_join(pool), 0);
    sl_mpi_pool_free(pool);
    /* The handle is refused once freed. */
    CHECK_RC(sl_mpi_pool_submit(pool, square, &x, sizeof x, &g), SL_EINVAL);
    CHECK_RC(sl_mpi_pool_close(pool), SL_EINVAL);
    CHECK(sl_mpi_pool_ranks(pool) == SL_EINVAL);
    sl_mpi_pool_free(pool); /* again: nothing */
}

/* A second pool: terminate with tasks running and queued. */
static void test_pool_terminate(void)
{
    sl_mpi_pool *pool = NULL;
    CHECK_RC(sl_mpi_pool_new(&pool, NULL), 0);
    if (me != 0)
        return;
    enum { N = 20 };
    sl_mpi_future *f[N];
    int32_t ms = 100;
    sl_mpi_chan *starts;
    CHECK_RC(sl_mpi_chan_open(0, K_NAP_STARTS, &starts), 0);
    for (int i = 0; i < N; i++)
        CHECK_RC(sl_mpi_pool_submit(pool, nap_told, &ms, sizeof ms, &f[i]), 0);
    /* Every serving rank is running its first nap (or has run it): however
     * late load let it start, terminate returns after it ended. */
    double last_end = 0;
    for (int r = 1; r < nranks; r++) {
        double started;
        size_t len = sizeof started;
        CHECK_RC(sl_mpi_chan_receive(starts, &started, &len), 0);
        if (started + 0.1 > last_end)
            last_end = started + 0.1;
    }
    CHECK_RC(sl_mpi_chan_free(starts), 0);
    CHECK_RC(sl_mpi_pool_terminate(pool), 0);
    CHECK(now_s() >= last_end); /* it waited for the running naps */
    int closed = 0;
    for (int i = 0; i < N; i++) {
        int rc = sl_mpi_future_wait(f[i], NULL, NULL);
        CHECK(rc == SL_ECLOSED || rc == 0);
        closed += rc == SL_ECLOSED;
        sl_mpi_future_free(f[i]);
    }
    CHECK(closed >= N - 2 * (nranks - 1));
    CHECK_RC(sl_mpi_pool_submit(pool, nap, &ms, sizeof ms, &f[0]), SL_ECLOSED);
    sl_mpi_pool_free(pool);
}

/* ---- --die: a serving rank dies ----------------------------------------------- */

static void test_rank_dies(void)
{
    sl_mpi_pool *pool = NULL;
    sl_mpi_chan *c2;
    CHECK_RC(sl_mpi_chan_open(2, 700, &c2), 0);
    CHECK_RC(sl_mpi_pool_new(&pool, NULL), 0);
    if (me != 0)
        return; /* rank 2 never returns */
    /* Tasks to both ranks: the one rank 2 runs kills it. */
    enum { N = 40 };
    sl_mpi_future *f[N];
    int64_t x = 3;
    for (int i = 0; i < N; i++) {
        if (i == 1)
            CHECK_RC(sl_mpi_pool_submit(pool, die, &x, sizeof x, &f[i]), 0);
        else
            CHECK_RC(sl_mpi_pool_submit(pool, square, &x, sizeof x, &f[i]), 0);
    }
    int ok = 0, died = 0;
    for (int i = 0; i < N; i++) {
        int64_t v = 0;
        size_t len = sizeof v;
        int rc = sl_mpi_future_wait(f[i], &v, &len);
        if (rc == 0 && (i == 1 || v == 9))
            ok++;
        else if (rc == SL_EWORKERDIED)
            died++;
        else
            CHECK_RC(rc, 0);
        sl_mpi_future_free(f[i]);
    }
    /* Exactly the task rank 2 was running fails; its queued ones ran on
     * rank 1. */
    CHECK(died == 1 && ok == N - 1);
    /* The pool goes on with rank 1. */
    int64_t v = 0;
    size_t len = sizeof v;
    sl_mpi_future *g;
    CHECK_RC(sl_mpi_pool_submit(pool, square, &x, sizeof x, &g), 0);
    CHECK_RC(sl_mpi_future_wait(g, &v, &len), 0);
    CHECK(v == 9);
    sl_mpi_future_free(g);
    /* A channel homed on the dead rank: an error, not a hang. */
    CHECK_RC(sl_mpi_chan_send(c2, &x, sizeof x), SL_ERANKDIED);
    CHECK_RC(sl_mpi_pool_close(pool), 0);
    CHECK_RC(sl_mpi_pool_join(pool), 0);
    sl_mpi_pool_free(pool);
}

/* ---- main ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    bool die_mode = argc > 1 && strcmp(argv[1], "--die") == 0;
    sl_config cfg;
    sl_config_init(&cfg);
    const char *w = getenv("SL_TEST_WORKERS");
    if (w && atoi(w) > 1)
        cfg.workers = atoi(w);
    if (sl_init(&cfg) < 0 || sl_mpi_init(&argc, &argv, NULL) < 0) {
        fprintf(stderr, "test_mpi: cannot start\n");
        return 1;
    }
    me = sl_mpi_rank();
    nranks = sl_mpi_size();
    if (nranks != 3) {
        if (me == 0)
            fprintf(stderr, "test_mpi: run me with 3 ranks (mpirun -np 3), not %d\n", nranks);
        sl_mpi_finalize();
        sl_shutdown();
        return 2;
    }
    CHECK_RC(sl_mpi_chan_open(me, K_BARRIER, &bar_home), 0);
    CHECK_RC(sl_mpi_chan_open(0, K_BARRIER, &bar_root), me == 0 ? -EEXIST : 0);

    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"basics", test_basics},
        {"chan_pingpong", test_chan_pingpong},
        {"chan_rendezvous", test_chan_rendezvous},
        {"chan_timeouts", test_chan_timeouts},
        {"chan_close", test_chan_close},
        {"chan_bad_input", test_chan_bad_input},
        {"chan_large", test_chan_large},
        {"chan_many_senders", test_chan_many_senders},
        {"pool", test_pool},
        {"pool_terminate", test_pool_terminate},
    };
    int ntests = die_mode ? 1 : (int)(sizeof tests / sizeof *tests);
    for (int t = 0; t < ntests; t++) {
        const char *name = die_mode ? "rank_dies" : tests[t].name;
        int before = failures;
        double t0 = now_s();
        if (die_mode)
            test_rank_dies();
        else
            tests[t].fn();
        if (!die_mode)
            barrier();
        if (me == 0)
            printf("test %-20s %s (%.2f s)\n", name, failures == before ? "ok" : "FAILED",
                   now_s() - t0);
        fflush(stdout);
    }

    /* Without doorbells (SL_MPI_NO_DOORBELLS=1) nobody rings; with them
     * the test above put ranks to sleep and woke them (rank 0 sleeps
     * 100 ms in the rendezvous test while rank 1 sends to it). */
    sl_mpi_stats st;
    CHECK_RC(sl_mpi_stats_get(&st), 0);
    const char *nodb = getenv("SL_MPI_NO_DOORBELLS");
    if (nodb && strcmp(nodb, "1") == 0)
        CHECK(st.rings_sent == 0 && st.rings_received == 0);
    CHECK(st.msgs_sent > 0 && st.msgs_received > 0 && st.polls > 0);

    /* Every rank's counts to rank 0. */
    sl_mpi_chan *counts;
    int total_checks = checks, total_failures = failures;
    CHECK_RC(sl_mpi_chan_open(0, K_COUNTS, &counts), 0);
    if (!die_mode || me != 2) {
        int live = die_mode ? nranks - 1 : nranks;
        if (me == 0) {
            for (int i = 1; i < live; i++) {
                int cf[2];
                size_t len = sizeof cf;
                if (sl_mpi_chan_receive(counts, cf, &len) == 0) {
                    total_checks += cf[0];
                    total_failures += cf[1];
                } else {
                    total_failures++;
                }
            }
            printf("%d passed, %d failed\n", total_checks - total_failures, total_failures);
        } else {
            int cf[2] = {checks, failures};
            sl_mpi_chan_send(counts, cf, sizeof cf);
        }
    }
    sl_mpi_chan_free(counts);
    sl_mpi_chan_free(bar_home);
    if (bar_root)
        sl_mpi_chan_free(bar_root);
    int rc = sl_mpi_finalize();
    if (rc < 0)
        fprintf(stderr, "rank %d: sl_mpi_finalize: %s\n", me, sl_strerror(rc));
    sl_shutdown();
    return (me == 0 ? total_failures : failures) || rc < 0 ? 1 : 0;
}
