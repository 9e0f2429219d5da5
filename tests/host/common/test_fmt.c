/*
 * Host tests of common/fmt.c: fixed cases, then a randomized comparison with
 * glibc's snprintf over flags, widths, precisions, length modifiers and
 * conversions, then the sink batching and snprintf truncation contracts.
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
#include "test_rng.h"
#include <common/fmt.h>

/* Formats with both and compares; the format is a runtime string on purpose. */
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"

static void check(const char *fmt, ...)
{
    char got[512], want[512];
    va_list ap, aq;
    va_start(ap, fmt);
    va_copy(aq, ap);
    int ngot = fmt_vsnprintf(got, sizeof got, fmt, ap);
    int nwant = vsnprintf(want, sizeof want, fmt, aq);
    va_end(aq);
    va_end(ap);
    if (ngot != nwant || strcmp(got, want) != 0)
        fail_msg("format \"%s\": got \"%s\" (%d), glibc \"%s\" (%d)", fmt, got, ngot, want, nwant);
}

static void test_fixed_cases(void **state)
{
    (void)state;
    check("plain text");
    check("");
    check("%%");
    check("%d %i %u", 0, -1, 4000000000u);
    check("%d", -2147483647 - 1);
    check("%lld %llu", (long long)INT64_MIN, (unsigned long long)UINT64_MAX);
    check("%jd %zu %td %zd", INTMAX_MIN, (size_t)SIZE_MAX, (ptrdiff_t)-5, (ptrdiff_t)-7);
    check("%hhd %hhu %hd %hu", 300, 300, 70000, 70000);
    check("%x %X %o %#x %#X %#o", 0xdeadbeefu, 0xdeadbeefu, 8u, 255u, 255u, 8u);
    check("%#x %#o %#.0o %.0x %.0d|", 0u, 0u, 0u, 0u, 0);
    check("%5d|%-5d|%05d|%+d|% d|%+5d|%-+5d|", 42, 42, 42, 42, 42, 42, 42);
    check("%05d|%.3d|%8.3d|%-8.3d|%08.3d|", -42, -42, -42, -42, -42);
    check("%*d|%-*d|%*d|%.*d|%.*d|", 6, 1, 6, 2, -6, 3, 4, 5, -1, 6);
    check("%s|%10s|%-10s|%.2s|%10.2s|", "hello", "hello", "hello", "hello", "hello");
    check("%c%c%5c%-5c|", 'a', 'b', 'c', 'd');
    check("%p %20p %-20p|", (void *)0x1234, (void *)0xffffffff81000000ull, (void *)1);
    check("%p %10p|", (void *)NULL, (void *)NULL);
    check("%#018lx %#10.6x", 0xffffffff81000000ul, 0xabcu);
    check("%y %5k");
}

static void test_null_string(void **state)
{
    (void)state;
    char buf[32];
    const char *volatile null = NULL; /* hidden from -Wformat-overflow */
    fmt_snprintf(buf, sizeof buf, "[%s] [%8s]", null, null);
    assert_string_equal(buf, "[(null)] [  (null)]");
}

static void test_precision_reads_no_further(void **state)
{
    (void)state;
    char *s = malloc(3); /* not NUL-terminated: ASan catches an overread */
    assert_non_null(s);
    memcpy(s, "abc", 3);
    char buf[16];
    assert_int_equal(fmt_snprintf(buf, sizeof buf, "%.3s|%.*s", s, 2, s), 6);
    assert_string_equal(buf, "abc|ab");
    free(s);
}

static uint64_t rnd_value(void)
{
    switch (test_rnd() % 6) {
    case 0: return 0;
    case 1: return test_rnd() % 10;
    case 2: return (uint64_t) - (int64_t)(test_rnd() % 1000);
    case 3: return UINT64_C(1) << (test_rnd() % 64);
    case 4: return (UINT64_C(1) << (test_rnd() % 64)) - 1;
    default: return test_rnd();
    }
}

