/* registry.c - task functions named across ranks: name -> function and
 * function -> name, so that a task travels as the hash of its name, never
 * as an address (each rank's executable is loaded at its own random base).
 *
 * Registration happens before MPI exists (SL_MPI_TASK runs in a
 * constructor), so the table is a plain array under its own mutex. A
 * lookup is one per submit on rank 0 and one per task served (the serving
 * loop keeps the last function it found): a linear scan of the few dozen
 * entries a program registers costs less than the MPI call beside it. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/slmpi.h"

#define NAME_MAX_LEN 64

struct entry {
    uint64_t hash;
    sl_task_fn fn;
    char name[NAME_MAX_LEN];
};

static struct {
    pthread_mutex_t lock;
    struct entry *e;
    size_t n, cap;
} R = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* FNV-1a, 64 bits: stable across ranks, builds and runs. */
uint64_t sl__mpi_name_hash(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h ? h : 1; /* 0 means "no function" on the wire */
}

int sl_mpi_task_register(const char *name, sl_task_fn fn)
{
    if (!name || !fn || !name[0] || strlen(name) >= NAME_MAX_LEN)
        return SL_EINVAL;
    uint64_t h = sl__mpi_name_hash(name);
    int rc = 0;
    pthread_mutex_lock(&R.lock);
    for (size_t i = 0; i < R.n; i++) {
        struct entry *e = &R.e[i];
        bool same_name = e->hash == h && strcmp(e->name, name) == 0;
        if (same_name && e->fn == fn)
            goto out; /* again: nothing to do */
        if (e->hash == h || e->fn == fn) {
            rc = SL_EINVAL; /* a name or function with another partner */
            goto out;
        }
    }
    if (R.n == R.cap) {
        size_t cap = R.cap ? 2 * R.cap : 32;
        struct entry *ne = realloc(R.e, cap * sizeof *ne);
        if (!ne) {
            rc = SL_ENOMEM;
            goto out;
        }
        R.e = ne;
        R.cap = cap;
    }
    R.e[R.n].hash = h;
    R.e[R.n].fn = fn;
    strcpy(R.e[R.n].name, name);
    R.n++;
out:
    pthread_mutex_unlock(&R.lock);
    return rc;
}

uint64_t sl__mpi_fn_hash(sl_task_fn fn)
{
    uint64_t h = 0;
    pthread_mutex_lock(&R.lock);
    for (size_t i = 0; i < R.n; i++)
        if (R.e[i].fn == fn) {
            h = R.e[i].hash;
            break;
        }
    pthread_mutex_unlock(&R.lock);
    return h;
}

sl_task_fn sl__mpi_fn_lookup(uint64_t hash)
{
    sl_task_fn fn = NULL;
    pthread_mutex_lock(&R.lock);
    for (size_t i = 0; i < R.n; i++)
        if (R.e[i].hash == hash) {
            fn = R.e[i].fn;
            break;
        }
    pthread_mutex_unlock(&R.lock);
    return fn;
}
