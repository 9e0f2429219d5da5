/*
 * In-guest benchmark `bench=memsrv`: the memory server seen by a client.
 * init starts this program twice (startup handle PARENT holds a fresh
 * endpoint); the "server" instance has nothing to serve and ends at once,
 * the "client" instance measures and prints `BENCH` lines:
 *   - ALLOC+FREE round trips for 4 KiB, 64 KiB and 2 MiB (cycles and ns);
 *   - the in-guest copy rate (4 MiB segment to 4 MiB segment): memcpy,
 *     rep movsq, a 64-bit loop;
 *   - a 2 MiB allocation on fragmented memory: its time, the bytes memsrv
 *     moved for it, and the least any compactor could have moved;
 *   - MS_COMPACT_FULL throughput on fragmented memory (4 KiB and 64 KiB
 *     segments), next to the best of those copy rates.
 * Everything it allocated is freed before it exits.
 */
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

#include "bench.h"

#define KIB ((uint64_t)1024)
#define MIB ((uint64_t)1024 * 1024)
#define LARGE (2 * MIB)
#define GRANULE (4 * KIB)

#define REGION_MAX (16 * MIB)       /* the fragmented region, at most */
#define REGION_MIN (4 * MIB)
#define FRAG_ALLOC_REGION (4 * MIB) /* its holes must be punched within 100 ms */
#define SEGS_MAX (REGION_MAX / GRANULE)
#define FILLERS_MAX 4096u           /* segments that fill the rest of memory */

static uint64_t tsc_per_us;
static bool failed;

static uint64_t ns(uint64_t ticks) { return tsc_per_us ? ticks * 1000 / tsc_per_us : 0; }

static void fail(const char *what, int64_t err)
{
    printf("b_memsrv: %s failed: %s\n", what, sys_strerror(err));
    failed = true;
}

/* ---- ALLOC+FREE round trips ------------------------------------------- */

static uint64_t samples[2000];

static void measure_alloc_free(const char *name, uint64_t size, unsigned n)
{
    unsigned flags = size >= LARGE ? MS_ALLOC_LARGE : 0, warm = n / 10;
    for (unsigned i = 0; i < warm + n; i++) {
        struct ms_segment seg;
        uint64_t t0 = bench_tsc();
        int64_t a = ms_alloc(size, 0, flags, 0, &seg);
        int64_t f = a == 0 ? ms_free(seg.handle) : 0;
        uint64_t t1 = bench_tsc();
        if (a != 0 || f != 0) {
            fail(name, a ? a : f);
            return;
        }
        if (i >= warm)
            samples[i - warm] = t1 - t0;
    }
    struct bench_stats s = bench_summarise(samples, n);
    char ns_name[64];
    bench_lines(name, s, "cycles");
    snprintf(ns_name, sizeof(ns_name), "%s_ns", name);
    bench_line(ns_name, ns(s.median), "ns");
}

/* ---- copying in the guest --------------------------------------------- */

enum copy_kind { COPY_MEMCPY, COPY_MOVSQ, COPY_LOOP64 };

