/*
 * libsys layer: vmem-style resource arenas for IDs and address ranges.
 * Called by servers and libsys (handle numbers, virtual address ranges,
 * anything that is "a range of integers"); calls nothing, allocates nothing.
 * Interface and error codes: <libsys/arena.h>.
 *
 * BIG THEORY STATEMENT (after Bonwick & Adams, "Magazines and Vmem", 2001)
 *
 * 1. Concepts. An arena manages integers in units of a quantum (1 for IDs,
 *    4096 for addresses). arena_add() contributes a span [base, base+size);
 *    each span is tiled by segments, each either free or allocated. Every
 *    span and segment is described by a boundary tag (struct arena_tag).
 *
 * 2. Data structures.
 *    - Address list: one circular doubly-linked list through every tag,
 *      sorted by address, with a sentinel (a->head). A span tag comes right
 *      before the segments that tile it. Coalescing looks only at the two
 *      list neighbours of a freed segment, so it is O(1); it never merges
 *      across a span boundary because the neighbour there is a span tag (or
 *      the sentinel), not a free segment.
 *    - Free lists: lists[i] holds free segments whose size is in
 *      [2^i, 2^(i+1)); list_map has bit i set iff lists[i] is non-empty.
 *    - Hash table of allocated segments keyed by base address (Fibonacci
 *      hashing of base/quantum into caller-supplied buckets, chained
 *      through tag->next). arena_free finds the tag in O(1) expected.
 *    - Tag store: a free list of unused tags in caller-supplied storage.
 *      An operation takes at most 2 tags (a split into three pieces, or a
 *      span plus its free segment) and checks they are there before it
 *      changes anything.
 *
 * 3. Policies.
 *    - Instant fit (default): take the first segment on the list of the
 *      next power of two >= size; every segment there fits, so this is one
 *      count-trailing-zeros and a list pop. If those lists are all empty, a
 *      fitting segment can only be on list floor(log2(size)), which is
 *      searched first-fit: an allocation fails only if nothing fits.
 *      With alignment, the same is done for size + align - quantum (the
 *      worst-case padding), falling back to a search.
 *    - Best fit: the smallest fitting segment of the lowest list with a fit
 *      (segments on higher lists are all larger). O(segments on the list).
 *    A segment is carved at its lowest suitable address; the remainders on
 *    either side become free segments.
 *
 * 4. Invariants (arena_check verifies all of them).
 *    - Address list sorted; spans disjoint; the segments after a span tag
 *      tile it exactly; bases and sizes are multiples of the quantum.
 *    - No two free segments are adjacent in the address list.
 *    - Every free segment is on lists[floor(log2(size))], nothing else is on
 *      any list, and list_map agrees with the lists.
 *    - Every allocated segment is in the hash table under its base, and the
 *      table holds nothing else.
 *    - Statistics equal the sums over the tags.
 *
 * 5. Failure modes. Bad arguments: -EINVAL. Nothing fits: -ENOSPC. Tag
 *    store empty: -ENOMEM and tag_failures counted. Free of an address that
 *    is not allocated: -ENOENT; with the wrong size: -EINVAL. In every error
 *    case the arena is unchanged. Spans may not wrap past 2^64 - 1.
 *
 * 6. Not implemented from the paper: quantum caches, importing from a
 *    source arena, sleeping allocations. Not thread-safe.
 */
#include <libsys/arena.h>
#include <abi/errno.h>
#include "bins.h"

enum { TAG_SPAN = 1, TAG_FREE = 2, TAG_ALLOC = 3, TAG_SENTINEL = 4 };

#define GOLDEN 0x9e3779b97f4a7c15ull

static inline unsigned floor_log2(uint64_t v) { return 63u - (unsigned)__builtin_clzll(v); }
static inline unsigned ceil_log2(uint64_t v) { return v <= 1 ? 0 : 64u - (unsigned)__builtin_clzll(v - 1); }
static inline bool is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

/* ---- tag store ---- */

void arena_tagstore_init(struct arena_tagstore *ts, struct arena_tag *tags, size_t n)
{
    ts->free = NULL;
    ts->nfree = ts->total = 0;
    arena_tagstore_add(ts, tags, n);
}

void arena_tagstore_add(struct arena_tagstore *ts, struct arena_tag *tags, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tags[i].next = ts->free;
        ts->free = &tags[i];
    }
    ts->nfree += n;
    ts->total += n;
}

static struct arena_tag *tag_get(struct arena *a)
{
    struct arena_tag *t = a->store->free; /* caller checked nfree */
    a->store->free = t->next;
    a->store->nfree--;
    return t;
}

static void tag_put(struct arena *a, struct arena_tag *t)
{
    t->type = 0;
    t->next = a->store->free;
    a->store->free = t;
    a->store->nfree++;
}

