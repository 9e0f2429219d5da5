/*
 * Memory-server layer: compaction planning for the span allocator. Called by
 * memsrv's compaction loop (and the host tests and benchmark) through
 * span_plan_* in span/span.h. It proposes moves; the caller copies and
 * confirms. See span.c's Big Theory Statement, section 5, for the protocol.
 *
 * How a move is booked
 *   A segment S = [from, from+size) moving to D = [to, to+size): the part of
 *   D that S does not already cover (D \ S, one interval) must be free; it
 *   is carved out as an IN_TRANSIT span and S is marked moving. Confirming
 *   re-labels the two nodes: one becomes the segment at D, the other the
 *   free remainder S \ D (then coalesced). So confirmation needs no node and
 *   cannot fail; proposal may need up to two (-ENOMEM when the store is full).
 *
 * Plans (each step reads the current books, so the caller may allocate and
 * free between steps; a plan never holds a pointer across calls):
 *
 *  full / incremental: a sweep from low to high addresses; each movable
 *    segment goes to the lowest place below it that fits, or slides down
 *    into the free span right below it (an overlapping move). It crosses a
 *    hole into a lower region only when the free run that opens behind it
 *    is larger than the free span it fills. Large segments keep large-page
 *    alignment; misaligned ones are realigned when an aligned place exists.
 *    Locked and moving segments stay. One pass: each proposal costs
 *    O(log n) plus the spans skipped, so a pass is O(n log n). An
 *    incremental plan pauses (SPAN_PLAN_PAUSE) before a step would exceed
 *    its byte budget; segments larger than the budget are left alone.
 *
 *  targeted: a window [w, w+size) (aligned, inside one region, below the
 *    limit) touches a run of spans; its eviction set E is the hull of that
 *    run, from the base of the first span to the end of the last. E must
 *    hold no locked, moving or in-transit span; all its segments leave, and
 *    the free spans in E are not used as destinations. The cost is E's
 *    movable bytes.
 *    The eviction witness of a window: take E's segments by decreasing size
 *    (ties: lower base first) and give each the lowest place, at its own
 *    alignment (large-page for a large segment that has it, else 4 KiB), in
 *    the free space outside E left by the earlier ones. If every segment
 *    gets a place, the request is satisfiable: those moves are disjoint
 *    and free. The witness is evaluated by booking the placements as trial
 *    in-transit spans and releasing them (O(m log n + m^2) for m segments).
 *    Choice: the windows that touch the same run form a class with one
 *    witness, so one sweep over the region's spans visits every class at
 *    its lowest aligned w (the next class starts where w passes the end of
 *    the first span or w+size passes the base of the next one: O(n) steps
 *    with running sums of movable and free bytes). Classes with a locked
 *    span or more movable bytes than the free memory outside E are
 *    skipped; the witness is evaluated only for a class cheaper than the
 *    best accepted so far, so the result is the least-cost class that has
 *    a witness (ties: lowest address). No cap on classes: the planner
 *    finds a window whenever any aligned window has a witness.
 *    Evacuation replays the witness: each step moves E's largest segment
 *    to its lowest place outside E. Each move removes exactly the space the
 *    witness gave it and frees space only inside E, so the next step sees
 *    what the witness saw and the evacuation cannot get stuck unless the
 *    caller allocates or a move fails between steps; then the window is
 *    chosen afresh (at most PLAN_SELECTIONS selections per plan).
 *    If no class has a witness, the cheapest one that passes the byte count
 *    gets a room-making pass (full compaction that never enters E), and
 *    the choice is repeated, at most PLAN_ROOM_PASSES times; a pass that
 *    moves nothing ends the plan with -ENOSPC.
 *
 *  realign: each misaligned large segment slides to the large-page boundary
 *    below or above it when the neighbouring free span allows, otherwise
 *    moves to the lowest aligned free place.
 *
 * Constants: PLAN_SELECTIONS = 64 bounds re-selections caused by the
 *   caller (allocations between steps, moves refused as pinned), not the
 *   windows considered: each selection considers them all. PLAN_ROOM_PASSES
 *   = 4 room-making passes; each is O(n log n) and a pass that makes no
 *   progress ends the plan, so the bound only limits slow convergence.
 */
