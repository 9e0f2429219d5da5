/*
 * Memory-server layer: the span allocator's books and its allocation paths.
 * Called by memsrv's request handlers (and the host tests and benchmark)
 * through servers/memsrv/span/include/span/span.h. Compaction planning is in
 * span_plan.c, statistics and the invariant checker in span_check.c.
 *
 * ==========================================================================
 * Big Theory Statement
 * ==========================================================================
 *
 * 1. Concepts
 * -----------
 * Physical memory is a set of regions (RAM ranges from the boot memory map);
 * the gaps between them are holes. Each region is tiled, without gaps or
 * overlaps, by spans: maximal runs of 4 KiB granules in one state,
 *
 *     FREE        nobody owns it;
 *     ALLOCATED   a segment, with the caller's 64-bit tag; a segment with a
 *                 lock count > 0 is LOCKED (pinned for DMA) and never moves;
 *     IN_TRANSIT  the part of a move's destination that was free, booked
 *                 while the caller copies (see 5).
 *
 * A span never crosses a region boundary, so a segment never spans a hole.
 * Two regions that touch are still two regions: the memory map said so, and
 * nothing is lost by keeping them apart except one merge.
 *
 * 2. Data structures
 * ------------------
 * One struct span_node per span, from a caller-supplied array: metadata is a
 * constant ~150 bytes per span, never per page, and never comes from the
 * memory managed. Unused nodes sit on a free-node list; every operation
 * first counts the nodes it needs (a split needs one or two) and fails with
 * -ENOMEM before touching anything if they are not there.
 *
 *  - addr_tree: a red-black tree of ALL spans by base address, augmented
 *    with max_free, the size of the largest FREE span in each subtree. It
 *    answers "which span contains address x" (lookup, free, lock) and "the
 *    lowest (or highest) free place for this size, alignment and address
 *    window" in O(log n): subtrees whose max_free is too small are skipped.
 *  - prev/next: the same spans as a doubly linked list in address order, so
 *    coalescing reaches both neighbours in O(1).
 *  - the size index of free spans, which depends on the policy (4):
 *      best fit:    64 quick-fit lists, one per exact size of 1..64 granules
 *                   (4 KiB..256 KiB), and a red-black size_tree keyed
 *                   (size, base) for larger spans;
 *      instant fit: 64 lists, list k holding sizes in [2^k, 2^(k+1))
 *                   granules (k < 52 in practice);
 *      top of heap: none; it searches the augmented addr_tree from the top.
 *    A 64-bit bitmap says which lists are non-empty, so "the smallest
 *    non-empty list at or above k" is one count-trailing-zeros.
 *  - per-region byte counters and the free-span histogram and buddy block
 *    counts for the statistics (span_check.c), updated whenever a span enters
 *    or leaves the free index, so span_stats is O(regions), not O(spans).
 *
 * 3. Invariants (all checked by span_check)
 * -----------------------------------------
 *  I1 the spans of each region tile it exactly, in address order; list order
 *     equals tree order; no span is empty or crosses a region end.
 *  I2 no two free spans are adjacent in one region (fully coalesced).
 *  I3 a span is in the free index iff it is FREE, in exactly the list or tree
 *     its size and the policy say; list bitmap bits match list emptiness.
 *  I4 max_free of every addr_tree node is exact; both trees are valid
 *     red-black trees.
 *  I5 every counter (free bytes, per-region free/transit/locked bytes,
 *     segment and free-span counts, misaligned count, histogram, buddy
 *     blocks, nodes in use + nodes free = capacity) equals a recount.
 *  I6 a segment is marked misaligned iff it is large and its base is not
 *     large-page aligned; every in-transit span belongs to exactly one
 *     segment marked moving.
 *
 * 4. Allocation policies
 * ----------------------
 * A request is a size (rounded up to granules), an alignment, an exclusive
 * end limit and flags. A segment of at least the large-page size is given
 * large-page alignment; if no such place exists and the caller passed
 * SPAN_LARGE_OK, it is placed at the requested alignment and marked
 * misaligned, for the realignment planner to fix later.
 *
 *  best fit (default): an unconstrained request of n <= 64 granules takes the
 *    head of the first non-empty quick list >= n (O(1) with the bitmap);
 *    larger ones the lower bound of (n, 0) in the size tree (O(log n)). The
 *    chosen span is split, the segment at its low end. A constrained request
 *    (alignment above 4 KiB, a limit below the top of memory) probes the
 *    size-ordered candidates (SPAN_PROBES of them, so bounded work) for one
 *    that satisfies the constraint, and then falls back to the addr_tree
 *    search, which is exact: if any place exists it finds one.
 *  instant fit (vmem's VM_INSTANTFIT): n is served from the first non-empty
 *    list k >= ceil(log2 n), whose every span fits, in O(1); failing that,
 *    and for constrained requests, the exact addr_tree search.
 *  top of heap (seed 000): always the highest place that fits, found by the
 *    addr_tree search from the right, so segments stack down from the top
 *    of memory in age order; full compaction slides them back down to make
 *    room, which the caller drives with the plans of span_plan.c.
 *
 * The addr_tree search is O(log n) when the first candidate with a large
 * enough max_free fits; it only walks further when alignment or the limit
 * rejects candidates. Two passes keep that rare: the first only considers
 * spans of size >= n + align - 4 KiB, any of which fits at any alignment, so
 * only the span straddling the limit can be rejected; the second (spans
 * between n and that size) runs only when the first found nothing.
 *
 * 5. Compaction (span_plan.c)
 * ---------------------------
 * The library copies nothing. A plan proposes one move at a time, books the
 * destination's free part as IN_TRANSIT and marks the segment moving; the
 * caller copies (memmove semantics: a slide by less than the size overlaps)
 * and confirms with span_move_done, or reports span_move_failed (with
 * "pinned" when the kernel said the segment got pinned, which locks it).
 * Confirming reuses the two nodes already there, so it cannot fail. Plans:
 * targeted (cheapest window), full/incremental (slide down), realign. The
 * algorithms and their costs are described in span_plan.c.
 *
 * 6. Failure modes
 * ----------------
 * Every entry point validates its arguments and its node needs first, then
 * changes state in steps that cannot fail. Bad input is an error code, never
 * an abort: -EINVAL (malformed), -E2BIG (bigger than any region), -ERANGE
 * (no region can ever satisfy the limit), -ENOMEM (no place now, or node
 * store full), -ENOENT (no such segment, double free), -EBUSY (locked or
 * moving). A broken internal invariant is only ever reported by span_check.
 *
 * 7. Constants
 * ------------
 *  4 KiB granule: the x86-64 base page; the unit the kernel maps.
 *  64 quick lists: the seed design's 4 KiB..256 KiB, and exactly one bitmap
 *    word, which makes the next-non-empty search a single instruction.
 *  2 MiB large page by default (x86-64 PDE), a per-instance parameter so the
 *    seed's 4 MiB PSE pages work too; accepted range 8 KiB..1 GiB.
 *  SPAN_PROBES = 16: the probe for constrained best fit does bounded work
 *    before the exact search; 16 is enough to step over the few spans an
 *    alignment typically rejects while staying a few hundred nanoseconds.
 *  64 regions: e820/multiboot maps on real machines have tens of entries.
 *  Buddy orders up to max(10, large order): Linux's MAX_ORDER is 10, and the
 *    statistics must be comparable with /proc/pagetypeinfo-style numbers.
 */
