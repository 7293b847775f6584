/* aarch64.h - the 64-bit ARM (AAPCS64, Linux) layer: the jump into
 * jump_fcontext, the copy-stack switcher's two routines, the relax hint,
 * the signal's stack pointer. Included by arch/arch.h only; its table says
 * what is saved. */
#ifndef SL_ARCH_AARCH64_H
#define SL_ARCH_AARCH64_H

#include <signal.h>
#include <stdint.h>
#include <ucontext.h>

#define SL_ARCH_NAME "aarch64"
/* 64 on the Neoverse and Cortex-A cores of ARM servers and boards (Apple's
 * cores use 128): used for padding between writers, never for
 * correctness. */
#define SL_CACHE_LINE 64

/* In a spin-wait loop: yield is a hint for SMT cores and a nop everywhere
 * else; isb stalls the front end until the pipeline drains, a delay close
 * to x86's pause, so a spinner loads the contended line less often. Rust's
 * spin_loop(), Go's procyield and most ARM ports of databases use it. */
static inline void sl_arch_relax(void) { __asm__ volatile("isb" ::: "memory"); }

/* The thread pointer, read anew at every call. A tasklet may resume on
 * another thread, but GCC computes a thread-local variable's address from
 * tpidr_el0 once per function and keeps it in a callee-saved register
 * across calls: read after a switch that moved the tasklet, it is the old
 * thread's. (x86-64 reads thread-locals through %fs at each access, which
 * the kernel sets per thread, so nothing is kept there.) A volatile asm
 * is neither merged with another nor moved out of a loop. */
#define SL_ARCH_TLS_CACHED 1
static inline char *sl_arch_thread_pointer(void)
{
    char *tp;
    __asm__ volatile("mrs %0, tpidr_el0" : "=r"(tp));
    return tp;
}

/* The stack pointer at the instruction a signal interrupted (uc: the
 * handler's third argument). */
#define sl_arch_signal_sp(uc)                                                 \
    ((uintptr_t)((const ucontext_t *)(uc))->uc_mcontext.sp)

/* ---- entering jump_fcontext -------------------------------------------
 *
 * boost.context's aarch64 jump_fcontext leaves through `ret x4`, a return:
 * it pops the return-stack entry the caller's `bl` pushed. A plain call is
 * therefore already balanced (and, both sides of a switch having been
 * made through the same call site, the popped prediction is right). The
 * x86 trick of a pushed address and a jump would leave the `ret x4`
 * popping somebody else's entry, so there is none here. */
#define SL_ARCH_JUMP_BY_JMP 0

/* ---- the copy-stack switcher (tasklet/copystack.c) ----------------------
 *
 * sl__switcher_enter(top, w), called with bl. Lays out [sp] like
 * jump_fcontext (0x00..0x38: d8-d15, 0x40..0x88: x19-x28, 0x90: x29,
 * 0x98: x30, 0xa0: the pc to resume at, which is x30), then runs
 * sl__switcher_run(ctx, w) on the switcher's stack (branched to, not
 * called: nobody returns to here). The leaving side's bl stays on the
 * return stack; the switcher's way out pops it.
 *
 * sl__switcher_resume(ctx, data), branched to. The second half of
 * jump_fcontext: it resumes the context without saving one of its own
 * (nothing resumes the switcher's frame). The resumed side gets
 * x0:x1 = { NULL, data }, which is also a fresh context's first argument.
 * boost.context keeps no FP control register on aarch64, so there is one
 * resume routine, not two. */
