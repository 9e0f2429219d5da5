/*
 * Memory-server layer: carrying out compaction. The span library proposes
 * moves, the kernel migrates (SYS_MS_SEG_MIGRATE: copy, remap the owner,
 * flush), this file confirms or reports each one. Called by alloc.c (direct
 * compaction when an ALLOC finds no room), by the COMPACT request, and by
 * memsrv.c's loop for background work when a receive times out.
 *
 * When:
 *   - direct: an ALLOC that cannot be met runs a targeted plan for exactly
 *     its size, alignment and limit before it answers -ENOMEM;
 *   - background: when the fragmentation score reaches MS_FRAG_THRESHOLD
 *     (at once when a request makes it cross), and every MS_IDLE_NS while a
 *     pass is under way, segments are pinned-locked, or large segments sit
 *     misaligned. Each step moves at most MS_STEP_BYTES (segments larger
 *     than that are left to realignment), a realignment step one segment,
 *     so a request waits behind at most one step.
 * What never moves: kernel spans, the server's books, pinned segments (the
 * kernel refuses with -EBUSY: the segment is locked in the books and polled
 * with SYS_MS_SEG_QUERY until its pins are gone), quarantined segments.
 * A pass that finished is not rerun until the books change (books_gen), so
 * an arrangement the planner cannot improve costs nothing while idle.
 */
#include "ms_server.h"

/* Carries out one proposed move; 0 or the kernel's error. */
static int64_t execute_move(struct memsrv *ms, struct span_plan *plan, const struct span_move *mv)
{
    struct ms_record *rec = books_record(ms, mv->tag);
    int64_t err;

    if (rec == NULL || rec->base != mv->from || rec->kind != MS_REC_SEGMENT || rec->sid == 0)
        err = -ENOENT; /* a span the server cannot name: never move it */
    else
        err = ms->k->seg_migrate(ms->k->ctx, rec->sid, mv->to);
    if (err == 0) {
        span_move_done(&ms->span, plan, mv);
        rec->base = mv->to;
        ms->books_gen++; /* a move can open room for the other kind of pass */
        ms->moves++;
        ms->bytes_moved += mv->size;
        if (ms->in_background) {
            ms->cstats.bg_moves++;
            ms->cstats.bg_bytes += mv->size;
        } else {
            ms->cstats.direct_moves++;
            ms->cstats.direct_bytes += mv->size;
        }
        return 0;
    }
    span_move_failed(&ms->span, plan, mv, err == -EBUSY);
    if (err == -EBUSY)
        books_mark_pinned(ms, rec);
    else
        ms_log(ms, "memsrv: migrating %#llx+%#llx to %#llx failed: %lld",
               (unsigned long long)mv->from, (unsigned long long)mv->size,
               (unsigned long long)mv->to, (long long)err);
    return err;
}

/*
 * Runs a plan until it is done, pauses (its byte budget), or has made
 * max_moves moves (0: no limit). A move the kernel refuses is reported to
 * the library, which plans around it; too many refusals end the run, so a
 * kernel that refuses everything cannot keep the server in a loop.
 */
static int run_plan(struct memsrv *ms, struct span_plan *plan, unsigned max_moves,
                    unsigned *failures)
{
    unsigned moves = 0;

    for (;;) {
        struct span_move mv;
        int ret = span_plan_next(&ms->span, plan, &mv);
        if (ret != SPAN_PLAN_MOVE)
            return ret;
        if (execute_move(ms, plan, &mv) != 0) {
            if (++*failures > MS_PLAN_FAILURES_MAX)
                return -EAGAIN;
        } else if (max_moves != 0 && ++moves >= max_moves) {
            return SPAN_PLAN_PAUSE;
        }
    }
}

int compact_targeted(struct memsrv *ms, uint64_t size, uint64_t align, uint64_t limit,
                     uint64_t *moves, uint64_t *bytes)
{
    struct span_plan plan;
    unsigned failures = 0;
    int ret = span_plan_targeted(&ms->span, &plan, size, align, limit);

    if (ret != 0)
        return ret;
    ms->compactions++;
    ms->cstats.direct_plans++;
    ret = run_plan(ms, &plan, 0, &failures);
    if (moves != NULL)
        *moves = plan.moves;
    if (bytes != NULL)
        *bytes = plan.moved_bytes;
    return ret == SPAN_PLAN_DONE ? 0 : -ENOMEM;
}

void compact_poll_pinned(struct memsrv *ms)
{
    uint32_t i;

    for (i = 0; i < ms->rec_capacity && ms->pinned_records > 0; i++) {
        struct ms_record *rec = &ms->recs[i];
        struct abi_seg_info info;
        if (rec->kind == 0 || !(rec->flags & MS_REC_PINNED))
            continue;
        if (ms->k->seg_query(ms->k->ctx, rec->sid, &info) == 0 && info.pins == 0)
            books_unpin(ms, rec);
    }
}

