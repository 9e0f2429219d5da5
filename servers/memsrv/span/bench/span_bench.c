/*
 * Memory-server layer tool: span-bench, the span allocator's benchmark.
 * Runs fixed, seeded workloads for every policy and prints a table and
 * `BENCH <name> <value> <unit>` lines (docs/span-allocator.md has results).
 * Timings are measured, never asserted. `--quick` shrinks every workload so
 * the run takes seconds (ctest runs it that way).
 *
 * Workloads
 *  pair      alloc+free of 4 KiB on a warm quick-fit list: ns per pair.
 *  steady    random steady state at 60/80/90/95% occupancy on 1 GiB in
 *            three regions with two holes and 2% locked segments; sizes 80%
 *            4K-256K, 18% up to 2M, 2% up to 8M; victims chosen with a bias
 *            to old segments (lifetimes correlated with age). Per-op ns
 *            (median, p99, max); failure rate per size class without and
 *            with compaction (a targeted plan on failure, then retry); and
 *            the failures with compaction split by the eviction-witness
 *            oracle below: "witness" failures are requests some window could
 *            provably have met by evicting its segments into free space
 *            (the planner should have: target 0); "no witness" ones are
 *            not known to be satisfiable (no window passes the witness,
 *            which may still be beaten by a full bin-packing search); and
 *            the large segments placed off 2 MiB for want of an aligned
 *            place (all are requested with SPAN_LARGE_OK).
 *  shatter   fill with 4 KiB segments, free 3/4 of each 2 MiB block:
 *            unusable index at 2 MiB, then full compaction: bytes moved per
 *            byte of free memory made usable at 2 MiB (contiguous space).
 *  robson    a Robson-style adversary: for sizes 1, 2, 4, ... granules,
 *            allocate until failure and free all but one segment per
 *            2*size span, so each freed run is just too small for the next.
 *  targeted  targeted plans for 2 MiB runs on 64 MiB of 4 KiB segments of
 *            which 15-40% (varying per 2 MiB block) are kept: bytes moved
 *            against the least possible (exhaustive search of every aligned
 *            window), summed over consecutive runs.
 *
 * `--instructions` runs only the steady states and counts the instructions
 * of every 16th span_alloc and span_free call in their second half, exactly, by
 * single-stepping a traced child (this machine has no hardware counters
 * for perf, and callgrind gives totals, not medians): median, p90 and mean
 * per operation, per policy and occupancy. A span_alloc that fails is
 * counted like any other call (compaction and the retry are not).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <span/span.h>

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)
#define G   SPAN_GRANULE

static const char *const policy_names[SPAN_POLICY_COUNT] = { "bestfit", "topheap", "instant", "buddy", "marker" };
static bool quick;
static struct span_node *nodes;
static size_t node_count = 1 << 20;

static uint64_t rng_state = 12345;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static void bench(const char *name, double value, const char *unit) { printf("BENCH %s %.3f %s\n", name, value, unit); }

/* ---- instruction counting --------------------------------------------- */

enum op_kind { OP_ALLOC = 0, OP_FREE, OP_KINDS };

/* What the traced child is about to run; the parent reads it at each mark. */
static volatile struct {
    unsigned policy, occupancy, kind;
} probe;
static bool count_mode;

/* The parent stops counting when the child reaches this function. */
static void __attribute__((noinline)) op_end(void) { __asm__ volatile("" ::: "memory"); }

static inline void op_begin(unsigned policy, unsigned occupancy, enum op_kind kind)
{
    probe.policy = policy;
    probe.occupancy = occupancy;
    probe.kind = kind;
    __asm__ volatile("int3" ::: "memory");
}

/* Every 16th operation of the second half: about 3000 samples per steady
 * state, a few seconds of single-stepping each. */
static bool tracing;

#ifndef INSTR_STRIDE
#define INSTR_STRIDE 16 /* a build with a larger stride gives rougher medians sooner */
#endif

static bool measured(uint64_t op, uint64_t ops) { return tracing && op >= ops / 2 && op % INSTR_STRIDE == 0; }

/* Buckets for the segment hash: 2^17, chains of at most two even when the
 * Robson workload fills 1 GiB with 4 KiB segments (memsrv resizes its table
 * to keep one or two a bucket as the segments come and go). */
#define HASH_BUCKETS ((size_t)1 << 17)
static struct span_node **hash_buckets;

static void setup(struct span_alloc *a, enum span_policy p)
{
    void *old;
    size_t old_bytes;

    span_init(a, p, 0, nodes, node_count);
    span_hash_resize(a, hash_buckets, HASH_BUCKETS * sizeof(*hash_buckets), &old, &old_bytes);
    /* 1 GiB in three regions; holes at 385..400 MiB and 705..720 MiB */
    span_add_region(a, 16 * MIB, 369 * MIB);
    span_add_region(a, 400 * MIB, 305 * MIB);
    span_add_region(a, 720 * MIB, 350 * MIB);
}

/* Where the steady-state workload keeps its segments: slot = tag. */
static uint64_t *slot_base;
static size_t slot_count;

