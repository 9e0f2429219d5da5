/*
 * Architecture layer (x86-64): Intel VT-d DMA remapping behind
 * kernel/iommu.h. Called by kmain (iommu_init), the timer tick
 * (iommu_poll_faults) and the device layer (domains for drivers' devices).
 * Tested under QEMU q35 with `-device intel-iommu` (iso/run --iommu) by the
 * boot-time self-test (kernel/core/iommu_selftest.c).
 *
 * What the hardware is given. Each unit gets a root table (one entry per
 * bus) whose context tables (one entry per device.function) start empty:
 * a request from a function without a present context entry is blocked
 * and recorded as a fault. So once translation is on, every device is
 * blocked except the functions firmware reserved memory for (RMRRs: their
 * regions stay mapped 1:1 in a firmware domain) and those given a domain
 * with iommu_domain_create. A domain is one set of second-level page tables
 * (the x86 format: read and write bits, 2 MiB pages; kept by vtd_tables.c,
 * which this file gives the pool and the unit's invalidation) attached to
 * exactly one function. Legacy (not scalable) mode; no interrupt remapping.
 *
 * Identity mappings or I/O virtual addresses. The interface takes both an
 * iova and a physical address, and both work; the device layer is expected
 * to map a pinned segment at iova == phys, so that the address SYS_SEG_PIN
 * returns is what the driver programs into its device.
 *   + The ABI, memsrv and drivers stay as they are: a driver without an
 *     IOMMU programs the same addresses, so one driver runs on both.
 *   + No iova allocator and no per-domain address space to run out of.
 *   + A 2 MiB-aligned segment maps with 2 MiB pages on both sides.
 *   - The device learns physical addresses (an information leak about the
 *     memory layout, not an access: only mapped pages are reachable).
 *   - A device with a narrow DMA mask (edu: 28 bits) can only reach
 *     segments pinned below its limit, as without an IOMMU; an iova could
 *     place any segment low. memsrv's MS_ALLOC_BELOW already serves that.
 *   - RAM above the domain's address width (2^39 with 3-level tables,
 *     2^48 with 4) cannot be mapped 1:1; iommu_map refuses it (-ERANGE).
 * The table depth is the smallest the unit supports that covers all RAM,
 * so identity mappings of any RAM work and walks stay short.
 *
 * Invalidation. Register-based (CCMD and IOTLB registers), waited on by
 * polling: the kernel is single-CPU with interrupts off, and queued
 * invalidation would only add a queue to wait on. iommu_unmap ends with a
 * domain-selective IOTLB invalidation with read and write draining (when
 * the unit offers it): one register write covers any range, the domain
 * belongs to one function so nothing else loses cached translations, and
 * it also drops the paging-structure caches of the tables it frees.
 * Emptied tables go back to the pool only after that invalidation.
 *
 * Faults are polled, from the timer tick and by iommu_poll_faults callers,
 * with the units' fault interrupts masked (FECTL.IM). A fault interrupt is
 * an MSI to a local APIC, and this kernel still runs on the 8259 PICs with
 * the local APIC untouched; polling a status register 1000 times a second
 * costs one uncached read per unit per tick and loses nothing the fault
 * records hold. When SMP brings the local APIC up, FEDATA/FEADDR can carry
 * a vector instead.
 *
 * Not handled: PCI segments other than 0 (configuration mechanism #1 does
 * not reach them), requester-id aliasing (a device behind a PCIe-to-PCI
 * bridge DMAs with the bridge's id: give the domain to the bridge), device
 * TLBs (ATS), and locking for more than one CPU.
 */
#include <abi/errno.h>
#include <arch/arch.h>
#include <arch/pci.h>
#include <common/acpi.h>
#include <common/cmdline.h>
#include <common/fmt.h>
#include <common/string.h>
#include <kernel/acpi_tables.h>
#include <kernel/boot.h>
#include <kernel/console.h>
#include <kernel/iommu.h>
#include <kernel/ioremap.h>
#include <kernel/pool.h>
#include <kernel/slab.h>
#include "vtd_tables.h"

/* Registers (VT-d specification, chapter 11). */
#define REG_VER    0x00
#define REG_CAP    0x08
#define REG_ECAP   0x10
#define REG_GCMD   0x18
#define REG_GSTS   0x1c
#define REG_RTADDR 0x20
#define REG_CCMD   0x28
#define REG_FSTS   0x34
#define REG_FECTL  0x38
#define REG_PMEN   0x64
#define REG_IQH    0x80
#define REG_IQT    0x88

