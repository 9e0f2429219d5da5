/*
 * Common layer: ACPI table validation and parsing (see common/acpi.h). Used
 * by the kernel at boot, through a callback that copies physical memory, and
 * by the host tests on fake and corrupted tables.
 *
 * Every multi-byte field is read byte by byte at an offset already proven
 * to lie inside the buffer, so neither alignment nor a lying length field
 * can make the parser read outside what it was given. Tables are parsed from
 * the caller's copy, the same bytes the checksum covered. A refusal returns
 * at once with a reason; the partial result is cleared, never half-used.
 */
#include <stdarg.h>
#include <abi/errno.h>
#include <common/acpi.h>
#include <common/fmt.h>
#include <common/string.h>

#define RSDP_SIGNATURE     "RSD PTR "
#define RSDP_SIGNATURE_LEN 8
#define MADT_FIXED         44 /* header, local APIC address, flags */
#define DMAR_FIXED         48 /* header, host address width, flags, 10 reserved */
#define DMAR_DRHD_FIXED    16
#define DMAR_RMRR_FIXED    24
#define DMAR_SCOPE_FIXED   6
#define ROOT_CHUNK         256 /* a multiple of both entry sizes */
#define SCAN_CHUNK         512

static int refuse(struct acpi_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(struct acpi_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        fmt_vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* A little-endian field (ACPI's byte order) of `size` bytes at p + off. */
static uint64_t field(const uint8_t *p, size_t off, size_t size)
{
    uint64_t v = 0;
    while (size--)
        v = v << 8 | p[off + size];
    return v;
}

static uint16_t get16(const uint8_t *p, size_t off) { return (uint16_t)field(p, off, 2); }
static uint32_t get32(const uint8_t *p, size_t off) { return (uint32_t)field(p, off, 4); }
static uint64_t get64(const uint8_t *p, size_t off) { return field(p, off, 8); }

static uint8_t checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + p[i]);
    return sum;
}

/* How a table's variable part is laid out: entries (MADT) or structures
 * (DMAR), each opening with a type and a length of `field` bytes each. */
struct entry_layout {
    const char *table;   /* "MADT" */
    const char *noun;    /* "entry" */
    const char *article; /* "an" */
    size_t field;
    const char *(*type_name)(unsigned type);
};

/* The header of entry i at `off`, checked against the table's `len`
 * bytes: its type and its length, which lies inside the table. */
static int entry_at(const struct entry_layout *l, const uint8_t *p, size_t len, size_t off, unsigned i, unsigned *type,
                    size_t *elen, struct acpi_error *err)
{
    if (len - off < 2 * l->field)
        return refuse(err, -EINVAL, "%s: %zu stray byte%s at offset %zu, too few for %s %s", l->table, len - off,
                      len - off == 1 ? "" : "s", off, l->article, l->noun);
    *type = (unsigned)field(p, off, l->field);
    *elen = (size_t)field(p, off + l->field, l->field);
    if (*elen < 2 * l->field)
        return refuse(err, -EINVAL, "%s %s %u (%s) at offset %zu: length %zu is less than its own header", l->table,
                      l->noun, i, l->type_name(*type), off, *elen);
    if (*elen > len - off)
        return refuse(err, -EINVAL,
                      "%s %s %u (%s) at offset %zu: length %zu runs past the table's end (%zu bytes left)", l->table,
                      l->noun, i, l->type_name(*type), off, *elen, len - off);
    return 0;
}

/* n bytes of firmware text, printable, for messages. */
static void printable(char *out, const uint8_t *in, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] >= 0x20 && in[i] < 0x7f ? (char)in[i] : '?';
    out[n] = '\0';
}

/* A table's parser: fills the zeroed *into as it reads the table at p. */
typedef int (*table_parser)(const uint8_t *p, size_t len, void *into, struct acpi_error *err);

/* Runs a parser all or nothing: *out starts zeroed and is zeroed again if
 * the table is refused, so a caller never acts on half a table. */
static int parse_whole(table_parser parse, const void *table, size_t len, void *out, size_t size,
                       struct acpi_error *err)
{
    memset(out, 0, size);
    int r = parse(table, len, out, err);
    if (r)
        memset(out, 0, size);
    return r;
}

/* ---- RSDP ---- */

