/*
 * Common layer: generation-tagged ID tables (see common/idtable.h). Used by
 * the kernel for handles, sids and pids, and by the host tests.
 */
#include <common/idtable.h>
#include <common/string.h>

#define ID_ENOMEM        (-2) /* -ENOMEM (abi/errno.h), without pulling the ABI into common/ */
#define ID_SLOT_RESERVED 0xffffffffu

_Static_assert(sizeof(struct id_slot) * ID_SLOTS_PER_PAGE == 4096, "a page of slots");
_Static_assert(sizeof(struct id_slot *) * ID_DIRECTORY_SLOTS == 4096, "a page of pages");
_Static_assert((uint64_t)ID_SLOTS_PER_PAGE *ID_DIRECTORY_SLOTS < ID_SLOT_RESERVED, "the reserved slot is unreachable");

int idt_init(struct id_table *t, uint32_t max_pages, const struct id_pages *provider)
{
    *t = (struct id_table){ .max_pages = max_pages < ID_DIRECTORY_SLOTS ? max_pages : ID_DIRECTORY_SLOTS,
                            .lowest_free = ID_NO_PAGE,
                            .generation_floor = 1,
                            .provider = *provider };
    t->with_free = t->own_with_free;
    void *dir;
    int err = provider->get(provider->ctx, &dir);
    if (err)
        return err;
    t->pages = dir;
    t->own_directory = true;
    return 0;
}

void idt_init_with_directory(struct id_table *t, struct id_slot **directory, uint64_t *with_free, uint32_t max_pages,
                             const struct id_pages *provider)
{
    *t = (struct id_table){ .pages = directory,
                            .with_free = with_free,
                            .max_pages = max_pages,
                            .lowest_free = ID_NO_PAGE,
                            .generation_floor = 1,
                            .provider = *provider };
    /* Slots past the reserved one would make IDs that collide with it. */
    if ((uint64_t)t->max_pages * ID_SLOTS_PER_PAGE >= ID_SLOT_RESERVED)
        t->max_pages = (uint32_t)((ID_SLOT_RESERVED - 1) / ID_SLOTS_PER_PAGE);
}

void idt_destroy(struct id_table *t)
{
    if (!t->pages)
        return;
    for (uint32_t i = 0; i < t->npages; i++)
        t->provider.put(t->provider.ctx, t->pages[i]);
    if (t->own_directory)
        t->provider.put(t->provider.ctx, t->pages);
    t->pages = NULL;
    t->npages = 0;
    t->lowest_free = ID_NO_PAGE;
}

static uint32_t free_in(const struct id_table *t, uint32_t page) { return t->pages[page][0].generation; }

static void mark_with_free(struct id_table *t, uint32_t page, bool has)
{
    uint64_t bit = 1ull << (page % 64);
    if (has)
        t->with_free[page / 64] |= bit;
    else
        t->with_free[page / 64] &= ~bit;
}

/* The lowest page at or past `from` with a free slot, or ID_NO_PAGE. */
static uint32_t next_with_free(const struct id_table *t, uint32_t from)
{
    for (uint32_t w = from / 64; w < ID_BITMAP_WORDS(t->npages); w++) {
        uint64_t bits = t->with_free[w];
        if (w == from / 64)
            bits &= ~0ull << (from % 64);
        if (bits)
            return w * 64 + (uint32_t)__builtin_ctzll(bits);
    }
    return ID_NO_PAGE;
}

void idt_page_filled(struct id_table *t, uint32_t page)
{
    mark_with_free(t, page, false);
    t->lowest_free = next_with_free(t, page + 1);
}

/* Gives back the top pages while nothing in them is live, but keeps an
 * empty top page above a full one: the next allocation would take it
 * again, and a table at that edge would otherwise take and give a page on
 * every allocation and free. A page with a slot past ID_GENERATION_KEEP is
 * kept too: the floor it would leave would bring every regrown slot that
 * close to wrapping round to the IDs it issued before. */
static void give_back_top(struct id_table *t)
{
    while (t->npages > 0) {
        uint32_t top = t->npages - 1;
        if (free_in(t, top) != ID_USABLE_PER_PAGE || (top > 0 && free_in(t, top - 1) == 0))
            return;
        struct id_slot *slots = t->pages[top];
        uint32_t highest = 0;
        for (uint32_t i = 1; i < ID_SLOTS_PER_PAGE; i++)
            if (slots[i].generation > highest)
                highest = slots[i].generation;
        if (highest >= ID_GENERATION_KEEP)
            return;
        if (highest > t->generation_floor)
            t->generation_floor = highest;
        mark_with_free(t, top, false);
        t->pages[top] = NULL;
        t->npages = top;
        if (t->lowest_free == top)
            t->lowest_free = ID_NO_PAGE; /* it was the only page with a free slot */
        t->provider.put(t->provider.ctx, slots);
    }
}

void idt_page_unfilled(struct id_table *t, uint32_t page)
{
    mark_with_free(t, page, true);
    if (t->lowest_free == ID_NO_PAGE || page < t->lowest_free)
        t->lowest_free = page;
    /* The empty page above it may have been kept for it. */
    if (page + 2 == t->npages)
        give_back_top(t);
}

void idt_page_emptied(struct id_table *t, uint32_t page)
{
    if (page + 1 == t->npages)
        give_back_top(t);
}

static int grow(struct id_table *t)
{
    if (t->npages == t->max_pages)
        return ID_ENOMEM;
    void *raw;
    int err = t->provider.get(t->provider.ctx, &raw);
    if (err)
        return err;
    struct id_slot *page = raw;
    page[0] = (struct id_slot){ .object = (void *)(uintptr_t)1, .generation = ID_USABLE_PER_PAGE, .tag = 0 };
    for (uint32_t i = 1; i < ID_SLOTS_PER_PAGE; i++) {
        page[i].generation = t->generation_floor;
        page[i].tag = 0;
        page[i].object = (void *)(uintptr_t)(i + 1 < ID_SLOTS_PER_PAGE ? i + 1 : 0);
    }
    uint32_t index = t->npages++;
    t->pages[index] = page;
    mark_with_free(t, index, true);
    t->lowest_free = index; /* growing means no lower page had a free slot */
    return 0;
}

int idt_alloc_after_growing(struct id_table *t, void *object, uint32_t tag, uint64_t *id)
{
    int err = grow(t);
    if (err)
        return err;
    idt_take_free_slot(t, object, tag, id);
    return 0;
}

void *idt_free(struct id_table *t, uint64_t id)
{
    struct id_slot *e = idt_slot(t, id);
    return e ? idt_free_slot(t, id, e) : NULL;
}

uint64_t idt_next(const struct id_table *t, uint64_t *cursor, struct id_slot **slot)
{
    uint64_t limit = (uint64_t)t->npages * ID_SLOTS_PER_PAGE;
    while (*cursor < limit) {
        uint32_t i = (uint32_t)(*cursor)++;
        struct id_slot *e = idt_slot_at(t, i);
        if (e->tag != 0) {
            if (slot)
                *slot = e;
            return ((uint64_t)e->generation << 32) | (i + 1);
        }
    }
    return 0;
}
