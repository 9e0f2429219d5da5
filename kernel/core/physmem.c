/*
 * Kernel layer: user physical memory before the memory server (see
 * kernel/physmem.h). A sorted array of disjoint, coalesced free ranges;
 * allocation is first fit by address, free inserts and merges with both
 * neighbours. The number of ranges is bounded by the live allocations plus
 * the RAM regions, far below the array's capacity.
 */
#include <abi/errno.h>
#include <arch/layout.h>
#include <common/string.h>
#include <kernel/console.h>
#include <kernel/physmem.h>

#define PHYSMEM_MAX_RANGES 4096

static struct phys_range ranges[PHYSMEM_MAX_RANGES];
static unsigned nranges;
static uint64_t free_bytes;
static bool handed_over;

static void insert_at(unsigned i, uint64_t base, uint64_t len)
{
    VERIFY(nranges < PHYSMEM_MAX_RANGES);
    memmove(&ranges[i + 1], &ranges[i], (nranges - i) * sizeof(ranges[0]));
    ranges[i] = (struct phys_range){ base, len };
    nranges++;
}

static void remove_at(unsigned i)
{
    memmove(&ranges[i], &ranges[i + 1], (nranges - i - 1) * sizeof(ranges[0]));
    nranges--;
}

/* Takes [base, base+len) out of the free ranges, wherever it overlaps. */
static void carve(uint64_t base, uint64_t len)
{
    uint64_t end = base + len;
    for (unsigned i = 0; i < nranges;) {
        uint64_t rb = ranges[i].base, re = rb + ranges[i].len;
        if (re <= base || rb >= end) {
            i++;
            continue;
        }
        uint64_t cut_lo = rb > base ? rb : base, cut_hi = re < end ? re : end;
        free_bytes -= cut_hi - cut_lo;
        if (rb < cut_lo && re > cut_hi) {
            ranges[i].len = cut_lo - rb;
            insert_at(i + 1, cut_hi, re - cut_hi);
            return;
        }
        if (rb < cut_lo) {
            ranges[i].len = cut_lo - rb;
            i++;
        } else if (re > cut_hi) {
            ranges[i].base = cut_hi;
            ranges[i].len = re - cut_hi;
            i++;
        } else {
            remove_at(i);
        }
    }
}

bool physmem_ram_pages(const struct mb_region *r, struct phys_range *out)
{
    uint64_t base = (r->base + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    uint64_t end = (r->base + r->len) & ~(PAGE_SIZE - 1);
    if (r->type != MB_MEM_RAM || end <= base || end > DIRECT_MAP_LIMIT)
        return false;
    *out = (struct phys_range){ base, end - base };
    return true;
}

void physmem_init(const struct mb_info *info, const struct phys_range *reserved, unsigned nreserved)
{
    for (size_t i = 0; i < info->nregions; i++) {
        struct phys_range ram;
        if (!physmem_ram_pages(&info->regions[i], &ram))
            continue;
        insert_at(nranges, ram.base, ram.len); /* regions come sorted */
        free_bytes += ram.len;
    }
    for (unsigned i = 0; i < nreserved; i++) {
        uint64_t base = reserved[i].base & ~(PAGE_SIZE - 1);
        uint64_t end = (reserved[i].base + reserved[i].len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
        carve(base, end - base);
    }
}

int physmem_alloc(uint64_t size, uint64_t align, uint64_t limit, uint64_t *base)
{
    if (!size || (size & (PAGE_SIZE - 1)) || !align || (align & (align - 1)))
        return -EINVAL;
    if (handed_over)
        return -ENOMEM;
    for (unsigned i = 0; i < nranges; i++) {
        uint64_t start = (ranges[i].base + align - 1) & ~(align - 1);
        uint64_t end = ranges[i].base + ranges[i].len;
        if (start < ranges[i].base || start >= end || end - start < size || start + size > limit)
            continue;
        if (nranges == PHYSMEM_MAX_RANGES)
            return -ENOMEM; /* the carve might need a new range */
        carve(start, size);
        *base = start;
        return 0;
    }
    return -ENOMEM;
}

void physmem_free(uint64_t base, uint64_t size)
{
    unsigned i = 0;
    while (i < nranges && ranges[i].base < base)
        i++;
    VERIFY(i == 0 || ranges[i - 1].base + ranges[i - 1].len <= base);
    VERIFY(i == nranges || base + size <= ranges[i].base);
    free_bytes += size;
    bool merge_prev = i > 0 && ranges[i - 1].base + ranges[i - 1].len == base;
    bool merge_next = i < nranges && base + size == ranges[i].base;
    if (merge_prev && merge_next) {
        ranges[i - 1].len += size + ranges[i].len;
        remove_at(i);
    } else if (merge_prev) {
        ranges[i - 1].len += size;
    } else if (merge_next) {
        ranges[i].base = base;
        ranges[i].len += size;
    } else {
        insert_at(i, base, size);
    }
}

uint64_t physmem_free_bytes(void) { return free_bytes; }

void physmem_hand_over(void) { handed_over = true; }
bool physmem_handed_over(void) { return handed_over; }

bool physmem_range(unsigned i, struct phys_range *out)
{
    if (i >= nranges)
        return false;
    *out = ranges[i];
    return true;
}