int acpi_rsdp_parse(const void *bytes, size_t len, struct acpi_rsdp *out, struct acpi_error *err)
{
    const uint8_t *p = bytes;
    memset(out, 0, sizeof *out);
    if (p == NULL || len < ACPI_RSDP_V1_SIZE)
        return refuse(err, -EINVAL, "RSDP: %zu bytes, fewer than the %d of ACPI 1.0", p ? len : 0, ACPI_RSDP_V1_SIZE);
    if (memcmp(p, RSDP_SIGNATURE, RSDP_SIGNATURE_LEN) != 0)
        return refuse(err, -EINVAL, "RSDP: no \"RSD PTR \" signature");
    uint8_t sum = checksum(p, ACPI_RSDP_V1_SIZE);
    if (sum != 0)
        return refuse(err, -EINVAL, "RSDP: the first %d bytes sum to %#x, not 0", ACPI_RSDP_V1_SIZE, sum);
    uint8_t revision = p[15];
    uint32_t rsdt = get32(p, 16);
    uint64_t xsdt = 0;
    if (revision >= 2) {
        if (len < ACPI_RSDP_V2_SIZE)
            return refuse(err, -EINVAL, "RSDP: revision %u needs %d bytes, %zu given", revision, ACPI_RSDP_V2_SIZE,
                          len);
        uint32_t length = get32(p, 20);
        if (length < ACPI_RSDP_V2_SIZE || length > len)
            return refuse(err, -EINVAL, "RSDP: length field %u is outside %d..%zu", length, ACPI_RSDP_V2_SIZE, len);
        sum = checksum(p, length);
        if (sum != 0)
            return refuse(err, -EINVAL, "RSDP: extended checksum over %u bytes is %#x, not 0", length, sum);
        xsdt = get64(p, 24);
    }
    if (rsdt == 0 && xsdt == 0)
        return refuse(err, -EINVAL, "RSDP: neither an RSDT nor an XSDT address");
    out->revision = revision;
    printable(out->oem_id, p + 9, 6);
    out->rsdt = rsdt;
    out->xsdt = xsdt;
    return 0;
}

/* Valid RSDPs in [start, end) at 16-byte boundaries; bad ones are counted. */
static int scan_area(acpi_read_fn read, void *ctx, uint64_t start, uint64_t end, struct acpi_rsdp *out,
                     uint64_t *found_at, unsigned *bad)
{
    uint8_t chunk[SCAN_CHUNK];
    for (uint64_t base = start; base < end; base += SCAN_CHUNK) {
        size_t n = end - base < SCAN_CHUNK ? (size_t)(end - base) : SCAN_CHUNK;
        if (!read(ctx, base, chunk, n))
            continue;
        for (size_t off = 0; off + RSDP_SIGNATURE_LEN <= n; off += 16) {
            if (memcmp(chunk + off, RSDP_SIGNATURE, RSDP_SIGNATURE_LEN) != 0)
                continue;
            /* Read afresh: a version 2 RSDP may run into the next chunk. */
            uint8_t candidate[ACPI_RSDP_V2_SIZE];
            uint64_t at = base + off;
            size_t clen = end - at < sizeof candidate ? (size_t)(end - at) : sizeof candidate;
            if (read(ctx, at, candidate, clen) && acpi_rsdp_parse(candidate, clen, out, NULL) == 0) {
                *found_at = at;
                return 0;
            }
            (*bad)++;
        }
    }
    return -ENOENT;
}

int acpi_rsdp_scan(acpi_read_fn read, void *ctx, struct acpi_rsdp *out, uint64_t *found_at, struct acpi_error *err)
{
    unsigned bad = 0;
    uint16_t segment = 0;
    uint64_t ebda = 0;
    memset(out, 0, sizeof *out);
    /* Only an EBDA between the BIOS data area and video memory is believed. */
    if (read(ctx, ACPI_EBDA_POINTER, &segment, sizeof segment))
        ebda = (uint64_t)segment << 4;
    if (ebda > 0x400 && ebda < 0xa0000) {
        uint64_t end = ebda + ACPI_EBDA_SCAN_BYTES < 0xa0000 ? ebda + ACPI_EBDA_SCAN_BYTES : 0xa0000;
        if (scan_area(read, ctx, ebda, end, out, found_at, &bad) == 0)
            return 0;
    }
    if (scan_area(read, ctx, ACPI_BIOS_AREA_START, ACPI_BIOS_AREA_END, out, found_at, &bad) == 0)
        return 0;
    memset(out, 0, sizeof *out);
    return refuse(err, -ENOENT, "no valid RSDP in the EBDA (at %#llx) or %#x-%#x; %u with a bad checksum",
                  (unsigned long long)ebda, ACPI_BIOS_AREA_START, ACPI_BIOS_AREA_END - 1, bad);
}

