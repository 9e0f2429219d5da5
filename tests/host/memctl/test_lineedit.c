/*
 * Host tests for the console's line editor (servers/memctl/lineedit.c): fed
 * byte by byte as the serial port delivers them, it must produce the line a
 * person meant, keep history, complete words, drop a line on Ctrl-C and
 * refuse, never cut, a line that is too long. What it draws goes to a
 * buffer that the tests read where it matters (the bell, the echo).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "lineedit.h"

static char drawn[1 << 16];
static size_t drawn_len;

static void capture(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    if (drawn_len + n < sizeof(drawn)) {
        memcpy(drawn + drawn_len, s, n);
        drawn_len += n;
        drawn[drawn_len] = 0;
    }
}

static const char *const commands[] = { "run", "ps", "poweroff", "pin", "services" };
static const char *const programs[] = { "kvcli", "kvstore", "t_kv" };

static size_t complete(void *ctx, size_t index, const char *first, const char **out, size_t max)
{
    (void)ctx;
    const char *const *from = index == 0 ? commands : strcmp(first, "run") == 0 && index == 1 ? programs : NULL;
    size_t count = from == commands ? 5 : from ? 3 : 0;
    for (size_t i = 0; i < count && i < max; i++)
        out[i] = from[i];
    return count < max ? count : max;
}

static struct lineedit le;

static int setup(void **state)
{
    (void)state;
    le_init(&le, "> ", capture, complete, NULL);
    le_start(&le);
    drawn_len = 0;
    drawn[0] = 0;
    return 0;
}

/* Feeds bytes; returns the first result other than LE_MORE (or LE_MORE). */
static enum le_result feed(const char *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        enum le_result r = le_feed(&le, (unsigned char)bytes[i]);
        if (r != LE_MORE) {
            assert_int_equal(i, n - 1); /* nothing may follow the end of a line in one call */
            return r;
        }
    }
    return LE_MORE;
}
#define FEED(s) feed((s), sizeof(s) - 1)

/* Types a whole line and expects it back. */
static void expect_line(const char *typed, size_t n, const char *line)
{
    assert_int_equal(feed(typed, n), LE_LINE);
    assert_string_equal(le_line(&le), line);
    le_start(&le);
}
#define EXPECT_LINE(typed, line) expect_line((typed), sizeof(typed) - 1, (line))

static void test_plain_line_and_enter_forms(void **state)
{
    (void)state;
    EXPECT_LINE("ps\r", "ps");
    EXPECT_LINE("ps\n", "ps");
    EXPECT_LINE("alloc 64K\r", "alloc 64K");
    /* CR LF is one Enter: the LF ends no second, empty line. */
    assert_int_equal(FEED("ps\r"), LE_LINE);
    le_start(&le);
    assert_int_equal(FEED("\nrun\r"), LE_LINE);
    assert_string_equal(le_line(&le), "run");
}

static void test_editing_keys(void **state)
{
    (void)state;
    EXPECT_LINE("psx\x7f\r", "ps");                    /* DEL */
    EXPECT_LINE("psx\b\r", "ps");                      /* ^H */
    EXPECT_LINE("pz\x1b[Ds\x1b[3~\r", "ps");           /* Left, insert, Delete */
    EXPECT_LINE("s\x01p\x05\r", "ps");                 /* ^A home, ^E end */
    EXPECT_LINE("garbage\x15ps\r", "ps");              /* ^U */
    EXPECT_LINE("psjunk\x02\x02\x02\x02\x0b\r", "ps"); /* ^B four times, ^K */
    EXPECT_LINE("run kvcli\x17ps\r", "run ps");        /* ^W */
    EXPECT_LINE("ps\x1b[H\x1b[F\r", "ps");             /* Home, End */
}

static void test_unknown_escapes_put_no_letters(void **state)
{
    (void)state;
    EXPECT_LINE("p\x1b[15~\x1bOPs\x1b[1;5C\r", "ps"); /* F5, F1, Ctrl-Right */
    EXPECT_LINE("p\x07\x0es\r", "ps");                /* other control bytes */
}

static void test_ctrl_c_drops_the_line(void **state)
{
    (void)state;
    assert_int_equal(FEED("poweroff\x03"), LE_INTERRUPT);
    le_start(&le);
    EXPECT_LINE("ps\r", "ps");
}

