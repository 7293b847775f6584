/* gen.c - random programs from a seed, and their listing. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <stackless.h>

#include "model.h"

const struct mt_feature_name mt_feature_names[] = {
    {"kill", F_KILL, "sl_tasklet_kill"},
    {"select", F_SELECT, "sl_select"},
    {"select-send-buffered", F_SELECT_SEND_BUFFERED,
     "select SL_SEND cases on buffered channels"},
    {"timeout", F_TIMEOUT, "send/receive/select timeouts"},
    {"sleep", F_SLEEP, "sl_sleep_ms"},
    {"close", F_CLOSE, "sl_channel_close/open"},
    {"runq", F_RUNQ, "sl_tasklet_insert/remove/run/switch"},
    {"schedule-remove", F_SCHEDULE_REMOVE, "sl_schedule_remove"},
    {"pin", F_PIN, "sl_spawn_ex pinned to a worker"},
    {"buffered", F_BUFFERED, "buffered channels"},
    {"send-error", F_SEND_ERROR, "sl_channel_send_error"},
    {"pref", F_PREF, "preference and schedule_all"},
    {"nested-spawn", F_NESTED_SPAWN, "tasklets spawning tasklets"},
    {"probe", F_PROBE, "state probes (balance, counts, predicates)"},
    {"main-blocks", F_MAIN_BLOCKS, "main's blocking channel calls"},
    {"main-select", F_SELECT_MAIN, "main's select without timeout"},
    {"runq-waiting", F_RUNQ_WAITING,
     "insert/remove/run/switch of a sleeping or selecting tasklet"},
    {"runq-main", F_REMOVE_MAIN, "remove/run/switch targeting main"},
    {"pin-remote", F_PIN_REMOTE,
     "a spawn pinned to another worker than the spawner's"},
    {"runq-timed", F_RUNQ_TIMED,
     "insert/remove/run/switch of a tasklet inside a timed call"},
    {"throw", F_THROW, "sl_tasklet_throw, pending or not, and pending kills"},
    {"bound", F_BOUND, "spawns made paused (sl_spawn_attr.paused)"},
    {"send-sequence", F_SEND_SEQ, "sl_channel_send_sequence"},
    {NULL, 0, NULL},
};

static const char *const op_names[OP__COUNT] = {
    [OP_SPAWN] = "spawn",
    [OP_SEND] = "send",
    [OP_RECV] = "receive",
    [OP_TRY_SEND] = "try_send",
    [OP_TRY_RECV] = "try_receive",
    [OP_SEND_TO] = "send_timeout",
    [OP_RECV_TO] = "receive_timeout",
    [OP_SEND_ERR] = "send_error",
    [OP_SELECT] = "select",
    [OP_SET_PREF] = "set_preference",
    [OP_SET_SCHED_ALL] = "set_schedule_all",
    [OP_CLOSE] = "close",
    [OP_OPEN] = "open",
    [OP_KILL] = "kill",
    [OP_INSERT] = "insert",
    [OP_REMOVE] = "remove",
    [OP_RUN] = "run",
    [OP_SWITCH] = "switch",
    [OP_SCHEDULE] = "schedule",
    [OP_SCHEDULE_REMOVE] = "schedule_remove",
    [OP_SLEEP] = "sleep",
    [OP_SL_RUN] = "sl_run",
    [OP_PROBE] = "probe",
    [OP_THROW] = "throw",
    [OP_SEND_SEQ] = "send_sequence",
};

const char *mt_op_name(int kind)
{
    kind &= ~EV_DRAIN;
    if (kind == EV_END)
        return "end";
    if (kind == EV_FINAL)
        return "final";
    if (kind == EV_BAD)
        return "bad-state";
    if (kind == EV_ALIVE)
        return "alive";
    return kind >= 0 && kind < OP__COUNT ? op_names[kind] : "?";
}


static bool uses_target(int kind)
{
    return kind == OP_KILL || kind == OP_INSERT || kind == OP_REMOVE ||
           kind == OP_RUN || kind == OP_SWITCH || kind == OP_PROBE ||
           kind == OP_THROW;
}

static bool uses_chan(int kind)
{
    return kind == OP_SEND || kind == OP_RECV || kind == OP_TRY_SEND ||
           kind == OP_TRY_RECV || kind == OP_SEND_TO || kind == OP_RECV_TO ||
           kind == OP_SEND_ERR || kind == OP_SET_PREF ||
           kind == OP_SET_SCHED_ALL || kind == OP_CLOSE || kind == OP_OPEN ||
           kind == OP_PROBE || kind == OP_SEND_SEQ;
}

/* ---- the generator -------------------------------------------------------- */

