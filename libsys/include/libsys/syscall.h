/*
 * libsys: the system calls of abi/syscall.h. Raw stubs (sysraw_NAME, one
 * per call, taking its argument count of 64-bit words) are generated from
 * the ABI's list; below them, a typed and documented wrapper for every call
 * (sys_NAME). Each returns what the kernel returns: >= 0 on success, -E*
 * (abi/errno.h) on failure; sys_strerror() names the error.
 */
#ifndef LIBSYS_SYSCALL_H
#define LIBSYS_SYSCALL_H

#include <abi/errno.h>
#include <abi/ipc.h>
#include <abi/proc.h>
#include <abi/rights.h>
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
#define syscall0(n)          syscall5((n), 0, 0, 0, 0, 0)
#define syscall1(n, a)       syscall5((n), (uint64_t)(a), 0, 0, 0, 0)
#define syscall2(n, a, b)    syscall5((n), (uint64_t)(a), (uint64_t)(b), 0, 0, 0)
#define syscall3(n, a, b, c) syscall5((n), (uint64_t)(a), (uint64_t)(b), (uint64_t)(c), 0, 0)

#define LIBSYS_PARAMS_0 void
#define LIBSYS_PARAMS_1 uint64_t a0
#define LIBSYS_PARAMS_2 uint64_t a0, uint64_t a1
#define LIBSYS_PARAMS_3 uint64_t a0, uint64_t a1, uint64_t a2
#define LIBSYS_PARAMS_4 uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3
#define LIBSYS_PARAMS_5 uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4
#define LIBSYS_WORDS_0  0, 0, 0, 0, 0
#define LIBSYS_WORDS_1  a0, 0, 0, 0, 0
#define LIBSYS_WORDS_2  a0, a1, 0, 0, 0
#define LIBSYS_WORDS_3  a0, a1, a2, 0, 0
#define LIBSYS_WORDS_4  a0, a1, a2, a3, 0
#define LIBSYS_WORDS_5  a0, a1, a2, a3, a4
#define LIBSYS_RAW_STUB(name, short_name, num, nargs, powers)                                                          \
    static inline int64_t sysraw_##short_name(LIBSYS_PARAMS_##nargs) { return syscall5(name, LIBSYS_WORDS_##nargs); }
ABI_SYSCALLS(LIBSYS_RAW_STUB)
#undef LIBSYS_RAW_STUB

/* Ends the calling process with `status` (>= 0). */
__attribute__((noreturn)) static inline void sys_exit(int64_t status)
{
    sysraw_exit((uint64_t)status);
    __builtin_unreachable();
}

/* Starts a thread in this process that calls entry(arg) on the given stack
 * (its top, 16-byte aligned: the kernel puts a null return address below
 * it, as a call would). entry must end with sys_thread_exit. Returns a
 * thread handle. */
static inline int64_t sys_thread_create(void (*entry)(uint64_t), void *stack_top, uint64_t arg)
{
    return sysraw_thread_create((uint64_t)entry, (uint64_t)stack_top, arg);
}

/* Ends the calling thread; the last thread's exit ends the process with 0. */
__attribute__((noreturn)) static inline void sys_thread_exit(void)
{
    sysraw_thread_exit();
    __builtin_unreachable();
}

/* Pins a thread (HANDLE_NONE: the caller) to a CPU, or lets it run
 * anywhere (ABI_CPU_ANY), or leaves it (ABI_CPU_SAME); returns the CPU it
 * is on or queued for. -EINVAL for a CPU that is not online. */
static inline int64_t sys_thread_affinity(handle_t thread, uint64_t cpu) { return sysraw_thread_affinity(thread, cpu); }
/* Waits until the thread has ended: 0, or -ETIMEDOUT. */
static inline int64_t sys_thread_wait(handle_t thread, uint64_t timeout_ns)
{
    return sysraw_thread_wait(thread, timeout_ns);
}

/* Gives the CPU to the next ready thread. */
static inline void sys_yield(void) { sysraw_yield(); }
/* Blocks for at least ns nanoseconds (0: returns at once); returns 0. */
static inline int64_t sys_sleep(uint64_t ns) { return sysraw_sleep(ns); }
/* Nanoseconds since boot. */
static inline uint64_t sys_clock(void) { return (uint64_t)sysraw_clock(); }
/* The same clock read from the TSC without entering the kernel (clock.c). */
uint64_t clock_ns(void);
/* Writes len bytes to the serial console in one piece (at most 64 KiB:
 * -E2BIG); returns len. */
