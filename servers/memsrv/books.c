/*
 * Memory-server layer: the server's own books on top of the span allocator.
 * Called by every request handler (ms_server.h).
 *
 * The span library knows spans and a 64-bit tag per segment; the server
 * needs to know, per segment, the kernel's sid and the client charged for
 * it. Each non-free span's tag is an index into recs[]; sid_hash (open
 * addressing, linear probing, deletion by backward shift so no tombstones
 * pile up) finds a record by sid.
 *
 * Books that grow with use. Nothing is reserved in proportion to RAM: the
 * server's metadata lives in segments it takes from itself as it needs
 * them, each booked as a locked span with a record of kind BOOKS:
 *   - span slots (64 bytes a segment, 128 a free span): a first store sized
 *     for the boot spans, then span_add_nodes blocks of 64 KiB to 4 MiB;
 *     blocks go back once plenty of slots are free (span_take_nodes
 *     empties a nearly empty one by moving its slots);
 *   - recs[] and sid_hash[] (24 + about 5.3 bytes a record) in one
 *     segment, moved to one a quarter larger when the records run short
 *     (records are named by index, so the array is copied, never split; a
 *     quarter, not double, so that a full machine's records carry at most
 *     a quarter of slack), and to one half the size once at most a quarter
 *     is used: the records past the cut are renumbered first, which waits
 *     until no thread holds an index across the lock (rec_holds);
 *   - the span library's segment hash, resized as span_hash_wanted says.
 * books_reserve runs before every booking (books_new_record, and before a
 * free) and keeps MS_SLOTS_SPARE slots and MS_RECS_SPARE records free
 * besides, which covers growing the books themselves. When no memory can be
 * had for them, the request that needed them fails with -ENOMEM once it
 * would leave fewer than MS_SLOTS_FLOOR slots; nothing else is lost, and
 * a free, which needs at most one, always has it. At boot (books_fixed)
 * the books do not grow: the first store is sized for the boot spans.
 *
 * Charging: the client that allocated a segment stays charged until the
 * segment comes back (FREE, a failed reply, or the kernel's reclaim after an
 * exit), whoever holds it meanwhile: segments move between processes by IPC
 * without the server seeing it.
 *
 * Invariants (books_check): every allocated span has a live record with the
 * same base and size; each client's bytes and segment count equal the sum of
 * its records; every record with a sid is found by the hash.
 */
#include <common/fmt.h>
#include <common/string.h>

#include "ms_server.h"

/* Clients can make the server log (malformed requests, refusals, frees of
 * quarantined memory): past a burst, lines are counted, not printed, and
 * the count is reported when printing resumes. */
#define LOG_BURST      32u
#define LOG_PER_SECOND 8u
#define LOG_WINDOW_NS  1000000000ull

static bool log_admit(struct memsrv *ms)
{
    uint64_t now = ms->k->clock_ns(ms->k->ctx);
    if (!ms->log_window_open || now - ms->log_window_start >= LOG_WINDOW_NS) {
        ms->log_window_open = true;
        ms->log_window_start = now;
        ms->log_allowance = ms->log_lines_total < LOG_BURST ? LOG_BURST : LOG_PER_SECOND;
    }
    if (ms->log_allowance == 0) {
        ms->log_suppressed++;
        return false;
    }
    ms->log_allowance--;
    ms->log_lines_total++;
    return true;
}

static void vprint(struct memsrv *ms, const char *fmt, va_list ap)
{
    char line[320];
    int n = fmt_vsnprintf(line, sizeof(line) - 1, fmt, ap);

    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ms->k->console(ms->k->ctx, line, (size_t)n);
}

void ms_print(struct memsrv *ms, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprint(ms, fmt, ap);
    va_end(ap);
}

void ms_log(struct memsrv *ms, const char *fmt, ...)
{
    va_list ap;

    if (!log_admit(ms))
        return;
    if (ms->log_suppressed != 0) {
        ms_print(ms, "memsrv: %llu log lines suppressed", (unsigned long long)ms->log_suppressed);
        ms->log_suppressed = 0;
    }
    va_start(ap, fmt);
    vprint(ms, fmt, ap);
    va_end(ap);
}

/* The steps of an ALLOC and a FREE that would otherwise be calls from one
 * function of this file to the next (a FREE goes books_destroy,
 * books_destroyed, books_release, books_uncharge, books_reserve,
 * books_trim): inlined into the exported entry points, each of which
 * stays a plain wrapper for the other files. */
#define BOOKS_STEP static inline __attribute__((always_inline))

BOOKS_STEP int reserve(struct memsrv *ms, size_t slots, uint32_t records);
BOOKS_STEP void trim(struct memsrv *ms);

/* ---- records --------------------------------------------------------- */

