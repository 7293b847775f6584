/* echo_common.c - the echo servers' shared half (options, registry, echo
 * loop, stop, last line) and the helpers the client uses too; see echo.h. */
#define _GNU_SOURCE
#include "args.h"
#include "echo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_CONNS 65536

static const char *usage_prog = "echo_server";
static bool usage_workers;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s [options]\n"
            "  --port N               listen on 127.0.0.1:N; 0 (default) picks a free\n"
            "                         port. The first line printed is port=N\n",
            usage_prog);
    fprintf(out, usage_workers ? "  --workers N            OS threads running tasklets (default 1)\n"
                               : "  --workers 1            the only value: a thread per connection\n");
    fprintf(out,
            "  --max-conns N          connections open at once; more are closed at once\n"
            "                         (default %d, or what RLIMIT_NOFILE's hard limit\n"
            "                         allows if lower)\n"
            "  --exit-after-conns N   stop once N connections have closed (default 0:\n"
            "                         only on SIGINT or SIGTERM)\n"
            "  --help                 print this and exit\n"
            "The last line is key=value pairs: mode workers conns_served peak_conns\n"
            "refused errors bytes seconds cpu_seconds (user + system, all threads)\n"
            "rss_mib (peak, VmHWM) stop. Exit status: 0 ok, 1 failure, 2 bad usage.\n",
            DEFAULT_MAX_CONNS);
}

int64_t echo_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

long echo_peak_rss_kib(void)
{
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

int echo_raise_nofile(const char *prog, uint64_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        int err = errno;
        fprintf(stderr, "%s: getrlimit(RLIMIT_NOFILE): %s\n", prog, strerror(err));
        return -err;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= want)
        return 0;
    rlim_t hard = rl.rlim_max;
    rl.rlim_cur = want;
    if (hard != RLIM_INFINITY && hard < want)
        rl.rlim_max = want; /* needs CAP_SYS_RESOURCE, and want <= nr_open */
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        int err = errno;
        fprintf(stderr,
                "%s: need %" PRIu64 " file descriptors, but RLIMIT_NOFILE's hard limit is "
                "%llu and raising it failed (%s): raise it (ulimit -Hn, as root) or ask for "
                "fewer connections\n",
                prog, want, (unsigned long long)hard, strerror(err));
        return -err;
    }
    return 0;
}

/* The thread that takes SIGINT and SIGTERM (blocked everywhere else). */
static void *signal_main(void *arg)
{
    echo_server *s = arg;
    sigset_t set;
    int sig;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigwait(&set, &sig) == 0) {
        atomic_store(&s->stop_cause, sig);
        echo_server_stop(s);
    }
    return NULL;
}

static void die(const char *prog, const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
    exit(1);
}

static void parse_server_flags(echo_server *s, int argc, char **argv, bool many_workers)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"workers", required_argument, NULL, 'w'},
        {"max-conns", required_argument, NULL, 'm'},
        {"exit-after-conns", required_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': s->port = (int)args_num(s->prog, "--port", optarg, 0, 65535, usage); break;
        case 'w':
            s->workers = (int)args_num(s->prog, "--workers", optarg, 1, many_workers ? 127 : 1,
                                       usage);
            break;
        case 'm': s->max_conns = args_num(s->prog, "--max-conns", optarg, 1, 1 << 20, usage); break;
        case 'x': s->exit_after = args_num(s->prog, "--exit-after-conns", optarg, 0, INT64_MAX, usage); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", s->prog, argv[optind]);
        usage(stderr);
        exit(2);
    }
}

/* --max-conns given: the descriptor limit must be raised to fit it, or we
 * fail. Not given: as many as the hard limit allows, up to the default. */
static void fit_nofile(echo_server *s)
{
    if (s->max_conns == 0) {
        struct rlimit rl;
        s->max_conns = DEFAULT_MAX_CONNS;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
            rl.rlim_max < (rlim_t)(DEFAULT_MAX_CONNS + ECHO_FD_SLACK))
            s->max_conns = rl.rlim_max > 2 * ECHO_FD_SLACK ? (int64_t)rl.rlim_max - ECHO_FD_SLACK
                                                           : ECHO_FD_SLACK;
    }
    if (echo_raise_nofile(s->prog, (uint64_t)s->max_conns + ECHO_FD_SLACK) < 0)
        exit(1);
}

static void listen_loopback(echo_server *s, bool nonblock)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int one = 1;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (s->lfd < 0)
        die(s->prog, "socket");
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) < 0)
        die(s->prog, "bind 127.0.0.1");
    if (listen(s->lfd, ECHO_BACKLOG) < 0)
        die(s->prog, "listen");
    if (getsockname(s->lfd, (struct sockaddr *)&a, &alen) < 0)
        die(s->prog, "getsockname");
    s->port = ntohs(a.sin_port);
    printf("port=%d\n", s->port);
    fflush(stdout);
}

