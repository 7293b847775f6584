/* channel.h - the channel object (private). */
#ifndef SL_CHANNEL_H
#define SL_CHANNEL_H

#include "sched/sched.h"
#include "tasklet/tasklet.h"

/* Invariants:
 *  - head is a circle (through next/prev) of tasklets all waiting in the
 *    same direction: all senders (balance > 0) or all receivers (< 0);
 *  - |balance| is the length of that circle; head == NULL iff balance == 0;
 *  - every tasklet in it is SL_T_BLOCKED with chan == this channel and
 *    dir == sign(balance).
 */
struct sl_channel {
    sl_tasklet *head;    /* first (longest) waiter, NULL if none          */
    int balance;         /* > 0 senders waiting, < 0 receivers waiting    */
    int8_t preference;   /* -1 receiver, 0 neither, +1 sender             */
    bool schedule_all;   /* partner to the end and the caller yields      */
    uint8_t after[2];    /* what a completed send [0] / receive [1] does:
                            SL_AFTER_*, derived from the two fields above
                            so the hand-over path tests one byte         */
    bool closing;        /* sl_channel_close: would-block ops fail        */
    uint8_t lock;        /* guards all of the above and the waiters'
                            state while N > 1 workers run (sched.h)      */
    struct sl_ring *ring;/* buffered channel: its messages; else NULL     */
};

/* A buffered channel's messages: a ring of capacity slots. While it holds
 * messages no receiver waits; while it has room no sender waits. */
struct sl_slot {
    void *msg;
    int err; /* sl_channel_send_error's code, else 0 */
};
struct sl_ring {
    size_t cap, head, count;
    struct sl_slot slots[];
};

enum {
    SL_AFTER_CONTINUE = 0, /* partner to the end of the run queue        */
    SL_AFTER_PARTNER,      /* partner runs now, the caller goes last     */
    SL_AFTER_YIELD,        /* partner to the end, the caller yields      */
};

/* Take t (blocked on ch) out of ch's wait queue; t becomes PAUSED. */
void sl__channel_unwait(sl_tasklet *t);

/* t's claimable wait was just claimed by the caller (sl__claim): if it is
 * a channel or wait-queue wait still linked in its queue, unlink it (under
 * the queue's lock). Its state is left alone. */
void sl__channel_unwait_claimed(sl_tasklet *t);

/* Channel lock helpers (no-ops with one worker). */
static inline void sl__lk_lock(uint8_t *lk)
{
    if (sl__rt.mt)
        sl__spin_lock(lk);
}
static inline void sl__lk_unlock(uint8_t *lk)
{
    if (sl__rt.mt)
        sl__spin_unlock(lk);
}

/* Lock held: the first waiter of ch whose wait is still on, claimed for
 * the caller (a partner); waiters whose claimable wait has ended are
 * unlinked on the way. NULL when nobody is left. */
sl_tasklet *sl__chan_claim_head(sl_channel *ch);
/* Lock held: unlink t (or a select proxy) from ch's queue; t keeps its
 * state. */
void sl__chan_unlink(sl_channel *ch, sl_tasklet *t);
/* Lock held: is the case (dir +1 send, -1 receive) ready on ch? Claims the
 * partner if one is needed (*partner), so the caller must complete it. */
bool sl__chan_ready(sl_channel *ch, int dir, sl_tasklet **partner);
/* Lock held and the case ready (sl__chan_ready): complete it without
 * switching, unlock ch. Returns 0 or a received send_error code; *out gets
 * a received message. */
int sl__chan_complete_nowait(sl_worker *w, sl_channel *ch, int dir,
                             sl_tasklet *partner, void *msg, void **out);

#endif /* SL_CHANNEL_H */
