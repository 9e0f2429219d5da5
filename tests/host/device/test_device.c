/*
 * Host tests of kernel/core/device.c. The PCI bus is simulated here: each
 * function has a 256-byte configuration space whose BAR registers keep
 * only their writable address bits, as hardware does, so the all-ones
 * probe reads back the size mask. The fake records a BAR written while
 * memory decode was on. The slab cache is calloc with a switch to fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <abi/errno.h>
#include <arch/pci.h>
#include <kernel/console.h>
#include <kernel/device.h>
#include <kernel/iommu.h>
#include <kernel/notification.h>
#include <kernel/slab.h>

/* ---- the simulated bus ---- */

struct fake_function {
    struct pci_address address;
    uint8_t config[PCI_CONFIG_SIZE];
    uint32_t bar_writable[6]; /* address bits a BAR register keeps */
};

#define MAX_FUNCTIONS 16
static struct fake_function bus[MAX_FUNCTIONS];
static unsigned functions;
static unsigned bar_writes_while_decoding;
static unsigned config_writes;

static struct fake_function *lookup(struct pci_address a)
{
    for (unsigned i = 0; i < functions; i++)
        if (bus[i].address.bus == a.bus && bus[i].address.device == a.device && bus[i].address.function == a.function)
            return &bus[i];
    return NULL;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t pci_config_read(struct pci_address a, unsigned offset, unsigned width)
{
    assert_true((width == 1 || width == 2 || width == 4) && offset < 256 && offset % width == 0);
    struct fake_function *f = lookup(a);
    uint32_t v = 0;
    for (unsigned i = 0; i < width; i++)
        v |= (uint32_t)(f ? f->config[offset + i] : 0xFF) << (8 * i);
    return v;
}

void pci_config_write(struct pci_address a, unsigned offset, unsigned width, uint32_t value)
{
    assert_true((width == 1 || width == 2 || width == 4) && offset < 256 && offset % width == 0);
    config_writes++;
    struct fake_function *f = lookup(a);
    if (!f)
        return;
    for (unsigned i = 0; i < width; i++) {
        unsigned at = offset + i;
        uint8_t byte = (uint8_t)(value >> (8 * i));
        if (at >= 0x10 && at < 0x28) {
            unsigned reg = (at - 0x10) / 4, shift = 8 * (at % 4);
            uint8_t keep = (uint8_t)(f->bar_writable[reg] >> shift);
            if (f->config[0x04] & 0x02)
                bar_writes_while_decoding++;
            f->config[at] = (uint8_t)((f->config[at] & ~keep) | (byte & keep));
        } else {
            f->config[at] = byte;
        }
    }
}

static struct fake_function *add_function(uint8_t b, uint8_t d, uint8_t fn, uint16_t vendor, uint16_t device,
                                          uint8_t header_type)
{
    assert_true(functions < MAX_FUNCTIONS);
    struct fake_function *f = &bus[functions++];
    memset(f, 0, sizeof(*f));
    f->address = (struct pci_address){ b, d, fn };
    f->config[0] = (uint8_t)vendor;
    f->config[1] = (uint8_t)(vendor >> 8);
    f->config[2] = (uint8_t)device;
    f->config[3] = (uint8_t)(device >> 8);
    f->config[0x04] = 0x07; /* I/O, memory, bus master on, as firmware leaves them */
    f->config[0x0E] = header_type;
    return f;
}

/* A memory BAR of `size` bytes at `base`: flags are read-only, address
 * bits below the size read as zero. */
static void set_bar32(struct fake_function *f, unsigned reg, uint32_t base, uint32_t size, uint32_t flags)
{
    f->bar_writable[reg] = ~(size - 1);
    put32(&f->config[0x10 + 4 * reg], base | flags);
}

static void set_bar64(struct fake_function *f, unsigned reg, uint64_t base, uint64_t size, uint32_t flags)
{
    uint64_t writable = ~(size - 1);
    f->bar_writable[reg] = (uint32_t)writable & ~0xFu;
    put32(&f->config[0x10 + 4 * reg], (uint32_t)base | flags | 0x4);
    if (reg + 1 < 6) { /* a malformed one in the last slot has no upper half */
        f->bar_writable[reg + 1] = (uint32_t)(writable >> 32);
        put32(&f->config[0x10 + 4 * (reg + 1)], (uint32_t)(base >> 32));
    }
}

/* ---- the kernel services device.c uses ---- */

static long slab_outstanding;
static bool slab_fail;

void slab_cache_init(struct slab_cache *c, const char *name, size_t object_size)
{
    memset(c, 0, sizeof(*c));
    c->name = name;
    c->object_size = object_size;
}

void *slab_alloc(struct slab_cache *c)
{
    if (slab_fail)
        return NULL;
    slab_outstanding++;
    c->in_use++;
    return calloc(1, c->object_size);
}

void slab_free(struct slab_cache *c, void *object)
{
    slab_outstanding--;
    c->in_use--;
    free(object);
}

/* ---- a fake IOMMU and notifications ---- */

static bool fake_iommu;
static int domains_live, maps_live;
struct iommu_domain {
    int id;
};
static struct iommu_domain domain_store[MAX_FUNCTIONS];

bool iommu_present(void) { return fake_iommu; }

int iommu_domain_create(struct pci_address dev, struct iommu_domain **out)
{
    (void)dev;
    domains_live++;
    *out = &domain_store[domains_live % MAX_FUNCTIONS];
    return 0;
}

void iommu_domain_destroy(struct iommu_domain *domain)
{
    (void)domain;
    domains_live--;
}

int iommu_map_check(struct iommu_domain *domain, uint64_t iova, uint64_t phys, uint64_t size)
{
    (void)domain, (void)iova, (void)phys, (void)size;
    return 0;
}

int iommu_map(struct iommu_domain *domain, uint64_t iova, uint64_t phys, uint64_t size, bool writable)
{
    (void)domain, (void)size, (void)writable;
    assert_int_equal(iova, phys); /* identity */
    maps_live++;
    return 0;
}

void iommu_unmap(struct iommu_domain *domain, uint64_t iova, uint64_t size)
{
    (void)domain, (void)iova, (void)size;
    maps_live--;
}

int kprintf(const char *fmt, ...)
{
    (void)fmt;
    return 0;
}

static unsigned signals;
void notification_get(struct notification *n) { (void)n; }
void notification_put(struct notification *n) { (void)n; }
void notification_signal(struct notification *n, uint64_t bits)
{
    (void)n, (void)bits;
    signals++;
}

void panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fail_msg("kernel panic");
    abort();
}

