/*
 * Host tests of common/idtable.c: generation-tagged IDs over pages from a
 * provider. Unit cases for every edge (ID 0, stale and made-up IDs, the
 * reserved slot, a full table, a provider that runs dry), then a seeded
 * random run against a plain model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <common/idtable.h>
#include "test_rng.h"

static unsigned pages_out, fail_after = ~0u;

static int page_get(void *ctx, void **page)
{
    (void)ctx;
    if (fail_after == 0)
        return -2;
    if (fail_after != ~0u)
        fail_after--;
    *page = calloc(1, 4096);
    pages_out++;
    return 0;
}

static void page_put(void *ctx, void *page)
{
    (void)ctx;
    free(page);
    pages_out--;
}

static const struct id_pages provider = { page_get, page_put, NULL };

static int reset(void **state)
{
    (void)state;
    fail_after = ~0u;
    return 0;
}

static int all_pages_back(void **state)
{
    (void)state;
    assert_int_equal(pages_out, 0);
    return 0;
}

static void test_alloc_lookup_free(void **state)
{
    (void)state;
    struct id_table t;
    int objects[3];
    uint64_t id[3];
    assert_int_equal(idt_init(&t, 4, &provider), 0);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(idt_alloc(&t, &objects[i], i + 1, &id[i]), 0);
        assert_int_not_equal(id[i], 0);
    }
    for (unsigned i = 0; i < 3; i++) {
        struct id_slot *s = idt_slot(&t, id[i]);
        assert_non_null(s);
        assert_ptr_equal(s->object, &objects[i]);
        assert_int_equal(s->tag, i + 1);
    }
    assert_int_equal(t.used, 3);
    assert_ptr_equal(idt_free(&t, id[1]), &objects[1]);
    assert_null(idt_slot(&t, id[1])); /* stale */
    assert_null(idt_free(&t, id[1])); /* twice */
    /* The slot comes back with a new generation: the old ID stays dead. */
    uint64_t again;
    assert_int_equal(idt_alloc(&t, &objects[1], 9, &again), 0);
    assert_int_equal(again & 0xffffffffu, id[1] & 0xffffffffu);
    assert_int_not_equal(again, id[1]);
    assert_null(idt_slot(&t, id[1]));
    assert_non_null(idt_slot(&t, again));
    idt_destroy(&t);
}

static void test_made_up_ids(void **state)
{
    (void)state;
    struct id_table t;
    uint64_t id;
    int x;
    assert_int_equal(idt_init(&t, 2, &provider), 0);
    assert_null(idt_slot(&t, 0));
    assert_null(idt_slot(&t, 1)); /* nothing allocated yet */
    assert_int_equal(idt_alloc(&t, &x, 1, &id), 0);
    assert_null(idt_slot(&t, id + (1ull << 32)));           /* wrong generation */
    assert_null(idt_slot(&t, (id & ~0xffffffffull) | 257)); /* past the pages */
    assert_null(idt_slot(&t, 0xffffffffffffffffull));       /* the reserved slot */
    assert_null(idt_slot(&t, (id & ~0xffffffffull)));       /* slot 0 */
    idt_destroy(&t);
}

static void test_full_and_dry(void **state)
{
    (void)state;
    struct id_table t;
    uint64_t id;
    int x;
    assert_int_equal(idt_init(&t, 2, &provider), 0);
    for (unsigned i = 0; i < 2 * ID_USABLE_PER_PAGE; i++)
        assert_int_equal(idt_alloc(&t, &x, 1, &id), 0);
    assert_int_equal(idt_alloc(&t, &x, 1, &id), -2); /* at max_pages */
    assert_int_equal(t.used, 2 * ID_USABLE_PER_PAGE);
    idt_destroy(&t);

    /* The provider runs dry: the error comes back, nothing changed. */
    assert_int_equal(idt_init(&t, 8, &provider), 0);
    fail_after = 1;
    for (unsigned i = 0; i < ID_USABLE_PER_PAGE; i++)
        assert_int_equal(idt_alloc(&t, &x, 1, &id), 0);
    assert_int_equal(idt_alloc(&t, &x, 1, &id), -2);
    assert_int_equal(t.used, ID_USABLE_PER_PAGE);
    assert_int_equal(t.npages, 1);
    idt_destroy(&t);
}

