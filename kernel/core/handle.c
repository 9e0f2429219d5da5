/*
 * Kernel layer: handle tables (see kernel/handle.h), one generation-tagged
 * ID table (common/idtable.h) per process whose pages come from the kernel
 * pool, charged to the process's account. A slot's tag holds the handle's
 * type (low 16 bits, never 0 while live) and rights (high 16 bits).
 */
#include <abi/errno.h>
#include <kernel/console.h>
#include <kernel/handle.h>
#include <kernel/kmem.h>

static uint32_t make_tag(enum handle_type type, rights_t rights) { return (uint32_t)type | (rights << 16); }
static enum handle_type tag_type(uint32_t tag) { return (enum handle_type)(tag & 0xffffu); }
static rights_t tag_rights(uint32_t tag) { return tag >> 16; }

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

int handle_install(struct handle_table *t, void *object, enum handle_type type, rights_t rights, handle_t *out)
{
    return idt_alloc(&t->ids, object, make_tag(type, rights), out);
}

void handle_fill(struct handle_table *t, handle_t h, void *object, enum handle_type type, rights_t rights)
{
    struct id_slot *e = idt_slot(&t->ids, h);
    VERIFY(e && tag_type(e->tag) == HANDLE_RESERVED);
    e->object = object;
    e->tag = make_tag(type, rights);
}

int handle_get(struct handle_table *t, handle_t h, enum handle_type type, rights_t need, void **object,
               rights_t *rights)
{
    struct id_slot *e = idt_slot(&t->ids, h);
    if (!e || tag_type(e->tag) != type)
        return -EBADH;
    if ((tag_rights(e->tag) & need) != need)
        return -EPERM;
    *object = e->object;
    if (rights)
        *rights = tag_rights(e->tag);
    return 0;
}

void *handle_lookup(struct handle_table *t, handle_t h, enum handle_type type)
{
    struct id_slot *e = idt_slot(&t->ids, h);
    return e && tag_type(e->tag) == type ? e->object : 0;
}

bool handle_describe(struct handle_table *t, handle_t h, enum handle_type *type, rights_t *rights)
{
    struct id_slot *e = idt_slot(&t->ids, h);
    if (!e || tag_type(e->tag) == HANDLE_RESERVED)
        return false;
    *type = tag_type(e->tag);
    *rights = tag_rights(e->tag);
    return true;
}

void handle_restrict(struct handle_table *t, handle_t h, rights_t keep)
{
    struct id_slot *e = idt_slot(&t->ids, h);
    VERIFY(e);
    e->tag = make_tag(tag_type(e->tag), tag_rights(e->tag) & keep);
}

void *handle_remove(struct handle_table *t, handle_t h, enum handle_type *type)
{
    struct id_slot *e = idt_slot(&t->ids, h);
    if (!e)
        return 0;
    if (type)
        *type = tag_type(e->tag);
    return idt_free(&t->ids, h);
}

void handle_table_drain(struct handle_table *t, void (*fn)(void *object, enum handle_type type, rights_t rights))
{
    uint64_t cursor = 0, h;
    struct id_slot *e;
    while ((h = idt_next(&t->ids, &cursor, &e)) != 0) {
        enum handle_type type = tag_type(e->tag);
        rights_t rights = tag_rights(e->tag);
        void *object = idt_free(&t->ids, h);
        if (type != HANDLE_RESERVED)
            fn(object, type, rights);
    }
}
