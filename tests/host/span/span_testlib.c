/*
 * Host tests of the span allocator: snapshot and reference-model helpers
 * (see span_testlib.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "span_testlib.h"

static int collect(void *ctx, const struct span_info *info)
{
    struct span_snapshot *s = ctx;

    if (s->count == s->capacity) {
        s->capacity = s->capacity ? s->capacity * 2 : 64;
        s->spans = realloc(s->spans, s->capacity * sizeof(*s->spans));
        if (s->spans == NULL)
            abort();
    }
    s->spans[s->count++] = *info;
    return 0;
}

void snapshot_take(const struct span_alloc *a, struct span_snapshot *s)
{
    memset(&s->stats, 0, sizeof(s->stats));
    s->count = 0;
    span_stats(a, &s->stats);
    span_walk(a, collect, s);
}

bool snapshot_equal(const struct span_snapshot *x, const struct span_snapshot *y)
{
    size_t i;

    if (memcmp(&x->stats, &y->stats, sizeof(x->stats)) != 0 || x->count != y->count)
        return false;
    for (i = 0; i < x->count; i++) {
        const struct span_info *p = &x->spans[i], *q = &y->spans[i];
        if (p->base != q->base || p->size != q->size || p->state != q->state || p->tag != q->tag ||
            p->lock_count != q->lock_count || p->misaligned != q->misaligned || p->moving != q->moving ||
            p->align != q->align || p->limit != q->limit || p->wants_large != q->wants_large)
            return false;
    }
    return true;
}

void snapshot_free(struct span_snapshot *s)
{
    free(s->spans);
    s->spans = NULL;
    s->count = s->capacity = 0;
}

void ref_init(struct ref_model *m, uint64_t base, size_t granules)
{
    m->base = base;
    m->granules = granules;
    m->state = calloc(granules, 1);
    m->region = calloc(granules, 1);
    m->locked = calloc(granules, 1);
    if (m->state == NULL || m->region == NULL || m->locked == NULL)
        abort();
}

void ref_free_model(struct ref_model *m)
{
    free(m->state);
    free(m->region);
    free(m->locked);
}

static size_t granule_of(const struct ref_model *m, uint64_t addr)
{
    return (size_t)((addr - m->base) >> SPAN_GRANULE_SHIFT);
}

void ref_add_region(struct ref_model *m, uint64_t base, uint64_t size, unsigned index)
{
    size_t g;

    for (g = granule_of(m, base); g < granule_of(m, base + size); g++) {
        m->state[g] = REF_FREE;
        m->region[g] = (uint8_t)(index + 1);
    }
}

void ref_set(struct ref_model *m, uint64_t base, uint64_t size, enum ref_state state)
{
    memset(m->state + granule_of(m, base), state, size >> SPAN_GRANULE_SHIFT);
}

bool ref_all(const struct ref_model *m, uint64_t base, uint64_t size, enum ref_state state)
{
    size_t g, end;

    if (base < m->base || base + size > m->base + ((uint64_t)m->granules << SPAN_GRANULE_SHIFT))
        return false;
    end = granule_of(m, base + size);
    for (g = granule_of(m, base); g < end; g++)
        if (m->state[g] != state || m->region[g] != m->region[granule_of(m, base)])
            return false;
    return true;
}

bool ref_can_place(const struct ref_model *m, uint64_t size, uint64_t align, uint64_t hi)
{
    size_t g = 0;

    while (g < m->granules) {
        size_t run_end;
        uint64_t start, p;
        if (m->state[g] != REF_FREE) {
            g++;
            continue;
        }
        run_end = g;
        while (run_end < m->granules && m->state[run_end] == REF_FREE && m->region[run_end] == m->region[g])
            run_end++;
        start = m->base + ((uint64_t)g << SPAN_GRANULE_SHIFT);
        p = (start + align - 1) & ~(align - 1);
        if (p + size <= m->base + ((uint64_t)run_end << SPAN_GRANULE_SHIFT) && p + size <= hi)
            return true;
        g = run_end;
    }
    return false;
}

uint64_t ref_largest_free(const struct ref_model *m)
{
    size_t g = 0, best = 0;

    while (g < m->granules) {
        size_t run_end = g;
        while (run_end < m->granules && m->state[run_end] == REF_FREE && m->region[run_end] == m->region[g])
            run_end++;
        if (run_end - g > best)
            best = run_end - g;
        g = run_end > g ? run_end : g + 1;
    }
    return (uint64_t)best << SPAN_GRANULE_SHIFT;
}

struct match_ctx {
    const struct ref_model *m;
    uint64_t expect_next;
    bool ok;
};

static int match_one(void *ctx, const struct span_info *info)
{
    struct match_ctx *c = ctx;
    enum ref_state want = info->state == SPAN_FREE ? REF_FREE : REF_USED;

    if (!ref_all(c->m, info->base, info->size, want)) {
        fprintf(stderr, "span %#llx+%#llx (%s) disagrees with the reference\n", (unsigned long long)info->base,
                (unsigned long long)info->size, span_state_name(info->state));
        c->ok = false;
        return 1;
    }
    return 0;
}

bool ref_matches(const struct ref_model *m, const struct span_alloc *a)
{
    struct match_ctx c = { .m = m, .ok = true };
    struct span_stats st;
    uint64_t free_ref = 0;
    size_t g;

    span_walk(a, match_one, &c);
    if (!c.ok)
        return false;
    for (g = 0; g < m->granules; g++)
        free_ref += m->state[g] == REF_FREE;
    span_stats(a, &st);
    if (st.free_bytes != free_ref << SPAN_GRANULE_SHIFT) {
        fprintf(stderr, "free bytes %llu, reference %llu\n", (unsigned long long)st.free_bytes,
                (unsigned long long)(free_ref << SPAN_GRANULE_SHIFT));
        return false;
    }
    if (st.largest_free != ref_largest_free(m)) {
        fprintf(stderr, "largest free %llu, reference %llu\n", (unsigned long long)st.largest_free,
                (unsigned long long)ref_largest_free(m));
        return false;
    }
    return true;
}

bool check_books(const struct span_alloc *a, const char *when)
{
    struct span_fault fault;

    if (span_check(a, &fault) == 0)
        return true;
    fprintf(stderr, "span_check failed %s: %s at %#llx\n", when, fault.what, (unsigned long long)fault.addr);
    return false;
}

uint64_t test_seed(int argc, char **argv, int argi)
{
    const char *env = getenv("SPAN_SEED");

    if (argc > argi)
        return strtoull(argv[argi], NULL, 0);
    if (env != NULL)
        return strtoull(env, NULL, 0);
    return 0x5eed5eedULL;
}