struct rng {
    uint64_t s;
};

static uint64_t next(struct rng *r) /* splitmix64 */
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int below(struct rng *r, int n)
{
    return (int)(next(r) % (uint64_t)n);
}

static bool chance(struct rng *r, int percent)
{
    return below(r, 100) < percent;
}

static int pick(struct rng *r, const int *v, int n)
{
    return v[below(r, n)];
}

static const int timeouts[] = {0, 1, 1, 2, 3, 5};
static const int sleeps[] = {0, 1, 2, 3};
static const int caps[] = {1, 1, 2, 2, 3, 4, 5, 8};

struct weight {
    int kind, main, tasklet; /* weight when main runs it, a tasklet does */
    unsigned need;           /* features it needs */
};

static const struct weight weights[] = {
    {OP_SEND, 8, 10, 0},
    {OP_RECV, 8, 10, 0},
    {OP_TRY_SEND, 3, 4, 0},
    {OP_TRY_RECV, 3, 4, 0},
    {OP_SEND_TO, 3, 4, F_TIMEOUT},
    {OP_RECV_TO, 3, 4, F_TIMEOUT},
    {OP_SEND_ERR, 1, 2, F_SEND_ERROR},
    {OP_SELECT, 5, 8, F_SELECT},
    {OP_SET_PREF, 1, 2, F_PREF},
    {OP_SET_SCHED_ALL, 1, 1, F_PREF},
    {OP_CLOSE, 1, 2, F_CLOSE},
    {OP_OPEN, 1, 2, F_CLOSE},
    {OP_KILL, 2, 3, F_KILL},
    {OP_INSERT, 2, 2, F_RUNQ},
    {OP_REMOVE, 2, 2, F_RUNQ},
    {OP_RUN, 2, 2, F_RUNQ},
    {OP_SWITCH, 1, 2, F_RUNQ},
    {OP_SCHEDULE, 4, 5, 0},
    {OP_SCHEDULE_REMOVE, 1, 2, F_SCHEDULE_REMOVE},
    {OP_SLEEP, 2, 3, F_SLEEP},
    {OP_SL_RUN, 10, 1, 0},
    {OP_PROBE, 2, 3, F_PROBE},
    {OP_THROW, 2, 3, F_THROW},
    {OP_SEND_SEQ, 2, 3, F_SEND_SEQ},
};
#define NWEIGHTS ((int)(sizeof weights / sizeof weights[0]))

static bool main_blocking(int kind)
{
    return kind == OP_SEND || kind == OP_RECV || kind == OP_SEND_ERR ||
           kind == OP_SEND_SEQ;
}

/* Swarm testing (Groce et al., ISSTA 2012): each program uses a random
 * subset of the op kinds, so that what the others would crowd out (two
 * kills in a row, selects with nothing else around) comes up too. */
static unsigned swarm;

static bool kind_ok(const struct weight *w, bool is_main, unsigned f)
{
    return (w->need & f) == w->need && (swarm & (1u << w->kind)) &&
           !(is_main && !(f & F_MAIN_BLOCKS) && main_blocking(w->kind));
}

static int pick_kind(struct rng *r, bool is_main, unsigned f)
{
    int total = 0;
    for (int i = 0; i < NWEIGHTS; i++) {
        const struct weight *w = &weights[i];
        if (!kind_ok(w, is_main, f))
            continue;
        total += is_main ? w->main : w->tasklet;
    }
    if (total == 0)
        return OP_SCHEDULE;
    int x = below(r, total);
    for (int i = 0; i < NWEIGHTS; i++) {
        const struct weight *w = &weights[i];
        if (!kind_ok(w, is_main, f))
            continue;
        x -= is_main ? w->main : w->tasklet;
        if (x < 0)
            return w->kind;
    }
    return OP_SCHEDULE;
}

