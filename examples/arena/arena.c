/* arena.c - a game world: many actors in a 2D arena, each a tasklet with a
 * mailbox, driven in fixed ticks by a world clock tasklet.
 *
 * The world. A square arena (64 square units per actor at the start, so
 * the density is the same at every size) holds --actors actors of four
 * factions, one per quadrant at the start. Each tick every actor looks at
 * its neighbours within 8 units (a uniform grid of 8x8 cells, rebuilt by
 * the clock between ticks) and does one thing: challenge the nearest enemy
 * if its side looks stronger, offer that enemy's faction a truce, or flee;
 * with no enemy near, give gold to a poorer friend or forage. Messages
 * (challenge, trade, truce) go to the other actor's mailbox. An actor whose
 * hit points run out, or that reaches its age, dies: its tasklet ends and
 * its mailbox is freed. An actor with enough gold has a child next to it.
 *
 * Who runs what.
 *
 *   main       spawns the marshals and the clock, sl_run(), checks, prints
 *   clock      one tasklet: drives the ticks, rebuilds the grid, prints
 *   marshals   one tasklet per 1024 actor slots: relay each command of the
 *              clock to their actors, collect the actors' reports, and
 *              between ticks free the dead, spawn the children and count
 *   actors     one tasklet each, looping on sl_channel_receive(mailbox)
 *
 * A tick has two phases, each a broadcast down the tree (clock -> marshals
 * -> actors) and a barrier back up (every actor reports to its marshal,
 * every marshal to the clock):
 *
 *   ACT    each actor senses and moves, and sends at most one message;
 *   FLUSH  it has received every message of this tick (the FLUSH command is
 *          queued behind them, mailboxes being FIFO) and reports whether
 *          it lives; the dead end here.
 *
 * After FLUSH nothing runs but the marshals' sweeps and then the clock, so
 * the dead's mailboxes can be freed and the grid rebuilt without a lock.
 * The marshals are there so that the clock's part grows with the number of
 * marshals, not of actors, and so that with --workers N the relaying and
 * the sweeps run in parallel too.
 *
 * With --workers N, marshal i and its actors are pinned to worker i mod N
 * (sl_spawn_ex): each worker keeps the same share of the world, in its own
 * cache, tick after tick. Left free (--pin 0), tasklets follow the
 * hand-overs: every phase starts with each marshal woken onto the clock's
 * worker, an idle worker must ask for half of them, and an actor moves to
 * whichever worker's actor last messaged it. Measured on 2 CPUs that other
 * jobs kept busy (load 3.5-5), 100,000 actors, 10 ticks, many runs: one
 * worker 132-181 ms a tick; two workers pinned 86-107 ms whenever the
 * second CPU was free to them (perf stat: 1.5-1.86 CPUs used), no better
 * than one when other jobs held it; unpinned 125-139 ms (1.45 CPUs).
 * examples/arena/scaling.sh measures it (best of interleaved runs).
 *
 * Mailboxes are buffered channels (MAILBOX_CAP messages) of preference 0:
 * a send queues the message and the sender goes on, so an actor that is
 * busy does not hold its senders up, and the marshal's broadcast does not
 * switch to each actor in turn (the actors queue up, which is what lets an
 * idle worker take half of them). A rendezvous mailbox would block every
 * sender until its receiver came round to it. A buffer can fill, so
 * an actor sends with sl_channel_try_send, and when the mailbox is full it
 * waits in sl_select on both that send and its own mailbox: two actors
 * sending to each other's full mailboxes keep draining their own, so no
 * cycle of full mailboxes can deadlock.
 *
 * Determinism. The result does not depend on the order in which tasklets
 * run, so a --seed gives the same final checksum with any --workers:
 *   - an actor decides from the grid's snapshot of the last tick (its own
 *     entry included) and its own random state only;
 *   - a message only adds to its receiver (hit points, gold) or raises a
 *     maximum (the truce), so the order messages arrive in does not matter;
 *   - deaths are decided at FLUSH, births and ids by each marshal in slot
 *     order, the grid by the clock in slot order.
 * tests/CMakeLists.txt checks one small run's checksum on one and on two
 * workers.
 *
 * Memory. An actor is 64 bytes here, 16 in the grid, a 32-byte channel
 * with a 152-byte ring, a 144-byte control block, and a 16 KiB stack of
 * which it touches one 4 KiB page: about 4.6 KB in all (peak RSS over
 * actors: 4.46 GB for a million). Messages are integers in the void *, so
 * nothing is allocated per message. With --stack copy (docs/stacks.md) an
 * actor keeps only the bytes its frames use while it waits: a million
 * actors peak at 1.18 GB (1.2 KB each), the same checksum. Nothing here
 * hands a pointer to a local to another tasklet, which is all copy stacks
 * ask.
 *
 * Where the time goes (one worker, 2-CPU VM): a tick costs about 1.5 us
 * per actor, two thirds of it in ACT, and almost all of it cache and TLB
 * misses on the first touch of each actor's stack, mailbox and control
 * block in the tick (the switches themselves are ~10 ns): 100,000 actors
 * take 135-200 ms a tick, a million about 2 s. The setup (setup_ms)
 * includes every actor's first run, so the first page fault of each
 * stack is counted there, not in tick 1.
 *
 * Output: a statistics line every --every ticks (alive, born, died,
 * messages by kind, factions, ms), a progress line with the time left on
 * stderr when it is a terminal, and a last line of key=value pairs.
 *
 * Usage: arena [--actors N] [--ticks T] [--workers N] [--seed S]
 *              [--snapshot FILE.ppm|FILE.png] [--image PIXELS] [--every K]
 *              [--stack-kb K] [--pin 0|1] [--stack fixed|copy] [--quiet]
 * Last line: actors=N ticks=T workers=W pin=0|1 seed=S alive=A spawned=P born=B
 * died=D died_battle=D died_age=D messages=M checksum=0x... setup_ms=...
 * ms_per_tick=... total_ms=... act_ms=... flush_ms=... grid_ms=...
 * peak_rss_kb=K bytes_per_actor=... stack=fixed|copy (the *_ms of a
 * phase are per tick).
 * Exit status 0; 1 when an invariant fails (alive + died != spawned,
 * tasklets left, a runtime error); 2 on bad usage. */
