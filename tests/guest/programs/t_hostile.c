/*
 * In-guest test program: an unprivileged program that attacks the kernel
 * and the memory server as a hostile one would, one attack per mode. The
 * suite (hostile.c) starts it with limits on its subtree, and for each
 * attack checks what only it can see: that the kernel did not panic, that
 * other programs were served while the attack held what it took, and that
 * free memory came back exactly once the attacker's subtree ended. This
 * program checks that each attack got an error and nothing else.
 *
 * Startup slots: MEMSRV (send, grant), SERVICE (this program receives on
 * it: the suite sends its own image there for the modes that start
 * children), PARENT (send: "I hold what I took; serve someone else now",
 * answered when the suite is done), DEVICE (a device to pin segments for,
 * with RIGHT_DMA and RIGHT_GRANT).
 *
 * Modes (argument 1):
 *   reply-recv-buffer   reply-and-receive with the buffer inside the segment
 *                       the reply sends away
 *   recv-into-sent      receive into a segment a sibling thread's blocked
 *                       send carries
 *   send-then-free      free, give, pin and send again a segment in flight;
 *                       the receiver gets exactly what was sent
 *   steal-receive       receive on endpoints held with send rights only
 *                       (the memory server's among them); grants that would
 *                       widen rights
 *   no-powers           create processes, open devices, read modules, power
 *                       off, make memory-server calls: all without the powers
 *   spawn-flood         create processes until refused (the subtree's
 *                       process limit), then hold them
 *   thread-flood        create threads until refused, then hold them
 *   endpoint-flood      create endpoints and handles until refused, then hold
 *   memory-flood        allocate 64 KiB segments until refused, then hold
 *   zero-loop           a thread allocates and frees half of the memory
 *                       limit without pause while the bystander is served
 *   child-escape        children allocate and send their segments up: the
 *                       parent's limit bounds the whole subtree
 *   pin-exit-loop       children pin 2 MiB each and exit, every other one
 *                       after closing its device handle: nothing stays
 *                       quarantined once they are gone
 *   readonly-transfer   a segment sent read-only cannot be written by its
 *                       receiver (a child that tries is killed)
 *   wait-races          process and thread waits whose handles are closed
 *                       and whose slots are reused while they wait
 *   unstarted-children  an unstarted process holding another and a device
 *                       handle, ended by closing the handle to it
 *   migrating-buffer    sends from a buffer in a segment being migrated,
 *                       to an endpoint closed and made anew meanwhile
 *   cpu-modes           a system call with RFLAGS.NT set; a child that
 *                       tries to enter compatibility mode to SYSCALL there
 *   device-attacks      bus mastering, MSI and BAR writes, oversized values,
 *                       BAR mapped twice, a mapping used after its handle
 *                       is closed (by a child, which is killed)
 *   stale-dma           pin, learn the address, unpin, free: the frames stay
 *                       quarantined while the device may still use them
 *   check-flood         threads ask the memory server for CHECK and a
 *                       region's figures (each looks at every span under
 *                       its lock) without pause: most are turned away with
 *                       a wait, and the bystander's own check gets a turn
 *   bystander           the other program: allocates, checks and frees
 *                       while an attack holds what it took
 * Child modes, started by the modes above: kid-alloc-send, kid-pin,
 * kid-pin-close, kid-write-ro, kid-touch-bar, kid-compat.
 */
#include <common/edu.h>
#include <common/string.h>
#include <libsys/loader.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>
#include "hostile.h"

#define KIB ((uint64_t)1024)
#define MIB ((uint64_t)1024 * 1024)

/* Where the kernel's image starts (physical): a target no device may reach. */
#define KERNEL_PHYS_PROBE 0x100000ull

#define PCI_COMMAND        0x04
#define PCI_COMMAND_MASTER 0x04u

#define L_HOLDING HOSTILE_HOLDING
#define L_IMAGE   HOSTILE_IMAGE
#define L_SEGMENT HOSTILE_SEGMENT
#define L_DONE    HOSTILE_DONE

static struct test_run t;
static uint8_t stacks[8][16384] __attribute__((aligned(16)));
static struct ms_segment image; /* this program's ELF, from the suite */

/* Tells the suite the attack holds what it took, and waits until the suite
 * has served someone else meanwhile. */
static void hold(const char *what, uint64_t count)
{
    printf("hostile: holding %lu %s\n", count, what);
    struct ipc_msg m = { .label = L_HOLDING, .w = { count } };
    sys_ipc_call(startup_handle(ABI_STARTUP_PARENT), &m, TIMEOUT_FOREVER);
}

static bool receive_image(void)
{
    struct ipc_msg m = { .flags = 0 };
    if (sys_ipc_recv(startup_handle(ABI_STARTUP_SERVICE), &m, TIMEOUT_FOREVER) != 0 || m.label != L_IMAGE ||
        m.seg == HANDLE_NONE)
        return test_check(&t, "image_received", false, "no image from the suite (label %lu)", m.label);
    image = (struct ms_segment){ m.seg, (void *)m.seg_addr, m.seg_size, 0 };
    return true;
}

/* Starts this program again as a child in `mode`, with the memory
 * server's endpoint, an endpoint of ours to send to (PARENT) and, if asked,
 * our device. */
static int64_t spawn_child(const char *mode, handle_t parent_ep, bool device, uint32_t powers)
{
    char args[96];
    snprintf(args, sizeof(args), "t_hostile %s", mode);
    struct loader_spec spec;
    loader_spec_init(&spec, "t_hostile", image.addr, image.size, args);
    spec.powers = powers;
    spec.grants[ABI_STARTUP_MEMSRV] =
        (struct loader_grant){ startup_handle(ABI_STARTUP_MEMSRV), RIGHT_SEND | RIGHT_GRANT };
    spec.grants[ABI_STARTUP_PARENT] = (struct loader_grant){ parent_ep, RIGHT_SEND };
    if (device)
        spec.grants[ABI_STARTUP_DEVICE] = (struct loader_grant){ startup_handle(ABI_STARTUP_DEVICE), RIGHTS_SAME };
    return loader_spawn(&spec);
}

static int64_t wait_status(int64_t h)
{
    int64_t status = 0;
    if (h < 0)
        return h;
    sys_proc_wait((handle_t)h, TIMEOUT_FOREVER, &status);
    sys_handle_close((handle_t)h);
    return status;
}

/* ---- buffers that vanish ----------------------------------------------- */

static handle_t pair_ep;
static volatile int64_t thread_result;

static void caller_thread(uint64_t unused)
{
    (void)unused;
    struct ipc_msg m = { .label = 7 };
    thread_result = sys_ipc_call(pair_ep, &m, TIMEOUT_FOREVER);
    sys_thread_exit();
}

/* The reply carries the segment the server's message buffer lies in: the
 * reply unmaps it, and the receive half must find the buffer gone. */
static void reply_recv_buffer(void)
{
    int64_t ep = sys_ep_create();
    pair_ep = (handle_t)ep;
    int64_t th = sys_thread_create(caller_thread, stacks[0] + sizeof(stacks[0]), 0);
    struct ms_segment seg;
    int64_t r = ms_alloc(4096, 0, 0, 0, &seg);
    if (!test_check(&t, "setup", ep >= 0 && th >= 0 && r == 0, "ep %ld thread %ld alloc %ld", ep, th, r))
        return;
    struct ipc_msg *m = seg.addr;
    memset(m, 0, sizeof(*m));
    int64_t got = sys_ipc_recv((handle_t)ep, m, TIMEOUT_FOREVER);
    /* Reply with the very segment the buffer is in, and receive into it. */
    m->label = 0;
    m->seg = seg.handle;
    m->len = 0;
    int64_t rr = sys_ipc_reply_recv((handle_t)ep, m, TIMEOUT_POLL);
    sys_thread_wait((handle_t)th, TIMEOUT_FOREVER);
    test_check(&t, "reply_recv_vanished_buffer", got == 0 && rr == -EFAULT && thread_result == 0,
               "recv %ld, reply-recv %ld (want EFAULT), caller got %ld", got, rr, thread_result);
    struct abi_seg_info info;
    test_check(&t, "old_handle_dead", sys_seg_info(seg.handle, &info) == -EBADH, "the sent segment's handle lives");
}

static handle_t sent_seg;