struct ms_record *books_record(struct memsrv *ms, uint64_t index)
{
    if (index >= ms->rec_capacity || ms->recs[index].kind == 0)
        return NULL;
    return &ms->recs[index];
}

/* The sid's home slot: the hash's top 32 bits scaled to sid_slots, which
 * need not be a power of two (the table is sized to the records). */
static uint32_t sid_slot(const struct memsrv *ms, uint64_t sid)
{
    return (uint32_t)((((sid * 0x9e3779b97f4a7c15ull) >> 32) * ms->sid_slots) >> 32);
}

static uint32_t sid_next(const struct memsrv *ms, uint32_t slot) { return slot + 1 == ms->sid_slots ? 0 : slot + 1; }

struct ms_record *books_find_sid(struct memsrv *ms, uint64_t sid)
{
    uint32_t slot;

    if (sid == 0)
        return NULL;
    for (slot = sid_slot(ms, sid); ms->sid_hash[slot] != 0; slot = sid_next(ms, slot)) {
        struct ms_record *rec = &ms->recs[ms->sid_hash[slot] - 1];
        if (rec->sid == sid)
            return rec;
    }
    return NULL;
}

static void hash_insert(struct memsrv *ms, uint32_t index)
{
    uint32_t slot = sid_slot(ms, ms->recs[index].sid);

    while (ms->sid_hash[slot] != 0)
        slot = sid_next(ms, slot);
    ms->sid_hash[slot] = index + 1;
}

static void hash_remove(struct memsrv *ms, uint32_t index)
{
    uint32_t slot = sid_slot(ms, ms->recs[index].sid), next;

    while (ms->sid_hash[slot] != index + 1) {
        if (ms->sid_hash[slot] == 0)
            return;
        slot = sid_next(ms, slot);
    }
    /* Backward shift: pull later entries of the probe run into the gap
     * when their home slot does not lie cyclically in (gap, entry]. */
    for (next = sid_next(ms, slot); ms->sid_hash[next] != 0; next = sid_next(ms, next)) {
        uint32_t home = sid_slot(ms, ms->recs[ms->sid_hash[next] - 1].sid);
        bool stays = slot <= next ? (home > slot && home <= next) : (home > slot || home <= next);
        if (!stays) {
            ms->sid_hash[slot] = ms->sid_hash[next];
            slot = next;
        }
    }
    ms->sid_hash[slot] = 0;
}

/* Takes the free list's first record (there is one): held, uncommitted,
 * until books_commit_record or books_drop_new_record. */
static uint32_t take_free_record(struct memsrv *ms)
{
    uint32_t index = ms->rec_free;

    ms->rec_free = ms->recs[index].next_free;
    ms->recs[index].next_free = MS_NO_RECORD;
    ms->rec_holds++;
    ms->recs_taken++;
    return index;
}

uint32_t books_new_record(struct memsrv *ms)
{
    /* An allocation's slots: without them span_alloc would fail for want
     * of books, which compaction cannot cure. */
    if (reserve(ms, 3, 1) != 0 || ms->rec_free == MS_NO_RECORD)
        return MS_NO_RECORD;
    return take_free_record(ms);
}

/* Puts an unused record on the free list (lowest first when pushed in
 * descending order). */
static void record_push_free(struct memsrv *ms, uint32_t index)
{
    ms->recs[index] = (struct ms_record){ .next_free = ms->rec_free };
    ms->rec_free = index;
}

void books_drop_new_record(struct memsrv *ms, uint32_t index)
{
    record_push_free(ms, index);
    ms->rec_holds--;
    ms->recs_taken--;
}

void books_commit_record(struct memsrv *ms, uint32_t index, enum ms_record_kind kind, uint64_t sid, uint64_t base,
                         uint64_t size, uint32_t client)
{
    struct ms_record *rec = &ms->recs[index];

    *rec = (struct ms_record){ .sid = sid,
                               .base = base,
                               .granules = (uint32_t)(size >> SPAN_GRANULE_SHIFT),
                               .client = (uint16_t)client,
                               .kind = (uint8_t)kind };
    if (sid != 0)
        hash_insert(ms, index);
    if (client != MS_NO_CLIENT) {
        ms->clients[client].bytes += size;
        ms->clients[client].segments++;
    }
    if (kind == MS_REC_SEGMENT)
        ms->segments++;
    ms->recs_used++;
    ms->rec_holds--;
    ms->recs_taken--;
    ms->books_gen++;
}

static void forget_if_done(struct memsrv *ms, uint32_t index)
{
    struct ms_client *c = &ms->clients[index];

    if (c->ended && c->segments == 0) {
        c->pid = 0;
        ms->client_count--;
    }
}

