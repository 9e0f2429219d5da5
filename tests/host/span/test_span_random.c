/*
 * Host test of the span allocator: randomized differential test.
 *
 * Millions of random operations (allocate with random size, alignment, limit
 * and large-page flag; free, including bad and double frees; lock, unlock;
 * reserve at fixed places) on memory with holes and touching regions, for
 * every policy. Each result is checked against a reference model with one
 * byte per granule: a successful allocation must lie on free granules of one
 * region and honour its constraints; a failed one must be impossible in the
 * model (so the allocator never refuses what fits). The full invariant
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

#define MIB ((uint64_t)1 << 20)
#define G SPAN_GRANULE
#define MATCH_EVERY 64
#define CHECK_ALL_OPS 150000
#define CHECK_EVERY 16
#define NODES 8192
#define MAX_LIVE 4096

struct live {
    uint64_t base, size;
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
    const char *why;
};

static const char *policy_names[] = { "best-fit", "top-of-heap", "instant-fit" };

static void setup(struct world *w, enum span_policy policy, uint64_t seed)
{
    static const struct { uint64_t base, size; } regions[] = {
        { 1 * MIB, 8 * MIB },   /* hole 9..10 MiB */
        { 10 * MIB, 10 * MIB },
        { 20 * MIB, 5 * MIB },  /* touches the previous region */
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
        if (span_hash_resize(&w->a, w->buckets, sizeof(w->buckets), &old, &old_bytes) != 0 ||
            old != NULL)
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
        ref_set(&w->m, base, size, REF_USED);
        if (w->nlive < MAX_LIVE)
            w->live[w->nlive++] = (struct live){ base, size, 0 };
        else
            return fail(w, "test live table full");
        return true;
    }
    if (err != -ENOMEM && err != -ERANGE && err != -E2BIG)
        return fail(w, "unexpected alloc error");
    if (ref_can_place(&w->m, size, eff_align, hi))
        return fail(w, "alloc refused though the reference has room");
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
        w->live[w->nlive++] = (struct live){ base, size, 0 };
    } else if (err != -EBUSY && err != -EINVAL) {
        return fail(w, "reserve error code");
    }
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
    if (r < 92)
        return do_free(w);
    if (r < 98)
        return do_lock(w);
    return do_reserve(w);
}

int main(int argc, char **argv)
{
    uint64_t ops = argc > 1 ? strtoull(argv[1], NULL, 0) : 200000;
    uint64_t seed = test_seed(argc, argv, 2);
    static struct world w;
    unsigned policy;
    uint64_t total = 0;

    for (policy = 0; policy < SPAN_POLICY_COUNT; policy++) {
        uint64_t pseed = seed + policy;
        setup(&w, (enum span_policy)policy, pseed);
        for (w.op = 0; w.op < ops; w.op++) {
            bool full = w.op < CHECK_ALL_OPS || w.op % CHECK_EVERY == 0;
            bool ok = step(&w) && (!full || check_books(&w.a, "after an operation"));
            if (ok && w.op % MATCH_EVERY == 0)
                ok = ref_matches(&w.m, &w.a) || fail(&w, "span map differs from reference");
            if (!ok) {
                fprintf(stderr, "FAIL seed=%#" PRIx64 " policy=%s op=%" PRIu64 ": %s\n",
                        seed, policy_names[policy], w.op, w.why ? w.why : "check");
                return 1;
            }
        }
        if (!ref_matches(&w.m, &w.a)) {
            fprintf(stderr, "FAIL seed=%#" PRIx64 " policy=%s at end\n", seed,
                    policy_names[policy]);
            return 1;
        }
        total += ops;
        ref_free_model(&w.m);
    }
    printf("span_random_test: %" PRIu64 " operations, seed %#" PRIx64 ", all checked\n", total,
           seed);
    return 0;
}
