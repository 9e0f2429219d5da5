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
/* Starts a boot module with "MODULE seed=N args"; grant[0] is always the
 * memory server's endpoint, grant[1..] as given (HANDLE_NONE to skip). */
int64_t init_spawn(const char *module, const char *args, const handle_t *grant, unsigned ngrant);
/* Runs the selected tests (test=) and benchmarks (bench=) and powers off;
 * never returns. Either list may be empty. */
void init_run_suite(const char *tests, size_t tests_len, const char *benches, size_t benches_len)
    __attribute__((noreturn));

#endif
