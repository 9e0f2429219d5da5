/*
 * Kernel layer: endpoints and synchronous message passing. A sender and a
 * receiver meet at an endpoint; whoever comes second completes the exchange
 * (copies the message, moves the segment) and wakes the other. A call keeps
 * the sender blocked until the receiver replies. All or nothing: if the
 * segment cannot move (pinned, no room in the receiver), nothing is
 * delivered and the sender gets the error.
 *
 * Rights: sending needs RIGHT_SEND on the endpoint handle, receiving
 * RIGHT_RECV, which exactly one handle holds (its creator's, or whoever it
 * was handed to whole). When that handle goes, the endpoint has no
 * receiver: every waiting and later sender gets -EPEER.
 */
#ifndef KERNEL_IPC_H
#define KERNEL_IPC_H

#include <stdint.h>
#include <abi/rights.h>
#include <common/list.h>
#include <kernel/sched.h>

struct account;
struct process;

struct notification;

struct endpoint {
    uint32_t refs;               /* handles naming it + blocked threads holding it + the kernel's */
    uint32_t handles;            /* handles naming it */
    bool has_receiver;           /* a handle with RIGHT_RECV exists */
    struct notification *bound;  /* receivers also collect its bits (a reference) */
    struct wait_queue senders;   /* blocked in send or call */
    struct wait_queue receivers; /* blocked in receive */
    struct account *account;     /* its creator's, charged for it */
    struct list_node watches;    /* one-shot watches for the loss of its receiver */
    uint32_t receiver_gen;       /* changes when the receive right moves or goes */
};

void ipc_init(void);
/* A new endpoint charged to `account` (0: the kernel's own), with one
 * reference for the caller to hand to a handle (endpoint_handle_added). */
int endpoint_create(struct account *account, struct endpoint **out);
void endpoint_get(struct endpoint *ep);
void endpoint_put(struct endpoint *ep);
/* A handle with `rights` now names ep (the caller moved a reference into it). */
void endpoint_handle_added(struct endpoint *ep, rights_t rights);
/* Handle h `holder` had, naming ep with `rights`, went away: drops its
 * reference (h: HANDLE_NONE when its holder ended). */
void endpoint_handle_dropped(struct endpoint *ep, rights_t rights, struct process *holder, handle_t h);
/* The receive right moved from one handle to another (grant). */
void endpoint_receiver_moved(struct endpoint *ep);
/* Signals bit `bit` of n once the endpoint has no receiver any more (at
 * once if it has none now): a client learns that its server ended. The
 * watch is charged to the watcher's account until it fires, the endpoint
 * goes, the watcher ends, or its handle `via` (the one it named ep by) is
 * closed or moved away. -EDQUOT, -ENOMEM. */
int endpoint_watch(struct endpoint *ep, struct notification *n, unsigned bit, struct process *watcher, handle_t via);
/* One watch `watcher` made on ep for bit `bit` of n ends unfired: 0, or
 * -ENOENT if it has none (fired already, or never made). */
int endpoint_unwatch(struct endpoint *ep, struct notification *n, unsigned bit, struct process *watcher);
/* Process p is being released: the watches it made go. */
void ipc_watcher_gone(struct process *p);
/* Binds a notification to the endpoint (0: unbinds): -EBUSY if either is
 * bound already. */
int endpoint_bind(struct endpoint *ep, struct notification *n);
/* The bound notification has bits: a waiting receiver collects them. */
void ipc_notification_ready(struct endpoint *ep);

/* user_msg points to a whole struct ipc_msg in the caller's memory. */
int64_t ipc_send(struct endpoint *ep, uint64_t user_msg, uint64_t timeout_ns, bool call);
int64_t ipc_recv(struct endpoint *ep, uint64_t user_msg, uint64_t timeout_ns);
int64_t ipc_reply(uint64_t user_msg);
/* Replies (if a reply is owed) and receives. A reply that fails does not
 * stop the server: the caller, if it still waits, gets the error as its
 * reply's label, and the receive returns an IPC_LABEL_REPLY_FAILED report
 * at once instead of waiting (abi/ipc.h); only a reply naming nothing, to
 * a caller that is gone, is passed over silently. */
int64_t ipc_reply_recv(struct endpoint *ep, uint64_t user_msg, uint64_t timeout_ns);
/* A thread is ending: callers waiting on its reply get -EPEER, a segment
 * its blocked send carried stays its process's. */
void ipc_thread_dead(struct thread *t);

#endif