/* Carries out every move of a plan at once (the books are all we model). */
static int run_plan(struct span_alloc *a, struct span_plan *plan, uint64_t *moved)
{
    struct span_move mv;
    int ret;

    while ((ret = span_plan_next(a, plan, &mv)) == SPAN_PLAN_MOVE || ret == SPAN_PLAN_PAUSE) {
        if (ret == SPAN_PLAN_MOVE) {
            span_move_done(a, plan, &mv);
            *moved += mv.size;
            if (mv.tag < slot_count && slot_base[mv.tag] == mv.from)
                slot_base[mv.tag] = mv.to;
        }
    }
    return ret;
}

/* ---- pair ---------------------------------------------------------------- */

static void bench_pair(enum span_policy p)
{
    struct span_alloc a;
    struct span_request req = { .size = 4 * KIB };
    unsigned rounds = quick ? 20 : 200, per = 10000, r, i;
    uint64_t *samples = malloc(rounds * sizeof(*samples)), base, keep[64];
    char name[64];

    setup(&a, p);
    /* Warm: some segments so the free list has fragments to hit. */
    for (i = 0; i < 64; i++)
        span_alloc(&a, &req, i, &keep[i]);
    for (i = 0; i < 64; i += 2)
        span_free(&a, keep[i]);
    for (r = 0; r < rounds; r++) {
        uint64_t t0 = now_ns();
        for (i = 0; i < per; i++) {
            span_alloc(&a, &req, i, &base);
            span_free(&a, base);
        }
        samples[r] = (now_ns() - t0) / per;
    }
    qsort(samples, rounds, sizeof(*samples), cmp_u64);
    snprintf(name, sizeof(name), "pair_4k_%s_median", policy_names[p]);
    bench(name, (double)samples[rounds / 2], "ns");
    free(samples);
}

/* ---- steady state ------------------------------------------------------- */

#define CLASSES 3
static const char *class_names[CLASSES] = { "small", "medium", "large" };

static uint64_t pick_size(unsigned *cls)
{
    uint64_t r = rnd() % 100;

    if (r < 80) {
        *cls = 0;
        return (1 + rnd() % 64) * G;
    }
    if (r < 98) {
        *cls = 1;
        return (65 + rnd() % 448) * G;
    }
    *cls = 2;
    return (513 + rnd() % 1536) * G;
}

/* ---- the eviction-witness oracle --------------------------------------
 *
 * Written from span_walk output, independently of span_plan.c. A request
 * (size, align) is satisfiable by the witness if some aligned window
 * [w, w+size) inside one region touches a run of spans with no locked or
 * in-transit span such that the run's segments, by decreasing size (ties:
 * lower base), each fit at the lowest place (large-page aligned for a
 * large segment that is aligned now, else 4 KiB) in the free spans outside
 * the run, minus the places taken by the earlier ones. Windows touching
 * the same run share one answer, so one window per run is tried. */

struct ospan {
    uint64_t base, end;
    unsigned region;
    uint8_t kind; /* 0 free, 1 movable segment, 2 locked / in transit / moving */
    bool keep_large;
};

struct ospans {
    struct ospan *v;
    size_t n, cap;
};

static int collect_ospan(void *ctx, const struct span_info *info)
{
    struct ospans *o = ctx;
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 4096;
        o->v = realloc(o->v, o->cap * sizeof(*o->v));
    }
    o->v[o->n++] = (struct ospan){
        .base = info->base,
        .end = info->base + info->size,
        .region = info->region,
        .kind = info->state == SPAN_FREE                         ? 0
                : info->state == SPAN_ALLOCATED && !info->moving ? 1
                                                                 : 2,
        .keep_large = info->size >= 2 * MIB && !info->misaligned,
    };
    return 0;
}

static int cmp_item(const void *x, const void *y)
{
    const struct ospan *a = *(const struct ospan *const *)x, *b = *(const struct ospan *const *)y;
    uint64_t sa = a->end - a->base, sb = b->end - b->base;
    if (sa != sb)
        return sa > sb ? -1 : 1;
    return a->base < b->base ? -1 : a->base > b->base;
}

/* Decreasing first fit of the segments of spans [i, j] into the free spans
 * outside them. */
