/*
 * Memory-server layer: compaction, and the lock the compactor shares with
 * the service threads. The span library proposes moves, the kernel migrates
 * (SYS_MS_SEG_MIGRATE: copy, remap the owner, flush), this file confirms or
 * reports each one. Called by alloc.c (direct compaction when an ALLOC finds
 * no room), by the COMPACT request, by dispatch.c (every request takes the
 * books lock here; kernel notifications of DMA changes), and by memsrv.c's
 * compactor thread (memsrv_compactor_step and its pauses).
 *
 * ==========================================================================
 * Discipline
 * ==========================================================================
 * One mutex, ms->lock, guards all of struct memsrv (the span books, the
 * records, the clients, the compactor's state); the MS_STATS counters are
 * written under it too. Service threads hold it for a whole request, except
 * where the request migrates or waits. The compactor holds it for one step
 * at a time: choosing work and proposing one move (span_plan_next, which
 * looks at no more than MS_SCAN_MAX segments in a full, range, yield or
 * realign pass), then again to confirm the move. A targeted plan (a
 * demand's) is the exception: choosing its window sweeps every window
 * class in one call, O(segments) under the lock; bounding it needs a
 * sweep that can pause. The longest holds bench=memsrv measured (0.8 ms
 * under icount at 128 MiB, 12-21 ms under TCG) are likely this sweep, or
 * the compactor preempted by the timer while it holds the lock. No thread holds it across a migration: the
 * kernel copies while every other request is served. So a request waits
 * behind the compactor for one step's bookkeeping (its planning, not its
 * copy), measured as hold_max_ns; only a request about the very segment
 * being moved (FREE, MOVE, REVOKE, its holder's exit, its failed reply)
 * waits for that migration, at most MS_STEP_BYTES (4 MiB, two large pages,
 * about 14 ms under QEMU TCG) in the background, and no longer for a
 * MOVE's (MS_MOVE_MAX). On one CPU whose kernel
 * does not preempt a system call, a request that arrives during a
 * migration waits for the kernel's copy as well: the bound is then one
 * migration of at most MS_STEP_BYTES. Both waits are counted (waits,
 * wait_max_ns, wait_p99_ns in MS_STATS_COMPACTION).
 *
 * A migration without the lock: under it, the plan proposes the move (the
 * destination booked in transit, the segment marked moving in the span
 * books, so no allocation, free or plan touches either) and the record is
 * marked MS_REC_MOVING; the lock is released, the kernel migrates, the lock
 * is taken again, the move confirmed (or reported failed), the mark
 * cleared and ms->moved broadcast. Records are named by index across the
 * unlocked part: the records array may be moved to a bigger one meanwhile.
 *
 * ==========================================================================
 * Choosing work (the compactor thread)
 * ==========================================================================
 * In order, the first that applies:
 *   1. FULL: MS_COMPACT FULL requests wait for a full pass (each move at
 *      most MS_STEP_BYTES); it answers them all when it ends. One that
 *      comes when the last pass had nothing to move and the books have not
 *      changed since is answered at once (req_compact).
 *   2. DEMAND: an ALLOC that failed, or needed a direct plan, and was large
 *      (a large page or more, or large-page aligned) or limited (below
 *      an address) left a demand: the compactor runs a targeted plan like
 *      the request's, so the next such request finds room at once, taking
 *      no window that moves more than MS_DEMAND_BYTES (64 MiB: a window
 *      dearer than that is skipped before its witness is worked out, which
 *      keeps the sweep cheap; FULL is the tool for more), and for a
 *      limited one that found no window compacts the memory below the
 *      limit (LIMIT).
 *      Requests that asked to wait (MS_ALLOC_WAIT), and MS_COMPACT TARGET
 *      past its direct budget, wait for this.
 *   3. REGION: proactive compaction, as Linux's: each region's score is
 *      its fragmentation score at the large-page order (per mille of its
 *      free memory in runs that cannot hold an aligned large page). A
 *      region with at least two large pages free whose score reaches
 *      MS_SCORE_START (200) is compacted within itself until the score
 *      falls to MS_SCORE_STOP (100) or the pass ends; not again until the
 *      books change. A pass that did not lower the score defers the region
 *      for 1, 2, 4 ... MS_DEFER_MAX (64) checks of MS_CHECK_NS (100 ms),
 *      so a layout the planner cannot improve costs nothing.
 *   4. YIELD, under pressure (below).
 *   5. REALIGN, when free memory is back (below).
 * Each step moves at most one segment. A rate limit keeps the compactor to
 * MS_BUSY_PERMILLE (half) of each MS_CHECK_NS window while nobody waits for
 * it (FULL, a waiting ALLOC): after that it rests to the window's end, or
 * until a request starts to wait for it.
 * A run ends after MS_PLAN_FAILURES_MAX refused migrations.
 *
 * Realignment both ways (large segments that only wish for large-page
 * alignment; a hard one is never given up):
 *   - pressure: a request for room below a large page in the last
 *     MS_PRESSURE_NS (1 s), or less than a sixteenth of memory free. Under
 *     pressure the yield plan slides such a segment that has its alignment
 *     down over a free gap right below it when free space lies right after
 *     it, joining the two into one run for smaller requests; direct plans
 *     may then also place such segments at 4 KiB alignment
 *     (SPAN_PLAN_RELAX_LARGE).
 *   - free memory back: no such request for MS_PRESSURE_NS and at least an
 *     eighth of memory free: the realign plan moves misaligned ones to
 *     large-page-aligned places.
 *   The gap between the two (a sixteenth to an eighth free, one second
 *   without requests for room) keeps a segment from going back and forth.
 *
 * Direct compaction: an ALLOC that finds no room runs a targeted plan for
 * exactly its size, alignment and limit, on its own thread, with a budget:
 * windows moving more than MS_DIRECT_BYTES (2 MiB) are not taken, no
 * room-making pass runs (when no window has a witness within the budget,
 * the plan gives up at once rather than move bytes it cannot account for:
 * this took direct bytes on the churn benchmark from 188 MB to 33 MB), and
 * the run stops after MS_DIRECT_BYTES or MS_DIRECT_MOVES (256) moves. Past
 * it the request gets -ENOMEM, or with MS_ALLOC_WAIT waits for the
 * compactor's run for its demand (when a service thread is spare, and
 * the client does not already hold its share of the waits: wait_allowed);
 * either way the compactor prepares room like it in the background.
 *
 * What never moves: kernel spans, the server's books, quarantined
 * segments, and pinned segments: the kernel tells the server when a
 * segment comes within a device's reach and when it leaves it
 * (IPC_NOTIFY_DMA, SYS_MS_DMA_CHANGES), and such a segment is locked in the
 * books at once, so plans route around it. A migration the kernel still
 * refuses with -EBUSY (a race with a pin, or a segment in flight in a
 * message) locks it too; those are asked about with SYS_MS_SEG_QUERY every
 * MS_CHECK_NS and unlocked when free.
 */
