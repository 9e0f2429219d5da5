/*
 * In-guest test program: handles carried by messages, notifications (alone
 * and bound to an endpoint), and futex waits. Each check also tries the
 * refusals: a handle one does not hold, a right one lacks, a receiver that
 * takes no handles or has no room for them, binding twice, waiting on a
 * bound notification, a futex word that changed. Then libsys's mutex and
 * condition variable under preemption, and malloc from several threads.
 */
#include <common/string.h>
#include <libsys/malloc.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/sync.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

static struct test_run t;
static uint8_t stacks[4][16384] __attribute__((aligned(16)));
static handle_t ep;
static volatile int64_t got_result;
static struct ipc_msg got;
static volatile unsigned about_to_block; /* threads a step from their blocking call */

/* Until `threads` helper threads are a step from blocking, then a nap for
 * them to block. A fixed nap alone is not enough on a host that runs
 * several virtual CPUs on one core, where a new thread may not have
 * started within it (seen with 6 CPUs beside a guest of 8, on 2 cores). */
static void until_blocked(unsigned threads)
{
    test_wait_count(&t, &about_to_block, threads, 2000);
    sys_sleep(2 * NS_PER_MS);
}

/* Receives one message into `got` (with IPC_RECV_CAPS if arg is 1). */
static void receiver(uint64_t caps)
{
    memset(&got, 0, sizeof(got));
    got.flags = caps ? IPC_RECV_CAPS : 0;
    __atomic_add_fetch(&about_to_block, 1, __ATOMIC_RELEASE);
    got_result = sys_ipc_recv(ep, &got, TIMEOUT_FOREVER);
    sys_thread_exit();
}

static int64_t start_receiver(bool caps)
{
    got_result = 99;
    about_to_block = 0;
    int64_t th = sys_thread_create(receiver, stacks[0] + sizeof(stacks[0]), caps);
    if (th >= 0)
        until_blocked(1);
    return th;
}

static int64_t finish_receiver(int64_t th)
{
    sys_thread_wait((handle_t)th, TIMEOUT_FOREVER);
    sys_handle_close((handle_t)th);
    return got_result;
}

static bool pattern_intact(const uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(seed + i * 7))
            return false;
    return true;
}

static rights_t rights_of(handle_t h)
{
    struct abi_handle_info info = { 0 };
    return sys_handle_info(h, &info) == 0 ? info.rights : 0;
}

