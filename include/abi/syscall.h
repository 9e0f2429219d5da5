/*
 * ABI layer: system call numbers and the calling convention.
 *
 * Convention (SYSCALL instruction): number in rax, arguments in rdi, rsi,
 * rdx, r10, r8, r9; the result comes back in rax: >= 0 on success, -E* (see
 * abi/errno.h) on failure. rcx and r11 are clobbered, everything else is kept.
 *
 * The list below is the single source. The kernel builds its dispatch table
 * from it by token pasting (the handler of SYS_X, short name x, is
 * sys_x: a missing one is a link error), and libsys its raw stubs
 * (sysraw_x, libsys/syscall.h). A number outside the list gets -ENOSYS.
 * Columns: name, short name, number, argument count, the powers a caller
 * must hold (abi/rights.h; 0: anyone).
 */
#ifndef ABI_SYSCALL_H
#define ABI_SYSCALL_H

#include <abi/rights.h>
#include <abi/types.h>

#define ABI_SYSCALLS(X)                                                                                                \
    X(SYS_EXIT, exit, 0, 1, 0)                                 /* (status) never returns */                            \
    X(SYS_THREAD_CREATE, thread_create, 1, 3, 0)               /* (entry, stack_top, arg): entry(arg) called */        \
    X(SYS_THREAD_EXIT, thread_exit, 2, 0, 0)                   /* () never returns */                                  \
    X(SYS_THREAD_WAIT, thread_wait, 3, 2, 0)                   /* (thread h, timeout ns) */                            \
    X(SYS_YIELD, yield, 4, 0, 0)                               /* () */                                                \
    X(SYS_SLEEP, sleep, 5, 1, 0)                               /* (ns) */                                              \
    X(SYS_CLOCK, clock, 6, 0, 0)                               /* () -> ns since boot */                               \
    X(SYS_CONSOLE_WRITE, console_write, 7, 2, 0)               /* (buf, len) */                                        \
    X(SYS_HANDLE_CLOSE, handle_close, 8, 1, 0)                 /* (h) */                                               \
    X(SYS_KINFO, kinfo, 9, 1, 0)                               /* (struct abi_kinfo *) */                              \
    X(SYS_PROC_WAIT, proc_wait, 10, 3, 0)                      /* (proc h, timeout, int64 *status) */                  \
    X(SYS_PROC_KILL, proc_kill, 11, 1, 0)                      /* (proc h) */                                          \
    X(SYS_MODULE_INFO, module_info, 12, 2, POWER_MODULES)      /* (index, struct abi_module_info *) */                 \
    X(SYS_CONSOLE_READ, console_read, 13, 3, 0)                /* (buf, len, timeout) -> bytes, at least 1 */          \
    X(SYS_SHUTDOWN, shutdown, 14, 1, POWER_SHUTDOWN)           /* (status) never returns */                            \
    X(SYS_EP_CREATE, ep_create, 15, 0, 0)                      /* () -> endpoint h */                                  \
    X(SYS_IPC_SEND, ipc_send, 16, 3, 0)                        /* (ep, struct ipc_msg *, timeout) */                   \
    X(SYS_IPC_RECV, ipc_recv, 17, 3, 0)                        /* (ep, struct ipc_msg *, timeout) */                   \
    X(SYS_IPC_CALL, ipc_call, 18, 3, 0)                        /* (ep, struct ipc_msg *, timeout) */                   \
    X(SYS_IPC_REPLY, ipc_reply, 19, 1, 0)                      /* (struct ipc_msg *) */                                \
    X(SYS_IPC_REPLY_RECV, ipc_reply_recv, 20, 3, 0)            /* (ep, struct ipc_msg *, timeout) */                   \
    X(SYS_HANDLE_GRANT, handle_grant, 21, 3, 0)                /* (proc h, h, rights) -> h in proc */                  \
    X(SYS_SEG_INFO, seg_info, 22, 2, 0)                        /* (seg h, struct abi_seg_info *) */                    \
    X(SYS_SEG_PIN, seg_pin, 23, 2, 0)                          /* (seg h, device h) -> physical base */                \
    X(SYS_SEG_UNPIN, seg_unpin, 24, 1, 0)                      /* (seg h) */                                           \
    X(SYS_SEG_GIVE, seg_give, 25, 4, 0)                        /* (seg h, proc h, vaddr or 0, rights) -> vaddr */      \
    X(SYS_PROC_CREATE, proc_create, 26, 3, POWER_SPAWN)        /* (name, len, powers) -> proc h, empty */              \
    X(SYS_PROC_START, proc_start, 27, 4, 0)                    /* (proc h, entry, stack_top, arg) */                   \
    X(SYS_MS_BOOTINFO, ms_bootinfo, 28, 2, POWER_MEMSRV)       /* (index, struct abi_mem_range *) */                   \
    X(SYS_MS_SEG_CREATE, ms_seg_create, 29, 4, POWER_MEMSRV)   /* (phys, size, payer pid, sid *) -> seg h */           \
    X(SYS_MS_SEG_REVOKE, ms_seg_revoke, 30, 1, POWER_MEMSRV)   /* (sid) -> seg h in the memory server */               \
    X(SYS_MS_SEG_MIGRATE, ms_seg_migrate, 31, 2, POWER_MEMSRV) /* (sid, new phys) */                                   \
    X(SYS_MS_SEG_QUERY, ms_seg_query, 32, 2, POWER_MEMSRV)     /* (sid, struct abi_seg_info *) */                      \
    X(SYS_MS_SEG_DESTROY, ms_seg_destroy, 33, 1, POWER_MEMSRV) /* (sid): the server's or released */                   \
    X(SYS_MS_RECLAIMED, ms_reclaimed, 34, 2, POWER_MEMSRV)     /* (struct abi_reclaim *, max) -> count */              \
    X(SYS_DEV_OPEN, dev_open, 35, 3, POWER_DEVICES)            /* (vendor, device, index) -> device h */               \
    X(SYS_DEV_CONFIG_READ, dev_config_read, 36, 3, 0)          /* (dev h, offset, width) -> value */                   \
    X(SYS_DEV_CONFIG_WRITE, dev_config_write, 37, 4, 0)        /* (dev h, offset, width, value) */                     \
    X(SYS_DEV_MAP_BAR, dev_map_bar, 38, 3, 0)                  /* (dev h, bar, struct abi_bar_info *) */               \
    X(SYS_DEV_UNMAP_BAR, dev_unmap_bar, 39, 2, 0)              /* (dev h, bar) */                                      \
    X(SYS_DEV_DMA, dev_dma, 40, 2, 0)                          /* (dev h, on): bus mastering; off quiesces */          \
    X(SYS_PROC_LIMIT, proc_limit, 41, 3, 0)                    /* (proc h, resource, limit) */                         \
    X(SYS_ACCOUNT_INFO, account_info, 42, 2, 0)                /* (proc h, struct abi_account *) */                    \
    X(SYS_HANDLE_INFO, handle_info, 43, 2, 0)                  /* (h, struct abi_handle_info *) */                     \
    X(SYS_KCHECK, kcheck, 44, 2, 0)                            /* (char *why, len): the kernel's invariants */         \
    X(SYS_NOTIFY_CREATE, notify_create, 45, 0, 0)              /* () -> notification h */                              \
    X(SYS_NOTIFY_SIGNAL, notify_signal, 46, 2, 0)              /* (notification h, bits) */                            \
    X(SYS_NOTIFY_WAIT, notify_wait, 47, 2, 0)                  /* (notification h, timeout) -> bits */                 \
    X(SYS_EP_BIND, ep_bind, 48, 2, 0)                          /* (ep h, notification h or 0) */                       \
    X(SYS_DEV_IRQ, dev_irq, 49, 1, 0)                          /* (dev h) -> interrupt h */                            \
    X(SYS_IRQ_BIND, irq_bind, 50, 3, 0)                        /* (interrupt h, notification h, bit) */                \
    X(SYS_IRQ_ACK, irq_ack, 51, 1, 0)                          /* (interrupt h) */                                     \
    X(SYS_FUTEX_WAIT, futex_wait, 52, 3, 0)                    /* (uint32 *addr, expected, timeout) */                 \
    X(SYS_FUTEX_WAKE, futex_wake, 53, 2, 0)                    /* (uint32 *addr, count) -> woken */                    \
    X(SYS_MS_RESTART, ms_restart, 54, 0, POWER_SUPERVISE)      /* () -> the new memory server's process h */           \
    X(SYS_DEV_FAULT_BIND, dev_fault_bind, 55, 3, 0)            /* (dev h, notification h, bit) */                      \
    X(SYS_MS_DMA_CHANGES, ms_dma_changes, 56, 2, POWER_MEMSRV) /* (struct abi_dma_change *, max) -> count */           \
    X(SYS_MS_SEGMENTS, ms_segments, 57, 3, POWER_MEMSRV)     /* (from phys, struct abi_seg_record *, max) -> count */  \
    X(SYS_EP_WATCH, ep_watch, 58, 3, 0)                      /* (ep h, notification h, bit): receiver gone */          \
    X(SYS_THREAD_AFFINITY, thread_affinity, 59, 2, 0)        /* (thread h or 0, cpu) -> the CPU it is on */            \
    X(SYS_MS_SEG_GIVE, ms_seg_give, 60, 3, POWER_MEMSRV)     /* (pid, struct abi_seg_give *, n) */                     \
    X(SYS_MS_SEG_FREE, ms_seg_free, 61, 3, POWER_MEMSRV)     /* (pid, struct abi_seg_free *, n) */                     \
    X(SYS_MS_SEG_CHARGE, ms_seg_charge, 62, 2, POWER_MEMSRV) /* (sid, payer pid or 0): zeroed for a client */          \
    X(SYS_EP_UNWATCH, ep_unwatch, 63, 3, 0)                  /* (ep h, notification h, bit): a watch made ends */

enum abi_syscall {
#define ABI_SYSCALL_ENUM(name, short_name, num, nargs, powers) name = num,
    ABI_SYSCALLS(ABI_SYSCALL_ENUM)
#undef ABI_SYSCALL_ENUM
        SYS_COUNT
};

#endif
