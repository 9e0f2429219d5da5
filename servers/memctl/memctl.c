/*
 * memctl: an interactive client of the memory server on the serial console.
 * init starts it at boot (no test= on the command line); `make run` lands
 * at its prompt. Each command is one or two memsrv requests (abi/memsrv.h)
 * or segment system calls, so a newcomer can allocate, pin, fill, compact
 * and watch the map change. docs/memctl.md is the tour.
 *
 * Segments memctl holds are named by small IDs (1..MEMCTL_SEGMENTS_MAX) it
 * hands out itself, lowest free first. The physical base of a segment is
 * only visible while it is pinned (SYS_SEG_INFO), so memctl pins for a
 * moment to learn it: for `alloc`, `list` and `check`.
 *
 * It owns no boot right: `poweroff` asks init through the service endpoint
 * in startup slot ABI_STARTUP_PARENT (abi/init.h).
 */
#include <abi/init.h>
#include <common/cmdline.h>
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>

#define MEMCTL_SEGMENTS_MAX 256
#define MEMCTL_LINE_MAX 160
#define MEMCTL_WORDS_MAX 8
#define MEMCTL_PROMPT "memctl> "

#define KIB ((uint64_t)1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

struct held_segment {
    bool used;
    struct ms_segment seg;
    uint64_t phys_seen;   /* physical base when last learned; 0: never */
    uint64_t pattern;     /* what every 64-bit word should hold (new: zero) */
    bool pattern_is_byte; /* filled with a byte: print it as one */
};

/* Indexed by ID; slot 0 stays unused so that IDs start at 1. */
static struct held_segment held[MEMCTL_SEGMENTS_MAX + 1];

/* ------------------------------------------------------------ formatting */

/* "64 KiB", "2 MiB", "1 GiB": the largest unit that divides the size. */
static const char *size_text(uint64_t bytes, char *buf, size_t len)
{
    if (bytes != 0 && bytes % GIB == 0)
        fmt_snprintf(buf, len, "%lu GiB", bytes / GIB);
    else if (bytes != 0 && bytes % MIB == 0)
        fmt_snprintf(buf, len, "%lu MiB", bytes / MIB);
    else if (bytes != 0 && bytes % KIB == 0)
        fmt_snprintf(buf, len, "%lu KiB", bytes / KIB);
    else
        fmt_snprintf(buf, len, "%lu bytes", bytes);
    return buf;
}
#define SIZE_TEXT(bytes) size_text((bytes), (char[24]){ 0 }, 24)

static void print_error(const char *what, int64_t err)
{
    printf("error: %s: %s\n", what, sys_strerror(err));
}

/* ---------------------------------------------------------- line editing */

enum escape_state { ESCAPE_NONE, ESCAPE_START, ESCAPE_SEQUENCE };

/* Bytes read from the console but not yet consumed: one read may hold more
 * than a line (a paste, or the test runner writing ahead). */
static struct {
    char bytes[64];
    size_t at, len;
    enum escape_state escape;
    bool after_cr; /* a LF right after a CR ends no second line */
} input;

static int next_input_byte(void)
{
    while (input.at == input.len) {
        int64_t n = sys_console_read(input.bytes, sizeof(input.bytes), TIMEOUT_FOREVER);
        if (n <= 0)
            continue; /* only a timeout could end the wait, and there is none */
        input.at = 0;
        input.len = (size_t)n;
    }
    return (unsigned char)input.bytes[input.at++];
}

static void echo(const char *s, size_t n) { sys_console_write(s, n); }

static void erase_chars(size_t n)
{
    while (n-- > 0)
        echo("\b \b", 3);
}

/*
 * Reads one line with echo: backspace and DEL erase a character, Ctrl-U the
 * whole line, Ctrl-C abandons it; CR, LF or CR LF end it. Escape sequences
 * (arrow keys and the like: ESC [ ... final, ESC O final) are swallowed, so
 * they cannot put stray letters into a command. Returns the length.
 */
