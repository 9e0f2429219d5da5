/*
 * Kernel layer: endpoints and message passing (see kernel/ipc.h). Called by
 * the IPC system calls, and by the process layer for exit notifications.
 *
 * A message travels through kernel memory: the sender's copy sits in its
 * thread (struct ipc_state) until a receiver takes it into its own thread,
 * and the receiver copies it out to its user buffer when it runs again, in
 * its own address space. A message that names no handle, sent to a thread
 * already waiting for it, skips the sender's copy: it is read straight into
 * the receiver's thread, and a segment it names moves at once
 * (deliver_direct). User buffers are only ever touched by the
 * fault-recovering copies (kernel/usercopy.h), each time afresh: a buffer
 * that vanished meanwhile (its segment sent away by another thread, or by
 * this very call) gives -EFAULT.
 *
 * In-flight segments: a segment attached to a message that is not
 * delivered at once (deliver_direct) stays the sender's,
 * mapped, until the moment of delivery, when it moves (segment_move:
 * reserve in the receiver, unmap from the sender, map into the receiver),
 * so it is never mapped in two places. While the send is under way the
 * segment is marked in flight (s->in_flight = the sending thread, and the
 * thread's ipc.seg = s): free, give, pin, revoke and a second send of it
 * are refused with -EBUSY, so the object the thread points to can neither
 * go away nor change hands before the send ends. Every way a send ends
 * (delivered, refused, timed out, the thread killed) clears both pointers.
 *
 * A thread in a send, call or receive holds a reference on its endpoint
 * (sched_hold) for the whole system call, not only while it waits on the
 * endpoint's queues: a copy from or to its buffer may wait for a page
 * being migrated, with the kernel lock let go, and another thread may
 * close the handle meanwhile. A server holds a reference on the caller it
 * owes a reply. Whether the receive right stayed put across such a wait
 * is told by the endpoint's receiver_gen.
 *
 * Handles a message carries (ipc_msg.caps) are looked up by value at the
 * moment of delivery, like everything else the sender named: if the sender
 * closed one meanwhile, delivery fails and nothing moves. The receiver's
 * slots are reserved before anything is committed.
 *
 * Phases of a thread: SENDING (queued on senders), RECEIVING (queued on
 * receivers), AWAIT_REPLY (its call was taken; blocked on no queue, named by
 * the server's reply_to).
 */
#include <abi/errno.h>
#include <abi/ipc.h>
#include <common/string.h>
#include <kernel/aspace.h>
#include <kernel/console.h>
#include <kernel/ipc.h>
#include <kernel/notification.h>
#include <kernel/proc.h>
#include <kernel/ref.h>
#include <kernel/segment.h>
#include <kernel/slab.h>
#include <kernel/usercopy.h>

#define MSG_HEADER_SIZE offsetof(struct ipc_msg, payload)

/* The steps of the call, reply and receive paths that their callers take
 * in whole: left to the compiler, the calls between them cost about a
 * tenth of a round trip (docs/benchmarks.md). */
#define FAST_PATH_STEP static inline __attribute__((always_inline))

static struct slab_cache endpoint_cache, watch_cache;

/* A one-shot watch on an endpoint's receiver (endpoint_watch). It lives
 * until it fires, the endpoint goes, or the process that made it ends. */
struct ep_watch {
    struct list_node link;         /* on the endpoint's watches */
    struct list_node watcher_link; /* on its maker's (process.watches) */
    struct endpoint *ep;           /* the endpoint watched (no reference: its end ends the watch) */
    struct notification *notify;   /* a reference */
    uint64_t bits;
    struct process *watcher; /* its maker: charged for it, counts it, frees it (ipc_watcher_gone) */
    handle_t via;            /* the watcher's handle it was made through: the watch lasts while it does */
};

void ipc_init(void)
{
    slab_cache_init(&endpoint_cache, "endpoint", sizeof(struct endpoint));
    slab_cache_init(&watch_cache, "endpoint watch", sizeof(struct ep_watch));
}

int endpoint_create(struct account *account, struct endpoint **out)
{
    struct endpoint *ep;
    int err = ACCOUNT_OBJECT_CREATE(account, &endpoint_cache, &ep);
    if (err)
        return err;
    list_init(&ep->watches);
    *out = ep;
    return 0;
}

static void end_watches(struct endpoint *ep, bool fire);

void endpoint_get(struct endpoint *ep) { ep->refs++; }

