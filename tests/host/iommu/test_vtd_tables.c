/*
 * Host tests of kernel/arch/x86_64/vtd_tables.c, the VT-d domain page
 * tables, against a fake frame pool: each table frame is its own heap
 * block, freed when the tables give it back (so ASan catches a walk of a
 * freed table), and every free is checked to come after an invalidation
 * that followed the unlink. A seeded random run of maps and unmaps is
 * compared with a per-page oracle, including which tables must exist
 * (tables are freed as soon as they are empty), on 3- and 4-level tables
 * with and without 2 MiB pages; the pool must be back to one table when
 * everything is unmapped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../common/test_rng.h"
#include <abi/errno.h>
#include <kernel/console.h>
#include "vtd_tables.h"

/* ---- panic, for the code under test ---- */

static jmp_buf *panic_catcher;
static char panic_message[256];

void panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(panic_message, sizeof panic_message, fmt, ap);
    va_end(ap);
    if (panic_catcher)
        longjmp(*panic_catcher, 1);
    fail_msg("panic: %s", panic_message);
    abort();
}

/* ---- the fake pool and unit ---- */

#define MAX_FRAMES 8192

static struct pool {
    uint64_t *frames[MAX_FRAMES]; /* frame i has address (i + 1) << 12 */
    unsigned in_use;
    unsigned limit; /* alloc_table fails beyond this many in use */
    unsigned allocs, frees, invalidations, publishes;
    bool cleared_since_invalidate; /* an entry went to 0 with no invalidation since */
    bool checking_frees;
} pool;

static unsigned frame_index(uint64_t frame)
{
    unsigned i = (unsigned)(frame >> 12) - 1;
    if ((frame & 0xfff) || frame == 0 || i >= MAX_FRAMES || !pool.frames[i])
        fail_msg("%#llx is not a table frame in use", (unsigned long long)frame);
    return i;
}

static uint64_t fake_alloc(void *ctx)
{
    (void)ctx;
    if (pool.in_use >= pool.limit)
        return 0;
    for (unsigned i = 0; i < MAX_FRAMES; i++) {
        if (pool.frames[i])
            continue;
        pool.frames[i] = aligned_alloc(4096, 4096);
        assert_non_null(pool.frames[i]);
        memset(pool.frames[i], 0, 4096);
        pool.in_use++;
        pool.allocs++;
        return (uint64_t)(i + 1) << 12;
    }
    return 0;
}

static void fake_free(void *ctx, uint64_t frame)
{
    (void)ctx;
    unsigned i = frame_index(frame);
    if (pool.checking_frees && pool.cleared_since_invalidate)
        fail_msg("table %#llx freed before the unit was told to forget it", (unsigned long long)frame);
    free(pool.frames[i]);
    pool.frames[i] = NULL;
    pool.in_use--;
    pool.frees++;
}

static uint64_t fake_frames_free(void *ctx)
{
    (void)ctx;
    return pool.limit > pool.in_use ? pool.limit - pool.in_use : 0;
}

static uint64_t *fake_table(void *ctx, uint64_t frame)
{
    (void)ctx;
    return pool.frames[frame_index(frame)];
}

static void fake_publish(void *ctx, const uint64_t *entry)
{
    (void)ctx;
    pool.publishes++;
    if (*entry == 0)
        pool.cleared_since_invalidate = true;
}

static void fake_invalidate(void *ctx)
{
    (void)ctx;
    pool.invalidations++;
    pool.cleared_since_invalidate = false;
}

static const struct vtd_tables_ops fake_ops = {
    fake_alloc, fake_free, fake_frames_free, fake_table, fake_publish, fake_invalidate,
};

static void pool_reset(unsigned limit)
{
    for (unsigned i = 0; i < MAX_FRAMES; i++) {
        free(pool.frames[i]);
        pool.frames[i] = NULL;
    }
    memset(&pool, 0, sizeof pool);
    pool.limit = limit;
    pool.checking_frees = true;
}

#define GIB  (1ull << 30)
#define MIB2 VTD_LARGE_PAGE_SIZE
#define PAGE VTD_PAGE_SIZE

static void new_tables(struct vtd_tables *t, unsigned levels, bool large)
{
    uint64_t width = levels == 3 ? 39 : 48;
    assert_int_equal(vtd_tables_init(t, &fake_ops, NULL, levels, large, 1ull << width, 1ull << 46), 0);
    assert_int_equal(pool.in_use, 1);
}