static void gen_select(struct rng *r, const struct mt_prog *p, bool is_main,
                       unsigned f, struct mt_op *o)
{
    o->ncases = (int8_t)(1 + below(r, MT_MAX_CASES));
    for (int i = 0; i < o->ncases; i++) {
        struct mt_case *c = &o->cases[i];
        c->ch = (int8_t)(chance(r, 5) ? -1 : below(r, p->nchans));
        c->op = (int8_t)(chance(r, 50) ? SL_SEND : SL_RECV);
        if (c->ch >= 0 && c->op == SL_SEND && p->ch[c->ch].cap > 0 &&
            !(f & F_SELECT_SEND_BUFFERED))
            c->op = SL_RECV;
        /* One channel both ways is SL_EINVAL: rarely on purpose. */
        for (int j = 0; j < i && !chance(r, 3); j++)
            if (o->cases[j].ch == c->ch)
                c->op = o->cases[j].op;
    }
    o->ms = chance(r, 40) || !(f & F_TIMEOUT) ? -1 : pick(r, timeouts, 6);
    if (is_main && o->ms < 0 && !(f & F_SELECT_MAIN) && (f & F_TIMEOUT))
        o->ms = pick(r, timeouts, 6);
    else if (is_main && o->ms < 0 && !(f & F_SELECT_MAIN))
        o->ms = 0;
}

static void gen_op(struct rng *r, const struct mt_prog *p, bool is_main,
                   unsigned f, struct mt_op *o)
{
    memset(o, 0, sizeof *o);
    o->kind = (uint8_t)pick_kind(r, is_main, f);
    o->ch = (int8_t)below(r, p->nchans);
    o->target = (int8_t)below(r, p->nscripts);
    o->pin = -1;
    o->ms = -1;
    switch (o->kind) {
    case OP_SEND_TO:
    case OP_RECV_TO:
        o->ms = pick(r, timeouts, 6);
        break;
    case OP_SLEEP:
        o->ms = pick(r, sleeps, 4);
        break;
    case OP_SET_PREF:
        o->arg = (int8_t)(below(r, 3) - 1);
        break;
    case OP_SET_SCHED_ALL:
        o->arg = (int8_t)chance(r, 50);
        break;
    case OP_SEND_SEQ:
        o->arg = (int8_t)(1 + below(r, 3));
        break;
    case OP_SELECT:
        gen_select(r, p, is_main, f, o);
        break;
    case OP_KILL: /* main only now and then: it is always SL_EINVAL */
        if (o->target == 0 && p->nscripts > 1 && !chance(r, 10))
            o->target = (int8_t)(1 + below(r, p->nscripts - 1));
        break;
    case OP_THROW: /* pending or not; a kill one time in four */
        o->arg = (int8_t)(below(r, 2) | (chance(r, 25) ? 2 : 0));
        if (o->target == 0 && p->nscripts > 1 && !chance(r, 25))
            o->target = (int8_t)(1 + below(r, p->nscripts - 1));
        break;
    case OP_REMOVE:
    case OP_RUN:
    case OP_SWITCH:
        if (!(f & F_REMOVE_MAIN) && o->target == 0)
            o->target = (int8_t)(p->nscripts > 1 ? 1 + below(r, p->nscripts - 1) : 0);
        if (o->target == 0) /* nothing else to aim at */
            o->kind = OP_SCHEDULE;
        break;
    default:
        break;
    }
    if (!uses_target(o->kind))
        o->target = 0;
    if (!uses_chan(o->kind))
        o->ch = 0;
}

static void insert_op(struct mt_script *s, int at, const struct mt_op *o)
{
    memmove(&s->ops[at + 1], &s->ops[at], (size_t)(s->n - at) * sizeof *o);
    s->ops[at] = *o;
    s->n++;
}

