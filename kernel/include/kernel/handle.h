/*
 * Kernel layer: per-process handle tables. A handle is (generation << 32 |
 * slot + 1); a slot's generation advances whenever it is freed, so a stale
 * handle never names the slot's next object. A foreign, stale, made-up or
 * wrong-typed handle gets -EBADH, the same error as a nonexistent one.
 */
#ifndef KERNEL_HANDLE_H
#define KERNEL_HANDLE_H

#include <stdint.h>
#include <abi/types.h>

enum handle_type { HANDLE_FREE = 0, HANDLE_PROCESS, HANDLE_THREAD };

struct handle_entry {
    void *object;
    uint32_t generation;
    uint16_t type;
    uint16_t rights;
};

#define HANDLE_TABLE_SLOTS 255u

struct handle_table {
    struct handle_entry *entries; /* one pool frame */
    unsigned used;
};

int handle_table_init(struct handle_table *t);
void handle_table_destroy(struct handle_table *t); /* caller has closed every handle */
/* Installs `object`; takes over the caller's reference. */
int handle_install(struct handle_table *t, void *object, enum handle_type type, handle_t *out);
/* Points a reserved handle (installed with object 0) at its object. */
void handle_set_object(struct handle_table *t, handle_t h, void *object);
void *handle_lookup(struct handle_table *t, handle_t h, enum handle_type type);
/* Removes the entry; returns the object and its type (or 0 if bad). */
void *handle_remove(struct handle_table *t, handle_t h, enum handle_type *type);
/* Calls fn on each live entry, removing it. */
void handle_table_drain(struct handle_table *t, void (*fn)(void *object, enum handle_type type));

#endif
