/* map.c - sl_pool_map and sl_pool_imap_unordered: a job cut into chunks,
 * fed to the workers a few milliseconds of work ahead, and the chunks'
 * results, each item's status and size checked before its bytes are
 * copied to the caller. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mp/mp.h"

/* How much of a map each worker gets queued ahead: about FEED_AHEAD_NS of
 * its chunks (at least 2: one running, one waiting), judged from how fast
 * the job's chunks have come back so far. Enough that a worker does not
 * run dry while the parent wakes to refill it; little enough that one
 * that turns out slower than the others (a busy core) holds back only a
 * few milliseconds of work at the end. */
#define FEED_AHEAD_NS 2000000

int sl__mp_chunk_item(const char *data, size_t n, size_t out_size, size_t i,
                      size_t *len)
{
    int32_t st = MP_ONCE(((const int32_t *)data)[i]);
    uint32_t l = MP_ONCE(((const uint32_t *)(data + 4 * n))[i]);
    *len = 0;
    if (st != 0)
        return st;
    if (l > out_size)
        return -EOVERFLOW; /* a size the item was not given */
    *len = l;
    return 0;
}

/* Queue what job j may have in flight now (non-blocking: stops when the
 * rings or the heap are full; the collector calls again as results come
 * back). Lock held. true if it queued something. */
static bool feed_job(sl_pool *p, struct mapjob *j, int64_t now)
{
    size_t nprocs = p->map.nprocs;
    size_t ahead = 2;
    if (j->settled > 0) {
        int64_t per_chunk = (now - j->t0) * (int64_t)nprocs /
                            (int64_t)j->settled; /* per worker, ns */
        if (per_chunk < 1)
            per_chunk = 1;
        if ((size_t)(FEED_AHEAD_NS / per_chunk) > ahead)
            ahead = (size_t)(FEED_AHEAD_NS / per_chunk);
    }
    size_t limit = ahead * nprocs;
    bool queued = false;
    while (j->next_chunk < j->nchunks &&
           j->next_chunk - j->settled < limit) {
        struct mp_task *t;
        int best = sl__mp_pick_worker(p, &t);
        if (best < 0)
            break; /* every ring is full */
        struct chunk *c = &j->chunks[j->next_chunk];
        const char *in = j->inputs + c->first * j->in_size;
        struct pend pd = {.kind = PEND_CHUNK, .u.chunk = c};
        size_t in_len = c->n * j->in_size;
        bool in_heap = in_len > MP_TASK_INLINE;
        if (in_heap) {
            pd.in_off = sl__mp_heap_alloc(&p->heap, in_len, MP_BLOCK_DATA);
            if (!pd.in_off)
                break; /* results being collected will free room */
            memcpy(mp_heap_ptr(&p->map, pd.in_off), in, in_len);
        }
        struct mp_task hdr = {.fn = j->fn, .kind = MP_CHUNK,
                              .in_len = (uint32_t)in_len,
                              .in_off = pd.in_off, .n = (uint32_t)c->n,
                              .in_size = (uint32_t)j->in_size,
                              .out_size = (uint32_t)j->out_size};
        sl__mp_queue(p, best, t, &hdr, in_heap ? NULL : in, pd);
        j->next_chunk++;
        queued = true;
    }
    return queued;
}

/* Feed every job that has chunks left to queue; drop the ones done from
 * the list. Lock held. */
bool sl__mp_feed_all(sl_pool *p)
{
    bool queued = false;
    int64_t now = sl__now_ns();
    for (struct mapjob **jp = &p->feeding; *jp;) {
        struct mapjob *j = *jp;
        if (!j->caller_feeds)
            queued |= feed_job(p, j, now);
        if (j->next_chunk == j->nchunks)
            *jp = j->feed_next;
        else
            jp = &j->feed_next;
    }
    return queued;
}

static void feeding_remove(sl_pool *p, struct mapjob *j)
{
    for (struct mapjob **jp = &p->feeding; *jp; jp = &(*jp)->feed_next)
        if (*jp == j) {
            *jp = j->feed_next;
            return;
        }
}

/* Terminate: the chunks never queued fail too. Lock held. */
void sl__mp_fail_feeding(sl_pool *p, int status)
{
    while (p->feeding) {
        struct mapjob *j = p->feeding;
        p->feeding = j->feed_next;
        while (j->next_chunk < j->nchunks)
            sl__mp_chunk_settle(&j->chunks[j->next_chunk++], status, NULL,
                                0);
    }
}

