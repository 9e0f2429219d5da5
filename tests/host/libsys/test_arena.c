/*
 * Host tests for libsys/src/arena.c: argument checks, policies, constraints,
 * tag exhaustion, and a randomized run against a bitmap of the universe
 * (every answer checked against the bitmap; every ENOSPC checked by brute
 * force that nothing would have fit). Argument: optional seed.
 */
#include "test_rng.h"
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <abi/errno.h>
#include <libsys/arena.h>

static struct arena_tag tags[4096];
static struct arena_tag *buckets[256];
static struct arena_tagstore ts;
static struct arena ar;

static int setup(void **state)
{
    (void)state;
    arena_tagstore_init(&ts, tags, 4096);
    return 0;
}

static void test_create_add(void **state)
{
    (void)state;
    assert_int_equal(arena_create(&ar, "x", 3, &ts, buckets, 256), -EINVAL);
    assert_int_equal(arena_create(&ar, "x", 16, &ts, buckets, 100), -EINVAL);
    assert_int_equal(arena_create(&ar, "x", 16, &ts, buckets, 256), 0);
    assert_int_equal(arena_add(&ar, 8, 32), -EINVAL);
    assert_int_equal(arena_add(&ar, 16, 0), -EINVAL);
    assert_int_equal(arena_add(&ar, 16, 24), -EINVAL);
    assert_int_equal(arena_add(&ar, UINT64_MAX - 15, 32), -EINVAL);
    assert_int_equal(arena_add(&ar, 1024, 1024), 0);
    assert_int_equal(arena_add(&ar, 0, 1024), 0);
    assert_int_equal(arena_add(&ar, 1536, 16), -EEXIST);
    assert_int_equal(arena_add(&ar, 1008, 32), -EEXIST);
    assert_int_equal(arena_check(&ar), 0);
    struct arena_stats st;
    arena_stats(&ar, &st);
    assert_int_equal(st.total, 2048);
    assert_int_equal(st.free, 2048);
    assert_int_equal(st.spans, 2);
    assert_int_equal(st.largest_free, 1024); /* spans are not merged */
    uint64_t a;
    assert_int_equal(arena_alloc(&ar, 2048, 0, &a), -ENOSPC);
    assert_int_equal(arena_alloc(&ar, 0, 0, &a), -EINVAL);
    assert_int_equal(arena_alloc(&ar, 1, ARENA_INSTANTFIT | ARENA_BESTFIT, &a), -EINVAL);
    assert_int_equal(arena_alloc(&ar, 1, 0, &a), 0); /* rounded to 16 */
    assert_int_equal(arena_free(&ar, a, 16), 0);
    assert_int_equal(arena_destroy(&ar), 0);
    assert_int_equal(ts.nfree, 4096);
}

static void test_ids_and_free_errors(void **state)
{
    (void)state;
    assert_int_equal(arena_create(&ar, "ids", 1, &ts, buckets, 256), 0);
    assert_int_equal(arena_add(&ar, 1, 100), 0);
    uint64_t id[100];
    for (unsigned i = 0; i < 100; i++) {
        assert_int_equal(arena_alloc(&ar, 1, ARENA_INSTANTFIT, &id[i]), 0);
        assert_true(id[i] >= 1 && id[i] <= 100);
        for (unsigned j = 0; j < i; j++)
            assert_true(id[j] != id[i]);
    }
    uint64_t x;
    assert_int_equal(arena_alloc(&ar, 1, 0, &x), -ENOSPC);
    assert_int_equal(arena_free(&ar, 1000, 1), -ENOENT);
    assert_int_equal(arena_free(&ar, id[5], 2), -EINVAL);
    assert_int_equal(arena_destroy(&ar), -EBUSY);
    assert_int_equal(arena_check(&ar), 0);
    for (unsigned i = 0; i < 100; i += 2)
        assert_int_equal(arena_free(&ar, id[i], 1), 0);
    assert_int_equal(arena_free(&ar, id[0], 1), -ENOENT); /* double free */
    assert_int_equal(arena_check(&ar), 0);
    struct arena_stats st;
    arena_stats(&ar, &st);
    assert_int_equal(st.in_use, 50);
    assert_int_equal(st.largest_free, 1);
    for (unsigned i = 1; i < 100; i += 2)
        assert_int_equal(arena_free(&ar, id[i], 1), 0);
    arena_stats(&ar, &st);
    assert_int_equal(st.free_segments, 1); /* all coalesced */
    assert_int_equal(st.largest_free, 100);
    assert_int_equal(arena_check(&ar), 0);
    assert_int_equal(arena_destroy(&ar), 0);
}

