/*
 * Host test of the span allocator: randomized differential test.
 *
 * Millions of random operations (allocate with random size, alignment, limit
 * and large-page flag; free, including bad and double frees; lock, unlock;
 * reserve at fixed places; runs of compaction plans of every kind: targeted,
 * full, incremental, over a range, realign and yield) on memory with holes
 * and touching regions, for every policy. Each result is checked against a
 * reference model with one byte per granule: a successful allocation must
 * lie on free granules of one region and honour its constraints; a failed
 * one must be impossible in the model (so the allocator never refuses what
 * fits). Every proposed move is checked the same way: the segment it names
 * is a live unlocked one, its destination lies on granules that are free
 * (or its own) inside one region, and keeps the segment's constraints (its hard
 * alignment and its limit as the test recorded them at allocation, and the
 * large-page alignment of a large segment that has it, except in a yield
 * plan or a relaxed targeted plan); the model then follows the move, and
 * one move in 40 is refused as if the segment had been pinned. The full invariant
 * checker (O(spans)) runs after every one of the first CHECK_ALL_OPS
 * operations of each policy and after every CHECK_EVERY-th one later (each
 * operation's own result is always checked against the model); the whole
 * span map and the free/largest-run figures are compared with the model
 * every MATCH_EVERY operations and at the end.
 *
 * Usage: span_random_test [ops-per-policy [seed]]; SPAN_SEED also sets the
 * seed. A failure prints the seed, policy and operation number.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "span_testlib.h"

#define MIB              ((uint64_t)1 << 20)
#define G                SPAN_GRANULE
#define MATCH_EVERY      64
#define CHECK_ALL_OPS    150000
#define CHECK_EVERY      16
#define NODES            8192
#define MAX_LIVE         4096
#define PLAN_MOVES_MAX   12 /* moves of one plan run, at most */
#define MOVE_FAIL_ONE_IN 40

struct live {
    uint64_t base, size;
    uint64_t align, limit; /* the constraints it was allocated with (hard alignment; 0: no limit) */
    bool wish;             /* large, with large-page alignment only wished for */
    uint32_t locks;
};

struct world {
    struct span_alloc a;
    struct span_node nodes[NODES];
    struct span_node *buckets[MAX_LIVE];
    struct ref_model m;
    struct live live[MAX_LIVE];
    size_t nlive;
    uint64_t rng;
    uint64_t large;
    uint64_t op;
    uint64_t moves; /* moves followed, for the closing line */
    const char *why;
};

static const char *policy_names[SPAN_POLICY_COUNT] = { "best-fit", "top-of-heap", "instant-fit", "buddy", "marker" };

static void setup(struct world *w, enum span_policy policy, uint64_t seed)
{
    static const struct {
        uint64_t base, size;
    } regions[] = {
        { 1 * MIB, 8 * MIB }, /* hole 9..10 MiB */
        { 10 * MIB, 10 * MIB },
        { 20 * MIB, 5 * MIB }, /* touches the previous region */
        { 26 * MIB, 64 * 4096 },
    };
    unsigned i;

    w->rng = seed;
    w->large = (seed & 1) ? 4 * MIB : 2 * MIB;
    w->nlive = 0;
    if (span_init(&w->a, policy, w->large, w->nodes, NODES) != 0)
        abort();
    {
        void *old;
        size_t old_bytes;
        if (span_hash_resize(&w->a, w->buckets, sizeof(w->buckets), &old, &old_bytes) != 0 || old != NULL)
            abort();
    }
    ref_init(&w->m, 0, (27 * MIB) / G);
    for (i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
        if (span_add_region(&w->a, regions[i].base, regions[i].size) != 0)
            abort();
        ref_add_region(&w->m, regions[i].base, regions[i].size, i);
    }
}

static uint64_t pick_size(struct world *w)
{
    uint64_t r = test_rand(&w->rng) % 100;

    if (r < 70)
        return (1 + test_rand(&w->rng) % 64) * G;
    if (r < 95)
        return (65 + test_rand(&w->rng) % 600) * G;
    return (512 + test_rand(&w->rng) % 1200) * G - (test_rand(&w->rng) % 2) * 100;
}

