/*
 * Host tests of kernel/core/multiboot.c: infos laid out as GRUB and QEMU
 * produce them, every truncation (each in a heap buffer of exactly `avail`
 * bytes, so ASan catches any read past it), each malformation the parser
 * refuses, and random overlapping maps checked against a per-page oracle.
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
#include "../common/test_rng.h"
#include <abi/errno.h>
#include <kernel/multiboot.h>

/* ---- building infos ---- */

struct builder {
    unsigned char buf[16384];
    size_t len;
};

static void put32(struct builder *b, size_t off, uint32_t v) { memcpy(b->buf + off, &v, 4); }

static void b_init(struct builder *b)
{
    memset(b, 0, sizeof *b);
    b->len = 8;
}

/* Appends a tag whose size field says `size` (normally 8 + plen). */
static void b_tag_sized(struct builder *b, uint32_t type, uint32_t size, const void *payload, size_t plen)
{
    put32(b, b->len, type);
    put32(b, b->len + 4, size);
    if (plen)
        memcpy(b->buf + b->len + 8, payload, plen);
    b->len += (8 + plen + 7) & ~(size_t)7;
}

static void b_tag(struct builder *b, uint32_t type, const void *payload, size_t plen)
{
    b_tag_sized(b, type, (uint32_t)(8 + plen), payload, plen);
}

static void b_string(struct builder *b, uint32_t type, const char *s) { b_tag(b, type, s, strlen(s) + 1); }

static void b_module(struct builder *b, uint32_t start, uint32_t end, const char *s)
{
    unsigned char p[256];
    memcpy(p, &start, 4);
    memcpy(p + 4, &end, 4);
    strcpy((char *)p + 8, s);
    b_tag(b, MB_TAG_MODULE, p, 8 + strlen(s) + 1);
}

static void b_meminfo(struct builder *b, uint32_t lower, uint32_t upper)
{
    uint32_t p[2] = { lower, upper };
    b_tag(b, MB_TAG_MEMINFO, p, sizeof p);
}

struct entry {
    uint64_t base, len;
    uint32_t type;
};

static void b_mmap_custom(struct builder *b, const struct entry *e, size_t n, uint32_t entry_size, uint32_t version)
{
    static unsigned char p[8 + 256 * 64];
    memset(p, 0, sizeof p);
    memcpy(p, &entry_size, 4);
    memcpy(p + 4, &version, 4);
    for (size_t i = 0; i < n; i++) {
        unsigned char *q = p + 8 + i * entry_size;
        memcpy(q, &e[i].base, 8);
        memcpy(q + 8, &e[i].len, 8);
        memcpy(q + 16, &e[i].type, 4);
    }
    b_tag(b, MB_TAG_MMAP, p, 8 + n * entry_size);
}

static void b_mmap(struct builder *b, const struct entry *e, size_t n) { b_mmap_custom(b, e, n, 24, 0); }

static void b_finish(struct builder *b)
{
    b_tag(b, MB_TAG_END, NULL, 0);
    put32(b, 0, (uint32_t)b->len);
}

/* ---- running the parser ---- */

struct warnings {
    int count;
    char last[256];
    char all[4096];
};

static void collect(void *ctx, const char *msg)
{
    struct warnings *w = ctx;
    w->count++;
    snprintf(w->last, sizeof w->last, "%s", msg);
    size_t used = strlen(w->all);
    snprintf(w->all + used, sizeof w->all - used, "%s\n", msg);
}

/*
 * Parses a copy in a heap buffer of exactly avail bytes. The copy lives until
 * the next call, since the strings in *out point into it.
 */
static void *live_copy;