static bool background_wanted(const struct memsrv *ms, const struct span_stats *st)
{
    return ms->bg_kind != MS_BG_NONE || ms->pinned_records > 0 ||
           (st->fragmentation_score >= MS_FRAG_THRESHOLD && ms->books_gen != ms->bg_compact_gen) ||
           (st->misaligned_segments > 0 && ms->books_gen != ms->bg_realign_gen);
}

void compact_schedule(struct memsrv *ms, uint64_t now)
{
    struct span_stats st;
    bool crossed;

    span_stats(&ms->span, &st);
    crossed = st.fragmentation_score >= MS_FRAG_THRESHOLD && ms->last_score < MS_FRAG_THRESHOLD;
    ms->last_score = st.fragmentation_score;
    if (!background_wanted(ms, &st))
        ms->next_work_ns = MS_NEVER;
    else if (crossed)
        ms->next_work_ns = now;
    else if (ms->next_work_ns == MS_NEVER)
        ms->next_work_ns = now + MS_IDLE_NS;
}

static void background_start(struct memsrv *ms)
{
    struct span_stats st;

    span_stats(&ms->span, &st);
    if (st.misaligned_segments > 0 && ms->books_gen != ms->bg_realign_gen) {
        span_plan_realign(&ms->span, &ms->bg_plan);
        ms->bg_kind = MS_BG_REALIGN;
    } else if (st.fragmentation_score >= MS_FRAG_THRESHOLD && ms->books_gen != ms->bg_compact_gen) {
        span_plan_full(&ms->span, &ms->bg_plan, MS_STEP_BYTES);
        ms->bg_kind = MS_BG_COMPACT;
    } else {
        return;
    }
    ms->bg_failures = 0;
    ms->compactions++;
}

/* One background step; returns the plan's result. */
static int background_step(struct memsrv *ms)
{
    int ret;

    if (ms->bg_kind == MS_BG_NONE)
        background_start(ms);
    if (ms->bg_kind == MS_BG_NONE)
        return SPAN_PLAN_DONE;
    ret = run_plan(ms, &ms->bg_plan, ms->bg_kind == MS_BG_REALIGN ? 1 : 0, &ms->bg_failures);
    if (ret != SPAN_PLAN_PAUSE) {
        /* Done (or given up): not again until the books change. */
        if (ms->bg_kind == MS_BG_REALIGN)
            ms->bg_realign_gen = ms->books_gen;
        else
            ms->bg_compact_gen = ms->books_gen;
        ms->bg_kind = MS_BG_NONE;
    }
    return ret;
}

bool memsrv_work_due(const struct memsrv *ms, uint64_t now)
{
    return ms->next_work_ns != MS_NEVER && now >= ms->next_work_ns;
}

void memsrv_background(struct memsrv *ms, uint64_t now)
{
    uint64_t start = ms->k->clock_ns(ms->k->ctx);

    ms->in_background = true;
    if (ms->pinned_records > 0)
        compact_poll_pinned(ms);
    background_step(ms);
    ms->in_background = false;
    ms->cstats.steps++;
    ms->cstats.busy_ns += ms->k->clock_ns(ms->k->ctx) - start;
    ms->next_work_ns = MS_NEVER;
    compact_schedule(ms, now);
}

uint64_t memsrv_timeout(const struct memsrv *ms, uint64_t now)
{
    if (ms->next_work_ns == MS_NEVER)
        return TIMEOUT_FOREVER;
    return ms->next_work_ns > now ? ms->next_work_ns - now : TIMEOUT_POLL;
}

int64_t req_compact(struct memsrv *ms, const struct ipc_msg *req, struct ipc_msg *reply)
{
    uint64_t mode = req->w[0], moves_before = ms->moves, bytes_before = ms->bytes_moved;
    uint64_t size = req->w[1], align = req->w[2], limit = req->w[3];
    struct span_stats st;
    int64_t result = 0;

    if (mode == MS_COMPACT_FULL || mode == MS_COMPACT_STEP) {
        if (size != 0 || align != 0 || limit != 0)
            return -EINVAL;
    } else if (mode == MS_COMPACT_TARGET) {
        if (size == 0 || (align != 0 && (align < SPAN_GRANULE || (align & (align - 1)) != 0)))
            return -EINVAL;
    } else {
        return -EINVAL;
    }

    if (mode == MS_COMPACT_FULL) {
        struct span_plan plan;
        unsigned failures = 0;
        span_plan_full(&ms->span, &plan, 0);
        ms->compactions++;
        run_plan(ms, &plan, 0, &failures);
    } else if (mode == MS_COMPACT_STEP) {
        /* One step of the background pass, started now if none runs. */
        if (ms->bg_kind != MS_BG_COMPACT) {
            span_plan_full(&ms->span, &ms->bg_plan, MS_STEP_BYTES);
            ms->bg_kind = MS_BG_COMPACT;
            ms->bg_failures = 0;
            ms->compactions++;
        }
        background_step(ms);
    } else {
        result = compact_targeted(ms, size, align, limit, NULL, NULL);
    }
    span_stats(&ms->span, &st);
    reply->w[0] = ms->moves - moves_before;
    reply->w[1] = ms->bytes_moved - bytes_before;
    reply->w[2] = st.largest_free;
    return result;
}
