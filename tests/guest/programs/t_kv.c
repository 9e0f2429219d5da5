/*
 * In-guest test program: the kvstore server (servers/kvstore/, protocol in
 * proto/kvstore.h) from a client's side. The suite starts kvstore first on a
 * fresh endpoint (its receive right in startup slot SERVICE), then this
 * client with a send right to the same endpoint in its slot SERVICE.
 * Every request, the bad ones, values of 4 KiB to 2 MiB with checksums, and
 * at the end the memory memsrv charges this client back where it started;
 * KV_SHUTDOWN last, after which the server exits 0 (the suite checks that).
 */
#include <proto/kvstore.h>
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

#define KIB       1024ull
#define MIB       (1024ull * 1024)
#define LIST_KEYS 50

static handle_t kv_ep;

static uint64_t checksum(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t sum = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        sum = (sum ^ b[i]) * 0x100000001b3ull;
    return sum;
}

static void stamp(void *p, size_t n, uint64_t seed)
{
    uint8_t *b = p;
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (uint8_t)x;
    }
}

static uint64_t charged(void)
{
    struct ms_stats_client c = { 0 };
    return ms_stats_client(0, &c) == 0 ? c.bytes : UINT64_MAX;
}

/* A request with the key as payload; returns the reply label (or the
 * kernel's error) and leaves the reply in *m. */
static int64_t request(struct ipc_msg *m, uint64_t label, const char *key, size_t key_len)
{
    memset(m, 0, sizeof(*m));
    m->label = label;
    m->seg = HANDLE_NONE;
    m->len = (uint32_t)key_len;
    memcpy(m->payload, key, key_len);
    return m->label;
}

static int64_t call(struct ipc_msg *m)
{
    int64_t r = sys_ipc_call(kv_ep, m, TIMEOUT_FOREVER);
    return r < 0 ? r : (int64_t)m->label;
}

/* PUT of `len` bytes stamped with seed, in a fresh segment; the reply in *m. */
static int64_t put(struct ipc_msg *m, const char *key, uint64_t len, uint64_t seed, uint64_t *sum)
{
    struct ms_segment seg;
    int64_t err = ms_alloc(len, 0, 0, 0, &seg);
    if (err < 0)
        return err;
    stamp(seg.addr, len, seed);
    if (sum)
        *sum = checksum(seg.addr, len);
    request(m, KV_PUT, key, strlen(key));
    m->seg = seg.handle;
    kv_put_req_put(m, (struct kv_put_req){ .len = len });
    err = call(m);
    if (m->seg != HANDLE_NONE && err != 0)
        ms_free(m->seg); /* a refused PUT gives the segment back */
    return err;
}

/* GET: the value's length and checksum; the copy goes back to memsrv. */
static int64_t get(const char *key, uint64_t *len, uint64_t *sum, uint64_t *id, bool *zero_tail)
{
    struct ipc_msg m;
    request(&m, KV_GET, key, strlen(key));
    int64_t r = call(&m);
    if (r != 0)
        return r;
    const struct kv_get_reply got = kv_get_reply_get(&m);
    if (m.seg == HANDLE_NONE || m.seg_addr == 0 || got.len > m.seg_size)
        return -EPEER;
    const uint8_t *v = (const uint8_t *)m.seg_addr;
    *len = got.len;
    *sum = checksum(v, got.len);
    *id = got.id;
    *zero_tail = true;
    for (uint64_t i = got.len; i < m.seg_size; i += 61)
        *zero_tail &= v[i] == 0;
    return ms_free(m.seg);
}

static int64_t stats(struct kv_stats *out)
{
    struct ipc_msg m;
    request(&m, KV_STATS, "", 0);
    int64_t r = call(&m);
    if (r == 0 && m.len == sizeof(*out))
        memcpy(out, m.payload, sizeof(*out));
    else if (r == 0)
        r = -EINVAL;
    return r;
}

