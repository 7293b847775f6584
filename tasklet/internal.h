/* internal.h - macros every private source shares: the always-on assert,
 * branch hints and the sanitizer switches. Not installed. */
#ifndef SL_INTERNAL_H
#define SL_INTERNAL_H

#include "stackless.h"

#define sl_likely(x) __builtin_expect(!!(x), 1)
#define sl_unlikely(x) __builtin_expect(!!(x), 0)

/* An internal invariant is broken: our bug, not the caller's. Always on. */
void sl__assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn, cold));
#define SL__ASSERT(c) \
    (sl_likely(c) ? (void)0 : sl__assert_fail(#c, __FILE__, __LINE__))

#if defined(__SANITIZE_ADDRESS__)
#define SL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SL_ASAN 1
#endif
#endif
#ifndef SL_ASAN
#define SL_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define SL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SL_TSAN 1
#endif
#endif
#ifndef SL_TSAN
#define SL_TSAN 0
#endif

#if __has_include(<valgrind/valgrind.h>)
#define SL_VALGRIND 1
#else
#define SL_VALGRIND 0
#endif

#endif /* SL_INTERNAL_H */
