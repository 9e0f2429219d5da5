/*
 * Kernel layer: system calls of endpoints and messages (see core/syscalls.h
 * and kernel/ipc.h).
 */
#include <abi/errno.h>
#include <kernel/ipc.h>
#include <kernel/proc.h>
#include "syscalls.h"

static struct endpoint *endpoint_arg(uint64_t h) { return handle_lookup(&current->proc->handles, h, HANDLE_ENDPOINT); }

int64_t sys_ep_create(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct endpoint *ep;
    int err = endpoint_create(&ep);
    if (err)
        return err;
    handle_t h;
    err = handle_install(&current->proc->handles, ep, HANDLE_ENDPOINT, &h);
    if (err) {
        endpoint_put(ep);
        return err;
    }
    return (int64_t)h;
}

int64_t sys_ipc_send(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct endpoint *ep = endpoint_arg(a0);
    return ep ? ipc_send(ep, a1, a2, false) : -EBADH;
}

int64_t sys_ipc_call(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct endpoint *ep = endpoint_arg(a0);
    return ep ? ipc_send(ep, a1, a2, true) : -EBADH;
}

int64_t sys_ipc_recv(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct endpoint *ep = endpoint_arg(a0);
    return ep ? ipc_recv(ep, a1, a2, false) : -EBADH;
}

int64_t sys_ipc_reply(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    return ipc_reply(a0, false);
}

int64_t sys_ipc_reply_recv(SYSCALL_ARGS)
{
    SYSCALL_UNUSED;
    struct endpoint *ep = endpoint_arg(a0);
    if (!ep)
        return -EBADH;
    if (!ipc_buffer_ok(a1))
        return -EFAULT;
    /* A reply whose caller is gone must not stop a server from serving: it
     * receives on. Any other failure, and any failed reply that carried a
     * segment (still the server's), returns at once, so the server can put
     * things right. */
    if (current->ipc.reply_to) {
        int64_t err = ipc_reply(a1, true);
        if (err && (err != -EPEER || current->ipc.msg.seg != HANDLE_NONE))
            return err;
    }
    return ipc_recv(ep, a1, a2, true);
}
