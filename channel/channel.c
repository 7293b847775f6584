/* channel.c - rendezvous channels with Stackless Python's semantics, on
 * the wait layer (sched/wait.h).
 *
 * Invariants: see channel.h. One operation, two outcomes:
 *  - a partner waits: the message changes hands through the partner's
 *    waiter, the partner becomes runnable and the preference decides who
 *    runs: -dir (the partner is preferred) switches to it at once, leaving
 *    the caller at the end of the run queue; otherwise the caller
 *    continues and the partner goes to the end. schedule_all overrides
 *    both: partner to the end, caller yields. A closing channel still
 *    completes these. A selecting partner is never switched to at once: it
 *    joins the end of the run queue (docs/select.md).
 *  - nobody waits: the caller waits at the tail of the queue and the next
 *    runnable tasklet runs; on a closing channel the call fails with
 *    SL_ECLOSED instead; try_* calls fail with SL_EWOULDBLOCK.
 *
 * Every wait is claimable (sched/wait.h): a timer, a kill or the deadlock
 * rules may end it as well as a partner, and the claim decides. The
 * partner's claim is a compare and a store with one worker, one
 * compare-and-swap with several; that is all the hand-over path pays.
 *
 * Buffered channels (ring != NULL) queue up to capacity messages; a
 * receiver waits only when the ring is empty, a sender only when it is
 * full, so the queue still holds one direction only. The send path looks
 * for a waiting receiver before it looks at the ring, in sl_select too:
 * both go through the same readiness rule.
 */
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "channel/channel.h"
#include "sched/observe.h"

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
    sl__waitq_init_q(&ch->q, &ch->lock);
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
    if (SL_LOAD(&ch->q.balance) != 0)
        return SL_ESTATE;
    sl__waitq_retire(); /* no sl_tasklet_next reads it still (wait.c) */
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

static inline void ch_unlock(sl_channel *ch)
{
    if (sl__rt.mt)
        sl__spin_unlock(&ch->lock);
}

/* The hot paths are compiled twice, once for one worker (mt false: no
 * lock, a plain claim) and once for several, and channel_action picks
 * one with a single test: the runtime's worker count never changes while
 * tasklets run. */
static inline __attribute__((always_inline)) void ch_unlock_in(sl_channel *ch,
                                                               bool mt)
{
    if (mt)
        sl__spin_unlock(&ch->lock);
}

/* ---- the exchange --------------------------------------------------------- */

/* The message changes hands with partner pw (claimed, unlinked; lock
 * held). Returns 0 or, for a receive, the sender's send_error code (then
 * *out is not written). */
static inline __attribute__((always_inline)) int
exchange(sl_waiter *pw, int dir, void *msg, int err, void **out)
{
    int rc = 0;
    if (dir > 0) {
        pw->value = msg;
        pw->result = err;
    } else {
        rc = pw->result;
        if (sl_likely(rc == 0)) {
            if (out)
                *out = pw->value;
        } else {
            pw->result = 0; /* the sender's own call succeeded */
        }
    }
    return rc;
}

/* A ring slot takes a message. */
static inline void ring_push(struct sl_ring *r, void *msg, int err)
{
    struct sl_slot *s = &r->slots[(r->head + r->count) % r->cap];
    s->msg = msg;
    s->err = err;
    SL_STORE(&r->count, r->count + 1);
}

/* The oldest message leaves the ring: 0 or its send_error code. */
static inline int ring_pop(struct sl_ring *r, void **out)
{
    struct sl_slot *s = &r->slots[r->head];
    r->head = (r->head + 1) % r->cap;
    SL_STORE(&r->count, r->count - 1);
    if (s->err == 0 && out)
        *out = s->msg;
    return s->err;
}

/* A partner pw completed (unlinked, done) with ch's lock released: a
 * select's other waiters are withdrawn (each under its own lock, W5 of
 * sched/wait.h), then it joins the end of the run queue. dir is the
 * completing side's (the trace's). */
