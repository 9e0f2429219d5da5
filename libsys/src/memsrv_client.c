/*
 * libsys: the memory server's client API (libsys/memsrv.h), called by user
 * programs and by libsys's own malloc backend. Each call is one
 * SYS_IPC_CALL with a label of proto/memsrv.h; the server's reply label is 0
 * or a negative error stored as a uint64, returned here as is.
 *
 * The server may crash and be restarted by init. A call that meets that
 * (-EPEER: nobody receives on the endpoint, or the server ended holding the
 * call) is made again, sleeping 1 ms, then twice as long each time up to
 * 100 ms, until MS_RESTART_WAIT_NS of sleep in all; then -EPEER. Only the
 * time with no server counts: once a successor receives, a call waits in
 * its queue like any call. Repeating is safe because the kernel keeps
 * every segment where it is and a request the dead server had taken is
 * forgotten with it:
 *   - ALLOC: a segment it had made and not handed over is freed by its
 *     successor (it was the server's, so it comes back as reclaimed);
 *   - FREE: if the segment had reached the server, the handle is gone and
 *     the call is over (the successor frees it); otherwise it is sent again;
 *   - MOVE, COMPACT: a migration is one system call, done or not done; a
 *     second try finds the segment where the first left it;
 *   - REVOKE (init): a segment the dead server had taken is freed by its
 *     successor, so the repeat may answer -ENOENT for a revoke that
 *     happened;
 *   - STATS, MAP, CHECK only look.
 *   - FREE_BATCH: the kernel frees the batch all at once; if its first
 *     handle is gone, the dead server had freed them all;
 *   - ALLOC_BATCH: the segments are handed over before the reply, so a
 *     server that dies in between leaves them with the caller, charged to
 *     it, under handles it never learns (until it exits); the repeat
 *     allocates afresh.
 * In the common case the wrapper costs a copy of the request's label,
 * words and segment before the call (and of the payload, FREE_BATCH's
 * handles, the one request that carries one).
 */
#include <common/string.h>
#include <libsys/ipc_msg.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/syscall.h>

static handle_t endpoint_override = HANDLE_NONE;

handle_t ms_endpoint(void)
{
    return endpoint_override != HANDLE_NONE ? endpoint_override : startup_handle(ABI_STARTUP_MEMSRV);
}

void ms_set_endpoint(handle_t ep) { endpoint_override = ep; }

/* The header only: the kernel reads no payload byte past len (0 here). */
static void msg_init(struct ipc_msg *m, enum ms_label label)
{
    ipc_msg_clear_header(m);
    m->label = label;
}

#define MS_RESTART_WAIT_NS (10ull * 1000 * 1000 * 1000)
#define MS_RETRY_FIRST_NS  (1ull * 1000 * 1000)
#define MS_RETRY_MAX_NS    (100ull * 1000 * 1000)

/* The server's answer, or the kernel's error when the call itself failed.
 * m was made by msg_init: its label, words and segment say it all. */
static int64_t call(struct ipc_msg *m)
{
    handle_t ep = ms_endpoint();
    uint64_t label = m->label, w[IPC_WORDS], slept = 0, pause = MS_RETRY_FIRST_NS;
    handle_t seg = m->seg, first = HANDLE_NONE;
    uint8_t payload[IPC_PAYLOAD_MAX];
    uint32_t len = m->len;
    int64_t err;

    if (ep == HANDLE_NONE)
        return -EBADH;
    __builtin_memcpy(w, m->w, sizeof(w)); /* inline: a few moves on every call */
    if (len != 0)
        memcpy(payload, m->payload, len);
    /* A FREE_BATCH's segments go all at once: the first tells for all. */
    if (label == MS_FREE_BATCH && len >= sizeof(first))
        memcpy(&first, payload, sizeof(first));
    for (;;) {
        struct abi_seg_info info;
        err = sys_ipc_call(ep, m, TIMEOUT_FOREVER);
        if (err != -EPEER)
            break;
        /* A segment that reached the dead server is no longer the caller's. */
        if (seg != HANDLE_NONE && sys_seg_info(seg, &info) != 0)
            return label == MS_FREE ? 0 : err;
        if (first != HANDLE_NONE && sys_seg_info(first, &info) != 0)
            return 0;
        if (slept >= MS_RESTART_WAIT_NS)
            break;
        sys_sleep(pause);
        slept += pause;
        pause = pause * 2 < MS_RETRY_MAX_NS ? pause * 2 : MS_RETRY_MAX_NS;
        msg_init(m, (enum ms_label)label);
        memcpy(m->w, w, sizeof(w));
        m->seg = seg;
        m->len = len;
        if (len != 0)
            memcpy(m->payload, payload, len);
    }
    if (err < 0)
        return err;
    return (int64_t)m->label;
}