#include <common/string.h>

#include "span_internal.h"

#define SPAN_PROBES 16
#define LINUX_MAX_ORDER 10

static struct span_node *size_node(const struct rb_node *r)
{
    return r != NULL ? RB_ENTRY(r, struct span_node, u.size_link) : NULL;
}

static void addr_augment(struct rb_node *r)
{
    struct span_node *n = span_of_addr_link(r);
    uint64_t best = n->state == SPAN_FREE ? n->size : 0;

    if (r->left != NULL && span_of_addr_link(r->left)->max_free > best)
        best = span_of_addr_link(r->left)->max_free;
    if (r->right != NULL && span_of_addr_link(r->right)->max_free > best)
        best = span_of_addr_link(r->right)->max_free;
    n->max_free = best;
}

const char *span_state_name(enum span_state state)
{
    switch (state) {
    case SPAN_FREE:
        return "free";
    case SPAN_ALLOCATED:
        return "allocated";
    case SPAN_LOCKED:
        return "locked";
    case SPAN_IN_TRANSIT:
        return "in-transit";
    }
    return "?";
}

/* ---- node store ------------------------------------------------------ */

static struct span_node *node_get(struct span_alloc *a)
{
    struct span_node *n = a->free_nodes;

    a->free_nodes = n->u.list.next;
    a->nodes_free--;
    memset(n, 0, sizeof(*n));
    return n;
}

