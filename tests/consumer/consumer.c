/* consumer.c - a program outside the tree, written only against <stackless.h>
 * and built against an installed copy (CMake package or pkg-config): moves
 * values through a channel and checks Stackless's default-preference order.
 *
 * Exits 0 only if every observed order, sum and count is the expected one
 * (docs: shared/reference/stackless-semantics.md, "Channels").
 */
#include <stackless.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            failures++;                                                      \
            fprintf(stdout, "consumer: FAIL (line %d): ", __LINE__);         \
            fprintf(stdout, __VA_ARGS__);                                    \
            fputc('\n', stdout);                                             \
        }                                                                    \
    } while (0)

/* rc is evaluated once: CHECK_RC(sl_run(), "sl_run") is fine. */
#define CHECK_RC(rc, what) check_rc((rc), (what), __LINE__)

static void check_rc(int rc, const char *what, int line)
{
    if (rc != 0) {
        failures++;
        fprintf(stdout, "consumer: FAIL (line %d): %s returned %d %s (%s)\n",
                line, what, rc, sl_err_name(rc), sl_strerror(rc));
    }
}

/* ---- producer and consumer ---------------------------------------------- */

#define N_ITEMS 100
#define N_SUM ((long)N_ITEMS * (N_ITEMS + 1) / 2)

struct pipe {
    sl_channel *ch;
    long sum;      /* of every value received           */
    int received;  /* values received, end marker apart */
    int in_order;  /* each value was the previous one + 1 */
};

static void producer(void *arg)
{
    struct pipe *p = arg;
    for (intptr_t i = 1; i <= N_ITEMS; i++) {
        int rc = sl_channel_send(p->ch, (void *)i);
        if (rc != 0) {
            CHECK_RC(rc, "producer: sl_channel_send");
            return;
        }
    }
    int rc = sl_channel_send(p->ch, NULL); /* end of stream */
    CHECK_RC(rc, "producer: sl_channel_send(end)");
}

static void consumer(void *arg)
{
    struct pipe *p = arg;
    for (;;) {
        void *msg = NULL;
        int rc = sl_channel_receive(p->ch, &msg);
        if (rc != 0) {
            CHECK_RC(rc, "consumer: sl_channel_receive");
            return;
        }
        if (msg == NULL)
            return;
        intptr_t v = (intptr_t)msg;
        if (v != p->received + 1)
            p->in_order = 0;
        p->received++;
        p->sum += (long)v;
    }
}

/* consumer_first: the receiver is always waiting when a value is sent;
 * otherwise the sender is always waiting when a value is received. */
static void run_pipe(int consumer_first)
{
    const char *how = consumer_first ? "consumer spawned first"
                                     : "producer spawned first";
    struct pipe p = { sl_channel_new(), 0, 0, 1 };
    CHECK(p.ch != NULL, "sl_channel_new returned NULL");
    if (p.ch == NULL)
        return;

    sl_tasklet *a = sl_spawn(consumer_first ? consumer : producer, &p);
    sl_tasklet *b = sl_spawn(consumer_first ? producer : consumer, &p);
    CHECK(a != NULL && b != NULL, "sl_spawn returned NULL");
    CHECK_RC(sl_run(), "sl_run");

    printf("pipe (%s): received %d values, sum %ld, %s\n", how, p.received,
           p.sum, p.in_order ? "in order" : "OUT OF ORDER");
    CHECK(p.received == N_ITEMS, "%s: received %d values, expected %d", how,
          p.received, N_ITEMS);
    CHECK(p.sum == N_SUM, "%s: sum %ld, expected %ld", how, p.sum, N_SUM);
    CHECK(p.in_order, "%s: values arrived out of order", how);
    CHECK(sl_channel_balance(p.ch) == 0, "%s: balance %d after the run, "
          "expected 0", how, sl_channel_balance(p.ch));
    CHECK(sl_getlivecount() == 0, "%s: %d tasklets still alive after sl_run",
          how, sl_getlivecount());
    CHECK_RC(sl_channel_free(p.ch), "sl_channel_free");
}

/* ---- ordering under the default preference (-1, prefer the receiver) ----- */

