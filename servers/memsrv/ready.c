/*
 * Memory-server layer: ready segments, a lookaside layer in front of the
 * span books for small segments. Called by alloc.c (ALLOC, FREE), info.c
 * and alloc.c's make_room (flushes), compact.c (a pass flushes first) and
 * books.c (a ready record destroyed by another path), lock held throughout.
 *
 * Concepts. A FREE of a segment of at most MS_READY_GRANULES granules
 * keeps the segment whole instead of destroying it: the kernel moves its
 * charge from the client to the server (SYS_MS_SEG_CHARGE), the record
 * stays booked, uncharged in the books, flagged MS_REC_READY, and its sid
 * and the server's handle go on the list of its size. The next ALLOC of
 * exactly that size, with no alignment above a granule and no limit,
 * takes the newest one: the kernel zero-fills it and charges it to the new
 * client in one call, and the reply hands it over as any new segment. The
 * span books are not touched either way, and the kernel neither destroys
 * nor creates anything: a round trip saves the span carve and merge, the
 * record's and sid hash's churn, and the kernel's segment create and
 * destroy (vmem's quantum caches do the same for small allocations).
 *
 * Invariants (ready_check): every entry names a live record flagged
 * MS_REC_READY, of its list's size, charged to no client in the books and
 * to the server in the kernel, held by the server; every such record has
 * exactly one entry, except ready_unlisted ones a flush took off their
 * lists and waits for; ready_bytes is the listed ones' sum, at most
 * MS_READY_BYTES. A
 * ready segment is never pinned, quarantined or within a device's reach:
 * the kernel refuses the charge for one that is (-EBUSY) and the FREE
 * destroys it as before, quarantine included.
 *
 * Nothing outside sees them: STATS and MAP flush first (every ready
 * segment destroyed, its span freed), so the books they report are those
 * without the layer; so do a request that found no room (before it
 * compacts) and every compaction pass. CHECK does not: it checks them.
 * Memory short (less than a sixteenth free) keeps none. A restarted server finds them among its
 * predecessor's segments and frees them. A FREE while a fault is armed
 * (MS_FAULT) keeps none and an ALLOC then takes none, so the fault comes
 * after the kernel call it names.
 *
 * Failure modes: the kernel refusing a charge to the server: the segment
 * is destroyed as before; refusing the client's (-EDQUOT, -EPEER): the
 * ALLOC fails with that, the segment stays ready; any other refusal of a
 * ready segment (it should not happen): it is destroyed, logged, and the
 * ALLOC books a new one.
 */
#include <common/fmt.h>

#include "ms_server.h"

static bool keeps_none(const struct memsrv *ms)
{
    return ms->span.free_bytes * 16 < ms->span.total_bytes || ms->restart.fault_when != 0;
}

bool ready_keep(struct memsrv *ms, struct ms_record *rec, handle_t h)
{
    uint32_t granules = rec->granules;
    uint64_t size = rec_size(rec);

    if (granules == 0 || granules > MS_READY_GRANULES || rec->flags != 0 ||
        ms->ready_count[granules - 1] >= MS_READY_DEPTH || ms->ready_bytes + size > MS_READY_BYTES || keeps_none(ms))
        return false;
    if (ms->k->seg_charge(ms->k->ctx, rec->sid, 0) != 0)
        return false;
    books_uncharge(ms, rec);
    rec->flags |= MS_REC_READY;
    ms->ready[granules - 1][ms->ready_count[granules - 1]++] = (struct ms_ready){ .sid = rec->sid, .handle = h };
    ms->ready_bytes += size;
    ms->ready_kept++;
    return true;
}

/* Takes entry `at` off list `list` (segments of list + 1 granules), and
 * the record's flag off when it is given: the segment is an ordinary
 * server-held one again. */
static void unready(struct memsrv *ms, struct ms_record *rec, unsigned list, unsigned at)
{
    ms->ready_count[list]--;
    ms->ready[list][at] = ms->ready[list][ms->ready_count[list]];
    ms->ready_bytes -= (uint64_t)(list + 1) << SPAN_GRANULE_SHIFT;
    if (rec != NULL)
        rec->flags &= (uint8_t)~MS_REC_READY;
}

