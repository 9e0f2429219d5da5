/*
 * In-guest tests: the protocol between the suite's restart tests
 * (tests/guest/suite/restart.c) and their clients (t_restart.c). The suite
 * starts the clients, kills or faults the memory server through init while
 * they work, and tells them when to stop.
 *
 * Startup slots besides the usual ones:
 *   ABI_STARTUP_PARENT   the suite's endpoint (send): a one-way RESTART_READY
 *                        once a client is under way (w0 its index, w1 a
 *                        count the mode defines); the holder's
 *                        RESTART_REPORT once stopped (w0 segments moved,
 *                        w1 segments kept)
 *   ABI_STARTUP_SERVICE  churn: the endpoint this client receives its
 *                        neighbour's segments on (receive)
 *   RESTART_SLOT_PEER    churn: the next client's endpoint (send)
 *   RESTART_SLOT_STOP    a notification (wait) the suite signals when the
 *                        client may finish
 */
#ifndef GUEST_RESTART_H
#define GUEST_RESTART_H

#include <stdint.h>

#define RESTART_SLOT_PEER 5
#define RESTART_SLOT_STOP 6

/* Labels on the suite's endpoint and between the churn clients. */
#define RESTART_READY   0x7265616479ull   /* to the suite */
#define RESTART_REPORT  0x7265706f7274ull /* to the suite */
#define RESTART_SEGMENT 0x7365676dull     /* a checksummed segment, to the next client */
#define RESTART_DONE    0x646f6e65ull     /* the last message to the next client */

/* A checksummed segment: words 0 and 1 hold its seed and size, every
 * other word a mix of the seed and its index, so a word moved, lost or
 * zeroed anywhere shows. */
static inline uint64_t restart_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static inline void restart_fill(void *addr, uint64_t size, uint64_t seed)
{
    uint64_t *w = addr;
    w[0] = seed | 1;
    w[1] = size;
    for (uint64_t i = 2; i < size / 8; i++)
        w[i] = restart_mix(w[0] + i);
}

static inline bool restart_intact(const void *addr, uint64_t size)
{
    const uint64_t *w = addr;
    if (size < 16 || w[1] != size || !(w[0] & 1))
        return false;
    for (uint64_t i = 2; i < size / 8; i++)
        if (w[i] != restart_mix(w[0] + i))
            return false;
    return true;
}

#endif