#include "span_internal.h"

#define PLAN_SELECTIONS  64
#define PLAN_ROOM_PASSES 4
#define NO_WINDOW        UINT64_MAX

enum plan_phase { PHASE_CHOOSE = 0, PHASE_EVACUATE, PHASE_ROOM };

static void plan_reset(struct span_plan *plan, enum span_plan_kind kind)
{
    *plan =
        (struct span_plan){ .kind = kind, .window = NO_WINDOW, .result_base = NO_WINDOW, .lo = 0, .hi = UINT64_MAX };
}

int span_plan_targeted(const struct span_alloc *a, struct span_plan *plan, uint64_t size, uint64_t align,
                       uint64_t limit)
{
    if (a == NULL || plan == NULL || size == 0 || size > UINT64_MAX - (SPAN_GRANULE - 1))
        return -EINVAL;
    if (align == 0)
        align = SPAN_GRANULE;
    if (align < SPAN_GRANULE || (align & (align - 1)) != 0)
        return -EINVAL;
    plan_reset(plan, SPAN_PLAN_TARGETED);
    plan->size = align_up(size, SPAN_GRANULE);
    plan->align = align;
    plan->limit = limit == 0 ? UINT64_MAX : align_down(limit, SPAN_GRANULE);
    return 0;
}

int span_plan_full(const struct span_alloc *a, struct span_plan *plan, uint64_t step_bytes)
{
    return span_plan_range(a, plan, 0, UINT64_MAX, step_bytes);
}

int span_plan_range(const struct span_alloc *a, struct span_plan *plan, uint64_t lo, uint64_t hi, uint64_t step_bytes)
{
    if (a == NULL || plan == NULL || lo >= hi)
        return -EINVAL;
    plan_reset(plan, SPAN_PLAN_FULL);
    plan->step_bytes = step_bytes;
    plan->lo = lo;
    plan->hi = hi;
    plan->cursor = lo;
    return 0;
}

int span_plan_yield(const struct span_alloc *a, struct span_plan *plan)
{
    if (a == NULL || plan == NULL)
        return -EINVAL;
    plan_reset(plan, SPAN_PLAN_YIELD);
    return 0;
}

int span_plan_realign(const struct span_alloc *a, struct span_plan *plan)
{
    if (a == NULL || plan == NULL)
        return -EINVAL;
    plan_reset(plan, SPAN_PLAN_REALIGN);
    return 0;
}

/* ---- booking moves ------------------------------------------------------ */

/* The part of the destination the segment does not cover: [*lo, *hi). */
static void transit_range(uint64_t from, uint64_t to, uint64_t size, uint64_t *lo, uint64_t *hi)
{
    if (to + size <= from || from + size <= to) {
        *lo = to;
        *hi = to + size;
    } else if (to < from) {
        *lo = to;
        *hi = from;
    } else {
        *lo = from + size;
        *hi = to + size;
    }
}

static int propose(struct span_alloc *a, struct span_plan *plan, struct span_node *seg, uint64_t to,
                   struct span_move *move)
{
    uint64_t lo, hi;
    struct span_node *f, *t;

    transit_range(seg->base, to, seg->size, &lo, &hi);
    f = span_containing(a, lo);
    if (f == NULL || f->state != SPAN_FREE || span_end(f) < hi)
        return -EINVAL; /* a planner bug; never a caller's */
    /* The carve, and one slot each for releasing the transit span (move
     * failed) or the segment's old place (move done), so neither can fail. */
    if (span_carve_cost(f, lo, hi - lo) + 2 > a->nodes_free)
        return -ENOMEM;
    t = span_carve(a, f, lo, hi - lo, SPAN_IN_TRANSIT, seg->u.seg.tag);
    span_reserve_slot(a, t);
    span_reserve_slot(a, seg);
    seg->flags |= NODE_MOVING;
    a->moves_in_flight++;
    move->from = seg->base;
    move->to = to;
    move->size = seg->size;
    move->tag = seg->u.seg.tag;
    plan->pending = true;
    if (plan->step_bytes != 0)
        plan->step_used += seg->size;
    return SPAN_PLAN_MOVE;
}