static void check_caps(void)
{
    int64_t e = sys_ep_create(), other = sys_ep_create(), n = sys_notify_create();
    ep = (handle_t)e;
    if (!test_check(&t, "setup", e >= 0 && other >= 0 && n >= 0, "ep %ld other %ld notify %ld", e, other, n))
        return;

    /* A copy with fewer rights: the receiver gets a send-only endpoint and
     * the sender keeps its own, receive right and all. */
    int64_t th = start_receiver(true);
    struct ipc_msg m = { .label = 1 };
    m.caps[0] = (struct ipc_cap){ (handle_t)other, RIGHT_SEND | RIGHT_RECV | RIGHT_GRANT, 0 };
    m.caps[1] = (struct ipc_cap){ (handle_t)n, RIGHT_SIGNAL, 0 };
    int64_t sent = sys_ipc_send(ep, &m, TIMEOUT_FOREVER);
    int64_t r = finish_receiver(th);
    rights_t r0 = rights_of(got.caps[0].handle), r1 = rights_of(got.caps[1].handle);
    test_check(&t, "caps_copied_rights_shrunk",
               sent == 0 && r == 0 && got.caps[0].handle && r0 == (RIGHT_SEND | RIGHT_GRANT) &&
                   got.caps[0].rights == r0 && r1 == RIGHT_SIGNAL && rights_of((handle_t)other) == RIGHTS_ENDPOINT,
               "send %ld recv %ld: rights %#x (want SEND|GRANT, never RECV), %#x (want SIGNAL), sender's %#x", sent, r,
               r0, r1, rights_of((handle_t)other));
    /* The copy works: a signal through it reaches the notification. */
    int64_t signalled = sys_notify_signal(got.caps[1].handle, 0x5);
    int64_t bits = sys_notify_wait((handle_t)n, TIMEOUT_POLL);
    int64_t refused = sys_notify_wait(got.caps[1].handle, TIMEOUT_POLL); /* no WAIT right */
    test_check(&t, "copied_handle_works", signalled == 0 && bits == 5 && refused == -EPERM,
               "signal %ld, collected %ld, wait through the copy %ld", signalled, bits, refused);
    sys_handle_close(got.caps[0].handle);
    sys_handle_close(got.caps[1].handle);

    /* A move takes the receive right along; the sender's handle is gone. */
    th = start_receiver(true);
    m = (struct ipc_msg){ .label = 2 };
    m.caps[0] = (struct ipc_cap){ (handle_t)other, RIGHTS_SAME, IPC_CAP_MOVE };
    sent = sys_ipc_send(ep, &m, TIMEOUT_FOREVER);
    r = finish_receiver(th);
    struct abi_handle_info info;
    test_check(&t, "cap_moved_with_receive_right",
               sent == 0 && r == 0 && rights_of(got.caps[0].handle) == RIGHTS_ENDPOINT &&
                   sys_handle_info((handle_t)other, &info) == -EBADH,
               "send %ld recv %ld, rights %#x, old handle %ld", sent, r, rights_of(got.caps[0].handle),
               sys_handle_info((handle_t)other, &info));
    other = (int64_t)got.caps[0].handle;

    /* Refusals, each leaving both sides as they were. */
    handle_t send_only = (handle_t)sys_handle_grant(HANDLE_SELF, (handle_t)other, RIGHT_SEND);
    th = start_receiver(true);
    m = (struct ipc_msg){ .label = 3 };
    m.caps[0] = (struct ipc_cap){ 0x0000003300000009ull, RIGHTS_SAME, 0 }; /* made up */
    int64_t bad = sys_ipc_send(ep, &m, TIMEOUT_POLL);
    m.caps[0] = (struct ipc_cap){ send_only, RIGHTS_SAME, 0 }; /* no GRANT: cannot be copied */
    int64_t no_grant = sys_ipc_send(ep, &m, TIMEOUT_POLL);
    m.caps[0] = (struct ipc_cap){ (handle_t)other, RIGHTS_SAME, 0 };
    m.caps[1] = (struct ipc_cap){ (handle_t)other, RIGHTS_SAME, IPC_CAP_MOVE }; /* twice */
    int64_t twice = sys_ipc_send(ep, &m, TIMEOUT_POLL);
    struct ms_segment seg;
    int64_t a = ms_alloc(4096, 0, 0, 0, &seg);
    m = (struct ipc_msg){ .label = 3 };
    m.caps[0] = (struct ipc_cap){ seg.handle, RIGHTS_SAME, 0 }; /* segments travel in seg */
    int64_t segcap = a == 0 ? sys_ipc_send(ep, &m, TIMEOUT_POLL) : -1;
    m.caps[0] = (struct ipc_cap){ (handle_t)other, RIGHTS_SAME, 0x80 }; /* unknown flag */
    int64_t badflag = sys_ipc_send(ep, &m, TIMEOUT_POLL);
    struct ms_segment gone;
    int64_t g = ms_alloc(4096, 0, 0, 0, &gone);
    if (g == 0)
        g = ms_free(gone.handle);
    m = (struct ipc_msg){ .label = 3, .seg = gone.handle }; /* freed: its handle is stale */
    int64_t stale_seg = g == 0 ? sys_ipc_send(ep, &m, TIMEOUT_POLL) : g;
    test_check(&t, "cap_refusals",
               bad == -EBADH && no_grant == -EPERM && twice == -EINVAL && segcap == -EBADH && badflag == -EINVAL &&
                   stale_seg == -EBADH && got_result == 99,
               "made up %ld, no grant %ld, twice %ld, segment %ld, flag %ld, freed segment %ld; the receiver got %ld",
               bad, no_grant, twice, segcap, badflag, stale_seg, got_result);
    /* Unblock the receiver with a plain message. */
    m = (struct ipc_msg){ .label = 4 };
    sys_ipc_send(ep, &m, TIMEOUT_FOREVER);
    finish_receiver(th);
    if (a == 0)
        ms_free(seg.handle);

    /* A receiver that does not take handles refuses the message whole. */
    th = start_receiver(false);
    m = (struct ipc_msg){ .label = 5, .seg = HANDLE_NONE };
    a = ms_alloc(4096, 0, 0, 0, &seg);
    m.seg = a == 0 ? seg.handle : HANDLE_NONE;
    m.caps[0] = (struct ipc_cap){ (handle_t)other, RIGHT_SEND, 0 };
    int64_t unwanted = sys_ipc_send(ep, &m, TIMEOUT_POLL);
    struct abi_seg_info sinfo;
    bool seg_kept = a == 0 && sys_seg_info(seg.handle, &sinfo) == 0 && sinfo.owner_pid == libsys_pid;
    m = (struct ipc_msg){ .label = 6 };
    sys_ipc_send(ep, &m, TIMEOUT_FOREVER);
    finish_receiver(th);
    test_check(&t, "receiver_without_caps_refuses", unwanted == -ENOTSUP && seg_kept && got.label == 6,
               "send %ld, segment kept %d, receiver got label %lu", unwanted, seg_kept, got.label);
    if (a == 0)
        ms_free(seg.handle);

    /* A receiver with no room for the handles: nothing moves. */
    struct ms_segment seg2;
    int64_t a2 = ms_alloc(4096, 0, 0, 0, &seg2);
    if (a2 == 0)
        for (size_t i = 0; i < 4096; i++)
            ((uint8_t *)seg2.addr)[i] = (uint8_t)(0x33 + i * 7);
    th = start_receiver(true);
    uint64_t filled = 0;
    int64_t copy;
    static handle_t copies[1 << 17];
    while (filled < (1u << 17) && (copy = sys_handle_grant(HANDLE_SELF, (handle_t)other, RIGHT_SEND)) >= 0)
        copies[filled++] = (handle_t)copy;
    m = (struct ipc_msg){ .label = 7 };
    m.caps[0] = (struct ipc_cap){ (handle_t)other, RIGHT_SEND, 0 };
    m.caps[1] = (struct ipc_cap){ (handle_t)n, RIGHT_SIGNAL, 0 };
    int64_t full = sys_ipc_send(ep, &m, TIMEOUT_POLL);
    /* Nor for a segment sent to the waiting receiver: it stays the
     * sender's, mapped where it was, with what it held. */
    int64_t seg_full = -1;
    bool seg_stayed = false;
    if (a2 == 0) {
        struct ipc_msg sm = { .label = 8, .seg = seg2.handle };
        seg_full = sys_ipc_send(ep, &sm, TIMEOUT_POLL);
        seg_stayed = sys_seg_info(seg2.handle, &sinfo) == 0 && sinfo.owner_pid == libsys_pid &&
                     sinfo.vaddr == (uint64_t)seg2.addr && pattern_intact(seg2.addr, 4096, 0x33);
    }
    for (uint64_t i = 0; i < filled; i++)
        sys_handle_close(copies[i]);
    /* Whatever happened, the receiver must not be left waiting for ever. */
    int64_t after = sys_ipc_send(ep, &m, 200 * NS_PER_MS);
    finish_receiver(th);
    test_check(&t, "no_room_for_caps", (full == -EDQUOT || full == -ENOMEM) && after == 0 && got.caps[1].handle,
               "%lu handles filled the table (then %ld); send %ld, then %ld", filled, copy, full, after);
    test_check(&t, "no_room_for_segment", (seg_full == -EDQUOT || seg_full == -ENOMEM) && seg_stayed,
               "alloc %ld, send %ld, segment stayed %d", a2, seg_full, seg_stayed);
    if (a2 == 0)
        ms_free(seg2.handle);
    sys_handle_close(got.caps[0].handle);
    sys_handle_close(got.caps[1].handle);
    sys_handle_close(send_only);
    sys_handle_close((handle_t)other);
    sys_handle_close((handle_t)n);
    sys_handle_close(ep);
}