/* ---- RSDT / XSDT ---- */

int acpi_table_check(const void *table, size_t len, const char *sig, size_t min_len, struct acpi_error *err)
{
    const uint8_t *p = table;
    if (p == NULL || len < ACPI_HEADER_SIZE)
        return refuse(err, -EINVAL, "%.4s: %zu bytes, fewer than the %d-byte header", sig, p ? len : 0,
                      ACPI_HEADER_SIZE);
    if (memcmp(p, sig, 4) != 0) {
        char got[5];
        printable(got, p, 4);
        return refuse(err, -EINVAL, "%.4s: the signature is '%s'", sig, got);
    }
    uint32_t length = get32(p, 4);
    if (length != len)
        return refuse(err, -EINVAL, "%.4s: length field %u, but the table read is %zu bytes", sig, length, len);
    if (len < min_len)
        return refuse(err, -EINVAL, "%.4s: %zu bytes, fewer than the %zu of its fixed fields", sig, len, min_len);
    uint8_t sum = checksum(p, len);
    if (sum != 0)
        return refuse(err, -EINVAL, "%.4s: %zu bytes sum to %#x, not 0 (bad checksum)", sig, len, sum);
    return 0;
}

/*
 * Reads the root table at addr in chunks (the caller has no buffer for a
 * whole one): the checksum and the entries come from the same single read
 * of each byte. Commits to *root only when everything checked out.
 */
static int read_root(struct acpi_root *root, uint64_t addr, bool xsdt, struct acpi_error *err)
{
    const char *sig = xsdt ? "XSDT" : "RSDT";
    size_t entry_size = xsdt ? 8 : 4;
    uint8_t chunk[ROOT_CHUNK];
    if (!root->read(root->ctx, addr, chunk, ACPI_HEADER_SIZE))
        return refuse(err, -ERANGE, "%s at %#llx: cannot be read", sig, (unsigned long long)addr);
    if (memcmp(chunk, sig, 4) != 0) {
        char got[5];
        printable(got, chunk, 4);
        return refuse(err, -EINVAL, "%s at %#llx: the signature is '%s'", sig, (unsigned long long)addr, got);
    }
    uint32_t length = get32(chunk, 4);
    if (length < ACPI_HEADER_SIZE || (length - ACPI_HEADER_SIZE) % entry_size != 0)
        return refuse(err, -EINVAL, "%s at %#llx: length %u is not %d plus a whole number of %zu-byte entries", sig,
                      (unsigned long long)addr, length, ACPI_HEADER_SIZE, entry_size);
    uint32_t count = (uint32_t)((length - ACPI_HEADER_SIZE) / entry_size);
    if (count > ACPI_ROOT_MAX_ENTRIES)
        return refuse(err, -EINVAL, "%s at %#llx: %u entries, more than the %d read here", sig,
                      (unsigned long long)addr, count, ACPI_ROOT_MAX_ENTRIES);
    if (addr + length < addr)
        return refuse(err, -EINVAL, "%s at %#llx: %u bytes wrap the address space", sig, (unsigned long long)addr,
                      length);
    /* Entries land in root->entries, but count says 0 until the checksum holds. */
    root->count = 0;
    uint8_t sum = checksum(chunk, ACPI_HEADER_SIZE);
    uint32_t got = 0;
    for (uint32_t off = ACPI_HEADER_SIZE; off < length;) {
        uint32_t n = length - off < ROOT_CHUNK ? length - off : ROOT_CHUNK;
        if (!root->read(root->ctx, addr + off, chunk, n))
            return refuse(err, -ERANGE, "%s at %#llx: bytes %u..%u cannot be read", sig, (unsigned long long)addr, off,
                          off + n - 1);
        sum = (uint8_t)(sum + checksum(chunk, n));
        for (uint32_t i = 0; i < n; i += (uint32_t)entry_size)
            root->entries[got++] = xsdt ? get64(chunk, i) : get32(chunk, i);
        off += n;
    }
    if (sum != 0)
        return refuse(err, -EINVAL, "%s at %#llx: %u bytes sum to %#x, not 0 (bad checksum)", sig,
                      (unsigned long long)addr, length, sum);
    root->address = addr;
    root->xsdt = xsdt;
    root->count = count;
    return 0;
}

