/* channel.c - rendezvous channels with Stackless Python's semantics.
 *
 * Invariants (see channel.h): one FIFO wait queue per channel holding only
 * senders or only receivers; balance counts them (+ senders, - receivers);
 * a waiting tasklet is BLOCKED, linked through next/prev, and records its
 * channel, direction, message and the result its call will return.
 *
 * One operation, two outcomes:
 *  - a partner waits: the message changes hands, the partner becomes
 *    runnable and the preference decides who runs: -dir (the partner is
 *    preferred) switches to it at once, leaving the caller at the end of
 *    the run queue; otherwise the caller continues and the partner goes to
 *    the end. schedule_all overrides both: partner to the end, caller
 *    yields. A closing channel still completes these.
 *  - nobody waits: the caller blocks at the tail of the wait queue and the
 *    next runnable tasklet runs; on a closing channel the call fails with
 *    SL_ECLOSED instead; try_* calls fail with SL_EWOULDBLOCK.
 */
#include <stdlib.h>

#include "channel/channel.h"
#include "sched/sched.h"

/* Recompute after[] from preference and schedule_all. */
static void set_after(sl_channel *ch)
{
    for (int i = 0; i < 2; i++) {
        int dir = i == 0 ? 1 : -1;
        ch->after[i] = ch->schedule_all         ? SL_AFTER_YIELD
                       : ch->preference == -dir ? SL_AFTER_PARTNER
                                                : SL_AFTER_CONTINUE;
    }
}

sl_channel *sl_channel_new(void)
{
    sl_channel *ch = calloc(1, sizeof *ch);
    if (ch) {
        ch->preference = -1;
        set_after(ch);
    }
    return ch;
}

int sl_channel_free(sl_channel *ch)
{
    if (!ch)
        return SL_EINVAL;
    if (ch->balance != 0)
        return SL_ESTATE;
    free(ch);
    return 0;
}

void sl__channel_unwait(sl_tasklet *t)
{
    sl_channel *ch = t->chan;
    SL__ASSERT(SL_LOAD(&t->state) == SL_T_BLOCKED && ch && ch->head);
    if (t->next == t) {
        ch->head = NULL;
    } else {
        t->prev->next = t->next;
        t->next->prev = t->prev;
        if (ch->head == t)
            ch->head = t->next;
    }
    SL_STORE(&ch->balance, ch->balance - t->dir);
    t->next = t->prev = NULL;
    SL_STORE(&t->chan, NULL);
    SL_STORE(&t->state, (uint8_t)SL_T_PAUSED);
}

/* Slow paths, kept out of line so that the hand-over path below needs no
 * callee-saved registers: a switch clobbers every caller-saved one. With
 * several workers the channel lock is held on entry to each of them. */

static inline void ch_unlock(sl_channel *ch)
{
    if (sl__rt.mt)
        sl__spin_unlock(&ch->lock);
}

/* The partner t is preferred: it runs now, here, the caller goes to the
 * end. A partner pinned to another worker is queued there instead. */
static __attribute__((noinline)) int run_partner(sl_worker *w, sl_tasklet *cur,
                                                 sl_tasklet *t, int rc)
{
    if (sl_unlikely(t->pin >= 0) && t->pin != w->index) {
        sl__wake_remote(w, t);
        return rc;
    }
    sl__rq_link_after_current(w, t);
    w->current = t;
    sl__jump(w, cur, t);
    return rc; /* completed: a kill meanwhile shows at the next block */
}

/* schedule_all: the partner goes to the end and the caller yields. */
static __attribute__((noinline)) int yield_after(sl_worker *w, sl_tasklet *cur,
                                                 sl_tasklet *t, int rc)
{
    sl__wake(w, t);
    sl_tasklet *next = cur->next;
    if (next == cur)
        return rc;
    w->current = next;
    sl__jump(w, cur, next);
    return rc; /* completed: a kill meanwhile shows at the next block */
}

/* Nobody waits: the caller blocks at the tail of the wait queue. */
static __attribute__((noinline)) int block(sl_worker *w, sl_channel *ch,
                                           int dir, void *msg, void **out,
                                           int err)
{
    sl_tasklet *cur = w->current;
    if (sl_unlikely(SL_LOAD(&cur->killed))) {
        ch_unlock(ch);
        return SL_EKILLED;
    }
    if (ch->closing) {
        ch_unlock(ch);
        return SL_ECLOSED;
    }
    sl_tasklet *next = sl__rq_leave(w, cur);
    if (sl_unlikely(!next)) {
        ch_unlock(ch);
        return SL_EDEADLOCK;
    }
    SL_STORE(&cur->state, (uint8_t)SL_T_BLOCKED);
    SL_STORE(&cur->chan, ch);
    cur->dir = (int8_t)dir;
    cur->value = msg;
    cur->result = err;
    if (!ch->head) {
        ch->head = cur;
        cur->next = cur->prev = cur;
    } else {
        sl__rq_link_before(ch->head, cur);
    }
    SL_STORE(&ch->balance, ch->balance + dir);
    if (sl__rt.mt) { /* released once we are switched out (sched.h) */
        w->post_unlock = &ch->lock;
        w->post = 1;
    }
    sl__jump(w, cur, next);
    /* Resumed: a partner completed us (0 or its error), a killer took us
     * off the queue (SL_EKILLED), or main's call was ended because nothing
     * could ever complete it (SL_EDEADLOCK). A call a partner completed
     * returns its message even if we were killed after that: the kill
     * shows at the next blocking call, and no message is lost. */
    int rc = cur->result;
    if (dir < 0 && rc == 0 && out)
        *out = cur->value;
    cur->result = 0;
    return rc;
}

