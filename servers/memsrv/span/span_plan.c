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
 *  targeted: chooses the window [w, w+size) (aligned, inside one region,
 *    below the limit, no locked or in-transit span inside) whose evacuation
 *    moves the fewest bytes: every segment touching the window must leave
 *    whole. The cost only changes where a window edge crosses a span edge,
 *    so it suffices to try w = align_up(b) for every breakpoint b in
 *    {region base, span ends, span bases - size}; a two-pointer sweep does
 *    that in O(n) per region. Windows whose cost exceeds the free memory
 *    outside them are skipped. Evacuation takes the largest segment first
 *    and sends it to the smallest free span outside the window that holds
 *    it (best fit decreasing; an O(n) scan per move). If one finds no place, a room-making
 *    pass (full compaction that never enters the window) consolidates free
 *    space and evacuation resumes; if that pass moves nothing, the next
 *    cheapest window is tried, up to PLAN_WINDOWS of them, then -ENOSPC.
 *
 *  realign: each misaligned large segment slides to the large-page boundary
 *    below or above it when the neighbouring free span allows, otherwise
 *    moves to the lowest aligned free place.
 *
 * Constants: PLAN_WINDOWS = 8 windows before giving up keeps a hopeless
 * targeted plan O(8 n) while a window that is merely unlucky in its
 * evacuation order gets alternatives.
 */
#include "span_internal.h"

#define PLAN_WINDOWS 8
#define NO_WINDOW UINT64_MAX

enum plan_phase { PHASE_CHOOSE = 0, PHASE_EVACUATE, PHASE_ROOM };

static void plan_reset(struct span_plan *plan, enum span_plan_kind kind)
{
    *plan = (struct span_plan){ .kind = kind, .window = NO_WINDOW, .result_base = NO_WINDOW };
}

int span_plan_targeted(const struct span_alloc *a, struct span_plan *plan, uint64_t size,
                       uint64_t align, uint64_t limit)
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
    if (a == NULL || plan == NULL)
        return -EINVAL;
    plan_reset(plan, SPAN_PLAN_FULL);
    plan->step_bytes = step_bytes;
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
static void transit_range(uint64_t from, uint64_t to, uint64_t size, uint64_t *lo,
                          uint64_t *hi)
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

static int propose(struct span_alloc *a, struct span_plan *plan, struct span_node *seg,
                   uint64_t to, struct span_move *move)
{
    uint64_t lo, hi;
    struct span_node *f;

    transit_range(seg->base, to, seg->size, &lo, &hi);
    f = span_containing(a, lo);
    if (f == NULL || f->state != SPAN_FREE || span_end(f) < hi)
        return -EINVAL; /* a planner bug; never a caller's */
    if (span_carve_cost(f, lo, hi - lo) > a->nodes_free)
        return -ENOMEM;
    span_carve(a, f, lo, hi - lo, SPAN_IN_TRANSIT, seg->tag);
    seg->flags |= NODE_MOVING;
    a->moves_in_flight++;
    move->from = seg->base;
    move->to = to;
    move->size = seg->size;
    move->tag = seg->tag;
    plan->pending = true;
    if (plan->step_bytes != 0)
        plan->step_used += seg->size;
    return SPAN_PLAN_MOVE;
}

/* Finds the segment and transit span of a pending move, or -EINVAL. */
static int pending_move(struct span_alloc *a, const struct span_plan *plan,
                        const struct span_move *move, struct span_node **seg,
                        struct span_node **transit)
{
    uint64_t lo, hi;
    struct span_node *s, *t;

    if (a == NULL || plan == NULL || move == NULL || !plan->pending || move->size == 0 ||
        move->from == move->to || move->from > UINT64_MAX - move->size ||
        move->to > UINT64_MAX - move->size)
        return -EINVAL;
    s = span_containing(a, move->from);
    if (s == NULL || s->base != move->from || s->size != move->size ||
        s->state != SPAN_ALLOCATED || !(s->flags & NODE_MOVING))
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
    span_account(a, t, -1);
    t->state = SPAN_ALLOCATED;
    t->tag = seg->tag;
    t->lock_count = 0;
    t->flags = 0;
    if (to < from && to + size > from) {        /* slid down over itself */
        t->size = size;
        seg->base = to + size;
        seg->size = from - to;
    } else if (to > from && from + size > to) { /* slid up over itself */
        t->base = to;
        t->size = size;
        seg->size = to - from;
    }
    span_account(a, t, 1);
    span_mark_alignment(a, t);
    seg->flags &= (uint8_t)~NODE_MOVING;
    span_release(a, seg);
    a->moves_in_flight--;
    plan->pending = false;
    plan->moves++;
    plan->moved_bytes += size;
    return 0;
}

