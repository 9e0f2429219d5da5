/*
 * ABI layer: segments, device access and what the memory server learns from
 * the kernel.
 */
#ifndef ABI_SEG_H
#define ABI_SEG_H

#include <abi/types.h>

/* What SYS_SEG_INFO (owner) and SYS_MS_SEG_QUERY (memory server) report. */
struct abi_seg_info {
    uint64_t sid;       /* global segment id: the memory server's name for it */
    uint64_t size;      /* bytes */
    uint64_t vaddr;     /* where the owner has it mapped, 0 if unmapped */
    uint64_t phys;      /* physical base (an address gives no access: only a pin lets a device at it) */
    uint64_t owner_pid; /* 0: quarantined or held by the kernel */
    uint32_t pins;      /* pin nesting depth */
    uint32_t flags;     /* SEG_INFO_* */
    uint32_t rights;    /* of the holder's handle (RIGHT_*): its mapping follows them */
    uint32_t reserved;
    uint64_t payer_pid; /* the process whose account it is charged to (0: the kernel's own) */
};
ABI_STATIC_ASSERT(sizeof(struct abi_seg_info) == 64, "seg info layout");

#define SEG_INFO_LARGE_PAGES 0x1u  /* mapped with 2 MiB pages (all of it that is aligned) */
#define SEG_INFO_QUARANTINED 0x2u  /* no holder, and a device may still reach it: frames locked */
#define SEG_INFO_MODULE      0x4u  /* a boot module image */
#define SEG_INFO_DMA         0x8u  /* a device may reach it: pinned, or unpinned but not yet quiesced */
#define SEG_INFO_IN_FLIGHT   0x10u /* a blocked send carries it */

/* SYS_MS_SEG_DESTROY's result when a device may still reach the frames:
 * the kernel keeps the segment quarantined, and it comes through
 * SYS_MS_RECLAIMED again (without SEG_INFO_QUARANTINED) once released. */
#define SEG_DESTROY_QUARANTINED 1

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

/* A segment that came back to the memory server (SYS_MS_RECLAIMED): its
 * holder ended, or its quarantine ended (it may be destroyed now). */
struct abi_reclaim {
    uint64_t sid, phys, size;
    uint64_t pid;   /* the process that ended holding it */
    uint32_t flags; /* SEG_INFO_QUARANTINED: a device may reach it, frames must not be reused */
    uint32_t reserved;
};
ABI_STATIC_ASSERT(sizeof(struct abi_reclaim) == 40, "reclaim layout");

/* A segment whose DMA state changed since the memory server last heard
 * (SYS_MS_DMA_CHANGES): its state now. A busy segment (pinned, or
 * unpinned but not yet out of its device's reach) may not move. */
struct abi_dma_change {
    uint64_t sid;
    uint32_t busy; /* 1: a device may reach it; 0: it may move again */
    uint32_t reserved;
};
ABI_STATIC_ASSERT(sizeof(struct abi_dma_change) == 16, "dma change layout");

/* One segment, as SYS_MS_SEGMENTS lists them (a restarted memory server
 * rebuilds its books from these). */
struct abi_seg_record {
    uint64_t sid, phys, size;
    uint64_t owner_pid; /* its holder; 0: the kernel holds it (boot module, reclaimed, quarantined) */
    uint64_t payer_pid; /* whose account pays for it; 0: nobody's (the kernel's boot segments) */
    uint32_t flags;     /* SEG_INFO_*: QUARANTINED, MODULE, DMA (a device may reach it), IN_FLIGHT,
                            SEG_RECORD_RECLAIMED (ownerless, waiting in or taken from the reclaim queue) */
    uint32_t pins;
};
ABI_STATIC_ASSERT(sizeof(struct abi_seg_record) == 48, "segment record layout");
#define SEG_RECORD_RECLAIMED 0x80000000u
#define SEG_RECORD_REPORTED  0x40000000u /* with RECLAIMED: already handed out by SYS_MS_RECLAIMED */

/* A batch of segments handed to a client (SYS_MS_SEG_GIVE) or taken back
 * from one (SYS_MS_SEG_FREE): at most SEG_BATCH_MAX, all or none. */
#define SEG_BATCH_MAX 16

/* One segment of SYS_MS_SEG_GIVE: a segment the server holds, named by
 * sid, becomes the client's, mapped with every segment right. */
struct abi_seg_give {
    uint64_t sid;    /* in */
    handle_t handle; /* out: the client's handle */
    uint64_t vaddr;  /* out: where it is mapped in the client */
};
ABI_STATIC_ASSERT(sizeof(struct abi_seg_give) == 24, "seg give layout");

/* One segment of SYS_MS_SEG_FREE: a segment the client holds, named by
 * its handle, is destroyed (or quarantined, as SYS_MS_SEG_DESTROY). */
struct abi_seg_free {
    handle_t handle; /* in: the client's handle */
    uint64_t sid;    /* out */
    uint64_t result; /* out: 0, or SEG_DESTROY_QUARANTINED */
};
ABI_STATIC_ASSERT(sizeof(struct abi_seg_free) == 24, "seg free layout");

/* A PCI memory BAR mapped into a driver (SYS_DEV_MAP_BAR). */
struct abi_bar_info {
    uint64_t vaddr, size, phys;
};
ABI_STATIC_ASSERT(sizeof(struct abi_bar_info) == 24, "bar info layout");

#endif