static __attribute__((noinline)) void
wake_completed(sl_worker *w, sl_waiter *pw, bool slow, sl_channel *ch,
               int dir)
{
    sl_tasklet *t = pw->t;
    if (slow)
        sl__wait_finish(t);
    if (sl__obs_tracing())
        sl__obs_wake(w, t, dir > 0 ? SL_OBS_SEND : SL_OBS_RECV, ch, false);
    sl__wake(w, t);
}

/* A receive took a message from a full ring: the first live sender waiting
 * moves its message in and its send completes. Lock held; returns that
 * sender's waiter, for wake_completed once the lock is released (NULL:
 * none). */
static sl_waiter *refill_from_sender(sl_channel *ch)
{
    sl_waiter *pw =
        ch->q.balance > 0 ? sl__waitq_claim_head(&ch->q) : NULL;
    if (!pw)
        return NULL;
    ring_push(ch->ring, pw->value, pw->result);
    pw->result = 0; /* the sender's own call succeeded */
    sl__waitq_unlink(pw);
    pw->done = 1;
    return pw;
}

/* A receive from the ring of ch (lock held, released here): 0 or the
 * message's send_error code. */
static __attribute__((noinline)) int ring_receive(sl_worker *w, sl_channel *ch,
                                                  void **out)
{
    int rc = ring_pop(ch->ring, out);
    sl_waiter *pw = refill_from_sender(ch);
    bool slow = pw && sl__waiter_slow(pw);
    ch_unlock(ch);
    if (pw)
        wake_completed(w, pw, slow, ch, -1);
    return rc;
}

/* ---- slow paths ----------------------------------------------------------- */

/* Kept out of line so that the hand-over path below needs no callee-saved
 * registers: a switch clobbers every caller-saved one. With several
 * workers the channel lock is held on entry to the ones that say so. */

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
    SL_STORE(&w->current, t);
    sl__jump(w, cur, t);
    return rc; /* completed: a kill meanwhile shows at the next block */
}

/* A partner pinned to another worker goes to its inbox; returns rc. */
static __attribute__((noinline)) int wake_remote_rc(sl_worker *w,
                                                    sl_tasklet *t, int rc)
{
    sl__wake_remote(w, t);
    return rc;
}

/* schedule_all: the partner goes to the end and the caller yields. */
static __attribute__((noinline)) int yield_after(sl_worker *w, sl_tasklet *cur,
                                                 sl_tasklet *t, int rc)
{
    sl__wake(w, t);
    sl_tasklet *next = cur->next;
    if (next == cur)
        return rc;
    SL_STORE(&w->current, next);
    sl__jump(w, cur, next);
    return rc; /* completed: a kill meanwhile shows at the next block */
}

/* Who runs after a completed hand-over with t: the preference decides. */
static inline __attribute__((always_inline)) int
after_handover(sl_worker *w, sl_tasklet *t, uint8_t after, int rc)
{
    if (after == SL_AFTER_PARTNER)
        return run_partner(w, w->current, t, rc);
    if (sl_unlikely(after == SL_AFTER_YIELD))
        return yield_after(w, w->current, t, rc);
    if (sl_unlikely(t->pin >= 0) && t->pin != w->index)
        return wake_remote_rc(w, t, rc); /* (a tail call: rc stays in a
                                            register the call clobbers) */
    sl__rq_append(w, t);
    return rc;
}

/* after_handover while the trace watches: the wake first. Out of line,
 * so that the path without it keeps no value across a call. */