static void node_put(struct span_alloc *a, struct span_node *n)
{
    n->state = SPAN_FREE;
    n->size = 0;
    n->u.list.next = a->free_nodes;
    a->free_nodes = n;
    a->nodes_free++;
}

/* ---- address tree and list --------------------------------------------- */

static void addr_insert(struct span_alloc *a, struct span_node *n)
{
    struct rb_node **link = &a->addr_tree.root;
    struct rb_node *parent = NULL;

    while (*link != NULL) {
        parent = *link;
        link = n->base < span_of_addr_link(parent)->base ? &parent->left : &parent->right;
    }
    rb_insert(&a->addr_tree, &n->addr_link, parent, link);
}

static void list_link_after(struct span_alloc *a, struct span_node *pos, struct span_node *n)
{
    n->prev = pos;
    n->next = pos != NULL ? pos->next : a->first;
    if (n->next != NULL)
        n->next->prev = n;
    else
        a->last = n;
    if (pos != NULL)
        pos->next = n;
    else
        a->first = n;
}

static void unlink_span(struct span_alloc *a, struct span_node *n)
{
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        a->first = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        a->last = n->prev;
    rb_erase(&a->addr_tree, &n->addr_link);
}

struct span_node *span_containing(const struct span_alloc *a, uint64_t addr)
{
    const struct rb_node *r = a->addr_tree.root;

    while (r != NULL) {
        const struct span_node *n = span_of_addr_link(r);
        if (addr < n->base)
            r = r->left;
        else if (addr >= span_end(n))
            r = r->right;
        else
            return (struct span_node *)n;
    }
    return NULL;
}

/* ---- free index and the statistics that follow it ---------------------- */

void span_buddy_count(uint64_t base, uint64_t size, unsigned cap, uint64_t *blocks, int sign)
{
    uint64_t pfn = base >> SPAN_GRANULE_SHIFT;
    uint64_t end = pfn + (size >> SPAN_GRANULE_SHIFT);
    uint64_t big = (uint64_t)1 << cap;
    uint64_t mid_lo = align_up(pfn, big);
    uint64_t mid_hi = align_down(end, big);

    if (mid_lo < mid_hi) {
        blocks[cap] += (uint64_t)sign * ((mid_hi - mid_lo) >> cap);
    } else {
        mid_lo = end;
        mid_hi = end;
    }
    /* Below the first big-aligned point: blocks grow with the alignment. */
    while (pfn < mid_lo) {
        unsigned order = pfn != 0 ? (unsigned)__builtin_ctzll(pfn) : cap;
        while (order > 0 && (order > cap || pfn + ((uint64_t)1 << order) > mid_lo))
            order--;
        blocks[order] += (uint64_t)sign;
        pfn += (uint64_t)1 << order;
    }
    /* Above the last one: blocks shrink, largest first. */
    pfn = mid_hi;
    while (pfn < end) {
        unsigned order = floor_log2(end - pfn);
        if (order > cap)
            order = cap;
        blocks[order] += (uint64_t)sign;
        pfn += (uint64_t)1 << order;
    }
}

static unsigned list_index(const struct span_alloc *a, uint64_t size)
{
    uint64_t granules = size >> SPAN_GRANULE_SHIFT;

    if (a->policy == SPAN_POLICY_INSTANT_FIT)
        return floor_log2(granules);
    return (unsigned)(granules - 1); /* best fit, granules <= 64 */
}

static bool uses_list(const struct span_alloc *a, uint64_t size)
{
    if (a->policy == SPAN_POLICY_INSTANT_FIT)
        return true;
    return a->policy == SPAN_POLICY_BEST_FIT &&
           (size >> SPAN_GRANULE_SHIFT) <= SPAN_QUICK_LISTS;
}

