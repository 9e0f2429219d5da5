/*
 * Architecture layer (x86-64): the legacy 8259 PICs and the 8254 PIT. The PIT
 * raises IRQ 0 at the scheduling rate; the TSC, calibrated against PIT
 * channel 2 once at boot, gives fine-grained time. Other IRQs stay masked
 * until a driver unmasks them (arch_irq_unmask: the serial console).
 */
#include <arch/arch.h>

#define PIC1_CMD 0x20
#define PIC1_DATA 0x21
#define PIC2_CMD 0xa0
#define PIC2_DATA 0xa1
#define PIT_CH0 0x40
#define PIT_CH2 0x42
#define PIT_CMD 0x43
#define PIT_GATE 0x61
#define PIT_HZ 1193182u

static uint64_t tsc_per_us = 1;
static uint64_t tsc_at_boot;

static void pic_init(void)
{
    outb(PIC1_CMD, 0x11);
    outb(PIC2_CMD, 0x11);
    outb(PIC1_DATA, VECTOR_IRQ_BASE);
    outb(PIC2_DATA, VECTOR_IRQ_BASE + 8);
    outb(PIC1_DATA, 4);
    outb(PIC2_DATA, 2);
    outb(PIC1_DATA, 0x01);
    outb(PIC2_DATA, 0x01);
    outb(PIC1_DATA, 0xfe); /* only IRQ 0 */
    outb(PIC2_DATA, 0xff);
}

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

void arch_timer_init(unsigned hz)
{
    pic_init();
    tsc_calibrate();
    tsc_at_boot = rdtsc();
    uint32_t divisor = PIT_HZ / hz;
    outb(PIT_CMD, 0x34); /* channel 0, lo/hi, rate generator */
    outb(PIT_CH0, divisor & 0xff);
    outb(PIT_CH0, (divisor >> 8) & 0xff);
}

uint64_t arch_tsc_per_us(void) { return tsc_per_us; }

uint64_t arch_time_ns(void)
{
    uint64_t ticks = rdtsc() - tsc_at_boot;
    /* ticks * 1000 / tsc_per_us without overflowing for centuries */
    return (ticks / tsc_per_us) * 1000 + (ticks % tsc_per_us) * 1000 / tsc_per_us;
}

void arch_irq_unmask(unsigned irq)
{
    if (irq < 8) {
        outb(PIC1_DATA, inb(PIC1_DATA) & (uint8_t)~(1u << irq));
    } else {
        outb(PIC1_DATA, inb(PIC1_DATA) & (uint8_t)~(1u << 2));
        outb(PIC2_DATA, inb(PIC2_DATA) & (uint8_t)~(1u << (irq - 8)));
    }
}

void arch_irq_eoi(unsigned irq)
{
    if (irq >= 8)
        outb(PIC2_CMD, 0x20);
    outb(PIC1_CMD, 0x20);
}
