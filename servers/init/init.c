/*
 * init: the first user process, started by the kernel from the boot module
 * named "init" with the kernel command line as its arguments. It holds the
 * boot right (boot modules, spawning, shutdown).
 *
 * Without test= it starts every boot module that is not a test program
 * (names starting with "t_") and stays. With test=NAME,... (or test=all) it
 * runs the in-guest suite: each entry of `suite` spawns a module and checks
 * how it ended; test programs report their own checks through their exit
 * status (libsys/test.h). The suite ends with `N passed, N failed` and a
 * shutdown whose status says whether everything passed.
 */
#include <abi/proc.h>
#include <common/cmdline.h>
#include <common/string.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

#define SUITE_TIMEOUT_NS (120ull * 1000 * 1000 * 1000)

enum expect {
    EXPECT_TEST_PROGRAM, /* a libsys test program: its own counts */
    EXPECT_FAULT,        /* killed by CPU exception `vector` */
};

struct suite_entry {
    const char *name;   /* what test= selects */
    const char *module;
    const char *args;
    enum expect expect;
    int vector;
};

/* Groups listed in `boot` are the quick set that also runs under Bochs. */
static const struct suite_entry suite[] = {
    { "basics", "t_basics", "", EXPECT_TEST_PROGRAM, 0 },
    { "sched", "t_sched", "", EXPECT_TEST_PROGRAM, 0 },
    { "fault_null", "t_victim", "null", EXPECT_FAULT, 14 },
    { "fault_privileged", "t_victim", "privileged", EXPECT_FAULT, 13 },
    { "fault_kernel_write", "t_victim", "kernel-write", EXPECT_FAULT, 14 },
    { "fault_ud", "t_victim", "ud", EXPECT_FAULT, 6 },
    { "fault_divide", "t_victim", "divide", EXPECT_FAULT, 0 },
    { "fault_port_io", "t_victim", "port-io", EXPECT_FAULT, 13 },
    { "fault_stack_overflow", "t_victim", "stack-overflow", EXPECT_FAULT, 14 },
};
static const char *const boot_set = "basics,sched,fault_null,fault_privileged,exit_returns_memory,kill";

static uint64_t seed = 1;
static unsigned passed, failed;

static int find_module(const char *name)
{
    struct abi_module_info info;
    for (unsigned i = 0; sys_module_info(i, &info) == 0; i++)
        if (strcmp(info.name, name) == 0)
            return (int)i;
    return -1;
}

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

/* Spawns module with "MODULE seed=N args" and waits for its end. */
static int64_t run_module(const char *module, const char *args, int64_t *status)
{
    int index = find_module(module);
    if (index < 0)
        return -ENOENT;
    char line[ABI_ARGS_MAX];
    int n = fmt_snprintf(line, sizeof(line), "%s seed=%lu %s", module, seed, args);
    int64_t h = sys_proc_spawn((unsigned)index, line, (size_t)n);
    if (h < 0)
        return h;
    int64_t err = sys_proc_wait((handle_t)h, SUITE_TIMEOUT_NS, status);
    if (err < 0) {
        sys_proc_kill((handle_t)h);
        sys_proc_wait((handle_t)h, TIMEOUT_FOREVER, status);
    }
    sys_handle_close((handle_t)h);
    return err;
}

