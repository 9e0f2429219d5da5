/*
 * Host test of span compaction planning on simulated physical memory.
 *
 * A host buffer stands for physical memory. Every segment is stamped with a
 * pattern derived from its tag; holes are filled with a sentinel. Random
 * layouts (with holes, touching regions and locked segments; large page set
 * to 16 KiB so that large-segment rules are exercised at this small scale)
 * get targeted, full, incremental and realignment plans. Every proposed
 * move is checked (a movable segment, a destination inside one region and
 * free or overlapping only itself), carried out with memmove, and confirmed;
 * one move in MOVE_FAIL_ONE_IN is reported failed as if the segment had been
 * pinned meanwhile. Segments are allocated with random constraints (an
 * alignment, a limit, large-page alignment as a hard constraint or a wish)
 * and every move must keep them, as the test recorded them: alignment and
 * limit always, a wished-for large alignment the segment has except in
 * yield plans. After each plan: every segment's contents are intact and
 * inside its constraints, locked segments never moved, holes untouched,
 * span_check passes.
 *
 * Targeted plans are compared with two brute-force oracles on a granule
 * map, written independently of the library. The eviction witness (see
 * span_plan.c): for every aligned window below the limit inside one region
 * with no hole or locked granule, the hull of the spans it touches is
 * evacuated by decreasing first fit (large segments that have 16 KiB
 * alignment keep it) into the free granules outside the hull. Zero
 * tolerance: if any window has a witness, the plan must succeed without
 * room-making, move exactly its window's cost, and that cost must be the
 * least over all windows with a witness; if the plan is refused, no window
 * may have one. "possible" (exact bin packing of all movable segments, by
 * backtracking) bounds every success and is reported for refusals.
 *
 * Usage: span_compact_test [trials [seed]] (SPAN_SEED also sets the seed).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "span_testlib.h"

#define G                SPAN_GRANULE
#define MEM_BASE         ((uint64_t)0x100000)
#define GRANULES         112
#define LARGE            (4 * G)
#define NODES            512
#define MOVE_FAIL_ONE_IN 50
#define MAX_SEGS         128

struct seg {
    uint64_t base, size, tag;
    uint64_t align, limit; /* its constraints: hard alignment, end limit (UINT64_MAX: none) */
    bool wish;             /* large, its large-page alignment only wished for */
    bool locked;
    bool live;
};

struct sim {
    struct span_alloc a;
    struct span_node nodes[NODES];
    uint8_t *mem;
    uint8_t hole[GRANULES];
    struct seg segs[MAX_SEGS];
    unsigned nsegs;
    uint64_t rng;
    uint64_t seed;
    unsigned trial;
    bool last_failed;
};

static uint8_t pattern(uint64_t tag, uint64_t off)
{
    uint64_t x = tag * 0x9e3779b97f4a7c15ULL + (off >> 3) * 0xbf58476d1ce4e5b9ULL;
    return (uint8_t)((x >> 29) ^ off);
}

static uint8_t *at(struct sim *s, uint64_t addr) { return s->mem + (addr - MEM_BASE); }

static void stamp(struct sim *s, const struct seg *g)
{
    uint64_t i;

    for (i = 0; i < g->size; i++)
        at(s, g->base)[i] = pattern(g->tag, i);
}

static bool intact(struct sim *s, const struct seg *g)
{
    uint64_t i;

    for (i = 0; i < g->size; i++)
        if (at(s, g->base)[i] != pattern(g->tag, i))
            return false;
    return true;
}

static struct seg *seg_by_tag(struct sim *s, uint64_t tag)
{
    return tag < s->nsegs && s->segs[tag].live ? &s->segs[tag] : NULL;
}

static int failures;

#define EXPECT(cond, ...)                                                                                              \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "FAIL seed=%#" PRIx64 " trial=%u: ", s->seed, s->trial);                                   \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
            failures++;                                                                                                \
            return false;                                                                                              \
        }                                                                                                              \
    } while (0)