static void endpoint_free(struct endpoint *ep)
{
    VERIFY(!sched_first_waiter(&ep->senders) && !sched_first_waiter(&ep->receivers));
    endpoint_bind(ep, 0);
    end_watches(ep, false); /* it had a receiver to the end: nothing to tell */
    account_object_free(ep->account, &endpoint_cache, ep);
}

/* Inline here: a receive that waited drops the reference it held. */
FAST_PATH_STEP void endpoint_drop(struct endpoint *ep)
{
    if (ref_drop(&ep->refs))
        endpoint_free(ep);
}

void endpoint_put(struct endpoint *ep) { endpoint_drop(ep); }

static void endpoint_put_object(void *ep) { endpoint_put(ep); }

/* The current system call holds `ep` until endpoint_hold_end (and the
 * thread's death drops the hold if it ends first). */
FAST_PATH_STEP void endpoint_hold(struct endpoint *ep)
{
    ep->refs++;
    sched_hold(endpoint_put_object, ep);
}

FAST_PATH_STEP void endpoint_hold_end(struct thread *self, struct endpoint *ep)
{
    ASSERT(self->hold.put == endpoint_put_object && self->hold.object == ep);
    self->hold = (struct wait_hold){ 0 };
    endpoint_drop(ep);
}

static void free_watch(struct ep_watch *w)
{
    list_remove(&w->link);
    list_remove(&w->watcher_link);
    w->watcher->watch_count--;
    notification_put(w->notify);
    account_object_free(w->watcher->account, &watch_cache, w);
}

/* Ends every watch, signalling its bits if `fire`. */
static void end_watches(struct endpoint *ep, bool fire)
{
    struct list_node *n;
    while ((n = list_first(&ep->watches)) != 0) {
        struct ep_watch *w = LIST_ENTRY(n, struct ep_watch, link);
        if (fire)
            notification_signal(w->notify, w->bits);
        free_watch(w);
    }
}

int endpoint_unwatch(struct endpoint *ep, struct notification *n, unsigned bit, struct process *watcher)
{
    struct list_node *node;
    for (node = watcher->watches.next; node != &watcher->watches; node = node->next) {
        struct ep_watch *w = LIST_ENTRY(node, struct ep_watch, watcher_link);
        if (w->ep == ep && w->notify == n && w->bits == 1ull << bit) {
            free_watch(w);
            return 0;
        }
    }
    return -ENOENT;
}

/* Process p let go of its handle h to ep (closed, or moved away): the
 * watches it made through h go. Whether it still holds another handle to
 * ep would take a walk of its whole table (up to 130,560 slots, under the
 * kernel lock, on every close); the watches' list is bounded
 * (PROC_WATCHES_MAX). */
static void watcher_let_go(struct process *p, struct endpoint *ep, handle_t h)
{
    struct list_node *n, *next;
    LIST_FOR_EACH_SAFE(n, next, &p->watches)
    {
        struct ep_watch *w = LIST_ENTRY(n, struct ep_watch, watcher_link);
        if (w->ep == ep && w->via == h)
            free_watch(w);
    }
}

void ipc_watcher_gone(struct process *p)
{
    struct list_node *n;
    while ((n = list_first(&p->watches)) != 0)
        free_watch(LIST_ENTRY(n, struct ep_watch, watcher_link));
}

/* Nobody can receive any more: whoever waits learns so. */
static void lose_receiver(struct endpoint *ep)
{
    ep->has_receiver = false;
    ep->receiver_gen++;
    sched_wake_all(&ep->senders, -EPEER);
    sched_wake_all(&ep->receivers, -EPEER);
    end_watches(ep, true);
}

int endpoint_watch(struct endpoint *ep, struct notification *n, unsigned bit, struct process *watcher, handle_t via)
{
    if (!ep->has_receiver) {
        notification_signal(n, 1ull << bit);
        return 0;
    }
    /* Bounded, because SYS_EP_UNWATCH and every drop of a handle to a
     * watched endpoint walk the maker's watches under the kernel lock. */
    if (watcher->watch_count >= PROC_WATCHES_MAX)
        return -EDQUOT;
    struct ep_watch *w;
    int err = account_object_alloc(watcher->account, &watch_cache, (void **)&w);
    if (err)
        return err;
    notification_get(n);
    *w = (struct ep_watch){ .ep = ep, .notify = n, .bits = 1ull << bit, .watcher = watcher, .via = via };
    list_push_back(&ep->watches, &w->link);
    list_push_back(&watcher->watches, &w->watcher_link);
    watcher->watch_count++;
    return 0;
}

