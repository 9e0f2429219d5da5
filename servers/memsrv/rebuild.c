/*
 * Memory-server layer: the books of a restarted server, rebuilt from the
 * kernel. Called once, by boot.c's memsrv_start, when the arguments carry
 * memsrv.restart=N (SYS_MS_RESTART puts it there), before the server
 * answers anyone.
 *
 * Theory. Only the memory server creates, destroys and moves segments, so
 * while it is down, and while its successor rebuilds, the physical layout
 * of the segments stands still: processes may end (their segments become
 * ownerless and queue for reclaim), devices may be quiesced (a quarantine
 * ends), segments may change hands by IPC, but no segment appears,
 * vanishes or moves. Everything the dead server's books said follows from
 * the kernel's state: a segment's place (the kernel's segment), the client
 * charged (the kernel's payer: both charge the one the segment was created
 * for), whether it is locked (pinned, within a device's reach, or
 * quarantined: the kernel's flags), and the free spans (RAM less the
 * kernel's ranges and the segments). So the books are rebuilt by reading:
 *
 *   1. the world: RAM regions and kernel ranges (boot.c, SYS_MS_BOOTINFO
 *      up to its first segment);
 *   2. the reclaim list, without books (reclaim.c): everything queued is
 *      taken, and what no device can reach is destroyed: the dead server's
 *      own books, what it held mid-request (a FREE it had received, a
 *      segment made for an ALLOC it had not answered), what ended
 *      processes left. Their frames are free before the new books need
 *      room, so memory that was full at the crash still has the old books'
 *      room for the new ones;
 *   3. a survey: SYS_MS_SEGMENTS from address 0, 32 records a call, each
 *      checked against the world and the one before it. A segment the dead
 *      server had taken off the reclaim list but not destroyed is destroyed
 *      now. The survey counts the segments and the free runs between them,
 *      and keeps the RUNS_KEPT largest free runs;
 *   4. the books: records, span slots and the span library's hash, sized
 *      for what the survey counted, each at the top of the highest kept
 *      run that holds it, created and mapped as the server's own segments.
 *      Memory full of small segments may have no run that holds them all,
 *      or even the slots alone (the dead server's books, freed in step 2,
 *      were several segments too): the records, which are one array, need
 *      one run; the slots are split over up to SLOT_PIECES runs, largest
 *      first (the first piece goes to span_init, the others are blocks
 *      for span_add_nodes), and grow_behind makes the rest while booking,
 *      in the runs the walk has passed; the hash, which cannot grow while
 *      booking, is placed before the slots, as large as a run holds (a
 *      power of two), and the running server sizes it once it can
 *      (books.c, tune_hash);
 *   5. booking: the list again, each segment reserved where it lies and
 *      recorded: the new books locked (kind BOOKS); the server's own image
 *      and stack charged to itself (as at boot); quarantined segments
 *      locked and charged to nobody (as after books_quarantine); pinned or
 *      DMA-reachable ones locked and polled until free (as after a refused
 *      migration); the rest charged to their payer, or, for the boot
 *      modules nobody pays for, to their holder (as at boot). A payer
 *      that holds no segment has ended (every live program holds at least
 *      its stack): its entry goes once its segments come back;
 *   6. the check: books_check (MS_CHECK's code) must pass; then the
 *      reclaim list is drained the usual way, for processes that ended
 *      meanwhile.
 *
 * A migration the dead server had asked for is no special case: it is one
 * system call, which copies and remaps before it returns, so the kernel's
 * segment is wholly at its old place or wholly at its new one, and the
 * list says which. What the dead server had planned and not asked for is
 * forgotten with its books.
 *
 * Failure modes. An answer no sane kernel gives (unknown flags, sid 0, a
 * size or base not in whole granules, a segment before or over the one
 * listed before it, outside every RAM region, over a kernel range, flags
 * that contradict each other or the holder, a sid listed twice, the
 * server's own new books listed where it did not make them, more
 * segments the second time than the first, a sid, base or size that
 * differs between the two walks) is refused: memsrv prints the
 * record and why, and memsrv_start fails, so the server exits with status
 * 1 and init's supervisor decides whether to try again. No room for the
 * books, or a kernel that will not create them, ends the same way. Books
 * are never built from an answer that was refused.
 *
 * Cost: two walks of the list, each O(n log n) in the kernel (O(log n) to
 * resume at an address, 32 records a call) and O(n log n) here (a span
 * reservation per segment, with the hash sized up front).
 */
