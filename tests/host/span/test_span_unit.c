/*
 * Host unit tests of the span allocator: every entry point, every error,
 * and for each error a snapshot proving the books did not change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "span_testlib.h"

#define MIB ((uint64_t)1 << 20)
#define KIB ((uint64_t)1 << 10)

struct fixture {
    struct span_alloc a;
    struct span_node nodes[256];
    struct span_snapshot before, after;
};

static struct fixture fx;

/* The fixture's policy: the tests that hold for every policy run once per
 * policy (the state cmocka passes in), the others with best fit. */
static const enum span_policy all_policies[SPAN_POLICY_COUNT] = {
    SPAN_POLICY_BEST_FIT, SPAN_POLICY_TOP_OF_HEAP, SPAN_POLICY_INSTANT_FIT, SPAN_POLICY_BUDDY, SPAN_POLICY_MARKER,
};

static int setup(void **state)
{
    enum span_policy policy = *state != NULL ? *(const enum span_policy *)*state : SPAN_POLICY_BEST_FIT;

    memset(&fx.a, 0, sizeof(fx.a));
    assert_int_equal(span_init(&fx.a, policy, 0, fx.nodes, 256), 0);
    assert_int_equal(span_add_region(&fx.a, 1 * MIB, 15 * MIB), 0);  /* 1..16 MiB */
    assert_int_equal(span_add_region(&fx.a, 32 * MIB, 32 * MIB), 0); /* 32..64 MiB */
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    snapshot_free(&fx.before);
    snapshot_free(&fx.after);
    return 0;
}

