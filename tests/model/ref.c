/* ref.c - the reference model: Stackless's semantics and the documented
 * additions (buffering, select, timeouts, throw and kill, bound spawns,
 * send_sequence, the one-worker deadlock rules) restated as a small
 * simulator of one worker, written from
 * ../shared/reference/stackless-semantics.md and docs/ (channel.md,
 * tasklet.md, runtime.md, select.md, time.md), not from the library's code.
 * Where the docs are silent or contradict each other the choice made is
 * marked DOC-CHOICE and listed in README.md.
 *
 * The simulator is a trampoline: each step resumes the running tasklet's
 * pending call (computing what it returns) or runs its next op, and every
 * call that switches records what it is suspended in and changes the
 * running tasklet. Time is virtual, like the library's under
 * sl__test_virtual_clock: it moves only when nothing is runnable, to the
 * next deadline.
 *
 * The run queue is Stackless's circle whose head is the running tasklet
 * ("cur"); "append" links a tasklet just before the head, at the end.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <stackless.h>

#include "model.h"

enum { S_UNSPAWNED, S_RUNNABLE, S_BLOCKED, S_WAITING, S_PAUSED, S_DEAD };

/* What a switched-out tasklet is suspended in: how its call returns. */
enum {
    P_NONE,
    P_CHAN,   /* a channel wait: result (and value) set by who ends it   */
    P_SELECT, /* a select's wait: the winning case, or result           */
    P_SLEEP,  /* result: 0 or PENDING                                   */
    P_YIELD,  /* schedule, schedule_remove, run, switch, kill, throw: its
                 pending error if any by then (taken), else 0           */
    P_DONE,   /* a channel call that completed and then switched away
                 (preference, schedule_all): its result, thrown at or not */
    P_SLRUN,  /* main in sl_run                                          */
};

enum { W_CHAN, W_SELECT, W_SLEEP };

/* The result of a wait a throw or a kill ended: the call returns the
 * tasklet's pending error then (take), the latest thrown. */
#define PENDING INT_MIN

struct task {
    int st;
    bool ran;
    int perr; /* pending error: 0, SL_EKILLED (sticky) or a thrown code
                 (taken once): tasklet.md, sl_tasklet_throw */
    unsigned ntaken; /* thrown codes taken so far */
    int seq_i;       /* send_sequence: messages sent so far */
    unsigned seq_taken; /* ntaken when its current send began */
    int next, prev; /* the run queue circle, while RUNNABLE */
    int pc;         /* next op of its script */
    int pend;
    /* the call in progress, logged when it returns */
    struct mt_op op;
    int opidx, logkind;
    int64_t opvalue;
    int result;
    int64_t value;
    /* the wait in progress */
    int wkind, wch, wdir;
    uint32_t wgen;
    bool wlive, wtimed;
    int won; /* select: the case a partner completed, or -1 */
    int64_t won_val;
    int won_err;
};

struct waiter {
    int t, dir;
    bool proxy; /* a select case standing for t */
    int cas;
    int64_t msg;
    int err;
    uint32_t gen;
};

#define MAXW (MT_MAX_SCRIPTS * MT_MAX_CASES + 4)

struct chan {
    int cap, pref;
    bool sched_all, closing;
    int nw;
    struct waiter w[MAXW];
    int head, count;
    int64_t ring[8];
    int ring_err[8];
};

struct timer {
    int64_t when;
    uint64_t seq;
    int t;
    uint32_t gen;
};

#define MAXTIMERS 256

static struct {
    const struct mt_prog *p;
    struct mt_log *log;
    struct task t[MT_MAX_SCRIPTS];
    struct chan c[MT_MAX_CHANS];
    struct timer tm[MAXTIMERS];
    int ntm;
    uint64_t tseq;
    int64_t now;
    int nwaits; /* timed waits in progress */
    int cur;    /* the head of the run queue, -1 when it is empty */
    int live;
    struct mt_drain drain;
    bool done;
    bool broken; /* the model met a state it has no rule for */
    unsigned features;
} M;

static void model_broken(const char *why)
{
    fprintf(stderr, "model: %s\n", why);
    M.broken = true;
}

static void log_event(int script, int kind, int op, int rc, int64_t val)
{
    struct mt_log *l = M.log;
    if (l->n < MT_MAX_EVENTS)
        l->ev[l->n] = (struct mt_event){.script = (uint8_t)script,
                                        .kind = (uint8_t)kind,
                                        .op = (uint16_t)op,
                                        .rc = rc,
                                        .val = val};
    l->n++;
}

/* ---- the run queue ------------------------------------------------------ */

static void link_before(int pos, int t)
{
    struct task *T = &M.t[t], *P = &M.t[pos];
    T->next = pos;
    T->prev = P->prev;
    M.t[P->prev].next = t;
    P->prev = t;
}