#include <common/string.h>

#include "ms_server.h"

#define LIST_BATCH 32u /* the most SYS_MS_SEGMENTS gives in one call */
#define KNOWN_FLAGS                                                                                                    \
    (SEG_INFO_QUARANTINED | SEG_INFO_MODULE | SEG_INFO_DMA | SEG_INFO_IN_FLIGHT | SEG_RECORD_RECLAIMED |               \
     SEG_RECORD_REPORTED)
#define RUNS_KEPT    32u /* the largest free runs the survey keeps, for the books */
#define SLOT_PIECES  16u /* the most runs the span slots are split over */
#define BOOKS_PIECES (SLOT_PIECES + 2)

static struct abi_seg_record batch[LIST_BATCH];
/* By pid slot, the pid seen holding a segment (0: none): a payer whose
 * slot another process holds, or nobody, has ended. */
static uint64_t holder_of_slot[MS_CLIENTS_MAX];

static uint64_t pid_slot(uint64_t pid) { return (pid & 0xffffffffu) - 1; }

/* ---- the world, walked in address order ------------------------------ */

struct world_walk {
    const struct ms_world *w;
    unsigned region, kernel; /* the first range that ends above the walk */
};

/* The first region that ends above at (NULL: none). */
static const struct ms_range *walk_region(struct world_walk *ww, uint64_t at)
{
    while (ww->region < ww->w->nregions && ww->w->region[ww->region].end <= at)
        ww->region++;
    return ww->region < ww->w->nregions ? &ww->w->region[ww->region] : NULL;
}

/* The first kernel range that ends above at (NULL: none). */
static const struct ms_range *walk_kernel(struct world_walk *ww, uint64_t at)
{
    while (ww->kernel < ww->w->nkernel && ww->w->kernel[ww->kernel].end <= at)
        ww->kernel++;
    return ww->kernel < ww->w->nkernel ? &ww->w->kernel[ww->kernel] : NULL;
}

/* ---- checking the kernel's records ----------------------------------- */

/* What no sane kernel lists, whatever the world: NULL if nothing. `from`:
 * where the record may start at the earliest (the end of the one before). */
static const char *record_fault(uint64_t from, const struct abi_seg_record *r)
{
    uint32_t f = r->flags;
    bool held = r->owner_pid != 0, reclaimed = f & SEG_RECORD_RECLAIMED;

    if (f & ~(uint32_t)KNOWN_FLAGS)
        return "unknown flags";
    if (r->sid == 0)
        return "sid 0";
    if (r->size == 0 || ((r->phys | r->size) & (SPAN_GRANULE - 1)) != 0 || r->phys + r->size < r->phys)
        return "not whole granules";
    if (r->size > MS_RECORD_MAX)
        return "larger than a record covers";
    if (r->phys < from)
        return "before or over the segment listed before it";
    /* The kernel's definitions: reclaimed means held by nobody and not a
     * boot module; quarantined, held by nobody and within a device's reach;
     * pins and flights belong to a holder, and pins keep a device's reach. */
    if (held == reclaimed || (!held && !reclaimed && !(f & SEG_INFO_MODULE)) || ((f & SEG_INFO_MODULE) && reclaimed))
        return "holder and reclaimed flag disagree";
    if ((f & SEG_RECORD_REPORTED) && !reclaimed)
        return "reported but not reclaimed";
    if ((f & SEG_INFO_QUARANTINED) && (held || !(f & SEG_INFO_DMA)))
        return "quarantined but held, or out of every device's reach";
    if ((f & SEG_INFO_IN_FLIGHT) && !held)
        return "in flight with no holder";
    if (r->pins != 0 && (!held || !(f & SEG_INFO_DMA)))
        return "pinned with no holder, or out of every device's reach";
    return NULL;
}