static void sender_thread(uint64_t unused)
{
    (void)unused;
    struct ipc_msg m = { .label = 9, .seg = sent_seg };
    thread_result = sys_ipc_send(pair_ep, &m, TIMEOUT_FOREVER);
    sys_thread_exit();
}

/* Until a blocked send carries seg (false if the run's budget ran out
 * first): a fixed nap is not enough on a host that runs several virtual
 * CPUs on one core, where the sender may not have started yet (seen: 6
 * CPUs beside another guest of 8, on 2 cores). */
static bool wait_in_flight(handle_t seg)
{
    uint64_t deadline = sys_clock() + test_budget_ns(&t, 2000);
    struct abi_seg_info info;
    while (sys_seg_info(seg, &info) == 0 && (info.flags & SEG_INFO_IN_FLIGHT) == 0) {
        if (sys_clock() >= deadline)
            return false;
        sys_sleep(NS_PER_MS);
    }
    return true;
}

/* A sibling's blocked send carries segment S; we receive into a buffer
 * inside S: delivery moves S, and the store must fail cleanly. */
static void recv_into_sent(void)
{
    int64_t ep = sys_ep_create();
    struct ms_segment seg;
    int64_t r = ms_alloc(8192, 0, 0, 0, &seg);
    if (!test_check(&t, "setup", ep >= 0 && r == 0, "ep %ld alloc %ld", ep, r))
        return;
    pair_ep = (handle_t)ep;
    sent_seg = seg.handle;
    int64_t th = sys_thread_create(sender_thread, stacks[0] + sizeof(stacks[0]), 0);
    if (!test_check(&t, "sender_blocked", th >= 0 && wait_in_flight(seg.handle), "thread %ld; no send carried it", th))
        return;
    struct ipc_msg *inside = (struct ipc_msg *)((uint8_t *)seg.addr + 4096);
    inside->flags = 0;
    int64_t got = sys_ipc_recv((handle_t)ep, inside, TIMEOUT_FOREVER);
    sys_thread_wait((handle_t)th, TIMEOUT_FOREVER);
    test_check(&t, "recv_into_sent_segment", got == -EFAULT && thread_result == 0, "recv %ld (want EFAULT), send %ld",
               got, thread_result);
    /* The segment arrived all the same: it is ours under a new handle. */
    struct ms_stats_client me;
    test_check(&t, "segment_still_held", ms_stats_client(0, &me) == 0 && me.segments >= 1, "memsrv lost it");
}

/* ---- in-flight segments ------------------------------------------------ */

static void send_then_free(void)
{
    int64_t ep = sys_ep_create();
    struct ms_segment x;
    int64_t r = ms_alloc(64 * KIB, 0, 0, 0, &x);
    if (!test_check(&t, "setup", ep >= 0 && r == 0, "ep %ld alloc %ld", ep, r))
        return;
    memset(x.addr, 0x5a, x.size);
    pair_ep = (handle_t)ep;
    sent_seg = x.handle;
    int64_t th = sys_thread_create(sender_thread, stacks[0] + sizeof(stacks[0]), 0);
    if (!test_check(&t, "sender_blocked", th >= 0 && wait_in_flight(x.handle), "thread %ld; no send carried it", th))
        return;
    /* X is in flight: nobody may take it from the send. */
    int64_t freed = ms_free(x.handle);
    int64_t given = sys_seg_give(x.handle, HANDLE_SELF, 0, RIGHTS_SAME);
    int64_t pinned = sys_seg_pin(x.handle, startup_handle(ABI_STARTUP_DEVICE));
    struct ipc_msg again = { .label = 10, .seg = x.handle };
    int64_t second = sys_ipc_send((handle_t)ep, &again, TIMEOUT_POLL);
    test_check(&t, "in_flight_refused", freed == -EBUSY && given == -EBUSY && pinned == -EBUSY && second == -EBUSY,
               "free %ld, give %ld, pin %ld, second send %ld (want EBUSY each)", freed, given, pinned, second);
    /* A new allocation (which could reuse a freed object) is not what the
     * receiver gets. */
    struct ms_segment y;
    r = ms_alloc(64 * KIB, 0, 0, 0, &y);
    if (r == 0)
        memset(y.addr, 0xa5, y.size);
    struct ipc_msg m = { 0 };
    int64_t got = sys_ipc_recv((handle_t)ep, &m, TIMEOUT_FOREVER);
    sys_thread_wait((handle_t)th, TIMEOUT_FOREVER);
    struct abi_seg_info info = { 0 };
    sys_seg_info(m.seg, &info);
    bool intact =
        got == 0 && m.seg_addr && ((uint8_t *)m.seg_addr)[0] == 0x5a && ((uint8_t *)m.seg_addr)[m.seg_size - 1] == 0x5a;
    test_check(&t, "receiver_got_what_was_sent", intact && info.sid == x.sid && thread_result == 0,
               "recv %ld, sid %lu (sent %lu), send %ld", got, info.sid, x.sid, thread_result);
    if (got == 0)
        ms_free(m.seg);
    if (r == 0)
        ms_free(y.handle);
}

/* ---- a remap that would write an entry a page under the kernel lock ---- */

/* A segment over ABI_SEG_UNALIGNED_MAX goes only to places at the same
 * offset from a 2 MiB boundary as its memory: at any other it would map
 * with small pages, and each remap back and forth would write an entry a
 * page with the kernel lock held. Where the kernel picks, it picks such a
 * place. */
static void huge_remap(void)
{
    struct ms_segment s;
    struct abi_seg_info info = { 0 };
    uint64_t size = ABI_SEG_UNALIGNED_MAX + ABI_LARGE_PAGE_SIZE;
    int64_t r = ms_alloc(size, 0, MS_ALLOC_NOWAIT, 0, &s);
    if (r != 0) {
        test_skip(&t, "huge_remap_aligned_only", "no segment of %lu MiB to remap: %s", size / MIB, sys_strerror(r));
        return;
    }
    ((volatile uint8_t *)s.addr)[0] = 0x5a;
    int64_t got = sys_seg_info(s.handle, &info);
    uint64_t phase = info.phys & (ABI_LARGE_PAGE_SIZE - 1);
    test_check(&t, "huge_placed_in_phase",
               got == 0 && (((uint64_t)s.addr ^ info.phys) & (ABI_LARGE_PAGE_SIZE - 1)) == 0,
               "%lu MiB at phys %#lx mapped at %p (info %ld)", size / MIB, info.phys, s.addr, got);
    /* Half way up the user half, where nothing is mapped. */
    uint64_t target = ((ABI_USER_TOP / 2) & ~(ABI_LARGE_PAGE_SIZE - 1)) + phase;
    int64_t off_phase = sys_seg_give(s.handle, HANDLE_SELF, target + ABI_PAGE_SIZE, RIGHTS_SAME);
    bool kept = off_phase < 0 && ((volatile uint8_t *)s.addr)[0] == 0x5a;
    int64_t in_phase = sys_seg_give(s.handle, HANDLE_SELF, target, RIGHTS_SAME);
    bool moved = in_phase == (int64_t)target && ((volatile uint8_t *)target)[0] == 0x5a;
    test_check(&t, "huge_remap_aligned_only", off_phase == -EINVAL && kept && moved,
               "%lu MiB at %#lx + 4 KiB: %ld (want EINVAL, still mapped: %d); at %#lx: %ld", size / MIB, target,
               off_phase, kept, target, in_phase);
    ms_free(s.handle);
}

/* ---- rights ------------------------------------------------------------ */