static void expect_translation(const struct vtd_tables *t, uint64_t iova, uint64_t phys, bool writable)
{
    uint64_t got;
    bool w;
    if (!vtd_tables_translate(t, iova, &got, &w))
        fail_msg("iova %#llx not mapped", (unsigned long long)iova);
    if (got != phys || w != writable)
        fail_msg("iova %#llx -> %#llx %s, want %#llx %s", (unsigned long long)iova, (unsigned long long)got,
                 w ? "rw" : "ro", (unsigned long long)phys, writable ? "rw" : "ro");
}

static void expect_unmapped(const struct vtd_tables *t, uint64_t iova)
{
    uint64_t got;
    bool w;
    if (vtd_tables_translate(t, iova, &got, &w))
        fail_msg("iova %#llx still maps %#llx", (unsigned long long)iova, (unsigned long long)got);
}

/* ---- direct tests ---- */

static void test_refusals(void **state)
{
    (void)state;
    struct vtd_tables t;
    pool_reset(64);
    new_tables(&t, 3, true);
    assert_int_equal(vtd_tables_map(&t, 0x1000, 0x5000, 0, true), -EINVAL);
    assert_int_equal(vtd_tables_map(&t, 0x1008, 0x5000, PAGE, true), -EINVAL);
    assert_int_equal(vtd_tables_map(&t, 0x1000, 0x5800, PAGE, true), -EINVAL);
    assert_int_equal(vtd_tables_map(&t, 0x1000, 0x5000, PAGE + 8, true), -EINVAL);
    assert_int_equal(vtd_tables_map(&t, ~0ull - PAGE + 1, 0x5000, 2 * PAGE, true), -EINVAL);
    assert_int_equal(vtd_tables_map(&t, 0x1000, ~0ull - PAGE + 1, 2 * PAGE, true), -EINVAL);
    assert_int_equal(vtd_tables_map(&t, (1ull << 39) - PAGE, 0x5000, 2 * PAGE, true), -ERANGE);
    assert_int_equal(vtd_tables_map(&t, 0x1000, (1ull << 46) - PAGE, 2 * PAGE, true), -ERANGE);
    assert_int_equal(vtd_tables_needed(&t, 0x1008, PAGE), 0);
    assert_int_equal(pool.in_use, 1);
    assert_int_equal(pool.publishes, 0);

    /* An overlap anywhere in the range refuses all of it. */
    assert_int_equal(vtd_tables_map(&t, 0x200000, 0x800000, 4 * PAGE, true), 0);
    unsigned used = pool.in_use;
    assert_int_equal(vtd_tables_map_check(&t, 0x100000, 0x900000, 0x101000), -EEXIST);
    assert_int_equal(vtd_tables_map(&t, 0x100000, 0x900000, 0x101000, true), -EEXIST);
    assert_int_equal(vtd_tables_map(&t, 0x203000, 0x900000, PAGE, false), -EEXIST);
    expect_unmapped(&t, 0x100000);
    expect_unmapped(&t, 0x1ff000);
    assert_int_equal(pool.in_use, used);
    assert_int_equal(vtd_tables_map(&t, 0x1ff000, 0x900000, PAGE, false), 0);
    expect_translation(&t, 0x1ff000, 0x900000, false);
    expect_translation(&t, 0x203000, 0x803000, true);

    /* A 2 MiB leaf over a range is refused like any page. */
    assert_int_equal(vtd_tables_map(&t, 0x40000000, 0x40000000, MIB2, true), 0);
    assert_int_equal(vtd_tables_map(&t, 0x40100000, 0x1000, PAGE, true), -EEXIST);

    vtd_tables_unmap(&t, 0, GIB + MIB2);
    assert_int_equal(pool.in_use, 1);
    vtd_tables_destroy(&t);
    assert_int_equal(pool.in_use, 0);
}

