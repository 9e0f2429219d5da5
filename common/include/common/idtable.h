/*
 * Common layer: generation-tagged ID tables. An ID is (generation << 32 |
 * slot + 1); a slot's generation advances each time it is freed, so an ID
 * that outlived its object never names the slot's next one, and 0 is never
 * an ID. The kernel names handles, segments (sids) and processes (pids)
 * this way.
 *
 * Slots live in pages of ID_SLOTS_PER_PAGE, reached through a directory
 * page; a page is added only when no slot is free, up to max_pages, and
 * pages stay until the table is destroyed. Free slots form a list, so
 * allocation and lookup are O(1). Pages come from the caller's provider
 * (the kernel's pool, charged to an account; malloc in the host tests), so
 * running out is an error for the caller, never a crash.
 *
 * Each slot carries a 32-bit tag of the caller's (handles keep their type
 * and rights there); tag 0 marks a free slot, so live tags are nonzero.
 * Slot 0xffffffff is never handed out: IDs with it are reserved for
 * sentinels such as HANDLE_SELF.
 */
#ifndef COMMON_IDTABLE_H
#define COMMON_IDTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ID_SLOTS_PER_PAGE  256u
#define ID_DIRECTORY_SLOTS 512u /* pages a directory page can point to */

struct id_slot {
    void *object; /* when free: the next free slot + 1 (0: none), as an integer */
    uint32_t generation;
    uint32_t tag; /* 0: free */
};

/* The page provider: 4096-byte zeroed pages; get returns 0 (and the
 * provider's error in *err) when it has none. */
struct id_pages {
    int (*get)(void *ctx, void **page);
    void (*put)(void *ctx, void *page);
    void *ctx;
};

struct id_table {
    struct id_slot **pages; /* the directory: a provider page, or the caller's array */
    bool own_directory;     /* the directory came from the provider */
    uint32_t npages, max_pages;
    uint32_t free_head; /* slot + 1, 0: none free */
    uint32_t used;
    struct id_pages provider;
};

/* max_pages: at most ID_DIRECTORY_SLOTS. Takes the directory page. */
int idt_init(struct id_table *t, uint32_t max_pages, const struct id_pages *provider);
/* The same over a directory array of max_pages entries the caller keeps
 * (for tables larger than one directory page). */
void idt_init_with_directory(struct id_table *t, struct id_slot **directory, uint32_t max_pages,
                             const struct id_pages *provider);
/* Gives every page back; the caller has freed every ID (or does not care). */
void idt_destroy(struct id_table *t);
/* The slot of a slot index below npages * ID_SLOTS_PER_PAGE. */
static inline struct id_slot *idt_slot_at(const struct id_table *t, uint32_t slot)
{
    return &t->pages[slot / ID_SLOTS_PER_PAGE][slot % ID_SLOTS_PER_PAGE];
}

/* Takes the first free slot (there is one) for object. */
static inline void idt_take_free_slot(struct id_table *t, void *object, uint32_t tag, uint64_t *id)
{
    uint32_t slot = t->free_head - 1;
    struct id_slot *e = idt_slot_at(t, slot);
    t->free_head = (uint32_t)(uintptr_t)e->object;
    e->object = object;
    e->tag = tag;
    t->used++;
    *id = ((uint64_t)e->generation << 32) | (slot + 1);
}

/* idt_alloc when no slot is free: grows the table first. */
int idt_alloc_after_growing(struct id_table *t, void *object, uint32_t tag, uint64_t *id);

/* A new ID for object with a nonzero tag: 0, or -ENOMEM (table at its
 * maximum) or the provider's error, having changed nothing. Inline: a
 * segment that changes hands takes a handle slot, and a free one is a few
 * loads and stores; growing is out of line. */
static inline int idt_alloc(struct id_table *t, void *object, uint32_t tag, uint64_t *id)
{
    if (!t->free_head)
        return idt_alloc_after_growing(t, object, tag, id);
    idt_take_free_slot(t, object, tag, id);
    return 0;
}

/* The live slot an ID names, or 0. Inline: every handle lookup, and so
 * every message, goes through it. An ID with slot 0 wraps to UINT32_MAX,
 * past any table's slots (idt_init_with_directory keeps the reserved slot
 * out of reach). */
static inline struct id_slot *idt_slot(const struct id_table *t, uint64_t id)
{
    uint32_t slot = (uint32_t)id - 1;
    if (slot >= t->npages * ID_SLOTS_PER_PAGE)
        return NULL;
    struct id_slot *e = idt_slot_at(t, slot);
    if (e->tag == 0 || e->generation != (uint32_t)(id >> 32))
        return NULL;
    return e;
}
/* Frees a live ID; returns its object. */
void *idt_free(struct id_table *t, uint64_t id);
/* The same for the slot e = idt_slot(t, id) the caller already holds. */
static inline void *idt_free_slot(struct id_table *t, uint64_t id, struct id_slot *e)
{
    void *object = e->object;
    e->tag = 0;
    if (++e->generation == 0)
        e->generation = 1;
    e->object = (void *)(uintptr_t)t->free_head;
    t->free_head = (uint32_t)(id & 0xffffffffu);
    t->used--;
    return object;
}
/* Iterates live slots: *cursor starts at 0; returns the next live slot's
 * ID (its slot in *slot) or 0 at the end. Freeing the returned ID during
 * iteration is allowed. */
uint64_t idt_next(const struct id_table *t, uint64_t *cursor, struct id_slot **slot);

#endif
