/*
 * In-guest test library: where free memory lies, for tests that fill the
 * low end of RAM (t_mem's fragmenter and pinned windows, the suite's churn
 * ballast). They look for it rather than assume a layout: the kernel's
 * frame pool (1/16 of RAM, placed low) and the boot modules may take the
 * bottom of memory, and RAM may have holes.
 */
#ifndef GUEST_LOWMEM_H
#define GUEST_LOWMEM_H

#include <stdbool.h>
#include <stdint.h>

/* The end of the highest RAM region memsrv manages. */
uint64_t lowmem_top_of_ram(void);

/*
 * Fills memory below a rising limit. The limit starts one step above the
 * first region's base; take(ctx, limit) is called until it fails (nothing
 * more fits below the limit, or the caller has no room to keep more); then,
 * unless enough(ctx) or the limit has passed the top of RAM, the limit
 * rises one step and the fill goes on. Returns the final limit: below it,
 * everything free was taken unless the caller ran out of room.
 */
uint64_t lowmem_fill(uint64_t step, bool (*take)(void *ctx, uint64_t limit), bool (*enough)(void *ctx), void *ctx);

#endif
