/*
 * In-guest test program: a user-mode driver for QEMU's `edu` PCI device
 * (1234:11e8, QEMU docs/specs/edu.rst), driven through the SYS_DEV_* calls.
 * init opens the device (it holds the boot right) and passes the handle in
 * startup slot ABI_STARTUP_DEVICE; without one (Bochs, or QEMU without
 * --edu) it skips (`[SKIP] edu.device: ...`) and ends with no checks.
 *
 * The checks: configuration space through the kernel (ids, command
 * register, BAR writes refused), BAR0 mapped uncached, the identification,
 * liveness and factorial registers, then DMA through a pinned memsrv
 * segment: RAM -> device buffer -> RAM, compared byte for byte, and the
 * pinned segment refused by ms_free until unpinned.
 */
#include <abi/proc.h>
#include <common/edu.h>
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

/* PCI configuration space (type-0 header). */
#define PCI_ID_REG         0x00
#define PCI_COMMAND        0x04
#define PCI_COMMAND_MEMORY 0x0002u
#define PCI_COMMAND_MASTER 0x0004u
#define PCI_BAR0           0x10

#define EDU_IRQ_BIT 3 /* the notification bit this driver binds its interrupt to */
#define PAGE_BYTES  4096u
#define DMA_BYTES   EDU_DMA_BYTES
/* QEMU finishes a DMA 100 ms (virtual) after the start; a factorial is a
 * thread wakeup on the host. The wait's bound is in the suite's units of
 * reference work (test_budget_ns): a few milliseconds each under QEMU, so
 * seconds in all, and proportionally more on a loaded host. */
#define EDU_WAIT_UNITS 5000u

static volatile uint8_t *edu_regs;
/* The device's interrupt, bound to a notification: DMA completion is
 * waited for, not polled, once they are set up. */
static handle_t edu_irq = HANDLE_NONE, edu_notify = HANDLE_NONE;

static uint32_t edu_read32(unsigned reg) { return *(volatile uint32_t *)(edu_regs + reg); }
static void edu_write32(unsigned reg, uint32_t v) { *(volatile uint32_t *)(edu_regs + reg) = v; }
static uint64_t edu_read64(unsigned reg) { return *(volatile uint64_t *)(edu_regs + reg); }
static void edu_write64(unsigned reg, uint64_t v) { *(volatile uint64_t *)(edu_regs + reg) = v; }

/* Ordinary stores to the DMA buffer must be done before the device is told
 * to read it, and its writes seen only after it says it is done. */
static void dma_barrier(void) { __asm__ volatile("mfence" ::: "memory"); }

/* Polls until (register & busy) is clear; false after the wait's budget. */
static bool edu_wait_clear(const struct test_run *t, unsigned reg, uint64_t busy, uint64_t *last)
{
    uint64_t deadline = sys_clock() + test_budget_ns(t, EDU_WAIT_UNITS);
    for (;;) {
        *last = reg >= EDU_DMA_SOURCE ? edu_read64(reg) : edu_read32(reg);
        if (!(*last & busy))
            return true;
        if (sys_clock() > deadline)
            return false;
        sys_yield();
    }
}

static bool handle_missing(handle_t dev, char *why, size_t len)
{
    if (!libsys_startup) {
        snprintf(why, len, "no startup block");
        return true;
    }
    if (dev == HANDLE_NONE) {
        snprintf(why, len, "no device handle in startup slot %d (no edu device: Bochs, or QEMU without --edu)",
                 ABI_STARTUP_DEVICE);
        return true;
    }
    /* A starter that stored sys_dev_open's error instead of HANDLE_NONE. */
    if ((int64_t)dev < 0 && (int64_t)dev > -(int64_t)ABI_ERROR_COUNT) {
        snprintf(why, len, "init's sys_dev_open failed: %s", sys_strerror((int64_t)dev));
        return true;
    }
    return false;
}

static bool no_translation; /* the device may not master: no IOMMU unit covers it */