void endpoint_handle_added(struct endpoint *ep, rights_t rights)
{
    ep->handles++;
    if (rights & RIGHT_RECV)
        ep->has_receiver = true;
}

void endpoint_handle_dropped(struct endpoint *ep, rights_t rights, struct process *holder, handle_t h)
{
    VERIFY(ep->handles > 0);
    ep->handles--;
    if ((rights & RIGHT_RECV) || ep->handles == 0)
        lose_receiver(ep); /* every watch fires and goes */
    else if (!list_empty(&holder->watches))
        watcher_let_go(holder, ep, h);
    endpoint_put(ep);
}

void endpoint_receiver_moved(struct endpoint *ep)
{
    /* Threads of the old holder that wait to receive, or are on their way
     * to (receiver_gen), may not take what the new holder is owed. */
    ep->receiver_gen++;
    sched_wake_all(&ep->receivers, -EPEER);
}

int endpoint_bind(struct endpoint *ep, struct notification *n)
{
    if (!n) {
        if (ep->bound) {
            ep->bound->bound = 0;
            notification_put(ep->bound);
            ep->bound = 0;
        }
        return 0;
    }
    if (ep->bound || n->bound)
        return -EBUSY;
    notification_get(n);
    n->bound = ep;
    ep->bound = n;
    if (n->bits)
        ipc_notification_ready(ep);
    return 0;
}

static void notification_message(struct ipc_msg *m, uint64_t bits)
{
    *m = (struct ipc_msg){ .label = IPC_LABEL_NOTIFY, .badge = BADGE_KERNEL };
    m->w[0] = bits;
}

void ipc_notification_ready(struct endpoint *ep)
{
    struct thread *receiver = sched_first_waiter(&ep->receivers);
    if (!receiver || !ep->bound || !ep->bound->bits)
        return;
    notification_message(&receiver->ipc.msg, notification_take(ep->bound));
    receiver->ipc.phase = IPC_IDLE;
    sched_wake(receiver, 0);
}

/* ---- handles carried by messages ----------------------------------- */

/* What delivering a message's handles needs, checked and reserved: the
 * objects and rights, and a slot for each in the receiver. */
struct cap_plan {
    unsigned n;
    void *object[IPC_CAPS_MAX];
    enum handle_type type[IPC_CAPS_MAX];
    rights_t rights[IPC_CAPS_MAX]; /* what the receiver gets */
    rights_t held[IPC_CAPS_MAX];   /* what the sender's handle had */
    handle_t from[IPC_CAPS_MAX], to[IPC_CAPS_MAX];
    bool move[IPC_CAPS_MAX];
};

static bool carriable(enum handle_type type)
{
    return type == HANDLE_ENDPOINT || type == HANDLE_DEVICE || type == HANDLE_PROCESS || type == HANDLE_NOTIFICATION ||
           type == HANDLE_IRQ;
}

/* Checks a message's handles against the sender's table as it is now. */
static int check_caps(struct process *sender, const struct ipc_msg *m, struct cap_plan *plan)
{
    plan->n = 0;
    if (!ipc_msg_names_caps(m))
        return 0;
    for (unsigned i = 0; i < IPC_CAPS_MAX; i++) {
        const struct ipc_cap *c = &m->caps[i];
        if (c->handle == HANDLE_NONE)
            continue;
        if ((c->flags & ~IPC_CAP_MOVE) || (c->rights & ~RIGHTS_ALL))
            return -EINVAL;
        for (unsigned k = 0; k < plan->n; k++)
            if (plan->from[k] == c->handle)
                return -EINVAL; /* twice in one message */
        enum handle_type type;
        rights_t held;
        if (!handle_describe(&sender->handles, c->handle, &type, &held) || !carriable(type))
            return -EBADH;
        bool move = c->flags & IPC_CAP_MOVE;
        if (!move && !(held & RIGHT_GRANT))
            return -EPERM;
        rights_t rights = held & (c->rights ? c->rights : RIGHTS_ALL);
        if (!move)
            rights &= ~(rights_t)RIGHT_RECV; /* never copied */
        unsigned k = plan->n++;
        plan->object[k] = handle_lookup(&sender->handles, c->handle, type);
        plan->type[k] = type;
        plan->rights[k] = rights;
        plan->held[k] = held;
        plan->from[k] = c->handle;
        plan->move[k] = move;
    }
    return 0;
}