static size_t read_line(char *line, size_t cap)
{
    size_t len = 0;
    for (;;) {
        int c = next_input_byte();
        bool after_cr = input.after_cr;
        input.after_cr = false;
        if (input.escape == ESCAPE_START) {
            input.escape = c == '[' || c == 'O' ? ESCAPE_SEQUENCE : ESCAPE_NONE;
            continue;
        }
        if (input.escape == ESCAPE_SEQUENCE) {
            if (c >= 0x40 && c <= 0x7e) /* the final byte */
                input.escape = ESCAPE_NONE;
            continue;
        }
        switch (c) {
        case '\n':
            if (after_cr)
                continue;
            /* fall through */
        case '\r':
            input.after_cr = c == '\r';
            echo("\n", 1);
            line[len] = 0;
            return len;
        case 0x7f: /* DEL: what most terminals send for backspace */
        case '\b':
            if (len > 0) {
                len--;
                erase_chars(1);
            }
            continue;
        case 0x15: /* Ctrl-U */
            erase_chars(len);
            len = 0;
            continue;
        case 0x03: /* Ctrl-C */
            echo("^C\n", 3);
            line[0] = 0;
            return 0;
        case 0x1b:
            input.escape = ESCAPE_START;
            continue;
        default:
            if (c >= 0x20 && c < 0x7f && len + 1 < cap) {
                line[len++] = (char)c;
                echo(&line[len - 1], 1);
            }
            continue;
        }
    }
}

/* Splits line in place at spaces and tabs. Returns the word count, or -1 if
 * there are more than max. */
static int split_words(char *line, char **words, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            *p++ = 0;
        if (*p == 0)
            return n;
        if (n == max)
            return -1;
        words[n++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
    }
}

/* ------------------------------------------------------------ arguments */

static bool parse_size_word(const char *word, uint64_t *out) { return parse_size(word, strlen(word), out) == 0; }
static bool parse_number_word(const char *word, uint64_t *out) { return parse_u64(word, strlen(word), out) == 0; }

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

/* -------------------------------------------------------------- commands */

struct command {
    const char *name;
    void (*run)(int argc, char **argv);
    const char *usage;
    const char *help;
};

static void print_usage(const char *name);

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

/* "error: free 3: EBUSY: ..." */
static void print_segment_error(const char *command, const struct held_segment *h, int64_t err)
{
    char what[32];
    fmt_snprintf(what, sizeof(what), "%s %u", command, id_of(h));
    print_error(what, err);
}

static void cmd_alloc(int argc, char **argv)
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
        char what[64];
        fmt_snprintf(what, sizeof(what), "alloc %s", argv[1]);
        print_error(what, err);
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

static void cmd_free(int argc, char **argv)
{
    struct held_segment *h = id_argument(argc, argv);
    if (h == NULL)
        return;
    int64_t err = ms_free(h->seg.handle);
    if (err < 0) {
        /* The kernel refuses to send a pinned segment (EBUSY): memctl still
         * holds it. A refusal by memsrv itself cannot happen for a segment
         * it handed out. */
        print_segment_error("free", h, err);
        return;
    }
    printf("free: ID %u (%s) went back to memsrv\n", id_of(h), SIZE_TEXT(h->seg.size));
    h->used = false;
}

