/*
 * libsys layer: the kernel's clock read in user mode. Called by programs
 * that read the time on every request (memsrv's compaction scheduling), where
 * SYS_CLOCK's kernel entry would cost more than the reading itself.
 *
 * The kernel's clock is the TSC since a reading taken at boot, converted by
 * abi_tsc_to_ns with the TSC rate it calibrated (include/abi/proc.h).
 * SYS_KINFO hands out both numbers, so the same computation here gives the
 * same nanoseconds, comparable with SYS_CLOCK's and with the kernel's
 * deadlines. The TSC runs at one rate on every CPU of the machines this
 * kernel supports, the assumption the kernel's own clock already makes.
 */
#include <abi/proc.h>
#include <libsys/syscall.h>

static uint64_t tsc_zero;
static uint64_t tsc_rate; /* ticks per microsecond; 0 until the first reading */

static inline uint64_t read_tsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

uint64_t clock_ns(void)
{
    uint64_t rate = __atomic_load_n(&tsc_rate, __ATOMIC_ACQUIRE);
    if (rate == 0) {
        /* Threads racing here store the same two values. */
        struct abi_kinfo k;
        if (sys_kinfo(&k) != 0 || k.tsc_per_us == 0)
            return sys_clock();
        tsc_zero = k.tsc_at_boot;
        __atomic_store_n(&tsc_rate, k.tsc_per_us, __ATOMIC_RELEASE);
        rate = k.tsc_per_us;
    }
    uint64_t now = read_tsc();
    return abi_tsc_to_ns(now > tsc_zero ? now - tsc_zero : 0, rate);
}
