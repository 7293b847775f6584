/* test_pool_fault.c - fault injection against the process pool: workers
 * killed at random moments from outside and from inside their tasks (before,
 * during and after writing a result too large for its slot, mid-copy on an
 * sl_mpchan on either side), tasks that crash, lie
 * about sizes, scribble over shared memory or fork. What must hold in
 * every case: no hang (each test runs under alarm()), no crash of the
 * parent, every future ends with its right result or a documented error,
 * terminate and free return, and nothing is left behind: descriptors,
 * mappings, child processes, heap blocks (the heap's own count, read
 * through the private header). Random, seeded per test (the seed is
 * printed), bounded: about 10 s in all on 2 CPUs, smaller under ASan and
 * valgrind.
 * Not under TSan: it forks a running runtime. */
#define _GNU_SOURCE
#include "test_util.h"
#include "pool_util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mp/mp.h" /* the heap's count of bytes in use */

static sl_pool *pool;

/* How much of each storm: natively, under ASan (a crash report takes a
 * good part of a second there), under valgrind (everything is 20-50x
 * slower). Each test stays well within the harness's 60 s. */
#if defined(__SANITIZE_ADDRESS__)
#define FAULT_ASAN 1
#else
#define FAULT_ASAN 0
#endif
#define COUNT(native, asan, valgrind)                                        \
    (tu_under_valgrind() ? (valgrind) : FAULT_ASAN ? (asan) : (native))
#define LIMIT_S 50 /* alarm(): no hang, whatever else happens */

/* ---- randomness, seeded per test --------------------------------------- */

static uint64_t rng;

static void seed(const char *test)
{
    rng = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
    const char *s = getenv("SL_FAULT_SEED");
    if (s && *s)
        rng = strtoull(s, NULL, 0);
    printf("(%s: SL_FAULT_SEED=%llu) ", test, (unsigned long long)rng);
    fflush(stdout);
    rng = rng * 2 + 1;
}

static uint64_t rnd(uint64_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return n ? rng % n : 0;
}

/* ---- what is left behind ------------------------------------------------- */

static int count_shared_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, " rw-s ") != NULL || strstr(line, " r--s ") != NULL;
    if (f)
        fclose(f);
    return n;
}

struct before {
    int fds, maps;
};

static struct before snapshot(void)
{
    return (struct before){pu_count_fds(), count_shared_maps()};
}

static void nothing_left(struct before b)
{
    TU_EQ(pu_count_fds(), b.fds);
    TU_EQ(count_shared_maps(), b.maps);
    TU_EQ(waitpid(-1, NULL, WNOHANG), -1); /* no child process left */
    TU_EQ(errno, ECHILD);
}

/* Bytes of the pool's heap handed out (0 once nothing is in flight and no
 * mpchan lives: every block came back). */
static size_t heap_in_use(void)
{
    sl_pool *p = sl__mp_pool_lookup(pool);
    return p ? sl__mp_heap_in_use(&p->heap) : (size_t)-1;
}

