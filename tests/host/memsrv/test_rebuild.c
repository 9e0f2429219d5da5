/*
 * Host tests of a restarted memory server's books (servers/memsrv/rebuild.c)
 * against the fake kernel: random segment tables built by real clients,
 * then a crash with requests half done (a FREE received, an ALLOC made and
 * not answered, reclaimed segments taken and not freed, exits not yet
 * heard of), a successor that must book exactly what the kernel lists and
 * charge every client what it was charged, and kernel answers no sane
 * kernel gives, which the successor refuses before it answers anyone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../common/test_rng.h"
#include "fake_kernel.h"

#define KiB            1024ull
#define MiB            (1024ull * 1024)
#define CLIENTS        5
#define HELD_MAX       512
#define CLIENT_SLOT0   0x10u
#define FRAGMENTED_MAX 8192u /* 4 KiB segments: more than 24 MiB holds */

#define rnd test_rnd

/* The clients' side: who holds what. A client's pid changes when it ends
 * (a new process takes its slot). */
struct table {
    struct fake_kernel *fk;
    uint64_t pid[CLIENTS];
    struct {
        uint64_t sid, holder;
        bool pinned;
    } held[HELD_MAX];
    unsigned nheld;
    uint64_t half_done_bytes; /* what the crash left half done: the successor frees it */
};

static uint64_t client_pid(unsigned i, uint64_t generation) { return (generation << 32) | (CLIENT_SLOT0 + i); }

static void drop_held(struct table *t, unsigned k) { t->held[k] = t->held[--t->nheld]; }

/* A client ends: its segments go to the kernel's reclaim list; with
 * `heard`, the server hears of it at once. */
static void end_client(struct table *t, unsigned c, bool heard)
{
    struct fake_kernel *fk = t->fk;
    uint64_t pid = t->pid[c];
    unsigned k;

    for (k = 0; k < t->nheld;)
        if (t->held[k].holder == pid)
            drop_held(t, k);
        else
            k++;
    if (heard) {
        fk_exit(fk, pid);
    } else {
        unsigned queued = fk->nreclaim;
        fk_end_process(fk, pid);
        for (; queued < fk->nreclaim; queued++)
            if (!(fk->reclaim[queued].flags & SEG_INFO_QUARANTINED))
                t->half_done_bytes += fk->reclaim[queued].size;
    }
    t->pid[c] = client_pid(c, (t->pid[c] >> 32) + 1);
}

/* One random client operation, as a program would make it. */
static void random_op(struct table *t)
{
    struct fake_kernel *fk = t->fk;
    unsigned c = (unsigned)(rnd() % CLIENTS), r = (unsigned)(rnd() % 100), k;
    uint64_t sid;

    if (r < 45 && t->nheld < HELD_MAX) {
        uint64_t size = rnd() % 8 == 0 ? 2 * MiB : (1 + rnd() % 16) * 4 * KiB;
        if (fk_alloc(fk, t->pid[c], size, 0, rnd() % 4 == 0 ? MS_ALLOC_NOWAIT : 0, 0, &sid) == 0)
            t->held[t->nheld++] = (typeof(t->held[0])){ sid, t->pid[c], false };
        return;
    }
    if (t->nheld == 0)
        return;
    k = (unsigned)(rnd() % t->nheld);
    sid = t->held[k].sid;
    if (r < 75) {
        if (t->held[k].pinned)
            return;
        assert_int_equal(fk_free(fk, t->held[k].holder, sid), 0);
        drop_held(t, k);
    } else if (r < 87) {
        /* Passed to another client: the payer stays the one that asked. */
        if (t->held[k].pinned)
            return;
        t->held[k].holder = t->pid[(c + 1) % CLIENTS];
        fk_transfer(fk, sid, t->held[k].holder);
    } else if (r < 95) {
        fk_pin(fk, sid, t->held[k].pinned ? -1 : 1);
        t->held[k].pinned = !t->held[k].pinned;
    } else if (r < 97) {
        end_client(t, c, true);
    } else {
        assert_int_equal(fk_simple(fk, t->held[k].holder, MS_MOVE, sid, 0, 0, 0) <= 0, true);
    }
}

/* Leaves requests half done, as a crash in the middle of serving finds
 * them; returns how many segments the successor must free for them. */
