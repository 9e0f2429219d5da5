/*
 * In-guest test program: a seeded fuzzer of the system call boundary. It
 * makes 10,000 calls, each with at least one argument that must be refused
 * (a handle nobody holds, a pointer into the kernel, unmapped or wrapping
 * memory, a size or flag out of range, a malformed message), and checks
 * that every one gets an error. The kernel must not panic, and a message
 * round trip must still work afterwards.
 */
#include <abi/ipc.h>
#include <abi/syscall.h>
#include <common/string.h>
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
    struct ipc_msg m = {0};
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
        0, 8, 0xffffffff80000000ull, 0xffff800000000000ull, 0x0000100000000000ull, 0xfffffffffffff000ull,
        0x00007ffffffff000ull, 0x0000800000000000ull,
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
    case 0: expect_error(o, SYS_CONSOLE_WRITE, syscall2(SYS_CONSOLE_WRITE, bad_pointer(t, false) | 1, any % 4000 + 16)); break;
    case 1: expect_error(o, SYS_KINFO, syscall1(SYS_KINFO, bad_pointer(t, true))); break;
    case 2: expect_error(o, SYS_HANDLE_CLOSE, syscall1(SYS_HANDLE_CLOSE, bad_handle(t))); break;
    case 3: expect_error(o, SYS_THREAD_WAIT, syscall2(SYS_THREAD_WAIT, bad_handle(t), any)); break;
    case 4: expect_error(o, SYS_PROC_WAIT, syscall3(SYS_PROC_WAIT, bad_handle(t), any, bad_pointer(t, true) | 8)); break;
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
    case 13: expect_error(o, SYS_PROC_CREATE, syscall2(SYS_PROC_CREATE, bad_pointer(t, false) | 1, any % 15 + 16)); break;
    case 14: {
        /* Calls this process has no right to, and numbers that do not exist. */
        const uint64_t refused[] = { SYS_MS_BOOTINFO, SYS_MS_SEG_CREATE, SYS_MS_SEG_MIGRATE, SYS_MS_SEG_DESTROY,
                                            SYS_MS_RECLAIMED, SYS_DEV_OPEN, SYS_MODULE_INFO, SYS_DEV_MAP_BAR,
                                            SYS_SHUTDOWN, SYS_COUNT, SYS_COUNT + 1 + any % 100000, ~0ull };
        uint64_t n = refused[any % (sizeof(refused) / sizeof(refused[0]))];
        expect_error(o, n, syscall5(n, any, test_rand(t), test_rand(t), test_rand(t), test_rand(t)));
        break;
    }
    default:
        expect_error(o, SYS_DEV_CONFIG_READ, syscall3(SYS_DEV_CONFIG_READ, bad_handle(t), any % 256, any % 8));
        break;
    }
}

int main(int argc, char **argv)
{
    struct test_run t;
    test_begin(&t, "fuzz", argc, argv);
    int64_t e = sys_ep_create();
    if (!test_check(&t, "endpoint", e >= 0, "%s", sys_strerror(e)))
        test_exit(&t);
    ep = (handle_t)e;
    sys_thread_create(echo_server, server_stack + sizeof(server_stack), 0);

    struct outcome o = {0};
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