/* Regions 0..40, hole 40..48, 48..80, 80..112 (touching). */
static void build(struct sim *s, enum span_policy policy)
{
    static const struct {
        unsigned lo, hi;
    } regions[] = { { 0, 40 }, { 48, 80 }, { 80, 112 } };
    unsigned i, g, tries;

    span_init(&s->a, policy, LARGE, s->nodes, NODES);
    memset(s->mem, 0xee, GRANULES * G);
    memset(s->hole, 1, sizeof(s->hole));
    for (i = 0; i < 3; i++) {
        span_add_region(&s->a, MEM_BASE + regions[i].lo * G, (regions[i].hi - regions[i].lo) * G);
        for (g = regions[i].lo; g < regions[i].hi; g++)
            s->hole[g] = 0;
    }
    s->nsegs = 0;
    for (tries = 0; tries < 200 && s->nsegs < MAX_SEGS; tries++) {
        uint64_t r = test_rand(&s->rng);
        struct span_request req = { .size = (1 + r % 6) * G, .flags = SPAN_LARGE_OK };
        uint64_t base, hard;
        if (r % 7 == 0)
            req.size = (4 + (r >> 8) % 8) * G;
        if ((r >> 16) % 5 == 0)
            req.align = (uint64_t)2 * G << ((r >> 20) % 2); /* 8 or 16 KiB */
        if ((r >> 24) % 4 == 0)
            req.limit = MEM_BASE + (24 + (r >> 28) % 88) * G; /* anywhere from the first region on */
        if (req.size >= LARGE && (r >> 36) % 3 == 0)
            req.flags = 0; /* large alignment a hard constraint */
        if (span_alloc(&s->a, &req, s->nsegs, &base) != 0)
            continue;
        hard = req.align ? req.align : G;
        if (req.size >= LARGE && !(req.flags & SPAN_LARGE_OK) && hard < LARGE)
            hard = LARGE;
        s->segs[s->nsegs] = (struct seg){
            base,  req.size, s->nsegs, hard, req.limit ? req.limit : UINT64_MAX, req.size >= LARGE && hard < LARGE,
            false, true
        };
        stamp(s, &s->segs[s->nsegs]);
        s->nsegs++;
    }
    for (i = 0; i < s->nsegs; i++) {
        uint64_t r = test_rand(&s->rng) % 100;
        if (r < 45) {
            span_free(&s->a, s->segs[i].base);
            s->segs[i].live = false;
        } else if (r < 50) {
            span_lock(&s->a, s->segs[i].base);
            s->segs[i].locked = true;
        }
    }
}

static bool keeps(const struct seg *g, uint64_t to) { return to % g->align == 0 && to + g->size <= g->limit; }

static bool verify_memory(struct sim *s)
{
    unsigned i;
    uint64_t g, b;

    for (i = 0; i < s->nsegs; i++) {
        struct span_info info;
        if (!s->segs[i].live)
            continue;
        EXPECT(span_lookup(&s->a, s->segs[i].base, &info) == 0 && info.base == s->segs[i].base &&
                   info.tag == s->segs[i].tag,
               "segment %u lost from the books", i);
        EXPECT(intact(s, &s->segs[i]), "segment %u contents changed", i);
        EXPECT(keeps(&s->segs[i], s->segs[i].base), "segment %u at %#" PRIx64 " outside its constraints", i,
               s->segs[i].base);
    }
    for (g = 0; g < GRANULES; g++)
        if (s->hole[g])
            for (b = 0; b < G; b++)
                EXPECT(s->mem[g * G + b] == 0xee, "hole granule %" PRIu64 " written", g);
    EXPECT(check_books(&s->a, "after plan"), "span_check");
    return true;
}

static unsigned moves_checked;