static inline int64_t sys_console_write(const void *buf, size_t len)
{
    return sysraw_console_write((uint64_t)buf, len);
}
/* Reads what the serial console received: at least one byte (waiting up to
 * timeout_ns for it, else -ETIMEDOUT), at most len (1..64 KiB). */
static inline int64_t sys_console_read(void *buf, size_t len, uint64_t timeout_ns)
{
    return sysraw_console_read((uint64_t)buf, len, timeout_ns);
}
/* Drops a process, thread, endpoint or device handle (a process whose last
 * handle goes before it was started is ended). A segment cannot be closed
 * (-EINVAL): give it back with ms_free. */
static inline int64_t sys_handle_close(handle_t h) { return sysraw_handle_close(h); }
/* Kernel statistics: frame pool, processes, threads, ticks, TSC rate. */
static inline int64_t sys_kinfo(struct abi_kinfo *out) { return sysraw_kinfo((uint64_t)out); }

/* Waits for a process to end and stores its exit status (abi/proc.h);
 * status may be NULL. -ETIMEDOUT if it still runs. */
static inline int64_t sys_proc_wait(handle_t proc, uint64_t timeout_ns, int64_t *status)
{
    return sysraw_proc_wait(proc, timeout_ns, (uint64_t)status);
}
/* Ends a process (status ABI_EXIT_KILLED); 0 also if it had ended. */
static inline int64_t sys_proc_kill(handle_t proc) { return sysraw_proc_kill(proc); }

/* Boot right only (init): boot modules, starting one as a process, power off. */
static inline int64_t sys_module_info(unsigned index, struct abi_module_info *out)
{
    return sysraw_module_info(index, (uint64_t)out);
}
__attribute__((noreturn)) static inline void sys_shutdown(int status)
{
    sysraw_shutdown((uint64_t)status);
    __builtin_unreachable();
}

/* Endpoints and messages (abi/ipc.h). Timeouts are in nanoseconds
 * (TIMEOUT_FOREVER, TIMEOUT_POLL). */
/* A new endpoint; returns its handle. Grant it to share it. */
static inline int64_t sys_ep_create(void) { return sysraw_ep_create(); }
/* Blocks until a receiver takes the message. A segment in msg->seg moves to
 * the receiver; on any error it stays with the sender. */
static inline int64_t sys_ipc_send(handle_t ep, struct ipc_msg *msg, uint64_t timeout_ns)
{
    return sysraw_ipc_send(ep, (uint64_t)msg, timeout_ns);
}
/* Waits for a message; msg->flags selects IPC_RECV_* options. Receiving
 * gives up a reply this thread still owed (its caller gets -EPEER). */
static inline int64_t sys_ipc_recv(handle_t ep, struct ipc_msg *msg, uint64_t timeout_ns)
{
    return sysraw_ipc_recv(ep, (uint64_t)msg, timeout_ns);
}
/* Sends and waits for the reply, which overwrites msg. The timeout covers
 * the wait for a receiver; once taken, the call waits for its reply. */
static inline int64_t sys_ipc_call(handle_t ep, struct ipc_msg *msg, uint64_t timeout_ns)
{
    return sysraw_ipc_call(ep, (uint64_t)msg, timeout_ns);
}
/* Replies to the last call this thread received. -ENOENT if none is
 * pending. A malformed reply (-EINVAL, -EBADH, -EBUSY, -EFAULT) leaves the
 * caller waiting: reply again. If it could not be delivered (caller gone:
 * -EPEER, or no room for its segment), a segment in it is still ours. */
static inline int64_t sys_ipc_reply(struct ipc_msg *msg) { return sysraw_ipc_reply((uint64_t)msg); }
/* Replies (if a call is pending) and waits for the next message. If the
 * reply fails, the error comes back at once (nothing received) unless the
 * caller is simply gone and the reply carried no segment; a segment of a
 * failed reply is still the server's. */
static inline int64_t sys_ipc_reply_recv(handle_t ep, struct ipc_msg *msg, uint64_t timeout_ns)
{
    return sysraw_ipc_reply_recv(ep, (uint64_t)msg, timeout_ns);
}

