/*
 * memctl: the memory server's commands (alloc, free, pin, unpin, fill,
 * check, list, stats, map, compact, move). Each is one or two memsrv
 * requests (proto/memsrv.h) or segment system calls, so a newcomer can
 * allocate, pin, fill, compact and watch the map change; refusals come with
 * their meaning (libsys/explain.h).
 *
 * Segments memctl holds are named by small IDs (1..MEMCTL_SEGMENTS_MAX) it
 * hands out itself, lowest free first. The kernel tells a segment's holder
 * its physical base (SYS_SEG_INFO), so every line shows where a segment
 * sits and whether it moved since memctl last looked.
 */
#include <abi/syscall.h>
#include <common/string.h>
#include <libsys/explain.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include "memctl.h"

#define MEMCTL_SEGMENTS_MAX 256

struct held_segment {
    bool used;
    struct ms_segment seg;
    uint64_t phys_seen;   /* physical base when last learned; 0: never */
    uint64_t pattern;     /* what every 64-bit word should hold (new: zero) */
    bool pattern_is_byte; /* filled with a byte: print it as one */
};

/* Indexed by ID; slot 0 stays unused so that IDs start at 1. */
static struct held_segment held[MEMCTL_SEGMENTS_MAX + 1];

/* The segment an ID argument names, or NULL after saying why. */
static struct held_segment *held_by_id(const char *command, const char *word)
{
    uint64_t id;
    if (!parse_number_word(word, &id)) {
        printf("error: %s: '%s' is not an ID (IDs are numbers; try list)\n", command, word);
        return NULL;
    }
    if (id == 0 || id > MEMCTL_SEGMENTS_MAX || !held[id].used) {
        printf("error: %s: no segment with ID %lu (try list)\n", command, id);
        return NULL;
    }
    return &held[id];
}

static unsigned id_of(const struct held_segment *h) { return (unsigned)(h - held); }

/* The physical base, which the kernel tells a segment's holder. 0 if it
 * refuses. */
static uint64_t learn_phys(struct held_segment *h)
{
    struct abi_seg_info info;
    return sys_seg_info(h->seg.handle, &info) == 0 ? info.phys : 0;
}

static uint32_t pin_depth(const struct held_segment *h)
{
    struct abi_seg_info info;
    return sys_seg_info(h->seg.handle, &info) == 0 ? info.pins : 0;
}

/* "phys 0x...", with where it was before if it moved since memctl last
 * looked. */
static void print_phys(struct held_segment *h)
{
    uint64_t phys = learn_phys(h);
    if (phys == 0) {
        printf("phys unknown");
        return;
    }
    printf("phys %#lx", phys);
    if (h->phys_seen != 0 && h->phys_seen != phys)
        printf(" (moved from %#lx)", h->phys_seen);
    h->phys_seen = phys;
}

/* For commands whose one argument is an ID: the segment, or NULL after the
 * usage line or the reason. */
static struct held_segment *id_argument(int argc, char **argv)
{
    if (argc != 2) {
        print_usage(argv[0]);
        return NULL;
    }
    return held_by_id(argv[0], argv[1]);
}

/* "error: free 3: EBUSY: the segment is pinned ..." */
static void print_segment_error(const char *command, const struct held_segment *h, int64_t err, const char *meaning)
{
    char what[32];
    fmt_snprintf(what, sizeof(what), "%s %u", command, id_of(h));
    print_error(what, err, meaning);
}

