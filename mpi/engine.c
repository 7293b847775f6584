/* engine.c - the MPI layer's core: start and stop, the progress tasklet
 * that makes every MPI call, the doorbells that wake a sleeping rank, and
 * failure detection.
 *
 * DESIGN
 *
 * Glossary.
 *   rank      an MPI process; every rank runs a tasklet runtime.
 *   engine    the progress tasklet of a rank, pinned to worker 0 (the
 *             thread that called MPI_Init): the only code that calls MPI
 *             between sl_mpi_init and sl_mpi_finalize, so MPI needs only
 *             MPI_THREAD_FUNNELED and tasklets on other workers never
 *             touch it.
 *   outbox    messages tasklets have queued for the engine to send.
 *   op        an operation of a tasklet here that waits for another
 *             rank's answer (a channel send, a close): a record with an
 *             id, an sl_event, and the answer's status.
 *   interest  the count of reasons this rank must keep listening: ops
 *             in flight, channels homed here (open: other ranks may send
 *             to them at any moment), tasklets waiting on them, remote
 *             senders queued here, a pool in use, a serving loop.
 *   doorbell  an abstract AF_UNIX datagram socket per rank; a rank on the
 *             same node that sends to a sleeping rank writes one byte
 *             to it, which wakes the sleeper's epoll.
 *
 * Chosen approach.
 *   - One engine tasklet per rank. Tasklets queue messages in the outbox
 *     (a list under the layer's mutex) and park on their op's sl_event;
 *     the engine sends them (MPI_Isend; what waits for one rank leaves as
 *     one MPI message, a bundle), receives on receives it keeps posted
 *     (any source, one tag, tested oldest first: messages from one rank
 *     are handled in the order they were sent), and settles ops,
 *     channels and pool records. All of it without blocking in MPI.
 *   - While messages flow the engine polls: after each pass it yields to
 *     the other runnable tasklets (one pass per round of the run queue),
 *     and when it is alone it keeps polling for spin_us after its last
 *     message (a reply to a ping comes within a few microseconds; going
 *     to sleep between would cost a system call and a wake-up each way).
 *     A pass takes one message and lets the tasklets it woke run before
 *     the next look: a look that finds nothing makes Open MPI yield the
 *     CPU when the node is oversubscribed, right only when we have
 *     nothing to run (looking again at once after each message cost a
 *     round trip two more context switches).
 *   - Then it sleeps in sl_wait_fd on an epoll set of its own: the
 *     doorbell, an eventfd that our tasklets ring when they queue a
 *     message while it sleeps, and a pidfd per rank of the node. Before
 *     sleeping it raises its sleep word in a page shared by the node's
 *     ranks (a memfd passed over the doorbells), then looks at MPI once
 *     more; a sender raises nothing: after each MPI_Isend to a rank of the node
 *     (and again when the send completes) it reads that rank's word and,
 *     if raised, rings its doorbell once per epoch. Store, fence, load on
 *     both sides, so a message is never left unseen by a sleeping rank: an
 *     idle rank sleeps with no timeout and uses no CPU. Ranks on other
 *     nodes cannot ring, so a rank with such peers (or with sends of its
 *     own in flight, which only its own polling completes) sleeps at most
 *     1, 2, 4 ... poll_ms milliseconds between polls.
 *   - The engine ends when interest falls to 0 with nothing to send, and
 *     the next call that needs it spawns it again: a rank with nothing in
 *     flight and no channel homed on it has no wait that keeps sl_run()
 *     from returning. While a channel homed here is open the rank listens
 *     (sl_run() does not return, as with a listening socket): a remote
 *     sender's timeout needs the home's answer, which a rank that no
 *     longer listened would not give.
 *   - Failure: a rank of the node that dies is seen at once through its
 *     pidfd (the engine first takes every message it had sent): its ops
 *     fail with SL_ERANKDIED, its pool tasks as a dead worker's
 *     (mpi/pool.c). A rank on another node cannot be watched so: Open MPI
 *     then aborts the job (mpirun's default), or, under --enable-recovery,
 *     the user's timeouts are what tells (docs/distributed.md).
 *   - Finalize is a handshake (W_FIN to every live rank, then wait for
 *     one from each), not MPI_Barrier: a rank keeps answering the others
 *     until all are done, and a dead rank is skipped, where a barrier
 *     would wait for it forever.
 *
 * Rejected.
 *   - a progress thread blocking in MPI: Open MPI's blocking calls spin
 *     (a CPU per idle rank), and waking a tasklet from a foreign thread
 *     costs a cross-thread wake-up per message;
 *   - polling with sleeps in between (mpi4py.futures backs off up to
 *     1 ms): a message that arrives while the rank sleeps waits for the
 *     timer, which is much of why its executor does 624 tasks a second
 *     here; the doorbell makes sleeping free of that;
 *   - MPI_THREAD_MULTIPLE with each tasklet calling MPI itself: a lock
 *     inside MPI on every call, and a tasklet blocked in MPI would block
 *     its worker;
 *   - MPI_Improbe + MPI_Mrecv (any size, one tag, no buffers to keep):
 *     every look does a request's worth of work in Open MPI (2-3x the
 *     instructions of testing a posted receive) and may pull a message in
 *     that only the next look reports; the posted receives' price is the
 *     second tag for large messages, ordered by holding their source.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mpi/slmpi.h"

struct slmpi sl__mpi = {.lock = PTHREAD_MUTEX_INITIALIZER, .rank = -1,
                        .size = -1, .evfd = -1, .epfd = -1, .bellfd = -1};

#define DEFAULT_MAX_MSG (1u << 20)
#define MAX_MAX_MSG (1u << 30)
#define RX_BATCH 64          /* messages received per pass, at most */
#define SMALL 3968           /* a posted receive's bytes: under Open MPI's
                                smallest eager limit (4 KiB) */
