/*
 * In-guest benchmark `bench=memsrv`: the memory server seen by a client.
 * init starts this program twice (startup handle PARENT holds a fresh
 * endpoint); the "server" instance has nothing to serve and ends at once,
 * the "client" instance measures and prints `BENCH` lines:
 *   - ALLOC+FREE round trips for 4 KiB, 64 KiB and 2 MiB (cycles and ns),
 *     and ALLOC_BATCH+FREE_BATCH of 1, 4 and 8 segments, per segment;
 *   - the in-guest copy rate (4 MiB segment to 4 MiB segment): memcpy,
 *     rep movsq, a 64-bit loop;
 *   - a 2 MiB allocation on fragmented memory: its time, the bytes memsrv
 *     moved for it, and the least any compactor could have moved;
 *   - MS_COMPACT_FULL throughput on fragmented memory (4 KiB and 64 KiB
 *     segments), next to the best of those copy rates;
 *   - how long 4 KiB allocations wait while another thread of this client
 *     has memsrv compact (MS_COMPACT_FULL, then huge allocations that fail);
 *   - after a burst of frees leaves memory fragmented, how long until a
 *     2 MiB aligned run is there without direct compaction (NOWAIT);
 *   - a churn below a limit around pinned ballast (as the suite's churn
 *     test): the share of bytes moved in the background, and how long the
 *     churn's allocations took.
 * Everything it allocated is freed before it exits.
 */
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

#include "bench.h"
#include "lowmem.h"

#define KIB     ((uint64_t)1024)
#define MIB     ((uint64_t)1024 * 1024)
#define LARGE   (2 * MIB)
#define GRANULE (4 * KIB)

#define REGION_MAX        (16 * MIB) /* the fragmented region, at most */
#define REGION_MIN        (4 * MIB)
#define FRAG_ALLOC_REGION (4 * MIB) /* its holes must be punched within 100 ms */
#define SEGS_MAX          (REGION_MAX / GRANULE)
#define FILLERS_MAX       4096u /* segments that fill the rest of memory */

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

/* One ALLOC_BATCH of n segments of `size` and one FREE_BATCH of them, per
 * segment (the pair's time over n), beside the single pair above. */