static int reserve_caps(struct process *to, struct cap_plan *plan)
{
    for (unsigned k = 0; k < plan->n; k++) {
        int err = handle_install(&to->handles, 0, HANDLE_RESERVED, 0, &plan->to[k]);
        if (err) {
            while (k--)
                handle_remove(&to->handles, plan->to[k], 0);
            return err;
        }
    }
    return 0;
}

static void unreserve_caps(struct process *to, const struct cap_plan *plan)
{
    for (unsigned k = 0; k < plan->n; k++)
        handle_remove(&to->handles, plan->to[k], 0);
}

/* Cannot fail: copies take a new reference, moves carry the sender's. */
static void commit_caps(struct process *from, struct process *to, const struct cap_plan *plan, struct ipc_msg *m)
{
    for (unsigned k = 0; k < IPC_CAPS_MAX; k++)
        m->caps[k] = (struct ipc_cap){ 0 };
    for (unsigned k = 0; k < plan->n; k++) {
        handle_fill(&to->handles, plan->to[k], plan->object[k], plan->type[k], plan->rights[k]);
        if (plan->move[k]) {
            /* The sender lets go of its handle as a close would, but its
             * reference goes on in the receiver's. */
            handle_remove(&from->handles, plan->from[k], 0);
            if (plan->type[k] == HANDLE_ENDPOINT && (plan->held[k] & RIGHT_RECV)) {
                if (plan->rights[k] & RIGHT_RECV)
                    endpoint_receiver_moved(plan->object[k]);
                else
                    lose_receiver(plan->object[k]); /* moved without it: nobody holds it now */
            }
            if (plan->type[k] == HANDLE_ENDPOINT && !list_empty(&from->watches))
                watcher_let_go(from, plan->object[k], plan->from[k]);
            if (plan->type[k] == HANDLE_DEVICE) {
                aspace_revoke_handle(&from->aspace, plan->from[k]);
                proc_device_let_go(from, plan->object[k], plan->held[k]);
            }
        } else {
            object_handle_added(plan->object[k], plan->type[k], plan->rights[k]);
        }
        m->caps[k] = (struct ipc_cap){ .handle = plan->to[k], .rights = plan->rights[k] };
    }
}

/* The send a thread was making has ended, however: its segment is no
 * longer in flight. */
static void send_done(struct thread *t)
{
    struct segment *s = t->ipc.seg;
    if (s) {
        ASSERT(s->in_flight == t);
        s->in_flight = 0;
        t->ipc.seg = 0;
    }
}

/* The label and the segment rights a sender wrote (its length is checked
 * before its payload is read). */
static bool header_valid(const struct ipc_msg *m, bool reply)
{
    return (reply || m->label < IPC_LABEL_KERNEL_BASE) && !(m->seg_rights & ~(rights_t)RIGHTS_SEGMENT);
}

/* Copies a message in from the caller's buffer and checks it; on success
 * a segment it carries is marked in flight. Nothing changes on failure. */
static int load_message(uint64_t user_msg, struct ipc_state *st, bool reply)
{
    int err = copy_from_user(&st->msg, user_msg, MSG_HEADER_SIZE);
    if (err)
        return err;
    if (st->msg.len > IPC_PAYLOAD_MAX)
        return -EINVAL;
    if (st->msg.len && (err = copy_from_user(st->msg.payload, user_msg + MSG_HEADER_SIZE, st->msg.len)) != 0)
        return err;
    if (!header_valid(&st->msg, reply))
        return -EINVAL;
    /* The handles it carries: checked now for an early error, and again
     * at delivery (the sender may close them while it waits). */
    struct cap_plan caps;
    if ((err = check_caps(current->proc, &st->msg, &caps)) != 0)
        return err;
    st->has_caps = caps.n > 0;
    st->is_call = false;
    st->seg = 0;
    if (st->msg.seg != HANDLE_NONE) {
        struct segment *s;
        rights_t held;
        do {
            err = handle_get(&current->proc->handles, st->msg.seg, HANDLE_SEGMENT, 0, (void **)&s, &held);
            if (err)
                return err;
        } while (segment_wait_idle(s)); /* a migration under way: sent after it */
        if (s->in_flight || s->pins)
            return -EBUSY;
        st->seg_rights = held & (st->msg.seg_rights ? st->msg.seg_rights : RIGHTS_SEGMENT);
        s->in_flight = current;
        st->seg = s;
    }
    return 0;
}

static int store_message(uint64_t user_msg, const struct ipc_msg *msg)
{
    return copy_to_user(user_msg, msg, MSG_HEADER_SIZE + msg->len);
}