static bool tags_available(struct arena *a, size_t n)
{
    if (a->store->nfree >= n)
        return true;
    a->st.tag_failures++;
    return false;
}

/* ---- address list ---- */

static void alist_insert_before(struct arena_tag *pos, struct arena_tag *t)
{
    t->anext = pos;
    t->aprev = pos->aprev;
    pos->aprev->anext = t;
    pos->aprev = t;
}

static void alist_remove(struct arena_tag *t)
{
    t->aprev->anext = t->anext;
    t->anext->aprev = t->aprev;
}

/* ---- free lists ---- */

static void flist_insert(struct arena *a, struct arena_tag *t)
{
    unsigned i = floor_log2(t->size);
    t->type = TAG_FREE;
    BINS_PUSH(a->lists, a->list_map, i, t);
    a->st.free_segments++;
}

static void flist_remove(struct arena *a, struct arena_tag *t)
{
    unsigned i = floor_log2(t->size);
    BINS_UNLINK(a->lists, a->list_map, i, t);
    a->st.free_segments--;
}

/* ---- hash of allocated segments ---- */

static struct arena_tag **bucket(const struct arena *a, uint64_t base)
{
    uint64_t h = (base / a->quantum) * GOLDEN;
    return &a->hash[(h >> 32) & a->hash_mask];
}

static struct arena_tag **hash_slot(const struct arena *a, uint64_t base)
{
    struct arena_tag **pp = bucket(a, base);
    while (*pp && (*pp)->base != base)
        pp = &(*pp)->next;
    return pp;
}

/* ---- create / destroy / add ---- */

int arena_create(struct arena *a, const char *name, uint64_t quantum, struct arena_tagstore *store,
                 struct arena_tag **buckets, size_t nbuckets)
{
    if (!a || !store || !buckets || !is_pow2(quantum) || !is_pow2(nbuckets))
        return -EINVAL;
    *a = (struct arena){ .name = name, .quantum = quantum, .store = store, .hash = buckets, .hash_mask = nbuckets - 1 };
    a->head.anext = a->head.aprev = &a->head;
    a->head.type = TAG_SENTINEL;
    for (size_t i = 0; i < nbuckets; i++)
        buckets[i] = NULL;
    return 0;
}

int arena_destroy(struct arena *a)
{
    if (a->st.allocs)
        return -EBUSY;
    while (a->head.anext != &a->head) {
        struct arena_tag *t = a->head.anext;
        alist_remove(t);
        tag_put(a, t);
    }
    for (unsigned i = 0; i < ARENA_LISTS; i++)
        a->lists[i] = NULL;
    a->list_map = 0;
    a->st = (struct arena_stats){ .tag_failures = a->st.tag_failures };
    return 0;
}

int arena_add(struct arena *a, uint64_t base, uint64_t size)
{
    uint64_t q = a->quantum;
    if (!size || (base & (q - 1)) || (size & (q - 1)) || base + size < base || base + size == 0)
        return -EINVAL;
    struct arena_tag *pos = a->head.anext; /* first span tag after the new one */
    for (; pos != &a->head; pos = pos->anext) {
        if (pos->type != TAG_SPAN)
            continue;
        if (base < pos->base + pos->size && pos->base < base + size)
            return -EEXIST;
        if (pos->base > base)
            break;
    }
    if (!tags_available(a, 2))
        return -ENOMEM;
    struct arena_tag *span = tag_get(a), *seg = tag_get(a);
    span->type = TAG_SPAN;
    span->base = seg->base = base;
    span->size = seg->size = size;
    alist_insert_before(pos, span);
    alist_insert_before(pos, seg);
    flist_insert(a, seg);
    a->st.total += size;
    a->st.free += size;
    a->st.spans++;
    return 0;
}

/* ---- allocation ---- */

/* Lowest r in free segment t meeting the constraints; false if none. */
static bool place(const struct arena_tag *t, uint64_t size, uint64_t align, uint64_t phase, uint64_t nocross,
                  uint64_t *out)
{
    uint64_t start = t->base, end = t->base + t->size; /* end may be 0: 2^64 */
    uint64_t r = start;
    if (align)
        r = start + ((phase - start) & (align - 1));
    if (r < start)
        return false;
    if (nocross && ((r ^ (r + size - 1)) & ~(nocross - 1))) {
        uint64_t next = (r | (nocross - 1)) + 1;
        if (next == 0 || phase + size > nocross)
            return false;
        r = next + phase;
    }
    if (r + size < r || (end != 0 && r + size > end) || r < start)
        return false;
    *out = r;
    return true;
}

