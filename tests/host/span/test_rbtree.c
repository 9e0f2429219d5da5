/*
 * Host test of common/rbtree.c: random inserts and erases checked against a
 * sorted array, with the red-black shape and an augmented subtree sum
 * validated after every operation, rb_lower_bound against a walk in key
 * order, and rb_link_beside's placement.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <common/rbtree.h>

#include "span_testlib.h"

struct item {
    struct rb_node link;
    uint64_t key;
    uint64_t sum; /* augmented: sum of keys in the subtree */
    int in_tree;
};

static uint64_t sum_of(const struct rb_node *r) { return r ? RB_ENTRY(r, struct item, link)->sum : 0; }

static bool augment(struct rb_node *r)
{
    struct item *it = RB_ENTRY(r, struct item, link);
    uint64_t sum = it->key + sum_of(r->left) + sum_of(r->right);
    bool changed = sum != it->sum;

    it->sum = sum;
    return changed;
}

static uint64_t check_sums(const struct rb_node *r)
{
    uint64_t s;

    if (r == NULL)
        return 0;
    s = RB_ENTRY(r, struct item, link)->key + check_sums(r->left) + check_sums(r->right);
    assert_int_equal(s, sum_of(r));
    return s;
}

static bool key_at_or_after(const struct rb_node *r, const void *key)
{
    return RB_ENTRY(r, const struct item, link)->key >= *(const uint64_t *)key;
}

/* rb_lower_bound must give the first node, in key order, whose key is at
 * least key: the same node a walk from rb_first stops at. */
static void check_lower_bound(const struct rb_tree *t, uint64_t key)
{
    const struct rb_node *walk = rb_first(t);

    while (walk != NULL && RB_ENTRY(walk, const struct item, link)->key < key)
        walk = rb_next(walk);
    assert_ptr_equal(rb_lower_bound(t, key_at_or_after, &key), walk);
}

static void insert(struct rb_tree *t, struct item *it)
{
    struct rb_node **link = &t->root, *parent = NULL;

    while (*link) {
        parent = *link;
        link = it->key < RB_ENTRY(parent, struct item, link)->key ? &parent->left : &parent->right;
    }
    rb_insert(t, &it->link, parent, link);
    it->in_tree = 1;
}

static void test_random_ops(void **state)
{
    enum { N = 2000 };
    static struct item items[N];
    struct rb_tree t;
    uint64_t rng = 42, expect_sum = 0;
    long count = 0;
    int i, op;

    (void)state;
    rb_init(&t, augment);
    assert_null(rb_first(&t));
    for (i = 0; i < N; i++)
        items[i].key = test_rand(&rng) % 5000;
    for (op = 0; op < 30000; op++) {
        struct item *it = &items[test_rand(&rng) % N];
        if (it->in_tree) {
            rb_erase(&t, &it->link);
            it->in_tree = 0;
            expect_sum -= it->key;
            count--;
        } else {
            insert(&t, it);
            expect_sum += it->key;
            count++;
        }
        if (op % 97 == 0 || op < 200) {
            const struct rb_node *r;
            uint64_t prev = 0;
            long seen = 0;
            assert_int_equal(rb_validate(&t), count);
            assert_int_equal(check_sums(t.root), expect_sum);
            for (r = rb_first(&t); r; r = rb_next(r), seen++) {
                uint64_t k = RB_ENTRY(r, struct item, link)->key;
                assert_true(k >= prev);
                prev = k;
            }
            assert_int_equal(seen, count);
            for (r = rb_last(&t), seen = 0; r; r = rb_prev(r))
                seen++;
            assert_int_equal(seen, count);
            check_lower_bound(&t, test_rand(&rng) % 5100);
            check_lower_bound(&t, 0);
            check_lower_bound(&t, 5000); /* beyond every key: NULL */
        }
    }
}

/* rb_link_beside: a node linked beside p sits right after (or before) it
 * in order, and the tree stays a valid red-black tree. Keys 10 apart leave
 * room for one neighbour on each side of every node. */
static void test_link_beside(void **state)
{
    enum { N = 600 };
    static struct item items[N], beside[2 * N];
    struct rb_tree t;
    uint64_t rng = 7;
    int i, used = 0;

    (void)state;
    rb_init(&t, augment);
    for (i = 0; i < N; i++) {
        items[i].key = 10 * (uint64_t)(test_rand(&rng) % 100000) + 10 * (uint64_t)i * 100000 + 5;
        insert(&t, &items[i]);
    }
    for (i = 0; i < N; i++) {
        for (int side = 0; side < 2; side++) {
            struct item *p = &items[test_rand(&rng) % N], *it = &beside[used++];
            bool after = side == 1;
            struct rb_node *parent, **link;
            /* p's own neighbour on that side, if one was added already,
             * lies between: link beside that one instead. */
            struct rb_node *near = after ? rb_next(&p->link) : rb_prev(&p->link);
            uint64_t near_key = near ? RB_ENTRY(near, struct item, link)->key : 0;
            bool taken = near && (after ? near_key == p->key + 1 : near_key == p->key - 1);
            if (taken) {
                used--;
                continue;
            }
            it->key = after ? p->key + 1 : p->key - 1;
            rb_link_beside(&p->link, after, &parent, &link);
            rb_insert(&t, &it->link, parent, link);
            it->in_tree = 1;
            assert_ptr_equal(after ? rb_next(&p->link) : rb_prev(&p->link), &it->link);
        }
        if (i % 50 == 0) {
            const struct rb_node *r;
            uint64_t prev = 0;
            assert_int_equal(rb_validate(&t), N + used);
            check_sums(t.root);
            for (r = rb_first(&t); r; r = rb_next(r)) {
                assert_true(RB_ENTRY(r, struct item, link)->key > prev);
                prev = RB_ENTRY(r, struct item, link)->key;
            }
        }
    }
    assert_int_equal(rb_validate(&t), N + used);
}

static void test_broken_shape_detected(void **state)
{
    struct item a = { .key = 1 }, b = { .key = 2 };
    struct rb_tree t;

    (void)state;
    rb_init(&t, NULL);
    insert(&t, &a);
    insert(&t, &b);
    assert_int_equal(rb_validate(&t), 2);
    b.link.parent_colour |= 1; /* a black leaf under a black root: heights differ */
    assert_int_equal(rb_validate(&t), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_ops),
        cmocka_unit_test(test_link_beside),
        cmocka_unit_test(test_broken_shape_detected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
