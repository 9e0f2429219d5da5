/*
 * Host unit tests of kernel/core/vmarea.c: every entry point and its edges,
 * growth of the area array past one page up to its capacity, the page
 * provider failing at every point where a page is asked for (the structure
 * unchanged and checkable after), and pages returned as the array shrinks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmarea_testlib.h"

#define PG VMAREA_PAGE_SIZE
#define MB (1ull << 20)

static struct test_provider prov;
static struct vmarea_pages pages;
static struct vmareas va;

static void assert_checked(const struct vmareas *a)
{
    const char *why = NULL;
    if (vmareas_check(a, &why))
        fail_msg("vmareas_check: %s", why);
}

/* Areas once the merge a free may have put off is done. */
static uint64_t settled_count(void)
{
    vmareas_settle(&va);
    return vmareas_count(&va);
}

static void expect_area(uint64_t i, uint64_t start, uint64_t size, bool used)
{
    vmareas_settle(&va);
    uint64_t s, z;
    bool u;
    vmareas_area(&va, i, &s, &z, &u);
    assert_int_equal(s, start);
    assert_int_equal(z, size);
    assert_int_equal(u, used);
}

/* A fresh instance over [base, limit) with areas of 1, 2 and c_pages
 * pages allocated from the bottom. */
static void init_with_three(uint64_t base, uint64_t limit, uint64_t c_pages, uint64_t *a, uint64_t *b, uint64_t *c)
{
    pages = test_pages(&prov);
    assert_int_equal(vmareas_init(&va, base, limit, &pages), 0);
    assert_int_equal(vmareas_alloc(&va, PG, a), 0);
    assert_int_equal(vmareas_alloc(&va, 2 * PG, b), 0);
    assert_int_equal(vmareas_alloc(&va, c_pages * PG, c), 0);
}

static void test_init_destroy(void **state)
{
    (void)state;
    pages = test_pages(&prov);
    assert_int_equal(vmareas_init(&va, 0x1000, 0x1000, &pages), -EINVAL);
    assert_int_equal(vmareas_init(&va, 0x2000, 0x1000, &pages), -EINVAL);
    assert_int_equal(vmareas_init(&va, 0x1001, 0x9000, &pages), -EINVAL);
    assert_int_equal(vmareas_init(&va, 0x1000, 0x9001, &pages), -EINVAL);
    assert_int_equal(vmareas_init(&va, 0x1000, 0x9000, NULL), -EINVAL);
    struct vmarea_pages broken = { NULL, test_put_page, &prov };
    assert_int_equal(vmareas_init(&va, 0x1000, 0x9000, &broken), -EINVAL);
    vmareas_destroy(&va); /* harmless after a failed init */
    for (long fail_at = 0; fail_at < 3; fail_at++) {
        prov.gets_left = fail_at;
        assert_int_equal(vmareas_init(&va, 0x1000, 0x9000, &pages), -ENOMEM);
        assert_int_equal(prov.outstanding, 0);
        vmareas_destroy(&va);
    }
    prov.gets_left = -1;
    assert_int_equal(vmareas_init(&va, 0, UINT64_MAX - PG + 1, &pages), 0); /* the widest range */
    assert_checked(&va);
    assert_int_equal(prov.outstanding, 3);
    assert_int_equal(settled_count(), 1);
    expect_area(0, 0, UINT64_MAX - PG + 1, false);
    uint64_t at;
    assert_int_equal(vmareas_alloc(&va, 4 * MB, &at), 0);
    assert_int_equal(at, 0);
    assert_int_equal(vmareas_reserve(&va, UINT64_MAX - 2 * PG + 1, PG), 0);
    assert_checked(&va);
    vmareas_destroy(&va);
    assert_int_equal(prov.outstanding, 0);
}

