/*
 * Kernel boot layer: multiboot2 boot information parsing (see
 * kernel/multiboot.h). Called by the boot code before anything else exists,
 * and by host tests on crafted infos; depends only on abi/ and common/.
 *
 * The info is untrusted input: each field is read with memcpy at an offset
 * proven to lie within `limit` bytes, tag sizes are checked against what is
 * left before they are used, and strings are used only once a NUL is found
 * inside their tag. The memory map is read straight from its tag twice over
 * (see normalise_map), so normalising needs no storage besides *out.
 */
#include <abi/errno.h>
#include <kernel/multiboot.h>
#include <common/fmt.h>
#include <common/string.h>

#define MB_INFO_HEADER  8
#define MB_TAG_HEADER   8
#define MB_MODULE_FIXED 16 /* type, size, mod_start, mod_end */
#define MB_MEMINFO_SIZE 16 /* type, size, mem_lower, mem_upper */
#define MB_MMAP_FIXED   16 /* type, size, entry_size, entry_version */
#define MB_MMAP_ENTRY   24 /* base_addr, length, type, reserved */
#define MIB             0x100000ull

struct parser {
    const unsigned char *base;
    size_t limit; /* bytes that may be read from base */
    struct mb_info *out;
    mb_warn_fn warn;
    void *ctx;
    /* The first valid memory map tag, read again while normalising. */
    size_t mmap_entries; /* offset of its first entry */
    size_t mmap_count;   /* entries to use (at most MB_MAX_REGIONS) */
    uint32_t mmap_entry_size;
    bool have_mmap;
    bool have_cmdline, have_bootloader;
    bool acpi_old_seen, acpi_new_seen;
    bool modules_full_warned;
};

static uint32_t read_u32(const struct parser *p, size_t off)
{
    uint32_t v;
    memcpy(&v, p->base + off, sizeof v);
    return v;
}

static uint64_t read_u64(const struct parser *p, size_t off)
{
    uint64_t v;
    memcpy(&v, p->base + off, sizeof v);
    return v;
}

static const char *tag_name(uint32_t type)
{
    switch (type) {
    case MB_TAG_END: return "end";
    case MB_TAG_CMDLINE: return "cmdline";
    case MB_TAG_BOOTLOADER: return "bootloader name";
    case MB_TAG_MODULE: return "module";
    case MB_TAG_MEMINFO: return "basic meminfo";
    case MB_TAG_MMAP: return "memory map";
    case MB_TAG_ACPI_OLD: return "ACPI old RSDP";
    case MB_TAG_ACPI_NEW: return "ACPI new RSDP";
    case MB_TAG_EFI32: return "EFI 32-bit system table";
    case MB_TAG_EFI64: return "EFI 64-bit system table";
    case MB_TAG_EFI_BS: return "EFI boot services not terminated";
    default: return "other";
    }
}

static void warnf(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(struct parser *p, const char *fmt, ...)
{
    p->out->warnings++;
    if (p->warn == NULL)
        return;
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    fmt_vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->warn(p->ctx, msg);
}

#define TAG_WARN(p, type, fmt, ...)                                                                                    \
    warnf(p, "multiboot: tag type %u (%s): " fmt, (unsigned)(type), tag_name(type), __VA_ARGS__)

/* The string at [off, off+len) if a NUL ends it within that range, else NULL. */
static const char *string_in(const struct parser *p, size_t off, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p->base[off + i] == '\0')
            return (const char *)p->base + off;
    return NULL;
}

static void parse_string_tag(struct parser *p, uint32_t type, size_t off, uint32_t size, const char **field, bool *seen)
{
    const char *s = string_in(p, off + MB_TAG_HEADER, size - MB_TAG_HEADER);
    if (s == NULL) {
        TAG_WARN(p, type, "string not NUL-terminated within its %u bytes; refused", size);
    } else if (*seen) {
        TAG_WARN(p, type, "%s", "repeated; the first one is kept");
    } else {
        *field = s;
        *seen = true;
    }
}