/* The record against the world (the walk only moves up). */
static const char *record_world_fault(struct world_walk *ww, const struct abi_seg_record *r)
{
    uint64_t end = r->phys + r->size;
    const struct ms_range *region = walk_region(ww, r->phys);
    const struct ms_range *kernel = walk_kernel(ww, r->phys);

    if (region == NULL || r->phys < region->base || end > region->end)
        return "not inside one RAM region";
    if (kernel != NULL && kernel->base < end)
        return "over a kernel range";
    return NULL;
}

static int refuse(struct memsrv *ms, const struct abi_seg_record *r, const char *why)
{
    ms_print(ms,
             "memsrv: restart %llu: refusing the kernel's segment list: sid %#llx at "
             "%#llx+%#llx (holder %#llx, payer %#llx, flags %#x, pins %u): %s",
             (unsigned long long)ms->restart.number, (unsigned long long)r->sid, (unsigned long long)r->phys,
             (unsigned long long)r->size, (unsigned long long)r->owner_pid, (unsigned long long)r->payer_pid, r->flags,
             r->pins, why);
    return -EINVAL;
}

/* Every live segment in physical order, each checked by record_fault
 * before fn sees it. Each record moves the cursor up by at least a
 * granule and fn checks it lies in RAM, so the walk ends. */
static int list_segments(struct memsrv *ms, int (*fn)(void *ctx, const struct abi_seg_record *r), void *ctx)
{
    uint64_t from = 0;

    for (;;) {
        int64_t n = ms->k->segments(ms->k->ctx, from, batch, LIST_BATCH), i;
        ms->restart.list_calls++;
        if (n < 0 || n > (int64_t)LIST_BATCH) {
            ms_print(ms, "memsrv: restart %llu: SYS_MS_SEGMENTS from %#llx answered %lld",
                     (unsigned long long)ms->restart.number, (unsigned long long)from, (long long)n);
            return n < 0 ? (int)n : -EINVAL;
        }
        for (i = 0; i < n; i++) {
            const char *why = record_fault(from, &batch[i]);
            int err = why != NULL ? refuse(ms, &batch[i], why) : fn(ctx, &batch[i]);
            if (err != 0)
                return err;
            from = batch[i].phys + batch[i].size;
        }
        if (n < (int64_t)LIST_BATCH)
            return 0;
    }
}

/* Only the server creates, destroys and moves segments, so between the two
 * walks every segment's sid, base and size stay as they were (holders, pins
 * and DMA state may change). Each walk folds them, in order, into one word;
 * the two must agree. */
static uint64_t layout_fingerprint(uint64_t h, const struct abi_seg_record *r)
{
    h = (h ^ r->sid) * 0x100000001b3ull;
    h = (h ^ r->phys) * 0x100000001b3ull;
    return (h ^ r->size) * 0x100000001b3ull;
}

/* ---- the survey ------------------------------------------------------ */

struct survey {
    struct memsrv *ms;
    struct world_walk check, runs; /* for the records; for the free runs */
    uint64_t end;                  /* end of the last segment kept */
    uint64_t segments, free_runs;
    uint64_t fingerprint;            /* of the segments kept, in order (layout_fingerprint) */
    struct ms_range kept[RUNS_KEPT]; /* the largest free runs, largest first */
    unsigned nkept;
};

static uint64_t range_size(const struct ms_range *r) { return r->end - r->base; }

/* Keeps the run if it is among the RUNS_KEPT largest so far; of runs the
 * same size, the one found first (the lowest) stays ahead. */
static void note_run(struct survey *sv, uint64_t base, uint64_t end)
{
    unsigned at = sv->nkept;

    sv->free_runs++;
    while (at > 0 && range_size(&sv->kept[at - 1]) < end - base)
        at--;
    if (at == RUNS_KEPT)
        return;
    if (sv->nkept < RUNS_KEPT)
        sv->nkept++;
    memmove(&sv->kept[at + 1], &sv->kept[at], (sv->nkept - 1 - at) * sizeof(sv->kept[0]));
    sv->kept[at] = (struct ms_range){ base, end };
}