static void warnf(const struct acpi_root *root, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(const struct acpi_root *root, const char *fmt, ...)
{
    if (root->warn == NULL)
        return;
    char msg[sizeof(struct acpi_error) + 96];
    va_list ap;
    va_start(ap, fmt);
    fmt_vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    root->warn(root->warn_ctx, msg);
}

int acpi_root_open(struct acpi_root *root, const struct acpi_rsdp *rsdp, acpi_read_fn read, void *ctx,
                   acpi_warn_fn warn, void *warn_ctx, struct acpi_error *err)
{
    memset(root, 0, sizeof *root);
    root->read = read;
    root->ctx = ctx;
    root->warn = warn;
    root->warn_ctx = warn_ctx;
    if (rsdp->xsdt) {
        struct acpi_error xsdt_err;
        int r = read_root(root, rsdp->xsdt, true, &xsdt_err);
        if (r == 0)
            return 0;
        if (!rsdp->rsdt) {
            if (err)
                *err = xsdt_err;
            return r;
        }
        warnf(root, "%s; using the RSDT at %#x instead", xsdt_err.msg, rsdp->rsdt);
    }
    if (!rsdp->rsdt)
        return refuse(err, -EINVAL, "RSDP: neither an RSDT nor an XSDT address");
    return read_root(root, rsdp->rsdt, false, err);
}

int acpi_find_table(const struct acpi_root *root, const char *sig, void *buf, size_t cap, size_t *len,
                    struct acpi_error *err)
{
    struct acpi_error last_bad;
    bool seen_bad = false;
    for (uint32_t i = 0; i < root->count; i++) {
        uint64_t addr = root->entries[i];
        uint8_t header[ACPI_HEADER_SIZE];
        if (addr == 0)
            continue;
        if (!root->read(root->ctx, addr, header, sizeof header)) {
            warnf(root, "%s entry %u at %#llx cannot be read; skipped", root->xsdt ? "XSDT" : "RSDT", i,
                  (unsigned long long)addr);
            continue;
        }
        if (memcmp(header, sig, 4) != 0)
            continue;
        uint32_t length = get32(header, 4);
        if (length > cap)
            return refuse(err, -E2BIG, "%.4s at %#llx: %u bytes, more than the %zu kept for it", sig,
                          (unsigned long long)addr, length, cap);
        if (length < ACPI_HEADER_SIZE) {
            refuse(&last_bad, -EINVAL, "%.4s at %#llx: length %u is less than its header", sig,
                   (unsigned long long)addr, length);
        } else if (!root->read(root->ctx, addr, buf, length)) {
            refuse(&last_bad, -EINVAL, "%.4s at %#llx: its %u bytes cannot be read", sig, (unsigned long long)addr,
                   length);
        } else if (acpi_table_check(buf, length, sig, ACPI_HEADER_SIZE, &last_bad) == 0) {
            *len = length;
            return 0;
        }
        seen_bad = true;
        warnf(root, "%s (table at %#llx); looking for another", last_bad.msg, (unsigned long long)addr);
    }
    if (seen_bad) {
        if (err)
            *err = last_bad;
        return -EINVAL;
    }
    return refuse(err, -ENOENT, "no %.4s table among the %u entries of the %s", sig, root->count,
                  root->xsdt ? "XSDT" : "RSDT");
}

/* ---- MADT ---- */

enum madt_type {
    MADT_LAPIC = 0,
    MADT_IOAPIC = 1,
    MADT_OVERRIDE = 2,
    MADT_NMI_SOURCE = 3,
    MADT_LAPIC_NMI = 4,
    MADT_LAPIC_ADDRESS = 5,
    MADT_X2APIC = 9,
    MADT_X2APIC_NMI = 10,
    MADT_KNOWN_TYPES
};

/* The defined length of each entry type this parser reads; 0: not read. */
static const uint8_t madt_entry_length[MADT_KNOWN_TYPES] = {
    [MADT_LAPIC] = 8,     [MADT_IOAPIC] = 12,        [MADT_OVERRIDE] = 10, [MADT_NMI_SOURCE] = 8,
    [MADT_LAPIC_NMI] = 6, [MADT_LAPIC_ADDRESS] = 12, [MADT_X2APIC] = 16,   [MADT_X2APIC_NMI] = 12,
};

static const char *madt_type_name(unsigned type)
{
    switch (type) {
    case MADT_LAPIC: return "local APIC";
    case MADT_IOAPIC: return "I/O APIC";
    case MADT_OVERRIDE: return "interrupt source override";
    case MADT_NMI_SOURCE: return "NMI source";
    case MADT_LAPIC_NMI: return "local APIC NMI";
    case MADT_LAPIC_ADDRESS: return "local APIC address override";
    case MADT_X2APIC: return "x2APIC";
    case MADT_X2APIC_NMI: return "x2APIC NMI";
    default: return "other";
    }
}

#define MADT_REFUSE(err, i, type, off, fmt, ...)                                                                       \
    refuse(err, -EINVAL, "MADT entry %u (%s) at offset %zu: " fmt, i, madt_type_name(type), off, __VA_ARGS__)

#define LAPIC_ENABLED        0x1u
#define LAPIC_ONLINE_CAPABLE 0x2u

static int madt_add_cpu(struct acpi_madt *out, uint32_t apic_id, uint32_t uid, uint32_t flags, bool x2apic, unsigned i,
                        size_t off, struct acpi_error *err)
{
    bool enabled = flags & LAPIC_ENABLED, capable = flags & LAPIC_ONLINE_CAPABLE;
    unsigned type = x2apic ? MADT_X2APIC : MADT_LAPIC;
    if (!enabled && !capable)
        return 0; /* a processor that can never run */
    for (unsigned c = 0; c < out->ncpus; c++)
        if (out->cpus[c].apic_id == apic_id && (out->cpus[c].enabled || enabled))
            return MADT_REFUSE(err, i, type, off, "APIC id %#x is listed twice", apic_id);
    if (out->ncpus == ACPI_MADT_MAX_CPUS) {
        out->cpus_ignored++;
        return 0;
    }
    out->cpus[out->ncpus++] = (struct acpi_cpu){ apic_id, uid, enabled, !enabled && capable, x2apic };
    if (enabled)
        out->enabled_cpus++;
    return 0;
}

static bool mps_flags_ok(uint16_t flags)
{
    return (flags & ACPI_MPS_POLARITY_MASK) != ACPI_MPS_RESERVED &&
           ((flags & ACPI_MPS_TRIGGER_MASK) >> 2) != ACPI_MPS_RESERVED;
}

static int madt_add_nmi(struct acpi_madt *out, uint32_t uid, uint16_t flags, uint8_t lint, unsigned i, unsigned type,
                        size_t off, struct acpi_error *err)
{
    if (lint > 1)
        return MADT_REFUSE(err, i, type, off, "LINT%u does not exist (0 or 1)", lint);
    if (!mps_flags_ok(flags))
        return MADT_REFUSE(err, i, type, off, "reserved polarity or trigger in flags %#x", flags);
    if (out->nnmis == ACPI_MADT_MAX_NMIS)
        return MADT_REFUSE(err, i, type, off, "more than %d NMI entries", ACPI_MADT_MAX_NMIS);
    out->nmis[out->nnmis++] = (struct acpi_lapic_nmi){ uid, flags, lint };
    return 0;
}

static int madt_add_ioapic(struct acpi_madt *out, const uint8_t *e, unsigned i, size_t off, struct acpi_error *err)
{
    unsigned type = e[0];
    struct acpi_ioapic io = { e[2], get32(e, 4), get32(e, 8) };
    if (io.address == 0)
        return MADT_REFUSE(err, i, type, off, "I/O APIC %u has address 0", io.id);
    for (unsigned k = 0; k < out->nioapics; k++)
        if (out->ioapics[k].id == io.id)
            return MADT_REFUSE(err, i, type, off, "I/O APIC id %u is listed twice", io.id);
    if (out->nioapics == ACPI_MADT_MAX_IOAPICS)
        return MADT_REFUSE(err, i, type, off, "more than %d I/O APICs", ACPI_MADT_MAX_IOAPICS);
    out->ioapics[out->nioapics++] = io;
    return 0;
}

/* An interrupt source override: only ISA IRQs (bus 0) can be overridden,
 * each once. */
static int madt_add_override(struct acpi_madt *out, const uint8_t *e, unsigned i, size_t off, struct acpi_error *err)
{
    unsigned type = e[0];
    struct acpi_override o = { e[3], get32(e, 4), get16(e, 8) };
    if (e[2] != 0)
        return MADT_REFUSE(err, i, type, off, "bus %u (only 0, ISA, exists)", e[2]);
    if (o.source_irq > 15)
        return MADT_REFUSE(err, i, type, off, "source IRQ %u is not an ISA IRQ", o.source_irq);
    if (!mps_flags_ok(o.flags))
        return MADT_REFUSE(err, i, type, off, "reserved polarity or trigger in flags %#x", o.flags);
    for (unsigned k = 0; k < out->noverrides; k++)
        if (out->overrides[k].source_irq == o.source_irq)
            return MADT_REFUSE(err, i, type, off, "IRQ %u is overridden twice", o.source_irq);
    if (out->noverrides == ACPI_MADT_MAX_OVERRIDES)
        return MADT_REFUSE(err, i, type, off, "more than %d overrides", ACPI_MADT_MAX_OVERRIDES);
    out->overrides[out->noverrides++] = o;
    return 0;
}

static int madt_entry(struct acpi_madt *out, const uint8_t *e, unsigned i, size_t off, bool *address_seen,
                      struct acpi_error *err)
{
    unsigned type = e[0];
    switch (type) {
    case MADT_LAPIC: return madt_add_cpu(out, e[3], e[2], get32(e, 4), false, i, off, err);
    case MADT_X2APIC: return madt_add_cpu(out, get32(e, 4), get32(e, 12), get32(e, 8), true, i, off, err);
    case MADT_IOAPIC: return madt_add_ioapic(out, e, i, off, err);
    case MADT_OVERRIDE: return madt_add_override(out, e, i, off, err);
    case MADT_LAPIC_NMI:
        return madt_add_nmi(out, e[2] == 0xff ? 0xffffffffu : e[2], get16(e, 3), e[5], i, type, off, err);
    case MADT_X2APIC_NMI: return madt_add_nmi(out, get32(e, 4), get16(e, 2), e[8], i, type, off, err);
    case MADT_LAPIC_ADDRESS:
        if (*address_seen)
            return MADT_REFUSE(err, i, type, off, "%s", "a second override");
        if (get64(e, 4) == 0)
            return MADT_REFUSE(err, i, type, off, "%s", "address 0");
        *address_seen = true;
        out->lapic_address = get64(e, 4);
        return 0;
    case MADT_NMI_SOURCE:
        if (!mps_flags_ok(get16(e, 2)))
            return MADT_REFUSE(err, i, type, off, "reserved polarity or trigger in flags %#x", get16(e, 2));
        return 0;
    default: out->other_entries++; return 0;
    }
}

static int madt_parse(const uint8_t *p, size_t len, void *into, struct acpi_error *err)
{
    struct acpi_madt *out = into;
    int r = acpi_table_check(p, len, "APIC", MADT_FIXED, err);
    if (r)
        return r;
    out->lapic_address = get32(p, 36);
    out->flags = get32(p, 40);
    bool address_seen = false;
    unsigned i = 0;
    static const struct entry_layout layout = { "MADT", "entry", "an", 1, madt_type_name };
    for (size_t off = MADT_FIXED; off < len; i++) {
        unsigned type;
        size_t elen;
        if ((r = entry_at(&layout, p, len, off, i, &type, &elen, err)) != 0)
            return r;
        if (type < MADT_KNOWN_TYPES && madt_entry_length[type] && elen != madt_entry_length[type])
            return MADT_REFUSE(err, i, type, off, "length %zu, but this entry type has %u", elen,
                               madt_entry_length[type]);
        if ((r = madt_entry(out, p + off, i, off, &address_seen, err)) != 0)
            return r;
        off += elen;
    }
    if (out->enabled_cpus == 0 && out->cpus_ignored == 0)
        return refuse(err, -EINVAL, "MADT: no enabled processor among %u entries", i);
    return 0;
}

int acpi_madt_parse(const void *table, size_t len, struct acpi_madt *out, struct acpi_error *err)
{
    return parse_whole(madt_parse, table, len, out, sizeof *out, err);
}

/* ---- DMAR ---- */

enum dmar_type { DMAR_DRHD = 0, DMAR_RMRR = 1 };

static const char *dmar_type_name(unsigned type)
{
    static const char *const names[] = { "DRHD", "RMRR", "ATSR", "RHSA", "ANDD", "SATC", "SIDP" };
    return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

#define DMAR_REFUSE(err, i, type, off, fmt, ...)                                                                       \
    refuse(err, -EINVAL, "DMAR structure %u (%s) at offset %zu: " fmt, i, dmar_type_name(type), off, __VA_ARGS__)

/* The device scopes filling s[0, n) of structure i, appended to out->scopes. */
static int dmar_scopes(struct acpi_dmar *out, const uint8_t *s, size_t n, unsigned i, unsigned type, size_t off,
                       uint16_t *first, uint16_t *count, struct acpi_error *err)
{
    *first = (uint16_t)out->nscopes;
    *count = 0;
    for (size_t at = 0; at < n;) {
        if (n - at < DMAR_SCOPE_FIXED)
            return DMAR_REFUSE(err, i, type, off, "%zu stray bytes after its device scopes", n - at);
        unsigned stype = s[at], slen = s[at + 1];
        if (slen < DMAR_SCOPE_FIXED + 2 || (slen - DMAR_SCOPE_FIXED) % 2 != 0)
            return DMAR_REFUSE(err, i, type, off, "device scope of length %u (6 plus 2 per path entry, at least one)",
                               slen);
        if (slen > n - at)
            return DMAR_REFUSE(err, i, type, off, "device scope of length %u runs past the structure (%zu left)", slen,
                               n - at);
        if (stype < ACPI_DMAR_SCOPE_ENDPOINT || stype > ACPI_DMAR_SCOPE_NAMESPACE)
            return DMAR_REFUSE(err, i, type, off, "device scope type %u is reserved", stype);
        if (type == DMAR_RMRR && stype != ACPI_DMAR_SCOPE_ENDPOINT)
            return DMAR_REFUSE(err, i, type, off, "device scope type %u (an RMRR names endpoints only)", stype);
        unsigned path_len = (slen - DMAR_SCOPE_FIXED) / 2;
        if (path_len > ACPI_DMAR_MAX_PATH)
            return DMAR_REFUSE(err, i, type, off, "a path of %u bridges and devices, more than %d", path_len,
                               ACPI_DMAR_MAX_PATH);
        if (out->nscopes == ACPI_DMAR_MAX_SCOPES)
            return DMAR_REFUSE(err, i, type, off, "more than %d device scopes in the table", ACPI_DMAR_MAX_SCOPES);
        struct acpi_dmar_scope *scope = &out->scopes[out->nscopes];
        *scope = (struct acpi_dmar_scope){
            .type = (uint8_t)stype, .enumeration_id = s[at + 4], .start_bus = s[at + 5], .path_len = (uint8_t)path_len
        };
        for (unsigned k = 0; k < path_len; k++) {
            uint8_t device = s[at + DMAR_SCOPE_FIXED + 2 * k], function = s[at + DMAR_SCOPE_FIXED + 2 * k + 1];
            if (device > 31 || function > 7)
                return DMAR_REFUSE(err, i, type, off, "path entry %02x.%x is not a PCI device.function", device,
                                   function);
            scope->path[k].device = device;
            scope->path[k].function = function;
        }
        out->nscopes++;
        (*count)++;
        at += slen;
    }
    return 0;
}

static int dmar_drhd(struct acpi_dmar *out, const uint8_t *e, size_t slen, unsigned i, size_t off,
                     struct acpi_error *err)
{
    if (slen < DMAR_DRHD_FIXED)
        return DMAR_REFUSE(err, i, DMAR_DRHD, off, "length %zu is less than %d", slen, DMAR_DRHD_FIXED);
    struct acpi_dmar_unit u = { .flags = e[4], .segment = get16(e, 6), .register_base = get64(e, 8) };
    uint8_t size = e[5];
    if (u.register_base == 0 || (u.register_base & 0xfff) != 0)
        return DMAR_REFUSE(err, i, DMAR_DRHD, off, "register base %#llx is 0 or not page aligned",
                           (unsigned long long)u.register_base);
    if (size > 8)
        return DMAR_REFUSE(err, i, DMAR_DRHD, off, "register set of 2^%u pages", size);
    u.register_pages = 1u << size;
    if (u.register_base + ((uint64_t)u.register_pages << 12) < u.register_base)
        return DMAR_REFUSE(err, i, DMAR_DRHD, off, "register set at %#llx wraps", (unsigned long long)u.register_base);
    for (unsigned k = 0; k < out->nunits; k++) {
        if (out->units[k].register_base == u.register_base)
            return DMAR_REFUSE(err, i, DMAR_DRHD, off, "register base %#llx is listed twice",
                               (unsigned long long)u.register_base);
        if ((u.flags & ACPI_DMAR_INCLUDE_PCI_ALL) && (out->units[k].flags & ACPI_DMAR_INCLUDE_PCI_ALL) &&
            out->units[k].segment == u.segment)
            return DMAR_REFUSE(err, i, DMAR_DRHD, off, "a second INCLUDE_PCI_ALL unit for segment %u", u.segment);
    }
    if (out->nunits == ACPI_DMAR_MAX_UNITS)
        return DMAR_REFUSE(err, i, DMAR_DRHD, off, "more than %d remapping units", ACPI_DMAR_MAX_UNITS);
    int r = dmar_scopes(out, e + DMAR_DRHD_FIXED, slen - DMAR_DRHD_FIXED, i, DMAR_DRHD, off, &u.first_scope, &u.nscopes,
                        err);
    if (r)
        return r;
    out->units[out->nunits++] = u;
    return 0;
}

static int dmar_rmrr(struct acpi_dmar *out, const uint8_t *e, size_t slen, unsigned i, size_t off,
                     struct acpi_error *err)
{
    if (slen < DMAR_RMRR_FIXED)
        return DMAR_REFUSE(err, i, DMAR_RMRR, off, "length %zu is less than %d", slen, DMAR_RMRR_FIXED);
    uint64_t base = get64(e, 8), limit = get64(e, 16);
    if ((base & 0xfff) != 0 || (limit & 0xfff) != 0xfff || limit < base || limit == UINT64_MAX)
        return DMAR_REFUSE(err, i, DMAR_RMRR, off, "range %#llx-%#llx is not whole pages in order",
                           (unsigned long long)base, (unsigned long long)limit);
    if (out->nrmrrs == ACPI_DMAR_MAX_RMRRS)
        return DMAR_REFUSE(err, i, DMAR_RMRR, off, "more than %d reserved memory regions", ACPI_DMAR_MAX_RMRRS);
    struct acpi_dmar_rmrr m = { .base = base, .end = limit + 1, .segment = get16(e, 6) };
    int r = dmar_scopes(out, e + DMAR_RMRR_FIXED, slen - DMAR_RMRR_FIXED, i, DMAR_RMRR, off, &m.first_scope, &m.nscopes,
                        err);
    if (r)
        return r;
    if (m.nscopes == 0)
        return DMAR_REFUSE(err, i, DMAR_RMRR, off, "%s", "names no device");
    out->rmrrs[out->nrmrrs++] = m;
    return 0;
}

static int dmar_parse(const uint8_t *p, size_t len, void *into, struct acpi_error *err)
{
    struct acpi_dmar *out = into;
    int r = acpi_table_check(p, len, "DMAR", DMAR_FIXED, err);
    if (r)
        return r;
    out->host_address_width = p[36] + 1u;
    out->flags = p[37];
    if (out->host_address_width < 32 || out->host_address_width > 64)
        return refuse(err, -EINVAL, "DMAR: host address width of %u bits", out->host_address_width);
    unsigned i = 0;
    static const struct entry_layout layout = { "DMAR", "structure", "a", 2, dmar_type_name };
    for (size_t off = DMAR_FIXED; off < len; i++) {
        unsigned type;
        size_t slen;
        if ((r = entry_at(&layout, p, len, off, i, &type, &slen, err)) != 0)
            return r;
        if (type == DMAR_DRHD)
            r = dmar_drhd(out, p + off, slen, i, off, err);
        else if (type == DMAR_RMRR)
            r = dmar_rmrr(out, p + off, slen, i, off, err);
        else
            out->other_structures++;
        if (r)
            return r;
        off += slen;
    }
    if (out->nunits == 0)
        return refuse(err, -EINVAL, "DMAR: no remapping unit (DRHD) among %u structures", i);
    return 0;
}

int acpi_dmar_parse(const void *table, size_t len, struct acpi_dmar *out, struct acpi_error *err)
{
    return parse_whole(dmar_parse, table, len, out, sizeof *out, err);
}