static void copy(enum copy_kind kind, void *dst, const void *src, uint64_t n)
{
    if (kind == COPY_MEMCPY) {
        memcpy(dst, src, n); /* libsys: rep movsb */
    } else if (kind == COPY_MOVSQ) {
        n /= 8;
        __asm__ volatile("rep movsq" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
    } else {
        volatile uint64_t *d = dst;
        const uint64_t *s = src;
        for (uint64_t k = 0; k < n / 8; k++)
            d[k] = s[k];
    }
}

/* MB/s of copying one 4 MiB segment into another (median of 9) with
 * memcpy, and for comparison with rep movsq and a 64-bit loop. Returns the
 * best of the three: the rate compaction is judged against. */
static uint64_t measure_copy(void)
{
    static const char *const names[] = { "memcpy_4m", "copy_movsq_4m", "copy_loop64_4m" };
    struct ms_segment a, b;
    int64_t ra = ms_alloc(4 * MIB, 0, 0, 0, &a), rb = ra == 0 ? ms_alloc(4 * MIB, 0, 0, 0, &b) : 0;
    if (ra != 0 || rb != 0) {
        fail("ms_alloc(4 MiB)", ra ? ra : rb);
        if (ra == 0)
            ms_free(a.handle);
        return 0;
    }
    memset(a.addr, 0x3c, a.size);
    uint64_t best = 0;
    for (unsigned kind = COPY_MEMCPY; kind <= COPY_LOOP64; kind++) {
        uint64_t t[9];
        copy(kind, b.addr, a.addr, a.size); /* warm-up: both touched, TLB filled */
        for (unsigned i = 0; i < 9; i++) {
            uint64_t t0 = bench_tsc();
            copy(kind, b.addr, a.addr, a.size);
            t[i] = bench_tsc() - t0;
        }
        uint64_t rate = bench_mb_per_s(a.size, bench_summarise(t, 9).median, tsc_per_us);
        bench_line(names[kind], rate, "MB/s");
        best = rate > best ? rate : best;
    }
    ms_free(a.handle);
    ms_free(b.handle);
    return best;
}

/* ---- fragmented memory ------------------------------------------------ */

/* The region's segments (all the same size) and the filler around it. */
struct frag {
    uint64_t seg_size;
    unsigned nsegs, nfill;
    handle_t seg[SEGS_MAX];
    uint64_t sid[SEGS_MAX], phys[SEGS_MAX];
    bool live[SEGS_MAX];
    handle_t fill[FILLERS_MAX];
    uint64_t residual_free;   /* free bytes left once memory was filled */
    uint64_t least_moved;     /* live bytes in the emptiest 2 MiB window */
};

static struct frag frag;

static bool stats(struct ms_stats_global *g)
{
    int64_t r = ms_stats_global(g);
    if (r != 0)
        fail("ms_stats_global", r);
    return r == 0;
}

static bool add_filler(struct frag *f, uint64_t size, unsigned flags)
{
    struct ms_segment seg;
    if (f->nfill == FILLERS_MAX || ms_alloc(size, 0, flags, 0, &seg) != 0)
        return false;
    f->fill[f->nfill++] = seg.handle;
    return true;
}

/* Takes every free byte that is not in the region but one granule: large
 * segments while a 2 MiB-aligned window surely exists, then pieces no
 * larger than the largest free run (so memsrv never has to compact to
 * answer). The granule left keeps memsrv's fragmentation score high, so
 * freeing later does not cross its threshold (which would start a
 * background compaction step at once). */
static void fill_memory(struct frag *f)
{
    struct ms_stats_global g;
    while (stats(&g) && g.largest_free >= 2 * LARGE && add_filler(f, LARGE, MS_ALLOC_LARGE))
        ;
    while (stats(&g) && g.free_bytes > GRANULE && f->nfill < FILLERS_MAX) {
        uint64_t size = g.largest_free < LARGE ? g.largest_free : LARGE / 2;
        if (size > g.free_bytes - GRANULE)
            size = g.free_bytes - GRANULE;
        size &= ~(GRANULE - 1);
        if (size == 0 || !add_filler(f, size, 0))
            break;
    }
    f->residual_free = stats(&g) ? g.free_bytes : 0;
}

/* Waits until memsrv's background compaction has stopped moving things. */
static void settle(void)
{
    struct ms_stats_global a, b;
    if (!stats(&a))
        return;
    for (unsigned i = 0; i < 40; i++) {
        sys_sleep(250ull * 1000 * 1000);
        if (!stats(&b))
            return;
        if (b.moves == a.moves && b.compactions == a.compactions)
            return;
        a = b;
    }
    printf("b_memsrv: background compaction still busy after 10 s\n");
}

/*
 * Fills `region` bytes with segments of seg_size and the rest of memory with
 * filler, waits for memsrv to settle, learns each region segment's physical
 * base, and chooses three quarters of them to free (by physical address: in
 * each 2 MiB block, all but every fourth seg_size slot), so that free memory
 * will be all in holes smaller than a large page. Computes the least bytes
 * a compactor must move to empty one 2 MiB-aligned window: with no other
 * free memory (one granule aside), 2 MiB minus the most this program will
 * free in one window (everything else in a window is in use by someone).
 */
static bool prepare(struct frag *f, uint64_t region, uint64_t seg_size)
{
    memset(f, 0, sizeof(*f));
    f->seg_size = seg_size;
    for (uint64_t done = 0; done < region && f->nsegs < SEGS_MAX; done += seg_size) {
        struct ms_segment seg;
        int64_t r = ms_alloc(seg_size, 0, 0, 0, &seg);
        if (r != 0) {
            fail("ms_alloc for the region", r);
            return false;
        }
        f->seg[f->nsegs] = seg.handle;
        f->sid[f->nsegs] = seg.sid;
        f->live[f->nsegs++] = true;
    }
    fill_memory(f);
    settle();
    for (unsigned i = 0; i < f->nsegs; i++) {
        struct abi_seg_info info;
        int64_t r = sys_seg_info(f->seg[i], &info);
        if (r < 0) {
            fail("sys_seg_info", r);
            return false;
        }
        f->phys[i] = info.phys;
    }
    /* What each 2 MiB window will gain, in an open-addressed table. */
    enum { WINDOWS = 2 * SEGS_MAX }; /* more slots than segments: never full */
    static uint64_t win_base[WINDOWS], win_freed[WINDOWS];
    memset(win_base, 0xff, sizeof(win_base));
    memset(win_freed, 0, sizeof(win_freed));
    uint64_t best = 0;
    for (unsigned i = 0; i < f->nsegs; i++) {
        if (((f->phys[i] / seg_size) & 3) == 0)
            continue; /* every fourth slot stays */
        f->live[i] = false;
        uint64_t w = f->phys[i] / LARGE;
        unsigned slot = (unsigned)((w * 0x9e3779b97f4a7c15ull) >> 40) % WINDOWS;
        while (win_base[slot] != w && win_base[slot] != UINT64_MAX)
            slot = (slot + 1) % WINDOWS;
        win_base[slot] = w;
        win_freed[slot] += seg_size;
        if (win_freed[slot] > best)
            best = win_freed[slot];
    }
    f->least_moved = LARGE - best;
    return true;
}

/* Frees the segments prepare() chose. */
static bool punch_holes(struct frag *f)
{
    for (unsigned i = 0; i < f->nsegs; i++) {
        if (f->live[i])
            continue;
        int64_t r = ms_free(f->seg[i]);
        if (r != 0) {
            fail("ms_free in the region", r);
            return false;
        }
    }
    return true;
}

static void release(struct frag *f)
{
    for (unsigned i = 0; i < f->nsegs; i++)
        if (f->live[i] && ms_free(f->seg[i]) != 0)
            printf("b_memsrv: could not free region segment %u\n", i);
    for (unsigned i = 0; i < f->nfill; i++)
        if (ms_free(f->fill[i]) != 0)
            printf("b_memsrv: could not free filler %u\n", i);
    f->nsegs = f->nfill = 0;
}

/* The 2 MiB allocation on memory fragmented with 4 KiB segments. memsrv's
 * next background step comes 100 ms after the first free: the holes are
 * punched and the allocation made before that (the time is printed). */
static void measure_fragmented_alloc(struct frag *f, uint64_t region)
{
    struct ms_stats_global g0, g1, g2, g3;
    if (!stats(&g0) || !prepare(f, region, GRANULE) || !stats(&g1))
        return;
    uint64_t t0 = bench_tsc();
    if (!punch_holes(f))
        return;
    uint64_t t1 = bench_tsc();
    if (!stats(&g2))
        return;
    struct ms_segment big;
    uint64_t t2 = bench_tsc();
    int64_t r = ms_alloc(LARGE, LARGE, MS_ALLOC_LARGE, 0, &big);
    uint64_t t3 = bench_tsc();
    if (!stats(&g3))
        return;
    printf("b_memsrv: region %lu KiB in %u segments of 4 KiB, %u filler segments, %lu bytes left free; "
           "%lu moves (%lu KiB) by memsrv while filling; holes punched in %lu us with %lu moves meanwhile; "
           "largest free run then %lu KiB\n",
           region / KIB, f->nsegs, f->nfill, f->residual_free, g1.moves - g0.moves,
           (g1.bytes_moved - g0.bytes_moved) / KIB, ns(t1 - t0) / 1000, g2.moves - g1.moves, g2.largest_free / KIB);
    bench_line("frag_alloc_2m_ok", r == 0, "bool");
    if (r != 0)
        printf("b_memsrv: the 2 MiB allocation on fragmented memory failed: %s\n", sys_strerror(r));
    uint64_t moved = g3.bytes_moved - g2.bytes_moved;
    bench_line("frag_alloc_2m_cycles", t3 - t2, "cycles");
    bench_line("frag_alloc_2m_ns", ns(t3 - t2), "ns");
    bench_line("frag_alloc_2m_moves", g3.moves - g2.moves, "moves");
    /* 1: the allocation's own targeted run; more: a background step too. */
    bench_line("frag_alloc_2m_compaction_runs", g3.compactions - g2.compactions, "runs");
    bench_line("frag_alloc_2m_bytes_moved", moved, "bytes");
    bench_line("frag_alloc_2m_least_bytes", f->least_moved, "bytes");
    bench_line("frag_alloc_2m_moved_vs_least", f->least_moved ? moved * 1000 / f->least_moved : 0, "permille");
    if (r == 0)
        ms_free(big.handle);
}

/* MS_COMPACT_FULL on the current picture. */
static void measure_compaction(const char *name, uint64_t copy_rate)
{
    uint64_t moves = 0, bytes = 0;
    uint64_t t0 = bench_tsc();
    int64_t r = ms_compact(MS_COMPACT_FULL, 0, 0, 0, &moves, &bytes);
    uint64_t t1 = bench_tsc();
    if (r != 0) {
        fail("ms_compact(FULL)", r);
        return;
    }
    char line[64];
    uint64_t rate = bench_mb_per_s(bytes, t1 - t0, tsc_per_us);
    snprintf(line, sizeof(line), "%s_mb_s", name);
    bench_line(line, rate, "MB/s");
    snprintf(line, sizeof(line), "%s_bytes", name);
    bench_line(line, bytes, "bytes");
    snprintf(line, sizeof(line), "%s_moves", name);
    bench_line(line, moves, "moves");
    snprintf(line, sizeof(line), "%s_ns", name);
    bench_line(line, ns(t1 - t0), "ns");
    snprintf(line, sizeof(line), "%s_vs_best_copy", name);
    bench_line(line, copy_rate ? rate * 1000 / copy_rate : 0, "permille");
}

static int client(void)
{
    tsc_per_us = bench_tsc_per_us();
    if (tsc_per_us == 0) {
        printf("b_memsrv: no TSC rate from sys_kinfo\n");
        return 1;
    }
    struct ms_stats_global g;
    if (!stats(&g))
        return 1;
    uint64_t base_free = g.free_bytes;
    printf("b_memsrv: TSC %lu per us; memsrv manages %lu KiB, %lu KiB free\n", tsc_per_us, g.total_bytes / KIB,
           g.free_bytes / KIB);

    measure_alloc_free("ms_alloc_free_4k", 4 * KIB, 2000);
    measure_alloc_free("ms_alloc_free_64k", 64 * KIB, 2000);
    measure_alloc_free("ms_alloc_free_2m", LARGE, 200);
    uint64_t copy_rate = measure_copy();

    /* A quarter of free memory, 4 to 16 MiB, whole large pages. */
    uint64_t region = (g.free_bytes / 4) & ~(LARGE - 1);
    region = region > REGION_MAX ? REGION_MAX : region;
    if (region < REGION_MIN) {
        printf("b_memsrv: only %lu KiB free: no room for the fragmentation runs\n", g.free_bytes / KIB);
        return 1;
    }
    measure_fragmented_alloc(&frag, region > FRAG_ALLOC_REGION ? FRAG_ALLOC_REGION : region);
    release(&frag);
    if (prepare(&frag, region, GRANULE) && punch_holes(&frag))
        measure_compaction("compact_full_4k", copy_rate);
    release(&frag);
    if (prepare(&frag, region, 64 * KIB) && punch_holes(&frag))
        measure_compaction("compact_full_64k", copy_rate);
    release(&frag);

    if (stats(&g) && g.free_bytes != base_free)
        printf("b_memsrv: free bytes %lu at the end, %lu at the start\n", g.free_bytes, base_free);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "server") == 0)
            return 0; /* nothing to serve: memsrv is the server measured */
    return client();
}
