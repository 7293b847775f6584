/* hackysack_process.c - the hackysack game with its players spread over P
 * worker processes of a process pool (--mode process --procs P).
 *
 * Player i lives in process i % P. Each process runs one long task of the
 * pool, which spawns its players as tasklets (each with its own sl_channel,
 * as in tasklet mode) and then acts as the process's router: it receives
 * messages on the process's inbox, an sl_mpchan, and hands a ball to the
 * local player it is for. A player kicking to a player of its own process
 * sends on that player's channel; to another process, on that process's
 * inbox. There is one ball, so at most one message is ever in flight.
 *
 * The score (kicks, balls received, trace) travels with the ball: the
 * holder's process keeps it while the ball stays there and packs it into
 * the message when the ball leaves. Each player's generator lives in its
 * own process and only the ball holder draws, so the game is the same,
 * kick for kick, as in the other modes (same trace for the same seed).
 *
 * The player making the last kick sends "exit" (with the final score) to
 * every inbox, its own included; each router tells its local players to
 * exit, waits until they have, and returns how many did, and the final
 * score if the game ended in its process. The parent checks that every
 * player exited and that exactly one process reported the end. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stackless.h>

#include "hackysack.h"

enum { MSG_BALL = 1, MSG_EXIT = 2 };

/* What crosses processes (and what a router hands a local player). */
typedef struct hs_msg {
    uint32_t kind;
    uint32_t to;        /* BALL: the receiver; EXIT: the player who ended */
    uint64_t kicks, received, trace;
} hs_msg;

/* A task's input: which process of the game it is, and the shared bits. */
typedef struct proc_in {
    uint32_t k;
    uint32_t procs;
    uint32_t players;
    uint32_t pad;
    uint64_t kicks, seed;
    sl_mpchan *ready;  /* each process says it has spawned its players  */
    int preference;
    bool verbose;
    /* The P inboxes. They live in the shared mapping, so their addresses
     * hold in every process; the array is carried in the task's input
     * (memory the parent allocates after the fork is not in a worker). */
    sl_mpchan *inbox[];
} proc_in;

/* A task's result. */
typedef struct proc_out {
    uint64_t exited;   /* local players that exited */
    uint64_t ended;    /* 1: the game ended in this process */
    uint64_t kicks, received, trace;
    int32_t err;
    uint32_t err_player;
} proc_out;

typedef struct lplayer {
    sl_channel *ch;
    uint64_t rng;
    uint32_t id;
} lplayer;

/* One process's game: lives in the worker that runs the task. */
static struct {
    const proc_in *in;
    lplayer *p;        /* local players: p[i / P] is player i */
    uint32_t nlocal;
    hs_score s;        /* valid while the ball is in this process */
    hs_msg ball, exit; /* what a local channel carries */
    atomic_uint exited;
    int err;
    uint32_t err_player;
} L;

static void local_error(uint32_t id, int rc)
{
    if (L.err == 0) {
        L.err = rc;
        L.err_player = id;
    }
}

static uint32_t proc_of(uint32_t i)
{
    return i % L.in->procs;
}