#define CAP_ND(c)    ((unsigned)((c)&7))
#define CAP_RWBF     (1ull << 4)
#define CAP_PMR      (3ull << 5) /* protected low/high memory regions */
#define CAP_CM       (1ull << 7) /* caching mode: not-present entries may be cached */
#define CAP_SAGAW(c) ((unsigned)(((c) >> 8) & 0x1f))
#define SAGAW_3LEVEL 0x2u
#define SAGAW_4LEVEL 0x4u
#define CAP_MGAW(c)  ((unsigned)(((c) >> 16) & 0x3f) + 1)
#define CAP_FRO(c)   ((unsigned)(((c) >> 24) & 0x3ff) * 16)
#define CAP_SLLPS_2M (1ull << 34)
#define CAP_NFR(c)   ((unsigned)(((c) >> 40) & 0xff) + 1)
#define CAP_DWD      (1ull << 54)
#define CAP_DRD      (1ull << 55)
#define ECAP_C       (1ull << 0) /* page walks snoop the CPU caches */
#define ECAP_IRO(e)  ((unsigned)(((e) >> 8) & 0x3ff) * 16)

/* GCMD bits; GSTS reports each at the same position. */
#define GCMD_TE   (1u << 31)
#define GCMD_SRTP (1u << 30)
#define GCMD_WBF  (1u << 27)
#define GCMD_QIE  (1u << 26)
#define GSTS_IRES (1u << 25)
/* The enables a GCMD write must repeat (TE, EAFL, QIE, IRE, CFI); the
 * one-shot commands must not be. */
#define GSTS_PERSISTENT 0x96800000u

#define CCMD_ICC     (1ull << 63)
#define CCMD_GLOBAL  (1ull << 61)
#define CCMD_DEVICE  (3ull << 61)
#define IOTLB_IVT    (1ull << 63)
#define IOTLB_GLOBAL (1ull << 60)
#define IOTLB_DOMAIN (2ull << 60)
#define IOTLB_DR     (1ull << 49)
#define IOTLB_DW     (1ull << 48)

#define FSTS_PFO       (1u << 0)
#define FSTS_PPF       (1u << 1)
#define FSTS_ERRORS    0x7cu /* AFO, APF, IQE, ICE, ITE: write 1 to clear */
#define FSTS_FRI(f)    (((f) >> 8) & 0xffu)
#define FECTL_IM       (1u << 31)
#define PMEN_EPM       (1u << 31)
#define PMEN_PRS       (1u << 0)
#define FRCD_F         (1ull << 63) /* in the record's upper quadword */
#define FRCD_READ      (1ull << 62)
#define FRCD_REASON(h) ((unsigned)((h) >> 32) & 0xffu)
#define FRCD_SID(h)    ((unsigned)(h)&0xffffu)

/* Root, context and second-level entries. */
#define ROOT_PRESENT   1ull
#define CTX_PRESENT    1ull /* translation type 00: untranslated requests, second level */
#define CTX_AW(levels) ((uint64_t)(levels)-2)
#define CTX_DID(did)   ((uint64_t)(did) << 8)
#define ENTRY_ADDR     0x000ffffffffff000ull

#define MAX_DOMAIN_IDS          1024u
#define WAIT_NS                 1000000000ull
#define FAULTS_SHOWN_PER_SECOND 10u
#define DMAR_COPY_MAX           8192u

/* A device scope of a unit, resolved to bus numbers at boot. */
struct unit_scope {
    uint8_t type; /* ACPI_DMAR_SCOPE_ENDPOINT or _BRIDGE */
    struct pci_address dev;
    uint8_t secondary, subordinate; /* a bridge's buses */
};

struct vtd_unit {
    volatile uint8_t *regs;
    uint64_t register_base;
    uint64_t cap, ecap;
    unsigned levels;     /* second-level table depth: 3 (39-bit iova) or 4 (48-bit) */
    uint64_t iova_limit; /* exclusive */
    uint64_t phys_limit; /* exclusive: the DMAR's host address width */
    unsigned fault_offset, fault_records, iotlb_offset;
    uint64_t root; /* physical address of the root table */
    bool include_all;
    struct unit_scope scopes[ACPI_DMAR_MAX_SCOPES];
    unsigned nscopes;
    unsigned did_limit;
    uint8_t did_used[MAX_DOMAIN_IDS / 8];
    uint16_t bus_domains[256]; /* a bus's context table goes when its last domain does */
};

struct iommu_domain {
    struct vtd_unit *unit;
    struct pci_address dev;
    uint16_t did;
    struct vtd_tables tables;
};

static struct vtd_unit units[ACPI_DMAR_MAX_UNITS];
static unsigned nunits;
static struct slab_cache domain_cache = SLAB_CACHE("iommu domain", sizeof(struct iommu_domain));
static iommu_fault_fn fault_handler;
static uint64_t faults_seen, faults_lost;
static uint64_t fault_window_start;
static unsigned faults_shown;
static uint64_t faults_not_shown;

/* ---- registers ---- */

static uint32_t rd32(const struct vtd_unit *u, unsigned reg) { return *(volatile uint32_t *)(u->regs + reg); }
static uint64_t rd64(const struct vtd_unit *u, unsigned reg) { return *(volatile uint64_t *)(u->regs + reg); }
static void wr32(struct vtd_unit *u, unsigned reg, uint32_t v) { *(volatile uint32_t *)(u->regs + reg) = v; }
static void wr64(struct vtd_unit *u, unsigned reg, uint64_t v) { *(volatile uint64_t *)(u->regs + reg) = v; }

