/* echo_client.c - a load client for the echo servers, itself made of
 * tasklets: one per connection, on one worker by default.
 *
 * Three phases. Connect: main spawns the connection tasklets with at most
 * --batch connects in flight (each tasklet reports its sl_connect result on
 * the `ready` channel before main spawns another), so the server's listen
 * queue is never flooded. Load: once every connection is up, main starts
 * the clock and releases them all through the `go` channel; each does
 * --requests round trips (or loops until --seconds have passed): write
 * --size bytes, read until as many came back, check every byte, and record
 * the round trip in a histogram. End: each closes its socket and reports on
 * `done`; main stops the clock at the last report.
 *
 * A request's bytes are a function of (connection, request, offset), so an
 * echo sent to the wrong connection or out of order is caught too.
 *
 * Latencies go into a log-linear histogram of nanoseconds (64 buckets per
 * power of two, so a percentile is within 1.6% of the truth), which keeps
 * memory constant however long the run.
 *
 * Usage: echo_client --port N [--conns C] [--requests R | --seconds S]
 *                    [--size B] [--batch K] [--workers W]
 * Last line: conns=C requests=N seconds=T rps=X p50_us=.. p99_us=..
 * p999_us=.. errors=E size=B workers=W connect_seconds=T cpu_seconds=U
 * (the process's CPU time during the load phase). Exit status 0,
 * 1 if any connection failed (errors > 0), 2 on bad usage. */
#define _GNU_SOURCE
#include "args.h"
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stackless.h>

#include "echo.h"
#include "echo_tasklet.h"

#define MAX_SIZE 65536 /* a request must fit the socket buffers: the client
                          writes all of it before reading the echo */
#define HIST_SUB_LOG 6
#define HIST_SUB (1 << HIST_SUB_LOG)
#define HIST_BUCKETS ((64 - HIST_SUB_LOG) * HIST_SUB + HIST_SUB)

static struct {
    /* options */
    int port, conns, size, batch, workers;
    int64_t requests;     /* per connection; 0 when --seconds */
    int64_t seconds;
    struct sockaddr_in addr;
    /* phases */
    sl_channel *ready, *go, *done;
    int64_t deadline_ns;  /* --seconds: when to stop issuing requests */
    /* results, from every worker */
    atomic_int_fast64_t done_requests, errors;
    atomic_int said;      /* the first error has been printed */
    atomic_uint_fast64_t hist[HIST_BUCKETS];
} C = {.conns = 100, .size = 64, .batch = 256, .workers = 1};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: echo_client --port N [options]\n"
            "  --port N        the server's port on 127.0.0.1\n"
            "  --conns C       connections, each its own tasklet (default 100)\n"
            "  --requests R    round trips per connection (default 100)\n"
            "  --seconds S     instead: every connection loops for S seconds\n"
            "  --size B        bytes per request, 1 .. %d (default 64)\n"
            "  --batch K       connects in flight at once while ramping up (default 256)\n"
            "  --workers W     OS threads running tasklets (default 1)\n"
            "  --help          print this and exit\n"
            "The last line is key=value pairs: conns requests seconds rps p50_us p99_us\n"
            "p999_us errors size workers connect_seconds cpu_seconds (load phase).\n"
            "Exit status: 0 ok, 1 errors,\n"
            "2 bad usage.\n",
            MAX_SIZE);
}

/* ---- latency histogram ------------------------------------------------ */

static unsigned hist_index(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_LOG;
    return shift * HIST_SUB + (unsigned)(v >> shift);
}

/* The middle of bucket i, in nanoseconds. */
static double hist_value(unsigned i)
{
    if (i < 2 * HIST_SUB)
        return i;
    unsigned shift = i / HIST_SUB - 1;
    uint64_t low = (uint64_t)(i - shift * HIST_SUB) << shift;
    return (double)low + (double)((uint64_t)1 << shift) / 2;
}

/* The q-quantile (0 < q <= 1) in microseconds; 0 with no samples. */
static double hist_quantile(double q, uint64_t total)
{
    uint64_t rank = (uint64_t)(q * (double)total + 0.999999), seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS && total; i++)
        if ((seen += atomic_load_explicit(&C.hist[i], memory_order_relaxed)) >= rank)
            return hist_value(i) / 1000.0;
    return 0;
}