#include <common/string.h>

#include "ms_server.h"

/* ---- the lock and the statistics ---------------------------------------- */

static uint64_t now_ns(const struct memsrv *ms) { return ms->k->clock_ns(ms->k->ctx); }

void compact_count_wait(struct memsrv *ms, uint64_t ns)
{
    unsigned bucket = 0;

    while (bucket + 1 < MS_WAIT_BUCKETS && ((uint64_t)1 << (bucket + 1)) <= ns)
        bucket++;
    ms->wait_hist[bucket]++;
    ms->cstats.waits++;
    if (ns > ms->cstats.wait_max_ns)
        ms->cstats.wait_max_ns = ns;
}

void compact_count_move(struct memsrv *ms, uint64_t bytes, bool background)
{
    ms->books_gen++; /* a move can open room for another kind of pass */
    ms->moves++;
    ms->bytes_moved += bytes;
    if (background) {
        ms->cstats.bg_moves++;
        ms->cstats.bg_bytes += bytes;
    } else {
        ms->cstats.direct_moves++;
        ms->cstats.direct_bytes += bytes;
    }
}

void books_lock_contended(struct memsrv *ms)
{
    uint64_t t0;
    bool behind;

    behind = __atomic_load_n(&ms->compactor_holds, __ATOMIC_RELAXED);
    t0 = now_ns(ms);
    mutex_lock(&ms->lock);
    if (behind)
        compact_count_wait(ms, now_ns(ms) - t0);
}

/* The compactor took the lock (lock held): requests that wait for it from
 * now on wait on compaction. */
static void compactor_hold(struct memsrv *ms)
{
    ms->hold_start_ns = now_ns(ms);
    __atomic_store_n(&ms->compactor_holds, true, __ATOMIC_RELAXED);
}

/* The compactor is about to release the lock: its hold goes into
 * hold_max_ns (a bookkeeping part of one step, the bound a request waits). */
static void compactor_release(struct memsrv *ms)
{
    uint64_t held = now_ns(ms) - ms->hold_start_ns;

    if (held > ms->cstats.hold_max_ns)
        ms->cstats.hold_max_ns = held;
    __atomic_store_n(&ms->compactor_holds, false, __ATOMIC_RELAXED);
}

struct ms_record *books_settled(struct memsrv *ms, uint64_t sid)
{
    struct ms_record *rec = books_find_sid(ms, sid);
    uint64_t t0 = 0;

