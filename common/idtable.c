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
                            .provider = *provider };
    void *dir;
    int err = provider->get(provider->ctx, &dir);
    if (err)
        return err;
    t->pages = dir;
    t->own_directory = true;
    return 0;
}

void idt_init_with_directory(struct id_table *t, struct id_slot **directory, uint32_t max_pages,
                             const struct id_pages *provider)
{
    *t = (struct id_table){ .pages = directory, .max_pages = max_pages, .provider = *provider };
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
    uint32_t first = t->npages * ID_SLOTS_PER_PAGE;
    for (uint32_t i = 0; i < ID_SLOTS_PER_PAGE; i++) {
        page[i].generation = 1;
        page[i].tag = 0;
        uint32_t next = i + 1 < ID_SLOTS_PER_PAGE ? first + i + 2 : t->free_head;
        page[i].object = (void *)(uintptr_t)next;
    }
    t->pages[t->npages++] = page;
    t->free_head = first + 1;
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