static unsigned leave_half_done(struct table *t)
{
    struct fake_kernel *fk = t->fk;
    unsigned k, freed = 0;

    /* A FREE the server had received: the segment is the server's. The
     * same for an ALLOC it made and had not answered. */
    for (k = 0; k < t->nheld && freed < 2; k++) {
        struct fk_seg *s = fk_seg(fk, t->held[k].sid);
        if (t->held[k].pinned || s->dma)
            continue;
        s->in_server = true;
        s->owner = FK_MEMSRV_PID;
        t->half_done_bytes += s->size;
        drop_held(t, k);
        freed++;
    }
    /* An exit taken off the reclaim list and not yet freed (reported), and
     * one the server never heard of (still queued). */
    for (k = 0; k < 2; k++) {
        unsigned queued = fk->nreclaim;
        end_client(t, (unsigned)(rnd() % CLIENTS), false);
        for (; queued < fk->nreclaim; queued++)
            freed += !(fk->reclaim[queued].flags & SEG_INFO_QUARANTINED);
        if (k == 0)
            fk->nreclaim = 0; /* taken: each is now listed as reported */
    }
    return freed;
}

struct snapshot {
    struct ms_stats_global g;
    struct ms_stats_client c[CLIENTS];
};

static void take_snapshot(struct table *t, struct snapshot *s)
{
    unsigned i;

    s->g = fk_stats(t->fk);
    for (i = 0; i < CLIENTS; i++)
        s->c[i] = fk_client(t->fk, t->pid[i]);
}

/* What a client is charged for, from the fake kernel's side: the live
 * segments it pays for, wherever they are, that nobody reclaimed. */
static void charged_by_kernel(struct table *t, uint64_t pid, uint64_t *bytes, uint64_t *segments)
{
    uint32_t i;

    *bytes = *segments = 0;
    for (i = 0; i < t->fk->seg_cap; i++) {
        const struct fk_seg *s = &t->fk->segs[i];
        if (s->live && s->payer == pid && !s->in_server && s->owner != 0) {
            *bytes += s->size;
            ++*segments;
        }
    }
}

/* What a device may reach, or the kernel keeps quarantined, is locked in
 * the books: never moved, never handed out. */
static void assert_dma_locked(struct fake_kernel *fk)
{
    uint32_t i;

    for (i = 0; i < fk->seg_cap; i++) {
        const struct fk_seg *s = &fk->segs[i];
        struct span_info info;
        if (!s->live || !(s->pins != 0 || s->dma || (s->flags & SEG_INFO_QUARANTINED)))
            continue;
        assert_int_equal(span_lookup(&fk->ms.span, s->phys, &info), 0);
        assert_int_equal(info.state, SPAN_LOCKED);
    }
}

static void crash_and_check(struct table *t, unsigned number)
{
    struct fake_kernel *fk = t->fk;
    struct snapshot before, after;
    unsigned i, half_done;
    struct ms_stats_restart r;
    struct ipc_msg m = { .label = MS_STATS, .badge = FK_INIT_PID, .w = { MS_STATS_RESTART } };

    t->half_done_bytes = 0;
    /* The dead server's books, read before the half-done work: MS_STATS
     * takes the reclaim list first, which would finish an exit the crash
     * is meant to find unheard of. */
    take_snapshot(t, &before);
    half_done = leave_half_done(t);
    fk_crash(fk);
    assert_int_equal(fk_restart(fk, number), 0);
    fk_assert_consistent(fk);
    assert_dma_locked(fk);
    take_snapshot(t, &after);

    /* Every client is charged what the kernel says it pays for; a client
     * the crash did not touch, what the dead server charged it. */
    for (i = 0; i < CLIENTS; i++) {
        uint64_t bytes, segments;
        charged_by_kernel(t, t->pid[i], &bytes, &segments);
        assert_int_equal(after.c[i].bytes, bytes);
        assert_int_equal(after.c[i].segments, segments);
    }
    /* Free memory and books together: what the dead server's books said,
     * plus what the crash left half done and the successor freed. */
    assert_int_equal(after.g.free_bytes + after.g.books_bytes,
                     before.g.free_bytes + before.g.books_bytes + t->half_done_bytes);
    assert_int_equal(after.g.total_bytes, before.g.total_bytes);
    /* The successor freed the half-done segments (and the dead server's
     * books) before it built its own, and nothing is left queued. */
    assert_int_equal(fk_request(fk, &m), 0);
    memcpy(&r, m.payload, sizeof(r));
    assert_int_equal(r.restarts, number);
    assert_true(r.freed_at_start >= half_done + 2);
    assert_int_equal(fk->nreclaim, 0);
    assert_true(fk_console_has(fk, "books rebuilt from the kernel"));
}

