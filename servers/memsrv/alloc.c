/*
 * Memory-server layer: the requests that create, return and move segments
 * (ALLOC, FREE, MOVE, REVOKE). Limits on what a client may hold are the
 * kernel's (its account tree): creating a segment for a client over them
 * is refused there, and the refusal (-EDQUOT) goes back to the client.
 * Called by dispatch.c after its checks, with the books lock held; each
 * handler checks its own words first and changes the books only once
 * nothing can fail any more, undoing the one booking it made when the
 * kernel refuses. A segment's constraints (its limit, alignment and
 * large-page wish) are booked with it (span_alloc keeps them) and every
 * move keeps them, MOVE's too. A FREE of a small segment keeps it ready
 * and an ALLOC of its size takes a ready one first (ready.c).
 */
#include <common/string.h>

#include "ms_server.h"

/* The steps of an ALLOC, shared with ALLOC_BATCH: inlined into each, where
 * separate calls cost a third of the handler's own instructions (their
 * arguments are mostly pointers to the caller's locals). */
#define ALLOC_STEP static inline __attribute__((always_inline))

static uint64_t round_granule(uint64_t size) { return (size + SPAN_GRANULE - 1) & ~(SPAN_GRANULE - 1); }

static bool valid_alignment(uint64_t align)
{
    return align == 0 || (align >= SPAN_GRANULE && (align & (align - 1)) == 0);
}

/* Room for a request that found none: the reclaim list and the ready
 * segments, then direct compaction within its budget
 * (never for NOWAIT), the compactor told to prepare room like it when the
 * request is large or limited, and with MS_ALLOC_WAIT a wait for that.
 * Returns span_alloc's answer after all that. A caller holding segments it
 * placed but has not committed (held_work) takes at most
 * MS_RECLAIM_HELD_MAX of the reclaim list, since it cannot let the
 * books lock go: a concurrent CHECK would find spans without records. */
static int make_room(struct memsrv *ms, const struct span_request *sreq, uint64_t flags, uint64_t pid, uint64_t index,
                     bool held_work, uint64_t *base)
{
    bool large = sreq->size >= ms->span.large_size || sreq->align >= ms->span.large_size;
    bool wanted = large || sreq->limit != 0; /* the demand worth preparing for */
    uint64_t ticket = 0;
    int err = -ENOMEM;

    /* What ended processes gave back first: the notification that
     * announces it may sit with another service thread, and a parent that
     * waited for a child to end allocates right after. */
    if (held_work)
        reclaim_drain_held(ms, MS_RECLAIM_HELD_MAX);
    else
        reclaim_drain(ms);
    if (span_alloc(&ms->span, sreq, index, base) == 0)
        return 0;
    if (ms->ready_bytes != 0) {
        /* Then the ready segments: they may be all that stands between
         * free spans. */
        ready_flush(ms);
        if (span_alloc(&ms->span, sreq, index, base) == 0)
            return 0;
    }
    if (flags & MS_ALLOC_NOWAIT) {
        /* A fill that stops where room ends asks below a limit; a poll for
         * a large run asks to have one made. */
        if (large && sreq->limit == 0)
            compact_demand(ms, sreq->size, sreq->align, 0);
        return -ENOMEM;
    }
    /* The planner weighs a window by booking a trial place for each of its
     * segments (up to 4 slots each): with only the spare slots it would
     * judge most windows impossible and move far more than it needs to. */
    books_reserve(ms, MS_PLAN_SLOTS, 0);
    if (compact_targeted(ms, sreq->size, sreq->align, sreq->limit, MS_DIRECT_BYTES, MS_DIRECT_MOVES, NULL, NULL) == 0)
        err = span_alloc(&ms->span, sreq, index, base);
    if (wanted || err != 0)
        ticket = compact_demand(ms, sreq->size, sreq->align, sreq->limit);
    if (err == -ENOMEM && (flags & MS_ALLOC_WAIT) && compact_wait_demand(ms, pid, ticket) == 0)
        err = span_alloc(&ms->span, sreq, index, base);
    return err;
}