#define RX_RING 16           /* receives kept posted */
#define EV_PIDFD (1ull << 62) /* epoll data of a pidfd: the flag + rank */
#define EV_BELL 1
#define EV_LOCAL 2

/* -DSLMPI_TRACE=1: every message, sleep and ring on stderr. */
#ifdef SLMPI_TRACE
#define SLMPI_TRACING 1
#define TRACE(...) fprintf(stderr, __VA_ARGS__)
#else
#define SLMPI_TRACING 0
#define TRACE(...) ((void)0)
#endif

_Noreturn void sl__mpi_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "stackless-mpi: assertion failed: %s (%s:%d)\n", expr, file,
            line);
    abort();
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sl_mpi_config_init(sl_mpi_config *cfg)
{
    if (!cfg)
        return;
    cfg->max_msg_size = DEFAULT_MAX_MSG;
    cfg->spin_us = 50;
    cfg->poll_ms = 10;
}

int sl_mpi_rank(void) { return E.started ? E.rank : -1; }
int sl_mpi_size(void) { return E.started ? E.size : -1; }

int sl__mpi_check(void)
{
    if (!E.started || !sl_current())
        return SL_ESTATE;
    return 0;
}

static void engine_wake_locked(void);

int sl_mpi_flush(void)
{
    int rc;
    if ((rc = sl__mpi_check()) < 0)
        return rc;
    for (int spins = 0;; spins++) {
        lock();
        bool busy = E.out_head || E.sends_pending;
        if (busy)
            engine_wake_locked();
        unlock();
        if (!busy)
            return 0;
        /* The engine runs when we yield; a send MPI has not finished
         * (a large one) may take longer: then look every millisecond. */
        rc = spins < 64 ? sl_schedule() : sl_sleep_ms(1);
        if (rc < 0)
            return rc;
    }
}

int sl_mpi_stats_get(sl_mpi_stats *out)
{
    if (!out)
        return SL_EINVAL;
    if (!E.started)
        return SL_ESTATE;
    lock();
    *out = E.stats;
    unlock();
    return 0;
}

/* ---- messages ----------------------------------------------------------- */

slmsg *sl__mpi_msg_new(int type, int peer, size_t payload)
{
    slmsg *m = malloc(sizeof *m + payload);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    m->peer = peer;
    m->refs = 1;
    m->len = sizeof(wire) + payload;
    m->w.type = (uint32_t)type;
    return m;
}

void sl__mpi_msg_unref(slmsg *m)
{
    if (m && --m->refs == 0)
        free(m);
}

/* ---- waking the engine -------------------------------------------------- */

static void engine_main(void *arg);

/* The engine must run: start it, or ring it out of its sleep. Lock held. */
static void engine_wake_locked(void)
{
    if (!E.running) {
        sl_spawn_attr a;
        sl_spawn_attr_init(&a);
        a.worker = 0;
        a.name = "sl_mpi progress";
        if (sl_spawn_ex(&a, engine_main, NULL))
            E.running = true;
        else
            fprintf(stderr,
                    "stackless-mpi: cannot spawn the progress tasklet\n");
        return;
    }
    if (E.parked) {
        uint64_t one = 1;
        ssize_t rc = write(E.evfd, &one, sizeof one);
        (void)rc; /* EAGAIN: the counter is already huge, so it is rung */
        E.parked = false; /* once is enough until it parks again */
    }
}

void sl__mpi_post_locked(slmsg *m)
{
    SLMPI_ASSERT(m->peer >= 0 && m->peer < E.size && m->peer != E.rank);
    m->next = NULL;
    if (E.out_tail)
        E.out_tail->next = m;
    else
        E.out_head = m;
    E.out_tail = m;
    atomic_store_explicit(&E.out_ready, true, memory_order_release);
    engine_wake_locked();
}

void sl__mpi_interest_locked(int delta)
{
    E.interest += delta;
    SLMPI_ASSERT(E.interest >= 0);
    if (delta > 0 && !E.running)
        engine_wake_locked();
}

/* ---- ops ---------------------------------------------------------------- */

static int op_table_grow_locked(void)
{
    size_t cap = E.optab ? 2 * (E.opmask + 1) : 64;
    slop **t = calloc(cap, sizeof *t);
    if (!t)
        return SL_ENOMEM;
    if (E.optab) {
        for (size_t i = 0; i <= E.opmask; i++) {
            for (slop *o = E.optab[i], *next; o; o = next) {
                next = o->hnext;
                o->hnext = t[o->id & (cap - 1)];
                t[o->id & (cap - 1)] = o;
            }
        }
        free(E.optab);
    }
    E.optab = t;
    E.opmask = cap - 1;
    return 0;
}

bool sl__mpi_rank_dead_locked(int rank) { return E.peers[rank].dead; }

int sl__mpi_op_new_locked(int peer, slop **out)
{
    if (E.peers[peer].dead)
        return SL_ERANKDIED;
    if ((!E.optab || E.opcount > E.opmask) && op_table_grow_locked() < 0)
        return SL_ENOMEM;
    slop *op = calloc(1, sizeof *op);
    if (!op)
        return SL_ENOMEM;
    op->id = ++E.next_opid;
    op->peer = peer;
    sl_event_init(&op->done);
    slop **b = &E.optab[op->id & E.opmask];
    op->hnext = *b;
    *b = op;
    E.opcount++;
    sl__mpi_interest_locked(1);
    *out = op;
    return 0;
}

slop *sl__mpi_op_find_locked(uint64_t id)
{
    if (!E.optab)
        return NULL;
    for (slop *o = E.optab[id & E.opmask]; o; o = o->hnext)
        if (o->id == id)
            return o;
    return NULL;
}

void sl__mpi_op_free(slop *op)
{
    if (!op)
        return;
    sl_event_destroy(&op->done);
    sl__mpi_msg_unref(op->reply);
    free(op);
}