static void test_alloc(void **state)
{
    (void)state;
    pages = test_pages(&prov);
    const uint64_t base = 1ull << 30, range = 64 * MB;
    assert_int_equal(vmareas_init(&va, base, base + range, &pages), 0);
    uint64_t at = 0, start, size;
    assert_int_equal(vmareas_alloc(&va, 0, &at), -EINVAL);
    assert_int_equal(vmareas_alloc(&va, PG - 1, &at), -EINVAL);
    assert_int_equal(vmareas_alloc(&va, PG + 1, &at), -EINVAL);
    assert_int_equal(vmareas_alloc(&va, range + PG, &at), -ENOSPC);
    assert_int_equal(vmareas_alloc(&va, UINT64_MAX - PG + 1, &at), -ENOSPC);
    assert_int_equal(settled_count(), 1);

    assert_int_equal(vmareas_alloc(&va, PG, &at), 0);
    assert_int_equal(at, base);
    assert_int_equal(vmareas_find(&va, base + 100, &start, &size), 0);
    assert_int_equal(start, base);
    assert_int_equal(size, PG);
    assert_int_equal(vmareas_find(&va, base + PG, &start, &size), -ENOENT);
    assert_int_equal(vmareas_find(&va, base - 1, NULL, NULL), -ENOENT);
    assert_int_equal(vmareas_find(&va, base + range, NULL, NULL), -ENOENT);
    assert_int_equal(vmareas_find(&va, UINT64_MAX, NULL, NULL), -ENOENT);

    /* >= 2 MiB: 2 MiB aligned, the gap below stays free and usable. */
    assert_int_equal(vmareas_alloc(&va, 2 * MB, &at), 0);
    assert_int_equal(at, base + 2 * MB);
    assert_int_equal(vmareas_alloc(&va, 3 * MB, &at), 0);
    assert_int_equal(at, base + 4 * MB);
    assert_int_equal(vmareas_alloc(&va, 2 * MB - PG, &at), 0); /* not large: fills the gap */
    assert_int_equal(at, base + PG);
    assert_checked(&va);
    assert_int_equal(settled_count(), 5); /* 4 used + the free tail */

    /* Fill the rest with 64 KiB pieces, then the space is full. */
    uint64_t used = PG + 2 * MB + 3 * MB + 2 * MB - PG;
    while (vmareas_alloc(&va, 64 * 1024, &at) == 0)
        used += 64 * 1024;
    assert_int_equal(used, range);
    assert_int_equal(vmareas_alloc(&va, PG, &at), -ENOSPC);
    assert_int_equal(vmareas_alloc(&va, 2 * MB, &at), -ENOSPC);
    assert_checked(&va);

    /* An exact-size hole is reused; a bigger request does not fit there. */
    assert_int_equal(vmareas_free(&va, base + 10 * MB, &size), 0);
    assert_int_equal(size, 64 * 1024);
    assert_int_equal(vmareas_alloc(&va, 128 * 1024, &at), -ENOSPC);
    assert_int_equal(vmareas_alloc(&va, 32 * 1024, &at), 0);
    assert_int_equal(at, base + 10 * MB);
    assert_int_equal(vmareas_alloc(&va, 32 * 1024, &at), 0);
    assert_int_equal(at, base + 10 * MB + 32 * 1024);
    assert_checked(&va);
    vmareas_destroy(&va);
    assert_int_equal(prov.outstanding, 0);

    /* An unaligned base: the first large area starts at the next 2 MiB; no
     * aligned room is -ENOSPC even with enough free bytes. */
    assert_int_equal(vmareas_init(&va, PG, 4 * MB - PG, &pages), 0);
    assert_int_equal(vmareas_alloc(&va, 2 * MB, &at), -ENOSPC);
    assert_int_equal(vmareas_alloc(&va, 2 * MB - PG, &at), 0);
    assert_int_equal(at, PG);
    vmareas_destroy(&va);
    assert_int_equal(vmareas_init(&va, PG, 4 * MB, &pages), 0);
    assert_int_equal(vmareas_alloc(&va, 2 * MB, &at), 0);
    assert_int_equal(at, 2 * MB);
    expect_area(0, PG, 2 * MB - PG, false);
    expect_area(1, 2 * MB, 2 * MB, true);
    assert_int_equal(settled_count(), 2);
    assert_checked(&va);
    vmareas_destroy(&va);
}

