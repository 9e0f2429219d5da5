/*
 * Host tests for libsys/src/sync.c (mutex, condition variable) and for the
 * default heap's lock, with real threads on Linux's futex: counters that a
 * lost update would show, a bounded queue whose sum a lost wake-up or a
 * double take would break, timeouts, and malloc/free from several threads
 * with patterns checked and the heap checked afterwards.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <abi/errno.h>
#include <libsys/malloc.h>
#include <libsys/sync.h>

#define THREADS 4
#define ROUNDS  20000

static struct mutex counter_lock;
static volatile uint64_t counter;

static void *count_up(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        mutex_lock(&counter_lock);
        uint64_t v = counter; /* a lost update if two threads get here at once */
        if ((i & 1023) == 0)
            sched_yield();
        counter = v + 1;
        mutex_unlock(&counter_lock);
    }
    return NULL;
}

static void test_mutex_counts_exactly(void **state)
{
    (void)state;
    pthread_t th[THREADS];
    counter = 0;
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, count_up, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(counter, (uint64_t)THREADS * ROUNDS);
    assert_int_equal(counter_lock.state, 0);
}

static void test_trylock_and_bad_unlock(void **state)
{
    (void)state;
    struct mutex m = MUTEX_INIT;
    assert_true(mutex_trylock(&m));
    assert_false(mutex_trylock(&m));
    assert_int_equal(mutex_unlock(&m), 0);
    assert_int_equal(mutex_unlock(&m), -EPERM); /* not held: refused, left free */
    assert_true(mutex_trylock(&m));
    assert_int_equal(mutex_unlock(&m), 0);
}

/* A bounded queue: producers wait while it is full, consumers while empty. */
#define QUEUE_CAP 4
#define ITEMS     5000
#define PRODUCERS 4
#define CONSUMERS 4

static struct {
    struct mutex lock;
    struct condvar not_full, not_empty;
    uint64_t items[QUEUE_CAP];
    unsigned head, count, producers_left;
    uint64_t sum, taken;
} q;

static void *produce(void *arg)
{
    uint64_t base = (uintptr_t)arg * ITEMS;
    for (uint64_t i = 1; i <= ITEMS; i++) {
        mutex_lock(&q.lock);
        while (q.count == QUEUE_CAP)
            condvar_wait(&q.not_full, &q.lock);
        q.items[(q.head + q.count++) % QUEUE_CAP] = base + i;
        condvar_signal(&q.not_empty);
        mutex_unlock(&q.lock);
    }
    mutex_lock(&q.lock);
    if (--q.producers_left == 0)
        condvar_broadcast(&q.not_empty);
    mutex_unlock(&q.lock);
    return NULL;
}

static void *consume(void *arg)
{
    (void)arg;
    for (;;) {
        mutex_lock(&q.lock);
        while (q.count == 0 && q.producers_left > 0)
            condvar_wait(&q.not_empty, &q.lock);
        if (q.count == 0) {
            mutex_unlock(&q.lock);
            return NULL;
        }
        q.sum += q.items[q.head];
        q.taken++;
        q.head = (q.head + 1) % QUEUE_CAP;
        q.count--;
        condvar_signal(&q.not_full);
        mutex_unlock(&q.lock);
    }
}

static void test_condvar_queue_loses_nothing(void **state)
{
    (void)state;
    memset(&q, 0, sizeof(q));
    q.producers_left = PRODUCERS;
    pthread_t p[PRODUCERS], c[CONSUMERS];
    for (uintptr_t i = 0; i < CONSUMERS; i++)
        assert_int_equal(pthread_create(&c[i], NULL, consume, NULL), 0);
    for (uintptr_t i = 0; i < PRODUCERS; i++)
        assert_int_equal(pthread_create(&p[i], NULL, produce, (void *)i), 0);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(p[i], NULL);
    for (int i = 0; i < CONSUMERS; i++)
        pthread_join(c[i], NULL);
    uint64_t n = (uint64_t)PRODUCERS * ITEMS;
    assert_int_equal(q.taken, n);
    assert_int_equal(q.sum, n * (n + 1) / 2);
}

static void test_condvar_timeout(void **state)
{
    (void)state;
    struct mutex m = MUTEX_INIT;
    struct condvar c = CONDVAR_INIT;
    struct timespec a, b;
    mutex_lock(&m);
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(condvar_wait_timeout(&c, &m, 20 * 1000 * 1000), -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long waited = (b.tv_sec - a.tv_sec) * 1000000000ll + (b.tv_nsec - a.tv_nsec);
    assert_true(waited >= 15 * 1000 * 1000);
    assert_false(mutex_trylock(&m)); /* held again after the timeout */
    assert_int_equal(mutex_unlock(&m), 0);
}

/* The default heap from several threads: a backend from the host's heap
 * (called under the heap's lock, so it needs none of its own). */
static int host_get(void *ctx, size_t min, void **base, size_t *size)
{
    (void)ctx;
    size_t sz = (min + 4095) & ~(size_t)4095;
    void *p = aligned_alloc(4096, sz);
    if (!p)
        return -2;
    *base = p;
    *size = sz;
    return 0;
}

static void host_put(void *ctx, void *base, size_t size)
{
    (void)ctx;
    (void)size;
    free(base);
}

#define HEAP_OPS   10000
#define HEAP_SLOTS 64

static void *heap_worker(void *arg)
{
    uint64_t rng = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
    uint8_t *slot[HEAP_SLOTS] = { 0 };
    size_t len[HEAP_SLOTS] = { 0 };
    uintptr_t bad = 0;
    for (int op = 0; op < HEAP_OPS; op++) {
        rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
        uint64_t r = rng * 0x2545f4914f6cdd1dull;
        unsigned i = r % HEAP_SLOTS;
        if (slot[i]) {
            for (size_t k = 0; k < len[i]; k++)
                bad |= slot[i][k] != (uint8_t)(k + i + (uintptr_t)arg);
            libsys_free(slot[i]);
            slot[i] = NULL;
            continue;
        }
        static const size_t sizes[] = { 8, 48, 200, 256, 700, 4000, 30000, 300000 };
        len[i] = sizes[(r >> 8) % 8];
        slot[i] = libsys_malloc(len[i]);
        if (!slot[i])
            return (void *)1;
        for (size_t k = 0; k < len[i]; k++)
            slot[i][k] = (uint8_t)(k + i + (uintptr_t)arg);
    }
    for (unsigned i = 0; i < HEAP_SLOTS; i++)
        libsys_free(slot[i]);
    return (void *)bad;
}

static void test_default_heap_threads(void **state)
{
    (void)state;
    struct malloc_backend be = { host_get, host_put, NULL, NULL };
    malloc_init(&be);
    pthread_t th[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, heap_worker, (void *)i), 0);
    for (int i = 0; i < THREADS; i++) {
        void *bad;
        pthread_join(th[i], &bad);
        assert_null(bad);
    }
    assert_int_equal(malloc_check(), 0);
    struct heap_stats st;
    heap_stats(malloc_default_heap(), &st);
    assert_int_equal(st.live_blocks, 0);
    malloc_trim();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutex_counts_exactly),        cmocka_unit_test(test_trylock_and_bad_unlock),
        cmocka_unit_test(test_condvar_queue_loses_nothing), cmocka_unit_test(test_condvar_timeout),
        cmocka_unit_test(test_default_heap_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
