/*
 * Kernel layer: mappings of physical ranges the direct map does not cover
 * (it maps RAM only): device registers and firmware tables, in a window of
 * the shared kernel half (IOREMAP_AREA_*, arch/layout.h). Callers: the ACPI
 * table reader (kernel/core/acpi_tables.c), the IOMMU driver (its register
 * pages) and the IOMMU self-test (the edu device's registers). The
 * implementation is arch code (kernel/arch/x86_64/ioremap.c).
 *
 * Mappings cost window space and, the first time a 2 MiB stretch of the
 * window is used, one page-table frame from the kernel pool that stays for
 * later mappings. Nothing here checks what lies at the physical address:
 * callers map device memory only as IOREMAP_MMIO and never RAM that way
 * (the direct map's cached alias would conflict with it).
 */
#ifndef KERNEL_IOREMAP_H
#define KERNEL_IOREMAP_H

#include <stdbool.h>
#include <stdint.h>

enum ioremap_kind {
    IOREMAP_MMIO,     /* uncached, read-write: device registers */
    IOREMAP_FIRMWARE, /* cached, read-only: ACPI tables, the BIOS areas */
};

/*
 * Maps [phys, phys + size), any alignment (whole pages around it are
 * mapped), and sets *out to phys's address in the window. -EINVAL for size
 * 0, a range that wraps or ends beyond the CPU's physical address width
 * (a page-table entry with such an address would fault), -ENOSPC when the
 * window is full, -ENOMEM without pool frames for tables.
 */
int ioremap(uint64_t phys, uint64_t size, enum ioremap_kind kind, void **out);

/* Removes a mapping ioremap made (any address inside it) and flushes it
 * from the TLB. An address ioremap did not return is a kernel bug. */
void iounmap(void *va);

/* Whether [phys, phys + size) lies below the CPU's physical address width. */
bool ioremap_phys_ok(uint64_t phys, uint64_t size);

#endif
