/*
 * Host tests for the name service's rules (servers/names/rules.c): which
 * names are well formed, which names a registrar allows, and their order.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <proto/names.h>
#include "rules.h"

static bool valid(const char *s) { return names_valid(s, strlen(s)); }
static bool allowed(const char *allow, const char *name)
{
    return names_allowed(allow, strlen(allow), name, strlen(name));
}

static void test_valid_names(void **state)
{
    (void)state;
    const char *good[] = { "a",
                           "kvstore",
                           "t_kv",
                           "test.names.a",
                           "a-b.c_d.e9",
                           "x.y.z",
                           "abcdefghijklmnopqrstuvwxyz012345" /* 32 */ };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(valid(good[i]));
}

static void test_malformed_names(void **state)
{
    (void)state;
    const char *bad[] = { "",     ".",    "a.",          ".a",
                          "a..b", "A",    "kvStore",     "9a",
                          "_a",   "-a",   "a.9",         "a b",
                          "a/b",  "a\tb", "caf\xc3\xa9", "abcdefghijklmnopqrstuvwxyz0123456" /* 33 */ };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(valid(bad[i]));
    /* Length is the caller's: a NUL inside the length is a bad byte. */
    assert_false(names_valid("ab\0c", 4));
    assert_false(names_valid(NULL, 0));
}

static void test_allowed(void **state)
{
    (void)state;
    assert_true(allowed("kvstore", "kvstore"));
    assert_true(allowed("kvstore", "kvstore.two"));
    assert_true(allowed("kvstore", "kvstore.a.b"));
    assert_false(allowed("kvstore", "kvstore2"));
    assert_false(allowed("kvstore", "kvstor"));
    assert_false(allowed("kvstore", "memsrv"));
    assert_false(allowed("test.names", "test"));
    assert_false(allowed("test.names", "test.namesake"));
    assert_true(allowed("", "memsrv")); /* the root */
    assert_false(allowed("", "Bad"));   /* the root still needs a valid name */
    assert_false(allowed("kvstore", "kvstore."));
}

static void test_compare(void **state)
{
    (void)state;
    assert_int_equal(names_compare("a", 1, "a", 1), 0);
    assert_true(names_compare("a", 1, "b", 1) < 0);
    assert_true(names_compare("kvstore", 7, "kvstore.two", 11) < 0);
    assert_true(names_compare("kvstore.two", 11, "kvstore", 7) > 0);
    assert_true(names_compare("", 0, "a", 1) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_names),
        cmocka_unit_test(test_malformed_names),
        cmocka_unit_test(test_allowed),
        cmocka_unit_test(test_compare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
