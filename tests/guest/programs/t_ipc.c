/*
 * In-guest test program: messages and segment transfer between two
 * processes. init starts it twice on one fresh endpoint (startup handle
 * PARENT): "server" answers; "client" runs the checks and finally tells the
 * server to stop.
 */
#include <abi/ipc.h>
#include <common/string.h>
#include <libsys/memsrv.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>
#include <libsys/test.h>

#define MS (1000ul * 1000)

enum label {
    L_PING = 1,  /* reply w0 + 1, and the badge seen in w1 */
    L_ECHO,      /* reply the payload as it came */
    L_BOUNCE,    /* check the segment's checksum (w0), reply with it attached */
    L_KEEP,      /* keep the segment; reply its handle value in the server (w0) */
    L_UNMAPPED,  /* receive the next message with IPC_RECV_NOMAP */
    L_SID,       /* (received unmapped) reply the sid the message named (w0), SYS_SEG_INFO's (w1) and whether
                    the segment has a mapping (w2); send the segment back */
    L_BAD_REPLY, /* reply with a payload length the kernel refuses */
    L_CAP_REPLY, /* reply with the segment and an endpoint handle (refused by a caller that takes none) */
    L_REPORTS,   /* reply the failed-reply reports seen: w0 count, w1 last error, w2 handles they named,
                      w3 whether every one of those handles was still the server's */
    L_QUIT,
};

/* What the server learned from IPC_LABEL_REPLY_FAILED reports. */
struct reports {
    uint64_t count, handles;
    int64_t last_err;
    bool handles_held;
};

static void take_report(struct reports *rep, const struct ipc_msg *m)
{
    rep->count++;
    rep->last_err = (int64_t)m->w[0];
    handle_t named[1 + IPC_CAPS_MAX] = { m->seg, m->caps[0].handle, m->caps[1].handle, m->caps[2].handle };
    for (unsigned i = 0; i < 1 + IPC_CAPS_MAX; i++) {
        if (named[i] == HANDLE_NONE)
            continue;
        rep->handles++;
        struct abi_handle_info info;
        if (sys_handle_info(named[i], &info) < 0)
            rep->handles_held = false;
        if (named[i] == m->seg)
            ms_free(named[i]);
        else
            sys_handle_close(named[i]);
    }
}

static uint64_t checksum(const void *p, size_t n)
{
    const uint64_t *w = p;
    uint64_t sum = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n / 8; i++)
        sum = (sum ^ w[i]) * 0x100000001b3ull;
    return sum;
}

static void stamp(void *p, size_t n, uint64_t seed)
{
    uint64_t *w = p;
    for (size_t i = 0; i < n / 8; i++)
        w[i] = seed * 0x2545f4914f6cdd1dull + i;
}