/* Notifications (a word of bits; abi/rights.h SIGNAL, WAIT). */
/* A new notification; returns its handle (SIGNAL, WAIT, GRANT). */
static inline int64_t sys_notify_create(void) { return sysraw_notify_create(); }
/* Sets bits (nonzero, bit 63 clear): a waiting collector gets them at once. */
static inline int64_t sys_notify_signal(handle_t n, uint64_t bits) { return sysraw_notify_signal(n, bits); }
/* Collects and clears the bits set since the last collection, waiting up to
 * timeout_ns for some: the bits (> 0), or -ETIMEDOUT. -EBUSY while it is
 * bound to an endpoint (receive on that instead). */
static inline int64_t sys_notify_wait(handle_t n, uint64_t timeout_ns) { return sysraw_notify_wait(n, timeout_ns); }
/* Binds a notification to an endpoint one receives on (RIGHT_RECV; the
 * notification's RIGHT_WAIT): receiving then also returns when bits are
 * set, as a message labelled IPC_LABEL_NOTIFY from BADGE_KERNEL with the
 * bits in w[0]. HANDLE_NONE unbinds. -EBUSY if either is bound already. */
/* Signals `bit` of the notification once the endpoint has no receiver any
 * more (at once if it has none): a client learns its server ended. */
static inline int64_t sys_ep_watch(handle_t ep, handle_t notification, unsigned bit)
{
    return sysraw_ep_watch(ep, notification, bit);
}
/* Ends a watch this process made with sys_ep_watch(ep, notification, bit)
 * before it fires: 0, or -ENOENT if none is waiting to fire. */
static inline int64_t sys_ep_unwatch(handle_t ep, handle_t notification, unsigned bit)
{
    return sysraw_ep_unwatch(ep, notification, bit);
}
static inline int64_t sys_ep_bind(handle_t ep, handle_t notification) { return sysraw_ep_bind(ep, notification); }

/* Copies an endpoint, device or process handle into another process (its
 * handle needs RIGHT_CONTROL; HANDLE_SELF for oneself), keeping `rights` of
 * those h carries (RIGHTS_SAME: all); h itself needs RIGHT_GRANT. An
 * endpoint's RIGHT_RECV is never copied: asked for explicitly, it moves to
 * the other process and h keeps sending only. Returns the new handle's
 * value there. -EBADH, -EPERM (a right missing), -EPEER (it has ended). */
static inline int64_t sys_handle_grant(handle_t proc, handle_t h, rights_t rights)
{
    return sysraw_handle_grant(proc, h, rights);
}
/* The kind, rights and (process, segment) id of a handle one holds. */
static inline int64_t sys_handle_info(handle_t h, struct abi_handle_info *out)
{
    return sysraw_handle_info(h, (uint64_t)out);
}
/* Checks the kernel's invariants over every live segment (owner, handle,
 * rights, mapping, flight, pins, quarantine): 0, or -EINVAL with the first
 * broken one described in why (cut to len; why may be NULL). For tests. */
static inline int64_t sys_kcheck(char *why, size_t len) { return sysraw_kcheck((uint64_t)why, len); }

/* Segments (abi/seg.h). */
/* What the holder may know of a segment: sid, size, address, pins. */
static inline int64_t sys_seg_info(handle_t seg, struct abi_seg_info *out)
{
    return sysraw_seg_info(seg, (uint64_t)out);
}
/* Pins a segment for DMA by a device (the segment needs RIGHT_PIN, the
 * device handle RIGHT_DMA): it will not move, be freed or transferred until
 * unpinned, and, after the last unpin, until the device is quiesced (no
 * IOMMU). Pins nest; one device at a time (-EBUSY). -EDQUOT past the
 * account's RES_PINNED. Returns the physical base the device may use. */
static inline int64_t sys_seg_pin(handle_t seg, handle_t device) { return sysraw_seg_pin(seg, device); }
/* Undoes one pin; -EINVAL if the segment is not pinned. */
static inline int64_t sys_seg_unpin(handle_t seg) { return sysraw_seg_unpin(seg); }
/* Moves a segment into another process (its handle needs RIGHT_CONTROL; or
 * HANDLE_SELF to map one that is unmapped) at vaddr (0: the kernel picks),
 * keeping `rights` of those the handle has (RIGHTS_SAME: all; the mapping
 * is writable with RIGHT_WRITE, executable with RIGHT_EXEC). Returns the
 * address. */