/* Each item of a chunk's result (data, checked to be n * (8 + out_size)
 * bytes) into place: status into st[i], its bytes to out + i * out_size. */
static void scatter(const char *data, size_t n, size_t out_size, int *st,
                    char *out)
{
    const char *outs = data + 8 * n;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        st[i] = sl__mp_chunk_item(data, n, out_size, i, &l);
        if (l)
            memcpy(out + i * out_size, outs + i * out_size, l);
    }
}

/* A chunk's result is in (data NULL: the chunk failed with status). A
 * fixed-stack map's caller has its buffers where they seem: scatter into
 * them here. A copy-stack caller's may be on its stack, which is not where
 * it seems while it is parked: keep a copy for the caller to scatter.
 * imap: keep the items, checked, in the chunk. Lock held. */
void sl__mp_chunk_settle(struct chunk *c, int status, const char *data,
                         size_t len)
{
    struct mapjob *j = c->job;
    size_t n = c->n;
    bool ok = data && status == 0;
    if (j->outputs && !j->caller_feeds) {
        if (ok) {
            scatter(data, n, j->out_size, j->statuses + c->first,
                    j->outputs + c->first * j->out_size);
        } else {
            for (size_t i = 0; i < n; i++)
                j->statuses[c->first + i] = status;
        }
        j->settled++;
        if (--j->chunks_left == 0)
            sl_event_set(&j->done);
        return;
    }
    if (j->outputs) {
        c->status = ok ? 0 : status;
        if (ok && !(c->res = malloc(len)))
            c->status = SL_ENOMEM;
        else if (ok)
            memcpy(c->res, data, len);
    } else {
        c->st = malloc(n * sizeof *c->st);
        c->lens = malloc(n * sizeof *c->lens);
        c->outs = malloc(n * j->out_size + 1);
        if (!c->st || !c->lens || !c->outs)
            ok = false, status = SL_ENOMEM;
        const char *outs = ok ? data + 8 * n : NULL;
        for (size_t i = 0; i < n && c->st && c->lens; i++) {
            size_t l = 0;
            c->st[i] = ok ? sl__mp_chunk_item(data, n, j->out_size, i, &l)
                          : status;
            c->lens[i] = (uint32_t)l;
            if (l)
                memcpy(c->outs + i * j->out_size, outs + i * j->out_size, l);
        }
    }
    c->link = NULL;
    if (j->ready_tail)
        j->ready_tail->link = c;
    else
        j->ready_head = c;
    j->ready_tail = c;
    sl_event_set(&j->ready);
    j->settled++;
    if (--j->chunks_left == 0)
        sl_event_set(&j->done);
}

/* The oldest settled chunk of j, taken off its ready list, or NULL (and
 * j->ready cleared, so a waiter sleeps until the next one settles).
 * Lock held. */
static struct chunk *ready_pop(struct mapjob *j)
{
    struct chunk *c = j->ready_head;
    if (c) {
        j->ready_head = c->link;
        if (!j->ready_head)
            j->ready_tail = NULL;
    } else {
        sl_event_clear(&j->ready);
    }
    return c;
}

/* Items per chunk: asked for (or about n / (4 * processes)), within what
 * one task's input and one result may hold. */
static size_t chunk_items(sl_pool *p, size_t n, size_t in_size,
                          size_t out_size, size_t chunksize)
{
    size_t q = 4 * (size_t)p->cfg.processes;
    size_t c = chunksize ? chunksize : n / q + (n % q != 0);
    size_t by_in = p->cfg.max_task_size / in_size;
    size_t by_out = p->cfg.max_result_size / (8 + out_size);
    if (c > by_in)
        c = by_in;
    if (c > by_out)
        c = by_out;
    if (c > UINT32_MAX)
        c = UINT32_MAX;
    return c ? c : 1;
}

/* Cut job j into chunks of per items and start feeding it (the
 * collector queues the rest as results come back). SL_ECLOSED after
 * close or terminate. */
