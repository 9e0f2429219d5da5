/*
 * In-guest suite: the adversarial cases. Each case starts
 * t_hostile (tests/guest/programs/t_hostile.c) in one attack mode, as a
 * subtree with limits of its own and only the powers the attack needs, and
 * asserts four things:
 *   - the kernel did not panic (the suite goes on; iso/run fails on PANIC);
 *   - the attacker got an error for each attack (t_hostile's own checks);
 *   - other programs were served while the attack held what it took: when
 *     the attacker says it holds, the suite starts a bystander program,
 *     which must allocate, write and free (and starting it at all shows the
 *     kernel's reserve kept room for init);
 *   - once the attacker's subtree has ended, the kernel's pool, the memory
 *     server's free bytes and the process count are exactly as before.
 * Each case runs twice and the second run is measured: the first lets
 * long-lived tables (segment ids, handle pages of the server) grow to what
 * the case needs; what they keep of it is not a leak. A measured run
 * that reads a frame off is measured again, as accounting.c explains.
 */
#include <common/string.h>
#include <libsys/loader.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>
#include "hostile.h"
#include "suite.h"

#define HOSTILE_POLL_NS (50ull * 1000 * 1000)

struct hostile_case {
    const char *name;    /* the test's name: hostile_NAME */
    const char *mode;    /* the program's argument */
    const char *program; /* 0: t_hostile */
    uint32_t powers;
    bool image;       /* it starts children from its own image */
    bool device_full; /* the edu device with every right (else the pin device, DMA only) */
    uint64_t memory, kmem, processes, threads, pinned; /* its limits; 0: init's defaults */
};

#define MIB SUITE_MIB

static const struct hostile_case cases[] = {
    { .name = "reply_recv_buffer", .mode = "reply-recv-buffer" },
    { .name = "recv_into_sent", .mode = "recv-into-sent" },
    { .name = "send_then_free", .mode = "send-then-free" },
    { .name = "steal_receive", .mode = "steal-receive" },
    { .name = "no_powers", .mode = "no-powers" },
    { .name = "spawn_flood", .mode = "spawn-flood", .powers = POWER_SPAWN, .processes = 24 },
    { .name = "kmem_flood", .mode = "spawn-flood", .powers = POWER_SPAWN, .processes = 1000, .kmem = 512 * 1024 },
    { .name = "thread_flood", .mode = "thread-flood", .threads = 48 },
    { .name = "endpoint_flood", .mode = "endpoint-flood", .kmem = 256 * 1024 },
    { .name = "memory_flood", .mode = "memory-flood", .memory = 6 * MIB },
    { .name = "zero_loop", .mode = "zero-loop", .memory = 64 * MIB },
    { .name = "child_escape", .mode = "child-escape", .powers = POWER_SPAWN, .image = true, .memory = 8 * MIB },
    /* Its children each pin 2 MiB: init's default pinned limit, an eighth
     * of RAM, is less than that on a 16 MiB machine. */
    { .name = "pin_exit_loop", .mode = "pin-exit-loop", .powers = POWER_SPAWN, .image = true, .pinned = 4 * MIB },
    { .name = "readonly_transfer", .mode = "readonly-transfer", .powers = POWER_SPAWN, .image = true },
    { .name = "wait_races", .mode = "wait-races", .powers = POWER_SPAWN },
    { .name = "unstarted_children", .mode = "unstarted-children", .powers = POWER_SPAWN },
    { .name = "migrating_buffer", .mode = "migrating-buffer" },
    { .name = "cpu_modes", .mode = "cpu-modes", .powers = POWER_SPAWN, .image = true },
    { .name = "device_attacks", .mode = "device-attacks", .powers = POWER_SPAWN, .image = true, .device_full = true },
    { .name = "stale_dma", .mode = "stale-dma", .device_full = true },
    { .name = "check_flood", .mode = "check-flood", .memory = 4 * MIB },
    { .name = "huge_remap", .mode = "huge-remap", .memory = 80 * MIB },
    /* Handles in messages, notifications, futexes: with a kernel-memory
     * limit small enough that filling the handle table is quick. */
    { .name = "sync", .mode = "sync", .program = "t_sync", .kmem = 384 * 1024 },
};

/* A copy of a boot module's image in a segment of its own, to send. */
static int64_t image_segment(const char *module, struct ms_segment *out)
{
    const void *image;
    size_t size;
    int64_t err = delegate_module(module, &image, &size);
    if (err < 0)
        return err;
    err = ms_alloc(size, 0, 0, 0, out);
    if (err < 0)
        return err;
    memcpy(out->addr, image, size);
    return 0;
}