static volatile int64_t sender_result;

/* Sends one message on endpoint `h`, as a thread of its own. */
static void blocked_sender(uint64_t h)
{
    struct ipc_msg m = { .label = 23 };
    __atomic_add_fetch(&about_to_block, 1, __ATOMIC_RELEASE);
    sender_result = sys_ipc_send((handle_t)h, &m, TIMEOUT_FOREVER);
    sys_thread_exit();
}

/* The receive right moved in a message: through the endpoint it receives
 * on (refused: the receiver it would go to waits on that endpoint), and
 * with fewer rights (the right goes, and whoever waits learns so). */
static void check_receive_right_moves(void)
{
    int64_t e = sys_ep_create();
    ep = (handle_t)e;
    if (!test_check(&t, "recv_move_setup", e >= 0, "ep %ld", e))
        return;
    int64_t th = start_receiver(true);
    struct ipc_msg m = { .label = 20 };
    m.caps[0] = (struct ipc_cap){ ep, RIGHTS_SAME, IPC_CAP_MOVE };
    int64_t own_call = sys_ipc_call(ep, &m, TIMEOUT_FOREVER);
    m = (struct ipc_msg){ .label = 21 };
    m.caps[0] = (struct ipc_cap){ ep, RIGHT_SEND, IPC_CAP_MOVE };
    int64_t own_send = sys_ipc_send(ep, &m, TIMEOUT_FOREVER);
    rights_t kept = rights_of(ep);
    m = (struct ipc_msg){ .label = 22 };
    int64_t plain = sys_ipc_send(ep, &m, TIMEOUT_FOREVER);
    int64_t r = finish_receiver(th);
    test_check(&t, "receive_right_not_sent_through_itself",
               own_call == -EINVAL && own_send == -EINVAL && kept == RIGHTS_ENDPOINT && plain == 0 && r == 0 &&
                   got.label == 22,
               "call %ld, send %ld (want -EINVAL), rights kept %#x; then send %ld, the receiver got %ld label %lu",
               own_call, own_send, kept, plain, r, got.label);

    /* Moved with SEND alone: a sender blocked on it gets -EPEER, a watch fires. */
    int64_t carrier = sys_ep_create(), n = sys_notify_create();
    int64_t watched = n >= 0 ? sys_ep_watch(ep, (handle_t)n, 2) : n;
    sender_result = 99;
    about_to_block = 0;
    int64_t sender = sys_thread_create(blocked_sender, stacks[1] + sizeof(stacks[1]), ep);
    if (sender >= 0)
        until_blocked(1);
    int64_t before = sender_result;
    handle_t moved = ep;
    ep = (handle_t)carrier;
    th = carrier >= 0 ? start_receiver(true) : -1;
    m = (struct ipc_msg){ .label = 24 };
    m.caps[0] = (struct ipc_cap){ moved, RIGHT_SEND, IPC_CAP_MOVE };
    int64_t sent = th >= 0 ? sys_ipc_send(ep, &m, TIMEOUT_FOREVER) : th;
    r = th >= 0 ? finish_receiver(th) : th;
    int64_t blocked = -1;
    if (sender >= 0) {
        sys_thread_wait((handle_t)sender, 2000 * NS_PER_MS);
        sys_handle_close((handle_t)sender);
        blocked = sender_result;
    }
    int64_t fired = n >= 0 ? sys_notify_wait((handle_t)n, TIMEOUT_POLL) : n;
    test_check(&t, "receive_right_moved_away_goes",
               watched == 0 && before == 99 && sent == 0 && r == 0 && rights_of(got.caps[0].handle) == RIGHT_SEND &&
                   blocked == -EPEER && fired == (1 << 2),
               "watch %ld, sender before %ld; move %ld, receive %ld, rights %#x; blocked sender got %ld (want "
               "-EPEER), watch bits %ld",
               watched, before, sent, r, rights_of(got.caps[0].handle), blocked, fired);
    sys_handle_close(got.caps[0].handle);
    if (carrier >= 0)
        sys_handle_close((handle_t)carrier);
    if (n >= 0)
        sys_handle_close((handle_t)n);
}

