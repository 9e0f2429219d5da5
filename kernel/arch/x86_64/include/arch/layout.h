/*
 * Architecture layer (x86-64): the kernel's virtual address layout.
 *
 *   0x0000000000400000 .. 0x00007ffffffff000  user space (ABI_USER_BASE/TOP)
 *   0xffff800000000000 ..                     direct map of physical RAM
 *   0xfffffe8000000000 .. +1 GiB              window for device registers and
 *                                             firmware tables (kernel/ioremap.h)
 *   0xffffff0000000000 ..                     kernel stacks, with guard pages
 *   0xffffff0008000000 ..                     each CPU's own stacks (idle, IST),
 *                                             with guard pages
 *   0xffffffff80000000 ..                     kernel image (phys + KERNEL_VMA)
 *
 * The kernel half (PML4 slots 256..511) is shared by every address space.
 */
#ifndef ARCH_LAYOUT_H
#define ARCH_LAYOUT_H

#include <stdint.h>
#include <abi/types.h>
#include <arch/machine.h>

#define DIRECT_MAP_LIMIT  0x0000400000000000ul /* 64 TiB of physical space */
#define IOREMAP_AREA_BASE 0xfffffe8000000000ul /* PML4 slot 509 */
#define IOREMAP_AREA_SIZE (1ul << 30)
#define KSTACK_AREA_BASE  0xffffff0000000000ul
#define KSTACK_SLOT_SIZE  (32 * 1024ul) /* 16 KiB stack + 16 KiB guard */
#define KSTACK_SIZE       (16 * 1024ul)
#define KSTACK_SLOTS      4096u
/* Per CPU, above the thread stacks: the idle stack and the interrupt stack
 * table's stacks, each above an unmapped guard page (smp.c maps them). */
#define CPU_STACK_AREA_BASE (KSTACK_AREA_BASE + (uint64_t)KSTACK_SLOTS * KSTACK_SLOT_SIZE)
#define CPU_STACK_SLOT_SIZE (64 * 1024ul)
#define CPU_IDLE_STACK_SIZE (16 * 1024ul)
#define CPU_IST_STACK_SIZE  (8 * 1024ul)

#define PAGE_SIZE       ((uint64_t)ABI_PAGE_SIZE)
#define LARGE_PAGE_SIZE ((uint64_t)ABI_LARGE_PAGE_SIZE)

static inline void *phys_to_virt(uint64_t phys) { return (void *)(phys + DIRECT_MAP_BASE); }

static inline uint64_t virt_to_phys(const void *virt)
{
    uint64_t v = (uint64_t)virt;
    return v >= KERNEL_VMA ? v - KERNEL_VMA : v - DIRECT_MAP_BASE;
}

#endif
