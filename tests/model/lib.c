/* lib.c - run a program on the library: main runs script 0 and the drain,
 * each spawned tasklet its script; every op appends its event to the log
 * (atomically: with several workers tasklets log in parallel). */
#include <stdatomic.h>
#include <stdlib.h>

#include <stackless.h>

#include "model.h"
#include "sched/testclock.h"

static const struct mt_prog *prog;
static struct mt_log *out;
static int nworkers;
static bool guard_waiting; /* !F_RUNQ_WAITING: skip run-queue ops on a
                              tasklet that is blocked (see README) */
static bool guard_timed;   /* !F_RUNQ_TIMED: skip them on a tasklet inside
                              a timed call */
static atomic_bool in_timed[MT_MAX_SCRIPTS]; /* script k is in a timed call */
static bool pin_remote;    /* F_PIN_REMOTE: pins as generated */
static bool spawn_gate;
static sl_channel *chans[MT_MAX_CHANS];
static sl_tasklet *_Atomic handles[MT_MAX_SCRIPTS];
static atomic_int nlog;

static void log_event(int script, int kind, int op, int rc, int64_t val)
{
    int i = atomic_fetch_add_explicit(&nlog, 1, memory_order_relaxed);
    if (i >= MT_MAX_EVENTS)
        return;
    out->ev[i] = (struct mt_event){.script = (uint8_t)script,
                                   .kind = (uint8_t)kind,
                                   .op = (uint16_t)op,
                                   .rc = rc,
                                   .val = val};
}

static sl_tasklet *target(int k)
{
    if (k == 0)
        return sl_main();
    return atomic_load_explicit(&handles[k], memory_order_acquire);
}

static int64_t as_value(void *v)
{
    return (int64_t)(intptr_t)v;
}

static void *as_ptr(int64_t v)
{
    return (void *)(intptr_t)v;
}

static void script_fn(void *arg);

/* Run one op; returns its event's rc and sets *val. value: the message a
 * send carries. */