static void size_tree_insert(struct span_alloc *a, struct span_node *n)
{
    struct rb_node **link = &a->size_tree.root;
    struct rb_node *parent = NULL;

    while (*link != NULL) {
        const struct span_node *p;
        parent = *link;
        p = size_node(parent);
        if (n->size < p->size || (n->size == p->size && n->base < p->base))
            link = &parent->left;
        else
            link = &parent->right;
    }
    rb_insert(&a->size_tree, &n->u.size_link, parent, link);
}

void span_free_index_insert(struct span_alloc *a, struct span_node *n)
{
    a->free_spans++;
    a->free_bytes += n->size;
    a->regions[n->region].free_bytes += n->size;
    a->free_hist[floor_log2(n->size >> SPAN_GRANULE_SHIFT)]++;
    span_buddy_count(n->base, n->size, a->buddy_cap, a->buddy_blocks, 1);

    if (uses_list(a, n->size)) {
        unsigned k = list_index(a, n->size);
        n->u.list.prev = NULL;
        n->u.list.next = a->lists[k];
        if (a->lists[k] != NULL)
            a->lists[k]->u.list.prev = n;
        a->lists[k] = n;
        a->list_bitmap |= (uint64_t)1 << k;
    } else if (a->policy == SPAN_POLICY_BEST_FIT) {
        size_tree_insert(a, n);
    }
}

void span_free_index_remove(struct span_alloc *a, struct span_node *n)
{
    a->free_spans--;
    a->free_bytes -= n->size;
    a->regions[n->region].free_bytes -= n->size;
    a->free_hist[floor_log2(n->size >> SPAN_GRANULE_SHIFT)]--;
    span_buddy_count(n->base, n->size, a->buddy_cap, a->buddy_blocks, -1);

    if (uses_list(a, n->size)) {
        unsigned k = list_index(a, n->size);
        if (n->u.list.prev != NULL)
            n->u.list.prev->u.list.next = n->u.list.next;
        else
            a->lists[k] = n->u.list.next;
        if (n->u.list.next != NULL)
            n->u.list.next->u.list.prev = n->u.list.prev;
        if (a->lists[k] == NULL)
            a->list_bitmap &= ~((uint64_t)1 << k);
    } else if (a->policy == SPAN_POLICY_BEST_FIT) {
        rb_erase(&a->size_tree, &n->u.size_link);
    }
}

void span_account(struct span_alloc *a, const struct span_node *n, int sign)
{
    struct span_region *r = &a->regions[n->region];

    if (n->state == SPAN_IN_TRANSIT) {
        r->transit_bytes += (uint64_t)sign * n->size;
    } else if (n->state == SPAN_ALLOCATED) {
        a->segments += (uint64_t)sign;
        if (n->flags & NODE_MISALIGNED)
            a->misaligned += (uint64_t)sign;
        if (n->lock_count > 0)
            r->locked_bytes += (uint64_t)sign * n->size;
    }
}

void span_mark_alignment(struct span_alloc *a, struct span_node *n)
{
    span_account(a, n, -1);
    n->flags &= (uint8_t)~NODE_MISALIGNED;
    if (n->size >= a->large_size && (n->base & (a->large_size - 1)) != 0)
        n->flags |= NODE_MISALIGNED;
    span_account(a, n, 1);
}

/* ---- splitting and coalescing ------------------------------------------ */

size_t span_carve_cost(const struct span_node *f, uint64_t place, uint64_t size)
{
    return (size_t)(place > f->base) + (size_t)(place + size < span_end(f));
}

static struct span_node *new_free_span(struct span_alloc *a, struct span_node *after,
                                       uint64_t base, uint64_t size, uint16_t region)
{
    struct span_node *n = node_get(a);

    n->base = base;
    n->size = size;
    n->state = SPAN_FREE;
    n->region = region;
    list_link_after(a, after, n);
    addr_insert(a, n);
    span_free_index_insert(a, n);
    return n;
}

struct span_node *span_carve(struct span_alloc *a, struct span_node *f, uint64_t place,
                             uint64_t size, enum span_state state, uint64_t tag)
{
    uint64_t base = f->base;
    uint64_t end = span_end(f);

    span_free_index_remove(a, f);
    f->base = place;
    f->size = size;
    f->state = (uint8_t)state;
    f->tag = tag;
    f->lock_count = 0;
    f->flags = 0;
    rb_propagate(&a->addr_tree, &f->addr_link);
    if (place > base)
        new_free_span(a, f->prev, base, place - base, f->region);
    if (place + size < end)
        new_free_span(a, f, place + size, end - place - size, f->region);
    if (state == SPAN_ALLOCATED && size >= a->large_size && (place & (a->large_size - 1)))
        f->flags |= NODE_MISALIGNED;
    span_account(a, f, 1);
    return f;
}