static bool fail(struct world *w, const char *why)
{
    w->why = why;
    return false;
}

static bool do_alloc(struct world *w)
{
    struct span_request req = { .size = pick_size(w) };
    uint64_t r = test_rand(&w->rng);
    uint64_t base = 0, size, align, hi, eff_align;
    bool large;
    int err;

    if (r % 5 == 0)
        req.align = (uint64_t)1 << (13 + test_rand(&w->rng) % 10);
    if ((r >> 8) % 5 == 0)
        req.limit = (1 + test_rand(&w->rng) % 26) * MIB;
    if ((r >> 16) & 1)
        req.flags = SPAN_LARGE_OK;
    size = (req.size + G - 1) & ~(G - 1);
    align = req.align ? req.align : G;
    hi = req.limit ? req.limit : UINT64_MAX;
    large = size >= w->large;
    eff_align = large && align < w->large ? w->large : align;

    err = span_alloc(&w->a, &req, w->op, &base);
    if (err == 0) {
        struct span_info info;
        if (base & (align - 1) || base + size > hi || !ref_all(&w->m, base, size, REF_FREE))
            return fail(w, "allocation on used memory or breaking its constraints");
        if (span_lookup(&w->a, base, &info) != 0 || info.size != size || info.tag != w->op)
            return fail(w, "lookup after alloc disagrees");
        if (base & (eff_align - 1)) {
            if (!(req.flags & SPAN_LARGE_OK) || !info.misaligned)
                return fail(w, "large segment misaligned without permission or mark");
            if (ref_can_place(&w->m, size, eff_align, hi))
                return fail(w, "large segment misaligned though an aligned place existed");
        }
        {
            /* What the segment must keep for good: a large one placed
             * without SPAN_LARGE_OK has large-page alignment as a hard
             * constraint, with it only as a wish. */
            bool hard_large = large && !(req.flags & SPAN_LARGE_OK);
            uint64_t keep = hard_large ? eff_align : align;
            uint64_t limit = req.limit ? req.limit & ~(G - 1) : 0;
            if (info.align != keep || info.limit != limit || info.wants_large != (large && keep < w->large))
                return fail(w, "the segment does not carry the constraints it was asked with");
            ref_set(&w->m, base, size, REF_USED);
            if (w->nlive == MAX_LIVE)
                return fail(w, "test live table full");
            w->live[w->nlive++] = (struct live){ base, size, keep, limit, large && keep < w->large, 0 };
        }
        return true;
    }
    if (err != -ENOMEM && err != -ERANGE && err != -E2BIG)
        return fail(w, "unexpected alloc error");
    if (ref_can_place(&w->m, size, eff_align, hi)) {
        return fail(w, "alloc refused though the reference has room");
    }
    if (large && (req.flags & SPAN_LARGE_OK) && ref_can_place(&w->m, size, align, hi))
        return fail(w, "SPAN_LARGE_OK alloc refused though a 4K-aligned place existed");
    return true;
}

static bool do_free(struct world *w)
{
    uint64_t r = test_rand(&w->rng);
    size_t i;
    int err;

    if (w->nlive == 0 || r % 16 == 0) {
        /* A made-up address: must fail unless it is a live segment base. */
        uint64_t addr = (test_rand(&w->rng) % (28 * MIB)) & ~(G - 1);
        for (i = 0; i < w->nlive; i++)
            if (w->live[i].base == addr)
                return true;
        err = span_free(&w->a, addr);
        return err == -ENOENT ? true : fail(w, "free of a non-segment did not say ENOENT");
    }
    i = (size_t)(r >> 8) % w->nlive;
    err = span_free(&w->a, w->live[i].base);
    if (w->live[i].locks > 0)
        return err == -EBUSY ? true : fail(w, "free of a locked segment did not say EBUSY");
    if (err != 0)
        return fail(w, "free of a live segment failed");
    if (span_free(&w->a, w->live[i].base) != -ENOENT)
        return fail(w, "double free not refused");
    ref_set(&w->m, w->live[i].base, w->live[i].size, REF_FREE);
    w->live[i] = w->live[--w->nlive];
    return true;
}

