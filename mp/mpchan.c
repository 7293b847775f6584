/* mpchan.c - rendezvous channels between tasklets of different processes.
 *
 * An mpchan lives in the pool's shared heap, so its address means the same
 * in the parent and in every worker. It holds one message slot, whose
 * state is one word: its phase, the process copying (in or out), and the
 * message's sequence number.
 *
 *   EMPTY(n) --send claims--> WRITING(me, n) --filled--> FULL(n+1)
 *   FULL(n)  --receive claims--> READING(me, n) --copied--> EMPTY(n)
 *                                               \--too small--> FULL(n)
 *   FULL(n)  --its sender gives up (closed, killed)--> EMPTY(n)
 *
 * Invariants:
 *   - every change of phase is a compare-and-swap of the whole word, so
 *     exactly one process owns the slot while it copies, and nobody holds
 *     a lock: a copy in progress (of any size) only makes the others wait
 *     for the phase to change;
 *   - a process that dies in WRITING or READING is undone by the parent
 *     when it handles that death (sl__mp_chans_repair): WRITING(dead) goes
 *     back to EMPTY (the send never happened), READING(dead) to FULL (the
 *     message waits for the next receiver), and every waiter is rung;
 *   - a send has completed once the sequence has moved past its message
 *     (taken): rendezvous;
 *   - close is a flag and a bell to everyone: no waiter can miss it.
 *
 * Waiters first spin on the word (yielding to their own process's other
 * tasklets: a round trip between two busy processes then costs about a
 * microsecond); only when the spin fails do they set their process's bit
 * in the channel's wait mask and sleep on their process's doorbell (mp.h,
 * struct mp_local). Whoever changes the phase rings every process in the
 * mask that waits for it, so no bell is rung while both sides spin.
 *
 * Trust: in the parent, a channel is checked to be one the parent made
 * (the heap's private map records it) and its message length against the
 * block's size; a worker can spoil a channel's messages or stall its
 * waiters (sl_mpchan_close wakes them), never the parent. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mp/mp.h"

#define MASK_WORDS ((SL__MP_MAX_PROCESSES + 1 + 63) / 64)

enum { EMPTY = 0, WRITING = 1, FULL = 2, READING = 3 };
#define PHASE(s) ((unsigned)((s) & 3))
#define OWNER(s) ((unsigned)(((s) >> 2) & 0x3ff))
#define SEQ(s) ((s) >> 12)
#define STATE(ph, own, seq)                                                  \
    ((uint64_t)(seq) << 12 | (uint64_t)(own) << 2 | (uint64_t)(ph))

struct sl_mpchan {
    _Atomic uint64_t state;
    _Atomic uint32_t closed;
    _Atomic uint32_t len;       /* bytes of the message in data            */
    uint32_t max;               /* max_msg                                 */
    uint32_t pad;
    _Atomic uint64_t rwait[MASK_WORDS]; /* processes with a receiver asleep */
    _Atomic uint64_t swait[MASK_WORDS]; /* processes with a sender asleep   */
    char data[];
};

/* A call's view: the channel's pool, this process's index in it (0 the
 * parent, 1 + slot a worker), its waiting, and the largest message the
 * channel can hold as far as this process can tell. */
struct ctx {
    sl_pool *p;
    unsigned me;
    size_t max;
};

static int enter(sl_mpchan *ch, struct ctx *x)
{
    if (!ch)
        return SL_EINVAL;
    if (!sl_current())
        return SL_ESTATE;
    sl_pool *p = sl__mp_pool_of(ch);
    if (!p)
        return SL_EINVAL;
    if (sl__mp_forked_away)
        return SL_ESTATE; /* a task's fork of a worker */
    if (sl__mp_my_slot >= 0)
        x->me = (unsigned)sl__mp_my_slot + 1;
    else if (getpid() == p->parent_pid)
        x->me = 0;
    else
        return SL_ESTATE; /* not a process of its pool */
    x->p = p;
    size_t room = (size_t)(p->map.heap + p->map.heap_size - ch->data);
    if (x->me == 0) { /* the heap's own record of the block */
        uint64_t off1 = (uint64_t)((char *)ch - p->map.heap) + 1;
        size_t block = sl__mp_heap_block(&p->heap, off1, MP_BLOCK_CHAN);
        if (block == 0)
            return SL_EINVAL; /* not a channel */
        room = block - sizeof *ch;
    }
    size_t max = MP_ONCE(ch->max);
    x->max = max < room ? max : room;
    return 0;
}

static int proc_bell(sl_pool *p, unsigned k)
{
    return k == 0 ? p->parent_bell : p->ws[k - 1].bell;
}

