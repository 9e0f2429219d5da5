/*
 * Kernel layer: DMA remapping (the IOMMU). With remapping hardware a PCI
 * function reaches memory only through a domain: page tables the kernel
 * builds for that one function, which map exactly what the function may
 * reach. A function without a domain reaches nothing: its DMA is blocked
 * by the hardware and reported as a fault. Callers: kmain (iommu_init), the
 * timer tick (iommu_poll_faults) and, through the device layer, pinning
 * (map on pin, unmap on unpin). The one implementation is Intel VT-d
 * (kernel/arch/x86_64/iommu_vtd.c); on machines without one (QEMU pc,
 * Bochs) iommu_present() is false and DMA is not isolated.
 *
 * Addresses: a domain maps I/O virtual addresses (what the device is
 * programmed with) to physical ones. Identity mappings (iova == phys) and
 * any other iova both work; see the driver's header for the trade-off.
 *
 * Every call validates first and then changes state in a step that cannot
 * fail. The kernel runs on one CPU with interrupts off, so nothing else
 * touches a domain while a call runs.
 */
#ifndef KERNEL_IOMMU_H
#define KERNEL_IOMMU_H

#include <stdbool.h>
#include <stdint.h>
#include <arch/pci.h>
#include <kernel/multiboot.h>

struct iommu_domain;

/*
 * Finds the remapping units in the ACPI DMAR table (through the RSDP that
 * `info` or the BIOS areas give), blocks DMA from every device except what
 * firmware-reserved regions (RMRRs) require, turns translation on and
 * returns the number of units in use. A missing or refused table, or a unit
 * that does not respond, is reported on the console and leaves the system
 * running without isolation: 0 units. Call once, after paging and the timer.
 */
int iommu_init(const struct mb_info *info);

/* Whether at least one remapping unit translates DMA. */
bool iommu_present(void);

/*
 * A new, empty domain attached to function `dev` alone: from now on the
 * function reaches what is mapped into *out and nothing else. -ENOTSUP (no
 * IOMMU, or no unit covers the function), -EINVAL (device > 31 or function
 * > 7), -EBUSY (the function already has a domain, or firmware reserved
 * memory for it: an RMRR device is not handed to drivers), -ENOSPC (no
 * domain id left), -ENOMEM (pool). Nothing changed on failure.
 */
int iommu_domain_create(struct pci_address dev, struct iommu_domain **out);

/* Detaches the function (its DMA is blocked again), invalidates the
 * context cache and IOTLB, then frees every table of the domain. */
void iommu_domain_destroy(struct iommu_domain *domain);

/* Table frames that iommu_map of [iova, iova + size) would take from the
 * pool at most (with 4 KiB pages; 2 MiB pages need fewer). 0 for a range
 * iommu_map would refuse as invalid. */
uint64_t iommu_tables_needed(struct iommu_domain *domain, uint64_t iova, uint64_t size);

/*
 * Maps [iova, iova + size) to [phys, phys + size), readable, and writable
 * if asked; 2 MiB pages where both addresses allow. All or nothing:
 * -EINVAL (zero, unaligned or wrapping), -ERANGE (iova beyond the domain's
 * address width, or phys beyond what the unit can address), -EEXIST (part
 * of the range is already mapped), -ENOMEM (pool) leave the domain as it was.
 */
int iommu_map(struct iommu_domain *domain, uint64_t iova, uint64_t phys, uint64_t size, bool writable);

/* What iommu_map would return now, changing nothing. A caller that checks
 * every step of an operation before changing anything calls this; iommu_map
 * then cannot fail as long as the domain and the pool's free count are as
 * they were (the pool may only have grown). */
int iommu_map_check(struct iommu_domain *domain, uint64_t iova, uint64_t phys, uint64_t size);

/*
 * Removes whatever is mapped in [iova, iova + size) (page aligned; a 2 MiB
 * page must be removed whole) and, before returning, completes an IOTLB
 * invalidation that drains the device's outstanding reads and writes: once
 * this returns the device cannot reach the old frames. Tables left empty
 * go back to the pool after the invalidation.
 */
void iommu_unmap(struct iommu_domain *domain, uint64_t iova, uint64_t size);

/*
 * Reads and clears the units' fault records. Each fault is logged (rate
 * limited) and handed to the fault handler: the requester, the page
 * address it tried, whether it was a write, and the VT-d fault reason
 * (iommu_fault_reason_name). Called from the timer tick (the units' fault
 * interrupts stay masked: see the driver's header) and by anyone who wants
 * a fault seen at once. Cheap when there is nothing to report: one
 * register read per unit.
 */
void iommu_poll_faults(void);

typedef void (*iommu_fault_fn)(struct pci_address dev, uint64_t addr, bool write, unsigned reason);
/* Replaces the handler (NULL: log only); returns the previous one. The
 * handler runs in the timer interrupt (before the scheduler's tick) or in
 * whoever called iommu_poll_faults: it must not block. */
iommu_fault_fn iommu_set_fault_handler(iommu_fault_fn fn);
const char *iommu_fault_reason_name(unsigned reason);

/* Faults seen since boot, and those the hardware dropped for lack of room
 * in its fault records. */
uint64_t iommu_fault_count(void);
uint64_t iommu_faults_lost(void);

/*
 * Boot-time self-test (kernel command line `iommu.selftest`): drives QEMU's
 * edu device (`iso/run --machine q35 --iommu --edu`) through a domain and
 * prints `[PASS] iommu_selftest.NAME` or `[FAIL] iommu_selftest.NAME: why`
 * per check and `iommu selftest: N passed, M failed`. Without an IOMMU or
 * an edu device it fails, saying which is missing. `info` gives it RAM
 * above 4 GiB to reach, when there is some.
 */
void iommu_selftest(const struct mb_info *info);

#endif
