/*
 * Memory-server layer: segments that come back when processes end. Called
 * by dispatch.c when the kernel's notification (IPC_LABEL_NOTIFY from
 * BADGE_KERNEL, IPC_NOTIFY_EXIT) arrives, by STATS and by an ALLOC that
 * found no room (the notification may sit with another service thread),
 * and by rebuild.c when a restarted server starts (reclaim_without_books,
 * then reclaim_drain).
 *
 * The kernel holds each segment an ended process had and lists it in
 * SYS_MS_RECLAIMED. An ordinary one is destroyed and its span freed; the
 * client charged for it (its allocator, not necessarily the process that
 * ended) is credited. One a device may still reach comes quarantined: its
 * frames stay locked in the books until the kernel has quiesced the device
 * and lists the segment again, released, to be destroyed like any other.
 *
 * A restarted server takes the list before it has books: what the dead
 * server held (its books, a FREE it had received, a segment made for an
 * ALLOC it had not answered) is queued there, ownerless, with everything
 * the processes that ended meanwhile left. Destroying it first puts its
 * frames back among the free ones the new books are sized and placed
 * around; a quarantined one stays, and the segment list shows it locked.
 */
#include "ms_server.h"

#define ALL_BATCHES (~0u)

static void reclaim_one(struct memsrv *ms, const struct abi_reclaim *rc)
{
    struct ms_record *rec = books_settled(ms, rc->sid);

    if (rec == NULL || rec->kind != MS_REC_SEGMENT) {
        ms_log(ms, "memsrv: reclaimed sid %llu (%#llx+%#llx) is not in the books", (unsigned long long)rc->sid,
               (unsigned long long)rc->phys, (unsigned long long)rc->size);
        if (!(rc->flags & SEG_INFO_QUARANTINED))
            ms->k->seg_destroy(ms->k->ctx, rc->sid);
        return;
    }
    if (rc->flags & SEG_INFO_QUARANTINED) {
        if (!(rec->flags & MS_REC_QUARANTINED))
            ms_log(ms,
                   "memsrv: quarantined sid %llu, %llu KiB at %#llx: pid %#llx ended while a "
                   "device could reach it; locked until the kernel releases it",
                   (unsigned long long)rec->sid, (unsigned long long)(rec_size(rec) >> 10),
                   (unsigned long long)rec->base, (unsigned long long)rc->pid);
        books_quarantine(ms, rec);
        return;
    }
    books_destroy(ms, rec, "reclaimed");
}

/* Takes the kernel's reclaim list, a batch at a time, to `take`: at most
 * `batches` batches, the books lock let go between them if others_may_run.
 * Each batch is taken and booked under one hold of the lock, so a thread
 * that finds the list empty knows every entry taken before is booked. */
static void take_reclaimed(struct memsrv *ms, unsigned batches, bool others_may_run,
                           void (*take)(struct memsrv *ms, const struct abi_reclaim *batch, int64_t n))
{
    struct abi_reclaim batch[MS_RECLAIM_BATCH];
    int64_t n = 0;

    while (batches-- > 0 && (n = ms->k->reclaimed(ms->k->ctx, batch, MS_RECLAIM_BATCH)) > 0) {
        take(ms, batch, n < MS_RECLAIM_BATCH ? n : MS_RECLAIM_BATCH);
        if (others_may_run && n == MS_RECLAIM_BATCH) {
            books_unlock(ms);
            ms->k->yield(ms->k->ctx);
            books_lock(ms);
        }
    }
    if (n < 0)
        ms_log(ms, "memsrv: SYS_MS_RECLAIMED failed: %lld", (long long)n);
}

static void take_with_books(struct memsrv *ms, const struct abi_reclaim *batch, int64_t n)
{
    int64_t i;

    for (i = 0; i < n; i++)
        reclaim_one(ms, &batch[i]);
    /* The ended processes' slots go once they are charged for nothing
     * (segments they passed on may still be live elsewhere). */
    for (i = 0; i < n; i++)
        books_client_ended(ms, batch[i].pid);
}

void reclaim_drain(struct memsrv *ms) { take_reclaimed(ms, ALL_BATCHES, true, take_with_books); }

void reclaim_drain_held(struct memsrv *ms, unsigned batches) { take_reclaimed(ms, batches, false, take_with_books); }

static void take_without_books(struct memsrv *ms, const struct abi_reclaim *batch, int64_t n)
{
    int64_t i;

    for (i = 0; i < n; i++) {
        /* A quarantined one stays: the segment list shows it, and it is
         * booked from there. */
        if (batch[i].flags & SEG_INFO_QUARANTINED)
            continue;
        if (ms->k->seg_destroy(ms->k->ctx, batch[i].sid) == 0) {
            ms->restart.freed_at_start++;
            ms->restart.freed_bytes += batch[i].size;
        }
    }
}

void reclaim_without_books(struct memsrv *ms) { take_reclaimed(ms, ALL_BATCHES, false, take_without_books); }
