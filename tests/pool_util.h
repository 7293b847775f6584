/* pool_util.h - what the two process-pool suites (test_pool.c,
 * test_pool_fault.c) both need: counting what a process holds, a task
 * that has its own process killed at a chosen moment, and messages whose
 * every byte can be checked. */
#ifndef SL_TEST_POOL_UTIL_H
#define SL_TEST_POOL_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stackless.h>

/* The entries of a directory, . and .. aside (0 if it cannot be read). */
static inline int pu_count_dir(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static inline int pu_count_fds(void)
{
    return pu_count_dir("/proc/self/fd");
}

/* Process pid has ended: it is gone, or a zombie nobody reaped yet. */
static inline bool pu_ended(int pid)
{
    if (kill(pid, 0) == -1 && errno == ESRCH)
        return true;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the state follows the name */
    return !p || p[1] == 0 || p[2] == 'Z' || p[2] == 'X';
}

static inline void *pu__suicide(void *arg)
{
    usleep((useconds_t)(uintptr_t)arg);
    kill(getpid(), SIGKILL);
    return NULL;
}

/* A thread of its own SIGKILLs this process us microseconds from now: in
 * the middle of whatever the worker does by then (at once if no thread can
 * be made). */
static inline void pu_die_after_us(unsigned us)
{
    pthread_t th;
    if (pthread_create(&th, NULL, pu__suicide, (void *)(uintptr_t)us) != 0)
        kill(getpid(), SIGKILL);
}

/* Byte i of message `seed`: what a sender writes and a receiver checks,
 * so that a message spoilt, cut short or mixed with another shows. */
static inline unsigned char pu_byte(uint32_t seed, size_t i)
{
    return (unsigned char)(seed + i * 131 + (i >> 12));
}

/* Message `seed` of len bytes, malloc'ed (NULL if out of memory). */
static inline unsigned char *pu_message(uint32_t seed, size_t len)
{
    unsigned char *m = malloc(len ? len : 1);
    for (size_t i = 0; m && i < len; i++)
        m[i] = pu_byte(seed, i);
    return m;
}

/* The len bytes at b are message `seed`'s first len bytes. */
static inline bool pu_is_message(uint32_t seed, const unsigned char *b,
                                 size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (b[i] != pu_byte(seed, i))
            return false;
    return true;
}

/* A parent's tasklet that sends message `seed` of len bytes on ch: rc
 * holds 1 until the send returns, then its code; done is set after. */
struct pu_send {
    sl_mpchan *ch;
    size_t len;
    uint32_t seed;
    int rc;
    bool done;
};

static inline void pu_sender(void *arg)
{
    struct pu_send *s = arg;
    unsigned char *msg = pu_message(s->seed, s->len);
    s->rc = sl_mpchan_send(s->ch, msg, s->len);
    free(msg);
    s->done = true;
}

#endif /* SL_TEST_POOL_UTIL_H */