static int reset(void **state)
{
    (void)state;
    fake_iommu = false;
    domains_live = maps_live = 0;
    signals = 0;
    functions = 0;
    bar_writes_while_decoding = 0;
    config_writes = 0;
    slab_fail = false;
    return 0;
}

static int all_returned(void **state)
{
    (void)state;
    assert_int_equal(slab_outstanding, 0);
    return 0;
}

/* ---- the tests ---- */

static void test_open_scans_in_bus_order(void **state)
{
    (void)state;
    add_function(0, 0, 0, 0x8086, 0x1237, 0x00);
    add_function(0, 4, 0, 0x1234, 0x11e8, 0x00);
    add_function(3, 31, 0, 0x1234, 0x11e8, 0x00);
    add_function(255, 31, 0, 0x1234, 0x11e8, 0x00);

    struct device *d[3];
    char text[32];
    const char *want[] = { "00:04.0 1234:11e8", "03:1f.0 1234:11e8", "ff:1f.0 1234:11e8" };
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(device_open(0x1234, 0x11e8, i, &d[i]), 0);
        device_describe(d[i], text, sizeof(text));
        assert_string_equal(text, want[i]);
    }
    assert_int_equal(device_open(0x1234, 0x11e8, 3, &d[0]), -ENOENT);
    assert_int_equal(device_open(0x1234, 0x11e9, 0, &d[0]), -ENOENT);
    assert_int_equal(device_open(0xFFFF, 0xFFFF, 0, &d[0]), -ENOENT); /* absent slots do not match */
    device_describe(d[0], text, 8);
    assert_string_equal(text, "00:04.0");
    for (unsigned i = 0; i < 3; i++)
        device_put(d[i]);
}