static void test_iteration_with_frees(void **state)
{
    (void)state;
    struct id_table t;
    static struct id_slot *dir[16];
    static uint64_t with_free[ID_BITMAP_WORDS(16)];
    uint64_t ids[600];
    int x;
    idt_init_with_directory(&t, dir, with_free, 16, &provider);
    for (unsigned i = 0; i < 600; i++)
        assert_int_equal(idt_alloc(&t, &x, 1, &ids[i]), 0);
    for (unsigned i = 0; i < 600; i += 3)
        idt_free(&t, ids[i]);
    uint64_t cursor = 0, id;
    unsigned seen = 0;
    struct id_slot *s;
    while ((id = idt_next(&t, &cursor, &s)) != 0) {
        assert_ptr_equal(idt_slot(&t, id), s);
        idt_free(&t, id); /* freeing what was returned is allowed */
        seen++;
    }
    assert_int_equal(seen, 400);
    assert_int_equal(t.used, 0);
    idt_destroy(&t);
}

/* Pages the live IDs need: up to the highest live one's page, and one
 * empty page above it when that page is full (kept for the next
 * allocation). */
static uint32_t pages_needed(const uint64_t *live, unsigned nlive, const struct id_table *t)
{
    uint32_t top = 0;
    bool any = false;
    for (unsigned i = 0; i < nlive; i++) {
        uint32_t page = (uint32_t)((live[i] & 0xffffffffu) - 1) / ID_SLOTS_PER_PAGE;
        if (!any || page > top)
            top = page;
        any = true;
    }
    if (!any)
        return 0;
    unsigned in_top = 0;
    for (unsigned i = 0; i < nlive; i++)
        in_top += (uint32_t)((live[i] & 0xffffffffu) - 1) / ID_SLOTS_PER_PAGE == top;
    bool kept = in_top == ID_USABLE_PER_PAGE && t->npages == top + 2;
    return top + 1 + kept;
}

/* A table that grew gives its top pages back as they empty. */
static void test_pages_given_back(void **state)
{
    (void)state;
    struct id_table t;
    enum { N = 5 * ID_USABLE_PER_PAGE };
    static uint64_t ids[N];
    int x;
    assert_int_equal(idt_init(&t, 16, &provider), 0);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(idt_alloc(&t, &x, 1, &ids[i]), 0);
    assert_int_equal(t.npages, 5);
    assert_int_equal(pages_out, 6); /* and the directory */
    /* Freeing the lowest pages first gives nothing back: their IDs are
     * names that cannot move. */
    for (unsigned i = 0; i < 2 * ID_USABLE_PER_PAGE; i++)
        idt_free(&t, ids[i]);
    assert_int_equal(t.npages, 5);
    /* The empty top page stays while the page below it is full... */
    for (unsigned i = 4 * ID_USABLE_PER_PAGE; i < N; i++)
        idt_free(&t, ids[i]);
    assert_int_equal(t.npages, 5);
    /* ...and goes as soon as that page has room. */
    idt_free(&t, ids[3 * ID_USABLE_PER_PAGE]);
    assert_int_equal(t.npages, 4);
    assert_int_equal(pages_out, 5);
    /* New IDs go to the lowest pages, not the highest. */
    uint64_t low;
    assert_int_equal(idt_alloc(&t, &x, 1, &low), 0);
    assert_true(((low & 0xffffffffu) - 1) / ID_SLOTS_PER_PAGE == 0);
    idt_free(&t, low);
    for (unsigned i = 2 * ID_USABLE_PER_PAGE + 0; i < 4 * ID_USABLE_PER_PAGE; i++)
        if (i != 3 * ID_USABLE_PER_PAGE)
            idt_free(&t, ids[i]);
    assert_int_equal(t.npages, 0);
    assert_int_equal(pages_out, 1);
    assert_int_equal(t.used, 0);
    idt_destroy(&t);
}

/* At the edge of a full page, an allocation and a free do not take and
 * give a page each time: the empty page above a full one stays, and goes
 * once the page below it has room again. */
