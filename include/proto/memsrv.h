/*
 * Protocol layer: the memory server's protocol (the kernel knows nothing
 * of it). Clients call the server's endpoint (SYS_IPC_CALL) with one of the
 * labels below; the reply's label is
 * 0 on success or a negative error (-E*, abi/errno.h) stored as a uint64.
 * Every request is validated; a malformed one changes nothing.
 */
#ifndef PROTO_MEMSRV_H
#define PROTO_MEMSRV_H

#include <abi/types.h>
#include <proto/words.h>

enum ms_label {
    /* w0 size (bytes, rounded up to 4 KiB), w1 alignment (0: default, else a
     * power of two >= 4 KiB), w2 MS_ALLOC_* flags, w3 exclusive highest
     * physical address (with MS_ALLOC_BELOW). Reply: the segment, zero-filled,
     * mapped into the caller; w0 its sid. */
    MS_ALLOC = 1,
    /* The segment attached to the request goes back to the server. */
    MS_FREE = 2,
    /* w0 MS_STATS_*; w1 the client pid (0: the caller; another's: init
     * only, -EPERM) or region index. Reply payload: struct
     * ms_stats_global, ms_stats_client, ms_stats_region or
     * ms_stats_compaction (w1 0). MS_STATS_REGION walks every span: it
     * shares CHECK's budget (-EAGAIN, below). */
    MS_STATS = 3,
    /* w0 MS_COMPACT_*; for TARGET: w1 size, w2 alignment, w3 limit (0: none).
     * Reply: w0 moves done, w1 bytes moved, w2 largest free run after. FULL
     * is done by the server's compactor while others are served; the reply
     * comes when the pass ends (-EBUSY when the server has no thread to
     * spare for the wait), or at once with 0 moves when the last pass had
     * nothing to move and nothing changed since. */
    MS_COMPACT = 4,
    /* 5 was a per-client quota: limits are now the kernel's account tree
     * (SYS_PROC_LIMIT), which a client cannot escape through children. */
    /* Prints the memory picture on the serial console (a row per region, a
     * character per chunk: '.' free, '#' used, 'L' locked, 'K' kernel,
     * ' ' hole) with totals. w0: characters per row (0: 64). -EAGAIN past
     * a few maps a second (a console is shared). Zoom: w2 the bytes a
     * character stands for (MS_MAP_ZOOM_4K or _64K), w1 where the picture
     * starts (a multiple of w2): MS_MAP_ZOOM_ROWS rows from there; 0 in w1
     * and w2 for the whole map, which walks every span and shares CHECK's
     * budget (-EAGAIN with w0 the wait, below). */
    MS_MAP = 6,
    /* Runs the allocator's invariant checker. Reply 0, or -EINVAL with the
     * reason in the payload. It looks at every span with the books locked
     * (about a second under QEMU TCG on 5 GiB of 4 KiB segments), so a
     * client's checks (with MS_STATS_REGION and whole-MAP walks) take at
     * most a fifth of the server's time: too soon after the last one, -EAGAIN with w0 the
     * nanoseconds to wait (ms_again_reply); libsys waits and asks again. */
    MS_CHECK = 7,
    /* w0 the sid of a segment the caller holds, of at most MS_MOVE_MAX
     * bytes: move it to another place (contents kept). Reply: w0 the
     * physical address it now starts at. -E2BIG for a larger segment.
     * For tests and defragmentation hints. */
    MS_MOVE = 8,
    /* 9 released a quarantined segment on init's word: the kernel now
     * releases it itself once it has quiesced the device. */
    /* Init only: w0 the sid of a segment some client holds: the server
     * takes it back from that client (its mapping goes away) and frees it.
     * -EBUSY while it is pinned. For reclaiming memory from a process that
     * will not give it back. */
    MS_REVOKE = 10,
    /* Init only, for tests of the restart path (init passes it on from the
     * in-guest suite alone): w0 MS_FAULT_*, when the server is to fault on
     * purpose (a page fault, as a bug would). NOW faults while handling
     * this request (no reply: the call ends with -EPEER); the others arm
     * a fault at a point where a crash leaves the most half done, and
     * reply 0. -EINVAL for another w0, -EBUSY if one is armed already. */
    MS_FAULT = 11,
    /* Init only, once it has restarted the server: w0 the time (SYS_CLOCK)
     * init saw the previous server end. Reply: w0 this server's restart
     * number, w1 nanoseconds from that end to this server's first answer,
     * w2 nanoseconds its books took to rebuild. -EINVAL if this server was
     * not restarted, or w0 is 0 or in the future. */
    MS_RECOVERY = 12,
    /* w0 count (1..MS_BATCH_MAX) segments of w1 size each, w2 alignment,
     * w3 MS_ALLOC_LARGE or MS_ALLOC_NOWAIT flags (a batch never compacts:
     * NOWAIT is implied; BELOW and WAIT are -EINVAL). All or none. Reply:
     * w0 the size each got, payload struct ms_batch_seg[count]: the
     * segments, zero-filled, mapped into the caller (no reply segment). */
    MS_ALLOC_BATCH = 13,
    /* w0 count (1..MS_BATCH_MAX), payload handle_t[count]: segments the
     * caller holds, freed all or none. Reply 0 and nothing else. */
    MS_FREE_BATCH = 14,
};

