/* hackysack.c - Grant Olson's hackysack game (from "Introduction to
 * Concurrent Programming with Stackless Python") as a benchmark: N players
 * in a circle kick one ball to each other until K kicks have happened.
 *
 * Each player owns a channel and runs a loop: receive the ball, pick a
 * random other player, count the kick, pass the ball. The player that makes
 * the K-th kick sends "exit" to every other player instead of passing, and
 * ends. Main starts the game by sending the ball to player 0, so the balls
 * received (main's send included) equal the kicks made: K.
 *
 * --mode tasklet plays it with one tasklet per player on the stackless
 * runtime; --mode pthread with one thread per player (hackysack_pthread.c);
 * --mode process with the players' tasklets spread over --procs processes
 * of a process pool, the ball crossing them on sl_mpchans
 * (hackysack_process.c); --mode mpi, under mpirun, with them spread over
 * the job's ranks, the ball crossing them on sl_mpi_chans
 * (hackysack_mpi.c, built only where MPI is).
 * Both play the identical game (see hackysack.h) and print the same last
 * line, so runs compare by reading one line. */
#define _GNU_SOURCE
#include "args.h"
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <stackless.h>

#include "hackysack.h"

/* --mode mpi is there when CMake found MPI. It lives in a sibling binary,
 * hackysack-mpi (HS_HAVE_MPI=1), so that this one links no MPI library:
 * loading Open MPI's shared libraries would cost every run of the other
 * modes milliseconds at start (a 1,000-player game takes 20 ms in all).
 * This one (HS_MPI_EXEC=1) execs the sibling when asked for mpi mode;
 * under mpirun the rank's process stays the same. */
#ifndef HS_HAVE_MPI
#define HS_HAVE_MPI 0
#endif
#ifndef HS_MPI_EXEC
#define HS_MPI_EXEC 0
#endif

/* --mode mpi asked for, before getopt permutes argv. */
static bool wants_mpi(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mode=mpi") == 0)
            return true;
        if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc &&
            strcmp(argv[i + 1], "mpi") == 0)
            return true;
    }
    return false;
}