/* A large area asked for with a phase starts that far past a 2 MiB
 * boundary (so the memory it maps, at the same offset, gets large pages
 * inside); the lead below it stays free. A small one ignores the phase, and
 * the area just freed is taken back only in the phase asked for. */
static void test_alloc_phased(void **state)
{
    (void)state;
    uint64_t base = 16 * MB, range = 64 * MB, at, small, again, size;
    pages = test_pages(&prov);
    assert_int_equal(vmareas_init(&va, base, base + range, &pages), 0);
    assert_int_equal(vmareas_alloc_phased(&va, PG, 0x1234000, &small), 0);
    assert_int_equal(small, base);
    assert_int_equal(vmareas_alloc_phased(&va, 5 * MB, 0x1234000, &at), 0);
    assert_int_equal(at % (2 * MB), 0x34000);
    assert_true(at >= base + PG);
    assert_int_equal(vmareas_find(&va, at - PG, NULL, NULL), -ENOENT); /* the lead is free */
    assert_int_equal(vmareas_alloc_phased(&va, 3 * MB, 7 * PG, &again), 0);
    assert_int_equal(again % (2 * MB), 7 * PG);
    assert_int_equal(vmareas_free(&va, again, &size), 0);
    assert_int_equal(size, 3 * MB);
    assert_int_equal(vmareas_alloc_phased(&va, 3 * MB, 9 * PG, &at), 0);
    assert_int_equal(at % (2 * MB), 9 * PG); /* not the area just freed */
    assert_int_equal(vmareas_alloc_phased(&va, 3 * MB, 7 * PG, &at), 0);
    assert_int_equal(at % (2 * MB), 7 * PG);
    assert_int_equal(vmareas_alloc_phased(&va, PG, PG / 2, &at), -EINVAL);
    assert_checked(&va);
    vmareas_destroy(&va);
    /* An area that starts at the offset asked for fits exactly; one that
     * does not has no room for the offset. */
    assert_int_equal(vmareas_init(&va, 2 * MB + PG, 6 * MB + PG, &pages), 0);
    assert_int_equal(vmareas_alloc_phased(&va, 4 * MB, PG, &at), 0);
    assert_int_equal(at, 2 * MB + PG);
    vmareas_destroy(&va);
    assert_int_equal(vmareas_init(&va, 2 * MB, 6 * MB, &pages), 0);
    assert_int_equal(vmareas_alloc_phased(&va, 4 * MB, PG, &at), -ENOSPC);
    assert_int_equal(vmareas_alloc_phased(&va, 4 * MB, 2 * MB, &at), 0); /* phase 0 */
    assert_int_equal(at, 2 * MB);
    vmareas_destroy(&va);
    assert_int_equal(prov.outstanding, 0);
}

