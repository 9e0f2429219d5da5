/*
 * In-guest test program: the kernel on several CPUs. The suite starts it
 * twice on one fresh endpoint (startup handle SERVICE): "server" echoes
 * segments back, "transfer-receiver" receives the transfer of
 * "transfer-writer"; "client" runs the checks:
 *   - writers_survive_migration: a writer thread pinned to every CPU but
 *     the first keeps writing its own part of a segment while the segment
 *     is moved 1000 times (MS_MOVE: the memory server migrates it; fewer,
 *     but at least 100, when a slow machine's budget runs out) and sent to
 *     the server and back every 100 moves; afterwards every
 *     writer's last value of every word is in the segment: no write lost
 *     (a write that landed in the old frames after the copy would be);
 *   - pin_races_migration: a thread on another CPU pins and unpins the
 *     segment while the first keeps moving it; while pinned, its physical
 *     address never changes;
 *   - ipc_across_cpus, ipc_same_cpu: calls between threads pinned to two
 *     CPUs, and to one, come back right;
 *   - busy_threads_spread: busy threads with no affinity end up on more
 *     than one CPU;
 *   - affinity_refusals: pinning to a CPU that is not online is refused;
 *   - stack_reuse_across_cpus: threads made one after another on the first
 *     CPU, each ending on the next CPU in turn, so that kernel stacks are
 *     freed on every CPU and their slots reused by the first.
 * "transfer-writer" (the suite expects it to die of a page fault): a
 * thread on another CPU writes a counter into a segment without pause
 * while the first sends the segment to the server; the writer faults at
 * its first write after the send returned, and the server checks that the
 * segment it received never changes after it arrived (guarantee 6).
 * With one CPU the checks still run; the threads then share it.
 */
#include <abi/proc.h>
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

#define WORKERS_MAX      8
#define STACK_SIZE       16384
#define SEG_BYTES        (256 * 1024) /* four of the kernel's copy chunks */
#define WORDS_PER_WRITER 512          /* a 4 KiB part each */
#define MOVES            1000
#define WRITER_BURST     4096 /* writes between yields when writer and mover share one CPU */
#define TRANSFER_EVERY   100
/* The moving loops stop early past this many of the suite's pace units (a
 * quarter of the time it gives a program before it calls it hung) once
 * they have done a round trip: where the vCPUs do not run side by side,
 * the spinning writers eat most of the guest's time (under QEMU's -icount
 * on 3 CPUs, which iso/run now refuses, 1,000 moves took up to 92 s). */
#define MOVE_BUDGET_UNITS 20000

enum label { L_ECHO = 1, L_KEEP, L_QUIT };

static struct test_run t;
static unsigned ncpus;
static handle_t ep;
static uint8_t stacks[WORKERS_MAX][STACK_SIZE] __attribute__((aligned(16)));

static unsigned online_cpus(void)
{
    struct abi_kinfo k = { 0 };
    sys_kinfo(&k);
    return k.ncpus_online ? (unsigned)k.ncpus_online : 1;
}

/* The CPU a worker pins itself to: every one but the first, round robin. */
static uint64_t worker_cpu(unsigned i) { return ncpus > 1 ? 1 + i % (ncpus - 1) : 0; }

static int64_t start_worker(unsigned i, void (*fn)(uint64_t))
{
    return sys_thread_create(fn, stacks[i] + STACK_SIZE, i);
}

static void join(int64_t th)
{
    if (th < 0)
        return;
    sys_thread_wait((handle_t)th, TIMEOUT_FOREVER);
    sys_handle_close((handle_t)th);
}

/* ---- writers while the segment migrates --------------------------------- */

static volatile uint64_t *volatile base; /* the segment, where it is mapped now */
static volatile bool stop, pause_writers;
static volatile unsigned paused;
static struct writer {
    uint64_t last[WORDS_PER_WRITER]; /* the last value written to each word */
    uint64_t writes;
    int64_t cpu;
} writers[WORKERS_MAX];

