/*
 * Common layer: validation and parsing of the ACPI tables the kernel reads at
 * boot: the RSDP, the RSDT or XSDT, the MADT (processors and interrupt
 * controllers) and the DMAR (DMA remapping units). Callers: the kernel
 * (kernel/core/acpi_tables.c), which reads physical memory through a
 * callback, and the host tests, which hand the same code fake tables.
 *
 * Firmware tables are untrusted input. Every table is checked before a field
 * is used: signature, length against what was read, checksum, and each entry
 * or structure against its type's size and the room left in the table. A
 * table that fails a check is refused whole, with a reason in an acpi_error;
 * nothing here panics or reads outside the buffer it was given. Parsed
 * results are plain values copied out of the table, never pointers into it.
 */
#ifndef COMMON_ACPI_H
#define COMMON_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACPI_HEADER_SIZE  36 /* the header every system description table starts with */
#define ACPI_RSDP_V1_SIZE 20 /* ACPI 1.0: up to the RSDT address */
#define ACPI_RSDP_V2_SIZE 36 /* ACPI 2.0+: length, XSDT address, extended checksum */

/* Where the RSDP may be when the boot loader does not say (ACPI 5.2.5.1). */
#define ACPI_EBDA_POINTER    0x40eu /* real-mode segment of the EBDA */
#define ACPI_EBDA_SCAN_BYTES 1024u
#define ACPI_BIOS_AREA_START 0xe0000u
#define ACPI_BIOS_AREA_END   0x100000u

#define ACPI_ROOT_MAX_ENTRIES   256
#define ACPI_MADT_MAX_CPUS      256
#define ACPI_MADT_MAX_IOAPICS   16
#define ACPI_MADT_MAX_OVERRIDES 16
#define ACPI_MADT_MAX_NMIS      32
#define ACPI_DMAR_MAX_UNITS     8
#define ACPI_DMAR_MAX_RMRRS     16
#define ACPI_DMAR_MAX_SCOPES    64 /* device scopes of all units and RMRRs together */
#define ACPI_DMAR_MAX_PATH      8  /* bridges on the way to a device, and the device */

/* Why a table was refused: one line, for the boot log. */
struct acpi_error {
    char msg[160];
};

/*
 * Copies len bytes of physical memory at phys into dst; false when the range
 * cannot be read (the kernel refuses addresses outside the memory map). The
 * parser never assumes that two reads of one address agree: whatever it
 * checks, it checks in its own copy.
 */
typedef bool (*acpi_read_fn)(void *ctx, uint64_t phys, void *dst, size_t len);
/* Non-fatal findings (a refused XSDT with an RSDT to fall back on, a bad
 * duplicate table skipped); msg is valid during the call only. */
typedef void (*acpi_warn_fn)(void *ctx, const char *msg);

/* ---- RSDP ---- */

struct acpi_rsdp {
    uint8_t revision; /* 0 for ACPI 1.0, 2 for 2.0 and later */
    char oem_id[7];   /* NUL-terminated */
    uint32_t rsdt;    /* physical address of the RSDT, 0 if none */
    uint64_t xsdt;    /* physical address of the XSDT, 0 if none */
};

/*
 * Validates an RSDP image of len bytes (a copy from a multiboot2 tag or from
 * memory): the "RSD PTR " signature, the checksum of the first 20 bytes and,
 * from revision 2, a length field between 36 and len and the extended
 * checksum over that length. At least one root table address must be set.
 * 0, or -EINVAL with *err saying why.
 */
int acpi_rsdp_parse(const void *bytes, size_t len, struct acpi_rsdp *out, struct acpi_error *err);

/*
 * Looks for a valid RSDP where BIOS firmware leaves one: the first KiB of
 * the EBDA (its segment is the 16-bit word at 0x40e), then 0xe0000-0xfffff,
 * at 16-byte boundaries. 0 with *out and *found_at, or -ENOENT.
 */
int acpi_rsdp_scan(acpi_read_fn read, void *ctx, struct acpi_rsdp *out, uint64_t *found_at, struct acpi_error *err);

/* ---- RSDT / XSDT ---- */