/* The sweeping kinds resume after a segment once its move is proposed; a
 * failed proposal leaves the cursor where it was, so the next call reaches
 * the segment again. */
static int propose_and_pass(struct span_alloc *a, struct span_plan *plan, struct span_node *seg, uint64_t to,
                            struct span_move *move)
{
    int ret = propose(a, plan, seg, to, move);

    if (ret == SPAN_PLAN_MOVE)
        plan->cursor = seg->base + seg->size;
    return ret;
}

/* A finished sweep resumes past every address, so later calls find it done
 * too. */
static int sweep_done(struct span_plan *plan)
{
    plan->cursor = UINT64_MAX;
    return SPAN_PLAN_DONE;
}

/* Finds the segment and transit span of a pending move, or -EINVAL. */
static int pending_move(struct span_alloc *a, const struct span_plan *plan, const struct span_move *move,
                        struct span_node **seg, struct span_node **transit)
{
    uint64_t lo, hi;
    struct span_node *s, *t;

    if (a == NULL || plan == NULL || move == NULL || !plan->pending || move->size == 0 || move->from == move->to ||
        move->from > UINT64_MAX - move->size || move->to > UINT64_MAX - move->size)
        return -EINVAL;
    s = span_containing(a, move->from);
    if (s == NULL || s->base != move->from || s->size != move->size || s->state != SPAN_ALLOCATED ||
        !(s->flags & NODE_MOVING))
        return -EINVAL;
    transit_range(move->from, move->to, move->size, &lo, &hi);
    t = span_containing(a, lo);
    if (t == NULL || t->state != SPAN_IN_TRANSIT || t->base != lo || span_end(t) != hi)
        return -EINVAL;
    *seg = s;
    *transit = t;
    return 0;
}

int span_move_done(struct span_alloc *a, struct span_plan *plan, const struct span_move *move)
{
    struct span_node *seg, *t;
    uint64_t from, to, size;
    int err = pending_move(a, plan, move, &seg, &t);

    if (err != 0)
        return err;
    from = move->from;
    to = move->to;
    size = move->size;
    span_return_slot(a, t); /* a segment now: it needs none */
    span_account(a, t, -1);
    span_hash_remove(a, t);
    span_hash_remove(a, seg);
    t->state = SPAN_ALLOCATED;
    t->u.seg.tag = seg->u.seg.tag;
    t->u.seg.limit = seg->u.seg.limit;
    t->align_shift = seg->align_shift;
    t->lock_count = 0;
    t->flags = 0;
    if (to < from && to + size > from) { /* slid down over itself */
        t->size = size;
        seg->base = to + size;
        seg->size = from - to;
    } else if (to > from && from + size > to) { /* slid up over itself */
        t->base = to;
        t->size = size;
        seg->size = to - from;
    }
    span_hash_insert(a, t);
    span_hash_insert(a, seg);
    span_account(a, t, 1);
    span_mark_alignment(a, t);
    seg->flags &= (uint8_t)~NODE_MOVING;
    span_release(a, seg); /* with its reserved slot */
    a->moves_in_flight--;
    plan->pending = false;
    plan->moves++;
    plan->moved_bytes += size;
    return 0;
}

int span_move_failed(struct span_alloc *a, struct span_plan *plan, const struct span_move *move, bool pinned)
{
    struct span_node *seg, *t;
    int err = pending_move(a, plan, move, &seg, &t);

    if (err != 0)
        return err;
    span_release(a, t);
    span_return_slot(a, seg);
    seg->flags &= (uint8_t)~NODE_MOVING;
    if (pinned) {
        span_account(a, seg, -1);
        seg->lock_count = 1;
        span_account(a, seg, 1);
    }
    a->moves_in_flight--;
    plan->pending = false;
    plan->failed_moves++;
    if (plan->step_bytes != 0 && plan->step_used >= move->size)
        plan->step_used -= move->size;
    return 0;
}

/* ---- destinations ------------------------------------------------------ */

static struct span_node *span_at_or_after(const struct span_alloc *a, uint64_t addr)
{
    struct span_node *n = span_containing(a, addr);
    uint64_t next_region = UINT64_MAX;
    unsigned i;