static void run_random_table(uint64_t seed, uint64_t ram_mib, uint64_t high_mib, bool no_iommu, unsigned ops)
{
    struct fake_kernel *fk = calloc(1, sizeof(*fk));
    struct table t = { .fk = fk };
    uint64_t baseline;
    unsigned i, round;
    uint32_t s;

    test_rng_seed(seed);
    fk_init(fk, ram_mib, high_mib);
    fk->no_iommu = no_iommu;
    assert_int_equal(fk_start(fk, "init.pid=0x100000002"), 0);
    baseline = fk_stats(fk).free_bytes + fk_stats(fk).books_bytes;
    for (i = 0; i < CLIENTS; i++)
        t.pid[i] = client_pid(i, 2);

    /* A rebuilt server is rebuilt from in turn. */
    for (round = 1; round <= 3; round++) {
        for (i = 0; i < ops; i++)
            random_op(&t);
        fk_assert_consistent(fk);
        crash_and_check(&t, round);
    }
    for (i = 0; i < ops / 2; i++)
        random_op(&t);
    fk_assert_consistent(fk);

    /* Everyone ends and every device is quiesced: all memory comes back. */
    for (i = 0; i < CLIENTS; i++)
        end_client(&t, i, true);
    for (s = 0; s < fk->seg_cap; s++)
        if (fk->segs[s].live && fk->segs[s].owner == 0 && !fk->segs[s].in_server &&
            (fk->segs[s].flags & SEG_INFO_QUARANTINED))
            fk_quiesce(fk, fk->segs[s].sid);
    fk_assert_consistent(fk);
    assert_int_equal(fk_stats(fk).free_bytes + fk_stats(fk).books_bytes, baseline);
    fk_fini(fk);
    free(fk);
}

static void test_random_tables(void **state)
{
    const char *env = getenv("MEMSRV_REBUILD_SEEDS");
    unsigned seeds = env != NULL ? (unsigned)atoi(env) : 12, i;

    (void)state;
    for (i = 0; i < seeds; i++)
        run_random_table(1000 + i, i % 3 == 0 ? 64 : 128, i % 2 ? 64 : 0, i % 4 == 1, 300);
}

/* Many segments: the books are sized from the survey, the hash too. */
static void test_large_table(void **state)
{
    (void)state;
    run_random_table(77, 256, 256, false, 1500);
}

/* A pinned segment and a quarantined one come back locked; once the pin
 * goes and the device is quiesced, both are freed as usual. */
static void test_pinned_and_quarantined_stay_locked(void **state)
{
    struct fake_kernel *fk = calloc(1, sizeof(*fk));
    uint64_t a = client_pid(0, 2), b = client_pid(1, 2), pinned, tainted, baseline;
    struct ms_stats_restart r;
    struct ipc_msg m = { .label = MS_STATS, .badge = FK_INIT_PID, .w = { MS_STATS_RESTART } };

    (void)state;
    fk_init(fk, 128, 0);
    fk->no_iommu = true;
    assert_int_equal(fk_start(fk, "init.pid=0x100000002"), 0);
    baseline = fk_stats(fk).free_bytes + fk_stats(fk).books_bytes;
    assert_int_equal(fk_alloc(fk, a, 64 * KiB, 0, 0, 0, &pinned), 0);
    assert_int_equal(fk_alloc(fk, b, 32 * KiB, 0, 0, 0, &tainted), 0);
    fk_pin(fk, pinned, 1);
    fk_pin(fk, tainted, 1);
    fk_exit(fk, b); /* pinned when its holder ended: quarantined */
    assert_true(fk_seg(fk, tainted)->flags & SEG_INFO_QUARANTINED);

    fk_crash(fk);
    assert_int_equal(fk_restart(fk, 1), 0);
    fk_assert_consistent(fk);
    assert_int_equal(fk_request(fk, &m), 0);
    memcpy(&r, m.payload, sizeof(r));
    assert_int_equal(r.restarts, 1);
    assert_int_equal(r.locked_dma, 1);
    assert_int_equal(r.quarantined, 1);
    assert_int_equal(fk_stats(fk).quarantined_bytes, 32 * KiB);
    assert_int_equal(fk_client(fk, a).bytes, 64 * KiB);
    assert_dma_locked(fk);

    fk_pin(fk, pinned, -1);
    fk_quiesce(fk, pinned);
    assert_int_equal(fk_free(fk, a, pinned), 0);
    fk_quiesce(fk, tainted);
    fk_assert_consistent(fk);
    assert_int_equal(fk_stats(fk).quarantined_bytes, 0);
    assert_int_equal(fk_stats(fk).free_bytes + fk_stats(fk).books_bytes, baseline);
    fk_fini(fk);
    free(fk);
}

/* ---- corrupt or inconsistent kernel answers ----------------------------- */

