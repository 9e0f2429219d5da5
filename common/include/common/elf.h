/*
 * Common layer: validation of static x86-64 ELF64 executables before they are
 * loaded into a user address space. Called by the kernel for the boot modules
 * it starts (memsrv, init) and by the libsys loader in init; host tests fuzz
 * it. elf_check only reads the image; it never maps or copies anything.
 */
#ifndef COMMON_ELF_H
#define COMMON_ELF_H

#include <stddef.h>
#include <stdint.h>
#include <abi/types.h>

#define ELF_MAX_SEGMENTS 16

/* Segment permissions; equal to the ELF PF_R/PF_W/PF_X bits. */
#define ELF_SEG_R 4
#define ELF_SEG_W 2
#define ELF_SEG_X 1

/* The ELF64 structures, as the System V gABI lays them out. */
#define ELF_EI_NIDENT 16
struct elf64_ehdr {
    unsigned char e_ident[ELF_EI_NIDENT];
    uint16_t e_type;
    uint16_t e_machine;
    uint32_t e_version;
    uint64_t e_entry;
    uint64_t e_phoff;
    uint64_t e_shoff;
    uint32_t e_flags;
    uint16_t e_ehsize;
    uint16_t e_phentsize;
    uint16_t e_phnum;
    uint16_t e_shentsize;
    uint16_t e_shnum;
    uint16_t e_shstrndx;
};
struct elf64_phdr {
    uint32_t p_type;
    uint32_t p_flags;
    uint64_t p_offset;
    uint64_t p_vaddr;
    uint64_t p_paddr;
    uint64_t p_filesz;
    uint64_t p_memsz;
    uint64_t p_align;
};
_Static_assert(sizeof(struct elf64_ehdr) == 64, "ELF64 header is 64 bytes");
_Static_assert(sizeof(struct elf64_phdr) == 56, "ELF64 program header is 56 bytes");

#define ELF_CLASS64    2
#define ELF_DATA2LSB   1
#define ELF_EV_CURRENT 1
#define ELF_ET_EXEC    2
#define ELF_EM_X86_64  62
#define ELF_PT_LOAD    1
#define ELF_PT_DYNAMIC 2
#define ELF_PT_INTERP  3
#define ELF_PN_XNUM    0xffff
#define ELF_PAGE_SIZE  ABI_PAGE_SIZE

struct elf_segment {
    uint64_t vaddr, memsz;   /* [vaddr, vaddr+memsz) in the address space */
    uint64_t offset, filesz; /* [offset, offset+filesz) in the file; the rest is zero */
    uint32_t flags;          /* ELF_SEG_* */
};

struct elf_image {
    uint64_t entry;
    size_t nsegments;
    struct elf_segment seg[ELF_MAX_SEGMENTS]; /* sorted by vaddr */
};

/*
 * Checks `image` (size bytes, any alignment) and fills *out with its PT_LOAD
 * segments sorted by vaddr. Returns 0, or -ENOEXEC with *why (if why is not
 * NULL) set to a static human-readable reason; *out is untouched on failure.
 * Never reads outside [image, image+size).
 *
 * Policy beyond the obvious header checks:
 *  - PT_LOAD segments with memsz == 0 are ignored (they occupy no memory);
 *    they still must not have filesz > 0.
 *  - Every segment, rounded out to 4 KiB pages, lies in [user_lo, user_hi),
 *    and no two segments share a page.
 *  - PT_INTERP or PT_DYNAMIC: refused (only static executables load).
 *  - e_phnum == PN_XNUM (extended numbering): refused.
 *  - Writable and executable segments are allowed; policy is the caller's.
 */
int elf_check(const void *image, size_t size, uint64_t user_lo, uint64_t user_hi, struct elf_image *out,
              const char **why);

#endif
