/* mp.h - what the files of mp/ share (private): limits and exit codes, the
 * shared mapping's layout, the rings, the parent's records, and the calls
 * the files make of one another.
 *
 * Trust: everything in the shared mapping can be written by every worker
 * process, so a worker's task can write anything there. The parent keeps
 * its own (private) copy of every value it handed out - ring positions,
 * task ids, heap blocks and their sizes, descriptors, the layout itself -
 * and reads from the mapping only what a worker must tell it, each value
 * once, checked against that copy before it is used (see "Trust" in the
 * essay of pool.c). */
#ifndef SL_MP_H
#define SL_MP_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "arch/arch.h"
#include "sched/sched.h"
#include "stackless.h"

/* ---- limits, named once ------------------------------------------------ */

#define SL__MP_MAX_PROCESSES 256      /* sl_pool_config.processes         */
#define SL__MP_MAX_WORKERS 127        /* .workers (the runtime's limit)   */
#define SL__MP_MAX_POOLS 64           /* pools alive at once              */
#define SL__MP_MAX_DEPTH (1u << 20)   /* .queue_depth                     */
#define SL__MP_MAX_PAYLOAD (1u << 30) /* task, result, mpchan message     */
#define SL__MP_MAX_HEAP ((size_t)1 << 37) /* .shm_size (heap links: u32)  */
#define SL__MP_SPIN_NS 50000          /* a spin before sleeping            */
/* A sleeper looks again after this long even if nobody rang it: a worker
 * that scribbled over a "sleeping" flag can delay a wake-up, not lose it. */
#define SL__MP_NAP_MS 1000

/* How a worker process ends (its exit status; the parent only reaps it). */
enum {
    SL__MP_EXIT_DONE = 0,    /* told to stop, or max_tasks_per_child      */
    SL__MP_EXIT_ORPHAN = 3,  /* the parent died                           */
    SL__MP_EXIT_NOMEM = 4,   /* no memory for its buffers                 */
    SL__MP_EXIT_RUNTIME = 5, /* sl_init failed                            */
    SL__MP_EXIT_CORRUPT = 6, /* its rings or descriptors made no sense    */
    SL__MP_EXIT_FORKED = 7,  /* a copy forked by a task came back to the
                                dispatcher: only the worker may go on     */
};

/* A value another process may change under us, read exactly once. */
#define MP_ONCE(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* ---- the shared mapping ------------------------------------------------ */

/* Pages (of the system's size: 4, 16 or 64 KiB): [header][a control page
 * per worker][task slots per worker]
 * [result slots per worker][result area per worker][heap]. Each worker
 * process keeps write access to the header, its control page, its result
 * slots and result area and the heap, reads its task slots, and cannot
 * touch the other workers' pages (mprotect after the fork,
 * sl__mp_protect): a wild write in a task corrupts at most what its own
 * process could anyway, and the heap. */
#define MP_SLOT 256 /* bytes of a ring slot */

struct mp_header {
    _Atomic uint32_t parent_sleeping; /* the collector waits on its evfd */
};

/* A worker slot's control page: ring counters and flags, each counter on
 * its own cache line. Written by: (W) the worker, (P) the parent. */
struct mp_wctl {
    _Alignas(SL_CACHE_LINE) _Atomic uint64_t task_head; /* (W) tasks taken            */
    _Alignas(SL_CACHE_LINE) _Atomic uint64_t task_tail; /* (P) tasks queued           */
    _Alignas(SL_CACHE_LINE) _Atomic uint64_t res_head;  /* (P) results taken          */
    _Alignas(SL_CACHE_LINE) _Atomic uint64_t res_tail;  /* (W) results pushed         */
    _Alignas(SL_CACHE_LINE) _Atomic uint32_t sleeping;  /* (W) waits on its evfd      */
    _Alignas(SL_CACHE_LINE) _Atomic uint64_t area_head; /* (P) result area bytes
                                                taken                     */
};

enum { MP_TASK = 1, MP_CHUNK = 2, MP_STOP = 3 };

/* Parent -> worker. Input inline (in_off 0) or in the heap at in_off. */
struct mp_task {
    uint64_t id;       /* position in the worker's ring + 1               */
    sl_task_fn fn;
    uint32_t kind;     /* MP_TASK, MP_CHUNK (n items), MP_STOP            */
    uint32_t in_len;
    uint64_t in_off;   /* heap offset + 1, 0: inline                      */
    uint32_t n, in_size, out_size, pad;
    char data[];
};
#define MP_TASK_INLINE (MP_SLOT - sizeof(struct mp_task))

