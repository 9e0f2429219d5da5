/*
 * Randomized test of kernel/core/vmarea.c against a reference: one owner
 * word per page of the managed range. Every answer is checked against the
 * reference (an -ENOSPC by brute force: no suitably aligned free run exists),
 * vmareas_check runs after every step, the whole array is compared with the
 * reference every few steps, and now and then the page provider refuses, in
 * which case a call either needed no page or failed changing nothing.
 * The lookup hint is set to garbage before a quarter of the calls.
 * Argument: total operations (default 240000). Seed: VMAREA_SEED, printed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../common/test_rng.h"
#include "vmarea_testlib.h"

#define PG VMAREA_PAGE_SIZE
#define MB (1ull << 20)

static uint64_t seed = 0x7e55e4a;
static uint64_t total_ops = 240000;
static uint64_t step;
static uint64_t refused; /* calls that failed with -ENOMEM */

#define REQUIRE(cond, ...)                                                                                             \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            print_message("vmarea_random: seed %llu step %llu: ", (unsigned long long)seed, (unsigned long long)step); \
            fail_msg(__VA_ARGS__);                                                                                     \
        }                                                                                                              \
    } while (0)

struct ref_area {
    uint64_t start, size;
    uint32_t live_pos; /* index in live[] */
};

static struct test_provider prov;
static struct vmareas va;
static uint64_t base, limit, npages;
static uint32_t *owner;        /* per page: 0 free, else an id in areas[] */
static struct ref_area *areas; /* by id; id 0 unused */
static uint32_t *live, nlive;  /* ids of used areas */
static uint32_t *free_ids, nfree_ids;
static struct area_snapshot snap;

static uint64_t rnd_below(uint64_t n) { return test_rnd() % n; }

static bool ref_range_free(uint64_t start, uint64_t size)
{
    for (uint64_t p = (start - base) / PG; p < (start - base + size) / PG; p++)
        if (owner[p])
            return false;
    return true;
}

static void ref_add(uint64_t start, uint64_t size)
{
    uint32_t id = free_ids[--nfree_ids];
    areas[id] = (struct ref_area){ start, size, nlive };
    live[nlive++] = id;
    for (uint64_t p = (start - base) / PG; p < (start - base + size) / PG; p++)
        owner[p] = id;
}

static void ref_remove(uint32_t id)
{
    struct ref_area *r = &areas[id];
    for (uint64_t p = (r->start - base) / PG; p < (r->start - base + r->size) / PG; p++)
        owner[p] = 0;
    uint32_t moved = live[--nlive];
    live[r->live_pos] = moved;
    areas[moved].live_pos = r->live_pos;
    free_ids[nfree_ids++] = id;
}

/* Would any free, suitably aligned run hold size bytes? */
static bool ref_fits_somewhere(uint64_t size)
{
    uint64_t align = size >= VMAREA_LARGE_SIZE ? VMAREA_LARGE_SIZE : PG;
    uint64_t p = 0;
    while (p < npages) {
        if (owner[p]) {
            p++;
            continue;
        }
        uint64_t q = p;
        while (q < npages && !owner[q])
            q++;
        uint64_t s = base + p * PG, e = base + q * PG;
        uint64_t a = (s + align - 1) & ~(align - 1);
        if (a >= s && a < e && e - a >= size)
            return true;
        p = q;
    }
    return false;
}

static void compare_all(void)
{
    uint64_t n = vmareas_count(&va), expect_start = base;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t start, size;
        bool used;
        vmareas_area(&va, i, &start, &size, &used);
        REQUIRE(start == expect_start, "area %llu starts at %#llx", (unsigned long long)i, (unsigned long long)start);
        uint32_t id = owner[(start - base) / PG];
        if (used) {
            REQUIRE(id && areas[id].start == start && areas[id].size == size, "used area %#llx+%#llx",
                    (unsigned long long)start, (unsigned long long)size);
        } else {
            REQUIRE(ref_range_free(start, size), "free area %#llx is used in the reference", (unsigned long long)start);
        }
        expect_start = start + size;
    }
    REQUIRE(expect_start == limit, "areas end at %#llx", (unsigned long long)expect_start);
}

