/*
 * Kernel layer: handle tables (see kernel/handle.h). One pool frame per
 * process holds the slots; lookup is an index and a generation compare.
 */
#include <abi/errno.h>
#include <arch/layout.h>
#include <common/string.h>
#include <kernel/console.h>
#include <kernel/handle.h>
#include <kernel/pool.h>

_Static_assert(sizeof(struct handle_entry) * (HANDLE_TABLE_SLOTS + 1) <= PAGE_SIZE, "handle table fits a frame");

int handle_table_init(struct handle_table *t)
{
    uint64_t frame = pool_alloc_frame();
    if (!frame)
        return -ENOMEM;
    t->entries = phys_to_virt(frame);
    memset(t->entries, 0, PAGE_SIZE);
    for (unsigned i = 0; i < HANDLE_TABLE_SLOTS; i++)
        t->entries[i].generation = 1;
    t->used = 0;
    return 0;
}

void handle_table_destroy(struct handle_table *t)
{
    if (!t->entries)
        return;
    VERIFY3U(t->used, ==, 0);
    pool_free_frame(virt_to_phys(t->entries));
    t->entries = 0;
}

int handle_install(struct handle_table *t, void *object, enum handle_type type, handle_t *out)
{
    for (unsigned i = 0; i < HANDLE_TABLE_SLOTS; i++) {
        struct handle_entry *e = &t->entries[i];
        if (e->type != HANDLE_FREE)
            continue;
        e->object = object;
        e->type = (uint16_t)type;
        t->used++;
        *out = ((uint64_t)e->generation << 32) | (i + 1);
        return 0;
    }
    return -ENOMEM;
}

static struct handle_entry *entry_of(struct handle_table *t, handle_t h)
{
    uint64_t slot = (h & 0xffffffffu);
    if (slot == 0 || slot > HANDLE_TABLE_SLOTS || !t->entries)
        return 0;
    struct handle_entry *e = &t->entries[slot - 1];
    if (e->type == HANDLE_FREE || e->generation != (uint32_t)(h >> 32))
        return 0;
    return e;
}

void *handle_lookup(struct handle_table *t, handle_t h, enum handle_type type)
{
    struct handle_entry *e = entry_of(t, h);
    return e && e->type == type ? e->object : 0;
}

void handle_set_object(struct handle_table *t, handle_t h, void *object)
{
    struct handle_entry *e = entry_of(t, h);
    VERIFY(e && !e->object);
    e->object = object;
}

static void *release(struct handle_table *t, struct handle_entry *e, enum handle_type *type)
{
    void *object = e->object;
    if (type)
        *type = (enum handle_type)e->type;
    e->object = 0;
    e->type = HANDLE_FREE;
    e->generation++;
    if (e->generation == 0)
        e->generation = 1;
    t->used--;
    return object;
}

void *handle_remove(struct handle_table *t, handle_t h, enum handle_type *type)
{
    struct handle_entry *e = entry_of(t, h);
    return e ? release(t, e, type) : 0;
}

void handle_table_drain(struct handle_table *t, void (*fn)(void *object, enum handle_type type))
{
    if (!t->entries)
        return;
    for (unsigned i = 0; i < HANDLE_TABLE_SLOTS; i++) {
        struct handle_entry *e = &t->entries[i];
        if (e->type == HANDLE_FREE)
            continue;
        enum handle_type type;
        void *object = release(t, e, &type);
        fn(object, type);
    }
}
