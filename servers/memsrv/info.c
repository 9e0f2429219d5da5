/*
 * Memory-server layer: the requests that only look (STATS, MAP, CHECK) and
 * the map picture, which boot.c also prints at start. Called by dispatch.c.
 *
 * Byte counts are disjoint: total = free + used + locked, where used is
 * movable segments (and the destinations of migrations under way) and
 * locked is kernel spans, the server's books, and pinned or quarantined
 * segments. Called with the books lock held.
 */
#include <common/fmt.h>
#include <common/string.h>

#include "ms_server.h"

enum map_class { MAP_FREE, MAP_USED, MAP_LOCKED, MAP_KERNEL, MAP_CLASSES };
static const char map_chars[MAP_CLASSES] = { '.', '#', 'L', 'K' };

static enum map_class span_class(struct memsrv *ms, const struct span_info *info)
{
    const struct ms_record *rec;

    if (info->state == SPAN_FREE)
        return MAP_FREE;
    if (info->state == SPAN_IN_TRANSIT)
        return MAP_USED;
    rec = books_record(ms, info->tag);
    if (rec != NULL && rec->kind == MS_REC_KERNEL)
        return MAP_KERNEL;
    return info->state == SPAN_LOCKED ? MAP_LOCKED : MAP_USED;
}

/* ---- STATS ----------------------------------------------------------- */

struct region_walk {
    struct memsrv *ms;
    unsigned region;
    uint64_t segments, largest_free;
};

static int region_span(void *ctx, const struct span_info *info)
{
    struct region_walk *w = ctx;
    const struct ms_record *rec;

    if (info->region != w->region)
        return 0;
    if (info->state == SPAN_FREE) {
        if (info->size > w->largest_free)
            w->largest_free = info->size;
        return 0;
    }
    rec = books_record(w->ms, info->tag);
    if (rec != NULL && rec->kind == MS_REC_SEGMENT)
        w->segments++;
    return 0;
}

/* A migration under way holds its destination in transit: counted as free
 * here, since the move leaves exactly one of its two spans in use, so free
 * memory reads the same before, during and after a background move. */
static void stats_global(struct memsrv *ms, const struct span_stats *st, struct ms_stats_global *g)
{
    *g = (struct ms_stats_global){
        .total_bytes = st->total_bytes,
        .free_bytes = st->free_bytes + st->transit_bytes,
        .used_bytes = st->total_bytes - st->free_bytes - st->transit_bytes - st->locked_bytes,
        .locked_bytes = st->locked_bytes,
        .largest_free = st->largest_free,
        .segments = ms->segments,
        .regions = st->region_count,
        .moves = ms->moves,
        .bytes_moved = ms->bytes_moved,
        .frag_score = st->fragmentation_score,
        .unusable_index = st->unusable_index,
        .alloc_failures = ms->alloc_failures,
        .quarantined_bytes = ms->quarantined_bytes,
        .clients = ms->client_count,
        .compactions = ms->compactions,
        .books_bytes = ms->books_size,
    };
}

/* The upper edge of the wait histogram's bucket that holds the given
 * fraction (per mille) of the waits: a power of two of nanoseconds. */
static uint64_t wait_percentile(const struct memsrv *ms, unsigned permille)
{
    uint64_t total = 0, seen = 0;
    unsigned b;

    for (b = 0; b < MS_WAIT_BUCKETS; b++)
        total += ms->wait_hist[b];
    for (b = 0; b < MS_WAIT_BUCKETS && total != 0; b++) {
        seen += ms->wait_hist[b];
        if (seen * 1000 >= total * permille)
            return b + 1 < 64 ? (uint64_t)1 << (b + 1) : UINT64_MAX;
    }
    return 0;
}

/* ---- the looks at every span: their share of the server's time -------
 *
 * CHECK, STATS_REGION and the whole MAP look at every span with the books
 * locked: a check takes about 90 ms natively on 5 GiB filled with 4 KiB
 * segments, a second under QEMU TCG. A client asking in a loop from
 * several threads would keep the lock for itself and every other request
 * waiting. So a client's (init's are not counted: it is trusted) runs only
 * once MS_DIAG_FACTOR times the length of the last one has passed since it
 * ended, else -EAGAIN with the wait in w0: together they take at most a
 * fifth of the server's time. A client refused while another ran the last
 * one is owed the next for MS_DIAG_OWED_NS, so a client asking in a loop
 * cannot take every turn.
 */