static int parse_exact(const void *info, size_t avail, struct mb_info *out, struct warnings *w)
{
    free(live_copy);
    void *copy = live_copy = malloc(avail ? avail : 1);
    assert_non_null(copy);
    memcpy(copy, info, avail);
    memset(w, 0, sizeof *w);
    int r = mb_parse(copy, avail, out, collect, w);
    /* Pointers into the copy must not outlive it; check them before freeing. */
    const unsigned char *lo = copy, *hi = lo + avail;
    const char *strs[2 + MB_MAX_MODULES] = { out->cmdline, out->bootloader };
    for (size_t i = 0; i < out->nmodules; i++)
        strs[2 + i] = out->modules[i].cmdline;
    for (size_t i = 0; i < 2 + out->nmodules; i++) {
        const unsigned char *s = (const unsigned char *)strs[i];
        assert_non_null(s);
        if (s >= lo && s < hi)
            assert_non_null(memchr(s, 0, (size_t)(hi - s)));
        else
            assert_string_equal(strs[i], ""); /* the parser's own "" */
    }
    assert_int_equal((unsigned)w->count, out->warnings);
    return r;
}

static void assert_regions_valid(const struct mb_info *info)
{
    assert_true(info->nregions <= MB_MAX_REGIONS);
    for (size_t i = 0; i < info->nregions; i++) {
        const struct mb_region *r = &info->regions[i];
        assert_true(r->len > 0);
        assert_true(r->base + r->len > r->base);
        assert_true(r->type >= MB_MEM_RAM && r->type <= MB_MEM_BAD);
        if (i > 0) {
            const struct mb_region *q = &info->regions[i - 1];
            assert_true(q->base + q->len <= r->base);
            assert_false(q->base + q->len == r->base && q->type == r->type);
        }
    }
}

/* ---- QEMU pc, -m 5G, as GRUB reports it ---- */

static const struct entry qemu_pc_5g[] = {
    { 0x0, 0x9fc00, MB_MEM_RAM },
    { 0x9fc00, 0x400, MB_MEM_RESERVED },
    { 0xf0000, 0x10000, MB_MEM_RESERVED },
    { 0x100000, 0xbffe0000 - 0x100000, MB_MEM_RAM },
    { 0xbffe0000, 0x20000, MB_MEM_RESERVED },
    { 0xfeffc000, 0x4000, MB_MEM_RESERVED },
    { 0xfffc0000, 0x40000, MB_MEM_RESERVED },
    { 0x100000000, 0x80000000, MB_MEM_RAM },
    { 0xfd00000000, 0x300000000, MB_MEM_RESERVED },
};
#define QEMU_N (sizeof qemu_pc_5g / sizeof qemu_pc_5g[0])

static void build_qemu(struct builder *b)
{
    b_init(b);
    b_string(b, MB_TAG_CMDLINE, "test=all seed=42");
    b_string(b, MB_TAG_BOOTLOADER, "GRUB 2.06-13+deb12u1");
    b_module(b, 0x10b000, 0x12c3a8, "/boot/memsrv.elf memsrv");
    b_module(b, 0x12d000, 0x1409f0, "/boot/init.elf");
    b_meminfo(b, 639, 3145600);
    uint32_t bootdev[3] = { 0x80, 0xffffffff, 0xffffffff };
    b_tag(b, 5, bootdev, sizeof bootdev); /* ignored */
    b_mmap(b, qemu_pc_5g, QEMU_N);
    unsigned char rsdp[20] = "RSD PTR ";
    rsdp[19] = 0x42;
    b_tag(b, MB_TAG_ACPI_OLD, rsdp, sizeof rsdp); /* copied; checked later */
    b_finish(b);
}

