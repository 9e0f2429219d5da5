/*
 * Architecture layer (x86-64): VT-d second-level page tables (see
 * vtd_tables.h). Called by iommu_vtd.c for each domain and by the host
 * tests; needs nothing but its ops.
 *
 * All or nothing: a map is first planned (tables to create counted, every
 * page of the range checked to be free) and then carried out by a walk
 * that makes the same decisions and cannot fail. An unmap clears leaves,
 * unlinks tables that became empty, has the unit invalidate, and only then
 * frees the unlinked tables.
 */
#include <abi/errno.h>
#include <kernel/console.h>
#include "vtd_tables.h"

#define ENTRIES    512u
#define FREE_BATCH 32u

static unsigned level_shift(unsigned level) { return 12 + 9 * (level - 1); }
static unsigned index_at(uint64_t iova, unsigned level)
{
    return (unsigned)(iova >> level_shift(level)) & (ENTRIES - 1);
}

static uint64_t *table_of(const struct vtd_tables *t, uint64_t entry)
{
    return t->ops->table(t->ctx, entry & VTD_SL_ADDR);
}

static void set_entry(const struct vtd_tables *t, uint64_t *e, uint64_t v)
{
    *e = v;
    t->ops->publish(t->ctx, e);
}

int vtd_tables_init(struct vtd_tables *t, const struct vtd_tables_ops *ops, void *ctx, unsigned levels,
                    bool large_pages, uint64_t iova_limit, uint64_t phys_limit)
{
    *t = (struct vtd_tables){ ops, ctx, 0, levels, large_pages, iova_limit, phys_limit };
    t->root = ops->alloc_table(ctx);
    return t->root ? 0 : -ENOMEM;
}

static void free_below(struct vtd_tables *t, uint64_t frame, unsigned level)
{
    uint64_t *entries = t->ops->table(t->ctx, frame);
    for (unsigned i = 0; level > 1 && i < ENTRIES; i++)
        if ((entries[i] & VTD_SL_PRESENT) && !(entries[i] & VTD_SL_PS))
            free_below(t, entries[i] & VTD_SL_ADDR, level - 1);
    t->ops->free_table(t->ctx, frame);
}

void vtd_tables_destroy(struct vtd_tables *t)
{
    free_below(t, t->root, t->levels);
    t->root = 0;
}

static bool large_fits(const struct vtd_tables *t, uint64_t iova, uint64_t phys, uint64_t left, bool allow_large)
{
    return allow_large && t->large_pages && ((iova | phys) & (VTD_LARGE_PAGE_SIZE - 1)) == 0 &&
           left >= VTD_LARGE_PAGE_SIZE;
}

/*
 * Walks [iova, iova + size) as map_range will, one 2 MiB window at a time:
 * counts the tables it would create (each once, by the key of the range the
 * table covers) and refuses any page already mapped.
 */
static int plan_map(const struct vtd_tables *t, uint64_t iova, uint64_t phys, uint64_t size, bool allow_large,
                    uint64_t *need)
{
    uint64_t end = iova + size, count = 0, counted[5] = { ~0ull, ~0ull, ~0ull, ~0ull, ~0ull };
    while (iova < end) {
        uint64_t window_end = (iova | (VTD_LARGE_PAGE_SIZE - 1)) + 1;
        if (window_end > end)
            window_end = end;
        bool large = large_fits(t, iova, phys, end - iova, allow_large);
        const uint64_t *entries = t->ops->table(t->ctx, t->root);
        unsigned level = t->levels;
        for (; level > 1; level--) {
            uint64_t e = entries ? entries[index_at(iova, level)] : 0;
            if ((e & VTD_SL_PRESENT) && (e & VTD_SL_PS))
                return -EEXIST;
            if (level == 2 && large && !(e & VTD_SL_PRESENT))
                break; /* a 2 MiB leaf goes into this entry */
            if (e & VTD_SL_PRESENT) {
                entries = table_of(t, e);
                continue;
            }
            uint64_t key = iova >> level_shift(level);
            if (counted[level] != key) {
                counted[level] = key;
                count++;
            }
            entries = 0;
        }
        for (uint64_t va = iova; level == 1 && entries && va < window_end; va += VTD_PAGE_SIZE)
            if (entries[index_at(va, 1)] & VTD_SL_PRESENT)
                return -EEXIST;
        phys += window_end - iova;
        iova = window_end;
    }
    *need = count;
    return 0;
}

static int check_range(const struct vtd_tables *t, uint64_t iova, uint64_t phys, uint64_t size)
{
    if (size == 0 || ((iova | phys | size) & (VTD_PAGE_SIZE - 1)) || iova + size < iova || phys + size < phys)
        return -EINVAL;
    if (iova + size > t->iova_limit || phys + size > t->phys_limit)
        return -ERANGE;
    return 0;
}

int vtd_tables_map_check(const struct vtd_tables *t, uint64_t iova, uint64_t phys, uint64_t size)
{
    uint64_t need;
    int err = check_range(t, iova, phys, size);
    if (err || (err = plan_map(t, iova, phys, size, true, &need)) != 0)
        return err;
    return need > t->ops->frames_free(t->ctx) ? -ENOMEM : 0;
}

