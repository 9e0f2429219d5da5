/* Host tests of common/cmdline.c: lookups, numbers, sizes and lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <abi/errno.h>
#include <common/cmdline.h>

static const char *const line = "test=all seed=42 bench=ipc,memsrv memsrv.policy=topheap quiet  mem=0x1000\tsize=64M "
                                "empty= last";

static void expect_arg(const char *cl, const char *key, const char *want)
{
    const char *v = NULL;
    size_t len = 99;
    assert_true(cmdline_get(cl, key, &v, &len));
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
}

static void test_get(void **state)
{
    (void)state;
    expect_arg(line, "test", "all");
    expect_arg(line, "seed", "42");
    expect_arg(line, "bench", "ipc,memsrv");
    expect_arg(line, "memsrv.policy", "topheap");
    expect_arg(line, "quiet", "");
    expect_arg(line, "mem", "0x1000");
    expect_arg(line, "size", "64M");
    expect_arg(line, "empty", "");
    expect_arg(line, "last", "");

    const char *v;
    size_t len;
    assert_true(cmdline_get(line, "quiet", &v, &len));
    assert_string_equal(v, "");
    assert_false(cmdline_get(line, "tes", &v, &len));    /* prefix of a key */
    assert_false(cmdline_get(line, "memsrv", &v, &len)); /* prefix up to '.' */
    assert_false(cmdline_get(line, "all", &v, &len));    /* a value, not a key */
    assert_false(cmdline_get(line, "quiet2", &v, &len));
    assert_false(cmdline_get(line, "", &v, &len));
    assert_false(cmdline_get("", "test", &v, &len));
    assert_false(cmdline_get(NULL, "test", &v, &len));
    assert_false(cmdline_get("   ", "test", &v, &len));
    assert_true(cmdline_get(line, "quiet", NULL, NULL));

    /* The last occurrence wins. */
    expect_arg("seed=1 seed=2", "seed", "2");
    expect_arg("seed=1 seed", "seed", "");
    expect_arg("  seed=7  ", "seed", "7");
    expect_arg("a=b=c", "a", "b=c");
}

static void test_get_u64(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_true(cmdline_get_u64(line, "seed", &v));
    assert_int_equal(v, 42);
    assert_true(cmdline_get_u64(line, "mem", &v));
    assert_int_equal(v, 0x1000);
    assert_false(cmdline_get_u64(line, "size", &v));
    assert_false(cmdline_get_u64(line, "quiet", &v));
    assert_false(cmdline_get_u64(line, "absent", &v));
    assert_false(cmdline_get_u64("x=18446744073709551616", "x", &v));
    assert_true(cmdline_get_u64("x=18446744073709551615", "x", &v));
    assert_true(v == UINT64_MAX);
}

static int pu(const char *s, uint64_t *out) { return parse_u64(s, strlen(s), out); }

