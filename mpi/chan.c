/* chan.c - rendezvous channels between ranks: sl_mpchan's semantics for
 * tasklets on different MPI ranks.
 *
 * A channel is named by (home rank, key) and lives on its home rank: its
 * queue of waiting senders (tasklets of the home rank, and messages of
 * remote senders, whose tasklets wait on their own rank for the answer)
 * and of waiting receivers (tasklets of the home rank only). Every match
 * is decided there, under the layer's mutex, so the rules are those of a
 * local channel:
 *
 * Invariants (home side, under the mutex).
 *   - At most one of the two queues is non-empty, except for a receiver
 *     that a too-large message sent away with -EMSGSIZE: it has left the
 *     queue before the sender is queued.
 *   - A remote sender is answered exactly once: W_CH_REPLY with 0 when a
 *     receiver took its message, SL_ECLOSED when the channel closed, or
 *     the reason of its W_CH_CANCEL when that found it still queued. A
 *     cancel that finds nothing comes after the answer (one tag, so MPI
 *     keeps the order): the origin already has it.
 *   - A waiting tasklet's buffer is never written while it is parked (a
 *     copy-stack tasklet's frames are not where they seem then): a sender
 *     parks with its message copied to the heap, and a receiver is handed
 *     a heap buffer that it copies out itself when it runs.
 *   - A key whose channel is not open here (not yet, or freed) keeps a
 *     record too: remote sends wait in it until the home opens the key,
 *     and get SL_ECLOSED once it was freed (a tombstone).
 *
 * Receiving only on the home rank keeps a receive one local step and a
 * kill safe: a receiver killed while waiting leaves under the mutex, with
 * nothing in flight. A remote sender killed while waiting cannot wait for
 * the home's answer (a killed tasklet cannot block again): its call
 * returns SL_EKILLED at once and the cancel it sends withdraws the
 * message, unless the home had handed it over already. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/slmpi.h"

/* A waiter on the home rank: a tasklet of ours, or a remote sender. */
typedef struct waiter {
    struct waiter *next, *prev;
    int origin;        /* -1: a tasklet of this rank; else the sender's rank */
    bool sender;
    bool queued;       /* in its channel's queue */
    uint64_t opid;     /* remote: the origin's op */
    size_t len;        /* sender: the message's bytes; receiver: capacity */
    char *data;        /* sender: the message (heap or inside msg) */
    slmsg *msg;        /* remote sender: the message that carries data */
    /* a tasklet's wait */
    sl_event done;
    int status;
    slmsg *got_msg;    /* receiver: what it was handed: a remote message, */
    char *got_heap;    /* or a local sender's bytes (malloc'd), */
    size_t got_len;    /* and their size */
} waiter;

typedef struct home {
    uint64_t key;
    struct home *hnext;
    waiter *senders, *receivers; /* circular lists, head = oldest */
    bool open;         /* a handle of this rank exists */
    bool closed;
    int waiting;       /* tasklets of this rank in a call on it */
} home;

struct sl_mpi_chan {
    int home;
    uint64_t key;
    home *h;           /* on the home rank */
    atomic_int waiting; /* tasklets of this rank in a call on this handle */
    struct sl_mpi_chan *hnext; /* in the handle table */
};

/* Home records by key, handles by (home, key). Both under the mutex. */
static struct {
    home **homes;
    size_t hmask, hcount;
    struct sl_mpi_chan **handles;
    size_t cmask, ccount;
} C;

static size_t key_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k;
}

/* ---- the tables --------------------------------------------------------- */

static home *home_find_locked(uint64_t key)
{
    if (!C.homes)
        return NULL;
    for (home *h = C.homes[key_hash(key) & C.hmask]; h; h = h->hnext)
        if (h->key == key)
            return h;
    return NULL;
}