static void cmd_pin(int argc, char **argv)
{
    bool pin = strcmp(argv[0], "pin") == 0;
    struct held_segment *h = id_argument(argc, argv);
    if (h == NULL)
        return;
    handle_t device = libsys_startup ? libsys_startup->handles[ABI_STARTUP_DEVICE] : HANDLE_NONE;
    int64_t result = pin ? sys_seg_pin(h->seg.handle, device) : sys_seg_unpin(h->seg.handle);
    if (result < 0) {
        print_segment_error(argv[0], h, result);
        return;
    }
    if (pin) {
        h->phys_seen = (uint64_t)result;
        printf("pin: ID %u pinned at phys %#lx (depth %u): it cannot move or be freed until unpinned\n",
               id_of(h), (uint64_t)result, pin_depth(h));
    } else {
        uint32_t depth = pin_depth(h);
        struct abi_seg_info info = {0};
        sys_seg_info(h->seg.handle, &info);
        printf("unpin: ID %u %s\n", id_of(h),
               depth                          ? "still pinned (pins nest)"
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

static void cmd_fill(int argc, char **argv)
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

static void cmd_check(int argc, char **argv)
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

static void cmd_list(int argc, char **argv)
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
        print_error("stats (compaction)", err);
        return;
    }
    uint64_t all = c.bg_bytes + c.direct_bytes;
    printf("stats: compaction: %lu moves (%s) in the background, %lu (%s) direct: %lu per mille in the "
           "background\n", c.bg_moves, SIZE_TEXT(c.bg_bytes), c.direct_moves, SIZE_TEXT(c.direct_bytes),
           all != 0 ? c.bg_bytes * 1000 / all : 0);
    printf("stats: compaction: compactor busy %lu ms in %lu steps, holding the books %lu us at most; "
           "%lu direct plans (%lu over budget), %lu demand runs, %lu realigned, %lu yielded\n",
           c.busy_ns / 1000000, c.steps, c.hold_max_ns / 1000, c.direct_plans, c.over_budget, c.demand_runs,
           c.realigned, c.yielded);
    printf("stats: compaction: %lu requests waited on it, the longest %lu us, p99 under %lu us; %lu asked to "
           "wait\n", c.waits, c.wait_max_ns / 1000, c.wait_p99_ns / 1000, c.waited_requests);
}

static void cmd_stats(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        print_usage("stats");
        return;
    }
    struct ms_stats_global g;
    int64_t err = ms_stats_global(&g);
    if (err < 0) {
        print_error("stats", err);
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
        print_error("stats (this client)", err);
        return;
    }
    /* Its limit is the kernel's: what init allowed this console's subtree. */
    struct abi_account account = {0};
    sys_account_info(HANDLE_SELF, &account);
    uint64_t limit = account.limit[RES_MEMORY];
    printf("stats: memctl (pid %#lx): %s in %lu segments, limit %s; %lu allocs, %lu frees, %lu failures\n", c.pid,
           SIZE_TEXT(c.bytes), c.segments, limit == ABI_LIMIT_NONE ? "none" : SIZE_TEXT(limit), c.allocs, c.frees,
           c.failures);
}

static void cmd_map(int argc, char **argv)
{
    uint64_t columns = 0;
    if (argc > 2 || (argc == 2 && (!parse_number_word(argv[1], &columns) || columns > 200))) {
        print_usage("map");
        return;
    }
    int64_t err = ms_map((unsigned)columns);
    if (err < 0)
        print_error("map", err);
}

static void cmd_compact(int argc, char **argv)
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
        print_error(what, err);
        return;
    }
    struct ms_stats_global g;
    printf("compact %s: %lu move%s, %s moved", how, moves, moves == 1 ? "" : "s", SIZE_TEXT(moved));
    if (ms_stats_global(&g) == 0)
        printf("; largest free run %s, fragmentation score %lu/1000", SIZE_TEXT(g.largest_free), g.frag_score);
    printf("\n");
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

static void cmd_zoom(int argc, char **argv)
{
    uint64_t base, per_char;
    if (!parse_zoom(argc, argv, 1, &base, &per_char)) {
        print_usage("zoom");
        return;
    }
    int64_t err = ms_map_zoom(base, per_char, 64);
    if (err < 0)
        print_error("zoom", err);
}

#define WATCH_FRAME_NS (500ull * 1000 * 1000)
#define WATCH_SECONDS_MAX 120u

/* Redraws the map (or a zoom) twice a second for SECONDS, with the
 * compactor's figures, so fragmentation can be seen appearing and going. */
