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
 *
 * Timeouts make a wait "claimable" (tasklet.h, enum sl_wkind): the timer
 * and a partner may race to end it, and the compare-and-swap on the
 * waiter's wseq decides. A partner meeting a waiter whose wait has already
 * ended (timed out, killed, a select that completed elsewhere) unlinks it
 * and takes the next one, so the queue and balance stay exact. Plain waits
 * (no timeout) skip all that: the hand-over path tests one byte.
 *
 * Buffered channels (ring != NULL) queue up to capacity messages; a
 * receiver waits only when the ring is empty, a sender only when it is
 * full, so the wait queue still holds one direction only.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "channel/channel.h"
#include "channel/waitq.h"
#include "sched/sched.h"

_Static_assert(sizeof(struct sl__waitq) >= sizeof(sl_channel) &&
                   _Alignof(struct sl__waitq) >= _Alignof(sl_channel),
               "struct sl__waitq must hold a channel");

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

static void channel_init(sl_channel *ch)
{
    memset(ch, 0, sizeof *ch);
    ch->preference = -1;
    set_after(ch);
}

sl_channel *sl_channel_new(void)
{
    sl_channel *ch = malloc(sizeof *ch);
    if (ch)
        channel_init(ch);
    return ch;
}

sl_channel *sl_channel_new_buffered(size_t capacity)
{
    if (capacity == 0)
        return sl_channel_new();
    if (capacity > SL_CHANNEL_MAX_CAPACITY)
        return NULL;
    sl_channel *ch = malloc(sizeof *ch);
    struct sl_ring *r =
        malloc(sizeof *r + capacity * sizeof(struct sl_slot));
    if (!ch || !r) {
        free(ch);
        free(r);
        return NULL;
    }
    channel_init(ch);
    r->cap = capacity;
    r->head = r->count = 0;
    ch->ring = r;
    return ch;
}

int sl_channel_free(sl_channel *ch)
{
    if (!ch)
        return SL_EINVAL;
    if (SL_LOAD(&ch->balance) != 0)
        return SL_ESTATE;
    free(ch->ring);
    free(ch);
    return 0;
}

size_t sl_channel_capacity(const sl_channel *ch)
{
    return ch && ch->ring ? ch->ring->cap : 0;
}

size_t sl_channel_count(const sl_channel *ch)
{
    return ch && ch->ring ? SL_LOAD(&ch->ring->count) : 0;
}

void sl__chan_unlink(sl_channel *ch, sl_tasklet *t)
{
    SL__ASSERT(SL_LOAD(&t->chan) == ch && ch->head);
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
}

void sl__channel_unwait(sl_tasklet *t)
{
    SL__ASSERT(SL_LOAD(&t->state) == SL_T_BLOCKED);
    sl__chan_unlink(t->chan, t);
    SL_STORE(&t->state, (uint8_t)SL_T_PAUSED);
}

void sl__channel_unwait_claimed(sl_tasklet *t)
{
    if (t->wkind != SL_W_CHAN)
        return; /* a select's proxies are unlinked by their owner */
    uint8_t *lk = t->wlock;
    sl__lk_lock(lk);
    sl_channel *ch = SL_LOAD(&t->chan);
    if (ch) /* else a partner met it ended and unlinked it already */
        sl__chan_unlink(ch, t);
    sl__lk_unlock(lk);
}

