/* error.c - the error table: names and messages for every SL_E* code, and
 * the always-on assertion handler. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasklet/internal.h"

const char *sl_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define SL__ERR_MSG(name, value, msg) \
    case name:                        \
        return msg;
        SL_ERRNO_MAP(SL__ERR_MSG)
#undef SL__ERR_MSG
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err); /* glibc: static strings for known codes */
    return "unknown error";
}

const char *sl_err_name(int err)
{
    switch (err) {
    case 0:
        return "0";
#define SL__ERR_NAME(name, value, msg) \
    case name:                         \
        return #name;
        SL_ERRNO_MAP(SL__ERR_NAME)
#undef SL__ERR_NAME
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        const char *n = strerrorname_np(-err);
        if (n)
            return n;
    }
    return "UNKNOWN";
}

void sl__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "stackless: internal invariant broken: %s (%s:%d)\n",
            expr, file, line);
    fflush(stderr);
    abort();
}
