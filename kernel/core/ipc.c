/*
 * Kernel layer: endpoints and message passing (see kernel/ipc.h). Called by
 * the IPC system calls, and by the process layer for exit notifications.
 *
 * A message travels through kernel memory: the sender's copy sits in its
 * thread (struct ipc_state) until a receiver takes it into its own thread,
 * and the receiver copies it out to its user buffer when it runs again, in
 * its own address space. The segment, if any, moves at the moment of
 * delivery (segment_move: reserve in the receiver, unmap from the sender,
 * map into the receiver), so it is never mapped in two places.
 *
 * Phases of a thread: SENDING (queued on senders), RECEIVING (queued on
 * receivers), AWAIT_REPLY (its call was taken; blocked on no queue, named by
 * the server's reply_to, which holds a reference to it).
 */
#include <abi/errno.h>
#include <abi/ipc.h>
#include <common/string.h>
#include <kernel/console.h>
#include <kernel/ipc.h>
#include <kernel/proc.h>
#include <kernel/segment.h>
#include <kernel/slab.h>
#include <kernel/usercopy.h>

#define MSG_HEADER_SIZE offsetof(struct ipc_msg, payload)

static struct slab_cache endpoint_cache;

void ipc_init(void) { slab_cache_init(&endpoint_cache, "endpoint", sizeof(struct endpoint)); }

int endpoint_create(struct endpoint **out)
{
    struct endpoint *ep = slab_alloc(&endpoint_cache);
    if (!ep)
        return -ENOMEM;
    ep->refs = 1;
    *out = ep;
    return 0;
}

void endpoint_get(struct endpoint *ep) { ep->refs++; }

void endpoint_put(struct endpoint *ep)
{
    VERIFY(ep->refs > 0);
    if (--ep->refs)
        return;
    /* Nobody can name it any more: whoever still waits on it learns so. */
    sched_wake_all(&ep->senders, -EPEER);
    sched_wake_all(&ep->receivers, -EPEER);
    slab_free(&endpoint_cache, ep);
}

/* A message buffer is a whole struct ipc_msg in the caller's memory:
 * checked once per call, and again after the caller has blocked only if
 * something was unmapped from its process meanwhile (another of its threads
 * may have sent the buffer's segment away). */
static bool buffer_ok(uint64_t user_msg, bool write)
{
    /* Servers and clients loop on one buffer: once it is known writable,
     * it stays so until something is unmapped from the process. */
    struct ipc_state *st = &current->ipc;
    uint64_t generation = current->proc->unmap_generation;
    if (st->checked_buffer == user_msg && st->checked_generation == generation && user_msg)
        return true;
    if (!user_range_ok(user_msg, sizeof(struct ipc_msg), write))
        return false;
    if (write) {
        st->checked_buffer = user_msg;
        st->checked_generation = generation;
    }
    return true;
}

bool ipc_buffer_ok(uint64_t user_msg) { return buffer_ok(user_msg, true); }

/* Copies a message in from a checked buffer and checks its contents;
 * nothing changes on failure. */
static int load_message(uint64_t user_msg, struct ipc_state *st, bool reply)
{
    const struct ipc_msg *u = (const struct ipc_msg *)user_msg;
    memcpy(&st->msg, u, MSG_HEADER_SIZE);
    if (st->msg.len > IPC_PAYLOAD_MAX)
        return -EINVAL;
    memcpy(st->msg.payload, u->payload, st->msg.len);
    if (!reply && st->msg.label >= IPC_LABEL_KERNEL_BASE)
        return -EINVAL;
    st->seg = 0;
    if (st->msg.seg != HANDLE_NONE) {
        struct segment *s = handle_lookup(&current->proc->handles, st->msg.seg, HANDLE_SEGMENT);
        if (!s)
            return -EBADH;
        if (s->pins)
            return -EBUSY;
        st->seg = s;
    }
    return 0;
}

static int store_message(uint64_t user_msg, const struct ipc_msg *msg, bool checked)
{
    if (!checked && !buffer_ok(user_msg, true))
        return -EFAULT;
    memcpy((void *)user_msg, msg, MSG_HEADER_SIZE + msg->len);
    return 0;
}

/* Moves the sender's message (and segment) to the receiver. On failure the
 * receiver got nothing and the segment is still the sender's. */
static int deliver(struct thread *from, struct thread *to)
{
    struct segment *s = from->ipc.seg;
    if (s) {
        /* The sender's other threads may have moved or pinned it meanwhile. */
        if (s->owner != from->proc)
            return -EBADH;
        bool map = !(to->ipc.recv_flags & IPC_RECV_NOMAP);
        int err = segment_move(s, to->proc, map, 0, SEG_PROT_WRITE);
        if (err)
            return err;
    }
    struct ipc_msg *m = &to->ipc.msg;
    memcpy(m, &from->ipc.msg, MSG_HEADER_SIZE + from->ipc.msg.len);
    m->badge = from->proc->pid;
    m->flags = 0;
    m->seg = s ? s->handle : HANDLE_NONE;
    m->seg_addr = s ? s->vaddr : 0;
    m->seg_size = s ? s->size : 0;
    from->ipc.seg = 0;
    return 0;
}

/* The receiver `to` took `from`'s message: a plain send is done; a call now
 * waits for `to`'s reply. */