static void run_entry(const struct suite_entry *e)
{
    int64_t status = 0;
    int64_t err = run_module(e->module, e->args, &status);
    char why[160];
    if (err < 0) {
        fmt_snprintf(why, sizeof(why), "could not run module %s: %s", e->module, sys_strerror(err));
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
    if (TEST_STATUS_PASSED(status) + TEST_STATUS_FAILED(status) == 0)
        record(e->name, false, "test program made no checks");
}

/* Processes that end give back every pool frame and every byte of user
 * memory they held. */
static void test_exit_returns_memory(void)
{
    struct abi_kinfo before, after;
    sys_kinfo(&before);
    int64_t status;
    int64_t err = run_module("t_victim", "threads-then-exit", &status);
    sys_kinfo(&after);
    char why[200];
    fmt_snprintf(why, sizeof(why), "run %ld status %ld; pool free %lu -> %lu, user free %lu -> %lu", err, status,
                 before.pool_frames_free, after.pool_frames_free, before.user_bytes_free, after.user_bytes_free);
    record("exit_returns_memory", err == 0 && status == 0 && before.pool_frames_free == after.pool_frames_free &&
                                      before.user_bytes_free == after.user_bytes_free, why);

    sys_kinfo(&before);
    err = run_module("t_victim", "fault-in-thread", &status);
    sys_kinfo(&after);
    fmt_snprintf(why, sizeof(why), "status %ld; pool free %lu -> %lu, user free %lu -> %lu", status,
                 before.pool_frames_free, after.pool_frames_free, before.user_bytes_free, after.user_bytes_free);
    record("fault_returns_memory", err == 0 && ABI_EXIT_IS_FAULT(status) &&
                                       before.pool_frames_free == after.pool_frames_free &&
                                       before.user_bytes_free == after.user_bytes_free, why);
}

/* Exhausting the kernel frame pool is an error for the caller; the pool
 * comes back whole when the greedy process ends. */
static void test_pool_exhaustion(void)
{
    struct abi_kinfo before, after;
    sys_kinfo(&before);
    int64_t status;
    int64_t err = run_module("t_victim", "exhaust-pool", &status);
    sys_kinfo(&after);
    char why[200];
    fmt_snprintf(why, sizeof(why), "run %ld status %ld (want ENOMEM=%d); pool free %lu -> %lu", err, status, ENOMEM,
                 before.pool_frames_free, after.pool_frames_free);
    record("pool_exhaustion", err == 0 && status == ENOMEM && before.pool_frames_free == after.pool_frames_free, why);
}

/* A process killed while it runs ends with ABI_EXIT_KILLED; init goes on. */
static void test_kill(void)
{
    struct abi_kinfo before, after;
    sys_kinfo(&before);
    int index = find_module("t_victim");
    char why[200] = "t_victim missing";
    int64_t status = 0, h = index < 0 ? -ENOENT : sys_proc_spawn((unsigned)index, "t_victim spin", 13);
    if (h >= 0) {
        sys_sleep(20 * 1000 * 1000);
        int64_t early = sys_proc_wait((handle_t)h, TIMEOUT_POLL, &status);
        int64_t killed = sys_proc_kill((handle_t)h);
        int64_t waited = sys_proc_wait((handle_t)h, TIMEOUT_FOREVER, &status);
        int64_t again = sys_proc_kill((handle_t)h); /* already dead: harmless */
        sys_handle_close((handle_t)h);
        int64_t stale = sys_proc_wait((handle_t)h, TIMEOUT_POLL, &status);
        sys_kinfo(&after);
        fmt_snprintf(why, sizeof(why), "early %ld kill %ld wait %ld again %ld stale %ld status %ld pool %lu->%lu",
                     early, killed, waited, again, stale, status, before.pool_frames_free, after.pool_frames_free);
        record("kill", early == -ETIMEDOUT && killed == 0 && waited == 0 && again == 0 && stale == -EBADH &&
                           status == ABI_EXIT_KILLED && before.pool_frames_free == after.pool_frames_free, why);
        return;
    }
    record("kill", false, why);
}

static void test_spawn_errors(void)
{
    int64_t missing = sys_proc_spawn(10000, "", 0);
    int64_t bad_args = sys_proc_spawn(0, (const char *)0xffffffff80000000ull, 8);
    int64_t too_long = sys_proc_spawn(0, "x", ABI_ARGS_MAX + 1);
    char why[160];
    fmt_snprintf(why, sizeof(why), "missing %ld, kernel args %ld, long args %ld", missing, bad_args, too_long);
    record("spawn_errors", missing == -ENOENT && bad_args == -EFAULT && too_long == -E2BIG, why);
}

static bool selected(const char *list, size_t len, const char *name)
{
    if (len == 4 && strncmp(list, "boot", 4) == 0)
        return cmdline_list_has(boot_set, strlen(boot_set), name);
    return cmdline_list_has(list, len, name);
}

static void run_suite(const char *list, size_t len)
{
    uint64_t start = sys_clock();
    printf("init: running tests '%.*s' seed=%lu\n", (int)len, list, seed);
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
    uint64_t ms = (sys_clock() - start) / 1000000;
    printf("init: suite took %lu ms\n", ms);
    printf("%u passed, %u failed\n", passed, failed);
    sys_shutdown(failed || !passed ? 1 : 0);
}

static void start_servers(void)
{
    struct abi_module_info info;
    for (unsigned i = 0; sys_module_info(i, &info) == 0; i++) {
        if (strcmp(info.name, "init") == 0 || strncmp(info.name, "t_", 2) == 0)
            continue;
        int64_t h = sys_proc_spawn(i, info.args, strlen(info.args));
        printf("init: started %s (%s)\n", info.name, h < 0 ? sys_strerror(h) : "ok");
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const char *cmdline = libsys_startup ? libsys_startup->args : "";
    printf("init: started, command line '%s'\n", cmdline);
    cmdline_get_u64(cmdline, "seed", &seed);
    printf("init: seed=%lu\n", seed);
    const char *tests;
    size_t tests_len;
    if (cmdline_get(cmdline, "test", &tests, &tests_len))
        run_suite(tests, tests_len);
    start_servers();
    printf("init: ready\n");
    for (;;)
        sys_sleep(TIMEOUT_FOREVER);
}