static int map_start(sl_pool *p, sl_task_fn fn, struct mapjob *j,
                     struct chunk *chunks, size_t nchunks, size_t per)
{
    j->fn = fn;
    j->chunks = chunks;
    j->nchunks = nchunks;
    j->chunks_left = nchunks;
    for (size_t k = 0; k < nchunks; k++) {
        struct chunk *c = &chunks[k];
        c->job = j;
        c->first = k * per;
        c->n = j->n - c->first < per ? j->n - c->first : per;
    }
    int rc = sl_lock_acquire(&p->lock);
    if (rc < 0)
        return rc;
    if (p->closed || p->terminated) {
        sl_lock_release(&p->lock);
        return SL_ECLOSED;
    }
    j->t0 = sl__now_ns();
    feed_job(p, j, j->t0);
    if (j->next_chunk < j->nchunks) {
        j->feed_next = p->feeding;
        p->feeding = j;
    }
    sl__mp_unlock_waking(p);
    return 0;
}

/* The arguments every map takes, and sizes whose products (n items of
 * in_size and of out_size bytes, n statuses, the copy imap keeps) must not
 * overflow. */
static int map_check(sl_pool *p, sl_task_fn fn, const void *inputs,
                     size_t in_size, size_t n, size_t out_size)
{
    if (!p || !fn || (n && (!inputs || !in_size || !out_size)))
        return SL_EINVAL;
    if (in_size > p->cfg.max_task_size || p->cfg.max_result_size < 8 ||
        out_size > p->cfg.max_result_size - 8 || out_size > UINT32_MAX)
        return SL_EINVAL;
    if (n && (n > (SIZE_MAX - 1) / in_size || n > SIZE_MAX / out_size ||
              n > SIZE_MAX / sizeof(int)))
        return SL_EINVAL;
    if (!sl_current())
        return SL_ESTATE;
    return 0;
}

/* A copy-mode caller's loop: queue its chunks as room comes, take every
 * chunk as it is settled (by its result, a worker's death or terminate)
 * and scatter it from its own tasklet. */
static void map_by_caller(sl_pool *p, struct mapjob *j, int *st,
                          char *outputs)
{
    size_t taken = 0;
    while (taken < j->nchunks) {
        sl_lock_acquire(&p->lock);
        if (j->next_chunk < j->nchunks && !p->terminated) {
            feed_job(p, j, sl__now_ns());
            if (j->next_chunk == j->nchunks)
                feeding_remove(p, j);
        }
        struct chunk *c = ready_pop(j);
        /* Nothing of ours in flight and chunks left to queue: the rings
         * or the heap are full of other work; look again soon. */
        bool stalled = j->next_chunk < j->nchunks &&
                       j->next_chunk == j->settled;
        sl_lock_release(&p->lock);
        if (!c) {
            sl_event_wait(&j->ready, stalled ? 1 : -1);
            continue;
        }
        taken++;
        if (c->status == 0) {
            scatter(c->res, c->n, j->out_size, st + c->first,
                    outputs + c->first * j->out_size);
        } else {
            for (size_t i = 0; i < c->n; i++)
                st[c->first + i] = c->status;
        }
        free(c->res);
        c->res = NULL;
    }
}

int sl_pool_map(sl_pool *h, sl_task_fn fn, const void *inputs,
                size_t in_size, size_t n, void *outputs, size_t out_size,
                size_t chunksize, int *statuses)
{
    sl_pool *p = sl__mp_pool_get(h);
    int rc = map_check(p, fn, inputs, in_size, n, out_size);
    if (rc)
        return rc;
    if (n == 0)
        return 0;
    if (!outputs)
        return SL_EINVAL;
    size_t per = chunk_items(p, n, in_size, out_size, chunksize);
    size_t nchunks = n / per + (n % per != 0);
    struct chunk *chunks = calloc(nchunks, sizeof *chunks);
    int *st = statuses ? statuses : malloc(n * sizeof *st);
    /* The job is on the heap, not our stack: the collector updates it
     * while we are parked. */
    struct mapjob *j = calloc(1, sizeof *j);
    if (!chunks || !st || !j) {
        free(chunks);
        if (!statuses)
            free(st);
        free(j);
        return SL_ENOMEM;
    }
    *j = (struct mapjob){.pool = p, .inputs = inputs, .outputs = outputs,
                         .statuses = st, .in_size = in_size,
                         .out_size = out_size, .n = n,
                         .caller_feeds = sl_current()->copy};
    sl_event_init(&j->done);
    sl_event_init(&j->ready);
    rc = map_start(p, fn, j, chunks, nchunks, per);
    /* A fixed-stack caller leaves the feeding and the scattering to the
     * collector, which saves a wake-up of this tasklet and a copy per
     * chunk (10M tiny tasks/s at chunksize 1 against 1M). */
    while (rc == 0 && !j->caller_feeds) {
        sl_event_wait(&j->done, -1);
        sl_lock_acquire(&p->lock);
        bool more = j->chunks_left > 0;
        sl_lock_release(&p->lock);
        if (!more)
            break;
    }
    if (rc == 0 && j->caller_feeds)
        map_by_caller(p, j, st, outputs);
    if (rc == 0)
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = st[i];
    if (!statuses)
        free(st);
    free(chunks);
    sl_event_destroy(&j->done);
    sl_event_destroy(&j->ready);
    free(j);
    return rc;
}