static void test_reserve(void **state)
{
    (void)state;
    pages = test_pages(&prov);
    const uint64_t base = 0x400000, limit = base + 16 * MB;
    assert_int_equal(vmareas_init(&va, base, limit, &pages), 0);
    assert_int_equal(vmareas_reserve(&va, base, 0), -EINVAL);
    assert_int_equal(vmareas_reserve(&va, base + 1, PG), -EINVAL);
    assert_int_equal(vmareas_reserve(&va, base, PG + 7), -EINVAL);
    assert_int_equal(vmareas_reserve(&va, base - PG, PG), -ERANGE);
    assert_int_equal(vmareas_reserve(&va, base - PG, 2 * PG), -ERANGE);
    assert_int_equal(vmareas_reserve(&va, limit, PG), -ERANGE);
    assert_int_equal(vmareas_reserve(&va, limit - PG, 2 * PG), -ERANGE);
    assert_int_equal(vmareas_reserve(&va, base + PG, UINT64_MAX - PG + 1), -ERANGE); /* wraps */
    assert_int_equal(vmareas_reserve(&va, UINT64_MAX - PG + 1, PG), -ERANGE);
    assert_int_equal(settled_count(), 1);

    assert_int_equal(vmareas_reserve(&va, base + 8 * PG, 4 * PG), 0);
    assert_int_equal(settled_count(), 3);
    expect_area(0, base, 8 * PG, false);
    expect_area(1, base + 8 * PG, 4 * PG, true);
    expect_area(2, base + 12 * PG, 16 * MB - 12 * PG, false);
    assert_int_equal(vmareas_reserve(&va, base + 8 * PG, 4 * PG), -EEXIST);
    assert_int_equal(vmareas_reserve(&va, base + 7 * PG, 2 * PG), -EEXIST);
    assert_int_equal(vmareas_reserve(&va, base + 11 * PG, 2 * PG), -EEXIST);
    assert_int_equal(vmareas_reserve(&va, base + 9 * PG, PG), -EEXIST);
    assert_int_equal(vmareas_reserve(&va, base, 16 * MB), -EEXIST);
    assert_int_equal(settled_count(), 3);
    /* Adjacent on both sides: used areas stay separate. */
    assert_int_equal(vmareas_reserve(&va, base + 12 * PG, PG), 0);
    assert_int_equal(vmareas_reserve(&va, base + 7 * PG, PG), 0);
    assert_int_equal(vmareas_reserve(&va, base, PG), 0);
    assert_int_equal(vmareas_reserve(&va, limit - PG, PG), 0);
    assert_checked(&va);
    assert_int_equal(settled_count(), 7);
    uint64_t start, size, at;
    assert_int_equal(vmareas_find(&va, base + 9 * PG + 5, &start, &size), 0);
    assert_int_equal(start, base + 8 * PG);
    assert_int_equal(size, 4 * PG);
    /* Allocation goes around reserved areas. */
    assert_int_equal(vmareas_alloc(&va, 6 * PG, &at), 0);
    assert_int_equal(at, base + PG);
    assert_int_equal(vmareas_alloc(&va, PG, &at), 0);
    assert_int_equal(at, base + 13 * PG);
    /* Free everything: back to one free area. */
    uint64_t starts[] = { base, base + PG, base + 7 * PG, base + 8 * PG, base + 12 * PG, base + 13 * PG, limit - PG };
    for (unsigned i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
        assert_int_equal(vmareas_free(&va, starts[(i * 3) % 7], NULL), 0);
        assert_checked(&va);
    }
    assert_int_equal(settled_count(), 1);
    assert_int_equal(vmareas_reserve(&va, base, 16 * MB), 0); /* the whole range */
    assert_int_equal(settled_count(), 1);
    assert_int_equal(vmareas_alloc(&va, PG, &at), -ENOSPC);
    assert_checked(&va);
    vmareas_destroy(&va);
    assert_int_equal(prov.outstanding, 0);
}

static void test_free_area(void **state)
{
    (void)state;
    const uint64_t base = 0x10000, limit = base + 64 * PG;
    uint64_t a, b, c, size;
    init_with_three(base, limit, 3, &a, &b, &c);
    assert_int_equal(settled_count(), 4);
    assert_int_equal(vmareas_free(&va, c + 3 * PG, NULL), -ENOENT); /* the free tail */
    assert_int_equal(vmareas_free(&va, b + PG, NULL), -ENOENT);     /* not a start */
    assert_int_equal(vmareas_free(&va, b + 1, NULL), -ENOENT);
    assert_int_equal(vmareas_free(&va, base - PG, NULL), -ENOENT);
    assert_int_equal(vmareas_free(&va, limit, NULL), -ENOENT);
    assert_int_equal(vmareas_free(&va, UINT64_MAX, NULL), -ENOENT);
    assert_int_equal(vmareas_free(&va, b, &size), 0); /* between used: no merge */
    assert_int_equal(size, 2 * PG);
    assert_int_equal(settled_count(), 4);
    assert_int_equal(vmareas_free(&va, b, &size), -ENOENT); /* double free */
    assert_int_equal(vmareas_find(&va, b, NULL, NULL), -ENOENT);
    assert_checked(&va);
    assert_int_equal(vmareas_free(&va, a, NULL), 0); /* merges with the next */
    assert_int_equal(settled_count(), 3);
    expect_area(0, base, 3 * PG, false);
    assert_checked(&va);
    assert_int_equal(vmareas_free(&va, c, &size), 0); /* merges both sides */
    assert_int_equal(size, 3 * PG);
    assert_int_equal(settled_count(), 1);
    assert_checked(&va);
    /* Merge with the previous only. */
    assert_int_equal(vmareas_alloc(&va, PG, &a), 0);
    assert_int_equal(vmareas_alloc(&va, PG, &b), 0);
    assert_int_equal(vmareas_reserve(&va, limit - PG, PG), 0);
    assert_int_equal(vmareas_alloc(&va, 61 * PG, &c), 0); /* fills up to the reserved page */
    assert_int_equal(settled_count(), 4);
    assert_int_equal(vmareas_free(&va, a, NULL), 0);
    assert_int_equal(vmareas_free(&va, b, NULL), 0);
    assert_int_equal(settled_count(), 3);
    expect_area(0, base, 2 * PG, false);
    assert_checked(&va);
    vmareas_destroy(&va);
    assert_int_equal(prov.outstanding, 0);
}