static int64_t diag_admit(struct memsrv *ms, uint64_t pid, struct ipc_msg *reply)
{
    uint64_t now = ms->k->clock_ns(ms->k->ctx), until = 0;

    if (pid != 0 && pid == ms->init_pid)
        return 0;
    if (ms->diag_owed_pid != 0 && now >= ms->diag_after_ns + MS_DIAG_OWED_NS)
        ms->diag_owed_pid = 0; /* it did not come back for its turn */
    if (now < ms->diag_after_ns)
        until = ms->diag_after_ns;
    else if (ms->diag_owed_pid != 0 && ms->diag_owed_pid != pid)
        until = ms->diag_after_ns + MS_DIAG_OWED_NS;
    if (until == 0)
        return 0;
    if (ms->diag_owed_pid == 0 && pid != ms->diag_last_pid)
        ms->diag_owed_pid = pid;
    ms_again_reply_put(reply, (struct ms_again_reply){ .wait_ns = until - now });
    return -EAGAIN;
}

static void diag_done(struct memsrv *ms, uint64_t pid, uint64_t start)
{
    uint64_t end = ms->k->clock_ns(ms->k->ctx);

    if (pid != 0 && pid == ms->init_pid)
        return;
    ms->diag_after_ns = end + MS_DIAG_FACTOR * (end - start);
    ms->diag_last_pid = pid;
    if (ms->diag_owed_pid == pid)
        ms->diag_owed_pid = 0;
}

/* A STATS request's words, checked before anything is taken back or
 * flushed: a malformed request changes nothing. 0, -EINVAL, -EPERM or
 * -ENOENT. */
static int stats_request_check(const struct memsrv *ms, const struct ipc_msg *req, struct ms_stats_req args)
{
    switch (args.kind) {
    case MS_STATS_GLOBAL:
    case MS_STATS_COMPACTION:
    case MS_STATS_RESTART: return args.which == 0 ? 0 : -EINVAL;
    case MS_STATS_CLIENT:
        /* A client learns about itself; only init may ask about anyone. */
        return args.which == 0 || args.which == req->badge || (ms->init_pid != 0 && req->badge == ms->init_pid)
                   ? 0
                   : -EPERM;
    case MS_STATS_REGION: return args.which < ms->span.region_count ? 0 : -ENOENT;
    default: return -EINVAL;
    }
}

int64_t req_stats(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply)
{
    const struct ms_stats_req args = ms_stats_req_get(req);
    struct span_stats st;
    int err = stats_request_check(ms, req, args);

    if (err != 0)
        return err;
    /* Figures as of now: what ended processes and released quarantines
     * gave back is taken first, since the notification that announces it
     * may sit with another service thread (a caller that waited for a
     * process to end reads its memory back here). */
    reclaim_drain(ms);
    ready_flush(ms); /* the books as they are without the ready layer */
    span_stats(&ms->span, &st);
    if (args.kind == MS_STATS_GLOBAL) {
        struct ms_stats_global g;
        stats_global(ms, &st, &g);
        memcpy(reply->payload, &g, sizeof(g));
        reply->len = sizeof(g);
    } else if (args.kind == MS_STATS_CLIENT) {
        uint64_t pid = args.which != 0 ? args.which : req->badge;
        uint32_t i = books_client(ms, pid, false);
        struct ms_stats_client c = { .pid = pid };
        if (i != MS_NO_CLIENT) {
            const struct ms_client *cl = &ms->clients[i];
            c = (struct ms_stats_client){ .pid = pid,
                                          .bytes = cl->bytes,
                                          .segments = cl->segments,
                                          .allocs = cl->allocs,
                                          .frees = cl->frees,
                                          .failures = cl->failures,
                                          .quota_refusals = cl->quota_refusals };
        } else if (pid != req->badge) {
            return -ENOENT;
        }
        memcpy(reply->payload, &c, sizeof(c));
        reply->len = sizeof(c);
    } else if (args.kind == MS_STATS_COMPACTION) {
        struct ms_stats_compaction c = ms->cstats;
        c.wait_p99_ns = wait_percentile(ms, 990);
        memcpy(reply->payload, &c, sizeof(c));
        reply->len = sizeof(c);
    } else if (args.kind == MS_STATS_REGION) {
        struct region_walk w = { .ms = ms };
        struct ms_stats_region r;
        const struct span_region *sr;
        uint64_t start;
        if (diag_admit(ms, req->badge, reply) != 0)
            return -EAGAIN;
        start = ms->k->clock_ns(ms->k->ctx);
        sr = &st.regions[args.which];
        w.region = (unsigned)args.which;
        span_walk(&ms->span, region_span, &w);
        diag_done(ms, req->badge, start);
        r = (struct ms_stats_region){
            .base = sr->base,
            .size = sr->size,
            .free_bytes = sr->free_bytes,
            .used_bytes = sr->size - sr->free_bytes - sr->transit_bytes - sr->locked_bytes,
            .locked_bytes = sr->locked_bytes,
            .largest_free = w.largest_free,
            .segments = w.segments,
        };
        memcpy(reply->payload, &r, sizeof(r));
        reply->len = sizeof(r);
    } else {
        restart_stats(ms, reply);
    }
    return 0;
}