/* Ring every process waiting in mask, and clear it. */
static void wake(sl_pool *p, _Atomic uint64_t *mask)
{
    unsigned words = (p->map.nprocs + 1 + 63) / 64;
    for (unsigned i = 0; i < words; i++) {
        if (!atomic_load(&mask[i]))
            continue;
        for (uint64_t m = atomic_exchange(&mask[i], 0); m; m &= m - 1) {
            unsigned k = i * 64 + (unsigned)__builtin_ctzll(m);
            if (k <= p->map.nprocs)
                sl__mp_bell_ring(proc_bell(p, k));
        }
    }
}

enum { SLOT_FREE, SLOT_FULL, TAKEN };

struct cond {
    sl_mpchan *ch;
    int what;
    uint64_t seq;
};

/* Message seq has been received: the sequence has moved past it. */
static bool taken(uint64_t s, uint64_t seq)
{
    return SEQ(s) > seq ||
           (SEQ(s) == seq && (PHASE(s) == EMPTY || PHASE(s) == WRITING));
}

static bool ready(void *arg)
{
    const struct cond *c = arg;
    uint64_t s = atomic_load(&c->ch->state);
    if (atomic_load(&c->ch->closed))
        return true;
    switch (c->what) {
    case SLOT_FREE:
        return PHASE(s) == EMPTY;
    case SLOT_FULL:
        return PHASE(s) == FULL;
    default:
        return taken(s, c->seq);
    }
}

/* Wait until c may hold: spin, then register in mask and sleep. 0 (look
 * again), or SL_EKILLED. */
static int wait_on(struct ctx *x, _Atomic uint64_t *mask, struct cond *c)
{
    if (sl__mp_spin_until(ready, c, true))
        return 0;
    struct mp_local *local = &x->p->local;
    uint64_t g = sl__mp_local_gen(local);
    atomic_fetch_or(&mask[x->me / 64], (uint64_t)1 << (x->me % 64));
    if (ready(c)) /* changed before the waker could see our bit */
        return 0;
    return sl__mp_local_wait(local, g);
}

int sl_mpchan_new(sl_pool *handle, size_t max_msg, sl_mpchan **out)
{
    if (!out)
        return SL_EINVAL;
    *out = NULL;
    sl_pool *p = sl__mp_pool_lookup(handle); /* NULL: not a live pool */
    if (!p || max_msg == 0 || max_msg > SL__MP_MAX_PAYLOAD)
        return SL_EINVAL;
    if (sl__mp_my_slot >= 0 || getpid() != p->parent_pid)
        return SL_ESTATE; /* the parent makes them */
    int rc = sl_lock_acquire(&p->lock);
    if (rc < 0)
        return rc;
    if (p->nchans == p->chans_cap) {
        size_t cap = p->chans_cap ? 2 * p->chans_cap : 16;
        uint64_t *c = realloc(p->chans, cap * sizeof *c);
        if (!c) {
            sl_lock_release(&p->lock);
            return SL_ENOMEM;
        }
        p->chans = c;
        p->chans_cap = cap;
    }
    uint64_t off = sl__mp_heap_alloc(&p->heap, sizeof(sl_mpchan) + max_msg,
                                     MP_BLOCK_CHAN);
    if (off)
        p->chans[p->nchans++] = off;
    sl_lock_release(&p->lock);
    if (!off)
        return SL_ENOMEM;
    sl_mpchan *ch = mp_heap_ptr(&p->map, off);
    memset(ch, 0, sizeof *ch);
    ch->max = (uint32_t)max_msg;
    *out = ch;
    return 0;
}

int sl_mpchan_free(sl_mpchan *ch)
{
    struct ctx x;
    int rc = enter(ch, &x);
    if (rc)
        return rc;
    if (x.me != 0)
        return SL_ESTATE;
    sl_pool *p = x.p;
    uint64_t off = (uint64_t)((char *)ch - p->map.heap) + 1;
    sl_lock_acquire(&p->lock);
    for (size_t i = 0; i < p->nchans; i++)
        if (p->chans[i] == off) {
            p->chans[i] = p->chans[--p->nchans];
            break;
        }
    sl_lock_release(&p->lock);
    sl__mp_heap_free(&p->heap, off);
    return 0;
}

int sl_mpchan_close(sl_mpchan *ch)
{
    struct ctx x;
    int rc = enter(ch, &x);
    if (rc)
        return rc;
    atomic_store(&ch->closed, 1);
    wake(x.p, ch->rwait);
    wake(x.p, ch->swait);
    return 0;
}