/* Polls until (register & mask) == want; false after WAIT_NS. */
static bool wait_reg(const struct vtd_unit *u, unsigned reg, bool wide, uint64_t mask, uint64_t want)
{
    uint64_t deadline = arch_time_ns() + WAIT_NS;
    while (((wide ? rd64(u, reg) : rd32(u, reg)) & mask) != want)
        if (arch_time_ns() > deadline)
            return false;
    return true;
}

/* After boot a unit that stops completing commands cannot be trusted to
 * block anything any more: that is not something to carry on from. */
static void must(const struct vtd_unit *u, bool done, const char *what)
{
    if (!done)
        panic("iommu: the unit at %#lx did not complete %s within a second", u->register_base, what);
}

/* Sets (or clears) a GCMD enable and waits for GSTS to follow. */
static bool global_enable(struct vtd_unit *u, uint32_t bit, bool on)
{
    uint32_t status = rd32(u, REG_GSTS) & GSTS_PERSISTENT;
    wr32(u, REG_GCMD, on ? status | bit : status & ~bit);
    return wait_reg(u, REG_GSTS, false, bit, on ? bit : 0);
}

static bool flush_write_buffer(struct vtd_unit *u)
{
    if (!(u->cap & CAP_RWBF))
        return true;
    wr32(u, REG_GCMD, (rd32(u, REG_GSTS) & GSTS_PERSISTENT) | GCMD_WBF);
    return wait_reg(u, REG_GSTS, false, GCMD_WBF, 0);
}

static bool context_invalidate(struct vtd_unit *u, uint64_t command)
{
    if (!flush_write_buffer(u))
        return false;
    wr64(u, REG_CCMD, CCMD_ICC | command);
    return wait_reg(u, REG_CCMD, true, CCMD_ICC, 0);
}

static bool iotlb_invalidate(struct vtd_unit *u, uint64_t command)
{
    if (!flush_write_buffer(u))
        return false;
    uint64_t drain = (u->cap & CAP_DRD ? IOTLB_DR : 0) | (u->cap & CAP_DWD ? IOTLB_DW : 0);
    wr64(u, u->iotlb_offset + 8, IOTLB_IVT | command | drain);
    return wait_reg(u, u->iotlb_offset + 8, true, IOTLB_IVT, 0);
}

static void invalidate_all(struct vtd_unit *u)
{
    must(u, context_invalidate(u, CCMD_GLOBAL), "a global context-cache invalidation");
    must(u, iotlb_invalidate(u, IOTLB_GLOBAL), "a global IOTLB invalidation");
}

static void invalidate_domain_iotlb(struct iommu_domain *d)
{
    must(d->unit, iotlb_invalidate(d->unit, IOTLB_DOMAIN | (uint64_t)d->did << 32), "an IOTLB invalidation");
}

/* ---- root and context tables ---- */

static uint64_t *table(uint64_t entry) { return (uint64_t *)phys_to_virt(entry & ENTRY_ADDR); }

/* A unit whose walks do not snoop the caches reads tables from memory:
 * entries must be written back before the unit may look at them. */
static void publish(const struct vtd_unit *u, const void *p, size_t len)
{
    if (u->ecap & ECAP_C)
        return;
    for (uintptr_t line = (uintptr_t)p & ~63ul; line < (uintptr_t)p + len; line += 64)
        __asm__ volatile("clflush (%0)" ::"r"(line) : "memory");
    __asm__ volatile("mfence" ::: "memory");
}

/* A zeroed table, zero in memory too before the unit can be pointed at it. */
static uint64_t new_table(const struct vtd_unit *u)
{
    uint64_t phys = pool_alloc_frame();
    if (phys) {
        arch_zero_pages(phys_to_virt(phys), PAGE_SIZE);
        publish(u, phys_to_virt(phys), PAGE_SIZE);
    }
    return phys;
}

static void set_entry(const struct vtd_unit *u, uint64_t *e, uint64_t v)
{
    *e = v;
    publish(u, e, sizeof *e);
}

/* The 16-byte root entry of `bus` and context entry of dev, as two words. */
static uint64_t *root_entry(const struct vtd_unit *u, uint8_t bus) { return &table(u->root)[2 * bus]; }

static uint64_t *context_entry(const struct vtd_unit *u, struct pci_address dev)
{
    uint64_t root = root_entry(u, dev.bus)[0];
    if (!(root & ROOT_PRESENT))
        return 0;
    return &table(root)[2 * (dev.device * 8u + dev.function)];
}

static uint16_t requester_id(struct pci_address dev)
{
    return (uint16_t)(dev.bus << 8 | dev.device << 3 | dev.function);
}

/* ---- which unit a device belongs to ---- */