#define SL_ARCH_SWITCHER 1
#define SL_ARCH_SWITCHER_ASM                                                 \
    ".text\n"                                                                \
    ".p2align 2\n"                                                           \
    ".globl sl__switcher_enter\n"                                            \
    ".hidden sl__switcher_enter\n"                                           \
    ".type sl__switcher_enter,%function\n"                                   \
    "sl__switcher_enter:\n"                                                  \
    "    sub sp, sp, #0xb0\n"                                                \
    "    stp d8, d9, [sp, #0x00]\n"                                          \
    "    stp d10, d11, [sp, #0x10]\n"                                        \
    "    stp d12, d13, [sp, #0x20]\n"                                        \
    "    stp d14, d15, [sp, #0x30]\n"                                        \
    "    stp x19, x20, [sp, #0x40]\n"                                        \
    "    stp x21, x22, [sp, #0x50]\n"                                        \
    "    stp x23, x24, [sp, #0x60]\n"                                        \
    "    stp x25, x26, [sp, #0x70]\n"                                        \
    "    stp x27, x28, [sp, #0x80]\n"                                        \
    "    stp x29, x30, [sp, #0x90]\n"                                        \
    "    str x30, [sp, #0xa0]\n"                                             \
    "    mov x2, sp\n"                                                       \
    "    mov sp, x0\n"                                                       \
    "    mov x0, x2\n"                                                       \
    "    b sl__switcher_run\n"                                               \
    ".size sl__switcher_enter, .-sl__switcher_enter\n"                       \
    "\n"                                                                     \
    ".p2align 2\n"                                                           \
    ".globl sl__switcher_resume\n"                                           \
    ".hidden sl__switcher_resume\n"                                          \
    ".type sl__switcher_resume,%function\n"                                  \
    "sl__switcher_resume:\n"                                                 \
    "    mov sp, x0\n"                                                       \
    "    ldp d8, d9, [sp, #0x00]\n"                                          \
    "    ldp d10, d11, [sp, #0x10]\n"                                        \
    "    ldp d12, d13, [sp, #0x20]\n"                                        \
    "    ldp d14, d15, [sp, #0x30]\n"                                        \
    "    ldp x19, x20, [sp, #0x40]\n"                                        \
    "    ldp x21, x22, [sp, #0x50]\n"                                        \
    "    ldp x23, x24, [sp, #0x60]\n"                                        \
    "    ldp x25, x26, [sp, #0x70]\n"                                        \
    "    ldp x27, x28, [sp, #0x80]\n"                                        \
    "    ldp x29, x30, [sp, #0x90]\n"                                        \
    "    ldr x4, [sp, #0xa0]\n"                                              \
    "    add sp, sp, #0xb0\n"                                                \
    "    mov x0, #0\n"                                                       \
    "    ret x4\n"                                                           \
    ".size sl__switcher_resume, .-sl__switcher_resume\n"

/* Leave for the switcher: an ordinary call, so the compiler saves exactly
 * what the AAPCS64 says a call clobbers (the upper halves of v8-v15
 * included, which no asm clobber list can say). */
#define SL_ARCH_SWITCHER_ENTER(top_, w_, tr_)                                 \
    ((tr_) = sl__switcher_enter((top_), (w_)))

/* No floating-point control state is part of a context. */
typedef struct {
    char none;
} sl_arch_fpctl;
static inline sl_arch_fpctl sl_arch_fpctl_of(const void *ctx)
{
    (void)ctx;
    return (sl_arch_fpctl){0};
}

/* The switcher's way out: resume the saved context ctx with data w. A
 * branch, not a call: the `ret x4` at its end pops the entry the leaving
 * side's bl pushed, which keeps the return stack balanced. */
static inline __attribute__((always_inline, noreturn)) void
sl_arch_switcher_leave(void *ctx, void *w, sl_arch_fpctl cur)
{
    (void)cur;
    register void *x0_ __asm__("x0") = ctx;
    register void *x1_ __asm__("x1") = w;
    __asm__ volatile("b sl__switcher_resume" : : "r"(x0_), "r"(x1_) : "memory");
    __builtin_unreachable();
}

/* ---- the trace's clock ----------------------------------------------------
 *
 * The generic timer's virtual count: constant rate (cntfrq_el0) on every
 * core, readable from user space on Linux. */
static inline uint64_t sl_arch_ticks(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
    return v;
}
static inline int sl_arch_ticks_ok(void)
{
    uint64_t f;
    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(f));
    return f != 0;
}

#endif /* SL_ARCH_AARCH64_H */
