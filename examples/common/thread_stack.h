/* thread_stack.h - the stack size the pthread opponents give each thread:
 * 64 KiB, or the C library's minimum when that is larger (glibc's is
 * 128 KiB on aarch64, whose kernels may use 64 KiB pages). */
#ifndef SL_EXAMPLES_THREAD_STACK_H
#define SL_EXAMPLES_THREAD_STACK_H

#include <stddef.h>
#include <unistd.h>

#define THREAD_STACK (64 * 1024)

static inline size_t thread_stack_size(void)
{
    long min = sysconf(_SC_THREAD_STACK_MIN);
    return min > THREAD_STACK ? (size_t)min : THREAD_STACK;
}

#endif /* SL_EXAMPLES_THREAD_STACK_H */