/* t joins the end of the run queue. */
static void append(int t)
{
    if (M.cur < 0) {
        M.cur = t;
        M.t[t].next = M.t[t].prev = t;
    } else {
        link_before(M.cur, t);
    }
    M.t[t].st = S_RUNNABLE;
}

static void unlink_rq(int t)
{
    struct task *T = &M.t[t];
    if (T->next == t) {
        M.cur = -1;
    } else {
        M.t[T->prev].next = T->next;
        M.t[T->next].prev = T->prev;
        if (M.cur == t)
            M.cur = T->next;
    }
    T->next = T->prev = -1;
}

static int runcount(void)
{
    if (M.cur < 0)
        return 0;
    int n = 1;
    for (int t = M.t[M.cur].next; t != M.cur; t = M.t[t].next)
        n++;
    return n;
}

/* ---- channels ------------------------------------------------------------- */

static int balance(const struct chan *C)
{
    int b = 0;
    for (int i = 0; i < C->nw; i++)
        b += C->w[i].dir;
    return b;
}

static void chan_remove_at(struct chan *C, int i)
{
    memmove(&C->w[i], &C->w[i + 1], (size_t)(C->nw - i - 1) * sizeof C->w[0]);
    C->nw--;
}

static void chan_enqueue(struct chan *C, struct waiter w)
{
    if (C->nw == MAXW) {
        model_broken("wait queue overflow");
        return;
    }
    C->w[C->nw++] = w;
}

static bool waiter_live(const struct waiter *w)
{
    const struct task *T = &M.t[w->t];
    if (w->proxy)
        return T->wlive && T->wkind == W_SELECT && T->wgen == w->gen;
    return T->wlive && T->wgen == w->gen;
}

/* The first waiter whose wait still goes on, the ones whose wait ended
 * (a select that completed elsewhere and has not run since) dropped on
 * the way; -1 when none is left. It stays at index 0. */
static int claim_head(struct chan *C)
{
    while (C->nw > 0) {
        if (waiter_live(&C->w[0]))
            return 0;
        chan_remove_at(C, 0);
    }
    return -1;
}

static void withdraw_proxies(int t);

/* End t's wait (it is claimed: a partner, a timer or a kill ends it). A
 * select's cases are all withdrawn at once: no channel counts a select
 * once its wait is over (select.md). */
static void end_wait(int t)
{
    struct task *T = &M.t[t];
    if (T->wlive && T->wtimed)
        M.nwaits--;
    if (T->wlive && T->wkind == W_SELECT)
        withdraw_proxies(t);
    T->wlive = false;
}

/* Take t's own entry off the channel it waits on (a plain channel wait). */
static void chan_unwait(int t)
{
    struct task *T = &M.t[t];
    struct chan *C = &M.c[T->wch];
    for (int i = 0; i < C->nw; i++)
        if (!C->w[i].proxy && C->w[i].t == t) {
            chan_remove_at(C, i);
            return;
        }
    model_broken("a blocked tasklet is not in its channel's queue");
}

/* The select of t withdraws its remaining cases (whoever ends its wait). */
static void withdraw_proxies(int t)
{
    for (int c = 0; c < M.p->nchans; c++) {
        struct chan *C = &M.c[c];
        for (int i = 0; i < C->nw;)
            if (C->w[i].proxy && C->w[i].t == t)
                chan_remove_at(C, i);
            else
                i++;
    }
}

static uint32_t wait_begin(int t, int kind, bool timed)
{
    struct task *T = &M.t[t];
    T->wgen++;
    T->wkind = kind;
    T->wlive = true;
    T->wtimed = timed;
    return T->wgen;
}

static void timer_arm(int t, int ms)
{
    if (M.ntm == MAXTIMERS) {
        model_broken("timer overflow");
        return;
    }
    M.tm[M.ntm++] = (struct timer){.when = M.now + (int64_t)ms * 1000000,
                                   .seq = M.tseq++,
                                   .t = t,
                                   .gen = M.t[t].wgen};
    M.nwaits++;
}

/* A waiting partner p (a tasklet, not a select) gets the exchange. */
static void wake_partner(int p, int result, int64_t value)
{
    struct task *P = &M.t[p];
    end_wait(p);
    P->result = result;
    P->value = value;
}

/* A select case (waiter w, owner o) completes. */
static void wake_select(const struct waiter *w, int64_t val, int err)
{
    struct task *O = &M.t[w->t];
    end_wait(w->t);
    O->won = w->cas;
    O->won_val = val;
    O->won_err = err;
    O->result = 0;
    append(w->t);
}

static void ring_push(struct chan *C, int64_t msg, int err)
{
    int i = (C->head + C->count) % C->cap;
    C->ring[i] = msg;
    C->ring_err[i] = err;
    C->count++;
}

