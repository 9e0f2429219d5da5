/*
 * kvstore server: the store itself, apart from the protocol. Used by
 * kvstore.c's handlers; calls malloc (the index and the entries), the vmem
 * arena (value ids) and memsrv (giving value segments back).
 *
 * Keys sit in a sorted array of entry pointers (binary search for lookups,
 * and LIST walks it in order); each entry owns one value segment, mapped in
 * the server. Every value gets a fresh id from an arena of integers, so a
 * client can tell two values of one key apart.
 */
#ifndef KVSTORE_STORE_H
#define KVSTORE_STORE_H

#include <proto/kvstore.h>
#include <libsys/arena.h>

struct kv_entry {
    uint64_t id;
    handle_t seg;     /* the value's segment, held by the server */
    const void *addr; /* where it is mapped here */
    uint64_t seg_size;
    uint64_t len; /* the value's bytes, <= seg_size */
    uint8_t key_len;
    uint8_t key[]; /* key_len bytes */
};

struct kv_store {
    struct kv_entry **index; /* sorted by key (byte order, shorter first on a tie) */
    size_t count, cap;
    struct arena ids;
    struct arena_tagstore tags;
    struct arena_tag **buckets;
    uint64_t value_bytes, segment_bytes;
};

/* The value a PUT brings; the store takes seg on success. */
struct kv_value {
    handle_t seg;
    const void *addr;
    uint64_t seg_size, len;
};

/* -ENOMEM without memory for the index. */
int store_init(struct kv_store *s);
/* The entry for a key, or NULL. */
struct kv_entry *store_find(const struct kv_store *s, const uint8_t *key, size_t len);
/* Adds or replaces; *replaced tells which. -ENOSPC full, -ENOMEM no memory:
 * then nothing changed and the segment is still the caller's. */
int store_put(struct kv_store *s, const uint8_t *key, size_t len, const struct kv_value *v, uint64_t *id,
              bool *replaced);
/* Removes a key and gives its segment back to memsrv; -ENOENT. */
int store_delete(struct kv_store *s, const uint8_t *key, size_t len, uint64_t *id);
/* Index of the first key after `key` (len 0: 0). */
size_t store_after(const struct kv_store *s, const uint8_t *key, size_t len);
uint64_t store_ids_in_use(const struct kv_store *s);
/* Gives every value back to memsrv and frees the index. */
void store_destroy(struct kv_store *s);

#endif
