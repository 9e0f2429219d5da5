/*
 * Memory-server layer: the server's state and the entry points its main loop
 * (memsrv.c) and the host tests (tests/host/memsrv) call. Everything below
 * this header reaches the kernel only through struct ms_kernel_ops, so the
 * request handling, the books and the compaction driver run unchanged on the
 * host against a fake kernel.
 *
 * Files: boot.c (taking over memory at start), books.c (segment records and
 * clients), dispatch.c (the request table and validation), alloc.c (ALLOC,
 * FREE, MOVE, RELEASE, QUOTA), info.c (STATS, MAP, CHECK), compact.c
 * (migrations, direct and background compaction, COMPACT), reclaim.c (the
 * kernel's exit notification). The protocol is in docs/memsrv.md.
 *
 * Not thread-safe: one thread (the server loop) owns a struct memsrv.
 */
#ifndef MEMSRV_MS_SERVER_H
#define MEMSRV_MS_SERVER_H

#include <abi/ipc.h>
#include <abi/memsrv.h>
#include <abi/proc.h>
#include <abi/seg.h>
#include <abi/types.h>
#include <span/span.h>

/*
 * Constants (why each value, see docs/memsrv.md "Constants"):
 *   books grow with use (books.c): span slots come in blocks of 64 KiB to
 *     4 MiB (half of what the pool holds, so a pool of n slots took
 *     O(log n) blocks), and at least 32 slots and 4 records are kept free
 *     between requests: an allocation needs 3 slots, a free 1, a
 *     compaction proposal 5, and growing the books itself 3 and a record;
 *     before a targeted compaction 2048 are made free, since its witness
 *     books a trial place (up to 4 slots) for each segment of a window;
 *     a block is given back once empty and more than 65536 slots (4 MiB)
 *     are free, keeping 16384: books live at the top of memory, and
 *     giving blocks back often leaves holes there that fragmentation
 *     scoring sees (under Bochs, trimming at 4096 free slots tripled the
 *     churn test's compaction runs), and a free-alloc cycle must not
 *     create and destroy a block each time;
 *   a client per process slot (ABI_PROC_MAX): the table is indexed by the
 *     pid's slot, so it cannot fill up;
 *   4 MiB per background step: two large pages, a few ms of copying under
 *     QEMU TCG, so a client waits at most that long behind a step;
 *   100 ms between background steps; a fragmentation score of 200 per mille
 *     (a fifth of free memory in runs smaller than a large page) starts a
 *     background pass.
 */
#define MS_BOOT_NODES 512u
#define MS_SLOTS_SPARE 32u
#define MS_RECS_SPARE 4u
#define MS_TRIM_SLOTS 65536u
#define MS_PLAN_SLOTS 2048u
#define MS_BLOCK_MIN (64ull << 10)
#define MS_BLOCK_MAX (4ull << 20)
#define MS_RECS_MIN 256u
#define MS_BOOKS_SEGS 128u
#define MS_CLIENTS_MAX ABI_PROC_MAX
#define MS_STEP_BYTES (4ull << 20)
#define MS_IDLE_NS (100ull * 1000 * 1000)
#define MS_FRAG_THRESHOLD 200u
#define MS_PLAN_FAILURES_MAX 8u
#define MS_MAP_COLUMNS_DEFAULT 64u
#define MS_MAP_COLUMNS_MAX 200u
#define MS_MAPS_PER_WINDOW 8u               /* MS_MAP requests answered per window ... */
#define MS_MAP_WINDOW_NS (1000ull * 1000 * 1000) /* ... of a second; more: -EAGAIN */
#define MS_RECLAIM_BATCH 16u

#define MS_NO_CLIENT UINT32_MAX
#define MS_NO_RECORD UINT32_MAX
#define MS_NEVER UINT64_MAX

/*
 * What the server needs from the kernel. memsrv.c implements these with the
 * SYS_MS_* calls; the host tests with a fake. Results as the syscalls
 * return them: >= 0, or -E*.
 */