static int server(handle_t ep)
{
    struct test_run t;
    test_begin(&t, "ipc_server", 0, 0);
    struct ipc_msg m = { 0 };
    unsigned bad_checksums = 0;
    struct reports rep = { .handles_held = true };
    int64_t r = sys_ipc_recv(ep, &m, TIMEOUT_FOREVER);
    while (r == 0) {
        uint64_t label = m.label;
        struct ipc_msg reply = { .label = 0 };
        if (m.badge == BADGE_KERNEL && label == IPC_LABEL_REPLY_FAILED) {
            take_report(&rep, &m);
            m = reply; /* no reply is owed: the kernel ignores the buffer */
            r = sys_ipc_reply_recv(ep, &m, TIMEOUT_FOREVER);
            continue;
        }
        switch (label) {
        case L_PING:
            reply.w[0] = m.w[0] + 1;
            reply.w[1] = m.badge;
            reply.w[2] = m.flags & IPC_MSG_CALL;
            break;
        case L_BAD_REPLY: reply.len = IPC_PAYLOAD_MAX + 1; break;
        case L_CAP_REPLY: {
            int64_t cap = sys_ep_create();
            reply.seg = m.seg;
            reply.caps[0].handle = cap < 0 ? HANDLE_NONE : (handle_t)cap;
            break;
        }
        case L_REPORTS:
            reply.w[0] = rep.count;
            reply.w[1] = (uint64_t)rep.last_err;
            reply.w[2] = rep.handles;
            reply.w[3] = rep.handles_held;
            break;
        case L_ECHO:
            reply.len = m.len;
            memcpy(reply.payload, m.payload, m.len);
            break;
        case L_BOUNCE:
            if (!m.seg || checksum((void *)m.seg_addr, m.seg_size) != m.w[0])
                bad_checksums++;
            reply.seg = m.seg;
            reply.w[0] = bad_checksums;
            break;
        case L_KEEP: reply.w[0] = m.seg; break;
        case L_UNMAPPED: reply.flags = IPC_RECV_NOMAP; break;
        case L_SID: {
            struct abi_seg_info info = { 0 };
            reply.w[0] = m.seg_sid;
            reply.w[1] = sys_seg_info(m.seg, &info) == 0 ? info.sid : 0;
            reply.w[2] = info.vaddr != 0;
            reply.seg = m.seg;
            break;
        }
        case L_QUIT:
            sys_ipc_reply(&reply);
            test_check(&t, "checksums", bad_checksums == 0, "%u segments arrived damaged", bad_checksums);
            test_exit(&t);
        default: reply.label = (uint64_t)-EINVAL;
        }
        m = reply;
        r = sys_ipc_reply_recv(ep, &m, TIMEOUT_FOREVER);
    }
    test_check(&t, "serving", false, "receive failed: %s", sys_strerror(r));
    test_exit(&t);
}

static int64_t call(handle_t ep, struct ipc_msg *m) { return sys_ipc_call(ep, m, TIMEOUT_FOREVER); }

static void check_ping_pong(struct test_run *t, handle_t ep)
{
    bool ok = true;
    uint64_t badge = 0;
    for (uint64_t i = 0; i < 1000 && ok; i++) {
        struct ipc_msg m = { .label = L_PING, .w = { i } };
        ok = call(ep, &m) == 0 && m.label == 0 && m.w[0] == i + 1;
        badge = m.w[1];
    }
    test_check(t, "ping_pong", ok, "a call came back wrong");
    test_check(t, "badge_is_sender", badge == libsys_pid, "server saw badge %#lx, my pid is %#lx", badge, libsys_pid);
    struct ipc_msg m = { .label = L_PING, .badge = 0x1234 };
    call(ep, &m);
    test_check(t, "badge_unforgeable", m.w[1] == libsys_pid, "a badge set by the sender got through: %#lx", m.w[1]);
}

/* A reply the kernel could not deliver neither stops the server nor loses
 * what it carried: the caller learns the error, the server gets a report
 * naming the handles, still its own. */
static void check_failed_replies(struct test_run *t, handle_t ep)
{
    struct ipc_msg m = { .label = L_PING };
    int64_t r = sys_ipc_send(ep, &m, TIMEOUT_FOREVER);
    m = (struct ipc_msg){ .label = L_PING };
    int64_t c = call(ep, &m);
    test_check(t, "call_flag", r == 0 && c == 0 && m.w[2] == IPC_MSG_CALL, "send %ld, call %ld, flag %#lx", r, c,
               m.w[2]);

    m = (struct ipc_msg){ .label = L_BAD_REPLY };
    r = call(ep, &m);
    test_check(t, "malformed_reply_answered", r == 0 && (int64_t)m.label == -EINVAL,
               "call %ld, label %ld (want the server's error as the label)", r, (int64_t)m.label);

    struct ms_segment seg;
    r = ms_alloc(4096, 0, 0, 0, &seg);
    if (!test_check(t, "cap_reply_alloc", r == 0, "ms_alloc: %s", sys_strerror(r)))
        return;
    struct ms_stats_client before, after;
    ms_stats_client(0, &before);
    m = (struct ipc_msg){ .label = L_CAP_REPLY, .seg = seg.handle };
    r = call(ep, &m); /* no IPC_RECV_CAPS: the reply is refused */
    m = (struct ipc_msg){ .label = L_REPORTS };
    int64_t q = call(ep, &m);
    ms_stats_client(0, &after);
    test_check(t, "refused_reply_reported",
               r == -ENOTSUP && q == 0 && m.w[0] == 2 && (int64_t)m.w[1] == -ENOTSUP && m.w[2] == 2 && m.w[3] == 1,
               "call %ld; reports %lu, last %ld, handles %lu, held %lu", r, m.w[0], (int64_t)m.w[1], m.w[2], m.w[3]);
    test_check(t, "refused_reply_segment_freed", after.bytes + 4096 == before.bytes,
               "my memory went from %lu to %lu bytes", before.bytes, after.bytes);
}

