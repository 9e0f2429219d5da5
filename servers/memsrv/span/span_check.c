/*
 * Memory-server layer: statistics and the invariant checker of the span
 * allocator. Called by memsrv (span_stats for its status reply and its
 * compaction trigger), by debug builds and by every host test (span_check).
 *
 * Statistics are O(regions): the counters they read are kept up to date by
 * span.c whenever a span enters or leaves the free index, by arithmetic
 * (span_buddy_blocks, span_aligned_blocks). The fragmentation figures follow
 * Linux exactly, with the free spans decomposed into the naturally aligned
 * power-of-two blocks a buddy allocator would hold (orders up to
 * max(10, large order)); the checker recounts them block by block:
 *   mm/vmstat.c fill_contig_page_info / unusable_free_index /
 *   __fragmentation_index, and mm/compaction.c extfrag_for_order (used by
 *   fragmentation_score_zone), all in integer arithmetic, per mille.
 *
 * span_check recounts everything from scratch in O(n) and compares; it
 * never aborts and never changes the books.
 */
#include <common/string.h>

#include "span_internal.h"

struct contig_info {
    uint64_t free_pages;
    uint64_t free_blocks_total;
    uint64_t free_blocks_suitable;
};

/* What the pending free spans (span.c) add to the figures: their shares
 * of the block sums, which the counters leave out until they enter the
 * address tree (added to *buddy and to each region's large_blocks in
 * regions[]), and the largest of them, which the tree's max_free does not
 * see (raises *largest). At most SPAN_PENDING_MAX spans. */
static void add_pending(const struct span_alloc *a, uint64_t *buddy, struct span_region *regions, uint64_t *largest)
{
    const struct span_free *e;

    for (e = a->pending_newest; e != NULL; e = e->pending.older) {
        const struct span_node *n = e->span;
        *buddy += span_buddy_blocks(n->base, n->size, a->buddy_cap);
        regions[n->region].large_blocks += span_aligned_blocks(n->base, n->size, a->large_order);
        if (n->size > *largest)
            *largest = n->size;
    }
}

/* From the counters and the regions of out, pending shares included. */
static void contig_info(const struct span_alloc *a, const struct span_stats *out, uint64_t buddy,
                        struct contig_info *info)
{
    unsigned i;

    info->free_pages = a->free_bytes >> SPAN_GRANULE_SHIFT;
    info->free_blocks_total = buddy;
    info->free_blocks_suitable = 0;
    for (i = 0; i < out->region_count; i++)
        info->free_blocks_suitable += out->regions[i].large_blocks;
}

void span_stats(const struct span_alloc *a, struct span_stats *out)
{
    struct contig_info info;
    uint64_t requested = (uint64_t)1 << a->large_order;
    uint64_t buddy = a->buddy_blocks;
    unsigned i;

    out->total_bytes = a->total_bytes;
    out->free_bytes = a->free_bytes;
    out->locked_bytes = 0;
    out->transit_bytes = 0;
    for (i = 0; i < a->region_count; i++) {
        out->regions[i] = a->regions[i];
        out->locked_bytes += a->regions[i].locked_bytes;
        out->transit_bytes += a->regions[i].transit_bytes;
    }
    out->region_count = a->region_count;
    out->largest_free = a->addr_tree.root != NULL ? span_free_of(a->addr_tree.root)->max_free : 0;
    add_pending(a, &buddy, out->regions, &out->largest_free);
    out->used_bytes = a->total_bytes - out->free_bytes - out->transit_bytes;
    out->free_spans = span_free_span_count(a);
    out->segments = a->segments;
    out->misaligned_segments = a->misaligned;
    out->nodes_used = a->capacity - a->nodes_free;
    out->nodes_capacity = a->capacity;
    for (i = 0; i < SPAN_HIST_BUCKETS; i++)
        out->free_hist[i] = a->free_hist[i];
    out->large_order = a->large_order;

    contig_info(a, out, buddy, &info);
    /* unusable_free_index: no free memory counts as all unusable. */
    out->unusable_index =
        info.free_pages == 0
            ? 1000
            : (uint32_t)((info.free_pages - (info.free_blocks_suitable << a->large_order)) * 1000 / info.free_pages);
    /* __fragmentation_index */
    if (info.free_blocks_total == 0)
        out->fragmentation_index = 0;
    else if (info.free_blocks_suitable != 0)
        out->fragmentation_index = -1000;
    else
        out->fragmentation_index =
            (int32_t)(1000 - (1000 + info.free_pages * 1000 / requested) / info.free_blocks_total);
    /* extfrag_for_order, kept per mille rather than Linux's percent. */
    out->fragmentation_score =
        info.free_pages == 0
            ? 0
            : (uint32_t)((info.free_pages - (info.free_blocks_suitable << a->large_order)) * 1000 / info.free_pages);
}

