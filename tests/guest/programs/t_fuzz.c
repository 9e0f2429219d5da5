/*
 * In-guest test program: seeded fuzzers of the system call boundary.
 *
 * Without arguments it makes 10,000 calls, each with at least one argument
 * that must be refused (a handle nobody holds, a pointer into the kernel,
 * unmapped or wrapping memory, a size or flag out of range, a malformed
 * message), and checks that every one gets an error. The kernel must not
 * panic, and a message round trip must still work afterwards.
 *
 * With "stateful" it runs rounds of random sequences of valid and invalid
 * calls on live handles from several threads at once: allocations, frees,
 * pins, remaps with fewer rights, sends with segments (message buffers
 * inside segments other threads free or send away), receives, grants,
 * closes, thread starts, all racing. Nothing is checked call by call (a
 * race decides who wins); after each round the memory server's books
 * (MS_CHECK) and the kernel's invariants (SYS_KCHECK) must hold, and a
 * message round trip must work. Several of these run at once in separate
 * processes (the suite starts them), exchanging segments on a shared
 * endpoint: one receives on it (its RECV comes in startup slot SERVICE),
 * the others send to it (slot PARENT). It runs `rounds=` rounds (8), or as
 * many as fit in STATEFUL_BUDGET_UNITS of the suite's pace and at least
 * STATEFUL_MIN_ROUNDS: 12 racing threads and the server's 4 on 8 virtual
 * CPUs that share 2 host cores with another guest made 8 rounds outlast
 * the suite's wait for a program (151 s), with every round still making
 * progress.
 */
#include <abi/ipc.h>
#include <abi/syscall.h>
#include <common/cmdline.h>
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

#define CALLS 10000

static uint8_t server_stack[16384] __attribute__((aligned(16)));
static handle_t ep;
static const uint64_t read_only_word = 1;

/* An echo server on our own endpoint, for the malformed-message cases and
 * the final round trip. */
static void echo_server(uint64_t unused)
{
    (void)unused;
    struct ipc_msg m = { 0 };
    int64_t r = sys_ipc_recv(ep, &m, TIMEOUT_FOREVER);
    for (;;) {
        (void)r; /* every message, good or not, gets an answer with what it carried */
        m.label = 0;
        r = sys_ipc_reply_recv(ep, &m, TIMEOUT_FOREVER);
    }
}

/* A pointer the kernel must refuse; `for_write`: also memory it may read
 * but not write. */
static uint64_t bad_pointer(struct test_run *t, bool for_write)
{
    static const uint64_t pointers[] = {
        0,
        8,
        0xffffffff80000000ull,
        0xffff800000000000ull,
        0x0000100000000000ull,
        0xfffffffffffff000ull,
        0x00007ffffffff000ull,
        0x0000800000000000ull,
        ABI_STACK_TOP - 8, /* the stack's last bytes: straddles for lengths over 8 */
    };
    uint64_t r = test_rand(t);
    if (for_write && r % 5 == 0)
        return (uint64_t)&read_only_word; /* mapped, but not writable */
    return pointers[r % (sizeof(pointers) / sizeof(pointers[0]))];
}

/* A handle nobody holds: random, or a slot with an unreached generation. */
static uint64_t bad_handle(struct test_run *t)
{
    uint64_t r = test_rand(t);
    switch (r % 4) {
    case 0: return 0;
    case 1: return (0x7fffull << 32) | (r % 64 + 1);
    case 2: return r | (1ull << 62);
    default: return 0xffffffff00000000ull | (r & 0xffff);
    }
}

struct outcome {
    unsigned calls, accepted;
    uint64_t first_number;
    int64_t first_result;
};

static void expect_error(struct outcome *o, uint64_t number, int64_t r)
{
    o->calls++;
    if (r >= 0 && o->accepted++ == 0) {
        o->first_number = number;
        o->first_result = r;
    }
}