void cmd_alloc(int argc, char **argv)
{
    uint64_t size, limit = 0;
    unsigned flags = 0;
    if (argc < 2 || !parse_size_word(argv[1], &size)) {
        print_usage("alloc");
        return;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "large") == 0) {
            flags |= MS_ALLOC_LARGE;
        } else if (strcmp(argv[i], "below") == 0 && i + 1 < argc && parse_size_word(argv[i + 1], &limit)) {
            flags |= MS_ALLOC_BELOW;
            i++;
        } else {
            print_usage("alloc");
            return;
        }
    }
    unsigned id = 1;
    while (id <= MEMCTL_SEGMENTS_MAX && held[id].used)
        id++;
    if (id > MEMCTL_SEGMENTS_MAX) {
        printf("error: alloc: all %d IDs are in use (free one first)\n", MEMCTL_SEGMENTS_MAX);
        return;
    }
    struct held_segment *h = &held[id];
    int64_t err = ms_alloc(size, 0, flags, limit, &h->seg);
    if (err < 0) {
        char what[64], why[160];
        fmt_snprintf(what, sizeof(what), "alloc %s", argv[1]);
        print_error(what, err, ms_explain_alloc(err, size, flags, limit, why, sizeof(why)));
        return;
    }
    h->used = true;
    h->phys_seen = 0;
    h->pattern = 0;
    h->pattern_is_byte = true;
    struct abi_seg_info info;
    bool large_pages = sys_seg_info(h->seg.handle, &info) == 0 && (info.flags & SEG_INFO_LARGE_PAGES);
    printf("alloc: ID %u, %s at %#lx, ", id, SIZE_TEXT(h->seg.size), (uint64_t)(uintptr_t)h->seg.addr);
    print_phys(h);
    printf(", sid %#lx%s\n", h->seg.sid, large_pages ? ", large pages" : "");
}

void cmd_free(int argc, char **argv)
{
    struct held_segment *h = id_argument(argc, argv);
    if (h == NULL)
        return;
    int64_t err = ms_free(h->seg.handle);
    if (err < 0) {
        /* The kernel refuses to send a pinned segment (EBUSY): memctl still
         * holds it. A refusal by memsrv itself cannot happen for a segment
         * it handed out. */
        print_segment_error("free", h, err, ms_error_meaning(MS_FREE, err));
        return;
    }
    printf("free: ID %u (%s) went back to memsrv\n", id_of(h), SIZE_TEXT(h->seg.size));
    h->used = false;
}

void cmd_pin(int argc, char **argv)
{
    bool pin = strcmp(argv[0], "pin") == 0;
    struct held_segment *h = id_argument(argc, argv);
    if (h == NULL)
        return;
    handle_t device = startup_handle(ABI_STARTUP_DEVICE);
    int64_t result = pin ? sys_seg_pin(h->seg.handle, device) : sys_seg_unpin(h->seg.handle);
    if (result < 0) {
        print_segment_error(argv[0], h, result, sys_error_meaning(pin ? SYS_SEG_PIN : SYS_SEG_UNPIN, result));
        return;
    }
    if (pin) {
        h->phys_seen = (uint64_t)result;
        printf("pin: ID %u pinned at phys %#lx (depth %u): it cannot move or be freed until unpinned\n", id_of(h),
               (uint64_t)result, pin_depth(h));
    } else {
        uint32_t depth = pin_depth(h);
        struct abi_seg_info info = { 0 };
        sys_seg_info(h->seg.handle, &info);
        printf("unpin: ID %u %s\n", id_of(h),
               depth                         ? "still pinned (pins nest)"
               : (info.flags & SEG_INFO_DMA) ? "is unpinned; its device may still reach it until it is quiesced "
                                               "(no IOMMU), so it stays put"
                                             : "is movable again");
    }
}

static void describe_pattern(const struct held_segment *h, char *buf, size_t len)
{
    if (h->pattern_is_byte)
        fmt_snprintf(buf, len, "byte 0x%02lx", h->pattern & 0xff);
    else
        fmt_snprintf(buf, len, "64-bit 0x%016lx", h->pattern);
}

