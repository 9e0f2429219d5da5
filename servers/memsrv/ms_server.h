/*
 * Memory-server layer: the server's state and the entry points its main loop
 * (memsrv.c) and the host tests (tests/host/memsrv) call. Everything below
 * this header reaches the kernel only through struct ms_kernel_ops, so the
 * request handling, the books and the compaction driver run unchanged on the
 * host against a fake kernel.
 *
 * Files: boot.c (taking over memory at start), books.c (segment records and
 * clients), dispatch.c (the request table for libsys's server loop, kernel
 * notifications), alloc.c (ALLOC, FREE, MOVE, REVOKE), info.c (STATS, MAP,
 * CHECK), compact.c (the books lock, migrations, direct compaction, the
 * compactor thread's steps, COMPACT), reclaim.c (the kernel's exit
 * notification), rebuild.c (a restarted server's books, from the kernel's
 * segment list), restart.c (MS_FAULT, MS_RECOVERY and the restart
 * statistics), ready.c (freed small segments kept whole for the next
 * ALLOC of their size). The protocol is in docs/memsrv.md.
 *
 * Threads: several service threads run libsys's server loop on the
 * endpoint and a compactor thread runs memsrv_compactor_step; they share a
 * struct memsrv under ms->lock, as compact.c's "Discipline" says. Every
 * entry point below takes the lock itself unless it says it wants it held.
 */
#ifndef MEMSRV_MS_SERVER_H
#define MEMSRV_MS_SERVER_H

#include <abi/ipc.h>
#include <proto/memsrv.h>
#include <abi/proc.h>
#include <abi/seg.h>
#include <abi/types.h>
#include <libsys/server.h>
#include <libsys/sync.h>
#include <span/span.h>

/*
 * Constants (why each value, see docs/memsrv.md "Constants"):
 *   books grow with use (books.c): span slots come in blocks of 64 KiB to
 *     4 MiB (half of what the pool holds, so a pool of n slots took
 *     O(log n) blocks), and at least 32 slots and 4 records are kept free
 *     between requests: an allocation needs 3 slots, a free 1, a
 *     compaction proposal 5, and growing the books itself 3 and a record;
 *     when memory is full and the books cannot grow, a booking fails
 *     once it would leave fewer than MS_SLOTS_FLOOR (4) slots free: a
 *     free then always has its slot, and the granule it frees is room
 *     for a block of slots the next one grows into;
 *     before a targeted compaction 2048 are made free, since its witness
 *     books a trial place (up to 4 slots) for each segment of a window;
 *     blocks are given back (emptied by moving slots if need be) while
 *     more slots are free than are in use and than 16384 (1 MiB), keeping
 *     a quarter of that: books live at the top of memory, and giving
 *     blocks back often leaves holes there that fragmentation scoring
 *     sees (under Bochs, trimming at 4096 free slots tripled the churn
 *     test's compaction runs), and a free-alloc cycle must not create and
 *     destroy a block each time; records shrink to half once a quarter
 *     is in use;
 *   a client per process slot (ABI_PROC_MAX): the table is indexed by the
 *   pid's slot, so it cannot fill up;
 *   compaction (compact.c says why each value): a background move of at
 *     most MS_STEP_BYTES (4 MiB), MS_SCAN_MAX segments looked at per step,
 *     a direct plan's budget of MS_DIRECT_BYTES and MS_DIRECT_MOVES, a
 *     demand's window cost of at most MS_DEMAND_BYTES, region
 *     scores start at MS_SCORE_START and stop at MS_SCORE_STOP per mille,
 *     MS_CHECK_NS between looks while work is deferred, the compactor's
 *     share of the CPU at most MS_BUSY_PERMILLE of each MS_CHECK_NS
 *     window, pressure held for MS_PRESSURE_NS after a request for room.
 */
