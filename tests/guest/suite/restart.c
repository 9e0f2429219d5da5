/*
 * In-guest suite: the memory server killed and faulted under its clients,
 * restarted by init's supervisor (servers/init/supervise.c), its books
 * rebuilt from the kernel (servers/memsrv/rebuild.c). The suite reaches
 * the server's process only through init: INIT_MS_RESTART kills it (an
 * ordered end, not counted as a crash), INIT_MS_FAULT makes it fault,
 * INIT_MS_STATUS tells what the supervisor saw (proto/init.h). Clients are
 * t_restart (protocol in ../programs/restart.h); they check their own
 * data. The suite checks that they finished, that the server restarted,
 * and that free memory (with the server's books, which a restarted server
 * sizes afresh) comes back exactly to where it was.
 *
 *   restart_churn        three clients churning and passing checksummed
 *                        segments around; the server is killed mid-way
 *   restart_compaction   a full compaction with a migration in flight:
 *                        the server faults right after the kernel moved a
 *                        segment (MS_FAULT_AFTER_MIGRATE); then a kill
 *                        while a full compaction runs
 *   restart_dma          a pinned page under edu's DMA engine, the server
 *                        killed while transfers run (skipped without edu)
 *   restart_fault        faults, not kills: at once, with clients running;
 *                        after a client's segment is made and before the
 *                        reply; after reclaimed segments are taken and
 *                        before they are freed
 *   restart_ten          ten restarts in a row with the clients running
 *   restart_give_up      (only when named: it ends the machine) faults
 *                        until the supervisor gives up and powers off with
 *                        INIT_SHUTDOWN_MEMSRV_LOST
 */
#include <proto/init.h>
#include <common/cmdline.h>
#include <common/edu.h>
#include <common/string.h>
#include <libsys/malloc.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include "restart.h"
#include "suite.h"

#define CLIENTS 3
/* Tries for a kill that lands while a full compaction runs: at 16 MiB the
 * holder has at most about 530 segments and the pass over them may end
 * before the kill in try after try (CI once missed all of 6, at 16 MiB with
 * 2 CPUs, seed 3377047499; a try costs a restart, about 0.2 s). */
#define COMPACT_TRIES      16
#define BENCH_SEGMENTS_MAX 65536

struct supervisor_status {
    uint64_t restarts, crashes, recovery_ns;
    int64_t last_end;
};

static int64_t supervisor_status(struct supervisor_status *st)
{
    struct ipc_msg m = { .label = INIT_MS_STATUS };
    int64_t err = delegate_call(&m);
    *st = (struct supervisor_status){ m.w[0], m.w[2], m.w[3], (int64_t)m.w[1] };
    return err;
}

/* Sleeps until init would kill the server at once when asked: an asked
 * restart waits until the server running has answered for
 * INIT_MS_UP_FACTOR times its last recovery, at most that long from now.
 * Scenarios whose kill must come at a moment of their choosing call it
 * before they set that moment up. */
static void until_restart_allowed(const struct supervisor_status *st)
{
    sys_sleep(INIT_MS_UP_FACTOR * st->recovery_ns);
}

/* Kills the server through init; with `wait`, returns once its successor
 * answered (*recovery_ns: from the end to that answer). */
static int64_t restart_server(bool wait, uint64_t *recovery_ns)
{
    struct ipc_msg m = { .label = INIT_MS_RESTART, .w = { wait ? INIT_MS_RESTART_WAIT : 0 } };
    int64_t err = delegate_call(&m);
    if (recovery_ns)
        *recovery_ns = m.w[1];
    return err;
}

static int64_t fault_server(uint64_t when, bool *ended)
{
    struct ipc_msg m = { .label = INIT_MS_FAULT, .w = { when } };
    int64_t err = delegate_call(&m);
    if (ended)
        *ended = err == 0 && m.w[0] == 1;
    return err;
}

/* Until the supervisor has seen `target` restarts through (polled: init
 * answers at once), within the suite's budget for any wait. */
