/*
 * Kernel layer: system calls of endpoints and messages (see core/syscalls.h
 * and kernel/ipc.h). Each decodes its handles with the rights it needs and
 * hands over to ipc.c.
 */
#include <abi/errno.h>
#include <kernel/ipc.h>
#include <kernel/notification.h>
#include <kernel/proc.h>
#include "syscalls.h"

int64_t sys_ep_create(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    handle_t h;
    SYSCALL_TRY(syscall_reserve_handle(&h));
    struct endpoint *ep = 0;
    int err = endpoint_create(current->proc->account, &ep);
    int64_t published = syscall_publish_handle(h, err, ep, HANDLE_ENDPOINT, RIGHTS_ENDPOINT);
    if (published >= 0)
        endpoint_handle_added(ep, RIGHTS_ENDPOINT);
    return published;
}

/* A send and a call decode alike; a call then waits for the reply. */
static inline int64_t send(uint64_t h, uint64_t msg, uint64_t timeout_ns, bool call)
{
    struct endpoint *ep;
    int err = endpoint_arg(h, RIGHT_SEND, &ep);
    return err ? err : ipc_send(ep, msg, timeout_ns, call);
}

int64_t sys_ipc_send(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    return send(a0, a1, a2, false);
}

int64_t sys_ipc_call(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    return send(a0, a1, a2, true);
}

int64_t sys_ipc_recv(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct endpoint *ep;
    int err = endpoint_arg(a0, RIGHT_RECV, &ep);
    return err ? err : ipc_recv(ep, a1, a2);
}

int64_t sys_ipc_reply(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    return ipc_reply(a0);
}

int64_t sys_ipc_reply_recv(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct endpoint *ep;
    int err = endpoint_arg(a0, RIGHT_RECV, &ep);
    return err ? err : ipc_reply_recv(ep, a1, a2);
}

/* Notifications. */

int64_t sys_notify_create(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    handle_t h;
    SYSCALL_TRY(syscall_reserve_handle(&h));
    struct notification *n = 0;
    int err = notification_create(current->proc->account, &n);
    return syscall_publish_handle(h, err, n, HANDLE_NOTIFICATION, RIGHTS_NOTIFICATION);
}

/* Bit 63 stays clear: collected bits come back as a non-negative result. */
#define NOTIFY_BITS_MASK 0x7fffffffffffffffull

int64_t sys_notify_signal(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct notification *n;
    SYSCALL_TRY(notification_arg(a0, RIGHT_SIGNAL, &n));
    if (!a1 || (a1 & ~NOTIFY_BITS_MASK))
        return -EINVAL;
    notification_signal(n, a1);
    return 0;
}

int64_t sys_notify_wait(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct notification *n;
    SYSCALL_TRY(notification_arg(a0, RIGHT_WAIT, &n));
    if (n->bound)
        return -EBUSY; /* its bits go to the endpoint's receivers */
    return notification_wait(n, a1);
}

/* A watch made or ended: both decode alike. */
static int64_t watch(uint64_t h, uint64_t nh, uint64_t bit, bool end)
{
    struct endpoint *ep;
    struct notification *n;
    SYSCALL_TRY(syscall_binding_args(h, HANDLE_ENDPOINT, RIGHT_SEND, (void **)&ep, nh, bit, &n));
    return end ? endpoint_unwatch(ep, n, (unsigned)bit, current->proc)
               : endpoint_watch(ep, n, (unsigned)bit, current->proc, h);
}

int64_t sys_ep_watch(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    return watch(a0, a1, a2, false);
}

int64_t sys_ep_unwatch(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    return watch(a0, a1, a2, true);
}

int64_t sys_ep_bind(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct endpoint *ep;
    SYSCALL_TRY(endpoint_arg(a0, RIGHT_RECV, &ep));
    if (a1 == HANDLE_NONE)
        return endpoint_bind(ep, 0);
    struct notification *n;
    SYSCALL_TRY(notification_arg(a1, RIGHT_WAIT, &n));
    if (sched_first_waiter(&n->waiters))
        return -EBUSY;
    return endpoint_bind(ep, n);
}