/* The free runs in [lo, hi): RAM outside the kernel's ranges. */
static void note_free_runs(struct survey *sv, uint64_t lo, uint64_t hi)
{
    while (lo < hi) {
        const struct ms_range *region = walk_region(&sv->runs, lo);
        uint64_t at, end;
        if (region == NULL || region->base >= hi)
            return;
        at = lo > region->base ? lo : region->base;
        end = hi < region->end ? hi : region->end;
        while (at < end) {
            const struct ms_range *k = walk_kernel(&sv->runs, at);
            if (k != NULL && k->base < end) {
                if (k->base > at)
                    note_run(sv, at, k->base);
                at = k->end;
            } else {
                note_run(sv, at, end);
                at = end;
            }
        }
        lo = end;
    }
}

static void note_holder(uint64_t pid)
{
    if (pid != 0 && pid_slot(pid) < MS_CLIENTS_MAX)
        holder_of_slot[pid_slot(pid)] = pid;
}

static int survey_one(void *ctx, const struct abi_seg_record *r)
{
    struct survey *sv = ctx;
    struct memsrv *ms = sv->ms;
    const char *why = record_world_fault(&sv->check, r);

    if (why != NULL)
        return refuse(ms, r, why);
    if ((r->flags & (SEG_RECORD_REPORTED | SEG_INFO_QUARANTINED)) == SEG_RECORD_REPORTED) {
        /* The dead server took it off the reclaim list and died before
         * destroying it: it is what the reclaim path would have freed. */
        int64_t err = ms->k->seg_destroy(ms->k->ctx, r->sid);
        if (err == 0) {
            ms->restart.freed_at_start++;
            ms->restart.freed_bytes += r->size;
            return 0;
        }
        if (err != SEG_DESTROY_QUARANTINED)
            return refuse(ms, r, "reclaimed and reported, yet the kernel would not destroy it");
    }
    note_free_runs(sv, sv->end, r->phys);
    sv->end = r->phys + r->size;
    sv->segments++;
    sv->fingerprint = layout_fingerprint(sv->fingerprint, r);
    note_holder(r->owner_pid);
    return 0;
}

/* ---- the books ------------------------------------------------------- */

struct sizes {
    uint64_t slots, slot_bytes, records, record_bytes, hash_bytes;
    uint64_t records_least; /* the fewest that can do: what a full memory may leave room for */
    uint64_t slots_min;     /* enough to start booking: the rest can grow while it runs */
};

/* Books for what the survey counted: a slot per segment and locked span,
 * two per free span; each books segment is a span and may split a free
 * run. Kernel ranges give at most one span per range and region they
 * cross. */
static struct sizes books_sizes(const struct survey *sv, const struct ms_world *w)
{
    uint64_t kernel_spans = (uint64_t)w->nkernel + w->nregions, spans;
    struct sizes z;
    uint32_t records;

    spans = sv->segments + kernel_spans + BOOKS_PIECES;
    z.slots = spans + 2 * (sv->free_runs + BOOKS_PIECES) + 4 * MS_SLOTS_SPARE + 16;
    z.slot_bytes = (z.slots * sizeof(struct span_node) + SPAN_GRANULE - 1) & ~(SPAN_GRANULE - 1);
    z.slots = z.slot_bytes / sizeof(struct span_node);
    /* The world, the books' own pieces and the spare ones, each splitting
     * a free span (grow_behind adds the rest as the walk goes). */
    z.slots_min = 3 * (kernel_spans + BOOKS_PIECES) + 4 * MS_SLOTS_SPARE + 16;
    /* No slack beyond the spare ones (memory may be full: the dead
     * server's records segment is the run these must fit), but a record
     * for each piece of slots grow_behind may add, a page each at worst. */
    records = (uint32_t)(spans + 2 * MS_RECS_SPARE + 2 + z.slots / SPAN_SLOTS_PER_PAGE);
    records = records < MS_RECS_MIN ? MS_RECS_MIN : records;
    z.records = records;
    /* Every segment and kernel span, and the books' records, hash and
     * first piece of slots: the dead server's array held as many. */
    z.records_least = sv->segments + kernel_spans + 3;
    z.record_bytes = books_records_bytes(records);
    z.hash_bytes = 0;
    if (spans > 2 * SPAN_HASH_INLINE) {
        /* One or two segments a bucket, as span_hash_wanted asks for; a
         * table of fewer than a page's worth of buckets is not worth a
         * segment. */
        uint64_t buckets = SPAN_GRANULE / sizeof(struct span_node *);
        while (2 * buckets < spans)
            buckets *= 2;
        z.hash_bytes = buckets * sizeof(struct span_node *);
    }
    return z;
}