/* ---- CHECK ----------------------------------------------------------- */

int64_t req_check(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply)
{
    char why[IPC_PAYLOAD_MAX];
    uint64_t start;
    int err;

    if (diag_admit(ms, req->badge, reply) != 0)
        return -EAGAIN;
    start = ms->k->clock_ns(ms->k->ctx);
    err = books_check(ms, why, sizeof(why));
    diag_done(ms, req->badge, start);
    if (err != 0) {
        ms_log(ms, "memsrv: check failed: %s", why);
        reply->len = (uint32_t)strnlen(why, sizeof(why) - 1) + 1;
        memcpy(reply->payload, why, reply->len);
        return err;
    }
    return 0;
}

/* ---- MAP ------------------------------------------------------------- */

/* One row at a time; static because it is large (the books lock guards it). */
static struct {
    struct memsrv *ms;
    unsigned columns;
    int region; /* -1: no row started */
    uint64_t base, end, chunk, prev_end;
    uint64_t bytes[MS_MAP_COLUMNS_MAX][MAP_CLASSES];
} map;

/* A character's picture of what its bytes hold: kernel or locked if any,
 * used if mostly, free if any, a hole if nothing. */
static char chunk_char(const uint64_t *b)
{
    if (b[MAP_KERNEL] != 0)
        return map_chars[MAP_KERNEL];
    if (b[MAP_LOCKED] != 0)
        return map_chars[MAP_LOCKED];
    if (b[MAP_USED] != 0 && b[MAP_USED] >= b[MAP_FREE])
        return map_chars[MAP_USED];
    return b[MAP_FREE] != 0 ? map_chars[MAP_FREE] : ' ';
}

static void map_flush(void)
{
    char row[MS_MAP_COLUMNS_MAX + 1];
    unsigned i;

    if (map.region < 0)
        return;
    if (map.prev_end != 0 && map.base > map.prev_end)
        ms_print(map.ms, "   hole %#llx-%#llx (%llu KiB)", (unsigned long long)map.prev_end,
                 (unsigned long long)map.base, (unsigned long long)((map.base - map.prev_end) >> 10));
    for (i = 0; i < map.columns; i++)
        row[i] = map.base + (uint64_t)i * map.chunk >= map.end ? ' ' : chunk_char(map.bytes[i]);
    row[map.columns] = 0;
    ms_print(map.ms, "%2d 0x%010llx %6llu KiB/char |%s|", map.region, (unsigned long long)map.base,
             (unsigned long long)(map.chunk >> 10), row);
    map.prev_end = map.end;
}

static int map_span(void *ctx, const struct span_info *info)
{
    enum map_class cls = span_class(ctx, info);
    uint64_t at = info->base, end = info->base + info->size;

    if ((int)info->region != map.region) {
        const struct span_region *r = &map.ms->span.regions[info->region];
        uint64_t chunk = (r->size + map.columns - 1) / map.columns;
        map_flush();
        map.region = (int)info->region;
        map.base = r->base;
        map.end = r->base + r->size;
        map.chunk = (chunk + SPAN_GRANULE - 1) & ~(SPAN_GRANULE - 1);
        memset(map.bytes, 0, sizeof(map.bytes));
    }
    while (at < end) {
        uint64_t col = (at - map.base) / map.chunk;
        uint64_t col_end = map.base + (col + 1) * map.chunk;
        uint64_t piece_end = col_end < end ? col_end : end;
        if (col >= map.columns)
            break;
        map.bytes[col][cls] += piece_end - at;
        at = piece_end;
    }
    return 0;
}

