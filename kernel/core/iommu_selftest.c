/*
 * Kernel layer: the IOMMU's boot-time self-test, run by kmain after
 * iommu_init when the command line has `iommu.selftest` (ctest's
 * qemu-q35-iommu boots q35 with --iommu --edu and checks it passed). It
 * plays the DMA attacks of a malicious driver with QEMU's edu device
 * (docs/specs/edu.rst: registers in BAR0, a DMA engine copying between
 * RAM and a 4 KiB buffer inside the device), programmed from the kernel:
 *
 *   - through a domain, DMA from a read-only page and into a writable one
 *     works, also through a 2 MiB mapping and at an iova that is not the
 *     physical address;
 *   - DMA into the read-only page, into a page never mapped (a stale
 *     physical address) and into kernel memory is blocked, the target
 *     stays as it was, and a fault naming edu, the address and a write
 *     reaches the fault handler;
 *   - after iommu_unmap the same DMA is blocked; after the domain is
 *     destroyed the device reaches nothing;
 *   - with RAM above 4 GiB, a low iova reaches a page up there (edu itself
 *     only drives 28 address bits), and an identity mapping of it is taken;
 *   - map refusals leave the domain and the pool as they were, and the
 *     pool is back to its baseline at the end.
 *
 * Output: `[PASS] iommu_selftest.NAME` or `[FAIL] iommu_selftest.NAME:
 * why` per check (iso/run fails a run with any [FAIL] line) and a closing
 * `iommu selftest: N passed, M failed`.
 */
#include <stdarg.h>
#include <abi/errno.h>
#include <arch/arch.h>
#include <arch/pci.h>
#include <common/edu.h>
#include <common/fmt.h>
#include <common/string.h>
#include <kernel/console.h>
#include <kernel/device.h>
#include <kernel/iommu.h>
#include <kernel/ioremap.h>
#include <kernel/pool.h>

#define EDU_WAIT_NS 5000000000ull

#define PCI_COMMAND        0x04
#define PCI_COMMAND_MEMORY 0x2u
#define PCI_COMMAND_MASTER 0x4u

/* I/O virtual addresses that are not the pages' physical ones, below
 * EDU_DMA_LIMIT (edu drops higher address bits) except the spare one,
 * which no DMA uses. */
#define IOVA_SOURCE 0x0fe00000ul
#define IOVA_DEST   0x0fc00000ul
#define IOVA_LARGE  0x0e000000ul
#define IOVA_SPARE  0x40000000ul
#define IOVA_HIGH   0x0fa00000ul
#define FOUR_GIB    0x100000000ull

/* VT-d fault reasons, as bits of the sets expect_blocked accepts. */
#define REASON_NO_ROOT      (1u << 0x1)
#define REASON_NO_CONTEXT   (1u << 0x2)
#define REASON_WRITE_DENIED (1u << 0x5)
#define REASON_READ_DENIED  (1u << 0x6)

static struct {
    volatile uint8_t *regs;
    struct pci_address edu;
    unsigned passed, failed;
    unsigned faults; /* seen by on_fault, and the last one */
    struct pci_address fault_dev;
    uint64_t fault_addr;
    bool fault_write;
    unsigned fault_reason;
} st;

/* Written by nobody: a DMA that reaches it breaks the kernel's memory. */
static uint8_t kernel_victim[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));

static void on_fault(struct pci_address dev, uint64_t addr, bool write, unsigned reason)
{
    st.faults++;
    st.fault_dev = dev;
    st.fault_addr = addr;
    st.fault_write = write;
    st.fault_reason = reason;
}

