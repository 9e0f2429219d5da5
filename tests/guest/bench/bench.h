/*
 * In-guest benchmarks: helpers shared by b_ipc.c, b_memsrv.c and b_smp.c (boot
 * modules that init starts with `bench=NAME`): the TSC, sample statistics
 * and the `BENCH <name> <value> <unit>` lines (docs/benchmarks.md). Timings are
 * reported, never judged.
 */
#ifndef TESSERA_BENCH_H
#define TESSERA_BENCH_H

#include <common/string.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <stdint.h>

/* The TSC, after everything before it has finished. Under QEMU's
 * `-icount shift=0` it advances by one per guest instruction. */
static inline uint64_t bench_tsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
}

static inline void bench_sift(uint64_t *v, size_t r, size_t n)
{
    for (size_t c; (c = 2 * r + 1) < n; r = c) {
        if (c + 1 < n && v[c + 1] > v[c])
            c++;
        if (v[r] >= v[c])
            return;
        uint64_t t = v[r];
        v[r] = v[c];
        v[c] = t;
    }
}

/* Sorts n samples in place (heapsort: no recursion, no extra memory). */
static inline void bench_sort(uint64_t *v, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        bench_sift(v, i, n);
    for (size_t end = n; end-- > 1;) {
        uint64_t t = v[0];
        v[0] = v[end];
        v[end] = t;
        bench_sift(v, 0, end);
    }
}

struct bench_stats {
    uint64_t median, p99, min;
};

/* Sorts the samples and returns their median, 99th percentile and minimum. */
static inline struct bench_stats bench_summarise(uint64_t *v, size_t n)
{
    struct bench_stats s = { 0 };
    if (n == 0)
        return s;
    bench_sort(v, n);
    s.median = v[n / 2];
    s.p99 = v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
    s.min = v[0];
    return s;
}

static inline void bench_line(const char *name, uint64_t value, const char *unit)
{
    printf("BENCH %s %lu %s\n", name, value, unit);
}

/* The median as `name` and the 99th percentile as `name_p99`. */
static inline void bench_lines(const char *name, struct bench_stats s, const char *unit)
{
    char p99[64];
    snprintf(p99, sizeof(p99), "%s_p99", name);
    bench_line(name, s.median, unit);
    bench_line(p99, s.p99, unit);
}

/* TSC ticks per microsecond (the kernel's calibration against the PIT). */
static inline uint64_t bench_tsc_per_us(void)
{
    struct abi_kinfo k = { 0 };
    if (sys_kinfo(&k) < 0 || k.tsc_per_us == 0)
        return 0;
    return k.tsc_per_us;
}

/* Megabytes (10^6 bytes) per second for `bytes` in `ticks` of the TSC. */
static inline uint64_t bench_mb_per_s(uint64_t bytes, uint64_t ticks, uint64_t tsc_per_us)
{
    if (ticks == 0)
        return 0;
    /* bytes / (ticks / tsc_per_us) us = bytes * tsc_per_us / ticks MB/s */
    return (uint64_t)(((unsigned __int128)bytes * tsc_per_us) / ticks);
}

/* Times `warmup + n` calls of `label` (no segment, no payload) to a server
 * that answers each with label 0; the last n go into samples[]. Returns 0,
 * or the first error (the call's, or the server's label). */
static inline int64_t bench_calls(handle_t ep, uint64_t label, unsigned warmup, unsigned n, uint64_t *samples,
                                  struct bench_stats *out)
{
    for (unsigned i = 0; i < warmup + n; i++) {
        struct ipc_msg m = { .label = label, .seg = HANDLE_NONE };
        uint64_t t0 = bench_tsc();
        int64_t r = sys_ipc_call(ep, &m, TIMEOUT_FOREVER);
        uint64_t t1 = bench_tsc();
        if (r != 0 || m.label != 0)
            return r ? r : (int64_t)m.label;
        if (i >= warmup)
            samples[i - warmup] = t1 - t0;
    }
    *out = bench_summarise(samples, n);
    return 0;
}

/* The main of a benchmark that runs as a server and a client on the one
 * endpoint in startup slot SERVICE (suite.c, run_benchmarks): "server" in
 * the arguments runs `server`, else `client`. */
static inline int bench_pair_main(const char *name, int argc, char **argv, int (*server)(handle_t ep),
                                  int (*client)(handle_t ep))
{
    handle_t ep = startup_handle(ABI_STARTUP_SERVICE);
    if (ep == HANDLE_NONE) {
        printf("%s: no endpoint in startup handle SERVICE\n", name);
        return 1;
    }
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "server") == 0)
            return server(ep);
    return client(ep);
}

#endif
