/*
 * Host tests of common/acpi.c: RSDP, RSDT/XSDT, MADT and DMAR tables laid
 * out as QEMU and real firmware produce them, each malformation the parser
 * refuses (checked by the reason it gives), every truncation, and a seeded
 * random-corruption run. Tables are parsed from heap buffers of exactly
 * their length and the fake physical memory hands out exact-size regions,
 * so the _asan build fails on any read outside what the parser was given.
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
#include <common/acpi.h>

/* ---- building tables ---- */

struct table {
    uint8_t b[8192];
    size_t len;
};

static void put8(struct table *t, size_t off, uint8_t v) { t->b[off] = v; }
static void put16(struct table *t, size_t off, uint16_t v) { memcpy(t->b + off, &v, 2); }
static void put32(struct table *t, size_t off, uint32_t v) { memcpy(t->b + off, &v, 4); }

static uint8_t sum_of(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

/* A header for sig; the body follows from offset 36. */
static void t_init(struct table *t, const char *sig, size_t fixed)
{
    memset(t, 0, sizeof *t);
    memcpy(t->b, sig, 4);
    put8(t, 8, 1);
    memcpy(t->b + 10, "BOCHS ", 6);
    memcpy(t->b + 16, "BXPC    ", 8);
    t->len = fixed;
}

static void t_append(struct table *t, const void *p, size_t n)
{
    assert_true(t->len + n <= sizeof t->b);
    memcpy(t->b + t->len, p, n);
    t->len += n;
}

/* Sets the length field to the bytes built and makes the checksum right. */
static void t_finish(struct table *t)
{
    put32(t, 4, (uint32_t)t->len);
    put8(t, 9, 0);
    put8(t, 9, (uint8_t)(0x100 - sum_of(t->b, t->len)));
}

static void t_fix_checksum(struct table *t, size_t len)
{
    put8(t, 9, 0);
    put8(t, 9, (uint8_t)(0x100 - sum_of(t->b, len)));
}

/* A heap copy of exactly n bytes (the previous one is freed). */
static void *exact;
static const void *exact_copy(const void *p, size_t n)
{
    free(exact);
    exact = malloc(n ? n : 1);
    assert_non_null(exact);
    memcpy(exact, p, n);
    return exact;
}

static void expect_reason(const struct acpi_error *e, const char *a, const char *b)
{
    if (!strstr(e->msg, a) || (b && !strstr(e->msg, b)))
        fail_msg("expected a reason with \"%s\"%s%s%s, got: %s", a, b ? " and \"" : "", b ? b : "", b ? "\"" : "",
                 e->msg);
}

/* ---- RSDP ---- */

static void make_rsdp(uint8_t *r, unsigned revision, uint32_t rsdt, uint64_t xsdt)
{
    memset(r, 0, ACPI_RSDP_V2_SIZE);
    memcpy(r, "RSD PTR ", 8);
    memcpy(r + 9, "BOCHS ", 6);
    r[15] = (uint8_t)revision;
    memcpy(r + 16, &rsdt, 4);
    r[8] = (uint8_t)(0x100 - sum_of(r, ACPI_RSDP_V1_SIZE));
    if (revision >= 2) {
        uint32_t length = ACPI_RSDP_V2_SIZE;
        memcpy(r + 20, &length, 4);
        memcpy(r + 24, &xsdt, 8);
        r[32] = (uint8_t)(0x100 - sum_of(r, ACPI_RSDP_V2_SIZE));
    }
}

static void test_rsdp(void **state)
{
    (void)state;
    uint8_t r[ACPI_RSDP_V2_SIZE];
    struct acpi_rsdp out;
    struct acpi_error e;

    make_rsdp(r, 0, 0x7fe14a1, 0);
    assert_int_equal(acpi_rsdp_parse(exact_copy(r, 20), 20, &out, &e), 0);
    assert_int_equal(out.revision, 0);
    assert_int_equal(out.rsdt, 0x7fe14a1);
    assert_int_equal(out.xsdt, 0);
    assert_string_equal(out.oem_id, "BOCHS ");

    make_rsdp(r, 2, 0x7fe14a1, 0x17fe1000ull);
    assert_int_equal(acpi_rsdp_parse(exact_copy(r, 36), 36, &out, &e), 0);
    assert_int_equal(out.revision, 2);
    assert_int_equal(out.xsdt, 0x17fe1000ull);

    /* Every truncation of a version 2 RSDP is refused. */
    for (size_t n = 0; n < 36; n++) {
        assert_int_equal(acpi_rsdp_parse(exact_copy(r, n), n, &out, &e), -EINVAL);
        assert_int_equal(out.rsdt, 0);
    }
    assert_int_equal(acpi_rsdp_parse(NULL, 36, &out, &e), -EINVAL);

    make_rsdp(r, 0, 0x1000, 0);
    r[0] = 'r';
    assert_int_equal(acpi_rsdp_parse(exact_copy(r, 20), 20, &out, &e), -EINVAL);
    expect_reason(&e, "signature", NULL);

    make_rsdp(r, 0, 0x1000, 0);
    r[16] ^= 1;
    assert_int_equal(acpi_rsdp_parse(exact_copy(r, 20), 20, &out, &e), -EINVAL);
    expect_reason(&e, "first 20 bytes", "not 0");

    make_rsdp(r, 2, 0x1000, 0x2000);
    r[25] ^= 1; /* covered only by the extended checksum */
    r[8] = 0;
    r[8] = (uint8_t)(0x100 - sum_of(r, 20));
    assert_int_equal(acpi_rsdp_parse(exact_copy(r, 36), 36, &out, &e), -EINVAL);
    expect_reason(&e, "extended checksum", NULL);

    make_rsdp(r, 2, 0x1000, 0x2000);
    uint32_t big = 40;
    memcpy(r + 20, &big, 4);
    assert_int_equal(acpi_rsdp_parse(exact_copy(r, 36), 36, &out, &e), -EINVAL);
    expect_reason(&e, "length field 40", NULL);

    make_rsdp(r, 0, 0, 0);
    assert_int_equal(acpi_rsdp_parse(exact_copy(r, 20), 20, &out, &e), -EINVAL);
    expect_reason(&e, "neither", NULL);
}

/* ---- fake physical memory ---- */

#define MAX_REGIONS 64
struct region {
    uint64_t base;
    size_t len;
    uint8_t *bytes; /* heap, exactly len */
};

static struct memory {
    struct region r[MAX_REGIONS];
    unsigned n;
    unsigned reads;
} mem;

static void mem_reset(void)
{
    for (unsigned i = 0; i < mem.n; i++)
        free(mem.r[i].bytes);
    memset(&mem, 0, sizeof mem);
}

static void mem_add(uint64_t base, const void *p, size_t len)
{
    assert_true(mem.n < MAX_REGIONS);
    struct region *r = &mem.r[mem.n++];
    r->base = base;
    r->len = len;
    r->bytes = malloc(len ? len : 1);
    assert_non_null(r->bytes);
    memcpy(r->bytes, p, len);
}

static uint8_t *mem_at(uint64_t phys)
{
    for (unsigned i = 0; i < mem.n; i++)
        if (phys >= mem.r[i].base && phys - mem.r[i].base < mem.r[i].len)
            return mem.r[i].bytes + (phys - mem.r[i].base);
    return NULL;
}

static bool mem_read(void *ctx, uint64_t phys, void *dst, size_t len)
{
    (void)ctx;
    mem.reads++;
    for (unsigned i = 0; i < mem.n; i++) {
        struct region *r = &mem.r[i];
        if (phys >= r->base && phys - r->base <= r->len && len <= r->len - (phys - r->base)) {
            memcpy(dst, r->bytes + (phys - r->base), len);
            return true;
        }
    }
    return false;
}

static struct warnings {
    int count;
    char all[4096];
} warns;

static void collect(void *ctx, const char *msg)
{
    (void)ctx;
    warns.count++;
    size_t used = strlen(warns.all);
    snprintf(warns.all + used, sizeof warns.all - used, "%s\n", msg);
}

static void test_rsdp_scan(void **state)
{
    (void)state;
    struct acpi_rsdp out;
    struct acpi_error e;
    uint64_t at = 0;
    uint8_t r[36];
    static uint8_t low[0x500], ebda[0x400], bios[0x20000];

    /* SeaBIOS: the RSDP in the BIOS area, an EBDA without one. */
    mem_reset();
    memset(low, 0, sizeof low);
    uint16_t seg = 0x9fc0;
    memcpy(low + ACPI_EBDA_POINTER, &seg, 2);
    mem_add(0, low, sizeof low);
    memset(ebda, 0, sizeof ebda);
    mem_add(0x9fc00, ebda, sizeof ebda);
    memset(bios, 0, sizeof bios);
    make_rsdp(r, 0, 0x7fe2000, 0);
    memcpy(bios + 0xf5a50 - 0xe0000, r, 20);
    mem_add(0xe0000, bios, sizeof bios);
    assert_int_equal(acpi_rsdp_scan(mem_read, NULL, &out, &at, &e), 0);
    assert_int_equal(at, 0xf5a50);
    assert_int_equal(out.rsdt, 0x7fe2000);

    /* One in the EBDA comes first; a bad candidate before it is passed over. */
    make_rsdp(r, 2, 0x7fe3000, 0x7fe4000);
    r[16] ^= 0x40;
    memcpy(mem_at(0x9fc00), r, 36);
    make_rsdp(r, 2, 0x7fe3000, 0x7fe4000);
    memcpy(mem_at(0x9fc40), r, 36);
    assert_int_equal(acpi_rsdp_scan(mem_read, NULL, &out, &at, &e), 0);
    assert_int_equal(at, 0x9fc40);
    assert_int_equal(out.xsdt, 0x7fe4000);

    /* An RSDP only at 16-byte boundaries; one ending at 1 MiB is found. */
    memset(mem_at(0x9fc00), 0, 0x400);
    memset(mem_at(0xe0000), 0, sizeof bios);
    make_rsdp(r, 0, 0x1000, 0);
    memcpy(mem_at(0xe0008), r, 20);
    memcpy(mem_at(0x100000 - 32), r, 20);
    assert_int_equal(acpi_rsdp_scan(mem_read, NULL, &out, &at, &e), 0);
    assert_int_equal(at, 0x100000 - 32);

    /* A version 2 RSDP cut by the end of the area is refused. */
    memset(mem_at(0xe0000), 0, sizeof bios);
    make_rsdp(r, 2, 0x1000, 0x2000);
    memcpy(mem_at(0x100000 - 32), r, 32);
    assert_int_equal(acpi_rsdp_scan(mem_read, NULL, &out, &at, &e), -ENOENT);
    expect_reason(&e, "no valid RSDP", "1 with a bad checksum");

    /* An EBDA pointer into video memory is not followed. */
    seg = 0xb800;
    memcpy(mem_at(ACPI_EBDA_POINTER), &seg, 2);
    assert_int_equal(acpi_rsdp_scan(mem_read, NULL, &out, &at, &e), -ENOENT);

    /* Nothing readable at all. */
    mem_reset();
    assert_int_equal(acpi_rsdp_scan(mem_read, NULL, &out, &at, &e), -ENOENT);
    mem_reset();
}

/* ---- RSDT / XSDT ---- */

static void build_root(struct table *t, const char *sig, const uint64_t *entries, size_t n)
{
    bool x = sig[0] == 'X';
    t_init(t, sig, ACPI_HEADER_SIZE);
    for (size_t i = 0; i < n; i++) {
        if (x)
            t_append(t, &entries[i], 8);
        else {
            uint32_t v = (uint32_t)entries[i];
            t_append(t, &v, 4);
        }
    }
    t_finish(t);
}

static void build_simple(struct table *t, const char *sig, size_t body)
{
    t_init(t, sig, ACPI_HEADER_SIZE);
    for (size_t i = 0; i < body; i++) {
        uint8_t v = (uint8_t)(i * 7);
        t_append(t, &v, 1);
    }
    t_finish(t);
}

static void test_root_and_find(void **state)
{
    (void)state;
    static struct table xsdt, rsdt, facp, dmar, dmar_bad, apic;
    static struct acpi_root root;
    static uint8_t buf[4096];
    struct acpi_rsdp rsdp = { .revision = 2, .rsdt = 0x7000, .xsdt = 0x8000 };
    struct acpi_error e;
    size_t len;

    build_simple(&facp, "FACP", 80);
    build_simple(&apic, "APIC", 40);
    build_simple(&dmar, "DMAR", 60);
    dmar_bad = dmar;
    dmar_bad.b[50] ^= 1;
    uint64_t x_entries[] = { 0x10000, 0x0, 0x20000, 0x30000, 0x40000, 0x50000 };
    build_root(&xsdt, "XSDT", x_entries, 6);
    uint64_t r_entries[] = { 0x10000, 0x40000 };
    build_root(&rsdt, "RSDT", r_entries, 2);

    mem_reset();
    mem_add(0x7000, rsdt.b, rsdt.len);
    mem_add(0x8000, xsdt.b, xsdt.len);
    mem_add(0x10000, facp.b, facp.len);
    mem_add(0x20000, dmar_bad.b, dmar_bad.len); /* a bad copy first */
    /* 0x30000: nothing there */
    mem_add(0x40000, apic.b, apic.len);
    mem_add(0x50000, dmar.b, dmar.len);

    memset(&warns, 0, sizeof warns);
    assert_int_equal(acpi_root_open(&root, &rsdp, mem_read, NULL, collect, NULL, &e), 0);
    assert_true(root.xsdt);
    assert_int_equal(root.count, 6);
    assert_int_equal(root.entries[5], 0x50000);
    assert_int_equal(acpi_find_table(&root, "APIC", buf, sizeof buf, &len, &e), 0);
    assert_int_equal(len, apic.len);
    assert_memory_equal(buf, apic.b, len);
    assert_int_equal(acpi_find_table(&root, "DMAR", buf, sizeof buf, &len, &e), 0);
    assert_memory_equal(buf, dmar.b, dmar.len);
    if (!strstr(warns.all, "checksum") || !strstr(warns.all, "0x30000"))
        fail_msg("warnings: %s", warns.all);
    assert_int_equal(acpi_find_table(&root, "SSDT", buf, sizeof buf, &len, &e), -ENOENT);
    expect_reason(&e, "no SSDT table", "6 entries of the XSDT");
    assert_int_equal(acpi_find_table(&root, "FACP", buf, 60, &len, &e), -E2BIG);
    expect_reason(&e, "116 bytes", "more than the 60");

    /* Only a bad DMAR: refused with its reason. */
    memcpy(mem_at(0x50000), dmar_bad.b, dmar_bad.len);
    assert_int_equal(acpi_find_table(&root, "DMAR", buf, sizeof buf, &len, &e), -EINVAL);
    expect_reason(&e, "DMAR", "bad checksum");

    /* A DMAR whose length field is below its header. */
    put32(&dmar_bad, 4, 20);
    memcpy(mem_at(0x50000), dmar_bad.b, dmar_bad.len);
    memcpy(mem_at(0x20000), dmar_bad.b, dmar_bad.len);
    assert_int_equal(acpi_find_table(&root, "DMAR", buf, sizeof buf, &len, &e), -EINVAL);
    expect_reason(&e, "length 20", "less than its header");

    /* A bad XSDT falls back on the RSDT, with a warning. */
    mem_at(0x8000 + 40)[0] ^= 0xff;
    memset(&warns, 0, sizeof warns);
    assert_int_equal(acpi_root_open(&root, &rsdp, mem_read, NULL, collect, NULL, &e), 0);
    assert_false(root.xsdt);
    assert_int_equal(root.count, 2);
    assert_int_equal(warns.count, 1);
    if (!strstr(warns.all, "XSDT") || !strstr(warns.all, "using the RSDT"))
        fail_msg("warnings: %s", warns.all);
    assert_int_equal(acpi_find_table(&root, "APIC", buf, sizeof buf, &len, &e), 0);

    /* ...but not without an RSDT. */
    struct acpi_rsdp only_x = { .revision = 2, .xsdt = 0x8000 };
    assert_int_equal(acpi_root_open(&root, &only_x, mem_read, NULL, collect, NULL, &e), -EINVAL);
    expect_reason(&e, "XSDT at 0x8000", "bad checksum");
    assert_int_equal(root.count, 0);

    /* Root tables: unreadable, wrong signature, ragged length, too many entries. */
    struct acpi_rsdp r1 = { .rsdt = 0x9000 };
    assert_int_equal(acpi_root_open(&root, &r1, mem_read, NULL, NULL, NULL, &e), -ERANGE);
    expect_reason(&e, "RSDT at 0x9000", "cannot be read");
    r1.rsdt = 0x8000;
    assert_int_equal(acpi_root_open(&root, &r1, mem_read, NULL, NULL, NULL, &e), -EINVAL);
    expect_reason(&e, "signature is 'XSDT'", NULL);
    static struct table ragged;
    build_root(&ragged, "RSDT", r_entries, 2);
    ragged.len -= 2;
    t_finish(&ragged);
    mem_add(0x60000, ragged.b, ragged.len);
    r1.rsdt = 0x60000;
    assert_int_equal(acpi_root_open(&root, &r1, mem_read, NULL, NULL, NULL, &e), -EINVAL);
    expect_reason(&e, "length 42", "whole number of 4-byte entries");
    static uint64_t many[ACPI_ROOT_MAX_ENTRIES + 1];
    static struct table big;
    build_root(&big, "RSDT", many, ACPI_ROOT_MAX_ENTRIES + 1);
    mem_add(0x70000, big.b, big.len);
    r1.rsdt = 0x70000;
    assert_int_equal(acpi_root_open(&root, &r1, mem_read, NULL, NULL, NULL, &e), -EINVAL);
    expect_reason(&e, "257 entries", NULL);
    /* A length field longer than what is there: the read fails, nothing past it. */
    static struct table lying;
    build_root(&lying, "RSDT", r_entries, 2);
    mem_add(0x80000, lying.b, lying.len);
    put32(&lying, 4, 44 + 400);
    memcpy(mem_at(0x80000), lying.b, 8);
    r1.rsdt = 0x80000;
    assert_int_equal(acpi_root_open(&root, &r1, mem_read, NULL, NULL, NULL, &e), -ERANGE);
    mem_reset();
}

/* ---- MADT ---- */

static void madt_init(struct table *t, uint32_t lapic, uint32_t flags)
{
    t_init(t, "APIC", 44);
    put32(t, 36, lapic);
    put32(t, 40, flags);
}

static void madt_lapic(struct table *t, uint8_t uid, uint8_t id, uint32_t flags)
{
    uint8_t e[8] = { 0, 8, uid, id };
    memcpy(e + 4, &flags, 4);
    t_append(t, e, sizeof e);
}

static void madt_x2apic(struct table *t, uint32_t id, uint32_t flags, uint32_t uid)
{
    uint8_t e[16] = { 9, 16 };
    memcpy(e + 4, &id, 4);
    memcpy(e + 8, &flags, 4);
    memcpy(e + 12, &uid, 4);
    t_append(t, e, sizeof e);
}

static void madt_ioapic(struct table *t, uint8_t id, uint32_t addr, uint32_t gsi)
{
    uint8_t e[12] = { 1, 12, id, 0 };
    memcpy(e + 4, &addr, 4);
    memcpy(e + 8, &gsi, 4);
    t_append(t, e, sizeof e);
}

static void madt_override(struct table *t, uint8_t bus, uint8_t irq, uint32_t gsi, uint16_t flags)
{
    uint8_t e[10] = { 2, 10, bus, irq };
    memcpy(e + 4, &gsi, 4);
    memcpy(e + 8, &flags, 2);
    t_append(t, e, sizeof e);
}

static void madt_nmi(struct table *t, uint8_t uid, uint16_t flags, uint8_t lint)
{
    uint8_t e[6] = { 4, 6, uid };
    memcpy(e + 3, &flags, 2);
    e[5] = lint;
    t_append(t, e, sizeof e);
}

/* The MADT QEMU builds for -smp 4 (pc and q35). */
static void build_qemu_madt(struct table *t)
{
    madt_init(t, 0xfee00000, ACPI_MADT_PCAT_COMPAT);
    for (uint8_t i = 0; i < 4; i++)
        madt_lapic(t, i, i, 1);
    madt_ioapic(t, 0, 0xfec00000, 0);
    madt_override(t, 0, 0, 2, 0);
    madt_override(t, 0, 5, 5, 0xd);
    madt_override(t, 0, 9, 9, 0xd);
    madt_override(t, 0, 10, 10, 0xd);
    madt_override(t, 0, 11, 11, 0xd);
    madt_nmi(t, 0xff, 0, 1);
    t_finish(t);
}

static int parse_madt(const struct table *t, size_t len, struct acpi_madt *out, struct acpi_error *e)
{
    return acpi_madt_parse(exact_copy(t->b, len), len, out, e);
}

static void test_madt_qemu(void **state)
{
    (void)state;
    static struct table t;
    static struct acpi_madt m;
    struct acpi_error e;
    build_qemu_madt(&t);
    assert_int_equal(parse_madt(&t, t.len, &m, &e), 0);
    assert_int_equal(m.lapic_address, 0xfee00000);
    assert_int_equal(m.flags, ACPI_MADT_PCAT_COMPAT);
    assert_int_equal(m.ncpus, 4);
    assert_int_equal(m.enabled_cpus, 4);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(m.cpus[i].apic_id, i);
        assert_true(m.cpus[i].enabled);
        assert_false(m.cpus[i].x2apic);
    }
    assert_int_equal(m.nioapics, 1);
    assert_int_equal(m.ioapics[0].address, 0xfec00000);
    assert_int_equal(m.noverrides, 5);
    assert_int_equal(m.overrides[0].source_irq, 0);
    assert_int_equal(m.overrides[0].gsi, 2);
    assert_int_equal(m.overrides[4].flags, 0xd);
    assert_int_equal(m.nnmis, 1);
    assert_int_equal(m.nmis[0].uid, 0xffffffffu);
    assert_int_equal(m.nmis[0].lint, 1);

    /* x2APIC processors, a disabled but online-capable one, an ignored
     * disabled one, a 64-bit address override and an unknown entry type. */
    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    madt_lapic(&t, 1, 1, 0); /* never usable: left out */
    madt_lapic(&t, 2, 2, 2); /* online capable */
    madt_x2apic(&t, 0x100, 1, 3);
    uint8_t addr[12] = { 5, 12 };
    uint64_t lapic64 = 0xfee00000ull;
    memcpy(addr + 4, &lapic64, 8);
    t_append(&t, addr, sizeof addr);
    uint8_t future[20] = { 0x7f, 20 };
    t_append(&t, future, sizeof future);
    uint8_t x2nmi[12] = { 10, 12, 0, 0, 0xff, 0xff, 0xff, 0xff, 0 };
    t_append(&t, x2nmi, sizeof x2nmi);
    t_finish(&t);
    assert_int_equal(parse_madt(&t, t.len, &m, &e), 0);
    assert_int_equal(m.ncpus, 3);
    assert_int_equal(m.enabled_cpus, 2);
    assert_true(m.cpus[1].online_capable);
    assert_false(m.cpus[1].enabled);
    assert_true(m.cpus[2].x2apic);
    assert_int_equal(m.cpus[2].apic_id, 0x100);
    assert_int_equal(m.cpus[2].uid, 3);
    assert_int_equal(m.other_entries, 1);
    assert_int_equal(m.nnmis, 1);
    assert_int_equal(m.nmis[0].lint, 0);

    /* More processors than fit: the rest are counted, not refused. */
    madt_init(&t, 0xfee00000, 0);
    for (uint32_t i = 0; i < ACPI_MADT_MAX_CPUS + 10; i++)
        madt_x2apic(&t, i, 1, i);
    t_finish(&t);
    assert_int_equal(parse_madt(&t, t.len, &m, &e), 0);
    assert_int_equal(m.ncpus, ACPI_MADT_MAX_CPUS);
    assert_int_equal(m.cpus_ignored, 10);
}