BOOKS_STEP void uncharge(struct memsrv *ms, struct ms_record *rec)
{
    uint32_t index = rec->client;

    if (index == MS_NO_CLIENT)
        return;
    ms->clients[index].bytes -= rec_size(rec);
    ms->clients[index].segments--;
    ms->clients[index].frees++;
    rec->client = MS_NO_CLIENT;
    forget_if_done(ms, index);
}

void books_uncharge(struct memsrv *ms, struct ms_record *rec) { uncharge(ms, rec); }

void books_charge(struct memsrv *ms, struct ms_record *rec, uint32_t client)
{
    rec->client = (uint16_t)client;
    ms->clients[client].bytes += rec_size(rec);
    ms->clients[client].segments++;
}

void books_mark_pinned(struct memsrv *ms, struct ms_record *rec)
{
    if (rec->flags & (MS_REC_PINNED | MS_REC_QUARANTINED))
        return;
    rec->flags |= MS_REC_PINNED;
    ms->pinned_records++;
}

void books_unpin(struct memsrv *ms, struct ms_record *rec)
{
    if (!(rec->flags & MS_REC_PINNED))
        return;
    if (rec->flags & MS_REC_DMA) {
        rec->flags &= (uint8_t)~MS_REC_DMA;
        ms->dma_records--;
    }
    if (span_unlock(&ms->span, rec->base) != 0)
        ms_log(ms, "memsrv: books: sid %llu at %#llx was not locked", (unsigned long long)rec->sid,
               (unsigned long long)rec->base);
    rec->flags &= (uint8_t)~MS_REC_PINNED;
    ms->pinned_records--;
    ms->books_gen++;
}

BOOKS_STEP void release(struct memsrv *ms, struct ms_record *rec)
{
    uint32_t index = (uint32_t)(rec - ms->recs);
    int err;

    if (rec->flags & MS_REC_PINNED) /* rare: not worth a call each time */
        books_unpin(ms, rec);
    if (rec->flags & MS_REC_QUARANTINED) {
        span_unlock(&ms->span, rec->base);
        ms->quarantined_bytes -= rec_size(rec);
    }
    reserve(ms, 1, 0); /* the free span it leaves may need a slot */
    /* Growing them may have moved the records (a release inside a request
     * that holds a new record, as an ALLOC that flushes the ready
     * segments to make room, may leave fewer than the spare ones): the
     * index still names this one. */
    rec = &ms->recs[index];
    err = span_free(&ms->span, rec->base);
    if (err != 0)
        ms_log(ms, "memsrv: books: freeing sid %llu at %#llx: %d", (unsigned long long)rec->sid,
               (unsigned long long)rec->base, err);
    uncharge(ms, rec);
    if (rec->sid != 0)
        hash_remove(ms, index);
    if (rec->kind == MS_REC_SEGMENT)
        ms->segments--;
    ms->recs_used--;
    ms->books_gen++;
    record_push_free(ms, index);
    trim(ms);
}

void books_release(struct memsrv *ms, struct ms_record *rec) { release(ms, rec); }

/* ---- growing and shrinking the books -------------------------------- */

/* Hash slots for `capacity` records: at most three quarters full when
 * every record has a sid, and never full, so that a probe always ends. */
static uint64_t sid_slots_for(uint64_t capacity) { return capacity + capacity / 3 + 1; }

static uint64_t records_bytes_exact(uint64_t capacity)
{
    return capacity * sizeof(struct ms_record) + sid_slots_for(capacity) * sizeof(uint32_t);
}

uint64_t books_records_bytes(uint32_t capacity)
{
    return (records_bytes_exact(capacity) + SPAN_GRANULE - 1) & ~(SPAN_GRANULE - 1);
}

uint32_t books_records_for(uint64_t needed)
{
    uint64_t records = needed + needed / 8;

    return records < MS_RECS_MIN ? MS_RECS_MIN : records >= MS_NO_RECORD ? MS_NO_RECORD - 1 : (uint32_t)records;
}

/* The most records a segment of `bytes` holds (at least MS_RECS_MIN, which
 * the caller sized it for): the granule's slack becomes records too. */
uint32_t books_records_capacity(uint64_t bytes)
{
    /* 24 + 4 * 4/3 bytes a record: start there, then step to the exact one. */
    uint64_t cap = bytes * 3 / 88;

    while (cap < MS_NO_RECORD - 1 && records_bytes_exact(cap + 1) <= bytes)
        cap++;
    while (cap > MS_RECS_MIN && (cap >= MS_NO_RECORD || records_bytes_exact(cap) > bytes))
        cap--;
    return (uint32_t)cap;
}

/* Rebuilds the free list (lowest index first) and the sid hash from the
 * records themselves. Only with rec_holds == 0: a record taken but not
 * committed looks unused and would go back on the list. */
