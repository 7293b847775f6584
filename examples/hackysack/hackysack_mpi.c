/* hackysack_mpi.c - the hackysack game with its players spread over the
 * ranks of an MPI job (--mode mpi, under mpirun -np P): the ball crosses
 * ranks on sl_mpi_chans (libstackless_mpi, docs/distributed.md).
 *
 * The same game as --mode process (hackysack_process.c), with ranks for
 * processes: player i lives on rank i % P, as a tasklet with its own
 * sl_channel; each rank runs a router tasklet that receives on the rank's
 * inbox, a channel homed on it, and hands a ball to the local player it
 * is for. A player kicking to a player of its own rank sends on that
 * player's channel; to another rank, on that rank's inbox. The score
 * (kicks, balls received, trace) travels with the ball, and only the ball
 * holder draws from its own generator, so the game is the same, kick for
 * kick, as in every other mode (same trace for the same seed).
 *
 * Rank 0 starts the game once every rank has spawned its players, sends
 * the ball to player 0, and collects each rank's report: how many of its
 * players exited, and the final score from the rank where the game ended.
 * It prints the result line, with procs= the number of ranks; the other
 * ranks print nothing. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stackless_mpi.h>

#include "hackysack.h"

enum { MSG_BALL = 1, MSG_EXIT = 2 };
/* Channel keys: every rank's inbox, and rank 0's two collection points. */
enum { K_INBOX = 1, K_READY = 2, K_REPORT = 3 };

/* What crosses ranks (and what the router hands a local player). */
typedef struct hs_msg {
    uint32_t kind;
    uint32_t to;        /* BALL: the receiver; EXIT: the player who ended */
    uint64_t kicks, received, trace;
} hs_msg;

/* A rank's report to rank 0. */
typedef struct rank_out {
    uint64_t exited;    /* local players that exited */
    uint64_t ended;     /* 1: the game ended on this rank */
    uint64_t kicks, received, trace;
    int32_t err;
    uint32_t err_player;
} rank_out;

typedef struct lplayer {
    sl_channel *ch;
    uint64_t rng;
    uint32_t id;
} lplayer;

/* This rank's share of the game. */
static struct {
    uint32_t P, k, players;
    sl_mpi_chan **inbox;  /* every rank's; inbox[k] is homed here */
    lplayer *p;           /* local players: p[i / P] is player i */
    uint32_t nlocal, spawned;
    hs_score s;           /* valid while the ball is on this rank */
    hs_msg ball, exit;    /* what a local channel carries */
    atomic_uint exited;
    int err;
    uint32_t err_player;
    rank_out out;
    sl_event done;        /* the router has finished */
} L;

static void local_error(uint32_t id, int rc)
{
    if (L.err == 0) {
        L.err = rc;
        L.err_player = id;
    }
}

/* Hand the ball (the score packed with it) to player `to`. */
static int pass(uint32_t to)
{
    if (to % L.P == L.k)
        return sl_channel_send(L.p[to / L.P].ch, &L.ball);
    hs_msg m = {MSG_BALL, to, L.s.kicks, L.s.received, L.s.trace};
    return sl_mpi_chan_send(L.inbox[to % L.P], &m, sizeof m);
}

static void player_main(void *arg)
{
    lplayer *me = arg;
    for (;;) {
        void *msg;
        int rc = sl_channel_receive(me->ch, &msg);
        if (rc < 0) {
            local_error(me->id, rc);
            break;
        }
        if (msg == &L.exit)
            break;
        uint32_t to = hs_kick(&L.s, &me->rng, me->id);
        if (to == UINT32_MAX) { /* the last kick: everybody exits */
            hs_msg m = {MSG_EXIT, me->id, L.s.kicks, L.s.received, L.s.trace};
            for (uint32_t k = 0; k < L.P && rc == 0; k++)
                rc = sl_mpi_chan_send(L.inbox[k], &m, sizeof m);
            if (rc < 0)
                local_error(me->id, rc);
            break;
        }
        if ((rc = pass(to)) < 0) {
            local_error(me->id, rc);
            break;
        }
    }
    atomic_fetch_add(&L.exited, 1);
}

