/* select.c - sl_select: wait on several channel operations, complete one.
 *
 * Choice. When several cases are ready, the first in array order wins
 * (libdill's rule), not a random one (Go's). Runs stay deterministic for a
 * given seed, which simulations built on this runtime rely on, and the
 * order expresses priority (put the control channel first). The price is
 * that a case that is always ready starves the ones after it; a caller
 * that wants fairness rotates the array itself (docs/select.md).
 *
 * Readiness is the channel's own rule (sl__chan_ready): a send is ready
 * when a receiver waits or a buffered channel has room, in that order, as
 * for sl_channel_send; a ready case completes without switching.
 *
 * Blocking. The caller takes every distinct channel's lock (in address
 * order, so two selects cannot deadlock), looks for a ready case, and
 * otherwise links one waiter per case (sched/wait.h) in that channel's
 * queue, all of one wait. It parks BLOCKED and the locks are released once
 * it has switched out. A partner that meets a waiter claims the wait: the
 * first one wins, completes the exchange through that waiter (done) and
 * wakes the caller; a later partner meeting another waiter of the same
 * select finds the wait over and unlinks it. A timer or a kill claims the
 * same wait and unlinks every waiter; so does the winning partner, once
 * it has released the lock of the channel where it met the select, so
 * that no channel counts the select once it is over (Go's select leaves
 * that to the selecting goroutine when it resumes). Waiters are on the
 * caller's stack for a few cases, else malloc'd; a copy-mode caller's are
 * always malloc'd, since its frames leave the shared stack while it
 * waits and partners on other workers write to them.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "channel/channel.h"
#include "sched/observe.h"
#include "sched/sched.h"

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (sl_channel *const *)a;
    uintptr_t y = (uintptr_t) * (sl_channel *const *)b;
    return x < y ? -1 : x > y;
}

static int case_dir(const sl_select_case *c)
{
    return c->op == SL_SEND ? 1 : -1;
}

/* Validate; collect the distinct channels sorted by address into locks
 * (their lock bytes, NULL-ended). Returns the number of distinct channels,
 * or SL_EINVAL. */
static int prepare(sl_select_case *cases, int n, sl_channel **chs,
                   uint8_t **locks)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!cases[i].ch)
            continue;
        if (cases[i].op != SL_SEND && cases[i].op != SL_RECV)
            return SL_EINVAL;
        if (cases[i].op == SL_SEND)
            SL__COPY_CHECK(sl__self(), cases[i].value, "sl_select's send");
        chs[k++] = cases[i].ch;
    }
    if (k == 0)
        return SL_EINVAL;
    qsort(chs, (size_t)k, sizeof *chs, cmp_ptr);
    int d = 0;
    for (int i = 0; i < k; i++)
        if (d == 0 || chs[d - 1] != chs[i])
            chs[d++] = chs[i];
    /* One channel may not be used both ways: the select could meet
     * itself, and a queue holds one direction only. */
    for (int i = 0; i < n; i++) {
        if (!cases[i].ch)
            continue;
        for (int j = i + 1; j < n; j++)
            if (cases[j].ch == cases[i].ch && cases[j].op != cases[i].op)
                return SL_EINVAL;
    }
    for (int i = 0; i < d; i++)
        locks[i] = &chs[i]->lock;
    locks[d] = NULL;
    return d;
}

static void lock_all(uint8_t **locks)
{
    if (sl__rt.mt)
        for (uint8_t **l = locks; *l; l++)
            sl__spin_lock(*l);
}

static void unlock_all(uint8_t **locks)
{
    if (sl__rt.mt)
        for (uint8_t **l = locks; *l; l++)
            sl__spin_unlock(*l);
}

/* Unlock every channel but ch. */
static void unlock_others(uint8_t **locks, sl_channel *ch)
{
    if (sl__rt.mt)
        for (uint8_t **l = locks; *l; l++)
            if (*l != &ch->lock)
                sl__spin_unlock(*l);
}