static void fuzz_once(struct test_run *t, struct outcome *o)
{
    uint64_t r = test_rand(t), any = test_rand(t);
    static struct ipc_msg scratch;
    switch (r % 16) {
    case 0:
        expect_error(o, SYS_CONSOLE_WRITE, syscall2(SYS_CONSOLE_WRITE, bad_pointer(t, false) | 1, any % 4000 + 16));
        break;
    case 1: expect_error(o, SYS_KINFO, syscall1(SYS_KINFO, bad_pointer(t, true))); break;
    case 2: expect_error(o, SYS_HANDLE_CLOSE, syscall1(SYS_HANDLE_CLOSE, bad_handle(t))); break;
    case 3: expect_error(o, SYS_THREAD_WAIT, syscall2(SYS_THREAD_WAIT, bad_handle(t), any)); break;
    case 4:
        expect_error(o, SYS_PROC_WAIT, syscall3(SYS_PROC_WAIT, bad_handle(t), any, bad_pointer(t, true) | 8));
        break;
    case 5: expect_error(o, SYS_IPC_SEND, syscall3(SYS_IPC_SEND, bad_handle(t), (uint64_t)&scratch, 0)); break;
    case 6: expect_error(o, SYS_IPC_CALL, syscall3(SYS_IPC_CALL, ep, bad_pointer(t, true), any)); break;
    case 7: {
        /* Malformed message to a live server: too long, kernel label, bad segment. */
        struct ipc_msg m = { .label = 1 };
        switch (any % 3) {
        case 0: m.len = IPC_PAYLOAD_MAX + 1 + (uint32_t)(any % 1000); break;
        case 1: m.label = IPC_LABEL_KERNEL_BASE + any % 100; break;
        default: m.seg = bad_handle(t) | 1; break;
        }
        expect_error(o, SYS_IPC_CALL, sys_ipc_call(ep, &m, TIMEOUT_FOREVER));
        break;
    }
    case 8: expect_error(o, SYS_IPC_RECV, syscall3(SYS_IPC_RECV, ep, bad_pointer(t, true), 0)); break;
    case 9: expect_error(o, SYS_SEG_INFO, syscall2(SYS_SEG_INFO, bad_handle(t), bad_pointer(t, true))); break;
    case 10: expect_error(o, SYS_SEG_PIN, syscall1(any & 1 ? SYS_SEG_PIN : SYS_SEG_UNPIN, bad_handle(t))); break;
    case 11: expect_error(o, SYS_SEG_GIVE, syscall5(SYS_SEG_GIVE, bad_handle(t), HANDLE_SELF, any, any, 0)); break;
    case 12: expect_error(o, SYS_HANDLE_GRANT, syscall2(SYS_HANDLE_GRANT, bad_handle(t) | 1, ep)); break;
    case 13:
        expect_error(o, SYS_PROC_CREATE, syscall2(SYS_PROC_CREATE, bad_pointer(t, false) | 1, any % 15 + 16));
        break;
    case 14: {
        /* Calls this process has no right to, and numbers that do not exist. */
        const uint64_t refused[] = { SYS_MS_BOOTINFO,
                                     SYS_MS_SEG_CREATE,
                                     SYS_MS_SEG_MIGRATE,
                                     SYS_MS_SEG_DESTROY,
                                     SYS_MS_RECLAIMED,
                                     SYS_DEV_OPEN,
                                     SYS_MODULE_INFO,
                                     SYS_DEV_MAP_BAR,
                                     SYS_SHUTDOWN,
                                     SYS_COUNT,
                                     SYS_COUNT + 1 + any % 100000,
                                     ~0ull };
        uint64_t n = refused[any % (sizeof(refused) / sizeof(refused[0]))];
        expect_error(o, n, syscall5(n, any, test_rand(t), test_rand(t), test_rand(t), test_rand(t)));
        break;
    }
    default:
        expect_error(o, SYS_DEV_CONFIG_READ, syscall3(SYS_DEV_CONFIG_READ, bad_handle(t), any % 256, any % 8));
        break;
    }
}

/* ---- stateful ----------------------------------------------------------- */

#define WORKERS               4
#define LIVE                  48
#define OPS_PER_ROUND         400
#define STATEFUL_MIN_ROUNDS   2
#define STATEFUL_BUDGET_UNITS 20000 /* a quarter of the suite's wait for a program */

static handle_t live[LIVE]; /* handles any worker may use, close or replace: races on purpose */
static handle_t shared_in, shared_out, own_ep, device;
static uint64_t op_counts[WORKERS];
static uint8_t worker_stacks[WORKERS][16384] __attribute__((aligned(16)));
static uint8_t spare_stacks[4][4096] __attribute__((aligned(16)));
static volatile unsigned workers_done;
/* Calls that succeeded, by kind: a fuzzer whose calls all fail tests
 * nothing but the error paths. */
enum { OK_ALLOC, OK_FREE, OK_PIN, OK_SEND, OK_RECV_SEG, OK_GIVE, OK_GRANT, OK_KINDS };
static uint64_t ok_counts[OK_KINDS];
static void count_ok(unsigned kind, int64_t r)
{
    if (r >= 0)
        __atomic_add_fetch(&ok_counts[kind], 1, __ATOMIC_RELAXED);
}
static volatile uint64_t round_seed;

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545f4914f6cdd1dull;
}

static void short_thread(uint64_t unused)
{
    (void)unused;
    sys_yield();
    sys_thread_exit();
}

/* A message buffer: on the stack, or inside a live segment's mapping
 * (which another thread may free or send away meanwhile). */