static bool run_witness(const struct ospans *o, size_t i, size_t j)
{
    const struct ospan **items = malloc((j - i + 1) * sizeof(*items));
    uint64_t(*gaps)[2] = malloc((o->n + 2 * (j - i + 1)) * sizeof(*gaps));
    size_t ni = 0, ng = 0, k, g;
    bool ok = true;

    for (k = i; k <= j; k++)
        if (o->v[k].kind == 1)
            items[ni++] = &o->v[k];
    for (k = 0; k < o->n; k++)
        if (o->v[k].kind == 0 && (k < i || k > j)) {
            gaps[ng][0] = o->v[k].base;
            gaps[ng++][1] = o->v[k].end;
        }
    qsort(items, ni, sizeof(*items), cmp_item);
    for (k = 0; k < ni && ok; k++) {
        uint64_t size = items[k]->end - items[k]->base;
        uint64_t align = items[k]->keep_large ? 2 * MIB : G;
        ok = false;
        for (g = 0; g < ng; g++) {
            uint64_t p = (gaps[g][0] + align - 1) & ~(align - 1);
            if (p >= gaps[g][1] || gaps[g][1] - p < size)
                continue;
            if (p > gaps[g][0]) { /* keep the padding below as its own gap */
                memmove(&gaps[g + 1], &gaps[g], (ng - g) * sizeof(*gaps));
                ng++;
                gaps[g][1] = p;
                g++;
            }
            gaps[g][0] = p + size;
            ok = true;
            break;
        }
    }
    free(items);
    free(gaps);
    return ok;
}

/* Prefix sums over the spans in address order, so that any run i..j is
 * summed in O(1): bytes used, bytes free, unmovable spans, and the largest
 * free span before i (maxpre) and from j on (maxsuf). */
struct ospan_sums {
    uint64_t *used, *freeb, *blocked, *maxpre, *maxsuf;
};

static void sums_build(const struct ospans *o, struct ospan_sums *s)
{
    size_t k;

    s->used = calloc(o->n + 1, sizeof(uint64_t));
    s->freeb = calloc(o->n + 1, sizeof(uint64_t));
    s->blocked = calloc(o->n + 1, sizeof(uint64_t));
    s->maxpre = calloc(o->n + 2, sizeof(uint64_t));
    s->maxsuf = calloc(o->n + 2, sizeof(uint64_t));
    for (k = 0; k < o->n; k++) {
        uint64_t sz = o->v[k].end - o->v[k].base;
        s->used[k + 1] = s->used[k] + (o->v[k].kind == 1 ? sz : 0);
        s->freeb[k + 1] = s->freeb[k] + (o->v[k].kind == 0 ? sz : 0);
        s->blocked[k + 1] = s->blocked[k] + (o->v[k].kind == 2);
        s->maxpre[k + 1] = o->v[k].kind == 0 && sz > s->maxpre[k] ? sz : s->maxpre[k];
    }
    for (k = o->n; k > 0; k--) {
        uint64_t sz = o->v[k - 1].end - o->v[k - 1].base;
        s->maxsuf[k - 1] = o->v[k - 1].kind == 0 && sz > s->maxsuf[k] ? sz : s->maxsuf[k];
    }
}

static void sums_free(struct ospan_sums *s)
{
    free(s->used);
    free(s->freeb);
    free(s->blocked);
    free(s->maxpre);
    free(s->maxsuf);
}

/* Whether the segments in spans i..j can be evicted: nothing unmovable,
 * room for them outside, and the largest fits in some free span outside
 * (cheap necessary tests first, then the real packing). */
static bool window_has_witness(const struct ospans *o, const struct ospan_sums *s, size_t i, size_t j)
{
    uint64_t total_free = s->freeb[o->n];
    uint64_t cost = s->used[j + 1] - s->used[i];
    uint64_t free_in = s->freeb[j + 1] - s->freeb[i];
    uint64_t largest_item = 0;
    size_t k;

    if (s->blocked[j + 1] != s->blocked[i] || cost > total_free - free_in)
        return false;
    for (k = i; k <= j; k++)
        if (o->v[k].kind == 1 && o->v[k].end - o->v[k].base > largest_item)
            largest_item = o->v[k].end - o->v[k].base;
    if (largest_item > (s->maxpre[i] > s->maxsuf[j + 1] ? s->maxpre[i] : s->maxsuf[j + 1]))
        return false;
    return run_witness(o, i, j);
}

/* Slides an aligned window of `size` over the region made of spans
 * start..end, jumping to the next place where the set of spans it covers
 * changes. */
static bool region_has_witness(const struct ospans *o, const struct ospan_sums *s, size_t start, size_t end,
                               uint64_t size, uint64_t align)
{
    size_t i = start, j = start;
    uint64_t w, rend = o->v[end].end;

    for (w = (o->v[start].base + align - 1) & ~(align - 1); w + size <= rend;) {
        uint64_t next;
        while (o->v[i].end <= w)
            i++;
        if (j < i)
            j = i;
        while (j < end && o->v[j + 1].base < w + size)
            j++;
        if (window_has_witness(o, s, i, j))
            return true;
        next = (o->v[i].end + align - 1) & ~(align - 1);
        if (j < end) {
            uint64_t y = (o->v[j + 1].base - size + G + align - 1) & ~(align - 1);
            if (y < next)
                next = y;
        }
        w = next;
    }
    return false;
}

static bool witness_exists(const struct span_alloc *a, uint64_t size, uint64_t align)
{
    struct ospans o = { 0 };
    struct ospan_sums s;
    size_t start, end;
    bool found = false;

    span_walk(a, collect_ospan, &o);
    sums_build(&o, &s);
    for (start = 0; start < o.n && !found; start = end + 1) {
        end = start;
        while (end + 1 < o.n && o.v[end + 1].region == o.v[start].region)
            end++;
        found = region_has_witness(&o, &s, start, end, size, align);
    }
    free(o.v);
    sums_free(&s);
    return found;
}