static void new_pool(int procs, size_t max_result, size_t shm)
{
    sl_pool_config c;
    sl_pool_config_init(&c);
    c.processes = procs;
    c.max_result_size = max_result;
    c.shm_size = shm;
    TU_EQ(sl_pool_new(&pool, &c), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
}

static void page_new(void);
static void page_free(void);
static void nothing_left(struct before b);

/* How every test starts: its seed, its alarm, what exists now (to find
 * nothing more at the end), the shared page, and a pool (procs > 0). */
static struct before begin(const char *test, int procs, size_t max_result,
                           size_t shm)
{
    seed(test);
    alarm(LIMIT_S);
    struct before b = snapshot();
    page_new();
    if (procs)
        new_pool(procs, max_result, shm);
    return b;
}

/* And ends: the pool (if any) closed and joined, freed, nothing left. */
static void end(struct before b)
{
    if (pool) {
        TU_EQ(sl_pool_close(pool), 0);
        TU_EQ(sl_pool_join(pool), 0);
        sl_pool_free(pool);
        pool = NULL;
    }
    page_free();
    nothing_left(b);
    alarm(0);
}

/* A page every worker shares with the test: page[0] is the test's own,
 * page[1 + slot] the pid of the worker in that slot as its last task saw
 * it, page[64 ...] pids of helpers forked by tasks. */
static volatile int *page;

static void page_new(void)
{
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CU_ASSERT_FATAL(m != MAP_FAILED);
    memset(m, 0, 4096);
    page = m;
}

static void page_free(void)
{
    for (int i = 64; i < 1024; i++) /* helpers still alive: ours to end */
        if (page[i] > 0)
            kill(page[i], SIGKILL);
    munmap((void *)page, 4096);
    page = NULL;
}

/* ---- the task: what it does is in its input ---------------------------- */

enum {
    OP_ANSWER,      /* answer size bytes, (seed + i) & 0xff              */
    OP_DIE_BEFORE,  /* SIGKILL itself before writing anything            */
    OP_DIE_DURING,  /* write half the answer, then SIGKILL itself        */
    OP_DIE_LATER,   /* a thread SIGKILLs the process delay_us from now,
                       while the answer goes out (or after)             */
    OP_CRASH,       /* write through a null pointer                      */
    OP_EXIT,        /* _exit(0) mid-task                                 */
    OP_LIE,         /* answer, and say it is lie bytes longer than room  */
    OP_SCRIBBLE,    /* write random bytes over the shared mappings it
                       can write (not the test's page), then answer, or
                       die when delay_us is odd                          */
    OP_FORK_DIE,    /* fork a helper that lingers, then SIGKILL itself   */
    OP_FORK_ANSWER, /* fork; both copies return from the task           */
    OP_SEND,        /* send size bytes on ch; with delay_us, a thread
                       SIGKILLs the process that long into the send, or
                       after it (the task waits for it)                  */
    OP_RECEIVE,     /* receive on ch, answer its length and check (with
                       delay_us: killed as a sender would be)           */
    OP_COUNT
};

struct op {
    uint32_t check; /* sum of the rest: a spoilt input is seen as such */
    uint32_t kind;
    uint32_t seed;
    uint32_t size;
    uint32_t delay_us;
    uint32_t lie;
    sl_mpchan *ch;
    uint64_t scribble_seed;
    char pad[]; /* up to the input's length: makes it heap-backed */
};

static uint32_t op_sum(const struct op *o)
{
    const unsigned char *b = (const unsigned char *)o + sizeof o->check;
    uint32_t s = 0x9e3779b9;
    for (size_t i = 0; i < sizeof *o - sizeof o->check; i++)
        s = s * 31 + b[i];
    return s;
}

static uint64_t xs(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random bytes at random places of every shared mapping this process may
 * write, the test's page aside. */
static void scribble(uint64_t s)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    s |= 1;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 ||
            strcmp(perms, "rw-s") != 0 || lo == (unsigned long)page)
            continue;
        int writes = (int)(xs(&s) % 64);
        for (int k = 0; k < writes; k++) {
            size_t span = hi - lo;
            /* mostly near the start (headers, counters, first blocks) */
            size_t at = (xs(&s) & 1) ? xs(&s) % (span < 8192 ? span : 8192)
                                     : xs(&s) % span;
            size_t len = 1 + xs(&s) % 64;
            if (at + len > span)
                len = span - at;
            for (size_t i = 0; i < len; i++)
                ((volatile unsigned char *)lo)[at + i] = (unsigned char)xs(&s);
        }
    }
    if (f)
        fclose(f);
}

#define E_SPOILT (-EBADMSG) /* the task's own status: its input was spoilt */

static int answer(const struct op *o, void *out, size_t *out_len)
{
    if (o->size > *out_len)
        return SL_EINVAL;
    for (size_t i = 0; i < o->size; i++)
        ((unsigned char *)out)[i] = pu_byte(o->seed, i);
    *out_len = o->size;
    return 0;
}

