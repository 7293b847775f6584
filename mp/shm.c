/* shm.c - the pool's shared mapping (layout, what each worker may touch),
 * the parent's allocator over its heap, ring views, and doorbells.
 *
 * The mapping is anonymous and MAP_SHARED, made before the first fork: the
 * workers inherit it at the same address (so pointers into it mean the same
 * in every process), and it disappears with the last process that maps it -
 * nothing in /dev/shm or anywhere else, whatever way the processes end.
 *
 * The heap is a buddy allocator: blocks of 2^k bytes, k >= 6, a free list
 * per order, and a byte per 64-byte unit that says "a free block of order
 * k starts here" or "an allocated block of order k (and kind) starts
 * here". Freeing merges a block with its buddy while the buddy is free and
 * of the same order. Only the parent allocates (a task's input, an
 * mpchan), and all of that metadata is in the parent's private memory -
 * none of it in the blocks themselves, where a task that writes past its
 * buffer would reach it. A worker can spoil the bytes of blocks (another
 * task's input, a message), never the allocator.
 *
 * Results do not use the heap: each worker has a result area of its own,
 * a byte ring it fills in result order and the parent empties in that
 * order (mp.h, mp_area_at), so a result needs no allocation, no lock, and
 * nothing of it is lost when its worker dies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mp/mp.h"

#define FREE_BIT 0x80
#define USED_BIT 0x40
#define KIND_SHIFT 5 /* one bit of kind: MP_BLOCK_DATA or MP_BLOCK_CHAN */
#define ORDER_MASK 0x1f

static size_t round_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

size_t sl__mp_pow2(size_t n)
{
    size_t p = (size_t)1 << MP_MIN_ORDER;
    while (p < n)
        p <<= 1;
    return p;
}