static void check_payload(struct test_run *t, handle_t ep)
{
    struct ipc_msg m = { .label = L_ECHO, .len = IPC_PAYLOAD_MAX };
    for (unsigned i = 0; i < IPC_PAYLOAD_MAX; i++)
        m.payload[i] = (uint8_t)(i * 7 + 1);
    int64_t r = call(ep, &m);
    bool same = r == 0 && m.len == IPC_PAYLOAD_MAX;
    for (unsigned i = 0; same && i < IPC_PAYLOAD_MAX; i++)
        same = m.payload[i] == (uint8_t)(i * 7 + 1);
    test_check(t, "payload_128", same, "echo returned %ld, len %u", r, m.len);

    struct ipc_msg big = { .label = L_ECHO, .len = IPC_PAYLOAD_MAX + 1 };
    r = call(ep, &big);
    test_check(t, "payload_too_long", r == -EINVAL, "129 bytes gave %ld", r);
    struct ipc_msg kernel_label = { .label = IPC_LABEL_NOTIFY };
    r = call(ep, &kernel_label);
    test_check(t, "kernel_label_refused", r == -EINVAL, "a kernel label gave %ld", r);
}

static void check_timeout(struct test_run *t)
{
    int64_t ep = sys_ep_create();
    struct ipc_msg m = { 0 };
    uint64_t t0 = sys_clock();
    int64_t r = sys_ipc_recv((handle_t)ep, &m, 20 * MS);
    uint64_t waited = sys_clock() - t0;
    test_check(t, "recv_timeout", ep >= 0 && r == -ETIMEDOUT && waited >= 20 * MS, "recv gave %ld after %lu ns", r,
               waited);
    r = sys_ipc_send((handle_t)ep, &m, TIMEOUT_POLL);
    test_check(t, "send_poll_no_receiver", r == -ETIMEDOUT, "send with nobody receiving gave %ld", r);
    sys_handle_close((handle_t)ep);
    r = sys_ipc_recv((handle_t)ep, &m, TIMEOUT_POLL);
    test_check(t, "closed_endpoint_stale", r == -EBADH, "a closed endpoint's handle gave %ld", r);
}

static void check_bad_buffers(struct test_run *t, handle_t ep)
{
    const uint64_t bad[] = { 0, 0xffffffff80000000ull, 0x0000100000000000ull, 0xfffffffffffff000ull,
                             ABI_STACK_TOP - 64 };
    bool all = true;
    int64_t own = sys_ep_create(); /* receiving needs the receive right: one's own endpoint */
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        all &= sys_ipc_call(ep, (struct ipc_msg *)bad[i], TIMEOUT_FOREVER) == -EFAULT;
        all &= sys_ipc_send(ep, (struct ipc_msg *)bad[i], TIMEOUT_POLL) == -EFAULT;
        all &= sys_ipc_recv((handle_t)own, (struct ipc_msg *)bad[i], TIMEOUT_POLL) == -EFAULT;
        all &= sys_seg_info(HANDLE_NONE, (struct abi_seg_info *)bad[i]) == -EBADH;
    }
    struct ipc_msg probe = { 0 };
    all &= sys_ipc_recv(ep, &probe, TIMEOUT_POLL) == -EPERM; /* a client's handle sends only */
    sys_handle_close((handle_t)own);
    test_check(t, "bad_message_buffers", all, "a kernel, unmapped, wrapping or straddling buffer was taken");
    struct ipc_msg m = { .label = L_PING };
    test_check(t, "ping_after_bad_buffers", call(ep, &m) == 0 && m.w[0] == 1, "the server stopped answering");
}