static void check_config(struct test_run *t, handle_t dev)
{
    int64_t id = sys_dev_config_read(dev, PCI_ID_REG, 4);
    test_check(t, "config_ids", id == (int64_t)(EDU_DEVICE << 16 | EDU_VENDOR), "vendor/device read %#lx", id);

    int64_t r = sys_dev_config_read(dev, 1, 4);
    int64_t r2 = sys_dev_config_read(dev, 256, 1);
    int64_t r3 = sys_dev_config_read(dev, 0, 3);
    test_check(t, "config_bad_access", r == -EINVAL && r2 == -EINVAL && r3 == -EINVAL,
               "unaligned %ld, past the end %ld, width 3 %ld", r, r2, r3);

    int64_t bar0 = sys_dev_config_read(dev, PCI_BAR0, 4);
    r = sys_dev_config_write(dev, PCI_BAR0, 4, 0);
    r2 = sys_dev_config_write(dev, PCI_BAR0 + 2, 2, 0);
    test_check(t, "bar_write_refused", r == -EPERM && r2 == -EPERM && sys_dev_config_read(dev, PCI_BAR0, 4) == bar0,
               "BAR0 write gave %ld, its upper word %ld", r, r2);

    /* Memory decode is the driver's to switch; bus mastering the kernel's:
     * a config write that would turn it on is refused, sys_dev_dma does it. */
    int64_t command = sys_dev_config_read(dev, PCI_COMMAND, 2);
    int64_t master_write =
        command < 0 ? command : sys_dev_config_write(dev, PCI_COMMAND, 2, (uint32_t)command | PCI_COMMAND_MASTER);
    test_check(t, "master_write_refused",
               master_write == -EPERM && !(sys_dev_config_read(dev, PCI_COMMAND, 2) & PCI_COMMAND_MASTER),
               "a config write turning bus mastering on gave %ld", master_write);
    r = command < 0 ? command : sys_dev_config_write(dev, PCI_COMMAND, 2, (uint32_t)command | PCI_COMMAND_MEMORY);
    int64_t dma = sys_dev_dma(dev, true);
    int64_t now = sys_dev_config_read(dev, PCI_COMMAND, 2);
    if (dma == -ENOTSUP) {
        /* An IOMMU is in use and no unit of it covers the device (QEMU's
         * default_bus_bypass_iommu=on): it would reach all of memory
         * untranslated, so it may not master the bus. */
        no_translation = true;
        test_check(t, "uncovered_may_not_master", r == 0 && now >= 0 && !(now & PCI_COMMAND_MASTER),
                   "decode write %ld, command register now %#lx", r, now);
        return;
    }
    test_check(t, "command_enable",
               r == 0 && dma == 0 && now >= 0 &&
                   (now & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)) == (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER),
               "decode write %ld, sys_dev_dma %ld, command register now %#lx", r, dma, now);
}

static bool map_registers(struct test_run *t, handle_t dev)
{
    struct abi_bar_info bar = { 0, 0, 0 };
    int64_t r = sys_dev_map_bar(dev, 0, &bar);
    bool ok = test_check(t, "map_bar0", r == 0 && bar.vaddr && bar.phys && bar.size >= EDU_BAR0_MIN_SIZE,
                         "map gave %ld: vaddr %#lx phys %#lx size %#lx", r, bar.vaddr, bar.phys, bar.size);
    struct abi_bar_info none;
    int64_t r1 = sys_dev_map_bar(dev, 1, &none);
    int64_t r6 = sys_dev_map_bar(dev, 6, &none);
    test_check(t, "map_bad_bar", r1 == -EINVAL && r6 == -EINVAL, "unimplemented BAR1 %ld, BAR6 %ld", r1, r6);
    if (ok)
        edu_regs = (volatile uint8_t *)bar.vaddr;
    return ok;
}

static void check_registers(struct test_run *t)
{
    uint32_t id = edu_read32(EDU_ID);
    test_check(t, "identification", (id & EDU_ID_MAGIC_MASK) == EDU_ID_MAGIC && (id >> 24) >= 1,
               "read %#x, expected 0xRRrr00ed with major >= 1", id);
    printf("edu: version %u.%u\n", id >> 24, (id >> 16) & 0xff);

    const uint32_t values[] = { 0, 0xffffffffu, 0x12345678u, (uint32_t)test_rand(t) };
    bool inverted = true;
    uint32_t wrote = 0, got = 0;
    for (unsigned i = 0; i < sizeof(values) / sizeof(values[0]) && inverted; i++) {
        wrote = values[i];
        edu_write32(EDU_LIVENESS, wrote);
        got = edu_read32(EDU_LIVENESS);
        inverted = got == ~wrote;
    }
    test_check(t, "liveness", inverted, "wrote %#x, read %#x", wrote, got);

    /* 0 first: no factorial interrupt is wanted. */
    edu_write32(EDU_STATUS, 0);
    const uint32_t n[] = { 0, 5, 12 }, factorial[] = { 1, 120, 479001600 };
    for (unsigned i = 0; i < 3; i++) {
        uint64_t status;
        bool idle = edu_wait_clear(t, EDU_STATUS, EDU_STATUS_COMPUTING, &status);
        if (idle) {
            edu_write32(EDU_FACTORIAL, n[i]);
            idle = edu_wait_clear(t, EDU_STATUS, EDU_STATUS_COMPUTING, &status);
        }
        char name[16];
        snprintf(name, sizeof(name), "factorial_%u", n[i]);
        if (!idle) {
            test_check(t, name, false, "still computing after %lu ms (status %#lx)",
                       test_budget_ns(t, EDU_WAIT_UNITS) / 1000000, status);
            return;
        }
        uint32_t got_f = edu_read32(EDU_FACTORIAL);
        test_check(t, name, got_f == factorial[i], "%u! read %u", n[i], got_f);
    }
}