/* Carries out one proposed move in the buffer and confirms it. */
static bool carry_out(struct sim *s, struct span_plan *plan, const struct span_move *mv)
{
    struct seg *g = seg_by_tag(s, mv->tag);
    uint64_t gi;

    EXPECT(g != NULL && g->base == mv->from && g->size == mv->size, "move of a non-segment");
    EXPECT(!g->locked, "locked segment proposed for a move");
    EXPECT(keeps(g, mv->to),
           "move of segment %" PRIu64 " to %#" PRIx64 " breaks its alignment %#" PRIx64 " or limit %#" PRIx64, mv->tag,
           mv->to, g->align, g->limit);
    EXPECT(!g->wish || g->base % LARGE != 0 || mv->to % LARGE == 0 || plan->kind == SPAN_PLAN_YIELD ||
               (plan->flags & SPAN_PLAN_RELAX_LARGE),
           "move gives up a large segment's large-page alignment");
    moves_checked++;
    EXPECT(mv->to >= MEM_BASE && mv->to + mv->size <= MEM_BASE + GRANULES * G, "move outside memory");
    for (gi = (mv->to - MEM_BASE) / G; gi < (mv->to + mv->size - MEM_BASE) / G; gi++)
        EXPECT(!s->hole[gi], "move into a hole");
    EXPECT(span_free(&s->a, mv->from) == -EBUSY, "moving segment could be freed");
    EXPECT(check_books(&s->a, "with a move in flight"), "span_check in flight");
    s->last_failed = test_rand(&s->rng) % MOVE_FAIL_ONE_IN == 0;
    if (s->last_failed) {
        EXPECT(span_move_failed(&s->a, plan, mv, true) == 0, "move_failed refused");
        g->locked = true;
        return true;
    }
    memmove(at(s, mv->to), at(s, mv->from), mv->size);
    if (mv->to + mv->size <= mv->from || mv->from + mv->size <= mv->to)
        memset(at(s, mv->from), 0x5a, mv->size); /* the old frames are garbage now */
    EXPECT(span_move_done(&s->a, plan, mv) == 0, "move_done refused");
    EXPECT(span_move_done(&s->a, plan, mv) == -EINVAL, "second move_done accepted");
    g->base = mv->to;
    return true;
}

static bool run_plan(struct sim *s, struct span_plan *plan, int *result, uint64_t step)
{
    struct span_move mv;
    unsigned guard;
    uint64_t in_step = 0;

    for (guard = 0; guard < 10000; guard++) {
        int ret = span_plan_next(&s->a, plan, &mv);
        if (ret != SPAN_PLAN_MOVE && ret != SPAN_PLAN_PAUSE) {
            *result = ret;
            return verify_memory(s);
        }
        if (ret == SPAN_PLAN_PAUSE) {
            EXPECT(step != 0 && in_step <= step, "pause without a step budget");
            in_step = 0;
            continue;
        }
        in_step += mv.size;
        EXPECT(step == 0 || in_step <= step, "incremental step moved too much");
        EXPECT(span_plan_next(&s->a, plan, &mv) == -EBUSY, "second proposal while pending");
        if (!carry_out(s, plan, &mv))
            return false;
        if (s->last_failed)
            in_step -= mv.size; /* a failed move does not use the budget */
    }
    EXPECT(false, "plan did not terminate");
}

/* ---- oracles on a granule map ------------------------------------------ */

enum { O_HOLE, O_FREE, O_MOVABLE, O_LOCKED };

static void granule_map(struct sim *s, uint8_t *map)
{
    unsigned i;
    uint64_t g;

    for (g = 0; g < GRANULES; g++)
        map[g] = s->hole[g] ? O_HOLE : O_FREE;
    for (i = 0; i < s->nsegs; i++) {
        if (!s->segs[i].live)
            continue;
        for (g = (s->segs[i].base - MEM_BASE) / G; g < (s->segs[i].base + s->segs[i].size - MEM_BASE) / G; g++)
            map[g] = s->segs[i].locked ? O_LOCKED : O_MOVABLE;
    }
}

/* Exact bin packing by backtracking, with a work budget (pack_budget).
 * It ignores the segments' constraints: an upper bound on what is possible. */
static unsigned long pack_budget;

