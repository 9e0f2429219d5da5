/*
 * In-guest test program: a client that keeps working while the suite
 * kills or faults the memory server under it (tests/guest/suite/restart.c,
 * protocol in restart.h). Every call on memsrv goes through libsys's client,
 * which waits out a restart; what this program checks is that its work
 * finishes and its data comes through. The argument picks the work:
 *   churn I ops=K live=L pages=P   one of three clients in a ring: random
 *               allocations (up to P pages), frees, moves and transfers of
 *               checksummed segments to the next client (at most L live),
 *               K operations at least and until the suite says stop; a
 *               thread receives the previous client's segments and checks
 *               them. Every segment is checked before it is freed.
 *   holder count=N pages=P   N checksummed segments of P pages, every other
 *               one freed to leave holes for a compaction to close; waits
 *               for stop, then checks the rest wherever they were moved
 *               and tells the suite how many moved.
 *   dma rounds=K   QEMU's edu device copies a pinned page to its buffer and
 *               back, K rounds at least and until stop; each round is
 *               compared, and the pinned segment must not have moved.
 */
#include <abi/ipc.h>
#include <common/cmdline.h>
#include <common/edu.h>
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/sync.h>
#include <libsys/syscall.h>
#include <libsys/test.h>
#include "restart.h"

#define PAGE     4096ul
#define LIVE_MAX 64
#define HELD_MAX 4096
/* A client that is never told to stop ends here (the suite's budget ends
 * sooner, and says so). */
#define OPS_CAP        1000000u
#define RECEIVER_STACK 16384
#define EDU_WAIT_UNITS 5000u

static struct test_run t;

/* Tells the suite this client is under way. */
static bool say_ready(uint64_t index, uint64_t count)
{
    struct ipc_msg m = { .label = RESTART_READY, .w = { index, count }, .seg = HANDLE_NONE };
    return sys_ipc_send(startup_handle(ABI_STARTUP_PARENT), &m, test_budget_ns(&t, 80000)) == 0;
}

static bool told_to_stop(void) { return sys_notify_wait(startup_handle(RESTART_SLOT_STOP), TIMEOUT_POLL) > 0; }

/* ---- churn ----------------------------------------------------------- */

struct live {
    struct ms_segment seg[LIVE_MAX];
    unsigned count;
    struct mutex lock; /* the receiver thread adds what it receives */
};

static struct live live;
static uint8_t receiver_stack[RECEIVER_STACK] __attribute__((aligned(16)));
/* Counted by both threads; read once both are done. */
static struct {
    uint64_t checked, broken, received, sent, moved, alloc_errors, free_errors, send_errors;
    int64_t first_error;
} tally;

static void note_error(uint64_t *counter, int64_t err)
{
    (*counter)++;
    if (tally.first_error == 0)
        tally.first_error = err;
}

/* Checks a segment's contents (counting) and gives it back. */
static void check_and_free(const struct ms_segment *s)
{
    int64_t err;
    tally.checked++;
    if (!restart_intact(s->addr, s->size)) {
        if (tally.broken++ == 0)
            printf("t_restart: sid %lu (%lu bytes at %p) lost its contents\n", s->sid, s->size, s->addr);
    }
    err = ms_free(s->handle);
    if (err != 0)
        note_error(&tally.free_errors, err);
}

/* Adds a segment to the live set; false (and nothing added) when it is full. */
static bool keep(const struct ms_segment *s)
{
    bool kept;
    mutex_lock(&live.lock);
    kept = live.count < LIVE_MAX;
    if (kept)
        live.seg[live.count++] = *s;
    mutex_unlock(&live.lock);
    return kept;
}

/* Takes a random segment out of the live set. */
static bool take_any(struct ms_segment *out)
{
    bool got;
    mutex_lock(&live.lock);
    got = live.count > 0;
    if (got) {
        unsigned i = (unsigned)(test_rand(&t) % live.count);
        *out = live.seg[i];
        live.seg[i] = live.seg[--live.count];
    }
    mutex_unlock(&live.lock);
    return got;
}