static void expect_madt_refused(struct table *t, const char *a, const char *b)
{
    static struct acpi_madt m;
    struct acpi_error e;
    t_finish(t);
    assert_int_equal(parse_madt(t, t->len, &m, &e), -EINVAL);
    expect_reason(&e, a, b);
    assert_int_equal(m.ncpus, 0); /* nothing half-parsed is left */
}

static void test_madt_malformed(void **state)
{
    (void)state;
    static struct table t;

    /* Truncated and overlong entries of each length class. */
    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    uint8_t short_lapic[7] = { 0, 7, 1, 1, 1 };
    t_append(&t, short_lapic, sizeof short_lapic);
    expect_madt_refused(&t, "entry 1 (local APIC) at offset 52", "length 7, but this entry type has 8");

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    uint8_t long_ioapic[13] = { 1, 13, 1, 0, 0, 0, 0xc0, 0xfe };
    t_append(&t, long_ioapic, sizeof long_ioapic);
    expect_madt_refused(&t, "(I/O APIC)", "length 13, but this entry type has 12");

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    uint8_t tiny[2] = { 0x42, 1 };
    t_append(&t, tiny, sizeof tiny);
    expect_madt_refused(&t, "length 1", "less than its own header");

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    uint8_t past[4] = { 0x42, 40 };
    t_append(&t, past, sizeof past);
    expect_madt_refused(&t, "length 40 runs past the table's end", "4 bytes left");

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    uint8_t stray = 0;
    t_append(&t, &stray, 1);
    expect_madt_refused(&t, "1 stray byte at offset 52", NULL);

    /* Contradictions. */
    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 3, 1);
    madt_x2apic(&t, 3, 1, 1);
    expect_madt_refused(&t, "(x2APIC)", "APIC id 0x3 is listed twice");

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    madt_ioapic(&t, 2, 0xfec00000, 0);
    madt_ioapic(&t, 2, 0xfec01000, 24);
    expect_madt_refused(&t, "I/O APIC id 2 is listed twice", NULL);

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    madt_ioapic(&t, 2, 0, 0);
    expect_madt_refused(&t, "address 0", NULL);

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    for (uint8_t i = 0; i <= ACPI_MADT_MAX_IOAPICS; i++)
        madt_ioapic(&t, i, 0xfec00000 + i * 0x1000u, i * 24u);
    expect_madt_refused(&t, "more than 16 I/O APICs", NULL);

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    madt_override(&t, 1, 0, 2, 0);
    expect_madt_refused(&t, "bus 1", "ISA");

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    madt_override(&t, 0, 16, 16, 0);
    expect_madt_refused(&t, "source IRQ 16", NULL);

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    madt_override(&t, 0, 9, 9, 0x2);
    expect_madt_refused(&t, "reserved polarity or trigger", "0x2");

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    madt_override(&t, 0, 9, 9, 0x8);
    expect_madt_refused(&t, "reserved polarity or trigger", "0x8");

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    madt_override(&t, 0, 9, 9, 0xd);
    madt_override(&t, 0, 9, 20, 0xd);
    expect_madt_refused(&t, "IRQ 9 is overridden twice", NULL);

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    madt_nmi(&t, 0xff, 0, 2);
    expect_madt_refused(&t, "LINT2 does not exist", NULL);

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 1);
    uint8_t addr[12] = { 5, 12, 0, 0, 0, 0, 0xe0, 0xfe };
    t_append(&t, addr, sizeof addr);
    t_append(&t, addr, sizeof addr);
    expect_madt_refused(&t, "a second override", NULL);

    madt_init(&t, 0xfee00000, 0);
    madt_lapic(&t, 0, 0, 0);
    madt_ioapic(&t, 0, 0xfec00000, 0);
    expect_madt_refused(&t, "no enabled processor", NULL);

    /* Header problems: signature, length field, checksum, fixed fields. */
    static struct acpi_madt m;
    struct acpi_error e;
    build_qemu_madt(&t);
    t.b[20] ^= 1;
    assert_int_equal(parse_madt(&t, t.len, &m, &e), -EINVAL);
    expect_reason(&e, "APIC", "bad checksum");
    build_qemu_madt(&t);
    assert_int_equal(parse_madt(&t, t.len - 1, &m, &e), -EINVAL);
    expect_reason(&e, "length field", "read is");
    t_init(&t, "APIC", 40);
    t_finish(&t);
    assert_int_equal(parse_madt(&t, t.len, &m, &e), -EINVAL);
    expect_reason(&e, "fewer than the 44", NULL);
    build_qemu_madt(&t);
    memcpy(t.b, "APIc", 4);
    assert_int_equal(parse_madt(&t, t.len, &m, &e), -EINVAL);
    expect_reason(&e, "signature is 'APIc'", NULL);
}