int span_move_failed(struct span_alloc *a, struct span_plan *plan,
                     const struct span_move *move, bool pinned)
{
    struct span_node *seg, *t;
    int err = pending_move(a, plan, move, &seg, &t);

    if (err != 0)
        return err;
    span_release(a, t);
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
    const struct rb_node *r = a->addr_tree.root;
    struct span_node *best = NULL;

    while (r != NULL) {
        struct span_node *n = span_of_addr_link(r);
        if (span_end(n) > addr) {
            best = n;
            r = r->left;
        } else {
            r = r->right;
        }
    }
    return best;
}

/* Lowest destination for seg at align: a free place inside [lo, hi), or a
 * slide down into the free span right below seg (overlapping itself). */
static bool lowest_below(const struct span_alloc *a, const struct span_node *seg,
                         uint64_t align, uint64_t lo, uint64_t hi, uint64_t *to)
{
    struct span_fit fit = { .size = seg->size, .align = align, .lo = lo, .hi = hi };
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

/* Alignments a segment may move at: large ones keep large-page alignment;
 * misaligned ones (or all, if allow_misaligned) may fall back to 4 KiB. */
static unsigned move_alignments(const struct span_alloc *a, const struct span_node *seg,
                                bool allow_misaligned, uint64_t out[2])
{
    if (seg->size < a->large_size) {
        out[0] = SPAN_GRANULE;
        return 1;
    }
    out[0] = a->large_size;
    out[1] = SPAN_GRANULE;
    return (allow_misaligned || (seg->flags & NODE_MISALIGNED)) ? 2 : 1;
}

/* A move into another region (across a hole) is worth it only if the free
 * run it opens at the source is larger than the one it consumes. */
static bool crossing_pays(const struct span_alloc *a, const struct span_node *seg,
                          uint64_t to)
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
 * none); only lower addresses. */
static bool compaction_target(const struct span_alloc *a, const struct span_node *seg,
                              uint64_t wlo, uint64_t whi, uint64_t *to)
{
    uint64_t aligns[2];
    uint64_t floors[2] = { 0, a->regions[seg->region].base };
    unsigned n = move_alignments(a, seg, false, aligns), i, f;

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
            if (found && (cand + seg->size <= wlo || cand >= whi) &&
                crossing_pays(a, seg, cand)) {
                *to = cand;
                return true;
            }
        }
    }
    return false;
}

/* ---- full and incremental ---------------------------------------------- */

static int next_compaction(struct span_alloc *a, struct span_plan *plan, uint64_t wlo,
                           uint64_t whi, struct span_move *move)
{
    struct span_node *seg;

    for (seg = span_at_or_after(a, plan->cursor); seg != NULL; seg = seg->next) {
        uint64_t to;
        if (!span_is_movable(seg) || (seg->base < whi && span_end(seg) > wlo))
            continue;
        if (plan->step_bytes != 0) {
            if (seg->size > plan->step_bytes)
                continue;
            if (plan->step_used + seg->size > plan->step_bytes) {
                plan->cursor = seg->base;
                plan->step_used = 0;
                return SPAN_PLAN_PAUSE;
            }
        }
        if (compaction_target(a, seg, wlo, whi, &to)) {
            int ret = propose(a, plan, seg, to, move);
            if (ret == SPAN_PLAN_MOVE)
                plan->cursor = seg->base + seg->size;
            return ret;
        }
    }
    plan->cursor = UINT64_MAX;
    return SPAN_PLAN_DONE;
}

/* ---- targeted ---------------------------------------------------------- */

struct window_sweep {
    uint64_t size, align, limit;
    uint64_t total_free;
    bool have_floor;            /* exclude (cost, base) <= floor */
    uint64_t floor_cost, floor_base;
    bool found;
    uint64_t best_cost, best_base;
};