/* The lookup hint is a guess: whatever it holds (any area's index, one past
 * the end, garbage), every lookup must give the answer the array gives. A
 * fast path that trusted a stale hint would find, reserve or free the wrong
 * area here. */
static void test_hint_never_trusted(void **state)
{
    (void)state;
    pages = test_pages(&prov);
    const uint64_t base = 0x10000, limit = base + 64 * PG;
    assert_int_equal(vmareas_init(&va, base, limit, &pages), 0);
    uint64_t at[6];
    for (unsigned k = 0; k < 6; k++)
        assert_int_equal(vmareas_alloc(&va, (k + 1) * PG, &at[k]), 0);
    assert_int_equal(vmareas_free(&va, at[1], NULL), 0);
    assert_int_equal(vmareas_free(&va, at[4], NULL), 0); /* used free used used free used free */
    const uint64_t count = settled_count();
    assert_int_equal(count, 7);
    const uint64_t hints[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 1000, UINT64_MAX };
    for (unsigned h = 0; h < sizeof(hints) / sizeof(hints[0]); h++) {
        for (uint64_t addr = base - PG; addr <= limit; addr += PG) {
            uint64_t want_start = 0, want_size = 0;
            bool want_used = false;
            for (uint64_t i = 0; i < count; i++) {
                uint64_t s, z;
                bool u;
                vmareas_area(&va, i, &s, &z, &u);
                if (addr >= s && addr < s + z) {
                    want_start = s;
                    want_size = z;
                    want_used = u;
                }
            }
            uint64_t start = 0, size = 0;
            va.hint = hints[h];
            int err = vmareas_find(&va, addr, &start, &size);
            assert_int_equal(err, want_used ? 0 : -ENOENT);
            if (want_used) {
                assert_int_equal(start, want_start);
                assert_int_equal(size, want_size);
            }
            va.hint = hints[h];
            err = vmareas_free(&va, addr + PG / 2, NULL);
            assert_int_equal(err, -ENOENT);
            bool in_range = addr >= base && addr < limit;
            va.hint = hints[h];
            err = vmareas_reserve(&va, addr, PG);
            assert_int_equal(err, !in_range ? -ERANGE : want_used ? -EEXIST : 0);
            assert_checked(&va);
            if (err == 0) {
                va.hint = hints[h];
                uint64_t freed = 0;
                assert_int_equal(vmareas_free(&va, addr, &freed), 0);
                assert_int_equal(freed, PG);
                assert_int_equal(settled_count(), count);
                assert_checked(&va);
            }
        }
    }
    /* Free what is left with the hint on the wrong area each time. */
    const unsigned order[] = { 5, 0, 3, 2 };
    for (unsigned k = 0; k < 4; k++) {
        uint64_t freed = 0;
        va.hint = k;
        assert_int_equal(vmareas_free(&va, at[order[k]], &freed), 0);
        assert_int_equal(freed, (order[k] + 1) * PG);
        assert_checked(&va);
    }
    assert_int_equal(settled_count(), 1);
    expect_area(0, base, 64 * PG, false);
    vmareas_destroy(&va);
    assert_int_equal(prov.outstanding, 0);
}