static bool mergeable(const struct span_node *n, const struct span_node *neighbour)
{
    return neighbour != NULL && neighbour->state == SPAN_FREE &&
           neighbour->region == n->region;
}

struct span_node *span_release(struct span_alloc *a, struct span_node *n)
{
    struct span_node *prev = n->prev;
    struct span_node *next = n->next;

    span_account(a, n, -1);
    n->state = SPAN_FREE;
    n->flags = 0;
    n->tag = 0;
    n->lock_count = 0;
    if (mergeable(n, prev)) {
        span_free_index_remove(a, prev);
        unlink_span(a, prev);
        n->size += prev->size;
        n->base = prev->base;
        node_put(a, prev);
    }
    if (mergeable(n, next)) {
        span_free_index_remove(a, next);
        unlink_span(a, next);
        n->size += next->size;
        node_put(a, next);
    }
    rb_propagate(&a->addr_tree, &n->addr_link);
    span_free_index_insert(a, n);
    return n;
}

/* ---- searching --------------------------------------------------------- */

bool span_place_low(const struct span_node *f, const struct span_fit *fit, uint64_t *place)
{
    uint64_t lo = f->base > fit->lo ? f->base : fit->lo;
    uint64_t hi = span_end(f) < fit->hi ? span_end(f) : fit->hi;
    uint64_t p;

    if (lo > UINT64_MAX - fit->align)
        return false;
    p = align_up(lo, fit->align);
    if (p >= hi || hi - p < fit->size)
        return false;
    *place = p;
    return true;
}

static bool place_high(const struct span_node *f, const struct span_fit *fit, uint64_t *place)
{
    uint64_t lo = f->base > fit->lo ? f->base : fit->lo;
    uint64_t hi = span_end(f) < fit->hi ? span_end(f) : fit->hi;
    uint64_t p;

    if (hi < lo || hi - lo < fit->size)
        return false;
    p = align_down(hi - fit->size, fit->align);
    if (p < lo)
        return false;
    *place = p;
    return true;
}

/* Leftmost free span of size >= min_size in which fit has a place. Spans
 * left of r end at or before r's base, right ones start after its end. */
static struct span_node *search_low(const struct rb_node *r, uint64_t min_size,
                                    const struct span_fit *fit, uint64_t *place)
{
    while (r != NULL) {
        const struct span_node *n = span_of_addr_link(r);
        struct span_node *found;

        if (n->max_free < min_size)
            return NULL;
        if (n->base > fit->lo) {
            found = search_low(r->left, min_size, fit, place);
            if (found != NULL)
                return found;
        }
        if (n->base >= fit->hi)
            return NULL;
        if (n->state == SPAN_FREE && n->size >= min_size && span_place_low(n, fit, place))
            return (struct span_node *)n;
        r = r->right;
    }
    return NULL;
}

static struct span_node *search_high(const struct rb_node *r, uint64_t min_size,
                                     const struct span_fit *fit, uint64_t *place)
{
    while (r != NULL) {
        const struct span_node *n = span_of_addr_link(r);
        struct span_node *found;

        if (n->max_free < min_size)
            return NULL;
        if (n->base >= fit->hi) {
            r = r->left;
            continue;
        }
        found = search_high(r->right, min_size, fit, place);
        if (found != NULL)
            return found;
        if (span_end(n) <= fit->lo)
            return NULL;
        if (n->state == SPAN_FREE && n->size >= min_size && place_high(n, fit, place))
            return (struct span_node *)n;
        r = r->left;
    }
    return NULL;
}

/* Size from which every span fits at any alignment (0 if none does). */
static uint64_t always_fits_size(const struct span_fit *fit)
{
    uint64_t slack = fit->align - SPAN_GRANULE;

    return fit->size > UINT64_MAX - slack ? 0 : fit->size + slack;
}

