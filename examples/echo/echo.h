/* echo.h - what the echo programs share: the servers' options, their
 * registry of open connections and how they stop, and the small system
 * helpers (descriptor limit, peak RSS, clock) the client uses too.
 *
 * The two servers, echo_server (a tasklet per connection) and echo_pthread
 * (a thread per connection), differ only in how they accept and how a
 * connection waits; the echo loop, the registry, the limits, the stop and
 * the last line are this file's, so the comparison measures the waiting
 * and nothing else.
 *
 * Stopping. SIGINT and SIGTERM are blocked in every thread (the mask is set
 * before any thread starts) and taken by one thread in sigwait(); it, or
 * the connection whose close reaches --exit-after-conns, calls
 * echo_server_stop(), which shuts the listening socket down: the parked or
 * blocked accept then fails with EINVAL (Linux), the acceptor sees
 * `stopping`, shuts every open connection down with echo_server_drop() so
 * each read returns 0, and the connections end by themselves. Nothing is
 * interrupted, so no call has to handle EINTR. */
#ifndef ECHO_H
#define ECHO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define ECHO_BACKLOG 4096 /* listen(2)'s queue; Linux caps it at somaxconn */
#define ECHO_BUF 1024     /* bytes a server reads at a time, per connection */
#define ECHO_FD_SLACK 64  /* descriptors beyond the connections: stdio,
                             the listener, epoll, the runtime's own      */

/* An open connection, in the server's registry while it is served. Lives
 * where its server keeps it (a tasklet's stack, a thread's block). */
typedef struct echo_conn {
    int fd;
    struct echo_conn *prev, *next; /* echo_server.conns, under mu */
} echo_conn;

typedef struct echo_server {
    const char *prog;      /* "echo_server" or "echo_pthread" */
    /* options, set by echo_server_start */
    int port;              /* --port; the bound port once listening */
    int workers;           /* --workers (tasklet server; 1 for threads) */
    int64_t max_conns;     /* --max-conns: open at once; more are refused */
    int64_t exit_after;    /* --exit-after-conns: stop after this many
                              closes; 0: never                           */
    int lfd;               /* the listening socket */

    pthread_mutex_t mu;    /* guards conns, open, peak_open; held for O(1)
                              list moves and shutdown(2) calls only, never
                              across a call that may park or block      */
    echo_conn conns;       /* circle of open connections (sentinel) */
    int64_t open, peak_open;

    atomic_int stopping;   /* set once by echo_server_stop */
    atomic_int stop_cause; /* why: the signal's number; 0 the
                              --exit-after-conns-th close; -1 an accept
                              error                                      */
    atomic_int_fast64_t served, refused, bytes;
    atomic_int_fast64_t errors; /* connections that ended on an error */
    int64_t t0_ns;         /* when listening began */
    pthread_t sig_thread;
} echo_server;

/* Parses the servers' flags (--port, --workers, --max-conns,
 * --exit-after-conns, --help; bad flags: usage on stderr, exit 2; --workers
 * above 1 only when many_workers), ignores SIGPIPE, blocks SIGINT/SIGTERM
 * and starts the thread that waits for them, raises RLIMIT_NOFILE for
 * max_conns, listens on 127.0.0.1:port (non-blocking if nonblock) and
 * prints `port=N`, flushed. Exits 1 with a message when the system
 * refuses. */
void echo_server_start(echo_server *s, const char *prog, int argc,
                       char **argv, bool many_workers, bool nonblock);

/* Adds c (c->fd set, a connected socket) to the registry: true. False
 * when max_conns are open or the server is stopping: c->fd is then closed
 * and the connection counted as refused. */
bool echo_conn_open(echo_server *s, echo_conn *c);

/* The echo loop: reads up to ECHO_BUF bytes into buf with rd and writes
 * them all back with wr, until end of file or an error; then takes c out
 * of the registry, closes it and stops the server if this close is the
 * --exit-after-conns-th. rd and wr return what read(2)/write(2) return, or
 * -errno (the tasklet calls do); any negative value ends the connection. */
typedef ssize_t (*echo_read_fn)(int fd, void *buf, size_t len);
typedef ssize_t (*echo_write_fn)(int fd, const void *buf, size_t len);
void echo_serve(echo_server *s, echo_conn *c, char *buf, echo_read_fn rd,
                echo_write_fn wr);

/* What the acceptor does after accept failed with err (an errno, or the
 * runtime's code negated), whose message is msg: true to accept again,
 * after a backoff of its own when *backoff is set (out of descriptors or
 * memory: said once on stderr); false to stop accepting (the server is
 * stopping, or err is reported on stderr and stops it). */
bool echo_accept_failed(echo_server *s, int err, const char *msg,
                        bool *backoff);

/* Starts the stop (idempotent, thread-safe, any thread). */
void echo_server_stop(echo_server *s);
/* Shuts every registered connection down (read and write) so that each
 * connection's next read returns 0. Called once by the acceptor when it
 * has stopped accepting. */
void echo_server_drop(echo_server *s);

/* Joins the signal thread, closes the listener, prints the last line
 * (mode=... conns_served=... rss_mib=...) and frees the registry. Returns
 * the exit status: 0, or 1 if connections are still registered or an
 * accept error stopped the server. */
int echo_server_finish(echo_server *s, const char *mode);

/* ---- helpers the client shares --------------------------------------- */

/* Raises RLIMIT_NOFILE (soft, and hard if need be) to at least want.
 * 0, or -errno with the reason printed on stderr as prog's. */
int echo_raise_nofile(const char *prog, uint64_t want);
/* Peak resident set (VmHWM of /proc/self/status) in KiB, -1 if unknown. */
long echo_peak_rss_kib(void);
/* The monotonic clock in nanoseconds. */
int64_t echo_now_ns(void);

#endif /* ECHO_H */
