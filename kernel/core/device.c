/*
 * Kernel layer: PCI devices for user-mode drivers (interface and rules in
 * kernel/device.h). The syscall layer calls in with a device it found
 * through a handle; configuration cycles go through arch/pci.h.
 *
 * A device object names one PCI function. Objects come from a slab cache
 * and are refcounted (one reference per handle); the open ones sit on a
 * list so that a function has at most one object however often it is
 * opened. Nothing is cached from configuration space but the ids and the
 * header type, which do not change: BARs are read when asked for.
 *
 * BAR sizing writes all ones to the BAR and reads back which address bits
 * stick. While the BAR holds that value the device would decode a bogus
 * range, so memory decode is off around the probe; the kernel runs with
 * interrupts off on one CPU, so nothing can touch the device meanwhile.
 *
 * Bus mastering belongs to the kernel: opening a function that is not a
 * bridge turns it off, a driver's config write may never change it, and
 * only device_set_bus_master (SYS_DEV_DMA, for a holder of RIGHT_DMA)
 * turns it on or off. The MSI and MSI-X capabilities (where a device is
 * told which address to write to raise an interrupt) are the kernel's too:
 * a driver's write to them is refused, since a device can be made to write
 * any memory through them.
 */
#include <abi/errno.h>
#include <arch/pci.h>
#include <common/fmt.h>
#include <common/list.h>
#include <kernel/console.h>
#include <kernel/device.h>
#include <kernel/iommu.h>
#include <kernel/notification.h>
#include <kernel/ref.h>
#include <kernel/slab.h>

#define PCI_VENDOR_ID      0x00
#define PCI_DEVICE_ID      0x02
#define PCI_COMMAND        0x04
#define PCI_STATUS         0x06
#define PCI_CLASS          0x0B
#define PCI_HEADER_TYPE    0x0E
#define PCI_CAPABILITIES   0x34
#define PCI_INTERRUPT_LINE 0x3C
#define PCI_INTERRUPT_PIN  0x3D
#define PCI_BAR0           0x10
#define PCI_BAR_COUNT      6u
#define PCI_ROM_BASE       0x30
#define PCI_VENDOR_ABSENT  0xFFFFu

#define PCI_COMMAND_MEMORY       0x0002u
#define PCI_COMMAND_MASTER       0x0004u
#define PCI_STATUS_CAPABILITIES  0x0010u
#define PCI_CLASS_BRIDGE         0x06u
#define PCI_CAP_MSI              0x05u
#define PCI_CAP_MSIX             0x11u
#define PCI_CAP_EXPRESS          0x10u
#define PCI_CAP_MSI_SIZE         24u /* control, 64-bit address, data, mask, pending: the largest form */
#define PCI_CAP_MSIX_SIZE        12u /* control, table and pending-bit-array locations */
#define PCI_CAPS_MAX             48u /* a list longer than the space can hold is a loop */
#define PCI_HEADER_MULTIFUNCTION 0x80u
#define PCI_HEADER_LAYOUT_MASK   0x7Fu
#define PCI_HEADER_GENERAL       0x00u /* type 0: an endpoint, six BARs */

#define PCI_BAR_IO           0x1u
#define PCI_BAR_MEM_TYPE     0x6u
#define PCI_BAR_MEM_32       0x0u
#define PCI_BAR_MEM_BELOW_1M 0x2u /* legacy; decodes like a 32-bit BAR */
#define PCI_BAR_MEM_64       0x4u
#define PCI_BAR_MEM_FLAGS    0xFu

struct device {
    struct pci_address address;
    uint16_t vendor, device;
    uint8_t header_layout; /* header type without the multifunction bit */
    uint8_t class_code;
    uint8_t msi_cap, msix_cap; /* config offsets of the capabilities (0: none) */
    uint8_t pcie_cap;          /* the PCI Express capability's (0: a conventional PCI function) */
    int16_t irq_line;          /* its INTx line as firmware routed it, read at open; -1: none */
    uint32_t refs;
    struct device *next_open;
    struct list_node dma_segments;  /* segments pinned for it or tainted by it */
    struct iommu_domain *domain;    /* with an IOMMU: what it may reach (pinned segments only) */
    struct notify_bit fault_notify; /* where DMA faults the IOMMU blocked are signalled */
    uint64_t fault_pid;             /* the process that bound them */
    uint64_t master_pid;            /* the process that turned bus mastering on (0: nobody) */
};

