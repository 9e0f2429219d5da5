/*
 * Kernel layer: where the ACPI tables are (see kernel/acpi_tables.h). The
 * parsing and every check live in common/acpi.c; this file supplies the
 * physical-memory reader and chooses the RSDP.
 *
 * The reader refuses any range that the memory map does not list (or that
 * is outside the first MiB), so that a corrupt table pointer cannot make
 * the kernel read device registers, whose reads may have side effects, or
 * map an address beyond what the CPU decodes.
 */
#include <abi/errno.h>
#include <common/acpi.h>
#include <common/string.h>
#include <kernel/acpi_tables.h>
#include <kernel/boot.h>
#include <kernel/console.h>
#include <kernel/ioremap.h>

#define LOW_MEMORY_END 0x100000ull /* BIOS data, EBDA, video, option ROMs, BIOS */

static const struct mb_info *boot_info;
static struct acpi_root root;
static int init_result = 1; /* 1: not run yet */

/* [phys, phys + len) in the first MiB, or covered by consecutive entries of
 * the (sorted, non-overlapping) memory map. */
static bool listed(uint64_t phys, uint64_t len)
{
    uint64_t end = phys + len;
    if (end < phys)
        return false;
    if (end <= LOW_MEMORY_END)
        return true;
    for (size_t i = 0; i < boot_info->nregions && phys < end; i++) {
        const struct mb_region *r = &boot_info->regions[i];
        if (phys < r->base)
            return false;
        if (phys < r->base + r->len)
            phys = r->base + r->len;
    }
    return phys >= end;
}

static bool read_phys(void *ctx, uint64_t phys, void *dst, size_t len)
{
    (void)ctx;
    void *src;
    if (len == 0)
        return true;
    if (!listed(phys, len) || ioremap(phys, len, IOREMAP_FIRMWARE, &src) != 0)
        return false;
    memcpy(dst, src, len);
    iounmap(src);
    return true;
}

static void warn(void *ctx, const char *msg)
{
    (void)ctx;
    kprintf("acpi: %s\n", msg);
}

/* The RSDP from tag 15, tag 14 or the BIOS areas, in that order; the
 * command line's acpi.rsdp=bios skips the tags (to test the search). */
static int find_rsdp(struct acpi_rsdp *rsdp, const char **where, uint64_t *at)
{
    struct acpi_error err;
    bool tags = !boot_option_is(boot_info->cmdline, "acpi.rsdp", "bios");
    if (!tags)
        kprintf("acpi: acpi.rsdp=bios: the boot loader's RSDP is not used\n");
    if (tags && boot_info->rsdp_new_len) {
        if (acpi_rsdp_parse(boot_info->rsdp_new, boot_info->rsdp_new_len, rsdp, &err) == 0) {
            *where = "the boot loader (ACPI 2.0 tag)";
            return 0;
        }
        kprintf("acpi: the boot loader's ACPI 2.0 RSDP is refused: %s\n", err.msg);
    }
    if (tags && boot_info->have_rsdp_old) {
        if (acpi_rsdp_parse(boot_info->rsdp_old, sizeof boot_info->rsdp_old, rsdp, &err) == 0) {
            *where = "the boot loader (ACPI 1.0 tag)";
            return 0;
        }
        kprintf("acpi: the boot loader's ACPI 1.0 RSDP is refused: %s\n", err.msg);
    }
    if (acpi_rsdp_scan(read_phys, 0, rsdp, at, &err) == 0) {
        *where = "the BIOS area";
        return 0;
    }
    kprintf("acpi: no ACPI tables: %s\n", err.msg);
    return -ENOENT;
}

int acpi_tables_init(const struct mb_info *info)
{
    if (init_result != 1)
        return init_result;
    boot_info = info;
    struct acpi_rsdp rsdp;
    const char *where;
    uint64_t at = 0;
    if ((init_result = find_rsdp(&rsdp, &where, &at)) != 0)
        return init_result;
    struct acpi_error err;
    init_result = acpi_root_open(&root, &rsdp, read_phys, 0, warn, 0, &err);
    if (init_result != 0) {
        kprintf("acpi: RSDP from %s, but its root table is refused: %s\n", where, err.msg);
        init_result = -EINVAL;
        return init_result;
    }
    if (at)
        kprintf("acpi: RSDP revision %u (%s) found in %s at %#lx\n", rsdp.revision, rsdp.oem_id, where, at);
    else
        kprintf("acpi: RSDP revision %u (%s) from %s\n", rsdp.revision, rsdp.oem_id, where);
    kprintf("acpi: %s at %#lx lists %u tables\n", root.xsdt ? "XSDT" : "RSDT", root.address, root.count);
    return 0;
}

int acpi_table_copy(const char *sig, void *buf, size_t cap, size_t *len, struct acpi_error *err)
{
    if (init_result != 0) {
        strlcpy(err->msg, "no ACPI tables", sizeof err->msg);
        return -ENOENT;
    }
    return acpi_find_table(&root, sig, buf, cap, len, err);
}
