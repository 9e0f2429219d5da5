/*
 * Host tests of common/string.c. The file is compiled twice into this test
 * under other names (r_*: x86-64 rep-string code, p_*: portable code) and
 * every function is compared with glibc on many sizes, alignments and
 * overlaps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define IMPL_DECLS(p)                                                                                                  \
    void *p##_memcpy(void *restrict, const void *restrict, size_t);                                                    \
    void *p##_memmove(void *, const void *, size_t);                                                                   \
    void *p##_memset(void *, int, size_t);                                                                             \
    int p##_memcmp(const void *, const void *, size_t);                                                                \
    size_t p##_strlen(const char *);                                                                                   \
    size_t p##_strnlen(const char *, size_t);                                                                          \
    int p##_strcmp(const char *, const char *);                                                                        \
    int p##_strncmp(const char *, const char *, size_t);                                                               \
    char *p##_strchr(const char *, int);                                                                               \
    char *p##_strrchr(const char *, int);                                                                              \
    char *p##_strstr(const char *, const char *);                                                                      \
    size_t p##_strlcpy(char *restrict, const char *restrict, size_t);
IMPL_DECLS(r)
IMPL_DECLS(p)

struct impl {
    const char *name;
    void *(*memcpy)(void *restrict, const void *restrict, size_t);
    void *(*memmove)(void *, const void *, size_t);
    void *(*memset)(void *, int, size_t);
    int (*memcmp)(const void *, const void *, size_t);
    size_t (*strlen)(const char *);
    size_t (*strnlen)(const char *, size_t);
    int (*strcmp)(const char *, const char *);
    int (*strncmp)(const char *, const char *, size_t);
    char *(*strchr)(const char *, int);
    char *(*strrchr)(const char *, int);
    char *(*strstr)(const char *, const char *);
    size_t (*strlcpy)(char *restrict, const char *restrict, size_t);
};

#define IMPL(p)                                                                                                        \
    {                                                                                                                  \
#p, p##_memcpy, p##_memmove, p##_memset, p##_memcmp, p##_strlen, p##_strnlen, p##_strcmp, p##_strncmp,         \
            p##_strchr, p##_strrchr, p##_strstr, p##_strlcpy                                                           \
    }
static const struct impl impls[] = { IMPL(r), IMPL(p) };
#define NIMPLS (sizeof impls / sizeof impls[0])

#define BUF 300

static void fill_pattern(unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 131 + seed * 7 + 1);
}

static int sign(int v) { return (v > 0) - (v < 0); }

static void test_memcpy_memset(void **state)
{
    (void)state;
    for (size_t k = 0; k < NIMPLS; k++) {
        const struct impl *f = &impls[k];
        for (size_t soff = 0; soff < 9; soff++)
            for (size_t doff = 0; doff < 9; doff++)
                for (size_t n = 0; n < 200; n += (n < 40 ? 1 : 13)) {
                    unsigned char src[BUF], got[BUF], want[BUF];
                    fill_pattern(src, BUF, (unsigned)n);
                    memset(got, 0xee, BUF);
                    memset(want, 0xee, BUF);
                    assert_ptr_equal(f->memcpy(got + doff, src + soff, n), got + doff);
                    memcpy(want + doff, src + soff, n);
                    assert_memory_equal(got, want, BUF);

                    assert_ptr_equal(f->memset(got + doff, (int)(0x100 + n), n), got + doff);
                    memset(want + doff, (int)(0x100 + n), n);
                    assert_memory_equal(got, want, BUF);
                }
    }
}

static void test_memmove_overlap(void **state)
{
    (void)state;
    for (size_t k = 0; k < NIMPLS; k++) {
        const struct impl *f = &impls[k];
        for (size_t soff = 0; soff < 40; soff++)
            for (size_t doff = 0; doff < 40; doff++)
                for (size_t n = 0; n < 120; n += (n < 20 ? 1 : 7)) {
                    unsigned char got[BUF], want[BUF];
                    fill_pattern(got, BUF, (unsigned)(soff + doff));
                    memcpy(want, got, BUF);
                    assert_ptr_equal(f->memmove(got + doff, got + soff, n), got + doff);
                    memmove(want + doff, want + soff, n);
                    assert_memory_equal(got, want, BUF);
                }
    }
}

static void test_memcmp(void **state)
{
    (void)state;
    for (size_t k = 0; k < NIMPLS; k++) {
        const struct impl *f = &impls[k];
        for (size_t n = 0; n < 70; n++)
            for (size_t diff = 0; diff <= n; diff++) {
                unsigned char a[80], b[80];
                fill_pattern(a, sizeof a, 3);
                memcpy(b, a, sizeof b);
                if (diff < n)
                    b[diff] = (unsigned char)(a[diff] + (diff & 1 ? 1 : 0x80));
                assert_int_equal(sign(f->memcmp(a, b, n)), sign(memcmp(a, b, n)));
                assert_int_equal(sign(f->memcmp(b, a, n)), sign(memcmp(b, a, n)));
            }
    }
}

static const char *const words[] = {
    "",
    "a",
    "b",
    "ab",
    "abc",
    "abd",
    "abcdefghijklmnopqrstuvwxyz",
    "\x80",
    "\xff\x01",
    "aaaaaaaaab",
    "aab",
    "aaaaaaaaaaaaaaaaab",
    "hello world",
    "world",
    "o w",
    "Z",
};
#define NWORDS (sizeof words / sizeof words[0])

static void test_str_compare_and_search(void **state)
{
    (void)state;
    for (size_t k = 0; k < NIMPLS; k++) {
        const struct impl *f = &impls[k];
        for (size_t i = 0; i < NWORDS; i++) {
            const char *a = words[i];
            assert_int_equal(f->strlen(a), strlen(a));
            for (size_t m = 0; m < 30; m++)
                assert_int_equal(f->strnlen(a, m), strnlen(a, m));
            for (int c = 0; c < 256; c++) {
                assert_ptr_equal(f->strchr(a, c), strchr(a, c));
                assert_ptr_equal(f->strrchr(a, c), strrchr(a, c));
            }
            assert_ptr_equal(f->strchr(a, 0x100 + 'a'), strchr(a, 0x100 + 'a'));
            for (size_t j = 0; j < NWORDS; j++) {
                const char *b = words[j];
                assert_int_equal(sign(f->strcmp(a, b)), sign(strcmp(a, b)));
                for (size_t m = 0; m < 20; m++)
                    assert_int_equal(sign(f->strncmp(a, b, m)), sign(strncmp(a, b, m)));
                assert_ptr_equal(f->strstr(a, b), strstr(a, b));
            }
        }
    }
}

static void test_strnlen_stops_at_limit(void **state)
{
    (void)state;
    /* Not NUL-terminated: strnlen must not look past the limit (ASan). */
    char *buf = malloc(5);
    assert_non_null(buf);
    memcpy(buf, "abcde", 5);
    for (size_t k = 0; k < NIMPLS; k++)
        assert_int_equal(impls[k].strnlen(buf, 5), 5);
    free(buf);
}

