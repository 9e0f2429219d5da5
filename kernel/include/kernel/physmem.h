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
#include <stdbool.h>
#include <kernel/multiboot.h>

struct phys_range {
    uint64_t base, len;
};

/* The whole pages of a RAM region that the direct map can reach; false for
 * other regions and for RAM with no whole page below DIRECT_MAP_LIMIT. */
bool physmem_ram_pages(const struct mb_region *r, struct phys_range *out);

/* `reserved` ranges (any order, may overlap) are kept out. */
void physmem_init(const struct mb_info *info, const struct phys_range *reserved, unsigned nreserved);
/* Lowest fit of `size` bytes at `align` ending at or below `limit`. */
int physmem_alloc(uint64_t size, uint64_t align, uint64_t limit, uint64_t *base);
void physmem_free(uint64_t base, uint64_t size);
uint64_t physmem_free_bytes(void);
/* Hands every free range to the memory server: from then on allocation
 * fails, while frees still come back here (for when there is no server). */
void physmem_hand_over(void);
bool physmem_handed_over(void);
/* The i-th free range at hand-over time, for the memory server's books. */
bool physmem_range(unsigned i, struct phys_range *out);

#endif
