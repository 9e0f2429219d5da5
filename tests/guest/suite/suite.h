/*
 * In-guest suite (private): what the suite's files share. t_suite is a boot
 * module that init starts with test= or bench= (servers/init/init.c), with
 * the powers to start processes and open devices; what stays init's (the
 * boot modules' images, memsrv's init-only requests, powering off) it asks
 * for through the delegate endpoint (proto/init.h, delegate.c). It runs the
 * test programs from the images init gives it (suite.c), times its waits by
 * the machine's own pace (pace.c), and runs the tests that need a parent's
 * view: memory accounting around a process's whole life (accounting.c),
 * memsrv scenarios with several clients (clients.c) and attacks by hostile
 * programs (hostile.c).
 */
#ifndef SUITE_SUITE_H
#define SUITE_SUITE_H

#include <stdbool.h>
#include <stddef.h>
#include <abi/ipc.h>
#include <abi/proc.h>
#include <libsys/loader.h>
#include <libsys/memsrv.h>

#define SUITE_MIB (1024ul * 1024)

/* suite.c: results and programs. */
extern uint64_t suite_seed;
/* One check of the suite's own: [PASS] name, or [FAIL] name: why. */
void suite_record(const char *name, bool ok, const char *why);
/* One check whose premise cannot hold on this machine: [SKIP] name: why. */
void suite_skip(const char *name, const char *why);
/* Whether the test `name` needs more free memory than memsrv has now; if
 * so it is skipped, saying how much there is and how much it needs. */
bool suite_memory_short(const char *name);
/* Counts a test program's own checks from its exit status, or fails `name`
 * if it could not run (err < 0) or did not end as a test program. */
void suite_count(const char *name, const char *module, int64_t err, int64_t status);
/* Starts a boot module with "MODULE seed=N pace_ns=P args", no powers and
 * no limits of its own: startup slot MEMSRV always gets the memory server's
 * endpoint (send only), the other slots grants[i] if grants is not NULL (an
 * array of ABI_STARTUP_HANDLES; HANDLE_NONE to skip). Returns a process
 * handle or -E*. */
int64_t suite_spawn(const char *module, const char *args, const struct loader_grant *grants);
/* suite_spawn with a whole spec: powers and limits as the caller set them
 * (image, size and arguments are filled in here). */
int64_t suite_spawn_spec(const char *module, const char *args, struct loader_spec *spec);
/* Waits for the process to end (pace_wait_process's budget, then kills it)
 * and closes its handle; 0 or the wait's error. */
int64_t suite_finish(int64_t h, int64_t *status);
/* suite_spawn, then suite_finish. */
int64_t suite_run(const char *module, const char *args, const struct loader_grant *grants, int64_t *status);
/* What every test program gets: slot DEVICE, a device to pin segments for
 * (suite_dma_device, RIGHT_DMA only); every other slot empty. */
void suite_grants(struct loader_grant grants[ABI_STARTUP_HANDLES]);
/* The device pinning is done for: QEMU's edu device if there is one, else
 * the host bridge (every machine has one; its bus mastering is never
 * touched). HANDLE_NONE if neither opens. */
handle_t suite_dma_device(void);

/* accounting.c: the memory the system has free, read once memsrv has
 * settled (the same figures several readings in a row). */
struct memory_snapshot {
    uint64_t pool_free; /* kernel frame pool, frames */
    uint64_t ms_free;   /* memsrv's free bytes */
    uint64_t ms_books;  /* memsrv's own books, bytes: taken from free memory as they grow, and given back by
                           their own rule (docs/memsrv.md), not when a workload ends */
    uint64_t processes;
    uint64_t quarantined; /* memsrv's bytes held back from reuse */
};
void memory_snapshot(struct memory_snapshot *s);
/* Whether a finished workload gave back every frame, byte and process. */
bool memory_returned(const struct memory_snapshot *before, const struct memory_snapshot *after);
/* Appends measured run `run`'s readings to out (used bytes so far);
 * returns the new length. */
size_t memory_append_reading(char *out, size_t len, size_t used, unsigned run, const struct memory_snapshot *before,
                             const struct memory_snapshot *after);
/* Measured runs of a warmed workload before a difference is called a leak:
 * a frame that comes and goes with the interleaving of CPUs reads exact
 * on one of them, a leak on none (accounting.c). */
#define SUITE_MEASURED_RUNS 3u

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

/* delegate.c: what stays init's, asked of init. */
/* One request to init (proto/init.h); its reply is left in m. The reply's
 * label, or the call's error. */
int64_t delegate_call(struct ipc_msg *m);
/* Takes every boot module image init can give; returns how many. */
unsigned delegate_take_modules(void);
/* The image of boot module `name`, as the suite has it mapped; -ENOENT. */
int64_t delegate_module(const char *name, const void **image, size_t *size);
/* memsrv's init-only request, made through init. */
int64_t delegate_ms_revoke(uint64_t sid);
/* Powers the machine off through init; returns only if init refused. */
int64_t delegate_poweroff(unsigned status);

/* accounting.c: every frame and byte comes back. */
void test_exit_returns_memory(void);
void test_kill(void);
/* A program of 16 spinning threads gets no more of a CPU than one of one. */
void test_fair_share(void);
void test_pool_exhaustion(void);
void test_id_pages_given_back(void);
void test_spawn_errors(void);
void test_pin_then_exit(void);
void test_exit_reclaim(void);
void test_planted_leaks(void);

/* clients.c: memsrv with several clients. */
void test_churn(void);
void test_quota(void);
void test_revoke(void);

/* restart.c: the memory server killed and faulted under its clients. */
void test_restart(bool (*selected)(const char *name));
/* restart_give_up, run only when named (it ends the machine). */
void test_restart_give_up(const char *list, size_t len);
/* bench=restart: recovery times and what the retry costs a client. */
void bench_restart(void);

/* hostile.c: adversarial programs (t_hostile, t_fuzz stateful, t_sync),
 * the cases `selected` picks from the test list. */
void test_hostile(bool (*selected)(const char *name));

#endif