static bool await_restarts(uint64_t target, struct supervisor_status *st)
{
    uint64_t deadline = sys_clock() + PACE_HANG_UNITS * pace_unit_ns();
    while (supervisor_status(st) == 0 && st->restarts < target) {
        if (sys_clock() > deadline)
            return false;
        sys_sleep(NS_PER_MS);
    }
    return st->restarts >= target;
}

/* Free memory and the server's books together: a restarted server sizes
 * its books afresh, and they grow and shrink with use anyway. */
static uint64_t free_and_books(void)
{
    struct ms_stats_global g = { 0 };
    ms_stats_global(&g);
    return g.free_bytes + g.books_bytes;
}

/* What ended processes and closed endpoints left comes back through the
 * kernel's reclaim list, which the server drains on its own thread: on
 * several CPUs the last of it may still be on its way when the processes'
 * waits return. Memory gets up to a second to come back; a leak never
 * does. */
#define MEMORY_BACK_TRIES 1000u

static void record_memory_back(const char *name, uint64_t before)
{
    char check[64], why[160];
    uint64_t after = free_and_books();
    for (unsigned i = 0; i < MEMORY_BACK_TRIES && after != before; i++) {
        sys_sleep(NS_PER_MS);
        after = free_and_books();
    }
    struct abi_kinfo k = { 0 };
    sys_kinfo(&k);
    fmt_snprintf(check, sizeof(check), "%s_memory_back", name);
    fmt_snprintf(why, sizeof(why), "free + books %lu -> %lu bytes (%ld)", before, after, (int64_t)(after - before));
    printf("suite: %s: free + books %lu KiB, kernel pool %lu frames free\n", name, after >> 10, k.pool_frames_free);
    suite_record(check, after == before, why);
}

/* ---- the churn crew ---------------------------------------------------- */

struct crew {
    int64_t parent, ring[CLIENTS], stop[CLIENTS], proc[CLIENTS];
    unsigned ready;
};

