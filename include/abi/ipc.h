/*
 * ABI layer: messages. A message is a label, a few words, up to 128 bytes of
 * payload copied by the kernel, and at most one segment, which moves from the
 * sender to the receiver (unmapped from one, mapped into the other).
 */
#ifndef ABI_IPC_H
#define ABI_IPC_H

#include <abi/types.h>

#define IPC_WORDS 4
#define IPC_PAYLOAD_MAX 128

struct ipc_msg {
    uint64_t label;        /* message type, the sender's choice (< IPC_LABEL_KERNEL_BASE) */
    badge_t badge;         /* out: the sender's pid, set by the kernel; BADGE_KERNEL for notifications */
    uint64_t w[IPC_WORDS];
    handle_t seg;          /* in: segment to send (HANDLE_NONE: none); out: the segment received */
    uint64_t seg_addr;     /* out: where the received segment is mapped (0 with IPC_RECV_NOMAP) */
    uint64_t seg_size;     /* out: its size in bytes */
    uint32_t len;          /* payload bytes, <= IPC_PAYLOAD_MAX */
    uint16_t flags;        /* in, when receiving: IPC_RECV_* */
    uint16_t seg_rights;   /* in: the rights the segment keeps (RIGHTS_SAME: all the sender's);
                              out: the rights of the handle received */
    uint8_t payload[IPC_PAYLOAD_MAX];
};
ABI_STATIC_ASSERT(sizeof(struct ipc_msg) == 80 + IPC_PAYLOAD_MAX, "ipc_msg layout");

/* Receive flags. */
#define IPC_RECV_NOMAP 0x1u /* keep a received segment unmapped (handle only) */

/* Labels from here up are the kernel's: a sender may not use them. */
#define IPC_LABEL_KERNEL_BASE 0xffff000000000000ull
/* A kernel notification: w[0] holds the IPC_NOTIFY_* bits that were pending. */
#define IPC_LABEL_NOTIFY (IPC_LABEL_KERNEL_BASE + 1)
#define IPC_NOTIFY_EXIT 0x1u /* processes ended: their segments wait in SYS_MS_RECLAIMED */

#endif
