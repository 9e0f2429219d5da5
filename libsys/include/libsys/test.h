/*
 * libsys: the in-guest test convention (docs/testing.md). A test program
 * prints one line per check, `[PASS] group.name`, `[FAIL] group.name:
 * reason` or `[SKIP] group.name: reason` (common/console.h), and ends with
 * test_exit(): the exit status carries its counts to the suite, which
 * prints the closing line.
 */
#ifndef LIBSYS_TEST_H
#define LIBSYS_TEST_H

#include <stdbool.h>
#include <stdint.h>
#include <abi/types.h>

struct test_run {
    const char *group;
    unsigned passed, failed, skipped;
    uint64_t seed, rng;
    uint64_t pace_ns; /* the suite's unit of reference work, in guest ns */
};

/* Exit status of a test program: a marker bit, then three 20-bit counts. */
#define TEST_STATUS_MARK (1ll << 60)
#define TEST_STATUS(passed, failed, skipped)                                                                           \
    (TEST_STATUS_MARK | ((int64_t)(passed) << 40) | ((int64_t)(failed) << 20) | (int64_t)(skipped))
#define TEST_STATUS_VALID(s)   ((s) >= 0 && ((s)&TEST_STATUS_MARK))
#define TEST_STATUS_PASSED(s)  ((unsigned)(((s) >> 40) & 0xfffff))
#define TEST_STATUS_FAILED(s)  ((unsigned)(((s) >> 20) & 0xfffff))
#define TEST_STATUS_SKIPPED(s) ((unsigned)((s)&0xfffff))

/* Reads seed=N (default 1) and pace_ns=N from argv. */
void test_begin(struct test_run *r, const char *group, int argc, char **argv);
/* Records one check; fmt explains a failure. Returns ok. */
bool test_check(struct test_run *r, const char *name, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Records a check whose premise cannot hold on this machine (no such
 * device, no RAM above 4 GiB); fmt says why. Never a pass: anything that
 * can be scaled to the machine is scaled instead. */
void test_skip(struct test_run *r, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
__attribute__((noreturn)) void test_exit(struct test_run *r);
/* A wait's budget in guest ns: `units` of the suite's reference work
 * (tests/guest/suite/pace.c), so that a slow emulator or a busy host gets
 * proportionally longer; 0.1 ms a unit when started without pace_ns=. */
uint64_t test_budget_ns(const struct test_run *r, uint64_t units);
/* Until *count reaches `want` (a helper thread's progress, looked at every
 * millisecond) or a budget of `units` runs out; false if it ran out. */
bool test_wait_count(const struct test_run *r, const volatile unsigned *count, unsigned want, uint64_t units);
/* Seeded pseudo-random numbers (xorshift64*). */
uint64_t test_rand(struct test_run *r);
/* The device the suite gave this program to pin segments for (startup
 * slot DEVICE), or HANDLE_NONE. */
handle_t test_dma_device(void);

#endif