    if (rec == NULL || !(rec->flags & MS_REC_MOVING))
        return rec; /* the common case: no wait, nothing to count */
    while ((rec = books_find_sid(ms, sid)) != NULL && (rec->flags & MS_REC_MOVING)) {
        if (t0 == 0)
            t0 = now_ns(ms) | 1;
        condvar_wait(&ms->moved, &ms->lock);
    }
    if (t0 != 0)
        compact_count_wait(ms, now_ns(ms) - t0);
    return rec;
}

/* ---- migrations ----------------------------------------------------------- */

int64_t compact_migrate(struct memsrv *ms, uint32_t index, uint64_t sid, uint64_t to)
{
    bool compactor = ms->compactor_holds; /* else a request's own migration */
    int64_t err;

    ms->recs[index].flags |= MS_REC_MOVING;
    ms->rec_holds++; /* the records must not be renumbered meanwhile */
    if (compactor)
        compactor_release(ms);
    books_unlock(ms);
    err = ms->k->seg_migrate(ms->k->ctx, sid, to);
    mutex_lock(&ms->lock); /* a compactor or a request: not a wait to count */
    if (compactor)
        compactor_hold(ms);
    ms->recs[index].flags &= (uint8_t)~MS_REC_MOVING;
    ms->rec_holds--;
    condvar_broadcast(&ms->moved);
    return err;
}

/*
 * Carries out one proposed move without the lock, then confirms it or
 * reports the failure; 0 or the kernel's error. A span the server cannot
 * name is never moved. Lock held on entry and on return.
 */
static int64_t execute_move(struct memsrv *ms, struct span_plan *plan, const struct span_move *mv, bool background)
{
    struct ms_record *rec = books_record(ms, mv->tag);
    uint32_t index = (uint32_t)mv->tag;
    int64_t err;

    if (rec == NULL || rec->base != mv->from || rec->kind != MS_REC_SEGMENT || rec->sid == 0)
        err = -ENOENT;
    else
        err = compact_migrate(ms, index, rec->sid, mv->to);
    rec = books_record(ms, index);
    if (err == 0) {
        /* The kernel has it at mv->to now, whatever the span books say:
         * a plan that lost its pending move is a broken invariant, which
         * CHECK reports from here on. */
        if (span_move_done(&ms->span, plan, mv) != 0)
            ms_log(ms, "memsrv: books: the move of %#llx+%#llx to %#llx was not the plan's pending one",
                   (unsigned long long)mv->from, (unsigned long long)mv->size, (unsigned long long)mv->to);
        rec->base = mv->to;
        compact_count_move(ms, mv->size, background);
        if (background && ms->bg_kind == MS_BG_REALIGN)
            ms->cstats.realigned++;
        else if (background && ms->bg_kind == MS_BG_YIELD)
            ms->cstats.yielded++;
        return 0;
    }
    span_move_failed(&ms->span, plan, mv, err == -EBUSY);
    if (err == -EBUSY && rec != NULL)
        books_mark_pinned(ms, rec);
    else
        ms_log(ms, "memsrv: migrating %#llx+%#llx to %#llx failed: %lld", (unsigned long long)mv->from,
               (unsigned long long)mv->size, (unsigned long long)mv->to, (long long)err);
    return err;
}

/* ---- direct compaction ---------------------------------------------------- */

int compact_targeted(struct memsrv *ms, uint64_t size, uint64_t align, uint64_t limit, uint64_t budget_bytes,
                     unsigned budget_moves, uint64_t *moves, uint64_t *bytes)
{
    struct span_plan plan;
    unsigned failures = 0;
    int ret = span_plan_targeted(&ms->span, &plan, size, align, limit);
    uint64_t now = now_ns(ms);

    if (ret != 0)
        return ret;
    plan.max_cost = budget_bytes;
    if (now - ms->last_demand_ns < MS_PRESSURE_NS && size < ms->span.large_size)
        plan.flags |= SPAN_PLAN_RELAX_LARGE; /* under pressure (see "Realignment") */
    ms->compactions++;
    ms->cstats.direct_plans++;
    for (;;) {
        struct span_move mv;
        ret = span_plan_next(&ms->span, &plan, &mv);
        if (ret != SPAN_PLAN_MOVE)
            break;
        if (budget_bytes != 0 && (plan.moved_bytes + mv.size > budget_bytes || plan.moves >= budget_moves)) {
            span_move_failed(&ms->span, &plan, &mv, false);
            ms->cstats.over_budget++;
            ret = -ENOSPC;
            break;
        }
        if (execute_move(ms, &plan, &mv, false) != 0 && ++failures > MS_PLAN_FAILURES_MAX) {
            ret = -EAGAIN;
            break;
        }
    }
    if (moves != NULL)
        *moves = plan.moves;
    if (bytes != NULL)
        *bytes = plan.moved_bytes;
    return ret == SPAN_PLAN_DONE ? 0 : -ENOMEM;
}