/* Worker -> parent. A result that does not fit the slot is in the
 * worker's result area, where the parent's own count of the area's bytes
 * says (mp_area_at): nothing here is an address. */
struct mp_result {
    uint64_t id;
    int32_t status;
    uint32_t in_area;  /* 1: the result is in the result area             */
    uint64_t out_len;
    char data[];
};
#define MP_RESULT_INLINE (MP_SLOT - sizeof(struct mp_result))

/* Where everything is: computed by the parent, never read back from the
 * mapping (a worker gets it as its copy of the parent's memory). */
struct mp_layout {
    char *base;
    size_t size;
    size_t page;        /* sysconf(_SC_PAGESIZE): what mprotect works in */
    uint32_t nprocs, depth;
    size_t ctl_off, task_off, res_off, ring_bytes;
    size_t area_off, area_bytes; /* result areas: a power of two each     */
    char *heap;
    size_t heap_size;
    uint32_t orders;    /* heap_size == 1 << (orders - 1 + MP_MIN_ORDER) */
};

static inline struct mp_header *mp_header(const struct mp_layout *m)
{
    return (struct mp_header *)m->base;
}
static inline struct mp_wctl *mp_wctl(const struct mp_layout *m, uint32_t i)
{
    return (struct mp_wctl *)(m->base + m->ctl_off + (size_t)i * m->page);
}
static inline char *mp_task_slots(const struct mp_layout *m, uint32_t i)
{
    return m->base + m->task_off + (size_t)i * m->ring_bytes;
}
static inline char *mp_result_slots(const struct mp_layout *m, uint32_t i)
{
    return m->base + m->res_off + (size_t)i * m->ring_bytes;
}
static inline char *mp_area(const struct mp_layout *m, uint32_t i)
{
    return m->base + m->area_off + (size_t)i * m->area_bytes;
}

/* A worker's result area is a byte ring written in result order and taken
 * in that order: a result of len bytes goes at *pos (a count of bytes,
 * never wrapped), moved on to the area's start first when it would not fit
 * before the end. Both sides follow this rule on their own count, so where
 * a result is never has to be read from shared memory. Returns the
 * result's offset in the area; *pos moves past it. */
static inline size_t mp_area_at(uint64_t *pos, size_t len, size_t bytes)
{
    size_t off = (size_t)(*pos & (bytes - 1));
    if (off + len > bytes) {
        *pos += bytes - off;
        off = 0;
    }
    *pos += len;
    return off;
}

/* Lay out and map a region for nprocs workers, rings of depth slots,
 * result areas of area_bytes and a heap of heap_size bytes (powers of
 * two). -errno. */
int sl__mp_map(struct mp_layout *m, uint32_t nprocs, uint32_t depth,
               size_t area_bytes, size_t heap_size);
void sl__mp_unmap(struct mp_layout *m);
/* In worker slot's process: give up access to what is not its own. */
void sl__mp_protect(const struct mp_layout *m, uint32_t slot);

/* ---- rings --------------------------------------------------------------- */

/* One side's private view of a single-producer single-consumer ring: the
 * counter it writes (mine) and the one the other side writes (theirs), in
 * shared memory; its own position and the last value of theirs that made
 * sense, in private memory. A value of theirs that cannot be (behind the
 * last one, or past what the ring can hold) sets bad: the other side is
 * broken, and nothing of the ring is used again. */
struct mp_ring {
    _Atomic uint64_t *mine, *theirs;
    char *slots;
    uint32_t mask;
    bool bad;
    uint64_t pos;  /* producer: slots filled; consumer: slots taken */
    uint64_t seen; /* the other side's counter, as last checked     */
};

static inline void *mp_ring_slot(const struct mp_ring *r, uint64_t i)
{
    return r->slots + (size_t)(i & r->mask) * MP_SLOT;
}

