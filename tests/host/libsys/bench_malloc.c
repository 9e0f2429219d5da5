/*
 * Benchmark (not a test): the libsys heap on the host over aligned_alloc.
 * Prints BENCH lines; timings are never asserted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <libsys/malloc.h>

static int get(void *ctx, size_t min, void **base, size_t *size)
{
    (void)ctx;
    *base = aligned_alloc(4096, min);
    *size = min;
    return *base ? 0 : -2;
}

static void put(void *ctx, void *base, size_t size)
{
    (void)ctx;
    (void)size;
    free(base);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void *volatile sink;

static void pair(struct heap *h, const char *name, size_t n, unsigned iters)
{
    double t0 = now_ns();
    for (unsigned i = 0; i < iters; i++) {
        void *p = heap_alloc(h, n);
        sink = p;
        heap_free(h, p);
    }
    printf("BENCH %s %.1f ns\n", name, (now_ns() - t0) / iters);
}

int main(void)
{
    struct malloc_backend b = { get, put, NULL, NULL };
    struct heap h;
    heap_init(&h, &b);
    pair(&h, "malloc_free_16", 16, 2000000);
    pair(&h, "malloc_free_200", 200, 2000000);
    pair(&h, "malloc_free_4000", 4000, 2000000);
    pair(&h, "malloc_free_1MiB", 1 << 20, 20000);
    enum { N = 100000 };
    static void *p[N];
    unsigned s = 1;
    double t0 = now_ns();
    for (unsigned i = 0; i < N; i++) {
        s = s * 1103515245u + 12345u;
        p[i] = heap_alloc(&h, (s >> 16) % 2000);
    }
    for (unsigned i = 0; i < N; i++) {
        s = s * 1103515245u + 12345u;
        unsigned j = (s >> 8) % N;
        void *t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    for (unsigned i = 0; i < N; i++)
        heap_free(&h, p[i]);
    printf("BENCH malloc_free_random_0_2000 %.1f ns\n", (now_ns() - t0) / N);
    heap_trim(&h);
    return heap_check(&h, NULL) ? 1 : 0;
}