static void test_qemu_pc_5g(void **state)
{
    (void)state;
    static struct builder b;
    static struct mb_info info;
    struct warnings w;
    build_qemu(&b);
    assert_int_equal(parse_exact(b.buf, b.len, &info, &w), 0);
    assert_int_equal(info.warnings, 0);
    assert_int_equal(info.total_size, b.len);
    assert_string_equal(info.cmdline, "test=all seed=42");
    assert_string_equal(info.bootloader, "GRUB 2.06-13+deb12u1");
    assert_int_equal(info.nmodules, 2);
    assert_int_equal(info.modules[0].start, 0x10b000);
    assert_int_equal(info.modules[0].end, 0x12c3a8);
    assert_string_equal(info.modules[0].cmdline, "/boot/memsrv.elf memsrv");
    assert_int_equal(info.modules[1].start, 0x12d000);
    assert_string_equal(info.modules[1].cmdline, "/boot/init.elf");
    assert_true(info.have_meminfo);
    assert_int_equal(info.mem_lower_kb, 639);
    assert_int_equal(info.mem_upper_kb, 3145600);
    assert_int_equal(info.nregions, QEMU_N);
    for (size_t i = 0; i < QEMU_N; i++) {
        assert_int_equal(info.regions[i].base, qemu_pc_5g[i].base);
        assert_int_equal(info.regions[i].len, qemu_pc_5g[i].len);
        assert_int_equal(info.regions[i].type, qemu_pc_5g[i].type);
    }
    assert_regions_valid(&info);
    assert_true(info.have_rsdp_old);
    assert_memory_equal(info.rsdp_old, "RSD PTR ", 8);
    assert_int_equal(info.rsdp_old[19], 0x42);
    assert_int_equal(info.rsdp_new_len, 0);
    assert_int_equal(mb_ram_bytes(&info), 0x9fc00 + (0xbffe0000 - 0x100000) + 0x80000000ull);
    /* Device registers: the local and I/O APICs lie outside RAM; a page
     * that touches RAM by one byte, at either end, does not. */
    assert_false(mb_overlaps_ram(&info, 0xfee00000, 4096));
    assert_false(mb_overlaps_ram(&info, 0xfec00000, 4096));
    assert_false(mb_overlaps_ram(&info, 0x9fc00, 0x400));
    assert_true(mb_overlaps_ram(&info, 0x9f000, 4096));
    assert_true(mb_overlaps_ram(&info, 0xbffe0000 - 1, 4096));
    assert_true(mb_overlaps_ram(&info, 0x100000000ull - 4096, 4097));
    assert_false(mb_overlaps_ram(&info, 0x100000000ull - 4096, 4096));
    /* A boot module must lie inside one RAM region: not across its end,
     * not in the PCI hole, not empty, not wrapping. */
    assert_true(mb_within_ram(&info, 0x10b000, 0x22000));
    assert_true(mb_within_ram(&info, 0xbffe0000 - 4096, 4096));
    assert_false(mb_within_ram(&info, 0xbffe0000 - 4096, 8192));
    assert_false(mb_within_ram(&info, 0xc0000000, 4096));
    assert_false(mb_within_ram(&info, 0x9f000, 0x2000));
    assert_false(mb_within_ram(&info, 0x200000, 0));
    assert_false(mb_within_ram(&info, UINT64_MAX - 4095, 8192));
    assert_true(mb_within_ram(&info, 0x100000000ull, 0x80000000ull));
    assert_string_equal(mb_mem_type_name(MB_MEM_RAM), "RAM");
    assert_string_equal(mb_mem_type_name(MB_MEM_ACPI_NVS), "ACPI NVS");
    assert_string_equal(mb_mem_type_name(99), "unknown");

    /* A warn callback is optional. */
    assert_int_equal(mb_parse(b.buf, b.len, &info, NULL, NULL), 0);
}

static void test_every_truncation(void **state)
{
    (void)state;
    static struct builder b, t;
    static struct mb_info info;
    struct warnings w;
    build_qemu(&b);
    for (size_t avail = 0; avail < b.len; avail++) {
        /* total_size says more than is readable... */
        int r = parse_exact(b.buf, avail, &info, &w);
        assert_true(r == 0 || r == -EINVAL);
        assert_true(info.warnings > 0);
        assert_regions_valid(&info);
        /* ...or the info itself is cut short and says so. */
        t = b;
        if (avail >= 4)
            put32(&t, 0, (uint32_t)avail);
        r = parse_exact(t.buf, avail, &info, &w);
        assert_true(r == 0 || r == -EINVAL);
        assert_regions_valid(&info);
        if (r == 0 && info.nregions == QEMU_N)
            assert_int_equal(mb_ram_bytes(&info), 0x9fc00 + (0xbffe0000 - 0x100000) + 0x80000000ull);
    }
}

