/* check.c - the invariants every run must keep, on any number of workers,
 * and the comparison of two logs. */
#include <stdarg.h>
#include <string.h>

#include <stackless.h>

#include "model.h"

#define NVALUES (1 + MT_MAX_SCRIPTS * 64 * 8)
#define NDRAIN 8192

struct tally {
    uint8_t sent_ok, sent_fail, received;
};

static struct tally vals[NVALUES], drains[NDRAIN];

static struct tally *tally_of(int64_t v)
{
    if (v >= 1 && v < NVALUES)
        return &vals[v];
    if (v >= MT_DRAIN_VALUE && v < MT_DRAIN_VALUE + NDRAIN)
        return &drains[v - MT_DRAIN_VALUE];
    return NULL;
}

/* A send_error's code as a value of its own (they never collide: codes
 * map to op slots whose case part is 7, which no select uses). */
static int64_t err_value(int rc)
{
    int x = -rc - 200000;
    return mt_value(x / 64, x % 64, 7);
}

static bool is_err(int rc)
{
    return rc <= -200000 && rc > MT_ERR_MIN;
}

static const char *who(int s)
{
    static char b[4][8];
    static int i;
    i = (i + 1) % 4;
    if (s == 0)
        return "main";
    snprintf(b[i], sizeof b[i], "t%d", s);
    return b[i];
}

static const char *fail(char *msg, size_t cap, const char *sig,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return sig;
}

static bool rc_allowed(const struct mt_op *o, int script, int rc, int workers)
{
    bool has_recv = false;
    if (rc == SL_EDEADLOCK && workers > 1 && script != 0)
        return false; /* workers.md: only main gets it there */
    /* A code thrown to the caller: every call that may block or yield
     * returns it where SL_EKILLED would be (tasklet.md, errors.md). */
    bool thrown = mt_is_thrown(rc);
    switch (o->kind) {
    case OP_SPAWN:
    case OP_SET_PREF:
    case OP_SET_SCHED_ALL:
    case OP_CLOSE:
    case OP_OPEN:
    case OP_PROBE:
        return rc == 0;
    case OP_SEND:
    case OP_SEND_ERR:
        return rc == 0 || rc == SL_ECLOSED || rc == SL_EKILLED ||
               rc == SL_EDEADLOCK || thrown;
    case OP_SEND_SEQ: /* how many were sent, or the first send's error */
        return (rc >= 1 && rc <= o->arg) || rc == SL_ECLOSED ||
               rc == SL_EKILLED || rc == SL_EDEADLOCK || thrown;
    case OP_RECV:
        return rc == 0 || rc == SL_ECLOSED || rc == SL_EKILLED ||
               rc == SL_EDEADLOCK || is_err(rc) || thrown;
    case OP_TRY_SEND:
        return rc == 0 || rc == SL_EWOULDBLOCK;
    case OP_TRY_RECV:
        return rc == 0 || rc == SL_EWOULDBLOCK || is_err(rc);
    case OP_SEND_TO:
        return rc == 0 || rc == SL_ECLOSED || rc == SL_EKILLED ||
               rc == SL_ETIMEDOUT || thrown;
    case OP_RECV_TO:
        return rc == 0 || rc == SL_ECLOSED || rc == SL_EKILLED ||
               rc == SL_ETIMEDOUT || is_err(rc) || thrown;
    case OP_SELECT:
        for (int c = 0; c < o->ncases; c++)
            has_recv = has_recv || (o->cases[c].ch >= 0 && o->cases[c].op == SL_RECV);
        return (rc >= 0 && rc < o->ncases && o->cases[rc].ch >= 0) ||
               (rc == SL_ETIMEDOUT && o->ms >= 0) || rc == SL_ECLOSED ||
               rc == SL_EKILLED || (rc == SL_EDEADLOCK && o->ms < 0) ||
               rc == SL_EINVAL || (is_err(rc) && has_recv) || thrown;
    case OP_KILL:
        return rc == 0 || rc == SL_EKILLED || rc == MT_SKIP ||
               (rc == SL_EINVAL && o->target == 0) || thrown;
    case OP_THROW:
        /* its own code when it targets its caller; SL_ESTATE for a dead
         * target (not for a kill) */
        return rc == 0 || rc == SL_EKILLED || rc == MT_SKIP || thrown ||
               (rc == SL_ESTATE && !(o->arg & 2)) ||
               (rc == SL_EINVAL && o->target == 0 && (o->arg & 2));
    case OP_INSERT:
    case OP_REMOVE:
        return rc == 0 || rc == SL_ESTATE || rc == MT_SKIP;
    case OP_RUN:
    case OP_SWITCH:
        return rc == 0 || rc == SL_ESTATE || rc == SL_EKILLED ||
               rc == MT_SKIP || thrown;
    case OP_SCHEDULE:
    case OP_SLEEP:
        return rc == 0 || rc == SL_EKILLED || thrown;
    case OP_SCHEDULE_REMOVE:
        return rc == 0 || rc == SL_EKILLED || rc == SL_EDEADLOCK || thrown;
    case OP_SL_RUN:
        return rc == (script == 0 ? 0 : SL_ESTATE) || (script == 0 && thrown);
    }
    return false;
}