void sl__mpi_op_settle_locked(slop *op, int status, slmsg *reply)
{
    slop **pp = &E.optab[op->id & E.opmask];
    while (*pp != op)
        pp = &(*pp)->hnext;
    *pp = op->hnext;
    E.opcount--;
    sl__mpi_interest_locked(-1);
    op->status = status;
    op->reply = reply;
    op->settled = true;
    if (op->orphan)
        sl__mpi_op_free(op);
    else
        sl_event_set(&op->done);
}

int sl__mpi_op_wait(slop *op, int64_t timeout_ms)
{
    int rc = sl_event_wait(&op->done, timeout_ms);
    if (rc < 0)
        return rc;
    return op->status;
}

/* ---- sending and receiving (engine only) -------------------------------- */

/* Ring rank r's doorbell if it sleeps and we have not rung this sleep. */
static void ring_if_asleep(int r)
{
    struct peer *p = &E.peers[r];
    if (!p->slot)
        return;
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t w = atomic_load_explicit(&p->slot->sleep, memory_order_relaxed);
    TRACE("[%d] check %d word %lu rung %lu\n", E.rank, r, (unsigned long)w,
          (unsigned long)p->rung);
    if (!(w & 1) || w == p->rung)
        return;
    p->rung = w;
    char b = 0;
    TRACE("[%d] ring %d\n", E.rank, r);
    if (sendto(E.bellfd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL,
               (struct sockaddr *)&p->bell, p->bell_len) == 1) {
        E.stats.rings_sent++;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        /* Another network namespace, or the socket is gone: this peer
         * cannot ring us either, most likely. Fall back to polling. */
        p->slot = NULL;
        E.remote_peers = true;
    }
}

/* E.nsend, for other workers' eyes (sl_mpi_flush). */
static void publish_sends(void)
{
    lock();
    E.sends_pending = E.nsend;
    unlock();
}

static void send_track(slmsg *m, MPI_Request req)
{
    if (E.nsend == E.capsend) {
        int cap = E.capsend ? 2 * E.capsend : 64;
        MPI_Request *r = realloc(E.sreq, cap * sizeof *r);
        if (r)
            E.sreq = r;
        slmsg **s = realloc(E.smsg, cap * sizeof *s);
        if (s)
            E.smsg = s;
        SLMPI_ASSERT(r && s); /* out of memory with a send in flight */
        E.capsend = cap;
    }
    E.sreq[E.nsend] = req;
    E.smsg[E.nsend] = m;
    E.nsend++;
    publish_sends();
}

static void send_one(slmsg *m)
{
    MPI_Request req;
    int flag = 0, tag = SLMPI_TAG;
    if (E.peers[m->peer].dead) {
        sl__mpi_msg_unref(m); /* the rank is gone; its pidfd tells the rest */
        return;
    }
    if (m->len > SMALL) {
        /* Too large for a posted receive: a notice first (receive_some). */
        slmsg *n = sl__mpi_msg_new(W_LARGE, m->peer, 0);
        SLMPI_ASSERT(n); /* out of memory with a message to send */
        n->w.arg = m->len;
        send_one(n);
        tag = SLMPI_TAG_LARGE;
    }
    if (MPI_Isend(&m->w, (int)m->len, MPI_BYTE, m->peer, tag, E.comm, &req) !=
        MPI_SUCCESS) {
        sl__mpi_msg_unref(m);
        return;
    }
    E.stats.msgs_sent++;
    TRACE("[%d] send type %u to %d key %lu opid %lu st %d len %zu\n", E.rank,
          m->w.type, m->peer, (unsigned long)m->w.key, (unsigned long)m->w.opid,
          m->w.status, m->len);
    MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
    ring_if_asleep(m->peer);
    if (flag)
        sl__mpi_msg_unref(m);
    else
        send_track(m, req);
}

static void sends_complete(void)
{
    if (!E.nsend)
        return;
    int idx[64], n = 0;
    int count = E.nsend < 64 ? E.nsend : 64;
    int rc = MPI_Testsome(count, E.sreq, &n, idx, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS || n == MPI_UNDEFINED)
        return;
    for (int i = 0; i < n; i++) {
        slmsg *m = E.smsg[idx[i]];
        ring_if_asleep(m->peer);
        sl__mpi_msg_unref(m);
        E.smsg[idx[i]] = NULL;
    }
    int j = 0;
    for (int i = 0; i < E.nsend; i++) {
        if (E.smsg[i]) {
            E.smsg[j] = E.smsg[i];
            E.sreq[j] = E.sreq[i];
            j++;
        }
    }
    E.nsend = j;
    publish_sends();
}

static void dispatch_locked(slmsg *m);

/* The records of a bundle, each a message of its own, in order. One
 * whose length does not add up ends the bundle: never trust what another
 * process wrote. */
static void unbundle_locked(slmsg *b)
{
    const char *p = msg_payload(b), *end = p + msg_payload_len(b);
    for (uint32_t i = 0; i < b->w.n && end - p >= 4; i++) {
        uint32_t l;
        memcpy(&l, p, 4);
        p += 4;
        if (l < sizeof(wire) || l > (size_t)(end - p))
            break;
        slmsg *m = malloc(sizeof *m + (l - sizeof(wire)));
        SLMPI_ASSERT(m); /* out of memory with a message in hand */
        memcpy(&m->w, p, l);
        p += l;
        m->next = NULL;
        m->peer = b->peer;
        m->refs = 1;
        m->len = l;
        if (m->w.type == W_BUNDLE)
            sl__mpi_msg_unref(m); /* bundles do not nest */
        else
            dispatch_locked(m);
    }
    sl__mpi_msg_unref(b);
}