static void records_reindex(struct memsrv *ms)
{
    uint32_t i;

    ms->records_rebuilt++;
    memset(ms->sid_hash, 0, (uint64_t)ms->sid_slots * sizeof(uint32_t));
    ms->rec_free = MS_NO_RECORD;
    for (i = ms->rec_capacity; i-- > 0;)
        if (ms->recs[i].kind == 0)
            record_push_free(ms, i);
        else if (ms->recs[i].sid != 0)
            hash_insert(ms, i);
}

/* Lays out recs[] then sid_hash[] in mem and copies the records of the old
 * array (if any) that fit. Growing, the free list gains the new part;
 * shrinking (every record past the new capacity unused, rec_holds == 0),
 * it is rebuilt. The hash is rebuilt either way. */
static void records_place(struct memsrv *ms, void *mem, uint32_t capacity)
{
    uint64_t slots = sid_slots_for(capacity);
    struct ms_record *old = ms->recs;
    uint32_t old_cap = ms->rec_capacity, kept = old_cap < capacity ? old_cap : capacity, i;

    ms->recs = mem;
    ms->sid_hash = (uint32_t *)((char *)mem + (uint64_t)capacity * sizeof(struct ms_record));
    ms->sid_slots = (uint32_t)slots;
    ms->rec_capacity = capacity;
    if (old != NULL)
        memcpy(ms->recs, old, (uint64_t)kept * sizeof(*old));
    if (capacity < old_cap) {
        records_reindex(ms);
        return;
    }
    memset(ms->sid_hash, 0, slots * sizeof(uint32_t));
    for (i = capacity; i-- > old_cap;)
        record_push_free(ms, i);
    for (i = 0; i < old_cap; i++)
        if (ms->recs[i].kind != 0 && ms->recs[i].sid != 0)
            hash_insert(ms, i);
}

void books_records_init(struct memsrv *ms, void *mem, uint64_t bytes)
{
    ms->recs = NULL;
    ms->rec_capacity = 0;
    ms->rec_free = MS_NO_RECORD;
    records_place(ms, mem, books_records_capacity(bytes));
}

static struct ms_books_seg *books_slot(struct memsrv *ms, enum ms_books_use use)
{
    unsigned i;

    for (i = 0; i < MS_BOOKS_SEGS; i++)
        if (ms->books[i].use == (uint32_t)use)
            return &ms->books[i];
    return NULL;
}

int books_adopt(struct memsrv *ms, enum ms_books_use use, uint64_t sid, uint64_t base, uint64_t size, void *addr)
{
    struct ms_books_seg *b = books_slot(ms, 0);

    if (b == NULL)
        return -ENOMEM;
    *b = (struct ms_books_seg){ .sid = sid, .base = base, .size = size, .addr = addr, .use = (uint32_t)use };
    ms->books_size += size;
    return 0;
}

/* A new segment of the server's own, mapped, locked and recorded; its sid
 * in *sid_out. The caller has made sure a record and 3 span slots are
 * free. The records, the hash and the first store have an entry in
 * books[]; slot blocks have none (their header keeps the sid, see
 * grow_slots): memory fragmented to single granules makes the books grow
 * a granule at a time, into more blocks than any table would hold. */
static int books_take(struct memsrv *ms, uint64_t size, enum ms_books_use use, void **addr, uint64_t *sid_out)
{
    struct span_request req = { .size = size, .flags = SPAN_LARGE_OK | SPAN_HIGH };
    uint64_t base, sid;
    uint32_t index;
    int64_t h, mapped;
    int err;

    if ((use != MS_BOOKS_NODES && books_slot(ms, 0) == NULL) || ms->rec_free == MS_NO_RECORD)
        return -ENOMEM;
    index = ms->rec_free;
    err = span_alloc(&ms->span, &req, index, &base);
    if (err != 0)
        return err;
    h = ms->k->seg_create(ms->k->ctx, base, size, 0, &sid); /* the server's own */
    if (h <= 0) {
        span_free(&ms->span, base);
        return -ENOMEM;
    }
    if (sid == 0 || (mapped = ms->k->seg_map_self(ms->k->ctx, (handle_t)h)) <= 0) {
        /* Frames the server cannot name or use: keep them booked. */
        ms_log(ms, "memsrv: books segment at %#llx could not be mapped: its span stays booked",
               (unsigned long long)base);
        span_lock(&ms->span, base);
        books_commit_record(ms, take_free_record(ms), MS_REC_KERNEL, 0, base, size, MS_NO_CLIENT);
        return -ENOMEM;
    }
    index = take_free_record(ms);
    span_lock(&ms->span, base);
    books_commit_record(ms, index, MS_REC_BOOKS, sid, base, size, MS_NO_CLIENT);
    if (use == MS_BOOKS_NODES)
        ms->books_size += size;
    else
        books_adopt(ms, use, sid, base, size, (void *)(uintptr_t)mapped);
    *addr = (void *)(uintptr_t)mapped;
    *sid_out = sid;
    ms->books_grown++;
    return 0;
}