/* A receive takes the oldest message; the first waiting sender's message
 * moves into the ring and that sender's call completes (docs/channel.md,
 * buffered channels). Returns the message's code (0 or a send_error's). */
static int ring_take(struct chan *C, int64_t *val)
{
    int64_t msg = C->ring[C->head];
    int err = C->ring_err[C->head];
    C->head = (C->head + 1) % C->cap;
    C->count--;
    *val = err ? 0 : msg;
    if (balance(C) > 0) {
        int i = claim_head(C);
        if (i >= 0) {
            struct waiter w = C->w[i];
            chan_remove_at(C, i);
            ring_push(C, w.msg, w.proxy ? 0 : w.err);
            if (w.proxy) {
                wake_select(&w, 0, 0);
            } else {
                wake_partner(w.t, 0, 0);
                append(w.t);
            }
        }
    }
    return err;
}

/* ---- leaving the run queue: the one-worker deadlock rules -------------- */

static bool main_blocked(void)
{
    const struct task *m = &M.t[0];
    return m->st == S_BLOCKED || (m->st == S_WAITING && m->wkind == W_SELECT);
}

/* Main's blocked call ends with SL_EDEADLOCK: nothing can complete it. */
static void main_deadlocked(void)
{
    struct task *m = &M.t[0];
    if (m->st == S_BLOCKED)
        chan_unwait(0);
    end_wait(0);
    m->result = SL_EDEADLOCK;
    m->won = -1;
}

/* The running tasklet t is about to block or pause. False (nothing
 * changed) when that would deadlock: t is the last runnable tasklet and
 * it is main, or main is blocked. (docs/runtime.md, Deadlock) */
static bool leave(int t)
{
    if (M.t[t].next == t) {
        if (M.nwaits > 0) { /* a timer will run something */
            unlink_rq(t);
            return true;
        }
        if (t == 0 || main_blocked())
            return false;
        if (M.t[0].st != S_PAUSED) {
            model_broken("leave: main neither blocked nor paused");
            return false;
        }
        /* DOC-CHOICE: main's pending call "returns as it would have":
         * its result is left alone (0 for sl_run, schedule_remove,
         * switch). */
        append(0);
    }
    unlink_rq(t);
    return true;
}

/* ---- the ops ---------------------------------------------------------------- */

static struct task *self(int t)
{
    return &M.t[t];
}

/* What a blocking call of T returns for its pending error (0: none): a
 * kill stays, a thrown code is given once. */
static int take(struct task *T)
{
    int e = T->perr;
    if (e != SL_EKILLED)
        T->perr = 0;
    if (e != 0 && e != SL_EKILLED)
        T->ntaken++;
    return e;
}

/* Suspend t in call kind pend; the op is logged when it returns. */
static void suspend(int t, int pend)
{
    self(t)->pend = pend;
}

enum { CH_PLAIN, CH_TRY, CH_TIMED };

/* What a send (dir +1: msg, or err != 0 for send_error) or a receive
 * (dir -1) on C can do without waiting (channel.md): take the oldest
 * message of a buffered channel, complete a waiting partner's call, or
 * queue in the ring. X_DONE: done; X_PARTNER: done with tasklet *partner,
 * whom the caller queues (its preference decides where); X_NONE: the
 * call would wait. An empty ring makes a receive wait for a sender. */
enum { X_NONE, X_DONE, X_PARTNER };

static int exchange(struct chan *C, int dir, int64_t msg, int err, int *rc,
                    int64_t *val, int *partner)
{
    *rc = 0;
    *val = 0;
    if (dir < 0 && C->cap > 0) {
        if (C->count == 0)
            return X_NONE;
        *rc = ring_take(C, val);
        return X_DONE;
    }
    if (dir > 0 ? balance(C) < 0 : balance(C) > 0) {
        int i = claim_head(C);
        if (i >= 0) {
            struct waiter w = C->w[i];
            chan_remove_at(C, i);
            if (w.proxy) {
                /* A select's case: it completes, the select's tasklet is
                 * queued, the caller continues (select.md). */
                if (dir > 0) {
                    wake_select(&w, msg, err);
                } else {
                    wake_select(&w, 0, 0);
                    *val = w.msg;
                }
                return X_DONE;
            }
            if (dir > 0) {
                wake_partner(w.t, err, msg);
            } else {
                *rc = w.err;
                *val = w.err ? 0 : w.msg;
                wake_partner(w.t, 0, 0);
            }
            *partner = w.t;
            return X_PARTNER;
        }
    }
    if (dir > 0 && C->cap > 0 && C->count < C->cap && !C->closing) {
        ring_push(C, msg, err);
        return X_DONE;
    }
    return X_NONE;
}

/* A send or receive by t (see exchange). True when it completed now (rc,
 * val), false when t switched away. */
