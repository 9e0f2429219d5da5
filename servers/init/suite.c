/*
 * init: the in-guest suite (DESIGN.md conventions). Each entry of `suite`
 * starts a test program and judges how it ended; test programs report their
 * own checks through their exit status (libsys/test.h). A few tests need
 * init's own powers (killing, kernel statistics around a whole process's
 * life) and are written here. The suite ends with `N passed, N failed` and
 * a shutdown whose status tells success.
 */
#include <common/cmdline.h>
#include <common/string.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>
#include "init.h"

#define SUITE_TIMEOUT_NS (300ull * 1000 * 1000 * 1000)
#define MS (1000ul * 1000)
#define MS_MIB (1024ul * 1024)

enum expect {
    EXPECT_TEST_PROGRAM, /* a libsys test program: its own counts */
    EXPECT_FAULT,        /* killed by CPU exception `vector` */
};

enum grant {
    GRANT_NONE = 0,
    GRANT_PAIR = 1,  /* a fresh endpoint in slot SERVICE, shared with `server_args`'s process */
    GRANT_EDU = 2,   /* QEMU's edu device in slot DEVICE, if there is one */
};

struct suite_entry {
    const char *name;        /* what test= selects */
    const char *module;
    const char *args;
    enum expect expect;
    int vector;
    unsigned grants;
    const char *server_args;   /* GRANT_PAIR: a server started first with these arguments */
    const char *server_module; /* ... from this module (0: the same as `module`) */
};

#define TEST_PROGRAM(test, prog, arguments) { .name = test, .module = prog, .args = arguments }
#define FAULT(test, mode, v) { .name = test, .module = "t_victim", .args = mode, .expect = EXPECT_FAULT, .vector = v }

static const struct suite_entry suite[] = {
    TEST_PROGRAM("basics", "t_basics", ""),
    TEST_PROGRAM("sched", "t_sched", ""),
    { .name = "ipc", .module = "t_ipc", .args = "client", .grants = GRANT_PAIR, .server_args = "server" },
    { .name = "edu", .module = "t_edu", .args = "", .grants = GRANT_EDU },
    TEST_PROGRAM("seg", "t_seg", ""),
    TEST_PROGRAM("malloc", "t_malloc", ""),
    { .name = "kvstore", .module = "t_kv", .args = "", .grants = GRANT_PAIR, .server_args = "",
      .server_module = "kvstore" },
    TEST_PROGRAM("fuzz", "t_fuzz", ""),
    TEST_PROGRAM("fragmenter", "t_mem", "fragmenter"),
    TEST_PROGRAM("pinned", "t_mem", "pinned"),
    TEST_PROGRAM("holes", "t_mem", "holes"),
    TEST_PROGRAM("memsrv_ops", "t_mem", "ops"),
    TEST_PROGRAM("memsrv_fuzz", "t_mem", "fuzz"),
    TEST_PROGRAM("fill", "t_fill", ""),
    FAULT("fault_null", "null", 14),
    FAULT("fault_privileged", "privileged", 13),
    FAULT("fault_kernel_write", "kernel-write", 14),
    FAULT("fault_ud", "ud", 6),
    FAULT("fault_divide", "divide", 0),
    FAULT("fault_port_io", "port-io", 13),
    FAULT("fault_stack_overflow", "stack-overflow", 14),
    FAULT("fault_after_send", "touch-after-send", 14),
};
/* The quick set that also runs under Bochs. */
static const char *const boot_set =
    "basics,sched,ipc,edu,fault_null,fault_privileged,exit_returns_memory,kill,spawn_errors,churn,fragmenter";

static unsigned passed, failed;

static void record(const char *name, bool ok, const char *why)
{
    if (ok) {
        passed++;
        printf("[PASS] %s\n", name);
    } else {
        failed++;
        printf("[FAIL] %s: %s\n", name, why);
    }
}

/* Waits for a process's end (killing it after the suite's timeout). */
static int64_t finish(int64_t h, int64_t *status)
{
    int64_t err = sys_proc_wait((handle_t)h, SUITE_TIMEOUT_NS, status);
    if (err < 0) {
        printf("init: %s waiting; killing it\n", sys_strerror(err));
        sys_proc_kill((handle_t)h);
        sys_proc_wait((handle_t)h, TIMEOUT_FOREVER, status);
    }
    sys_handle_close((handle_t)h);
    return err;
}

