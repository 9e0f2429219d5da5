/*
 * Memory-server layer: the request table and the checks every request
 * passes before its handler runs. Called by memsrv.c's loop (and the host
 * tests) for each received message through memsrv_handle.
 *
 * As in Minix's VM server, one table says per label: the handler, its name
 * for the log, who may call it and which words it reads. A request is
 * refused before anything changes when its label is unknown (-ENOSYS), the
 * caller lacks the right (-EPERM), a word the label does not use is not zero,
 * it carries a payload, or it carries a segment where none is expected or
 * lacks one where one is (-EINVAL). A segment that came with a refused or
 * failed request goes back to the caller in the reply; if the reply cannot
 * deliver it, memsrv_reply_failed destroys it, so nothing leaks. An error
 * reply's words and payload are zero unless the handler documents otherwise
 * (COMPACT's counts, CHECK's reason).
 */
#include <common/string.h>

#include "ms_server.h"

#define REQ_INIT_ONLY 0x1u /* only init (init.pid=) may ask */
#define REQ_TAKES_SEG 0x2u /* the request carries a segment */

/* Logging every malformed request would let a client flood the console. */
#define MALFORMED_LOGGED 32u

struct request_kind {
    uint64_t label;
    ms_handler_fn handler;
    const char *name;
    unsigned flags;
    unsigned words; /* w[0..words) may be set; the rest must be zero */
};

static const struct request_kind requests[] = {
    { MS_ALLOC, req_alloc, "alloc", 0, 4 },
    { MS_FREE, req_free, "free", REQ_TAKES_SEG, 0 },
    { MS_STATS, req_stats, "stats", 0, 2 },
    { MS_COMPACT, req_compact, "compact", 0, 4 },
    { MS_MAP, req_map, "map", 0, 1 },
    { MS_CHECK, req_check, "check", 0, 0 },
    { MS_MOVE, req_move, "move", 0, 1 },
    { MS_REVOKE, req_revoke, "revoke", REQ_INIT_ONLY, 1 },
    { MS_FAULT, req_fault, "fault", REQ_INIT_ONLY, 1 },
    { MS_RECOVERY, req_recovery, "recovery", REQ_INIT_ONLY, 1 },
};

static const struct request_kind *find_request(uint64_t label)
{
    size_t i;

    for (i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
        if (requests[i].label == label)
            return &requests[i];
    return NULL;
}

static int64_t validate(const struct memsrv *ms, const struct request_kind *kind,
                        const struct ipc_msg *req, const char **why)
{
    unsigned i;

    if (kind == NULL) {
        *why = "unknown label";
        return -ENOSYS;
    }
    if ((kind->flags & REQ_INIT_ONLY) && (ms->init_pid == 0 || req->badge != ms->init_pid)) {
        *why = "init only";
        return -EPERM;
    }
    if (!(kind->flags & REQ_TAKES_SEG) && req->seg != HANDLE_NONE) {
        *why = "unexpected segment";
        return -EINVAL;
    }
    if ((kind->flags & REQ_TAKES_SEG) && req->seg == HANDLE_NONE) {
        *why = "segment missing";
        return -EINVAL;
    }
    if (req->len != 0) {
        *why = "unexpected payload";
        return -EINVAL;
    }
    for (i = kind->words; i < IPC_WORDS; i++)
        if (req->w[i] != 0) {
            *why = "unused word not zero";
            return -EINVAL;
        }
    return 0;
}

bool memsrv_handle(struct memsrv *ms, struct ipc_msg *msg)
{
    const struct request_kind *kind;
    struct ipc_msg req = *msg;
    const char *why = NULL;
    int64_t result;

    if (req.label == IPC_LABEL_NOTIFY && req.badge == BADGE_KERNEL) {
        if (req.w[0] & IPC_NOTIFY_EXIT)
            reclaim_drain(ms);
        compact_schedule(ms, ms->k->clock_ns(ms->k->ctx));
        return false;
    }
    kind = find_request(req.label);
    memset(msg, 0, sizeof(*msg));
    msg->seg = HANDLE_NONE;
    result = validate(ms, kind, &req, &why);
    if (result == 0) {
        result = kind->handler(ms, &req, msg);
    } else if (ms->malformed++ < MALFORMED_LOGGED) {
        ms_log(ms, "memsrv: pid %#llx: %s (label %#llx): %s", (unsigned long long)req.badge,
               kind != NULL ? kind->name : "?", (unsigned long long)req.label, why);
    }
    /* A handler that fails has attached no segment of its own (its words
     * and payload may say more, e.g. CHECK's reason); the caller's segment,
     * if any, goes back to it. */
    if (result < 0)
        msg->seg = req.seg;
    msg->label = (uint64_t)result;
    restart_answered(ms);
    compact_schedule(ms, ms->k->clock_ns(ms->k->ctx));
    return true;
}

void memsrv_reply_failed(struct memsrv *ms, const struct ipc_msg *msg, int64_t err)
{
    struct abi_seg_info info;
    struct ms_record *rec;
    int64_t derr;

    if (msg->seg == HANDLE_NONE)
        return;
    if (ms->k->seg_info(ms->k->ctx, msg->seg, &info) != 0) {
        ms_log(ms, "memsrv: a reply failed (%lld) and its segment is unknown to the kernel",
               (long long)err);
        return;
    }
    rec = books_find_sid(ms, info.sid);
    if (rec == NULL || rec->kind != MS_REC_SEGMENT) {
        ms_log(ms, "memsrv: a reply failed (%lld) with sid %llu, which the books do not know",
               (long long)err, (unsigned long long)info.sid);
        return;
    }
    derr = books_destroy(ms, rec, "a reply failed");
    if (derr >= 0)
        ms->k->handle_close(ms->k->ctx, msg->seg);
    compact_schedule(ms, ms->k->clock_ns(ms->k->ctx));
}
