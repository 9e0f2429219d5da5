/*
 * Protocol layer: the key-value store's protocol (servers/kvstore/). Included by
 * the server and its clients (tests/guest/programs/t_kv.c); the worked
 * example of docs/writing-a-server.md.
 *
 * Clients SYS_IPC_CALL the store's endpoint with a label below. Keys are 1
 * to KV_KEY_MAX bytes, any bytes, carried as the whole payload (len = the
 * key's length). Values travel as segments: PUT hands the client's segment
 * to the store, which keeps it; GET answers with a new segment holding a
 * copy, which the client owns and gives back to memsrv (ms_free) when done.
 *
 * The reply label is 0 on success or -E* (abi/errno.h) as a uint64. Words
 * a request does not use must be 0 (-EINVAL otherwise). A segment sent with
 * a refused request comes back in the reply (reply.seg), still the client's.
 * Errors every request may get: -ENOSYS unknown label, -EINVAL malformed.
 */
#ifndef PROTO_KVSTORE_H
#define PROTO_KVSTORE_H

#include <abi/ipc.h>
#include <abi/types.h>
#include <proto/words.h>

#define KV_KEY_MAX   64u                   /* bytes */
#define KV_VALUE_MAX (16ull * 1024 * 1024) /* bytes; one value's limit */
#define KV_KEYS_MAX  4096u                 /* keys the store holds at most */

enum kv_label {
    /* payload: the key. The value: the attached segment (required); w0 its
     * length in bytes (1..segment size, <= KV_VALUE_MAX). Replaces an
     * existing value (its segment goes back to memsrv).
     * Reply: w0 the value's id (new on every PUT), w1 1 if a value was
     * replaced. -ENOSPC the store is full (KV_KEYS_MAX). */
    KV_PUT = 1,
    /* payload: the key. Reply: a new segment holding the value (zero past
     * its length), w0 the value's length, w1 its id. -ENOENT no such key;
     * -ENOMEM (or memsrv's error) no memory for the copy. */
    KV_GET = 2,
    /* payload: the key. Reply: 0, w0 the id the value had. -ENOENT. */
    KV_DELETE = 3,
    /* payload: the key to list after (len 0: from the first). Reply: a
     * struct kv_list_page of the keys that follow, in byte order, as many as
     * fit; call again with the last one until `more` is 0. */
    KV_LIST = 4,
    /* No payload. Reply: struct kv_stats in the payload. */
    KV_STATS = 5,
    /* No payload. The store replies 0, gives every value back to memsrv and
     * exits with status 0. */
    KV_SHUTDOWN = 6,
};

/* The words of each request and reply (proto/words.h); the others carry
 * none. */
PROTO_WORDS(kv_put_req, len);
PROTO_WORDS(kv_put_reply, id, replaced);
PROTO_WORDS(kv_get_reply, len, id);
PROTO_WORDS(kv_delete_reply, id);

/* KV_LIST's reply payload: `count` entries packed in data, each one byte of
 * length then that many key bytes. The largest key always fits. */
struct kv_list_page {
    uint8_t count;
    uint8_t more; /* 1: keys after the last entry remain */
    uint8_t reserved[6];
    uint8_t data[IPC_PAYLOAD_MAX - 8];
};
ABI_STATIC_ASSERT(sizeof(struct kv_list_page) == IPC_PAYLOAD_MAX, "list page fills a payload");
ABI_STATIC_ASSERT(1 + KV_KEY_MAX <= sizeof(((struct kv_list_page *)0)->data), "a list page holds any key");

/* KV_STATS's reply payload. */
struct kv_stats {
    uint64_t keys;
    uint64_t value_bytes;   /* sum of the values' lengths */
    uint64_t segment_bytes; /* the segments holding them */
    uint64_t ids_in_use;    /* value ids handed out and not yet retired */
    uint64_t puts, gets, deletes, lists;
    uint64_t requests;       /* every request answered, errors included */
    uint64_t errors;         /* requests answered with an error */
    uint64_t reply_failures; /* GET copies that could not be delivered */
    uint64_t reserved[5];
};
ABI_STATIC_ASSERT(sizeof(struct kv_stats) == IPC_PAYLOAD_MAX, "stats fill a payload");
ABI_STATIC_ASSERT(KV_KEY_MAX <= IPC_PAYLOAD_MAX, "a key fits a payload");

#endif