static struct slab_cache device_cache = SLAB_CACHE("device", sizeof(struct device));
static struct device *open_devices;

static uint16_t read16(struct pci_address a, unsigned offset) { return (uint16_t)pci_config_read(a, offset, 2); }
static uint8_t read8(struct pci_address a, unsigned offset) { return (uint8_t)pci_config_read(a, offset, 1); }

static bool same_address(struct pci_address a, struct pci_address b)
{
    return a.bus == b.bus && a.device == b.device && a.function == b.function;
}

/* The index-th present function with these ids, in bus order. */
static bool find_function(uint16_t vendor, uint16_t device, unsigned index, struct pci_address *found)
{
    unsigned seen = 0;
    for (unsigned bus = 0; bus < PCI_BUSES; bus++) {
        for (unsigned dev = 0; dev < PCI_DEVICES_PER_BUS; dev++) {
            struct pci_address a = { (uint8_t)bus, (uint8_t)dev, 0 };
            if (read16(a, PCI_VENDOR_ID) == PCI_VENDOR_ABSENT)
                continue;
            unsigned functions = read8(a, PCI_HEADER_TYPE) & PCI_HEADER_MULTIFUNCTION ? PCI_FUNCTIONS_PER_DEVICE : 1;
            for (unsigned fn = 0; fn < functions; fn++) {
                a.function = (uint8_t)fn;
                uint16_t v = read16(a, PCI_VENDOR_ID);
                if (v == PCI_VENDOR_ABSENT || v != vendor || read16(a, PCI_DEVICE_ID) != device)
                    continue;
                if (seen++ == index) {
                    *found = a;
                    return true;
                }
            }
        }
    }
    return false;
}

/* Walks the capability list (bounded: a malicious or broken device may
 * link it in a loop) for the capabilities that aim the device's writes. */
static void find_capabilities(struct device *d)
{
    if (!(read16(d->address, PCI_STATUS) & PCI_STATUS_CAPABILITIES))
        return;
    unsigned at = read8(d->address, PCI_CAPABILITIES) & 0xFCu;
    for (unsigned seen = 0; at >= 0x40 && at < PCI_CONFIG_SIZE && seen < PCI_CAPS_MAX; seen++) {
        uint8_t id = read8(d->address, at);
        if (id == PCI_CAP_MSI && !d->msi_cap)
            d->msi_cap = (uint8_t)at;
        if (id == PCI_CAP_MSIX && !d->msix_cap)
            d->msix_cap = (uint8_t)at;
        if (id == PCI_CAP_EXPRESS && !d->pcie_cap)
            d->pcie_cap = (uint8_t)at;
        at = read8(d->address, at + 1) & 0xFCu;
    }
}