static struct span_node *find_any(const struct span_alloc *a, const struct span_fit *fit,
                                  bool high, uint64_t *place)
{
    uint64_t easy = always_fits_size(fit);
    struct span_node *n = NULL;

    if (easy != 0)
        n = high ? search_high(a->addr_tree.root, easy, fit, place)
                 : search_low(a->addr_tree.root, easy, fit, place);
    if (n == NULL && easy != fit->size)
        n = high ? search_high(a->addr_tree.root, fit->size, fit, place)
                 : search_low(a->addr_tree.root, fit->size, fit, place);
    return n;
}

struct span_node *span_find_lowest(const struct span_alloc *a, const struct span_fit *fit,
                                   uint64_t *place)
{
    uint64_t easy = always_fits_size(fit);
    struct span_node *n = NULL;
    struct span_node *lower;
    struct span_fit below = *fit;
    uint64_t lower_place;

    if (easy != 0)
        n = search_low(a->addr_tree.root, easy, fit, place);
    if (easy == fit->size)
        return n;
    if (n != NULL)
        below.hi = n->base;
    lower = search_low(a->addr_tree.root, fit->size, &below, &lower_place);
    if (lower != NULL) {
        *place = lower_place;
        return lower;
    }
    return n;
}

/* Smallest free span of at least size in the (size, base) tree. */
static struct span_node *size_lower_bound(const struct span_alloc *a, uint64_t size)
{
    const struct rb_node *r = a->size_tree.root;
    struct span_node *best = NULL;

    while (r != NULL) {
        struct span_node *n = size_node(r);
        if (n->size >= size) {
            best = n;
            r = r->left;
        } else {
            r = r->right;
        }
    }
    return best;
}

/* Best fit among the first SPAN_PROBES free spans in size order. */
static struct span_node *probe_best_fit(const struct span_alloc *a, const struct span_fit *fit,
                                        uint64_t *place)
{
    uint64_t granules = fit->size >> SPAN_GRANULE_SHIFT;
    unsigned probes = 0;
    struct span_node *candidate;

    if (granules <= SPAN_QUICK_LISTS) {
        uint64_t mask = a->list_bitmap & (~(uint64_t)0 << (granules - 1));
        while (mask != 0 && probes < SPAN_PROBES) {
            unsigned k = (unsigned)__builtin_ctzll(mask);
            struct span_node *n;
            for (n = a->lists[k]; n != NULL && probes < SPAN_PROBES; n = n->u.list.next) {
                probes++;
                if (span_place_low(n, fit, place))
                    return n;
            }
            mask &= mask - 1;
        }
    }
    candidate = size_lower_bound(a, fit->size);
    for (; candidate != NULL && probes < SPAN_PROBES; probes++) {
        if (span_place_low(candidate, fit, place))
            return candidate;
        candidate = size_node(rb_next(&candidate->u.size_link));
    }
    return NULL;
}

static struct span_node *find_unconstrained(const struct span_alloc *a, uint64_t size,
                                            uint64_t *place)
{
    uint64_t granules = size >> SPAN_GRANULE_SHIFT;
    struct span_node *n = NULL;

    if (a->policy == SPAN_POLICY_BEST_FIT) {
        if (granules <= SPAN_QUICK_LISTS) {
            uint64_t mask = a->list_bitmap & (~(uint64_t)0 << (granules - 1));
            if (mask != 0)
                n = a->lists[__builtin_ctzll(mask)];
        }
        if (n == NULL)
            n = size_lower_bound(a, size);
    } else if (a->policy == SPAN_POLICY_INSTANT_FIT) {
        unsigned k = floor_log2(granules);
        uint64_t mask;
        if (((uint64_t)1 << k) != granules)
            k++;
        mask = k < 64 ? a->list_bitmap & (~(uint64_t)0 << k) : 0;
        if (mask != 0)
            n = a->lists[__builtin_ctzll(mask)];
    }
    if (n != NULL)
        *place = n->base;
    return n;
}