static int t_op(const void *in, size_t n, void *out, size_t *out_len)
{
    struct op o;
    if (n < sizeof o)
        return E_SPOILT;
    memcpy(&o, in, sizeof o);
    if (o.check != op_sum(&o) || o.kind >= OP_COUNT)
        return E_SPOILT;
    int slot = sl_pool_worker_index();
    if (page && slot >= 0 && slot < 63)
        page[1 + slot] = getpid();
    switch (o.kind) {
    case OP_DIE_BEFORE:
        kill(getpid(), SIGKILL);
        break;
    case OP_DIE_DURING:
        memset(out, 0x77, o.size / 2 < *out_len ? o.size / 2 : *out_len);
        kill(getpid(), SIGKILL);
        break;
    case OP_DIE_LATER:
        pu_die_after_us(o.delay_us);
        break;
    case OP_CRASH: {
        volatile int *volatile nowhere = (volatile int *)(uintptr_t)8;
        *nowhere = 1;
        break;
    }
    case OP_EXIT:
        _exit(0);
    case OP_LIE: {
        int rc = answer(&o, out, out_len);
        *out_len += o.lie ? o.lie : (size_t)1 << 40;
        return rc;
    }
    case OP_SCRIBBLE:
        scribble(o.scribble_seed);
        if (o.delay_us & 1)
            kill(getpid(), SIGKILL);
        break;
    case OP_FORK_DIE: {
        pid_t h = fork();
        if (h == 0) {
            usleep(60 * 1000 * 1000); /* the test ends it sooner */
            _exit(0);
        }
        for (int i = 64; h > 0 && i < 1024; i++)
            if (__sync_bool_compare_and_swap(&page[i], 0, h))
                break;
        kill(getpid(), SIGKILL);
        break;
    }
    case OP_FORK_ANSWER: {
        pid_t h = fork();
        if (h > 0)
            waitpid(h, NULL, 0); /* the copy returned into the pool, and
                                    must have ended there at once */
        break;
    }
    case OP_SEND: {
        unsigned char *msg = pu_message(o.seed, o.size);
        if (o.delay_us)
            pu_die_after_us(o.delay_us);
        int rc = sl_mpchan_send(o.ch, msg, o.size);
        free(msg);
        while (o.delay_us) /* dies in this task, whenever the kill comes */
            pause();
        *out_len = 0;
        return rc;
    }
    case OP_RECEIVE: {
        unsigned char *buf = malloc(o.size);
        size_t len = o.size;
        if (o.delay_us)
            pu_die_after_us(o.delay_us);
        int rc = sl_mpchan_receive(o.ch, buf, &len);
        uint64_t ans[2] = {len, rc == 0 && pu_is_message(o.seed, buf, len)};
        free(buf);
        while (o.delay_us)
            pause();
        memcpy(out, ans, sizeof ans);
        *out_len = sizeof ans;
        return rc;
    }
    }
    return answer(&o, out, out_len);
}

/* Submit op (its input padded to in_len bytes: over a ring slot, it goes
 * through the heap). */
static int submit(struct op o, size_t in_len, sl_future **f)
{
    char buf[2048];
    if (in_len < sizeof o)
        in_len = sizeof o;
    if (in_len > sizeof buf)
        in_len = sizeof buf;
    memset(buf, 0xab, sizeof buf);
    o.check = op_sum(&o);
    memcpy(buf, &o, sizeof o);
    return sl_pool_submit(pool, t_op, buf, in_len, f);
}

/* A future's end, checked: the right answer for what the op was, or one
 * of the errors it may end with. Frees it. 1 if it got the answer. */
static int check_answer(sl_future *f, struct op o, int extra_ok)
{
    unsigned char *buf = malloc(o.size ? o.size : 1);
    size_t len = o.size;
    int rc = sl_future_wait_timeout(f, buf, &len, TU_SIZE(30000, 120000));
    sl_future_free(f);
    int got = 0;
    if (rc == 0) {
        size_t bad = len != o.size || !pu_is_message(o.seed, buf, len);
        if (!TU_EQ(bad, 0))
            printf("op %u size %u: wrong answer\n", o.kind, o.size);
        got = 1;
    } else if (rc != SL_EWORKERDIED && rc != extra_ok) {
        TU_EQ(rc, SL_EWORKERDIED); /* shows what came instead */
        printf("op %u size %u delay %u\n", o.kind, o.size, o.delay_us);
    }
    free(buf);
    return got;
}

/* An answer's size: inline in a slot, or through the result area, up to
 * max. */
static uint32_t pick_size(uint32_t max)
{
    static const uint32_t sizes[] = {0, 8, 200, 512, 4096, 65536, 1 << 20};
    uint32_t s;
    do
        s = sizes[rnd(sizeof sizes / sizeof *sizes)];
    while (s > max);
    return s;
}