static void parse_module(struct parser *p, size_t off, uint32_t size)
{
    if (size < MB_MODULE_FIXED + 1) {
        TAG_WARN(p, MB_TAG_MODULE, "size %u too small for a module; refused", size);
        return;
    }
    uint32_t start = read_u32(p, off + 8), end = read_u32(p, off + 12);
    const char *cmdline = string_in(p, off + MB_MODULE_FIXED, size - MB_MODULE_FIXED);
    if (end < start) {
        TAG_WARN(p, MB_TAG_MODULE, "end %#x before start %#x; refused", end, start);
        return;
    }
    if (cmdline == NULL) {
        TAG_WARN(p, MB_TAG_MODULE, "string at %#x not NUL-terminated within the tag; refused", start);
        return;
    }
    struct mb_info *out = p->out;
    if (out->nmodules == MB_MAX_MODULES) {
        if (!p->modules_full_warned)
            TAG_WARN(p, MB_TAG_MODULE, "more than %d modules; the later ones are ignored", MB_MAX_MODULES);
        p->modules_full_warned = true;
        return;
    }
    out->modules[out->nmodules++] = (struct mb_module){ start, end, cmdline };
}

static void parse_meminfo(struct parser *p, size_t off, uint32_t size)
{
    if (size < MB_MEMINFO_SIZE) {
        TAG_WARN(p, MB_TAG_MEMINFO, "size %u too small; refused", size);
        return;
    }
    p->out->mem_lower_kb = read_u32(p, off + 8);
    p->out->mem_upper_kb = read_u32(p, off + 12);
    p->out->have_meminfo = true;
}

/* Tags 11 and 12: the system table's address, 4 or 8 bytes after the
 * header. A second one is refused. */
static void parse_efi_table(struct parser *p, uint32_t type, size_t off, uint32_t size)
{
    uint32_t want = type == MB_TAG_EFI64 ? 16 : 12;
    if (size < want) {
        TAG_WARN(p, type, "size %u too small (%u); refused", size, want);
        return;
    }
    if (p->out->have_efi) {
        TAG_WARN(p, type, "%s", "a second EFI system table; the first one is kept");
        return;
    }
    p->out->have_efi = true;
    p->out->efi_bits = type == MB_TAG_EFI64 ? 64 : 32;
    p->out->efi_system_table = type == MB_TAG_EFI64 ? read_u64(p, off + 8) : read_u32(p, off + 8);
}

static void parse_mmap(struct parser *p, size_t off, uint32_t size)
{
    if (p->have_mmap) {
        TAG_WARN(p, MB_TAG_MMAP, "%s", "repeated; the first one is kept");
        return;
    }
    if (size < MB_MMAP_FIXED) {
        TAG_WARN(p, MB_TAG_MMAP, "size %u too small; refused", size);
        return;
    }
    uint32_t entry_size = read_u32(p, off + 8);
    if (entry_size < MB_MMAP_ENTRY || entry_size % 8 != 0) {
        TAG_WARN(p, MB_TAG_MMAP, "entry_size %u is not a multiple of 8 of at least %d; refused", entry_size,
                 MB_MMAP_ENTRY);
        return;
    }
    uint32_t bytes = size - MB_MMAP_FIXED;
    if (bytes % entry_size != 0) {
        TAG_WARN(p, MB_TAG_MMAP, "size %u is not 16 + a whole number of %u-byte entries; refused", size, entry_size);
        return;
    }
    size_t count = bytes / entry_size;
    if (count > MB_MAX_REGIONS) {
        TAG_WARN(p, MB_TAG_MMAP, "%zu entries; only the first %d are used", count, MB_MAX_REGIONS);
        count = MB_MAX_REGIONS;
    }
    p->have_mmap = true;
    p->mmap_entries = off + MB_MMAP_FIXED;
    p->mmap_count = count;
    p->mmap_entry_size = entry_size;
}

/* Tags 14 and 15: the payload is the RSDP itself, copied for later. */
static void parse_rsdp(struct parser *p, uint32_t type, size_t off, uint32_t size)
{
    struct mb_info *out = p->out;
    uint32_t bytes = size - MB_TAG_HEADER;
    bool old = type == MB_TAG_ACPI_OLD;
    bool *seen = old ? &p->acpi_old_seen : &p->acpi_new_seen;
    if (*seen) {
        TAG_WARN(p, type, "%s", "repeated; the first one is kept");
        return;
    }
    *seen = true;
    if (old && bytes != MB_RSDP_OLD_SIZE) {
        TAG_WARN(p, type, "%u bytes, but an ACPI 1.0 RSDP has %d; refused", bytes, MB_RSDP_OLD_SIZE);
        return;
    }
    if (!old && (bytes < MB_RSDP_NEW_MIN || bytes > MB_RSDP_NEW_MAX)) {
        TAG_WARN(p, type, "%u bytes, outside the %d..%d of an ACPI 2.0 RSDP; refused", bytes, MB_RSDP_NEW_MIN,
                 MB_RSDP_NEW_MAX);
        return;
    }
    if (old) {
        memcpy(out->rsdp_old, p->base + off + MB_TAG_HEADER, bytes);
        out->have_rsdp_old = true;
    } else {
        memcpy(out->rsdp_new, p->base + off + MB_TAG_HEADER, bytes);
        out->rsdp_new_len = bytes;
    }
}