static struct span_node *find_place(const struct span_alloc *a, const struct span_fit *fit,
                                    uint64_t *place)
{
    struct span_node *n;
    bool constrained = fit->align > SPAN_GRANULE || fit->hi < a->mem_end;

    if (a->policy == SPAN_POLICY_TOP_OF_HEAP)
        return find_any(a, fit, true, place);
    if (!constrained) {
        n = find_unconstrained(a, fit->size, place);
        if (n != NULL)
            return n;
        if (a->policy == SPAN_POLICY_BEST_FIT)
            return NULL; /* the size index is exact for best fit */
    } else if (a->policy == SPAN_POLICY_BEST_FIT) {
        n = probe_best_fit(a, fit, place);
        if (n != NULL)
            return n;
    }
    return find_any(a, fit, false, place);
}

/* ---- entry points ------------------------------------------------------ */

static bool is_pow2(uint64_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

int span_init(struct span_alloc *a, enum span_policy policy, uint64_t large_size,
              struct span_node *store, size_t capacity)
{
    size_t i;

    if (a == NULL || store == NULL || capacity == 0 || (unsigned)policy >= SPAN_POLICY_COUNT)
        return -EINVAL;
    if (large_size == 0)
        large_size = (uint64_t)2 << 20;
    if (!is_pow2(large_size) || large_size < SPAN_LARGE_MIN || large_size > SPAN_LARGE_MAX)
        return -EINVAL;
    memset(a, 0, sizeof(*a));
    a->policy = policy;
    a->large_size = large_size;
    a->large_order = floor_log2(large_size >> SPAN_GRANULE_SHIFT);
    a->buddy_cap = a->large_order > LINUX_MAX_ORDER ? a->large_order : LINUX_MAX_ORDER;
    a->store = store;
    a->capacity = capacity;
    rb_init(&a->addr_tree, addr_augment);
    rb_init(&a->size_tree, NULL);
    for (i = capacity; i-- > 0;)
        node_put(a, &store[i]);
    return 0;
}

int span_add_region(struct span_alloc *a, uint64_t base, uint64_t size)
{
    unsigned i;
    uint16_t region;

    if (a == NULL || size == 0 || (base | size) & (SPAN_GRANULE - 1) ||
        base > UINT64_MAX - size)
        return -EINVAL;
    for (i = 0; i < a->region_count; i++) {
        const struct span_region *r = &a->regions[i];
        if (base < r->base + r->size && r->base < base + size)
            return -EEXIST;
    }
    if (a->region_count == SPAN_MAX_REGIONS || a->nodes_free == 0)
        return -ENOMEM;

    region = (uint16_t)a->region_count++;
    a->regions[region] = (struct span_region){ .base = base, .size = size };
    a->total_bytes += size;
    if (base + size > a->mem_end)
        a->mem_end = base + size;
    {
        struct span_node *before = NULL;
        struct span_node *n = a->first;
        while (n != NULL && n->base < base) {
            before = n;
            n = n->next;
        }
        new_free_span(a, before, base, size, region);
    }
    return 0;
}

/* Could the request ever be met, in an empty instance? */
static int check_possible(const struct span_alloc *a, uint64_t size, uint64_t align,
                          uint64_t hi)
{
    bool any_big = false;
    unsigned i;

    for (i = 0; i < a->region_count; i++) {
        const struct span_region *r = &a->regions[i];
        struct span_node whole = { .base = r->base, .size = r->size };
        struct span_fit fit = { .size = size, .align = align, .lo = 0, .hi = hi };
        uint64_t place;
        if (r->size >= size)
            any_big = true;
        if (span_place_low(&whole, &fit, &place))
            return 0;
    }
    return any_big ? -ERANGE : -E2BIG;
}

int span_alloc(struct span_alloc *a, const struct span_request *req, uint64_t tag,
               uint64_t *out_base)
{
    struct span_fit fit;
    struct span_node *n;
    uint64_t place = 0;
    uint64_t align;
    bool large;
    int err;

    if (a == NULL || req == NULL || out_base == NULL || req->size == 0 ||
        (req->flags & ~SPAN_REQUEST_FLAGS) != 0)
        return -EINVAL;
    align = req->align == 0 ? SPAN_GRANULE : req->align;
    if (!is_pow2(align) || align < SPAN_GRANULE)
        return -EINVAL;
    if (req->size > UINT64_MAX - (SPAN_GRANULE - 1))
        return -E2BIG;

    fit.size = align_up(req->size, SPAN_GRANULE);
    fit.lo = 0;
    fit.hi = req->limit == 0 ? UINT64_MAX : align_down(req->limit, SPAN_GRANULE);
    large = fit.size >= a->large_size;
    fit.align = large && align < a->large_size ? a->large_size : align;
    err = check_possible(a, fit.size,
                         large && (req->flags & SPAN_LARGE_OK) ? align : fit.align, fit.hi);
    if (err != 0)
        return err;

    n = find_place(a, &fit, &place);
    if (n == NULL && large && (req->flags & SPAN_LARGE_OK) && align < fit.align) {
        fit.align = align;
        n = find_place(a, &fit, &place);
    }
    if (n == NULL || span_carve_cost(n, place, fit.size) > a->nodes_free)
        return -ENOMEM;
    span_carve(a, n, place, fit.size, SPAN_ALLOCATED, tag);
    *out_base = place;
    return 0;
}

int span_reserve(struct span_alloc *a, uint64_t base, uint64_t size, uint64_t tag)
{
    struct span_node *n;

    if (a == NULL || size == 0 || (base | size) & (SPAN_GRANULE - 1) ||
        base > UINT64_MAX - size)
        return -EINVAL;
    n = span_containing(a, base);
    if (n == NULL)
        return -EINVAL;
    if (n->state != SPAN_FREE || span_end(n) < base + size)
        return -EBUSY;
    if (span_carve_cost(n, base, size) > a->nodes_free)
        return -ENOMEM;
    span_carve(a, n, base, size, SPAN_ALLOCATED, tag);
    return 0;
}

static struct span_node *segment_at(const struct span_alloc *a, uint64_t base)
{
    struct span_node *n = span_containing(a, base);

    if (n == NULL || n->base != base || n->state != SPAN_ALLOCATED)
        return NULL;
    return n;
}

int span_free(struct span_alloc *a, uint64_t base)
{
    struct span_node *n;

    if (a == NULL)
        return -EINVAL;
    n = segment_at(a, base);
    if (n == NULL)
        return -ENOENT;
    if (n->lock_count > 0 || (n->flags & NODE_MOVING))
        return -EBUSY;
    span_release(a, n);
    return 0;
}

int span_lock(struct span_alloc *a, uint64_t base)
{
    struct span_node *n;

    if (a == NULL)
        return -EINVAL;
    n = segment_at(a, base);
    if (n == NULL)
        return -ENOENT;
    if (n->flags & NODE_MOVING)
        return -EBUSY;
    if (n->lock_count == UINT32_MAX)
        return -ERANGE;
    span_account(a, n, -1);
    n->lock_count++;
    span_account(a, n, 1);
    return 0;
}

int span_unlock(struct span_alloc *a, uint64_t base)
{
    struct span_node *n;

    if (a == NULL)
        return -EINVAL;
    n = segment_at(a, base);
    if (n == NULL)
        return -ENOENT;
    if (n->lock_count == 0)
        return -EINVAL;
    span_account(a, n, -1);
    n->lock_count--;
    span_account(a, n, 1);
    return 0;
}

static void fill_info(const struct span_node *n, struct span_info *info)
{
    info->base = n->base;
    info->size = n->size;
    info->tag = n->tag;
    info->state = (enum span_state)n->state;
    if (n->state == SPAN_ALLOCATED && n->lock_count > 0)
        info->state = SPAN_LOCKED;
    info->lock_count = n->lock_count;
    info->region = n->region;
    info->misaligned = (n->flags & NODE_MISALIGNED) != 0;
    info->moving = (n->flags & NODE_MOVING) != 0;
}

int span_lookup(const struct span_alloc *a, uint64_t addr, struct span_info *info)
{
    const struct span_node *n;

    if (a == NULL || info == NULL)
        return -EINVAL;
    n = span_containing(a, addr);
    if (n == NULL)
        return -ENOENT;
    fill_info(n, info);
    return 0;
}

int span_walk(const struct span_alloc *a, span_walk_fn fn, void *ctx)
{
    const struct span_node *n;

    if (a == NULL || fn == NULL)
        return -EINVAL;
    for (n = a->first; n != NULL; n = n->next) {
        struct span_info info;
        int ret;
        fill_info(n, &info);
        ret = fn(ctx, &info);
        if (ret != 0)
            return ret;
    }
    return 0;
}