static void test_open_multifunction(void **state)
{
    (void)state;
    /* Device 1 is multifunction: its function 5 counts. Device 2 is not:
     * what answers at its function 3 is not a function of it. */
    add_function(0, 1, 0, 0x8086, 0x7000, 0x80);
    add_function(0, 1, 5, 0x1234, 0x0001, 0x00);
    add_function(0, 2, 0, 0x8086, 0x7010, 0x00);
    add_function(0, 2, 3, 0x1234, 0x0001, 0x00);
    add_function(0, 3, 0, 0x1234, 0x0001, 0x00);

    struct device *d;
    char text[32];
    assert_int_equal(device_open(0x1234, 0x0001, 0, &d), 0);
    device_describe(d, text, sizeof(text));
    assert_string_equal(text, "00:01.5 1234:0001");
    device_put(d);
    assert_int_equal(device_open(0x1234, 0x0001, 1, &d), 0);
    device_describe(d, text, sizeof(text));
    assert_string_equal(text, "00:03.0 1234:0001");
    device_put(d);
    assert_int_equal(device_open(0x1234, 0x0001, 2, &d), -ENOENT);
}

static void test_open_shares_and_refcounts(void **state)
{
    (void)state;
    add_function(0, 4, 0, 0x1234, 0x11e8, 0x00);
    struct device *a, *b;
    assert_int_equal(device_open(0x1234, 0x11e8, 0, &a), 0);
    assert_int_equal(device_open(0x1234, 0x11e8, 0, &b), 0);
    assert_ptr_equal(a, b);
    assert_int_equal(slab_outstanding, 1);
    device_get(a);
    device_put(a);
    device_put(a);
    assert_int_equal(slab_outstanding, 1);
    device_put(b);
    assert_int_equal(slab_outstanding, 0);

    slab_fail = true;
    assert_int_equal(device_open(0x1234, 0x11e8, 0, &a), -ENOMEM);
    assert_int_equal(slab_outstanding, 0);
}

static void test_config_read_checks(void **state)
{
    (void)state;
    struct fake_function *f = add_function(0, 4, 0, 0x1234, 0x11e8, 0x00);
    put32(&f->config[0xFC], 0xdeadbeef);
    struct device *d;
    assert_int_equal(device_open(0x1234, 0x11e8, 0, &d), 0);
    uint32_t v = 0;
    assert_int_equal(device_config_read(d, 0, 4, &v), 0);
    assert_int_equal(v, 0x11e81234);
    assert_int_equal(device_config_read(d, 2, 2, &v), 0);
    assert_int_equal(v, 0x11e8);
    assert_int_equal(device_config_read(d, 0xFF, 1, &v), 0);
    assert_int_equal(v, 0xde);
    assert_int_equal(device_config_read(d, 0xFC, 4, &v), 0);
    assert_int_equal(v, 0xdeadbeef);

    v = 0x5555;
    unsigned writes_after_open = config_writes;
    const unsigned bad[][2] = { { 0, 0 },   { 0, 3 },   { 0, 8 },           { 1, 2 },           { 2, 4 },
                                { 256, 1 }, { 256, 4 }, { 0xFFFFFFFFu, 1 }, { 0, 0xFFFFFFFFu }, { 0xFE, 4 } };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(device_config_read(d, bad[i][0], bad[i][1], &v), -EINVAL);
        assert_int_equal(device_config_write(d, bad[i][0], bad[i][1], 0), -EINVAL);
    }
    assert_int_equal(v, 0x5555);
    assert_int_equal(config_writes, writes_after_open);
    /* A value wider than the register is refused, not cut. */
    assert_int_equal(device_config_write(d, 0x3C, 1, 0x100), -EINVAL);
    assert_int_equal(device_config_write(d, 0x3C, 2, 0x10000), -EINVAL);
    assert_int_equal(config_writes, writes_after_open);
    assert_int_equal(device_config_write(d, 0x3C, 1, 0xFF), 0);
    device_put(d);
}

