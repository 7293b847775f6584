/* offload.c - sl_offload: blocking calls run on a pool of helper threads
 * while the calling tasklet parks (the role of libuv's threadpool and
 * gevent's threadpool).
 *
 * The pool starts with the first sl_offload (sl_config.offload_threads
 * threads, default 4) and stops in sl_shutdown, which waits for calls in
 * progress. A job lives in the caller's frame: the caller cannot return
 * before its job is done, because only the helper ends that wait (a kill
 * is recorded and reported when fn has returned). So fn may use memory on
 * the caller's stack, and nothing a helper touches is ever freed under
 * it. The helper hands the tasklet back through its worker's inbox.
 * A copy-mode caller's frames leave the shared stack while it waits (see
 * tasklet/copystack.c), so its job is on the heap instead, and its arg
 * must not point to its stack (debug builds check).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "sched/wait.h"

struct job {
    void (*fn)(void *);
    void *arg;
    sl_tasklet *t;
    uint32_t gen;
    sl_worker *home; /* where t resumes */
    struct job *next;
    bool heap;       /* malloc'd (a copy-mode caller): freed by it, or by
                        sl__offload_stop if it never started          */
};

struct sl_offload_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *head, *tail;
    bool stop;
    int nthreads;
    pthread_t threads[];
};

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

static void *helper(void *arg)
{
    struct sl_offload_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cond, &p->lock);
        if (!p->head) /* stopping, nothing queued */
            break;
        struct job *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->lock);

        j->fn(j->arg);
        /* j lives in the waiter's frame: read it before the waiter can
         * run again. */
        sl_tasklet *t = j->t;
        sl_worker *home = j->home;
        /* Nothing else ends an offload wait (a kill leaves it alone). */
        bool won = sl__claim_atomic(t, j->gen);
        SL__ASSERT(won);
        (void)won;
        sl__wait_landed_slow(t);
        t->wait.result = 0;
        sl__inbox_push(home, t);

        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static int pool_start(void)
{
    pthread_mutex_lock(&start_lock);
    int rc = 0;
    if (!sl__rt.offload) {
        int n = sl__rt.offload_threads;
        struct sl_offload_pool *p =
            calloc(1, sizeof *p + (size_t)n * sizeof(pthread_t));
        if (!p) {
            rc = SL_ENOMEM;
            goto out;
        }
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        for (int i = 0; i < n; i++) {
            int e = pthread_create(&p->threads[i], NULL, helper, p);
            if (e) {
                if (i == 0) {
                    pthread_mutex_destroy(&p->lock);
                    pthread_cond_destroy(&p->cond);
                    free(p);
                    rc = -e;
                    goto out;
                }
                break; /* fewer helpers than asked: still a pool */
            }
            p->nthreads = i + 1;
        }
        __atomic_store_n(&sl__rt.offload, p, __ATOMIC_RELEASE);
    }
out:
    pthread_mutex_unlock(&start_lock);
    return rc;
}

int sl_offload(void (*fn)(void *), void *arg)
{
    sl_worker *w = sl__self();
    if (!w)
        return SL_ESTATE;
    if (!fn)
        return SL_EINVAL;
    sl_tasklet *cur = w->current;
    int rc = sl__pend_check(cur);
    if (rc)
        return rc;
    if (sl__check_inbox(w))
        sl__abandon(w);
    if (!__atomic_load_n(&sl__rt.offload, __ATOMIC_ACQUIRE)) {
        rc = pool_start();
        if (rc < 0)
            return rc;
    }
    struct sl_offload_pool *p = sl__rt.offload;
    struct job jl, *j = &jl;
    if (cur->copy) {
        SL__COPY_CHECK(w, arg, "sl_offload");
        if (!(j = malloc(sizeof *j)))
            return SL_ENOMEM;
    }
    *j = (struct job){.fn = fn,
                      .arg = arg,
                      .t = cur,
                      .home = cur->pin >= 0 ? sl__rt.workers[cur->pin] : w,
                      .heap = j != &jl};
    j->gen = sl__wait_begin(cur, SL_W_OFFLOAD);
    sl__nwaits_add(1);
    cur->wcount = SL_WC_NWAIT;
    sl_tasklet *next = sl__rq_leave(w, cur);
    SL__ASSERT(next); /* nwaits > 0: never a deadlock */
    sl__publish_after_switch(w, cur, SL_T_BLOCKED);
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    sl__jump(w, cur, next);
    if (j != &jl)
        free(j);
    sl__wait_kind_reset(cur);
    sl__wait_account(cur);
    return sl__resumed(cur, 0); /* a throw or kill meanwhile: now */
}

/* A fork child forgets the parent's pool (its threads did not survive the
 * fork) and the start lock, which one of them may have held. */
void sl__offload_fork_reset(void)
{
    pthread_mutex_init(&start_lock, NULL);
}

void sl__offload_stop(void)
{
    struct sl_offload_pool *p = sl__rt.offload;
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    /* Jobs not started are dropped: their tasklets are being discarded. */
    for (struct job *j = p->head, *n; j; j = n) {
        n = j->next;
        if (j->heap)
            free(j);
    }
    p->head = p->tail = NULL;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
    sl__rt.offload = NULL;
}