static struct mb_info *parse_built(struct builder *b, struct warnings *w, int want)
{
    static struct mb_info info;
    assert_int_equal(parse_exact(b->buf, b->len, &info, w), want);
    assert_regions_valid(&info);
    return &info;
}

static void expect_warning(const struct warnings *w, const char *a, const char *c)
{
    if (!strstr(w->all, a) || !strstr(w->all, c))
        fail_msg("expected a warning with \"%s\" and \"%s\", got:\n%s", a, c, w->all);
}

static const struct entry one_ram[] = { { 0x100000, 0x1000000, MB_MEM_RAM } };

static void test_malformed_tags(void **state)
{
    (void)state;
    static struct builder b;
    struct warnings w;
    struct mb_info *info;

    /* Module with end < start. */
    b_init(&b);
    b_module(&b, 0x200000, 0x1ff000, "bad");
    b_module(&b, 0x300000, 0x301000, "good");
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_int_equal(info->nmodules, 1);
    assert_string_equal(info->modules[0].cmdline, "good");
    assert_int_equal(info->warnings, 1);
    expect_warning(&w, "tag type 3 (module)", "before start");

    /* Module string without a NUL inside its tag (the padding has zeros, the tag not). */
    b_init(&b);
    unsigned char mod[8 + 5] = { 0, 0, 0x20, 0, 0, 0x10, 0x20, 0, 'a', 'b', 'c', 'd', 'e' };
    b_tag(&b, MB_TAG_MODULE, mod, sizeof mod);
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_int_equal(info->nmodules, 0);
    expect_warning(&w, "tag type 3 (module)", "NUL");

    /* Module tag too small for its fields. */
    b_init(&b);
    b_tag(&b, MB_TAG_MODULE, mod, 4);
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_int_equal(info->nmodules, 0);
    expect_warning(&w, "tag type 3 (module)", "too small");

    /* Command line and bootloader name without NUL. */
    b_init(&b);
    b_tag(&b, MB_TAG_CMDLINE, "quiet", 5);
    b_tag(&b, MB_TAG_BOOTLOADER, "GRUB", 4);
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_string_equal(info->cmdline, "");
    assert_string_equal(info->bootloader, "");
    assert_int_equal(info->warnings, 2);
    expect_warning(&w, "tag type 1 (cmdline)", "NUL");
    expect_warning(&w, "tag type 2 (bootloader name)", "NUL");

    /* Repeated cmdline: the first one is kept. */
    b_init(&b);
    b_string(&b, MB_TAG_CMDLINE, "first");
    b_string(&b, MB_TAG_CMDLINE, "second");
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_string_equal(info->cmdline, "first");
    expect_warning(&w, "tag type 1 (cmdline)", "repeated");

    /* mmap entry_size below 24, not a multiple of 8, or 0; meminfo takes over. */
    static const uint32_t bad_sizes[] = { 0, 8, 16, 20, 28, 30 };
    for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
        b_init(&b);
        b_meminfo(&b, 639, 130048);
        b_mmap_custom(&b, one_ram, 1, bad_sizes[i], 0);
        b_finish(&b);
        info = parse_built(&b, &w, 0);
        expect_warning(&w, "tag type 6 (memory map)", "entry_size");
        assert_int_equal(info->nregions, 2); /* synthesised from meminfo */
    }

    /* A larger entry_size (a later entry version) is fine. */
    b_init(&b);
    b_mmap_custom(&b, qemu_pc_5g, QEMU_N, 32, 1);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_int_equal(info->warnings, 0);
    assert_int_equal(info->nregions, QEMU_N);

    /* mmap size not a whole number of entries. */
    b_init(&b);
    unsigned char odd[8 + 24 + 8] = { 24 };
    b_tag(&b, MB_TAG_MMAP, odd, sizeof odd);
    b_finish(&b);
    info = parse_built(&b, &w, -EINVAL);
    expect_warning(&w, "tag type 6 (memory map)", "whole number");

    /* meminfo too small. */
    b_init(&b);
    b_tag(&b, MB_TAG_MEMINFO, odd, 4);
    b_finish(&b);
    info = parse_built(&b, &w, -EINVAL);
    assert_false(info->have_meminfo);
    expect_warning(&w, "tag type 4 (basic meminfo)", "too small");

    /* A tag smaller than its header stops the walk. */
    b_init(&b);
    b_tag_sized(&b, 21, 4, NULL, 0);
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    info = parse_built(&b, &w, -EINVAL);
    expect_warning(&w, "tag type 21", "smaller than a tag header");

    /* A tag overflowing the info stops the walk; earlier tags stay. */
    b_init(&b);
    b_mmap(&b, one_ram, 1);
    b_tag_sized(&b, MB_TAG_CMDLINE, 0x10000, "x", 2);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_string_equal(info->cmdline, "");
    assert_int_equal(info->nregions, 1);
    expect_warning(&w, "tag type 1 (cmdline)", "overflows");

    /* A tag size near 2^32 must not wrap the walk. */
    b_init(&b);
    b_tag_sized(&b, MB_TAG_MMAP, 0xfffffff8u, NULL, 0);
    b_finish(&b);
    info = parse_built(&b, &w, -EINVAL);
    expect_warning(&w, "tag type 6", "overflows");

    /* total_size below the header; no end tag. */
    b_init(&b);
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    put32(&b, 0, 7);
    parse_built(&b, &w, -EINVAL);
    expect_warning(&w, "total_size 7", "smaller");
    b_init(&b);
    b_mmap(&b, one_ram, 1);
    put32(&b, 0, (uint32_t)b.len);
    info = parse_built(&b, &w, 0);
    expect_warning(&w, "no end tag", "");

    /* Nothing usable. */
    b_init(&b);
    b_string(&b, MB_TAG_CMDLINE, "quiet");
    b_finish(&b);
    info = parse_built(&b, &w, -EINVAL);
    assert_string_equal(info->cmdline, "quiet");
    assert_int_equal(mb_parse(NULL, 0, info, NULL, NULL), -EINVAL);
}

