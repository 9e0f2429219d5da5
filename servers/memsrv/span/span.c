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
 * The books are 64-byte slots from a pool the caller fills: span_init's
 * array, then blocks given with span_add_nodes (a page header per 4 KiB
 * points at the block, so a slot finds its block in one load; slots are
 * taken from the oldest partly used block, so the newest drain and
 * span_take_nodes can hand them back; a block that keeps a few live slots
 * is emptied by moving them, see "giving slots back"). Metadata is per
 * span, never per page, and never comes from the memory managed:
 *   a segment (allocated, locked or in-transit span) takes ONE slot, its
 *     span_node: address-list links, base, size, state, lock count, its
 *     link in the segment hash and the caller's tag (64 bytes in all);
 *   a free span takes TWO: its span_node and a span_free with its links in
 *     the free-span address tree and in the size index.
 * Every operation first counts the slots it needs (span_carve_cost,
 * span_release_cost) and fails with -ENOMEM before touching anything.
 *
 *  - addr_tree: a red-black tree of the FREE spans by base address (but
 *    the pending ones, below), augmented with max_free, the largest free
 *    span in each subtree. It answers "the lowest (or highest) free place
 *    for this size, alignment and address window" in O(log n): subtrees
 *    whose max_free is too small are skipped. Segments are not in it, so
 *    carving a segment off the end of a free span, or freeing a segment next
 *    to a free span, changes no tree shape: only max_free is recomputed,
 *    upwards until unchanged.
 *  - pending list (best fit, instant fit and buddy: the policies whose
 *    common case a free list serves): free spans of at most 64 granules
 *    (SPAN_PENDING_SIZE) that have not entered addr_tree yet, newest
 *    first, at most SPAN_PENDING_MAX. These policies find a small span
 *    through its list, and a small free span is usually taken by an
 *    allocation or merged into a freed neighbour before anything looks
 *    for it by address; waiting, it costs neither the tree insertion nor
 *    the erasure (about 190 and 120 instructions). An address-ordered
 *    search for a request that a small span could hold first settles the
 *    list (inserts every pending span); a request larger than 64 granules
 *    skips that, since no pending span can hold it. A pending span that
 *    grows past 64 granules (a merge) enters the tree at once, and when the
 *    list is full the oldest enters it to make room, so a free never costs
 *    more than one insertion and a settle at most SPAN_PENDING_MAX. The
 *    largest free span is the larger of the tree's max_free and the
 *    largest pending span (span_stats looks at each, as for the counters
 *    below). A carve's new segment gets its state before it joins the
 *    address list, since filing the piece above it may settle a span whose
 *    placement walks the list (a stale slot would look like a free span).
 *  - hash: segments by base (chained through the span_node), for free,
 *    lock and lookup in O(1); its table is resized by the caller as
 *    span_hash_wanted says. An arbitrary address is found by the hash, or
 *    in the free span at or below it, or by walking the address list from
 *    that free span (only an address inside a segment walks).
 *  - prev/next: all spans as a doubly linked list in address order, so
 *    coalescing reaches both neighbours in O(1).
 *  - the size index of free spans, which depends on the policy (4):
 *      best fit:    64 quick-fit lists, one per exact size of 1..64 granules
 *                   (4 KiB..256 KiB), and a red-black size_tree keyed
 *                   (size, base) for larger spans; a span that changes size
 *                   keeps its place in the tree when its key still sorts
 *                   between its neighbours;
 *      instant fit: 64 lists, list k holding sizes in [2^k, 2^(k+1))
 *                   granules (k < 52 in practice);
 *      buddy:       lists per order: list k holds the free spans whose
 *                   largest naturally aligned block (below) has order k;
 *      top of heap, marker: none; they search the augmented addr_tree
 *                   (the marker policy also keeps `marker`, a pointer to
 *                   one free span).
 *    A 64-bit bitmap says which lists are non-empty, so "the smallest
 *    non-empty list at or above k" is one count-trailing-zeros.
 *  - per-region byte counters, the free-span histogram and the two sums
 *    the Linux fragmentation figures need (blocks of the buddy
 *    decomposition, aligned large pages per region), kept by arithmetic
 *    (popcount) whenever a span enters, leaves or resizes in the free
 *    index (a resize by difference); each free span caches its share, so
 *    span_stats is O(regions), not O(spans): it sums the regions' large
 *    pages and the histogram's free-span count when asked. A pending span
 *    is in the byte counters and the histogram at once, but its two block
 *    shares (the dearest arithmetic) only when it enters the tree: until
 *    then its cached shares are 0 and span_stats adds the pending spans'
 *    shares itself (at most SPAN_PENDING_MAX, so O(regions + 256)).
 *
 * 3. Invariants (all checked by span_check)
 * -----------------------------------------
 *  I1 the spans of each region tile it exactly, in address order; list order
 *     equals tree order; no span is empty or crosses a region end.
 *  I2 no two free spans are adjacent in one region (fully coalesced).
 *  I3 a span is in the free index iff it is FREE, in exactly the list or tree
 *     its size (buddy: its largest block's order, recounted block by block)
 *     and the policy say; list bitmap bits match list emptiness; the marker
 *     is NULL or points at a free span, and only the marker policy sets it.
 *  I4 max_free of every addr_tree node is exact; both trees are valid
 *     red-black trees; the addr_tree holds exactly the free spans that are
 *     not pending, in list order; the pending list holds the others (their
 *     max_free 0), at most SPAN_PENDING_MAX, none larger than the policy
 *     lets wait; the hash holds exactly the non-free spans.
 *  I5 every counter (free bytes, per-region free/transit/locked bytes,
 *     segment and free-span counts, misaligned count, histogram, buddy
 *     block sums, the latter with the pending spans' shares added, which
 *     are cached as 0) equals a recount; every slot is a span, a free span's
 *     span_free, a reserved slot of a pending move, or free.
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
 *    span_alloc tries that first, before its general checks and search
 *    (its quick path: 4 KiB alignment, no limit, no flag but
 *    SPAN_LARGE_OK, smaller than a large page, so the segment needs
 *    nothing but its place; anything else, or no slot for the split, takes
 *    the general path, which makes the same choice);
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
 *  buddy (binary buddy over the span books): a request of n granules has
 *    order k = ceil(log2 n), capped at buddy_cap (max(10, large order), the
 *    same cap as the statistics' decomposition; a larger request is a run
 *    of top-order blocks). Every free span, being maximal, is exactly the
 *    set of naturally aligned blocks a buddy allocator with full
 *    coalescing would hold for that memory: its buddy decomposition,
 *    blocks growing from its base to its most aligned point and shrinking
 *    after it (one block per set bit of each distance, so it is computed,
 *    not stored). The span sits on the list of its largest block's order;
 *    allocation takes the first non-empty list j >= k, the lowest in
 *    address of its first SPAN_PROBES spans (address order: taking the
 *    list head, as Linux does, left a quarter of large segments misaligned
 *    at 60% occupancy in span-bench, this none), and in that span the
 *    smallest block of order >= k (lowest of equals), in O(1).
 *    The segment goes at the block's base, so every segment is naturally
 *    aligned to its block and a large one comes large-page aligned. A size
 *    that is not a power of two takes the block and gives the tail back at
 *    once, as Linux's alloc_pages_exact does: the tail stays in the free
 *    span left after the segment, so nothing is lost to rounding for
 *    longer than the call. Splitting is the carve (the rest of the span
 *    stays free, its decomposition the halves a buddy split would leave);
 *    coalescing is the release's merge with both neighbours, which joins
 *    every buddy pair that is free (and merges non-buddies too, which
 *    changes nothing the lists see but the span's list). Deviations from a
 *    textbook buddy: a span is one list entry, filed under its largest
 *    block, so "the smallest block" is looked for in the spans of the first
 *    list that has one of order >= k, not among all blocks; the span is
 *    chosen by address among a few, not taken from the head; and when no
 *    naturally aligned place exists (or the request has a limit or a
 *    stricter alignment, then searched by the addr_tree at the natural
 *    alignment first), the lowest place at the request's own alignment is
 *    taken, so the policy never refuses what the books can do (that
 *    segment is not naturally aligned; a large one may be marked
 *    misaligned exactly as with the other policies).
 *  marker (seed 004: a page-frame allocator with a marker index): `marker`
 *    points into a free span, initially the greatest. An allocation takes
 *    the lowest place for it in that span, O(1) for an unconstrained one
 *    (the span's base); span_carve bumps the marker past the segment (to
 *    the free part above it, or the same span when the segment was its
 *    low end) and clears it when the span is used up; a free that merges
 *    the marker's span into its lower neighbour moves it there. When the
 *    request does not fit at the marker (too little room, or an alignment
 *    or limit it cannot meet there), the marker is recalculated, one
 *    descent of the augmented addr_tree to the greatest free span (lowest
 *    of equals), O(log n), and the request retried there; if that fails
 *    too, the exact addr_tree search (lowest place) takes it, so a request
 *    that only fits off the greatest extent still succeeds. The marker is
 *    a hint, not part of the books: a failed allocation may move it.
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
 * Every entry point validates its arguments and its slot needs first, then
 * changes state in steps that cannot fail. A free that leaves a free span
 * with no free neighbour needs a slot for its span_free: -ENOMEM when the
 * pool has none (the caller adds a block and retries). A compaction
 * proposal reserves the slots its settlement needs, so span_move_done and
 * span_move_failed still cannot fail. Bad input is an error code, never
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
 *    Buddy looks at as many spans of a list for the lowest (at 60%
 *    occupancy in span-bench --quick, 8 left 2 large segments misaligned
 *    and 0.9% of large requests failing, 16 none).
 *  SPAN_PENDING_MAX = 256: in span-bench's four best-fit steady states
 *    (400,000 calls) the list overflowed 891 times (64: 22,699 times), so
 *    almost every small free span that is taken or merged before a search
 *    never enters the tree; a settle costs at most 256 insertions (about
 *    50,000 instructions), paid by a small constrained or SPAN_HIGH
 *    allocation or a plan step, and each insertion at most once per free.
 *  64 regions: e820/multiboot maps on real machines have tens of entries.
 *  Buddy orders up to max(10, large order): Linux's MAX_ORDER is 10, and the
 *    statistics must be comparable with /proc/pagetypeinfo-style numbers;
 *    the buddy policy uses the same cap, so with 2 MiB large pages its
 *    largest block is 4 MiB, as Linux's.
 */
#include <common/rbtree_inline.h>
#include <common/string.h>

#include "span_internal.h"

#define SPAN_PROBES     16
#define LINUX_MAX_ORDER 10
#define NEIGHBOUR_WALK                                                                                                 \
    8 /* spans walked each way for a free neighbour before a tree descent (8: fewer instructions than 4 in span-bench) */

/* The allocation and free paths are a few hundred instructions: calls
 * and their register shuffles are a real share of that, so the helpers
 * they run on every call are forced inline. */
#define HOT static inline __attribute__((always_inline))

static struct span_node *size_node(const struct rb_node *r)
{
    return r != NULL ? RB_ENTRY(r, struct span_free, idx.size_link)->span : NULL;
}

/* Recomputes the max_free of r's span_free from its children; says
 * whether it changed (the tree's augment callback). */
static inline bool free_augment_one(struct rb_node *r)
{
    struct span_free *e = span_free_of(r);
    uint64_t best = e->span->size;

    if (r->left != NULL && span_free_of(r->left)->max_free > best)
        best = span_free_of(r->left)->max_free;
    if (r->right != NULL && span_free_of(r->right)->max_free > best)
        best = span_free_of(r->right)->max_free;
    if (e->max_free == best)
        return false;
    e->max_free = best;
    return true;
}

static bool free_augment(struct rb_node *r) { return free_augment_one(r); }

/* The free-span tree's operations with free_augment_one inlined (the
 * tree's callback is the same function, for the generic entry points). */
static void addr_insert(struct span_alloc *a, struct span_free *e, struct rb_node *parent, struct rb_node **link)
{
    rb_insert_with(&a->addr_tree, &e->addr_link, parent, link, free_augment_one);
}

static void addr_erase(struct span_alloc *a, struct span_free *e)
{
    rb_erase_with(&a->addr_tree, &e->addr_link, free_augment_one);
}

/* Recomputes max_free from e up while it changes. */
HOT void free_propagate(struct span_free *e) { rb_propagate_through(&e->addr_link, NULL, free_augment_one); }

/* The size tree is not augmented. */
static void size_erase(struct span_alloc *a, struct span_free *e)
{
    rb_erase_with(&a->size_tree, &e->idx.size_link, NULL);
}

const char *span_state_name(enum span_state state)
{
    switch (state) {
    case SPAN_FREE: return "free";
    case SPAN_ALLOCATED: return "allocated";
    case SPAN_LOCKED: return "locked";
    case SPAN_IN_TRANSIT: return "in-transit";
    }
    return "?";
}

/* The names memsrv.policy= takes (no default case: a new policy must be named). */
const char *span_policy_name(enum span_policy policy)
{
    switch (policy) {
    case SPAN_POLICY_BEST_FIT: return "quickfit";
    case SPAN_POLICY_TOP_OF_HEAP: return "topheap";
    case SPAN_POLICY_INSTANT_FIT: return "instantfit";
    case SPAN_POLICY_BUDDY: return "buddy";
    case SPAN_POLICY_MARKER: return "marker";
    case SPAN_POLICY_COUNT: break;
    }
    return "?";
}

/* ---- slot pool --------------------------------------------------------- */

static struct span_block **block_head(struct span_alloc *a, uint32_t list)
{
    return list == BLOCK_PARTIAL ? &a->partial : &a->empty;
}

static void block_unlink(struct span_alloc *a, struct span_block *b)
{
    if (b->list == BLOCK_FULL)
        return;
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        *block_head(a, b->list) = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
}

/*
 * Puts b on the list its occupancy says. Slots are taken from the oldest
 * partly used block, so the books in use settle in the oldest blocks and
 * the newest ones drain and can be given back (a list kept in age order
 * costs a walk over the blocks only when one changes list).
 */
static void block_relist(struct span_alloc *a, struct span_block *b)
{
    uint32_t want = b->used == 0 ? BLOCK_EMPTY : b->free == NULL ? BLOCK_FULL : BLOCK_PARTIAL;
    struct span_block **link, *prev = NULL;

    if (want == b->list)
        return;
    block_unlink(a, b);
    b->list = want;
    if (want == BLOCK_FULL)
        return;
    for (link = block_head(a, want); *link != NULL && (*link)->seq < b->seq; link = &(*link)->next)
        prev = *link;
    b->prev = prev;
    b->next = *link;
    if (*link != NULL)
        (*link)->prev = b;
    *link = b;
}

HOT bool in_store(const struct span_alloc *a, const void *slot)
{
    const struct span_node *n = slot;
    return n >= a->store && n < a->store + a->store_count;
}

HOT struct span_block *block_of(const void *slot)
{
    return *(struct span_block *const *)((uintptr_t)slot & ~(uintptr_t)(SPAN_PAGE - 1));
}

/* A free slot; the caller has checked nodes_free. The fixed store goes
 * first, then partly used blocks, then empty ones, so blocks drain. */
HOT union span_slot *slot_get(struct span_alloc *a)
{
    struct span_node *n = a->store_free;

    if (n != NULL) {
        a->store_free = n->u.pool.next;
    } else {
        struct span_block *b = a->partial != NULL ? a->partial : a->empty;
        /* The oldest empty block too: the newest are the ones to give back. */
        n = b->free;
        b->free = n->u.pool.next;
        b->used++;
        block_relist(a, b);
    }
    a->nodes_free--;
    return (union span_slot *)n;
}

HOT void slot_put(struct span_alloc *a, void *slot)
{
    struct span_node *n = slot;

    if (in_store(a, n)) {
        n->u.pool.next = a->store_free;
        a->store_free = n;
    } else {
        struct span_block *b = block_of(n);
        n->u.pool.next = b->free;
        b->free = n;
        b->used--;
        block_relist(a, b);
    }
    a->nodes_free++;
}

HOT struct span_node *node_get(struct span_alloc *a) { return &slot_get(a)->node; }

HOT struct span_free *ext_get(struct span_alloc *a) { return &slot_get(a)->ext; }

int span_add_nodes(struct span_alloc *a, void *mem, size_t bytes, uint64_t owner)
{
    struct span_block *b = mem;
    char *page;
    size_t p, pages;

    if (a == NULL || mem == NULL || bytes == 0 || bytes % SPAN_PAGE != 0 || (uintptr_t)mem % SPAN_PAGE != 0 ||
        bytes / SPAN_PAGE > ((size_t)1 << 28))
        return -EINVAL;
    pages = bytes / SPAN_PAGE;
    *b = (struct span_block){ .self = b,
                              .bytes = bytes,
                              .owner = owner,
                              .slots = (uint32_t)(pages * SPAN_SLOTS_PER_PAGE),
                              .list = BLOCK_FULL,
                              .seq = a->block_seq++ };
    for (p = pages; p-- > 0;) {
        size_t i;
        page = (char *)mem + p * SPAN_PAGE;
        *(struct span_block **)page = b;
        for (i = SPAN_SLOTS_PER_PAGE; i >= 1; i--) {
            struct span_node *n = (struct span_node *)(page + i * sizeof(union span_slot));
            n->u.pool.next = b->free;
            b->free = n;
        }
    }
    a->capacity += b->slots;
    a->nodes_free += b->slots;
    a->blocks++;
    if (b->slots > a->block_slots_max)
        a->block_slots_max = b->slots;
    block_relist(a, b);
    return 0;
}

void span_reserve_slot(struct span_alloc *a, struct span_node *n)
{
    n->flags |= NODE_RESERVED;
    a->nodes_free--;
    a->reserved++;
}

void span_return_slot(struct span_alloc *a, struct span_node *n)
{
    if (!(n->flags & NODE_RESERVED))
        return;
    n->flags &= (uint8_t)~NODE_RESERVED;
    a->nodes_free++;
    a->reserved--;
}

/* ---- segments by base -------------------------------------------------- */

HOT uint64_t hash_bucket(const struct span_alloc *a, uint64_t base)
{
    return ((base >> SPAN_GRANULE_SHIFT) * 0x9e3779b97f4a7c15ull >> 29) & a->hash_mask;
}

HOT void hash_insert(struct span_alloc *a, struct span_node *n)
{
    struct span_node **b = &a->hash[hash_bucket(a, n->base)];

    n->u.seg.hash_next = *b;
    *b = n;
    a->hashed++;
}

/* The link that points at the segment starting at base, or the NULL at
 * the end of its chain: a free finds and unlinks with one walk. */
HOT struct span_node **hash_link(const struct span_alloc *a, uint64_t base)
{
    struct span_node **p = &a->hash[hash_bucket(a, base)];

    while (*p != NULL && (*p)->base != base)
        p = &(*p)->u.seg.hash_next;
    return p;
}

HOT void hash_unlink(struct span_alloc *a, struct span_node **link)
{
    *link = (*link)->u.seg.hash_next;
    a->hashed--;
}

HOT void hash_remove(struct span_alloc *a, struct span_node *n) { hash_unlink(a, hash_link(a, n->base)); }

void span_hash_insert(struct span_alloc *a, struct span_node *n) { hash_insert(a, n); }

void span_hash_remove(struct span_alloc *a, struct span_node *n) { hash_remove(a, n); }

struct span_node *span_hash_find(const struct span_alloc *a, uint64_t base) { return *hash_link(a, base); }

size_t span_hash_wanted(const struct span_alloc *a)
{
    uint64_t want = SPAN_HASH_INLINE;

    if (a == NULL || span_hash_right(a))
        return 0;
    while (2 * want < a->hashed)
        want *= 2;
    return want == SPAN_HASH_INLINE ? 0 : (size_t)want * sizeof(struct span_node *);
}

int span_hash_resize(struct span_alloc *a, void *mem, size_t bytes, void **old, size_t *old_bytes)
{
    struct span_node **from, **to = mem;
    uint64_t count, i;

    if (a == NULL || old == NULL || old_bytes == NULL)
        return -EINVAL;
    if (mem == NULL) {
        to = a->hash_inline;
        bytes = sizeof(a->hash_inline);
    }
    count = bytes / sizeof(*to);
    if (count < SPAN_HASH_INLINE || (count & (count - 1)) != 0 || count * sizeof(*to) != bytes || to == a->hash)
        return -EINVAL;
    from = a->hash;
    *old = from == a->hash_inline ? NULL : (void *)from;
    *old_bytes = from == a->hash_inline ? 0 : (size_t)(a->hash_mask + 1) * sizeof(*from);
    memset(to, 0, bytes);
    {
        uint64_t old_count = a->hash_mask + 1;
        struct span_node *chain = NULL;
        /* Gather every entry first: the old table may be the inline one
         * that the new table is not, or the other way round. */
        for (i = 0; i < old_count; i++) {
            while (from[i] != NULL) {
                struct span_node *n = from[i];
                from[i] = n->u.seg.hash_next;
                n->u.seg.hash_next = chain;
                chain = n;
            }
        }
        a->hash = to;
        a->hash_mask = count - 1;
        a->hashed = 0;
        while (chain != NULL) {
            struct span_node *n = chain;
            chain = n->u.seg.hash_next;
            hash_insert(a, n);
        }
    }
    return 0;
}

/* ---- address list ------------------------------------------------------ */

HOT void list_link_after(struct span_alloc *a, struct span_node *pos, struct span_node *n)
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

HOT void list_unlink(struct span_alloc *a, struct span_node *n)
{
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        a->first = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        a->last = n->prev;
}

/* ---- free spans by address (augmented) --------------------------------- */

static void free_tree_insert(struct span_alloc *a, struct span_free *e)
{
    struct rb_node **link = &a->addr_tree.root;
    struct rb_node *parent = NULL;
    uint64_t base = e->span->base;

    while (*link != NULL) {
        parent = *link;
        link = base < span_free_of(parent)->span->base ? &parent->left : &parent->right;
    }
    addr_insert(a, e, parent, link);
}

/* Inserts e right after (or before) p in address order: no descent. */
static void free_tree_insert_next(struct span_alloc *a, struct span_free *p, struct span_free *e, bool after)
{
    struct rb_node *parent, **link;

    rb_link_beside(&p->addr_link, after, &parent, &link);
    addr_insert(a, e, parent, link);
}

HOT bool in_addr_tree(const struct span_node *n) { return n->state == SPAN_FREE && n->u.free.ext->max_free != 0; }

/* Inserts the free span n (its ext set): next to a free span of the tree a
 * few spans away when there is one, else by descent. The spans walked over
 * are segments or pending free spans, none of them in the tree. */
static void free_tree_place(struct span_alloc *a, struct span_node *n)
{
    struct span_node *p = n->prev, *q = n->next;
    unsigned i;

    for (i = 0; i < NEIGHBOUR_WALK; i++) {
        if (p != NULL) {
            if (in_addr_tree(p)) {
                free_tree_insert_next(a, p->u.free.ext, n->u.free.ext, true);
                return;
            }
            p = p->prev;
        }
        if (q != NULL) {
            if (in_addr_tree(q)) {
                free_tree_insert_next(a, q->u.free.ext, n->u.free.ext, false);
                return;
            }
            q = q->next;
        }
    }
    free_tree_insert(a, n->u.free.ext);
}

struct span_node *span_containing(const struct span_alloc *a, uint64_t addr)
{
    const struct rb_node *r = a->addr_tree.root;
    const struct span_free *below = NULL;
    struct span_node *n = span_hash_find(a, addr);

    if (n != NULL)
        return n;
    /* The free span of the tree with the greatest base <= addr, then
     * forward: a segment's base is found by the hash, so only an address
     * inside a segment or a pending free span walks, over the spans since
     * the last free span in the tree. */
    while (r != NULL) {
        const struct span_free *e = span_free_of(r);
        if (e->span->base <= addr) {
            below = e;
            r = r->right;
        } else {
            r = r->left;
        }
    }
    for (n = below != NULL ? below->span : a->first; n != NULL && n->base <= addr; n = n->next)
        if (addr < span_end(n))
            return n;
    return NULL;
}

/* ---- statistics and the size index of free spans ------------------------ */

/* Bits set in each byte value: the distances popcounted below are
 * shorter than a buddy block of the largest order, so mostly 16 bits. */
#define POP2(n) n, n + 1, n + 1, n + 2
#define POP4(n) POP2(n), POP2(n + 1), POP2(n + 1), POP2(n + 2)
#define POP6(n) POP4(n), POP4(n + 1), POP4(n + 1), POP4(n + 2)
static const uint8_t pop8[256] = { POP6(0), POP6(1), POP6(1), POP6(2) };

/* Set bits of x < 2^24: the end stretches of a buddy decomposition are
 * shorter than 2^buddy_cap granules, and buddy_cap is at most 18 (1 GiB
 * large pages), so three table lookups count them. */
static inline unsigned popcount24(uint64_t x)
{
    return (unsigned)pop8[x & 0xff] + pop8[(x >> 8) & 0xff] + pop8[(x >> 16) & 0xff];
}

/*
 * The buddy decomposition of the free run [lo, hi) (granule numbers), orders
 * capped at cap, in three stretches: blocks growing from lo to c (one per
 * set bit of c - lo, smallest first), blocks of order cap from c to mid_end,
 * blocks shrinking from mid_end to hi (one per set bit of hi - mid_end,
 * largest first). Both end stretches are shorter than 2^cap granules.
 */
struct buddy_split {
    uint64_t lo, c, mid_end, hi;
};

static void buddy_split(uint64_t base, uint64_t size, unsigned cap, struct buddy_split *s)
{
    uint64_t big = (uint64_t)1 << cap;

    s->lo = base >> SPAN_GRANULE_SHIFT;
    s->hi = s->lo + (size >> SPAN_GRANULE_SHIFT);
    s->c = align_up(s->lo, big);
    s->mid_end = align_down(s->hi, big);
    if (s->c > s->mid_end) /* no cap-aligned point inside: the most aligned one */
        s->c = s->mid_end = align_down(s->hi, (uint64_t)1 << floor_log2(s->lo ^ s->hi));
}

/* One block per set bit of each end stretch's length, one per 2^cap
 * granules of the middle (buddy_split, inlined: this runs whenever a free
 * span changes). */
static inline __attribute__((always_inline)) uint64_t buddy_blocks(uint64_t base, uint64_t size, unsigned cap)
{
    uint64_t lo = base >> SPAN_GRANULE_SHIFT, hi = lo + (size >> SPAN_GRANULE_SHIFT);
    uint64_t big = (uint64_t)1 << cap, c = align_up(lo, big), mid_end = align_down(hi, big), middle = 0;

    if (c <= mid_end)
        middle = (mid_end - c) >> cap;
    else
        c = mid_end = align_down(hi, (uint64_t)1 << floor_log2(lo ^ hi));
    return popcount24(c - lo) + middle + popcount24(hi - mid_end);
}

uint64_t span_buddy_blocks(uint64_t base, uint64_t size, unsigned cap) { return buddy_blocks(base, size, cap); }

static inline uint64_t aligned_blocks(uint64_t base, uint64_t size, unsigned order)
{
    uint64_t block = (uint64_t)1 << (order + SPAN_GRANULE_SHIFT);
    uint64_t lo = align_up(base, block), hi = align_down(base + size, block);

    return hi > lo ? (hi - lo) >> (order + SPAN_GRANULE_SHIFT) : 0;
}

uint64_t span_aligned_blocks(uint64_t base, uint64_t size, unsigned order) { return aligned_blocks(base, size, order); }

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

unsigned span_buddy_top_order(uint64_t base, uint64_t size, unsigned cap)
{
    struct buddy_split s;
    unsigned top = 0;

    buddy_split(base, size, cap, &s);
    if (s.mid_end > s.c)
        return cap;
    if (s.c > s.lo)
        top = floor_log2(s.c - s.lo);
    if (s.hi > s.mid_end && floor_log2(s.hi - s.mid_end) > top)
        top = floor_log2(s.hi - s.mid_end);
    return top;
}

/* The base of the smallest block of order >= k (k <= cap) in free span n's
 * buddy decomposition, the lowest of equals; false if it has none. O(1). */
static bool buddy_pick(const struct span_node *n, unsigned k, unsigned cap, uint64_t *place)
{
    struct buddy_split s;
    uint64_t wanted = ~(((uint64_t)1 << k) - 1);
    uint64_t grow, shrink;
    unsigned order = cap + 1;
    uint64_t pfn = 0;

    buddy_split(n->base, n->size, cap, &s);
    grow = (s.c - s.lo) & wanted;
    shrink = (s.hi - s.mid_end) & wanted;
    if (grow != 0) {
        order = (unsigned)__builtin_ctzll(grow);
        pfn = s.lo + ((s.c - s.lo) & (((uint64_t)1 << order) - 1));
    }
    if (shrink != 0 && (unsigned)__builtin_ctzll(shrink) < order) {
        order = (unsigned)__builtin_ctzll(shrink);
        pfn = s.mid_end + ((s.hi - s.mid_end) & ~(((uint64_t)2 << order) - 1));
    }
    if (order > cap && s.mid_end > s.c) {
        order = cap;
        pfn = s.c;
    }
    if (order > cap)
        return false;
    *place = pfn << SPAN_GRANULE_SHIFT;
    return true;
}

/* The order a buddy allocation of size bytes asks for: its granules rounded
 * up to a power of two, capped (larger requests are runs of cap blocks). */
static unsigned buddy_order(const struct span_alloc *a, uint64_t size)
{
    uint64_t granules = size >> SPAN_GRANULE_SHIFT;
    unsigned k = floor_log2(granules);

    if (((uint64_t)1 << k) != granules)
        k++;
    return k < a->buddy_cap ? k : a->buddy_cap;
}

HOT unsigned list_index(const struct span_alloc *a, const struct span_node *n)
{
    uint64_t granules = n->size >> SPAN_GRANULE_SHIFT;

    if (a->policy == SPAN_POLICY_BEST_FIT) /* first: the default, and the cheapest */
        return (unsigned)(granules - 1);   /* granules <= 64 */
    if (a->policy == SPAN_POLICY_INSTANT_FIT)
        return floor_log2(granules);
    return span_buddy_top_order(n->base, n->size, a->buddy_cap); /* buddy (the others use no list) */
}

/* Which free spans the policy keeps on lists and which in the size tree:
 * set once by span_init, so that the hot paths compare a size and do not
 * branch on the policy. */
HOT bool uses_list(const struct span_alloc *a, uint64_t size) { return size <= a->list_max; }

HOT bool in_size_tree(const struct span_alloc *a, uint64_t size) { return size > a->tree_above; }

static void size_tree_insert(struct span_alloc *a, struct span_free *e)
{
    struct rb_node **link = &a->size_tree.root;
    struct rb_node *parent = NULL;
    uint64_t size = e->span->size, base = e->span->base;

    while (*link != NULL) {
        const struct span_node *p;
        parent = *link;
        p = size_node(parent);
        if (size < p->size || (size == p->size && base < p->base))
            link = &parent->left;
        else
            link = &parent->right;
    }
    rb_insert_with(&a->size_tree, &e->idx.size_link, parent, link, NULL);
}

/* Counters that follow the free spans: all arithmetic, O(1). A free span
 * keeps its own share of the block counts, so leaving costs no arithmetic.
 * sign is +1 (n joins the free spans) or -1 (it leaves them): both ways
 * must touch the same counters by the same amounts. Inlined so that the
 * constant sign folds away: this runs on every free-index change. The
 * free-span count and the large-page total are summed when asked
 * (span_internal.h), not kept here; the free bytes are kept, memsrv reads
 * them. */
HOT void free_stats_count(struct span_alloc *a, const struct span_node *n, int sign)
{
    uint64_t one = (uint64_t)(int64_t)sign;

    a->free_bytes += one * n->size;
    a->regions[n->region].free_bytes += one * n->size;
    a->regions[n->region].large_blocks += one * n->u.free.large_blocks;
    a->free_hist[floor_log2(n->size >> SPAN_GRANULE_SHIFT)] += one;
    a->buddy_blocks += one * n->u.free.buddy_blocks;
}

/* A pending free span (below) is in the byte counters and the histogram,
 * but its shares of the block sums are counted only when it enters the
 * address tree (span_stats adds the pending ones' itself): the shares are
 * the dearest counters, and most pending spans are gone before then. Its
 * cached shares are 0 meanwhile, so taking it out subtracts nothing. */
HOT bool shares_counted(const struct span_node *n) { return n->u.free.ext->max_free != 0; }

HOT void free_stats_add(struct span_alloc *a, struct span_node *n)
{
    bool counted = shares_counted(n);

    n->u.free.buddy_blocks = counted ? buddy_blocks(n->base, n->size, a->buddy_cap) : 0;
    n->u.free.large_blocks = counted ? aligned_blocks(n->base, n->size, a->large_order) : 0;
    free_stats_count(a, n, 1);
}

/* Counts the shares of a pending span that has just entered the tree. */
static void free_stats_shares(struct span_alloc *a, struct span_node *n)
{
    n->u.free.buddy_blocks = buddy_blocks(n->base, n->size, a->buddy_cap);
    n->u.free.large_blocks = aligned_blocks(n->base, n->size, a->large_order);
    a->buddy_blocks += n->u.free.buddy_blocks;
    a->regions[n->region].large_blocks += n->u.free.large_blocks;
}

HOT void free_stats_sub(struct span_alloc *a, const struct span_node *n) { free_stats_count(a, n, -1); }

/* A free span that was old_size bytes has its new base and size: the
 * counters take the difference (the same as a sub and an add). */
HOT void free_stats_resize(struct span_alloc *a, struct span_node *n, uint64_t old_size)
{
    struct span_region *r = &a->regions[n->region];
    unsigned old_bucket = floor_log2(old_size >> SPAN_GRANULE_SHIFT);
    unsigned bucket = floor_log2(n->size >> SPAN_GRANULE_SHIFT);

    a->free_bytes += n->size - old_size;
    r->free_bytes += n->size - old_size;
    if (shares_counted(n)) {
        uint64_t buddy = buddy_blocks(n->base, n->size, a->buddy_cap);
        uint64_t large = aligned_blocks(n->base, n->size, a->large_order);
        r->large_blocks += large - n->u.free.large_blocks;
        a->buddy_blocks += buddy - n->u.free.buddy_blocks;
        n->u.free.buddy_blocks = buddy;
        n->u.free.large_blocks = large;
    }
    if (bucket != old_bucket) {
        a->free_hist[old_bucket]--;
        a->free_hist[bucket]++;
    }
}

/* ---- free spans waiting outside the address tree ------------------------
 *
 * A small free span is taken by an allocation of its own size or merged
 * with a freed neighbour soon more often than it is looked for by
 * address, so it waits on the pending list (newest first) instead of
 * entering the tree at once; only address-ordered searches need it there,
 * and they settle the list first. The list is bounded: the span that would
 * be the SPAN_PENDING_MAX+1st enters the tree in the oldest one's place, so no
 * free costs more than one tree insertion, and a settle at most
 * SPAN_PENDING_MAX of them. */

HOT void pending_remove(struct span_alloc *a, struct span_free *e)
{
    if (e->pending.newer != NULL)
        e->pending.newer->pending.older = e->pending.older;
    else
        a->pending_newest = e->pending.older;
    if (e->pending.older != NULL)
        e->pending.older->pending.newer = e->pending.newer;
    else
        a->pending_oldest = e->pending.newer;
    a->pending_count--;
}

/* Pending free span n enters the tree, and its shares the counters. */
static void pending_enter_tree(struct span_alloc *a, struct span_node *n)
{
    pending_remove(a, n->u.free.ext);
    free_tree_place(a, n);
    free_stats_shares(a, n);
}

static void settle_oldest(struct span_alloc *a) { pending_enter_tree(a, a->pending_oldest->span); }

void span_settle(struct span_alloc *a)
{
    while (a->pending_oldest != NULL)
        settle_oldest(a);
}

/* Files the new free span n (its ext set, max_free 0) by address: on the
 * pending list when it is small enough to wait, else in the tree. */
HOT void free_addr_file(struct span_alloc *a, struct span_node *n)
{
    struct span_free *e = n->u.free.ext;

    if (n->size > a->pending_max) {
        free_tree_place(a, n);
        return;
    }
    if (a->pending_count == SPAN_PENDING_MAX)
        settle_oldest(a);
    e->pending.newer = NULL;
    e->pending.older = a->pending_newest;
    if (a->pending_newest != NULL)
        a->pending_newest->pending.newer = e;
    else
        a->pending_oldest = e;
    a->pending_newest = e;
    a->pending_count++;
}

/* Takes free span n out of the address books, wherever it is filed. */
HOT void free_addr_unfile(struct span_alloc *a, struct span_node *n)
{
    if (n->u.free.ext->max_free != 0)
        addr_erase(a, n->u.free.ext);
    else
        pending_remove(a, n->u.free.ext);
}

/* Free span n changed its base or size: its tree summary follows, and a
 * pending span grown too large to wait enters the tree. */
HOT void free_addr_resized(struct span_alloc *a, struct span_node *n)
{
    struct span_free *e = n->u.free.ext;

    if (e->max_free != 0)
        free_propagate(e);
    else if (n->size > a->pending_max)
        pending_enter_tree(a, n);
}

/* A span's list is chosen by its size and (buddy) base as they are when it
 * joins the list (list_of): a span leaves the list it was pushed on, by
 * that index, even after its size or base changed (resize_end). */
HOT void list_remove(struct span_alloc *a, struct span_free *e, unsigned k);
HOT void list_push(struct span_alloc *a, struct span_free *e, unsigned k);

/* The list free span n belongs on, or -1 (the size tree, or no lists). */
HOT int list_of(const struct span_alloc *a, const struct span_node *n)
{
    return uses_list(a, n->size) ? (int)list_index(a, n) : -1;
}

/* Files free span n in the counters and in its size index, or (filing
 * false) takes it out of both. One rule says where a span is filed, by its
 * size and the policy: its list, the size tree, or neither (top of heap and
 * marker search the address tree alone); taking it out must find it where
 * filing put it. The flag is a constant at every call, so each call site
 * keeps only its own half. */
HOT void span_free_index(struct span_alloc *a, struct span_node *n, bool filing)
{
    struct span_free *e = n->u.free.ext;

    if (filing)
        free_stats_add(a, n);
    else
        free_stats_sub(a, n);
    if (uses_list(a, n->size)) {
        unsigned k = list_index(a, n);
        if (filing)
            list_push(a, e, k);
        else
            list_remove(a, e, k);
    } else if (in_size_tree(a, n->size)) {
        if (filing)
            size_tree_insert(a, e);
        else
            size_erase(a, e);
    }
}

HOT bool size_key_less(const struct span_node *x, const struct span_node *y)
{
    return x->size < y->size || (x->size == y->size && x->base < y->base);
}

/*
 * A free span about to change its base or size notes its list (resize_begin);
 * resize_end then settles the counters by difference and moves it to the
 * head of its new list (a span whose list does not change and is already
 * its head stays). In the size tree it stays linked, and resize_end keeps
 * it in place when its new key still sorts between its neighbours (the
 * common case for a span that shrinks or grows a little), so only a real
 * reorder pays for an erase and an insert. No other list or size-tree
 * change may happen in between.
 */
HOT int resize_begin(const struct span_alloc *a, const struct span_node *n);
HOT void resize_end(struct span_alloc *a, struct span_node *n, uint64_t old_size, int old_list);

HOT void list_remove(struct span_alloc *a, struct span_free *e, unsigned k)
{
    if (e->idx.list.prev != NULL)
        e->idx.list.prev->idx.list.next = e->idx.list.next;
    else
        a->lists[k] = e->idx.list.next;
    if (e->idx.list.next != NULL)
        e->idx.list.next->idx.list.prev = e->idx.list.prev;
    if (a->lists[k] == NULL)
        a->list_bitmap &= ~((uint64_t)1 << k);
}

HOT void list_push(struct span_alloc *a, struct span_free *e, unsigned k)
{
    e->idx.list.prev = NULL;
    e->idx.list.next = a->lists[k];
    if (a->lists[k] != NULL)
        a->lists[k]->idx.list.prev = e;
    a->lists[k] = e;
    a->list_bitmap |= (uint64_t)1 << k;
}

HOT int resize_begin(const struct span_alloc *a, const struct span_node *n) { return list_of(a, n); }

HOT void resize_end(struct span_alloc *a, struct span_node *n, uint64_t old_size, int old_list)
{
    struct span_free *e = n->u.free.ext;
    bool was_tree = in_size_tree(a, old_size), is_tree = in_size_tree(a, n->size);
    int new_list = list_of(a, n);

    free_stats_resize(a, n, old_size);
    if (old_list >= 0) {
        if (old_list == new_list && a->lists[old_list] == e)
            return; /* already the head of its list */
        list_remove(a, e, (unsigned)old_list);
    }
    if (was_tree && is_tree) {
        /* A resize always changes the size, so the key moved one way and
         * only the neighbour on that side can have been passed. */
        if (n->size < old_size) {
            struct span_node *pred = size_node(rb_prev(&e->idx.size_link));
            if (pred == NULL || size_key_less(pred, n))
                return;
        } else {
            struct span_node *succ = size_node(rb_next(&e->idx.size_link));
            if (succ == NULL || size_key_less(n, succ))
                return;
        }
        size_erase(a, e);
        size_tree_insert(a, e);
        return;
    }
    if (was_tree)
        size_erase(a, e);
    if (is_tree)
        size_tree_insert(a, e);
    else if (new_list >= 0)
        list_push(a, e, (unsigned)new_list);
}

HOT void account(struct span_alloc *a, const struct span_node *n, int sign)
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

void span_account(struct span_alloc *a, const struct span_node *n, int sign) { account(a, n, sign); }

void span_mark_alignment(struct span_alloc *a, struct span_node *n)
{
    span_account(a, n, -1);
    n->flags &= (uint8_t)~NODE_MISALIGNED;
    if (n->size >= a->large_size && (n->base & (a->large_size - 1)) != 0)
        n->flags |= NODE_MISALIGNED;
    span_account(a, n, 1);
}

/* ---- splitting and coalescing ------------------------------------------ */

HOT size_t carve_cost(const struct span_node *f, uint64_t place, uint64_t size)
{
    bool low = place > f->base, high = place + size < span_end(f);

    /* A piece at either end: the segment's slot. Both ends: that, and the
     * upper free piece's two. The whole span: its span_free comes back. */
    return low && high ? 3 : (size_t)(low || high);
}

size_t span_carve_cost(const struct span_node *f, uint64_t place, uint64_t size) { return carve_cost(f, place, size); }

static struct span_node *new_free_span(struct span_alloc *a, struct span_node *after, uint64_t base, uint64_t size,
                                       uint8_t region)
{
    struct span_node *n = node_get(a);
    struct span_free *e = ext_get(a);

    *n = (struct span_node){ .base = base, .size = size, .state = SPAN_FREE, .region = region };
    n->u.free.ext = e;
    e->span = n;
    e->max_free = 0;
    list_link_after(a, after, n);
    free_addr_file(a, n);
    span_free_index(a, n, true);
    return n;
}

/* carve's cases, each inlined where its constants are known. */

/* The whole of free span f becomes the segment: its node stays, its
 * span_free goes back to the pool. */
HOT struct span_node *take_whole(struct span_alloc *a, struct span_node *f)
{
    struct span_free *e = f->u.free.ext;

    span_free_index(a, f, false);
    free_addr_unfile(a, f);
    slot_put(a, e);
    if (a->marker == f)
        a->marker = NULL; /* used up: the next allocation recalculates it */
    return f;
}

/* A new node for the segment at [place, place+size), a piece of free span
 * f but not all of it; f keeps the part below place, or (place at f's base)
 * the part above. When place is inside f, the part above the segment is
 * left for the caller to file (carve). */
HOT struct span_node *take_piece(struct span_alloc *a, struct span_node *f, uint64_t place, uint64_t size,
                                 enum span_state state)
{
    uint64_t base = f->base, end = span_end(f);
    int old_list = resize_begin(a, f);
    struct span_node *n = node_get(a);

    n->region = f->region;
    /* Its state before it joins the address list: filing the upper
     * piece may settle pending spans, and their placement walks the list
     * looking for free neighbours. */
    n->state = (uint8_t)state;
    if (place == base) { /* low end: f keeps the rest above */
        list_link_after(a, f->prev, n);
        f->base = place + size;
        f->size = end - f->base;
    } else { /* f keeps [base, place) */
        list_link_after(a, f, n);
        f->size = place - base;
    }
    free_addr_resized(a, f);
    resize_end(a, f, end - base, old_list);
    return n;
}

/* Node n becomes the segment [place, place+size) with the default
 * constraints (span_alloc sets its own after) and enters the hash. */
HOT void segment_set(struct span_alloc *a, struct span_node *n, uint64_t place, uint64_t size, enum span_state state,
                     uint64_t tag)
{
    n->base = place;
    n->size = size;
    n->state = (uint8_t)state;
    n->flags = 0;
    n->lock_count = 0;
    n->align_shift = SPAN_GRANULE_SHIFT;
    n->u.seg.tag = tag;
    n->u.seg.limit = 0;
    hash_insert(a, n);
    if (state == SPAN_ALLOCATED && size >= a->large_size && (place & (a->large_size - 1)))
        n->flags |= NODE_MISALIGNED;
    account(a, n, 1);
}

HOT struct span_node *carve(struct span_alloc *a, struct span_node *f, uint64_t place, uint64_t size,
                            enum span_state state, uint64_t tag)
{
    uint64_t end = span_end(f);
    struct span_free *e = f->u.free.ext;
    struct span_node *n;

    if (place == f->base && place + size == end) {
        n = take_whole(a, f);
    } else {
        bool middle = place > f->base && place + size < end;
        n = take_piece(a, f, place, size, state);
        if (middle) {
            struct span_node *r = node_get(a);
            struct span_free *re = ext_get(a);
            *r = (struct span_node){
                .base = place + size, .size = end - place - size, .state = SPAN_FREE, .region = f->region
            };
            r->u.free.ext = re;
            re->span = r;
            re->max_free = 0;
            list_link_after(a, n, r);
            if (r->size > a->pending_max) /* then f was too large to wait: it is in the tree */
                free_tree_insert_next(a, e, re, true);
            else
                free_addr_file(a, r);
            span_free_index(a, r, true);
            if (a->marker == f)
                a->marker = r; /* bumped past the segment */
        }
    }
    segment_set(a, n, place, size, state, tag);
    return n;
}

struct span_node *span_carve(struct span_alloc *a, struct span_node *f, uint64_t place, uint64_t size,
                             enum span_state state, uint64_t tag)
{
    return carve(a, f, place, size, state, tag);
}

HOT bool mergeable(const struct span_node *n, const struct span_node *neighbour)
{
    return neighbour != NULL && neighbour->state == SPAN_FREE && neighbour->region == n->region;
}

/* Slots a release needs, given whether each neighbour is mergeable. */
HOT size_t release_slots(const struct span_node *n, bool with_prev, bool with_next)
{
    return with_prev || with_next || (n->flags & NODE_RESERVED) ? 0 : 1;
}

size_t span_release_cost(const struct span_node *n)
{
    return release_slots(n, mergeable(n, n->prev), mergeable(n, n->next));
}

/* Free span prev takes in free span next (a release between them): out of
 * line, so that the common release keeps fewer registers busy. */
static __attribute__((noinline)) void absorb_next(struct span_alloc *a, struct span_node *prev, struct span_node *next)
{
    struct span_free *ne = next->u.free.ext;

    span_free_index(a, next, false);
    free_addr_unfile(a, next);
    prev->size += next->size;
    if (a->marker == next)
        a->marker = prev;
    list_unlink(a, next);
    slot_put(a, ne);
    slot_put(a, next);
}

/* link: n's link in the hash (hash_link); with_prev, with_next: whether
 * each neighbour is mergeable (the caller has just looked). */
HOT struct span_node *release_at(struct span_alloc *a, struct span_node *n, struct span_node **link, bool with_prev,
                                 bool with_next)
{
    struct span_node *prev = n->prev;
    struct span_node *next = n->next;
    struct span_node *f;

    if (n->flags & NODE_RESERVED)
        span_return_slot(a, n); /* the slot kept for this is free to take */
    account(a, n, -1);
    hash_unlink(a, link);
    if (with_prev || with_next) {
        /* The free neighbour absorbs n; its tree position stays right. */
        uint64_t old_size;
        int old_list;
        f = with_prev ? prev : next;
        old_size = f->size;
        old_list = resize_begin(a, f);
        if (with_prev && with_next)
            absorb_next(a, prev, next);
        if (f == next)
            f->base = n->base;
        f->size += n->size;
        list_unlink(a, n);
        slot_put(a, n);
        free_addr_resized(a, f);
        resize_end(a, f, old_size, old_list);
    } else {
        struct span_free *e = ext_get(a);
        f = n;
        f->state = SPAN_FREE;
        f->flags = 0;
        f->lock_count = 0;
        f->u.free.ext = e;
        e->span = f;
        e->max_free = 0;
        free_addr_file(a, f);
        span_free_index(a, f, true);
    }
    return f;
}

struct span_node *span_release(struct span_alloc *a, struct span_node *n)
{
    return release_at(a, n, hash_link(a, n->base), mergeable(n, n->prev), mergeable(n, n->next));
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

static struct span_node *search_low(const struct rb_node *r, uint64_t min_size, const struct span_fit *fit,
                                    uint64_t *place);
static struct span_node *search_high(const struct rb_node *r, uint64_t min_size, const struct span_fit *fit,
                                     uint64_t *place);

/* First free span of size >= min_size in which fit has a place, counting
 * from the low end or (high) from the high end of the address tree. Spans
 * left of r end at or before r's base, right ones start after its end; the
 * side searched first is the "nearer" one. Inlined into search_low and
 * search_high so that each is compiled for its own direction: this is the
 * allocator's hottest loop. */
static inline __attribute__((always_inline)) struct span_node *
search_first(const struct rb_node *r, uint64_t min_size, const struct span_fit *fit, bool high, uint64_t *place)
{
    while (r != NULL) {
        const struct span_free *e = span_free_of(r);
        const struct span_node *n = e->span;
        struct span_node *found;

        if (e->max_free < min_size)
            return NULL;
        /* Whether the nearer side can reach into the window. */
        if (high ? n->base < fit->hi : n->base > fit->lo) {
            found = high ? search_high(r->right, min_size, fit, place) : search_low(r->left, min_size, fit, place);
            if (found != NULL)
                return found;
        }
        /* Whether n and the farther side lie wholly outside it. */
        if (high ? span_end(n) <= fit->lo : n->base >= fit->hi)
            return NULL;
        if (n->base < fit->hi && n->size >= min_size &&
            (high ? place_high(n, fit, place) : span_place_low(n, fit, place)))
            return (struct span_node *)n;
        r = high ? r->left : r->right;
    }
    return NULL;
}

static struct span_node *search_low(const struct rb_node *r, uint64_t min_size, const struct span_fit *fit,
                                    uint64_t *place)
{
    return search_first(r, min_size, fit, false, place);
}

static struct span_node *search_high(const struct rb_node *r, uint64_t min_size, const struct span_fit *fit,
                                     uint64_t *place)
{
    return search_first(r, min_size, fit, true, place);
}

/* Size from which every span fits at any alignment (0 if none does). */
static uint64_t always_fits_size(const struct span_fit *fit)
{
    uint64_t slack = fit->align - SPAN_GRANULE;

    return fit->size > UINT64_MAX - slack ? 0 : fit->size + slack;
}

static struct span_node *find_any(struct span_alloc *a, const struct span_fit *fit, bool high, uint64_t *place)
{
    uint64_t easy = always_fits_size(fit);
    struct span_node *n = NULL;

    if (fit->size <= a->pending_max)
        span_settle(a); /* a larger request fits in no pending span */

    if (easy != 0)
        n = high ? search_high(a->addr_tree.root, easy, fit, place) : search_low(a->addr_tree.root, easy, fit, place);
    if (n == NULL && easy != fit->size)
        n = high ? search_high(a->addr_tree.root, fit->size, fit, place)
                 : search_low(a->addr_tree.root, fit->size, fit, place);
    return n;
}

/* The lowest place for fit in the address tree alone. */
static struct span_node *tree_lowest(const struct span_alloc *a, const struct span_fit *fit, uint64_t *place)
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

/* The planners search between carves of their own (a witness books trial
 * places, whose leftover pieces may wait on the pending list), so the
 * pending spans are looked at too: at most SPAN_PENDING_MAX, and only for
 * a request small enough for one. */
struct span_node *span_find_lowest(const struct span_alloc *a, const struct span_fit *fit, uint64_t *place)
{
    struct span_node *n = tree_lowest(a, fit, place);
    const struct span_free *e;
    uint64_t p;

    if (fit->size > a->pending_max)
        return n;
    for (e = a->pending_newest; e != NULL; e = e->pending.older)
        if ((n == NULL || e->span->base < n->base) && span_place_low(e->span, fit, &p)) {
            n = e->span;
            *place = p;
        }
    return n;
}

static bool size_at_or_after(const struct rb_node *r, const void *size)
{
    return size_node(r)->size >= *(const uint64_t *)size;
}

/* Smallest free span of at least size in the (size, base) tree. */
static struct span_node *size_lower_bound(const struct span_alloc *a, uint64_t size)
{
    return size_node(rb_lower_bound(&a->size_tree, size_at_or_after, &size));
}

/* Best fit among the first SPAN_PROBES free spans in size order. */
static struct span_node *probe_best_fit(const struct span_alloc *a, const struct span_fit *fit, uint64_t *place)
{
    uint64_t granules = fit->size >> SPAN_GRANULE_SHIFT;
    unsigned probes = 0;
    struct span_node *candidate;

    if (granules <= SPAN_QUICK_LISTS) {
        uint64_t mask = a->list_bitmap & (~(uint64_t)0 << (granules - 1));
        while (mask != 0 && probes < SPAN_PROBES) {
            unsigned k = (unsigned)__builtin_ctzll(mask);
            struct span_free *e;
            for (e = a->lists[k]; e != NULL && probes < SPAN_PROBES; e = e->idx.list.next) {
                probes++;
                if (span_place_low(e->span, fit, place))
                    return e->span;
            }
            mask &= mask - 1;
        }
    }
    candidate = size_lower_bound(a, fit->size);
    for (; candidate != NULL && probes < SPAN_PROBES; probes++) {
        if (span_place_low(candidate, fit, place))
            return candidate;
        candidate = size_node(rb_next(&candidate->u.free.ext->idx.size_link));
    }
    return NULL;
}

/* Best fit from the quick lists: the head of the first non-empty list of
 * spans at least size long, or NULL (none, or size beyond the lists). */
HOT struct span_node *quick_fit(const struct span_alloc *a, uint64_t size)
{
    uint64_t granules = size >> SPAN_GRANULE_SHIFT;
    uint64_t mask;

    if (granules > SPAN_QUICK_LISTS)
        return NULL;
    mask = a->list_bitmap & (~(uint64_t)0 << (granules - 1));
    return mask != 0 ? a->lists[__builtin_ctzll(mask)]->span : NULL;
}

static struct span_node *find_unconstrained(const struct span_alloc *a, uint64_t size, uint64_t *place)
{
    uint64_t granules = size >> SPAN_GRANULE_SHIFT;
    struct span_node *n = NULL;

    if (a->policy == SPAN_POLICY_BEST_FIT) {
        n = quick_fit(a, size);
        if (n == NULL)
            n = size_lower_bound(a, size);
    } else if (a->policy == SPAN_POLICY_INSTANT_FIT) {
        unsigned k = floor_log2(granules);
        uint64_t mask;
        if (((uint64_t)1 << k) != granules)
            k++;
        mask = k < 64 ? a->list_bitmap & (~(uint64_t)0 << k) : 0;
        if (mask != 0)
            n = a->lists[__builtin_ctzll(mask)]->span;
    }
    if (n != NULL)
        *place = n->base;
    return n;
}

/*
 * Buddy: the smallest naturally aligned block of the request's order k
 * that the free lists hold, the segment at its base and the tail of the
 * block left free (alloc_pages_exact). With a stricter alignment than the
 * block's, a limit, or more than one block of the top order, the exact
 * address search at the natural alignment; and when no naturally aligned
 * place exists at all, the lowest place at the request's own alignment, so
 * that the policy never refuses what the books can do.
 */
static struct span_node *find_buddy(struct span_alloc *a, const struct span_fit *fit, uint64_t *place)
{
    unsigned k = buddy_order(a, fit->size);
    uint64_t natural = (uint64_t)1 << (k + SPAN_GRANULE_SHIFT);
    struct span_fit block = *fit;
    struct span_node *n = NULL;

    if (block.align < natural)
        block.align = natural;
    if (block.align == natural && block.hi >= a->mem_end && fit->size <= natural) {
        /* Every span on list j >= k holds a block of order j, so of order k. */
        uint64_t mask = a->list_bitmap & (~(uint64_t)0 << k);
        if (mask != 0) {
            /* Of the list's first SPAN_PROBES spans, the lowest: address
             * order keeps the blocks higher up whole (bounded work). */
            const struct span_free *e = a->lists[__builtin_ctzll(mask)];
            unsigned probes = 0;
            n = e->span;
            for (; e != NULL && probes < SPAN_PROBES; e = e->idx.list.next, probes++)
                if (e->span->base < n->base)
                    n = e->span;
            if (buddy_pick(n, k, a->buddy_cap, place))
                return n;
        }
    } else {
        n = find_any(a, &block, false, place);
        if (n != NULL)
            return n;
    }
    /* A block of the order is more than the request needs: the tail it
     * would leave free may be missing where the request still fits. */
    return find_any(a, fit, false, place);
}

/* The greatest free span, the lowest of equals: one descent of the
 * augmented address tree, O(log n). NULL if nothing is free. */
static struct span_node *greatest_free(const struct span_alloc *a)
{
    const struct rb_node *r = a->addr_tree.root;
    uint64_t greatest = r != NULL ? span_free_of(r)->max_free : 0;

    while (r != NULL) {
        if (r->left != NULL && span_free_of(r->left)->max_free == greatest)
            r = r->left;
        else if (span_free_of(r)->span->size == greatest)
            return span_free_of(r)->span;
        else
            r = r->right;
    }
    return NULL;
}

/*
 * Marker: the lowest place for the request in the free span the marker
 * points into (O(1); span_carve moves the marker past what it takes);
 * failing that, the marker is recalculated to the greatest free span and
 * the request retried there; failing that too (a limit or an alignment the
 * greatest span cannot meet), the exact address search.
 */
static struct span_node *find_marker(struct span_alloc *a, const struct span_fit *fit, uint64_t *place)
{
    if (a->marker != NULL && span_place_low(a->marker, fit, place))
        return a->marker;
    a->marker = greatest_free(a);
    if (a->marker != NULL && span_place_low(a->marker, fit, place))
        return a->marker;
    return find_any(a, fit, false, place);
}

static struct span_node *find_place(struct span_alloc *a, const struct span_fit *fit, bool high, uint64_t *place)
{
    struct span_node *n;
    bool constrained = fit->align > SPAN_GRANULE || fit->hi < a->mem_end;

    if (high || a->policy == SPAN_POLICY_TOP_OF_HEAP)
        return find_any(a, fit, true, place);
    if (a->policy == SPAN_POLICY_BUDDY)
        return find_buddy(a, fit, place);
    if (a->policy == SPAN_POLICY_MARKER)
        return find_marker(a, fit, place);
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

static bool is_pow2(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

int span_init(struct span_alloc *a, enum span_policy policy, uint64_t large_size, struct span_node *store,
              size_t capacity)
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
    a->list_max = policy == SPAN_POLICY_INSTANT_FIT || policy == SPAN_POLICY_BUDDY ? UINT64_MAX
                  : policy == SPAN_POLICY_BEST_FIT                                 ? SPAN_QUICK_LISTS * SPAN_GRANULE
                                                                                   : 0;
    a->tree_above = policy == SPAN_POLICY_BEST_FIT ? SPAN_QUICK_LISTS * SPAN_GRANULE : UINT64_MAX;
    /* The policies whose common case a list serves; top of heap and marker
     * search the tree on every allocation. */
    a->pending_max = policy == SPAN_POLICY_TOP_OF_HEAP || policy == SPAN_POLICY_MARKER ? 0 : SPAN_PENDING_SIZE;
    a->large_size = large_size;
    /* Requests of at most this many bytes may take span_alloc's quick
     * path: up to the quick lists' 64 granules, and below a large page
     * (whose alignment the quick path does not give). */
    a->quick_request_max = policy != SPAN_POLICY_BEST_FIT            ? 0
                           : large_size - SPAN_GRANULE < a->list_max ? large_size - SPAN_GRANULE
                                                                     : a->list_max;
    a->large_order = floor_log2(large_size >> SPAN_GRANULE_SHIFT);
    a->buddy_cap = a->large_order > LINUX_MAX_ORDER ? a->large_order : LINUX_MAX_ORDER;
    a->store = store;
    a->store_count = capacity;
    a->capacity = capacity;
    a->hash = a->hash_inline;
    a->hash_mask = SPAN_HASH_INLINE - 1;
    rb_init(&a->addr_tree, free_augment);
    rb_init(&a->size_tree, NULL);
    for (i = capacity; i-- > 0;)
        slot_put(a, &store[i]);
    return 0;
}

int span_add_region(struct span_alloc *a, uint64_t base, uint64_t size)
{
    unsigned i;
    uint8_t region;

    if (a == NULL || size == 0 || (base | size) & (SPAN_GRANULE - 1) || base > UINT64_MAX - size)
        return -EINVAL;
    for (i = 0; i < a->region_count; i++) {
        const struct span_region *r = &a->regions[i];
        if (base < r->base + r->size && r->base < base + size)
            return -EEXIST;
    }
    if (a->region_count == SPAN_MAX_REGIONS || a->nodes_free < 2)
        return -ENOMEM;

    region = (uint8_t)a->region_count++;
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
static int check_possible(const struct span_alloc *a, uint64_t size, uint64_t align, uint64_t hi)
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

/* span_alloc past its quick path: every check and the policy's search.
 * Out of line, so that the quick path keeps a small frame. */
static __attribute__((noinline)) int alloc_general(struct span_alloc *a, const struct span_request *req, uint64_t tag,
                                                   uint64_t *out_base)
{
    struct span_fit fit;
    struct span_node *n;
    uint64_t place = 0;
    uint64_t align;
    bool large;
    int err;

    if (req->size == 0 || (req->flags & ~SPAN_REQUEST_FLAGS) != 0)
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

    n = find_place(a, &fit, (req->flags & SPAN_HIGH) != 0, &place);
    if (n == NULL && large && (req->flags & SPAN_LARGE_OK) && align < fit.align) {
        fit.align = align;
        n = find_place(a, &fit, (req->flags & SPAN_HIGH) != 0, &place);
    }
    if (n == NULL) {
        /* Never possible (-E2BIG, -ERANGE), or not now. Asked only on
         * failure: whatever an empty instance refuses, this one does too. */
        err = check_possible(a, fit.size, fit.align, fit.hi);
        return err != 0 ? err : -ENOMEM;
    }
    if (carve_cost(n, place, fit.size) > a->nodes_free)
        return -ENOMEM;
    n = carve(a, n, place, fit.size, SPAN_ALLOCATED, tag);
    /* The constraints stay with the segment: a large one placed without
     * SPAN_LARGE_OK has large-page alignment as a hard one. */
    n->align_shift = (uint8_t)floor_log2(large && !(req->flags & SPAN_LARGE_OK) ? fit.align : align);
    n->u.seg.limit = req->limit == 0 ? 0 : fit.hi;
    *out_base = place;
    return 0;
}

int span_alloc(struct span_alloc *a, const struct span_request *req, uint64_t tag, uint64_t *out_base)
{
    if (a == NULL || req == NULL || out_base == NULL)
        return -EINVAL;
    /* Best fit's common case first: an unconstrained request a quick list
     * serves (4 KiB alignment, no limit, no flag but SPAN_LARGE_OK, which
     * a small request ignores, smaller than a large page). The same
     * choice as alloc_general's, without its checks and search. The
     * policy is tested although quick_request_max says it too, so that
     * the list helpers inlined below know it. */
    if (a->policy == SPAN_POLICY_BEST_FIT && req->size - 1 < a->quick_request_max &&
        (req->align & ~(uint64_t)SPAN_GRANULE) == 0 && req->limit == 0 &&
        (req->flags & ~(uint32_t)SPAN_LARGE_OK) == 0) {
        uint64_t size = align_up(req->size, SPAN_GRANULE);
        struct span_node *n = quick_fit(a, size);
        if (n != NULL && (n->size == size || a->nodes_free != 0)) {
            uint64_t place = n->base;
            n = n->size == size ? take_whole(a, n) : take_piece(a, n, place, size, SPAN_ALLOCATED);
            segment_set(a, n, place, size, SPAN_ALLOCATED, tag);
            *out_base = place;
            return 0;
        }
    }
    return alloc_general(a, req, tag, out_base);
}

int span_reserve(struct span_alloc *a, uint64_t base, uint64_t size, uint64_t tag)
{
    struct span_node *n;

    if (a == NULL || size == 0 || (base | size) & (SPAN_GRANULE - 1) || base > UINT64_MAX - size)
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

HOT struct span_node *segment_at(const struct span_alloc *a, uint64_t base)
{
    struct span_node *n = span_hash_find(a, base);

    if (n == NULL || n->base != base || n->state != SPAN_ALLOCATED)
        return NULL;
    return n;
}

/* The segment a caller names by its base: -EINVAL without an allocator,
 * -ENOENT if no segment starts there. */
HOT int named_segment(const struct span_alloc *a, uint64_t base, struct span_node **out)
{
    if (a == NULL)
        return -EINVAL;
    *out = segment_at(a, base);
    return *out == NULL ? -ENOENT : 0;
}

int span_free(struct span_alloc *a, uint64_t base)
{
    struct span_node **link, *n;
    bool with_prev, with_next;

    if (a == NULL)
        return -EINVAL;
    link = hash_link(a, base);
    n = *link;
    if (n == NULL || n->state != SPAN_ALLOCATED)
        return -ENOENT;
    if (n->lock_count > 0 || (n->flags & NODE_MOVING))
        return -EBUSY;
    /* The neighbours are looked at once, for the cost and the release. */
    with_prev = mergeable(n, n->prev);
    with_next = mergeable(n, n->next);
    if (release_slots(n, with_prev, with_next) > a->nodes_free)
        return -ENOMEM;
    release_at(a, n, link, with_prev, with_next);
    return 0;
}

/*
 * Adds step (+1: span_lock, -1: span_unlock) to a segment's lock count.
 * Locked bytes are counted per region, so the segment is taken out of the
 * statistics and put back with its new count. A segment being moved
 * cannot be locked (it is unlocked only if it was locked before).
 */
static int step_lock_count(struct span_alloc *a, uint64_t base, int step)
{
    struct span_node *n;
    int err = named_segment(a, base, &n);

    if (err != 0)
        return err;
    if (step > 0 && (n->flags & NODE_MOVING))
        return -EBUSY;
    if (step > 0 && n->lock_count == UINT32_MAX)
        return -ERANGE;
    if (step < 0 && n->lock_count == 0)
        return -EINVAL;
    account(a, n, -1);
    n->lock_count += (uint32_t)step;
    account(a, n, 1);
    return 0;
}

int span_lock(struct span_alloc *a, uint64_t base) { return step_lock_count(a, base, 1); }

int span_unlock(struct span_alloc *a, uint64_t base) { return step_lock_count(a, base, -1); }

static void fill_info(const struct span_alloc *a, const struct span_node *n, struct span_info *info)
{
    bool segment = n->state == SPAN_ALLOCATED;

    info->base = n->base;
    info->size = n->size;
    info->tag = n->state != SPAN_FREE ? n->u.seg.tag : 0;
    info->align = segment ? span_hard_align(n) : 0;
    info->limit = segment ? n->u.seg.limit : 0;
    info->wants_large = segment && span_wants_large(a, n);
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
    fill_info(a, n, info);
    return 0;
}

int span_request_of(const struct span_alloc *a, uint64_t base, struct span_request *req)
{
    struct span_node *n;
    int err;

    if (req == NULL)
        return -EINVAL;
    err = named_segment(a, base, &n);
    if (err != 0)
        return err;
    *req = (struct span_request){ .size = n->size,
                                  .align = span_hard_align(n),
                                  .limit = n->u.seg.limit,
                                  .flags = span_wants_large(a, n) ? SPAN_LARGE_OK : 0 };
    return 0;
}

/* ---- giving slots back ------------------------------------------------
 *
 * A block goes back when none of its slots is in use. Freeing leaves a few
 * live slots scattered over many blocks (the books' own spans, the free
 * spans between them), so a block that is nearly empty is emptied first:
 * each live slot in it is copied to a free slot elsewhere and everything
 * that pointed at it is pointed at the copy. What points at a span_node:
 * its neighbours' prev/next (or first/last), its free span's back pointer
 * or its hash chain, and the marker; at a span_free: its node, the address
 * tree, and its list or the size tree (the free spans that wait outside
 * the tree are entered first, so there is one case). Finding a block's live slots walks
 * every span, so a block is emptied only when the spans are no more than
 * the slots it gives back: the walk is paid for by what it returns.
 */

/* slot_put without the relisting: the block being emptied stays off the
 * block lists until it is empty, so slot_get never hands its slots out. */
static void slot_back(struct span_alloc *a, struct span_block *b, struct span_node *slot)
{
    slot->u.pool.next = b->free;
    b->free = slot;
    b->used--;
    a->nodes_free++;
}

static bool slot_in(const struct span_alloc *a, const void *slot, const struct span_block *b)
{
    return !in_store(a, slot) && block_of(slot) == b;
}

static struct span_node *relocate_node(struct span_alloc *a, struct span_node *from)
{
    struct span_node *to = node_get(a);

    *to = *from;
    if (to->prev != NULL)
        to->prev->next = to;
    else
        a->first = to;
    if (to->next != NULL)
        to->next->prev = to;
    else
        a->last = to;
    if (to->state == SPAN_FREE) {
        to->u.free.ext->span = to;
        if (a->marker == from)
            a->marker = to;
    } else {
        *hash_link(a, to->base) = to;
    }
    return to;
}

static void relocate_free(struct span_alloc *a, struct span_free *from)
{
    struct span_free *to = ext_get(a);
    struct span_node *n = from->span;

    *to = *from;
    rb_relocate(&a->addr_tree, &from->addr_link, &to->addr_link);
    if (uses_list(a, n->size)) {
        if (to->idx.list.prev != NULL)
            to->idx.list.prev->idx.list.next = to;
        else
            a->lists[list_index(a, n)] = to;
        if (to->idx.list.next != NULL)
            to->idx.list.next->idx.list.prev = to;
    } else if (in_size_tree(a, n->size)) {
        rb_relocate(&a->size_tree, &from->idx.size_link, &to->idx.size_link);
    }
    n->u.free.ext = to;
}

/* Moves every live slot out of b; the caller has checked that the pool has
 * that many free slots outside b. b is off the block lists meanwhile, so
 * none of its own free slots is handed out. */
static void block_evacuate(struct span_alloc *a, struct span_block *b)
{
    struct span_node *n, *next;

    span_settle(a); /* a waiting free span has no tree links to move */
    block_unlink(a, b);
    b->list = BLOCK_FULL;
    for (n = a->first; n != NULL; n = next) {
        next = n->next;
        if (slot_in(a, n, b)) {
            struct span_node *old = n;
            n = relocate_node(a, old);
            slot_back(a, b, old);
        }
        if (n->state == SPAN_FREE && slot_in(a, n->u.free.ext, b)) {
            struct span_free *old = n->u.free.ext;
            relocate_free(a, old);
            slot_back(a, b, (struct span_node *)old);
        }
    }
    block_relist(a, b);
}

/* The block to empty for span_take_nodes, or NULL: the partly used one with
 * the fewest live slots, when the walk is worth it and the pool keeps
 * keep_free without it. */
static struct span_block *block_to_empty(const struct span_alloc *a, size_t keep_free)
{
    size_t spans = a->capacity - a->nodes_free - a->reserved;
    struct span_block *b, *best = NULL;

    /* No block could be worth it: skip the walk, which fragmented memory
     * makes long (thousands of single-page blocks) and a caller may try
     * after every free. */
    if (spans > a->block_slots_max)
        return NULL;
    for (b = a->partial; b != NULL; b = b->next)
        if (best == NULL || b->used < best->used)
            best = b;
    if (best == NULL || spans > best->slots || a->nodes_free < best->slots + keep_free)
        return NULL;
    return best;
}

int span_take_nodes(struct span_alloc *a, size_t keep_free, void **mem, size_t *bytes, uint64_t *owner)
{
    struct span_block *b;

    if (a == NULL || mem == NULL || bytes == NULL || owner == NULL)
        return -EINVAL;
    for (b = a->empty; b != NULL; b = b->next)
        if (a->nodes_free >= b->slots && a->nodes_free - b->slots >= keep_free)
            break;
    if (b == NULL && (b = block_to_empty(a, keep_free)) != NULL)
        block_evacuate(a, b);
    if (b == NULL)
        return -ENOENT;
    block_unlink(a, b);
    a->capacity -= b->slots;
    a->nodes_free -= b->slots;
    a->blocks--;
    *mem = b;
    *bytes = b->bytes;
    *owner = b->owner;
    return 0;
}

int span_retag(struct span_alloc *a, uint64_t base, uint64_t tag)
{
    struct span_node *n;
    int err = named_segment(a, base, &n);

    if (err != 0)
        return err;
    n->u.seg.tag = tag;
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
        fill_info(a, n, &info);
        ret = fn(ctx, &info);
        if (ret != 0)
            return ret;
    }
    return 0;
}
