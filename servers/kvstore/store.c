/*
 * kvstore server: the store (store.h). Every change is checked and its
 * memory obtained first, then made in steps that cannot fail, so a refused
 * PUT leaves the store as it was and the segment with its sender.
 */
#include <abi/errno.h>
#include <common/string.h>
#include <libsys/malloc.h>
#include <libsys/memsrv.h>
#include "store.h"

/* Ids 1..KV_KEYS_MAX + 1: a replace takes the new id before the old one is
 * retired, so a full store can still replace. Id 0 stays free for "none". */
#define IDS_SPAN (KV_KEYS_MAX + 1ull)
/* Hash buckets for the live ids: one per key keeps arena_free O(1). */
#define ID_BUCKETS 4096u
/* Tags come in blocks as ids are handed out (about one per live id). */
#define TAG_BLOCK 64u
#define INDEX_MIN 16u

_Static_assert((ID_BUCKETS & (ID_BUCKETS - 1)) == 0, "arena buckets are a power of two");

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* Index of the first entry whose key is >= key (strict: > key). */
static size_t lower_bound(const struct kv_store *s, const uint8_t *key, size_t len, bool strict)
{
    size_t lo = 0, hi = s->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct kv_entry *e = s->index[mid];
        int c = key_cmp(e->key, e->key_len, key, len);
        if (c < 0 || (strict && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int store_init(struct kv_store *s)
{
    memset(s, 0, sizeof(*s));
    s->buckets = calloc(ID_BUCKETS, sizeof(*s->buckets));
    struct arena_tag *tags = malloc(TAG_BLOCK * sizeof(*tags));
    if (s->buckets == NULL || tags == NULL) {
        free(s->buckets);
        free(tags);
        return -ENOMEM;
    }
    arena_tagstore_init(&s->tags, tags, TAG_BLOCK);
    int err = arena_create(&s->ids, "kv-ids", 1, &s->tags, s->buckets, ID_BUCKETS);
    if (err == 0)
        err = arena_add(&s->ids, 1, IDS_SPAN);
    return err;
}

struct kv_entry *store_find(const struct kv_store *s, const uint8_t *key, size_t len)
{
    size_t i = lower_bound(s, key, len, false);
    if (i < s->count && key_cmp(s->index[i]->key, s->index[i]->key_len, key, len) == 0)
        return s->index[i];
    return NULL;
}

size_t store_after(const struct kv_store *s, const uint8_t *key, size_t len)
{
    return len == 0 ? 0 : lower_bound(s, key, len, true);
}

/* A fresh id; the tag store grows when the arena runs out of tags. */
static int id_alloc(struct kv_store *s, uint64_t *id)
{
    int err = arena_alloc(&s->ids, 1, ARENA_INSTANTFIT, id);
    if (err != -ENOMEM)
        return err;
    struct arena_tag *more = malloc(TAG_BLOCK * sizeof(*more));
    if (more == NULL)
        return -ENOMEM;
    arena_tagstore_add(&s->tags, more, TAG_BLOCK); /* kept until exit */
    return arena_alloc(&s->ids, 1, ARENA_INSTANTFIT, id);
}

static void value_release(struct kv_store *s, struct kv_entry *e)
{
    arena_free(&s->ids, e->id, 1);
    ms_free(e->seg);
    s->value_bytes -= e->len;
    s->segment_bytes -= e->seg_size;
}

static void value_set(struct kv_store *s, struct kv_entry *e, const struct kv_value *v, uint64_t id)
{
    e->id = id;
    e->seg = v->seg;
    e->addr = v->addr;
    e->seg_size = v->seg_size;
    e->len = v->len;
    s->value_bytes += v->len;
    s->segment_bytes += v->seg_size;
}

int store_put(struct kv_store *s, const uint8_t *key, size_t len, const struct kv_value *v, uint64_t *id,
              bool *replaced)
{
    size_t i = lower_bound(s, key, len, false);
    struct kv_entry *old =
        i < s->count && key_cmp(s->index[i]->key, s->index[i]->key_len, key, len) == 0 ? s->index[i] : NULL;
    if (old == NULL && s->count == KV_KEYS_MAX)
        return -ENOSPC;
    int err = id_alloc(s, id);
    if (err < 0)
        return err;
    *replaced = old != NULL;
    if (old != NULL) {
        value_release(s, old);
        value_set(s, old, v, *id);
        return 0;
    }
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : INDEX_MIN;
        struct kv_entry **grown = realloc(s->index, cap * sizeof(*grown));
        if (grown == NULL) {
            arena_free(&s->ids, *id, 1);
            return -ENOMEM;
        }
        s->index = grown;
        s->cap = cap;
    }
    struct kv_entry *e = malloc(sizeof(*e) + len);
    if (e == NULL) {
        arena_free(&s->ids, *id, 1);
        return -ENOMEM;
    }
    e->key_len = (uint8_t)len;
    memcpy(e->key, key, len);
    value_set(s, e, v, *id);
    memmove(&s->index[i + 1], &s->index[i], (s->count - i) * sizeof(*s->index));
    s->index[i] = e;
    s->count++;
    return 0;
}

int store_delete(struct kv_store *s, const uint8_t *key, size_t len, uint64_t *id)
{
    size_t i = lower_bound(s, key, len, false);
    if (i >= s->count || key_cmp(s->index[i]->key, s->index[i]->key_len, key, len) != 0)
        return -ENOENT;
    struct kv_entry *e = s->index[i];
    *id = e->id;
    value_release(s, e);
    memmove(&s->index[i], &s->index[i + 1], (s->count - i - 1) * sizeof(*s->index));
    s->count--;
    free(e);
    return 0;
}

uint64_t store_ids_in_use(const struct kv_store *s)
{
    struct arena_stats st;
    arena_stats(&s->ids, &st);
    return st.in_use;
}

void store_destroy(struct kv_store *s)
{
    while (s->count > 0) {
        uint64_t id;
        struct kv_entry *last = s->index[s->count - 1];
        store_delete(s, last->key, last->key_len, &id);
    }
    free(s->index);
    s->index = NULL;
    s->cap = 0;
}