/* Exec hackysack-mpi from this binary's directory; returns on failure. */
static void exec_mpi_sibling(char **argv)
{
    char self[4096], path[4200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return;
    *slash = '\0';
    snprintf(path, sizeof path, "%s/hackysack-mpi", self);
    execv(path, argv);
    fprintf(stderr, "hackysack: --mode mpi: cannot run %s: %s\n", path,
            strerror(errno));
}

#define DEFAULT_PLAYERS 10000u
#define DEFAULT_KICKS_TASKLET 1000000u
#define DEFAULT_KICKS_PTHREAD 100000u

static char ball_token, exit_token;
#define MSG_BALL ((void *)&ball_token)
#define MSG_EXIT ((void *)&exit_token)

typedef struct player {
    sl_channel *ch;
    uint64_t rng; /* touched only by this player */
    uint32_t id;
} player;

/* The game. kicks, received and trace are touched only by the ball holder,
 * and the ball moves through a channel, so they need no lock. */
static struct {
    player *p;
    hs_score s;
    int err;             /* first channel error a player saw, 0 if none */
    const char *err_op;
    uint32_t err_player;
} G;

double hs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void player_error(uint32_t id, const char *op, int rc)
{
    if (G.err == 0) {
        G.err = rc;
        G.err_op = op;
        G.err_player = id;
    }
}

static void player_main(void *arg)
{
    player *me = arg;
    void *msg;
    int rc;

    for (;;) {
        if ((rc = sl_channel_receive(me->ch, &msg)) < 0) {
            player_error(me->id, "receive", rc);
            return;
        }
        if (msg == MSG_EXIT)
            return;
        uint32_t to = hs_kick(&G.s, &me->rng, me->id);
        if (to == UINT32_MAX) {
            for (uint32_t i = 0; i < G.s.n; i++) {
                if (i == me->id)
                    continue;
                if ((rc = sl_channel_send(G.p[i].ch, MSG_EXIT)) < 0) {
                    player_error(me->id, "send exit", rc);
                    return;
                }
            }
            return;
        }
        if ((rc = sl_channel_send(G.p[to].ch, MSG_BALL)) < 0) {
            player_error(me->id, "send", rc);
            return;
        }
    }
}

/* Tells the first n players to exit and lets them; used when the game
 * cannot start. */
static void release_players(uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        sl_channel_send(G.p[i].ch, MSG_EXIT);
    sl_run();
}

static void free_players(uint32_t nchannels)
{
    for (uint32_t i = 0; i < nchannels; i++)
        sl_channel_free(G.p[i].ch);
    free(G.p);
    G.p = NULL;
}

/* Resident bytes of this process now (/proc/self/statm), or -1. */
static long rss_bytes(void)
{
    long pages = -1, resident = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

/* Plays the game with one tasklet per player. 0 when the game ran (the
 * caller checks the counts), 1 after a failure reported on stderr. */
static int play_tasklet(const hs_options *o, hs_result *r)
{
    sl_config cfg;
    int rc;

    sl_config_init(&cfg);
    cfg.workers = o->workers;
    if (o->stack_kib)
        cfg.stack_size = (size_t)o->stack_kib * 1024;
    cfg.stack_mode = o->stack_mode;
    if ((rc = sl_init(&cfg)) < 0) {
        fprintf(stderr, "hackysack: sl_init(workers=%d): %s\n", o->workers, sl_strerror(rc));
        return rc == SL_EINVAL ? 2 : 1; /* a configuration this runtime refuses */
    }
    G.p = calloc(o->players, sizeof *G.p);
    if (!G.p) {
        fprintf(stderr, "hackysack: out of memory for %u players\n", o->players);
        sl_shutdown();
        return 1;
    }
    hs_score_init(&G.s, o->players, o->kicks, o->verbose);
    G.err = 0;

    /* Spawn every player and run them until each waits on its channel. */
    long rss0 = rss_bytes();
    double t0 = hs_now();
    for (uint32_t i = 0; i < G.s.n; i++) {
        player *p = &G.p[i];
        p->id = i;
        p->rng = hs_rng_seed(o->seed, i);
        const char *what = "sl_channel_new";
        if (!(p->ch = sl_channel_new()) ||
            (what = "sl_spawn", !sl_spawn(player_main, p))) {
            fprintf(stderr, "hackysack: %s failed after %u of %u players\n", what, i, G.s.n);
            printf("mode=tasklet players=%u kicks=%" PRIu64 " error=%s tasklets_created=%u\n", G.s.n,
                   o->kicks, what, i);
            sl_run();
            release_players(i);
            free_players(p->ch ? i + 1 : i);
            sl_shutdown();
            return 1;
        }
        if (o->preference != -1)
            sl_channel_set_preference(p->ch, o->preference);
    }
    if ((rc = sl_run()) < 0) {
        fprintf(stderr, "hackysack: sl_run: %s\n", sl_strerror(rc));
        return 1;
    }
    double t1 = hs_now();
    long rss1 = rss_bytes();
    if (rss0 > 0 && rss1 > 0)
        r->bytes_per_player = (double)(rss1 - rss0) / G.s.n;

    /* Untimed check: every player is blocked in receive on its channel. */
    if (sl_getlivecount() != (int)G.s.n || sl_getruncount() != 1) {
        fprintf(stderr, "hackysack: after spawning, %d live and %d runnable tasklets, want %u and 1\n",
                sl_getlivecount(), sl_getruncount(), G.s.n);
        return 1;
    }
    for (uint32_t i = 0; i < G.s.n; i++) {
        if (sl_channel_balance(G.p[i].ch) != -1) {
            fprintf(stderr, "hackysack: player %u is not waiting (balance %d)\n", i,
                    sl_channel_balance(G.p[i].ch));
            return 1;
        }
    }

    /* Kick-off. Player 0 waits, so this send hands over the ball and
     * switches to it; main carries on from the run queue, and sl_run()
     * plays the rest of the game. */
    double t2 = hs_now();
    if ((rc = sl_channel_send(G.p[0].ch, MSG_BALL)) < 0) {
        fprintf(stderr, "hackysack: main's send to player 0: %s\n", sl_strerror(rc));
        return 1;
    }
    if ((rc = sl_run()) < 0) {
        fprintf(stderr, "hackysack: sl_run: %s\n", sl_strerror(rc));
        return 1;
    }
    double t3 = hs_now();

    int status = 0;
    if (G.err) {
        fprintf(stderr, "hackysack: player %u: channel %s failed: %s\n", G.err_player, G.err_op,
                sl_strerror(G.err));
        status = 1;
    }
    int live = sl_getlivecount();
    if (live != 0) {
        fprintf(stderr, "hackysack: %d tasklets still alive after the game\n", live);
        sl_dump(stderr);
        status = 1;
    }
    r->spawn_seconds = t1 - t0;
    r->game_seconds = t3 - t2;
    r->kicks = G.s.kicks;
    r->received = G.s.received;
    r->trace = G.s.trace;

    free_players(G.s.n);
    if ((rc = sl_shutdown()) < 0) {
        fprintf(stderr, "hackysack: sl_shutdown: %s\n", sl_strerror(rc));
        status = 1;
    }
    return status;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hackysack [options]\n"
            "  --mode tasklet|pthread|process|mpi  one tasklet (default) or one OS thread\n"
            "                          per player, or tasklets spread over --procs processes,\n"
            "                          or over the ranks of an MPI job (mpirun -np P\n"
            "                          hackysack --mode mpi; %s)\n"
            "  --players N             players in the circle, >= 2 (default %u)\n"
            "  --kicks K               kicks before the game ends (default %u in tasklet\n"
            "                          mode; %u in pthread mode, so the default run\n"
            "                          finishes well under a minute)\n"
            "  --seed S                seed of the players' generators (default 1)\n"
            "  --workers N             tasklet, process and mpi modes: OS threads running\n"
            "                          tasklets (in each process or rank; default 1)\n"
            "  --procs P               process mode: worker processes, 1 .. 256 (default 1)\n"
            "  --stack fixed|copy      tasklet mode: a stack per player (default), or copy\n"
            "                          stacks: a waiting player keeps only the bytes its\n"
            "                          frames use (docs/stacks.md)\n"
            "  --stack-size KIB        tasklet mode: usable KiB per stack (default: the\n"
            "                          runtime's, 64)\n"
            "  --preference -1|0|1     tasklet mode: channel preference (default -1, prefer\n"
            "                          the receiver, as Stackless)\n"
            "  --verbose               print every kick\n"
            "  --help                  print this and exit\n"
            "The last line is key=value pairs: mode players kicks workers procs seconds\n"
            "spawn_seconds game_seconds kicks_per_sec peak_rss_kb stack bytes_per_player\n"
            "(resident bytes the waiting players added, each; 0 outside tasklet mode).\n"
            "Exit status: 0 ok,\n"
            "1 failure (e.g. out of threads), 2 bad usage.\n",
            HS_HAVE_MPI ? "built in" : "not built: no MPI", DEFAULT_PLAYERS, DEFAULT_KICKS_TASKLET,
            DEFAULT_KICKS_PTHREAD);
}

static _Noreturn void bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "hackysack: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    usage(stderr);
    exit(2);
}

