/* fcontext.h - C declarations of boost.context's fcontext primitives.
 *
 * libboost_context exports these three functions with C linkage (they are
 * assembly, see boost/context/detail/fcontext.hpp); we declare them here so
 * that the library stays pure C. A jump saves the callee-saved registers
 * of the ABI on the old stack and restores the target's (what that is on
 * each CPU: the table in arch/arch.h), and hands over { fctx of the
 * context we left, data } in the two return registers. Everything else is
 * caller-saved by the ABI, so the switch is ~20 cycles.
 */
#ifndef SL_FCONTEXT_H
#define SL_FCONTEXT_H

#include <stddef.h>

#include "arch/arch.h"

typedef void *sl_fcontext;
typedef struct sl_transfer {
    sl_fcontext fctx; /* the context that jumped to us */
    void *data;       /* what it passed */
} sl_transfer;

sl_transfer jump_fcontext(sl_fcontext const to, void *vp);
sl_fcontext make_fcontext(void *sp, size_t size, void (*fn)(sl_transfer));
sl_transfer ontop_fcontext(sl_fcontext const to, void *vp,
                           sl_transfer (*fn)(sl_transfer));

/* jump_fcontext as the architecture enters it (arch/arch.h): on x86-64
 * with a pushed return address and a jmp, which keeps the return-stack
 * predictor balanced; on aarch64 with a plain call, which already does.
 * SL_PLAIN_CALL forces the plain call everywhere (to measure the
 * difference). */
static inline __attribute__((always_inline)) sl_transfer
sl__jump_fcontext(sl_fcontext to, void *data)
{
#if SL_ARCH_JUMP_BY_JMP && !defined(SL_PLAIN_CALL)
    sl_transfer tr;
    SL_ARCH_JUMP_FCONTEXT(to, data, tr);
    return tr;
#else
    return jump_fcontext(to, data);
#endif
}

#endif /* SL_FCONTEXT_H */