/* ---- DMAR ---- */

static void dmar_init(struct table *t, uint8_t haw_minus_one, uint8_t flags)
{
    t_init(t, "DMAR", 48);
    put8(t, 36, haw_minus_one);
    put8(t, 37, flags);
}

struct scope_spec {
    uint8_t type, enum_id, bus, path_len;
    uint8_t path[8][2];
};

static size_t scope_bytes(uint8_t *out, const struct scope_spec *s)
{
    size_t len = 6 + 2u * s->path_len;
    memset(out, 0, len);
    out[0] = s->type;
    out[1] = (uint8_t)len;
    out[4] = s->enum_id;
    out[5] = s->bus;
    for (unsigned k = 0; k < s->path_len; k++) {
        out[6 + 2 * k] = s->path[k][0];
        out[7 + 2 * k] = s->path[k][1];
    }
    return len;
}

static void dmar_drhd(struct table *t, uint8_t flags, uint16_t segment, uint64_t base, const struct scope_spec *scopes,
                      size_t n)
{
    uint8_t s[512];
    size_t len = 16;
    memset(s, 0, 16);
    s[4] = flags;
    memcpy(s + 6, &segment, 2);
    memcpy(s + 8, &base, 8);
    for (size_t i = 0; i < n; i++)
        len += scope_bytes(s + len, &scopes[i]);
    uint16_t type = 0, l16 = (uint16_t)len;
    memcpy(s, &type, 2);
    memcpy(s + 2, &l16, 2);
    t_append(t, s, len);
}