enum corruption {
    BAD_FLAGS,
    SID_ZERO,
    UNALIGNED,
    HUGE,
    OVERLAP,
    OUTSIDE_RAM,
    OVER_KERNEL,
    HELD_AND_RECLAIMED,
    QUARANTINED_HELD,
    PINNED_UNHELD,
    SID_TWICE,
    TOO_MANY,
    NEGATIVE,
    EXTRA_ON_SECOND_PASS,
    MOVED_ON_SECOND_PASS,
    BOOKS_MOVED,
};

static struct {
    enum corruption kind;
    unsigned calls;
    int64_t (*real)(void *ctx, uint64_t from, struct abi_seg_record *out, unsigned max);
} corrupt;

static int64_t corrupt_segments(void *ctx, uint64_t from, struct abi_seg_record *out, unsigned max)
{
    int64_t n = corrupt.real(ctx, from, out, max);
    bool first = corrupt.calls++ == 0;

    if (corrupt.kind == EXTRA_ON_SECOND_PASS) {
        /* One more segment than the survey counted, in the first free gap
         * between two listed ones. */
        int64_t i;
        if (from != 0 || first || n >= (int64_t)max)
            return n;
        for (i = 1; i < n; i++) {
            if (out[i].phys - (out[i - 1].phys + out[i - 1].size) < 2 * SPAN_GRANULE)
                continue;
            memmove(&out[i + 1], &out[i], (size_t)(n - i) * sizeof(out[0]));
            out[i] = out[i - 1];
            out[i].sid += 1ull << 40;
            out[i].phys = out[i - 1].phys + out[i - 1].size;
            out[i].size = SPAN_GRANULE;
            return n + 1;
        }
        fail_msg("no free gap between the listed segments");
    }
    if (corrupt.kind == MOVED_ON_SECOND_PASS) {
        /* A segment a granule smaller the second time: its last granule
         * would look free. Only the fingerprint of the walks can tell. */
        int64_t i;
        for (i = 0; from == 0 && !first && i < n; i++)
            if (out[i].size > SPAN_GRANULE) {
                out[i].size -= SPAN_GRANULE;
                break;
            }
        return n;
    }
    if (corrupt.kind == BOOKS_MOVED) {
        /* The successor's own new books, a granule lower than it made
         * them: the same on both walks would not be told by the walks. */
        struct fake_kernel *fk = ctx;
        int64_t i;
        for (i = 0; !first && i < n; i++)
            if (boot_books_known(&fk->ms, out[i].sid))
                out[i].phys -= SPAN_GRANULE;
        return n;
    }
    if (!first || n < 4)
        return n;
    switch (corrupt.kind) {
    case BAD_FLAGS: out[2].flags |= 0x1000; break;
    case SID_ZERO: out[2].sid = 0; break;
    case UNALIGNED: out[2].phys += 0x800; break;
    case HUGE: out[2].size = MS_RECORD_MAX + SPAN_GRANULE; break;
    case OVERLAP: out[2].phys = out[1].phys; break;
    case OUTSIDE_RAM: out[n - 1].phys = 0x200000000ull; break;
    case OVER_KERNEL:
        out[0].phys = 0x400000;
        out[0].size = 0x1000;
        break;
    case HELD_AND_RECLAIMED: out[2].flags |= SEG_RECORD_RECLAIMED; break;
    case QUARANTINED_HELD: out[2].flags |= SEG_INFO_QUARANTINED | SEG_INFO_DMA; break;
    case PINNED_UNHELD:
        out[2].pins = 1;
        out[2].owner_pid = 0;
        out[2].flags |= SEG_INFO_DMA | SEG_RECORD_RECLAIMED;
        break;
    case SID_TWICE:
        out[3].sid = out[2].sid;
        corrupt.calls = 0;
        break; /* on the booking pass too */
    case TOO_MANY: return (int64_t)max + 1;
    case NEGATIVE: return -EFAULT;
    case EXTRA_ON_SECOND_PASS:
    case MOVED_ON_SECOND_PASS:
    case BOOKS_MOVED: break;
    }
    return n;
}