/* The pool can still do everything: answers inline, through the result
 * area, with an input through the heap. (A kill an earlier task set off may
 * still come and take a try: a few are allowed.) */
static void pool_still_works(void)
{
    for (int k = 0; k < 3; k++) {
        struct op o = {.kind = OP_ANSWER, .seed = (uint32_t)rnd(1000),
                       .size = (uint32_t[]){16, 5000, 60000}[k]};
        int got = 0;
        for (int tries = 0; tries < 8 && !got; tries++) {
            sl_future *f;
            TU_EQ(submit(o, k == 1 ? 1500 : 0, &f), 0);
            got = check_answer(f, o, 0);
        }
        TU_EQ(got, 1);
    }
}

/* ---- the tests -------------------------------------------------------------- */

struct killer {
    int kills, max_kills;
    bool stop;
};

/* Kill a worker the test has seen, chosen at random, now and then. Only a
 * child of ours (it may have been replaced: then it is a zombie or gone,
 * and its pid is not reused while it is still our child). */
static void killer(void *arg)
{
    struct killer *k = arg;
    while (!k->stop && k->kills < k->max_kills) {
        sl_sleep_ms(1 + (int64_t)rnd(TU_SIZE(8, 60)));
        int pid = page[1 + rnd(4)];
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = pid > 0 ? fopen(path, "r") : NULL;
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        int ppid = 0;
        char state = 0;
        if (p && sscanf(p + 2, "%c %d", &state, &ppid) == 2 &&
            ppid == getpid() && state != 'Z' && kill(pid, SIGKILL) == 0)
            k->kills++;
    }
}

struct load {
    int n, got, in_heap_every;
    bool done;
};

static void submitter(void *arg)
{
    struct load *l = arg;
    for (int i = 0; i < l->n; i++) {
        struct op o = {.kind = OP_ANSWER, .seed = (uint32_t)rnd(1u << 30),
                       .size = rnd(4) ? 512 : pick_size(1 << 20)};
        sl_future *f;
        if (!TU_EQ(submit(o, i % l->in_heap_every ? 0 : 1024, &f), 0))
            break;
        l->got += check_answer(f, o, 0);
    }
    l->done = true;
}

/* Finding 2's storm: 4 workers, results through the result area, one SIGKILL from
 * outside every few milliseconds: every task ends right or with
 * SL_EWORKERDIED, and every heap block comes back. */
TU_TEST(random_kills_from_outside)
{
    struct before b = begin(__func__, 4, 1 << 20, 16 << 20);
    struct killer k = {.max_kills = COUNT(200, 40, 6)};
    struct load l[4];
    for (int i = 0; i < 4; i++) {
        l[i] = (struct load){.n = COUNT(2000, 300, 40),
                            .in_heap_every = 3};
        sl_spawn(submitter, &l[i]);
    }
    sl_tasklet *kt = sl_spawn(killer, &k);
    sl_tasklet_ref(kt);
    for (int i = 0; i < 4; i++)
        while (!l[i].done)
            sl_sleep_ms(10);
    k.stop = true;
    while (sl_tasklet_alive(kt))
        sl_sleep_ms(5);
    sl_tasklet_unref(kt);
    TU_EQ(sl_run(), 0);
    int got = 0;
    for (int i = 0; i < 4; i++)
        got += l[i].got;
    printf("(%d kills, %d of %d answered) ", k.kills, got, 4 * l[0].n);
    CU_ASSERT(k.kills > 0);
    CU_ASSERT(got > 0);
    TU_EQ(heap_in_use(), 0);
    pool_still_works();
    TU_EQ(heap_in_use(), 0);
    end(b);
}

/* Deaths at every phase from inside: before and while writing the answer,
 * a thread's SIGKILL at a random moment (in the task, while the answer is
 * copied out or waits for its heap block, or after it is out), crashes,
 * exits; between answers. */