#define _GNU_SOURCE
#include "args.h"
#include "picture.h"
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <stackless.h>

enum {
    CELL_SHIFT = 3, /* 8x8 cells; an actor senses within one cell's width */
    SENSE = 1 << CELL_SHIFT,
    AREA_PER_ACTOR = 64,
    MARSHAL_SLOTS = 1024, /* actor slots per marshal */
    MAILBOX_CAP = 8,
    FACTIONS = 4,
    HP_MAX = 100,
    BIRTH_GOLD = 80, /* a parent needs this much, and gives CHILD_GOLD */
    CHILD_GOLD = 25,
    TRUCE_TICKS = 20,
    CROWDED = 4, /* neighbours within SENSE: no child, and move away */
};

/* Messages are integers carried in the void *: a kind in the low 8 bits,
 * a 32-bit value above. Nothing is allocated per message. */
enum { M_SETUP = 1, M_ACT, M_FLUSH, M_QUIT, M_CHALLENGE, M_TRADE, M_TRUCE };
#define MSG(kind, val) ((void *)(uintptr_t)(((uint64_t)(uint32_t)(val) << 8) | (kind)))
#define MSG_KIND(m) ((unsigned)((uintptr_t)(m)&0xff))
#define MSG_VAL(m) ((uint32_t)((uintptr_t)(m) >> 8))

enum { A_FREE = 0, A_ALIVE, A_DEAD_BATTLE, A_DEAD_AGE }; /* actor.state */

/* An actor: 64 bytes. Fields marked "own" are written only by its tasklet
 * (and by its marshal between ticks); hp, gold and the truce also by the
 * messages it receives, which its own tasklet applies. */
typedef struct actor {
    sl_channel *mbox;    /* its mailbox; NULL while the slot is free     */
    uint64_t rng;        /* own                                          */
    uint64_t id;         /* (tick born << 32) | slot: unique, repeatable */
    int32_t x, y;        /* own: where it moves to this tick             */
    int32_t hp, gold;    /* sums: the order of messages does not matter  */
    uint32_t vi;         /* its entry in the grid (written by the clock) */
    uint32_t truce_until;/* the tick its truce lapses                    */
    uint16_t age, lifespan;
    uint8_t faction, power;
    uint8_t truce;       /* faction + 1 it will not fight, 0 none        */
    uint8_t state;       /* A_*                                          */
    uint8_t crowd;       /* own: neighbours it saw this tick (capped)    */
    uint8_t greet;       /* report once when first run (initial actors)  */
} actor;

/* The grid's snapshot of an actor, taken between ticks: what the others
 * see of it during the next tick. 16 bytes. */
typedef struct view {
    uint32_t slot;
    uint16_t x, y;
    int16_t hp;
    uint16_t gold;
    uint8_t faction, power, truce, pad;
} view;
_Static_assert(sizeof(actor) == 64 && sizeof(view) == 16, "the sizes the memory figures assume");

typedef struct stats {
    uint64_t alive, born, died_battle, died_age;
    uint64_t msgs[M_TRUCE + 1]; /* by kind: challenges, trades, truces */
    uint64_t checksum;          /* a sum of per-actor hashes: order-free */
    uint64_t faction[FACTIONS];
} stats;

/* A marshal relays the clock's commands to the actors of its slots. */
typedef struct marshal {
    sl_channel *cmd;     /* clock -> marshal                             */
    sl_channel *reports; /* its actors -> marshal (one per actor per phase) */
    uint32_t first, end; /* its slots                                    */
    uint32_t initial;    /* how many of them start alive                 */
    stats st;            /* this tick's; read by the clock after it reports */
} marshal;

/* The world. Set up by main; the grid and tick are written by the clock
 * between ticks, read by everyone during them. */