/* Producer: the slot to fill, or NULL (full, or bad). */
static inline void *mp_ring_reserve(struct mp_ring *r)
{
    if (r->pos - r->seen > r->mask) {
        uint64_t h = atomic_load_explicit(r->theirs, memory_order_acquire);
        if (h < r->seen || h > r->pos) {
            r->bad = true;
            return NULL;
        }
        r->seen = h;
        if (r->pos - h > r->mask)
            return NULL;
    }
    return r->bad ? NULL : mp_ring_slot(r, r->pos);
}
static inline void mp_ring_push(struct mp_ring *r)
{
    atomic_store_explicit(r->mine, ++r->pos, memory_order_release);
}
/* Consumer: the oldest slot, or NULL (empty, or bad). */
static inline void *mp_ring_peek(struct mp_ring *r)
{
    if (r->seen == r->pos) {
        uint64_t t = atomic_load_explicit(r->theirs, memory_order_acquire);
        if (t < r->seen || t - r->pos > (uint64_t)r->mask + 1) {
            r->bad = true;
            return NULL;
        }
        r->seen = t;
        if (t == r->pos)
            return NULL;
    }
    return r->bad ? NULL : mp_ring_slot(r, r->pos);
}
/* Consumer: is there anything (without taking it)? */
static inline bool mp_ring_ready(const struct mp_ring *r)
{
    return r->seen != r->pos ||
           atomic_load_explicit(r->theirs, memory_order_acquire) != r->pos;
}
static inline void mp_ring_pop(struct mp_ring *r)
{
    atomic_store_explicit(r->mine, ++r->pos, memory_order_release);
}
/* Point a view at its ring's counters as they are now (both sides). */
void sl__mp_ring_view(struct mp_ring *r, _Atomic uint64_t *mine,
                      _Atomic uint64_t *theirs, char *slots, uint32_t mask);

/* ---- the heap: the parent's allocator ---------------------------------- */

#define MP_MIN_ORDER 6 /* smallest block: 64 bytes */
#define MP_MAX_ORDERS 32

/* What a block is for (kept with it in the allocator's private map, so
 * that an mpchan pointer can be checked to be one). */
enum { MP_BLOCK_DATA = 0, MP_BLOCK_CHAN = 1 };

/* A buddy allocator over the mapping's heap whose metadata (a byte per
 * 64-byte unit, the free lists' links) lives in the parent's private
 * memory: workers only read and write the bytes of blocks, never the
 * allocator. Parent only; its own mutex (any thread of the parent). */
struct mp_heap {
    pthread_mutex_t lock;
    char *base;
    uint32_t orders;
    uint8_t *meta;        /* per unit: FREE|order at a free block's start,
                             USED|kind|order at an allocated one's, else 0 */
    uint32_t *next, *prev; /* per unit: free-list links, unit + 1 (0: end) */
    uint32_t head[MP_MAX_ORDERS];
    size_t in_use;        /* bytes handed out */
};

int sl__mp_heap_init(struct mp_heap *h, char *base, uint32_t orders);
void sl__mp_heap_fini(struct mp_heap *h);
/* Offset + 1 of a block of at least n bytes, or 0 when there is no room
 * now. */
uint64_t sl__mp_heap_alloc(struct mp_heap *h, size_t n, int kind);
void sl__mp_heap_free(struct mp_heap *h, uint64_t off1);
/* Bytes of the allocated block of that kind starting at off1, or 0 when
 * there is none. */
size_t sl__mp_heap_block(struct mp_heap *h, uint64_t off1, int kind);
size_t sl__mp_heap_in_use(struct mp_heap *h);
static inline void *mp_heap_ptr(const struct mp_layout *m, uint64_t off1)
{
    return m->heap + (off1 - 1);
}
/* The size of the block the heap hands out for n bytes. */
size_t sl__mp_pow2(size_t n);

/* ---- bells and waiting ------------------------------------------------- */

/* Wake the process behind an eventfd doorbell. */
void sl__mp_bell_ring(int fd);
/* Drain an eventfd (non-blocking). */
void sl__mp_bell_drain(int fd);

/* One process's way of waiting for other processes (mpchans): its doorbell
 * eventfd, watched by one waiting tasklet at a time (the leader), which
 * tells the others through a condition. A waiter reads the generation,
 * looks at the shared state, registers for a bell, then waits for the
 * generation to move; the bell is rung after the shared state changed, so
 * no wake-up is lost (and a leader looks again after SL__MP_NAP_MS). */
struct mp_local {
    sl_lock lock;
    sl_cond cond;
    uint64_t gen;
    bool leader;
    int bell;
};

