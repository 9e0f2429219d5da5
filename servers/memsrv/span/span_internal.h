/*
 * Memory-server layer: private helpers shared by the span allocator's files
 * (span.c: books and allocation; span_plan.c: compaction; span_check.c:
 * statistics and the invariant checker). Not part of the API.
 */
#ifndef SPAN_INTERNAL_H
#define SPAN_INTERNAL_H

#include <span/span.h>

#define NODE_MISALIGNED 0x1u /* large segment not at large-page alignment */
#define NODE_MOVING     0x2u /* source of an unconfirmed move */
#define NODE_RESERVED   0x4u /* holds one of a->reserved: the slot its release may need */

#define SPAN_PENDING_MAX  256 /* small free spans that may wait outside the address tree */
#define SPAN_PENDING_SIZE (SPAN_QUICK_LISTS * SPAN_GRANULE) /* the largest that may wait */

/* The header of a span_add_nodes block, in its first slot. Every later page
 * of the block starts with a pointer to it (the page's first slot), so a
 * slot finds its block with one mask and one load. */
enum block_list { BLOCK_FULL = 0, BLOCK_PARTIAL, BLOCK_EMPTY };

struct span_block {
    struct span_block *self; /* the page header's field, as in every page */
    struct span_block *next, *prev;
    struct span_node *free; /* this block's free slots */
    size_t bytes;
    uint64_t owner; /* the caller's word for the block (span_add_nodes) */
    uint32_t slots; /* span_add_nodes keeps a block under 2^32 slots */
    uint32_t used;
    uint32_t list; /* enum block_list */
    uint32_t seq;  /* order of arrival: partial blocks are kept oldest first */
};

_Static_assert(sizeof(struct span_block) <= sizeof(struct span_node), "block header fits a slot");

/* Where a request may go: [lo, hi) bounds the segment, align its base. */
struct span_fit {
    uint64_t size;
    uint64_t align;
    uint64_t lo;
    uint64_t hi;
};

static inline uint64_t span_end(const struct span_node *n) { return n->base + n->size; }

static inline struct span_free *span_free_of(const struct rb_node *r)
{
    return r != NULL ? RB_ENTRY(r, struct span_free, addr_link) : NULL;
}

/* A slot of the pool seen as either of the two things it can hold. */
union span_slot {
    struct span_node node;
    struct span_free ext;
};

_Static_assert(sizeof(struct span_node) == 64 && sizeof(struct span_free) == 64,
               "a span takes one 64-byte slot, a free span two");

static inline uint64_t span_hard_align(const struct span_node *n) { return (uint64_t)1 << n->align_shift; }

/* The highest end a segment may have (its limit, or none). */
static inline uint64_t span_limit(const struct span_node *n)
{
    return n->u.seg.limit != 0 ? n->u.seg.limit : UINT64_MAX;
}

/* A large segment whose large-page alignment is only a wish. */
static inline bool span_wants_large(const struct span_alloc *a, const struct span_node *n)
{
    return n->size >= a->large_size && span_hard_align(n) < a->large_size;
}

/* Whether [to, to + n->size) keeps n's constraints. */
static inline bool span_place_keeps(const struct span_node *n, uint64_t to)
{
    return (to & (span_hard_align(n) - 1)) == 0 && to + n->size <= span_limit(n);
}

static inline bool span_is_movable(const struct span_node *n)
{
    return n->state == SPAN_ALLOCATED && n->lock_count == 0 && (n->flags & NODE_MOVING) == 0;
}

static inline uint64_t align_up(uint64_t x, uint64_t align) { return (x + align - 1) & ~(align - 1); }

static inline uint64_t align_down(uint64_t x, uint64_t align) { return x & ~(align - 1); }

static inline unsigned floor_log2(uint64_t x) { return 63u - (unsigned)__builtin_clzll(x); }

/* Totals over the regions' and the histogram's counters: summed when
 * asked, so that the allocation and free paths keep fewer counters. */
static inline uint64_t span_large_total(const struct span_alloc *a)
{
    uint64_t blocks = 0;
    unsigned i;

    for (i = 0; i < a->region_count; i++)
        blocks += a->regions[i].large_blocks;
    return blocks;
}

static inline uint64_t span_free_span_count(const struct span_alloc *a)
{
    uint64_t spans = 0;
    unsigned i;

    for (i = 0; i < SPAN_HIST_BUCKETS; i++)
        spans += a->free_hist[i];
    return spans;
}

struct span_node *span_containing(const struct span_alloc *a, uint64_t addr);

/* Enters every pending free span (the small ones that wait, span.c) into the
 * address tree: at most SPAN_PENDING_MAX insertions. A search of the tree
 * by address for a request that a pending span could hold runs after it
 * (span_find_lowest scans the list instead). */
void span_settle(struct span_alloc *a);

/* Lowest place in a free span for fit (lowest address first among big-enough
 * spans), pending ones included. NULL if none. */
struct span_node *span_find_lowest(const struct span_alloc *a, const struct span_fit *fit, uint64_t *place);

/* Lowest place for fit in free span f, or false. */
bool span_place_low(const struct span_node *f, const struct span_fit *fit, uint64_t *place);

/* New nodes carving [place, place+size) out of free span f would need. */
size_t span_carve_cost(const struct span_node *f, uint64_t place, uint64_t size);

/* Turns [place, place+size) of free span f into a span of `state`; the caller
 * has checked span_carve_cost() nodes are free. Returns the new span. */
struct span_node *span_carve(struct span_alloc *a, struct span_node *f, uint64_t place, uint64_t size,
                             enum span_state state, uint64_t tag);

/* Makes an allocated or in-transit span free and coalesces it. */
struct span_node *span_release(struct span_alloc *a, struct span_node *n);

/* Recomputes the misaligned mark of allocated span n. */
void span_mark_alignment(struct span_alloc *a, struct span_node *n);

/* Slots a release of non-free span n needs: 1 when neither neighbour is a
 * free span of its region (the free span left needs a span_free), else 0. */
size_t span_release_cost(const struct span_node *n);

/* Keeps a slot for a pending move's release of n (NODE_RESERVED: counted
 * in a->reserved, taken out of nodes_free, left in the pool); the caller
 * has checked one is free. span_release uses or returns it. */
void span_reserve_slot(struct span_alloc *a, struct span_node *n);
/* Gives n's reserved slot back (the move it was kept for is settled). */
void span_return_slot(struct span_alloc *a, struct span_node *n);

/* Segments by base: the hash's view (non-free spans only). A caller that
 * changes a non-free span's base removes it first and inserts it after. */
struct span_node *span_hash_find(const struct span_alloc *a, uint64_t base);
void span_hash_insert(struct span_alloc *a, struct span_node *n);
void span_hash_remove(struct span_alloc *a, struct span_node *n);

/* Region accounting when a span's state changes. */
void span_account(struct span_alloc *a, const struct span_node *n, int sign);

/* Buddy decomposition of a free span into naturally aligned blocks of order
 * <= cap: how many blocks (arithmetic, for the counters) ... */
uint64_t span_buddy_blocks(uint64_t base, uint64_t size, unsigned cap);
/* ... and the same, block by block into blocks[] (the checker's recount). */
void span_buddy_count(uint64_t base, uint64_t size, unsigned cap, uint64_t *blocks, int sign);
/* ... and the order of its largest block (the buddy policy files a free
 * span on that order's list). */
unsigned span_buddy_top_order(uint64_t base, uint64_t size, unsigned cap);
/* Large pages (2^order granules, naturally aligned) inside [base, base+size). */
uint64_t span_aligned_blocks(uint64_t base, uint64_t size, unsigned order);

#endif