static void refused(enum corruption kind, const char *why)
{
    struct fake_kernel *fk = calloc(1, sizeof(*fk));
    uint64_t pid = client_pid(0, 2), sid, baseline;
    unsigned i;

    fk_init(fk, 128, 0);
    assert_int_equal(fk_start(fk, "init.pid=0x100000002"), 0);
    baseline = fk_stats(fk).free_bytes + fk_stats(fk).books_bytes;
    for (i = 0; i < 8; i++)
        assert_int_equal(fk_alloc(fk, pid, (i + 1) * 4 * KiB, 0, 0, 0, &sid), 0);
    fk_crash(fk);

    corrupt.kind = kind;
    corrupt.calls = 0;
    corrupt.real = fk->ops.segments;
    fk->ops.segments = corrupt_segments;
    assert_int_not_equal(fk_restart(fk, 1), 0);
    if (kind == TOO_MANY || kind == NEGATIVE)
        assert_true(fk_console_has(fk, "SYS_MS_SEGMENTS from"));
    else
        assert_true(fk_console_has(fk, "refusing the kernel's segment list"));
    if (!fk_console_has(fk, why))
        fail_msg("corruption %d: expected '%s' in:\n%s", kind, why, fk->console);

    /* The refused server ends like any crash; an honest answer to the
     * next successor gives books that check, and every byte back. */
    fk_crash(fk);
    fk->ops.segments = corrupt.real;
    assert_int_equal(fk_restart(fk, 2), 0);
    fk_assert_consistent(fk);
    assert_int_equal(fk_client(fk, pid).segments, 8);
    fk_exit(fk, pid);
    assert_int_equal(fk_stats(fk).free_bytes + fk_stats(fk).books_bytes, baseline);
    fk_fini(fk);
    free(fk);
}

/* The dead server's books, cut up: while its successor starts, after the
 * books are freed and before the survey, a held 4 KiB segment is placed
 * every CARVE_STEP bytes over where they were. A server whose books grew
 * a block at a time in fragmented memory leaves runs like these. */
#define CARVE_STEP  (160 * KiB)
#define CARVE_MAX   64u
#define CARVE_BOOKS 64u
static struct {
    struct fake_kernel *fk;
    int64_t (*real)(void *ctx, uint64_t from, struct abi_seg_record *out, unsigned max);
    struct ms_range books[CARVE_BOOKS];
    unsigned nbooks, ncarved;
    uint64_t holder, carved[CARVE_MAX];
} carve;

static int64_t carving_segments(void *ctx, uint64_t from, struct abi_seg_record *out, unsigned max)
{
    unsigned i;
    uint64_t at;

    for (i = 0; i < carve.nbooks; i++) {
        for (at = carve.books[i].base; at < carve.books[i].end; at += CARVE_STEP) {
            uint64_t sid;
            assert_true(carve.ncarved < CARVE_MAX);
            assert_true(carve.fk->ops.seg_create(ctx, at, 4 * KiB, carve.holder, &sid) > 0);
            fk_seg(carve.fk, sid)->in_server = false;
            fk_transfer(carve.fk, sid, carve.holder);
            carve.carved[carve.ncarved++] = sid;
        }
    }
    carve.nbooks = 0;
    return carve.real(ctx, from, out, max);
}

static void carve_books_at_restart(struct fake_kernel *fk, uint64_t holder)
{
    unsigned i;

    carve = (typeof(carve)){ .fk = fk, .real = fk->ops.segments, .holder = holder };
    /* The books segments are the records of kind BOOKS (slot blocks have no
     * entry in ms.books[]); single granules are left whole. */
    for (i = 0; i < fk->ms.rec_capacity; i++) {
        const struct ms_record *rec = &fk->ms.recs[i];
        if (rec->kind == MS_REC_BOOKS && rec_size(rec) > 4 * KiB) {
            assert_true(carve.nbooks < CARVE_BOOKS);
            carve.books[carve.nbooks++] = (struct ms_range){ rec->base, rec->base + rec_size(rec) };
        }
    }
    fk->ops.segments = carving_segments;
}

/* Memory filled with 4 KiB segments, every other one freed, and each kept
 * one pinned so nothing can be compacted. Freeing them needs more slots
 * than were spare, with no free run larger than a granule to grow into.
 * Then a crash, and the dead server's books cut up: no free run holds all
 * of the successor's books, nor its slots alone. It places its records in
 * one run, spreads its slots over several, leaves its hash out if no run
 * is left for it, and starts; once everything is freed, nothing is lost. */
