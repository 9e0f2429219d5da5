/*
 * In-guest suite: the memory server with several clients at once, run from
 * the suite because they need a parent: churn (clients compacted around
 * pinned ballast), a memory limit set on a child, and a segment revoked.
 * Sizes come from the machine: where its free memory lies and how much.
 */
#include <common/cmdline.h>
#include <common/string.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include "lowmem.h"
#include "suite.h"

#define CHURN_CLIENTS     3
#define CHURN_OPS_DEFAULT 1000
#define BALLAST_MAX       1024
#define WINDOW_STEP       (16 * SUITE_MIB)
/* The clients' live segments at most (t_mem's CHURN_LIVE_MAX). */
#define CHURN_LIVE_MAX 48
/* What t_mem's churn sizes average, roughly: for the live count. */
#define CHURN_MEAN_SEGMENT (300 * 1024ul)

static uint64_t clamp(uint64_t v, uint64_t lo, uint64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/*
 * Ballast: 1 MiB segments, pinned, filling every free MiB below a limit;
 * then every third one is freed, up to `room`: a small, scattered space to
 * churn in. The limit rises a step at a time until the ballast is three
 * times the room (lowmem_fill), so it lies wherever free memory is (above
 * the kernel's pool, say). NOWAIT stops each fill when the window is full
 * (rather than the server moving earlier ballast above the limit); pinning
 * keeps it from being moved later.
 */
struct ballast {
    struct ms_segment seg[BALLAST_MAX];
    unsigned count, room_mib; /* room_mib: wanted, then freed */
    uint64_t limit;
};

/* Pinned, 1 MiB; false when nothing fits below the limit or the table is full. */
static bool take_ballast(void *ctx, uint64_t limit)
{
    struct ballast *b = ctx;
    if (b->count == BALLAST_MAX ||
        ms_alloc(SUITE_MIB, 0, MS_ALLOC_BELOW | MS_ALLOC_NOWAIT, limit, &b->seg[b->count]) != 0)
        return false;
    sys_seg_pin(b->seg[b->count++].handle, suite_dma_device());
    return true;
}

static bool enough_ballast(void *ctx)
{
    const struct ballast *b = ctx;
    return b->count == BALLAST_MAX || b->count >= 3 * b->room_mib;
}

static void lay_ballast(struct ballast *b, unsigned room_mib)
{
    *b = (struct ballast){ .room_mib = room_mib };
    b->limit = lowmem_fill(WINDOW_STEP, take_ballast, enough_ballast, b);
    unsigned freed = 0;
    for (unsigned i = 0; i < b->count && freed < room_mib; i += 3, freed++) {
        sys_seg_unpin(b->seg[i].handle);
        ms_free(b->seg[i].handle);
        b->seg[i].handle = HANDLE_NONE;
    }
    /* Unpinned, their frames stay out of use until the device is told to
     * stop (without an IOMMU it could still reach them): stopping it
     * releases them for the clients. */
    sys_dev_dma(suite_dma_device(), false);
    b->room_mib = freed;
}

static void lift_ballast(struct ballast *b)
{
    for (unsigned i = 0; i < b->count; i++) {
        if (b->seg[i].handle != HANDLE_NONE) {
            sys_seg_unpin(b->seg[i].handle);
            ms_free(b->seg[i].handle);
        }
    }
    sys_dev_dma(suite_dma_device(), false);
}

/*
 * Several clients churn at once while background compaction runs; every
 * segment is checked before it is freed (by the clients), and compaction
 * must have moved segments meanwhile. The clients are started first (they
 * need room to load) and wait in a "ready" call until the ballast lies;
 * the reply gives them the window's limit and how many segments to keep,
 * enough that together they ask for about two and a half times the room.
 */
void test_churn(void)
{
    static struct ballast ballast;
    struct ms_stats_global g = { 0 };
    ms_stats_global(&g);
    unsigned room_mib = (unsigned)clamp(g.free_bytes / SUITE_MIB / 8, 4, 40);
    uint64_t live = clamp(room_mib * SUITE_MIB * 5 / 2 / (CHURN_CLIENTS * CHURN_MEAN_SEGMENT), 8, CHURN_LIVE_MAX);
    /* churn.ops=N on the kernel command line makes the run longer or shorter.
     * The default passes under Bochs in about half a minute; the matrix and
     * the soak make up in seeds what one run leaves out. */
    uint64_t ops = CHURN_OPS_DEFAULT;
    cmdline_get_u64(libsys_startup->args, "churn.ops", &ops);

    struct ms_stats_global before = { 0 }, after = { 0 };
    struct ms_stats_compaction split_before = { 0 }, split_after = { 0 };
    ms_stats_global(&before);
    ms_stats_compaction(&split_before);
    int64_t parent = sys_ep_create();
    struct loader_grant grant[ABI_STARTUP_HANDLES];
    suite_grants(grant);
    grant[ABI_STARTUP_PARENT] = (struct loader_grant){ parent < 0 ? HANDLE_NONE : (handle_t)parent, RIGHT_SEND };
    int64_t h[CHURN_CLIENTS];
    for (unsigned i = 0; i < CHURN_CLIENTS; i++) {
        char args[48];
        fmt_snprintf(args, sizeof(args), "churn %u ops=%lu", i, ops);
        h[i] = parent < 0 ? parent : suite_spawn("t_mem", args, grant);
    }
    lay_ballast(&ballast, room_mib);
    printf("suite: churn room: %u MiB free in %u MiB of ballast below %#lx; %lu live segments a client\n",
           ballast.room_mib, ballast.count, ballast.limit, live);
    for (unsigned i = 0; i < CHURN_CLIENTS; i++) {
        if (h[i] < 0)
            continue;
        struct ipc_msg m = { 0 };
        if (pace_recv((handle_t)parent, &m) != 0)
            break; /* the clients' waits below say the rest */
        m = (struct ipc_msg){ .w = { ballast.limit, live } };
        sys_ipc_reply(&m);
    }
    for (unsigned i = 0; i < CHURN_CLIENTS; i++) {
        int64_t status = 0;
        int64_t err = h[i] < 0 ? h[i] : suite_finish(h[i], &status);
        suite_count("churn", "t_mem", err, status);
    }
    ms_stats_compaction(&split_after);
    lift_ballast(&ballast);
    if (parent >= 0)
        sys_handle_close((handle_t)parent);
    ms_stats_global(&after);
    char why[160];
    fmt_snprintf(why, sizeof(why), "moves %lu -> %lu, compactions %lu -> %lu, free %lu -> %lu", before.moves,
                 after.moves, before.compactions, after.compactions, before.free_bytes, after.free_bytes);
    printf("suite: churn: %lu moves, %lu KiB moved, %lu compaction runs\n", after.moves - before.moves,
           (after.bytes_moved - before.bytes_moved) / 1024, after.compactions - before.compactions);
    uint64_t bg = split_after.bg_bytes - split_before.bg_bytes;
    uint64_t direct = split_after.direct_bytes - split_before.direct_bytes;
    printf("suite: churn: %lu KiB moved in the background, %lu KiB directly (%lu per mille in the background), "
           "%lu direct plans\n",
           bg / 1024, direct / 1024, bg + direct ? bg * 1000 / (bg + direct) : 0,
           split_after.direct_plans - split_before.direct_plans);
    char share[96];
    fmt_snprintf(share, sizeof(share), "%lu KiB in the background, %lu KiB directly", bg / 1024, direct / 1024);
    suite_record("churn_background_compaction_ran", bg > 0, share);
    /* The server's books grow and shrink with use: free memory and books
     * together must come out even. */
    suite_record("churn_compaction_moved",
                 after.moves > before.moves &&
                     after.free_bytes + after.books_bytes == before.free_bytes + before.books_bytes,
                 why);
}

/* A t_mem scenario that calls the suite on its PARENT endpoint: started,
 * and its first call received (`call`, 0 or the error) into m. */
struct partner {
    int64_t ep, proc, call;
    struct ipc_msg m;
};

static void partner_start(struct partner *p, const char *args)
{
    *p = (struct partner){ .ep = sys_ep_create() };
    struct loader_grant grant[ABI_STARTUP_HANDLES];
    suite_grants(grant);
    grant[ABI_STARTUP_PARENT] = (struct loader_grant){ p->ep < 0 ? HANDLE_NONE : (handle_t)p->ep, RIGHT_SEND };
    p->proc = p->ep < 0 ? p->ep : suite_spawn("t_mem", args, grant);
    p->call = p->proc < 0 ? p->proc : pace_recv((handle_t)p->ep, &p->m);
}

/* Replies `reply` to the first call, waits for the end and counts the
 * scenario's own checks under `name`. */
static void partner_end(struct partner *p, struct ipc_msg *reply, const char *name)
{
    if (p->call == 0)
        sys_ipc_reply(reply);
    int64_t status = 0;
    int64_t err = p->proc < 0 ? p->proc : suite_finish(p->proc, &status);
    suite_count(name, "t_mem", err, status);
    if (p->ep >= 0)
        sys_handle_close((handle_t)p->ep);
}

/* A client over its memory limit is refused while another (the suite) is
 * served. The limit is the kernel's, set on the child's process handle once
 * the client says it is ready. */
void test_quota(void)
{
    struct partner p;
    partner_start(&p, "quota-over");
    int64_t set = p.call == 0 ? sys_proc_limit((handle_t)p.proc, RES_MEMORY, SUITE_MIB) : p.call;
    struct ms_segment mine;
    int64_t other = ms_alloc(2 * SUITE_MIB, 0, 0, 0, &mine);
    struct ipc_msg reply = { 0 };
    partner_end(&p, &reply, "quota");
    char why[120];
    fmt_snprintf(why, sizeof(why), "limit %ld, the suite's own 2 MiB %ld", set, other);
    suite_record("quota_other_client_served", set == 0 && other == 0, why);
    if (other == 0)
        ms_free(mine.handle);
}

/* memsrv takes a segment back from a client on init's word: the client's
 * mapping goes away; a pinned segment is refused. */
void test_revoke(void)
{
    struct partner p;
    partner_start(&p, "revoke-me");
    int64_t plain = p.call == 0 ? delegate_ms_revoke(p.m.w[0]) : p.call;
    int64_t pinned = p.call == 0 ? delegate_ms_revoke(p.m.w[1]) : p.call;
    int64_t unknown = delegate_ms_revoke(0x7fff00000001ull);
    struct ipc_msg reply = { .w = { (uint64_t)plain, (uint64_t)pinned } };
    partner_end(&p, &reply, "revoke");
    char why[120];
    fmt_snprintf(why, sizeof(why), "revoking an unknown sid gave %ld", unknown);
    suite_record("revoke_unknown_sid", unknown == -ENOENT, why);
}
