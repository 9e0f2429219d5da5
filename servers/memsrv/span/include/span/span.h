/*
 * Memory-server layer: the span allocator, the book-keeping core of memsrv.
 *
 * Called by memsrv (servers/memsrv) to decide where physical segments go and
 * how to compact them, and by the host tests and benchmark. It never touches
 * the memory it manages: it keeps books about physical addresses, proposes
 * compaction moves, and the caller (memsrv, through the kernel) carries them
 * out and confirms. Freestanding: no allocation, no floating point, no libc.
 * Not thread-safe: one instance belongs to one thread (memsrv's loop).
 *
 * Vocabulary
 *   granule   4 KiB, the unit of everything; all addresses and sizes are
 *             multiples of it (sizes are rounded up, see span_alloc).
 *   region    a range of RAM given by span_add_region; the gaps between
 *             regions are holes. No span ever crosses a region boundary.
 *   span      a maximal run of granules in one state inside one region:
 *             free, a segment (allocated), a locked segment (pinned for DMA,
 *             never moved), or in transit (the destination of a move that the
 *             caller is carrying out).
 *   segment   an allocated span, with the caller's 64-bit tag.
 *   large     a segment of at least the large-page size (a parameter, 2 MiB
 *             or 4 MiB); it is placed at large-page alignment when possible,
 *             otherwise (SPAN_LARGE_OK) anywhere and marked misaligned.
 *
 * Errors are negative ABI codes (abi/errno.h). Every call validates all of
 * its arguments before changing anything: on error the books are unchanged.
 *
 * The design, invariants and costs are in span.c's Big Theory Statement and
 * in docs/span-allocator.md.
 */
#ifndef SPAN_SPAN_H
#define SPAN_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <abi/errno.h>
#include <common/rbtree.h>

#define SPAN_GRANULE       ((uint64_t)4096)
#define SPAN_GRANULE_SHIFT 12
#define SPAN_QUICK_LISTS   64 /* quick-fit lists: free spans of 1..64 granules */
#define SPAN_MAX_REGIONS   64 /* more than any e820/multiboot map we expect */
#define SPAN_HIST_BUCKETS  52 /* log2 of (2^64 / 4 KiB) */
#define SPAN_BUDDY_ORDERS  31 /* orders 0..30: up to 4 TiB blocks */
#define SPAN_LARGE_MIN     ((uint64_t)8192)
#define SPAN_LARGE_MAX     ((uint64_t)1 << 30) /* 1 GiB pages on x86-64 */

enum span_policy {
    SPAN_POLICY_BEST_FIT = 0, /* quick-fit lists + size tree, best fit (default) */
    SPAN_POLICY_TOP_OF_HEAP,  /* highest place that fits; compaction slides down */
    SPAN_POLICY_INSTANT_FIT,  /* power-of-two free lists, as in vmem */
    SPAN_POLICY_BUDDY,        /* binary buddy: lists per order, naturally aligned blocks */
    SPAN_POLICY_MARKER,       /* a marker to the greatest free extent, recalculated on failure */
    SPAN_POLICY_COUNT
};

enum span_state {
    SPAN_FREE = 0,
    SPAN_ALLOCATED,
    SPAN_LOCKED,     /* allocated and pinned: lock count > 0 */
    SPAN_IN_TRANSIT, /* destination of an unconfirmed move */
};

/* span_request.flags */
#define SPAN_LARGE_OK 0x1u /* a large segment may fall back to 4 KiB alignment */
#define SPAN_HIGH                                                                                                      \
    0x2u /* the highest place that fits, whatever the policy: for
                              long-lived locked books kept away from the low memory
                              that limited (DMA) requests and compaction work in */
#define SPAN_REQUEST_FLAGS (SPAN_LARGE_OK | SPAN_HIGH)

/*
 * A request's alignment and limit are the segment's constraints for good:
 * the segment keeps them (with its large-page wish, below) through every
 * move any plan proposes. A large segment allocated without SPAN_LARGE_OK
 * has large-page alignment as a hard constraint; with it, only a wish: it
 * is placed aligned when it can be, realigned later when it is not, and
 * under pressure it may give the alignment up (span_plan_yield).
 */
struct span_request {
    uint64_t size;  /* bytes, > 0; rounded up to the granule */
    uint64_t align; /* 0 = granule; else a power of two >= 4 KiB */
    uint64_t limit; /* 0 = none; else the segment's end must be <= limit */
    uint32_t flags; /* SPAN_LARGE_OK */
};