/* The merge a free puts off (theory 3a): an allocation of the freed size
 * takes the area back with no change to the array; anything else sees the
 * free run whole. Each step would fail if the unmerged area were taken for
 * a size it does not have, at an alignment it lacks, or hid free space. */
static void test_unmerged_area(void **state)
{
    (void)state;
    const uint64_t base = 0x10000, limit = base + 64 * PG;
    uint64_t a, b, c, got;
    init_with_three(base, limit, 1, &a, &b, &c);
    assert_int_equal(vmareas_free(&va, b, NULL), 0); /* between used: nothing to put off */
    assert_false(va.has_unmerged);
    assert_int_equal(vmareas_alloc(&va, 2 * PG, &got), 0); /* exact fit from list 2 */
    assert_int_equal(got, b);
    /* c has the free tail above it: its merge is put off. */
    assert_int_equal(vmareas_free(&va, c, NULL), 0);
    assert_true(va.has_unmerged);
    assert_int_equal(vmareas_count(&va), 4); /* a b c tail: c and the tail unmerged */
    assert_checked(&va);
    assert_int_equal(vmareas_free(&va, c, NULL), -ENOENT); /* double free */
    assert_int_equal(vmareas_find(&va, c, NULL, NULL), -ENOENT);
    assert_int_equal(vmareas_alloc(&va, PG, &got), 0); /* the same size: taken back as it is */
    assert_int_equal(got, c);
    assert_false(va.has_unmerged);
    assert_int_equal(vmareas_count(&va), 4);
    assert_checked(&va);
    /* Another size: merged first, then carved from the run. */
    assert_int_equal(vmareas_free(&va, c, NULL), 0);
    assert_int_equal(vmareas_alloc(&va, 2 * PG, &got), 0);
    assert_int_equal(got, c);
    assert_false(va.has_unmerged);
    assert_checked(&va);
    assert_int_equal(vmareas_free(&va, got, NULL), 0);
    /* A reserve across the unmerged area and its free neighbour. */
    assert_true(va.has_unmerged);
    assert_int_equal(vmareas_reserve(&va, c, 3 * PG), 0);
    assert_checked(&va);
    assert_int_equal(vmareas_free(&va, c, NULL), 0);
    /* The whole free run, a size only the merged run has. */
    assert_int_equal(vmareas_alloc(&va, limit - c, &got), 0);
    assert_int_equal(got, c);
    assert_int_equal(vmareas_free(&va, got, NULL), 0);
    /* Freeing another area merges the pending one first. */
    assert_int_equal(vmareas_free(&va, a, NULL), 0);
    assert_checked(&va);
    assert_int_equal(vmareas_free(&va, b, NULL), 0);
    assert_checked(&va);
    assert_int_equal(settled_count(), 1);
    vmareas_destroy(&va);

    /* An unmerged area of exactly 2 MiB whose start is not 2 MiB aligned is
     * no answer to a 2 MiB request. */
    const uint64_t big_base = 0x40000000, big_limit = big_base + 8 * MB;
    assert_int_equal(vmareas_init(&va, big_base, big_limit, &pages), 0);
    assert_int_equal(vmareas_reserve(&va, big_base, PG), 0);
    assert_int_equal(vmareas_reserve(&va, big_base + PG, 2 * MB), 0);
    assert_int_equal(vmareas_free(&va, big_base + PG, NULL), 0);
    assert_true(va.has_unmerged);
    assert_int_equal(vmareas_alloc(&va, 2 * MB, &got), 0);
    assert_int_equal(got % (2 * MB), 0);
    assert_checked(&va);
    assert_int_equal(vmareas_free(&va, got, NULL), 0);
    assert_int_equal(vmareas_free(&va, big_base, NULL), 0);
    assert_int_equal(settled_count(), 1);
    vmareas_destroy(&va);
    assert_int_equal(prov.outstanding, 0);
}