    if (n != NULL)
        return n;
    /* In a hole or past the end: the first span of the next region. */
    for (i = 0; i < a->region_count; i++)
        if (a->regions[i].base > addr && a->regions[i].base < next_region)
            next_region = a->regions[i].base;
    return next_region != UINT64_MAX ? span_containing(a, next_region) : NULL;
}

/* Lowest destination for seg at align: a free place inside [lo, hi), or a
 * slide down into the free span right below seg (overlapping itself).
 * Never past seg's limit; align is a multiple of its hard alignment. */
static bool lowest_below(const struct span_alloc *a, const struct span_node *seg, uint64_t align, uint64_t lo,
                         uint64_t hi, uint64_t *to)
{
    struct span_fit fit = {
        .size = seg->size, .align = align, .lo = lo, .hi = hi < span_limit(seg) ? hi : span_limit(seg)
    };
    const struct span_node *prev = seg->prev;
    uint64_t place;
    bool found = false;

    if (lo < hi && span_find_lowest(a, &fit, &place) != NULL) {
        *to = place;
        found = true;
    }
    if (prev != NULL && prev->state == SPAN_FREE && prev->region == seg->region) {
        uint64_t slide = align_up(prev->base > lo ? prev->base : lo, align);
        if (slide < seg->base && (!found || slide < *to)) {
            *to = slide;
            found = true;
        }
    }
    return found;
}

/* Alignments a segment may move at, best first: always a multiple of its
 * hard alignment; a large segment that only wishes for large-page
 * alignment keeps it while it has it, and one that lacks it tries for it
 * first, then takes its hard alignment. */
static unsigned move_alignments(const struct span_alloc *a, const struct span_node *seg, uint64_t out[2])
{
    if (!span_wants_large(a, seg)) {
        out[0] = span_hard_align(seg);
        return 1;
    }
    out[0] = a->large_size;
    out[1] = span_hard_align(seg);
    return (seg->flags & NODE_MISALIGNED) ? 2 : 1;
}

/* A move into another region (across a hole) is worth it only if the free
 * run it opens at the source is larger than the one it consumes. */
static bool crossing_pays(const struct span_alloc *a, const struct span_node *seg, uint64_t to)
{
    const struct span_node *dest = span_containing(a, to);
    uint64_t opened = seg->size;

    if (dest == NULL || dest->region == seg->region)
        return true;
    if (seg->prev != NULL && seg->prev->state == SPAN_FREE && seg->prev->region == seg->region)
        opened += seg->prev->size;
    if (seg->next != NULL && seg->next->state == SPAN_FREE && seg->next->region == seg->region)
        opened += seg->next->size;
    return opened > dest->size;
}

/* Where seg should slide to, never into [wlo, whi) (an empty window for
 * none) nor below floor; only lower addresses. */
static bool compaction_target(const struct span_alloc *a, const struct span_node *seg, uint64_t floor, uint64_t wlo,
                              uint64_t whi, uint64_t *to)
{
    uint64_t aligns[2];
    uint64_t region_base = a->regions[seg->region].base;
    uint64_t floors[2] = { floor, region_base > floor ? region_base : floor };
    unsigned n = move_alignments(a, seg, aligns), i, f;

    /* First anywhere below; if that means an unprofitable hole crossing,
     * only within the segment's own region. */
    for (f = 0; f < 2; f++) {
        for (i = 0; i < n; i++) {
            uint64_t below_hi = seg->base < wlo ? seg->base : wlo;
            uint64_t lo = floors[f] > whi ? floors[f] : whi;
            uint64_t cand;
            bool found = lowest_below(a, seg, aligns[i], floors[f], below_hi, &cand);
            if (!found && whi < seg->base)
                found = lowest_below(a, seg, aligns[i], lo, seg->base, &cand);
            if (found && (cand + seg->size <= wlo || cand >= whi) && crossing_pays(a, seg, cand)) {
                *to = cand;
                return true;
            }
        }
    }
    return false;
}

/* ---- full and incremental ---------------------------------------------- */

static int next_compaction(struct span_alloc *a, struct span_plan *plan, uint64_t wlo, uint64_t whi,
                           struct span_move *move)
{
    struct span_node *seg;
    uint64_t scanned = 0;

