/*
 * Kernel layer: per-process handle tables. A handle is (generation << 32 |
 * slot + 1); a slot's generation advances whenever it is freed, so a stale
 * handle never names the slot's next object. A foreign, stale, made-up or
 * wrong-typed handle gets -EBADH, the same error as a nonexistent one.
 *
 * The table grows a page of slots at a time (up to HANDLE_TABLE_MAX); free
 * slots form a list, so installing and looking up are O(1).
 */
#ifndef KERNEL_HANDLE_H
#define KERNEL_HANDLE_H

#include <stdint.h>
#include <abi/types.h>

enum handle_type {
    HANDLE_FREE = 0,
    HANDLE_RESERVED, /* installed, object not yet attached */
    HANDLE_PROCESS,
    HANDLE_THREAD,
    HANDLE_ENDPOINT,
    HANDLE_SEGMENT,
    HANDLE_DEVICE,
};

struct handle_entry {
    void *object;        /* when free: the next free slot + 1 (0: none), as an integer */
    uint32_t generation;
    uint16_t type;
    uint16_t reserved;
};

#define HANDLE_SLOTS_PER_PAGE 256u
#define HANDLE_PAGES_MAX 512u
#define HANDLE_TABLE_MAX (HANDLE_SLOTS_PER_PAGE * HANDLE_PAGES_MAX)

struct handle_table {
    struct handle_entry **pages; /* one pool frame of page pointers */
    uint32_t npages;
    uint32_t free_head;          /* slot + 1, 0: none free */
    uint32_t used;
};

int handle_table_init(struct handle_table *t);
/* Frees the table's pages; the caller has removed every handle. */
void handle_table_destroy(struct handle_table *t);
/* Installs `object` (0 with HANDLE_RESERVED to reserve a slot first). */
int handle_install(struct handle_table *t, void *object, enum handle_type type, handle_t *out);
/* Attaches the object to a slot reserved with HANDLE_RESERVED. */
void handle_fill(struct handle_table *t, handle_t h, void *object, enum handle_type type);
void *handle_lookup(struct handle_table *t, handle_t h, enum handle_type type);
/* Removes the entry; returns the object and its type (or 0 if bad). */
void *handle_remove(struct handle_table *t, handle_t h, enum handle_type *type);
/* Calls fn on each live entry after removing it. */
void handle_table_drain(struct handle_table *t, void (*fn)(void *object, enum handle_type type));

#endif