static void dmar_rmrr(struct table *t, uint16_t segment, uint64_t base, uint64_t limit, const struct scope_spec *scopes,
                      size_t n)
{
    uint8_t s[512];
    size_t len = 24;
    memset(s, 0, 24);
    memcpy(s + 6, &segment, 2);
    memcpy(s + 8, &base, 8);
    memcpy(s + 16, &limit, 8);
    for (size_t i = 0; i < n; i++)
        len += scope_bytes(s + len, &scopes[i]);
    uint16_t type = 1, l16 = (uint16_t)len;
    memcpy(s, &type, 2);
    memcpy(s + 2, &l16, 2);
    t_append(t, s, len);
}

/* What QEMU 7.2 builds for q35 with -device intel-iommu and edu (128 bytes):
 * one unit without INCLUDE_PCI_ALL, naming the I/O APIC and each device on
 * bus 0 (host bridge, VGA, NIC, edu, LPC, SATA, SMBus). */
static void build_qemu_dmar(struct table *t)
{
    static const struct scope_spec scopes[] = {
        { ACPI_DMAR_SCOPE_IOAPIC, 0, 0xff, 1, { { 0, 0 } } }, { ACPI_DMAR_SCOPE_ENDPOINT, 0, 0, 1, { { 0, 0 } } },
        { ACPI_DMAR_SCOPE_ENDPOINT, 0, 0, 1, { { 1, 0 } } },  { ACPI_DMAR_SCOPE_ENDPOINT, 0, 0, 1, { { 2, 0 } } },
        { ACPI_DMAR_SCOPE_ENDPOINT, 0, 0, 1, { { 3, 0 } } },  { ACPI_DMAR_SCOPE_ENDPOINT, 0, 0, 1, { { 31, 0 } } },
        { ACPI_DMAR_SCOPE_ENDPOINT, 0, 0, 1, { { 31, 2 } } }, { ACPI_DMAR_SCOPE_ENDPOINT, 0, 0, 1, { { 31, 3 } } },
    };
    dmar_init(t, 38, ACPI_DMAR_INTR_REMAP);
    dmar_drhd(t, 0, 0, 0xfed90000, scopes, sizeof scopes / sizeof scopes[0]);
    t_finish(t);
}