static inline int64_t sys_seg_give(handle_t seg, handle_t proc, uint64_t vaddr, rights_t rights)
{
    return sysraw_seg_give(seg, proc, vaddr, rights);
}

/* Processes built by a loader (libsys/loader.h): an empty address space
 * (name: < 32 bytes), filled with sys_seg_give, then its first thread,
 * started once (-EINVAL again). */
static inline int64_t sys_proc_create(const char *name, size_t len, uint32_t powers)
{
    return sysraw_proc_create((uint64_t)name, len, powers);
}
static inline int64_t sys_proc_start(handle_t proc, uint64_t entry, uint64_t stack_top, uint64_t arg)
{
    return sysraw_proc_start(proc, entry, stack_top, arg);
}
/* Sets a limit on what a process and its descendants may hold (abi/proc.h
 * RES_*; ABI_LIMIT_NONE lifts it). Needs RIGHT_CONTROL over it; never over
 * oneself (-EPERM). */
static inline int64_t sys_proc_limit(handle_t proc, enum abi_resource resource, uint64_t limit)
{
    return sysraw_proc_limit(proc, resource, limit);
}
/* What a process's subtree holds, and its limits (HANDLE_SELF: one's own;
 * another's needs RIGHT_WAIT). */
static inline int64_t sys_account_info(handle_t proc, struct abi_account *out)
{
    return sysraw_account_info(proc, (uint64_t)out);
}

/* The memory server's calls (only the process the kernel started as memsrv;
 * -EPERM for anyone else). Segments are named by sid; docs/abi.md lists
 * what each returns. */
static inline int64_t sys_ms_bootinfo(unsigned index, struct abi_mem_range *out)
{
    return sysraw_ms_bootinfo(index, (uint64_t)out);
}
/* payer: the pid of the client the segment is for (its account pays;
 * -EDQUOT past its limits, -EPEER if it has ended); 0: the server itself.
 * *sid (unless sid is NULL) gets the new segment's sid. */
static inline int64_t sys_ms_seg_create(uint64_t phys, uint64_t size, uint64_t payer, uint64_t *sid)
{
    return sysraw_ms_seg_create(phys, size, payer, (uint64_t)sid);
}
static inline int64_t sys_ms_seg_revoke(uint64_t sid) { return sysraw_ms_seg_revoke(sid); }
static inline int64_t sys_ms_seg_migrate(uint64_t sid, uint64_t new_phys)
{
    return sysraw_ms_seg_migrate(sid, new_phys);
}
static inline int64_t sys_ms_seg_query(uint64_t sid, struct abi_seg_info *out)
{
    return sysraw_ms_seg_query(sid, (uint64_t)out);
}
/* 0, or SEG_DESTROY_QUARANTINED when a device may still reach the frames. */
static inline int64_t sys_ms_seg_destroy(uint64_t sid) { return sysraw_ms_seg_destroy(sid); }
/* The server's idle segment sid is charged to process payer_pid (0: the
 * server), zero-filled first when that is not the server: -ENOENT not the
 * server's, -EBUSY not idle (pinned, in flight, within a device's reach),
 * -EPEER no such process, -EDQUOT over payer's limits (nothing changed). */
static inline int64_t sys_ms_seg_charge(uint64_t sid, uint64_t payer_pid)
{
    return sysraw_ms_seg_charge(sid, payer_pid);
}
static inline int64_t sys_ms_reclaimed(struct abi_reclaim *out, unsigned max)
{
    return sysraw_ms_reclaimed((uint64_t)out, max);
}
static inline int64_t sys_ms_dma_changes(struct abi_dma_change *out, unsigned max)
{
    return sysraw_ms_dma_changes((uint64_t)out, max);
}
static inline int64_t sys_ms_segments(uint64_t from_phys, struct abi_seg_record *out, unsigned max)
{
    return sysraw_ms_segments(from_phys, (uint64_t)out, max);
}
/* Hands the segments v[i].sid (the server's, idle) to process pid, mapped,
 * filling in each one's handle and address there; all or none (-EPEER the
 * process ended, -ENOENT a sid not the server's, -EBUSY one busy, -EINVAL
 * a sid twice or n outside 1..SEG_BATCH_MAX, -ENOMEM no room in pid). */
