/*
 * In-guest test program: segments under the memory server's hands.
 * Migration keeps contents and concurrent updates; pinned segments refuse
 * to move; large segments keep their large pages across moves.
 */
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

#define MOVES 1000

static uint8_t writer_stack[16384] __attribute__((aligned(16)));
static volatile uint64_t *shared_counter;
static volatile int stop_writer;
static volatile uint64_t writer_count;

/* Writes while the segment moves under it. It yields now and then: with
 * one CPU and round-robin scheduling, a writer that never yields takes a
 * whole time slice between any two moves, and 1000 moves took 15 s. */
static void writer(uint64_t unused)
{
    (void)unused;
    uint64_t mine = 0;
    while (!stop_writer) {
        (*shared_counter)++;
        mine++;
        writer_count = mine;
        if (mine % 256 == 0)
            sys_yield();
    }
    sys_thread_exit();
}

static uint64_t checksum(const uint64_t *w, size_t words)
{
    uint64_t sum = 7;
    for (size_t i = 0; i < words; i++)
        sum = (sum ^ w[i]) * 0x100000001b3ull;
    return sum;
}

/* The physical base (the kernel tells a segment's holder). */
static int64_t phys_of(handle_t h)
{
    struct abi_seg_info info;
    int64_t r = sys_seg_info(h, &info);
    return r < 0 ? r : (int64_t)info.phys;
}

static void check_migrate_under_writer(struct test_run *t)
{
    struct ms_segment seg;
    if (!test_check(t, "alloc", ms_alloc(64 * 1024, 0, 0, 0, &seg) == 0, "no segment"))
        return;
    uint64_t *w = seg.addr;
    size_t words = seg.size / 8;
    for (size_t i = 1; i < words; i++)
        w[i] = i * 0x9e3779b97f4a7c15ull;
    uint64_t sum = checksum(w + 1, words - 1);
    shared_counter = &w[0];
    int64_t th = sys_thread_create(writer, writer_stack + sizeof(writer_stack), 0);
    unsigned moved = 0, changed = 0, overtaken = 0, landed = 0;
    int64_t last_err = 0;
    for (int i = 0; i < MOVES; i++) {
        /* The server never moves a segment to where it is, so a base it
         * reports equal to the one read just before means background
         * compaction moved the segment in between (overtaken): rare, but
         * on a small machine with several CPUs it happens. Most times the
         * kernel must show the segment where the reply says. */
        int64_t prev = phys_of(seg.handle);
        uint64_t to = 0;
        int64_t r = ms_move_to(seg.sid, &to);
        if (r == 0) {
            moved++;
            changed += to != (uint64_t)prev;
            overtaken += to == (uint64_t)prev;
            landed += phys_of(seg.handle) == (int64_t)to;
        } else {
            last_err = r;
        }
        if (i % 64 == 0)
            sys_yield(); /* let the writer run between moves */
    }
    stop_writer = 1;
    sys_thread_wait((handle_t)th, TIMEOUT_FOREVER);
    test_check(t, "migrations", moved == MOVES && overtaken <= MOVES / 16 && landed >= MOVES - MOVES / 16,
               "%u of %d moves done (last error %s), %u changed the base, %u overtaken by compaction, %u found "
               "where the reply said",
               moved, MOVES, sys_strerror(last_err), changed, overtaken, landed);
    test_check(t, "no_lost_update", w[0] == writer_count && writer_count > 0, "segment says %lu, writer counted %lu",
               w[0], writer_count);
    test_check(t, "contents_intact", checksum(w + 1, words - 1) == sum, "contents changed across migrations");
    struct abi_seg_info info;
    sys_seg_info(seg.handle, &info);
    test_check(t, "same_address_after_moves", info.vaddr == (uint64_t)seg.addr, "mapping moved from %p to %#lx",
               seg.addr, info.vaddr);

    /* A pinned segment does not move. */
    int64_t pinned_at = sys_seg_pin(seg.handle, test_dma_device());
    int64_t refused = ms_move(seg.sid);
    int64_t still = sys_seg_pin(seg.handle, test_dma_device());
    sys_seg_unpin(seg.handle);
    sys_seg_unpin(seg.handle);
    test_check(t, "pinned_not_migrated", refused == -EBUSY && still == pinned_at, "move gave %ld, base %#lx -> %#lx",
               refused, pinned_at, still);
    test_check(t, "free", ms_free(seg.handle) == 0, "could not free");
}

static void check_large_moves(struct test_run *t)
{
    struct ms_segment seg;
    int64_t r = ms_alloc(2ull << 20, 2ull << 20, MS_ALLOC_LARGE, 0, &seg);
    if (!test_check(t, "large_alloc", r == 0, "2 MiB: %s", sys_strerror(r)))
        return;
    uint64_t *w = seg.addr;
    for (size_t i = 0; i < seg.size / 8; i++)
        w[i] = i ^ 0x5555;
    unsigned large_after = 0, moved = 0;
    for (int i = 0; i < 20; i++) {
        if (ms_move(seg.sid) != 0)
            continue;
        moved++;
        /* Background compaction may be moving it too, and the kernel
         * unmaps a segment while it copies it: a touch waits for the copy
         * to end and the mapping to come back. */
        struct abi_seg_info info = { 0 };
        for (int tries = 0; tries < 3 && !(info.flags & SEG_INFO_LARGE_PAGES); tries++) {
            (void)*(volatile uint64_t *)seg.addr;
            sys_seg_info(seg.handle, &info);
        }
        large_after += (info.flags & SEG_INFO_LARGE_PAGES) != 0;
    }
    bool intact = true;
    for (size_t i = 0; i < seg.size / 8 && intact; i++)
        intact = w[i] == (i ^ 0x5555);
    test_check(t, "large_moves_keep_contents", moved > 0 && intact, "%u moves, intact %d", moved, intact);
    test_check(t, "large_moves_keep_large_pages", large_after == moved, "%u of %u moves kept 2 MiB pages", large_after,
               moved);
    ms_free(seg.handle);
}

int main(int argc, char **argv)
{
    struct test_run t;
    test_begin(&t, "seg", argc, argv);
    check_migrate_under_writer(&t);
    check_large_moves(&t);
    test_exit(&t);
}