static __attribute__((noinline)) int
handover_traced(sl_worker *w, sl_channel *ch, sl_tasklet *t, int dir,
                uint8_t after, int rc)
{
    bool now = after == SL_AFTER_PARTNER &&
               (t->pin < 0 || t->pin == w->index);
    if (sl__obs_wake(w, t, dir > 0 ? SL_OBS_SEND : SL_OBS_RECV, ch, now) &&
        SL_LOAD(&w->jump_slow) == SL_JS_OBSERVE &&
        SL_LOAD(&sl__observe) == SL_OBS_TRACE) {
        /* The trace recorded the switch to t with the wake, and nothing
         * else watches switches: run_partner's, without the watch. */
        SL_STORE(&w->trace_skip, NULL);
        sl_tasklet *cur = w->current;
        sl__rq_link_after_current(w, t);
        SL_STORE(&w->current, t);
        if (sl_unlikely(!t->ctx))
            sl__tasklet_prepare(w, t);
        sl__jump_to(w, cur, t);
        return rc;
    }
    return after_handover(w, t, after, rc);
}

/* A partner pw waits, its wait claimed: hand over, then the preference
 * decides who runs. Lock held, released here. pw is a plain waiter (a
 * select's takes complete_slow: the fast claim fails on it). */
static inline __attribute__((always_inline)) int
complete_in(sl_worker *w, sl_channel *ch, sl_waiter *pw, int dir, void *msg,
            void **out, int err, bool mt)
{
    sl_tasklet *t = pw->t;
    /* It runs soon: start fetching its saved context (the top of its
     * stack, likely cold when there are many tasklets) while we do the
     * bookkeeping. A copy-mode tasklet's context is on the shared stack
     * (hot) once restored, but its frames are in its heap buffer: fetch
     * that, typically five lines (tasklet/copystack.c). */
    const char *pf = (const char *)t->ctx;
    if (sl_unlikely(t->copy)) {
        const char *saved = SL_LOAD(&t->saved); /* (a hint: see save) */
        if (saved)
            pf = saved;
    }
    __builtin_prefetch(pf);
    __builtin_prefetch(pf + 64);
    if (sl_unlikely(t->copy)) {
        __builtin_prefetch(pf + 128);
        __builtin_prefetch(pf + 192);
        __builtin_prefetch(pf + 256);
    }
    sl__waitq_unlink_head(&ch->q, pw, dir);
    int rc = exchange(pw, dir, msg, err, out);
    uint8_t after = ch->after[dir > 0 ? 0 : 1];
    ch_unlock_in(ch, mt);
    if (sl__obs_tracing()) /* (a tail call: nothing stays live here) */
        return handover_traced(w, ch, t, dir, after, rc);
    return after_handover(w, t, after, rc);
}

static inline __attribute__((always_inline)) int
complete(sl_worker *w, sl_channel *ch, sl_waiter *pw, int dir, void *msg,
         void **out, int err)
{
    return complete_in(w, ch, pw, dir, msg, out, err, sl__rt.mt);
}

/* complete() for a select's waiter pw (claimed; the head of ch's queue;
 * sl__waiter_slow). The exchange, then (W5) its other waiters are
 * withdrawn before it is woken, so that no channel counts a select once
 * it is over. A selecting tasklet is never switched to at once: it joins
 * the end of the run queue, whatever the preference (docs/select.md).
 * Lock held, released here. */
static __attribute__((noinline)) int
complete_slow(sl_worker *w, sl_channel *ch, sl_waiter *pw, int dir,
              void *msg, void **out, int err)
{
    sl__waitq_unlink(pw);
    int rc = exchange(pw, dir, msg, err, out);
    pw->done = 1;
    ch_unlock(ch);
    wake_completed(w, pw, true, ch, dir);
    return rc;
}

/* Nobody to meet: wait at the tail of the queue, or fail. Lock held,
 * released here. */