static bool pack(uint64_t *items, unsigned n, uint64_t *bins, unsigned nbins)
{
    unsigned b;

    if (n == 0)
        return true;
    if (pack_budget == 0)
        return false;
    pack_budget--;
    for (b = 0; b < nbins; b++) {
        unsigned c;
        bool seen = false;
        for (c = 0; c < b; c++)
            seen |= bins[c] == bins[b];
        if (seen || bins[b] < items[0])
            continue;
        bins[b] -= items[0];
        if (pack(items + 1, n - 1, bins, nbins)) {
            bins[b] += items[0];
            return true;
        }
        bins[b] += items[0];
    }
    return false;
}

static int cmp_desc(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? 1 : a > b ? -1 : 0;
}

/* Free runs (or usable runs, when `usable`) outside [w, w+n) in granules. */
static unsigned runs_outside(const uint8_t *map, unsigned w, unsigned n, bool usable, uint64_t *bins,
                             const uint8_t *region_of)
{
    unsigned g = 0, nb = 0;

    while (g < GRANULES) {
        unsigned e;
        bool ok = (usable ? (map[g] == O_FREE || map[g] == O_MOVABLE) : map[g] == O_FREE) && (g < w || g >= w + n);
        if (!ok) {
            g++;
            continue;
        }
        for (e = g; e < GRANULES && region_of[e] == region_of[g] && (e < w || e >= w + n) &&
                    (usable ? (map[e] == O_FREE || map[e] == O_MOVABLE) : map[e] == O_FREE);
             e++)
            ;
        bins[nb++] = e - g;
        g = e;
    }
    return nb;
}

/* The segment (live, movable or locked) covering granule g, or NULL. */
static const struct seg *seg_at(const struct sim *s, unsigned g)
{
    unsigned i;

    for (i = 0; i < s->nsegs; i++) {
        const struct seg *sg = &s->segs[i];
        uint64_t lo = (sg->base - MEM_BASE) / G, hi = lo + sg->size / G;
        if (sg->live && g >= lo && g < hi)
            return sg;
    }
    return NULL;
}

struct oracle {
    bool possible;       /* some packing of all movable segments works */
    bool witness;        /* some aligned window has the eviction witness */
    uint64_t least_cost; /* least movable granules of a window with a witness */
};

/*
 * The eviction witness for window [w, w+n), computed on the granule map
 * independently of the library: the hull [hlo, hhi) of the spans the window
 * touches (a free run or a segment reaching over an edge is included
 * whole); its movable segments by decreasing size (then lower base) each
 * take the lowest place, at their alignment (16 KiB for a large segment
 * that has it, else 4 KiB), in granules that are free, outside the hull,
 * inside one region, and not taken by an earlier one. Returns the cost in
 * granules, or UINT64_MAX if some segment finds no place.
 */
static uint64_t window_witness(const struct sim *s, const uint8_t *map, const uint8_t *region_of, unsigned w,
                               unsigned n)
{
    uint8_t avail[GRANULES];
    const struct seg *items[MAX_SEGS];
    unsigned hlo = w, hhi = w + n, ni = 0, i, j, g;
    uint64_t cost = 0;

    if (map[w] == O_FREE) {
        while (hlo > 0 && map[hlo - 1] == O_FREE && region_of[hlo - 1] == region_of[w])
            hlo--;
    } else {
        hlo = (unsigned)((seg_at(s, w)->base - MEM_BASE) / G);
    }
    if (map[w + n - 1] == O_FREE) {
        while (hhi < GRANULES && map[hhi] == O_FREE && region_of[hhi] == region_of[w])
            hhi++;
    } else {
        const struct seg *sg = seg_at(s, w + n - 1);
        hhi = (unsigned)((sg->base + sg->size - MEM_BASE) / G);
    }
    for (g = 0; g < GRANULES; g++)
        avail[g] = map[g] == O_FREE && (g < hlo || g >= hhi);
    for (i = 0; i < s->nsegs; i++) {
        const struct seg *sg = &s->segs[i];
        uint64_t lo = (sg->base - MEM_BASE) / G;
        if (sg->live && !sg->locked && lo >= hlo && lo < hhi)
            items[ni++] = sg;
    }
    for (i = 1; i < ni; i++) /* insertion sort: size down, base up */
        for (j = i; j > 0 && (items[j]->size > items[j - 1]->size ||
                              (items[j]->size == items[j - 1]->size && items[j]->base < items[j - 1]->base));
             j--) {
            const struct seg *t = items[j];
            items[j] = items[j - 1];
            items[j - 1] = t;
        }
    for (i = 0; i < ni; i++) {
        unsigned sz = (unsigned)(items[i]->size / G);
        bool keeps_large = items[i]->wish && items[i]->base % LARGE == 0;
        uint64_t align = keeps_large ? LARGE : items[i]->align;
        bool placed = false;
        for (g = 0; g + sz <= GRANULES && !placed; g++) {
            unsigned k;
            bool ok = (MEM_BASE + (uint64_t)g * G) % align == 0 && MEM_BASE + (uint64_t)(g + sz) * G <= items[i]->limit;
            for (k = g; k < g + sz && ok; k++)
                ok = avail[k] && region_of[k] == region_of[g];
            if (ok) {
                for (k = g; k < g + sz; k++)
                    avail[k] = 0;
                placed = true;
            }
        }
        if (!placed)
            return UINT64_MAX;
        cost += sz;
    }
    return cost;
}