void mt_generate(struct mt_prog *p, uint64_t seed, unsigned f)
{
    struct rng r = {seed};
    memset(p, 0, sizeof *p);
    p->seed = seed;
    swarm = ~0u;
    if (chance(&r, 60)) { /* most programs: a swarm of some op kinds */
        swarm = 1u << OP_SEND | 1u << OP_RECV | 1u << OP_SL_RUN;
        for (int k = 0; k < OP__COUNT; k++)
            if (chance(&r, 50))
                swarm |= 1u << k;
    }
    p->nchans = 1 + below(&r, 3);
    for (int c = 0; c < p->nchans; c++) {
        struct mt_chan *ch = &p->ch[c];
        ch->cap = (uint8_t)((f & F_BUFFERED) && chance(&r, 45) ? pick(&r, caps, 8) : 0);
        ch->pref = -1;
        if ((f & F_PREF) && chance(&r, 50))
            ch->pref = (int8_t)(below(&r, 3) - 1);
        ch->sched_all = (uint8_t)((f & F_PREF) && chance(&r, 15));
    }
    p->nscripts = 2 + below(&r, MT_MAX_SCRIPTS - 1);
    /* Room for the spawn ops: a script gets at most MT_MAX_OPS - spawns. */
    int parent[MT_MAX_SCRIPTS] = {0}, kids[MT_MAX_SCRIPTS] = {0};
    for (int k = 1; k < p->nscripts; k++) {
        parent[k] = (f & F_NESTED_SPAWN) && k > 1 && chance(&r, 35)
                        ? 1 + below(&r, k - 1)
                        : 0;
        kids[parent[k]]++;
    }
    for (int k = 0; k < p->nscripts; k++) {
        struct mt_script *s = &p->s[k];
        int most = (k == 0 ? 10 : 9) - kids[k];
        s->n = (k == 0 ? 2 : 1) + below(&r, most > 2 ? most - 1 : 1);
        for (int i = 0; i < s->n; i++)
            gen_op(&r, p, k == 0, f, &s->ops[i]);
    }
    for (int k = 1; k < p->nscripts; k++) {
        struct mt_script *s = &p->s[parent[k]];
        struct mt_op o;
        memset(&o, 0, sizeof o);
        o.kind = OP_SPAWN;
        o.script = (int8_t)k;
        o.ms = -1;
        o.pin = (int8_t)((f & F_PIN) && chance(&r, 50) ? below(&r, 4) : -1);
        o.arg = (int8_t)((f & F_BOUND) && chance(&r, 20)); /* paused */
        /* main spawns early, so that most tasklets get going */
        int at = parent[k] == 0 && chance(&r, 70) ? below(&r, s->n < 2 ? s->n + 1 : 2)
                                                : below(&r, s->n + 1);
        insert_op(s, at, &o);
    }
}

int mt_total_ops(const struct mt_prog *p)
{
    int n = 0;
    for (int k = 0; k < p->nscripts; k++)
        n += p->s[k].n;
    return n;
}

/* ---- compaction (after shrinking) ----------------------------------------- */