/* The bystander: an ordinary program that must be served meanwhile. */
static bool serve_bystander(char *why, size_t len)
{
    int64_t status = 0;
    int64_t h = suite_spawn("t_hostile", "bystander", 0);
    if (h < 0) {
        fmt_snprintf(why, len, "the suite could not start the bystander: %s", sys_strerror(h));
        return false;
    }
    int64_t err = suite_finish(h, &status);
    suite_count("hostile_bystander", "t_hostile", err, status); /* its own checks */
    bool ok =
        err == 0 && TEST_STATUS_VALID(status) && TEST_STATUS_FAILED(status) == 0 && TEST_STATUS_PASSED(status) > 0;
    fmt_snprintf(why, len, "bystander ended with %ld (wait %ld)", status, err);
    return ok;
}

struct outcome {
    int64_t status;    /* the attacker's test status */
    bool held, served; /* it said it held; the bystander was served meanwhile */
    char why[160];
};

/* The attacker's memory limit: its case's, but at most a third of what is
 * free, so that on a small machine the limit, not the machine running
 * out, is what stops it, and the bystander still finds room. */
static uint64_t attacker_memory_limit(uint64_t wanted)
{
    struct ms_stats_global g;
    if (ms_stats_global(&g) != 0 || wanted <= g.free_bytes / 3)
        return wanted;
    return (g.free_bytes / 3) & ~(uint64_t)(64 * 1024 - 1);
}

static int64_t run_once(const struct hostile_case *c, bool warmup, struct outcome *out)
{
    *out = (struct outcome){ .status = -1, .served = true };
    int64_t parent = sys_ep_create(), service = sys_ep_create();
    if (parent < 0 || service < 0) {
        if (parent >= 0)
            sys_handle_close((handle_t)parent);
        if (service >= 0)
            sys_handle_close((handle_t)service);
        return parent < 0 ? parent : service;
    }
    const char *program = c->program ? c->program : "t_hostile";
    char args[64];
    fmt_snprintf(args, sizeof(args), "%s%s", c->mode, warmup ? " warmup" : "");
    struct loader_spec spec;
    loader_spec_init(&spec, program, 0, 0, "");
    spec.powers = c->powers;
    loader_default_limits(spec.limits);
    if (c->memory)
        spec.limits[RES_MEMORY] = attacker_memory_limit(c->memory);
    if (c->kmem)
        spec.limits[RES_KMEM] = c->kmem;
    if (c->processes)
        spec.limits[RES_PROCESSES] = c->processes;
    if (c->threads)
        spec.limits[RES_THREADS] = c->threads;
    if (c->pinned)
        spec.limits[RES_PINNED] = c->pinned;
    int64_t edu = c->device_full ? sys_dev_open(0x1234, 0x11e8, 0) : -ENOENT;
    spec.grants[ABI_STARTUP_MEMSRV] = (struct loader_grant){ ms_endpoint(), RIGHT_SEND | RIGHT_GRANT };
    spec.grants[ABI_STARTUP_PARENT] = (struct loader_grant){ (handle_t)parent, RIGHT_SEND };
    spec.grants[ABI_STARTUP_SERVICE] = (struct loader_grant){ (handle_t)service, RIGHT_SEND | RIGHT_RECV };
    spec.grants[ABI_STARTUP_DEVICE] = edu >= 0 ? (struct loader_grant){ (handle_t)edu, RIGHTS_SAME }
                                               : (struct loader_grant){ suite_dma_device(), RIGHT_DMA | RIGHT_GRANT };
    int64_t h = suite_spawn_spec(program, args, &spec);
    /* Its own image, for modes that start children from it. Offered a
     * little at a time between looks at the parent endpoint: a mode that
     * ends early (a skip) never receives it, and waits to tell us so. */
    struct ipc_msg image = { .label = HOSTILE_IMAGE, .seg = HANDLE_NONE };
    if (h >= 0 && c->image) {
        struct ms_segment img;
        if (image_segment("t_hostile", &img) == 0)
            image.seg = img.handle;
    }
    /* Serve its messages until it ends: a HOLDING gets a bystander first. */
    while (h >= 0) {
        if (image.seg != HANDLE_NONE) {
            int64_t r = sys_ipc_send((handle_t)service, &image, HOSTILE_POLL_NS);
            if (r == 0)
                image.seg = HANDLE_NONE;
            else if (r != -ETIMEDOUT)
                break;
        }
        struct ipc_msg m = { 0 };
        int64_t r = sys_ipc_recv((handle_t)parent, &m, HOSTILE_POLL_NS);
        if (r == 0 && m.label == HOSTILE_HOLDING) {
            out->held = true;
            out->served = serve_bystander(out->why, sizeof(out->why));
            m = (struct ipc_msg){ 0 };
            sys_ipc_reply(&m);
            continue;
        }
        if (r == 0 && m.label == HOSTILE_DONE)
            break;
        if (sys_proc_wait((handle_t)h, TIMEOUT_POLL, 0) == 0)
            break;
    }
    if (image.seg != HANDLE_NONE)
        ms_free(image.seg);
    int64_t ended = h >= 0 ? suite_finish(h, &out->status) : 0;
    if (edu >= 0)
        sys_handle_close((handle_t)edu);
    sys_handle_close((handle_t)parent);
    sys_handle_close((handle_t)service);
    return h < 0 ? h : ended;
}