static int64_t run_module(const char *module, const char *args, const handle_t *grant, unsigned ngrant,
                          int64_t *status)
{
    int64_t h = init_spawn(module, args, grant, ngrant);
    return h < 0 ? h : finish(h, status);
}

static void judge(const struct suite_entry *e, int64_t err, int64_t status)
{
    char why[160];
    if (err < 0) {
        fmt_snprintf(why, sizeof(why), "could not run %s: %s", e->module, sys_strerror(err));
        record(e->name, false, why);
        return;
    }
    if (e->expect == EXPECT_FAULT) {
        bool ok = ABI_EXIT_IS_FAULT(status) && ABI_EXIT_FAULT_VECTOR(status) == e->vector;
        fmt_snprintf(why, sizeof(why), "expected a kill by vector %d, got status %ld", e->vector, status);
        record(e->name, ok, why);
        return;
    }
    if (!TEST_STATUS_VALID(status)) {
        fmt_snprintf(why, sizeof(why), "test program ended with status %ld", status);
        record(e->name, false, why);
        return;
    }
    passed += TEST_STATUS_PASSED(status);
    failed += TEST_STATUS_FAILED(status);
    /* A program with nothing to check said why (a skip, e.g. no device). */
}

static void run_entry(const struct suite_entry *e)
{
    handle_t grant[ABI_STARTUP_HANDLES] = {0};
    int64_t status = 0, err, server = -1, device = -1;
    if (e->grants & GRANT_EDU) {
        device = sys_dev_open(0x1234, 0x11e8, 0);
        if (device >= 0)
            grant[ABI_STARTUP_DEVICE] = (handle_t)device;
    }
    if (e->grants & GRANT_PAIR) {
        int64_t ep = sys_ep_create();
        if (ep < 0) {
            judge(e, ep, 0);
            return;
        }
        grant[ABI_STARTUP_SERVICE] = (handle_t)ep;
        server = init_spawn(e->server_module ? e->server_module : e->module, e->server_args, grant,
                            ABI_STARTUP_HANDLES);
        if (server < 0) {
            sys_handle_close((handle_t)ep);
            judge(e, server, 0);
            return;
        }
    }
    err = run_module(e->module, e->args, grant, ABI_STARTUP_HANDLES, &status);
    judge(e, err, status);
    if (server >= 0) {
        int64_t server_status;
        int64_t server_err = finish(server, &server_status);
        char why[120];
        fmt_snprintf(why, sizeof(why), "server ended with %ld (wait %ld)", server_status, server_err);
        char name[48];
        fmt_snprintf(name, sizeof(name), "%s_server_ends", e->name);
        /* A test server reports its own checks; a real server just ends well. */
        bool ok = server_err == 0 && (e->server_module ? server_status == 0
                                                       : TEST_STATUS_VALID(server_status) &&
                                                             TEST_STATUS_FAILED(server_status) == 0);
        record(name, ok, why);
        sys_handle_close(grant[ABI_STARTUP_SERVICE]);
    }
    if (device >= 0)
        sys_handle_close((handle_t)device);
}

struct memory_snapshot {
    uint64_t pool_free, ms_free, processes;
};

static void snapshot(struct memory_snapshot *s)
{
    struct abi_kinfo k;
    struct ms_stats_global g = {0};
    sys_kinfo(&k);
    ms_stats_global(&g);
    *s = (struct memory_snapshot){ k.pool_frames_free, g.free_bytes, k.processes };
}

static bool same_memory(const struct memory_snapshot *a, const struct memory_snapshot *b, char *why, size_t len,
                        const char *what)
{
    fmt_snprintf(why, len, "%s; pool free %lu -> %lu frames, memsrv free %lu -> %lu bytes", what, a->pool_free,
                 b->pool_free, a->ms_free, b->ms_free);
    return a->pool_free == b->pool_free && a->ms_free == b->ms_free && a->processes == b->processes;
}