static home *home_get_locked(uint64_t key)
{
    home *h = home_find_locked(key);
    if (h)
        return h;
    if (!C.homes || C.hcount > C.hmask) {
        size_t cap = C.homes ? 2 * (C.hmask + 1) : 64;
        home **t = calloc(cap, sizeof *t);
        if (!t)
            return NULL;
        for (size_t i = 0; C.homes && i <= C.hmask; i++) {
            for (home *x = C.homes[i], *next; x; x = next) {
                next = x->hnext;
                x->hnext = t[key_hash(x->key) & (cap - 1)];
                t[key_hash(x->key) & (cap - 1)] = x;
            }
        }
        free(C.homes);
        C.homes = t;
        C.hmask = cap - 1;
    }
    if (!(h = calloc(1, sizeof *h)))
        return NULL;
    h->key = key;
    h->hnext = C.homes[key_hash(key) & C.hmask];
    C.homes[key_hash(key) & C.hmask] = h;
    C.hcount++;
    return h;
}

static size_t handle_hash(int home_rank, uint64_t key)
{
    return key_hash(key ^ ((uint64_t)(uint32_t)home_rank << 40));
}

static struct sl_mpi_chan *handle_find_locked(int home_rank, uint64_t key)
{
    if (!C.handles)
        return NULL;
    for (struct sl_mpi_chan *c =
             C.handles[handle_hash(home_rank, key) & C.cmask];
         c; c = c->hnext)
        if (c->home == home_rank && c->key == key)
            return c;
    return NULL;
}

static int handle_add_locked(struct sl_mpi_chan *c)
{
    if (!C.handles || C.ccount > C.cmask) {
        size_t cap = C.handles ? 2 * (C.cmask + 1) : 64;
        struct sl_mpi_chan **t = calloc(cap, sizeof *t);
        if (!t)
            return SL_ENOMEM;
        for (size_t i = 0; C.handles && i <= C.cmask; i++) {
            for (struct sl_mpi_chan *x = C.handles[i], *next; x; x = next) {
                next = x->hnext;
                size_t b = handle_hash(x->home, x->key) & (cap - 1);
                x->hnext = t[b];
                t[b] = x;
            }
        }
        free(C.handles);
        C.handles = t;
        C.cmask = cap - 1;
    }
    size_t b = handle_hash(c->home, c->key) & C.cmask;
    c->hnext = C.handles[b];
    C.handles[b] = c;
    C.ccount++;
    return 0;
}

static void handle_remove_locked(struct sl_mpi_chan *c)
{
    struct sl_mpi_chan **pp =
        &C.handles[handle_hash(c->home, c->key) & C.cmask];
    while (*pp != c)
        pp = &(*pp)->hnext;
    *pp = c->hnext;
    C.ccount--;
}

/* ---- waiter queues ------------------------------------------------------ */

static void q_push(waiter **q, waiter *w)
{
    if (!*q) {
        w->next = w->prev = w;
        *q = w;
    } else {
        w->prev = (*q)->prev;
        w->next = *q;
        (*q)->prev->next = w;
        (*q)->prev = w;
    }
    w->queued = true;
}

static void q_remove(waiter **q, waiter *w)
{
    if (w->next == w)
        *q = NULL;
    else {
        w->prev->next = w->next;
        w->next->prev = w->prev;
        if (*q == w)
            *q = w->next;
    }
    w->next = w->prev = NULL;
    w->queued = false;
}

/* The answer to a remote sender's op (lock held). */
static void reply_locked(int peer, uint64_t opid, int status)
{
    if (sl__mpi_rank_dead_locked(peer))
        return;
    slmsg *r = sl__mpi_msg_new(W_CH_REPLY, peer, 0);
    SLMPI_ASSERT(r); /* out of memory: a remote sender would wait forever */
    r->w.opid = opid;
    r->w.status = status;
    sl__mpi_post_locked(r);
}

/* A remote sender leaves the queue with an answer (lock held). */
static void remote_sender_done_locked(home *h, waiter *s, int status)
{
    q_remove(&h->senders, s);
    reply_locked(s->origin, s->opid, status);
    sl__mpi_msg_unref(s->msg);
    free(s);
    sl__mpi_interest_locked(-1);
}

/* Wake a tasklet of ours that waits in h (lock held). */
static void local_wake_locked(home *h, waiter *w, int status)
{
    q_remove(w->sender ? &h->senders : &h->receivers, w);
    w->status = status;
    sl_event_set(&w->done);
}