/* One steady-state run: segments come and go around a target occupancy. */
struct steady {
    struct span_alloc a;
    enum span_policy p;
    unsigned occupancy;
    uint64_t ops;
    uint64_t *live; /* slot ids, oldest first; slot id = tag */
    size_t nlive;
    uint64_t *free_ids;
    size_t nfree_ids;
    uint64_t *t_alloc, *t_free; /* each operation's time */
    size_t na, nf;
    uint64_t tries[CLASSES], fail_raw[CLASSES], fail_cmp[CLASSES];
    uint64_t fail_witness, fail_nowitness, moved;
    uint64_t large_placed, large_misaligned; /* large segments allocated, and off 2 MiB */
};

/* A failed allocation is retried after a targeted compaction, and (outside
 * count mode) the oracle says whether any placement could have served it. */
static int steady_alloc_compacted(struct steady *s, const struct span_stats *st, const struct span_request *req,
                                  uint64_t id, uint64_t *base, unsigned c)
{
    struct span_plan plan;
    int err = -ENOMEM;

    s->fail_raw[c]++;
    /* Compaction only when the free memory could hold it at all. */
    if (st->free_bytes >= req->size) {
        span_plan_targeted(&s->a, &plan, req->size, 0, 0);
        if (run_plan(&s->a, &plan, &s->moved) == SPAN_PLAN_DONE)
            err = span_alloc(&s->a, req, id, base);
    }
    if (err != 0) {
        s->fail_cmp[c]++;
        if (count_mode)
            ; /* the oracle is for the failure table only */
        else if (st->free_bytes >= req->size && witness_exists(&s->a, req->size, G))
            s->fail_witness++;
        else
            s->fail_nowitness++;
    }
    return err;
}

static void steady_alloc(struct steady *s, uint64_t op, const struct span_stats *st)
{
    struct span_request req = { .flags = SPAN_LARGE_OK };
    uint64_t base, t0, id = s->free_ids[s->nfree_ids - 1];
    unsigned c;
    int err;

    req.size = pick_size(&c);
    s->tries[c]++;
    t0 = now_ns();
    if (measured(op, s->ops)) {
        op_begin(s->p, s->occupancy, OP_ALLOC);
        err = span_alloc(&s->a, &req, id, &base);
        op_end();
    } else {
        err = span_alloc(&s->a, &req, id, &base);
    }
    s->t_alloc[s->na++] = now_ns() - t0;
    if (err != 0)
        err = steady_alloc_compacted(s, st, &req, id, &base, c);
    if (err == 0) {
        struct span_info info;
        if (req.size >= 2 * MIB) {
            s->large_placed++;
            if (span_lookup(&s->a, base, &info) == 0 && info.misaligned)
                s->large_misaligned++;
        }
        s->nfree_ids--;
        slot_base[id] = base;
        s->live[s->nlive++] = id;
        if (rnd() % 50 == 0)
            span_lock(&s->a, base); /* 2% pinned for good */
    }
}

static void steady_free(struct steady *s, uint64_t op)
{
    /* Old segments (low indices) die more often. */
    double u = (double)(rnd() % 1000000) / 1e6;
    size_t k = (size_t)(u * u * (double)s->nlive);
    uint64_t id = s->live[k], t0;
    int err;

    t0 = now_ns();
    if (measured(op, s->ops)) {
        op_begin(s->p, s->occupancy, OP_FREE);
        err = span_free(&s->a, slot_base[id]);
        op_end();
    } else {
        err = span_free(&s->a, slot_base[id]);
    }
    s->t_free[s->nf++] = now_ns() - t0;
    if (err != 0 && err != -EBUSY) {
        fprintf(stderr, "span-bench: lost segment %" PRIu64 " (%d)\n", id, err);
        exit(1);
    }
    /* Locked ones stay allocated for good; forget them either way,
     * keeping the old-first order of the rest. */
    memmove(&s->live[k], &s->live[k + 1], (s->nlive - k - 1) * sizeof(*s->live));
    s->nlive--;
    if (err == 0)
        s->free_ids[s->nfree_ids++] = id;
}