static void test_history(void **state)
{
    (void)state;
    EXPECT_LINE("one\r", "one");
    EXPECT_LINE("two\r", "two");
    EXPECT_LINE("three\r", "three");
    EXPECT_LINE("\x1b[A\r", "three");
    /* A line equal to the newest is not kept twice: three, two, one. */
    EXPECT_LINE("\x1b[A\x1b[A\r", "two");
    /* Up past the oldest stays there; Down back to the draft keeps it. */
    EXPECT_LINE("\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\r", "one");
    EXPECT_LINE("dra\x1b[A\x1b[Bft\r", "draft");
    EXPECT_LINE("\x10\r", "draft"); /* ^P */
}

static void test_history_keeps_the_newest(void **state)
{
    (void)state;
    char line[16];
    for (unsigned i = 0; i < LE_HISTORY + 5; i++) {
        int n = snprintf(line, sizeof(line), "cmd%u\r", i);
        assert_int_equal(feed(line, (size_t)n), LE_LINE);
        le_start(&le);
    }
    char ups[3 * (LE_HISTORY + 10) + 2];
    size_t n = 0;
    for (unsigned i = 0; i < LE_HISTORY + 10; i++) {
        memcpy(ups + n, "\x1b[A", 3);
        n += 3;
    }
    ups[n++] = '\r';
    expect_line(ups, n, "cmd5"); /* the oldest of the last LE_HISTORY */
}

static void test_tab_completion(void **state)
{
    (void)state;
    EXPECT_LINE("ru\tkvc\tget a\r", "run kvcli get a");
    EXPECT_LINE("se\t\r", "services ");
    /* Ambiguous: completes as far as the choices agree, a second Tab lists them. */
    drawn_len = 0;
    assert_int_equal(FEED("p\t"), LE_MORE);
    assert_int_equal(FEED("\t"), LE_MORE);
    assert_non_null(strstr(drawn, "ps"));
    assert_non_null(strstr(drawn, "poweroff"));
    assert_non_null(strstr(drawn, "pin"));
    assert_int_equal(FEED("s\r"), LE_LINE);
    assert_string_equal(le_line(&le), "ps");
    le_start(&le);
    EXPECT_LINE("run kvs\t\r", "run kvstore ");
    EXPECT_LINE("run kv\t\r", "run kv"); /* kvcli and kvstore agree on "kv" only */
    EXPECT_LINE("ps kv\t\r", "ps kv");   /* no completion for ps's arguments */
}

static void test_long_line_is_refused_not_cut(void **state)
{
    (void)state;
    char typed[LE_LINE_MAX + 40];
    memset(typed, 'x', sizeof(typed) - 1);
    typed[sizeof(typed) - 1] = '\r';
    drawn_len = 0;
    assert_int_equal(feed(typed, sizeof(typed)), LE_TOO_LONG);
    assert_non_null(strchr(drawn, '\a')); /* the bell rang */
    le_start(&le);
    /* Exactly LE_LINE_MAX characters is a line. */
    char fits[LE_LINE_MAX + 1];
    memset(fits, 'y', LE_LINE_MAX);
    fits[LE_LINE_MAX] = '\r';
    assert_int_equal(feed(fits, sizeof(fits)), LE_LINE);
    assert_int_equal(strlen(le_line(&le)), LE_LINE_MAX);
}

static void test_echo(void **state)
{
    (void)state;
    drawn_len = 0;
    assert_int_equal(FEED("ps\r"), LE_LINE);
    assert_non_null(strstr(drawn, "ps"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_plain_line_and_enter_forms, setup),
        cmocka_unit_test_setup(test_editing_keys, setup),
        cmocka_unit_test_setup(test_unknown_escapes_put_no_letters, setup),
        cmocka_unit_test_setup(test_ctrl_c_drops_the_line, setup),
        cmocka_unit_test_setup(test_history, setup),
        cmocka_unit_test_setup(test_history_keeps_the_newest, setup),
        cmocka_unit_test_setup(test_tab_completion, setup),
        cmocka_unit_test_setup(test_long_line_is_refused_not_cut, setup),
        cmocka_unit_test_setup(test_echo, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