static void run_case(const struct hostile_case *c)
{
    struct outcome warm, o;
    struct memory_snapshot before, after;
    char name[64], why[900] = "";
    size_t used = 0;
    const char *program = c->program ? c->program : "t_hostile";
    /* The warming run's checks count too: an attack must fail every time. */
    fmt_snprintf(name, sizeof(name), "hostile_%s.warmup", c->name);
    int64_t warm_err = run_once(c, true, &warm);
    suite_count(name, program, warm_err, warm.status);
    bool returned = false;
    for (unsigned run = 0; run < SUITE_MEASURED_RUNS && !returned; run++) {
        memory_snapshot(&before);
        int64_t err = run_once(c, false, &o);
        memory_snapshot(&after);
        /* The attacker's own checks: each attack got its error. */
        fmt_snprintf(name, sizeof(name), run == 0 ? "hostile_%s" : "hostile_%s.remeasured", c->name);
        suite_count(name, program, err, o.status);
        if (err < 0)
            return;
        if (run == 0) {
            fmt_snprintf(name, sizeof(name), "hostile_%s.others_served", c->name);
            suite_record(name, o.served, o.why);
        }
        returned = memory_returned(&before, &after);
        used = memory_append_reading(why, sizeof(why), used, run, &before, &after);
    }
    fmt_snprintf(name, sizeof(name), "hostile_%s.baseline", c->name);
    suite_record(name, returned, why);
}

/* The stateful fuzzer (t_fuzz stateful) in FUZZERS processes at once,
 * swapping segments through one endpoint that the first receives on. */
#define FUZZERS 3

static void stateful_fuzz(void)
{
    struct memory_snapshot before, after;
    int64_t ep = sys_ep_create();
    int64_t h[FUZZERS];
    memory_snapshot(&before);
    for (unsigned i = 0; i < FUZZERS; i++) {
        char args[48];
        fmt_snprintf(args, sizeof(args), "stateful seed=%lu", suite_seed * 31 + i); /* the last seed= counts */
        struct loader_spec spec;
        loader_spec_init(&spec, "t_fuzz", 0, 0, "");
        loader_default_limits(spec.limits);
        spec.limits[RES_MEMORY] = 16 * MIB;
        spec.grants[ABI_STARTUP_PARENT] = (struct loader_grant){ (handle_t)ep, RIGHT_SEND };
        if (i == 0)
            spec.grants[ABI_STARTUP_SERVICE] = (struct loader_grant){ (handle_t)ep, RIGHT_SEND | RIGHT_RECV };
        spec.grants[ABI_STARTUP_DEVICE] = (struct loader_grant){ suite_dma_device(), RIGHT_DMA };
        h[i] = ep < 0 ? ep : suite_spawn_spec("t_fuzz", args, &spec);
    }
    for (unsigned i = 0; i < FUZZERS; i++) {
        int64_t status = -1;
        int64_t err = h[i] < 0 ? h[i] : suite_finish(h[i], &status);
        suite_count("fuzz_stateful", "t_fuzz", err, status);
    }
    if (ep >= 0)
        sys_handle_close((handle_t)ep);
    memory_snapshot(&after);
    /* No warming run here (each run races differently), so the books may
     * keep some of what they grew to: every byte must be free or in the
     * books again, none held by a segment. */
    char why[240];
    fmt_snprintf(why, sizeof(why),
                 "memsrv free + books %lu + %lu -> %lu + %lu, processes %lu -> %lu, quarantined %lu -> %lu",
                 before.ms_free, before.ms_books, after.ms_free, after.ms_books, before.processes, after.processes,
                 before.quarantined, after.quarantined);
    printf("suite: fuzz_stateful: %s\n", why);
    suite_record("fuzz_stateful.baseline",
                 before.ms_free + before.ms_books == after.ms_free + after.ms_books &&
                     before.processes == after.processes && before.quarantined == after.quarantined,
                 why);
}

void test_hostile(bool (*selected)(const char *name))
{
    if (selected("fuzz_stateful"))
        stateful_fuzz();
    bool every_case = selected("hostile");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[64];
        fmt_snprintf(name, sizeof(name), "hostile_%s", cases[i].name);
        if ((selected(name) || every_case) && !suite_memory_short(name))
            run_case(&cases[i]);
    }
}
