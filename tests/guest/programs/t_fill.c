/*
 * In-guest test program: the memory server's books grow with use. Fills
 * all free memory with 4 KiB segments, one MS_ALLOC each, until the server
 * says -ENOMEM, with MS_CHECK (the server's invariant checker over its span
 * books, records and sid hash) every 4096 segments and at the peak; then
 * frees them all and checks again. The books are not sized from RAM at
 * boot: they must grow to hold every segment and the fill must end at the
 * end of memory, not at a cap of the books (docs/memsrv.md).
 *
 * Started by the suite (tests/guest/suite/suite.c) as "fill". One MS_ALLOC
 * per 4 KiB of a large machine would take the emulator too long, so when
 * free memory is more than FILL_TAIL 4 KiB segments, large segments take
 * all but that tail first, and 4 KiB segments fill the tail to the end: the
 * books still meet tens of thousands of segments, and the fill still ends
 * at the end of memory. Only if the 4 KiB part reaches FILL_MAX anyway (the
 * large segments found no room) are the end-of-memory checks skipped; the
 * host test test_books_grow_with_use_5g fills 5 GiB with 4 KiB segments.
 * The large segments are read, not written (their first and last words
 * must be zero): a write would make the emulator's host allocate each one
 * whole, and the kernel leaves memory that already reads as zero unwritten
 * (kernel/arch/x86_64/zero_pages.asm), which took a 5 GiB fill from 25 s to
 * 11.5 s on the build machine.
 */
#include <abi/errno.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

#define KIB         1024ul
#define MIB         (1024 * KIB)
#define FILL_MAX    40000u
#define FILL_TAIL   (FILL_MAX / 2) /* 4 KiB segments the large ones leave room for */
#define BIG_MAX     4096u
#define BIG_MIN     (2 * MIB)
#define CHECK_EVERY 4096u

static struct ms_segment segs[FILL_MAX], bigs[BIG_MAX];

/* Large segments over all but FILL_TAIL * 4 KiB of `free_bytes`, as few as
 * BIG_MAX allows; stops early where none fits. Returns how many. */
static unsigned fill_large(uint64_t free_bytes, uint64_t *big_size)
{
    uint64_t tail = FILL_TAIL * 4 * KIB, size = BIG_MIN;
    if (free_bytes <= tail + size)
        return 0;
    while ((free_bytes - tail) / size > BIG_MAX)
        size *= 2;
    unsigned want = (unsigned)((free_bytes - tail) / size), n = 0;
    while (n < want && ms_alloc(size, 0, MS_ALLOC_NOWAIT, 0, &bigs[n]) == 0)
        n++;
    *big_size = size;
    return n;
}

static bool books_sound(struct test_run *t, const char *when)
{
    char why[128];
    int64_t err = ms_check(why, sizeof(why));

    return test_check(t, when, err == 0, "%s", why);
}