/* ---- demands -------------------------------------------------------------- */

uint64_t compact_demand(struct memsrv *ms, uint64_t size, uint64_t align, uint64_t limit)
{
    unsigned i;

    if (size < ms->span.large_size)
        ms->last_demand_ns = now_ns(ms);
    /* One entry per limit and alignment: the largest size asked for. */
    for (i = 0; i < ms->ndemands; i++) {
        struct ms_demand *d = &ms->demands[i];
        if (d->limit == limit && d->align == align) {
            if (size > d->size)
                d->size = size;
            return d->ticket;
        }
    }
    if (ms->ndemands == MS_DEMANDS) {
        /* Full: the newest replaces the last (its waiters are served by
         * the newer run, which comes later). */
        ms->demands[MS_DEMANDS - 1] = (struct ms_demand){ size, align, limit, ++ms->demand_issued };
        return ms->demand_issued;
    }
    ms->demands[ms->ndemands++] = (struct ms_demand){ size, align, limit, ++ms->demand_issued };
    ms->cstats.demand_runs++;
    return ms->demand_issued;
}

/* A wait for the compactor needs a service thread to spare: one always
 * stays to serve. One client (pid) may hold at most half of the threads
 * that may wait (at least one), so that another can still wait beside
 * it however many requests the first sends. */
static bool wait_allowed(const struct memsrv *ms, uint64_t pid)
{
    unsigned spare = ms->service_threads - 1, share = spare / 2 > 1 ? spare / 2 : 1, theirs = 0, i;

    if (pid == 0 || ms->waiting >= spare || ms->waiting >= MS_SERVICE_THREADS) /* 0 marks a free entry */
        return false;
    for (i = 0; i < MS_SERVICE_THREADS; i++)
        theirs += ms->waiting_pid[i] == pid;
    return theirs < share;
}

static void wait_until(struct memsrv *ms, uint64_t pid, const uint64_t *done, uint64_t ticket)
{
    unsigned entry = 0;

    while (ms->waiting_pid[entry] != 0) /* wait_allowed left one free */
        entry++;
    ms->waiting_pid[entry] = pid;
    ms->waiting++;
    ms->cstats.waited_requests++;
    if (ms->compactor_idle || ms->compactor_resting)
        condvar_signal(&ms->work);
    while (*done < ticket)
        condvar_wait(&ms->done, &ms->lock);
    ms->waiting--;
    ms->waiting_pid[entry] = 0;
}

int compact_wait_demand(struct memsrv *ms, uint64_t pid, uint64_t ticket)
{
    if (!wait_allowed(ms, pid))
        return -EAGAIN;
    wait_until(ms, pid, &ms->demand_done, ticket);
    return 0;
}

/* ---- pins ------------------------------------------------------------------ */

void compact_poll_pinned(struct memsrv *ms)
{
    uint32_t i;

    for (i = 0; i < ms->rec_capacity && ms->pinned_records > ms->dma_records; i++) {
        struct ms_record *rec = &ms->recs[i];
        struct abi_seg_info info;
        if (rec->kind == 0 || (rec->flags & (MS_REC_PINNED | MS_REC_DMA)) != MS_REC_PINNED)
            continue;
        if (ms->k->seg_query(ms->k->ctx, rec->sid, &info) == 0 && info.pins == 0 &&
            !(info.flags & (SEG_INFO_DMA | SEG_INFO_IN_FLIGHT)))
            books_unpin(ms, rec);
    }
}

#define DMA_BATCH 32u

void compact_dma_changes(struct memsrv *ms)
{
    struct abi_dma_change batch[DMA_BATCH];
    int64_t n, i;

    if (ms->k->dma_changes == NULL)
        return;
    while ((n = ms->k->dma_changes(ms->k->ctx, batch, DMA_BATCH)) > 0) {
        for (i = 0; i < n && i < DMA_BATCH; i++) {
            struct ms_record *rec = books_settled(ms, batch[i].sid);
            if (rec == NULL || rec->kind != MS_REC_SEGMENT || (rec->flags & MS_REC_QUARANTINED))
                continue;
            if (batch[i].busy) {
                if (!(rec->flags & MS_REC_PINNED) && span_lock(&ms->span, rec->base) == 0)
                    books_mark_pinned(ms, rec);
                if ((rec->flags & MS_REC_PINNED) && !(rec->flags & MS_REC_DMA)) {
                    rec->flags |= MS_REC_DMA;
                    ms->dma_records++;
                }
            } else {
                if (rec->flags & MS_REC_DMA) {
                    rec->flags &= (uint8_t)~MS_REC_DMA;
                    ms->dma_records--;
                }
                books_unpin(ms, rec);
            }
        }
        if (n < DMA_BATCH)
            break;
    }
    if (n < 0)
        ms_log(ms, "memsrv: SYS_MS_DMA_CHANGES failed: %lld", (long long)n);
}

