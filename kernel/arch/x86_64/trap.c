/*
 * Architecture layer (x86-64): where every exception and interrupt lands
 * (isr.asm calls trap_dispatch). It decodes the vector and hands over to
 * generic code: the scheduler's tick (on the BSP), the process layer for
 * user faults, the exception table for faults in user copies, panic for
 * other faults in the kernel; the IPI handlers (smp.c) and the per-CPU
 * tick count on every CPU.
 *
 * The kernel lock (kernel/lock.h): a trap from user mode takes it when its
 * handler needs it and leaves through sched_return_to_user, which drops
 * it; an interrupt in kernel mode comes only where interrupts are let in,
 * the idle loop's halt and a lock break's window, both without the lock,
 * and drops what it took before it returns.
 *
 * NMIs. The kernel raises them only to stop the other CPUs in a panic, and
 * under the nmi.storm test; any other comes from the board or the emulator
 * (QEMU's monitor command `nmi`), in user mode, in the kernel, or inside
 * the entry path (isr.asm). It is counted and the machine goes on, whatever
 * it interrupted: an NMI can land while this CPU holds any lock, so its
 * handler takes none and prints nothing. The BSP's tick reports them
 * later, with the board's reason when port 0x61 gives one.
 */
#include <arch/apic.h>
#include <arch/arch.h>
#include <arch/cpu.h>
#include <arch/smp.h>
#include <kernel/console.h>
#include <kernel/iommu.h>
#include <kernel/irq.h>
#include <kernel/aspace.h>
#include <kernel/lock.h>
#include <kernel/segment.h>
#include <kernel/sched.h>
#include <kernel/proc.h>

static const char *const exception_names[32] = {
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 floating point",
    "alignment check",
    "machine check",
    "SIMD floating point",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
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
    kprintf("  rip %#018lx cs %#lx rflags %#lx rsp %#018lx ss %#lx cr2 %#018lx\n", f->rip, f->cs, f->rflags, f->rsp,
            f->ss, read_cr2());
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

/* Takes the kernel lock unless this CPU holds it; returns whether it did. */
static bool lock_here(void)
{
    if (kernel_lock_held())
        return false;
    kernel_lock();
    return true;
}

/* Drops what lock_here took, unless the trap returns to user mode, whose
 * way out drops it (after a possible switch). */
static void unlock_here(const struct trap_frame *f, bool took)
{
    if (took && !trap_from_user(f))
        kernel_unlock();
}

/* The board's NMI status (system control port B): a PCI system error
 * (SERR#) or an I/O channel check latched; writing the matching enable bit
 * high then low clears it. The low four bits are the speaker and PIT
 * gate's, written back as they were. */
#define PORT_SYSTEM_CONTROL_B 0x61
#define NMI_REASON_SERR       0x80u
#define NMI_REASON_IOCHK      0x40u
#define NMI_CLEAR_SERR        0x04u
#define NMI_CLEAR_IOCHK       0x08u
#define NMI_REPORT_TICKS      (10u * SCHED_HZ) /* at most one report line per 10 s */

static uint8_t nmi_reasons;      /* NMI_REASON_* seen since the last report (BSP only) */
static uint64_t nmis_reported;   /* the sum over CPUs at the last report */
static uint64_t nmi_report_tick; /* the BSP's tick count then */
static unsigned nmi_storm_ticks; /* nmi.storm: NMI the other CPUs every this many ticks */

static void nmi_received(const struct trap_frame *f)
{
    if (panic_in_progress())
        arch_halt_forever(); /* another CPU panicked: stop here */
    bool sample = smp_nmi_sample(f->rip, f->cs, f->rflags);
    bool repair = smp_nmi_repair(f->rflags);
    struct cpu *c = this_cpu();
    c->nmis++;
    if (!sample && !repair)
        c->nmis_unasked++;
    if (c->id != 0)
        return; /* the board's NMIs come to the BSP (LINT1) */
    uint8_t status = inb(PORT_SYSTEM_CONTROL_B);
    uint8_t reasons = status & (NMI_REASON_SERR | NMI_REASON_IOCHK);
    if (reasons == 0)
        return;
    __atomic_or_fetch(&nmi_reasons, reasons, __ATOMIC_RELAXED);
    uint8_t clear =
        (reasons & NMI_REASON_SERR ? NMI_CLEAR_SERR : 0) | (reasons & NMI_REASON_IOCHK ? NMI_CLEAR_IOCHK : 0);
    outb(PORT_SYSTEM_CONTROL_B, (uint8_t)((status & 0x0f) | clear));
    outb(PORT_SYSTEM_CONTROL_B, (uint8_t)(status & 0x0f & ~clear));
}

/* One line for the NMIs since the last (BSP tick, lock held). */
static void nmi_report(uint64_t tick)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < SMP_MAX_CPUS; i++)
        total += cpus[i].nmis_unasked; /* the kernel's own are not news */
    if (total == nmis_reported || (nmis_reported != 0 && tick - nmi_report_tick < NMI_REPORT_TICKS))
        return;
    uint8_t reasons = __atomic_exchange_n(&nmi_reasons, 0, __ATOMIC_RELAXED); /* an NMI may land in between */
    kprintf("nmi: %lu received (%lu in all)%s%s; ignored\n", total - nmis_reported, total,
            reasons & NMI_REASON_SERR ? ", the board reports a system error (SERR#)" : "",
            reasons & NMI_REASON_IOCHK ? ", the board reports an I/O channel check" : "");
    nmis_reported = total;
    nmi_report_tick = tick;
}