static bool do_lock(struct world *w)
{
    size_t i;
    uint64_t r = test_rand(&w->rng);

    if (w->nlive == 0)
        return true;
    i = (size_t)(r % w->nlive);
    if ((r >> 32) % 3 != 0 || w->live[i].locks == 0) {
        if (w->live[i].locks >= 2)
            return true;
        if (span_lock(&w->a, w->live[i].base) != 0)
            return fail(w, "lock failed");
        w->live[i].locks++;
    } else {
        if (span_unlock(&w->a, w->live[i].base) != 0)
            return fail(w, "unlock failed");
        w->live[i].locks--;
    }
    return true;
}

static bool do_reserve(struct world *w)
{
    uint64_t base = (test_rand(&w->rng) % (27 * MIB)) & ~(G - 1);
    uint64_t size = (1 + test_rand(&w->rng) % 32) * G;
    bool ok = ref_all(&w->m, base, size, REF_FREE);
    int err = span_reserve(&w->a, base, size, 7);

    if (ok != (err == 0))
        return fail(w, ok ? "reserve of free range failed" : "reserve of used range succeeded");
    if (ok) {
        ref_set(&w->m, base, size, REF_USED);
        if (w->nlive == MAX_LIVE)
            return fail(w, "test live table full");
        w->live[w->nlive++] = (struct live){ base, size, G, 0, size >= w->large, 0 };
    } else if (err != -EBUSY && err != -EINVAL) {
        return fail(w, "reserve error code");
    }
    return true;
}

static struct live *live_at(struct world *w, uint64_t base)
{
    size_t i;

    for (i = 0; i < w->nlive; i++)
        if (w->live[i].base == base)
            return &w->live[i];
    return NULL;
}

/* Checks a proposed move against the model and the segment's recorded
 * constraints, then carries it out in the model (or refuses it as pinned). */
static bool follow_move(struct world *w, struct span_plan *plan, const struct span_move *mv, bool may_drop_large)
{
    struct live *l = live_at(w, mv->from);
    uint64_t g;

    if (l == NULL || l->size != mv->size || l->locks != 0)
        return fail(w, "a move of something that is not a live, unlocked segment");
    if (mv->to % l->align != 0 || (l->limit != 0 && mv->to + mv->size > l->limit))
        return fail(w, "a move breaks the segment's alignment or limit");
    if (l->wish && l->base % w->large == 0 && mv->to % w->large != 0 && !may_drop_large)
        return fail(w, "a move gives up a large segment's large-page alignment");
    for (g = mv->to; g < mv->to + mv->size; g += G) {
        size_t k = (size_t)((g - w->m.base) / G);
        bool own = g >= mv->from && g < mv->from + mv->size;
        if (k >= w->m.granules || w->m.region[k] == 0 || w->m.region[k] != w->m.region[(mv->to - w->m.base) / G] ||
            (!own && w->m.state[k] != REF_FREE))
            return fail(w, "a move's destination is not free memory inside one region");
    }
    if (span_plan_next(&w->a, plan, (struct span_move[1]){ 0 }) != -EBUSY)
        return fail(w, "a second proposal while one is pending");
    if (test_rand(&w->rng) % MOVE_FAIL_ONE_IN == 0) {
        if (span_move_failed(&w->a, plan, mv, true) != 0)
            return fail(w, "move_failed refused");
        l->locks = 1;
        return true;
    }
    if (span_move_done(&w->a, plan, mv) != 0)
        return fail(w, "move_done refused");
    ref_set(&w->m, mv->from, mv->size, REF_FREE);
    ref_set(&w->m, mv->to, mv->size, REF_USED);
    l->base = mv->to;
    w->moves++;
    return true;
}