static bool better_window(const struct window_sweep *s, uint64_t cost, uint64_t base)
{
    if (s->have_floor && (cost < s->floor_cost ||
                          (cost == s->floor_cost && base <= s->floor_base)))
        return false;
    return !s->found || cost < s->best_cost || (cost == s->best_cost && base < s->best_base);
}

static void sweep_region(const struct span_alloc *a, const struct span_region *r,
                         struct window_sweep *s)
{
    uint64_t r_end = r->base + r->size;
    uint64_t top = r_end < s->limit ? r_end : s->limit;
    uint64_t w, w_max;
    const struct span_node *left, *right; /* window spans: [left, right) */
    uint64_t used = 0, free_full = 0, blocked = 0;

    if (top < r->base || top - r->base < s->size)
        return;
    w = align_up(r->base, s->align);
    w_max = align_down(top - s->size, s->align);
    left = right = span_containing(a, r->base);
    while (w <= w_max && w >= r->base) {
        const struct span_node *last;
        const struct span_node *next_y;
        uint64_t free_in, next_w;

        /* Drop spans that end at or before w; take spans starting before w+size. */
        while (left != right && span_end(left) <= w) {
            if (left->state == SPAN_FREE)
                free_full -= left->size;
            else if (span_is_movable(left))
                used -= left->size;
            else
                blocked--;
            left = left->next;
        }
        if (left == right) {
            while (right != NULL && span_end(right) <= w)
                right = right->next;
            left = right;
        }
        while (right != NULL && right->region == left->region && right->base < w + s->size) {
            if (right->state == SPAN_FREE)
                free_full += right->size;
            else if (span_is_movable(right))
                used += right->size;
            else
                blocked++;
            right = right->next;
        }
        last = right != NULL ? right->prev : a->last;
        free_in = free_full;
        if (left->state == SPAN_FREE && left->base < w)
            free_in -= w - left->base;
        if (last->state == SPAN_FREE && span_end(last) > w + s->size)
            free_in -= span_end(last) - (w + s->size);
        if (blocked == 0 && used <= s->total_free - free_in && better_window(s, used, w)) {
            s->found = true;
            s->best_cost = used;
            s->best_base = w;
        }
        /* Next breakpoint: the left edge leaving `left`, or the right edge
         * passing the start of the next span beyond it. */
        next_w = align_up(span_end(left), s->align);
        next_y = right;
        if (next_y != NULL && next_y->base == w + s->size)
            next_y = next_y->next;
        if (next_y != NULL && next_y->region == left->region) {
            uint64_t y = align_up(next_y->base - s->size, s->align);
            if (y > w && y < next_w)
                next_w = y;
        }
        if (next_w <= w)
            break;
        w = next_w;
    }
}

static bool choose_window(const struct span_alloc *a, struct span_plan *plan)
{
    struct window_sweep s = {
        .size = plan->size, .align = plan->align, .limit = plan->limit,
        .total_free = a->free_bytes,
    };
    unsigned i;

    if (plan->attempts > 0) {
        s.have_floor = true;
        s.floor_cost = plan->window_cost;
        s.floor_base = plan->window;
    }
    for (i = 0; i < a->region_count; i++)
        sweep_region(a, &a->regions[i], &s);
    if (!s.found)
        return false;
    plan->window = s.best_base;
    plan->window_cost = s.best_cost;
    plan->attempts++;
    return true;
}

/* Where an evicted segment goes: the smallest free span outside the window
 * that holds it (best fit keeps big runs for big segments), large-page
 * aligned if possible. A linear scan: compaction is allowed O(n) per move. */
static bool eviction_target(const struct span_alloc *a, const struct span_node *seg,
                            uint64_t wlo, uint64_t whi, uint64_t *to)
{
    uint64_t aligns[2];
    unsigned n = move_alignments(a, seg, true, aligns), i;

    for (i = 0; i < n; i++) {
        struct span_fit below = { .size = seg->size, .align = aligns[i], .lo = 0, .hi = wlo };
        struct span_fit above = { .size = seg->size, .align = aligns[i], .lo = whi,
                                  .hi = UINT64_MAX };
        const struct span_node *f, *best = NULL;
        uint64_t place;
        for (f = a->first; f != NULL; f = f->next) {
            if (f->state != SPAN_FREE || f->size < seg->size ||
                (best != NULL && f->size >= best->size))
                continue;
            if (span_place_low(f, &below, &place) || span_place_low(f, &above, &place)) {
                best = f;
                *to = place;
            }
        }
        if (best != NULL)
            return true;
    }
    return false;
}