#define MS_BOOT_NODES          512u
#define MS_SLOTS_SPARE         32u
#define MS_SLOTS_FLOOR         4u
#define MS_RECS_SPARE          4u
#define MS_TRIM_SLOTS          16384u
#define MS_PLAN_SLOTS          2048u
#define MS_BLOCK_MIN           (64ull << 10)
#define MS_BLOCK_MAX           (4ull << 20)
#define MS_RECS_MIN            256u
#define MS_BOOKS_SEGS          128u
#define MS_CLIENTS_MAX         ABI_PROC_MAX
#define MS_STEP_BYTES          (4ull << 20)
#define MS_SCAN_MAX            64u
#define MS_DIRECT_BYTES        (2ull << 20)
#define MS_DIRECT_MOVES        256u
#define MS_DEMAND_BYTES        (64ull << 20)
#define MS_SCORE_START         200u
#define MS_SCORE_STOP          100u
#define MS_CHECK_NS            (100ull * 1000 * 1000)
#define MS_IDLE_NS             MS_CHECK_NS
#define MS_DEFER_MAX           64u
#define MS_BUSY_PERMILLE       500u
#define MS_PRESSURE_NS         (1000ull * 1000 * 1000)
#define MS_DEMANDS             8u
#define MS_SERVICE_THREADS     4u
#define MS_WAIT_BUCKETS        64u
#define MS_PLAN_FAILURES_MAX   8u
#define MS_MAP_COLUMNS_DEFAULT 64u
#define MS_MAP_COLUMNS_MAX     200u
#define MS_MAPS_PER_WINDOW     8u                      /* MS_MAP requests answered per window ... */
#define MS_MAP_WINDOW_NS       (1000ull * 1000 * 1000) /* ... of a second; more: -EAGAIN */
#define MS_DIAG_FACTOR         4u /* a client's CHECK, region walk or whole MAP waits 4 times the last one's length */
#define MS_DIAG_OWED_NS        (100ull * 1000 * 1000) /* the next is kept this long for a client refused meanwhile */
#define MS_RECLAIM_BATCH       16u
#define MS_RECLAIM_HELD_MAX    4u /* of the reclaim list an ALLOC_BATCH with segments placed takes (alloc.c) */

ABI_STATIC_ASSERT(MS_BATCH_MAX <= SEG_BATCH_MAX, "a batch is one kernel call");
ABI_STATIC_ASSERT(MS_CLIENTS_MAX < UINT16_MAX, "a record names its client in 16 bits");

#define MS_NO_CLIENT UINT16_MAX
#define MS_NO_RECORD UINT32_MAX
#define MS_NEVER     UINT64_MAX

/*
 * What the server needs from the kernel. memsrv.c implements these with the
 * SYS_MS_* calls; the host tests with a fake. Results as the syscalls
 * return them: >= 0, or -E*.
 */
struct ms_kernel_ops {
    void *ctx;
    int64_t (*bootinfo)(void *ctx, unsigned index, struct abi_mem_range *out);
    /* -> handle of a new zero-filled, unmapped segment in the server,
     * charged to the client payer (0: the server itself), *sid its sid (0
     * if the kernel could not say); -EDQUOT past the client's limits,
     * -EPEER if it has ended */
    int64_t (*seg_create)(void *ctx, uint64_t phys, uint64_t size, uint64_t payer, uint64_t *sid);
    int64_t (*seg_info)(void *ctx, handle_t seg, struct abi_seg_info *out);
    /* maps a segment the server holds into the server -> its address */
    int64_t (*seg_map_self)(void *ctx, handle_t seg);
    /* 0, or SEG_DESTROY_QUARANTINED: a device may still reach it, the
     * kernel keeps it and reclaims it later, released. Either way a
     * handle the server held for it is gone (no close needed). */
    int64_t (*seg_destroy)(void *ctx, uint64_t sid);
    /* takes a segment from whoever holds it -> its handle in the server */
    int64_t (*seg_revoke)(void *ctx, uint64_t sid);
    int64_t (*seg_migrate)(void *ctx, uint64_t sid, uint64_t new_phys);
    int64_t (*seg_query)(void *ctx, uint64_t sid, struct abi_seg_info *out);
    /* SYS_MS_SEG_GIVE: the server's segments v[i].sid become process
     * pid's, mapped (handle and address filled in); all or none */
    int64_t (*seg_give)(void *ctx, uint64_t pid, struct abi_seg_give *v, unsigned n);
    /* SYS_MS_SEG_FREE: the segments pid holds under v[i].handle are
     * destroyed (sid and 0 or SEG_DESTROY_QUARANTINED filled in); all or none */
    int64_t (*seg_free)(void *ctx, uint64_t pid, struct abi_seg_free *v, unsigned n);
    /* SYS_MS_SEG_CHARGE: the server's idle segment sid is charged to pid
     * (0: the server), zero-filled first for a client; -EBUSY not idle,
     * -EDQUOT over pid's limits, -EPEER pid ended: nothing changed */
    int64_t (*seg_charge)(void *ctx, uint64_t sid, uint64_t pid);
    int64_t (*reclaimed)(void *ctx, struct abi_reclaim *out, unsigned max);
    /* SYS_MS_SEGMENTS: live segments with base >= from, in physical order
     * -> how many were written (at most max) */
    int64_t (*segments)(void *ctx, uint64_t from, struct abi_seg_record *out, unsigned max);
    /* segments whose DMA state changed (SYS_MS_DMA_CHANGES) -> count */
    int64_t (*dma_changes)(void *ctx, struct abi_dma_change *out, unsigned max);
    uint64_t (*clock_ns)(void *ctx);
    void (*console)(void *ctx, const char *text, size_t len);
    /* SYS_YIELD: called just after the books lock was let go, so that a
     * thread the unlock woke takes it before the caller takes it again */
    void (*yield)(void *ctx);
};