/* What the kernel writes into a message it delivers: who sent it, whether
 * the sender waits for a reply, and the segment `s` it carried (mapped, or
 * named by its sid when the receiver keeps segments unmapped). */
static void stamp(struct ipc_msg *m, const struct thread *from, bool call, const struct segment *s, bool mapped)
{
    m->badge = from->proc->pid;
    m->flags = call ? IPC_MSG_CALL : 0;
    m->seg = s ? s->handle : HANDLE_NONE;
    m->seg_addr = !s ? 0 : mapped ? s->vaddr : s->sid;
    m->seg_size = s ? s->size : 0;
    m->seg_rights = s ? (uint16_t)s->rights : 0;
}

/* Moves the sender's message (and segment) to the receiver. On failure the
 * receiver got nothing and the segment is still the sender's, in flight. */
static int deliver(struct thread *from, struct thread *to)
{
    struct segment *s = from->ipc.seg;
    struct cap_plan caps; /* only the first caps.n entries are ever read */
    caps.n = 0;
    if (from->ipc.has_caps) {
        if (!(to->ipc.recv_flags & IPC_RECV_CAPS))
            return -ENOTSUP; /* the receiver takes no handles */
        int err = check_caps(from->proc, &from->ipc.msg, &caps);
        if (!err)
            err = reserve_caps(to->proc, &caps);
        if (err)
            return err;
    }
    if (s) {
        ASSERT(s->in_flight == from && s->owner == from->proc);
        bool map = !(to->ipc.recv_flags & IPC_RECV_NOMAP);
        s->in_flight = 0;
        int err = segment_move(s, to->proc, map, 0, from->ipc.seg_rights);
        s->in_flight = from;
        if (err) {
            unreserve_caps(to->proc, &caps);
            return err;
        }
        send_done(from);
    }
    struct ipc_msg *m = &to->ipc.msg;
    memcpy(m, &from->ipc.msg, MSG_HEADER_SIZE + from->ipc.msg.len);
    commit_caps(from->proc, to->proc, &caps, m);
    stamp(m, from, from->ipc.is_call, s, !(to->ipc.recv_flags & IPC_RECV_NOMAP));
    return 0;
}

/* What deliver_direct did. */
enum direct {
    DIRECT_NO,       /* nothing: take the general path */
    DIRECT_DONE,     /* delivered; the sender's buffer was not touched */
    DIRECT_SEG_SENT, /* delivered with a segment, which may have held the buffer */
};

/* A message that names no handle, sent to a thread already waiting for it
 * (to receive, or for this reply), goes straight from the sender's buffer
 * into the receiver's thread: one copy fewer, and nothing to check twice.
 * A segment it names moves at once (segment_move), never in flight.
 * `flags` gets the flags the sender wrote (its own receive flags).
 * DIRECT_NO when the message is anything else or faulty, or its segment
 * cannot move now (busy, or no room in the receiver), with nothing changed
 * but the receiver's message, which is unused while it waits: the sender
 * then takes the general path (load_message, deliver), which reads the
 * message again, waits out a migration, and reports what is wrong. */
