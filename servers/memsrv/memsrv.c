/*
 * memsrv: the memory server's process. Started by the kernel from the boot
 * module "memsrv" with the memory-server right, before init. This file is
 * the only one that makes system calls: it implements the kernel operations
 * the server core needs (ms_server.h) with the SYS_MS_* calls, takes over
 * memory (boot.c), and runs the receive loop on the endpoint in
 * handles[ABI_STARTUP_MEMSRV].
 *
 * The loop: receive with IPC_RECV_NOMAP (a freed segment arrives as a
 * handle, never mapped into the server) and with a timeout that brings the
 * next background step; handle; reply with the next receive
 * (SYS_IPC_REPLY_RECV). A reply the kernel could not deliver comes back as
 * an IPC_LABEL_REPLY_FAILED report, and the segment it carried is
 * destroyed. Background work runs between messages whenever it is due, even
 * under a steady stream of them; a reply owed then goes out first, alone.
 */
#include <common/string.h>
#include <libsys/start.h>
#include <libsys/stdio.h>
#include <libsys/syscall.h>

#include "ms_server.h"

static int64_t k_bootinfo(void *ctx, unsigned index, struct abi_mem_range *out)
{
    (void)ctx;
    return sys_ms_bootinfo(index, out);
}
static int64_t k_seg_create(void *ctx, uint64_t phys, uint64_t size, uint64_t payer)
{
    (void)ctx;
    return sys_ms_seg_create(phys, size, payer);
}
static int64_t k_seg_info(void *ctx, handle_t seg, struct abi_seg_info *out)
{
    (void)ctx;
    return sys_seg_info(seg, out);
}
static int64_t k_seg_map_self(void *ctx, handle_t seg)
{
    (void)ctx;
    return sys_seg_give(seg, HANDLE_SELF, 0, RIGHT_READ | RIGHT_WRITE);
}
static int64_t k_seg_destroy(void *ctx, uint64_t sid)
{
    (void)ctx;
    return sys_ms_seg_destroy(sid);
}
static int64_t k_seg_revoke(void *ctx, uint64_t sid)
{
    (void)ctx;
    return sys_ms_seg_revoke(sid);
}
static int64_t k_seg_migrate(void *ctx, uint64_t sid, uint64_t new_phys)
{
    (void)ctx;
    return sys_ms_seg_migrate(sid, new_phys);
}
static int64_t k_seg_query(void *ctx, uint64_t sid, struct abi_seg_info *out)
{
    (void)ctx;
    return sys_ms_seg_query(sid, out);
}
static int64_t k_reclaimed(void *ctx, struct abi_reclaim *out, unsigned max)
{
    (void)ctx;
    return sys_ms_reclaimed(out, max);
}
static int64_t k_segments(void *ctx, uint64_t from, struct abi_seg_record *out, unsigned max)
{
    (void)ctx;
    return sys_ms_segments(from, out, max);
}
static void k_handle_close(void *ctx, handle_t h)
{
    (void)ctx;
    /* The kernel may already have dropped the handle with the segment. */
    (void)sys_handle_close(h);
}
static uint64_t k_clock_ns(void *ctx)
{
    (void)ctx;
    return sys_clock();
}
static void k_console(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    sys_console_write(text, len);
}

static const struct ms_kernel_ops kernel_ops = {
    .bootinfo = k_bootinfo,
    .seg_create = k_seg_create,
    .seg_info = k_seg_info,
    .seg_map_self = k_seg_map_self,
    .seg_destroy = k_seg_destroy,
    .seg_revoke = k_seg_revoke,
    .seg_migrate = k_seg_migrate,
    .seg_query = k_seg_query,
    .reclaimed = k_reclaimed,
    .segments = k_segments,
    .handle_close = k_handle_close,
    .clock_ns = k_clock_ns,
    .console = k_console,
};

static struct memsrv server;
static struct ipc_msg msg;

/* A reply that is sent before background work rather than with the next
 * receive, so the caller does not wait for that work. */
static void reply_now(struct memsrv *ms)
{
    int64_t err = sys_ipc_reply(&msg);

    if (err < 0)
        memsrv_reply_failed(ms, &msg, err);
}

static void serve(struct memsrv *ms, handle_t ep)
{
    bool reply_pending = false;

    memset(&msg, 0, sizeof(msg));
    for (;;) {
        uint64_t now = sys_clock();
        int64_t r;

        if (memsrv_work_due(ms, now)) {
            if (reply_pending)
                reply_now(ms);
            reply_pending = false;
            memsrv_background(ms, now);
            now = sys_clock();
        }
        if (!reply_pending)
            memset(&msg, 0, sizeof(msg));
        msg.flags = IPC_RECV_NOMAP;
        r = sys_ipc_reply_recv(ep, &msg, memsrv_timeout(ms, now));
        reply_pending = false;
        if (r == -ETIMEDOUT)
            continue;
        if (r < 0) {
            /* A receive that keeps failing would be a kernel bug: do not spin. */
            printf("memsrv: receive failed: %s\n", sys_strerror(r));
            sys_sleep(MS_IDLE_NS);
            continue;
        }
        if (msg.badge == BADGE_KERNEL && msg.label == IPC_LABEL_REPLY_FAILED) {
            memsrv_reply_failed(ms, &msg, (int64_t)msg.w[0]);
            continue;
        }
        bool call = msg.flags & IPC_MSG_CALL;
        reply_pending = memsrv_handle(ms, &msg);
        if (reply_pending && !call) {
            /* A one-way send: nobody to answer, and a segment the reply
             * would have carried has nowhere to go. */
            memsrv_reply_failed(ms, &msg, -ENOENT);
            reply_pending = false;
        }
    }
}

int main(int argc, char **argv)
{
    handle_t ep;
    int err;

    (void)argc;
    (void)argv;
    if (libsys_startup == NULL) {
        printf("memsrv: no startup block\n");
        return 1;
    }
    ep = libsys_startup->handles[ABI_STARTUP_MEMSRV];
    if (ep == HANDLE_NONE) {
        printf("memsrv: no endpoint in handles[%d]\n", ABI_STARTUP_MEMSRV);
        return 1;
    }
    err = memsrv_start(&server, &kernel_ops, libsys_startup->args, libsys_pid);
    if (err != 0) {
        printf("memsrv: cannot start: %s\n", sys_strerror(err));
        return 1;
    }
    map_print(&server, MS_MAP_COLUMNS_DEFAULT);
    serve(&server, ep);
    return 0;
}
