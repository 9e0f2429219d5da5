/*
 * Architecture layer (x86-64): the interrupt controllers, for the other
 * arch files. interrupts.c decides at boot which ones run the machine:
 *
 *   APIC mode    every CPU's local APIC (apic.c: its timer is the tick,
 *                IPIs, EOI) and the I/O APICs of the MADT (ioapic.c: the
 *                ISA lines, routed to the BSP); the 8259s stay masked.
 *   legacy mode  the 8259 pair (pic.c) and the PIT's IRQ 0 as the tick,
 *                one CPU: without a usable MADT, or with `apic=off`.
 *
 * Generic code sees neither: it calls arch_irq_mask/unmask/eoi by ISA line.
 */
#ifndef ARCH_APIC_H
#define ARCH_APIC_H

#include <stdbool.h>
#include <stdint.h>
#include <common/acpi.h>
#include <kernel/multiboot.h>

/* interrupts.c: the choice, made once by arch_interrupts_init. */
bool interrupts_apic_mode(void);
/* The validated MADT, in APIC mode only (0 otherwise). */
const struct acpi_madt *interrupts_madt(void);

/* ---- the local APIC (apic.c), xAPIC registers through ioremap ---- */

/* Whether this CPU has a local APIC (CPUID), and where its registers are
 * (IA32_APIC_BASE). */
bool lapic_present(void);
/* Whether IA32_APIC_BASE says a local APIC is enabled (the MSR exists on
 * every x86-64 CPU, and reads without the bit where no APIC answers). */
bool lapic_enabled_by_msr(void);
/* Virtual wire mode, what firmware sets up for the 8259s: the APIC
 * enabled, LINT0 ExtINT (the 8259s' output), LINT1 NMI; mapped first. */
void lapic_virtual_wire(void);
uint64_t lapic_base_address(void);
/* Maps the registers at phys (the BSP, once); false if that fails. */
bool lapic_map(uint64_t phys);
/* Sets up the calling CPU's local APIC: enabled, spurious vector, error
 * vector, LINT0 masked, LINT1 as NMI where the MADT says so, task
 * priority 0. Every CPU, before it takes an interrupt. */
void lapic_init_this_cpu(const struct acpi_madt *madt, uint32_t acpi_uid);
uint32_t lapic_id(void);
void lapic_eoi(void);
/* Measures the timer against the TSC and starts it periodic at hz on the
 * calling CPU (VECTOR_LAPIC_TIMER); the count goes into this_cpu(). False,
 * with the timer stopped and a count of 0, when it counts too slowly to
 * give that rate. */
bool lapic_timer_start(unsigned hz);

/* An AP's tick, at the rate the BSP's runs (timer.c); false if its local
 * APIC timer does not count (the CPU then runs without one). */
bool timer_start_this_cpu(void);
/* Whether the PIT on ISA line 0 is the BSP's tick: in legacy mode, with
 * `timer=pit`, or when the BSP's local APIC timer does not count. */
bool timer_pit_ticks(void);

/* Interprocessor interrupts. Each waits (bounded) for the previous one to
 * leave the local APIC, then sends; false if the APIC stayed busy. */
bool lapic_send_ipi(uint32_t apic_id, uint8_t vector);
bool lapic_send_ipi_others(uint8_t vector); /* shorthand: all excluding self */
bool lapic_send_nmi_others(void);           /* a panic stops the other CPUs */
/* What this CPU's local APIC holds for the kernel's vectors (32-63: device
 * lines, timer, IPIs), read in place: for the report on a CPU that does not
 * answer (smp.c). */
struct lapic_state {
    uint32_t isr, irr; /* bit v - 32: vector v in service, requested */
    uint32_t tpr;
    uint32_t lvt_timer, timer_count;
};
void lapic_read_state(struct lapic_state *out);
bool lapic_send_nmi(uint32_t apic_id); /* asks a CPU that ignores IPIs where it is */
bool lapic_send_init(uint32_t apic_id);
bool lapic_send_startup(uint32_t apic_id, uint8_t page);
/* Reads and clears the error status (VECTOR_LAPIC_ERROR). */
uint32_t lapic_error_status(void);

/* ---- the I/O APICs (ioapic.c) ---- */

/* Maps every I/O APIC of the MADT, masks all its inputs, and programs the
 * ISA lines (overrides applied; lines firmware made level-triggered for
 * PCI, as the ELCR says, level and active low) to VECTOR_IRQ_BASE + line
 * at the BSP, masked. False (with a message) when an I/O APIC cannot be
 * used; the caller then stays in legacy mode. */
bool ioapic_init(const struct acpi_madt *madt, uint32_t bsp_apic_id);
void ioapic_mask_line(unsigned line);
void ioapic_unmask_line(unsigned line);
/* Whether an ISA line reaches some I/O APIC input. */
bool ioapic_line_routed(unsigned line);

/* ---- the 8259 pair (pic.c) ---- */

/* Remaps them to VECTOR_IRQ_BASE and masks every line. */
void pic_init(void);
void pic_mask(unsigned line);
void pic_unmask(unsigned line);
void pic_eoi(unsigned line);
/* The ELCR: the lines firmware set level-triggered (PCI). */
uint16_t pic_level_triggered_lines(void);

#endif
