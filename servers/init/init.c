/*
 * init: the first user process, started by the kernel from the boot module
 * named "init" with the kernel command line as its arguments. It holds the
 * boot right (boot modules, devices, shutdown) and the boot modules' images,
 * mapped read-only; it starts programs from them with the libsys loader.
 *
 * Without test= it starts every boot module that is neither init, memsrv,
 * a test program (names starting with "t_") nor a benchmark ("b_": bench=
 * runs those, with a partner of their own), giving each a service endpoint
 * of its own (abi/init.h) that a thread of init serves: an interactive
 * program such as memctl powers the machine off through it. With
 * test=NAME,... (or test=all, or test=boot for the quick set) it runs the
 * in-guest suite (suite.c) and powers off with the result.
 */
#include <abi/init.h>
#include <common/cmdline.h>
#include <common/string.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include "init.h"

uint64_t init_seed = 1;

int64_t init_module(const char *name, struct abi_module_info *out)
{
    for (unsigned i = 0; sys_module_info(i, out) == 0; i++)
        if (strcmp(out->name, name) == 0)
            return out->vaddr ? 0 : -ENOENT;
    return -ENOENT;
}

int64_t init_spawn(const char *module, const char *args, const struct loader_grant *grants)
{
    struct abi_module_info info;
    int64_t err = init_module(module, &info);
    if (err < 0)
        return err;
    char line[ABI_ARGS_MAX];
    fmt_snprintf(line, sizeof(line), "%s seed=%lu %s", module, init_seed, args);
    struct loader_spec spec;
    loader_spec_init(&spec, module, (const void *)info.vaddr, info.size, line);
    for (unsigned i = 0; grants && i < ABI_STARTUP_HANDLES; i++)
        spec.grants[i] = grants[i];
    spec.grants[ABI_STARTUP_MEMSRV] = (struct loader_grant){ ms_endpoint(), RIGHT_SEND };
    return loader_spawn(&spec);
}

handle_t init_dma_device(void)
{
    static const uint16_t candidates[][2] = {
        { 0x1234, 0x11e8 }, /* QEMU's edu: a real DMA engine */
        { 0x8086, 0x1237 }, /* i440FX host bridge (QEMU pc, Bochs) */
        { 0x8086, 0x29c0 }, /* Q35 host bridge */
    };
    static handle_t device = HANDLE_NONE;
    for (unsigned i = 0; device == HANDLE_NONE && i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        int64_t h = sys_dev_open(candidates[i][0], candidates[i][1], 0);
        if (h >= 0)
            device = (handle_t)h;
    }
    return device;
}

/*
 * What a program init starts may hold, it and its descendants together, so
 * that no one of them can starve the others or init: half the memory the
 * memory server manages, a quarter of the kernel's frame pool, 64
 * processes, 256 threads, and an eighth of memory pinned for devices.
 */
void init_default_limits(uint64_t limits[RES_COUNT])
{
    struct ms_stats_global g = {0};
    struct abi_kinfo k = {0};
    ms_stats_global(&g);
    sys_kinfo(&k);
    limits[RES_MEMORY] = g.total_bytes ? g.total_bytes / 2 : ABI_LIMIT_NONE;
    limits[RES_KMEM] = k.pool_frames_total * ABI_PAGE_SIZE / 4;
    limits[RES_PROCESSES] = 64;
    limits[RES_THREADS] = 256;
    limits[RES_PINNED] = g.total_bytes ? g.total_bytes / 8 : ABI_LIMIT_NONE;
}

/* Handles one request on the service endpoint; the reply is left in m.
 * Returns whether the sender waits for a reply. */
static bool serve_request(struct ipc_msg *m)
{
    if (m->badge == BADGE_KERNEL)
        return false;
    int64_t result = -ENOSYS;
    if (m->label == INIT_POWEROFF) {
        bool well_formed = m->w[1] == 0 && m->w[2] == 0 && m->w[3] == 0 && m->len == 0 && m->seg == HANDLE_NONE;
        if (well_formed && m->w[0] <= INIT_POWEROFF_STATUS_MAX) {
            printf("init: power off with status %lu, asked by pid %#lx\n", m->w[0], m->badge);
            sys_shutdown((int)m->w[0]);
        }
        result = -EINVAL;
    }
    handle_t seg = m->seg; /* nothing here takes a segment: it goes back */
    memset(m, 0, sizeof(*m));
    m->label = (uint64_t)result;
    m->seg = seg;
    return true;
}

/* The service loop (abi/init.h). A reply that gives a segment back goes out
 * alone, so that if it fails init can return the segment to memsrv. */