/* A laptop's: the graphics unit, a catch-all unit, RMRRs for USB and
 * graphics, an ATSR, and a device behind a bridge. */
static void build_laptop_dmar(struct table *t)
{
    static const struct scope_spec gfx = { ACPI_DMAR_SCOPE_ENDPOINT, 0, 0, 1, { { 2, 0 } } };
    static const struct scope_spec catchall[] = {
        { ACPI_DMAR_SCOPE_IOAPIC, 2, 0xf0, 1, { { 31, 0 } } },
        { ACPI_DMAR_SCOPE_HPET, 0, 0, 1, { { 31, 0 } } },
    };
    static const struct scope_spec usb[] = {
        { ACPI_DMAR_SCOPE_ENDPOINT, 0, 0, 1, { { 20, 0 } } },
        { ACPI_DMAR_SCOPE_ENDPOINT, 0, 0, 2, { { 28, 4 }, { 0, 0 } } },
    };
    dmar_init(t, 38, ACPI_DMAR_INTR_REMAP | ACPI_DMAR_X2APIC_OPT_OUT);
    dmar_drhd(t, 0, 0, 0xfed90000, &gfx, 1);
    dmar_drhd(t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed91000, catchall, 2);
    dmar_rmrr(t, 0, 0x3e2e0000, 0x3e2fffff, usb, 2);
    dmar_rmrr(t, 0, 0x3f800000, 0x4f7fffff, &gfx, 1);
    uint8_t atsr[8] = { 2, 0, 8, 0, 0, 0, 0, 0 };
    t_append(t, atsr, sizeof atsr);
    t_finish(t);
}

static int parse_dmar(const struct table *t, size_t len, struct acpi_dmar *out, struct acpi_error *e)
{
    return acpi_dmar_parse(exact_copy(t->b, len), len, out, e);
}