void sl__mp_local_init(struct mp_local *l, int bell);
uint64_t sl__mp_local_gen(struct mp_local *l);
/* Block until the generation is no longer gen. 0, or SL_EKILLED. */
int sl__mp_local_wait(struct mp_local *l, uint64_t gen);

/* Spin (running this process's other tasklets between looks) until
 * cond(arg) or about SL__MP_SPIN_NS have passed; true if cond holds. With
 * yield, sched_yield() now and then too (mpchans: a partner on our core). */
bool sl__mp_spin_until(bool (*cond)(void *), void *arg, bool yield);

/* ---- the parent's records ------------------------------------------------ */

enum { PEND_FUTURE = 1, PEND_APPLY, PEND_CHUNK };

/* A task in flight, in its worker's FIFO (the parent's private memory). */
struct pend {
    int kind;
    uint64_t in_off;      /* heap block of the input, 0: inline            */
    union {
        sl_future *future;
        struct apply *apply;
        struct chunk *chunk;
    } u;
};

struct sl_future {
    sl_pool *pool;
    sl_event done;
    int status;
    bool settled;
    bool orphan;          /* freed by the user before it settled */
    size_t len;
    char *data;           /* len bytes (inline_buf or malloc'd) */
    char inline_buf[64];
};

struct apply {
    sl_pool_callback cb;
    sl_pool_error_callback ecb;
    void *arg;
    int status;
    size_t len;
    char *data;
};

/* A map's bookkeeping and one chunk of it. Its chunks are queued a few at
 * a time (sl__mp_feed_job), not all at once, so that a worker that runs
 * faster (or starts sooner) than another takes more of them. */
struct mapjob {
    sl_pool *pool;
    sl_task_fn fn;
    const char *inputs;
    char *outputs;        /* sl_pool_map: results land here directly */
    int *statuses;
    size_t in_size, out_size, n;
    struct chunk *chunks;
    size_t nchunks;
    size_t next_chunk;    /* the next chunk to queue */
    size_t settled;       /* chunks settled */
    size_t chunks_left;   /* chunks not settled yet */
    int64_t t0;           /* when its first chunk was queued, ns */
    bool caller_feeds;    /* sl_pool_map from a copy-stack tasklet: its
                             buffers may be on its stack, which is not
                             where it seems while it is parked, so it
                             queues and scatters the chunks itself */
    struct mapjob *feed_next; /* in the pool's list of jobs being fed */
    sl_event done;
    /* imap_unordered: finished chunks, in completion order */
    struct chunk *ready_head, *ready_tail;
    sl_event ready;
};

struct chunk {
    struct mapjob *job;
    size_t first, n;
    int status;           /* map: the chunk's own status */
    char *res;            /* map: a copy of its result, for the caller  */
    int *st;              /* imap: statuses, sizes and results kept */
    uint32_t *lens;
    char *outs;
    size_t next;          /* imap: items handed out */
    struct chunk *link;
};

struct sl_pool_iter {
    struct mapjob job;
    char *inputs;         /* a copy of the caller's */
    struct chunk *chunks;
    size_t nchunks;
    struct chunk *cur;
    size_t handed;
};

/* The parent's side of one worker slot (all private). */
struct wstate {
    struct pend *fifo;    /* pending records, by id (ring of depth)         */
    uint64_t head, tail;  /* ids head+1 .. tail are unsettled               */
    struct mp_ring tr;    /* task ring: we produce                          */
    struct mp_ring rr;    /* result ring: we consume                        */
    uint64_t area_pos;    /* result area: bytes taken (mp_area_at)          */
    int evfd;             /* its task doorbell                              */
    int bell;             /* its mpchan doorbell                            */
    int lifefd;           /* pidfd, or the read end of its life pipe        */
    pid_t pid;
    bool alive;
    bool broken;          /* wrote what cannot be: killed, dying            */
    bool stop_sent;
};