/* Destroys a books segment of `size` bytes and frees its span, its record
 * and its entry in books[] if it has one. */
static void books_give_back_sid(struct memsrv *ms, uint64_t sid, uint64_t size)
{
    struct ms_record *rec = books_find_sid(ms, sid);
    int64_t err = ms->k->seg_destroy(ms->k->ctx, sid);
    unsigned i;

    if (err != 0 || rec == NULL) {
        ms_log(ms, "memsrv: giving back books sid %llu failed: %lld", (unsigned long long)sid, (long long)err);
        return;
    }
    ms->books_size -= size;
    for (i = 0; i < MS_BOOKS_SEGS; i++)
        if (ms->books[i].use != 0 && ms->books[i].sid == sid)
            ms->books[i].use = 0;
    span_unlock(&ms->span, rec->base);
    books_release(ms, rec);
    ms->books_trimmed++;
}

static void books_give_back(struct memsrv *ms, const struct ms_books_seg *b)
{
    books_give_back_sid(ms, b->sid, b->size);
}

static int grow_records(struct memsrv *ms)
{
    struct ms_books_seg *old = books_slot(ms, MS_BOOKS_RECORDS);
    uint64_t capacity = (uint64_t)ms->rec_capacity + ms->rec_capacity / 4, bytes, sid;
    void *mem;
    int err;

    if (capacity >= MS_NO_RECORD)
        return -ENOMEM;
    bytes = books_records_bytes((uint32_t)capacity);
    err = books_take(ms, bytes, MS_BOOKS_RECORDS, &mem, &sid);
    if (err != 0)
        return err;
    records_place(ms, mem, books_records_capacity(bytes));
    if (old != NULL)
        books_give_back(ms, old);
    return 0;
}

/*
 * Records shrink once at most a quarter of them is in use: the live ones
 * past half the capacity are renumbered below it (their span tags follow),
 * then the array moves to a books segment half the size. Only when no
 * thread holds a record index across the lock (rec_holds: taken and not
 * yet committed, or being migrated), since that index would go stale.
 * The half-size segment is taken first: when none can be had (memory is
 * full), nothing is renumbered, so a try that fails costs one search, not
 * a pass over every record on each request until memory comes back.
 */
static bool records_shrinkable(const struct memsrv *ms)
{
    return ms->rec_holds == 0 && ms->rec_capacity / 2 >= MS_RECS_MIN &&
           ((uint64_t)ms->recs_used + MS_RECS_SPARE + 1) * 4 <= ms->rec_capacity;
}

static void shrink_records(struct memsrv *ms)
{
    struct ms_books_seg *old = books_slot(ms, MS_BOOKS_RECORDS);
    uint32_t capacity = ms->rec_capacity / 2, low = 0, i;
    uint64_t sid;
    void *mem;

    if (old == NULL || !records_shrinkable(ms))
        return;
    /* Its record may fall past the cut: it is renumbered like the rest. */
    if (books_take(ms, books_records_bytes(capacity), MS_BOOKS_RECORDS, &mem, &sid) != 0)
        return;
    for (i = capacity; i < ms->rec_capacity; i++) {
        if (ms->recs[i].kind == 0)
            continue;
        while (ms->recs[low].kind != 0)
            low++;
        if (span_retag(&ms->span, ms->recs[i].base, low) != 0) {
            ms_log(ms, "memsrv: books: record %u at %#llx has no span to renumber", i,
                   (unsigned long long)ms->recs[i].base);
            records_reindex(ms);
            books_give_back_sid(ms, sid, books_records_bytes(capacity));
            return;
        }
        ms->recs[low] = ms->recs[i];
        ms->recs[i] = (struct ms_record){ 0 };
    }
    records_place(ms, mem, capacity); /* rebuilds the free list and the hash */
    books_give_back(ms, old);
}

/* A block of slots: half of what the pool holds, within [64 KiB, 4 MiB],
 * smaller when memory is too fragmented for that, down to one page. Not
 * capped by the free memory: a block that size leaves a few thousand
 * slots spare at the end of a fill, which is what a targeted compaction
 * on nearly full memory books its trial places with (MS_PLAN_SLOTS)
 * rather than growing the books into the holes it works with. Each
 * try is whole granules: halving 56 granules gives 7, then 3 and 1, never
 * a size no free run can be booked for. */