void echo_server_start(echo_server *s, const char *prog, int argc, char **argv,
                       bool many_workers, bool nonblock)
{
    memset(s, 0, sizeof *s);
    s->prog = usage_prog = prog;
    usage_workers = many_workers;
    s->workers = 1;
    s->conns.prev = s->conns.next = &s->conns;
    pthread_mutex_init(&s->mu, NULL);
    parse_server_flags(s, argc, argv, many_workers);
    fit_nofile(s);

    /* Before any thread exists, so that every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN); /* a write to a reset peer fails with EPIPE */
    int rc = pthread_create(&s->sig_thread, NULL, signal_main, s);
    if (rc != 0) {
        errno = rc;
        die(prog, "pthread_create (signal thread)");
    }
    listen_loopback(s, nonblock);
    s->t0_ns = echo_now_ns();
}

bool echo_conn_open(echo_server *s, echo_conn *c)
{
    int one = 1;
    bool ok;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_mutex_lock(&s->mu);
    ok = !atomic_load(&s->stopping) && s->open < s->max_conns;
    if (ok) {
        c->next = &s->conns;
        c->prev = s->conns.prev;
        c->prev->next = c;
        s->conns.prev = c;
        if (++s->open > s->peak_open)
            s->peak_open = s->open;
    }
    pthread_mutex_unlock(&s->mu);
    if (!ok) {
        close(c->fd);
        atomic_fetch_add(&s->refused, 1);
    }
    return ok;
}

void echo_serve(echo_server *s, echo_conn *c, char *buf, echo_read_fn rd, echo_write_fn wr)
{
    int64_t echoed = 0;
    bool failed = false;
    for (;;) {
        ssize_t n = rd(c->fd, buf, ECHO_BUF);
        if (n <= 0) {
            failed = n < 0;
            break;
        }
        for (ssize_t off = 0, w; off < n; off += w) {
            if ((w = wr(c->fd, buf + off, (size_t)(n - off))) <= 0) {
                failed = true;
                goto out;
            }
        }
        echoed += n;
    }
out:
    atomic_fetch_add(&s->bytes, echoed);
    if (failed)
        atomic_fetch_add(&s->errors, 1);
    pthread_mutex_lock(&s->mu);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    s->open--;
    pthread_mutex_unlock(&s->mu);
    close(c->fd);
    if (atomic_fetch_add(&s->served, 1) + 1 == s->exit_after)
        echo_server_stop(s);
}

bool echo_accept_failed(echo_server *s, int err, const char *msg, bool *backoff)
{
    static atomic_int warned;
    *backoff = false;
    if (atomic_load(&s->stopping))
        return false;
    switch (err) {
    case ECONNABORTED: case EINTR: case EPROTO: case ENETDOWN: case ENOPROTOOPT:
    case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
        return true; /* this connection's trouble, not the listener's (accept(2)) */
    case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM:
        if (!atomic_exchange(&warned, 1))
            fprintf(stderr, "%s: accept: %s; pausing the acceptor (said once)\n", s->prog, msg);
        *backoff = true;
        return true;
    default:
        fprintf(stderr, "%s: accept: %s; stopping\n", s->prog, msg);
        atomic_store(&s->stop_cause, -1);
        echo_server_stop(s);
        return false;
    }
}

void echo_server_stop(echo_server *s)
{
    if (!atomic_exchange(&s->stopping, 1))
        shutdown(s->lfd, SHUT_RD); /* wakes the accept: it fails with EINVAL */
}

void echo_server_drop(echo_server *s)
{
    pthread_mutex_lock(&s->mu);
    for (echo_conn *c = s->conns.next; c != &s->conns; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->mu);
}

int echo_server_finish(echo_server *s, const char *mode)
{
    int status = 0;
    pthread_cancel(s->sig_thread); /* it may have ended after a signal */
    pthread_join(s->sig_thread, NULL);
    close(s->lfd);
    if (s->open != 0) {
        fprintf(stderr, "%s: %" PRId64 " connections still open at the end\n", s->prog, s->open);
        status = 1;
    }
    int cause = atomic_load(&s->stop_cause);
    if (cause < 0)
        status = 1;
    struct rusage ru; /* every thread's, the joined ones included */
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
    printf("mode=%s workers=%d conns_served=%" PRId64 " peak_conns=%" PRId64 " refused=%" PRId64
           " errors=%" PRId64 " bytes=%" PRId64 " seconds=%.3f cpu_seconds=%.3f rss_mib=%.1f"
           " stop=%s\n",
           mode, s->workers, (int64_t)atomic_load(&s->served), s->peak_open,
           (int64_t)atomic_load(&s->refused), (int64_t)atomic_load(&s->errors),
           (int64_t)atomic_load(&s->bytes), (double)(echo_now_ns() - s->t0_ns) * 1e-9, cpu,
           (double)echo_peak_rss_kib() / 1024.0,
           cause == SIGINT ? "SIGINT" : cause == SIGTERM ? "SIGTERM"
           : cause < 0 ? "accept-error" : "exit-after-conns");
    fflush(stdout);
    pthread_mutex_destroy(&s->mu);
    return status;
}