static uint64_t random_size(void)
{
    uint64_t r = rnd_below(100);
    if (r < 70)
        return (1 + rnd_below(16)) * PG;
    if (r < 92)
        return (17 + rnd_below(100)) * PG;
    if (r < 96)
        return (1 + rnd_below(3)) * VMAREA_LARGE_SIZE;
    return VMAREA_LARGE_SIZE + (1 + rnd_below(512)) * PG;
}

static uint64_t random_addr(void)
{
    uint64_t r = rnd_below(100);
    if (r < 3)
        return base - PG * (1 + rnd_below(4));
    if (r < 6)
        return limit + PG * rnd_below(4);
    if (r < 8)
        return base + rnd_below(limit - base); /* usually misaligned */
    return base + rnd_below(npages) * PG;
}

static void one_step(unsigned alloc_percent)
{
    uint64_t r = rnd_below(100), at = 0, size, start, got_size;
    /* The lookup hint is a guess: now and then it points anywhere, and every
     * answer must still be the reference's. */
    if (rnd_below(4) == 0)
        va.hint = rnd_below(4) ? rnd_below(vmareas_count(&va) + 2) : UINT64_MAX - rnd_below(2);
    /* Refuse pages now and then, and often just below a page boundary,
     * where calls do need a page. */
    bool near_boundary = vmareas_count(&va) % VMAREA_PER_PAGE >= VMAREA_PER_PAGE - 8;
    bool refuse = rnd_below(near_boundary ? 2 : 16) == 0;
    if (refuse) {
        snapshot_take(&va, &snap);
        prov.gets_left = 0;
    }
    long pages_before = prov.outstanding;
    int err;
    bool changed = false;
    if (r < alloc_percent) {
        size = rnd_below(50) == 0 ? rnd_below(3) * PG + rnd_below(2) : random_size();
        err = vmareas_alloc(&va, size, &at);
        if (size == 0 || size % PG) {
            REQUIRE(err == -EINVAL, "alloc %#llx: %d", (unsigned long long)size, err);
        } else if (err == 0) {
            uint64_t align = size >= VMAREA_LARGE_SIZE ? VMAREA_LARGE_SIZE : PG;
            REQUIRE(at % align == 0 && at >= base && at <= limit && limit - at >= size, "alloc %#llx at %#llx",
                    (unsigned long long)size, (unsigned long long)at);
            REQUIRE(ref_range_free(at, size), "alloc %#llx at %#llx overlaps", (unsigned long long)size,
                    (unsigned long long)at);
            ref_add(at, size);
            changed = true;
        } else if (err == -ENOSPC) {
            REQUIRE(!ref_fits_somewhere(size), "alloc %#llx: -ENOSPC with room", (unsigned long long)size);
        } else {
            REQUIRE(err == -ENOMEM && refuse, "alloc %#llx: %d", (unsigned long long)size, err);
        }
    } else if (r < alloc_percent + 12) {
        at = random_addr();
        size = rnd_below(30) == 0 ? rnd_below(PG * 4) : (1 + rnd_below(rnd_below(4) ? 8 : 600)) * PG;
        err = vmareas_reserve(&va, at, size);
        int expect;
        if (size == 0 || size % PG || at % PG)
            expect = -EINVAL;
        else if (at < base || at >= limit || size > limit - at)
            expect = -ERANGE;
        else if (!ref_range_free(at, size))
            expect = -EEXIST;
        else
            expect = 0;
        if (expect == 0 && err == -ENOMEM && refuse)
            expect = -ENOMEM;
        REQUIRE(err == expect, "reserve %#llx+%#llx: %d, expected %d", (unsigned long long)at, (unsigned long long)size,
                err, expect);
        if (!err) {
            ref_add(at, size);
            changed = true;
        }
    } else if (r < 92) {
        uint32_t id = 0;
        if (nlive && rnd_below(5)) {
            id = live[rnd_below(nlive)];
            at = areas[id].start + (rnd_below(20) == 0 ? PG * rnd_below(2) : 0);
        } else {
            at = random_addr();
        }
        uint32_t owner_id = at >= base && at < limit ? owner[(at - base) / PG] : 0;
        bool is_start = owner_id && areas[owner_id].start == at;
        err = vmareas_free(&va, at, &got_size);
        REQUIRE(err == (is_start ? 0 : -ENOENT), "free %#llx: %d", (unsigned long long)at, err);
        if (!err) {
            REQUIRE(got_size == areas[owner_id].size, "free %#llx: size", (unsigned long long)at);
            ref_remove(owner_id);
            changed = true;
        }
    } else {
        at = random_addr();
        uint32_t owner_id = at >= base && at < limit ? owner[(at - base) / PG] : 0;
        err = vmareas_find(&va, at, &start, &got_size);
        REQUIRE(err == (owner_id ? 0 : -ENOENT), "find %#llx: %d", (unsigned long long)at, err);
        if (!err)
            REQUIRE(start == areas[owner_id].start && got_size == areas[owner_id].size, "find %#llx",
                    (unsigned long long)at);
    }
    if (refuse) {
        refused += err == -ENOMEM;
        if (!changed)
            REQUIRE(snapshot_same(&va, &snap), "a failed call changed the areas");
        REQUIRE(prov.outstanding <= pages_before, "a page was had from a refusing provider");
        prov.gets_left = -1;
    }
    const char *why = NULL;
    REQUIRE(vmareas_check(&va, &why) == 0, "check: %s", why);
    REQUIRE(prov.outstanding == (long)va.pages_held, "provider and instance disagree on pages");
}