/* ---- one connection --------------------------------------------------- */

/* Counts a failed connection; prints the first: what failed and, for a
 * code rc < 0, why. */
static void conn_error(int id, const char *what, int rc)
{
    atomic_fetch_add(&C.errors, 1);
    if (!atomic_exchange(&C.said, 1))
        fprintf(stderr, "echo_client: connection %d: %s%s%s (the first error; any others are "
                        "counted)\n", id, what, rc < 0 ? ": " : "", rc < 0 ? sl_strerror(rc) : "");
}

/* The bytes of request r on connection id. */
static void fill(unsigned char *p, int size, int id, int64_t r)
{
    uint64_t x = ((uint64_t)id << 32 | (uint64_t)r) * 0x9e3779b97f4a7c15ull;
    for (int j = 0; j < size; j++)
        p[j] = (unsigned char)((x >> (8 * (j & 7))) + (unsigned)(j >> 3));
}

/* Sends out and reads the echo into in (room for 2 * C.size bytes): NULL,
 * or what failed with *rc its code (0: no code). Each read asks for more
 * than can come (the server sends back only what it got), so a read that
 * takes all there is returns short, which tells the runtime the socket is
 * now empty: the next read parks at once instead of trying first (an
 * EAGAIN saved, docs/io.md). An echo longer than the request is an
 * error. */
static const char *round_trip(int fd, const unsigned char *out, unsigned char *in, int *rc)
{
    ssize_t n;
    for (int off = 0; off < C.size; off += (int)n)
        if ((n = sl_write(fd, out + off, (size_t)(C.size - off))) < 0) {
            *rc = (int)n;
            return "write";
        }
    for (int got = 0; got < C.size; got += (int)n)
        if ((n = sl_read(fd, in + got, (size_t)(2 * C.size - got))) <= 0) {
            *rc = (int)n;
            return n ? "read" : "read: the server closed the connection";
        } else if (got + n > C.size) {
            return "the echo is longer than the request";
        }
    return NULL;
}

static void load(int id, int fd, unsigned char *out, unsigned char *in)
{
    int64_t t1 = 0;
    for (int64_t r = 0; C.requests ? r < C.requests : t1 < C.deadline_ns; r++) {
        int rc = 0;
        fill(out, C.size, id, r);
        int64_t t0 = echo_now_ns();
        const char *failed = round_trip(fd, out, in, &rc);
        t1 = echo_now_ns();
        if (!failed && memcmp(in, out, (size_t)C.size) != 0)
            failed = "the echo differs from what was sent";
        if (failed) {
            conn_error(id, failed, rc);
            return;
        }
        atomic_fetch_add_explicit(&C.hist[hist_index((uint64_t)(t1 - t0))], 1,
                                  memory_order_relaxed);
        atomic_fetch_add_explicit(&C.done_requests, 1, memory_order_relaxed);
    }
}