/* The top of the highest kept run that holds bytes, taken off the run;
 * false if none does. */
static bool place_books(struct survey *sv, uint64_t bytes, uint64_t *base)
{
    struct ms_range *run = NULL;
    unsigned i;

    /* Placing books shrinks runs, so the kept ones are no longer in
     * order: look at each. */
    for (i = 0; i < sv->nkept; i++)
        if (range_size(&sv->kept[i]) >= bytes && (run == NULL || sv->kept[i].end > run->end))
            run = &sv->kept[i];
    if (run == NULL)
        return false;
    run->end -= bytes;
    *base = run->end;
    return true;
}

/* The largest kept run's whole granules, at most bytes. */
static uint64_t largest_piece(const struct survey *sv, uint64_t bytes)
{
    uint64_t most = 0;
    unsigned i;

    for (i = 0; i < sv->nkept; i++)
        if (range_size(&sv->kept[i]) > most)
            most = range_size(&sv->kept[i]);
    most &= ~(SPAN_GRANULE - 1);
    return most < bytes ? most : bytes;
}

static int no_room(struct memsrv *ms, const struct survey *sv, const char *what, uint64_t bytes)
{
    ms_print(ms, "memsrv: restart %llu: no room for %llu KiB of %s (the largest free run left is %llu KiB)",
             (unsigned long long)ms->restart.number, (unsigned long long)(bytes >> 10), what,
             (unsigned long long)(largest_piece(sv, UINT64_MAX) >> 10));
    return -ENOMEM;
}

/* The span slots: in one run if one holds them, else over the largest
 * runs. The first piece is span_init's store (whole span_node slots); the
 * others are span_add_nodes blocks, whose pages each give one slot less. */
static int take_slots(struct memsrv *ms, struct survey *sv, const struct sizes *z, struct span_node **store,
                      size_t *first_slots)
{
    uint64_t bytes = z->slot_bytes, base, have;
    unsigned pieces = 1;
    void *block;
    int err;

    if (!place_books(sv, bytes, &base)) {
        bytes = largest_piece(sv, bytes);
        if (bytes == 0 || !place_books(sv, bytes, &base))
            return no_room(ms, sv, "span slots", z->slot_bytes);
    }
    err = boot_books_create(ms, MS_BOOKS_FIRST, base, bytes, (void **)store);
    *first_slots = bytes / sizeof(struct span_node);
    for (have = *first_slots; err == 0 && have < z->slots; pieces++) {
        uint64_t pages = (z->slots - have + SPAN_SLOTS_PER_PAGE - 1) / SPAN_SLOTS_PER_PAGE;
        bytes = largest_piece(sv, pages * SPAN_GRANULE);
        if (pieces == SLOT_PIECES || bytes == 0 || !place_books(sv, bytes, &base)) {
            if (have >= z->slots_min)
                break; /* grow_behind finds the rest in the runs the walk passes */
            return no_room(ms, sv, "span slots", (z->slots - have) * sizeof(struct span_node));
        }
        err = boot_books_create(ms, MS_BOOKS_NODES, base, bytes, &block);
        have += bytes / SPAN_GRANULE * SPAN_SLOTS_PER_PAGE;
    }
    return err;
}

/* Records first (one array: the one part that cannot be split), then the
 * hash, then the slots. */
