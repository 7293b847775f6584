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

/* jump_fcontext, entered without a `call`.
 *
 * jump_fcontext leaves through `jmp *%r8`, never `ret`, so a plain call
 * pushes a return-stack-buffer entry that is never popped: the next `ret`
 * on the resumed side (out of sl_schedule, say) is then mispredicted, ~6 ns
 * on every switch. Pushing the return address by hand and jumping keeps
 * the return stack balanced: both sides of a switch made through the same
 * call site return to identical addresses, which the predictor gets right.
 *
 * The 128-byte red zone below %rsp may hold the caller's data, so we step
 * over it before pushing, unless the library is built with -mno-red-zone
 * (CMake does that and defines SL_NO_RED_ZONE): skipping it would spread a
 * switched-out tasklet's hot stack bytes over two more cache lines.
 * jump_fcontext restores %rsp to just above the pushed address when it
 * resumes us. Everything the ABI lets a callee clobber is declared
 * clobbered. */
#ifdef SL_NO_RED_ZONE
#define SL__RZ_DOWN ""
#define SL__RZ_UP ""
#else
#define SL__RZ_DOWN "leaq -128(%%rsp), %%rsp\n\t"
#define SL__RZ_UP "leaq 128(%%rsp), %%rsp\n\t"
#endif
/* Enter `target` (jump_fcontext's convention: rdi, rsi in; rax:rdx out)
 * with a pushed return address and a jmp; see above. */
#define SL__JUMP_ASM(target, to_, data_, tr_)                                   \
    do {                                                                     \
        register void *rdi_ __asm__("rdi") = (to_);                           \
        register void *rsi_ __asm__("rsi") = (data_);                         \
        register void *rax_ __asm__("rax");                                  \
        register void *rdx_ __asm__("rdx");                                  \
        __asm__ volatile(SL__RZ_DOWN "leaq 1f(%%rip), %%rcx\n\t"             \
                         "pushq %%rcx\n\t"                                    \
                         "jmp " target "\n"                                   \
                         "1:\n\t" SL__RZ_UP                                   \
                         : "=r"(rax_), "=r"(rdx_), "+r"(rdi_), "+r"(rsi_)    \
                         :                                                   \
                         : "rcx", "r8", "r9", "r10", "r11", "memory", "cc",  \
                           "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",   \
                           "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",  \
                           "xmm12", "xmm13", "xmm14", "xmm15", "st",         \
                           "st(1)", "st(2)", "st(3)", "st(4)", "st(5)",      \
                           "st(6)", "st(7)");                                \
        (tr_).fctx = rax_;                                                    \
        (tr_).data = rdx_;                                                    \
    } while (0)

static inline __attribute__((always_inline)) sl_transfer
sl__jump_fcontext(sl_fcontext to, void *data)
{
#if defined(__x86_64__) && !defined(SL_PLAIN_CALL)
    sl_transfer tr;
    SL__JUMP_ASM("jump_fcontext@PLT", to, data, tr);
    return tr;
#else
    return jump_fcontext(to, data);
#endif
}

#endif /* SL_FCONTEXT_H */