static const uint64_t value_sizes[] = { 4 * KIB, 12345, 64 * KIB, 1 * MIB, 2 * MIB - 8, 2 * MIB };
#define NVALUES (sizeof(value_sizes) / sizeof(value_sizes[0]))

static void value_key(char *key, size_t cap, unsigned i) { fmt_snprintf(key, cap, "value/%u", i); }

static void check_values(struct test_run *t)
{
    uint64_t sums[NVALUES], ids[NVALUES];
    bool puts_ok = true, gone = true;
    for (unsigned i = 0; i < NVALUES; i++) {
        char key[32];
        struct ipc_msg m;
        value_key(key, sizeof(key), i);
        struct abi_seg_info info;
        int64_t r = put(&m, key, value_sizes[i], i + 1, &sums[i]);
        const struct kv_put_reply done = kv_put_reply_get(&m);
        ids[i] = done.id;
        puts_ok &= r == 0 && done.id != 0 && done.replaced == 0 && m.seg == HANDLE_NONE;
        gone &= sys_seg_info(m.seg, &info) == -EBADH;
        if (r != 0)
            printf("t_kv: put %s (%lu bytes): %s\n", key, value_sizes[i], sys_strerror(r));
    }
    test_check(t, "put_values", puts_ok, "a PUT of 4 KiB .. 2 MiB failed");
    test_check(t, "put_gives_segment_away", gone, "a sent value segment is still named here");

    bool gets_ok = true, tails = true, same_ids = true;
    for (unsigned i = 0; i < NVALUES; i++) {
        char key[32];
        uint64_t len = 0, sum = 0, id = 0;
        bool zero_tail = false;
        value_key(key, sizeof(key), i);
        int64_t r = get(key, &len, &sum, &id, &zero_tail);
        gets_ok &= r == 0 && len == value_sizes[i] && sum == sums[i];
        tails &= zero_tail;
        same_ids &= id == ids[i];
        if (r != 0 || sum != sums[i])
            printf("t_kv: get %s: %s, %lu bytes, checksum %s\n", key, sys_strerror(r), len,
                   sum == sums[i] ? "ok" : "WRONG");
    }
    test_check(t, "get_values_checksums", gets_ok, "a GET came back wrong");
    test_check(t, "get_zero_past_value", tails, "bytes past a value's length were not zero");
    test_check(t, "get_same_id", same_ids, "GET reported another id than PUT");

    /* Replacing: a new value, a new id, the old segment back to memsrv. */
    struct ipc_msg m;
    uint64_t new_sum = 0, len = 0, sum = 0, id = 0;
    bool zero_tail;
    char key[32];
    value_key(key, sizeof(key), 3);
    int64_t r = put(&m, key, 100 * KIB, 777, &new_sum);
    uint64_t new_id = kv_put_reply_get(&m).id;
    bool replaced = kv_put_reply_get(&m).replaced == 1;
    int64_t g = get(key, &len, &sum, &id, &zero_tail);
    test_check(t, "put_replaces",
               r == 0 && replaced && new_id != ids[3] && g == 0 && len == 100 * KIB && sum == new_sum && id == new_id,
               "put %ld replaced %d id %lu (was %lu), get %ld len %lu", r, replaced, new_id, ids[3], g, len);
}