struct sl_pool {
    struct mp_layout map;
    struct mp_heap heap;
    sl_pool_config cfg;
    struct wstate *ws;
    int parent_evfd;      /* the collector's doorbell                       */
    int parent_bell;      /* the parent's mpchan doorbell                   */
    pid_t parent_pid;
    sl_lock lock;         /* submission, FIFOs, flags                       */
    sl_event work;        /* set by submit when the collector idles         */
    sl_event gone;        /* set when every worker has exited               */
    int epfd;             /* collector: parent_evfd + life descriptors      */
    size_t inflight;
    struct mapjob *feeding; /* maps with chunks still to queue              */
    int spin_misses;      /* the collector's spins that found nothing       */
    int live;             /* worker processes alive                         */
    bool closed, stopping, terminated, collector_done;
    bool collector_idle;
    sl_tasklet *collector;
    struct mp_local local; /* mpchan waiting in this process                */
    uint64_t *chans;      /* heap blocks of its mpchans (heap lock)         */
    size_t nchans, chans_cap;
};

/* ---- calls between the files ------------------------------------------- */

/* handle.c: the table of live pools. */
sl_pool *sl__mp_pool_lookup(const sl_pool *handle);
/* For the pool's own calls: no handle is live in a worker process. */
sl_pool *sl__mp_pool_get(const sl_pool *handle);
sl_pool *sl__mp_pool_register(sl_pool *p);
void sl__mp_pool_unregister(const sl_pool *handle);
/* The live pool whose heap holds addr (the worker's own pool in a worker
 * process), or NULL. */
sl_pool *sl__mp_pool_of(const void *addr);
/* In a worker: unmap every other pool's mapping it inherited. */
void sl__mp_forget_other_pools(const sl_pool *mine);

/* worker.c: the child's side. */
extern int sl__mp_my_slot;             /* -1 except in a worker process */
extern sl_pool *sl__mp_my_pool;        /* a worker's copy of its pool    */
/* Set in the child of a fork() made by a task in a worker: that copy of
 * the worker may run on in the task, but never touches the pool again. */
extern volatile sig_atomic_t sl__mp_forked_away;
void sl__mp_worker_main(sl_pool *p, int slot, pid_t parent, int life)
    __attribute__((noreturn));
/* pidfd_open(2), or -1 (errno) where the kernel (or valgrind) has none. */
int sl__mp_pidfd_open(pid_t pid);
bool sl__mp_have_pidfds(void);

/* collector.c: forks, results, deaths (lock held unless said). */
int sl__mp_fork_worker(sl_pool *p, int slot);
void sl__mp_collector(void *arg);
void sl__mp_settle(sl_pool *p, struct pend *pd, int status,
                   const char *data, size_t len);
size_t sl__mp_drain_all(sl_pool *p);
void sl__mp_fail_all(sl_pool *p, int i, int status);
void sl__mp_future_release(sl_future *f);
/* Kill worker i (if it is not dead already) and reap it: it is no longer
 * alive, its life descriptor is closed. */
void sl__mp_reap(sl_pool *p, int i);
/* Release the pool's lock, waking the collector if it idles. */
void sl__mp_unlock_waking(sl_pool *p);
/* The worker wrote what cannot be: kill it; the collector then handles
 * its death. */
void sl__mp_worker_broken(sl_pool *p, int i);
/* The worker a task goes to (the fewest in flight, a free slot), or -1. */
int sl__mp_pick_worker(sl_pool *p, struct mp_task **slot);
/* After pushing to worker i's task ring: ring it if it sleeps. */
void sl__mp_wake_worker(sl_pool *p, int i);
/* Queue on worker i, in slot t (from sl__mp_pick_worker), the task hdr
 * (its id is set here) with its inline input in (NULL: none or in the
 * heap) and its record pd; wake the worker. */
void sl__mp_queue(sl_pool *p, int i, struct mp_task *t,
                  const struct mp_task *hdr, const void *in, struct pend pd);

/* map.c: maps (lock held). */
bool sl__mp_feed_all(sl_pool *p);
void sl__mp_chunk_settle(struct chunk *c, int status, const char *data,
                         size_t len);
void sl__mp_fail_feeding(sl_pool *p, int status);

/* An item of a chunk's result (statuses, sizes, then results), each value
 * read once and checked: its status, and its size (0 when it failed; a
 * size above out_size fails it with -EOVERFLOW). */
int sl__mp_chunk_item(const char *data, size_t n, size_t out_size, size_t i,
                      size_t *len);

/* mpchan.c: after worker slot died, put every channel it was copying in
 * or out of back as it was before the copy, and wake their waiters. */
void sl__mp_chans_repair(sl_pool *p, int slot);

#endif /* SL_MP_H */