/* Searches lists from `first` upward; first fit or best fit. */
static struct arena_tag *search(struct arena *a, unsigned first, uint64_t size, uint64_t align, uint64_t phase,
                                uint64_t nocross, bool best, uint64_t *out)
{
    for (unsigned i = first; i < ARENA_LISTS; i++) {
        struct arena_tag *found = NULL;
        uint64_t r, found_r = 0;
        for (struct arena_tag *t = a->lists[i]; t; t = t->next) {
            if (!place(t, size, align, phase, nocross, &r))
                continue;
            if (!found || t->size < found->size) {
                found = t;
                found_r = r;
            }
            if (!best)
                break;
        }
        if (found) {
            *out = found_r;
            return found;
        }
    }
    return NULL;
}

/* The first segment of the lowest non-empty list >= i, or NULL. */
static struct arena_tag *instant(struct arena *a, unsigned i)
{
    uint64_t m = i < 64 ? a->list_map & ~((1ull << i) - 1) : 0;
    return m ? a->lists[__builtin_ctzll(m)] : NULL;
}

/* Splits free segment t so that [r, r+size) becomes an allocated segment. */
static void carve(struct arena *a, struct arena_tag *t, uint64_t r, uint64_t size)
{
    uint64_t end = t->base + t->size;
    flist_remove(a, t);
    if (r > t->base) {
        struct arena_tag *l = tag_get(a);
        l->base = t->base;
        l->size = r - t->base;
        alist_insert_before(t, l);
        flist_insert(a, l);
    }
    if (r + size != end) {
        struct arena_tag *rt = tag_get(a);
        rt->base = r + size;
        rt->size = end - (r + size);
        alist_insert_before(t->anext, rt);
        flist_insert(a, rt);
    }
    t->base = r;
    t->size = size;
    t->type = TAG_ALLOC;
    struct arena_tag **b = bucket(a, r);
    t->next = *b;
    *b = t;
    a->st.in_use += size;
    a->st.free -= size;
    a->st.allocs++;
}

int arena_xalloc(struct arena *a, uint64_t size, uint64_t align, uint64_t phase, uint64_t nocross, unsigned flags,
                 uint64_t *out)
{
    uint64_t q = a->quantum;
    if (!out || !size || size + (q - 1) < size || (flags & ~(ARENA_INSTANTFIT | ARENA_BESTFIT)) ||
        (flags & ARENA_INSTANTFIT && flags & ARENA_BESTFIT))
        return -EINVAL;
    size = (size + q - 1) & ~(q - 1);
    if (align == q)
        align = 0; /* every segment is quantum-aligned already */
    if (align && (!is_pow2(align) || align < q || phase >= align || (phase & (q - 1))))
        return -EINVAL;
    if (!align && phase)
        return -EINVAL;
    if (nocross && (!is_pow2(nocross) || nocross < size || (align && nocross < align) || nocross < q))
        return -EINVAL;
    bool best = flags & ARENA_BESTFIT;
    struct arena_tag *t = NULL;
    uint64_t r = 0;
    if (!best && !nocross) {
        uint64_t need = size + (align ? align - q : 0);
        if (need >= size && (t = instant(a, ceil_log2(need))) != NULL && !place(t, size, align, phase, 0, &r))
            t = NULL; /* cannot happen; fall through to the search */
    }
    if (!t)
        t = search(a, floor_log2(size), size, align, phase, nocross, best, &r);
    if (!t)
        return -ENOSPC;
    size_t need_tags = (r > t->base) + (r + size != t->base + t->size);
    if (!tags_available(a, need_tags))
        return -ENOMEM;
    carve(a, t, r, size);
    *out = r;
    return 0;
}

int arena_alloc(struct arena *a, uint64_t size, unsigned flags, uint64_t *out)
{
    return arena_xalloc(a, size, 0, 0, 0, flags, out);
}

int arena_free(struct arena *a, uint64_t addr, uint64_t size)
{
    uint64_t q = a->quantum;
    if (!size || size + (q - 1) < size)
        return -EINVAL;
    size = (size + q - 1) & ~(q - 1);
    struct arena_tag **pp = hash_slot(a, addr), *t = *pp;
    if (!t)
        return -ENOENT;
    if (t->size != size)
        return -EINVAL;
    *pp = t->next;
    a->st.in_use -= size;
    a->st.free += size;
    a->st.allocs--;
    struct arena_tag *p = t->aprev, *n = t->anext;
    if (p->type == TAG_FREE) {
        flist_remove(a, p);
        alist_remove(p);
        t->base = p->base;
        t->size += p->size;
        tag_put(a, p);
    }
    if (n->type == TAG_FREE) {
        flist_remove(a, n);
        alist_remove(n);
        t->size += n->size;
        tag_put(a, n);
    }
    flist_insert(a, t);
    return 0;
}

