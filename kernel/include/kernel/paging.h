/*
 * Kernel layer: page tables. The interface is generic; the x86-64 four-level
 * implementation lives in kernel/arch/x86_64/paging.c. Table pages come from
 * the kernel frame pool; every mapping call either succeeds whole or fails
 * with -ENOMEM having changed nothing.
 */
#ifndef KERNEL_PAGING_H
#define KERNEL_PAGING_H

#include <stdint.h>
#include <stdbool.h>
#include <arch/cpu.h>
#include <kernel/multiboot.h>

#define MAP_WRITE    0x1u
#define MAP_EXEC     0x2u
#define MAP_USER     0x4u
#define MAP_UNCACHED 0x8u
#define MAP_LARGE    0x10u /* reported by paging_translate: a 2 MiB page */

/* Builds the kernel's tables: the image, the direct map of every RAM region
 * in `info`, the kernel stack area; switches to them. Boot only. */
void paging_init(const struct mb_info *info);

/* A new address space: user half empty, kernel half shared. */
int paging_create(uint64_t *root);
/* Frees every user-half table of `root` and the root itself (not the mapped
 * frames, which belong to segments). */
void paging_destroy(uint64_t root);
/* Loads `root` into CR3 unless it is there (inline: every switch between
 * processes loads one). */
static inline void paging_activate(uint64_t root)
{
    if (read_cr3() != root)
        write_cr3(root);
}
uint64_t paging_kernel_root(void);

/* Maps [va, va+size) to [pa, pa+size), with 2 MiB pages wherever va and pa
 * are both 2 MiB aligned and the range covers the whole large page. The
 * caller has made sure the pool holds paging_tables_needed frames (its
 * reservation, under the kernel lock): the walk is not done twice. -EINVAL
 * for a range that is not page aligned or wraps. */
int paging_map(uint64_t root, uint64_t va, uint64_t pa, uint64_t size, unsigned flags);
/* The page table of one 2 MiB window of a root, remembered between walks
 * (an address space keeps one): a 4 KiB page of the same window is found
 * without walking the three levels above it. A page table goes only with
 * its root, or when a large page replaces it (paging_map of 2 MiB or
 * more), so the keeper forgets the hint before either. */
struct paging_pt_hint {
    uint64_t window; /* va / LARGE_PAGE_SIZE */
    uint64_t *table; /* 0: none */
};
static inline void paging_pt_hint_forget(struct paging_pt_hint *hint) { hint->table = 0; }
/* Unmaps and flushes this CPU's TLB for the range (when `root` is live
 * here); other CPUs that may cache it need paging_flush_others. `hint` (may
 * be 0) serves a single small page. */
void paging_unmap(uint64_t root, uint64_t va, uint64_t size, struct paging_pt_hint *hint);
/* The one page-table entry that would map the 4 KiB page at `va`, when its
 * page table exists (mapping it then creates no table), else 0; `hint`
 * (may be 0) is tried first and then names the table found. A page table
 * goes only with its address space, or when a large page replaces it (a
 * mapping that covers its whole 2 MiB window), so the entry of an area its
 * caller holds stays valid until the caller maps it: a reservation walks
 * the tables once, and the mapping needs no walk. */
uint64_t *paging_small_entry(uint64_t root, uint64_t va, struct paging_pt_hint *hint);
/* Maps the page at `entry` (from paging_small_entry; unmapped) to pa. */
void paging_map_small_entry(uint64_t *entry, uint64_t pa, unsigned flags);
/* TLB shootdown: flushes the range on every CPU of the mask (CPU_MASK
 * bits; the caller's own is left out) and returns once each has. */
void paging_flush_others(uint64_t targets, uint64_t va, uint64_t size);
/* Frees the tables paging_map replaced with large pages, once the caller
 * has flushed every CPU that may cache the old entries; returns how many. */
unsigned paging_release_tables(void);
/* Table frames mapping the range would take from the pool, at most. */
uint64_t paging_tables_needed(uint64_t root, uint64_t va, uint64_t pa, uint64_t size);
bool paging_translate(uint64_t root, uint64_t va, uint64_t *pa, unsigned *flags);

/* Kernel stacks: maps `frames` at a slot of the kernel stack area. */
int paging_map_kernel(uint64_t va, uint64_t pa, uint64_t size);
/* A kernel-half mapping with 4 KiB pages and the given MAP_* flags (not
 * MAP_USER): the ioremap window's read-only and uncached pages. */
int paging_map_kernel_flags(uint64_t va, uint64_t pa, uint64_t size, unsigned flags);
void paging_unmap_kernel(uint64_t va, uint64_t size);
/* paging_unmap_kernel in two steps: unmaps and flushes this CPU only; the
 * caller keeps the range out of use until it has flushed every CPU with
 * paging_flush_kernel_all. Every CPU, this one included: the flush may run
 * on another CPU than the unmap, and that CPU may have cached the range
 * before it was unmapped (it mapped the stack there, or ran on it). */
void paging_unmap_kernel_here(uint64_t va, uint64_t size);
void paging_flush_kernel_all(uint64_t va, uint64_t size);

#endif