/* Processes that end give back every pool frame and every byte. */
static void test_exit_returns_memory(void)
{
    struct memory_snapshot before, after;
    int64_t status;
    char why[200], what[64];
    snapshot(&before);
    int64_t err = run_module("t_victim", "threads-then-exit", 0, 0, &status);
    snapshot(&after);
    fmt_snprintf(what, sizeof(what), "run %ld status %ld", err, status);
    record("exit_returns_memory", same_memory(&before, &after, why, sizeof(why), what) && err == 0 && status == 0,
           why);

    snapshot(&before);
    err = run_module("t_victim", "fault-in-thread", 0, 0, &status);
    snapshot(&after);
    fmt_snprintf(what, sizeof(what), "run %ld status %ld", err, status);
    record("fault_returns_memory", same_memory(&before, &after, why, sizeof(why), what) && err == 0 &&
                                       ABI_EXIT_IS_FAULT(status), why);
}

/* A process killed while it runs ends with ABI_EXIT_KILLED; init goes on. */
static void test_kill(void)
{
    struct memory_snapshot before, after;
    char why[240] = "";
    snapshot(&before);
    int64_t status = 0, h = init_spawn("t_victim", "spin", 0, 0);
    if (h < 0) {
        fmt_snprintf(why, sizeof(why), "spawn: %s", sys_strerror(h));
        record("kill", false, why);
        return;
    }
    sys_sleep(20 * MS);
    int64_t early = sys_proc_wait((handle_t)h, TIMEOUT_POLL, &status);
    int64_t killed = sys_proc_kill((handle_t)h);
    int64_t waited = sys_proc_wait((handle_t)h, TIMEOUT_FOREVER, &status);
    int64_t again = sys_proc_kill((handle_t)h); /* already dead: harmless */
    sys_handle_close((handle_t)h);
    int64_t stale = sys_proc_wait((handle_t)h, TIMEOUT_POLL, &status);
    snapshot(&after);
    char what[120];
    fmt_snprintf(what, sizeof(what), "early %ld kill %ld wait %ld again %ld stale %ld status %ld", early, killed,
                 waited, again, stale, status);
    bool ok = same_memory(&before, &after, why, sizeof(why), what);
    record("kill", ok && early == -ETIMEDOUT && killed == 0 && waited == 0 && again == 0 && stale == -EBADH &&
                       status == ABI_EXIT_KILLED, why);
}

/* Exhausting the kernel frame pool is an error for the caller; the pool
 * comes back whole when the greedy process ends. */
static void test_pool_exhaustion(void)
{
    struct memory_snapshot before, after;
    int64_t status;
    char why[200], what[64];
    snapshot(&before);
    int64_t err = run_module("t_victim", "exhaust-pool", 0, 0, &status);
    snapshot(&after);
    fmt_snprintf(what, sizeof(what), "run %ld status %ld (want ENOMEM=%d)", err, status, ENOMEM);
    record("pool_exhaustion", same_memory(&before, &after, why, sizeof(why), what) && err == 0 && status == ENOMEM,
           why);
}

/* Bad images and bad arguments to the loader's calls: errors, nothing left. */
static void test_spawn_errors(void)
{
    struct memory_snapshot before, after;
    snapshot(&before);
    static const char not_elf[64] = "this is not an ELF image";
    int64_t bad_image = loader_spawn("bad", not_elf, sizeof(not_elf), "", 0, 0);
    int64_t missing = init_spawn("t_no_such_module", "", 0, 0);
    int64_t bad_start = sys_proc_start(0x7fff00000001ull, 0x400000, 0x500000, 0);
    int64_t bad_name = sys_proc_create((const char *)0xffffffff80000000ull, 8);
    int64_t proc = sys_proc_create("empty", 5);
    int64_t kernel_entry = sys_proc_start((handle_t)proc, 0xffffffff80100000ull, 0x500000, 0);
    int64_t twice = -1;
    if (proc >= 0) {
        sys_proc_start((handle_t)proc, 0x400000, 0x500000, 0); /* faults at once: nothing is mapped */
        twice = sys_proc_start((handle_t)proc, 0x400000, 0x500000, 0);
        int64_t status;
        sys_proc_wait((handle_t)proc, TIMEOUT_FOREVER, &status);
        sys_handle_close((handle_t)proc);
    }
    int64_t unstarted = sys_proc_create("unstarted", 9);
    if (unstarted >= 0)
        sys_handle_close((handle_t)unstarted); /* the kernel ends it */
    snapshot(&after);
    char why[300], what[160];
    fmt_snprintf(what, sizeof(what), "image %ld, missing %ld, bad handle %ld, bad name %ld, kernel entry %ld, twice %ld",
                 bad_image, missing, bad_start, bad_name, kernel_entry, twice);
    bool ok = same_memory(&before, &after, why, sizeof(why), what);
    record("spawn_errors", ok && bad_image == -ENOEXEC && missing == -ENOENT && bad_start == -EBADH &&
                               bad_name == -EFAULT && kernel_entry == -EFAULT && twice == -EINVAL, why);
}