/* Higher wins where entries overlap. */
static unsigned type_rank(uint32_t type)
{
    switch (type) {
    case MB_MEM_RAM: return 1;
    case MB_MEM_ACPI_RECLAIMABLE: return 2;
    case MB_MEM_ACPI_NVS: return 3;
    case MB_MEM_RESERVED: return 4;
    case MB_MEM_BAD: return 5;
    default: return 0;
    }
}

/* Entry i of the memory map as [*base, *end) with a known type; false if empty. */
static bool map_entry(const struct parser *p, size_t i, uint64_t *base, uint64_t *end, uint32_t *type)
{
    size_t off = p->mmap_entries + i * p->mmap_entry_size;
    uint64_t len = read_u64(p, off + 8);
    *base = read_u64(p, off);
    *type = read_u32(p, off + 16);
    if (type_rank(*type) == 0)
        *type = MB_MEM_RESERVED;
    /* Clipped as the entry was warned about in check_map_overflow. */
    *end = len > UINT64_MAX - *base ? UINT64_MAX : *base + len;
    return *end > *base;
}

static void check_map_overflow(struct parser *p)
{
    for (size_t i = 0; i < p->mmap_count; i++) {
        size_t off = p->mmap_entries + i * p->mmap_entry_size;
        uint64_t base = read_u64(p, off), len = read_u64(p, off + 8);
        if (len > UINT64_MAX - base)
            TAG_WARN(p, MB_TAG_MMAP, "entry %zu [%#llx +%#llx) overflows; clipped at 2^64-1", i,
                     (unsigned long long)base, (unsigned long long)len);
    }
}

static void add_region(struct parser *p, uint64_t base, uint64_t end, uint32_t type)
{
    struct mb_info *out = p->out;
    struct mb_region *last = out->nregions ? &out->regions[out->nregions - 1] : NULL;
    if (last && last->type == type && last->base + last->len == base) {
        last->len += end - base;
        return;
    }
    if (out->nregions == MB_MAX_REGIONS) {
        TAG_WARN(p, MB_TAG_MMAP, "more than %d regions after clipping; [%#llx, %#llx) dropped", MB_MAX_REGIONS,
                 (unsigned long long)base, (unsigned long long)end);
        return;
    }
    out->regions[out->nregions++] = (struct mb_region){ base, end - base, type };
}

/*
 * A sweep over the boundaries of the map's entries, in address order: at each
 * position, the type is that of the highest-ranked entry covering it, and the
 * next position is the nearest entry start or end above it. Quadratic in the
 * (at most MB_MAX_REGIONS) entries, and needs no sorting buffer.
 */
static void normalise_map(struct parser *p)
{
    uint64_t pos = 0;
    for (;;) {
        uint64_t next = UINT64_MAX;
        bool more = false;
        unsigned best = 0;
        uint32_t best_type = 0;
        for (size_t i = 0; i < p->mmap_count; i++) {
            uint64_t base, end;
            uint32_t type;
            if (!map_entry(p, i, &base, &end, &type))
                continue;
            if (base > pos && base <= next) {
                next = base;
                more = true;
            }
            if (end > pos && end <= next) {
                next = end;
                more = true;
            }
            if (base <= pos && pos < end && type_rank(type) > best) {
                best = type_rank(type);
                best_type = type;
            }
        }
        if (!more)
            return;
        if (best)
            add_region(p, pos, next, best_type);
        pos = next;
    }
}

static void synthesise_from_meminfo(struct parser *p)
{
    struct mb_info *out = p->out;
    uint64_t lower = out->mem_lower_kb * 1024, upper = out->mem_upper_kb * 1024;
    if (lower > MIB)
        lower = MIB;
    if (lower)
        add_region(p, 0, lower, MB_MEM_RAM);
    if (upper)
        add_region(p, MIB, MIB + upper, MB_MEM_RAM);
}

/* After the walk: the memory map, or RAM from meminfo, and the verdict. */
static int finish(struct parser *p)
{
    struct mb_info *out = p->out;
    if (p->have_mmap) {
        check_map_overflow(p);
        normalise_map(p);
    }
    if (out->nregions == 0 && out->have_meminfo) {
        if (p->have_mmap)
            warnf(p, "multiboot: the memory map has no regions; using basic meminfo");
        synthesise_from_meminfo(p);
    }
    if (out->nregions == 0) {
        warnf(p, "multiboot: no memory map and no basic meminfo");
        return -EINVAL;
    }
    return 0;
}