static void oracle(struct sim *s, unsigned n, unsigned align_g, uint64_t limit, struct oracle *o)
{
    uint8_t map[GRANULES], region_of[GRANULES];
    uint64_t all[MAX_SEGS];
    unsigned nall = 0, w, i;

    granule_map(s, map);
    for (w = 0; w < GRANULES; w++)
        region_of[w] = w < 40 ? 1 : w < 48 ? 0 : w < 80 ? 2 : 3;
    for (i = 0; i < s->nsegs; i++)
        if (s->segs[i].live && !s->segs[i].locked)
            all[nall++] = s->segs[i].size / G;
    qsort(all, nall, sizeof(all[0]), cmp_desc);
    o->possible = o->witness = false;
    o->least_cost = UINT64_MAX;
    for (w = 0; w + n <= GRANULES; w++) {
        uint64_t addr = MEM_BASE + (uint64_t)w * G, bins[GRANULES], cost;
        unsigned g, nb;
        bool bad = false;
        if (addr % ((uint64_t)align_g * G) != 0 || addr + (uint64_t)n * G > limit)
            continue;
        for (g = w; g < w + n; g++)
            bad |= map[g] == O_HOLE || map[g] == O_LOCKED || region_of[g] != region_of[w];
        if (bad)
            continue;
        cost = window_witness(s, map, region_of, w, n);
        if (cost != UINT64_MAX) {
            o->witness = true;
            if (cost < o->least_cost)
                o->least_cost = cost;
        }
        if (!o->possible) {
            nb = runs_outside(map, w, n, true, bins, region_of);
            pack_budget = 20000; /* past it, "possible" is unknown: counted as not */
            o->possible = pack(all, nall, bins, nb);
        }
    }
}

/* ---- trials ------------------------------------------------------------ */

static unsigned by_witness, by_room, refused, refused_possible, targeted, capped;

