/*
 * Host tests: a small reproducible random generator (xorshift64*) for the
 * randomized and fuzz tests. Each test seeds it with a fixed value so that a
 * failure names an iteration that reproduces.
 */
#ifndef TEST_RNG_H
#define TEST_RNG_H

#include <stdint.h>

static uint64_t test_rng_state = 0x9e3779b97f4a7c15ull;

static inline void test_rng_seed(uint64_t seed) { test_rng_state = seed ? seed : 1; /* xorshift stays at 0 forever */ }

static inline uint64_t test_rnd(void)
{
    test_rng_state ^= test_rng_state >> 12;
    test_rng_state ^= test_rng_state << 25;
    test_rng_state ^= test_rng_state >> 27;
    return test_rng_state * 0x2545f4914f6cdd1dull;
}

#endif