static void dispatch_locked(slmsg *m)
{
    switch (m->w.type) {
    case W_CH_SEND:
    case W_CH_CANCEL:
    case W_CH_CLOSE:
        sl__mpi_chan_incoming_locked(m);
        return;
    case W_CH_REPLY: {
        slop *op = sl__mpi_op_find_locked(m->w.opid);
        if (op && op->peer == m->peer)
            sl__mpi_op_settle_locked(op, m->w.status, m);
        else
            sl__mpi_msg_unref(m);
        return;
    }
    case W_TASK:
    case W_RESULT:
    case W_POOL_END:
    case W_POOL_ACK:
        sl__mpi_pool_incoming_locked(m);
        return;
    case W_FIN:
        E.peers[m->peer].fin = true;
        sl__mpi_msg_unref(m);
        return;
    case W_BUNDLE:
        unbundle_locked(m);
        return;
    default:
        sl__mpi_msg_unref(m); /* not ours: never trust another process */
        return;
    }
}

static void fin_check_locked(void);

/* ---- receiving (engine only) -----------------------------------------------
 *
 * RX_RING receives of up to SMALL bytes each stay posted for any source on
 * SLMPI_TAG. MPI matches an arriving message to the oldest of them (same
 * envelope), so they complete in order, and only the oldest is tested: one
 * MPI_Test per look, which makes progress and looks again (MPI_Improbe
 * does a request's worth of work on every look: 3-4x the instructions of
 * a pass that finds nothing). A message larger than SMALL travels as a
 * W_LARGE notice on SLMPI_TAG, with its length, then itself on
 * SLMPI_TAG_LARGE; the notice makes the receiver post a receive for it,
 * from that source, and hold that source's later messages until it has
 * come, so the order between two ranks is the order they were sent in. */

struct rx_large {
    struct rx_large *next;
    MPI_Request req;
    slmsg *m;
};

static struct {
    MPI_Request req[RX_RING];
    char *buf[RX_RING];
    int head;
    bool posted;
    struct rx_large *large;  /* large receives in flight */
    int nlarge;
} RX;

static int rx_post(int i)
{
    return MPI_Irecv(RX.buf[i], SMALL, MPI_BYTE, MPI_ANY_SOURCE, SLMPI_TAG,
                     E.comm, &RX.req[i]);
}

static int rx_start(void)
{
    for (int i = 0; i < RX_RING; i++) {
        if (!(RX.buf[i] = malloc(SMALL)))
            return SL_ENOMEM;
        if (rx_post(i) != MPI_SUCCESS)
            return -EIO;
    }
    RX.head = 0;
    RX.posted = true;
    return 0;
}

static void rx_stop(void)
{
    for (int i = 0; RX.posted && i < RX_RING; i++) {
        MPI_Cancel(&RX.req[i]);
        MPI_Wait(&RX.req[i], MPI_STATUS_IGNORE);
    }
    for (int i = 0; i < RX_RING; i++) {
        free(RX.buf[i]);
        RX.buf[i] = NULL;
    }
    RX.posted = false;
    while (RX.large) {
        struct rx_large *l = RX.large;
        RX.large = l->next;
        MPI_Cancel(&l->req);
        MPI_Request_free(&l->req);
        free(l->m); /* MPI may still write it only if the cancel failed */
        free(l);
    }
    RX.nlarge = 0;
}

/* A message ready for its handler, or held behind a large one. */
static void rx_arrived(slmsg *m, slmsg ***tail, int *n);

/* Post the receive a W_LARGE notice announces; hold its source. */
static void rx_large_start(slmsg *notice)
{
    struct peer *p = &E.peers[notice->peer];
    size_t len = (size_t)notice->w.arg;
    slmsg *m = len >= sizeof(wire) && len <= (1u << 30)
                   ? malloc(sizeof *m + len - sizeof(wire))
                   : NULL;
    struct rx_large *l = m ? malloc(sizeof *l) : NULL;
    SLMPI_ASSERT(l); /* out of memory (or a bad length) with a message coming */
    m->next = NULL;
    m->peer = notice->peer;
    m->refs = 1;
    m->len = len;
    l->m = m;
    if (MPI_Irecv(&m->w, (int)len, MPI_BYTE, notice->peer, SLMPI_TAG_LARGE,
                  E.comm, &l->req) != MPI_SUCCESS) {
        free(m);
        free(l);
        return;
    }
    l->next = RX.large;
    RX.large = l;
    RX.nlarge++;
    p->held = true;
    sl__mpi_msg_unref(notice);
}

static void rx_arrived(slmsg *m, slmsg ***tail, int *n)
{
    struct peer *p = &E.peers[m->peer];
    if (p->held) {
        m->next = NULL;
        if (p->held_tail)
            p->held_tail->next = m;
        else
            p->held_head = m;
        p->held_tail = m;
        return;
    }
    if (m->w.type == W_LARGE) {
        rx_large_start(m);
        return;
    }
    m->next = NULL;
    **tail = m;
    *tail = &m->next;
    (*n)++;
}

/* Large receives that completed: their messages, then what their
 * sources sent after them. */