static void test_dmar_good(void **state)
{
    (void)state;
    static struct table t;
    static struct acpi_dmar d;
    struct acpi_error e;

    build_qemu_dmar(&t);
    assert_int_equal(t.len, 128);
    assert_int_equal(parse_dmar(&t, t.len, &d, &e), 0);
    assert_int_equal(d.host_address_width, 39);
    assert_int_equal(d.flags, ACPI_DMAR_INTR_REMAP);
    assert_int_equal(d.nunits, 1);
    assert_int_equal(d.units[0].register_base, 0xfed90000);
    assert_int_equal(d.units[0].register_pages, 1);
    assert_int_equal(d.units[0].segment, 0);
    assert_int_equal(d.units[0].flags, 0);
    assert_int_equal(d.units[0].nscopes, 8);
    assert_int_equal(d.scopes[0].type, ACPI_DMAR_SCOPE_IOAPIC);
    assert_int_equal(d.scopes[0].start_bus, 0xff);
    assert_int_equal(d.scopes[4].type, ACPI_DMAR_SCOPE_ENDPOINT);
    assert_int_equal(d.scopes[4].path[0].device, 3); /* edu */
    assert_int_equal(d.scopes[7].path[0].function, 3);
    assert_int_equal(d.nrmrrs, 0);

    build_laptop_dmar(&t);
    assert_int_equal(parse_dmar(&t, t.len, &d, &e), 0);
    assert_int_equal(d.nunits, 2);
    assert_int_equal(d.units[0].flags, 0);
    assert_int_equal(d.units[0].nscopes, 1);
    assert_int_equal(d.scopes[d.units[0].first_scope].path[0].device, 2);
    assert_int_equal(d.units[1].nscopes, 2);
    assert_int_equal(d.scopes[d.units[1].first_scope + 1].type, ACPI_DMAR_SCOPE_HPET);
    assert_int_equal(d.nrmrrs, 2);
    assert_int_equal(d.rmrrs[0].base, 0x3e2e0000);
    assert_int_equal(d.rmrrs[0].end, 0x3e300000);
    assert_int_equal(d.rmrrs[0].nscopes, 2);
    const struct acpi_dmar_scope *behind = &d.scopes[d.rmrrs[0].first_scope + 1];
    assert_int_equal(behind->path_len, 2);
    assert_int_equal(behind->path[0].device, 28);
    assert_int_equal(behind->path[0].function, 4);
    assert_int_equal(d.rmrrs[1].end, 0x4f800000);
    assert_int_equal(d.other_structures, 1);
    assert_int_equal(d.nscopes, 6);
}

static void expect_dmar_refused(struct table *t, const char *a, const char *b)
{
    static struct acpi_dmar d;
    struct acpi_error e;
    t_finish(t);
    assert_int_equal(parse_dmar(t, t->len, &d, &e), -EINVAL);
    expect_reason(&e, a, b);
    assert_int_equal(d.nunits, 0);
}

static void test_dmar_malformed(void **state)
{
    (void)state;
    static struct table t;
    static const struct scope_spec ep = { ACPI_DMAR_SCOPE_ENDPOINT, 0, 0, 1, { { 3, 0 } } };

    dmar_init(&t, 38, 0);
    expect_dmar_refused(&t, "no remapping unit", NULL);

    dmar_init(&t, 20, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    expect_dmar_refused(&t, "host address width of 21 bits", NULL);

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0, NULL, 0);
    expect_dmar_refused(&t, "structure 0 (DRHD)", "register base 0 is 0 or not page aligned");

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90800, NULL, 0);
    expect_dmar_refused(&t, "0xfed90800", "not page aligned");

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, 0, 0, 0xfed90000, &ep, 1);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    expect_dmar_refused(&t, "structure 1 (DRHD)", "listed twice");

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed91000, NULL, 0);
    expect_dmar_refused(&t, "a second INCLUDE_PCI_ALL unit for segment 0", NULL);

    /* ...but one per segment is fine. */
    static struct acpi_dmar d;
    struct acpi_error e;
    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 1, 0xfed91000, NULL, 0);
    t_finish(&t);
    assert_int_equal(parse_dmar(&t, t.len, &d, &e), 0);
    assert_int_equal(d.nunits, 2);

    dmar_init(&t, 38, 0);
    for (unsigned i = 0; i <= ACPI_DMAR_MAX_UNITS; i++)
        dmar_drhd(&t, 0, 0, 0xfed90000 + i * 0x1000ull, &ep, 1);
    expect_dmar_refused(&t, "more than 8 remapping units", NULL);

    /* A register set size field of 2^9 pages. */
    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    put8(&t, 48 + 5, 9);
    expect_dmar_refused(&t, "register set of 2^9 pages", NULL);

    /* Structure lengths: below the header, below the fixed part, past the end. */
    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    uint8_t s3[4] = { 7, 0, 3, 0 };
    t_append(&t, s3, sizeof s3);
    expect_dmar_refused(&t, "structure 1 (unknown)", "length 3 is less than its own header");

    dmar_init(&t, 38, 0);
    uint8_t short_drhd[12] = { 0, 0, 12, 0, 1, 0, 0, 0, 0, 0, 0xd9, 0xfe };
    t_append(&t, short_drhd, sizeof short_drhd);
    expect_dmar_refused(&t, "(DRHD)", "length 12 is less than 16");

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    put16(&t, 48 + 2, 40);
    expect_dmar_refused(&t, "length 40 runs past the table's end", "16 bytes left");

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    uint8_t stray[3] = { 0 };
    t_append(&t, stray, sizeof stray);
    expect_dmar_refused(&t, "3 stray bytes at offset 64", NULL);

    /* Device scopes: truncated, odd, past the structure, reserved type, bad path. */
    static const struct scope_spec two = { ACPI_DMAR_SCOPE_ENDPOINT, 0, 0, 2, { { 1, 0 }, { 0, 0 } } };
    dmar_init(&t, 38, 0);
    dmar_drhd(&t, 0, 0, 0xfed90000, &two, 1);
    put16(&t, 48 + 2, 16 + 5); /* the structure ends inside the scope's fixed part */
    t.len = 48 + 21;
    expect_dmar_refused(&t, "5 stray bytes after its device scopes", NULL);

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, 0, 0, 0xfed90000, &two, 1);
    put8(&t, 48 + 16 + 1, 9);
    expect_dmar_refused(&t, "device scope of length 9", NULL);

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, 0, 0, 0xfed90000, &two, 1);
    put8(&t, 48 + 16 + 1, 6);
    expect_dmar_refused(&t, "device scope of length 6", "at least one");

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, 0, 0, 0xfed90000, &two, 1);
    put8(&t, 48 + 16 + 1, 12);
    expect_dmar_refused(&t, "device scope of length 12 runs past the structure", "10 left");

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, 0, 0, 0xfed90000, &two, 1);
    put8(&t, 48 + 16, 6);
    expect_dmar_refused(&t, "device scope type 6 is reserved", NULL);

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, 0, 0, 0xfed90000, &two, 1);
    put8(&t, 48 + 16 + 6, 32);
    expect_dmar_refused(&t, "path entry 20.0", NULL);

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, 0, 0, 0xfed90000, &two, 1);
    put8(&t, 48 + 16 + 9, 8);
    expect_dmar_refused(&t, "path entry 00.8", NULL);

    static const struct scope_spec deep = {
        ACPI_DMAR_SCOPE_ENDPOINT,
        0,
        0,
        8,
        { { 1, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 } }
    };
    dmar_init(&t, 38, 0);
    dmar_drhd(&t, 0, 0, 0xfed90000, &deep, 1);
    uint8_t extra[2] = { 0, 0 };
    t_append(&t, extra, 2); /* a ninth path entry */
    put16(&t, 48 + 2, 16 + 24);
    put8(&t, 48 + 16 + 1, 24);
    expect_dmar_refused(&t, "a path of 9", "more than 8");

    dmar_init(&t, 38, 0);
    for (unsigned i = 0; i < 4; i++) {
        struct scope_spec many[17];
        for (unsigned k = 0; k < 17; k++)
            many[k] = (struct scope_spec){ ACPI_DMAR_SCOPE_ENDPOINT, 0, (uint8_t)i, 1, { { (uint8_t)k, 0 } } };
        dmar_drhd(&t, 0, 0, 0xfed90000 + i * 0x1000ull, many, 17);
    }
    expect_dmar_refused(&t, "more than 64 device scopes", NULL);

    /* RMRRs: unaligned, inverted, wrapping, bridges, no device, too many. */
    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    dmar_rmrr(&t, 0, 0x3e2e0800, 0x3e2fffff, &ep, 1);
    expect_dmar_refused(&t, "structure 1 (RMRR)", "not whole pages in order");

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    dmar_rmrr(&t, 0, 0x3e2e0000, 0x3e2ffffe, &ep, 1);
    expect_dmar_refused(&t, "(RMRR)", "not whole pages in order");

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    dmar_rmrr(&t, 0, 0x3e300000, 0x3e2fffff, &ep, 1);
    expect_dmar_refused(&t, "(RMRR)", "not whole pages in order");

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    dmar_rmrr(&t, 0, 0xfffffffffffff000ull, UINT64_MAX, &ep, 1);
    expect_dmar_refused(&t, "(RMRR)", "not whole pages in order");

    static const struct scope_spec bridge = { ACPI_DMAR_SCOPE_BRIDGE, 0, 0, 1, { { 28, 0 } } };
    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    dmar_rmrr(&t, 0, 0x3e2e0000, 0x3e2fffff, &bridge, 1);
    expect_dmar_refused(&t, "device scope type 2", "endpoints only");

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    dmar_rmrr(&t, 0, 0x3e2e0000, 0x3e2fffff, NULL, 0);
    expect_dmar_refused(&t, "(RMRR)", "names no device");

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    uint8_t short_rmrr[20] = { 1, 0, 20, 0 };
    t_append(&t, short_rmrr, sizeof short_rmrr);
    expect_dmar_refused(&t, "(RMRR)", "length 20 is less than 24");

    dmar_init(&t, 38, 0);
    dmar_drhd(&t, ACPI_DMAR_INCLUDE_PCI_ALL, 0, 0xfed90000, NULL, 0);
    for (unsigned i = 0; i <= ACPI_DMAR_MAX_RMRRS; i++)
        dmar_rmrr(&t, 0, 0x1000000ull * (i + 1), 0x1000000ull * (i + 1) + 0xfff, &ep, 1);
    expect_dmar_refused(&t, "more than 16 reserved memory regions", NULL);
}