TU_TEST(kills_from_inside_at_every_phase)
{
    struct before b = begin(__func__, 2, 1 << 20, 8 << 20);
    enum { BATCH = 6 };
    int rounds = COUNT(200, 20, 6), died = 0, answered = 0;
    for (int r = 0; r < rounds; r++) {
        sl_future *f[BATCH];
        struct op o[BATCH];
        for (int i = 0; i < BATCH; i++) {
            static const int kinds[] = {OP_ANSWER, OP_ANSWER, OP_DIE_BEFORE,
                                        OP_DIE_DURING, OP_DIE_LATER,
                                        OP_DIE_LATER, OP_DIE_LATER,
                                        OP_EXIT};
            /* a crash now and then (ASan reports each at length) */
            o[i] = (struct op){.kind = rnd(24) ? (uint32_t)kinds[rnd(8)]
                                               : OP_CRASH,
                               .seed = (uint32_t)rnd(1u << 30),
                               .size = pick_size(1 << 20),
                               .delay_us = (uint32_t)rnd(3000)};
            TU_EQ(submit(o[i], rnd(2) ? 1024 : 0, &f[i]), 0);
        }
        for (int i = 0; i < BATCH; i++) {
            int got = check_answer(f[i], o[i], 0);
            answered += got;
            died += !got;
            /* An answer only comes from a task that was to give one, or
             * from one killed after its answer was out. */
            if (got)
                CU_ASSERT(o[i].kind == OP_ANSWER || o[i].kind == OP_DIE_LATER);
        }
        TU_EQ(heap_in_use(), 0);
    }
    printf("(%d answered, %d died) ", answered, died);
    pool_still_works();
    TU_EQ(heap_in_use(), 0);
    end(b);
}

/* The receiving side of a pu_send: rc is -EBADMSG for a wrong message. */
static void parent_receive(void *arg)
{
    struct pu_send *s = arg;
    unsigned char *buf = malloc(s->len);
    size_t len = s->len;
    s->rc = sl_mpchan_receive(s->ch, buf, &len);
    if (s->rc == 0 && (len != s->len || !pu_is_message(s->seed, buf, len)))
        s->rc = -EBADMSG;
    free(buf);
    s->done = true;
}

/* A worker dies mid-copy on an mpchan, as sender or receiver, facing a
 * worker or the parent: the other side gets the whole message or none,
 * close wakes whoever still waits, the channel's block comes back. */
TU_TEST(kills_mid_mpchan_copy_either_side)
{
    struct before b = begin(__func__, 2, 64 << 10, 64 << 20);
    int rounds = COUNT(60, 16, 4);
    for (int r = 0; r < rounds; r++) {
        uint32_t size = (uint32_t)(1 + rnd(TU_SIZE(8 << 20, 1 << 20)));
        sl_mpchan *ch;
        TU_EQ(sl_mpchan_new(pool, size, &ch), 0);
        uint32_t sd = (uint32_t)rnd(1u << 30);
        /* About as long as the copy takes (1 GiB/s and more), so that
         * the kill lands before, in or after it. */
        uint32_t delay = 1 + (uint32_t)rnd(size / TU_SIZE(1024, 64));
        bool worker_sends = rnd(2), against_parent = rnd(2);
        struct op send = {.kind = OP_SEND, .seed = sd, .size = size, .ch = ch,
                          .delay_us = worker_sends ? delay : 0};
        struct op recv = {.kind = OP_RECEIVE, .seed = sd, .size = size,
                          .ch = ch, .delay_us = worker_sends ? 0 : delay};
        sl_future *dying, *other = NULL;
        struct pu_send ps = {.ch = ch, .len = size, .seed = sd, .rc = 1};
        sl_tasklet *pt = NULL;
        if (against_parent) {
            pt = sl_spawn(worker_sends ? parent_receive : pu_sender, &ps);
            sl_tasklet_ref(pt);
        } else {
            TU_EQ(submit(worker_sends ? recv : send, 0, &other), 0);
        }
        /* A receiver that is to die starts once the message is in, so
         * that its death can come mid-copy. */
        if (!worker_sends)
            sl_sleep_ms(5 + size / TU_SIZE(200000, 10000));
        TU_EQ(submit(worker_sends ? send : recv, 0, &dying), 0);
        uint64_t ans[2] = {0, 0};
        size_t alen = sizeof ans;
        TU_EQ(sl_future_wait_timeout(dying, ans, &alen,
                                     TU_SIZE(30000, 120000)),
              SL_EWORKERDIED);
        sl_future_free(dying);
        TU_EQ(sl_mpchan_close(ch), 0); /* wakes the other side if it waits */
        if (pt) {
            for (int i = 0; i < 20000 && !ps.done; i++)
                sl_sleep_ms(1);
            TU_EQ(ps.done, true);
            CU_ASSERT(ps.rc == 0 || ps.rc == SL_ECLOSED);
            sl_tasklet_unref(pt);
        } else {
            alen = sizeof ans;
            int rc = sl_future_wait_timeout(other, ans, &alen,
                                        TU_SIZE(30000, 120000));
            sl_future_free(other);
            if (rc != 0 && rc != SL_ECLOSED) {
                TU_EQ(rc, SL_ECLOSED);
                printf("round %d: size %u, worker sends %d, delay %u\n", r,
                       size, worker_sends, delay);
            }
            if (rc == 0 && worker_sends) { /* the receiver got it all */
                TU_EQ(ans[0], size);
                TU_EQ(ans[1], 1);
            }
        }
        TU_EQ(sl_mpchan_free(ch), 0);
        TU_EQ(heap_in_use(), 0);
    }
    pool_still_works();
    end(b);
}

