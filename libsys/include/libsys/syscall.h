/*
 * libsys: typed wrappers for every system call in abi/syscall.h. Each
 * returns what the kernel returns: >= 0 on success, -E* (abi/errno.h) on
 * failure; sys_strerror() names the error.
 */
#ifndef LIBSYS_SYSCALL_H
#define LIBSYS_SYSCALL_H

#include <abi/errno.h>
#include <abi/ipc.h>
#include <abi/proc.h>
#include <abi/seg.h>
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

/* Starts a thread in this process that calls entry(arg) on the given stack
 * (its top, 16-byte aligned: the kernel puts a null return address below
 * it, as a call would). entry must end with sys_thread_exit. Returns a
 * thread handle. */
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

/* Gives the CPU to the next ready thread. */
static inline void sys_yield(void) { syscall0(SYS_YIELD); }
/* Blocks for at least ns nanoseconds (0: returns at once); returns 0. */
static inline int64_t sys_sleep(uint64_t ns) { return syscall1(SYS_SLEEP, ns); }
/* Nanoseconds since boot. */
static inline uint64_t sys_clock(void) { return (uint64_t)syscall0(SYS_CLOCK); }
/* Writes len bytes to the serial console in one piece (at most 64 KiB:
 * -E2BIG); returns len. */
static inline int64_t sys_console_write(const void *buf, size_t len) { return syscall2(SYS_CONSOLE_WRITE, buf, len); }
/* Reads what the serial console received: at least one byte (waiting up to
 * timeout_ns for it, else -ETIMEDOUT), at most len (1..64 KiB). */
static inline int64_t sys_console_read(void *buf, size_t len, uint64_t timeout_ns)
{
    return syscall3(SYS_CONSOLE_READ, buf, len, timeout_ns);
}
/* Drops a process, thread, endpoint or device handle (a process whose last
 * handle goes before it was started is ended). A segment cannot be closed
 * (-EINVAL): give it back with ms_free. */
static inline int64_t sys_handle_close(handle_t h) { return syscall1(SYS_HANDLE_CLOSE, h); }
/* Kernel statistics: frame pool, processes, threads, ticks, TSC rate. */
static inline int64_t sys_kinfo(struct abi_kinfo *out) { return syscall1(SYS_KINFO, out); }

/* Waits for a process to end and stores its exit status (abi/proc.h);
 * status may be NULL. -ETIMEDOUT if it still runs. */
static inline int64_t sys_proc_wait(handle_t proc, uint64_t timeout_ns, int64_t *status)
{
    return syscall3(SYS_PROC_WAIT, proc, timeout_ns, status);
}
/* Ends a process (status ABI_EXIT_KILLED); 0 also if it had ended. */
static inline int64_t sys_proc_kill(handle_t proc) { return syscall1(SYS_PROC_KILL, proc); }

/* Boot right only (init): boot modules, starting one as a process, power off. */
static inline int64_t sys_module_info(unsigned index, struct abi_module_info *out)
{
    return syscall2(SYS_MODULE_INFO, index, out);
}
__attribute__((noreturn)) static inline void sys_shutdown(int status)
{
    syscall1(SYS_SHUTDOWN, status);
    __builtin_unreachable();
}

/* Endpoints and messages (abi/ipc.h). Timeouts are in nanoseconds
 * (TIMEOUT_FOREVER, TIMEOUT_POLL). */
/* A new endpoint; returns its handle. Grant it to share it. */
static inline int64_t sys_ep_create(void) { return syscall0(SYS_EP_CREATE); }
/* Blocks until a receiver takes the message. A segment in msg->seg moves to
 * the receiver; on any error it stays with the sender. */
static inline int64_t sys_ipc_send(handle_t ep, struct ipc_msg *msg, uint64_t timeout_ns)
{
    return syscall3(SYS_IPC_SEND, ep, msg, timeout_ns);
}
/* Waits for a message; msg->flags selects IPC_RECV_* options. Receiving
 * gives up a reply this thread still owed (its caller gets -EPEER). */
static inline int64_t sys_ipc_recv(handle_t ep, struct ipc_msg *msg, uint64_t timeout_ns)
{
    return syscall3(SYS_IPC_RECV, ep, msg, timeout_ns);
}
/* Sends and waits for the reply, which overwrites msg. The timeout covers
 * the wait for a receiver; once taken, the call waits for its reply. */
static inline int64_t sys_ipc_call(handle_t ep, struct ipc_msg *msg, uint64_t timeout_ns)
{
    return syscall3(SYS_IPC_CALL, ep, msg, timeout_ns);
}
/* Replies to the last call this thread received. -ENOENT if none is
 * pending. A malformed reply (-EINVAL, -EBADH, -EBUSY, -EFAULT) leaves the
 * caller waiting: reply again. If it could not be delivered (caller gone:
 * -EPEER, or no room for its segment), a segment in it is still ours. */