static void steady_report(struct steady *s)
{
    const uint64_t *t_alloc = s->t_alloc, *t_free = s->t_free;
    size_t na = s->na, nf = s->nf;
    enum span_policy p = s->p;
    unsigned occupancy = s->occupancy;
    struct span_stats st;
    char name[96];
    unsigned c;

    qsort(s->t_alloc, na, sizeof(uint64_t), cmp_u64);
    qsort(s->t_free, nf, sizeof(uint64_t), cmp_u64);
    span_stats(&s->a, &st);
    printf("%-8s %3u%% alloc ns %5" PRIu64 " %6" PRIu64 " %8" PRIu64 "  free ns %5" PRIu64 " %6" PRIu64 " %8" PRIu64
           "  largest %6" PRIu64 " KiB  unusable %4u"
           "  misaligned %" PRIu64 "/%" PRIu64 "\n",
           policy_names[p], occupancy, t_alloc[na / 2], t_alloc[na * 99 / 100], t_alloc[na - 1], t_free[nf / 2],
           t_free[nf * 99 / 100], t_free[nf - 1], st.largest_free / KIB, st.unusable_index, s->large_misaligned,
           s->large_placed);
#define B(fmt, val, unit)                                                                                              \
    do {                                                                                                               \
        snprintf(name, sizeof(name), fmt, policy_names[p], occupancy);                                                 \
        bench(name, (double)(val), unit);                                                                              \
    } while (0)
    B("steady_%s_%u_alloc_median", t_alloc[na / 2], "ns");
    B("steady_%s_%u_alloc_p99", t_alloc[na * 99 / 100], "ns");
    B("steady_%s_%u_alloc_max", t_alloc[na - 1], "ns");
    B("steady_%s_%u_free_median", t_free[nf / 2], "ns");
    B("steady_%s_%u_free_p99", t_free[nf * 99 / 100], "ns");
    B("steady_%s_%u_free_max", t_free[nf - 1], "ns");
    B("steady_%s_%u_largest_free", st.largest_free / KIB, "KiB");
    B("steady_%s_%u_unusable_2m", st.unusable_index, "permille");
    B("steady_%s_%u_moved", s->moved / KIB, "KiB");
    B("steady_%s_%u_fail_compacted_witness", s->fail_witness, "count");
    B("steady_%s_%u_fail_compacted_no_witness", s->fail_nowitness, "count");
    B("steady_%s_%u_large_placed", s->large_placed, "count");
    B("steady_%s_%u_large_misaligned", s->large_misaligned, "count");
#undef B
    for (c = 0; c < CLASSES; c++) {
        uint64_t tries = s->tries[c];
        snprintf(name, sizeof(name), "steady_%s_%u_fail_%s_raw", policy_names[p], occupancy, class_names[c]);
        bench(name, tries ? 1000.0 * (double)s->fail_raw[c] / (double)tries : 0, "permille");
        snprintf(name, sizeof(name), "steady_%s_%u_fail_%s_compacted", policy_names[p], occupancy, class_names[c]);
        bench(name, tries ? 1000.0 * (double)s->fail_cmp[c] / (double)tries : 0, "permille");
    }
}

static void bench_steady(enum span_policy p, unsigned occupancy)
{
    struct steady s;
    const size_t cap = 200000;
    struct span_stats st;
    uint64_t op;
    size_t i;

    memset(&s, 0, sizeof(s));
    s.p = p;
    s.occupancy = occupancy;
    s.ops = quick ? 20000 : 100000;
    s.live = malloc(cap * sizeof(*s.live));
    s.free_ids = malloc(cap * sizeof(*s.free_ids));
    s.nfree_ids = cap;
    s.t_alloc = malloc(s.ops * sizeof(uint64_t));
    s.t_free = malloc(s.ops * sizeof(uint64_t));
    slot_base = malloc(cap * sizeof(*slot_base));
    slot_count = cap;
    for (i = 0; i < cap; i++)
        s.free_ids[i] = cap - 1 - i;
    setup(&s.a, p);
    for (op = 0; op < s.ops; op++) {
        span_stats(&s.a, &st);
        if ((st.used_bytes * 100 < st.total_bytes * occupancy || s.nlive == 0) && s.nfree_ids > 0)
            steady_alloc(&s, op, &st);
        else
            steady_free(&s, op);
    }
    if (!count_mode)
        steady_report(&s);
    free(s.live);
    free(s.free_ids);
    free(slot_base);
    slot_base = NULL;
    slot_count = 0;
    free(s.t_alloc);
    free(s.t_free);
}

/* ---- shatter ------------------------------------------------------------ */

static void shatter(struct span_alloc *a, uint64_t bytes)
{
    struct span_request req = { .size = G };
    uint64_t base, filled = 0;

    while (filled < bytes && span_alloc(a, &req, 1, &base) == 0)
        filled += G;
    /* Free 3/4 of every 2 MiB block: keep granules whose index % 4 == 0. */
    {
        struct span_info info;
        uint64_t addr;
        for (addr = 0; addr < 1100 * MIB; addr += G) {
            if (span_lookup(a, addr, &info) == 0 && info.state == SPAN_ALLOCATED && info.base == addr &&
                ((addr / G) % 4) != 0)
                span_free(a, addr);
        }
    }
}

