/*
 * In-guest suite: how long a wait may last. No wait in the suite is a fixed
 * time: a slow emulator or a busy host stretches every step, and an
 * emulator's clock may run ahead of its work. So the suite times a piece of
 * reference work (system calls and arithmetic, nothing that depends on the
 * memory server) on the guest's own clock at start, and gives any wait a
 * budget of PACE_HANG_UNITS such units, far more than the heaviest test
 * needs. When a budget runs out the reference is timed again, and if the
 * machine has slowed since (another emulator started on the host), the
 * budget stretches to match before the wait is called a hang. Test
 * programs get the unit as `pace_ns=` in their arguments (libsys/test.h).
 */
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include "suite.h"

/* Reference work: a few milliseconds under QEMU (TCG) on the build machines. */
#define REFERENCE_CALLS  1000
#define REFERENCE_ROUNDS 100000

static uint64_t unit_ns;
static volatile uint64_t pace_sink; /* keeps the arithmetic from being optimized out */

static uint64_t time_reference(void)
{
    uint64_t start = sys_clock(), x = start | 1;
    for (unsigned i = 0; i < REFERENCE_CALLS; i++) {
        struct abi_kinfo k;
        sys_kinfo(&k);
        for (unsigned j = 0; j < REFERENCE_ROUNDS / REFERENCE_CALLS; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
    }
    pace_sink = x;
    uint64_t took = sys_clock() - start;
    return took ? took : 1;
}

/* The median of a few timings: one may catch memsrv compacting in the
 * background, or the host busy for a moment. */
static uint64_t time_reference_median(void)
{
    enum { SAMPLES = 5 };
    uint64_t t[SAMPLES];
    for (unsigned i = 0; i < SAMPLES; i++) {
        uint64_t v = time_reference();
        unsigned k = i;
        for (; k > 0 && t[k - 1] > v; k--)
            t[k] = t[k - 1];
        t[k] = v;
    }
    return t[SAMPLES / 2];
}

void pace_calibrate(void)
{
    unit_ns = time_reference_median();
    printf("suite: pace: reference work takes %lu us; a wait may take %lu s\n", unit_ns / 1000,
           (uint64_t)(unit_ns * PACE_HANG_UNITS / 1000000000ull));
}

uint64_t pace_unit_ns(void) { return unit_ns; }

/* Waits with `wait(timeout)` until it stops saying -ETIMEDOUT or the budget
 * is spent, re-timing the reference each time the budget runs out. */
static int64_t within_budget(int64_t (*wait)(void *, uint64_t), void *arg)
{
    uint64_t start = sys_clock(), budget = unit_ns * PACE_HANG_UNITS;
    for (;;) {
        uint64_t spent = sys_clock() - start;
        int64_t err = wait(arg, budget > spent ? budget - spent : 1);
        if (err != -ETIMEDOUT)
            return err;
        uint64_t now_unit = time_reference_median();
        uint64_t stretched = (now_unit > unit_ns ? now_unit : unit_ns) * PACE_HANG_UNITS;
        if (sys_clock() - start >= stretched)
            return -ETIMEDOUT;
        printf("suite: pace: the machine slowed (reference %lu -> %lu us): waiting longer\n", unit_ns / 1000,
               now_unit / 1000);
        budget = stretched;
    }
}

struct process_wait {
    handle_t proc;
    int64_t *status;
};

static int64_t wait_process(void *arg, uint64_t timeout)
{
    struct process_wait *w = arg;
    return sys_proc_wait(w->proc, timeout, w->status);
}

int64_t pace_wait_process(handle_t proc, int64_t *status)
{
    struct process_wait w = { proc, status };
    return within_budget(wait_process, &w);
}

struct receive {
    handle_t ep;
    struct ipc_msg *m;
};

static int64_t receive(void *arg, uint64_t timeout)
{
    struct receive *r = arg;
    return sys_ipc_recv(r->ep, r->m, timeout);
}

int64_t pace_recv(handle_t ep, struct ipc_msg *m)
{
    struct receive r = { ep, m };
    return within_budget(receive, &r);
}