/* Hand the head sender of h to the waiting receiver r, both queued (lock
 * held). The sender is answered (a tasklet woken, or a reply posted). */
static void hand_over_locked(home *h, waiter *s, waiter *r)
{
    r->got_len = s->len;
    if (s->origin >= 0) {
        r->got_msg = s->msg; /* the receiver copies from it and frees it */
        s->msg = NULL;
        remote_sender_done_locked(h, s, 0);
    } else {
        r->got_heap = s->data; /* the sender's heap copy changes hands */
        s->data = NULL;
        local_wake_locked(h, s, 0);
    }
    local_wake_locked(h, r, 0);
}

/* A sender arrives in h (queued by the caller afterwards if not taken):
 * meets the waiting receivers in order. Returns true when taken. */
static bool sender_meets_receivers_locked(home *h, waiter *s)
{
    while (h->receivers) {
        waiter *r = h->receivers;
        if (s->len > r->len) {
            r->got_len = s->len;
            local_wake_locked(h, r, -EMSGSIZE);
            continue;
        }
        q_push(&h->senders, s); /* hand_over takes it off again */
        hand_over_locked(h, s, r);
        return true;
    }
    return false;
}

/* ---- messages from other ranks (engine, lock held) ---------------------- */

static void incoming_send_locked(slmsg *m)
{
    int origin = m->peer;
    uint64_t opid = m->w.opid;
    home *h = home_get_locked(m->w.key);
    if (!h) {
        reply_locked(origin, opid, SL_ENOMEM);
        sl__mpi_msg_unref(m);
        return;
    }
    if (h->closed || (E.finalizing && !h->open)) {
        reply_locked(origin, opid, SL_ECLOSED);
        sl__mpi_msg_unref(m);
        return;
    }
    if (msg_payload_len(m) > E.cfg.max_msg_size) {
        reply_locked(origin, opid, SL_EINVAL);
        sl__mpi_msg_unref(m);
        return;
    }
    waiter *s = calloc(1, sizeof *s);
    if (!s) {
        reply_locked(origin, opid, SL_ENOMEM);
        sl__mpi_msg_unref(m);
        return;
    }
    s->origin = origin;
    s->sender = true;
    s->opid = opid;
    s->msg = m;
    s->data = msg_payload(m);
    s->len = msg_payload_len(m);
    sl__mpi_interest_locked(1); /* a remote sender waits on us */
    if (!h->open || !sender_meets_receivers_locked(h, s))
        q_push(&h->senders, s);
}

static void incoming_cancel_locked(slmsg *m)
{
    home *h = home_find_locked(m->w.key);
    int status = m->w.status < 0 ? m->w.status : SL_ETIMEDOUT;
    if (h && h->senders) {
        waiter *s = h->senders;
        do {
            if (s->origin == m->peer && s->opid == m->w.opid) {
                remote_sender_done_locked(h, s, status);
                break;
            }
            s = s->next;
        } while (s != h->senders);
    }
    sl__mpi_msg_unref(m);
}

/* Close h: every waiter leaves with SL_ECLOSED (lock held). */
static void close_locked(home *h)
{
    h->closed = true;
    while (h->receivers)
        local_wake_locked(h, h->receivers, SL_ECLOSED);
    while (h->senders) {
        waiter *s = h->senders;
        if (s->origin >= 0)
            remote_sender_done_locked(h, s, SL_ECLOSED);
        else
            local_wake_locked(h, s, SL_ECLOSED);
    }
}

void sl__mpi_chan_incoming_locked(slmsg *m)
{
    switch (m->w.type) {
    case W_CH_SEND:
        incoming_send_locked(m);
        return;
    case W_CH_CANCEL:
        incoming_cancel_locked(m);
        return;
    case W_CH_CLOSE: {
        home *h = home_get_locked(m->w.key);
        if (h)
            close_locked(h);
        reply_locked(m->peer, m->w.opid, h ? 0 : SL_ENOMEM);
        sl__mpi_msg_unref(m);
        return;
    }
    }
    sl__mpi_msg_unref(m);
}

