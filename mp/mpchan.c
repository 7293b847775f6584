/* mpchan.c - rendezvous channels between tasklets of different processes.
 *
 * An mpchan lives in the pool's shared heap, so its address means the same
 * in the parent and in every worker. It holds one message slot: a sender
 * waits until the slot is free, fills it, and then waits until a receiver
 * has taken the message (rendezvous: the send completes only then). Waiters
 * first spin on the shared fields (yielding to their own process's other
 * tasklets: a round trip between two busy processes then costs about a
 * microsecond), then register in the channel's per-process bit masks and
 * sleep; whoever changes the slot rings the doorbell of every process
 * registered (mp.h, struct mp_local). One spin lock guards the channel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "mp/mp.h"

#define MASK_WORDS 5 /* parent + 256 workers */

/* Every field is written under lock. closed, full and taken are also read
 * without it, as hints (mp_spin_until's conditions: whatever they say is
 * checked again under the lock), so their stores are atomic; full and
 * taken are stored with release and loaded with acquire. */
struct sl_mpchan {
    _Atomic uint8_t lock;
    uint8_t closed;
    uint8_t full;        /* a message waits in data                        */
    uint32_t max;
    uint32_t len;
    uint64_t posted;     /* sequence of the message in the slot            */
    uint64_t taken;      /* sequence of the last message taken             */
    uint64_t rwait[MASK_WORDS]; /* processes with a receiver waiting        */
    uint64_t swait[MASK_WORDS]; /* processes with a sender waiting          */
    uint64_t self;       /* heap block (offset + 1)                        */
    sl_pool *pool;       /* the parent's pool object (same address in the
                            workers: their copy of it)                   */
    char data[];
};

static int proc_bell(struct mp_shared *sh, int k)
{
    return k == 0 ? sh->parent_bell : sh->w[k - 1].bell;
}

/* Ring every process in mask (and clear it). Lock held: the bells are
 * rung after the caller unlocks, from the copy it returns in out. */
static void take_mask(uint64_t *mask, uint64_t *out)
{
    for (int i = 0; i < MASK_WORDS; i++) {
        out[i] = mask[i];
        mask[i] = 0;
    }
}

static void ring(struct mp_shared *sh, const uint64_t *mask)
{
    for (int i = 0; i < MASK_WORDS; i++)
        for (uint64_t m = mask[i]; m; m &= m - 1) {
            int k = i * 64 + __builtin_ctzll(m);
            if (k <= (int)sh->nprocs)
                mp_ring_bell(proc_bell(sh, k));
        }
}

static void set_bit(uint64_t *mask, int k)
{
    mask[k / 64] |= (uint64_t)1 << (k % 64);
}

int sl_mpchan_new(sl_pool *handle, size_t max_msg, sl_mpchan **out)
{
    if (!out)
        return SL_EINVAL;
    *out = NULL;
    sl_pool *pool = mp_pool_get(handle); /* NULL: not a live pool */
    if (!pool || max_msg == 0 || max_msg > (1u << 30))
        return SL_EINVAL;
    if (mp_proc_index(pool) != 0)
        return SL_ESTATE; /* the parent makes them */
    struct mp_shared *sh = mp_pool_shared(pool);
    uint64_t off = mp_heap_alloc(sh, sizeof(struct sl_mpchan) + max_msg);
    if (!off)
        return SL_ENOMEM;
    sl_mpchan *ch = mp_heap_ptr(sh, off);
    memset(ch, 0, sizeof *ch);
    ch->max = (uint32_t)max_msg;
    ch->self = off;
    ch->pool = pool;
    *out = ch;
    return 0;
}

int sl_mpchan_free(sl_mpchan *ch)
{
    if (!ch)
        return SL_EINVAL;
    if (mp_proc_index(ch->pool) != 0)
        return SL_ESTATE;
    mp_heap_free(mp_pool_shared(ch->pool), ch->self);
    return 0;
}

int sl_mpchan_close(sl_mpchan *ch)
{
    if (!ch)
        return SL_EINVAL;
    uint64_t r[MASK_WORDS], s[MASK_WORDS];
    mp_lock(&ch->lock);
    __atomic_store_n(&ch->closed, 1, __ATOMIC_RELAXED);
    take_mask(ch->rwait, r);
    take_mask(ch->swait, s);
    mp_unlock(&ch->lock);
    struct mp_shared *sh = mp_pool_shared(ch->pool);
    ring(sh, r);
    ring(sh, s);
    return 0;
}

static bool slot_free(void *arg)
{
    sl_mpchan *ch = arg;
    return !__atomic_load_n(&ch->full, __ATOMIC_ACQUIRE) ||
           __atomic_load_n(&ch->closed, __ATOMIC_RELAXED);
}