static struct ipc_msg *some_buffer(uint64_t r, struct ipc_msg *own)
{
    if (r % 3 == 0) {
        struct abi_seg_info info;
        if (sys_seg_info(live[r % LIVE], &info) == 0 && info.vaddr && info.size >= sizeof(struct ipc_msg))
            return (struct ipc_msg *)info.vaddr;
    }
    return own;
}

static void stateful_op(uint64_t *x, unsigned worker)
{
    uint64_t r = rng_next(x), pick = rng_next(x);
    unsigned i = (unsigned)(pick % LIVE);
    handle_t h = live[i];
    struct ipc_msg local = { 0 };
    struct ms_segment seg;
    op_counts[worker]++;
    switch (r % 17) {
    case 0:
    case 1:
        if (ms_alloc((pick % 16 + 1) * 4096, 0, pick & 1 ? MS_ALLOC_NOWAIT : 0, 0, &seg) == 0) {
            count_ok(OK_ALLOC, 0);
            handle_t old = live[i];
            live[i] = seg.handle;
            if (old)
                ms_free(old); /* maybe not a segment, maybe gone: errors are fine */
        }
        break;
    case 2: count_ok(OK_FREE, ms_free(h)); break;
    case 3: count_ok(OK_PIN, sys_seg_pin(h, device)); break;
    case 4: sys_seg_unpin(h); break;
    case 5: {
        static const rights_t masks[] = { RIGHTS_SAME, RIGHT_READ, RIGHT_READ | RIGHT_WRITE, RIGHT_READ | RIGHT_PIN };
        count_ok(OK_GIVE, sys_seg_give(h, HANDLE_SELF, 0, masks[pick % 4]));
        break;
    }
    case 6:
    case 7: {
        struct ipc_msg *m = some_buffer(pick, &local);
        handle_t to = (pick & 1) ? own_ep : shared_out;
        /* Through a buffer inside a live segment, the kernel reads whatever
         * it holds (we never write there: another thread may free it). */
        struct ipc_msg out = { .label = 5,
                               .seg = (pick & 2) ? h : HANDLE_NONE,
                               .seg_rights = (uint16_t)(pick >> 8 & 0x78) };
        count_ok(OK_SEND, sys_ipc_send(to, m == &local ? &out : m, (pick & 4) ? TIMEOUT_POLL : 2000000));
        break;
    }
    case 8:
    case 9: {
        struct ipc_msg *m = some_buffer(pick, &local);
        handle_t from = (pick & 1) ? own_ep : shared_in;
        if (m == &local)
            local.flags = (pick & 2) ? IPC_RECV_NOMAP : 0;
        if (sys_ipc_recv(from, m, (pick & 4) ? TIMEOUT_POLL : 1000000) == 0 && m == &local && local.seg) {
            count_ok(OK_RECV_SEG, 0);
            handle_t old = live[i];
            live[i] = local.seg;
            if (old)
                ms_free(old);
        }
        break;
    }
    case 10: {
        int64_t g = sys_handle_grant(HANDLE_SELF, (pick & 1) ? own_ep : h, (rights_t)(pick >> 16) & RIGHTS_ALL);
        count_ok(OK_GRANT, g);
        if (g >= 0)
            sys_handle_close((handle_t)g);
        break;
    }
    case 11: sys_handle_close(h); break;
    case 12: {
        struct abi_seg_info info;
        sys_seg_info(h, &info);
        break;
    }
    case 13: {
        int64_t th = sys_thread_create(short_thread, spare_stacks[pick % 4] + sizeof(spare_stacks[0]), 0);
        if (th >= 0)
            sys_handle_close((handle_t)th);
        break;
    }
    case 14: ms_move(pick % 2 ? 0 : (uint64_t)pick); break;
    case 15: {
        /* The message buffer is the segment the message carries: a fresh
         * one nobody else knows yet, so writing the message is safe. */
        if (ms_alloc(4096, 0, 0, 0, &seg) != 0)
            break;
        struct ipc_msg *m = seg.addr;
        *m = (struct ipc_msg){ .label = 6, .seg = seg.handle };
        if (sys_ipc_send(own_ep, m, (pick & 4) ? TIMEOUT_POLL : 1000000) != 0)
            ms_free(seg.handle);
        break;
    }
    default: sys_yield(); break;
    }
}

static void worker(uint64_t index)
{
    uint64_t x = round_seed * 0x9e3779b97f4a7c15ull + index * 0x632be59bd9b4e019ull + 1;
    for (unsigned k = 0; k < OPS_PER_ROUND; k++)
        stateful_op(&x, (unsigned)index);
    __atomic_add_fetch(&workers_done, 1, __ATOMIC_SEQ_CST);
    sys_thread_exit();
}