static void test_policies(void **state)
{
    (void)state;
    uint64_t a, b, c, d, e, r;
    assert_int_equal(arena_create(&ar, "pol", 1, &ts, buckets, 256), 0);
    assert_int_equal(arena_add(&ar, 0, 1000), 0);
    /* make free holes of 40 (at 0) and 33 (at 100), separated by allocations */
    assert_int_equal(arena_alloc(&ar, 40, 0, &a), 0);
    assert_int_equal(arena_alloc(&ar, 60, 0, &b), 0);
    assert_int_equal(arena_alloc(&ar, 33, 0, &c), 0);
    assert_int_equal(arena_alloc(&ar, 10, 0, &d), 0);
    assert_int_equal(a, 0);
    assert_int_equal(c, 100);
    assert_int_equal(arena_free(&ar, a, 40), 0);
    assert_int_equal(arena_free(&ar, c, 33), 0);
    /* best fit for 33 takes the exact hole; instant fit takes a list >= 64 */
    assert_int_equal(arena_alloc(&ar, 33, ARENA_BESTFIT, &r), 0);
    assert_int_equal(r, 100);
    assert_int_equal(arena_free(&ar, r, 33), 0);
    assert_int_equal(arena_alloc(&ar, 33, ARENA_INSTANTFIT, &r), 0);
    assert_int_equal(r, 143); /* the big tail segment */
    assert_int_equal(arena_free(&ar, r, 33), 0);
    /* instant fit falls back to its own list when nothing bigger is free */
    assert_int_equal(arena_alloc(&ar, 1000 - 143, 0, &e), 0);
    assert_int_equal(arena_alloc(&ar, 35, ARENA_INSTANTFIT, &r), 0);
    assert_int_equal(r, 0);
    assert_int_equal(arena_check(&ar), 0);
    assert_int_equal(arena_free(&ar, r, 35), 0);
    assert_int_equal(arena_free(&ar, b, 60), 0);
    assert_int_equal(arena_free(&ar, d, 10), 0);
    assert_int_equal(arena_free(&ar, e, 1000 - 143), 0);
    assert_int_equal(arena_destroy(&ar), 0);
}

static void test_xalloc(void **state)
{
    (void)state;
    uint64_t r;
    assert_int_equal(arena_create(&ar, "va", 4096, &ts, buckets, 256), 0);
    assert_int_equal(arena_add(&ar, 0x1000, 0x100000), 0);
    assert_int_equal(arena_xalloc(&ar, 0x1000, 0x10000, 0, 0, 0, &r), 0);
    assert_int_equal(r % 0x10000, 0);
    assert_int_equal(arena_xalloc(&ar, 0x1000, 0x10000, 0x3000, 0, ARENA_BESTFIT, &r), 0);
    assert_int_equal(r % 0x10000, 0x3000);
    assert_int_equal(arena_xalloc(&ar, 0x3000, 0, 0, 0x4000, 0, &r), 0);
    assert_int_equal(r / 0x4000, (r + 0x2fff) / 0x4000);
    assert_int_equal(arena_xalloc(&ar, 0x1000, 0x3000, 0, 0, 0, &r), -EINVAL);
    assert_int_equal(arena_xalloc(&ar, 0x1000, 0x2000, 0x2000, 0, 0, &r), -EINVAL);
    assert_int_equal(arena_xalloc(&ar, 0x1000, 0x2000, 0x800, 0, 0, &r), -EINVAL);
    assert_int_equal(arena_xalloc(&ar, 0x2000, 0, 0, 0x1000, 0, &r), -EINVAL);
    assert_int_equal(arena_xalloc(&ar, 0x1000, 0, 0x1000, 0, 0, &r), -EINVAL);
    assert_int_equal(arena_xalloc(&ar, 0x1000, 1ull << 40, 0, 0, 0, &r), -ENOSPC);
    assert_int_equal(arena_check(&ar), 0);
}

static void test_tag_exhaustion(void **state)
{
    (void)state;
    static struct arena_tag few[3];
    struct arena_tagstore small;
    uint64_t a, b;
    arena_tagstore_init(&small, few, 3);
    assert_int_equal(arena_create(&ar, "tiny", 1, &small, buckets, 256), 0);
    assert_int_equal(arena_add(&ar, 0, 100), 0);      /* 2 tags */
    assert_int_equal(arena_alloc(&ar, 10, 0, &a), 0); /* 1 more */
    struct arena_stats before, after;
    arena_stats(&ar, &before);
    assert_int_equal(arena_alloc(&ar, 10, 0, &b), -ENOMEM);
    assert_int_equal(arena_add(&ar, 200, 100), -ENOMEM);
    arena_stats(&ar, &after);
    assert_int_equal(after.tag_failures, 2);
    after.tag_failures = before.tag_failures;
    assert_memory_equal(&before, &after, sizeof(before));
    assert_int_equal(arena_check(&ar), 0);
    /* the exact remainder needs no tag */
    assert_int_equal(arena_alloc(&ar, 90, 0, &b), 0);
    assert_int_equal(arena_free(&ar, a, 10), 0);
    assert_int_equal(arena_free(&ar, b, 90), 0);
    assert_int_equal(small.nfree, 1);
    assert_int_equal(arena_destroy(&ar), 0);
    assert_int_equal(small.nfree, 3);
}

/* ---- randomized against a bitmap ---- */

#define U 8192 /* universe in quanta */
static unsigned char used[U], inspan[U];

