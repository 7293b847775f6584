/* arch.h - everything that differs between the CPUs stackless runs on, in
 * one place: each supported architecture has one header beside this one,
 * and no other source names a CPU. Private, never installed.
 *
 * What each architecture's layer provides, and what the switch saves:
 *
 *   | item                      | x86-64 (x86_64.h)        | aarch64 (aarch64.h)       |
 *   |---------------------------|--------------------------|---------------------------|
 *   | jump_fcontext saves       | rbx rbp r12-r15, MXCSR,  | x19-x29, lr, d8-d15 (low  |
 *   | (boost.context's context, | x87 control word, the    | halves), the resume pc:   |
 *   | on the old stack)         | return address: 0x40 B   | 0xb0 bytes                |
 *   | jump_fcontext returns     | jmp *%r8                 | ret x4                    |
 *   | entering it               | pushed return address +  | a plain call (bl): its    |
 *   |                           | jmp, so the return-stack | ret x4 pops what bl       |
 *   |                           | predictor stays balanced | pushed; already balanced  |
 *   | copy-stack switcher       | sl__switcher_enter/resume| the same pair, in A64     |
 *   |                           | with the MXCSR/x87 skip  | (no FP control word kept) |
 *   | red zone                  | 128 B; built without one | none                      |
 *   | spin-loop relax hint      | pause                    | isb (yield is a nop on    |
 *   |                           |                          | cores without SMT)        |
 *   | interrupted sp (signal)   | gregs[REG_RSP]           | uc_mcontext.sp            |
 *   | the worker's thread-local | %fs at each access       | tpidr_el0 read anew by a  |
 *   | (a tasklet may migrate)   |                          | volatile asm (sched.h)    |
 *   | cache line (padding,      | 64                       | 64 (Neoverse, Cortex-A;   |
 *   | prefetch stride)          |                          | Apple cores use 128)      |
 *   | page size                 | run time: sysconf        | run time: 4, 16 or 64 KiB |
 *   | the trace's clock         | rdtsc, when invariant    | cntvct_el0 (its rate in   |
 *   |                           | (rate measured)          | cntfrq_el0)               |
 *
 * An interface, not a library: each header defines, for its CPU,
 *
 *   SL_ARCH_NAME                 a word for messages and docs
 *   SL_CACHE_LINE                alignment that keeps two writers apart
 *   sl_arch_relax()              the hint inside a spin-wait loop
 *   sl_arch_signal_sp(uc)        the stack pointer a signal interrupted
 *   SL_ARCH_JUMP_BY_JMP          1 when jump_fcontext must be entered with
 *                                SL_ARCH_JUMP_ASM rather than a call
 *   SL_ARCH_SWITCHER             1 when it has the fast copy-stack switcher:
 *   SL_ARCH_SWITCHER_ASM         its two routines, as top-level asm text
 *   SL_ARCH_SWITCHER_ENTER(...)  leave for the switcher (copystack.c)
 *   SL_ARCH_SWITCHER_LEAVE(...)  the switcher's way out to a saved context
 *   SL_ARCH_TLS_CACHED           1 when the compiler may keep a thread-
 *                                local's address across calls (a switch that
 *                                migrates a tasklet would leave it stale):
 *                                then sl_arch_thread_pointer() reads it anew
 *   sl_arch_ticks()              a cheap monotonic tick count (the trace's
 *                                clock), and sl_arch_ticks_ok(): whether it
 *                                runs at a constant rate on every core
 *
 * The page size is never a constant: every mapping rounds to
 * sysconf(_SC_PAGESIZE), and sl_arch_huge_size() derives the PMD size. */
#ifndef SL_ARCH_H
#define SL_ARCH_H

#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#if defined(__x86_64__)
#include "arch/x86_64.h"
#elif defined(__aarch64__)
#include "arch/aarch64.h"
#else
#error "stackless: unsupported CPU; supported are x86-64 and aarch64 (see arch/arch.h)"
#endif

/* The size of a transparent huge page (a PMD's span) for page size pg: a
 * page-table page holds pg / 8 entries on both CPUs, so 2 MiB with 4 KiB
 * pages, 32 MiB with 16 KiB and 512 MiB with 64 KiB. */
static inline size_t sl_arch_huge_size(size_t pg)
{
    return pg * (pg / sizeof(uint64_t));
}

#endif /* SL_ARCH_H */