static void steal_receive(void)
{
    struct ipc_msg m = { 0 };
    int64_t from_memsrv = sys_ipc_recv(ms_endpoint(), &m, TIMEOUT_POLL);
    int64_t reply_recv = sys_ipc_reply_recv(ms_endpoint(), &m, TIMEOUT_POLL);
    int64_t from_parent = sys_ipc_recv(startup_handle(ABI_STARTUP_PARENT), &m, TIMEOUT_POLL);
    test_check(&t, "receive_needs_right", from_memsrv == -EPERM && reply_recv == -EPERM && from_parent == -EPERM,
               "memsrv %ld, reply-recv %ld, parent %ld (want EPERM)", from_memsrv, reply_recv, from_parent);
    /* Granting to oneself cannot widen: asking for RECV on a send-only
     * handle gives a send-only one (and the memsrv handle keeps sending). */
    int64_t copy = sys_handle_grant(HANDLE_SELF, ms_endpoint(), RIGHT_SEND | RIGHT_RECV | RIGHT_GRANT);
    struct abi_handle_info info = { 0 };
    int64_t inf = copy >= 0 ? sys_handle_info((handle_t)copy, &info) : copy;
    int64_t recv_copy = copy >= 0 ? sys_ipc_recv((handle_t)copy, &m, TIMEOUT_POLL) : copy;
    test_check(&t, "grant_never_widens", inf == 0 && !(info.rights & RIGHT_RECV) && recv_copy == -EPERM,
               "copy %ld: rights %#x, recv %ld", copy, info.rights, recv_copy);
    /* A handle without RIGHT_GRANT cannot be passed on. */
    int64_t narrow = sys_handle_grant(HANDLE_SELF, ms_endpoint(), RIGHT_SEND);
    int64_t again = narrow >= 0 ? sys_handle_grant(HANDLE_SELF, (handle_t)narrow, RIGHT_SEND) : narrow;
    test_check(&t, "grant_needs_right", narrow >= 0 && again == -EPERM, "narrow %ld, its grant %ld", narrow, again);
    /* Segments are not granted (they move), threads not at all. */
    struct ms_segment s;
    int64_t r = ms_alloc(4096, 0, 0, 0, &s);
    int64_t seg_grant = r == 0 ? sys_handle_grant(HANDLE_SELF, s.handle, RIGHTS_SAME) : r;
    test_check(&t, "segment_not_granted", seg_grant == -EBADH, "granting a segment gave %ld", seg_grant);
    /* Made-up handles and one's own process with a made-up target. */
    uint64_t made_up = 0x0000000500000007ull;
    int64_t g2 = sys_handle_grant(made_up, ms_endpoint(), RIGHT_SEND);
    int64_t k = sys_proc_kill(made_up);
    int64_t give = r == 0 ? sys_seg_give(s.handle, made_up, 0, RIGHTS_SAME) : -EBADH;
    test_check(&t, "made_up_handles", g2 == -EBADH && k == -EBADH && give == -EBADH, "grant %ld kill %ld give %ld", g2,
               k, give);
    if (r == 0)
        ms_free(s.handle);
    /* Stats about another client: refused. */
    struct ms_stats_client c;
    int64_t nosy = ms_stats_client(libsys_pid ^ 0x100000000ull, &c);
    test_check(&t, "stats_of_others_refused", nosy == -EPERM, "stats about another pid gave %ld", nosy);
}

static void no_powers(void)
{
    struct abi_module_info mod;
    struct abi_mem_range range;
    int64_t create = sys_proc_create("x", 1, 0);
    int64_t dev = sys_dev_open(0x1234, 0x11e8, 0);
    int64_t module = sys_module_info(0, &mod);
    int64_t ms = sys_ms_bootinfo(0, &range);
    test_check(&t, "powers_required", create == -EPERM && dev == -EPERM && module == -EPERM && ms == -EPERM,
               "create %ld, device %ld, module %ld, memsrv call %ld", create, dev, module, ms);
}

/* ---- exhausting what the subtree may hold ------------------------------ */

#define FLOOD_MAX 4096
static int64_t flood[FLOOD_MAX];

static void release_flood(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        sys_handle_close((handle_t)flood[i]);
}

static void spawn_flood(void)
{
    unsigned n = 0;
    int64_t err = 0;
    while (n < FLOOD_MAX && (err = sys_proc_create("flood", 5, 0)) >= 0)
        flood[n++] = err;
    struct abi_account a = { 0 };
    sys_account_info(HANDLE_SELF, &a);
    test_check(&t, "spawn_refused_at_limit", (err == -EDQUOT || err == -ENOMEM) && n > 0,
               "%u created, then %ld; processes %lu of %lu", n, err, a.used[RES_PROCESSES], a.limit[RES_PROCESSES]);
    hold("processes", n);
    release_flood(n);
}

static void idle_thread(uint64_t unused)
{
    (void)unused;
    sys_sleep(TIMEOUT_FOREVER);
    sys_thread_exit();
}

static void thread_flood(void)
{
    unsigned n = 0;
    int64_t err = 0;
    /* Threads that never touch their stack may share one. */
    while (n < FLOOD_MAX && (err = sys_thread_create(idle_thread, stacks[n % 8] + sizeof(stacks[0]), 0)) >= 0)
        flood[n++] = err;
    test_check(&t, "threads_refused_at_limit", (err == -EDQUOT || err == -ENOMEM) && n > 0, "%u threads, then %ld", n,
               err);
    hold("threads", n);
}

static void endpoint_flood(void)
{
    unsigned n = 0;
    int64_t err = 0;
    while (n < FLOOD_MAX && (err = sys_ep_create()) >= 0)
        flood[n++] = err;
    /* Handles to one endpoint, until the handle pages hit the limit. */
    uint64_t copies = 0;
    int64_t copy = 0;
    while (n > 0 && copies < 1000000 && (copy = sys_handle_grant(HANDLE_SELF, (handle_t)flood[0], RIGHT_SEND)) >= 0)
        copies++;
    test_check(&t, "endpoints_refused_at_limit", (err == -EDQUOT || err == -ENOMEM) && n > 0, "%u endpoints, then %ld",
               n, err);
    test_check(&t, "handles_refused_at_limit", copy == -EDQUOT || copy == -ENOMEM, "%lu handles, then %ld", copies,
               copy);
    hold("endpoints and handles", n + copies);
}

static void memory_flood(void)
{
    static struct ms_segment segs[FLOOD_MAX];
    unsigned n = 0;
    int64_t err = 0;
    while (n < FLOOD_MAX && (err = ms_alloc(64 * KIB, 0, MS_ALLOC_NOWAIT, 0, &segs[n])) == 0)
        n++;
    struct abi_account a = { 0 };
    sys_account_info(HANDLE_SELF, &a);
    test_check(&t, "memory_refused_at_limit", err == -EDQUOT && n > 0, "%u segments, then %ld; memory %lu of %lu", n,
               err, a.used[RES_MEMORY], a.limit[RES_MEMORY]);
    hold("segments", n);
}

/* Half of its memory limit allocated and freed in a loop by a thread of
 * its own, without pause, while the bystander is served: each new segment
 * is zero-filled by the kernel, and memsrv must not keep its books shut
 * for that long. */
static volatile uint64_t zero_rounds;
static volatile bool zero_stop;

static void zero_looper(uint64_t size)
{
    while (!zero_stop) {
        struct ms_segment s;
        if (ms_alloc(size, 0, MS_ALLOC_NOWAIT, 0, &s) == 0) {
            zero_rounds++;
            ms_free(s.handle);
        } else {
            sys_yield();
        }
    }
    sys_thread_exit();
}

static uint8_t looper_stack[16384] __attribute__((aligned(16)));

static void zero_loop(void)
{
    struct abi_account a = { 0 };
    sys_account_info(HANDLE_SELF, &a);
    uint64_t size = (a.limit[RES_MEMORY] / 2) & ~(uint64_t)(64 * KIB - 1);
    int64_t th = size ? sys_thread_create(zero_looper, looper_stack + sizeof(looper_stack), size) : -EINVAL;
    test_check(&t, "looper_started", th >= 0, "a thread to allocate %lu bytes in a loop: %ld", size, th);
    while (th >= 0 && zero_rounds < 2)
        sys_yield();
    hold("a loop of large allocations", zero_rounds);
    /* Stopped before the end, so that no request of ours is under way
     * when the suite measures what came back. */
    zero_stop = true;
    if (th >= 0)
        sys_thread_wait((handle_t)th, TIMEOUT_FOREVER);
    printf("hostile: zero loop: %lu segments of %lu KiB made and freed\n", zero_rounds, size / KIB);
}

/* ---- children ---------------------------------------------------------- */