static void test_limits(void **state)
{
    (void)state;
    static struct builder b;
    struct warnings w;
    struct mb_info *info;
    char name[16];

    /* 40 modules: the first 32 are kept, with one warning. */
    b_init(&b);
    for (uint32_t i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "mod%u", i);
        b_module(&b, 0x200000 + i * 0x1000, 0x200800 + i * 0x1000, name);
    }
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_int_equal(info->nmodules, MB_MAX_MODULES);
    assert_string_equal(info->modules[31].cmdline, "mod31");
    assert_int_equal(info->warnings, 1);
    expect_warning(&w, "tag type 3 (module)", "more than 32");

    /* 200 alternating map entries: the first 128 are used. */
    static struct entry many[200];
    for (size_t i = 0; i < 200; i++)
        many[i] = (struct entry){ i * 0x1000, 0x1000, i % 2 ? MB_MEM_RESERVED : MB_MEM_RAM };
    b_init(&b);
    b_mmap(&b, many, 200);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_int_equal(info->nregions, 128);
    assert_int_equal(info->regions[127].base, 127 * 0x1000);
    expect_warning(&w, "tag type 6 (memory map)", "first 128");

    /* 128 entries that split into more than 128 regions: RAM cut by 127 holes. */
    many[0] = (struct entry){ 0, 0x10000000, MB_MEM_RAM };
    for (size_t i = 1; i < 128; i++)
        many[i] = (struct entry){ i * 0x100000, 0x1000, MB_MEM_RESERVED };
    b_init(&b);
    b_mmap(&b, many, 128);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_int_equal(info->nregions, 128);
    expect_warning(&w, "tag type 6 (memory map)", "after clipping");
}

