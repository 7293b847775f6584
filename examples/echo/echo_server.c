/* echo_server.c - a TCP echo server with a tasklet per connection, all on
 * one worker (OS thread) by default.
 *
 * The acceptor tasklet parks in sl_accept; each connection it accepts gets
 * a tasklet that reads with sl_read (which parks until the peer sends),
 * writes the bytes back with sl_write and reads again. A request costs the
 * read and the write: the runtime keeps each socket registered with epoll
 * between waits, and it knows the socket is empty after a short read, so
 * the next sl_read parks without trying first (docs/io.md). While every
 * tasklet is parked the worker sleeps in epoll. A connection costs its 16 KiB stack
 * (the smallest the runtime gives; the echo loop touches its top pages
 * only), its 144-byte control block and a buffer of ECHO_BUF bytes on that
 * stack, which is what lets 10,000 connections fit in well under 200 MiB
 * (43 MiB of peak RSS, README.md).
 *
 * Usage: echo_server [--port N] [--workers N] [--max-conns N]
 *                    [--exit-after-conns N]
 * First line: port=N. Last line: mode=tasklet workers=... conns_served=...
 * peak_conns=... rss_mib=... (see echo.h; echo_pthread is the same server
 * with a thread per connection). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <stackless.h>

#include "echo.h"
#include "echo_tasklet.h"

static echo_server S;

static void conn_main(void *arg)
{
    echo_conn c = {.fd = (int)(intptr_t)arg};
    char buf[ECHO_BUF];
    if (echo_conn_open(&S, &c))
        echo_serve(&S, &c, buf, sl_read, sl_write);
}

static void acceptor_main(void *arg)
{
    (void)arg;
    bool backoff, warned = false;
    for (;;) {
        int fd = sl_accept(S.lfd, NULL, NULL);
        if (fd >= 0) {
            if (!sl_spawn(conn_main, (void *)(intptr_t)fd)) {
                if (!warned)
                    fprintf(stderr, "echo_server: sl_spawn failed: refusing connections "
                                    "until it works again (said once)\n");
                warned = true;
                close(fd);
                atomic_fetch_add(&S.refused, 1);
            }
        } else if (!echo_accept_failed(&S, -fd, sl_strerror(fd), &backoff)) {
            break;
        } else if (backoff) {
            sl_sleep_ms(10);
        }
    }
    echo_server_drop(&S);
}

int main(int argc, char **argv)
{
    int rc;

    echo_server_start(&S, "echo_server", argc, argv, true, true);
    if ((rc = echo_tasklets_start("echo_server", S.workers)) != 0)
        return rc;
    if (!sl_spawn(acceptor_main, NULL)) {
        fprintf(stderr, "echo_server: cannot spawn the acceptor\n");
        return 1;
    }
    if ((rc = sl_run()) < 0) {
        fprintf(stderr, "echo_server: sl_run: %s\n", sl_strerror(rc));
        return 1;
    }
    int status = 0;
    if (sl_getlivecount() != 0) {
        fprintf(stderr, "echo_server: %d tasklets alive after sl_run\n", sl_getlivecount());
        sl_dump(stderr);
        status = 1;
    }
    if ((rc = sl_shutdown()) < 0) {
        fprintf(stderr, "echo_server: sl_shutdown: %s\n", sl_strerror(rc));
        status = 1;
    }
    rc = echo_server_finish(&S, "tasklet");
    return status ? status : rc;
}