static int take_books(struct memsrv *ms, struct survey *sv, struct sizes *z, struct span_node **store,
                      size_t *first_slots, void **hash)
{
    uint64_t base, hash_bytes = z->hash_bytes;
    void *records;
    int err;

    if (!place_books(sv, z->record_bytes, &base)) {
        /* Memory was full, and the dead server's records array with it:
         * its run holds a record for every span but not the spare ones
         * and those for pieces of slots. As many as the largest run holds
         * then, if that is every span's (the running server grows them
         * once it can). */
        uint64_t run = largest_piece(sv, z->record_bytes);
        uint32_t fit = run >= books_records_bytes(MS_RECS_MIN) ? books_records_capacity(run) : 0;
        if (fit < z->records_least || !place_books(sv, books_records_bytes(fit), &base))
            return no_room(ms, sv, "records", z->record_bytes);
        z->records = fit;
        z->record_bytes = books_records_bytes(fit);
    }
    err = boot_books_create(ms, MS_BOOKS_RECORDS, base, z->record_bytes, &records);
    if (err != 0)
        return err;
    /* The hash before the slots: slots can grow while booking, and it
     * cannot. Without one, each lookup walks a chain of n/64 segments (at
     * 5 GiB filled with 4 KiB segments, the check alone took minutes), so
     * it takes the largest power of two a run holds, and the running
     * server resizes it to what it wants once it can (books.c, tune_hash). */
    while (hash_bytes >= SPAN_GRANULE && !place_books(sv, hash_bytes, &base))
        hash_bytes /= 2;
    z->hash_bytes = hash_bytes >= SPAN_GRANULE ? hash_bytes : 0;
    if (z->hash_bytes != 0)
        err = boot_books_create(ms, MS_BOOKS_HASH, base, z->hash_bytes, hash);
    if (err == 0)
        err = take_slots(ms, sv, z, store, first_slots);
    if (err != 0)
        return err;
    books_records_init(ms, records, z->record_bytes);
    return 0;
}

/* The slot blocks take_slots made past the first, given to the span books. */
static int add_slot_blocks(struct memsrv *ms)
{
    unsigned i;
    int err = 0;

    for (i = 0; i < MS_BOOKS_SEGS && err == 0; i++)
        if (ms->books[i].use == MS_BOOKS_NODES)
            err = span_add_nodes(&ms->span, ms->books[i].addr, ms->books[i].size, ms->books[i].sid);
    return err;
}

/* ---- booking --------------------------------------------------------- */

struct booking {
    struct memsrv *ms;
    struct world_walk check;
    uint64_t expected, listed;
    uint64_t fingerprint; /* of the segments other than the new books */
    unsigned books_seen;
    uint64_t end; /* of the last segment booked: memory below is booked as it lies */
};

/* Slots kept free while booking (a reservation takes up to 3, a record's
 * booking wants MS_SLOTS_FLOOR more), and the most one piece takes. */
#define BOOKING_SLOTS_LOW 32u
#define BOOKING_PIECE_MAX (64 * 1024u)

/*
 * The books' slots may run short while booking when memory is full and
 * fragmented: no run held all of them, and SLOT_PIECES runs did not
 * either (a server whose books grew a granule at a time into memory freed
 * every other granule leaves its books in hundreds of pieces). The layout
 * stands still, so a run the walk has passed, between the last segment
 * booked and the next, is free if the books say so (RAM, not the
 * kernel's): a piece of slots is made there, booked, locked and recorded
 * like any books segment, with its sid in its block header. The walk
 * never lists it, being past it. Returns whether it made one.
 */
static bool grow_behind(struct booking *bk, uint64_t upto)
{
    struct memsrv *ms = bk->ms;
    struct span_info info;
    uint64_t base = bk->end, end, size, sid;
    void *mem;
    uint32_t index;

    if (base >= upto || span_lookup(&ms->span, base, &info) != 0 || info.state != SPAN_FREE)
        return false;
    end = info.base + info.size < upto ? info.base + info.size : upto;
    size = (end - base) & ~(SPAN_GRANULE - 1);
    size = size > BOOKING_PIECE_MAX ? BOOKING_PIECE_MAX : size;
    if (size == 0 || (index = books_new_record(ms)) == MS_NO_RECORD)
        return false;
    if (span_reserve(&ms->span, base, size, index) != 0) {
        books_drop_new_record(ms, index);
        return false;
    }
    if (boot_books_map(ms, base, size, &mem, &sid) != 0) {
        if (sid != 0)
            ms->k->seg_destroy(ms->k->ctx, sid);
        span_free(&ms->span, base);
        books_drop_new_record(ms, index);
        return false;
    }
    span_lock(&ms->span, base);
    books_commit_record(ms, index, MS_REC_BOOKS, sid, base, size, MS_NO_CLIENT);
    ms->books_size += size;
    ms->restart.pieces_grown++;
    bk->end = base + size;
    return span_add_nodes(&ms->span, mem, size, sid) == 0;
}