void sl__mpi_chan_rank_died_locked(int rank)
{
    /* Its queued messages go: nobody is left to answer. */
    for (size_t i = 0; C.homes && i <= C.hmask; i++) {
        for (home *h = C.homes[i]; h; h = h->hnext) {
            waiter *keep = NULL;
            while (h->senders) {
                waiter *w = h->senders;
                q_remove(&h->senders, w);
                if (w->origin != rank) {
                    q_push(&keep, w);
                    continue;
                }
                sl__mpi_msg_unref(w->msg);
                free(w);
                sl__mpi_interest_locked(-1);
            }
            h->senders = keep;
        }
    }
}

void sl__mpi_chan_close_all_locked(void)
{
    for (size_t i = 0; C.homes && i <= C.hmask; i++)
        for (home *h = C.homes[i]; h; h = h->hnext)
            close_locked(h);
}

void sl__mpi_chan_free_all(void)
{
    lock();
    for (size_t i = 0; C.homes && i <= C.hmask; i++) {
        for (home *h = C.homes[i], *next; h; h = next) {
            next = h->hnext;
            close_locked(h);
            free(h);
        }
    }
    free(C.homes);
    for (size_t i = 0; C.handles && i <= C.cmask; i++) {
        for (struct sl_mpi_chan *c = C.handles[i], *next; c; c = next) {
            next = c->hnext;
            free(c);
        }
    }
    free(C.handles);
    memset(&C, 0, sizeof C);
    unlock();
}

/* ---- the calls ---------------------------------------------------------- */

