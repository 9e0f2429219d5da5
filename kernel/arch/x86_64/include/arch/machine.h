/*
 * Architecture layer (x86-64): the numbers that C, the assembler and the
 * linker script must agree on, defined once. C includes this file; the
 * build turns it into machine.inc for NASM (each `#define` becomes a
 * `%define`) and runs the linker script (kernel.ld.S) through the C
 * preprocessor with it. Hence the form: one `#define NAME value` a line,
 * value a bare integer (no suffixes, no expressions), comments in C style.
 */
#ifndef ARCH_MACHINE_H
#define ARCH_MACHINE_H

/* Where the kernel image is linked (its physical address plus this) and
 * where the direct map of physical memory starts. */
#define KERNEL_VMA      0xffffffff80000000
#define DIRECT_MAP_BASE 0xffff800000000000
/* GRUB loads the boot path here. */
#define KERNEL_LOAD_ADDRESS 0x100000

/* Multiboot2: the header's magic, and what the loader leaves in eax. */
#define MB2_HEADER_MAGIC     0xe85250d6
#define MB2_BOOTLOADER_MAGIC 0x36d76289

/* GDT selectors (cpu.c builds the table; boot.asm has its own first one
 * with the same two kernel entries). SYSRET takes the user selectors from
 * GDT_USER_BASE: SS = base + 8, CS = base + 16, both with RPL 3. */
#define GDT_KERNEL_CODE 0x08
#define GDT_KERNEL_DATA 0x10
#define GDT_USER_BASE   0x18
#define GDT_USER_DATA   0x23
#define GDT_USER_CODE   0x2b
#define GDT_TSS         0x30

/* Interrupt vectors. ISA lines 0-15 arrive at VECTOR_IRQ_BASE + line from
 * either controller (the 8259 pair or the I/O APIC); the local APIC's own
 * sources follow; isr.asm has entry stubs for every vector, those after
 * VECTOR_LAPIC_ERROR only for interrupts nothing here raises (a device's
 * write to the interrupt window without interrupt remapping, trap.c). The system call's number is only
 * a marker in trap frames (SYSCALL does not go through the IDT). The local
 * APIC orders pending interrupts by vector / 16, so the IPIs share a class
 * with the timer, above the device lines. An NMI (vector 2) arrives
 * whatever the interrupt flag says, so also inside the entry and exit
 * paths (isr.asm). */
#define VECTOR_NMI            2
#define VECTOR_IRQ_BASE       32
#define VECTOR_LAPIC_TIMER    48
#define VECTOR_IPI_RESCHEDULE 49
#define VECTOR_IPI_CALL       50
#define VECTOR_LAPIC_ERROR    51
#define VECTOR_STUBS          255 /* and VECTOR_SPURIOUS: all 256 */
#define VECTOR_SYSCALL        0x80
#define VECTOR_SPURIOUS       0xff

/* Offsets into struct trap_frame (arch/trap.h) that the entry code reads. */
#define TRAP_FRAME_VECTOR 120
#define TRAP_FRAME_CS     144

/* Per-CPU data (struct cpu, arch/smp.h) is reached through GS while the
 * kernel runs; the entry code reads these fields by offset. */
#define MSR_GS_BASE           0xc0000101
#define MSR_KERNEL_GS_BASE    0xc0000102
#define CPU_OFFSET_SELF       0
#define CPU_OFFSET_KERNEL_RSP 8
#define CPU_OFFSET_USER_RSP   16

/* The application processors' start-up code (trampoline.asm) runs from a
 * page below 1 MiB that smp.c picks; it reads its parameters at this
 * offset in the page, 8-byte fields in this order. */
#define TRAMPOLINE_PARAMS 0xf00
#define TRAMPOLINE_CR0    0
#define TRAMPOLINE_CR3    8
#define TRAMPOLINE_CR4    16
#define TRAMPOLINE_EFER   24
#define TRAMPOLINE_STACK  32
#define TRAMPOLINE_CPU    40
#define TRAMPOLINE_ENTRY  48

/* The console: COM1. */
#define COM1_PORT 0x3f8

#endif