    for (seg = span_at_or_after(a, plan->cursor); seg != NULL && seg->base < plan->hi; seg = seg->next) {
        uint64_t to;
        if (!span_is_movable(seg) || (seg->base < whi && span_end(seg) > wlo))
            continue;
        if (span_end(seg) > plan->hi)
            break; /* reaches out of the range: neither it nor what follows is in it */
        if (plan->scan_max != 0 && ++scanned > plan->scan_max) {
            plan->cursor = seg->base;
            return SPAN_PLAN_PAUSE;
        }
        if (plan->step_bytes != 0) {
            if (seg->size > plan->step_bytes)
                continue;
            if (plan->step_used + seg->size > plan->step_bytes) {
                plan->cursor = seg->base;
                plan->step_used = 0;
                return SPAN_PLAN_PAUSE;
            }
        }
        if (compaction_target(a, seg, plan->lo, wlo, whi, &to)) {
            return propose_and_pass(a, plan, seg, to, move);
        }
    }
    return sweep_done(plan);
}

/* ---- targeted ---------------------------------------------------------- */

/* Alignment an evicted segment needs: its hard alignment, and large-page
 * alignment for a large segment that wishes for it and has it (compaction
 * never breaks a large mapping), unless the plan may relax that. */
static uint64_t evict_align(const struct span_alloc *a, const struct span_plan *plan, const struct span_node *seg)
{
    if (span_wants_large(a, seg) && !(seg->flags & NODE_MISALIGNED) && !(plan->flags & SPAN_PLAN_RELAX_LARGE))
        return a->large_size;
    return span_hard_align(seg);
}

/* The lowest place for seg in the free space outside [elo, ehi) and below
 * its limit, or NULL. */
static struct span_node *evict_place(const struct span_alloc *a, const struct span_plan *plan,
                                     const struct span_node *seg, uint64_t elo, uint64_t ehi, uint64_t *to)
{
    uint64_t limit = span_limit(seg);
    struct span_fit below = {
        .size = seg->size, .align = evict_align(a, plan, seg), .lo = 0, .hi = elo < limit ? elo : limit
    };
    struct span_fit above = { .size = seg->size, .align = below.align, .lo = ehi, .hi = limit };
    struct span_node *f = below.hi > 0 ? span_find_lowest(a, &below, to) : NULL;

    return f != NULL || ehi >= limit ? f : span_find_lowest(a, &above, to);
}

/* The next segment of [elo, ehi) in eviction order (decreasing size, then
 * increasing base) after the key (size, base); first: from the start. */
static struct span_node *next_evictee(const struct span_alloc *a, uint64_t elo, uint64_t ehi, bool first, uint64_t size,
                                      uint64_t base)
{
    struct span_node *seg, *best = NULL;

    for (seg = span_containing(a, elo); seg != NULL && seg->base < ehi; seg = seg->next) {
        if (!span_is_movable(seg))
            continue;
        if (!first && (seg->size > size || (seg->size == size && seg->base <= base)))
            continue;
        if (best == NULL || seg->size > best->size || (seg->size == best->size && seg->base < best->base))
            best = seg;
    }
    return best;
}

/*
 * The eviction witness: places every movable segment of [elo, ehi), in
 * eviction order, at the lowest place (at evict_align) in the free space
 * outside [elo, ehi), each placement taking its space from the next. The
 * placements are booked as trial in-transit spans (each with its release
 * slot), chained through their tag, and released before returning, which
 * restores the books exactly (released spans coalesce back into the free
 * spans they were cut from). True if every segment found a place; a full
 * slot pool counts as no.
 */
static bool witness(struct span_alloc *a, const struct span_plan *plan, uint64_t elo, uint64_t ehi)
{
    struct span_node *trials = NULL, *seg;
    uint64_t size = 0, base = 0;
    bool first = true, ok = true;

    while ((seg = next_evictee(a, elo, ehi, first, size, base)) != NULL) {
        struct span_node *f, *t;
        uint64_t to;
        first = false;
        size = seg->size;
        base = seg->base;
        f = evict_place(a, plan, seg, elo, ehi, &to);
        if (f == NULL || span_carve_cost(f, to, size) + 1 > a->nodes_free) {
            ok = false;
            break;
        }
        t = span_carve(a, f, to, size, SPAN_IN_TRANSIT, (uint64_t)(uintptr_t)trials);
        span_reserve_slot(a, t);
        trials = t;
    }
    while (trials != NULL) {
        struct span_node *next = (struct span_node *)(uintptr_t)trials->u.seg.tag;
        span_release(a, trials);
        trials = next;
    }
    return ok;
}

