/*
 * Kernel layer: per-process handle tables. A handle is (generation << 32 |
 * slot + 1); a slot's generation advances whenever it is freed, so a stale
 * handle never names the slot's next object. A foreign, stale, made-up or
 * wrong-typed handle gets -EBADH, the same error as a nonexistent one.
 *
 * Each entry carries rights (abi/rights.h): what the holder may do with the
 * object. Lookups name the rights they need; a handle that names the object
 * but lacks one is -EPERM (its holder knows it holds it, so nothing leaks).
 *
 * The table grows a page of slots at a time (up to HANDLE_TABLE_MAX) and
 * gives back its top pages once nothing in them is live (common/idtable.h);
 * installing and looking up are O(1). The pages are charged to the owning
 * process's account (RES_KMEM).
 */
#ifndef KERNEL_HANDLE_H
#define KERNEL_HANDLE_H

#include <stdbool.h>
#include <stdint.h>
#include <abi/errno.h>
#include <abi/rights.h>
#include <abi/types.h>
#include <common/idtable.h>

struct account;

enum handle_type {
    HANDLE_FREE = 0,
    HANDLE_RESERVED, /* installed, object not yet attached */
    HANDLE_PROCESS,
    HANDLE_THREAD,
    HANDLE_ENDPOINT,
    HANDLE_SEGMENT,
    HANDLE_DEVICE,
    HANDLE_NOTIFICATION,
    HANDLE_IRQ,
};

#define HANDLE_PAGES_MAX 512u
#define HANDLE_TABLE_MAX (ID_USABLE_PER_PAGE * HANDLE_PAGES_MAX)

struct handle_table {
    struct id_table ids; /* pages charged to the owning process's account */
};

int handle_table_init(struct handle_table *t, struct account *account);
/* Frees the table's pages; the caller has removed every handle. */
void handle_table_destroy(struct handle_table *t);
/* Installs `object` with `rights` (0 with HANDLE_RESERVED to reserve a slot
 * first). -ENOMEM, -EDQUOT (no room for a new page of slots). */
static inline int handle_install(struct handle_table *t, void *object, enum handle_type type, rights_t rights,
                                 handle_t *out);
/* Attaches the object to a slot reserved with HANDLE_RESERVED. */
void handle_fill(struct handle_table *t, handle_t h, void *object, enum handle_type type, rights_t rights);
/* The object h names if it is of `type` and carries every right in `need`:
 * 0 with *object set, -EBADH (no such handle of that type), -EPERM (a right
 * is missing). `rights` (may be 0) gets the rights the handle carries. */
static inline int handle_get(struct handle_table *t, handle_t h, enum handle_type type, rights_t need, void **object,
                             rights_t *rights);
/* The object, whatever the rights (kernel-internal lookups); 0 if bad. */
void *handle_lookup(struct handle_table *t, handle_t h, enum handle_type type);
/* The type and rights of a live handle: false if it names nothing. */
bool handle_describe(struct handle_table *t, handle_t h, enum handle_type *type, rights_t *rights);
/* Takes rights away from a live handle (they never come back, but for
 * handle_renew's one case). */
void handle_restrict(struct handle_table *t, handle_t h, rights_t keep);
/* Gives a live handle `rights` outright: only for a segment the memory
 * server holds, which it could as well destroy and make anew with them
 * (SYS_MS_SEG_CHARGE). */
void handle_renew(struct handle_table *t, handle_t h, rights_t rights);
/* Removes the entry; returns the object and its type (or 0 if bad). */
static inline void *handle_remove(struct handle_table *t, handle_t h, enum handle_type *type);
/* Calls fn on each live entry after removing it. */
void handle_table_drain(struct handle_table *t, void (*fn)(void *object, enum handle_type type, rights_t rights));

/* A slot's tag: the handle's type (low 16 bits, never 0 while live) and
 * rights (high 16 bits). */
static inline uint32_t handle_tag(enum handle_type type, rights_t rights) { return (uint32_t)type | (rights << 16); }
static inline enum handle_type handle_tag_type(uint32_t tag) { return (enum handle_type)(tag & 0xffffu); }
static inline rights_t handle_tag_rights(uint32_t tag) { return tag >> 16; }

/* Inline, as the three below: every message looks its endpoint up, and a
 * segment that changes hands installs one handle and removes another. */
static inline int handle_install(struct handle_table *t, void *object, enum handle_type type, rights_t rights,
                                 handle_t *out)
{
    return idt_alloc(&t->ids, object, handle_tag(type, rights), out);
}

static inline void *handle_remove(struct handle_table *t, handle_t h, enum handle_type *type)
{
    struct id_slot *e = idt_slot(&t->ids, h);
    if (!e)
        return 0;
    if (type)
        *type = handle_tag_type(e->tag);
    return idt_free_slot(&t->ids, h, e);
}

static inline int handle_get(struct handle_table *t, handle_t h, enum handle_type type, rights_t need, void **object,
                             rights_t *rights)
{
    struct id_slot *e = idt_slot(&t->ids, h);
    if (!e || handle_tag_type(e->tag) != type)
        return -EBADH;
    if ((handle_tag_rights(e->tag) & need) != need)
        return -EPERM;
    *object = e->object;
    if (rights)
        *rights = handle_tag_rights(e->tag);
    return 0;
}

#endif
