/*
 * init: the first user process, started by the kernel from the boot module
 * named "init" with the kernel command line as its arguments. It holds the
 * boot right (boot modules, devices, shutdown) and the boot modules' images,
 * mapped read-only; it starts programs from them with the libsys loader.
 *
 * Without test= it starts every boot module that is neither init, memsrv
 * nor a test program (names starting with "t_") and stays. With
 * test=NAME,... (or test=all, or test=boot for the quick set) it runs the
 * in-guest suite (suite.c) and powers off with the result.
 */
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

int64_t init_spawn(const char *module, const char *args, const handle_t *grant, unsigned ngrant)
{
    struct abi_module_info info;
    int64_t err = init_module(module, &info);
    if (err < 0)
        return err;
    char line[ABI_ARGS_MAX];
    fmt_snprintf(line, sizeof(line), "%s seed=%lu %s", module, init_seed, args);
    handle_t grants[ABI_STARTUP_HANDLES] = { ms_endpoint() };
    for (unsigned i = 1; i < ngrant && i < ABI_STARTUP_HANDLES; i++)
        grants[i] = grant[i];
    return loader_spawn(module, (const void *)info.vaddr, info.size, line, grants,
                        ngrant > 1 ? ngrant : 1);
}

static void start_servers(void)
{
    struct abi_module_info info;
    for (unsigned i = 0; sys_module_info(i, &info) == 0; i++) {
        if (strcmp(info.name, "init") == 0 || strcmp(info.name, "memsrv") == 0 || strncmp(info.name, "t_", 2) == 0)
            continue;
        handle_t grants[1] = { ms_endpoint() };
        int64_t h = loader_spawn(info.name, (const void *)info.vaddr, info.size, info.args, grants, 1);
        printf("init: started %s (%s)\n", info.name, h < 0 ? sys_strerror(h) : "ok");
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