static void check_notifications(void)
{
    int64_t n = sys_notify_create(), e = sys_ep_create();
    if (!test_check(&t, "notify_setup", n >= 0 && e >= 0, "notify %ld ep %ld", n, e))
        return;
    int64_t none = sys_notify_wait((handle_t)n, TIMEOUT_POLL);
    sys_notify_signal((handle_t)n, 1);
    sys_notify_signal((handle_t)n, 4);
    int64_t bits = sys_notify_wait((handle_t)n, TIMEOUT_POLL);
    int64_t zero = sys_notify_signal((handle_t)n, 0);
    int64_t top = sys_notify_signal((handle_t)n, 1ull << 63);
    test_check(&t, "notify_collects", none == -ETIMEDOUT && bits == 5 && zero == -EINVAL && top == -EINVAL,
               "empty %ld, collected %ld, zero %ld, bit 63 %ld", none, bits, zero, top);
    /* Bound to an endpoint: a receive returns for requests and for bits. */
    int64_t bound = sys_ep_bind((handle_t)e, (handle_t)n);
    int64_t n2 = sys_notify_create();
    int64_t again = sys_ep_bind((handle_t)e, (handle_t)n2);
    int64_t wait_bound = sys_notify_wait((handle_t)n, TIMEOUT_POLL);
    ep = (handle_t)e;
    int64_t th = start_receiver(false);
    sys_notify_signal((handle_t)n, 0x40);
    int64_t r = finish_receiver(th);
    bool as_message = r == 0 && got.label == IPC_LABEL_NOTIFY && got.badge == BADGE_KERNEL && got.w[0] == 0x40;
    /* A request still comes through as a request. */
    th = start_receiver(false);
    struct ipc_msg m = { .label = 9 };
    int64_t sent = sys_ipc_send(ep, &m, TIMEOUT_FOREVER);
    finish_receiver(th);
    test_check(&t, "notify_bound_to_endpoint",
               bound == 0 && again == -EBUSY && wait_bound == -EBUSY && as_message && sent == 0 && got.label == 9,
               "bind %ld, again %ld, wait on it %ld, notification message %d, request %ld label %lu", bound, again,
               wait_bound, as_message, sent, got.label);
    /* Bits set before the receive are there at once. */
    sys_notify_signal((handle_t)n, 2);
    struct ipc_msg pending = { 0 };
    int64_t pr = sys_ipc_recv(ep, &pending, TIMEOUT_POLL);
    test_check(&t, "notify_pending_at_receive", pr == 0 && pending.label == IPC_LABEL_NOTIFY && pending.w[0] == 2,
               "recv %ld label %#lx bits %lu", pr, pending.label, pending.w[0]);
    /* A signal from a thread blocked elsewhere wakes a waiter: unbind and wait. */
    sys_ep_bind(ep, HANDLE_NONE);
    int64_t rights = sys_handle_grant(HANDLE_SELF, (handle_t)n, RIGHT_WAIT);
    int64_t no_signal = sys_notify_signal((handle_t)rights, 1);
    test_check(&t, "notify_signal_needs_right", no_signal == -EPERM, "signal without the right gave %ld", no_signal);
    sys_handle_close((handle_t)rights);
    sys_handle_close((handle_t)n2);
    sys_handle_close((handle_t)n);
    sys_handle_close(ep);
}

