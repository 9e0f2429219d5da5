/*
 * Memory-server layer: the request table libsys's server loop runs, and the
 * kernel's notifications. memsrv.c's service threads reach the handlers
 * through ms->srv (server_run); the host tests through memsrv_handle, which
 * does what the loop does with one message.
 *
 * As in Minix's VM server, one table says per label: the handler, its name
 * for the log, who may call it and which words it reads (the size of its
 * request's struct in proto/memsrv.h). The loop refuses a
 * request before anything changes when its label is unknown (-ENOSYS), the
 * caller lacks the right (init-only labels: -EPERM), a word the label does
 * not use is not zero, it carries a payload, or it carries a segment where
 * none is expected or lacks one where one is (-EINVAL). A segment that came
 * with a refused or failed request goes back to the caller in the reply; if
 * the reply cannot deliver it, memsrv_reply_failed destroys it, so nothing
 * leaks. An error reply's words and payload are zero unless the handler
 * documents otherwise (COMPACT's counts, CHECK's reason).
 *
 * Each handler runs with the books lock held (books_lock); those that
 * migrate or wait release it inside (compact.c, "Discipline").
 */
#include <common/string.h>

#include "ms_server.h"

/* Logging every malformed request would let a client flood the console. */
#define MALFORMED_LOGGED 32u

static struct memsrv *server_of(const struct server *srv) { return srv->ctx; }

/* A table entry's handler: the memsrv handler under the books lock. */
#define LOCKED(fn)                                                                                                     \
    static int64_t locked_##fn(struct server *srv, struct ipc_msg *req, struct ipc_msg *reply)                         \
    {                                                                                                                  \
        struct memsrv *ms = server_of(srv);                                                                            \
        int64_t r;                                                                                                     \
        books_lock(ms);                                                                                                \
        r = fn(ms, req, reply);                                                                                        \
        restart_answered(ms);                                                                                          \
        compact_schedule(ms);                                                                                          \
        books_unlock(ms);                                                                                              \
        return r;                                                                                                      \
    }

LOCKED(req_alloc)
LOCKED(req_free)
LOCKED(req_alloc_batch)
LOCKED(req_free_batch)
LOCKED(req_stats)
LOCKED(req_compact)
LOCKED(req_map)
LOCKED(req_check)
LOCKED(req_move)
LOCKED(req_revoke)
LOCKED(req_fault)
LOCKED(req_recovery)

#define CHECKED   (SERVER_OP_WORDS | SERVER_OP_NO_PAYLOAD)
#define INIT_ONLY (CHECKED | SERVER_OP_SEG_REFUSED | SERVER_OP_TRUSTED)

static const struct server_op requests[] = {
    { MS_ALLOC, locked_req_alloc, "alloc", CHECKED | SERVER_OP_SEG_REFUSED, PROTO_WORDS_USED(ms_alloc_req) },
    { MS_FREE, locked_req_free, "free", CHECKED | SERVER_OP_SEG_REQUIRED, 0 },
    { MS_STATS, locked_req_stats, "stats", CHECKED | SERVER_OP_SEG_REFUSED, PROTO_WORDS_USED(ms_stats_req) },
    { MS_COMPACT, locked_req_compact, "compact", CHECKED | SERVER_OP_SEG_REFUSED, PROTO_WORDS_USED(ms_compact_req) },
    { MS_MAP, locked_req_map, "map", CHECKED | SERVER_OP_SEG_REFUSED, PROTO_WORDS_USED(ms_map_req) },
    { MS_CHECK, locked_req_check, "check", CHECKED | SERVER_OP_SEG_REFUSED, 0 },
    { MS_MOVE, locked_req_move, "move", CHECKED | SERVER_OP_SEG_REFUSED, PROTO_WORDS_USED(ms_sid_req) },
    { MS_REVOKE, locked_req_revoke, "revoke", INIT_ONLY, PROTO_WORDS_USED(ms_sid_req) },
    { MS_FAULT, locked_req_fault, "fault", INIT_ONLY, PROTO_WORDS_USED(ms_fault_req) },
    { MS_RECOVERY, locked_req_recovery, "recovery", INIT_ONLY, PROTO_WORDS_USED(ms_recovery_req) },
    { MS_ALLOC_BATCH, locked_req_alloc_batch, "alloc batch", CHECKED | SERVER_OP_SEG_REFUSED,
      PROTO_WORDS_USED(ms_alloc_batch_req) },
    { MS_FREE_BATCH, locked_req_free_batch, "free batch", SERVER_OP_WORDS | SERVER_OP_SEG_REFUSED,
      PROTO_WORDS_USED(ms_free_batch_req) },
};

