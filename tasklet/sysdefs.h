/* sysdefs.h - Linux constants newer than some C libraries' headers: the
 * madvise advices and system call numbers the stack provisioner uses.
 * Shared with bench/bench_pages.c, which measures them. */
#ifndef SL_SYSDEFS_H
#define SL_SYSDEFS_H

#include <sys/mman.h>
#include <sys/syscall.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* Linux 5.3 (x86-64 and arm64 alike) */
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440 /* Linux 5.10; any advice for oneself: 6.13 */
#endif

#endif /* SL_SYSDEFS_H */
