/*
 * Kernel layer (private to the system call files): the handler of every
 * system call in abi/syscall.h, one family per file: sys_proc.c (processes,
 * threads, time, console, boot right), sys_ipc.c (endpoints, messages),
 * sys_seg.c (segments and the memory server's calls), sys_dev.c (devices).
 * Handlers validate every argument before they change anything.
 */
#ifndef KERNEL_CORE_SYSCALLS_H
#define KERNEL_CORE_SYSCALLS_H

#include <stdint.h>

#define SYSCALL_ARGS uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4
#define SYSCALL_UNUSED (void)a0, (void)a1, (void)a2, (void)a3, (void)a4
typedef int64_t (*syscall_fn)(SYSCALL_ARGS);

#define SYSCALL_HANDLERS(X)                                                     \
    X(SYS_EXIT, sys_exit) X(SYS_THREAD_CREATE, sys_thread_create)               \
    X(SYS_THREAD_EXIT, sys_thread_exit) X(SYS_THREAD_WAIT, sys_thread_wait)     \
    X(SYS_YIELD, sys_yield) X(SYS_SLEEP, sys_sleep) X(SYS_CLOCK, sys_clock)     \
    X(SYS_CONSOLE_WRITE, sys_console_write) X(SYS_HANDLE_CLOSE, sys_handle_close) \
    X(SYS_KINFO, sys_kinfo) X(SYS_PROC_WAIT, sys_proc_wait)                     \
    X(SYS_PROC_KILL, sys_proc_kill) X(SYS_MODULE_INFO, sys_module_info)         \
    X(SYS_SHUTDOWN, sys_shutdown)                                               \
    X(SYS_EP_CREATE, sys_ep_create) X(SYS_IPC_SEND, sys_ipc_send)               \
    X(SYS_IPC_RECV, sys_ipc_recv) X(SYS_IPC_CALL, sys_ipc_call)                 \
    X(SYS_IPC_REPLY, sys_ipc_reply) X(SYS_IPC_REPLY_RECV, sys_ipc_reply_recv)   \
    X(SYS_HANDLE_GRANT, sys_handle_grant) X(SYS_SEG_INFO, sys_seg_info)         \
    X(SYS_SEG_PIN, sys_seg_pin) X(SYS_SEG_UNPIN, sys_seg_unpin)                 \
    X(SYS_SEG_GIVE, sys_seg_give) X(SYS_PROC_CREATE, sys_proc_create)           \
    X(SYS_PROC_START, sys_proc_start) X(SYS_MS_BOOTINFO, sys_ms_bootinfo)       \
    X(SYS_MS_SEG_CREATE, sys_ms_seg_create) X(SYS_MS_SEG_REVOKE, sys_ms_seg_revoke) \
    X(SYS_MS_SEG_MIGRATE, sys_ms_seg_migrate) X(SYS_MS_SEG_QUERY, sys_ms_seg_query) \
    X(SYS_MS_SEG_DESTROY, sys_ms_seg_destroy) X(SYS_MS_RECLAIMED, sys_ms_reclaimed) \
    X(SYS_DEV_OPEN, sys_dev_open) X(SYS_DEV_CONFIG_READ, sys_dev_config_read)   \
    X(SYS_DEV_CONFIG_WRITE, sys_dev_config_write) X(SYS_DEV_MAP_BAR, sys_dev_map_bar)  \
    X(SYS_CONSOLE_READ, sys_console_read)

#define SYSCALL_DECLARE(num, fn) int64_t fn(SYSCALL_ARGS);
SYSCALL_HANDLERS(SYSCALL_DECLARE)
#undef SYSCALL_DECLARE

struct process;
/* The process a handle argument names: HANDLE_SELF or a process handle. */
struct process *syscall_process_arg(uint64_t h);

#endif
