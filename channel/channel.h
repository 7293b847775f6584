/* channel.h - the channel object (private). */
#ifndef SL_CHANNEL_H
#define SL_CHANNEL_H

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
};

enum {
    SL_AFTER_CONTINUE = 0, /* partner to the end of the run queue        */
    SL_AFTER_PARTNER,      /* partner runs now, the caller goes last     */
    SL_AFTER_YIELD,        /* partner to the end, the caller yields      */
};

/* Take t (blocked on ch) out of ch's wait queue; t becomes PAUSED. */
void sl__channel_unwait(sl_tasklet *t);

#endif /* SL_CHANNEL_H */
