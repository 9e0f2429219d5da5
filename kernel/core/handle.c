/*
 * Kernel layer: handle tables (see kernel/handle.h). Slots live in pool
 * frames of HANDLE_SLOTS_PER_PAGE entries, reached through a directory
 * frame; a new frame is added only when no slot is free. The pages stay
 * until the process ends, so a busy process does not churn the pool.
 */
#include <abi/errno.h>
#include <arch/layout.h>
#include <common/string.h>
#include <kernel/console.h>
#include <kernel/handle.h>
#include <kernel/pool.h>

_Static_assert(sizeof(struct handle_entry) * HANDLE_SLOTS_PER_PAGE == PAGE_SIZE, "a page of slots");
_Static_assert(sizeof(struct handle_entry *) * HANDLE_PAGES_MAX == PAGE_SIZE, "a page of pages");

static void *zeroed_frame(void)
{
    uint64_t frame = pool_alloc_frame();
    if (!frame)
        return 0;
    void *p = phys_to_virt(frame);
    memset(p, 0, PAGE_SIZE);
    return p;
}

int handle_table_init(struct handle_table *t)
{
    *t = (struct handle_table){0};
    t->pages = zeroed_frame();
    return t->pages ? 0 : -ENOMEM;
}

void handle_table_destroy(struct handle_table *t)
{
    if (!t->pages)
        return;
    VERIFY3U(t->used, ==, 0);
    for (uint32_t i = 0; i < t->npages; i++)
        pool_free_frame(virt_to_phys(t->pages[i]));
    pool_free_frame(virt_to_phys(t->pages));
    t->pages = 0;
}

static struct handle_entry *slot_entry(struct handle_table *t, uint32_t slot)
{
    return &t->pages[slot / HANDLE_SLOTS_PER_PAGE][slot % HANDLE_SLOTS_PER_PAGE];
}

static int grow(struct handle_table *t)
{
    if (t->npages == HANDLE_PAGES_MAX)
        return -ENOMEM;
    struct handle_entry *page = zeroed_frame();
    if (!page)
        return -ENOMEM;
    uint32_t first = t->npages * HANDLE_SLOTS_PER_PAGE;
    /* Slot 0xffffffff would collide with HANDLE_SELF; the table never gets
     * that far (HANDLE_TABLE_MAX is far smaller). */
    for (uint32_t i = 0; i < HANDLE_SLOTS_PER_PAGE; i++) {
        page[i].generation = 1;
        uint32_t next = i + 1 < HANDLE_SLOTS_PER_PAGE ? first + i + 2 : t->free_head;
        page[i].object = (void *)(uintptr_t)next;
    }
    t->pages[t->npages++] = page;
    t->free_head = first + 1;
    return 0;
}

int handle_install(struct handle_table *t, void *object, enum handle_type type, handle_t *out)
{
    if (!t->free_head) {
        int err = grow(t);
        if (err)
            return err;
    }
    uint32_t slot = t->free_head - 1;
    struct handle_entry *e = slot_entry(t, slot);
    t->free_head = (uint32_t)(uintptr_t)e->object;
    e->object = object;
    e->type = (uint16_t)type;
    t->used++;
    *out = ((uint64_t)e->generation << 32) | (slot + 1);
    return 0;
}

static struct handle_entry *entry_of(struct handle_table *t, handle_t h)
{
    uint64_t slot = h & 0xffffffffu;
    if (slot == 0 || !t->pages || slot > (uint64_t)t->npages * HANDLE_SLOTS_PER_PAGE)
        return 0;
    struct handle_entry *e = slot_entry(t, (uint32_t)slot - 1);
    if (e->type == HANDLE_FREE || e->generation != (uint32_t)(h >> 32))
        return 0;
    return e;
}

void handle_fill(struct handle_table *t, handle_t h, void *object, enum handle_type type)
{
    struct handle_entry *e = entry_of(t, h);
    VERIFY(e && e->type == HANDLE_RESERVED);
    e->object = object;
    e->type = (uint16_t)type;
}

void *handle_lookup(struct handle_table *t, handle_t h, enum handle_type type)
{
    struct handle_entry *e = entry_of(t, h);
    return e && e->type == type ? e->object : 0;
}

static void *release(struct handle_table *t, struct handle_entry *e, uint32_t slot, enum handle_type *type)
{
    void *object = e->object;
    if (type)
        *type = (enum handle_type)e->type;
    e->type = HANDLE_FREE;
    if (++e->generation == 0)
        e->generation = 1;
    e->object = (void *)(uintptr_t)t->free_head;
    t->free_head = slot + 1;
    t->used--;
    return object;
}

void *handle_remove(struct handle_table *t, handle_t h, enum handle_type *type)
{
    struct handle_entry *e = entry_of(t, h);
    return e ? release(t, e, (uint32_t)(h & 0xffffffffu) - 1, type) : 0;
}

void handle_table_drain(struct handle_table *t, void (*fn)(void *object, enum handle_type type))
{
    if (!t->pages)
        return;
    for (uint32_t slot = 0; slot < t->npages * HANDLE_SLOTS_PER_PAGE; slot++) {
        struct handle_entry *e = slot_entry(t, slot);
        if (e->type == HANDLE_FREE)
            continue;
        enum handle_type type;
        void *object = release(t, e, slot, &type);
        if (type != HANDLE_RESERVED)
            fn(object, type);
    }
}
