/*
 * Kernel layer: the virtual area allocator of one address space. It decides
 * where in a process the kernel maps a segment (IPC transfer, memsrv grants)
 * and records the fixed areas the loader places (ELF segments, stacks). It
 * only keeps the books of addresses: page tables are the caller's business.
 * Callers: the address-space code of kernel/core (one struct vmareas per
 * process), and the host tests in tests/host/vmarea.
 *
 * Pure C, no heap: the area array lives in 4 KiB pages obtained from the
 * caller's page provider. No locking of its own: the address space that
 * owns the instance (kernel/aspace.h) serialises every call. See
 * kernel/core/vmarea.c for the theory.
 */
#ifndef KERNEL_VMAREA_H
#define KERNEL_VMAREA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <abi/types.h>

#define VMAREA_PAGE_SIZE  ABI_PAGE_SIZE
#define VMAREA_LARGE_SIZE ABI_LARGE_PAGE_SIZE

/* Elements of the area array per element page, and element pages per
 * directory page: one 8-byte word each, so both are 4096 / 8. */
#define VMAREA_PER_PAGE  512u
#define VMAREA_MAX_PAGES 512u
#define VMAREA_MAX_AREAS ((uint64_t)VMAREA_PER_PAGE * VMAREA_MAX_PAGES)

/* Quick-fit classes: 0 holds free areas larger than VMAREA_QUICK_PAGES
 * pages, class k (1..64) free areas of exactly k pages. The lists share one
 * page: 65 lists of 7 eight-byte addresses = 3640 of 4096 bytes. */
#define VMAREA_QUICK_PAGES   64u
#define VMAREA_QUICK_CLASSES (VMAREA_QUICK_PAGES + 1u)
#define VMAREA_QUICK_DEPTH   7u

/* The page provider: get_page returns a zeroed 4 KiB page or NULL. */
struct vmarea_pages {
    void *(*get_page)(void *ctx);
    void (*put_page)(void *ctx, void *page);
    void *ctx;
};

struct vmareas {
    uint64_t base, limit; /* managed range [base, limit) */
    uint64_t count;       /* areas in the array, used and free; >= 1 */
    uint64_t hint;        /* index of the area last carved or freed: a guess, checked before use */
    uint64_t unmerged;    /* if has_unmerged: the free area whose merge is put off */
    bool has_unmerged;
    uint64_t **directory; /* element pages; [0, element_pages) non-NULL */
    uint32_t element_pages;
    uint32_t pages_held; /* element pages + directory + quick page */
    uint64_t *quick;     /* class c's list: quick[c * DEPTH .. + len[c]) */
    uint8_t quick_len[VMAREA_QUICK_CLASSES];
    bool quick_complete[VMAREA_QUICK_CLASSES]; /* list holds every such area */
    uint64_t quick_nonempty;                   /* bit c - 1 set: list c (1..64) has an entry */
    struct vmarea_pages pages;
};

/* Manages [base, limit); both page aligned, base < limit. -EINVAL, -ENOMEM. */
int vmareas_init(struct vmareas *a, uint64_t base, uint64_t limit, const struct vmarea_pages *pages);
/* Returns every page to the provider; the areas are forgotten. */
void vmareas_destroy(struct vmareas *a);
/* The kernel picks an address for size bytes (a page multiple; 2 MiB aligned
 * when size >= 2 MiB). -EINVAL bad size, -ENOSPC no room, -ENOMEM no page for
 * the array. On failure nothing changed. */
int vmareas_alloc(struct vmareas *a, uint64_t size, uint64_t *addr);
/* The same, but an area of at least 2 MiB starts at phase (a page multiple,
 * taken modulo 2 MiB) past a 2 MiB boundary, as the memory it will map
 * does: then every whole large page inside it maps as one. */
int vmareas_alloc_phased(struct vmareas *a, uint64_t size, uint64_t phase, uint64_t *addr);
/* Marks [addr, addr + size) used. -EINVAL misaligned or zero, -ERANGE outside
 * [base, limit), -EEXIST overlaps a used area, -ENOMEM. */
int vmareas_reserve(struct vmareas *a, uint64_t addr, uint64_t size);
/* Frees the used area starting at addr, reports its size (size may be NULL).
 * -ENOENT if no used area starts there. Never needs a page. */
int vmareas_free(struct vmareas *a, uint64_t addr, uint64_t *size);
/* The used area containing addr, or -ENOENT. start and size may be NULL. */
int vmareas_find(const struct vmareas *a, uint64_t addr, uint64_t *start, uint64_t *size);
/* Areas in the array, used and free. */
uint64_t vmareas_count(const struct vmareas *a);
/* Verifies every invariant; 0, or -EINVAL with *why naming the broken one. */
int vmareas_check(const struct vmareas *a, const char **why);

/* Does the merge a free put off (vmarea.c, theory 3a) now, so that no two
 * free areas are adjacent: for tests and debug dumps that count areas. */
void vmareas_settle(struct vmareas *a);
/* The i-th area in address order (i < count), for tests and debug dumps. */
void vmareas_area(const struct vmareas *a, uint64_t i, uint64_t *start, uint64_t *size, bool *used);

#endif
