/*
 * Kernel layer: the system call table (core/syscall.c), entered from
 * arch syscall_entry.
 */
#ifndef KERNEL_SYSCALL_H
#define KERNEL_SYSCALL_H

#include <arch/trap.h>

void syscall_init(void);
void syscall_dispatch(struct trap_frame *f);

#endif
