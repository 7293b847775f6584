/* pool_util.h - what the two process-pool suites (test_pool.c,
 * test_pool_fault.c) both need: counting what a process holds, and a task
 * that has its own process killed at a chosen moment. */
#ifndef SL_TEST_POOL_UTIL_H
#define SL_TEST_POOL_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

#endif /* SL_TEST_POOL_UTIL_H */
