/* model.h - the model-based tester's shared types: random programs over the
 * channel API, the event log a run of one produces, and the parts that
 * make, run and judge them (gen.c, lib.c, ref.c, check.c, main.c).
 *
 * A program is a set of scripts: script 0 is main's, script k > 0 is run by
 * the tasklet that a spawn op of an earlier script starts (at most one spawn
 * op names each script, so a script runs at most once and "tasklet k" is
 * the tasklet running script k). A script is a straight line of ops; every
 * op, when it returns, appends one event to the log: which script, which
 * op, what it returned and the value it observed. After its script main
 * drains the program (drain.c): it runs, inserts paused tasklets, and
 * empties every channel until nothing is alive, so every message sent is
 * received by someone and the end state can be checked.
 */
#ifndef SL_MODEL_H
#define SL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MT_MAX_SCRIPTS 8 /* main + 7 tasklets */
#define MT_MAX_OPS 16
#define MT_MAX_CHANS 4
#define MT_MAX_CASES 4
#define MT_MAX_EVENTS 4096

enum mt_op_kind {
    OP_SPAWN,          /* script, pin, arg: 1 paused (bound,
                          sl_spawn_attr.paused)               */
    OP_SEND,           /* ch                                 */
    OP_RECV,           /* ch                                 */
    OP_TRY_SEND,       /* ch                                 */
    OP_TRY_RECV,       /* ch                                 */
    OP_SEND_TO,        /* ch, ms                             */
    OP_RECV_TO,        /* ch, ms                             */
    OP_SEND_ERR,       /* ch                                 */
    OP_SELECT,         /* cases, ms (-1: none)               */
    OP_SET_PREF,       /* ch, arg                            */
    OP_SET_SCHED_ALL,  /* ch, arg                            */
    OP_CLOSE,          /* ch                                 */
    OP_OPEN,           /* ch                                 */
    OP_KILL,           /* target                             */
    OP_INSERT,         /* target                             */
    OP_REMOVE,         /* target                             */
    OP_RUN,            /* target                             */
    OP_SWITCH,         /* target                             */
    OP_SCHEDULE,
    OP_SCHEDULE_REMOVE,
    OP_SLEEP,          /* ms                                 */
    OP_SL_RUN,         /* main: sl_run; a tasklet: SL_ESTATE */
    OP_PROBE,          /* ch, target: observations as value  */
    OP_THROW,          /* target, arg: bit 0 SL_THROW_PENDING,
                          bit 1 the code is SL_EKILLED (a kill)
                          instead of the op's own mt_throw    */
    OP_SEND_SEQ,       /* ch, arg: n (1..3); message j is the
                          op's value + j (a select's case j)  */
    OP__COUNT
};

/* Log kinds beyond the ops. */
#define EV_END 100     /* a tasklet's script ended (its function returns) */
#define EV_FINAL 101   /* main, after the drain: rc 0 or MT_STUCK, value
                          the end state (livecount, balances, counts)    */
#define EV_BAD 102     /* main saw an impossible channel state after a
                          drain's sl_run (rc: which, value: channel)     */
#define EV_ALIVE 103   /* main, when the drain gives up: tasklet `script`
                          is still alive; value: its predicates packed
                          as a probe's                                  */
#define EV_DRAIN 0x80  /* or'ed into an op kind: an op of main's drain   */

/* rc of an op whose target tasklet does not exist (not spawned, or its
 * spawn failed): the op is skipped. Positive: no API call returns it. */
#define MT_SKIP 1
#define MT_STUCK 2     /* EV_FINAL: the drain gave up                     */
#define MT_BAD_RECV_WAITS_ON_RING 1 /* EV_BAD: balance < 0, count > 0     */
#define MT_BAD_SEND_WAITS_ON_ROOM 2 /* EV_BAD: balance > 0, count < cap   */

struct mt_case {
    int8_t ch; /* -1: a NULL case (ignored by sl_select) */
    int8_t op; /* SL_SEND or SL_RECV */
};

struct mt_op {
    uint8_t kind;
    int8_t ch;
    int8_t target; /* script index of the target tasklet; 0 is main */
    int8_t pin;    /* spawn: worker index (taken modulo the workers), -1 */
    int8_t script; /* spawn: the script the new tasklet runs */
    int8_t ncases;
    int8_t arg;    /* set_pref: the value; set_sched_all: 0 or 1 */
    int32_t ms;    /* timeouts and sleep; -1: none (select) */
    struct mt_case cases[MT_MAX_CASES];
};