void mt_compact(struct mt_prog *p)
{
    int map[MT_MAX_SCRIPTS];
    bool reach[MT_MAX_SCRIPTS] = {true};
    for (int k = 0; k < p->nscripts; k++) /* parents come first */
        if (reach[k])
            for (int i = 0; i < p->s[k].n; i++)
                if (p->s[k].ops[i].kind == OP_SPAWN)
                    reach[p->s[k].ops[i].script] = true;
    int n = 0;
    for (int k = 0; k < p->nscripts; k++)
        map[k] = reach[k] ? n++ : -1;
    /* Ops aimed at a tasklet that never exists are skips: drop them. */
    bool used[MT_MAX_CHANS] = {false};
    struct mt_prog q = *p;
    q.nscripts = n;
    for (int k = 0; k < p->nscripts; k++) {
        if (map[k] < 0)
            continue;
        struct mt_script *d = &q.s[map[k]];
        d->n = 0;
        for (int i = 0; i < p->s[k].n; i++) {
            struct mt_op o = p->s[k].ops[i];
            switch (o.kind) {
            case OP_SPAWN:
                o.script = (int8_t)map[o.script];
                break;
            case OP_KILL:
            case OP_THROW:
            case OP_INSERT:
            case OP_REMOVE:
            case OP_RUN:
            case OP_SWITCH:
                if (map[o.target] < 0)
                    continue;
                o.target = (int8_t)map[o.target];
                break;
            case OP_PROBE:
                o.target = (int8_t)(map[o.target] < 0 ? 0 : map[o.target]);
                used[o.ch] = true;
                break;
            case OP_SELECT:
                for (int c = 0; c < o.ncases; c++)
                    if (o.cases[c].ch >= 0)
                        used[o.cases[c].ch] = true;
                break;
            case OP_SEND: case OP_RECV: case OP_TRY_SEND: case OP_TRY_RECV:
            case OP_SEND_TO: case OP_RECV_TO: case OP_SEND_ERR:
            case OP_SET_PREF: case OP_SET_SCHED_ALL: case OP_CLOSE:
            case OP_OPEN: case OP_SEND_SEQ:
                used[o.ch] = true;
                break;
            default:
                break;
            }
            if (!uses_target(o.kind))
                o.target = 0;
            if (!uses_chan(o.kind))
                o.ch = 0;
            d->ops[d->n++] = o;
        }
    }
    int cmap[MT_MAX_CHANS], nc = 0;
    for (int c = 0; c < p->nchans; c++)
        cmap[c] = used[c] ? nc++ : -1;
    if (nc == 0) { /* keep one channel: a program always has one */
        cmap[0] = 0;
        nc = 1;
    }
    for (int c = 0; c < p->nchans; c++)
        if (cmap[c] >= 0)
            q.ch[cmap[c]] = p->ch[c];
    q.nchans = nc;
    for (int k = 0; k < q.nscripts; k++)
        for (int i = 0; i < q.s[k].n; i++) {
            struct mt_op *o = &q.s[k].ops[i];
            if (o->ch >= 0 && o->ch < p->nchans)
                o->ch = (int8_t)(cmap[o->ch] < 0 ? 0 : cmap[o->ch]);
            for (int c = 0; c < o->ncases; c++)
                if (o->cases[c].ch >= 0)
                    o->cases[c].ch = (int8_t)cmap[o->cases[c].ch];
        }
    *p = q;
}

/* ---- listing -------------------------------------------------------------- */

static void who(char *b, size_t n, int script)
{
    if (script == 0)
        snprintf(b, n, "main");
    else
        snprintf(b, n, "t%d", script);
}

/* A message or error value in the listing's terms: m<script>.<op>[/case]. */
static void value_name(char *b, size_t n, int64_t v)
{
    if (v >= MT_DRAIN_VALUE && v < MT_DRAIN_VALUE + 100000) {
        snprintf(b, n, "d%" PRId64, v - MT_DRAIN_VALUE);
    } else if (v >= 1 && v <= mt_value(MT_MAX_SCRIPTS, 0, 0)) {
        int64_t x = v - 1;
        int cas = (int)(x % 8), op = (int)(x / 8 % 64), s = (int)(x / 512);
        if (cas)
            snprintf(b, n, "m%d.%d/%d", s, op, cas);
        else
            snprintf(b, n, "m%d.%d", s, op);
    } else {
        snprintf(b, n, "0x%" PRIx64, (uint64_t)v);
    }
}

static void rc_name(char *b, size_t n, int rc)
{
    if (rc == MT_SKIP)
        snprintf(b, n, "skip");
    else if (rc <= -200000 && rc > MT_ERR_MIN) {
        int x = -rc - 200000;
        snprintf(b, n, "err%s%d.%d", "", x / 64, x % 64);
    } else if (mt_is_thrown(rc)) {
        int x = -rc - 300000;
        snprintf(b, n, "thr%d.%d", x / 64, x % 64);
    } else if (rc >= 0)
        snprintf(b, n, "%d", rc);
    else
        snprintf(b, n, "%s", sl_err_name(rc));
}