struct window_sweep {
    const struct span_plan *plan;
    uint64_t size, align, limit;
    uint64_t max_cost; /* classes dearer than this are not taken */
    uint64_t total_free;
    bool found; /* best: least cost with a witness */
    uint64_t best_cost, best_base, best_lo, best_hi;
    bool fallback; /* least cost that passes the byte count */
    uint64_t fb_cost, fb_base, fb_lo, fb_hi;
};

static bool cheaper(uint64_t cost, uint64_t base, uint64_t best_cost, uint64_t best_base)
{
    return cost < best_cost || (cost == best_cost && base < best_base);
}

/* One window class: [w, w+size) touches exactly the spans [elo, ehi). */
static void consider(struct span_alloc *a, struct window_sweep *s, uint64_t w, uint64_t elo, uint64_t ehi,
                     uint64_t used, uint64_t free_in)
{
    if (used > s->total_free - free_in || used > s->max_cost)
        return;
    if (!s->fallback || cheaper(used, w, s->fb_cost, s->fb_base)) {
        s->fallback = true;
        s->fb_cost = used;
        s->fb_base = w;
        s->fb_lo = elo;
        s->fb_hi = ehi;
    }
    if (s->found && !cheaper(used, w, s->best_cost, s->best_base))
        return;
    if (used != 0 && !witness(a, s->plan, elo, ehi))
        return;
    s->found = true;
    s->best_cost = used;
    s->best_base = w;
    s->best_lo = elo;
    s->best_hi = ehi;
}

/* The spans a window [w, w+size) touches, [left, right), and what they
 * hold: bytes free, bytes of movable segments, and unmovable spans. */
struct window {
    struct span_node *left, *right;
    uint64_t used, free_in, blocked;
};

/* sign +1 counts n into the window, -1 out of it; inlined so that the
 * sign folds away. */
static inline __attribute__((always_inline)) void window_count(struct window *win, const struct span_node *n, int sign)
{
    uint64_t one = (uint64_t)(int64_t)sign;

    if (n->state == SPAN_FREE)
        win->free_in += one * n->size;
    else if (span_is_movable(n))
        win->used += one * n->size;
    else
        win->blocked += one;
}

/* Drops the spans that end at or before w; an emptied window restarts at
 * the span containing w. */
static void window_drop_left(struct window *win, uint64_t w)
{
    while (win->left != win->right && span_end(win->left) <= w) {
        window_count(win, win->left, -1);
        win->left = win->left->next;
    }
    if (win->left == win->right) {
        while (span_end(win->right) <= w)
            win->right = win->right->next;
        win->left = win->right;
    }
}

/* Takes in the spans of region ri that start before w_end. */
static void window_take_right(struct window *win, unsigned ri, uint64_t w_end)
{
    while (win->right != NULL && win->right->region == ri && win->right->base < w_end) {
        window_count(win, win->right, 1);
        win->right = win->right->next;
    }
}

/* The next class: w passes the end of the first span, or w+size passes
 * the base of the span after the window, whichever comes first. */
static uint64_t next_window(const struct window *win, unsigned ri, const struct window_sweep *s)
{
    uint64_t next_w = align_up(span_end(win->left), s->align);

    if (win->right != NULL && win->right->region == ri) {
        uint64_t y = align_up(win->right->base - s->size + SPAN_GRANULE, s->align);
        if (y < next_w)
            next_w = y;
    }
    return next_w;
}

/*
 * Every class of windows of one region: the lowest aligned w at which
 * [w, w+size) touches a given run of spans. The run changes when w passes
 * the end of its first span or w+size passes the base of the span after
 * it, so the next class starts at the aligned-up lower of the two.
 */