static bool chan_op(int t, int c, int dir, int64_t msg, int err, int mode,
                    int ms, int *rc, int64_t *val)
{
    struct chan *C = &M.c[c];
    struct task *T = self(t);
    int p;
    switch (exchange(C, dir, msg, err, rc, val, &p)) {
    case X_DONE:
        return true;
    case X_PARTNER:
        if (C->sched_all) {
            /* the partner to the end, the caller yields */
            append(p);
            M.cur = T->next;
        } else if (C->pref == -dir) {
            /* the partner runs now, the caller goes to the end */
            link_before(T->next, p);
            M.t[p].st = S_RUNNABLE;
            M.cur = p;
        } else {
            append(p);
            return true;
        }
        T->result = *rc;
        T->value = *val;
        suspend(t, P_DONE);
        return false;
    }
    if (mode == CH_TRY) {
        *rc = SL_EWOULDBLOCK;
        return true;
    }
    /* DOC-CHOICE: killed (or thrown at) before closing (tasklet.md;
     * channel.md and errors.md say the other way round). */
    if ((*rc = take(T)) != 0)
        ;
    else if (C->closing)
        *rc = SL_ECLOSED;
    else if (mode == CH_TIMED && ms == 0)
        *rc = SL_ETIMEDOUT;
    if (*rc)
        return true;
    uint32_t gen = wait_begin(t, W_CHAN, mode == CH_TIMED);
    if (mode == CH_TIMED)
        timer_arm(t, ms);
    if (!leave(t)) {
        end_wait(t);
        *rc = SL_EDEADLOCK;
        return true;
    }
    chan_enqueue(C, (struct waiter){.t = t, .dir = dir, .msg = msg,
                                    .err = err, .gen = gen});
    T->st = S_BLOCKED;
    T->wch = c;
    T->wdir = dir;
    T->result = 0;
    T->value = 0;
    suspend(t, P_CHAN);
    return false;
}

/* A select case that is ready completes now (select.md): the partner is
 * queued, the caller continues whatever the preference. */
static bool select_ready(const struct mt_op *o, int i, int64_t value, int *rc,
                         int64_t *val)
{
    int p;
    int x = exchange(&M.c[o->cases[i].ch], o->cases[i].op == SL_SEND ? 1 : -1,
                     value + i, 0, rc, val, &p);
    if (x == X_PARTNER)
        append(p);
    return x != X_NONE;
}

static bool op_select(int t, const struct mt_op *o, int64_t value, int *rc,
                      int64_t *val)
{
    struct task *T = self(t);
    *val = 0;
    int k = 0;
    for (int i = 0; i < o->ncases; i++) {
        if (o->cases[i].ch < 0)
            continue;
        k++;
        for (int j = i + 1; j < o->ncases; j++)
            if (o->cases[j].ch == o->cases[i].ch &&
                o->cases[j].op != o->cases[i].op) {
                *rc = SL_EINVAL;
                return true;
            }
    }
    if (k == 0) {
        *rc = SL_EINVAL;
        return true;
    }
    bool open = false;
    for (int i = 0; i < o->ncases; i++) {
        if (o->cases[i].ch < 0)
            continue;
        if (select_ready(o, i, value, rc, val)) {
            if (*rc == 0)
                *rc = i;
            return true;
        }
        open = open || !M.c[o->cases[i].ch].closing;
    }
    /* A killed (or thrown at) tasklet's select still completes a ready
     * case, as its send or receive would (tasklet.md: operations that
     * complete without blocking still complete); with none ready, the
     * plain call's order: the pending error, then closing, then the
     * expired timeout. */
    if ((*rc = take(T)) != 0)
        return true;
    if (!open || o->ms == 0) {
        *rc = open ? SL_ETIMEDOUT : SL_ECLOSED;
        return true;
    }
    uint32_t gen = wait_begin(t, W_SELECT, o->ms > 0);
    if (o->ms > 0)
        timer_arm(t, o->ms);
    for (int i = 0; i < o->ncases; i++) {
        struct chan *C = o->cases[i].ch >= 0 ? &M.c[o->cases[i].ch] : NULL;
        if (!C || C->closing)
            continue;
        chan_enqueue(C, (struct waiter){.t = t,
                                        .dir = o->cases[i].op == SL_SEND ? 1 : -1,
                                        .proxy = true,
                                        .cas = i,
                                        .msg = value + i,
                                        .gen = gen});
    }
    if (!leave(t)) {
        withdraw_proxies(t);
        end_wait(t);
        *rc = SL_EDEADLOCK;
        return true;
    }
    T->st = S_WAITING;
    T->won = -1;
    T->result = 0;
    suspend(t, P_SELECT);
    return false;
}

static bool op_schedule(int t, int *rc)
{
    struct task *T = self(t);
    if ((*rc = take(T)) != 0)
        return true;
    if (T->next == t)
        return true;
    M.cur = T->next;
    suspend(t, P_YIELD);
    return false;
}

