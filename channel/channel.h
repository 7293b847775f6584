/* channel.h - the channel object (private). */
#ifndef SL_CHANNEL_H
#define SL_CHANNEL_H

#include "sched/wait.h"

/* Invariants (lock held; with one worker there is no lock):
 *  - q holds waiters of one direction only: senders (q.balance > 0) or
 *    receivers (< 0); q.balance is their count with that sign. Waiters
 *    whose wait is over (a select that completed elsewhere) may still be
 *    linked until somebody meets them: every look for a partner goes
 *    through sl__waitq_claim_head, which unlinks them on the way;
 *  - a buffered channel: while its ring holds messages no live receiver
 *    waits, and while it has room no live sender waits; a receive takes
 *    from the ring first, then moves the first waiting sender's message
 *    into it;
 *  - closing only changes under the lock.
 */
struct sl_channel {
    struct sl_waitq q;   /* waiting senders or receivers (sched/wait.h)    */
    int8_t preference;   /* -1 receiver, 0 neither, +1 sender             */
    bool schedule_all;   /* partner to the end and the caller yields      */
    uint8_t after[2];    /* what a completed send [0] / receive [1] does:
                            SL_AFTER_*, derived from the two fields above
                            so the hand-over path tests one byte         */
    uint8_t closing;     /* (lock; relaxed reads) sl_channel_close: ops
                            that would block fail                        */
    uint8_t lock;        /* guards all of the above and the ring while
                            N > 1 workers run (sched.h)                  */
    struct sl_ring *ring;/* buffered channel: its messages; else NULL     */
};

/* A buffered channel's messages: a ring of capacity slots. */
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

/* For select (channel/select.c), lock held. The one readiness rule of a
 * channel operation (dir +1 send, -1 receive), the same the blocking calls
 * follow: true if it can complete now; a partner it needs is claimed
 * into *partner (NULL: the ring serves it), so the caller must complete
 * it with sl__chan_complete_nowait. */
bool sl__chan_ready(sl_channel *ch, int dir, sl_waiter **partner);
/* Complete a ready operation without switching (a partner it wakes goes
 * to the end of the run queue), and unlock ch. Returns 0 or a received
 * send_error code; *out gets a received message. */
int sl__chan_complete_nowait(sl_worker *w, sl_channel *ch, int dir,
                             sl_waiter *partner, void *msg, int err,
                             void **out);

#endif /* SL_CHANNEL_H */
