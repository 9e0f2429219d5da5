/*
 * libsys layer: a vmem-style resource arena (Bonwick & Adams, "Magazines and
 * Vmem", USENIX 2001) for integer IDs and address ranges. Used by servers and
 * by libsys itself (handle numbers, virtual address ranges); it calls nothing
 * and allocates nothing: boundary tags come from a caller-supplied tag store,
 * hash buckets from a caller-supplied array. Theory statement: top of
 * libsys/src/arena.c. NOT thread-safe (an arena and its tag store must be
 * used by one thread at a time).
 *
 * Errors: -EINVAL bad arguments; -ENOSPC the arena has no free range that
 * satisfies the request; -ENOMEM the tag store is exhausted (the arena is
 * unchanged; give the store more tags); -ENOENT free of an address that is
 * not allocated; -EEXIST arena_add overlapping an existing span; -EBUSY
 * arena_destroy with allocations outstanding.
 */
#ifndef LIBSYS_ARENA_H
#define LIBSYS_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define ARENA_INSTANTFIT 0x1u /* constant time; the default */
#define ARENA_BESTFIT    0x2u /* smallest fitting free segment; O(list) */
#define ARENA_LISTS      64u  /* free list i: sizes in [2^i, 2^(i+1)) */

struct arena_tag {
    struct arena_tag *anext, *aprev; /* all tags of the arena, by address */
    struct arena_tag *next, *prev;   /* free list, or hash chain (next only) */
    uint64_t base, size;
    uint8_t type; /* ARENA_TAG_SPAN / _FREE / _ALLOC */
};

/* A pool of unused tags; several arenas may share one. */
struct arena_tagstore {
    struct arena_tag *free;
    size_t nfree, total;
};

struct arena_stats {
    uint64_t total;        /* bytes (units) added with arena_add */
    uint64_t in_use;       /* allocated */
    uint64_t free;         /* total - in_use */
    uint64_t largest_free; /* biggest free segment */
    size_t allocs;         /* live allocations */
    size_t spans;
    size_t free_segments;
    size_t tag_failures; /* requests refused because the store was empty */
};

struct arena {
    const char *name;
    uint64_t quantum;
    struct arena_tagstore *store;
    struct arena_tag head; /* sentinel of the address-ordered list */
    struct arena_tag *lists[ARENA_LISTS];
    uint64_t list_map; /* bit i: lists[i] non-empty */
    struct arena_tag **hash;
    size_t hash_mask; /* nbuckets - 1 */
    struct arena_stats st;
};

/* Puts n tags (caller's storage) into a store. */
void arena_tagstore_init(struct arena_tagstore *ts, struct arena_tag *tags, size_t n);
/* Adds more tags to a store. */
void arena_tagstore_add(struct arena_tagstore *ts, struct arena_tag *tags, size_t n);

/*
 * quantum: a power of two; every base, size and alignment is a multiple of
 * it. buckets: nbuckets (a power of two) pointers; for O(1) frees keep it at
 * least the expected number of live allocations. -EINVAL on bad arguments.
 */
int arena_create(struct arena *a, const char *name, uint64_t quantum, struct arena_tagstore *store,
                 struct arena_tag **buckets, size_t nbuckets);
/* Returns every tag to the store; -EBUSY (nothing done) if allocations remain. */
int arena_destroy(struct arena *a);

/* Adds [base, base+size) as a span. Needs 2 tags. */
int arena_add(struct arena *a, uint64_t base, uint64_t size);
/* size is rounded up to the quantum. Needs up to 1 tag. *out = the base. */
int arena_alloc(struct arena *a, uint64_t size, unsigned flags, uint64_t *out);
/*
 * Constrained allocation: the result r satisfies r % align == phase, and, if
 * nocross != 0, [r, r+size) does not cross a multiple of nocross. align and
 * nocross are 0 or powers of two >= quantum; phase < align (0 if align is 0);
 * nocross >= size and a multiple of align. Needs up to 2 tags.
 */
int arena_xalloc(struct arena *a, uint64_t size, uint64_t align, uint64_t phase, uint64_t nocross, unsigned flags,
                 uint64_t *out);
/* Frees exactly what was allocated: same address, same size (rounded). */
int arena_free(struct arena *a, uint64_t addr, uint64_t size);
void arena_stats(const struct arena *a, struct arena_stats *out);
/* 0 if every invariant holds, -EINVAL otherwise. O(tags). */
int arena_check(const struct arena *a);

#endif