static bool check(const char *name, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool check(const char *name, bool ok, const char *fmt, ...)
{
    if (ok) {
        st.passed++;
        return ktest_report("iommu_selftest", name, KTEST_PASS, 0);
    }
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    fmt_vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    st.failed++;
    return ktest_report("iommu_selftest", name, KTEST_FAIL, "%s", why);
}

static uint64_t edu_read64(unsigned reg) { return *(volatile uint64_t *)(st.regs + reg); }
static void edu_write64(unsigned reg, uint64_t v) { *(volatile uint64_t *)(st.regs + reg) = v; }

/* One transfer, waited for; then the faults it caused are collected. */
static bool edu_dma(uint64_t source, uint64_t dest, bool to_ram)
{
    __asm__ volatile("mfence" ::: "memory");
    edu_write64(EDU_DMA_SOURCE, source);
    edu_write64(EDU_DMA_DEST, dest);
    edu_write64(EDU_DMA_COUNT, EDU_DMA_BYTES);
    edu_write64(EDU_DMA_COMMAND, EDU_DMA_RUN | (to_ram ? EDU_DMA_TO_RAM : 0));
    uint64_t deadline = arch_time_ns() + EDU_WAIT_NS;
    while (edu_read64(EDU_DMA_COMMAND) & EDU_DMA_RUN)
        if (arch_time_ns() > deadline)
            return false;
    __asm__ volatile("mfence" ::: "memory");
    iommu_poll_faults();
    return true;
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

static void fill_pattern(uint8_t *p, unsigned seed)
{
    for (unsigned i = 0; i < PAGE_SIZE; i++)
        p[i] = (uint8_t)(i * 7 + seed);
}

static bool same_function(struct pci_address a, struct pci_address b)
{
    return a.bus == b.bus && a.device == b.device && a.function == b.function;
}

static bool reason_in(unsigned reason, unsigned reasons) { return reason < 32 && (reasons & (1u << reason)); }

/* The device buffer written to `iova` must be blocked: `victim` (what is
 * really at that page, or should be) keeps `expect`, and exactly one fault
 * names edu, the page, a write and one of `reasons`. */
static void expect_blocked(const char *name, uint64_t iova, const uint8_t *victim, const uint8_t *expect,
                           unsigned reasons)
{
    unsigned before = st.faults;
    bool done = edu_dma(EDU_DMA_BUFFER, iova, true);
    bool intact = memcmp(victim, expect, PAGE_SIZE) == 0;
    bool reported = st.faults == before + 1 && same_function(st.fault_dev, st.edu) && st.fault_addr == iova &&
                    st.fault_write && reason_in(st.fault_reason, reasons);
    check(name, done && intact && reported,
          "DMA to %#lx %s, target %s; %u fault(s), last %02x:%02x.%x %s %#lx reason %#x (want one of %#x)", iova,
          done ? "ended" : "timed out", intact ? "intact" : "CHANGED", st.faults - before, st.fault_dev.bus,
          st.fault_dev.device, st.fault_dev.function, st.fault_write ? "write" : "read", st.fault_addr, st.fault_reason,
          reasons);
}

/* Reading `iova` into the device must be blocked: a read fault, and what
 * the device then writes to dest (mapped) is not `secret`. */
static void expect_read_blocked(const char *name, uint64_t iova, const uint8_t *secret, uint8_t *dest,
                                uint64_t dest_iova)
{
    unsigned before = st.faults;
    bool done = edu_dma(iova, EDU_DMA_BUFFER, false);
    bool reported = st.faults == before + 1 && same_function(st.fault_dev, st.edu) && st.fault_addr == iova &&
                    !st.fault_write && reason_in(st.fault_reason, REASON_READ_DENIED);
    memset(dest, 0, PAGE_SIZE);
    done = done && edu_dma(EDU_DMA_BUFFER, dest_iova, true);
    bool leaked = memcmp(dest, secret, EDU_DMA_BYTES) == 0;
    check(name, done && reported && !leaked, "DMA from %#lx %s, secret %s; %u fault(s), last %s %#lx reason %#x", iova,
          done ? "ended" : "timed out", leaked ? "LEAKED" : "not read", st.faults - before,
          st.fault_write ? "write" : "read", st.fault_addr, st.fault_reason);
}

static void map_refusals(struct iommu_domain *d, uint64_t source)
{
    uint64_t free_before = pool_free_frames();
    int misaligned = iommu_map(d, IOVA_SPARE + 8, source, PAGE_SIZE, true);
    int empty = iommu_map(d, IOVA_SPARE, source, 0, true);
    int overlap = iommu_map(d, IOVA_SOURCE - PAGE_SIZE, source, 2 * PAGE_SIZE, true);
    int wide = iommu_map(d, 1ull << 48, source, PAGE_SIZE, true);
    /* More 4 KiB page tables than the pool holds: refused before any change. */
    uint64_t big = (pool_free_frames() + 1) * LARGE_PAGE_SIZE;
    uint64_t need = iommu_tables_needed(d, IOVA_SPARE, big);
    int nomem = iommu_map(d, IOVA_SPARE, PAGE_SIZE, big, true);
    bool unchanged = pool_free_frames() == free_before;
    /* What the refused calls covered is still free: each first page maps. */
    int after_overlap = iommu_map(d, IOVA_SOURCE - PAGE_SIZE, source, PAGE_SIZE, false);
    int after_nomem = iommu_map(d, IOVA_SPARE, source, PAGE_SIZE, false);
    if (after_overlap == 0)
        iommu_unmap(d, IOVA_SOURCE - PAGE_SIZE, PAGE_SIZE);
    if (after_nomem == 0)
        iommu_unmap(d, IOVA_SPARE, PAGE_SIZE);
    check("map_refusals",
          misaligned == -EINVAL && empty == -EINVAL && overlap == -EEXIST && wide == -ERANGE && nomem == -ENOMEM &&
              need > free_before && unchanged && after_overlap == 0 && after_nomem == 0 &&
              pool_free_frames() == free_before,
          "misaligned %d, empty %d, overlap %d, too wide %d, %lu bytes %d (need %lu tables, %lu free), pool %s, "
          "then %d and %d",
          misaligned, empty, overlap, wide, big, nomem, need, free_before, unchanged ? "unchanged" : "CHANGED",
          after_overlap, after_nomem);
}

/* A 2 MiB mapping of the pool's first 2 MiB (read-only): one leaf, and the
 * device reads through it what the CPU sees there. */
static void large_page(struct iommu_domain *d, uint8_t *dest, uint64_t dest_iova)
{
    uint64_t base = pool_base(), free_before = pool_free_frames();
    uint64_t bound = iommu_tables_needed(d, IOVA_LARGE, LARGE_PAGE_SIZE);
    int err = iommu_map(d, IOVA_LARGE, base, LARGE_PAGE_SIZE, false);
    uint64_t used = free_before - pool_free_frames();
    memset(dest, 0, PAGE_SIZE);
    bool done =
        err == 0 && edu_dma(IOVA_LARGE + 0x3000, EDU_DMA_BUFFER, false) && edu_dma(EDU_DMA_BUFFER, dest_iova, true);
    bool same = memcmp(dest, phys_to_virt(base + 0x3000), EDU_DMA_BYTES) == 0;
    if (err == 0)
        iommu_unmap(d, IOVA_LARGE, LARGE_PAGE_SIZE);
    check("large_page", err == 0 && used < bound && done && same && pool_free_frames() == free_before,
          "map %d with %lu table(s) (4 KiB pages: %lu), DMA %s, data %s, pool %lu of %lu back", err, used, bound,
          done ? "done" : "failed", same ? "equal" : "DIFFERENT", pool_free_frames(), free_before);
}

/* The cost of a map and of an unmap (which waits for the IOTLB
 * invalidation), 4 KiB and 2 MiB, averaged; reported, never judged. Under
 * iso/run --icount a nanosecond is one instruction. */
static void bench(struct iommu_domain *d, uint64_t phys)
{
    enum { ROUNDS = 200 };
    static const struct {
        const char *name;
        uint64_t size;
    } cases[] = { { "4k", PAGE_SIZE }, { "2m", LARGE_PAGE_SIZE } };
    for (unsigned c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        /* A 2 MiB page needs a 2 MiB-aligned frame: the pool's first. */
        uint64_t size = cases[c].size, target = size == PAGE_SIZE ? phys : pool_base();
        uint64_t map_ns = 0, unmap_ns = 0;
        unsigned rounds = 0;
        for (; rounds < ROUNDS; rounds++) {
            uint64_t t0 = arch_time_ns();
            if (iommu_map(d, IOVA_LARGE, target, size, false) != 0)
                break;
            uint64_t t1 = arch_time_ns();
            iommu_unmap(d, IOVA_LARGE, size);
            map_ns += t1 - t0;
            unmap_ns += arch_time_ns() - t1;
        }
        if (rounds == ROUNDS)
            kprintf("BENCH iommu_map_%s %lu ns\nBENCH iommu_unmap_invalidate_%s %lu ns\n", cases[c].name,
                    map_ns / ROUNDS, cases[c].name, unmap_ns / ROUNDS);
    }
}

/* The top page of RAM, when it is above 4 GiB. Nothing uses it this early
 * in boot (every boot allocation is below 1 GiB), and its bytes are put
 * back before memsrv takes over the memory. */
static uint64_t high_page(const struct mb_info *info)
{
    uint64_t top = 0;
    for (size_t i = 0; i < info->nregions; i++) {
        const struct mb_region *r = &info->regions[i];
        if (r->type == MB_MEM_RAM && r->len >= PAGE_SIZE && ((r->base + r->len) & ~(PAGE_SIZE - 1)) > top)
            top = (r->base + r->len) & ~(PAGE_SIZE - 1);
    }
    return top > FOUR_GIB ? top - PAGE_SIZE : 0;
}

static void high_memory(struct iommu_domain *d, const struct mb_info *info, const uint8_t *pattern)
{
    uint64_t phys = high_page(info);
    if (!phys) {
        ktest_report("iommu_selftest", "high_memory", KTEST_SKIP, "no RAM above 4 GiB (iso/run --mem 5G)");
        return;
    }
    static uint8_t saved[PAGE_SIZE], old[PAGE_SIZE];
    uint8_t *page = phys_to_virt(phys);
    memcpy(saved, page, PAGE_SIZE);
    memset(page, 0x33, PAGE_SIZE);
    int err = iommu_map(d, IOVA_HIGH, phys, PAGE_SIZE, true);
    bool done = err == 0 && edu_dma(IOVA_SOURCE, EDU_DMA_BUFFER, false) && edu_dma(EDU_DMA_BUFFER, IOVA_HIGH, true);
    bool copied = memcmp(page, pattern, EDU_DMA_BYTES) == 0;
    int identity = iommu_map(d, phys, phys, PAGE_SIZE, false);
    if (err == 0)
        iommu_unmap(d, IOVA_HIGH, PAGE_SIZE);
    if (identity == 0)
        iommu_unmap(d, phys, PAGE_SIZE);
    check("high_memory", done && copied && identity == 0,
          "page %#lx at iova %#lx: map %d, DMA %s, data %s; identity map %d", phys, IOVA_HIGH, err,
          done ? "done" : "failed", copied ? "arrived" : "WRONG", identity);
    memset(page, 0x44, PAGE_SIZE);
    memset(old, 0x44, PAGE_SIZE);
    expect_blocked("high_memory_unmapped", IOVA_HIGH, page, old, REASON_WRITE_DENIED);
    memcpy(page, saved, PAGE_SIZE);
}

/* The pages the DMA plays with, physical and as the kernel sees them. */
struct frames {
    uint64_t source, dest, stale;
    uint8_t *s, *t, *u;
    uint64_t dest_iova; /* where the domain maps dest */
};

/* Maps edu's registers, reads its id and lets it master the bus; *command
 * is the command register to put back. */
static bool edu_enable(struct device *dev, void **regs, uint32_t *id, uint16_t *command)
{
    uint64_t bar, bar_size;
    int err = device_bar(dev, 0, &bar, &bar_size);
    if (err == 0)
        err = ioremap(bar, PAGE_SIZE, IOREMAP_MMIO, regs);
    if (!check("edu_registers", err == 0, "BAR0: error %d", err))
        return false;
    st.regs = *regs;
    *id = *(volatile uint32_t *)(st.regs + EDU_ID);
    *command = (uint16_t)pci_config_read(st.edu, PCI_COMMAND, 2);
    pci_config_write(st.edu, PCI_COMMAND, 2, *command | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    return true;
}

/* Known contents everywhere, so that a write that got through shows. */
static void fill_frames(struct frames *f, uint8_t *pattern)
{
    f->s = phys_to_virt(f->source);
    f->t = phys_to_virt(f->dest);
    f->u = phys_to_virt(f->stale);
    fill_pattern(f->s, 3);
    memcpy(pattern, f->s, PAGE_SIZE);
    memset(f->t, 0, PAGE_SIZE);
    memset(f->u, 0x5a, PAGE_SIZE);
    memset(kernel_victim, 0xa5, PAGE_SIZE);
}

static bool map_frames(struct iommu_domain *d, struct frames *f)
{
    /* The destination 1:1 when edu can address it, the source elsewhere. */
    f->dest_iova = f->dest + PAGE_SIZE <= EDU_DMA_LIMIT ? f->dest : IOVA_DEST;
    int map_source = iommu_map(d, IOVA_SOURCE, f->source, PAGE_SIZE, false);
    int map_dest = iommu_map(d, f->dest_iova, f->dest, PAGE_SIZE, true);
    kprintf("iommu selftest: edu at %02x:%02x.%x; source page %#lx at iova %#lx (read-only), destination %#lx at "
            "iova %#lx%s\n",
            st.edu.bus, st.edu.device, st.edu.function, f->source, IOVA_SOURCE, f->dest, f->dest_iova,
            f->dest_iova == f->dest ? " (identity)" : "");
    return check("map", map_source == 0 && map_dest == 0, "source %d, destination %d", map_source, map_dest);
}

static void mapped_dma(const struct frames *f, const uint8_t *pattern)
{
    unsigned faults = st.faults;
    bool done = edu_dma(IOVA_SOURCE, EDU_DMA_BUFFER, false) && edu_dma(EDU_DMA_BUFFER, f->dest_iova, true);
    bool copied =
        memcmp(f->t, pattern, EDU_DMA_BYTES) == 0 && all_bytes(f->t + EDU_DMA_BYTES, PAGE_SIZE - EDU_DMA_BYTES, 0);
    check("mapped_dma", done && copied && st.faults == faults, "DMA %s, copy %s, %u fault(s)",
          done ? "done" : "timed out", copied ? "exact" : "WRONG", st.faults - faults);
}

/* What a malicious driver would aim at through its domain: a page mapped
 * read-only, a physical address it once had, and kernel memory. */
static void attacks(const struct frames *f, const uint8_t *pattern, uint8_t *old)
{
    expect_blocked("read_only_blocked", IOVA_SOURCE, f->s, pattern, REASON_WRITE_DENIED);
    memset(old, 0x5a, PAGE_SIZE);
    expect_blocked("stale_address_blocked", f->stale, f->u, old, REASON_WRITE_DENIED);
    memset(old, 0xa5, PAGE_SIZE);
    expect_blocked("kernel_write_blocked", virt_to_phys(kernel_victim), kernel_victim, old, REASON_WRITE_DENIED);
    fill_pattern(kernel_victim, 101);
    expect_read_blocked("kernel_read_blocked", virt_to_phys(kernel_victim), kernel_victim, f->t, f->dest_iova);
}

/* Unmapping cuts the device off from a page, mapping it again restores it,
 * and destroying the domain (*d is then 0) cuts it off from everything. */
static void teardown(struct iommu_domain **d, const struct frames *f, const uint8_t *pattern, uint8_t *old)
{
    iommu_unmap(*d, f->dest_iova, PAGE_SIZE);
    memset(f->t, 0x11, PAGE_SIZE);
    memset(old, 0x11, PAGE_SIZE);
    expect_blocked("unmap_blocks", f->dest_iova, f->t, old, REASON_WRITE_DENIED);

    int err = iommu_map(*d, f->dest_iova, f->dest, PAGE_SIZE, true);
    bool done = err == 0 && edu_dma(IOVA_SOURCE, EDU_DMA_BUFFER, false) && edu_dma(EDU_DMA_BUFFER, f->dest_iova, true);
    check("remap", done && memcmp(f->t, pattern, EDU_DMA_BYTES) == 0, "map %d, DMA %s", err, done ? "done" : "failed");
    iommu_domain_destroy(*d);
    *d = 0;
    memset(f->t, 0x22, PAGE_SIZE);
    memset(old, 0x22, PAGE_SIZE);
    /* No context entry, or (the bus's last domain gone) no root entry. */
    expect_blocked("destroy_blocks", f->dest_iova, f->t, old, REASON_NO_CONTEXT | REASON_NO_ROOT);
}

/* Every check that needs a domain; the pool must be back at `baseline`
 * once the domain is gone. */
static void exercise_domain(struct frames *f, const struct mb_info *info, uint64_t baseline)
{
    static uint8_t pattern[PAGE_SIZE], old[PAGE_SIZE];
    struct iommu_domain *d = 0, *again = 0;

    fill_frames(f, pattern);
    int err = iommu_domain_create(st.edu, &d);
    int twice = err ? 0 : iommu_domain_create(st.edu, &again);
    if (check("domain_create", err == 0 && twice == -EBUSY, "create %d, a second one %d", err, twice) &&
        map_frames(d, f)) {
        map_refusals(d, f->source);
        mapped_dma(f, pattern);
        large_page(d, f->t, f->dest_iova);
        high_memory(d, info, pattern);
        bench(d, f->source);
        attacks(f, pattern, old);
        teardown(&d, f, pattern, old);
        check("pool_baseline", pool_free_frames() == baseline, "%lu frames free, %lu before the domain",
              pool_free_frames(), baseline);
    }
    if (d)
        iommu_domain_destroy(d);
}

static void run(struct device *dev, const struct mb_info *info)
{
    void *regs;
    uint32_t id;
    uint16_t command;
    if (!edu_enable(dev, &regs, &id, &command))
        return;
    struct frames f = { .source = pool_alloc_frame(), .dest = pool_alloc_frame(), .stale = pool_alloc_frame() };
    uint64_t baseline = pool_free_frames();
    if (check("setup", (id & EDU_ID_MAGIC_MASK) == EDU_ID_MAGIC && f.source && f.dest && f.stale,
              "edu id %#x, frames %#lx %#lx %#lx", id, f.source, f.dest, f.stale))
        exercise_domain(&f, info, baseline);
    pci_config_write(st.edu, PCI_COMMAND, 2, command);
    iounmap(regs);
    if (f.source)
        pool_free_frame(f.source);
    if (f.dest)
        pool_free_frame(f.dest);
    if (f.stale)
        pool_free_frame(f.stale);
}

/* Every other edu function: one that is conventional PCI behind a bridge
 * (QEMU: a pcie-pci-bridge with an edu on it) shares a requester id, so it
 * may not master the bus; any other may. Skipped when there is none. */
static void other_functions(void)
{
    unsigned others = 0, refused = 0, allowed = 0, wrong = 0;
    struct device *dev;
    for (unsigned index = 1; index < 8 && device_open(EDU_VENDOR, EDU_DEVICE, index, &dev) == 0; index++) {
        struct pci_address a = device_address(dev);
        bool express = device_is_express(dev);
        int err = device_set_bus_master(dev, true);
        device_set_bus_master(dev, false);
        others++;
        if (a.bus != 0 && !express)
            err == -ENOTSUP ? refused++ : wrong++;
        else
            err == 0 ? allowed++ : wrong++;
        device_put(dev);
    }
    if (!others) {
        ktest_report("iommu_selftest", "bridged_functions", KTEST_SKIP,
                     "one edu function (a second behind a pcie-pci-bridge shows the refusal)");
        return;
    }
    check("bridged_functions", wrong == 0 && refused + allowed == others,
          "%u other edu function(s): %u behind a bridge refused bus mastering, %u allowed, %u wrong", others, refused,
          allowed, wrong);
}

void iommu_selftest(const struct mb_info *info)
{
    memset(&st, 0, sizeof st);
    kprintf("iommu selftest: start\n");
    struct device *dev = 0;
    int err = iommu_present() ? device_open(EDU_VENDOR, EDU_DEVICE, 0, &dev) : -ENOENT;
    if (check("present", iommu_present(), "no IOMMU (QEMU: iso/run --machine q35 --iommu)") &&
        check("edu_present", err == 0, "no edu device (iso/run --edu): error %d", err)) {
        st.edu = device_address(dev);
        /* Opening it gave it a domain of its own; the test builds its own. */
        struct iommu_domain *opened = device_take_domain(dev);
        if (opened)
            iommu_domain_destroy(opened);
        iommu_fault_fn previous = iommu_set_fault_handler(on_fault);
        run(dev, info);
        iommu_set_fault_handler(previous);
        device_put(dev);
        other_functions();
    }
    kprintf("iommu selftest: %u passed, %u failed\n", st.passed, st.failed);
}
