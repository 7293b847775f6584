/* waiter.h - the types of the one wait layer (private): a waiter, a wait
 * queue, and what a tasklet waits on. The protocol that uses them, with
 * its invariants, is in sched/wait.h; tasklet.h embeds a waiter in every
 * control block, so a plain wait allocates nothing. */
#ifndef SL_WAITER_H
#define SL_WAITER_H

#include <stdint.h>

typedef struct sl_tasklet sl_tasklet;

/* What a BLOCKED tasklet waits on (sl_tasklet.wkind): for sl_dump, gdb,
 * and the rules that depend on it. SL_W_CHAN is also the value at rest:
 * a channel wait, the most common, does not store it; every other kind
 * puts it back when its wait ends. */
enum sl_wkind {
    SL_W_CHAN = 0, /* one waiter in a channel's queue (send or receive)   */
    SL_W_SELECT,   /* a waiter per case in the cases' channels            */
    SL_W_SYNC,     /* one waiter in a sync object's queue (sync/)          */
    SL_W_SLEEP,    /* a timer only                                        */
    SL_W_FD,       /* a descriptor slot (and maybe a timer)               */
    SL_W_OFFLOAD,  /* an offloaded call: only its completion ends it; a
                      kill is reported once it has                       */
};

/* What a wait counts in (sl_tasklet.wcount), taken out by the tasklet when
 * it runs again, or by sl_tasklet_remove if it is removed before that
 * (sl__wait_account). */
enum {
    SL_WC_TIMER = 1,  /* a timer on wait_w: its timers_live, and nwaits    */
    SL_WC_FD = 2,     /* a descriptor on wait_w: its fd_waits, and nwaits  */
    SL_WC_NWAIT = 4,  /* nwaits alone (an offloaded call)                   */
};

struct sl_waitq {
    struct sl_waiter *head; /* (lock) first waiter of the circle, or NULL */
    int balance;            /* (lock; relaxed reads) sum of the linked
                               waiters' dir                               */
    int32_t lock_off;       /* where its lock is: (uint8_t *)q + lock_off
                               (set at init: the lock lives in the object
                               that embeds q)                            */
};

typedef struct sl_waiter sl_waiter;
struct sl_waiter {
    struct sl_waiter *next, *prev; /* (lock) the circle of q            */
    struct sl_waitq *q;     /* (lock) the queue it is linked in, or NULL  */
    sl_tasklet *t;          /* the tasklet that waits                     */
    void *value;            /* what the queue's owner exchanges: a channel
                               message sent or received, a sync value     */
    int result;             /* exchanged with the value: a send_error code
                               a sender offers, or the one a receiver got;
                               and, in the embedded waiter, the outcome of
                               the tasklet's wait (0, or the code of the
                               claimer that ended it: W4)               */
    uint32_t gen;           /* the wait (t's wseq) it belongs to; a
                               select's waiters keep it minus one (even:
                               sl__waiter_of_select)                      */
    int8_t dir;             /* +1 or -1: its weight in q->balance (a
                               channel: +1 sends, -1 receives)            */
    uint8_t done;           /* a select's waiter: a partner completed the
                               wait through it                            */
    uint16_t index;         /* select: its case                           */
};

#endif /* SL_WAITER_H */
