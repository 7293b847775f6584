/* shm.c - the pool's shared mapping: layout, the buddy allocator, bells.
 *
 * The mapping is anonymous and MAP_SHARED, made before the first fork: the
 * workers inherit it at the same address (so pointers into it mean the same
 * in every process), and it disappears with the last process that maps it -
 * nothing in /dev/shm or anywhere else, whatever way the processes end.
 *
 * The heap is a buddy allocator (the seeds' mmap cache used one too): blocks
 * of 2^k bytes, k >= 6, a free list per order threaded through the free
 * blocks themselves, and one metadata byte per 64-byte unit that says
 * "a free block of order k starts here". Freeing merges a block with its
 * buddy while the buddy is free and of the same order. One spin lock guards
 * it; allocations are rare (payloads larger than a ring slot) and short.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mp/shm.h"

#define FREE_BIT 0x80

void mp_lock(_Atomic uint8_t *l)
{
    for (unsigned i = 0;; i++) {
        if (!atomic_exchange_explicit(l, 1, memory_order_acquire))
            return;
        while (atomic_load_explicit(l, memory_order_relaxed)) {
            if (++i < 256)
                sl_arch_relax();
            else
                sched_yield(); /* the holder may be descheduled */
        }
    }
}

void mp_ring_bell(int fd)
{
    uint64_t one = 1;
    ssize_t r = write(fd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is full, the bell rings anyway */
}

void mp_drain_bell(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;
}

static size_t round_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

struct mp_shared *mp_shared_new(uint32_t nprocs, uint32_t depth,
                                size_t heap_size)
{
    /* Each part starts on a page of its own (4 KiB, or 16 or 64 KiB on
     * some aarch64 kernels). */
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t ring = round_up(sizeof(struct mp_ring) + (size_t)depth * MP_SLOT,
                           pg);
    size_t hdr = round_up(sizeof(struct mp_shared) +
                              nprocs * sizeof(struct mp_wslot), pg);
    size_t nunits = heap_size >> MP_MIN_ORDER;
    size_t meta = round_up(nunits, pg);
    size_t size = hdr + 2 * ring * nprocs + meta + heap_size;
    struct mp_shared *s = mmap(NULL, size, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED)
        return NULL;
    s->nprocs = nprocs;
    s->depth = depth;
    s->size = size;
    size_t off = hdr;
    for (uint32_t i = 0; i < nprocs; i++) {
        struct mp_wslot *w = &s->w[i];
        w->evfd = w->bell = -1;
        w->task_ring = off;
        ((struct mp_ring *)mp_at(s, off))->mask = depth - 1;
        off += ring;
        w->result_ring = off;
        ((struct mp_ring *)mp_at(s, off))->mask = depth - 1;
        off += ring;
    }
    struct mp_heap *h = &s->heap;
    h->meta = off;
    h->base = off + meta;
    uint32_t top = 0;
    while (((size_t)1 << (top + MP_MIN_ORDER)) < heap_size)
        top++;
    h->orders = top + 1;
    /* One free block: the whole heap. */
    h->free_head[top] = 1;
    uint64_t *link = mp_heap_ptr(s, 1);
    link[0] = link[1] = 0;
    ((uint8_t *)mp_at(s, h->meta))[0] = (uint8_t)(FREE_BIT | top);
    return s;
}

void mp_shared_free(struct mp_shared *s)
{
    munmap(s, s->size);
}

/* Free blocks are linked through their first two words: next and prev, as
 * offset + 1 (0: none). */
static uint64_t *links(struct mp_shared *s, uint64_t off1)
{
    return mp_heap_ptr(s, off1);
}

static uint8_t *meta_of(struct mp_shared *s, uint64_t off1)
{
    return (uint8_t *)mp_at(s, s->heap.meta) + ((off1 - 1) >> MP_MIN_ORDER);
}

static void list_remove(struct mp_shared *s, uint32_t k, uint64_t off1)
{
    uint64_t *l = links(s, off1);
    if (l[1])
        links(s, l[1])[0] = l[0];
    else
        s->heap.free_head[k] = l[0];
    if (l[0])
        links(s, l[0])[1] = l[1];
}

static void list_push(struct mp_shared *s, uint32_t k, uint64_t off1)
{
    uint64_t *l = links(s, off1);
    l[0] = s->heap.free_head[k];
    l[1] = 0;
    if (l[0])
        links(s, l[0])[1] = off1;
    s->heap.free_head[k] = off1;
    *meta_of(s, off1) = (uint8_t)(FREE_BIT | k);
}

uint64_t mp_heap_alloc(struct mp_shared *s, size_t n)
{
    struct mp_heap *h = &s->heap;
    uint32_t k = 0;
    while (((size_t)1 << (k + MP_MIN_ORDER)) < n)
        k++;
    if (k >= h->orders)
        return 0;
    mp_lock(&h->lock);
    uint32_t j = k;
    while (j < h->orders && !h->free_head[j])
        j++;
    if (j == h->orders) {
        mp_unlock(&h->lock);
        return 0;
    }
    uint64_t off1 = h->free_head[j];
    list_remove(s, j, off1);
    while (j > k) { /* split: the upper half goes back, one order down */
        j--;
        list_push(s, j, off1 + ((uint64_t)1 << (j + MP_MIN_ORDER)));
    }
    *meta_of(s, off1) = (uint8_t)k;
    h->in_use += (size_t)1 << (k + MP_MIN_ORDER);
    mp_unlock(&h->lock);
    return off1;
}

void mp_heap_free(struct mp_shared *s, uint64_t off1)
{
    if (!off1)
        return;
    struct mp_heap *h = &s->heap;
    mp_lock(&h->lock);
    uint32_t k = *meta_of(s, off1) & 0x7f;
    h->in_use -= (size_t)1 << (k + MP_MIN_ORDER);
    uint64_t off = off1 - 1;
    while (k + 1 < h->orders) {
        uint64_t buddy = off ^ ((uint64_t)1 << (k + MP_MIN_ORDER));
        if (*meta_of(s, buddy + 1) != (uint8_t)(FREE_BIT | k))
            break;
        list_remove(s, k, buddy + 1);
        *meta_of(s, buddy + 1) = 0;
        off = off < buddy ? off : buddy;
        k++;
    }
    *meta_of(s, off1) = 0;
    list_push(s, k, off + 1);
    mp_unlock(&h->lock);
}