static void test_strlcpy(void **state)
{
    (void)state;
    for (size_t k = 0; k < NIMPLS; k++) {
        const struct impl *f = &impls[k];
        char dst[16];
        memset(dst, 'x', sizeof dst);
        assert_int_equal(f->strlcpy(dst, "hello", 0), 5);
        assert_int_equal(dst[0], 'x');
        assert_int_equal(f->strlcpy(dst, "hello", 1), 5);
        assert_string_equal(dst, "");
        assert_int_equal(f->strlcpy(dst, "hello", 3), 5);
        assert_string_equal(dst, "he");
        assert_int_equal(f->strlcpy(dst, "hello", 6), 5);
        assert_string_equal(dst, "hello");
        assert_int_equal(f->strlcpy(dst, "hello", sizeof dst), 5);
        assert_string_equal(dst, "hello");
        assert_int_equal(dst[6], 'x');
        assert_int_equal(f->strlcpy(dst, "", sizeof dst), 0);
        assert_string_equal(dst, "");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memcpy_memset),
        cmocka_unit_test(test_memmove_overlap),
        cmocka_unit_test(test_memcmp),
        cmocka_unit_test(test_str_compare_and_search),
        cmocka_unit_test(test_strnlen_stops_at_limit),
        cmocka_unit_test(test_strlcpy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