#define PCI_VENDOR_ID       0x00
#define PCI_SECONDARY_BUS   0x19
#define PCI_SUBORDINATE_BUS 0x1a

/* Follows a scope's path through bridges to the function it names; false
 * if a bridge on the way is absent. */
static bool scope_resolve(const struct acpi_dmar_scope *s, struct pci_address *out)
{
    struct pci_address a = { s->start_bus, s->path[0].device, s->path[0].function };
    for (unsigned k = 1; k < s->path_len; k++) {
        if (pci_config_read(a, PCI_VENDOR_ID, 2) == 0xffff)
            return false;
        a = (struct pci_address){ (uint8_t)pci_config_read(a, PCI_SECONDARY_BUS, 1), s->path[k].device,
                                  s->path[k].function };
    }
    *out = a;
    return true;
}

static bool same_function(struct pci_address a, struct pci_address b)
{
    return a.bus == b.bus && a.device == b.device && a.function == b.function;
}

static struct vtd_unit *unit_for(struct pci_address dev)
{
    for (unsigned i = 0; i < nunits; i++) {
        const struct vtd_unit *u = &units[i];
        for (unsigned k = 0; k < u->nscopes; k++) {
            const struct unit_scope *s = &u->scopes[k];
            /* A bridge's secondary bus is never 0; 0 means it is not set up. */
            if (same_function(s->dev, dev) || (s->type == ACPI_DMAR_SCOPE_BRIDGE && s->secondary != 0 &&
                                               dev.bus >= s->secondary && dev.bus <= s->subordinate))
                return &units[i];
        }
    }
    for (unsigned i = 0; i < nunits; i++)
        if (units[i].include_all)
            return &units[i];
    return 0;
}

/* ---- domains ---- */

/* How a domain's page tables (vtd_tables.c) reach the pool and the unit. */
static uint64_t op_alloc_table(void *ctx) { return new_table(((struct iommu_domain *)ctx)->unit); }
static void op_free_table(void *ctx, uint64_t frame)
{
    (void)ctx;
    pool_free_frame(frame);
}
static uint64_t op_frames_free(void *ctx)
{
    (void)ctx;
    return pool_free_frames();
}
static uint64_t *op_table(void *ctx, uint64_t frame)
{
    (void)ctx;
    return table(frame);
}
static void op_publish(void *ctx, const uint64_t *e) { publish(((struct iommu_domain *)ctx)->unit, e, sizeof *e); }
static void op_invalidate(void *ctx) { invalidate_domain_iotlb(ctx); }

static const struct vtd_tables_ops domain_table_ops = {
    op_alloc_table, op_free_table, op_frames_free, op_table, op_publish, op_invalidate,
};

static int did_find(const struct vtd_unit *u)
{
    for (unsigned did = 1; did < u->did_limit; did++)
        if (!(u->did_used[did / 8] & (1u << (did % 8))))
            return (int)did;
    return -ENOSPC;
}

static int domain_create(struct vtd_unit *u, struct pci_address dev, struct iommu_domain **out)
{
    uint64_t *ctx = context_entry(u, dev);
    if (ctx && (ctx[0] & CTX_PRESENT))
        return -EBUSY;
    int did = did_find(u);
    if (did < 0)
        return did;
    struct iommu_domain *d = slab_alloc(&domain_cache);
    if (!d)
        return -ENOMEM;
    if (pool_free_frames() < (ctx ? 1u : 2u)) {
        slab_free(&domain_cache, d);
        return -ENOMEM;
    }
    /* Nothing can fail from here. */
    if (!ctx) {
        set_entry(u, root_entry(u, dev.bus), new_table(u) | ROOT_PRESENT);
        ctx = context_entry(u, dev);
    }
    *d = (struct iommu_domain){ .unit = u, .dev = dev, .did = (uint16_t)did };
    VERIFY(vtd_tables_init(&d->tables, &domain_table_ops, d, u->levels, u->cap & CAP_SLLPS_2M, u->iova_limit,
                           u->phys_limit) == 0);
    u->did_used[did / 8] |= (uint8_t)(1u << (did % 8));
    u->bus_domains[dev.bus]++;
    /* The upper word first: the unit must never see P with a stale width or domain id. */
    set_entry(u, &ctx[1], CTX_AW(u->levels) | CTX_DID(d->did));
    set_entry(u, &ctx[0], d->tables.root | CTX_PRESENT);
    /* A not-present entry is cached only in caching mode (emulated units). */
    if (u->cap & CAP_CM)
        invalidate_all(u);
    *out = d;
    return 0;
}

int iommu_domain_create(struct pci_address dev, struct iommu_domain **out)
{
    if (nunits == 0)
        return -ENOTSUP;
    if (dev.device >= PCI_DEVICES_PER_BUS || dev.function >= PCI_FUNCTIONS_PER_DEVICE)
        return -EINVAL;
    struct vtd_unit *u = unit_for(dev);
    if (!u)
        return -ENOTSUP;
    return domain_create(u, dev, out);
}

