/*
 * Architecture layer (x86-64): time. The TSC, calibrated once at boot
 * against PIT channel 2, measures time (arch_time_ns). The scheduling tick
 * comes from each CPU's local APIC timer in APIC mode (apic.c measures it
 * against the TSC), or from PIT channel 0 on ISA line 0: in legacy mode
 * (arch/apic.h), when the BSP's local APIC timer does not count, or with
 * `timer=pit` on the command line (which tests that path). Callers: kmain
 * (arch_timer_init), smp.c (the APs' ticks), everyone (arch_time_ns).
 */
#include <abi/proc.h>
#include <arch/apic.h>
#include <arch/arch.h>
#include <kernel/boot.h>
#include <kernel/console.h>

#define PIT_CH0  0x40
#define PIT_CH2  0x42
#define PIT_CMD  0x43
#define PIT_GATE 0x61
#define PIT_HZ   1193182u
#define PIT_LINE 0u

static uint64_t tsc_per_us = 1;
static uint64_t tsc_at_boot;
static unsigned tick_hz;
static bool pit_ticks;

/* Counts TSC ticks across 10 ms of PIT channel 2 (gate-controlled, polled). */
static void tsc_calibrate(void)
{
    const uint32_t ms = 10;
    uint16_t count = (uint16_t)(PIT_HZ * ms / 1000);
    uint8_t gate = inb(PIT_GATE);
    outb(PIT_GATE, (gate & ~0x02) | 0x01); /* gate on, speaker off */
    outb(PIT_CMD, 0xb0);                   /* channel 2, lo/hi, mode 0 */
    outb(PIT_CH2, count & 0xff);
    outb(PIT_CH2, count >> 8);
    uint64_t start = rdtsc();
    while (!(inb(PIT_GATE) & 0x20))
        ;
    uint64_t elapsed = rdtsc() - start;
    outb(PIT_GATE, gate);
    tsc_per_us = elapsed / (ms * 1000);
    if (tsc_per_us == 0)
        tsc_per_us = 1;
}

void arch_timer_init(unsigned hz, const char *cmdline)
{
    tsc_calibrate();
    tsc_at_boot = rdtsc();
    tick_hz = hz;
    bool want_pit = boot_option_is(cmdline, "timer", "pit");
    if (interrupts_apic_mode()) {
        if (want_pit)
            kprintf("timer: timer=pit: the PIT ticks for the BSP\n");
        else if (lapic_timer_start(hz))
            return;
        else
            kprintf("timer: the BSP's local APIC timer does not count: the PIT ticks instead\n");
    }
    uint32_t divisor = PIT_HZ / hz;
    outb(PIT_CMD, 0x34); /* channel 0, lo/hi, rate generator */
    outb(PIT_CH0, divisor & 0xff);
    outb(PIT_CH0, (divisor >> 8) & 0xff);
    pit_ticks = true;
    arch_irq_unmask(PIT_LINE);
}

bool timer_pit_ticks(void) { return pit_ticks; }

bool timer_start_this_cpu(void) { return lapic_timer_start(tick_hz); }

uint64_t arch_tsc_per_us(void) { return tsc_per_us; }

uint64_t arch_tsc_at_boot(void) { return tsc_at_boot; }

uint64_t arch_time_ns(void) { return abi_tsc_to_ns(rdtsc() - tsc_at_boot, tsc_per_us); }

uint64_t arch_clock_count_at(uint64_t ns)
{
    /* The part below a microsecond rounded up, so that the count is never
     * reached before ns is. */
    uint64_t whole, count, part = ((ns % 1000) * tsc_per_us + 999) / 1000;
    if (__builtin_mul_overflow(ns / 1000, tsc_per_us, &whole) ||
        __builtin_add_overflow(whole, tsc_at_boot + part, &count))
        return UINT64_MAX;
    return count;
}