/* ---- choosing background work ------------------------------------------- */

static uint32_t region_score(const struct span_region *r, unsigned large_order)
{
    uint64_t pages = r->free_bytes >> SPAN_GRANULE_SHIFT;

    return pages == 0 ? 0 : (uint32_t)((pages - (r->large_blocks << large_order)) * 1000 / pages);
}

/* The time for checks that may not need it: the clock is read at the
 * first check that does, and once. A request's compact_schedule mostly
 * needs none (no deferred region, no recent demand), and reading the clock
 * is most of what that check would cost. */
struct lazy_now {
    const struct memsrv *ms;
    uint64_t ns;
    bool known;
};

static struct lazy_now known_now(const struct memsrv *ms, uint64_t now)
{
    return (struct lazy_now){ .ms = ms, .ns = now, .known = true };
}

/* Out of line: most checks after a request never get here, and the
 * checks that run after every request are inlined into one function. */
static __attribute__((noinline)) uint64_t read_now(struct lazy_now *now)
{
    if (!now->known) {
        now->ns = now_ns(now->ms);
        now->known = true;
    }
    return now->ns;
}

static inline __attribute__((always_inline)) bool under_pressure(const struct memsrv *ms, struct lazy_now *now)
{
    return ms->span.free_bytes * 16 < ms->span.total_bytes ||
           (ms->last_demand_ns != 0 && read_now(now) - ms->last_demand_ns < MS_PRESSURE_NS);
}

static bool memory_back(const struct memsrv *ms, struct lazy_now *now)
{
    return ms->span.free_bytes * 8 >= ms->span.total_bytes && !under_pressure(ms, now);
}

/* Whether region i is due for a proactive pass: it has two large pages
 * free, the books changed since its last one, its score reached
 * MS_SCORE_START, and it is not deferred (a region never deferred needs
 * no clock). */
static inline __attribute__((always_inline)) bool region_ready(const struct memsrv *ms, unsigned i,
                                                               struct lazy_now *now)
{
    const struct span_region *r = &ms->span.regions[i];
    const struct ms_region_state *st = &ms->regions[i];

    return r->free_bytes >= 2 * ms->span.large_size && st->gen != ms->books_gen &&
           region_score(r, ms->span.large_order) >= MS_SCORE_START &&
           (st->defer_until == 0 || read_now(now) >= st->defer_until);
}

/* The region a proactive pass should take now, round robin from
 * next_region, or -1. */
static int region_due(const struct memsrv *ms, struct lazy_now *now)
{
    unsigned k;

    for (k = 0; k < ms->span.region_count; k++) {
        unsigned i = (ms->next_region + k) % ms->span.region_count;
        if (region_ready(ms, i, now))
            return (int)i;
    }
    return -1;
}

static void start(struct memsrv *ms, enum ms_background_kind kind)
{
    ms->bg_kind = kind;
    ms->bg_failures = 0;
    ms->bg_plan.step_bytes = MS_STEP_BYTES;
    ms->bg_plan.scan_max = MS_SCAN_MAX;
    ms->compactions++;
}

/* Starts the most urgent work (Choosing work, above); false if none. */
static bool choose_work(struct memsrv *ms, uint64_t now_ns)
{
    struct lazy_now now = known_now(ms, now_ns);
    int region;

    ready_flush(ms); /* a pass would move them, and around them */
    /* The flush may wait for a ready segment being moved, with the lock
     * let go; a STEP may have started a run meanwhile, its move under way
     * in bg_plan. That run is the work: a new plan would wipe out its
     * pending move. */
    if (ms->bg_kind != MS_BG_NONE)
        return true;

    if (ms->full_done < ms->full_issued) {
        span_plan_full(&ms->span, &ms->bg_plan, MS_STEP_BYTES);
        ms->bg_ticket = ms->full_issued;
        start(ms, MS_BG_FULL);
        return true;
    }
    if (ms->ndemands > 0) {
        struct ms_demand d = ms->demands[0];
        if (span_plan_targeted(&ms->span, &ms->bg_plan, d.size, d.align, d.limit) == 0) {
            /* Windows dearer than MS_DEMAND_BYTES are skipped before their
             * witness is worked out, which bounds the sweep's cost. */
            ms->bg_plan.max_cost = MS_DEMAND_BYTES;
            if (under_pressure(ms, &now) && d.size < ms->span.large_size)
                ms->bg_plan.flags |= SPAN_PLAN_RELAX_LARGE;
            ms->bg_ticket = d.ticket;
            start(ms, MS_BG_DEMAND);
            return true;
        }
        ms->demand_done = d.ticket; /* never possible: nothing to prepare */
        memmove(&ms->demands[0], &ms->demands[1], --ms->ndemands * sizeof(ms->demands[0]));
        condvar_broadcast(&ms->done);
    }
    region = region_due(ms, &now);
    if (region >= 0) {
        const struct span_region *r = &ms->span.regions[region];
        span_plan_range(&ms->span, &ms->bg_plan, r->base, r->base + r->size, MS_STEP_BYTES);
        ms->bg_region = (unsigned)region;
        ms->bg_score_before = region_score(r, ms->span.large_order);
        ms->next_region = ((unsigned)region + 1) % ms->span.region_count;
        start(ms, MS_BG_REGION);
        return true;
    }
    if (under_pressure(ms, &now) && ms->yield_gen != ms->books_gen) {
        span_plan_yield(&ms->span, &ms->bg_plan);
        start(ms, MS_BG_YIELD);
        return true;
    }
    if (ms->span.misaligned > 0 && memory_back(ms, &now) && ms->realign_gen != ms->books_gen) {
        span_plan_realign(&ms->span, &ms->bg_plan);
        start(ms, MS_BG_REALIGN);
        return true;
    }
    return false;
}