static uint32_t word;
static volatile unsigned woke;

static void futex_waiter(uint64_t unused)
{
    (void)unused;
    __atomic_add_fetch(&about_to_block, 1, __ATOMIC_RELEASE);
    if (sys_futex_wait(&word, 0, TIMEOUT_FOREVER) == 0)
        __atomic_add_fetch(&woke, 1, __ATOMIC_SEQ_CST);
    sys_thread_exit();
}

static void check_futex(void)
{
    word = 1;
    int64_t changed = sys_futex_wait(&word, 0, TIMEOUT_POLL);
    int64_t unaligned = sys_futex_wait((const uint32_t *)((uintptr_t)&word + 1), 1, TIMEOUT_POLL);
    int64_t kernel = sys_futex_wait((const uint32_t *)0xffffffff80000000ull, 0, TIMEOUT_POLL);
    int64_t timed = sys_futex_wait(&word, 1, 1 * NS_PER_MS);
    test_check(&t, "futex_refusals",
               changed == -EAGAIN && unaligned == -EINVAL && kernel == -EFAULT && timed == -ETIMEDOUT,
               "changed %ld, unaligned %ld, kernel address %ld, timeout %ld", changed, unaligned, kernel, timed);
    word = 0;
    woke = 0;
    about_to_block = 0;
    int64_t th[3];
    unsigned started = 0;
    for (unsigned i = 0; i < 3; i++)
        started += (th[i] = sys_thread_create(futex_waiter, stacks[1 + i] + sizeof(stacks[0]), 0)) >= 0;
    test_check(&t, "futex_waiters_started", started == 3, "%u of 3 threads", started);
    until_blocked(started);
    int64_t one = sys_futex_wake(&word, 1);
    /* The woken thread counts itself once it runs. A second thread woken,
     * one too many, would count itself within the nap after that. */
    test_wait_count(&t, &woke, 1, 2000);
    sys_sleep(NS_PER_MS);
    unsigned after_one = woke;
    int64_t rest = sys_futex_wake(&word, 100);
    for (unsigned i = 0; i < 3; i++)
        if (th[i] >= 0)
            sys_thread_wait((handle_t)th[i], TIMEOUT_FOREVER);
    test_check(&t, "futex_wakes_counted", one == 1 && after_one == 1 && rest == 2 && woke == 3,
               "woke %ld (%u), then %ld; %u in all", one, after_one, rest, woke);
}

/* ---- libsys/sync.h and the default heap, from four threads ---- */

#define WORKERS      4
#define COUNT_ROUNDS 20000

static struct mutex counter_lock;
static volatile uint64_t counter;

static void count_up(uint64_t unused)
{
    (void)unused;
    for (unsigned i = 0; i < COUNT_ROUNDS; i++) {
        mutex_lock(&counter_lock);
        uint64_t v = counter; /* a lost update if two threads get here at once */
        if ((i & 255) == 0)
            sys_yield(); /* the others find the mutex held and sleep on it */
        counter = v + 1;
        mutex_unlock(&counter_lock);
    }
    sys_thread_exit();
}