static void sweep_region(struct span_alloc *a, unsigned ri, struct window_sweep *s)
{
    const struct span_region *r = &a->regions[ri];
    uint64_t r_end = r->base + r->size;
    uint64_t top = r_end < s->limit ? r_end : s->limit;
    uint64_t w, w_max;
    struct window win = { 0 };

    if (top < r->base || top - r->base < s->size || r->base > UINT64_MAX - s->align)
        return;
    w = align_up(r->base, s->align);
    w_max = align_down(top - s->size, s->align);
    win.left = win.right = span_containing(a, r->base);
    while (w <= w_max) {
        uint64_t next_w;

        window_drop_left(&win, w);
        window_take_right(&win, ri, w + s->size);
        if (win.blocked == 0) {
            struct span_node *last = win.right != NULL ? win.right->prev : a->last;
            uint64_t right_base = win.right != NULL ? win.right->base : 0;
            consider(a, s, w, win.left->base, span_end(last), win.used, win.free_in);
            /* A witness may have re-coalesced the free span at right. */
            if (win.right != NULL)
                win.right = span_containing(a, right_base);
        }
        next_w = next_window(&win, ri, s);
        if (next_w <= w)
            break;
        w = next_w;
    }
}

enum choice { CHOSE_NONE, CHOSE_WITNESS, CHOSE_FALLBACK };

static enum choice choose_window(struct span_alloc *a, struct span_plan *plan)
{
    struct window_sweep s = {
        .plan = plan,
        .size = plan->size,
        .align = plan->align,
        .limit = plan->limit,
        .max_cost = plan->max_cost != 0 ? plan->max_cost : UINT64_MAX,
        .total_free = a->free_bytes,
    };
    unsigned i;

    for (i = 0; i < a->region_count; i++)
        sweep_region(a, i, &s);
    plan->attempts++;
    if (s.found) {
        plan->window = s.best_base;
        plan->window_cost = s.best_cost;
        plan->evict_lo = s.best_lo;
        plan->evict_hi = s.best_hi;
        return CHOSE_WITNESS;
    }
    if (!s.fallback)
        return CHOSE_NONE;
    plan->window = s.fb_base;
    plan->window_cost = s.fb_cost;
    plan->evict_lo = s.fb_lo;
    plan->evict_hi = s.fb_hi;
    return CHOSE_FALLBACK;
}

/* Does a pinned, moving or in-transit span lie in [lo, hi)? */
static bool evict_blocked(const struct span_alloc *a, uint64_t lo, uint64_t hi)
{
    const struct span_node *seg;

    for (seg = span_containing(a, lo); seg != NULL && seg->base < hi; seg = seg->next)
        if (seg->state != SPAN_FREE && !span_is_movable(seg))
            return true;
    return false;
}

static int next_targeted(struct span_alloc *a, struct span_plan *plan, struct span_move *move)
{
    for (;;) {
        uint64_t lo = plan->evict_lo, hi = plan->evict_hi, to;
        struct span_node *seg;

        if (plan->phase == PHASE_CHOOSE) {
            enum choice c;
            if (plan->attempts >= PLAN_SELECTIONS)
                return -ENOSPC;
            c = choose_window(a, plan);
            if (c == CHOSE_NONE)
                return -ENOSPC;
            if (c == CHOSE_FALLBACK) {
                /* Room-making moves bytes no window's cost accounts for:
                 * not within a byte cap (a request's direct budget). */
                if (plan->room_passes >= PLAN_ROOM_PASSES || plan->max_cost != 0)
                    return -ENOSPC;
                plan->room_passes++;
                plan->phase = PHASE_ROOM;
                plan->cursor = 0;
                plan->compacted = false;
            } else {
                plan->phase = PHASE_EVACUATE;
            }
            continue;
        }
        if (plan->phase == PHASE_ROOM) {
            int ret = next_compaction(a, plan, lo, hi, move);
            if (ret != SPAN_PLAN_DONE) {
                if (ret == SPAN_PLAN_MOVE)
                    plan->compacted = true;
                return ret;
            }
            if (!plan->compacted)
                return -ENOSPC; /* the books are as the last selection saw them */
            plan->phase = PHASE_CHOOSE;
            continue;
        }
        /* Evacuate in witness order; each move is the witness's first
         * placement, so (without interference) the rest stays placeable. */
        if (evict_blocked(a, lo, hi)) {
            plan->phase = PHASE_CHOOSE;
            continue;
        }
        seg = next_evictee(a, lo, hi, true, 0, 0);
        if (seg == NULL) {
            plan->result_base = plan->window;
            return SPAN_PLAN_DONE;
        }
        if (evict_place(a, plan, seg, lo, hi, &to) == NULL) {
            plan->phase = PHASE_CHOOSE; /* the caller allocated meanwhile */
            continue;
        }
        return propose(a, plan, seg, to, move);
    }
}