static int grow_slots(struct memsrv *ms)
{
    uint64_t bytes = (uint64_t)ms->span.capacity * sizeof(struct span_node) / 2, sid;
    void *mem;

    bytes = bytes < MS_BLOCK_MIN ? MS_BLOCK_MIN : bytes > MS_BLOCK_MAX ? MS_BLOCK_MAX : bytes;
    bytes &= ~(uint64_t)(SPAN_GRANULE - 1);
    for (; bytes >= SPAN_GRANULE; bytes = bytes / 2 & ~(uint64_t)(SPAN_GRANULE - 1)) {
        if (books_take(ms, bytes, MS_BOOKS_NODES, &mem, &sid) != 0)
            continue;
        if (span_add_nodes(&ms->span, mem, bytes, sid) == 0)
            return 0;
        books_give_back_sid(ms, sid, bytes); /* not page-aligned: a kernel bug */
        return -EINVAL;
    }
    return -ENOMEM;
}

/* Moves the span library's segment hash to a table of the size it asks
 * for (one or two segments a bucket), when books for that can be had. */
static void tune_hash(struct memsrv *ms)
{
    size_t want = span_hash_wanted(&ms->span);
    struct ms_books_seg *old;
    void *mem, *old_mem;
    size_t old_bytes;
    uint64_t sid;

    if (want == 0 || ms->rec_capacity - ms->recs_used - ms->recs_taken <= MS_RECS_SPARE ||
        ms->span.nodes_free < 3 + MS_SLOTS_SPARE)
        return;
    old = books_slot(ms, MS_BOOKS_HASH);
    want = (want + SPAN_GRANULE - 1) & ~(size_t)(SPAN_GRANULE - 1);
    if (books_take(ms, want, MS_BOOKS_HASH, &mem, &sid) != 0)
        return;
    span_hash_resize(&ms->span, mem, want, &old_mem, &old_bytes);
    if (old != NULL)
        books_give_back(ms, old);
}

/* Whether books_reserve has nothing to grow: the common case, checked
 * before anything else on every request. */
static bool books_ready(const struct memsrv *ms, size_t slots, uint32_t records)
{
    return ms->span.nodes_free >= slots + MS_SLOTS_SPARE &&
           ms->rec_capacity - ms->recs_used - ms->recs_taken >= records + MS_RECS_SPARE && span_hash_right(&ms->span);
}

/* books_reserve past its common case: out of line, so that the check
 * before it is inlined into each caller here (one per ALLOC and FREE). */
static __attribute__((noinline)) int books_grow(struct memsrv *ms, size_t slots, uint32_t records)
{
    if (ms->books_fixed || ms->books_busy)
        return ms->span.nodes_free >= slots + MS_SLOTS_FLOOR ? 0 : -ENOMEM;
    ms->books_busy = true;
    while (ms->rec_capacity - ms->recs_used - ms->recs_taken < records + MS_RECS_SPARE) {
        if (grow_records(ms) != 0)
            break;
    }
    while (ms->span.nodes_free < slots + MS_SLOTS_SPARE) {
        if (grow_slots(ms) != 0)
            break;
    }
    tune_hash(ms);
    ms->books_busy = false;
    return ms->span.nodes_free >= slots + MS_SLOTS_FLOOR && ms->rec_capacity - ms->recs_used - ms->recs_taken >= records
               ? 0
               : -ENOMEM;
}

/* Ready books need nothing, at boot or while growing too: books_grow's
 * answer there (whether enough slots are free) would be yes. */
BOOKS_STEP int reserve(struct memsrv *ms, size_t slots, uint32_t records)
{
    return books_ready(ms, slots, records) ? 0 : books_grow(ms, slots, records);
}

int books_reserve(struct memsrv *ms, size_t slots, uint32_t records) { return reserve(ms, slots, records); }

/* The slots past which blocks are given back. */
static size_t trim_start(const struct memsrv *ms)
{
    size_t in_use = ms->span.capacity - ms->span.nodes_free;

    return in_use > MS_TRIM_SLOTS ? in_use : MS_TRIM_SLOTS;
}

/* books_trim past its common case (nothing to give back), out of line. */
static __attribute__((noinline)) void trim_now(struct memsrv *ms)
{
    size_t start = trim_start(ms);
    void *mem;
    size_t bytes;
    uint64_t sid;

    if (ms->books_fixed || ms->books_busy)
        return;
    ms->books_busy = true;
    /* Giving a block back may empty the block that held its node. */
    while (ms->span.nodes_free > start && span_take_nodes(&ms->span, start / 4, &mem, &bytes, &sid) == 0)
        books_give_back_sid(ms, sid, bytes);
    shrink_records(ms);
    tune_hash(ms);
    ms->books_busy = false;
}

BOOKS_STEP void trim(struct memsrv *ms)
{
    if (ms->span.nodes_free > trim_start(ms) || records_shrinkable(ms) || !span_hash_right(&ms->span))
        trim_now(ms);
}