int64_t ready_take(struct memsrv *ms, uint32_t client, uint64_t badge, uint64_t granules, handle_t *h, uint64_t *sid)
{
    unsigned list = (unsigned)granules - 1, top;
    struct ms_record *rec;
    int64_t err;

    if (granules == 0 || granules > MS_READY_GRANULES || ms->ready_count[list] == 0 || ms->restart.fault_when != 0)
        return 1;
    top = ms->ready_count[list] - 1u;
    *sid = ms->ready[list][top].sid;
    *h = ms->ready[list][top].handle;
    rec = books_find_sid(ms, *sid);
    if (rec == NULL || !(rec->flags & MS_REC_READY) || rec->granules != granules) {
        ms_log(ms, "memsrv: ready sid %llu is not a ready record of %llu granules", (unsigned long long)*sid,
               (unsigned long long)granules);
        unready(ms, NULL, list, top);
        return 1;
    }
    if (rec->flags & MS_REC_MOVING)
        return 1; /* the compactor has it: a new one costs less than waiting */
    err = ms->k->seg_charge(ms->k->ctx, *sid, badge);
    if (err == -EDQUOT || err == -EPEER)
        return err;
    unready(ms, rec, list, top);
    if (err != 0) {
        ms_log(ms, "memsrv: the kernel refused ready sid %llu to pid %#llx: %lld; destroying it",
               (unsigned long long)*sid, (unsigned long long)badge, (long long)err);
        (void)books_destroy(ms, rec, "ready, refused");
        return 1;
    }
    books_charge(ms, rec, client);
    ms->ready_reused++;
    return 0;
}

void ready_flush(struct memsrv *ms)
{
    unsigned list;

    for (list = 0; list < MS_READY_GRANULES; list++)
        while (ms->ready_count[list] > 0) {
            unsigned top = ms->ready_count[list] - 1u;
            uint64_t sid = ms->ready[list][top].sid;
            struct ms_record *rec;

            /* Off the list before a wait for a migration lets others in
             * (a CHECK among them counts it as unlisted). */
            unready(ms, NULL, list, top);
            ms->ready_unlisted++;
            rec = books_settled(ms, sid);
            ms->ready_unlisted--;
            if (rec == NULL || !(rec->flags & MS_REC_READY)) {
                ms_log(ms, "memsrv: ready sid %llu vanished from the books", (unsigned long long)sid);
                continue;
            }
            rec->flags &= (uint8_t)~MS_REC_READY;
            ms->ready_flushed++;
            (void)books_destroy(ms, rec, "ready, flushed");
        }
}

void ready_forget(struct memsrv *ms, struct ms_record *rec)
{
    unsigned list = rec->granules - 1u, at;

    if (rec->granules == 0 || rec->granules > MS_READY_GRANULES)
        return;
    for (at = 0; at < ms->ready_count[list]; at++)
        if (ms->ready[list][at].sid == rec->sid) {
            unready(ms, rec, list, at);
            return;
        }
}

int ready_check(struct memsrv *ms, char *why, size_t len)
{
    uint64_t bytes = 0, entries = 0, flagged = 0;
    unsigned list, at;
    uint32_t i;

    for (list = 0; list < MS_READY_GRANULES; list++)
        for (at = 0; at < ms->ready_count[list]; at++) {
            const struct ms_record *rec = books_find_sid(ms, ms->ready[list][at].sid);
            if (rec == NULL || !(rec->flags & MS_REC_READY) || rec->granules != list + 1 ||
                rec->client != MS_NO_CLIENT || rec->kind != MS_REC_SEGMENT) {
                fmt_snprintf(why, len, "ready sid %llu (list %u) is not a ready record of its size",
                             (unsigned long long)ms->ready[list][at].sid, list + 1);
                return -1;
            }
            bytes += rec_size(rec);
            entries++;
        }
    for (i = 0; i < ms->rec_capacity; i++)
        if (ms->recs[i].kind != 0 && (ms->recs[i].flags & MS_REC_READY))
            flagged++;
    if (flagged != entries + ms->ready_unlisted || bytes != ms->ready_bytes || bytes > MS_READY_BYTES) {
        fmt_snprintf(why, len,
                     "ready: %llu records flagged, %llu listed (%u being flushed), %llu bytes listed, %llu counted",
                     (unsigned long long)flagged, (unsigned long long)entries, ms->ready_unlisted,
                     (unsigned long long)bytes, (unsigned long long)ms->ready_bytes);
        return -1;
    }
    return 0;
}