static inline __attribute__((always_inline)) int
block_ex(sl_worker *w, sl_channel *ch, int dir, void *msg, void **out,
         int err, bool try_only, int64_t timeout_ms, bool mt)
{
    sl_tasklet *cur = w->current;
    int rc = 0;
    if (try_only)
        rc = SL_EWOULDBLOCK;
    else if (sl_unlikely(rc = sl__pend_check(cur)))
        ; /* a thrown error or a kill, before closing (docs/errors.md) */
    else if (ch->closing)
        rc = SL_ECLOSED;
    else if (timeout_ms == 0)
        rc = SL_ETIMEDOUT;
    if (rc) {
        ch_unlock_in(ch, mt);
        return rc;
    }
    rc = sl__wait_one_in(&w, cur, &ch->q, &ch->lock, dir, msg, err,
                         timeout_ms, SL_W_CHAN, mt);
    /* Resumed: a partner completed us (0; a receive gets the message, or
     * the sender's send_error code), the timer ended the wait
     * (SL_ETIMEDOUT), a throw or a kill (its error), or the deadlock rules
     * (SL_EDEADLOCK). A call a partner completed returns its message even
     * if we were thrown at or killed after that: the error shows at the
     * next blocking call, and no message is lost. */
    if (rc == 0) {
        if (dir < 0 && out)
            *out = cur->wait.value;
    } else {
        rc = sl__wait_rc(cur, rc); /* (a throw's or a kill's mark) */
    }
    return rc;
}

/* Out-of-line copies of block_ex: the general one, and the plain wait (no
 * timeout, not try) with everything it does not need folded away, which
 * keeps the common blocking path short. */
static __attribute__((noinline)) int block(sl_worker *w, sl_channel *ch,
                                           int dir, void *msg, void **out,
                                           int err, bool try_only,
                                           int64_t timeout_ms)
{
    return block_ex(w, ch, dir, msg, out, err, try_only, timeout_ms,
                    sl__rt.mt);
}

static __attribute__((noinline)) int block_plain_st(sl_worker *w,
                                                    sl_channel *ch, int dir,
                                                    void *msg, void **out,
                                                    int err)
{
    return block_ex(w, ch, dir, msg, out, err, false, -1, false);
}

static __attribute__((noinline)) int block_plain_mt(sl_worker *w,
                                                    sl_channel *ch, int dir,
                                                    void *msg, void **out,
                                                    int err)
{
    return block_ex(w, ch, dir, msg, out, err, false, -1, true);
}

/* The head waiter's wait is over (a select that completed elsewhere, a
 * wait being timed out or killed): find the first live one. Lock held. */
static __attribute__((noinline)) int
claimed_action(sl_worker *w, sl_channel *ch, int dir, void *msg, void **out,
               int err, bool try_only, int64_t timeout_ms);

/* A buffered channel's operation with no live partner to meet (a receive
 * with messages in the ring meets none: it takes from the ring). Lock
 * held, released here. */
static __attribute__((noinline)) int
buffered_action(sl_worker *w, sl_channel *ch, int dir, void *msg, void **out,
                int err, bool try_only, int64_t timeout_ms)
{
    struct sl_ring *r = ch->ring;
    if (dir > 0) {
        if (r->count < r->cap && !ch->closing) {
            ring_push(r, msg, err);
            ch_unlock(ch);
            return 0;
        }
    } else if (r->count > 0) {
        return ring_receive(w, ch, out);
    }
    return block(w, ch, dir, msg, out, err, try_only, timeout_ms);
}

static __attribute__((noinline)) int
claimed_action(sl_worker *w, sl_channel *ch, int dir, void *msg, void **out,
               int err, bool try_only, int64_t timeout_ms)
{
    sl_waiter *pw = sl__waitq_claim_head(&ch->q);
    if (pw && sl__waiter_slow(pw))
        return complete_slow(w, ch, pw, dir, msg, out, err);
    if (pw)
        return complete(w, ch, pw, dir, msg, out, err);
    if (ch->ring)
        return buffered_action(w, ch, dir, msg, out, err, try_only,
                               timeout_ms);
    return block(w, ch, dir, msg, out, err, try_only, timeout_ms);
}

/* ---- select's view -------------------------------------------------------- */

bool sl__chan_ready(sl_channel *ch, int dir, sl_waiter **partner)
{
    *partner = NULL;
    struct sl_ring *r = ch->ring;
    int bal = ch->q.balance;
    if (dir > 0) {
        /* A waiting receiver first: the ring is empty then. */
        if (bal < 0 && (*partner = sl__waitq_claim_head(&ch->q)))
            return true;
        return r && r->count < r->cap && !ch->closing;
    }
    if (r && r->count > 0)
        return true;
    return bal > 0 && (*partner = sl__waitq_claim_head(&ch->q));
}