/* Hand the ball (the score packed with it) to player `to`. */
static int pass(uint32_t to)
{
    if (proc_of(to) == L.in->k)
        return sl_channel_send(L.p[to / L.in->procs].ch, &L.ball);
    hs_msg m = {MSG_BALL, to, L.s.kicks, L.s.received, L.s.trace};
    return sl_mpchan_send(L.in->inbox[proc_of(to)], &m, sizeof m);
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
            for (uint32_t k = 0; k < L.in->procs && rc == 0; k++)
                rc = sl_mpchan_send(L.in->inbox[k], &m, sizeof m);
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

/* The task: one process of the game. Spawns the local players, says so,
 * then routes the inbox to them until the game ends. */
static int process_task(const void *in, size_t in_len, void *out, size_t *out_len)
{
    (void)in_len;
    static proc_in *pinp;
    pinp = malloc(in_len);
    if (!pinp)
        return SL_ENOMEM;
    memcpy(pinp, in, in_len);
    proc_in pin = *pinp; /* the fixed part, for short names */
    memset(&L, 0, sizeof L);
    L.in = pinp;
    proc_out r = {0};
    uint32_t P = pin.procs, k = pin.k;
    sl_mpchan **inbox = pinp->inbox;
    L.nlocal = pin.players / P + (k < pin.players % P);
    hs_score_init(&L.s, pin.players, pin.kicks, pin.verbose);
    L.ball.kind = MSG_BALL;
    L.exit.kind = MSG_EXIT;
    L.p = calloc(L.nlocal ? L.nlocal : 1, sizeof *L.p);
    if (!L.p)
        return SL_ENOMEM;
    int rc = 0;
    uint32_t spawned = 0;
    for (uint32_t j = 0; j < L.nlocal; j++, spawned++) {
        lplayer *p = &L.p[j];
        p->id = j * P + k;
        p->rng = hs_rng_seed(pin.seed, p->id);
        if (!(p->ch = sl_channel_new())) {
            rc = SL_ENOMEM;
            break;
        }
        if (pin.preference != -1)
            sl_channel_set_preference(p->ch, pin.preference);
        if (!sl_spawn(player_main, p)) {
            sl_channel_free(p->ch);
            rc = SL_ENOMEM;
            break;
        }
    }
    /* Tell the parent (the game starts once every process is ready). */
    int32_t ready = rc;
    int rc2 = sl_mpchan_send(pin.ready, &ready, sizeof ready);
    if (rc == 0)
        rc = rc2;
    /* Route until the game is over (or could not start: the parent sends
     * exit to every inbox then). */
    for (;;) {
        hs_msg m;
        size_t len = sizeof m;
        if ((rc2 = sl_mpchan_receive(inbox[k], &m, &len)) < 0) {
            rc = rc ? rc : rc2;
            break;
        }
        if (m.kind == MSG_BALL) {
            L.s.kicks = m.kicks;
            L.s.received = m.received;
            L.s.trace = m.trace;
            if ((rc2 = sl_channel_send(L.p[m.to / P].ch, &L.ball)) < 0) {
                rc = rc ? rc : rc2;
                break;
            }
            continue;
        }
        /* Exit: the final score, and who ended it (already gone). */
        if (m.to < pin.players && proc_of(m.to) == k) {
            r.ended = 1;
            r.kicks = m.kicks;
            r.received = m.received;
            r.trace = m.trace;
        }
        for (uint32_t j = 0; j < spawned; j++)
            if (L.p[j].id != m.to && (rc2 = sl_channel_send(L.p[j].ch, &L.exit)) < 0)
                rc = rc ? rc : rc2;
        break;
    }
    /* Every local player gone (they exit on their next run). */
    while (atomic_load(&L.exited) < spawned && rc == 0)
        sl_schedule();
    r.exited = atomic_load(&L.exited);
    r.err = L.err;
    r.err_player = L.err_player;
    for (uint32_t j = 0; j < spawned; j++)
        sl_channel_free(L.p[j].ch);
    free(L.p);
    free(pinp);
    /* A worker ends with _exit(): what --verbose printed must be out. */
    fflush(stdout);
    memcpy(out, &r, sizeof r);
    *out_len = sizeof r;
    return rc;
}

/* The parent's side, in a tasklet. */
static struct {
    const hs_options *o;
    hs_result *r;
    int status;
} G;

static void fail(const char *what, int rc)
{
    fprintf(stderr, "hackysack: %s: %s\n", what, sl_strerror(rc));
    G.status = 1;
}

static void game(void *arg)
{
    (void)arg;
    const hs_options *o = G.o;
    uint32_t P = (uint32_t)o->procs;
    double c0 = hs_cpu(), t0 = hs_now();
    sl_pool_config cfg;
    sl_pool_config_init(&cfg);
    cfg.processes = (int)P;
    cfg.workers = o->workers;
    sl_pool *pool;
    int rc = sl_pool_new(&pool, &cfg);
    if (rc < 0) {
        fail("sl_pool_new", rc);
        if (rc == SL_EINVAL)
            G.status = 2;
        return;
    }
    size_t in_len = sizeof(proc_in) + P * sizeof(sl_mpchan *);
    proc_in *in = calloc(1, in_len);
    sl_mpchan **inbox = in ? in->inbox : NULL;
    sl_mpchan *ready = NULL;
    sl_future **f = calloc(P, sizeof *f);
    uint32_t made = 0, submitted = 0;
    if (!in || !f) {
        fail("calloc", SL_ENOMEM);
        goto out;
    }
    if ((rc = sl_mpchan_new(pool, sizeof(int32_t), &ready)) < 0) {
        fail("sl_mpchan_new", rc);
        goto out;
    }
    for (; made < P; made++)
        if ((rc = sl_mpchan_new(pool, sizeof(hs_msg), &inbox[made])) < 0) {
            fail("sl_mpchan_new", rc);
            goto out;
        }
    /* One task per process: the pool gives each to the least loaded
     * worker, so P tasks land on P different processes. */
    for (; submitted < P; submitted++) {
        in->k = submitted;
        in->procs = P;
        in->players = o->players;
        in->kicks = o->kicks;
        in->seed = o->seed;
        in->ready = ready;
        in->preference = o->preference;
        in->verbose = o->verbose;
        if ((rc = sl_pool_submit(pool, process_task, in, in_len, &f[submitted])) < 0) {
            fail("sl_pool_submit", rc);
            goto out;
        }
    }
    /* Every process says whether it could spawn its players (each waits
     * until its word is taken, so take them all). */
    bool all_ready = true;
    for (uint32_t k = 0; k < P; k++) {
        int32_t v = 0;
        size_t len = sizeof v;
        if ((rc = sl_mpchan_receive(ready, &v, &len)) < 0) {
            fail("sl_mpchan_receive(ready)", rc);
            goto out;
        }
        if (v < 0) {
            fail("a process could not spawn its players", v);
            all_ready = false;
        }
    }
    double t1 = hs_now(), c1 = hs_cpu();
    if (all_ready) {
        hs_msg kick = {MSG_BALL, 0, 0, 0, HS_TRACE_INIT};
        if ((rc = sl_mpchan_send(inbox[0], &kick, sizeof kick)) < 0)
            fail("the kick-off", rc);
    } else {
        hs_msg stop = {MSG_EXIT, UINT32_MAX, 0, 0, 0};
        for (uint32_t k = 0; k < P; k++)
            sl_mpchan_send(inbox[k], &stop, sizeof stop);
    }
    uint64_t exited = 0, ended = 0;
    for (uint32_t k = 0; k < submitted; k++) {
        proc_out po;
        size_t len = sizeof po;
        rc = sl_future_wait(f[k], &po, &len);
        if (rc < 0 || len != sizeof po) {
            fail("a process's game", rc);
            continue;
        }
        if (po.err)
            fprintf(stderr, "hackysack: player %u: %s\n", po.err_player, sl_strerror(po.err)),
                G.status = 1;
        exited += po.exited;
        if (po.ended) {
            ended++;
            G.r->kicks = po.kicks;
            G.r->received = po.received;
            G.r->trace = po.trace;
        }
    }
    double t2 = hs_now(), c2 = hs_cpu();
    G.r->spawn_seconds = t1 - t0;
    G.r->game_seconds = t2 - t1;
    G.r->spawn_cpu = c1 - c0; /* the parent's: the players run in others */
    G.r->game_cpu = c2 - c1;
    if (G.status == 0 && (exited != o->players || ended != 1)) {
        fprintf(stderr, "hackysack: %" PRIu64 " of %u players exited, %" PRIu64 " processes saw the end (want 1)\n",
                exited, o->players, ended);
        G.status = 1;
    }
out:
    if (G.status) /* the game may be stuck: do not wait for it */
        sl_pool_terminate(pool);
    else if ((rc = sl_pool_close(pool)) < 0 || (rc = sl_pool_join(pool)) < 0)
        fail("close/join", rc);
    for (uint32_t k = 0; f && k < submitted; k++)
        sl_future_free(f[k]);
    for (uint32_t k = 0; k < made; k++)
        sl_mpchan_free(inbox[k]);
    if (ready)
        sl_mpchan_free(ready);
    sl_pool_free(pool);
    free(in);
    free(f);
}

int hs_play_process(const hs_options *o, hs_result *r)
{
    sl_config cfg;
    sl_config_init(&cfg);
    int rc = sl_init(&cfg);
    if (rc < 0) {
        fprintf(stderr, "hackysack: sl_init: %s\n", sl_strerror(rc));
        return 1;
    }
    G.o = o;
    G.r = r;
    G.status = 0;
    if (!sl_spawn(game, NULL) || (rc = sl_run()) < 0) {
        fprintf(stderr, "hackysack: sl_run: %s\n", sl_strerror(rc));
        return 1;
    }
    sl_shutdown();
    return G.status;
}
