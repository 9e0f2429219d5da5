/*
 * Kernel layer: handle tables (see kernel/handle.h), one generation-tagged
 * ID table (common/idtable.h) per process whose pages come from the kernel
 * pool, charged to the process's account. A slot's tag holds the handle's
 * type and rights (handle_tag).
 */
#include <abi/errno.h>
#include <kernel/console.h>
#include <kernel/handle.h>
#include <kernel/kmem.h>

static int page_get(void *ctx, void **page) { return kmem_frame_alloc(ctx, page); }
static void page_put(void *ctx, void *page) { kmem_frame_free(ctx, page); }

int handle_table_init(struct handle_table *t, struct account *account)
{
    const struct id_pages provider = { page_get, page_put, account };
    return idt_init(&t->ids, HANDLE_PAGES_MAX, &provider);
}

void handle_table_destroy(struct handle_table *t)
{
    VERIFY3U(t->ids.used, ==, 0);
    idt_destroy(&t->ids);
}

void handle_fill(struct handle_table *t, handle_t h, void *object, enum handle_type type, rights_t rights)
{
    struct id_slot *e = idt_slot(&t->ids, h);
    VERIFY(e && handle_tag_type(e->tag) == HANDLE_RESERVED);
    e->object = object;
    e->tag = handle_tag(type, rights);
}

void *handle_lookup(struct handle_table *t, handle_t h, enum handle_type type)
{
    struct id_slot *e = idt_slot(&t->ids, h);
    return e && handle_tag_type(e->tag) == type ? e->object : 0;
}

bool handle_describe(struct handle_table *t, handle_t h, enum handle_type *type, rights_t *rights)
{
    struct id_slot *e = idt_slot(&t->ids, h);
    if (!e || handle_tag_type(e->tag) == HANDLE_RESERVED)
        return false;
    *type = handle_tag_type(e->tag);
    *rights = handle_tag_rights(e->tag);
    return true;
}

void handle_renew(struct handle_table *t, handle_t h, rights_t rights)
{
    struct id_slot *e = idt_slot(&t->ids, h);
    VERIFY(e);
    e->tag = handle_tag(handle_tag_type(e->tag), rights);
}

void handle_restrict(struct handle_table *t, handle_t h, rights_t keep)
{
    struct id_slot *e = idt_slot(&t->ids, h);
    VERIFY(e);
    e->tag = handle_tag(handle_tag_type(e->tag), handle_tag_rights(e->tag) & keep);
}

void handle_table_drain(struct handle_table *t, void (*fn)(void *object, enum handle_type type, rights_t rights))
{
    uint64_t cursor = 0, h;
    struct id_slot *e;
    while ((h = idt_next(&t->ids, &cursor, &e)) != 0) {
        enum handle_type type = handle_tag_type(e->tag);
        rights_t rights = handle_tag_rights(e->tag);
        void *object = idt_free(&t->ids, h);
        if (type != HANDLE_RESERVED)
            fn(object, type, rights);
    }
}