static bool slot_full(void *arg)
{
    sl_mpchan *ch = arg;
    return __atomic_load_n(&ch->full, __ATOMIC_ACQUIRE) ||
           __atomic_load_n(&ch->closed, __ATOMIC_RELAXED);
}

struct taken_arg {
    sl_mpchan *ch;
    uint64_t seq;
};

static bool was_taken(void *arg)
{
    struct taken_arg *a = arg;
    return __atomic_load_n(&a->ch->taken, __ATOMIC_ACQUIRE) >= a->seq ||
           __atomic_load_n(&a->ch->closed, __ATOMIC_RELAXED);
}

/* Common entry: this process's index and waiting, or an error. */
static int enter(sl_mpchan *ch, int *me, struct mp_local **local)
{
    if (!ch)
        return SL_EINVAL;
    if (!sl_current())
        return SL_ESTATE;
    *me = mp_proc_index(ch->pool);
    if (*me < 0)
        return SL_ESTATE;
    *local = mp_pool_local(ch->pool);
    return 0;
}

int sl_mpchan_send(sl_mpchan *ch, const void *msg, size_t len)
{
    int me;
    struct mp_local *local;
    int rc = enter(ch, &me, &local);
    if (rc)
        return rc;
    if (len > ch->max || (len && !msg))
        return SL_EINVAL;
    struct mp_shared *sh = mp_pool_shared(ch->pool);
    uint64_t wake[MASK_WORDS];
    uint64_t seq;
    /* 1. Wait for the slot, fill it. */
    for (;;) {
        uint64_t g = mp_local_gen(local);
        mp_lock(&ch->lock);
        if (ch->closed) {
            mp_unlock(&ch->lock);
            return SL_ECLOSED;
        }
        if (!ch->full) {
            memcpy(ch->data, msg, len);
            ch->len = (uint32_t)len;
            seq = ++ch->posted;
            __atomic_store_n(&ch->full, 1, __ATOMIC_RELEASE);
            take_mask(ch->rwait, wake);
            mp_unlock(&ch->lock);
            ring(sh, wake);
            break;
        }
        set_bit(ch->swait, me);
        mp_unlock(&ch->lock);
        if (!mp_spin_until(slot_free, ch) &&
            (rc = mp_local_wait(local, g)) < 0)
            return rc;
    }
    /* 2. Wait until a receiver has taken it. */
    struct taken_arg ta = {ch, seq};
    for (;;) {
        uint64_t g = mp_local_gen(local);
        mp_lock(&ch->lock);
        if (ch->taken >= seq) {
            mp_unlock(&ch->lock);
            return 0;
        }
        if (ch->closed || rc < 0) {
            /* Give up: take our message back (nobody has it). */
            if (ch->full && ch->posted == seq)
                __atomic_store_n(&ch->full, 0, __ATOMIC_RELEASE);
            take_mask(ch->swait, wake);
            mp_unlock(&ch->lock);
            ring(sh, wake);
            return rc < 0 ? rc : SL_ECLOSED;
        }
        set_bit(ch->swait, me);
        mp_unlock(&ch->lock);
        if (!mp_spin_until(was_taken, &ta))
            rc = mp_local_wait(local, g); /* a kill: retract, above */
    }
}

int sl_mpchan_receive(sl_mpchan *ch, void *buf, size_t *len)
{
    int me;
    struct mp_local *local;
    int rc = enter(ch, &me, &local);
    if (rc)
        return rc;
    if (!len || (*len && !buf))
        return SL_EINVAL;
    struct mp_shared *sh = mp_pool_shared(ch->pool);
    uint64_t wake[MASK_WORDS];
    for (;;) {
        uint64_t g = mp_local_gen(local);
        mp_lock(&ch->lock);
        if (ch->full) {
            if (ch->len > *len) {
                *len = ch->len;
                mp_unlock(&ch->lock);
                return -EMSGSIZE;
            }
            memcpy(buf, ch->data, ch->len);
            *len = ch->len;
            __atomic_store_n(&ch->full, 0, __ATOMIC_RELEASE);
            __atomic_store_n(&ch->taken, ch->posted, __ATOMIC_RELEASE);
            take_mask(ch->swait, wake);
            mp_unlock(&ch->lock);
            ring(sh, wake);
            return 0;
        }
        if (ch->closed) {
            mp_unlock(&ch->lock);
            return SL_ECLOSED;
        }
        set_bit(ch->rwait, me);
        mp_unlock(&ch->lock);
        if (!mp_spin_until(slot_full, ch) &&
            (rc = mp_local_wait(local, g)) < 0)
            return rc;
    }
}