static bool op_sleep(int t, int ms, int *rc)
{
    struct task *T = self(t);
    if ((*rc = take(T)) != 0)
        return true;
    if (ms <= 0)
        return op_schedule(t, rc);
    wait_begin(t, W_SLEEP, true);
    timer_arm(t, ms);
    if (!leave(t)) {
        model_broken("a sleeper deadlocked");
        return true;
    }
    T->st = S_WAITING;
    T->result = 0;
    suspend(t, P_SLEEP);
    return false;
}

/* sl_run's loop (main): returns once main is alone and no timed wait is
 * left; otherwise main steps out of the queue and watches. */
static bool sl_run_step(int *rc)
{
    struct task *m = self(0);
    *rc = 0;
    if (m->next == 0 && M.nwaits == 0)
        return true;
    unlink_rq(0);
    m->st = S_PAUSED;
    suspend(0, P_SLRUN);
    return false;
}

/* send_sequence (channel.md): t's send of message seq_i returned *rc.
 * True when the call is over, *rc then what it returns: n when all were
 * sent; the first send's error; or, when a later one failed, the count
 * sent, a thrown code it took put back as t's pending error (if none has
 * come since) so that its next blocking call returns it. */
static bool seq_sent(int t, int *rc)
{
    struct task *T = self(t);
    if (*rc < 0) {
        if (T->seq_i > 0) {
            if (T->ntaken != T->seq_taken && T->perr == 0)
                T->perr = *rc;
            *rc = T->seq_i;
        }
        return true;
    }
    if (++T->seq_i < T->op.arg)
        return false;
    *rc = T->seq_i;
    return true;
}

/* send_sequence: the next sends, until one waits (false) or the call is
 * over (true, *rc its result). */
static bool seq_send(int t, int *rc)
{
    struct task *T = self(t);
    for (;;) {
        int64_t val;
        T->seq_taken = T->ntaken;
        if (!chan_op(t, T->op.ch, 1, T->opvalue + T->seq_i, 0, CH_PLAIN, -1,
                     rc, &val))
            return false;
        if (seq_sent(t, rc))
            return true;
    }
}

static bool blocked_pred(const struct task *T)
{
    return T->st == S_BLOCKED || T->st == S_WAITING;
}

/* kill, throw (code: the op's own), insert, remove, run, switch of tasklet
 * x by t. */
static bool op_target(int t, const struct mt_op *o, int code, int *rc)
{
    int x = o->target;
    struct task *T = self(t), *X = &M.t[x];
    *rc = 0;
    if (X->st == S_UNSPAWNED) {
        *rc = MT_SKIP;
        return true;
    }
    /* !F_RUNQ_WAITING: the run skips these on a blocked tasklet. */
    if (o->kind != OP_KILL && o->kind != OP_THROW &&
        ((!(M.features & F_RUNQ_WAITING) && blocked_pred(X)) ||
         (!(M.features & F_RUNQ_TIMED) && X->pend != P_NONE &&
          mt_timed(&X->op)))) {
        *rc = MT_SKIP;
        return true;
    }
    switch (o->kind) {
    case OP_INSERT:
        if (X->st == S_RUNNABLE)
            return true;
        if (X->st == S_PAUSED) {
            append(x);
            return true;
        }
        *rc = SL_ESTATE;
        return true;
    case OP_REMOVE:
        if (X->st == S_DEAD)
            return true; /* in no queue: a no-op, as Stackless */
        if (x == t || (X->st != S_RUNNABLE && X->st != S_PAUSED)) {
            *rc = SL_ESTATE;
            return true;
        }
        if (X->st == S_RUNNABLE) {
            unlink_rq(x);
            X->st = S_PAUSED;
        }
        return true;
    case OP_RUN:
    case OP_SWITCH:
        if ((*rc = take(T)) != 0)
            return true;
        if (x == t)
            return true;
        /* A sleeping or selecting tasklet is "blocked" (its predicate
         * says so): neither runnable nor paused. */
        if (X->st != S_RUNNABLE && X->st != S_PAUSED) {
            *rc = SL_ESTATE;
            return true;
        }
        if (X->st == S_PAUSED)
            append(x);
        if (o->kind == OP_SWITCH) {
            unlink_rq(t);
            T->st = S_PAUSED;
        }
        M.cur = x;
        suspend(t, P_YIELD);
        return false;
    case OP_KILL:
    case OP_THROW: {
        /* tasklet.md, sl_tasklet_throw and sl_tasklet_kill. */
        int err = o->kind == OP_KILL || (o->arg & 2) ? SL_EKILLED : code;
        bool pending = o->kind == OP_THROW && (o->arg & 1);
        if (x == 0 && err == SL_EKILLED) {
            *rc = SL_EINVAL;
            return true;
        }
        if (x == t) { /* raised at once: a kill sticks, a throw is gone */
            if (err == SL_EKILLED)
                T->perr = SL_EKILLED;
            *rc = err;
            return true;
        }
        if (X->st == S_DEAD) {
            *rc = err == SL_EKILLED ? 0 : SL_ESTATE;
            return true;
        }
        if (X->perr == SL_EKILLED && err != SL_EKILLED)
            return true; /* killed already: nothing replaces a kill */
        X->perr = err; /* a later throw replaces an earlier one */
        if (!X->ran) {
            /* It never ran: it dies without running, at once, or (pending)
             * when the scheduler reaches it (step). DOC-CHOICE: 0 even
             * when the thrower had been killed (no switch happens). */
            if (pending) {
                if (X->st == S_PAUSED)
                    append(x);
                return true;
            }
            if (X->st == S_RUNNABLE)
                unlink_rq(x);
            X->st = S_DEAD;
            M.live--;
            return true;
        }
        if (X->st == S_BLOCKED) {
            chan_unwait(x);
            end_wait(x);
            X->result = PENDING;
            append(x);
        } else if (X->st == S_WAITING) {
            end_wait(x);
            X->result = PENDING;
            X->won = -1;
            append(x);
        } else if (X->st == S_PAUSED) {
            append(x);
        }
        if (pending)
            return true; /* made runnable; it reacts at its turn */
        /* like run(x): x runs now; a blocked or paused x was put just
         * before the thrower, a runnable one runs where it stands */
        M.cur = x;
        suspend(t, P_YIELD);
        return false;
    }
    }
    abort();
}