static void rx_large_done(slmsg ***tail, int *n)
{
    for (struct rx_large **lp = &RX.large, *l; (l = *lp);) {
        int flag = 0;
        if (MPI_Test(&l->req, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            flag = 1, l->m->len = 0; /* failed: dropped below */
        if (!flag) {
            lp = &l->next;
            continue;
        }
        *lp = l->next;
        RX.nlarge--;
        struct peer *p = &E.peers[l->m->peer];
        p->held = false;
        if (l->m->len)
            rx_arrived(l->m, tail, n);
        else
            free(l->m);
        free(l);
        slmsg *q = p->held_head;
        p->held_head = p->held_tail = NULL;
        while (q) {
            slmsg *next = q->next;
            rx_arrived(q, tail, n); /* a W_LARGE among them holds it again */
            q = next;
        }
        lp = &RX.large; /* the list may have changed */
    }
}

/* Take what has arrived, at most RX_BATCH messages, and hand it to the
 * handlers. Returns how many. Before sleeping (thorough) a look that
 * finds nothing is made twice. */
static int receive_some(bool thorough)
{
    slmsg *head = NULL, **tail = &head;
    int n = 0, got = 0, misses = 0;
    E.stats.polls++;
    if (RX.nlarge)
        rx_large_done(&tail, &n);
    while (got < RX_BATCH) {
        /* One message a pass while spinning: a look that finds nothing
         * yields the CPU inside MPI (Open MPI, oversubscribed), which
         * is right when we wait and wrong with the tasklets it woke still
         * to run; they run before the next pass. */
        if (got && !thorough)
            break;
        int i = RX.head, flag = 0, count = 0;
        MPI_Status st;
        int rc = MPI_Test(&RX.req[i], &flag, &st);
        if (rc == MPI_SUCCESS && !flag) {
            if (!thorough || ++misses > 1)
                break;
            continue;
        }
        if (rc == MPI_SUCCESS)
            MPI_Get_count(&st, MPI_BYTE, &count);
        size_t len = count > 0 ? (size_t)count : 0;
        slmsg *m = NULL;
        if (len >= sizeof(wire) && st.MPI_SOURCE >= 0 &&
            st.MPI_SOURCE < E.size) {
            m = malloc(sizeof *m + (len - sizeof(wire)));
            SLMPI_ASSERT(m); /* out of memory with a message in hand */
            memcpy(&m->w, RX.buf[i], len);
            m->peer = st.MPI_SOURCE;
            m->refs = 1;
            m->len = len;
        } /* else: too short to be ours, or an error: dropped */
        rx_post(i);
        RX.head = (i + 1) % RX_RING;
        got++;
        if (m)
            rx_arrived(m, &tail, &n);
    }
    if (n) {
        lock();
        E.stats.msgs_received += (uint64_t)n;
        while (head) {
            slmsg *m = head;
            head = m->next;
            m->next = NULL;
            TRACE("[%d] recv type %u from %d key %lu opid %lu st %d len %zu\n",
                  E.rank, m->w.type, m->peer, (unsigned long)m->w.key,
                  (unsigned long)m->w.opid, m->w.status, m->len);
            dispatch_locked(m);
        }
        if (E.finalizing)
            fin_check_locked();
        unlock();
    }
    return got;
}

/* Messages to one rank that wait in one outbox batch travel as one MPI
 * message, a W_BUNDLE: each record is its length (4 bytes) and the
 * message (header and payload), in order. A record above BUNDLE_ITEM
 * bytes goes alone (after the bundle of those before it, so the order
 * holds). In a ping-pong the answer to the last message and the next
 * message leave together; a rank 0 that submits many tasks sends each
 * rank one MPI message per batch. */
#define BUNDLE_ITEM 2048
#define BUNDLE_MAX SMALL  /* a bundle fits a posted receive */

static void send_chain(slmsg *chain)
{
    while (chain) {
        /* How many of the next ones fit a bundle. */
        size_t bytes = 0;
        int n = 0;
        for (slmsg *m = chain;
             m && m->len <= BUNDLE_ITEM && bytes + 4 + m->len <= BUNDLE_MAX;
             m = m->next) {
            bytes += 4 + m->len;
            n++;
        }
        slmsg *b = n > 1 ? sl__mpi_msg_new(W_BUNDLE, chain->peer, bytes) : NULL;
        if (!b) {
            slmsg *m = chain;
            chain = m->next;
            send_one(m);
            continue;
        }
        b->w.n = (uint32_t)n;
        char *p = msg_payload(b);
        for (int i = 0; i < n; i++) {
            slmsg *m = chain;
            chain = m->next;
            uint32_t l = (uint32_t)m->len;
            memcpy(p, &l, 4);
            memcpy(p + 4, &m->w, m->len);
            p += 4 + m->len;
            sl__mpi_msg_unref(m);
        }
        E.stats.records_bundled += (uint64_t)n;
        send_one(b);
    }
}

/* One pass: send the outbox, complete sends, receive. Returns the
 * messages moved. */
static int progress(bool thorough)
{
    slmsg *batch = NULL;
    /* The flag spares the mutex on the passes that find nothing queued. */
    if (atomic_load_explicit(&E.out_ready, memory_order_acquire)) {
        lock();
        batch = E.out_head;
        E.out_head = E.out_tail = NULL;
        atomic_store_explicit(&E.out_ready, false, memory_order_relaxed);
        unlock();
    }
    int did = 0;
    if (batch && !batch->next) {
        send_one(batch);
        did = 1;
    } else if (batch) {
        /* Chains per destination, in outbox order. */
        int first = -1, last = -1;
        while (batch) {
            slmsg *m = batch;
            batch = m->next;
            m->next = NULL;
            struct peer *p = &E.peers[m->peer];
            if (p->chain_tail) {
                p->chain_tail->next = m;
            } else {
                p->chain_head = m;
                p->chain_next = -1;
                if (last >= 0)
                    E.peers[last].chain_next = m->peer;
                else
                    first = m->peer;
                last = m->peer;
            }
            p->chain_tail = m;
            did++;
        }
        for (int r = first; r >= 0;) {
            struct peer *p = &E.peers[r];
            slmsg *chain = p->chain_head;
            r = p->chain_next;
            p->chain_head = p->chain_tail = NULL;
            send_chain(chain);
        }
    }
    sends_complete();
    return did + receive_some(thorough);
}

/* ---- failures ----------------------------------------------------------- */

static void rank_died(int r)
{
    struct peer *p = &E.peers[r];
    if (p->dead)
        return;
    /* What it sent before it died is in our queue: take it first. */
    while (receive_some(true) > 0)
        ;
    lock();
    p->dead = true;
    E.deaths++;
    E.stats.ranks_died++;
    if (!E.finalizing || !p->fin)
        fprintf(stderr, "stackless-mpi: rank %d: rank %d died\n", E.rank, r);
    for (size_t i = 0; E.optab && i <= E.opmask; i++) {
        for (slop *o = E.optab[i], *next; o; o = next) {
            next = o->hnext;
            if (o->peer == r)
                sl__mpi_op_settle_locked(o, SL_ERANKDIED, NULL);
        }
    }
    sl__mpi_chan_rank_died_locked(r);
    sl__mpi_pool_rank_died_locked(r);
    if (E.finalizing)
        fin_check_locked();
    unlock();
    /* A large message it was sending never comes. */
    for (struct rx_large **lp = &RX.large, *l; (l = *lp);) {
        if (l->m->peer != r) {
            lp = &l->next;
            continue;
        }
        *lp = l->next;
        RX.nlarge--;
        MPI_Cancel(&l->req);
        MPI_Request_free(&l->req);
        free(l); /* its buffer stays: MPI may still hold it */
    }
    for (slmsg *q = p->held_head, *next; q; q = next) {
        next = q->next;
        sl__mpi_msg_unref(q);
    }
    p->held_head = p->held_tail = NULL;
    p->held = false;
    /* Its sends may never complete: let MPI have them (the buffers stay
     * allocated: MPI may still read them). */
    int j = 0;
    for (int i = 0; i < E.nsend; i++) {
        if (E.smsg[i]->peer == r) {
            MPI_Request_free(&E.sreq[i]);
        } else {
            E.smsg[j] = E.smsg[i];
            E.sreq[j] = E.sreq[i];
            j++;
        }
    }
    E.nsend = j;
    publish_sends();
    if (p->pidfd >= 0) {
        epoll_ctl(E.epfd, EPOLL_CTL_DEL, p->pidfd, NULL);
        close(p->pidfd);
        p->pidfd = -1;
    }
}

/* Look at what woke us (or may have): the eventfd, the doorbell, pidfds. */
static void take_wakeups(void)
{
    struct epoll_event ev[16];
    int n = epoll_wait(E.epfd, ev, 16, 0);
    for (int i = 0; i < n; i++) {
        uint64_t d = ev[i].data.u64;
        if (d == EV_LOCAL) {
            uint64_t v;
            ssize_t rc = read(E.evfd, &v, sizeof v);
            (void)rc;
        } else if (d == EV_BELL) {
            char b[64];
            while (recv(E.bellfd, b, sizeof b, MSG_DONTWAIT) > 0)
                E.stats.rings_received++;
        } else if (d & EV_PIDFD) {
            rank_died((int)(d & 0xffffffffu));
        }
    }
}

/* ---- the progress tasklet ----------------------------------------------- */

static void engine_main(void *arg)
{
    (void)arg;
    uint64_t last = now_ns();
    const uint64_t spin_ns = (uint64_t)E.cfg.spin_us * 1000u;
    int backoff = 0;

    for (;;) {
        int did = progress(false);
        uint64_t t = now_ns();
        if (did) {
            last = t;
            backoff = 0;
        }
        if (sl_getruncount() > 1 || t - last < spin_ns) {
            if (sl_schedule() == SL_EKILLED)
                goto killed;
            continue;
        }
        /* Nothing for a while: end if nobody needs us, else sleep. */
        lock();
        if (E.interest == 0 && !E.out_head && E.nsend == 0 && RX.nlarge == 0) {
            E.running = false;
            unlock();
            return;
        }
        unlock();

        /* Sleep. Raise the sleep word, look once more, then wait. */
        int64_t timeout = -1;
        if (E.nsend || RX.nlarge || E.remote_peers) {
            backoff = backoff ? (backoff * 2 > E.cfg.poll_ms ? E.cfg.poll_ms
                                                             : backoff * 2)
                              : 1;
            timeout = backoff;
        }
        lock();
        E.parked = true;
        bool work = E.out_head != NULL;
        unlock();
        if (E.myslot)
            atomic_store(&E.myslot->sleep, (++E.epoch << 1) | 1);
        if (!work)
            work = progress(true) > 0;
        TRACE("[%d] final look work %d polls %lu\n", E.rank, work,
              (unsigned long)E.stats.polls);
        int rc = 0;
        if (!work) {
            E.stats.sleeps++;
            TRACE("[%d] sleep timeout %ld\n", E.rank, (long)timeout);
            rc = sl_wait_fd(E.epfd, SL_READABLE, timeout);
            TRACE("[%d] woke %d\n", E.rank, rc);
        }
        if (E.myslot)
            atomic_store(&E.myslot->sleep, E.epoch << 1);
        lock();
        E.parked = false;
        unlock();
        take_wakeups();
        if (rc == SL_ETIMEDOUT) {
            E.stats.timed_wakes++;
            if (progress(true) > 0) {
                E.stats.late_wakes++;
                last = now_ns();
            }
        } else if (rc == SL_EKILLED) {
            goto killed;
        } else {
            last = now_ns(); /* rung or given work: poll for a while */
        }
    }
killed:
    /* Someone killed us (sl_tasklet_kill of every tasklet): a killed
     * tasklet cannot wait any more. The next call that needs progress
     * spawns a new one. */
    lock();
    E.running = false;
    E.parked = false;
    unlock();
}

/* ---- start -------------------------------------------------------------- */

static int mpi_err(const char *what, int rc)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    fprintf(stderr, "stackless-mpi: %s: %.*s\n", what, len, msg);
    return -EIO;
}

/* What each rank of a node tells the others at start. */
struct node_card {
    int32_t world_rank;
    int32_t pid;
    uint32_t bell_len;
    char bell[108];
};

/* Receive the node's shared page from its leader: one datagram with the
 * descriptor attached, on our doorbell (nothing else is sent there yet). */
static int recv_page_fd(void)
{
    char b;
    struct iovec iov = {&b, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                        .msg_controllen = sizeof u.buf};
    struct pollfd pfd = {.fd = E.bellfd, .events = POLLIN};
    if (poll(&pfd, 1, 10000) != 1 ||
        recvmsg(E.bellfd, &mh, MSG_CMSG_CLOEXEC) != 1)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

static bool send_page_fd(int fd, const struct node_card *to)
{
    char b = 0;
    struct iovec iov = {&b, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof u);
    struct sockaddr_un addr;
    memcpy(&addr, to->bell, to->bell_len);
    struct msghdr mh = {.msg_name = &addr,
                        .msg_namelen = to->bell_len,
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = u.buf,
                        .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(E.bellfd, &mh, MSG_NOSIGNAL) == 1;
}

/* The node's neighbours: their doorbells and pids (an MPI_Allgather over
 * the node), a pidfd per neighbour, and a page of sleep words they all
 * map: a memfd the node's first rank makes and hands to the others over
 * their doorbells. Not an MPI shared window: with a rank dead, MPI would
 * never let go of one (MPI_Win_free and MPI_Finalize wait for it). If any
 * of it fails on any rank of the node, every rank of it polls instead. */
static void node_setup(void)
{
    MPI_Comm node;
    int nrank = 0, nsize = 1;

    E.remote_peers = true;
    if (MPI_Comm_split_type(E.comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL,
                            &node) != MPI_SUCCESS)
        return;
    MPI_Comm_rank(node, &nrank);
    MPI_Comm_size(node, &nsize);
    struct node_card me = {.world_rank = E.rank, .pid = (int32_t)getpid()};
    struct sockaddr_un a;
    socklen_t alen = sizeof a;
    if (getsockname(E.bellfd, (struct sockaddr *)&a, &alen) == 0 &&
        alen <= sizeof me.bell) {
        memcpy(me.bell, &a, alen);
        me.bell_len = alen;
    }
    struct node_card *cards = calloc((size_t)nsize, sizeof *cards);
    int ok = cards != NULL;
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, node);
    if (!ok) {
        free(cards);
        MPI_Comm_free(&node);
        return;
    }
    MPI_Allgather(&me, sizeof me, MPI_BYTE, cards, sizeof me, MPI_BYTE, node);

    /* The page: the leader makes it and says whether it could.
     * SL_MPI_NO_DOORBELLS=1 (the same on every rank) does without, as
     * ranks on different nodes do: the tests run the polling path so. */
    size_t bytes =
        ((size_t)nsize * sizeof(struct node_slot) + 4095) & ~(size_t)4095;
    int fd = -1;
    const char *nodb = getenv("SL_MPI_NO_DOORBELLS");
    bool doorbells = !nodb || strcmp(nodb, "1") != 0;
    if (nrank == 0 && doorbells) {
        fd = (int)syscall(SYS_memfd_create, "stackless-mpi", MFD_CLOEXEC);
        if (fd >= 0 && ftruncate(fd, (off_t)bytes) < 0) {
            close(fd);
            fd = -1;
        }
    }
    ok = doorbells && (nrank != 0 || fd >= 0);
    MPI_Bcast(&ok, 1, MPI_INT, 0, node);
    if (ok && nrank == 0) {
        for (int i = 1; i < nsize; i++)
            send_page_fd(fd, &cards[i]); /* a failure shows at the receiver */
    } else if (ok) {
        fd = recv_page_fd();
    }
    void *page = MAP_FAILED;
    if (ok && fd >= 0)
        page = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fd >= 0)
        close(fd);
    ok = ok && page != MAP_FAILED;
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, node);
    if (ok) {
        E.page = page;
        E.page_len = bytes;
        struct node_slot *slots = page;
        E.myslot = &slots[nrank];
        for (int i = 0; i < nsize; i++) {
            struct node_card *c = &cards[i];
            if (c->world_rank < 0 || c->world_rank >= E.size ||
                c->world_rank == E.rank || !c->bell_len)
                continue;
            struct peer *p = &E.peers[c->world_rank];
            memcpy(&p->bell, c->bell, c->bell_len);
            p->bell_len = c->bell_len;
            p->slot = &slots[i];
        }
        E.remote_peers = nsize < E.size;
    } else if (page != MAP_FAILED) {
        munmap(page, bytes);
    }
    /* A pidfd per neighbour tells when it dies, doorbells or not. */
    for (int i = 0; i < nsize; i++) {
        struct node_card *c = &cards[i];
        if (c->world_rank < 0 || c->world_rank >= E.size ||
            c->world_rank == E.rank)
            continue;
        int pfd = (int)syscall(SYS_pidfd_open, (pid_t)c->pid, 0);
        if (pfd < 0)
            continue;
        struct epoll_event ev = {
            .events = EPOLLIN, .data.u64 = EV_PIDFD | (uint64_t)c->world_rank};
        if (epoll_ctl(E.epfd, EPOLL_CTL_ADD, pfd, &ev) == 0)
            E.peers[c->world_rank].pidfd = pfd;
        else
            close(pfd);
    }
    free(cards);
    MPI_Comm_free(&node);
}