static void test_books_over_scattered_runs(void **state)
{
    struct fake_kernel *fk = calloc(1, sizeof(*fk));
    uint64_t pid = client_pid(0, 2), baseline, *sids = calloc(FRAGMENTED_MAX, sizeof(*sids));
    unsigned n = 0, i, pieces = 0;
    struct ms_stats_restart r;
    struct ipc_msg m = { .label = MS_STATS, .badge = FK_INIT_PID, .w = { MS_STATS_RESTART } };

    (void)state;
    fk_init_sized(fk, 24, 0, FRAGMENTED_MAX + 64);
    assert_int_equal(fk_start(fk, "init.pid=0x100000002"), 0);
    baseline = fk_stats(fk).free_bytes + fk_stats(fk).books_bytes;
    while (n < FRAGMENTED_MAX && fk_alloc(fk, pid, 4 * KiB, 0, MS_ALLOC_NOWAIT, 0, &sids[n]) == 0)
        n++;
    assert_true(n > 1000 && n < FRAGMENTED_MAX);
    /* Every free leaves a free span of its own, which takes a slot: the
     * slots run out long before the frees do, and the books must grow
     * into the granules the frees leave. */
    for (i = 0; i < n; i += 2) {
        assert_int_equal(fk_free(fk, pid, sids[i]), 0);
        if (i % 256 == 0)
            fk_assert_consistent(fk);
    }
    assert_false(fk_console_has(fk, "freeing sid"));
    for (i = 1; i < n; i += 2)
        fk_pin(fk, sids[i], 1);
    fk_assert_consistent(fk);

    carve_books_at_restart(fk, pid);
    fk_crash(fk);
    assert_int_equal(fk_restart(fk, 1), 0);
    fk->ops.segments = carve.real;
    assert_true(carve.ncarved > 4);
    fk_assert_consistent(fk);
    assert_dma_locked(fk);
    assert_int_equal(fk_request(fk, &m), 0);
    memcpy(&r, m.payload, sizeof(r));
    assert_int_equal(r.locked_dma, n / 2);
    assert_int_equal(fk_client(fk, pid).segments, n / 2 + carve.ncarved);
    for (i = 0; i < MS_BOOKS_SEGS; i++)
        pieces += fk->ms.books[i].use == MS_BOOKS_NODES;
    assert_true(pieces >= 1);

    for (i = 1; i < n; i += 2) {
        fk_pin(fk, sids[i], -1);
        assert_int_equal(fk_free(fk, pid, sids[i]), 0);
    }
    for (i = 0; i < carve.ncarved; i++)
        assert_int_equal(fk_free(fk, pid, carve.carved[i]), 0);
    fk_assert_consistent(fk);
    assert_int_equal(fk_stats(fk).free_bytes + fk_stats(fk).books_bytes, baseline);
    fk_fini(fk);
    free(fk);
    free(sids);
}

/* Memory filled with 4 KiB segments, every other one freed, so that the
 * books grew a granule at a time (hundreds of slot blocks at 128 MiB,
 * thousands at 5 GiB), then a crash. At 5 GiB the successor's slots do not
 * fit in SLOT_PIECES runs, and grow_behind makes the rest in the runs its
 * walk passes. Everything is booked, and every byte comes back. */
static void restart_after_every_other_freed(uint64_t ram_mib, uint64_t high_mib, unsigned max, bool grows)
{
    struct fake_kernel *fk = calloc(1, sizeof(*fk));
    uint64_t pid = client_pid(0, 2), baseline, *sids = calloc(max, sizeof(*sids));
    unsigned n = 0, i;

    fk_init_sized(fk, ram_mib, high_mib, max + 64);
    assert_int_equal(fk_start(fk, "init.pid=0x100000002"), 0);
    baseline = fk_stats(fk).free_bytes + fk_stats(fk).books_bytes;
    while (n < max && fk_alloc(fk, pid, 4 * KiB, 0, MS_ALLOC_NOWAIT, 0, &sids[n]) == 0)
        n++;
    assert_true(n > max / 2 && n < max);
    for (i = 1; i < n; i += 2)
        assert_int_equal(fk_free(fk, pid, sids[i]), 0);
    fk_assert_consistent(fk);
    print_message("before the crash: %u segments, books %llu KiB in %llu slot blocks\n", n - n / 2,
                  (unsigned long long)(fk->ms.books_size >> 10), (unsigned long long)fk->ms.span.blocks);
    fk_crash(fk);
    assert_int_equal(fk_restart(fk, 1), 0);
    print_message("restarted: %llu slot pieces made while booking\n", (unsigned long long)fk->ms.restart.pieces_grown);
    assert_true(!grows || fk->ms.restart.pieces_grown > 0);
    fk_assert_consistent(fk);
    assert_int_equal(fk_client(fk, pid).segments, n - n / 2);
    for (i = 0; i < n; i += 2)
        assert_int_equal(fk_free(fk, pid, sids[i]), 0);
    fk_assert_consistent(fk);
    assert_int_equal(fk_stats(fk).free_bytes + fk_stats(fk).books_bytes, baseline);
    fk_fini(fk);
    free(fk);
    free(sids);
}