/* Every operation by name, in the struct's order: a kernel fills its table
 * from functions k_NAME with MS_KERNEL_OPS(MS_KERNEL_OP_K), so an operation
 * added here and there cannot be left out of one of them. */
#define MS_KERNEL_OPS(X)                                                                                               \
    X(bootinfo)                                                                                                        \
    X(seg_create)                                                                                                      \
    X(seg_info)                                                                                                        \
    X(seg_map_self)                                                                                                    \
    X(seg_destroy)                                                                                                     \
    X(seg_revoke)                                                                                                      \
    X(seg_migrate)                                                                                                     \
    X(seg_query)                                                                                                       \
    X(seg_give)                                                                                                        \
    X(seg_free)                                                                                                        \
    X(seg_charge)                                                                                                      \
    X(reclaimed)                                                                                                       \
    X(segments)                                                                                                        \
    X(dma_changes)                                                                                                     \
    X(clock_ns)                                                                                                        \
    X(console)                                                                                                         \
    X(yield)
#define MS_KERNEL_OP_K(name)     .name = k_##name,
#define MS_KERNEL_OP_COUNT(name) +1
ABI_STATIC_ASSERT(sizeof(struct ms_kernel_ops) == sizeof(void *) * (1 MS_KERNEL_OPS(MS_KERNEL_OP_COUNT)),
                  "MS_KERNEL_OPS names every operation");

enum ms_record_kind {
    MS_REC_SEGMENT = 1, /* a segment some client was charged for (or none, boot) */
    MS_REC_KERNEL,      /* a kernel span: locked for good, no sid */
    MS_REC_BOOKS,       /* the server's own metadata segment: locked */
};

#define MS_REC_PINNED      0x1u /* locked in the books: the kernel refused a move, or said it is DMA-busy */
#define MS_REC_QUARANTINED 0x2u /* a device may still reach it: locked until the kernel releases it */
#define MS_REC_MOVING      0x4u /* a migration runs without the lock: wait for ms->moved before touching it */
#define MS_REC_DMA         0x8u /* PINNED on the kernel's word (SYS_MS_DMA_CHANGES): it says when it ends */
#define MS_REC_READY       0x10u /* freed, kept whole and charged to the server for the next ALLOC of its size (ready.c) */

/* One per non-free span in the span books; the span's tag is the index.
 * 24 bytes: the size in granules (a record is at most MS_RECORD_MAX bytes),
 * and the free list's link in its place while the record is unused. */
struct ms_record {
    uint64_t sid;
    uint64_t base;
    union {
        uint32_t granules;  /* its size in granules, when in use */
        uint32_t next_free; /* the free-record list, when unused (kind 0) */
    };
    uint16_t client; /* index into clients[] charged for it, or MS_NO_CLIENT */
    uint8_t kind;    /* enum ms_record_kind; 0 = unused */
    uint8_t flags;   /* MS_REC_* */
};

_Static_assert(sizeof(struct ms_record) == 24, "a record is 24 bytes");

/* A new segment at least this large is zero-filled by the kernel with the
 * books lock let go (alloc_create). */
#define MS_ZERO_UNLOCKED_MIN ((uint64_t)1 << 20)

/* The most bytes one record covers (a segment asked for, a kernel range). */
#define MS_RECORD_MAX ((uint64_t)UINT32_MAX << SPAN_GRANULE_SHIFT)

