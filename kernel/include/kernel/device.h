/*
 * Kernel layer: PCI devices opened for user-mode drivers. The syscall layer
 * (SYS_DEV_*) calls these after resolving a device handle; a handle holds
 * one reference. A driver may read all of its device's configuration space
 * and write most of it, but never the registers that place the device in
 * the physical address space (BARs, expansion ROM): those stay where the
 * firmware put them, so a mapped BAR cannot be moved over RAM the driver
 * does not own.
 *
 * Every function validates its arguments and returns -E* (abi/errno.h);
 * none panics on a caller's values.
 */
#ifndef KERNEL_DEVICE_H
#define KERNEL_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <arch/pci.h>
#include <common/list.h>

struct device;

/* The index-th function (0-based) with this vendor and device id, scanning
 * buses 0..255, devices 0..31 and, on multifunction devices, functions
 * 0..7. Opening a function that is already open returns the same object
 * with one more reference. -ENOENT if there is no such match, -ENOMEM. */
int device_open(uint16_t vendor, uint16_t device, unsigned index, struct device **out);
void device_get(struct device *d);
void device_put(struct device *d);

/* width 1, 2 or 4; offset a multiple of width and < 256, else -EINVAL. */
int device_config_read(struct device *d, unsigned offset, unsigned width, uint32_t *value);
/* The same checks, and -EINVAL for a value wider than width; -EPERM for a
 * write touching a BAR (0x10..0x27) or the expansion ROM base (0x30..0x33)
 * of a type-0 header, the MSI or MSI-X capability, or one that would change
 * the bus-master bit of the command register. Other header types (bridges)
 * have address windows all over their header: only the command and status
 * registers (0x04..0x07) are writable there. */
int device_config_write(struct device *d, unsigned offset, unsigned width, uint32_t value);
/* Bus mastering, which only the kernel changes. Turning it off (and
 * reading the command register back) stops the device's DMA. -ENOTSUP
 * for a bridge (class 6), which the kernel leaves alone. */
bool device_bus_master(const struct device *d);
int device_set_bus_master(struct device *d, bool on);
/* Whether it has the PCI Express capability (else conventional PCI). */
bool device_is_express(const struct device *d);
/* Whether the device itself may do DMA now: its bit is on, and it is no
 * bridge (whose bit only forwards what the devices behind it do). */
bool device_masters(const struct device *d);
/* The segments pinned for this device or tainted by it (segment.c's list;
 * the device only keeps the head). */
struct list_node *device_dma_segments(struct device *d);
/* The device's legacy interrupt line (0..15) as firmware routed it, read
 * when the device was opened; -1 if it has none. */
int device_irq_line(const struct device *d);
/* DMA reach of pinned frames. With an IOMMU (each device opened gets a
 * domain of its own), map gives the device the frames at their physical
 * addresses and unmap takes them away, returning true once the IOTLB no
 * longer holds them; without one the device reaches all memory, map does
 * nothing and unmap returns false: the frames stay reachable until the
 * device is quiesced. map: 0, -ENOMEM, -EEXIST, -ENOTSUP (no domain). */
int device_dma_map(struct device *d, uint64_t phys, uint64_t size, bool writable);
bool device_dma_unmap(struct device *d, uint64_t phys, uint64_t size);
/* Faults the IOMMU blocks for this device set `bit` of n, until process pid
 * lets go of the device. -EBUSY bound. */
struct notification;
int device_fault_bind(struct device *d, struct notification *n, unsigned bit, uint64_t pid);
/* The device's IOMMU domain, taken from it (the boot self-test drives the
 * domain itself): the device can reach nothing until it is opened anew. */
struct iommu_domain;
struct iommu_domain *device_take_domain(struct device *d);
/* Process pid turned the device's bus mastering on: it goes off when pid
 * lets go of the device (device_driver_gone). */
void device_set_master_by(struct device *d, uint64_t pid);
/* Process pid dropped a handle with RIGHT_DMA to d: what it bound goes,
 * and if it had turned mastering on, mastering goes off (returns true: the
 * device is quiesced). */
bool device_driver_gone(struct device *d, uint64_t pid);
/* The IOMMU's fault handler (iommu_set_fault_handler). */
void device_dma_fault(struct pci_address a, uint64_t addr, bool write, unsigned reason);
/* Physical base and size of memory BAR `bar` (type-0 headers only), sized
 * by the all-ones probe with memory decode off. -EINVAL for bar > 5, an I/O
 * BAR, an unimplemented or unassigned BAR, or the upper half of a 64-bit
 * BAR. The size is the BAR's own (it may be below a page). */
int device_bar(struct device *d, unsigned bar, uint64_t *phys, uint64_t *size);
/* The function's bus address: what the IOMMU knows it by (kernel/iommu.h). */
struct pci_address device_address(const struct device *d);
/* "bb:dd.f vvvv:dddd", NUL-terminated, cut to len. */
void device_describe(const struct device *d, char *buf, size_t len);

/*
 * Pure helpers of device_bar, exposed for the host tests.
 * bars: the six raw BAR registers. True when `bar` is the upper half of the
 * 64-bit memory BAR below it.
 */
bool device_bar_is_upper_half(const uint32_t bars[6], unsigned bar);
/* A memory BAR from its raw value(s) and what the all-ones probe read back
 * (high and probe_high: the upper register of a 64-bit BAR, else ignored).
 * 0 with phys and size set, or -EINVAL as device_bar describes, or for a
 * malformed BAR (non-contiguous size mask, reserved type, base not aligned
 * to its size, range wrapping past 2^64). */
int device_bar_decode(uint32_t low, uint32_t high, uint32_t probe_low, uint32_t probe_high, uint64_t *phys,
                      uint64_t *size);

#endif