static void test_restart_after_every_other_freed_128m(void **state)
{
    (void)state;
    restart_after_every_other_freed(128, 0, 40 * 1024, false);
}

static void test_restart_after_every_other_freed_5g(void **state)
{
    (void)state;
    restart_after_every_other_freed(3071, 2049, 1400 * 1024, true);
}

static void test_corrupt_answers_refused(void **state)
{
    (void)state;
    refused(BAD_FLAGS, "unknown flags");
    refused(SID_ZERO, "sid 0");
    refused(UNALIGNED, "not whole granules");
    refused(HUGE, "larger than a record covers");
    refused(OVERLAP, "before or over the segment listed before it");
    refused(OUTSIDE_RAM, "not inside one RAM region");
    refused(OVER_KERNEL, "over a kernel range");
    refused(HELD_AND_RECLAIMED, "holder and reclaimed flag disagree");
    refused(QUARANTINED_HELD, "quarantined but held");
    refused(PINNED_UNHELD, "pinned with no holder");
    refused(SID_TWICE, "a sid listed twice");
    refused(TOO_MANY, "answered 33");
    refused(NEGATIVE, "answered -4");
    refused(EXTRA_ON_SECOND_PASS, "more segments than the kernel listed a moment before");
    refused(MOVED_ON_SECOND_PASS, "changed between two walks");
    refused(BOOKS_MOVED, "the new books listed where they were not made");
}

/* Random damage to one field of one record, on either walk: the successor
 * refuses the list or builds books that check, and never reads or writes
 * out of bounds (the _asan build). A changed sid, base or size is always
 * refused (the two walks disagree); what it cannot tell from a sane answer
 * (a payer swapped for another live one, a pin count) it may book. */
static struct {
    uint64_t record, field, value;
    unsigned seen;
    bool second_walk_only, applied;
} damage;

static int64_t damaged_segments(void *ctx, uint64_t from, struct abi_seg_record *out, unsigned max)
{
    int64_t n = corrupt.real(ctx, from, out, max), i;

    if (from == 0)
        damage.seen = damage.seen == 0 ? 1 : 2;
    if (damage.second_walk_only && damage.seen < 2)
        return n;
    for (i = 0; i < n; i++) {
        struct abi_seg_record *r = &out[i];
        if (damage.record-- != 0)
            continue;
        damage.applied = true;
        switch (damage.field) {
        case 0: r->sid ^= damage.value; break;
        case 1: r->phys ^= damage.value; break;
        case 2: r->size ^= damage.value; break;
        case 3: r->owner_pid = damage.value; break;
        case 4: r->payer_pid = damage.value; break;
        case 5: r->flags ^= (uint32_t)damage.value; break;
        default: r->pins = (uint32_t)damage.value; break;
        }
    }
    return n;
}

static uint64_t random_damage_value(unsigned field)
{
    switch (rnd() % 4) {
    case 0: return 1ull << (rnd() % 64);
    case 1: return rnd();
    case 2: return field == 3 || field == 4 ? client_pid((unsigned)(rnd() % 300), 2) : rnd() % 4096;
    default: return field == 1 || field == 2 ? (rnd() % 1024) << 12 : 0;
    }
}

static void test_random_damage_refused_or_checked(void **state)
{
    const char *env = getenv("MEMSRV_DAMAGE_ITERS");
    unsigned iters = env != NULL ? (unsigned)atoi(env) : 400, i, refusals = 0;

    (void)state;
    test_rng_seed(4242);
    for (i = 0; i < iters; i++) {
        struct fake_kernel *fk = calloc(1, sizeof(*fk));
        struct table t = { .fk = fk };
        unsigned c, k;
        fk_init(fk, 64, i % 2 ? 64 : 0);
        fk->no_iommu = i % 3 == 0;
        assert_int_equal(fk_start(fk, "init.pid=0x100000002"), 0);
        for (c = 0; c < CLIENTS; c++)
            t.pid[c] = client_pid(c, 2);
        for (k = 0; k < 40; k++)
            random_op(&t);
        fk_crash(fk);

        damage.field = rnd() % 7;
        damage.value = random_damage_value((unsigned)damage.field);
        damage.record = rnd() % 16;
        damage.seen = 0;
        damage.applied = false;
        damage.second_walk_only = rnd() % 2;
        corrupt.real = fk->ops.segments;
        fk->ops.segments = damaged_segments;
        if (fk_restart(fk, 1) != 0) {
            refusals++;
        } else if (damage.applied && damage.field <= 2 && damage.value != 0) {
            fail_msg("iteration %u: field %llu of a record changed by %#llx, and the list was booked", i,
                     (unsigned long long)damage.field, (unsigned long long)damage.value);
        } else {
            struct ipc_msg m = { .label = MS_CHECK, .badge = FK_INIT_PID };
            if (fk_request(fk, &m) != 0)
                fail_msg("iteration %u: damage field %llu value %#llx: books built that do not check: %.*s", i,
                         (unsigned long long)damage.field, (unsigned long long)damage.value, (int)m.len,
                         (const char *)m.payload);
        }
        fk_fini(fk);
        free(fk);
    }
    /* Most damage is caught; a run where none was would test nothing. */
    assert_true(refusals > iters / 4);
    printf("random damage: %u of %u lists refused, the rest booked and checked\n", refusals, iters);
}

