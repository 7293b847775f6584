/* fcontext.h - C declarations of boost.context's fcontext primitives.
 *
 * libboost_context exports these three functions with C linkage (they are
 * assembly, see boost/context/detail/fcontext.hpp); we declare them here so
 * that the library stays pure C. On x86-64 SysV a jump saves and restores:
 *
 *   saved on the old stack   rbx rbp r12 r13 r14 r15, MXCSR, x87 control word,
 *                            return address
 *   handed over              rax:rdx = { fctx of the context we left, data }
 *
 * Everything else is caller-saved by the ABI, so the switch is ~20 cycles.
 */
#ifndef SL_FCONTEXT_H
#define SL_FCONTEXT_H

#include <stddef.h>

typedef void *sl_fcontext;
typedef struct sl_transfer {
    sl_fcontext fctx; /* the context that jumped to us */
    void *data;       /* what it passed */
} sl_transfer;

sl_transfer jump_fcontext(sl_fcontext const to, void *vp);
sl_fcontext make_fcontext(void *sp, size_t size, void (*fn)(sl_transfer));
sl_transfer ontop_fcontext(sl_fcontext const to, void *vp,
                           sl_transfer (*fn)(sl_transfer));

#endif /* SL_FCONTEXT_H */
