/*
 * Kernel layer: endpoints and synchronous message passing. A sender and a
 * receiver meet at an endpoint; whoever comes second completes the exchange
 * (copies the message, moves the segment) and wakes the other. A call keeps
 * the sender blocked until the receiver replies. All or nothing: if the
 * segment cannot move (pinned, no room in the receiver), nothing is
 * delivered and the sender gets the error.
 */
#ifndef KERNEL_IPC_H
#define KERNEL_IPC_H

#include <stdint.h>
#include <kernel/sched.h>

struct endpoint {
    uint32_t refs;                /* handles naming it */
    uint32_t notify_bits;         /* kernel notifications not yet received */
    struct wait_queue senders;    /* blocked in send or call */
    struct wait_queue receivers;  /* blocked in receive */
};

void ipc_init(void);
int endpoint_create(struct endpoint **out);
void endpoint_get(struct endpoint *ep);
void endpoint_put(struct endpoint *ep);
/* Posts kernel notification bits; a waiting receiver gets them at once. */
void ipc_notify(struct endpoint *ep, uint32_t bits);

/* user_msg points to a whole struct ipc_msg in the caller's memory; with
 * `checked` the caller has already verified it (writable). */
int64_t ipc_send(struct endpoint *ep, uint64_t user_msg, uint64_t timeout_ns, bool call);
int64_t ipc_recv(struct endpoint *ep, uint64_t user_msg, uint64_t timeout_ns, bool checked);
int64_t ipc_reply(uint64_t user_msg, bool checked);
/* Checks that a message buffer is a writable struct ipc_msg. */
bool ipc_buffer_ok(uint64_t user_msg);
/* A thread is ending: callers waiting on its reply get -EPEER. */
void ipc_thread_dead(struct thread *t);

#endif