/* The client a listed segment is charged to (see the top of the file). */
static uint32_t listed_client(struct memsrv *ms, const struct abi_seg_record *r)
{
    uint64_t pid = r->owner_pid == ms->self_pid ? ms->self_pid : r->payer_pid != 0 ? r->payer_pid : r->owner_pid;
    uint64_t slot = pid_slot(pid);

    if (pid == 0 || slot >= MS_CLIENTS_MAX)
        return MS_NO_CLIENT;
    /* Two payers in one slot: one has ended. The one that holds segments
     * keeps the slot; the other's segments are charged to nobody, as
     * books_client leaves them when a new process takes an ended one's. */
    if (ms->clients[slot].pid != 0 && ms->clients[slot].pid != pid && holder_of_slot[slot] != pid)
        return MS_NO_CLIENT;
    return books_client(ms, pid, true);
}

static int book_one(void *ctx, const struct abi_seg_record *r)
{
    struct booking *bk = ctx;
    struct memsrv *ms = bk->ms;
    const char *why = record_world_fault(&bk->check, r);
    struct ms_record *rec;
    uint32_t index;
    const struct ms_books_seg *own = boot_books_of(ms, r->sid);
    bool own_books = own != NULL;

    if (why != NULL)
        return refuse(ms, r, why);
    if (++bk->listed > bk->expected)
        return refuse(ms, r, "more segments than the kernel listed a moment before");
    if ((r->flags & (SEG_RECORD_REPORTED | SEG_INFO_QUARANTINED)) == SEG_RECORD_REPORTED)
        return refuse(ms, r, "reported as reclaimed, and still live after it was destroyed");
    if (books_find_sid(ms, r->sid) != NULL)
        return refuse(ms, r, "a sid listed twice");
    /* The server made its books itself: the list must agree with it. */
    if (own_books && (own->base != r->phys || own->size != r->size))
        return refuse(ms, r, "the new books listed where they were not made");
    while (ms->span.nodes_free < BOOKING_SLOTS_LOW && grow_behind(bk, r->phys))
        continue;
    bk->end = r->phys + r->size;
    index = books_new_record(ms);
    if (index == MS_NO_RECORD)
        return refuse(ms, r, "more segments than the books were sized for");
    if (span_reserve(&ms->span, r->phys, r->size, index) != 0) {
        books_drop_new_record(ms, index);
        return refuse(ms, r, "over a span already booked");
    }
    if (own_books) {
        span_lock(&ms->span, r->phys);
        books_commit_record(ms, index, MS_REC_BOOKS, r->sid, r->phys, r->size, MS_NO_CLIENT);
        bk->books_seen++;
        return 0;
    }
    ms->restart.segments++;
    bk->fingerprint = layout_fingerprint(bk->fingerprint, r);
    if (r->flags & SEG_INFO_QUARANTINED) {
        span_lock(&ms->span, r->phys);
        books_commit_record(ms, index, MS_REC_SEGMENT, r->sid, r->phys, r->size, MS_NO_CLIENT);
        ms->recs[index].flags |= MS_REC_QUARANTINED;
        ms->quarantined_bytes += r->size;
        ms->restart.quarantined++;
        return 0;
    }
    books_commit_record(ms, index, MS_REC_SEGMENT, r->sid, r->phys, r->size, listed_client(ms, r));
    rec = &ms->recs[index];
    if ((r->flags & SEG_INFO_DMA) || r->pins != 0) {
        span_lock(&ms->span, r->phys);
        books_mark_pinned(ms, rec);
        ms->restart.locked_dma++;
    }
    return 0;
}

static unsigned books_count(const struct memsrv *ms)
{
    unsigned i, n = 0;

    for (i = 0; i < MS_BOOKS_SEGS; i++)
        n += ms->books[i].use != 0;
    return n;
}

/* A client whose pid holds nothing has ended: it goes once uncharged. */
static void mark_ended_clients(struct memsrv *ms)
{
    uint32_t i;

    for (i = 0; i < MS_CLIENTS_MAX; i++)
        if (ms->clients[i].pid != 0 && holder_of_slot[i] != ms->clients[i].pid)
            ms->clients[i].ended = true;
}