static int64_t probe(int t, const struct mt_op *o)
{
    (void)t;
    const struct chan *C = &M.c[o->ch];
    const struct task *X = &M.t[o->target];
    int b = balance(C);
    bool ex = X->st != S_UNSPAWNED;
    return mt_probe_pack(b, C->count, C->closing,
                         C->closing && b == 0 && C->count == 0, runcount(),
                         M.live, ex ? X->st != S_DEAD : -1,
                         ex ? blocked_pred(X) : -1,
                         ex ? X->st == S_RUNNABLE || blocked_pred(X) : -1,
                         ex ? X->st == S_PAUSED : -1);
}

/* Run op o of t (index opidx, logged as logkind); value: the message a
 * send carries. Logs it now if it completes now. */
static void exec_op(int t, const struct mt_op *o, int opidx, int logkind,
                    int64_t value)
{
    struct task *T = self(t);
    int rc = 0;
    int64_t val = 0;
    bool now = true;
    T->op = *o;
    T->opidx = opidx;
    T->logkind = logkind;
    T->opvalue = value;
    switch (o->kind) {
    case OP_SPAWN: {
        struct task *K = &M.t[o->script];
        memset(K, 0, sizeof *K);
        K->next = K->prev = -1;
        K->won = -1;
        if (o->arg & 1) /* bound, not scheduled: paused until inserted */
            K->st = S_PAUSED;
        else
            append(o->script);
        M.live++;
        break;
    }
    case OP_SEND:
        now = chan_op(t, o->ch, 1, value, 0, CH_PLAIN, -1, &rc, &val);
        break;
    case OP_RECV:
        now = chan_op(t, o->ch, -1, 0, 0, CH_PLAIN, -1, &rc, &val);
        break;
    case OP_TRY_SEND:
        now = chan_op(t, o->ch, 1, value, 0, CH_TRY, -1, &rc, &val);
        break;
    case OP_TRY_RECV:
        now = chan_op(t, o->ch, -1, 0, 0, CH_TRY, -1, &rc, &val);
        break;
    case OP_SEND_TO:
        now = chan_op(t, o->ch, 1, value, 0, CH_TIMED, o->ms, &rc, &val);
        break;
    case OP_RECV_TO:
        now = chan_op(t, o->ch, -1, 0, 0, CH_TIMED, o->ms, &rc, &val);
        break;
    case OP_SEND_ERR:
        now = chan_op(t, o->ch, 1, 0, (int)value, CH_PLAIN, -1, &rc, &val);
        break;
    case OP_SEND_SEQ:
        T->seq_i = 0;
        now = seq_send(t, &rc);
        break;
    case OP_SELECT:
        now = op_select(t, o, value, &rc, &val);
        break;
    case OP_SET_PREF:
        M.c[o->ch].pref = o->arg < -1 ? -1 : o->arg > 1 ? 1 : o->arg;
        break;
    case OP_SET_SCHED_ALL:
        M.c[o->ch].sched_all = o->arg != 0;
        break;
    case OP_CLOSE:
        M.c[o->ch].closing = true;
        break;
    case OP_OPEN:
        M.c[o->ch].closing = false;
        break;
    case OP_KILL:
    case OP_THROW:
    case OP_INSERT:
    case OP_REMOVE:
    case OP_RUN:
    case OP_SWITCH:
        now = op_target(t, o, (int)value, &rc);
        break;
    case OP_SCHEDULE:
        now = op_schedule(t, &rc);
        break;
    case OP_SCHEDULE_REMOVE:
        if ((rc = take(T)) != 0) {
            ;
        } else if (!leave(t)) {
            rc = SL_EDEADLOCK;
        } else {
            T->st = S_PAUSED;
            suspend(t, P_YIELD);
            now = false;
        }
        break;
    case OP_SLEEP:
        now = op_sleep(t, o->ms, &rc);
        break;
    case OP_SL_RUN:
        if (t != 0)
            rc = SL_ESTATE;
        else if ((rc = take(T)) == 0) /* a throw to main ends sl_run */
            now = sl_run_step(&rc);
        break;
    case OP_PROBE:
        val = probe(t, o);
        break;
    default:
        abort();
    }
    if (now) {
        if (o->kind == OP_TRY_SEND && value >= MT_DRAIN_VALUE)
            val = value;
        if (o->kind == OP_INSERT && (logkind & EV_DRAIN))
            val = o->target;
        log_event(t, logkind, opidx, rc, val);
    }
}