int sl__chan_complete_nowait(sl_worker *w, sl_channel *ch, int dir,
                             sl_waiter *pw, void *msg, int err, void **out)
{
    if (pw) { /* rendezvous with a waiting partner, nobody switches */
        sl__waitq_unlink(pw);
        int rc = exchange(pw, dir, msg, err, out);
        pw->done = 1;
        bool slow = sl__waiter_slow(pw);
        ch_unlock(ch);
        wake_completed(w, pw, slow, ch, dir);
        return rc;
    }
    if (dir < 0)
        return ring_receive(w, ch, out);
    ring_push(ch->ring, msg, err);
    ch_unlock(ch);
    return 0;
}

/* ---- the one channel operation -------------------------------------------- */

/* dir +1 sends msg (with err != 0: send_error), dir -1 receives into *out.
 * timeout_ms < 0 waits forever. mt: several workers (a constant in each
 * copy: see ch_unlock_in). */
static inline __attribute__((always_inline)) int
channel_action_in(sl_worker *w, sl_channel *ch, int dir, void *msg,
                  void **out, int err, bool try_only, int64_t timeout_ms,
                  bool mt)
{
    if (mt)
        sl__spin_lock(&ch->lock);
    int bal = ch->q.balance;
    if (dir > 0 ? bal < 0 : bal > 0) {
        /* Senders wait on a full ring: a receive takes from the ring.
         * (Receivers wait only on an empty ring: a send hands over as on
         * a rendezvous channel.) */
        if (dir < 0 && sl_unlikely(ch->ring != NULL) && ch->ring->count)
            return buffered_action(w, ch, dir, msg, out, err, try_only,
                                   timeout_ms);
        /* A partner waits: claim the first one, hand over. (The claim
         * fails on a select's waiter: its gen is even, see sched/wait.h;
         * claimed_action completes that one.) */
        sl_waiter *pw = ch->q.head;
        if (sl_unlikely(!sl__claim_in(pw->t, pw->gen, mt)))
            return claimed_action(w, ch, dir, msg, out, err, try_only,
                                  timeout_ms);
        return complete_in(w, ch, pw, dir, msg, out, err, mt);
    }
    /* No partner: block, or (buffered) use the ring. */
    if (sl_unlikely(ch->ring != NULL))
        return buffered_action(w, ch, dir, msg, out, err, try_only,
                               timeout_ms);
    if (!try_only && timeout_ms < 0)
        return mt ? block_plain_mt(w, ch, dir, msg, out, err)
                  : block_plain_st(w, ch, dir, msg, out, err);
    return block(w, ch, dir, msg, out, err, try_only, timeout_ms);
}

/* Would an operation of direction dir block now (no partner waits, and a
 * buffered channel's ring cannot serve it)? A snapshot, for the channel
 * callback: with several workers the answer may be stale at once. */
static bool will_block(const sl_channel *ch, int dir)
{
    int bal = SL_LOAD(&ch->q.balance);
    const struct sl_ring *r = ch->ring;
    if (dir > 0)
        return !(bal < 0 || (r && SL_LOAD(&r->count) < r->cap));
    return !(bal > 0 || (r && SL_LOAD(&r->count) > 0));
}

/* The operation with several workers, or while a callback watches, out
 * of line: its callers pay one call. The channel callback first (before
 * the operation, with no lock held); a copy of the operation for each
 * worker count, which is a constant in it. */
