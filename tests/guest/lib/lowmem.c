/*
 * In-guest test library: where free memory lies (lowmem.h). Linked into
 * t_mem and t_suite.
 */
#include <libsys/memsrv.h>
#include "lowmem.h"

uint64_t lowmem_top_of_ram(void)
{
    struct ms_stats_region r;
    uint64_t top = 0;
    for (unsigned i = 0; ms_stats_region(i, &r) == 0; i++)
        top = r.base + r.size > top ? r.base + r.size : top;
    return top;
}

uint64_t lowmem_fill(uint64_t step, bool (*take)(void *ctx, uint64_t limit), bool (*enough)(void *ctx), void *ctx)
{
    struct ms_stats_region first = { 0 };
    ms_stats_region(0, &first);
    uint64_t top = lowmem_top_of_ram();
    uint64_t limit = (first.base / step + 1) * step;
    for (;;) {
        while (take(ctx, limit))
            ;
        if (enough(ctx) || limit >= top)
            return limit;
        limit += step;
    }
}