static int fds_setup(void)
{
    E.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    E.epfd = epoll_create1(EPOLL_CLOEXEC);
    E.bellfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (E.evfd < 0 || E.epfd < 0 || E.bellfd < 0)
        return -errno;
    /* Autobind: the kernel picks a unique abstract name. */
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (bind(E.bellfd, (struct sockaddr *)&a, sizeof(sa_family_t)) < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_LOCAL};
    if (epoll_ctl(E.epfd, EPOLL_CTL_ADD, E.evfd, &ev) < 0)
        return -errno;
    ev.data.u64 = EV_BELL;
    if (epoll_ctl(E.epfd, EPOLL_CTL_ADD, E.bellfd, &ev) < 0)
        return -errno;
    return 0;
}

static void fds_close(void)
{
    for (int r = 0; E.peers && r < E.size; r++)
        if (E.peers[r].pidfd >= 0)
            close(E.peers[r].pidfd);
    if (E.evfd >= 0)
        close(E.evfd);
    if (E.epfd >= 0)
        close(E.epfd);
    if (E.bellfd >= 0)
        close(E.bellfd);
    E.evfd = E.epfd = E.bellfd = -1;
}

static bool is_main(void)
{
    return sl_current() && sl_current() == sl_main();
}

int sl_mpi_init(int *argc, char ***argv, const sl_mpi_config *cfg)
{
    sl_mpi_config c;
    int inited = 0, finalized = 0, provided = 0, ismain = 0, rc;

    if (!is_main() || E.started)
        return SL_ESTATE;
    if (cfg) {
        c = *cfg;
        if (c.max_msg_size == 0 || c.max_msg_size > MAX_MAX_MSG ||
            c.spin_us < 0 || c.spin_us > 1000000 || c.poll_ms < 1 ||
            c.poll_ms > 10000)
            return SL_EINVAL;
    } else {
        sl_mpi_config_init(&c);
    }
    MPI_Finalized(&finalized);
    if (finalized)
        return SL_ESTATE; /* MPI cannot start twice */
    MPI_Initialized(&inited);
    if (!inited) {
        if ((rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED,
                                  &provided)) != MPI_SUCCESS)
            return mpi_err("MPI_Init_thread", rc);
        E.own_mpi = true;
    } else {
        MPI_Query_thread(&provided);
        E.own_mpi = false;
    }
    MPI_Is_thread_main(&ismain);
    if (provided < MPI_THREAD_FUNNELED || !ismain) {
        fprintf(stderr,
                "stackless-mpi: MPI gives thread level %d%s; need "
                "MPI_THREAD_FUNNELED "
                "and sl_mpi_init on MPI's main thread\n",
                provided, ismain ? "" : " (not its main thread)");
        if (E.own_mpi)
            MPI_Finalize();
        return SL_ESTATE;
    }
    /* Our own communicator: our tag never meets the program's messages,
     * and errors come back to us instead of aborting the job. */
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &E.comm)) != MPI_SUCCESS)
        return mpi_err("MPI_Comm_dup", rc);
    MPI_Comm_set_errhandler(E.comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(E.comm, &E.rank);
    MPI_Comm_size(E.comm, &E.size);
    E.cfg = c;
    E.peers = calloc((size_t)E.size, sizeof *E.peers);
    if (!E.peers) {
        rc = SL_ENOMEM;
        goto fail;
    }
    if ((rc = rx_start()) < 0)
        goto fail;
    for (int r = 0; r < E.size; r++)
        E.peers[r].pidfd = -1;
    if ((rc = fds_setup()) < 0)
        goto fail;
    node_setup();
    memset(&E.stats, 0, sizeof E.stats);
    sl_event_init(&E.fin_done);
    E.interest = 0;
    E.running = E.parked = E.finalizing = false;
    E.deaths = 0;
    E.started = true;
    return 0;
fail:
    rx_stop();
    fds_close();
    free(E.peers);
    E.peers = NULL;
    MPI_Comm_free(&E.comm);
    if (E.own_mpi)
        MPI_Finalize();
    return rc;
}

