/*
 * Memory-server layer: private helpers shared by the span allocator's files
 * (span.c: books and allocation; span_plan.c: compaction; span_check.c:
 * statistics and the invariant checker). Not part of the API.
 */
#ifndef SPAN_INTERNAL_H
#define SPAN_INTERNAL_H

#include <span/span.h>

#define NODE_MISALIGNED 0x1u /* large segment not at large-page alignment */
#define NODE_MOVING 0x2u     /* source of an unconfirmed move */

/* Where a request may go: [lo, hi) bounds the segment, align its base. */
struct span_fit {
    uint64_t size;
    uint64_t align;
    uint64_t lo;
    uint64_t hi;
};

static inline uint64_t span_end(const struct span_node *n)
{
    return n->base + n->size;
}

static inline struct span_node *span_of_addr_link(const struct rb_node *r)
{
    return r != NULL ? RB_ENTRY(r, struct span_node, addr_link) : NULL;
}

static inline bool span_is_movable(const struct span_node *n)
{
    return n->state == SPAN_ALLOCATED && n->lock_count == 0 &&
           (n->flags & NODE_MOVING) == 0;
}

static inline uint64_t align_up(uint64_t x, uint64_t align)
{
    return (x + align - 1) & ~(align - 1);
}

static inline uint64_t align_down(uint64_t x, uint64_t align)
{
    return x & ~(align - 1);
}

static inline unsigned floor_log2(uint64_t x)
{
    return 63u - (unsigned)__builtin_clzll(x);
}

struct span_node *span_containing(const struct span_alloc *a, uint64_t addr);

/* Lowest place in a free span for fit (lowest address first among big-enough
 * spans). NULL if none. */
struct span_node *span_find_lowest(const struct span_alloc *a, const struct span_fit *fit,
                                   uint64_t *place);

/* Lowest place for fit in free span f, or false. */
bool span_place_low(const struct span_node *f, const struct span_fit *fit, uint64_t *place);

/* New nodes carving [place, place+size) out of free span f would need. */
size_t span_carve_cost(const struct span_node *f, uint64_t place, uint64_t size);

/* Turns [place, place+size) of free span f into a span of `state`; the caller
 * has checked span_carve_cost() nodes are free. Returns the new span. */
struct span_node *span_carve(struct span_alloc *a, struct span_node *f, uint64_t place,
                             uint64_t size, enum span_state state, uint64_t tag);

/* Makes an allocated or in-transit span free and coalesces it. */
struct span_node *span_release(struct span_alloc *a, struct span_node *n);

/* Recomputes the misaligned mark of allocated span n. */
void span_mark_alignment(struct span_alloc *a, struct span_node *n);

/* Free-index membership and the statistics that follow free spans. */
void span_free_index_insert(struct span_alloc *a, struct span_node *n);
void span_free_index_remove(struct span_alloc *a, struct span_node *n);

/* Region accounting when a span's state changes. */
void span_account(struct span_alloc *a, const struct span_node *n, int sign);

/* Buddy decomposition of a free span into naturally aligned blocks of order
 * <= cap, added (sign 1) or removed (-1) from blocks[]. */
void span_buddy_count(uint64_t base, uint64_t size, unsigned cap, uint64_t *blocks, int sign);

#endif