/* The previous client's segments, checked and kept (or freed). */
static void receiver(uint64_t unused)
{
    (void)unused;
    for (;;) {
        struct ipc_msg m = { .seg = HANDLE_NONE };
        if (sys_ipc_recv(startup_handle(ABI_STARTUP_SERVICE), &m, TIMEOUT_FOREVER) != 0 || m.label == RESTART_DONE)
            break;
        if (m.seg == HANDLE_NONE)
            continue;
        struct ms_segment s = { m.seg, (void *)(uintptr_t)m.seg_addr, m.seg_size, 0 };
        tally.received++;
        if (!restart_intact(s.addr, s.size)) {
            tally.checked++;
            if (tally.broken++ == 0)
                printf("t_restart: a segment received (%lu bytes) lost its contents\n", s.size);
        }
        if (!keep(&s))
            check_and_free(&s);
    }
    sys_thread_exit();
}

static void churn_op(uint64_t pages)
{
    struct ms_segment s;
    uint64_t r = test_rand(&t) % 10;

    if (r < 4) {
        uint64_t size = PAGE * (1 + test_rand(&t) % pages);
        int64_t err = ms_alloc(size, 0, 0, 0, &s);
        if (err != 0) {
            note_error(&tally.alloc_errors, err);
            return;
        }
        restart_fill(s.addr, s.size, test_rand(&t));
        if (!keep(&s))
            check_and_free(&s);
    } else if (r < 7) {
        if (take_any(&s))
            check_and_free(&s);
    } else if (r < 9) {
        if (!take_any(&s))
            return;
        struct ipc_msg m = { .label = RESTART_SEGMENT, .seg = s.handle };
        int64_t err = sys_ipc_send(startup_handle(RESTART_SLOT_PEER), &m, TIMEOUT_FOREVER);
        if (err == 0) {
            tally.sent++;
        } else {
            note_error(&tally.send_errors, err);
            if (!keep(&s))
                check_and_free(&s);
        }
    } else if (take_any(&s)) {
        /* Moved by the server: the contents must follow. */
        if (ms_move(s.sid) == 0)
            tally.moved++;
        if (!keep(&s))
            check_and_free(&s);
    }
}

static void churn(const char *args, uint64_t index)
{
    uint64_t ops = 300, pages = 16, max_live = 24;
    cmdline_get_u64(args, "ops", &ops);
    cmdline_get_u64(args, "pages", &pages);
    cmdline_get_u64(args, "live", &max_live);
    if (max_live > LIVE_MAX)
        max_live = LIVE_MAX;
    if (pages == 0)
        pages = 1;

    int64_t thread = sys_thread_create(receiver, receiver_stack + RECEIVER_STACK, 0);
    if (!test_check(&t, "receiver", thread >= 0, "thread: %s", sys_strerror(thread)))
        test_exit(&t);
    bool ready = false, stopped = false;
    uint64_t op;
    for (op = 0; op < OPS_CAP && (op < ops || !stopped); op++) {
        if (op == ops / 3)
            ready = say_ready(index, 0);
        if (op >= ops && !stopped)
            stopped = told_to_stop();
        /* Keep the live set near its limit, as a loaded program would. */
        if (live.count >= max_live) {
            struct ms_segment s;
            if (take_any(&s))
                check_and_free(&s);
        }
        churn_op(pages);
    }
    struct ipc_msg done = { .label = RESTART_DONE, .seg = HANDLE_NONE };
    int64_t sent_done = sys_ipc_send(startup_handle(RESTART_SLOT_PEER), &done, TIMEOUT_FOREVER);
    int64_t waited = sys_thread_wait((handle_t)thread, test_budget_ns(&t, 80000));
    struct ms_segment s;
    while (take_any(&s))
        check_and_free(&s);

    test_check(&t, "ready", ready, "could not tell the suite it was under way");
    test_check(&t, "stopped", stopped, "never told to stop after %lu operations", op);
    test_check(&t, "ring_ends", sent_done == 0 && waited == 0, "done %ld, receiver wait %ld", sent_done, waited);
    test_check(&t, "contents_intact", tally.broken == 0 && tally.checked > 0, "%lu of %lu segments broken",
               tally.broken, tally.checked);
    test_check(&t, "calls_succeed", tally.alloc_errors + tally.free_errors + tally.send_errors == 0,
               "%lu allocations, %lu frees, %lu sends failed; first: %s", tally.alloc_errors, tally.free_errors,
               tally.send_errors, sys_strerror(tally.first_error));
    printf("t_restart: churn %lu: %lu operations, %lu segments checked, %lu sent, %lu received, %lu moved\n", index, op,
           tally.checked, tally.sent, tally.received, tally.moved);
}