/* ---- the checker -------------------------------------------------------- */

#define FAIL(f, msg, at)                                                                                               \
    do {                                                                                                               \
        (f)->what = (msg);                                                                                             \
        (f)->addr = (at);                                                                                              \
        return -EINVAL;                                                                                                \
    } while (0)

struct recount {
    uint64_t free_bytes, free_spans, pending, segments, misaligned, moving, transit_spans, hashed, reserves;
    uint64_t region_size[SPAN_MAX_REGIONS];
    uint64_t region_free[SPAN_MAX_REGIONS];
    uint64_t region_transit[SPAN_MAX_REGIONS];
    uint64_t region_locked[SPAN_MAX_REGIONS];
    uint64_t region_large[SPAN_MAX_REGIONS];
    uint64_t pending_large[SPAN_MAX_REGIONS]; /* the pending spans' shares, left out of the counters */
    uint64_t pending_buddy;
    uint64_t hist[SPAN_HIST_BUCKETS];
    uint64_t buddy[SPAN_BUDDY_ORDERS];
};

static uint64_t subtree_max(const struct rb_node *r) { return r != NULL ? span_free_of(r)->max_free : 0; }

/* n lies inside its region, in address order after prev, and the spans of
 * a region tile it: no gap, no overlap, no two free spans side by side. */
static int check_tiling(const struct span_alloc *a, const struct span_node *n, const struct span_node *prev,
                        struct span_fault *f)
{
    const struct span_region *r;

    if (n->size == 0 || ((n->base | n->size) & (SPAN_GRANULE - 1)))
        FAIL(f, "span empty or not granule-aligned", n->base);
    if (n->region >= a->region_count)
        FAIL(f, "span in no region", n->base);
    r = &a->regions[n->region];
    if (n->base < r->base || span_end(n) > r->base + r->size || span_end(n) < n->base)
        FAIL(f, "span crosses its region's bounds", n->base);
    if (n->prev != prev)
        FAIL(f, "address list back link broken", n->base);
    if (prev != NULL) {
        if (span_end(prev) > n->base)
            FAIL(f, "spans overlap or are out of order", n->base);
        if (prev->region == n->region && span_end(prev) != n->base)
            FAIL(f, "gap between spans of one region", n->base);
        if (prev->region == n->region && prev->state == SPAN_FREE && n->state == SPAN_FREE)
            FAIL(f, "adjacent free spans not coalesced", n->base);
    }
    if (prev == NULL || prev->region != n->region) {
        if (n->base != r->base)
            FAIL(f, "region does not start with a span", n->base);
    }
    return 0;
}

/* n is findable the way its state says: a free span through its index
 * entry (whose max_free summary must be current), a segment by its base. */
static int check_lookup(const struct span_alloc *a, const struct span_node *n, struct recount *c, struct span_fault *f)
{
    if (n->state == SPAN_FREE) {
        const struct span_free *e = n->u.free.ext;
        uint64_t own;
        if (e == NULL || e->span != n)
            FAIL(f, "free span and its index entry disagree", n->base);
        if (e->max_free == 0) {
            c->pending++; /* not in the tree: check_pending finds it */
            return 0;
        }
        own = n->size;
        if (subtree_max(e->addr_link.left) > own)
            own = subtree_max(e->addr_link.left);
        if (subtree_max(e->addr_link.right) > own)
            own = subtree_max(e->addr_link.right);
        if (e->max_free != own)
            FAIL(f, "address tree max_free is stale", n->base);
        return 0;
    }
    if (span_hash_find(a, n->base) != n)
        FAIL(f, "segment not found by its base", n->base);
    c->hashed++;
    if (n->flags & NODE_RESERVED) {
        c->reserves++;
        if (n->state != SPAN_IN_TRANSIT && !(n->flags & NODE_MOVING))
            FAIL(f, "a slot is reserved for a span that is not moving", n->base);
    }
    return 0;
}

/* Adds free span n to the recount, checking the buddy arithmetic the
 * statistics use against an explicit decomposition of the span. */