int sl_select(sl_select_case *cases, int n, int64_t timeout_ms)
{
    sl_worker *w = sl__self();
    if (!w || sl__obs_in_callback()) /* as a channel operation */
        return SL_ESTATE;
    if (n < 0 || n > SL_SELECT_MAX || (n > 0 && !cases))
        return SL_EINVAL;
    sl_tasklet *cur = w->current;
    if (sl__check_inbox(w))
        sl__abandon(w);

    sl_channel *chs_small[16];
    uint8_t *locks_small[17];
    sl_waiter ws_small[4];
    sl_channel **chs = chs_small;
    uint8_t **locks = locks_small;
    if (n > 16) {
        chs = malloc((size_t)n * sizeof *chs);
        locks = malloc((size_t)(n + 1) * sizeof *locks);
        if (!chs || !locks) {
            free(chs);
            free(locks);
            return SL_ENOMEM;
        }
    }
    int rc;
    sl_waiter *ws = NULL;
    int d = prepare(cases, n, chs, locks);
    if (d < 0) {
        rc = d;
        goto out;
    }

    lock_all(locks);
    /* A case ready now: the first one wins. */
    bool open = false;
    for (int i = 0; i < n; i++) {
        sl_channel *ch = cases[i].ch;
        if (!ch)
            continue;
        int dir = case_dir(&cases[i]);
        sl_waiter *partner;
        if (sl__chan_ready(ch, dir, &partner)) {
            unlock_others(locks, ch);
            void *got = NULL;
            rc = sl__chan_complete_nowait(w, ch, dir, partner,
                                          cases[i].value, 0, &got);
            if (rc == 0) {
                if (dir < 0)
                    cases[i].value = got;
                rc = i;
            }
            goto out;
        }
        open = open || !ch->closing;
    }
    /* Nothing ready: fail as the plain call would, in its order (a thrown
     * error or a kill first, then closing, then an expired timeout): a
     * killed tasklet's ready case above still completed, as its receive
     * would have. */
    if ((rc = sl__pend_check(cur)) || !open || timeout_ms == 0) {
        unlock_all(locks);
        if (!rc)
            rc = open ? SL_ETIMEDOUT : SL_ECLOSED;
        goto out;
    }

    /* Nothing ready: a waiter in each open channel's queue, then park. */
    if (n <= 4 && !cur->copy) {
        ws = ws_small;
        memset(ws, 0, sizeof ws_small);
    } else if (!(ws = calloc((size_t)n, sizeof *ws))) {
        unlock_all(locks);
        rc = SL_ENOMEM;
        goto out;
    }
    uint32_t gen = sl__wait_begin(cur, SL_W_SELECT);
    cur->wait.result = 0; /* the select's outcome: a partner leaves it 0 */
    bool timed = timeout_ms > 0;
    if (timed && (rc = sl__timer_arm(w, cur, gen, sl__deadline(timeout_ms)))) {
        sl__wait_abandon(cur, gen);
        unlock_all(locks);
        goto out;
    }
    sl_tasklet *next = sl__rq_leave(w, cur);
    if (!next) { /* never with a timer: it counts in nwaits */
        sl__wait_abandon(cur, gen);
        unlock_all(locks);
        rc = SL_EDEADLOCK;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        sl_channel *ch = cases[i].ch;
        sl_waiter *wt = &ws[i];
        if (!ch || ch->closing)
            continue;
        wt->t = cur;
        wt->gen = gen - 1; /* even: marks a select's waiter (wait.h) */
        wt->index = (uint16_t)i;
        wt->dir = (int8_t)case_dir(&cases[i]);
        wt->value = cases[i].value;
        sl__waitq_link(&ch->q, wt);
    }
    if (sl__rt.mt) {
        /* The post-switch reads each lock's successor in the list before
         * it releases that lock, which is safe only while every lock left
         * guards one of our waiters (a partner that completes us must
         * take the last one). A closing channel got no waiter: release
         * its lock now and drop it from the list. */
        int m = 0;
        for (int i = 0; i < d; i++) {
            if (chs[i]->closing)
                sl__spin_unlock(locks[i]);
            else
                locks[m++] = locks[i];
        }
        SL__ASSERT(m > 0); /* some case is open */
        locks[m] = NULL;
    }
    cur->wv = ws;
    SL_STORE(&cur->wn, (uint16_t)n); /* (sl_dump reads it) */
    cur->wheap = ws != ws_small;
    sl__publish_after_switch(w, cur, SL_T_BLOCKED);
    if (sl__rt.mt) {
        w->post_unlocks = locks; /* released once we are switched out */
        w->post = 1;
    }
    w = sl__jump(w, cur, next);
    rc = sl__wait_result(cur); /* (its ender unlinked every waiter) */
    sl__events_due(w);
    cur->wv = NULL;
    SL_STORE(&cur->wn, (uint16_t)0);
    cur->wheap = 0;
    sl__wait_kind_reset(cur);
    sl__wait_account(cur);
    if (rc == 0) {
        int i = 0;
        while (i < n && !ws[i].done)
            i++;
        SL__ASSERT(i < n); /* a partner completed the wait through one */
        if (cases[i].op == SL_RECV) {
            rc = ws[i].result; /* a send_error's code, or 0 */
            if (rc == 0)
                cases[i].value = ws[i].value;
        }
        if (rc == 0)
            rc = i;
    }

out:
    if (ws != ws_small)
        free(ws);
    if (chs != chs_small) {
        free(chs);
        free(locks);
    }
    return rc;
}
