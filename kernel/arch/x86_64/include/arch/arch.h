/*
 * Architecture layer (x86-64): what generic kernel code may ask of the
 * machine. Implemented by the files in kernel/arch/x86_64/.
 */
#ifndef ARCH_ARCH_H
#define ARCH_ARCH_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <arch/cpu.h>
#include <arch/layout.h>
#include <arch/smp.h>
#include <arch/trap.h>

/* Serial console (COM1). */
void arch_serial_init(void);
void arch_serial_write(const char *s, size_t n);
void arch_serial_drain(void);        /* waits until the transmitter is empty */
void arch_serial_enable_input(void); /* IRQ 4 on every received byte */
int arch_serial_read_byte(void);     /* a received byte, or -1 */
#define ARCH_IRQ_SERIAL 4u

/* The BSP's set-up: GDT, TSS, IDT, per-CPU data in GS, SYSCALL MSRs, NX,
 * SSE for user code. The other CPUs: smp_start (arch/smp.h). */
void arch_cpu_init(void);
bool arch_has_nx(void);
bool arch_has_pge(void); /* global pages (CPUID); without them kernel entries go at every CR3 load */
/* Whether the kernel runs with SMEP and SMAP on (where the CPU has them). */
bool arch_has_smep(void);
bool arch_has_smap(void);
/* This CPU's TSS rsp0 and SYSCALL stack (inline: every switch sets them). */
static inline void arch_set_kernel_stack(uint64_t top)
{
    struct cpu *c = this_cpu();
    c->tss.rsp0 = top;
    c->kernel_rsp = top;
}

/* Interrupt controllers: the local and I/O APICs from the MADT, or the
 * 8259s when there is no usable MADT or the command line says apic=off
 * (arch/apic.h). After paging, before the timer. */
struct mb_info;
void arch_interrupts_init(const struct mb_info *info, const char *cmdline);
/* Device interrupts by ISA line, 0-15 (the PCI interrupt-line register's
 * numbering), on whichever controller carries them. */
void arch_irq_eoi(unsigned line);
void arch_irq_unmask(unsigned line);
void arch_irq_mask(unsigned line);

/* Time: the TSC, calibrated against the PIT, measures it; the tick comes
 * from the local APIC timer of every CPU (or the PIT in legacy mode, or
 * for the BSP with `timer=pit` on the command line). */
void arch_timer_init(unsigned hz, const char *cmdline);
uint64_t arch_tsc_per_us(void);
uint64_t arch_tsc_at_boot(void);
uint64_t arch_time_ns(void);
/* The clock as a raw count (the TSC), and the count at which
 * arch_time_ns() reaches ns (UINT64_MAX when it never does): a deadline
 * compared on every return to user mode costs no division. */
static inline uint64_t arch_clock_count(void) { return rdtsc(); }
uint64_t arch_clock_count_at(uint64_t ns);

/* FPU/SSE state of user threads (512-byte, 16-byte aligned areas). */
#define ARCH_FPU_AREA_SIZE 512
void arch_fpu_init_area(void *area);
static inline void arch_fpu_save(void *area) { __asm__ volatile("fxsave64 (%0)" ::"r"(area) : "memory"); }
static inline void arch_fpu_restore(const void *area) { __asm__ volatile("fxrstor64 (%0)" ::"r"(area) : "memory"); }

/* Copies touching user memory (usercopy.asm): 0, or -EFAULT when a page
 * fault stopped them (the caller checked the range is in the user half). */
int arch_user_copy(void *dst, const void *src, size_t len);
int arch_user_zero(void *dst, size_t len);
int arch_user_read_unopened(const void *src); /* the SMAP check only */
/* Boot, BSP, once paging is up: checks that SMAP keeps the kernel out of
 * user pages outside the copies and lets the copies in (kernel self-test
 * lines, group "smap"). Nothing when the CPU has no SMAP. */
void arch_smap_check(void);
/* Zero-fills whole pages (zero_pages.asm): dst page-aligned, bytes a
 * multiple of the page size (a call whose stores would run past its end
 * panics). Half memset's instructions (16-byte stores); pages that
 * already read as zero are left unwritten, so an emulator's host need not
 * back them; the SSE registers of the thread in the kernel are kept. */
void arch_zero_pages(void *dst, uint64_t bytes);
/* A kernel-mode fault at an instruction the exception table covers:
 * resumes at its fixup and returns true. */
bool arch_fixup_fault(struct trap_frame *f);

/* Context switch (entry.asm). */
void arch_context_switch(uint64_t *save_rsp, uint64_t load_rsp);
void arch_thread_trampoline(void);
/* Prepares a fresh kernel stack so that switching to it enters user mode
 * through the trap frame it returns (placed at the top of the stack). */
uint64_t arch_prepare_kernel_stack(uint64_t stack_top, struct trap_frame **frame);

/* Power off with a status: QEMU's isa-debug-exit, then Bochs's shutdown
 * port, then halt. */
void arch_shutdown(int status) __attribute__((noreturn));

#endif