static void cmd_watch(int argc, char **argv)
{
    uint64_t seconds = 5, base = 0, per_char = 0;
    int zoom_at = 1;
    if (argc >= 2 && parse_number_word(argv[1], &seconds))
        zoom_at = 2;
    if (seconds == 0 || seconds > WATCH_SECONDS_MAX ||
        (argc > zoom_at && (strcmp(argv[zoom_at], "zoom") != 0 ||
                            !parse_zoom(argc, argv, zoom_at + 1, &base, &per_char)))) {
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
            print_error("watch", err);
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

static void cmd_poweroff(int argc, char **argv)
{
    uint64_t status = 0;
    if (argc > 2 || (argc == 2 && (!parse_number_word(argv[1], &status) || status > INIT_POWEROFF_STATUS_MAX))) {
        print_usage("poweroff");
        return;
    }
    handle_t init = libsys_startup ? libsys_startup->handles[ABI_STARTUP_PARENT] : HANDLE_NONE;
    if (init == HANDLE_NONE) {
        printf("error: poweroff: init gave memctl no service endpoint\n");
        return;
    }
    struct ipc_msg m;
    memset(&m, 0, sizeof(m));
    m.label = INIT_POWEROFF;
    m.seg = HANDLE_NONE;
    m.w[0] = status;
    printf("poweroff: asking init to power off with status %lu\n", status);
    int64_t err = sys_ipc_call(init, &m, TIMEOUT_FOREVER);
    if (err >= 0)
        err = (int64_t)m.label; /* only a refusal comes back */
    print_error("poweroff", err);
}

static void cmd_help(int argc, char **argv);

static const struct command commands[] = {
    { "alloc", cmd_alloc, "alloc SIZE [large] [below ADDR]",
      "new zero-filled segment (SIZE: 4096, 64K, 2M, 0x...); large: 2 MiB aligned; below: physical limit" },
    { "free", cmd_free, "free ID", "give the segment back to memsrv (refused while pinned)" },
    { "pin", cmd_pin, "pin ID", "pin for DMA: shows the physical base; the segment stops moving" },
    { "unpin", cmd_pin, "unpin ID", "undo one pin" },
    { "fill", cmd_fill, "fill ID PATTERN", "write PATTERN over the segment: a byte if <= 0xff, else 64-bit words" },
    { "check", cmd_check, "check ID", "verify the last fill (zero for a new segment), e.g. after compaction" },
    { "list", cmd_list, "list", "the segments memctl holds, with their current physical bases" },
    { "stats", cmd_stats, "stats", "memsrv's global statistics and memctl's own account" },
    { "map", cmd_map, "map [COLUMNS]", "memsrv's picture of physical memory ('.' free '#' used 'L' locked 'K' kernel)" },
    { "compact", cmd_compact, "compact [full|step|SIZE]",
      "compaction: a whole pass, one background step, or room for SIZE at 2 MiB alignment" },
    { "zoom", cmd_zoom, "zoom ADDR [4k|64k]", "16 rows of the map from ADDR, 4 KiB or 64 KiB a character" },
    { "watch", cmd_watch, "watch [SECONDS] [zoom ADDR [4k|64k]]",
      "redraw the map (or a zoom) twice a second while compaction runs (default 5 s)" },
    { "poweroff", cmd_poweroff, "poweroff [STATUS]", "ask init to power the machine off (STATUS 0..255, default 0)" },
    { "help", cmd_help, "help", "this list" },
};
#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

static void print_usage(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(commands[i].name, name) == 0)
            printf("usage: %s\n", commands[i].usage);
}

static void cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        printf("  %-32s %s\n", commands[i].usage, commands[i].help);
}

static void run_line(char *line)
{
    char *words[MEMCTL_WORDS_MAX];
    int n = split_words(line, words, MEMCTL_WORDS_MAX);
    if (n == 0)
        return;
    if (n < 0) {
        printf("error: more than %d words on the line\n", MEMCTL_WORDS_MAX);
        return;
    }
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        if (strcmp(commands[i].name, words[0]) == 0) {
            commands[i].run(n, words);
            return;
        }
    }
    printf("unknown command '%s' (try help)\n", words[0]);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (ms_endpoint() == HANDLE_NONE) {
        printf("memctl: no memory server endpoint; nothing to control\n");
        return 1;
    }
    printf("memctl: memory server console; type help for the commands\n");
    for (;;) {
        char line[MEMCTL_LINE_MAX];
        sys_console_write(MEMCTL_PROMPT, sizeof(MEMCTL_PROMPT) - 1);
        read_line(line, sizeof(line));
        run_line(line);
    }
}