static inline uint64_t rec_size(const struct ms_record *rec) { return (uint64_t)rec->granules << SPAN_GRANULE_SHIFT; }

struct ms_client {
    uint64_t pid; /* 0: the slot is unused */
    bool ended;   /* seen in the kernel's reclaim list: forget it once it is charged nothing */
    uint64_t bytes, segments;
    uint64_t allocs, frees, failures, quota_refusals;
};

/* Ready segments (ready.c): a freed segment of at most MS_READY_GRANULES
 * kept whole, by size, at most MS_READY_DEPTH of a size and MS_READY_BYTES
 * in all. */
#define MS_READY_GRANULES 16u
#define MS_READY_DEPTH    4u
#define MS_READY_BYTES    (256u * 1024)
struct ms_ready {
    uint64_t sid;
    handle_t handle; /* the server's */
};

/* What the compactor is working on (compact.c, "Choosing work"). */
enum ms_background_kind {
    MS_BG_NONE = 0,
    MS_BG_FULL,    /* MS_COMPACT FULL requests */
    MS_BG_DEMAND,  /* a request that found no room: a targeted plan like its own */
    MS_BG_LIMIT,   /* then the memory below its limit, compacted */
    MS_BG_REGION,  /* a region whose score passed MS_SCORE_START */
    MS_BG_STEP,    /* MS_COMPACT STEP's pass */
    MS_BG_YIELD,   /* under pressure: large segments give their gap below */
    MS_BG_REALIGN, /* free memory back: large segments regain large alignment */
};

/* A request for room the compactor should prepare (a failed or directly
 * compacted large or limited ALLOC). */
struct ms_demand {
    uint64_t size, align, limit;
    uint64_t ticket; /* requests waiting for this one wait for demand_done >= ticket */
};

/* Per region: the proactive pass's state. */
struct ms_region_state {
    uint64_t gen;         /* books_gen when its last pass ended */
    uint64_t defer_until; /* no pass before (no progress last time) */
    unsigned defer;       /* MS_CHECK_NS periods of the next deferral */
};

/* ---- restarts (boot.c, rebuild.c, restart.c) ---------------------------
 * What the kernel says about memory besides its segments (boot.c reads
 * it): the RAM regions, and the kernel's own ranges sorted and merged. */
#define MS_WORLD_MAX 128u
struct ms_range {
    uint64_t base, end;
};
struct ms_world {
    struct ms_range region[MS_WORLD_MAX]; /* shrunk to whole granules, sorted */
    struct ms_range kernel[MS_WORLD_MAX]; /* grown to whole granules, sorted, disjoint */
    unsigned nregions, nkernel;
    unsigned first_segment; /* SYS_MS_BOOTINFO index of the first segment */
};

/* A server started with memsrv.restart=N rebuilt its books from the
 * kernel (rebuild.c); restart.c answers init about it and arms the faults
 * init asks for (MS_FAULT). */
struct ms_restart {
    uint64_t number; /* N of memsrv.restart=N; 0: started at boot */
    uint64_t started_ns, ready_ns, first_answer_ns, recovery_ns;
    uint64_t segments, clients, freed_at_start, freed_bytes, locked_dma, quarantined, list_calls;
    uint64_t pieces_grown;                /* slot pieces made while booking (rebuild.c, grow_behind) */
    unsigned fault_when;                  /* MS_FAULT_* armed, or 0 */
    const struct ms_kernel_ops *real_ops; /* while a fault is armed: ms->k wraps these */
    struct ms_kernel_ops fault_ops;
    void (*crash)(void); /* faults on purpose; the host tests catch it */
};

/* What one of the server's own books segments holds. */
enum ms_books_use {
    MS_BOOKS_FIRST = 1, /* the span slots given to span_init: kept for good */
    MS_BOOKS_NODES,     /* a span_add_nodes block */
    MS_BOOKS_RECORDS,   /* recs[] and sid_hash[] */
    MS_BOOKS_HASH,      /* the span library's segment hash table */
};

struct ms_books_seg {
    uint64_t sid, base, size;
    void *addr;   /* where it is mapped in the server */
    uint32_t use; /* enum ms_books_use; 0: the entry is unused */
};

struct memsrv {
    const struct ms_kernel_ops *k;
    struct span_alloc span;
    enum span_policy policy;
    uint64_t self_pid, init_pid; /* init_pid 0: nobody may use init-only labels */