int main(int argc, char **argv)
{
    struct test_run t;
    struct ms_stats_global before, peak, mid, after;
    unsigned n = 0, i, bad_free = 0;
    int64_t err = 0;
    bool checks_ok = true;
    uint64_t big_size = 0;

    test_begin(&t, "fill", argc, argv);
    ms_stats_global(&before);
    unsigned nbig = fill_large(before.free_bytes, &big_size);
    if (nbig)
        printf("fill: %u segments of %llu MiB first, leaving the rest to 4 KiB segments\n", nbig,
               (unsigned long long)(big_size / MIB));
    /* NOWAIT: a 4 KiB request that fails cannot be helped by compaction. */
    while (n < FILL_MAX && (err = ms_alloc(4 * KIB, 0, MS_ALLOC_NOWAIT, 0, &segs[n])) == 0) {
        *(volatile uint64_t *)segs[n].addr = n; /* mapped and writable */
        n++;
        if (n % CHECK_EVERY == 0 && ms_check(NULL, 0) != 0)
            checks_ok = false;
    }
    ms_stats_global(&peak);
    printf("fill: %u segments of 4 KiB (%s); %llu KiB of %llu MiB free at the peak\n", n,
           n == FILL_MAX ? "stopped at the test's cap" : sys_strerror(err), (unsigned long long)(peak.free_bytes / KIB),
           (unsigned long long)(peak.total_bytes / MIB));
    test_check(&t, "checks_during_fill", checks_ok, "MS_CHECK failed while filling");
    books_sound(&t, "books_at_peak");
    if (n < FILL_MAX) {
        test_check(&t, "ends_with_enomem", err == -ENOMEM, "the fill ended with %s", sys_strerror(err));
        /* To the end: what is left is less than 1% of RAM (the books' spare
         * slots and a block of books the last requests could not grow). */
        test_check(&t, "fills_memory", peak.free_bytes < peak.total_bytes / 100, "%llu KiB left free",
                   (unsigned long long)(peak.free_bytes / KIB));
    } else {
        test_skip(&t, "fills_memory",
                  "stopped at the test's cap of %u segments with %llu MiB free (%u large segments "
                  "found room first; the host test fills 5 GiB to the end)",
                  FILL_MAX, (unsigned long long)(peak.free_bytes / MIB), nbig);
    }
    /* Every other one first: each of those frees leaves a free span of its
     * own, which costs the books a slot more, and memory has no free run
     * above a granule for them to grow into, so they grow a granule at a
     * time (a fixed table of books segments once ran out here and the
     * frees left spans without records). Then the rest. */
    for (unsigned pass = 0; pass < 2; pass++) {
        for (i = pass == 0 ? 1 : 0; i < n; i += 2) {
            if (*(volatile uint64_t *)segs[i].addr != i)
                bad_free++;
            if (ms_free(segs[i].handle) != 0)
                bad_free++;
        }
        if (pass == 0) {
            books_sound(&t, "books_after_every_other_freed");
            /* The books grew past the fill's peak meanwhile. */
            ms_stats_global(&mid);
            if (mid.books_bytes > peak.books_bytes)
                peak.books_bytes = mid.books_bytes;
        }
    }
    for (i = 0; i < nbig; i++) {
        const volatile uint64_t *words = (const volatile uint64_t *)bigs[i].addr;
        if (words[0] != 0 || words[big_size / sizeof(uint64_t) - 1] != 0)
            bad_free++;
        if (ms_free(bigs[i].handle) != 0)
            bad_free++;
    }
    ms_stats_global(&after);
    test_check(&t, "freed_all", bad_free == 0, "%u segments lost or changed", bad_free);
    /* Every byte is either free or books, and the books shrink back: they
     * keep up to 1 MiB of free slots so that a free-alloc cycle does not
     * give back and take a block each time (docs/memsrv.md), and past that
     * at most the one block the last give-back stopped at, which is at
     * most half the pool: half of what they grew to at the peak. */
    printf("fill: %llu KiB free after freeing all, %llu KiB before; books %llu KiB, %llu before, %llu at the peak\n",
           (unsigned long long)(after.free_bytes / KIB), (unsigned long long)(before.free_bytes / KIB),
           (unsigned long long)(after.books_bytes / KIB), (unsigned long long)(before.books_bytes / KIB),
           (unsigned long long)(peak.books_bytes / KIB));
    test_check(&t, "memory_back", after.free_bytes + after.books_bytes == before.free_bytes + before.books_bytes,
               "free + books %llu KiB after, %llu before",
               (unsigned long long)((after.free_bytes + after.books_bytes) / KIB),
               (unsigned long long)((before.free_bytes + before.books_bytes) / KIB));
    uint64_t grown = peak.books_bytes - before.books_bytes, kept = MIB + grown / 2;
    test_check(&t, "books_shrink", after.books_bytes <= before.books_bytes + kept,
               "books %llu KiB after freeing all, %llu before, %llu at the peak",
               (unsigned long long)(after.books_bytes / KIB), (unsigned long long)(before.books_bytes / KIB),
               (unsigned long long)(peak.books_bytes / KIB));
    books_sound(&t, "books_after");
    test_exit(&t);
}