static __attribute__((noinline)) int
channel_slow(sl_worker *w, sl_channel *ch, int dir, void *msg, void **out,
             int err, bool try_only, int64_t timeout_ms)
{
    if (SL_LOAD(&sl__observe) & (SL_OBS_CHAN_CB | SL_OBS_SCHED_CB)) {
        int rc = sl__obs_channel(ch, w->current, dir > 0,
                                 will_block(ch, dir));
        if (rc)
            return rc;
    }
    if (sl__rt.mt)
        return channel_action_in(w, ch, dir, msg, out, err, try_only,
                                 timeout_ms, true);
    return channel_action_in(w, ch, dir, msg, out, err, try_only, timeout_ms,
                             false);
}

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
    if (sl_unlikely(SL_PEEK(&sl__chan_slow)))
        return channel_slow(w, ch, dir, msg, out, err, try_only, timeout_ms);
    return channel_action_in(w, ch, dir, msg, out, err, try_only, timeout_ms,
                             false);
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
    /* INT_MIN is SL__EPENDING, the mark a throw leaves in a waiter's
     * result (sched/sched.h): no sender may hand it over. */
    if (err >= 0 || err == SL__EPENDING)
        return SL_EINVAL;
    return channel_action(ch, 1, NULL, NULL, err, false, -1);
}

int sl_channel_send_sequence(sl_channel *ch, void *const *msgs, size_t n)
{
    sl_worker *w = sl__self();
    if (!w)
        return SL_ESTATE;
    if (!ch || (n && !msgs) || n > INT_MAX)
        return SL_EINVAL;
    sl_tasklet *cur = w->current; /* (it may move to other workers) */
    for (size_t i = 0; i < n; i++) {
        uint32_t taken = cur->ntaken;
        int rc = sl_channel_send(ch, msgs[i]);
        if (rc < 0) {
            if (i == 0)
                return rc;
            /* Some were sent: their count. A thrown error that stopped it
             * is the caller's next blocking call's (none is lost); the
             * others come back by themselves (a closing channel, a kill,
             * a deadlock). */
            if (cur->ntaken != taken)
                sl__pend_put_back(cur, rc);
            return (int)i;
        }
    }
    return (int)n;
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

/* ---- getters and setters -------------------------------------------------- */

/* The setters take the lock: the hand-over path reads after[] and closing
 * under it on other workers. The getters are snapshots. */

sl_tasklet *sl_channel_queue(const sl_channel *ch)
{
    return ch ? sl__waitq_first((struct sl_waitq *)&ch->q) : NULL;
}

int sl_channel_balance(const sl_channel *ch)
{
    return ch ? SL_LOAD(&ch->q.balance) : 0;
}

int sl_channel_preference(const sl_channel *ch)
{
    return ch ? SL_LOAD(&ch->preference) : SL_EINVAL;
}

void sl_channel_set_preference(sl_channel *ch, int pref)
{
    if (!ch)
        return;
    sl__lk_lock(&ch->lock);
    SL_STORE(&ch->preference, (int8_t)(pref < -1 ? -1 : pref > 1 ? 1 : pref));
    set_after(ch);
    sl__lk_unlock(&ch->lock);
}

bool sl_channel_schedule_all(const sl_channel *ch)
{
    return ch && SL_LOAD(&ch->schedule_all);
}

void sl_channel_set_schedule_all(sl_channel *ch, bool on)
{
    if (!ch)
        return;
    sl__lk_lock(&ch->lock);
    SL_STORE(&ch->schedule_all, on);
    set_after(ch);
    sl__lk_unlock(&ch->lock);
}

static void set_closing(sl_channel *ch, uint8_t on)
{
    if (!ch)
        return;
    sl__lk_lock(&ch->lock);
    SL_STORE(&ch->closing, on);
    sl__lk_unlock(&ch->lock);
}

void sl_channel_close(sl_channel *ch)
{
    set_closing(ch, 1);
}

void sl_channel_open(sl_channel *ch)
{
    set_closing(ch, 0);
}

bool sl_channel_closing(const sl_channel *ch)
{
    return ch && SL_LOAD(&ch->closing);
}

bool sl_channel_closed(const sl_channel *ch)
{
    return ch && SL_LOAD(&ch->closing) && SL_LOAD(&ch->q.balance) == 0 &&
           sl_channel_count(ch) == 0;
}
