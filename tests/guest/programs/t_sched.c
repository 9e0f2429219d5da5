/*
 * In-guest test program: threads and the scheduler. Busy threads that never
 * yield both progress (preemption); threads run, end and can be waited for;
 * each thread keeps its own SSE registers across preemption.
 */
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

#define MS      (1000ull * 1000)
#define THREADS 8

static uint8_t stacks[THREADS][16384] __attribute__((aligned(16)));
static volatile uint64_t counters[2];
static volatile int stop;
static volatile uint64_t sums[THREADS];
static volatile int fpu_errors;

static void spinner(uint64_t index)
{
    while (!stop)
        counters[index]++;
    sys_thread_exit();
}

static void summer(uint64_t index)
{
    uint64_t s = 0;
    for (uint64_t i = 0; i <= 100000 * (index + 1); i++)
        s += i;
    sums[index] = s;
    sys_thread_exit();
}

static volatile uintptr_t thread_frame;

/* Records its frame address: a thread must start as if called, so that
 * compiled code (movaps spills in varargs calls) finds the stack aligned. */
static void frame_probe(uint64_t unused)
{
    (void)unused;
    thread_frame = (uintptr_t)__builtin_frame_address(0);
    printf("sched: a thread that prints (%s)\n", "varargs on an aligned stack");
    sys_thread_exit();
}

static void sleeper(uint64_t ms)
{
    sys_sleep(ms * MS);
    sys_thread_exit();
}

/* Keeps a value in SSE registers across many preemptions. */
static void fpu_worker(uint64_t seed)
{
    volatile double base = (double)seed;
    double acc = base;
    for (int round = 0; round < 2000000 && !stop; round++) {
        acc = acc * 1.0000001 + 0.5;
        acc = (acc - 0.5) / 1.0000001;
        if (acc < base - 0.01 || acc > base + 0.01) {
            fpu_errors++;
            break;
        }
    }
    sys_thread_exit();
}

int main(int argc, char **argv)
{
    struct test_run t;
    test_begin(&t, "sched", argc, argv);

    /* Preemption: two threads that never yield both advance while main
     * sleeps. Main sleeps in short naps until both have moved: how long
     * that takes is the machine's business, within the suite's budget. */
    int64_t a = sys_thread_create(spinner, stacks[0] + sizeof(stacks[0]), 0);
    int64_t b = sys_thread_create(spinner, stacks[1] + sizeof(stacks[1]), 1);
    sys_sleep(10 * MS);
    uint64_t a1 = counters[0], b1 = counters[1], a2 = a1, b2 = b1;
    uint64_t deadline = sys_clock() + test_budget_ns(&t, 2000);
    while ((a2 == a1 || b2 == b1) && sys_clock() < deadline) {
        sys_sleep(10 * MS);
        a2 = counters[0];
        b2 = counters[1];
    }
    stop = 1;
    bool joined = a >= 0 && b >= 0 && sys_thread_wait((handle_t)a, TIMEOUT_FOREVER) == 0 &&
                  sys_thread_wait((handle_t)b, TIMEOUT_FOREVER) == 0;
    test_check(&t, "preemption", a >= 0 && b >= 0 && a2 > a1 && b2 > b1 && joined,
               "create %ld %ld; counters %lu->%lu and %lu->%lu; joined %d", a, b, a1, a2, b1, b2, joined);
    sys_handle_close((handle_t)a);
    sys_handle_close((handle_t)b);
    stop = 0;

    /* Several threads compute; each result is right once it has ended. */
    int64_t h[THREADS];
    bool created = true;
    for (int i = 0; i < THREADS; i++) {
        h[i] = sys_thread_create(summer, stacks[i] + sizeof(stacks[i]), (uint64_t)i);
        created &= h[i] >= 0;
    }
    bool sums_ok = created;
    for (int i = 0; i < THREADS && created; i++) {
        uint64_t n = 100000 * (uint64_t)(i + 1);
        sums_ok &= sys_thread_wait((handle_t)h[i], TIMEOUT_FOREVER) == 0 && sums[i] == n * (n + 1) / 2;
        sys_handle_close((handle_t)h[i]);
    }
    test_check(&t, "threads", sums_ok, "a thread's result was wrong or it could not be waited for");

    /* Waiting has a timeout. */
    int64_t s = sys_thread_create(sleeper, stacks[0] + sizeof(stacks[0]), 100);
    int64_t early = sys_thread_wait((handle_t)s, 10 * MS);
    int64_t late = sys_thread_wait((handle_t)s, TIMEOUT_FOREVER);
    test_check(&t, "thread_wait_timeout", s >= 0 && early == -ETIMEDOUT && late == 0,
               "create %ld, short wait %ld, long wait %ld", s, early, late);
    sys_handle_close((handle_t)s);

    /* A timed wait never ends before its time, whichever CPU's tick or
     * return to user mode ends it; how late it ends is the host's
     * business, and printed. */
    static const uint64_t naps_ns[] = { 1000, 250 * 1000, 999 * 1000, MS, 1500 * 1000, 3 * MS };
    uint64_t early_slept = 0, early_nap = 0, late_ns = 0, naps = 0;
    for (unsigned round = 0; round < 8; round++)
        for (unsigned i = 0; i < sizeof(naps_ns) / sizeof(naps_ns[0]); i++) {
            uint64_t t0 = sys_clock();
            int64_t r = sys_sleep(naps_ns[i]);
            uint64_t slept = sys_clock() - t0;
            if (slept < naps_ns[i] || r != 0) {
                early_slept = slept;
                early_nap = naps_ns[i];
            } else {
                late_ns += slept - naps_ns[i];
            }
            naps++;
        }
    test_check(&t, "sleep_never_early", early_nap == 0, "a sleep of %lu ns ended after %lu ns", early_nap, early_slept);
    printf("BENCH sched_sleep_late %lu ns\n", late_ns / naps);

    /* A thread's own handle is no use for waiting on itself; a closed one is stale. */
    int64_t stale = sys_thread_wait((handle_t)s, 0);
    test_check(&t, "stale_thread_handle", stale == -EBADH, "closed handle gave %ld", stale);

    /* SSE state is per thread. */
    int64_t f1 = sys_thread_create(fpu_worker, stacks[2] + sizeof(stacks[2]), 1000);
    int64_t f2 = sys_thread_create(fpu_worker, stacks[3] + sizeof(stacks[3]), 7);
    sys_sleep(100 * MS);
    stop = 1;
    sys_thread_wait((handle_t)f1, TIMEOUT_FOREVER);
    sys_thread_wait((handle_t)f2, TIMEOUT_FOREVER);
    test_check(&t, "fpu_state_per_thread", f1 >= 0 && f2 >= 0 && fpu_errors == 0, "%d FPU mismatches", fpu_errors);

    int64_t fp = sys_thread_create(frame_probe, stacks[4] + sizeof(stacks[4]), 0);
    sys_thread_wait((handle_t)fp, TIMEOUT_FOREVER);
    test_check(&t, "thread_stack_alignment", fp >= 0 && thread_frame % 16 == 0 && thread_frame != 0, "frame at %#lx",
               (unsigned long)thread_frame);

    uint64_t y0 = sys_clock();
    for (int i = 0; i < 100; i++)
        sys_yield();
    test_check(&t, "yield", sys_clock() >= y0, "clock went backwards");

    test_exit(&t);
}