int device_open(uint16_t vendor, uint16_t device, unsigned index, struct device **out)
{
    struct pci_address a;
    if (!find_function(vendor, device, index, &a))
        return -ENOENT;
    for (struct device *d = open_devices; d; d = d->next_open) {
        if (same_address(d->address, a)) {
            d->refs++;
            *out = d;
            return 0;
        }
    }
    struct device *d = slab_alloc(&device_cache);
    if (!d)
        return -ENOMEM;
    d->address = a;
    d->vendor = vendor;
    d->device = device;
    d->header_layout = read8(a, PCI_HEADER_TYPE) & PCI_HEADER_LAYOUT_MASK;
    d->class_code = read8(a, PCI_CLASS);
    find_capabilities(d);
    /* Read once: the register is a driver-writable scratch byte, and a
     * driver could otherwise name a line that is not its device's. */
    uint8_t pin = read8(a, PCI_INTERRUPT_PIN), line = read8(a, PCI_INTERRUPT_LINE);
    d->irq_line = (pin >= 1 && pin <= 4 && line < 16) ? line : -1;
    list_init(&d->dma_segments);
    /* Whatever firmware left on, nobody has been allowed to master yet. */
    device_set_bus_master(d, false);
    /* Behind an IOMMU it reaches nothing until something is pinned for it.
     * A conventional PCI function off the root bus sits behind a bridge
     * that may issue its requests under the bridge's requester id (a
     * PCIe-to-PCI bridge uses its secondary bus, device 0): its domain
     * would be another function's, and another's its. Without a domain
     * of its own it may not master the bus (device_set_bus_master). */
    if (iommu_present() && a.bus != 0 && !d->pcie_cap) {
        char name[24];
        device_describe(d, name, sizeof(name));
        kprintf("device %s: conventional PCI behind a bridge: its DMA may carry another's requester id, so it "
                "may not master the bus\n",
                name);
        d->domain = 0;
    } else if (iommu_present()) {
        int derr = iommu_domain_create(a, &d->domain);
        if (derr) {
            char name[24];
            device_describe(d, name, sizeof(name));
            kprintf("device %s: no IOMMU domain (%d%s), so it may not master the bus\n", name, derr,
                    derr == -ENOTSUP ? ": no remapping unit covers it" : "");
            d->domain = 0;
        }
    }
    d->refs = 1;
    d->next_open = open_devices;
    open_devices = d;
    *out = d;
    return 0;
}

void device_get(struct device *d)
{
    VERIFY(d->refs > 0);
    d->refs++;
}

void device_put(struct device *d)
{
    if (!ref_drop(&d->refs))
        return;
    struct device **link = &open_devices;
    while (*link != d) {
        VERIFY(*link);
        link = &(*link)->next_open;
    }
    *link = d->next_open;
    VERIFY(list_empty(&d->dma_segments));
    /* Nobody drives it any more: it may not master. */
    device_set_bus_master(d, false);
    if (d->domain)
        iommu_domain_destroy(d->domain);
    notify_bit_unbind(&d->fault_notify);
    slab_free(&device_cache, d);
}

static bool access_ok(unsigned offset, unsigned width)
{
    return (width == 1 || width == 2 || width == 4) && offset < PCI_CONFIG_SIZE && offset % width == 0;
}

int device_config_read(struct device *d, unsigned offset, unsigned width, uint32_t *value)
{
    if (!access_ok(offset, width))
        return -EINVAL;
    *value = pci_config_read(d->address, offset, width);
    return 0;
}

static bool overlaps(unsigned offset, unsigned width, unsigned start, unsigned end)
{
    return offset < end && start < offset + width;
}

/* Registers that place the device in the physical address space, or aim
 * its interrupt writes. */
static bool kernel_register(const struct device *d, unsigned offset, unsigned width)
{
    if (d->msi_cap && overlaps(offset, width, d->msi_cap, d->msi_cap + PCI_CAP_MSI_SIZE))
        return true;
    if (d->msix_cap && overlaps(offset, width, d->msix_cap, d->msix_cap + PCI_CAP_MSIX_SIZE))
        return true;
    if (d->header_layout != PCI_HEADER_GENERAL)
        return !(offset >= PCI_COMMAND && offset + width <= PCI_COMMAND + 4);
    return overlaps(offset, width, PCI_BAR0, PCI_BAR0 + 4 * PCI_BAR_COUNT) ||
           overlaps(offset, width, PCI_ROM_BASE, PCI_ROM_BASE + 4);
}

int device_config_write(struct device *d, unsigned offset, unsigned width, uint32_t value)
{
    if (!access_ok(offset, width))
        return -EINVAL;
    if (width < 4 && value >> (8 * width))
        return -EINVAL; /* wider than the register: refused, not cut */
    if (kernel_register(d, offset, width))
        return -EPERM;
    if (offset <= PCI_COMMAND && offset + width > PCI_COMMAND) {
        /* The command register's low byte: everything but bus mastering. */
        uint32_t master = PCI_COMMAND_MASTER << (8 * (PCI_COMMAND - offset));
        uint32_t now = pci_config_read(d->address, offset, width);
        if ((value ^ now) & master)
            return -EPERM;
    }
    pci_config_write(d->address, offset, width, value);
    return 0;
}