void cmd_fill(int argc, char **argv)
{
    uint64_t value;
    if (argc != 3 || !parse_number_word(argv[2], &value)) {
        print_usage("fill");
        return;
    }
    struct held_segment *h = held_by_id("fill", argv[1]);
    if (h == NULL)
        return;
    h->pattern_is_byte = value <= 0xff;
    h->pattern = h->pattern_is_byte ? value * 0x0101010101010101ull : value;
    uint64_t *word = h->seg.addr;
    for (uint64_t i = 0; i < h->seg.size / 8; i++)
        word[i] = h->pattern;
    char pattern[40];
    describe_pattern(h, pattern, sizeof(pattern));
    printf("fill: ID %u: %s written with %s\n", id_of(h), SIZE_TEXT(h->seg.size), pattern);
}

void cmd_check(int argc, char **argv)
{
    struct held_segment *h = id_argument(argc, argv);
    if (h == NULL)
        return;
    const uint64_t *word = h->seg.addr;
    uint64_t words = h->seg.size / 8, wrong = 0, first = 0;
    for (uint64_t i = 0; i < words; i++) {
        if (word[i] != h->pattern && wrong++ == 0)
            first = i;
    }
    char pattern[40];
    describe_pattern(h, pattern, sizeof(pattern));
    if (wrong == 0) {
        printf("check: ID %u ok: %s of %s, ", id_of(h), SIZE_TEXT(h->seg.size), pattern);
        print_phys(h);
        printf("\n");
        return;
    }
    const uint8_t *want = (const uint8_t *)&h->pattern, *got = (const uint8_t *)&word[first];
    unsigned byte = 0;
    while (byte < 7 && want[byte] == got[byte])
        byte++;
    printf("check: ID %u differs at offset %#lx: expected %#x, found %#x (%lu of %lu words differ; expected %s)\n",
           id_of(h), first * 8 + byte, want[byte], got[byte], wrong, words, pattern);
}

void cmd_list(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        print_usage("list");
        return;
    }
    unsigned count = 0;
    uint64_t bytes = 0;
    for (unsigned id = 1; id <= MEMCTL_SEGMENTS_MAX; id++) {
        struct held_segment *h = &held[id];
        if (!h->used)
            continue;
        char pattern[40];
        describe_pattern(h, pattern, sizeof(pattern));
        uint32_t pins = pin_depth(h);
        printf("  %3u  %9s at %#lx, ", id, SIZE_TEXT(h->seg.size), (uint64_t)(uintptr_t)h->seg.addr);
        print_phys(h);
        printf(", sid %#lx, %s%s\n", h->seg.sid, pattern, pins ? ", pinned" : "");
        count++;
        bytes += h->seg.size;
    }
    printf("list: %u segment%s, %s\n", count, count == 1 ? "" : "s", SIZE_TEXT(bytes));
}

/* The compactor's figures (MS_STATS_COMPACTION): who moved what, what it
 * cost the requests. */
static void print_compaction_stats(void)
{
    struct ms_stats_compaction c;
    int64_t err = ms_stats_compaction(&c);
    if (err < 0) {
        print_error("stats (compaction)", err, ms_error_meaning(MS_STATS, err));
        return;
    }
    uint64_t all = c.bg_bytes + c.direct_bytes;
    printf("stats: compaction: %lu moves (%s) in the background, %lu (%s) direct: %lu per mille in the "
           "background\n",
           c.bg_moves, SIZE_TEXT(c.bg_bytes), c.direct_moves, SIZE_TEXT(c.direct_bytes),
           all != 0 ? c.bg_bytes * 1000 / all : 0);
    printf("stats: compaction: compactor busy %lu ms in %lu steps, holding the books %lu us at most; "
           "%lu direct plans (%lu over budget), %lu demand runs, %lu realigned, %lu yielded\n",
           c.busy_ns / 1000000, c.steps, c.hold_max_ns / 1000, c.direct_plans, c.over_budget, c.demand_runs,
           c.realigned, c.yielded);
    printf("stats: compaction: %lu requests waited on it, the longest %lu us, p99 under %lu us; %lu asked to "
           "wait\n",
           c.waits, c.wait_max_ns / 1000, c.wait_p99_ns / 1000, c.waited_requests);
}

