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
#define KERNEL_VMA 0xffffffff80000000
#define DIRECT_MAP_BASE 0xffff800000000000
/* GRUB loads the boot path here. */
#define KERNEL_LOAD_ADDRESS 0x100000

/* Multiboot2: the header's magic, and what the loader leaves in eax. */
#define MB2_HEADER_MAGIC 0xe85250d6
#define MB2_BOOTLOADER_MAGIC 0x36d76289

/* GDT selectors (cpu.c builds the table; boot.asm has its own first one
 * with the same two kernel entries). SYSRET takes the user selectors from
 * GDT_USER_BASE: SS = base + 8, CS = base + 16, both with RPL 3. */
#define GDT_KERNEL_CODE 0x08
#define GDT_KERNEL_DATA 0x10
#define GDT_USER_BASE 0x18
#define GDT_USER_DATA 0x23
#define GDT_USER_CODE 0x2b
#define GDT_TSS 0x30

/* Interrupt vectors: the legacy PIC's IRQs from 32, the system call's
 * marker in trap frames, the spurious vector. */
#define VECTOR_IRQ_BASE 32
#define VECTOR_SYSCALL 0x80
#define VECTOR_SPURIOUS 0xff

/* The console: COM1. */
#define COM1_PORT 0x3f8

#endif