static void serve(handle_t service)
{
    struct ipc_msg m;
    bool reply = false;
    for (;;) {
        int64_t err;
        if (reply) {
            m.flags = IPC_RECV_NOMAP;
            err = sys_ipc_reply_recv(service, &m, TIMEOUT_FOREVER);
            reply = false;
            if (err < 0)
                continue; /* the caller is gone or never waited: receive afresh */
        } else {
            memset(&m, 0, sizeof(m));
            m.flags = IPC_RECV_NOMAP;
            err = sys_ipc_recv(service, &m, TIMEOUT_FOREVER);
            if (err < 0) {
                printf("init: service endpoint: %s; no more requests\n", sys_strerror(err));
                return;
            }
        }
        reply = serve_request(&m);
        if (reply && m.seg != HANDLE_NONE) {
            handle_t seg = m.seg;
            if (sys_ipc_reply(&m) < 0)
                ms_free(seg);
            reply = false;
        }
    }
}

/*
 * Each program started at boot gets an endpoint of its own, so that one
 * program receiving on its endpoint (a server) cannot take requests meant
 * for init from another. The kernel has no wait on several endpoints, so a
 * thread of init serves each one.
 */
#define SERVICE_THREADS_MAX 8
#define SERVICE_STACK_SIZE 16384

static uint8_t service_stacks[SERVICE_THREADS_MAX][SERVICE_STACK_SIZE] __attribute__((aligned(16)));
static handle_t service_endpoints[SERVICE_THREADS_MAX];

static void service_thread(uint64_t index)
{
    serve(service_endpoints[index]);
    sys_thread_exit();
}

static void start_servers(void)
{
    struct abi_module_info info;
    unsigned served = 0;
    for (unsigned i = 0; sys_module_info(i, &info) == 0; i++) {
        if (strcmp(info.name, "init") == 0 || strcmp(info.name, "memsrv") == 0 || strncmp(info.name, "t_", 2) == 0 ||
            strncmp(info.name, "b_", 2) == 0)
            continue;
        int64_t ep = served < SERVICE_THREADS_MAX ? sys_ep_create() : -ENOSPC;
        /* A server also gets an endpoint of its own to serve (its receive
         * right moves to it); init keeps a send handle to it, the one a
         * client would be given. */
        int64_t own = sys_ep_create();
        struct loader_spec spec;
        loader_spec_init(&spec, info.name, (const void *)info.vaddr, info.size, info.args);
        spec.grants[ABI_STARTUP_MEMSRV] = (struct loader_grant){ ms_endpoint(), RIGHT_SEND };
        spec.grants[ABI_STARTUP_PARENT] = (struct loader_grant){ ep < 0 ? HANDLE_NONE : (handle_t)ep, RIGHT_SEND };
        spec.grants[ABI_STARTUP_SERVICE] =
            (struct loader_grant){ own < 0 ? HANDLE_NONE : (handle_t)own, RIGHT_SEND | RIGHT_RECV };
        /* The console pins segments on its operator's word: it needs a
         * device to pin them for. Nobody else is given one. */
        if (strcmp(info.name, "memctl") == 0)
            spec.grants[ABI_STARTUP_DEVICE] = (struct loader_grant){ init_dma_device(), RIGHT_DMA };
        init_default_limits(spec.limits);
        int64_t h = loader_spawn(&spec);
        printf("init: started %s (%s)\n", info.name, h < 0 ? sys_strerror(h) : "ok");
        if (ep < 0) {
            printf("init: %s has no service endpoint (%s)\n", info.name, sys_strerror(ep));
            continue;
        }
        if (h < 0) {
            sys_handle_close((handle_t)ep);
            continue;
        }
        service_endpoints[served] = (handle_t)ep;
        uint8_t *stack_top = service_stacks[served] + SERVICE_STACK_SIZE;
        int64_t t = sys_thread_create(service_thread, stack_top, served);
        if (t < 0)
            printf("init: cannot serve %s's endpoint (%s)\n", info.name, sys_strerror(t));
        else
            served++;
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const char *cmdline = libsys_startup ? libsys_startup->args : "";
    printf("init: started, command line '%s'\n", cmdline);
    cmdline_get_u64(cmdline, "seed", &init_seed);
    printf("init: seed=%lu\n", init_seed);
    if (ms_endpoint() == HANDLE_NONE)
        printf("init: no memory server: nothing can be started\n");
    const char *tests = 0, *benches = 0;
    size_t tests_len = 0, benches_len = 0;
    bool have_tests = cmdline_get(cmdline, "test", &tests, &tests_len);
    bool have_benches = cmdline_get(cmdline, "bench", &benches, &benches_len);
    if (have_tests || have_benches)
        init_run_suite(tests, tests_len, benches, benches_len);
    start_servers();
    printf("init: ready\n");
    for (;;)
        sys_sleep(TIMEOUT_FOREVER);
}