void iommu_domain_destroy(struct iommu_domain *d)
{
    struct vtd_unit *u = d->unit;
    uint64_t *ctx = context_entry(u, d->dev);
    VERIFY(ctx && (ctx[0] & ENTRY_ADDR) == d->tables.root);
    set_entry(u, &ctx[0], 0);
    set_entry(u, &ctx[1], 0);
    must(u, context_invalidate(u, CCMD_DEVICE | (uint64_t)requester_id(d->dev) << 16 | d->did),
         "a context-cache invalidation");
    invalidate_domain_iotlb(d);
    /* The unit can no longer reach the tables: now they may go. */
    vtd_tables_destroy(&d->tables);
    u->did_used[d->did / 8] &= (uint8_t) ~(1u << (d->did % 8));
    if (--u->bus_domains[d->dev.bus] == 0) {
        uint64_t *root = root_entry(u, d->dev.bus);
        uint64_t context_table = root[0] & ENTRY_ADDR;
        set_entry(u, root, 0);
        invalidate_all(u);
        pool_free_frame(context_table);
    }
    slab_free(&domain_cache, d);
}

/* ---- mapping ---- */

uint64_t iommu_tables_needed(struct iommu_domain *d, uint64_t iova, uint64_t size)
{
    return vtd_tables_needed(&d->tables, iova, size);
}

int iommu_map_check(struct iommu_domain *d, uint64_t iova, uint64_t phys, uint64_t size)
{
    return vtd_tables_map_check(&d->tables, iova, phys, size);
}

int iommu_map(struct iommu_domain *d, uint64_t iova, uint64_t phys, uint64_t size, bool writable)
{
    int err = vtd_tables_map(&d->tables, iova, phys, size, writable);
    /* In caching mode the unit may have cached the entries as not present. */
    if (err == 0 && (d->unit->cap & CAP_CM))
        invalidate_domain_iotlb(d);
    return err;
}

void iommu_unmap(struct iommu_domain *d, uint64_t iova, uint64_t size) { vtd_tables_unmap(&d->tables, iova, size); }

/* ---- faults ---- */

const char *iommu_fault_reason_name(unsigned reason)
{
    switch (reason) {
    case 0x1: return "root entry not present";
    case 0x2: return "context entry not present (device blocked)";
    case 0x3: return "invalid context entry";
    case 0x4: return "address beyond the domain's width";
    case 0x5: return "write to a page not mapped writable";
    case 0x6: return "read from a page not mapped";
    case 0x7: return "page table unreadable";
    case 0x8: return "root table unreadable";
    case 0x9: return "context table unreadable";
    case 0xa: return "reserved bits in a root entry";
    case 0xb: return "reserved bits in a context entry";
    case 0xc: return "reserved bits in a page-table entry";
    case 0xd: return "translation type blocked";
    default: return "other";
    }
}

iommu_fault_fn iommu_set_fault_handler(iommu_fault_fn fn)
{
    iommu_fault_fn old = fault_handler;
    fault_handler = fn;
    return old;
}

uint64_t iommu_fault_count(void) { return faults_seen; }
uint64_t iommu_faults_lost(void) { return faults_lost; }

/* At most FAULTS_SHOWN_PER_SECOND lines a second; the rest are counted and
 * the count printed when the next second starts. */
static bool fault_may_print(void)
{
    uint64_t now = arch_time_ns();
    if (now - fault_window_start >= 1000000000ull) {
        if (faults_not_shown)
            kprintf("iommu: %lu more DMA faults not shown\n", faults_not_shown);
        fault_window_start = now;
        faults_shown = 0;
        faults_not_shown = 0;
    }
    if (faults_shown < FAULTS_SHOWN_PER_SECOND) {
        faults_shown++;
        return true;
    }
    faults_not_shown++;
    return false;
}

static void report_fault(uint64_t high, uint64_t low)
{
    unsigned sid = FRCD_SID(high), reason = FRCD_REASON(high);
    struct pci_address dev = { (uint8_t)(sid >> 8), (uint8_t)((sid >> 3) & 31), (uint8_t)(sid & 7) };
    uint64_t addr = low & ~(PAGE_SIZE - 1);
    bool write = !(high & FRCD_READ);
    faults_seen++;
    if (fault_may_print())
        kprintf("iommu: DMA fault: %02x:%02x.%x %s %#lx blocked: %s (reason %#x)\n", dev.bus, dev.device, dev.function,
                write ? "write to" : "read from", addr, iommu_fault_reason_name(reason), reason);
    if (fault_handler)
        fault_handler(dev, addr, write, reason);
}