static void test_all_or_nothing_nomem(void **state)
{
    (void)state;
    struct vtd_tables t;
    /* 3 levels, 4 KiB pages over 3 GiB of iova: 3 directories and 1536
     * page tables beside the root. */
    pool_reset(1 + 3 + 1536 - 1);
    new_tables(&t, 3, false);
    uint64_t size = 3 * GIB;
    assert_int_equal(vtd_tables_needed(&t, 0x40000000, size), 3 + 1536);
    assert_int_equal(vtd_tables_map_check(&t, 0x40000000, 0x1000, size), -ENOMEM);
    unsigned publishes = pool.publishes;
    assert_int_equal(vtd_tables_map(&t, 0x40000000, 0x1000, size, true), -ENOMEM);
    assert_int_equal(pool.in_use, 1);
    assert_int_equal(pool.publishes, publishes);
    expect_unmapped(&t, 0x40000000);
    /* One more frame and it fits, to the frame. */
    pool.limit++;
    assert_int_equal(vtd_tables_map(&t, 0x40000000, 0x1000, size, true), 0);
    assert_int_equal(pool.in_use, pool.limit);
    expect_translation(&t, 0x40000000 + size - PAGE, 0x1000 + size - PAGE, true);
    /* Unmapping frees 1539 tables in batches of 32, each after an invalidation. */
    unsigned invalidations = pool.invalidations;
    vtd_tables_unmap(&t, 0x40000000, size);
    assert_int_equal(pool.in_use, 1);
    assert_true(pool.invalidations - invalidations >= (3 + 1536) / 32);
    vtd_tables_destroy(&t);
}

static void test_large_pages(void **state)
{
    (void)state;
    struct vtd_tables t;
    pool_reset(64);
    new_tables(&t, 4, true);
    /* 6 MiB from a 2 MiB-aligned pair: three leaves, one directory chain. */
    assert_int_equal(vtd_tables_needed(&t, 0x7f00000000ull, 3 * MIB2), 2 + 3);
    assert_int_equal(vtd_tables_map(&t, 0x7f00000000ull, 0x80000000, 3 * MIB2, true), 0);
    assert_int_equal(pool.in_use, 1 + 2); /* PDPT and PD, no page table */
    expect_translation(&t, 0x7f00000000ull + 0x123000, 0x80123000, true);
    expect_translation(&t, 0x7f00000000ull + 3 * MIB2 - PAGE, 0x80000000 + 3 * MIB2 - PAGE, true);
    /* Misaligned by a page: 4 KiB pages, page tables. */
    assert_int_equal(vtd_tables_map(&t, 0x100000000ull, 0x80001000, MIB2, false), 0);
    assert_int_equal(pool.in_use, 1 + 2 + 2); /* a directory and a page table more */
    /* Part of a 2 MiB leaf cannot be unmapped: a kernel bug, a panic. */
    jmp_buf catcher;
    panic_catcher = &catcher;
    if (setjmp(catcher) == 0) {
        vtd_tables_unmap(&t, 0x7f00000000ull + MIB2, PAGE);
        fail_msg("partial unmap of a 2 MiB leaf did not panic");
    }
    panic_catcher = NULL;
    assert_non_null(strstr(panic_message, "part of a 2 MiB mapping"));
    /* The failed unmap left the leaf in place; a whole one goes. */
    expect_translation(&t, 0x7f00000000ull + MIB2, 0x80000000 + MIB2, true);
    pool.cleared_since_invalidate = false;
    vtd_tables_unmap(&t, 0x7f00000000ull + MIB2, MIB2);
    expect_unmapped(&t, 0x7f00000000ull + MIB2);
    expect_translation(&t, 0x7f00000000ull, 0x80000000, true);
    vtd_tables_unmap(&t, 0, 1ull << 48);
    assert_int_equal(pool.in_use, 1);
    /* Without 2 MiB support the same range takes 4 KiB pages. */
    vtd_tables_destroy(&t);
    pool_reset(64);
    new_tables(&t, 4, false);
    assert_int_equal(vtd_tables_map(&t, 0x7f00000000ull, 0x80000000, 3 * MIB2, true), 0);
    assert_int_equal(pool.in_use, 1 + 2 + 3);
    vtd_tables_unmap(&t, 0x7f00000000ull, 3 * MIB2);
    vtd_tables_destroy(&t);
    assert_int_equal(pool.in_use, 0);
}