static int recount_free(const struct span_alloc *a, const struct span_node *n, struct recount *c, struct span_fault *f)
{
    uint64_t one[SPAN_BUDDY_ORDERS] = { 0 }, blocks = 0;
    unsigned k;

    if (n->flags != 0 || n->lock_count != 0)
        FAIL(f, "free span carries segment state", n->base);
    c->free_bytes += n->size;
    c->free_spans++;
    c->region_free[n->region] += n->size;
    c->region_large[n->region] += span_aligned_blocks(n->base, n->size, a->large_order);
    c->hist[floor_log2(n->size >> SPAN_GRANULE_SHIFT)]++;
    span_buddy_count(n->base, n->size, a->buddy_cap, one, 1);
    for (k = 0; k <= a->buddy_cap; k++) {
        blocks += one[k];
        c->buddy[k] += one[k];
    }
    if (blocks != span_buddy_blocks(n->base, n->size, a->buddy_cap))
        FAIL(f, "buddy block arithmetic disagrees with the decomposition", n->base);
    return 0;
}

/* Adds segment n to the recount, checking its constraints and marks. */
static int recount_segment(const struct span_alloc *a, const struct span_node *n, struct recount *c,
                           struct span_fault *f)
{
    bool misaligned = n->size >= a->large_size && (n->base & (a->large_size - 1)) != 0;

    if (misaligned != ((n->flags & NODE_MISALIGNED) != 0))
        FAIL(f, "misaligned mark wrong", n->base);
    if (n->align_shift < SPAN_GRANULE_SHIFT || n->align_shift > 63 || (n->u.seg.limit & (SPAN_GRANULE - 1)) != 0)
        FAIL(f, "segment constraints malformed", n->base);
    if (!span_place_keeps(n, n->base))
        FAIL(f, "segment outside its constraints (alignment or limit)", n->base);
    c->segments++;
    c->misaligned += misaligned;
    if (n->flags & NODE_MOVING)
        c->moving++;
    if (n->lock_count > 0)
        c->region_locked[n->region] += n->size;
    if ((n->flags & NODE_MOVING) && n->lock_count > 0)
        FAIL(f, "locked segment is moving", n->base);
    return 0;
}

/* One span's invariants, the most basic first (a report names the first
 * that fails), and its share of the recount the totals are checked
 * against. */
static int check_span(const struct span_alloc *a, const struct span_node *n, const struct span_node *prev,
                      struct recount *c, struct span_fault *f)
{
    int err = check_tiling(a, n, prev, f);

    if (err == 0)
        err = check_lookup(a, n, c, f);
    if (err != 0)
        return err;
    c->region_size[n->region] += n->size;
    switch (n->state) {
    case SPAN_FREE: return recount_free(a, n, c, f);
    case SPAN_ALLOCATED: return recount_segment(a, n, c, f);
    case SPAN_IN_TRANSIT:
        c->transit_spans++;
        c->region_transit[n->region] += n->size;
        return 0;
    default: FAIL(f, "span in unknown state", n->base);
    }
}

/* The largest block of n's buddy decomposition, block by block (the
 * allocator's own figure is arithmetic). */
static unsigned buddy_top_order(const struct span_alloc *a, const struct span_node *n)
{
    uint64_t blocks[SPAN_BUDDY_ORDERS] = { 0 };
    unsigned k = a->buddy_cap;

    span_buddy_count(n->base, n->size, a->buddy_cap, blocks, 1);
    while (k > 0 && blocks[k] == 0)
        k--;
    return k;
}

/* The marker points into a free span of the books, or nowhere; only the
 * marker policy sets it. */
static int check_marker(const struct span_alloc *a, struct span_fault *f)
{
    const struct span_node *n;

    if (a->marker == NULL)
        return 0;
    if (a->policy != SPAN_POLICY_MARKER)
        FAIL(f, "marker set by a policy without one", a->marker->base);
    for (n = a->first; n != NULL && n != a->marker; n = n->next)
        ;
    if (n == NULL || n->state != SPAN_FREE)
        FAIL(f, "marker points at no free span", a->marker->base);
    return 0;
}

