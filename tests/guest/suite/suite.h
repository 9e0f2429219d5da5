/*
 * In-guest suite (private): what the suite's files share. t_suite is a boot
 * module that init starts with test= or bench= (servers/init/init.c); it
 * borrows init's boot-right powers through the delegate endpoint
 * (abi/init.h, delegate.c), runs the test programs from the images init
 * gives it (suite.c), times its waits by the machine's own pace (pace.c),
 * and runs the tests that need a parent's view: memory accounting around a
 * process's whole life (accounting.c) and memsrv scenarios with several
 * clients (clients.c).
 */
#ifndef SUITE_SUITE_H
#define SUITE_SUITE_H

#include <stdbool.h>
#include <stddef.h>
#include <abi/ipc.h>
#include <abi/proc.h>
#include <libsys/memsrv.h>

#define SUITE_MIB (1024ul * 1024)

/* suite.c: results and programs. */
extern uint64_t suite_seed;
/* One check of the suite's own: [PASS] name, or [FAIL] name: why. */
void suite_record(const char *name, bool ok, const char *why);
/* One check whose premise cannot hold on this machine: [SKIP] name: why. */
void suite_skip(const char *name, const char *why);
/* Counts a test program's own checks from its exit status, or fails `name`
 * if it could not run (err < 0) or did not end as a test program. */
void suite_count(const char *name, const char *module, int64_t err, int64_t status);
/* Starts a boot module with "MODULE seed=N pace_ns=P args"; grant[0] is
 * always the memory server's endpoint, grant[1..] as given (HANDLE_NONE to
 * skip). Returns a process handle or -E*. */
int64_t suite_spawn(const char *module, const char *args, const handle_t *grant, unsigned ngrant);
/* Waits for the process to end (pace_wait_process's budget, then kills it)
 * and closes its handle; 0 or the wait's error. */
int64_t suite_finish(int64_t h, int64_t *status);
/* suite_spawn, then suite_finish. */
int64_t suite_run(const char *module, const char *args, const handle_t *grant, unsigned ngrant, int64_t *status);

/* pace.c: waits measured in the machine's own work, not in fixed time. */
/* Times the reference work on the guest's clock; call once at start. */
void pace_calibrate(void);
/* Guest nanoseconds one unit of reference work took at the last timing. */
uint64_t pace_unit_ns(void);
/* How many units any single wait may take before it is called a hang:
 * about four minutes under QEMU, some 20 times what the longest test needs. */
#define PACE_HANG_UNITS 80000ull
/* sys_proc_wait / sys_ipc_recv within PACE_HANG_UNITS units: when the
 * budget runs out, the reference is timed again and the budget stretched
 * if the machine has slowed; -ETIMEDOUT only when the wait outlasts it. */
int64_t pace_wait_process(handle_t proc, int64_t *status);
int64_t pace_recv(handle_t ep, struct ipc_msg *m);

/* delegate.c: init's powers, lent to the suite. */
/* Takes every boot module image init can give; returns how many. */
unsigned delegate_take_modules(void);
/* The image of boot module `name`, as the suite has it mapped; -ENOENT. */
int64_t delegate_module(const char *name, const void **image, size_t *size);
/* A device handle of the suite's (SYS_DEV_OPEN through init). */
int64_t delegate_dev_open(uint16_t vendor, uint16_t device, unsigned index);
/* memsrv's init-only requests, made through init. */
int64_t delegate_ms_quota(uint64_t pid, uint64_t bytes);
int64_t delegate_ms_release(uint64_t sid);
int64_t delegate_ms_revoke(uint64_t sid);
/* Powers the machine off through init; returns only if init refused. */
int64_t delegate_poweroff(unsigned status);

/* accounting.c: every frame and byte comes back. */
void test_exit_returns_memory(void);
void test_kill(void);
void test_pool_exhaustion(void);
void test_spawn_errors(void);
void test_pin_then_exit(void);
void test_exit_reclaim(void);
void test_planted_leaks(void);

/* clients.c: memsrv with several clients. */
void test_churn(void);
void test_quota(void);
void test_revoke(void);

#endif
