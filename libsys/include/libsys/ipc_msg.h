/*
 * libsys layer: clearing a message's header, for the code that builds
 * messages on every call (the server loop's replies, the memsrv client's
 * requests). The kernel reads a message's header and only the first `len`
 * bytes of its payload (kernel/core/ipc.c), so a message whose header is
 * cleared sends nothing stale however its payload was left; clearing all
 * 256 bytes would cost a `rep stosq` step per word under QEMU's icount.
 */
#ifndef LIBSYS_IPC_MSG_H
#define LIBSYS_IPC_MSG_H

#include <stddef.h>

#include <abi/ipc.h>

/* Every field up to the payload, each written below: a field added to the
 * header without being cleared here fails this. */
_Static_assert(sizeof(((struct ipc_msg *)0)->label) + sizeof(((struct ipc_msg *)0)->badge) +
                       sizeof(((struct ipc_msg *)0)->w) + sizeof(((struct ipc_msg *)0)->seg) +
                       sizeof(((struct ipc_msg *)0)->seg_addr) + sizeof(((struct ipc_msg *)0)->seg_size) +
                       sizeof(((struct ipc_msg *)0)->len) + sizeof(((struct ipc_msg *)0)->flags) +
                       sizeof(((struct ipc_msg *)0)->seg_rights) + sizeof(((struct ipc_msg *)0)->caps) ==
                   offsetof(struct ipc_msg, payload),
               "ipc_msg_clear_header clears every header field");

/* The header zeroed (no segment, no handles, no payload); the payload's
 * bytes are left as they were. Stores the compiler can merge, where a
 * memset of the header would be a call and a `rep stosq`. */
static inline void ipc_msg_clear_header(struct ipc_msg *m)
{
    m->label = 0;
    m->badge = 0;
    for (unsigned i = 0; i < IPC_WORDS; i++)
        m->w[i] = 0;
    m->seg = HANDLE_NONE;
    m->seg_addr = 0;
    m->seg_size = 0;
    m->len = 0;
    m->flags = 0;
    m->seg_rights = 0;
    for (unsigned i = 0; i < IPC_CAPS_MAX; i++)
        m->caps[i] = (struct ipc_cap){ .handle = HANDLE_NONE };
}

#endif
