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
 */
#include <abi/errno.h>
#include <arch/pci.h>
#include <common/fmt.h>
#include <kernel/console.h>
#include <kernel/device.h>
#include <kernel/slab.h>

#define PCI_VENDOR_ID        0x00
#define PCI_DEVICE_ID        0x02
#define PCI_COMMAND          0x04
#define PCI_HEADER_TYPE      0x0E
#define PCI_BAR0             0x10
#define PCI_BAR_COUNT        6u
#define PCI_ROM_BASE         0x30
#define PCI_VENDOR_ABSENT    0xFFFFu

#define PCI_COMMAND_MEMORY      0x0002u
#define PCI_HEADER_MULTIFUNCTION 0x80u
#define PCI_HEADER_LAYOUT_MASK  0x7Fu
#define PCI_HEADER_GENERAL      0x00u /* type 0: an endpoint, six BARs */

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
    unsigned refs;
    struct device *next_open;
};

static struct slab_cache device_cache;
static bool cache_ready;
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
    if (!cache_ready) {
        slab_cache_init(&device_cache, "device", sizeof(struct device));
        cache_ready = true;
    }
    struct device *d = slab_alloc(&device_cache);
    if (!d)
        return -ENOMEM;
    d->address = a;
    d->vendor = vendor;
    d->device = device;
    d->header_layout = read8(a, PCI_HEADER_TYPE) & PCI_HEADER_LAYOUT_MASK;
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
    VERIFY(d->refs > 0);
    if (--d->refs)
        return;
    struct device **link = &open_devices;
    while (*link != d) {
        VERIFY(*link);
        link = &(*link)->next_open;
    }
    *link = d->next_open;
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

/* Registers that place the device in the physical address space. */
static bool placement_register(const struct device *d, unsigned offset, unsigned width)
{
    if (d->header_layout != PCI_HEADER_GENERAL)
        return !(offset >= PCI_COMMAND && offset + width <= PCI_COMMAND + 4);
    return overlaps(offset, width, PCI_BAR0, PCI_BAR0 + 4 * PCI_BAR_COUNT) ||
           overlaps(offset, width, PCI_ROM_BASE, PCI_ROM_BASE + 4);
}

int device_config_write(struct device *d, unsigned offset, unsigned width, uint32_t value)
{
    if (!access_ok(offset, width))
        return -EINVAL;
    if (placement_register(d, offset, width))
        return -EPERM;
    pci_config_write(d->address, offset, width, value);
    return 0;
}

static bool bar_is_mem64(uint32_t raw)
{
    return !(raw & PCI_BAR_IO) && (raw & PCI_BAR_MEM_TYPE) == PCI_BAR_MEM_64;
}

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

struct pci_address device_address(const struct device *d)
{
    return d->address;
}

void device_describe(const struct device *d, char *buf, size_t len)
{
    fmt_snprintf(buf, len, "%02x:%02x.%x %04x:%04x", d->address.bus, d->address.device, d->address.function,
                 d->vendor, d->device);
}
