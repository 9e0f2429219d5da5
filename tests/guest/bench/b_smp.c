/*
 * In-guest benchmark `bench=smp`: what several CPUs cost and give, in TSC
 * cycles. init starts this program twice on one fresh endpoint (startup
 * handle SERVICE): "server" answers calls and moves itself to the CPU a
 * L_GO_TO message names; "client" measures and prints `BENCH` lines:
 *   - smp_call_same_cpu / smp_call_cross_cpu: a call and its reply with
 *     the server on the client's CPU, and on another one (the reply then
 *     wakes the client by IPI, or finds it spinning in the kernel lock);
 *   - smp_move_4k_shootdown_N: MS_MOVE of a 4 KiB segment while N other
 *     CPUs run threads of the client's process (so the kernel must flush
 *     their TLBs: one IPI round each move), N = 0, 1, CPUs - 1;
 *   - smp_churn_threads_N: 4 KiB ms_alloc + ms_free pairs per second with
 *     N client threads at once, one per CPU (memsrv has one service
 *     thread, so this measures how far its queue lets CPUs overlap).
 * With one CPU only the same-CPU and N = 0 figures are printed. After
 * each churn run, the kernel lock's share: `smp_churn_threads_N_lock_waits`
 * (per 1000 acquisitions, how many had to wait) and `..._lock_wait_ns`
 * (the mean wait of those, in ns).
 */
#include <abi/ipc.h>
#include <abi/proc.h>
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>

#include "bench.h"

enum label {
    L_BOUNCE = 1, /* reply at once */
    L_GO_TO,      /* w[0]: the CPU to serve from */
    L_QUIT,
};

#define WARMUP      500u
#define N_CALLS     10000u
#define N_MOVES     2000u
#define CHURN_PAIRS 2000u
#define WORKERS_MAX 8
#define STACK_SIZE  16384

static uint64_t samples[N_CALLS];
static uint8_t stacks[WORKERS_MAX][STACK_SIZE] __attribute__((aligned(16)));
static bool failed;

static void fail(const char *what, int64_t err)
{
    printf("b_smp: %s failed: %s\n", what, sys_strerror(err));
    failed = true;
}

static int server(handle_t ep)
{
    struct ipc_msg m = { .seg = HANDLE_NONE };
    int64_t r = sys_ipc_recv(ep, &m, TIMEOUT_FOREVER);
    while (r == 0) {
        uint64_t label = m.label;
        m.label = 0;
        if (label == L_GO_TO)
            m.label = (uint64_t)sys_thread_affinity(HANDLE_NONE, m.w[0]);
        else if (label != L_BOUNCE && label != L_QUIT)
            m.label = (uint64_t)-EINVAL;
        m.len = 0;
        m.flags = 0;
        if (label == L_QUIT) {
            sys_ipc_reply(&m);
            return 0;
        }
        r = sys_ipc_reply_recv(ep, &m, TIMEOUT_FOREVER);
    }
    printf("b_smp server: receive failed: %s\n", sys_strerror(r));
    return 1;
}

static unsigned online_cpus(void)
{
    struct abi_kinfo k = { 0 };
    sys_kinfo(&k);
    return k.ncpus_online ? (unsigned)k.ncpus_online : 1;
}

static bool server_to(handle_t ep, uint64_t cpu)
{
    struct ipc_msg m = { .label = L_GO_TO, .seg = HANDLE_NONE, .w = { cpu } };
    int64_t r = sys_ipc_call(ep, &m, TIMEOUT_FOREVER);
    if (r != 0 || (int64_t)m.label < 0) {
        fail("moving the server", r ? r : (int64_t)m.label);
        return false;
    }
    return true;
}

static bool measure_calls(handle_t ep, struct bench_stats *out)
{
    int64_t err = bench_calls(ep, L_BOUNCE, WARMUP, N_CALLS, samples, out);
    if (err)
        fail("call", err);
    return err == 0;
}

/* ---- threads that keep the address space live on other CPUs ------------ */

static volatile bool spin_stop;
static volatile unsigned spinning;
static volatile uint64_t spin_sink[WORKERS_MAX * 8];

static void spinner(uint64_t cpu)
{
    sys_thread_affinity(HANDLE_NONE, cpu);
    __atomic_add_fetch(&spinning, 1, __ATOMIC_RELAXED);
    while (!spin_stop)
        spin_sink[cpu * 8]++; /* user memory: the CPU keeps this space loaded */
    sys_thread_exit();
}

static void join(int64_t th)
{
    if (th < 0)
        return;
    sys_thread_wait((handle_t)th, TIMEOUT_FOREVER);
    sys_handle_close((handle_t)th);
}