/* The run ended (done, given up, or a region's score low enough). */
static void finish(struct memsrv *ms, int ret, uint64_t now)
{
    switch (ms->bg_kind) {
    case MS_BG_FULL:
        ms->full_done = ms->bg_ticket;
        ms->full_moves = ms->bg_plan.moves;
        ms->full_bytes = ms->bg_plan.moved_bytes;
        ms->full_idle_gen =
            ret == SPAN_PLAN_DONE && ms->bg_plan.moves == 0 && ms->bg_failures == 0 ? ms->books_gen + 1 : 0;
        condvar_broadcast(&ms->done);
        break;
    case MS_BG_DEMAND: {
        struct ms_demand d = ms->demands[0];
        if (ret < 0 && d.limit != 0) {
            /* No window below the limit: compact what lies below it. */
            span_plan_range(&ms->span, &ms->bg_plan, 0, d.limit, MS_STEP_BYTES);
            start(ms, MS_BG_LIMIT);
            return;
        }
        __attribute__((fallthrough)); /* the demand is served */
    }
    case MS_BG_LIMIT:
        if (ms->ndemands > 0) {
            ms->demand_done = ms->demands[0].ticket;
            memmove(&ms->demands[0], &ms->demands[1], --ms->ndemands * sizeof(ms->demands[0]));
        }
        condvar_broadcast(&ms->done);
        break;
    case MS_BG_REGION: {
        struct ms_region_state *st = &ms->regions[ms->bg_region];
        uint32_t after = region_score(&ms->span.regions[ms->bg_region], ms->span.large_order);
        st->gen = ms->books_gen;
        if (after < ms->bg_score_before) {
            st->defer = 0;
        } else {
            st->defer = st->defer == 0 ? 1 : st->defer * 2 > MS_DEFER_MAX ? MS_DEFER_MAX : st->defer * 2;
            st->defer_until = now + st->defer * MS_CHECK_NS;
        }
        break;
    }
    case MS_BG_STEP:
        ms->step_idle_gen =
            ret == SPAN_PLAN_DONE && ms->bg_plan.moves == 0 && ms->bg_failures == 0 ? ms->books_gen + 1 : 0;
        break;
    case MS_BG_YIELD: ms->yield_gen = ms->books_gen; break;
    case MS_BG_REALIGN: ms->realign_gen = ms->books_gen; break;
    case MS_BG_NONE: break;
    }
    ms->bg_kind = MS_BG_NONE;
}

/* One step of the current run, lock held; returns the plan's answer. A
 * STEP request and the compactor share the run: one waits while the
 * other's migration is under way. */
static int step_locked(struct memsrv *ms, uint64_t now)
{
    struct span_move mv;
    int ret;

    while (ms->bg_plan.pending) {
        bool compactor = ms->compactor_holds;
        if (compactor)
            compactor_release(ms);
        condvar_wait(&ms->moved, &ms->lock);
        if (compactor)
            compactor_hold(ms);
    }
    if (ms->bg_kind == MS_BG_NONE)
        return SPAN_PLAN_DONE; /* the other one ended it */

    if (ms->bg_kind == MS_BG_REGION &&
        region_score(&ms->span.regions[ms->bg_region], ms->span.large_order) <= MS_SCORE_STOP) {
        finish(ms, SPAN_PLAN_DONE, now);
        return SPAN_PLAN_DONE;
    }
    ret = span_plan_next(&ms->span, &ms->bg_plan, &mv);
    if (ret == SPAN_PLAN_MOVE) {
        bool moved = mv.size <= MS_STEP_BYTES && execute_move(ms, &ms->bg_plan, &mv, true) == 0;
        if (mv.size > MS_STEP_BYTES) {
            /* Not in the background: a request would wait for its copy. */
            span_move_failed(&ms->span, &ms->bg_plan, &mv, false);
            ret = -E2BIG;
        } else if (!moved && ++ms->bg_failures > MS_PLAN_FAILURES_MAX) {
            ret = -EAGAIN;
        } else {
            return SPAN_PLAN_MOVE;
        }
    }
    if (ret != SPAN_PLAN_PAUSE)
        finish(ms, ret, now);
    return ret;
}