static void child_escape(void)
{
    if (!receive_image())
        return;
    int64_t ep = sys_ep_create();
    enum { CHILDREN = 8 };
    int64_t kids[CHILDREN];
    unsigned started = 0;
    for (unsigned i = 0; i < CHILDREN; i++)
        started += (kids[i] = spawn_child("kid-alloc-send", (handle_t)ep, false, 0)) >= 0;
    test_check(&t, "children_started", started > 0, "no child could start (%ld)", kids[0]);
    /* Take what they send until every child has said it is done. */
    uint64_t got = 0, bytes = 0;
    unsigned done = 0;
    while (done < started) {
        struct ipc_msg m = { 0 };
        if (sys_ipc_recv((handle_t)ep, &m, TIMEOUT_FOREVER) != 0)
            break;
        if (m.seg != HANDLE_NONE) {
            got++;
            bytes += m.seg_size;
        } else {
            done++;
        }
    }
    struct abi_account a = { 0 };
    sys_account_info(HANDLE_SELF, &a);
    printf("hostile: children sent %lu segments, %lu KiB; subtree holds %lu KiB of %lu\n", got, (uint64_t)(bytes / KIB),
           (uint64_t)(a.used[RES_MEMORY] / KIB), (uint64_t)(a.limit[RES_MEMORY] / KIB));
    test_check(&t, "children_bounded_by_parent_limit", a.used[RES_MEMORY] <= a.limit[RES_MEMORY] && bytes > 0,
               "subtree %lu bytes, limit %lu, received %lu", a.used[RES_MEMORY], a.limit[RES_MEMORY], bytes);
    hold("received segments", got);
    for (unsigned i = 0; i < CHILDREN; i++)
        wait_status(kids[i]);
}

static void child_alloc_send(void)
{
    handle_t up = startup_handle(ABI_STARTUP_PARENT);
    struct ms_segment s;
    /* As much as the subtree allows, all of it sent up. */
    while (ms_alloc(256 * KIB, 0, MS_ALLOC_NOWAIT, 0, &s) == 0) {
        struct ipc_msg m = { .label = L_SEGMENT, .seg = s.handle };
        if (sys_ipc_send(up, &m, TIMEOUT_FOREVER) != 0)
            break;
    }
    struct ipc_msg done = { .label = L_SEGMENT };
    sys_ipc_send(up, &done, TIMEOUT_FOREVER);
    sys_exit(0);
}

/* kid-pin's exit status: 0 pinned, PIN_KID_ALLOC + e or PIN_KID_PIN + e
 * when the allocation or the pin failed with -e. */
#define PIN_KID_ALLOC  1000
#define PIN_KID_PIN    2000
#define PIN_KID_ROOM   (4 * MIB)
#define PIN_BACK_TRIES 1000u

static const char *pin_failure(int64_t status)
{
    static char text[64];
    if (status == 0)
        return "none";
    if (status >= PIN_KID_PIN && status < PIN_KID_PIN + 1000)
        snprintf(text, sizeof(text), "pin %s", sys_strerror(PIN_KID_PIN - status));
    else if (status >= PIN_KID_ALLOC && status < PIN_KID_ALLOC + 1000)
        snprintf(text, sizeof(text), "2 MiB alloc %s", sys_strerror(PIN_KID_ALLOC - status));
    else if (status < 0)
        snprintf(text, sizeof(text), "spawn or wait %s", sys_strerror(status));
    else
        snprintf(text, sizeof(text), "status %ld", status);
    return text;
}

static void pin_exit_loop(void)
{
    if (!receive_image())
        return;
    struct ms_stats_global before = { 0 }, after = { 0 };
    ms_stats_global(&before);
    /* Each child holds a 2 MiB segment beside its own image: on 16 to 20
     * MiB there may be no room for one, which is no failure of the pins. */
    if (before.free_bytes < PIN_KID_ROOM) {
        test_skip(&t, "pin_exit_loop_leaves_nothing", "only %lu KiB free, %lu KiB needed", before.free_bytes / KIB,
                  PIN_KID_ROOM / KIB);
        return;
    }
    unsigned ok = 0;
    int64_t first_failure = 0;
    /* Every other child closes its device handle before it ends, pin and
     * all: the device stops for it then, but the pin still holds the
     * segment; its end must let it go. */
    for (unsigned i = 0; i < 16; i++) {
        int64_t status = wait_status(spawn_child(i % 2 ? "kid-pin-close" : "kid-pin", HANDLE_NONE, true, 0));
        ok += status == 0;
        first_failure = first_failure == 0 ? status : first_failure;
    }
    /* What the children held comes back through the kernel's reclaim
     * list, which memsrv drains on its own thread: on several CPUs the last
     * child's may still be on its way when its wait returns. A leak never
     * comes back within the second this allows. */
    for (unsigned i = 0; i < PIN_BACK_TRIES; i++) {
        ms_stats_global(&after);
        if (after.free_bytes == before.free_bytes && after.quarantined_bytes == before.quarantined_bytes)
            break;
        sys_sleep(NS_PER_MS);
    }
    test_check(&t, "pin_exit_loop_leaves_nothing",
               ok == 16 && after.quarantined_bytes == before.quarantined_bytes && after.free_bytes == before.free_bytes,
               "%u of 16 children pinned (the first that did not: %s); quarantined %lu -> %lu, free %lu -> %lu", ok,
               pin_failure(first_failure), before.quarantined_bytes, after.quarantined_bytes, before.free_bytes,
               after.free_bytes);
}

static void child_pin(bool close_device)
{
    struct ms_segment s;
    int64_t err = ms_alloc(2 * MIB, 0, 0, 0, &s);
    if (err != 0)
        sys_exit(PIN_KID_ALLOC - err);
    err = sys_seg_pin(s.handle, startup_handle(ABI_STARTUP_DEVICE));
    if (err < 0)
        sys_exit(PIN_KID_PIN - err);
    if (close_device && (err = sys_handle_close(startup_handle(ABI_STARTUP_DEVICE))) < 0)
        sys_exit(PIN_KID_PIN - err);
    sys_exit(0); /* with the pin */
}

static void readonly_transfer(void)
{
    if (!receive_image())
        return;
    /* The child receives on an endpoint of ours: we send it a segment with
     * read rights only. */
    int64_t ep = sys_ep_create();
    struct ms_segment s;
    int64_t r = ms_alloc(4096, 0, 0, 0, &s);
    memset(s.addr, 0x33, 4096);
    char args[64];
    snprintf(args, sizeof(args), "t_hostile kid-write-ro");
    struct loader_spec spec;
    loader_spec_init(&spec, "t_hostile", image.addr, image.size, args);
    spec.grants[ABI_STARTUP_MEMSRV] = (struct loader_grant){ startup_handle(ABI_STARTUP_MEMSRV), RIGHT_SEND };
    spec.grants[ABI_STARTUP_SERVICE] = (struct loader_grant){ (handle_t)ep, RIGHT_SEND | RIGHT_RECV };
    int64_t child = loader_spawn(&spec);
    struct ipc_msg m = { .label = L_SEGMENT, .seg = s.handle, .seg_rights = RIGHT_READ };
    int64_t sent = r == 0 && child >= 0 ? sys_ipc_send((handle_t)ep, &m, TIMEOUT_FOREVER) : -1;
    int64_t status = wait_status(child);
    test_check(&t, "readonly_segment_not_writable",
               sent == 0 && ABI_EXIT_IS_FAULT(status) && ABI_EXIT_FAULT_VECTOR(status) == 14,
               "send %ld, child ended with %ld (want a page fault)", sent, status);
}

static void child_write_ro(void)
{
    struct ipc_msg m = { 0 };
    if (sys_ipc_recv(startup_handle(ABI_STARTUP_SERVICE), &m, TIMEOUT_FOREVER) != 0 || !m.seg_addr)
        sys_exit(2);
    if (m.seg_rights & RIGHT_WRITE)
        sys_exit(3);
    if (*(volatile uint8_t *)m.seg_addr != 0x33)
        sys_exit(4);
    *(volatile uint8_t *)m.seg_addr = 0x44; /* must fault */
    sys_exit(5);
}

/* ---- waits whose objects go away --------------------------------------- */

static volatile int64_t waited_status, wait_result;
static volatile unsigned waiter_started;
static handle_t wait_target;

/* Until the waiter thread is about to wait, then a nap for it to block:
 * it may not have started within a fixed nap on a host that runs several
 * virtual CPUs on one core. */
static void waiter_blocks(void)
{
    test_wait_count(&t, &waiter_started, 1, 2000);
    sys_sleep(5 * NS_PER_MS);
}

