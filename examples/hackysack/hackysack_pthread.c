/* hackysack_pthread.c - the hackysack game with one OS thread per player, the
 * opponent the tasklet version is measured against.
 *
 * To be a fair opponent each player gets what a tasklet gets: a 64 KiB stack
 * (or the C library's minimum where that is larger: 128 KiB on aarch64)
 * and a rendezvous mailbox with channel semantics (the sender blocks until
 * the receiver has taken the value), built from one mutex and two condition
 * variables; nobody spins.
 *
 * One kernel default is not fair to it: since Linux 6.16 a process's private
 * futexes hash into a table of 4 x min(threads, CPUs) buckets, 16 on a 2-CPU
 * machine, and every wake walks its bucket, so with 10,000 waiting threads a
 * wake costs ~600 comparisons (10,000 players x 100,000 kicks took 40 s
 * instead of 4 s here). So the game first asks for a bucket per thread with
 * prctl(PR_FUTEX_HASH); kernels without it ignore the request. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "hackysack.h"
#include "thread_stack.h"

#ifndef PR_FUTEX_HASH /* Linux 6.16's <linux/prctl.h> */
#define PR_FUTEX_HASH 78
#define PR_FUTEX_HASH_SET_SLOTS 1
#define PR_FUTEX_HASH_GET_SLOTS 2
#endif

/* A rendezvous slot. Only its owner receives; anyone may send. */
typedef struct mailbox {
    pthread_mutex_t mu;
    pthread_cond_t full_cv;  /* receiver waits here for a message */
    pthread_cond_t taken_cv; /* senders wait here: slot free / value taken */
    void *msg;               /* valid while full */
    bool full;
    uint64_t put;            /* messages put in so far (under mu) */
    uint64_t taken;          /* messages taken out so far (under mu) */
} mailbox;

typedef struct tplayer {
    mailbox box;
    pthread_t thread;
    uint64_t rng; /* touched only by this player */
    uint32_t id;
} tplayer;

static char ball_token, exit_token;
#define MSG_BALL ((void *)&ball_token)
#define MSG_EXIT ((void *)&exit_token)

/* The game. kicks, received and trace are touched only by the ball holder;
 * the mailbox mutex hands them over with the ball. */
static struct {
    tplayer *p;
    hs_score s;
    pthread_mutex_t ready_mu; /* ready counts players that reached receive */
    pthread_cond_t ready_cv;
    uint32_t ready;
} G = {.ready_mu = PTHREAD_MUTEX_INITIALIZER, .ready_cv = PTHREAD_COND_INITIALIZER};

static void mailbox_init(mailbox *m)
{
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->full_cv, NULL);
    pthread_cond_init(&m->taken_cv, NULL);
    m->msg = NULL;
    m->full = false;
    m->put = m->taken = 0;
}

static void mailbox_destroy(mailbox *m)
{
    pthread_cond_destroy(&m->taken_cv);
    pthread_cond_destroy(&m->full_cv);
    pthread_mutex_destroy(&m->mu);
}

/* Returns once the receiver has taken msg, like a channel send. */
static void mailbox_send(mailbox *m, void *msg)
{
    pthread_mutex_lock(&m->mu);
    while (m->full)
        pthread_cond_wait(&m->taken_cv, &m->mu);
    m->msg = msg;
    m->full = true;
    uint64_t mine = ++m->put;
    pthread_cond_signal(&m->full_cv);
    while (m->taken < mine)
        pthread_cond_wait(&m->taken_cv, &m->mu);
    pthread_mutex_unlock(&m->mu);
}

static void *mailbox_receive(mailbox *m)
{
    pthread_mutex_lock(&m->mu);
    while (!m->full)
        pthread_cond_wait(&m->full_cv, &m->mu);
    void *msg = m->msg;
    m->full = false;
    m->taken++;
    /* Wakes the sender waiting for this value and any sender queued for
     * the slot; in this game there is at most one of them. */
    pthread_cond_broadcast(&m->taken_cv);
    pthread_mutex_unlock(&m->mu);
    return msg;
}