static void check_list(struct test_run *t)
{
    bool puts_ok = true;
    for (unsigned i = 0; i < LIST_KEYS; i++) {
        char key[32];
        struct ipc_msg m;
        fmt_snprintf(key, sizeof(key), "list/%03u", (i * 37) % LIST_KEYS); /* out of order */
        puts_ok &= put(&m, key, 4 * KIB, 1000 + i, 0) == 0;
    }
    char longest[KV_KEY_MAX + 1];
    memset(longest, 'z', KV_KEY_MAX);
    longest[KV_KEY_MAX] = 0;
    struct ipc_msg m;
    puts_ok &= put(&m, longest, 4 * KIB, 5, 0) == 0;
    test_check(t, "put_list_keys", puts_ok, "a PUT of a small value failed");

    /* Page through everything: strictly increasing, each list/ key once. */
    uint8_t after[KV_KEY_MAX];
    size_t after_len = 0;
    unsigned total = 0, list_keys = 0, pages = 0;
    bool ordered = true, more = true, longest_seen = false;
    int64_t r = 0;
    while (more && pages < 200) {
        request(&m, KV_LIST, (const char *)after, after_len);
        r = call(&m);
        if (r != 0 || m.len != sizeof(struct kv_list_page))
            break;
        struct kv_list_page page;
        memcpy(&page, m.payload, sizeof(page));
        size_t at = 0;
        for (unsigned k = 0; k < page.count && at < sizeof(page.data); k++) {
            size_t n = page.data[at];
            const uint8_t *key = &page.data[at + 1];
            int c = memcmp(key, after, n < after_len ? n : after_len);
            ordered &= after_len == 0 || c > 0 || (c == 0 && n > after_len);
            list_keys += n == 8 && memcmp(key, "list/", 5) == 0;
            longest_seen |= n == KV_KEY_MAX && memcmp(key, longest, n) == 0;
            memcpy(after, key, n);
            after_len = n;
            at += 1 + n;
            total++;
        }
        more = page.more;
        pages++;
        if (page.count == 0)
            break;
    }
    struct kv_stats st = { 0 };
    int64_t s = stats(&st);
    test_check(t, "list_pages",
               r == 0 && !more && ordered && list_keys == LIST_KEYS && longest_seen && s == 0 && total == st.keys,
               "list %ld, %u keys in %u pages (stats say %lu), ordered %d, more %d", r, total, pages, st.keys, ordered,
               more);
}

static void check_bad_requests(struct test_run *t)
{
    struct ipc_msg m;
    request(&m, 99, "x", 1);
    int64_t unknown = call(&m);

    char too_long[KV_KEY_MAX + 2];
    memset(too_long, 'k', sizeof(too_long) - 1);
    too_long[KV_KEY_MAX + 1] = 0;
    struct ms_segment seg;
    int64_t long_put = -1;
    bool seg_back = false;
    if (ms_alloc(4 * KIB, 0, 0, 0, &seg) == 0) {
        request(&m, KV_PUT, too_long, KV_KEY_MAX + 1);
        m.seg = seg.handle;
        kv_put_req_put(&m, (struct kv_put_req){ .len = 100 });
        long_put = call(&m);
        seg_back = m.seg != HANDLE_NONE && m.seg_addr != 0;
        if (m.seg != HANDLE_NONE)
            ms_free(m.seg);
    }
    request(&m, KV_GET, too_long, KV_KEY_MAX + 1);
    int64_t long_get = call(&m);
    request(&m, KV_GET, "", 0);
    int64_t empty_get = call(&m);
    request(&m, KV_GET, "no such key", 11);
    int64_t missing = call(&m);
    bool missing_no_seg = m.seg == HANDLE_NONE;
    request(&m, KV_PUT, "no segment", 10);
    kv_put_req_put(&m, (struct kv_put_req){ .len = 10 });
    int64_t no_seg = call(&m);
    int64_t too_big = put(&m, "value longer than segment", 4 * KIB, 1, 0);
    /* put() sends len bytes in a len-byte segment: make a lie by hand. */
    int64_t lie = -1;
    if (ms_alloc(4 * KIB, 0, 0, 0, &seg) == 0) {
        request(&m, KV_PUT, "lie", 3);
        m.seg = seg.handle;
        kv_put_req_put(&m, (struct kv_put_req){ .len = 4 * KIB + 1 });
        lie = call(&m);
        if (m.seg != HANDLE_NONE)
            ms_free(m.seg);
    }
    request(&m, KV_GET, "value/0", 7);
    m.w[2] = 1; /* a word no request uses */
    int64_t stray_word = call(&m);
    request(&m, KV_DELETE, "no such key", 11);
    int64_t missing_delete = call(&m);
    request(&m, KV_STATS, "", 0);
    m.len = IPC_PAYLOAD_MAX;
    int64_t stats_payload = call(&m);

    test_check(t, "unknown_label", unknown == -ENOSYS, "label 99 gave %ld", unknown);
    test_check(t, "key_too_long", long_put == -EINVAL && seg_back && long_get == -EINVAL && empty_get == -EINVAL,
               "put %ld (segment back %d), get %ld, empty key %ld", long_put, seg_back, long_get, empty_get);
    test_check(t, "get_missing", missing == -ENOENT && missing_no_seg, "GET of a missing key gave %ld", missing);
    test_check(t, "put_without_segment", no_seg == -EINVAL, "gave %ld", no_seg);
    test_check(t, "put_length_past_segment", too_big == 0 && lie == -EINVAL, "exact %ld, one byte over %ld", too_big,
               lie);
    test_check(t, "stray_words_and_payload", stray_word == -EINVAL && stats_payload == -EINVAL,
               "GET with w2 %ld, STATS with a payload %ld", stray_word, stats_payload);
    test_check(t, "delete_missing", missing_delete == -ENOENT, "gave %ld", missing_delete);
}

