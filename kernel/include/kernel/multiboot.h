/*
 * Kernel boot layer: parsing of the multiboot2 boot information that GRUB
 * leaves for the kernel. Called once by the boot code (before any allocator
 * exists) to find the command line, the boot modules and the physical memory
 * map, which the kernel then hands to memsrv. Pure C over a byte buffer, so
 * the host tests run it on crafted and truncated infos.
 */
#ifndef KERNEL_MULTIBOOT_H
#define KERNEL_MULTIBOOT_H

#include <abi/types.h>

#define MB_MAX_REGIONS 128
#define MB_MAX_MODULES 32

/* Multiboot2 tag types that mb_parse reads; the others are skipped. */
#define MB_TAG_END        0
#define MB_TAG_CMDLINE    1
#define MB_TAG_BOOTLOADER 2
#define MB_TAG_MODULE     3
#define MB_TAG_MEMINFO    4
#define MB_TAG_MMAP       6
#define MB_TAG_ACPI_OLD   14 /* a copy of the ACPI 1.0 RSDP */
#define MB_TAG_ACPI_NEW   15 /* a copy of the ACPI 2.0+ RSDP */
#define MB_TAG_EFI32      11 /* the UEFI system table's address (32-bit firmware) */
#define MB_TAG_EFI64      12 /* the UEFI system table's address (64-bit firmware) */
#define MB_TAG_EFI_BS     18 /* UEFI boot services were left running */

#define MB_RSDP_OLD_SIZE 20 /* the ACPI 1.0 RSDP */
#define MB_RSDP_NEW_MIN  36 /* the ACPI 2.0 RSDP */
#define MB_RSDP_NEW_MAX  64 /* room for a later, longer revision */

/*
 * Memory types as the memory map reports them. A type the spec does not
 * define is reported as MB_MEM_RESERVED.
 */
enum mb_mem_type {
    MB_MEM_RAM = 1,
    MB_MEM_RESERVED = 2,
    MB_MEM_ACPI_RECLAIMABLE = 3,
    MB_MEM_ACPI_NVS = 4,
    MB_MEM_BAD = 5,
};

struct mb_region {
    uint64_t base, len; /* [base, base+len), len > 0, base+len does not wrap */
    uint32_t type;      /* enum mb_mem_type */
};

struct mb_module {
    uint64_t start, end; /* physical [start, end) */
    const char *cmdline; /* points into the info, always NUL-terminated */
};

struct mb_info {
    const char *cmdline;    /* "" when absent; points into the info */
    const char *bootloader; /* "" when absent; points into the info */
    /* Sorted by base, non-overlapping, non-empty; adjacent ones differ in type. */
    struct mb_region regions[MB_MAX_REGIONS];
    size_t nregions;
    struct mb_module modules[MB_MAX_MODULES]; /* in tag order */
    size_t nmodules;
    uint64_t mem_lower_kb, mem_upper_kb;
    bool have_meminfo;
    /* The RSDP copies the boot loader found, as bytes: their checksums are
     * for the ACPI parser (common/acpi.h) to check. */
    uint8_t rsdp_old[MB_RSDP_OLD_SIZE];
    bool have_rsdp_old;
    uint8_t rsdp_new[MB_RSDP_NEW_MAX];
    uint32_t rsdp_new_len; /* 0: no tag 15 */
    /* Firmware: UEFI when a system table tag came (GRUB passes one under
     * UEFI, none under a BIOS). The kernel calls no firmware service; the
     * address is for the boot log. */
    bool have_efi;
    uint8_t efi_bits; /* 32 or 64: which tag */
    uint64_t efi_system_table;
    bool efi_boot_services; /* tag 18: GRUB did not exit boot services */
    uint32_t total_size;
    unsigned warnings; /* tags refused or clipped */
};

typedef void (*mb_warn_fn)(void *ctx, const char *msg);

/*
 * Parses the info at `mbi` of which at most `avail` bytes may be read (the
 * walk covers min(total_size, avail) bytes; total_size > avail is warned
 * about). Returns 0, or -EINVAL when nothing usable was found: total_size
 * below 8, or neither a memory map with a region nor a basic meminfo tag;
 * *out then still holds whatever else was found.
 *
 * A malformed or truncated tag is refused with a warning (through warn, which
 * may be NULL, with a message naming the tag type and the problem) and never
 * trusted; the walk stops at a tag that overflows the info. warn is called
 * with a message in a stack buffer, valid only during the call.
 *
 * The memory map is normalised: entries are sorted, empty ones dropped,
 * overlaps given to the more restrictive type (bad > reserved > ACPI NVS >
 * ACPI reclaimable > RAM), adjacent entries of one type merged. An entry
 * whose base+len overflows is clipped to end at 2^64-1. Only the first
 * MB_MAX_REGIONS entries of the map are read. Without a memory map, a basic
 * meminfo tag yields RAM [0, lower) and [1 MiB, 1 MiB + upper).
 *
 * ACPI RSDP tags are copied into *out when their payload has the size of
 * an RSDP of their kind (exactly 20 bytes for tag 14, 36 to 64 for tag
 * 15); a repeated tag keeps the first.
 *
 * Uses a few hundred bytes of stack and no memory besides *out.
 */
int mb_parse(const void *mbi, size_t avail, struct mb_info *out, mb_warn_fn warn, void *ctx);

/* "RAM", "reserved", ... for the boot log; "unknown" for other values. */
const char *mb_mem_type_name(uint32_t type);

/* Whether [base, base + len) shares a byte with a MB_MEM_RAM region (device
 * registers a firmware table places there are refused). */
bool mb_overlaps_ram(const struct mb_info *info, uint64_t base, uint64_t len);

/* Whether [base, base + len), len > 0, lies inside one MB_MEM_RAM region
 * (the map merges adjacent RAM, so RAM without a gap). */
bool mb_within_ram(const struct mb_info *info, uint64_t base, uint64_t len);

/* Total length of the MB_MEM_RAM regions. */
uint64_t mb_ram_bytes(const struct mb_info *info);

#endif