/* The device's interrupt line to this driver: raised on demand through
 * the device's own register, seen as a notification bit, acknowledged. */
static void check_interrupts(struct test_run *t, handle_t dev)
{
    int64_t irq = sys_dev_irq(dev), n = sys_notify_create();
    if (!test_check(t, "irq_handle", irq >= 0 && n >= 0, "sys_dev_irq %ld, notification %ld", irq, n))
        return;
    int64_t early = sys_irq_ack((handle_t)irq);
    int64_t bound = sys_irq_bind((handle_t)irq, (handle_t)n, EDU_IRQ_BIT);
    int64_t twice = sys_irq_bind((handle_t)irq, (handle_t)n, EDU_IRQ_BIT + 1);
    int64_t bad_bit = sys_irq_bind((handle_t)irq, (handle_t)n, 63);
    test_check(t, "irq_misuse_refused", early == -EINVAL && bound == 0 && twice == -EBUSY && bad_bit == -EINVAL,
               "ack before bind %ld, bind %ld, bind again %ld, bit 63 %ld", early, bound, twice, bad_bit);
    /* Without RIGHT_IRQ, no interrupt handle. */
    int64_t narrow = sys_handle_grant(HANDLE_SELF, dev, RIGHT_CONFIG);
    int64_t no_right = narrow >= 0 ? sys_dev_irq((handle_t)narrow) : narrow;
    test_check(t, "irq_needs_right", no_right == -EPERM, "sys_dev_irq without RIGHT_IRQ gave %ld", no_right);
    if (narrow >= 0)
        sys_handle_close((handle_t)narrow);
    bool all = true;
    for (unsigned round = 0; round < 3 && all; round++) {
        uint32_t value = 0x1000u << round;
        edu_write32(EDU_IRQ_RAISE, value);
        int64_t bits = sys_notify_wait((handle_t)n, test_budget_ns(t, EDU_WAIT_UNITS));
        uint32_t status = edu_read32(EDU_IRQ_STATUS);
        edu_write32(EDU_IRQ_ACK, status);
        int64_t ack = sys_irq_ack((handle_t)irq);
        int64_t again = sys_irq_ack((handle_t)irq);
        all = test_check(t, "irq_delivered",
                         bits == (1 << EDU_IRQ_BIT) && status == value && ack == 0 && again == -EINVAL,
                         "round %u: bits %ld, device status %#x (raised %#x), ack %ld, second ack %ld", round, bits,
                         status, value, ack, again);
    }
    if (all) {
        edu_irq = (handle_t)irq;
        edu_notify = (handle_t)n;
    }
}

/* Segments allocated around the DMA target; freeing every other one while
 * a transfer is in flight gives compaction work to do just then. */
enum { AROUND = 32 };
static struct ms_segment around[AROUND];
static unsigned around_count;

/* One transfer of DMA_BYTES; false (and a failed check) on timeout. With
 * `compact`, holes open and the memory server compacts all of memory while
 * the transfer is in flight: the pinned target must stay where the device
 * writes. */
