/*
 * Memory-server layer: what init asks the server about restarts. Called by
 * dispatch.c (MS_FAULT, MS_RECOVERY, and restart_answered for every
 * request) and info.c (MS_STATS_RESTART).
 *
 * MS_FAULT makes the server fault on purpose, for the tests of the
 * restart path: a page fault, the kernel's way of ending a server with a
 * bug, at once or at one of the points where a crash leaves the most half
 * done (a migration the books have not heard of, a client's segment made
 * and not handed over, reclaimed segments taken and not freed). An armed
 * fault wraps one of the kernel operations: ms->k points at a copy of
 * them with that one replaced, which calls the real one and then faults.
 * Init alone may ask (dispatch.c's table), and init passes it on only for
 * the in-guest suite.
 *
 * MS_RECOVERY: init tells a restarted server when it saw the previous one
 * end; the server answers how long that was before its first answer.
 */
#include <common/string.h>

#include "ms_server.h"

/* The server whose kernel operations are wrapped: one per process (the
 * host tests run one at a time). */
static struct memsrv *armed;

/* Below 4 MiB nothing is ever mapped (docs/architecture.md): the write
 * faults as a wild pointer would, with a page fault. Not address 0, which
 * a compiler may turn into a trap instruction. */
static void crash_by_page_fault(void)
{
    *(volatile uint64_t *)(uintptr_t)0x1000 = 0;
    for (;;)
        ;
}

static void fault(struct memsrv *ms, const char *where)
{
    void (*crash)(void) = ms->restart.crash != NULL ? ms->restart.crash : crash_by_page_fault;

    ms_print(ms, "memsrv: faulting on purpose (init's MS_FAULT) %s", where);
    if (ms->restart.fault_when != 0) {
        ms->k = ms->restart.real_ops;
        ms->restart.fault_when = 0;
        armed = NULL;
    }
    crash();
}

static int64_t migrate_then_fault(void *ctx, uint64_t sid, uint64_t new_phys)
{
    struct memsrv *ms = armed;
    int64_t err = ms->restart.real_ops->seg_migrate(ctx, sid, new_phys);

    if (err == 0)
        fault(ms, "after the kernel migrated a segment, before the books recorded it");
    return err;
}

static int64_t create_then_fault(void *ctx, uint64_t phys, uint64_t size, uint64_t payer, uint64_t *sid)
{
    struct memsrv *ms = armed;
    int64_t h = ms->restart.real_ops->seg_create(ctx, phys, size, payer, sid);

    /* A client's segment (payer 0 is one of the server's own books). */
    if (h > 0 && payer != 0)
        fault(ms, "after the kernel made a client's segment, before the reply");
    return h;
}

static int64_t reclaimed_then_fault(void *ctx, struct abi_reclaim *out, unsigned max)
{
    struct memsrv *ms = armed;
    int64_t n = ms->restart.real_ops->reclaimed(ctx, out, max);

    if (n > 0)
        fault(ms, "after taking reclaimed segments off the kernel's list, before freeing them");
    return n;
}

int64_t req_fault(struct memsrv *ms, const struct ipc_msg *req, struct ipc_msg *reply)
{
    static const char *const names[] = {
        [MS_FAULT_AFTER_MIGRATE] = "after the next migration",
        [MS_FAULT_AFTER_CREATE] = "after the next client segment is made",
        [MS_FAULT_AFTER_RECLAIM] = "after the next reclaimed segments are taken",
    };
    uint64_t when = ms_fault_req_get(req).when;
    struct ms_kernel_ops *ops = &ms->restart.fault_ops;

    (void)reply;
    if (when < MS_FAULT_NOW || when > MS_FAULT_AFTER_RECLAIM)
        return -EINVAL;
    if (ms->restart.fault_when != 0)
        return -EBUSY;
    if (when == MS_FAULT_NOW)
        fault(ms, "now");
    ms->restart.real_ops = ms->k;
    *ops = *ms->k;
    if (when == MS_FAULT_AFTER_MIGRATE)
        ops->seg_migrate = migrate_then_fault;
    else if (when == MS_FAULT_AFTER_CREATE)
        ops->seg_create = create_then_fault;
    else
        ops->reclaimed = reclaimed_then_fault;
    ms->k = ops;
    ms->restart.fault_when = (unsigned)when;
    armed = ms;
    ms_print(ms, "memsrv: a fault is armed (init's MS_FAULT): %s", names[when]);
    return 0;
}

void restart_first_answer(struct memsrv *ms)
{
    uint64_t now = ms->k->clock_ns(ms->k->ctx);

    ms->restart.first_answer_ns = now != 0 ? now : 1;
}

int64_t req_recovery(struct memsrv *ms, const struct ipc_msg *req, struct ipc_msg *reply)
{
    uint64_t ended = ms_recovery_req_get(req).ended_ns, now = ms->k->clock_ns(ms->k->ctx);

    if (ms->restart.number == 0 || ended == 0 || ended > now)
        return -EINVAL;
    /* This reply may itself be the first answer. */
    if (ms->restart.first_answer_ns == 0)
        ms->restart.first_answer_ns = now;
    if (ended > ms->restart.first_answer_ns)
        return -EINVAL;
    ms->restart.recovery_ns = ms->restart.first_answer_ns - ended;
    ms_recovery_reply_put(reply,
                          (struct ms_recovery_reply){ .restart = ms->restart.number,
                                                      .recovery_ns = ms->restart.recovery_ns,
                                                      .rebuild_ns = ms->restart.ready_ns - ms->restart.started_ns });
    return 0;
}

void restart_stats(struct memsrv *ms, struct ipc_msg *reply)
{
    const struct ms_restart *r = &ms->restart;
    struct ms_stats_restart s = {
        .restarts = r->number,
        .recovery_ns = r->recovery_ns,
        .rebuild_ns = r->number != 0 ? r->ready_ns - r->started_ns : 0,
        .segments = r->segments,
        .clients = r->clients,
        .freed_at_start = r->freed_at_start,
        .freed_bytes = r->freed_bytes,
        .locked_dma = r->locked_dma,
        .quarantined = r->quarantined,
        .list_calls = r->list_calls,
    };

    memcpy(reply->payload, &s, sizeof(s));
    reply->len = sizeof(s);
}