static void writer(uint64_t i)
{
    struct writer *w = &writers[i];
    w->cpu = sys_thread_affinity(HANDLE_NONE, worker_cpu((unsigned)i));
    uint64_t n = 0;
    while (!stop) {
        if (pause_writers) {
            __atomic_add_fetch(&paused, 1, __ATOMIC_SEQ_CST);
            while (pause_writers && !stop)
                __asm__ volatile("pause");
            __atomic_sub_fetch(&paused, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        n++;
        unsigned word = (unsigned)(n % WORDS_PER_WRITER);
        base[i * WORDS_PER_WRITER + word] = n;
        w->last[word] = n;
        w->writes = n;
        /* One CPU: hand it back after a burst, so that the test's length is
         * its work and not one 10 ms quantum per move. */
        if (ncpus == 1 && n % WRITER_BURST == 0)
            sys_yield();
    }
    sys_thread_exit();
}

/* Sends the segment to the server, which sends it straight back; the
 * writers wait meanwhile (the segment is not theirs while away). */
static bool round_trip(struct ms_segment *seg, unsigned nwriters)
{
    pause_writers = true;
    while (paused < nwriters)
        sys_yield();
    struct ipc_msg m = { .label = L_ECHO, .seg = seg->handle };
    int64_t r = sys_ipc_call(ep, &m, TIMEOUT_FOREVER);
    bool ok = r == 0 && m.label == 0 && m.seg != HANDLE_NONE && m.seg_size == seg->size;
    if (ok) {
        seg->handle = m.seg;
        seg->addr = (void *)m.seg_addr;
        struct abi_seg_info info;
        if (sys_seg_info(seg->handle, &info) == 0)
            seg->sid = info.sid;
        base = seg->addr;
    }
    pause_writers = false;
    return ok;
}

static void check_writers_survive_migration(void)
{
    struct ms_segment seg;
    int64_t r = ms_alloc(SEG_BYTES, 0, 0, 0, &seg);
    if (!test_check(&t, "migration_segment", r == 0, "ms_alloc: %s", sys_strerror(r)))
        return;
    memset(seg.addr, 0, SEG_BYTES);
    base = seg.addr;
    unsigned nwriters = ncpus > 1 ? ncpus - 1 : 1;
    if (nwriters > WORKERS_MAX)
        nwriters = WORKERS_MAX;
    memset(writers, 0, sizeof(writers));
    stop = false;
    int64_t th[WORKERS_MAX];
    for (unsigned i = 0; i < nwriters; i++)
        th[i] = start_worker(i, writer);
    unsigned moved = 0, refused = 0, trips = 0, trips_failed = 0, tries = 0;
    uint64_t start = sys_clock(), deadline = start + test_budget_ns(&t, MOVE_BUDGET_UNITS);
    for (unsigned i = 0; i < MOVES && (i < TRANSFER_EVERY || sys_clock() < deadline); i++) {
        tries++;
        r = ms_move(seg.sid);
        if (r == 0)
            moved++;
        else
            refused++;
        if ((i + 1) % TRANSFER_EVERY == 0) {
            trips++;
            trips_failed += !round_trip(&seg, nwriters);
        }
        if (ncpus == 1)
            sys_yield(); /* one CPU: let the writer write between moves */
    }
    stop = true;
    for (unsigned i = 0; i < nwriters; i++)
        join(th[i]);
    unsigned lost = 0, silent = 0, placed = 0;
    for (unsigned i = 0; i < nwriters; i++) {
        silent += writers[i].writes == 0;
        placed += ncpus == 1 || writers[i].cpu == (int64_t)worker_cpu(i);
        for (unsigned w = 0; w < WORDS_PER_WRITER; w++)
            lost += base[i * WORDS_PER_WRITER + w] != writers[i].last[w];
    }
    uint64_t writes = 0;
    for (unsigned i = 0; i < nwriters; i++)
        writes += writers[i].writes;
    printf("smp: %u writers on %u CPUs wrote %lu times while the segment moved %u times (%u refused) and made "
           "%u round trips in %lu ms\n",
           nwriters, ncpus, writes, moved, refused, trips, (sys_clock() - start) / NS_PER_MS);
    test_check(&t, "writers_pinned", placed == nwriters, "%u of %u writers on their CPU", placed, nwriters);
    test_check(&t, "writers_survive_migration", lost == 0 && silent == 0 && moved > tries / 2 && trips_failed == 0,
               "%u words lost, %u writers never wrote, %u of %u moves done, %u of %u round trips failed", lost, silent,
               moved, tries, trips_failed, trips);
    ms_free(seg.handle);
}

/* ---- pinning against migration ------------------------------------------ */

static volatile unsigned pin_changed, pins_done;
static struct ms_segment pin_seg;

static void pinner(uint64_t unused)
{
    (void)unused;
    handle_t dev = test_dma_device();
    sys_thread_affinity(HANDLE_NONE, worker_cpu(0));
    while (!stop) {
        int64_t phys = sys_seg_pin(pin_seg.handle, dev);
        if (phys < 0)
            continue; /* busy: a migration under way */
        for (unsigned k = 0; k < 50; k++) {
            /* One CPU: every other pin lets the mover try while it holds. */
            if (ncpus == 1 && k == 25 && pins_done % 2)
                sys_yield();
            struct abi_seg_info info;
            if (sys_seg_info(pin_seg.handle, &info) != 0 || info.phys != (uint64_t)phys)
                pin_changed++;
        }
        sys_seg_unpin(pin_seg.handle);
        /* No IOMMU: the frames stay within the device's reach until it is
         * stopped; stopping it lets the segment move again. */
        sys_dev_dma(dev, false);
        pins_done++;
        if (ncpus == 1)
            sys_yield(); /* as the writers do */
    }
    sys_thread_exit();
}

static void check_pin_races_migration(void)
{
    if (test_dma_device() == HANDLE_NONE) {
        test_skip(&t, "pin_races_migration", "no device to pin for");
        return;
    }
    int64_t r = ms_alloc(64 * 1024, 0, 0, 0, &pin_seg);
    if (!test_check(&t, "pin_segment", r == 0, "ms_alloc: %s", sys_strerror(r)))
        return;
    stop = false;
    pin_changed = pins_done = 0;
    int64_t th = start_worker(0, pinner);
    unsigned moved = 0, busy = 0, other = 0;
    uint64_t start = sys_clock(), deadline = start + test_budget_ns(&t, MOVE_BUDGET_UNITS);
    for (unsigned i = 0; (i < MOVES / 2 && sys_clock() < deadline) || (pins_done < 10 && i <= 20 * MOVES); i++) {
        r = ms_move(pin_seg.sid);
        moved += r == 0;
        busy += r == -EBUSY;
        other += r != 0 && r != -EBUSY;
        if (ncpus == 1 || i % 16 == 0)
            sys_yield();
    }
    stop = true;
    join(th);
    printf("smp: %u pins while %u moves went through and %u found it pinned, in %lu ms\n", pins_done, moved, busy,
           (sys_clock() - start) / NS_PER_MS);
    test_check(&t, "pin_races_migration", pin_changed == 0 && pins_done >= 10 && other == 0,
               "%u times a pinned segment's address changed; %u pins; %u moves failed otherwise", pin_changed,
               pins_done, other);
    ms_free(pin_seg.handle);
}

/* ---- IPC between CPUs ---------------------------------------------------- */

static handle_t pong_ep;
static volatile int64_t pong_result;

static void ponger(uint64_t cpu)
{
    sys_thread_affinity(HANDLE_NONE, cpu);
    struct ipc_msg m = { 0 };
    int64_t r = sys_ipc_recv(pong_ep, &m, TIMEOUT_FOREVER);
    while (r == 0 && m.label != L_QUIT) {
        m.w[0] = m.w[0] * 3 + 1;
        m.w[1] = (uint64_t)sys_thread_affinity(HANDLE_NONE, ABI_CPU_SAME);
        r = sys_ipc_reply_recv(pong_ep, &m, TIMEOUT_FOREVER);
    }
    if (r == 0)
        sys_ipc_reply(&m);
    pong_result = r;
    sys_thread_exit();
}

static void ping_pong(const char *name, uint64_t my_cpu, uint64_t their_cpu)
{
    int64_t e = sys_ep_create();
    if (e < 0) {
        test_check(&t, name, false, "ep_create: %s", sys_strerror(e));
        return;
    }
    pong_ep = (handle_t)e;
    sys_thread_affinity(HANDLE_NONE, my_cpu);
    int64_t th = sys_thread_create(ponger, stacks[0] + STACK_SIZE, their_cpu);
    unsigned wrong = 0, elsewhere = 0;
    uint64_t start = sys_clock();
    for (uint64_t i = 0; i < 2000; i++) {
        struct ipc_msg m = { .label = L_ECHO, .w = { i } };
        if (sys_ipc_call(pong_ep, &m, TIMEOUT_FOREVER) != 0 || m.w[0] != i * 3 + 1)
            wrong++;
        elsewhere += m.w[1] != their_cpu;
    }
    struct ipc_msg quit = { .label = L_QUIT };
    sys_ipc_call(pong_ep, &quit, TIMEOUT_FOREVER);
    join(th);
    sys_thread_affinity(HANDLE_NONE, ABI_CPU_ANY);
    sys_handle_close(pong_ep);
    printf("smp: %s: 2000 calls in %lu ms\n", name, (sys_clock() - start) / NS_PER_MS);
    test_check(&t, name, wrong == 0 && elsewhere == 0 && pong_result == 0,
               "%u of 2000 calls came back wrong, %u served off CPU %lu", wrong, elsewhere, their_cpu);
}

/* ---- busy threads spread -------------------------------------------------- */

static volatile uint64_t seen_cpus;
static volatile bool spin_stop;

static void spinner(uint64_t unused)
{
    (void)unused;
    while (!spin_stop) {
        int64_t cpu = sys_thread_affinity(HANDLE_NONE, ABI_CPU_SAME);
        if (cpu >= 0 && cpu < 64)
            __atomic_or_fetch(&seen_cpus, 1ull << cpu, __ATOMIC_RELAXED);
        for (volatile unsigned k = 0; k < 20000; k++)
            ;
    }
    sys_thread_exit();
}

static unsigned popcount(uint64_t m)
{
    unsigned n = 0;
    for (; m; m &= m - 1)
        n++;
    return n;
}

static void check_spread(void)
{
    unsigned nthreads = ncpus < 4 ? 4 : ncpus;
    if (nthreads > WORKERS_MAX)
        nthreads = WORKERS_MAX;
    seen_cpus = 0;
    spin_stop = false;
    int64_t th[WORKERS_MAX];
    for (unsigned i = 0; i < nthreads; i++)
        th[i] = start_worker(i, spinner);
    /* Waits for the spread, not for a time: a hang is the suite's to catch. */
    unsigned want = ncpus < 2 ? 1 : 2;
    uint64_t deadline = sys_clock() + test_budget_ns(&t, 2000);
    while (popcount(seen_cpus) < (ncpus < nthreads ? ncpus : nthreads) && sys_clock() < deadline)
        sys_sleep(NS_PER_MS);
    spin_stop = true;
    for (unsigned i = 0; i < nthreads; i++)
        join(th[i]);
    printf("smp: %u busy threads ran on CPUs %#lx of %u\n", nthreads, seen_cpus, ncpus);
    test_check(&t, "busy_threads_spread", popcount(seen_cpus) >= want, "%u busy threads used CPUs %#lx of %u", nthreads,
               seen_cpus, ncpus);
}

static void check_affinity_refusals(void)
{
    int64_t offline = sys_thread_affinity(HANDLE_NONE, 63);
    int64_t huge = sys_thread_affinity(HANDLE_NONE, 1000);
    int64_t here = sys_thread_affinity(HANDLE_NONE, ABI_CPU_SAME);
    int64_t bad = sys_thread_affinity((handle_t)0x7fff0001, ABI_CPU_SAME);
    test_check(&t, "affinity_refusals",
               offline == -EINVAL && huge == -EINVAL && here >= 0 && here < (int64_t)ncpus && bad == -EBADH,
               "CPU 63 %ld, CPU 1000 %ld, query %ld, bad handle %ld", offline, huge, here, bad);
}

/* ---- kernel stacks freed on one CPU, reused from another ---------------- */

#define REUSE_THREADS 512 /* eight times the kernel's batch of stale stack slots */

static volatile unsigned reuse_ran;

static void reuse_thread(uint64_t cpu)
{
    if (sys_thread_affinity(HANDLE_NONE, cpu) >= 0)
        reuse_ran++; /* the threads run one at a time */
    sys_thread_exit();
}

/* A thread's kernel stack is freed on the CPU it died on, and its slot is
 * given to a new stack once every CPU has been flushed of the old
 * translation. Here the first CPU makes every stack and the threads die
 * on each CPU in turn: a CPU that kept a freed slot's translation would
 * write a new thread's first frame into a frame the kernel has reused,
 * and the thread would start on garbage. The kernel panics or corrupts
 * itself; the count says whether every thread ran. */
static void check_stack_reuse(void)
{
    unsigned made = 0;
    reuse_ran = 0;
    sys_thread_affinity(HANDLE_NONE, 0);
    for (unsigned i = 0; i < REUSE_THREADS; i++) {
        int64_t th = sys_thread_create(reuse_thread, stacks[0] + STACK_SIZE, i % ncpus);
        if (th < 0)
            break;
        made++;
        join(th);
    }
    sys_thread_affinity(HANDLE_NONE, ABI_CPU_ANY);
    test_check(&t, "stack_reuse_across_cpus", made == REUSE_THREADS && reuse_ran == made,
               "%u of %u threads made, %u ran on their CPU", made, REUSE_THREADS, reuse_ran);
}

/* ---- the server ----------------------------------------------------------- */

/* "server" echoes until L_QUIT; "transfer-receiver" ends after the one
 * transfer it checks. */
static int server(bool receiver)
{
    test_begin(&t, receiver ? "smp_receiver" : "smp_server", 0, 0);
    struct ipc_msg m = { .flags = 0 };
    int64_t r = sys_ipc_recv(ep, &m, TIMEOUT_FOREVER);
    while (r == 0 && m.label != L_QUIT) {
        struct ipc_msg reply = { .label = 0, .seg = HANDLE_NONE };
        if (m.label == L_ECHO && m.badge != BADGE_KERNEL) {
            reply.seg = m.seg; /* straight back */
        } else if (m.label == L_KEEP && m.seg != HANDLE_NONE) {
            /* The transfer of "transfer-writer": whatever the writer on the
             * other CPU wrote is in; nothing may change from now on. */
            volatile uint64_t *p = (volatile uint64_t *)m.seg_addr;
            uint64_t first = p[0];
            uint64_t end = sys_clock() + 50 * NS_PER_MS;
            unsigned changed = 0;
            while (sys_clock() < end)
                changed += p[0] != first;
            test_check(&t, "no_write_after_transfer", first != 0 && changed == 0,
                       "the counter read %lu on arrival and changed %u times after", first, changed);
            ms_free(m.seg);
            if (receiver) {
                sys_ipc_reply(&reply);
                test_exit(&t);
            }
        } else if (m.seg != HANDLE_NONE) {
            reply.seg = m.seg;
        }
        m = reply;
        r = sys_ipc_reply_recv(ep, &m, TIMEOUT_FOREVER);
    }
    if (r == 0)
        sys_ipc_reply(&(struct ipc_msg){ .seg = HANDLE_NONE });
    test_check(&t, "served", r == 0, "receive failed: %s", sys_strerror(r));
    test_exit(&t);
}

/* ---- the transfer writer: dies of a page fault, as it must ---------------- */

static volatile uint64_t *volatile counter;
static volatile bool writing;

static void scribbler(uint64_t unused)
{
    (void)unused;
    sys_thread_affinity(HANDLE_NONE, worker_cpu(0));
    uint64_t n = 0;
    writing = true;
    for (;;)
        *counter = ++n; /* faults at the first write after the send returned */
}

static int transfer_writer(void)
{
    struct ms_segment seg;
    if (ms_alloc(4096, 0, 0, 0, &seg) != 0)
        return 2;
    counter = seg.addr;
    *counter = 0;
    if (start_worker(0, scribbler) < 0)
        return 3;
    while (!writing || *counter < 1000)
        sys_yield();
    struct ipc_msg m = { .label = L_KEEP, .seg = seg.handle };
    sys_ipc_call(ep, &m, TIMEOUT_FOREVER);
    /* The scribbler has faulted by now and the process is being killed;
     * if not, it wrote to a segment that is no longer ours: say so. */
    for (;;)
        sys_sleep(TIMEOUT_FOREVER);
}

int main(int argc, char **argv)
{
    ep = startup_handle(ABI_STARTUP_SERVICE);
    ncpus = online_cpus();
    const char *mode = "";
    for (int i = 1; i < argc; i++)
        if (!strchr(argv[i], '='))
            mode = argv[i];
    if (strcmp(mode, "server") == 0 || strcmp(mode, "transfer-receiver") == 0)
        return server(strcmp(mode, "transfer-receiver") == 0);
    if (strcmp(mode, "transfer-writer") == 0)
        return transfer_writer();

    test_begin(&t, "smp", argc, argv);
    printf("smp: %u CPUs online\n", ncpus);
    check_affinity_refusals();
    ping_pong("ipc_across_cpus", 0, ncpus > 1 ? 1 : 0);
    ping_pong("ipc_same_cpu", 0, 0);
    check_spread();
    check_writers_survive_migration();
    check_pin_races_migration();
    check_stack_reuse();
    struct ipc_msg quit = { .label = L_QUIT };
    sys_ipc_call(ep, &quit, TIMEOUT_FOREVER);
    test_exit(&t);
}