static void count_failure(struct memsrv *ms, struct ms_client *c)
{
    c->failures++;
    ms->alloc_failures++;
}

/*
 * The checks ALLOC and ALLOC_BATCH share: the words, the caller, the size.
 * 0 with the caller's client index and the span request for one segment,
 * or -E* with nothing changed (a failure counted against a known client).
 */
ALLOC_STEP int64_t alloc_check(struct memsrv *ms, const struct ms_alloc_req *args, uint64_t badge, uint32_t *client,
                               struct span_request *sreq)
{
    uint64_t size = args->size, align = args->align, flags = args->flags, large = ms->span.large_size;

    if (size == 0 || !valid_alignment(align) ||
        (flags & ~(uint64_t)(MS_ALLOC_LARGE | MS_ALLOC_BELOW | MS_ALLOC_NOWAIT | MS_ALLOC_WAIT)) ||
        (flags & MS_ALLOC_NOWAIT && flags & MS_ALLOC_WAIT))
        return -EINVAL;
    if ((flags & MS_ALLOC_BELOW) ? args->limit == 0 : args->limit != 0)
        return -EINVAL;
    *client = books_client(ms, badge, true);
    if (*client == MS_NO_CLIENT)
        return -EINVAL; /* not a pid the kernel makes */
    if (size > ms->span.total_bytes || size > MS_RECORD_MAX) {
        count_failure(ms, &ms->clients[*client]);
        return -E2BIG;
    }
    size = round_granule(size);
    if ((flags & MS_ALLOC_LARGE) && align < large)
        align = large;
    /* A large segment asked for without MS_ALLOC_LARGE may land at 4 KiB
     * alignment under pressure; background realignment fixes it later. */
    *sreq = (struct span_request){ .size = size,
                                   .align = align,
                                   .limit = args->limit,
                                   .flags = size >= large && !(flags & MS_ALLOC_LARGE) ? SPAN_LARGE_OK : 0 };
    return 0;
}

/* A record and a span for sreq (compacting as flags allow): 0 with both
 * booked, or -E* with neither. held_work: the caller holds placements it
 * has not committed (make_room). */
ALLOC_STEP int alloc_place(struct memsrv *ms, const struct span_request *sreq, uint64_t flags, uint64_t pid,
                           bool held_work, uint32_t *index, uint64_t *base)
{
    int err;

    *index = books_new_record(ms);
    if (*index == MS_NO_RECORD)
        return -ENOMEM;
    err = span_alloc(&ms->span, sreq, *index, base);
    if (err == -ENOMEM)
        err = make_room(ms, sreq, flags, pid, *index, held_work, base);
    if (err != 0)
        books_drop_new_record(ms, *index);
    return err;
}

/* Undoes alloc_place. The free span it leaves may need a slot, and the
 * ones reserved before a zero-fill let the lock go may have been used by
 * others meanwhile: reserved again here. Should there still be none, the
 * span stays booked, charged to nobody, with a record of its own, rather
 * than be left with a record index that is free again. */
static void alloc_unplace(struct memsrv *ms, uint32_t index, uint64_t base)
{
    struct span_info info;

    (void)books_reserve(ms, 1, 0);
    if (span_free(&ms->span, base) == 0) {
        books_drop_new_record(ms, index);
        return;
    }
    if (span_lookup(&ms->span, base, &info) != 0 || info.base != base) {
        books_drop_new_record(ms, index); /* nothing booked there: nothing to keep */
        return;
    }
    ms_log(ms, "memsrv: no slot to free the unused span at %#llx: it stays booked", (unsigned long long)base);
    books_commit_record(ms, index, MS_REC_SEGMENT, 0, base, info.size, MS_NO_CLIENT);
}

/* Undoes alloc_create and alloc_place for a segment the server still
 * holds; a destroy the kernel refuses leaves the span booked, charged to
 * nobody. */