static int check_free_index(const struct span_alloc *a, struct span_fault *f)
{
    bool has_lists = a->policy != SPAN_POLICY_TOP_OF_HEAP && a->policy != SPAN_POLICY_MARKER;
    uint64_t indexed = 0;
    unsigned k;

    for (k = 0; k < SPAN_QUICK_LISTS; k++) {
        const struct span_free *e;
        const struct span_free *back = NULL;
        bool bit = (a->list_bitmap >> k) & 1;
        if (bit != (a->lists[k] != NULL))
            FAIL(f, "list bitmap disagrees with list", k);
        for (e = a->lists[k]; e != NULL; back = e, e = e->idx.list.next) {
            const struct span_node *n = e->span;
            uint64_t granules = n->size >> SPAN_GRANULE_SHIFT;
            bool right_list = a->policy == SPAN_POLICY_INSTANT_FIT ? floor_log2(granules) == k
                              : a->policy == SPAN_POLICY_BEST_FIT  ? granules == k + 1u
                              : a->policy == SPAN_POLICY_BUDDY     ? buddy_top_order(a, n) == k
                                                                   : false;
            if (n->state != SPAN_FREE || !right_list)
                FAIL(f, "span on the wrong free list", n->base);
            if (n->u.free.ext != e)
                FAIL(f, "free list entry and its span disagree", n->base);
            if (e->idx.list.prev != back)
                FAIL(f, "free list back link broken", n->base);
            if (++indexed > a->capacity)
                FAIL(f, "free list cycles", n->base);
        }
    }
    if (a->policy == SPAN_POLICY_BEST_FIT) {
        const struct rb_node *r;
        const struct span_node *prev = NULL;
        long count = rb_validate(&a->size_tree);
        if (count < 0)
            FAIL(f, "size tree is not a valid red-black tree", 0);
        for (r = rb_first(&a->size_tree); r != NULL; r = rb_next(r)) {
            const struct span_node *n = RB_ENTRY(r, struct span_free, idx.size_link)->span;
            if (n->state != SPAN_FREE || n->size <= SPAN_QUICK_LISTS * SPAN_GRANULE)
                FAIL(f, "size tree holds a span it should not", n->base);
            if (prev != NULL && (prev->size > n->size || (prev->size == n->size && prev->base >= n->base)))
                FAIL(f, "size tree out of order", n->base);
            prev = n;
        }
        indexed += (uint64_t)count;
    } else if (a->size_tree.root != NULL) {
        FAIL(f, "size tree used by a policy without one", 0);
    }
    if (!has_lists && a->list_bitmap != 0)
        FAIL(f, "free lists used by a policy without them", 0);
    if (has_lists && indexed != span_free_span_count(a))
        FAIL(f, "free index does not hold every free span", indexed);
    return check_marker(a, f);
}

static int compare_counts(const struct span_alloc *a, const struct recount *c, struct span_fault *f)
{
    uint64_t pending_suitable = 0;
    unsigned i;

    for (i = 0; i < a->region_count; i++) {
        const struct span_region *r = &a->regions[i];
        if (c->region_size[i] != r->size)
            FAIL(f, "region not exactly tiled by its spans", r->base);
        if (c->region_free[i] != r->free_bytes)
            FAIL(f, "region free bytes wrong", r->base);
        if (c->region_transit[i] != r->transit_bytes)
            FAIL(f, "region transit bytes wrong", r->base);
        if (c->region_locked[i] != r->locked_bytes)
            FAIL(f, "region locked bytes wrong", r->base);
        if (c->region_large[i] != r->large_blocks + c->pending_large[i])
            FAIL(f, "region large-page count wrong", r->base);
        pending_suitable += c->pending_large[i];
    }
    if (c->free_bytes != a->free_bytes || c->free_spans != span_free_span_count(a))
        FAIL(f, "free byte or span count wrong", c->free_bytes);
    if (c->segments != a->segments || c->misaligned != a->misaligned)
        FAIL(f, "segment or misaligned count wrong", c->segments);
    if (c->moving != c->transit_spans || c->moving != a->moves_in_flight)
        FAIL(f, "moving segments and transit spans disagree", c->moving);
    for (i = 0; i < SPAN_HIST_BUCKETS; i++)
        if (c->hist[i] != a->free_hist[i])
            FAIL(f, "free span histogram wrong", i);
    {
        uint64_t blocks = 0, suitable = 0;
        for (i = 0; i <= a->buddy_cap; i++) {
            blocks += c->buddy[i];
            if (i >= a->large_order)
                suitable += c->buddy[i] << (i - a->large_order);
        }
        if (blocks != a->buddy_blocks + c->pending_buddy || suitable != span_large_total(a) + pending_suitable)
            FAIL(f, "buddy block counts wrong", blocks);
    }
    if (c->hashed != a->hashed)
        FAIL(f, "hash holds other spans than the segments", c->hashed);
    return 0;
}

/* Every slot is a span, a free span's index entry, or free (a free slot
 * may be kept for a pending move: a->reserved of them). */