/* ---- holder ---------------------------------------------------------- */

static struct ms_segment held[HELD_MAX];
static uint64_t held_phys[HELD_MAX / 2 + 1];

static void holder(const char *args)
{
    uint64_t count = 512, pages = 4, kept = 0, broken = 0, moved = 0;
    int64_t err = 0;
    cmdline_get_u64(args, "count", &count);
    cmdline_get_u64(args, "pages", &pages);
    if (count > HELD_MAX)
        count = HELD_MAX;
    uint64_t n;
    for (n = 0; n < count && err == 0; n++) {
        err = ms_alloc(pages * PAGE, 0, 0, 0, &held[n]);
        if (err == 0)
            restart_fill(held[n].addr, held[n].size, test_rand(&t));
    }
    if (err != 0)
        n--;
    /* Every other one goes: holes that a compaction closes by moving the rest. */
    for (uint64_t i = 0; i < n; i++) {
        if (i % 2 == 0) {
            ms_free(held[i].handle);
            held[i].handle = HANDLE_NONE;
        } else {
            struct abi_seg_info info;
            sys_seg_info(held[i].handle, &info);
            held_phys[kept++] = info.phys;
        }
    }
    test_check(&t, "filled", n >= 16, "only %lu segments of %lu pages (%s)", n, pages, sys_strerror(err));
    bool ready = say_ready(0, kept);
    /* The suite may spend a hang budget on the compaction (restarted
     * under it) and another waiting for the restart before it says stop. */
    uint64_t deadline = sys_clock() + test_budget_ns(&t, 3 * 80000);
    bool stopped = false;
    while (!stopped && sys_clock() < deadline)
        stopped = sys_notify_wait(startup_handle(RESTART_SLOT_STOP), deadline - sys_clock()) > 0;
    kept = 0;
    for (uint64_t i = 1; i < n; i += 2) {
        struct abi_seg_info info;
        sys_seg_info(held[i].handle, &info);
        moved += info.phys != held_phys[kept++];
        broken += !restart_intact(held[i].addr, held[i].size);
        ms_free(held[i].handle);
    }
    struct ipc_msg report = { .label = RESTART_REPORT, .w = { moved, kept }, .seg = HANDLE_NONE };
    int64_t reported = sys_ipc_send(startup_handle(ABI_STARTUP_PARENT), &report, test_budget_ns(&t, 80000));
    test_check(&t, "ready", ready && stopped && reported == 0, "ready %d, told to stop %d, report %ld", ready, stopped,
               reported);
    test_check(&t, "contents_intact", broken == 0, "%lu of %lu segments broken", broken, kept);
    printf("t_restart: holder: %lu of %lu segments made (%s), %lu kept, %lu of them moved\n", n, count,
           err == 0 ? "ok" : sys_strerror(err), kept, moved);
}

/* ---- dma ------------------------------------------------------------- */

static volatile uint8_t *edu;

static uint64_t edu_read64(unsigned reg) { return *(volatile uint64_t *)(edu + reg); }
static void edu_write64(unsigned reg, uint64_t v) { *(volatile uint64_t *)(edu + reg) = v; }

/* One DMA_BYTES transfer; false on timeout (the device may still write:
 * the caller keeps the segment pinned). */
static bool edu_copy(uint64_t src, uint64_t dst, uint32_t command)
{
    __asm__ volatile("mfence" ::: "memory");
    edu_write64(EDU_DMA_SOURCE, src);
    edu_write64(EDU_DMA_DEST, dst);
    edu_write64(EDU_DMA_COUNT, EDU_DMA_BYTES);
    edu_write64(EDU_DMA_COMMAND, command | EDU_DMA_RUN);
    uint64_t deadline = sys_clock() + test_budget_ns(&t, EDU_WAIT_UNITS);
    while (edu_read64(EDU_DMA_COMMAND) & EDU_DMA_RUN) {
        if (sys_clock() > deadline)
            return false;
        sys_yield();
    }
    __asm__ volatile("mfence" ::: "memory");
    return true;
}