/* A process that ends with a pinned segment leaves it quarantined: its
 * frames are not reused until init releases it. */
static void test_pin_then_exit(void)
{
    struct ms_stats_global before = {0}, during = {0}, after = {0};
    ms_stats_global(&before);
    int64_t sid = 0;
    int64_t err = run_module("t_victim", "pin-and-exit", 0, 0, &sid);
    ms_stats_global(&during);
    int64_t released = err == 0 && sid > 0 ? ms_release((uint64_t)sid) : -EINVAL;
    int64_t twice = ms_release((uint64_t)sid);
    ms_stats_global(&after);
    char why[300];
    fmt_snprintf(why, sizeof(why),
                 "run %ld sid %#lx; quarantined %lu -> %lu -> %lu; free %lu -> %lu -> %lu; release %ld, again %ld", err,
                 sid, before.quarantined_bytes, during.quarantined_bytes, after.quarantined_bytes, before.free_bytes,
                 during.free_bytes, after.free_bytes, released, twice);
    bool quarantined = during.quarantined_bytes == before.quarantined_bytes + 65536 &&
                       during.free_bytes == before.free_bytes - 65536;
    bool released_ok = released == 0 && twice < 0 && after.quarantined_bytes == before.quarantined_bytes &&
                       after.free_bytes == before.free_bytes;
    record("pin_then_exit_quarantined", err == 0 && quarantined && released_ok, why);
}

/* Several clients churn at once while background compaction runs; every
 * segment is checked before it is freed (by the clients), and compaction
 * must have moved segments meanwhile. */
static void test_churn(void)
{
    enum { CLIENTS = 3, BALLAST_MAX = 1024, ROOM_MIB = 40 };
    /* Ballast: the clients' window (see t_mem's low_window) filled with
     * 1 MiB segments, then every third one freed up to ROOM_MIB: a small,
     * scattered space to churn in, on any machine size. NOWAIT stops the
     * fill when the window is full (rather than the server moving earlier
     * ballast above the limit); pinning keeps it from being moved later. */
    static struct ms_segment ballast[BALLAST_MAX];
    struct ms_stats_global g = {0};
    ms_stats_global(&g);
    uint64_t window = g.total_bytes > 1024ull * MS_MIB ? 256 * MS_MIB : 64 * MS_MIB;
    unsigned nballast = 0, room = 0;
    while (nballast < BALLAST_MAX &&
           ms_alloc(MS_MIB, 0, MS_ALLOC_BELOW | MS_ALLOC_NOWAIT, window, &ballast[nballast]) == 0)
        sys_seg_pin(ballast[nballast++].handle);
    for (unsigned i = 0; i < nballast && room < ROOM_MIB; i += 3, room++) {
        sys_seg_unpin(ballast[i].handle);
        ms_free(ballast[i].handle);
        ballast[i].handle = HANDLE_NONE;
    }
    printf("init: churn room: %u MiB free in %u MiB of ballast below %#lx\n", room, nballast, window);
    struct ms_stats_global before = {0}, after = {0};
    ms_stats_global(&before);
    int64_t h[CLIENTS];
    /* churn.ops=N on the kernel command line scales the run (slow emulators). */
    uint64_t ops = 3000;
    cmdline_get_u64(libsys_startup->args, "churn.ops", &ops);
    for (unsigned i = 0; i < CLIENTS; i++) {
        char args[48];
        fmt_snprintf(args, sizeof(args), "churn %u ops=%lu", i, ops);
        h[i] = init_spawn("t_mem", args, 0, 0);
    }
    static const struct suite_entry churn_entry = TEST_PROGRAM("churn", "t_mem", "churn");
    for (unsigned i = 0; i < CLIENTS; i++) {
        int64_t status = 0;
        int64_t err = h[i] < 0 ? h[i] : finish(h[i], &status);
        judge(&churn_entry, err, status);
    }
    ms_stats_global(&after);
    for (unsigned i = 0; i < nballast; i++) {
        if (ballast[i].handle != HANDLE_NONE) {
            sys_seg_unpin(ballast[i].handle);
            ms_free(ballast[i].handle);
        }
    }
    char why[160];
    fmt_snprintf(why, sizeof(why), "moves %lu -> %lu, compactions %lu -> %lu, free %lu -> %lu", before.moves,
                 after.moves, before.compactions, after.compactions, before.free_bytes, after.free_bytes);
    printf("init: churn: %lu moves, %lu KiB moved, %lu compaction runs\n", after.moves - before.moves,
           (after.bytes_moved - before.bytes_moved) / 1024, after.compactions - before.compactions);
    /* The server's books grow and shrink with use: free memory and books
     * together must come out even. */
    record("churn_compaction_moved", after.moves > before.moves &&
               after.free_bytes + after.books_bytes == before.free_bytes + before.books_bytes, why);
}