bool device_bus_master(const struct device *d)
{
    return pci_config_read(d->address, PCI_COMMAND, 2) & PCI_COMMAND_MASTER;
}

/* A bridge's bit forwards the DMA of the devices behind it, which have
 * bits of their own: the kernel leaves bridges as firmware set them. */
static bool is_bridge(const struct device *d)
{
    return d->class_code == PCI_CLASS_BRIDGE || d->header_layout != PCI_HEADER_GENERAL;
}

bool device_is_express(const struct device *d) { return d->pcie_cap != 0; }

bool device_masters(const struct device *d) { return !is_bridge(d) && device_bus_master(d); }

int device_set_bus_master(struct device *d, bool on)
{
    /* Fail closed: with an IOMMU in use, a function no unit translates
     * for (outside every scope, or made to bypass it) would reach all of
     * memory untranslated, and the no-IOMMU quarantine is off. */
    if (is_bridge(d) || (on && iommu_present() && !d->domain))
        return -ENOTSUP;
    uint16_t command = (uint16_t)pci_config_read(d->address, PCI_COMMAND, 2);
    uint16_t want = on ? (uint16_t)(command | PCI_COMMAND_MASTER) : (uint16_t)(command & ~PCI_COMMAND_MASTER);
    if (want != command)
        pci_config_write(d->address, PCI_COMMAND, 2, want);
    /* Reading back pushes the write through any bridge before we go on. */
    (void)pci_config_read(d->address, PCI_COMMAND, 2);
    return 0;
}

struct list_node *device_dma_segments(struct device *d) { return &d->dma_segments; }

int device_irq_line(const struct device *d) { return d->irq_line; }

int device_dma_map(struct device *d, uint64_t phys, uint64_t size, bool writable)
{
    if (!iommu_present())
        return 0; /* no IOMMU: the device reaches all memory already */
    if (!d->domain)
        return -ENOTSUP;
    /* Identity: the address a pin returns is the one the device is given. */
    int err = iommu_map_check(d->domain, phys, phys, size);
    return err ? err : iommu_map(d->domain, phys, phys, size, writable);
}

bool device_dma_unmap(struct device *d, uint64_t phys, uint64_t size)
{
    if (!iommu_present() || !d->domain)
        return !iommu_present() ? false : true;
    /* Returns once the IOTLB no longer holds the mapping. */
    iommu_unmap(d->domain, phys, size);
    return true;
}

int device_fault_bind(struct device *d, struct notification *n, unsigned bit, uint64_t pid)
{
    int err = notify_bit_bind(&d->fault_notify, n, bit);
    if (!err)
        d->fault_pid = pid;
    return err;
}

void device_set_master_by(struct device *d, uint64_t pid) { d->master_pid = pid; }

struct iommu_domain *device_take_domain(struct device *d)
{
    VERIFY(list_empty(&d->dma_segments));
    struct iommu_domain *domain = d->domain;
    d->domain = 0;
    return domain;
}

bool device_driver_gone(struct device *d, uint64_t pid)
{
    if (d->fault_pid == pid)
        notify_bit_unbind(&d->fault_notify);
    if (!d->master_pid || d->master_pid != pid)
        return false;
    d->master_pid = 0;
    (void)device_set_bus_master(d, false);
    return true;
}

void device_dma_fault(struct pci_address a, uint64_t addr, bool write, unsigned reason)
{
    (void)addr, (void)write, (void)reason; /* the IOMMU driver has logged them */
    for (struct device *d = open_devices; d; d = d->next_open)
        if (same_address(d->address, a))
            notify_bit_signal(&d->fault_notify);
}

