/* args.h - the command-line number parser the examples and benchmarks
 * share: a whole decimal number in a range, or a usage error (exit 2). */
#ifndef SL_EXAMPLES_ARGS_H
#define SL_EXAMPLES_ARGS_H

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The value s of prog's option flag as a number in [min, max]. Anything
 * else (not a number, trailing junk, out of range) prints why, then
 * usage(stderr) if usage is not NULL, and exits with status 2. A leading
 * '-' is accepted only when min < 0. */
static inline int64_t args_num(const char *prog, const char *flag,
                               const char *s, int64_t min, uint64_t max,
                               void (*usage)(FILE *))
{
    char *end = NULL;
    errno = 0;
    int ok;
    int64_t v;
    if (s[0] == '-') {
        long long n = strtoll(s, &end, 10);
        v = n;
        ok = min < 0 && n >= min;
    } else {
        unsigned long long u = strtoull(s, &end, 10);
        v = (int64_t)u;
        ok = s[0] >= '0' && s[0] <= '9' && u <= max &&
             (min < 0 || u >= (uint64_t)min);
    }
    if (!ok || end == s || *end || errno) {
        fprintf(stderr, "%s: %s wants a number in [%" PRId64 ", %" PRIu64
                        "], not '%s'\n", prog, flag, min, max, s);
        if (usage)
            usage(stderr);
        exit(2);
    }
    return v;
}

#endif /* SL_EXAMPLES_ARGS_H */