/* Items that say they wrote more than they were given. */
static int t_item_lies(const void *in, size_t n, void *out, size_t *out_len)
{
    uint32_t v;
    (void)n;
    memcpy(&v, in, sizeof v);
    size_t cap = *out_len;
    memset(out, (int)(v & 0xff), cap);
    if (v % 3 == 0)
        *out_len = cap + 1 + v % 1000;
    else if (v % 3 == 1)
        *out_len = SIZE_MAX - v;
    return 0;
}

static int lie_errors;

static void on_lie(void *arg, int status)
{
    (void)arg;
    lie_errors += status == -EOVERFLOW;
}

/* Tasks and map items that lie about their sizes: -EOVERFLOW each, never
 * a byte past the caller's buffers. */
TU_TEST(tasks_that_lie_about_sizes)
{
    struct before b = begin(__func__, 2, 4096, 1 << 20);
    int n = COUNT(200, 50, 20);
    lie_errors = 0;
    for (int i = 0; i < n; i++) {
        struct op o = {.kind = OP_LIE, .seed = (uint32_t)i,
                       .size = (uint32_t)rnd(4097),
                       .lie = (uint32_t)rnd(3) * (uint32_t)rnd(1u << 31)};
        sl_future *f;
        TU_EQ(submit(o, rnd(2) ? 1024 : 0, &f), 0);
        size_t len = 0;
        TU_EQ(sl_future_wait_timeout(f, NULL, &len, 30000), -EOVERFLOW);
        TU_EQ(len, 0);
        sl_future_free(f);
        o.check = op_sum(&o);
        TU_EQ(sl_pool_apply_async(pool, t_op, &o, sizeof o, NULL, on_lie,
                                  NULL),
              0);
    }
    /* Maps and imap: items of out_size bytes with a guard after them. */
    enum { ITEMS = 300, OUT = 24 };
    uint32_t in[ITEMS];
    for (int i = 0; i < ITEMS; i++)
        in[i] = (uint32_t)rnd(1u << 30);
    struct {
        char out[ITEMS][OUT];
        char guard[4096];
    } *o = malloc(sizeof *o);
    memset(o, 0xee, sizeof *o);
    int st[ITEMS], first = 0;
    for (int i = ITEMS - 1; i >= 0; i--)
        if (in[i] % 3 != 2)
            first = -EOVERFLOW; /* a lying item's status */
    TU_EQ(sl_pool_map(pool, t_item_lies, in, sizeof *in, ITEMS, o->out, OUT,
                      1 + rnd(40), st),
          first);
    int wrong = 0;
    for (int i = 0; i < ITEMS; i++) {
        bool lied = in[i] % 3 != 2;
        wrong += st[i] != (lied ? -EOVERFLOW : 0);
        wrong += (unsigned char)o->out[i][0] !=
                 (lied ? 0xee : (unsigned char)(in[i] & 0xff));
    }
    TU_EQ(wrong, 0);
    size_t spoilt = 0;
    for (size_t i = 0; i < sizeof o->guard; i++)
        spoilt += (unsigned char)o->guard[i] != 0xee;
    TU_EQ(spoilt, 0);
    sl_pool_iter *it;
    TU_EQ(sl_pool_imap_unordered(pool, t_item_lies, in, sizeof *in, ITEMS,
                                 OUT, 1 + rnd(40), &it),
          0);
    size_t idx, len;
    int rc, seen = 0;
    wrong = 0;
    while ((rc = sl_pool_iter_next(it, &idx, o->out[0], &len)) !=
           SL_ECLOSED) {
        seen++;
        bool lied = idx < ITEMS && in[idx] % 3 != 2;
        wrong += idx >= ITEMS || rc != (lied ? -EOVERFLOW : 0) ||
                 len != (lied ? 0 : OUT);
    }
    TU_EQ(seen, ITEMS);
    TU_EQ(wrong, 0);
    spoilt = 0;
    for (size_t i = 0; i < sizeof o->guard; i++)
        spoilt += (unsigned char)o->guard[i] != 0xee;
    TU_EQ(spoilt, 0);
    sl_pool_iter_free(it);
    free(o);
    TU_EQ(sl_pool_close(pool), 0);
    TU_EQ(sl_pool_join(pool), 0);
    TU_EQ(sl_run(), 0); /* the error callbacks */
    TU_EQ(lie_errors, n);
    TU_EQ(heap_in_use(), 0);
    end(b);
}

