/*
 * Architecture layer (x86-64): where every exception and interrupt lands
 * (isr.asm calls trap_dispatch). It decodes the vector and hands over to
 * generic code: the scheduler's tick, the process layer for user faults,
 * the exception table for faults in user copies, panic for other faults in
 * the kernel.
 */
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

void trap_dispatch(struct trap_frame *f)
{
    if (f->vector < 32) {
        if (trap_from_user(f)) {
            proc_fault(f); /* kills the process; does not return to it */
            return;
        }
        if (f->vector == VECTOR_PAGE_FAULT && arch_fixup_fault(f))
            return; /* a user copy met an unmapped page: it returns -EFAULT */
        kprintf("PANIC: kernel fault: %s at %#lx\n", trap_vector_name(f->vector), f->rip);
        trap_print_frame(f);
        panic("unrecoverable fault in the kernel");
    }
    if (f->vector == VECTOR_IRQ_BASE) {
        arch_irq_eoi(0);
        iommu_poll_faults();
        sched_tick(f);
        return;
    }
    if (f->vector > VECTOR_IRQ_BASE && f->vector < VECTOR_IRQ_BASE + 16) {
        unsigned irq = (unsigned)(f->vector - VECTOR_IRQ_BASE);
        if (irq == ARCH_IRQ_SERIAL)
            console_input_interrupt();
        else if (irq != 7 && irq != 15)
            irq_dispatch(irq); /* a driver's: masked until it acknowledges */
        /* Spurious IRQ 7/15 get no EOI on the PIC that did not raise them. */
        if (irq != 7 && irq != 15)
            arch_irq_eoi(irq);
        return;
    }
    /* VECTOR_SPURIOUS and anything unexpected: ignore. */
}