int sl_mpi_chan_open(int home_rank, uint64_t key, sl_mpi_chan **out)
{
    int rc;
    if ((rc = sl__mpi_check()) < 0)
        return rc;
    if (!out || home_rank < 0 || home_rank >= E.size)
        return SL_EINVAL;
    struct sl_mpi_chan *c = calloc(1, sizeof *c);
    if (!c)
        return SL_ENOMEM;
    c->home = home_rank;
    c->key = key;
    lock();
    if (E.finalizing)
        rc = SL_ESTATE;
    else if (handle_find_locked(home_rank, key))
        rc = -EEXIST;
    else if (home_rank == E.rank && !(c->h = home_get_locked(key)))
        rc = SL_ENOMEM;
    else
        rc = handle_add_locked(c);
    if (rc == 0 && c->h) {
        home *h = c->h;
        h->open = true;
        h->closed = false;
        /* Other ranks may send to it at any moment: while it is open this
         * rank listens, as a server listens while its socket is open. */
        sl__mpi_interest_locked(1);
        /* Remote sends that came before the open meet no receiver yet:
         * they are queued already, in order. */
    }
    unlock();
    if (rc < 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int sl_mpi_chan_home(const sl_mpi_chan *ch)
{
    return ch ? ch->home : SL_EINVAL;
}

/* A tasklet of the home rank waits in h with w (lock held on entry, not on
 * return). Returns its status; a timeout or a kill that finds w still
 * queued takes it off (nothing was exchanged). */
static int local_wait(home *h, waiter *w, int64_t timeout_ms)
{
    q_push(w->sender ? &h->senders : &h->receivers, w);
    h->waiting++;
    sl__mpi_interest_locked(1);
    unlock();
    int rc = sl_event_wait(&w->done, timeout_ms);
    lock();
    if (rc < 0 && w->queued) {
        q_remove(w->sender ? &h->senders : &h->receivers, w);
        w->status = rc;
    }
    h->waiting--;
    sl__mpi_interest_locked(-1);
    unlock();
    sl_event_destroy(&w->done);
    return w->status;
}

static int send_home(struct sl_mpi_chan *c, const void *msg, size_t len,
                     int64_t timeout_ms)
{
    home *h = c->h;
    lock();
    if (h->closed) {
        unlock();
        return SL_ECLOSED;
    }
    waiter *r = h->receivers;
    while (r && len > r->len) {
        r->got_len = len;
        local_wake_locked(h, r, -EMSGSIZE);
        r = h->receivers;
    }
    /* A waiting receiver is parked, and we park if there is none: either
     * way the message goes to the heap, where the other side can read it
     * whatever the parked one's stack does meanwhile. */
    char *copy = NULL;
    waiter *w = NULL;
    if (r || timeout_ms != 0) {
        copy = malloc(len ? len : 1);
        w = r ? NULL : calloc(1, sizeof *w);
        if (!copy || (!r && !w)) {
            unlock();
            free(copy);
            free(w);
            return SL_ENOMEM;
        }
        memcpy(copy, msg, len);
    }
    if (r) {
        r->got_heap = copy;
        r->got_len = len;
        local_wake_locked(h, r, 0);
        unlock();
        return 0;
    }
    if (timeout_ms == 0) {
        unlock();
        return SL_ETIMEDOUT;
    }
    w->origin = -1;
    w->sender = true;
    w->len = len;
    w->data = copy;
    sl_event_init(&w->done);
    int rc = local_wait(h, w, timeout_ms);
    free(w->data); /* NULL when a receiver took it */
    free(w);
    return rc;
}

static int send_remote(struct sl_mpi_chan *c, const void *msg, size_t len,
                       int64_t timeout_ms)
{
    slop *op;
    slmsg *m = sl__mpi_msg_new(W_CH_SEND, c->home, len);
    if (!m)
        return SL_ENOMEM;
    memcpy(msg_payload(m), msg, len);
    m->w.key = c->key;
    lock();
    int rc = sl__mpi_op_new_locked(c->home, &op);
    if (rc < 0) {
        unlock();
        free(m);
        return rc;
    }
    m->w.opid = op->id;
    sl__mpi_post_locked(m);
    unlock();

    rc = sl__mpi_op_wait(op, timeout_ms);
    if (rc < 0) {
        /* Unsettled, the wait was cut short: a timeout, a kill, or a code
         * thrown to us (sl_tasklet_throw). (Settled, rc is its outcome,
         * or the wait's if it settled just after.) Ask the home to take the
         * message back; it answers with the reason if it still had it,
         * else the answer is already ours. A kill or a throw does not wait
         * for that answer: the op is left to the engine, as it must not
         * be freed while it is out. */
        lock();
        bool cut = !op->settled;
        if (!cut) {
            rc = op->status; /* it settled meanwhile: its outcome */
        } else {
            slmsg *cm = sl__mpi_msg_new(W_CH_CANCEL, c->home, 0);
            SLMPI_ASSERT(cm);
            cm->w.key = c->key;
            cm->w.opid = op->id;
            cm->w.status = rc;
            sl__mpi_post_locked(cm);
            if (rc != SL_ETIMEDOUT) {
                op->orphan = true; /* we do not wait for it again */
                unlock();
                return rc;
            }
        }
        unlock();
        if (cut) {
            int rc2 = sl__mpi_op_wait(op, -1);
            if (rc2 < 0) {
                lock();
                if (!op->settled) {
                    op->orphan = true;
                    unlock();
                    return rc2;
                }
                unlock();
                rc2 = op->status;
            }
            rc = rc2;
        }
    }
    sl__mpi_op_free(op);
    return rc;
}

static int do_send(sl_mpi_chan *c, const void *msg, size_t len,
                   int64_t timeout_ms)
{
    int rc;
    if ((rc = sl__mpi_check()) < 0)
        return rc;
    if (!c || (!msg && len > 0) || len > E.cfg.max_msg_size)
        return SL_EINVAL;
    atomic_fetch_add(&c->waiting, 1);
    rc = c->h ? send_home(c, msg, len, timeout_ms)
              : send_remote(c, msg, len, timeout_ms);
    atomic_fetch_sub(&c->waiting, 1);
    return rc;
}

int sl_mpi_chan_send(sl_mpi_chan *ch, const void *msg, size_t len)
{
    return do_send(ch, msg, len, -1);
}

int sl_mpi_chan_send_timeout(sl_mpi_chan *ch, const void *msg, size_t len,
                             int64_t timeout_ms)
{
    return do_send(ch, msg, len, timeout_ms);
}

/* Copy what the receiver was handed into buf (its own stack is live now)
 * and free it. */
static void take_handed(waiter *r, void *buf, size_t *len)
{
    if (r->got_msg) {
        memcpy(buf, msg_payload(r->got_msg), r->got_len);
        sl__mpi_msg_unref(r->got_msg);
    } else if (r->got_heap) {
        memcpy(buf, r->got_heap, r->got_len);
        free(r->got_heap);
    }
    *len = r->got_len;
}

static int do_receive(sl_mpi_chan *c, void *buf, size_t *len,
                      int64_t timeout_ms)
{
    int rc;
    if ((rc = sl__mpi_check()) < 0)
        return rc;
    if (!c || !len || (!buf && *len > 0) || !c->h)
        return SL_EINVAL;
    home *h = c->h;
    lock();
    if (h->closed) {
        unlock();
        return SL_ECLOSED;
    }
    waiter *s = h->senders;
    if (s) {
        if (s->len > *len) {
            *len = s->len;
            unlock();
            return -EMSGSIZE;
        }
        /* A sender waits: copy straight into our buffer (we run). */
        memcpy(buf, s->data, s->len);
        *len = s->len;
        if (s->origin >= 0)
            remote_sender_done_locked(h, s, 0);
        else
            local_wake_locked(h, s, 0);
        unlock();
        return 0;
    }
    if (timeout_ms == 0) {
        unlock();
        return SL_ETIMEDOUT;
    }
    waiter *r = calloc(1, sizeof *r);
    if (!r) {
        unlock();
        return SL_ENOMEM;
    }
    r->origin = -1;
    r->len = *len;
    sl_event_init(&r->done);
    atomic_fetch_add(&c->waiting, 1);
    rc = local_wait(h, r, timeout_ms);
    atomic_fetch_sub(&c->waiting, 1);
    if (rc == 0)
        take_handed(r, buf, len);
    else if (rc == -EMSGSIZE)
        *len = r->got_len;
    free(r);
    return rc;
}

int sl_mpi_chan_receive(sl_mpi_chan *ch, void *buf, size_t *len)
{
    return do_receive(ch, buf, len, -1);
}

int sl_mpi_chan_receive_timeout(sl_mpi_chan *ch, void *buf, size_t *len,
                                int64_t timeout_ms)
{
    return do_receive(ch, buf, len, timeout_ms);
}

int sl_mpi_chan_close(sl_mpi_chan *ch)
{
    int rc;
    if ((rc = sl__mpi_check()) < 0)
        return rc;
    if (!ch)
        return SL_EINVAL;
    lock();
    if (ch->h) {
        close_locked(ch->h);
        unlock();
        return 0;
    }
    slop *op;
    if ((rc = sl__mpi_op_new_locked(ch->home, &op)) < 0) {
        unlock();
        return rc;
    }
    slmsg *m = sl__mpi_msg_new(W_CH_CLOSE, ch->home, 0);
    SLMPI_ASSERT(m);
    m->w.key = ch->key;
    m->w.opid = op->id;
    sl__mpi_post_locked(m);
    unlock();
    rc = sl__mpi_op_wait(op, -1);
    if (rc < 0) { /* (a kill or a thrown code if unsettled) */
        lock();
        if (!op->settled) {
            op->orphan = true; /* the close still happens */
            unlock();
            return rc;
        }
        unlock();
        rc = op->status;
    }
    sl__mpi_op_free(op);
    return rc;
}

int sl_mpi_chan_free(sl_mpi_chan *ch)
{
    if (!ch)
        return SL_EINVAL;
    if (!E.started)
        return SL_ESTATE;
    lock();
    if (atomic_load(&ch->waiting) > 0 || (ch->h && ch->h->waiting > 0)) {
        unlock();
        return SL_ESTATE;
    }
    if (ch->h) {
        close_locked(ch->h); /* remote senders get SL_ECLOSED */
        ch->h->open = false; /* a tombstone: closed until reopened */
        sl__mpi_interest_locked(-1);
    }
    handle_remove_locked(ch);
    unlock();
    free(ch);
    return 0;
}