/* t runs again: its suspended call returns. */
static void resume(int t)
{
    struct task *T = self(t);
    int rc = 0;
    int64_t val = 0;
    const struct mt_op *o = &T->op;
    switch (T->pend) {
    case P_CHAN:
        rc = T->result == PENDING ? take(T) : T->result;
        val = rc == 0 && T->wdir < 0 ? T->value : 0;
        end_wait(t); /* already ended by whoever woke it */
        if (o->kind == OP_SEND_SEQ) {
            T->pend = P_NONE;
            if (!seq_sent(t, &rc) && !seq_send(t, &rc))
                return; /* the next send waits */
        }
        break;
    case P_DONE:
        rc = T->result;
        val = T->value;
        if (o->kind == OP_SEND_SEQ) {
            T->pend = P_NONE;
            if (!seq_sent(t, &rc) && !seq_send(t, &rc))
                return;
        }
        break;
    case P_YIELD:
        rc = take(T);
        break;
    case P_SLEEP:
        rc = T->result == PENDING ? take(T) : T->result;
        break;
    case P_SELECT:
        withdraw_proxies(t);
        if (T->won >= 0) {
            rc = T->won;
            if (o->cases[T->won].op == SL_RECV) {
                if (T->won_err)
                    rc = T->won_err;
                else
                    val = T->won_val;
            }
        } else {
            rc = T->result == PENDING ? take(T) : T->result;
        }
        break;
    case P_SLRUN:
        T->pend = P_NONE;
        if ((rc = take(T)) == 0 && !sl_run_step(&rc))
            return; /* still watching */
        break;
    default:
        abort();
    }
    T->pend = P_NONE;
    if (o->kind == OP_TRY_SEND && T->opvalue >= MT_DRAIN_VALUE)
        val = T->opvalue;
    if (o->kind == OP_INSERT && (T->logkind & EV_DRAIN))
        val = o->target;
    log_event(t, T->logkind, T->opidx, rc, val);
}

/* ---- the drain's view of the model ------------------------------------------ */

static int v_balance(void *ctx, int c)
{
    (void)ctx;
    return balance(&M.c[c]);
}

static int v_count(void *ctx, int c)
{
    (void)ctx;
    return M.c[c].count;
}

static bool v_paused(void *ctx, int k)
{
    (void)ctx;
    return M.t[k].st == S_PAUSED;
}

static int v_livecount(void *ctx)
{
    (void)ctx;
    return M.live;
}

static int64_t v_preds(void *ctx, int k)
{
    (void)ctx;
    const struct task *X = &M.t[k];
    if (X->st == S_UNSPAWNED || X->st == S_DEAD)
        return 0;
    return mt_probe_pack(0, 0, 0, 0, 0, 0, 1, blocked_pred(X),
                         X->st == S_RUNNABLE || blocked_pred(X),
                         X->st == S_PAUSED);
}

static const struct mt_drain_view view = {v_balance, v_count, v_paused,
                                          v_livecount, v_preds, NULL};

/* ---- the scheduler ------------------------------------------------------------ */

/* A tasklet's script is done: it ends (logged), or it never ran and a
 * pending throw or kill ends it before its first op (not logged: its
 * function never runs). (runtime.md: when the last runnable tasklet ends,
 * main runs; a blocked main gets SL_EDEADLOCK.) */
static void end_tasklet(int t, bool logged)
{
    struct task *T = self(t);
    if (logged)
        log_event(t, EV_END, 0, 0, 0);
    if (T->next == t && M.nwaits == 0) {
        if (main_blocked())
            main_deadlocked();
        else if (M.t[0].st != S_PAUSED)
            model_broken("end: main neither blocked nor paused");
        append(0);
    }
    unlink_rq(t);
    T->st = S_DEAD;
    M.live--;
}