/* ---- stop --------------------------------------------------------------- */

static void fin_check_locked(void)
{
    for (int r = 0; r < E.size; r++)
        if (r != E.rank && !E.peers[r].fin && !E.peers[r].dead)
            return;
    sl_event_set(&E.fin_done);
}

int sl_mpi_finalize(void)
{
    if (!is_main() || !E.started)
        return SL_ESTATE;
    sl__mpi_pool_finalize();

    /* Close what is homed here, then wait for our own ops to be answered
     * (the other ranks answer until they are through this too). */
    lock();
    E.finalizing = true;
    sl__mpi_chan_close_all_locked();
    unlock();
    for (;;) {
        lock();
        size_t n = E.opcount;
        unlock();
        if (!n)
            break;
        sl_sleep_ms(1);
    }
    /* Tell every live rank we are done asking; serve until all have. */
    lock();
    sl__mpi_interest_locked(1);
    for (int r = 0; r < E.size; r++) {
        if (r == E.rank || E.peers[r].dead)
            continue;
        slmsg *m = sl__mpi_msg_new(W_FIN, r, 0);
        SLMPI_ASSERT(m);
        sl__mpi_post_locked(m);
    }
    fin_check_locked();
    unlock();
    TRACE("[%d] fin: waiting for FINs\n", E.rank);
    sl_event_wait(&E.fin_done, -1);
    TRACE("[%d] fin: all FINs\n", E.rank);
    lock();
    sl__mpi_interest_locked(-1);
    unlock();
    /* The engine ends once its sends are done. */
    for (;;) {
        lock();
        bool running = E.running;
        if (running)
            engine_wake_locked();
        unlock();
        if (!running)
            break;
        sl_sleep_ms(1);
    }

    sl__mpi_chan_free_all();
    rx_stop();
    if (E.page) {
        munmap(E.page, E.page_len);
        E.page = NULL;
        E.myslot = NULL;
    }
    MPI_Comm_free(&E.comm);
    fds_close();
    free(E.peers);
    E.peers = NULL;
    free(E.optab);
    E.optab = NULL;
    E.opmask = E.opcount = 0;
    free(E.sreq);
    free(E.smsg);
    E.sreq = NULL;
    E.smsg = NULL;
    E.nsend = E.capsend = 0;
    sl_event_destroy(&E.fin_done);
    int rank_was = E.rank;
    E.started = false;
    E.finalizing = false;
    E.rank = E.size = -1;
    TRACE("[%d] fin: MPI_Finalize\n", E.rank);
    /* After a rank died, Open MPI 4.1's MPI_Finalize may wait forever in
     * its closing fence for the dead rank (seen here in about 1 run in 6
     * under mpirun --enable-recovery, with plain MPI calls too); the
     * process's MPI state goes with it instead. */
    if (E.own_mpi && !E.deaths)
        MPI_Finalize();
    else if (E.own_mpi)
        fprintf(stderr,
                "stackless-mpi: rank %d: not calling MPI_Finalize: %d rank(s) "
                "died\n",
                rank_was, E.deaths);
    TRACE("[%d] fin: done\n", E.rank);
    return 0;
}