static void bench_shatter(enum span_policy p)
{
    struct span_alloc a;
    struct span_stats before, after;
    struct span_plan plan;
    uint64_t moved = 0;
    uint64_t t0;
    char name[96];

    setup(&a, p);
    shatter(&a, quick ? 64 * MIB : 256 * MIB);
    span_stats(&a, &before);
    t0 = now_ns();
    span_plan_full(&a, &plan, 0);
    run_plan(&a, &plan, &moved);
    span_stats(&a, &after);
    printf("%-8s shatter: unusable %u -> %u, largest %" PRIu64 " -> %" PRIu64 " KiB, moved %" PRIu64
           " MiB in %.1f ms\n",
           policy_names[p], before.unusable_index, after.unusable_index, before.largest_free / KIB,
           after.largest_free / KIB, moved / MIB, (double)(now_ns() - t0) / 1e6);
    snprintf(name, sizeof(name), "shatter_%s_unusable_before", policy_names[p]);
    bench(name, before.unusable_index, "permille");
    snprintf(name, sizeof(name), "shatter_%s_unusable_after", policy_names[p]);
    bench(name, after.unusable_index, "permille");
    snprintf(name, sizeof(name), "shatter_%s_moved_per_contig_byte", policy_names[p]);
    {
        /* Contiguous space created: free bytes that became usable at 2 MiB. */
        double usable_before = (double)before.free_bytes * (1000 - before.unusable_index) / 1000;
        double usable_after = (double)after.free_bytes * (1000 - after.unusable_index) / 1000;
        bench(name, usable_after > usable_before ? (double)moved / (usable_after - usable_before) : 0, "ratio");
    }
}

/* ---- robson ------------------------------------------------------------- */

static void bench_robson(enum span_policy p)
{
    struct span_alloc a;
    struct span_stats st;
    uint64_t size, base, worst_used = UINT64_MAX;
    unsigned k;
    char name[96];

    setup(&a, p);
    for (k = 0; k <= (quick ? 6u : 9u); k++) {
        struct span_request req = { .size = ((uint64_t)1 << k) * G };
        uint64_t addr;
        size = req.size;
        while (span_alloc(&a, &req, k, &base) == 0)
            ;
        span_stats(&a, &st);
        if (st.used_bytes < worst_used)
            worst_used = st.used_bytes;
        /* Keep one segment of this size per 2*size (+1 granule) stretch. */
        for (addr = 0; addr < 1100 * MIB; addr += size) {
            struct span_info info;
            if (span_lookup(&a, addr, &info) == 0 && info.state == SPAN_ALLOCATED && info.base == addr &&
                info.size == size && (addr / size) % 2 == 1)
                span_free(&a, addr);
        }
    }
    span_stats(&a, &st);
    printf("%-8s robson: lowest occupancy at failure %.1f%%, final largest free %" PRIu64 " KiB\n", policy_names[p],
           100.0 * (double)worst_used / (double)st.total_bytes, st.largest_free / KIB);
    snprintf(name, sizeof(name), "robson_%s_occupancy_at_failure", policy_names[p]);
    bench(name, 1000.0 * (double)worst_used / (double)st.total_bytes, "permille");
}

/* ---- targeted vs least possible ---------------------------------------- */

struct wctx {
    uint64_t *starts, *ends;
    uint8_t *movable;
    size_t n, cap;
};

static int collect(void *ctx, const struct span_info *info)
{
    struct wctx *w = ctx;
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 1024;
        w->starts = realloc(w->starts, w->cap * sizeof(uint64_t));
        w->ends = realloc(w->ends, w->cap * sizeof(uint64_t));
        w->movable = realloc(w->movable, w->cap);
    }
    w->starts[w->n] = info->base;
    w->ends[w->n] = info->base + info->size;
    w->movable[w->n] = info->state == SPAN_FREE ? 0 : info->state == SPAN_ALLOCATED ? 1 : 2;
    w->n++;
    return 0;
}

/* Least movable bytes any aligned window of `size` needs evacuated, trying
 * every aligned window position (exhaustive, O(positions * spans in it)). */
static uint64_t least_cost(const struct span_alloc *a, uint64_t size, uint64_t align)
{
    struct wctx w = { 0 };
    struct span_stats st;
    uint64_t best = UINT64_MAX;
    size_t i, first = 0;
    unsigned r;

    span_walk(a, collect, &w);
    span_stats(a, &st);
    for (r = 0; r < st.region_count; r++) {
        uint64_t lo = (st.regions[r].base + align - 1) & ~(align - 1), pos;
        for (pos = lo; pos + size <= st.regions[r].base + st.regions[r].size; pos += align) {
            uint64_t cost = 0, free_in = 0;
            bool blocked = false;
            while (first < w.n && w.ends[first] <= pos)
                first++;
            for (i = first; i < w.n && w.starts[i] < pos + size; i++) {
                if (w.movable[i] == 2)
                    blocked = true;
                else if (w.movable[i] == 1)
                    cost += w.ends[i] - w.starts[i];
                else
                    free_in +=
                        (w.ends[i] < pos + size ? w.ends[i] : pos + size) - (w.starts[i] > pos ? w.starts[i] : pos);
            }
            if (!blocked && cost <= st.free_bytes - free_in && cost < best)
                best = cost;
        }
    }
    free(w.starts);
    free(w.ends);
    free(w.movable);
    return best;
}