struct acpi_root {
    acpi_read_fn read;
    void *ctx;
    acpi_warn_fn warn; /* may be NULL */
    void *warn_ctx;
    uint64_t address; /* of the table in use */
    bool xsdt;        /* 64-bit entries (XSDT) or 32-bit (RSDT) */
    uint32_t count;
    uint64_t entries[ACPI_ROOT_MAX_ENTRIES]; /* copied from the checked table */
};

/*
 * Reads and checks the XSDT (when the RSDP gives one), else the RSDT:
 * signature, a length of the header plus a whole number of entries, at most
 * ACPI_ROOT_MAX_ENTRIES of them, and the checksum. An XSDT that fails is
 * reported through warn and the RSDT used instead, if there is one.
 * 0, or -EINVAL / -ERANGE (unreadable) with *err saying why.
 */
int acpi_root_open(struct acpi_root *root, const struct acpi_rsdp *rsdp, acpi_read_fn read, void *ctx,
                   acpi_warn_fn warn, void *warn_ctx, struct acpi_error *err);

/*
 * Copies the first table named sig (4 characters) that passes the header
 * checks into buf (cap bytes) and sets *len. Entries that are unreadable, or
 * a table of that name with a bad length or checksum, are skipped with a
 * warning. -ENOENT if there is no such table, -EINVAL if every one found
 * was bad, -E2BIG if a good one is larger than cap.
 */
int acpi_find_table(const struct acpi_root *root, const char *sig, void *buf, size_t cap, size_t *len,
                    struct acpi_error *err);

/* The checks acpi_find_table makes, on a table already in memory: sig, a
 * length field equal to len and at least min_len, the checksum. */
int acpi_table_check(const void *table, size_t len, const char *sig, size_t min_len, struct acpi_error *err);

/* ---- MADT ("APIC") ---- */

struct acpi_cpu {
    uint32_t apic_id;
    uint32_t uid;        /* the processor's ACPI UID */
    bool enabled;        /* usable now */
    bool online_capable; /* disabled, but may be brought online later */
    bool x2apic;         /* listed by an x2APIC entry (type 9) */
};

struct acpi_ioapic {
    uint8_t id;
    uint32_t address;
    uint32_t gsi_base;
};

/* An ISA IRQ that reaches the I/O APIC on another input or with other
 * polarity and trigger (type 2). */
struct acpi_override {
    uint8_t source_irq; /* ISA IRQ 0..15 */
    uint32_t gsi;
    uint16_t flags; /* MPS INTI flags: polarity bits 0-1, trigger bits 2-3 */
};

/* A local APIC LINT pin wired as NMI (types 4 and 10). */
struct acpi_lapic_nmi {
    uint32_t uid; /* 0xff (type 4) or 0xffffffff (type 10): every processor */
    uint16_t flags;
    uint8_t lint; /* 0 or 1 */
};

#define ACPI_MADT_PCAT_COMPAT  0x1u /* dual 8259 PICs present */
#define ACPI_MPS_POLARITY_MASK 0x3u
#define ACPI_MPS_TRIGGER_MASK  0xcu
#define ACPI_MPS_RESERVED      0x2u /* value 2 of either two-bit field */

struct acpi_madt {
    uint64_t lapic_address; /* the 32-bit field, or the type-5 override */
    uint32_t flags;
    struct acpi_cpu cpus[ACPI_MADT_MAX_CPUS];
    unsigned ncpus;
    unsigned cpus_ignored; /* entries past ACPI_MADT_MAX_CPUS, not in cpus[] */
    unsigned enabled_cpus; /* among cpus[] */
    struct acpi_ioapic ioapics[ACPI_MADT_MAX_IOAPICS];
    unsigned nioapics;
    struct acpi_override overrides[ACPI_MADT_MAX_OVERRIDES];
    unsigned noverrides;
    struct acpi_lapic_nmi nmis[ACPI_MADT_MAX_NMIS];
    unsigned nnmis;
    unsigned other_entries; /* entry types this parser does not read, skipped */
};

