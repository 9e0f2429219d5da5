/*
 * Host tests of the kernel's account tree (kernel/core/account.c): charges
 * go up the whole path, a limit anywhere on it refuses them, nothing
 * changes on a refusal, and accounts are released bottom-up when their last
 * reference goes. A seeded random run of charges, limits and uncharges
 * against a brute-force model (every account's use is the sum of what was
 * charged in its subtree) closes it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <abi/errno.h>
#include <kernel/account.h>
#include <kernel/console.h>
#include "../common/test_rng.h"

void panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fail_msg("kernel panic");
    abort();
}

static unsigned released;
static void release(struct account *a)
{
    (void)a;
    released++;
}

static void test_charges_go_up_the_path(void **state)
{
    (void)state;
    struct account root, parent, child, sibling;
    account_init(&root, 0);
    account_init(&parent, &root);
    account_init(&child, &parent);
    account_init(&sibling, &root);
    assert_true(root.root);
    assert_false(child.root);
    assert_int_equal(account_charge(&child, RES_MEMORY, 100), 0);
    assert_int_equal(child.used[RES_MEMORY], 100);
    assert_int_equal(parent.used[RES_MEMORY], 100);
    assert_int_equal(root.used[RES_MEMORY], 100);
    assert_int_equal(sibling.used[RES_MEMORY], 0);
    account_uncharge(&child, RES_MEMORY, 100);
    assert_int_equal(root.used[RES_MEMORY], 0);
    /* Each resource on its own. */
    assert_int_equal(account_charge(&child, RES_THREADS, 3), 0);
    assert_int_equal(parent.used[RES_THREADS], 3);
    assert_int_equal(parent.used[RES_MEMORY], 0);
    account_uncharge(&child, RES_THREADS, 3);
}

static void test_ancestor_limit_bounds_subtree(void **state)
{
    (void)state;
    struct account root, parent, a, b;
    account_init(&root, 0);
    account_init(&parent, &root);
    account_init(&a, &parent);
    account_init(&b, &parent);
    assert_int_equal(account_set_limit(&parent, RES_MEMORY, 1000), 0);
    /* Two children share the parent's limit: neither escapes it. */
    assert_int_equal(account_charge(&a, RES_MEMORY, 600), 0);
    assert_int_equal(account_charge(&b, RES_MEMORY, 500), -EDQUOT);
    assert_int_equal(b.used[RES_MEMORY], 0);
    assert_int_equal(parent.used[RES_MEMORY], 600); /* the refusal changed nothing */
    assert_int_equal(root.used[RES_MEMORY], 600);
    assert_int_equal(account_charge(&b, RES_MEMORY, 400), 0);
    assert_int_equal(account_room(&a, RES_MEMORY), 0);
    assert_int_equal(account_charge(&a, RES_MEMORY, 1), -EDQUOT);
    assert_false(account_fits(&b, RES_MEMORY, 1));
    /* The child's own limit counts too, whichever is tighter. */
    assert_int_equal(account_set_limit(&a, RES_PROCESSES, 2), 0);
    assert_int_equal(account_charge(&a, RES_PROCESSES, 2), 0);
    assert_int_equal(account_charge(&a, RES_PROCESSES, 1), -EDQUOT);
    assert_int_equal(account_charge(&b, RES_PROCESSES, 5), 0);
    /* A limit lowered below use refuses new charges only. */
    assert_int_equal(account_set_limit(&parent, RES_MEMORY, 10), 0);
    assert_int_equal(parent.used[RES_MEMORY], 1000);
    assert_int_equal(account_charge(&a, RES_MEMORY, 1), -EDQUOT);
    account_uncharge(&a, RES_MEMORY, 600);
    assert_int_equal(account_charge(&a, RES_MEMORY, 1), -EDQUOT); /* 400 still above 10 */
    /* Forced charges pass any limit (what the holder did not ask for). */
    account_charge_force(&a, RES_MEMORY, 7);
    assert_int_equal(parent.used[RES_MEMORY], 407);
    /* Refused two levels up: what the walk added below is taken back. */
    assert_int_equal(account_set_limit(&parent, RES_MEMORY, ACCOUNT_NO_LIMIT), 0);
    assert_int_equal(account_set_limit(&root, RES_MEMORY, 400), 0);
    assert_int_equal(account_charge(&a, RES_MEMORY, 1), -EDQUOT);
    assert_int_equal(a.used[RES_MEMORY], 7);
    assert_int_equal(parent.used[RES_MEMORY], 407);
    assert_int_equal(root.used[RES_MEMORY], 407);
    assert_int_equal(account_set_limit(&a, RES_COUNT, 1), -EINVAL);
    assert_int_equal(account_charge(&a, RES_COUNT, 1), -EDQUOT);
}

static void test_overflow_refused(void **state)
{
    (void)state;
    struct account root, a;
    account_init(&root, 0);
    account_init(&a, &root);
    assert_int_equal(account_charge(&a, RES_KMEM, UINT64_MAX - 10), 0);
    assert_int_equal(account_charge(&a, RES_KMEM, 11), -EDQUOT); /* would wrap */
    assert_int_equal(account_charge(&a, RES_KMEM, 10), 0);
}

