/*
 * libsys: typed wrappers for every system call in abi/syscall.h. Each
 * returns what the kernel returns: >= 0 on success, -E* (abi/errno.h) on
 * failure; sys_strerror() names the error.
 */
#ifndef LIBSYS_SYSCALL_H
#define LIBSYS_SYSCALL_H

#include <abi/errno.h>
#include <abi/proc.h>
#include <abi/syscall.h>
#include <abi/types.h>

static inline int64_t syscall5(uint64_t n, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4)
{
    int64_t ret;
    register uint64_t r10 __asm__("r10") = a3;
    register uint64_t r8 __asm__("r8") = a4;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}
#define syscall0(n) syscall5((n), 0, 0, 0, 0, 0)
#define syscall1(n, a) syscall5((n), (uint64_t)(a), 0, 0, 0, 0)
#define syscall2(n, a, b) syscall5((n), (uint64_t)(a), (uint64_t)(b), 0, 0, 0)
#define syscall3(n, a, b, c) syscall5((n), (uint64_t)(a), (uint64_t)(b), (uint64_t)(c), 0, 0)

/* Ends the calling process with `status` (>= 0). */
__attribute__((noreturn)) static inline void sys_exit(int64_t status)
{
    syscall1(SYS_EXIT, status);
    __builtin_unreachable();
}

/* Starts a thread in this process at entry(arg) on the given stack (its
 * top, 16-byte aligned). Returns a thread handle. */
static inline int64_t sys_thread_create(void (*entry)(uint64_t), void *stack_top, uint64_t arg)
{
    return syscall3(SYS_THREAD_CREATE, entry, stack_top, arg);
}

/* Ends the calling thread; the last thread's exit ends the process with 0. */
__attribute__((noreturn)) static inline void sys_thread_exit(void)
{
    syscall0(SYS_THREAD_EXIT);
    __builtin_unreachable();
}

/* Waits until the thread has ended: 0, or -ETIMEDOUT. */
static inline int64_t sys_thread_wait(handle_t thread, uint64_t timeout_ns)
{
    return syscall2(SYS_THREAD_WAIT, thread, timeout_ns);
}

static inline void sys_yield(void) { syscall0(SYS_YIELD); }
static inline int64_t sys_sleep(uint64_t ns) { return syscall1(SYS_SLEEP, ns); }
/* Nanoseconds since boot. */
static inline uint64_t sys_clock(void) { return (uint64_t)syscall0(SYS_CLOCK); }
/* Writes len bytes to the serial console in one piece (at most 64 KiB). */
static inline int64_t sys_console_write(const void *buf, size_t len) { return syscall2(SYS_CONSOLE_WRITE, buf, len); }
static inline int64_t sys_handle_close(handle_t h) { return syscall1(SYS_HANDLE_CLOSE, h); }
static inline int64_t sys_kinfo(struct abi_kinfo *out) { return syscall1(SYS_KINFO, out); }

/* Waits for a process to end and stores its exit status (abi/proc.h). */
static inline int64_t sys_proc_wait(handle_t proc, uint64_t timeout_ns, int64_t *status)
{
    return syscall3(SYS_PROC_WAIT, proc, timeout_ns, status);
}
static inline int64_t sys_proc_kill(handle_t proc) { return syscall1(SYS_PROC_KILL, proc); }

/* Boot right only (init): boot modules, starting one as a process, power off. */
static inline int64_t sys_module_info(unsigned index, struct abi_module_info *out)
{
    return syscall2(SYS_MODULE_INFO, index, out);
}
static inline int64_t sys_proc_spawn(unsigned module, const char *args, size_t args_len)
{
    return syscall3(SYS_PROC_SPAWN, module, args, args_len);
}
__attribute__((noreturn)) static inline void sys_shutdown(int status)
{
    syscall1(SYS_SHUTDOWN, status);
    __builtin_unreachable();
}

const char *sys_strerror(int64_t err);

#endif