/*
 * The books are made of 64-byte slots from a pool the caller fills
 * (span_init's array, then span_add_nodes blocks). A segment (or a locked
 * or in-transit span) takes one slot: its span_node. A free span takes two:
 * its span_node and a span_free, which holds its links in the free indexes.
 * Opaque: the fields are private.
 */
struct span_free;

struct span_node {
    struct span_node *prev, *next; /* all spans in address order */
    uint64_t base;
    uint64_t size;
    uint8_t state; /* enum span_state (LOCKED not stored) */
    uint8_t flags; /* private NODE_* flags */
    uint8_t region;
    uint8_t align_shift; /* segment: log2 of its hard alignment (12..63) */
    uint32_t lock_count;
    union {
        struct {
            struct span_node *hash_next; /* segments by base */
            uint64_t tag;
            uint64_t limit; /* segment: its end stays <= limit (0: none) */
        } seg;
        struct {
            struct span_free *ext;
            uint64_t buddy_blocks; /* its share of span_alloc's counters */
            uint64_t large_blocks;
        } free;
        struct {
            struct span_node *next; /* free slots */
        } pool;
    } u;
};

struct span_free {
    union {
        struct rb_node addr_link; /* free spans by address, augmented */
        struct {
            struct span_free *newer, *older;
        } pending; /* a small free span not in the tree yet (span.c) */
    };
    uint64_t max_free; /* largest free span in addr subtree; 0 while pending */
    union {
        struct rb_node size_link; /* best fit: free spans > 64 granules */
        struct {
            struct span_free *next, *prev;
        } list; /* quick / instant-fit / buddy lists */
    } idx;
    struct span_node *span;
};

struct span_region {
    uint64_t base;
    uint64_t size;
    uint64_t free_bytes;
    uint64_t transit_bytes;
    uint64_t locked_bytes;
    uint64_t large_blocks; /* aligned large pages inside its free spans (its own score) */
};

struct span_block; /* a span_add_nodes block (span.c) */

#define SPAN_HASH_INLINE 64 /* buckets before span_hash_resize */

struct span_alloc {
    enum span_policy policy;
    uint64_t large_size;
    unsigned large_order; /* log2(large_size / granule) */
    /* slot pool: the fixed array first, then blocks with free slots */
    struct span_node *store;
    size_t store_count;
    struct span_node *store_free;
    size_t capacity;                    /* slots in all */
    size_t nodes_free;                  /* free and not reserved */
    size_t reserved;                    /* free but kept for pending moves' settlement */
    struct span_block *partial, *empty; /* blocks with some / all slots free */
    size_t blocks;
    uint32_t block_seq;
    size_t block_slots_max; /* the most slots a block ever added had */
    /* segments (and locked and in-transit spans) by base */
    struct span_node **hash;
    uint64_t hash_mask;
    uint64_t hashed;
    struct span_node *hash_inline[SPAN_HASH_INLINE];
    /* free spans */
    struct rb_tree addr_tree;                          /* of span_free, by base */
    struct span_free *pending_newest, *pending_oldest; /* free spans not in addr_tree yet */
    unsigned pending_count;
    uint64_t pending_max;           /* free spans of at most this size may wait (by policy) */
    struct span_node *first, *last; /* address-ordered list of all spans */
    struct rb_tree size_tree;       /* best fit only */
    struct span_free *lists[SPAN_QUICK_LISTS];
    uint64_t list_bitmap;       /* bit k: lists[k] not empty */
    uint64_t list_max;          /* free spans of at most this size are on lists (by policy) */
    uint64_t tree_above;        /* free spans larger than this are in size_tree (by policy) */
    uint64_t quick_request_max; /* best fit: requests up to this size may take the quick path */
    struct span_node *marker;   /* marker policy: the free span it points into, or NULL */
    struct span_region regions[SPAN_MAX_REGIONS];
    unsigned region_count;
    uint64_t total_bytes;
    uint64_t mem_end;   /* highest region end */
    unsigned buddy_cap; /* largest buddy order counted */
    uint64_t free_bytes;
    uint64_t segments;
    uint64_t misaligned;
    uint64_t moves_in_flight;
    uint64_t free_hist[SPAN_HIST_BUCKETS];
    uint64_t buddy_blocks; /* blocks of the free spans' buddy decomposition */
};

