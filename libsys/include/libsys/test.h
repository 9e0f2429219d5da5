/*
 * libsys: the in-guest test convention (docs/testing.md). A test program prints
 * one line per check, `[PASS] group.name` or `[FAIL] group.name: reason`,
 * and ends with test_exit(): the exit status carries its counts to init,
 * which prints the suite's closing line.
 */
#ifndef LIBSYS_TEST_H
#define LIBSYS_TEST_H

#include <stdbool.h>
#include <stdint.h>
#include <abi/types.h>

struct test_run {
    const char *group;
    unsigned passed, failed;
    uint64_t seed, rng;
};

/* Exit status of a test program: a marker bit, then the counts. */
#define TEST_STATUS_MARK (1ll << 40)
#define TEST_STATUS(passed, failed) (TEST_STATUS_MARK | ((int64_t)(passed) << 20) | (int64_t)(failed))
#define TEST_STATUS_VALID(s) ((s) >= 0 && ((s) & TEST_STATUS_MARK))
#define TEST_STATUS_PASSED(s) ((unsigned)(((s) >> 20) & 0xfffff))
#define TEST_STATUS_FAILED(s) ((unsigned)((s) & 0xfffff))

/* Reads seed=N from argv (default 1) and prints it. */
void test_begin(struct test_run *r, const char *group, int argc, char **argv);
/* Records one check; fmt explains a failure. Returns ok. */
bool test_check(struct test_run *r, const char *name, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
__attribute__((noreturn)) void test_exit(struct test_run *r);
/* Seeded pseudo-random numbers (xorshift64*). */
uint64_t test_rand(struct test_run *r);
/* The device the suite gave this program to pin segments for (startup
 * slot DEVICE), or HANDLE_NONE. */
handle_t test_dma_device(void);

#endif