/* Runs call, expects err, and checks the books are unchanged. */
#define EXPECT_UNCHANGED(err, call)                                                                                    \
    do {                                                                                                               \
        snapshot_take(&fx.a, &fx.before);                                                                              \
        assert_int_equal((call), (err));                                                                               \
        snapshot_take(&fx.a, &fx.after);                                                                               \
        assert_true(snapshot_equal(&fx.before, &fx.after));                                                            \
        assert_true(check_books(&fx.a, #call));                                                                        \
    } while (0)

static uint64_t alloc_ok(uint64_t size, uint64_t align, uint64_t limit, uint32_t flags)
{
    struct span_request req = { size, align, limit, flags };
    uint64_t base = 0;

    assert_int_equal(span_alloc(&fx.a, &req, 99, &base), 0);
    assert_true(check_books(&fx.a, "alloc"));
    return base;
}

static void test_init_errors(void **state)
{
    struct span_alloc a;
    struct span_node n[2];

    (void)state;
    assert_int_equal(span_init(NULL, SPAN_POLICY_BEST_FIT, 0, n, 2), -EINVAL);
    assert_int_equal(span_init(&a, SPAN_POLICY_BEST_FIT, 0, NULL, 2), -EINVAL);
    assert_int_equal(span_init(&a, SPAN_POLICY_BEST_FIT, 0, n, 0), -EINVAL);
    assert_int_equal(span_init(&a, (enum span_policy)7, 0, n, 2), -EINVAL);
    assert_int_equal(span_init(&a, SPAN_POLICY_BEST_FIT, 3 * MIB, n, 2), -EINVAL);
    assert_int_equal(span_init(&a, SPAN_POLICY_BEST_FIT, 4 * KIB, n, 2), -EINVAL);
    assert_int_equal(span_init(&a, SPAN_POLICY_BEST_FIT, 4 * MIB, n, 2), 0);
    assert_true(check_books(&a, "init"));
}

static void test_region_errors(void **state)
{
    (void)state;
    EXPECT_UNCHANGED(-EINVAL, span_add_region(&fx.a, 100 * MIB, 0));
    EXPECT_UNCHANGED(-EINVAL, span_add_region(&fx.a, 100 * MIB + 1, 4096));
    EXPECT_UNCHANGED(-EINVAL, span_add_region(&fx.a, 100 * MIB, 4095));
    EXPECT_UNCHANGED(-EINVAL, span_add_region(&fx.a, UINT64_MAX & ~4095ULL, 8192));
    EXPECT_UNCHANGED(-EEXIST, span_add_region(&fx.a, 15 * MIB, 2 * MIB));
    EXPECT_UNCHANGED(-EEXIST, span_add_region(&fx.a, 0, 64 * MIB));
    /* Touching is fine: two regions, never coalesced across. */
    assert_int_equal(span_add_region(&fx.a, 16 * MIB, 1 * MIB), 0);
    assert_true(check_books(&fx.a, "touching region"));
}

static void test_alloc_errors(void **state)
{
    struct span_request req = { .size = 4096 };
    uint64_t base = 0;

    (void)state;
    req.size = 0;
    EXPECT_UNCHANGED(-EINVAL, span_alloc(&fx.a, &req, 1, &base));
    req.size = UINT64_MAX;
    EXPECT_UNCHANGED(-E2BIG, span_alloc(&fx.a, &req, 1, &base));
    req.size = 64 * MIB;
    EXPECT_UNCHANGED(-E2BIG, span_alloc(&fx.a, &req, 1, &base));
    req = (struct span_request){ .size = 4096, .align = 3 * 4096 };
    EXPECT_UNCHANGED(-EINVAL, span_alloc(&fx.a, &req, 1, &base));
    req.align = 2048;
    EXPECT_UNCHANGED(-EINVAL, span_alloc(&fx.a, &req, 1, &base));
    req = (struct span_request){ .size = 4096, .limit = 1 * MIB };
    EXPECT_UNCHANGED(-ERANGE, span_alloc(&fx.a, &req, 1, &base));
    req = (struct span_request){ .size = 4096, .flags = 0x80 };
    EXPECT_UNCHANGED(-EINVAL, span_alloc(&fx.a, &req, 1, &base));
    req = (struct span_request){ .size = 4096 };
    EXPECT_UNCHANGED(-EINVAL, span_alloc(&fx.a, &req, 1, NULL));
    EXPECT_UNCHANGED(-EINVAL, span_alloc(&fx.a, NULL, 1, &base));
    /* 20 MiB fits only in the 32 MiB region: a 16 MiB limit can never work. */
    req = (struct span_request){ .size = 20 * MIB, .limit = 16 * MIB };
    EXPECT_UNCHANGED(-ERANGE, span_alloc(&fx.a, &req, 1, &base));
}

static void test_alloc_free_basics(void **state)
{
    uint64_t x, y, z;
    struct span_info info;

    (void)state;
    x = alloc_ok(4096, 0, 0, 0);
    y = alloc_ok(5000, 0, 0, 0); /* rounded up to two granules */
    assert_int_equal(span_lookup(&fx.a, y + 4096, &info), 0);
    assert_int_equal(info.base, y);
    assert_int_equal(info.size, 8192);
    assert_int_equal(info.tag, 99);
    assert_int_equal(info.state, SPAN_ALLOCATED);
    z = alloc_ok(64 * KIB, 64 * KIB, 0, 0);
    assert_int_equal(z % (64 * KIB), 0);
    EXPECT_UNCHANGED(-ENOENT, span_free(&fx.a, y + 4096));  /* not a start */
    EXPECT_UNCHANGED(-ENOENT, span_free(&fx.a, 200 * MIB)); /* in a hole */
    assert_int_equal(span_free(&fx.a, y), 0);
    EXPECT_UNCHANGED(-ENOENT, span_free(&fx.a, y)); /* double free */
    assert_int_equal(span_free(&fx.a, x), 0);
    assert_int_equal(span_free(&fx.a, z), 0);
    assert_true(check_books(&fx.a, "frees"));
    /* Everything coalesced back: one free span per region. */
    assert_int_equal(span_lookup(&fx.a, 1 * MIB, &info), 0);
    assert_int_equal(info.size, 15 * MIB);
    assert_int_equal(info.state, SPAN_FREE);
    EXPECT_UNCHANGED(-ENOENT, span_lookup(&fx.a, 20 * MIB, &info));
}

static void test_limit_and_full(void **state)
{
    uint64_t b;
    struct span_request req = { .size = 8 * MIB, .limit = 16 * MIB };
    uint64_t base;

    (void)state;
    b = alloc_ok(4 * MIB, 0, 16 * MIB, 0);
    assert_true(b + 4 * MIB <= 16 * MIB);
    b = alloc_ok(8 * MIB, 0, 16 * MIB, 0);
    assert_true(b + 8 * MIB <= 16 * MIB);
    /* 3 MiB left below 16 MiB, in pieces: no 8 MiB run there any more. */
    EXPECT_UNCHANGED(-ENOMEM, span_alloc(&fx.a, &req, 1, &base));
    req.limit = 0;
    assert_int_equal(span_alloc(&fx.a, &req, 1, &base), 0);
    assert_true(base >= 32 * MIB);
    req.size = 30 * MIB;
    EXPECT_UNCHANGED(-ENOMEM, span_alloc(&fx.a, &req, 1, &base));
}

static void test_large_pages(void **state)
{
    uint64_t small, b;
    struct span_info info;

    (void)state;
    small = alloc_ok(4096, 0, 0, 0); /* breaks the 2 MiB alignment of 1 MiB.. */
    b = alloc_ok(2 * MIB, 0, 0, 0);
    assert_int_equal(b % (2 * MIB), 0);
    b = alloc_ok(3 * MIB, 0, 0, 0);
    assert_int_equal(b % (2 * MIB), 0);
    assert_int_equal(span_lookup(&fx.a, b, &info), 0);
    assert_false(info.misaligned);
    /* An explicit smaller alignment does not undo large-page alignment. */
    b = alloc_ok(2 * MIB, 8192, 0, 0);
    assert_int_equal(b % (2 * MIB), 0);
    (void)small;
}

static void test_misaligned_fallback(void **state)
{
    struct span_alloc a;
    struct span_node nodes[16];
    struct span_request req = { .size = 2 * MIB };
    struct span_info info;
    uint64_t base;

    (void)state;
    assert_int_equal(span_init(&a, SPAN_POLICY_BEST_FIT, 2 * MIB, nodes, 16), 0);
    /* 2.5 MiB of RAM from 1 MiB + 4 KiB: no 2 MiB-aligned 2 MiB run inside. */
    assert_int_equal(span_add_region(&a, 1 * MIB + 4096, 2560 * KIB), 0);
    /* Without permission to misalign, no region could ever hold it. */
    assert_int_equal(span_alloc(&a, &req, 1, &base), -ERANGE);
    req.flags = SPAN_LARGE_OK;
    assert_int_equal(span_alloc(&a, &req, 1, &base), 0);
    assert_int_equal(span_lookup(&a, base, &info), 0);
    assert_true(info.misaligned);
    assert_true(check_books(&a, "misaligned"));
    {
        struct span_stats st;
        span_stats(&a, &st);
        assert_int_equal(st.misaligned_segments, 1);
    }
}

static void test_lock_unlock(void **state)
{
    uint64_t b = alloc_ok(16 * KIB, 0, 0, 0);
    struct span_info info;
    struct span_stats st;

    (void)state;
    EXPECT_UNCHANGED(-EINVAL, span_unlock(&fx.a, b));
    assert_int_equal(span_lock(&fx.a, b), 0);
    assert_int_equal(span_lock(&fx.a, b), 0); /* nests */
    assert_int_equal(span_lookup(&fx.a, b, &info), 0);
    assert_int_equal(info.state, SPAN_LOCKED);
    assert_int_equal(info.lock_count, 2);
    span_stats(&fx.a, &st);
    assert_int_equal(st.locked_bytes, 16 * KIB);
    EXPECT_UNCHANGED(-EBUSY, span_free(&fx.a, b));
    EXPECT_UNCHANGED(-ENOENT, span_lock(&fx.a, b + 4096));
    EXPECT_UNCHANGED(-ENOENT, span_lock(&fx.a, 1 * MIB + 8 * MIB)); /* free span */
    assert_int_equal(span_unlock(&fx.a, b), 0);
    EXPECT_UNCHANGED(-EBUSY, span_free(&fx.a, b));
    assert_int_equal(span_unlock(&fx.a, b), 0);
    assert_int_equal(span_free(&fx.a, b), 0);
    assert_true(check_books(&fx.a, "unlock/free"));
}

static void test_reserve(void **state)
{
    (void)state;
    assert_int_equal(span_reserve(&fx.a, 2 * MIB, 64 * KIB, 7), 0);
    EXPECT_UNCHANGED(-EBUSY, span_reserve(&fx.a, 2 * MIB + 60 * KIB, 8 * KIB, 7));
    EXPECT_UNCHANGED(-EBUSY, span_reserve(&fx.a, 15 * MIB, 2 * MIB, 7)); /* past region end */
    EXPECT_UNCHANGED(-EINVAL, span_reserve(&fx.a, 20 * MIB, 4096, 7));   /* hole */
    EXPECT_UNCHANGED(-EINVAL, span_reserve(&fx.a, 2 * MIB + 1, 4096, 7));
    EXPECT_UNCHANGED(-EINVAL, span_reserve(&fx.a, 2 * MIB, 0, 7));
    assert_int_equal(span_free(&fx.a, 2 * MIB), 0);
}

static void test_node_store_full(void **state)
{
    struct span_alloc a;
    struct span_node nodes[4];
    struct span_request req = { .size = 4096 };
    uint64_t b1, b2, b3;
    struct span_snapshot s1 = { 0 }, s2 = { 0 };

    (void)state;
    assert_int_equal(span_init(&a, SPAN_POLICY_BEST_FIT, 0, nodes, 4), 0);
    assert_int_equal(span_add_region(&a, 1 * MIB, 1 * MIB), 0); /* a free span: 2 slots */
    assert_int_equal(span_alloc(&a, &req, 1, &b1), 0);          /* 3 */
    assert_int_equal(span_alloc(&a, &req, 2, &b2), 0);          /* 4 */
    snapshot_take(&a, &s1);
    /* Splitting the tail now needs a fifth slot. */
    assert_int_equal(span_alloc(&a, &req, 3, &b3), -ENOMEM);
    assert_int_equal(span_reserve(&a, 1 * MIB + 512 * KIB, 4096, 3), -ENOMEM);
    assert_int_equal(span_add_region(&a, 8 * MIB, 1 * MIB), -ENOMEM);
    /* b1 has no free neighbour: the free span it would leave needs a slot. */
    assert_int_equal(span_free(&a, b1), -ENOMEM);
    snapshot_take(&a, &s2);
    assert_true(snapshot_equal(&s1, &s2));
    assert_true(check_books(&a, "store full"));
    /* b2 merges into the free tail and gives its slot back; then b1 can go. */
    assert_int_equal(span_free(&a, b2), 0);
    assert_int_equal(span_free(&a, b1), 0);
    assert_int_equal(span_alloc(&a, &req, 4, &b2), 0);
    assert_int_equal(b2, b1);
    assert_true(check_books(&a, "after refill"));
    snapshot_free(&s1);
    snapshot_free(&s2);
}

/* The word each block is added with, given back when it is taken. */
#define OWNER_BASE 1000u

/* Blocks added with span_add_nodes carry the books past the first store
 * and come back once empty; the hash grows and shrinks on request. */
static void test_pool_grows_and_shrinks(void **state)
{
    enum { BLOCK = 4 * 4096, SEGS = 600 };
    struct span_alloc a;
    struct span_node nodes[8];
    struct span_request req = { .size = 4096 };
    uint64_t base[SEGS];
    void *blocks[16], *mem, *old;
    size_t nblocks = 0, bytes, old_bytes, want, i;
    uint64_t owner;

    (void)state;
    assert_int_equal(span_init(&a, SPAN_POLICY_BEST_FIT, 0, nodes, 8), 0);
    assert_int_equal(span_add_region(&a, 1 * MIB, 64 * MIB), 0);
    /* Not page-aligned: an address one slot into a page. (The stack array
     * once used here was page-aligned in about one run in 64, and then
     * accepted and overrun.) */
    char *unaligned = aligned_alloc(4096, 2 * 4096);
    assert_non_null(unaligned);
    assert_int_equal(span_add_nodes(&a, unaligned + 64, 4096, 0), -EINVAL);
    free(unaligned);
    for (i = 0; i < SEGS; i++) {
        int err = span_alloc(&a, &req, i, &base[i]);
        if (err == -ENOMEM) {
            assert_true(nblocks < 16);
            blocks[nblocks] = aligned_alloc(4096, BLOCK);
            assert_int_equal(span_add_nodes(&a, blocks[nblocks], BLOCK, OWNER_BASE + nblocks), 0);
            nblocks++;
            err = span_alloc(&a, &req, i, &base[i]);
        }
        assert_int_equal(err, 0);
        want = span_hash_wanted(&a);
        if (want != 0) {
            mem = aligned_alloc(64, want);
            assert_int_equal(span_hash_resize(&a, mem, want, &old, &old_bytes), 0);
            free(old);
        }
    }
    assert_true(check_books(&a, "grown"));
    assert_true(a.hash_mask + 1 >= SEGS / 2);
    assert_int_equal(span_take_nodes(&a, 0, &mem, &bytes, &owner), -ENOENT); /* all in use */
    /* Free every other one first: each needs a slot for its free span. */
    for (i = 0; i < SEGS; i += 2) {
        int err = span_free(&a, base[i]);
        if (err == -ENOMEM) {
            assert_true(nblocks < 16);
            blocks[nblocks] = aligned_alloc(4096, BLOCK);
            assert_int_equal(span_add_nodes(&a, blocks[nblocks], BLOCK, OWNER_BASE + nblocks), 0);
            nblocks++;
            err = span_free(&a, base[i]);
        }
        assert_int_equal(err, 0);
    }
    for (i = 1; i < SEGS; i += 2)
        assert_int_equal(span_free(&a, base[i]), 0);
    assert_true(check_books(&a, "emptied"));
    want = span_hash_wanted(&a);
    assert_int_equal(want, 0); /* back to the inline table: resize with NULL */
    assert_int_equal(span_hash_resize(&a, NULL, 0, &old, &old_bytes), 0);
    free(old);
    /* Every block comes back but the one (at most) that holds the slots of
     * the one free span left. */
    for (i = 0; span_take_nodes(&a, 0, &mem, &bytes, &owner) == 0; i++) {
        size_t j;
        assert_int_equal(bytes, BLOCK);
        assert_true(owner >= OWNER_BASE && owner < OWNER_BASE + nblocks && blocks[owner - OWNER_BASE] == mem);
        for (j = 0; j < nblocks; j++)
            if (blocks[j] == mem)
                blocks[j] = NULL;
        free(mem);
    }
    assert_true(i + 1 >= nblocks && i <= nblocks);
    assert_true(check_books(&a, "shrunk"));
    assert_int_equal(a.capacity, 8 + (nblocks - i) * (BLOCK / 4096) * SPAN_SLOTS_PER_PAGE);
    /* The one left is still in use: the instance keeps it until it goes. */
    assert_int_equal(span_take_nodes(&a, 0, &mem, &bytes, &owner), -ENOENT);
    for (i = 0; i < nblocks; i++)
        free(blocks[i]);
}

/* A block that still holds a few live slots is emptied by moving them:
 * segments (one locked) and free spans of every kind of size index (quick
 * lists, the size tree, the marker's span) keep their links, for every
 * policy, and the books stay sound after each block taken. */
static void test_blocks_emptied_by_moving_slots(void **state)
{
    enum { BLOCK = 4 * 4096, SEGS = 1500, KEEP_EVERY = 37, MAX_BLOCKS = 64 };
    static uint64_t base[SEGS];
    static void *blocks[MAX_BLOCKS];
    struct span_node nodes[8];
    struct span_alloc a;
    size_t nblocks, taken, i, bytes;
    uint64_t owner;
    unsigned p;
    void *mem;

    (void)state;
    for (p = 0; p < SPAN_POLICY_COUNT; p++) {
        assert_int_equal(span_init(&a, all_policies[p], 0, nodes, 8), 0);
        assert_int_equal(span_add_region(&a, 1 * MIB, 127 * MIB), 0);
        nblocks = 0;
        for (i = 0; i < SEGS; i++) {
            struct span_request req = { .size = (i % 20 + 1 + (i % 10 == 0 ? 60 : 0)) * 4096 };
            int err;
            while ((err = span_alloc(&a, &req, i, &base[i])) == -ENOMEM) {
                assert_true(nblocks < MAX_BLOCKS);
                blocks[nblocks] = aligned_alloc(4096, BLOCK);
                assert_int_equal(span_add_nodes(&a, blocks[nblocks], BLOCK, OWNER_BASE + nblocks), 0);
                nblocks++;
            }
            assert_int_equal(err, 0);
        }
        /* Kept: i % KEEP_EVERY of 0 and 2, so the one between is a small
         * free span (a quick list's) and the rest large ones (the tree's). */
        for (i = 0; i < SEGS; i++)
            if (i % KEEP_EVERY != 0 && i % KEEP_EVERY != 2)
                assert_int_equal(span_free(&a, base[i]), 0);
        assert_int_equal(span_lock(&a, base[KEEP_EVERY]), 0);
        assert_true(check_books(&a, "scattered"));
        for (taken = 0; span_take_nodes(&a, 0, &mem, &bytes, &owner) == 0; taken++) {
            assert_int_equal(bytes, BLOCK);
            assert_true(owner >= OWNER_BASE && owner < OWNER_BASE + nblocks && blocks[owner - OWNER_BASE] == mem);
            for (i = 0; i < nblocks; i++)
                if (blocks[i] == mem)
                    blocks[i] = NULL;
            free(mem);
            assert_true(check_books(&a, "block taken"));
        }
        /* What is left is what the live slots need, and one block more. */
        assert_true(a.blocks * (BLOCK / 4096) * SPAN_SLOTS_PER_PAGE <=
                    a.capacity - a.nodes_free + (BLOCK / 4096) * SPAN_SLOTS_PER_PAGE + 8);
        assert_true(taken + a.blocks == nblocks);
        assert_int_equal(span_unlock(&a, base[KEEP_EVERY]), 0);
        for (i = 0; i < SEGS; i++)
            if (i % KEEP_EVERY == 0 || i % KEEP_EVERY == 2)
                assert_int_equal(span_free(&a, base[i]), 0);
        assert_true(check_books(&a, "emptied"));
        for (i = 0; i < nblocks; i++)
            free(blocks[i]);
    }
}

static void test_policies_place(void **state)
{
    static struct span_node nodes[64];
    struct span_alloc a;
    struct span_request req = { .size = 8192 };
    uint64_t base;
    unsigned p;

    (void)state;
    for (p = 0; p < SPAN_POLICY_COUNT; p++) {
        assert_int_equal(span_init(&a, (enum span_policy)p, 0, nodes, 64), 0);
        assert_int_equal(span_add_region(&a, 1 * MIB, 1 * MIB), 0);
        assert_int_equal(span_add_region(&a, 4 * MIB, 1 * MIB), 0);
        assert_int_equal(span_alloc(&a, &req, 1, &base), 0);
        if (p == SPAN_POLICY_TOP_OF_HEAP)
            assert_int_equal(base, 5 * MIB - 8192);
        else
            assert_true(base == 1 * MIB || base == 4 * MIB);
        assert_true(check_books(&a, "policy"));
    }
}

static void test_best_fit_choice(void **state)
{
    uint64_t a1, a2, a3, a4, b;

    (void)state;
    a1 = alloc_ok(12 * KIB, 0, 0, 0);
    a2 = alloc_ok(4 * KIB, 0, 0, 0);
    a3 = alloc_ok(8 * KIB, 0, 0, 0);
    a4 = alloc_ok(4 * KIB, 0, 0, 0);
    assert_int_equal(span_free(&fx.a, a1), 0); /* 12 KiB hole */
    assert_int_equal(span_free(&fx.a, a3), 0); /* 8 KiB hole */
    b = alloc_ok(8 * KIB, 0, 0, 0);
    assert_int_equal(b, a3); /* the exact fit, not the first */
    b = alloc_ok(300 * KIB, 0, 0, 0);
    (void)a2;
    (void)a4;
    (void)b;
}

/* span_alloc's quick path (best fit, a quick list's head) serves only a
 * request without constraints: every request below is one the head of the
 * 1- or 2-granule list would break, so a quick path that took it would
 * fail. The large page is 8 KiB, so a 2-granule request is large. */
static void test_quick_path_constraints(void **state)
{
    enum { SEGMENTS = 64 };
    static struct span_node nodes[256];
    uint64_t base[SEGMENTS], region = 1 * MIB, at;
    struct span_alloc a;
    struct span_request req = { .size = 8 * KIB };
    struct span_info info;
    unsigned i;

    (void)state;
    assert_int_equal(span_init(&a, SPAN_POLICY_BEST_FIT, 8 * KIB, nodes, 256), 0);
    assert_int_equal(span_add_region(&a, region, SEGMENTS * 4 * KIB), 0);
    for (i = 0; i < SEGMENTS; i++)
        assert_int_equal(span_alloc(&a, &(struct span_request){ .size = 4 * KIB }, i, &base[i]), 0);
    /* Free: granules 1-2 (one 8 KiB span, off 8 KiB alignment), then 4 (the
     * lowest 1-granule hole), 60 (the highest) and 41 (the list's head). */
    assert_int_equal(span_free(&a, base[1]), 0);
    assert_int_equal(span_free(&a, base[2]), 0);
    assert_int_equal(span_free(&a, base[4]), 0);
    assert_int_equal(span_free(&a, base[60]), 0);
    assert_int_equal(span_free(&a, base[41]), 0);
    /* Large without SPAN_LARGE_OK: 8 KiB alignment is hard, and the only
     * 2-granule span lacks it. */
    assert_int_equal(span_alloc(&a, &req, 100, &at), -ENOMEM);
    req.flags = SPAN_LARGE_OK;
    assert_int_equal(span_alloc(&a, &req, 100, &at), 0);
    assert_int_equal(at, base[1]);
    assert_int_equal(span_lookup(&a, at, &info), 0);
    assert_true(info.misaligned);
    assert_int_equal(span_free(&a, at), 0);
    /* The highest place, not the head. */
    req = (struct span_request){ .size = 4 * KIB, .flags = SPAN_HIGH };
    assert_int_equal(span_alloc(&a, &req, 101, &at), 0);
    assert_int_equal(at, base[60]);
    /* Below a limit that the head is past. */
    req = (struct span_request){ .size = 4 * KIB, .limit = base[5] };
    assert_int_equal(span_alloc(&a, &req, 102, &at), 0);
    assert_true(at + 4 * KIB <= base[5]);
    assert_int_equal(at, base[4]); /* the smallest span below it */
    /* At an alignment the head does not have (granule 41 is odd). */
    req = (struct span_request){ .size = 4 * KIB, .align = 8 * KIB };
    assert_int_equal(span_alloc(&a, &req, 103, &at), 0);
    assert_int_equal(at & (8 * KIB - 1), 0);
    assert_int_equal(span_lookup(&a, at, &info), 0);
    assert_int_equal(info.tag, 103);
    assert_int_equal(at, base[2]); /* the 8 KiB span's upper granule */
    /* An unconstrained one takes the head: the newest 1-granule span, the
     * piece the aligned request left below itself. */
    req = (struct span_request){ .size = 4 * KIB };
    assert_int_equal(span_alloc(&a, &req, 104, &at), 0);
    assert_int_equal(at, base[1]);
    assert_int_equal(span_alloc(&a, &req, 105, &at), 0);
    assert_int_equal(at, base[41]);
    assert_true(check_books(&a, "quick path"));
}

/* Best fit keeps small free spans off the address tree while they wait
 * (more of them than the pending list holds, so some enter it to make
 * room); every search by address must still see them all. */
static void test_pending_small_spans(void **state)
{
    enum { SEGMENTS = 600 };
    static struct span_node nodes[1024];
    static uint64_t base[SEGMENTS];
    struct span_alloc a;
    struct span_request page = { .size = 4 * KIB }, two = { .size = 8 * KIB };
    struct span_stats st;
    struct span_info info;
    uint64_t region = 1 * MIB, at;
    unsigned i;

    (void)state;
    assert_int_equal(span_init(&a, SPAN_POLICY_BEST_FIT, 0, nodes, 1024), 0);
    assert_int_equal(span_add_region(&a, region, SEGMENTS * 4 * KIB), 0);
    for (i = 0; i < SEGMENTS; i++)
        assert_int_equal(span_alloc(&a, &page, i, &base[i]), 0);
    /* 300 holes of one granule, none with a free neighbour, freed from the
     * top: the oldest (highest) enter the tree to make room, the lowest
     * wait. */
    for (i = SEGMENTS; i >= 2; i -= 2)
        assert_int_equal(span_free(&a, base[i - 2]), 0);
    assert_true(check_books(&a, "holes"));
    span_stats(&a, &st);
    assert_int_equal(st.largest_free, 4 * KIB);
    assert_int_equal(st.free_spans, SEGMENTS / 2);
    /* Two holes and the segment between them: 12 KiB. */
    assert_int_equal(span_free(&a, base[1]), 0);
    assert_true(check_books(&a, "merge"));
    span_stats(&a, &st);
    assert_int_equal(st.largest_free, 12 * KIB);
    assert_int_equal(span_lookup(&a, base[2] + 100, &info), 0);
    assert_int_equal(info.state, SPAN_FREE);
    assert_int_equal(info.base, base[0]);
    assert_int_equal(info.size, 12 * KIB);
    /* The highest place: the last hole, wherever it waits. */
    page.flags = SPAN_HIGH;
    assert_int_equal(span_alloc(&a, &page, 1000, &at), 0);
    assert_int_equal(at, base[SEGMENTS - 2]);
    assert_true(check_books(&a, "high"));
    /* A limit that the 16 newest holes (best fit's probe) miss: the lowest
     * place, a waiting span, found after the list settled. */
    page.flags = 0;
    page.limit = region + 8 * KIB;
    assert_int_equal(span_alloc(&a, &page, 1001, &at), 0);
    assert_int_equal(at, region);
    two.limit = region + 16 * KIB;
    assert_int_equal(span_alloc(&a, &two, 1002, &at), 0);
    assert_int_equal(at, region + 4 * KIB);
    assert_int_equal(span_alloc(&a, &two, 1003, &at), -ENOMEM);
    assert_true(check_books(&a, "limit"));
    for (i = 3; i < SEGMENTS; i += 2)
        assert_int_equal(span_free(&a, base[i]), 0);
    assert_int_equal(span_free(&a, base[SEGMENTS - 2]), 0);
    assert_int_equal(span_free(&a, region), 0);
    assert_int_equal(span_free(&a, region + 4 * KIB), 0);
    assert_true(check_books(&a, "all freed"));
    span_stats(&a, &st);
    assert_int_equal(st.free_spans, 1);
    assert_int_equal(st.largest_free, SEGMENTS * 4 * KIB);
}

/* More small free spans than the pending list holds, under churn that
 * carves spans in the middle (alignment, buddy blocks) while the list is
 * full, so that filing the upper piece settles the oldest span; the books
 * are checked after every operation. */
static void test_pending_churn(void **state)
{
    enum { SLOTS = 4096, LIVE = 1200 };
    static struct span_node nodes[SLOTS];
    static uint64_t live[LIVE];
    enum span_policy policy = fx.a.policy; /* the fixture's, set for this run */
    struct span_alloc a;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    unsigned i, step;

    (void)state;
    assert_int_equal(span_init(&a, policy, 0, nodes, SLOTS), 0);
    assert_int_equal(span_add_region(&a, 1 * MIB, 16 * MIB), 0);
    for (i = 0; i < LIVE; i++) {
        struct span_request req = { .size = 4 * KIB * (1 + i % 3) };
        assert_int_equal(span_alloc(&a, &req, i, &live[i]), 0);
    }
    for (i = 0; i < LIVE; i += 2) { /* 600 holes with no free neighbour */
        assert_int_equal(span_free(&a, live[i]), 0);
        live[i] = 0;
    }
    for (step = 0; step < 4000; step++) {
        unsigned k;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        k = (unsigned)(seed >> 33) % LIVE;
        if (live[k] != 0) {
            assert_int_equal(span_free(&a, live[k]), 0);
            live[k] = 0;
        } else {
            struct span_request req = { .size = 4 * KIB * (1 + (seed >> 20) % 6),
                                        .align = 4 * KIB << ((seed >> 40) % 3) };
            if (span_alloc(&a, &req, k, &live[k]) != 0)
                live[k] = 0;
        }
        assert_true(check_books(&a, "churn"));
    }
}

static void test_walk_and_stats(void **state)
{
    struct span_stats st;
    uint64_t b;

    (void)state;
    span_stats(&fx.a, &st);
    assert_int_equal(st.total_bytes, 47 * MIB);
    assert_int_equal(st.free_bytes, 47 * MIB);
    assert_int_equal(st.largest_free, 32 * MIB);
    /* 1..2 MiB is below the first 2 MiB boundary: 256 of 12032 granules. */
    assert_int_equal(st.unusable_index, 21);
    assert_int_equal(st.fragmentation_index, -1000);
    assert_int_equal(st.region_count, 2);
    assert_int_equal(st.regions[0].free_bytes, 15 * MIB);
    /* Free spans of 15 MiB (3840 granules) and 32 MiB (8192). */
    assert_int_equal(st.free_hist[11], 1);
    assert_int_equal(st.free_hist[13], 1);
    b = alloc_ok(4096, 0, 0, 0);
    span_stats(&fx.a, &st);
    assert_int_equal(st.used_bytes, 4096);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.free_spans, 2);
    (void)b;
}

/* One free granule in every 2 MiB: all free memory is unusable at 2 MiB. */
static void test_fragmentation_figures(void **state)
{
    static struct span_node nodes[64];
    struct span_alloc a;
    struct span_stats st;
    uint64_t i;

    (void)state;
    assert_int_equal(span_init(&a, SPAN_POLICY_BEST_FIT, 0, nodes, 64), 0);
    assert_int_equal(span_add_region(&a, 0, 8 * MIB), 0);
    for (i = 0; i < 4; i++)
        assert_int_equal(span_reserve(&a, i * 2 * MIB + 4096, 2 * MIB - 4096, i), 0);
    span_stats(&a, &st);
    assert_int_equal(st.free_bytes, 4 * 4096);
    assert_int_equal(st.unusable_index, 1000);
    assert_int_equal(st.fragmentation_score, 1000);
    /* Linux: 1000 - (1000 + 4*1000/512) / 4 = 1000 - 251 = 749 */
    assert_int_equal(st.fragmentation_index, 749);
    assert_int_equal(span_free(&a, 4096), 0); /* 0..2 MiB+4K free: one 2 MiB block */
    span_stats(&a, &st);
    /* free 515 granules, 512 suitable: (515-512)*1000/515 = 5 */
    assert_int_equal(st.unusable_index, 5);
    assert_int_equal(st.fragmentation_index, -1000);
    assert_true(check_books(&a, "fragmentation"));
}

static int count_spans(void *ctx, const struct span_info *info)
{
    (void)info;
    ++*(int *)ctx;
    return *(int *)ctx == 2 ? 42 : 0;
}

static void test_walk_stops(void **state)
{
    int n = 0;

    (void)state;
    alloc_ok(4096, 0, 0, 0);
    assert_int_equal(span_walk(&fx.a, count_spans, &n), 42);
    assert_int_equal(n, 2);
}

static void test_check_detects_corruption(void **state)
{
    struct span_fault fault;
    uint64_t b = alloc_ok(8192, 0, 0, 0);
    struct span_node *n;
    uint64_t saved;

    (void)state;
    assert_int_equal(span_check(&fx.a, &fault), 0);
    n = fx.a.first;
    while (n->base != b)
        n = n->next;
    saved = n->size;
    n->size = 4096;
    assert_int_equal(span_check(&fx.a, &fault), -EINVAL);
    assert_non_null(fault.what);
    n->size = saved;
    fx.a.free_bytes += 4096;
    assert_int_equal(span_check(&fx.a, &fault), -EINVAL);
    fx.a.free_bytes -= 4096;
    n = fx.a.first;
    while (n->state != SPAN_FREE)
        n = n->next;
    saved = n->u.free.ext->max_free;
    n->u.free.ext->max_free = 1;
    assert_int_equal(span_check(&fx.a, &fault), -EINVAL);
    n->u.free.ext->max_free = saved;
    assert_int_equal(span_check(&fx.a, &fault), 0);
}

/* ---- the buddy policy --------------------------------------------------- */

#define BUDDY_NODES 4096

static void buddy_instance(struct span_alloc *a, struct span_node *nodes, uint64_t base, uint64_t size)
{
    assert_int_equal(span_init(a, SPAN_POLICY_BUDDY, 0, nodes, BUDDY_NODES), 0);
    assert_int_equal(span_add_region(a, base, size), 0);
}

/* The block a buddy allocation of size takes: its granules rounded up to a
 * power of two, at most a 4 MiB block (order 10) with 2 MiB large pages. */
static uint64_t buddy_block(uint64_t size)
{
    uint64_t block = 4096;

    while (block < size && block < 4 * MIB)
        block *= 2;
    return block;
}

/* Segments of mixed sizes, powers of two and not, all naturally aligned,
 * then freed in many different orders: every time the books coalesce back
 * to the one 4 MiB block they started as. */
static void test_buddy_coalesces_in_any_order(void **state)
{
    static struct span_node nodes[BUDDY_NODES];
    struct span_alloc a;
    uint64_t bases[16], rng = 7;
    unsigned round, n, i;

    (void)state;
    /* At most 16 blocks of at most 128 KiB: never short of a natural one. */
    for (round = 0; round < 40; round++) {
        struct span_stats st;
        struct span_info info;
        buddy_instance(&a, nodes, 4 * MIB, 4 * MIB);
        for (n = 0; n < 16; n++) {
            struct span_request req = { .size = (1 + test_rand(&rng) % 32) * 4096 - (n & 1) * 100 };
            assert_int_equal(span_alloc(&a, &req, n, &bases[n]), 0);
            assert_int_equal(bases[n] % buddy_block(req.size), 0);
        }
        assert_true(check_books(&a, "buddy fill"));
        for (i = n; i > 1; i--) { /* Fisher-Yates: a different order each round */
            unsigned j = (unsigned)(test_rand(&rng) % i);
            uint64_t t = bases[i - 1];
            bases[i - 1] = bases[j];
            bases[j] = t;
        }
        for (i = 0; i < n; i++) {
            assert_int_equal(span_free(&a, bases[i]), 0);
            assert_true(check_books(&a, "buddy free"));
        }
        span_stats(&a, &st);
        assert_int_equal(st.free_spans, 1);
        assert_int_equal(st.free_bytes, 4 * MIB);
        assert_int_equal(span_lookup(&a, 4 * MIB, &info), 0);
        assert_int_equal(info.size, 4 * MIB);
        /* ... so the one block of the top order is there to take again. */
        {
            struct span_request whole = { .size = 4 * MIB };
            uint64_t b;
            assert_int_equal(span_alloc(&a, &whole, 1, &b), 0);
            assert_int_equal(b, 4 * MIB);
        }
    }
}

/* Every size from 1 to 1100 granules on a region that starts off every
 * large boundary: each segment at the natural alignment of its block. */
static void test_buddy_natural_alignment(void **state)
{
    static struct span_node nodes[BUDDY_NODES];
    struct span_alloc a;
    uint64_t granules;

    (void)state;
    buddy_instance(&a, nodes, 1 * MIB + 4096, 60 * MIB);
    for (granules = 1; granules <= 1100; granules++) {
        struct span_request req = { .size = granules * 4096 };
        uint64_t small, b;
        struct span_request one = { .size = 4096 };
        /* A granule left behind each time, so the free space is broken up. */
        assert_int_equal(span_alloc(&a, &req, granules, &b), 0);
        assert_int_equal(b % buddy_block(req.size), 0);
        assert_int_equal(span_alloc(&a, &one, 0, &small), 0);
        assert_int_equal(span_free(&a, b), 0);
    }
    assert_true(check_books(&a, "buddy alignment"));
}

/* A request of 3 granules takes a 4-granule block and gives its tail back
 * at once: the next granule goes there, and freeing returns all of it. */
static void test_buddy_tail_given_back(void **state)
{
    static struct span_node nodes[BUDDY_NODES];
    struct span_alloc a;
    struct span_request three = { .size = 3 * 4096 }, one = { .size = 4096 };
    struct span_stats st;
    uint64_t x, y;

    (void)state;
    buddy_instance(&a, nodes, 8 * MIB, 4 * MIB);
    assert_int_equal(span_alloc(&a, &three, 1, &x), 0);
    assert_int_equal(x, 8 * MIB);
    span_stats(&a, &st);
    assert_int_equal(st.free_bytes, 4 * MIB - 3 * 4096);
    assert_int_equal(span_alloc(&a, &one, 2, &y), 0);
    assert_int_equal(y, x + 3 * 4096); /* the smallest block: the tail */
    assert_int_equal(span_free(&a, x), 0);
    assert_int_equal(span_free(&a, y), 0);
    span_stats(&a, &st);
    assert_int_equal(st.free_bytes, 4 * MIB);
    assert_int_equal(st.free_spans, 1);
    assert_true(check_books(&a, "buddy tail"));
}

/* ---- the marker policy --------------------------------------------------- */

static uint64_t marker_alloc(uint64_t size, uint64_t limit)
{
    struct span_request req = { .size = size, .limit = limit };
    uint64_t base = 0;

    assert_int_equal(span_alloc(&fx.a, &req, 5, &base), 0);
    assert_true(check_books(&fx.a, "marker alloc"));
    return base;
}

/* Regions 1..16 MiB (15 MiB) and 32..64 MiB (32 MiB). */
static void test_marker_bumps_and_recalculates(void **state)
{
    (void)state;
    /* No marker yet: recalculated to the greatest extent, then bumped. */
    assert_int_equal(marker_alloc(4096, 0), 32 * MIB);
    assert_int_equal(marker_alloc(8192, 0), 32 * MIB + 4096);
    assert_int_equal(marker_alloc(4096, 0), 32 * MIB + 12288);
    assert_int_equal(span_free(&fx.a, 32 * MIB + 4096), 0);
    /* The marker stays put: the freed hole behind it is not looked at. */
    assert_int_equal(marker_alloc(4096, 0), 32 * MIB + 16384);
    /* 20 MiB is large: from the marker's first 2 MiB boundary, 34 MiB,
     * leaving 54..64 MiB at the marker... */
    assert_int_equal(marker_alloc(20 * MIB, 0), 34 * MIB);
    /* ... too little for 13 MiB: recalculated to 1..16 MiB, the greatest,
     * and bumped past the segment to 15..16 MiB. */
    assert_int_equal(marker_alloc(13 * MIB, 0), 2 * MIB);
    /* From the marker, though other extents are bigger now. */
    assert_int_equal(marker_alloc(4096, 0), 15 * MIB);
    /* 300 KiB still fits there; 768 KiB does not fit the 720 KiB then
     * left: back to the greatest, 54..64 MiB. */
    assert_int_equal(marker_alloc(300 * KIB, 0), 15 * MIB + 4096);
    assert_int_equal(marker_alloc(768 * KIB, 0), 54 * MIB);
}

/* A request the marker's extent, and the greatest extent, cannot meet
 * still gets the place that exists elsewhere. */
static void test_marker_off_marker(void **state)
{
    struct span_request req = { .size = 64 * KIB, .align = 1 * MIB };
    uint64_t b;

    (void)state;
    assert_int_equal(marker_alloc(4096, 0), 32 * MIB); /* marker in 32..64 MiB */
    b = marker_alloc(4096, 16 * MIB);                  /* a limit below it */
    assert_true(b >= 1 * MIB && b + 4096 <= 16 * MIB);
    /* Alignment: in the marker's extent, after the gap alignment leaves. */
    assert_int_equal(span_alloc(&fx.a, &req, 5, &b), 0);
    assert_int_equal(b, 33 * MIB);
    /* A large segment comes large-page aligned from the marker too. */
    b = marker_alloc(2 * MIB, 0);
    assert_int_equal(b % (2 * MIB), 0);
    /* Fill the greatest extent: the next one is found on failure. */
    b = marker_alloc(28 * MIB, 0);
    assert_true(b >= 32 * MIB);
    b = marker_alloc(14 * MIB, 0);
    assert_true(b >= 1 * MIB && b + 14 * MIB <= 16 * MIB);
    req = (struct span_request){ .size = 8 * MIB };
    EXPECT_UNCHANGED(-ENOMEM, span_alloc(&fx.a, &req, 1, &b));
}

#define POLICY_TEST(f, p, name)                                                                                        \
    {                                                                                                                  \
#f " " name, f, setup, teardown, (void *)&all_policies[p]                                                      \
    }
#define ALL_POLICIES(f)                                                                                                \
    POLICY_TEST(f, SPAN_POLICY_BEST_FIT, "bestfit"), POLICY_TEST(f, SPAN_POLICY_TOP_OF_HEAP, "topheap"),               \
        POLICY_TEST(f, SPAN_POLICY_INSTANT_FIT, "instantfit"), POLICY_TEST(f, SPAN_POLICY_BUDDY, "buddy"),             \
        POLICY_TEST(f, SPAN_POLICY_MARKER, "marker")

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_errors),
        ALL_POLICIES(test_region_errors),
        ALL_POLICIES(test_alloc_errors),
        ALL_POLICIES(test_alloc_free_basics),
        ALL_POLICIES(test_limit_and_full),
        ALL_POLICIES(test_large_pages),
        cmocka_unit_test(test_misaligned_fallback),
        ALL_POLICIES(test_lock_unlock),
        ALL_POLICIES(test_reserve),
        cmocka_unit_test(test_node_store_full),
        cmocka_unit_test(test_pool_grows_and_shrinks),
        cmocka_unit_test(test_blocks_emptied_by_moving_slots),
        cmocka_unit_test(test_policies_place),
        cmocka_unit_test_setup_teardown(test_best_fit_choice, setup, teardown),
        cmocka_unit_test(test_quick_path_constraints),
        cmocka_unit_test(test_pending_small_spans),
        ALL_POLICIES(test_pending_churn),
        ALL_POLICIES(test_walk_and_stats),
        cmocka_unit_test(test_fragmentation_figures),
        ALL_POLICIES(test_walk_stops),
        ALL_POLICIES(test_check_detects_corruption),
        cmocka_unit_test(test_buddy_coalesces_in_any_order),
        cmocka_unit_test(test_buddy_natural_alignment),
        cmocka_unit_test(test_buddy_tail_given_back),
        POLICY_TEST(test_marker_bumps_and_recalculates, SPAN_POLICY_MARKER, "marker"),
        POLICY_TEST(test_marker_off_marker, SPAN_POLICY_MARKER, "marker"),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