static void *player_main(void *arg)
{
    tplayer *me = arg;

    pthread_mutex_lock(&G.ready_mu);
    if (++G.ready == G.s.n)
        pthread_cond_signal(&G.ready_cv);
    pthread_mutex_unlock(&G.ready_mu);

    for (;;) {
        void *msg = mailbox_receive(&me->box);
        if (msg == MSG_EXIT)
            return NULL;
        uint32_t to = hs_kick(&G.s, &me->rng, me->id);
        if (to == UINT32_MAX) {
            for (uint32_t i = 0; i < G.s.n; i++)
                if (i != me->id)
                    mailbox_send(&G.p[i].box, MSG_EXIT);
            return NULL;
        }
        mailbox_send(&G.p[to].box, MSG_BALL);
    }
}

/* Asks for a private futex hash with at least one bucket per thread (a power
 * of two, as the kernel wants); falls back to the global hash (0). Returns
 * the buckets granted, 0 for the global hash, or -1 if the kernel has no
 * such knob. */
static long size_futex_hash(uint32_t threads)
{
    unsigned long slots = 16;
    while (slots < threads && slots < (1ul << 20))
        slots <<= 1;
    if (prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, slots, 0, 0) != 0 &&
        prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS, 0, 0, 0);
}

static const char *errno_name(int e)
{
    switch (e) {
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    default: return "other";
    }
}

int hs_play_pthread(const hs_options *o, hs_result *r)
{
    pthread_attr_t attr;
    int rc, status = 0;
    uint32_t created = 0;

    G.p = calloc(o->players, sizeof *G.p);
    if (!G.p) {
        fprintf(stderr, "hackysack: out of memory for %u players\n", o->players);
        return 1;
    }
    hs_score_init(&G.s, o->players, o->kicks, o->verbose);
    G.ready = 0;

    pthread_attr_init(&attr);
    size_t stack = thread_stack_size();
    if ((rc = pthread_attr_setstacksize(&attr, stack)) != 0) {
        fprintf(stderr, "hackysack: pthread_attr_setstacksize(%zu): %s\n",
                stack, strerror(rc));
        pthread_attr_destroy(&attr);
        free(G.p);
        return 1;
    }

    long buckets = size_futex_hash(G.s.n);
    if (buckets > 0)
        printf("hackysack: private futex hash of %ld buckets (prctl PR_FUTEX_HASH)\n", buckets);
    else if (buckets == 0)
        printf("hackysack: global futex hash (prctl PR_FUTEX_HASH)\n");
    double c0 = hs_cpu(), t0 = hs_now();
    for (; created < G.s.n; created++) {
        tplayer *p = &G.p[created];
        p->id = created;
        p->rng = hs_rng_seed(o->seed, created);
        mailbox_init(&p->box);
        rc = pthread_create(&p->thread, &attr, player_main, p);
        if (rc != 0) {
            mailbox_destroy(&p->box);
            fflush(stdout);
            fprintf(stderr,
                    "hackysack: pthread_create failed after %u of %u threads: %s\n",
                    created, G.s.n, strerror(rc));
            printf("mode=pthread players=%u kicks=%llu error=%s threads_created=%u\n",
                   G.s.n, (unsigned long long)o->kicks, errno_name(rc), created);
            status = 1;
            break;
        }
    }
    pthread_attr_destroy(&attr);

    if (status == 0) {
        pthread_mutex_lock(&G.ready_mu);
        while (G.ready < G.s.n)
            pthread_cond_wait(&G.ready_cv, &G.ready_mu);
        pthread_mutex_unlock(&G.ready_mu);
    }
    double t1 = hs_now(), c1 = hs_cpu();

    if (status == 0)
        mailbox_send(&G.p[0].box, MSG_BALL); /* kick-off */
    else
        for (uint32_t i = 0; i < created; i++) /* clean up: no game */
            mailbox_send(&G.p[i].box, MSG_EXIT);

    for (uint32_t i = 0; i < created; i++) {
        if ((rc = pthread_join(G.p[i].thread, NULL)) != 0) {
            fprintf(stderr, "hackysack: pthread_join(player %u): %s\n", i, strerror(rc));
            status = 1;
        }
    }
    double t2 = hs_now(), c2 = hs_cpu();

    for (uint32_t i = 0; i < created; i++)
        mailbox_destroy(&G.p[i].box);
    free(G.p);
    G.p = NULL;

    r->spawn_seconds = t1 - t0;
    r->game_seconds = t2 - t1;
    r->spawn_cpu = c1 - c0;
    r->game_cpu = c2 - c1;
    r->kicks = G.s.kicks;
    r->received = G.s.received;
    r->trace = G.s.trace;
    return status;
}