static const char *events[16];
static int n_events;
static sl_channel *order_ch;
static void *got;

static void note(const char *what)
{
    if (n_events < (int)(sizeof events / sizeof events[0]))
        events[n_events++] = what;
}

static void recv_task(void *arg)
{
    int expect_balance = *(const int *)arg;
    CHECK(sl_channel_balance(order_ch) == expect_balance,
          "receiver: balance %d before receive, expected %d",
          sl_channel_balance(order_ch), expect_balance);
    note("recv");
    int rc = sl_channel_receive(order_ch, &got);
    CHECK_RC(rc, "receiver: sl_channel_receive");
    note("recv-returned");
}

static void send_task(void *arg)
{
    int expect_balance = *(const int *)arg;
    CHECK(sl_channel_balance(order_ch) == expect_balance,
          "sender: balance %d before send, expected %d",
          sl_channel_balance(order_ch), expect_balance);
    note("send");
    int rc = sl_channel_send(order_ch, (void *)(intptr_t)42);
    CHECK_RC(rc, "sender: sl_channel_send");
    note("send-returned");
}

static void other_task(void *arg)
{
    (void)arg;
    note("other");
}

/* Spawns the three tasklets in the given order, runs them and compares the
 * order of their events with want (space-separated). */
static void run_order(const char *name, sl_fn first, sl_fn second,
                      const char *want)
{
    /* the balance each side sees before its own call: a receiver spawned
     * second finds one sender waiting (+1), a sender spawned second finds one
     * receiver (-1); whoever runs first finds nobody (0). */
    int first_sees = 0;
    int second_sees = first == recv_task ? -1 : 1;
    char seen[256] = "";

    n_events = 0;
    got = NULL;
    order_ch = sl_channel_new();
    CHECK(order_ch != NULL, "sl_channel_new returned NULL");
    if (order_ch == NULL)
        return;
    CHECK(sl_channel_preference(order_ch) == -1,
          "default preference is %d, expected -1",
          sl_channel_preference(order_ch));

    sl_tasklet *a = sl_spawn(first, &first_sees);
    sl_tasklet *b = sl_spawn(second, &second_sees);
    sl_tasklet *c = sl_spawn(other_task, NULL);
    CHECK(a != NULL && b != NULL && c != NULL, "sl_spawn returned NULL");
    CHECK_RC(sl_run(), "sl_run");

    for (int i = 0; i < n_events; i++) {
        if (i)
            strcat(seen, " ");
        strcat(seen, events[i]);
    }
    printf("%s:\n  observed \"%s\"\n  expected \"%s\"\n", name, seen, want);
    CHECK(strcmp(seen, want) == 0, "%s: wrong order", name);
    CHECK((intptr_t)got == 42, "%s: receiver got %ld, expected 42", name,
          (long)(intptr_t)got);
    CHECK(sl_getlivecount() == 0, "%s: %d tasklets still alive after sl_run",
          name, sl_getlivecount());
    CHECK_RC(sl_channel_free(order_ch), "sl_channel_free");
    order_ch = NULL;
}

int main(void)
{
    /* line-buffered, so a crash still leaves what was observed in the log */
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("stackless %d.%d.%d consumer\n", SL_VERSION_MAJOR,
           SL_VERSION_MINOR, SL_VERSION_PATCH);

    int rc = sl_init(NULL);
    CHECK_RC(rc, "sl_init");
    if (rc != 0)
        return 1;

    run_pipe(1);
    run_pipe(0);

    /* A send to a waiting receiver switches to the receiver at once; the
     * sender goes to the end of the run queue, behind "other". */
    run_order("send to waiting receiver", recv_task, send_task,
              "recv send recv-returned other send-returned");
    /* A receive from a waiting sender returns at once; the sender goes to
     * the end of the run queue, behind "other". */
    run_order("receive from waiting sender", send_task, recv_task,
              "send recv recv-returned other send-returned");

    CHECK_RC(sl_shutdown(), "sl_shutdown");

    if (failures) {
        printf("consumer: %d check(s) FAILED\n", failures);
        return 1;
    }
    printf("consumer: all checks passed\n");
    return 0;
}