static void bench_targeted(enum span_policy p)
{
    struct span_alloc a;
    struct span_request fill = { .size = G };
    uint64_t moved_total = 0, least_total = 0, t, base, addr;
    unsigned runs = quick ? 3 : 10, i;
    char name[96];

    /* 64 MiB in two regions, all 4 KiB segments, then a random quarter
     * kept (denser in some places than others, so windows differ). */
    span_init(&a, p, 0, nodes, node_count);
    span_add_region(&a, 16 * MIB, 32 * MIB);
    span_add_region(&a, 52 * MIB, 32 * MIB);
    while (span_alloc(&a, &fill, 1, &base) == 0)
        ;
    for (addr = 16 * MIB; addr < 84 * MIB; addr += G) {
        uint64_t keep_pct = 15 + ((addr / (2 * MIB)) * 7) % 25;
        if (rnd() % 100 >= keep_pct)
            span_free(&a, addr);
    }
    for (i = 0; i < runs; i++) {
        struct span_plan plan;
        struct span_request req = { .size = 2 * MIB };
        uint64_t moved = 0, least = least_cost(&a, 2 * MIB, 2 * MIB);
        span_plan_targeted(&a, &plan, 2 * MIB, 2 * MIB, 0);
        if (run_plan(&a, &plan, &moved) != SPAN_PLAN_DONE || least == UINT64_MAX)
            break;
        moved_total += moved;
        least_total += least;
        span_alloc(&a, &req, 7, &base); /* consume it, so the next run differs */
    }
    t = least_total ? moved_total * 1000 / least_total : 0;
    printf("%-8s targeted 2 MiB x%u: moved %" PRIu64 " KiB, least possible %" PRIu64 " KiB (ratio %.3f)\n",
           policy_names[p], i, moved_total / KIB, least_total / KIB, (double)t / 1000.0);
    snprintf(name, sizeof(name), "targeted_%s_moved_over_least", policy_names[p]);
    bench(name, (double)t / 1000.0, "ratio");
}

static const unsigned occupancies[] = { 60, 80, 90, 95 };
#define OCCUPANCIES (sizeof(occupancies) / sizeof(occupancies[0]))

struct counts {
    uint64_t *v;
    size_t n, cap;
};

static void counts_add(struct counts *c, uint64_t value)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4096;
        c->v = realloc(c->v, c->cap * sizeof(*c->v));
        if (c->v == NULL)
            exit(1);
    }
    c->v[c->n++] = value;
}

static int only_policy = -1; /* --instructions NAME: that policy alone */

static void child_steady_states(void)
{
    unsigned p, o;

    ptrace(PTRACE_TRACEME, 0, NULL, NULL);
    raise(SIGSTOP);
    for (p = 0; p < SPAN_POLICY_COUNT; p++) {
        if (only_policy >= 0 && (int)p != only_policy)
            continue;
        rng_state = 12345;
        for (o = 0; o < OCCUPANCIES; o++)
            bench_steady((enum span_policy)p, occupancies[o]);
    }
    exit(0);
}

static int occupancy_index(unsigned occupancy)
{
    unsigned o;

    for (o = 0; o < OCCUPANCIES; o++)
        if (occupancies[o] == occupancy)
            return (int)o;
    return -1;
}

/* Single-steps one operation of the stopped child: instructions until it
 * reaches op_end (the call included). */
static uint64_t step_until_end(pid_t pid)
{
    uint64_t steps = 0;
    int status;

    for (;;) {
        struct user_regs_struct regs;
        if (ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL) != 0 || waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) {
            fprintf(stderr, "span-bench: lost the traced child\n");
            exit(1);
        }
        steps++;
        ptrace(PTRACE_GETREGS, pid, NULL, &regs);
        if (regs.rip == (uint64_t)(uintptr_t)&op_end)
            return steps;
    }
}

static unsigned long peek_probe(pid_t pid, const volatile unsigned *field)
{
    return (unsigned)ptrace(PTRACE_PEEKDATA, pid, (void *)(uintptr_t)field, NULL);
}

/* Runs the steady states in a traced child and counts every measured
 * operation; an empty begin/end pair, counted first, is subtracted. */
/* Medians, 90th percentiles and means of the counted calls, per policy
 * and occupancy. */