/* Tags 14 and 15: copied when their size is an RSDP's, else refused. */
static void test_acpi_rsdp_tags(void **state)
{
    (void)state;
    static struct builder b;
    struct warnings w;
    struct mb_info *info;
    unsigned char rsdp[80];
    for (size_t i = 0; i < sizeof rsdp; i++)
        rsdp[i] = (unsigned char)(i * 3 + 1);

    /* Both, as GRUB passes them on an ACPI 2.0 machine. */
    b_init(&b);
    b_tag(&b, MB_TAG_ACPI_OLD, rsdp, 20);
    b_tag(&b, MB_TAG_ACPI_NEW, rsdp + 1, 36);
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_int_equal(info->warnings, 0);
    assert_true(info->have_rsdp_old);
    assert_memory_equal(info->rsdp_old, rsdp, 20);
    assert_int_equal(info->rsdp_new_len, 36);
    assert_memory_equal(info->rsdp_new, rsdp + 1, 36);

    /* A longer revision, up to 64 bytes. */
    b_init(&b);
    b_tag(&b, MB_TAG_ACPI_NEW, rsdp, 64);
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_int_equal(info->rsdp_new_len, 64);
    assert_memory_equal(info->rsdp_new, rsdp, 64);

    /* Wrong sizes are refused, and nothing is copied. */
    static const struct {
        uint32_t type;
        size_t len;
        const char *why;
    } bad[] = {
        { MB_TAG_ACPI_OLD, 19, "19 bytes, but an ACPI 1.0 RSDP has 20" },
        { MB_TAG_ACPI_OLD, 21, "21 bytes, but an ACPI 1.0 RSDP has 20" },
        { MB_TAG_ACPI_OLD, 0, "0 bytes" },
        { MB_TAG_ACPI_NEW, 20, "20 bytes, outside the 36..64" },
        { MB_TAG_ACPI_NEW, 35, "35 bytes, outside" },
        { MB_TAG_ACPI_NEW, 65, "65 bytes, outside" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b_init(&b);
        b_tag(&b, bad[i].type, rsdp, bad[i].len);
        b_mmap(&b, one_ram, 1);
        b_finish(&b);
        info = parse_built(&b, &w, 0);
        assert_int_equal(info->warnings, 1);
        expect_warning(&w,
                       bad[i].type == MB_TAG_ACPI_OLD ? "tag type 14 (ACPI old RSDP)" : "tag type 15 (ACPI new RSDP)",
                       bad[i].why);
        assert_false(info->have_rsdp_old);
        assert_int_equal(info->rsdp_new_len, 0);
    }

    /* A repeated tag keeps the first, even when the first was refused. */
    b_init(&b);
    b_tag(&b, MB_TAG_ACPI_NEW, rsdp, 36);
    b_tag(&b, MB_TAG_ACPI_NEW, rsdp + 8, 40);
    b_tag(&b, MB_TAG_ACPI_OLD, rsdp, 12);
    b_tag(&b, MB_TAG_ACPI_OLD, rsdp, 20);
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_int_equal(info->rsdp_new_len, 36);
    assert_memory_equal(info->rsdp_new, rsdp, 36);
    assert_false(info->have_rsdp_old);
    assert_int_equal(info->warnings, 3);
    expect_warning(&w, "tag type 15", "repeated");
    expect_warning(&w, "tag type 14", "repeated");

    /* A tag 15 cut by the end of the info: the walk stops, nothing copied. */
    b_init(&b);
    b_mmap(&b, one_ram, 1);
    size_t tag_at = b.len;
    b_tag(&b, MB_TAG_ACPI_NEW, rsdp, 36);
    b_finish(&b);
    static struct mb_info cut;
    for (size_t avail = tag_at; avail < b.len; avail++) {
        put32(&b, 0, (uint32_t)avail);
        assert_int_equal(parse_exact(b.buf, avail, &cut, &w), 0);
        assert_int_equal(cut.rsdp_new_len != 0, avail >= tag_at + 8 + 36);
    }
}

/* The UEFI system table tags: which firmware GRUB came from. */
static void test_efi_tags(void **state)
{
    (void)state;
    static struct builder b;
    struct warnings w;
    struct mb_info *info;
    uint64_t table64 = 0x7f9e2018ull;
    uint32_t table32 = 0x3f6e1018u;

    /* None: a BIOS boot. */
    b_init(&b);
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_false(info->have_efi);
    assert_false(info->efi_boot_services);

    /* 64-bit, then a second table tag: the first is kept, with a warning. */
    b_init(&b);
    b_tag(&b, MB_TAG_EFI64, &table64, 8);
    b_tag(&b, MB_TAG_EFI32, &table32, 4);
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_true(info->have_efi);
    assert_int_equal(info->efi_bits, 64);
    assert_int_equal(info->efi_system_table, table64);
    assert_int_equal(info->warnings, 1);
    expect_warning(&w, "tag type 11 (EFI 32-bit system table)", "first one is kept");

    /* 32-bit, with boot services left running. */
    b_init(&b);
    b_tag(&b, MB_TAG_EFI32, &table32, 4);
    b_tag(&b, MB_TAG_EFI_BS, NULL, 0);
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_true(info->have_efi);
    assert_int_equal(info->efi_bits, 32);
    assert_int_equal(info->efi_system_table, table32);
    assert_true(info->efi_boot_services);
    assert_int_equal(info->warnings, 0);

    /* Too short to hold the address: refused, nothing recorded. */
    b_init(&b);
    b_tag(&b, MB_TAG_EFI64, &table64, 4);
    b_mmap(&b, one_ram, 1);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_false(info->have_efi);
    expect_warning(&w, "tag type 12 (EFI 64-bit system table)", "too small");
}

static void test_meminfo_only(void **state)
{
    (void)state;
    static struct builder b;
    struct warnings w;
    b_init(&b);
    b_meminfo(&b, 639, 130048);
    b_finish(&b);
    struct mb_info *info = parse_built(&b, &w, 0);
    assert_int_equal(info->warnings, 0);
    assert_int_equal(info->nregions, 2);
    assert_int_equal(info->regions[0].base, 0);
    assert_int_equal(info->regions[0].len, 639 * 1024);
    assert_int_equal(info->regions[1].base, 0x100000);
    assert_int_equal(info->regions[1].len, 130048ull * 1024);
    assert_int_equal(mb_ram_bytes(info), (639 + 130048ull) * 1024);
}

static void test_overlapping_unsorted(void **state)
{
    (void)state;
    static struct builder b;
    struct warnings w;
    struct mb_info *info;

    /* Unsorted, overlapping, adjacent and empty entries; an unknown type. */
    static const struct entry messy[] = {
        { 0x100000, 0x7ff00000, MB_MEM_RAM }, /* [1M, 2G) RAM */
        { 0x0, 0x9fc00, MB_MEM_RAM },
        { 0x9f000, 0x1000, MB_MEM_RESERVED },             /* cuts the low RAM */
        { 0x80000000, 0x1000000, MB_MEM_RAM },            /* adjacent: merged */
        { 0x7ffe0000, 0x20000, MB_MEM_ACPI_RECLAIMABLE }, /* inside RAM: splits it */
        { 0x7fff0000, 0x8000, MB_MEM_ACPI_NVS },          /* inside ACPI: NVS wins */
        { 0x500000, 0, MB_MEM_BAD },                      /* empty: dropped */
        { 0x600000, 0x1000, MB_MEM_BAD },                 /* bad beats RAM */
        { 0xfee00000, 0x1000, 17 },                       /* unknown: reserved */
        { 0x600800, 0x1000, MB_MEM_RESERVED },            /* overlaps bad: bad keeps its part */
    };
    b_init(&b);
    b_mmap(&b, messy, sizeof messy / sizeof messy[0]);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_int_equal(info->warnings, 0);
    static const struct entry want[] = {
        { 0x0, 0x9f000, MB_MEM_RAM },
        { 0x9f000, 0x1000, MB_MEM_RESERVED },
        { 0x100000, 0x500000, MB_MEM_RAM },
        { 0x600000, 0x1000, MB_MEM_BAD },
        { 0x601000, 0x800, MB_MEM_RESERVED },
        { 0x601800, 0x7fffe0000 / 16 * 0 + 0x7ffe0000 - 0x601800, MB_MEM_RAM },
        { 0x7ffe0000, 0x10000, MB_MEM_ACPI_RECLAIMABLE },
        { 0x7fff0000, 0x8000, MB_MEM_ACPI_NVS },
        { 0x7fff8000, 0x8000, MB_MEM_ACPI_RECLAIMABLE },
        { 0x80000000, 0x1000000, MB_MEM_RAM },
        { 0xfee00000, 0x1000, MB_MEM_RESERVED },
    };
    assert_int_equal(info->nregions, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < info->nregions; i++) {
        if (info->regions[i].base != want[i].base || info->regions[i].len != want[i].len ||
            info->regions[i].type != want[i].type)
            fail_msg("region %zu: [%#llx +%#llx) type %u, want [%#llx +%#llx) type %u", i,
                     (unsigned long long)info->regions[i].base, (unsigned long long)info->regions[i].len,
                     info->regions[i].type, (unsigned long long)want[i].base, (unsigned long long)want[i].len,
                     want[i].type);
    }

    /* An entry whose end overflows is clipped at 2^64-1, with a warning. */
    static const struct entry wrap[] = {
        { 0x100000, 0x100000, MB_MEM_RAM },
        { 0xfffffffffff00000ull, 0x200000, MB_MEM_RESERVED },
    };
    b_init(&b);
    b_mmap(&b, wrap, 2);
    b_finish(&b);
    info = parse_built(&b, &w, 0);
    assert_int_equal(info->nregions, 2);
    assert_int_equal(info->regions[1].base, 0xfffffffffff00000ull);
    assert_int_equal(info->regions[1].len, 0xfffffull);
    assert_int_equal(info->warnings, 1);
    expect_warning(&w, "tag type 6 (memory map)", "overflows");
}

/* The parser's precedence, unknown types counting as reserved. */
static unsigned rank(uint32_t type)
{
    static const unsigned r[] = { 0, 1, 4, 2, 3, 5 };
    return type >= 1 && type <= 5 ? r[type] : 4;
}

/* Random maps over 64 pages, checked page by page against the rank rule. */
static void test_random_maps(void **state)
{
    (void)state;
    static struct builder b;
    struct warnings w;
    test_rng_seed(0x13198a2e03707344ull);
    for (int iter = 0; iter < 3000; iter++) {
        struct entry e[20];
        size_t n = 1 + test_rnd() % 20;
        uint32_t page_type[64] = { 0 };
        for (size_t i = 0; i < n; i++) {
            uint64_t start = test_rnd() % 64, len = test_rnd() % 12;
            if (start + len > 64)
                len = 64 - start;
            e[i] = (struct entry){ start * 0x1000, len * 0x1000, (uint32_t)(1 + test_rnd() % 6) };
            for (uint64_t pg = start; pg < start + len; pg++)
                if (rank(e[i].type) > rank(page_type[pg]) || page_type[pg] == 0)
                    page_type[pg] = e[i].type == 6 ? MB_MEM_RESERVED : e[i].type;
        }
        b_init(&b);
        b_mmap(&b, e, n);
        b_finish(&b);
        static struct mb_info info;
        int r = parse_exact(b.buf, b.len, &info, &w);
        assert_regions_valid(&info);
        uint32_t got[64] = { 0 };
        for (size_t i = 0; i < info.nregions; i++) {
            assert_int_equal(info.regions[i].base % 0x1000, 0);
            assert_int_equal(info.regions[i].len % 0x1000, 0);
            for (uint64_t pg = info.regions[i].base / 0x1000;
                 pg < (info.regions[i].base + info.regions[i].len) / 0x1000; pg++)
                got[pg] = info.regions[i].type;
        }
        assert_int_equal(r, info.nregions ? 0 : -EINVAL);
        for (int pg = 0; pg < 64; pg++)
            if (got[pg] != page_type[pg])
                fail_msg("iteration %d page %d: type %u, want %u", iter, pg, got[pg], page_type[pg]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qemu_pc_5g),     cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_malformed_tags), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_acpi_rsdp_tags), cmocka_unit_test(test_meminfo_only),
        cmocka_unit_test(test_efi_tags),       cmocka_unit_test(test_overlapping_unsorted),
        cmocka_unit_test(test_random_maps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