struct ms_kernel_ops {
    void *ctx;
    int64_t (*bootinfo)(void *ctx, unsigned index, struct abi_mem_range *out);
    /* -> handle of a new zero-filled, unmapped segment in the server,
     * charged to the client payer (0: the server itself); -EDQUOT past the
     * client's limits, -EPEER if it has ended */
    int64_t (*seg_create)(void *ctx, uint64_t phys, uint64_t size, uint64_t payer);
    int64_t (*seg_info)(void *ctx, handle_t seg, struct abi_seg_info *out);
    /* maps a segment the server holds into the server -> its address */
    int64_t (*seg_map_self)(void *ctx, handle_t seg);
    /* 0, or SEG_DESTROY_QUARANTINED: a device may still reach it, the
     * kernel keeps it and reclaims it later, released */
    int64_t (*seg_destroy)(void *ctx, uint64_t sid);
    /* takes a segment from whoever holds it -> its handle in the server */
    int64_t (*seg_revoke)(void *ctx, uint64_t sid);
    int64_t (*seg_migrate)(void *ctx, uint64_t sid, uint64_t new_phys);
    int64_t (*seg_query)(void *ctx, uint64_t sid, struct abi_seg_info *out);
    int64_t (*reclaimed)(void *ctx, struct abi_reclaim *out, unsigned max);
    void (*handle_close)(void *ctx, handle_t h);
    uint64_t (*clock_ns)(void *ctx);
    void (*console)(void *ctx, const char *text, size_t len);
};

enum ms_record_kind {
    MS_REC_SEGMENT = 1, /* a segment some client was charged for (or none, boot) */
    MS_REC_KERNEL,      /* a kernel span: locked for good, no sid */
    MS_REC_BOOKS,       /* the server's own metadata segment: locked */
};

#define MS_REC_PINNED      0x1u /* locked in the books: the kernel refused a move (EBUSY) */
#define MS_REC_QUARANTINED 0x2u /* a device may still reach it: locked until the kernel releases it */

/* One per non-free span in the span books; the span's tag is the index. */
struct ms_record {
    uint64_t sid;
    uint64_t base;
    uint64_t size;
    uint32_t client;    /* index into clients[] charged for it, or MS_NO_CLIENT */
    uint32_t next_free; /* free-record list, when unused */
    uint8_t kind;       /* enum ms_record_kind; 0 = unused */
    uint8_t flags;      /* MS_REC_* */
};

struct ms_client {
    uint64_t pid; /* 0: the slot is unused */
    bool ended;   /* seen in the kernel's reclaim list: forget it once it is charged nothing */
    uint64_t bytes, segments;
    uint64_t allocs, frees, failures, quota_refusals;
};

enum ms_background_kind { MS_BG_NONE = 0, MS_BG_COMPACT, MS_BG_REALIGN };

/* What one of the server's own books segments holds. */
enum ms_books_use {
    MS_BOOKS_FIRST = 1, /* the span slots given to span_init: kept for good */
    MS_BOOKS_NODES,     /* a span_add_nodes block */
    MS_BOOKS_RECORDS,   /* recs[] and sid_hash[] */
    MS_BOOKS_HASH,      /* the span library's segment hash table */
};

struct ms_books_seg {
    uint64_t sid, base, size;
    void *addr;         /* where it is mapped in the server */
    uint32_t use;       /* enum ms_books_use; 0: the entry is unused */
};

struct memsrv {
    const struct ms_kernel_ops *k;
    struct span_alloc span;
    enum span_policy policy;
    uint64_t self_pid, init_pid; /* init_pid 0: nobody may use init-only labels */

    /* Records: the span books' tags index them; sid_hash finds them by sid. */
    struct ms_record *recs;
    uint32_t rec_capacity, rec_free, recs_used;
    uint32_t *sid_hash; /* record index + 1; 0 = empty slot */
    uint32_t hash_mask;

    struct ms_client clients[MS_CLIENTS_MAX];
    unsigned client_count;

    /* The server's own books segments (books.c); books_size is their sum. */
    struct ms_books_seg books[MS_BOOKS_SEGS];
    uint64_t books_size;
    bool books_fixed;   /* at boot: no growth until every boot span is booked */
    bool books_busy;    /* growing or trimming: no second level of it */
    uint64_t books_grown, books_trimmed;
    uint64_t kernel_bytes;

    uint64_t segments; /* records of kind MS_REC_SEGMENT */
    uint64_t moves, bytes_moved, alloc_failures, compactions, quarantined_bytes;
    uint64_t malformed; /* requests refused by validation, for the log's rate limit */
    uint64_t log_window_start, log_lines_total, log_suppressed; /* ms_log's rate limit */
    uint32_t log_allowance;
    bool log_window_open;
    uint64_t map_window_start; /* MS_MAP's rate limit */
    uint32_t maps_in_window;
    unsigned pinned_records;