static void print_op(FILE *out, int script, int i, const struct mt_op *o)
{
    char w[16], t[16], v[24];
    who(w, sizeof w, script);
    who(t, sizeof t, o->target);
    value_name(v, sizeof v, mt_value(script, i, 0));
    fprintf(out, "  %s.%d\t", w, i);
    switch (o->kind) {
    case OP_SPAWN:
        if (o->pin >= 0)
            fprintf(out, "t%d = sl_spawn_ex(worker %d%s, script t%d)",
                    o->script, o->pin, o->arg ? ", paused" : "", o->script);
        else if (o->arg)
            fprintf(out, "t%d = sl_spawn_ex(paused, script t%d)", o->script,
                    o->script);
        else
            fprintf(out, "t%d = sl_spawn(script t%d)", o->script, o->script);
        break;
    case OP_SEND:
        fprintf(out, "sl_channel_send(c%d, %s)", o->ch, v);
        break;
    case OP_SEND_SEQ:
        fprintf(out, "sl_channel_send_sequence(c%d, {%s", o->ch, v);
        for (int j = 1; j < o->arg; j++) {
            value_name(v, sizeof v, mt_value(script, i, j));
            fprintf(out, ", %s", v);
        }
        fprintf(out, "}, %d)", o->arg);
        break;
    case OP_RECV:
        fprintf(out, "sl_channel_receive(c%d, &v)", o->ch);
        break;
    case OP_TRY_SEND:
        fprintf(out, "sl_channel_try_send(c%d, %s)", o->ch, v);
        break;
    case OP_TRY_RECV:
        fprintf(out, "sl_channel_try_receive(c%d, &v)", o->ch);
        break;
    case OP_SEND_TO:
        fprintf(out, "sl_channel_send_timeout(c%d, %s, %d)", o->ch, v, o->ms);
        break;
    case OP_RECV_TO:
        fprintf(out, "sl_channel_receive_timeout(c%d, &v, %d)", o->ch, o->ms);
        break;
    case OP_SEND_ERR: {
        char e[24];
        rc_name(e, sizeof e, mt_err(script, i));
        fprintf(out, "sl_channel_send_error(c%d, %s)", o->ch, e);
        break;
    }
    case OP_SELECT:
        fprintf(out, "sl_select({");
        for (int c = 0; c < o->ncases; c++) {
            const struct mt_case *k = &o->cases[c];
            value_name(v, sizeof v, mt_value(script, i, c));
            if (k->ch < 0)
                fprintf(out, "%s{NULL}", c ? ", " : "");
            else if (k->op == SL_SEND)
                fprintf(out, "%s{c%d SEND %s}", c ? ", " : "", k->ch, v);
            else
                fprintf(out, "%s{c%d RECV}", c ? ", " : "", k->ch);
        }
        fprintf(out, "}, %d, %d)", o->ncases, o->ms);
        break;
    case OP_SET_PREF:
        fprintf(out, "sl_channel_set_preference(c%d, %d)", o->ch, o->arg);
        break;
    case OP_SET_SCHED_ALL:
        fprintf(out, "sl_channel_set_schedule_all(c%d, %s)", o->ch,
                o->arg ? "true" : "false");
        break;
    case OP_CLOSE:
        fprintf(out, "sl_channel_close(c%d)", o->ch);
        break;
    case OP_OPEN:
        fprintf(out, "sl_channel_open(c%d)", o->ch);
        break;
    case OP_KILL:
    case OP_INSERT:
    case OP_REMOVE:
    case OP_RUN:
    case OP_SWITCH:
        fprintf(out, "sl_tasklet_%s(%s)", mt_op_name(o->kind), t);
        break;
    case OP_THROW: {
        char e[24];
        rc_name(e, sizeof e, o->arg & 2 ? SL_EKILLED : mt_throw(script, i));
        fprintf(out, "sl_tasklet_throw(%s, %s, %s)", t, e,
                o->arg & 1 ? "SL_THROW_PENDING" : "0");
        break;
    }
    case OP_SCHEDULE:
        fprintf(out, "sl_schedule()");
        break;
    case OP_SCHEDULE_REMOVE:
        fprintf(out, "sl_schedule_remove()");
        break;
    case OP_SLEEP:
        fprintf(out, "sl_sleep_ms(%d)", o->ms);
        break;
    case OP_SL_RUN:
        fprintf(out, "sl_run()");
        break;
    case OP_PROBE:
        fprintf(out, "probe(c%d, %s)", o->ch, t);
        break;
    default:
        fprintf(out, "?");
    }
    fputc('\n', out);
}

