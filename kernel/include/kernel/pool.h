/*
 * Kernel layer: the kernel frame pool, a fixed range of physical memory
 * carved out at boot for page tables, kernel stacks and slab caches. The
 * kernel has no other memory of its own; everything else belongs to user
 * space (and, later, the memory server). Running out is an error for the
 * caller (0 from pool_alloc_frame), never a panic.
 */
#ifndef KERNEL_POOL_H
#define KERNEL_POOL_H

#include <stdint.h>

struct vmarea_pages;

void pool_init(uint64_t base, uint64_t size);
uint64_t pool_alloc_frame(void); /* physical address, or 0 when empty */
void pool_free_frame(uint64_t phys);
uint64_t pool_free_frames(void);
uint64_t pool_total_frames(void);
uint64_t pool_base(void);
uint64_t pool_size(void);

/* Zeroed pool frames (through the direct map) for an area allocator's books. */
extern const struct vmarea_pages pool_vmarea_pages;

#endif
