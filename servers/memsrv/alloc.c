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
 * move keeps them, MOVE's too.
 */
#include "ms_server.h"

static uint64_t round_granule(uint64_t size)
{
    return (size + SPAN_GRANULE - 1) & ~(SPAN_GRANULE - 1);
}

static bool valid_alignment(uint64_t align)
{
    return align == 0 || (align >= SPAN_GRANULE && (align & (align - 1)) == 0);
}

/* Room for a request that found none: direct compaction within its budget
 * (never for NOWAIT), the compactor told to prepare room like it when the
 * request is large or limited, and with MS_ALLOC_WAIT a wait for that.
 * Returns span_alloc's answer after all that. */
static int make_room(struct memsrv *ms, const struct span_request *sreq, uint64_t flags, uint64_t index,
                     uint64_t *base)
{
    bool large = sreq->size >= ms->span.large_size || sreq->align >= ms->span.large_size;
    bool wanted = large || sreq->limit != 0; /* the demand worth preparing for */
    uint64_t ticket = 0;
    int err = -ENOMEM;

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
    if (compact_targeted(ms, sreq->size, sreq->align, sreq->limit, MS_DIRECT_BYTES, MS_DIRECT_MOVES,
                         NULL, NULL) == 0)
        err = span_alloc(&ms->span, sreq, index, base);
    if (wanted || err != 0)
        ticket = compact_demand(ms, sreq->size, sreq->align, sreq->limit);
    if (err == -ENOMEM && (flags & MS_ALLOC_WAIT) && compact_wait_demand(ms, ticket) == 0)
        err = span_alloc(&ms->span, sreq, index, base);
    return err;
}

int64_t req_alloc(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply)
{
    const struct ms_alloc_req args = ms_alloc_req_get(req);
    uint64_t size = args.size, align = args.align, flags = args.flags, limit = args.limit;
    uint64_t large = ms->span.large_size, base;
    struct span_request sreq;
    struct abi_seg_info info;
    struct ms_client *c;
    uint32_t client, index;
    int64_t h;
    int err;

    if (size == 0 || !valid_alignment(align) ||
        (flags & ~(uint64_t)(MS_ALLOC_LARGE | MS_ALLOC_BELOW | MS_ALLOC_NOWAIT | MS_ALLOC_WAIT)) ||
        (flags & MS_ALLOC_NOWAIT && flags & MS_ALLOC_WAIT))
        return -EINVAL;
    if ((flags & MS_ALLOC_BELOW) ? limit == 0 : limit != 0)
        return -EINVAL;
    client = books_client(ms, req->badge, true);
    if (client == MS_NO_CLIENT)
        return -EINVAL; /* not a pid the kernel makes */
    c = &ms->clients[client];
    if (size > ms->span.total_bytes) {
        c->failures++;
        ms->alloc_failures++;
        return -E2BIG;
    }
    size = round_granule(size);
    if ((flags & MS_ALLOC_LARGE) && align < large)
        align = large;
    index = books_new_record(ms);
    if (index == MS_NO_RECORD) {
        c->failures++;
        ms->alloc_failures++;
        return -ENOMEM;
    }
    /* A large segment asked for without MS_ALLOC_LARGE may land at 4 KiB
     * alignment under pressure; background realignment fixes it later. */
    sreq = (struct span_request){ .size = size, .align = align, .limit = limit,
                                  .flags = size >= large && !(flags & MS_ALLOC_LARGE)
                                               ? SPAN_LARGE_OK : 0 };
    err = span_alloc(&ms->span, &sreq, index, &base);
    if (err == -ENOMEM)
        err = make_room(ms, &sreq, flags, index, &base);
    if (err != 0) {
        books_drop_new_record(ms, index);
        c->failures++;
        ms->alloc_failures++;
        return err;
    }
    h = ms->k->seg_create(ms->k->ctx, base, size, req->badge);
    if (h <= 0) {
        span_free(&ms->span, base);
        books_drop_new_record(ms, index);
        /* The client's account is full, or the client is gone: its own
         * affair, not the server's. */
        if (h == -EDQUOT || h == -EPEER) {
            c->quota_refusals++;
            return h;
        }
        ms_log(ms, "memsrv: kernel refused a segment at %#llx+%#llx: %lld",
               (unsigned long long)base, (unsigned long long)size, (long long)h);
        c->failures++;
        ms->alloc_failures++;
        return -ENOMEM;
    }
    if (ms->k->seg_info(ms->k->ctx, (handle_t)h, &info) != 0 || info.sid == 0) {
        /* The frames now belong to a segment the server cannot name: keep
         * them booked (charged to nobody) rather than hand them out twice. */
        ms_log(ms, "memsrv: no sid for the new segment at %#llx: its span stays booked",
               (unsigned long long)base);
        books_commit_record(ms, index, MS_REC_SEGMENT, 0, base, size, MS_NO_CLIENT);
        c->failures++;
        return -ENOMEM;
    }
    books_commit_record(ms, index, MS_REC_SEGMENT, info.sid, base, size, client);
    c->allocs++;
    reply->seg = (handle_t)h;
    ms_alloc_reply_put(reply, (struct ms_alloc_reply){ .sid = info.sid });
    return 0;
}

int64_t req_free(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply)
{
    struct abi_seg_info info;
    struct ms_record *rec;
    int64_t err;

    (void)reply;
    if (ms->k->seg_info(ms->k->ctx, req->seg, &info) != 0)
        return -EINVAL;
    rec = books_settled(ms, info.sid);
    if (rec == NULL || rec->kind != MS_REC_SEGMENT) {
        ms_log(ms, "memsrv: pid %#llx freed sid %llu, which the books do not know",
               (unsigned long long)req->badge, (unsigned long long)info.sid);
        return -ENOENT;
    }
    err = books_destroy(ms, rec, "freed");
    if (err < 0)
        return err;
    ms->k->handle_close(ms->k->ctx, req->seg);
    req->seg = HANDLE_NONE; /* gone */
    return 0;
}

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
    if (rec == NULL || rec->kind != MS_REC_SEGMENT ||
        ms->k->seg_query(ms->k->ctx, rec->sid, &info) != 0 || info.owner_pid != req->badge)
        return -ENOENT;
    if (rec->flags & MS_REC_QUARANTINED)
        return -EBUSY;
    if (info.pins != 0) {
        if (!(rec->flags & MS_REC_PINNED) && span_lock(&ms->span, rec->base) == 0)
            books_mark_pinned(ms, rec);
        return -EBUSY;
    }
    books_unpin(ms, rec);
    index = (uint32_t)(rec - ms->recs);
    from = rec->base;
    sid = rec->sid;
    if (span_request_of(&ms->span, from, &sreq) != 0 || books_reserve(ms, 3, 0) != 0)
        return -ENOMEM;
    err = span_alloc(&ms->span, &sreq, index, &to);
    if (err != 0)
        return err;
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
    compact_count_move(ms, rec->size, false);
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
           (unsigned long long)(rec->size >> 10));
    err = books_destroy(ms, rec, "revoked");
    if (err < 0)
        return err;
    ms->k->handle_close(ms->k->ctx, (handle_t)h);
    return 0;
}