FAST_PATH_STEP enum direct deliver_direct(uint64_t user_msg, struct thread *from, struct thread *to, bool call,
                                          bool reply, uint16_t *flags)
{
    struct ipc_msg *m = &to->ipc.msg;
    /* The copies may not wait for a page being migrated: that wait drops
     * the kernel lock, and another CPU could take, wake or end `to`
     * meanwhile. A buffer in such a page takes the general path, whose
     * copy into the sender's own thread may wait. */
    from->copy_no_wait = true;
    bool copied = !copy_from_user(m, user_msg, MSG_HEADER_SIZE) && m->len <= IPC_PAYLOAD_MAX &&
                  header_valid(m, reply) && !ipc_msg_names_caps(m) &&
                  !(m->len && copy_from_user(m->payload, user_msg + MSG_HEADER_SIZE, m->len));
    from->copy_no_wait = false;
    if (!copied)
        return DIRECT_NO;
    struct segment *s = 0;
    bool map = !(to->ipc.recv_flags & IPC_RECV_NOMAP);
    if (m->seg != HANDLE_NONE) {
        rights_t held;
        if (handle_get(&from->proc->handles, m->seg, HANDLE_SEGMENT, 0, (void **)&s, &held) || s->busy)
            return DIRECT_NO;
        ASSERT(s->owner == from->proc);
        if (segment_move(s, to->proc, map, 0, held & (m->seg_rights ? m->seg_rights : RIGHTS_SEGMENT)))
            return DIRECT_NO;
    }
    *flags = m->flags;
    for (unsigned k = 0; k < IPC_CAPS_MAX; k++)
        m->caps[k] = (struct ipc_cap){ 0 };
    stamp(m, from, call, s, map);
    return s ? DIRECT_SEG_SENT : DIRECT_DONE;
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
static void give_up_reply(struct thread *server)
{
    struct thread *caller = server->ipc.reply_to;
    server->ipc.reply_to = 0;
    if (caller->state == THREAD_BLOCKED && caller->ipc.phase == IPC_AWAIT_REPLY) {
        caller->ipc.phase = IPC_IDLE;
        sched_wake(caller, -EPEER);
    }
    thread_put(caller);
}

FAST_PATH_STEP void drop_reply(struct thread *server)
{
    if (server->ipc.reply_to)
        give_up_reply(server);
}

/* Whether the message a thread loaded moves `ep`'s own receive right:
 * committing that would wake (with -EPEER) the very receiver it is being
 * delivered to, queued on `ep`. */
static bool carries_receiver_of(const struct endpoint *ep, const struct ipc_msg *m)
{
    for (unsigned i = 0; i < IPC_CAPS_MAX; i++) {
        const struct ipc_cap *c = &m->caps[i];
        enum handle_type type;
        rights_t held;
        if (c->handle != HANDLE_NONE && (c->flags & IPC_CAP_MOVE) &&
            handle_describe(&current->proc->handles, c->handle, &type, &held) && type == HANDLE_ENDPOINT &&
            (held & RIGHT_RECV) && handle_lookup(&current->proc->handles, c->handle, type) == ep)
            return true;
    }
    return false;
}

/* ipc_send with `ep` held (endpoint_hold). */
static int64_t send_held(struct endpoint *ep, uint64_t user_msg, uint64_t timeout_ns, bool call)
{
    struct thread *self = current;
    struct thread *receiver = ep->has_receiver ? sched_first_waiter(&ep->receivers) : 0;
    uint16_t flags;
    int err;
    ASSERT(!self->ipc.seg);
    if (receiver && deliver_direct(user_msg, self, receiver, call, false, &flags) != DIRECT_NO) {
        self->ipc.is_call = call;
    } else {
        if ((err = load_message(user_msg, &self->ipc, false)) != 0)
            return err;
        if (!ep->has_receiver) {
            send_done(self);
            return -EPEER;
        }
        if (self->ipc.has_caps && carries_receiver_of(ep, &self->ipc.msg)) {
            send_done(self);
            return -EINVAL;
        }
        flags = self->ipc.msg.flags;
        self->ipc.is_call = call;
        receiver = sched_first_waiter(&ep->receivers);
        if (receiver && (err = deliver(self, receiver)) != 0) {
            send_done(self);
            return err;
        }
    }
    self->ipc.recv_flags = call ? (flags & (IPC_RECV_NOMAP | IPC_RECV_CAPS)) : 0;

    if (receiver) {
        receiver->ipc.phase = IPC_IDLE;
        taken(self, receiver);
        if (!call) {
            sched_wake(receiver, 0);
            return 0;
        }
        err = (int)sched_block_handoff(0, TIMEOUT_FOREVER, receiver, 0);
    } else {
        self->ipc.phase = IPC_SENDING;
        err = (int)sched_block(&ep->senders, timeout_ns);
        if (self->ipc.phase == IPC_SENDING) /* timed out, or refused on delivery */
            self->ipc.phase = IPC_IDLE;
    }
    send_done(self);
    if (err || !call)
        return err;
    return store_message(user_msg, &self->ipc.msg);
}

int64_t ipc_send(struct endpoint *ep, uint64_t user_msg, uint64_t timeout_ns, bool call)
{
    endpoint_hold(ep);
    int64_t result = send_held(ep, user_msg, timeout_ns, call);
    endpoint_hold_end(current, ep);
    return result;
}

/* The caller a server replied to and has not woken yet (receive) is woken
 * now: the reply is its. */
static void wake_answered(struct thread *server)
{
    struct thread *answered = server->ipc.answered;
    server->ipc.answered = 0;
    if (answered->state == THREAD_BLOCKED && answered->blocks == server->ipc.answered_wait)
        sched_wake(answered, 0);
    thread_put(answered);
}

/* The receive half of SYS_IPC_RECV and SYS_IPC_REPLY_RECV, with `ep` held
 * (endpoint_hold). `flags`: the receive flags, or -1 to read them from the
 * buffer (which the reply just made may have sent away with its segment:
 * -EFAULT). `answered`: the caller SYS_IPC_REPLY_RECV just gave its reply
 * to, still blocked, with the reply's reference; it runs next on this CPU,
 * handed the CPU at once if this thread is about to wait, else first in
 * the queue. `receiver_gen`: ep's when the system call looked up its
 * handle; a change means the receive right moved or went meanwhile (while
 * a copy waited), and this thread may no longer take messages. */
FAST_PATH_STEP int64_t receive(struct endpoint *ep, uint64_t user_msg, uint64_t timeout_ns, int flags,
                               struct thread *answered, uint32_t receiver_gen)
{
    struct thread *self = current;
    int err = 0;
    uint16_t buffer_flags;
    uint32_t answered_wait = answered ? answered->blocks : 0;
    if (flags < 0) {
        /* Should this thread die while the copy waits, its death wakes the
         * caller (ipc_thread_dead). */
        self->ipc.answered = answered;
        self->ipc.answered_wait = answered_wait;
        err = copy_from_user(&buffer_flags, user_msg + offsetof(struct ipc_msg, flags), sizeof(buffer_flags));
        self->ipc.answered = 0;
        if (!err)
            flags = buffer_flags;
    }
    if (!err && ep->receiver_gen != receiver_gen)
        err = -EPEER;
    if (answered) {
        /* The copy above may have waited for a page being migrated, with
         * the lock dropped: the caller may have ended meanwhile. Only a
         * caller still in the wait the reply answered is woken or handed
         * the CPU; the count of its blocks tells that wait from a later one
         * should anything end it meanwhile (no path does today: the wait
         * for a reply has no timeout). */
        bool blocked = answered->state == THREAD_BLOCKED && answered->blocks == answered_wait;
        bool waits = blocked && !err && !(ep->bound && ep->bound->bits) && !sched_first_waiter(&ep->senders) &&
                     ep->has_receiver && timeout_ns != TIMEOUT_POLL;
        if (!waits && blocked)
            sched_wake_next(answered, 0);
        /* Blocked, not dead, and linked to its process, or already woken:
         * our reference is not its last before a switch to it. */
        thread_put(answered);
        if (!waits)
            answered = 0;
    }
    if (err)
        return err;
    drop_reply(self);
    self->ipc.recv_flags = (uint16_t)flags & (IPC_RECV_NOMAP | IPC_RECV_CAPS);

    if (ep->bound && ep->bound->bits) {
        notification_message(&self->ipc.msg, notification_take(ep->bound));
        return store_message(user_msg, &self->ipc.msg);
    }
    for (struct thread *sender; (sender = sched_first_waiter(&ep->senders)) != 0;) {
        sched_unqueue(sender);
        err = deliver(sender, self);
        if (err) {
            send_done(sender);
            sender->ipc.phase = IPC_IDLE;
            sched_wake(sender, err);
            continue;
        }
        taken(sender, self);
        if (!sender->ipc.is_call)
            sched_wake(sender, 0);
        return store_message(user_msg, &self->ipc.msg);
    }
    if (!ep->has_receiver)
        return -EPEER;
    self->ipc.phase = IPC_RECEIVING;
    int64_t result = answered ? sched_block_handoff(&ep->receivers, timeout_ns, answered, 0)
                              : sched_block(&ep->receivers, timeout_ns);
    if (self->ipc.phase == IPC_RECEIVING)
        self->ipc.phase = IPC_IDLE;
    if (result)
        return result;
    return store_message(user_msg, &self->ipc.msg);
}

int64_t ipc_recv(struct endpoint *ep, uint64_t user_msg, uint64_t timeout_ns)
{
    endpoint_hold(ep);
    int64_t result = receive(ep, user_msg, timeout_ns, -1, 0, ep->receiver_gen);
    endpoint_hold_end(current, ep);
    return result;
}

static bool awaits_reply(const struct thread *caller)
{
    return caller->state == THREAD_BLOCKED && caller->ipc.phase == IPC_AWAIT_REPLY;
}

/* The reply half of SYS_IPC_REPLY and SYS_IPC_REPLY_RECV. `answered`: the
 * server receives right after, so the caller gets this CPU next instead of
 * being placed elsewhere; a reply delivered leaves the caller blocked, with
 * this reference, in *answered for the receive to run (receive). A reply
 * that went direct and moved no segment (so the buffer is still there)
 * leaves the flags the server wrote in *flags. */
FAST_PATH_STEP int64_t reply(uint64_t user_msg, struct thread **answered, int *flags)
{
    struct thread *self = current;
    struct thread *caller = self->ipc.reply_to;
    if (!caller)
        return -ENOENT;
    int err;
    ASSERT(!self->ipc.seg);
    uint16_t direct_flags;
    enum direct direct =
        awaits_reply(caller) ? deliver_direct(user_msg, self, caller, false, true, &direct_flags) : DIRECT_NO;
    if (direct != DIRECT_NO) {
        err = 0;
        if (direct == DIRECT_DONE)
            *flags = direct_flags; /* else the receive reads the buffer again, as after load_message */
        self->ipc.reply_to = 0;
    } else {
        if ((err = load_message(user_msg, &self->ipc, true)) != 0)
            return err; /* the caller still waits; the server may reply again */
        self->ipc.reply_to = 0;
        if (!awaits_reply(caller)) {
            send_done(self);
            thread_put(caller);
            return -EPEER;
        }
        err = deliver(self, caller);
        send_done(self);
    }
    caller->ipc.phase = IPC_IDLE;
    if (!err && answered) {
        *answered = caller;
        return 0;
    }
    /* A reply the caller cannot take ends its call with the same error. */
    if (answered)
        sched_wake_next(caller, err);
    else
        sched_wake(caller, err);
    thread_put(caller);
    return err;
}

int64_t ipc_reply(uint64_t user_msg)
{
    int flags;
    return reply(user_msg, 0, &flags);
}

/* A malformed reply leaves the caller waiting: it gets a reply that holds
 * only the error as its label, as if the server had sent that. */
static void answer_with_error(struct thread *server, int64_t err)
{
    struct thread *caller = server->ipc.reply_to;
    server->ipc.reply_to = 0;
    if (awaits_reply(caller)) {
        caller->ipc.msg = (struct ipc_msg){ .label = (uint64_t)err, .badge = server->proc->pid };
        caller->ipc.phase = IPC_IDLE;
        sched_wake(caller, 0);
    }
    thread_put(caller);
}

/* ipc_reply_recv with `ep` held (endpoint_hold). */
static int64_t reply_recv_held(struct endpoint *ep, uint64_t user_msg, uint64_t timeout_ns)
{
    struct thread *self = current;
    struct thread *caller = self->ipc.reply_to;
    uint32_t receiver_gen = ep->receiver_gen;
    if (!caller)
        return receive(ep, user_msg, timeout_ns, -1, 0, receiver_gen);
    badge_t pid = caller->proc->pid;
    struct thread *answered = 0;
    int flags = -1;
    int64_t err = reply(user_msg, &answered, &flags);
    if (!err)
        return receive(ep, user_msg, timeout_ns, flags, answered, receiver_gen);
    if (self->ipc.reply_to)
        answer_with_error(self, err);
    if (err == -EFAULT)
        return err; /* the buffer itself is bad: nothing to report into */
    /* self->ipc.msg holds the reply as loaded; what it named is still the
     * server's. A reply that named nothing to a caller that is gone needs
     * no report: the server simply receives on. */
    const struct ipc_msg *reply = &self->ipc.msg;
    bool named = reply->seg != HANDLE_NONE || ipc_msg_names_caps(reply);
    if (err == -EPEER && !named)
        return receive(ep, user_msg, timeout_ns, -1, 0, receiver_gen);
    struct ipc_msg report = { .label = IPC_LABEL_REPLY_FAILED, .badge = BADGE_KERNEL, .seg = reply->seg };
    report.w[0] = (uint64_t)err;
    report.w[1] = reply->label;
    report.w[2] = pid;
    for (unsigned i = 0; i < IPC_CAPS_MAX; i++)
        report.caps[i] = (struct ipc_cap){ .handle = reply->caps[i].handle };
    self->ipc.msg = report;
    return store_message(user_msg, &self->ipc.msg);
}

int64_t ipc_reply_recv(struct endpoint *ep, uint64_t user_msg, uint64_t timeout_ns)
{
    endpoint_hold(ep);
    int64_t result = reply_recv_held(ep, user_msg, timeout_ns);
    endpoint_hold_end(current, ep);
    return result;
}

void ipc_thread_dead(struct thread *t)
{
    if (t->ipc.answered)
        wake_answered(t);
    drop_reply(t);
    t->ipc.phase = IPC_IDLE;
    send_done(t);
}
