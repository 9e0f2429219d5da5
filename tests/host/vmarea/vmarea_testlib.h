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

struct area_snapshot {
    uint64_t count;
    uint64_t *words; /* start | used, per area */
};

static inline void snapshot_take(const struct vmareas *a, struct area_snapshot *s)
{
    s->count = vmareas_count(a);
    s->words = realloc(s->words, s->count * sizeof(uint64_t));
    for (uint64_t i = 0; i < s->count; i++) {
        uint64_t start, size;
        bool used;
        vmareas_area(a, i, &start, &size, &used);
        s->words[i] = start | used;
    }
}

static inline bool snapshot_same(const struct vmareas *a, const struct area_snapshot *s)
{
    if (vmareas_count(a) != s->count)
        return false;
    for (uint64_t i = 0; i < s->count; i++) {
        uint64_t start, size;
        bool used;
        vmareas_area(a, i, &start, &size, &used);
        if (s->words[i] != (start | used))
            return false;
    }
    return true;
}

#endif