static void check_segments(struct test_run *t, handle_t ep)
{
    struct ms_segment seg;
    int64_t r = ms_alloc(64 * 1024, 0, 0, 0, &seg);
    if (!test_check(t, "alloc", r == 0, "ms_alloc: %s", sys_strerror(r)))
        return;
    stamp(seg.addr, seg.size, 42);
    uint64_t sum = checksum(seg.addr, seg.size);
    handle_t h = seg.handle;
    void *addr = seg.addr;
    bool intact = true, moved_out = true, one_owner = true;
    for (int i = 0; i < 1000 && intact; i++) {
        struct ipc_msg m = { .label = L_BOUNCE, .seg = h, .w = { sum } };
        r = call(ep, &m);
        /* While the server held it, the old mapping was gone. */
        intact =
            r == 0 && m.w[0] == 0 && m.seg && m.seg_size == seg.size && checksum((void *)m.seg_addr, m.seg_size) == sum;
        struct abi_seg_info info;
        moved_out &= sys_seg_info(h, &info) == -EBADH || m.seg == h;
        one_owner &= sys_seg_info(m.seg, &info) == 0 && info.owner_pid == libsys_pid;
        h = m.seg;
        addr = (void *)m.seg_addr;
    }
    test_check(t, "segment_round_trips", intact, "after a round trip: call %ld or checksum wrong", r);
    test_check(t, "segment_one_owner", moved_out && one_owner, "a segment was named in two places");

    /* A receiver that keeps segments unmapped learns the sid from the
     * message itself (what memsrv's FREE relies on). */
    struct abi_seg_info mine;
    struct ipc_msg arm = { .label = L_UNMAPPED }, probe = { .label = L_SID, .seg = h };
    bool named = sys_seg_info(h, &mine) == 0 && call(ep, &arm) == 0 && call(ep, &probe) == 0;
    test_check(t, "unmapped_receive_names_sid",
               named && probe.w[0] == mine.sid && probe.w[1] == mine.sid && probe.w[2] == 0 && probe.seg != HANDLE_NONE,
               "sid %lu: the message named %lu, SEG_INFO %lu, mapped %lu", mine.sid, probe.w[0], probe.w[1],
               probe.w[2]);
    h = probe.seg;
    addr = (void *)probe.seg_addr;

    /* After sending, the old address is unmapped: the kernel refuses it. */
    struct ipc_msg keep = { .label = L_KEEP, .seg = h };
    r = call(ep, &keep);
    int64_t touch = sys_console_write(addr, 1);
    test_check(t, "sender_loses_access", r == 0 && touch == -EFAULT, "keep %ld, old mapping gave %ld", r, touch);

    /* The server holds it now: the memory server refuses to move it for us. */
    int64_t foreign_move = ms_move(mine.sid);
    test_check(t, "move_foreign_refused", foreign_move == -ENOENT, "moving the server's segment gave %ld",
               foreign_move);

    /* The server's handle value means nothing here: foreign, like a guess. */
    struct abi_seg_info info;
    int64_t foreign = sys_seg_info(keep.w[0], &info);
    int64_t stale = sys_seg_info(h, &info);
    bool randoms = true;
    struct test_run *rng = t;
    for (int i = 0; i < 1000; i++)
        randoms &= sys_seg_info(test_rand(rng), &info) == -EBADH;
    test_check(t, "foreign_stale_random_handles", foreign == -EBADH && stale == -EBADH && randoms,
               "foreign %ld, stale %ld", foreign, stale);
}