static bool measure_moves(unsigned others, struct bench_stats *out)
{
    int64_t th[WORKERS_MAX];
    spin_stop = false;
    spinning = 0;
    for (unsigned i = 0; i < others; i++)
        th[i] = sys_thread_create(spinner, stacks[i] + STACK_SIZE, 1 + i);
    while (spinning < others)
        sys_yield();
    struct ms_segment seg;
    int64_t r = ms_alloc(4096, 0, 0, 0, &seg);
    bool ok = r == 0;
    if (!ok)
        fail("ms_alloc", r);
    for (unsigned i = 0; ok && i < WARMUP + N_MOVES; i++) {
        uint64_t t0 = bench_tsc();
        r = ms_move(seg.sid);
        uint64_t t1 = bench_tsc();
        if (r != 0) {
            fail("ms_move", r);
            ok = false;
        }
        if (i >= WARMUP)
            samples[i - WARMUP] = t1 - t0;
    }
    if (seg.handle != HANDLE_NONE && r == 0)
        ms_free(seg.handle);
    spin_stop = true;
    for (unsigned i = 0; i < others; i++)
        join(th[i]);
    if (ok)
        *out = bench_summarise(samples, N_MOVES);
    return ok;
}

/* ---- allocation churn from several CPUs -------------------------------- */

static volatile int64_t churn_error;

static void churner(uint64_t cpu)
{
    sys_thread_affinity(HANDLE_NONE, cpu);
    for (unsigned i = 0; i < CHURN_PAIRS && churn_error == 0; i++) {
        struct ms_segment seg;
        int64_t r = ms_alloc(4096, 0, 0, 0, &seg);
        if (r == 0)
            r = ms_free(seg.handle);
        if (r != 0)
            churn_error = r;
    }
    sys_thread_exit();
}

static bool measure_churn(unsigned nthreads, uint64_t tsc_per_us, uint64_t *pairs_per_s)
{
    int64_t th[WORKERS_MAX];
    churn_error = 0;
    uint64_t t0 = bench_tsc();
    for (unsigned i = 0; i < nthreads; i++)
        th[i] = sys_thread_create(churner, stacks[i] + STACK_SIZE, i);
    for (unsigned i = 0; i < nthreads; i++)
        join(th[i]);
    uint64_t ticks = bench_tsc() - t0;
    if (churn_error != 0) {
        fail("churn", churn_error);
        return false;
    }
    uint64_t us = tsc_per_us ? ticks / tsc_per_us : 0;
    *pairs_per_s = us ? (uint64_t)nthreads * CHURN_PAIRS * 1000000ull / us : 0;
    return true;
}

static int client(handle_t ep)
{
    unsigned ncpus = online_cpus();
    uint64_t tsc_per_us = bench_tsc_per_us();
    printf("b_smp: %u CPUs, TSC %lu per us; medians of %u calls, %u moves; %u churn pairs a thread\n", ncpus,
           tsc_per_us, N_CALLS, N_MOVES, CHURN_PAIRS);
    struct bench_stats s;
    char name[48];

    sys_thread_affinity(HANDLE_NONE, 0);
    if (server_to(ep, 0) && measure_calls(ep, &s))
        bench_lines("smp_call_same_cpu", s, "cycles");
    if (ncpus > 1 && server_to(ep, 1) && measure_calls(ep, &s))
        bench_lines("smp_call_cross_cpu", s, "cycles");

    unsigned others_max = ncpus - 1 < WORKERS_MAX ? ncpus - 1 : WORKERS_MAX;
    const unsigned others_runs[] = { 0, 1, others_max };
    for (unsigned i = 0; i < 3; i++) {
        unsigned others = others_runs[i];
        if (others > others_max || (i > 0 && others <= others_runs[i - 1]))
            continue;
        if (!measure_moves(others, &s))
            break;
        snprintf(name, sizeof(name), "smp_move_4k_shootdown_%u", others);
        bench_lines(name, s, "cycles");
    }
    sys_thread_affinity(HANDLE_NONE, ABI_CPU_ANY);

    unsigned threads_max = ncpus < WORKERS_MAX ? ncpus : WORKERS_MAX;
    for (unsigned n = 1; n <= threads_max; n *= 2) {
        uint64_t rate;
        struct abi_kinfo before = { 0 }, after = { 0 };
        sys_kinfo(&before);
        if (!measure_churn(n, tsc_per_us, &rate))
            break;
        sys_kinfo(&after);
        uint64_t taken = after.lock_acquired - before.lock_acquired;
        uint64_t waits = after.lock_contended - before.lock_contended;
        snprintf(name, sizeof(name), "smp_churn_threads_%u", n);
        bench_line(name, rate, "pairs/s");
        snprintf(name, sizeof(name), "smp_churn_threads_%u_lock_waits", n);
        bench_line(name, taken ? waits * 1000 / taken : 0, "per-1000");
        snprintf(name, sizeof(name), "smp_churn_threads_%u_lock_wait_ns", n);
        bench_line(name, waits ? (after.lock_wait_ns - before.lock_wait_ns) / waits : 0, "ns");
    }

    struct ipc_msg quit = { .label = L_QUIT, .seg = HANDLE_NONE };
    sys_ipc_call(ep, &quit, TIMEOUT_FOREVER);
    return failed ? 1 : 0;
}

int main(int argc, char **argv) { return bench_pair_main("b_smp", argc, argv, server, client); }