static void alloc_uncreate(struct memsrv *ms, uint32_t index, uint64_t base, uint64_t size, uint64_t sid)
{
    int64_t err = ms->k->seg_destroy(ms->k->ctx, sid);

    if (err == 0) {
        alloc_unplace(ms, index, base);
        return;
    }
    ms_log(ms, "memsrv: destroying unused sid %llu failed: %lld; its span stays booked", (unsigned long long)sid,
           (long long)err);
    books_commit_record(ms, index, MS_REC_SEGMENT, sid, base, size, MS_NO_CLIENT);
}

/*
 * The kernel makes the placed segment for the client c (pid badge),
 * zero-filled and held by the server: 0 with its handle and sid, the
 * record still uncommitted. On -E* the placing is undone, unless the
 * kernel made a segment the server cannot name: its span stays booked,
 * charged to nobody, rather than be handed out twice.
 *
 * The kernel zero-fills the segment. For a large one that takes long
 * enough (up to half of RAM for one client) that the books lock is let
 * go meanwhile: the record is taken and uncommitted (rec_holds, and
 * recs_taken, so that the spare records others' requests count on are
 * really free), which keeps the indices still and the checker content,
 * and the span is locked in the span books, so that no compaction plan
 * picks it (its move could only fail: it has no sid yet). If the client
 * ended meanwhile, its slot may be another's: nothing is charged or
 * counted to it.
 */
ALLOC_STEP int64_t alloc_create(struct memsrv *ms, struct ms_client *c, uint64_t badge, uint32_t index, uint64_t base,
                                uint64_t size, handle_t *handle, uint64_t *sid)
{
    bool let_go = size >= MS_ZERO_UNLOCKED_MIN;
    if (let_go) {
        span_lock(&ms->span, base);
        books_unlock(ms);
    }
    int64_t h = ms->k->seg_create(ms->k->ctx, base, size, badge, sid);
    if (let_go) {
        books_lock(ms);
        span_unlock(&ms->span, base);
        if (c->pid != badge && (h <= 0 || *sid != 0)) {
            if (h > 0)
                alloc_uncreate(ms, index, base, size, *sid);
            else
                alloc_unplace(ms, index, base);
            return -EPEER;
        }
    }

    if (h <= 0) {
        alloc_unplace(ms, index, base);
        /* The client's account is full, or the client is gone: its own
         * affair, not the server's. */
        if (h == -EDQUOT || h == -EPEER) {
            c->quota_refusals++;
            return h;
        }
        ms_log(ms, "memsrv: kernel refused a segment at %#llx+%#llx: %lld", (unsigned long long)base,
               (unsigned long long)size, (long long)h);
        count_failure(ms, c);
        return -ENOMEM;
    }
    if (*sid == 0) {
        ms_log(ms, "memsrv: no sid for the new segment at %#llx: its span stays booked", (unsigned long long)base);
        books_commit_record(ms, index, MS_REC_SEGMENT, 0, base, size, MS_NO_CLIENT);
        if (c->pid == badge)
            c->failures++;
        return -ENOMEM;
    }
    *handle = (handle_t)h;
    return 0;
}

/* Whether a ready segment may serve sreq: one of their sizes, and no
 * constraint a ready segment's place need not keep. */
ALLOC_STEP bool ready_fits(const struct span_request *sreq)
{
    return sreq->align <= SPAN_GRANULE && sreq->limit == 0 && sreq->size <= MS_READY_GRANULES * SPAN_GRANULE;
}

/* A new segment for client c (index client, pid badge): booked, made by
 * the kernel and committed. 0 with its handle and sid, or -E* with
 * nothing booked. */