int mb_parse(const void *mbi, size_t avail, struct mb_info *out, mb_warn_fn warn, void *ctx)
{
    struct parser p = { .base = mbi, .out = out, .warn = warn, .ctx = ctx };

    memset(out, 0, sizeof *out);
    out->cmdline = "";
    out->bootloader = "";
    if (mbi == NULL || avail < MB_INFO_HEADER) {
        warnf(&p, "multiboot: only %zu bytes of boot information; nothing parsed", avail);
        return -EINVAL;
    }
    out->total_size = read_u32(&p, 0);
    if (out->total_size < MB_INFO_HEADER) {
        warnf(&p, "multiboot: total_size %u is smaller than the header", out->total_size);
        return -EINVAL;
    }
    p.limit = out->total_size;
    if (p.limit > avail) {
        warnf(&p, "multiboot: total_size %u but only %zu bytes readable; parsing those", out->total_size, avail);
        p.limit = avail;
    }

    bool ended = false;
    size_t off = MB_INFO_HEADER;
    while (!ended && p.limit - off >= MB_TAG_HEADER) {
        uint32_t type = read_u32(&p, off), size = read_u32(&p, off + 4);
        if (size < MB_TAG_HEADER) {
            TAG_WARN(&p, type, "size %u smaller than a tag header; walk stopped", size);
            return finish(&p);
        }
        if (size > p.limit - off) {
            TAG_WARN(&p, type, "size %u overflows the info (%zu bytes left); walk stopped", size, p.limit - off);
            return finish(&p);
        }
        switch (type) {
        case MB_TAG_END: ended = true; break;
        case MB_TAG_CMDLINE: parse_string_tag(&p, type, off, size, &out->cmdline, &p.have_cmdline); break;
        case MB_TAG_BOOTLOADER: parse_string_tag(&p, type, off, size, &out->bootloader, &p.have_bootloader); break;
        case MB_TAG_MODULE: parse_module(&p, off, size); break;
        case MB_TAG_MEMINFO: parse_meminfo(&p, off, size); break;
        case MB_TAG_MMAP: parse_mmap(&p, off, size); break;
        case MB_TAG_ACPI_OLD:
        case MB_TAG_ACPI_NEW: parse_rsdp(&p, type, off, size); break;
        case MB_TAG_EFI32:
        case MB_TAG_EFI64: parse_efi_table(&p, type, off, size); break;
        case MB_TAG_EFI_BS: out->efi_boot_services = true; break;
        default: break;
        }
        /* Tags start 8-aligned; size <= limit - off, so this cannot wrap. */
        off += ((size_t)size + 7) & ~(size_t)7;
        if (off > p.limit)
            off = p.limit;
    }
    if (!ended)
        warnf(&p, "multiboot: no end tag within %zu bytes", p.limit);
    return finish(&p);
}

const char *mb_mem_type_name(uint32_t type)
{
    switch (type) {
    case MB_MEM_RAM: return "RAM";
    case MB_MEM_RESERVED: return "reserved";
    case MB_MEM_ACPI_RECLAIMABLE: return "ACPI reclaimable";
    case MB_MEM_ACPI_NVS: return "ACPI NVS";
    case MB_MEM_BAD: return "bad";
    default: return "unknown";
    }
}

bool mb_overlaps_ram(const struct mb_info *info, uint64_t base, uint64_t len)
{
    for (size_t i = 0; i < info->nregions; i++) {
        const struct mb_region *r = &info->regions[i];
        if (r->type == MB_MEM_RAM && base < r->base + r->len && r->base < base + len)
            return true;
    }
    return false;
}

bool mb_within_ram(const struct mb_info *info, uint64_t base, uint64_t len)
{
    if (len == 0 || base + len < base)
        return false;
    for (size_t i = 0; i < info->nregions; i++) {
        const struct mb_region *r = &info->regions[i];
        if (r->type == MB_MEM_RAM && base >= r->base && base + len <= r->base + r->len)
            return true;
    }
    return false;
}

uint64_t mb_ram_bytes(const struct mb_info *info)
{
    uint64_t total = 0;
    for (size_t i = 0; i < info->nregions; i++)
        if (info->regions[i].type == MB_MEM_RAM)
            total += info->regions[i].len;
    return total;
}