void iommu_poll_faults(void)
{
    for (unsigned i = 0; i < nunits; i++) {
        struct vtd_unit *u = &units[i];
        uint32_t status = rd32(u, REG_FSTS);
        if (!(status & (FSTS_PPF | FSTS_PFO | FSTS_ERRORS)))
            continue;
        /* Records fill in a ring from FRI; each is cleared by writing F. */
        unsigned index = FSTS_FRI(status) % u->fault_records;
        for (unsigned n = 0; n < u->fault_records; n++) {
            unsigned reg = u->fault_offset + index * 16;
            uint64_t high = rd64(u, reg + 8);
            if (!(high & FRCD_F))
                break;
            uint64_t low = rd64(u, reg);
            wr32(u, reg + 12, (uint32_t)(FRCD_F >> 32));
            report_fault(high, low);
            index = (index + 1) % u->fault_records;
        }
        if (status & FSTS_PFO) {
            faults_lost++;
            /* Set again on every tick while devices keep faulting. */
            if (fault_may_print())
                kprintf("iommu: the unit at %#lx ran out of fault records; faults were lost\n", u->register_base);
        }
        if (status & (FSTS_PFO | FSTS_ERRORS))
            wr32(u, REG_FSTS, status & (FSTS_PFO | FSTS_ERRORS));
    }
}

/* ---- bring-up ---- */

static uint64_t ram_top(const struct mb_info *info)
{
    uint64_t top = 0;
    for (size_t i = 0; i < info->nregions; i++)
        if (info->regions[i].type == MB_MEM_RAM && info->regions[i].base + info->regions[i].len > top)
            top = info->regions[i].base + info->regions[i].len;
    return top;
}

static void unit_drop(struct vtd_unit *u)
{
    if (u->root)
        pool_free_frame(u->root);
    if (u->regs)
        iounmap((void *)u->regs);
    memset(u, 0, sizeof *u);
}

/* Maps the unit's first register page and reads its version and
 * capabilities; a unit that reads all ones (or version 0) is not there. */
static int unit_map(struct vtd_unit *u, const struct acpi_dmar_unit *du, const struct mb_info *info)
{
    uint64_t bytes = (uint64_t)du->register_pages * PAGE_SIZE;
    if (mb_overlaps_ram(info, du->register_base, bytes)) {
        kprintf("iommu: the unit's registers at %#lx lie in RAM; refused\n", du->register_base);
        return -EINVAL;
    }
    void *regs;
    int err = ioremap(du->register_base, PAGE_SIZE, IOREMAP_MMIO, &regs);
    if (err) {
        kprintf("iommu: cannot map the registers at %#lx (error %d)\n", du->register_base, err);
        return err;
    }
    u->regs = regs;
    u->register_base = du->register_base;
    uint32_t version = rd32(u, REG_VER);
    u->cap = rd64(u, REG_CAP);
    u->ecap = rd64(u, REG_ECAP);
    if (version == 0 || version == 0xffffffffu || u->cap == ~0ull || u->ecap == ~0ull) {
        kprintf("iommu: no remapping unit answers at %#lx\n", du->register_base);
        return -ENOENT;
    }
    return 0;
}

/* The fault recording and IOTLB registers sit where the capabilities say,
 * possibly past the first page: the mapping is widened to reach them, but
 * never past the register set the DMAR table gives the unit. */
static int unit_map_fault_and_iotlb(struct vtd_unit *u, const struct acpi_dmar_unit *du)
{
    uint64_t bytes = (uint64_t)du->register_pages * PAGE_SIZE;
    u->fault_offset = CAP_FRO(u->cap);
    u->fault_records = CAP_NFR(u->cap);
    u->iotlb_offset = ECAP_IRO(u->ecap);
    uint64_t used = u->fault_offset + 16ull * u->fault_records;
    if (u->iotlb_offset + 16ull > used)
        used = u->iotlb_offset + 16ull;
    if (used > bytes) {
        kprintf("iommu: the unit at %#lx has registers up to %#lx, past its %lu-byte register set\n", du->register_base,
                used, bytes);
        return -EINVAL;
    }
    if (used > PAGE_SIZE) {
        void *regs;
        iounmap((void *)u->regs);
        u->regs = 0;
        int err = ioremap(du->register_base, used, IOREMAP_MMIO, &regs);
        if (err)
            return err;
        u->regs = regs;
    }
    return 0;
}

/* The shallowest table the unit supports that covers all RAM, so that
 * identity mappings of any RAM page work; iommu.levels=4 on the command
 * line asks for 4 levels anyway (to test them). */
static int unit_pick_levels(struct vtd_unit *u, const struct mb_info *info)
{
    unsigned sagaw = CAP_SAGAW(u->cap);
    bool want_four = boot_option_is(info->cmdline, "iommu.levels", "4");
    bool three_fits = ram_top(info) <= (1ull << 39) && !want_four;
    if ((sagaw & SAGAW_3LEVEL) && (three_fits || !(sagaw & SAGAW_4LEVEL)))
        u->levels = 3;
    else if (sagaw & SAGAW_4LEVEL)
        u->levels = 4;
    else {
        kprintf("iommu: the unit at %#lx supports neither 3- nor 4-level tables (SAGAW %#x)\n", u->register_base,
                sagaw);
        return -ENOTSUP;
    }
    if (want_four && u->levels != 4)
        kprintf("iommu: iommu.levels=4, but the unit at %#lx offers 3-level tables only (SAGAW %#x)\n",
                u->register_base, sagaw);
    return 0;
}