/* Tasks that write random bytes over every shared mapping they can reach,
 * then answer or die, among tasks that answer: the parent stays up, every
 * future ends (right, spoilt, or with a documented error), join and free
 * return. What a scribbler spoils in the heap may be another task's input
 * (it then fails with its own E_SPOILT) or result (a wrong answer: the one
 * thing the pool cannot tell). */
TU_TEST(tasks_that_scribble_over_shared_memory)
{
    struct before b = begin(__func__, 3, 64 << 10, 4 << 20);
    int rounds = COUNT(120, 20, 4), ends[4] = {0, 0, 0, 0};
    for (int r = 0; r < rounds; r++) {
        enum { BATCH = 8 };
        sl_future *f[BATCH];
        struct op o[BATCH];
        for (int i = 0; i < BATCH; i++) {
            o[i] = (struct op){.kind = rnd(3) ? OP_ANSWER : OP_SCRIBBLE,
                               .seed = (uint32_t)rnd(1u << 30),
                               .size = (uint32_t)rnd(4) * 1000,
                               .delay_us = (uint32_t)rnd(4),
                               .scribble_seed = rnd(UINT64_MAX)};
            TU_EQ(submit(o[i], rnd(2) ? 1024 : 0, &f[i]), 0);
        }
        for (int i = 0; i < BATCH; i++) {
            unsigned char buf[4000];
            size_t len = sizeof buf;
            int rc = sl_future_wait_timeout(f[i], buf, &len,
                                            TU_SIZE(30000, 120000));
            sl_future_free(f[i]);
            if (rc == 0)
                ends[0]++;
            else if (rc == SL_EWORKERDIED)
                ends[1]++;
            else if (rc == E_SPOILT || rc == -EOVERFLOW)
                ends[2]++;
            else
                TU_EQ(rc, 0); /* shows the stray code */
        }
    }
    printf("(%d answered, %d died, %d spoilt) ", ends[0], ends[1], ends[2]);
    TU_EQ(heap_in_use(), 0);
    int64_t t0 = sl_now_ms();
    if (rnd(2)) {
        TU_EQ(sl_pool_close(pool), 0);
        TU_EQ(sl_pool_join(pool), 0);
    } else {
        TU_EQ(sl_pool_terminate(pool), 0);
    }
    CU_ASSERT(sl_now_ms() - t0 < 30000);
    end(b);
}

/* Tasks that fork: a helper that outlives its worker cannot hide the
 * worker's death, and a copy of the worker that comes back from the task
 * ends there instead of running the pool's code. */