static uint64_t clamp(uint64_t v, uint64_t lo, uint64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Three churn clients in a ring, started and under way (each said ready). */
static void crew_start(struct crew *c, uint64_t ops)
{
    struct ms_stats_global stats = { 0 };
    ms_stats_global(&stats);
    /* Together about an eighth of free memory: 24 live segments a client,
     * of 1 to `pages` pages. */
    uint64_t pages = clamp(stats.free_bytes / 8 / (CLIENTS * 24 * 2048), 2, 64);
    *c = (struct crew){ .parent = sys_ep_create() };
    for (unsigned i = 0; i < CLIENTS; i++) {
        c->ring[i] = sys_ep_create();
        c->stop[i] = sys_notify_create();
        c->proc[i] = -EINVAL;
    }
    for (unsigned i = 0; i < CLIENTS; i++) {
        struct loader_grant g[ABI_STARTUP_HANDLES];
        char args[96];
        if (c->parent < 0 || c->ring[i] < 0 || c->stop[i] < 0 || c->ring[(i + 1) % CLIENTS] < 0)
            continue;
        suite_grants(g);
        g[ABI_STARTUP_PARENT] = (struct loader_grant){ (handle_t)c->parent, RIGHT_SEND };
        g[ABI_STARTUP_SERVICE] = (struct loader_grant){ (handle_t)c->ring[i], RIGHT_SEND | RIGHT_RECV };
        g[RESTART_SLOT_PEER] = (struct loader_grant){ (handle_t)c->ring[(i + 1) % CLIENTS], RIGHT_SEND };
        g[RESTART_SLOT_STOP] = (struct loader_grant){ (handle_t)c->stop[i], RIGHT_WAIT };
        fmt_snprintf(args, sizeof(args), "churn %u ops=%lu live=24 pages=%lu", i, ops, pages);
        c->proc[i] = suite_spawn("t_restart", args, g);
    }
    for (unsigned i = 0; i < CLIENTS; i++) {
        struct ipc_msg m = { 0 };
        if (c->proc[i] >= 0 && pace_recv((handle_t)c->parent, &m) == 0 && m.label == RESTART_READY)
            c->ready++;
    }
}

static void crew_stop(struct crew *c)
{
    for (unsigned i = 0; i < CLIENTS; i++)
        if (c->stop[i] >= 0)
            sys_notify_signal((handle_t)c->stop[i], 1);
}

/* Stops the clients, waits for them and counts their checks under name. */
static void crew_finish(struct crew *c, const char *name)
{
    crew_stop(c);
    for (unsigned i = 0; i < CLIENTS; i++) {
        int64_t status = 0, err = c->proc[i] < 0 ? c->proc[i] : suite_finish(c->proc[i], &status);
        suite_count(name, "t_restart", err, status);
    }
    for (unsigned i = 0; i < CLIENTS; i++) {
        if (c->ring[i] >= 0)
            sys_handle_close((handle_t)c->ring[i]);
        if (c->stop[i] >= 0)
            sys_handle_close((handle_t)c->stop[i]);
    }
    if (c->parent >= 0)
        sys_handle_close((handle_t)c->parent);
}

static uint64_t churn_ops(void)
{
    uint64_t ops = 300;
    cmdline_get_u64(libsys_startup->args, "restart.ops", &ops);
    return ops;
}

/* The supervisor and the new server agree that one more restart happened,
 * and the server's books passed their check (it would not answer else). */
static void record_restarted(const char *name, const struct supervisor_status *before, bool waited,
                             const struct supervisor_status *after)
{
    char check[64], why[200];
    struct ms_stats_restart r = { 0 };
    int64_t got = ms_stats_restart(&r);
    char books[80] = "";
    int64_t checked = ms_check(books, sizeof(books));
    fmt_snprintf(check, sizeof(check), "%s_restarted", name);
    fmt_snprintf(why, sizeof(why), "waited %d, restarts %lu -> %lu, the server says restart %lu (%ld), check %ld %s",
                 waited, before->restarts, after->restarts, r.restarts, got, checked, books);
    printf("suite: %s: restart %lu: rebuilt in %lu us, %lu segments, %lu clients, %lu freed at start; %lu us to "
           "the first answer\n",
           name, r.restarts, r.rebuild_ns / 1000, r.segments, r.clients, r.freed_at_start, after->recovery_ns / 1000);
    suite_record(check, waited && after->restarts > before->restarts && got == 0 && r.restarts > 0 && checked == 0,
                 why);
}

/* ---- scenarios --------------------------------------------------------- */

/* Killed in the middle of churn: every client finishes with its data. */
static void churn_killed(void)
{
    struct supervisor_status before, after;
    struct crew c;
    uint64_t baseline = free_and_books();
    supervisor_status(&before);
    until_restart_allowed(&before);
    crew_start(&c, churn_ops());
    int64_t killed = c.ready == CLIENTS ? restart_server(false, 0) : -EAGAIN;
    bool waited = killed == 0 && await_restarts(before.restarts + 1, &after);
    crew_finish(&c, "restart_churn");
    char why[80];
    fmt_snprintf(why, sizeof(why), "%u clients under way, kill %ld", c.ready, killed);
    suite_record("restart_churn_killed_mid_way", c.ready == CLIENTS && killed == 0, why);
    supervisor_status(&after);
    record_restarted("restart_churn", &before, waited, &after);
    record_memory_back("restart_churn", baseline);
}

/* Ten restarts in a row, the clients running through all of them. */
static void ten_in_a_row(void)
{
    struct supervisor_status before, after;
    struct crew c;
    uint64_t baseline = free_and_books(), worst = 0, total = 0, last = 0, started = 0, took = 0;
    unsigned done = 0;
    int64_t err = 0;
    supervisor_status(&before);
    crew_start(&c, churn_ops());
    started = sys_clock();
    for (; done < 10 && err == 0 && c.ready == CLIENTS; done++) {
        uint64_t recovery = 0;
        err = restart_server(true, &recovery);
        total += recovery;
        last = recovery;
        worst = recovery > worst ? recovery : worst;
    }
    took = sys_clock() - started;
    crew_finish(&c, "restart_ten");
    supervisor_status(&after);
    char why[120];
    fmt_snprintf(why, sizeof(why), "%u restarts done (%s), supervisor count %lu -> %lu", done,
                 err < 0 ? sys_strerror(err) : "ok", before.restarts, after.restarts);
    printf("suite: restart_ten: first answers %lu us on average, %lu us at worst\n", done ? total / done / 1000 : 0,
           worst / 1000);
    suite_record("restart_ten_in_a_row", done == 10 && err == 0 && after.restarts == before.restarts + 10, why);
    /* Each kill after the first waited until its predecessor had been up
     * INIT_MS_UP_FACTOR times its recovery (sleeps never end early). */
    uint64_t up_at_least = done == 10 ? INIT_MS_UP_FACTOR * (total - last) : 0;
    fmt_snprintf(why, sizeof(why), "ten restarts took %lu us; recoveries %lu us, so the server was up at least %lu us",
                 took / 1000, total / 1000, up_at_least / 1000);
    printf("suite: restart_ten: %s\n", why);
    suite_record("restart_ten_server_mostly_up", done == 10 && took >= total + up_at_least, why);
    record_restarted("restart_ten", &before, done == 10, &after);
    record_memory_back("restart_ten", baseline);
}

/* A holder of fragmented memory: started, its segments laid out. */
struct holder {
    int64_t parent, stop, proc;
    bool ready;
    uint64_t moved, kept; /* its report at the end */
};

static void holder_start(struct holder *h, uint64_t count)
{
    struct loader_grant g[ABI_STARTUP_HANDLES];
    char args[64];
    struct ipc_msg m = { 0 };
    *h = (struct holder){ .parent = sys_ep_create(), .stop = sys_notify_create(), .proc = -EINVAL };
    if (h->parent < 0 || h->stop < 0)
        return;
    suite_grants(g);
    g[ABI_STARTUP_PARENT] = (struct loader_grant){ (handle_t)h->parent, RIGHT_SEND };
    g[RESTART_SLOT_STOP] = (struct loader_grant){ (handle_t)h->stop, RIGHT_WAIT };
    fmt_snprintf(args, sizeof(args), "holder count=%lu pages=1", count);
    h->proc = suite_spawn("t_restart", args, g);
    h->ready = h->proc >= 0 && pace_recv((handle_t)h->parent, &m) == 0 && m.label == RESTART_READY;
}

static void holder_finish(struct holder *h, const char *name)
{
    int64_t status = 0, err;
    struct ipc_msg m = { 0 };
    if (h->stop >= 0)
        sys_notify_signal((handle_t)h->stop, 1);
    if (h->ready && pace_recv((handle_t)h->parent, &m) == 0 && m.label == RESTART_REPORT) {
        h->moved = m.w[0];
        h->kept = m.w[1];
    }
    err = h->proc < 0 ? h->proc : suite_finish(h->proc, &status);
    suite_count(name, "t_restart", err, status);
    if (h->stop >= 0)
        sys_handle_close((handle_t)h->stop);
    if (h->parent >= 0)
        sys_handle_close((handle_t)h->parent);
}

/* How many 4 KiB segments make a compaction long enough to be caught in
 * the middle (a migration costs a system call whatever its size): an
 * eighth of free memory, 1024 to 4096 of them, and never more than half
 * of it (*most). */
static uint64_t holder_count(uint64_t *most)
{
    struct ms_stats_global g = { 0 };
    ms_stats_global(&g);
    *most = clamp(g.free_bytes / 2 / 4096, 16, 4096);
    return clamp(g.free_bytes / 8 / 4096, 1024, *most);
}

static struct {
    int64_t result;
    uint64_t moves;
} compactor;
static uint8_t compactor_stack[16384] __attribute__((aligned(16)));

/* A full compaction, called directly (libsys would wait for a successor):
 * -EPEER says the server ended while it ran. */
static void compact_directly(uint64_t unused)
{
    (void)unused;
    struct ipc_msg m = { .label = MS_COMPACT, .w = { MS_COMPACT_FULL }, .seg = HANDLE_NONE };
    compactor.result = sys_ipc_call(ms_endpoint(), &m, TIMEOUT_FOREVER);
    compactor.moves = compactor.result == 0 ? m.w[0] : 0;
    sys_thread_exit();
}

/* The server's count of requests that waited for the compactor: read
 * before compact_directly starts, since on another CPU its call may be
 * taken before the caller looks. */
static uint64_t waited_requests(void)
{
    struct ms_stats_compaction c = { 0 };
    ms_stats_compaction(&c);
    return c.waited_requests;
}

/* Until the server has taken compact_directly's call (a request waits:
 * more than waited_before) and moved a segment since, or the call ended,
 * or a hang budget passed: whether the move was seen. */
static bool await_full_compaction_moving(uint64_t waited_before)
{
    struct ms_stats_compaction c = { 0 };
    uint64_t deadline = sys_clock() + PACE_HANG_UNITS * pace_unit_ns(), moves_taken = 0;
    bool taken = false;
    while (__atomic_load_n(&compactor.result, __ATOMIC_ACQUIRE) == 1 && sys_clock() < deadline) {
        if (ms_stats_compaction(&c) == 0) {
            if (!taken && c.waited_requests > waited_before) {
                taken = true;
                moves_taken = c.bg_moves;
            } else if (taken && c.bg_moves > moves_taken) {
                return true;
            }
        }
        sys_sleep(50 * NS_PER_US);
    }
    return false;
}

static void compaction(void)
{
    struct supervisor_status before, after;
    struct holder h;
    uint64_t baseline = free_and_books(), most, count = holder_count(&most), moves = 0;
    char why[160];

    /* The fault comes right after the kernel carried out a migration and
     * before the books heard of it: the new books take the segment from
     * where the kernel says it is. */
    supervisor_status(&before);
    holder_start(&h, count);
    int64_t armed = h.ready ? fault_server(MS_FAULT_AFTER_MIGRATE, 0) : -EAGAIN;
    int64_t compacted = armed == 0 ? ms_compact(MS_COMPACT_FULL, 0, 0, 0, &moves, 0) : armed;
    struct supervisor_status mid = before;
    supervisor_status(&mid);
    if (armed == 0 && compacted == 0 && mid.restarts == before.restarts) {
        /* The background compactor had already put the holder's segments
         * together (on several CPUs it may), so the full pass moved nothing
         * and the fault waits. A MOVE migrates for certain. */
        struct ms_segment s;
        compacted = ms_alloc(4096, 0, 0, 0, &s);
        if (compacted == 0) {
            compacted = ms_move(s.sid);
            ms_free(s.handle);
        }
    }
    bool waited = armed == 0 && await_restarts(before.restarts + 1, &after);
    holder_finish(&h, "restart_compaction");
    supervisor_status(&after);
    fmt_snprintf(why, sizeof(why), "armed %ld, compaction %ld (%lu moves by the new server), last end %ld", armed,
                 compacted, moves, after.last_end);
    suite_record("restart_compaction_fault_after_migration",
                 armed == 0 && compacted == 0 && after.last_end == ABI_EXIT_FAULT(14), why);
    record_restarted("restart_compaction", &before, waited, &after);

    /* Killed while a full compaction runs: the kill comes once the server
     * has taken the call and moved a segment since (its statistics say
     * so), not after a guessed delay, which a busy host stretches. Caught
     * when the call was then cut short (-EPEER); the holder checks its
     * segments wherever they are. A compaction that ended before the kill
     * let the call return (more segments next time). */
    unsigned tries = 0;
    bool caught = false;
    while (!caught && tries++ < COMPACT_TRIES) {
        supervisor_status(&before);
        until_restart_allowed(&before);
        holder_start(&h, count);
        compactor.result = 1;
        uint64_t waited_before = waited_requests();
        int64_t thread =
            h.ready ? sys_thread_create(compact_directly, compactor_stack + sizeof(compactor_stack), 0) : -EAGAIN;
        int64_t killed = -EAGAIN;
        bool seen_moving = false;
        if (thread >= 0) {
            seen_moving = await_full_compaction_moving(waited_before);
            killed = restart_server(false, 0);
            sys_thread_wait((handle_t)thread, TIMEOUT_FOREVER);
        }
        waited = killed == 0 && await_restarts(before.restarts + 1, &after);
        holder_finish(&h, "restart_compaction");
        caught = killed == 0 && compactor.result == -EPEER && seen_moving;
        printf("suite: restart_compaction: kill %ld %s: the compaction %s (%s), %lu of %lu segments moved "
               "(try %u)\n",
               killed, seen_moving ? "once it moved" : "with no move seen",
               compactor.result == 0 ? "was done" : "was cut short", sys_strerror(compactor.result), h.moved, h.kept,
               tries);
        if (compactor.result == 0)
            count = count * 2 > most ? most : count * 2;
    }
    fmt_snprintf(why, sizeof(why), "in %u tries no kill came while the compaction ran", tries - 1);
    suite_record("restart_compaction_killed_while_running", caught, why);
    record_restarted("restart_compaction_kill", &before, waited, &after);
    record_memory_back("restart_compaction", baseline);
}

/* Killed while a device copies in and out of a pinned page. */
static void dma_running(void)
{
    int64_t dev = sys_dev_open(EDU_VENDOR, EDU_DEVICE, 0);
    if (dev < 0) {
        suite_skip("restart_dma", "no edu device (Bochs, or QEMU without --edu)");
        return;
    }
    struct supervisor_status before, after;
    uint64_t baseline = free_and_books();
    int64_t parent = sys_ep_create(), stop = sys_notify_create(), proc = -EINVAL, status = 0;
    struct loader_grant g[ABI_STARTUP_HANDLES];
    struct ipc_msg m = { 0 };
    supervisor_status(&before);
    until_restart_allowed(&before);
    suite_grants(g);
    g[ABI_STARTUP_DEVICE] = (struct loader_grant){ (handle_t)dev, RIGHTS_SAME };
    g[ABI_STARTUP_PARENT] = (struct loader_grant){ (handle_t)parent, RIGHT_SEND };
    g[RESTART_SLOT_STOP] = (struct loader_grant){ (handle_t)stop, RIGHT_WAIT };
    if (parent >= 0 && stop >= 0)
        proc = suite_spawn("t_restart", "dma rounds=3", g);
    bool ready = proc >= 0 && pace_recv((handle_t)parent, &m) == 0 && m.label == RESTART_READY;
    int64_t killed = ready ? restart_server(false, 0) : -EAGAIN;
    bool waited = killed == 0 && await_restarts(before.restarts + 1, &after);
    struct ms_stats_restart r = { 0 };
    ms_stats_restart(&r);
    uint64_t moves = 0;
    int64_t compacted = ms_compact(MS_COMPACT_FULL, 0, 0, 0, &moves, 0);
    sys_notify_signal((handle_t)stop, 1);
    int64_t err = proc < 0 ? proc : suite_finish(proc, &status);
    suite_count("restart_dma", "t_restart", err, status);
    char why[120];
    fmt_snprintf(why, sizeof(why), "kill %ld, %lu segments locked for DMA in the new books, compaction %ld", killed,
                 r.locked_dma, compacted);
    suite_record("restart_dma_pinned_locked", killed == 0 && r.locked_dma >= 1 && compacted == 0, why);
    supervisor_status(&after);
    record_restarted("restart_dma", &before, waited, &after);
    sys_handle_close((handle_t)stop);
    sys_handle_close((handle_t)parent);
    sys_handle_close((handle_t)dev);
    record_memory_back("restart_dma", baseline);
}

/* Faults, not kills: the supervisor sees a CPU exception. */
static void faults(void)
{
    struct supervisor_status before, after;
    struct crew c;
    char why[160];
    uint64_t baseline = free_and_books();

    /* At once, with clients running. */
    supervisor_status(&before);
    crew_start(&c, churn_ops());
    bool ended = false;
    int64_t faulted = c.ready == CLIENTS ? fault_server(MS_FAULT_NOW, &ended) : -EAGAIN;
    bool waited = faulted == 0 && await_restarts(before.restarts + 1, &after);
    crew_finish(&c, "restart_fault");
    supervisor_status(&after);
    fmt_snprintf(why, sizeof(why), "fault %ld, ended %d, the supervisor saw %ld", faulted, ended, after.last_end);
    suite_record("restart_fault_now", faulted == 0 && ended && after.last_end == ABI_EXIT_FAULT(14), why);
    record_restarted("restart_fault_now", &before, waited, &after);

    /* After the kernel made a client's segment, before the reply: the
     * segment was the server's, and its successor frees it. */
    struct ms_segment seg = { HANDLE_NONE, 0, 0, 0 };
    supervisor_status(&before);
    int64_t armed = fault_server(MS_FAULT_AFTER_CREATE, 0);
    int64_t got = armed == 0 ? ms_alloc(64 * 1024, 0, 0, 0, &seg) : armed;
    waited = armed == 0 && await_restarts(before.restarts + 1, &after);
    struct ms_stats_restart r = { 0 };
    ms_stats_restart(&r);
    bool intact = got == 0 && seg.size == 64 * 1024 && ((uint64_t *)seg.addr)[seg.size / 8 - 1] == 0;
    if (got == 0)
        ms_free(seg.handle);
    fmt_snprintf(why, sizeof(why), "armed %ld, the allocation %ld (zeroed %d), %lu segments freed at the restart",
                 armed, got, intact, r.freed_at_start);
    suite_record("restart_fault_after_create", armed == 0 && got == 0 && intact && r.freed_at_start >= 1, why);
    supervisor_status(&after);
    record_restarted("restart_fault_after_create", &before, waited, &after);

    /* After taking reclaimed segments off the kernel's list and before
     * freeing them: the successor finds them reported, and frees them. */
    supervisor_status(&before);
    armed = fault_server(MS_FAULT_AFTER_RECLAIM, 0);
    int64_t status = 0, ran = armed == 0 ? suite_run("t_victim", "threads-then-exit", 0, &status) : armed;
    waited = armed == 0 && await_restarts(before.restarts + 1, &after);
    ms_stats_restart(&r);
    fmt_snprintf(why, sizeof(why), "armed %ld, the process ran %ld (status %ld), %lu segments freed at the restart",
                 armed, ran, status, r.freed_at_start);
    suite_record("restart_fault_after_reclaim", armed == 0 && ran == 0 && status == 0 && r.freed_at_start >= 1, why);
    supervisor_status(&after);
    record_restarted("restart_fault_after_reclaim", &before, waited, &after);
    record_memory_back("restart_fault", baseline);
}

void test_restart(bool (*selected)(const char *name))
{
    static const struct {
        const char *name;
        void (*run)(void);
    } cases[] = {
        { "restart_churn", churn_killed }, { "restart_compaction", compaction }, { "restart_dma", dma_running },
        { "restart_fault", faults },       { "restart_ten", ten_in_a_row },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (selected(cases[i].name))
            cases[i].run();
}

/* Faults until the supervisor gives up: init powers the machine off with
 * INIT_SHUTDOWN_MEMSRV_LOST, so a return from here is a failure. */
void test_restart_give_up(const char *list, size_t len)
{
    /* Named, not picked by cmdline_list_has: "all" must not end the run. */
    const char *item;
    size_t item_len, pos = 0;
    bool named = false;
    while (!named && cmdline_list_next(list, len, &pos, &item, &item_len))
        named = cmdline_item_is(item, item_len, "restart_give_up");
    if (!named)
        return;
    struct supervisor_status st;
    supervisor_status(&st);
    for (unsigned crash = 1; crash <= INIT_MS_CRASHES_MAX + 1; crash++) {
        bool ended = false;
        uint64_t target = st.restarts + 1;
        printf("suite: restart_give_up: fault %u (the supervisor gives up at %u within %lu s)\n", crash,
               INIT_MS_CRASHES_MAX, (uint64_t)(INIT_MS_CRASH_WINDOW_NS / 1000000000ull));
        fault_server(MS_FAULT_NOW, &ended);
        if (!await_restarts(target, &st))
            break;
    }
    suite_record("restart_give_up", false, "the supervisor neither gave up nor restarted the server");
}

/* ---- bench=restart ------------------------------------------------------ */

/* A memsrv call through libsys (the retrying wrapper) and the same call
 * made directly: what the wrapper costs when nothing goes wrong. */
static void bench_retry_overhead(void)
{
    enum { CALLS = 2000 };
    struct ms_stats_global g;
    uint64_t t0 = sys_clock();
    for (unsigned i = 0; i < CALLS; i++)
        ms_stats_global(&g);
    uint64_t t1 = sys_clock();
    for (unsigned i = 0; i < CALLS; i++) {
        struct ipc_msg m = { .label = MS_STATS, .w = { MS_STATS_GLOBAL }, .seg = HANDLE_NONE };
        sys_ipc_call(ms_endpoint(), &m, TIMEOUT_FOREVER);
    }
    uint64_t t2 = sys_clock();
    printf("BENCH memsrv_stats_call_libsys %lu ns\n", (t1 - t0) / CALLS);
    printf("BENCH memsrv_stats_call_direct %lu ns\n", (t2 - t1) / CALLS);
}

/* One kill and what follows it, with `extra` more 4 KiB segments live:
 * from the kill to the first allocation served (a client's view: it is
 * refused, sleeps and tries again until a successor answers), and the
 * supervisor's and the server's own figures. */
static bool bench_recovery(handle_t *held, uint64_t extra)
{
    struct supervisor_status before, after;
    struct ms_segment seg;
    uint64_t have = 0;
    for (; have < extra; have++) {
        if (ms_alloc(4096, 0, MS_ALLOC_NOWAIT, 0, &seg) != 0)
            break;
        held[have] = seg.handle;
    }
    supervisor_status(&before);
    until_restart_allowed(&before);
    uint64_t t0 = sys_clock();
    int64_t killed = restart_server(false, 0);
    int64_t got = killed == 0 ? ms_alloc(4096, 0, 0, 0, &seg) : killed;
    uint64_t t1 = sys_clock();
    bool waited = got == 0 && await_restarts(before.restarts + 1, &after);
    struct ms_stats_restart r = { 0 };
    ms_stats_restart(&r);
    if (got == 0)
        ms_free(seg.handle);
    while (have > 0)
        ms_free(held[--have]);
    if (!waited) {
        printf("suite: bench restart: no restart (kill %ld, allocation %ld)\n", killed, got);
        return false;
    }
    printf("BENCH restart_first_alloc_segs_%lu %lu us\n", r.segments, (t1 - t0) / 1000);
    printf("BENCH restart_first_answer_segs_%lu %lu us\n", r.segments, after.recovery_ns / 1000);
    printf("BENCH restart_rebuild_segs_%lu %lu us\n", r.segments, r.rebuild_ns / 1000);
    printf("suite: bench restart: %lu segments, %lu list calls, %lu freed at start\n", r.segments, r.list_calls,
           r.freed_at_start);
    return true;
}

void bench_restart(void)
{
    struct ms_stats_global g = { 0 };
    ms_stats_global(&g);
    /* Up to half of free memory in 4 KiB segments. */
    uint64_t most = clamp(g.free_bytes / 2 / 4096, 0, BENCH_SEGMENTS_MAX);
    handle_t *held = malloc(most * sizeof(*held));
    bench_retry_overhead();
    if (held == NULL) {
        suite_record("b_restart", false, "no memory for the handle table");
        return;
    }
    static const uint64_t counts[] = { 0, 1000, 10000, 30000, BENCH_SEGMENTS_MAX };
    bool ok = true;
    for (size_t i = 0; ok && i < sizeof(counts) / sizeof(counts[0]); i++) {
        ok = bench_recovery(held, counts[i] < most ? counts[i] : most);
        if (counts[i] >= most)
            break;
    }
    free(held);
    suite_record("b_restart", ok, "a restart did not complete");
}