/* An allocation for whichever of two clients still has room under its
 * limit. */
static int64_t alloc_either(struct fake_kernel *fk, const uint64_t pids[2], uint64_t size, uint64_t *sid, uint64_t *who)
{
    int64_t err = fk_alloc(fk, pids[0], size, 0, MS_ALLOC_NOWAIT, 0, sid);

    *who = pids[0];
    if (err == -EDQUOT) {
        err = fk_alloc(fk, pids[1], size, 0, MS_ALLOC_NOWAIT, 0, sid);
        *who = pids[1];
    }
    return err;
}

/* Two clients, each under init's default limit of half of memory, fill it
 * with 1 MiB segments, then with 4 KiB ones, then free the large ones one
 * at a time and refill each hole with small ones: the records array can
 * no longer grow (no run holds a quarter more), and allocations use it to
 * the last record. A successor then finds only the dead array's run for
 * its own, which must hold a record per span without the spare ones. */
static void restart_after_records_filled(uint64_t ram_mib, unsigned cap)
{
    struct fake_kernel *fk = calloc(1, sizeof(*fk));
    uint64_t pids[2] = { client_pid(0, 2), client_pid(1, 2) }, sid, who, total;
    uint64_t *bigs = calloc(cap, sizeof(*bigs)), *owners = calloc(cap, sizeof(*owners));
    unsigned big = 0, i;
    struct ms_stats_global before, after;

    fk_init_sized(fk, ram_mib, 0, cap);
    assert_int_equal(fk_start(fk, "init.pid=0x100000002"), 0);
    total = fk_stats(fk).free_bytes;
    fk_set_limit(fk, pids[0], total / 2);
    fk_set_limit(fk, pids[1], total / 2);
    while (big < cap && alloc_either(fk, pids, 1 * MiB, &bigs[big], &owners[big]) == 0)
        big++;
    while (alloc_either(fk, pids, 4 * KiB, &sid, &who) == 0)
        ;
    for (i = 0; i < big && fk_stats(fk).free_bytes < 4 * KiB; i++) {
        assert_int_equal(fk_free(fk, owners[i], bigs[i]), 0);
        while (alloc_either(fk, pids, 4 * KiB, &sid, &who) == 0)
            ;
    }
    printf("%llu MiB: records %u of %u in use, %llu KiB free\n", (unsigned long long)ram_mib, fk->ms.recs_used,
           fk->ms.rec_capacity, (unsigned long long)(fk_stats(fk).free_bytes >> 10));
    before = fk_stats(fk);
    fk_crash(fk);
    fk->console_len = 0;
    if (fk_restart(fk, 1) != 0)
        fail_msg("the restart failed: %.*s", (int)fk->console_len, fk->console);
    fk_assert_consistent(fk);
    after = fk_stats(fk);
    assert_int_equal(after.free_bytes + after.books_bytes, before.free_bytes + before.books_bytes);
    fk_fini(fk);
    free(fk);
    free(bigs);
    free(owners);
}

static void test_restart_after_records_filled_128m(void **state)
{
    (void)state;
    restart_after_records_filled(128, 40 * 1024);
}

static void test_restart_after_records_filled_64m(void **state)
{
    (void)state;
    restart_after_records_filled(64, 20 * 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_tables),
        cmocka_unit_test(test_large_table),
        cmocka_unit_test(test_pinned_and_quarantined_stay_locked),
        cmocka_unit_test(test_books_over_scattered_runs),
        cmocka_unit_test(test_restart_after_every_other_freed_128m),
        cmocka_unit_test(test_restart_after_every_other_freed_5g),
        cmocka_unit_test(test_restart_after_records_filled_128m),
        cmocka_unit_test(test_restart_after_records_filled_64m),
        cmocka_unit_test(test_corrupt_answers_refused),
        cmocka_unit_test(test_random_damage_refused_or_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