static void test_edge_page_kept(void **state)
{
    (void)state;
    struct id_table t;
    static uint64_t ids[ID_USABLE_PER_PAGE];
    int x;
    uint64_t edge;
    assert_int_equal(idt_init(&t, 4, &provider), 0);
    for (unsigned i = 0; i < ID_USABLE_PER_PAGE; i++)
        assert_int_equal(idt_alloc(&t, &x, 1, &ids[i]), 0);
    for (unsigned round = 0; round < 3; round++) {
        assert_int_equal(idt_alloc(&t, &x, 1, &edge), 0);
        assert_int_equal(t.npages, 2);
        idt_free(&t, edge);
        assert_int_equal(t.npages, 2); /* kept */
    }
    idt_free(&t, ids[7]);
    assert_int_equal(t.npages, 1); /* room below: given back */
    for (unsigned i = 0; i < ID_USABLE_PER_PAGE; i++)
        if (i != 7)
            idt_free(&t, ids[i]);
    assert_int_equal(t.npages, 0);
    idt_destroy(&t);
}

/* An ID from a page that was given back never names an object in the page
 * that later takes its place. */
static void test_stale_ids_after_regrowth(void **state)
{
    (void)state;
    struct id_table t;
    enum { N = 2 * ID_USABLE_PER_PAGE };
    static uint64_t first[N], second[N];
    int x, y;
    assert_int_equal(idt_init(&t, 4, &provider), 0);
    /* Churn the second page's slots so their generations run ahead. */
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(idt_alloc(&t, &x, 1, &first[i]), 0);
    for (unsigned round = 0; round < 5; round++)
        for (unsigned i = ID_USABLE_PER_PAGE; i < N; i++) {
            idt_free(&t, first[i]);
            assert_int_equal(idt_alloc(&t, &x, 1, &first[i]), 0);
        }
    static uint64_t all_second_page[6 * ID_USABLE_PER_PAGE];
    unsigned nstale = 0;
    for (unsigned i = ID_USABLE_PER_PAGE; i < N; i++)
        all_second_page[nstale++] = first[i];
    for (unsigned i = 0; i < N; i++)
        idt_free(&t, first[i]);
    assert_int_equal(t.npages, 0);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(idt_alloc(&t, &y, 2, &second[i]), 0);
    for (unsigned i = 0; i < nstale; i++)
        assert_null(idt_slot(&t, all_second_page[i]));
    for (unsigned i = 0; i < N; i++) {
        assert_null(idt_slot(&t, first[i]));
        assert_non_null(idt_slot(&t, second[i]));
    }
    for (unsigned i = 0; i < N; i++)
        idt_free(&t, second[i]);
    idt_destroy(&t);
}

/* A page with a slot far on in generations is not given back: the floor
 * it would leave would start every regrown slot close to wrapping round to
 * the IDs it issued before (a slot at 2^32 - 1 would have made the floor
 * the top, and a regrown slot would come round to generation 1 after two
 * frees). A page below that mark is given back, and its generations carry
 * over. */
