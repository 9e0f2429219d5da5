/*
 * ABI layer: system call numbers and the calling convention.
 *
 * Convention (SYSCALL instruction): number in rax, arguments in rdi, rsi,
 * rdx, r10, r8, r9; the result comes back in rax: >= 0 on success, -E* (see
 * abi/errno.h) on failure. rcx and r11 are clobbered, everything else is kept.
 *
 * The list below is the single source: the kernel builds its dispatch table
 * from it and libsys its stubs. A number outside the list gets -ENOSYS.
 * Columns: name, number, argument count, who may call it.
 */
#ifndef ABI_SYSCALL_H
#define ABI_SYSCALL_H

#include <abi/types.h>

/* Who may make a call: everyone, or only a process holding the boot right
 * (the first process, init). */
#define SYSCALL_ANYONE 0
#define SYSCALL_BOOT   1

#define ABI_SYSCALLS(X)                                                       \
    X(SYS_EXIT, 0, 1, SYSCALL_ANYONE)          /* (status) never returns */    \
    X(SYS_THREAD_CREATE, 1, 3, SYSCALL_ANYONE) /* (entry, stack_top, arg) */   \
    X(SYS_THREAD_EXIT, 2, 0, SYSCALL_ANYONE)   /* () never returns */          \
    X(SYS_THREAD_WAIT, 3, 2, SYSCALL_ANYONE)   /* (thread h, timeout ns) */    \
    X(SYS_YIELD, 4, 0, SYSCALL_ANYONE)         /* () */                        \
    X(SYS_SLEEP, 5, 1, SYSCALL_ANYONE)         /* (ns) */                      \
    X(SYS_CLOCK, 6, 0, SYSCALL_ANYONE)         /* () -> ns since boot */       \
    X(SYS_CONSOLE_WRITE, 7, 2, SYSCALL_ANYONE) /* (buf, len) */                \
    X(SYS_HANDLE_CLOSE, 8, 1, SYSCALL_ANYONE)  /* (h) */                       \
    X(SYS_KINFO, 9, 1, SYSCALL_ANYONE)         /* (struct abi_kinfo *) */      \
    X(SYS_PROC_WAIT, 10, 3, SYSCALL_ANYONE)    /* (proc h, timeout, int64 *status) */ \
    X(SYS_PROC_KILL, 11, 1, SYSCALL_ANYONE)    /* (proc h) */                  \
    X(SYS_MODULE_INFO, 12, 2, SYSCALL_BOOT)    /* (index, struct abi_module_info *) */ \
    X(SYS_PROC_SPAWN, 13, 3, SYSCALL_BOOT)     /* (module index, args, args_len) -> proc h */ \
    X(SYS_SHUTDOWN, 14, 1, SYSCALL_BOOT)       /* (status) never returns */

enum abi_syscall {
#define ABI_SYSCALL_ENUM(name, num, nargs, who) name = num,
    ABI_SYSCALLS(ABI_SYSCALL_ENUM)
#undef ABI_SYSCALL_ENUM
    SYS_COUNT
};

#endif