void map_print(struct memsrv *ms, unsigned columns)
{
    struct span_stats st;

    map.ms = ms;
    map.columns = columns;
    map.region = -1;
    map.prev_end = 0;
    ms_print(ms, "memsrv map: '.' free  '#' used  'L' locked  'K' kernel  ' ' hole");
    span_walk(&ms->span, map_span, ms);
    map_flush();
    span_stats(&ms->span, &st);
    ms_print(ms,
             "memsrv map: %llu MiB: %llu MiB free, %llu MiB used in %llu segments, "
             "%llu KiB locked (%llu KiB kernel, %llu KiB quarantined), largest free %llu KiB, "
             "score %u/1000, %llu moves",
             (unsigned long long)(st.total_bytes >> 20), (unsigned long long)(st.free_bytes >> 20),
             (unsigned long long)((st.used_bytes - st.locked_bytes) >> 20), (unsigned long long)ms->segments,
             (unsigned long long)(st.locked_bytes >> 10), (unsigned long long)(ms->kernel_bytes >> 10),
             (unsigned long long)(ms->quarantined_bytes >> 10), (unsigned long long)(st.largest_free >> 10),
             st.fragmentation_score, (unsigned long long)ms->moves);
}

/* The zoom: MS_MAP_ZOOM_ROWS rows of `columns` characters of per_char
 * bytes each from base, found span by span (span_lookup) rather than by a
 * walk of all the books: the picture is small, the books may be large. */
static void map_zoom(struct memsrv *ms, uint64_t base, uint64_t per_char, unsigned columns)
{
    uint64_t row_bytes = per_char * columns;
    unsigned row;

    ms_print(ms, "memsrv zoom: %llu KiB/char from 0x%llx: '.' free  '#' used  'L' locked  'K' kernel  ' ' hole",
             (unsigned long long)(per_char >> 10), (unsigned long long)base);
    for (row = 0; row < MS_MAP_ZOOM_ROWS; row++) {
        uint64_t row_base = base + row * row_bytes, at = row_base, end = row_base + row_bytes;
        char line[MS_MAP_COLUMNS_MAX + 1];
        unsigned i;

        memset(map.bytes, 0, sizeof(map.bytes));
        while (at < end) {
            struct span_info info;
            uint64_t span_end;
            if (span_lookup(&ms->span, at, &info) != 0) {
                at = (at + SPAN_GRANULE) & ~(SPAN_GRANULE - 1); /* a hole */
                continue;
            }
            span_end = info.base + info.size < end ? info.base + info.size : end;
            while (at < span_end) {
                uint64_t col = (at - row_base) / per_char;
                uint64_t piece_end = row_base + (col + 1) * per_char;
                if (piece_end > span_end)
                    piece_end = span_end;
                map.bytes[col][span_class(ms, &info)] += piece_end - at;
                at = piece_end;
            }
        }
        for (i = 0; i < columns; i++)
            line[i] = chunk_char(map.bytes[i]);
        line[columns] = 0;
        ms_print(ms, "   0x%010llx |%s|", (unsigned long long)row_base, line);
    }
}

int64_t req_map(struct memsrv *ms, struct ipc_msg *req, struct ipc_msg *reply)
{
    const struct ms_map_req args = ms_map_req_get(req);
    uint64_t columns = args.columns != 0 ? args.columns : MS_MAP_COLUMNS_DEFAULT;
    uint64_t base = args.base, per_char = args.per_char;
    uint64_t now = ms->k->clock_ns(ms->k->ctx);

    if (columns > MS_MAP_COLUMNS_MAX)
        return -EINVAL;
    if (per_char == 0 ? base != 0
                      : (per_char != MS_MAP_ZOOM_4K && per_char != MS_MAP_ZOOM_64K) || base % per_char != 0 ||
                            base > UINT64_MAX - per_char * columns * MS_MAP_ZOOM_ROWS)
        return -EINVAL;
    /* A map is a screenful: a client asking in a loop would drown the
     * console for everyone. */
    if (now - ms->map_window_start >= MS_MAP_WINDOW_NS || ms->map_window_start == 0) {
        ms->map_window_start = now;
        ms->maps_in_window = 0;
    }
    if (ms->maps_in_window >= MS_MAPS_PER_WINDOW)
        return -EAGAIN;
    /* Once a map is admitted, the ready layer goes back: the map shows the
     * books as they are without it. */
    if (per_char != 0) {
        ms->maps_in_window++;
        ready_flush(ms);
        map_zoom(ms, base, per_char, (unsigned)columns);
        return 0;
    }
    /* The whole map walks every span, as CHECK does, and shares its budget. */
    if (diag_admit(ms, req->badge, reply) != 0)
        return -EAGAIN;
    ms->maps_in_window++;
    ready_flush(ms);
    map_print(ms, (unsigned)columns);
    diag_done(ms, req->badge, now);
    return 0;
}