/*
 * Parses a MADT of len bytes (checked as acpi_table_check does). Entries of
 * the types above must have exactly their defined length and lie within the
 * table; other types need only a length of at least 2 that fits. Refused:
 * a truncated or overlong entry, two enabled processors with one APIC id,
 * two I/O APICs with one id or a zero address, an override for a bus other
 * than ISA, an IRQ above 15, a repeated IRQ or reserved flags, a LINT above
 * 1, two local APIC address overrides, more I/O APICs, overrides or NMI
 * entries than fit, and a table without an enabled processor. Processors
 * past ACPI_MADT_MAX_CPUS are counted in cpus_ignored, not refused.
 */
int acpi_madt_parse(const void *table, size_t len, struct acpi_madt *out, struct acpi_error *err);

/* ---- DMAR (Intel VT-d) ---- */

enum acpi_dmar_scope_type {
    ACPI_DMAR_SCOPE_ENDPOINT = 1, /* a PCI function */
    ACPI_DMAR_SCOPE_BRIDGE = 2,   /* a PCI bridge and every bus below it */
    ACPI_DMAR_SCOPE_IOAPIC = 3,
    ACPI_DMAR_SCOPE_HPET = 4,
    ACPI_DMAR_SCOPE_NAMESPACE = 5, /* an ACPI namespace device */
};

/* A device named by the bus it starts on and the device/function numbers
 * of each bridge on the way, the last one naming the device itself. */
struct acpi_dmar_scope {
    uint8_t type; /* enum acpi_dmar_scope_type */
    uint8_t enumeration_id;
    uint8_t start_bus;
    uint8_t path_len; /* 1..ACPI_DMAR_MAX_PATH */
    struct {
        uint8_t device, function;
    } path[ACPI_DMAR_MAX_PATH];
};

#define ACPI_DMAR_INCLUDE_PCI_ALL 0x1u

/* A remapping unit (DRHD). */
struct acpi_dmar_unit {
    uint64_t register_base;  /* 4 KiB aligned, not 0 */
    uint32_t register_pages; /* 2^size field */
    uint16_t segment;
    uint8_t flags; /* ACPI_DMAR_INCLUDE_PCI_ALL: every device of the segment not named by another unit */
    uint16_t first_scope, nscopes; /* in acpi_dmar.scopes */
};

/* Reserved memory a device keeps using across the hand-over from firmware
 * (RMRR), such as a USB controller's legacy emulation buffers. */
struct acpi_dmar_rmrr {
    uint64_t base, end; /* [base, end), 4 KiB aligned */
    uint16_t segment;
    uint16_t first_scope, nscopes; /* endpoints only */
};

#define ACPI_DMAR_INTR_REMAP     0x1u
#define ACPI_DMAR_X2APIC_OPT_OUT 0x2u

struct acpi_dmar {
    unsigned host_address_width; /* bits of physical address DMA can reach */
    uint8_t flags;
    struct acpi_dmar_unit units[ACPI_DMAR_MAX_UNITS];
    unsigned nunits;
    struct acpi_dmar_rmrr rmrrs[ACPI_DMAR_MAX_RMRRS];
    unsigned nrmrrs;
    struct acpi_dmar_scope scopes[ACPI_DMAR_MAX_SCOPES];
    unsigned nscopes;
    unsigned other_structures; /* ATSR, RHSA, ANDD, SATC...: skipped */
};

/*
 * Parses a DMAR of len bytes (checked as acpi_table_check does). Each
 * remapping structure needs a length of at least its fixed part that fits
 * in the table; DRHD and RMRR device scopes must fill the rest exactly,
 * each with a known type, a whole number of (device, function) path
 * entries (1..ACPI_DMAR_MAX_PATH, device < 32, function < 8). Refused too:
 * a host address width outside 32..64 bits, a DRHD register base of 0 or
 * not page aligned or repeated, a register size above 2^8 pages, two
 * INCLUDE_PCI_ALL units in one segment, an RMRR that is empty, unaligned,
 * wraps, or names anything but endpoints, more units, RMRRs or scopes than
 * fit, and a table without a unit.
 */
int acpi_dmar_parse(const void *table, size_t len, struct acpi_dmar *out, struct acpi_error *err);

#endif