static void proc_waiter(uint64_t unused)
{
    (void)unused;
    int64_t status = 12345;
    waiter_started = 1;
    wait_result = sys_proc_wait(wait_target, TIMEOUT_FOREVER, (int64_t *)&status);
    waited_status = status;
    sys_thread_exit();
}

static void thread_waiter(uint64_t unused)
{
    (void)unused;
    waiter_started = 1;
    wait_result = sys_thread_wait(wait_target, TIMEOUT_FOREVER);
    sys_thread_exit();
}

/* ---- a message buffer in a segment being migrated --------------------- */

/* A copy from a buffer whose page is being migrated waits, with the
 * kernel lock let go. Meanwhile the endpoint the send named is closed and
 * a new one is made, which may take the old one's memory: the waiting send
 * must not reach the new endpoint (it has no handle to it). */
#define MIGRATE_ROUNDS   400
#define MIGRATE_TIME_NS  (1500ull * NS_PER_MS) /* whichever ends first: the threads spin */
#define MIGRATE_BUF_SIZE (1 * MIB)

static volatile bool migrate_stop;
static volatile handle_t migrate_target; /* a send-only handle, closed under the sender */
static volatile uint64_t migrate_moves, migrate_sends, migrate_odd;
static volatile int64_t migrate_first_odd;
static struct ms_segment migrating;

static void mover_thread(uint64_t unused)
{
    (void)unused;
    /* Each thread yields after each call: on one CPU the thread that
     * closes and makes the endpoints needs its turns too. */
    while (!migrate_stop) {
        if (ms_move(migrating.sid) == 0)
            migrate_moves++;
        sys_yield();
    }
    sys_thread_exit();
}

static void migrating_sender(uint64_t unused)
{
    (void)unused;
    struct ipc_msg *m = (struct ipc_msg *)migrating.addr;
    while (!migrate_stop) {
        *m = (struct ipc_msg){ .label = 0x5eed };
        int64_t r = sys_ipc_send(migrate_target, m, 2 * NS_PER_MS);
        migrate_sends++;
        if (r != 0 && r != -ETIMEDOUT && r != -EPEER && r != -EBADH) {
            migrate_first_odd = migrate_odd++ ? migrate_first_odd : r;
        }
        sys_yield();
    }
    sys_thread_exit();
}

static void migrating_buffer(void)
{
    /* Small machines may have no room to move a MiB: a smaller one then. */
    int64_t r = -ENOMEM;
    for (uint64_t size = MIGRATE_BUF_SIZE; r == -ENOMEM && size >= 64 * KIB; size /= 4)
        r = ms_alloc(size, 0, 0, 0, &migrating);
    if (!test_check(&t, "setup", r == 0, "alloc %ld", r))
        return;
    int64_t first = sys_ep_create();
    migrate_target = first >= 0 ? (handle_t)sys_handle_grant(HANDLE_SELF, (handle_t)first, RIGHT_SEND) : 0;
    int64_t mover = sys_thread_create(mover_thread, stacks[0] + sizeof(stacks[0]), 0);
    int64_t sender = sys_thread_create(migrating_sender, stacks[1] + sizeof(stacks[1]), 0);
    unsigned stolen = 0, rounds = 0;
    int64_t recv_ep = first;
    uint64_t start = sys_clock();
    for (;
         rounds < MIGRATE_ROUNDS && sys_clock() - start < MIGRATE_TIME_NS && mover >= 0 && sender >= 0 && recv_ep >= 0;
         rounds++) {
        sys_sleep(NS_PER_MS / 2);
        /* Both handles go: the endpoint is freed unless a call holds it. */
        handle_t old_send = migrate_target;
        sys_handle_close((handle_t)recv_ep);
        sys_handle_close(old_send);
        recv_ep = sys_ep_create();
        if (recv_ep < 0)
            break;
        /* Whatever arrives here came from a send that named another endpoint. */
        struct ipc_msg got = { .flags = 0 };
        for (unsigned i = 0; i < 4; i++) {
            if (sys_ipc_recv((handle_t)recv_ep, &got, TIMEOUT_POLL) == 0)
                stolen++;
            sys_yield();
        }
        migrate_target = (handle_t)sys_handle_grant(HANDLE_SELF, (handle_t)recv_ep, RIGHT_SEND);
    }
    migrate_stop = true;
    if (mover >= 0)
        sys_thread_wait((handle_t)mover, TIMEOUT_FOREVER);
    if (sender >= 0)
        sys_thread_wait((handle_t)sender, TIMEOUT_FOREVER);
    printf("hostile: migrating buffer: %u rounds, %lu moves, %lu sends\n", rounds, migrate_moves, migrate_sends);
    test_check(&t, "send_from_migrating_buffer_stays_on_its_endpoint",
               mover >= 0 && sender >= 0 && rounds > 0 && recv_ep >= 0 && stolen == 0 && migrate_odd == 0,
               "threads %ld %ld, %u rounds; %u messages reached an endpoint the sender had no handle to; %lu sends "
               "ended otherwise than 0, -ETIMEDOUT, -EPEER or -EBADH (the first %ld)",
               mover, sender, rounds, stolen, migrate_odd, migrate_first_odd);
    if (recv_ep >= 0)
        sys_handle_close((handle_t)recv_ep);
    ms_free(migrating.handle);
}

/* ---- unstarted processes ----------------------------------------------- */

/* A process nobody started ends when the last handle to it goes (and not
 * before), and its release then runs inside the release of the process
 * that held that handle. Here unstarted C holds the last handle to
 * unstarted G and one to our device (DMA right and all), in either order;
 * closing our handle to C ends C, whose release ends G, and must still let
 * go of the device as C's. */
static void unstarted_children(void)
{
    /* Closing a handle that is not the last ends nothing. */
    int64_t x = sys_proc_create("x", 1, 0);
    int64_t keep = x >= 0 ? sys_handle_grant(HANDLE_SELF, (handle_t)x, RIGHT_WAIT) : x;
    int64_t other = x >= 0 ? sys_handle_grant(HANDLE_SELF, (handle_t)x, RIGHT_WAIT) : x;
    int64_t status = 0;
    int64_t closed_copy = other >= 0 ? sys_handle_close((handle_t)other) : other;
    int64_t after_copy = keep >= 0 ? sys_proc_wait((handle_t)keep, TIMEOUT_POLL, &status) : keep;
    int64_t closed_first = x >= 0 ? sys_handle_close((handle_t)x) : x;
    int64_t after_first = keep >= 0 ? sys_proc_wait((handle_t)keep, TIMEOUT_POLL, &status) : keep;
    test_check(&t, "unstarted_lives_while_named",
               keep >= 0 && closed_copy == 0 && after_copy == -ETIMEDOUT && closed_first == 0 &&
                   after_first == -ETIMEDOUT,
               "create %ld, copies %ld %ld; close a copy %ld, then wait %ld; close the first %ld, then wait %ld (want "
               "-ETIMEDOUT: still there)",
               x, keep, other, closed_copy, after_copy, closed_first, after_first);
    if (keep >= 0)
        sys_handle_close((handle_t)keep);

    for (unsigned order = 0; order < 2; order++) {
        struct abi_account before = { 0 }, after = { 0 };
        sys_account_info(HANDLE_SELF, &before);
        int64_t c = sys_proc_create("c", 1, 0), g = sys_proc_create("g", 1, 0);
        handle_t dev = startup_handle(ABI_STARTUP_DEVICE);
        int64_t first = -1, second = -1;
        if (c >= 0 && g >= 0) {
            first = sys_handle_grant((handle_t)c, order ? dev : (handle_t)g, RIGHTS_SAME);
            second = sys_handle_grant((handle_t)c, order ? (handle_t)g : dev, RIGHTS_SAME);
        }
        /* C's handle is G's last now; closing C's ends both. */
        int64_t closed_g = g >= 0 ? sys_handle_close((handle_t)g) : g;
        int64_t closed = c >= 0 ? sys_handle_close((handle_t)c) : c;
        sys_account_info(HANDLE_SELF, &after);
        struct abi_handle_info info;
        test_check(&t, order ? "unstarted_release_nested_device_first" : "unstarted_release_nested_child_first",
                   first >= 0 && second >= 0 && closed_g == 0 && closed == 0 &&
                       after.used[RES_PROCESSES] == before.used[RES_PROCESSES] && sys_handle_info(dev, &info) == 0,
                   "create %ld %ld, grants %ld %ld, close %ld %ld; processes in use %lu before, %lu after", c, g, first,
                   second, closed_g, closed, before.used[RES_PROCESSES], after.used[RES_PROCESSES]);
    }
}