uint64_t vtd_tables_needed(const struct vtd_tables *t, uint64_t iova, uint64_t size)
{
    uint64_t need;
    if (check_range(t, iova, 0, size) != 0 || plan_map(t, iova, 0, size, false, &need) != 0)
        return 0;
    return need;
}

static void map_range(struct vtd_tables *t, uint64_t iova, uint64_t phys, uint64_t size, uint64_t perm)
{
    while (size) {
        bool large = large_fits(t, iova, phys, size, true);
        uint64_t *entries = t->ops->table(t->ctx, t->root);
        unsigned level = t->levels;
        for (; level > 1; level--) {
            uint64_t *e = &entries[index_at(iova, level)];
            if (level == 2 && large && !(*e & VTD_SL_PRESENT))
                break;
            if (!(*e & VTD_SL_PRESENT)) {
                uint64_t fresh = t->ops->alloc_table(t->ctx);
                if (!fresh)
                    panic("iommu: frames ran out after the map was planned");
                set_entry(t, e, fresh | VTD_SL_R | VTD_SL_W); /* the leaf decides */
            }
            entries = table_of(t, *e);
        }
        uint64_t step = level == 2 ? VTD_LARGE_PAGE_SIZE : VTD_PAGE_SIZE;
        set_entry(t, &entries[index_at(iova, level)], phys | perm | (level == 2 ? VTD_SL_PS : 0));
        iova += step;
        phys += step;
        size -= step;
    }
}

int vtd_tables_map(struct vtd_tables *t, uint64_t iova, uint64_t phys, uint64_t size, bool writable)
{
    int err = vtd_tables_map_check(t, iova, phys, size);
    if (err)
        return err;
    map_range(t, iova, phys, size, VTD_SL_R | (writable ? VTD_SL_W : 0));
    return 0;
}

/* Tables unlinked by an unmap, freed once the unit has forgotten them. */
struct free_batch {
    struct vtd_tables *tables;
    uint64_t frames[FREE_BATCH];
    unsigned n;
};

static void batch_release(struct free_batch *b)
{
    b->tables->ops->invalidate(b->tables->ctx);
    for (unsigned i = 0; i < b->n; i++)
        b->tables->ops->free_table(b->tables->ctx, b->frames[i]);
    b->n = 0;
}

static void batch_add(struct free_batch *b, uint64_t frame)
{
    if (b->n == FREE_BATCH)
        batch_release(b);
    b->frames[b->n++] = frame;
}

static bool table_empty(const uint64_t *entries)
{
    for (unsigned i = 0; i < ENTRIES; i++)
        if (entries[i] & VTD_SL_PRESENT)
            return false;
    return true;
}

/* Clears [iova, end) below `entries` (a table at `level`); true if the
 * table is empty afterwards. */
static bool unmap_level(struct vtd_tables *t, uint64_t *entries, unsigned level, uint64_t iova, uint64_t end,
                        struct free_batch *batch)
{
    uint64_t span = 1ull << level_shift(level);
    for (uint64_t va = iova; va < end;) {
        uint64_t next = (va | (span - 1)) + 1;
        if (next > end || next < va)
            next = end;
        uint64_t *e = &entries[index_at(va, level)];
        if (!(*e & VTD_SL_PRESENT)) {
            va = next;
            continue;
        }
        if (level == 1 || (*e & VTD_SL_PS)) {
            if (level > 1 && ((va & (span - 1)) || next - va != span))
                panic("iommu: unmap of part of a 2 MiB mapping at iova %#llx", (unsigned long long)va);
            set_entry(t, e, 0);
        } else if (unmap_level(t, table_of(t, *e), level - 1, va, next, batch)) {
            uint64_t child = *e & VTD_SL_ADDR;
            set_entry(t, e, 0);
            batch_add(batch, child);
        }
        va = next;
    }
    return table_empty(entries);
}

void vtd_tables_unmap(struct vtd_tables *t, uint64_t iova, uint64_t size)
{
    VERIFY(((iova | size) & (VTD_PAGE_SIZE - 1)) == 0 && iova + size >= iova);
    struct free_batch batch = { .tables = t };
    if (size)
        unmap_level(t, t->ops->table(t->ctx, t->root), t->levels, iova, iova + size, &batch);
    batch_release(&batch);
}

bool vtd_tables_translate(const struct vtd_tables *t, uint64_t iova, uint64_t *phys, bool *writable)
{
    const uint64_t *entries = t->ops->table(t->ctx, t->root);
    for (unsigned level = t->levels; level >= 1; level--) {
        uint64_t e = entries[index_at(iova, level)];
        if (!(e & VTD_SL_PRESENT))
            return false;
        if (level == 1 || (e & VTD_SL_PS)) {
            uint64_t offset = iova & ((1ull << level_shift(level)) - 1);
            *phys = (e & VTD_SL_ADDR & ~((1ull << level_shift(level)) - 1)) + offset;
            *writable = e & VTD_SL_W;
            return true;
        }
        entries = table_of(t, e);
    }
    return false;
}