/* The largest segment MOVE moves: as large as any move the compactor makes.
 * A migration holds a service thread, and every request about the segment,
 * for its whole copy: without a bound, a client repeating MOVE on a segment
 * of half of RAM from several threads would keep the server's threads
 * copying for it while every other client waited. */
#define MS_MOVE_MAX (4ull << 20)

/* A batch's size: the reply's payload holds one struct ms_batch_seg per segment. */
#define MS_BATCH_MAX 8u

/* One segment of an ALLOC_BATCH reply. Its sid is not there (no room):
 * SYS_SEG_INFO on the handle gives it. */
struct ms_batch_seg {
    handle_t handle;
    uint64_t vaddr;
};
ABI_STATIC_ASSERT(MS_BATCH_MAX * sizeof(struct ms_batch_seg) <= IPC_PAYLOAD_MAX, "a batch fits a payload");
ABI_STATIC_ASSERT(MS_BATCH_MAX * sizeof(handle_t) <= IPC_PAYLOAD_MAX, "a batch free fits a payload");

#define MS_FAULT_NOW           1 /* while handling the MS_FAULT request */
#define MS_FAULT_AFTER_MIGRATE 2 /* after the kernel's next migration, before the books record it */
#define MS_FAULT_AFTER_CREATE  3 /* after the kernel creates a client's next segment, before the reply */
#define MS_FAULT_AFTER_RECLAIM 4 /* after taking the next batch of reclaimed segments, before freeing any */

#define MS_ALLOC_LARGE  0x1u /* large-page alignment (implied for sizes >= 2 MiB) */
#define MS_ALLOC_BELOW  0x2u /* w3 is a highest physical address (exclusive) */
#define MS_ALLOC_NOWAIT 0x4u /* no direct compaction: -ENOMEM at once when there is no room */
#define MS_ALLOC_WAIT   0x8u /* past direct compaction's budget, wait for the compactor rather than -ENOMEM */

#define MS_MAP_ZOOM_4K   0x1000u
#define MS_MAP_ZOOM_64K  0x10000u
#define MS_MAP_ZOOM_ROWS 16u

/*
 * The words of each request and reply (proto/words.h): a server reads a
 * request with ms_alloc_req_get(req), a client fills it with
 * ms_alloc_req_put(&m, (struct ms_alloc_req){ ... }). Words past a struct
 * are 0 in a request (the server refuses others: -EINVAL) and in a reply.
 * FREE and CHECK carry no words; STATS, MAP, FAULT and REVOKE reply none.
 */
/* An -EAGAIN reply to CHECK, STATS_REGION or a whole MAP: when the next
 * may run (0: MAP's own limit of a few a second). */
PROTO_WORDS(ms_again_reply, wait_ns);

PROTO_WORDS(ms_alloc_req, size, align, flags, limit);
PROTO_WORDS(ms_alloc_reply, sid);

/* which: a pid (MS_STATS_CLIENT) or a region index (MS_STATS_REGION), else 0. */
PROTO_WORDS(ms_stats_req, kind, which);

/* size, align and limit: TARGET's, 0 for the other modes. */
PROTO_WORDS(ms_compact_req, mode, size, align, limit);
/* Also in an error reply to COMPACT (what the run did before it failed). */
PROTO_WORDS(ms_compact_reply, moves, bytes_moved, largest_free);

PROTO_WORDS(ms_map_req, columns, base, per_char);

/* MOVE and REVOKE: the segment's sid. */
PROTO_WORDS(ms_sid_req, sid);
/* MOVE's reply: the physical address the segment now starts at. */
PROTO_WORDS(ms_move_reply, base);

PROTO_WORDS(ms_fault_req, when); /* MS_FAULT_* */

PROTO_WORDS(ms_alloc_batch_req, count, size, align, flags);
PROTO_WORDS(ms_alloc_batch_reply, size); /* the size each segment got (rounded up) */
PROTO_WORDS(ms_free_batch_req, count);

PROTO_WORDS(ms_recovery_req, ended_ns);
PROTO_WORDS(ms_recovery_reply, restart, recovery_ns, rebuild_ns);

