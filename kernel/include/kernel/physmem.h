/*
 * Kernel layer: physical memory for user processes, before a memory server
 * exists. Holds RAM minus the kernel's own ranges (low 1 MiB, the image, the
 * multiboot information, the boot modules, the frame pool) as a sorted array
 * of free ranges. The kernel uses it to load boot modules; it will hand what
 * is left to the memory server once that server runs.
 */
#ifndef KERNEL_PHYSMEM_H
#define KERNEL_PHYSMEM_H

#include <stdint.h>
#include <kernel/multiboot.h>

struct phys_range {
    uint64_t base, len;
};

/* `reserved` ranges (any order, may overlap) are kept out. */
void physmem_init(const struct mb_info *info, const struct phys_range *reserved, unsigned nreserved);
/* Lowest fit of `size` bytes at `align` ending at or below `limit`. */
int physmem_alloc(uint64_t size, uint64_t align, uint64_t limit, uint64_t *base);
void physmem_free(uint64_t base, uint64_t size);
uint64_t physmem_free_bytes(void);

#endif
