/*
 * Common layer: ELF64 executable checks (see common/elf.h), called by the
 * kernel for boot modules and by the libsys loader. The image is untrusted:
 * every header is copied out with memcpy (no alignment assumed) after its
 * bounds are checked, and all offset and address arithmetic is written so
 * that it cannot wrap: `a + b > limit` is always tested as `b > limit - a`
 * after `a <= limit`.
 */
#include <stdbool.h>
#include <abi/errno.h>
#include <common/elf.h>
#include <common/string.h>

#define PAGE_MASK (ELF_PAGE_SIZE - 1)

static int refuse(const char **why, const char *reason)
{
    if (why)
        *why = reason;
    return -ENOEXEC;
}

/* Whether [off, off+len) lies within [0, size). */
static bool in_file(uint64_t off, uint64_t len, size_t size) { return off <= size && len <= size - off; }

static const char *check_header(const struct elf64_ehdr *eh, size_t size)
{
    const unsigned char *id = eh->e_ident;
    if (id[0] != 0x7f || id[1] != 'E' || id[2] != 'L' || id[3] != 'F')
        return "bad ELF magic";
    if (id[4] != ELF_CLASS64)
        return "not a 64-bit ELF (EI_CLASS)";
    if (id[5] != ELF_DATA2LSB)
        return "not little-endian (EI_DATA)";
    if (id[6] != ELF_EV_CURRENT || eh->e_version != ELF_EV_CURRENT)
        return "bad ELF version";
    if (eh->e_type != ELF_ET_EXEC)
        return "not an executable (e_type != ET_EXEC)";
    if (eh->e_machine != ELF_EM_X86_64)
        return "not an x86-64 executable (e_machine)";
    if (eh->e_phentsize != sizeof(struct elf64_phdr))
        return "bad program header size (e_phentsize)";
    if (eh->e_phnum == ELF_PN_XNUM)
        return "extended program header numbering is not supported";
    if (!in_file(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(struct elf64_phdr), size))
        return "program header table outside the file";
    return NULL;
}

/* Checks one PT_LOAD with memsz > 0 on its own (not against the others). */
static const char *check_segment(const struct elf64_phdr *ph, size_t size, uint64_t user_lo, uint64_t user_hi)
{
    if (!in_file(ph->p_offset, ph->p_filesz, size))
        return "segment file range outside the file";
    if (ph->p_memsz > UINT64_MAX - ph->p_vaddr)
        return "segment wraps around the address space";
    uint64_t end = ph->p_vaddr + ph->p_memsz;
    if (end > UINT64_MAX - PAGE_MASK)
        return "segment wraps around the address space";
    uint64_t page_lo = ph->p_vaddr & ~PAGE_MASK;
    uint64_t page_hi = (end + PAGE_MASK) & ~PAGE_MASK;
    if (page_lo < user_lo || page_hi > user_hi)
        return "segment outside user space";
    if ((ph->p_vaddr & PAGE_MASK) != (ph->p_offset & PAGE_MASK))
        return "segment vaddr and offset differ modulo the page size";
    return NULL;
}

/* Adds a PT_LOAD segment to img, kept sorted by vaddr (insertion: there
 * are at most ELF_MAX_SEGMENTS). */
static void insert_segment(struct elf_image *img, const struct elf64_phdr *ph)
{
    size_t j = img->nsegments++;
    for (; j > 0 && img->seg[j - 1].vaddr > ph->p_vaddr; j--)
        img->seg[j] = img->seg[j - 1];
    img->seg[j].vaddr = ph->p_vaddr;
    img->seg[j].memsz = ph->p_memsz;
    img->seg[j].offset = ph->p_offset;
    img->seg[j].filesz = ph->p_filesz;
    img->seg[j].flags = ph->p_flags & (ELF_SEG_R | ELF_SEG_W | ELF_SEG_X);
}

/* The loadable segments, each checked on its own; NULL or why not. */
static const char *collect_segments(const unsigned char *file, size_t size, const struct elf64_ehdr *eh,
                                    uint64_t user_lo, uint64_t user_hi, struct elf_image *img)
{
    const char *reason;

    for (size_t i = 0; i < eh->e_phnum; i++) {
        struct elf64_phdr ph;
        memcpy(&ph, file + eh->e_phoff + i * sizeof ph, sizeof ph);
        if (ph.p_type == ELF_PT_INTERP || ph.p_type == ELF_PT_DYNAMIC)
            return "dynamically linked (PT_INTERP or PT_DYNAMIC)";
        if (ph.p_type != ELF_PT_LOAD)
            continue;
        if (ph.p_filesz > ph.p_memsz)
            return "segment filesz > memsz";
        if (ph.p_memsz == 0)
            continue;
        if ((reason = check_segment(&ph, size, user_lo, user_hi)) != NULL)
            return reason;
        if (img->nsegments == ELF_MAX_SEGMENTS)
            return "too many PT_LOAD segments";
        insert_segment(img, &ph);
    }
    return img->nsegments == 0 ? "no PT_LOAD segment" : NULL;
}

/* What the segments must satisfy together: no two share a page, and the
 * entry point lies in an executable one. */
static const char *check_layout(const struct elf_image *img)
{
    bool entry_ok = false;
    for (size_t i = 0; i < img->nsegments; i++) {
        const struct elf_segment *s = &img->seg[i];
        /* check_segment proved that these page roundings cannot wrap. */
        if (i + 1 < img->nsegments && ((s->vaddr + s->memsz + PAGE_MASK) & ~PAGE_MASK) > (s[1].vaddr & ~PAGE_MASK))
            return "segments overlap (after rounding to pages)";
        if ((s->flags & ELF_SEG_X) && img->entry >= s->vaddr && img->entry - s->vaddr < s->memsz)
            entry_ok = true;
    }
    return entry_ok ? NULL : "entry point not in an executable segment";
}

int elf_check(const void *image, size_t size, uint64_t user_lo, uint64_t user_hi, struct elf_image *out,
              const char **why)
{
    const unsigned char *file = image;
    struct elf64_ehdr eh;
    struct elf_image img;
    const char *reason;

    if (image == NULL || size < sizeof eh)
        return refuse(why, "too short for an ELF header");
    memcpy(&eh, file, sizeof eh);
    if ((reason = check_header(&eh, size)) != NULL)
        return refuse(why, reason);
    img.entry = eh.e_entry;
    img.nsegments = 0;
    if ((reason = collect_segments(file, size, &eh, user_lo, user_hi, &img)) != NULL ||
        (reason = check_layout(&img)) != NULL)
        return refuse(why, reason);
    *out = img;
    return 0;
}