/*
 * Creates an empty instance. large_size: power of two in [8 KiB, 1 GiB]
 * (0 = 2 MiB). store/capacity: the first slots (at least 1); they stay the
 * instance's for good. -EINVAL on bad arguments.
 */
int span_init(struct span_alloc *a, enum span_policy policy, uint64_t large_size, struct span_node *store,
              size_t capacity);

/* ---- books that grow and shrink -----------------------------------------
 *
 * Every operation first checks that the slots it needs are free and fails
 * with -ENOMEM, changing nothing, when they are not: an allocation needs at
 * most 3, a free that leaves a free span with no free neighbour needs 1, a
 * compaction proposal at most 5. The caller keeps the pool topped up:
 */
#define SPAN_PAGE           ((size_t)4096)
#define SPAN_SLOTS_PER_PAGE (SPAN_PAGE / sizeof(struct span_node) - 1)

/* Adds a block of slots: mem 4 KiB-aligned, bytes a non-zero multiple of
 * 4 KiB (the first 64 bytes of each page are a header) and under 1 TiB.
 * -EINVAL otherwise. owner is the caller's word for the block, kept in its
 * header and given back by span_take_nodes: the caller needs no table of
 * its blocks, however many small ones fragmented memory makes it take. */
int span_add_nodes(struct span_alloc *a, void *mem, size_t bytes, uint64_t owner);

/* Takes back a block none of whose slots is in use, if one exists and the
 * pool keeps at least keep_free free slots without it: its memory, size
 * and owner in *mem, *bytes and *owner. Failing that, empties the least used block by moving
 * its live slots elsewhere, when there are no more spans than it has slots
 * (the walk that finds them costs O(spans)), and takes that. -ENOENT when
 * neither works. */
int span_take_nodes(struct span_alloc *a, size_t keep_free, void **mem, size_t *bytes, uint64_t *owner);

/* Segments are found by base through a chained hash. It starts with
 * SPAN_HASH_INLINE buckets inside struct span_alloc; span_hash_wanted says
 * how many bytes of buckets the current number of segments calls for
 * (0: the present table is right), and span_hash_resize moves the table to
 * mem (a power of two of pointers; O(segments)), giving back the old one in
 * *old (NULL if it was the inline one). span_hash_right is
 * span_hash_wanted(a) == 0 inline: the check a caller makes on every
 * request. A new table holds one to two segments a bucket (4 to 8 bytes
 * a segment, of the 64 the books may spend on one; a free walks 1 + a/2
 * links on average at a segments a bucket). It grows past two a bucket and
 * shrinks only below an eighth, so it is not resized back and forth
 * around one size. */
static inline bool span_hash_right(const struct span_alloc *a)
{
    uint64_t buckets = a->hash_mask + 1;

    return a->hashed <= 2 * buckets && (buckets == SPAN_HASH_INLINE || a->hashed >= buckets / 8);
}
size_t span_hash_wanted(const struct span_alloc *a);
int span_hash_resize(struct span_alloc *a, void *mem, size_t bytes, void **old, size_t *old_bytes);

/* Adds RAM [base, base+size): granule-aligned, not overlapping another region.
 * -EINVAL bad range, -EEXIST overlap, -ENOMEM no node or region slot. */
int span_add_region(struct span_alloc *a, uint64_t base, uint64_t size);

/*
 * Allocates a segment. Picks a place by the instance's policy, honouring
 * alignment, limit, regions, and large-page alignment for large segments.
 * -EINVAL bad request (zero size, bad alignment, unknown flag, out NULL),
 * -E2BIG larger than every region, -ERANGE no region could ever satisfy the
 * limit/alignment, -ENOMEM not possible now (fragmentation or full; a
 * compaction plan may help) or the node store is full.
 */
int span_alloc(struct span_alloc *a, const struct span_request *req, uint64_t tag, uint64_t *out_base);

/* Records a segment at a fixed place (boot modules): [base, base+size) must
 * be free. -EINVAL bad range, -EBUSY not free, -ENOMEM node store full. */
int span_reserve(struct span_alloc *a, uint64_t base, uint64_t size, uint64_t tag);

/* Frees the segment starting at base. -ENOENT no segment starts there (this
 * includes a double free), -EBUSY locked or being moved, -ENOMEM the span
 * left would have no free neighbour and the pool has no free slot. */
int span_free(struct span_alloc *a, uint64_t base);

