/* select.c - sl_select: wait on several channel operations, complete one.
 *
 * Choice. When several cases are ready, the first in array order wins
 * (libdill's rule), not a random one (Go's). Runs stay deterministic for a
 * given seed, which simulations built on this runtime rely on, and the
 * order expresses priority (put the control channel first). The price is
 * that a case that is always ready starves the ones after it; a caller
 * that wants fairness rotates the array itself (docs/select.md).
 *
 * Blocking. The caller takes every distinct channel's lock (in address
 * order, so two selects cannot deadlock), looks for a ready case, and
 * otherwise puts one proxy per case in that channel's queue: a control
 * block that stands for the caller (wkind SL_W_PROXY, owner in arg, case
 * index in id, the wait's generation in wseq). The caller parks WAITING
 * and the locks are released once it has switched out. A partner that
 * meets a proxy claims the owner's wait (sl__claim): the first one wins,
 * completes the exchange through the proxy and wakes the owner; a later
 * partner meeting another proxy of the same select finds the wait over
 * and unlinks that proxy. The owner, resumed, unlinks its remaining
 * proxies itself (Go's select does the same with its sudogs).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "channel/channel.h"
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
    if (!w)
        return SL_ESTATE;
    if (n < 0 || n > SL_SELECT_MAX || (n > 0 && !cases))
        return SL_EINVAL;
    sl_tasklet *cur = w->current;
    if (SL_LOAD(&cur->killed))
        return SL_EKILLED;
    if (sl__check_inbox(w))
        sl__abandon(w);

    sl_channel *chs_small[16];
    uint8_t *locks_small[17];
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
    sl_tasklet *proxies = NULL;
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
        sl_tasklet *partner;
        if (sl__chan_ready(ch, dir, &partner)) {
            unlock_others(locks, ch);
            void *got = NULL;
            rc = sl__chan_complete_nowait(w, ch, dir, partner,
                                          cases[i].value, &got);
            if (rc == 0) {
                if (dir < 0)
                    cases[i].value = got;
                rc = i;
            }
            goto out;
        }
        open = open || !ch->closing;
    }
    if (!open || timeout_ms == 0) {
        unlock_all(locks);
        rc = open ? SL_ETIMEDOUT : SL_ECLOSED;
        goto out;
    }

    /* Nothing ready: a proxy in each open channel's queue, then park. */
    /* n proxies and a terminator (zeroed); sl_shutdown finds them through
     * wlock when it discards a selecting tasklet. */
    proxies = calloc((size_t)n + 1, sizeof *proxies);
    if (!proxies) {
        unlock_all(locks);
        rc = SL_ENOMEM;
        goto out;
    }
    uint32_t gen = sl__wait_begin(cur, SL_W_SELECT);
    sl_worker *tw = w;
    bool timed = timeout_ms > 0;
    if (timed && (rc = sl__timer_arm(w, cur, gen, sl__deadline(timeout_ms)))) {
        (void)sl__claim(cur, gen);
        cur->wkind = SL_W_PLAIN;
        unlock_all(locks);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        sl_channel *ch = cases[i].ch;
        sl_tasklet *p = &proxies[i];
        p->is_idle = 1; /* never a tasklet: no public call may take it */
        if (!ch || ch->closing)
            continue;
        p->wkind = SL_W_PROXY;
        p->arg = cur;
        p->id = (uint64_t)i;
        p->wseq = gen;
        p->dir = (int8_t)case_dir(&cases[i]);
        p->value = cases[i].value;
        p->state = SL_T_BLOCKED;
        SL_STORE(&p->chan, ch);
        if (!ch->head) {
            ch->head = p;
            p->next = p->prev = p;
        } else {
            sl__rq_link_before(ch->head, p);
        }
        SL_STORE(&ch->balance, ch->balance + p->dir);
    }
    cur->value = NULL; /* the winning proxy, set by the partner */
    cur->result = 0;
    cur->wlock = (uint8_t *)proxies;
    sl_tasklet *next = sl__rq_leave(w, cur);
    if (!next) {
        (void)sl__claim(cur, gen);
        rc = SL_EDEADLOCK;
    } else {
        sl__publish_after_switch(w, cur, SL_T_WAITING);
        if (sl__rt.mt) {
            w->post_unlocks = locks; /* released once we are switched out */
            w->post = 1;
        }
        w = sl__jump(w, cur, next);
        rc = cur->result;
        lock_all(locks);
    }
    /* Take the proxies that are still queued out again. */
    for (int i = 0; i < n; i++) {
        sl_tasklet *p = &proxies[i];
        if (p->wkind == SL_W_PROXY && SL_LOAD(&p->chan))
            sl__chan_unlink(p->chan, p);
    }
    unlock_all(locks);
    sl__events_due(w);
    sl_tasklet *won = cur->value;
    cur->value = NULL;
    cur->result = 0;
    cur->wkind = SL_W_PLAIN;
    cur->wlock = NULL;
    if (timed)
        sl__timer_done(tw);
    if (won && rc == 0) {
        int i = (int)won->id;
        if (cases[i].op == SL_RECV) {
            rc = won->result; /* a send_error's code, or 0 */
            if (rc == 0)
                cases[i].value = won->value;
        }
        if (rc == 0)
            rc = i;
    }

out:
    free(proxies);
    if (chs != chs_small) {
        free(chs);
        free(locks);
    }
    return rc;
}