    /* Background compaction (compact.c). books_gen counts changes to the
     * books, so a pass that achieved all it could is not rerun until the
     * books change. */
    enum ms_background_kind bg_kind;
    struct span_plan bg_plan;
    unsigned bg_failures;
    uint64_t books_gen, bg_compact_gen, bg_realign_gen;
    uint32_t last_score;
    uint64_t next_work_ns; /* MS_NEVER: nothing to do in the background */
    bool in_background;    /* a background step runs: its moves count as background */
    struct ms_stats_compaction cstats; /* MS_STATS_COMPACTION's figures */
};

/* ---- boot.c ---- */
/* Learns memory from the kernel, takes its books segment, records the spans
 * in use, prints the policy and a summary. args: the startup arguments. */
int memsrv_start(struct memsrv *ms, const struct ms_kernel_ops *k, const char *args,
                 uint64_t self_pid);
/* The policy memsrv.policy=NAME selects (best fit when absent); false if the
 * value names none. */
bool memsrv_parse_policy(const char *args, enum span_policy *out);
const char *memsrv_policy_name(enum span_policy policy);

/* ---- dispatch.c ---- */
/* Handles one received message and turns msg into the reply. Returns false
 * when no reply is due (kernel notifications). */
bool memsrv_handle(struct memsrv *ms, struct ipc_msg *msg);
/* The kernel refused a reply that carried msg->seg: the segment is still
 * the server's. Destroys it and frees its span. */
void memsrv_reply_failed(struct memsrv *ms, const struct ipc_msg *msg, int64_t err);

/* ---- compact.c ---- */
/* Whether background work is due at now; run it with memsrv_background. */
bool memsrv_work_due(const struct memsrv *ms, uint64_t now);
void memsrv_background(struct memsrv *ms, uint64_t now);
/* How long the next receive may wait (TIMEOUT_FOREVER if nothing to do). */
uint64_t memsrv_timeout(const struct memsrv *ms, uint64_t now);

/* ---- internal, shared between the files ---- */
/* A log line: rate-limited, since clients can cause most of them. */
void ms_log(struct memsrv *ms, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Output a request asked for (the map): never dropped. */
void ms_print(struct memsrv *ms, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct ms_record *books_record(struct memsrv *ms, uint64_t index);
struct ms_record *books_find_sid(struct memsrv *ms, uint64_t sid);
uint32_t books_new_record(struct memsrv *ms);
void books_drop_new_record(struct memsrv *ms, uint32_t index);
/* Fills a new record and charges its client (which may be MS_NO_CLIENT). */
void books_commit_record(struct memsrv *ms, uint32_t index, enum ms_record_kind kind,
                         uint64_t sid, uint64_t base, uint64_t size, uint32_t client);
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
void books_uncharge(struct memsrv *ms, struct ms_record *rec);
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
int books_adopt(struct memsrv *ms, enum ms_books_use use, uint64_t sid, uint64_t base,
                uint64_t size, void *addr);
/* Sets up the records array and sid hash in a books segment of `bytes`. */
void books_records_init(struct memsrv *ms, void *mem, uint64_t bytes);
/* Bytes of books for a records array of `capacity` records. */
uint64_t books_records_bytes(uint32_t capacity);

int compact_targeted(struct memsrv *ms, uint64_t size, uint64_t align, uint64_t limit,
                     uint64_t *moves, uint64_t *bytes);
void compact_schedule(struct memsrv *ms, uint64_t now);
void compact_poll_pinned(struct memsrv *ms);

/* Request handlers: the request was checked against dispatch.c's table
 * (label, caller, unused words zero, no payload, a segment only where one is
 * expected). They fill reply's words, payload and segment and return 0 or
 * -E*; on an error the request's segment goes back to the caller. */
typedef int64_t (*ms_handler_fn)(struct memsrv *ms, const struct ipc_msg *req,
                                 struct ipc_msg *reply);
int64_t req_alloc(struct memsrv *ms, const struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_free(struct memsrv *ms, const struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_stats(struct memsrv *ms, const struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_compact(struct memsrv *ms, const struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_map(struct memsrv *ms, const struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_check(struct memsrv *ms, const struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_move(struct memsrv *ms, const struct ipc_msg *req, struct ipc_msg *reply);
int64_t req_revoke(struct memsrv *ms, const struct ipc_msg *req, struct ipc_msg *reply);
void reclaim_drain(struct memsrv *ms);
void map_print(struct memsrv *ms, unsigned columns);

#endif
