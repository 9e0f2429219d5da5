/*
 * Kernel layer: notifications. A notification is a word of bits that the
 * kernel (interrupts, process exits for the memory server) or a holder of
 * RIGHT_SIGNAL sets, and that a holder of RIGHT_WAIT collects: waiting
 * returns the bits set since the last collection and clears them. Signals
 * never block and never queue beyond the word (setting a set bit is a
 * no-op), so a notification cannot be used to exhaust anything.
 *
 * A notification may be bound to an endpoint (SYS_EP_BIND, by the holder
 * of the endpoint's receive right): receiving on the endpoint then also
 * returns when bits are set, as a message with label IPC_LABEL_NOTIFY,
 * badge BADGE_KERNEL and the bits in w[0]. A server waits for requests and
 * events together that way.
 *
 * Callers: the system calls (sys_ipc.c), IPC (ipc.c: bound receivers), the
 * interrupt layer (irq.c), the process layer (exit notifications).
 */
#ifndef KERNEL_NOTIFICATION_H
#define KERNEL_NOTIFICATION_H

#include <stdint.h>
#include <abi/errno.h>
#include <kernel/sched.h>

struct account;
struct endpoint;

struct notification {
    uint32_t refs;             /* handles + the kernel's holders (a bound endpoint, interrupts) */
    uint64_t bits;             /* set and not yet collected */
    struct wait_queue waiters; /* SYS_NOTIFY_WAIT */
    struct endpoint *bound;    /* receivers of this endpoint collect it too (no reference) */
    struct account *account;   /* charged for it */
};

void notification_init(void);
int notification_create(struct account *account, struct notification **out);
void notification_get(struct notification *n);
void notification_put(struct notification *n);
/* Sets bits: a waiting collector (on the notification or its endpoint) gets
 * them at once. Never blocks. */
void notification_signal(struct notification *n, uint64_t bits);
/* Collects and clears the bits, waiting up to timeout_ns for some. */
int64_t notification_wait(struct notification *n, uint64_t timeout_ns);
/* Takes the bits if any are set (for a receiver of the bound endpoint). */
uint64_t notification_take(struct notification *n);

/* Where an event source the kernel owns (an interrupt object, a device's
 * DMA faults) signals: one bit of a notification, held by a reference
 * while bound. */
struct notify_bit {
    struct notification *to; /* 0 while unbound */
    uint64_t bit;
};
/* Binds b to bit `bit` of n: -EINVAL for bit 63 (a wait returns the bits
 * as its non-negative result), -EBUSY if b is bound already. */
static inline int notify_bit_bind(struct notify_bit *b, struct notification *n, unsigned bit)
{
    if (bit >= 63)
        return -EINVAL;
    if (b->to)
        return -EBUSY;
    notification_get(n);
    *b = (struct notify_bit){ .to = n, .bit = 1ull << bit };
    return 0;
}

/* Drops the binding and its reference; nothing if unbound. */
static inline void notify_bit_unbind(struct notify_bit *b)
{
    if (b->to)
        notification_put(b->to);
    b->to = 0;
}

/* Sets the bound bit; nothing if unbound. */
static inline void notify_bit_signal(const struct notify_bit *b)
{
    if (b->to)
        notification_signal(b->to, b->bit);
}

#endif