static void test_unmap_invalidates(void **state)
{
    (void)state;
    struct vtd_tables t;
    pool_reset(64);
    new_tables(&t, 3, true);
    /* Even an unmap of nothing invalidates: callers rely on the return. */
    unsigned before = pool.invalidations;
    vtd_tables_unmap(&t, 0x5000, PAGE);
    vtd_tables_unmap(&t, 0x5000, 0);
    assert_int_equal(pool.invalidations, before + 2);
    /* A leaf cleared with its table still in use: invalidated, nothing freed. */
    assert_int_equal(vtd_tables_map(&t, 0x5000, 0x9000, 2 * PAGE, true), 0);
    unsigned frees = pool.frees;
    vtd_tables_unmap(&t, 0x5000, PAGE);
    assert_int_equal(pool.frees, frees);
    assert_int_equal(pool.invalidations, before + 3);
    assert_false(pool.cleared_since_invalidate);
    vtd_tables_unmap(&t, 0x6000, PAGE);
    assert_int_equal(pool.frees, frees + 2); /* the page table and the directory */
    vtd_tables_destroy(&t);
}

/* ---- random maps and unmaps against an oracle ---- */

#define WINDOW_PAGES 8192u /* 32 MiB per window */
#define WINDOWS      3

struct page_state {
    uint64_t phys;
    uint8_t mapped; /* 0, 1 read-only, 2 writable */
    bool large;     /* inside a 2 MiB leaf */
};

static struct oracle {
    uint64_t base[WINDOWS];
    struct page_state pages[WINDOWS][WINDOW_PAGES];
} oracle;

static struct page_state *oracle_page(uint64_t iova)
{
    for (unsigned w = 0; w < WINDOWS; w++)
        if (iova >= oracle.base[w] && iova < oracle.base[w] + WINDOW_PAGES * PAGE)
            return &oracle.pages[w][(iova - oracle.base[w]) / PAGE];
    fail_msg("iova %#llx outside the windows", (unsigned long long)iova);
    return NULL;
}

static void check_page(const struct vtd_tables *t, uint64_t iova)
{
    struct page_state *p = oracle_page(iova);
    if (p->mapped)
        expect_translation(t, iova, p->phys, p->mapped == 2);
    else
        expect_unmapped(t, iova);
}

/* The tables that must exist, given that empty ones are freed at once: a
 * page table per 2 MiB with a 4 KiB page mapped, a directory per 1 GiB
 * and (4 levels) a directory-pointer table per 512 GiB with anything
 * mapped, and the root. The windows never share a 1 GiB region. */
static unsigned expected_tables(unsigned levels)
{
    unsigned n = 1;
    for (unsigned w = 0; w < WINDOWS; w++) {
        bool any = false;
        for (unsigned win = 0; win < WINDOW_PAGES / 512; win++) {
            bool small = false;
            for (unsigned k = 0; k < 512; k++) {
                const struct page_state *p = &oracle.pages[w][win * 512 + k];
                any |= p->mapped != 0;
                small |= p->mapped && !p->large;
            }
            n += small;
        }
        n += any;
        if (levels == 4 && any)
            n += 1; /* each window in its own 512 GiB region */
    }
    return n;
}