static bool fits(uint64_t r, uint64_t n, uint64_t align, uint64_t phase, uint64_t nocross)
{
    if (r + n > U || (align && r % align != phase))
        return false;
    if (nocross && r / nocross != (r + n - 1) / nocross)
        return false;
    for (uint64_t k = r; k < r + n; k++)
        if (!inspan[k] || used[k])
            return false;
    /* must lie in one span: spans are separated by a one-quantum gap */
    return true;
}

static void random_run(uint64_t q)
{
    enum { LIVE = 600, OPS = 40000 };
    static struct {
        uint64_t a, n;
    } live[LIVE];
    unsigned nlive = 0;
    memset(used, 0, sizeof(used));
    memset(inspan, 0, sizeof(inspan));
    assert_int_equal(arena_create(&ar, "rnd", q, &ts, buckets, 256), 0);
    /* spans [100,3000) [3001,6000) [6500,8192), in quanta */
    static const uint64_t sp[3][2] = { { 100, 2900 }, { 3001, 2999 }, { 6500, 1692 } };
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(arena_add(&ar, sp[i][0] * q, sp[i][1] * q), 0);
        memset(inspan + sp[i][0], 1, sp[i][1]);
    }
    for (unsigned op = 0; op < OPS; op++) {
        if (nlive < LIVE && (nlive == 0 || test_rnd() % 100 < 55)) {
            uint64_t n = 1 + (test_rnd() % 8 == 0 ? test_rnd() % 400 : test_rnd() % 24);
            unsigned kind = (unsigned)(test_rnd() % 8);
            uint64_t align = 0, phase = 0, nocross = 0, r;
            unsigned flags = test_rnd() % 2 ? ARENA_BESTFIT : ARENA_INSTANTFIT;
            if (kind == 0) {
                align = 1ull << (test_rnd() % 7);
                phase = align > 1 ? test_rnd() % align : 0;
            } else if (kind <= 2) {
                nocross = 1ull << (9 + test_rnd() % 3);
                if (nocross < n)
                    nocross = 0;
                if (kind == 2) { /* alignment, phase and nocross together */
                    align = 1ull << (1 + test_rnd() % 6);
                    phase = test_rnd() % align;
                }
            }
            int rc = arena_xalloc(&ar, n * q, align * q, phase * q, nocross * q, flags, &r);
            if (align == 1)
                align = 0, phase = 0;
            if (rc == -ENOSPC) {
                for (uint64_t s = 0; s < U; s++)
                    if (fits(s, n, align, phase, nocross))
                        fail_msg("ENOSPC but %llu quanta fit at %llu", (unsigned long long)n, (unsigned long long)s);
                continue;
            }
            assert_int_equal(rc, 0);
            assert_int_equal(r % q, 0);
            r /= q;
            assert_true(fits(r, n, align, phase, nocross));
            memset(used + r, 1, n);
            live[nlive].a = r;
            live[nlive].n = n;
            nlive++;
        } else {
            unsigned i = (unsigned)(test_rnd() % nlive);
            assert_int_equal(arena_free(&ar, live[i].a * q, live[i].n * q), 0);
            memset(used + live[i].a, 0, live[i].n);
            live[i] = live[--nlive];
        }
        if (op % 500 == 0) {
            assert_int_equal(arena_check(&ar), 0);
            struct arena_stats st;
            arena_stats(&ar, &st);
            uint64_t u = 0, best = 0, run = 0;
            for (unsigned k = 0; k < U; k++) {
                u += used[k];
                run = inspan[k] && !used[k] ? run + 1 : 0;
                best = run > best ? run : best;
            }
            assert_int_equal(st.in_use, u * q);
            assert_int_equal(st.allocs, nlive);
            assert_int_equal(st.largest_free, best * q);
        }
    }
    while (nlive) {
        nlive--;
        assert_int_equal(arena_free(&ar, live[nlive].a * q, live[nlive].n * q), 0);
    }
    assert_int_equal(arena_check(&ar), 0);
    struct arena_stats st;
    arena_stats(&ar, &st);
    assert_int_equal(st.free_segments, 3);
    assert_int_equal(arena_destroy(&ar), 0);
    assert_int_equal(ts.nfree, ts.total);
}

static void test_random_ids(void **state)
{
    (void)state;
    random_run(1);
}

static void test_random_pages(void **state)
{
    (void)state;
    random_run(4096);
}

int main(int argc, char **argv)
{
    test_rng_seed(argc > 1 ? strtoull(argv[1], NULL, 0) : 0xa5e9a5e9ull);
    printf("seed=%llu\n", (unsigned long long)test_rng_state);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_create_add, setup),     cmocka_unit_test_setup(test_ids_and_free_errors, setup),
        cmocka_unit_test_setup(test_policies, setup),       cmocka_unit_test_setup(test_xalloc, setup),
        cmocka_unit_test_setup(test_tag_exhaustion, setup), cmocka_unit_test_setup(test_random_ids, setup),
        cmocka_unit_test_setup(test_random_pages, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