/* Whether m holds the server's reply (else the call failed in the kernel
 * and m is still the request). */
static bool answered(const struct ipc_msg *m, int64_t result) { return result >= 0 || m->label == (uint64_t)result; }

/* CHECK, STATS_REGION and the whole MAP, which the server turns away for a
 * while when a client's last one was recent (-EAGAIN, w0 the wait:
 * proto/memsrv.h): waits as told and asks again, for up to
 * MS_RESTART_WAIT_NS of waiting. MAP's own limit of a few a second is
 * -EAGAIN without a wait: not asked again. Their requests carry words only. */
static int64_t call_admitted(struct ipc_msg *m)
{
    uint64_t label = m->label, w[IPC_WORDS], waited = 0;
    int64_t err;

    __builtin_memcpy(w, m->w, sizeof(w));
    for (;;) {
        uint64_t wait;
        err = call(m);
        if (err != -EAGAIN || !answered(m, err))
            return err;
        wait = ms_again_reply_get(m).wait_ns;
        if (wait == 0 || waited >= MS_RESTART_WAIT_NS)
            return err;
        if (wait > MS_RETRY_MAX_NS)
            wait = MS_RETRY_MAX_NS;
        sys_sleep(wait);
        waited += wait;
        msg_init(m, (enum ms_label)label);
        __builtin_memcpy(m->w, w, sizeof(w));
    }
}

int64_t ms_alloc(uint64_t size, uint64_t align, unsigned flags, uint64_t limit, struct ms_segment *out)
{
    struct ipc_msg m;
    int64_t err;

    if (out == NULL)
        return -EINVAL;
    msg_init(&m, MS_ALLOC);
    ms_alloc_req_put(&m, (struct ms_alloc_req){ .size = size, .align = align, .flags = flags, .limit = limit });
    err = call(&m);
    if (err < 0)
        return err;
    if (m.seg == HANDLE_NONE)
        return -EPEER; /* a success without a segment: not a memory server */
    out->handle = m.seg;
    out->addr = (void *)(uintptr_t)m.seg_addr;
    out->size = m.seg_size;
    out->sid = ms_alloc_reply_get(&m).sid;
    return 0;
}

int64_t ms_free(handle_t seg)
{
    struct ipc_msg m;

    msg_init(&m, MS_FREE);
    m.seg = seg;
    /* On an error the server gives the segment back: it is mapped into the
     * caller again, under the handle m.seg, which this API cannot return
     * (see docs/memsrv.md, "Client API"). */
    return call(&m);
}

int64_t ms_alloc_batch(unsigned count, uint64_t size, uint64_t align, unsigned flags, struct ms_segment *out)
{
    struct ms_batch_seg segs[MS_BATCH_MAX];
    struct ipc_msg m;
    uint64_t got;
    int64_t err;

    if (out == NULL || count > MS_BATCH_MAX)
        return -EINVAL;
    msg_init(&m, MS_ALLOC_BATCH);
    ms_alloc_batch_req_put(&m,
                           (struct ms_alloc_batch_req){ .count = count, .size = size, .align = align, .flags = flags });
    err = call(&m);
    if (err < 0)
        return err;
    if (m.len != count * sizeof(segs[0]))
        return -EPEER; /* not a memory server's answer */
    memcpy(segs, m.payload, m.len);
    got = ms_alloc_batch_reply_get(&m).size;
    for (unsigned i = 0; i < count; i++)
        out[i] = (struct ms_segment){ .handle = segs[i].handle, .addr = (void *)(uintptr_t)segs[i].vaddr, .size = got };
    return 0;
}

