/* x86_64.h - the x86-64 (System V) layer: the jump into jump_fcontext, the
 * copy-stack switcher's two routines, the relax hint, the signal's stack
 * pointer. Included by arch/arch.h only; its table says what is saved. */
#ifndef SL_ARCH_X86_64_H
#define SL_ARCH_X86_64_H

#include <signal.h>
#include <stdint.h>
#include <ucontext.h>

#define SL_ARCH_NAME "x86-64"
#define SL_CACHE_LINE 64

/* In a spin-wait loop: pause lets the sibling hyperthread run and stops
 * the loop from filling the pipeline with loads (~40 cycles on recent
 * cores). */
static inline void sl_arch_relax(void) { __builtin_ia32_pause(); }

/* Thread-locals are read through %fs at each access (the kernel sets its
 * base per thread): a tasklet that resumes on another thread reads that
 * thread's. */
#define SL_ARCH_TLS_CACHED 0

/* The stack pointer at the instruction a signal interrupted (uc: the
 * handler's third argument). A macro: REG_RSP exists only where the
 * including file defines _GNU_SOURCE. */
#define sl_arch_signal_sp(uc)                                                 \
    ((uintptr_t)((const ucontext_t *)(uc))->uc_mcontext.gregs[REG_RSP])

/* ---- entering jump_fcontext -------------------------------------------
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
#define SL_ARCH_JUMP_BY_JMP 1
#ifdef SL_NO_RED_ZONE
#define SL__RZ_DOWN ""
#define SL__RZ_UP ""
#else
#define SL__RZ_DOWN "leaq -128(%%rsp), %%rsp\n\t"
#define SL__RZ_UP "leaq 128(%%rsp), %%rsp\n\t"
#endif
/* Enter `target` (jump_fcontext's convention: rdi, rsi in; rax:rdx out)
 * with a pushed return address and a jmp; see above. */
#define SL_ARCH_JUMP_ASM(target, to_, data_, tr_)                             \
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
#define SL_ARCH_JUMP_FCONTEXT(to_, data_, tr_)                                \
    SL_ARCH_JUMP_ASM("jump_fcontext@PLT", to_, data_, tr_)

/* ---- the copy-stack switcher (tasklet/copystack.c) ----------------------
 *
 * sl__switcher_enter. rdi: the top of the switcher's stack, rsi: the
 * worker, and the return address pushed by SL_ARCH_JUMP_ASM. Lays out
 * [rsp] like jump_fcontext (0: MXCSR, 4: x87 control word, 8..0x30: r12
 * r13 r14 r15 rbx rbp, 0x38: the return address), then runs
 * sl__switcher_run(ctx, w) on the switcher's stack (jumped to, not
 * called: nobody returns to here).
 *
 * sl__switcher_resume. rdi: a context saved by jump_fcontext or
 * sl__switcher_enter, rsi: the data word. The second half of
 * jump_fcontext: it resumes the context without saving one of its own
 * (nothing resumes the switcher's frame), so the switcher's way out skips
 * jump_fcontext's MXCSR/x87 stores and six register stores. The resumed
 * side gets rax:rdx = { NULL, data } (and rdi, rsi the same, for a fresh
 * context's first function). sl__switcher_resume_samefp is the rest,
 * entered when the context's MXCSR and x87 control word are those in
 * force (the leaving tasklet's: the switcher changes neither): ldmxcsr
 * and fldcw are slow, and loading the same values again changes nothing. */
