/* echo_pthread.c - the echo server with an OS thread per connection and
 * blocking sockets: the opponent echo_server is measured against.
 *
 * The main thread blocks in accept(2) and starts a thread per connection,
 * which blocks in read(2) and write(2) and runs the very echo loop the
 * tasklet server runs (echo_serve in echo_common.c). To be a fair opponent
 * each thread gets what hackysack's threads get, a 64 KiB stack, and the
 * same ECHO_BUF buffer on it. Finished threads put themselves on a list
 * that the main thread joins between accepts, so no thread outlives the
 * program.
 *
 * Usage: echo_pthread [--port N] [--workers 1] [--max-conns N]
 *                     [--exit-after-conns N]
 * Prints what echo_server prints, with mode=pthread. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "echo.h"
#include "thread_stack.h"

typedef struct tconn {
    echo_conn c;
    pthread_t thread;     /* written by pthread_create, read by reap only */
    struct tconn *next;   /* G.done, under G.mu */
} tconn;

static echo_server S;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t done_cv; /* signalled when a thread joins G.done */
    tconn *done;            /* finished threads, not yet joined */
    int64_t threads;        /* started and not yet joined (main only) */
} G = {.mu = PTHREAD_MUTEX_INITIALIZER, .done_cv = PTHREAD_COND_INITIALIZER};

static void *conn_main(void *arg)
{
    tconn *t = arg;
    char buf[ECHO_BUF];
    if (echo_conn_open(&S, &t->c))
        echo_serve(&S, &t->c, buf, read, write);
    pthread_mutex_lock(&G.mu);
    t->next = G.done;
    G.done = t;
    pthread_cond_signal(&G.done_cv);
    pthread_mutex_unlock(&G.mu);
    return NULL;
}

/* Joins every finished thread; with wait, first waits for one to finish. */
static void reap(bool wait)
{
    pthread_mutex_lock(&G.mu);
    while (wait && !G.done)
        pthread_cond_wait(&G.done_cv, &G.mu);
    tconn *t = G.done;
    G.done = NULL;
    pthread_mutex_unlock(&G.mu);
    while (t) {
        tconn *next = t->next;
        pthread_join(t->thread, NULL);
        free(t);
        G.threads--;
        t = next;
    }
}

/* Serves fd on a new thread; refuses it when no thread can be had. */
static void start_conn(int fd, const pthread_attr_t *attr)
{
    static bool warned;
    tconn *t = malloc(sizeof *t);
    int rc = ENOMEM;
    if (t) {
        t->c.fd = fd;
        rc = pthread_create(&t->thread, attr, conn_main, t);
    }
    if (rc == 0) {
        G.threads++;
        return;
    }
    if (!warned)
        fprintf(stderr, "echo_pthread: no thread for a connection (%s): refusing until "
                        "there is (said once)\n", strerror(rc));
    warned = true;
    free(t);
    close(fd);
    atomic_fetch_add(&S.refused, 1);
}

int main(int argc, char **argv)
{
    pthread_attr_t attr;
    bool backoff;

    echo_server_start(&S, "echo_pthread", argc, argv, false, false);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, thread_stack_size());
    for (;;) {
        reap(false);
        int fd = accept4(S.lfd, NULL, NULL, SOCK_CLOEXEC), err = errno;
        if (fd >= 0)
            start_conn(fd, &attr);
        else if (!echo_accept_failed(&S, err, strerror(err), &backoff))
            break;
        else if (backoff)
            usleep(10 * 1000);
    }
    echo_server_drop(&S);
    while (G.threads > 0)
        reap(true);
    pthread_attr_destroy(&attr);
    return echo_server_finish(&S, "pthread");
}