static void taken(struct thread *from, struct thread *to)
{
    if (from->ipc.is_call) {
        from->ipc.phase = IPC_AWAIT_REPLY;
        thread_get(from);
        to->ipc.reply_to = from;
    } else {
        from->ipc.phase = IPC_IDLE;
    }
}

/* A server that takes a new message gives up the reply it still owed. */
static void drop_reply(struct thread *server)
{
    struct thread *caller = server->ipc.reply_to;
    if (!caller)
        return;
    server->ipc.reply_to = 0;
    if (caller->state == THREAD_BLOCKED && caller->ipc.phase == IPC_AWAIT_REPLY) {
        caller->ipc.phase = IPC_IDLE;
        sched_wake(caller, -EPEER);
    }
    thread_put(caller);
}

int64_t ipc_send(struct endpoint *ep, uint64_t user_msg, uint64_t timeout_ns, bool call)
{
    struct thread *self = current;
    if (!buffer_ok(user_msg, call))
        return -EFAULT;
    uint64_t mappings = self->proc->unmap_generation;
    int err = load_message(user_msg, &self->ipc, false);
    if (err)
        return err;
    self->ipc.is_call = call;
    self->ipc.recv_flags = call ? (self->ipc.msg.flags & IPC_RECV_NOMAP) : 0;

    struct thread *receiver = ep->receivers.head;
    if (receiver) {
        err = deliver(self, receiver);
        if (err) {
            self->ipc.seg = 0;
            return err;
        }
        receiver->ipc.phase = IPC_IDLE;
        taken(self, receiver);
        if (!call) {
            sched_wake(receiver, 0);
            return 0;
        }
        err = (int)sched_block_handoff(receiver, 0);
    } else {
        self->ipc.phase = IPC_SENDING;
        err = (int)sched_block(&ep->senders, timeout_ns);
        if (self->ipc.phase == IPC_SENDING) /* timed out, or refused on delivery */
            self->ipc.phase = IPC_IDLE;
    }
    self->ipc.seg = 0;
    if (err || !call)
        return err;
    return store_message(user_msg, &self->ipc.msg, mappings == self->proc->unmap_generation);
}

int64_t ipc_recv(struct endpoint *ep, uint64_t user_msg, uint64_t timeout_ns, bool checked)
{
    struct thread *self = current;
    if (!checked && !buffer_ok(user_msg, true))
        return -EFAULT;
    uint32_t flags = ((const struct ipc_msg *)user_msg)->flags;
    uint64_t mappings = self->proc->unmap_generation;
    drop_reply(self);
    self->ipc.recv_flags = flags & IPC_RECV_NOMAP;

    if (ep->notify_bits) {
        self->ipc.msg = (struct ipc_msg){ .label = IPC_LABEL_NOTIFY, .badge = BADGE_KERNEL };
        self->ipc.msg.w[0] = ep->notify_bits;
        ep->notify_bits = 0;
        return store_message(user_msg, &self->ipc.msg, true);
    }
    for (struct thread *sender = ep->senders.head; sender; sender = ep->senders.head) {
        sched_unqueue(sender);
        int err = deliver(sender, self);
        if (err) {
            sender->ipc.phase = IPC_IDLE;
            sched_wake(sender, err);
            continue;
        }
        taken(sender, self);
        if (!sender->ipc.is_call)
            sched_wake(sender, 0);
        return store_message(user_msg, &self->ipc.msg, true);
    }
    self->ipc.phase = IPC_RECEIVING;
    int64_t err = sched_block(&ep->receivers, timeout_ns);
    if (self->ipc.phase == IPC_RECEIVING)
        self->ipc.phase = IPC_IDLE;
    if (err)
        return err;
    return store_message(user_msg, &self->ipc.msg, mappings == self->proc->unmap_generation);
}

int64_t ipc_reply(uint64_t user_msg, bool checked)
{
    struct thread *self = current;
    struct thread *caller = self->ipc.reply_to;
    if (!caller)
        return -ENOENT;
    if (!checked && !buffer_ok(user_msg, false))
        return -EFAULT;
    int err = load_message(user_msg, &self->ipc, true);
    if (err)
        return err; /* the caller still waits; the server may reply again */
    self->ipc.reply_to = 0;
    if (caller->state != THREAD_BLOCKED || caller->ipc.phase != IPC_AWAIT_REPLY) {
        self->ipc.seg = 0;
        thread_put(caller);
        return -EPEER;
    }
    err = deliver(self, caller);
    self->ipc.seg = 0;
    caller->ipc.phase = IPC_IDLE;
    /* A reply the caller cannot take ends its call with the same error. */
    sched_wake(caller, err);
    thread_put(caller);
    return err;
}

void ipc_notify(struct endpoint *ep, uint32_t bits)
{
    ep->notify_bits |= bits;
    struct thread *receiver = ep->receivers.head;
    if (!receiver)
        return;
    receiver->ipc.msg = (struct ipc_msg){ .label = IPC_LABEL_NOTIFY, .badge = BADGE_KERNEL };
    receiver->ipc.msg.w[0] = ep->notify_bits;
    ep->notify_bits = 0;
    receiver->ipc.phase = IPC_IDLE;
    sched_wake(receiver, 0);
}

void ipc_thread_dead(struct thread *t)
{
    drop_reply(t);
    t->ipc.phase = IPC_IDLE;
    t->ipc.seg = 0;
}
