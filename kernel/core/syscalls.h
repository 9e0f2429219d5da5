/*
 * Kernel layer (private to the system call files): the handler of every
 * system call in abi/syscall.h is sys_SHORTNAME, declared here from the
 * list itself, one family per file: sys_proc.c (processes, threads, time,
 * console, handles, accounts, boot powers), sys_ipc.c (endpoints,
 * messages), sys_seg.c (segments), memsrv.c (the memory server's calls),
 * sys_dev.c (devices). Handlers decode and validate every argument, then
 * call one object operation that either fails having changed nothing or
 * cannot fail.
 */
#ifndef KERNEL_CORE_SYSCALLS_H
#define KERNEL_CORE_SYSCALLS_H

#include <stdint.h>
#include <abi/errno.h>
#include <abi/syscall.h>
#include <kernel/handle.h>
#include <kernel/proc.h>
#include <kernel/sched.h>

#define SYSCALL_ARGS   uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4
#define SYSCALL_UNUSED (void)a0, (void)a1, (void)a2, (void)a3, (void)a4
typedef int64_t (*syscall_fn)(SYSCALL_ARGS);

#define SYSCALL_DECLARE(name, short_name, num, nargs, powers) int64_t sys_##short_name(SYSCALL_ARGS);
ABI_SYSCALLS(SYSCALL_DECLARE)
#undef SYSCALL_DECLARE

/* Leaves the system call with the error `check` gives, if it gives one: a
 * handler checks its arguments in turn and answers the first refusal. */
#define SYSCALL_TRY(check)                                                                                             \
    do {                                                                                                               \
        int syscall_try_err_ = (check);                                                                                \
        if (syscall_try_err_)                                                                                          \
            return syscall_try_err_;                                                                                   \
    } while (0)

/* The object the caller's handle `h` names, of `type` and with the rights
 * `need`: 0 with *out, -EBADH or -EPERM. The typed forms below are what
 * handlers use. Inline: the IPC calls look up an endpoint on every
 * message. */
static inline int syscall_handle_arg(uint64_t h, enum handle_type type, rights_t need, void **out)
{
    return handle_get(&current->proc->handles, h, type, need, out, 0);
}

#define SYSCALL_OBJECT_ARG(name, object_type, handle_type)                                                             \
    static inline int name(uint64_t h, rights_t need, object_type **out)                                               \
    {                                                                                                                  \
        return syscall_handle_arg(h, handle_type, need, (void **)out);                                                 \
    }
struct process;
struct thread;
struct endpoint;
struct notification;
struct segment;
struct device;
struct irq_object;
SYSCALL_OBJECT_ARG(thread_arg, struct thread, HANDLE_THREAD)
SYSCALL_OBJECT_ARG(process_handle_arg, struct process, HANDLE_PROCESS)
SYSCALL_OBJECT_ARG(endpoint_arg, struct endpoint, HANDLE_ENDPOINT)
SYSCALL_OBJECT_ARG(notification_arg, struct notification, HANDLE_NOTIFICATION)
SYSCALL_OBJECT_ARG(segment_arg, struct segment, HANDLE_SEGMENT)
SYSCALL_OBJECT_ARG(device_arg, struct device, HANDLE_DEVICE)
SYSCALL_OBJECT_ARG(irq_arg, struct irq_object, HANDLE_IRQ)
#undef SYSCALL_OBJECT_ARG

/* The arguments of the calls that bind an event source to a notification
 * bit (SYS_EP_WATCH, SYS_IRQ_BIND, SYS_DEV_FAULT_BIND): the source `h`,
 * of `type` and with the rights `need`; the notification `nh` the events
 * are delivered to (RIGHT_SIGNAL); and its bit, not bit 63, since a wait
 * returns the bits as its non-negative result. */
static inline int syscall_binding_args(uint64_t h, enum handle_type type, rights_t need, void **source, uint64_t nh,
                                       uint64_t bit, struct notification **n)
{
    SYSCALL_TRY(syscall_handle_arg(h, type, need, source));
    SYSCALL_TRY(notification_arg(nh, RIGHT_SIGNAL, n));
    return bit >= 63 ? -EINVAL : 0;
}

/* The process a handle argument names with the rights `need`: HANDLE_SELF
 * (every right over oneself) or a process handle. 0 with *out, -EBADH,
 * -EPERM. */
int syscall_process_arg(uint64_t h, rights_t need, struct process **out);

/* A call that makes an object reserves the caller's handle for it first,
 * so that the object, once made, is never undone for want of a slot:
 * syscall_reserve_handle, then make it, then syscall_publish_handle with
 * the outcome, which fills the slot (returning the handle) or, when `err`
 * says the object was not made, frees it (returning err). The handle holds
 * a reference the caller has already taken. */
int syscall_reserve_handle(handle_t *h);
int64_t syscall_publish_handle(handle_t h, int err, void *object, enum handle_type type, rights_t rights);
/* As syscall_publish_handle, for an object something else holds too (a
 * process its threads, the process table a process): the handle takes its
 * own reference (object_handle_added) when it is filled. */
int64_t syscall_publish_shared(handle_t h, int err, void *object, enum handle_type type, rights_t rights);

#endif
