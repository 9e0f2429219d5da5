/*
 * Architecture layer (x86-64): where every exception and interrupt lands
 * (isr.asm calls trap_dispatch). It decodes the vector and hands over to
 * generic code: the scheduler's tick (on the BSP), the process layer for
 * user faults, the exception table for faults in user copies, panic for
 * other faults in the kernel; the IPI handlers (smp.c) and the per-CPU
 * tick count on every CPU.
 */
#include <arch/apic.h>
#include <arch/arch.h>
#include <kernel/console.h>
#include <kernel/iommu.h>
#include <kernel/irq.h>
#include <kernel/sched.h>
#include <kernel/proc.h>

static const char *const exception_names[32] = {
    "divide error", "debug", "NMI", "breakpoint", "overflow", "bound range",
    "invalid opcode", "device not available", "double fault", "coprocessor overrun",
    "invalid TSS", "segment not present", "stack fault", "general protection",
    "page fault", "reserved", "x87 floating point", "alignment check",
    "machine check", "SIMD floating point", "virtualization", "control protection",
    "reserved", "reserved", "reserved", "reserved", "reserved", "reserved",
    "hypervisor injection", "VMM communication", "security", "reserved",
};

const char *trap_vector_name(uint64_t vector)
{
    if (vector < 32)
        return exception_names[vector];
    if (vector == VECTOR_SYSCALL)
        return "system call";
    return "interrupt";
}

void trap_print_frame(const struct trap_frame *f)
{
    kprintf("  vector %lu (%s) error %#lx\n", f->vector, trap_vector_name(f->vector), f->error);
    kprintf("  rip %#018lx cs %#lx rflags %#lx rsp %#018lx ss %#lx cr2 %#018lx\n",
            f->rip, f->cs, f->rflags, f->rsp, f->ss, read_cr2());
    kprintf("  rax %#018lx rbx %#018lx rcx %#018lx rdx %#018lx\n", f->rax, f->rbx, f->rcx, f->rdx);
    kprintf("  rsi %#018lx rdi %#018lx rbp %#018lx r8  %#018lx\n", f->rsi, f->rdi, f->rbp, f->r8);
    kprintf("  r9  %#018lx r10 %#018lx r11 %#018lx r12 %#018lx\n", f->r9, f->r10, f->r11, f->r12);
    kprintf("  r13 %#018lx r14 %#018lx r15 %#018lx\n", f->r13, f->r14, f->r15);
}

struct ex_table_entry {
    uint64_t start, end, fixup;
};
extern const struct ex_table_entry ex_table_start[], ex_table_end[];

bool arch_fixup_fault(struct trap_frame *f)
{
    for (const struct ex_table_entry *e = ex_table_start; e < ex_table_end; e++) {
        if (f->rip >= e->start && f->rip < e->end) {
            f->rip = e->fixup;
            return true;
        }
    }
    return false;
}

#define VECTOR_PAGE_FAULT 14

void trap_entry_window_fault(struct trap_frame *f);
void trap_entry_window_fault(struct trap_frame *f)
{
    kprintf("PANIC: kernel fault with the user's GS base (the entry or exit path): %s at %#lx\n",
            trap_vector_name(f->vector), f->rip);
    trap_print_frame(f);
    panic("unrecoverable fault in the kernel's entry path");
}

/* An ISA line's interrupt, from either controller (arch/apic.h). Only the
 * BSP receives them: both controllers deliver there. */
static void device_line(struct trap_frame *f, unsigned line)
{
    bool apic = interrupts_apic_mode();
    if (line == 0 && timer_pit_ticks()) {
        /* The PIT: the BSP's tick (arch/apic.h says when). */
        arch_irq_eoi(0);
        this_cpu()->ticks++;
        iommu_poll_faults();
        sched_tick(f);
        return;
    }
    /* The 8259s raise line 7 or 15 for an interrupt that went away before
     * the CPU acknowledged it; those get no EOI from the PIC that did not
     * raise them. The I/O APIC has no such thing. */
    bool spurious = !apic && (line == 7 || line == 15);
    if (line == ARCH_IRQ_SERIAL)
        console_input_interrupt();
    else if (!spurious)
        irq_dispatch(line); /* a driver's: masked until it acknowledges */
    if (!spurious)
        arch_irq_eoi(line);
}

void trap_dispatch(struct trap_frame *f)
{
    if (f->vector < 32) {
        if (trap_from_user(f)) {
            proc_fault(f); /* kills the process; does not return to it */
            return;
        }
        if (f->vector == VECTOR_PAGE_FAULT && arch_fixup_fault(f))
            return; /* a user copy met an unmapped page: it returns -EFAULT */
        kprintf("PANIC: kernel fault on CPU %u: %s at %#lx\n", arch_cpu_id(), trap_vector_name(f->vector), f->rip);
        trap_print_frame(f);
        panic("unrecoverable fault in the kernel");
    }
    switch (f->vector) {
    case VECTOR_LAPIC_TIMER: {
        /* The EOI first: sched_tick may switch threads before this frame
         * returns. Other CPUs count their ticks and nothing more until the
         * scheduler runs threads on them. */
        lapic_eoi();
        struct cpu *c = this_cpu();
        c->ticks++;
        if (c->id == 0) {
            iommu_poll_faults();
            sched_tick(f);
        }
        return;
    }
    case VECTOR_IPI_CALL:
        lapic_eoi();
        smp_handle_call_ipi();
        return;
    case VECTOR_IPI_RESCHEDULE:
        lapic_eoi();
        smp_handle_reschedule_ipi();
        return;
    case VECTOR_LAPIC_ERROR:
        this_cpu()->apic_errors++;
        (void)lapic_error_status();
        lapic_eoi();
        return;
    case VECTOR_SPURIOUS:
        return; /* the local APIC's: no EOI */
    }
    if (f->vector >= VECTOR_IRQ_BASE && f->vector < VECTOR_IRQ_BASE + 16) {
        device_line(f, (unsigned)(f->vector - VECTOR_IRQ_BASE));
        return;
    }
    /* Anything unexpected: ignore. */
}