static bool trial_targeted(struct sim *s)
{
    unsigned n = 1 + test_rand(&s->rng) % 24;
    unsigned align_g = 1u << (test_rand(&s->rng) % 4);
    uint64_t limit = test_rand(&s->rng) % 3 == 0 ? MEM_BASE + (20 + test_rand(&s->rng) % 92) * G : UINT64_MAX;
    /* One plan in three has a byte cap, as a request's direct budget: it
     * takes only windows within it and makes no room. */
    uint64_t cap = test_rand(&s->rng) % 3 == 0 ? (1 + test_rand(&s->rng) % 24) * G : 0;
    struct oracle o;
    struct span_plan plan;
    int result = 1;

    oracle(s, n, align_g, limit, &o);
    targeted++;
    EXPECT(span_plan_targeted(&s->a, &plan, n * G, align_g * G, limit == UINT64_MAX ? 0 : limit) == 0, "plan refused");
    plan.max_cost = cap;
    if (!run_plan(s, &plan, &result, 0))
        return false;
    if (plan.failed_moves > 0)
        return true; /* a segment got pinned mid-plan: the oracle no longer applies */
    if (cap != 0) {
        bool within = o.witness && o.least_cost * G <= cap;
        EXPECT(plan.room_passes == 0 && plan.moved_bytes <= cap,
               "capped plan moved %" PRIu64 " of a cap of %" PRIu64 " granules, %u room passes", plan.moved_bytes / G,
               cap / G, plan.room_passes);
        EXPECT(within ? result == SPAN_PLAN_DONE && plan.moved_bytes == o.least_cost * G : result == -ENOSPC,
               "capped plan (cap %" PRIu64 ", least witness cost %" PRIu64 " granules): %d, moved %" PRIu64, cap / G,
               o.witness ? o.least_cost : UINT64_MAX, result, plan.moved_bytes / G);
        capped++;
        return true;
    }
    if (result == SPAN_PLAN_DONE) {
        struct span_info info;
        struct span_request req = {
            .size = n * G, .align = align_g * G, .limit = limit == UINT64_MAX ? 0 : limit, .flags = SPAN_LARGE_OK
        };
        uint64_t base;
        EXPECT(span_lookup(&s->a, plan.result_base, &info) == 0 && info.state == SPAN_FREE &&
                   info.base + info.size >= plan.result_base + n * G,
               "targeted plan done but no free run at %#" PRIx64, plan.result_base);
        EXPECT(plan.result_base % (align_g * G) == 0 && plan.result_base + n * G <= limit, "run breaks constraints");
        EXPECT(o.possible || pack_budget == 0, "plan succeeded where the oracle says impossible");
        if (o.witness) {
            /* The witness window is taken directly, at the least cost. */
            EXPECT(plan.room_passes == 0, "room-making although a witness exists");
            EXPECT(plan.window_cost / G == o.least_cost && plan.moved_bytes == plan.window_cost,
                   "moved %" PRIu64 ", window cost %" PRIu64 ", least witness cost %" PRIu64 " granules",
                   plan.moved_bytes / G, plan.window_cost / G, o.least_cost);
            by_witness++;
        } else {
            EXPECT(plan.room_passes > 0, "success without room-making or a witness");
            by_room++;
        }
        EXPECT(span_alloc(&s->a, &req, 999, &base) == 0, "alloc after targeted plan failed");
        EXPECT(span_free(&s->a, base) == 0, "free");
        return true;
    }
    EXPECT(result == -ENOSPC, "targeted plan error %d", result);
    /* Zero tolerance: a witness means the planner must have found it. */
    EXPECT(!o.witness, "targeted plan refused although a window of cost %" PRIu64 " granules has a witness",
           o.least_cost);
    refused++;
    if (o.possible)
        refused_possible++; /* possible only by repacking beyond the witness */
    return true;
}

static bool trial_full(struct sim *s, uint64_t step)
{
    struct span_plan plan;
    struct span_stats before, after;
    int result = 1;

    span_stats(&s->a, &before);
    EXPECT(span_plan_full(&s->a, &plan, step) == 0, "plan refused");
    if (!run_plan(s, &plan, &result, step))
        return false;
    EXPECT(result == SPAN_PLAN_DONE, "full plan ended with %d", result);
    span_stats(&s->a, &after);
    EXPECT(before.free_bytes == after.free_bytes, "full compaction changed free bytes");
    return true;
}

/* A range plan moves only segments inside the range, to places inside it. */
static bool trial_range(struct sim *s)
{
    uint64_t lo = MEM_BASE + (test_rand(&s->rng) % 80) * G;
    uint64_t hi = lo + (8 + test_rand(&s->rng) % 40) * G;
    struct span_plan plan;
    struct span_move mv;
    unsigned guard;
    int ret = 0;

    EXPECT(span_plan_range(&s->a, &plan, lo, hi, 0) == 0, "range plan refused");
    EXPECT(span_plan_range(&s->a, &plan, hi, lo, 0) == -EINVAL, "empty range accepted");
    EXPECT(span_plan_range(&s->a, &plan, lo, hi, 0) == 0, "range plan refused");
    for (guard = 0; guard < 1000; guard++) {
        ret = span_plan_next(&s->a, &plan, &mv);
        if (ret != SPAN_PLAN_MOVE)
            break;
        EXPECT(mv.from >= lo && mv.from + mv.size <= hi && mv.to >= lo && mv.to + mv.size <= hi,
               "range move %#" PRIx64 " -> %#" PRIx64 " leaves [%#" PRIx64 ", %#" PRIx64 ")", mv.from, mv.to, lo, hi);
        if (!carry_out(s, &plan, &mv))
            return false;
    }
    EXPECT(ret == SPAN_PLAN_DONE, "range plan ended with %d", ret);
    return verify_memory(s);
}