/* Routes the inbox to the local players until the game is over. */
static void router(void *arg)
{
    (void)arg;
    for (;;) {
        hs_msg m;
        size_t len = sizeof m;
        int rc = sl_mpi_chan_receive(L.inbox[L.k], &m, &len);
        if (rc < 0 || len != sizeof m) {
            local_error(UINT32_MAX, rc < 0 ? rc : SL_EINVAL);
            break;
        }
        if (m.kind == MSG_BALL) {
            L.s.kicks = m.kicks;
            L.s.received = m.received;
            L.s.trace = m.trace;
            if (m.to >= L.players || m.to % L.P != L.k ||
                (rc = sl_channel_send(L.p[m.to / L.P].ch, &L.ball)) < 0) {
                local_error(m.to, rc < 0 ? rc : SL_EINVAL);
                break;
            }
            continue;
        }
        /* Exit: the final score, and who ended it (already gone). */
        if (m.to < L.players && m.to % L.P == L.k) {
            L.out.ended = 1;
            L.out.kicks = m.kicks;
            L.out.received = m.received;
            L.out.trace = m.trace;
        }
        for (uint32_t j = 0; j < L.spawned; j++)
            if (L.p[j].id != m.to && (rc = sl_channel_send(L.p[j].ch, &L.exit)) < 0)
                local_error(L.p[j].id, rc);
        break;
    }
    /* Every local player gone (they exit on their next run). */
    while (atomic_load(&L.exited) < L.spawned && L.err == 0)
        sl_schedule();
    sl_event_set(&L.done);
}

/* Spawns this rank's players and its router; 0 or the first error. */
static int spawn_share(const hs_options *o)
{
    L.nlocal = L.players / L.P + (L.k < L.players % L.P);
    L.p = calloc(L.nlocal ? L.nlocal : 1, sizeof *L.p);
    if (!L.p)
        return SL_ENOMEM;
    for (uint32_t j = 0; j < L.nlocal; j++) {
        lplayer *p = &L.p[j];
        p->id = j * L.P + L.k;
        p->rng = hs_rng_seed(o->seed, p->id);
        if (!(p->ch = sl_channel_new()))
            return SL_ENOMEM;
        if (o->preference != -1)
            sl_channel_set_preference(p->ch, o->preference);
        if (!sl_spawn(player_main, p)) {
            sl_channel_free(p->ch);
            return SL_ENOMEM;
        }
        L.spawned++;
    }
    return sl_spawn(router, NULL) ? 0 : SL_ENOMEM;
}