/* Reads the unit's capabilities and picks the table depth; the register
 * mapping must cover the fault and IOTLB registers. */
static int unit_probe(struct vtd_unit *u, const struct acpi_dmar *dmar, const struct acpi_dmar_unit *du,
                      const struct mb_info *info)
{
    int err = unit_map(u, du, info);
    if (!err)
        err = unit_map_fault_and_iotlb(u, du);
    if (!err)
        err = unit_pick_levels(u, info);
    if (err)
        return err;
    unsigned width = 12 + 9 * u->levels; /* what the tables can address */
    if (CAP_MGAW(u->cap) < width)
        width = CAP_MGAW(u->cap);
    u->iova_limit = 1ull << width;
    u->phys_limit = dmar->host_address_width >= 64 ? ~0ull : 1ull << dmar->host_address_width;
    u->did_limit = 1u << (4 + 2 * CAP_ND(u->cap));
    if (u->did_limit > MAX_DOMAIN_IDS)
        u->did_limit = MAX_DOMAIN_IDS;
    u->include_all = du->flags & ACPI_DMAR_INCLUDE_PCI_ALL;
    return 0;
}

/* Scopes naming PCI functions (not I/O APICs or HPETs), with bus numbers
 * read from the bridges on their paths. */
static void unit_scopes(struct vtd_unit *u, const struct acpi_dmar *dmar, const struct acpi_dmar_unit *du)
{
    for (unsigned k = du->first_scope; k < du->first_scope + du->nscopes; k++) {
        const struct acpi_dmar_scope *s = &dmar->scopes[k];
        struct unit_scope r = { .type = s->type };
        if (s->type != ACPI_DMAR_SCOPE_ENDPOINT && s->type != ACPI_DMAR_SCOPE_BRIDGE)
            continue;
        if (!scope_resolve(s, &r.dev))
            continue; /* not present: nothing to match */
        if (s->type == ACPI_DMAR_SCOPE_BRIDGE) {
            r.secondary = (uint8_t)pci_config_read(r.dev, PCI_SECONDARY_BUS, 1);
            r.subordinate = (uint8_t)pci_config_read(r.dev, PCI_SUBORDINATE_BUS, 1);
        }
        u->scopes[u->nscopes++] = r;
    }
}

/* Leaves the unit translating through an empty root table. */
static int unit_start(struct vtd_unit *u)
{
    uint32_t status = rd32(u, REG_GSTS);
    if ((status & GCMD_TE) && !global_enable(u, GCMD_TE, false))
        return -ETIMEDOUT;
    if (status & GCMD_QIE) {
        /* Register-based invalidation needs queued invalidation off, which
         * waits for the queue to drain. */
        if (!wait_reg(u, REG_IQH, true, ~0ull, rd64(u, REG_IQT)) || !global_enable(u, GCMD_QIE, false))
            return -ETIMEDOUT;
    }
    if (status & GSTS_IRES)
        kprintf("iommu: interrupt remapping at %#lx was left on by firmware; left as it is\n", u->register_base);
    if (!(u->root = new_table(u)))
        return -ENOMEM;
    wr32(u, REG_FECTL, FECTL_IM);
    wr64(u, REG_RTADDR, u->root);
    wr32(u, REG_GCMD, (rd32(u, REG_GSTS) & GSTS_PERSISTENT) | GCMD_SRTP);
    if (!wait_reg(u, REG_GSTS, false, GCMD_SRTP, GCMD_SRTP) || !context_invalidate(u, CCMD_GLOBAL) ||
        !iotlb_invalidate(u, IOTLB_GLOBAL))
        return -ETIMEDOUT;
    return 0;
}

static int unit_enable(struct vtd_unit *u)
{
    if (!global_enable(u, GCMD_TE, true))
        return -ETIMEDOUT;
    /* Protected memory regions (set up by some firmware) are redundant
     * once translation is on, and would block memory domains map. */
    if ((u->cap & CAP_PMR) && (rd32(u, REG_PMEN) & PMEN_EPM)) {
        wr32(u, REG_PMEN, 0);
        if (!wait_reg(u, REG_PMEN, false, PMEN_PRS, 0))
            return -ETIMEDOUT;
    }
    return 0;
}

/* Devices with firmware-reserved memory keep it, mapped 1:1 in a domain
 * of their own, from before translation is turned on. */