static bool touches(unsigned offset, unsigned width, unsigned start, unsigned end)
{
    return offset < end && start < offset + width;
}

static void test_config_write_guards_placement(void **state)
{
    (void)state;
    struct fake_function *f = add_function(0, 4, 0, 0x1234, 0x11e8, 0x00);
    set_bar32(f, 0, 0xfea00000, 1 << 20, 0);
    struct fake_function *bridge = add_function(0, 5, 0, 0x8086, 0x2448, 0x01);
    struct device *d, *b;
    assert_int_equal(device_open(0x1234, 0x11e8, 0, &d), 0);
    assert_int_equal(device_open(0x8086, 0x2448, 0, &b), 0);

    for (unsigned width = 1; width <= 4; width *= 2) {
        for (unsigned offset = 0; offset < 256; offset += width) {
            bool placement = touches(offset, width, 0x10, 0x28) || touches(offset, width, 0x30, 0x34);
            unsigned before = config_writes;
            int r = device_config_write(d, offset, width, 0);
            assert_int_equal(r, placement ? -EPERM : 0);
            assert_int_equal(config_writes, before + (placement ? 0 : 1));

            bool command = offset >= 0x04 && offset + width <= 0x08;
            assert_int_equal(device_config_write(b, offset, width, bridge->config[offset]), command ? 0 : -EPERM);
        }
    }
    assert_int_equal(get32(&f->config[0x10]), 0xfea00000);

    /* The command register is the driver's for decode; bus mastering is
     * the kernel's, in every width that reaches it. */
    uint32_t v;
    assert_int_equal(device_config_write(d, 0x04, 2, 0x0002), 0);
    assert_int_equal(device_config_write(d, 0x04, 2, 0x0006), -EPERM);
    assert_int_equal(device_config_write(d, 0x04, 1, 0x06), -EPERM);
    assert_int_equal(device_config_write(d, 0x04, 4, 0x00000006), -EPERM);
    assert_int_equal(device_config_write(d, 0x05, 1, 0x01), 0); /* the high byte: no master bit there */
    assert_int_equal(device_config_read(d, 0x04, 2, &v), 0);
    assert_int_equal(v, 0x0102);
    assert_false(device_bus_master(d));
    assert_int_equal(device_set_bus_master(d, true), 0);
    assert_true(device_bus_master(d));
    /* Now the bit is on: a write that keeps it is the driver's, one that
     * clears it is refused too. */
    assert_int_equal(device_config_write(d, 0x04, 2, 0x0106), 0);
    assert_int_equal(device_config_write(d, 0x04, 2, 0x0102), -EPERM);
    assert_int_equal(device_set_bus_master(d, false), 0);
    assert_false(device_bus_master(d));
    /* Bridges are left as firmware set them. */
    assert_int_equal(device_set_bus_master(b, false), -ENOTSUP);
    device_put(d);
    device_put(b);
}

/* Opening a device takes bus mastering away (firmware may have left it
 * on); a device nobody holds any more loses it too. */