static void print_rebuilt(struct memsrv *ms)
{
    struct span_stats st;
    uint64_t took = ms->restart.ready_ns - ms->restart.started_ns;

    span_stats(&ms->span, &st);
    ms_print(ms,
             "memsrv: restart %llu: books rebuilt from the kernel in %llu.%03llu ms: %llu "
             "segments (%llu quarantined, %llu locked for DMA), %llu clients; %llu segments "
             "(%llu KiB) the previous server or ended processes left, freed; %llu MiB free of "
             "%llu MiB, books %llu KiB in %llu segments; %llu list calls",
             (unsigned long long)ms->restart.number, (unsigned long long)(took / 1000000),
             (unsigned long long)(took / 1000 % 1000), (unsigned long long)ms->restart.segments,
             (unsigned long long)ms->restart.quarantined, (unsigned long long)ms->restart.locked_dma,
             (unsigned long long)ms->restart.clients, (unsigned long long)ms->restart.freed_at_start,
             (unsigned long long)(ms->restart.freed_bytes >> 10), (unsigned long long)(st.free_bytes >> 20),
             (unsigned long long)(st.total_bytes >> 20), (unsigned long long)(ms->books_size >> 10),
             (unsigned long long)(books_count(ms) + ms->restart.pieces_grown),
             (unsigned long long)ms->restart.list_calls);
}

int memsrv_rebuild(struct memsrv *ms, const struct ms_world *w)
{
    static struct survey sv;
    struct booking bk = { .ms = ms, .check = { .w = w } };
    struct sizes z;
    struct span_node *store = NULL;
    size_t first_slots = 0;
    void *hash = NULL, *old;
    size_t old_bytes;
    uint64_t ram;
    char why[IPC_PAYLOAD_MAX];
    int err;

    memset(holder_of_slot, 0, sizeof(holder_of_slot));
    sv = (struct survey){ .ms = ms, .check = { .w = w }, .runs = { .w = w } };
    ms->books_fixed = true;
    reclaim_without_books(ms);
    err = list_segments(ms, survey_one, &sv);
    if (err != 0)
        return err;
    note_free_runs(&sv, sv.end, UINT64_MAX);

    z = books_sizes(&sv, w);
    err = take_books(ms, &sv, &z, &store, &first_slots, &hash);
    if (err != 0)
        return err;
    err = span_init(&ms->span, ms->policy, 0, store, first_slots);
    if (err == 0)
        err = add_slot_blocks(ms);
    if (err == 0 && hash != NULL)
        err = span_hash_resize(&ms->span, hash, z.hash_bytes, &old, &old_bytes);
    if (err == 0)
        err = boot_span_world(ms, &ms->span, w, &ram);
    if (err != 0) {
        ms_print(ms, "memsrv: restart %llu: setting up the books failed: %d", (unsigned long long)ms->restart.number,
                 err);
        return err;
    }
    bk.expected = sv.segments + books_count(ms);
    err = list_segments(ms, book_one, &bk);
    if (err != 0)
        return err;
    if (bk.fingerprint != sv.fingerprint) {
        ms_print(ms,
                 "memsrv: restart %llu: refusing the kernel's segment list: a sid, base or size "
                 "changed between two walks, with no server to change them",
                 (unsigned long long)ms->restart.number);
        return -EINVAL;
    }
    if (bk.books_seen != books_count(ms)) {
        ms_print(ms,
                 "memsrv: restart %llu: the kernel did not list %u of the books segments it "
                 "had just made",
                 (unsigned long long)ms->restart.number, books_count(ms) - bk.books_seen);
        return -EINVAL;
    }
    mark_ended_clients(ms);
    ms->restart.clients = ms->client_count;
    ms->books_fixed = false;
    if (books_check(ms, why, sizeof(why)) != 0) {
        ms_print(ms, "memsrv: restart %llu: the rebuilt books do not check: %s", (unsigned long long)ms->restart.number,
                 why);
        return -EINVAL;
    }
    /* Processes that ended while the books were being built (no other
     * thread yet, nor the lock). */
    reclaim_drain_held(ms, ~0u);
    ms->restart.ready_ns = ms->k->clock_ns(ms->k->ctx);
    print_rebuilt(ms);
    compact_schedule(ms);
    return 0;
}