static void test_growth_and_shrink(void **state)
{
    (void)state;
    pages = test_pages(&prov);
    const uint64_t base = 1ull << 32;
    assert_int_equal(vmareas_init(&va, base, base + (1ull << 36), &pages), 0);
    enum { N = 5000 };
    static uint64_t addrs[N];
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(vmareas_alloc(&va, (1 + i % 5) * PG, &addrs[i]), 0);
        if (i % 499 == 0)
            assert_checked(&va);
    }
    assert_int_equal(settled_count(), N + 1);
    assert_int_equal(prov.outstanding, 2 + (N + 1 + VMAREA_PER_PAGE - 1) / VMAREA_PER_PAGE);
    assert_checked(&va);
    for (unsigned i = 0; i < N; i++) {
        uint64_t start, size;
        assert_int_equal(vmareas_find(&va, addrs[i], &start, &size), 0);
        assert_int_equal(start, addrs[i]);
        assert_int_equal(size, (1 + i % 5) * PG);
    }
    /* Free every other one (no merging, the count stays), then the rest in a
     * scrambled order: the count falls to one and the pages go back. */
    for (unsigned i = 0; i < N; i += 2)
        assert_int_equal(vmareas_free(&va, addrs[i], NULL), 0);
    assert_int_equal(settled_count(), N + 1);
    assert_checked(&va);
    for (unsigned k = 0; k < N / 2; k++) {
        unsigned i = 1 + 2 * ((k * 769u) % (N / 2));
        assert_int_equal(vmareas_free(&va, addrs[i], NULL), 0);
        if (k % 97 == 0)
            assert_checked(&va);
    }
    assert_int_equal(settled_count(), 1);
    assert_int_equal(prov.outstanding, 3);
    assert_checked(&va);
    vmareas_destroy(&va);
    assert_int_equal(prov.outstanding, 0);
}

/* The array reaches its capacity (over 100,000 areas), then -ENOMEM. */
static void test_capacity(void **state)
{
    (void)state;
    pages = test_pages(&prov);
    const uint64_t base = 1ull << 32;
    assert_int_equal(vmareas_init(&va, base, base + (1ull << 40), &pages), 0);
    uint64_t at;
    for (uint64_t i = 0; i < VMAREA_MAX_AREAS - 1; i++)
        assert_int_equal(vmareas_alloc(&va, PG, &at), 0);
    assert_true(vmareas_count(&va) >= 100000);
    assert_int_equal(settled_count(), VMAREA_MAX_AREAS);
    assert_int_equal(prov.outstanding, 2 + VMAREA_MAX_PAGES);
    assert_checked(&va);
    assert_int_equal(vmareas_alloc(&va, PG, &at), -ENOMEM);
    assert_int_equal(vmareas_reserve(&va, base + (1ull << 39), PG), -ENOMEM);
    /* A hole of exactly the right size needs no new element. */
    assert_int_equal(vmareas_free(&va, base + 1000 * PG, NULL), 0);
    assert_int_equal(vmareas_alloc(&va, PG, &at), 0);
    assert_int_equal(at, base + 1000 * PG);
    uint64_t start, size;
    assert_int_equal(vmareas_find(&va, base + 123456 * PG + 17, &start, &size), 0);
    assert_int_equal(start, base + 123456 * PG);
    assert_checked(&va);
    /* Free from the top: each free merges into the free tail. */
    for (uint64_t i = VMAREA_MAX_AREAS - 1; i-- > 0;)
        assert_int_equal(vmareas_free(&va, base + i * PG, NULL), 0);
    assert_int_equal(settled_count(), 1);
    assert_int_equal(prov.outstanding, 3);
    assert_checked(&va);
    vmareas_destroy(&va);
    assert_int_equal(prov.outstanding, 0);
}

/*
 * With the provider refusing, every call that would need a new element page
 * fails with -ENOMEM and leaves the areas as they were; every call that needs
 * none succeeds. Tried for each kind of call at array sizes around the first
 * and second page boundary.
 */