void books_trim(struct memsrv *ms) { trim(ms); }

void books_quarantine(struct memsrv *ms, struct ms_record *rec)
{
    if (rec->flags & MS_REC_QUARANTINED)
        return;
    if (rec->flags & MS_REC_PINNED) {
        /* Already locked in the books: it only changes why. */
        if (rec->flags & MS_REC_DMA)
            ms->dma_records--;
        rec->flags &= (uint8_t) ~(MS_REC_PINNED | MS_REC_DMA);
        ms->pinned_records--;
    } else {
        span_lock(&ms->span, rec->base);
    }
    rec->flags |= MS_REC_QUARANTINED;
    ms->quarantined_bytes += rec_size(rec);
    books_uncharge(ms, rec);
    ms->books_gen++;
}

BOOKS_STEP void destroyed(struct memsrv *ms, struct ms_record *rec, int64_t err, const char *why)
{
    if (rec->flags & MS_REC_READY) /* rare: REVOKE's, say */
        ready_forget(ms, rec);
    if (err == SEG_DESTROY_QUARANTINED) {
        ms_log(ms,
               "memsrv: sid %llu (%s), %llu KiB at %#llx: a device may still reach it; "
               "quarantined until the kernel releases it",
               (unsigned long long)rec->sid, why, (unsigned long long)(rec_size(rec) >> 10),
               (unsigned long long)rec->base);
        books_quarantine(ms, rec);
    } else if (err == 0) {
        release(ms, rec);
    } else {
        ms_log(ms, "memsrv: destroying sid %llu (%s) failed: %lld; its span stays booked", (unsigned long long)rec->sid,
               why, (long long)err);
    }
}

int64_t books_destroy(struct memsrv *ms, struct ms_record *rec, const char *why)
{
    int64_t err = ms->k->seg_destroy(ms->k->ctx, rec->sid);

    destroyed(ms, rec, err, why);
    return err;
}

void books_destroyed(struct memsrv *ms, struct ms_record *rec, int64_t err, const char *why)
{
    destroyed(ms, rec, err, why);
}

/* ---- clients --------------------------------------------------------- */

/* The slot of a client that ended while still charged for segments it
 * passed on: its charges stay with the segments (the kernel's accounts
 * keep them too), the slot goes to the process that now has its pid slot. */
static void evict(struct memsrv *ms, uint32_t index)
{
    uint32_t i;

    for (i = 0; i < ms->rec_capacity; i++)
        if (ms->recs[i].kind != 0 && ms->recs[i].client == index)
            ms->recs[i].client = MS_NO_CLIENT;
    ms->clients[index].pid = 0;
    ms->client_count--;
}

uint32_t books_client(struct memsrv *ms, uint64_t pid, bool create)
{
    /* A pid is (generation << 32 | slot + 1) with slot < ABI_PROC_MAX, and
     * two live processes never share a slot: the slot is the index, so the
     * table can never be full and a lookup is one comparison. */
    uint64_t slot = (pid & 0xffffffffu) - 1;
    struct ms_client *c;

    if (pid == 0 || slot >= MS_CLIENTS_MAX)
        return MS_NO_CLIENT;
    c = &ms->clients[slot];
    if (c->pid == pid)
        return (uint32_t)slot;
    if (!create)
        return MS_NO_CLIENT;
    /* Whoever had the slot before has ended (its slot was reused). */
    if (c->pid != 0)
        evict(ms, (uint32_t)slot);
    *c = (struct ms_client){ .pid = pid };
    ms->client_count++;
    return (uint32_t)slot;
}

void books_client_ended(struct memsrv *ms, uint64_t pid)
{
    uint32_t i = books_client(ms, pid, false);

    if (i == MS_NO_CLIENT)
        return;
    ms->clients[i].ended = true;
    forget_if_done(ms, i);
}

/* ---- checking -------------------------------------------------------- */

struct check_walk {
    struct memsrv *ms;
    const char *what;
    uint64_t addr;
    uint64_t spans;
    uint64_t unrecorded; /* spans of records taken and not committed yet */
};