/* Yield: each move slides a wished-for large segment that had large
 * alignment down over a free gap, next to free space after it, to a place
 * that is not large-aligned. */
static unsigned yields;

static bool trial_yield(struct sim *s)
{
    struct span_plan plan;
    struct span_move mv;
    unsigned guard;
    int ret = 0;

    EXPECT(span_plan_yield(&s->a, &plan) == 0, "yield plan refused");
    for (guard = 0; guard < 1000; guard++) {
        struct seg *g;
        struct span_info below, after;
        ret = span_plan_next(&s->a, &plan, &mv);
        if (ret != SPAN_PLAN_MOVE)
            break;
        g = seg_by_tag(s, mv.tag);
        EXPECT(g != NULL && g->wish && mv.from % LARGE == 0 && mv.to < mv.from && mv.to % LARGE != 0,
               "yield move %#" PRIx64 " -> %#" PRIx64 " is not a wished-for large segment sliding down", mv.from,
               mv.to);
        EXPECT(span_lookup(&s->a, mv.to, &below) == 0 && below.state == SPAN_IN_TRANSIT &&
                   span_lookup(&s->a, mv.from + mv.size, &after) == 0 && after.state == SPAN_FREE,
               "yield move without a gap below and free space after");
        if (!carry_out(s, &plan, &mv))
            return false;
        yields++;
    }
    EXPECT(ret == SPAN_PLAN_DONE, "yield plan ended with %d", ret);
    return verify_memory(s);
}

static bool trial_realign(struct sim *s)
{
    struct span_plan plan;
    struct span_stats st;
    int result = 1;

    EXPECT(span_plan_realign(&s->a, &plan) == 0, "plan refused");
    if (!run_plan(s, &plan, &result, 0))
        return false;
    EXPECT(result == SPAN_PLAN_DONE, "realign ended with %d", result);
    span_stats(&s->a, &st);
    return true;
}

int main(int argc, char **argv)
{
    unsigned trials = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 500;
    static struct sim s;
    unsigned t;

    s.seed = test_seed(argc, argv, 2);
    s.rng = s.seed;
    s.mem = malloc(GRANULES * G);
    if (s.mem == NULL)
        return 2;
    for (t = 0; t < trials; t++) {
        bool ok;
        s.trial = t;
        build(&s, (enum span_policy)(t % SPAN_POLICY_COUNT));
        if (!verify_memory(&s))
            return 1;
        switch (t % 6) {
        case 0:
        case 1: ok = trial_targeted(&s); break;
        case 2: ok = trial_full(&s, (t / 6) % 2 ? 0 : (1 + test_rand(&s.rng) % 8) * G); break;
        case 3: ok = trial_range(&s) && trial_targeted(&s); break;
        case 4: ok = trial_yield(&s) && trial_realign(&s) && trial_targeted(&s); break;
        default: ok = trial_realign(&s) && trial_targeted(&s); break;
        }
        if (!ok)
            return 1;
    }
    printf("span_compact_test: %u trials, seed %#" PRIx64 ", %u moves checked against their "
           "constraints (%u of them yields): %u targeted plans: %u solved "
           "by a witness window at the least cost, %u by room-making without a witness, "
           "%u refused (no witness; %u of them possible by a global repacking); %u more under a byte cap\n",
           trials, s.seed, moves_checked, yields, targeted, by_witness, by_room, refused, refused_possible, capped);
    free(s.mem);
    return failures != 0;
}