int sl_pool_imap_unordered(sl_pool *h, sl_task_fn fn, const void *inputs,
                           size_t in_size, size_t n, size_t out_size,
                           size_t chunksize, sl_pool_iter **out)
{
    sl_pool *p = sl__mp_pool_get(h);
    if (!out)
        return SL_EINVAL;
    *out = NULL;
    int rc = map_check(p, fn, inputs, in_size, n, out_size);
    if (rc)
        return rc;
    sl_pool_iter *it = calloc(1, sizeof *it);
    if (!it)
        return SL_ENOMEM;
    size_t per = n ? chunk_items(p, n, in_size, out_size, chunksize) : 1;
    it->nchunks = n / per + (n % per != 0);
    it->chunks = calloc(it->nchunks ? it->nchunks : 1, sizeof *it->chunks);
    /* The chunks are queued as the workers take them, after we return:
     * the iterator keeps its own copy of the inputs. */
    it->inputs = malloc(n * in_size + 1);
    if (!it->chunks || !it->inputs) {
        free(it->chunks);
        free(it->inputs);
        free(it);
        return SL_ENOMEM;
    }
    if (n)
        memcpy(it->inputs, inputs, n * in_size);
    struct mapjob *j = &it->job;
    j->pool = p;
    j->inputs = it->inputs;
    j->in_size = in_size;
    j->out_size = out_size;
    j->n = n;
    sl_event_init(&j->done);
    sl_event_init(&j->ready);
    rc = map_start(p, fn, j, it->chunks, it->nchunks, per);
    if (rc < 0) {
        j->chunks_left = 0;
        it->nchunks = 0;
        sl_pool_iter_free(it);
        return rc;
    }
    *out = it;
    return 0;
}

int sl_pool_iter_next(sl_pool_iter *it, size_t *index, void *out,
                      size_t *out_len)
{
    if (!it)
        return SL_EINVAL;
    struct mapjob *j = &it->job;
    for (;;) {
        struct chunk *c = it->cur;
        if (c && c->next < c->n) {
            size_t i = c->next++;
            it->handed++;
            if (index)
                *index = c->first + i;
            size_t l = c->lens ? c->lens[i] : 0; /* checked: <= out_size */
            if (out && c->outs && l)
                memcpy(out, c->outs + i * j->out_size, l);
            if (out_len)
                *out_len = l;
            return c->st ? c->st[i] : SL_ENOMEM;
        }
        if (it->handed == j->n)
            return SL_ECLOSED;
        sl_pool *p = j->pool;
        sl_lock_acquire(&p->lock);
        c = ready_pop(j);
        bool none_left = !c && j->chunks_left == 0;
        sl_lock_release(&p->lock);
        if (c) {
            it->cur = c;
            continue;
        }
        if (none_left)
            return SL_ECLOSED; /* some chunks could not be queued */
        int rc = sl_event_wait(&j->ready, -1);
        if (rc < 0)
            return rc;
    }
}

void sl_pool_iter_free(sl_pool_iter *it)
{
    if (!it)
        return;
    /* Chunks still in flight point at it: wait for them. */
    sl_pool *p = it->job.pool;
    for (;;) {
        sl_lock_acquire(&p->lock);
        bool busy = it->job.chunks_left > 0;
        sl_lock_release(&p->lock);
        if (!busy)
            break;
        sl_event_wait(&it->job.done, -1);
    }
    for (size_t k = 0; k < it->nchunks; k++) {
        free(it->chunks[k].st);
        free(it->chunks[k].lens);
        free(it->chunks[k].outs);
    }
    free(it->chunks);
    free(it->inputs);
    sl_event_destroy(&it->job.done);
    sl_event_destroy(&it->job.ready);
    free(it);
}