static void stateful(struct test_run *t, unsigned rounds)
{
    int64_t e = sys_ep_create();
    own_ep = e >= 0 ? (handle_t)e : HANDLE_NONE;
    shared_in = startup_handle(ABI_STARTUP_SERVICE);
    shared_out = startup_handle(ABI_STARTUP_PARENT);
    device = test_dma_device();
    unsigned rounds_ok = 0, round;
    uint64_t ops = 0, deadline = sys_clock() + test_budget_ns(t, STATEFUL_BUDGET_UNITS);
    for (round = 0; round < rounds && (round < STATEFUL_MIN_ROUNDS || sys_clock() < deadline); round++) {
        round_seed = test_rand(t);
        workers_done = 0;
        int64_t th[WORKERS];
        for (unsigned w = 0; w < WORKERS; w++)
            th[w] = sys_thread_create(worker, worker_stacks[w] + sizeof(worker_stacks[w]), w);
        for (unsigned w = 0; w < WORKERS; w++)
            if (th[w] >= 0) {
                sys_thread_wait((handle_t)th[w], TIMEOUT_FOREVER);
                sys_handle_close((handle_t)th[w]);
            }
        char why[128] = "", kwhy[128] = "";
        int64_t books = ms_check(why, sizeof(why));
        int64_t kernel = sys_kcheck(kwhy, sizeof(kwhy));
        struct ipc_msg ping = { .label = 7, .w = { 41 } };
        int64_t sent = sys_ipc_send(own_ep, &ping, TIMEOUT_POLL);
        struct ipc_msg pong = { 0 };
        int64_t got = sys_ipc_recv(own_ep, &pong, TIMEOUT_POLL);
        /* A send may have been left waiting by a worker: drain what is there. */
        while (got == 0 && pong.label != 7) {
            if (pong.seg)
                ms_free(pong.seg);
            got = sys_ipc_recv(own_ep, &pong, TIMEOUT_POLL);
        }
        bool ok = books == 0 && kernel == 0 && sent == -ETIMEDOUT;
        if (!ok)
            test_check(t, "round", false, "round %u: memsrv check %ld (%s), kernel check %ld (%s), ping %ld", round,
                       books, why, kernel, kwhy, sent);
        rounds_ok += ok;
        for (unsigned w = 0; w < WORKERS; w++)
            ops += op_counts[w];
        memset(op_counts, 0, sizeof(op_counts));
    }
    for (unsigned i = 0; i < LIVE; i++) {
        sys_seg_unpin(live[i]);
        ms_free(live[i]);
    }
    printf("fuzz: stateful: %u of %u rounds%s, %lu calls from %u threads; succeeded: %lu allocs, %lu frees, %lu pins, "
           "%lu sends, %lu segments received, %lu remaps, %lu grants\n",
           round, rounds, round < rounds ? " (the pace's budget ran out)" : "", ops, WORKERS, ok_counts[OK_ALLOC],
           ok_counts[OK_FREE], ok_counts[OK_PIN], ok_counts[OK_SEND], ok_counts[OK_RECV_SEG], ok_counts[OK_GIVE],
           ok_counts[OK_GRANT]);
    test_check(t, "stateful_rounds_consistent", rounds_ok == round, "%u of %u rounds kept every invariant", rounds_ok,
               round);
}

int main(int argc, char **argv)
{
    struct test_run t;
    test_begin(&t, "fuzz", argc, argv);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "stateful") == 0) {
            uint64_t rounds = 8;
            for (int k = 1; k < argc; k++)
                if (strncmp(argv[k], "rounds=", 7) == 0)
                    parse_u64(argv[k] + 7, strlen(argv[k] + 7), &rounds);
            stateful(&t, (unsigned)rounds);
            test_exit(&t);
        }
    }
    int64_t e = sys_ep_create();
    if (!test_check(&t, "endpoint", e >= 0, "%s", sys_strerror(e)))
        test_exit(&t);
    ep = (handle_t)e;
    sys_thread_create(echo_server, server_stack + sizeof(server_stack), 0);

    struct outcome o = { 0 };
    for (int i = 0; i < CALLS; i++)
        fuzz_once(&t, &o);
    test_check(&t, "every_call_refused", o.accepted == 0 && o.calls == CALLS,
               "%u of %u malformed calls were accepted; first: number %lu returned %ld", o.accepted, o.calls,
               o.first_number, o.first_result);

    struct ipc_msg ping = { .label = 7, .w = { 41 } };
    int64_t r = sys_ipc_call(ep, &ping, TIMEOUT_FOREVER);
    test_check(&t, "ping_after_fuzzing", r == 0 && ping.w[0] == 41, "round trip gave %ld", r);
    test_exit(&t);
}