static void test_parse_u64(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(pu("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(pu("007", &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(pu("0xffffffffffffffff", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(pu("0XaBc", &v), 0);
    assert_int_equal(v, 0xabc);
    assert_int_equal(pu("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(pu("18446744073709551616", &v), -ERANGE);
    assert_int_equal(pu("0x10000000000000000", &v), -ERANGE);
    assert_int_equal(pu("99999999999999999999999", &v), -ERANGE);
    assert_int_equal(pu("99999999999999999999999x", &v), -EINVAL);
    assert_int_equal(pu("", &v), -EINVAL);
    assert_int_equal(pu("0x", &v), -EINVAL);
    assert_int_equal(pu("-1", &v), -EINVAL);
    assert_int_equal(pu("+1", &v), -EINVAL);
    assert_int_equal(pu(" 1", &v), -EINVAL);
    assert_int_equal(pu("12a", &v), -EINVAL);
    assert_int_equal(pu("0x1g", &v), -EINVAL);
    /* Only len bytes are read. */
    assert_int_equal(parse_u64("123junk", 3, &v), 0);
    assert_int_equal(v, 123);
}

static int ps(const char *s, uint64_t *out) { return parse_size(s, strlen(s), out); }

static void test_parse_size(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(ps("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(ps("4K", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(ps("64m", &v), 0);
    assert_int_equal(v, 64ull << 20);
    assert_int_equal(ps("5G", &v), 0);
    assert_int_equal(v, 5ull << 30);
    assert_int_equal(ps("2t", &v), 0);
    assert_int_equal(v, 2ull << 40);
    assert_int_equal(ps("0x10M", &v), 0);
    assert_int_equal(v, 16ull << 20);
    assert_int_equal(ps("16777215T", &v), 0);
    assert_int_equal(v, 16777215ull << 40);
    assert_int_equal(ps("16777216T", &v), -ERANGE);
    assert_int_equal(ps("K", &v), -EINVAL);
    assert_int_equal(ps("", &v), -EINVAL);
    assert_int_equal(ps("4KB", &v), -EINVAL);
    assert_int_equal(ps("4 K", &v), -EINVAL);
    assert_int_equal(ps("4X", &v), -EINVAL);
}

static void test_list_next(void **state)
{
    (void)state;
    const char *l = ",ipc,,sched,";
    const char *item;
    size_t item_len, pos = 0;
    const char *want[] = { "", "ipc", "", "sched" };
    for (size_t k = 0; k < 4; k++) {
        assert_true(cmdline_list_next(l, strlen(l), &pos, &item, &item_len));
        assert_true(cmdline_item_is(item, item_len, want[k]));
    }
    assert_false(cmdline_list_next(l, strlen(l), &pos, &item, &item_len)); /* no item after the last comma */
    pos = 0;
    assert_true(cmdline_list_next("ipc,memsrv", 5, &pos, &item, &item_len)); /* only len bytes count */
    assert_true(cmdline_item_is(item, item_len, "ipc"));
    assert_true(cmdline_list_next("ipc,memsrv", 5, &pos, &item, &item_len));
    assert_true(cmdline_item_is(item, item_len, "m"));
    assert_false(cmdline_list_next("ipc,memsrv", 5, &pos, &item, &item_len));
    pos = 0;
    assert_false(cmdline_list_next(NULL, 4, &pos, &item, &item_len));
    assert_false(cmdline_list_next("", 0, &pos, &item, &item_len));
    assert_false(cmdline_item_is("all", 3, "al"));
    assert_false(cmdline_item_is("al", 2, "all"));
}

static void test_list_has(void **state)
{
    (void)state;
    const char *l = "ipc,memsrv,,sched";
    size_t n = strlen(l);
    assert_true(cmdline_list_has(l, n, "ipc"));
    assert_true(cmdline_list_has(l, n, "memsrv"));
    assert_true(cmdline_list_has(l, n, "sched"));
    assert_false(cmdline_list_has(l, n, "mem"));
    assert_false(cmdline_list_has(l, n, "ipc,memsrv"));
    assert_false(cmdline_list_has(l, n, ""));
    assert_false(cmdline_list_has(l, 3, "memsrv")); /* only len bytes count */
    assert_true(cmdline_list_has(l, 3, "ipc"));
    assert_false(cmdline_list_has(l, 2, "ipc"));
    assert_true(cmdline_list_has("all", 3, "anything"));
    assert_true(cmdline_list_has("x,all", 5, "anything"));
    assert_false(cmdline_list_has("alll", 4, "anything"));
    assert_false(cmdline_list_has("", 0, "x"));

    const char *v;
    size_t len;
    assert_true(cmdline_get(line, "bench", &v, &len));
    assert_true(cmdline_list_has(v, len, "memsrv"));
    assert_false(cmdline_list_has(v, len, "quiet"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get),        cmocka_unit_test(test_get_u64),   cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_parse_size), cmocka_unit_test(test_list_next), cmocka_unit_test(test_list_has),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