static unsigned start_workers(void (*fn)(uint64_t), int64_t th[WORKERS])
{
    unsigned started = 0;
    for (unsigned i = 0; i < WORKERS; i++)
        started += (th[i] = sys_thread_create(fn, stacks[i] + sizeof(stacks[0]), i)) >= 0;
    return started;
}

static void wait_workers(const int64_t th[WORKERS])
{
    for (unsigned i = 0; i < WORKERS; i++)
        if (th[i] >= 0) {
            sys_thread_wait((handle_t)th[i], TIMEOUT_FOREVER);
            sys_handle_close((handle_t)th[i]);
        }
}

static void check_mutex(void)
{
    int64_t th[WORKERS];
    counter = 0;
    unsigned started = start_workers(count_up, th);
    wait_workers(th);
    test_check(&t, "mutex_counts_exactly", started == WORKERS && counter == (uint64_t)WORKERS * COUNT_ROUNDS,
               "%u threads counted to %lu", started, counter);
    struct mutex m = MUTEX_INIT;
    bool first = mutex_trylock(&m), second = mutex_trylock(&m);
    int unlocked = mutex_unlock(&m), again = mutex_unlock(&m);
    test_check(&t, "mutex_misuse", first && !second && unlocked == 0 && again == -EPERM,
               "trylock %d then %d, unlock %d then %d", first, second, unlocked, again);
}

/* A queue of two slots between two producers and two consumers. */
#define QUEUE_ITEMS 3000

static struct {
    struct mutex lock;
    struct condvar not_full, not_empty;
    uint64_t slot[2];
    unsigned head, count, producing;
    uint64_t sum, taken;
} q;

static void queue_worker(uint64_t index)
{
    if (index < 2) {
        for (uint64_t i = 1; i <= QUEUE_ITEMS; i++) {
            mutex_lock(&q.lock);
            while (q.count == 2)
                condvar_wait(&q.not_full, &q.lock);
            q.slot[(q.head + q.count++) % 2] = index * QUEUE_ITEMS + i;
            condvar_signal(&q.not_empty);
            mutex_unlock(&q.lock);
        }
        mutex_lock(&q.lock);
        if (--q.producing == 0)
            condvar_broadcast(&q.not_empty);
        mutex_unlock(&q.lock);
        sys_thread_exit();
    }
    for (;;) {
        mutex_lock(&q.lock);
        while (q.count == 0 && q.producing)
            condvar_wait(&q.not_empty, &q.lock);
        if (q.count == 0)
            break;
        q.sum += q.slot[q.head];
        q.taken++;
        q.head = (q.head + 1) % 2;
        q.count--;
        condvar_signal(&q.not_full);
        mutex_unlock(&q.lock);
    }
    mutex_unlock(&q.lock);
    sys_thread_exit();
}

static void check_condvar(void)
{
    int64_t th[WORKERS];
    memset(&q, 0, sizeof(q));
    q.producing = 2;
    unsigned started = start_workers(queue_worker, th);
    wait_workers(th);
    uint64_t n = 2 * QUEUE_ITEMS;
    test_check(&t, "condvar_queue", started == WORKERS && q.taken == n && q.sum == n * (n + 1) / 2,
               "%u threads; %lu items taken, sum %lu", started, q.taken, q.sum);

    struct mutex m = MUTEX_INIT;
    struct condvar c = CONDVAR_INIT;
    mutex_lock(&m);
    uint64_t start = sys_clock();
    int r = condvar_wait_timeout(&c, &m, 5 * NS_PER_MS);
    uint64_t waited = sys_clock() - start;
    bool held = !mutex_trylock(&m);
    mutex_unlock(&m);
    test_check(&t, "condvar_timeout", r == -ETIMEDOUT && waited >= 4 * NS_PER_MS && held,
               "gave %d after %lu ns, mutex held after: %d", r, waited, held);
}

#define HEAP_OPS   3000
#define HEAP_SLOTS 32
static volatile unsigned heap_damage, heap_failures;