static void test_no_page(void **state)
{
    (void)state;
    pages = test_pages(&prov);
    const uint64_t base = 1ull << 32, limit = base + (1ull << 34);
    struct area_snapshot snap = { 0 };
    for (uint64_t target = VMAREA_PER_PAGE - 4; target <= 2 * VMAREA_PER_PAGE + 2; target++) {
        if (target == VMAREA_PER_PAGE + 4)
            target = 2 * VMAREA_PER_PAGE - 4;
        for (unsigned op = 0; op < 6; op++) {
            prov.gets_left = -1;
            assert_int_equal(vmareas_init(&va, base, limit, &pages), 0);
            uint64_t at;
            /* Used pages with a one-page gap (+2 areas each), the last one
             * against the tail's start (+1) when the target is odd. */
            for (uint64_t next = base; vmareas_count(&va) < target; next += PG) {
                if (next > base && target - vmareas_count(&va) >= 2)
                    next += PG;
                assert_int_equal(vmareas_reserve(&va, next, PG), 0);
            }
            assert_int_equal(settled_count(), target);
            uint64_t before = vmareas_count(&va);
            long pages_before = prov.outstanding;
            snapshot_take(&va, &snap);
            uint64_t tail, tail_size;
            bool used;
            vmareas_area(&va, before - 1, &tail, &tail_size, &used);
            assert_false(used);
            unsigned added = 0;
            int err = 0;
            prov.gets_left = 0;
            switch (op) {
            case 0: /* no 2-page gap: carved from the front of the tail, +1 */
                err = vmareas_alloc(&va, 2 * PG, &at), added = 1;
                break;
            case 1: /* large, aligned: head and tail remainders, +2 */
                err = vmareas_alloc(&va, 2 * MB, &at), added = (tail % (2 * MB)) ? 2 : 1;
                break;
            case 2: /* reserve inside the tail: +2 */ err = vmareas_reserve(&va, tail + 5 * PG, PG), added = 2; break;
            case 3: /* reserve at the tail's start: +1 */ err = vmareas_reserve(&va, tail, 3 * PG), added = 1; break;
            case 4: /* exact fit into a 4 KiB gap: +0 */
                err = before > 2 ? vmareas_alloc(&va, PG, &at) : 0, added = 0;
                break;
            case 5: /* reserve a gap exactly: +0 */
                err = before > 2 ? vmareas_reserve(&va, base + PG, PG) : 0, added = 0;
                break;
            }
            bool needs_page = before + added > (uint64_t)(pages_before - 2) * VMAREA_PER_PAGE;
            if (needs_page) {
                assert_int_equal(err, -ENOMEM);
                assert_true(snapshot_same(&va, &snap));
                assert_int_equal(prov.outstanding, pages_before);
            } else {
                assert_int_equal(err, 0);
            }
            assert_checked(&va);
            prov.gets_left = -1;
            vmareas_destroy(&va);
            assert_int_equal(prov.outstanding, 0);
        }
    }
    free(snap.words);
}

/* Alternating alloc and free at a page boundary does not churn pages. */
static void test_no_churn(void **state)
{
    (void)state;
    pages = test_pages(&prov);
    const uint64_t base = 1ull << 32;
    assert_int_equal(vmareas_init(&va, base, base + (1ull << 34), &pages), 0);
    uint64_t at;
    while (vmareas_count(&va) < VMAREA_PER_PAGE)
        assert_int_equal(vmareas_alloc(&va, PG, &at), 0);
    long gets = prov.gets;
    for (unsigned i = 0; i < 100; i++) {
        assert_int_equal(vmareas_alloc(&va, PG, &at), 0);
        assert_int_equal(vmareas_free(&va, at, NULL), 0);
    }
    assert_true(prov.gets - gets <= 1);
    assert_checked(&va);
    vmareas_destroy(&va);
    assert_int_equal(prov.outstanding, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_destroy),  cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_alloc_phased),  cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_free_area),     cmocka_unit_test(test_growth_and_shrink),
        cmocka_unit_test(test_capacity),      cmocka_unit_test(test_no_page),
        cmocka_unit_test(test_no_churn),      cmocka_unit_test(test_hint_never_trusted),
        cmocka_unit_test(test_unmerged_area),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