bool memsrv_compactor_step(struct memsrv *ms)
{
    uint64_t t0, held;
    bool worked = true;

    books_lock(ms);
    compactor_hold(ms);
    t0 = ms->hold_start_ns;
    if (ms->pinned_records > ms->dma_records && t0 >= ms->next_poll_ns) {
        compact_poll_pinned(ms);
        ms->next_poll_ns = t0 + MS_CHECK_NS;
    }
    if (ms->bg_kind == MS_BG_NONE && !choose_work(ms, t0))
        worked = false;
    else
        step_locked(ms, t0); /* releases the lock around its migration */
    held = now_ns(ms) - t0;
    if (worked) {
        ms->cstats.steps++;
        ms->cstats.busy_ns += held;
        ms->window_busy += held;
    }
    compactor_release(ms);
    books_unlock(ms);
    return worked;
}

/* Whether a request's change may have given the compactor work (cheap:
 * O(regions), the clock read only if a check needs it); lock held. */
static inline __attribute__((always_inline)) bool work_possible(const struct memsrv *ms, struct lazy_now *now)
{
    if (ms->bg_kind != MS_BG_NONE || ms->full_done < ms->full_issued || ms->ndemands > 0)
        return true;
    for (unsigned i = 0; i < ms->span.region_count; i++)
        if (region_ready(ms, i, now))
            return true;
    return (ms->yield_gen != ms->books_gen && under_pressure(ms, now)) ||
           (ms->span.misaligned > 0 && ms->realign_gen != ms->books_gen && memory_back(ms, now));
}

/* How long the compactor may sleep: until a deferred region comes due, a
 * pinned segment is to be asked about, or pressure ends (realignment);
 * TIMEOUT_FOREVER when only a request can bring work. Lock held. */
static uint64_t idle_timeout(const struct memsrv *ms, uint64_t now)
{
    struct lazy_now at = known_now(ms, now);
    uint64_t next = UINT64_MAX;
    unsigned i;

    for (i = 0; i < ms->span.region_count; i++)
        if (ms->regions[i].defer_until > now && ms->regions[i].gen != ms->books_gen &&
            ms->regions[i].defer_until < next)
            next = ms->regions[i].defer_until;
    if (ms->pinned_records > ms->dma_records && ms->next_poll_ns < next)
        next = ms->next_poll_ns > now ? ms->next_poll_ns : now;
    if (ms->span.misaligned > 0 && under_pressure(ms, &at) && ms->last_demand_ns + MS_PRESSURE_NS < next)
        next = ms->last_demand_ns + MS_PRESSURE_NS;
    if (next == UINT64_MAX)
        return TIMEOUT_FOREVER;
    return next > now ? next - now : TIMEOUT_POLL;
}

void memsrv_compactor_idle(struct memsrv *ms)
{
    struct lazy_now at;
    uint64_t now, timeout;

    books_lock(ms);
    now = now_ns(ms);
    at = known_now(ms, now);
    /* Work that came between the step that found none and this lock (a
     * FULL request on another CPU, say) signalled nobody: the compactor
     * was neither idle nor resting. Sleeping now would leave it waiting
     * for the next request that happens to signal. */
    if (work_possible(ms, &at)) {
        books_unlock(ms);
        return;
    }
    timeout = idle_timeout(ms, now);
    ms->compactor_idle = true;
    if (timeout == TIMEOUT_FOREVER)
        condvar_wait(&ms->work, &ms->lock);
    else
        condvar_wait_timeout(&ms->work, &ms->lock, timeout);
    ms->compactor_idle = false;
    books_unlock(ms);
}

void memsrv_compactor_rest(struct memsrv *ms)
{
    uint64_t now, until;

    books_lock(ms);
    now = now_ns(ms);
    if (now - ms->window_start >= MS_CHECK_NS) {
        ms->window_start = now;
        ms->window_busy = 0;
    } else if (ms->waiting == 0 && ms->window_busy * 1000 >= MS_CHECK_NS * MS_BUSY_PERMILLE) {
        /* Rests to the window's end, unless a request starts to wait for
         * it (wait_until wakes it). */
        until = ms->window_start + MS_CHECK_NS;
        ms->compactor_resting = true;
        while (ms->waiting == 0 && now < until) {
            condvar_wait_timeout(&ms->work, &ms->lock, until - now);
            now = now_ns(ms);
        }
        ms->compactor_resting = false;
    }
    books_unlock(ms);
}