/* Deletes every key, page by page from the start. */
static void check_delete_all(struct test_run *t, uint64_t charged_before)
{
    struct ipc_msg m;
    unsigned deleted = 0, failures = 0;
    for (int rounds = 0; rounds < 1000; rounds++) {
        request(&m, KV_LIST, "", 0);
        if (call(&m) != 0)
            break;
        struct kv_list_page page;
        memcpy(&page, m.payload, sizeof(page));
        if (page.count == 0)
            break;
        size_t at = 0;
        for (unsigned k = 0; k < page.count; k++) {
            char key[KV_KEY_MAX];
            size_t n = page.data[at];
            memcpy(key, &page.data[at + 1], n);
            at += 1 + n;
            request(&m, KV_DELETE, key, n);
            if (call(&m) == 0 && kv_delete_reply_get(&m).id != 0)
                deleted++;
            else
                failures++;
        }
    }
    struct kv_stats st = { 0 };
    int64_t s = stats(&st);
    uint64_t after = charged();
    test_check(t, "delete_all",
               s == 0 && failures == 0 && st.keys == 0 && st.value_bytes == 0 && st.segment_bytes == 0 &&
                   st.ids_in_use == 0 && deleted > LIST_KEYS,
               "deleted %u, %u failed; left: %lu keys, %lu bytes, %lu ids", deleted, failures, st.keys, st.value_bytes,
               st.ids_in_use);
    test_check(t, "values_back_to_memsrv", charged_before != UINT64_MAX && after == charged_before,
               "memsrv charges this client %lu bytes, %lu at the start", after, charged_before);
    test_check(t, "stats_count_requests",
               st.puts > LIST_KEYS && st.gets >= NVALUES && st.deletes == deleted && st.errors >= 8 &&
                   st.requests > st.errors && st.reply_failures == 0,
               "puts %lu gets %lu deletes %lu errors %lu requests %lu reply failures %lu", st.puts, st.gets, st.deletes,
               st.errors, st.requests, st.reply_failures);
}

int main(int argc, char **argv)
{
    struct test_run t;
    test_begin(&t, "kvstore", argc, argv);
    kv_ep = startup_handle(ABI_STARTUP_SERVICE);
    if (!test_check(&t, "endpoint", kv_ep != HANDLE_NONE, "no endpoint in startup slot SERVICE"))
        test_exit(&t);
    uint64_t before = charged();

    check_values(&t);
    check_list(&t);
    check_bad_requests(&t);
    check_delete_all(&t, before);

    struct ipc_msg m;
    request(&m, KV_SHUTDOWN, "", 0);
    int64_t r = call(&m);
    test_check(&t, "shutdown", r == 0, "KV_SHUTDOWN gave %ld", r);
    test_exit(&t);
}
