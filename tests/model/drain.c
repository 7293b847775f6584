/* drain.c - main's drain after its script: run, insert what is paused,
 * empty every channel, until nothing is alive. A state machine that hands
 * out one action at a time, so that the library run (lib.c) and the model
 * (ref.c) do exactly the same things in the same order. */
#include <stdlib.h>

#include <stackless.h>

#include "model.h"

enum { D_RUN, D_VERIFY, D_INSERT, D_CHAN, D_CHECK };

/* The channel tries per channel and round before the drain moves on. */
#define TRIES 64

void mt_drain_init(struct mt_drain *d, const struct mt_prog *p)
{
    *d = (struct mt_drain){.phase = D_RUN,
                           .limit = 4 + 2 * mt_total_ops(p),
                           .next_value = MT_DRAIN_VALUE};
}

static struct mt_drain_act op_act(struct mt_drain *d, int kind, int ch,
                                  int target)
{
    struct mt_drain_act a = {.what = DA_OP};
    a.op.kind = (uint8_t)kind;
    a.op.ch = (int8_t)ch;
    a.op.target = (int8_t)target;
    a.op.ms = -1;
    if (kind == OP_TRY_SEND)
        a.value = d->next_value++;
    d->nops++;
    return a;
}

static bool any_paused(const struct mt_prog *p, const struct mt_drain_view *v)
{
    for (int k = 1; k < p->nscripts; k++)
        if (v->paused(v->ctx, k))
            return true;
    return false;
}

struct mt_drain_act mt_drain_next(struct mt_drain *d, const struct mt_prog *p,
                                  const struct mt_drain_view *v)
{
    for (;;) {
        switch (d->phase) {
        case D_RUN:
            d->phase = D_VERIFY;
            d->c = 0;
            return op_act(d, OP_SL_RUN, -1, 0);
        case D_VERIFY:
            /* Nothing runs now (sl_run returned): a receiver waiting on a
             * buffered channel that holds messages, or a sender waiting
             * on one with room, is a lost wake-up. Only when no tasklet is
             * paused: a select woken but then removed before it ran still
             * counts in the balances of the channels it did not win. */
            if (d->c == 0 && any_paused(p, v))
                d->c = p->nchans;
            while (d->c < p->nchans) {
                int c = d->c++;
                int b = v->balance(v->ctx, c), n = v->count(v->ctx, c);
                int bad = b < 0 && n > 0   ? MT_BAD_RECV_WAITS_ON_RING
                          : b > 0 && n < p->ch[c].cap ? MT_BAD_SEND_WAITS_ON_ROOM
                                                      : 0;
                if (bad)
                    return (struct mt_drain_act){
                        .what = DA_BAD, .bad = bad, .value = c};
            }
            d->phase = D_INSERT;
            d->k = 1;
            break;
        case D_INSERT:
            while (d->k < p->nscripts) {
                int k = d->k++;
                if (v->paused(v->ctx, k))
                    return op_act(d, OP_INSERT, -1, k);
            }
            d->phase = D_CHAN;
            d->c = 0;
            d->tries = 0;
            break;
        case D_CHAN:
            while (d->c < p->nchans) {
                int c = d->c;
                int b = v->balance(v->ctx, c), n = v->count(v->ctx, c);
                if (d->tries < TRIES && (b != 0 || n > 0)) {
                    d->tries++;
                    return op_act(d, b < 0 ? OP_TRY_SEND : OP_TRY_RECV, c, 0);
                }
                d->c++;
                d->tries = 0;
            }
            d->phase = D_CHECK;
            break;
        case D_CHECK: {
            bool clean = v->livecount(v->ctx) == 0;
            for (int c = 0; c < p->nchans; c++)
                clean = clean && v->balance(v->ctx, c) == 0 &&
                        v->count(v->ctx, c) == 0;
            /* Clean: one more sl_run, so that whatever the tasklets did
             * on other workers happens before main's next steps (they
             * decrement the live count with a relaxed store: seeing 0
             * orders nothing; quiescence is reached under the runtime's
             * lock). */
            if (clean && d->settled)
                return (struct mt_drain_act){.what = DA_DONE};
            if (clean) {
                d->settled = true;
                d->phase = D_CHECK;
                return op_act(d, OP_SL_RUN, -1, 0);
            }
            d->settled = false;
            if (++d->round >= d->limit)
                return (struct mt_drain_act){.what = DA_STUCK};
            d->phase = D_RUN;
            break;
        }
        default:
            abort();
        }
    }
}

void mt_drain_log_alive(const struct mt_prog *p, const struct mt_drain_view *v,
                        void (*log)(int script, int kind, int op, int rc,
                                    int64_t val))
{
    for (int k = 1; k < p->nscripts; k++) {
        int64_t x = v->preds(v->ctx, k);
        if (x)
            log(k, EV_ALIVE, 0, 0, x);
    }
}

int64_t mt_final_state(const struct mt_prog *p, const struct mt_drain_view *v)
{
    int64_t bal = 0, cnt = 0;
    for (int c = 0; c < p->nchans; c++) {
        bal += abs(v->balance(v->ctx, c));
        cnt += v->count(v->ctx, c);
    }
    return (int64_t)v->livecount(v->ctx) | bal << 12 | cnt << 24;
}

int64_t mt_probe_pack(int balance, int count, bool closing, bool closed,
                      int runcount, int livecount, int alive, int blocked,
                      int scheduled, int paused)
{
    /* alive..paused: 0/1, or -1 when the probe names no tasklet */
    return (int64_t)(balance + 64) | (int64_t)count << 8 |
           (int64_t)closing << 16 | (int64_t)closed << 17 |
           (int64_t)runcount << 20 | (int64_t)livecount << 28 |
           (int64_t)(alive + 1) << 36 | (int64_t)(blocked + 1) << 38 |
           (int64_t)(scheduled + 1) << 40 | (int64_t)(paused + 1) << 42;
}
