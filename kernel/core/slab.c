/*
 * Kernel layer: slab caches (see kernel/slab.h). A slab is a pool frame
 * reached through the direct map: a header, then objects. Free objects are
 * linked through their first word. The owning slab of an object is found by
 * rounding its address down to the frame, so free is O(1).
 *
 * Invariants: a slab is on its cache's partial list iff it has a free object
 * and at least one object in use; a slab with no object in use is freed.
 */
#include <arch/arch.h>
#include <common/list.h>
#include <common/string.h>
#include <kernel/console.h>
#include <kernel/pool.h>
#include <kernel/slab.h>

struct slab {
    struct slab_cache *cache;
    struct list_node partial_link; /* on the cache's partial list iff linked */
    void *free;
    unsigned in_use;
};

#define SLAB_HEADER ((sizeof(struct slab) + 15) & ~15ul)

void slab_cache_init(struct slab_cache *c, const char *name, size_t object_size)
{
    *c = (struct slab_cache)SLAB_CACHE(name, object_size);
}

/* Settled on the first slab, so that SLAB_CACHE needs no set-up call. */
static unsigned objects_per_slab(struct slab_cache *c)
{
    if (!c->per_slab) {
        VERIFY(c->object_size >= sizeof(void *) && c->object_size <= PAGE_SIZE - SLAB_HEADER);
        c->per_slab = (unsigned)((PAGE_SIZE - SLAB_HEADER) / c->object_size);
    }
    return c->per_slab;
}

static struct list_node *partial_list(struct slab_cache *c)
{
    if (!c->partial.next)
        list_init(&c->partial);
    return &c->partial;
}

static struct slab *slab_new(struct slab_cache *c)
{
    uint64_t frame = pool_alloc_frame();
    if (!frame)
        return 0;
    struct slab *s = phys_to_virt(frame);
    *s = (struct slab){ .cache = c };
    list_init(&s->partial_link);
    char *obj = (char *)s + SLAB_HEADER;
    for (unsigned i = 0, n = objects_per_slab(c); i < n; i++, obj += c->object_size) {
        *(void **)obj = s->free;
        s->free = obj;
    }
    c->slabs++;
    list_push_front(partial_list(c), &s->partial_link);
    return s;
}

void *slab_alloc(struct slab_cache *c)
{
    struct list_node *first = list_first(partial_list(c));
    struct slab *s = first ? LIST_ENTRY(first, struct slab, partial_link) : slab_new(c);
    if (!s)
        return 0;
    void *obj = s->free;
    s->free = *(void **)obj;
    s->in_use++;
    c->in_use++;
    if (!s->free)
        list_remove(&s->partial_link);
    memset(obj, 0, c->object_size);
    return obj;
}

void slab_free(struct slab_cache *c, void *object)
{
    struct slab *s = (struct slab *)((uint64_t)object & ~(PAGE_SIZE - 1));
    VERIFY(s->cache == c && s->in_use > 0);
    *(void **)object = s->free;
    s->free = object;
    s->in_use--;
    c->in_use--;
    if (s->in_use == 0) {
        list_remove(&s->partial_link);
        c->slabs--;
        s->cache = 0;
        pool_free_frame(virt_to_phys(s));
        return;
    }
    if (!list_linked(&s->partial_link))
        list_push_front(partial_list(c), &s->partial_link);
}
