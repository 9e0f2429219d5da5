/*
 * Host tests of common/list.h, the intrusive list the kernel and servers
 * queue their objects on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <common/list.h>

struct item {
    int value;
    struct list_node link;
};

static int values(struct list_node *head, int *out, int max)
{
    int n = 0;
    for (struct list_node *p = head->next; p != head && n < max; p = p->next)
        out[n++] = LIST_ENTRY(p, struct item, link)->value;
    return n;
}

static void test_push_pop_remove(void **state)
{
    (void)state;
    struct list_node head = LIST_HEAD_INIT(head);
    struct item a = { .value = 1 }, b = { .value = 2 }, c = { .value = 3 };
    list_init(&a.link);
    assert_true(list_empty(&head));
    assert_false(list_linked(&a.link));
    assert_null(list_first(&head));
    assert_null(list_pop_front(&head));
    list_push_back(&head, &a.link);
    list_push_back(&head, &b.link);
    list_push_front(&head, &c.link);
    int v[4];
    assert_int_equal(values(&head, v, 4), 3);
    assert_int_equal(v[0], 3);
    assert_int_equal(v[1], 1);
    assert_int_equal(v[2], 2);
    assert_true(list_linked(&a.link));
    list_remove(&a.link);
    assert_false(list_linked(&a.link));
    list_remove(&a.link); /* twice: a no-op */
    assert_int_equal(values(&head, v, 4), 2);
    struct list_node *n = list_pop_front(&head);
    assert_ptr_equal(LIST_ENTRY(n, struct item, link), &c);
    assert_false(list_linked(n));
    assert_ptr_equal(list_first(&head), &b.link);
    list_remove(&b.link);
    assert_true(list_empty(&head));
}

static void test_zeroed_node_is_unlinked(void **state)
{
    (void)state;
    struct item z = { .value = 0 }; /* zeroed, as slab_alloc hands it out */
    assert_false(list_linked(&z.link));
    list_remove(&z.link);
    assert_false(list_linked(&z.link));
}

static void test_iterate_and_remove(void **state)
{
    (void)state;
    struct list_node head = LIST_HEAD_INIT(head);
    struct item items[10];
    for (int i = 0; i < 10; i++) {
        items[i].value = i;
        list_push_back(&head, &items[i].link);
    }
    struct list_node *p, *next;
    int sum = 0;
    LIST_FOR_EACH_SAFE(p, next, &head)
    {
        struct item *it = LIST_ENTRY(p, struct item, link);
        sum += it->value;
        if (it->value % 2)
            list_remove(p);
    }
    assert_int_equal(sum, 45);
    int v[10];
    assert_int_equal(values(&head, v, 10), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(v[i], 2 * i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_pop_remove),
        cmocka_unit_test(test_zeroed_node_is_unlinked),
        cmocka_unit_test(test_iterate_and_remove),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