static int exec_op(const struct mt_op *o, int64_t value, int64_t *val)
{
    sl_channel *ch = o->ch >= 0 ? chans[o->ch] : NULL;
    void *v = NULL;
    int rc = 0;
    *val = 0;
    switch (o->kind) {
    case OP_SPAWN: {
        sl_spawn_attr a;
        sl_spawn_attr_init(&a);
        if (o->pin >= 0)
            a.worker = pin_remote ? o->pin % nworkers : sl_worker_index();
        a.paused = o->arg & 1;
        sl_tasklet *t = sl_spawn_ex(&a, script_fn, (void *)(intptr_t)o->script);
        if (t) {
            /* Valid until the spawner switches (docs/tasklet.md). */
            sl_tasklet_ref(t);
            atomic_store_explicit(&handles[o->script], t, memory_order_release);
        }
        rc = t ? 0 : -1;
        break;
    }
    case OP_SEND:
        rc = sl_channel_send(ch, as_ptr(value));
        break;
    case OP_RECV:
        rc = sl_channel_receive(ch, &v);
        break;
    case OP_TRY_SEND:
        rc = sl_channel_try_send(ch, as_ptr(value));
        break;
    case OP_TRY_RECV:
        rc = sl_channel_try_receive(ch, &v);
        break;
    case OP_SEND_TO:
        rc = sl_channel_send_timeout(ch, as_ptr(value), o->ms);
        break;
    case OP_RECV_TO:
        rc = sl_channel_receive_timeout(ch, &v, o->ms);
        break;
    case OP_SEND_ERR:
        rc = sl_channel_send_error(ch, (int)value);
        break;
    case OP_SEND_SEQ: {
        void *msgs[3];
        for (int j = 0; j < o->arg && j < 3; j++)
            msgs[j] = as_ptr(value + j);
        rc = sl_channel_send_sequence(ch, msgs, (size_t)o->arg);
        break;
    }
    case OP_SELECT: {
        sl_select_case cs[MT_MAX_CASES];
        for (int c = 0; c < o->ncases; c++) {
            cs[c].ch = o->cases[c].ch >= 0 ? chans[o->cases[c].ch] : NULL;
            cs[c].op = o->cases[c].op;
            cs[c].value = o->cases[c].op == SL_SEND ? as_ptr(value + c) : NULL;
        }
        rc = sl_select(cs, o->ncases, o->ms);
        if (rc >= 0 && rc < o->ncases && cs[rc].op == SL_RECV)
            v = cs[rc].value;
        break;
    }
    case OP_SET_PREF:
        sl_channel_set_preference(ch, o->arg);
        break;
    case OP_SET_SCHED_ALL:
        sl_channel_set_schedule_all(ch, o->arg != 0);
        break;
    case OP_CLOSE:
        sl_channel_close(ch);
        break;
    case OP_OPEN:
        sl_channel_open(ch);
        break;
    case OP_KILL:
    case OP_THROW:
    case OP_INSERT:
    case OP_REMOVE:
    case OP_RUN:
    case OP_SWITCH: {
        sl_tasklet *t = target(o->target);
        bool kill = o->kind == OP_KILL || o->kind == OP_THROW;
        if (!t || (!kill &&
                   ((guard_waiting && sl_tasklet_blocked(t)) ||
                    (guard_timed && atomic_load(&in_timed[o->target]))))) {
            rc = MT_SKIP;
            break;
        }
        rc = o->kind == OP_KILL     ? sl_tasklet_kill(t)
             : o->kind == OP_THROW
                 ? sl_tasklet_throw(t, o->arg & 2 ? SL_EKILLED : (int)value,
                                    o->arg & 1 ? SL_THROW_PENDING : 0)
             : o->kind == OP_INSERT ? sl_tasklet_insert(t)
             : o->kind == OP_REMOVE ? sl_tasklet_remove(t)
             : o->kind == OP_RUN    ? sl_tasklet_run(t)
                                    : sl_tasklet_switch(t);
        break;
    }
    case OP_SCHEDULE:
        rc = sl_schedule();
        break;
    case OP_SCHEDULE_REMOVE:
        rc = sl_schedule_remove();
        break;
    case OP_SLEEP:
        rc = sl_sleep_ms(o->ms);
        break;
    case OP_SL_RUN:
        rc = sl_run();
        break;
    case OP_PROBE: {
        sl_tasklet *t = target(o->target);
        bool closing = sl_channel_closing(ch), closed = sl_channel_closed(ch);
        *val = mt_probe_pack(sl_channel_balance(ch), (int)sl_channel_count(ch),
                             closing, closed, sl_getruncount(),
                             sl_getlivecount(), t ? sl_tasklet_alive(t) : -1,
                             t ? sl_tasklet_blocked(t) : -1,
                             t ? sl_tasklet_scheduled(t) : -1,
                             t ? sl_tasklet_paused(t) : -1);
        return 0;
    }
    default:
        abort();
    }
    if (o->kind == OP_TRY_SEND && value >= MT_DRAIN_VALUE)
        *val = value; /* the drain logs what it sent */
    else if (v || rc == 0)
        *val = as_value(v);
    return rc;
}

static void run_script(int k)
{
    const struct mt_script *s = &prog->s[k];
    for (int i = 0; i < s->n; i++) {
        const struct mt_op *o = &s->ops[i];
        int64_t val;
        int64_t value = mt_op_value(k, i, o);
        bool timed = mt_timed(o);
        if (timed)
            atomic_store(&in_timed[k], true);
        int rc = exec_op(o, value, &val);
        if (timed)
            atomic_store(&in_timed[k], false);
        log_event(k, o->kind, i, rc, val);
    }
}

