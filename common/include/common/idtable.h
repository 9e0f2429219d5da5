/*
 * Common layer: generation-tagged ID tables. An ID is (generation << 32 |
 * slot + 1); a slot's generation advances each time it is freed, so an ID
 * that outlived its object never names the slot's next one, and 0 is never
 * an ID. The kernel names handles, segments (sids) and processes (pids)
 * this way.
 *
 * Slots live in pages of ID_SLOTS_PER_PAGE, reached through a directory. A
 * page's first slot is its header (the head of the page's own free list and
 * its count of free slots; its tag stays 0, so no ID names it), the rest
 * hold objects. Allocation takes a slot of the lowest page that has one
 * free, so live IDs gather in the low pages and the top ones empty out as
 * their objects go: a top page with nothing live is given back to the
 * provider at once, unless the page below it is full (the next allocation
 * would need it again). So a table that grew for a while shrinks back to
 * what its live IDs need, give or take that one page. A page added again
 * starts its generations past every generation the pages given back had
 * reached, so an ID from before never names an object after. A page with
 * a slot past ID_GENERATION_KEEP (2^31) is not given back: the floor stays
 * below that, and a regrown slot has at least 2^31 frees before its IDs
 * come round, where one never given back has 2^32.
 *
 * Allocation and free are O(1); finding the next page with a free slot when
 * the lowest fills scans a bitmap of them (a bit a page). Pages come from
 * the caller's provider (the kernel's pool, charged to an account; malloc
 * in the host tests), so running out is an error for the caller, never a
 * crash, and nothing is taken back from a live ID: a free only gives pages
 * back, never needs one.
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
#define ID_USABLE_PER_PAGE (ID_SLOTS_PER_PAGE - 1) /* slot 0 is the header */
#define ID_GENERATION_KEEP (1u << 31)              /* pages with a slot this far on stay */
#define ID_DIRECTORY_SLOTS 512u                    /* pages a directory page can point to */
#define ID_NO_PAGE         UINT32_MAX
/* Words of the bitmap of pages with a free slot, for a table of `pages`. */
#define ID_BITMAP_WORDS(pages) (((pages) + 63u) / 64u)

/* A live slot: its object and tag. A free one: object holds the index in
 * its page of the next free slot (0: none), as an integer. A page's header
 * (slot 0): object holds the index of its first free slot, generation its
 * count of free slots, tag 0. */
struct id_slot {
    void *object;
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

/* Not to be copied once initialised (with_free may point into it). */
struct id_table {
    struct id_slot **pages; /* the directory: a provider page, or the caller's array */
    uint64_t *with_free;    /* bit p: page p has a free slot */
    bool own_directory;     /* the directory came from the provider */
    uint32_t npages, max_pages;
    uint32_t lowest_free; /* the lowest page with a free slot, or ID_NO_PAGE */
    uint32_t used;
    uint32_t generation_floor; /* where a page added again starts its generations */
    struct id_pages provider;
    uint64_t own_with_free[ID_BITMAP_WORDS(ID_DIRECTORY_SLOTS)];
};

/* max_pages: at most ID_DIRECTORY_SLOTS. Takes the directory page. */
int idt_init(struct id_table *t, uint32_t max_pages, const struct id_pages *provider);
/* The same over a directory array of max_pages entries and a bitmap of
 * ID_BITMAP_WORDS(max_pages) words the caller keeps, zeroed (for tables
 * larger than one directory page). */
void idt_init_with_directory(struct id_table *t, struct id_slot **directory, uint64_t *with_free, uint32_t max_pages,
                             const struct id_pages *provider);
/* Gives every page back; the caller has freed every ID (or does not care). */
void idt_destroy(struct id_table *t);
/* The slot of a slot index below npages * ID_SLOTS_PER_PAGE. */
static inline struct id_slot *idt_slot_at(const struct id_table *t, uint32_t slot)
{
    return &t->pages[slot / ID_SLOTS_PER_PAGE][slot % ID_SLOTS_PER_PAGE];
}

/* Out of line, the rare turns of alloc and free: the lowest page with a
 * free slot filled up; a full page has a free slot again; page became
 * empty (it may be given back). */
void idt_page_filled(struct id_table *t, uint32_t page);
void idt_page_unfilled(struct id_table *t, uint32_t page);
void idt_page_emptied(struct id_table *t, uint32_t page);

/* Takes a free slot of the lowest page that has one (there is one). */
static inline void idt_take_free_slot(struct id_table *t, void *object, uint32_t tag, uint64_t *id)
{
    uint32_t page = t->lowest_free;
    struct id_slot *slots = t->pages[page];
    uint32_t i = (uint32_t)(uintptr_t)slots[0].object;
    struct id_slot *e = &slots[i];
    slots[0].object = e->object;
    if (--slots[0].generation == 0)
        idt_page_filled(t, page);
    e->object = object;
    e->tag = tag;
    t->used++;
    *id = ((uint64_t)e->generation << 32) | (page * ID_SLOTS_PER_PAGE + i + 1);
}

/* idt_alloc when no slot is free: grows the table first. */
int idt_alloc_after_growing(struct id_table *t, void *object, uint32_t tag, uint64_t *id);

/* A new ID for object with a nonzero tag: 0, or -ENOMEM (table at its
 * maximum) or the provider's error, having changed nothing. Inline: a
 * segment that changes hands takes a handle slot, and a free one is a few
 * loads and stores; growing is out of line. */
static inline int idt_alloc(struct id_table *t, void *object, uint32_t tag, uint64_t *id)
{
    if (t->lowest_free == ID_NO_PAGE)
        return idt_alloc_after_growing(t, object, tag, id);
    idt_take_free_slot(t, object, tag, id);
    return 0;
}

/* The live slot an ID names, or 0. Inline: every handle lookup, and so
 * every message, goes through it. An ID with slot 0 wraps to UINT32_MAX,
 * past any table's slots (idt_init_with_directory keeps the reserved slot
 * out of reach); a header's tag is 0. */
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
/* The same for the slot e = idt_slot(t, id) the caller already holds. The
 * slot's page may be given back, so e is not to be used after. */
static inline void *idt_free_slot(struct id_table *t, uint64_t id, struct id_slot *e)
{
    void *object = e->object;
    uint32_t slot = (uint32_t)(id & 0xffffffffu) - 1;
    uint32_t page = slot / ID_SLOTS_PER_PAGE;
    struct id_slot *header = &t->pages[page][0];
    e->tag = 0;
    if (++e->generation == 0)
        e->generation = 1;
    e->object = header->object;
    header->object = (void *)(uintptr_t)(slot % ID_SLOTS_PER_PAGE);
    t->used--;
    uint32_t free_slots = ++header->generation;
    if (free_slots == 1)
        idt_page_unfilled(t, page);
    else if (free_slots == ID_USABLE_PER_PAGE)
        idt_page_emptied(t, page);
    return object;
}
/* Iterates live slots: *cursor starts at 0; returns the next live slot's
 * ID (its slot in *slot) or 0 at the end. Freeing the returned ID during
 * iteration is allowed. */
uint64_t idt_next(const struct id_table *t, uint64_t *cursor, struct id_slot **slot);

#endif