/* Two resources in one walk (a segment's bytes and its object): a refusal
 * of either, at any level, leaves both as they were on the whole path. */
static void test_charge_both(void **state)
{
    (void)state;
    struct account root, parent, a;
    account_init(&root, 0);
    account_init(&parent, &root);
    account_init(&a, &parent);
    assert_int_equal(account_charge_both(&a, RES_MEMORY, 4096, RES_KMEM, 184), 0);
    assert_int_equal(root.used[RES_MEMORY], 4096);
    assert_int_equal(root.used[RES_KMEM], 184);
    assert_int_equal(account_set_limit(&root, RES_KMEM, 300), 0); /* the second refused two levels up */
    assert_int_equal(account_charge_both(&a, RES_MEMORY, 4096, RES_KMEM, 184), -EDQUOT);
    assert_int_equal(account_set_limit(&parent, RES_MEMORY, 5000), 0); /* the first refused one level up */
    assert_int_equal(account_charge_both(&a, RES_MEMORY, 4096, RES_KMEM, 1), -EDQUOT);
    for (struct account *x = &a; x; x = x->parent) {
        assert_int_equal(x->used[RES_MEMORY], 4096);
        assert_int_equal(x->used[RES_KMEM], 184);
    }
    assert_int_equal(account_charge_both(&a, RES_MEMORY, 1, RES_MEMORY, 1), -EDQUOT); /* one resource twice */
    assert_int_equal(account_charge_both(&a, RES_COUNT, 1, RES_KMEM, 1), -EDQUOT);
    assert_int_equal(account_charge_both(&a, RES_MEMORY, 1, RES_KMEM, UINT64_MAX), -EDQUOT); /* would wrap */
    assert_int_equal(a.used[RES_MEMORY], 4096);
    account_uncharge_both(&a, RES_MEMORY, 4096, RES_KMEM, 184);
    for (struct account *x = &a; x; x = x->parent) {
        assert_int_equal(x->used[RES_MEMORY], 0);
        assert_int_equal(x->used[RES_KMEM], 0);
    }
}

static void test_release_bottom_up(void **state)
{
    (void)state;
    struct account root, parent, child;
    released = 0;
    account_init(&root, 0);
    account_init(&parent, &root);
    account_init(&child, &parent);
    assert_int_equal(parent.refs, 2); /* its process and the child */
    account_get(&child);              /* a segment charged to it */
    account_put(&child, release);     /* its process ends */
    assert_int_equal(released, 0);
    account_put(&parent, release); /* the parent's process ends */
    assert_int_equal(released, 0); /* the child still holds it */
    account_put(&child, release);  /* the segment goes */
    assert_int_equal(released, 2); /* child, then parent */
    assert_int_equal(root.refs, 1);
}

/* Random charges, uncharges and limits over a tree of 12 accounts, checked
 * against a model that recomputes every subtree's use from the charges. */
static void test_random_against_model(void **state)
{
    (void)state;
    enum { N = 12, R = RES_COUNT };
    struct account acc[N];
    int parent[N];
    uint64_t direct[N][R];
    memset(direct, 0, sizeof(direct));
    test_rng_seed(7);
    account_init(&acc[0], 0);
    parent[0] = -1;
    for (int i = 1; i < N; i++) {
        parent[i] = (int)(test_rnd() % (uint64_t)i);
        account_init(&acc[i], &acc[parent[i]]);
    }
    for (unsigned step = 0; step < 100000; step++) {
        uint64_t r = test_rnd();
        int i = (int)(r % N);
        enum abi_resource res = (enum abi_resource)((r >> 8) % R);
        uint64_t n = (r >> 16) % 64;
        if ((r >> 32) % 10 == 0) {
            account_set_limit(&acc[i], res, (r >> 40) % 2 ? ACCOUNT_NO_LIMIT : (r >> 42) % 400);
        } else if ((r >> 32) % 2) {
            bool fits = true;
            for (int x = i; x >= 0; x = parent[x]) {
                uint64_t sub = 0;
                for (int y = 0; y < N; y++)
                    for (int z = y; z >= 0; z = parent[z])
                        if (z == x)
                            sub += direct[y][res];
                fits &= sub + n <= acc[x].limit[res];
            }
            int err = account_charge(&acc[i], res, n);
            assert_int_equal(err, fits ? 0 : -EDQUOT);
            if (!err)
                direct[i][res] += n;
        } else if (direct[i][res] >= n) {
            account_uncharge(&acc[i], res, n);
            direct[i][res] -= n;
        }
        for (int x = 0; x < N; x++) {
            uint64_t sub = 0;
            for (int y = 0; y < N; y++)
                for (int z = y; z >= 0; z = parent[z])
                    if (z == x)
                        sub += direct[y][res];
            assert_int_equal(acc[x].used[res], sub);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_charges_go_up_the_path), cmocka_unit_test(test_ancestor_limit_bounds_subtree),
        cmocka_unit_test(test_overflow_refused),       cmocka_unit_test(test_release_bottom_up),
        cmocka_unit_test(test_random_against_model),   cmocka_unit_test(test_charge_both),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