/* A short run of a random plan, every move followed and checked. */
static bool do_plan(struct world *w)
{
    uint64_t r = test_rand(&w->rng);
    struct span_plan plan;
    bool may_drop = false;
    unsigned moves;
    int ret = 0;

    switch (r % 6) {
    case 0:
        ret =
            span_plan_targeted(&w->a, &plan, pick_size(w), (r >> 8) % 3 == 0 ? (uint64_t)1 << (13 + (r >> 12) % 8) : 0,
                               (r >> 16) % 3 == 0 ? (1 + (r >> 20) % 26) * MIB : 0);
        if ((r >> 24) % 4 == 0) {
            plan.flags |= SPAN_PLAN_RELAX_LARGE;
            may_drop = true;
        }
        break;
    case 1: ret = span_plan_full(&w->a, &plan, 0); break;
    case 2:
        ret = span_plan_full(&w->a, &plan, (1 + (r >> 8) % 64) * G);
        plan.scan_max = 1 + (r >> 16) % 8;
        break;
    case 3: {
        uint64_t lo = ((r >> 8) % 27) * MIB, hi = lo + (1 + (r >> 16) % 12) * MIB;
        ret = span_plan_range(&w->a, &plan, lo, hi, 0);
        break;
    }
    case 4: ret = span_plan_realign(&w->a, &plan); break;
    default:
        ret = span_plan_yield(&w->a, &plan);
        may_drop = true;
        break;
    }
    if (ret != 0)
        return fail(w, "a plan was refused");
    for (moves = 0; moves < PLAN_MOVES_MAX; moves++) {
        struct span_move mv;
        ret = span_plan_next(&w->a, &plan, &mv);
        if (ret == SPAN_PLAN_PAUSE)
            continue;
        if (ret != SPAN_PLAN_MOVE)
            break;
        if (!follow_move(w, &plan, &mv, may_drop))
            return false;
    }
    if (ret < 0 && ret != -ENOSPC && ret != -ENOMEM)
        return fail(w, "unexpected plan error");
    return true;
}

static bool step(struct world *w)
{
    uint64_t r = test_rand(&w->rng) % 100;
    /* Drift between filling and draining so occupancy sweeps 0..100%. */
    uint64_t phase = (w->op / 20000) & 1;
    uint64_t alloc_share = phase ? 62 : 45;

    if (r < alloc_share)
        return do_alloc(w);
    if (r < 91)
        return do_free(w);
    if (r < 97)
        return do_lock(w);
    if (r < 99)
        return do_reserve(w);
    return do_plan(w);
}

int main(int argc, char **argv)
{
    uint64_t ops = argc > 1 ? strtoull(argv[1], NULL, 0) : 200000;
    uint64_t seed = test_seed(argc, argv, 2);
    static struct world w;
    unsigned policy;
    uint64_t total = 0, moves = 0;

    for (policy = 0; policy < SPAN_POLICY_COUNT; policy++) {
        uint64_t pseed = seed + policy;
        setup(&w, (enum span_policy)policy, pseed);
        for (w.op = 0; w.op < ops; w.op++) {
            bool full = w.op < CHECK_ALL_OPS || w.op % CHECK_EVERY == 0;
            bool ok = step(&w) && (!full || check_books(&w.a, "after an operation"));
            if (ok && w.op % MATCH_EVERY == 0)
                ok = ref_matches(&w.m, &w.a) || fail(&w, "span map differs from reference");
            if (!ok) {
                fprintf(stderr, "FAIL seed=%#" PRIx64 " policy=%s op=%" PRIu64 ": %s\n", seed, policy_names[policy],
                        w.op, w.why ? w.why : "check");
                return 1;
            }
        }
        if (!ref_matches(&w.m, &w.a)) {
            fprintf(stderr, "FAIL seed=%#" PRIx64 " policy=%s at end\n", seed, policy_names[policy]);
            return 1;
        }
        total += ops;
        moves += w.moves;
        w.moves = 0;
        ref_free_model(&w.m);
    }
    printf("span_random_test: %" PRIu64 " operations and %" PRIu64 " plan moves, seed %#" PRIx64 ", all checked\n",
           total, moves, seed);
    return 0;
}