void cmd_stats(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        print_usage("stats");
        return;
    }
    struct ms_stats_global g;
    int64_t err = ms_stats_global(&g);
    if (err < 0) {
        print_error("stats", err, ms_error_meaning(MS_STATS, err));
        return;
    }
    printf("stats: %s total: %s free, %s used, %s locked (%s quarantined); largest free run %s\n",
           SIZE_TEXT(g.total_bytes), SIZE_TEXT(g.free_bytes), SIZE_TEXT(g.used_bytes), SIZE_TEXT(g.locked_bytes),
           SIZE_TEXT(g.quarantined_bytes), SIZE_TEXT(g.largest_free));
    printf("stats: %lu segments in %lu regions, %lu clients; fragmentation score %lu/1000, unusable index %lu/1000\n",
           g.segments, g.regions, g.clients, g.frag_score, g.unusable_index);
    printf("stats: %lu moves (%s moved) in %lu compactions; %lu failed allocations\n", g.moves,
           SIZE_TEXT(g.bytes_moved), g.compactions, g.alloc_failures);
    print_compaction_stats();
    struct ms_stats_client c;
    err = ms_stats_client(0, &c);
    if (err < 0) {
        print_error("stats (this client)", err, ms_error_meaning(MS_STATS, err));
        return;
    }
    /* Its limit is the kernel's: what init allowed this console's subtree. */
    struct abi_account account = { 0 };
    sys_account_info(HANDLE_SELF, &account);
    uint64_t limit = account.limit[RES_MEMORY];
    printf("stats: memctl (pid %#lx): %s in %lu segments, limit %s; %lu allocs, %lu frees, %lu failures\n", c.pid,
           SIZE_TEXT(c.bytes), c.segments, limit == ABI_LIMIT_NONE ? "none" : SIZE_TEXT(limit), c.allocs, c.frees,
           c.failures);
}

void cmd_map(int argc, char **argv)
{
    uint64_t columns = 0;
    if (argc > 2 || (argc == 2 && (!parse_number_word(argv[1], &columns) || columns > 200))) {
        print_usage("map");
        return;
    }
    int64_t err = ms_map((unsigned)columns);
    if (err < 0)
        print_error("map", err, ms_error_meaning(MS_MAP, err));
}

void cmd_compact(int argc, char **argv)
{
    enum ms_compact_mode mode = MS_COMPACT_FULL;
    uint64_t size = 0;
    if (argc > 2) {
        print_usage("compact");
        return;
    }
    const char *how = argc == 2 ? argv[1] : "full";
    if (strcmp(how, "step") == 0)
        mode = MS_COMPACT_STEP;
    else if (strcmp(how, "full") == 0)
        mode = MS_COMPACT_FULL;
    else if (parse_size_word(how, &size))
        mode = MS_COMPACT_TARGET;
    else {
        print_usage("compact");
        return;
    }
    uint64_t moves = 0, moved = 0;
    int64_t err = ms_compact(mode, size, ABI_LARGE_PAGE_SIZE, 0, &moves, &moved);
    if (err < 0) {
        char what[80];
        fmt_snprintf(what, sizeof(what), "compact %s (after %lu move%s, %s moved)", how, moves, moves == 1 ? "" : "s",
                     SIZE_TEXT(moved));
        print_error(what, err, ms_error_meaning(MS_COMPACT, err));
        return;
    }
    struct ms_stats_global g;
    printf("compact %s: %lu move%s, %s moved", how, moves, moves == 1 ? "" : "s", SIZE_TEXT(moved));
    if (ms_stats_global(&g) == 0)
        printf("; largest free run %s, fragmentation score %lu/1000", SIZE_TEXT(g.largest_free), g.frag_score);
    printf("\n");
}

