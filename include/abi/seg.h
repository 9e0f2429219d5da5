/*
 * ABI layer: segments, device access and what the memory server learns from
 * the kernel.
 */
#ifndef ABI_SEG_H
#define ABI_SEG_H

#include <abi/types.h>

/* What SYS_SEG_INFO (owner) and SYS_MS_SEG_QUERY (memory server) report. */
struct abi_seg_info {
    uint64_t sid;        /* global segment id: the memory server's name for it */
    uint64_t size;       /* bytes */
    uint64_t vaddr;      /* where the owner has it mapped, 0 if unmapped */
    uint64_t phys;       /* physical base: for the memory server, or while pinned; else 0 */
    uint64_t owner_pid;  /* 0: quarantined or held by the kernel */
    uint32_t pins;       /* pin nesting depth */
    uint32_t flags;      /* SEG_INFO_* */
};
ABI_STATIC_ASSERT(sizeof(struct abi_seg_info) == 48, "seg info layout");

#define SEG_INFO_LARGE_PAGES 0x1u /* mapped with 2 MiB pages (all of it that is aligned) */
#define SEG_INFO_QUARANTINED 0x2u /* its process ended while it was pinned */
#define SEG_INFO_MODULE      0x4u /* a boot module image */

/* Protection for SYS_SEG_GIVE. */
#define SEG_PROT_WRITE 0x1u
#define SEG_PROT_EXEC  0x2u

/*
 * The memory server's boot information (SYS_MS_BOOTINFO, one entry per
 * index): first every RAM region, then every span already in use inside
 * them. Spans of kind KERNEL are the kernel's for good; spans of kind
 * SEGMENT are segments (sid) like any other, movable. All other RAM is free.
 */
enum abi_mem_kind {
    ABI_MEM_REGION = 1,  /* a RAM region (gaps between regions are holes) */
    ABI_MEM_KERNEL = 2,  /* in use by the kernel: never moves */
    ABI_MEM_SEGMENT = 3, /* in use by segment `sid` */
};
struct abi_mem_range {
    uint64_t base, size;
    uint64_t sid;
    uint32_t kind;
    uint32_t reserved;
};
ABI_STATIC_ASSERT(sizeof(struct abi_mem_range) == 32, "mem range layout");

/* A segment that came back to the memory server (SYS_MS_RECLAIMED). */
struct abi_reclaim {
    uint64_t sid, phys, size;
    uint64_t pid;        /* the process that ended holding it */
    uint32_t flags;      /* SEG_INFO_QUARANTINED: still pinned, frames must not be reused */
    uint32_t reserved;
};
ABI_STATIC_ASSERT(sizeof(struct abi_reclaim) == 40, "reclaim layout");

/* A PCI memory BAR mapped into a driver (SYS_DEV_MAP_BAR). */
struct abi_bar_info {
    uint64_t vaddr, size, phys;
};
ABI_STATIC_ASSERT(sizeof(struct abi_bar_info) == 24, "bar info layout");

#endif