static inline int64_t sys_ipc_reply(struct ipc_msg *msg) { return syscall1(SYS_IPC_REPLY, msg); }
/* Replies (if a call is pending) and waits for the next message. If the
 * reply fails, the error comes back at once (nothing received) unless the
 * caller is simply gone and the reply carried no segment; a segment of a
 * failed reply is still the server's. */
static inline int64_t sys_ipc_reply_recv(handle_t ep, struct ipc_msg *msg, uint64_t timeout_ns)
{
    return syscall3(SYS_IPC_REPLY_RECV, ep, msg, timeout_ns);
}

/* Copies an endpoint or device handle into another process (or HANDLE_SELF);
 * returns the handle's value there. */
static inline int64_t sys_handle_grant(handle_t proc, handle_t h) { return syscall2(SYS_HANDLE_GRANT, proc, h); }

/* Segments (abi/seg.h). */
/* What the holder may know of a segment: sid, size, address, pins. */
static inline int64_t sys_seg_info(handle_t seg, struct abi_seg_info *out) { return syscall2(SYS_SEG_INFO, seg, out); }
/* Pins a segment for DMA: it will not move, be freed or transferred until
 * unpinned. Pins nest. Returns the physical base. */
static inline int64_t sys_seg_pin(handle_t seg) { return syscall1(SYS_SEG_PIN, seg); }
/* Undoes one pin; -EINVAL if the segment is not pinned. */
static inline int64_t sys_seg_unpin(handle_t seg) { return syscall1(SYS_SEG_UNPIN, seg); }
/* Moves a segment into another process (or HANDLE_SELF to map one that is
 * unmapped) at vaddr (0: the kernel picks). Returns the address. */
static inline int64_t sys_seg_give(handle_t seg, handle_t proc, uint64_t vaddr, unsigned prot)
{
    return syscall5(SYS_SEG_GIVE, seg, proc, vaddr, prot, 0);
}

/* Processes built by a loader (libsys/loader.h): an empty address space
 * (name: < 32 bytes), filled with sys_seg_give, then its first thread,
 * started once (-EINVAL again). */
static inline int64_t sys_proc_create(const char *name, size_t len) { return syscall2(SYS_PROC_CREATE, name, len); }
static inline int64_t sys_proc_start(handle_t proc, uint64_t entry, uint64_t stack_top, uint64_t arg)
{
    return syscall5(SYS_PROC_START, proc, entry, stack_top, arg, 0);
}

/* The memory server's calls (only the process the kernel started as memsrv;
 * -EPERM for anyone else). Segments are named by sid; docs/abi.md lists
 * what each returns. */
static inline int64_t sys_ms_bootinfo(unsigned index, struct abi_mem_range *out)
{
    return syscall2(SYS_MS_BOOTINFO, index, out);
}
static inline int64_t sys_ms_seg_create(uint64_t phys, uint64_t size) { return syscall2(SYS_MS_SEG_CREATE, phys, size); }
static inline int64_t sys_ms_seg_revoke(uint64_t sid) { return syscall1(SYS_MS_SEG_REVOKE, sid); }
static inline int64_t sys_ms_seg_migrate(uint64_t sid, uint64_t new_phys)
{
    return syscall2(SYS_MS_SEG_MIGRATE, sid, new_phys);
}
static inline int64_t sys_ms_seg_query(uint64_t sid, struct abi_seg_info *out)
{
    return syscall2(SYS_MS_SEG_QUERY, sid, out);
}
static inline int64_t sys_ms_seg_destroy(uint64_t sid) { return syscall1(SYS_MS_SEG_DESTROY, sid); }
static inline int64_t sys_ms_reclaimed(struct abi_reclaim *out, unsigned max)
{
    return syscall2(SYS_MS_RECLAIMED, out, max);
}

/* Devices for user-mode drivers: opened by init (boot right), then granted.
 * Config space: offset < 256, width 1, 2 or 4. A BAR is mapped uncached,
 * whole pages (-ENOTSUP for one smaller than a page). */
static inline int64_t sys_dev_open(uint16_t vendor, uint16_t device, unsigned index)
{
    return syscall3(SYS_DEV_OPEN, vendor, device, index);
}
static inline int64_t sys_dev_config_read(handle_t dev, unsigned offset, unsigned width)
{
    return syscall3(SYS_DEV_CONFIG_READ, dev, offset, width);
}
static inline int64_t sys_dev_config_write(handle_t dev, unsigned offset, unsigned width, uint32_t value)
{
    return syscall5(SYS_DEV_CONFIG_WRITE, dev, offset, width, value, 0);
}
static inline int64_t sys_dev_map_bar(handle_t dev, unsigned bar, struct abi_bar_info *out)
{
    return syscall3(SYS_DEV_MAP_BAR, dev, bar, out);
}

const char *sys_strerror(int64_t err);

#endif
