/*
 * Kernel layer: finding the firmware's ACPI tables at boot. The RSDP comes
 * from the boot loader's multiboot2 tags (15, then 14) or, failing those,
 * from the BIOS areas; tables are copied out of physical memory through the
 * ioremap window and checked by common/acpi.h before anyone reads them.
 * Callers: the IOMMU driver (DMAR) and, later, SMP bring-up (MADT).
 */
#ifndef KERNEL_ACPI_TABLES_H
#define KERNEL_ACPI_TABLES_H

#include <stddef.h>
#include <common/acpi.h>
#include <kernel/multiboot.h>

/*
 * Finds the RSDP and opens the RSDT or XSDT, printing where they are (or
 * why there are none). `acpi.rsdp=bios` on the kernel command line makes
 * it ignore the boot loader's copies and search the BIOS areas. 0, or -ENOENT (no RSDP anywhere)
 * or -EINVAL (what was found was refused). Later calls return the first
 * call's result. `info` must stay valid: reads are limited to the ranges
 * its memory map lists, plus the first MiB (BIOS areas).
 */
int acpi_tables_init(const struct mb_info *info);

/* Copies table sig into buf (cap bytes) as acpi_find_table does, after a
 * successful acpi_tables_init (-ENOENT otherwise). */
int acpi_table_copy(const char *sig, void *buf, size_t cap, size_t *len, struct acpi_error *err);

#endif
