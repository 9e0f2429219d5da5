/*
 * Host tests of kernel/core/vmarea.c: a page provider that counts the pages
 * it has out and can be told to fail, and snapshots of the area array for
 * "a failed call changed nothing" comparisons. Shared by the tests and the
 * benchmark.
 */
#ifndef VMAREA_TESTLIB_H
#define VMAREA_TESTLIB_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <abi/errno.h>
#include <kernel/vmarea.h>

struct test_provider {
    long outstanding; /* pages handed out and not yet returned */
    long gets_left;   /* successful gets before failing; < 0: never fail */
    long gets, puts;
};

static inline void *test_get_page(void *ctx)
{
    struct test_provider *p = ctx;
    if (p->gets_left == 0)
        return NULL;
    if (p->gets_left > 0)
        p->gets_left--;
    void *page = aligned_alloc(VMAREA_PAGE_SIZE, VMAREA_PAGE_SIZE);
    if (!page)
        abort();
    memset(page, 0, VMAREA_PAGE_SIZE);
    p->outstanding++;
    p->gets++;
    return page;
}

static inline void test_put_page(void *ctx, void *page)
{
    struct test_provider *p = ctx;
    p->outstanding--;
    p->puts++;
    free(page);
}

static inline struct vmarea_pages test_pages(struct test_provider *p)
{
    p->outstanding = 0;
    p->gets_left = -1;
    p->gets = p->puts = 0;
    return (struct vmarea_pages){ test_get_page, test_put_page, p };
}

/* The areas as a caller sees them: a free run that the unmerged area
 * (vmarea.c, theory 3a) still cuts in two is one free area. A snapshot
 * holds them so, since any call may do the merge it put off. */
struct area_snapshot {
    uint64_t count;
    uint64_t *words; /* start | used, per area */
};

/* Fills words (if not NULL) and returns how many there are. */
static inline uint64_t snapshot_words(const struct vmareas *a, uint64_t *words)
{
    uint64_t n = 0;
    bool last_free = false;
    for (uint64_t i = 0; i < vmareas_count(a); i++) {
        uint64_t start, size;
        bool used;
        vmareas_area(a, i, &start, &size, &used);
        if (!used && last_free)
            continue;
        if (words)
            words[n] = start | used;
        n++;
        last_free = !used;
    }
    return n;
}

static inline void snapshot_take(const struct vmareas *a, struct area_snapshot *s)
{
    s->count = snapshot_words(a, NULL);
    s->words = realloc(s->words, s->count * sizeof(uint64_t));
    snapshot_words(a, s->words);
}

static inline bool snapshot_same(const struct vmareas *a, const struct area_snapshot *s)
{
    if (snapshot_words(a, NULL) != s->count)
        return false;
    uint64_t *now = malloc(s->count * sizeof(uint64_t));
    if (!now)
        abort();
    snapshot_words(a, now);
    bool same = memcmp(now, s->words, s->count * sizeof(uint64_t)) == 0;
    free(now);
    return same;
}

#endif