void cmd_move(int argc, char **argv)
{
    struct held_segment *h = id_argument(argc, argv);
    if (h == NULL)
        return;
    if (h->phys_seen == 0)
        h->phys_seen = learn_phys(h); /* so the line below says where it moved from */
    int64_t err = ms_move(h->seg.sid);
    if (err < 0) {
        print_segment_error("move", h, err, ms_error_meaning(MS_MOVE, err));
        return;
    }
    printf("move: ID %u (%s) now at ", id_of(h), SIZE_TEXT(h->seg.size));
    print_phys(h);
    printf(", contents kept\n");
}

/* "4k" or "64k": the bytes a zoomed character stands for. */
static bool parse_zoom_scale(const char *word, uint64_t *per_char)
{
    if (strcmp(word, "4k") == 0 || strcmp(word, "4K") == 0)
        *per_char = MS_MAP_ZOOM_4K;
    else if (strcmp(word, "64k") == 0 || strcmp(word, "64K") == 0)
        *per_char = MS_MAP_ZOOM_64K;
    else
        return false;
    return true;
}

/* "ADDR [4k|64k]" from argv[first]: the zoom's start (rounded down to a
 * character) and scale (default 4k). */
static bool parse_zoom(int argc, char **argv, int first, uint64_t *base, uint64_t *per_char)
{
    *per_char = MS_MAP_ZOOM_4K;
    if (argc - first < 1 || argc - first > 2 || !parse_size_word(argv[first], base) ||
        (argc - first == 2 && !parse_zoom_scale(argv[first + 1], per_char)))
        return false;
    *base &= ~(*per_char - 1);
    return true;
}

void cmd_zoom(int argc, char **argv)
{
    uint64_t base, per_char;
    if (!parse_zoom(argc, argv, 1, &base, &per_char)) {
        print_usage("zoom");
        return;
    }
    int64_t err = ms_map_zoom(base, per_char, 64);
    if (err < 0)
        print_error("zoom", err, ms_error_meaning(MS_MAP, err));
}

#define WATCH_FRAME_NS    (500ull * 1000 * 1000)
#define WATCH_SECONDS_MAX 120u

/* Redraws the map (or a zoom) twice a second for SECONDS, with the
 * compactor's figures, so fragmentation can be seen appearing and going. */
void cmd_watch(int argc, char **argv)
{
    uint64_t seconds = 5, base = 0, per_char = 0;
    int zoom_at = 1;
    if (argc >= 2 && parse_number_word(argv[1], &seconds))
        zoom_at = 2;
    if (seconds == 0 || seconds > WATCH_SECONDS_MAX ||
        (argc > zoom_at &&
         (strcmp(argv[zoom_at], "zoom") != 0 || !parse_zoom(argc, argv, zoom_at + 1, &base, &per_char)))) {
        print_usage("watch");
        return;
    }
    struct ms_stats_compaction first = { 0 }, last = { 0 };
    ms_stats_compaction(&first);
    uint64_t end = sys_clock() + seconds * 1000000000ull;
    unsigned frames = 0;
    while (sys_clock() < end) {
        printf("\x1b[H\x1b[J"); /* home, clear: the frame is redrawn in place */
        int64_t err = per_char != 0 ? ms_map_zoom(base, per_char, 64) : ms_map(64);
        if (err < 0 && err != -EAGAIN) {
            print_error("watch", err, ms_error_meaning(MS_MAP, err));
            return;
        }
        ms_stats_compaction(&last);
        printf("watch: frame %u: %lu moves (%s) in the background, %lu (%s) direct since the start\n", ++frames,
               last.bg_moves - first.bg_moves, SIZE_TEXT(last.bg_bytes - first.bg_bytes),
               last.direct_moves - first.direct_moves, SIZE_TEXT(last.direct_bytes - first.direct_bytes));
        sys_sleep(WATCH_FRAME_NS);
    }
    printf("watch: %u frames in %lu s\n", frames, seconds);
}