struct span_info {
    uint64_t base;
    uint64_t size;
    uint64_t tag;   /* segments only */
    uint64_t align; /* segments: the hard alignment, kept through every move */
    uint64_t limit; /* segments: the end stays <= limit (0: none) */
    enum span_state state;
    uint32_t lock_count;
    unsigned region;
    bool misaligned;  /* large segment not at large-page alignment */
    bool wants_large; /* large segment whose large-page alignment is a wish, not a constraint */
    bool moving;      /* source of an unconfirmed move */
};

/* Describes the span containing addr. -ENOENT if addr is in no region. */
int span_lookup(const struct span_alloc *a, uint64_t addr, struct span_info *info);

/* The request that reproduces the segment at base's constraints (size,
 * hard alignment, limit, SPAN_LARGE_OK for a wish): to book another place
 * for it (memsrv's MOVE). -ENOENT if no segment starts there. */
int span_request_of(const struct span_alloc *a, uint64_t base, struct span_request *req);

/*
 * Pins the segment starting at base. Locks nest: each span_lock needs one
 * span_unlock. -ENOENT no segment there, -EBUSY being moved, -ERANGE count
 * would overflow. span_unlock: -EINVAL if not locked.
 */
int span_lock(struct span_alloc *a, uint64_t base);
int span_unlock(struct span_alloc *a, uint64_t base);

/* Gives the segment starting at base a new tag (its owner renumbered its
 * records). -ENOENT no segment there. */
int span_retag(struct span_alloc *a, uint64_t base, uint64_t tag);

/* Calls fn for every span in address order; stops early if fn returns != 0
 * and returns that value. */
typedef int (*span_walk_fn)(void *ctx, const struct span_info *info);
int span_walk(const struct span_alloc *a, span_walk_fn fn, void *ctx);

/* ---- Compaction planning ---------------------------------------------
 *
 * A plan proposes one move at a time (span_plan_next). The destination is
 * booked as in transit at once, so allocations made between steps cannot
 * take it. The caller copies size bytes from `from` to `to` with memmove
 * semantics (the ranges overlap when a segment slides by less than its
 * size), then calls span_move_done, or span_move_failed if the kernel
 * refused (e.g. the segment got pinned). Until then the segment cannot be
 * freed or locked (-EBUSY). Plans read the books afresh at every step, so
 * allocations and frees between steps are fine.
 */
struct span_move {
    uint64_t from; /* the segment's base before the move */
    uint64_t to;
    uint64_t size;
    uint64_t tag;
};

enum span_plan_kind {
    SPAN_PLAN_TARGETED = 1,
    SPAN_PLAN_FULL,
    SPAN_PLAN_REALIGN,
    SPAN_PLAN_YIELD,
};

/* span_plan.flags, set by the caller after creating a targeted plan */
#define SPAN_PLAN_RELAX_LARGE 0x1u /* evicted large segments may give up a wished-for large alignment */

struct span_plan {
    enum span_plan_kind kind;
    unsigned flags;              /* SPAN_PLAN_* */
    uint64_t size, align, limit; /* targeted: the run wanted */
    uint64_t max_cost;           /* targeted: windows moving more bytes are not taken (0: no cap) */
    uint64_t lo, hi;             /* full: the range compacted (segments and destinations) */
    uint64_t scan_max;           /* full: segments looked at per call before a pause (0: no cap) */
    uint64_t step_bytes;         /* full: 0 = unbounded; else per step */
    uint64_t step_used;
    uint64_t cursor;             /* address the sweep has reached */
    uint64_t window;             /* targeted: chosen run, or ~0 */
    uint64_t window_cost;        /* its movable bytes when chosen */
    uint64_t evict_lo, evict_hi; /* targeted: the spans the window touches */
    uint64_t result_base;        /* targeted, after DONE: the free run */
    uint64_t moved_bytes;        /* confirmed moves */
    uint64_t moves;
    uint64_t failed_moves;
    unsigned attempts;    /* targeted: window selections made */
    unsigned room_passes; /* targeted: room-making passes run */
    unsigned phase;       /* private */
    bool compacted;       /* private: a room-making pass moved */
    bool pending;         /* a proposed move awaits done/failed */
};

/* span_plan_next results (>= 0); errors are negative. */
#define SPAN_PLAN_DONE  0 /* nothing more to do (targeted: run exists) */
#define SPAN_PLAN_MOVE  1 /* *move filled in: carry it out, then confirm */
#define SPAN_PLAN_PAUSE 2 /* incremental step's byte budget reached */