ALLOC_STEP int64_t alloc_new(struct memsrv *ms, struct ms_client *c, uint32_t client, const struct span_request *sreq,
                             uint64_t flags, uint64_t badge, handle_t *h, uint64_t *sid)
{
    uint32_t index;
    uint64_t base;
    int64_t err;

    err = alloc_place(ms, sreq, flags, badge, false, &index, &base);
    if (err != 0) {
        count_failure(ms, c);
        return err;
    }
    err = alloc_create(ms, c, badge, index, base, sreq->size, h, sid);
    if (err != 0)
        return err;
    books_commit_record(ms, index, MS_REC_SEGMENT, *sid, base, sreq->size, client);
    return 0;
}

int64_t req_alloc(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply)
{
    const struct ms_alloc_req args = ms_alloc_req_get(req);
    struct span_request sreq;
    struct ms_client *c;
    uint32_t client;
    uint64_t sid;
    handle_t h;
    int64_t err;

    err = alloc_check(ms, &args, req->badge, &client, &sreq);
    if (err != 0)
        return err;
    c = &ms->clients[client];
    err = ready_fits(&sreq) ? ready_take(ms, client, req->badge, sreq.size >> SPAN_GRANULE_SHIFT, &h, &sid) : 1;
    if (err > 0)
        err = alloc_new(ms, c, client, &sreq, args.flags, req->badge, &h, &sid);
    else if (err < 0)
        c->quota_refusals++; /* the ready segment's charge refused: the client's account */
    if (err != 0)
        return err;
    c->allocs++;
    reply->seg = h;
    ms_alloc_reply_put(reply, (struct ms_alloc_reply){ .sid = sid });
    return 0;
}

/*
 * ALLOC_BATCH: count segments of one size, all or none. Every span is
 * placed first (no compaction: a span placed early must not sit in the
 * books, uncommitted, while a later one's compaction lets other threads
 * in), then the kernel makes each segment for the client (its account is
 * charged here: -EDQUOT part way undoes the ones made), then hands them all
 * over in one call, which moves all or none. Only then are the records
 * committed.
 *
 * Segments whose zero-fill lets the books lock go (alloc_create) are
 * placed and made one at a time instead: while one fills, the server holds
 * only spans the client's account already pays for (placed all at once,
 * a client allowed one such segment could hold memory for eight of them
 * through the fill, refusing others). The ones made stay locked in the
 * span books until committed or undone, so that no compaction plan made
 * meanwhile proposes to move a segment it cannot name.
 */