static void check_pinned(struct test_run *t, handle_t ep)
{
    struct ms_segment seg;
    if (ms_alloc(4096, 0, 0, 0, &seg) != 0) {
        test_check(t, "pinned_alloc", false, "no segment");
        return;
    }
    int64_t phys = sys_seg_pin(seg.handle, test_dma_device());
    int64_t again = sys_seg_pin(seg.handle, test_dma_device()); /* pins nest */
    struct ipc_msg m = { .label = L_BOUNCE, .seg = seg.handle };
    int64_t send = call(ep, &m);
    int64_t free_while_pinned = ms_free(seg.handle);
    struct abi_seg_info info;
    int64_t inf = sys_seg_info(seg.handle, &info);
    bool still_mine = inf == 0 && info.pins == 2 && info.phys == (uint64_t)phys;
    sys_seg_unpin(seg.handle);
    int64_t free_once = ms_free(seg.handle);
    sys_seg_unpin(seg.handle);
    int64_t unpin_extra = sys_seg_unpin(seg.handle);
    int64_t freed = ms_free(seg.handle);
    test_check(t, "pinned_not_transferred", phys > 0 && again == phys && send == -EBUSY, "pin %ld/%ld, send %ld", phys,
               again, send);
    test_check(t, "pinned_not_freed", free_while_pinned == -EBUSY && free_once == -EBUSY && still_mine,
               "free %ld/%ld, info %ld pins %u", free_while_pinned, free_once, inf, info.pins);
    test_check(t, "unpinned_freed", unpin_extra == -EINVAL && freed == 0, "extra unpin %ld, free %ld", unpin_extra,
               freed);
}

static void check_large_pages(struct test_run *t)
{
    struct ms_segment seg;
    int64_t r = ms_alloc(2ull << 20, 2ull << 20, MS_ALLOC_LARGE, 0, &seg);
    struct ms_stats_global g;
    /* A machine of 16 to 20 MiB has no free run that surely holds an
     * aligned large page once the system is up (one of 4 MiB does, which
     * the server's compaction would have made had it been possible):
     * nothing to map, which is not a failure. */
    if (r == -ENOMEM && ms_stats_global(&g) == 0 && g.largest_free < (4ull << 20)) {
        test_skip(t, "large_page_mapping", "largest free run %lu KiB of %lu KiB free, an aligned 2 MiB page wanted",
                  g.largest_free / 1024, g.free_bytes / 1024);
        return;
    }
    struct abi_seg_info info = { 0 };
    if (r == 0)
        sys_seg_info(seg.handle, &info);
    test_check(t, "large_page_mapping",
               r == 0 && (info.flags & SEG_INFO_LARGE_PAGES) && ((uint64_t)seg.addr & ((2ull << 20) - 1)) == 0,
               "alloc %ld, flags %#x, at %p", r, info.flags, seg.addr);
    if (r == 0)
        ms_free(seg.handle);
}

static void check_memsrv_calls_refused(struct test_run *t)
{
    struct abi_mem_range range;
    struct abi_seg_info info;
    struct abi_reclaim rec;
    bool all = sys_ms_bootinfo(0, &range) == -EPERM && sys_ms_seg_create(0x1000000, 4096, 0, NULL) == -EPERM &&
               sys_ms_seg_revoke(1) == -EPERM && sys_ms_seg_migrate(1, 0x1000000) == -EPERM &&
               sys_ms_seg_query(1, &info) == -EPERM && sys_ms_seg_destroy(1) == -EPERM &&
               sys_ms_reclaimed(&rec, 1) == -EPERM && sys_ms_seg_charge(1, 0) == -EPERM;
    test_check(t, "memsrv_calls_refused", all, "an ordinary process made a memory-server call");
}

int main(int argc, char **argv)
{
    handle_t ep = startup_handle(ABI_STARTUP_SERVICE);
    bool is_server = false;
    for (int i = 1; i < argc; i++)
        is_server |= strcmp(argv[i], "server") == 0;
    if (is_server)
        return server(ep);

    struct test_run t;
    test_begin(&t, "ipc", argc, argv);
    check_ping_pong(&t, ep);
    check_failed_replies(&t, ep);
    check_payload(&t, ep);
    check_timeout(&t);
    check_bad_buffers(&t, ep);
    check_segments(&t, ep);
    check_pinned(&t, ep);
    check_large_pages(&t);
    check_memsrv_calls_refused(&t);
    struct ipc_msg quit = { .label = L_QUIT };
    call(ep, &quit);
    test_exit(&t);
}