static inline int64_t sys_ms_seg_give(uint64_t pid, struct abi_seg_give *v, unsigned n)
{
    return sysraw_ms_seg_give(pid, (uint64_t)v, n);
}
/* Destroys the segments process pid holds under the handles v[i].handle
 * (each 0 or SEG_DESTROY_QUARANTINED in v[i].result, its sid in v[i].sid);
 * all or none (-EBADH a handle not a segment of pid's, -EBUSY one pinned or
 * in flight, -EINVAL a handle twice or n outside 1..SEG_BATCH_MAX, -EPEER no
 * such process). */
static inline int64_t sys_ms_seg_free(uint64_t pid, struct abi_seg_free *v, unsigned n)
{
    return sysraw_ms_seg_free(pid, (uint64_t)v, n);
}
/* POWER_SUPERVISE (init): a new memory server in the ended one's kept
 * image and stack -> its process handle (CONTROL, WAIT). */
static inline int64_t sys_ms_restart(void) { return sysraw_ms_restart(); }

/* Devices for user-mode drivers: opened by init (POWER_DEVICES), then
 * granted with the rights the driver needs. Config space (RIGHT_CONFIG):
 * offset < 256, width 1, 2 or 4, a value that fits the width; the BARs,
 * the bus-master bit and the MSI capabilities are the kernel's (-EPERM). A
 * BAR (RIGHT_MMIO) is mapped uncached, whole pages (-ENOTSUP for one
 * smaller than a page), once (-EEXIST), until unmapped or the handle it
 * was mapped through is closed. */
static inline int64_t sys_dev_open(uint16_t vendor, uint16_t device, unsigned index)
{
    return sysraw_dev_open(vendor, device, index);
}
static inline int64_t sys_dev_config_read(handle_t dev, unsigned offset, unsigned width)
{
    return sysraw_dev_config_read(dev, offset, width);
}
static inline int64_t sys_dev_config_write(handle_t dev, unsigned offset, unsigned width, uint32_t value)
{
    return sysraw_dev_config_write(dev, offset, width, value);
}
static inline int64_t sys_dev_map_bar(handle_t dev, unsigned bar, struct abi_bar_info *out)
{
    return sysraw_dev_map_bar(dev, bar, (uint64_t)out);
}
static inline int64_t sys_dev_unmap_bar(handle_t dev, unsigned bar) { return sysraw_dev_unmap_bar(dev, bar); }
/* Bus mastering (RIGHT_DMA): on lets the device reach memory; off stops
 * it (quiesces it), which releases the frames pinned for it earlier. */
static inline int64_t sys_dev_dma(handle_t dev, bool on) { return sysraw_dev_dma(dev, on); }
/* With an IOMMU: DMA the hardware blocked for this device (RIGHT_DMA) sets
 * `bit` (0..62) of the notification (RIGHT_SIGNAL). -EBUSY bound already. */
static inline int64_t sys_dev_fault_bind(handle_t dev, handle_t notification, unsigned bit)
{
    return sysraw_dev_fault_bind(dev, notification, bit);
}
/* An interrupt handle for the device's line (RIGHT_IRQ). -ENOENT if the
 * device has no line the kernel hands out. */
static inline int64_t sys_dev_irq(handle_t dev) { return sysraw_dev_irq(dev); }
/* Binds the interrupt to a bit (0..62) of a notification (its RIGHT_SIGNAL):
 * when the line fires, the kernel masks it and sets the bit. -EBUSY bound
 * already. */
static inline int64_t sys_irq_bind(handle_t irq, handle_t notification, unsigned bit)
{
    return sysraw_irq_bind(irq, notification, bit);
}
/* The driver has quieted its device: the line may fire again. -EINVAL if
 * it has not fired since the last acknowledgement. */
static inline int64_t sys_irq_ack(handle_t irq) { return sysraw_irq_ack(irq); }

/* Waiting on a 32-bit word of one's own memory (libsys/sync.h builds on
 * these). wait: 0 when woken, -EAGAIN if *addr != expected, -ETIMEDOUT.
 * wake: wakes up to count waiters on addr, returns how many. */
static inline int64_t sys_futex_wait(const uint32_t *addr, uint32_t expected, uint64_t timeout_ns)
{
    return sysraw_futex_wait((uint64_t)addr, expected, timeout_ns);
}
static inline int64_t sys_futex_wake(const uint32_t *addr, uint64_t count)
{
    return sysraw_futex_wake((uint64_t)addr, count);
}

const char *sys_strerror(int64_t err);

#endif