TU_TEST(tasks_that_fork)
{
    struct before b = begin(__func__, 2, 64 << 10, 4 << 20);
    int rounds = COUNT(40, 10, 3);
    for (int r = 0; r < rounds; r++) {
        for (int i = 64; i < 1024; i++)
            page[i] = 0;
        struct op o = {.kind = rnd(2) ? OP_FORK_DIE : OP_FORK_ANSWER,
                       .seed = (uint32_t)rnd(1000),
                       .size = pick_size(64 << 10)};
        sl_future *f;
        TU_EQ(submit(o, 0, &f), 0);
        int got = check_answer(f, o, 0);
        TU_EQ(got, o.kind == OP_FORK_ANSWER);
        if (o.kind == OP_FORK_DIE) { /* seen dead while its helper lives */
            int h = page[64];
            CU_ASSERT(h > 0 && kill(h, 0) == 0);
            if (h > 0)
                kill(h, SIGKILL);
            page[64] = 0;
        }
        TU_EQ(heap_in_use(), 0);
    }
    pool_still_works();
    end(b);
}

/* terminate at a random moment of a storm of kills, large results and
 * maps: it returns, every future ends, and nothing is left. */
struct mapper {
    int rc;
    bool done;
};

static int t_twice(const void *in, size_t n, void *out, size_t *out_len)
{
    (void)n;
    uint64_t v;
    memcpy(&v, in, sizeof v);
    v *= 2;
    memcpy(out, &v, sizeof v);
    *out_len = sizeof v;
    return 0;
}

static void map_runner(void *arg)
{
    struct mapper *m = arg;
    size_t n = COUNT(200000, 50000, 5000);
    uint64_t *in = malloc(n * 8), *out = calloc(n, 8);
    for (size_t i = 0; i < n; i++)
        in[i] = i;
    int *st = malloc(n * sizeof *st);
    m->rc = sl_pool_map(pool, t_twice, in, 8, n, out, 8, 1 + rnd(500), st);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += st[i] == 0 ? out[i] != 2 * i
                          : st[i] != SL_ECLOSED && st[i] != SL_EWORKERDIED;
    TU_EQ(bad, 0);
    free(in);
    free(out);
    free(st);
    m->done = true;
}

TU_TEST(terminate_mid_storm)
{
    struct before b = begin(__func__, 0, 0, 0);
    int rounds = COUNT(20, 5, 2);
    for (int r = 0; r < rounds; r++) {
        new_pool(3, 1 << 20, 16 << 20);
        struct killer k = {.max_kills = 1000};
        sl_tasklet *kt = sl_spawn(killer, &k);
        sl_tasklet_ref(kt);
        struct mapper m = {0};
        sl_tasklet *mt = sl_spawn(map_runner, &m);
        sl_tasklet_ref(mt);
        enum { N = 40 };
        sl_future *f[N];
        struct op o[N];
        for (int i = 0; i < N; i++) {
            o[i] = (struct op){.kind = rnd(4) ? OP_ANSWER : OP_DIE_LATER,
                               .seed = (uint32_t)rnd(1000),
                               .size = pick_size(1 << 20),
                               .delay_us = (uint32_t)rnd(2000)};
            TU_EQ(submit(o[i], rnd(2) ? 1024 : 0, &f[i]), 0);
        }
        sl_sleep_ms((int64_t)rnd(TU_SIZE(50, 500)));
        int64_t t0 = sl_now_ms();
        TU_EQ(sl_pool_terminate(pool), 0);
        CU_ASSERT(sl_now_ms() - t0 < 20000);
        k.stop = true;
        for (int i = 0; i < N; i++)
            check_answer(f[i], o[i], SL_ECLOSED);
        while (sl_tasklet_alive(kt) || sl_tasklet_alive(mt))
            sl_sleep_ms(5);
        sl_tasklet_unref(kt);
        sl_tasklet_unref(mt);
        TU_EQ(m.done, true);
        CU_ASSERT(m.rc == 0 || m.rc == SL_ECLOSED || m.rc == SL_EWORKERDIED);
        TU_EQ(heap_in_use(), 0);
        sl_pool_free(pool);
        pool = NULL;
    }
    end(b);
}

static CU_TestInfo tests[] = {
    TU_CASE(random_kills_from_outside),
    TU_CASE(kills_from_inside_at_every_phase),
    TU_CASE(kills_mid_mpchan_copy_either_side),
    TU_CASE(tasks_that_lie_about_sizes),
    TU_CASE(tasks_that_scribble_over_shared_memory),
    TU_CASE(tasks_that_fork),
    TU_CASE(terminate_mid_storm),
    CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
    return tu_main(argc, argv, "pool_fault", tests);
}