static void conn_main(void *arg)
{
    int id = (int)(intptr_t)arg, one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = fd < 0 ? -errno : sl_connect(fd, (struct sockaddr *)&C.addr, sizeof C.addr);
    void *msg;
    if (rc < 0)
        conn_error(id, fd < 0 ? "socket" : "connect", rc);
    else
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sl_channel_send(C.ready, (void *)(intptr_t)rc);
    if (rc == 0 && sl_channel_receive(C.go, &msg) == 0) {
        unsigned char *buf = malloc(3 * (size_t)C.size);
        if (buf)
            load(id, fd, buf, buf + C.size);
        else
            conn_error(id, "malloc", SL_ENOMEM);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    if (rc == 0)
        sl_channel_send(C.done, NULL);
}

/* ---- main --------------------------------------------------------------- */

static void parse_flags(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},    {"conns", required_argument, NULL, 'c'},
        {"requests", required_argument, NULL, 'r'}, {"seconds", required_argument, NULL, 's'},
        {"size", required_argument, NULL, 'z'},    {"batch", required_argument, NULL, 'b'},
        {"workers", required_argument, NULL, 'w'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *p = "echo_client";
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': C.port = (int)args_num(p, "--port", optarg, 1, 65535, usage); break;
        case 'c': C.conns = (int)args_num(p, "--conns", optarg, 1, 1 << 20, usage); break;
        case 'r': C.requests = args_num(p, "--requests", optarg, 1, INT64_MAX, usage); break;
        case 's': C.seconds = args_num(p, "--seconds", optarg, 1, 86400, usage); break;
        case 'z': C.size = (int)args_num(p, "--size", optarg, 1, MAX_SIZE, usage); break;
        case 'b': C.batch = (int)args_num(p, "--batch", optarg, 1, 1 << 20, usage); break;
        case 'w': C.workers = (int)args_num(p, "--workers", optarg, 1, 127, usage); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    const char *bad = optind < argc ? "unexpected argument"
                      : !C.port ? "--port is required"
                      : C.requests && C.seconds ? "--requests and --seconds exclude each other"
                      : NULL;
    if (bad) {
        fprintf(stderr, "echo_client: %s%s%s\n", bad, optind < argc ? " " : "",
                optind < argc ? argv[optind] : "");
        usage(stderr);
        exit(2);
    }
    if (!C.seconds && !C.requests)
        C.requests = 100;
}

/* CPU time (user + system) of the whole process so far, in seconds. */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* Receives one connect result; counts it into *up. */
static int take_ready(int *up)
{
    void *msg;
    int rc = sl_channel_receive(C.ready, &msg);
    if (rc == 0 && (intptr_t)msg == 0)
        (*up)++;
    return rc;
}

static int run(void)
{
    int up = 0, inflight = 0, rc = 0;
    int64_t c0 = echo_now_ns();
    for (int i = 0; i < C.conns; i++) {
        if (inflight == C.batch) {
            if ((rc = take_ready(&up)) < 0)
                break;
            inflight--;
        }
        if (!sl_spawn(conn_main, (void *)(intptr_t)i)) {
            conn_error(i, "sl_spawn", SL_ENOMEM);
            break;
        }
        inflight++;
    }
    for (; inflight > 0 && rc == 0; inflight--)
        rc = take_ready(&up);
    int64_t t0 = echo_now_ns();
    double cpu0 = cpu_now();
    C.deadline_ns = t0 + C.seconds * 1000000000;
    for (int i = 0; i < up && rc == 0; i++)
        rc = sl_channel_send(C.go, NULL);
    for (int i = 0; i < up && rc == 0; i++)
        rc = sl_channel_receive(C.done, NULL);
    int64_t t1 = echo_now_ns();
    double cpu = cpu_now() - cpu0;
    if (rc < 0) {
        fprintf(stderr, "echo_client: main's channel call: %s\n", sl_strerror(rc));
        return 1;
    }
    if ((rc = sl_run()) < 0 || sl_getlivecount() != 0) {
        fprintf(stderr, "echo_client: sl_run: %s, %d tasklets alive\n", sl_strerror(rc),
                sl_getlivecount());
        return 1;
    }

    uint64_t n = (uint64_t)atomic_load(&C.done_requests);
    double secs = (double)(t1 - t0) * 1e-9;
    int64_t errors = atomic_load(&C.errors);
    printf("conns=%d requests=%" PRIu64 " seconds=%.3f rps=%.0f p50_us=%.1f p99_us=%.1f "
           "p999_us=%.1f errors=%" PRId64 " size=%d workers=%d connect_seconds=%.3f "
           "cpu_seconds=%.3f\n",
           C.conns, n, secs, secs > 0 ? (double)n / secs : 0.0, hist_quantile(0.5, n),
           hist_quantile(0.99, n), hist_quantile(0.999, n), errors, C.size, C.workers,
           (double)(t0 - c0) * 1e-9, cpu);
    return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    int rc;

    parse_flags(argc, argv);
    if (echo_raise_nofile("echo_client", (uint64_t)C.conns + ECHO_FD_SLACK) < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    C.addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)C.port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if ((rc = echo_tasklets_start("echo_client", C.workers)) != 0)
        return rc;
    int status = 1;
    if ((C.ready = sl_channel_new()) && (C.go = sl_channel_new()) && (C.done = sl_channel_new()))
        status = run();
    else
        fprintf(stderr, "echo_client: out of memory for channels\n");
    sl_channel_free(C.ready);
    sl_channel_free(C.go);
    sl_channel_free(C.done);
    if ((rc = sl_shutdown()) < 0) {
        fprintf(stderr, "echo_client: sl_shutdown: %s\n", sl_strerror(rc));
        status = 1;
    }
    return status;
}