static bool bar_is_mem64(uint32_t raw) { return !(raw & PCI_BAR_IO) && (raw & PCI_BAR_MEM_TYPE) == PCI_BAR_MEM_64; }

bool device_bar_is_upper_half(const uint32_t bars[6], unsigned bar)
{
    unsigned i = 0;
    while (i < bar)
        i += bar_is_mem64(bars[i]) ? 2 : 1;
    return i != bar;
}

int device_bar_decode(uint32_t low, uint32_t high, uint32_t probe_low, uint32_t probe_high, uint64_t *phys,
                      uint64_t *size)
{
    if (low & PCI_BAR_IO)
        return -EINVAL;
    uint32_t type = low & PCI_BAR_MEM_TYPE;
    uint64_t base, mask;
    if (type == PCI_BAR_MEM_64) {
        base = (uint64_t)high << 32 | (low & ~PCI_BAR_MEM_FLAGS);
        mask = (uint64_t)probe_high << 32 | (probe_low & ~PCI_BAR_MEM_FLAGS);
    } else if (type == PCI_BAR_MEM_32 || type == PCI_BAR_MEM_BELOW_1M) {
        base = low & ~PCI_BAR_MEM_FLAGS;
        /* Address bits above 32 do not exist, so they count as fixed. */
        uint32_t probe = probe_low & ~PCI_BAR_MEM_FLAGS;
        mask = probe ? 0xFFFFFFFF00000000ull | probe : 0;
    } else {
        return -EINVAL;
    }
    if (!mask)
        return -EINVAL; /* unimplemented: no address bit is writable */
    uint64_t bytes = ~mask + 1;
    /* Writable bits must run from the top down to the size bit. */
    if (bytes & (bytes - 1))
        return -EINVAL;
    if (!base || base & (bytes - 1) || base + (bytes - 1) < base)
        return -EINVAL; /* unassigned, or a base no real BAR can hold */
    *phys = base;
    *size = bytes;
    return 0;
}

int device_bar(struct device *d, unsigned bar, uint64_t *phys, uint64_t *size)
{
    if (bar >= PCI_BAR_COUNT || d->header_layout != PCI_HEADER_GENERAL)
        return -EINVAL;
    struct pci_address a = d->address;
    uint32_t bars[PCI_BAR_COUNT];
    for (unsigned i = 0; i <= bar; i++)
        bars[i] = pci_config_read(a, PCI_BAR0 + 4 * i, 4);
    if (device_bar_is_upper_half(bars, bar) || bars[bar] & PCI_BAR_IO)
        return -EINVAL;
    bool wide = bar_is_mem64(bars[bar]);
    if (wide && bar + 1 == PCI_BAR_COUNT)
        return -EINVAL; /* its upper half would be past the last BAR */
    unsigned low_reg = PCI_BAR0 + 4 * bar, high_reg = low_reg + 4;
    uint32_t low = bars[bar], high = wide ? pci_config_read(a, high_reg, 4) : 0;

    uint16_t command = (uint16_t)pci_config_read(a, PCI_COMMAND, 2);
    pci_config_write(a, PCI_COMMAND, 2, command & ~PCI_COMMAND_MEMORY);
    pci_config_write(a, low_reg, 4, 0xFFFFFFFFu);
    uint32_t probe_low = pci_config_read(a, low_reg, 4), probe_high = 0;
    pci_config_write(a, low_reg, 4, low);
    if (wide) {
        pci_config_write(a, high_reg, 4, 0xFFFFFFFFu);
        probe_high = pci_config_read(a, high_reg, 4);
        pci_config_write(a, high_reg, 4, high);
    }
    pci_config_write(a, PCI_COMMAND, 2, command);
    return device_bar_decode(low, high, probe_low, probe_high, phys, size);
}

struct pci_address device_address(const struct device *d) { return d->address; }

void device_describe(const struct device *d, char *buf, size_t len)
{
    fmt_snprintf(buf, len, "%02x:%02x.%x %04x:%04x", d->address.bus, d->address.device, d->address.function, d->vendor,
                 d->device);
}