void arena_stats(const struct arena *a, struct arena_stats *out)
{
    *out = a->st;
    out->largest_free = 0;
    if (a->list_map) {
        unsigned i = floor_log2(a->list_map);
        for (const struct arena_tag *t = a->lists[i]; t; t = t->next)
            if (t->size > out->largest_free)
                out->largest_free = t->size;
    }
}

/* ---- checker ---- */

/* What the walk over the address list counts, and where it is. */
struct census {
    uint64_t total, in_use, freeb;
    size_t spans, frees, allocs;
    const struct arena_tag *span; /* the span being tiled */
    uint64_t cursor;              /* next address the current span expects */
    bool prev_free;
};

/* A span tag: the previous span must be tiled to its end and lie below. */
static int census_span(struct census *c, const struct arena_tag *t)
{
    if (c->span && c->cursor != c->span->base + c->span->size)
        return -EINVAL; /* previous span not tiled */
    if (c->span && t->base < c->span->base + c->span->size)
        return -EINVAL;
    c->span = t;
    c->cursor = t->base;
    c->prev_free = false;
    c->spans++;
    c->total += t->size;
    return 0;
}

/* A segment tag: next in its span's tiling, a free one listed (and never
 * next to another free one: they would have been merged), an allocated
 * one hashed. */
static int census_segment(const struct arena *a, struct census *c, const struct arena_tag *t)
{
    if (!c->span || t->base != c->cursor || t->base + t->size - 1 > c->span->base + c->span->size - 1)
        return -EINVAL;
    c->cursor = t->base + t->size;
    if (t->type == TAG_FREE) {
        if (c->prev_free)
            return -EINVAL;
        const struct arena_tag *f = a->lists[floor_log2(t->size)];
        while (f && f != t)
            f = f->next;
        if (!f)
            return -EINVAL;
        c->frees++;
        c->freeb += t->size;
    } else if (t->type == TAG_ALLOC) {
        if (*hash_slot(a, t->base) != t)
            return -EINVAL;
        c->allocs++;
        c->in_use += t->size;
    } else {
        return -EINVAL;
    }
    c->prev_free = t->type == TAG_FREE;
    return 0;
}

static int census_take(const struct arena *a, struct census *c)
{
    uint64_t q = a->quantum;
    const struct arena_tag *prev = &a->head;
    if (a->head.type != TAG_SENTINEL)
        return -EINVAL;
    for (const struct arena_tag *t = a->head.anext; t != &a->head; prev = t, t = t->anext) {
        if (t->aprev != prev || !t->size || (t->base & (q - 1)) || (t->size & (q - 1)))
            return -EINVAL;
        int err = t->type == TAG_SPAN ? census_span(c, t) : census_segment(a, c, t);
        if (err)
            return err;
    }
    if (a->head.aprev != prev || (c->span && c->cursor != c->span->base + c->span->size))
        return -EINVAL;
    return 0;
}

/* The free lists hold exactly the free tags the walk found, each in its
 * size class, and the bitmap says which lists are non-empty. */
static int check_free_lists(const struct arena *a, size_t frees)
{
    size_t listed = 0;
    for (unsigned i = 0; i < ARENA_LISTS; i++) {
        if (!!a->lists[i] != !!(a->list_map & (1ull << i)))
            return -EINVAL;
        const struct arena_tag *lp = NULL;
        for (const struct arena_tag *t = a->lists[i]; t; lp = t, t = t->next) {
            if (t->type != TAG_FREE || floor_log2(t->size) != i || t->prev != lp || ++listed > frees)
                return -EINVAL;
        }
    }
    return listed == frees ? 0 : -EINVAL;
}

/* The hash holds exactly the allocated tags, each in its own bucket. */
static int check_hash(const struct arena *a, size_t allocs)
{
    size_t hashed = 0;
    for (size_t b = 0; b <= a->hash_mask; b++)
        for (const struct arena_tag *t = a->hash[b]; t; t = t->next)
            if (t->type != TAG_ALLOC || bucket(a, t->base) != &a->hash[b] || ++hashed > allocs)
                return -EINVAL;
    return hashed == allocs ? 0 : -EINVAL;
}

int arena_check(const struct arena *a)
{
    struct census c = { 0 };
    int err = census_take(a, &c);
    if (!err)
        err = check_free_lists(a, c.frees);
    if (!err)
        err = check_hash(a, c.allocs);
    if (err)
        return err;
    if (c.total != a->st.total || c.in_use != a->st.in_use || c.freeb != a->st.free || c.spans != a->st.spans ||
        c.frees != a->st.free_segments || c.allocs != a->st.allocs)
        return -EINVAL;
    return 0;
}