static void wait_races(void)
{
    /* A process wait on an unstarted child whose handle another thread
     * closes (which ends it) and whose slot is reused at once. */
    int64_t child = sys_proc_create("victim", 6, 0);
    if (!test_check(&t, "setup", child >= 0, "proc_create %ld (this mode needs POWER_SPAWN)", child))
        return;
    wait_target = (handle_t)child;
    wait_result = 99;
    waiter_started = 0;
    int64_t th = sys_thread_create(proc_waiter, stacks[0] + sizeof(stacks[0]), 0);
    waiter_blocks();
    sys_handle_close((handle_t)child);
    int64_t reuse = sys_proc_create("reuse", 5, 0);
    sys_thread_wait((handle_t)th, TIMEOUT_FOREVER);
    test_check(&t, "proc_wait_sees_its_process", wait_result == 0 && waited_status == ABI_EXIT_KILLED,
               "wait %ld, status %ld (want the closed child's kill, %d)", wait_result, waited_status, ABI_EXIT_KILLED);
    if (reuse >= 0)
        sys_handle_close((handle_t)reuse);

    /* A thread wait whose handle another thread closes: the waited thread
     * lives on; the wait ends when it does. */
    int64_t sleeper = sys_thread_create(idle_thread, stacks[1] + sizeof(stacks[1]), 0);
    wait_target = (handle_t)sleeper;
    wait_result = 99;
    waiter_started = 0;
    int64_t w = sys_thread_create(thread_waiter, stacks[2] + sizeof(stacks[2]), 0);
    waiter_blocks();
    sys_handle_close((handle_t)sleeper);
    for (unsigned i = 0; i < 4; i++) /* slab slots reused by new threads */
        sys_thread_create(idle_thread, stacks[3 + i] + sizeof(stacks[0]), 0);
    int64_t still = sys_thread_wait((handle_t)w, 20 * NS_PER_MS);
    test_check(&t, "thread_wait_holds_on", still == -ETIMEDOUT && wait_result == 99,
               "the waiter ended (%ld, its wait %ld) though the thread lives", still, wait_result);
}

/* ---- devices ----------------------------------------------------------- */

static void device_attacks(void)
{
    handle_t dev = startup_handle(ABI_STARTUP_DEVICE);
    int64_t id = sys_dev_config_read(dev, 0, 4);
    if (id != 0x11e81234) {
        test_check(&t, "config_right_required", id == -EPERM, "reading config without RIGHT_CONFIG gave %ld", id);
        test_skip(&t, "device_attacks", "no edu device with config rights (%ld)", id);
        return;
    }
    /* Bus mastering flipped either way, in either width, is refused. */
    int64_t command = sys_dev_config_read(dev, PCI_COMMAND, 2);
    int64_t master = sys_dev_config_write(dev, PCI_COMMAND, 2, (uint32_t)command ^ PCI_COMMAND_MASTER);
    int64_t master_byte = sys_dev_config_write(dev, PCI_COMMAND, 1, ((uint32_t)command ^ PCI_COMMAND_MASTER) & 0xff);
    int64_t bar = sys_dev_config_write(dev, 0x10, 4, 0);
    int64_t wide = sys_dev_config_write(dev, 0x3c, 1, 0x100);
    test_check(&t, "kernel_registers_refused",
               master == -EPERM && master_byte == -EPERM && bar == -EPERM && wide == -EINVAL &&
                   sys_dev_config_read(dev, PCI_COMMAND, 2) == command,
               "master %ld/%ld, bar %ld, wide value %ld", master, master_byte, bar, wide);
    /* MSI, if the device has it: every register of the capability. */
    int64_t status = sys_dev_config_read(dev, 0x06, 2);
    unsigned at = (status > 0 && (status & 0x10)) ? (unsigned)sys_dev_config_read(dev, 0x34, 1) & 0xfc : 0;
    unsigned msi = 0;
    for (unsigned guard = 0; at >= 0x40 && guard < 48; guard++) {
        if (sys_dev_config_read(dev, at, 1) == 0x05)
            msi = at;
        at = (unsigned)sys_dev_config_read(dev, at + 1, 1) & 0xfc;
    }
    if (msi) {
        int64_t addr = sys_dev_config_write(dev, msi + 4, 4, 0xfee00000u);
        test_check(&t, "msi_refused", addr == -EPERM, "an MSI address write gave %ld", addr);
    }
    struct abi_bar_info b1, b2;
    int64_t map1 = sys_dev_map_bar(dev, 0, &b1);
    int64_t map2 = sys_dev_map_bar(dev, 0, &b2);
    int64_t unmap = sys_dev_unmap_bar(dev, 0);
    int64_t unmap2 = sys_dev_unmap_bar(dev, 0);
    test_check(&t, "bar_mapped_once", map1 == 0 && map2 == -EEXIST && unmap == 0 && unmap2 == -ENOENT,
               "map %ld, again %ld, unmap %ld, again %ld", map1, map2, unmap, unmap2);
    /* Map and unmap many times: the pool comes back (checked by the suite). */
    unsigned cycles = 0;
    for (unsigned i = 0; i < 200; i++)
        cycles += sys_dev_map_bar(dev, 0, &b1) == 0 && sys_dev_unmap_bar(dev, 0) == 0;
    test_check(&t, "bar_map_cycles", cycles == 200, "%u of 200 map/unmap cycles", cycles);
    /* A mapping made through a handle dies with the handle. */
    int64_t copy = sys_handle_grant(HANDLE_SELF, dev, RIGHTS_SAME);
    int64_t map3 = copy >= 0 ? sys_dev_map_bar((handle_t)copy, 0, &b1) : copy;
    sys_handle_close((handle_t)copy);
    struct abi_bar_info b4;
    int64_t map4 = sys_dev_map_bar(dev, 0, &b4); /* free again: the old mapping went */
    test_check(&t, "mapping_revoked_with_handle", map3 == 0 && map4 == 0, "map %ld, after close %ld", map3, map4);
    sys_dev_unmap_bar(dev, 0);
    /* Touching the revoked mapping faults (in a child, so we survive). */
    if (receive_image()) {
        char args[64];
        snprintf(args, sizeof(args), "kid-touch-bar");
        int64_t child = spawn_child(args, HANDLE_NONE, true, 0);
        int64_t st = wait_status(child);
        test_check(&t, "own_mapping_revoked_child", ABI_EXIT_IS_FAULT(st) && ABI_EXIT_FAULT_VECTOR(st) == 14,
                   "the child touching its closed mapping ended with %ld", st);
    }
}

static void child_touch_bar(void)
{
    handle_t dev = startup_handle(ABI_STARTUP_DEVICE);
    struct abi_bar_info b;
    int64_t copy = sys_handle_grant(HANDLE_SELF, dev, RIGHTS_SAME);
    if (copy < 0 || sys_dev_map_bar((handle_t)copy, 0, &b) != 0)
        sys_exit(1);
    sys_handle_close((handle_t)copy);
    (void)*(volatile uint32_t *)b.vaddr; /* must fault: the mapping went with the handle */
    sys_exit(2);
}

/* ---- processor modes and flags ------------------------------------------ */

/* A system call made with RFLAGS.NT set: the kernel must not carry NT to
 * its iretq (a #GP in ring 0). Then a child far-returns into selector 0x1b
 * (GDT slot 3, which once held a 32-bit user code segment) to SYSCALL
 * from compatibility mode, which enters ring 0 at MSR_CSTAR on AMD CPUs,
 * QEMU and Bochs: the far return must fault in the child, not reach it. */