static int check_pool(const struct span_alloc *a, size_t in_use, struct span_fault *f)
{
    const struct span_node *n;
    const struct span_block *b;
    size_t unused = 0, blocks = 0;
    unsigned pass;

    for (n = a->store_free; n != NULL; n = n->u.pool.next)
        if (n < a->store || n >= a->store + a->store_count || ++unused > a->capacity)
            FAIL(f, "free slot list of the fixed store corrupt", 0);
    for (pass = 0; pass < 2; pass++) {
        for (b = pass == 0 ? a->partial : a->empty; b != NULL; b = b->next) {
            size_t count = 0;
            if (++blocks > a->blocks)
                FAIL(f, "block lists cycle", 0);
            for (n = b->free; n != NULL; n = n->u.pool.next)
                if (++count > b->slots)
                    FAIL(f, "free slot list of a block corrupt", 0);
            if (count + b->used != b->slots || (pass == 1) != (b->used == 0) || count == 0)
                FAIL(f, "block occupancy wrong", 0);
            unused += count;
        }
    }
    if (unused != a->nodes_free + a->reserved || in_use + unused != a->capacity)
        FAIL(f, "slot accounting wrong", in_use);
    return 0;
}

/* The pending list holds exactly the free spans outside the address tree
 * (max_free 0, counted in c->pending by check_lookup): at most
 * SPAN_PENDING_MAX, each small enough to wait, newest first. */
static int check_pending(const struct span_alloc *a, struct recount *c, struct span_fault *f)
{
    const struct span_free *e, *newer = NULL;
    uint64_t count = 0;

    for (e = a->pending_newest; e != NULL; newer = e, e = e->pending.older) {
        const struct span_node *n = e->span;
        if (++count > SPAN_PENDING_MAX)
            FAIL(f, "pending list too long or cycles", count);
        if (n == NULL || n->state != SPAN_FREE || n->u.free.ext != e || e->max_free != 0)
            FAIL(f, "pending list holds a span that is not a pending free span", n != NULL ? n->base : 0);
        if (n->size > a->pending_max)
            FAIL(f, "pending free span too large to wait", n->base);
        if (e->pending.newer != newer)
            FAIL(f, "pending list back link broken", n->base);
        if (n->u.free.buddy_blocks != 0 || n->u.free.large_blocks != 0)
            FAIL(f, "pending free span's block shares are counted", n->base);
        c->pending_buddy += span_buddy_blocks(n->base, n->size, a->buddy_cap);
        c->pending_large[n->region] += span_aligned_blocks(n->base, n->size, a->large_order);
    }
    if (newer != a->pending_oldest || count != a->pending_count || count != c->pending)
        FAIL(f, "pending list and the free spans outside the tree disagree", count);
    return 0;
}

int span_check(const struct span_alloc *a, struct span_fault *fault)
{
    static struct span_fault ignored;
    struct recount c;
    const struct span_node *n;
    const struct span_node *prev = NULL;
    const struct rb_node *r;
    size_t spans = 0;
    long tree_count;
    int err;

    if (fault == NULL)
        fault = &ignored;
    fault->what = NULL;
    fault->addr = 0;
    if (a == NULL)
        FAIL(fault, "no instance", 0);
    memset(&c, 0, sizeof(c));

    tree_count = rb_validate(&a->addr_tree);
    if (tree_count < 0)
        FAIL(fault, "address tree is not a valid red-black tree", 0);
    r = rb_first(&a->addr_tree);
    for (n = a->first; n != NULL; prev = n, n = n->next) {
        if (n->state == SPAN_FREE && n->u.free.ext != NULL && n->u.free.ext->max_free != 0) {
            if (r == NULL || span_free_of(r)->span != n)
                FAIL(fault, "free spans in the list and the tree disagree", n->base);
            r = rb_next(r);
        }
        err = check_span(a, n, prev, &c, fault);
        if (err != 0)
            return err;
        if (++spans > a->capacity)
            FAIL(fault, "address list cycles", n->base);
    }
    if (r != NULL || prev != a->last || (uint64_t)tree_count + c.pending != c.free_spans)
        FAIL(fault, "free spans in the list and the tree disagree at the end", 0);
    err = check_pending(a, &c, fault);
    if (err != 0)
        return err;
    if (prev != NULL && span_end(prev) != a->regions[prev->region].base + a->regions[prev->region].size)
        FAIL(fault, "last region not tiled to its end", prev->base);
    if (c.reserves != a->reserved)
        FAIL(fault, "reserved slot count wrong", c.reserves);
    err = check_pool(a, spans + c.free_spans, fault);
    if (err != 0)
        return err;
    err = check_free_index(a, fault);
    if (err != 0)
        return err;
    return compare_counts(a, &c, fault);
}