static void print_instruction_counts(struct counts counts[SPAN_POLICY_COUNT][OCCUPANCIES][OP_KINDS])
{
    unsigned p, o, k;

    printf("span-bench --instructions: instructions per call, steady states (second half)\n");
    printf("policy   occ    alloc median   p90  mean     free median   p90  mean\n");
    for (p = 0; p < SPAN_POLICY_COUNT; p++) {
        if (only_policy >= 0 && (int)p != only_policy)
            continue;
        for (o = 0; o < OCCUPANCIES; o++) {
            uint64_t med[OP_KINDS], p90[OP_KINDS], mean[OP_KINDS];
            char name[96];
            for (k = 0; k < OP_KINDS; k++) {
                struct counts *c = &counts[p][o][k];
                uint64_t sum = 0;
                size_t i;
                med[k] = p90[k] = mean[k] = 0;
                if (c->n == 0)
                    continue;
                qsort(c->v, c->n, sizeof(*c->v), cmp_u64);
                for (i = 0; i < c->n; i++)
                    sum += c->v[i];
                med[k] = c->v[c->n / 2];
                p90[k] = c->v[c->n * 9 / 10];
                mean[k] = sum / c->n;
            }
            printf("%-8s %3u%%   %12" PRIu64 " %5" PRIu64 " %5" PRIu64 "   %11" PRIu64 " %5" PRIu64 " %5" PRIu64 "\n",
                   policy_names[p], occupancies[o], med[0], p90[0], mean[0], med[1], p90[1], mean[1]);
            snprintf(name, sizeof(name), "instr_%s_%u_alloc_median", policy_names[p], occupancies[o]);
            bench(name, (double)med[0], "instructions");
            snprintf(name, sizeof(name), "instr_%s_%u_free_median", policy_names[p], occupancies[o]);
            bench(name, (double)med[1], "instructions");
        }
    }
}

static int count_instructions(void)
{
    static struct counts counts[SPAN_POLICY_COUNT][OCCUPANCIES][OP_KINDS];
    uint64_t empty;
    int status;
    pid_t pid;

    count_mode = true;
    tracing = true;
    pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        /* The overhead of the marks, counted once like an operation. */
        ptrace(PTRACE_TRACEME, 0, NULL, NULL);
        raise(SIGSTOP);
        op_begin(0, 0, OP_ALLOC);
        op_end();
        child_steady_states();
    }
    waitpid(pid, &status, 0);
    ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)PTRACE_O_EXITKILL);
    ptrace(PTRACE_CONT, pid, NULL, NULL);
    waitpid(pid, &status, 0); /* the empty pair's int3 */
    empty = step_until_end(pid);
    ptrace(PTRACE_CONT, pid, NULL, NULL);
    for (;;) {
        if (waitpid(pid, &status, 0) != pid)
            return 1;
        if (WIFEXITED(status) || WIFSIGNALED(status))
            break;
        if (WSTOPSIG(status) == SIGTRAP) {
            unsigned policy = (unsigned)peek_probe(pid, &probe.policy);
            int occ = occupancy_index((unsigned)peek_probe(pid, &probe.occupancy));
            unsigned kind = (unsigned)peek_probe(pid, &probe.kind);
            uint64_t steps = step_until_end(pid);
            if (policy < SPAN_POLICY_COUNT && occ >= 0 && kind < OP_KINDS)
                counts_add(&counts[policy][occ][kind], steps > empty ? steps - empty : 0);
            ptrace(PTRACE_CONT, pid, NULL, NULL);
        } else {
            ptrace(PTRACE_CONT, pid, NULL, (void *)(uintptr_t)WSTOPSIG(status));
        }
    }
    print_instruction_counts(counts);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned p, o;

    quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    nodes = calloc(node_count, sizeof(*nodes));
    hash_buckets = calloc(HASH_BUCKETS, sizeof(*hash_buckets));
    if (nodes == NULL || hash_buckets == NULL)
        return 1;
    if (argc > 1 && strcmp(argv[1], "--instructions") == 0) {
        for (p = 0; argc > 2 && p < SPAN_POLICY_COUNT; p++)
            if (strcmp(argv[2], policy_names[p]) == 0)
                only_policy = (int)p;
        return count_instructions();
    }
    if (argc > 1 && strcmp(argv[1], "--steady") == 0) {
        /* Only the steady states, no oracle: for a profiler, e.g.
         * valgrind --tool=callgrind --toggle-collect=span_alloc
         * --toggle-collect=span_free span-bench --steady [POLICY [OCCUPANCY]]
         * (one occupancy alone: its run starts from the same seed as in
         * the whole sequence only for the first, so it is its own run) */
        unsigned only_occupancy = argc > 3 ? (unsigned)atoi(argv[3]) : 0;
        count_mode = true;
        for (p = 0; p < SPAN_POLICY_COUNT; p++) {
            if (argc > 2 && strcmp(argv[2], policy_names[p]) != 0)
                continue;
            rng_state = 12345;
            for (o = 0; o < OCCUPANCIES; o++)
                if (only_occupancy == 0 || occupancies[o] == only_occupancy)
                    bench_steady((enum span_policy)p, occupancies[o]);
        }
        return 0;
    }
    printf("span-bench%s: node %zu bytes\n", quick ? " (quick)" : "", sizeof(struct span_node));
    printf("policy   occ   alloc ns median p99 max      free ns median p99 max\n");
    for (p = 0; p < SPAN_POLICY_COUNT; p++) {
        rng_state = 12345;
        bench_pair((enum span_policy)p);
        for (o = 0; o < OCCUPANCIES; o++)
            bench_steady((enum span_policy)p, occupancies[o]);
        bench_shatter((enum span_policy)p);
        bench_robson((enum span_policy)p);
        bench_targeted((enum span_policy)p);
    }
    free(nodes);
    free(hash_buckets);
    return 0;
}