static void script_fn(void *arg)
{
    int k = (int)(intptr_t)arg;
    /* --spawn-gate: do not end before the spawner has its reference. */
    while (spawn_gate && !atomic_load_explicit(&handles[k], memory_order_acquire))
        sl_schedule();
    run_script(k);
    /* the worker it ends on: 0 with one worker, for --stats with more */
    log_event(k, EV_END, 0, 0, sl_worker_index());
}

/* ---- the drain's view of the library -------------------------------------- */

static int v_balance(void *ctx, int c)
{
    (void)ctx;
    return sl_channel_balance(chans[c]);
}

static int v_count(void *ctx, int c)
{
    (void)ctx;
    return (int)sl_channel_count(chans[c]);
}

static bool v_paused(void *ctx, int k)
{
    (void)ctx;
    sl_tasklet *t = target(k);
    return t && sl_tasklet_paused(t);
}

static int v_livecount(void *ctx)
{
    (void)ctx;
    return sl_getlivecount();
}

static int64_t v_preds(void *ctx, int k)
{
    (void)ctx;
    sl_tasklet *t = target(k);
    if (!t || !sl_tasklet_alive(t))
        return 0;
    return mt_probe_pack(0, 0, 0, 0, 0, 0, 1, sl_tasklet_blocked(t),
                         sl_tasklet_scheduled(t), sl_tasklet_paused(t));
}

static const struct mt_drain_view view = {v_balance, v_count, v_paused,
                                          v_livecount, v_preds, NULL};

static void drain(void)
{
    struct mt_drain d;
    mt_drain_init(&d, prog);
    for (;;) {
        struct mt_drain_act a = mt_drain_next(&d, prog, &view);
        if (a.what == DA_BAD) {
            log_event(0, EV_BAD, 0, a.bad, a.value);
            continue;
        }
        if (a.what != DA_OP) {
            if (a.what == DA_STUCK)
                mt_drain_log_alive(prog, &view, log_event);
            log_event(0, EV_FINAL, 0, a.what == DA_STUCK ? MT_STUCK : 0,
                      mt_final_state(prog, &view));
            return;
        }
        int64_t val;
        int rc = exec_op(&a.op, a.value, &val);
        log_event(0, a.op.kind | EV_DRAIN, d.nops - 1, rc,
                  a.op.kind == OP_INSERT ? a.op.target : val);
    }
}

void mt_run_lib(const struct mt_prog *p, const struct mt_runcfg *cfg,
                struct mt_log *log)
{
    prog = p;
    out = log;
    nworkers = cfg->workers;
    guard_waiting = !(cfg->features & F_RUNQ_WAITING);
    guard_timed = !(cfg->features & F_RUNQ_TIMED);
    pin_remote = cfg->features & F_PIN_REMOTE;
    spawn_gate = cfg->spawn_gate;
    atomic_store(&nlog, 0);
    for (int k = 0; k < MT_MAX_SCRIPTS; k++) {
        atomic_store(&handles[k], NULL);
        atomic_store(&in_timed[k], false);
    }
    sl_config c;
    sl_config_init(&c);
    c.workers = cfg->workers;
    c.stack_mode = cfg->stack_mode;
    c.steal = cfg->steal;
    c.stack_size = 16 << 10;
    sl__test_virtual_clock(cfg->workers == 1);
    if (sl_init(&c) < 0)
        abort();
    for (int i = 0; i < p->nchans; i++) {
        chans[i] = sl_channel_new_buffered(p->ch[i].cap);
        if (!chans[i])
            abort();
        sl_channel_set_preference(chans[i], p->ch[i].pref);
        sl_channel_set_schedule_all(chans[i], p->ch[i].sched_all);
    }
    run_script(0);
    drain();
    for (int k = 1; k < MT_MAX_SCRIPTS; k++)
        sl_tasklet_unref(atomic_load(&handles[k]));
    sl_shutdown(); /* takes whatever the drain left off the channels */
    for (int i = 0; i < p->nchans; i++)
        sl_channel_free(chans[i]);
    sl__test_virtual_clock(false);
    log->n = atomic_load(&nlog);
}