static int game(hs_options *o, hs_result *r)
{
    int status = 0, rc;
    sl_mpi_chan *ready = NULL, *report = NULL;
    L.P = (uint32_t)sl_mpi_size();
    L.k = (uint32_t)sl_mpi_rank();
    L.players = o->players;
    o->procs = (int)L.P;
    hs_score_init(&L.s, o->players, o->kicks, o->verbose);
    L.ball.kind = MSG_BALL;
    L.exit.kind = MSG_EXIT;
    sl_event_init(&L.done);
    double t0 = hs_now();
    if (!(L.inbox = calloc(L.P, sizeof *L.inbox)))
        return 1;
    for (uint32_t k = 0; k < L.P; k++)
        if ((rc = sl_mpi_chan_open((int)k, K_INBOX, &L.inbox[k])) < 0) {
            fprintf(stderr, "hackysack: rank %u: sl_mpi_chan_open: %s\n", L.k, sl_strerror(rc));
            return 1;
        }
    if ((rc = sl_mpi_chan_open(0, K_READY, &ready)) < 0 ||
        (rc = sl_mpi_chan_open(0, K_REPORT, &report)) < 0) {
        fprintf(stderr, "hackysack: rank %u: sl_mpi_chan_open: %s\n", L.k, sl_strerror(rc));
        return 1;
    }
    int32_t spawned = spawn_share(o);
    if (L.k != 0) {
        /* Say whether we are ready, wait for the game to end, report. */
        if ((rc = sl_mpi_chan_send(ready, &spawned, sizeof spawned)) < 0)
            local_error(UINT32_MAX, rc);
    } else {
        bool all_ready = spawned == 0;
        for (uint32_t k = 1; k < L.P; k++) {
            int32_t v = 0;
            size_t len = sizeof v;
            if ((rc = sl_mpi_chan_receive(ready, &v, &len)) < 0 || v < 0) {
                fprintf(stderr, "hackysack: a rank could not spawn its players: %s\n",
                        sl_strerror(rc < 0 ? rc : v));
                all_ready = false;
            }
        }
        double t1 = hs_now();
        r->spawn_seconds = t1 - t0;
        hs_msg first = {MSG_BALL, 0, 0, 0, HS_TRACE_INIT};
        hs_msg stop = {MSG_EXIT, UINT32_MAX, 0, 0, 0};
        if (all_ready) {
            if ((rc = sl_mpi_chan_send(L.inbox[0], &first, sizeof first)) < 0)
                local_error(UINT32_MAX, rc);
        } else {
            for (uint32_t k = 0; k < L.P; k++)
                sl_mpi_chan_send(L.inbox[k], &stop, sizeof stop);
            status = 1;
        }
    }
    sl_event_wait(&L.done, -1);
    L.out.exited = atomic_load(&L.exited);
    L.out.err = L.err;
    L.out.err_player = L.err_player;
    if (L.k != 0) {
        if ((rc = sl_mpi_chan_send(report, &L.out, sizeof L.out)) < 0)
            fprintf(stderr, "hackysack: rank %u: report: %s\n", L.k, sl_strerror(rc));
        status = L.err ? 1 : 0;
    } else {
        uint64_t exited = 0, ended = 0;
        for (uint32_t k = 0; k < L.P; k++) {
            rank_out ro = L.out;
            size_t len = sizeof ro;
            if (k > 0 && ((rc = sl_mpi_chan_receive(report, &ro, &len)) < 0 || len != sizeof ro)) {
                fprintf(stderr, "hackysack: a rank's report: %s\n",
                        sl_strerror(rc < 0 ? rc : SL_EINVAL));
                status = 1;
                continue;
            }
            if (ro.err) {
                fprintf(stderr, "hackysack: player %u: %s\n", ro.err_player, sl_strerror(ro.err));
                status = 1;
            }
            exited += ro.exited;
            if (ro.ended) {
                ended++;
                r->kicks = ro.kicks;
                r->received = ro.received;
                r->trace = ro.trace;
            }
        }
        r->game_seconds = hs_now() - t0 - r->spawn_seconds;
        if (status == 0 && (exited != o->players || ended != 1)) {
            fprintf(stderr, "hackysack: %" PRIu64 " of %u players exited, %" PRIu64
                            " ranks saw the end (want 1)\n", exited, o->players, ended);
            status = 1;
        }
    }
    for (uint32_t j = 0; j < L.spawned; j++)
        sl_channel_free(L.p[j].ch);
    free(L.p);
    for (uint32_t k = 0; k < L.P; k++)
        sl_mpi_chan_free(L.inbox[k]);
    free(L.inbox);
    sl_mpi_chan_free(ready);
    sl_mpi_chan_free(report);
    sl_event_destroy(&L.done);
    fflush(stdout);
    return status;
}

int hs_play_mpi(hs_options *o, hs_result *r, int *argc, char ***argv)
{
    sl_config cfg;
    sl_config_init(&cfg);
    cfg.workers = o->workers;
    int rc = sl_init(&cfg);
    if (rc < 0) {
        fprintf(stderr, "hackysack: sl_init(workers=%d): %s\n", o->workers, sl_strerror(rc));
        return rc == SL_EINVAL ? 2 : 1;
    }
    if ((rc = sl_mpi_init(argc, argv, NULL)) < 0) {
        fprintf(stderr, "hackysack: sl_mpi_init: %s\n", sl_strerror(rc));
        sl_shutdown();
        return 1;
    }
    int status = sl_mpi_size() < 2 ? 2 : 0;
    if (status)
        fprintf(stderr, "hackysack: --mode mpi wants at least 2 ranks (mpirun -np 4)\n");
    else
        status = game(o, r);
    r->quiet = sl_mpi_rank() != 0;
    sl_mpi_finalize();
    sl_shutdown();
    return status;
}