static void measure_batch(const char *name, uint64_t size, unsigned n, unsigned rounds)
{
    unsigned warm = rounds / 10;
    for (unsigned i = 0; i < warm + rounds; i++) {
        struct ms_segment segs[MS_BATCH_MAX];
        handle_t h[MS_BATCH_MAX];
        uint64_t t0 = bench_tsc();
        int64_t a = ms_alloc_batch(n, size, 0, 0, segs), f = 0;
        if (a == 0) {
            for (unsigned k = 0; k < n; k++)
                h[k] = segs[k].handle;
            f = ms_free_batch(h, n);
        }
        uint64_t t1 = bench_tsc();
        if (a != 0 || f != 0) {
            fail(name, a ? a : f);
            return;
        }
        if (i >= warm)
            samples[i - warm] = (t1 - t0) / n;
    }
    struct bench_stats s = bench_summarise(samples, rounds);
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
    unsigned nlarge;        /* the first fillers, of LARGE bytes each */
    uint64_t residual_free; /* free bytes left once memory was filled */
    uint64_t least_moved;   /* live bytes in the emptiest 2 MiB window */
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
        f->nlarge++;
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

/* Allocates the region's segments, `region` bytes of seg_size, with
 * ms_alloc's flags: 0, or the error that stopped it. */
static int64_t add_region(struct frag *f, uint64_t region, unsigned flags)
{
    for (uint64_t done = 0; done < region && f->nsegs < SEGS_MAX; done += f->seg_size) {
        struct ms_segment seg;
        int64_t r = ms_alloc(f->seg_size, 0, flags, 0, &seg);
        if (r != 0)
            return r;
        f->seg[f->nsegs] = seg.handle;
        f->sid[f->nsegs] = seg.sid;
        f->live[f->nsegs++] = true;
    }
    return 0;
}

/* The region in windows of its own: memory filled first, then as many of
 * the 2 MiB fillers as the region needs given back and taken again in
 * seg_size segments, up to the end of memory (the books take some room
 * too). A region allocated first lands among the boot modules, and every
 * 2 MiB window then holds one of 64 KiB or more that no hole of the region
 * can take: the 2 MiB allocation would measure that, not the eviction of
 * small segments. */
static bool region_in_own_windows(struct frag *f, uint64_t region)
{
    unsigned windows = (unsigned)((region + LARGE - 1) / LARGE);
    fill_memory(f);
    if (f->nlarge < windows) {
        printf("b_memsrv: %u free 2 MiB windows, %u wanted\n", f->nlarge, windows);
        return false;
    }
    for (unsigned i = 0; i < windows; i++)
        if (ms_free(f->fill[i]) != 0)
            return false;
    memmove(f->fill, f->fill + windows, (f->nfill - windows) * sizeof(f->fill[0]));
    f->nfill -= windows;
    f->nlarge -= windows;
    add_region(f, region, MS_ALLOC_NOWAIT); /* to the end of memory */
    struct ms_stats_global g;
    f->residual_free = stats(&g) ? g.free_bytes : 0;
    return f->nsegs > 0;
}

/*
 * Fills `region` bytes with segments of seg_size and the rest of memory with
 * filler (own_windows: the region in 2 MiB windows of its own, see
 * region_in_own_windows), waits for memsrv to settle, learns each region
 * segment's physical base, and chooses three quarters of them to free (by
 * physical address: in each 2 MiB block, all but every fourth seg_size
 * slot), so that free memory will be all in holes smaller than a large
 * page. Computes the least bytes a compactor must move to empty one 2
 * MiB-aligned window: with no other free memory (one granule aside), 2 MiB
 * minus the most this program will free in one window (everything else in
 * a window is in use by someone).
 */
static bool prepare(struct frag *f, uint64_t region, uint64_t seg_size, bool own_windows)
{
    memset(f, 0, sizeof(*f));
    f->seg_size = seg_size;
    if (own_windows) {
        if (!region_in_own_windows(f, region))
            return false;
    } else {
        int64_t r = add_region(f, region, 0);
        if (r != 0) {
            fail("ms_alloc for the region", r);
            return false;
        }
        fill_memory(f);
    }
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
    if (!stats(&g0) || !prepare(f, region, GRANULE, true) || !stats(&g1))
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
/* The FULL request's own figures (what its pass moved, how long it took to
 * answer), and the compactor's rate over everything it moved since before
 * the holes were punched (`before`): its proactive pass starts as soon as
 * the holes appear and may leave the FULL pass little to do, so the rate
 * against the copy is its bytes over its busy time. */
/* One BENCH line named "<name>_<what>". */
static void named_line(const char *name, const char *what, uint64_t value, const char *unit)
{
    char line[64];
    snprintf(line, sizeof(line), "%s_%s", name, what);
    bench_line(line, value, unit);
}

static void measure_compaction(const char *name, uint64_t copy_rate, const struct ms_stats_compaction *before)
{
    uint64_t moves = 0, bytes = 0;
    uint64_t t0 = bench_tsc();
    int64_t r = ms_compact(MS_COMPACT_FULL, 0, 0, 0, &moves, &bytes);
    uint64_t t1 = bench_tsc();
    if (r != 0) {
        fail("ms_compact(FULL)", r);
        return;
    }
    struct ms_stats_compaction after;
    if (ms_stats_compaction(&after) == 0) {
        uint64_t bg = after.bg_bytes - before->bg_bytes, busy = after.busy_ns - before->busy_ns;
        uint64_t busy_rate = busy ? bg * 1000 / busy : 0; /* bytes per us = MB/s */
        named_line(name, "bg_bytes", bg, "bytes");
        named_line(name, "busy_ns", busy, "ns");
        named_line(name, "busy_mb_s", busy_rate, "MB/s");
        named_line(name, "busy_vs_best_copy", copy_rate ? busy_rate * 1000 / copy_rate : 0, "permille");
    }
    uint64_t rate = bench_mb_per_s(bytes, t1 - t0, tsc_per_us);
    named_line(name, "mb_s", rate, "MB/s");
    named_line(name, "bytes", bytes, "bytes");
    named_line(name, "moves", moves, "moves");
    named_line(name, "ns", ns(t1 - t0), "ns");
    named_line(name, "vs_best_copy", copy_rate ? rate * 1000 / copy_rate : 0, "permille");
}

/* ---- allocations while memsrv compacts --------------------------------- */

#define STALL_SAMPLES    4000u
#define STALL_HUGE_TRIES 4u

static uint8_t compactor_stack[16384] __attribute__((aligned(16)));
static volatile bool stall_done;
static uint64_t stall_full_ticks, stall_huge_ticks;
static int64_t stall_full_result;

/* The other client: a full compaction, then huge allocations that cannot
 * be met (half of free memory, 2 MiB aligned, while every 2 MiB window is
 * fragmented), each of which memsrv tries to compact for. */
static void stall_compactor(uint64_t unused)
{
    (void)unused;
    uint64_t t0 = bench_tsc();
    stall_full_result = ms_compact(MS_COMPACT_FULL, 0, 0, 0, 0, 0);
    uint64_t t1 = bench_tsc();
    struct ms_stats_global g = { 0 };
    ms_stats_global(&g);
    for (unsigned i = 0; i < STALL_HUGE_TRIES; i++) {
        struct ms_segment seg;
        uint64_t size = (g.free_bytes / 2) & ~(LARGE - 1);
        if (ms_alloc(size ? size : LARGE, LARGE, MS_ALLOC_LARGE, 0, &seg) == 0)
            ms_free(seg.handle);
    }
    stall_full_ticks = t1 - t0;
    stall_huge_ticks = bench_tsc() - t1;
    stall_done = true;
    sys_thread_exit();
}

static uint64_t stall_samples[STALL_SAMPLES];

/*
 * On a fragmented picture, one thread asks for a full compaction and huge
 * allocations; this one allocates and frees 4 KiB meanwhile, timing each
 * request (the last STALL_SAMPLES of them). Every allocation must succeed (memory for 4 KiB is there all
 * along); how long they took is reported, not judged.
 */
static void measure_stall(struct frag *f, uint64_t region)
{
    if (!prepare(f, region, GRANULE, false) || !punch_holes(f))
        return;
    stall_done = false;
    int64_t th = sys_thread_create(stall_compactor, compactor_stack + sizeof(compactor_stack), 0);
    if (th < 0) {
        fail("sys_thread_create", th);
        return;
    }
    unsigned n = 0, refused = 0;
    uint64_t max = 0;
    while (!stall_done || n < 16) {
        struct ms_segment seg;
        uint64_t t0 = bench_tsc();
        int64_t r = ms_alloc(GRANULE, 0, 0, 0, &seg);
        uint64_t t1 = bench_tsc();
        if (r != 0) {
            refused++;
            continue;
        }
        ms_free(seg.handle);
        uint64_t t2 = bench_tsc();
        /* Both requests are samples: either may meet the compaction. */
        stall_samples[n++ % STALL_SAMPLES] = t1 - t0;
        stall_samples[n++ % STALL_SAMPLES] = t2 - t1;
        max = t1 - t0 > max ? t1 - t0 : max;
        max = t2 - t1 > max ? t2 - t1 : max;
    }
    uint64_t total = n;
    if (n > STALL_SAMPLES)
        n = STALL_SAMPLES; /* the last ones, a ring */
    sys_thread_wait((handle_t)th, TIMEOUT_FOREVER);
    sys_handle_close((handle_t)th);
    struct bench_stats s = bench_summarise(stall_samples, n);
    bench_line("stall_full_result", (uint64_t)(stall_full_result < 0 ? -stall_full_result : 0), "errno");
    bench_line("stall_full_ns", ns(stall_full_ticks), "ns");
    bench_line("stall_huge_allocs_ns", ns(stall_huge_ticks), "ns");
    bench_line("stall_requests", total, "requests");
    bench_line("stall_allocs_refused", refused, "allocs");
    bench_line("stall_request_median_ns", ns(s.median), "ns");
    bench_line("stall_request_p99_ns", ns(s.p99), "ns");
    bench_line("stall_request_max_ns", ns(max), "ns");
}

/* ---- 2 MiB after a burst of frees ----------------------------------------- */

#define READY_POLL_NS    (1000ull * 1000)
#define READY_GIVE_UP_NS (20ull * 1000 * 1000 * 1000)

/* How long after the holes are punched a 2 MiB aligned allocation succeeds
 * without direct compaction (MS_ALLOC_NOWAIT), asked every millisecond. */
static void measure_ready(struct frag *f, uint64_t region)
{
    if (!prepare(f, region, GRANULE, false))
        return;
    uint64_t t0 = sys_clock();
    if (!punch_holes(f))
        return;
    uint64_t punched = sys_clock(), tries = 0;
    int64_t r;
    struct ms_segment seg;
    do {
        tries++;
        r = ms_alloc(LARGE, LARGE, MS_ALLOC_LARGE | MS_ALLOC_NOWAIT, 0, &seg);
        if (r != 0)
            sys_sleep(READY_POLL_NS);
    } while (r != 0 && sys_clock() - t0 < READY_GIVE_UP_NS);
    uint64_t t1 = sys_clock();
    bench_line("frag_burst_2m_ready", r == 0, "bool");
    bench_line("frag_burst_2m_ready_us", (t1 - t0) / 1000, "us");
    bench_line("frag_burst_punch_us", (punched - t0) / 1000, "us");
    bench_line("frag_burst_2m_tries", tries, "tries");
    if (r == 0)
        ms_free(seg.handle);
}

/* ---- churn below a limit ------------------------------------------------ */

#define CHURN_OPS          3000u
#define CHURN_LIVE_MAX     48u
#define CHURN_MEAN_SEGMENT (300 * KIB)
#define BALLAST_MAX        1024u
#define BALLAST_STEP       (16 * MIB)

struct churn {
    struct ms_segment ballast[BALLAST_MAX];
    unsigned nballast, room_mib;
    uint64_t limit;
    struct ms_segment live[CHURN_LIVE_MAX];
    uint64_t alloc_ticks[CHURN_OPS];
};

static struct churn churn_state;
static uint64_t churn_rng = 0x2545f4914f6cdd1dull;

static uint64_t churn_rand(void)
{
    churn_rng ^= churn_rng << 13;
    churn_rng ^= churn_rng >> 7;
    churn_rng ^= churn_rng << 17;
    return churn_rng;
}

static handle_t dma_device(void) { return startup_handle(ABI_STARTUP_DEVICE); }

static bool take_ballast(void *ctx, uint64_t limit)
{
    struct churn *c = ctx;
    if (c->nballast == BALLAST_MAX ||
        ms_alloc(MIB, 0, MS_ALLOC_BELOW | MS_ALLOC_NOWAIT, limit, &c->ballast[c->nballast]) != 0)
        return false;
    sys_seg_pin(c->ballast[c->nballast++].handle, dma_device());
    return true;
}

static bool enough_ballast(void *ctx)
{
    const struct churn *c = ctx;
    return c->nballast == BALLAST_MAX || c->nballast >= 3 * c->room_mib;
}

static uint64_t churn_size(void)
{
    uint64_t r = churn_rand() % 100;
    if (r < 80)
        return (churn_rand() % 64 + 1) * 4 * KIB;
    if (r < 98)
        return (churn_rand() % 448 + 65) * 4 * KIB;
    return (churn_rand() % 3 + 2) * MIB;
}

/*
 * The suite's churn, from one client: 1 MiB ballast, pinned, fills low
 * memory below a rising limit, every third piece is freed (a scattered
 * room), and random allocations (80% 4-256 KiB, 18% to 2 MiB, 2% 2-4 MiB)
 * and frees below the limit keep about two and a half times the room
 * asked for. The background share is measured over the churn alone.
 */
static void measure_churn(void)
{
    struct churn *c = &churn_state;
    struct ms_stats_global g;
    if (!stats(&g))
        return;
    if (dma_device() == HANDLE_NONE) {
        printf("b_memsrv: no DMA device to pin ballast with: no churn figures\n");
        return;
    }
    memset(c, 0, sizeof(*c));
    uint64_t room = g.free_bytes / MIB / 8;
    c->room_mib = (unsigned)(room < 4 ? 4 : room > 40 ? 40 : room);
    c->limit = lowmem_fill(BALLAST_STEP, take_ballast, enough_ballast, c);
    unsigned freed = 0;
    for (unsigned i = 0; i < c->nballast && freed < c->room_mib; i += 3, freed++) {
        sys_seg_unpin(c->ballast[i].handle);
        ms_free(c->ballast[i].handle);
        c->ballast[i].handle = HANDLE_NONE;
    }
    sys_dev_dma(dma_device(), false); /* the unpinned pieces leave the device's reach */
    uint64_t live_max = (uint64_t)freed * MIB * 5 / 2 / CHURN_MEAN_SEGMENT;
    live_max = live_max < 8 ? 8 : live_max > CHURN_LIVE_MAX ? CHURN_LIVE_MAX : live_max;
    struct ms_stats_compaction before = { 0 }, after = { 0 };
    struct ms_stats_global g0, g1;
    int64_t have_split = ms_stats_compaction(&before);
    stats(&g0);
    unsigned nlive = 0, nalloc = 0, refused = 0;
    uint64_t t_start = bench_tsc();
    for (unsigned i = 0; i < CHURN_OPS; i++) {
        if (nlive == 0 || (nlive < live_max && churn_rand() % 100 < 55)) {
            uint64_t t0 = bench_tsc();
            int64_t r = ms_alloc(churn_size(), 0, MS_ALLOC_BELOW, c->limit, &c->live[nlive]);
            uint64_t t1 = bench_tsc();
            if (r != 0) {
                refused++;
                continue;
            }
            c->alloc_ticks[nalloc++] = t1 - t0;
            nlive++;
        } else {
            unsigned k = (unsigned)(churn_rand() % nlive);
            ms_free(c->live[k].handle);
            c->live[k] = c->live[--nlive];
        }
        if (i % 200 == 0)
            sys_sleep(2 * 1000 * 1000); /* idle moments, as real clients have */
    }
    uint64_t t_end = bench_tsc();
    if (have_split == 0)
        ms_stats_compaction(&after);
    stats(&g1);
    while (nlive)
        ms_free(c->live[--nlive].handle);
    for (unsigned i = 0; i < c->nballast; i++) {
        if (c->ballast[i].handle != HANDLE_NONE) {
            sys_seg_unpin(c->ballast[i].handle);
            ms_free(c->ballast[i].handle);
        }
    }
    sys_dev_dma(dma_device(), false);
    printf("b_memsrv: churn: %u MiB room in %u MiB of ballast below %#lx, %lu live at most, %u allocations, "
           "%u refused, %lu moves, %lu KiB moved\n",
           freed, c->nballast, c->limit, live_max, nalloc, refused, g1.moves - g0.moves,
           (g1.bytes_moved - g0.bytes_moved) / KIB);
    uint64_t max = 0;
    for (unsigned i = 0; i < nalloc; i++)
        max = c->alloc_ticks[i] > max ? c->alloc_ticks[i] : max;
    struct bench_stats s = bench_summarise(c->alloc_ticks, nalloc);
    bench_line("churn_ns", ns(t_end - t_start), "ns");
    bench_line("churn_allocs", nalloc, "allocs");
    bench_line("churn_refused", refused, "allocs");
    bench_line("churn_alloc_median_ns", ns(s.median), "ns");
    bench_line("churn_alloc_p99_ns", ns(s.p99), "ns");
    bench_line("churn_alloc_max_ns", ns(max), "ns");
    bench_line("churn_moved_bytes", g1.bytes_moved - g0.bytes_moved, "bytes");
    if (have_split != 0) {
        printf("b_memsrv: memsrv does not split background and direct moves (%s)\n", sys_strerror(have_split));
        return;
    }
    uint64_t bg = after.bg_bytes - before.bg_bytes, direct = after.direct_bytes - before.direct_bytes;
    bench_line("churn_bg_bytes", bg, "bytes");
    bench_line("churn_direct_bytes", direct, "bytes");
    bench_line("churn_bg_share", bg + direct ? bg * 1000 / (bg + direct) : 1000, "permille");
    bench_line("churn_direct_plans", after.direct_plans - before.direct_plans, "plans");
}

/* memsrv's own account of the run: the compaction figures. */
static void report_server(void)
{
    struct ms_stats_compaction c;
    if (ms_stats_compaction(&c) != 0)
        return;
    bench_line("server_bg_bytes", c.bg_bytes, "bytes");
    bench_line("server_direct_bytes", c.direct_bytes, "bytes");
    bench_line("server_busy_ns", c.busy_ns, "ns");
    bench_line("server_waits", c.waits, "requests");
    bench_line("server_wait_max_ns", c.wait_max_ns, "ns");
    bench_line("server_wait_p99_ns", c.wait_p99_ns, "ns");
    bench_line("server_hold_max_ns", c.hold_max_ns, "ns");
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
    measure_batch("ms_batch1_alloc_free_4k_per_seg", 4 * KIB, 1, 2000);
    measure_batch("ms_batch4_alloc_free_4k_per_seg", 4 * KIB, 4, 500);
    measure_batch("ms_batch8_alloc_free_4k_per_seg", 4 * KIB, MS_BATCH_MAX, 250);
    measure_batch("ms_batch8_alloc_free_64k_per_seg", 64 * KIB, MS_BATCH_MAX, 250);
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
    struct ms_stats_compaction before;
    if (prepare(&frag, region, GRANULE, false) && ms_stats_compaction(&before) == 0 && punch_holes(&frag))
        measure_compaction("compact_full_4k", copy_rate, &before);
    release(&frag);
    if (prepare(&frag, region, 64 * KIB, false) && ms_stats_compaction(&before) == 0 && punch_holes(&frag))
        measure_compaction("compact_full_64k", copy_rate, &before);
    release(&frag);
    measure_stall(&frag, region);
    release(&frag);
    measure_ready(&frag, region > FRAG_ALLOC_REGION ? FRAG_ALLOC_REGION : region);
    release(&frag);
    measure_churn();
    report_server();

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