enum ms_stats_kind {
    MS_STATS_GLOBAL = 0,
    MS_STATS_CLIENT = 1,
    MS_STATS_REGION = 2,
    MS_STATS_COMPACTION = 3,
    MS_STATS_RESTART = 4
};
enum ms_compact_mode { MS_COMPACT_FULL = 0, MS_COMPACT_STEP = 1, MS_COMPACT_TARGET = 2 };

/* Scores are per mille (0..1000). */
struct ms_stats_global {
    uint64_t total_bytes;  /* RAM the server manages */
    uint64_t free_bytes;   /* free, a background move's destination counted as free */
    uint64_t used_bytes;   /* segments */
    uint64_t locked_bytes; /* pinned or kernel spans */
    uint64_t largest_free; /* largest free run */
    uint64_t segments;
    uint64_t regions;
    uint64_t moves; /* migrations done, since boot */
    uint64_t bytes_moved;
    uint64_t frag_score;     /* Linux's fragmentation score at the large-page order */
    uint64_t unusable_index; /* Linux's unusable free index at the large-page order */
    uint64_t alloc_failures;
    uint64_t quarantined_bytes;
    uint64_t clients;
    uint64_t compactions; /* background and direct runs */
    uint64_t books_bytes; /* the server's own books (locked), which grow and shrink */
};
ABI_STATIC_ASSERT(sizeof(struct ms_stats_global) == 128, "stats fit a payload");

struct ms_stats_client {
    uint64_t pid;
    uint64_t bytes; /* charged to it now */
    uint64_t segments;
    uint64_t reserved; /* limits are the kernel's: SYS_ACCOUNT_INFO */
    uint64_t allocs, frees, failures;
    uint64_t quota_refusals; /* allocations the kernel refused: the client's account was full */
};
ABI_STATIC_ASSERT(sizeof(struct ms_stats_client) <= 128, "stats fit a payload");

struct ms_stats_region {
    uint64_t base, size;
    uint64_t free_bytes, used_bytes, locked_bytes;
    uint64_t largest_free;
    uint64_t segments;
};
ABI_STATIC_ASSERT(sizeof(struct ms_stats_region) <= 128, "stats fit a payload");

/*
 * Who moved what, and what it cost the clients (docs/memsrv.md,
 * "Compaction"). Background: the compactor's own work (proactive, on
 * demand, realignment, COMPACT FULL and STEP). Direct: moves made on a
 * request's own path while its client waited (an ALLOC's direct plan,
 * COMPACT TARGET, MOVE). Times are nanoseconds of the server's clock.
 */
struct ms_stats_compaction {
    uint64_t bg_moves, bg_bytes;
    uint64_t direct_moves, direct_bytes;
    uint64_t busy_ns;      /* the compactor's time in its steps */
    uint64_t steps;        /* background steps taken */
    uint64_t direct_plans; /* direct (targeted) plans run for requests */
    uint64_t over_budget;  /* direct plans stopped at their byte or move budget */
    uint64_t waits;        /* requests that waited on compaction (the books or a moving segment) */
    uint64_t wait_max_ns;
    uint64_t wait_p99_ns;     /* upper edge of the histogram bucket holding the 99th percentile */
    uint64_t hold_max_ns;     /* the longest the compactor held the books in one step */
    uint64_t realigned;       /* large segments moved to large-page alignment */
    uint64_t yielded;         /* large segments slid to 4 KiB alignment under pressure */
    uint64_t demand_runs;     /* background runs started by failed or direct-compacted requests */
    uint64_t waited_requests; /* requests that asked to wait (MS_ALLOC_WAIT, COMPACT FULL) and did */
};
ABI_STATIC_ASSERT(sizeof(struct ms_stats_compaction) <= 128, "stats fit a payload");

/* MS_STATS_RESTART (w1 0): how this server came up. A server the kernel
 * started at boot reports restarts 0 and nothing else. */
struct ms_stats_restart {
    uint64_t restarts;       /* N of memsrv.restart=N: 0 for the server started at boot */
    uint64_t recovery_ns;    /* the previous server's end (as init saw it) to this one's first
                                 answer; 0 until init tells it the end (MS_RECOVERY) */
    uint64_t rebuild_ns;     /* its start to its books rebuilt from the kernel and checked */
    uint64_t segments;       /* segments the kernel listed and the books now hold */
    uint64_t clients;        /* clients the books were rebuilt with */
    uint64_t freed_at_start; /* segments freed before the books were built: what the previous
                                 server held, and what ended processes left */
    uint64_t freed_bytes;
    uint64_t locked_dma;  /* listed pinned or within a device's reach: locked in the books */
    uint64_t quarantined; /* listed quarantined: locked, charged to nobody */
    uint64_t list_calls;  /* SYS_MS_SEGMENTS calls the rebuild made (two passes) */
};
ABI_STATIC_ASSERT(sizeof(struct ms_stats_restart) <= 128, "stats fit a payload");

#endif