void compact_schedule(struct memsrv *ms)
{
    struct lazy_now now = { .ms = ms };

    if (ms->compactor_idle && work_possible(ms, &now)) {
        ms->compactor_idle = false; /* one signal is enough */
        condvar_signal(&ms->work);
    }
}

/* ---- COMPACT ------------------------------------------------------------ */

int64_t req_compact(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply)
{
    const struct ms_compact_req args = ms_compact_req_get(req);
    uint64_t mode = args.mode, size = args.size, align = args.align, limit = args.limit;
    uint64_t moves = 0, bytes = 0;
    struct span_stats st;
    int64_t result = 0;

    if (mode == MS_COMPACT_FULL || mode == MS_COMPACT_STEP) {
        if (size != 0 || align != 0 || limit != 0)
            return -EINVAL;
    } else if (mode == MS_COMPACT_TARGET) {
        if (size == 0 || (align != 0 && (align < SPAN_GRANULE || (align & (align - 1)) != 0)))
            return -EINVAL;
        /* As ALLOC's: a size no segment could have would also swell a
         * demand another client shares (compact_demand keeps the largest). */
        if (size > ms->span.total_bytes || size > MS_RECORD_MAX)
            return -E2BIG;
        size = (size + SPAN_GRANULE - 1) & ~(uint64_t)(SPAN_GRANULE - 1);
    } else {
        return -EINVAL;
    }

    ready_flush(ms);
    if (mode == MS_COMPACT_FULL) {
        /* The compactor does it; this thread holds the reply meanwhile.
         * When the last pass had nothing to move and nothing has changed
         * since, another would find the same: answered at once, so that a
         * client asking in a loop does not keep the compactor scanning. */
        bool idle = ms->full_idle_gen == ms->books_gen + 1 && ms->full_done == ms->full_issued;
        if (!idle) {
            if (!wait_allowed(ms, req->badge))
                return -EBUSY;
            wait_until(ms, req->badge, &ms->full_done, ++ms->full_issued);
            moves = ms->full_moves;
            bytes = ms->full_bytes;
        }
    } else if (mode == MS_COMPACT_STEP) {
        /* One step of the compactor's, here: a pass is started if none runs. */
        uint64_t before_moves = ms->cstats.bg_moves, before_bytes = ms->cstats.bg_bytes;
        uint64_t now = now_ns(ms);
        /* Work other clients wait for (a FULL, a demand) is started first:
         * a client stepping in a loop would otherwise keep it waiting. */
        if (ms->bg_kind == MS_BG_NONE && (ms->full_done < ms->full_issued || ms->ndemands > 0))
            (void)choose_work(ms, now);
        /* As FULL's: when the last STEP pass had nothing to move and the
         * books have not changed since, a new one would find the same, so
         * a client stepping in a loop gets its answer without a scan. */
        bool idle = ms->step_idle_gen == ms->books_gen + 1;
        if (ms->bg_kind == MS_BG_NONE && !idle) {
            span_plan_full(&ms->span, &ms->bg_plan, MS_STEP_BYTES);
            start(ms, MS_BG_STEP);
        }
        if (ms->bg_kind != MS_BG_NONE)
            step_locked(ms, now);
        moves = ms->cstats.bg_moves - before_moves;
        bytes = ms->cstats.bg_bytes - before_bytes;
    } else {
        /* As an ALLOC's room-making: direct within its budget, then the
         * compactor's run for a demand (its share of the CPU is bounded),
         * waited for when a thread is spare. Unbudgeted, a client asking
         * for ever larger runs on memory it keeps fragmenting would keep
         * the service threads copying memory for it. */
        result = compact_targeted(ms, size, align, limit, MS_DIRECT_BYTES, MS_DIRECT_MOVES, &moves, &bytes);
        if (result != 0 && compact_wait_demand(ms, req->badge, compact_demand(ms, size, align, limit)) == 0) {
            uint64_t more_moves = 0, more_bytes = 0;
            result =
                compact_targeted(ms, size, align, limit, MS_DIRECT_BYTES, MS_DIRECT_MOVES, &more_moves, &more_bytes);
            moves += more_moves;
            bytes += more_bytes;
        }
    }
    span_stats(&ms->span, &st);
    ms_compact_reply_put(
        reply, (struct ms_compact_reply){ .moves = moves, .bytes_moved = bytes, .largest_free = st.largest_free });
    return result;
}