int64_t ms_free_batch(const handle_t *segs, unsigned count)
{
    struct ipc_msg m;

    if ((segs == NULL && count != 0) || count > MS_BATCH_MAX)
        return -EINVAL;
    msg_init(&m, MS_FREE_BATCH);
    ms_free_batch_req_put(&m, (struct ms_free_batch_req){ .count = count });
    m.len = (uint32_t)(count * sizeof(handle_t));
    if (count != 0)
        memcpy(m.payload, segs, m.len);
    return call(&m);
}

static int64_t stats(enum ms_stats_kind kind, uint64_t which, void *out, size_t size)
{
    struct ipc_msg m;
    int64_t err;

    if (out == NULL)
        return -EINVAL;
    msg_init(&m, MS_STATS);
    ms_stats_req_put(&m, (struct ms_stats_req){ .kind = kind, .which = which });
    err = call_admitted(&m);
    if (err < 0)
        return err;
    if (m.len != size)
        return -EINVAL;
    memcpy(out, m.payload, size);
    return 0;
}

int64_t ms_stats_global(struct ms_stats_global *out) { return stats(MS_STATS_GLOBAL, 0, out, sizeof(*out)); }

int64_t ms_stats_client(uint64_t pid, struct ms_stats_client *out)
{
    return stats(MS_STATS_CLIENT, pid, out, sizeof(*out));
}

int64_t ms_stats_region(unsigned index, struct ms_stats_region *out)
{
    return stats(MS_STATS_REGION, index, out, sizeof(*out));
}

int64_t ms_stats_compaction(struct ms_stats_compaction *out)
{
    return stats(MS_STATS_COMPACTION, 0, out, sizeof(*out));
}

int64_t ms_stats_restart(struct ms_stats_restart *out) { return stats(MS_STATS_RESTART, 0, out, sizeof(*out)); }

int64_t ms_compact(enum ms_compact_mode mode, uint64_t size, uint64_t align, uint64_t limit, uint64_t *moves,
                   uint64_t *bytes_moved)
{
    struct ms_compact_req args = { .mode = mode };
    struct ms_compact_reply done = { 0 };
    struct ipc_msg m;
    int64_t err;

    msg_init(&m, MS_COMPACT);
    if (mode == MS_COMPACT_TARGET)
        args = (struct ms_compact_req){ .mode = mode, .size = size, .align = align, .limit = limit };
    ms_compact_req_put(&m, args);
    err = call(&m);
    /* The server reports its counts even when a targeted run fails. */
    if (answered(&m, err))
        done = ms_compact_reply_get(&m);
    if (moves != NULL)
        *moves = done.moves;
    if (bytes_moved != NULL)
        *bytes_moved = done.bytes_moved;
    return err;
}

int64_t ms_map(unsigned columns) { return ms_map_zoom(0, 0, columns); }

int64_t ms_map_zoom(uint64_t base, uint64_t per_char, unsigned columns)
{
    struct ipc_msg m;

    msg_init(&m, MS_MAP);
    ms_map_req_put(&m, (struct ms_map_req){ .columns = columns, .base = base, .per_char = per_char });
    return call_admitted(&m);
}

/* REVOKE: a sid in, only a label back. */
static int64_t sid_call(enum ms_label label, uint64_t sid)
{
    struct ipc_msg m;

    msg_init(&m, label);
    ms_sid_req_put(&m, (struct ms_sid_req){ .sid = sid });
    return call(&m);
}

int64_t ms_move_to(uint64_t sid, uint64_t *base)
{
    struct ipc_msg m;
    int64_t err;

    msg_init(&m, MS_MOVE);
    ms_sid_req_put(&m, (struct ms_sid_req){ .sid = sid });
    err = call(&m);
    if (err == 0 && base != NULL)
        *base = ms_move_reply_get(&m).base;
    return err;
}

int64_t ms_move(uint64_t sid) { return ms_move_to(sid, NULL); }

int64_t ms_revoke(uint64_t sid) { return sid_call(MS_REVOKE, sid); }

int64_t ms_check(char *why, size_t len)
{
    struct ipc_msg m;
    int64_t err;

    msg_init(&m, MS_CHECK);
    err = call_admitted(&m);
    if (why != NULL && len > 0) {
        size_t n = 0;
        if (err < 0 && answered(&m, err) && m.len <= IPC_PAYLOAD_MAX)
            n = strnlen((const char *)m.payload, m.len);
        if (n >= len)
            n = len - 1;
        memcpy(why, m.payload, n);
        why[n] = 0;
    }
    return err;
}