static void test_bus_master_is_the_kernels(void **state)
{
    (void)state;
    struct fake_function *f = add_function(0, 4, 0, 0x1234, 0x11e8, 0x00);
    struct device *d;
    assert_true(f->config[0x04] & 0x04);
    assert_int_equal(device_open(0x1234, 0x11e8, 0, &d), 0);
    assert_false(f->config[0x04] & 0x04);
    assert_int_equal(device_set_bus_master(d, true), 0);
    assert_true(f->config[0x04] & 0x04);
    device_put(d);
    assert_false(f->config[0x04] & 0x04);
}

/* With an IOMMU each device gets a domain at open, gone with its last
 * reference; pins map identity and unmaps take the frames away at once.
 * Without one, unmapping leaves them within reach (false). */
static void test_iommu_domains(void **state)
{
    (void)state;
    add_function(0, 4, 0, 0x1234, 0x11e8, 0x00);
    struct device *d;
    assert_int_equal(device_open(0x1234, 0x11e8, 0, &d), 0);
    assert_int_equal(device_dma_map(d, 0x100000, 4096, true), 0);
    assert_false(device_dma_unmap(d, 0x100000, 4096));
    device_put(d);

    fake_iommu = true;
    assert_int_equal(device_open(0x1234, 0x11e8, 0, &d), 0);
    assert_int_equal(domains_live, 1);
    assert_int_equal(device_dma_map(d, 0x100000, 4096, true), 0);
    assert_int_equal(maps_live, 1);
    assert_true(device_dma_unmap(d, 0x100000, 4096));
    assert_int_equal(maps_live, 0);
    /* Faults reach the bound notification bit. */
    struct notification *n = (struct notification *)&signals;
    assert_int_equal(device_fault_bind(d, n, 63, 7), -EINVAL);
    assert_int_equal(device_fault_bind(d, n, 2, 7), 0);
    assert_int_equal(device_fault_bind(d, n, 3, 8), -EBUSY);
    device_dma_fault((struct pci_address){ 0, 4, 0 }, 0x1000, true, 5);
    device_dma_fault((struct pci_address){ 0, 5, 0 }, 0x1000, true, 5); /* someone else's */
    assert_int_equal(signals, 1);
    /* The binding and bus mastering go with the process that set them. */
    device_set_bus_master(d, true);
    device_set_master_by(d, 7);
    assert_false(device_driver_gone(d, 8));
    assert_true(device_bus_master(d));
    assert_true(device_driver_gone(d, 7));
    assert_false(device_bus_master(d));
    assert_int_equal(device_fault_bind(d, n, 3, 8), 0);
    device_put(d);
    assert_int_equal(domains_live, 0);
}

/* The MSI and MSI-X capabilities aim the device's writes: the kernel's. */
static void test_msi_capabilities_refused(void **state)
{
    (void)state;
    struct fake_function *f = add_function(0, 4, 0, 0x1234, 0x11e8, 0x00);
    f->config[0x06] = 0x10; /* status: a capability list */
    f->config[0x34] = 0x40;
    f->config[0x40] = 0x09; /* vendor-specific, then ... */
    f->config[0x41] = 0x50;
    f->config[0x50] = 0x05; /* MSI at 0x50, then ... */
    f->config[0x51] = 0x70;
    f->config[0x70] = 0x11; /* MSI-X at 0x70, end */
    f->config[0x71] = 0x00;
    struct device *d;
    assert_int_equal(device_open(0x1234, 0x11e8, 0, &d), 0);
    assert_int_equal(device_config_write(d, 0x42, 2, 0x1234), 0);
    for (unsigned offset = 0x50; offset < 0x50 + 24; offset += 4)
        assert_int_equal(device_config_write(d, offset, 4, 0), -EPERM);
    assert_int_equal(device_config_write(d, 0x54, 1, 0xee), -EPERM); /* the address register, a byte */
    for (unsigned offset = 0x70; offset < 0x70 + 12; offset += 4)
        assert_int_equal(device_config_write(d, offset, 4, 0), -EPERM);
    assert_int_equal(device_config_write(d, 0x7C, 4, 0), 0); /* past it */
    assert_int_equal(device_config_write(d, 0x68, 4, 0), 0); /* between them */
    device_put(d);

    /* A looping list is walked a bounded number of times. */
    struct fake_function *g = add_function(0, 5, 0, 0x1234, 0x11e9, 0x00);
    g->config[0x06] = 0x10;
    g->config[0x34] = 0x40;
    g->config[0x40] = 0x09;
    g->config[0x41] = 0x40;
    assert_int_equal(device_open(0x1234, 0x11e9, 0, &d), 0);
    assert_int_equal(device_config_write(d, 0x50, 4, 0), 0);
    device_put(d);
}

