/*
 * ABI layer: messages. A message is a label, a few words, up to 128 bytes of
 * payload copied by the kernel, and at most one segment, which moves from the
 * sender to the receiver (unmapped from one, mapped into the other).
 */
#ifndef ABI_IPC_H
#define ABI_IPC_H

#include <abi/types.h>

#define IPC_WORDS       4
#define IPC_PAYLOAD_MAX 128
#define IPC_CAPS_MAX    3

/* A handle a message carries besides its segment: an endpoint, device,
 * process, notification or interrupt handle (segments travel in `seg`,
 * threads never). Copied, it keeps at most the rights the sender holds,
 * never RIGHT_RECV, and needs RIGHT_GRANT; moved (IPC_CAP_MOVE), the
 * sender's handle goes and the receiver's takes its rights (all, or those
 * asked), receive right included. */
struct ipc_cap {
    handle_t handle; /* in: the sender's (HANDLE_NONE: unused); out: the receiver's new handle */
    uint32_t rights; /* in: rights to keep (RIGHTS_SAME: all it may pass); out: the rights received */
    uint32_t flags;  /* in: IPC_CAP_*; out: 0 */
};
#define IPC_CAP_MOVE 0x1u

struct ipc_msg {
    uint64_t label; /* message type, the sender's choice (< IPC_LABEL_KERNEL_BASE) */
    badge_t badge;  /* out: the sender's pid, set by the kernel; BADGE_KERNEL for notifications */
    uint64_t w[IPC_WORDS];
    handle_t seg; /* in: segment to send (HANDLE_NONE: none); out: the segment received */
    union {
        uint64_t seg_addr; /* out: where the received segment is mapped */
        uint64_t seg_sid;  /* out, with IPC_RECV_NOMAP (nothing is mapped): the segment's sid, as SYS_SEG_INFO
                              gives it to any holder; the memory server's name for it */
    };
    uint64_t seg_size;                 /* out: its size in bytes */
    uint32_t len;                      /* payload bytes, <= IPC_PAYLOAD_MAX */
    uint16_t flags;                    /* in, when receiving: IPC_RECV_*; out: IPC_MSG_* */
    uint16_t seg_rights;               /* in: the rights the segment keeps (RIGHTS_SAME: all the sender's);
                              out: the rights of the handle received */
    struct ipc_cap caps[IPC_CAPS_MAX]; /* handles carried besides the segment */
    uint8_t payload[IPC_PAYLOAD_MAX];
};
ABI_STATIC_ASSERT(sizeof(struct ipc_msg) == 128 + IPC_PAYLOAD_MAX, "ipc_msg layout");

/* Whether a message names any handle besides its segment: the one test of
 * the kernel's send path and of libsys's server loop, so that the common
 * message, which names none, costs no per-handle pass. */
ABI_STATIC_ASSERT(HANDLE_NONE == 0, "ipc_msg_names_caps ORs the handles together");
static inline int ipc_msg_names_caps(const struct ipc_msg *m)
{
    handle_t any = HANDLE_NONE;

    for (unsigned i = 0; i < IPC_CAPS_MAX; i++)
        any |= m->caps[i].handle;
    return any != HANDLE_NONE;
}

/* Receive flags. */
#define IPC_RECV_NOMAP 0x1u /* keep a received segment unmapped (handle only) */
#define IPC_RECV_CAPS  0x2u /* accept handles: without it, a message carrying any is refused (-ENOTSUP) */

/* Set on a received message whose sender waits for the reply (a call). */
#define IPC_MSG_CALL 0x8000u

/* Labels from here up are the kernel's: a sender may not use them. */
#define IPC_LABEL_KERNEL_BASE 0xffff000000000000ull
/* A kernel notification: w[0] holds the IPC_NOTIFY_* bits that were pending. */
#define IPC_LABEL_NOTIFY (IPC_LABEL_KERNEL_BASE + 1)
#define IPC_NOTIFY_EXIT  0x1u /* processes ended: their segments wait in SYS_MS_RECLAIMED */
#define IPC_NOTIFY_DMA   0x2u /* segments came within or out of a device's reach: SYS_MS_DMA_CHANGES */
/* SYS_IPC_REPLY_RECV could not deliver the reply, and receives nothing this
 * time: w[0] the error, w[1] the reply's label, w[2] the pid it was for;
 * seg and caps[].handle the handles the reply named, all still the
 * receiver's (for it to free or keep). A caller that still waited got a
 * reply whose label is the error. Not sent for a reply that named no
 * handle to a caller that is gone. */
#define IPC_LABEL_REPLY_FAILED (IPC_LABEL_KERNEL_BASE + 2)

#endif