/* A client over its quota is refused while another (init) is served. The
 * client says when it is ready, so that init can name it by its badge. */
static void test_quota(void)
{
    int64_t ep = sys_ep_create();
    handle_t grant[ABI_STARTUP_HANDLES] = {0};
    grant[ABI_STARTUP_PARENT] = (handle_t)ep;
    int64_t h = init_spawn("t_mem", "quota-over", grant, ABI_STARTUP_HANDLES);
    struct ipc_msg m = {0};
    int64_t got = h < 0 ? h : sys_ipc_recv((handle_t)ep, &m, SUITE_TIMEOUT_NS);
    int64_t set = got == 0 ? ms_quota(m.badge, 1024 * 1024) : got;
    struct ms_segment mine;
    int64_t other = ms_alloc(2 * 1024 * 1024, 0, 0, 0, &mine);
    m = (struct ipc_msg){0};
    sys_ipc_reply(&m);
    static const struct suite_entry quota_entry = TEST_PROGRAM("quota", "t_mem", "quota-over");
    int64_t status = 0;
    int64_t err = h < 0 ? h : finish(h, &status);
    judge(&quota_entry, err, status);
    char why[120];
    fmt_snprintf(why, sizeof(why), "quota %ld, init's own 2 MiB %ld", set, other);
    record("quota_other_client_served", set == 0 && other == 0, why);
    if (other == 0)
        ms_free(mine.handle);
    sys_handle_close((handle_t)ep);
}

/* One run of the holding client: started, left to settle, killed. */
static int64_t hold_and_kill(handle_t ep, uint64_t *free_while_holding, int64_t *status)
{
    handle_t grant[ABI_STARTUP_HANDLES] = {0};
    grant[ABI_STARTUP_PARENT] = ep;
    int64_t h = init_spawn("t_mem", "hold", grant, ABI_STARTUP_HANDLES);
    if (h < 0)
        return h;
    sys_sleep(300 * MS);
    struct ms_stats_global during = {0};
    ms_stats_global(&during);
    *free_while_holding = during.free_bytes;
    sys_proc_kill((handle_t)h);
    finish(h, status);
    return 0;
}

/* A client killed while holding segments, one of them in flight in a
 * blocked send, has everything reclaimed: free memory is back to baseline.
 * A first, unmeasured run lets the kernel's tables (segment ids, the memory
 * server's handles) grow to what the scenario needs; they keep that size. */
static void test_exit_reclaim(void)
{
    struct memory_snapshot before, after;
    int64_t ep = sys_ep_create();
    uint64_t free_while_holding = 0;
    int64_t status = 0;
    hold_and_kill((handle_t)ep, &free_while_holding, &status);
    snapshot(&before);
    int64_t err = hold_and_kill((handle_t)ep, &free_while_holding, &status);
    snapshot(&after);
    sys_handle_close((handle_t)ep);
    char why[240], what[80];
    fmt_snprintf(what, sizeof(what), "run %ld status %ld, free while holding %lu", err, status, free_while_holding);
    bool same = same_memory(&before, &after, why, sizeof(why), what);
    record("kill_reclaims_everything", err == 0 && status == ABI_EXIT_KILLED && free_while_holding < before.ms_free &&
                                          same, why);
}

/* memsrv takes a segment back from a client on init's word: the client's
 * mapping goes away; a pinned segment is refused. */