int sl__mp_map(struct mp_layout *m, uint32_t nprocs, uint32_t depth,
               size_t area_bytes, size_t heap_size)
{
    memset(m, 0, sizeof *m);
    size_t pg = m->page = (size_t)sysconf(_SC_PAGESIZE);
    m->nprocs = nprocs;
    m->depth = depth;
    m->ring_bytes = round_up((size_t)depth * MP_SLOT, pg);
    m->ctl_off = round_up(sizeof(struct mp_header), pg);
    m->task_off = m->ctl_off + (size_t)nprocs * pg;
    m->res_off = m->task_off + (size_t)nprocs * m->ring_bytes;
    m->area_off = m->res_off + (size_t)nprocs * m->ring_bytes;
    m->area_bytes = round_up(area_bytes, pg); /* a power of two too */
    size_t heap_off = m->area_off + (size_t)nprocs * area_bytes;
    m->size = heap_off + heap_size;
    m->heap_size = heap_size;
    uint32_t top = 0;
    while (((size_t)1 << (top + MP_MIN_ORDER)) < heap_size)
        top++;
    m->orders = top + 1;
    void *base = mmap(NULL, m->size, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return -errno;
    m->base = base;
    m->heap = m->base + heap_off;
    return 0;
}

void sl__mp_unmap(struct mp_layout *m)
{
    if (m->base)
        munmap(m->base, m->size);
    m->base = NULL;
}

/* Everything of the other slots out of reach, this slot's task slots read
 * only. mprotect on a shared mapping changes this process's view only. */
void sl__mp_protect(const struct mp_layout *m, uint32_t slot)
{
    char *b = m->base;
    size_t rb = m->ring_bytes, n = m->nprocs;
    mprotect(b + m->ctl_off, n * m->page, PROT_NONE);
    mprotect(mp_wctl(m, slot), m->page, PROT_READ | PROT_WRITE);
    mprotect(b + m->task_off, n * rb, PROT_NONE);
    mprotect(mp_task_slots(m, slot), rb, PROT_READ);
    mprotect(b + m->res_off, n * rb, PROT_NONE);
    mprotect(mp_result_slots(m, slot), rb, PROT_READ | PROT_WRITE);
    mprotect(b + m->area_off, n * m->area_bytes, PROT_NONE);
    mprotect(mp_area(m, slot), m->area_bytes, PROT_READ | PROT_WRITE);
}

void sl__mp_ring_view(struct mp_ring *r, _Atomic uint64_t *mine,
                      _Atomic uint64_t *theirs, char *slots, uint32_t mask)
{
    r->mine = mine;
    r->theirs = theirs;
    r->slots = slots;
    r->mask = mask;
    r->bad = false;
    r->pos = atomic_load_explicit(mine, memory_order_relaxed);
    r->seen = atomic_load_explicit(theirs, memory_order_acquire);
}

/* ---- doorbells ----------------------------------------------------------- */

void sl__mp_bell_ring(int fd)
{
    uint64_t one = 1;
    ssize_t r = write(fd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is full, the bell rings anyway */
}

void sl__mp_bell_drain(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;
}

/* ---- the heap ------------------------------------------------------------ */

int sl__mp_heap_init(struct mp_heap *h, char *base, uint32_t orders)
{
    memset(h, 0, sizeof *h);
    size_t units = (size_t)1 << (orders - 1);
    /* calloc of this size maps zero pages: only what is used is touched. */
    h->meta = calloc(units, 1);
    h->next = calloc(units, sizeof *h->next);
    h->prev = calloc(units, sizeof *h->prev);
    if (!h->meta || !h->next || !h->prev) {
        sl__mp_heap_fini(h);
        return SL_ENOMEM;
    }
    pthread_mutex_init(&h->lock, NULL);
    h->base = base;
    h->orders = orders;
    h->head[orders - 1] = 1; /* one free block: the whole heap */
    h->meta[0] = (uint8_t)(FREE_BIT | (orders - 1));
    return 0;
}

void sl__mp_heap_fini(struct mp_heap *h)
{
    if (h->base)
        pthread_mutex_destroy(&h->lock);
    free(h->meta);
    free(h->next);
    free(h->prev);
    memset(h, 0, sizeof *h);
}

static void list_remove(struct mp_heap *h, uint32_t k, uint32_t u)
{
    uint32_t n = h->next[u], p = h->prev[u];
    if (p)
        h->next[p - 1] = n;
    else
        h->head[k] = n;
    if (n)
        h->prev[n - 1] = p;
}

static void list_push(struct mp_heap *h, uint32_t k, uint32_t u)
{
    uint32_t n = h->head[k];
    h->next[u] = n;
    h->prev[u] = 0;
    if (n)
        h->prev[n - 1] = u + 1;
    h->head[k] = u + 1;
    h->meta[u] = (uint8_t)(FREE_BIT | k);
}

uint64_t sl__mp_heap_alloc(struct mp_heap *h, size_t n, int kind)
{
    uint32_t k = 0;
    while (k < h->orders && ((size_t)1 << (k + MP_MIN_ORDER)) < n)
        k++;
    if (k >= h->orders)
        return 0;
    pthread_mutex_lock(&h->lock);
    uint32_t j = k;
    while (j < h->orders && !h->head[j])
        j++;
    if (j == h->orders) {
        pthread_mutex_unlock(&h->lock);
        return 0;
    }
    uint32_t u = h->head[j] - 1;
    list_remove(h, j, u);
    while (j > k) { /* split: the upper half goes back, one order down */
        j--;
        list_push(h, j, u + ((uint32_t)1 << j));
    }
    h->meta[u] = (uint8_t)(USED_BIT | (kind << KIND_SHIFT) | k);
    h->in_use += (size_t)1 << (k + MP_MIN_ORDER);
    pthread_mutex_unlock(&h->lock);
    return ((uint64_t)u << MP_MIN_ORDER) + 1;
}

void sl__mp_heap_free(struct mp_heap *h, uint64_t off1)
{
    if (!off1)
        return;
    uint32_t u = (uint32_t)((off1 - 1) >> MP_MIN_ORDER);
    pthread_mutex_lock(&h->lock);
    uint8_t m = h->meta[u];
    SL__ASSERT(m & USED_BIT); /* the parent frees only what it handed out */
    uint32_t k = m & ORDER_MASK;
    h->meta[u] = 0;
    h->in_use -= (size_t)1 << (k + MP_MIN_ORDER);
    while (k + 1 < h->orders) {
        uint32_t buddy = u ^ ((uint32_t)1 << k);
        if (h->meta[buddy] != (uint8_t)(FREE_BIT | k))
            break;
        list_remove(h, k, buddy);
        h->meta[buddy] = 0;
        u = u < buddy ? u : buddy;
        k++;
    }
    list_push(h, k, u);
    pthread_mutex_unlock(&h->lock);
}

size_t sl__mp_heap_block(struct mp_heap *h, uint64_t off1, int kind)
{
    size_t units = (size_t)1 << (h->orders - 1);
    if (!off1 || ((off1 - 1) & (((uint64_t)1 << MP_MIN_ORDER) - 1)) ||
        ((off1 - 1) >> MP_MIN_ORDER) >= units)
        return 0;
    uint32_t u = (uint32_t)((off1 - 1) >> MP_MIN_ORDER);
    pthread_mutex_lock(&h->lock);
    uint8_t m = h->meta[u];
    pthread_mutex_unlock(&h->lock);
    if (!(m & USED_BIT) || ((m >> KIND_SHIFT) & 1) != kind)
        return 0;
    return (size_t)1 << ((m & ORDER_MASK) + MP_MIN_ORDER);
}

size_t sl__mp_heap_in_use(struct mp_heap *h)
{
    pthread_mutex_lock(&h->lock);
    size_t n = h->in_use;
    pthread_mutex_unlock(&h->lock);
    return n;
}