    /* Records: the span books' tags index them; sid_hash finds them by sid. */
    struct ms_record *recs;
    uint32_t rec_capacity, rec_free, recs_used;
    uint32_t rec_holds;  /* indices held across the lock: taken, not committed; or migrating */
    uint32_t recs_taken; /* off the free list, not committed yet */
    uint32_t *sid_hash;  /* record index + 1; 0 = empty slot */
    uint32_t sid_slots;  /* about 4/3 of rec_capacity: see books_records_bytes */

    struct ms_client clients[MS_CLIENTS_MAX];
    unsigned client_count;

    /* The server's own books segments (books.c); books_size is their sum. */
    struct ms_books_seg books[MS_BOOKS_SEGS];
    uint64_t books_size;
    bool books_fixed; /* at boot: no growth until every boot span is booked */
    bool books_busy;  /* growing or trimming: no second level of it */
    uint64_t books_grown, books_trimmed;
    uint64_t records_rebuilt; /* passes over every record (a shrink's): never one per request */
    uint64_t kernel_bytes;

    uint64_t segments; /* records of kind MS_REC_SEGMENT */
    uint64_t moves, bytes_moved, alloc_failures, compactions, quarantined_bytes;
    uint64_t malformed; /* requests refused by validation, for the log's rate limit */
    uint64_t log_window_start, log_lines_total, log_suppressed; /* ms_log's rate limit */
    uint32_t log_allowance;
    bool log_window_open;
    uint64_t map_window_start; /* MS_MAP's rate limit */
    uint64_t diag_after_ns;    /* CHECK, STATS_REGION, whole MAP: when a client's next may run (info.c) */
    uint64_t diag_last_pid, diag_owed_pid;
    uint32_t maps_in_window;
    unsigned pinned_records;

    /* Threads (compact.c, "Discipline"). */
    struct mutex lock;        /* everything in struct memsrv */
    struct condvar moved;     /* a migration made without the lock settled */
    struct condvar work;      /* the compactor may have work */
    struct condvar done;      /* a FULL pass or a demand a request waits for ended */
    struct server srv;        /* libsys's server loop: the request table and hooks */
    unsigned service_threads; /* threads serving the endpoint: a wait needs a spare one */
    unsigned waiting;         /* requests waiting for the compactor */
    bool compactor_holds;     /* the compactor holds the lock (waits behind it are counted) */
    uint64_t hold_start_ns;   /* when it took the lock last (hold_max_ns) */
    bool compactor_idle;      /* it sleeps on `work` */
    bool compactor_resting;   /* it keeps to its CPU share, on `work` too */
    /* Whose the waiting requests are, by pid (0: a free entry; wait_allowed). */
    uint64_t waiting_pid[MS_SERVICE_THREADS];

    /* Background compaction (compact.c). books_gen counts changes to the
     * books, so a pass that achieved all it could is not rerun until the
     * books change. */
    enum ms_background_kind bg_kind;
    struct span_plan bg_plan;
    unsigned bg_failures;
    unsigned bg_region;
    uint32_t bg_score_before;
    uint64_t bg_ticket; /* FULL or demand ticket the run serves */
    uint64_t books_gen, yield_gen, realign_gen;
    uint64_t step_idle_gen; /* books_gen + 1 when the last STEP pass had nothing to move (0: not so) */
    struct ms_region_state regions[SPAN_MAX_REGIONS];
    unsigned next_region; /* round robin of the proactive passes */
    struct ms_demand demands[MS_DEMANDS];
    unsigned ndemands;
    uint64_t demand_issued, demand_done;
    uint64_t full_issued, full_done, full_moves, full_bytes;
    uint64_t full_idle_gen;              /* books_gen + 1 when the last FULL pass had nothing to move (0: not so) */
    uint64_t last_demand_ns;             /* the last request for room below a large page: pressure */
    uint64_t next_poll_ns;               /* pinned records are asked about from then */
    uint64_t window_start, window_busy;  /* the compactor's CPU share (MS_BUSY_PERMILLE) */
    unsigned dma_records;                /* records locked on the kernel's word (MS_REC_DMA) */
    uint32_t wait_hist[MS_WAIT_BUCKETS]; /* waits on compaction by log2 of their ns */
    struct ms_stats_compaction cstats;   /* MS_STATS_COMPACTION's figures */