static void test_revoke(void)
{
    int64_t ep = sys_ep_create();
    handle_t grant[ABI_STARTUP_HANDLES] = {0};
    grant[ABI_STARTUP_PARENT] = (handle_t)ep;
    int64_t h = init_spawn("t_mem", "revoke-me", grant, ABI_STARTUP_HANDLES);
    struct ipc_msg m = {0};
    int64_t got = h < 0 ? h : sys_ipc_recv((handle_t)ep, &m, SUITE_TIMEOUT_NS);
    int64_t plain = got == 0 ? ms_revoke(m.w[0]) : got;
    int64_t pinned = got == 0 ? ms_revoke(m.w[1]) : got;
    int64_t unknown = ms_revoke(0x7fff00000001ull);
    m = (struct ipc_msg){ .w = { (uint64_t)plain, (uint64_t)pinned } };
    sys_ipc_reply(&m);
    static const struct suite_entry entry = TEST_PROGRAM("revoke", "t_mem", "revoke-me");
    int64_t status = 0;
    int64_t err = h < 0 ? h : finish(h, &status);
    judge(&entry, err, status);
    char why[120];
    fmt_snprintf(why, sizeof(why), "revoking an unknown sid gave %ld", unknown);
    record("revoke_unknown_sid", unknown == -ENOENT, why);
    sys_handle_close((handle_t)ep);
}

static bool selected(const char *list, size_t len, const char *name)
{
    if (!len)
        return false;
    if (len == 4 && strncmp(list, "boot", 4) == 0)
        return cmdline_list_has(boot_set, strlen(boot_set), name);
    return cmdline_list_has(list, len, name);
}

/* Benchmarks: programs named b_NAME, started with a fresh endpoint in slot
 * SERVICE and, first, the same program with "server" on it (for the ones
 * that measure messages). They print BENCH lines and exit 0. */
static const char *const benchmarks[] = { "ipc", "memsrv" };

static void run_benchmarks(const char *list, size_t len)
{
    for (size_t i = 0; i < sizeof(benchmarks) / sizeof(benchmarks[0]); i++) {
        if (!cmdline_list_has(list, len, benchmarks[i]))
            continue;
        char module[32];
        fmt_snprintf(module, sizeof(module), "b_%s", benchmarks[i]);
        handle_t grant[ABI_STARTUP_HANDLES] = {0};
        int64_t ep = sys_ep_create(), server = -1, status = -1, err;
        grant[ABI_STARTUP_SERVICE] = ep >= 0 ? (handle_t)ep : HANDLE_NONE;
        server = init_spawn(module, "server", grant, ABI_STARTUP_HANDLES);
        err = server < 0 ? server : run_module(module, "client", grant, ABI_STARTUP_HANDLES, &status);
        char why[120];
        fmt_snprintf(why, sizeof(why), "%s: %s, status %ld", module, err < 0 ? sys_strerror(err) : "ran", status);
        record(module, err == 0 && status == 0, why);
        if (server >= 0) {
            sys_proc_kill((handle_t)server);
            finish(server, &status);
        }
        if (ep >= 0)
            sys_handle_close((handle_t)ep);
    }
}

void init_run_suite(const char *list, size_t len, const char *benches, size_t benches_len)
{
    uint64_t start = sys_clock();
    if (len)
        printf("init: running tests '%.*s' seed=%lu\n", (int)len, list, init_seed);
    for (size_t i = 0; i < sizeof(suite) / sizeof(suite[0]); i++)
        if (selected(list, len, suite[i].name))
            run_entry(&suite[i]);
    if (selected(list, len, "exit_returns_memory"))
        test_exit_returns_memory();
    if (selected(list, len, "kill"))
        test_kill();
    if (selected(list, len, "pool_exhaustion"))
        test_pool_exhaustion();
    if (selected(list, len, "spawn_errors"))
        test_spawn_errors();
    if (selected(list, len, "pin_then_exit_quarantined"))
        test_pin_then_exit();
    if (selected(list, len, "churn"))
        test_churn();
    if (selected(list, len, "quota"))
        test_quota();
    if (selected(list, len, "kill_reclaims_everything"))
        test_exit_reclaim();
    if (selected(list, len, "revoke"))
        test_revoke();
    if (benches_len)
        run_benchmarks(benches, benches_len);
    printf("init: suite took %lu ms\n", (sys_clock() - start) / MS);
    printf("%u passed, %u failed\n", passed, failed);
    sys_shutdown(failed || !passed ? 1 : 0);
}