/*
 * Every plan keeps each segment's constraints on every move: its hard
 * alignment, its limit, and (unless a targeted plan has
 * SPAN_PLAN_RELAX_LARGE, or it is a yield plan) the large-page alignment of
 * a large segment that has it.
 *
 * Targeted: make a free run of size bytes at align (0 = granule), ending at
 * or below limit (0 = none), moving as few bytes as possible. On DONE,
 * plan->result_base is the run's base; span_alloc with the same constraints
 * (with SPAN_LARGE_OK if size is large and align below the large page) or
 * span_reserve there then succeeds. The planner succeeds whenever the
 * eviction witness of span_plan.c exists for some window (decreasing first
 * fit of the window's segments into the free space outside the spans it
 * touches); span_plan_next returns -ENOSPC when neither that nor its
 * room-making fallback gives such a run.
 */
int span_plan_targeted(const struct span_alloc *a, struct span_plan *plan, uint64_t size, uint64_t align,
                       uint64_t limit);

/* Full (step_bytes = 0) or incremental (each step moves at most step_bytes;
 * larger segments are left alone): slides movable segments toward the
 * bottom of memory, around locked spans and holes, across regions. With
 * plan->scan_max set, a call that has looked at that many segments without
 * finding a move pauses (SPAN_PLAN_PAUSE) and the next goes on from there. */
int span_plan_full(const struct span_alloc *a, struct span_plan *plan, uint64_t step_bytes);

/* The same, for the segments lying inside [lo, hi), which only move to
 * places inside it (a region, or memory below a limit that requests need
 * room in). -EINVAL for an empty range. */
int span_plan_range(const struct span_alloc *a, struct span_plan *plan, uint64_t lo, uint64_t hi, uint64_t step_bytes);

/* Moves misaligned large segments to large-page-aligned places. */
int span_plan_realign(const struct span_alloc *a, struct span_plan *plan);

/* The other way, under pressure: a large segment that only wishes for
 * large-page alignment, has it, and has a free gap right below it and free
 * space right after it slides down over the gap (to its hard alignment),
 * joining the two into one run. */
int span_plan_yield(const struct span_alloc *a, struct span_plan *plan);

/* Proposes the next move. -EBUSY if the previous one is not confirmed,
 * -ENOMEM node store full (retry later), -ENOSPC targeted run impossible. */
int span_plan_next(struct span_alloc *a, struct span_plan *plan, struct span_move *move);

/* Confirms a proposed move. -EINVAL if move is not a pending move. */
int span_move_done(struct span_alloc *a, struct span_plan *plan, const struct span_move *move);

/* The move did not happen; if pinned, the segment is now locked (count 1). */
int span_move_failed(struct span_alloc *a, struct span_plan *plan, const struct span_move *move, bool pinned);

/* ---- Statistics and checking ----------------------------------------- */

struct span_stats {
    uint64_t total_bytes, free_bytes, used_bytes, locked_bytes, transit_bytes;
    uint64_t largest_free;
    uint64_t free_spans, segments, misaligned_segments;
    uint64_t nodes_used, nodes_capacity;
    /* free spans with a granule count in [2^k, 2^(k+1)) */
    uint64_t free_hist[SPAN_HIST_BUCKETS];
    unsigned large_order; /* log2(large size / 4 KiB), e.g. 9 */
    /* Linux mm/vmstat.c unusable_free_index at large_order, per mille */
    uint32_t unusable_index;
    /* Linux __fragmentation_index at large_order, per mille (-1000: a
     * suitable block exists; 0: no free memory / failure is lack of memory) */
    int32_t fragmentation_index;
    /* mm/compaction.c fragmentation_score_zone (extfrag_for_order at
     * large_order), per mille: Linux's percent value times 10 */
    uint32_t fragmentation_score;
    unsigned region_count;
    struct span_region regions[SPAN_MAX_REGIONS];
};

void span_stats(const struct span_alloc *a, struct span_stats *out);

struct span_fault {
    const char *what; /* static description of the broken invariant */
    uint64_t addr;    /* the span concerned, when there is one */
};

/* Checks every invariant (O(n)). 0 if sound, else -EINVAL with *fault. */
int span_check(const struct span_alloc *a, struct span_fault *fault);

const char *span_state_name(enum span_state state);
const char *span_policy_name(enum span_policy policy); /* as memsrv.policy= spells it */

#endif