/* The program's op that sent value v (a send op, or a select's send
 * case), or NULL. */
static const struct mt_op *sender_of(const struct mt_prog *p, int64_t v)
{
    if (v < 1 || v >= NVALUES)
        return NULL;
    int64_t x = v - 1;
    int cas = (int)(x % 8), op = (int)(x / 8 % 64), s = (int)(x / 512);
    if (s >= p->nscripts || op >= p->s[s].n)
        return NULL;
    const struct mt_op *o = &p->s[s].ops[op];
    if (o->kind == OP_SELECT)
        return cas < o->ncases && o->cases[cas].ch >= 0 &&
                       o->cases[cas].op == SL_SEND
                   ? o
                   : NULL;
    if (o->kind == OP_SEND_ERR)
        return cas == 7 ? o : NULL;
    if (o->kind == OP_SEND_SEQ)
        return cas < o->arg ? o : NULL;
    return cas == 0 && (o->kind == OP_SEND || o->kind == OP_TRY_SEND ||
                        o->kind == OP_SEND_TO)
               ? o
               : NULL;
}

const char *mt_check_invariants(const struct mt_prog *p,
                                const struct mt_log *log, int workers,
                                char *msg, size_t cap)
{
    memset(vals, 0, sizeof vals);
    memset(drains, 0, sizeof drains);
    if (log->n > MT_MAX_EVENTS)
        return fail(msg, cap, "invariant:log-overflow",
                    "%d events, more than %d", log->n, MT_MAX_EVENTS);
    int nextop[MT_MAX_SCRIPTS] = {0};
    bool ended[MT_MAX_SCRIPTS] = {false}, spawned[MT_MAX_SCRIPTS] = {true};
    bool final = false;
    for (int i = 0; i < log->n; i++) {
        const struct mt_event *e = &log->ev[i];
        int s = e->script;
        if (s >= p->nscripts)
            return fail(msg, cap, "invariant:bad-event", "event %d: script %d", i, s);
        if (final)
            return fail(msg, cap, "invariant:after-final",
                        "event %d after the final state", i);
        if (e->kind == EV_BAD)
            return fail(msg, cap, "invariant:lost-wakeup",
                        "after a drain's sl_run (nothing runnable) c%d has %s",
                        (int)e->val,
                        e->rc == MT_BAD_RECV_WAITS_ON_RING
                            ? "a receiver waiting while its ring holds messages"
                            : "a sender waiting while its ring has room");
        if (e->kind == EV_ALIVE)
            continue; /* EV_FINAL follows and says MT_STUCK */
        if (e->kind == EV_FINAL) {
            final = true;
            if (e->rc == MT_STUCK)
                return fail(msg, cap, "invariant:drain-stuck",
                            "the drain gave up: livecount %d, |balance| %d, "
                            "count %d left",
                            (int)(e->val & 0xfff), (int)(e->val >> 12 & 0xfff),
                            (int)(e->val >> 24));
            if (e->rc != 0 || e->val != 0)
                return fail(msg, cap, "invariant:end-state",
                            "end state rc %d: livecount %d, |balance| %d, "
                            "count %d",
                            e->rc, (int)(e->val & 0xfff),
                            (int)(e->val >> 12 & 0xfff), (int)(e->val >> 24));
            continue;
        }
        if (e->kind == EV_END) {
            if (ended[s] || nextop[s] != p->s[s].n)
                return fail(msg, cap, "invariant:tasklet-end",
                            "t%d ended after %d of its %d ops%s", s, nextop[s],
                            p->s[s].n, ended[s] ? " (twice)" : "");
            ended[s] = true;
            continue;
        }
        const struct mt_op *o;
        struct mt_op dop;
        bool drain = e->kind & EV_DRAIN;
        if (drain) {
            if (s != 0 || nextop[0] != p->s[0].n)
                return fail(msg, cap, "invariant:bad-event",
                            "event %d: a drain op before main's script ended", i);
            memset(&dop, 0, sizeof dop);
            dop.kind = e->kind & ~EV_DRAIN;
            dop.ms = -1;
            o = &dop;
        } else {
            /* (a tasklet may log before its spawner's spawn event: with
             * several workers it runs at once elsewhere) */
            if (ended[s] || e->op != nextop[s] ||
                e->op >= p->s[s].n || e->kind != p->s[s].ops[e->op].kind)
                return fail(msg, cap, "invariant:op-order",
                            "event %d: %s.%d %s, expected op %d", i,
                            who(s), e->op, mt_op_name(e->kind),
                            nextop[s]);
            o = &p->s[s].ops[e->op];
            nextop[s]++;
        }
        if (!rc_allowed(o, s, e->rc, workers))
            return fail(msg, cap, "invariant:bad-rc",
                        "%s.%d %s returned %s (%d)", who(s),
                        e->op, mt_op_name(o->kind), sl_err_name(e->rc), e->rc);
        if (o->kind == OP_SPAWN && e->rc == 0)
            spawned[o->script] = true;
        /* what it sent */
        int64_t sent = 0;
        bool ok = e->rc == 0;
        switch (o->kind) {
        case OP_SEND:
        case OP_SEND_TO:
            sent = mt_value(s, e->op, 0);
            break;
        case OP_TRY_SEND:
            sent = drain ? e->val : mt_value(s, e->op, 0);
            break;
        case OP_SEND_ERR:
            sent = err_value(mt_err(s, e->op));
            break;
        case OP_SEND_SEQ: /* the first rc were sent, the rest not */
            for (int j = 0; j < o->arg; j++) {
                struct tally *t = tally_of(mt_value(s, e->op, j));
                if (e->rc > j)
                    t->sent_ok++;
                else
                    t->sent_fail++;
            }
            break;
        case OP_SELECT:
            for (int c = 0; c < o->ncases; c++) {
                if (o->cases[c].ch < 0 || o->cases[c].op != SL_SEND)
                    continue;
                struct tally *t = tally_of(mt_value(s, e->op, c));
                if (e->rc == c)
                    t->sent_ok++;
                else
                    t->sent_fail++;
            }
            break;
        default:
            break;
        }
        if (sent) {
            struct tally *t = tally_of(sent);
            if (!t)
                return fail(msg, cap, "invariant:bad-event",
                            "event %d: a drain value out of range", i);
            if (ok)
                t->sent_ok++;
            else
                t->sent_fail++;
        }
        /* what it received */
        int64_t got = 0;
        bool recv = o->kind == OP_RECV || o->kind == OP_RECV_TO ||
                    o->kind == OP_TRY_RECV;
        if (o->kind == OP_SELECT &&
            ((e->rc >= 0 && e->rc < o->ncases && o->cases[e->rc].op == SL_RECV) ||
             is_err(e->rc)))
            recv = true;
        if (recv && (e->rc == 0 || is_err(e->rc) || o->kind == OP_SELECT)) {
            got = is_err(e->rc) ? err_value(e->rc) : e->val;
            struct tally *t = tally_of(got);
            if (!t || (got < MT_DRAIN_VALUE && !sender_of(p, got)))
                return fail(msg, cap, "invariant:received-unsent",
                            "%s.%d %s received 0x%llx, which no op sends",
                            who(s), e->op, mt_op_name(o->kind),
                            (unsigned long long)got);
            t->received++;
        }
    }
    if (!final)
        return fail(msg, cap, "invariant:no-final", "no final state in the log");
    for (int s = 1; s < p->nscripts; s++)
        if ((nextop[s] > 0 || ended[s]) && !spawned[s])
            return fail(msg, cap, "invariant:unspawned-ran",
                        "t%d ran but no spawn of it succeeded", s);
    for (int s = 1; s < p->nscripts; s++)
        if (nextop[s] > 0 && !ended[s])
            return fail(msg, cap, "invariant:tasklet-end",
                        "t%d ran %d ops and never ended", s, nextop[s]);
    for (int pass = 0; pass < 2; pass++) {
        struct tally *arr = pass ? drains : vals;
        int n = pass ? NDRAIN : NVALUES;
        for (int v = 0; v < n; v++) {
            const struct tally *t = &arr[v];
            int64_t val = pass ? MT_DRAIN_VALUE + v : v;
            if (t->received > 1)
                return fail(msg, cap, "invariant:duplicate",
                            "value 0x%llx received %d times",
                            (unsigned long long)val, t->received);
            if (t->received && !t->sent_ok)
                return fail(msg, cap,
                            t->sent_fail ? "invariant:failed-send-delivered"
                                         : "invariant:received-unsent",
                            "value 0x%llx received, but its send %s",
                            (unsigned long long)val,
                            t->sent_fail ? "failed" : "never ran");
            if (t->sent_ok && !t->received)
                return fail(msg, cap, "invariant:lost-message",
                            "value 0x%llx: its send returned 0, nobody "
                            "received it",
                            (unsigned long long)val);
        }
    }
    return NULL;
}

int mt_first_difference(const struct mt_log *a, const struct mt_log *b)
{
    int n = a->n < b->n ? a->n : b->n;
    if (n > MT_MAX_EVENTS)
        n = MT_MAX_EVENTS;
    for (int i = 0; i < n; i++)
        if (memcmp(&a->ev[i], &b->ev[i], sizeof a->ev[i]) != 0)
            return i;
    return a->n == b->n ? -1 : n;
}
