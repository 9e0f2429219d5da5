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

/* Who may make a call: everyone, only a process holding the boot right
 * (the first process, init), or only the memory server. */
#define SYSCALL_ANYONE 0
#define SYSCALL_BOOT   1
#define SYSCALL_MEMSRV 2

#define ABI_SYSCALLS(X)                                                       \
    X(SYS_EXIT, 0, 1, SYSCALL_ANYONE)          /* (status) never returns */    \
    X(SYS_THREAD_CREATE, 1, 3, SYSCALL_ANYONE) /* (entry, stack_top, arg): entry(arg) called */ \
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
    X(SYS_CONSOLE_READ, 13, 3, SYSCALL_ANYONE) /* (buf, len, timeout) -> bytes, at least 1 */ \
    X(SYS_SHUTDOWN, 14, 1, SYSCALL_BOOT)       /* (status) never returns */ \
    X(SYS_EP_CREATE, 15, 0, SYSCALL_ANYONE)    /* () -> endpoint h */          \
    X(SYS_IPC_SEND, 16, 3, SYSCALL_ANYONE)     /* (ep, struct ipc_msg *, timeout) */ \
    X(SYS_IPC_RECV, 17, 3, SYSCALL_ANYONE)     /* (ep, struct ipc_msg *, timeout) */ \
    X(SYS_IPC_CALL, 18, 3, SYSCALL_ANYONE)     /* (ep, struct ipc_msg *, timeout) */ \
    X(SYS_IPC_REPLY, 19, 1, SYSCALL_ANYONE)    /* (struct ipc_msg *) */        \
    X(SYS_IPC_REPLY_RECV, 20, 3, SYSCALL_ANYONE) /* (ep, struct ipc_msg *, timeout) */ \
    X(SYS_HANDLE_GRANT, 21, 2, SYSCALL_ANYONE) /* (proc h, h) -> h in proc */  \
    X(SYS_SEG_INFO, 22, 2, SYSCALL_ANYONE)     /* (seg h, struct abi_seg_info *) */ \
    X(SYS_SEG_PIN, 23, 1, SYSCALL_ANYONE)      /* (seg h) -> physical base */  \
    X(SYS_SEG_UNPIN, 24, 1, SYSCALL_ANYONE)    /* (seg h) */                   \
    X(SYS_SEG_GIVE, 25, 4, SYSCALL_ANYONE)     /* (seg h, proc h, vaddr or 0, SEG_PROT_*) -> vaddr */ \
    X(SYS_PROC_CREATE, 26, 2, SYSCALL_ANYONE)  /* (name, len) -> proc h, empty */ \
    X(SYS_PROC_START, 27, 4, SYSCALL_ANYONE)   /* (proc h, entry, stack_top, arg) */ \
    X(SYS_MS_BOOTINFO, 28, 2, SYSCALL_MEMSRV)  /* (index, struct abi_mem_range *) */ \
    X(SYS_MS_SEG_CREATE, 29, 2, SYSCALL_MEMSRV) /* (phys, size) -> seg h, zero-filled, unmapped */ \
    X(SYS_MS_SEG_REVOKE, 30, 1, SYSCALL_MEMSRV) /* (sid) -> seg h in the memory server */ \
    X(SYS_MS_SEG_MIGRATE, 31, 2, SYSCALL_MEMSRV) /* (sid, new phys) */         \
    X(SYS_MS_SEG_QUERY, 32, 2, SYSCALL_MEMSRV) /* (sid, struct abi_seg_info *) */ \
    X(SYS_MS_SEG_DESTROY, 33, 1, SYSCALL_MEMSRV) /* (sid): held by the server or quarantined */ \
    X(SYS_MS_RECLAIMED, 34, 2, SYSCALL_MEMSRV) /* (struct abi_reclaim *, max) -> count */ \
    X(SYS_DEV_OPEN, 35, 3, SYSCALL_BOOT)       /* (vendor, device, index) -> device h */ \
    X(SYS_DEV_CONFIG_READ, 36, 3, SYSCALL_ANYONE) /* (dev h, offset, width) -> value */ \
    X(SYS_DEV_CONFIG_WRITE, 37, 4, SYSCALL_ANYONE) /* (dev h, offset, width, value) */ \
    X(SYS_DEV_MAP_BAR, 38, 3, SYSCALL_ANYONE)  /* (dev h, bar, struct abi_bar_info *) */

enum abi_syscall {
#define ABI_SYSCALL_ENUM(name, num, nargs, who) name = num,
    ABI_SYSCALLS(ABI_SYSCALL_ENUM)
#undef ABI_SYSCALL_ENUM
    SYS_COUNT
};

#endif