static void test_random_against_glibc(void **state)
{
    (void)state;
    static const char *const lengths[] = { "", "hh", "h", "l", "ll", "z", "j", "t" };
    static const char convs[] = "diuxXocsp%";
    static const char *const strings[] = { "", "x", "hello", "a longer string, 32 chars long.." };
    test_rng_seed(0x9e3779b97f4a7c15ull);

    for (int iter = 0; iter < 200000; iter++) {
        char fmt[64];
        size_t n = 0;
        char conv = convs[test_rnd() % (sizeof convs - 1)];
        bool numeric = strchr("diuxXo", conv) != NULL;
        fmt[n++] = '<';
        fmt[n++] = '%';
        /* Flags whose effect the C standard leaves undefined are not drawn. */
        if (test_rnd() % 3 == 0)
            fmt[n++] = '-';
        if (numeric && test_rnd() % 3 == 0)
            fmt[n++] = '0';
        if (numeric && test_rnd() % 4 == 0)
            fmt[n++] = '+';
        if (numeric && test_rnd() % 4 == 0)
            fmt[n++] = ' ';
        if (strchr("xXo", conv) && test_rnd() % 3 == 0)
            fmt[n++] = '#';

        int width = -1, prec = -2; /* -2: none; -1: '.' alone */
        bool star_w = false, star_p = false;
        if (conv != '%' && test_rnd() % 2) {
            width = (int)(test_rnd() % 40);
            star_w = test_rnd() % 3 == 0;
            if (star_w && test_rnd() % 4 == 0)
                width = -width;
            n += (size_t)(star_w ? sprintf(fmt + n, "*") : sprintf(fmt + n, "%d", width));
        }
        if ((numeric || conv == 's') && test_rnd() % 2) {
            prec = (int)(test_rnd() % 30) - 1;
            star_p = test_rnd() % 3 == 0;
            if (star_p && test_rnd() % 4 == 0)
                prec = -(int)(test_rnd() % 5) - 1;
            if (star_p)
                n += (size_t)sprintf(fmt + n, ".*");
            else if (prec < 0)
                n += (size_t)sprintf(fmt + n, ".");
            else
                n += (size_t)sprintf(fmt + n, ".%d", prec);
        }
        const char *len = numeric ? lengths[test_rnd() % 8] : "";
        n += (size_t)sprintf(fmt + n, "%s%c>", len, conv);
        fmt[n] = '\0';

        uint64_t v = rnd_value();
        int w = width, p = prec;
        char got[256], want[256];
        int ngot, nwant;
#define BOTH(...)                                                                                                      \
    do {                                                                                                               \
        if (star_w && star_p) {                                                                                        \
            ngot = fmt_snprintf(got, sizeof got, fmt, w, p, __VA_ARGS__);                                              \
            nwant = snprintf(want, sizeof want, fmt, w, p, __VA_ARGS__);                                               \
        } else if (star_w) {                                                                                           \
            ngot = fmt_snprintf(got, sizeof got, fmt, w, __VA_ARGS__);                                                 \
            nwant = snprintf(want, sizeof want, fmt, w, __VA_ARGS__);                                                  \
        } else if (star_p) {                                                                                           \
            ngot = fmt_snprintf(got, sizeof got, fmt, p, __VA_ARGS__);                                                 \
            nwant = snprintf(want, sizeof want, fmt, p, __VA_ARGS__);                                                  \
        } else {                                                                                                       \
            ngot = fmt_snprintf(got, sizeof got, fmt, __VA_ARGS__);                                                    \
            nwant = snprintf(want, sizeof want, fmt, __VA_ARGS__);                                                     \
        }                                                                                                              \
    } while (0)
        if (conv == 's') {
            const char *s = strings[test_rnd() % 4];
            BOTH(s);
        } else if (conv == 'c') {
            BOTH((int)(v % 94 + 32));
        } else if (conv == 'p') {
            BOTH((void *)(uintptr_t)(v | 1)); /* NULL is tested on its own */
        } else if (conv == '%') {
            BOTH(0);
        } else if (!strcmp(len, "l")) {
            BOTH((long)v);
        } else if (!strcmp(len, "ll")) {
            BOTH((long long)v);
        } else if (!strcmp(len, "z")) {
            BOTH((size_t)v);
        } else if (!strcmp(len, "j")) {
            BOTH((intmax_t)v);
        } else if (!strcmp(len, "t")) {
            BOTH((ptrdiff_t)v);
        } else {
            BOTH((int)v);
        }
#undef BOTH
        if (ngot != nwant || strcmp(got, want) != 0)
            fail_msg("iteration %d, format \"%s\" w=%d p=%d v=%#llx: got \"%s\" (%d), "
                     "glibc \"%s\" (%d)",
                     iter, fmt, w, p, (unsigned long long)v, got, ngot, want, nwant);
    }
}

struct counting_sink {
    char buf[4096];
    size_t len;
    int calls;
};

static void counting_put(void *ctx, const char *s, size_t n)
{
    struct counting_sink *c = ctx;
    assert_true(n > 0);
    assert_true(c->len + n < sizeof c->buf);
    memcpy(c->buf + c->len, s, n);
    c->len += n;
    c->calls++;
}

static void test_sink_is_batched(void **state)
{
    (void)state;
    struct counting_sink c = { .len = 0, .calls = 0 };
    int n = fmt_format(counting_put, &c, "a=%d b=%s c=%#x d=%c %5s|", 1, "two", 3u, '4', "x");
    c.buf[c.len] = '\0';
    assert_string_equal(c.buf, "a=1 b=two c=0x3 d=4     x|");
    assert_int_equal(n, (int)c.len);
    assert_int_equal(c.calls, 1);

    /* Long output: still few calls, and the text arrives in order. */
    memset(&c, 0, sizeof c);
    char big[1000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    n = fmt_format(counting_put, &c, "%s|%300d|%-300s|", big, 7, "y");
    assert_int_equal(n, 999 + 1 + 300 + 1 + 300 + 1);
    assert_int_equal((int)c.len, n);
    assert_true(c.calls <= 10);
    assert_int_equal(c.buf[998], 'q');
    assert_int_equal(c.buf[999], '|');
    assert_int_equal(c.buf[999 + 300], '7');
    assert_int_equal(c.buf[999 + 302], 'y');
    assert_int_equal(c.buf[n - 1], '|');

    memset(&c, 0, sizeof c);
    assert_int_equal(fmt_format(counting_put, &c, "%s", ""), 0);
    assert_int_equal(c.calls, 0);
}

static void test_snprintf_truncation(void **state)
{
    (void)state;
    const char *fmt = "value %d and %s end";
    char want[64];
    int full = snprintf(want, sizeof want, fmt, -12345, "text");
    assert_int_equal(fmt_snprintf(NULL, 0, fmt, -12345, "text"), full);
    for (size_t size = 1; size <= (size_t)full + 2; size++) {
        char *got = malloc(size); /* exactly size bytes: ASan checks the bound */
        char ref[64];
        assert_non_null(got);
        assert_int_equal(fmt_snprintf(got, size, fmt, -12345, "text"), full);
        snprintf(ref, size, fmt, -12345, "text");
        assert_string_equal(got, ref);
        free(got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_cases),
        cmocka_unit_test(test_null_string),
        cmocka_unit_test(test_precision_reads_no_further),
        cmocka_unit_test(test_random_against_glibc),
        cmocka_unit_test(test_sink_is_batched),
        cmocka_unit_test(test_snprintf_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