static void cpu_modes(void)
{
    struct abi_kinfo k;
    int64_t r;
    __asm__ volatile("pushfq\n orq $0x4000, (%%rsp)\n popfq" ::: "memory", "cc");
    r = sys_kinfo(&k);
    __asm__ volatile("pushfq\n andq $~0x4000, (%%rsp)\n popfq" ::: "memory", "cc");
    test_check(&t, "syscall_with_nt_set", r == 0, "kinfo %ld", r);
    if (!receive_image())
        return;
    int64_t status = wait_status(spawn_child("kid-compat", HANDLE_NONE, false, 0));
    /* #PF too: QEMU 7.2's TCG pops a far return's stack as a supervisor
     * access, which SMAP refuses before the selector is looked at. */
    test_check(&t, "no_compatibility_mode",
               ABI_EXIT_IS_FAULT(status) &&
                   (ABI_EXIT_FAULT_VECTOR(status) == 13 || ABI_EXIT_FAULT_VECTOR(status) == 11 ||
                    ABI_EXIT_FAULT_VECTOR(status) == 14),
               "the child ended with %ld (want a #GP, #NP or #PF fault)", status);
}

static void child_compat(void)
{
    __asm__ volatile("pushq $0x1b\n"
                     "lea 1f(%%rip), %%rax\n"
                     "pushq %%rax\n"
                     "lretq\n"
                     "1: syscall\n"
                     "2: jmp 2b\n" ::
                         : "rax", "rcx", "r11", "memory");
    sys_exit(3);
}

/* ---- stale DMA addresses and DMA where it does not belong ------------ */

static volatile uint8_t *edu;

/* One edu transfer between its buffer and `phys` (to_ram: device ->
 * memory), waited for by polling; the device's DMA mask is 28 bits. */
static void edu_transfer(uint64_t phys, bool to_ram, uint32_t bytes)
{
    __asm__ volatile("mfence" ::: "memory");
    *(volatile uint64_t *)(edu + EDU_DMA_SOURCE) = to_ram ? EDU_DMA_BUFFER : phys;
    *(volatile uint64_t *)(edu + EDU_DMA_DEST) = to_ram ? phys : EDU_DMA_BUFFER;
    *(volatile uint64_t *)(edu + EDU_DMA_COUNT) = bytes;
    *(volatile uint64_t *)(edu + EDU_DMA_COMMAND) = (to_ram ? EDU_DMA_TO_RAM : 0) | EDU_DMA_RUN;
    uint64_t deadline = sys_clock() + 5000 * NS_PER_MS;
    while ((*(volatile uint64_t *)(edu + EDU_DMA_COMMAND) & EDU_DMA_RUN) && sys_clock() < deadline)
        sys_yield();
    __asm__ volatile("mfence" ::: "memory");
}

static unsigned count_not(const uint8_t *p, size_t n, uint8_t value)
{
    unsigned k = 0;
    for (size_t i = 0; i < n; i++)
        k += p[i] != value;
    return k;
}

/* Behind an IOMMU: DMA reaches exactly what is pinned for the device. */
static void dma_attacks_with_iommu(handle_t dev)
{
    struct abi_bar_info bar;
    int64_t fault_n = sys_notify_create();
    int64_t bound = sys_dev_fault_bind(dev, (handle_t)fault_n, 0);
    int64_t mapped = sys_dev_map_bar(dev, 0, &bar);
    int64_t on = sys_dev_dma(dev, true);
    struct ms_segment mine, victim, stale;
    int64_t a1 = ms_alloc(64 * KIB, 0, MS_ALLOC_BELOW, EDU_DMA_LIMIT, &mine);
    int64_t a2 = ms_alloc(64 * KIB, 0, MS_ALLOC_BELOW, EDU_DMA_LIMIT, &victim);
    int64_t a3 = ms_alloc(64 * KIB, 0, MS_ALLOC_BELOW, EDU_DMA_LIMIT, &stale);
    if (on == -ENOTSUP) {
        test_skip(&t, "iommu_setup", "the device may not master the bus: no IOMMU unit covers it");
        if (a1 == 0)
            ms_free(mine.handle);
        if (a2 == 0)
            ms_free(victim.handle);
        if (a3 == 0)
            ms_free(stale.handle);
        return;
    }
    if (!test_check(&t, "iommu_setup", bound == 0 && mapped == 0 && on == 0 && a1 == 0 && a2 == 0 && a3 == 0,
                    "fault bind %ld, map %ld, dma %ld, allocs %ld %ld %ld", bound, mapped, on, a1, a2, a3))
        return;
    edu = (volatile uint8_t *)bar.vaddr;
    int64_t pa = sys_seg_pin(mine.handle, dev);
    memset(mine.addr, 0xaa, 4096);
    edu_transfer((uint64_t)pa, false, EDU_DMA_BYTES); /* the device's buffer: 0xaa */
    struct abi_seg_info vi;
    sys_seg_info(victim.handle, &vi);
    memset(victim.addr, 0x55, victim.size);
    /* Into another segment nobody pinned for the device (the victim's
     * frames: the attacker learnt them somehow). */
    sys_notify_wait((handle_t)fault_n, TIMEOUT_POLL);
    edu_transfer(vi.phys, true, EDU_DMA_BYTES);
    int64_t fault1 = sys_notify_wait((handle_t)fault_n, 5000 * NS_PER_MS);
    test_check(&t, "dma_to_unpinned_blocked", count_not(victim.addr, victim.size, 0x55) == 0 && fault1 == 1,
               "%u victim bytes changed, fault %ld", count_not(victim.addr, victim.size, 0x55), fault1);
    /* Into the kernel (its image sits at 1 MiB), and out of it. */
    edu_transfer(KERNEL_PHYS_PROBE, true, 64);
    int64_t fault2 = sys_notify_wait((handle_t)fault_n, 5000 * NS_PER_MS);
    edu_transfer(KERNEL_PHYS_PROBE, false, 64);
    int64_t fault3 = sys_notify_wait((handle_t)fault_n, 5000 * NS_PER_MS);
    test_check(&t, "dma_to_kernel_blocked", fault2 == 1 && fault3 == 1, "write fault %ld, read fault %ld", fault2,
               fault3);
    /* A stale address: pinned, used, unpinned; the same DMA is blocked. */
    int64_t ps = sys_seg_pin(stale.handle, dev);
    edu_transfer((uint64_t)pa, false, EDU_DMA_BYTES);
    memset(stale.addr, 0x11, stale.size);
    edu_transfer((uint64_t)ps, true, EDU_DMA_BYTES);
    bool worked = ((uint8_t *)stale.addr)[0] == 0xaa;
    sys_seg_unpin(stale.handle);
    memset(stale.addr, 0x22, stale.size);
    edu_transfer((uint64_t)ps, true, EDU_DMA_BYTES);
    int64_t fault4 = sys_notify_wait((handle_t)fault_n, 5000 * NS_PER_MS);
    test_check(&t, "stale_address_blocked", worked && count_not(stale.addr, stale.size, 0x22) == 0 && fault4 == 1,
               "pinned DMA %s; after unpin %u bytes changed, fault %ld", worked ? "worked" : "failed",
               count_not(stale.addr, stale.size, 0x22), fault4);
    sys_seg_unpin(mine.handle);
    ms_free(mine.handle);
    ms_free(victim.handle);
    ms_free(stale.handle);
    sys_dev_unmap_bar(dev, 0);
    sys_handle_close((handle_t)fault_n);
}

static void stale_dma(void)
{
    handle_t dev = startup_handle(ABI_STARTUP_DEVICE);
    struct abi_kinfo k = { 0 };
    sys_kinfo(&k);
    if (k.flags & KINFO_IOMMU) {
        if (sys_dev_config_read(dev, 0, 4) == (int64_t)(EDU_DEVICE << 16 | EDU_VENDOR))
            dma_attacks_with_iommu(dev);
        else
            test_skip(&t, "dma_attacks", "an IOMMU but no edu device to attack with");
        return;
    }
    struct ms_segment s;
    int64_t r = ms_alloc(64 * KIB, 0, 0, 0, &s);
    int64_t phys = r == 0 ? sys_seg_pin(s.handle, dev) : r;
    if (!test_check(&t, "setup", phys > 0, "alloc %ld, pin %ld", r, phys))
        return;
    struct ms_stats_global before = { 0 }, during = { 0 };
    ms_stats_global(&before);
    sys_seg_unpin(s.handle);
    int64_t freed = ms_free(s.handle);
    ms_stats_global(&during);
    /* Nobody gets those frames while the device may still use them. */
    static struct ms_segment probe[256];
    unsigned n = 0, landed = 0;
    while (n < 256 && ms_alloc(64 * KIB, 0, MS_ALLOC_NOWAIT, 0, &probe[n]) == 0) {
        struct abi_seg_info info;
        sys_seg_info(probe[n].handle, &info);
        landed += info.phys < (uint64_t)phys + 64 * KIB && info.phys + info.size > (uint64_t)phys;
        n++;
    }
    for (unsigned i = 0; i < n; i++)
        ms_free(probe[i].handle);
    test_check(&t, "stale_frames_quarantined",
               freed == 0 && landed == 0 && during.quarantined_bytes >= before.quarantined_bytes + 64 * KIB,
               "free %ld; %u of %u new segments on the stale frames; quarantined %lu -> %lu", freed, landed, n,
               before.quarantined_bytes, during.quarantined_bytes);
    /* Stopping the device releases them. */
    sys_dev_dma(dev, false);
    struct ms_stats_global after = { 0 };
    ms_stats_global(&after);
    test_check(&t, "released_when_quiesced", after.quarantined_bytes == before.quarantined_bytes,
               "quarantined %lu after stopping the device", after.quarantined_bytes);
}