/* ---- every truncation ---- */

/*
 * Each prefix of a good table, (a) with the header's length left alone (the
 * length check refuses it) and (b) made self-consistent: length field and
 * checksum fixed, so that the entry walk itself meets the cut. Either the
 * prefix parses (it ends on an entry boundary) or it is refused; no read
 * leaves the prefix's exact-size buffer.
 */
static void test_every_truncation(void **state)
{
    (void)state;
    static struct table full, cut;
    static struct acpi_madt m;
    static struct acpi_dmar d;
    struct acpi_error e;

    for (int which = 0; which < 3; which++) {
        if (which == 0)
            build_qemu_madt(&full);
        else if (which == 1)
            build_qemu_dmar(&full);
        else
            build_laptop_dmar(&full);
        bool madt = which == 0;
        unsigned parsed = 0;
        for (size_t n = 0; n < full.len; n++) {
            int r = madt ? parse_madt(&full, n, &m, &e) : parse_dmar(&full, n, &d, &e);
            assert_int_equal(r, -EINVAL);
            cut = full;
            if (n >= ACPI_HEADER_SIZE) {
                put32(&cut, 4, (uint32_t)n);
                t_fix_checksum(&cut, n);
            }
            r = madt ? parse_madt(&cut, n, &m, &e) : parse_dmar(&cut, n, &d, &e);
            assert_true(r == 0 || r == -EINVAL);
            if (r == 0)
                parsed++;
            else
                assert_true(e.msg[0] != '\0');
        }
        /* Some prefixes end between entries and parse (with fewer entries). */
        if (which != 1)
            assert_true(parsed > 0);
    }
}

/* ---- random corruption ---- */

static void check_madt_invariants(const struct acpi_madt *m)
{
    assert_true(m->ncpus <= ACPI_MADT_MAX_CPUS && m->nioapics <= ACPI_MADT_MAX_IOAPICS);
    assert_true(m->noverrides <= ACPI_MADT_MAX_OVERRIDES && m->nnmis <= ACPI_MADT_MAX_NMIS);
    assert_true(m->enabled_cpus >= 1 || m->cpus_ignored > 0);
    unsigned enabled = 0;
    for (unsigned i = 0; i < m->ncpus; i++) {
        enabled += m->cpus[i].enabled;
        assert_true(m->cpus[i].enabled != m->cpus[i].online_capable);
        for (unsigned k = 0; k < i; k++)
            assert_false(m->cpus[i].apic_id == m->cpus[k].apic_id && m->cpus[i].enabled && m->cpus[k].enabled);
    }
    assert_int_equal(enabled, m->enabled_cpus);
    for (unsigned i = 0; i < m->nioapics; i++)
        assert_true(m->ioapics[i].address != 0);
    for (unsigned i = 0; i < m->noverrides; i++)
        assert_true(m->overrides[i].source_irq < 16);
    for (unsigned i = 0; i < m->nnmis; i++)
        assert_true(m->nmis[i].lint <= 1);
}

static void check_scopes(const struct acpi_dmar *d, unsigned first, unsigned n)
{
    assert_true(first + n <= d->nscopes);
    for (unsigned i = first; i < first + n; i++) {
        const struct acpi_dmar_scope *s = &d->scopes[i];
        assert_true(s->type >= 1 && s->type <= 5);
        assert_true(s->path_len >= 1 && s->path_len <= ACPI_DMAR_MAX_PATH);
        for (unsigned k = 0; k < s->path_len; k++)
            assert_true(s->path[k].device < 32 && s->path[k].function < 8);
    }
}

