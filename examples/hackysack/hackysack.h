/* hackysack.h - what the tasklet and pthread versions of the hackysack game
 * share: options, results, the per-player random generator and the trace.
 *
 * Both versions play the same game kick for kick: every player draws its
 * picks from its own generator, seeded from --seed and the player index, and
 * only the ball holder ever draws, so the sequence of kicks depends on the
 * seed alone, not on how the players are scheduled. The trace (a hash of every
 * receiver in order) lets a run prove it played the same game as another. */
#ifndef HACKYSACK_H
#define HACKYSACK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum hs_mode { HS_TASKLET, HS_PTHREAD, HS_PROCESS, HS_MPI };

typedef struct hs_options {
    enum hs_mode mode;
    uint32_t players; /* >= 2 */
    uint64_t kicks;   /* >= 1 */
    uint64_t seed;
    int workers;      /* tasklet mode: sl_config.workers */
    uint32_t stack_kib; /* tasklet mode: sl_config.stack_size / 1024; 0: default */
    int stack_mode;   /* tasklet mode: sl_config.stack_mode (SL_STACK_*) */
    int preference;   /* tasklet mode: every channel's preference, -1..1 */
    int procs;        /* process mode: worker processes; mpi mode: ranks;
                         else 1 */
    bool verbose;     /* print every kick */
} hs_options;

typedef struct hs_result {
    double spawn_seconds; /* creating players until every one waits */
    double bytes_per_player; /* tasklet mode: resident bytes the waiting
                                players added, per player (0: unknown) */
    double game_seconds;  /* first send until every player has ended */
    uint64_t kicks;       /* kicks counted by the players */
    uint64_t received;    /* balls received, main's first send included */
    uint64_t trace;       /* hs_trace_step over every kick's receiver */
    bool quiet;           /* mpi mode, ranks but 0: rank 0 reports */
} hs_result;

/* splitmix64's finaliser: turns seed + index into a well-mixed state. */
static inline uint64_t hs_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The generator state of player i: never 0, which xorshift cannot leave. */
static inline uint64_t hs_rng_seed(uint64_t seed, uint32_t i)
{
    uint64_t s = hs_mix64(seed + 0x9e3779b97f4a7c15ull * ((uint64_t)i + 1));
    return s ? s : 0x9e3779b97f4a7c15ull;
}

/* xorshift64*: three shifts and a multiply per draw. */
static inline uint64_t hs_rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* A uniform draw in [0, n), n >= 1: Lemire's multiply-shift on the top 32
 * bits, rejecting the few low products that would bias it. */
static inline uint32_t hs_rng_below(uint64_t *s, uint32_t n)
{
    uint64_t m = (uint64_t)(uint32_t)(hs_rng_next(s) >> 32) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t t = (uint32_t)-n % n;
        while (lo < t) {
            m = (uint64_t)(uint32_t)(hs_rng_next(s) >> 32) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

/* A uniformly random player other than self, out of n >= 2. */
static inline uint32_t hs_pick(uint64_t *s, uint32_t self, uint32_t n)
{
    uint32_t to;
    do
        to = hs_rng_below(s, n);
    while (to == self);
    return to;
}

#define HS_TRACE_INIT 0xcbf29ce484222325ull /* FNV-1a offset basis */

static inline uint64_t hs_trace_step(uint64_t h, uint32_t to)
{
    return (h ^ to) * 0x100000001b3ull;
}

/* The score both modes keep: touched only by the ball holder. */
typedef struct hs_score {
    uint32_t n;                        /* players                          */
    uint64_t target, kicks, received, trace;
    bool verbose;
} hs_score;

static inline void hs_score_init(hs_score *g, uint32_t players,
                                 uint64_t kicks, bool verbose)
{
    g->n = players;
    g->target = kicks;
    g->kicks = g->received = 0;
    g->trace = HS_TRACE_INIT;
    g->verbose = verbose;
}

/* The ball holder `self` kicks: counts the ball it received and the kick,
 * picks the receiver with its generator, traces it. Returns the receiver,
 * or UINT32_MAX when this kick ends the game (everybody must be told to
 * exit). The same code in both modes, so they play the same game. */
static inline uint32_t hs_kick(hs_score *g, uint64_t *rng, uint32_t self)
{
    g->received++;
    uint32_t to = hs_pick(rng, self, g->n);
    g->kicks++;
    g->trace = hs_trace_step(g->trace, to);
    if (g->verbose)
        printf("player %u kicks to player %u\n", self, to);
    if (g->kicks != g->target)
        return to;
    if (g->verbose)
        printf("player %u ends the game after %llu kicks\n", self,
               (unsigned long long)g->kicks);
    return UINT32_MAX;
}

/* Seconds on CLOCK_MONOTONIC. */
double hs_now(void);

/* Plays the game with one thread per player. 0 when the game ran (the caller
 * checks the counts); 1 after a failure, reported on stderr and stdout, with
 * every thread created so far told to exit and joined. */
int hs_play_pthread(const hs_options *o, hs_result *r);

/* Plays the game with the players spread over o->procs processes of a
 * process pool (hackysack_process.c). 0 when the game ran; 1 after a
 * failure reported on stderr; 2 for a configuration the pool refuses. */
int hs_play_process(const hs_options *o, hs_result *r);

/* Plays the game with the players spread over the ranks of an MPI job
 * (hackysack_mpi.c; built only with MPI): called on every rank, which
 * sets o->procs to the number of ranks, and r->quiet on all but rank 0.
 * 0 when the game ran; 1 after a failure reported on stderr; 2 for a
 * configuration it refuses (a single rank). */
int hs_play_mpi(hs_options *o, hs_result *r, int *argc, char ***argv);

#endif /* HACKYSACK_H */