/* ---- looks at every span, without pause -------------------------------- */

#define FLOOD_THREADS 3

static volatile bool flood_stop;
static volatile uint64_t flood_ok, flood_refused, flood_refused_no_wait, flood_other;

static void flood_thread(uint64_t index)
{
    while (!flood_stop) {
        /* Raw calls: libsys's would wait as told. */
        struct ipc_msg m = { .label = index % 2 ? MS_CHECK : MS_STATS };
        if (m.label == MS_STATS)
            ms_stats_req_put(&m, (struct ms_stats_req){ .kind = MS_STATS_REGION, .which = 0 });
        int64_t r = sys_ipc_call(ms_endpoint(), &m, TIMEOUT_FOREVER);
        int64_t answer = r == 0 ? (int64_t)m.label : r;
        if (answer == 0)
            __atomic_fetch_add(&flood_ok, 1, __ATOMIC_RELAXED);
        else if (answer == -EAGAIN && ms_again_reply_get(&m).wait_ns != 0)
            __atomic_fetch_add(&flood_refused, 1, __ATOMIC_RELAXED);
        else if (answer == -EAGAIN)
            __atomic_fetch_add(&flood_refused_no_wait, 1, __ATOMIC_RELAXED);
        else
            __atomic_fetch_add(&flood_other, 1, __ATOMIC_RELAXED);
    }
    sys_thread_exit();
}

#define FLOOD_SEGMENTS 1024u

static struct ms_segment flood_segs[FLOOD_SEGMENTS];

static void check_flood(void)
{
    int64_t th[FLOOD_THREADS];
    unsigned started = 0, held = 0;
    /* Many small segments first, to its limit: the longer a check, the
     * more of the server's time the attacker could take. */
    while (held < FLOOD_SEGMENTS && ms_alloc_batch(MS_BATCH_MAX, 4 * KIB, 0, MS_ALLOC_NOWAIT, &flood_segs[held]) == 0)
        held += MS_BATCH_MAX;
    for (unsigned i = 0; i < FLOOD_THREADS; i++)
        if ((th[i] = sys_thread_create(flood_thread, stacks[i] + sizeof(stacks[i]), i)) >= 0)
            started++;
    /* Let them run a while before the bystander comes. */
    sys_sleep(50 * NS_PER_MS);
    hold("threads asking for checks", started);
    flood_stop = true;
    for (unsigned i = 0; i < FLOOD_THREADS; i++)
        if (th[i] >= 0)
            sys_thread_wait((handle_t)th[i], TIMEOUT_FOREVER);
    printf("hostile: check flood: %u segments held, %lu answered, %lu refused with a wait\n", held, (uint64_t)flood_ok,
           (uint64_t)flood_refused);
    test_check(&t, "check_flood_turned_away",
               started == FLOOD_THREADS && held > 0 && flood_ok > 0 && flood_refused > flood_ok &&
                   flood_refused_no_wait == 0 && flood_other == 0,
               "%u threads, %u segments held: %lu answered, %lu refused with a wait, %lu without, %lu other answers",
               started, held, (uint64_t)flood_ok, (uint64_t)flood_refused, (uint64_t)flood_refused_no_wait,
               (uint64_t)flood_other);
    for (unsigned i = 0; i < held; i++)
        ms_free(flood_segs[i].handle);
}

/* ---- the bystander ----------------------------------------------------- */

static void bystander(void)
{
    /* Ordinary work: allocate, write, check, free, and a message to self. */
    uint64_t start = sys_clock();
    unsigned ok = 0;
    for (unsigned i = 0; i < 64; i++) {
        struct ms_segment s;
        uint64_t size = (i % 4 + 1) * 16 * KIB;
        if (ms_alloc(size, 0, 0, 0, &s) != 0)
            continue;
        memset(s.addr, (int)i, size);
        ok += ((uint8_t *)s.addr)[size - 1] == (uint8_t)i && ms_free(s.handle) == 0;
    }
    /* The server's books hold up under the attack, and a check gets its
     * turn however many the attacker asks for. */
    char why[96] = "";
    int64_t checked = ms_check(why, sizeof(why));
    /* A figure, not a check: how long the others' requests took meanwhile. */
    printf("hostile: bystander: 64 allocations and a check in %lu us\n", (sys_clock() - start) / 1000);
    int64_t ep = sys_ep_create();
    struct ipc_msg m = { .label = 1 };
    int64_t sent = sys_ipc_send((handle_t)ep, &m, TIMEOUT_POLL);
    test_check(&t, "served_during_attack", ok == 64 && checked == 0 && ep >= 0 && sent == -ETIMEDOUT,
               "%u of 64 allocations served, check %ld (%s), endpoint %ld", ok, checked, why, ep);
}

int main(int argc, char **argv)
{
    /* The mode is the first bare word (seed=N and the like may come first);
     * "warmup" marks the suite's unmeasured first run. */
    const char *mode = "";
    bool warmup = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "warmup") == 0)
            warmup = true;
        else if (!*mode && !strchr(argv[i], '='))
            mode = argv[i];
    }
    if (strncmp(mode, "kid-", 4) == 0) {
        if (strcmp(mode, "kid-alloc-send") == 0)
            child_alloc_send();
        else if (strcmp(mode, "kid-pin") == 0)
            child_pin(false);
        else if (strcmp(mode, "kid-pin-close") == 0)
            child_pin(true);
        else if (strcmp(mode, "kid-write-ro") == 0)
            child_write_ro();
        else if (strcmp(mode, "kid-touch-bar") == 0)
            child_touch_bar();
        else if (strcmp(mode, "kid-compat") == 0)
            child_compat();
        sys_exit(100);
    }
    test_begin(&t, warmup ? "hostile.warmup" : "hostile", argc, argv);
    static const struct {
        const char *name;
        void (*run)(void);
    } modes[] = {
        { "reply-recv-buffer", reply_recv_buffer },
        { "recv-into-sent", recv_into_sent },
        { "send-then-free", send_then_free },
        { "steal-receive", steal_receive },
        { "no-powers", no_powers },
        { "spawn-flood", spawn_flood },
        { "thread-flood", thread_flood },
        { "endpoint-flood", endpoint_flood },
        { "memory-flood", memory_flood },
        { "zero-loop", zero_loop },
        { "child-escape", child_escape },
        { "pin-exit-loop", pin_exit_loop },
        { "readonly-transfer", readonly_transfer },
        { "wait-races", wait_races },
        { "unstarted-children", unstarted_children },
        { "migrating-buffer", migrating_buffer },
        { "cpu-modes", cpu_modes },
        { "device-attacks", device_attacks },
        { "stale-dma", stale_dma },
        { "check-flood", check_flood },
        { "huge-remap", huge_remap },
        { "bystander", bystander },
    };
    bool found = false;
    for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(mode, modes[i].name) == 0) {
            modes[i].run();
            found = true;
        }
    }
    test_check(&t, "mode_known", found, "unknown mode '%s'", mode);
    /* The suite waits for this: whatever the mode, it is over. */
    struct ipc_msg done = { .label = L_DONE };
    sys_ipc_send(startup_handle(ABI_STARTUP_PARENT), &done, TIMEOUT_FOREVER);
    test_exit(&t);
}