static void test_bar_probe(void **state)
{
    (void)state;
    struct fake_function *f = add_function(0, 4, 0, 0x1234, 0x11e8, 0x00);
    set_bar32(f, 0, 0xfea00000, 1 << 20, 0x8); /* 32-bit, prefetchable */
    put32(&f->config[0x14], 0xc001);           /* I/O BAR */
    f->bar_writable[1] = 0xFFFFFFE0;
    set_bar64(f, 2, 0x800000000ull, 1ull << 33, 0x8); /* 8 GiB above 32 GiB */
    /* BAR 4 unimplemented (reads zero, nothing writable) */
    set_bar64(f, 5, 0x10000000ull, 1 << 12, 0); /* 64-bit in the last slot */
    f->config[0x04] = 0x02;                     /* memory decode on, no bus mastering */
    uint8_t before[256];
    memcpy(before, f->config, sizeof(before));

    struct device *d;
    assert_int_equal(device_open(0x1234, 0x11e8, 0, &d), 0);
    uint64_t phys = 1, size = 1;
    assert_int_equal(device_bar(d, 0, &phys, &size), 0);
    assert_int_equal(phys, 0xfea00000);
    assert_int_equal(size, 1 << 20);
    assert_int_equal(device_bar(d, 2, &phys, &size), 0);
    assert_int_equal(phys, 0x800000000ull);
    assert_int_equal(size, 1ull << 33);

    phys = size = 7;
    assert_int_equal(device_bar(d, 1, &phys, &size), -EINVAL); /* I/O */
    assert_int_equal(device_bar(d, 3, &phys, &size), -EINVAL); /* upper half of BAR 2 */
    assert_int_equal(device_bar(d, 4, &phys, &size), -EINVAL); /* unimplemented */
    assert_int_equal(device_bar(d, 5, &phys, &size), -EINVAL); /* no room for its upper half */
    assert_int_equal(device_bar(d, 6, &phys, &size), -EINVAL);
    assert_int_equal(device_bar(d, 0xFFFFFFFFu, &phys, &size), -EINVAL);
    assert_int_equal(phys, 7);
    assert_int_equal(size, 7);

    assert_memory_equal(before, f->config, sizeof(before)); /* every BAR and the command register restored */
    assert_int_equal(bar_writes_while_decoding, 0);
    device_put(d);
}

static void test_bar_on_bridge_refused(void **state)
{
    (void)state;
    struct fake_function *f = add_function(0, 5, 0, 0x8086, 0x2448, 0x01);
    set_bar32(f, 0, 0xfe000000, 1 << 12, 0);
    struct device *d;
    uint64_t phys, size;
    assert_int_equal(device_open(0x8086, 0x2448, 0, &d), 0);
    assert_int_equal(device_bar(d, 0, &phys, &size), -EINVAL);
    assert_int_equal(config_writes, 0);
    device_put(d);
}

static void test_upper_half(void **state)
{
    (void)state;
    const uint32_t mixed[6] = { 0x4, 0, 0x1, 0x0, 0xc, 0 };
    const bool upper[6] = { false, true, false, false, false, true };
    for (unsigned i = 0; i < 6; i++)
        assert_int_equal(device_bar_is_upper_half(mixed, i), upper[i]);
    /* An I/O BAR whose bit 2 is set is not a 64-bit memory BAR. */
    const uint32_t io[6] = { 0x5, 0, 0, 0, 0, 0 };
    assert_false(device_bar_is_upper_half(io, 1));
}