static void test_old_generations_keep_their_page(void **state)
{
    (void)state;
    struct id_table t;
    static uint64_t low[ID_USABLE_PER_PAGE];
    int x;
    uint64_t a, b, c, d;
    assert_int_equal(idt_init(&t, 4, &provider), 0);
    for (unsigned i = 0; i < ID_USABLE_PER_PAGE; i++)
        assert_int_equal(idt_alloc(&t, &x, 1, &low[i]), 0);
    /* A slot of page 1 one free short of the mark: given back. */
    assert_int_equal(idt_alloc(&t, &x, 1, &a), 0);
    uint32_t slot = (uint32_t)a - 1;
    idt_slot_at(&t, slot)->generation = ID_GENERATION_KEEP - 2;
    idt_free(&t, ((uint64_t)(ID_GENERATION_KEEP - 2) << 32) | (slot + 1));
    idt_free(&t, low[0]);
    assert_int_equal(t.npages, 1);
    assert_int_equal(t.generation_floor, ID_GENERATION_KEEP - 1);
    assert_int_equal(idt_alloc(&t, &x, 1, &low[0]), 0);
    /* Regrown: every slot starts at the floor. */
    assert_int_equal(idt_alloc(&t, &x, 1, &b), 0);
    assert_int_equal(b >> 32, ID_GENERATION_KEEP - 1);
    /* A slot past the mark: its page stays, however empty. */
    idt_slot_at(&t, (uint32_t)b - 1)->generation = UINT32_MAX - 1;
    idt_free(&t, ((uint64_t)(UINT32_MAX - 1) << 32) | (uint32_t)b);
    idt_free(&t, low[0]);
    assert_int_equal(t.npages, 2);
    assert_true(t.generation_floor < ID_GENERATION_KEEP);
    /* Another slot of the kept page, freed twice: its IDs are new. */
    assert_int_equal(idt_alloc(&t, &x, 1, &low[0]), 0);
    assert_int_equal(idt_alloc(&t, &x, 1, &c), 0);
    uint64_t first_c = c;
    idt_free(&t, c);
    assert_int_equal(idt_alloc(&t, &x, 1, &d), 0);
    idt_free(&t, d);
    assert_int_equal(idt_alloc(&t, &x, 1, &c), 0);
    assert_null(idt_slot(&t, first_c));
    assert_null(idt_slot(&t, d));
    idt_free(&t, c);
    for (unsigned i = 0; i < ID_USABLE_PER_PAGE; i++)
        idt_free(&t, low[i]);
    idt_destroy(&t);
}

/* Random allocations and frees against a model of live IDs. */
static void test_random_against_model(void **state)
{
    (void)state;
    test_rng_seed(1);
    struct id_table t;
    enum { N = 3000 };
    static uint64_t live[N], dead[N];
    static int objects[N];
    unsigned nlive = 0, ndead = 0;
    assert_int_equal(idt_init(&t, 16, &provider), 0);
    for (unsigned step = 0; step < 200000; step++) {
        uint64_t r = test_rnd();
        /* Phases of growth and of shrinking, so pages come and go. */
        bool growing = (step / 20000) % 2 == 0;
        bool alloc = nlive == 0 || (nlive < N && (growing ? r % 3 != 0 : r % 3 == 0));
        if (alloc) {
            uint64_t id;
            int err = idt_alloc(&t, &objects[nlive], (uint32_t)(r >> 40) | 1, &id);
            if (err) {
                assert_int_equal(t.used, 16 * ID_USABLE_PER_PAGE);
                continue;
            }
            live[nlive++] = id;
        } else if (nlive) {
            unsigned i = (unsigned)(r >> 8) % nlive;
            assert_non_null(idt_free(&t, live[i]));
            dead[ndead++ % N] = live[i];
            live[i] = live[--nlive];
        }
        if (step % 997 == 0) {
            for (unsigned i = 0; i < nlive; i++)
                assert_non_null(idt_slot(&t, live[i]));
            for (unsigned i = 0; i < (ndead < N ? ndead : N); i++)
                assert_null(idt_slot(&t, dead[i]));
            assert_int_equal(t.used, nlive);
            assert_int_equal(t.npages, pages_needed(live, nlive, &t));
            assert_int_equal(pages_out, t.npages + 1);
        }
    }
    idt_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_alloc_lookup_free, reset, all_pages_back),
        cmocka_unit_test_setup_teardown(test_made_up_ids, reset, all_pages_back),
        cmocka_unit_test_setup_teardown(test_full_and_dry, reset, all_pages_back),
        cmocka_unit_test_setup_teardown(test_iteration_with_frees, reset, all_pages_back),
        cmocka_unit_test_setup_teardown(test_pages_given_back, reset, all_pages_back),
        cmocka_unit_test_setup_teardown(test_edge_page_kept, reset, all_pages_back),
        cmocka_unit_test_setup_teardown(test_stale_ids_after_regrowth, reset, all_pages_back),
        cmocka_unit_test_setup_teardown(test_old_generations_keep_their_page, reset, all_pages_back),
        cmocka_unit_test_setup_teardown(test_random_against_model, reset, all_pages_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