/* Init-only labels: init.pid from the arguments, none without it. */
static bool trusted(const struct server *srv, uint64_t badge)
{
    const struct memsrv *ms = server_of(srv);
    return ms->init_pid != 0 && badge == ms->init_pid;
}

static void refused(struct server *srv, const struct ipc_msg *req, const char *what, int64_t err)
{
    struct memsrv *ms = server_of(srv);

    books_lock(ms);
    if (ms->malformed++ < MALFORMED_LOGGED)
        ms_log(ms, "memsrv: pid %#llx: %s (label %#llx): %lld", (unsigned long long)req->badge, what,
               (unsigned long long)req->label, (long long)err);
    books_unlock(ms);
}

/* Never happens: no label takes a segment and replies with one. Should it,
 * the segment is the server's and goes back to free memory. */
static void release_seg(struct server *srv, handle_t seg)
{
    struct ipc_msg m = { .seg = seg };
    memsrv_reply_failed(server_of(srv), &m, -EINVAL);
}

static void reply_failed(struct server *srv, struct ipc_msg *reply, int64_t err)
{
    memsrv_reply_failed(server_of(srv), reply, err);
}

static void notified(struct server *srv, const struct ipc_msg *note) { memsrv_notify(server_of(srv), note->w[0]); }

void memsrv_server_init(struct memsrv *ms)
{
    server_init(&ms->srv, "memsrv", HANDLE_NONE, requests, sizeof(requests) / sizeof(requests[0]), ms);
    ms->srv.recv_flags = IPC_RECV_NOMAP;
    ms->srv.trusted = trusted;
    ms->srv.on_refused = refused;
    ms->srv.release_seg = release_seg;
    ms->srv.on_reply_failed = reply_failed;
    ms->srv.on_notify = notified;
    ms->service_threads = 1; /* memsrv.c says how many it starts */
}

void memsrv_notify(struct memsrv *ms, uint64_t bits)
{
    books_lock(ms);
    if (bits & IPC_NOTIFY_EXIT)
        reclaim_drain(ms);
    if (bits & IPC_NOTIFY_DMA)
        compact_dma_changes(ms);
    compact_schedule(ms);
    books_unlock(ms);
}

bool memsrv_handle(struct memsrv *ms, struct ipc_msg *msg)
{
    struct ipc_msg req = *msg;

    if (req.label == IPC_LABEL_NOTIFY && req.badge == BADGE_KERNEL) {
        memsrv_notify(ms, req.w[0]);
        return false;
    }
    server_dispatch(&ms->srv, &req, msg);
    return true;
}

void memsrv_reply_failed(struct memsrv *ms, const struct ipc_msg *msg, int64_t err)
{
    struct abi_seg_info info;
    struct ms_record *rec;

    if (msg->seg == HANDLE_NONE)
        return;
    books_lock(ms);
    if (ms->k->seg_info(ms->k->ctx, msg->seg, &info) != 0) {
        ms_log(ms, "memsrv: a reply failed (%lld) and its segment is unknown to the kernel", (long long)err);
        books_unlock(ms);
        return;
    }
    rec = books_settled(ms, info.sid);
    if (rec == NULL || rec->kind != MS_REC_SEGMENT) {
        ms_log(ms, "memsrv: a reply failed (%lld) with sid %llu, which the books do not know", (long long)err,
               (unsigned long long)info.sid);
        books_unlock(ms);
        return;
    }
    (void)books_destroy(ms, rec, "a reply failed"); /* takes the server's handle with it */
    compact_schedule(ms);
    books_unlock(ms);
}