static struct {
    actor *a;
    uint32_t nslots;
    view *view;
    uint32_t *cell_start; /* cell c's views: view[cell_start[c] .. cell_start[c+1]) */
    uint32_t cw, side;    /* cells per row; arena side in units          */
    uint32_t tick, ticks;
    uint64_t seed;
    marshal *m;
    uint32_t nm;
    sl_channel *clock_in; /* marshals -> clock */
    stats total;          /* summed over the run */
    stats last;           /* the last tick's */
    uint64_t spawned;
    double setup_ms, ticks_ms;
    double act_ms, flush_ms, grid_ms; /* ticks_ms by phase */
    const char *snapshot;
    uint32_t image, every;
    uint32_t workers;
    bool pin, quiet, tty;
} W;

static atomic_int first_error;

static void note_error(int rc)
{
    int none = 0;
    if (rc < 0)
        atomic_compare_exchange_strong(&first_error, &none, rc);
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rng_next(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ULL;
    return mix64(*s);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int32_t clampi(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

/* ---- actors ------------------------------------------------------------ */

/* A truce offered by or to faction f this tick: the highest faction wins,
 * so offers commute. */
static void truce_merge(actor *a, unsigned f)
{
    if (a->truce_until <= W.tick || f + 1 >= a->truce) {
        a->truce = (uint8_t)(f + 1);
        a->truce_until = W.tick + TRUCE_TICKS;
    }
}

static void take(actor *a, void *msg)
{
    switch (MSG_KIND(msg)) {
    case M_CHALLENGE: a->hp -= (int32_t)MSG_VAL(msg); break;
    case M_TRADE: a->gold += (int32_t)MSG_VAL(msg); break;
    case M_TRUCE: truce_merge(a, MSG_VAL(msg)); break;
    default: note_error(SL_ESTATE); /* a command in the middle of a phase */
    }
}

/* Sends msg to another actor's mailbox. When it is full, waits for room
 * while taking messages from its own, so that no cycle of full mailboxes
 * can hold. */
static int post(actor *a, actor *to, void *msg)
{
    int rc = sl_channel_try_send(to->mbox, msg);
    while (rc == SL_EWOULDBLOCK) {
        sl_select_case cs[2] = {{to->mbox, SL_SEND, msg}, {a->mbox, SL_RECV, NULL}};
        rc = sl_select(cs, 2, -1);
        if (rc == 1) {
            take(a, cs[1].value);
            rc = SL_EWOULDBLOCK;
        }
    }
    return rc;
}

static bool at_peace(const view *a, const view *b)
{
    return a->truce == b->faction + 1 || b->truce == a->faction + 1;
}

/* One tick's move, decided from the snapshot (me: its own entry) and the
 * actor's own random state. Returns the kind of message sent, 0 for none. */
static unsigned act(actor *a)
{
    const view *me = &W.view[a->vi];
    const view *enemy = NULL, *friend = NULL;
    int de = INT_MAX, df = INT_MAX, enemies = 0, friends = 0;
    int cx = me->x >> CELL_SHIFT, cy = me->y >> CELL_SHIFT;
    for (int gy = cy - 1; gy <= cy + 1; gy++) {
        if (gy < 0 || gy >= (int)W.cw)
            continue;
        for (int gx = cx - 1; gx <= cx + 1; gx++) {
            if (gx < 0 || gx >= (int)W.cw)
                continue;
            uint32_t c = (uint32_t)gy * W.cw + (uint32_t)gx;
            for (uint32_t i = W.cell_start[c]; i < W.cell_start[c + 1]; i++) {
                const view *o = &W.view[i];
                int dx = o->x - me->x, dy = o->y - me->y, d = dx * dx + dy * dy;
                if (o == me || d > SENSE * SENSE)
                    continue;
                if (o->faction == me->faction) {
                    friends++;
                    if (d < df)
                        df = d, friend = o;
                } else if (!at_peace(me, o)) {
                    enemies++;
                    if (d < de)
                        de = d, enemy = o;
                }
            }
        }
    }

    uint64_t r = rng_next(&a->rng);
    int dx = (int)(r % 3) - 1, dy = (int)((r >> 8) % 3) - 1; /* wander */
    unsigned kind = 0;
    uint32_t val = 0;
    actor *to = NULL;
    if (enemy) {
        int64_t mine = (int64_t)me->hp * me->power * (friends + 1);
        int64_t theirs = (int64_t)enemy->hp * enemy->power * enemies;
        if (mine >= theirs) { /* fight: hit, and take the enemy's answer */
            kind = M_CHALLENGE;
            val = me->power + (uint32_t)((r >> 16) % (me->power + 1u));
            a->hp -= enemy->power / 2;
            dx = sign(enemy->x - me->x);
            dy = sign(enemy->y - me->y);
        } else if ((r >> 24) % 4 == 0) { /* offer its faction a truce */
            kind = M_TRUCE;
            val = me->faction;
            truce_merge(a, enemy->faction);
        } else { /* flee */
            dx = -2 * sign(enemy->x - me->x);
            dy = -2 * sign(enemy->y - me->y);
        }
        if (kind)
            to = &W.a[enemy->slot];
    } else if (friend && me->gold > friend->gold + 10) {
        kind = M_TRADE;
        val = (uint32_t)(me->gold - friend->gold) / 4;
        a->gold -= (int32_t)val;
        to = &W.a[friend->slot];
    } else if (friends >= CROWDED) { /* no room to forage: move on */
        dx = -2 * sign(friend->x - me->x);
        dy = -2 * sign(friend->y - me->y);
    } else if (friends < 2) {
        a->gold += 1; /* forage: room for one or two only */
    }
    a->crowd = (uint8_t)(friends + enemies > 255 ? 255 : friends + enemies);
    a->x = clampi(me->x + dx, 0, (int32_t)W.side - 1);
    a->y = clampi(me->y + dy, 0, (int32_t)W.side - 1);
    a->age++;
    if (to) {
        int rc = post(a, to, MSG(kind, val));
        if (rc < 0) {
            note_error(rc);
            kind = 0;
        }
    }
    return kind;
}

static void report(sl_channel *reports, unsigned kind)
{
    note_error(sl_channel_send(reports, MSG(kind, 0)));
}

/* The next message on ch; false (after noting why) when there is none. */
static bool next(sl_channel *ch, void **msg)
{
    int rc = sl_channel_receive(ch, msg);
    note_error(rc);
    return rc == 0;
}

/* An actor's tasklet: commands from its marshal and messages from other
 * actors arrive on the one mailbox, in order. */
static void actor_main(void *arg)
{
    actor *a = arg;
    sl_channel *reports = W.m[(uint32_t)(a - W.a) / MARSHAL_SLOTS].reports;
    void *msg;
    if (a->greet) /* its stack is touched now, in the setup, not in tick 1 */
        report(reports, 0);
    while (next(a->mbox, &msg)) {
        switch (MSG_KIND(msg)) {
        case M_ACT:
            report(reports, act(a));
            break;
        case M_FLUSH:
            if (a->hp <= 0 || a->age >= a->lifespan) {
                a->state = a->hp <= 0 ? A_DEAD_BATTLE : A_DEAD_AGE;
                report(reports, 0); /* the last use of a: its slot may be reused */
                return;
            }
            report(reports, 0);
            break;
        case M_QUIT:
            report(reports, 0);
            return;
        default:
            take(a, msg);
        }
    }
}

/* Spawns fn(arg) where marshal i and its actors run: on worker i mod
 * workers, or anywhere with --pin 0. */
static sl_tasklet *spawn_at_home(uint32_t i, sl_fn fn, void *arg)
{
    sl_spawn_attr attr;
    sl_spawn_attr_init(&attr);
    if (W.pin)
        attr.worker = (int)(i % W.workers);
    return sl_spawn_ex(&attr, fn, arg);
}

/* Fills slot s with a new actor and spawns its tasklet. 0, or -1 when the
 * mailbox or the tasklet cannot be had (the slot stays free). */
static int actor_start(uint32_t s, uint64_t id, int32_t x, int32_t y, unsigned faction,
                       unsigned power, int32_t gold, unsigned age, bool greet)
{
    actor *a = &W.a[s];
    uint64_t r = W.seed ^ mix64(id + 0x51ed);
    *a = (actor){.rng = r, .id = id, .hp = HP_MAX, .gold = gold,
                 .age = (uint16_t)age, .faction = (uint8_t)faction, .greet = greet,
                 .power = (uint8_t)clampi((int32_t)power, 2, 30)};
    a->x = clampi(x, 0, (int32_t)W.side - 1);
    a->y = clampi(y, 0, (int32_t)W.side - 1);
    a->lifespan = (uint16_t)(150 + rng_next(&a->rng) % 150);
    if (!(a->mbox = sl_channel_new_buffered(MAILBOX_CAP))) {
        note_error(SL_ENOMEM);
        return -1;
    }
    sl_channel_set_preference(a->mbox, 0);
    a->state = A_ALIVE;
    if (!spawn_at_home(s / MARSHAL_SLOTS, actor_main, a)) {
        note_error(SL_ENOMEM);
        sl_channel_free(a->mbox);
        *a = (actor){0};
        return -1;
    }
    return 0;
}

/* ---- marshals ---------------------------------------------------------- */

static void marshal_setup(marshal *m)
{
    uint32_t started = 0;
    for (uint32_t s = m->first; s < m->first + m->initial; s++) {
        uint64_t r = mix64(W.seed * 0x9e3779b97f4a7c15ULL + s);
        int32_t x = (int32_t)(r % W.side), y = (int32_t)((r >> 32) % W.side);
        /* Each faction holds a quadrant, with one settler in five astray. */
        unsigned faction = (r >> 52) % 5 == 0 ? (unsigned)(r >> 56) % FACTIONS
                         : (x >= (int32_t)W.side / 2) + 2u * (y >= (int32_t)W.side / 2);
        if (actor_start(s, s, x, y, faction, 5 + (unsigned)(r >> 20) % 11,
                        (int32_t)((r >> 12) % 30), (unsigned)(r >> 40) % 100, true) == 0)
            started++;
    }
    m->st.born = started;
    void *r;
    for (uint32_t i = 0; i < started && next(m->reports, &r); i++)
        ;
}

/* Sends cmd to each live actor of m and waits for their reports. */
static void marshal_relay(marshal *m, void *cmd)
{
    uint32_t sent = 0;
    for (uint32_t s = m->first; s < m->end; s++) {
        if (W.a[s].state != A_ALIVE)
            continue;
        int rc = sl_channel_send(W.a[s].mbox, cmd);
        if (rc < 0) {
            note_error(rc);
            continue;
        }
        sent++;
    }
    /* A hand-over leaves the woken actor on this worker and wakes no idle
     * one; a yield with others runnable does, so that it asks for half. */
    note_error(sl_schedule());
    void *r;
    for (uint32_t i = 0; i < sent && next(m->reports, &r); i++)
        m->st.msgs[MSG_KIND(r)]++;
}

/* Between ticks (every actor has reported FLUSH): free the dead, heal,
 * have children in free slots, and count. In slot order, so the result
 * does not depend on which actor reported first. */
static void marshal_sweep(marshal *m)
{
    uint32_t free_slot = m->first;
    for (uint32_t s = m->first; s < m->end; s++) {
        actor *a = &W.a[s];
        if (a->state == A_DEAD_BATTLE || a->state == A_DEAD_AGE) {
            if (a->state == A_DEAD_BATTLE)
                m->st.died_battle++;
            else
                m->st.died_age++;
            note_error(sl_channel_free(a->mbox));
            *a = (actor){0};
        } else if (a->state == A_ALIVE && a->hp < HP_MAX) {
            a->hp = a->hp + 2 > HP_MAX ? HP_MAX : a->hp + 2;
        }
    }
    for (uint32_t s = m->first; s < m->end; s++) {
        actor *a = &W.a[s];
        if (a->state != A_ALIVE || a->age == 0 || a->gold < BIRTH_GOLD || a->crowd >= CROWDED)
            continue;
        while (free_slot < m->end && W.a[free_slot].state != A_FREE)
            free_slot++;
        if (free_slot == m->end)
            break;
        uint64_t id = ((uint64_t)W.tick << 32) | free_slot;
        uint64_t r = mix64(W.seed ^ id);
        if (actor_start(free_slot, id, a->x + (int32_t)(r % 9) - 4, a->y + (int32_t)((r >> 8) % 9) - 4,
                        a->faction, a->power + (unsigned)((r >> 16) % 3) - 1u, CHILD_GOLD, 0, false) == 0) {
            a->gold -= BIRTH_GOLD - CHILD_GOLD;
            m->st.born++;
        }
    }
    for (uint32_t s = m->first; s < m->end; s++) {
        const actor *a = &W.a[s];
        if (a->state != A_ALIVE)
            continue;
        m->st.alive++;
        m->st.faction[a->faction]++;
        m->st.checksum += mix64(a->id ^ mix64(((uint64_t)(uint32_t)a->x << 32 | (uint32_t)a->y) ^
                                              mix64(((uint64_t)(uint32_t)a->hp << 32 | (uint32_t)a->gold) ^
                                                    ((uint64_t)a->age << 16 | a->truce))));
    }
}

static void marshal_main(void *arg)
{
    marshal *m = arg;
    void *cmd;
    while (next(m->cmd, &cmd)) {
        unsigned k = MSG_KIND(cmd);
        if (k == M_SETUP || k == M_ACT)
            m->st = (stats){0};
        if (k == M_SETUP) {
            marshal_setup(m);
        } else {
            marshal_relay(m, cmd);
            if (k == M_FLUSH)
                marshal_sweep(m);
        }
        if (k == M_QUIT) { /* every actor has reported its last: free the mailboxes */
            for (uint32_t s = m->first; s < m->end; s++)
                if (W.a[s].state == A_ALIVE)
                    note_error(sl_channel_free(W.a[s].mbox));
        }
        note_error(sl_channel_send(W.clock_in, cmd));
        if (k == M_QUIT)
            return;
    }
}

/* ---- the clock --------------------------------------------------------- */

/* Sends one command to every marshal and waits until each has done it. */
static void command(unsigned kind)
{
    for (uint32_t i = 0; i < W.nm; i++)
        note_error(sl_channel_send(W.m[i].cmd, MSG(kind, 0)));
    note_error(sl_schedule()); /* wake idle workers: see marshal_relay */
    for (uint32_t i = 0; i < W.nm; i++)
        note_error(sl_channel_receive(W.clock_in, NULL));
}

/* The snapshot of every live actor, sorted by cell (a counting sort in
 * slot order). */
static void grid_rebuild(void)
{
    uint32_t ncells = W.cw * W.cw;
    memset(W.cell_start, 0, (ncells + 1) * sizeof *W.cell_start);
    for (uint32_t s = 0; s < W.nslots; s++) {
        const actor *a = &W.a[s];
        if (a->state == A_ALIVE)
            W.cell_start[(a->y >> CELL_SHIFT) * W.cw + (a->x >> CELL_SHIFT) + 1]++;
    }
    for (uint32_t c = 0; c < ncells; c++)
        W.cell_start[c + 1] += W.cell_start[c];
    for (uint32_t s = 0; s < W.nslots; s++) {
        actor *a = &W.a[s];
        if (a->state != A_ALIVE)
            continue;
        uint32_t c = (uint32_t)(a->y >> CELL_SHIFT) * W.cw + (uint32_t)(a->x >> CELL_SHIFT);
        uint32_t i = W.cell_start[c]++;
        bool truce = a->truce && a->truce_until > W.tick;
        W.view[i] = (view){.slot = s, .x = (uint16_t)a->x, .y = (uint16_t)a->y,
                           .hp = (int16_t)clampi(a->hp, INT16_MIN, INT16_MAX),
                           .gold = (uint16_t)clampi(a->gold, 0, UINT16_MAX),
                           .faction = a->faction, .power = a->power,
                           .truce = truce ? a->truce : 0};
        a->vi = i;
    }
    /* cell_start[c] now holds cell c's end: shift back by one cell. */
    memmove(W.cell_start + 1, W.cell_start, ncells * sizeof *W.cell_start);
    W.cell_start[0] = 0;
}

static stats gather(void)
{
    stats t = {0};
    for (uint32_t i = 0; i < W.nm; i++) {
        const stats *s = &W.m[i].st;
        t.alive += s->alive;
        t.born += s->born;
        t.died_battle += s->died_battle;
        t.died_age += s->died_age;
        for (int k = 0; k <= M_TRUCE; k++)
            t.msgs[k] += s->msgs[k];
        t.checksum += s->checksum;
        for (int f = 0; f < FACTIONS; f++)
            t.faction[f] += s->faction[f];
    }
    return t;
}

static uint64_t messages(const stats *s)
{
    return s->msgs[M_CHALLENGE] + s->msgs[M_TRADE] + s->msgs[M_TRUCE];
}

static void write_snapshot(void);

static void clock_main(void *arg)
{
    (void)arg;
    double t0 = now_ms();
    W.tick = 0;
    command(M_SETUP);
    stats st = gather();
    W.spawned = st.born;
    W.last = st;
    W.last.alive = st.born;
    grid_rebuild();
    W.setup_ms = now_ms() - t0;
    double t1 = now_ms();
    for (uint32_t t = 1; t <= W.ticks; t++) {
        double tt = now_ms();
        W.tick = t;
        command(M_ACT);
        double ta = now_ms();
        stats act = gather();
        command(M_FLUSH);
        double tf = now_ms();
        grid_rebuild();
        W.act_ms += ta - tt;
        W.flush_ms += tf - ta;
        W.grid_ms += now_ms() - tf;
        st = gather();
        for (int k = 0; k <= M_TRUCE; k++)
            st.msgs[k] = act.msgs[k];
        W.spawned += st.born;
        W.total.born += st.born;
        W.total.died_battle += st.died_battle;
        W.total.died_age += st.died_age;
        for (int k = 0; k <= M_TRUCE; k++)
            W.total.msgs[k] += st.msgs[k];
        W.last = st;
        double ms = now_ms() - tt;
        if (!W.quiet && (t % W.every == 0 || t == W.ticks))
            printf("tick=%u alive=%" PRIu64 " born=%" PRIu64 " died=%" PRIu64 " messages=%" PRIu64
                   " challenges=%" PRIu64 " trades=%" PRIu64 " truces=%" PRIu64
                   " factions=%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 " ms=%.2f\n",
                   t, st.alive, st.born, st.died_battle + st.died_age, messages(&st),
                   st.msgs[M_CHALLENGE], st.msgs[M_TRADE], st.msgs[M_TRUCE], st.faction[0],
                   st.faction[1], st.faction[2], st.faction[3], ms);
        if (W.tty) {
            double done = now_ms() - t1;
            fprintf(stderr, "\rtick %u/%u, %" PRIu64 " alive, %.0f ms/tick, %.0f s to go   ", t,
                    W.ticks, st.alive, done / t, done / t * (W.ticks - t) / 1e3);
            if (t == W.ticks)
                fputc('\n', stderr);
        }
        if (!W.quiet)
            fflush(stdout);
    }
    W.ticks_ms = now_ms() - t1;
    if (W.snapshot)
        write_snapshot();
    command(M_QUIT);
}

/* ---- the picture ------------------------------------------------------- */

/* A picture of W.image x W.image pixels: the arena scaled down (or up),
 * each live actor a dot in its faction's colour on black; a PNG when the
 * name ends in .png, else a binary PPM (P6). */
static void write_snapshot(void)
{
    static const uint8_t colour[FACTIONS][3] = {
        {230, 60, 50}, {70, 200, 80}, {60, 120, 240}, {240, 200, 40}};
    size_t px = W.image, bytes = px * px * 3;
    uint8_t *img = calloc(bytes, 1);
    FILE *f = img ? fopen(W.snapshot, "wb") : NULL;
    if (!f) {
        fprintf(stderr, "arena: cannot write %s\n", W.snapshot);
        free(img);
        note_error(SL_EINVAL);
        return;
    }
    for (uint32_t s = 0; s < W.nslots; s++) {
        const actor *a = &W.a[s];
        if (a->state != A_ALIVE)
            continue;
        size_t x = (size_t)a->x * px / W.side, y = (size_t)a->y * px / W.side;
        memcpy(img + (y * px + x) * 3, colour[a->faction], 3);
    }
    int rc = picture_write(f, picture_is_png(W.snapshot), img, px, px);
    if (fclose(f) != 0 || rc != 0) {
        fprintf(stderr, "arena: writing %s failed\n", W.snapshot);
        note_error(SL_EINVAL);
    }
    free(img);
}

/* ---- main -------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: arena [--actors N] [--ticks T] [--workers N] [--seed S] [--snapshot FILE.ppm|.png]\n"
            "             [--image PIXELS] [--every K] [--stack-kb K] [--pin 0|1]\n"
            "             [--stack fixed|copy] [--quiet]\n"
            "  --actors N      actors at the start (default 100000); the world has room for 5/4 of them\n"
            "  --ticks T       ticks to run (default 100)\n"
            "  --workers N     OS threads running tasklets (default 1)\n"
            "  --seed S        the world's seed (default 1): the same seed gives the same checksum,\n"
            "                  whatever the number of workers\n"
            "  --snapshot F    write the arena at the end as a picture: PNG if F ends in .png,\n"
            "                  else a binary PPM (P6)\n"
            "  --image PIXELS  the picture's width and height (default 512)\n"
            "  --every K       print the statistics every K ticks (default: 10 lines in all);\n"
            "                  on a terminal, stderr also gets a progress line every tick\n"
            "  --stack-kb K    tasklet stack size in KiB (default 16, the minimum)\n"
            "  --pin 0|1       1 (default): marshal i and its actors run on worker i mod N;\n"
            "                  0: anywhere, moved by hand-overs and idle workers\n"
            "  --stack fixed|copy  a stack per actor (default) or copy stacks (docs/stacks.md)\n"
            "  --quiet         only the last line\n"
            "The last line is key=value pairs: actors ticks workers pin seed alive spawned born died\n"
            "died_battle died_age messages checksum setup_ms ms_per_tick total_ms act_ms flush_ms\n"
            "grid_ms peak_rss_kb bytes_per_actor stack.\n");
}

static int64_t num(const char *flag, const char *s, int64_t min, uint64_t max)
{
    return args_num("arena", flag, s, min, max, usage);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"actors", required_argument, NULL, 'a'}, {"ticks", required_argument, NULL, 't'},
        {"workers", required_argument, NULL, 'w'}, {"seed", required_argument, NULL, 's'},
        {"snapshot", required_argument, NULL, 'S'}, {"image", required_argument, NULL, 'i'},
        {"every", required_argument, NULL, 'e'}, {"stack-kb", required_argument, NULL, 'k'},
        {"pin", required_argument, NULL, 'p'}, {"stack", required_argument, NULL, 'c'},
        {"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint32_t actors = 100000, stack_kb = 16;
    int workers = 1, c;
    bool copy_stacks = false;
    W.ticks = 100;
    W.seed = 1;
    W.image = 512;
    W.pin = true;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'a': actors = (uint32_t)num("--actors", optarg, 1, 50000000); break;
        case 't': W.ticks = (uint32_t)num("--ticks", optarg, 0, 60000); break;
        case 'w': workers = (int)num("--workers", optarg, 1, 1024); break;
        case 's': W.seed = (uint64_t)num("--seed", optarg, 0, UINT64_MAX); break;
        case 'S': W.snapshot = optarg; break;
        case 'i': W.image = (uint32_t)num("--image", optarg, 1, 16384); break;
        case 'e': W.every = (uint32_t)num("--every", optarg, 1, 60000); break;
        case 'k': stack_kb = (uint32_t)num("--stack-kb", optarg, 16, 1 << 20); break;
        case 'p': W.pin = num("--pin", optarg, 0, 1); break;
        case 'c':
            if (strcmp(optarg, "copy") == 0) {
                copy_stacks = true;
            } else if (strcmp(optarg, "fixed") != 0) {
                usage(stderr);
                return 2;
            }
            break;
        case 'q': W.quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (!W.every)
        W.every = W.ticks >= 10 ? W.ticks / 10 : 1;
    W.tty = !W.quiet && isatty(2);
    W.workers = (uint32_t)workers;

    /* The arena: AREA_PER_ACTOR square units per actor, whole cells. */
    W.side = (uint32_t)ceil(sqrt((double)actors * AREA_PER_ACTOR));
    W.side = (W.side + SENSE - 1) & ~(uint32_t)(SENSE - 1);
    W.cw = W.side >> CELL_SHIFT;
    uint32_t per = MARSHAL_SLOTS * 4 / 5; /* each marshal starts 4/5 full */
    W.nm = (actors + per - 1) / per;
    W.nslots = W.nm * MARSHAL_SLOTS;
    W.a = calloc(W.nslots, sizeof *W.a);
    W.view = calloc(W.nslots, sizeof *W.view);
    W.cell_start = calloc((size_t)W.cw * W.cw + 1, sizeof *W.cell_start);
    W.m = calloc(W.nm, sizeof *W.m);
    W.clock_in = sl_channel_new_buffered(W.nm);
    if (!W.a || !W.view || !W.cell_start || !W.m || !W.clock_in) {
        fprintf(stderr, "arena: out of memory for %u actors\n", actors);
        return 1;
    }
    sl_config cfg;
    sl_config_init(&cfg);
    cfg.workers = workers;
    cfg.stack_size = (size_t)stack_kb << 10;
    cfg.stack_mode = copy_stacks ? SL_STACK_COPY : SL_STACK_FIXED;
    int rc = sl_init(&cfg);
    if (rc < 0) {
        fprintf(stderr, "arena: sl_init(workers=%d): %s\n", workers, sl_strerror(rc));
        return rc == SL_EINVAL ? 2 : 1;
    }
    double t0 = now_ms();
    for (uint32_t i = 0, left = actors; i < W.nm; i++) {
        marshal *m = &W.m[i];
        m->first = i * MARSHAL_SLOTS;
        m->end = m->first + MARSHAL_SLOTS;
        m->initial = left < per ? left : per;
        left -= m->initial;
        m->cmd = sl_channel_new_buffered(1);
        m->reports = sl_channel_new_buffered(MARSHAL_SLOTS);
        if (!m->cmd || !m->reports || !spawn_at_home(i, marshal_main, m)) {
            fprintf(stderr, "arena: cannot start marshal %u\n", i);
            return 1;
        }
        sl_channel_set_preference(m->cmd, 0);
        sl_channel_set_preference(m->reports, 0);
    }
    sl_channel_set_preference(W.clock_in, 0);
    if (!sl_spawn(clock_main, NULL)) {
        fprintf(stderr, "arena: cannot start the clock\n");
        return 1;
    }
    rc = sl_run();
    double total = now_ms() - t0;
    int live = sl_getlivecount(), err = atomic_load(&first_error);

    const stats *st = &W.last;
    uint64_t died = W.total.died_battle + W.total.died_age;
    uint64_t spawned = W.spawned;
    int status = 0;
    if (rc < 0 || err < 0 || live != 0) {
        fprintf(stderr, "arena: sl_run: %s; first error: %s; %d tasklets left\n", sl_strerror(rc),
                sl_strerror(err), live);
        status = 1;
    }
    if (st->alive + died != spawned) {
        fprintf(stderr, "arena: alive %" PRIu64 " + died %" PRIu64 " != spawned %" PRIu64 "\n",
                st->alive, died, spawned);
        status = 1;
    }
    for (uint32_t i = 0; i < W.nm; i++) {
        note_error(sl_channel_free(W.m[i].cmd));
        note_error(sl_channel_free(W.m[i].reports));
    }
    note_error(sl_channel_free(W.clock_in));
    if ((rc = sl_shutdown()) < 0 || atomic_load(&first_error) < 0) {
        fprintf(stderr, "arena: shutdown: %s, %s\n", sl_strerror(rc), sl_strerror(atomic_load(&first_error)));
        status = 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("actors=%u ticks=%u workers=%d pin=%d seed=%" PRIu64 " alive=%" PRIu64 " spawned=%" PRIu64
           " born=%" PRIu64 " died=%" PRIu64 " died_battle=%" PRIu64 " died_age=%" PRIu64
           " messages=%" PRIu64 " checksum=0x%016" PRIx64 " setup_ms=%.1f ms_per_tick=%.2f"
           " total_ms=%.1f act_ms=%.2f flush_ms=%.2f grid_ms=%.2f peak_rss_kb=%ld"
           " bytes_per_actor=%.0f stack=%s%s\n",
           actors, W.ticks, workers, W.pin, W.seed, st->alive, spawned, W.total.born, died,
           W.total.died_battle, W.total.died_age, messages(&W.total), st->checksum, W.setup_ms,
           W.ticks ? W.ticks_ms / W.ticks : 0.0, total, W.ticks ? W.act_ms / W.ticks : 0.0,
           W.ticks ? W.flush_ms / W.ticks : 0.0, W.ticks ? W.grid_ms / W.ticks : 0.0, ru.ru_maxrss,
           (double)ru.ru_maxrss * 1024 / (double)actors, copy_stacks ? "copy" : "fixed",
           status ? " error=1" : "");
    free(W.a);
    free(W.view);
    free(W.cell_start);
    free(W.m);
    return status;
}
