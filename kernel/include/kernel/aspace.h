/*
 * Kernel layer: address spaces. An address space is a page-table root, the
 * area allocator of its user half (kernel/vmarea.h), and the device
 * mappings in it. It owns every user mapping: segments (through
 * segment.c) and device registers (BARs, through the device layer) are
 * mapped and unmapped here and nowhere else.
 *
 * Mapping is two steps, so that callers can validate everything before
 * they change anything: aspace_reserve takes the area and pays for the page
 * tables the mapping may need (charged to the address space's account);
 * aspace_map then cannot fail. aspace_cancel gives a reservation back.
 *
 * Page-table frames are charged to the account as RES_KMEM from the moment
 * they are reserved until the address space is destroyed (tables are not
 * freed when a mapping goes; the area allocator reuses the addresses).
 *
 * Callers: segment.c (segments), device.c and sys_dev.c (BAR mappings),
 * proc.c (creation, activation, destruction).
 */
#ifndef KERNEL_ASPACE_H
#define KERNEL_ASPACE_H

#include <stdbool.h>
#include <stdint.h>
#include <abi/types.h>
#include <kernel/paging.h>
#include <kernel/vmarea.h>

struct account;
struct device;

struct device_mapping {
    struct device *device; /* holds a reference */
    handle_t handle;       /* the device handle it was made through */
    unsigned bar;
    uint64_t vaddr, size; /* whole pages */
    struct device_mapping *next;
};

struct aspace {
    uint64_t root; /* page-table root */
    struct vmareas areas;
    struct account *account; /* pays for tables, area pages, device mappings */
    uint64_t table_bytes;    /* page-table frames charged so far */
    struct device_mapping *device_maps;
    uint64_t cpus;                 /* CPU_MASK bits: CPUs that may cache its translations */
    struct paging_pt_hint pt_hint; /* the page table of the last small page reserved or unmapped */
    bool ending;                   /* torn down: unmaps leave the areas to aspace_destroy */
};

/* An area taken and its page tables paid for, not yet mapped. */
struct aspace_reservation {
    uint64_t vaddr, size;
    uint64_t table_bytes;  /* charged at worst; aspace_map refunds the rest */
    uint64_t *small_entry; /* a 4 KiB page into a table that exists: its entry (paging_small_entry) */
};

int aspace_init(struct aspace *as, struct account *account);
/* Unmaps everything, frees every table and area page, refunds the account. */
void aspace_destroy(struct aspace *as);
/* The address space is being torn down (its threads are gone) and
 * aspace_destroy follows in the same hold of the kernel lock: unmaps from
 * now on clear their pages but leave the area array, which the destroy
 * drops whole. Each free shifts the array's tail, so freeing n areas one
 * by one, lowest first, would cost O(n^2). */
static inline void aspace_ending(struct aspace *as) { as->ending = true; }
/* Loads `as` on this CPU (0: the kernel's tables only). */
void aspace_activate(struct aspace *as);

/* Reserves size bytes at vaddr (0: the area allocator picks) for a mapping
 * of [phys, phys + size). -EFAULT (vaddr outside the user half or taken),
 * -ENOSPC, -ENOMEM, -EDQUOT. */
int aspace_reserve(struct aspace *as, uint64_t vaddr, uint64_t size, uint64_t phys, struct aspace_reservation *out);
void aspace_cancel(struct aspace *as, const struct aspace_reservation *r);
/* Maps a reservation with MAP_* flags (kernel/paging.h). Cannot fail. */
void aspace_map(struct aspace *as, const struct aspace_reservation *r, uint64_t phys, unsigned flags);
/* Unmaps a whole area mapped earlier and frees it; every CPU's TLB is
 * flushed before this returns. */
void aspace_unmap(struct aspace *as, uint64_t vaddr, uint64_t size);
/* Migration, in two steps around the copy: suspend takes the mapping's
 * translations away on every CPU (the area stays reserved; an access
 * faults), resume maps it again at new frames. The tables a large-to-small
 * change needs are charged to the account even above its limit (the owner
 * did not ask for the move); resume needs aspace_can_resume first, and the
 * old frames, which kept their tables, can always be resumed. */
void aspace_suspend(struct aspace *as, uint64_t vaddr, uint64_t size);
bool aspace_can_resume(uint64_t size);
void aspace_resume(struct aspace *as, uint64_t vaddr, uint64_t size, uint64_t phys, unsigned flags);
/* Resumes a suspended mapping at the frames it had: cannot fail. */
void aspace_restore(struct aspace *as, uint64_t vaddr, uint64_t size, uint64_t phys, unsigned flags);
bool aspace_translate(struct aspace *as, uint64_t vaddr, uint64_t *phys, unsigned *flags);

/* Device register mappings (uncached, writable, never executable). */
int aspace_map_device(struct aspace *as, struct device *d, handle_t h, unsigned bar, uint64_t phys, uint64_t size,
                      uint64_t *vaddr);
/* -ENOENT if that BAR of that device is not mapped here. */
int aspace_unmap_device(struct aspace *as, struct device *d, unsigned bar);
/* Every mapping made through handle h goes (the handle was closed). */
void aspace_revoke_handle(struct aspace *as, handle_t h);
bool aspace_device_mapped(const struct aspace *as, const struct device *d, unsigned bar);

#endif