static bool timer_live(const struct timer *e)
{
    const struct task *T = &M.t[e->t];
    return T->wlive && T->wtimed && T->wgen == e->gen;
}

/* Nothing is runnable: time moves to the next deadline and the waits due
 * then end, in deadline order (ties: arming order); with no wait left that
 * could end by itself, main gets control back (runtime.md, time.md). */
static void idle(void)
{
    int first = -1;
    for (int i = 0; i < M.ntm; i++)
        if (timer_live(&M.tm[i]) &&
            (first < 0 || M.tm[i].when < M.tm[first].when ||
             (M.tm[i].when == M.tm[first].when && M.tm[i].seq < M.tm[first].seq)))
            first = i;
    if (first >= 0) {
        if (M.tm[first].when > M.now)
            M.now = M.tm[first].when;
        for (;;) {
            int i = -1;
            for (int j = 0; j < M.ntm; j++)
                if (timer_live(&M.tm[j]) && M.tm[j].when <= M.now &&
                    (i < 0 || M.tm[j].when < M.tm[i].when ||
                     (M.tm[j].when == M.tm[i].when && M.tm[j].seq < M.tm[i].seq)))
                    i = j;
            if (i < 0)
                break;
            int t = M.tm[i].t;
            struct task *T = self(t);
            end_wait(t);
            if (T->wkind == W_CHAN)
                chan_unwait(t);
            T->result = T->wkind == W_SLEEP ? 0 : SL_ETIMEDOUT;
            T->won = -1;
            append(t);
        }
        int n = 0; /* drop the timers that are done */
        for (int i = 0; i < M.ntm; i++)
            if (timer_live(&M.tm[i]))
                M.tm[n++] = M.tm[i];
        M.ntm = n;
        if (M.cur >= 0)
            return;
    }
    if (M.nwaits > 0) {
        model_broken("idle with timed waits but no timer");
        return;
    }
    if (main_blocked())
        main_deadlocked();
    else if (M.t[0].st != S_PAUSED)
        model_broken("idle: main neither blocked nor paused");
    append(0);
}

static void step(void)
{
    if (M.cur < 0) {
        idle();
        return;
    }
    int t = M.cur;
    struct task *T = self(t);
    if (!T->ran && T->perr) { /* thrown at before its first run */
        end_tasklet(t, false);
        return;
    }
    T->ran = true;
    if (T->pend != P_NONE) {
        resume(t);
        return;
    }
    const struct mt_script *s = &M.p->s[t];
    if (T->pc < s->n) {
        int i = T->pc++;
        const struct mt_op *o = &s->ops[i];
        exec_op(t, o, i, o->kind, mt_op_value(t, i, o));
        return;
    }
    if (t != 0) {
        end_tasklet(t, true);
        return;
    }
    struct mt_drain_act a = mt_drain_next(&M.drain, M.p, &view);
    if (a.what == DA_BAD) {
        log_event(0, EV_BAD, 0, a.bad, a.value);
    } else if (a.what == DA_OP) {
        exec_op(0, &a.op, M.drain.nops - 1, a.op.kind | EV_DRAIN, a.value);
    } else {
        if (a.what == DA_STUCK)
            mt_drain_log_alive(M.p, &view, log_event);
        log_event(0, EV_FINAL, 0, a.what == DA_STUCK ? MT_STUCK : 0,
                  mt_final_state(M.p, &view));
        M.done = true;
    }
}

void mt_run_ref(const struct mt_prog *p, unsigned features,
                struct mt_log *log)
{
    memset(&M, 0, sizeof M);
    M.p = p;
    M.features = features;
    M.log = log;
    log->n = 0;
    M.now = 1000000000;
    for (int k = 0; k < MT_MAX_SCRIPTS; k++) {
        M.t[k].st = S_UNSPAWNED;
        M.t[k].next = M.t[k].prev = -1;
        M.t[k].won = -1;
    }
    for (int c = 0; c < p->nchans; c++) {
        M.c[c].cap = p->ch[c].cap;
        M.c[c].pref = p->ch[c].pref;
        M.c[c].sched_all = p->ch[c].sched_all;
    }
    M.cur = -1;
    append(0);
    M.t[0].ran = true;
    mt_drain_init(&M.drain, p);
    /* Every step runs an op or a scheduler action; a bound keeps a model
     * bug from looping forever. */
    for (long n = 0; !M.done && !M.broken; n++) {
        if (n > 1000000) {
            model_broken("too many steps");
            break;
        }
        step();
    }
    if (M.broken)
        log_event(0, EV_FINAL, 0xffff, -1, -1);
}
