/*
 * Architecture layer (x86-64): the register frame every entry into the kernel
 * (exception, interrupt, system call) saves at the top of the thread's kernel
 * stack. Field order matches the pushes in frame.inc (isr.asm, entry.asm).
 */
#ifndef ARCH_TRAP_H
#define ARCH_TRAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <arch/machine.h>

struct trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;
};
_Static_assert(offsetof(struct trap_frame, vector) == TRAP_FRAME_VECTOR, "isr.asm reads the vector");
_Static_assert(offsetof(struct trap_frame, cs) == TRAP_FRAME_CS, "isr.asm reads cs");

#define RFLAGS_IF       (1ull << 9)
#define RFLAGS_RESERVED (1ull << 1)

static inline bool trap_from_user(const struct trap_frame *f) { return (f->cs & 3) == 3; }

/* Fills a frame that returns to user mode at rip with stack rsp; the thread
 * starts with rdi = arg and rsi = its process's pid. */
static inline void trap_frame_init_user(struct trap_frame *f, uint64_t rip, uint64_t rsp, uint64_t arg, uint64_t pid)
{
    *f = (struct trap_frame){ .rip = rip,
                              .rsp = rsp,
                              .rdi = arg,
                              .rsi = pid,
                              .cs = GDT_USER_CODE,
                              .ss = GDT_USER_DATA,
                              .rflags = RFLAGS_IF | RFLAGS_RESERVED };
}

/* Implemented in trap.c (arch) and called from assembly. */
void trap_dispatch(struct trap_frame *f);
void trap_print_frame(const struct trap_frame *f);
const char *trap_vector_name(uint64_t vector);

/* The nmi.storm test (arch_interrupts_init reads it): from the BSP's tick,
 * an NMI to every other CPU each `ticks` ticks, wherever they are. 0: off. */
void trap_set_nmi_storm(unsigned ticks);

#endif