/* The one channel operation. dir +1 sends msg (with err != 0: send_error),
 * dir -1 receives into *out. */
static inline __attribute__((always_inline)) int
channel_action(sl_channel *ch, int dir, void *msg, void **out, int err,
               bool try_only)
{
    sl_worker *w = sl__self();
    if (sl_unlikely(!w))
        return SL_ESTATE;
    if (sl_unlikely(!ch))
        return SL_EINVAL;
    if (sl_unlikely(sl__check_inbox(w)))
        sl__abandon(w); /* sl_shutdown: this worker stops */
    if (sl__rt.mt)
        sl__spin_lock(&ch->lock);
    int bal = ch->balance;
    if (!(dir > 0 ? bal < 0 : bal > 0)) {
        if (try_only) {
            ch_unlock(ch);
            return SL_EWOULDBLOCK;
        }
        return block(w, ch, dir, msg, out, err);
    }

    /* A partner waits: take the first one off the queue, hand over. */
    sl_tasklet *t = ch->head;
    /* It runs soon: start fetching its saved context (the top of its
     * stack, likely cold when there are many tasklets) while we do the
     * bookkeeping. */
    __builtin_prefetch(t->ctx);
    __builtin_prefetch((char *)t->ctx + 64);
    if (t->next == t) {
        ch->head = NULL;
    } else {
        t->prev->next = t->next;
        t->next->prev = t->prev;
        ch->head = t->next;
    }
    SL_STORE(&ch->balance, bal + dir);
    SL_STORE(&t->chan, NULL);
    int rc = 0;
    if (dir > 0) {
        t->value = msg;
        t->result = err;
    } else {
        rc = t->result;
        if (sl_likely(rc == 0)) {
            if (out)
                *out = t->value;
        } else {
            t->result = 0; /* the sender's own call succeeded */
        }
    }
    uint8_t after = ch->after[dir > 0 ? 0 : 1];
    ch_unlock(ch);
    if (after == SL_AFTER_PARTNER)
        return run_partner(w, w->current, t, rc);
    if (sl_unlikely(after == SL_AFTER_YIELD))
        return yield_after(w, w->current, t, rc);
    sl__wake(w, t);
    return rc;
}

int sl_channel_send(sl_channel *ch, void *msg)
{
    return channel_action(ch, 1, msg, NULL, 0, false);
}

int sl_channel_receive(sl_channel *ch, void **msg)
{
    return channel_action(ch, -1, NULL, msg, 0, false);
}

int sl_channel_try_send(sl_channel *ch, void *msg)
{
    return channel_action(ch, 1, msg, NULL, 0, true);
}

int sl_channel_try_receive(sl_channel *ch, void **msg)
{
    return channel_action(ch, -1, NULL, msg, 0, true);
}

int sl_channel_send_error(sl_channel *ch, int err)
{
    if (err >= 0)
        return SL_EINVAL;
    return channel_action(ch, 1, NULL, NULL, err, false);
}

int sl_channel_balance(const sl_channel *ch)
{
    return ch ? SL_LOAD(&ch->balance) : 0;
}

int sl_channel_preference(const sl_channel *ch)
{
    return ch ? ch->preference : SL_EINVAL;
}

void sl_channel_set_preference(sl_channel *ch, int pref)
{
    if (!ch)
        return;
    ch->preference = (int8_t)(pref < -1 ? -1 : pref > 1 ? 1 : pref);
    set_after(ch);
}

bool sl_channel_schedule_all(const sl_channel *ch)
{
    return ch && ch->schedule_all;
}

void sl_channel_set_schedule_all(sl_channel *ch, bool on)
{
    if (!ch)
        return;
    ch->schedule_all = on;
    set_after(ch);
}

void sl_channel_close(sl_channel *ch)
{
    if (ch)
        ch->closing = true;
}

void sl_channel_open(sl_channel *ch)
{
    if (ch)
        ch->closing = false;
}

bool sl_channel_closing(const sl_channel *ch)
{
    return ch && ch->closing;
}

bool sl_channel_closed(const sl_channel *ch)
{
    return ch && ch->closing && SL_LOAD(&ch->balance) == 0;
}