void mt_print_prog(FILE *out, const struct mt_prog *p)
{
    fprintf(out, "program %" PRIu64 ": %d channel(s), main + %d tasklet(s)\n",
            p->seed, p->nchans, p->nscripts - 1);
    for (int c = 0; c < p->nchans; c++) {
        const struct mt_chan *ch = &p->ch[c];
        if (ch->cap)
            fprintf(out, "  c%d = sl_channel_new_buffered(%d)", c, ch->cap);
        else
            fprintf(out, "  c%d = sl_channel_new()", c);
        if (ch->pref != -1)
            fprintf(out, ", preference %d", ch->pref);
        if (ch->sched_all)
            fprintf(out, ", schedule_all");
        fputc('\n', out);
    }
    for (int k = 0; k < p->nscripts; k++) {
        char w[16];
        who(w, sizeof w, k);
        fprintf(out, " %s:%s\n", w, p->s[k].n ? "" : " (nothing)");
        for (int i = 0; i < p->s[k].n; i++)
            print_op(out, k, i, &p->s[k].ops[i]);
    }
    fprintf(out, " then main drains: sl_run, insert the paused, empty every "
                 "channel with try_send/try_receive, until nothing is alive\n");
}

static void probe_print(FILE *out, int64_t v)
{
    static const char *const tri[] = {"-", "0", "1"};
    fprintf(out, "balance %d count %d closing %d closed %d runcount %d "
                 "livecount %d alive %s blocked %s scheduled %s paused %s",
            (int)(v & 0xff) - 64, (int)(v >> 8 & 0xff), (int)(v >> 16 & 1),
            (int)(v >> 17 & 1), (int)(v >> 20 & 0xff), (int)(v >> 28 & 0xff),
            tri[v >> 36 & 3], tri[v >> 38 & 3], tri[v >> 40 & 3],
            tri[v >> 42 & 3]);
}

void mt_print_event(FILE *out, const struct mt_prog *p, const struct mt_event *e)
{
    char w[16], r[24], v[24];
    (void)p;
    who(w, sizeof w, e->script);
    rc_name(r, sizeof r, e->rc);
    int kind = e->kind & ~EV_DRAIN;
    if (e->kind == EV_END) {
        fprintf(out, "%s ends\n", w);
        return;
    }
    if (e->kind == EV_FINAL) {
        fprintf(out, "main: end state rc %d livecount %d |balance| %d count %d\n",
                e->rc, (int)(e->val & 0xfff), (int)(e->val >> 12 & 0xfff),
                (int)(e->val >> 24));
        return;
    }
    if (e->kind == EV_ALIVE) {
        int64_t v = e->val;
        fprintf(out, "main: %s is still alive: blocked %d scheduled %d paused %d\n",
                w, (int)(v >> 38 & 3) - 1, (int)(v >> 40 & 3) - 1,
                (int)(v >> 42 & 3) - 1);
        return;
    }
    if (e->kind == EV_BAD) {
        fprintf(out, "main: after sl_run, c%d has %s\n", (int)e->val,
                e->rc == MT_BAD_RECV_WAITS_ON_RING
                    ? "a receiver waiting while its ring holds messages"
                    : "a sender waiting while its ring has room");
        return;
    }
    if (e->kind & EV_DRAIN)
        fprintf(out, "main drain#%d %s -> %s", e->op, mt_op_name(kind), r);
    else
        fprintf(out, "%s.%d %s -> %s", w, e->op, mt_op_name(kind), r);
    if (kind == OP_PROBE) {
        fputc(' ', out);
        probe_print(out, e->val);
    } else if (kind == OP_INSERT && (e->kind & EV_DRAIN)) {
        fprintf(out, " (t%d)", (int)e->val);
    } else if (e->val) {
        value_name(v, sizeof v, e->val);
        fprintf(out, " %s %s", kind == OP_TRY_SEND ? "sent" : "value", v);
    }
    fputc('\n', out);
}

/* ---- a program as one line ----------------------------------------------- */

/* "P<seed>/<cap>.<pref>.<sched_all>,...|<op>;<op>;...|..." with an op
 * "<kind>.<ch>.<target>.<pin>.<script>.<arg>.<ms>[.<case ch>.<case op>...]"
 * and one "|" part per script (main's first). */