#define SL_ARCH_SWITCHER 1
#define SL_ARCH_SWITCHER_ASM                                                 \
    ".text\n"                                                                \
    ".globl sl__switcher_enter\n"                                            \
    ".hidden sl__switcher_enter\n"                                           \
    ".type sl__switcher_enter,@function\n"                                   \
    "sl__switcher_enter:\n"                                                  \
    "    leaq -0x38(%rsp), %rsp\n"                                           \
    "    stmxcsr (%rsp)\n"                                                   \
    "    fnstcw 0x4(%rsp)\n"                                                 \
    "    movq %r12, 0x8(%rsp)\n"                                             \
    "    movq %r13, 0x10(%rsp)\n"                                            \
    "    movq %r14, 0x18(%rsp)\n"                                            \
    "    movq %r15, 0x20(%rsp)\n"                                            \
    "    movq %rbx, 0x28(%rsp)\n"                                            \
    "    movq %rbp, 0x30(%rsp)\n"                                            \
    "    movq %rsp, %rax\n"                                                  \
    "    leaq -8(%rdi), %rsp\n" /* as if called: rsp = 8 mod 16 */           \
    "    movq %rax, %rdi\n"                                                  \
    "    jmp sl__switcher_run\n"                                             \
    ".size sl__switcher_enter, .-sl__switcher_enter\n"                       \
    "\n"                                                                     \
    ".globl sl__switcher_resume\n"                                           \
    ".hidden sl__switcher_resume\n"                                          \
    ".type sl__switcher_resume,@function\n"                                  \
    "sl__switcher_resume:\n"                                                 \
    "    ldmxcsr (%rdi)\n"                                                   \
    "    fldcw 0x4(%rdi)\n"                                                  \
    ".globl sl__switcher_resume_samefp\n"                                    \
    ".hidden sl__switcher_resume_samefp\n"                                   \
    ".type sl__switcher_resume_samefp,@function\n"                           \
    "sl__switcher_resume_samefp:\n"                                          \
    "    movq %rdi, %rsp\n"                                                  \
    "    movq 0x38(%rsp), %r8\n"                                             \
    "    movq 0x8(%rsp), %r12\n"                                             \
    "    movq 0x10(%rsp), %r13\n"                                            \
    "    movq 0x18(%rsp), %r14\n"                                            \
    "    movq 0x20(%rsp), %r15\n"                                            \
    "    movq 0x28(%rsp), %rbx\n"                                            \
    "    movq 0x30(%rsp), %rbp\n"                                            \
    "    leaq 0x40(%rsp), %rsp\n"                                            \
    "    movq %rsi, %rdx\n"                                                  \
    "    xorl %eax, %eax\n"                                                  \
    "    xorl %edi, %edi\n"                                                  \
    "    jmp *%r8\n"                                                         \
    ".size sl__switcher_resume, .-sl__switcher_resume\n"

/* Leave for the switcher: from the running tasklet, with only a return
 * address pushed (see SL_ARCH_JUMP_ASM). */
#define SL_ARCH_SWITCHER_ENTER(top_, w_, tr_)                                 \
    SL_ARCH_JUMP_ASM("sl__switcher_enter", top_, w_, tr_)

/* The floating-point control state a saved context holds; the switcher
 * reads the leaving context's before the restore may overwrite it (each
 * read matches the store that made it). */
typedef struct {
    uint32_t mxcsr;
    uint16_t fpucw;
} sl_arch_fpctl;
static inline sl_arch_fpctl sl_arch_fpctl_of(const void *ctx)
{
    return (sl_arch_fpctl){*(const volatile uint32_t *)ctx,
                           *(const volatile uint16_t *)((const char *)ctx + 4)};
}

/* The switcher's way out: resume the saved context ctx with data w, the
 * FP control state in force being cur. A jmp, not a call: a call would
 * push a return-stack-buffer entry that is never popped, and the resumed
 * side's next ret (out of sl__jump_slow) would be mispredicted (~10 ns a
 * switch). */
static inline __attribute__((always_inline, noreturn)) void
sl_arch_switcher_leave(void *ctx, void *w, sl_arch_fpctl cur)
{
    sl_arch_fpctl to = sl_arch_fpctl_of(ctx);
    register void *rdi_ __asm__("rdi") = ctx;
    register void *rsi_ __asm__("rsi") = w;
    if (__builtin_expect(to.mxcsr == cur.mxcsr && to.fpucw == cur.fpucw, 1))
        __asm__ volatile("jmp sl__switcher_resume_samefp"
                         :
                         : "r"(rdi_), "r"(rsi_)
                         : "memory");
    else
        __asm__ volatile("jmp sl__switcher_resume"
                         :
                         : "r"(rdi_), "r"(rsi_)
                         : "memory");
    __builtin_unreachable();
}

/* ---- the trace's clock ----------------------------------------------------
 *
 * The time-stamp counter: ~20 cycles to read where clock_gettime costs
 * several times that. Its rate is not architectural (the trace measures it
 * against CLOCK_MONOTONIC), and it is a clock only when invariant: CPUID
 * 0x80000007 EDX bit 8, a constant rate that runs in every C-state (Linux
 * calls it constant_tsc + nonstop_tsc); the trace reads clock_gettime
 * otherwise. */
#include <cpuid.h>
static inline uint64_t sl_arch_ticks(void) { return __builtin_ia32_rdtsc(); }
static inline int sl_arch_ticks_ok(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(0x80000007, &a, &b, &c, &d) && (d & (1u << 8));
}

#endif /* SL_ARCH_X86_64_H */