static void random_run(unsigned levels, bool large, uint64_t seed, unsigned ops)
{
    struct vtd_tables t;
    pool_reset(MAX_FRAMES);
    new_tables(&t, levels, large);
    memset(&oracle, 0, sizeof oracle);
    oracle.base[0] = 0;
    oracle.base[1] = levels == 4 ? (1ull << 39) * 3 + 5 * GIB : 5 * GIB;
    oracle.base[2] = levels == 4 ? (1ull << 48) - 2 * GIB : (1ull << 39) - 2 * GIB;
    test_rng_seed(seed);
    unsigned maps = 0, refused_exist = 0, refused_nomem = 0, unmaps = 0, large_leaves = 0;
    for (unsigned op = 0; op < ops; op++) {
        unsigned w = (unsigned)(test_rnd() % WINDOWS);
        bool aligned = test_rnd() % 3 == 0;
        uint64_t first = test_rnd() % WINDOW_PAGES, npages;
        if (aligned) {
            first &= ~511ull;
            npages = 512 * (1 + test_rnd() % 3);
        } else {
            uint64_t longest = test_rnd() % 4 == 0 ? 1500 : 40;
            npages = 1 + test_rnd() % longest;
        }
        if (first + npages > WINDOW_PAGES)
            npages = WINDOW_PAGES - first;
        uint64_t iova = oracle.base[w] + first * PAGE, size = npages * PAGE;
        if (test_rnd() % 5 < 3) {
            bool large_phys = aligned && test_rnd() % 2;
            uint64_t phys = large_phys ? (test_rnd() % 4096) * MIB2 : (test_rnd() % (1ull << 22)) * PAGE;
            bool writable = test_rnd() % 2;
            bool tight = test_rnd() % 10 == 0;
            if (tight)
                pool.limit = pool.in_use + (unsigned)(test_rnd() % 3);
            bool overlap = false;
            for (uint64_t k = 0; k < npages; k++)
                overlap |= oracle_page(iova + k * PAGE)->mapped != 0;
            int check = vtd_tables_map_check(&t, iova, phys, size);
            unsigned in_use = pool.in_use;
            int r = vtd_tables_map(&t, iova, phys, size, writable);
            assert_int_equal(r, check);
            pool.limit = MAX_FRAMES;
            if (overlap) {
                assert_int_equal(r, -EEXIST);
                refused_exist++;
            } else if (r == -ENOMEM) {
                assert_true(tight);
                refused_nomem++;
            } else {
                assert_int_equal(r, 0);
                maps++;
            }
            if (r != 0) {
                assert_int_equal(pool.in_use, in_use);
            } else {
                for (uint64_t k = 0; k < npages; k++)
                    *oracle_page(iova + k * PAGE) =
                        (struct page_state){ phys + k * PAGE, (uint8_t)(writable ? 2 : 1), false };
                /* 2 MiB leaves: whole aligned windows of an aligned pair. */
                for (uint64_t va = iova; large && va < iova + size; va += PAGE) {
                    uint64_t pa = phys + (va - iova);
                    if (va % MIB2 == 0 && pa % MIB2 == 0 && iova + size - va >= MIB2) {
                        large_leaves++;
                        for (uint64_t k = 0; k < 512; k++)
                            oracle_page(va + k * PAGE)->large = true;
                    }
                }
            }
        } else {
            /* Never half a 2 MiB leaf: widen the range over any it touches. */
            if (oracle_page(iova)->large)
                iova &= ~(MIB2 - 1);
            uint64_t end = iova + size;
            if (oracle_page(end - PAGE)->large)
                end = ((end - PAGE) | (MIB2 - 1)) + 1;
            vtd_tables_unmap(&t, iova, end - iova);
            for (uint64_t va = iova; va < end; va += PAGE)
                *oracle_page(va) = (struct page_state){ 0, 0, false };
            assert_false(pool.cleared_since_invalidate);
            unmaps++;
        }
        for (uint64_t k = 0; k < npages; k += 1 + k / 8)
            check_page(&t, iova + k * PAGE);
        if (op % 200 == 0 || op == ops - 1) {
            for (unsigned ww = 0; ww < WINDOWS; ww++)
                for (unsigned k = 0; k < WINDOW_PAGES; k += 7)
                    check_page(&t, oracle.base[ww] + k * PAGE);
            if (pool.in_use != expected_tables(levels))
                fail_msg("op %u (seed %#llx): %u tables in use, the mappings need %u", op, (unsigned long long)seed,
                         pool.in_use, expected_tables(levels));
        }
    }
    print_message("%u levels, 2 MiB pages %s: %u maps (%u 2 MiB leaves), %u refused as overlapping, %u for lack of "
                  "frames, %u unmaps, %u invalidations\n",
                  levels, large ? "on" : "off", maps, large_leaves, refused_exist, refused_nomem, unmaps,
                  pool.invalidations);
    assert_true(maps > ops / 10 && refused_exist > ops / 20 && refused_nomem > 0 && unmaps > ops / 5);
    assert_true(large ? large_leaves > ops / 50 : large_leaves == 0);
    for (unsigned w = 0; w < WINDOWS; w++)
        vtd_tables_unmap(&t, oracle.base[w], WINDOW_PAGES * PAGE);
    assert_int_equal(pool.in_use, 1);
    vtd_tables_destroy(&t);
    assert_int_equal(pool.in_use, 0);
}

static void test_random_3_levels(void **state)
{
    (void)state;
    random_run(3, true, 0x5be0cd19137e2179ull, 6000);
    random_run(3, false, 0x1f83d9abfb41bd6bull, 3000);
}

static void test_random_4_levels(void **state)
{
    (void)state;
    random_run(4, true, 0x9b05688c2b3e6c1full, 6000);
}

static int teardown(void **state)
{
    (void)state;
    pool_reset(0);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),        cmocka_unit_test(test_all_or_nothing_nomem),
        cmocka_unit_test(test_large_pages),     cmocka_unit_test(test_unmap_invalidates),
        cmocka_unit_test(test_random_3_levels), cmocka_unit_test(test_random_4_levels),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