static void check_dmar_invariants(const struct acpi_dmar *d)
{
    assert_true(d->nunits >= 1 && d->nunits <= ACPI_DMAR_MAX_UNITS);
    assert_true(d->nrmrrs <= ACPI_DMAR_MAX_RMRRS && d->nscopes <= ACPI_DMAR_MAX_SCOPES);
    assert_true(d->host_address_width >= 32 && d->host_address_width <= 64);
    unsigned scopes = 0;
    for (unsigned i = 0; i < d->nunits; i++) {
        const struct acpi_dmar_unit *u = &d->units[i];
        assert_true(u->register_base && !(u->register_base & 0xfff));
        assert_true(u->register_pages >= 1 && u->register_pages <= 256);
        check_scopes(d, u->first_scope, u->nscopes);
        scopes += u->nscopes;
    }
    for (unsigned i = 0; i < d->nrmrrs; i++) {
        const struct acpi_dmar_rmrr *r = &d->rmrrs[i];
        assert_true(r->base < r->end && !(r->base & 0xfff) && !(r->end & 0xfff));
        assert_true(r->nscopes >= 1);
        check_scopes(d, r->first_scope, r->nscopes);
        for (unsigned k = r->first_scope; k < r->first_scope + r->nscopes; k++)
            assert_int_equal(d->scopes[k].type, ACPI_DMAR_SCOPE_ENDPOINT);
        scopes += r->nscopes;
    }
    assert_int_equal(scopes, d->nscopes);
}

/* Changes a few bytes; entry and structure lengths are favoured targets. */
static void corrupt(struct table *t, size_t fixed)
{
    unsigned changes = 1 + (unsigned)(test_rnd() % 4);
    for (unsigned c = 0; c < changes; c++) {
        size_t at = fixed + test_rnd() % (t->len - fixed);
        switch (test_rnd() % 4) {
        case 0: t->b[at] = (uint8_t)test_rnd(); break;
        case 1: t->b[at] ^= (uint8_t)(1u << (test_rnd() % 8)); break;
        case 2: t->b[at] = (uint8_t)(t->b[at] + 1 - 2 * (test_rnd() % 2)); break;
        default: t->b[at] = (uint8_t)(test_rnd() % 3 ? 0 : 0xff); break;
        }
    }
    if (test_rnd() % 8 == 0)
        t->len = fixed + test_rnd() % (t->len - fixed + 1);
}

static void test_random_corruption(void **state)
{
    (void)state;
    static struct table base, t;
    static struct acpi_madt m;
    static struct acpi_dmar d;
    struct acpi_error e;
    unsigned accepted[2] = { 0 }, refused[2] = { 0 };
    test_rng_seed(0x243f6a8885a308d3ull);
    for (int iter = 0; iter < 60000; iter++) {
        bool madt = iter % 2 == 0;
        if (madt)
            build_qemu_madt(&base);
        else if (iter % 4 == 1)
            build_laptop_dmar(&base);
        else
            build_qemu_dmar(&base);
        t = base;
        corrupt(&t, madt ? 36 : 36);
        /* Mostly keep the header consistent, so the walk meets the damage. */
        bool consistent = test_rnd() % 8 != 0;
        if (consistent) {
            put32(&t, 4, (uint32_t)t.len);
            t_fix_checksum(&t, t.len);
        }
        int r = madt ? parse_madt(&t, t.len, &m, &e) : parse_dmar(&t, t.len, &d, &e);
        if (r != 0 && r != -EINVAL)
            fail_msg("iteration %d: returned %d", iter, r);
        if (r == 0) {
            accepted[!madt]++;
            if (madt)
                check_madt_invariants(&m);
            else
                check_dmar_invariants(&d);
        } else {
            refused[!madt]++;
            assert_true(e.msg[0] != '\0');
            assert_int_equal(madt ? m.ncpus : d.nunits, 0);
        }
        /* An inconsistent header is always refused. */
        if (!consistent && (t.len != base.len || memcmp(t.b, base.b, t.len) != 0) && sum_of(t.b, t.len) != 0)
            assert_int_equal(r, -EINVAL);
    }
    print_message("random corruption: MADT %u accepted, %u refused; DMAR %u accepted, %u refused\n", accepted[0],
                  refused[0], accepted[1], refused[1]);
    /* Both outcomes happen, or the run tests less than it seems to. */
    assert_true(accepted[0] > 1000 && refused[0] > 1000 && accepted[1] > 1000 && refused[1] > 1000);
}

/* Corrupted root tables and RSDPs through the fake memory: never a read
 * outside a region, never a table returned that fails its own check. */
static void test_random_root(void **state)
{
    (void)state;
    static struct table xsdt, dmar, apic;
    static struct acpi_root root;
    static uint8_t buf[4096];
    struct acpi_error e;
    size_t len;
    test_rng_seed(0x13198a2e03707344ull);
    build_qemu_dmar(&dmar);
    build_qemu_madt(&apic);
    for (int iter = 0; iter < 20000; iter++) {
        uint64_t entries[4] = { 0x10000, 0x20000, test_rnd() % 2 ? 0x30000 : test_rnd(), 0x20000 };
        build_root(&xsdt, iter % 2 ? "XSDT" : "RSDT", entries, 4);
        corrupt(&xsdt, iter % 3 ? 36 : 0);
        if (test_rnd() % 4) {
            put32(&xsdt, 4, (uint32_t)xsdt.len);
            t_fix_checksum(&xsdt, xsdt.len);
        }
        uint8_t r[36];
        make_rsdp(r, iter % 2 ? 2 : 0, 0x8000, 0x8000);
        if (test_rnd() % 4 == 0) {
            size_t at = test_rnd() % 36;
            r[at] ^= (uint8_t)(1u << (test_rnd() % 8));
        }
        mem_reset();
        mem_add(0x8000, xsdt.b, xsdt.len);
        mem_add(0x10000, dmar.b, dmar.len);
        mem_add(0x20000, apic.b, apic.len);
        struct acpi_rsdp rsdp;
        size_t rlen = iter % 2 ? 36 : 20;
        if (acpi_rsdp_parse(exact_copy(r, rlen), rlen, &rsdp, &e) != 0)
            continue;
        if (acpi_root_open(&root, &rsdp, mem_read, NULL, NULL, NULL, &e) != 0)
            continue;
        assert_true(root.count <= ACPI_ROOT_MAX_ENTRIES);
        static const char *const sigs[] = { "DMAR", "APIC", "FACP" };
        const char *sig = sigs[test_rnd() % 3];
        int f = acpi_find_table(&root, sig, buf, sizeof buf, &len, &e);
        assert_true(f == 0 || f == -ENOENT || f == -EINVAL || f == -E2BIG);
        if (f == 0)
            assert_int_equal(acpi_table_check(buf, len, sig, ACPI_HEADER_SIZE, &e), 0);
    }
    mem_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rsdp),
        cmocka_unit_test(test_rsdp_scan),
        cmocka_unit_test(test_root_and_find),
        cmocka_unit_test(test_madt_qemu),
        cmocka_unit_test(test_madt_malformed),
        cmocka_unit_test(test_dmar_good),
        cmocka_unit_test(test_dmar_malformed),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_random_corruption),
        cmocka_unit_test(test_random_root),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    free(exact);
    return failed;
}
