/*
 * Benchmark of kernel/core/vmarea.c (not a test: timings are printed, never
 * asserted). For array sizes of about 10,000 and 100,000 areas: an alloc of
 * a random small size plus the free of a random used area, and a find.
 * Prints "BENCH <name> <value> <unit>" lines. Argument: optional seed.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../common/test_rng.h"
#include "vmarea_testlib.h"

#define PG VMAREA_PAGE_SIZE

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "bench_vmarea: %s: %d\n", what, err);
    exit(1);
}

static void bench(uint64_t target_areas, unsigned rounds)
{
    struct test_provider prov;
    struct vmarea_pages pages = test_pages(&prov);
    struct vmareas va;
    const uint64_t base = 1ull << 32;
    if (vmareas_init(&va, base, base + (1ull << 40), &pages))
        die("init", -1);
    uint64_t fill = target_areas * 3 / 2;
    uint64_t *live = malloc(fill * sizeof(*live)), nlive = 0, at;
    /* Allocate 1.5 times the target, free a random half: used areas and the
     * free gaps between them come to about the target. */
    for (uint64_t i = 0; i < fill; i++) {
        int err = vmareas_alloc(&va, (1 + test_rnd() % 16) * PG, &at);
        if (err)
            die("fill", err);
        live[nlive++] = at;
    }
    for (uint64_t i = 0; i < fill / 2; i++) {
        uint64_t k = test_rnd() % nlive;
        if (vmareas_free(&va, live[k], NULL))
            die("thin", -1);
        live[k] = live[--nlive];
    }
    uint64_t count_before = vmareas_count(&va);
    uint64_t t0 = now_ns();
    for (unsigned r = 0; r < rounds; r++) {
        int err = vmareas_alloc(&va, (1 + test_rnd() % 16) * PG, &at);
        if (err)
            die("alloc", err);
        uint64_t k = test_rnd() % nlive;
        uint64_t victim = live[k];
        live[k] = at;
        if (vmareas_free(&va, victim, NULL))
            die("free", -1);
    }
    uint64_t t1 = now_ns();
    uint64_t found = 0;
    for (unsigned r = 0; r < rounds; r++)
        found += vmareas_find(&va, live[test_rnd() % nlive] + PG / 2, NULL, NULL) == 0;
    uint64_t t2 = now_ns();
    if (found != rounds)
        die("find", -1);
    const char *why = NULL;
    if (vmareas_check(&va, &why))
        die(why, -1);
    printf("BENCH vmarea_alloc_free_%lluk %.0f ns (areas %llu -> %llu, %u rounds)\n",
           (unsigned long long)(target_areas / 1000), (double)(t1 - t0) / rounds, (unsigned long long)count_before,
           (unsigned long long)vmareas_count(&va), rounds);
    printf("BENCH vmarea_find_%lluk %.0f ns\n", (unsigned long long)(target_areas / 1000), (double)(t2 - t1) / rounds);
    /* Tear-down by frees in address order: each free shifts the array. */
    uint64_t t3 = now_ns(), n = 0, i = 0;
    /* Settled each time round: a free may leave its merge for the next call. */
    while ((vmareas_settle(&va), vmareas_count(&va)) > 1) {
        uint64_t start, size;
        bool used;
        vmareas_area(&va, i, &start, &size, &used);
        if (used) {
            vmareas_free(&va, start, NULL);
            n++;
        } else {
            i++;
        }
        if (i >= vmareas_count(&va))
            i = 0;
    }
    uint64_t t4 = now_ns();
    printf("BENCH vmarea_free_ascending_%lluk %.0f ns (%llu frees)\n", (unsigned long long)(target_areas / 1000),
           (double)(t4 - t3) / (double)(n ? n : 1), (unsigned long long)n);
    printf("BENCH vmarea_pages_%lluk %ld pages after teardown\n", (unsigned long long)(target_areas / 1000),
           prov.outstanding);
    vmareas_destroy(&va);
    free(live);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
    printf("bench_vmarea: seed %llu\n", (unsigned long long)seed);
    test_rng_seed(seed);
    bench(10000, 200000);
    bench(100000, 50000);
    return 0;
}
