/*
 * Host tests of the kernel's handle tables (kernel/core/handle.c) and the
 * rights they carry: a lookup names the rights it needs, a handle that
 * lacks one is -EPERM and one that does not exist (stale, foreign, made
 * up, of another type) is -EBADH; rights only shrink; draining hands each
 * object over with its rights. Pages come from a fake kernel memory charge
 * that can be made to refuse.
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
#include <kernel/console.h>
#include <kernel/handle.h>
#include <kernel/kmem.h>

static unsigned frames_out;
static int refuse; /* nonzero: kmem_frame_alloc fails with it */

int kmem_frame_alloc(struct account *a, void **out)
{
    (void)a;
    if (refuse)
        return refuse;
    *out = calloc(1, 4096);
    frames_out++;
    return 0;
}

void kmem_frame_free(struct account *a, void *frame)
{
    (void)a;
    free(frame);
    frames_out--;
}

void panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fail_msg("kernel panic");
    abort();
}

static void test_rights_checked(void **state)
{
    (void)state;
    struct handle_table t;
    int ep, seg;
    handle_t h_ep, h_seg;
    void *obj;
    rights_t rights;
    assert_int_equal(handle_table_init(&t, 0), 0);
    assert_int_equal(handle_install(&t, &ep, HANDLE_ENDPOINT, RIGHT_SEND | RIGHT_GRANT, &h_ep), 0);
    assert_int_equal(handle_install(&t, &seg, HANDLE_SEGMENT, RIGHT_READ, &h_seg), 0);
    assert_int_equal(handle_get(&t, h_ep, HANDLE_ENDPOINT, RIGHT_SEND, &obj, &rights), 0);
    assert_ptr_equal(obj, &ep);
    assert_int_equal(rights, RIGHT_SEND | RIGHT_GRANT);
    /* Holding it without the right: -EPERM; wrong type or no handle: -EBADH. */
    assert_int_equal(handle_get(&t, h_ep, HANDLE_ENDPOINT, RIGHT_RECV, &obj, 0), -EPERM);
    assert_int_equal(handle_get(&t, h_ep, HANDLE_SEGMENT, 0, &obj, 0), -EBADH);
    assert_int_equal(handle_get(&t, h_seg, HANDLE_SEGMENT, RIGHT_WRITE, &obj, 0), -EPERM);
    assert_int_equal(handle_get(&t, 0, HANDLE_ENDPOINT, 0, &obj, 0), -EBADH);
    assert_int_equal(handle_get(&t, h_ep + (1ull << 32), HANDLE_ENDPOINT, 0, &obj, 0), -EBADH);
    assert_int_equal(handle_get(&t, HANDLE_SELF, HANDLE_ENDPOINT, 0, &obj, 0), -EBADH);
    /* Rights only shrink. */
    handle_restrict(&t, h_ep, RIGHT_SEND | RIGHT_RECV);
    enum handle_type type;
    assert_true(handle_describe(&t, h_ep, &type, &rights));
    assert_int_equal(type, HANDLE_ENDPOINT);
    assert_int_equal(rights, RIGHT_SEND);
    /* Removed: stale from then on, whatever reuses the slot. */
    assert_ptr_equal(handle_remove(&t, h_ep, &type), &ep);
    assert_int_equal(handle_get(&t, h_ep, HANDLE_ENDPOINT, 0, &obj, 0), -EBADH);
    handle_t again;
    assert_int_equal(handle_install(&t, &ep, HANDLE_ENDPOINT, RIGHTS_ENDPOINT, &again), 0);
    assert_int_not_equal(again, h_ep);
    assert_int_equal(handle_get(&t, h_ep, HANDLE_ENDPOINT, 0, &obj, 0), -EBADH);
    handle_remove(&t, again, 0);
    handle_remove(&t, h_seg, 0);
    handle_table_destroy(&t);
    assert_int_equal(frames_out, 0);
}

static void test_reserved_slots(void **state)
{
    (void)state;
    struct handle_table t;
    int x;
    handle_t h;
    void *obj;
    enum handle_type type;
    rights_t rights;
    assert_int_equal(handle_table_init(&t, 0), 0);
    assert_int_equal(handle_install(&t, 0, HANDLE_RESERVED, 0, &h), 0);
    assert_false(handle_describe(&t, h, &type, &rights)); /* not usable yet */
    assert_int_equal(handle_get(&t, h, HANDLE_PROCESS, 0, &obj, 0), -EBADH);
    handle_fill(&t, h, &x, HANDLE_PROCESS, RIGHT_WAIT);
    assert_int_equal(handle_get(&t, h, HANDLE_PROCESS, RIGHT_WAIT, &obj, 0), 0);
    assert_int_equal(handle_get(&t, h, HANDLE_PROCESS, RIGHT_CONTROL, &obj, 0), -EPERM);
    handle_remove(&t, h, 0);
    handle_table_destroy(&t);
}

static unsigned drained;
static rights_t drained_rights;
static void on_drain(void *object, enum handle_type type, rights_t rights)
{
    (void)object;
    (void)type;
    drained++;
    drained_rights |= rights;
}

static void test_growth_refused_and_drain(void **state)
{
    (void)state;
    struct handle_table t;
    int x;
    handle_t h;
    assert_int_equal(handle_table_init(&t, 0), 0);
    for (unsigned i = 0; i < ID_USABLE_PER_PAGE; i++)
        assert_int_equal(handle_install(&t, &x, HANDLE_DEVICE, RIGHT_DMA, &h), 0);
    refuse = -EDQUOT; /* the account is full: the table cannot grow */
    assert_int_equal(handle_install(&t, &x, HANDLE_DEVICE, RIGHT_DMA, &h), -EDQUOT);
    refuse = 0;
    assert_int_equal(handle_install(&t, &x, HANDLE_THREAD, RIGHT_WAIT, &h), 0);
    drained = 0;
    drained_rights = 0;
    handle_table_drain(&t, on_drain);
    assert_int_equal(drained, ID_USABLE_PER_PAGE + 1);
    assert_int_equal(drained_rights, RIGHT_DMA | RIGHT_WAIT);
    handle_table_destroy(&t);
    assert_int_equal(frames_out, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rights_checked),
        cmocka_unit_test(test_reserved_slots),
        cmocka_unit_test(test_growth_refused_and_drain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
