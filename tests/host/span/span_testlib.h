/*
 * Host tests of the span allocator: shared helpers. A snapshot of the books
 * (to prove a failed call changed nothing) and a trivially correct
 * reference model: one byte per granule of simulated physical memory.
 */
#ifndef SPAN_TESTLIB_H
#define SPAN_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <span/span.h>

struct span_snapshot {
    struct span_stats stats;
    size_t count;
    size_t capacity;
    struct span_info *spans;
};

void snapshot_take(const struct span_alloc *a, struct span_snapshot *s);
bool snapshot_equal(const struct span_snapshot *x, const struct span_snapshot *y);
void snapshot_free(struct span_snapshot *s);

/* Reference model: granule g covers [base + g*4K, base + (g+1)*4K). */
enum ref_state { REF_HOLE = 0, REF_FREE, REF_USED };

struct ref_model {
    uint64_t base;
    size_t granules;
    uint8_t *state;  /* enum ref_state */
    uint8_t *region; /* region index + 1 per granule, 0 in holes */
    uint8_t *locked; /* 1 on granules of locked segments */
};

void ref_init(struct ref_model *m, uint64_t base, size_t granules);
void ref_free_model(struct ref_model *m);
void ref_add_region(struct ref_model *m, uint64_t base, uint64_t size, unsigned index);
void ref_set(struct ref_model *m, uint64_t base, uint64_t size, enum ref_state state);
bool ref_all(const struct ref_model *m, uint64_t base, uint64_t size, enum ref_state state);
/* Is there a free place for size at align ending at or below hi (exclusive)? */
bool ref_can_place(const struct ref_model *m, uint64_t size, uint64_t align, uint64_t hi);
/* Largest free run (within one region). */
uint64_t ref_largest_free(const struct ref_model *m);
/* Compares every span of a with the model; returns false and prints why. */
bool ref_matches(const struct ref_model *m, const struct span_alloc *a);

/* Runs span_check; prints the fault and returns false when it fails. */
bool check_books(const struct span_alloc *a, const char *when);

/* splitmix64: small, fast, and good enough for test workloads. */
static inline uint64_t test_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t test_seed(int argc, char **argv, int argi);

#endif