    struct ms_restart restart; /* rebuild.c, restart.c */

    /* Ready segments (ready.c), newest last per size. */
    struct ms_ready ready[MS_READY_GRANULES][MS_READY_DEPTH];
    uint8_t ready_count[MS_READY_GRANULES];
    uint64_t ready_bytes;
    uint32_t ready_unlisted; /* off their list, still flagged, while a flush waits for their migration */
    uint64_t ready_kept, ready_reused, ready_flushed;
};

/* ---- boot.c ---- */
/* Learns memory from the kernel, takes its books segment, records the spans
 * in use, prints the policy and a summary. args: the startup arguments. */
int memsrv_start(struct memsrv *ms, const struct ms_kernel_ops *k, const char *args, uint64_t self_pid);
/* The policy memsrv.policy=NAME selects, by span_policy_name (best fit when absent); false if the
 * value names none. */
bool memsrv_parse_policy(const char *args, enum span_policy *out);

/* ---- dispatch.c ---- */
/* Sets up ms->srv (the request table, the hooks) for libsys's server loop. */
void memsrv_server_init(struct memsrv *ms);
/* What the loop does with one received message, for the host tests:
 * handles it and turns msg into the reply. Returns false when no reply is
 * due (kernel notifications). */
bool memsrv_handle(struct memsrv *ms, struct ipc_msg *msg);
/* The kernel refused a reply that carried msg->seg: the segment is still
 * the server's. Destroys it and frees its span. */
void memsrv_reply_failed(struct memsrv *ms, const struct ipc_msg *msg, int64_t err);
/* A kernel notification (w[0] the IPC_NOTIFY_* bits). */
void memsrv_notify(struct memsrv *ms, uint64_t bits);

/* ---- compact.c: the compactor thread ---- */
/* One step of background work: at most one migration, made without the
 * lock. False when there was nothing to do now. */
bool memsrv_compactor_step(struct memsrv *ms);
/* Sleeps until there may be work (a request wakes it, or the next check). */
void memsrv_compactor_idle(struct memsrv *ms);
/* After a step: rests as long as keeps the compactor to MS_BUSY_PERMILLE
 * of the CPU, unless a request waits for it (it wakes then). */
void memsrv_compactor_rest(struct memsrv *ms);

/* ---- internal, shared between the files ---- */
/* The books lock (compact.c): taking it counts the wait when the compactor
 * held it. */
void books_lock_contended(struct memsrv *ms);
static inline void books_lock(struct memsrv *ms)
{
    if (!mutex_trylock(&ms->lock)) /* the common case inline: every request takes it */
        books_lock_contended(ms);
}
static inline void books_unlock(struct memsrv *ms) { mutex_unlock(&ms->lock); }
/* The record of sid once no migration runs on it (waits for ms->moved,
 * lock held), or NULL. */
struct ms_record *books_settled(struct memsrv *ms, uint64_t sid);
/* A wait of ns on compaction, into the statistics. */
void compact_count_wait(struct memsrv *ms, uint64_t ns);
/* A confirmed move of bytes, in the background or on a request's path. */
void compact_count_move(struct memsrv *ms, uint64_t bytes, bool background);
/* Has the kernel migrate sid (record index) to `to` without the lock: the
 * record is MS_REC_MOVING meanwhile, waiters are woken after. Lock held
 * on entry and on return; the records may have moved (re-read by index). */