static uint64_t parse_num(const char *flag, const char *s, uint64_t min, uint64_t max)
{
    return (uint64_t)args_num("hackysack", flag, s, (int64_t)min, (uint64_t)max, usage);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"mode", required_argument, NULL, 'm'},    {"players", required_argument, NULL, 'n'},
        {"kicks", required_argument, NULL, 'k'},   {"seed", required_argument, NULL, 's'},
        {"workers", required_argument, NULL, 'w'}, {"procs", required_argument, NULL, 'p'},
        {"stack", required_argument, NULL, 'S'},   {"stack-size", required_argument, NULL, 'z'},
        {"preference", required_argument, NULL, 'P'}, {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    hs_options o = {.mode = HS_TASKLET, .players = DEFAULT_PLAYERS, .seed = 1, .workers = 1,
                    .procs = 1, .preference = -1, .stack_mode = SL_STACK_FIXED};
    bool kicks_set = false, workers_set = false;
    int c;
    if (HS_MPI_EXEC && !HS_HAVE_MPI && wants_mpi(argc, argv))
        exec_mpi_sibling(argv); /* returns only when it could not */

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (strcmp(optarg, "tasklet") == 0)
                o.mode = HS_TASKLET;
            else if (strcmp(optarg, "pthread") == 0)
                o.mode = HS_PTHREAD;
            else if (strcmp(optarg, "process") == 0)
                o.mode = HS_PROCESS;
            else if (strcmp(optarg, "mpi") == 0 && HS_HAVE_MPI)
                o.mode = HS_MPI;
            else if (strcmp(optarg, "mpi") == 0)
                bad_usage("%s", "--mode mpi: this hackysack was built without MPI");
            else
                bad_usage("unknown mode '%s' (tasklet, pthread, process or mpi)", optarg);
            break;
        case 'n': o.players = (uint32_t)parse_num("--players", optarg, 2, 100000000); break;
        case 'k':
            o.kicks = parse_num("--kicks", optarg, 1, UINT64_MAX / 2);
            kicks_set = true;
            break;
        case 's': o.seed = parse_num("--seed", optarg, 0, UINT64_MAX); break;
        case 'w':
            o.workers = (int)parse_num("--workers", optarg, 1, 1024);
            workers_set = true;
            break;
        case 'p':
            o.procs = (int)parse_num("--procs", optarg, 1, 256);
            break;
        case 'S':
            if (strcmp(optarg, "copy") == 0)
                o.stack_mode = SL_STACK_COPY;
            else if (strcmp(optarg, "fixed") == 0)
                o.stack_mode = SL_STACK_FIXED;
            else
                bad_usage("unknown stack kind '%s' (fixed or copy)", optarg);
            break;
        case 'z': o.stack_kib = (uint32_t)parse_num("--stack-size", optarg, 16, 1u << 20); break;
        case 'P':
            if (strcmp(optarg, "-1") == 0 || strcmp(optarg, "0") == 0 || strcmp(optarg, "1") == 0)
                o.preference = atoi(optarg);
            else
                bad_usage("--preference wants -1, 0 or 1, not '%s'", optarg);
            break;
        case 'v': o.verbose = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        bad_usage("unexpected argument '%s'", argv[optind]);
    if (!kicks_set)
        o.kicks = o.mode == HS_PTHREAD ? DEFAULT_KICKS_PTHREAD : DEFAULT_KICKS_TASKLET;
    if (o.mode == HS_PTHREAD && workers_set && o.workers != 1)
        bad_usage("%s", "--workers applies to tasklet mode only");
    if (o.mode != HS_PROCESS && o.procs != 1)
        bad_usage("%s", "--procs applies to process mode only (mpi mode: mpirun -np)");

    hs_result r = {0};
    int status = o.mode == HS_TASKLET   ? play_tasklet(&o, &r)
                 : o.mode == HS_PROCESS ? hs_play_process(&o, &r)
#if HS_HAVE_MPI
                 : o.mode == HS_MPI     ? hs_play_mpi(&o, &r, &argc, &argv)
#endif
                                        : hs_play_pthread(&o, &r);
    if (status != 0 || r.quiet)
        return status;

    if (r.kicks != o.kicks || r.received != o.kicks) {
        fprintf(stderr, "hackysack: %" PRIu64 " kicks and %" PRIu64 " balls received, want %" PRIu64 " of each\n",
                r.kicks, r.received, o.kicks);
        return 1;
    }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double seconds = r.spawn_seconds + r.game_seconds;
    printf("hackysack: %" PRIu64 " kicks, %" PRIu64 " balls received, trace %016" PRIx64 "\n",
           r.kicks, r.received, r.trace);
    printf("mode=%s players=%u kicks=%" PRIu64 " workers=%d procs=%d seconds=%.4f spawn_seconds=%.4f "
           "game_seconds=%.4f kicks_per_sec=%.0f peak_rss_kb=%ld stack=%s bytes_per_player=%.0f\n",
           o.mode == HS_TASKLET ? "tasklet" : o.mode == HS_PROCESS ? "process" : o.mode == HS_MPI ? "mpi" : "pthread", o.players, o.kicks, o.workers, o.procs,
           seconds, r.spawn_seconds, r.game_seconds, (double)o.kicks / seconds, ru.ru_maxrss,
           o.stack_mode == SL_STACK_COPY ? "copy" : "fixed", r.bytes_per_player);
    return 0;
}