int64_t req_alloc_batch(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply)
{
    const struct ms_alloc_batch_req args = ms_alloc_batch_req_get(req);
    const struct ms_alloc_req one = { .size = args.size, .align = args.align, .flags = args.flags | MS_ALLOC_NOWAIT };
    struct abi_seg_give give[MS_BATCH_MAX];
    struct ms_batch_seg segs[MS_BATCH_MAX];
    uint32_t index[MS_BATCH_MAX], client;
    uint64_t base[MS_BATCH_MAX];
    unsigned placed = 0, made = 0, refused = MS_BATCH_MAX, i;
    struct span_request sreq;
    struct ms_client *c;
    bool one_by_one;
    handle_t h;
    int64_t err;

    if (args.count == 0 || args.count > MS_BATCH_MAX || (args.flags & ~(uint64_t)(MS_ALLOC_LARGE | MS_ALLOC_NOWAIT)))
        return -EINVAL;
    err = alloc_check(ms, &one, req->badge, &client, &sreq);
    if (err != 0)
        return err;
    c = &ms->clients[client];
    if (sreq.size > ms->span.total_bytes / args.count) {
        count_failure(ms, c);
        return -E2BIG; /* more than RAM in all */
    }
    one_by_one = sreq.size >= MS_ZERO_UNLOCKED_MIN;
    if (!one_by_one) {
        err = books_reserve(ms, 3 * args.count, (uint32_t)args.count);
        for (; err == 0 && placed < args.count; placed++)
            if ((err = alloc_place(ms, &sreq, one.flags, req->badge, placed != 0, &index[placed], &base[placed])) != 0)
                break;
    }
    for (; err == 0 && made < args.count; made++) {
        if (one_by_one) {
            /* What was reserved before the last fill may be others' now. */
            err = books_reserve(ms, 3, 1);
            if (err == 0)
                err = alloc_place(ms, &sreq, one.flags, req->badge, made != 0, &index[made], &base[made]);
            if (err != 0)
                break;
            placed++;
        }
        if ((err = alloc_create(ms, c, req->badge, index[made], base[made], sreq.size, &h, &give[made].sid)) != 0) {
            refused = made; /* alloc_create undid it and counted the failure */
            break;
        }
        if (one_by_one)
            (void)span_lock(&ms->span, base[made]); /* booked here, the books lock held: cannot fail */
    }
    if (err == 0)
        err = ms->k->seg_give(ms->k->ctx, req->badge, give, (unsigned)args.count);
    for (i = 0; one_by_one && i < made; i++)
        (void)span_unlock(&ms->span, base[i]);
    if (err != 0) {
        for (i = 0; i < placed; i++)
            if (i < made)
                alloc_uncreate(ms, index[i], base[i], sreq.size, give[i].sid);
            else if (i != refused)
                alloc_unplace(ms, index[i], base[i]);
        if (refused == MS_BATCH_MAX && err != -EPEER)
            count_failure(ms, c);
        return err;
    }
    for (i = 0; i < args.count; i++) {
        books_commit_record(ms, index[i], MS_REC_SEGMENT, give[i].sid, base[i], sreq.size, client);
        segs[i] = (struct ms_batch_seg){ .handle = give[i].handle, .vaddr = give[i].vaddr };
    }
    c->allocs += args.count;
    memcpy(reply->payload, segs, args.count * sizeof(segs[0]));
    reply->len = (uint32_t)(args.count * sizeof(segs[0]));
    ms_alloc_batch_reply_put(reply, (struct ms_alloc_batch_reply){ .size = sreq.size });
    return 0;
}

/* The segment arrives unmapped (IPC_RECV_NOMAP), so the kernel names it by
 * its sid in the message: no SYS_SEG_INFO to learn it. */
int64_t req_free(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply)
{
    struct ms_record *rec;
    int64_t err;

    (void)reply;
    rec = books_settled(ms, req->seg_sid);
    if (rec == NULL || rec->kind != MS_REC_SEGMENT) {
        ms_log(ms, "memsrv: pid %#llx freed sid %llu, which the books do not know", (unsigned long long)req->badge,
               (unsigned long long)req->seg_sid);
        return -ENOENT;
    }
    if (ready_keep(ms, rec, req->seg)) {
        req->seg = HANDLE_NONE; /* the server's now, ready for the next ALLOC of its size */
        return 0;
    }
    err = books_destroy(ms, rec, "freed");
    if (err < 0)
        return err;
    req->seg = HANDLE_NONE; /* gone: destroying it took the server's handle */
    return 0;
}

/*
 * FREE_BATCH: the kernel checks every handle (a segment the caller holds,
 * none twice, none pinned or in flight) and destroys all of them or none;
 * the books then settle each by the sid it reports, after any migration of
 * it the compactor had under way has settled.
 */
int64_t req_free_batch(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply)
{
    uint64_t count = ms_free_batch_req_get(req).count;
    struct abi_seg_free v[MS_BATCH_MAX];
    handle_t handles[MS_BATCH_MAX];
    struct ms_record *rec;
    int64_t err;
    unsigned i;

    (void)reply;
    if (count == 0 || count > MS_BATCH_MAX || req->len != count * sizeof(handle_t))
        return -EINVAL;
    memcpy(handles, req->payload, req->len);
    for (i = 0; i < count; i++)
        v[i] = (struct abi_seg_free){ .handle = handles[i] };
    err = ms->k->seg_free(ms->k->ctx, req->badge, v, (unsigned)count);
    if (err != 0)
        return err;
    for (i = 0; i < count; i++) {
        rec = books_settled(ms, v[i].sid);
        if (rec == NULL || rec->kind != MS_REC_SEGMENT) {
            ms_log(ms, "memsrv: pid %#llx freed sid %llu, which the books do not know", (unsigned long long)req->badge,
                   (unsigned long long)v[i].sid);
            continue;
        }
        books_destroyed(ms, rec, (int64_t)v[i].result, "freed");
    }
    return 0;
}