void trap_set_nmi_storm(unsigned ticks) { nmi_storm_ticks = ticks; }

/* The BSP's tick work beyond the scheduler: the IOMMU's fault log, the
 * NMI report and the NMI storm. */
static void bsp_tick(struct trap_frame *f)
{
    uint64_t tick = this_cpu()->ticks;
    if (nmi_storm_ticks != 0 && tick % nmi_storm_ticks == 0 && smp_cpus_online() > 1)
        (void)lapic_send_nmi_others();
    if (iommu_present() || tick % SCHED_HZ == 0) {
        bool took = lock_here();
        if (iommu_present())
            iommu_poll_faults();
        if (tick % SCHED_HZ == 0) {
            nmi_report(tick);
            smp_say_repairs(smp_online_mask());
        }
        unlock_here(f, took);
    }
    sched_tick(f);
}

/* A tick of this CPU's timer (CPU 0's may be the PIT), its EOI done. */
static void tick(struct trap_frame *f)
{
    struct cpu *c = this_cpu();
    c->ticks++;
    if (c->ticks % SCHED_HZ == 0)
        smp_watch_next();
    if (c->id == 0)
        bsp_tick(f);
    else
        sched_tick(f);
}

#define PF_PRESENT 0x1u /* the error code's bit: a protection fault, not a missing page */

/* A page fault where a segment is busy (a migration copies it): the access
 * waits and is retried. So is a missing-page fault whose page is there by
 * the time this CPU holds the lock: a migration ended in between. Returns
 * whether the access is to be retried. */
static bool fault_waits(struct trap_frame *f)
{
    struct thread *t = current;
    uint64_t addr = read_cr2();
    /* A kernel copy that must not drop the lock (it has chosen the thread
     * it delivers to) fails instead; its caller takes the path that may. */
    if (!t || !t->proc || addr >= ABI_USER_TOP || (t->copy_no_wait && !trap_from_user(f)))
        return false;
    bool took = lock_here();
    bool retry = segment_fault_wait(t->proc, addr) ||
                 (!(f->error & PF_PRESENT) && aspace_translate(&t->proc->aspace, addr, 0, 0));
    unlock_here(f, took);
    return retry;
}

/* An ISA line's interrupt, from either controller (arch/apic.h). Only the
 * BSP receives them: both controllers deliver there. */
static void device_line(struct trap_frame *f, unsigned line)
{
    bool apic = interrupts_apic_mode();
    if (line == 0 && timer_pit_ticks()) {
        /* The PIT: the BSP's tick (arch/apic.h says when). */
        arch_irq_eoi(0);
        tick(f);
        return;
    }
    /* The 8259s raise line 7 or 15 for an interrupt that went away before
     * the CPU acknowledged it; those get no EOI from the PIC that did not
     * raise them. The I/O APIC has no such thing. */
    bool spurious = !apic && (line == 7 || line == 15);
    bool took = spurious ? false : lock_here();
    if (line == ARCH_IRQ_SERIAL)
        console_input_interrupt();
    else if (!spurious)
        irq_dispatch(line); /* a driver's: masked until it acknowledges */
    if (!spurious)
        arch_irq_eoi(line);
    unlock_here(f, took);
}

static void dispatch(struct trap_frame *f);

void trap_dispatch(struct trap_frame *f)
{
    dispatch(f);
    /* Back to user mode: an exiting thread dies, a pending switch happens,
     * and the lock goes. */
    if (trap_from_user(f) && kernel_lock_held())
        sched_return_to_user();
}

static void dispatch(struct trap_frame *f)
{
    if (f->vector == VECTOR_NMI) {
        nmi_received(f);
        return;
    }
    if (f->vector < 32) {
        if (f->vector == VECTOR_PAGE_FAULT && fault_waits(f))
            return; /* the segment is back: the access is retried */
        if (trap_from_user(f)) {
            lock_here();
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
         * returns. Other CPUs count their ticks and watch their neighbour,
         * and nothing more until the scheduler runs threads on them. */
        if (!__atomic_exchange_n(&this_cpu()->skip_next_timer_eoi, false, __ATOMIC_RELAXED))
            lapic_eoi();
        tick(f);
        return;
    }
    case VECTOR_IPI_CALL:
        lapic_eoi();
        smp_handle_call_ipi();
        return;
    case VECTOR_IPI_RESCHEDULE:
        lapic_eoi();
        smp_handle_reschedule_ipi();
        sched_reschedule_ipi(f);
        return;
    case VECTOR_LAPIC_ERROR:
        this_cpu()->apic_errors++;
        (void)lapic_error_status();
        lapic_eoi();
        return;
    case VECTOR_SPURIOUS: return; /* the local APIC's: no EOI */
    }
    if (f->vector >= VECTOR_IRQ_BASE && f->vector < VECTOR_IRQ_BASE + 16) {
        device_line(f, (unsigned)(f->vector - VECTOR_IRQ_BASE));
        return;
    }
    /* A vector nothing here raises: without interrupt remapping a device
     * that writes to the interrupt window (0xfee00000) can send any, and
     * a fixed interrupt waits for its EOI, which would hold off every
     * vector below its class. Acknowledged and otherwise ignored. */
    if (f->vector > VECTOR_LAPIC_ERROR && interrupts_apic_mode())
        lapic_eoi();
}