int sl_mpchan_send(sl_mpchan *ch, const void *msg, size_t len)
{
    struct ctx x;
    int rc = enter(ch, &x);
    if (rc)
        return rc;
    if (len > x.max || (len && !msg))
        return SL_EINVAL;
    /* 1. Claim the empty slot, fill it, publish it. */
    uint64_t seq;
    for (;;) {
        if (atomic_load(&ch->closed))
            return SL_ECLOSED;
        uint64_t s = atomic_load(&ch->state);
        if (PHASE(s) == EMPTY) {
            uint64_t mine = STATE(WRITING, x.me, SEQ(s));
            if (!atomic_compare_exchange_strong(&ch->state, &s, mine))
                continue;
            memcpy(ch->data, msg, len);
            atomic_store(&ch->len, (uint32_t)len);
            seq = SEQ(s) + 1;
            if (atomic_compare_exchange_strong(&ch->state, &mine,
                                               STATE(FULL, 0, seq))) {
                wake(x.p, ch->rwait);
                break;
            }
            continue; /* taken from us: only a wild write does that */
        }
        struct cond c = {ch, SLOT_FREE, 0};
        if ((rc = wait_on(&x, ch->swait, &c)) < 0)
            return rc;
    }
    /* 2. Wait until a receiver has taken it. */
    for (;;) {
        uint64_t s = atomic_load(&ch->state);
        if (taken(s, seq))
            return 0;
        if (rc < 0 || atomic_load(&ch->closed)) {
            /* Give up: take our message back, unless a receiver is
             * copying it out right now (then it is as good as taken). */
            uint64_t full = STATE(FULL, 0, seq);
            if (atomic_compare_exchange_strong(&ch->state, &full,
                                               STATE(EMPTY, 0, seq))) {
                wake(x.p, ch->swait);
                return rc < 0 ? rc : SL_ECLOSED;
            }
            if (PHASE(full) == READING && SEQ(full) == seq)
                return rc < 0 ? rc : SL_ECLOSED;
            continue; /* moved on: look again */
        }
        struct cond c = {ch, TAKEN, seq};
        rc = wait_on(&x, ch->swait, &c); /* a kill: retract, above */
    }
}

int sl_mpchan_receive(sl_mpchan *ch, void *buf, size_t *len)
{
    struct ctx x;
    int rc = enter(ch, &x);
    if (rc)
        return rc;
    if (!len || (*len && !buf))
        return SL_EINVAL;
    for (;;) {
        uint64_t s = atomic_load(&ch->state);
        if (PHASE(s) == FULL) {
            uint64_t mine = STATE(READING, x.me, SEQ(s));
            if (!atomic_compare_exchange_strong(&ch->state, &s, mine))
                continue;
            size_t l = atomic_load(&ch->len);
            if (l > x.max) { /* a length nobody sent: drop the message */
                atomic_compare_exchange_strong(&ch->state, &mine,
                                               STATE(EMPTY, 0, SEQ(s)));
                wake(x.p, ch->swait);
                return -EOVERFLOW;
            }
            if (l > *len) { /* too small: put it back for whoever has room */
                *len = l;
                atomic_compare_exchange_strong(&ch->state, &mine,
                                               STATE(FULL, 0, SEQ(s)));
                wake(x.p, ch->rwait);
                return -EMSGSIZE;
            }
            memcpy(buf, ch->data, l);
            *len = l;
            atomic_compare_exchange_strong(&ch->state, &mine,
                                           STATE(EMPTY, 0, SEQ(s)));
            wake(x.p, ch->swait);
            return 0;
        }
        if (atomic_load(&ch->closed))
            return SL_ECLOSED;
        struct cond c = {ch, SLOT_FULL, 0};
        if ((rc = wait_on(&x, ch->rwait, &c)) < 0)
            return rc;
    }
}

void sl__mp_chans_repair(sl_pool *p, int slot)
{
    unsigned owner = (unsigned)slot + 1;
    for (size_t i = 0; i < p->nchans; i++) {
        sl_mpchan *ch = mp_heap_ptr(&p->map, p->chans[i]);
        uint64_t s = atomic_load(&ch->state);
        if (OWNER(s) != owner ||
            (PHASE(s) != WRITING && PHASE(s) != READING))
            continue;
        unsigned back = PHASE(s) == WRITING ? EMPTY : FULL;
        atomic_compare_exchange_strong(&ch->state, &s,
                                       STATE(back, 0, SEQ(s)));
        wake(p, ch->rwait);
        wake(p, ch->swait);
    }
}