static bool edu_dma(struct test_run *t, const char *name, uint64_t src, uint64_t dst, uint32_t command, bool compact)
{
    dma_barrier();
    edu_write64(EDU_DMA_SOURCE, src);
    edu_write64(EDU_DMA_DEST, dst);
    edu_write64(EDU_DMA_COUNT, DMA_BYTES);
    edu_write64(EDU_DMA_COMMAND, command | EDU_DMA_RUN);
    if (compact) {
        struct ms_stats_global before = { 0 }, after = { 0 };
        ms_stats_global(&before);
        for (unsigned i = 1; i < around_count; i += 2) {
            ms_free(around[i].handle);
            around[i].handle = HANDLE_NONE;
        }
        int64_t r = ms_compact(MS_COMPACT_FULL, 0, 0, 0, 0, 0);
        ms_stats_global(&after);
        uint64_t still_running = edu_read64(EDU_DMA_COMMAND) & EDU_DMA_RUN;
        printf("edu: compaction during DMA: %ld, %lu moves, %lu KiB; DMA %s when it returned\n", r,
               after.moves - before.moves, (after.bytes_moved - before.bytes_moved) / 1024,
               still_running ? "still running" : "done");
        test_check(t, "compaction_during_dma", r == 0 && after.moves > before.moves, "ms_compact %s, %lu moves",
                   sys_strerror(r), after.moves - before.moves);
    }
    uint64_t last = 0;
    bool done;
    if (edu_irq != HANDLE_NONE) {
        /* The device says so with its interrupt: wait for it, quiet the
         * device, then let the line fire again. */
        int64_t bits = sys_notify_wait(edu_notify, test_budget_ns(t, EDU_WAIT_UNITS));
        uint32_t status = edu_read32(EDU_IRQ_STATUS);
        edu_write32(EDU_IRQ_ACK, status);
        sys_irq_ack(edu_irq);
        last = edu_read64(EDU_DMA_COMMAND);
        done = bits > 0 && (status & EDU_IRQ_DMA_DONE) && !(last & EDU_DMA_RUN);
    } else {
        done = edu_wait_clear(t, EDU_DMA_COMMAND, EDU_DMA_RUN, &last);
    }
    dma_barrier();
    return test_check(t, name, done, "DMA %#lx -> %#lx not done after %lu ms (command register %#lx)", src, dst,
                      test_budget_ns(t, EDU_WAIT_UNITS) / 1000000, last);
}