struct mt_script {
    int n;
    struct mt_op ops[MT_MAX_OPS];
};

struct mt_chan {
    uint8_t cap;       /* 0: rendezvous */
    int8_t pref;       /* initial preference */
    uint8_t sched_all; /* initial schedule_all */
};

struct mt_prog {
    uint64_t seed;
    int nchans;
    struct mt_chan ch[MT_MAX_CHANS];
    int nscripts;
    struct mt_script s[MT_MAX_SCRIPTS];
};

struct mt_event {
    uint8_t script;
    uint8_t kind; /* enum mt_op_kind (| EV_DRAIN), or EV_* */
    uint16_t op;  /* op index; a drain op: its number in the drain */
    int32_t rc;
    int64_t val;  /* the value received, sent (drain), or observed */
};

struct mt_log {
    int n; /* events written; may exceed MT_MAX_EVENTS (then truncated) */
    struct mt_event ev[MT_MAX_EVENTS];
};

/* Is o a call whose wait a timer may end? */
static inline bool mt_timed(const struct mt_op *o)
{
    return (o->kind == OP_SEND_TO || o->kind == OP_RECV_TO ||
            o->kind == OP_SELECT || o->kind == OP_SLEEP) && o->ms > 0;
}

/* The message a send op (case 0) or a select's send case carries: unique
 * in the program, never NULL. Drain sends carry MT_DRAIN_VALUE + k. */
static inline int64_t mt_value(int script, int op, int cas)
{
    return 1 + ((int64_t)script * 64 + op) * 8 + cas;
}
#define MT_DRAIN_VALUE 100000
/* The error code a send_error op sends (outside SL_E* and -errno). */
static inline int mt_err(int script, int op)
{
    return -(200000 + script * 64 + op);
}
#define MT_ERR_MIN (-(200000 + MT_MAX_SCRIPTS * 64))
/* The code a throw op throws (outside SL_E*, -errno and the above). */
static inline int mt_throw(int script, int op)
{
    return -(300000 + script * 64 + op);
}
#define MT_THROW_MIN (-(300000 + MT_MAX_SCRIPTS * 64))
static inline bool mt_is_thrown(int rc)
{
    return rc <= -300000 && rc > MT_THROW_MIN;
}
/* The value op i of script k carries: its message, send_error code or
 * thrown code. */
static inline int64_t mt_op_value(int k, int i, const struct mt_op *o)
{
    return o->kind == OP_SEND_ERR ? mt_err(k, i)
           : o->kind == OP_THROW  ? mt_throw(k, i)
                                  : mt_value(k, i, 0);
}

/* What a program may contain: each bit a feature the generator may use;
 * --no-NAME clears it (main.c), to run clean while a feature is broken. */
enum mt_feature {
    F_KILL = 1u << 0,
    F_SELECT = 1u << 1,
    F_SELECT_SEND_BUFFERED = 1u << 2, /* a select's send case on a
                                         buffered channel              */
    F_TIMEOUT = 1u << 3,             /* send/receive/select timeouts   */
    F_SLEEP = 1u << 4,
    F_CLOSE = 1u << 5,
    F_RUNQ = 1u << 6,                /* insert, remove, run, switch    */
    F_SCHEDULE_REMOVE = 1u << 7,
    F_PIN = 1u << 8,                 /* sl_spawn_ex with attr.worker   */
    F_BUFFERED = 1u << 9,
    F_SEND_ERROR = 1u << 10,
    F_PREF = 1u << 11,               /* preference, schedule_all       */
    F_NESTED_SPAWN = 1u << 12,       /* tasklets spawn tasklets        */
    F_PROBE = 1u << 13,
    F_MAIN_BLOCKS = 1u << 14,        /* main's own blocking channel ops */
    F_SELECT_MAIN = 1u << 15,        /* main's untimed select          */
    F_RUNQ_WAITING = 1u << 16,       /* insert/remove/run/switch may
                                        target a sleeping or selecting
                                        tasklet (see README)            */
    F_REMOVE_MAIN = 1u << 17,        /* remove/switch/run on main       */
    F_RUNQ_TIMED = 1u << 18,         /* insert/remove/run/switch of a
                                        tasklet inside a call with a
                                        timeout or a sleep (see README) */
    F_PIN_REMOTE = 1u << 19,         /* a spawn pinned to another worker
                                        than the spawner's (off: pins
                                        go to the spawner's worker)    */
    F_THROW = 1u << 20,              /* sl_tasklet_throw, pending kills  */
    F_BOUND = 1u << 21,              /* spawns made paused (bound, not
                                        scheduled)                      */
    F_SEND_SEQ = 1u << 22,           /* sl_channel_send_sequence        */
    F_ALL = (1u << 23) - 1,
};

