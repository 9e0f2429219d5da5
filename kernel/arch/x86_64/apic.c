/*
 * Architecture layer (x86-64): the local APIC of each CPU, in xAPIC mode
 * (registers in one uncached page, the same physical page on every CPU,
 * each CPU seeing its own). x2APIC is not used: QEMU 7.2's TCG does not
 * offer it, and xAPIC works wherever x2APIC does. Callers: interrupts.c
 * (set-up, EOI), timer.c (the tick), smp.c (IPIs, INIT, SIPI), trap.c (the
 * error vector).
 *
 * The timer runs periodic at the scheduler's rate on every CPU. Its input
 * clock is not architectural, so each CPU measures it against the TSC
 * (itself calibrated against the PIT once, timer.c): the tick then agrees
 * with arch_time_ns, the clock timeouts use, even where the PIT and the
 * TSC disagree (Bochs on a busy host).
 */
#include <arch/apic.h>
#include <arch/arch.h>
#include <arch/smp.h>
#include <kernel/console.h>
#include <kernel/ioremap.h>

#define LAPIC_ID            0x020
#define LAPIC_VERSION       0x030
#define LAPIC_TPR           0x080
#define LAPIC_EOI           0x0b0
#define LAPIC_SVR           0x0f0
#define LAPIC_ESR           0x280
#define LAPIC_ICR_LOW       0x300
#define LAPIC_ICR_HIGH      0x310
#define LAPIC_LVT_TIMER     0x320
#define LAPIC_LVT_THERMAL   0x330
#define LAPIC_LVT_PERF      0x340
#define LAPIC_LVT_LINT0     0x350
#define LAPIC_LVT_LINT1     0x360
#define LAPIC_LVT_ERROR     0x370
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_CURRENT 0x390
#define LAPIC_TIMER_DIVIDE  0x3e0

#define SVR_ENABLE         (1u << 8)
#define LVT_MASKED         (1u << 16)
#define LVT_TIMER_PERIODIC (1u << 17)
#define LVT_NMI            (4u << 8)
#define LVT_EXTINT         (7u << 8)
#define LVT_ACTIVE_LOW     (1u << 13)
#define LVT_LEVEL          (1u << 15)
#define TIMER_DIVIDE_16    0x3u

#define ICR_FIXED        (0u << 8)
#define ICR_NMI          (4u << 8)
#define ICR_INIT         (5u << 8)
#define ICR_STARTUP      (6u << 8)
#define ICR_PENDING      (1u << 12)
#define ICR_ASSERT       (1u << 14)
#define ICR_ALL_BUT_SELF (3u << 18)

#define MSR_APIC_BASE     0x1bu
#define APIC_BASE_ENABLE  (1ull << 11)
#define APIC_BASE_X2APIC  (1ull << 10)
#define APIC_BASE_ADDRESS 0xffffff000ull

/* How long the timer runs against the TSC when it is measured, and the
 * fewest counts a tick may take. */
#define TIMER_CALIBRATION_US 10000u
#define TIMER_MIN_COUNTS     16u
/* A local APIC takes a few bus cycles to send an IPI; longer is a fault. */
#define ICR_IDLE_TIMEOUT_NS 100000000ull

static volatile uint32_t *regs;

static uint32_t lapic_read(unsigned reg) { return regs[reg / 4]; }
static void lapic_write(unsigned reg, uint32_t value) { regs[reg / 4] = value; }

bool lapic_map(uint64_t phys)
{
    void *va;
    int err = ioremap(phys, PAGE_SIZE, IOREMAP_MMIO, &va);
    if (err) {
        kprintf("apic: cannot map the local APIC at %#lx (error %d)\n", phys, err);
        return false;
    }
    regs = va;
    return true;
}

uint32_t lapic_id(void) { return lapic_read(LAPIC_ID) >> 24; }

#define LAPIC_ISR_32_63 0x110
#define LAPIC_IRR_32_63 0x210

void lapic_read_state(struct lapic_state *out)
{
    out->isr = lapic_read(LAPIC_ISR_32_63);
    out->irr = lapic_read(LAPIC_IRR_32_63);
    out->tpr = lapic_read(LAPIC_TPR);
    out->lvt_timer = lapic_read(LAPIC_LVT_TIMER);
    out->timer_count = lapic_read(LAPIC_TIMER_CURRENT);
}

void lapic_eoi(void) { lapic_write(LAPIC_EOI, 0); }

/* Firmware may hand over a CPU in x2APIC mode, whose registers are MSRs;
 * leaving it takes the APIC through its disabled state (SDM 10.12.5). */
static void xapic_enable(void)
{
    uint64_t base = rdmsr(MSR_APIC_BASE);
    if (base & APIC_BASE_X2APIC) {
        wrmsr(MSR_APIC_BASE, base & ~(APIC_BASE_ENABLE | APIC_BASE_X2APIC));
        base &= ~(APIC_BASE_ENABLE | APIC_BASE_X2APIC);
    }
    if (!(base & APIC_BASE_ENABLE))
        wrmsr(MSR_APIC_BASE, base | APIC_BASE_ENABLE);
}

static uint32_t lint_entry(const struct acpi_madt *madt, uint32_t acpi_uid, unsigned lint)
{
    for (unsigned i = 0; madt && i < madt->nnmis; i++) {
        const struct acpi_lapic_nmi *n = &madt->nmis[i];
        if (n->lint != lint || (n->uid != acpi_uid && n->uid != 0xffffffffu))
            continue;
        uint32_t v = LVT_NMI;
        if ((n->flags & ACPI_MPS_POLARITY_MASK) == 3)
            v |= LVT_ACTIVE_LOW;
        if (((n->flags & ACPI_MPS_TRIGGER_MASK) >> 2) == 3)
            v |= LVT_LEVEL;
        return v;
    }
    return LVT_MASKED; /* LINT0 carries the 8259s' output: never used here */
}