static int check_span_record(void *ctx, const struct span_info *info)
{
    struct check_walk *w = ctx;
    const struct ms_record *rec;

    if (info->state == SPAN_FREE)
        return 0;
    w->addr = info->base;
    rec = books_record(w->ms, info->tag);
    /* A migration under way without the lock (compact.c) shows as the
     * destination, in transit or (MOVE) booked and locked, beside the
     * segment: the record says where the segment still is. */
    if (rec != NULL && (rec->flags & MS_REC_MOVING) && rec->base != info->base)
        return 0;
    if (info->state == SPAN_IN_TRANSIT) {
        w->what = "a move is unconfirmed with no migration under way";
        return 1;
    }
    if (rec == NULL) {
        /* An ALLOC_BATCH holds the spans it placed until the kernel has
         * made them all, and finding room for the next may let the lock go
         * (a wait for a migration): at most rec_holds such spans. */
        if (w->unrecorded++ < w->ms->rec_holds)
            return 0;
        w->what = "segment span without a record";
        return 1;
    }
    w->spans++;
    if (rec->flags & MS_REC_MOVING)
        return 0; /* MOVE locks it in the span books while the kernel copies */
    if (rec->base != info->base || rec_size(rec) != info->size) {
        w->what = "record disagrees with its span";
        return 1;
    }
    if ((info->state == SPAN_LOCKED) !=
        (rec->kind != MS_REC_SEGMENT || (rec->flags & (MS_REC_PINNED | MS_REC_QUARANTINED)))) {
        w->what = "span lock disagrees with the record";
        return 1;
    }
    return 0;
}

/* What the records say each client holds, recounted from the records. */
struct record_tally {
    uint64_t bytes[MS_CLIENTS_MAX], segs[MS_CLIENTS_MAX];
    uint32_t pinned, dma;
};

/* Each record is found by its sid and charged to a live client. */
static int check_records(struct memsrv *ms, struct record_tally *t, char *why, size_t len)
{
    for (uint32_t i = 0; i < ms->rec_capacity; i++) {
        const struct ms_record *rec = &ms->recs[i];
        if (rec->kind == 0)
            continue;
        if (rec->sid != 0 && books_find_sid(ms, rec->sid) != rec) {
            fmt_snprintf(why, len, "books: sid %llu not found by its hash", (unsigned long long)rec->sid);
            return -EINVAL;
        }
        if (rec->client != MS_NO_CLIENT) {
            if (rec->client >= MS_CLIENTS_MAX || ms->clients[rec->client].pid == 0) {
                fmt_snprintf(why, len, "books: sid %llu charged to no client", (unsigned long long)rec->sid);
                return -EINVAL;
            }
            t->bytes[rec->client] += rec_size(rec);
            t->segs[rec->client]++;
        }
        if (rec->flags & MS_REC_PINNED)
            t->pinned++;
        if (rec->flags & MS_REC_DMA)
            t->dma++;
    }
    return 0;
}

/* Each client's running charge matches the recount, and so do the totals
 * the server keeps. */
static int check_clients(const struct memsrv *ms, const struct record_tally *t, char *why, size_t len)
{
    uint32_t clients = 0;
    for (uint32_t i = 0; i < MS_CLIENTS_MAX; i++) {
        const struct ms_client *c = &ms->clients[i];
        if (c->pid == 0)
            continue;
        clients++;
        if (c->bytes != t->bytes[i] || c->segments != t->segs[i]) {
            fmt_snprintf(why, len, "books: client %#llx charged %llu bytes in %llu, holds %llu in %llu",
                         (unsigned long long)c->pid, (unsigned long long)c->bytes, (unsigned long long)c->segments,
                         (unsigned long long)t->bytes[i], (unsigned long long)t->segs[i]);
            return -EINVAL;
        }
    }
    if (clients != ms->client_count || t->pinned != ms->pinned_records || t->dma != ms->dma_records) {
        fmt_snprintf(why, len, "books: %u clients (kept %u), %llu pinned (kept %llu), %llu for DMA (kept %llu)",
                     clients, ms->client_count, (unsigned long long)t->pinned, (unsigned long long)ms->pinned_records,
                     (unsigned long long)t->dma, (unsigned long long)ms->dma_records);
        return -EINVAL;
    }
    return 0;
}

int books_check(struct memsrv *ms, char *why, size_t len)
{
    struct span_fault fault;
    struct check_walk w = { .ms = ms };
    struct record_tally tally = { 0 };

    if (span_check(&ms->span, &fault) != 0) {
        fmt_snprintf(why, len, "span: %s at %#llx", fault.what, (unsigned long long)fault.addr);
        return -EINVAL;
    }
    if (span_walk(&ms->span, check_span_record, &w) != 0) {
        fmt_snprintf(why, len, "books: %s at %#llx", w.what, (unsigned long long)w.addr);
        return -EINVAL;
    }
    if (w.spans != ms->recs_used) {
        fmt_snprintf(why, len, "books: %llu records for %llu segment spans", (unsigned long long)ms->recs_used,
                     (unsigned long long)w.spans);
        return -EINVAL;
    }
    if (check_records(ms, &tally, why, len) != 0 || check_clients(ms, &tally, why, len) != 0 ||
        ready_check(ms, why, len) != 0)
        return -EINVAL;
    if (len > 0)
        why[0] = 0;
    return 0;
}