static void test_decode(void **state)
{
    (void)state;
    struct {
        uint32_t low, high, probe_low, probe_high;
        int result;
        uint64_t phys, size;
    } cases[] = {
        { 0xfea00000, 0, 0xfff00000, 0, 0, 0xfea00000, 1 << 20 },
        { 0xfea00008, 0, 0xfff00008, 0, 0, 0xfea00000, 1 << 20 },   /* prefetchable */
        { 0x000d0002, 0, 0xffff0002, 0, 0, 0xd0000, 1 << 16 },      /* below-1M type */
        { 0xfebf1000, 0xdead, 0xfffff000, 0, 0, 0xfebf1000, 4096 }, /* 32-bit: high ignored */
        { 0xfebf1010, 0, 0xfffffff0, 0, 0, 0xfebf1010, 16 },        /* tiny */
        { 0x80000000, 0, 0x80000000, 0, 0, 0x80000000, 1ull << 31 },
        { 0x0000000c, 0x1, 0x0000000c, 0xffffffff, 0, 1ull << 32, 1ull << 32 },
        { 0xc000000c, 0x8, 0xc000000c, 0xffffffff, 0, 0x8c0000000ull, 1ull << 30 },
        { 0x00000004, 0x80000000, 0x00000004, 0x80000000, 0, 1ull << 63, 1ull << 63 },
        { 0xc0001, 0, 0xffffffe1, 0, -EINVAL, 0, 0 },    /* I/O */
        { 0, 0, 0, 0, -EINVAL, 0, 0 },                   /* unimplemented */
        { 0x4, 0, 0x4, 0, -EINVAL, 0, 0 },               /* unimplemented 64-bit */
        { 0, 0, 0xfff00000, 0, -EINVAL, 0, 0 },          /* unassigned */
        { 0xfea00006, 0, 0xfff00006, 0, -EINVAL, 0, 0 }, /* reserved type */
        { 0xfea00000, 0, 0xff0f0000, 0, -EINVAL, 0, 0 }, /* holes in the mask */
        { 0xfea0000c, 0, 0xfff0000c, 0, -EINVAL, 0, 0 }, /* 64-bit, high not writable */
        { 0xfea80000, 0, 0xfff00000, 0, -EINVAL, 0, 0 }, /* base not aligned */
    };
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t phys = 0x1234, size = 0x5678;
        int r = device_bar_decode(cases[i].low, cases[i].high, cases[i].probe_low, cases[i].probe_high, &phys, &size);
        if (r != cases[i].result)
            fail_msg("case %u: %d, expected %d", i, r, cases[i].result);
        if (r == 0 && (phys != cases[i].phys || size != cases[i].size))
            fail_msg("case %u: %#llx+%#llx", i, (unsigned long long)phys, (unsigned long long)size);
        if (r != 0 && (phys != 0x1234 || size != 0x5678))
            fail_msg("case %u: outputs written on failure", i);
    }
}

/* Each test on a fresh bus, and every device object returned at its end. */
#define BUS_TEST(fn) cmocka_unit_test_setup_teardown(fn, reset, all_returned)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BUS_TEST(test_open_scans_in_bus_order),
        BUS_TEST(test_open_multifunction),
        BUS_TEST(test_open_shares_and_refcounts),
        BUS_TEST(test_config_read_checks),
        BUS_TEST(test_config_write_guards_placement),
        BUS_TEST(test_bar_probe),
        BUS_TEST(test_bar_on_bridge_refused),
        BUS_TEST(test_bus_master_is_the_kernels),
        BUS_TEST(test_iommu_domains),
        BUS_TEST(test_msi_capabilities_refused),
        cmocka_unit_test(test_upper_half),
        cmocka_unit_test(test_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