static void map_reserved_regions(const struct acpi_dmar *dmar)
{
    static struct iommu_domain *reserved[ACPI_DMAR_MAX_SCOPES];
    unsigned nreserved = 0;
    for (unsigned i = 0; i < dmar->nrmrrs; i++) {
        const struct acpi_dmar_rmrr *m = &dmar->rmrrs[i];
        for (unsigned k = m->first_scope; m->segment == 0 && k < m->first_scope + m->nscopes; k++) {
            struct pci_address dev;
            struct vtd_unit *u;
            if (!scope_resolve(&dmar->scopes[k], &dev) || !(u = unit_for(dev)))
                continue;
            struct iommu_domain *d = 0;
            for (unsigned r = 0; r < nreserved; r++)
                if (same_function(reserved[r]->dev, dev))
                    d = reserved[r];
            int err = 0;
            if (!d && (err = domain_create(u, dev, &d)) == 0)
                reserved[nreserved++] = d; /* at most one per scope: room for all */
            if (!err)
                err = iommu_map(d, m->base, m->base, m->end - m->base, true);
            if (err)
                kprintf("iommu: reserved region %#lx-%#lx of %02x:%02x.%x cannot be mapped (error %d); "
                        "the device's DMA there is blocked\n",
                        m->base, m->end - 1, dev.bus, dev.device, dev.function, err);
            else
                kprintf("iommu: reserved region %#lx-%#lx of %02x:%02x.%x stays mapped 1:1\n", m->base, m->end - 1,
                        dev.bus, dev.device, dev.function);
        }
    }
}

static void dmar_refused(const char *why)
{
    kprintf("iommu: %s: running without an IOMMU; devices can reach all memory\n", why);
}

/* The firmware's DMAR table, parsed; NULL (and the reason logged) when
 * there is none this kernel can use. */
static const struct acpi_dmar *read_dmar(const struct mb_info *info)
{
    static uint8_t copy[DMAR_COPY_MAX];
    static struct acpi_dmar dmar;
    struct acpi_error err;
    size_t len;
    if (acpi_tables_init(info) != 0) {
        dmar_refused("no ACPI tables");
        return NULL;
    }
    int r = acpi_table_copy("DMAR", copy, sizeof copy, &len, &err);
    if (r == -ENOENT) {
        dmar_refused("no DMAR table (no VT-d remapping hardware)");
        return NULL;
    }
    if (r == 0)
        r = acpi_dmar_parse(copy, len, &dmar, &err);
    if (r != 0) {
        kprintf("iommu: DMAR table refused: %s\n", err.msg);
        dmar_refused("no usable DMAR table");
        return NULL;
    }
    return &dmar;
}

/* Probes and starts DMAR unit du as units[nunits]; a unit that cannot be
 * used is left off (and said so), the others still serve. */
static void unit_add(const struct acpi_dmar *dmar, const struct acpi_dmar_unit *du, const struct mb_info *info)
{
    struct vtd_unit *u = &units[nunits];
    int r;
    if (du->segment != 0) {
        kprintf("iommu: the unit at %#lx serves PCI segment %u, which this kernel does not reach; left off\n",
                du->register_base, du->segment);
        return;
    }
    if ((r = unit_probe(u, dmar, du, info)) == 0)
        unit_scopes(u, dmar, du);
    if (r == 0 && (r = unit_start(u)) != 0)
        kprintf("iommu: the unit at %#lx did not start (error %d); left off\n", du->register_base, r);
    if (r != 0) {
        unit_drop(u);
        return;
    }
    nunits++;
}

/* Turns translation on. Only once every unit is ready and the reserved
 * regions are mapped: from then on a device reaches nothing else. */
static void unit_turn_on(struct vtd_unit *u)
{
    int r = unit_enable(u);
    if (r != 0)
        panic("iommu: the unit at %#lx did not turn translation on (error %d)", u->register_base, r);
    iommu_poll_faults(); /* anything left from before the kernel */
    uint32_t version = rd32(u, REG_VER);
    char scope[48];
    if (u->include_all)
        strlcpy(scope, "every PCI device", sizeof scope);
    else
        fmt_snprintf(scope, sizeof scope, "%u PCI device(s) and bridge(s)", u->nscopes);
    kprintf("iommu: VT-d %u.%u at %#lx for %s: %u-level tables (%lu-bit I/O addresses), %u fault record(s)%s; "
            "translation on, every device blocked until given a domain\n",
            (version >> 4) & 0xf, version & 0xf, u->register_base, scope, u->levels,
            (unsigned long)__builtin_ctzll(u->iova_limit), u->fault_records,
            u->ecap & ECAP_C ? "" : ", non-coherent walks");
}

int iommu_init(const struct mb_info *info)
{
    const struct acpi_dmar *dmar = read_dmar(info);
    if (!dmar)
        return 0;
    for (unsigned i = 0; i < dmar->nunits; i++)
        unit_add(dmar, &dmar->units[i], info);
    map_reserved_regions(dmar);
    for (unsigned i = 0; i < nunits; i++)
        unit_turn_on(&units[i]);
    if (dmar->nunits && !nunits)
        dmar_refused("no remapping unit could be used");
    return (int)nunits;
}

bool iommu_present(void) { return nunits > 0; }