/* ---- realign ----------------------------------------------------------- */

static bool realign_target(const struct span_alloc *a, const struct span_node *seg, uint64_t *to)
{
    const struct span_node *prev = seg->prev, *next = seg->next;
    uint64_t down = align_down(seg->base, a->large_size);
    uint64_t up = align_up(seg->base, a->large_size);
    struct span_fit fit = { .size = seg->size, .align = a->large_size, .lo = 0, .hi = span_limit(seg) };

    if (prev != NULL && prev->state == SPAN_FREE && prev->region == seg->region && prev->base <= down) {
        *to = down;
        return true;
    }
    if (next != NULL && next->state == SPAN_FREE && next->region == seg->region && span_end(next) >= up + seg->size &&
        up + seg->size <= span_limit(seg)) {
        *to = up;
        return true;
    }
    return span_find_lowest(a, &fit, to) != NULL;
}

static int next_realign(struct span_alloc *a, struct span_plan *plan, struct span_move *move)
{
    struct span_node *seg;

    for (seg = span_at_or_after(a, plan->cursor); seg != NULL; seg = seg->next) {
        uint64_t to;
        if (!span_is_movable(seg) || !(seg->flags & NODE_MISALIGNED))
            continue;
        if (realign_target(a, seg, &to)) {
            return propose_and_pass(a, plan, seg, to, move);
        }
    }
    return sweep_done(plan);
}

/* ---- yield ------------------------------------------------------------- */

/*
 * A large segment that only wishes for large-page alignment and has it,
 * with a free gap right below it and free space right after it, slides down
 * over the gap: the gap and the space after become one run, at the price
 * of the segment's large mapping (realignment brings it back later).
 */
static bool yield_target(const struct span_alloc *a, const struct span_node *seg, uint64_t *to)
{
    const struct span_node *prev = seg->prev, *next = seg->next;
    uint64_t slide;

    if (!span_wants_large(a, seg) || (seg->flags & NODE_MISALIGNED) || prev == NULL || next == NULL ||
        prev->state != SPAN_FREE || next->state != SPAN_FREE || prev->region != seg->region ||
        next->region != seg->region)
        return false;
    slide = align_up(prev->base, span_hard_align(seg));
    if (slide >= seg->base || (slide & (a->large_size - 1)) == 0)
        return false; /* no gap at its alignment, or an ordinary compaction move */
    *to = slide;
    return true;
}

static int next_yield(struct span_alloc *a, struct span_plan *plan, struct span_move *move)
{
    struct span_node *seg;

    for (seg = span_at_or_after(a, plan->cursor); seg != NULL; seg = seg->next) {
        uint64_t to;
        if (span_is_movable(seg) && yield_target(a, seg, &to)) {
            return propose_and_pass(a, plan, seg, to, move);
        }
    }
    return sweep_done(plan);
}

int span_plan_next(struct span_alloc *a, struct span_plan *plan, struct span_move *move)
{
    if (a == NULL || plan == NULL || move == NULL)
        return -EINVAL;
    if (plan->pending)
        return -EBUSY;
    span_settle(a); /* the planners search the address tree */
    switch (plan->kind) {
    case SPAN_PLAN_FULL: return next_compaction(a, plan, UINT64_MAX, UINT64_MAX, move);
    case SPAN_PLAN_TARGETED: return next_targeted(a, plan, move);
    case SPAN_PLAN_REALIGN: return next_realign(a, plan, move);
    case SPAN_PLAN_YIELD: return next_yield(a, plan, move);
    }
    return -EINVAL;
}