static void check_dma(struct test_run *t, handle_t dev)
{
    struct ms_segment seg;
    int64_t r = ms_alloc(2 * PAGE_BYTES, 0, MS_ALLOC_BELOW, EDU_DMA_LIMIT, &seg);
    if (!test_check(t, "dma_alloc", r == 0 && seg.addr && seg.size >= 2 * PAGE_BYTES, "ms_alloc: %s", sys_strerror(r)))
        return;
    uint8_t *out = seg.addr, *back = out + PAGE_BYTES;

    int64_t phys = sys_seg_pin(seg.handle, dev);
    bool pinned = phys > 0;
    bool below = pinned && (uint64_t)phys + 2 * PAGE_BYTES <= EDU_DMA_LIMIT && phys % PAGE_BYTES == 0;
    if (!test_check(t, "dma_pin", below, "sys_seg_pin gave %#lx (needs page aligned, below %#llx)", phys,
                    EDU_DMA_LIMIT)) {
        if (pinned)
            sys_seg_unpin(seg.handle);
        ms_free(seg.handle);
        return;
    }
    struct abi_seg_info info;
    r = sys_seg_info(seg.handle, &info);
    test_check(t, "pin_info", r == 0 && info.pins == 1 && info.phys == (uint64_t)phys,
               "seg_info %ld: pins %u phys %#lx", r, info.pins, info.phys);

    for (around_count = 0; around_count < AROUND; around_count++)
        if (ms_alloc(16 * 1024, 0, 0, 0, &around[around_count]) != 0)
            break;

    for (unsigned i = 0; i < PAGE_BYTES; i++) {
        out[i] = (uint8_t)(test_rand(t) | 1); /* never zero: a lost transfer shows */
        back[i] = (uint8_t)~out[i];
    }
    uint32_t irq_flag = edu_irq != HANDLE_NONE ? EDU_DMA_IRQ : 0;
    bool done = edu_dma(t, "dma_to_device", (uint64_t)phys, EDU_DMA_BUFFER, irq_flag, false) &&
                edu_dma(t, "dma_to_ram", EDU_DMA_BUFFER, (uint64_t)phys + PAGE_BYTES, EDU_DMA_TO_RAM | irq_flag, true);
    for (unsigned i = 0; i < around_count; i++)
        if (around[i].handle != HANDLE_NONE)
            ms_free(around[i].handle);
    if (!done) {
        /* The device may still write into the segment: keep it pinned, so
         * its frames are never reused (they are quarantined at exit). */
        printf("edu: DMA timed out; leaving segment sid %lu pinned\n", seg.sid);
        return;
    }
    unsigned first_diff = DMA_BYTES;
    for (unsigned i = 0; i < DMA_BYTES && first_diff == DMA_BYTES; i++)
        if (back[i] != out[i])
            first_diff = i;
    test_check(t, "dma_round_trip", first_diff == DMA_BYTES, "byte %u: wrote %#x, read back %#x", first_diff,
               first_diff < DMA_BYTES ? out[first_diff] : 0, first_diff < DMA_BYTES ? back[first_diff] : 0);

    int64_t phys_after = sys_seg_pin(seg.handle, dev);
    sys_seg_unpin(seg.handle);
    test_check(t, "pinned_stayed_during_compaction", phys_after == phys, "pinned at %#lx, now at %#lx", phys,
               phys_after);

    unsigned overrun = PAGE_BYTES;
    for (unsigned i = DMA_BYTES; i < PAGE_BYTES && overrun == PAGE_BYTES; i++)
        if ((uint8_t)(back[i] ^ out[i]) != 0xff)
            overrun = i;
    test_check(t, "dma_no_overrun", overrun == PAGE_BYTES, "byte %u past the %u transferred was written", overrun,
               DMA_BYTES);

    r = ms_free(seg.handle);
    test_check(t, "free_while_pinned", r == -EBUSY && memcmp(out, back, DMA_BYTES) == 0,
               "ms_free of a pinned segment gave %s", sys_strerror(r));

    struct abi_kinfo k = { 0 };
    sys_kinfo(&k);
    if (k.flags & KINFO_IOMMU) {
        /* Behind an IOMMU the device loses the frames at the unpin: the
         * same transfer is blocked now, and reported. */
        int64_t fault_notify = sys_notify_create();
        int64_t bound = sys_dev_fault_bind(dev, (handle_t)fault_notify, 1);
        r = sys_seg_unpin(seg.handle);
        memset(back, 0x5a, PAGE_BYTES);
        dma_barrier();
        edu_write64(EDU_DMA_SOURCE, EDU_DMA_BUFFER);
        edu_write64(EDU_DMA_DEST, (uint64_t)phys + PAGE_BYTES);
        edu_write64(EDU_DMA_COUNT, DMA_BYTES);
        edu_write64(EDU_DMA_COMMAND, EDU_DMA_TO_RAM | EDU_DMA_RUN);
        uint64_t last;
        edu_wait_clear(t, EDU_DMA_COMMAND, EDU_DMA_RUN, &last);
        int64_t fault = sys_notify_wait((handle_t)fault_notify, test_budget_ns(t, EDU_WAIT_UNITS));
        dma_barrier();
        unsigned changed = 0;
        for (unsigned i = 0; i < PAGE_BYTES; i++)
            changed += back[i] != 0x5a;
        test_check(t, "dma_after_unpin_blocked", bound == 0 && r == 0 && changed == 0 && fault == 2,
                   "fault bind %ld, unpin %ld; %u bytes written after the unpin, fault bits %ld", bound, r, changed,
                   fault);
        int64_t freed = ms_free(seg.handle);
        test_check(t, "unpin_free", freed == 0, "free %s", sys_strerror(freed));
        sys_handle_close((handle_t)fault_notify);
        return;
    }
    /* Unpinned, the device can still reach the frames until it is
     * quiesced: freed now, they stay quarantined. */
    struct ms_stats_global before = { 0 }, during = { 0 }, after = { 0 };
    ms_stats_global(&before);
    r = sys_seg_unpin(seg.handle);
    int64_t freed = ms_free(seg.handle);
    ms_stats_global(&during);
    int64_t stop = sys_dev_dma(dev, false);
    ms_stats_global(&after);
    test_check(t, "unpin_free", r == 0 && freed == 0, "unpin %s, free %s", sys_strerror(r), sys_strerror(freed));
    test_check(t, "quarantined_until_quiesced",
               during.quarantined_bytes == before.quarantined_bytes + seg.size &&
                   after.quarantined_bytes == before.quarantined_bytes && stop == 0 &&
                   !(sys_dev_config_read(dev, PCI_COMMAND, 2) & PCI_COMMAND_MASTER),
               "quarantined %lu -> %lu -> %lu, stopping the device %ld", before.quarantined_bytes,
               during.quarantined_bytes, after.quarantined_bytes, stop);
}

int main(int argc, char **argv)
{
    struct test_run t;
    test_begin(&t, "edu", argc, argv);

    handle_t dev = startup_handle(ABI_STARTUP_DEVICE);
    char why[160];
    if (handle_missing(dev, why, sizeof(why))) {
        test_skip(&t, "device", "%s", why);
        test_exit(&t);
    }

    check_config(&t, dev);
    if (map_registers(&t, dev)) {
        check_registers(&t);
        check_interrupts(&t, dev);
        if (no_translation)
            test_skip(&t, "dma", "the device may not master the bus: no IOMMU unit covers it");
        else
            check_dma(&t, dev);
    }
    test_exit(&t);
}