_Static_assert(MS_MOVE_MAX <= MS_STEP_BYTES, "a MOVE waits no longer than a background move");

/*
 * MOVE books the destination as a second segment with the same tag and the
 * same constraints, so nothing else can take it; both stay locked in the
 * span books while the kernel migrates without the books lock (no plan
 * touches them; a request about the segment waits for ms->moved), then the
 * old place is freed.
 */
int64_t req_move(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply)
{
    struct ms_record *rec = books_settled(ms, ms_sid_req_get(req).sid);
    struct abi_seg_info info;
    struct span_request sreq;
    uint32_t index;
    uint64_t to, from, sid;
    int64_t err;

    /* A sid the caller does not hold gets the same answer as no sid. */
    if (rec == NULL || rec->kind != MS_REC_SEGMENT || ms->k->seg_query(ms->k->ctx, rec->sid, &info) != 0 ||
        info.owner_pid != req->badge)
        return -ENOENT;
    if (rec_size(rec) > MS_MOVE_MAX)
        return -E2BIG;
    if (rec->flags & MS_REC_QUARANTINED)
        return -EBUSY;
    /* What the kernel would refuse to migrate stays locked in the books,
     * as compact_poll_pinned keeps it: a device may still reach it, or a
     * blocked send carries it. */
    if (info.pins != 0 || (info.flags & (SEG_INFO_DMA | SEG_INFO_IN_FLIGHT))) {
        if (!(rec->flags & MS_REC_PINNED) && span_lock(&ms->span, rec->base) == 0)
            books_mark_pinned(ms, rec);
        return -EBUSY;
    }
    index = (uint32_t)(rec - ms->recs);
    from = rec->base;
    sid = rec->sid;
    if (span_request_of(&ms->span, from, &sreq) != 0 || books_reserve(ms, 3, 0) != 0)
        return -ENOMEM;
    err = span_alloc(&ms->span, &sreq, index, &to);
    if (err != 0)
        return err;
    /* Unlocked from a pin it no longer has only now that the move runs: a
     * refusal above leaves the books as they were. */
    books_unpin(ms, &ms->recs[index]);
    span_lock(&ms->span, from);
    span_lock(&ms->span, to);
    err = compact_migrate(ms, index, sid, to);
    rec = &ms->recs[index]; /* the records may have moved meanwhile */
    span_unlock(&ms->span, from);
    span_unlock(&ms->span, to);
    if (err != 0) {
        span_free(&ms->span, to);
        if (err == -EBUSY && span_lock(&ms->span, from) == 0)
            books_mark_pinned(ms, rec);
        return err;
    }
    span_free(&ms->span, from);
    rec->base = to;
    compact_count_move(ms, rec_size(rec), false);
    ms_move_reply_put(reply, (struct ms_move_reply){ .base = to });
    return 0;
}

int64_t req_revoke(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply)
{
    struct ms_record *rec = books_settled(ms, ms_sid_req_get(req).sid);
    int64_t h, err;

    (void)reply;
    if (rec == NULL || rec->kind != MS_REC_SEGMENT)
        return -ENOENT;
    if (rec->flags & MS_REC_QUARANTINED)
        return -EBUSY;
    h = ms->k->seg_revoke(ms->k->ctx, rec->sid);
    if (h < 0)
        return h; /* pinned (-EBUSY) or not a client's any more */
    ms_log(ms, "memsrv: sid %llu (%llu KiB) revoked by init", (unsigned long long)rec->sid,
           (unsigned long long)(rec_size(rec) >> 10));
    err = books_destroy(ms, rec, "revoked");
    return err < 0 ? err : 0; /* destroying it took the handle h */
}
