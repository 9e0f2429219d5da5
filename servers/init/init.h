/*
 * init (private): what init.c and suite.c share.
 */
#ifndef INIT_INIT_H
#define INIT_INIT_H

#include <stddef.h>
#include <abi/proc.h>
#include <libsys/loader.h>
#include <libsys/memsrv.h>

extern uint64_t init_seed;

/* The boot module called name, as init has it mapped. */
int64_t init_module(const char *name, struct abi_module_info *out);
/* Starts a boot module with "MODULE seed=N args" and no powers: startup
 * slot MEMSRV always gets the memory server's endpoint (send only), the
 * other slots grants[i] if grants is not NULL (an array of
 * ABI_STARTUP_HANDLES; HANDLE_NONE to skip). */
int64_t init_spawn(const char *module, const char *args, const struct loader_grant *grants);
/* The device pinning is done for in the suite and the consoles: QEMU's edu
 * device if there is one, else the host bridge (every machine has one; its
 * bus mastering is never touched). HANDLE_NONE if neither opens. */
handle_t init_dma_device(void);
/* The limits init sets on every program it starts (init.c says why). */
void init_default_limits(uint64_t limits[RES_COUNT]);
/* The adversarial cases (hostile.c) that `selected` picks from the list,
 * reported through the suite's record and judge_counts. */
void hostile_run(const char *list, size_t len, bool (*selected)(const char *, size_t, const char *),
                 void (*record)(const char *, bool, const char *), void (*judge_counts)(int64_t status));
/* Runs the selected tests (test=) and benchmarks (bench=) and powers off;
 * never returns. Either list may be empty. */
void init_run_suite(const char *tests, size_t tests_len, const char *benches, size_t benches_len)
    __attribute__((noreturn));

#endif