void lapic_init_this_cpu(const struct acpi_madt *madt, uint32_t acpi_uid)
{
    xapic_enable();
    unsigned max_lvt = (lapic_read(LAPIC_VERSION) >> 16) & 0xff;
    lapic_write(LAPIC_SVR, SVR_ENABLE | VECTOR_SPURIOUS);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | VECTOR_LAPIC_TIMER);
    if (max_lvt >= 4)
        lapic_write(LAPIC_LVT_PERF, LVT_MASKED);
    if (max_lvt >= 5)
        lapic_write(LAPIC_LVT_THERMAL, LVT_MASKED);
    lapic_write(LAPIC_LVT_LINT0, lint_entry(madt, acpi_uid, 0));
    lapic_write(LAPIC_LVT_LINT1, lint_entry(madt, acpi_uid, 1));
    lapic_write(LAPIC_LVT_ERROR, VECTOR_LAPIC_ERROR);
    /* The error register latches on write: two writes clear it. */
    lapic_write(LAPIC_ESR, 0);
    lapic_write(LAPIC_ESR, 0);
    lapic_write(LAPIC_TPR, 0);
}

uint32_t lapic_error_status(void)
{
    lapic_write(LAPIC_ESR, 0);
    return lapic_read(LAPIC_ESR);
}

bool lapic_timer_start(unsigned hz)
{
    lapic_write(LAPIC_TIMER_DIVIDE, TIMER_DIVIDE_16);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | VECTOR_LAPIC_TIMER);
    uint64_t tsc_per_us = arch_tsc_per_us();
    lapic_write(LAPIC_TIMER_INITIAL, 0xffffffffu);
    uint64_t start = rdtsc();
    while (rdtsc() - start < tsc_per_us * TIMER_CALIBRATION_US)
        __asm__ volatile("pause");
    uint32_t counted = 0xffffffffu - lapic_read(LAPIC_TIMER_CURRENT);
    uint64_t elapsed = rdtsc() - start;
    lapic_write(LAPIC_TIMER_INITIAL, 0);
    /* counted timer units in elapsed TSC ticks; a tick is 10^6 / hz us. */
    uint64_t per_tick = (uint64_t)counted * tsc_per_us * (1000000u / hz) / (elapsed ? elapsed : 1);
    if (per_tick < TIMER_MIN_COUNTS) {
        /* A timer that barely counts would interrupt without pause. */
        this_cpu()->lapic_ticks_per_tick = 0;
        return false;
    }
    if (per_tick > 0xffffffffu)
        per_tick = 0xffffffffu;
    this_cpu()->lapic_ticks_per_tick = (uint32_t)per_tick;
    lapic_write(LAPIC_LVT_TIMER, LVT_TIMER_PERIODIC | VECTOR_LAPIC_TIMER);
    lapic_write(LAPIC_TIMER_INITIAL, (uint32_t)per_tick);
    return true;
}

static bool icr_wait_idle(void)
{
    if (!(lapic_read(LAPIC_ICR_LOW) & ICR_PENDING))
        return true;
    uint64_t deadline = arch_time_ns() + ICR_IDLE_TIMEOUT_NS;
    while (lapic_read(LAPIC_ICR_LOW) & ICR_PENDING) {
        if (arch_time_ns() > deadline)
            return false;
        __asm__ volatile("pause");
    }
    return true;
}

static bool icr_send(uint32_t apic_id, uint32_t low)
{
    if (!icr_wait_idle())
        return false;
    lapic_write(LAPIC_ICR_HIGH, apic_id << 24);
    lapic_write(LAPIC_ICR_LOW, low); /* this write sends */
    return true;
}

bool lapic_send_ipi(uint32_t apic_id, uint8_t vector) { return icr_send(apic_id, ICR_FIXED | ICR_ASSERT | vector); }

bool lapic_send_ipi_others(uint8_t vector) { return icr_send(0, ICR_ALL_BUT_SELF | ICR_FIXED | ICR_ASSERT | vector); }

bool lapic_send_nmi_others(void) { return icr_send(0, ICR_ALL_BUT_SELF | ICR_NMI | ICR_ASSERT); }

bool lapic_send_nmi(uint32_t apic_id) { return icr_send(apic_id, ICR_NMI | ICR_ASSERT); }

bool lapic_send_init(uint32_t apic_id) { return icr_send(apic_id, ICR_INIT | ICR_ASSERT); }

bool lapic_send_startup(uint32_t apic_id, uint8_t page) { return icr_send(apic_id, ICR_STARTUP | ICR_ASSERT | page); }

bool lapic_present(void)
{
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    return (d >> 9) & 1;
}

bool lapic_enabled_by_msr(void) { return rdmsr(MSR_APIC_BASE) & APIC_BASE_ENABLE; }

void lapic_virtual_wire(void)
{
    xapic_enable();
    lapic_write(LAPIC_SVR, SVR_ENABLE | VECTOR_SPURIOUS);
    lapic_write(LAPIC_LVT_LINT0, LVT_EXTINT);
    lapic_write(LAPIC_LVT_LINT1, LVT_NMI);
}

uint64_t lapic_base_address(void) { return rdmsr(MSR_APIC_BASE) & APIC_BASE_ADDRESS; }