struct mt_feature_name {
    const char *name;
    unsigned bit;
    const char *what;
};
extern const struct mt_feature_name mt_feature_names[];

/* How to run: worker count and runtime options. */
struct mt_runcfg {
    int workers;
    int stack_mode; /* SL_STACK_FIXED or SL_STACK_COPY */
    int steal;      /* sl_config.steal */
    unsigned features; /* the generator's, also read by the runs */
    bool spawn_gate;   /* a tasklet waits (yielding) until its spawner
                          holds a reference to it: a pinned spawn's
                          handle then outlives sl_spawn_ex (README) */
};

/* gen.c */
void mt_generate(struct mt_prog *p, uint64_t seed, unsigned features);
void mt_print_prog(FILE *out, const struct mt_prog *p);
void mt_print_event(FILE *out, const struct mt_prog *p,
                    const struct mt_event *e);
const char *mt_op_name(int kind);
int mt_total_ops(const struct mt_prog *p);
/* A program as one line of text, and back (false: not one). */
void mt_encode(const struct mt_prog *p, char *buf, size_t cap);
bool mt_decode(struct mt_prog *p, const char *s);
/* Drop scripts no spawn op reaches and channels no op names, renumber. */
void mt_compact(struct mt_prog *p);

/* lib.c: run p on the library; the log of what happened. */
void mt_run_lib(const struct mt_prog *p, const struct mt_runcfg *cfg,
                struct mt_log *log);

/* ref.c: run p on the reference model (one worker). */
void mt_run_ref(const struct mt_prog *p, unsigned features,
                struct mt_log *log);

/* check.c: 0 when the log keeps every invariant, else a short signature
 * (static string) and a description in msg. */
const char *mt_check_invariants(const struct mt_prog *p,
                                const struct mt_log *log, int workers,
                                char *msg, size_t cap);
/* The index of the first event where a and b differ, or -1. */
int mt_first_difference(const struct mt_log *a, const struct mt_log *b);

/* drain.c: main's drain after its script, one action at a time, shared by
 * the library run and the model so that both do exactly the same. */
struct mt_drain {
    int phase, round, k, c, tries, limit;
    int64_t next_value;
    int nops; /* drain ops issued so far */
    bool settled; /* clean, and the last sl_run came after that */
};
struct mt_drain_view { /* what the drain looks at, from lib or model */
    int (*balance)(void *ctx, int c);
    int (*count)(void *ctx, int c);
    bool (*paused)(void *ctx, int k); /* false when k does not exist */
    int (*livecount)(void *ctx);
    /* tasklet k's predicates packed as a probe's; 0: not alive */
    int64_t (*preds)(void *ctx, int k);
    void *ctx;
};
enum { DA_OP, DA_BAD, DA_DONE, DA_STUCK };
struct mt_drain_act {
    int what;        /* DA_* */
    struct mt_op op; /* DA_OP: the op (sl_run, insert, try_send, try_recv) */
    int64_t value;   /* DA_OP try_send: the message; DA_BAD: the channel */
    int bad;         /* DA_BAD: MT_BAD_* */
};
void mt_drain_init(struct mt_drain *d, const struct mt_prog *p);
struct mt_drain_act mt_drain_next(struct mt_drain *d, const struct mt_prog *p,
                                  const struct mt_drain_view *v);
/* The drain gave up: log an EV_ALIVE event per tasklet still alive. */
void mt_drain_log_alive(const struct mt_prog *p, const struct mt_drain_view *v,
                        void (*log)(int script, int kind, int op, int rc,
                                    int64_t val));
/* EV_FINAL's value: the end state packed (0: all clean). */
int64_t mt_final_state(const struct mt_prog *p, const struct mt_drain_view *v);

/* Observations of a probe op packed into one value. */
int64_t mt_probe_pack(int balance, int count, bool closing, bool closed,
                      int runcount, int livecount, int alive, int blocked,
                      int scheduled, int paused);

#endif /* SL_MODEL_H */
