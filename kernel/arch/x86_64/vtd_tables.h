/*
 * Architecture layer (x86-64): the second-level page tables of one VT-d
 * domain, kept apart from the hardware (registers, invalidation commands)
 * so that the host tests run them against a fake frame pool and an oracle
 * (tests/host/iommu). Caller: iommu_vtd.c, one struct vtd_tables per
 * domain, through ops that reach the kernel's frame pool and the unit.
 *
 * Format (VT-d specification 9.8): 3 or 4 levels of 512 eight-byte
 * entries; an entry with neither the read nor the write bit maps nothing;
 * at level 2 an entry with PS set maps 2 MiB. Tables are made on demand
 * and freed as soon as they are empty, but only after the IOTLB (and the
 * paging-structure caches with it) has been invalidated: until then the
 * unit may still walk them.
 */
#ifndef ARCH_VTD_TABLES_H
#define ARCH_VTD_TABLES_H

#include <stdbool.h>
#include <stdint.h>

#define VTD_PAGE_SIZE       4096ull
#define VTD_LARGE_PAGE_SIZE (2ull << 20)
#define VTD_SL_R            (1ull << 0)
#define VTD_SL_W            (1ull << 1)
#define VTD_SL_PS           (1ull << 7)
#define VTD_SL_PRESENT      (VTD_SL_R | VTD_SL_W)
#define VTD_SL_ADDR         0x000ffffffffff000ull

struct vtd_tables_ops {
    /* A zeroed table frame the unit may be pointed at, or 0. */
    uint64_t (*alloc_table)(void *ctx);
    void (*free_table)(void *ctx, uint64_t frame);
    /* How many frames alloc_table can still give. */
    uint64_t (*frames_free)(void *ctx);
    /* Where the CPU reaches a table frame. */
    uint64_t *(*table)(void *ctx, uint64_t frame);
    /* An entry changed: make it visible to the unit. */
    void (*publish)(void *ctx, const uint64_t *entry);
    /* The unit forgets every translation of the domain; returns once done. */
    void (*invalidate)(void *ctx);
};

struct vtd_tables {
    const struct vtd_tables_ops *ops;
    void *ctx;
    uint64_t root;       /* frame of the top table */
    unsigned levels;     /* 3 or 4 */
    bool large_pages;    /* the unit takes 2 MiB leaves */
    uint64_t iova_limit; /* exclusive */
    uint64_t phys_limit; /* exclusive */
};

/* An empty domain (one table). -ENOMEM. */
int vtd_tables_init(struct vtd_tables *t, const struct vtd_tables_ops *ops, void *ctx, unsigned levels,
                    bool large_pages, uint64_t iova_limit, uint64_t phys_limit);
/* Frees every table; the caller made sure the unit no longer walks them. */
void vtd_tables_destroy(struct vtd_tables *t);

/* What vtd_tables_map would return, changing nothing: -EINVAL (zero,
 * unaligned, wrapping), -ERANGE (beyond a limit), -EEXIST (a page of the
 * range is mapped), -ENOMEM (fewer free frames than tables needed), 0. */
int vtd_tables_map_check(const struct vtd_tables *t, uint64_t iova, uint64_t phys, uint64_t size);
/* Maps after that check, with 2 MiB leaves where both addresses allow. */
int vtd_tables_map(struct vtd_tables *t, uint64_t iova, uint64_t phys, uint64_t size, bool writable);
/* Tables a map of the range could create at most (4 KiB leaves); 0 for a
 * range the check refuses. */
uint64_t vtd_tables_needed(const struct vtd_tables *t, uint64_t iova, uint64_t size);
/* Clears what is mapped in the page-aligned range (a 2 MiB leaf only whole:
 * anything else is a kernel bug), invalidates, then frees emptied tables.
 * Always invalidates at least once, so that a caller may rely on it. */
void vtd_tables_unmap(struct vtd_tables *t, uint64_t iova, uint64_t size);
/* The leaf mapping iova, if any. */
bool vtd_tables_translate(const struct vtd_tables *t, uint64_t iova, uint64_t *phys, bool *writable);

#endif