int64_t compact_migrate(struct memsrv *ms, uint32_t index, uint64_t sid, uint64_t to);
/* A log line: rate-limited, since clients can cause most of them. */
void ms_log(struct memsrv *ms, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Output a request asked for (the map): never dropped. */
void ms_print(struct memsrv *ms, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct ms_record *books_record(struct memsrv *ms, uint64_t index);
struct ms_record *books_find_sid(struct memsrv *ms, uint64_t sid);
uint32_t books_new_record(struct memsrv *ms);
void books_drop_new_record(struct memsrv *ms, uint32_t index);
/* Fills a new record and charges its client (which may be MS_NO_CLIENT). */
void books_commit_record(struct memsrv *ms, uint32_t index, enum ms_record_kind kind, uint64_t sid, uint64_t base,
                         uint64_t size, uint32_t client);
/* The kernel destroyed the segment: its span becomes free, its client is credited. */
void books_release(struct memsrv *ms, struct ms_record *rec);
/* The kernel kept the segment quarantined (a device may still reach it):
 * its span stays locked, its client is credited; it comes back through
 * the reclaim list once released. */
void books_quarantine(struct memsrv *ms, struct ms_record *rec);
/* Destroys a segment and settles its record: released, quarantined, or
 * (when the kernel refuses) left booked with a log line. Returns the
 * kernel's answer. */
int64_t books_destroy(struct memsrv *ms, struct ms_record *rec, const char *why);
/* The same once the kernel answered err for it (SYS_MS_SEG_FREE). */
void books_destroyed(struct memsrv *ms, struct ms_record *rec, int64_t err, const char *why);
void books_uncharge(struct memsrv *ms, struct ms_record *rec);
/* Charges an uncharged record to client (an index, not MS_NO_CLIENT). */
void books_charge(struct memsrv *ms, struct ms_record *rec, uint32_t client);
/* A client's index, creating it if needed: MS_NO_CLIENT when the table is full. */
uint32_t books_client(struct memsrv *ms, uint64_t pid, bool create);
/* The process ended: its slot goes once it is charged for nothing. */
void books_client_ended(struct memsrv *ms, uint64_t pid);
int books_check(struct memsrv *ms, char *why, size_t len);
/* The kernel says a segment is pinned: lock it in the books, poll later. */
void books_mark_pinned(struct memsrv *ms, struct ms_record *rec);
/* Unlocks a pinned-locked record whose pins are gone. */
void books_unpin(struct memsrv *ms, struct ms_record *rec);
/* Grows the books until `slots` span slots and `records` records are free
 * beyond the spare ones. -ENOMEM when memory for them cannot be had. */
int books_reserve(struct memsrv *ms, size_t slots, uint32_t records);
/* Gives back books no longer needed (empty slot blocks, an oversized hash). */
void books_trim(struct memsrv *ms);
/* Takes a books segment of `use` at boot, placed by the bootstrap books. */
int books_adopt(struct memsrv *ms, enum ms_books_use use, uint64_t sid, uint64_t base, uint64_t size, void *addr);
/* Sets up the records array and sid hash in a books segment of `bytes`. */
void books_records_init(struct memsrv *ms, void *mem, uint64_t bytes);
/* Bytes of books for a records array of `capacity` records. */
uint64_t books_records_bytes(uint32_t capacity);
/* Records to provide for `needed` of them: an eighth more, so that growing
 * (by a quarter) does not come at once, and at least MS_RECS_MIN. */
uint32_t books_records_for(uint64_t needed);
/* The most records books_records_bytes' segment of `bytes` holds. */
uint32_t books_records_capacity(uint64_t bytes);

/* Direct compaction for a request (lock held; released around each
 * migration): a targeted plan within budget_bytes and budget_moves (0: no
 * budget). 0 when the run is there, -ENOMEM otherwise. */
int compact_targeted(struct memsrv *ms, uint64_t size, uint64_t align, uint64_t limit, uint64_t budget_bytes,
                     unsigned budget_moves, uint64_t *moves, uint64_t *bytes);
/* A request found no room for (size, align, limit), or needed a direct
 * plan: the compactor prepares room like it. Returns the ticket to wait
 * for (demand_done >= ticket). */
uint64_t compact_demand(struct memsrv *ms, uint64_t size, uint64_t align, uint64_t limit);
/* Waits (lock held, released while waiting) until demand_done >= ticket.
 * -EAGAIN without waiting when no other service thread is free, or the
 * client (pid) already holds its share of the waits. */
int compact_wait_demand(struct memsrv *ms, uint64_t pid, uint64_t ticket);
/* After a request: wakes the compactor if there may be work for it (the
 * clock is read only when it sleeps and a check needs the time). */
void compact_schedule(struct memsrv *ms);
void compact_poll_pinned(struct memsrv *ms);
/* The kernel's DMA changes (IPC_NOTIFY_DMA): busy segments lock in the
 * books, plans go around them; free again, they unlock. */
void compact_dma_changes(struct memsrv *ms);

/* Request handlers, run with the lock held: the request was checked
 * against dispatch.c's table (label, caller, unused words zero, no payload,
 * a segment only where one is expected). They fill reply's words, payload
 * and segment and return 0 or -E*; a handler that consumes the request's
 * segment sets req->seg to HANDLE_NONE, otherwise it goes back to the
 * caller. */
int64_t req_alloc(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_free(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_alloc_batch(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_free_batch(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_stats(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_compact(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_map(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_check(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_move(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_revoke(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply);
/* Frees what ended processes left (the kernel's reclaim list) a batch of
 * MS_RECLAIM_BATCH at a time, letting the books lock go between batches:
 * a process that ended holding a million segments would otherwise keep
 * every other request waiting for seconds. Lock held on entry and return;
 * only for callers that hold no half-done work across it. */
void reclaim_drain(struct memsrv *ms);
/* The same without letting the lock go, at most `batches` batches: inside a
 * request with work half done (an ALLOC_BATCH's placed segments), and at a
 * restart, before there are other threads. */
void reclaim_drain_held(struct memsrv *ms, unsigned batches);

/* ---- ready.c ---- */
/* A FREE's segment (record rec, the server's handle h) kept whole for the
 * next ALLOC of its size, charged to the server: true, or false when it is
 * not kept (the caller destroys it). */
bool ready_keep(struct memsrv *ms, struct ms_record *rec, handle_t h);
/* An ALLOC of `granules` (no alignment above a granule, no limit) for
 * client c (pid badge) served by a ready segment, zero-filled and charged
 * to the client: 0 with the handle and sid, the refusal of the client's
 * account (-EDQUOT, -EPEER; the segment stays ready), or 1 when there is
 * none to give (the caller books a new one). */
int64_t ready_take(struct memsrv *ms, uint32_t client, uint64_t badge, uint64_t granules, handle_t *h, uint64_t *sid);
/* Destroys every ready segment, freeing their spans: before the books are
 * looked at from outside (STATS, MAP, CHECK) and before room is made. */
void ready_flush(struct memsrv *ms);
/* The record rec is going away (destroyed by another path): no longer ready. */
void ready_forget(struct memsrv *ms, struct ms_record *rec);
/* CHECK's part: every entry names a ready record, every ready record has an
 * entry, and the byte count adds up. */
int ready_check(struct memsrv *ms, char *why, size_t len);
void map_print(struct memsrv *ms, unsigned columns);

/* ---- restarts (boot.c, rebuild.c, restart.c, reclaim.c) ---- */
/* The RAM regions and kernel ranges of SYS_MS_BOOTINFO, read up to its
 * first segment (a later index costs the kernel a walk of its list). */
int boot_world_read(struct memsrv *ms, struct ms_world *w);
/* Adds the world's regions to a span instance and books the kernel ranges
 * (for the real books, as locked records of kind KERNEL); *ram: bytes. */
int boot_span_world(struct memsrv *ms, struct span_alloc *a, const struct ms_world *w, uint64_t *ram);
/* Creates a books segment at phys (the caller placed it) and maps it into
 * the server: 0, or -E* logged (*sid nonzero if the kernel made one). */
int boot_books_map(struct memsrv *ms, uint64_t phys, uint64_t bytes, void **addr, uint64_t *sid);
/* The same, and adopts it as `use` (books_adopt). */
int boot_books_create(struct memsrv *ms, enum ms_books_use use, uint64_t phys, uint64_t bytes, void **addr);
/* The server's own books segment sid names, or NULL; whether there is one. */
const struct ms_books_seg *boot_books_of(const struct memsrv *ms, uint64_t sid);
bool boot_books_known(const struct memsrv *ms, uint64_t sid);
/* memsrv.restart=N: the books rebuilt from the kernel's segment list and
 * checked, before anyone is answered. 0, or -E* with a console line. */
int memsrv_rebuild(struct memsrv *ms, const struct ms_world *w);
/* Before any books exist (a restart): takes everything the reclaim list
 * holds and destroys what no device can reach, counting it in ms->restart
 * (freed_at_start, freed_bytes). */
void reclaim_without_books(struct memsrv *ms);
/* The first request after a start is being answered: its time is noted. */
void restart_first_answer(struct memsrv *ms);
static inline void restart_answered(struct memsrv *ms)
{
    if (ms->restart.first_answer_ns == 0)
        restart_first_answer(ms);
}
int64_t req_fault(struct memsrv *ms, const struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_recovery(struct memsrv *ms, const struct ipc_msg *req, struct ipc_msg *reply);
/* MS_STATS_RESTART's payload. */
void restart_stats(struct memsrv *ms, struct ipc_msg *reply);

#endif