static void dma(const char *args)
{
    handle_t dev = startup_handle(ABI_STARTUP_DEVICE);
    uint64_t rounds = 3;
    cmdline_get_u64(args, "rounds", &rounds);
    struct abi_bar_info bar = { 0, 0, 0 };
    int64_t command = sys_dev_config_read(dev, 0x04, 2);
    int64_t err = command < 0 ? command : sys_dev_config_write(dev, 0x04, 2, (uint32_t)command | 0x2);
    if (err == 0)
        err = sys_dev_map_bar(dev, 0, &bar);
    if (err == 0)
        err = sys_dev_dma(dev, true);
    struct ms_segment seg;
    if (err == 0)
        err = ms_alloc(2 * PAGE, 0, MS_ALLOC_BELOW, EDU_DMA_LIMIT, &seg);
    int64_t phys = err == 0 ? sys_seg_pin(seg.handle, dev) : err;
    if (!test_check(&t, "setup", phys > 0, "edu or pinning: %s", sys_strerror(phys)))
        test_exit(&t);
    edu = (volatile uint8_t *)bar.vaddr;
    uint8_t *out = seg.addr, *back = out + PAGE;
    uint64_t round, broken = 0;
    bool ready = false, stopped = false, timely = true;
    for (round = 0; round < OPS_CAP && timely && (round < rounds || !stopped); round++) {
        for (unsigned i = 0; i < PAGE; i++) {
            out[i] = (uint8_t)(test_rand(&t) | 1);
            back[i] = (uint8_t)~out[i];
        }
        timely = edu_copy((uint64_t)phys, EDU_DMA_BUFFER, 0) &&
                 edu_copy(EDU_DMA_BUFFER, (uint64_t)phys + PAGE, EDU_DMA_TO_RAM);
        broken += timely && memcmp(out, back, EDU_DMA_BYTES) != 0;
        if (round == 0)
            ready = say_ready(0, (uint64_t)phys);
        if (round + 1 >= rounds && !stopped)
            stopped = told_to_stop();
    }
    struct abi_seg_info info;
    sys_seg_info(seg.handle, &info);
    test_check(&t, "ready", ready && stopped, "ready %d, told to stop %d", ready, stopped);
    test_check(&t, "transfers", timely && broken == 0, "%lu rounds, %lu broken, last one %s", round, broken,
               timely ? "done" : "timed out");
    test_check(&t, "pinned_stayed", info.phys == (uint64_t)phys && info.pins == 1, "pinned at %#lx, now %#lx (%u pins)",
               phys, info.phys, info.pins);
    if (!timely)
        return; /* the device may still write: the segment stays pinned, quarantined at exit */
    int64_t unpinned = sys_seg_unpin(seg.handle), freed = ms_free(seg.handle);
    int64_t stop = sys_dev_dma(dev, false);
    test_check(&t, "let_go", unpinned == 0 && freed == 0 && stop == 0, "unpin %ld, free %ld, stop the device %ld",
               unpinned, freed, stop);
    printf("t_restart: dma: %lu rounds through the pinned page at %#lx\n", round, phys);
}

int main(int argc, char **argv)
{
    const char *args = libsys_startup ? libsys_startup->args : "";
    const char *mode = "";
    uint64_t index = 0;
    /* "t_restart seed=N pace_ns=P MODE [I] key=value...": the mode is the
     * first word without '=', a churn client's index the next. */
    for (int i = 1; i < argc; i++) {
        if (strchr(argv[i], '='))
            continue;
        if (!*mode)
            mode = argv[i];
        else if (argv[i][0] >= '0' && argv[i][0] <= '9')
            index = (uint64_t)(argv[i][0] - '0');
    }
    test_begin(&t, "restart", argc, argv);
    t.rng ^= (index + 1) * 0x9e3779b97f4a7c15ull; /* three clients, three different runs */
    if (strcmp(mode, "churn") == 0)
        churn(args, index);
    else if (strcmp(mode, "holder") == 0)
        holder(args);
    else if (strcmp(mode, "dma") == 0)
        dma(args);
    else
        test_check(&t, "mode", false, "unknown mode '%s'", mode);
    test_exit(&t);
}
