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

static int endpoint_arg(uint64_t h, rights_t need, struct endpoint **ep)
{
    return handle_get(&current->proc->handles, h, HANDLE_ENDPOINT, need, (void **)ep, 0);
}

/* A new object and a handle to it in the caller's table, or neither: the
 * handle slot is taken first, so the object is made only when it can be
 * named. */
static int64_t new_object_handle(enum handle_type type, rights_t rights,
                                 int (*create)(struct account *account, void **out), void **object)
{
    struct process *p = current->proc;
    handle_t h;
    int err = handle_install(&p->handles, 0, HANDLE_RESERVED, 0, &h);
    if (err)
        return err;
    err = create(p->account, object);
    if (err) {
        handle_remove(&p->handles, h, 0);
        return err;
    }
    handle_fill(&p->handles, h, *object, type, rights);
    return (int64_t)h;
}

static int create_endpoint(struct account *account, void **out)
{
    struct endpoint *ep = 0;
    int err = endpoint_create(account, &ep);
    *out = ep;
    return err;
}

int64_t sys_ep_create(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    void *ep = 0;
    int64_t h = new_object_handle(HANDLE_ENDPOINT, RIGHTS_ENDPOINT, create_endpoint, &ep);
    if (h >= 0)
        endpoint_handle_added(ep, RIGHTS_ENDPOINT);
    return h;
}

int64_t sys_ipc_send(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct endpoint *ep;
    int err = endpoint_arg(a0, RIGHT_SEND, &ep);
    return err ? err : ipc_send(ep, a1, a2, false);
}

int64_t sys_ipc_call(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct endpoint *ep;
    int err = endpoint_arg(a0, RIGHT_SEND, &ep);
    return err ? err : ipc_send(ep, a1, a2, true);
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
    if (err)
        return err;
    return ipc_reply_recv(ep, a1, a2);
}

/* Notifications. */

static int notification_arg(uint64_t h, rights_t need, struct notification **n)
{
    return handle_get(&current->proc->handles, h, HANDLE_NOTIFICATION, need, (void **)n, 0);
}

static int create_notification(struct account *account, void **out)
{
    struct notification *n = 0;
    int err = notification_create(account, &n);
    *out = n;
    return err;
}

int64_t sys_notify_create(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    void *n = 0;
    return new_object_handle(HANDLE_NOTIFICATION, RIGHTS_NOTIFICATION, create_notification, &n);
}

/* Bit 63 stays clear: collected bits come back as a non-negative result. */
#define NOTIFY_BITS_MASK 0x7fffffffffffffffull

int64_t sys_notify_signal(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct notification *n;
    int err = notification_arg(a0, RIGHT_SIGNAL, &n);
    if (err)
        return err;
    if (!a1 || (a1 & ~NOTIFY_BITS_MASK))
        return -EINVAL;
    notification_signal(n, a1);
    return 0;
}

int64_t sys_notify_wait(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct notification *n;
    int err = notification_arg(a0, RIGHT_WAIT, &n);
    if (err)
        return err;
    if (n->bound)
        return -EBUSY; /* its bits go to the endpoint's receivers */
    return notification_wait(n, a1);
}

int64_t sys_ep_watch(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct endpoint *ep;
    struct notification *n;
    int err = endpoint_arg(a0, RIGHT_SEND, &ep);
    if (!err)
        err = notification_arg(a1, RIGHT_SIGNAL, &n);
    if (err)
        return err;
    if (a2 >= 63)
        return -EINVAL;
    return endpoint_watch(ep, n, (unsigned)a2, current->proc->account);
}

int64_t sys_ep_bind(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct endpoint *ep;
    int err = endpoint_arg(a0, RIGHT_RECV, &ep);
    if (err)
        return err;
    if (a1 == HANDLE_NONE)
        return endpoint_bind(ep, 0);
    struct notification *n;
    if ((err = notification_arg(a1, RIGHT_WAIT, &n)) != 0)
        return err;
    if (sched_first_waiter(&n->waiters))
        return -EBUSY;
    return endpoint_bind(ep, n);
}