sl_tasklet *sl__chan_claim_head(sl_channel *ch)
{
    sl_tasklet *t;
    while ((t = ch->head)) {
        uint8_t k = t->wkind;
        if (k == SL_W_PLAIN)
            return t;
        sl_tasklet *owner = k == SL_W_PROXY ? (sl_tasklet *)t->arg : t;
        uint32_t g = k == SL_W_PROXY ? t->wseq : SL_LOAD(&t->wseq);
        if ((g & 1) && sl__claim(owner, g))
            return t;
        sl__chan_unlink(ch, t); /* its wait ended: timed out, killed, ... */
    }
    return NULL;
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

/* Nobody waits (or nothing is buffered, or there is no room): the caller
 * blocks at the tail of the wait queue, which lk guards (the channel's
 * lock, or a sync object's guard for a wait queue). A timeout, or a wait
 * queue, makes the wait claimable. */
enum {
    BLK_CLAIMABLE = 1, /* a timeout or a wait queue: claimable wait     */
    BLK_TRY = 2,       /* try_*: fail with SL_EWOULDBLOCK instead       */
    BLK_RING = 4,      /* look at a buffered channel's ring first       */
};

static int buffered_action(sl_worker *w, sl_channel *ch, int dir, void *msg,
                           void **out, int err, bool try_only,
                           int64_t timeout_ms);

/* The flags of a channel call that found no partner. */
static inline int blk_flags(bool try_only, int64_t timeout_ms)
{
    return BLK_RING | (try_only ? BLK_TRY : 0) |
           (timeout_ms >= 0 ? BLK_CLAIMABLE : 0);
}

static inline __attribute__((always_inline)) int
block_ex(sl_worker *w, sl_channel *ch, int dir, void *msg, void **out,
         int err, int64_t timeout_ms, uint8_t *lk, int flags)
{
    if ((flags & BLK_RING) && sl_unlikely(ch->ring != NULL))
        return buffered_action(w, ch, dir, msg, out, err, flags & BLK_TRY,
                               timeout_ms);
    if (flags & BLK_TRY) {
        sl__lk_unlock(lk);
        return SL_EWOULDBLOCK;
    }
    bool claimable = flags & BLK_CLAIMABLE;
    sl_tasklet *cur = w->current;
    int rc = 0;
    if (sl_unlikely(SL_LOAD(&cur->killed)))
        rc = SL_EKILLED;
    else if (ch->closing)
        rc = SL_ECLOSED;
    else if (timeout_ms == 0)
        rc = SL_ETIMEDOUT;
    if (rc) {
        sl__lk_unlock(lk);
        return rc;
    }
    uint32_t gen = 0;
    cur->wlock = lk;
    if (claimable)
        gen = sl__wait_begin(cur, SL_W_CHAN);
    sl_worker *tw = w; /* where the timer is armed */
    bool timed = timeout_ms > 0;
    if (timed && (rc = sl__timer_arm(w, cur, gen, sl__deadline(timeout_ms)))) {
        (void)sl__claim(cur, gen);
        cur->wkind = SL_W_PLAIN;
        sl__lk_unlock(lk);
        return rc;
    }
    sl_tasklet *next = sl__rq_leave(w, cur);
    if (sl_unlikely(!next)) {
        if (claimable) {
            (void)sl__claim(cur, gen);
            cur->wkind = SL_W_PLAIN;
        }
        sl__lk_unlock(lk);
        return SL_EDEADLOCK;
    }
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
    if (claimable) /* a claimer may not touch it before the switch lands */
        sl__publish_after_switch(w, cur, SL_T_BLOCKED);
    else
        SL_STORE(&cur->state, (uint8_t)SL_T_BLOCKED);
    if (sl__rt.mt) { /* released once we are switched out (sched.h) */
        w->post_unlock = lk;
        w->post = 1;
    }
    w = sl__jump(w, cur, next);
    sl__events_due(w);
    /* Resumed: a partner completed us (0 or its error), a killer took us
     * off the queue (SL_EKILLED), the timer did (SL_ETIMEDOUT), or main's
     * call was ended because nothing could ever complete it
     * (SL_EDEADLOCK). A call a partner completed returns its message even
     * if we were killed after that: the kill shows at the next blocking
     * call, and no message is lost. */
    rc = cur->result;
    if (dir < 0 && rc == 0 && out)
        *out = cur->value;
    cur->result = 0;
    cur->wkind = SL_W_PLAIN;
    if (timed)
        sl__timer_done(tw);
    return rc;
}

/* Out-of-line copies of block_ex: the general one, and the plain channel
 * wait (no timeout, not try) with everything it does not need folded
 * away, which keeps the common blocking path short. */
static __attribute__((noinline)) int block(sl_worker *w, sl_channel *ch,
                                           int dir, void *msg, void **out,
                                           int err, int64_t timeout_ms,
                                           uint8_t *lk, int flags)
{
    return block_ex(w, ch, dir, msg, out, err, timeout_ms, lk, flags);
}

static __attribute__((noinline)) int block_plain(sl_worker *w, sl_channel *ch,
                                                 int dir, void *msg,
                                                 void **out, int err)
{
    return block_ex(w, ch, dir, msg, out, err, -1, &ch->lock, BLK_RING);
}

/* A select case (proxy p of owner) completes with the caller as partner:
 * the message changes hands through p, the owner learns which case won
 * (owner->value = p) and becomes runnable; the caller continues. Lock
 * held, released here. */
static int proxy_complete(sl_worker *w, sl_channel *ch, sl_tasklet *p,
                          int dir, void *msg, void **out, int err)
{
    sl_tasklet *owner = (sl_tasklet *)p->arg;
    sl__chan_unlink(ch, p);
    if (dir > 0) {
        p->value = msg;
        p->result = err;
    } else if (out) {
        *out = p->value;
    }
    owner->value = p;
    owner->result = 0;
    ch_unlock(ch);
    while (SL_LOAD_ACQ(&owner->state) == SL_T_SWITCHING)
        sched_yield();
    sl__wake(w, owner);
    return 0;
}

/* A partner t waits (claimed if its wait is claimable): take it off the
 * queue and hand over; the preference decides who runs. Lock held,
 * released here. */
static inline __attribute__((always_inline)) int
complete(sl_worker *w, sl_channel *ch, sl_tasklet *t, int dir, void *msg,
         void **out, int err)
{
    /* It runs soon: start fetching its saved context (the top of its
     * stack, likely cold when there are many tasklets) while we do the
     * bookkeeping. A copy-mode tasklet's context is on the shared stack
     * (hot) once restored, but its frames are in its heap buffer: fetch
     * that, typically five lines (tasklet/copystack.c). */
    const char *pf = sl_unlikely(t->copy) && t->saved ? t->saved
                                                      : (const char *)t->ctx;
    __builtin_prefetch(pf);
    __builtin_prefetch(pf + 64);
    if (sl_unlikely(t->copy)) {
        __builtin_prefetch(pf + 128);
        __builtin_prefetch(pf + 192);
        __builtin_prefetch(pf + 256);
    }
    if (t->next == t) {
        ch->head = NULL;
    } else {
        t->prev->next = t->next;
        t->next->prev = t->prev;
        ch->head = t->next;
    }
    SL_STORE(&ch->balance, ch->balance + dir);
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

/* The head waiter's wait is claimable: claim the first live one. */
static __attribute__((noinline)) int
claimed_action(sl_worker *w, sl_channel *ch, int dir, void *msg, void **out,
               int err, bool try_only, int64_t timeout_ms)
{
    sl_tasklet *t = sl__chan_claim_head(ch);
    if (!t)
        return block(w, ch, dir, msg, out, err, timeout_ms, &ch->lock,
                     blk_flags(try_only, timeout_ms));
    if (t->wkind == SL_W_PROXY)
        return proxy_complete(w, ch, t, dir, msg, out, err);
    return complete(w, ch, t, dir, msg, out, err);
}

bool sl__chan_ready(sl_channel *ch, int dir, sl_tasklet **partner)
{
    *partner = NULL;
    struct sl_ring *r = ch->ring;
    if (r && (dir > 0 ? r->count < r->cap && !ch->closing : r->count > 0))
        return true;
    int bal = ch->balance;
    if (dir > 0 ? bal < 0 : bal > 0)
        *partner = sl__chan_claim_head(ch);
    return *partner != NULL;
}

/* A sender waits on a full ring from which a receive just took a message:
 * its message moves into the ring, its send completes, it becomes
 * runnable. Lock held. */
static void refill_from_sender(sl_worker *w, sl_channel *ch)
{
    sl_tasklet *t = ch->balance > 0 ? sl__chan_claim_head(ch) : NULL;
    if (!t)
        return;
    struct sl_ring *r = ch->ring;
    struct sl_slot *s = &r->slots[(r->head + r->count) % r->cap];
    s->msg = t->value;
    s->err = t->wkind == SL_W_PROXY ? 0 : t->result;
    SL_STORE(&r->count, r->count + 1);
    sl__chan_unlink(ch, t);
    sl_tasklet *waker = t;
    if (t->wkind == SL_W_PROXY) {
        waker = (sl_tasklet *)t->arg;
        waker->value = t;
    }
    waker->result = 0;
    while (SL_LOAD_ACQ(&waker->state) == SL_T_SWITCHING)
        sched_yield();
    sl__wake(w, waker);
}

int sl__chan_complete_nowait(sl_worker *w, sl_channel *ch, int dir,
                             sl_tasklet *t, void *msg, void **out)
{
    if (t) { /* rendezvous with a waiting partner, nobody switches */
        if (t->wkind == SL_W_PROXY)
            return proxy_complete(w, ch, t, dir, msg, out, 0);
        sl__chan_unlink(ch, t);
        int rc = 0;
        if (dir > 0) {
            t->value = msg;
            t->result = 0;
        } else {
            rc = t->result;
            if (rc == 0 && out)
                *out = t->value;
            t->result = 0;
        }
        ch_unlock(ch);
        sl__wake(w, t);
        return rc;
    }
    struct sl_ring *r = ch->ring;
    int rc = 0;
    if (dir > 0) {
        struct sl_slot *s = &r->slots[(r->head + r->count) % r->cap];
        s->msg = msg;
        s->err = 0;
        SL_STORE(&r->count, r->count + 1);
    } else {
        struct sl_slot *s = &r->slots[r->head];
        r->head = (r->head + 1) % r->cap;
        SL_STORE(&r->count, r->count - 1);
        rc = s->err;
        if (rc == 0 && out)
            *out = s->msg;
        refill_from_sender(w, ch);
    }
    ch_unlock(ch);
    return rc;
}

/* A buffered channel's operation. Lock held. */
static __attribute__((noinline)) int
buffered_action(sl_worker *w, sl_channel *ch, int dir, void *msg, void **out,
                int err, bool try_only, int64_t timeout_ms)
{
    struct sl_ring *r = ch->ring;
    if (dir > 0) {
        sl_tasklet *t = ch->balance < 0 ? sl__chan_claim_head(ch) : NULL;
        if (t) { /* a receiver waits: the ring is empty, hand over */
            if (t->wkind == SL_W_PROXY)
                return proxy_complete(w, ch, t, dir, msg, out, err);
            return complete(w, ch, t, dir, msg, out, err);
        }
        if (r->count < r->cap && !ch->closing) {
            struct sl_slot *s = &r->slots[(r->head + r->count) % r->cap];
            s->msg = msg;
            s->err = err;
            SL_STORE(&r->count, r->count + 1);
            ch_unlock(ch);
            return 0;
        }
    } else if (r->count > 0) {
        return sl__chan_complete_nowait(w, ch, dir, NULL, NULL, out);
    }
    return block(w, ch, dir, msg, out, err, timeout_ms, &ch->lock,
                 blk_flags(try_only, timeout_ms) & ~BLK_RING);
}

/* The one channel operation. dir +1 sends msg (with err != 0: send_error),
 * dir -1 receives into *out. timeout_ms < 0 waits forever. */
static inline __attribute__((always_inline)) int
channel_action(sl_channel *ch, int dir, void *msg, void **out, int err,
               bool try_only, int64_t timeout_ms)
{
    sl_worker *w = sl__self();
    if (sl_unlikely(!w))
        return SL_ESTATE;
    if (sl_unlikely(!ch))
        return SL_EINVAL;
    if (dir > 0) /* debug builds: &local of a copy-mode tasklet */
        SL__COPY_CHECK(w, msg, "a channel send");
    if (sl_unlikely(sl__check_inbox(w)))
        sl__abandon(w); /* sl_shutdown: this worker stops */
    if (sl__rt.mt)
        sl__spin_lock(&ch->lock);
    int bal = ch->balance;
    /* No partner: block, or (buffered) use the ring. */
    if (!(dir > 0 ? bal < 0 : bal > 0)) {
        if (!try_only && timeout_ms < 0)
            return block_plain(w, ch, dir, msg, out, err);
        return block(w, ch, dir, msg, out, err, timeout_ms, &ch->lock,
                     blk_flags(try_only, timeout_ms));
    }
    /* Senders wait on a full ring: a receive takes from the ring. (A
     * receiver waits only on an empty ring: a send hands over as on a
     * rendezvous channel.) */
    if (dir < 0 && sl_unlikely(ch->ring != NULL))
        return buffered_action(w, ch, dir, msg, out, err, try_only,
                               timeout_ms);
    /* A partner waits: take the first one off the queue, hand over. */
    sl_tasklet *t = ch->head;
    if (sl_unlikely(t->wkind != SL_W_PLAIN))
        return claimed_action(w, ch, dir, msg, out, err, try_only,
                              timeout_ms);
    return complete(w, ch, t, dir, msg, out, err);
}

int sl_channel_send(sl_channel *ch, void *msg)
{
    return channel_action(ch, 1, msg, NULL, 0, false, -1);
}

int sl_channel_receive(sl_channel *ch, void **msg)
{
    return channel_action(ch, -1, NULL, msg, 0, false, -1);
}

int sl_channel_try_send(sl_channel *ch, void *msg)
{
    return channel_action(ch, 1, msg, NULL, 0, true, -1);
}

int sl_channel_try_receive(sl_channel *ch, void **msg)
{
    return channel_action(ch, -1, NULL, msg, 0, true, -1);
}

int sl_channel_send_error(sl_channel *ch, int err)
{
    if (err >= 0)
        return SL_EINVAL;
    return channel_action(ch, 1, NULL, NULL, err, false, -1);
}

int sl_channel_send_timeout(sl_channel *ch, void *msg, int64_t timeout_ms)
{
    return channel_action(ch, 1, msg, NULL, 0, false,
                          timeout_ms < 0 ? -1 : timeout_ms);
}

int sl_channel_receive_timeout(sl_channel *ch, void **msg, int64_t timeout_ms)
{
    return channel_action(ch, -1, NULL, msg, 0, false,
                          timeout_ms < 0 ? -1 : timeout_ms);
}

/* ---- wait queues (channel/waitq.h) ------------------------------------- */

void sl__waitq_init(struct sl__waitq *q)
{
    sl_channel *ch = (sl_channel *)q;
    channel_init(ch);
    ch->preference = 0; /* a wake never switches */
    set_after(ch);
}

void sl__guard_lock(uint8_t *guard)
{
    sl__lk_lock(guard);
}

void sl__guard_unlock(uint8_t *guard)
{
    sl__lk_unlock(guard);
}

int sl__waitq_wait(struct sl__waitq *q, uint8_t *guard, int64_t timeout_ms,
                   void **value)
{
    sl_worker *w = sl__self();
    if (!w) {
        sl__lk_unlock(guard);
        return SL_ESTATE;
    }
    return block(w, (sl_channel *)q, -1, NULL, value, 0,
                 timeout_ms < 0 ? -1 : timeout_ms, guard, BLK_CLAIMABLE);
}

bool sl__waitq_wake(struct sl__waitq *q, void *value)
{
    sl_channel *ch = (sl_channel *)q;
    if (ch->balance >= 0)
        return false;
    sl_worker *w = sl__self();
    if (!w)
        return false;
    sl_tasklet *t = sl__chan_claim_head(ch);
    if (!t)
        return false;
    sl__chan_unlink(ch, t);
    t->value = value;
    t->result = 0;
    while (SL_LOAD_ACQ(&t->state) == SL_T_SWITCHING)
        sched_yield();
    sl__wake(w, t);
    return true;
}

bool sl__waitq_has_waiters(const struct sl__waitq *q)
{
    return ((const sl_channel *)q)->balance != 0;
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
    return ch && ch->closing && SL_LOAD(&ch->balance) == 0 &&
           sl_channel_count(ch) == 0;
}