void mt_encode(const struct mt_prog *p, char *buf, size_t cap)
{
    size_t n = 0;
#define PUT(...)                                                             \
    do {                                                                     \
        int w_ = snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__);      \
        if (w_ > 0)                                                          \
            n += (size_t)w_;                                                 \
    } while (0)
    PUT("P%" PRIu64 "/", p->seed);
    for (int c = 0; c < p->nchans; c++)
        PUT("%s%d.%d.%d", c ? "," : "", p->ch[c].cap, p->ch[c].pref,
            p->ch[c].sched_all);
    for (int k = 0; k < p->nscripts; k++) {
        PUT("|");
        for (int i = 0; i < p->s[k].n; i++) {
            const struct mt_op *o = &p->s[k].ops[i];
            PUT("%s%d.%d.%d.%d.%d.%d.%d", i ? ";" : "", o->kind, o->ch,
                o->target, o->pin, o->script, o->arg, (int)o->ms);
            for (int c = 0; c < o->ncases; c++)
                PUT(".%d.%d", o->cases[c].ch, o->cases[c].op);
        }
    }
#undef PUT
    if (n >= cap && cap)
        buf[cap - 1] = '\0';
}

static bool num(const char **s, long *v)
{
    char *end;
    *v = strtol(*s, &end, 10);
    if (end == *s)
        return false;
    *s = end;
    return true;
}

bool mt_decode(struct mt_prog *p, const char *s)
{
    long v[7];
    memset(p, 0, sizeof *p);
    if (*s++ != 'P')
        return false;
    p->seed = strtoull(s, (char **)&s, 10);
    if (*s++ != '/')
        return false;
    for (;;) {
        if (p->nchans == MT_MAX_CHANS)
            return false;
        struct mt_chan *c = &p->ch[p->nchans++];
        if (!num(&s, &v[0]) || *s++ != '.' || !num(&s, &v[1]) ||
            *s++ != '.' || !num(&s, &v[2]) || v[0] < 0 || v[0] > 8)
            return false;
        c->cap = (uint8_t)v[0];
        c->pref = (int8_t)v[1];
        c->sched_all = (uint8_t)v[2];
        if (*s != ',')
            break;
        s++;
    }
    while (*s == '|') {
        s++;
        if (p->nscripts == MT_MAX_SCRIPTS)
            return false;
        struct mt_script *sc = &p->s[p->nscripts++];
        while (*s && *s != '|') {
            if (sc->n == MT_MAX_OPS)
                return false;
            struct mt_op *o = &sc->ops[sc->n++];
            for (int i = 0; i < 7; i++)
                if ((i && *s++ != '.') || !num(&s, &v[i]))
                    return false;
            if (v[0] < 0 || v[0] >= OP__COUNT || v[1] >= p->nchans ||
                v[2] < 0 || v[2] >= MT_MAX_SCRIPTS || v[4] < 0 ||
                v[4] >= MT_MAX_SCRIPTS)
                return false;
            o->kind = (uint8_t)v[0];
            o->ch = (int8_t)v[1];
            o->target = (int8_t)v[2];
            o->pin = (int8_t)v[3];
            o->script = (int8_t)v[4];
            o->arg = (int8_t)v[5];
            o->ms = (int32_t)v[6];
            while (*s == '.') {
                s++;
                long ch, op;
                if (o->ncases == MT_MAX_CASES || !num(&s, &ch) ||
                    *s++ != '.' || !num(&s, &op) || ch >= p->nchans ||
                    (op != SL_SEND && op != SL_RECV))
                    return false;
                o->cases[o->ncases].ch = (int8_t)ch;
                o->cases[o->ncases++].op = (int8_t)op;
            }
            if (*s == ';')
                s++;
        }
    }
    if (*s || p->nscripts == 0)
        return false;
    /* every target and spawned script must exist */
    for (int k = 0; k < p->nscripts; k++)
        for (int i = 0; i < p->s[k].n; i++) {
            const struct mt_op *o = &p->s[k].ops[i];
            if ((uses_target(o->kind) && o->target >= p->nscripts) ||
                (o->kind == OP_SPAWN && (o->script <= k || o->script >= p->nscripts)))
                return false;
        }
    return true;
}