static void heap_worker(uint64_t index)
{
    static const size_t sizes[] = { 8, 48, 200, 256, 700, 4000, 30000, 300000 };
    uint8_t *slot[HEAP_SLOTS] = { 0 };
    size_t len[HEAP_SLOTS] = { 0 };
    uint64_t rng = (index + 1) * 0x9e3779b97f4a7c15ull ^ t.seed;
    for (unsigned op = 0; op < HEAP_OPS; op++) {
        rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
        uint64_t r = rng * 0x2545f4914f6cdd1dull;
        unsigned i = r % HEAP_SLOTS;
        if (slot[i]) {
            for (size_t k = 0; k < len[i]; k += 61)
                if (slot[i][k] != (uint8_t)(k + i + index))
                    __atomic_add_fetch(&heap_damage, 1, __ATOMIC_RELAXED);
            free(slot[i]);
            slot[i] = 0;
            continue;
        }
        len[i] = sizes[(r >> 8) % 8];
        slot[i] = malloc(len[i]);
        if (!slot[i]) {
            __atomic_add_fetch(&heap_failures, 1, __ATOMIC_RELAXED);
            continue;
        }
        for (size_t k = 0; k < len[i]; k += 61)
            slot[i][k] = (uint8_t)(k + i + index);
    }
    for (unsigned i = 0; i < HEAP_SLOTS; i++)
        free(slot[i]);
    sys_thread_exit();
}

static void check_threaded_malloc(void)
{
    struct heap_stats before, after;
    heap_stats(malloc_default_heap(), &before);
    int64_t th[WORKERS];
    unsigned started = start_workers(heap_worker, th);
    wait_workers(th);
    int check = malloc_check();
    heap_stats(malloc_default_heap(), &after);
    test_check(&t, "malloc_from_threads",
               started == WORKERS && !heap_damage && !heap_failures && check == 0 &&
                   after.live_blocks == before.live_blocks,
               "%u threads; %u damaged, %u failed, check %d, live blocks %zu then %zu", started, heap_damage,
               heap_failures, check, before.live_blocks, after.live_blocks);
}

/* SYS_EP_WATCH: a client learns that its server's endpoint lost its
 * receiver; watches are one-shot, charged, and go with the endpoint. */
static uint64_t kmem_used(void)
{
    struct abi_account a = { 0 };
    sys_account_info(HANDLE_SELF, &a);
    return a.used[RES_KMEM];
}

