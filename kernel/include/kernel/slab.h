/*
 * Kernel layer: slab caches, the only way the kernel allocates objects
 * (processes, threads, segments, endpoints...). Each slab is one pool frame;
 * an empty slab goes back to the pool at once, so the pool's free count
 * returns to its baseline when the objects are gone.
 */
#ifndef KERNEL_SLAB_H
#define KERNEL_SLAB_H

#include <stddef.h>
#include <stdint.h>
#include <common/list.h>

struct slab;
struct slab_cache {
    const char *name;
    size_t object_size;
    unsigned per_slab;
    struct list_node partial; /* slabs with at least one free object */
    uint64_t in_use;
    uint64_t slabs;
};

/* Objects are 16-byte aligned. A static cache needs no set-up call:
 * `static struct slab_cache c = SLAB_CACHE("name", sizeof(struct x));`
 * (slab_cache_init does the same at run time). */
#define SLAB_OBJECT_SIZE(size) (((size) + 15) & ~(size_t)15)
#define SLAB_CACHE(cache_name, size)                                                                                   \
    {                                                                                                                  \
        .name = (cache_name), .object_size = SLAB_OBJECT_SIZE(size)                                                    \
    }
void slab_cache_init(struct slab_cache *c, const char *name, size_t object_size);
void *slab_alloc(struct slab_cache *c); /* zero-filled, or 0 when the pool is empty */
void slab_free(struct slab_cache *c, void *object);

#endif
