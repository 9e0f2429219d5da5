/*
 * libsys: the in-guest test convention (see libsys/test.h).
 */
#include <common/cmdline.h>
#include <common/console.h>
#include <common/string.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

void test_begin(struct test_run *r, const char *group, int argc, char **argv)
{
    *r = (struct test_run){ .group = group, .seed = 1, .pace_ns = 100000 };
    for (int i = 0; i < argc; i++) {
        uint64_t v;
        if (strncmp(argv[i], "seed=", 5) == 0 && parse_u64(argv[i] + 5, strlen(argv[i] + 5), &v) == 0)
            r->seed = v;
        if (strncmp(argv[i], "pace_ns=", 8) == 0 && parse_u64(argv[i] + 8, strlen(argv[i] + 8), &v) == 0 && v)
            r->pace_ns = v;
    }
    r->rng = r->seed * 0x9e3779b97f4a7c15ull + 1;
}

bool test_check(struct test_run *r, const char *name, bool ok, const char *fmt, ...)
{
    if (ok) {
        r->passed++;
        printf(CONSOLE_PASS " %s.%s\n", r->group, name);
        return true;
    }
    r->failed++;
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    fmt_vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    printf(CONSOLE_FAIL " %s.%s: %s (seed=%lu)\n", r->group, name, reason, r->seed);
    return false;
}

void test_skip(struct test_run *r, const char *name, const char *fmt, ...)
{
    r->skipped++;
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    fmt_vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    printf(CONSOLE_SKIP " %s.%s: %s\n", r->group, name, reason);
}

void test_exit(struct test_run *r) { sys_exit(TEST_STATUS(r->passed, r->failed, r->skipped)); }

uint64_t test_budget_ns(const struct test_run *r, uint64_t units) { return r->pace_ns * units; }

bool test_wait_count(const struct test_run *r, const volatile unsigned *count, unsigned want, uint64_t units)
{
    uint64_t deadline = sys_clock() + test_budget_ns(r, units);
    while (__atomic_load_n(count, __ATOMIC_ACQUIRE) < want) {
        if (sys_clock() >= deadline)
            return false;
        sys_sleep(NS_PER_MS);
    }
    return true;
}

uint64_t test_rand(struct test_run *r)
{
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 0x2545f4914f6cdd1dull;
}

handle_t test_dma_device(void) { return startup_handle(ABI_STARTUP_DEVICE); }