static void check_watch(void)
{
    int64_t server = sys_ep_create(), n = sys_notify_create();
    int64_t client = server >= 0 ? sys_handle_grant(HANDLE_SELF, (handle_t)server, RIGHT_SEND) : server;
    int64_t no_send = server >= 0 ? sys_handle_grant(HANDLE_SELF, (handle_t)server, RIGHT_GRANT) : server;
    if (!test_check(&t, "watch_setup", server >= 0 && n >= 0 && client >= 0 && no_send >= 0,
                    "ep %ld notify %ld send copy %ld grant-only copy %ld", server, n, client, no_send))
        return;
    int64_t bad_bit = sys_ep_watch((handle_t)client, (handle_t)n, 63);
    int64_t no_right = sys_ep_watch((handle_t)no_send, (handle_t)n, 1);
    int64_t watched = sys_ep_watch((handle_t)client, (handle_t)n, 5);
    int64_t early = sys_notify_wait((handle_t)n, TIMEOUT_POLL);
    sys_handle_close((handle_t)server); /* the receive right goes */
    int64_t fired = sys_notify_wait((handle_t)n, TIMEOUT_POLL);
    int64_t dead = sys_ep_watch((handle_t)client, (handle_t)n, 7); /* no receiver now: at once */
    int64_t at_once = sys_notify_wait((handle_t)n, TIMEOUT_POLL);
    test_check(&t, "watch_fires_once_receiver_gone",
               bad_bit == -EINVAL && no_right == -EPERM && watched == 0 && early == -ETIMEDOUT && fired == (1 << 5) &&
                   dead == 0 && at_once == (1 << 7),
               "bit 63 %ld, without SEND %ld, watch %ld, before %ld, after %#lx, on a dead one %ld then %#lx", bad_bit,
               no_right, watched, early, fired, dead, at_once);
    sys_handle_close((handle_t)client);
    sys_handle_close((handle_t)no_send);

    /* Watches ended before they fire: their memory comes back, and the
     * end of the endpoint signals nothing. */
    int64_t quiet = sys_ep_create();
    uint64_t at_start = kmem_used();
    unsigned unwatched = 0;
    for (unsigned i = 0; quiet >= 0 && i < 200; i++)
        if (sys_ep_watch((handle_t)quiet, (handle_t)n, 4) == 0)
            unwatched += sys_ep_unwatch((handle_t)quiet, (handle_t)n, 4) == 0;
    uint64_t after_unwatch = kmem_used();
    int64_t none_left = quiet >= 0 ? sys_ep_unwatch((handle_t)quiet, (handle_t)n, 4) : quiet;
    int64_t wrong_bit = quiet >= 0 ? sys_ep_unwatch((handle_t)quiet, (handle_t)n, 63) : quiet;
    if (quiet >= 0)
        sys_handle_close((handle_t)quiet);
    int64_t silent = sys_notify_wait((handle_t)n, TIMEOUT_POLL);
    test_check(&t, "unwatch_ends_watch",
               unwatched == 200 && after_unwatch <= at_start && none_left == -ENOENT && wrong_bit == -EINVAL &&
                   silent == -ETIMEDOUT,
               "%u of 200 watched and ended; kernel memory %lu -> %lu; another %ld (want -ENOENT), bit 63 %ld; bits "
               "after the endpoint ended %ld (want none)",
               unwatched, at_start, after_unwatch, none_left, wrong_bit, silent);

    /* A watch lasts while the handle it was made through does: closing
     * another copy leaves it, closing that one ends it (with no walk of
     * the handle table, however full). */
    int64_t watched_ep = sys_ep_create();
    int64_t via = watched_ep >= 0 ? sys_handle_grant(HANDLE_SELF, (handle_t)watched_ep, RIGHT_SEND) : watched_ep;
    int64_t other = watched_ep >= 0 ? sys_handle_grant(HANDLE_SELF, (handle_t)watched_ep, RIGHT_SEND) : watched_ep;
    int64_t via_made = via >= 0 ? sys_ep_watch((handle_t)via, (handle_t)n, 6) : via;
    if (other >= 0)
        sys_handle_close((handle_t)other);
    int64_t still = via >= 0 ? sys_ep_unwatch((handle_t)via, (handle_t)n, 6) : via; /* there: ends it */
    int64_t via_again = via >= 0 ? sys_ep_watch((handle_t)via, (handle_t)n, 6) : via;
    int64_t copy = watched_ep >= 0 ? sys_handle_grant(HANDLE_SELF, (handle_t)watched_ep, RIGHT_SEND) : watched_ep;
    if (via >= 0)
        sys_handle_close((handle_t)via);
    int64_t gone = copy >= 0 ? sys_ep_unwatch((handle_t)copy, (handle_t)n, 6) : copy;
    if (watched_ep >= 0)
        sys_handle_close((handle_t)watched_ep);
    int64_t no_signal = sys_notify_wait((handle_t)n, TIMEOUT_POLL);
    if (copy >= 0)
        sys_handle_close((handle_t)copy);
    test_check(&t, "watch_lasts_while_its_handle_does",
               via_made == 0 && still == 0 && via_again == 0 && gone == -ENOENT && no_signal == -ETIMEDOUT,
               "watch %ld; after another copy closed, unwatch %ld (want 0); watch again %ld; after its handle "
               "closed, unwatch %ld (want -ENOENT); bits at the end %ld (want none)",
               via_made, still, via_again, gone, no_signal);

    /* Watches on a live endpoint until the kernel-memory limit says no;
     * its end fires them (one bit, however many) and frees them all. */
    int64_t live = sys_ep_create();
    uint64_t before = kmem_used();
    unsigned made = 0;
    int64_t err = 0;
    while (live >= 0 && made < 100000 && (err = sys_ep_watch((handle_t)live, (handle_t)n, 3)) == 0)
        made++;
    uint64_t full = kmem_used();
    /* At the bound, one ended makes room for one more. */
    int64_t ended = live >= 0 ? sys_ep_unwatch((handle_t)live, (handle_t)n, 3) : live;
    int64_t again = live >= 0 ? sys_ep_watch((handle_t)live, (handle_t)n, 3) : live;
    if (live >= 0)
        sys_handle_close((handle_t)live);
    uint64_t after = kmem_used();
    int64_t bits = sys_notify_wait((handle_t)n, TIMEOUT_POLL);
    test_check(&t, "watch_flood_bounded",
               made > 0 && made <= ABI_WATCHES_MAX && err == -EDQUOT && ended == 0 && again == 0 && full > before &&
                   after <= before && bits == (1 << 3),
               "%u watches (at most %u) then %ld; one ended %ld, made again %ld; kernel memory %lu -> %lu -> %lu "
               "bytes; bits after %ld",
               made, ABI_WATCHES_MAX, err, ended, again, before, full, after, bits);
    sys_handle_close((handle_t)n);
}

int main(int argc, char **argv)
{
    test_begin(&t, "sync", argc, argv);
    /* The handle-table fill in check_caps uses up the kernel memory the
     * suite allows: the checks that start threads come first. */
    check_futex();
    check_mutex();
    check_condvar();
    check_threaded_malloc();
    check_watch();
    check_receive_right_moves();
    check_notifications();
    check_caps();
    test_exit(&t);
}