static void run(uint64_t range_base, uint64_t range_pages, uint64_t ops)
{
    base = range_base;
    npages = range_pages;
    limit = base + npages * PG;
    owner = calloc(npages, sizeof(*owner));
    areas = calloc(npages + 1, sizeof(*areas));
    live = calloc(npages + 1, sizeof(*live));
    free_ids = calloc(npages + 1, sizeof(*free_ids));
    nlive = 0;
    nfree_ids = 0;
    for (uint32_t id = (uint32_t)npages; id >= 1; id--)
        free_ids[nfree_ids++] = id;
    struct vmarea_pages pages = test_pages(&prov);
    assert_int_equal(vmareas_init(&va, base, limit, &pages), 0);
    uint64_t peak = 0;
    for (uint64_t i = 0; i < ops; i++, step++) {
        /* Phases sweep occupancy from nearly empty to full and back. */
        unsigned alloc_percent = (i / 3000) % 2 ? 30 : 62;
        one_step(alloc_percent);
        if (vmareas_count(&va) > peak)
            peak = vmareas_count(&va);
        if (i % 53 == 0)
            compare_all();
    }
    compare_all();
    print_message("vmarea_random: %llu pages from %#llx, %llu ops, peak %llu areas, %llu -ENOMEM\n",
                  (unsigned long long)npages, (unsigned long long)base, (unsigned long long)ops,
                  (unsigned long long)peak, (unsigned long long)refused);
    refused = 0;
    while (nlive) {
        uint32_t id = live[rnd_below(nlive)];
        assert_int_equal(vmareas_free(&va, areas[id].start, NULL), 0);
        ref_remove(id);
    }
    assert_int_equal(prov.outstanding, 3); /* the baseline, even with the last merge put off */
    assert_true(vmareas_count(&va) <= 3);
    vmareas_settle(&va);
    assert_int_equal(vmareas_count(&va), 1);
    assert_int_equal(prov.outstanding, 3);
    vmareas_destroy(&va);
    assert_int_equal(prov.outstanding, 0);
    free(owner);
    free(areas);
    free(live);
    free(free_ids);
}

static void test_small_range(void **state)
{
    (void)state;
    run(0x1000, 96, total_ops / 8); /* mostly full: -ENOSPC paths */
}

static void test_many_areas(void **state)
{
    (void)state;
    run(0x400000, 8192, total_ops / 2); /* up to a few thousand areas */
}

static void test_unaligned_base(void **state)
{
    (void)state;
    run(0x7000, 24576, total_ops - total_ops / 8 - total_ops / 2); /* large areas */
}

int main(int argc, char **argv)
{
    if (argc > 1)
        total_ops = strtoull(argv[1], NULL, 0);
    const char *env = getenv("VMAREA_SEED");
    if (env)
        seed = strtoull(env, NULL, 0);
    printf("vmarea_random: seed %llu (set VMAREA_SEED to repeat)\n", (unsigned long long)seed);
    test_rng_seed(seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_range),
        cmocka_unit_test(test_many_areas),
        cmocka_unit_test(test_unaligned_base),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    free(snap.words);
    return failed;
}