/* The largest movable segment touching the window; *blocked if a pinned or
 * moving one touches it (the window is no longer usable). */
static struct span_node *largest_in_window(const struct span_alloc *a, uint64_t wlo,
                                           uint64_t whi, bool *blocked)
{
    struct span_node *seg, *largest = NULL;

    *blocked = false;
    for (seg = span_containing(a, wlo); seg != NULL && seg->base < whi; seg = seg->next) {
        if (seg->state == SPAN_FREE)
            continue;
        if (!span_is_movable(seg)) {
            *blocked = true;
            return NULL;
        }
        if (largest == NULL || seg->size > largest->size)
            largest = seg;
    }
    return largest;
}

static int next_targeted(struct span_alloc *a, struct span_plan *plan, struct span_move *move)
{
    for (;;) {
        uint64_t wlo = plan->window, whi;
        struct span_node *seg;
        bool blocked = false;

        if (plan->phase == PHASE_CHOOSE) {
            if (plan->attempts >= PLAN_WINDOWS || !choose_window(a, plan))
                return -ENOSPC;
            plan->phase = PHASE_EVACUATE;
            continue;
        }
        whi = wlo + plan->size;
        if (plan->phase == PHASE_ROOM) {
            int ret = next_compaction(a, plan, wlo, whi, move);
            if (ret != SPAN_PLAN_DONE) {
                if (ret == SPAN_PLAN_MOVE)
                    plan->compacted = true;
                return ret;
            }
            plan->phase = plan->compacted ? PHASE_EVACUATE : PHASE_CHOOSE;
            plan->compacted = false;
            continue;
        }
        /* Evacuate, largest segment first (best fit decreasing). */
        seg = largest_in_window(a, wlo, whi, &blocked);
        if (blocked) {
            plan->phase = PHASE_CHOOSE;
            continue;
        }
        if (seg == NULL) {
            plan->result_base = wlo;
            return SPAN_PLAN_DONE;
        }
        {
            uint64_t to;
            if (eviction_target(a, seg, wlo, whi, &to))
                return propose(a, plan, seg, to, move);
        }
        plan->phase = PHASE_ROOM;
        plan->cursor = 0;
    }
}

/* ---- realign ----------------------------------------------------------- */

static bool realign_target(const struct span_alloc *a, const struct span_node *seg,
                           uint64_t *to)
{
    const struct span_node *prev = seg->prev, *next = seg->next;
    uint64_t down = align_down(seg->base, a->large_size);
    uint64_t up = align_up(seg->base, a->large_size);
    struct span_fit fit = { .size = seg->size, .align = a->large_size, .lo = 0,
                            .hi = UINT64_MAX };

    if (prev != NULL && prev->state == SPAN_FREE && prev->region == seg->region &&
        prev->base <= down) {
        *to = down;
        return true;
    }
    if (next != NULL && next->state == SPAN_FREE && next->region == seg->region &&
        span_end(next) >= up + seg->size) {
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
            int ret = propose(a, plan, seg, to, move);
            if (ret == SPAN_PLAN_MOVE)
                plan->cursor = seg->base + seg->size;
            return ret;
        }
    }
    plan->cursor = UINT64_MAX;
    return SPAN_PLAN_DONE;
}

int span_plan_next(struct span_alloc *a, struct span_plan *plan, struct span_move *move)
{
    if (a == NULL || plan == NULL || move == NULL)
        return -EINVAL;
    if (plan->pending)
        return -EBUSY;
    switch (plan->kind) {
    case SPAN_PLAN_FULL:
        return next_compaction(a, plan, UINT64_MAX, UINT64_MAX, move);
    case SPAN_PLAN_TARGETED:
        return next_targeted(a, plan, move);
    case SPAN_PLAN_REALIGN:
        return next_realign(a, plan, move);
    }
    return -EINVAL;
}
